/* http_client: real transfers to a real http_server on 127.0.0.1. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gzip.h"
#include "http_client.h"
#include "http_server.h"

typedef struct fixture {
    http_server *server;
    uint16_t port;
    char base[64];
    pthread_mutex_t lock;
    http_request *held[16]; /* /slow requests, answered at teardown */
    int held_count;
} fixture;

/* "/echo": the request as the server saw it. "/big": 100 000 bytes. "/gzip": a gzip-encoded
 * body. "/slow": never answered until teardown. "/status/N": status N. */
static void handle(http_request *req, void *ctx)
{
    fixture *f = ctx;
    const char *path = http_request_path(req);
    if (strcmp(path, "/echo") == 0) {
        size_t body_len;
        const uint8_t *body = http_request_body(req, &body_len);
        const char *type = http_request_header(req, "Content-Type");
        const char *expect = http_request_header(req, "Expect");
        buffer out = {0};
        buffer_printf(&out, "%s\n%s\n%s\n%s\n", http_request_method(req), http_request_target(req),
                      type ? type : "-", expect ? expect : "-");
        buffer_append(&out, body, body_len);
        const http_header headers[] = {{"X-Test", "  yes  "}, {"Content-Type", "text/plain"},
                                       {NULL, NULL}};
        http_respond(req, 200, headers, out.data, out.len);
        buffer_free(&out);
    } else if (strcmp(path, "/big") == 0) {
        char *body = malloc(100000);
        memset(body, 'x', 100000);
        http_respond_owned(req, 200, NULL, body, 100000);
    } else if (strcmp(path, "/gzip") == 0) {
        char plain[20000];
        for (size_t i = 0; i < sizeof plain; i++)
            plain[i] = (char)('a' + i % 26);
        buffer gz = {0};
        assert_int_equal(gzip_compress(plain, sizeof plain, &gz, NULL), 0);
        const http_header headers[] = {{"Content-Encoding", "gzip"}, {NULL, NULL}};
        http_respond(req, 200, headers, gz.data, gz.len);
        buffer_free(&gz);
    } else if (strcmp(path, "/slow") == 0) {
        pthread_mutex_lock(&f->lock);
        assert_true(f->held_count < 16);
        f->held[f->held_count++] = req;
        pthread_mutex_unlock(&f->lock);
    } else if (strncmp(path, "/status/", 8) == 0) {
        http_respond_text(req, atoi(path + 8), "status as asked\n");
    } else {
        http_respond_text(req, 404, "no\n");
    }
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    http_server_config cfg = {.listen = "127.0.0.1:0", .threads = 2, .handler = handle,
                              .handler_ctx = f, .stop_timeout_ms = 200};
    error err = {{0}};
    f->server = http_server_start(&cfg, &err);
    assert_non_null(f->server);
    f->port = http_server_port(f->server);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u", f->port);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < f->held_count; i++)
        http_respond_text(f->held[i], 200, "late\n");
    http_server_stop(f->server);
    pthread_mutex_destroy(&f->lock);
    free(f);
    return 0;
}

static void url_of(const fixture *f, const char *path, char *out, size_t out_size)
{
    snprintf(out, out_size, "%s%s", f->base, path);
}

static void test_get_keeps_query_and_connection(void **state)
{
    fixture *f = *state;
    http_client *c = http_client_new(NULL, NULL);
    assert_non_null(c);
    char url[256];
    /* Odd but legal query bytes must reach the server exactly as written. */
    url_of(f, "/echo?hash=ab%2Bc%2F%3D&x=a+b&flag&e=%7E", url, sizeof url);
    for (int i = 0; i < 5; i++) {
        http_client_request req = {.url = url};
        http_client_response r;
        assert_int_equal(http_client_fetch(c, &req, &r, NULL), 0);
        assert_int_equal(r.result, HTTP_CLIENT_OK);
        assert_int_equal(r.status, 200);
        assert_string_equal(http_client_response_header(&r, "x-test"), "yes");
        assert_string_equal(http_client_response_header(&r, "Content-Type"), "text/plain");
        buffer_terminate(&r.body);
        assert_string_equal((char *)r.body.data,
                            "GET\n/echo?hash=ab%2Bc%2F%3D&x=a+b&flag&e=%7E\n-\n-\n");
        http_client_response_free(&r);
    }
    http_server_stats stats;
    http_server_stats_read(f->server, &stats);
    assert_int_equal(stats.connections_accepted, 1); /* keep-alive: one connection for all */
    http_client_free(c);
}

static void test_post_and_custom_method(void **state)
{
    fixture *f = *state;
    http_client *c = http_client_new(NULL, NULL);
    char url[256];
    url_of(f, "/echo", url, sizeof url);
    /* Large enough that curl would ask for 100-continue if allowed to. */
    size_t body_len = 300000;
    char *body = malloc(body_len);
    for (size_t i = 0; i < body_len; i++)
        body[i] = (char)('0' + i % 10);
    const http_header headers[] = {{"Content-Type", "application/json"}, {NULL, NULL}};
    http_client_request req = {.method = "POST", .url = url, .headers = headers, .body = body,
                               .body_len = body_len};
    http_client_response r;
    assert_int_equal(http_client_fetch(c, &req, &r, NULL), 0);
    assert_int_equal(r.result, HTTP_CLIENT_OK);
    assert_int_equal(r.status, 200);
    const char *want_head = "POST\n/echo\napplication/json\n-\n";
    size_t head_len = strlen(want_head);
    assert_int_equal(r.body.len, head_len + body_len);
    assert_memory_equal(r.body.data, want_head, head_len);
    assert_memory_equal(r.body.data + head_len, body, body_len);
    http_client_response_free(&r);

    /* No Content-Type given: none is invented. */
    http_client_request put = {.method = "PUT", .url = url, .body = "abc", .body_len = 3};
    assert_int_equal(http_client_fetch(c, &put, &r, NULL), 0);
    assert_int_equal(r.status, 200);
    buffer_terminate(&r.body);
    assert_string_equal((char *)r.body.data, "PUT\n/echo\n-\n-\nabc");
    http_client_response_free(&r);

    http_client_request head = {.method = "HEAD", .url = url};
    assert_int_equal(http_client_fetch(c, &head, &r, NULL), 0);
    assert_int_equal(r.result, HTTP_CLIENT_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    http_client_response_free(&r);
    free(body);
    http_client_free(c);
}

static void test_status_and_limits(void **state)
{
    fixture *f = *state;
    http_client_config cfg = {.max_body_bytes = 50000};
    http_client *c = http_client_new(&cfg, NULL);
    char url[256];
    http_client_response r;

    url_of(f, "/status/503", url, sizeof url);
    http_client_request req = {.url = url};
    assert_int_equal(http_client_fetch(c, &req, &r, NULL), 0);
    assert_int_equal(r.result, HTTP_CLIENT_OK);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.body.len, strlen("status as asked\n"));
    http_client_response_free(&r);

    url_of(f, "/big", url, sizeof url);
    assert_int_equal(http_client_fetch(c, &req, &r, NULL), 0);
    assert_int_equal(r.result, HTTP_CLIENT_TOO_LARGE);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.body.len, 0);
    http_client_response_free(&r);
    /* A per-request limit overrides the client's. */
    req.max_body_bytes = 200000;
    assert_int_equal(http_client_fetch(c, &req, &r, NULL), 0);
    assert_int_equal(r.result, HTTP_CLIENT_OK);
    assert_int_equal(r.body.len, 100000);
    http_client_response_free(&r);

    /* Decompression: the decoded body, no stale encoding headers. */
    url_of(f, "/gzip", url, sizeof url);
    http_client_request gz = {.url = url, .decompress = true};
    assert_int_equal(http_client_fetch(c, &gz, &r, NULL), 0);
    assert_int_equal(r.result, HTTP_CLIENT_OK);
    assert_int_equal(r.body.len, 20000);
    assert_memory_equal(r.body.data, "abcdefghijklmnopqrstuvwxyzabc", 29);
    assert_null(http_client_response_header(&r, "Content-Encoding"));
    assert_null(http_client_response_header(&r, "Content-Length"));
    http_client_response_free(&r);
    /* Without it, the bytes as sent. */
    gz.decompress = false;
    assert_int_equal(http_client_fetch(c, &gz, &r, NULL), 0);
    assert_true(gzip_is_gzip(r.body.data, r.body.len));
    assert_string_equal(http_client_response_header(&r, "Content-Encoding"), "gzip");
    http_client_response_free(&r);

    url_of(f, "/slow", url, sizeof url);
    http_client_request slow = {.url = url, .timeout_ms = 300};
    assert_int_equal(http_client_fetch(c, &slow, &r, NULL), 0);
    assert_int_equal(r.result, HTTP_CLIENT_TIMEOUT);
    assert_true(strlen(r.reason) > 0);
    http_client_response_free(&r);
    http_client_free(c);
}

static void test_connect_failure_and_bad_requests(void **state)
{
    (void)state;
    /* A port nobody listens on: bind, learn the port, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/x", ntohs(a.sin_port));

    http_client *c = http_client_new(NULL, NULL);
    http_client_response r;
    http_client_request req = {.url = url};
    assert_int_equal(http_client_fetch(c, &req, &r, NULL), 0);
    assert_int_equal(r.result, HTTP_CLIENT_CONNECT_FAILED);
    http_client_response_free(&r);

    error err = {{0}};
    http_client_request bad = {.url = "ftp://127.0.0.1/x"};
    assert_int_equal(http_client_fetch(c, &bad, &r, &err), -1);
    assert_true(error_is_set(&err));
    bad.url = "http://127.0.0.1/a b";
    assert_int_equal(http_client_fetch(c, &bad, &r, NULL), -1);
    const http_header injected[] = {{"X-A", "1\r\nX-B: 2"}, {NULL, NULL}};
    http_client_request inj = {.url = url, .headers = injected};
    assert_int_equal(http_client_fetch(c, &inj, &r, NULL), -1);
    http_client_request method = {.url = url, .method = "GET /"};
    assert_int_equal(http_client_fetch(c, &method, &r, NULL), -1);
    http_client_free(c);
}

typedef struct async_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int ok;
    int cancelled;
} async_state;

static void on_done(http_client_response *r, void *ctx)
{
    async_state *s = ctx;
    pthread_mutex_lock(&s->lock);
    s->done++;
    if (r->result == HTTP_CLIENT_OK && r->status == 200 && r->body.len > 0)
        s->ok++;
    if (r->result == HTTP_CLIENT_CANCELLED)
        s->cancelled++;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void test_async_many_and_cancel(void **state)
{
    fixture *f = *state;
    http_client_config cfg = {.max_host_connections = 4};
    http_client *c = http_client_new(&cfg, NULL);
    async_state s = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    char url[256];
    url_of(f, "/echo?n=1", url, sizeof url);
    for (int i = 0; i < 100; i++) {
        http_client_request req = {.url = url};
        assert_int_equal(http_client_send(c, &req, on_done, &s, NULL), 0);
    }
    pthread_mutex_lock(&s.lock);
    while (s.done < 100)
        pthread_cond_wait(&s.cond, &s.lock);
    pthread_mutex_unlock(&s.lock);
    assert_int_equal(s.ok, 100);
    http_server_stats stats;
    http_server_stats_read(f->server, &stats);
    assert_true(stats.connections_accepted <= 4);

    /* Freeing the client with transfers in flight: each callback still runs, cancelled. */
    url_of(f, "/slow", url, sizeof url);
    for (int i = 0; i < 3; i++) {
        http_client_request req = {.url = url};
        assert_int_equal(http_client_send(c, &req, on_done, &s, NULL), 0);
    }
    /* Wait until the server holds all three, so they are truly running. */
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&f->lock);
        int held = f->held_count;
        pthread_mutex_unlock(&f->lock);
        if (held == 3)
            break;
        usleep(5000);
    }
    http_client_free(c);
    assert_int_equal(s.done, 103);
    assert_int_equal(s.cancelled, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_keeps_query_and_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_and_custom_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_failure_and_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_many_and_cancel, setup, teardown),
    };
    return cmocka_run_group_tests_name("http_client", tests, NULL, NULL);
}
