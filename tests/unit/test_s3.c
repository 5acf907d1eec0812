/* s3: URL and credential parsing, canonical query strings, and the client's behaviour on the
 * wire (headers, retries, limits, keep-alive, parallelism) against a scripted http_server on
 * 127.0.0.1. With TEGULA_TEST_S3_URL=s3://bucket?endpoint=... (tests/system/run.sh sets it,
 * with a real Ceph RGW behind it) the rest runs against the real server: object metadata,
 * wrong credentials, listing, 1,000 uploads in parallel and serially, and an outage. */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base64.h"
#include "http_server.h"
#include "lock.h"
#include "s3.h"
#include "sha256.h"
#include "storage.h"

static const char SECRET[] = "sEcReT/KEY+that-must-never-show";

/* The real server's credentials (from the environment at start), restored for its tests;
 * the offline tests use made-up ones. */
static char *real_access_key, *real_secret_key;

static void use_real_credentials(void)
{
    if (real_access_key)
        setenv("AWS_ACCESS_KEY_ID", real_access_key, 1);
    if (real_secret_key)
        setenv("AWS_SECRET_ACCESS_KEY", real_secret_key, 1);
    unsetenv("AWS_SESSION_TOKEN");
}

static void set_test_credentials(void)
{
    setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    unsetenv("AWS_SESSION_TOKEN");
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- offline: URLs, credentials, canonical queries ---- */

static void test_url_parsing(void **state)
{
    (void)state;
    set_test_credentials();
    error err = {{0}};
    s3_client *c = s3_client_open("s3://my-bucket/logs/2026h1/?endpoint=http://127.0.0.1:9000/"
                                  "&region=eu-west-1&path_style=true&connections=4", &err);
    assert_non_null(c);
    assert_string_equal(s3_client_bucket(c), "my-bucket");
    assert_string_equal(s3_client_prefix(c), "logs/2026h1");
    s3_client_free(c);
    c = s3_client_open("s3://b", &err); /* AWS defaults, no prefix */
    assert_non_null(c);
    assert_string_equal(s3_client_prefix(c), "");
    s3_client_free(c);
    /* Percent-encoded values are decoded. */
    c = s3_client_open("s3://b/p?endpoint=http%3A%2F%2F127.0.0.1%3A1&region=us-east-1", &err);
    assert_non_null(c);
    s3_client_free(c);

    static const struct {
        const char *url, *reason;
    } bad[] = {
        {"s3://", "bucket"},
        {"s3:///prefix", "bucket"},
        {"s3://b?endpoint=ftp://x", "endpoint"},
        {"s3://b?endpoint=http://host/path", "endpoint"},
        {"s3://b?endpoint=http://user@host", "endpoint"},
        {"s3://b?endpoint", "no value"},
        {"s3://b?regoin=us-east-1", "unknown parameter \"regoin\""},
        {"s3://b?path_style=yes", "path_style"},
        {"s3://b?connections=0", "connections"},
        {"s3://b?connections=65", "connections"},
        {"s3://b?retry_time_ms=-1", "retry_time_ms"},
        {"s3://b?region=us east", "region"},
        {"s3://b/../x", "prefix"},
        {"s3://b/a//b", "prefix"},
        {"s3://b/a%20b", "prefix"},
        {"s3://b?profile=x", "credentials=FILE"},
        {"s3://b?endpoint=%zz", "malformed value"},
        {"s3://b?credentials=/nonexistent/creds", "/nonexistent/creds"},
        {"file:///x", "s3://"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        error_clear(&err);
        c = s3_client_open(bad[i].url, &err);
        if (c)
            fail_msg("%s accepted", bad[i].url);
        if (!strstr(err.msg, bad[i].reason))
            fail_msg("%s: \"%s\" does not mention \"%s\"", bad[i].url, err.msg, bad[i].reason);
    }

    /* No credentials at all: a clear sentence naming where they come from. */
    unsetenv("AWS_ACCESS_KEY_ID");
    assert_null(s3_client_open("s3://b", &err));
    assert_non_null(strstr(err.msg, "AWS_ACCESS_KEY_ID"));
    assert_non_null(strstr(err.msg, "credentials=FILE"));
}

static const char *write_credentials(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/credentials", test_tmpdir(name));
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_true(fputs(text, fp) >= 0);
    assert_int_equal(fclose(fp), 0);
    return path;
}

static void test_credentials_file(void **state)
{
    (void)state;
    const char *path = write_credentials(
        "s3_creds", "# tegula test\n[default]\naws_access_key_id = AKIDDEFAULT\n"
                    "aws_secret_access_key=secretdefault\n\n[profile other]\n"
                    "  aws_access_key_id =AKIDOTHER  \r\naws_secret_access_key = s2\n"
                    "aws_session_token = tok\n[broken]\naws_access_key_id = only-id\n");
    char url[1024];
    error err = {{0}};
    snprintf(url, sizeof url, "s3://b?credentials=%s", path);
    s3_client *c = s3_client_open(url, &err);
    assert_non_null(c);
    s3_client_free(c);
    snprintf(url, sizeof url, "s3://b?credentials=%s&profile=other", path);
    c = s3_client_open(url, &err);
    assert_non_null(c);
    s3_client_free(c);
    snprintf(url, sizeof url, "s3://b?credentials=%s&profile=missing", path);
    assert_null(s3_client_open(url, &err));
    assert_non_null(strstr(err.msg, "no [missing] profile"));
    snprintf(url, sizeof url, "s3://b?credentials=%s&profile=broken", path);
    assert_null(s3_client_open(url, &err));
    assert_non_null(strstr(err.msg, "aws_secret_access_key"));
    assert_null(strstr(err.msg, "only-id"));
}

static void expect_query(const s3_param *params, size_t count, const char *want)
{
    buffer out = {0};
    assert_int_equal(s3_canonical_query(params, count, &out), 0);
    assert_int_equal(out.len, strlen(want));
    if (out.len)
        assert_memory_equal(out.data, want, out.len);
    buffer_free(&out);
}

static void test_canonical_query(void **state)
{
    (void)state;
    /* Sorted by name: the order the caller gave does not matter. */
    const s3_param list[] = {{"prefix", "somePrefix"}, {"max-keys", "20"}, {"marker", "m"}};
    expect_query(list, 3, "marker=m&max-keys=20&prefix=somePrefix");
    /* Everything but unreserved characters is encoded, '/' included, in uppercase hex. */
    const s3_param encoded[] = {{"prefix", "tile/0/x001 a+b=c"},
                                {"list-type", "2"},
                                {"continuation-token", "1/ab~c_d.e-f*"}};
    expect_query(encoded, 3,
                 "continuation-token=1%2Fab~c_d.e-f%2A&list-type=2&"
                 "prefix=tile%2F0%2Fx001%20a%2Bb%3Dc");
    /* Empty and missing values keep their '='; UTF-8 bytes are encoded one by one; equal
     * names sort by value. */
    const s3_param odd[] = {{"uploads", NULL}, {"a", "\xc3\xa9"}, {"a", ""}, {"A", "x"}};
    expect_query(odd, 4, "A=x&a=&a=%C3%A9&uploads=");
    expect_query(NULL, 0, "");
}

/* ---- offline: the client on the wire, against a scripted server ---- */

typedef struct scripted {
    http_server *server;
    char url[256]; /* an s3:// URL for the server */
    uint16_t port;
    pthread_mutex_t lock;
    /* /bkt/flaky-lock: one object whose every successful write is answered with 500, as if
     * the answer had been lost on the way back. */
    buffer lock_content;
    int lock_version; /* 0: absent */
    struct {
        char path[128];
        int count;
    } seen[64];
} scripted;

/* How many times this path has been requested before (under the lock). */
static int count_path(scripted *s, const char *path)
{
    pthread_mutex_lock(&s->lock);
    int n = -1;
    for (int i = 0; i < 64; i++) {
        if (s->seen[i].path[0] == 0) {
            snprintf(s->seen[i].path, sizeof s->seen[i].path, "%s", path);
            n = s->seen[i].count++;
            break;
        }
        if (strcmp(s->seen[i].path, path) == 0) {
            n = s->seen[i].count++;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

static void handle_flaky_lock(scripted *s, http_request *req)
{
    const char *method = http_request_method(req);
    char etag[32];
    pthread_mutex_lock(&s->lock);
    snprintf(etag, sizeof etag, "\"v%d\"", s->lock_version);
    if (strcmp(method, "GET") == 0) {
        if (s->lock_version == 0) {
            pthread_mutex_unlock(&s->lock);
            http_respond_text(req, 404, "<Error><Code>NoSuchKey</Code></Error>");
            return;
        }
        const http_header headers[] = {{"ETag", etag}, {NULL, NULL}};
        http_respond(req, 200, headers, s->lock_content.data, s->lock_content.len);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    const char *if_match = http_request_header(req, "If-Match");
    const char *if_none_match = http_request_header(req, "If-None-Match");
    bool allowed = if_none_match ? s->lock_version == 0
                                 : if_match && s->lock_version > 0 &&
                                       strncmp(etag + 1, if_match, strlen(etag) - 2) == 0 &&
                                       strlen(if_match) == strlen(etag) - 2;
    if (allowed) {
        size_t len;
        const uint8_t *body = http_request_body(req, &len);
        buffer_reset(&s->lock_content);
        buffer_append(&s->lock_content, body, len);
        s->lock_version++;
    }
    pthread_mutex_unlock(&s->lock);
    http_respond_text(req, allowed ? 500 : 412, allowed ? "lost answer" : "precondition");
}

/* Paths below /bkt/:
 *   echo/...            200 with a description of the request
 *   fail/CODE/N/...     CODE for the first N requests to the path, then 200 (N=99: always)
 *   big/...             200 with 100 000 bytes
 *   error-xml/...       403 with an S3 error body */
static void handle_scripted(http_request *req, void *ctx)
{
    scripted *s = ctx;
    const char *path = http_request_path(req);
    if (strncmp(path, "/bkt/", 5) != 0) {
        http_respond_text(req, 400, "not path style\n");
        return;
    }
    const char *rest = path + 5;
    if (strcmp(rest, "flaky-lock") == 0) {
        handle_flaky_lock(s, req);
        return;
    }
    size_t body_len;
    const uint8_t *body = http_request_body(req, &body_len);
    if (strncmp(rest, "echo/", 5) == 0) {
        uint8_t digest[SHA256_LEN];
        char hex[2 * SHA256_LEN + 1];
        sha256(body, body_len, digest);
        hex_encode(hex, digest, sizeof digest);
        const char *sha = http_request_header(req, "x-amz-content-sha256");
        const char *auth = http_request_header(req, "Authorization");
        const char *names[] = {"Content-Type", "Content-Encoding", "Cache-Control", "If-Match",
                               "If-None-Match", "x-amz-security-token", "Expect"};
        buffer out = {0};
        buffer_printf(&out, "%s %s\nsha=%s\nauth=%.37s\n", http_request_method(req),
                      http_request_target(req),
                      sha ? (strcmp(sha, hex) == 0 ? "ok" : "wrong") : "missing",
                      auth ? auth : "-");
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            const char *v = http_request_header(req, names[i]);
            buffer_printf(&out, "%s=%s\n", names[i], v ? v : "-");
        }
        /* The signed header list (what libcurl put into the signature). */
        const char *signed_headers = auth ? strstr(auth, "SignedHeaders=") : NULL;
        if (signed_headers) {
            const char *end = strchr(signed_headers, ',');
            buffer_printf(&out, "%.*s\n",
                          (int)(end ? end - signed_headers : (long)strlen(signed_headers)),
                          signed_headers);
        }
        const http_header headers[] = {{"ETag", "\"0123abcd\""}, {"Content-Type", "text/plain"},
                                       {"Cache-Control", "no-store"}, {NULL, NULL}};
        http_respond(req, 200, headers, out.data, out.len);
        buffer_free(&out);
    } else if (strncmp(rest, "fail/", 5) == 0) {
        int code = atoi(rest + 5);
        const char *n_at = strchr(rest + 5, '/');
        int n = n_at ? atoi(n_at + 1) : 0;
        int seen = count_path(s, path);
        if (seen < n) {
            http_respond_text(req, code, "scripted failure\n");
        } else {
            const http_header headers[] = {{"ETag", "W/\"done\""}, {NULL, NULL}};
            http_respond(req, 200, headers, "done", 4);
        }
    } else if (strncmp(rest, "big/", 4) == 0) {
        char *big = malloc(100000);
        memset(big, 'x', 100000);
        http_respond_owned(req, 200, NULL, big, 100000);
    } else if (strncmp(rest, "error-xml/", 10) == 0) {
        static const char xml[] =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InvalidAccessKeyId</Code>"
            "<Message>The AWS Access Key Id you provided does not exist.</Message></Error>";
        const http_header headers[] = {{"Content-Type", "application/xml"}, {NULL, NULL}};
        http_respond(req, 403, headers, xml, sizeof xml - 1);
    } else {
        http_respond_text(req, 404, "no such key\n");
    }
}

static int scripted_setup(void **state)
{
    scripted *s = calloc(1, sizeof *s);
    assert_non_null(s);
    pthread_mutex_init(&s->lock, NULL);
    http_server_config cfg = {.listen = "127.0.0.1:0", .threads = 2, .handler = handle_scripted,
                              .handler_ctx = s, .max_body_bytes = 1 << 20,
                              .stop_timeout_ms = 200};
    error err = {{0}};
    s->server = http_server_start(&cfg, &err);
    assert_non_null(s->server);
    s->port = http_server_port(s->server);
    snprintf(s->url, sizeof s->url,
             "s3://bkt?endpoint=http://127.0.0.1:%u&region=test-1&retry_time_ms=2000", s->port);
    *state = s;
    return 0;
}

static int scripted_teardown(void **state)
{
    scripted *s = *state;
    http_server_stop(s->server);
    pthread_mutex_destroy(&s->lock);
    buffer_free(&s->lock_content);
    free(s);
    return 0;
}

static s3_client *open_client(const char *url)
{
    error err = {{0}};
    s3_client *c = s3_client_open(url, &err);
    if (!c)
        fail_msg("s3_client_open(%s): %s", url, err.msg);
    return c;
}

static void perform_one(s3_client *c, const s3_request *request, s3_response *response)
{
    error err = {{0}};
    if (s3_perform(c, request, response, 1, &err) != 0)
        fail_msg("s3_perform: %s", err.msg);
}

static void expect_line(const s3_response *r, const char *line)
{
    char *text = strndup((const char *)r->body.data, r->body.len);
    char want[512];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(text, want) && strncmp(text, line, strlen(line)) != 0)
        fail_msg("response lacks \"%s\":\n%s", line, text);
    free(text);
}

static void test_request_headers(void **state)
{
    scripted *s = *state;
    set_test_credentials();
    setenv("AWS_SESSION_TOKEN", "session-token-1", 1);
    s3_client *c = open_client(s->url);
    unsetenv("AWS_SESSION_TOKEN");

    /* A PUT carries the payload hash, the metadata and the conditions, all signed. */
    static const char body[] = "tile bytes\x00\x01\x02";
    s3_request put = {.method = "PUT", .key = "echo/tile/data/x001/234.p/5", .body = body,
                      .body_len = sizeof body - 1, .content_type = "application/octet-stream",
                      .content_encoding = "gzip",
                      .cache_control = "public, max-age=604800, immutable",
                      .if_match = "0123abcd", .max_response_bytes = 4096};
    s3_response r = {0};
    perform_one(c, &put, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 1);
    assert_string_equal(r.etag, "0123abcd"); /* quotes removed */
    assert_string_equal(r.content_type, "text/plain");
    assert_string_equal(r.cache_control, "no-store");
    expect_line(&r, "PUT /bkt/echo/tile/data/x001/234.p/5");
    expect_line(&r, "sha=ok");
    expect_line(&r, "auth=AWS4-HMAC-SHA256 Credential=AKIDTEST/");
    expect_line(&r, "Content-Type=application/octet-stream");
    expect_line(&r, "Content-Encoding=gzip");
    expect_line(&r, "Cache-Control=public, max-age=604800, immutable");
    expect_line(&r, "If-Match=0123abcd");
    expect_line(&r, "If-None-Match=-");
    expect_line(&r, "x-amz-security-token=session-token-1");
    expect_line(&r, "Expect=-");
    expect_line(&r, "SignedHeaders=cache-control;content-encoding;content-type;host;if-match;"
                    "x-amz-content-sha256;x-amz-date;x-amz-security-token");
    char *text = strndup((const char *)r.body.data, r.body.len);
    assert_null(strstr(text, SECRET));
    free(text);

    /* Create-if-absent; an empty body; the default content type. */
    s3_request create = {.method = "PUT", .key = "echo/issuer/ab", .if_none_match_any = true,
                         .max_response_bytes = 4096};
    perform_one(c, &create, &r);
    assert_int_equal(r.status, 200);
    expect_line(&r, "sha=ok");
    expect_line(&r, "If-None-Match=*");
    expect_line(&r, "Content-Type=application/octet-stream");

    /* GET: payload hash of nothing; a query in canonical form. */
    const s3_param params[] = {{"prefix", "a/b c"}, {"list-type", "2"}};
    s3_request get = {.method = "GET", .key = "echo/x", .query = params, .query_count = 2,
                      .max_response_bytes = 4096};
    perform_one(c, &get, &r);
    assert_int_equal(r.status, 200);
    expect_line(&r, "GET /bkt/echo/x?list-type=2&prefix=a%2Fb%20c");
    expect_line(&r, "sha=ok");
    expect_line(&r, "Content-Type=-");

    /* Unreserved characters travel as they are; DELETE. */
    s3_request del = {.method = "DELETE", .key = "echo/a_b-c.d~e", .max_response_bytes = 4096};
    perform_one(c, &del, &r);
    expect_line(&r, "DELETE /bkt/echo/a_b-c.d~e");

    /* Malformed requests are refused before anything is sent. */
    error err = {{0}};
    s3_request bad[] = {
        {.method = "POST", .key = "echo/x"},
        {.method = "GET", .key = "../x"},
        {.method = "GET", .key = "a//b"},
        {.method = "GET", .key = "echo/x", .body = "x", .body_len = 1},
        {.method = "PUT", .key = "echo/x", .content_type = "a\r\nX-Injected: 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(s3_perform(c, &bad[i], &r, 1, &err), -1);
    s3_response_free(&r);
    s3_client_free(c);
}

static void test_retries(void **state)
{
    scripted *s = *state;
    set_test_credentials();
    s3_client *c = open_client(s->url);
    s3_response r = {0};
    s3_stats before, after;
    s3_client_stats(c, &before);

    /* Temporary failures are retried until they pass. */
    static const struct {
        const char *key;
        unsigned attempts;
    } passing[] = {{"fail/503/2/a", 3}, {"fail/429/1/b", 2}, {"fail/500/3/c", 4},
                   {"fail/502/1/d", 2}};
    for (size_t i = 0; i < sizeof passing / sizeof passing[0]; i++) {
        s3_request req = {.method = "PUT", .key = passing[i].key, .body = "x", .body_len = 1,
                          .max_response_bytes = 100};
        perform_one(c, &req, &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.attempts, passing[i].attempts);
        assert_string_equal(r.etag, "done"); /* W/ and quotes removed */
    }
    s3_client_stats(c, &after);
    assert_int_equal(after.requests - before.requests, 3 + 2 + 4 + 2);
    assert_int_equal(after.retries - before.retries, 2 + 1 + 3 + 1);
    assert_int_equal(after.failures - before.failures, 0);

    /* Final answers are not retried: wrong credentials, missing, precondition, 501. */
    static const struct {
        const char *key;
        int status;
    } final[] = {{"fail/403/99/e", 403}, {"fail/404/99/f", 404}, {"fail/412/99/g", 412},
                 {"fail/501/99/h", 501}, {"fail/400/99/i", 400}};
    for (size_t i = 0; i < sizeof final / sizeof final[0]; i++) {
        s3_request req = {.method = "GET", .key = final[i].key, .max_response_bytes = 100};
        perform_one(c, &req, &r);
        assert_int_equal(r.status, final[i].status);
        assert_int_equal(r.attempts, 1);
    }

    /* An S3 error body names the error; the message says what to check, without secrets. */
    s3_request req = {.method = "GET", .key = "error-xml/k", .max_response_bytes = 100};
    perform_one(c, &req, &r);
    assert_int_equal(r.status, 403);
    assert_int_equal(r.attempts, 1);
    assert_string_equal(r.reason, "HTTP 403 InvalidAccessKeyId: The AWS Access Key Id you "
                                  "provided does not exist.");
    error err = {{0}};
    assert_int_equal(s3_error(&err, c, &req, &r), -1);
    assert_non_null(strstr(err.msg, "S3 GET bkt/error-xml/k: HTTP 403 InvalidAccessKeyId"));
    assert_non_null(strstr(err.msg, "credentials"));
    assert_null(strstr(err.msg, SECRET));
    assert_null(strstr(err.msg, "AKIDTEST"));

    /* A failure that never ends gives up within the retry budget (2 s here): several
     * attempts, a bounded number of them, and a message that says so. */
    s3_request forever = {.method = "GET", .key = "fail/503/99/j", .max_response_bytes = 100};
    perform_one(c, &forever, &r);
    assert_int_equal(r.status, 503);
    assert_in_range(r.attempts, 3, 12);
    assert_int_equal(s3_error(&err, c, &forever, &r), -1);
    assert_non_null(strstr(err.msg, "gave up retrying"));
    s3_response_free(&r);
    s3_client_free(c);
}

static void test_unreachable_endpoint(void **state)
{
    (void)state;
    set_test_credentials();
    /* A port nobody listens on: connection refused, retried, then a clear failure. */
    s3_client *c = open_client("s3://bkt?endpoint=http://127.0.0.1:1&retry_time_ms=500");
    s3_request req = {.method = "GET", .key = "x", .max_response_bytes = 100};
    s3_response r = {0};
    perform_one(c, &req, &r);
    assert_int_equal(r.status, 0);
    assert_in_range(r.attempts, 2, 8);
    assert_true(r.reason[0] != 0);
    error err = {{0}};
    s3_error(&err, c, &req, &r);
    assert_non_null(strstr(err.msg, "S3 GET bkt/x"));
    s3_response_free(&r);
    s3_client_free(c);

    /* With no retry budget, one attempt. */
    c = open_client("s3://bkt?endpoint=http://127.0.0.1:1&retry_time_ms=0");
    perform_one(c, &req, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.attempts, 1);
    s3_response_free(&r);
    s3_client_free(c);
}

static void test_response_limits(void **state)
{
    scripted *s = *state;
    set_test_credentials();
    s3_client *c = open_client(s->url);
    s3_response r = {0};
    s3_request req = {.method = "GET", .key = "big/1", .max_response_bytes = 100000};
    perform_one(c, &req, &r);
    assert_int_equal(r.status, 200);
    assert_false(r.too_large);
    assert_int_equal(r.body.len, 100000);
    /* One byte less: refused (from Content-Length, before the body), and not retried. */
    req.max_response_bytes = 99999;
    perform_one(c, &req, &r);
    assert_true(r.too_large);
    assert_int_equal(r.attempts, 1);
    assert_true(r.body.len < 100000);
    /* An error body does not count against the limit of a success body. */
    req = (s3_request){.method = "GET", .key = "missing", .max_response_bytes = 0};
    perform_one(c, &req, &r);
    assert_int_equal(r.status, 404);
    assert_false(r.too_large);
    /* HEAD: headers only, whatever the size. */
    req = (s3_request){.method = "HEAD", .key = "big/2", .max_response_bytes = 0};
    perform_one(c, &req, &r);
    assert_int_equal(r.status, 200);
    assert_false(r.too_large);
    assert_int_equal(r.body.len, 0);
    s3_response_free(&r);
    s3_client_free(c);
}

static void test_parallel_batches_reuse_connections(void **state)
{
    scripted *s = *state;
    set_test_credentials();
    char url[300];
    snprintf(url, sizeof url, "%s&connections=4", s->url);
    s3_client *c = open_client(url);
    enum { COUNT = 60 };
    s3_request requests[COUNT];
    s3_response responses[COUNT];
    char keys[COUNT][32];
    memset(responses, 0, sizeof responses);
    for (int i = 0; i < COUNT; i++) {
        /* Some of them fail once first: retries mix with fresh transfers. */
        if (i % 7 == 0)
            snprintf(keys[i], sizeof keys[i], "fail/503/1/p%d", i);
        else
            snprintf(keys[i], sizeof keys[i], "echo/p%d", i);
        requests[i] = (s3_request){.method = "PUT", .key = keys[i], .body = keys[i],
                                   .body_len = strlen(keys[i]), .max_response_bytes = 4096};
    }
    http_server_stats stats;
    http_server_stats_read(s->server, &stats);
    uint64_t accepted_before = stats.connections_accepted;
    error err = {{0}};
    for (int round = 0; round < 3; round++) {
        assert_int_equal(s3_perform(c, requests, responses, COUNT, &err), 0);
        for (int i = 0; i < COUNT; i++) {
            assert_int_equal(responses[i].status, 200);
            if (i % 7 != 0) {
                char line[64];
                snprintf(line, sizeof line, "PUT /bkt/echo/p%d", i);
                expect_line(&responses[i], line);
            }
        }
    }
    /* 180 requests (and retries) over at most 4 kept-alive connections. */
    http_server_stats_read(s->server, &stats);
    assert_in_range(stats.connections_accepted - accepted_before, 1, 4);
    for (int i = 0; i < COUNT; i++)
        s3_response_free(&responses[i]);
    assert_int_equal(s3_perform(c, requests, responses, 0, &err), 0);
    s3_client_free(c);
}

static void test_lock_write_whose_answer_was_lost(void **state)
{
    scripted *s = *state;
    set_test_credentials();
    char url[300];
    snprintf(url, sizeof url, "s3://bkt/flaky-lock?endpoint=http://127.0.0.1:%u", s->port);
    error err = {{0}};
    lock *l = lock_open(url, &err);
    assert_non_null(l);
    char version[LOCK_VERSION_MAX], next[LOCK_VERSION_MAX];
    buffer got = {0};

    assert_int_equal(lock_read(l, &got, version, &err), LOCK_NOT_FOUND);
    assert_int_equal(lock_cas(l, "v0", "x", 1, NULL, &err), LOCK_NOT_FOUND);
    /* The create landed, its answer was a 500; the retry is refused (the object exists), and
     * reading back finds our bytes: success, with the stored version. */
    assert_int_equal(lock_create(l, "first", 5, version, &err), LOCK_OK);
    assert_string_equal(version, "v1");
    /* The same for compare-and-swap: the retry's If-Match fails against our own write. */
    assert_int_equal(lock_cas(l, version, "second", 6, next, &err), LOCK_OK);
    assert_string_equal(next, "v2");
    assert_int_equal(lock_read(l, &got, version, &err), LOCK_OK);
    assert_int_equal(got.len, 6);
    assert_memory_equal(got.data, "second", 6);
    /* A refusal on the first attempt is a real conflict, even with identical bytes. */
    assert_int_equal(lock_cas(l, "v1", "third", 5, NULL, &err), LOCK_CONFLICT);
    assert_non_null(strstr(err.msg, "changed: expected version v1, found v2"));
    assert_int_equal(lock_cas(l, "v1", "second", 6, NULL, &err), LOCK_CONFLICT);
    assert_int_equal(lock_create(l, "second", 6, NULL, &err), LOCK_CONFLICT);
    assert_non_null(strstr(err.msg, "already exists"));
    /* Versions that cannot be ETags are conflicts without a request. */
    assert_int_equal(lock_cas(l, "v2\"", "x", 1, NULL, &err), LOCK_CONFLICT);
    assert_int_equal(lock_cas(l, "v 2", "x", 1, NULL, &err), LOCK_CONFLICT);
    buffer_free(&got);
    lock_close(l);
}

/* ---- offline: the endpoint's last working address, in a private mount namespace ---- */

#define STALE_SKIP 77

/* Bind-mounts a new file DIR/NAME holding TEXT over TARGET. 0 or -1. */
static int bind_text_over(const char *dir, const char *name, const char *text, const char *target)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0)
        return -1;
    return mount(path, target, NULL, MS_BIND, NULL);
}

static int stale_child_get(const char *url, const char *key, s3_response *r, s3_stats *stats)
{
    error err = {{0}};
    s3_client *c = s3_client_open(url, &err);
    if (!c)
        return fprintf(stderr, "open %s: %s\n", url, err.msg), -1;
    s3_request req = {.method = "GET", .key = key, .max_response_bytes = 4096};
    int rc = s3_perform(c, &req, r, 1, &err);
    s3_client_stats(c, stats);
    s3_client_free(c);
    return rc;
}

/* The child's whole scenario (no cmocka here): exit status 0, 1 or STALE_SKIP. */
static int stale_address_child(uint16_t port, const char *dir)
{
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return fprintf(stderr, "no private mount namespace: %s\n", strerror(errno)), STALE_SKIP;
    /* The name resolves from the hosts file; no DNS server answers anything. */
    if (bind_text_over(dir, "hosts-1", "127.0.0.1 localhost s3-stale.test\n", "/etc/hosts") != 0 ||
        bind_text_over(dir, "resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
                       "/etc/resolv.conf") != 0)
        return fprintf(stderr, "bind mounts: %s\n", strerror(errno)), STALE_SKIP;
    char url[256];
    snprintf(url, sizeof url,
             "s3://bkt?endpoint=http://s3-stale.test:%u&region=test-1&retry_time_ms=3000", port);
    s3_response r = {0};
    s3_stats stats;
    int rc = 1;
    if (stale_child_get(url, "echo/resolved", &r, &stats) != 0 || r.status != 200 ||
        stats.stale_address_uses != 0) {
        fprintf(stderr, "first GET: %d %s\n", r.status, r.reason);
        goto done;
    }
    /* The name stops resolving. A new client (its own, empty DNS cache) still gets through,
     * on its second attempt, at the address the first one used. */
    if (bind_text_over(dir, "hosts-2", "127.0.0.1 localhost\n", "/etc/hosts") != 0) {
        fprintf(stderr, "bind mount: %s\n", strerror(errno));
        rc = STALE_SKIP;
        goto done;
    }
    if (stale_child_get(url, "echo/stale", &r, &stats) != 0 || r.status != 200 ||
        r.attempts != 2 || stats.stale_address_uses != 1) {
        fprintf(stderr, "GET after the name failed: status %d after %u attempts (%s), %llu uses "
                        "of the last working address\n", r.status, r.attempts, r.reason,
                (unsigned long long)stats.stale_address_uses);
        goto done;
    }
    /* A name that never resolved has no address to fall back on: a clear failure. */
    snprintf(url, sizeof url,
             "s3://bkt?endpoint=http://s3-never.test:%u&region=test-1&retry_time_ms=300", port);
    if (stale_child_get(url, "echo/never", &r, &stats) != 0 || r.status != 0 ||
        !strstr(r.reason, "resolve") || stats.stale_address_uses != 0) {
        fprintf(stderr, "unknown name: %d %s\n", r.status, r.reason);
        goto done;
    }
    rc = 0;
done:
    s3_response_free(&r);
    return rc;
}

static void test_name_failure_uses_last_working_address(void **state)
{
    scripted *s = *state;
    set_test_credentials();
    const char *dir = test_tmpdir("s3-stale-address");
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(stale_address_child(s->port, dir));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == STALE_SKIP)
        skip(); /* not root, or no mount namespaces here */
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- online: a real S3 server (TEGULA_TEST_S3_URL) ---- */

static const char *real_url(void)
{
    const char *url = getenv("TEGULA_TEST_S3_URL");
    if (!url || !*url)
        return NULL;
    use_real_credentials();
    return url;
}

/* The real server's URL with a key prefix and extra parameters added. */
static void real_url_with(char *out, size_t cap, const char *prefix, const char *extra)
{
    const char *url = real_url();
    const char *q = strchr(url, '?');
    size_t base = q ? (size_t)(q - url) : strlen(url);
    snprintf(out, cap, "%.*s/%s%s%s%s", (int)base, url, prefix, q ? q : "?",
             extra && *extra ? "&" : "", extra ? extra : "");
}

static void test_real_metadata(void **state)
{
    (void)state;
    if (!real_url())
        skip();
    char prefix[64], url[1024];
    snprintf(prefix, sizeof prefix, "s3test-%ld/meta", (long)getpid());
    real_url_with(url, sizeof url, prefix, "");
    error err = {{0}};
    storage *st = storage_open(url, &err);
    if (!st)
        fail_msg("storage_open: %s", err.msg);
    assert_string_equal(storage_scheme(st), "s3");
    s3_client *c = open_client(url);
    static const char *const keys[] = {"checkpoint", "tile/0/x001/234", "tile/data/000.p/5",
                                       "issuer/0123abcd", "staging/12-00ff", "log.v3.json",
                                       "roots.pem"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        assert_int_equal(storage_put(st, keys[i], "content", 7, NULL, &err), STORAGE_OK);
        s3_request head = {.method = "HEAD", .key = keys[i]};
        s3_response r = {0};
        perform_one(c, &head, &r);
        assert_int_equal(r.status, 200);
        storage_meta want = storage_meta_for_key(keys[i]);
        assert_string_equal(r.content_type, want.content_type);
        assert_string_equal(r.content_encoding, want.content_encoding ? want.content_encoding : "");
        assert_string_equal(r.cache_control, want.cache_control ? want.cache_control : "");
        assert_int_equal(strlen(r.etag), 32); /* MD5 hex, quotes removed */
        s3_response_free(&r);
    }
    /* Explicit metadata wins over the key's. */
    storage_meta meta = {"text/x-test", "identity", "max-age=5"};
    assert_int_equal(storage_put(st, "custom", "x", 1, &meta, &err), STORAGE_OK);
    s3_request head = {.method = "HEAD", .key = "custom"};
    s3_response r = {0};
    perform_one(c, &head, &r);
    assert_string_equal(r.content_type, "text/x-test");
    assert_string_equal(r.content_encoding, "identity");
    assert_string_equal(r.cache_control, "max-age=5");
    s3_response_free(&r);

    /* Listing (a signed, canonical query) finds exactly what was written, in order. */
    s3_client_free(c);
    storage_close(st);
}

typedef struct listed {
    char keys[16][64];
    int count;
} listed;

static int collect_key(const char *key, void *ctx)
{
    listed *l = ctx;
    if (l->count < 16)
        snprintf(l->keys[l->count], sizeof l->keys[0], "%s", key);
    l->count++;
    return 0;
}

static void test_real_list(void **state)
{
    (void)state;
    if (!real_url())
        skip();
    char prefix[64], url[1024];
    snprintf(prefix, sizeof prefix, "s3test-%ld/list", (long)getpid());
    real_url_with(url, sizeof url, prefix, "");
    s3_client *c = open_client(url);
    const char *keys[] = {"tile/1/000", "tile/0/x001/002", "tile/0/000", "checkpoint"};
    s3_request requests[4];
    s3_response responses[4] = {{0}};
    for (int i = 0; i < 4; i++)
        requests[i] = (s3_request){.method = "PUT", .key = keys[i], .body = "x", .body_len = 1};
    error err = {{0}};
    assert_int_equal(s3_perform(c, requests, responses, 4, &err), 0);
    listed l = {0};
    assert_int_equal(s3_list(c, "tile/", collect_key, &l, &err), 0);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.keys[0], "tile/0/000");
    assert_string_equal(l.keys[1], "tile/0/x001/002");
    assert_string_equal(l.keys[2], "tile/1/000");
    memset(&l, 0, sizeof l);
    assert_int_equal(s3_list(c, NULL, collect_key, &l, &err), 0);
    assert_int_equal(l.count, 4);
    assert_string_equal(l.keys[0], "checkpoint");
    memset(&l, 0, sizeof l);
    assert_int_equal(s3_list(c, "nothing/", collect_key, &l, &err), 0);
    assert_int_equal(l.count, 0);
    for (int i = 0; i < 4; i++)
        s3_response_free(&responses[i]);
    s3_client_free(c);
}

/* Lines of the gateway's access log that mention `needle` (TEGULA_S3_DIR only). */
static int count_server_log_lines(const char *needle)
{
    const char *dir = getenv("TEGULA_S3_DIR");
    if (!dir)
        return -1;
    char path[1024];
    snprintf(path, sizeof path, "%s/log/client.rgw.a.log", dir);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, fp))
        if (strstr(line, needle) && strstr(line, "beast:"))
            n++;
    fclose(fp);
    return n;
}

static void test_real_wrong_credentials(void **state)
{
    (void)state;
    if (!real_url())
        skip();
    /* A known access key with the wrong secret, and an unknown access key. */
    const char *cases[][3] = {
        {"wrong-secret", real_access_key, "SignatureDoesNotMatch"},
        {"unknown-key", "AKIDNOSUCHKEY0000000", "InvalidAccessKeyId"},
    };
    for (size_t i = 0; i < 2; i++) {
        char creds[512], prefix[96], url[2048], key_path[160];
        snprintf(creds, sizeof creds,
                 "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
                 cases[i][1], SECRET);
        const char *path = write_credentials(cases[i][0], creds);
        snprintf(prefix, sizeof prefix, "s3test-%ld/%s", (long)getpid(), cases[i][0]);
        char extra[600];
        snprintf(extra, sizeof extra, "credentials=%s", path);
        real_url_with(url, sizeof url, prefix, extra);
        error err = {{0}};
        storage *st = storage_open(url, &err);
        assert_non_null(st);
        double start = now_seconds();
        assert_int_equal(storage_put(st, "tile/0/000", "x", 1, NULL, &err), STORAGE_ERROR);
        double elapsed = now_seconds() - start;
        /* One clear sentence, no secret, and no retry storm. */
        assert_non_null(strstr(err.msg, "403"));
        assert_non_null(strstr(err.msg, cases[i][2]));
        assert_non_null(strstr(err.msg, "check the credentials"));
        assert_null(strstr(err.msg, SECRET));
        buffer got = {0};
        assert_int_equal(storage_get(st, "tile/0/000", 10, &got, &err), STORAGE_ERROR);
        assert_non_null(strstr(err.msg, "403"));
        char reported[sizeof err.msg];
        memcpy(reported, err.msg, sizeof reported);
        buffer_free(&got);
        storage_close(st);
        /* The gateway writes its log from a thread of its own: a request made afterwards
         * with good credentials, once logged, means everything before it is in the file. */
        char marker_url[1024], marker_path[160];
        real_url_with(marker_url, sizeof marker_url, prefix, "");
        storage *good = storage_open(marker_url, &err);
        assert_non_null(good);
        assert_int_equal(storage_get(good, "marker", 10, &got, &err), STORAGE_NOT_FOUND);
        storage_close(good);
        buffer_free(&got);
        snprintf(marker_path, sizeof marker_path, "/%s/marker ", prefix);
        for (int wait = 0; wait < 100 && count_server_log_lines(marker_path) == 0; wait++)
            usleep(50 * 1000);
        snprintf(key_path, sizeof key_path, "/%s/tile/0/000 ", prefix);
        int lines = count_server_log_lines(key_path);
        print_message("wrong credentials (%s): %s; %.3f s; requests seen by the server: %d\n",
                      cases[i][0], reported, elapsed, lines);
        if (lines >= 0)
            assert_int_equal(lines, 2); /* the PUT and the GET, once each */

        s3_client *c = open_client(url);
        s3_request req = {.method = "GET", .key = "x"};
        s3_response r = {0};
        perform_one(c, &req, &r);
        assert_int_equal(r.status, 403);
        assert_int_equal(r.attempts, 1);
        s3_stats stats;
        s3_client_stats(c, &stats);
        assert_int_equal(stats.requests, 1);
        assert_int_equal(stats.retries, 0);
        s3_response_free(&r);
        s3_client_free(c);
    }
}

static void test_real_missing_bucket(void **state)
{
    (void)state;
    if (!real_url())
        skip();
    /* A missing bucket is a configuration error, never an empty log. */
    const char *url = real_url();
    const char *q = strchr(url, '?');
    char other[1024];
    snprintf(other, sizeof other, "s3://tegula-no-such-bucket/x%s", q ? q : "");
    error err = {{0}};
    storage *st = storage_open(other, &err);
    assert_non_null(st);
    buffer got = {0};
    assert_int_equal(storage_get(st, "checkpoint", 100, &got, &err), STORAGE_ERROR);
    assert_non_null(strstr(err.msg, "NoSuchBucket"));
    assert_int_equal(storage_put(st, "checkpoint", "x", 1, NULL, &err), STORAGE_ERROR);
    assert_int_equal(storage_delete(st, "checkpoint", &err), STORAGE_ERROR);
    storage_close(st);
    lock *l = lock_open(other, &err);
    assert_non_null(l);
    assert_int_equal(lock_read(l, &got, NULL, &err), LOCK_ERROR);
    assert_non_null(strstr(err.msg, "NoSuchBucket"));
    lock_close(l);
    buffer_free(&got);
}

static void upload_many(const char *url, const char *label, size_t count, size_t size)
{
    error err = {{0}};
    storage *st = storage_open(url, &err);
    if (!st)
        fail_msg("storage_open: %s", err.msg);
    storage_object *objects = calloc(count, sizeof *objects);
    char (*keys)[40] = calloc(count, sizeof *keys);
    int *results = calloc(count, sizeof *results);
    uint8_t *data = malloc(size);
    assert_non_null(objects);
    assert_non_null(keys);
    assert_non_null(results);
    assert_non_null(data);
    memset(data, 0x5a, size);
    for (size_t i = 0; i < count; i++) {
        snprintf(keys[i], sizeof keys[i], "tile/0/x%03zu/%03zu", i / 1000, i % 1000);
        objects[i] = (storage_object){keys[i], data, size, STORAGE_PUT, NULL};
    }
    double start = now_seconds();
    int rc = storage_write_batch(st, objects, count, results, &err);
    double elapsed = now_seconds() - start;
    if (rc != STORAGE_OK)
        fail_msg("%s: %s", label, err.msg);
    print_message("%s: %zu x %zu B in %.2f s = %.0f objects/s\n", label, count, size, elapsed,
                  (double)count / elapsed);
    /* Spot checks: the first, a middle and the last object arrived whole. */
    buffer got = {0};
    for (size_t i = 0; i < count; i += count / 2 > 0 ? count / 2 : 1) {
        assert_int_equal(storage_get(st, keys[i], size, &got, &err), STORAGE_OK);
        assert_int_equal(got.len, size);
        assert_memory_equal(got.data, data, size);
    }
    buffer_free(&got);
    free(objects);
    free(keys);
    free(results);
    free(data);
    storage_close(st);
}

static void test_real_parallel_vs_serial_uploads(void **state)
{
    (void)state;
    if (!real_url())
        skip();
    char prefix[64], url[1024];
    snprintf(prefix, sizeof prefix, "s3test-%ld/parallel", (long)getpid());
    real_url_with(url, sizeof url, prefix, "");
    upload_many(url, "1,000 uploads, 16 connections", 1000, 4096);
    snprintf(prefix, sizeof prefix, "s3test-%ld/serial", (long)getpid());
    real_url_with(url, sizeof url, prefix, "connections=1");
    upload_many(url, "1,000 uploads, 1 connection", 1000, 4096);

    /* 1,001 keys: listing needs a continuation token (RGW pages at 1,000). */
    snprintf(prefix, sizeof prefix, "s3test-%ld/serial", (long)getpid());
    real_url_with(url, sizeof url, prefix, "");
    s3_client *c = open_client(url);
    s3_request put = {.method = "PUT", .key = "tile/1/000", .body = "x", .body_len = 1};
    s3_response r = {0};
    perform_one(c, &put, &r);
    assert_int_equal(r.status, 200);
    listed l = {0};
    error err = {{0}};
    assert_int_equal(s3_list(c, "tile/", collect_key, &l, &err), 0);
    assert_int_equal(l.count, 1001);
    assert_string_equal(l.keys[0], "tile/0/x000/000");
    s3_response_free(&r);
    s3_client_free(c);
}

typedef struct outage_writer {
    storage *store;
    int result;
    char message[256];
} outage_writer;

static void *write_during_outage(void *p)
{
    outage_writer *w = p;
    error err = {{0}};
    w->result = storage_put(w->store, "checkpoint", "after the outage", 16, NULL, &err);
    snprintf(w->message, sizeof w->message, "%s", err.msg);
    return NULL;
}

static int run_server_script(const char *command)
{
    const char *script = getenv("TEGULA_S3_SERVER_SCRIPT");
    const char *dir = getenv("TEGULA_S3_DIR");
    char line[2048];
    snprintf(line, sizeof line, "'%s' %s '%s' >/dev/null", script, command, dir);
    return system(line);
}

static void test_real_outage(void **state)
{
    (void)state;
    if (!real_url() || !getenv("TEGULA_S3_SERVER_SCRIPT") || !getenv("TEGULA_S3_DIR"))
        skip();
    char prefix[64], url[1024];
    snprintf(prefix, sizeof prefix, "s3test-%ld/outage", (long)getpid());
    real_url_with(url, sizeof url, prefix, "retry_time_ms=15000");
    error err = {{0}};
    storage *st = storage_open(url, &err);
    assert_non_null(st);
    assert_int_equal(storage_put(st, "checkpoint", "before", 6, NULL, &err), STORAGE_OK);

    /* The gateway goes away; a write started now keeps retrying and lands once it is back. */
    assert_int_equal(run_server_script("stop-rgw"), 0);
    outage_writer w = {.store = st};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, write_during_outage, &w), 0);
    sleep(1);
    assert_int_equal(run_server_script("start-rgw"), 0);
    pthread_join(thread, NULL);
    if (w.result != STORAGE_OK)
        fail_msg("write across the outage: %s", w.message);
    buffer got = {0};
    assert_int_equal(storage_get(st, "checkpoint", 100, &got, &err), STORAGE_OK);
    assert_int_equal(got.len, 16);
    assert_memory_equal(got.data, "after the outage", 16);
    buffer_free(&got);
    storage_close(st);

    /* An outage longer than the retry budget fails cleanly. */
    real_url_with(url, sizeof url, prefix, "retry_time_ms=300");
    st = storage_open(url, &err);
    assert_non_null(st);
    assert_int_equal(run_server_script("stop-rgw"), 0);
    assert_int_equal(storage_put(st, "checkpoint", "lost", 4, NULL, &err), STORAGE_ERROR);
    assert_non_null(strstr(err.msg, "gave up retrying"));
    assert_int_equal(run_server_script("start-rgw"), 0);
    storage_close(st);
}

#define SCRIPTED(test) cmocka_unit_test_setup_teardown(test, scripted_setup, scripted_teardown)

int main(void)
{
    if (getenv("AWS_ACCESS_KEY_ID"))
        real_access_key = strdup(getenv("AWS_ACCESS_KEY_ID"));
    if (getenv("AWS_SECRET_ACCESS_KEY"))
        real_secret_key = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parsing),
        cmocka_unit_test(test_credentials_file),
        cmocka_unit_test(test_canonical_query),
        SCRIPTED(test_request_headers),
        SCRIPTED(test_retries),
        cmocka_unit_test(test_unreachable_endpoint),
        SCRIPTED(test_response_limits),
        SCRIPTED(test_parallel_batches_reuse_connections),
        SCRIPTED(test_lock_write_whose_answer_was_lost),
        SCRIPTED(test_name_failure_uses_last_working_address),
        cmocka_unit_test(test_real_metadata),
        cmocka_unit_test(test_real_list),
        cmocka_unit_test(test_real_wrong_credentials),
        cmocka_unit_test(test_real_missing_bucket),
        cmocka_unit_test(test_real_parallel_vs_serial_uploads),
        cmocka_unit_test(test_real_outage),
    };
    int failed = cmocka_run_group_tests_name("s3", tests, NULL, NULL);
    free(real_access_key);
    free(real_secret_key);
    return failed;
}
