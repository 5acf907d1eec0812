/* The frontend's request -> entry -> SCT pipeline, without any network: body parsing with a
 * distinct reason per error, entries built from real chains (RFC 6962 known answers for the
 * leaf hashes), the SubmitRequest, deterministic SCTs that verify with the log key, the
 * per-log state (roots, window, signer, get-roots) and log.v3.json. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "base64.h"
#include "config.h"
#include "ct.h"
#include "keys.h"
#include "../../frontend/log_state.h"
#include "logv3.h"
#include "pem.h"
#include "sha256.h"
#include "../../frontend/submission.h"
#include "x509chain.h"

/* ---- helpers ---- */

/* {"chain":[...]} from every certificate of the given PEM files, in order. */
static void body_from_pem(buffer *body, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    assert_int_equal(buffer_append_str(body, "{\"chain\":["), 0);
    size_t n = 0;
    for (const char *f = first; f; f = va_arg(ap, const char *)) {
        pem_list list = {0};
        error err = {{0}};
        if (pem_read_certificates_file(testdata_path(f), 0, &list, &err) != 0)
            fail_msg("%s: %s", f, err.msg);
        for (size_t i = 0; i < list.count; i++) {
            if (n++)
                assert_int_equal(buffer_append_byte(body, ','), 0);
            assert_int_equal(buffer_append_byte(body, '"'), 0);
            assert_int_equal(base64_encode(body, list.items[i].data, list.items[i].len), 0);
            assert_int_equal(buffer_append_byte(body, '"'), 0);
        }
        pem_list_free(&list);
    }
    va_end(ap);
    assert_int_equal(buffer_append_str(body, "]}"), 0);
}

static void der_of(const char *rel, size_t index, buffer *out)
{
    pem_list list = {0};
    error err = {{0}};
    if (pem_read_certificates_file(testdata_path(rel), 0, &list, &err) != 0)
        fail_msg("%s: %s", rel, err.msg);
    assert_true(index < list.count);
    assert_int_equal(buffer_append(out, list.items[index].data, list.items[index].len), 0);
    pem_list_free(&list);
}

static x509_root_set *roots_of(const char *rel)
{
    x509_root_set *roots = x509_root_set_new();
    error err = {{0}};
    if (x509_root_set_add_pem_file(roots, testdata_path(rel), &err) != 0)
        fail_msg("%s: %s", rel, err.msg);
    return roots;
}

/* 1970 .. 2100: these tests are not about the window (log_state's test is). */
static x509_validator *wide_validator(const x509_root_set *roots)
{
    x509_validator_config cfg = {.roots = roots, .not_after_start = 0,
                                 .not_after_limit = 4102444800LL};
    error err = {{0}};
    x509_validator *v = x509_validator_new(&cfg, &err);
    if (!v)
        fail_msg("validator: %s", err.msg);
    return v;
}

/* Parses and builds; fails the test on any error. */
static void build_ok(x509_validator *v, const buffer *body, x509_endpoint ep,
                     submission_chain *chain, submission *sub)
{
    error err = {{0}};
    if (submission_parse_body(body->data, body->len, chain, &err) != 0)
        fail_msg("parse: %s", err.msg);
    if (submission_build(v, chain, ep, sub, &err) != 0)
        fail_msg("build: %s", err.msg);
}

/* The value of "name=..." in rfc6962-vectors/vectors.txt. */
static const char *vector(const char *name)
{
    static char value[1024];
    buffer text = {0};
    read_file_or_fail(testdata_path("rfc6962-vectors/vectors.txt"), &text);
    assert_int_equal(buffer_terminate(&text), 0);
    size_t name_len = strlen(name);
    const char *line = (const char *)text.data;
    while (line && *line) {
        if (strncmp(line, name, name_len) == 0 && line[name_len] == ' ') {
            const char *v = line + name_len + 1;
            size_t len = strcspn(v, "\n");
            assert_true(len < sizeof value);
            memcpy(value, v, len);
            value[len] = 0;
            buffer_free(&text);
            return value;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    fail_msg("vector %s not found", name);
    return NULL;
}

/* ---- body parsing ---- */

static void test_parse_errors_have_distinct_reasons(void **state)
{
    (void)state;
    buffer eleven = {0};
    assert_int_equal(buffer_append_str(&eleven, "{\"chain\":["), 0);
    for (int i = 0; i < 11; i++)
        assert_int_equal(buffer_append_str(&eleven, i ? ",\"AAAA\"" : "\"AAAA\""), 0);
    assert_int_equal(buffer_append_str(&eleven, "]}"), 0);
    assert_int_equal(buffer_terminate(&eleven), 0);

    /* 128 KiB + 3 bytes of DER, base64: one element too large. */
    buffer huge = {0};
    assert_int_equal(buffer_append_str(&huge, "{\"chain\":[\""), 0);
    for (size_t i = 0; i < (X509_CERT_MAX_DER + 3) / 3; i++)
        assert_int_equal(buffer_append_str(&huge, "AAAA"), 0);
    assert_int_equal(buffer_append_str(&huge, "\"]}"), 0);
    assert_int_equal(buffer_terminate(&huge), 0);

    struct {
        const char *body;
        const char *want;
    } cases[] = {
        {"", "request body is empty"},
        {"{\"chain\":[", "not valid JSON"},
        {"{\"chain\":[\"AAAA\"]} trailing", "not valid JSON"},
        {"{\"chain\":[\"AAAA\"],\"chain\":[\"AAAA\"]}", "duplicate"},
        {"[\"AAAA\"]", "must be a JSON object"},
        {"\"chain\"", "must be a JSON object"},
        {"{\"certs\":[\"AAAA\"]}", "has no \"chain\" member"},
        {"{\"chain\":\"AAAA\"}", "\"chain\" must be an array"},
        {"{\"chain\":{\"0\":\"AAAA\"}}", "\"chain\" must be an array"},
        {"{\"chain\":[]}", "\"chain\" is empty"},
        {(const char *)eleven.data, "has 11 certificates; at most 10"},
        {"{\"chain\":[\"AAAA\",7]}", "chain[1] is not a string"},
        {"{\"chain\":[null]}", "chain[0] is not a string"},
        {"{\"chain\":[\"AAAA\",\"\"]}", "chain[1] is an empty string"},
        {"{\"chain\":[\"AAA\"]}", "chain[0] is not valid base64"},
        {"{\"chain\":[\"AAAA\",\"AA=A\"]}", "chain[1] is not valid base64"},
        {"{\"chain\":[\"AA AA\"]}", "chain[0] is not valid base64"},
        {"{\"chain\":[\"AB==\"]}", "chain[0] is not valid base64"}, /* non-zero pad bits */
        {(const char *)huge.data, "chain[0] is larger than"},
    };
    size_t n = sizeof cases / sizeof cases[0];
    char reasons[32][256];
    assert_true(n <= 32);
    for (size_t i = 0; i < n; i++) {
        submission_chain chain;
        error err = {{0}};
        int rc = submission_parse_body((const uint8_t *)cases[i].body, strlen(cases[i].body),
                                       &chain, &err);
        if (rc == 0)
            fail_msg("case %zu (%s) was accepted", i, cases[i].want);
        if (!strstr(err.msg, cases[i].want))
            fail_msg("case %zu: reason \"%s\" lacks \"%s\"", i, err.msg, cases[i].want);
        assert_null(strchr(err.msg, '\n'));
        assert_int_equal(chain.count, 0);
        assert_null(chain.storage.data);
        submission_chain_free(&chain);
        snprintf(reasons[i], sizeof reasons[i], "%s", err.msg);
    }
    /* Each kind of mistake reads differently (cases that share an expectation aside). */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(cases[i].want, cases[j].want) != 0 && strcmp(reasons[i], reasons[j]) == 0)
                fail_msg("cases %zu and %zu share the reason \"%s\"", i, j, reasons[i]);
    buffer_free(&eleven);
    buffer_free(&huge);
}

static void test_parse_good_body(void **state)
{
    (void)state;
    buffer body = {0};
    body_from_pem(&body, "chains/ctgo/leaf02.chain", NULL);
    submission_chain chain;
    error err = {{0}};
    assert_int_equal(submission_parse_body(body.data, body.len, &chain, &err), 0);
    assert_int_equal(chain.count, 3);
    for (size_t i = 0; i < 3; i++) {
        buffer der = {0};
        der_of("chains/ctgo/leaf02.chain", i, &der);
        assert_int_equal(chain.certs[i].len, der.len);
        assert_memory_equal(chain.certs[i].data, der.data, der.len);
        buffer_free(&der);
    }
    submission_chain_free(&chain);

    /* Unknown members are ignored; exactly 10 elements parse (validation judges them). */
    const char *ten = "{\"x\":1,\"chain\":[\"AAAA\",\"AAAA\",\"AAAA\",\"AAAA\",\"AAAA\","
                      "\"AAAA\",\"AAAA\",\"AAAA\",\"AAAA\",\"AAAA\"]}";
    assert_int_equal(submission_parse_body((const uint8_t *)ten, strlen(ten), &chain, &err), 0);
    assert_int_equal(chain.count, 10);
    assert_int_equal(chain.certs[9].len, 3);
    submission_chain_free(&chain);
    buffer_free(&body);
}

/* ---- entries ---- */

static void test_build_x509_entry(void **state)
{
    (void)state;
    x509_root_set *roots = roots_of("chains/ctgo/fake-ca.cert");
    x509_validator *v = wide_validator(roots);
    buffer body = {0};
    body_from_pem(&body, "chains/ctgo/leaf00.chain", NULL); /* leaf + int-ca, root omitted */
    submission_chain chain;
    submission sub;
    build_ok(v, &body, X509_ADD_CHAIN, &chain, &sub);

    buffer leaf = {0}, inter = {0}, root = {0};
    der_of("chains/ctgo/leaf00.chain", 0, &leaf);
    der_of("chains/ctgo/leaf00.chain", 1, &inter);
    der_of("chains/ctgo/fake-ca.cert", 0, &root);
    const ct_entry *e = &sub.entry;
    assert_int_equal(e->entry_type, CT_ENTRY_X509);
    assert_int_equal(e->cert_or_tbs_len, leaf.len);
    assert_memory_equal(e->cert_or_tbs, leaf.data, leaf.len);
    assert_null(e->pre_certificate);
    /* Fingerprints: the intermediate, then the root the submitter left out. */
    assert_int_equal(e->fingerprint_count, 2);
    uint8_t fp[32];
    sha256(inter.data, inter.len, fp);
    assert_memory_equal(e->fingerprints, fp, 32);
    sha256(root.data, root.len, fp);
    assert_memory_equal(e->fingerprints + 32, fp, 32);
    /* Dedup key = SHA-256(00 00 || u24 len || leaf), computed independently. */
    uint8_t prefix[5] = {0, 0, (uint8_t)(leaf.len >> 16), (uint8_t)(leaf.len >> 8),
                         (uint8_t)leaf.len};
    const void *parts[] = {prefix, leaf.data};
    const size_t lens[] = {5, leaf.len};
    sha256_parts(fp, 2, parts, lens);
    assert_memory_equal(sub.dedup_key, fp, 32);

    /* The SubmitRequest carries the same bytes, root included, and survives the wire. */
    Tegula__SubmitRequest req;
    ProtobufCBinaryData fps[X509_CHAIN_MAX], issuers[X509_CHAIN_MAX];
    submission_request(&sub, "2026h1", &req, fps, issuers);
    size_t packed_len = tegula__submit_request__get_packed_size(&req);
    uint8_t *packed = malloc(packed_len);
    assert_non_null(packed);
    tegula__submit_request__pack(&req, packed);
    Tegula__SubmitRequest *got = tegula__submit_request__unpack(NULL, packed_len, packed);
    assert_non_null(got);
    assert_string_equal(got->log, "2026h1");
    assert_int_equal(got->entry_type, TEGULA__ENTRY_TYPE__ENTRY_X509);
    assert_int_equal(got->dedup_key.len, 32);
    assert_memory_equal(got->dedup_key.data, sub.dedup_key, 32);
    assert_int_equal(got->cert_or_tbs.len, leaf.len);
    assert_memory_equal(got->cert_or_tbs.data, leaf.data, leaf.len);
    assert_int_equal(got->issuer_key_hash.len, 0);
    assert_int_equal(got->precert.len, 0);
    assert_int_equal(got->n_chain_fps, 2);
    assert_int_equal(got->n_issuers, 2);
    assert_int_equal(got->issuers[0].len, inter.len);
    assert_memory_equal(got->issuers[0].data, inter.data, inter.len);
    assert_int_equal(got->issuers[1].len, root.len);
    assert_memory_equal(got->issuers[1].data, root.data, root.len);
    assert_memory_equal(got->chain_fps[1].data, e->fingerprints + 32, 32);
    assert_false(got->low_priority);
    tegula__submit_request__free_unpacked(got, NULL);
    free(packed);

    /* The same certificate sent as a precert: the validator's reason. */
    submission_chain_free(&chain);
    submission_free(&sub);
    error err = {{0}};
    assert_int_equal(submission_parse_body(body.data, body.len, &chain, &err), 0);
    assert_int_equal(submission_build(v, &chain, X509_ADD_PRE_CHAIN, &sub, &err), -1);
    assert_non_null(strstr(err.msg, "add-pre-chain received a certificate"));
    submission_free(&sub);
    submission_chain_free(&chain);

    /* A chain to a root this log does not accept. */
    buffer other = {0};
    body_from_pem(&other, "chains/tesseract/test_leaf_cert_signed_by_intermediate.pem",
                  "chains/tesseract/test_intermediate_ca_cert.pem", NULL);
    assert_int_equal(submission_parse_body(other.data, other.len, &chain, &err), 0);
    assert_int_equal(submission_build(v, &chain, X509_ADD_CHAIN, &sub, &err), -1);
    assert_true(err.msg[0] != 0);
    submission_free(&sub);
    submission_chain_free(&chain);

    /* Garbage that is valid base64 but not DER. */
    const char *junk = "{\"chain\":[\"AAAA\"]}";
    assert_int_equal(submission_parse_body((const uint8_t *)junk, strlen(junk), &chain, &err),
                     0);
    assert_int_equal(submission_build(v, &chain, X509_ADD_CHAIN, &sub, &err), -1);
    assert_true(err.msg[0] != 0);
    submission_free(&sub);
    submission_chain_free(&chain);

    buffer_free(&other);
    buffer_free(&leaf);
    buffer_free(&inter);
    buffer_free(&root);
    buffer_free(&body);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

/* RFC 6962's own certificate and precertificate (ct-go testdata): the entries built by the
 * frontend must hash to the published leaf hashes and verify the published SCTs, which have
 * empty extensions and these timestamps. */
static void check_rfc6962_vector(const char *leaf_file, x509_endpoint ep, const char *sct_name,
                                 const char *leafhash_name)
{
    x509_root_set *roots = roots_of("rfc6962-vectors/ca-cert.pem");
    x509_validator *v = wide_validator(roots);
    buffer body = {0};
    body_from_pem(&body, leaf_file, "rfc6962-vectors/ca-cert.pem", NULL);
    submission_chain chain;
    submission sub;
    build_ok(v, &body, ep, &chain, &sub);

    /* The published SCT: its timestamp dates the entry, its signature covers the leaf. */
    const char *sct_hex = vector(sct_name);
    size_t sct_len = strlen(sct_hex) / 2;
    uint8_t *sct_bytes = malloc(sct_len);
    assert_non_null(sct_bytes);
    hex_or_fail(sct_bytes, sct_len, sct_hex);
    ct_sct sct;
    error err = {{0}};
    assert_int_equal(ct_sct_parse(sct_bytes, sct_len, &sct, &err), 0);
    sub.entry.timestamp = sct.timestamp;

    uint8_t want[32], got[32];
    const char *leafhash = vector(leafhash_name);
    assert_int_equal(base64_decode_exact(want, 32, leafhash, strlen(leafhash)), 0);
    assert_int_equal(ct_leaf_hash_ext(&sub.entry, NULL, 0, got), 0);
    assert_memory_equal(got, want, 32);

    buffer signed_data = {0};
    assert_int_equal(ct_sct_signed_data(&signed_data, &sct, &sub.entry), 0);
    EVP_PKEY *pub = public_key_load_pem(testdata_path("rfc6962-vectors/log-public-key.pem"),
                                        &err);
    assert_non_null(pub);
    digitally_signed ds;
    assert_int_equal(digitally_signed_parse(sct.signature, sct.signature_len, &ds, &err), 0);
    if (digitally_signed_verify(pub, signed_data.data, signed_data.len, &ds, &err) != 0)
        fail_msg("%s: %s", sct_name, err.msg);
    /* One flipped bit of the entry breaks it. */
    ((uint8_t *)signed_data.data)[signed_data.len / 2] ^= 1;
    assert_int_equal(digitally_signed_verify(pub, signed_data.data, signed_data.len, &ds, NULL),
                     -1);
    EVP_PKEY_free(pub);
    buffer_free(&signed_data);
    free(sct_bytes);
    submission_free(&sub);
    submission_chain_free(&chain);
    buffer_free(&body);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

static void test_rfc6962_cert_entry(void **state)
{
    (void)state;
    check_rfc6962_vector("rfc6962-vectors/test-cert.pem", X509_ADD_CHAIN, "sct-test-cert",
                         "leafhash-test-cert");
}

static void test_rfc6962_precert_entry(void **state)
{
    (void)state;
    check_rfc6962_vector("rfc6962-vectors/test-precert.pem", X509_ADD_PRE_CHAIN,
                         "sct-test-precert", "leafhash-test-precert");

    /* And the precert-specific fields, checked directly. */
    x509_root_set *roots = roots_of("rfc6962-vectors/ca-cert.pem");
    x509_validator *v = wide_validator(roots);
    buffer body = {0};
    body_from_pem(&body, "rfc6962-vectors/test-precert.pem", NULL); /* issuer = the root */
    submission_chain chain;
    submission sub;
    build_ok(v, &body, X509_ADD_PRE_CHAIN, &chain, &sub);
    buffer precert = {0}, ca = {0};
    der_of("rfc6962-vectors/test-precert.pem", 0, &precert);
    der_of("rfc6962-vectors/ca-cert.pem", 0, &ca);
    const ct_entry *e = &sub.entry;
    assert_int_equal(e->entry_type, CT_ENTRY_PRECERT);
    assert_int_equal(e->pre_certificate_len, precert.len);
    assert_memory_equal(e->pre_certificate, precert.data, precert.len);
    assert_true(e->cert_or_tbs_len < precert.len);
    x509_span spki;
    assert_int_equal(x509_cert_spki(ca.data, ca.len, &spki), 0);
    uint8_t hash[32];
    sha256(spki.data, spki.len, hash);
    assert_memory_equal(e->issuer_key_hash, hash, 32);
    assert_int_equal(e->fingerprint_count, 1);
    sha256(ca.data, ca.len, hash);
    assert_memory_equal(e->fingerprints, hash, 32);

    Tegula__SubmitRequest req;
    ProtobufCBinaryData fps[X509_CHAIN_MAX], issuers[X509_CHAIN_MAX];
    submission_request(&sub, "l", &req, fps, issuers);
    assert_int_equal(req.entry_type, TEGULA__ENTRY_TYPE__ENTRY_PRECERT);
    assert_int_equal(req.issuer_key_hash.len, 32);
    assert_memory_equal(req.issuer_key_hash.data, e->issuer_key_hash, 32);
    assert_int_equal(req.precert.len, precert.len);
    assert_int_equal(req.cert_or_tbs.len, e->cert_or_tbs_len);
    assert_int_equal(req.n_issuers, 1);
    assert_int_equal(req.issuers[0].len, ca.len);

    /* Dedup key covers type, issuer key hash and TBS; not the chain. */
    uint8_t prefix[2] = {0, 1}, len3[3] = {(uint8_t)(e->cert_or_tbs_len >> 16),
                                           (uint8_t)(e->cert_or_tbs_len >> 8),
                                           (uint8_t)e->cert_or_tbs_len};
    const void *parts[] = {prefix, e->issuer_key_hash, len3, e->cert_or_tbs};
    const size_t lens[] = {2, 32, 3, e->cert_or_tbs_len};
    sha256_parts(hash, 4, parts, lens);
    assert_memory_equal(sub.dedup_key, hash, 32);

    /* The same precertificate on add-chain is refused. */
    submission_free(&sub);
    error err = {{0}};
    assert_int_equal(submission_build(v, &chain, X509_ADD_CHAIN, &sub, &err), -1);
    assert_non_null(strstr(err.msg, "add-chain received a precertificate"));
    submission_free(&sub);
    submission_chain_free(&chain);
    buffer_free(&precert);
    buffer_free(&ca);
    buffer_free(&body);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

/* ---- SCTs ---- */

static void test_sct_verifies_and_is_deterministic(void **state)
{
    (void)state;
    error err = {{0}};
    EVP_PKEY *key = private_key_generate(KEY_KIND_EC_P256, &err);
    assert_non_null(key);
    log_signer *signer = log_signer_new(key, &err);
    assert_non_null(signer);

    x509_root_set *roots = roots_of("chains/ctgo/fake-ca.cert");
    x509_validator *v = wide_validator(roots);
    buffer body = {0};
    body_from_pem(&body, "chains/ctgo/subleaf-pre.chain", NULL);
    submission_chain chain;
    submission sub;
    /* subleaf-pre.chain ends in its own root: trust that one. */
    error e2 = {{0}};
    x509_root_set *pre_roots = x509_root_set_new();
    assert_int_equal(submission_parse_body(body.data, body.len, &chain, &e2), 0);
    assert_int_equal(x509_root_set_add_der(pre_roots, chain.certs[3].data, chain.certs[3].len,
                                           &e2), 0);
    submission_chain_free(&chain);
    x509_validator *pv = wide_validator(pre_roots);
    build_ok(pv, &body, X509_ADD_PRE_CHAIN, &chain, &sub);

    for (int round = 0; round < 2; round++) {
        sub.entry.timestamp = round ? 1767225600123ULL : 1;
        sub.entry.leaf_index = round ? CT_MAX_LEAF_INDEX : 0;
        buffer json1 = {0}, json2 = {0};
        assert_int_equal(submission_sct_json(signer, &sub.entry, &json1, &err), 0);
        assert_int_equal(submission_sct_json(signer, &sub.entry, &json2, &err), 0);
        assert_int_equal(json1.len, json2.len);
        assert_memory_equal(json1.data, json2.data, json1.len);

        ct_sct sct;
        buffer storage = {0};
        if (ct_sct_parse_json((const char *)json1.data, json1.len, &sct, &storage, &err) != 0)
            fail_msg("%s", err.msg);
        assert_int_equal(sct.version, 0);
        assert_memory_equal(sct.log_id, log_signer_log_id(signer), 32);
        assert_int_equal(sct.timestamp, sub.entry.timestamp);
        uint64_t index = 99;
        assert_int_equal(ct_sct_leaf_index(&sct, &index, &err), 0);
        assert_int_equal(index, sub.entry.leaf_index);
        assert_int_equal(sct.extensions_len, CT_LEAF_INDEX_EXTENSIONS_LEN);

        /* The signed data is the MerkleTreeLeaf, and it verifies with the public key. */
        buffer signed_data = {0}, leaf = {0};
        assert_int_equal(ct_sct_signed_data(&signed_data, &sct, &sub.entry), 0);
        assert_int_equal(ct_merkle_tree_leaf_encode(&leaf, &sub.entry), 0);
        assert_int_equal(signed_data.len, leaf.len);
        assert_memory_equal(signed_data.data, leaf.data, leaf.len);
        digitally_signed ds;
        assert_int_equal(digitally_signed_parse(sct.signature, sct.signature_len, &ds, &err), 0);
        assert_int_equal(ds.hash_alg, DS_HASH_SHA256);
        assert_int_equal(ds.sig_alg, DS_SIG_ECDSA);
        if (digitally_signed_verify(log_signer_public_key(signer), signed_data.data,
                                    signed_data.len, &ds, &err) != 0)
            fail_msg("SCT does not verify: %s", err.msg);
        /* Another index is another signature. */
        sub.entry.leaf_index ^= 1;
        buffer json3 = {0};
        assert_int_equal(submission_sct_json(signer, &sub.entry, &json3, &err), 0);
        assert_false(json3.len == json1.len && memcmp(json3.data, json1.data, json1.len) == 0);
        buffer_free(&json3);
        buffer_free(&signed_data);
        buffer_free(&leaf);
        buffer_free(&storage);
        buffer_free(&json1);
        buffer_free(&json2);
    }
    sub.entry.leaf_index = CT_MAX_LEAF_INDEX + 1;
    buffer json = {0};
    assert_int_equal(submission_sct_json(signer, &sub.entry, &json, &err), -1);
    assert_int_equal(json.len, 0);

    submission_free(&sub);
    submission_chain_free(&chain);
    buffer_free(&body);
    x509_validator_free(pv);
    x509_validator_free(v);
    x509_root_set_free(pre_roots);
    x509_root_set_free(roots);
    log_signer_free(signer);
    EVP_PKEY_free(key);
}

/* ---- log state and log.v3.json ---- */

static const char *write_config(const char *dir)
{
    static char path[4096];
    char file[4200];
    error err = {{0}};
    snprintf(file, sizeof file, "%s/keys", dir);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/roots.pem'", file,
             testdata_path("chains/ctgo/fake-ca.cert"), dir);
    assert_int_equal(system(cmd), 0);
    const char *names[] = {"a.key", "b.key"};
    for (size_t i = 0; i < 2; i++) {
        EVP_PKEY *k = private_key_generate(KEY_KIND_EC_P256, &err);
        assert_non_null(k);
        snprintf(file, sizeof file, "%s/keys/%s", dir, names[i]);
        if (private_key_store_pem(file, k, &err) != 0)
            fail_msg("%s", err.msg);
        EVP_PKEY_free(k);
    }
    snprintf(path, sizeof path, "%s/tegula.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("logs:\n"
          "  - name: 2026h1\n"
          "    description: \"tegula test 2026h1\"\n"
          "    submission_prefix: http://127.0.0.1:8080/2026h1/\n"
          "    monitoring_prefix: https://mon.example.org/2026h1/\n"
          "    key: keys/a.key\n"
          "    roots: roots.pem\n"
          "    not_after_start: 2026-01-01T00:00:00Z\n"
          "    not_after_limit: 2026-07-01T00:00:00.500Z\n"
          "    storage: file:data/a\n"
          "    lock: file:data/a.lock\n"
          "    sequencer: tcp://127.0.0.1:9201\n"
          "  - name: 2026h2\n"
          "    submission_prefix: https://ct.example.org/2026h2/\n"
          "    key: keys/b.key\n"
          "    roots: roots.pem\n"
          "    not_after_start: 2015-01-01T00:00:00Z\n"
          "    not_after_limit: 2030-01-01T00:00:00Z\n"
          "    storage: file:data/b\n"
          "    lock: file:data/b.lock\n"
          "    sequencer: tcp://127.0.0.1:9202\n"
          "    mmd: 86400\n"
          "    status: readonly\n"
          "    intended_use: production\n"
          "batchers:\n"
          "  addresses: [tcp://127.0.0.1:9101]\n",
          f);
    fclose(f);
    return path;
}

static const char *json_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("log.v3.json: %s is not a string", key);
    return json_string_value(v);
}

static void test_log_state_and_logv3(void **state)
{
    (void)state;
    const char *dir = test_tmpdir("frontend_log_state");
    const char *path = write_config(dir);
    error err = {{0}};
    config *cfg = config_load(path, &err);
    if (!cfg)
        fail_msg("config: %s", err.msg);
    log_state logs[2];
    for (size_t i = 0; i < 2; i++)
        if (log_state_open(&logs[i], &cfg->logs[i], &err) != 0)
            fail_msg("log_state_open: %s", err.msg);

    /* The window: whole seconds; a fractional limit rounds up (notAfter < limit_ms). */
    int64_t start, limit;
    log_state_not_after_window(&cfg->logs[0], &start, &limit);
    assert_int_equal(start, 1767225600);
    assert_int_equal(limit, 1782864001);

    /* get-roots lists the roots file. */
    buffer root = {0};
    der_of("chains/ctgo/fake-ca.cert", 0, &root);
    json_error_t jerr;
    json_t *roots_doc = json_loadb((const char *)logs[0].roots_json.data,
                                   logs[0].roots_json.len, 0, &jerr);
    assert_non_null(roots_doc);
    json_t *certs = json_object_get(roots_doc, "certificates");
    assert_true(json_is_array(certs));
    assert_int_equal(json_array_size(certs), 1);
    buffer b64 = {0};
    assert_int_equal(base64_encode(&b64, root.data, root.len), 0);
    assert_string_equal(json_string_value(json_array_get(certs, 0)), (const char *)b64.data);
    json_decref(roots_doc);

    /* The validator uses the window: ctgo's leaves (notAfter 2025) fall before 2026h1 and
     * inside the wide 2026h2. */
    buffer body = {0};
    body_from_pem(&body, "chains/ctgo/leaf02.chain", NULL);
    submission_chain chain;
    submission sub;
    assert_int_equal(submission_parse_body(body.data, body.len, &chain, &err), 0);
    assert_int_equal(submission_build(logs[0].validator, &chain, X509_ADD_CHAIN, &sub, &err),
                     -1);
    assert_non_null(strstr(err.msg, "outside this log's window"));
    submission_free(&sub);
    assert_int_equal(submission_build(logs[1].validator, &chain, X509_ADD_CHAIN, &sub, &err), 0);
    submission_free(&sub);
    submission_chain_free(&chain);

    /* log.v3.json of both logs. */
    for (size_t i = 0; i < 2; i++) {
        json_t *doc = json_loadb((const char *)logs[i].logv3_json.data, logs[i].logv3_json.len,
                                 JSON_REJECT_DUPLICATES, &jerr);
        if (!doc)
            fail_msg("log.v3.json: %s", jerr.text);
        size_t spki_len;
        const uint8_t *spki = log_signer_spki(logs[i].signer, &spki_len);
        buffer want = {0};
        assert_int_equal(base64_encode(&want, spki, spki_len), 0);
        assert_string_equal(json_str(doc, "key"), (const char *)want.data);
        buffer_reset(&want);
        assert_int_equal(base64_encode(&want, log_signer_log_id(logs[i].signer), 32), 0);
        assert_string_equal(json_str(doc, "log_id"), (const char *)want.data);
        buffer_free(&want);
        assert_string_equal(json_str(doc, "log_spec"), "static-ct-api");
        assert_string_equal(json_str(doc, "friendly_name"), cfg->logs[i].name);
        json_t *interval = json_object_get(doc, "temporal_interval");
        assert_true(json_is_object(interval));
        json_t *software = json_object_get(doc, "log_software");
        assert_string_equal(json_str(software, "name"), "tegula");
        assert_null(json_object_get(doc, "final_tree_head"));
        if (i == 0) {
            assert_string_equal(json_str(doc, "description"), "tegula test 2026h1");
            assert_string_equal(json_str(doc, "submission_url"),
                                "http://127.0.0.1:8080/2026h1/");
            assert_string_equal(json_str(doc, "monitoring_url"),
                                "https://mon.example.org/2026h1/");
            assert_string_equal(json_str(json_object_get(doc, "monitoring_endpoint"), "url"),
                                "https://mon.example.org/2026h1/");
            assert_string_equal(json_str(interval, "start_inclusive"), "2026-01-01T00:00:00Z");
            assert_string_equal(json_str(interval, "end_exclusive"),
                                "2026-07-01T00:00:00.500Z");
            assert_int_equal(json_integer_value(json_object_get(doc, "mmd")), 60);
            assert_string_equal(json_str(doc, "status"), "active");
            assert_string_equal(json_str(doc, "intended_use"), "test");
            assert_string_equal(json_str(doc, "log_type"), "test");
            assert_true(json_is_false(json_object_get(doc, "tls_only")));
        } else {
            /* No description: the origin stands in. */
            assert_string_equal(json_str(doc, "description"), "ct.example.org/2026h2");
            assert_string_equal(json_str(doc, "submission_url"),
                                "https://ct.example.org/2026h2/");
            assert_string_equal(json_str(doc, "monitoring_url"),
                                "https://ct.example.org/2026h2/");
            assert_string_equal(json_str(interval, "start_inclusive"), "2015-01-01T00:00:00Z");
            assert_string_equal(json_str(interval, "end_exclusive"), "2030-01-01T00:00:00Z");
            assert_int_equal(json_integer_value(json_object_get(doc, "mmd")), 86400);
            assert_int_equal(json_integer_value(json_object_get(doc, "mmd_seconds")), 86400);
            assert_string_equal(json_str(doc, "status"), "readonly");
            assert_string_equal(json_str(doc, "intended_use"), "production");
            assert_string_equal(json_str(doc, "log_type"), "prod");
            assert_true(json_is_true(json_object_get(doc, "tls_only")));
        }
        json_decref(doc);
    }

    /* A final tree head, and byte-identical output for identical input. */
    logv3_tree_head head = {.tree_size = 300, .timestamp = 1767139200000ULL};
    for (int i = 0; i < 32; i++)
        head.root_hash[i] = (uint8_t)i;
    size_t spki_len;
    const uint8_t *spki = log_signer_spki(logs[1].signer, &spki_len);
    buffer a = {0}, b = {0};
    assert_int_equal(logv3_render(&a, &cfg->logs[1], spki, spki_len, &head, &err), 0);
    assert_int_equal(logv3_render(&b, &cfg->logs[1], spki, spki_len, &head, &err), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    json_t *doc = json_loadb((const char *)a.data, a.len, 0, &jerr);
    assert_non_null(doc);
    json_t *fth = json_object_get(doc, "final_tree_head");
    assert_int_equal(json_integer_value(json_object_get(fth, "tree_size")), 300);
    assert_int_equal(json_integer_value(json_object_get(fth, "timestamp")), 1767139200000LL);
    assert_string_equal(json_str(fth, "sha256_root_hash"),
                        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    json_decref(doc);
    assert_int_equal(logv3_render(&a, &cfg->logs[1], NULL, 0, NULL, &err), -1);
    buffer_free(&a);
    buffer_free(&b);

    buffer_free(&body);
    buffer_free(&b64);
    buffer_free(&root);
    for (size_t i = 0; i < 2; i++)
        log_state_close(&logs[i]);
    config_free(cfg);
}

static void test_log_state_errors(void **state)
{
    (void)state;
    const char *dir = test_tmpdir("frontend_log_state_errors");
    const char *path = write_config(dir);
    error err = {{0}};
    config *cfg = config_load(path, &err);
    assert_non_null(cfg);
    log_state ls;
    /* A roots file that is not PEM, then a key file that is not a key. */
    config_log bad = cfg->logs[0];
    char file[4200];
    snprintf(file, sizeof file, "%s/keys/a.key", dir);
    bad.roots_path = file;
    assert_int_equal(log_state_open(&ls, &bad, &err), -1);
    assert_non_null(strstr(err.msg, "log 2026h1: roots"));
    bad = cfg->logs[0];
    bad.key_path = bad.roots_path;
    assert_int_equal(log_state_open(&ls, &bad, &err), -1);
    assert_non_null(strstr(err.msg, "log 2026h1: key"));
    assert_null(strstr(err.msg, "PRIVATE"));
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors_have_distinct_reasons),
        cmocka_unit_test(test_parse_good_body),
        cmocka_unit_test(test_build_x509_entry),
        cmocka_unit_test(test_rfc6962_cert_entry),
        cmocka_unit_test(test_rfc6962_precert_entry),
        cmocka_unit_test(test_sct_verifies_and_is_deterministic),
        cmocka_unit_test(test_log_state_and_logv3),
        cmocka_unit_test(test_log_state_errors),
    };
    return cmocka_run_group_tests_name("frontend_submission", tests, NULL, NULL);
}
