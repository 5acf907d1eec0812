/* tegula load: a load generator that behaves like many careful CAs at once.
 *
 * Worker threads (--threads) each run one libuv loop holding their share of --clients
 * keep-alive HTTP/1.1 connections, one request in flight per connection. Every submission is a
 * chain minted on the spot (one certgen per thread, so no locks) or, with --dup-ratio, a chain
 * accepted earlier whose answer must come back byte-identical. Every SCT is verified with the
 * log key over the rebuilt entry (load_sct.h). 503 answers are retried after their
 * Retry-After (capped), a bounded number of times. At the end it prints throughput, latency
 * percentiles, errors by kind and CPU seconds per 1,000 submissions for the tegula-* server
 * processes and for itself, plus one machine-readable RESULT line. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <http_parser.h>
#include <openssl/rand.h>
#include <uv.h>

#include "base64.h"
#include "buffer.h"
#include "certgen.h"
#include "commands.h"
#include "keys.h"
#include "load_sct.h"

#define MAX_CLIENTS 100000
#define MAX_THREADS 64
#define MAX_RESPONSE_BODY (64 * 1024)
#define DUP_RING_SIZE 1024
#define TICK_MS 20
#define OUT_FLUSH_BYTES (64 * 1024)
#define MAX_BACKOFF_S 1.0

/* ---- outcome kinds ---- */

/* What happened to a request. The first group are errors (they count against --max-errors);
 * the rest are informational. */
#define LOAD_KINDS(X)                                                                    \
    X(CONNECT, "connect", true)       /* could not connect (the chain is kept) */        \
    X(RESET, "reset", true)           /* connection lost before a whole answer */        \
    X(TIMEOUT, "timeout", true)       /* no answer within --timeout */                   \
    X(HTTP_400, "http_400", true)                                                        \
    X(HTTP_413, "http_413", true)                                                        \
    X(HTTP_4XX, "http_4xx", true)                                                        \
    X(HTTP_500, "http_500", true)                                                        \
    X(HTTP_503, "http_503", true)     /* still 503 after --retries */                    \
    X(HTTP_5XX, "http_5xx", true)                                                        \
    X(HTTP_OTHER, "http_other", true)                                                    \
    X(BAD_HTTP, "bad_http", true)     /* unparseable HTTP answer */                      \
    X(BAD_SCT, "bad_sct", true)       /* 200 whose SCT does not verify */                \
    X(DUP_DIFFERS, "dup_differs", true) /* a resubmission got different SCT bytes */     \
    X(MINT, "mint", true)             /* could not make a chain */                       \
    X(RETRIED_503, "retried_503", false) /* 503 answers that were retried */             \
    X(RETRY_AFTER, "retry_after", false) /* 503 answers carrying Retry-After */          \
    X(DUP_OK, "dup_identical", false)    /* resubmissions answered byte-identically */   \
    X(ABANDONED, "abandoned", false)     /* a retry pending when the run stopped */

typedef enum load_kind {
#define X(id, name, is_error) KIND_##id,
    LOAD_KINDS(X)
#undef X
        KIND_COUNT
} load_kind;

static const char *const kind_names[KIND_COUNT] = {
#define X(id, name, is_error) name,
    LOAD_KINDS(X)
#undef X
};
static const bool kind_is_error[KIND_COUNT] = {
#define X(id, name, is_error) is_error,
    LOAD_KINDS(X)
#undef X
};

/* ---- options and shared state ---- */

typedef struct load_options {
    const char *url, *ca_dir, *key_path, *out_scts;
    unsigned clients, threads;
    double duration;     /* seconds; 0 = until --count */
    uint64_t count;      /* submissions; 0 = until --duration */
    double precert_ratio, dup_ratio;
    time_t not_after;    /* 0: certgen's default */
    certgen_key_type leaf_type;
    bool no_root;
    unsigned retries;
    double retry_after_max;
    double timeout;
    uint64_t max_errors;
    double report_interval;
    pid_t cpu_of;        /* 0: every tegula-* process of this user */
    bool quiet;
} load_options;

typedef struct load_shared {
    const load_options *opt;
    EVP_PKEY *key;
    uint8_t log_id[32];
    struct sockaddr_storage addr;
    char host[300];
    char path_chain[1100], path_prechain[1100];
    uint64_t t_start_ns;
    uint64_t deadline_ns; /* 0: none */
    atomic_uint_fast64_t claimed;
    atomic_uint_fast64_t ok;
    atomic_uint_fast64_t errors;
    atomic_uint_fast64_t retried;
    atomic_int stop;      /* 1: start nothing new; 2: abort everything now */
    pthread_mutex_t out_lock;
    FILE *out;
    bool out_failed;
} load_shared;

/* ---- per-thread state ---- */

typedef struct load_worker load_worker;

typedef enum conn_state { CONN_NONE, CONN_CONNECTING, CONN_OPEN, CONN_CLOSING } conn_state;
typedef enum req_state { REQ_IDLE, REQ_IN_FLIGHT, REQ_WAITING } req_state;

typedef struct load_client {
    load_worker *w;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    conn_state conn;
    req_state req;
    bool write_pending;
    bool finished, counted_done;
    double backoff;
    uint64_t wake_at_ns;
    uint64_t sent_at_ns;

    /* The submission being sent (kept across 503 retries and failed connects). */
    bool has_sub, precert, dup;
    unsigned attempts;
    buffer leaf, body, expect, head;

    /* The answer being read. */
    http_parser parser;
    bool complete, in_retry_after, has_retry_after, body_too_big, last_was_value;
    char field[32];
    size_t field_len;
    bool field_truncated;
    char value[32]; /* the Retry-After value */
    size_t value_len;
    buffer resp;
} load_client;

typedef struct dup_entry {
    bool used, precert;
    buffer leaf, body, response;
} dup_entry;

struct load_worker {
    load_shared *sh;
    unsigned id;
    pthread_t thread;
    uv_loop_t loop;
    uv_timer_t tick;
    bool loop_ready, tick_ready;
    certgen *gen;
    uint8_t issuer_key_hash[32];
    load_client *clients;
    unsigned nclients;
    atomic_uint active; /* clients not finished; read by the main thread */
    load_sct_scratch scratch;
    uint64_t rng;
    char read_buf[64 * 1024];

    uint64_t kinds[KIND_COUNT];
    char samples[KIND_COUNT][200]; /* first message seen per kind */
    uint64_t ok, ok_precert;
    uint32_t *lat_us;
    size_t lat_len, lat_cap;
    uint64_t last_done_ns;
    dup_entry ring[DUP_RING_SIZE];
    size_t ring_next, ring_used;
    buffer out_lines;
};

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: plenty for choosing ratios and names. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static void note_kind(load_worker *w, load_kind k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_kind(load_worker *w, load_kind k, const char *fmt, ...)
{
    w->kinds[k]++;
    if (kind_is_error[k])
        atomic_fetch_add(&w->sh->errors, 1);
    if (fmt && w->samples[k][0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->samples[k], sizeof w->samples[k], fmt, ap);
        va_end(ap);
        if (w->samples[k][0] == '\0')
            snprintf(w->samples[k], sizeof w->samples[k], "-");
    }
}

static void flush_out_lines(load_worker *w)
{
    load_shared *sh = w->sh;
    if (!sh->out || w->out_lines.len == 0)
        return;
    pthread_mutex_lock(&sh->out_lock);
    if (fwrite(w->out_lines.data, 1, w->out_lines.len, sh->out) != w->out_lines.len)
        sh->out_failed = true;
    pthread_mutex_unlock(&sh->out_lock);
    buffer_reset(&w->out_lines);
}

static bool stopping(const load_shared *sh, uint64_t now)
{
    return atomic_load(&sh->stop) != 0 || (sh->deadline_ns && now >= sh->deadline_ns);
}

/* ---- the client state machine ---- */

static void client_kick(load_client *c);
static void client_close(load_client *c);

static void client_finish(load_client *c)
{
    c->finished = true;
    if (c->has_sub) {
        note_kind(c->w, KIND_ABANDONED, NULL);
        c->has_sub = false;
    }
    if (c->conn == CONN_CONNECTING || c->conn == CONN_OPEN) {
        client_close(c);
        return;
    }
    if (c->conn == CONN_NONE && !c->counted_done) {
        c->counted_done = true;
        c->w->active--;
    }
}

static void on_close(uv_handle_t *h)
{
    load_client *c = h->data;
    c->conn = CONN_NONE;
    if (c->req == REQ_IN_FLIGHT) {
        note_kind(c->w, KIND_RESET, "connection closed");
        c->req = REQ_IDLE;
        c->has_sub = false;
    }
    if (c->finished) {
        if (!c->counted_done) {
            c->counted_done = true;
            c->w->active--;
        }
        return;
    }
    client_kick(c);
}

static void client_close(load_client *c)
{
    if (c->conn != CONN_CONNECTING && c->conn != CONN_OPEN)
        return;
    c->conn = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

/* Gives the client its next submission: a resubmission of an accepted chain (--dup-ratio) or
 * a freshly minted one. false when the run is over for this client. */
static bool client_acquire(load_client *c)
{
    load_worker *w = c->w;
    load_shared *sh = w->sh;
    const load_options *opt = sh->opt;
    if (stopping(sh, uv_hrtime()))
        return false;
    if (opt->count && atomic_fetch_add(&sh->claimed, 1) >= opt->count)
        return false;
    buffer_reset(&c->leaf);
    buffer_reset(&c->body);
    buffer_reset(&c->expect);
    c->attempts = 0;
    c->dup = false;
    if (opt->dup_ratio > 0 && w->ring_used > 0 && rng_unit(&w->rng) < opt->dup_ratio) {
        dup_entry *d = &w->ring[rng_next(&w->rng) % w->ring_used];
        if (buffer_append(&c->leaf, d->leaf.data, d->leaf.len) != 0 ||
            buffer_append(&c->body, d->body.data, d->body.len) != 0 ||
            buffer_append(&c->expect, d->response.data, d->response.len) != 0) {
            note_kind(w, KIND_MINT, "out of memory");
            return true; /* retried on the next kick */
        }
        c->precert = d->precert;
        c->dup = true;
        c->has_sub = true;
        return true;
    }
    c->precert = opt->precert_ratio > 0 && rng_unit(&w->rng) < opt->precert_ratio;
    char san[64];
    uint8_t name[8];
    uint64_t r = rng_next(&w->rng);
    memcpy(name, &r, sizeof name);
    char hex[17];
    hex_encode(hex, name, sizeof name);
    snprintf(san, sizeof san, "%s.load.tegula.test", hex);
    const char *sans[1] = {san};
    certgen_leaf leaf = {
        .precert = c->precert, .sans = sans, .san_count = 1, .not_after = opt->not_after};
    error err = {{0}};
    if (certgen_mint(w->gen, &leaf, &c->leaf, &err) != 0 ||
        certgen_chain_json(w->gen, c->leaf.data, c->leaf.len, !opt->no_root, &c->body) != 0) {
        note_kind(w, KIND_MINT, "%s", err.msg[0] ? err.msg : "out of memory");
        atomic_store(&sh->stop, 2); /* minting does not get better by retrying */
        return false;
    }
    c->has_sub = true;
    return true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    load_client *c = h->data;
    buf->base = c->w->read_buf;
    buf->len = sizeof c->w->read_buf;
}

static void on_write(uv_write_t *req, int status)
{
    load_client *c = req->data;
    c->write_pending = false;
    if (status < 0 && status != UV_ECANCELED && c->req == REQ_IN_FLIGHT) {
        note_kind(c->w, KIND_RESET, "write: %s", uv_strerror(status));
        c->req = REQ_IDLE;
        c->has_sub = false;
        client_close(c);
        return;
    }
    if (c->req == REQ_IDLE)
        client_kick(c);
}

static void client_send(load_client *c)
{
    load_shared *sh = c->w->sh;
    buffer_reset(&c->head);
    if (buffer_printf(&c->head,
                      "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      c->precert ? sh->path_prechain : sh->path_chain, sh->host,
                      c->body.len) != 0) {
        note_kind(c->w, KIND_MINT, "out of memory");
        c->has_sub = false;
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init((char *)c->head.data, (unsigned)c->head.len),
                        uv_buf_init((char *)c->body.data, (unsigned)c->body.len)};
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->complete = c->in_retry_after = c->has_retry_after = c->body_too_big = false;
    c->last_was_value = false;
    c->field_len = c->value_len = 0;
    c->value[0] = '\0';
    c->field_truncated = false;
    buffer_reset(&c->resp);
    c->attempts++;
    c->sent_at_ns = uv_hrtime();
    c->req = REQ_IN_FLIGHT;
    c->write_req.data = c;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, 2, on_write);
    if (rc < 0) {
        note_kind(c->w, KIND_RESET, "write: %s", uv_strerror(rc));
        c->req = REQ_IDLE;
        c->has_sub = false;
        client_close(c);
        return;
    }
    c->write_pending = true;
}

/* Connection failures keep the chain and try again after a growing pause. */
static void client_backoff(load_client *c)
{
    c->backoff = c->backoff <= 0 ? 0.05 : c->backoff * 2;
    if (c->backoff > MAX_BACKOFF_S)
        c->backoff = MAX_BACKOFF_S;
    c->wake_at_ns = uv_hrtime() + (uint64_t)(c->backoff * 1e9);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_connect(uv_connect_t *req, int status)
{
    load_client *c = req->data;
    if (c->conn != CONN_CONNECTING)
        return; /* closed meanwhile; on_close decides what comes next */
    if (status < 0) {
        note_kind(c->w, KIND_CONNECT, "%s", uv_strerror(status));
        client_backoff(c);
        client_close(c);
        return;
    }
    c->conn = CONN_OPEN;
    c->backoff = 0;
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        note_kind(c->w, KIND_CONNECT, "read: %s", uv_strerror(rc));
        client_backoff(c);
        client_close(c);
        return;
    }
    client_kick(c);
}

static void client_connect(load_client *c)
{
    load_worker *w = c->w;
    int rc = uv_tcp_init(&w->loop, &c->tcp);
    if (rc < 0) {
        note_kind(w, KIND_CONNECT, "%s", uv_strerror(rc));
        client_backoff(c);
        c->req = REQ_WAITING;
        return;
    }
    c->tcp.data = c;
    c->connect_req.data = c;
    c->conn = CONN_CONNECTING;
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&w->sh->addr,
                        on_connect);
    if (rc < 0) {
        note_kind(w, KIND_CONNECT, "%s", uv_strerror(rc));
        client_backoff(c);
        client_close(c);
    }
}

/* Moves the client on from wherever it stands; called after every event. */
static void client_kick(load_client *c)
{
    if (c->finished || c->conn == CONN_CLOSING || c->conn == CONN_CONNECTING)
        return;
    if (c->req == REQ_IN_FLIGHT || c->write_pending)
        return;
    uint64_t now = uv_hrtime();
    if (now < c->wake_at_ns) {
        c->req = REQ_WAITING;
        return;
    }
    c->req = REQ_IDLE;
    if (!c->has_sub && !client_acquire(c)) {
        client_finish(c);
        return;
    }
    if (!c->has_sub)
        return; /* out of memory: the tick tries again */
    if (c->conn == CONN_NONE) {
        client_connect(c);
        return;
    }
    client_send(c);
}

/* ---- reading answers ---- */

/* http_parser may hand a field or value over in pieces: a field callback after a value
 * callback starts a new header line. */
static int on_header_field(http_parser *p, const char *at, size_t len)
{
    load_client *c = p->data;
    if (c->last_was_value) {
        c->field_len = 0;
        c->field_truncated = false;
        c->last_was_value = false;
    }
    if (c->field_len + len >= sizeof c->field) {
        c->field_truncated = true;
        return 0;
    }
    memcpy(c->field + c->field_len, at, len);
    c->field_len += len;
    c->field[c->field_len] = '\0';
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    load_client *c = p->data;
    if (!c->last_was_value) {
        c->last_was_value = true;
        c->in_retry_after = !c->field_truncated && c->field_len == 11 &&
                            strncasecmp(c->field, "retry-after", 11) == 0;
        if (c->in_retry_after) {
            c->has_retry_after = true;
            c->value_len = 0;
            c->value[0] = '\0';
        }
    }
    if (c->in_retry_after && c->value_len + len < sizeof c->value) {
        memcpy(c->value + c->value_len, at, len);
        c->value_len += len;
        c->value[c->value_len] = '\0';
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    load_client *c = p->data;
    if (c->resp.len + len > MAX_RESPONSE_BODY) {
        c->body_too_big = true;
        return 0;
    }
    return buffer_append(&c->resp, at, len) == 0 ? 0 : -1;
}

static int on_message_complete(http_parser *p)
{
    load_client *c = p->data;
    c->complete = true;
    http_parser_pause(p, 1); /* one answer per request: never read past it */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void remember_for_dup(load_worker *w, load_client *c)
{
    dup_entry *d = &w->ring[w->ring_next];
    buffer_reset(&d->leaf);
    buffer_reset(&d->body);
    buffer_reset(&d->response);
    if (buffer_append(&d->leaf, c->leaf.data, c->leaf.len) != 0 ||
        buffer_append(&d->body, c->body.data, c->body.len) != 0 ||
        buffer_append(&d->response, c->resp.data, c->resp.len) != 0) {
        d->used = false;
        return;
    }
    d->precert = c->precert;
    if (!d->used) {
        d->used = true;
        w->ring_used++;
    }
    w->ring_next = (w->ring_next + 1) % DUP_RING_SIZE;
}

static void record_latency(load_worker *w, uint64_t ns)
{
    if (w->lat_len == w->lat_cap) {
        size_t cap = w->lat_cap ? w->lat_cap * 2 : 65536;
        uint32_t *p = realloc(w->lat_us, cap * sizeof *p);
        if (!p)
            return;
        w->lat_us = p;
        w->lat_cap = cap;
    }
    uint64_t us = ns / 1000;
    w->lat_us[w->lat_len++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void handle_ok(load_client *c, uint64_t now)
{
    load_worker *w = c->w;
    load_shared *sh = w->sh;
    load_submission sub = {.precert = c->precert, .leaf = c->leaf.data, .leaf_len = c->leaf.len};
    memcpy(sub.issuer_key_hash, w->issuer_key_hash, 32);
    load_sct_result res;
    error err = {{0}};
    if (load_sct_verify(sh->key, sh->log_id, &sub, (const char *)c->resp.data, c->resp.len,
                        &w->scratch, &res, &err) != 0) {
        note_kind(w, KIND_BAD_SCT, "%s", err.msg);
        return;
    }
    if (c->dup) {
        if (c->resp.len == c->expect.len && memcmp(c->resp.data, c->expect.data, c->resp.len) == 0)
            note_kind(w, KIND_DUP_OK, NULL);
        else
            note_kind(w, KIND_DUP_DIFFERS, "resubmission answered with a different SCT");
    }
    w->ok++;
    if (c->precert)
        w->ok_precert++;
    w->last_done_ns = now;
    atomic_fetch_add(&sh->ok, 1);
    record_latency(w, now - c->sent_at_ns);
    if (sh->out) {
        if (load_sct_format_line(&res, &w->out_lines) != 0)
            sh->out_failed = true;
        if (w->out_lines.len >= OUT_FLUSH_BYTES)
            flush_out_lines(w);
    }
    if (!c->dup && sh->opt->dup_ratio > 0)
        remember_for_dup(w, c);
}

static void handle_answer(load_client *c)
{
    load_worker *w = c->w;
    load_shared *sh = w->sh;
    uint64_t now = uv_hrtime();
    unsigned status = c->parser.status_code;
    bool keep_alive = http_should_keep_alive(&c->parser) != 0;
    c->req = REQ_IDLE;
    c->has_sub = false;
    if (c->body_too_big) {
        note_kind(w, KIND_BAD_HTTP, "answer body over %d bytes", MAX_RESPONSE_BODY);
        keep_alive = false;
    } else if (status == 200) {
        handle_ok(c, now);
    } else if (status == 503) {
        if (c->has_retry_after)
            note_kind(w, KIND_RETRY_AFTER, NULL);
        if (c->attempts <= sh->opt->retries && !stopping(sh, now)) {
            note_kind(w, KIND_RETRIED_503, NULL);
            atomic_fetch_add(&sh->retried, 1);
            double wait = 1.0;
            if (c->has_retry_after) {
                char *end;
                double v = strtod(c->value, &end);
                if (end != c->value && v >= 0)
                    wait = v;
            }
            if (wait > sh->opt->retry_after_max)
                wait = sh->opt->retry_after_max;
            c->has_sub = true;
            c->wake_at_ns = now + (uint64_t)(wait * 1e9);
        } else {
            note_kind(w, KIND_HTTP_503, "%.*s", (int)(c->resp.len > 150 ? 150 : c->resp.len),
                      (const char *)c->resp.data);
        }
    } else {
        load_kind k = status == 400   ? KIND_HTTP_400
                      : status == 413 ? KIND_HTTP_413
                      : status == 500 ? KIND_HTTP_500
                      : status >= 400 && status < 500 ? KIND_HTTP_4XX
                      : status >= 500 && status < 600 ? KIND_HTTP_5XX
                                                      : KIND_HTTP_OTHER;
        note_kind(w, k, "%u %.*s", status, (int)(c->resp.len > 150 ? 150 : c->resp.len),
                  (const char *)c->resp.data);
    }
    if (!keep_alive)
        client_close(c);
    else
        client_kick(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    load_client *c = s->data;
    if (c->conn != CONN_OPEN)
        return;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (c->req == REQ_IN_FLIGHT) {
            /* An answer delimited by the close is complete only now. */
            http_parser_execute(&c->parser, &parser_settings, NULL, 0);
            if (c->complete) {
                client_close(c); /* first, so handling the answer sends nothing on it */
                handle_answer(c);
                return;
            }
            note_kind(c->w, KIND_RESET, "%s", uv_strerror((int)nread));
            c->req = REQ_IDLE;
            c->has_sub = false;
        }
        client_close(c);
        return;
    }
    if (c->req != REQ_IN_FLIGHT) {
        note_kind(c->w, KIND_BAD_HTTP, "bytes received with no request outstanding");
        client_close(c);
        return;
    }
    size_t done = http_parser_execute(&c->parser, &parser_settings, buf->base, (size_t)nread);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->complete) {
        if (done < (size_t)nread) {
            /* bytes after the answer: the server is out of step with us */
            note_kind(c->w, KIND_BAD_HTTP, "extra bytes after an answer");
            c->has_sub = false;
            c->req = REQ_IDLE;
            client_close(c);
            return;
        }
        handle_answer(c);
        return;
    }
    if (e != HPE_OK) {
        note_kind(c->w, KIND_BAD_HTTP, "%s", http_errno_description(e));
        c->req = REQ_IDLE;
        c->has_sub = false;
        client_close(c);
    }
}

/* ---- the worker loop ---- */

static void on_tick(uv_timer_t *t)
{
    load_worker *w = t->data;
    load_shared *sh = w->sh;
    uint64_t now = uv_hrtime();
    int stop = atomic_load(&sh->stop);
    bool over = stopping(sh, now);
    uint64_t timeout_ns = (uint64_t)(sh->opt->timeout * 1e9);
    for (unsigned i = 0; i < w->nclients; i++) {
        load_client *c = &w->clients[i];
        if (c->finished)
            continue;
        if (stop == 2) {
            if (c->req == REQ_IN_FLIGHT) {
                note_kind(w, KIND_ABANDONED, NULL);
                c->req = REQ_IDLE;
                c->has_sub = false;
            }
            client_finish(c);
            continue;
        }
        if (c->req == REQ_IN_FLIGHT) {
            if (now - c->sent_at_ns > timeout_ns) {
                note_kind(w, KIND_TIMEOUT, "no answer in %.1f s", sh->opt->timeout);
                c->req = REQ_IDLE;
                c->has_sub = false;
                client_close(c);
            }
            continue;
        }
        if (over && c->conn != CONN_CONNECTING) {
            client_finish(c);
            continue;
        }
        if ((c->req == REQ_WAITING && now >= c->wake_at_ns) ||
            (c->req == REQ_IDLE && c->conn != CONN_CLOSING))
            client_kick(c);
    }
    if (w->active == 0)
        uv_timer_stop(t);
}

static void *worker_main(void *arg)
{
    load_worker *w = arg;
    uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
    for (unsigned i = 0; i < w->nclients; i++)
        client_kick(&w->clients[i]);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    flush_out_lines(w);
    return NULL;
}

static int worker_init(load_worker *w, load_shared *sh, unsigned id, unsigned nclients,
                       const certgen_ca *ca, error *err)
{
    w->sh = sh;
    w->id = id;
    w->gen = certgen_new(ca, sh->opt->leaf_type, err);
    if (!w->gen)
        return -1;
    certgen_issuer_key_hash(w->gen, w->issuer_key_hash);
    if (RAND_bytes((unsigned char *)&w->rng, sizeof w->rng) != 1)
        return error_set(err, "no randomness");
    w->rng |= 1;
    if (uv_loop_init(&w->loop) != 0)
        return error_set(err, "uv_loop_init failed");
    w->loop_ready = true;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    w->tick_ready = true;
    w->clients = calloc(nclients ? nclients : 1, sizeof *w->clients);
    if (!w->clients)
        return error_set(err, "out of memory");
    w->nclients = nclients;
    atomic_store(&w->active, nclients);
    for (unsigned i = 0; i < nclients; i++)
        w->clients[i].w = w;
    return 0;
}

static void worker_free(load_worker *w)
{
    if (w->loop_ready) {
        if (w->tick_ready)
            uv_close((uv_handle_t *)&w->tick, NULL);
        /* Handles still open (abort paths) close here. */
        for (unsigned i = 0; i < w->nclients; i++) {
            load_client *c = &w->clients[i];
            if (c->conn == CONN_OPEN || c->conn == CONN_CONNECTING) {
                c->finished = true;
                client_close(c);
            }
        }
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
    }
    for (unsigned i = 0; i < w->nclients; i++) {
        load_client *c = &w->clients[i];
        buffer_free(&c->leaf);
        buffer_free(&c->body);
        buffer_free(&c->expect);
        buffer_free(&c->head);
        buffer_free(&c->resp);
    }
    free(w->clients);
    for (size_t i = 0; i < DUP_RING_SIZE; i++) {
        buffer_free(&w->ring[i].leaf);
        buffer_free(&w->ring[i].body);
        buffer_free(&w->ring[i].response);
    }
    certgen_free(w->gen);
    load_sct_scratch_free(&w->scratch);
    buffer_free(&w->out_lines);
    free(w->lat_us);
}

/* ---- CPU accounting from /proc ---- */

typedef struct proc_info {
    pid_t pid, ppid;
    unsigned long long start, ticks;
    char name[32];
} proc_info;

typedef struct proc_table {
    proc_info *p;
    size_t n, cap;
} proc_table;

static int read_proc_stat(pid_t pid, proc_info *out)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    char *open = strchr(line, '('), *close = strrchr(line, ')');
    if (!open || !close || close < open)
        return -1;
    size_t name_len = (size_t)(close - open - 1);
    if (name_len >= sizeof out->name)
        name_len = sizeof out->name - 1;
    memcpy(out->name, open + 1, name_len);
    out->name[name_len] = '\0';
    /* Fields after the name, counted from 3 (state): ppid is 4, utime 14, stime 15,
     * starttime 22. */
    char *save = NULL, *tok = strtok_r(close + 1, " ", &save);
    unsigned long long utime = 0, stime = 0;
    for (int field = 3; tok; field++, tok = strtok_r(NULL, " ", &save)) {
        if (field == 4)
            out->ppid = (pid_t)strtol(tok, NULL, 10);
        else if (field == 14)
            utime = strtoull(tok, NULL, 10);
        else if (field == 15)
            stime = strtoull(tok, NULL, 10);
        else if (field == 22) {
            out->start = strtoull(tok, NULL, 10);
            break;
        }
    }
    out->pid = pid;
    out->ticks = utime + stime;
    return 0;
}

static void proc_table_scan(proc_table *t)
{
    t->n = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 256;
            proc_info *p = realloc(t->p, cap * sizeof *p);
            if (!p)
                break;
            t->p = p;
            t->cap = cap;
        }
        if (read_proc_stat((pid_t)pid, &t->p[t->n]) == 0)
            t->n++;
    }
    closedir(d);
}

static const proc_info *proc_find(const proc_table *t, pid_t pid)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->p[i].pid == pid)
            return &t->p[i];
    return NULL;
}

/* A tegula server process, below `root` when one is given. */
static bool proc_counted(const proc_table *t, const proc_info *p, pid_t root)
{
    if (strncmp(p->name, "tegula-", 7) != 0)
        return false;
    if (root == 0)
        return true;
    for (int depth = 0; p && depth < 64; depth++) {
        if (p->pid == root)
            return true;
        if (p->ppid <= 1)
            return false;
        p = proc_find(t, p->ppid);
    }
    return false;
}

/* CPU seconds of one program name (comm) among the counted processes. */
typedef struct proc_cpu_by_name {
    char name[32];
    double seconds;
    unsigned procs;
} proc_cpu_by_name;

#define MAX_PROC_NAMES 8

/* CPU ticks the counted processes spent between the two scans, in total and per program
 * name; processes that began during the run count whole. (A process that ended during the
 * run is lost: it is not in `after`.) */
static double proc_cpu_seconds(const proc_table *before, const proc_table *after, pid_t root,
                               unsigned *procs, proc_cpu_by_name *by_name, size_t *names)
{
    long hz = sysconf(_SC_CLK_TCK);
    double per_tick = 1.0 / (double)(hz > 0 ? hz : 100);
    unsigned long long ticks = 0;
    *procs = 0;
    *names = 0;
    for (size_t i = 0; i < after->n; i++) {
        const proc_info *p = &after->p[i];
        if (!proc_counted(after, p, root))
            continue;
        (*procs)++;
        const proc_info *b = proc_find(before, p->pid);
        unsigned long long t = p->ticks;
        if (b && b->start == p->start && b->ticks <= p->ticks)
            t -= b->ticks;
        ticks += t;
        size_t k = 0;
        while (k < *names && strcmp(by_name[k].name, p->name) != 0)
            k++;
        if (k == *names) {
            if (*names == MAX_PROC_NAMES)
                continue;
            memset(&by_name[k], 0, sizeof by_name[k]);
            snprintf(by_name[k].name, sizeof by_name[k].name, "%s", p->name);
            (*names)++;
        }
        by_name[k].seconds += (double)t * per_tick;
        by_name[k].procs++;
    }
    return (double)ticks * per_tick;
}

static double self_cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- setup and report ---- */

static int parse_url(load_shared *sh, const char *url, error *err)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, strlen(url), 0, &u) != 0 || !(u.field_set & (1 << UF_HOST)))
        return error_set(err, "--url %s is not an absolute http:// URL", url);
    if (!(u.field_set & (1 << UF_SCHEMA)) || u.field_data[UF_SCHEMA].len != 4 ||
        strncasecmp(url + u.field_data[UF_SCHEMA].off, "http", 4) != 0)
        return error_set(err, "--url %s: only http:// is supported", url);
    char host[256], port[8] = "80";
    size_t hl = u.field_data[UF_HOST].len;
    if (hl >= sizeof host)
        return error_set(err, "--url host too long");
    memcpy(host, url + u.field_data[UF_HOST].off, hl);
    host[hl] = '\0';
    if (u.field_set & (1 << UF_PORT))
        snprintf(port, sizeof port, "%u", u.port);
    const char *path = "/";
    size_t path_len = 1;
    if (u.field_set & (1 << UF_PATH)) {
        path = url + u.field_data[UF_PATH].off;
        path_len = u.field_data[UF_PATH].len;
    }
    if (path_len > 1000)
        return error_set(err, "--url path too long");
    const char *slash = path[path_len - 1] == '/' ? "" : "/";
    snprintf(sh->path_chain, sizeof sh->path_chain, "%.*s%sct/v1/add-chain", (int)path_len, path,
             slash);
    snprintf(sh->path_prechain, sizeof sh->path_prechain, "%.*s%sct/v1/add-pre-chain",
             (int)path_len, path, slash);
    bool v6 = strchr(host, ':') != NULL;
    snprintf(sh->host, sizeof sh->host, "%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return error_set(err, "resolving %s: %s", host, gai_strerror(rc));
    memcpy(&sh->addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_ms(const uint32_t *sorted, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)ceil(q * (double)n);
    if (i > 0)
        i--;
    if (i >= n)
        i = n - 1;
    return sorted[i] / 1000.0;
}

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted++;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

enum {
    OPT_CA_DIR = 256,
    OPT_DURATION,
    OPT_PRECERT_RATIO,
    OPT_DUP_RATIO,
    OPT_OUT_SCTS,
    OPT_NOT_AFTER,
    OPT_LEAF_KEY,
    OPT_NO_ROOT,
    OPT_RETRIES,
    OPT_RETRY_AFTER_MAX,
    OPT_TIMEOUT,
    OPT_MAX_ERRORS,
    OPT_REPORT,
    OPT_CPU_OF,
    OPT_QUIET,
};

static int run_load(const tool_command *self, int argc, char **argv)
{
    load_options opt = {
        .clients = 64,
        .threads = 2,
        .precert_ratio = 0.2,
        .leaf_type = CERTGEN_KEY_P256,
        .retries = 10,
        .retry_after_max = 5,
        .timeout = 30,
        .report_interval = 10,
    };
    bool duration_given = false;
    static const struct option options[] = {
        {"url", required_argument, NULL, 'u'},
        {"ca-dir", required_argument, NULL, OPT_CA_DIR},
        {"key", required_argument, NULL, 'k'},
        {"clients", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"count", required_argument, NULL, 'n'},
        {"precert-ratio", required_argument, NULL, OPT_PRECERT_RATIO},
        {"dup-ratio", required_argument, NULL, OPT_DUP_RATIO},
        {"threads", required_argument, NULL, 't'},
        {"out-scts", required_argument, NULL, OPT_OUT_SCTS},
        {"not-after", required_argument, NULL, OPT_NOT_AFTER},
        {"leaf-key", required_argument, NULL, OPT_LEAF_KEY},
        {"no-root", no_argument, NULL, OPT_NO_ROOT},
        {"retries", required_argument, NULL, OPT_RETRIES},
        {"retry-after-max", required_argument, NULL, OPT_RETRY_AFTER_MAX},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"max-errors", required_argument, NULL, OPT_MAX_ERRORS},
        {"report", required_argument, NULL, OPT_REPORT},
        {"cpu-of", required_argument, NULL, OPT_CPU_OF},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    optind = 0;
    int o;
    uint64_t v;
    error err = {{0}};
    while ((o = getopt_long(argc, argv, ":u:k:c:n:t:h", options, NULL)) != -1) {
        switch (o) {
        case 'u': opt.url = optarg; break;
        case 'k': opt.key_path = optarg; break;
        case OPT_CA_DIR: opt.ca_dir = optarg; break;
        case OPT_OUT_SCTS: opt.out_scts = optarg; break;
        case 'c':
            if (parse_u64(optarg, 1, MAX_CLIENTS, &v) != 0)
                return tool_usage_error(self, "--clients must be 1 to %d", MAX_CLIENTS);
            opt.clients = (unsigned)v;
            break;
        case 't':
            if (parse_u64(optarg, 1, MAX_THREADS, &v) != 0)
                return tool_usage_error(self, "--threads must be 1 to %d", MAX_THREADS);
            opt.threads = (unsigned)v;
            break;
        case 'n':
            if (parse_u64(optarg, 1, UINT64_C(1) << 40, &opt.count) != 0)
                return tool_usage_error(self, "--count must be a positive number");
            break;
        case OPT_DURATION:
            if (parse_double(optarg, 0.001, 1e7, &opt.duration) != 0)
                return tool_usage_error(self, "--duration must be a positive number of seconds");
            duration_given = true;
            break;
        case OPT_PRECERT_RATIO:
            if (parse_double(optarg, 0, 1, &opt.precert_ratio) != 0)
                return tool_usage_error(self, "--precert-ratio must be in [0, 1]");
            break;
        case OPT_DUP_RATIO:
            if (parse_double(optarg, 0, 1, &opt.dup_ratio) != 0)
                return tool_usage_error(self, "--dup-ratio must be in [0, 1]");
            break;
        case OPT_NOT_AFTER:
            if (certgen_parse_rfc3339(optarg, &opt.not_after, &err) != 0)
                return tool_usage_error(self, "--not-after: %s", err.msg);
            break;
        case OPT_LEAF_KEY:
            if (certgen_key_type_parse(optarg, &opt.leaf_type) != 0)
                return tool_usage_error(self, "--leaf-key must be p256 or rsa2048");
            break;
        case OPT_NO_ROOT: opt.no_root = true; break;
        case OPT_RETRIES:
            if (parse_u64(optarg, 0, 1000, &v) != 0)
                return tool_usage_error(self, "--retries must be 0 to 1000");
            opt.retries = (unsigned)v;
            break;
        case OPT_RETRY_AFTER_MAX:
            if (parse_double(optarg, 0, 3600, &opt.retry_after_max) != 0)
                return tool_usage_error(self, "--retry-after-max must be 0 to 3600 seconds");
            break;
        case OPT_TIMEOUT:
            if (parse_double(optarg, 0.01, 3600, &opt.timeout) != 0)
                return tool_usage_error(self, "--timeout must be 0.01 to 3600 seconds");
            break;
        case OPT_MAX_ERRORS:
            if (parse_u64(optarg, 0, UINT64_MAX, &opt.max_errors) != 0)
                return tool_usage_error(self, "--max-errors must be a number");
            break;
        case OPT_REPORT:
            if (parse_double(optarg, 0, 3600, &opt.report_interval) != 0)
                return tool_usage_error(self, "--report must be 0 to 3600 seconds");
            break;
        case OPT_CPU_OF:
            if (parse_u64(optarg, 1, INT32_MAX, &v) != 0)
                return tool_usage_error(self, "--cpu-of must be a process id");
            opt.cpu_of = (pid_t)v;
            break;
        case OPT_QUIET: opt.quiet = true; break;
        case 'h': tool_print_help(self, stdout); return TOOL_EXIT_OK;
        default: return tool_bad_option(self, o, argv);
        }
    }
    if (optind < argc)
        return tool_usage_error(self, "unexpected argument '%s'", argv[optind]);
    if (!opt.url || !opt.ca_dir || !opt.key_path)
        return tool_usage_error(self, "--url, --ca-dir and --key are required");
    if (!duration_given && opt.count == 0)
        opt.duration = 60;
    if (opt.threads > opt.clients)
        opt.threads = opt.clients;

    load_shared sh;
    memset(&sh, 0, sizeof sh);
    sh.opt = &opt;
    pthread_mutex_init(&sh.out_lock, NULL);
    load_worker *workers = NULL;
    certgen_ca *ca = NULL;
    proc_table before = {0}, after = {0};
    int status = TOOL_EXIT_FAILURE;
    unsigned started = 0;

    if (parse_url(&sh, opt.url, &err) != 0) {
        status = tool_fail(self, "%s", err.msg);
        goto done;
    }
    sh.key = public_key_load_pem(opt.key_path, &err);
    if (!sh.key || public_key_log_id(sh.key, sh.log_id, &err) != 0) {
        status = tool_fail(self, "%s: %s", opt.key_path, err.msg);
        goto done;
    }
    ca = certgen_ca_load(opt.ca_dir, &err);
    if (!ca) {
        status = tool_fail(self, "%s", err.msg);
        goto done;
    }
    if (opt.out_scts) {
        sh.out = fopen(opt.out_scts, "w");
        if (!sh.out) {
            status = tool_fail(self, "creating %s: %s", opt.out_scts, strerror(errno));
            goto done;
        }
    }
    workers = calloc(opt.threads, sizeof *workers);
    if (!workers) {
        status = tool_fail(self, "out of memory");
        goto done;
    }
    for (unsigned i = 0; i < opt.threads; i++) {
        unsigned share = opt.clients / opt.threads + (i < opt.clients % opt.threads);
        if (worker_init(&workers[i], &sh, i, share, ca, &err) != 0) {
            status = tool_fail(self, "%s", err.msg);
            goto done;
        }
    }
    certgen_ca_free(ca);
    ca = NULL;

    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term, old_pipe;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old_pipe);
    /* Only this thread takes the signals; workers inherit the blocked mask. */
    sigset_t block, old_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old_mask);

    proc_table_scan(&before);
    double self_before = self_cpu_seconds();
    sh.t_start_ns = uv_hrtime();
    if (opt.duration > 0)
        sh.deadline_ns = sh.t_start_ns + (uint64_t)(opt.duration * 1e9);
    for (; started < opt.threads; started++)
        if (pthread_create(&workers[started].thread, NULL, worker_main, &workers[started]) != 0)
            break;
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (started < opt.threads)
        atomic_store(&sh.stop, 2);

    if (!opt.quiet)
        fprintf(stderr,
                "load: %s, %u clients on %u threads, %.0f%% precertificates, %.0f%% "
                "resubmissions\n",
                opt.url, opt.clients, opt.threads, opt.precert_ratio * 100,
                opt.dup_ratio * 100);
    /* Watch the clock, signals and progress until every worker is done. */
    uint64_t last_report_ns = sh.t_start_ns, last_ok = 0, grace_ns = 0;
    for (;;) {
        bool all_done = true;
        for (unsigned i = 0; i < started; i++) {
            if (atomic_load(&workers[i].active) != 0)
                all_done = false;
        }
        if (all_done)
            break;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        uint64_t now = uv_hrtime();
        if (interrupted == 1 && atomic_load(&sh.stop) == 0)
            atomic_store(&sh.stop, 1);
        if (interrupted > 1)
            atomic_store(&sh.stop, 2);
        bool over = atomic_load(&sh.stop) != 0 || (sh.deadline_ns && now >= sh.deadline_ns) ||
                    (opt.count && atomic_load(&sh.claimed) >= opt.count);
        if (over && grace_ns == 0)
            grace_ns = now + (uint64_t)((opt.timeout + opt.retries * opt.retry_after_max + 2) * 1e9);
        if (grace_ns && now >= grace_ns)
            atomic_store(&sh.stop, 2);
        if (!opt.quiet && opt.report_interval > 0 &&
            now - last_report_ns >= (uint64_t)(opt.report_interval * 1e9)) {
            uint64_t ok = atomic_load(&sh.ok);
            double span = (double)(now - last_report_ns) / 1e9;
            fprintf(stderr, "load: %6.1f s  ok %" PRIu64 " (%.0f/s)  errors %" PRIu64
                            "  503-retried %" PRIu64 "\n",
                    (double)(now - sh.t_start_ns) / 1e9, ok, (double)(ok - last_ok) / span,
                    (uint64_t)atomic_load(&sh.errors), (uint64_t)atomic_load(&sh.retried));
            last_report_ns = now;
            last_ok = ok;
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    uint64_t end_ns = uv_hrtime();
    double self_cpu = self_cpu_seconds() - self_before;
    proc_table_scan(&after);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);

    /* Merge the workers' figures. */
    uint64_t kinds[KIND_COUNT] = {0}, ok = 0, ok_precert = 0, last_done = sh.t_start_ns;
    size_t lat_n = 0;
    for (unsigned i = 0; i < started; i++) {
        for (int k = 0; k < KIND_COUNT; k++)
            kinds[k] += workers[i].kinds[k];
        ok += workers[i].ok;
        ok_precert += workers[i].ok_precert;
        lat_n += workers[i].lat_len;
        if (workers[i].last_done_ns > last_done)
            last_done = workers[i].last_done_ns;
    }
    uint32_t *lat = malloc((lat_n ? lat_n : 1) * sizeof *lat);
    size_t lat_len = 0;
    if (lat) {
        for (unsigned i = 0; i < started; i++) {
            if (workers[i].lat_len)
                memcpy(lat + lat_len, workers[i].lat_us, workers[i].lat_len * sizeof *lat);
            lat_len += workers[i].lat_len;
        }
        qsort(lat, lat_len, sizeof *lat, cmp_u32);
    }
    uint64_t errors = 0;
    for (int k = 0; k < KIND_COUNT; k++)
        if (kind_is_error[k])
            errors += kinds[k];
    double elapsed = (double)(end_ns - sh.t_start_ns) / 1e9;
    double busy = (double)(last_done - sh.t_start_ns) / 1e9;
    double rate = busy > 0 ? (double)ok / busy : 0;
    unsigned procs = 0;
    proc_cpu_by_name by_name[MAX_PROC_NAMES];
    size_t names = 0;
    double server_cpu = proc_cpu_seconds(&before, &after, opt.cpu_of, &procs, by_name, &names);
    double per_k = ok ? 1000.0 / (double)ok : 0;
    double p50 = 0, p95 = 0, p99 = 0, pmax = 0;
    if (lat && lat_len) {
        p50 = percentile_ms(lat, lat_len, 0.50);
        p95 = percentile_ms(lat, lat_len, 0.95);
        p99 = percentile_ms(lat, lat_len, 0.99);
        pmax = lat[lat_len - 1] / 1000.0;
    }
    free(lat);

    printf("tegula load: %" PRIu64 " SCTs verified (%" PRIu64 " for precertificates) in %.1f s "
           "with %u clients\n",
           ok, ok_precert, elapsed, opt.clients);
    printf("  throughput   %.1f add-chain/s\n", rate);
    printf("  latency      p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  max %.1f ms\n", p50, p95, p99,
           pmax);
    printf("  errors       %" PRIu64 "\n", errors);
    for (int k = 0; k < KIND_COUNT; k++) {
        if (!kinds[k])
            continue;
        const char *sample = "";
        for (unsigned i = 0; i < started && !sample[0]; i++)
            sample = workers[i].samples[k];
        printf("    %-14s %" PRIu64 "%s%s%s\n", kind_names[k], kinds[k], sample[0] ? "  (" : "",
               sample, sample[0] ? ")" : "");
    }
    printf("  cpu          tegula-* servers %.3f s per 1000 (%.1f s over %u processes), "
           "load %.3f s per 1000 (%.1f s)\n",
           server_cpu * per_k, server_cpu, procs, self_cpu * per_k, self_cpu);
    for (size_t k = 0; k < names; k++)
        printf("    %-16s %.3f s per 1000 (%.1f s over %u processes)\n", by_name[k].name,
               by_name[k].seconds * per_k, by_name[k].seconds, by_name[k].procs);
    printf("RESULT ok=%" PRIu64 " rate=%.1f p50_ms=%.1f p95_ms=%.1f p99_ms=%.1f max_ms=%.1f "
           "errors=%" PRIu64,
           ok, rate, p50, p95, p99, pmax, errors);
    for (int k = 0; k < KIND_COUNT; k++)
        printf(" %s=%" PRIu64, kind_names[k], kinds[k]);
    printf(" server_cpu_s=%.2f server_cpu_per_1000=%.3f load_cpu_s=%.2f load_cpu_per_1000=%.3f "
           "elapsed_s=%.1f\n",
           server_cpu, server_cpu * per_k, self_cpu, self_cpu * per_k, elapsed);
    fflush(stdout);

    status = TOOL_EXIT_OK;
    if (kinds[KIND_BAD_SCT]) {
        fprintf(stderr, "tegula load: %" PRIu64 " SCTs did not verify\n", kinds[KIND_BAD_SCT]);
        status = TOOL_EXIT_FAILURE;
    }
    if (errors > opt.max_errors)
        status = TOOL_EXIT_FAILURE;
    if (started < opt.threads) {
        fprintf(stderr, "tegula load: could not start every thread\n");
        status = TOOL_EXIT_FAILURE;
    }
done:
    if (workers) {
        for (unsigned i = 0; i < opt.threads; i++)
            worker_free(&workers[i]);
        free(workers);
    }
    if (sh.out) {
        if (fclose(sh.out) != 0 || sh.out_failed) {
            fprintf(stderr, "tegula load: writing %s failed\n", opt.out_scts);
            status = TOOL_EXIT_FAILURE;
        }
    }
    certgen_ca_free(ca);
    EVP_PKEY_free(sh.key);
    free(before.p);
    free(after.p);
    pthread_mutex_destroy(&sh.out_lock);
    return status;
}

const tool_command command_load = {
    .name = "load",
    .summary = "submit many fresh chains concurrently and verify every SCT",
    .synopsis = "Usage: tegula load --url SUBMISSION_PREFIX --ca-dir DIR --key PUB.pem\n"
                "                   [--clients 64] [--threads 2] [--duration 60 | --count N]\n"
                "                   [--precert-ratio 0.2] [--dup-ratio 0] [--out-scts FILE]",
    .details =
        "Runs --clients keep-alive HTTP/1.1 connections (spread over --threads event loops)\n"
        "against a log's add-chain and add-pre-chain, each submitting one chain at a time:\n"
        "a leaf freshly minted by the test CA in --ca-dir (`tegula mkchain --init`), or with\n"
        "--dup-ratio a chain accepted earlier, whose answer must be byte-identical. Every SCT\n"
        "is checked: v1, the LogID of --key, a leaf_index extension, and the signature over\n"
        "the entry rebuilt from the submission. 503 answers are retried after Retry-After.\n"
        "Stops after --duration seconds (default 60) or --count submissions, whichever first.\n"
        "\n"
        "Prints add-chain/s (verified SCTs over the time to the last answer), latency\n"
        "percentiles of accepted submissions (one HTTP exchange), errors by kind, and CPU\n"
        "seconds per 1,000 accepted submissions of the tegula-* processes (all of this\n"
        "user's, or those under --cpu-of PID) and of itself; then one RESULT line of\n"
        "key=value pairs for scripts. Exit status 1 if any SCT fails verification or the\n"
        "errors exceed --max-errors.\n"
        "\n"
        "  --url URL            the log's submission prefix (http://host:port/prefix/)\n"
        "  --ca-dir DIR         test CA (root.pem, root.key, intermediate.pem, .key)\n"
        "  --key FILE           the log's public key (PEM)\n"
        "  --clients N          concurrent connections (default 64)\n"
        "  --threads N          event-loop threads (default 2)\n"
        "  --duration S         seconds to submit for (default 60 without --count)\n"
        "  --count N            submissions in total\n"
        "  --precert-ratio R    share of precertificates (default 0.2)\n"
        "  --dup-ratio R        share of resubmissions of accepted chains (default 0)\n"
        "  --not-after TIME     leaf notAfter, RFC 3339 (default now + 90 days)\n"
        "  --leaf-key TYPE      p256 (default) or rsa2048\n"
        "  --no-root            leave the root out of submitted chains\n"
        "  --retries N          503 retries per submission (default 10)\n"
        "  --retry-after-max S  cap on a Retry-After wait (default 5)\n"
        "  --timeout S          per-request deadline (default 30)\n"
        "  --max-errors N       errors tolerated before exiting 1 (default 0)\n"
        "  --out-scts FILE      write \"<leaf_index> <timestamp> <hex leaf hash>\" per SCT\n"
        "  --report S           progress line every S seconds on stderr (default 10; 0 off)\n"
        "  --cpu-of PID         count CPU only of tegula-* processes under PID\n"
        "  --quiet              no progress lines\n",
    .run = run_load,
};
