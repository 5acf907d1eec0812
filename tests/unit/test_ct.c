/* ct: CtExtensions, TimestampedEntry/MerkleTreeLeaf, SCT v1 (wire + JSON), TileLeaf and data
 * tiles, dedup key, extra_data. Known answers: SPEC §1.3 table, sunlight navigli2025h2 tiles,
 * tesseract example_tile, the ct-go RFC 6962 vectors. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base64.h"
#include "ct.h"
#include "precert.h"
#include "sha256.h"

/* --- helpers --- */

/* Value of "key hexorbase64" in rfc6962-vectors/vectors.txt, into out (a fresh buffer). */
static void vector_or_fail(const char *key, buffer *out)
{
    buffer file = {0};
    read_file_or_fail(testdata_path("rfc6962-vectors/vectors.txt"), &file);
    assert_int_equal(buffer_terminate(&file), 0);
    size_t key_len = strlen(key);
    const char *line = (const char *)file.data;
    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > key_len && strncmp(line, key, key_len) == 0 && line[key_len] == ' ') {
            const char *value = line + key_len + 1;
            size_t value_len = len - key_len - 1;
            if (strncmp(key, "sct-", 4) == 0) {
                assert_int_equal(buffer_reserve(out, value_len / 2), 0);
                assert_int_equal(hex_decode(out->data, value_len / 2, value, value_len), 0);
                out->len = value_len / 2;
            } else {
                assert_int_equal(base64_decode(out, value, value_len), 0);
            }
            buffer_free(&file);
            return;
        }
        line = end ? end + 1 : NULL;
    }
    fail_msg("no vector %s", key);
}

static void navigli_file(const char *relative, buffer *out)
{
    char path[128];
    snprintf(path, sizeof path, "navigli2025h2/tile/%s", relative);
    buffer_reset(out);
    read_file_or_fail(testdata_path(path), out);
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static size_t count_distinct_hashes(uint8_t (*hashes)[32], size_t n)
{
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < i && memcmp(hashes[j], hashes[i], 32) != 0)
            j++;
        distinct += j == i;
    }
    return distinct;
}

/* --- CtExtensions --- */

static void test_leaf_index_extension_table(void **state)
{
    (void)state;
    static const struct {
        uint64_t index;
        const char *base64;
    } table[] = {
        {0, "AAAFAAAAAAA="},
        {1, "AAAFAAAAAAE="},
        {255, "AAAFAAAAAP8="},
        {1234067, "AAAFAAAS1JM="},
        {CT_MAX_LEAF_INDEX, "AAAF//////8="},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        buffer ext = {0}, text = {0};
        assert_int_equal(ct_extensions_put_leaf_index(&ext, table[i].index), 0);
        assert_int_equal(ext.len, CT_LEAF_INDEX_EXTENSIONS_LEN);
        assert_int_equal(base64_encode(&text, ext.data, ext.len), 0);
        assert_string_equal((char *)text.data, table[i].base64);
        uint64_t got = 12345;
        assert_int_equal(ct_extensions_parse(ext.data, ext.len, CT_EXTENSIONS_SCT, &got, NULL), 0);
        assert_true(got == table[i].index);
        got = 12345;
        assert_int_equal(
            ct_extensions_parse(ext.data, ext.len, CT_EXTENSIONS_DATA_TILE, &got, NULL), 0);
        assert_true(got == table[i].index);
        buffer_free(&ext);
        buffer_free(&text);
    }
    buffer b = {0};
    assert_int_equal(ct_extensions_put_leaf_index(&b, CT_MAX_LEAF_INDEX + 1), -1);
    assert_int_equal(b.len, 0);
    buffer_free(&b);
}

static void test_extensions_rules(void **state)
{
    (void)state;
    error err = {{0}};
    uint64_t index = 0;
    /* An unknown type before leaf_index: fine for an SCT (order ignored), not in a tile. */
    static const uint8_t unknown_first[] = {0x07, 0x00, 0x02, 0xaa, 0xbb,
                                            0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x02};
    assert_int_equal(ct_extensions_parse(unknown_first, sizeof unknown_first, CT_EXTENSIONS_SCT,
                                         &index, &err), 0);
    assert_true(index == 0x0102);
    assert_int_equal(ct_extensions_parse(unknown_first, sizeof unknown_first,
                                         CT_EXTENSIONS_DATA_TILE, &index, &err), -1);
    assert_non_null(strstr(err.msg, "unexpected type 7"));
    /* Duplicates of any type are refused. */
    static const uint8_t twice_index[] = {0x00, 0x00, 0x05, 0, 0, 0, 0, 1,
                                          0x00, 0x00, 0x05, 0, 0, 0, 0, 1};
    static const uint8_t twice_unknown[] = {0x09, 0x00, 0x00, 0x09, 0x00, 0x00,
                                            0x00, 0x00, 0x05, 0, 0, 0, 0, 1};
    for (int mode = CT_EXTENSIONS_SCT; mode <= CT_EXTENSIONS_DATA_TILE; mode++) {
        assert_int_equal(ct_extensions_parse(twice_index, sizeof twice_index,
                                             (ct_extensions_mode)mode, &index, &err), -1);
        assert_non_null(strstr(err.msg, "twice"));
    }
    assert_int_equal(ct_extensions_parse(twice_unknown, sizeof twice_unknown, CT_EXTENSIONS_SCT,
                                         &index, &err), -1);
    assert_non_null(strstr(err.msg, "twice"));
    /* leaf_index is required; empty extensions (an RFC 6962 leaf) are not a static-ct entry. */
    static const uint8_t only_unknown[] = {0x05, 0x00, 0x01, 0xff};
    assert_int_equal(ct_extensions_parse(only_unknown, sizeof only_unknown, CT_EXTENSIONS_SCT,
                                         &index, &err), -1);
    assert_non_null(strstr(err.msg, "no leaf_index"));
    assert_int_equal(ct_extensions_parse(NULL, 0, CT_EXTENSIONS_SCT, &index, &err), -1);
    assert_int_equal(ct_extensions_parse(NULL, 0, CT_EXTENSIONS_DATA_TILE, &index, &err), -1);
    /* leaf_index data must be exactly 5 bytes. */
    static const uint8_t short_index[] = {0x00, 0x00, 0x04, 0, 0, 0, 1};
    static const uint8_t long_index[] = {0x00, 0x00, 0x06, 0, 0, 0, 0, 0, 1};
    assert_int_equal(ct_extensions_parse(short_index, sizeof short_index, CT_EXTENSIONS_SCT,
                                         &index, &err), -1);
    assert_int_equal(ct_extensions_parse(long_index, sizeof long_index, CT_EXTENSIONS_SCT,
                                         &index, &err), -1);
    /* Every truncation of a valid list fails. */
    for (size_t n = 0; n < sizeof unknown_first; n++)
        assert_int_equal(ct_extensions_parse(unknown_first, n, CT_EXTENSIONS_SCT, &index, NULL),
                         -1);
}

/* --- navigli2025h2: real data tiles --- */

static void test_navigli_first_record(void **state)
{
    (void)state;
    buffer tile = {0};
    navigli_file("data/000", &tile);
    tls_reader r;
    tls_reader_init(&r, tile.data, tile.len);
    ct_entry e;
    error err = {{0}};
    assert_int_equal(ct_tile_leaf_read(&r, &e, &err), 0);
    assert_int_equal((size_t)(r.pos - tile.data), 2715);
    assert_true(e.timestamp == 1746292399101ULL);
    assert_int_equal(e.entry_type, CT_ENTRY_PRECERT);
    assert_memory_equal(e.issuer_key_hash, tile.data + 10, 32);
    assert_memory_equal(e.issuer_key_hash, "\xb3\xe4\x9a\xc8", 4);
    assert_memory_equal(e.issuer_key_hash + 28, "\x82\xf6\xc9\x29", 4);
    assert_ptr_equal(e.cert_or_tbs, tile.data + 45);
    assert_int_equal(e.cert_or_tbs_len, 1145);
    assert_memory_equal(e.cert_or_tbs, "\x30\x82\x04\x75", 4);
    assert_true(e.leaf_index == 0);
    assert_ptr_equal(e.pre_certificate, tile.data + 1203);
    assert_int_equal(e.pre_certificate_len, 1446);
    assert_memory_equal(e.pre_certificate, "\x30\x82\x05\xa2", 4);
    assert_int_equal(e.fingerprint_count, 2);
    assert_ptr_equal(e.fingerprints, tile.data + 2651);
    assert_memory_equal(e.fingerprints, "\x54\x58\x84\x56", 4);
    assert_memory_equal(e.fingerprints + 28, "\x30\x8d\xec\x42", 4);
    assert_memory_equal(e.fingerprints + 32, "\xe7\x05\x70\xa9", 4);
    assert_memory_equal(e.fingerprints + 60, "\x02\x91\x21\x98", 4);

    uint8_t want[32], got[32];
    hex_or_fail(want, 32, "c853d5121104135a85f8a66a9d16d62234d541473ed78424032622564baddddf");
    assert_int_equal(ct_leaf_hash(&e, got), 0);
    assert_memory_equal(got, want, 32);
    /* H(00 00 00 || bytes[0..1200)) spelled out. */
    static const uint8_t prefix[3] = {0};
    const void *parts[] = {prefix, tile.data};
    const size_t lens[] = {3, 1200};
    sha256_parts(got, 2, parts, lens);
    assert_memory_equal(got, want, 32);
    /* The MerkleTreeLeaf is 00 00 || the first 1200 bytes of the record. */
    buffer mtl = {0};
    assert_int_equal(ct_merkle_tree_leaf_encode(&mtl, &e), 0);
    assert_int_equal(mtl.len, 1202);
    assert_memory_equal(mtl.data + 2, tile.data, 1200);
    buffer_free(&mtl);
    buffer_free(&tile);
}

static void test_navigli_all_tiles(void **state)
{
    (void)state;
    buffer tile = {0}, hashes = {0}, reencoded = {0}, mtl = {0};
    uint64_t timestamps[1024];
    uint8_t intermediates[1024][32], roots[1024][32];
    size_t total = 0;
    for (int n = 0; n < 4; n++) {
        char name[32];
        snprintf(name, sizeof name, "data/%03d", n);
        navigli_file(name, &tile);
        snprintf(name, sizeof name, "0/%03d", n);
        navigli_file(name, &hashes);
        assert_int_equal(hashes.len, 256 * 32);

        ct_data_tile_iter it;
        ct_data_tile_iter_init(&it, tile.data, tile.len);
        ct_entry e;
        error err = {{0}};
        int rc;
        const uint8_t *record = tile.data;
        while ((rc = ct_data_tile_next(&it, &e, &err)) == 1) {
            size_t i = it.count - 1;
            assert_true(i < 256);
            assert_true(e.leaf_index == (uint64_t)n * 256 + i);
            assert_int_equal(e.entry_type, CT_ENTRY_PRECERT);
            assert_int_equal(e.fingerprint_count, 2);
            uint8_t leaf[32];
            assert_int_equal(ct_leaf_hash(&e, leaf), 0);
            assert_memory_equal(leaf, hashes.data + 32 * i, 32);
            /* The hash of the encoded MerkleTreeLeaf agrees with the streaming hash. */
            buffer_reset(&mtl);
            assert_int_equal(buffer_append_byte(&mtl, 0), 0);
            assert_int_equal(ct_merkle_tree_leaf_encode(&mtl, &e), 0);
            uint8_t leaf2[32];
            sha256(mtl.data, mtl.len, leaf2);
            assert_memory_equal(leaf2, leaf, 32);
            /* encode(parse(x)) == x, byte for byte. */
            size_t record_len = (size_t)(it.r.pos - record);
            buffer_reset(&reencoded);
            assert_int_equal(ct_tile_leaf_encode(&reencoded, &e), 0);
            assert_int_equal(reencoded.len, record_len);
            assert_memory_equal(reencoded.data, record, record_len);
            record = it.r.pos;

            timestamps[total] = e.timestamp;
            memcpy(intermediates[total], e.fingerprints, 32);
            memcpy(roots[total], e.fingerprints + 32, 32);
            total++;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(it.count, 256);
        assert_true(record == tile.data + tile.len);
    }
    assert_int_equal(total, 1024);
    qsort(timestamps, total, sizeof timestamps[0], compare_u64);
    size_t distinct = 1;
    for (size_t i = 1; i < total; i++)
        distinct += timestamps[i] != timestamps[i - 1];
    assert_int_equal(distinct, 272);
    assert_true(timestamps[0] == 1746292399101ULL);
    assert_true(timestamps[total - 1] == 1746292689102ULL);
    assert_int_equal(count_distinct_hashes(intermediates, total), 4);
    assert_int_equal(count_distinct_hashes(roots, total), 1);
    buffer_free(&tile);
    buffer_free(&hashes);
    buffer_free(&reencoded);
    buffer_free(&mtl);
}

static void test_navigli_partial_tile(void **state)
{
    (void)state;
    buffer full = {0}, partial = {0}, hashes = {0};
    navigli_file("data/003", &full);
    navigli_file("data/003.p/10", &partial);
    navigli_file("0/003.p/10", &hashes);
    assert_int_equal(hashes.len, 10 * 32);
    assert_true(partial.len < full.len);
    assert_memory_equal(partial.data, full.data, partial.len);
    ct_data_tile_iter it;
    ct_data_tile_iter_init(&it, partial.data, partial.len);
    ct_entry e;
    error err = {{0}};
    int rc;
    while ((rc = ct_data_tile_next(&it, &e, &err)) == 1) {
        uint8_t leaf[32];
        assert_true(e.leaf_index == 768 + it.count - 1);
        assert_int_equal(ct_leaf_hash(&e, leaf), 0);
        assert_memory_equal(leaf, hashes.data + 32 * (it.count - 1), 32);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(it.count, 10);
    buffer_free(&full);
    buffer_free(&partial);
    buffer_free(&hashes);
}

static void test_example_tile(void **state)
{
    (void)state;
    buffer tile = {0}, reencoded = {0};
    read_file_or_fail(testdata_path("tiles/example_tile"), &tile);
    ct_data_tile_iter it;
    ct_data_tile_iter_init(&it, tile.data, tile.len);
    ct_entry e;
    error err = {{0}};
    int rc;
    uint64_t first = 0;
    const uint8_t *record = tile.data;
    while ((rc = ct_data_tile_next(&it, &e, &err)) == 1) {
        if (it.count == 1)
            first = e.leaf_index;
        assert_true(e.leaf_index == first + it.count - 1);
        buffer_reset(&reencoded);
        assert_int_equal(ct_tile_leaf_encode(&reencoded, &e), 0);
        assert_int_equal(reencoded.len, (size_t)(it.r.pos - record));
        assert_memory_equal(reencoded.data, record, reencoded.len);
        record = it.r.pos;
    }
    if (rc != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(it.count, 256);
    assert_true(first % 256 == 0);
    assert_true(tls_reader_empty(&it.r));
    buffer_free(&tile);
    buffer_free(&reencoded);
}

/* Every proper prefix of a record fails, leaving the reader where it was. */
static void assert_every_truncation_fails(const uint8_t *record, size_t len)
{
    for (size_t n = 0; n < len; n++) {
        tls_reader r;
        tls_reader_init(&r, record, n);
        ct_entry e;
        error err = {{0}};
        assert_int_equal(ct_tile_leaf_read(&r, &e, &err), -1);
        assert_ptr_equal(r.pos, record);
        assert_int_equal(r.left, n);
        assert_true(err.msg[0] != 0);
    }
}

static void test_tile_leaf_malformed(void **state)
{
    (void)state;
    buffer tile = {0}, copy = {0};
    navigli_file("data/001", &tile);
    tls_reader r;
    tls_reader_init(&r, tile.data, tile.len);
    ct_entry e;
    error err = {{0}};
    assert_int_equal(ct_tile_leaf_read(&r, &e, &err), 0);
    size_t len = (size_t)(r.pos - tile.data);
    /* Field offsets of this precert record. */
    size_t ext_at = 42 + 3 + e.cert_or_tbs_len;
    size_t pre_at = ext_at + 10;
    size_t fps_at = pre_at + 3 + e.pre_certificate_len;
    assert_every_truncation_fails(tile.data, len);

    /* A tile cut inside its second record, or followed by garbage, fails as a whole. */
    ct_data_tile_iter it;
    ct_data_tile_iter_init(&it, tile.data, len + 100);
    assert_int_equal(ct_data_tile_next(&it, &e, &err), 1);
    assert_int_equal(ct_data_tile_next(&it, &e, &err), -1);
    assert_non_null(strstr(err.msg, "data tile entry 1"));
    assert_int_equal(buffer_append(&copy, tile.data, len), 0);
    assert_int_equal(buffer_append_byte(&copy, 0), 0);
    ct_data_tile_iter_init(&it, copy.data, copy.len);
    assert_int_equal(ct_data_tile_next(&it, &e, &err), 1);
    assert_int_equal(ct_data_tile_next(&it, &e, &err), -1);

    struct {
        size_t offset;
        uint8_t byte;
        const char *reason;
    } mutations[] = {
        {9, 0x02, "entry_type"},         /* entry_type 2 */
        {42, 0xff, "truncated"},         /* TBS length past the end */
        {ext_at + 1, 0x07, "extensions"}, /* extensions length 7 */
        {ext_at + 1, 0x09, "extensions"}, /* extensions length 9 */
        {ext_at + 4, 0x04, "leaf_index"}, /* leaf_index data length 4 */
        {ext_at + 2, 0x01, "unexpected type 1"}, /* extension type 1 */
        {pre_at, 0xff, "truncated"},     /* pre_certificate length past the end */
        {fps_at + 1, 0x3f, "multiple of 32"}, /* fingerprints 63 bytes */
        {fps_at, 0x01, "truncated"},     /* fingerprints past the end */
    };
    for (size_t i = 0; i < sizeof mutations / sizeof mutations[0]; i++) {
        buffer_reset(&copy);
        assert_int_equal(buffer_append(&copy, tile.data, len), 0);
        copy.data[mutations[i].offset] = mutations[i].byte;
        tls_reader_init(&r, copy.data, copy.len);
        assert_int_equal(ct_tile_leaf_read(&r, &e, &err), -1);
        if (!strstr(err.msg, mutations[i].reason))
            fail_msg("mutation %zu: %s", i, err.msg);
    }

    /* ASN.1Cert and pre_certificate are <1..2^24-1>: empty ones are refused. */
    static const uint8_t empty_cert[] = {0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0x00, 0, 0, 0,
                                         0x00, 0x08, 0x00, 0x00, 0x05, 0, 0, 0, 0, 0, 0x00, 0x00};
    tls_reader_init(&r, empty_cert, sizeof empty_cert);
    assert_int_equal(ct_tile_leaf_read(&r, &e, &err), -1);
    assert_non_null(strstr(err.msg, "empty certificate"));
    buffer_reset(&copy);
    assert_int_equal(buffer_append(&copy, tile.data, pre_at), 0);
    assert_int_equal(buffer_append(&copy, "\x00\x00\x00\x00\x00", 5), 0);
    tls_reader_init(&r, copy.data, copy.len);
    assert_int_equal(ct_tile_leaf_read(&r, &e, &err), -1);
    assert_non_null(strstr(err.msg, "empty pre_certificate"));
    buffer_free(&tile);
    buffer_free(&copy);
}

/* --- RFC 6962 vectors (certificate-transparency-go testdata) --- */

typedef struct rfc6962_fixture {
    buffer cert, precert, ca, embedded, invalid_embedded, log_key, tbs;
    ct_entry x509_entry, precert_entry;
} rfc6962_fixture;

static void rfc6962_load(rfc6962_fixture *f)
{
    memset(f, 0, sizeof *f);
    pem_der_or_fail("rfc6962-vectors/test-cert.pem", &f->cert);
    pem_der_or_fail("rfc6962-vectors/test-precert.pem", &f->precert);
    pem_der_or_fail("rfc6962-vectors/ca-cert.pem", &f->ca);
    pem_der_or_fail("rfc6962-vectors/test-embedded-cert.pem", &f->embedded);
    pem_der_or_fail("rfc6962-vectors/test-invalid-embedded-cert.pem", &f->invalid_embedded);
    pem_der_or_fail("rfc6962-vectors/log-public-key.pem", &f->log_key);
    error err = {{0}};

    f->x509_entry.entry_type = CT_ENTRY_X509;
    f->x509_entry.cert_or_tbs = f->cert.data;
    f->x509_entry.cert_or_tbs_len = f->cert.len;

    precert_poison poison;
    if (precert_tbs_for_log(f->precert.data, f->precert.len, &f->tbs, &poison, &err) != 0)
        fail_msg("%s", err.msg);
    assert_true(poison.critical && poison.value_is_null);
    f->precert_entry.entry_type = CT_ENTRY_PRECERT;
    assert_int_equal(precert_issuer_key_hash(f->ca.data, f->ca.len,
                                             f->precert_entry.issuer_key_hash, &err), 0);
    f->precert_entry.cert_or_tbs = f->tbs.data;
    f->precert_entry.cert_or_tbs_len = f->tbs.len;
    f->precert_entry.pre_certificate = f->precert.data;
    f->precert_entry.pre_certificate_len = f->precert.len;
}

static void rfc6962_free(rfc6962_fixture *f)
{
    buffer_free(&f->cert);
    buffer_free(&f->precert);
    buffer_free(&f->ca);
    buffer_free(&f->embedded);
    buffer_free(&f->invalid_embedded);
    buffer_free(&f->log_key);
    buffer_free(&f->tbs);
}

/* 1 if the SCT's signature over its signed data for e verifies under the SPKI key. */
static int sct_verifies(const ct_sct *sct, const ct_entry *e, const buffer *spki,
                        size_t *signed_len)
{
    buffer data = {0};
    assert_int_equal(ct_sct_signed_data(&data, sct, e), 0);
    if (signed_len)
        *signed_len = data.len;
    uint8_t hash_alg, sig_alg;
    const uint8_t *sig;
    size_t sig_len;
    assert_int_equal(ct_digitally_signed_parse(sct->signature, sct->signature_len, &hash_alg,
                                               &sig_alg, &sig, &sig_len, NULL), 0);
    assert_int_equal(hash_alg, CT_HASH_ALG_SHA256);
    assert_int_equal(sig_alg, CT_SIG_ALG_ECDSA);
    const unsigned char *p = spki->data;
    EVP_PKEY *key = d2i_PUBKEY(NULL, &p, (long)spki->len);
    assert_non_null(key);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
    int ok = EVP_DigestVerify(ctx, sig, sig_len, data.data, data.len) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    buffer_free(&data);
    return ok;
}

static void test_rfc6962_leaf_hashes(void **state)
{
    (void)state;
    rfc6962_fixture f;
    rfc6962_load(&f);
    static const struct {
        const char *sct, *leaf_hash;
        bool precert;
        size_t signed_len;
    } cases[] = {
        {"sct-test-cert", "leafhash-test-cert", false, 735},
        {"sct-test-precert", "leafhash-test-precert", true, 616},
    };
    uint8_t log_id[32];
    sha256(f.log_key.data, f.log_key.len, log_id);
    uint8_t want_log_id[32];
    hex_or_fail(want_log_id, 32, "df1c2ec11500945247a96168325ddc5c7959e8f7c6d388fc002e0bbd3f74d764");
    assert_memory_equal(log_id, want_log_id, 32);

    for (size_t i = 0; i < 2; i++) {
        buffer wire = {0}, want = {0}, again = {0};
        vector_or_fail(cases[i].sct, &wire);
        vector_or_fail(cases[i].leaf_hash, &want);
        assert_int_equal(want.len, 32);
        ct_sct sct;
        error err = {{0}};
        assert_int_equal(ct_sct_parse(wire.data, wire.len, &sct, &err), 0);
        assert_int_equal(sct.version, 0);
        assert_memory_equal(sct.log_id, log_id, 32);
        assert_int_equal(sct.extensions_len, 0);
        assert_ptr_equal(sct.signature, wire.data + 43);
        assert_int_equal(sct.signature_len, wire.len - 43);
        /* Pre-static-ct SCTs carry no leaf_index. */
        uint64_t index;
        assert_int_equal(ct_sct_leaf_index(&sct, &index, &err), -1);
        assert_non_null(strstr(err.msg, "no leaf_index"));
        /* Wire round trip. */
        assert_int_equal(ct_sct_encode(&again, &sct), 0);
        assert_int_equal(again.len, wire.len);
        assert_memory_equal(again.data, wire.data, wire.len);

        ct_entry e = cases[i].precert ? f.precert_entry : f.x509_entry;
        e.timestamp = sct.timestamp;
        uint8_t leaf[32];
        assert_int_equal(ct_leaf_hash_ext(&e, NULL, 0, leaf), 0);
        assert_memory_equal(leaf, want.data, 32);
        /* The signed data is the MerkleTreeLeaf. */
        buffer mtl = {0};
        assert_int_equal(buffer_append_byte(&mtl, 0), 0);
        assert_int_equal(ct_merkle_tree_leaf_encode_ext(&mtl, &e, NULL, 0), 0);
        sha256(mtl.data, mtl.len, leaf);
        assert_memory_equal(leaf, want.data, 32);
        size_t signed_len = 0;
        assert_true(sct_verifies(&sct, &e, &f.log_key, &signed_len));
        assert_int_equal(signed_len, cases[i].signed_len);
        assert_int_equal(mtl.len - 1, signed_len);
        /* A different timestamp in the entry does not matter: the SCT's is signed. */
        e.timestamp = 1;
        assert_true(sct_verifies(&sct, &e, &f.log_key, NULL));
        /* Swapping entries breaks the signature. */
        ct_entry other = cases[i].precert ? f.x509_entry : f.precert_entry;
        assert_false(sct_verifies(&sct, &other, &f.log_key, NULL));
        buffer_free(&mtl);
        buffer_free(&wire);
        buffer_free(&want);
        buffer_free(&again);
    }
    rfc6962_free(&f);
}

/* The SCT list embedded in a final certificate, and the TBS it was signed over. */
static void embedded_sct(const buffer *cert, buffer *list_storage, ct_sct *sct, buffer *tbs)
{
    der_tlv cert_tbs_tlv;
    error err = {{0}};
    assert_int_equal(cert_tbs(cert->data, cert->len, &cert_tbs_tlv, &err), 0);
    tbs_removed_extension removed;
    if (tbs_remove_extension(cert_tbs_tlv.start, cert_tbs_tlv.total_len, precert_sct_list_oid,
                             sizeof precert_sct_list_oid, tbs, &removed, &err) != 0)
        fail_msg("%s", err.msg);
    assert_false(removed.critical);
    der_tlv inner;
    assert_int_equal(der_parse_whole(removed.value.content, removed.value.len, DER_OCTET_STRING,
                                     &inner, &err), 0);
    assert_int_equal(buffer_append(list_storage, inner.content, inner.len), 0);
    tls_reader r, list;
    tls_reader_init(&r, list_storage->data, list_storage->len);
    assert_int_equal(tls_get_vec_reader(&r, 2, &list), 0);
    assert_true(tls_reader_empty(&r));
    const uint8_t *one;
    size_t one_len;
    assert_int_equal(tls_get_vec(&list, 2, &one, &one_len), 0);
    assert_true(tls_reader_empty(&list));
    assert_int_equal(ct_sct_parse(one, one_len, sct, &err), 0);
}

static void test_rfc6962_embedded_sct(void **state)
{
    (void)state;
    rfc6962_fixture f;
    rfc6962_load(&f);
    buffer storage = {0}, tbs = {0}, wire = {0}, invalid_wire = {0};
    ct_sct sct;
    embedded_sct(&f.embedded, &storage, &sct, &tbs);
    /* The final certificate's TBS minus its SCT list is the precert's TBS minus the poison. */
    assert_int_equal(tbs.len, f.tbs.len);
    assert_memory_equal(tbs.data, f.tbs.data, tbs.len);
    /* Its SCT is the precert vector's SCT, and verifies. */
    vector_or_fail("sct-test-precert", &wire);
    buffer encoded = {0};
    assert_int_equal(ct_sct_encode(&encoded, &sct), 0);
    assert_int_equal(encoded.len, wire.len);
    assert_memory_equal(encoded.data, wire.data, wire.len);
    assert_true(sct_verifies(&sct, &f.precert_entry, &f.log_key, NULL));

    /* The invalid certificate carries sct-invalid-embedded, which does not verify. */
    buffer_reset(&storage);
    buffer_reset(&tbs);
    embedded_sct(&f.invalid_embedded, &storage, &sct, &tbs);
    vector_or_fail("sct-invalid-embedded", &invalid_wire);
    buffer_reset(&encoded);
    assert_int_equal(ct_sct_encode(&encoded, &sct), 0);
    assert_int_equal(encoded.len, invalid_wire.len);
    assert_memory_equal(encoded.data, invalid_wire.data, invalid_wire.len);
    ct_entry e = f.precert_entry;
    e.cert_or_tbs = tbs.data;
    e.cert_or_tbs_len = tbs.len;
    assert_false(sct_verifies(&sct, &e, &f.log_key, NULL));
    buffer_free(&encoded);
    buffer_free(&storage);
    buffer_free(&tbs);
    buffer_free(&wire);
    buffer_free(&invalid_wire);
    rfc6962_free(&f);
}

static void test_sct_wire_malformed(void **state)
{
    (void)state;
    buffer wire = {0}, copy = {0};
    vector_or_fail("sct-test-cert", &wire);
    ct_sct sct;
    error err = {{0}};
    for (size_t n = 0; n < wire.len; n++) {
        tls_reader r;
        tls_reader_init(&r, wire.data, n);
        assert_int_equal(ct_sct_read(&r, &sct, &err), -1);
        assert_int_equal(r.left, n);
        assert_int_equal(ct_sct_parse(wire.data, n, &sct, &err), -1);
    }
    assert_int_equal(buffer_append(&copy, wire.data, wire.len), 0);
    assert_int_equal(buffer_append_byte(&copy, 0), 0);
    assert_int_equal(ct_sct_parse(copy.data, copy.len, &sct, &err), -1);
    assert_non_null(strstr(err.msg, "trailing"));
    copy.data[0] = 1;
    assert_int_equal(ct_sct_parse(copy.data, copy.len - 1, &sct, &err), -1);
    assert_non_null(strstr(err.msg, "version"));
    copy.data[0] = 0;
    copy.data[42] = 0x10; /* extensions length past the end */
    assert_int_equal(ct_sct_parse(copy.data, copy.len - 1, &sct, &err), -1);
    buffer_free(&wire);
    buffer_free(&copy);
}

static void test_sct_json(void **state)
{
    (void)state;
    ct_sct sct = {.version = 0, .timestamp = 1746292399101ULL};
    for (int i = 0; i < 32; i++)
        sct.log_id[i] = (uint8_t)i;
    uint8_t ext[CT_LEAF_INDEX_EXTENSIONS_LEN];
    ct_extensions_leaf_index_bytes(ext, 1234067);
    sct.extensions = ext;
    sct.extensions_len = sizeof ext;
    static const uint8_t signature[] = {4, 3, 0, 3, 0xaa, 0xbb, 0xcc};
    sct.signature = signature;
    sct.signature_len = sizeof signature;

    buffer json = {0};
    assert_int_equal(ct_sct_encode_json(&json, &sct), 0);
    assert_int_equal(buffer_terminate(&json), 0);
    assert_string_equal((char *)json.data,
                        "{\"sct_version\":0,\"id\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
                        "\"timestamp\":1746292399101,\"extensions\":\"AAAFAAAS1JM=\","
                        "\"signature\":\"BAMAA6q7zA==\"}");

    buffer storage = {0};
    ct_sct parsed;
    error err = {{0}};
    assert_int_equal(ct_sct_parse_json((char *)json.data, json.len, &parsed, &storage, &err), 0);
    assert_memory_equal(parsed.log_id, sct.log_id, 32);
    assert_true(parsed.timestamp == sct.timestamp);
    assert_int_equal(parsed.extensions_len, sizeof ext);
    assert_memory_equal(parsed.extensions, ext, sizeof ext);
    assert_int_equal(parsed.signature_len, sizeof signature);
    assert_memory_equal(parsed.signature, signature, sizeof signature);
    uint64_t index;
    assert_int_equal(ct_sct_leaf_index(&parsed, &index, &err), 0);
    assert_true(index == 1234067);
    /* The client rebuilds the wire form by putting the 2-byte length back. */
    buffer wire = {0};
    assert_int_equal(ct_sct_encode(&wire, &parsed), 0);
    assert_int_equal(wire.len, 1 + 32 + 8 + 2 + 8 + sizeof signature);
    assert_memory_equal(wire.data + 41, "\x00\x08", 2);

    /* The RFC 6962 vector as JSON (empty extensions) round-trips too. */
    buffer vector = {0}, vector_json = {0}, vector_again = {0};
    vector_or_fail("sct-test-precert", &vector);
    assert_int_equal(ct_sct_parse(vector.data, vector.len, &sct, &err), 0);
    assert_int_equal(ct_sct_encode_json(&vector_json, &sct), 0);
    assert_non_null(strstr((char *)vector_json.data, "\"extensions\":\"\""));
    assert_int_equal(
        ct_sct_parse_json((char *)vector_json.data, vector_json.len, &parsed, &storage, &err), 0);
    assert_int_equal(ct_sct_encode(&vector_again, &parsed), 0);
    assert_int_equal(vector_again.len, vector.len);
    assert_memory_equal(vector_again.data, vector.data, vector.len);

    static const char *const bad[] = {
        "",
        "[]",
        "{\"sct_version\":1,\"id\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
        "\"timestamp\":1,\"extensions\":\"\",\"signature\":\"BAMAAA==\"}",
        "{\"sct_version\":0,\"id\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\","
        "\"timestamp\":1,\"extensions\":\"\",\"signature\":\"BAMAAA==\"}",
        "{\"sct_version\":0,\"id\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
        "\"timestamp\":\"1\",\"extensions\":\"\",\"signature\":\"BAMAAA==\"}",
        "{\"sct_version\":0,\"id\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
        "\"timestamp\":-1,\"extensions\":\"\",\"signature\":\"BAMAAA==\"}",
        "{\"sct_version\":0,\"id\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
        "\"timestamp\":1,\"signature\":\"BAMAAA==\"}",
        "{\"sct_version\":0,\"id\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
        "\"timestamp\":1,\"extensions\":\"AA\",\"signature\":\"BAMAAA==\"}",
        "{\"sct_version\":0,\"id\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
        "\"timestamp\":1,\"extensions\":\"\",\"signature\":\"BAMAAQ==\"}",
        "{\"sct_version\":0,\"id\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
        "\"timestamp\":1,\"timestamp\":2,\"extensions\":\"\",\"signature\":\"BAMAAA==\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (ct_sct_parse_json(bad[i], strlen(bad[i]), &parsed, &storage, &err) != -1)
            fail_msg("bad JSON %zu accepted", i);
    }
    const char *good = "{\"sct_version\":0,\"id\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
                       "\"timestamp\":1,\"extensions\":\"\",\"signature\":\"BAMAAA==\"}";
    assert_int_equal(ct_sct_parse_json(good, strlen(good), &parsed, &storage, &err), 0);
    assert_int_equal(parsed.signature_len, 4);
    buffer_free(&json);
    buffer_free(&storage);
    buffer_free(&wire);
    buffer_free(&vector);
    buffer_free(&vector_json);
    buffer_free(&vector_again);
}

static void test_x509_tile_leaf_and_extra_data(void **state)
{
    (void)state;
    rfc6962_fixture f;
    rfc6962_load(&f);
    uint8_t fp[32];
    sha256(f.ca.data, f.ca.len, fp);
    ct_entry e = f.x509_entry;
    e.timestamp = 1700000000000ULL;
    e.leaf_index = 42;
    e.fingerprints = fp;
    e.fingerprint_count = 1;

    buffer leaf = {0}, extra = {0};
    assert_int_equal(ct_tile_leaf_encode(&leaf, &e), 0);
    assert_int_equal(leaf.len, 8 + 2 + 3 + f.cert.len + 10 + 2 + 32);
    tls_reader r;
    tls_reader_init(&r, leaf.data, leaf.len);
    ct_entry back;
    error err = {{0}};
    assert_int_equal(ct_tile_leaf_read(&r, &back, &err), 0);
    assert_true(tls_reader_empty(&r));
    assert_int_equal(back.entry_type, CT_ENTRY_X509);
    assert_true(back.timestamp == e.timestamp && back.leaf_index == 42);
    assert_int_equal(back.cert_or_tbs_len, f.cert.len);
    assert_memory_equal(back.cert_or_tbs, f.cert.data, f.cert.len);
    assert_null(back.pre_certificate);
    assert_int_equal(back.fingerprint_count, 1);
    assert_memory_equal(back.fingerprints, fp, 32);
    assert_every_truncation_fails(leaf.data, leaf.len);

    /* x509 extra_data: uint24 list of uint24 certs. */
    const uint8_t *issuers[] = {f.ca.data};
    const size_t issuer_lens[] = {f.ca.len};
    assert_int_equal(ct_extra_data_encode(&extra, &e, issuers, issuer_lens, 1, &err), 0);
    assert_int_equal(extra.len, 3 + 3 + f.ca.len);
    assert_true(be_load(extra.data, 3) == 3 + f.ca.len);
    assert_true(be_load(extra.data + 3, 3) == f.ca.len);
    assert_memory_equal(extra.data + 6, f.ca.data, f.ca.len);

    /* precert extra_data: uint24 pre_certificate || the list. */
    ct_entry p = f.precert_entry;
    p.fingerprints = fp;
    p.fingerprint_count = 1;
    buffer_reset(&extra);
    assert_int_equal(ct_extra_data_encode(&extra, &p, issuers, issuer_lens, 1, &err), 0);
    assert_int_equal(extra.len, 3 + f.precert.len + 3 + 3 + f.ca.len);
    assert_true(be_load(extra.data, 3) == f.precert.len);
    assert_memory_equal(extra.data + 3, f.precert.data, f.precert.len);
    size_t at = 3 + f.precert.len;
    assert_true(be_load(extra.data + at, 3) == 3 + f.ca.len);
    assert_memory_equal(extra.data + at + 6, f.ca.data, f.ca.len);

    /* Wrong issuer or count: refused, buffer untouched. */
    buffer_reset(&extra);
    const uint8_t *wrong[] = {f.cert.data};
    const size_t wrong_lens[] = {f.cert.len};
    assert_int_equal(ct_extra_data_encode(&extra, &e, wrong, wrong_lens, 1, &err), -1);
    assert_non_null(strstr(err.msg, "fingerprint"));
    assert_int_equal(ct_extra_data_encode(&extra, &e, issuers, issuer_lens, 0, &err), -1);
    assert_int_equal(extra.len, 0);

    /* An entry that cannot be encoded is refused. */
    ct_entry bad = e;
    bad.leaf_index = CT_MAX_LEAF_INDEX + 1;
    assert_int_equal(ct_tile_leaf_encode(&leaf, &bad), -1);
    bad = e;
    bad.entry_type = 2;
    assert_int_equal(ct_tile_leaf_encode(&leaf, &bad), -1);
    bad = e;
    bad.fingerprint_count = CT_MAX_FINGERPRINTS + 1;
    assert_int_equal(ct_tile_leaf_encode(&leaf, &bad), -1);
    bad = f.precert_entry;
    bad.pre_certificate_len = 0;
    assert_int_equal(ct_tile_leaf_encode(&leaf, &bad), -1);
    buffer_free(&leaf);
    buffer_free(&extra);
    rfc6962_free(&f);
}

static void test_dedup_key(void **state)
{
    (void)state;
    rfc6962_fixture f;
    rfc6962_load(&f);
    uint8_t key[32], want[32];
    buffer input = {0};

    assert_int_equal(ct_dedup_key(&f.x509_entry, key), 0);
    assert_int_equal(tls_put_u16(&input, CT_ENTRY_X509), 0);
    assert_int_equal(tls_put_vec(&input, 3, f.cert.data, f.cert.len), 0);
    sha256(input.data, input.len, want);
    assert_memory_equal(key, want, 32);

    buffer_reset(&input);
    assert_int_equal(ct_dedup_key(&f.precert_entry, key), 0);
    assert_int_equal(tls_put_u16(&input, CT_ENTRY_PRECERT), 0);
    assert_int_equal(tls_put_bytes(&input, f.precert_entry.issuer_key_hash, 32), 0);
    assert_int_equal(tls_put_vec(&input, 3, f.tbs.data, f.tbs.len), 0);
    sha256(input.data, input.len, want);
    assert_memory_equal(key, want, 32);

    /* Timestamp, index, precertificate bytes and chain do not enter the key;
     * the issuer does. */
    ct_entry other = f.precert_entry;
    other.timestamp = 99;
    other.leaf_index = 7;
    other.pre_certificate = f.cert.data;
    other.fingerprint_count = 3;
    uint8_t key2[32];
    assert_int_equal(ct_dedup_key(&other, key2), 0);
    assert_memory_equal(key2, key, 32);
    other.issuer_key_hash[0] ^= 1;
    assert_int_equal(ct_dedup_key(&other, key2), 0);
    assert_memory_not_equal(key2, key, 32);
    buffer_free(&input);
    rfc6962_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leaf_index_extension_table),
        cmocka_unit_test(test_extensions_rules),
        cmocka_unit_test(test_navigli_first_record),
        cmocka_unit_test(test_navigli_all_tiles),
        cmocka_unit_test(test_navigli_partial_tile),
        cmocka_unit_test(test_example_tile),
        cmocka_unit_test(test_tile_leaf_malformed),
        cmocka_unit_test(test_rfc6962_leaf_hashes),
        cmocka_unit_test(test_rfc6962_embedded_sct),
        cmocka_unit_test(test_sct_wire_malformed),
        cmocka_unit_test(test_sct_json),
        cmocka_unit_test(test_x509_tile_leaf_and_extra_data),
        cmocka_unit_test(test_dedup_key),
    };
    return cmocka_run_group_tests_name("ct", tests, NULL, NULL);
}
