/* tegula fsck on a complete log: a 600-entry log (x509 and precert entries from real test
 * chains, gzip'd data tiles, hash tiles at two levels, issuers, a signed checkpoint) is built
 * here with the library, then the real `tegula fsck` binary must accept it and reject each
 * targeted corruption. */
#include "testutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base64.h"
#include "ct.h"
#include "gzip.h"
#include "keys.h"
#include "note.h"
#include "pem.h"
#include "precert.h"
#include "storage.h"
#include "tiles.h"
#include "x509chain.h"

#define LOG_SIZE 600
#define ORIGIN "fsck.test.example/2026h1"

typedef struct chain_fixture {
    pem_list certs;
    x509_chain_result result;
    buffer tbs; /* precert only */
} chain_fixture;

typedef struct log_options {
    uint64_t wrong_index_at;  /* entry whose leaf_index is off by one (UINT64_MAX: none) */
    bool wrong_issuer_key_hash;
    bool wrong_root;          /* the checkpoint signs another root */
} log_options;

static char tegula_path[PATH_MAX];
static x509_root_set *roots;
static x509_validator *validator;
static chain_fixture x509_chain, precert_chain;
static EVP_PKEY *log_key;
static log_signer *signer;

static void load_chain(chain_fixture *c, const char *file, x509_endpoint endpoint)
{
    error err = {{0}};
    assert_int_equal(pem_read_certificates_file(testdata_path(file), 0, &c->certs, &err), 0);
    x509_span spans[X509_CHAIN_MAX];
    for (size_t i = 0; i < c->certs.count; i++)
        spans[i] = (x509_span){c->certs.items[i].data, c->certs.items[i].len};
    if (x509_validate_chain(validator, spans, c->certs.count, endpoint, &c->result, &err) != 0)
        fail_msg("%s: %s", file, err.msg);
    if (c->result.is_precert) {
        precert_poison poison;
        assert_int_equal(precert_tbs_for_log(c->result.leaf.data, c->result.leaf.len, &c->tbs,
                                             &poison, &err), 0);
    }
}

static int setup(void **state)
{
    (void)state;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = 0;
    *strrchr(self, '/') = 0; /* build/tests */
    snprintf(tegula_path, sizeof tegula_path, "%s/../tegula", self);
    assert_int_equal(access(tegula_path, X_OK), 0);

    error err = {{0}};
    roots = x509_root_set_new();
    assert_int_equal(x509_root_set_add_pem_file(roots, testdata_path("chains/ctgo/fake-ca.cert"), &err), 0);
    x509_validator_config cfg = {.roots = roots, .not_after_start = 0, .not_after_limit = INT64_MAX};
    validator = x509_validator_new(&cfg, &err);
    assert_non_null(validator);
    load_chain(&x509_chain, "chains/ctgo/leaf01.chain", X509_ADD_CHAIN);
    load_chain(&precert_chain, "chains/ctgo/subleaf-pre.chain", X509_ADD_PRE_CHAIN);
    log_key = private_key_generate(KEY_KIND_EC_P256, &err);
    assert_non_null(log_key);
    signer = log_signer_new(log_key, &err);
    assert_non_null(signer);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    log_signer_free(signer);
    EVP_PKEY_free(log_key);
    for (int i = 0; i < 2; i++) {
        chain_fixture *c = i ? &precert_chain : &x509_chain;
        pem_list_free(&c->certs);
        buffer_free(&c->tbs);
    }
    x509_validator_free(validator);
    x509_root_set_free(roots);
    return 0;
}

static void entry_for(uint64_t index, const log_options *opt, ct_entry *e)
{
    /* Every third entry is a precertificate; all share one batch timestamp per 100. */
    const chain_fixture *c = index % 3 == 2 ? &precert_chain : &x509_chain;
    memset(e, 0, sizeof *e);
    e->timestamp = 1767225600000ULL + index / 100;
    e->leaf_index = index == opt->wrong_index_at ? index + 1 : index;
    e->fingerprints = &c->result.fingerprints[0][0];
    e->fingerprint_count = c->result.issuer_count;
    if (c->result.is_precert) {
        e->entry_type = CT_ENTRY_PRECERT;
        memcpy(e->issuer_key_hash, c->result.issuer_key_hash, 32);
        if (opt->wrong_issuer_key_hash)
            e->issuer_key_hash[0] ^= 1;
        e->cert_or_tbs = c->tbs.data;
        e->cert_or_tbs_len = c->tbs.len;
        e->pre_certificate = c->result.leaf.data;
        e->pre_certificate_len = c->result.leaf.len;
    } else {
        e->entry_type = CT_ENTRY_X509;
        e->cert_or_tbs = c->result.leaf.data;
        e->cert_or_tbs_len = c->result.leaf.len;
    }
}

static int store_tile(void *ctx, const tile_id *t, const uint8_t *data, size_t len, error *err)
{
    char path[TILE_PATH_MAX];
    assert_true(tile_path_format(t, path) > 0);
    return storage_put(ctx, path, data, len, NULL, err);
}

static void put_issuers(storage *s, const chain_fixture *c)
{
    for (size_t i = 0; i < c->result.issuer_count; i++) {
        char hex[65], key[80];
        hex_encode(hex, c->result.fingerprints[i], 32);
        snprintf(key, sizeof key, "issuer/%s", hex);
        error err = {{0}};
        assert_int_equal(storage_put(s, key, c->result.issuers[i].data, c->result.issuers[i].len,
                                     NULL, &err), 0);
    }
}

/* Writes the whole log into a fresh directory, as a sequencer would have published it. */
static const char *build_log(const char *name, const log_options *opt)
{
    static char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", test_tmpdir(name));
    char url[PATH_MAX + 16], abs[PATH_MAX];
    assert_non_null(realpath(dir, abs));
    snprintf(dir, sizeof dir, "%s", abs);
    snprintf(url, sizeof url, "file://%s/log", dir);
    error err = {{0}};
    storage *s = storage_open(url, &err);
    assert_non_null(s);

    tile_edge *edge = malloc(sizeof *edge);
    tile_edge_init(edge);
    uint8_t (*hashes)[32] = malloc(TILE_WIDTH * 32);
    for (uint64_t start = 0; start < LOG_SIZE; start += TILE_WIDTH) {
        size_t n = LOG_SIZE - start < TILE_WIDTH ? LOG_SIZE - start : TILE_WIDTH;
        buffer tile = {0}, gz = {0};
        for (size_t i = 0; i < n; i++) {
            ct_entry e;
            entry_for(start + i, opt, &e);
            assert_int_equal(ct_tile_leaf_encode(&tile, &e), 0);
            assert_int_equal(ct_leaf_hash(&e, hashes[i]), 0);
        }
        assert_int_equal(gzip_compress(tile.data, tile.len, &gz, &err), 0);
        tile_id t = {.data = true, .index = start / TILE_WIDTH, .width = (uint16_t)(n % TILE_WIDTH)};
        assert_int_equal(store_tile(s, &t, gz.data, gz.len, &err), 0);
        assert_int_equal(tile_edge_append(edge, (const uint8_t(*)[32])hashes, n, store_tile, s, &err), 0);
        buffer_free(&tile);
        buffer_free(&gz);
    }
    uint8_t root[32];
    tile_edge_root(edge, root);
    if (opt->wrong_root)
        root[31] ^= 1;
    put_issuers(s, &x509_chain);
    put_issuers(s, &precert_chain);
    buffer cp = {0};
    assert_int_equal(checkpoint_sign(&cp, signer, ORIGIN, LOG_SIZE, root, 1767225600100ULL, &err), 0);
    assert_int_equal(storage_put(s, "checkpoint", cp.data, cp.len, NULL, &err), 0);
    buffer pem = {0};
    assert_int_equal(public_key_pem(&pem, log_key, &err), 0);
    char key_path[PATH_MAX + 16];
    snprintf(key_path, sizeof key_path, "%s/log.pub", dir);
    FILE *f = fopen(key_path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(pem.data, 1, pem.len, f), pem.len);
    fclose(f);
    buffer_free(&pem);
    buffer_free(&cp);
    free(hashes);
    free(edge);
    storage_close(s);
    return dir;
}

/* Runs tegula fsck on dir/log with dir/log.pub (or `key`); returns its exit status and
 * leaves its stdout+stderr in out. */
static int run_fsck(const char *dir, const char *extra, buffer *out)
{
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "'%s' fsck --url '%s/log' --key '%s/log.pub' %s 2>&1", tegula_path,
             dir, dir, extra ? extra : "");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    buffer_reset(out);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
        buffer_append(out, chunk, n);
    buffer_terminate(out);
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const log_options good = {.wrong_index_at = UINT64_MAX};

static void expect_failure(const char *dir, const char *extra, const char *reason)
{
    buffer out = {0};
    int rc = run_fsck(dir, extra, &out);
    if (rc != 1 || !strstr((char *)out.data, "FAILED") || !strstr((char *)out.data, reason))
        fail_msg("fsck should fail with '%s' (rc %d):\n%s", reason, rc, (char *)out.data);
    buffer_free(&out);
}

static void test_complete_log_verifies(void **state)
{
    (void)state;
    const char *dir = build_log("fsck-good", &good);
    buffer out = {0};
    int rc = run_fsck(dir, NULL, &out);
    if (rc != 0)
        fail_msg("fsck failed on a good log:\n%s", (char *)out.data);
    /* 3 data tiles; hash tiles 0/000, 0/001, 0/002.p/88 and 1/000.p/2; 5 distinct issuers (two chains). */
    assert_non_null(strstr((char *)out.data, "OK: 600 entries, 3 data tiles, 4 hash tiles, 5 issuers"));
    assert_non_null(strstr((char *)out.data, "checkpoint of " ORIGIN " verifies: size 600"));
    /* The explicit origin is accepted too; a different one is not. */
    assert_int_equal(run_fsck(dir, "--origin " ORIGIN, &out), 0);
    expect_failure(dir, "--origin other.example/log", "checkpoint");
    buffer_free(&out);
}

static void test_wrong_key_fails(void **state)
{
    (void)state;
    const char *dir = build_log("fsck-key", &good);
    error err = {{0}};
    EVP_PKEY *other = private_key_generate(KEY_KIND_EC_P256, &err);
    buffer pem = {0};
    assert_int_equal(public_key_pem(&pem, other, &err), 0);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/log.pub", dir);
    FILE *f = fopen(path, "w");
    fwrite(pem.data, 1, pem.len, f);
    fclose(f);
    expect_failure(dir, NULL, "checkpoint");
    buffer_free(&pem);
    EVP_PKEY_free(other);
}

static void corrupt_file(const char *dir, const char *key, long offset)
{
    char path[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/log/%s", dir, key);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, offset, SEEK_SET), 0);
    int c = fgetc(f);
    assert_true(c != EOF);
    fseek(f, offset, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
}

static void test_corrupt_hash_tiles_fail(void **state)
{
    (void)state;
    const char *dir = build_log("fsck-l1", &good);
    corrupt_file(dir, "tile/1/000.p/2", 40);
    expect_failure(dir, NULL, "tile/1/000.p/2: stored tile differs");
    dir = build_log("fsck-l0", &good);
    corrupt_file(dir, "tile/0/001", 8191);
    expect_failure(dir, NULL, "tile/0/001: stored tile differs");
    dir = build_log("fsck-missing", &good);
    char path[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/log/tile/0/002.p/88", dir);
    assert_int_equal(unlink(path), 0);
    expect_failure(dir, NULL, "tile/0/002.p/88: missing");
}

static void test_issuer_problems_fail(void **state)
{
    (void)state;
    char hex[65], key[80], path[2 * PATH_MAX];
    hex_encode(hex, x509_chain.result.fingerprints[0], 32);
    snprintf(key, sizeof key, "issuer/%s", hex);
    const char *dir = build_log("fsck-issuer", &good);
    snprintf(path, sizeof path, "%s/log/%s", dir, key);
    assert_int_equal(unlink(path), 0);
    expect_failure(dir, NULL, "is not published");
    dir = build_log("fsck-issuer2", &good);
    corrupt_file(dir, key, 100);
    expect_failure(dir, NULL, "does not hash to its name");
}

static void test_bad_entries_fail(void **state)
{
    (void)state;
    log_options opt = good;
    opt.wrong_index_at = 300;
    expect_failure(build_log("fsck-index", &opt), NULL, "carries leaf_index 301, expected 300");
    opt = good;
    opt.wrong_issuer_key_hash = true;
    expect_failure(build_log("fsck-ikh", &opt), NULL, "issuer_key_hash is not the issuer's key hash");
    opt = good;
    opt.wrong_root = true;
    expect_failure(build_log("fsck-root", &opt), NULL, "root differs from the checkpoint's root");
    const char *dir = build_log("fsck-data", &good);
    /* The data tiles are gzip'd: a flipped byte breaks the gzip check or the entries. */
    corrupt_file(dir, "tile/data/001", 500);
    expect_failure(dir, NULL, "tile/data/001");
}

static void test_missing_checkpoint_fails(void **state)
{
    (void)state;
    const char *dir = build_log("fsck-nocp", &good);
    char path[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/log/checkpoint", dir);
    assert_int_equal(unlink(path), 0);
    expect_failure(dir, NULL, "no checkpoint published");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete_log_verifies),
        cmocka_unit_test(test_wrong_key_fails),
        cmocka_unit_test(test_corrupt_hash_tiles_fail),
        cmocka_unit_test(test_issuer_problems_fail),
        cmocka_unit_test(test_bad_entries_fail),
        cmocka_unit_test(test_missing_checkpoint_fails),
    };
    return cmocka_run_group_tests_name("fsck_log", tests, setup, teardown);
}
