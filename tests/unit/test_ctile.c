/* ctile: the proxy on a real socket in front of a real in-process RFC 6962 upstream (an
 * http_server serving a deterministic log), with a file:// cache storage. */
#include "testutil.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "ctile.h"
#include "http_client.h"
#include "http_server.h"

/* ---------- the upstream log (a test peer) ---------- */

#define MAX_HELD 64

typedef struct held_request {
    http_request *req;
    uint64_t start, end;
} held_request;

typedef struct upstream {
    http_server *server;
    uint16_t port;
    atomic_uint_fast64_t tree_size;
    atomic_uint max_batch;   /* entries per get-entries answer, 0: no cap */
    atomic_int fail_status;  /* non-zero: every request gets this status */
    atomic_bool gate_closed; /* get-entries requests are held until the gate opens */
    atomic_bool garbage;     /* get-entries answers 200 with something that is not JSON */
    atomic_uint entries_requests, sth_requests, roots_requests, proof_requests,
        add_chain_requests, other_requests;
    pthread_mutex_t lock;
    held_request held[MAX_HELD];
    int held_count;
    char last_method[16];
    char last_target[1024];
    char last_content_type[128];
    buffer last_body;
} upstream;

/* The deterministic log: entry i's leaf_input and extra_data, base64. Lengths vary so a
 * slicing mistake shows. */
static void entry_fields(uint64_t i, buffer *leaf, buffer *extra)
{
    char raw[256];
    int n = snprintf(raw, sizeof raw, "leaf-%" PRIu64 "-", i);
    for (uint64_t r = 0; r < i % 5; r++)
        n += snprintf(raw + n, sizeof raw - (size_t)n, "pad%" PRIu64, r);
    leaf->len = 0;
    assert_int_equal(base64_encode(leaf, (const uint8_t *)raw, (size_t)n), 0);
    n = snprintf(raw, sizeof raw, "extra-data-of-%" PRIu64, i);
    extra->len = 0;
    assert_int_equal(base64_encode(extra, (const uint8_t *)raw, (size_t)n), 0);
}

static uint64_t query_u64(const char *query, const char *name, bool *found)
{
    char pattern[32];
    snprintf(pattern, sizeof pattern, "%s=", name);
    for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, pattern, strlen(pattern)) == 0) {
            *found = true;
            return strtoull(p + strlen(pattern), NULL, 10);
        }
    }
    *found = false;
    return 0;
}

/* Answers get-entries like an RFC 6962 log (in a layout unlike the proxy's own, so the test
 * sees the proxy re-render): 400 past the tree, shortened at the tree end or max_batch. */
static void answer_get_entries(upstream *u, http_request *req, uint64_t start, uint64_t end)
{
    uint64_t size = atomic_load(&u->tree_size);
    if (start >= size) {
        http_respond_text(req, 400, "start is beyond the tree\n");
        return;
    }
    if (end >= size)
        end = size - 1;
    unsigned batch = atomic_load(&u->max_batch);
    if (batch && end - start + 1 > batch)
        end = start + batch - 1;
    buffer out = {0}, leaf = {0}, extra = {0};
    buffer_append_str(&out, "{ \"entries\": [\n");
    for (uint64_t i = start; i <= end; i++) {
        entry_fields(i, &leaf, &extra);
        buffer_printf(&out, "%s  {\"extra_data\": \"%s\", \"leaf_input\": \"%s\"}",
                      i == start ? "" : ",\n", (char *)extra.data, (char *)leaf.data);
    }
    buffer_append_str(&out, "\n] }\n");
    const http_header headers[] = {{"Content-Type", "application/json"}, {NULL, NULL}};
    http_respond(req, 200, headers, out.data, out.len);
    buffer_free(&out);
    buffer_free(&leaf);
    buffer_free(&extra);
}

static void upstream_handle(http_request *req, void *ctx)
{
    upstream *u = ctx;
    const char *path = http_request_path(req);
    const char *query = http_request_query(req);
    size_t body_len;
    const uint8_t *body = http_request_body(req, &body_len);
    const char *type = http_request_header(req, "Content-Type");
    pthread_mutex_lock(&u->lock);
    snprintf(u->last_method, sizeof u->last_method, "%s", http_request_method(req));
    snprintf(u->last_target, sizeof u->last_target, "%s", http_request_target(req));
    snprintf(u->last_content_type, sizeof u->last_content_type, "%s", type ? type : "");
    u->last_body.len = 0;
    buffer_append(&u->last_body, body, body_len);
    pthread_mutex_unlock(&u->lock);

    static const http_header json[] = {{"Content-Type", "application/json"}, {NULL, NULL}};
    if (strcmp(path, "/log/ct/v1/get-entries") == 0) {
        atomic_fetch_add(&u->entries_requests, 1);
    } else if (strcmp(path, "/log/ct/v1/get-sth") == 0) {
        atomic_fetch_add(&u->sth_requests, 1);
    } else if (strcmp(path, "/log/ct/v1/get-roots") == 0) {
        atomic_fetch_add(&u->roots_requests, 1);
    } else if (strcmp(path, "/log/ct/v1/get-proof-by-hash") == 0) {
        atomic_fetch_add(&u->proof_requests, 1);
    } else if (strcmp(path, "/log/ct/v1/add-chain") == 0) {
        atomic_fetch_add(&u->add_chain_requests, 1);
    } else {
        atomic_fetch_add(&u->other_requests, 1);
    }
    int fail = atomic_load(&u->fail_status);
    if (fail) {
        http_respond_text(req, fail, "upstream broke\n");
        return;
    }
    if (strcmp(path, "/log/ct/v1/get-entries") == 0) {
        bool has_start, has_end;
        uint64_t start = query_u64(query, "start", &has_start);
        uint64_t end = query_u64(query, "end", &has_end);
        if (!has_start || !has_end || end < start) {
            http_respond_text(req, 400, "bad range\n");
            return;
        }
        if (atomic_load(&u->garbage)) {
            http_respond(req, 200, json, "<html>", 6);
            return;
        }
        pthread_mutex_lock(&u->lock);
        if (atomic_load(&u->gate_closed) && u->held_count < MAX_HELD) {
            u->held[u->held_count++] = (held_request){req, start, end};
            pthread_mutex_unlock(&u->lock);
            return;
        }
        pthread_mutex_unlock(&u->lock);
        answer_get_entries(u, req, start, end);
    } else if (strcmp(path, "/log/ct/v1/get-sth") == 0) {
        /* The timestamp counts fetches, so a client can tell a cached STH from a new one. */
        char out[512];
        int n = snprintf(out, sizeof out,
                         "{\"tree_size\":%" PRIu64 ",\"timestamp\":%u,\"sha256_root_hash\":"
                         "\"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\","
                         "\"tree_head_signature\":\"BAMARzBFAiEA\"}",
                         (uint64_t)atomic_load(&u->tree_size), atomic_load(&u->sth_requests));
        http_respond(req, 200, json, out, (size_t)n);
    } else if (strcmp(path, "/log/ct/v1/get-roots") == 0) {
        static const char roots[] = "{\"certificates\":[\"MIIBroot\",\"MIIBother\"]}";
        http_respond(req, 200, json, roots, sizeof roots - 1);
    } else if (strcmp(path, "/log/ct/v1/get-proof-by-hash") == 0) {
        static const char proof[] = "{\"leaf_index\":3,\"audit_path\":[\"AAAA\"]}";
        const http_header headers[] = {{"Content-Type", "application/json"},
                                       {"Cache-Control", "public, max-age=17"},
                                       {NULL, NULL}};
        http_respond(req, 200, headers, proof, sizeof proof - 1);
    } else if (strcmp(path, "/log/ct/v1/add-chain") == 0) {
        /* Says what arrived, so the client side can check the body made it unchanged. */
        char out[256];
        int n = snprintf(out, sizeof out, "{\"received\":%zu,\"method\":\"%s\"}", body_len,
                         http_request_method(req));
        const http_header headers[] = {{"Content-Type", "application/json"},
                                       {"Retry-After", "7"},
                                       {NULL, NULL}};
        http_respond(req, 200, headers, out, (size_t)n);
    } else {
        http_respond_text(req, 404, "no such endpoint upstream\n");
    }
}

static void upstream_release(upstream *u)
{
    pthread_mutex_lock(&u->lock);
    atomic_store(&u->gate_closed, false);
    int n = u->held_count;
    held_request held[MAX_HELD];
    memcpy(held, u->held, sizeof held);
    u->held_count = 0;
    pthread_mutex_unlock(&u->lock);
    for (int i = 0; i < n; i++)
        answer_get_entries(u, held[i].req, held[i].start, held[i].end);
}

static int upstream_held(upstream *u)
{
    pthread_mutex_lock(&u->lock);
    int n = u->held_count;
    pthread_mutex_unlock(&u->lock);
    return n;
}

/* ---------- fixture ---------- */

typedef struct fixture {
    upstream up;
    ctile_proxy *proxy;
    http_router *router;
    http_server *proxy_server;
    uint16_t proxy_port;
    http_client *client;
    char cache_dir[PATH_MAX];
    char cache_url[PATH_MAX + 16];
    char upstream_url[128];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    upstream *u = &f->up;
    pthread_mutex_init(&u->lock, NULL);
    atomic_store(&u->tree_size, 1000);
    http_server_config cfg = {.listen = "127.0.0.1:0", .threads = 2, .handler = upstream_handle,
                              .handler_ctx = u, .stop_timeout_ms = 200};
    u->server = http_server_start(&cfg, NULL);
    assert_non_null(u->server);
    u->port = http_server_port(u->server);
    snprintf(f->upstream_url, sizeof f->upstream_url, "http://127.0.0.1:%u/log", u->port);
    http_client_config cc = {.max_host_connections = 64};
    f->client = http_client_new(&cc, NULL);
    assert_non_null(f->client);
    *state = f;
    return 0;
}

static void proxy_stop(fixture *f)
{
    if (f->proxy_server)
        http_server_stop(f->proxy_server);
    ctile_proxy_free(f->proxy);
    http_router_free(f->router);
    f->proxy_server = NULL;
    f->proxy = NULL;
    f->router = NULL;
}

/* Starts the proxy at /proxy/ with cfg's tunables (prefix, upstream and cache filled in). */
static void proxy_start(fixture *f, ctile_config cfg)
{
    if (!cfg.prefix)
        cfg.prefix = "/proxy/";
    if (!cfg.upstream_url)
        cfg.upstream_url = f->upstream_url;
    cfg.cache_url = f->cache_url;
    error err = {{0}};
    f->proxy = ctile_proxy_new(&cfg, &err);
    if (!f->proxy)
        fail_msg("ctile_proxy_new: %s", err.msg);
    f->router = http_router_new();
    assert_int_equal(http_router_add(f->router, NULL, "/proxy/*", ctile_handle, f->proxy), 0);
    http_server_config sc = {.listen = "127.0.0.1:0", .threads = 2,
                             .handler = http_router_handle, .handler_ctx = f->router,
                             .stop_timeout_ms = 200};
    f->proxy_server = http_server_start(&sc, &err);
    assert_non_null(f->proxy_server);
    f->proxy_port = http_server_port(f->proxy_server);
}

static void use_cache_dir(fixture *f, const char *name)
{
    const char *dir = test_tmpdir(name);
    assert_non_null(realpath(dir, f->cache_dir));
    snprintf(f->cache_url, sizeof f->cache_url, "file://%s", f->cache_dir);
}

static int teardown(void **state)
{
    fixture *f = *state;
    proxy_stop(f);
    upstream_release(&f->up);
    http_server_stop(f->up.server);
    http_client_free(f->client);
    buffer_free(&f->up.last_body);
    pthread_mutex_destroy(&f->up.lock);
    free(f);
    return 0;
}

/* ---------- requests to the proxy ---------- */

static void proxy_request(fixture *f, const char *method, const char *target, const char *type,
                          const void *body, size_t body_len, http_client_response *r)
{
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", f->proxy_port, target);
    http_header headers[2] = {{NULL, NULL}, {NULL, NULL}};
    if (type)
        headers[0] = (http_header){"Content-Type", type};
    http_client_request req = {.method = method, .url = url, .headers = headers, .body = body,
                               .body_len = body_len};
    assert_int_equal(http_client_fetch(f->client, &req, r, NULL), 0);
    assert_int_equal(r->result, HTTP_CLIENT_OK);
}

static void proxy_get(fixture *f, const char *target, http_client_response *r)
{
    proxy_request(f, "GET", target, NULL, NULL, 0, r);
}

static void get_entries(fixture *f, uint64_t start, uint64_t end, http_client_response *r)
{
    char target[128];
    snprintf(target, sizeof target, "/proxy/ct/v1/get-entries?start=%" PRIu64 "&end=%" PRIu64,
             start, end);
    proxy_get(f, target, r);
}

static const char *header(const http_client_response *r, const char *name)
{
    const char *v = http_client_response_header(r, name);
    return v ? v : "";
}

/* The body is a get-entries answer holding exactly entries first..last of the test log. */
static void expect_entries(const http_client_response *r, uint64_t first, uint64_t last)
{
    assert_int_equal(r->status, 200);
    assert_string_equal(header(r, "Content-Type"), "application/json");
    json_error_t jerr;
    json_t *root = json_loadb((const char *)r->body.data, r->body.len, 0, &jerr);
    assert_non_null(root);
    json_t *entries = json_object_get(root, "entries");
    assert_true(json_is_array(entries));
    assert_int_equal(json_array_size(entries), last - first + 1);
    buffer leaf = {0}, extra = {0};
    for (uint64_t i = first; i <= last; i++) {
        json_t *e = json_array_get(entries, i - first);
        entry_fields(i, &leaf, &extra);
        assert_string_equal(json_string_value(json_object_get(e, "leaf_input")),
                            (char *)leaf.data);
        assert_string_equal(json_string_value(json_object_get(e, "extra_data")),
                            (char *)extra.data);
    }
    buffer_free(&leaf);
    buffer_free(&extra);
    json_decref(root);
}

static void expect_entries_at(fixture *f, uint64_t start, uint64_t end, uint64_t first,
                              uint64_t last, const char *cache_control)
{
    http_client_response r;
    get_entries(f, start, end, &r);
    expect_entries(&r, first, last);
    if (cache_control)
        assert_string_equal(header(&r, "Cache-Control"), cache_control);
    http_client_response_free(&r);
}

static void expect_status(fixture *f, const char *target, int status, const char *body_has)
{
    http_client_response r;
    proxy_get(f, target, &r);
    if (r.status != status)
        fail_msg("%s: status %d, want %d", target, r.status, status);
    buffer_terminate(&r.body);
    if (body_has && !strstr((char *)r.body.data, body_has))
        fail_msg("%s: body \"%s\" lacks \"%s\"", target, (char *)r.body.data, body_has);
    http_client_response_free(&r);
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool file_exists(const char *dir, const char *rel)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---------- tests ---------- */

typedef struct collect {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    http_client_response responses[32];
} collect;

typedef struct collect_slot {
    collect *c;
    int i;
} collect_slot;

static void on_response(http_client_response *r, void *arg)
{
    collect_slot *s = arg;
    pthread_mutex_lock(&s->c->lock);
    s->c->responses[s->i] = *r;
    memset(r, 0, sizeof *r); /* keep the body and headers */
    s->c->done++;
    pthread_cond_signal(&s->c->cond);
    pthread_mutex_unlock(&s->c->lock);
}

static void test_single_flight_under_concurrency(void **state)
{
    fixture *f = *state;
    use_cache_dir(f, "ctile_single_flight");
    proxy_start(f, (ctile_config){0});
    atomic_store(&f->up.gate_closed, true);

    /* Static: if an assertion fails, late callbacks must still find them. */
    static collect c = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    static collect_slot slots[32];
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/proxy/ct/v1/get-entries?start=512&end=767",
             f->proxy_port);
    for (int i = 0; i < 32; i++) {
        slots[i] = (collect_slot){&c, i};
        http_client_request req = {.url = url};
        assert_int_equal(http_client_send(f->client, &req, on_response, &slots[i], NULL), 0);
    }
    /* Hold the one upstream fetch until all 32 clients are waiting on it. */
    ctile_stats st = {0};
    for (int i = 0; i < 4000; i++) {
        ctile_stats_read(f->proxy, &st);
        if (st.joined_fetches == 31 && upstream_held(&f->up) == 1)
            break;
        sleep_ms(5);
    }
    assert_int_equal(st.joined_fetches, 31);
    assert_int_equal(upstream_held(&f->up), 1);
    upstream_release(&f->up);

    pthread_mutex_lock(&c.lock);
    while (c.done < 32)
        pthread_cond_wait(&c.cond, &c.lock);
    pthread_mutex_unlock(&c.lock);
    for (int i = 0; i < 32; i++) {
        expect_entries(&c.responses[i], 512, 767);
        assert_string_equal(header(&c.responses[i], "Cache-Control"), "public, max-age=86400");
        http_client_response_free(&c.responses[i]);
    }
    assert_int_equal(atomic_load(&f->up.entries_requests), 1);
    assert_string_equal(f->up.last_target, "/log/ct/v1/get-entries?start=512&end=767");
    ctile_stats_read(f->proxy, &st);
    assert_int_equal(st.upstream_tile_fetches, 1);
    assert_int_equal(st.entries_requests, 32);
}

static void test_full_tiles_persist(void **state)
{
    fixture *f = *state;
    use_cache_dir(f, "ctile_persist");
    proxy_start(f, (ctile_config){0});
    expect_entries_at(f, 256, 511, 256, 511, "public, max-age=86400");
    assert_int_equal(atomic_load(&f->up.entries_requests), 1);
    assert_true(file_exists(f->cache_dir, "ctile/256/1"));
    /* Again, and a sub-range: from memory. */
    expect_entries_at(f, 256, 511, 256, 511, "public, max-age=86400");
    expect_entries_at(f, 300, 400, 300, 400, "public, max-age=86400");
    assert_int_equal(atomic_load(&f->up.entries_requests), 1);

    /* A new proxy on the same cache storage: the tile comes from storage, not upstream. */
    proxy_stop(f);
    proxy_start(f, (ctile_config){0});
    expect_entries_at(f, 260, 100000, 260, 511, "public, max-age=86400");
    expect_entries_at(f, 256, 256, 256, 256, "public, max-age=86400");
    assert_int_equal(atomic_load(&f->up.entries_requests), 1); /* the first proxy's */
    ctile_stats st;
    ctile_stats_read(f->proxy, &st);
    assert_int_equal(st.storage_hits, 1);
    assert_int_equal(st.memory_hits, 1);
    assert_int_equal(st.upstream_tile_fetches, 0);

    /* The stored object is the tile's JSON in the proxy's own rendering. */
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/ctile/256/1", f->cache_dir);
    buffer stored = {0};
    read_file_or_fail(path, &stored);
    http_client_response fake = {.status = 200, .body = stored};
    http_header type = {"Content-Type", "application/json"};
    fake.headers = &type;
    fake.header_count = 1;
    expect_entries(&fake, 256, 511);
    buffer_free(&stored);
}

static void test_ranges_inside_a_tile(void **state)
{
    fixture *f = *state;
    use_cache_dir(f, "ctile_ranges");
    proxy_start(f, (ctile_config){0});
    expect_entries_at(f, 5, 7, 5, 7, "public, max-age=86400");         /* starts mid-tile */
    expect_entries_at(f, 250, 600, 250, 255, "public, max-age=86400");  /* truncated */
    expect_entries_at(f, 255, 255, 255, 255, "public, max-age=86400");  /* last of a tile */
    expect_entries_at(f, 0, 0, 0, 0, "public, max-age=86400");
    expect_entries_at(f, 0, 255, 0, 255, "public, max-age=86400");
    assert_int_equal(atomic_load(&f->up.entries_requests), 1);
    /* Percent-encoded digits are still digits. */
    http_client_response r;
    proxy_get(f, "/proxy/ct/v1/get-entries?start=%31%30&end=1%32&start=99", &r);
    expect_entries(&r, 10, 12);
    http_client_response_free(&r);
    /* HEAD: headers only. */
    proxy_request(f, "HEAD", "/proxy/ct/v1/get-entries?start=1&end=2", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    assert_string_equal(header(&r, "Cache-Control"), "public, max-age=86400");
    http_client_response_free(&r);
    assert_int_equal(atomic_load(&f->up.entries_requests), 1);
}

static void test_partial_tiles_expire_and_fill(void **state)
{
    fixture *f = *state;
    use_cache_dir(f, "ctile_partial");
    atomic_store(&f->up.tree_size, 300);
    proxy_start(f, (ctile_config){.partial_max_age_s = 1});

    uint64_t fetched = monotonic_ms();
    http_client_response r;
    get_entries(f, 256, 511, &r);
    expect_entries(&r, 256, 299);
    const char *cc = header(&r, "Cache-Control");
    assert_true(strcmp(cc, "public, max-age=1") == 0 || strcmp(cc, "public, max-age=0") == 0);
    http_client_response_free(&r);
    expect_entries_at(f, 299, 400, 299, 299, NULL);
    expect_status(f, "/proxy/ct/v1/get-entries?start=300&end=310", 400, "past the end");
    /* Within the max age nothing went upstream again (only checkable if we were quick). */
    if (monotonic_ms() - fetched < 900)
        assert_int_equal(atomic_load(&f->up.entries_requests), 1);
    assert_false(file_exists(f->cache_dir, "ctile/256/1"));

    /* The log grows; once the partial tile has aged out, the proxy fetches it again and it
     * is now full: long-cached, stored, and never fetched again. */
    atomic_store(&f->up.tree_size, 600);
    unsigned before = atomic_load(&f->up.entries_requests);
    sleep_ms(1100);
    expect_entries_at(f, 256, 511, 256, 511, "public, max-age=86400");
    assert_int_equal(atomic_load(&f->up.entries_requests), before + 1);
    assert_true(file_exists(f->cache_dir, "ctile/256/1"));
    sleep_ms(1100);
    expect_entries_at(f, 300, 310, 300, 310, "public, max-age=86400");
    assert_int_equal(atomic_load(&f->up.entries_requests), before + 1);

    /* The next tile is partial again (512..599). */
    expect_entries_at(f, 520, 9999, 520, 599, NULL);
    assert_int_equal(atomic_load(&f->up.entries_requests), before + 2);
}

static void test_short_upstream_answers_stay_partial(void **state)
{
    fixture *f = *state;
    use_cache_dir(f, "ctile_short");
    atomic_store(&f->up.max_batch, 100);
    proxy_start(f, (ctile_config){.partial_max_age_s = 1});
    http_client_response r;
    get_entries(f, 0, 255, &r);
    expect_entries(&r, 0, 99);
    assert_string_not_equal(header(&r, "Cache-Control"), "public, max-age=86400");
    http_client_response_free(&r);
    assert_false(file_exists(f->cache_dir, "ctile/256/0"));
    assert_string_equal(f->up.last_target, "/log/ct/v1/get-entries?start=0&end=255");
}

static void test_invalid_requests(void **state)
{
    fixture *f = *state;
    use_cache_dir(f, "ctile_invalid");
    proxy_start(f, (ctile_config){0});
    expect_status(f, "/proxy/ct/v1/get-entries", 400, "missing start parameter");
    expect_status(f, "/proxy/ct/v1/get-entries?end=5", 400, "missing start parameter");
    expect_status(f, "/proxy/ct/v1/get-entries?start=1", 400, "missing end parameter");
    expect_status(f, "/proxy/ct/v1/get-entries?start=-1&end=5", 400, "invalid start parameter");
    expect_status(f, "/proxy/ct/v1/get-entries?start=abc&end=5", 400, "invalid start");
    expect_status(f, "/proxy/ct/v1/get-entries?start=&end=5", 400, "invalid start");
    expect_status(f, "/proxy/ct/v1/get-entries?start=1&end=5x", 400, "invalid end parameter");
    expect_status(f, "/proxy/ct/v1/get-entries?start=0&end=9223372036854775808", 400,
                  "invalid end");
    expect_status(f, "/proxy/ct/v1/get-entries?start=0&end=%zz", 400, "invalid end");
    expect_status(f, "/proxy/ct/v1/get-entries?start=6&end=5", 400,
                  "end must be greater than or equal to start");
    /* Paths that could walk out of the upstream prefix, or are not paths at all. */
    expect_status(f, "/proxy/ct/v1/../../admin", 400, "invalid path");
    expect_status(f, "/proxy/ct/v1/%2e%2e/x", 400, "invalid path");
    expect_status(f, "/proxy/ct//v1/get-sth", 400, "invalid path");
    expect_status(f, "/proxy/./ct/v1/get-sth", 400, "invalid path");
    /* Only GET and HEAD for the cached endpoints. */
    http_client_response r;
    proxy_request(f, "POST", "/proxy/ct/v1/get-entries?start=0&end=1", NULL, "x", 1, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(header(&r, "Allow"), "GET, HEAD");
    http_client_response_free(&r);
    assert_int_equal(atomic_load(&f->up.entries_requests), 0);
    assert_int_equal(atomic_load(&f->up.other_requests), 0);
    /* The largest valid start still works out its tile without overflow (upstream: 400). */
    expect_status(f, "/proxy/ct/v1/get-entries?start=9223372036854775807&end=9223372036854775807",
                  400, "beyond the tree");
    assert_string_equal(f->up.last_target, "/log/ct/v1/get-entries?start=9223372036854775552"
                                           "&end=9223372036854775807");
}

static void test_passthrough(void **state)
{
    fixture *f = *state;
    use_cache_dir(f, "ctile_passthrough");
    proxy_start(f, (ctile_config){0});
    http_client_response r;

    proxy_get(f, "/proxy/ct/v1/get-roots", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Content-Type"), "application/json");
    buffer_terminate(&r.body);
    assert_string_equal((char *)r.body.data, "{\"certificates\":[\"MIIBroot\",\"MIIBother\"]}");
    http_client_response_free(&r);
    assert_string_equal(f->up.last_target, "/log/ct/v1/get-roots");

    /* The raw query reaches upstream byte for byte: encodings, order, repeats, empty values. */
    const char *query = "hash=n5x%2BZ%2F8w%3D%3D&tree_size=10&x=a+b&tree_size=11&flag&e=";
    char target[256];
    snprintf(target, sizeof target, "/proxy/ct/v1/get-proof-by-hash?%s", query);
    proxy_get(f, target, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Cache-Control"), "public, max-age=17");
    buffer_terminate(&r.body);
    assert_string_equal((char *)r.body.data, "{\"leaf_index\":3,\"audit_path\":[\"AAAA\"]}");
    http_client_response_free(&r);
    char want[512];
    snprintf(want, sizeof want, "/log/ct/v1/get-proof-by-hash?%s", query);
    assert_string_equal(f->up.last_target, want);
    assert_string_equal(f->up.last_method, "GET");
    /* Bytes a URL parser might be tempted to re-encode or reject. */
    proxy_get(f, "/proxy/ct/v1/get-roots?a=[1]&b={x}|y&c=%zz&d='~!$*,;:@/?", &r);
    assert_int_equal(r.status, 200);
    http_client_response_free(&r);
    assert_string_equal(f->up.last_target, "/log/ct/v1/get-roots?a=[1]&b={x}|y&c=%zz&d='~!$*,;:@/?");
    /* An empty query stays an empty query. */
    proxy_get(f, "/proxy/ct/v1/get-roots?", &r);
    http_client_response_free(&r);
    assert_string_equal(f->up.last_target, "/log/ct/v1/get-roots?");

    /* POST bodies and their Content-Type go through unchanged; Retry-After comes back. */
    size_t body_len = 70000;
    char *body = malloc(body_len);
    memcpy(body, "{\"chain\":[\"", 11);
    for (size_t i = 11; i < body_len - 3; i++)
        body[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"[i % 32];
    memcpy(body + body_len - 3, "\"]}", 3);
    proxy_request(f, "POST", "/proxy/ct/v1/add-chain", "application/json", body, body_len, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Retry-After"), "7");
    buffer_terminate(&r.body);
    assert_string_equal((char *)r.body.data, "{\"received\":70000,\"method\":\"POST\"}");
    http_client_response_free(&r);
    assert_string_equal(f->up.last_method, "POST");
    assert_string_equal(f->up.last_content_type, "application/json");
    assert_int_equal(f->up.last_body.len, body_len);
    assert_memory_equal(f->up.last_body.data, body, body_len);
    free(body);

    /* Upstream statuses come back as they are. */
    expect_status(f, "/proxy/ct/v1/get-nothing?a=1", 404, "no such endpoint upstream");
    assert_string_equal(f->up.last_target, "/log/ct/v1/get-nothing?a=1");
    /* Outside the prefix: not the proxy's business. */
    expect_status(f, "/proxyx/ct/v1/get-roots", 404, NULL);
    assert_int_equal(atomic_load(&f->up.entries_requests), 0);
}

static void test_upstream_errors_propagate_uncached(void **state)
{
    fixture *f = *state;
    use_cache_dir(f, "ctile_errors");
    proxy_start(f, (ctile_config){0});
    atomic_store(&f->up.fail_status, 500);
    for (int i = 0; i < 2; i++) {
        http_client_response r;
        get_entries(f, 0, 10, &r);
        assert_int_equal(r.status, 500);
        assert_string_equal(header(&r, "Cache-Control"), "no-store");
        buffer_terminate(&r.body);
        assert_string_equal((char *)r.body.data, "upstream broke\n");
        http_client_response_free(&r);
        expect_status(f, "/proxy/ct/v1/get-sth", 500, "upstream broke");
        expect_status(f, "/proxy/ct/v1/get-roots", 500, "upstream broke");
    }
    assert_int_equal(atomic_load(&f->up.entries_requests), 2);
    assert_int_equal(atomic_load(&f->up.sth_requests), 2);
    assert_int_equal(atomic_load(&f->up.roots_requests), 2);
    assert_false(file_exists(f->cache_dir, "ctile/256/0"));
    /* Upstream recovers: the next request fetches afresh. */
    atomic_store(&f->up.fail_status, 0);
    expect_entries_at(f, 0, 10, 0, 10, "public, max-age=86400");
    assert_int_equal(atomic_load(&f->up.entries_requests), 3);
    /* A 4xx from upstream (start past its tree) is passed back too, and not cached. */
    expect_status(f, "/proxy/ct/v1/get-entries?start=5000&end=5001", 400, "beyond the tree");
    expect_status(f, "/proxy/ct/v1/get-entries?start=5000&end=5001", 400, "beyond the tree");
    assert_int_equal(atomic_load(&f->up.entries_requests), 5);
    /* A 200 that is not a get-entries answer is a bad gateway, and not cached either. */
    atomic_store(&f->up.garbage, true);
    expect_status(f, "/proxy/ct/v1/get-entries?start=256&end=300", 502, "malformed");
    expect_status(f, "/proxy/ct/v1/get-entries?start=256&end=300", 502, "malformed");
    assert_int_equal(atomic_load(&f->up.entries_requests), 7);
    ctile_stats st;
    ctile_stats_read(f->proxy, &st);
    assert_int_equal(st.upstream_errors, 10);
}

static void test_transport_failures(void **state)
{
    fixture *f = *state;
    use_cache_dir(f, "ctile_transport");
    /* Upstream too slow: 504, and the late answer does not linger. */
    proxy_start(f, (ctile_config){.upstream_timeout_ms = 300});
    atomic_store(&f->up.gate_closed, true);
    expect_status(f, "/proxy/ct/v1/get-entries?start=0&end=1", 504, "upstream request failed");
    upstream_release(&f->up);
    proxy_stop(f);

    /* Nobody listening upstream: 502 for every kind of request. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    char dead[64];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%u/", ntohs(a.sin_port));
    proxy_start(f, (ctile_config){.upstream_url = dead});
    expect_status(f, "/proxy/ct/v1/get-entries?start=0&end=1", 502, "upstream request failed");
    expect_status(f, "/proxy/ct/v1/get-sth", 502, "upstream request failed");
    expect_status(f, "/proxy/ct/v1/get-roots", 502, "upstream request failed");
}

static void test_sth_cached(void **state)
{
    fixture *f = *state;
    use_cache_dir(f, "ctile_sth");
    proxy_start(f, (ctile_config){.sth_max_age_s = 1});
    uint64_t fetched = monotonic_ms();
    http_client_response r;
    proxy_get(f, "/proxy/ct/v1/get-sth", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Content-Type"), "application/json");
    const char *cc = header(&r, "Cache-Control");
    assert_true(strcmp(cc, "public, max-age=1") == 0 || strcmp(cc, "public, max-age=0") == 0);
    buffer_terminate(&r.body);
    assert_non_null(strstr((char *)r.body.data, "\"tree_size\":1000,\"timestamp\":1,"));
    http_client_response_free(&r);
    proxy_get(f, "/proxy/ct/v1/get-sth", &r);
    buffer_terminate(&r.body);
    if (monotonic_ms() - fetched < 900) {
        assert_non_null(strstr((char *)r.body.data, "\"timestamp\":1,"));
        assert_int_equal(atomic_load(&f->up.sth_requests), 1);
    }
    http_client_response_free(&r);

    sleep_ms(1100);
    unsigned before = atomic_load(&f->up.sth_requests);
    proxy_get(f, "/proxy/ct/v1/get-sth", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(atomic_load(&f->up.sth_requests), before + 1);
    http_client_response_free(&r);

    /* Default max age is 60 s and is what the header says. */
    proxy_stop(f);
    proxy_start(f, (ctile_config){0});
    proxy_get(f, "/proxy/ct/v1/get-sth", &r);
    assert_string_equal(header(&r, "Cache-Control"), "public, max-age=60");
    http_client_response_free(&r);
}

static void test_config_validation(void **state)
{
    fixture *f = *state;
    use_cache_dir(f, "ctile_config");
    const ctile_config good = {.prefix = "/p/", .upstream_url = "https://ct.example/log",
                               .cache_url = f->cache_url};
    error err = {{0}};
    ctile_proxy *p = ctile_proxy_new(&good, &err);
    assert_non_null(p);
    ctile_proxy_free(p);
    ctile_config bad = good;
    bad.prefix = "p/";
    assert_null(ctile_proxy_new(&bad, &err));
    bad = good;
    bad.prefix = "/a/../";
    assert_null(ctile_proxy_new(&bad, &err));
    bad = good;
    bad.upstream_url = "ftp://x/";
    assert_null(ctile_proxy_new(&bad, &err));
    bad = good;
    bad.upstream_url = "https://x/?a=b";
    assert_null(ctile_proxy_new(&bad, &err));
    bad = good;
    bad.partial_max_age_s = 61;
    assert_null(ctile_proxy_new(&bad, &err));
    bad = good;
    bad.sth_max_age_s = 3600;
    assert_null(ctile_proxy_new(&bad, &err));
    bad = good;
    bad.tile_size = 100000;
    assert_null(ctile_proxy_new(&bad, &err));
    bad = good;
    bad.cache_url = NULL;
    assert_null(ctile_proxy_new(&bad, &err));
    bad = good;
    bad.cache_url = "s3://bucket/x";
    assert_null(ctile_proxy_new(&bad, &err));
}

static void test_small_tiles_and_memory_eviction(void **state)
{
    fixture *f = *state;
    use_cache_dir(f, "ctile_small");
    /* Tiny tiles and a memory budget of about one tile: evicted tiles come back from storage. */
    proxy_start(f, (ctile_config){.tile_size = 16, .memory_cache_bytes = 1});
    for (uint64_t t = 0; t < 5; t++)
        expect_entries_at(f, t * 16 + 3, t * 16 + 40, t * 16 + 3, t * 16 + 15, NULL);
    assert_int_equal(atomic_load(&f->up.entries_requests), 5);
    assert_true(file_exists(f->cache_dir, "ctile/16/4"));
    for (uint64_t t = 0; t < 5; t++)
        expect_entries_at(f, t * 16, t * 16 + 15, t * 16, t * 16 + 15, "public, max-age=86400");
    assert_int_equal(atomic_load(&f->up.entries_requests), 5);
    ctile_stats st;
    ctile_stats_read(f->proxy, &st);
    assert_true(st.storage_hits >= 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_single_flight_under_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_tiles_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ranges_inside_a_tile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_tiles_expire_and_fill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_upstream_answers_stay_partial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passthrough, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_errors_propagate_uncached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sth_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_tiles_and_memory_eviction, setup, teardown),
    };
    return cmocka_run_group_tests_name("ctile", tests, NULL, NULL);
}
