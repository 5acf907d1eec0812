/* http_server: a real server in-process on 127.0.0.1 with an ephemeral port, driven by plain
 * blocking sockets so every byte on the wire is under the test's control. */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_server.h"

/* ---------- a minimal HTTP client ---------- */

typedef struct client {
    int fd;
    char buf[256 * 1024];
    size_t len;
} client;

typedef struct response {
    int status;
    char headers[8192]; /* raw header block, lines separated by CRLF */
    char body[64 * 1024];
    size_t body_len;
} response;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int client_open(client *c, uint16_t port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    /* No test may hang: every read gives up after a while. */
    struct timeval tv = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static client *client_new(uint16_t port)
{
    client *c = malloc(sizeof *c);
    assert_non_null(c);
    assert_int_equal(client_open(c, port), 0);
    return c;
}

static void client_free(client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static void client_send(client *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

static void client_send_str(client *c, const char *s)
{
    client_send(c, s, strlen(s));
}

/* Reads more bytes into the buffer; 0 on EOF, -1 on error/timeout. */
static ssize_t client_fill(client *c)
{
    if (c->len == sizeof c->buf)
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

static const char *header_find(const response *r, const char *name, char *out, size_t out_len)
{
    size_t name_len = strlen(name);
    const char *line = strstr(r->headers, "\r\n"); /* skip the status line */
    while (line && line[2]) {
        line += 2;
        const char *end = strstr(line, "\r\n");
        if (!end)
            end = line + strlen(line);
        if ((size_t)(end - line) > name_len && strncasecmp(line, name, name_len) == 0 &&
            line[name_len] == ':') {
            const char *v = line + name_len + 1;
            while (*v == ' ')
                v++;
            size_t n = (size_t)(end - v);
            if (n >= out_len)
                n = out_len - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return out;
        }
        line = end;
    }
    return NULL;
}

/* Reads one response. Returns 0, or -1 if the connection ended or timed out first. A 1xx
 * interim response is returned as such (without body). head: the request was HEAD. */
static int client_read(client *c, response *r, bool head)
{
    memset(r, 0, sizeof *r);
    char *end;
    for (;;) {
        c->buf[c->len < sizeof c->buf ? c->len : sizeof c->buf - 1] = 0;
        end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end)
            break;
        if (client_fill(c) <= 0)
            return -1;
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    assert_true(head_len < sizeof r->headers);
    memcpy(r->headers, c->buf, head_len - 2);
    r->headers[head_len - 2] = 0;
    if (sscanf(r->headers, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    size_t body_len = 0;
    char value[64];
    if (!head && r->status >= 200 && header_find(r, "Content-Length", value, sizeof value))
        body_len = strtoul(value, NULL, 10);
    assert_true(body_len < sizeof r->body);
    while (c->len < head_len + body_len)
        if (client_fill(c) <= 0)
            return -1;
    memcpy(r->body, c->buf + head_len, body_len);
    r->body[body_len] = 0;
    r->body_len = body_len;
    memmove(c->buf, c->buf + head_len + body_len, c->len - head_len - body_len);
    c->len -= head_len + body_len;
    return 0;
}

/* True when the server closed the connection (EOF or reset) with nothing more to read. */
static bool client_sees_close(client *c)
{
    if (c->len > 0)
        return false;
    char b;
    ssize_t n = recv(c->fd, &b, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* ---------- the server under test ---------- */

typedef struct held {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    http_request *req;
    int count;
} held;

typedef struct fixture {
    http_server *server;
    http_router *router;
    uint16_t port;
    held hold;
    pthread_t delayers[64];
    atomic_int delayer_count;
} fixture;

/* Echoes what the server parsed: "METHOD path ?query [body length] body". */
static void handle_echo(http_request *req, void *ctx)
{
    (void)ctx;
    size_t body_len;
    const uint8_t *body = http_request_body(req, &body_len);
    size_t cap = body_len + 512;
    char *text = malloc(cap);
    assert_non_null(text);
    int n = snprintf(text, cap, "%s %s ?%s [%zu] ", http_request_method(req),
                     http_request_path(req), http_request_query(req), body_len);
    memcpy(text + n, body, body_len);
    const char *seen = http_request_header(req, "x-test");
    const http_header headers[] = {
        {"Content-Type", "text/plain"},
        {"X-Seen", seen ? seen : "-"},
        {"Content-Length", "999"}, /* must be ignored: the server owns it */
        {NULL, NULL},
    };
    http_respond_owned(req, 200, headers, text, (size_t)n + body_len);
}

static void *delayed_respond(void *arg)
{
    http_request *req = arg;
    sleep_ms(50);
    http_respond_text(req, 200, "late\n");
    return NULL;
}

/* Answers from another thread after 50 ms, as the frontend does after an NNG reply. */
static void handle_delay(http_request *req, void *ctx)
{
    fixture *f = ctx;
    int i = atomic_fetch_add(&f->delayer_count, 1);
    assert_true(i < 64);
    assert_int_equal(pthread_create(&f->delayers[i], NULL, delayed_respond, req), 0);
}

/* Keeps the request for the test to answer. */
static void handle_hold(http_request *req, void *ctx)
{
    fixture *f = ctx;
    pthread_mutex_lock(&f->hold.lock);
    f->hold.req = req;
    f->hold.count++;
    pthread_cond_broadcast(&f->hold.cond);
    pthread_mutex_unlock(&f->hold.lock);
}

static http_request *wait_held(fixture *f, int count)
{
    pthread_mutex_lock(&f->hold.lock);
    while (f->hold.count < count)
        pthread_cond_wait(&f->hold.cond, &f->hold.lock);
    http_request *req = f->hold.req;
    f->hold.req = NULL;
    pthread_mutex_unlock(&f->hold.lock);
    return req;
}

static void join_delayers(fixture *f)
{
    int n = atomic_load(&f->delayer_count);
    for (int i = 0; i < n; i++)
        pthread_join(f->delayers[i], NULL);
    atomic_store(&f->delayer_count, 0);
}

static fixture *fixture_start(unsigned threads, unsigned read_timeout_ms, unsigned stop_timeout_ms)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    pthread_mutex_init(&f->hold.lock, NULL);
    pthread_cond_init(&f->hold.cond, NULL);
    f->router = http_router_new();
    assert_non_null(f->router);
    assert_int_equal(http_router_add(f->router, NULL, "/echo", handle_echo, f), 0);
    assert_int_equal(http_router_add(f->router, "GET", "/delay", handle_delay, f), 0);
    assert_int_equal(http_router_add(f->router, NULL, "/hold/*", handle_hold, f), 0);
    assert_int_equal(http_router_add(f->router, "POST", "/only-post", handle_echo, f), 0);
    http_server_config cfg = {
        .listen = "127.0.0.1:0",
        .threads = threads,
        .max_body_bytes = 4096,
        .max_header_bytes = 2048,
        .max_url_bytes = 512,
        .read_timeout_ms = read_timeout_ms,
        .stop_timeout_ms = stop_timeout_ms,
        .handler = http_router_handle,
        .handler_ctx = f->router,
    };
    error err = {0};
    f->server = http_server_start(&cfg, &err);
    if (!f->server)
        fail_msg("http_server_start: %s", err.msg);
    f->port = http_server_port(f->server);
    assert_true(f->port != 0);
    return f;
}

static void fixture_stop(fixture *f)
{
    if (f->server)
        http_server_stop(f->server);
    join_delayers(f);
    http_router_free(f->router);
    pthread_mutex_destroy(&f->hold.lock);
    pthread_cond_destroy(&f->hold.cond);
    free(f);
}

static void assert_echo(const response *r, const char *want_body)
{
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, want_body);
    char value[64];
    assert_non_null(header_find(r, "Content-Length", value, sizeof value));
    assert_int_equal(strtoul(value, NULL, 10), strlen(want_body));
}

/* ---------- tests ---------- */

static void test_simple_get(void **state)
{
    (void)state;
    fixture *f = fixture_start(1, 0, 0);
    client *c = client_new(f->port);
    response *r = malloc(sizeof *r);
    client_send_str(c, "GET /echo?a=1&b=%20 HTTP/1.1\r\nHost: x\r\nX-Test: hello\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "GET /echo ?a=1&b=%20 [0] ");
    char value[128];
    assert_string_equal(header_find(r, "X-Seen", value, sizeof value), "hello");
    assert_string_equal(header_find(r, "Content-Type", value, sizeof value), "text/plain");
    assert_non_null(header_find(r, "Date", value, sizeof value));
    assert_true(strlen(value) == 29 && strcmp(value + 25, " GMT") == 0);
    assert_null(header_find(r, "Connection", value, sizeof value)); /* 1.1 keep-alive default */

    /* The router: unknown path, and a known path with the wrong method. */
    client_send_str(c, "GET /nowhere HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_int_equal(r->status, 404);
    client_send_str(c, "GET /only-post HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_int_equal(r->status, 405);
    assert_string_equal(header_find(r, "Allow", value, sizeof value), "POST");
    /* Absolute-form target: path and query still split out. */
    client_send_str(c, "GET http://example.com/echo?q HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "GET /echo ?q [0] ");

    free(r);
    client_free(c);
    fixture_stop(f);
}

static void test_keep_alive_100_requests(void **state)
{
    (void)state;
    fixture *f = fixture_start(1, 0, 0);
    client *c = client_new(f->port);
    response *r = malloc(sizeof *r);
    for (int i = 0; i < 100; i++) {
        char req[128], want[128];
        snprintf(req, sizeof req, "GET /echo?i=%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        snprintf(want, sizeof want, "GET /echo ?i=%d [0] ", i);
        client_send_str(c, req);
        assert_int_equal(client_read(c, r, false), 0);
        assert_echo(r, want);
    }
    http_server_stats st;
    http_server_stats_read(f->server, &st);
    assert_int_equal(st.connections_accepted, 1);
    assert_int_equal(st.requests, 100);
    free(r);
    client_free(c);
    fixture_stop(f);
}

static void test_http10_connection_handling(void **state)
{
    (void)state;
    fixture *f = fixture_start(1, 0, 0);
    response *r = malloc(sizeof *r);
    char value[64];
    /* HTTP/1.0 with keep-alive: stays open and says so. */
    client *c = client_new(f->port);
    client_send_str(c, "GET /echo?k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "GET /echo ?k [0] ");
    assert_string_equal(header_find(r, "Connection", value, sizeof value), "keep-alive");
    client_send_str(c, "GET /echo?k2 HTTP/1.0\r\n\r\n"); /* plain 1.0: closes after */
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "GET /echo ?k2 [0] ");
    assert_string_equal(header_find(r, "Connection", value, sizeof value), "close");
    assert_true(client_sees_close(c));
    client_free(c);
    /* HTTP/1.1 Connection: close. */
    c = client_new(f->port);
    client_send_str(c, "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_string_equal(header_find(r, "Connection", value, sizeof value), "close");
    assert_true(client_sees_close(c));
    client_free(c);
    free(r);
    fixture_stop(f);
}

static void test_pipelined_requests_answered_in_order(void **state)
{
    (void)state;
    fixture *f = fixture_start(1, 0, 0);
    client *c = client_new(f->port);
    response *r = malloc(sizeof *r);
    /* Two in one write; then a delayed one followed by a quick one: order must hold even
     * though the first is answered from another thread 50 ms later. */
    client_send_str(c, "GET /echo?n=1 HTTP/1.1\r\n\r\nGET /echo?n=2 HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "GET /echo ?n=1 [0] ");
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "GET /echo ?n=2 [0] ");
    client_send_str(c, "GET /delay HTTP/1.1\r\n\r\n"
                       "POST /echo?n=3 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                       "GET /echo?n=4 HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "late\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "POST /echo ?n=3 [3] abc");
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "GET /echo ?n=4 [0] ");
    free(r);
    client_free(c);
    fixture_stop(f);
}

static void test_response_from_another_thread(void **state)
{
    (void)state;
    fixture *f = fixture_start(1, 0, 0);
    client *c = client_new(f->port);
    response *r = malloc(sizeof *r);
    for (int i = 0; i < 3; i++) {
        client_send_str(c, "GET /delay HTTP/1.1\r\n\r\n");
        assert_int_equal(client_read(c, r, false), 0);
        assert_int_equal(r->status, 200);
        assert_string_equal(r->body, "late\n");
        char value[64];
        assert_string_equal(header_find(r, "Content-Type", value, sizeof value),
                            "text/plain; charset=utf-8");
    }
    free(r);
    client_free(c);
    fixture_stop(f);
}

static void test_client_gone_before_delayed_response(void **state)
{
    (void)state;
    fixture *f = fixture_start(1, 0, 0);
    for (int i = 0; i < 5; i++) {
        client *c = client_new(f->port);
        client_send_str(c, "GET /delay HTTP/1.1\r\n\r\n");
        sleep_ms(5);
        client_free(c); /* gone before the 50 ms answer */
    }
    join_delayers(f); /* every late response has been handed to the server */
    http_server_stats st;
    for (int i = 0; i < 200; i++) {
        http_server_stats_read(f->server, &st);
        if (st.responses_dropped == 5 && st.connections_open == 0)
            break;
        sleep_ms(10);
    }
    assert_int_equal(st.requests, 5);
    assert_int_equal(st.responses_dropped, 5);
    assert_int_equal(st.connections_open, 0);
    /* The server carries on. */
    client *c = client_new(f->port);
    response *r = malloc(sizeof *r);
    client_send_str(c, "GET /echo HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "GET /echo ? [0] ");
    free(r);
    client_free(c);
    fixture_stop(f);
}

static void test_post_bodies(void **state)
{
    (void)state;
    fixture *f = fixture_start(1, 0, 0);
    client *c = client_new(f->port);
    response *r = malloc(sizeof *r);
    client_send_str(c, "POST /echo HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world");
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "POST /echo ? [11] hello world");
    /* Chunked, arriving in pieces, with a trailer field. */
    client_send_str(c, "POST /echo?c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    sleep_ms(20);
    client_send_str(c, "lo\r\n6\r\n wor");
    sleep_ms(20);
    client_send_str(c, "ld\r\n0\r\nX-Trailer: t\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "POST /echo ?c [11] hello world");
    /* A body exactly at the limit is accepted. */
    char *big = malloc(4096 + 128);
    int n = snprintf(big, 128, "PUT /echo HTTP/1.1\r\nContent-Length: 4096\r\n\r\n");
    memset(big + n, 'x', 4096);
    client_send(c, big, (size_t)n + 4096);
    assert_int_equal(client_read(c, r, false), 0);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, strlen("PUT /echo ? [4096] ") + 4096);
    free(big);
    free(r);
    client_free(c);
    fixture_stop(f);
}

static void test_body_over_limit_is_413(void **state)
{
    (void)state;
    fixture *f = fixture_start(1, 0, 0);
    response *r = malloc(sizeof *r);
    /* Judged from Content-Length before any body byte is read. */
    client *c = client_new(f->port);
    client_send_str(c, "POST /echo HTTP/1.1\r\nContent-Length: 4097\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_int_equal(r->status, 413);
    char value[64];
    assert_string_equal(header_find(r, "Connection", value, sizeof value), "close");
    client_free(c);
    /* Chunked: judged while reading. */
    c = client_new(f->port);
    char chunk[1100];
    client_send_str(c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    memset(chunk, 'y', sizeof chunk);
    int status = 0;
    for (int i = 0; i < 5; i++) {
        client_send_str(c, "44c\r\n"); /* 1100 */
        client_send(c, chunk, sizeof chunk);
        client_send_str(c, "\r\n");
    }
    assert_int_equal(client_read(c, r, false), 0);
    status = r->status;
    assert_int_equal(status, 413);
    assert_true(client_sees_close(c));
    client_free(c);
    http_server_stats st;
    http_server_stats_read(f->server, &st);
    assert_int_equal(st.requests, 0);
    assert_int_equal(st.errors_sent, 2);
    free(r);
    fixture_stop(f);
}

static void test_oversized_headers_are_431(void **state)
{
    (void)state;
    fixture *f = fixture_start(1, 0, 0);
    response *r = malloc(sizeof *r);
    client *c = client_new(f->port);
    char *big = malloc(4000);
    memset(big, 'h', 3999);
    big[3999] = 0;
    client_send_str(c, "GET /echo HTTP/1.1\r\nX-Big: ");
    client_send_str(c, big);
    client_send_str(c, "\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_int_equal(r->status, 431);
    assert_true(client_sees_close(c));
    client_free(c);
    /* Many small fields add up the same way. */
    c = client_new(f->port);
    client_send_str(c, "GET /echo HTTP/1.1\r\n");
    for (int i = 0; i < 200; i++)
        client_send_str(c, "X-A: 0123456789\r\n");
    client_send_str(c, "\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_int_equal(r->status, 431);
    client_free(c);
    /* A long URL is 414. */
    c = client_new(f->port);
    memset(big, 'u', 600);
    big[600] = 0;
    client_send_str(c, "GET /");
    client_send_str(c, big);
    client_send_str(c, " HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_int_equal(r->status, 414);
    client_free(c);
    free(big);
    free(r);
    fixture_stop(f);
}

static void test_malformed_requests_are_400(void **state)
{
    (void)state;
    fixture *f = fixture_start(1, 0, 0);
    response *r = malloc(sizeof *r);
    static const char *bad[] = {
        "GET\r\n\r\n",
        "GET /echo HTTP/1.1 x\r\n\r\n",
        "GET /a b HTTP/1.1\r\n\r\n",
        "GET /echo HTTP/2.0\r\n\r\n", /* 505 below */
        "G@T /echo HTTP/1.1\r\n\r\n",
        "GET /echo HTTP/1.1\r\nBad Header\r\n\r\n",
        "POST /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        client *c = client_new(f->port);
        client_send_str(c, bad[i]);
        assert_int_equal(client_read(c, r, false), 0);
        assert_int_equal(r->status, strstr(bad[i], "HTTP/2") ? 505 : 400);
        assert_true(client_sees_close(c));
        client_free(c);
    }
    /* A good request first, then garbage on the same connection. */
    client *c = client_new(f->port);
    client_send_str(c, "GET /echo HTTP/1.1\r\n\r\nxyz xyz xyz\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "GET /echo ? [0] ");
    assert_int_equal(client_read(c, r, false), 0);
    assert_int_equal(r->status, 400);
    assert_true(client_sees_close(c));
    client_free(c);
    free(r);
    fixture_stop(f);
}

static void test_head_has_no_body(void **state)
{
    (void)state;
    fixture *f = fixture_start(1, 0, 0);
    client *c = client_new(f->port);
    response *r = malloc(sizeof *r);
    /* HEAD then GET pipelined: any stray body byte after HEAD would corrupt the second read. */
    client_send_str(c, "HEAD /echo HTTP/1.1\r\n\r\nGET /echo?after HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(c, r, true), 0);
    assert_int_equal(r->status, 200);
    char value[64];
    assert_non_null(header_find(r, "Content-Length", value, sizeof value));
    assert_int_equal(strtoul(value, NULL, 10), strlen("HEAD /echo ? [0] "));
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "GET /echo ?after [0] ");
    /* Through the router, HEAD reaches a GET route. */
    client_send_str(c, "HEAD /delay HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(c, r, true), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(header_find(r, "Content-Length", value, sizeof value), "5");
    client_send_str(c, "GET /echo HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "GET /echo ? [0] ");
    free(r);
    client_free(c);
    fixture_stop(f);
}

static void test_expect_100_continue(void **state)
{
    (void)state;
    fixture *f = fixture_start(1, 0, 0);
    client *c = client_new(f->port);
    response *r = malloc(sizeof *r);
    client_send_str(c, "POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_int_equal(r->status, 100);
    client_send_str(c, "data");
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "POST /echo ? [4] data");
    /* Too large: 413 straight away, no 100. */
    client_send_str(c, "POST /echo HTTP/1.1\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_int_equal(r->status, 413);
    client_free(c);
    /* An expectation we cannot meet. */
    c = client_new(f->port);
    client_send_str(c, "POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: teapot\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_int_equal(r->status, 417);
    client_free(c);
    free(r);
    fixture_stop(f);
}

typedef struct load_client {
    uint16_t port;
    int id;
    int ok;
} load_client;

static void *run_load_client(void *arg)
{
    load_client *lc = arg;
    client *c = malloc(sizeof *c);
    response *r = malloc(sizeof *r);
    if (!c || !r || client_open(c, lc->port) != 0)
        goto out;
    for (int i = 0; i < 20; i++) {
        char req[128], want[128];
        snprintf(req, sizeof req, "GET /echo?c=%d&i=%d HTTP/1.1\r\nHost: x\r\n\r\n", lc->id, i);
        snprintf(want, sizeof want, "GET /echo ?c=%d&i=%d [0] ", lc->id, i);
        if (send(c->fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
            break;
        if (client_read(c, r, false) != 0 || r->status != 200 || strcmp(r->body, want) != 0)
            break;
        lc->ok++;
    }
    close(c->fd);
out:
    free(c);
    free(r);
    return NULL;
}

static void test_concurrent_connections(void **state)
{
    (void)state;
    fixture *f = fixture_start(2, 0, 0);
    pthread_t threads[50];
    load_client clients[50];
    for (int i = 0; i < 50; i++) {
        clients[i] = (load_client){.port = f->port, .id = i};
        assert_int_equal(pthread_create(&threads[i], NULL, run_load_client, &clients[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 50; i++) {
        pthread_join(threads[i], NULL);
        total += clients[i].ok;
    }
    assert_int_equal(total, 50 * 20);
    http_server_stats st;
    http_server_stats_read(f->server, &st);
    assert_int_equal(st.connections_accepted, 50);
    assert_int_equal(st.requests, 1000);
    fixture_stop(f);
}

static void test_slow_request_times_out_with_408(void **state)
{
    (void)state;
    fixture *f = fixture_start(1, 200, 0);
    client *c = client_new(f->port);
    response *r = malloc(sizeof *r);
    client_send_str(c, "GET /echo HTTP/1.1\r\nHost: x\r\n"); /* never finished */
    assert_int_equal(client_read(c, r, false), 0);
    assert_int_equal(r->status, 408);
    assert_true(client_sees_close(c));
    free(r);
    client_free(c);
    fixture_stop(f);
}

typedef struct stop_args {
    fixture *f;
    http_request *req;
    unsigned delay_ms;
} stop_args;

static void *respond_later(void *arg)
{
    stop_args *a = arg;
    sleep_ms(a->delay_ms);
    http_respond_text(a->req, 200, "finished\n");
    return NULL;
}

static void test_graceful_stop_finishes_in_flight_request(void **state)
{
    (void)state;
    fixture *f = fixture_start(2, 0, 5000);
    client *busy = client_new(f->port);
    client *idle = client_new(f->port);
    response *r = malloc(sizeof *r);
    client_send_str(idle, "GET /echo HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(idle, r, false), 0);
    client_send_str(busy, "GET /hold/1 HTTP/1.1\r\n\r\n");
    stop_args a = {.f = f, .req = wait_held(f, 1), .delay_ms = 100};
    pthread_t responder;
    assert_int_equal(pthread_create(&responder, NULL, respond_later, &a), 0);
    http_server_stop(f->server); /* waits for the in-flight request */
    f->server = NULL;
    pthread_join(responder, NULL);
    assert_int_equal(client_read(busy, r, false), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "finished\n");
    char value[64];
    assert_string_equal(header_find(r, "Connection", value, sizeof value), "close");
    assert_true(client_sees_close(busy));
    assert_true(client_sees_close(idle)); /* idle keep-alive connection closed */
    client *late = malloc(sizeof *late);
    assert_int_equal(client_open(late, f->port), -1); /* no longer accepting */
    free(late);
    free(r);
    client_free(busy);
    client_free(idle);
    fixture_stop(f);
}

static void test_stop_bound_drops_unanswered_request(void **state)
{
    (void)state;
    fixture *f = fixture_start(1, 0, 100);
    client *c = client_new(f->port);
    client_send_str(c, "POST /hold/2 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    http_request *req = wait_held(f, 1);
    http_server_stop(f->server); /* gives up after 100 ms */
    f->server = NULL;
    assert_true(client_sees_close(c));
    /* The request is still readable and must still be answered; the answer goes nowhere. */
    size_t len;
    const uint8_t *body = http_request_body(req, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(body, "hello", 5);
    assert_string_equal(http_request_path(req), "/hold/2");
    http_respond_owned(req, 200, NULL, strdup("dropped"), 7);
    client_free(c);
    fixture_stop(f);
}

static void handle_peer(http_request *req, void *ctx)
{
    (void)ctx;
    char peer[64];
    size_t count;
    const http_header *headers = http_request_headers(req, &count);
    char text[256];
    if (http_request_peer(req, peer, sizeof peer) != 0)
        snprintf(peer, sizeof peer, "?");
    snprintf(text, sizeof text, "%s %zu %s=%s", peer, count, count ? headers[count - 1].name : "",
             count ? headers[count - 1].value : "");
    http_respond_text(req, 200, text);
}

static void test_connection_limit(void **state)
{
    (void)state;
    http_server_config cfg = {.listen = "localhost:0", .max_connections = 2, .handler = handle_peer};
    error err = {0};
    http_server *s = http_server_start(&cfg, &err);
    assert_non_null(s);
    uint16_t port = http_server_port(s);
    response *r = malloc(sizeof *r);
    client *a = client_new(port);
    client *b = client_new(port);
    client_send_str(a, "GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n\r\n");
    assert_int_equal(client_read(a, r, false), 0);
    assert_memory_equal(r->body, "127.0.0.1:", 10); /* the peer address */
    assert_non_null(strstr(r->body, " 2 X-Empty="));
    client_send_str(b, "GET / HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(b, r, false), 0);
    assert_int_equal(r->status, 200);
    /* A third connection is over the per-worker limit. */
    client *c = client_new(port);
    assert_int_equal(client_read(c, r, false), 0);
    assert_int_equal(r->status, 503);
    assert_true(client_sees_close(c));
    http_server_stats st;
    http_server_stats_read(s, &st);
    assert_int_equal(st.connections_accepted, 2);
    assert_int_equal(st.connections_rejected, 1);
    client_free(a);
    client_free(b);
    client_free(c);
    free(r);
    http_server_stop(s);
}

static void test_idle_connection_closed(void **state)
{
    (void)state;
    http_server_config cfg = {.listen = "127.0.0.1:0", .idle_timeout_ms = 100, .handler = handle_peer};
    error err = {0};
    http_server *s = http_server_start(&cfg, &err);
    assert_non_null(s);
    response *r = malloc(sizeof *r);
    client *a = client_new(http_server_port(s));
    client_send_str(a, "GET / HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(a, r, false), 0);
    assert_int_equal(r->status, 200);
    assert_true(client_sees_close(a));
    client *b = client_new(http_server_port(s)); /* never sends anything */
    assert_true(client_sees_close(b));
    client_free(a);
    client_free(b);
    free(r);
    http_server_stop(s);
}

static void test_bad_listen_addresses(void **state)
{
    (void)state;
    static const char *bad[] = {"nonsense", "127.0.0.1", "127.0.0.1:99999", "[::1:80",
                                "example.com:80", "127.0.0.1:-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        http_server_config cfg = {.listen = bad[i], .handler = handle_echo};
        error err = {0};
        assert_null(http_server_start(&cfg, &err));
        assert_true(err.msg[0] != 0);
    }
    http_server_config cfg = {.listen = "127.0.0.1:0"};
    assert_null(http_server_start(&cfg, NULL)); /* no handler */
}

static void test_ipv6_any_is_dual_stack(void **state)
{
    (void)state;
    http_server_config cfg = {.listen = "[::]:0", .threads = 2, .handler = handle_echo};
    error err = {0};
    http_server *s = http_server_start(&cfg, &err);
    if (!s) {
        /* Containers without IPv6 cannot bind [::]; nothing to test there. */
        print_message("skipping: %s\n", err.msg);
        return;
    }
    client *c = client_new(http_server_port(s));
    response *r = malloc(sizeof *r);
    client_send_str(c, "GET /x HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(c, r, false), 0);
    assert_echo(r, "GET /x ? [0] ");
    free(r);
    client_free(c);
    http_server_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_keep_alive_100_requests),
        cmocka_unit_test(test_http10_connection_handling),
        cmocka_unit_test(test_pipelined_requests_answered_in_order),
        cmocka_unit_test(test_response_from_another_thread),
        cmocka_unit_test(test_client_gone_before_delayed_response),
        cmocka_unit_test(test_post_bodies),
        cmocka_unit_test(test_body_over_limit_is_413),
        cmocka_unit_test(test_oversized_headers_are_431),
        cmocka_unit_test(test_malformed_requests_are_400),
        cmocka_unit_test(test_head_has_no_body),
        cmocka_unit_test(test_expect_100_continue),
        cmocka_unit_test(test_concurrent_connections),
        cmocka_unit_test(test_slow_request_times_out_with_408),
        cmocka_unit_test(test_graceful_stop_finishes_in_flight_request),
        cmocka_unit_test(test_stop_bound_drops_unanswered_request),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_idle_connection_closed),
        cmocka_unit_test(test_bad_listen_addresses),
        cmocka_unit_test(test_ipv6_any_is_dual_stack),
    };
    return cmocka_run_group_tests_name("http_server", tests, NULL, NULL);
}
