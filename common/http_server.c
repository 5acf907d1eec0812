#include "http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "buffer.h"
#include "log.h"

/* Unparsed input kept per connection while a request is being handled (pipelined requests
 * behind it). Above this, reading pauses until the current response is written. */
#define PIPELINE_BUFFER_LIMIT (64 * 1024)
/* Connection buffers grown past this by one large request are released after its response,
 * so a few big uploads do not pin memory on thousands of idle keep-alive connections. */
#define BUFFER_KEEP_LIMIT (64 * 1024)
/* How long a connection we are closing after an error keeps draining the client's input, so
 * the kernel does not answer unread data with a RST that could destroy our error response. */
#define LINGER_MAX_MS 2000
#define READ_SLAB_SIZE (64 * 1024)

typedef struct http_conn http_conn;
typedef struct worker worker;

/* The part of a worker that may outlive it: a late response from another thread finds here
 * whether the worker's loop still runs (then it is queued and the loop is woken) or not (then
 * it is dropped on the spot). Reference counted by the server and by every connection. */
typedef struct worker_shared {
    pthread_mutex_t lock;
    http_conn *ready_head, *ready_tail; /* responses waiting for the loop; under lock */
    bool stop_requested;                /* under lock */
    atomic_bool alive;                  /* changed under lock, read without it as a hint */
    uv_async_t *wake;                   /* valid while alive; used under lock */
    pthread_t thread;                   /* the worker's thread, set before its loop runs */
    atomic_int refs;
    atomic_uint_fast64_t connections_accepted, connections_rejected, connections_open, requests,
        responses_dropped, errors_sent;
} worker_shared;

typedef enum conn_state {
    CONN_IDLE,    /* between requests */
    CONN_READING, /* a request has started arriving */
    CONN_BUSY,    /* the handler owns the request */
    CONN_WRITING, /* a response is being written */
    CONN_LINGER,  /* closing: output shut down, input drained until EOF or a deadline */
} conn_state;

typedef enum parse_phase { PHASE_URL, PHASE_FIELD, PHASE_VALUE } parse_phase;

/* A header field while the request is parsed: offsets into conn.head, which may move. */
typedef struct header_span {
    size_t name_off, name_len, value_off, value_len;
} header_span;

struct http_request {
    http_conn *conn;
    const char *method;
    const char *target, *path, *query;
    http_header *headers;
    size_t header_count;
    const uint8_t *body;
    size_t body_len;
};

struct http_conn {
    uv_tcp_t tcp;
    uv_write_t write_req;
    uv_write_t continue_req;
    uv_shutdown_t shutdown_req;
    http_parser parser;
    worker *worker;        /* loop thread only, while the handle is open */
    worker_shared *shared; /* any thread */
    atomic_int refs;       /* one for the open handle, one while a handler owns the request */
    http_conn *prev, *next; /* the worker's connection list */
    http_conn *ready_next;  /* worker_shared.ready_* queue */
    struct sockaddr_storage peer;

    /* Loop thread only. */
    conn_state state;
    uint64_t deadline; /* uv_now() milliseconds; 0 = none */
    bool closing;
    bool in_handler;
    bool local_response_ready;
    bool read_paused;
    bool read_eof;
    bool continue_pending;
    bool response_close;
    bool req_keep_alive;
    bool req_head;
    unsigned short req_minor;

    /* Parsing the current request (loop thread). */
    parse_phase phase;
    bool headers_done;
    int reject_status;
    size_t url_len;
    size_t header_bytes;
    buffer head; /* target, header names and values, path, query: NUL-separated */
    header_span *spans;
    size_t span_count, span_cap;
    http_header *headers;
    size_t headers_cap;
    buffer body;
    buffer in; /* input the parser has not taken yet */
    size_t in_pos;
    http_request req;

    /* The response: written by whichever thread answers, then handed to the loop. */
    buffer out;      /* status line and headers, without Connection and the final CRLF */
    buffer out_body; /* copy of a borrowed body */
    void *owned_body;
    const uint8_t *resp_body;
    size_t resp_body_len;
    bool resp_failed; /* out of memory while building it */
};

struct worker {
    http_server *server;
    const http_server_config *cfg;
    worker_shared *shared;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t wake;
    uv_timer_t sweep_timer;
    uv_timer_t stop_timer;
    bool loop_ready, listener_ready, wake_ready, timers_ready;
    uv_thread_t thread;
    bool thread_started;
    http_conn *conns;
    unsigned open_count;
    bool stopping;
    bool finished;
    uint64_t linger_ms;
    char slab[READ_SLAB_SIZE]; /* every read lands here first; copied only when kept */
};

struct http_server {
    http_server_config config;
    worker **workers;
    unsigned worker_count;
    uint16_t port;
};

static void conn_close(http_conn *c);
static void conn_read_resume(http_conn *c);
static void conn_send(http_conn *c);
static void conn_reject(http_conn *c, int status);
static size_t conn_parse(http_conn *c, const char *data, size_t len);
static void worker_maybe_finish(worker *w);

static const http_parser_settings parser_settings;

/* ---------- shared worker state ---------- */

static void shared_release(worker_shared *sh)
{
    if (atomic_fetch_sub_explicit(&sh->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&sh->lock);
        free(sh);
    }
}

static void counter_add(atomic_uint_fast64_t *counter, int64_t delta)
{
    atomic_fetch_add_explicit(counter, (uint_fast64_t)delta, memory_order_relaxed);
}

/* ---------- connection lifetime ---------- */

static void response_release_body(http_conn *c)
{
    free(c->owned_body);
    c->owned_body = NULL;
    c->resp_body = NULL;
    c->resp_body_len = 0;
}

static void conn_free(http_conn *c)
{
    response_release_body(c);
    buffer_free(&c->head);
    buffer_free(&c->body);
    buffer_free(&c->in);
    buffer_free(&c->out);
    buffer_free(&c->out_body);
    free(c->spans);
    free(c->headers);
    shared_release(c->shared);
    free(c);
}

static void conn_ref(http_conn *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/* May run on any thread; once the loop is gone nothing else references the connection. */
static void conn_release(http_conn *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        conn_free(c);
}

static void on_conn_closed(uv_handle_t *handle)
{
    http_conn *c = handle->data;
    worker *w = c->worker;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->open_count--;
    counter_add(&w->shared->connections_open, -1);
    conn_release(c);
    worker_maybe_finish(w);
}

static void conn_close(http_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->deadline = 0;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
    http_conn *c = req->data;
    if (status < 0)
        conn_close(c);
}

/* Closes after an error response or Connection: close without provoking a RST. */
static void conn_linger(http_conn *c)
{
    if (c->closing)
        return;
    if (c->read_eof) {
        conn_close(c);
        return;
    }
    c->state = CONN_LINGER;
    c->deadline = uv_now(&c->worker->loop) + c->worker->linger_ms;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown_done) != 0) {
        conn_close(c);
        return;
    }
    conn_read_resume(c); /* drain whatever the client still sends */
}

/* Releases memory a single large request made a connection grow, so idle connections stay small. */
static void conn_trim_buffers(http_conn *c)
{
    if (c->head.cap > BUFFER_KEEP_LIMIT)
        buffer_free(&c->head);
    if (c->body.cap > BUFFER_KEEP_LIMIT)
        buffer_free(&c->body);
    if (c->out.cap > BUFFER_KEEP_LIMIT)
        buffer_free(&c->out);
    if (c->out_body.cap > BUFFER_KEEP_LIMIT)
        buffer_free(&c->out_body);
    if (c->in.cap > BUFFER_KEEP_LIMIT && c->in_pos == c->in.len) {
        buffer_free(&c->in);
        c->in_pos = 0;
    }
}

/* ---------- building responses (any thread) ---------- */

static const char *http_date_now(void)
{
    /* Per thread, so formatting costs once a second and needs no lock. */
    static _Thread_local time_t cached_second = (time_t)-1;
    static _Thread_local char cached[40];
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if (now != cached_second) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(cached, sizeof cached, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
                 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        cached_second = now;
    }
    return cached;
}

static const char *status_reason(int status)
{
    const char *reason = http_status_str((enum http_status)status);
    return reason[0] == '<' ? "Status" : reason;
}

static bool header_is_server_owned(const char *name)
{
    return strcasecmp(name, "content-length") == 0 || strcasecmp(name, "connection") == 0 ||
           strcasecmp(name, "date") == 0 || strcasecmp(name, "transfer-encoding") == 0;
}

static bool header_text_is_safe(const char *s)
{
    return s && strpbrk(s, "\r\n") == NULL;
}

static int append_decimal(buffer *b, uint64_t value)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    return buffer_append(b, digits + sizeof digits - n, n);
}

/* Everything but the Connection header and the final CRLF, which depend on the connection's
 * state when the response is written (a stop may have started meanwhile). */
static void response_build(http_conn *c, int status, const http_header *headers, const void *body,
                           size_t body_len, void *owned)
{
    if (status < 200 || status > 599) {
        log_error("http handler answered with an invalid status", "status=%d", status);
        status = 500;
        body_len = 0;
    }
    /* 204 and 304 never carry a body or a Content-Length. */
    bool no_body = status == 204 || status == 304;
    if (no_body)
        body_len = 0;
    buffer *out = &c->out;
    buffer_reset(out);
    int rc = buffer_append_str(out, "HTTP/1.1 ");
    rc |= append_decimal(out, (uint64_t)status);
    rc |= buffer_append_byte(out, ' ');
    rc |= buffer_append_str(out, status_reason(status));
    rc |= buffer_append_str(out, "\r\nDate: ");
    rc |= buffer_append_str(out, http_date_now());
    rc |= buffer_append_str(out, "\r\n");
    for (const http_header *h = headers; h && h->name; h++) {
        if (header_is_server_owned(h->name))
            continue;
        if (!header_text_is_safe(h->name) || !header_text_is_safe(h->value) || !h->name[0]) {
            log_error("http response header dropped: empty or contains CR/LF", "name=\"%.64s\"",
                      h->name);
            continue;
        }
        rc |= buffer_append_str(out, h->name);
        rc |= buffer_append_str(out, ": ");
        rc |= buffer_append_str(out, h->value);
        rc |= buffer_append_str(out, "\r\n");
    }
    if (!no_body) {
        rc |= buffer_append_str(out, "Content-Length: ");
        rc |= append_decimal(out, body_len);
        rc |= buffer_append_str(out, "\r\n");
    }
    c->owned_body = owned;
    if (owned) {
        c->resp_body = owned;
    } else {
        buffer_reset(&c->out_body);
        rc |= buffer_append(&c->out_body, body, body_len);
        c->resp_body = c->out_body.data;
    }
    c->resp_body_len = body_len;
    c->resp_failed = rc != 0;
}

/* ---------- handing responses to the loop ---------- */

/* Loop thread: a handler's response is ready. Drops the request's reference. */
static void conn_response_arrived(http_conn *c)
{
    if (c->closing) {
        counter_add(&c->shared->responses_dropped, 1);
        response_release_body(c);
    } else if (c->resp_failed) {
        log_error("http response dropped: out of memory", "");
        response_release_body(c);
        conn_close(c);
    } else {
        conn_send(c);
    }
    conn_release(c);
}

static void response_deliver(http_conn *c)
{
    worker_shared *sh = c->shared;
    if (atomic_load_explicit(&sh->alive, memory_order_acquire) &&
        pthread_equal(pthread_self(), sh->thread)) {
        /* The handler itself (or something else on the loop) answered: no hand-off needed.
         * Inside the handler, writing waits until it returns so parsing is not re-entered. */
        if (c->in_handler)
            c->local_response_ready = true;
        else
            conn_response_arrived(c);
        return;
    }
    pthread_mutex_lock(&sh->lock);
    if (atomic_load_explicit(&sh->alive, memory_order_relaxed)) {
        c->ready_next = NULL;
        bool was_empty = sh->ready_head == NULL;
        if (sh->ready_tail)
            sh->ready_tail->ready_next = c;
        else
            sh->ready_head = c;
        sh->ready_tail = c;
        /* Under the lock: the loop closes the async handle only after marking itself dead. */
        if (was_empty)
            uv_async_send(sh->wake);
        pthread_mutex_unlock(&sh->lock);
        return;
    }
    pthread_mutex_unlock(&sh->lock);
    /* The worker has stopped: its loop will never look at this connection again. */
    counter_add(&sh->responses_dropped, 1);
    response_release_body(c);
    conn_release(c);
}

void http_respond(http_request *req, int status, const http_header *headers, const void *body,
                  size_t body_len)
{
    http_conn *c = req->conn;
    response_build(c, status, headers, body, body ? body_len : 0, NULL);
    response_deliver(c);
}

void http_respond_owned(http_request *req, int status, const http_header *headers, void *body,
                        size_t body_len)
{
    http_conn *c = req->conn;
    if (!body)
        body_len = 0;
    response_build(c, status, headers, body, body_len, body);
    response_deliver(c);
}

void http_respond_text(http_request *req, int status, const char *text)
{
    static const http_header headers[] = {
        {"Content-Type", "text/plain; charset=utf-8"},
        {NULL, NULL},
    };
    http_respond(req, status, headers, text, text ? strlen(text) : 0);
}

/* ---------- writing (loop thread) ---------- */

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);

static void conn_read_resume(http_conn *c)
{
    if (!c->read_paused || c->closing)
        return;
    c->read_paused = false;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static void conn_parse_buffered(http_conn *c)
{
    size_t used = conn_parse(c, (const char *)c->in.data + c->in_pos, c->in.len - c->in_pos);
    c->in_pos += used;
    if (c->in_pos == c->in.len)
        c->in.len = c->in_pos = 0;
}

static void on_response_written(uv_write_t *wr, int status)
{
    http_conn *c = wr->data;
    response_release_body(c);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->response_close || c->read_eof) {
        conn_linger(c);
        return;
    }
    worker *w = c->worker;
    if (w->stopping) {
        conn_close(c);
        return;
    }
    conn_trim_buffers(c);
    c->state = CONN_IDLE;
    c->deadline = uv_now(&w->loop) + w->cfg->idle_timeout_ms;
    conn_read_resume(c);
    if (!c->closing && c->in_pos < c->in.len)
        conn_parse_buffered(c);
}

static void conn_send(http_conn *c)
{
    worker *w = c->worker;
    bool keep_alive = c->req_keep_alive && !w->stopping && !c->read_eof;
    c->response_close = !keep_alive;
    const char *tail = !keep_alive        ? "Connection: close\r\n\r\n"
                       : c->req_minor == 0 ? "Connection: keep-alive\r\n\r\n"
                                           : "\r\n";
    uv_buf_t bufs[3];
    unsigned n = 0;
    bufs[n++] = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    bufs[n++] = uv_buf_init((char *)tail, (unsigned)strlen(tail));
    if (!c->req_head && c->resp_body_len > 0)
        bufs[n++] = uv_buf_init((char *)c->resp_body, (unsigned)c->resp_body_len);
    c->state = CONN_WRITING;
    c->deadline = uv_now(&w->loop) + w->cfg->read_timeout_ms;
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, n, on_response_written) != 0) {
        response_release_body(c);
        conn_close(c);
    }
}

/* An error found by the server itself: answer it and close the connection. */
static void conn_reject(http_conn *c, int status)
{
    counter_add(&c->shared->errors_sent, 1);
    char text[80];
    snprintf(text, sizeof text, "%d %s\n", status, status_reason(status));
    static const http_header headers[] = {
        {"Content-Type", "text/plain; charset=utf-8"},
        {NULL, NULL},
    };
    c->req_keep_alive = false;
    c->req_head = false;
    response_build(c, status, headers, text, strlen(text), NULL);
    if (c->resp_failed) {
        conn_close(c);
        return;
    }
    conn_send(c);
}

static void on_continue_written(uv_write_t *wr, int status)
{
    http_conn *c = wr->data;
    c->continue_pending = false;
    if (status < 0)
        conn_close(c);
}

/* ---------- parsing (loop thread) ---------- */

static int parse_reject(http_conn *c, int status)
{
    if (!c->reject_status)
        c->reject_status = status;
    return -1;
}

static int on_message_begin(http_parser *p)
{
    http_conn *c = p->data;
    c->state = CONN_READING;
    c->deadline = uv_now(&c->worker->loop) + c->worker->cfg->read_timeout_ms;
    buffer_reset(&c->head);
    buffer_reset(&c->body);
    c->span_count = 0;
    c->url_len = 0;
    c->header_bytes = 0;
    c->phase = PHASE_URL;
    c->headers_done = false;
    c->reject_status = 0;
    return 0;
}

static int count_header_bytes(http_conn *c, size_t len)
{
    c->header_bytes += len;
    return c->header_bytes > c->worker->cfg->max_header_bytes ? parse_reject(c, 431) : 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    c->url_len += len;
    if (c->url_len > c->worker->cfg->max_url_bytes)
        return parse_reject(c, 414);
    if (count_header_bytes(c, len) != 0)
        return -1;
    return buffer_append(&c->head, at, len) == 0 ? 0 : parse_reject(c, 500);
}

/* Terminates whatever was being collected (the target, a name without value, a value). */
static int header_finish_previous(http_conn *c)
{
    int rc = buffer_append_byte(&c->head, 0);
    if (c->phase == PHASE_FIELD) {
        header_span *s = &c->spans[c->span_count - 1];
        s->value_off = c->head.len;
        s->value_len = 0;
        rc |= buffer_append_byte(&c->head, 0);
    }
    return rc;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (count_header_bytes(c, len) != 0)
        return -1;
    if (c->headers_done)
        return 0; /* trailer fields of a chunked body: counted, then ignored */
    if (c->phase != PHASE_FIELD) {
        if (header_finish_previous(c) != 0)
            return parse_reject(c, 500);
        if (c->span_count >= c->worker->cfg->max_headers)
            return parse_reject(c, 431);
        if (c->span_count == c->span_cap) {
            size_t cap = c->span_cap ? c->span_cap * 2 : 16;
            header_span *spans = realloc(c->spans, cap * sizeof *spans);
            if (!spans)
                return parse_reject(c, 500);
            c->spans = spans;
            c->span_cap = cap;
        }
        header_span *s = &c->spans[c->span_count++];
        s->name_off = c->head.len;
        s->name_len = 0;
        c->phase = PHASE_FIELD;
        if (count_header_bytes(c, 4) != 0) /* ": " and CRLF */
            return -1;
    }
    c->spans[c->span_count - 1].name_len += len;
    return buffer_append(&c->head, at, len) == 0 ? 0 : parse_reject(c, 500);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (count_header_bytes(c, len) != 0)
        return -1;
    if (c->headers_done || c->span_count == 0)
        return 0;
    header_span *s = &c->spans[c->span_count - 1];
    if (c->phase == PHASE_FIELD) {
        if (buffer_append_byte(&c->head, 0) != 0)
            return parse_reject(c, 500);
        s->value_off = c->head.len;
        s->value_len = 0;
        c->phase = PHASE_VALUE;
    }
    s->value_len += len;
    return buffer_append(&c->head, at, len) == 0 ? 0 : parse_reject(c, 500);
}

static const char *find_header(const http_header *headers, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcasecmp(headers[i].name, name) == 0)
            return headers[i].value;
    return NULL;
}

/* Splits the request target into path and query (copied after it in conn.head). */
static int target_split(http_conn *c, size_t *path_off, size_t *query_off)
{
    const char *url = (const char *)c->head.data;
    size_t url_len = c->url_len;
    size_t p_off = 0, p_len = 0, q_off = 0, q_len = 0;
    if (url_len > 0 && url[0] == '/') {
        const char *q = memchr(url, '?', url_len);
        const char *hash = memchr(url, '#', url_len);
        size_t end = hash ? (size_t)(hash - url) : url_len;
        if (q && (size_t)(q - url) < end) {
            p_len = (size_t)(q - url);
            q_off = p_len + 1;
            q_len = end - q_off;
        } else {
            p_len = end;
        }
    } else if (url_len == 1 && url[0] == '*') {
        p_len = 1;
    } else {
        /* Absolute form (what a proxy would send): keep only path and query. */
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(url, url_len, 0, &u) != 0 || !(u.field_set & (1 << UF_HOST)))
            return -1;
        if (u.field_set & (1 << UF_PATH)) {
            p_off = u.field_data[UF_PATH].off;
            p_len = u.field_data[UF_PATH].len;
        }
        if (u.field_set & (1 << UF_QUERY)) {
            q_off = u.field_data[UF_QUERY].off;
            q_len = u.field_data[UF_QUERY].len;
        }
    }
    /* The copies are appended from the buffer itself, which may move: copy through offsets. */
    if (buffer_reserve(&c->head, p_len + q_len + 3) != 0)
        return -2;
    url = (const char *)c->head.data;
    *path_off = c->head.len;
    if (p_len == 0)
        buffer_append_byte(&c->head, '/');
    else
        buffer_append(&c->head, url + p_off, p_len);
    buffer_append_byte(&c->head, 0);
    *query_off = c->head.len;
    buffer_append(&c->head, url + q_off, q_len);
    buffer_append_byte(&c->head, 0);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    http_conn *c = p->data;
    const http_server_config *cfg = c->worker->cfg;
    if (header_finish_previous(c) != 0)
        return parse_reject(c, 500);
    c->headers_done = true;
    if (p->http_major != 1)
        return parse_reject(c, 505);
    if (p->method == HTTP_CONNECT)
        return parse_reject(c, 501);
    size_t path_off, query_off;
    int rc = target_split(c, &path_off, &query_off);
    if (rc != 0)
        return parse_reject(c, rc == -1 ? 400 : 500);

    if (c->span_count > c->headers_cap) {
        http_header *headers = realloc(c->headers, c->span_count * sizeof *headers);
        if (!headers)
            return parse_reject(c, 500);
        c->headers = headers;
        c->headers_cap = c->span_count;
    }
    const char *base = (const char *)c->head.data;
    for (size_t i = 0; i < c->span_count; i++) {
        c->headers[i].name = base + c->spans[i].name_off;
        c->headers[i].value = base + c->spans[i].value_off;
    }
    http_request *req = &c->req;
    req->conn = c;
    req->method = http_method_str((enum http_method)p->method);
    req->target = base;
    req->path = base + path_off;
    req->query = base + query_off;
    req->headers = c->headers;
    req->header_count = c->span_count;

    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool has_length = (p->flags & F_CONTENTLENGTH) != 0;
    if (has_length && p->content_length > cfg->max_body_bytes)
        return parse_reject(c, 413);
    if (has_length && buffer_reserve(&c->body, (size_t)p->content_length + 1) != 0)
        return parse_reject(c, 500);

    const char *expect = find_header(c->headers, c->span_count, "expect");
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0)
            return parse_reject(c, 417);
        bool body_follows = chunked || (has_length && p->content_length > 0);
        if (p->http_minor >= 1 && body_follows && !c->continue_pending) {
            static const char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";
            uv_buf_t buf = uv_buf_init((char *)interim, sizeof interim - 1);
            c->continue_req.data = c;
            if (uv_write(&c->continue_req, (uv_stream_t *)&c->tcp, &buf, 1, on_continue_written) != 0)
                return parse_reject(c, 500);
            c->continue_pending = true;
        }
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (len > c->worker->cfg->max_body_bytes - c->body.len)
        return parse_reject(c, 413);
    return buffer_append(&c->body, at, len) == 0 ? 0 : parse_reject(c, 500);
}

static int on_message_complete(http_parser *p)
{
    http_conn *c = p->data;
    if (buffer_terminate(&c->body) != 0)
        return parse_reject(c, 500);
    c->req.body = c->body.data;
    c->req.body_len = c->body.len;
    /* An Upgrade request ends what we can parse on this connection. */
    bool upgrade = p->upgrade || ((p->flags & F_UPGRADE) && (p->flags & F_CONNECTION_UPGRADE));
    c->req_keep_alive = http_should_keep_alive(p) && !upgrade;
    c->req_head = p->method == HTTP_HEAD;
    c->req_minor = p->http_minor;
    /* One request at a time: stop here, the rest of the input waits for the response. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void conn_dispatch(http_conn *c)
{
    worker *w = c->worker;
    c->state = CONN_BUSY;
    c->deadline = 0;
    counter_add(&c->shared->requests, 1);
    conn_ref(c); /* held by the request until it is answered */
    c->in_handler = true;
    c->local_response_ready = false;
    w->cfg->handler(&c->req, w->cfg->handler_ctx);
    c->in_handler = false;
    if (c->local_response_ready) {
        c->local_response_ready = false;
        conn_response_arrived(c);
    }
}

/* Feeds input to the parser while the connection can take a request. Returns how many bytes
 * were used; the rest must be kept for later (or is discarded when the connection failed). */
static size_t conn_parse(http_conn *c, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len && !c->closing && (c->state == CONN_IDLE || c->state == CONN_READING)) {
        size_t n = http_parser_execute(&c->parser, &parser_settings, data + off, len - off);
        off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            conn_dispatch(c);
        } else if (e != HPE_OK) {
            int status = c->reject_status ? c->reject_status
                         : e == HPE_HEADER_OVERFLOW ? 431
                                                    : 400;
            conn_reject(c, status);
            return len;
        } else if (n == 0) {
            break;
        }
    }
    return off;
}

/* Keeps input that arrived while a request is handled; pauses reading when too much. */
static int conn_keep_input(http_conn *c, const char *data, size_t len)
{
    if (c->in_pos > 0) {
        memmove(c->in.data, c->in.data + c->in_pos, c->in.len - c->in_pos);
        c->in.len -= c->in_pos;
        c->in_pos = 0;
    }
    if (buffer_append(&c->in, data, len) != 0)
        return -1;
    if (c->in.len > PIPELINE_BUFFER_LIMIT && !c->read_paused) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->read_paused = true;
    }
    return 0;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    /* Reads are processed before the loop reads another socket, so one slab per worker. */
    worker *w = handle->loop->data;
    *buf = uv_buf_init(w->slab, sizeof w->slab);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    http_conn *c = stream->data;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        /* A client that half-closes after its request still gets the response being written;
         * one that leaves while its request is handled has aborted it. */
        if (nread == UV_EOF && c->state == CONN_WRITING) {
            c->read_eof = true;
            uv_read_stop(stream);
            return;
        }
        conn_close(c);
        return;
    }
    if (c->state == CONN_LINGER)
        return;
    const char *data = buf->base;
    size_t len = (size_t)nread;
    bool parsing = c->state == CONN_IDLE || c->state == CONN_READING;
    if (parsing && c->in_pos == c->in.len) {
        size_t used = conn_parse(c, data, len);
        data += used;
        len -= used;
        if (len == 0 || c->closing)
            return;
        parsing = false;
    }
    if (conn_keep_input(c, data, len) != 0) {
        conn_close(c);
        return;
    }
    if (parsing)
        conn_parse_buffered(c);
}

/* ---------- accepting (loop thread) ---------- */

static void on_rejected_closed(uv_handle_t *handle)
{
    free(handle);
}

static void reject_connection(worker *w)
{
    counter_add(&w->shared->connections_rejected, 1);
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (!tcp || uv_tcp_init(&w->loop, tcp) != 0) {
        free(tcp);
        return;
    }
    if (uv_accept((uv_stream_t *)&w->listener, (uv_stream_t *)tcp) == 0) {
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)busy, sizeof busy - 1);
        uv_try_write((uv_stream_t *)tcp, &b, 1);
    }
    uv_close((uv_handle_t *)tcp, on_rejected_closed);
}

static void on_connection(uv_stream_t *listener, int status)
{
    worker *w = listener->data;
    if (status < 0) {
        log_warn("http accept failed", "error=\"%s\"", uv_strerror(status));
        return;
    }
    if (w->stopping)
        return;
    if (w->open_count >= w->cfg->max_connections) {
        reject_connection(w);
        return;
    }
    http_conn *c = calloc(1, sizeof *c);
    if (!c) {
        reject_connection(w);
        return;
    }
    if (uv_tcp_init(&w->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    c->worker = w;
    c->shared = w->shared;
    atomic_fetch_add_explicit(&w->shared->refs, 1, memory_order_relaxed);
    atomic_init(&c->refs, 1);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->open_count++;
    counter_add(&w->shared->connections_open, 1);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    counter_add(&w->shared->connections_accepted, 1);
    uv_tcp_nodelay(&c->tcp, 1);
    int peer_len = sizeof c->peer;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &peer_len) != 0)
        c->peer.ss_family = AF_UNSPEC;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->state = CONN_IDLE;
    c->deadline = uv_now(&w->loop) + w->cfg->idle_timeout_ms;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

/* ---------- worker loop ---------- */

static void on_sweep(uv_timer_t *timer)
{
    worker *w = timer->data;
    uint64_t now = uv_now(&w->loop);
    for (http_conn *c = w->conns; c; c = c->next) {
        if (c->closing || c->deadline == 0 || now < c->deadline)
            continue;
        if (c->state == CONN_READING)
            conn_reject(c, 408);
        else
            conn_close(c);
    }
}

static void on_stop_timeout(uv_timer_t *timer)
{
    worker *w = timer->data;
    for (http_conn *c = w->conns; c; c = c->next)
        conn_close(c);
}

static void worker_maybe_finish(worker *w)
{
    if (!w->stopping || w->finished || w->open_count > 0)
        return;
    w->finished = true;
    uv_close((uv_handle_t *)&w->sweep_timer, NULL);
    uv_close((uv_handle_t *)&w->stop_timer, NULL);
    worker_shared *sh = w->shared;
    pthread_mutex_lock(&sh->lock);
    atomic_store_explicit(&sh->alive, false, memory_order_release);
    http_conn *ready = sh->ready_head;
    sh->ready_head = sh->ready_tail = NULL;
    sh->wake = NULL;
    pthread_mutex_unlock(&sh->lock);
    while (ready) {
        http_conn *next = ready->ready_next;
        counter_add(&sh->responses_dropped, 1);
        response_release_body(ready);
        conn_release(ready);
        ready = next;
    }
    uv_close((uv_handle_t *)&w->wake, NULL);
}

static void worker_begin_stop(worker *w)
{
    w->stopping = true;
    uv_close((uv_handle_t *)&w->listener, NULL);
    for (http_conn *c = w->conns; c; c = c->next)
        if (c->state == CONN_IDLE)
            conn_close(c);
    uv_timer_start(&w->stop_timer, on_stop_timeout, w->cfg->stop_timeout_ms, 0);
    worker_maybe_finish(w);
}

static void on_wake(uv_async_t *async)
{
    worker *w = async->data;
    worker_shared *sh = w->shared;
    pthread_mutex_lock(&sh->lock);
    http_conn *ready = sh->ready_head;
    sh->ready_head = sh->ready_tail = NULL;
    bool stop = sh->stop_requested;
    pthread_mutex_unlock(&sh->lock);
    while (ready) {
        http_conn *next = ready->ready_next;
        conn_response_arrived(ready);
        ready = next;
    }
    if (stop && !w->stopping)
        worker_begin_stop(w);
}

static void worker_main(void *arg)
{
    worker *w = arg;
    w->shared->thread = pthread_self();
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

/* ---------- setup ---------- */

static int listen_address_parse(const char *text, struct sockaddr_storage *addr, error *err)
{
    if (!text)
        return error_set(err, "no listen address");
    char host[64];
    const char *port_text;
    size_t host_len;
    bool v6 = text[0] == '[';
    if (v6) {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return error_set(err, "listen address %.80s: want [v6 address]:port", text);
        host_len = (size_t)(close - text - 1);
        if (host_len >= sizeof host)
            return error_set(err, "listen address %.80s: host too long", text);
        memcpy(host, text + 1, host_len);
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon)
            return error_set(err, "listen address %.80s: want host:port", text);
        host_len = (size_t)(colon - text);
        if (host_len >= sizeof host)
            return error_set(err, "listen address %.80s: host too long", text);
        memcpy(host, text, host_len);
        port_text = colon + 1;
    }
    host[host_len] = 0;
    char *end;
    errno = 0;
    unsigned long port = strtoul(port_text, &end, 10);
    if (!port_text[0] || *end || errno || port > 65535 || port_text[0] == '-' || port_text[0] == '+')
        return error_set(err, "listen address %.80s: bad port", text);
    memset(addr, 0, sizeof *addr);
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return error_set(err, "listen address %.80s: bad IPv6 address", text);
        return 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)addr;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (host[0] == 0 || strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    else if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return error_set(err, "listen address %.80s: not a numeric IPv4 address", text);
    return 0;
}

static socklen_t sockaddr_length(const struct sockaddr_storage *addr)
{
    return addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* libuv 1.44 cannot ask for SO_REUSEPORT, so the socket is made here and handed to it. */
static int listen_socket_open(struct sockaddr_storage *addr, int backlog, error *err)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return error_set(err, "socket: %s", strerror(errno));
    int one = 1, zero = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        (addr->ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0)) {
        error_set(err, "setsockopt: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (bind(fd, (struct sockaddr *)addr, sockaddr_length(addr)) != 0) {
        error_set(err, "bind: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, backlog) != 0) {
        error_set(err, "listen: %s", strerror(errno));
        close(fd);
        return -1;
    }
    /* With port 0 the first socket picks the port; the others must join that one. */
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) != 0) {
        error_set(err, "getsockname: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (addr->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)addr)->sin6_port = ((struct sockaddr_in6 *)&bound)->sin6_port;
    else
        ((struct sockaddr_in *)addr)->sin_port = ((struct sockaddr_in *)&bound)->sin_port;
    return fd;
}

/* Tears down a worker whose thread never ran (or has been joined). */
static void worker_destroy(worker *w)
{
    if (!w)
        return;
    if (w->loop_ready) {
        if (!w->thread_started) {
            if (w->listener_ready)
                uv_close((uv_handle_t *)&w->listener, NULL);
            if (w->wake_ready)
                uv_close((uv_handle_t *)&w->wake, NULL);
            if (w->timers_ready) {
                uv_close((uv_handle_t *)&w->sweep_timer, NULL);
                uv_close((uv_handle_t *)&w->stop_timer, NULL);
            }
            uv_run(&w->loop, UV_RUN_DEFAULT);
        }
        if (uv_loop_close(&w->loop) != 0)
            log_error("http worker loop still has open handles", "");
    }
    if (w->shared) {
        if (!w->thread_started)
            atomic_store(&w->shared->alive, false);
        shared_release(w->shared);
    }
    free(w);
}

static worker *worker_create(http_server *s, struct sockaddr_storage *addr, error *err)
{
    const http_server_config *cfg = &s->config;
    worker *w = calloc(1, sizeof *w);
    worker_shared *sh = calloc(1, sizeof *sh);
    if (!w || !sh) {
        free(w);
        free(sh);
        error_set(err, "out of memory");
        return NULL;
    }
    w->server = s;
    w->cfg = cfg;
    w->shared = sh;
    pthread_mutex_init(&sh->lock, NULL);
    atomic_init(&sh->refs, 1);
    atomic_init(&sh->alive, true);
    sh->wake = &w->wake;
    uint64_t linger = cfg->read_timeout_ms < LINGER_MAX_MS ? cfg->read_timeout_ms : LINGER_MAX_MS;
    w->linger_ms = linger;

    int fd = listen_socket_open(addr, cfg->backlog, err);
    if (fd < 0) {
        worker_destroy(w);
        return NULL;
    }
    int rc = uv_loop_init(&w->loop);
    if (rc != 0) {
        close(fd);
        worker_destroy(w);
        error_set(err, "uv_loop_init: %s", uv_strerror(rc));
        return NULL;
    }
    w->loop_ready = true;
    w->loop.data = w;
    rc = uv_tcp_init(&w->loop, &w->listener);
    if (rc != 0) {
        close(fd);
        worker_destroy(w);
        error_set(err, "uv_tcp_init: %s", uv_strerror(rc));
        return NULL;
    }
    w->listener_ready = true;
    w->listener.data = w;
    rc = uv_tcp_open(&w->listener, fd);
    if (rc != 0) {
        close(fd);
        worker_destroy(w);
        error_set(err, "uv_tcp_open: %s", uv_strerror(rc));
        return NULL;
    }
    rc = uv_listen((uv_stream_t *)&w->listener, cfg->backlog, on_connection);
    if (rc == 0)
        rc = uv_async_init(&w->loop, &w->wake, on_wake);
    if (rc != 0) {
        worker_destroy(w);
        error_set(err, "listen: %s", uv_strerror(rc));
        return NULL;
    }
    w->wake_ready = true;
    w->wake.data = w;
    uv_timer_init(&w->loop, &w->sweep_timer);
    uv_timer_init(&w->loop, &w->stop_timer);
    w->timers_ready = true;
    w->sweep_timer.data = w;
    w->stop_timer.data = w;
    /* Deadlines are checked by one sweep per worker rather than a timer per connection:
     * resetting a timer on every request costs more than scanning a list a few times a second. */
    uint64_t shortest = cfg->idle_timeout_ms < cfg->read_timeout_ms ? cfg->idle_timeout_ms
                                                                    : cfg->read_timeout_ms;
    if (w->linger_ms < shortest)
        shortest = w->linger_ms;
    uint64_t interval = shortest / 4;
    interval = interval < 5 ? 5 : interval > 1000 ? 1000 : interval;
    uv_timer_start(&w->sweep_timer, on_sweep, interval, interval);
    return w;
}

http_server *http_server_start(const http_server_config *config, error *err)
{
    if (!config || !config->handler) {
        error_set(err, "http server needs a handler");
        return NULL;
    }
    struct sockaddr_storage addr;
    if (listen_address_parse(config->listen, &addr, err) != 0)
        return NULL;
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        error_set(err, "out of memory");
        return NULL;
    }
    s->config = *config;
    http_server_config *cfg = &s->config;
    cfg->listen = NULL;
    if (!cfg->threads)
        cfg->threads = 1;
    if (cfg->threads > 256)
        cfg->threads = 256;
    if (!cfg->max_body_bytes)
        cfg->max_body_bytes = 1 << 20;
    if (!cfg->max_header_bytes)
        cfg->max_header_bytes = 16 << 10;
    if (!cfg->max_url_bytes)
        cfg->max_url_bytes = 8 << 10;
    if (!cfg->max_headers)
        cfg->max_headers = 100;
    if (!cfg->idle_timeout_ms)
        cfg->idle_timeout_ms = 60000;
    if (!cfg->read_timeout_ms)
        cfg->read_timeout_ms = 30000;
    if (!cfg->max_connections)
        cfg->max_connections = 10000;
    if (!cfg->stop_timeout_ms)
        cfg->stop_timeout_ms = 5000;
    if (cfg->backlog <= 0)
        cfg->backlog = 1024;

    s->workers = calloc(cfg->threads, sizeof *s->workers);
    if (!s->workers) {
        free(s);
        error_set(err, "out of memory");
        return NULL;
    }
    for (unsigned i = 0; i < cfg->threads; i++) {
        s->workers[i] = worker_create(s, &addr, err);
        if (!s->workers[i]) {
            error_wrap(err, "http server on %s", config->listen);
            for (unsigned j = 0; j < i; j++)
                worker_destroy(s->workers[j]);
            free(s->workers);
            free(s);
            return NULL;
        }
        s->worker_count = i + 1;
    }
    s->port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                               : ((struct sockaddr_in *)&addr)->sin_port);
    for (unsigned i = 0; i < s->worker_count; i++) {
        worker *w = s->workers[i];
        if (uv_thread_create(&w->thread, worker_main, w) != 0) {
            error_set(err, "http server: cannot start worker thread");
            /* Started workers are stopped the normal way; the others torn down directly. */
            for (unsigned j = i; j < s->worker_count; j++)
                worker_destroy(s->workers[j]);
            s->worker_count = i;
            http_server_stop(s);
            return NULL;
        }
        w->thread_started = true;
    }
    log_info("http server listening", "port=%u threads=%u", s->port, s->worker_count);
    return s;
}

uint16_t http_server_port(const http_server *server)
{
    return server->port;
}

void http_server_stop(http_server *server)
{
    if (!server)
        return;
    for (unsigned i = 0; i < server->worker_count; i++) {
        worker_shared *sh = server->workers[i]->shared;
        pthread_mutex_lock(&sh->lock);
        sh->stop_requested = true;
        if (atomic_load(&sh->alive))
            uv_async_send(sh->wake);
        pthread_mutex_unlock(&sh->lock);
    }
    for (unsigned i = 0; i < server->worker_count; i++) {
        uv_thread_join(&server->workers[i]->thread);
        worker_destroy(server->workers[i]);
    }
    free(server->workers);
    free(server);
}

void http_server_stats_read(const http_server *server, http_server_stats *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < server->worker_count; i++) {
        worker_shared *sh = server->workers[i]->shared;
        out->connections_accepted += atomic_load_explicit(&sh->connections_accepted, memory_order_relaxed);
        out->connections_rejected += atomic_load_explicit(&sh->connections_rejected, memory_order_relaxed);
        out->connections_open += atomic_load_explicit(&sh->connections_open, memory_order_relaxed);
        out->requests += atomic_load_explicit(&sh->requests, memory_order_relaxed);
        out->responses_dropped += atomic_load_explicit(&sh->responses_dropped, memory_order_relaxed);
        out->errors_sent += atomic_load_explicit(&sh->errors_sent, memory_order_relaxed);
    }
}

/* ---------- request accessors ---------- */

const char *http_request_method(const http_request *req)
{
    return req->method;
}

const char *http_request_target(const http_request *req)
{
    return req->target;
}

const char *http_request_path(const http_request *req)
{
    return req->path;
}

const char *http_request_query(const http_request *req)
{
    return req->query;
}

const char *http_request_header(const http_request *req, const char *name)
{
    return find_header(req->headers, req->header_count, name);
}

const http_header *http_request_headers(const http_request *req, size_t *count)
{
    *count = req->header_count;
    return req->headers;
}

const uint8_t *http_request_body(const http_request *req, size_t *len)
{
    *len = req->body_len;
    return req->body;
}

int http_request_peer(const http_request *req, char *out, size_t out_len)
{
    const struct sockaddr_storage *peer = &req->conn->peer;
    char host[INET6_ADDRSTRLEN];
    if (peer->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)peer;
        if (!inet_ntop(AF_INET, &a->sin_addr, host, sizeof host))
            return -1;
        snprintf(out, out_len, "%s:%u", host, ntohs(a->sin_port));
        return 0;
    }
    if (peer->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)peer;
        if (!inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host))
            return -1;
        snprintf(out, out_len, "[%s]:%u", host, ntohs(a->sin6_port));
        return 0;
    }
    return -1;
}

/* ---------- router ---------- */

typedef struct route {
    char *method; /* NULL: any */
    char *pattern;
    size_t match_len;
    bool prefix;
    http_handler handler;
    void *ctx;
} route;

struct http_router {
    route *routes;
    size_t count, cap;
};

http_router *http_router_new(void)
{
    return calloc(1, sizeof(http_router));
}

int http_router_add(http_router *router, const char *method, const char *pattern,
                    http_handler handler, void *ctx)
{
    if (!router || !pattern || !handler)
        return -1;
    if (router->count == router->cap) {
        size_t cap = router->cap ? router->cap * 2 : 8;
        route *routes = realloc(router->routes, cap * sizeof *routes);
        if (!routes)
            return -1;
        router->routes = routes;
        router->cap = cap;
    }
    route *r = &router->routes[router->count];
    memset(r, 0, sizeof *r);
    r->pattern = strdup(pattern);
    r->method = method ? strdup(method) : NULL;
    if (!r->pattern || (method && !r->method)) {
        free(r->pattern);
        free(r->method);
        return -1;
    }
    size_t len = strlen(pattern);
    r->prefix = len > 0 && pattern[len - 1] == '*';
    r->match_len = r->prefix ? len - 1 : len;
    r->handler = handler;
    r->ctx = ctx;
    router->count++;
    return 0;
}

static bool route_path_matches(const route *r, const char *path)
{
    if (r->prefix)
        return strncmp(path, r->pattern, r->match_len) == 0;
    return strcmp(path, r->pattern) == 0;
}

static bool route_method_matches(const route *r, const char *method)
{
    if (!r->method || strcmp(r->method, method) == 0)
        return true;
    /* HEAD is GET without the body, which the server strips. */
    return strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0;
}

void http_router_handle(http_request *req, void *arg)
{
    http_router *router = arg;
    const char *path = http_request_path(req);
    const char *method = http_request_method(req);
    char allow[256] = "";
    size_t allow_len = 0;
    for (size_t i = 0; i < router->count; i++) {
        const route *r = &router->routes[i];
        if (!route_path_matches(r, path))
            continue;
        if (route_method_matches(r, method)) {
            r->handler(req, r->ctx);
            return;
        }
        size_t m = strlen(r->method);
        if (!strstr(allow, r->method) && allow_len + m + 3 < sizeof allow) {
            if (allow_len) {
                memcpy(allow + allow_len, ", ", 2);
                allow_len += 2;
            }
            memcpy(allow + allow_len, r->method, m + 1);
            allow_len += m;
        }
    }
    if (allow_len == 0) {
        http_respond_text(req, 404, "not found\n");
        return;
    }
    const http_header headers[] = {
        {"Allow", allow},
        {"Content-Type", "text/plain; charset=utf-8"},
        {NULL, NULL},
    };
    static const char text[] = "method not allowed\n";
    http_respond(req, 405, headers, text, sizeof text - 1);
}

void http_router_free(http_router *router)
{
    if (!router)
        return;
    for (size_t i = 0; i < router->count; i++) {
        free(router->routes[i].method);
        free(router->routes[i].pattern);
    }
    free(router->routes);
    free(router);
}
