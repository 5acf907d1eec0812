/* rfc6962: the RFC 6962 read API computed from the tiles of a real log built here (600
 * entries, then grown to 1030). Every answer is checked the way a monitor would: the STH
 * signature, proofs with the merkle verifiers against independently computed roots, entries
 * against the leaf hashes and the chains they were built from. */
#include "testutil.h"
#include "testlog.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "leafindex.h"
#include "merkle.h"
#include "note.h"
#include "rfc6962.h"
#include "sha256.h"
#include "tls_codec.h"

typedef struct fixture {
    test_log log;
    rfc6962 *layer;
    leafindex *index;
} fixture;

static fixture *fx_new(const char *name, uint64_t size, bool with_index)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    test_log_create(&f->log, name);
    if (size)
        test_log_grow(&f->log, size);
    error err = {{0}};
    if (with_index) {
        char db[PATH_MAX + 16];
        snprintf(db, sizeof db, "%s/../leafindex", f->log.dir);
        f->index = leafindex_open(db, TEST_LOG_ORIGIN, &err);
        assert_non_null(f->index);
    }
    rfc6962_config cfg = {.storage = f->log.storage,
                          .origin = TEST_LOG_ORIGIN,
                          .log_key = f->log.key,
                          .index = f->index,
                          .checkpoint_refresh_ms = 60000};
    f->layer = rfc6962_new(&cfg, &err);
    assert_non_null(f->layer);
    return f;
}

static void fx_free(fixture *f)
{
    rfc6962_free(f->layer);
    leafindex_close(f->index);
    test_log_free(&f->log);
    free(f);
}

static void call(fixture *f, const char *endpoint, const char *query, read_response *out)
{
    char path[128];
    snprintf(path, sizeof path, "ct/v1/%s", endpoint);
    read_request req = {.method = "GET", .path = path, .path_len = strlen(path), .query = query};
    rfc6962_handle(f->layer, &req, out);
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

/* Calls and parses a 200 JSON answer. */
static json_t *call_json(fixture *f, const char *endpoint, const char *query, char *cache_control,
                         size_t cc_len)
{
    read_response r;
    call(f, endpoint, query, &r);
    if (r.status != 200)
        fail_msg("%s?%s: status %d: %.*s", endpoint, query ? query : "", r.status,
                 (int)r.body_len, r.body ? (char *)r.body : "");
    assert_string_equal(header(&r, "Content-Type"), "application/json");
    assert_string_equal(header(&r, "Access-Control-Allow-Origin"), "*");
    if (cache_control)
        snprintf(cache_control, cc_len, "%s", header(&r, "Cache-Control"));
    json_error_t jerr;
    json_t *j = json_loadb((const char *)r.body, r.body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        fail_msg("%s: bad JSON: %s", endpoint, jerr.text);
    read_response_free(&r);
    return j;
}

/* Calls and expects an error status whose reason contains `reason`. */
static void call_fails(fixture *f, const char *endpoint, const char *query, int status,
                       const char *reason)
{
    read_response r;
    call(f, endpoint, query, &r);
    if (r.status != status || !r.body || !memmem(r.body, r.body_len, reason, strlen(reason)))
        fail_msg("%s?%s: got %d '%.*s', want %d with '%s'", endpoint, query ? query : "",
                 r.status, (int)r.body_len, r.body ? (char *)r.body : "", status, reason);
    assert_string_equal(header(&r, "Cache-Control"), "no-store");
    assert_string_equal(header(&r, "Access-Control-Allow-Origin"), "*");
    read_response_free(&r);
}

static void b64_field(json_t *obj, const char *name, buffer *out)
{
    json_t *v = json_object_get(obj, name);
    assert_true(json_is_string(v));
    buffer_reset(out);
    assert_int_equal(base64_decode(out, json_string_value(v), json_string_length(v)), 0);
}

static size_t hash_list(json_t *arr, uint8_t (*out)[32])
{
    assert_true(json_is_array(arr));
    size_t n = json_array_size(arr);
    assert_true(n <= MERKLE_MAX_PROOF);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        assert_int_equal(base64_decode_exact(out[i], 32, json_string_value(v),
                                             json_string_length(v)), 0);
    }
    return n;
}

/* leaf_input is the entry's MerkleTreeLeaf and hashes to its level-0 hash; extra_data holds
 * the chain it was logged with. */
static void check_entry(const fixture *f, uint64_t index, json_t *entry)
{
    buffer leaf = {0}, extra = {0}, want = {0};
    b64_field(entry, "leaf_input", &leaf);
    b64_field(entry, "extra_data", &extra);
    ct_entry e;
    test_log_entry(index, &e);
    assert_int_equal(ct_merkle_tree_leaf_encode(&want, &e), 0);
    assert_int_equal(leaf.len, want.len);
    assert_memory_equal(leaf.data, want.data, want.len);
    uint8_t hash[32];
    merkle_leaf_hash(leaf.data, leaf.len, hash);
    assert_memory_equal(hash, f->log.leaf_hashes[index], 32);

    const x509_chain_result *chain = test_log_chain(index);
    tls_reader r;
    tls_reader_init(&r, extra.data, extra.len);
    if (chain->is_precert) {
        const uint8_t *pre;
        size_t pre_len;
        assert_int_equal(tls_get_vec(&r, 3, &pre, &pre_len), 0);
        assert_int_equal(pre_len, chain->leaf.len);
        assert_memory_equal(pre, chain->leaf.data, pre_len);
    }
    tls_reader list;
    assert_int_equal(tls_get_vec_reader(&r, 3, &list), 0);
    assert_true(tls_reader_empty(&r));
    for (size_t i = 0; i < chain->issuer_count; i++) {
        const uint8_t *cert;
        size_t len;
        assert_int_equal(tls_get_vec(&list, 3, &cert, &len), 0);
        assert_int_equal(len, chain->issuers[i].len);
        assert_memory_equal(cert, chain->issuers[i].data, len);
    }
    assert_true(tls_reader_empty(&list));
    buffer_free(&leaf);
    buffer_free(&extra);
    buffer_free(&want);
}

/* get-entries?start&end: returns the entries, checked, and how many. */
static size_t get_entries(fixture *f, uint64_t start, uint64_t end, char *cc, size_t cc_len)
{
    char q[96];
    snprintf(q, sizeof q, "start=%llu&end=%llu", (unsigned long long)start,
             (unsigned long long)end);
    json_t *j = call_json(f, "get-entries", q, cc, cc_len);
    json_t *entries = json_object_get(j, "entries");
    assert_true(json_is_array(entries));
    size_t n = json_array_size(entries);
    assert_true(n >= 1);
    for (size_t i = 0; i < n; i++)
        check_entry(f, start + i, json_array_get(entries, i));
    json_decref(j);
    return n;
}

/* ---- get-sth ------------------------------------------------------------------------------ */

static void check_sth(fixture *f)
{
    char cc[64];
    json_t *j = call_json(f, "get-sth", NULL, cc, sizeof cc);
    assert_string_equal(cc, "public, max-age=10");
    assert_int_equal(json_object_size(j), 4);
    uint64_t size = (uint64_t)json_integer_value(json_object_get(j, "tree_size"));
    uint64_t ts = (uint64_t)json_integer_value(json_object_get(j, "timestamp"));
    assert_int_equal(size, f->log.size);
    assert_int_equal(ts, f->log.timestamp);
    buffer root = {0}, ths = {0};
    b64_field(j, "sha256_root_hash", &root);
    b64_field(j, "tree_head_signature", &ths);
    uint8_t want_root[32];
    test_log_root(&f->log, size, want_root);
    assert_int_equal(root.len, 32);
    assert_memory_equal(root.data, want_root, 32);
    /* The signature verifies as an RFC 6962 TreeHeadSignature under the log key. */
    uint8_t msg[TREE_HEAD_SIGNATURE_INPUT_LEN];
    tree_head_signature_input(msg, ts, size, root.data);
    digitally_signed ds;
    error err = {{0}};
    assert_int_equal(digitally_signed_parse(ths.data, ths.len, &ds, &err), 0);
    if (digitally_signed_verify(f->log.key, msg, sizeof msg, &ds, &err) != 0)
        fail_msg("STH signature: %s", err.msg);
    /* And the STH converts back to the published checkpoint, byte for byte. */
    uint8_t log_id[32];
    assert_int_equal(public_key_log_id(f->log.key, log_id, &err), 0);
    buffer rebuilt = {0}, stored = {0};
    assert_int_equal(checkpoint_from_sth(&rebuilt, TEST_LOG_ORIGIN, log_id, size, root.data, ts,
                                         ths.data, ths.len, &err), 0);
    char path[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/checkpoint", f->log.dir);
    read_file_or_fail(path, &stored);
    assert_int_equal(rebuilt.len, stored.len);
    assert_memory_equal(rebuilt.data, stored.data, stored.len);
    buffer_free(&root);
    buffer_free(&ths);
    buffer_free(&rebuilt);
    buffer_free(&stored);
    json_decref(j);
}

static void test_get_sth(void **state)
{
    (void)state;
    fixture *f = fx_new("rfc-sth", 600, false);
    check_sth(f);
    signed_checkpoint sc;
    error err = {{0}};
    assert_int_equal(rfc6962_checkpoint(f->layer, &sc, &err), 0);
    assert_int_equal(sc.cp.size, 600);
    uint64_t size = 0;
    assert_int_equal(rfc6962_tree_size(f->layer, &size, &err), 0);
    assert_int_equal(size, 600);
    fx_free(f);
}

/* ---- get-entries ------------------------------------------------------------------------ */

static void test_get_entries_ranges(void **state)
{
    (void)state;
    fixture *f = fx_new("rfc-entries", 600, false);
    char cc[64];
    /* Inside full tiles: exact, immutable. */
    assert_int_equal(get_entries(f, 0, 0, cc, sizeof cc), 1);
    assert_string_equal(cc, "public, max-age=86400, immutable");
    assert_int_equal(get_entries(f, 10, 20, cc, sizeof cc), 11);
    assert_int_equal(get_entries(f, 0, 255, cc, sizeof cc), 256);
    assert_string_equal(cc, "public, max-age=86400, immutable");
    assert_int_equal(get_entries(f, 300, 300, cc, sizeof cc), 1);
    /* Never across a tile: cut at the tile's end. */
    assert_int_equal(get_entries(f, 250, 300, cc, sizeof cc), 6);
    assert_int_equal(get_entries(f, 100, 5000, cc, sizeof cc), 156);
    assert_int_equal(get_entries(f, 256, 511, cc, sizeof cc), 256);
    assert_int_equal(get_entries(f, 511, 512, cc, sizeof cc), 1);
    /* In the partial tile: cut at the tree size, short-lived. */
    assert_int_equal(get_entries(f, 512, 767, cc, sizeof cc), 88);
    assert_string_equal(cc, "public, max-age=10");
    assert_int_equal(get_entries(f, 590, 700, cc, sizeof cc), 10);
    assert_int_equal(get_entries(f, 599, 599, cc, sizeof cc), 1);
    assert_int_equal(get_entries(f, 520, 530, cc, sizeof cc), 11);
    assert_int_equal(get_entries(f, 0, INT64_MAX, cc, sizeof cc), 256);

    /* Invalid ranges, with ct-go's reasons. */
    call_fails(f, "get-entries", "start=600&end=600", 400, "need tree size: 601 to get leaves but only got: 600");
    call_fails(f, "get-entries", "start=1000&end=2000", 400, "need tree size");
    call_fails(f, "get-entries", "start=20&end=10", 400, "is not a valid range");
    call_fails(f, "get-entries", "start=-1&end=10", 400, "must be >= 0");
    call_fails(f, "get-entries", "start=1&end=-10", 400, "must be >= 0");
    call_fails(f, "get-entries", "start=1", 400, "'end' is required");
    call_fails(f, "get-entries", "end=1", 400, "'start' is required");
    call_fails(f, "get-entries", "", 400, "'start' is required");
    call_fails(f, "get-entries", NULL, 400, "'start' is required");
    call_fails(f, "get-entries", "start=&end=1", 400, "'start' is required");
    call_fails(f, "get-entries", "start=a&end=1", 400, "'start' is malformed");
    call_fails(f, "get-entries", "start=1.0&end=2", 400, "'start' is malformed");
    call_fails(f, "get-entries", "start=0x10&end=20", 400, "'start' is malformed");
    call_fails(f, "get-entries", "start= 1&end=2", 400, "'start' is malformed");
    call_fails(f, "get-entries", "start=1&end=9223372036854775808", 400, "'end' is malformed");
    call_fails(f, "get-entries", "start=%zz&end=2", 400, "'start' is malformed");
    call_fails(f, "get-entries", "start=1%00&end=2", 400, "'start' is malformed");
    /* What Go's ParseInt accepts is accepted: a sign, leading zeros, encoded digits; the
     * first occurrence of a parameter wins; unknown parameters are ignored. */
    json_t *j = call_json(f, "get-entries", "start=+5&end=0007", NULL, 0);
    assert_int_equal(json_array_size(json_object_get(j, "entries")), 3);
    json_decref(j);
    j = call_json(f, "get-entries", "x=1&st%61rt=%35&end=6&start=0&end=100", NULL, 0);
    assert_int_equal(json_array_size(json_object_get(j, "entries")), 2);
    json_decref(j);
    call_fails(f, "get-entries", "start=9223372036854775807&end=9223372036854775807&", 400,
               "need tree size");
    fx_free(f);
}

static void test_endpoints_and_methods(void **state)
{
    (void)state;
    fixture *f = fx_new("rfc-methods", 10, false);
    assert_true(rfc6962_handles_path("ct/v1/get-sth", 13));
    assert_true(rfc6962_handles_path("ct/v1/get-entry-and-proof", 25));
    assert_false(rfc6962_handles_path("ct/v1/get-roots", 15));
    assert_false(rfc6962_handles_path("ct/v1/add-chain", 15));
    assert_false(rfc6962_handles_path("ct/v1/get-sth/", 14));
    assert_false(rfc6962_handles_path("ct/v1/get-sth", 12));
    read_response r;
    call(f, "get-roots", NULL, &r);
    assert_int_equal(r.status, 404);
    read_response_free(&r);
    read_request req = {.method = "POST", .path = "ct/v1/get-sth", .path_len = 13};
    rfc6962_handle(f->layer, &req, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(header(&r, "Allow"), "GET, HEAD, OPTIONS");
    read_response_free(&r);
    req.method = "HEAD";
    rfc6962_handle(f->layer, &req, &r);
    assert_int_equal(r.status, 200);
    assert_true(r.body_len > 0);
    read_response_free(&r);
    fx_free(f);
}


/* ---- Proofs -------------------------------------------------------------------------------- */

static void check_consistency(fixture *f, uint64_t first, uint64_t second)
{
    char q[96];
    snprintf(q, sizeof q, "first=%llu&second=%llu", (unsigned long long)first,
             (unsigned long long)second);
    char cc[64];
    json_t *j = call_json(f, "get-sth-consistency", q, cc, sizeof cc);
    assert_string_equal(cc, "public, max-age=86400");
    uint8_t proof[MERKLE_MAX_PROOF][32];
    size_t n = hash_list(json_object_get(j, "consistency"), proof);
    json_decref(j);
    if (first == 0 || first == second) {
        assert_int_equal(n, 0);
        return;
    }
    uint8_t root1[32], root2[32];
    test_log_root(&f->log, first, root1);
    test_log_root(&f->log, second, root2);
    error err = {{0}};
    if (merkle_verify_consistency(first, second, (const uint8_t(*)[32])proof, n, root1, root2,
                                  &err) != 0)
        fail_msg("consistency %llu -> %llu: %s", (unsigned long long)first,
                 (unsigned long long)second, err.msg);
}

static void check_inclusion(fixture *f, uint64_t index, uint64_t size)
{
    char q[96];
    snprintf(q, sizeof q, "leaf_index=%llu&tree_size=%llu", (unsigned long long)index,
             (unsigned long long)size);
    json_t *j = call_json(f, "get-entry-and-proof", q, NULL, 0);
    assert_int_equal(json_object_size(j), 3);
    check_entry(f, index, j);
    uint8_t proof[MERKLE_MAX_PROOF][32], root[32];
    size_t n = hash_list(json_object_get(j, "audit_path"), proof);
    json_decref(j);
    test_log_root(&f->log, size, root);
    error err = {{0}};
    if (merkle_verify_inclusion(index, size, f->log.leaf_hashes[index],
                                (const uint8_t(*)[32])proof, n, root, &err) != 0)
        fail_msg("inclusion %llu in %llu: %s", (unsigned long long)index,
                 (unsigned long long)size, err.msg);
}

static const uint64_t sizes[] = {1,   2,   3,   7,   8,   100, 255, 256,  257,  300,  511,
                                 512, 513, 599, 600, 601, 700, 767, 768,  769,  1000, 1023,
                                 1024, 1025, 1029, 1030};
#define SIZES (sizeof sizes / sizeof sizes[0])

static void test_growth_consistency_and_inclusion(void **state)
{
    (void)state;
    fixture *f = fx_new("rfc-grow", 600, false);
    check_sth(f);
    check_consistency(f, 256, 600);
    check_consistency(f, 599, 600);
    check_inclusion(f, 599, 600);
    call_fails(f, "get-sth-consistency", "first=10&second=601", 400,
               "need tree size: 601 for proof but only got: 600");
    call_fails(f, "get-entry-and-proof", "leaf_index=0&tree_size=601", 400, "need tree size");
    /* The partial tile rendered at 600 (88 entries) must not answer for the grown tree. */
    char cc[64];
    assert_int_equal(get_entries(f, 512, 767, cc, sizeof cc), 88);

    test_log_grow(&f->log, 1030);
    /* Still 600 until the checkpoint is re-read (refresh interval 60 s here). */
    assert_int_equal(get_entries(f, 512, 767, cc, sizeof cc), 88);
    error err = {{0}};
    assert_int_equal(rfc6962_refresh(f->layer, &err), 0);
    check_sth(f);
    assert_int_equal(get_entries(f, 512, 767, cc, sizeof cc), 256);
    assert_string_equal(cc, "public, max-age=86400, immutable");
    assert_int_equal(get_entries(f, 1024, 2000, cc, sizeof cc), 6);
    assert_string_equal(cc, "public, max-age=10");

    /* Consistency between every pair of the sizes above, published (600, 1030) or not. */
    for (size_t a = 0; a < SIZES; a++)
        for (size_t b = a; b < SIZES; b++)
            check_consistency(f, sizes[a], sizes[b]);
    check_consistency(f, 0, 1030);
    /* Inclusion for leaves at and around tile edges, in sizes at and around them. */
    const uint64_t leaves[] = {0, 1, 2, 255, 256, 257, 300, 511, 512, 598, 599, 600, 767, 768,
                               1023, 1024, 1029};
    for (size_t s = 0; s < SIZES; s++)
        for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++)
            if (leaves[i] < sizes[s])
                check_inclusion(f, leaves[i], sizes[s]);
    rfc6962_stats st;
    rfc6962_stats_read(f->layer, &st);
    assert_int_equal(st.checkpoints_accepted, 2);
    fx_free(f);
}

static void test_proof_parameters(void **state)
{
    (void)state;
    fixture *f = fx_new("rfc-params", 600, false);
    const char *c = "get-sth-consistency";
    call_fails(f, c, "second=10", 400, "parameter 'first' is required");
    call_fails(f, c, "first=1", 400, "parameter 'second' is required");
    call_fails(f, c, "first=x&second=10", 400, "parameter 'first' is malformed");
    call_fails(f, c, "first=1&second=1e3", 400, "parameter 'second' is malformed");
    call_fails(f, c, "first=-1&second=10", 400, "first and second params cannot be <0");
    call_fails(f, c, "first=10&second=9", 400, "invalid first, second params: 10 9");
    call_fails(f, c, "first=10&second=99999999999", 400, "need tree size");
    const char *e = "get-entry-and-proof";
    call_fails(f, e, "tree_size=10", 400, "parameter 'leaf_index' is required");
    call_fails(f, e, "leaf_index=1", 400, "parameter 'tree_size' is required");
    call_fails(f, e, "leaf_index=1&tree_size=0", 400, "tree_size must be > 0");
    call_fails(f, e, "leaf_index=-1&tree_size=10", 400, "leaf_index must be >= 0");
    call_fails(f, e, "leaf_index=10&tree_size=10", 400, "leaf_index 10 out of range for tree of size 10");
    call_fails(f, e, "leaf_index=1&tree_size=ten", 400, "parameter 'tree_size' is malformed");
    /* Without a leaf index the layer says so rather than guessing. */
    call_fails(f, "get-proof-by-hash", "hash=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D&tree_size=5",
               503, "no leaf index");
    fx_free(f);
}

/* base64 with '+', '/' and '=' percent-encoded, as a client builds a query value. */
static void query_b64(char *out, size_t cap, const uint8_t hash[32])
{
    char b64[64];
    base64_encode_to(b64, hash, 32);
    size_t n = 0;
    for (const char *p = b64; *p && n + 4 < cap; p++) {
        if (*p == '+' || *p == '/' || *p == '=')
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", (unsigned char)*p);
        else
            out[n++] = *p;
    }
    out[n] = 0;
}

static void check_proof_by_hash(fixture *f, uint64_t index, uint64_t size)
{
    char hash[128], q[256];
    query_b64(hash, sizeof hash, f->log.leaf_hashes[index]);
    snprintf(q, sizeof q, "hash=%s&tree_size=%llu", hash, (unsigned long long)size);
    char cc[64];
    json_t *j = call_json(f, "get-proof-by-hash", q, cc, sizeof cc);
    assert_string_equal(cc, "public, max-age=86400");
    assert_int_equal(json_integer_value(json_object_get(j, "leaf_index")), index);
    uint8_t proof[MERKLE_MAX_PROOF][32], root[32];
    size_t n = hash_list(json_object_get(j, "audit_path"), proof);
    json_decref(j);
    test_log_root(&f->log, size, root);
    error err = {{0}};
    if (merkle_verify_inclusion(index, size, f->log.leaf_hashes[index],
                                (const uint8_t(*)[32])proof, n, root, &err) != 0)
        fail_msg("proof by hash %llu in %llu: %s", (unsigned long long)index,
                 (unsigned long long)size, err.msg);
}

static void wait_for_indexed(leafindex *li, uint64_t want)
{
    for (int i = 0; i < 2000 && leafindex_indexed(li) < want; i++)
        usleep(5000);
    assert_int_equal(leafindex_indexed(li), want);
}

static void test_proof_by_hash(void **state)
{
    (void)state;
    fixture *f = fx_new("rfc-byhash", 600, true);
    error err = {{0}};
    /* The follower indexes up to the layer's verified size. */
    leafindex_follower *fol = leafindex_follower_start(f->index, f->log.storage,
                                                       rfc6962_tree_size, f->layer, 10, &err);
    assert_non_null(fol);
    wait_for_indexed(f->index, 600);
    /* Not yet indexed (the layer has not seen 1030): 404, no proof. */
    test_log_grow(&f->log, 1030);
    char hash[128], q[256];
    query_b64(hash, sizeof hash, f->log.leaf_hashes[700]);
    snprintf(q, sizeof q, "hash=%s&tree_size=600", hash);
    call_fails(f, "get-proof-by-hash", q, 404, "no leaf with this hash in the tree of size 600");
    assert_int_equal(rfc6962_refresh(f->layer, &err), 0);
    wait_for_indexed(f->index, 1030);
    leafindex_follower_stop(fol);

    const uint64_t leaves[] = {0, 1, 255, 256, 511, 512, 599, 600, 767, 768, 1024, 1029};
    for (size_t s = 0; s < SIZES; s++)
        for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++)
            if (leaves[i] < sizes[s])
                check_proof_by_hash(f, leaves[i], sizes[s]);
    /* A leaf exists but not in the smaller tree asked for. */
    snprintf(q, sizeof q, "hash=%s&tree_size=700", hash);
    call_fails(f, "get-proof-by-hash", q, 404, "no leaf with this hash");
    snprintf(q, sizeof q, "hash=%s&tree_size=701", hash);
    json_t *j = call_json(f, "get-proof-by-hash", q, NULL, 0);
    json_decref(j);
    /* An unencoded '+' in the value stays a '+' (base64 has no spaces). */
    char raw[64];
    for (uint64_t i = 0; i < 1030; i++) {
        base64_encode_to(raw, f->log.leaf_hashes[i], 32);
        if (!strchr(raw, '+') || strchr(raw, '/'))
            continue;
        raw[43] = 0; /* drop '=' and send it encoded */
        snprintf(q, sizeof q, "tree_size=1030&hash=%s%%3D", raw);
        j = call_json(f, "get-proof-by-hash", q, NULL, 0);
        assert_int_equal(json_integer_value(json_object_get(j, "leaf_index")), i);
        json_decref(j);
        break;
    }
    /* Parameters. */
    const char *p = "get-proof-by-hash";
    call_fails(f, p, "tree_size=10", 400, "missing / empty hash param");
    call_fails(f, p, "hash=&tree_size=10", 400, "missing / empty hash param");
    call_fails(f, p, "hash=***&tree_size=10", 400, "invalid base64 hash");
    call_fails(f, p, "hash=AAAA&tree_size=10", 400, "hash must be 32 bytes");
    snprintf(q, sizeof q, "hash=%s", hash);
    call_fails(f, p, q, 400, "missing or invalid tree_size");
    snprintf(q, sizeof q, "hash=%s&tree_size=0", hash);
    call_fails(f, p, q, 400, "missing or invalid tree_size");
    snprintf(q, sizeof q, "hash=%s&tree_size=1031", hash);
    call_fails(f, p, q, 404, "tree size");
    uint8_t unknown[32];
    sha256("unknown", 7, unknown);
    query_b64(hash, sizeof hash, unknown);
    snprintf(q, sizeof q, "hash=%s&tree_size=1030", hash);
    call_fails(f, p, q, 404, "no leaf with this hash");
    fx_free(f);
}

/* ---- Checkpoints the layer must refuse ---------------------------------------------------- */

static void put_checkpoint(fixture *f, const buffer *cp)
{
    error err = {{0}};
    assert_int_equal(storage_put(f->log.storage, "checkpoint", cp->data, cp->len, NULL, &err), 0);
}

static uint64_t sth_size(fixture *f)
{
    json_t *j = call_json(f, "get-sth", NULL, NULL, 0);
    uint64_t size = (uint64_t)json_integer_value(json_object_get(j, "tree_size"));
    json_decref(j);
    return size;
}

static void test_checkpoint_refusals(void **state)
{
    (void)state;
    fixture *f = fx_new("rfc-refuse", 0, false);
    /* Nothing published yet: 503, and the proofs and entries say the same. */
    call_fails(f, "get-sth", NULL, 503, "no verified checkpoint");
    call_fails(f, "get-entries", "start=0&end=1", 503, "no verified checkpoint");
    error err = {{0}};
    assert_int_equal(rfc6962_refresh(f->layer, &err), -1);

    test_log_grow(&f->log, 600);
    buffer old = {0};
    char path[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/checkpoint", f->log.dir);
    read_file_or_fail(path, &old);
    assert_int_equal(rfc6962_refresh(f->layer, &err), 0);
    assert_int_equal(sth_size(f), 600);
    test_log_grow(&f->log, 700);
    assert_int_equal(rfc6962_refresh(f->layer, &err), 0);
    assert_int_equal(sth_size(f), 700);

    /* Rollback to the older (validly signed) checkpoint: kept at 700. */
    put_checkpoint(f, &old);
    assert_int_equal(rfc6962_refresh(f->layer, &err), 0);
    assert_int_equal(sth_size(f), 700);
    /* Another key. */
    EVP_PKEY *other = private_key_generate(KEY_KIND_EC_P256, &err);
    log_signer *other_signer = log_signer_new(other, &err);
    uint8_t root[32];
    test_log_root(&f->log, 700, root);
    buffer cp = {0};
    assert_int_equal(checkpoint_sign(&cp, other_signer, TEST_LOG_ORIGIN, 700, root,
                                     f->log.timestamp + 1, &err), 0);
    put_checkpoint(f, &cp);
    assert_int_equal(rfc6962_refresh(f->layer, &err), 0);
    assert_int_equal(sth_size(f), 700);
    /* The right key, but a root the tiles do not give (a fork at the same size, then a
     * bigger tree whose tiles are not there). */
    root[0] ^= 1;
    buffer_reset(&cp);
    assert_int_equal(checkpoint_sign(&cp, f->log.signer, TEST_LOG_ORIGIN, 700, root,
                                     f->log.timestamp + 1, &err), 0);
    put_checkpoint(f, &cp);
    assert_int_equal(rfc6962_refresh(f->layer, &err), 0);
    assert_int_equal(sth_size(f), 700);
    buffer_reset(&cp);
    assert_int_equal(checkpoint_sign(&cp, f->log.signer, TEST_LOG_ORIGIN, 900, root,
                                     f->log.timestamp + 1, &err), 0);
    put_checkpoint(f, &cp);
    assert_int_equal(rfc6962_refresh(f->layer, &err), 0);
    assert_int_equal(sth_size(f), 700);
    /* Another origin under the same key. */
    test_log_root(&f->log, 700, root);
    buffer_reset(&cp);
    assert_int_equal(checkpoint_sign(&cp, f->log.signer, "other.example/log", 700, root,
                                     f->log.timestamp + 1, &err), 0);
    put_checkpoint(f, &cp);
    assert_int_equal(rfc6962_refresh(f->layer, &err), 0);
    assert_int_equal(sth_size(f), 700);
    rfc6962_stats st;
    rfc6962_stats_read(f->layer, &st);
    assert_int_equal(st.checkpoints_refused, 7); /* 2 with none published, then 5 */
    /* The same tree with a fresh timestamp is taken (empty rounds refresh the STH). */
    buffer_reset(&cp);
    assert_int_equal(checkpoint_sign(&cp, f->log.signer, TEST_LOG_ORIGIN, 700, root,
                                     f->log.timestamp + 5, &err), 0);
    put_checkpoint(f, &cp);
    assert_int_equal(rfc6962_refresh(f->layer, &err), 0);
    json_t *j = call_json(f, "get-sth", NULL, NULL, 0);
    assert_int_equal(json_integer_value(json_object_get(j, "timestamp")), f->log.timestamp + 5);
    json_decref(j);
    buffer_free(&cp);
    buffer_free(&old);
    log_signer_free(other_signer);
    EVP_PKEY_free(other);
    fx_free(f);
}

/* A data tile that does not match what it should hold is an error, never served. */
static void test_broken_data_tile(void **state)
{
    (void)state;
    fixture *f = fx_new("rfc-broken", 600, false);
    error err = {{0}};
    assert_int_equal(storage_put(f->log.storage, "tile/data/001", "\x1f\x8b garbage", 10, NULL,
                                 &err), 0);
    call_fails(f, "get-entries", "start=256&end=300", 500, "internal error");
    call_fails(f, "get-entry-and-proof", "leaf_index=300&tree_size=600", 500, "internal error");
    char path[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/tile/data/000", f->log.dir);
    assert_int_equal(unlink(path), 0);
    call_fails(f, "get-entries", "start=0&end=0", 500, "internal error");
    /* The partial tile is still fine. */
    char cc[64];
    assert_int_equal(get_entries(f, 512, 600, cc, sizeof cc), 88);
    fx_free(f);
}


/* ---- Concurrency: answers stay right while the log grows under the readers ------------- */

#define STRESS_MAX 1030
#define STRESS_THREADS 3

typedef struct stress {
    fixture *f;
    uint8_t (*leaves)[32];
    atomic_bool stop;
    atomic_int failures;
    atomic_long calls;
    char first_failure[256];
} stress;

static void stress_fail(stress *st, const char *what)
{
    if (atomic_fetch_add(&st->failures, 1) == 0)
        snprintf(st->first_failure, sizeof st->first_failure, "%s", what);
}

static json_t *stress_call(stress *st, const char *endpoint, const char *query)
{
    read_response r;
    call(st->f, endpoint, query, &r);
    atomic_fetch_add(&st->calls, 1);
    json_t *j = NULL;
    if (r.status == 200)
        j = json_loadb((const char *)r.body, r.body_len, 0, NULL);
    if (!j)
        stress_fail(st, endpoint);
    read_response_free(&r);
    return j;
}

static bool stress_root(stress *st, uint64_t size, uint8_t out[32])
{
    merkle_leaves leaves = {(const uint8_t(*)[32])st->leaves, size};
    return merkle_root(merkle_leaves_get_node, &leaves, size, out, NULL) == 0;
}

static void *stress_reader(void *arg)
{
    stress *st = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    while (!atomic_load(&st->stop)) {
        json_t *j = stress_call(st, "get-sth", NULL);
        if (!j)
            continue;
        uint64_t size = (uint64_t)json_integer_value(json_object_get(j, "tree_size"));
        uint8_t root[32], want[32];
        json_t *rh = json_object_get(j, "sha256_root_hash");
        if (base64_decode_exact(root, 32, json_string_value(rh), json_string_length(rh)) != 0 ||
            !stress_root(st, size, want) || memcmp(root, want, 32) != 0)
            stress_fail(st, "get-sth root");
        json_decref(j);
        char q[128];
        uint64_t start = (uint64_t)rand_r(&seed) % size;
        snprintf(q, sizeof q, "start=%llu&end=%llu", (unsigned long long)start,
                 (unsigned long long)(start + 40));
        if ((j = stress_call(st, "get-entries", q))) {
            json_t *entries = json_object_get(j, "entries");
            for (size_t i = 0; i < json_array_size(entries); i++) {
                json_t *li = json_object_get(json_array_get(entries, i), "leaf_input");
                buffer leaf = {0};
                uint8_t h[32];
                if (base64_decode(&leaf, json_string_value(li), json_string_length(li)) != 0)
                    stress_fail(st, "leaf_input");
                merkle_leaf_hash(leaf.data, leaf.len, h);
                if (memcmp(h, st->leaves[start + i], 32) != 0)
                    stress_fail(st, "leaf hash");
                buffer_free(&leaf);
            }
            json_decref(j);
        }
        uint64_t second = 1 + (uint64_t)rand_r(&seed) % size;
        uint64_t first = 1 + (uint64_t)rand_r(&seed) % second;
        snprintf(q, sizeof q, "first=%llu&second=%llu", (unsigned long long)first,
                 (unsigned long long)second);
        if ((j = stress_call(st, "get-sth-consistency", q))) {
            uint8_t proof[MERKLE_MAX_PROOF][32], r1[32], r2[32];
            json_t *arr = json_object_get(j, "consistency");
            size_t n = json_array_size(arr);
            for (size_t i = 0; i < n && i < MERKLE_MAX_PROOF; i++) {
                json_t *v = json_array_get(arr, i);
                if (base64_decode_exact(proof[i], 32, json_string_value(v), json_string_length(v)))
                    stress_fail(st, "proof hash");
            }
            if (first < second &&
                (!stress_root(st, first, r1) || !stress_root(st, second, r2) ||
                 merkle_verify_consistency(first, second, (const uint8_t(*)[32])proof, n, r1, r2,
                                           NULL) != 0))
                stress_fail(st, "consistency proof");
            json_decref(j);
        }
        snprintf(q, sizeof q, "leaf_index=%llu&tree_size=%llu", (unsigned long long)(first - 1),
                 (unsigned long long)second);
        if ((j = stress_call(st, "get-entry-and-proof", q))) {
            uint8_t proof[MERKLE_MAX_PROOF][32], r2[32];
            json_t *arr = json_object_get(j, "audit_path");
            size_t n = json_array_size(arr);
            for (size_t i = 0; i < n && i < MERKLE_MAX_PROOF; i++) {
                json_t *v = json_array_get(arr, i);
                if (base64_decode_exact(proof[i], 32, json_string_value(v), json_string_length(v)))
                    stress_fail(st, "proof hash");
            }
            if (!stress_root(st, second, r2) ||
                merkle_verify_inclusion(first - 1, second, st->leaves[first - 1],
                                        (const uint8_t(*)[32])proof, n, r2, NULL) != 0)
                stress_fail(st, "inclusion proof");
            json_decref(j);
        }
    }
    return NULL;
}

static void test_concurrent_readers_while_growing(void **state)
{
    (void)state;
    stress st = {0};
    st.f = fx_new("rfc-stress", 300, false);
    st.leaves = calloc(STRESS_MAX, 32);
    assert_non_null(st.leaves);
    for (uint64_t i = 0; i < STRESS_MAX; i++) {
        ct_entry e;
        test_log_entry(i, &e);
        assert_int_equal(ct_leaf_hash(&e, st.leaves[i]), 0);
    }
    pthread_t threads[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, stress_reader, &st), 0);
    const uint64_t steps[] = {301, 420, 511, 512, 513, 600, 767, 768, 900, 1024, 1030};
    error err = {{0}};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        usleep(20000);
        test_log_grow(&st.f->log, steps[i]);
        assert_int_equal(rfc6962_refresh(st.f->layer, &err), 0);
    }
    usleep(50000);
    atomic_store(&st.stop, true);
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_join(threads[i], NULL);
    if (atomic_load(&st.failures) != 0)
        fail_msg("%d failures, first: %s", atomic_load(&st.failures), st.first_failure);
    assert_true(atomic_load(&st.calls) > 0);
    free(st.leaves);
    fx_free(st.f);
}

/* ---- Bench (not asserted) ------------------------------------------------------------------ */

static double bench(fixture *f, const char *endpoint, const char *query, int n, size_t *bytes)
{
    struct timespec t0, t1;
    *bytes = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        read_response r;
        call(f, endpoint, query, &r);
        assert_int_equal(r.status, 200);
        *bytes += r.body_len;
        read_response_free(&r);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return n / ((double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
}

static void test_bench(void **state)
{
    (void)state;
    fixture *f = fx_new("rfc-bench", 600, false);
    size_t bytes;
    double rate = bench(f, "get-entries", "start=256&end=511", 1, &bytes);
    printf("bench: rfc6962 get-entries full tile, first (render)  %9.0f calls/s, %zu bytes\n",
           rate, bytes);
    rate = bench(f, "get-entries", "start=256&end=511", 5000, &bytes);
    printf("bench: rfc6962 get-entries full tile, cached          %9.0f calls/s, %.0f MB/s\n",
           rate, rate * (double)bytes / 5000 / 1e6);
    rate = bench(f, "get-entries", "start=300&end=310", 50000, &bytes);
    printf("bench: rfc6962 get-entries 11 entries, cached         %9.0f calls/s\n", rate);
    rate = bench(f, "get-sth", NULL, 200000, &bytes);
    printf("bench: rfc6962 get-sth                                %9.0f calls/s\n", rate);
    rate = bench(f, "get-entry-and-proof", "leaf_index=300&tree_size=600", 20000, &bytes);
    printf("bench: rfc6962 get-entry-and-proof                    %9.0f calls/s\n", rate);
    rate = bench(f, "get-sth-consistency", "first=300&second=600", 20000, &bytes);
    printf("bench: rfc6962 get-sth-consistency                    %9.0f calls/s\n", rate);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_sth),
        cmocka_unit_test(test_get_entries_ranges),
        cmocka_unit_test(test_endpoints_and_methods),
        cmocka_unit_test(test_growth_consistency_and_inclusion),
        cmocka_unit_test(test_proof_parameters),
        cmocka_unit_test(test_proof_by_hash),
        cmocka_unit_test(test_checkpoint_refusals),
        cmocka_unit_test(test_broken_data_tile),
        cmocka_unit_test(test_concurrent_readers_while_growing),
        cmocka_unit_test(test_bench),
    };
    return cmocka_run_group_tests_name("rfc6962", tests, test_log_global_setup,
                                       test_log_global_teardown);
}
