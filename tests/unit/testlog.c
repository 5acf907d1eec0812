#include "testutil.h"
#include "testlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "gzip.h"
#include "merkle.h"
#include "note.h"
#include "pem.h"
#include "precert.h"

typedef struct chain_fixture {
    pem_list certs;
    x509_chain_result result;
    buffer tbs; /* precert only */
} chain_fixture;

static const struct {
    const char *file;
    x509_endpoint endpoint;
} chain_files[] = {
    {"chains/ctgo/leaf01.chain", X509_ADD_CHAIN},
    {"chains/ctgo/leaf02.chain", X509_ADD_CHAIN},
    {"chains/ctgo/subleaf-pre.chain", X509_ADD_PRE_CHAIN},
    {"chains/ctgo/subleaf.chain", X509_ADD_CHAIN},
};
#define CHAINS (sizeof chain_files / sizeof chain_files[0])

static x509_root_set *roots;
static x509_validator *validator;
static chain_fixture chains[CHAINS];

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

int test_log_global_setup(void **state)
{
    (void)state;
    error err = {{0}};
    roots = x509_root_set_new();
    assert_int_equal(x509_root_set_add_pem_file(roots, testdata_path("chains/ctgo/fake-ca.cert"), &err), 0);
    x509_validator_config cfg = {.roots = roots, .not_after_start = 0, .not_after_limit = INT64_MAX};
    validator = x509_validator_new(&cfg, &err);
    assert_non_null(validator);
    for (size_t i = 0; i < CHAINS; i++)
        load_chain(&chains[i], chain_files[i].file, chain_files[i].endpoint);
    return 0;
}

int test_log_global_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < CHAINS; i++) {
        pem_list_free(&chains[i].certs);
        buffer_free(&chains[i].tbs);
    }
    x509_validator_free(validator);
    x509_root_set_free(roots);
    return 0;
}

const x509_chain_result *test_log_chain(uint64_t index)
{
    return &chains[index % CHAINS].result;
}

void test_log_entry(uint64_t index, ct_entry *e)
{
    const chain_fixture *c = &chains[index % CHAINS];
    memset(e, 0, sizeof *e);
    e->timestamp = 1767225600000ULL + index / 100;
    e->leaf_index = index;
    e->fingerprints = &c->result.fingerprints[0][0];
    e->fingerprint_count = c->result.issuer_count;
    if (c->result.is_precert) {
        e->entry_type = CT_ENTRY_PRECERT;
        memcpy(e->issuer_key_hash, c->result.issuer_key_hash, 32);
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

void test_log_create(test_log *l, const char *name)
{
    memset(l, 0, sizeof *l);
    char abs[PATH_MAX];
    assert_non_null(realpath(test_tmpdir(name), abs));
    snprintf(l->dir, sizeof l->dir, "%s/log", abs);
    snprintf(l->url, sizeof l->url, "file://%s", l->dir);
    error err = {{0}};
    l->storage = storage_open(l->url, &err);
    assert_non_null(l->storage);
    l->key = private_key_generate(KEY_KIND_EC_P256, &err);
    assert_non_null(l->key);
    l->signer = log_signer_new(l->key, &err);
    assert_non_null(l->signer);
    l->edge = malloc(sizeof *l->edge);
    assert_non_null(l->edge);
    tile_edge_init(l->edge);
    l->leaf_hashes = calloc(TEST_LOG_MAX, 32);
    assert_non_null(l->leaf_hashes);
    for (size_t c = 0; c < CHAINS; c++)
        for (size_t i = 0; i < chains[c].result.issuer_count; i++) {
            char hex[65], key[80];
            hex_encode(hex, chains[c].result.fingerprints[i], 32);
            snprintf(key, sizeof key, "issuer/%s", hex);
            assert_int_equal(storage_put(l->storage, key, chains[c].result.issuers[i].data,
                                         chains[c].result.issuers[i].len, NULL, &err), 0);
        }
}

void test_log_grow(test_log *l, uint64_t new_size)
{
    assert_true(new_size >= l->size && new_size <= TEST_LOG_MAX);
    error err = {{0}};
    uint64_t old = l->size;
    /* Data tiles: every tile the growth touches, rewritten whole (a partial one holds the
     * tile's whole prefix). */
    for (uint64_t n = old / TILE_WIDTH; n * TILE_WIDTH < new_size; n++) {
        uint64_t start = n * TILE_WIDTH;
        uint64_t end = start + TILE_WIDTH < new_size ? start + TILE_WIDTH : new_size;
        buffer tile = {0}, gz = {0};
        for (uint64_t i = start; i < end; i++) {
            ct_entry e;
            test_log_entry(i, &e);
            assert_int_equal(ct_tile_leaf_encode(&tile, &e), 0);
            assert_int_equal(ct_leaf_hash(&e, l->leaf_hashes[i]), 0);
        }
        assert_int_equal(gzip_compress(tile.data, tile.len, &gz, &err), 0);
        tile_id t = {.data = true, .index = n, .width = (uint16_t)((end - start) % TILE_WIDTH)};
        assert_int_equal(store_tile(l->storage, &t, gz.data, gz.len, &err), 0);
        buffer_free(&tile);
        buffer_free(&gz);
    }
    assert_int_equal(tile_edge_append(l->edge, (const uint8_t(*)[32])l->leaf_hashes + old,
                                      new_size - old, store_tile, l->storage, &err), 0);
    l->size = new_size;
    uint8_t root[32];
    tile_edge_root(l->edge, root);
    l->timestamp = 1767225600100ULL + new_size;
    buffer cp = {0};
    assert_int_equal(checkpoint_sign(&cp, l->signer, TEST_LOG_ORIGIN, new_size, root,
                                     l->timestamp, &err), 0);
    assert_int_equal(storage_put(l->storage, "checkpoint", cp.data, cp.len, NULL, &err), 0);
    buffer_free(&cp);
}

void test_log_root(const test_log *l, uint64_t size, uint8_t out[32])
{
    merkle_leaves leaves = {(const uint8_t(*)[32])l->leaf_hashes, size};
    error err = {{0}};
    assert_int_equal(merkle_root(merkle_leaves_get_node, &leaves, size, out, &err), 0);
}

void test_log_free(test_log *l)
{
    storage_close(l->storage);
    log_signer_free(l->signer);
    EVP_PKEY_free(l->key);
    free(l->edge);
    free(l->leaf_hashes);
    memset(l, 0, sizeof *l);
}
