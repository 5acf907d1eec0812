/* readpath: the monitoring endpoints over a real 600-entry log on disk. Every object is
 * checked for its exact headers and bytes; malformed and hostile paths must never reach
 * storage (a wrapping storage backend records every key asked for) and never escape the
 * log's directory (planted symbolic links). */
#include "testutil.h"
#include "testlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "gzip.h"
#include "readpath.h"
#include "sha256.h"

/* ---- A storage wrapper that records the keys reaching the backend ---------------------- */

#define SPY_KEYS 64

typedef struct spy_storage {
    storage base;
    storage *inner;
    size_t gets;
    char keys[SPY_KEYS][STORAGE_KEY_MAX + 1];
    /* When set, objects come back with this metadata, as from a backend that stores it
     * (s3), instead of none (file). */
    const storage_object_info *stored_info;
} spy_storage;

static int spy_write_batch(storage *s, const storage_object *o, size_t n, int *results, error *err)
{
    spy_storage *spy = (spy_storage *)s;
    return storage_write_batch(spy->inner, o, n, results, err);
}

static int spy_get(storage *s, const char *key, size_t max_len, buffer *out, error *err)
{
    spy_storage *spy = (spy_storage *)s;
    snprintf(spy->keys[spy->gets % SPY_KEYS], sizeof spy->keys[0], "%s", key);
    spy->gets++;
    return storage_get(spy->inner, key, max_len, out, err);
}

static int spy_get_info(storage *s, const char *key, size_t max_len, buffer *out,
                        storage_object_info *info, error *err)
{
    spy_storage *spy = (spy_storage *)s;
    int rc = spy_get(s, key, max_len, out, err);
    if (rc == STORAGE_OK && spy->stored_info)
        *info = *spy->stored_info;
    return rc;
}

static int spy_remove(storage *s, const char *key, error *err)
{
    spy_storage *spy = (spy_storage *)s;
    return storage_delete(spy->inner, key, err);
}

static void spy_close(storage *s)
{
    (void)s;
}

static const storage_backend spy_backend = {"spy",     spy_write_batch, spy_get,
                                            spy_remove, spy_close,       spy_get_info};

/* ---- Fixture ----------------------------------------------------------------------------- */

typedef struct fixture {
    test_log log;
    spy_storage spy;
    readpath *rp;
} fixture;

static fixture *fx_new(const char *name, uint64_t size)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    test_log_create(&f->log, name);
    test_log_grow(&f->log, size);
    f->spy.base.backend = &spy_backend;
    f->spy.inner = f->log.storage;
    error err = {{0}};
    readpath_config cfg = {.storage = &f->spy.base};
    f->rp = readpath_new(&cfg, &err);
    assert_non_null(f->rp);
    return f;
}

static void fx_free(fixture *f)
{
    readpath_free(f->rp);
    test_log_free(&f->log);
    free(f);
}

typedef struct req_opts {
    const char *method;
    const char *accept_encoding;
    const char *if_none_match;
} req_opts;

static void get(fixture *f, const char *path, size_t len, const req_opts *o, read_response *out)
{
    read_request req = {.method = o && o->method ? o->method : "GET",
                        .path = path,
                        .path_len = len,
                        .accept_encoding = o ? o->accept_encoding : NULL,
                        .if_none_match = o ? o->if_none_match : NULL};
    readpath_handle(f->rp, &req, out);
}

static void get_str(fixture *f, const char *path, const req_opts *o, read_response *out)
{
    get(f, path, strlen(path), o, out);
}

static const char *header(const read_response *r, const char *name)
{
    http_header h[READ_MAX_HEADERS];
    read_response_headers(r, h);
    for (size_t i = 0; h[i].name; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

static void read_stored(fixture *f, const char *key, buffer *out)
{
    char path[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", f->log.dir, key);
    buffer_reset(out);
    read_file_or_fail(path, out);
}

static void assert_body(const read_response *r, const buffer *want)
{
    assert_int_equal(r->body_len, want->len);
    assert_memory_equal(r->body, want->data, want->len);
}

/* Errors carry no lifetime a cache could keep, but are still CORS-readable. */
static void assert_uncacheable_error(const read_response *r, int status)
{
    assert_int_equal(r->status, status);
    assert_string_equal(header(r, "Cache-Control"), "no-store");
    assert_null(header(r, "ETag"));
    assert_null(header(r, "Content-Encoding"));
    assert_string_equal(header(r, "Access-Control-Allow-Origin"), "*");
    assert_string_equal(header(r, "Content-Type"), "text/plain; charset=utf-8");
}

/* ---- Objects and headers ------------------------------------------------------------------ */

static void test_checkpoint(void **state)
{
    (void)state;
    fixture *f = fx_new("rp-checkpoint", 600);
    buffer want = {0};
    read_stored(f, "checkpoint", &want);
    read_response r;
    get_str(f, "checkpoint", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Content-Type"), "text/plain; charset=utf-8");
    assert_string_equal(header(&r, "Cache-Control"), "no-store");
    assert_string_equal(header(&r, "Access-Control-Allow-Origin"), "*");
    assert_null(header(&r, "Content-Encoding"));
    assert_body(&r, &want);
    /* Strong ETag: 32 hex digits of SHA-256 of the bytes, quoted. */
    uint8_t digest[32];
    char etag[48], hex[33];
    sha256(want.data, want.len, digest);
    hex_encode(hex, digest, 16);
    snprintf(etag, sizeof etag, "\"%s\"", hex);
    assert_string_equal(header(&r, "ETag"), etag);
    read_response_free(&r);

    /* Conditional GET, also weak and in a list; a stale tag gets the full body. */
    char weak[64], list[96];
    snprintf(weak, sizeof weak, "W/%s", etag);
    snprintf(list, sizeof list, "\"old\" , %s", etag);
    const char *conds[] = {etag, weak, list, "*"};
    for (size_t i = 0; i < 4; i++) {
        get_str(f, "checkpoint", &(req_opts){.if_none_match = conds[i]}, &r);
        assert_int_equal(r.status, 304);
        assert_int_equal(r.body_len, 0);
        assert_null(r.body);
        assert_string_equal(header(&r, "ETag"), etag);
        assert_string_equal(header(&r, "Cache-Control"), "no-store");
        read_response_free(&r);
    }
    get_str(f, "checkpoint", &(req_opts){.if_none_match = "\"0000\""}, &r);
    assert_int_equal(r.status, 200);
    assert_body(&r, &want);
    read_response_free(&r);

    /* HEAD: the same headers and the body length (the transport drops the body). */
    get_str(f, "checkpoint", &(req_opts){.method = "HEAD"}, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, want.len);
    assert_string_equal(header(&r, "ETag"), etag);
    read_response_free(&r);
    buffer_free(&want);
    fx_free(f);
}

static void test_hash_tiles(void **state)
{
    (void)state;
    fixture *f = fx_new("rp-hash", 600);
    /* Full level-0 tile: the 256 leaf hashes, immutable. */
    read_response r;
    get_str(f, "tile/0/000", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Content-Type"), "application/octet-stream");
    assert_string_equal(header(&r, "Cache-Control"), "public, max-age=604800, immutable");
    assert_string_equal(header(&r, "Access-Control-Allow-Origin"), "*");
    assert_null(header(&r, "Content-Encoding"));
    assert_null(header(&r, "Vary"));
    assert_non_null(header(&r, "ETag"));
    assert_int_equal(r.body_len, 8192);
    assert_memory_equal(r.body, f->log.leaf_hashes, 8192);
    read_response_free(&r);

    /* Partial tiles of size 600: 0/002.p/88 (leaves 512..599) and 1/000.p/2. */
    get_str(f, "tile/0/002.p/88", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 88 * 32);
    assert_memory_equal(r.body, f->log.leaf_hashes[512], 88 * 32);
    assert_string_equal(header(&r, "Cache-Control"), "public, max-age=604800, immutable");
    read_response_free(&r);
    get_str(f, "tile/1/000.p/2", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 64);
    for (int i = 0; i < 2; i++) {
        uint8_t root[32];
        merkle_hashes_root((const uint8_t(*)[32])f->log.leaf_hashes[256 * i], 256, root);
        assert_memory_equal(r.body + 32 * i, root, 32);
    }
    read_response_free(&r);

    /* Tiles that do not exist (yet). */
    const char *absent[] = {"tile/0/003", "tile/0/002", "tile/1/000", "tile/0/002.p/89",
                            "tile/2/000.p/1"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        get_str(f, absent[i], NULL, &r);
        assert_uncacheable_error(&r, 404);
        read_response_free(&r);
    }
    fx_free(f);
}

static void test_data_tiles_and_encoding(void **state)
{
    (void)state;
    fixture *f = fx_new("rp-data", 600);
    buffer stored = {0}, plain = {0}, want_plain = {0};
    read_stored(f, "tile/data/002.p/88", &stored);
    assert_true(gzip_is_gzip(stored.data, stored.len));
    for (uint64_t i = 512; i < 600; i++) {
        ct_entry e;
        test_log_entry(i, &e);
        assert_int_equal(ct_tile_leaf_encode(&want_plain, &e), 0);
    }
    error err = {{0}};
    assert_int_equal(gzip_decompress(stored.data, stored.len, 1 << 24, &plain, &err), 0);
    assert_int_equal(plain.len, want_plain.len);
    assert_memory_equal(plain.data, want_plain.data, plain.len);

    /* Accept-Encoding values that accept gzip (absent header: any coding is acceptable). */
    const char *gzip_ok[] = {NULL, "gzip", "gzip, identity", "GZIP", "x-gzip", "*",
                             "br;q=1.0, gzip;q=0.5", "identity;q=0, gzip", " gzip ; q=1 ",
                             "gzip;q=0.001", "deflate, *;q=0.1"};
    char gzip_etag[48] = "";
    for (size_t i = 0; i < sizeof gzip_ok / sizeof gzip_ok[0]; i++) {
        read_response r;
        get_str(f, "tile/data/002.p/88", &(req_opts){.accept_encoding = gzip_ok[i]}, &r);
        assert_int_equal(r.status, 200);
        if (!header(&r, "Content-Encoding"))
            fail_msg("Accept-Encoding %s should get gzip", gzip_ok[i] ? gzip_ok[i] : "(none)");
        assert_string_equal(header(&r, "Content-Encoding"), "gzip");
        assert_string_equal(header(&r, "Content-Type"), "application/octet-stream");
        assert_string_equal(header(&r, "Cache-Control"), "public, max-age=604800, immutable");
        assert_string_equal(header(&r, "Vary"), "Accept-Encoding");
        assert_body(&r, &stored);
        snprintf(gzip_etag, sizeof gzip_etag, "%s", header(&r, "ETag"));
        read_response_free(&r);
    }
    /* Values that refuse it (q=0 in its forms, not listed, empty). */
    const char *gzip_refused[] = {"identity", "gzip;q=0", "gzip; q=0.000, identity",
                                  "*;q=0", "br", "", "gzip;Q=0", "x-gzip;q=0, *;q=0"};
    char plain_etag[48] = "";
    for (size_t i = 0; i < sizeof gzip_refused / sizeof gzip_refused[0]; i++) {
        read_response r;
        get_str(f, "tile/data/002.p/88", &(req_opts){.accept_encoding = gzip_refused[i]}, &r);
        assert_int_equal(r.status, 200);
        if (header(&r, "Content-Encoding"))
            fail_msg("Accept-Encoding '%s' should get identity", gzip_refused[i]);
        assert_string_equal(header(&r, "Vary"), "Accept-Encoding");
        assert_string_equal(header(&r, "Cache-Control"), "public, max-age=604800, immutable");
        assert_body(&r, &plain);
        snprintf(plain_etag, sizeof plain_etag, "%s", header(&r, "ETag"));
        read_response_free(&r);
    }
    /* Two representations, two strong tags; each revalidates only itself. */
    assert_string_not_equal(gzip_etag, plain_etag);
    read_response r;
    get_str(f, "tile/data/002.p/88", &(req_opts){.if_none_match = gzip_etag}, &r);
    assert_int_equal(r.status, 304);
    assert_string_equal(header(&r, "Vary"), "Accept-Encoding");
    read_response_free(&r);
    get_str(f, "tile/data/002.p/88",
            &(req_opts){.accept_encoding = "identity", .if_none_match = gzip_etag}, &r);
    assert_int_equal(r.status, 200);
    read_response_free(&r);
    get_str(f, "tile/data/002.p/88",
            &(req_opts){.accept_encoding = "identity", .if_none_match = plain_etag}, &r);
    assert_int_equal(r.status, 304);
    read_response_free(&r);
    /* HEAD of the identity form reports the decompressed length. */
    get_str(f, "tile/data/002.p/88", &(req_opts){.method = "HEAD", .accept_encoding = "identity"},
            &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, plain.len);
    read_response_free(&r);

    /* Full data tiles too; a data tile that is not published is a plain 404. */
    get_str(f, "tile/data/001", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Content-Encoding"), "gzip");
    read_response_free(&r);
    get_str(f, "tile/data/002", NULL, &r);
    assert_uncacheable_error(&r, 404);
    read_response_free(&r);
    buffer_free(&stored);
    buffer_free(&plain);
    buffer_free(&want_plain);
    fx_free(f);
}

static void test_uncompressed_data_tile_served_as_is(void **state)
{
    (void)state;
    /* A data tile stored without gzip (as in sunlight's navigli test data) has no encoding. */
    fixture *f = fx_new("rp-plain", 10);
    buffer navigli = {0};
    read_file_or_fail(testdata_path("navigli2025h2/tile/data/003.p/10"), &navigli);
    error err = {{0}};
    assert_int_equal(storage_put(f->log.storage, "tile/data/003.p/10", navigli.data, navigli.len,
                                 NULL, &err), 0);
    read_response r;
    get_str(f, "tile/data/003.p/10", &(req_opts){.accept_encoding = "identity"}, &r);
    assert_int_equal(r.status, 200);
    assert_null(header(&r, "Content-Encoding"));
    assert_null(header(&r, "Vary"));
    assert_body(&r, &navigli);
    read_response_free(&r);
    buffer_free(&navigli);
    fx_free(f);
}

static void test_issuers_and_log_v3(void **state)
{
    (void)state;
    fixture *f = fx_new("rp-issuer", 10);
    const x509_chain_result *chain = test_log_chain(2);
    char hex[65], path[80];
    hex_encode(hex, chain->fingerprints[0], 32);
    snprintf(path, sizeof path, "issuer/%s", hex);
    read_response r;
    get_str(f, path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Content-Type"), "application/pkix-cert");
    assert_string_equal(header(&r, "Cache-Control"), "public, max-age=604800, immutable");
    assert_string_equal(header(&r, "Access-Control-Allow-Origin"), "*");
    assert_int_equal(r.body_len, chain->issuers[0].len);
    assert_memory_equal(r.body, chain->issuers[0].data, r.body_len);
    read_response_free(&r);

    /* Uppercase hex names no object (names are lowercase); neither do other lengths. */
    char upper[80];
    snprintf(upper, sizeof upper, "%s", path);
    for (char *p = upper + 7; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    size_t gets = f->spy.gets;
    const char *bad[] = {upper, "issuer/abc", "issuer/", "issuer"};
    for (size_t i = 0; i < 4; i++) {
        get_str(f, bad[i], NULL, &r);
        assert_uncacheable_error(&r, 404);
        read_response_free(&r);
    }
    path[strlen(path) - 1] = 0; /* 63 digits */
    get_str(f, path, NULL, &r);
    assert_uncacheable_error(&r, 404);
    read_response_free(&r);
    assert_int_equal(f->spy.gets, gets);

    /* An issuer that does not hash to its name is never served. */
    char wrong[80] = "issuer/";
    memset(wrong + 7, 'a', 64);
    wrong[71] = 0;
    error err = {{0}};
    assert_int_equal(storage_put(f->log.storage, wrong, "not a cert", 10, NULL, &err), 0);
    get_str(f, wrong, NULL, &r);
    assert_uncacheable_error(&r, 500);
    read_response_free(&r);

    /* log.v3.json: absent, then published. */
    get_str(f, "log.v3.json", NULL, &r);
    assert_uncacheable_error(&r, 404);
    read_response_free(&r);
    const char *json = "{\"description\":\"test\"}\n";
    assert_int_equal(storage_put(f->log.storage, "log.v3.json", json, strlen(json), NULL, &err), 0);
    get_str(f, "log.v3.json", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Content-Type"), "application/json");
    assert_string_equal(header(&r, "Cache-Control"), "public, max-age=300");
    assert_int_equal(r.body_len, strlen(json));
    read_response_free(&r);
    fx_free(f);
}

/* ---- Hostile and malformed paths -------------------------------------------------------- */

static void test_malformed_paths_never_reach_storage(void **state)
{
    (void)state;
    fixture *f = fx_new("rp-paths", 600);
    static const struct {
        const char *path;
        size_t len; /* 0: strlen */
        int status;
    } cases[] = {
        {"tile/0/../../x", 0, 404},
        {"tile/0/../../../../etc/passwd", 0, 404},
        {"tile/0/%2e%2e/x", 0, 400},
        {"tile%2f0%2f000", 0, 400},
        {"tile/6/000", 0, 404},
        {"tile/0/0001", 0, 404},
        {"tile/0/000.p/0", 0, 404},
        {"tile/0/000.p/256", 0, 404},
        {"tile/0/000.p/088", 0, 404},
        {"tile/0/x000/000", 0, 404},
        {"tile/0/1", 0, 404},
        {"tile/data/000/", 0, 404},
        {"tile/0/", 0, 404},
        {"tile/", 0, 404},
        {"tile", 0, 404},
        {"tile/data", 0, 404},
        {"tile/data/", 0, 404},
        {"tile//0/000", 0, 404},
        {"tile/0//000", 0, 404},
        {"/checkpoint", 0, 404},
        {"./checkpoint", 0, 404},
        {"checkpoint/", 0, 404},
        {"checkpoint/..", 0, 404},
        {"Checkpoint", 0, 404},
        {"staging/1-abc", 0, 404},
        {"roots.pem", 0, 404},
        {"", 0, 404},
        {"..", 0, 404},
        {".", 0, 404},
        {"tile\\0\\000", 0, 400},
        {"tile/0/000 ", 0, 400},
        {"tile/0/000\r\n", 0, 400},
        {"checkpoint\0x", 12, 400},
        {"tile/0/000\0", 11, 400},
        {"tile/0/\xc3\xa9", 0, 400},
        {"tile/0/000?x=1", 0, 404},
        {"tile/0/000#x", 0, 404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].path);
        size_t gets = f->spy.gets;
        read_response r;
        get(f, cases[i].path, len, NULL, &r);
        if (r.status != cases[i].status)
            fail_msg("path %zu (%s): status %d, want %d", i, cases[i].path, r.status,
                     cases[i].status);
        assert_uncacheable_error(&r, cases[i].status);
        if (f->spy.gets != gets)
            fail_msg("path %zu (%s) reached storage as %s", i, cases[i].path,
                     f->spy.keys[gets % SPY_KEYS]);
        read_response_free(&r);
    }
    /* A good path reaches storage with exactly its own name. */
    size_t gets = f->spy.gets;
    read_response r;
    get_str(f, "tile/0/001", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(f->spy.gets, gets + 1);
    assert_string_equal(f->spy.keys[gets % SPY_KEYS], "tile/0/001");
    read_response_free(&r);
    fx_free(f);
}

static void test_symlinks_not_followed(void **state)
{
    (void)state;
    fixture *f = fx_new("rp-symlink", 600);
    /* A secret next to the log, a file link and a directory link pointing at it. */
    char secret[2 * PATH_MAX], outside[2 * PATH_MAX], link[2 * PATH_MAX];
    snprintf(secret, sizeof secret, "%s/../secret", f->log.dir);
    FILE *fp = fopen(secret, "w");
    assert_non_null(fp);
    fputs("TOP SECRET\n", fp);
    fclose(fp);
    snprintf(link, sizeof link, "%s/tile/0/009", f->log.dir);
    assert_int_equal(symlink(secret, link), 0);
    snprintf(link, sizeof link, "%s/checkpoint", f->log.dir);
    assert_int_equal(unlink(link), 0);
    assert_int_equal(symlink("../secret", link), 0);
    snprintf(outside, sizeof outside, "%s/../outside", f->log.dir);
    assert_int_equal(mkdir(outside, 0755), 0);
    snprintf(link, sizeof link, "%s/000", outside);
    fp = fopen(link, "w");
    assert_non_null(fp);
    for (int i = 0; i < 8192; i++)
        fputc('S', fp);
    fclose(fp);
    snprintf(link, sizeof link, "%s/tile/3", f->log.dir);
    assert_int_equal(symlink(outside, link), 0);

    const char *paths[] = {"tile/0/009", "checkpoint", "tile/3/000"};
    for (size_t i = 0; i < 3; i++) {
        read_response r;
        get_str(f, paths[i], NULL, &r);
        if (r.status == 200)
            fail_msg("%s followed a symbolic link", paths[i]);
        assert_true(r.status == 404 || r.status == 500);
        assert_string_equal(header(&r, "Cache-Control"), "no-store");
        assert_null(memmem(r.body, r.body_len, "SECRET", 6));
        read_response_free(&r);
    }
    fx_free(f);
}

static void test_methods(void **state)
{
    (void)state;
    fixture *f = fx_new("rp-methods", 10);
    const char *refused[] = {"POST", "PUT", "DELETE", "PATCH", "get", ""};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        read_response r;
        get_str(f, "checkpoint", &(req_opts){.method = refused[i]}, &r);
        assert_uncacheable_error(&r, 405);
        assert_string_equal(header(&r, "Allow"), "GET, HEAD, OPTIONS");
        read_response_free(&r);
    }
    read_response r;
    get_str(f, "tile/0/000.p/10", &(req_opts){.method = "OPTIONS"}, &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(header(&r, "Access-Control-Allow-Origin"), "*");
    assert_string_equal(header(&r, "Access-Control-Allow-Methods"), "GET, HEAD, OPTIONS");
    assert_non_null(header(&r, "Access-Control-Allow-Headers"));
    read_response_free(&r);
    fx_free(f);
}

/* ---- Caching ------------------------------------------------------------------------------ */

static void test_immutable_objects_cached(void **state)
{
    (void)state;
    fixture *f = fx_new("rp-cache", 600);
    read_response r;
    get_str(f, "tile/0/001", NULL, &r);
    assert_int_equal(r.status, 200);
    read_response_free(&r);
    size_t gets = f->spy.gets;
    for (int i = 0; i < 5; i++) {
        get_str(f, "tile/0/001", NULL, &r);
        assert_int_equal(r.status, 200);
        assert_memory_equal(r.body, f->log.leaf_hashes[256], 8192);
        read_response_free(&r);
    }
    assert_int_equal(f->spy.gets, gets);
    /* The checkpoint is mutable: read every time, so a new one shows at once. */
    get_str(f, "checkpoint", NULL, &r);
    read_response_free(&r);
    get_str(f, "checkpoint", NULL, &r);
    read_response_free(&r);
    assert_int_equal(f->spy.gets, gets + 2);
    /* Misses are not cached: a tile published later is found. */
    get_str(f, "tile/0/002", NULL, &r);
    assert_int_equal(r.status, 404);
    read_response_free(&r);
    test_log_grow(&f->log, 800);
    get_str(f, "tile/0/002", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, f->log.leaf_hashes[512], 8192);
    read_response_free(&r);

    /* A short hash tile is refused and not cached. */
    error err = {{0}};
    assert_int_equal(storage_put(f->log.storage, "tile/1/000.p/3", "short", 5, NULL, &err), 0);
    get_str(f, "tile/1/000.p/3", NULL, &r);
    assert_uncacheable_error(&r, 500);
    read_response_free(&r);
    readpath_stats st;
    readpath_stats_read(f->rp, &st);
    assert_true(st.requests >= 10);
    assert_true(st.errors >= 1);
    assert_true(st.not_found >= 1);
    fx_free(f);
}

/* A backend that keeps metadata (s3): the stored headers are passed through for every kind of
 * object instead of being derived from the key, with the stored ETag (plus "-identity" for a
 * decompressed data tile); immutable objects (hash tiles, data tiles, issuers, with their
 * metadata) are still cached, the checkpoint is not. */
static void test_stored_headers_passed_through(void **state)
{
    (void)state;
    fixture *f = fx_new("rp-meta", 600);
    storage_object_info info = {.has_meta = true};
    snprintf(info.content_type, sizeof info.content_type, "application/x-stored");
    snprintf(info.cache_control, sizeof info.cache_control, "public, max-age=123");
    snprintf(info.etag, sizeof info.etag, "0123456789abcdef0123456789abcdef");
    snprintf(info.last_modified, sizeof info.last_modified, "Sun, 22 Nov 2026 02:30:00 GMT");
    f->spy.stored_info = &info;
    buffer stored = {0};
    read_response r;

    const char *keys[] = {"checkpoint", "tile/0/001", "tile/1/000.p/2"};
    for (size_t i = 0; i < 3; i++) {
        get_str(f, keys[i], NULL, &r);
        assert_int_equal(r.status, 200);
        read_stored(f, keys[i], &stored);
        assert_body(&r, &stored);
        assert_string_equal(header(&r, "Content-Type"), "application/x-stored");
        assert_null(header(&r, "Content-Encoding"));
        assert_string_equal(header(&r, "Cache-Control"), "public, max-age=123");
        assert_string_equal(header(&r, "ETag"), "\"0123456789abcdef0123456789abcdef\"");
        assert_string_equal(header(&r, "Last-Modified"), "Sun, 22 Nov 2026 02:30:00 GMT");
        read_response_free(&r);
    }
    /* The stored ETag answers If-None-Match. */
    req_opts inm = {.if_none_match = "\"0123456789abcdef0123456789abcdef\""};
    get_str(f, "tile/0/001", &inm, &r);
    assert_int_equal(r.status, 304);
    read_response_free(&r);

    /* An issuer: served as stored, with the stored headers. */
    const x509_chain_result *chain = test_log_chain(2);
    char hex[65], issuer[80];
    hex_encode(hex, chain->fingerprints[0], 32);
    snprintf(issuer, sizeof issuer, "issuer/%s", hex);
    get_str(f, issuer, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, chain->issuers[0].len);
    assert_memory_equal(r.body, chain->issuers[0].data, r.body_len);
    assert_string_equal(header(&r, "Content-Type"), "application/x-stored");
    assert_string_equal(header(&r, "Last-Modified"), "Sun, 22 Nov 2026 02:30:00 GMT");
    read_response_free(&r);

    /* A data tile stored with Content-Encoding: gzip goes out as stored, or decompressed for a
     * client that refuses gzip. */
    snprintf(info.content_encoding, sizeof info.content_encoding, "gzip");
    get_str(f, "tile/data/001", NULL, &r);
    assert_int_equal(r.status, 200);
    read_stored(f, "tile/data/001", &stored);
    assert_body(&r, &stored);
    assert_string_equal(header(&r, "Content-Encoding"), "gzip");
    assert_string_equal(header(&r, "Content-Type"), "application/x-stored");
    assert_string_equal(header(&r, "Vary"), "Accept-Encoding");
    assert_string_equal(header(&r, "ETag"), "\"0123456789abcdef0123456789abcdef\"");
    read_response_free(&r);
    req_opts identity = {.accept_encoding = "identity"};
    get_str(f, "tile/data/001", &identity, &r);
    assert_int_equal(r.status, 200);
    buffer plain = {0};
    error err = {{0}};
    assert_int_equal(gzip_decompress(stored.data, stored.len, 1 << 24, &plain, &err), 0);
    assert_body(&r, &plain);
    assert_null(header(&r, "Content-Encoding"));
    assert_string_equal(header(&r, "ETag"), "\"0123456789abcdef0123456789abcdef-identity\"");
    read_response_free(&r);

    /* Cached with its metadata: a changed backend answer is not seen for immutable objects,
     * is for the checkpoint. */
    size_t gets = f->spy.gets;
    snprintf(info.cache_control, sizeof info.cache_control, "changed");
    get_str(f, "tile/0/001", NULL, &r);
    assert_string_equal(header(&r, "Cache-Control"), "public, max-age=123");
    read_response_free(&r);
    get_str(f, "tile/data/001", NULL, &r);
    assert_string_equal(header(&r, "Cache-Control"), "public, max-age=123");
    read_response_free(&r);
    get_str(f, issuer, NULL, &r);
    assert_string_equal(header(&r, "Cache-Control"), "public, max-age=123");
    read_response_free(&r);
    assert_int_equal(f->spy.gets, gets);
    get_str(f, "checkpoint", NULL, &r);
    assert_string_equal(header(&r, "Cache-Control"), "changed");
    read_response_free(&r);
    assert_int_equal(f->spy.gets, gets + 1);

    /* Without stored metadata (file://) the headers come from the key again. */
    f->spy.stored_info = NULL;
    get_str(f, "checkpoint", NULL, &r);
    assert_string_equal(header(&r, "Content-Type"), "text/plain; charset=utf-8");
    assert_string_equal(header(&r, "Cache-Control"), "no-store");
    assert_null(header(&r, "Last-Modified"));
    read_response_free(&r);
    buffer_free(&plain);
    buffer_free(&stored);
    fx_free(f);
}

static void test_lru_bound_and_order(void **state)
{
    (void)state;
    read_cache *c = read_cache_new(64 * 1024);
    assert_non_null(c);
    uint8_t data[4000];
    memset(data, 7, sizeof data);
    char key[32];
    for (int i = 0; i < 100; i++) {
        read_blob *b = read_blob_new(data, sizeof data);
        snprintf(key, sizeof key, "k%d", i);
        read_cache_put(c, key, b);
        read_blob_release(b);
        if (i >= 1) {
            /* Keep k0 hot: it must survive every eviction. */
            read_blob *hot = read_cache_get(c, "k0");
            assert_non_null(hot);
            read_blob_release(hot);
        }
    }
    read_cache_stats st;
    read_cache_stats_read(c, &st);
    assert_true(st.bytes <= 64 * 1024);
    assert_true(st.entries >= 10 && st.entries < 17);
    assert_true(st.evictions > 80);
    read_blob *b = read_cache_get(c, "k99");
    assert_non_null(b);
    assert_int_equal(b->len, sizeof data);
    read_blob_release(b);
    assert_null(read_cache_get(c, "k1"));
    /* A value held by a caller outlives its eviction. */
    read_blob *held = read_cache_get(c, "k0");
    for (int i = 100; i < 200; i++) {
        read_blob *x = read_blob_new(data, sizeof data);
        snprintf(key, sizeof key, "k%d", i);
        read_cache_put(c, key, x);
        read_blob_release(x);
    }
    assert_null(read_cache_get(c, "k0"));
    assert_int_equal(held->data[3999], 7);
    read_blob_release(held);
    /* Replacing a key keeps one entry; too-large values are not kept. */
    uint8_t *huge = calloc(1, 16 * 1024);
    read_blob *big = read_blob_new(huge, 16 * 1024);
    read_cache_put(c, "big", big);
    read_blob_release(big);
    free(huge);
    assert_null(read_cache_get(c, "big"));
    read_cache_free(c);
}

static void test_header_parsers(void **state)
{
    (void)state;
    assert_true(read_accepts_gzip(NULL));
    assert_true(read_accepts_gzip("gzip"));
    assert_true(read_accepts_gzip("compress, gzip"));
    assert_true(read_accepts_gzip("gzip;q=0.5,identity;q=1"));
    assert_false(read_accepts_gzip(""));
    assert_false(read_accepts_gzip("gzip;q=0"));
    assert_false(read_accepts_gzip("gzip;q=0., *"));
    assert_true(read_accepts_gzip("*;q=0.2"));
    assert_false(read_accepts_gzip("identity, *;q=0"));
    assert_false(read_accepts_gzip("gzip;q=0, *;q=1"));
    assert_true(read_etag_matches("\"a\"", "\"a\""));
    assert_true(read_etag_matches("W/\"a\"", "\"a\""));
    assert_true(read_etag_matches(" \"b\",\"a\" ", "\"a\""));
    assert_true(read_etag_matches("*", "\"a\""));
    assert_false(read_etag_matches("\"ab\"", "\"a\""));
    assert_false(read_etag_matches("a", "\"a\""));
    assert_false(read_etag_matches("", "\"a\""));
    assert_false(read_etag_matches(NULL, "\"a\""));
}

/* Not asserted: handler calls per second for a cached full tile and for the checkpoint. */
static void test_bench(void **state)
{
    (void)state;
    fixture *f = fx_new("rp-bench", 600);
    const char *paths[] = {"tile/0/001", "tile/data/001", "checkpoint"};
    for (size_t p = 0; p < 3; p++) {
        int n = p == 2 ? 20000 : 200000;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < n; i++) {
            read_response r;
            get_str(f, paths[p], NULL, &r);
            assert_int_equal(r.status, 200);
            read_response_free(&r);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
        printf("bench: readpath GET %-14s %9.0f handler calls/s (1 thread)\n", paths[p], n / s);
    }
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint),
        cmocka_unit_test(test_hash_tiles),
        cmocka_unit_test(test_data_tiles_and_encoding),
        cmocka_unit_test(test_uncompressed_data_tile_served_as_is),
        cmocka_unit_test(test_issuers_and_log_v3),
        cmocka_unit_test(test_malformed_paths_never_reach_storage),
        cmocka_unit_test(test_symlinks_not_followed),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_immutable_objects_cached),
        cmocka_unit_test(test_stored_headers_passed_through),
        cmocka_unit_test(test_lru_bound_and_order),
        cmocka_unit_test(test_header_parsers),
        cmocka_unit_test(test_bench),
    };
    return cmocka_run_group_tests_name("readpath", tests, test_log_global_setup,
                                       test_log_global_teardown);
}
