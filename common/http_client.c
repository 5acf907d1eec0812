/* http_client: libcurl multi on one I/O thread, callbacks on a small thread pool. */
#include "http_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_CALLBACK_THREADS 2
#define DEFAULT_MAX_HOST_CONNECTIONS 16
#define DEFAULT_MAX_IDLE_CONNECTIONS 64
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_MAX_BODY_BYTES ((size_t)16 << 20)
#define DEFAULT_MAX_PENDING 10000
#define MAX_CALLBACK_THREADS 64
#define MAX_RESPONSE_HEADER_BYTES (64 * 1024)
#define EASY_POOL_MAX 64
/* The I/O thread also wakes up this often on its own, so a lost wakeup costs at most this. */
#define POLL_INTERVAL_MS 1000

typedef struct transfer {
    struct transfer *next; /* in the incoming or completed queue */
    struct transfer *run_prev, *run_next; /* in the running list (I/O thread only) */
    http_client *client;
    CURL *easy;
    char *method;
    char *url;
    struct curl_slist *headers;
    uint8_t *body;
    size_t body_len;
    unsigned timeout_ms;
    size_t max_body_bytes;
    bool decompress;
    /* Response header fields as "name\0value\0" pairs, gathered by on_header. */
    buffer header_arena;
    size_t header_count;
    bool body_too_large;
    bool headers_too_large;
    bool out_of_memory;
    char curl_error[CURL_ERROR_SIZE];
    http_client_response response;
    http_client_callback callback;
    void *ctx;
} transfer;

struct http_client {
    http_client_config config;
    char *user_agent;
    CURLM *multi;
    pthread_t io_thread;
    bool io_thread_started;
    pthread_t callback_threads[MAX_CALLBACK_THREADS];
    unsigned callback_thread_count;

    pthread_mutex_t lock;
    pthread_cond_t completed_cond;
    transfer *incoming_head, *incoming_tail; /* sent, not yet handed to curl */
    transfer *completed_head, *completed_tail;
    unsigned pending;  /* sent and whose callback has not yet returned */
    bool stopping;     /* set by http_client_free: no new transfers, cancel the rest */
    bool io_finished;  /* the I/O thread has queued its last completion */

    /* I/O thread only. */
    transfer *running;
    CURL *easy_pool[EASY_POOL_MAX];
    size_t easy_pool_count;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void transfer_free(transfer *t)
{
    if (!t)
        return;
    free(t->method);
    free(t->url);
    curl_slist_free_all(t->headers);
    free(t->body);
    buffer_free(&t->header_arena);
    http_client_response_free(&t->response);
    free(t);
}

/* ---------- completion ---------- */

/* Queues a finished transfer for a callback thread (I/O thread, or the sender on failure). */
static void transfer_complete(http_client *c, transfer *t)
{
    pthread_mutex_lock(&c->lock);
    t->next = NULL;
    if (c->completed_tail)
        c->completed_tail->next = t;
    else
        c->completed_head = t;
    c->completed_tail = t;
    pthread_cond_signal(&c->completed_cond);
    pthread_mutex_unlock(&c->lock);
}

static void transfer_fail(transfer *t, http_client_result result, const char *reason)
{
    t->response.result = result;
    t->response.status = 0;
    snprintf(t->response.reason, sizeof t->response.reason, "%s", reason);
}

static bool header_is(const char *name, const char *want)
{
    return strcasecmp(name, want) == 0;
}

/* Turns the header arena into the response's array: one allocation holding the array and
 * the strings it points into, so http_client_response_free needs one free(). */
static void transfer_build_headers(transfer *t)
{
    size_t count = t->header_count;
    if (count == 0)
        return;
    size_t array_bytes = count * sizeof(http_header);
    char *block = malloc(array_bytes + t->header_arena.len);
    if (!block) {
        t->out_of_memory = true;
        return;
    }
    http_header *headers = (http_header *)block;
    char *strings = block + array_bytes;
    memcpy(strings, t->header_arena.data, t->header_arena.len);
    size_t kept = 0;
    const char *p = strings;
    for (size_t i = 0; i < count; i++) {
        const char *name = p;
        p += strlen(p) + 1;
        const char *value = p;
        p += strlen(p) + 1;
        /* Once curl has decoded the body, these describe bytes the caller never sees. */
        if (t->decompress &&
            (header_is(name, "Content-Encoding") || header_is(name, "Content-Length")))
            continue;
        headers[kept].name = name;
        headers[kept].value = value;
        kept++;
    }
    t->response.headers = headers;
    t->response.header_count = kept;
}

static void transfer_finish(transfer *t, CURLcode code)
{
    if (code == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        t->response.result = HTTP_CLIENT_OK;
        t->response.status = (int)status;
        transfer_build_headers(t);
        if (t->out_of_memory) {
            transfer_fail(t, HTTP_CLIENT_FAILED, "out of memory");
            buffer_free(&t->response.body);
        }
        return;
    }
    buffer_free(&t->response.body);
    const char *detail = t->curl_error[0] ? t->curl_error : curl_easy_strerror(code);
    char reason[sizeof t->response.reason];
    if (t->body_too_large || code == CURLE_FILESIZE_EXCEEDED) {
        snprintf(reason, sizeof reason, "response body larger than %zu bytes", t->max_body_bytes);
        transfer_fail(t, HTTP_CLIENT_TOO_LARGE, reason);
    } else if (t->headers_too_large) {
        transfer_fail(t, HTTP_CLIENT_FAILED, "response headers too large");
    } else if (t->out_of_memory) {
        transfer_fail(t, HTTP_CLIENT_FAILED, "out of memory");
    } else if (code == CURLE_OPERATION_TIMEDOUT) {
        snprintf(reason, sizeof reason, "timeout: %s", detail);
        transfer_fail(t, HTTP_CLIENT_TIMEOUT, reason);
    } else if (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
               code == CURLE_COULDNT_RESOLVE_PROXY) {
        snprintf(reason, sizeof reason, "cannot connect: %s", detail);
        transfer_fail(t, HTTP_CLIENT_CONNECT_FAILED, reason);
    } else {
        transfer_fail(t, HTTP_CLIENT_FAILED, detail);
    }
}

/* ---------- curl callbacks (I/O thread) ---------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    transfer *t = arg;
    size_t n = size * nmemb;
    if (n > t->max_body_bytes - t->response.body.len) {
        t->body_too_large = true;
        return 0; /* anything but n aborts the transfer */
    }
    if (buffer_append(&t->response.body, data, n) != 0) {
        t->out_of_memory = true;
        return 0;
    }
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    transfer *t = arg;
    size_t n = size * nmemb;
    /* A status line starts a new response (after a 1xx interim one): forget the old fields. */
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        t->header_arena.len = 0;
        t->header_count = 0;
        return n;
    }
    size_t len = n;
    while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n'))
        len--;
    const char *colon = memchr(data, ':', len);
    /* The blank line ending the block, and obsolete folded continuation lines, carry no
     * field of their own. */
    if (!colon || colon == data || data[0] == ' ' || data[0] == '\t')
        return n;
    size_t name_len = (size_t)(colon - data);
    const char *value = colon + 1;
    size_t value_len = len - name_len - 1;
    while (value_len > 0 && (*value == ' ' || *value == '\t')) {
        value++;
        value_len--;
    }
    while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
        value_len--;
    if (t->header_arena.len + name_len + value_len + 2 > MAX_RESPONSE_HEADER_BYTES) {
        t->headers_too_large = true;
        return 0;
    }
    /* Embedded NULs would cut a field short; drop such a field rather than mangle it. */
    if (memchr(data, '\0', name_len) || memchr(value, '\0', value_len))
        return n;
    if (buffer_append(&t->header_arena, data, name_len) != 0 ||
        buffer_append_byte(&t->header_arena, 0) != 0 ||
        buffer_append(&t->header_arena, value, value_len) != 0 ||
        buffer_append_byte(&t->header_arena, 0) != 0) {
        t->out_of_memory = true;
        return 0;
    }
    t->header_count++;
    return n;
}

/* ---------- the I/O thread ---------- */

static CURL *easy_take(http_client *c)
{
    if (c->easy_pool_count > 0)
        return c->easy_pool[--c->easy_pool_count];
    return curl_easy_init();
}

/* Connections live in the multi handle's cache, so a reset handle loses none of them. */
static void easy_return(http_client *c, CURL *easy)
{
    if (!easy)
        return;
    if (c->easy_pool_count < EASY_POOL_MAX) {
        curl_easy_reset(easy);
        c->easy_pool[c->easy_pool_count++] = easy;
    } else {
        curl_easy_cleanup(easy);
    }
}

static int transfer_setup(http_client *c, transfer *t)
{
    CURL *e = t->easy;
    const char *m = t->method;
    bool ok = true;
#define SET(opt, val) ok = ok && curl_easy_setopt(e, opt, val) == CURLE_OK
    SET(CURLOPT_URL, t->url);
    SET(CURLOPT_PRIVATE, t);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_PROXY, "");
    /* The caller's path goes out byte for byte: no dot-segment squashing. */
    SET(CURLOPT_PATH_AS_IS, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)c->config.connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->max_body_bytes);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, t);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, t);
    SET(CURLOPT_ERRORBUFFER, t->curl_error);
    SET(CURLOPT_USERAGENT, c->user_agent);
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    if (t->headers)
        SET(CURLOPT_HTTPHEADER, t->headers);
    if (t->decompress)
        SET(CURLOPT_ACCEPT_ENCODING, "");
    if (strcmp(m, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(m, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else {
        /* Every other method carries the body as given (possibly empty). */
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_len);
        SET(CURLOPT_POSTFIELDS, t->body ? (const char *)t->body : "");
        if (strcmp(m, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, m);
    }
#undef SET
    return ok ? 0 : -1;
}

static void io_start(http_client *c, transfer *t)
{
    t->easy = easy_take(c);
    if (!t->easy || transfer_setup(c, t) != 0 || curl_multi_add_handle(c->multi, t->easy) != CURLM_OK) {
        transfer_fail(t, HTTP_CLIENT_FAILED, "cannot set up the transfer");
        if (t->easy)
            curl_easy_cleanup(t->easy);
        t->easy = NULL;
        transfer_complete(c, t);
        return;
    }
    t->run_prev = NULL;
    t->run_next = c->running;
    if (c->running)
        c->running->run_prev = t;
    c->running = t;
}

static void io_unlink(http_client *c, transfer *t)
{
    if (t->run_prev)
        t->run_prev->run_next = t->run_next;
    else
        c->running = t->run_next;
    if (t->run_next)
        t->run_next->run_prev = t->run_prev;
    curl_multi_remove_handle(c->multi, t->easy);
    easy_return(c, t->easy);
    t->easy = NULL;
}

static void io_collect(http_client *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        transfer *t = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        CURLcode code = msg->data.result;
        transfer_finish(t, code);
        io_unlink(c, t);
        transfer_complete(c, t);
    }
}

static void *io_main(void *arg)
{
    http_client *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->lock);
        transfer *incoming = c->incoming_head;
        c->incoming_head = c->incoming_tail = NULL;
        bool stopping = c->stopping;
        pthread_mutex_unlock(&c->lock);

        while (incoming) {
            transfer *t = incoming;
            incoming = t->next;
            if (stopping) {
                transfer_fail(t, HTTP_CLIENT_CANCELLED, "the HTTP client was shut down");
                transfer_complete(c, t);
            } else {
                io_start(c, t);
            }
        }
        if (stopping)
            break;
        int still_running = 0;
        curl_multi_perform(c->multi, &still_running);
        io_collect(c);
        curl_multi_poll(c->multi, NULL, 0, POLL_INTERVAL_MS, NULL);
    }
    while (c->running) {
        transfer *t = c->running;
        io_unlink(c, t);
        buffer_free(&t->response.body);
        transfer_fail(t, HTTP_CLIENT_CANCELLED, "the HTTP client was shut down");
        transfer_complete(c, t);
    }
    pthread_mutex_lock(&c->lock);
    c->io_finished = true;
    pthread_cond_broadcast(&c->completed_cond);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* ---------- callback threads ---------- */

static void *callback_main(void *arg)
{
    http_client *c = arg;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->completed_head && !c->io_finished)
            pthread_cond_wait(&c->completed_cond, &c->lock);
        transfer *t = c->completed_head;
        if (!t)
            break; /* the I/O thread is done and nothing is left */
        c->completed_head = t->next;
        if (!c->completed_head)
            c->completed_tail = NULL;
        pthread_mutex_unlock(&c->lock);
        t->callback(&t->response, t->ctx);
        transfer_free(t);
        pthread_mutex_lock(&c->lock);
        c->pending--;
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* ---------- public API ---------- */

http_client *http_client_new(const http_client_config *config, error *err)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK) {
        error_set(err, "libcurl initialisation failed: %s", curl_easy_strerror(curl_init_result));
        return NULL;
    }
    http_client *c = calloc(1, sizeof *c);
    if (!c) {
        error_set(err, "out of memory");
        return NULL;
    }
    if (config)
        c->config = *config;
    http_client_config *cfg = &c->config;
    if (!cfg->callback_threads)
        cfg->callback_threads = DEFAULT_CALLBACK_THREADS;
    if (cfg->callback_threads > MAX_CALLBACK_THREADS)
        cfg->callback_threads = MAX_CALLBACK_THREADS;
    if (!cfg->max_host_connections)
        cfg->max_host_connections = DEFAULT_MAX_HOST_CONNECTIONS;
    if (!cfg->max_idle_connections)
        cfg->max_idle_connections = DEFAULT_MAX_IDLE_CONNECTIONS;
    if (!cfg->connect_timeout_ms)
        cfg->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (!cfg->timeout_ms)
        cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!cfg->max_body_bytes)
        cfg->max_body_bytes = DEFAULT_MAX_BODY_BYTES;
    if (!cfg->max_pending)
        cfg->max_pending = DEFAULT_MAX_PENDING;
    c->user_agent = strdup(cfg->user_agent ? cfg->user_agent : "tegula");
    cfg->user_agent = NULL; /* the copy above is what stays valid */
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->completed_cond, NULL);
    c->multi = curl_multi_init();
    if (!c->user_agent || !c->multi) {
        error_set(err, "out of memory");
        goto fail;
    }
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->max_host_connections);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)cfg->max_idle_connections);
    for (unsigned i = 0; i < cfg->callback_threads; i++) {
        if (pthread_create(&c->callback_threads[i], NULL, callback_main, c) != 0) {
            error_set(err, "cannot start an HTTP client thread");
            goto fail;
        }
        c->callback_thread_count++;
    }
    if (pthread_create(&c->io_thread, NULL, io_main, c) != 0) {
        error_set(err, "cannot start the HTTP client I/O thread");
        goto fail;
    }
    c->io_thread_started = true;
    return c;
fail:
    http_client_free(c);
    return NULL;
}

void http_client_free(http_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    if (!c->io_thread_started)
        c->io_finished = true; /* nobody else will say so */
    pthread_cond_broadcast(&c->completed_cond);
    pthread_mutex_unlock(&c->lock);
    if (c->io_thread_started) {
        curl_multi_wakeup(c->multi);
        pthread_join(c->io_thread, NULL);
    }
    for (unsigned i = 0; i < c->callback_thread_count; i++)
        pthread_join(c->callback_threads[i], NULL);
    for (size_t i = 0; i < c->easy_pool_count; i++)
        curl_easy_cleanup(c->easy_pool[i]);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    pthread_cond_destroy(&c->completed_cond);
    pthread_mutex_destroy(&c->lock);
    free(c->user_agent);
    free(c);
}

static bool method_is_valid(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(m[i] >= 'A' && m[i] <= 'Z') && m[i] != '-' && m[i] != '_')
            return false;
    return true;
}

static bool header_text_is_valid(const char *s, bool is_name)
{
    if (is_name && !*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\r' || ch == '\n' || (is_name && (ch == ':' || ch <= ' ')))
            return false;
    }
    return true;
}

static bool url_is_valid(const char *url)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return false;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    buffer line = {0};
    if (buffer_printf(&line, "%s:%s%s", name, value && *value ? " " : "", value ? value : "") != 0)
        return -1;
    struct curl_slist *grown = curl_slist_append(*list, (const char *)line.data);
    buffer_free(&line);
    if (!grown)
        return -1;
    *list = grown;
    return 0;
}

static transfer *transfer_new(const http_client *c, const http_client_request *req, error *err)
{
    const char *method = req->method ? req->method : "GET";
    if (!req->url || !url_is_valid(req->url)) {
        error_set(err, "not an http or https URL");
        return NULL;
    }
    if (!method_is_valid(method)) {
        error_set(err, "invalid HTTP method");
        return NULL;
    }
    transfer *t = calloc(1, sizeof *t);
    if (!t)
        goto oom;
    t->method = strdup(method);
    t->url = strdup(req->url);
    if (!t->method || !t->url)
        goto oom;
    bool has_body = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
    if (has_body && req->body_len > 0) {
        t->body = malloc(req->body_len);
        if (!t->body)
            goto oom;
        memcpy(t->body, req->body, req->body_len);
        t->body_len = req->body_len;
    }
    bool has_content_type = false;
    for (const http_header *h = req->headers; h && h->name; h++) {
        if (!header_text_is_valid(h->name, true) || !h->value ||
            !header_text_is_valid(h->value, false)) {
            transfer_free(t);
            error_set(err, "invalid request header");
            return NULL;
        }
        if (header_is(h->name, "Content-Type"))
            has_content_type = true;
        if (add_header(&t->headers, h->name, h->value) != 0)
            goto oom;
    }
    if (has_body) {
        /* curl would otherwise announce a form and wait for 100-continue on large bodies. */
        if (!has_content_type && add_header(&t->headers, "Content-Type", NULL) != 0)
            goto oom;
        if (add_header(&t->headers, "Expect", NULL) != 0)
            goto oom;
    }
    t->timeout_ms = req->timeout_ms ? req->timeout_ms : c->config.timeout_ms;
    t->max_body_bytes = req->max_body_bytes ? req->max_body_bytes : c->config.max_body_bytes;
    t->decompress = req->decompress;
    return t;
oom:
    transfer_free(t);
    error_set(err, "out of memory");
    return NULL;
}

int http_client_send(http_client *c, const http_client_request *req,
                     http_client_callback callback, void *ctx, error *err)
{
    if (!c || !req || !callback)
        return error_set(err, "http_client_send: missing argument");
    transfer *t = transfer_new(c, req, err);
    if (!t)
        return -1;
    t->client = c;
    t->callback = callback;
    t->ctx = ctx;
    pthread_mutex_lock(&c->lock);
    if (c->stopping || c->pending >= c->config.max_pending) {
        bool stopping = c->stopping;
        pthread_mutex_unlock(&c->lock);
        transfer_free(t);
        return error_set(err, stopping ? "the HTTP client is shutting down"
                                       : "too many HTTP requests in flight");
    }
    c->pending++;
    bool was_empty = c->incoming_head == NULL;
    if (c->incoming_tail)
        c->incoming_tail->next = t;
    else
        c->incoming_head = t;
    c->incoming_tail = t;
    /* One wakeup per batch: the I/O thread drains the whole queue each time round. Under the
     * lock, so http_client_free cannot tear the multi handle down in between. */
    if (was_empty)
        curl_multi_wakeup(c->multi);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

typedef struct fetch_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    http_client_response *out;
} fetch_wait;

static void fetch_done(http_client_response *response, void *arg)
{
    fetch_wait *w = arg;
    pthread_mutex_lock(&w->lock);
    *w->out = *response;
    /* The caller owns these now; the transfer must not free them. */
    memset(response, 0, sizeof *response);
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int http_client_fetch(http_client *c, const http_client_request *req,
                      http_client_response *response, error *err)
{
    memset(response, 0, sizeof *response);
    fetch_wait w = {.out = response};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    int rc = http_client_send(c, req, fetch_done, &w, err);
    if (rc == 0) {
        pthread_mutex_lock(&w.lock);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return rc;
}

const char *http_client_response_header(const http_client_response *response, const char *name)
{
    for (size_t i = 0; i < response->header_count; i++)
        if (header_is(response->headers[i].name, name))
            return response->headers[i].value;
    return NULL;
}

void http_client_response_free(http_client_response *response)
{
    if (!response)
        return;
    free(response->headers);
    response->headers = NULL;
    response->header_count = 0;
    buffer_free(&response->body);
}
