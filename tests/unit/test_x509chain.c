/* x509chain and pem: chain validation against the public fixtures in chains/{azul,ctgo,
 * tesseract}, plus certificates generated here with OpenSSL for the cases no fixture has
 * (poison variants, EKU, CA and path length, deep chains, cache bounds). Fingerprints and
 * SPKI hashes used as known answers were computed with the openssl CLI, not with this code. */
#include "testutil.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base64.h"
#include "der.h"
#include "pem.h"
#include "sha256.h"
#include "x509_issuer_cache.h"
#include "x509_leaf.h"
#include "x509chain.h"

#define WIDE_START 0
#define WIDE_LIMIT 4102444800LL /* 2100-01-01 */

/* ---- fixtures ------------------------------------------------------------------------- */

typedef struct test_chain {
    uint8_t *der[16];
    size_t len[16];
    x509_span span[16];
    size_t n;
} test_chain;

static void chain_add_der(test_chain *c, const uint8_t *der, size_t len)
{
    assert_true(c->n < 16);
    c->der[c->n] = malloc(len ? len : 1);
    assert_non_null(c->der[c->n]);
    memcpy(c->der[c->n], der, len);
    c->len[c->n] = len;
    c->span[c->n].data = c->der[c->n];
    c->span[c->n].len = len;
    c->n++;
}

/* Appends blocks [first, first+count) of a fixture file (count 0 = all from first). */
static void chain_add_file_part(test_chain *c, const char *rel, size_t first, size_t count)
{
    pem_list list = {0};
    error err = {{0}};
    if (pem_read_certificates_file(testdata_path(rel), 0, &list, &err) != 0)
        fail_msg("%s: %s", rel, err.msg);
    size_t end = count ? first + count : list.count;
    assert_true(end <= list.count);
    for (size_t i = first; i < end; i++)
        chain_add_der(c, list.items[i].data, list.items[i].len);
    pem_list_free(&list);
}

static void chain_add_file(test_chain *c, const char *rel)
{
    chain_add_file_part(c, rel, 0, 0);
}

static void chain_free(test_chain *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->der[i]);
    memset(c, 0, sizeof *c);
}

/* A chain from fixture files, each taken whole. */
static test_chain chain_of(const char *first, ...)
{
    test_chain c = {0};
    va_list ap;
    va_start(ap, first);
    for (const char *f = first; f; f = va_arg(ap, const char *))
        chain_add_file(&c, f);
    va_end(ap);
    return c;
}

static x509_root_set *roots_of(const char *first, ...)
{
    x509_root_set *roots = x509_root_set_new();
    assert_non_null(roots);
    error err = {{0}};
    va_list ap;
    va_start(ap, first);
    for (const char *f = first; f; f = va_arg(ap, const char *))
        if (x509_root_set_add_pem_file(roots, testdata_path(f), &err) != 0)
            fail_msg("%s: %s", f, err.msg);
    va_end(ap);
    return roots;
}

static x509_validator *validator_for(const x509_root_set *roots, int64_t start, int64_t limit,
                                     size_t cache)
{
    x509_validator_config cfg = {.roots = roots, .not_after_start = start,
                                 .not_after_limit = limit, .link_cache_capacity = cache};
    error err = {{0}};
    x509_validator *v = x509_validator_new(&cfg, &err);
    if (!v)
        fail_msg("validator: %s", err.msg);
    return v;
}

static void expect_ok(x509_validator *v, const test_chain *c, x509_endpoint ep,
                      x509_chain_result *res)
{
    error err = {{0}};
    if (x509_validate_chain(v, c->span, c->n, ep, res, &err) != 0)
        fail_msg("expected acceptance, got: %s", err.msg);
}

/* Expects rejection whose reason contains `want`; returns the reason (static storage, 8
 * rotating slots so a test can keep a few). */
static const char *expect_reject(x509_validator *v, const test_chain *c, x509_endpoint ep,
                                 const char *want)
{
    static char slots[8][256];
    static int next;
    error err = {{0}};
    x509_chain_result res;
    if (x509_validate_chain(v, c->span, c->n, ep, &res, &err) == 0)
        fail_msg("expected rejection (%s), but the chain was accepted", want);
    if (!strstr(err.msg, want))
        fail_msg("reason \"%s\" does not contain \"%s\"", err.msg, want);
    assert_null(strchr(err.msg, '\n'));
    char *slot = slots[next++ % 8];
    strcpy(slot, err.msg);
    return slot;
}

static void assert_fp(const uint8_t *fp, const char *hex)
{
    uint8_t want[SHA256_LEN];
    hex_or_fail(want, sizeof want, hex);
    assert_memory_equal(fp, want, SHA256_LEN);
}

static uint64_t verifications(x509_validator *v)
{
    x509_validator_stats s;
    x509_validator_stats_get(v, &s);
    return s.signature_verifications;
}

/* Known answers (openssl x509 -fingerprint -sha256 / pkey -outform DER | sha256sum). */
#define FP_CTGO_FAKE_CA "5f21d7b05373d015fa05c4e80b4bfdbb29f8e8655f5b29bb2aaf7c0910530637"
#define FP_CTGO_FAKE_CA_1 "a0a04226495590fabd833e185064b28a8700ec064fb377c016a26f7d0d01d392"
#define FP_CTGO_INT_CA "d015af68e8a6c2fe57710817344f7015c31e56c07f8cfdc8d3ccb98b3d023a66"
#define FP_CTGO_INT_CA_1 "5bb2d613e1dd4605f521762c2a65c508f1b1172e4cbc05cb9729d4cbd5e5e5b3"
#define FP_CTGO_INT_CA_2 "1ec27b45a7972cc80eabe05e73d24ccc28d5ca894ed86e8c21dfeb6036161795"
#define FP_GTS_ROOT_R4 "71cca5391f9e794b04802530b363e121da8a3043bb26662fea4dca7fc951a4bd"
#define FP_CF_WE1 "1dfc1605fbad358d8bc844f76d15203fac9ca5c1a79fd4857ffaf2864fbebf96"
#define FP_CF_GTS_CROSS "76b27b80a58027dc3cf1da68dac17010ed93997d0b603e2fadbe85012493b5a7"
#define FP_AZUL_FAKE_CA "76bc57778aa0788058e419b64317966dad6bb6b4dd42409d3b6448c46750ed7d"
#define FP_AZUL_FAKE_INT "ff25b788251bd8a19e39d93eb20ce7203bc6e8f0b3a07637dd74392db2ffcd5e"
#define FP_SHA1_ROOT "42e60583de9de8fd61fb916a3660042b7388ab3b3394614b5d96638dca4d3f9c"
#define FP_P521_ROOT "1a0b3ebcbaf37192d6296eb644bfbe4469e3723831fa14f0498cd7f8596d89f5"
#define FP_TESS_ROOT "e4286b40367091e7151f06d2164f9dea3472983e934a2b860bbc4909e070cd8a"
#define FP_TESS_INT "6f17040af430aeb709c1937164847b75e58dee6a2de119fcd2ca627911012b7b"
#define FP_REAL_PRECERT_INT "d57084c1279873271eb2ce7b8415a41ce9126b544d8518bad87ff1ce5a604da3"
#define FP_AZUL_CA_CERT "47bf944f9b435be64464fb5ada51f5501da5d168503b1e2f142d6d01adf17f5d"
#define FP_SUBLEAF_PRE_ROOT "2872de4581ceb647615a6b3402acc4d4f90d9f28d5a4e5f3c7eb842d44d10f1d"
#define SPKI_TESS_INT "b78f010630d6bf9d87d21e02b4d5ae3c43db40ac30a0923691c41a2cf1760b72"
#define SPKI_REAL_PRECERT_INT "a8f7ab238b8cc18d55aed444e5a058f23210268a4b52e06ddbe183516330667e"
#define SPKI_CTGO_INT_CA "b0fb89578128a1f8ec71ae523316d4ef0256a09882ea0b47cc7ac8b20c95f925"
#define SPKI_SUBLEAF_PRE_INT "165b9500d6620f825575582469eadf86a8eb17642f06401c1c55786ab55e9305"
#define NOT_AFTER_AZUL_LEAF 1562941604LL /* leaf-signed-by-fake-intermediate: 2019-07-12T14:26:44Z */

/* The six ctgo/azul roots in the azul tests' root set. */
#define AZUL_ROOTS "chains/azul/fake-ca-cert.pem", "chains/azul/fake-root-ca-cert.pem", \
                   "chains/azul/ca-cert.pem", "chains/azul/real-precert-intermediate.pem"

/* ---- generated PKI -------------------------------------------------------------------- */

enum poison_kind { POISON_NONE, POISON_OK, POISON_NON_CRITICAL, POISON_NOT_NULL, POISON_TWICE };

typedef struct gen_cert {
    X509 *cert;
    EVP_PKEY *key;
    uint8_t *der;
    size_t len;
} gen_cert;

typedef struct gen_opts {
    const char *cn;
    const gen_cert *issuer;  /* NULL: self-signed */
    bool ca;
    bool no_basic_constraints;
    int path_len;            /* -1: none */
    const char *eku;         /* NULL: no EKU extension */
    enum poison_kind poison;
    int64_t not_after;       /* 0: 2030-01-01 */
    const char *key_type;    /* NULL: P-256; else "ED25519" or "RSA-PSS" (1024 bits) */
    bool eku_twice;          /* the EKU extension repeated */
} gen_opts;

static void add_ext(X509 *x, X509_EXTENSION *ext)
{
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

static void add_poison(X509 *x, int critical, const uint8_t *value, int len)
{
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    assert_int_equal(ASN1_OCTET_STRING_set(os, value, len), 1);
    add_ext(x, X509_EXTENSION_create_by_NID(NULL, NID_ct_precert_poison, critical, os));
    ASN1_OCTET_STRING_free(os);
}

static EVP_PKEY *rsa_pss_key(void)
{
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 1024), 1);
    assert_int_equal(EVP_PKEY_keygen(ctx, &key), 1);
    EVP_PKEY_CTX_free(ctx);
    return key;
}

static gen_cert gen(const gen_opts *o)
{
    static long serial = 1000;
    static const uint8_t null_value[] = {0x05, 0x00};
    static const uint8_t not_null_value[] = {0x04, 0x00}; /* an empty OCTET STRING */
    gen_cert g = {0};
    if (!o->key_type)
        g.key = EVP_EC_gen("P-256");
    else if (strcmp(o->key_type, "RSA-PSS") == 0)
        g.key = rsa_pss_key();
    else
        g.key = EVP_PKEY_Q_keygen(NULL, NULL, o->key_type);
    assert_non_null(g.key);
    X509 *x = X509_new();
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_NAME *name = X509_NAME_new();
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"tegula test", -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)o->cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, o->issuer ? X509_get_subject_name(o->issuer->cert) : name);
    X509_NAME_free(name);
    int64_t not_after = o->not_after ? o->not_after : 1893456000; /* 2030-01-01 */
    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(not_after - 90 * 86400));
    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after);
    X509_set_pubkey(x, g.key);
    if (!o->no_basic_constraints) {
        char bc[64];
        if (o->ca && o->path_len >= 0)
            snprintf(bc, sizeof bc, "critical,CA:TRUE,pathlen:%d", o->path_len);
        else
            snprintf(bc, sizeof bc, "critical,CA:%s", o->ca ? "TRUE" : "FALSE");
        add_ext(x, X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, bc));
    }
    if (o->eku)
        add_ext(x, X509V3_EXT_conf_nid(NULL, NULL, NID_ext_key_usage, o->eku));
    if (o->eku && o->eku_twice)
        add_ext(x, X509V3_EXT_conf_nid(NULL, NULL, NID_ext_key_usage, o->eku));
    switch (o->poison) {
    case POISON_NONE:
        break;
    case POISON_OK:
        add_poison(x, 1, null_value, 2);
        break;
    case POISON_NON_CRITICAL:
        add_poison(x, 0, null_value, 2);
        break;
    case POISON_NOT_NULL:
        add_poison(x, 1, not_null_value, 2);
        break;
    case POISON_TWICE:
        add_poison(x, 1, null_value, 2);
        add_poison(x, 1, null_value, 2);
        break;
    }
    EVP_PKEY *signer = o->issuer ? o->issuer->key : g.key;
    /* EdDSA takes no separate digest. */
    assert_true(X509_sign(x, signer, EVP_PKEY_is_a(signer, "ED25519") ? NULL : EVP_sha256()) > 0);
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    assert_true(len > 0);
    g.cert = x;
    g.der = der;
    g.len = (size_t)len;
    return g;
}

static void gen_free(gen_cert *g)
{
    X509_free(g->cert);
    EVP_PKEY_free(g->key);
    OPENSSL_free(g->der);
    memset(g, 0, sizeof *g);
}

static x509_root_set *roots_of_gen(const gen_cert *root)
{
    x509_root_set *roots = x509_root_set_new();
    error err = {{0}};
    if (x509_root_set_add_der(roots, root->der, root->len, &err) != 0)
        fail_msg("root: %s", err.msg);
    return roots;
}

static void chain_add_gen(test_chain *c, const gen_cert *g)
{
    chain_add_der(c, g->der, g->len);
}

/* ---- pem ------------------------------------------------------------------------------ */

static void test_pem_parse_fixture(void **state)
{
    (void)state;
    pem_list list = {0};
    error err = {{0}};
    assert_int_equal(pem_read_certificates_file(testdata_path("chains/ctgo/subleaf.chain"), 0,
                                                &list, &err), 0);
    assert_int_equal(list.count, 4);
    uint8_t fp[SHA256_LEN];
    sha256(list.items[1].data, list.items[1].len, fp);
    assert_fp(fp, FP_CTGO_INT_CA_2);
    sha256(list.items[3].data, list.items[3].len, fp);
    assert_fp(fp, FP_CTGO_FAKE_CA);

    /* Round trip through the encoder, with explanatory text around the blocks. */
    buffer text = {0};
    assert_int_equal(buffer_append_str(&text, "subject=whatever\n# comment\n"), 0);
    for (size_t i = 0; i < list.count; i++) {
        assert_int_equal(pem_encode_certificate(&text, list.items[i].data, list.items[i].len), 0);
        assert_int_equal(buffer_append_str(&text, "\r\ntrailing words\n"), 0);
    }
    pem_list again = {0};
    assert_int_equal(pem_parse_certificates((const char *)text.data, text.len, 0, &again, &err),
                     0);
    assert_int_equal(again.count, list.count);
    for (size_t i = 0; i < list.count; i++) {
        assert_int_equal(again.items[i].len, list.items[i].len);
        assert_memory_equal(again.items[i].data, list.items[i].data, list.items[i].len);
    }
    pem_list_free(&again);
    /* The count bound. */
    assert_int_equal(pem_parse_certificates((const char *)text.data, text.len, 3, &again, &err),
                     -1);
    assert_non_null(strstr(err.msg, "more than 3"));
    assert_null(again.items);
    pem_list_free(&again);
    pem_list_free(&list);
    buffer_free(&text);
}

static void pem_reject(const char *text, const char *want)
{
    pem_list list = {0};
    error err = {{0}};
    assert_int_equal(pem_parse_certificates(text, strlen(text), 0, &list, &err), -1);
    if (!strstr(err.msg, want))
        fail_msg("PEM reason \"%s\" does not contain \"%s\"", err.msg, want);
    assert_int_equal(list.count, 0);
    assert_null(list.items);
}

static void test_pem_rejects_junk(void **state)
{
    (void)state;
    pem_reject("", "no CERTIFICATE block");
    pem_reject("just some words\n", "no CERTIFICATE block");
    pem_reject("-----BEGIN CERTIFICATE-----\nMIIB\n", "no END line");
    pem_reject("-----BEGIN CERTIFICATE-----\nMIIB!!\n-----END CERTIFICATE-----\n",
               "not base64");
    pem_reject("-----BEGIN CERTIFICATE-----\nMIIBAA\n-----END CERTIFICATE-----\n",
               "not valid base64");
    pem_reject("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", "empty");
    pem_reject("-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\nAAAA\n"
               "-----END CERTIFICATE-----\n", "headers");
    pem_reject("-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n", "expected");
    pem_reject("-----END CERTIFICATE-----\n", "outside a block");
    pem_reject("-----BEGIN CERTIFICATE\nAAAA\n", "malformed PEM BEGIN");
    pem_reject("-----BEGIN CERTIFICATE-----\nAAAA\n-----BEGIN CERTIFICATE-----\n",
               "unexpected boundary");

    /* A private key file is not a root set. */
    pem_list list = {0};
    error err = {{0}};
    assert_int_equal(pem_read_certificates_file(
                         testdata_path("chains/ctgo/int-ca.privkey.pem"), 0, &list, &err), -1);
    assert_non_null(strstr(err.msg, "only CERTIFICATE blocks"));
    assert_int_equal(pem_read_certificates_file("/nonexistent/roots.pem", 0, &list, &err), -1);

    /* NUL bytes and oversized blocks. */
    static const char with_nul[] = "-----BEGIN CERTIFICATE-----\nAA\0A\n";
    assert_int_equal(pem_parse_certificates(with_nul, sizeof with_nul - 1, 0, &list, &err), -1);
    assert_non_null(strstr(err.msg, "NUL"));
    buffer big = {0};
    assert_int_equal(buffer_append_str(&big, "-----BEGIN CERTIFICATE-----\n"), 0);
    for (int i = 0; i < (PEM_MAX_DER_LEN / 48) + 8; i++)
        assert_int_equal(buffer_append_str(&big, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                                                 "AAAAAAAAAAAAAAA\n"), 0);
    assert_int_equal(buffer_append_str(&big, "-----END CERTIFICATE-----\n"), 0);
    assert_int_equal(pem_parse_certificates((const char *)big.data, big.len, 0, &list, &err), -1);
    assert_non_null(strstr(err.msg, "larger than"));
    buffer_free(&big);
}

/* ---- root set ------------------------------------------------------------------------- */

static void test_root_set(void **state)
{
    (void)state;
    /* fake-root-ca-cert.pem and ctgo/fake-ca.cert are the same certificate: kept once. */
    x509_root_set *roots = roots_of("chains/azul/fake-ca-cert.pem",
                                    "chains/azul/fake-root-ca-cert.pem",
                                    "chains/ctgo/fake-ca.cert", "chains/ctgo/fake-ca-1.cert", NULL);
    assert_int_equal(x509_root_set_count(roots), 3);
    assert_fp(x509_root_set_fingerprint(roots, 0), FP_AZUL_FAKE_CA);
    assert_fp(x509_root_set_fingerprint(roots, 1), FP_CTGO_FAKE_CA);
    assert_fp(x509_root_set_fingerprint(roots, 2), FP_CTGO_FAKE_CA_1);
    assert_null(x509_root_set_fingerprint(roots, 3));
    assert_null(x509_root_set_der(roots, 3).data);

    /* The exact DER is kept: it hashes to its fingerprint and equals the file's bytes. */
    test_chain file = chain_of("chains/ctgo/fake-ca-1.cert", NULL);
    x509_span der = x509_root_set_der(roots, 2);
    assert_int_equal(der.len, file.len[0]);
    assert_memory_equal(der.data, file.der[0], der.len);
    chain_free(&file);

    uint8_t fp[SHA256_LEN];
    hex_or_fail(fp, sizeof fp, FP_CTGO_FAKE_CA_1);
    assert_int_equal(x509_root_set_find(roots, fp), 2);
    hex_or_fail(fp, sizeof fp, FP_GTS_ROOT_R4);
    assert_int_equal(x509_root_set_find(roots, fp), -1);

    /* Bad roots are refused with a reason. */
    error err = {{0}};
    static const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    assert_int_equal(x509_root_set_add_der(roots, junk, sizeof junk, &err), -1);
    assert_non_null(strstr(err.msg, "not a valid DER X.509 certificate"));
    assert_int_equal(x509_root_set_add_pem_file(
                         roots, testdata_path("chains/azul/mismatching-sig-alg.pem"), &err), -1);
    assert_non_null(strstr(err.msg, "signature algorithm"));
    assert_int_equal(x509_root_set_count(roots), 3);

    x509_validator_config cfg = {.roots = roots, .not_after_start = 10, .not_after_limit = 10};
    assert_null(x509_validator_new(&cfg, &err));
    assert_non_null(strstr(err.msg, "window is empty"));
    x509_root_set_free(roots);
}

/* ---- accepted chains ------------------------------------------------------------------ */

static void test_valid_chains_root_included_and_omitted(void **state)
{
    (void)state;
    x509_root_set *roots = roots_of("chains/ctgo/fake-ca.cert", "chains/ctgo/fake-ca-1.cert",
                                    NULL);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    x509_chain_result r;

    /* 2 certificates: leaf-1 + root fake-ca-1 (same subject as fake-ca, different key). */
    test_chain c = chain_of("chains/ctgo/leaf-1.chain", NULL);
    assert_int_equal(c.n, 2);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_false(r.is_precert);
    assert_false(r.root_appended);
    assert_int_equal(r.issuer_count, 1);
    assert_fp(r.fingerprints[0], FP_CTGO_FAKE_CA_1);
    assert_ptr_equal(r.leaf.data, c.span[0].data);
    assert_ptr_equal(r.issuers[0].data, c.span[1].data);
    chain_free(&c);
    c = chain_of("chains/ctgo/leaf-1.cert", NULL);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_true(r.root_appended);
    assert_int_equal(r.issuer_count, 1);
    assert_fp(r.fingerprints[0], FP_CTGO_FAKE_CA_1);
    /* The appended root's DER comes from the root set. */
    assert_ptr_equal(r.issuers[0].data, x509_root_set_der(roots, 1).data);
    chain_free(&c);

    /* 3 certificates: leaf02 + int-ca + fake-ca, then without the root. */
    c = chain_of("chains/ctgo/leaf02.chain", NULL);
    assert_int_equal(c.n, 3);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_false(r.root_appended);
    assert_int_equal(r.issuer_count, 2);
    assert_fp(r.fingerprints[0], FP_CTGO_INT_CA);
    assert_fp(r.fingerprints[1], FP_CTGO_FAKE_CA);
    assert_fp(r.issuer_key_hash, SPKI_CTGO_INT_CA);
    assert_ptr_equal(r.issuer.data, c.span[1].data);
    chain_free(&c);
    c = chain_of("chains/ctgo/leaf00.chain", NULL);
    assert_int_equal(c.n, 2);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_true(r.root_appended);
    assert_int_equal(r.issuer_count, 2);
    assert_fp(r.fingerprints[0], FP_CTGO_INT_CA);
    assert_fp(r.fingerprints[1], FP_CTGO_FAKE_CA);
    assert_ptr_equal(r.issuers[1].data, x509_root_set_der(roots, 0).data);
    chain_free(&c);

    /* 4 certificates: subleaf + int-ca-2 + int-ca-1 + fake-ca, then without the root. */
    c = chain_of("chains/ctgo/subleaf.chain", NULL);
    assert_int_equal(c.n, 4);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_false(r.root_appended);
    assert_int_equal(r.issuer_count, 3);
    assert_fp(r.fingerprints[0], FP_CTGO_INT_CA_2);
    assert_fp(r.fingerprints[1], FP_CTGO_INT_CA_1);
    assert_fp(r.fingerprints[2], FP_CTGO_FAKE_CA);
    chain_free(&c);
    chain_add_file_part(&c, "chains/ctgo/subleaf.chain", 0, 3);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_true(r.root_appended);
    assert_int_equal(r.issuer_count, 3);
    assert_fp(r.fingerprints[2], FP_CTGO_FAKE_CA);
    chain_free(&c);

    /* Leaves with and without EKU (leaf03 lists serverAuth and another usage). */
    const char *leaves[] = {"chains/ctgo/leaf01.chain", "chains/ctgo/leaf03.chain",
                            "chains/ctgo/leaf20.chain"};
    for (size_t i = 0; i < sizeof leaves / sizeof *leaves; i++) {
        c = chain_of(leaves[i], NULL);
        expect_ok(v, &c, X509_ADD_CHAIN, &r);
        assert_fp(r.fingerprints[r.issuer_count - 1], FP_CTGO_FAKE_CA);
        chain_free(&c);
    }
    x509_validator_free(v);
    x509_root_set_free(roots);
}

static void test_expired_and_other_algorithms_accepted(void **state)
{
    (void)state;
    x509_chain_result r;
    /* TesseraCT: P-384 everywhere, leaves expired 2025-12-05. */
    x509_root_set *roots = roots_of("chains/tesseract/test_root_ca_cert.pem", NULL);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    test_chain c = chain_of("chains/tesseract/test_leaf_cert_signed_by_intermediate.pem",
                            "chains/tesseract/test_intermediate_ca_cert.pem", NULL);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_int_equal(r.issuer_count, 2);
    assert_fp(r.fingerprints[0], FP_TESS_INT);
    assert_fp(r.fingerprints[1], FP_TESS_ROOT);
    chain_free(&c);
    c = chain_of("chains/tesseract/test_leaf_cert_signed_by_root.pem", NULL);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_int_equal(r.issuer_count, 1);
    assert_fp(r.fingerprints[0], FP_TESS_ROOT);
    chain_free(&c);
    c = chain_of("chains/tesseract/test_leaf_cert_signed_by_root.pem",
                 "chains/tesseract/test_root_ca_cert.pem", NULL);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_false(r.root_appended);
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);

    /* SHA-1 / RSA intermediate and root. */
    roots = roots_of("chains/azul/sha1-rsa-root-ca-cert.pem", NULL);
    v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    c = chain_of("chains/azul/sha1-rsa-leaf-cert.pem", "chains/azul/sha1-rsa-intermediate-cert.pem",
                 NULL);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_fp(r.fingerprints[1], FP_SHA1_ROOT);
    chain_add_file(&c, "chains/azul/sha1-rsa-root-ca-cert.pem");
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_false(r.root_appended);
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);

    /* P-521 / ECDSA-SHA512. */
    roots = roots_of("chains/azul/p521-ecdsa-root-ca-cert.pem", NULL);
    v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    c = chain_of("chains/azul/p521-ecdsa-leaf-cert.pem",
                 "chains/azul/p521-ecdsa-intermediate-cert.pem", NULL);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_fp(r.fingerprints[1], FP_P521_ROOT);
    chain_add_file(&c, "chains/azul/p521-ecdsa-root-ca-cert.pem");
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

static void test_constrained_intermediates_accepted(void **state)
{
    (void)state;
    x509_root_set *roots = roots_of(AZUL_ROOTS, NULL);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    x509_chain_result r;
    const char *ints[] = {"chains/azul/fake-intermediate-with-name-constraints-cert.pem",
                          "chains/azul/fake-intermediate-with-policy-constraints-cert.pem",
                          "chains/azul/fake-intermediate-with-invalid-name-constraints-cert.pem"};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        test_chain c = chain_of("chains/azul/leaf-cert.pem", ints[i], NULL);
        expect_ok(v, &c, X509_ADD_CHAIN, &r);
        assert_true(r.root_appended);
        assert_int_equal(r.issuer_count, 2);
        assert_fp(r.fingerprints[1], FP_CTGO_FAKE_CA);
        chain_add_file(&c, "chains/azul/fake-root-ca-cert.pem");
        expect_ok(v, &c, X509_ADD_CHAIN, &r);
        assert_false(r.root_appended);
        chain_free(&c);
    }
    /* The plain azul chain, RSA all the way. */
    test_chain c = chain_of("chains/azul/leaf-signed-by-fake-intermediate-cert.pem",
                            "chains/azul/fake-intermediate-cert.pem", NULL);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_fp(r.fingerprints[0], FP_AZUL_FAKE_INT);
    assert_fp(r.fingerprints[1], FP_AZUL_FAKE_CA);
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

static void test_precerts(void **state)
{
    (void)state;
    x509_chain_result r;
    x509_root_set *roots = roots_of("chains/tesseract/test_root_ca_cert.pem", NULL);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    test_chain c = chain_of("chains/tesseract/test_leaf_pre_cert_signed_by_intermediate.pem",
                            "chains/tesseract/test_intermediate_ca_cert.pem", NULL);
    expect_ok(v, &c, X509_ADD_PRE_CHAIN, &r);
    assert_true(r.is_precert);
    assert_int_equal(r.issuer_count, 2);
    assert_fp(r.issuer_key_hash, SPKI_TESS_INT);
    assert_ptr_equal(r.issuer.data, c.span[1].data);
    assert_fp(r.fingerprints[1], FP_TESS_ROOT);
    expect_reject(v, &c, X509_ADD_CHAIN, "add-chain received a precertificate");
    chain_add_file(&c, "chains/tesseract/test_root_ca_cert.pem");
    expect_ok(v, &c, X509_ADD_PRE_CHAIN, &r);
    assert_false(r.root_appended);
    chain_free(&c);

    /* A certificate sent to add-pre-chain. */
    c = chain_of("chains/tesseract/test_leaf_cert_signed_by_intermediate.pem",
                 "chains/tesseract/test_intermediate_ca_cert.pem", NULL);
    expect_reject(v, &c, X509_ADD_PRE_CHAIN, "add-pre-chain received a certificate without");
    chain_free(&c);
    /* Precert issued directly by the root, root omitted: issuer is the appended root. */
    c = chain_of("chains/tesseract/test_leaf_pre_cert_signed_by_root.pem", NULL);
    expect_ok(v, &c, X509_ADD_PRE_CHAIN, &r);
    assert_true(r.root_appended);
    assert_ptr_equal(r.issuer.data, x509_root_set_der(roots, 0).data);
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);

    /* ctgo's 4-certificate precert chain ends in its own root. */
    roots = roots_of("chains/ctgo/fake-ca.cert", NULL);
    x509_root_set *pre_roots = x509_root_set_new();
    c = chain_of("chains/ctgo/subleaf-pre.chain", NULL);
    error err = {{0}};
    assert_int_equal(x509_root_set_add_der(pre_roots, c.der[3], c.len[3], &err), 0);
    v = validator_for(pre_roots, WIDE_START, WIDE_LIMIT, 0);
    expect_ok(v, &c, X509_ADD_PRE_CHAIN, &r);
    assert_true(r.is_precert);
    assert_int_equal(r.issuer_count, 3);
    assert_fp(r.fingerprints[2], FP_SUBLEAF_PRE_ROOT);
    assert_fp(r.issuer_key_hash, SPKI_SUBLEAF_PRE_INT);
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(pre_roots);

    /* Its misordered twin, against ctgo's fake-ca. */
    v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    c = chain_of("chains/ctgo/subleaf-pre.misordered.chain", NULL);
    expect_reject(v, &c, X509_ADD_PRE_CHAIN, "is not the issuer of");
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);

    /* RFC 6962's own precert (SHA-1, RSA-1024) and a real GTS precert (issuer as root). */
    roots = roots_of(AZUL_ROOTS, NULL);
    v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    c = chain_of("chains/azul/precert-valid.pem", "chains/azul/ca-cert.pem", NULL);
    expect_ok(v, &c, X509_ADD_PRE_CHAIN, &r);
    assert_fp(r.fingerprints[0], FP_AZUL_CA_CERT);
    chain_free(&c);
    c = chain_of("chains/azul/real-precert-with-eku.pem", NULL);
    expect_ok(v, &c, X509_ADD_PRE_CHAIN, &r);
    assert_true(r.root_appended);
    assert_fp(r.fingerprints[0], FP_REAL_PRECERT_INT);
    assert_fp(r.issuer_key_hash, SPKI_REAL_PRECERT_INT);
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

/* Poison must be present exactly for add-pre-chain, critical, and NULL; checked on precerts
 * that are otherwise perfect (properly signed by a generated CA). */
static void test_poison_variants(void **state)
{
    (void)state;
    gen_cert root = gen(&(gen_opts){.cn = "poison root", .ca = true, .path_len = -1});
    x509_root_set *roots = roots_of_gen(&root);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    x509_chain_result r;
    struct {
        enum poison_kind kind;
        const char *reason;
    } cases[] = {
        {POISON_NON_CRITICAL, "poison extension (1.3.6.1.4.1.11129.2.4.3) is not marked critical"},
        {POISON_NOT_NULL, "poison extension (1.3.6.1.4.1.11129.2.4.3) value is not ASN.1 NULL"},
        {POISON_TWICE, "poison extension (1.3.6.1.4.1.11129.2.4.3) appears 2 times"},
    };
    gen_cert good = gen(&(gen_opts){.cn = "good.example", .issuer = &root, .path_len = -1,
                                    .eku = "serverAuth", .poison = POISON_OK});
    test_chain c = {0};
    chain_add_gen(&c, &good);
    expect_ok(v, &c, X509_ADD_PRE_CHAIN, &r);
    assert_true(r.is_precert);
    assert_true(r.root_appended);
    expect_reject(v, &c, X509_ADD_CHAIN, "add-chain received a precertificate");
    chain_free(&c);
    gen_free(&good);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        gen_cert leaf = gen(&(gen_opts){.cn = "bad.example", .issuer = &root, .path_len = -1,
                                        .eku = "serverAuth", .poison = cases[i].kind});
        chain_add_gen(&c, &leaf);
        /* Same reason on both endpoints: the poison itself is wrong. */
        expect_reject(v, &c, X509_ADD_PRE_CHAIN, cases[i].reason);
        expect_reject(v, &c, X509_ADD_CHAIN, cases[i].reason);
        chain_add_gen(&c, &root);
        expect_reject(v, &c, X509_ADD_PRE_CHAIN, cases[i].reason);
        chain_free(&c);
        gen_free(&leaf);
    }
    x509_validator_free(v);
    x509_root_set_free(roots);

    /* A self-signed precert that is itself a root has no issuer to take a key hash from. */
    gen_cert lone = gen(&(gen_opts){.cn = "lone", .ca = true, .path_len = -1,
                                    .poison = POISON_OK});
    roots = roots_of_gen(&lone);
    v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    chain_add_gen(&c, &lone);
    expect_reject(v, &c, X509_ADD_PRE_CHAIN, "needs its issuer");
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);
    gen_free(&lone);
    gen_free(&root);
}

static void test_leaf_eku(void **state)
{
    (void)state;
    gen_cert root = gen(&(gen_opts){.cn = "eku root", .ca = true, .path_len = -1});
    x509_root_set *roots = roots_of_gen(&root);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    x509_validator_config strict_cfg = {.roots = roots, .not_after_start = WIDE_START,
                                        .not_after_limit = WIDE_LIMIT,
                                        .require_server_auth_eku = true};
    x509_validator *strict = x509_validator_new(&strict_cfg, NULL);
    assert_non_null(strict);
    x509_chain_result r;
    struct {
        const char *eku;
        bool ok, strict_ok;
    } cases[] = {
        {"serverAuth", true, true},
        {"clientAuth,serverAuth", true, true},
        {"anyExtendedKeyUsage", true, true},
        {"clientAuth", false, false},
        {"codeSigning,emailProtection", false, false},
        {NULL, true, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        gen_cert leaf = gen(&(gen_opts){.cn = "eku.example", .issuer = &root, .path_len = -1,
                                        .eku = cases[i].eku});
        test_chain c = {0};
        chain_add_gen(&c, &leaf);
        if (cases[i].ok)
            expect_ok(v, &c, X509_ADD_CHAIN, &r);
        else
            expect_reject(v, &c, X509_ADD_CHAIN, "extended key usage does not include serverAuth");
        if (cases[i].strict_ok)
            expect_ok(strict, &c, X509_ADD_CHAIN, &r);
        else
            expect_reject(strict, &c, X509_ADD_CHAIN, "serverAuth");
        chain_free(&c);
        gen_free(&leaf);
    }
    x509_validator_free(strict);
    x509_validator_free(v);
    x509_root_set_free(roots);
    gen_free(&root);

    /* Real data: the PSC of azul's preissuer chain used as a leaf has EKU = CT signer only. */
    roots = roots_of("chains/azul/test-roots.pem", NULL);
    v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    test_chain c = {0};
    chain_add_file_part(&c, "chains/azul/preissuer-chain.pem", 1, 2);
    expect_reject(v, &c, X509_ADD_CHAIN, "does not include serverAuth");
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

static void test_not_after_window(void **state)
{
    (void)state;
    x509_root_set *roots = roots_of(AZUL_ROOTS, NULL);
    test_chain c = chain_of("chains/azul/leaf-signed-by-fake-intermediate-cert.pem",
                            "chains/azul/fake-intermediate-cert.pem", NULL);
    x509_chain_result r;
    struct {
        int64_t start, limit;
        const char *reject;
    } cases[] = {
        {NOT_AFTER_AZUL_LEAF, WIDE_LIMIT, NULL},             /* start is inclusive */
        {NOT_AFTER_AZUL_LEAF + 1, WIDE_LIMIT, "before the start"},
        {1577836800 /* 2020 */, WIDE_LIMIT, "before the start"},
        {WIDE_START, NOT_AFTER_AZUL_LEAF + 1, NULL},
        {WIDE_START, NOT_AFTER_AZUL_LEAF, "at or after the end"}, /* limit is exclusive */
        {WIDE_START, 915148800 /* 1999 */, "at or after the end"},
        {1514764800 /* 2018 */, 1593561600 /* 2020-07 */, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        x509_validator *v = validator_for(roots, cases[i].start, cases[i].limit, 0);
        if (cases[i].reject) {
            const char *why = expect_reject(v, &c, X509_ADD_CHAIN, cases[i].reject);
            assert_non_null(strstr(why, "leaf notAfter 2019-07-12T14:26:44Z is outside"));
            /* Cheap checks come first: no signature was verified. */
            assert_int_equal(verifications(v), 0);
        } else {
            expect_ok(v, &c, X509_ADD_CHAIN, &r);
        }
        x509_validator_free(v);
    }
    chain_free(&c);
    x509_root_set_free(roots);
}

/* ---- rejected chains ------------------------------------------------------------------ */

static void test_wrong_order_missing_and_extra(void **state)
{
    (void)state;
    x509_root_set *roots = roots_of(AZUL_ROOTS, NULL);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);

    test_chain c = chain_of("chains/azul/subleaf.misordered.chain", NULL);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[1] is not the issuer of chain[0]");
    chain_free(&c);
    c = chain_of("chains/azul/fake-intermediate-cert.pem",
                 "chains/azul/leaf-signed-by-fake-intermediate-cert.pem", NULL);
    expect_reject(v, &c, X509_ADD_CHAIN, "is not the issuer of");
    chain_free(&c);

    /* Missing intermediate: the leaf alone has no accepted root named as its issuer. */
    c = chain_of("chains/azul/leaf-signed-by-fake-intermediate-cert.pem", NULL);
    const char *why = expect_reject(v, &c, X509_ADD_CHAIN, "no path to an accepted root");
    assert_non_null(strstr(why, "FakeIntermediateAuthority"));
    chain_free(&c);
    /* Missing middle of a 4-chain. */
    chain_add_file_part(&c, "chains/ctgo/subleaf.chain", 0, 1);
    chain_add_file_part(&c, "chains/ctgo/subleaf.chain", 2, 2);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[1] is not the issuer of chain[0]");
    chain_free(&c);

    /* Unrelated extra certificates, in the middle or after the root. */
    c = chain_of("chains/azul/fake-intermediate-cert.pem", "chains/azul/test-cert.pem", NULL);
    expect_reject(v, &c, X509_ADD_CHAIN, "is not the issuer of");
    chain_free(&c);
    c = chain_of("chains/azul/leaf-signed-by-fake-intermediate-cert.pem",
                 "chains/azul/fake-intermediate-cert.pem", "chains/azul/test-cert.pem", NULL);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[2] is not the issuer of chain[1]");
    chain_free(&c);
    c = chain_of("chains/azul/leaf-signed-by-fake-intermediate-cert.pem",
                 "chains/azul/fake-intermediate-cert.pem", "chains/azul/fake-ca-cert.pem",
                 "chains/azul/test-cert.pem", NULL);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[3] is not the issuer of chain[2]");
    chain_free(&c);

    /* Right names, wrong key: TesseraCT's two intermediates share a subject. */
    x509_root_set *tess = roots_of("chains/tesseract/test_root_ca_cert.pem", NULL);
    x509_validator *tv = validator_for(tess, WIDE_START, WIDE_LIMIT, 0);
    c = chain_of("chains/tesseract/test_leaf_cert_signed_by_intermediate.pem",
                 "chains/tesseract/test_pre_intermediate_ca_cert.pem", NULL);
    /* chain[1] is a PSC, refused before any signature is checked. */
    expect_reject(tv, &c, X509_ADD_CHAIN, "Precertificate Signing Certificate");
    chain_free(&c);
    c = chain_of("chains/tesseract/test_leaf_cert_signed_by_pre_intermediate.pem",
                 "chains/tesseract/test_intermediate_ca_cert.pem", NULL);
    expect_reject(tv, &c, X509_ADD_CHAIN, "chain[1] did not sign chain[0]");
    chain_free(&c);
    /* A leaf whose issuer's name matches a root that did not sign it. */
    c = chain_of("chains/ctgo/leaf-1.cert", NULL);
    x509_root_set *only_fake_ca = roots_of("chains/ctgo/fake-ca.cert", NULL);
    x509_validator *ov = validator_for(only_fake_ca, WIDE_START, WIDE_LIMIT, 0);
    expect_reject(ov, &c, X509_ADD_CHAIN, "no path to an accepted root: no accepted root named");
    chain_free(&c);
    x509_validator_free(ov);
    x509_root_set_free(only_fake_ca);
    x509_validator_free(tv);
    x509_root_set_free(tess);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

/* Builds a DER certificate whose TBS says ecdsa-with-SHA384 while the outer AlgorithmIdentifier
 * says ecdsa-with-SHA256, with a signature that is valid under the outer algorithm. */
static void make_mismatched_cert(const gen_cert *issuer, buffer *out)
{
    gen_cert tmp = gen(&(gen_opts){.cn = "mismatch", .issuer = issuer, .path_len = -1});
    unsigned char *tbs = NULL;
    int tbs_len = i2d_re_X509_tbs(tmp.cert, &tbs);
    assert_true(tbs_len > 0);
    /* ecdsa-with-SHA256 OID 1.2.840.10045.4.3.2 -> .3 (SHA384): patch its last byte. */
    static const uint8_t oid256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
    uint8_t *hit = memmem(tbs, (size_t)tbs_len, oid256, sizeof oid256);
    assert_non_null(hit);
    hit[sizeof oid256 - 1] = 0x03;
    uint8_t sig[256];
    size_t sig_len = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, issuer->key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sig_len, tbs, (size_t)tbs_len), 1);
    EVP_MD_CTX_free(md);
    static const uint8_t alg256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04,
                                     0x03, 0x02};
    size_t content = (size_t)tbs_len + sizeof alg256 + 2 + 1 + sig_len;
    assert_true(content < 65536 && sig_len < 127);
    uint8_t hdr[4] = {0x30};
    size_t hdr_len;
    if (content < 0x80) {
        hdr[1] = (uint8_t)content;
        hdr_len = 2;
    } else if (content < 0x100) {
        hdr[1] = 0x81;
        hdr[2] = (uint8_t)content;
        hdr_len = 3;
    } else {
        hdr[1] = 0x82;
        hdr[2] = (uint8_t)(content >> 8);
        hdr[3] = (uint8_t)content;
        hdr_len = 4;
    }
    buffer_append(out, hdr, hdr_len);
    buffer_append(out, tbs, (size_t)tbs_len);
    buffer_append(out, alg256, sizeof alg256);
    uint8_t bit[3] = {0x03, (uint8_t)(sig_len + 1), 0x00};
    buffer_append(out, bit, sizeof bit);
    buffer_append(out, sig, sig_len);
    OPENSSL_free(tbs);
    gen_free(&tmp);
}

static void test_mismatching_signature_algorithm(void **state)
{
    (void)state;
    x509_root_set *roots = roots_of(AZUL_ROOTS, NULL);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    test_chain c = chain_of("chains/azul/leaf-signed-by-fake-intermediate-cert.pem",
                            "chains/azul/fake-intermediate-with-mismatching-sig-alg.pem", NULL);
    expect_reject(v, &c, X509_ADD_CHAIN,
                  "chain[1] has a signature algorithm that differs from the one in its "
                  "TBSCertificate");
    chain_free(&c);
    c = chain_of("chains/azul/mismatching-sig-alg.pem", NULL);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[0] has a signature algorithm that differs");
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);

    /* OpenSSL's X509_verify refuses the mismatch by itself, even when the signature is valid
     * under the outer algorithm: the defence does not rest on our parse check alone. */
    gen_cert root = gen(&(gen_opts){.cn = "sigalg root", .ca = true, .path_len = -1});
    buffer der = {0};
    make_mismatched_cert(&root, &der);
    const unsigned char *p = der.data;
    X509 *x = d2i_X509(NULL, &p, (long)der.len);
    assert_non_null(x);
    assert_ptr_equal(p, der.data + der.len);
    assert_int_not_equal(X509_verify(x, root.key), 1);
    /* ...while the bytes themselves do verify under ecdsa-with-SHA256. */
    unsigned char *tbs = NULL;
    int tbs_len = i2d_re_X509_tbs(x, &tbs);
    const ASN1_BIT_STRING *sig;
    X509_get0_signature(&sig, NULL, x);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, root.key), 1);
    assert_int_equal(EVP_DigestVerify(md, ASN1_STRING_get0_data(sig),
                                      (size_t)ASN1_STRING_length(sig), tbs, (size_t)tbs_len), 1);
    EVP_MD_CTX_free(md);
    OPENSSL_free(tbs);
    X509_free(x);
    x509_root_set *own = roots_of_gen(&root);
    v = validator_for(own, WIDE_START, WIDE_LIMIT, 0);
    chain_add_der(&c, der.data, der.len);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[0] has a signature algorithm that differs");
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(own);
    buffer_free(&der);
    gen_free(&root);
}

static void test_precert_signing_certificate_rejected(void **state)
{
    (void)state;
    const char *psc = "Precertificate Signing Certificate";
    x509_root_set *roots = roots_of("chains/azul/test-roots.pem", NULL);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    test_chain c = chain_of("chains/azul/preissuer-chain.pem", NULL);
    assert_int_equal(c.n, 4);
    const char *why = expect_reject(v, &c, X509_ADD_PRE_CHAIN, psc);
    assert_non_null(strstr(why, "SC-092"));
    expect_reject(v, &c, X509_ADD_CHAIN, psc);
    c.n = 3; /* root omitted */
    expect_reject(v, &c, X509_ADD_PRE_CHAIN, psc);
    c.n = 4;
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);

    roots = roots_of("chains/tesseract/test_root_ca_cert.pem", NULL);
    v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    c = chain_of("chains/tesseract/test_leaf_pre_cert_signed_by_pre_intermediate.pem",
                 "chains/tesseract/test_pre_intermediate_ca_cert.pem", NULL);
    expect_reject(v, &c, X509_ADD_PRE_CHAIN, psc);
    expect_reject(v, &c, X509_ADD_CHAIN, psc); /* a precert on add-chain through a PSC */
    chain_add_file(&c, "chains/tesseract/test_root_ca_cert.pem");
    expect_reject(v, &c, X509_ADD_PRE_CHAIN, psc);
    chain_free(&c);
    c = chain_of("chains/tesseract/test_leaf_cert_signed_by_pre_intermediate.pem",
                 "chains/tesseract/test_pre_intermediate_ca_cert.pem",
                 "chains/tesseract/test_root_ca_cert.pem", NULL);
    expect_reject(v, &c, X509_ADD_CHAIN, psc);
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);

    /* A PSC as an accepted root directly above the leaf is refused too. */
    roots = roots_of("chains/tesseract/test_pre_intermediate_ca_cert.pem", NULL);
    v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    c = chain_of("chains/tesseract/test_leaf_pre_cert_signed_by_pre_intermediate.pem", NULL);
    expect_reject(v, &c, X509_ADD_PRE_CHAIN, psc);
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

static void test_cloudflare_cross_signed(void **state)
{
    (void)state;
    x509_chain_result r;
    x509_root_set *roots = roots_of("chains/azul/google-gts-root-r4.pem", NULL);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    /* Submitted as served: leaf, WE1, GTS Root R4 cross-signed by GlobalSign. GlobalSign is
     * not accepted, and the self-signed GTS Root R4 did not sign the cross-sign, so the last
     * certificate leads nowhere: every submitted certificate must be used. */
    test_chain c = chain_of("chains/azul/cloudflare.pem", NULL);
    assert_int_equal(c.n, 3);
    const char *why = expect_reject(v, &c, X509_ADD_CHAIN, "no path to an accepted root");
    assert_non_null(strstr(why, "GlobalSign Root CA"));
    /* Without the cross-sign: WE1 is signed by the accepted GTS Root R4, which is appended. */
    c.n = 2;
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_true(r.root_appended);
    assert_fp(r.fingerprints[0], FP_CF_WE1);
    assert_fp(r.fingerprints[1], FP_GTS_ROOT_R4);
    c.n = 3;
    x509_validator_free(v);
    x509_root_set_free(roots);

    /* A log that lists the cross-signed certificate itself as a root accepts all three. */
    roots = x509_root_set_new();
    error err = {{0}};
    assert_int_equal(x509_root_set_add_der(roots, c.der[2], c.len[2], &err), 0);
    v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_false(r.root_appended);
    assert_int_equal(r.issuer_count, 2);
    assert_fp(r.fingerprints[1], FP_CF_GTS_CROSS);
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

/* Generated: intermediates without cA, path length violations, the 10-certificate bound. */
static void test_ca_and_path_length(void **state)
{
    (void)state;
    x509_chain_result r;
    gen_cert root = gen(&(gen_opts){.cn = "pl root", .ca = true, .path_len = -1});
    x509_root_set *roots = roots_of_gen(&root);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);

    gen_cert not_ca = gen(&(gen_opts){.cn = "not a ca", .issuer = &root, .path_len = -1});
    gen_cert no_bc = gen(&(gen_opts){.cn = "no bc", .issuer = &root, .no_basic_constraints = true,
                                     .path_len = -1});
    gen_cert pl0 = gen(&(gen_opts){.cn = "pathlen 0", .issuer = &root, .ca = true, .path_len = 0});
    gen_cert under_pl0 = gen(&(gen_opts){.cn = "under pathlen 0", .issuer = &pl0, .ca = true,
                                         .path_len = -1});
    const gen_cert *issuers[] = {&not_ca, &no_bc};
    for (size_t i = 0; i < 2; i++) {
        gen_cert leaf = gen(&(gen_opts){.cn = "leaf.example", .issuer = issuers[i],
                                        .path_len = -1});
        test_chain c = {0};
        chain_add_gen(&c, &leaf);
        chain_add_gen(&c, issuers[i]);
        expect_reject(v, &c, X509_ADD_CHAIN, "chain[1] is not a CA certificate");
        chain_free(&c);
        gen_free(&leaf);
    }
    gen_cert leaf = gen(&(gen_opts){.cn = "deep.example", .issuer = &under_pl0, .path_len = -1});
    test_chain c = {0};
    chain_add_gen(&c, &leaf);
    chain_add_gen(&c, &under_pl0);
    chain_add_gen(&c, &pl0);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[2] has path length constraint 0 but 1 "
                                         "intermediates follow it");
    chain_free(&c);
    gen_free(&leaf);
    /* pathlen 0 directly above the leaf is fine. */
    leaf = gen(&(gen_opts){.cn = "shallow.example", .issuer = &pl0, .path_len = -1});
    chain_add_gen(&c, &leaf);
    chain_add_gen(&c, &pl0);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    chain_free(&c);
    gen_free(&leaf);
    x509_validator_free(v);
    x509_root_set_free(roots);

    /* An appended root's own path length counts too. */
    gen_cert tight_root = gen(&(gen_opts){.cn = "tight root", .ca = true, .path_len = 0});
    gen_cert mid = gen(&(gen_opts){.cn = "mid", .issuer = &tight_root, .ca = true,
                                   .path_len = -1});
    gen_cert low = gen(&(gen_opts){.cn = "low", .issuer = &mid, .ca = true, .path_len = -1});
    leaf = gen(&(gen_opts){.cn = "l.example", .issuer = &low, .path_len = -1});
    roots = roots_of_gen(&tight_root);
    v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    chain_add_gen(&c, &leaf);
    chain_add_gen(&c, &low);
    chain_add_gen(&c, &mid);
    expect_reject(v, &c, X509_ADD_CHAIN, "allows this many intermediates");
    chain_add_gen(&c, &tight_root);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[3] has path length constraint 0 but 2");
    chain_free(&c);
    gen_free(&leaf);
    gen_free(&low);
    gen_free(&mid);
    gen_free(&tight_root);
    x509_validator_free(v);
    x509_root_set_free(roots);

    /* Ten certificates are accepted (with or without the root); eleven are not. */
    gen_cert deep[11];
    deep[0] = gen(&(gen_opts){.cn = "deep root", .ca = true, .path_len = -1});
    for (int i = 1; i < 10; i++) {
        char cn[32];
        snprintf(cn, sizeof cn, "deep %d", i);
        deep[i] = gen(&(gen_opts){.cn = cn, .issuer = &deep[i - 1], .ca = true, .path_len = -1});
    }
    deep[10] = gen(&(gen_opts){.cn = "deep.example", .issuer = &deep[9], .path_len = -1});
    roots = roots_of_gen(&deep[0]);
    v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    for (int i = 10; i >= 1; i--)
        chain_add_gen(&c, &deep[i]);
    assert_int_equal(c.n, 10);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_true(r.root_appended);
    assert_int_equal(r.issuer_count, 10);
    chain_add_gen(&c, &deep[0]);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain has 11 certificates; at most 10");
    chain_free(&c);
    /* Ten with the root included: a leaf under deep 8. */
    gen_cert leaf8 = gen(&(gen_opts){.cn = "deep8.example", .issuer = &deep[8], .path_len = -1});
    chain_add_gen(&c, &leaf8);
    for (int i = 8; i >= 0; i--)
        chain_add_gen(&c, &deep[i]);
    assert_int_equal(c.n, 10);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_false(r.root_appended);
    assert_int_equal(r.issuer_count, 9);
    chain_free(&c);
    gen_free(&leaf8);
    for (int i = 0; i < 11; i++)
        gen_free(&deep[i]);
    x509_validator_free(v);
    x509_root_set_free(roots);

    gen_free(&under_pl0);
    gen_free(&pl0);
    gen_free(&no_bc);
    gen_free(&not_ca);
    gen_free(&root);
}

static void test_garbage_input(void **state)
{
    (void)state;
    x509_root_set *roots = roots_of("chains/ctgo/fake-ca.cert", NULL);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    test_chain good = chain_of("chains/ctgo/leaf00.chain", NULL);
    x509_chain_result r;
    error err = {{0}};

    assert_int_equal(x509_validate_chain(v, good.span, 0, X509_ADD_CHAIN, &r, &err), -1);
    assert_non_null(strstr(err.msg, "empty chain"));

    test_chain c = {0};
    static const uint8_t not_cert[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    chain_add_der(&c, not_cert, sizeof not_cert);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[0] is not a valid DER X.509 certificate");
    chain_free(&c);
    static const uint8_t text[] = "hello, this is not DER";
    chain_add_der(&c, text, sizeof text - 1);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[0] is not a DER X.509 certificate");
    chain_free(&c);
    chain_add_der(&c, text, 0);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[0] is empty");
    chain_free(&c);

    /* Trailing bytes, truncation, BER indefinite length, in leaf and intermediate. */
    buffer b = {0};
    buffer_append(&b, good.der[1], good.len[1]);
    buffer_append_byte(&b, 0x00);
    chain_add_der(&c, good.der[0], good.len[0]);
    chain_add_der(&c, b.data, b.len);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[1] has 1 trailing bytes after the certificate");
    chain_free(&c);
    chain_add_der(&c, good.der[0], good.len[0] - 1);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[0] is not a DER X.509 certificate");
    chain_free(&c);
    buffer_reset(&b);
    /* 30 80 <content> 00 00 */
    assert_true(good.der[0][1] == 0x82);
    size_t content = ((size_t)good.der[0][2] << 8) | good.der[0][3];
    uint8_t ber_hdr[2] = {0x30, 0x80};
    buffer_append(&b, ber_hdr, 2);
    buffer_append(&b, good.der[0] + 4, content);
    buffer_append(&b, "\0\0", 2);
    chain_add_der(&c, b.data, b.len);
    expect_reject(v, &c, X509_ADD_CHAIN, "not a DER X.509 certificate");
    chain_free(&c);
    /* Non-minimal length encoding of the outer SEQUENCE. */
    buffer_reset(&b);
    uint8_t long_hdr[5] = {0x30, 0x83, 0x00, good.der[0][2], good.der[0][3]};
    buffer_append(&b, long_hdr, 5);
    buffer_append(&b, good.der[0] + 4, content);
    chain_add_der(&c, b.data, b.len);
    expect_reject(v, &c, X509_ADD_CHAIN, "not a DER X.509 certificate");
    chain_free(&c);
    buffer_free(&b);

    /* A repeated certificate (the root twice) is a cycle, not a path. */
    chain_add_file(&c, "chains/ctgo/leaf02.chain");
    chain_add_file(&c, "chains/ctgo/fake-ca.cert");
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[3] repeats chain[2]");
    chain_free(&c);

    /* Eleven certificates are refused before anything is parsed. */
    for (int i = 0; i < 11; i++)
        chain_add_der(&c, text, 3);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain has 11 certificates; at most 10");
    chain_free(&c);
    /* Oversized. */
    uint8_t *huge = calloc(1, X509_CERT_MAX_DER + 1);
    chain_add_der(&c, huge, X509_CERT_MAX_DER + 1);
    expect_reject(v, &c, X509_ADD_CHAIN, "more than the");
    chain_free(&c);
    free(huge);

    expect_ok(v, &good, X509_ADD_CHAIN, &r);
    chain_free(&good);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

/* Random byte flips and every truncation of a real chain: nothing may crash or leak, and every
 * rejection carries a reason. */
static void test_hostile_mutations(void **state)
{
    (void)state;
    x509_root_set *roots = roots_of("chains/ctgo/fake-ca.cert", NULL);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 64);
    test_chain base = chain_of("chains/ctgo/subleaf.chain", NULL);
    uint64_t rng = 0x243f6a8885a308d3ULL;
    size_t accepted = 0;
    for (int iter = 0; iter < 3000; iter++) {
        test_chain c = {0};
        for (size_t i = 0; i < base.n; i++)
            chain_add_der(&c, base.der[i], base.len[i]);
        int flips = 1 + iter % 4;
        for (int f = 0; f < flips; f++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t which = (rng >> 8) % c.n;
            size_t at = (rng >> 16) % c.len[which];
            c.der[which][at] ^= (uint8_t)(1u << ((rng >> 40) % 8));
        }
        x509_chain_result r;
        error err = {{0}};
        if (x509_validate_chain(v, c.span, c.n, X509_ADD_CHAIN, &r, &err) == 0)
            accepted++;
        else
            assert_true(err.msg[0] != '\0');
        chain_free(&c);
    }
    /* A flip in a signature or an unchecked field can survive; most cannot. */
    assert_true(accepted < 3000 / 2);
    for (size_t cut = 0; cut < base.len[1]; cut++) {
        x509_span spans[2] = {base.span[0], {base.der[1], cut}};
        x509_chain_result r;
        error err = {{0}};
        assert_int_equal(x509_validate_chain(v, spans, 2, X509_ADD_CHAIN, &r, &err), -1);
    }
    chain_free(&base);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

/* One rejection per rule, each produced by the validator from an input that breaks only that
 * rule. Every reason must carry its rule's key phrase, and no other rule's, so that a client
 * reading the 400 body can tell exactly what was wrong. */
static void test_reasons_distinct(void **state)
{
    (void)state;
    gen_cert root = gen(&(gen_opts){.cn = "rd root", .ca = true, .path_len = -1});
    gen_cert inter = gen(&(gen_opts){.cn = "rd int", .issuer = &root, .ca = true,
                                     .path_len = -1});
    gen_cert impostor = gen(&(gen_opts){.cn = "rd int", .issuer = &root, .ca = true,
                                        .path_len = -1});
    gen_cert not_ca = gen(&(gen_opts){.cn = "rd not ca", .issuer = &root, .path_len = -1});
    gen_cert pl0 = gen(&(gen_opts){.cn = "rd pl0", .issuer = &root, .ca = true, .path_len = 0});
    gen_cert under_pl0 = gen(&(gen_opts){.cn = "rd under", .issuer = &pl0, .ca = true,
                                         .path_len = -1});
    gen_cert psc = gen(&(gen_opts){.cn = "rd psc", .issuer = &root, .ca = true, .path_len = -1,
                                   .eku = "1.3.6.1.4.1.11129.2.4.4"});
    gen_cert stranger = gen(&(gen_opts){.cn = "rd stranger", .ca = true, .path_len = -1});
#define LEAF(name, ...) gen_cert name = gen(&(gen_opts){.cn = #name, .path_len = -1, __VA_ARGS__})
    LEAF(ok, .issuer = &inter, .eku = "serverAuth");
    LEAF(pre, .issuer = &inter, .poison = POISON_OK);
    LEAF(pre_noncrit, .issuer = &inter, .poison = POISON_NON_CRITICAL);
    LEAF(pre_notnull, .issuer = &inter, .poison = POISON_NOT_NULL);
    LEAF(pre_twice, .issuer = &inter, .poison = POISON_TWICE);
    LEAF(client, .issuer = &inter, .eku = "clientAuth");
    LEAF(early, .issuer = &inter, .not_after = 1000000000);
    LEAF(late, .issuer = &inter, .not_after = 4200000000LL);
    LEAF(under_not_ca, .issuer = &not_ca);
    LEAF(deep, .issuer = &under_pl0);
    LEAF(forged, .issuer = &impostor);
    LEAF(orphan, .issuer = &stranger);
    LEAF(via_psc, .issuer = &psc, .poison = POISON_OK);
    LEAF(lone, .ca = true, .poison = POISON_OK);
#undef LEAF
    buffer mismatched = {0};
    make_mismatched_cert(&inter, &mismatched);
    buffer trailing = {0};
    buffer_append(&trailing, inter.der, inter.len);
    buffer_append_byte(&trailing, 0);
    static const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x00};

    x509_root_set *roots = roots_of_gen(&root);
    error err = {{0}};
    assert_int_equal(x509_root_set_add_der(roots, lone.der, lone.len, &err), 0);
    x509_validator *v = validator_for(roots, 1500000000, 4102444800LL, 0);
    struct rule {
        const char *key;
        x509_endpoint ep;
        size_t n;
        x509_span chain[11];
    } rules[] = {
#define S(g) {(g).der, (g).len}
        {"empty chain", X509_ADD_CHAIN, 0, {{NULL, 0}}},
        {"at most 10 are accepted", X509_ADD_CHAIN, 11,
         {S(ok), S(inter), S(inter), S(inter), S(inter), S(inter), S(inter), S(inter), S(inter),
          S(inter), S(inter)}},
        {"is not a valid DER X.509 certificate", X509_ADD_CHAIN, 2, {S(ok), {junk, sizeof junk}}},
        {"trailing bytes", X509_ADD_CHAIN, 2, {S(ok), {trailing.data, trailing.len}}},
        {"repeats", X509_ADD_CHAIN, 3, {S(ok), S(inter), S(inter)}},
        {"signature algorithm that differs", X509_ADD_CHAIN, 2,
         {{mismatched.data, mismatched.len}, S(inter)}},
        {"Precertificate Signing Certificate", X509_ADD_PRE_CHAIN, 2, {S(via_psc), S(psc)}},
        {"not marked critical", X509_ADD_PRE_CHAIN, 2, {S(pre_noncrit), S(inter)}},
        {"not ASN.1 NULL", X509_ADD_PRE_CHAIN, 2, {S(pre_notnull), S(inter)}},
        {"appears 2 times", X509_ADD_PRE_CHAIN, 2, {S(pre_twice), S(inter)}},
        {"add-chain received a precertificate", X509_ADD_CHAIN, 2, {S(pre), S(inter)}},
        {"add-pre-chain received a certificate", X509_ADD_PRE_CHAIN, 2, {S(ok), S(inter)}},
        {"does not include serverAuth", X509_ADD_CHAIN, 2, {S(client), S(inter)}},
        {"before the start", X509_ADD_CHAIN, 2, {S(early), S(inter)}},
        {"at or after the end", X509_ADD_CHAIN, 2, {S(late), S(inter)}},
        {"is not the issuer of", X509_ADD_CHAIN, 2, {S(ok), S(not_ca)}},
        {"is not a CA certificate", X509_ADD_CHAIN, 2, {S(under_not_ca), S(not_ca)}},
        {"path length constraint", X509_ADD_CHAIN, 3, {S(deep), S(under_pl0), S(pl0)}},
        {"did not sign", X509_ADD_CHAIN, 2, {S(forged), S(inter)}},
        {"no path to an accepted root", X509_ADD_CHAIN, 2, {S(orphan), S(stranger)}},
        {"needs its issuer", X509_ADD_PRE_CHAIN, 1, {S(lone)}},
#undef S
    };
    enum { RULES = sizeof rules / sizeof *rules };
    char reasons[RULES][256];
    for (size_t i = 0; i < RULES; i++) {
        x509_chain_result r;
        error e = {{0}};
        if (x509_validate_chain(v, rules[i].chain, rules[i].n, rules[i].ep, &r, &e) == 0)
            fail_msg("rule \"%s\": chain was accepted", rules[i].key);
        if (!strstr(e.msg, rules[i].key))
            fail_msg("rule \"%s\": reason \"%s\"", rules[i].key, e.msg);
        strcpy(reasons[i], e.msg);
    }
    for (size_t i = 0; i < RULES; i++)
        for (size_t j = 0; j < RULES; j++)
            if (i != j && strstr(reasons[i], rules[j].key))
                fail_msg("reason \"%s\" also matches rule \"%s\"", reasons[i], rules[j].key);

    /* The same leaves pass when nothing is wrong. */
    x509_chain_result r;
    x509_span good[2] = {{ok.der, ok.len}, {inter.der, inter.len}};
    assert_int_equal(x509_validate_chain(v, good, 2, X509_ADD_CHAIN, &r, &err), 0);
    good[0] = (x509_span){pre.der, pre.len};
    assert_int_equal(x509_validate_chain(v, good, 2, X509_ADD_PRE_CHAIN, &r, &err), 0);

    x509_validator_free(v);
    x509_root_set_free(roots);
    buffer_free(&mismatched);
    buffer_free(&trailing);
    gen_cert *all[] = {&root, &inter, &impostor, &not_ca, &pl0, &under_pl0, &psc, &stranger,
                       &ok, &pre, &pre_noncrit, &pre_notnull, &pre_twice, &client, &early,
                       &late, &under_not_ca, &deep, &forged, &orphan, &via_psc, &lone};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        gen_free(all[i]);
}

/* ---- link cache ----------------------------------------------------------------------- */

static void test_link_cache_warm_costs_one_verification(void **state)
{
    (void)state;
    x509_root_set *roots = roots_of("chains/ctgo/fake-ca.cert", NULL);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    x509_chain_result r;
    test_chain c = chain_of("chains/ctgo/subleaf.chain", NULL);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_int_equal(verifications(v), 3);           /* cold: every link */
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_int_equal(verifications(v), 4);           /* warm: only the leaf */
    c.n = 3;                                         /* root omitted: appended link cached */
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    assert_int_equal(verifications(v), 5);
    c.n = 4;
    x509_validator_stats s;
    x509_validator_stats_get(v, &s);
    assert_int_equal(s.link_cache_entries, 2);       /* int-ca-2→int-ca-1, int-ca-1→fake-ca */
    assert_int_equal(s.link_cache_hits, 4);
    assert_int_equal(s.link_cache_evictions, 0);
    assert_int_equal(s.link_cache_capacity, X509_LINK_CACHE_DEFAULT);
    /* Another leaf under the same intermediate also costs one. */
    test_chain other = chain_of("chains/ctgo/leaf00.chain", NULL);
    expect_ok(v, &other, X509_ADD_CHAIN, &r);
    assert_int_equal(verifications(v), 7);           /* leaf + int-ca→fake-ca (new link) */
    expect_ok(v, &other, X509_ADD_CHAIN, &r);
    assert_int_equal(verifications(v), 8);
    chain_free(&other);
    chain_free(&c);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

static void test_link_cache_bounded(void **state)
{
    (void)state;
    enum { INTERMEDIATES = 100 };
    gen_cert root = gen(&(gen_opts){.cn = "cache root", .ca = true, .path_len = -1});
    x509_root_set *roots = roots_of_gen(&root);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 10); /* rounds up to 16 */
    static gen_cert ints[INTERMEDIATES], leaves[INTERMEDIATES];
    for (int i = 0; i < INTERMEDIATES; i++) {
        char cn[32];
        snprintf(cn, sizeof cn, "int %d", i);
        ints[i] = gen(&(gen_opts){.cn = cn, .issuer = &root, .ca = true, .path_len = -1});
        leaves[i] = gen(&(gen_opts){.cn = "x.example", .issuer = &ints[i], .path_len = -1});
    }
    x509_chain_result r;
    for (int pass = 0; pass < 2; pass++) {
        uint64_t before = verifications(v);
        for (int i = 0; i < INTERMEDIATES; i++) {
            test_chain c = {0};
            chain_add_gen(&c, &leaves[i]);
            chain_add_gen(&c, &ints[i]);
            expect_ok(v, &c, X509_ADD_CHAIN, &r);
            chain_free(&c);
        }
        x509_validator_stats s;
        x509_validator_stats_get(v, &s);
        assert_int_equal(s.link_cache_capacity, 16);
        assert_true(s.link_cache_entries <= 16);
        assert_true(s.link_cache_entries > 0);
        /* At most 16 links can be remembered, so the second pass re-verifies most. */
        assert_true(verifications(v) - before >= 2 * INTERMEDIATES - 16);
        assert_true(s.link_cache_evictions > 0);
    }
    for (int i = 0; i < INTERMEDIATES; i++) {
        gen_free(&ints[i]);
        gen_free(&leaves[i]);
    }
    x509_validator_free(v);
    x509_root_set_free(roots);
    gen_free(&root);
}

typedef struct thread_job {
    x509_validator *v;
    const test_chain *chains[2];
    int failures;
} thread_job;

static void *validate_loop(void *arg)
{
    thread_job *job = arg;
    for (int i = 0; i < 200; i++) {
        const test_chain *c = job->chains[i % 2];
        x509_chain_result r;
        error err = {{0}};
        if (x509_validate_chain(job->v, c->span, c->n, X509_ADD_CHAIN, &r, &err) != 0 ||
            r.issuer_count == 0)
            job->failures++;
    }
    return NULL;
}

static void test_concurrent_validation(void **state)
{
    (void)state;
    x509_root_set *roots = roots_of("chains/ctgo/fake-ca.cert", NULL);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 16);
    test_chain a = chain_of("chains/ctgo/subleaf.chain", NULL);
    test_chain b = chain_of("chains/ctgo/leaf02.chain", NULL);
    enum { THREADS = 4 };
    pthread_t threads[THREADS];
    thread_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (thread_job){.v = v, .chains = {&a, &b}};
        assert_int_equal(pthread_create(&threads[i], NULL, validate_loop, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(jobs[i].failures, 0);
    }
    /* Every request paid its leaf; cold-start races may add a few link verifications. */
    uint64_t n = verifications(v);
    assert_true(n >= THREADS * 200 && n <= THREADS * 200 + THREADS * 4);
    chain_free(&a);
    chain_free(&b);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

/* ---- the leaf read from its DER --------------------------------------------------------- */

/* Facts x509_leaf reads from fixtures, checked against the openssl CLI's reading and against
 * OpenSSL's parse (names, and the signature verifying over the TBS span). */
static void test_leaf_reader_known_answers(void **state)
{
    (void)state;
    struct {
        const char *leaf, *issuer;
        x509_sig_alg alg;
        int64_t not_after;
        int poison;
        bool eku, server_auth;
    } cases[] = {
        {"chains/ctgo/leaf02.cert", "chains/ctgo/int-ca.cert", X509_SIG_ECDSA_SHA256,
         1746983111 /* 2025-05-11T17:05:11Z */, 0, false, false},
        {"chains/azul/leaf-signed-by-fake-intermediate-cert.pem",
         "chains/azul/fake-intermediate-cert.pem", X509_SIG_RSA_SHA256, NOT_AFTER_AZUL_LEAF, 0,
         true, true},
        {"chains/tesseract/test_leaf_pre_cert_signed_by_intermediate.pem",
         "chains/tesseract/test_intermediate_ca_cert.pem", X509_SIG_ECDSA_SHA384,
         1764957950 /* 2025-12-05T18:05:50Z */, 1, true, true},
        {"chains/azul/precert-valid.pem", "chains/azul/ca-cert.pem", X509_SIG_RSA_SHA1,
         1654041600 /* 2022-06-01T00:00:00Z */, 1, false, false},
        {"chains/azul/p521-ecdsa-leaf-cert.pem", "chains/azul/p521-ecdsa-intermediate-cert.pem",
         X509_SIG_ECDSA_SHA512, 1807716614 /* 2027-04-14T15:30:14Z */, 0, false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        buffer der = {0}, issuer_der = {0};
        pem_der_or_fail(cases[i].leaf, &der);
        pem_der_or_fail(cases[i].issuer, &issuer_der);
        x509_leaf leaf;
        if (x509_leaf_read(der.data, der.len, &leaf) != 0)
            fail_msg("%s: not read", cases[i].leaf);
        assert_int_equal(leaf.sig_alg, cases[i].alg);
        assert_int_equal(leaf.not_after, cases[i].not_after);
        assert_int_equal(leaf.poison_count, cases[i].poison);
        assert_true(leaf.poison_critical == (cases[i].poison == 1));
        assert_true(leaf.poison_null == (cases[i].poison == 1));
        assert_true(leaf.has_eku == cases[i].eku);
        assert_true(leaf.eku_server_auth == cases[i].server_auth);

        const unsigned char *p = der.data;
        X509 *x = d2i_X509(NULL, &p, (long)der.len);
        p = issuer_der.data;
        X509 *ix = d2i_X509(NULL, &p, (long)issuer_der.len);
        assert_non_null(x);
        assert_non_null(ix);
        const unsigned char *name;
        size_t name_len;
        assert_int_equal(X509_NAME_get0_der(X509_get_issuer_name(x), &name, &name_len), 1);
        assert_int_equal(leaf.issuer.len, name_len);
        assert_memory_equal(leaf.issuer.data, name, name_len);
        assert_int_equal(X509_NAME_get0_der(X509_get_subject_name(x), &name, &name_len), 1);
        assert_int_equal(leaf.subject.len, name_len);
        assert_memory_equal(leaf.subject.data, name, name_len);
        const ASN1_BIT_STRING *sig;
        X509_get0_signature(&sig, NULL, x);
        assert_int_equal(leaf.signature.len, (size_t)ASN1_STRING_length(sig));
        assert_memory_equal(leaf.signature.data, ASN1_STRING_get0_data(sig), leaf.signature.len);
        /* The TBS span is exactly the signed bytes. */
        const EVP_MD *md = X509_get_signature_nid(x) == NID_sha1WithRSAEncryption ? EVP_sha1()
                           : cases[i].alg == X509_SIG_ECDSA_SHA384             ? EVP_sha384()
                           : cases[i].alg == X509_SIG_ECDSA_SHA512             ? EVP_sha512()
                                                                               : EVP_sha256();
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, md, NULL, X509_get0_pubkey(ix)), 1);
        assert_int_equal(EVP_DigestVerify(ctx, leaf.signature.data, leaf.signature.len,
                                          leaf.tbs.data, leaf.tbs.len), 1);
        EVP_MD_CTX_free(ctx);
        X509_free(x);
        X509_free(ix);
        buffer_free(&der);
        buffer_free(&issuer_der);
    }

    /* Outside the subset: handed back (-1), never judged. */
    gen_cert g = gen(&(gen_opts){.cn = "subset.example", .ca = true, .path_len = -1,
                                 .eku = "serverAuth"});
    x509_leaf leaf;
    assert_int_equal(x509_leaf_read(g.der, g.len, &leaf), 0);
    assert_int_equal(leaf.sig_alg, X509_SIG_ECDSA_SHA256);
    static const uint8_t v3[] = {0xa0, 0x03, 0x02, 0x01, 0x02};
    static const uint8_t critical_true[] = {0x01, 0x01, 0xff};
    struct {
        const uint8_t *find;
        size_t find_len, at;
        uint8_t value;
    } patches[] = {
        {v3, sizeof v3, 4, 0x01},                       /* version 2 */
        {critical_true, sizeof critical_true, 2, 0x00}, /* explicit FALSE (DER omits it) */
        {critical_true, sizeof critical_true, 2, 0x01}, /* TRUE that is not FF */
    };
    for (size_t i = 0; i < sizeof patches / sizeof *patches; i++) {
        buffer b = {0};
        buffer_append(&b, g.der, g.len);
        uint8_t *hit = memmem(b.data, b.len, patches[i].find, patches[i].find_len);
        assert_non_null(hit);
        hit[patches[i].at] = patches[i].value;
        assert_int_equal(x509_leaf_read(b.data, b.len, &leaf), -1);
        buffer_free(&b);
    }
    buffer b = {0};
    buffer_append(&b, g.der, g.len);
    buffer_append_byte(&b, 0);
    assert_int_equal(x509_leaf_read(b.data, b.len, &leaf), -1); /* trailing byte */
    assert_int_equal(x509_leaf_read(b.data, g.len - 1, &leaf), -1);
    assert_int_equal(x509_leaf_read(b.data, 0, &leaf), -1);
    buffer_free(&b);
    gen_free(&g);
}

/* Re-signs a TBSCertificate (ecdsa-with-SHA256) after byte surgery on it. */
static void sign_tbs(const uint8_t *tbs, size_t tbs_len, EVP_PKEY *key, buffer *out)
{
    static const uint8_t alg[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04,
                                  0x03, 0x02};
    uint8_t sig[160];
    size_t sig_len = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sig_len, tbs, tbs_len), 1);
    EVP_MD_CTX_free(md);
    size_t content = tbs_len + sizeof alg + der_header_len(sig_len + 1) + sig_len + 1;
    assert_int_equal(der_put_header(out, DER_SEQUENCE, content), 0);
    buffer_append(out, tbs, tbs_len);
    buffer_append(out, alg, sizeof alg);
    assert_int_equal(der_put_header(out, DER_BIT_STRING, sig_len + 1), 0);
    buffer_append_byte(out, 0);
    buffer_append(out, sig, sig_len);
}

/* g's certificate with the string value `text` (found in its TBS, in the issuer Name when
 * in_issuer, else the last occurrence) retagged as `tag` and its first octet set to `first`
 * (0 keeps it), re-signed by key. */
static void patch_name_string(const gen_cert *g, const char *text, bool in_issuer, uint8_t tag,
                              uint8_t first, EVP_PKEY *key, buffer *out)
{
    unsigned char *tbs = NULL;
    int tbs_len = i2d_re_X509_tbs(g->cert, &tbs);
    assert_true(tbs_len > 0);
    size_t n = strlen(text);
    uint8_t *hit = memmem(tbs, (size_t)tbs_len, text, n);
    assert_non_null(hit);
    if (!in_issuer) {
        uint8_t *next;
        while ((next = memmem(hit + 1, (size_t)(tbs + tbs_len - hit - 1), text, n)))
            hit = next;
    }
    assert_int_equal(hit[-1], n);
    hit[-2] = tag;
    if (first)
        hit[0] = first;
    sign_tbs(tbs, (size_t)tbs_len, key, out);
    OPENSSL_free(tbs);
}

/* Names decide twice: whether d2i_X509 accepts the leaf at all (it refuses names it cannot
 * canonicalise), and whether chain[1] is the issuer (canonical equality, not byte equality).
 * Both must come out as OpenSSL says, on both paths. */
static void test_leaf_names_decided_as_openssl_does(void **state)
{
    (void)state;
    gen_cert root = gen(&(gen_opts){.cn = "names root", .ca = true, .path_len = -1});
    gen_cert inter = gen(&(gen_opts){.cn = "names int", .issuer = &root, .ca = true,
                                     .path_len = -1});
    gen_cert leaf = gen(&(gen_opts){.cn = "names.example", .issuer = &inter, .path_len = -1});
    gen_cert direct = gen(&(gen_opts){.cn = "direct.example", .issuer = &root, .path_len = -1});
    x509_root_set *roots = roots_of_gen(&root);
    x509_validator *fast = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    x509_validator_config ref_cfg = {.roots = roots, .not_after_start = WIDE_START,
                                     .not_after_limit = WIDE_LIMIT,
                                     .reference_path_only = true};
    x509_validator *ref = x509_validator_new(&ref_cfg, NULL);
    assert_non_null(ref);
    struct {
        const gen_cert *g;
        const char *text;
        bool in_issuer;
        uint8_t tag, first;
        const gen_cert *signer;
        const char *reject; /* NULL: accepted */
    } cases[] = {
        /* Invalid UTF-8: d2i_X509 refuses the certificate, whichever Name holds it. */
        {&leaf, "names.example", false, 0x0c, 0xff, &inter, "chain[0] is not a valid DER"},
        {&leaf, "names int", true, 0x0c, 0xff, &inter, "chain[0] is not a valid DER"},
        {&direct, "names root", true, 0x0c, 0xff, &root, "chain[0] is not a valid DER"},
        /* Same text as UTF8String instead of PrintableString, and in other case: different
         * bytes, canonically equal, so the issuer is still the issuer. */
        {&leaf, "names int", true, 0x0c, 0, &inter, NULL},
        {&leaf, "names int", true, 0x13, 'N', &inter, NULL},
        {&direct, "names root", true, 0x0c, 'N', &root, NULL},
        /* A different name is not. */
        {&leaf, "names int", true, 0x13, 'x', &inter, "is not the issuer of"},
        {&direct, "names root", true, 0x13, 'x', &root, "no accepted root is named"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        buffer der = {0};
        patch_name_string(cases[i].g, cases[i].text, cases[i].in_issuer, cases[i].tag,
                          cases[i].first, cases[i].signer->key, &der);
        const unsigned char *p = der.data;
        X509 *x = d2i_X509(NULL, &p, (long)der.len);
        /* The premise, stated: OpenSSL itself refuses exactly the invalid UTF-8 cases. */
        assert_true((x == NULL) == (cases[i].first == 0xff));
        X509_free(x);
        test_chain c = {0};
        chain_add_der(&c, der.data, der.len);
        if (cases[i].signer == &inter)
            chain_add_gen(&c, &inter);
        x509_validator *both[] = {fast, ref};
        for (int k = 0; k < 2; k++) {
            x509_chain_result r;
            if (cases[i].reject)
                expect_reject(both[k], &c, X509_ADD_CHAIN, cases[i].reject);
            else
                expect_ok(both[k], &c, X509_ADD_CHAIN, &r);
        }
        chain_free(&c);
        buffer_free(&der);
    }
    x509_validator_stats s;
    x509_validator_stats_get(fast, &s);
    assert_int_equal(s.leaf_openssl_parses, 3); /* only the invalid ones, to word the reason */
    x509_validator_free(fast);
    x509_validator_free(ref);
    x509_root_set_free(roots);
    gen_free(&direct);
    gen_free(&leaf);
    gen_free(&inter);
    gen_free(&root);
}

/* Typical algorithms never need d2i_X509 for the leaf; others still work through OpenSSL. */
static void test_openssl_fallbacks(void **state)
{
    (void)state;
    x509_root_set *roots = roots_of(AZUL_ROOTS, "chains/tesseract/test_root_ca_cert.pem",
                                    "chains/azul/sha1-rsa-root-ca-cert.pem",
                                    "chains/azul/p521-ecdsa-root-ca-cert.pem", NULL);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    struct {
        const char *leaf, *issuer;
        x509_endpoint ep;
    } fixtures[] = {
        {"chains/ctgo/leaf02.cert", "chains/ctgo/int-ca.cert", X509_ADD_CHAIN},
        {"chains/azul/leaf-signed-by-fake-intermediate-cert.pem",
         "chains/azul/fake-intermediate-cert.pem", X509_ADD_CHAIN},
        {"chains/tesseract/test_leaf_pre_cert_signed_by_intermediate.pem",
         "chains/tesseract/test_intermediate_ca_cert.pem", X509_ADD_PRE_CHAIN},
        {"chains/azul/sha1-rsa-leaf-cert.pem", "chains/azul/sha1-rsa-intermediate-cert.pem",
         X509_ADD_CHAIN},
        {"chains/azul/p521-ecdsa-leaf-cert.pem", "chains/azul/p521-ecdsa-intermediate-cert.pem",
         X509_ADD_CHAIN},
        {"chains/azul/precert-valid.pem", "chains/azul/ca-cert.pem", X509_ADD_PRE_CHAIN},
        {"chains/azul/real-precert-with-eku.pem", NULL, X509_ADD_PRE_CHAIN},
    };
    x509_chain_result r;
    for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++) {
        test_chain c = chain_of(fixtures[i].leaf, fixtures[i].issuer, NULL);
        expect_ok(v, &c, fixtures[i].ep, &r);
        chain_free(&c);
    }
    x509_validator_stats s;
    x509_validator_stats_get(v, &s);
    assert_int_equal(s.leaf_openssl_parses, 0);
    x509_validator_free(v);
    x509_root_set_free(roots);

    /* Ed25519 (no digest) and RSA-PSS (parameters) leaf signatures: OpenSSL's path. */
    gen_cert root = gen(&(gen_opts){.cn = "fallback root", .ca = true, .path_len = -1});
    roots = roots_of_gen(&root);
    v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    const char *types[] = {"ED25519", "RSA-PSS"};
    for (size_t i = 0; i < 2; i++) {
        gen_cert inter = gen(&(gen_opts){.cn = "fallback int", .issuer = &root, .ca = true,
                                         .path_len = -1, .key_type = types[i]});
        gen_cert twin = gen(&(gen_opts){.cn = "fallback int", .issuer = &root, .ca = true,
                                        .path_len = -1, .key_type = types[i]});
        gen_cert leaf = gen(&(gen_opts){.cn = "fallback.example", .issuer = &inter,
                                        .path_len = -1, .eku = "serverAuth"});
        x509_validator_stats_get(v, &s);
        uint64_t parses = s.leaf_openssl_parses, verified = s.signature_verifications;
        test_chain c = {0};
        chain_add_gen(&c, &leaf);
        chain_add_gen(&c, &inter);
        expect_ok(v, &c, X509_ADD_CHAIN, &r);
        assert_true(r.root_appended);
        x509_validator_stats_get(v, &s);
        assert_int_equal(s.leaf_openssl_parses, parses + 1);
        assert_int_equal(s.signature_verifications, verified + 2); /* leaf, int->root */
        chain_free(&c);
        chain_add_gen(&c, &leaf);
        chain_add_gen(&c, &twin);
        expect_reject(v, &c, X509_ADD_CHAIN, "chain[1] did not sign chain[0]");
        chain_free(&c);
        gen_free(&leaf);
        gen_free(&twin);
        gen_free(&inter);
    }
    x509_validator_free(v);
    x509_root_set_free(roots);
    gen_free(&root);
}

static void assert_same_result(const x509_chain_result *a, const x509_chain_result *b)
{
    assert_int_equal(a->is_precert, b->is_precert);
    assert_ptr_equal(a->leaf.data, b->leaf.data);
    assert_int_equal(a->leaf.len, b->leaf.len);
    assert_int_equal(a->issuer_count, b->issuer_count);
    for (size_t i = 0; i < a->issuer_count; i++) {
        assert_ptr_equal(a->issuers[i].data, b->issuers[i].data);
        assert_int_equal(a->issuers[i].len, b->issuers[i].len);
        assert_memory_equal(a->fingerprints[i], b->fingerprints[i], SHA256_LEN);
    }
    assert_int_equal(a->root_appended, b->root_appended);
    assert_ptr_equal(a->issuer.data, b->issuer.data);
    assert_memory_equal(a->issuer_key_hash, b->issuer_key_hash, SHA256_LEN);
}

/* Validates chain with both validators and requires the same verdict, reason and result.
 * Returns the verdict. */
static int compare_paths(x509_validator *fast, x509_validator *ref, const x509_span *chain,
                         size_t n, x509_endpoint ep, const char *what, size_t where)
{
    x509_chain_result r1, r2;
    error e1 = {{0}}, e2 = {{0}};
    int rc1 = x509_validate_chain(fast, chain, n, ep, &r1, &e1);
    int rc2 = x509_validate_chain(ref, chain, n, ep, &r2, &e2);
    if (rc1 != rc2 || strcmp(e1.msg, e2.msg) != 0)
        fail_msg("%s %zu: direct %d \"%s\", reference %d \"%s\"", what, where, rc1, e1.msg, rc2,
                 e2.msg);
    if (rc1 == 0)
        assert_same_result(&r1, &r2);
    return rc1;
}

/* Damaged chains get the same verdict, reason and result from the direct reading of the leaf
 * as from OpenSSL's parse of it (reference_path_only): random damage to several chains, then
 * every byte of two leaves set to a few values in turn. Damage breaks the signature, so what
 * this compares is mostly which rule fails first, which is where the two readings could part. */
static void test_direct_and_reference_paths_agree(void **state)
{
    (void)state;
    x509_root_set *roots = roots_of(AZUL_ROOTS, "chains/tesseract/test_root_ca_cert.pem", NULL);
    x509_validator *fast = validator_for(roots, WIDE_START, WIDE_LIMIT, 64);
    x509_validator_config ref_cfg = {.roots = roots, .not_after_start = WIDE_START,
                                     .not_after_limit = WIDE_LIMIT,
                                     .reference_path_only = true};
    x509_validator *ref = x509_validator_new(&ref_cfg, NULL);
    assert_non_null(ref);
    struct {
        test_chain chain;
        x509_endpoint ep;
        bool sweep;
    } bases[] = {
        {chain_of("chains/ctgo/leaf02.chain", NULL), X509_ADD_CHAIN, true},
        {chain_of("chains/azul/leaf-signed-by-fake-intermediate-cert.pem",
                  "chains/azul/fake-intermediate-cert.pem", NULL), X509_ADD_CHAIN, false},
        {chain_of("chains/tesseract/test_leaf_pre_cert_signed_by_intermediate.pem",
                  "chains/tesseract/test_intermediate_ca_cert.pem", NULL), X509_ADD_PRE_CHAIN,
         true},
        {chain_of("chains/azul/precert-valid.pem", "chains/azul/ca-cert.pem", NULL),
         X509_ADD_PRE_CHAIN, false},
        {chain_of("chains/azul/real-precert-with-eku.pem", NULL), X509_ADD_PRE_CHAIN, false},
    };
    enum { BASES = sizeof bases / sizeof *bases, ROUNDS = 200 };
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    size_t accepted = 0, rejected = 0;
    for (size_t b = 0; b < BASES; b++) {
        const test_chain *base = &bases[b].chain;
        for (int iter = 0; iter < ROUNDS; iter++) {
            test_chain c = {0};
            for (size_t i = 0; i < base->n; i++)
                chain_add_der(&c, base->der[i], base->len[i]);
            /* Mostly the leaf, sometimes its extensions only, sometimes the issuer; a few
             * rounds unchanged (both must accept). */
            int flips = iter % 10 == 0 ? 0 : 1 + iter % 3;
            for (int f = 0; f < flips; f++) {
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                size_t which = (c.n > 1 && (rng & 7) == 0) ? 1 : 0;
                size_t len = c.len[which];
                size_t at = (rng >> 16) % len;
                if (which == 0 && (rng & 8))
                    at = len / 2 + (rng >> 16) % (len / 2); /* the tail: extensions */
                if (rng & 0x10)
                    c.der[which][at] ^= (uint8_t)(1u << ((rng >> 40) % 8));
                else
                    c.der[which][at] = (uint8_t)(rng >> 48);
            }
            if (iter % 50 == 7)
                c.span[0].len = (rng >> 20) % c.len[0]; /* truncated leaf */
            if (compare_paths(fast, ref, c.span, c.n, bases[b].ep, "random round", (size_t)iter))
                rejected++;
            else
                accepted++;
            chain_free(&c);
        }
        if (!bases[b].sweep)
            continue;
        static const uint8_t values[] = {0x00, 0xff};
        for (size_t at = 0; at < base->len[0]; at++) {
            uint8_t orig = base->der[0][at];
            uint8_t variants[4] = {orig ^ 0x01, orig ^ 0x80, values[0], values[1]};
            for (int k = 0; k < 4; k++) {
                if (variants[k] == orig)
                    continue;
                test_chain c = {0};
                for (size_t i = 0; i < base->n; i++)
                    chain_add_der(&c, base->der[i], base->len[i]);
                c.der[0][at] = variants[k];
                if (compare_paths(fast, ref, c.span, c.n, bases[b].ep, "leaf byte", at))
                    rejected++;
                else
                    accepted++;
                chain_free(&c);
            }
        }
    }
    assert_true(accepted >= BASES * ROUNDS / 10); /* the unchanged rounds at least */
    assert_true(rejected > BASES * ROUNDS / 2);
    x509_validator_stats s;
    x509_validator_stats_get(fast, &s);
    print_message("direct/reference agreement: %zu accepted, %zu rejected, %llu leaves needed "
                  "d2i_X509 on the direct path\n", accepted, rejected,
                  (unsigned long long)s.leaf_openssl_parses);
    for (size_t b = 0; b < BASES; b++)
        chain_free(&bases[b].chain);
    x509_validator_free(fast);
    x509_validator_free(ref);
    x509_root_set_free(roots);
}

/* Leaf shapes the damage sweep cannot make: each decided the same on both paths, and as
 * expected. */
static void test_leaf_edge_cases_agree(void **state)
{
    (void)state;
    gen_cert root = gen(&(gen_opts){.cn = "edge root", .ca = true, .path_len = -1});
    gen_cert inter = gen(&(gen_opts){.cn = "edge int", .issuer = &root, .ca = true,
                                     .path_len = -1});
    x509_root_set *roots = roots_of_gen(&root);
    x509_validator *fast = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    x509_validator_config ref_cfg = {.roots = roots, .not_after_start = WIDE_START,
                                     .not_after_limit = WIDE_LIMIT,
                                     .reference_path_only = true};
    x509_validator *ref = x509_validator_new(&ref_cfg, NULL);
    assert_non_null(ref);
    struct {
        gen_opts opts;
        const char *find, *replace; /* patched into the TBS, then re-signed */
        const char *reject;         /* NULL: accepted */
    } cases[] = {
        {{.eku = "serverAuth", .eku_twice = true}, NULL, NULL, "malformed or repeated"},
        {{.not_after = 1895875200 /* 2030-01-29 */}, "300129", "300229",
         "notAfter is not a valid time"}, /* 2030-02-29 does not exist */
        {{.not_after = 1895875200}, "300129", "300132", "notAfter is not a valid time"},
        {{.not_after = 1895875200}, "300129000000Z", "3001290000000", "not a valid time"},
        {{.not_after = 1835395200 /* 2028-02-29 */}, NULL, NULL, NULL},
        {{.not_after = 2524608000LL /* 2050-01-01: GeneralizedTime */}, NULL, NULL, NULL},
        {{.not_after = 946684799 /* 1999-12-31T23:59:59Z: UTCTime 99 */}, NULL, NULL, NULL},
        {{.not_after = 2524607999LL /* 2049-12-31T23:59:59Z: UTCTime 49 */}, NULL, NULL, NULL},
        {{.not_after = -631152000 /* 1950-01-01: UTCTime 50 */}, NULL, NULL, "before the start"},
        {{.eku = "clientAuth,anyExtendedKeyUsage"}, NULL, NULL, NULL},
        {{.eku = "codeSigning", .poison = POISON_OK}, NULL, NULL, "add-chain received"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        gen_opts o = cases[i].opts;
        o.cn = "edge.example";
        o.issuer = &inter;
        o.path_len = -1;
        gen_cert leaf = gen(&o);
        buffer der = {0};
        if (cases[i].find) {
            unsigned char *tbs = NULL;
            int tbs_len = i2d_re_X509_tbs(leaf.cert, &tbs);
            uint8_t *hit = memmem(tbs, (size_t)tbs_len, cases[i].find, strlen(cases[i].find));
            assert_non_null(hit);
            memcpy(hit, cases[i].replace, strlen(cases[i].replace));
            sign_tbs(tbs, (size_t)tbs_len, inter.key, &der);
            OPENSSL_free(tbs);
        } else {
            buffer_append(&der, leaf.der, leaf.len);
        }
        x509_span chain[2] = {{der.data, der.len}, {inter.der, inter.len}};
        int rc = compare_paths(fast, ref, chain, 2, X509_ADD_CHAIN, "edge case", i);
        assert_int_equal(rc, cases[i].reject ? -1 : 0);
        if (cases[i].reject) {
            test_chain c = {0};
            chain_add_der(&c, der.data, der.len);
            chain_add_gen(&c, &inter);
            expect_reject(fast, &c, X509_ADD_CHAIN, cases[i].reject);
            chain_free(&c);
        }
        buffer_free(&der);
        gen_free(&leaf);
    }
    x509_validator_free(fast);
    x509_validator_free(ref);
    x509_root_set_free(roots);
    gen_free(&inter);
    gen_free(&root);
}

/* ---- issuer cache ----------------------------------------------------------------------- */

static x509_issuer *fake_issuer(uint8_t fill, size_t der_len)
{
    x509_issuer *is = x509_issuer_new();
    assert_non_null(is);
    memset(is->fingerprint, fill, SHA256_LEN);
    is->der_len = der_len;
    return is;
}

/* The cache on its own: keyed by fingerprint and length, bounded, references outlive eviction. */
static void test_issuer_cache_lifetime(void **state)
{
    (void)state;
    x509_issuer_cache *c = x509_issuer_cache_new(1); /* one set of four */
    assert_non_null(c);
    x509_issuer_cache_stats s;
    x509_issuer_cache_stats_get(c, &s);
    assert_int_equal(s.capacity, 4);
    x509_issuer *a = fake_issuer(0xaa, 100);
    x509_issuer_cache_put(c, a);
    x509_issuer *got = x509_issuer_cache_get(c, a->fingerprint, 100);
    assert_ptr_equal(got, a);
    x509_issuer_unref(got);
    assert_null(x509_issuer_cache_get(c, a->fingerprint, 101)); /* same hash, other length */
    uint8_t other[SHA256_LEN];
    memset(other, 0xaa, sizeof other);
    other[31] = 0xab;
    assert_null(x509_issuer_cache_get(c, other, 100));
    /* A second issuer with the same key is not stored over the first. */
    x509_issuer *a2 = fake_issuer(0xaa, 100);
    x509_issuer_cache_put(c, a2);
    got = x509_issuer_cache_get(c, a->fingerprint, 100);
    assert_ptr_equal(got, a);
    x509_issuer_unref(a2);
    /* Fill past capacity while holding a: it is evicted (least recently used) but stays valid
     * for its holder. */
    for (int i = 0; i < 6; i++) {
        x509_issuer *f = fake_issuer((uint8_t)i, 200);
        x509_issuer_cache_put(c, f);
        x509_issuer_unref(f);
    }
    x509_issuer_cache_stats_get(c, &s);
    assert_int_equal(s.entries, 4);
    assert_int_equal(s.evictions, 3);
    assert_null(x509_issuer_cache_get(c, a->fingerprint, 100));
    assert_int_equal(got->fingerprint[0], 0xaa);
    assert_int_equal(got->der_len, 100);
    x509_issuer_unref(got);
    x509_issuer_unref(a);
    /* The most recent four are the ones kept. */
    for (int i = 0; i < 6; i++) {
        uint8_t fp[SHA256_LEN];
        memset(fp, i, sizeof fp);
        x509_issuer *f = x509_issuer_cache_get(c, fp, 200);
        assert_true((f != NULL) == (i >= 2));
        x509_issuer_unref(f);
    }
    x509_issuer_cache_free(c);
    x509_issuer_cache_free(NULL);
}

static void test_issuer_cache_bounded(void **state)
{
    (void)state;
    enum { INTERMEDIATES = 40 };
    gen_cert root = gen(&(gen_opts){.cn = "issuer cache root", .ca = true, .path_len = -1});
    x509_root_set *roots = roots_of_gen(&root);
    x509_validator_config cfg = {.roots = roots, .not_after_start = WIDE_START,
                                 .not_after_limit = WIDE_LIMIT, .issuer_cache_capacity = 7};
    x509_validator *v = x509_validator_new(&cfg, NULL);
    assert_non_null(v);
    static gen_cert ints[INTERMEDIATES], leaves[INTERMEDIATES];
    for (int i = 0; i < INTERMEDIATES; i++) {
        char cn[32];
        snprintf(cn, sizeof cn, "cached int %d", i);
        ints[i] = gen(&(gen_opts){.cn = cn, .issuer = &root, .ca = true, .path_len = -1});
        leaves[i] = gen(&(gen_opts){.cn = "x.example", .issuer = &ints[i], .path_len = -1});
    }
    x509_chain_result r;
    x509_validator_stats s;
    for (int pass = 0; pass < 2; pass++) {
        x509_validator_stats_get(v, &s);
        uint64_t misses = s.issuer_cache_misses;
        for (int i = 0; i < INTERMEDIATES; i++) {
            test_chain c = {0};
            chain_add_gen(&c, &leaves[i]);
            chain_add_gen(&c, &ints[i]);
            expect_ok(v, &c, X509_ADD_CHAIN, &r);
            uint8_t fp[SHA256_LEN];
            sha256(ints[i].der, ints[i].len, fp);
            assert_memory_equal(r.fingerprints[0], fp, SHA256_LEN);
            chain_free(&c);
        }
        x509_validator_stats_get(v, &s);
        assert_int_equal(s.issuer_cache_capacity, 8);
        assert_true(s.issuer_cache_entries > 0 && s.issuer_cache_entries <= 8);
        assert_true(s.issuer_cache_evictions > 0);
        /* Eight remembered at most, so the second pass parses most again. */
        assert_true(s.issuer_cache_misses - misses >= INTERMEDIATES - 8);
    }
    /* The last one is still cached: a hit. */
    uint64_t hits = s.issuer_cache_hits;
    test_chain c = {0};
    chain_add_gen(&c, &leaves[INTERMEDIATES - 1]);
    chain_add_gen(&c, &ints[INTERMEDIATES - 1]);
    expect_ok(v, &c, X509_ADD_CHAIN, &r);
    chain_free(&c);
    x509_validator_stats_get(v, &s);
    assert_int_equal(s.issuer_cache_hits, hits + 1);
    for (int i = 0; i < INTERMEDIATES; i++) {
        gen_free(&ints[i]);
        gen_free(&leaves[i]);
    }
    x509_validator_free(v);
    x509_root_set_free(roots);
    gen_free(&root);
}

static void spki_hash_of(const gen_cert *g, uint8_t out[SHA256_LEN])
{
    unsigned char *der = NULL;
    int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(g->cert), &der);
    assert_true(len > 0);
    sha256(der, (size_t)len, out);
    OPENSSL_free(der);
}

/* Two intermediates with the same subject (different keys) share a cache set and are never
 * taken for each other: each is known by its whole DER's hash. Rejected chains do not fill
 * the cache. */
static void test_issuer_cache_same_subject_never_confused(void **state)
{
    (void)state;
    gen_cert root = gen(&(gen_opts){.cn = "twins root", .ca = true, .path_len = -1});
    gen_cert twin_a = gen(&(gen_opts){.cn = "twin ca", .issuer = &root, .ca = true,
                                      .path_len = -1});
    gen_cert twin_b = gen(&(gen_opts){.cn = "twin ca", .issuer = &root, .ca = true,
                                      .path_len = -1});
    gen_cert leaf_a = gen(&(gen_opts){.cn = "a.example", .issuer = &twin_a, .path_len = -1});
    gen_cert leaf_b = gen(&(gen_opts){.cn = "b.example", .issuer = &twin_b, .path_len = -1});
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(twin_a.cert),
                                   X509_get_subject_name(twin_b.cert)), 0);
    uint8_t fp_a[SHA256_LEN], fp_b[SHA256_LEN], key_a[SHA256_LEN], key_b[SHA256_LEN];
    sha256(twin_a.der, twin_a.len, fp_a);
    sha256(twin_b.der, twin_b.len, fp_b);
    spki_hash_of(&twin_a, key_a);
    spki_hash_of(&twin_b, key_b);
    x509_root_set *roots = roots_of_gen(&root);
    x509_validator_config cfg = {.roots = roots, .not_after_start = WIDE_START,
                                 .not_after_limit = WIDE_LIMIT, .issuer_cache_capacity = 1};
    x509_validator *v = x509_validator_new(&cfg, NULL);
    assert_non_null(v);
    x509_chain_result r;
    x509_validator_stats s;

    /* Cross pairs first: rejected, and nothing cached. */
    test_chain c = {0};
    chain_add_gen(&c, &leaf_a);
    chain_add_gen(&c, &twin_b);
    expect_reject(v, &c, X509_ADD_CHAIN, "chain[1] did not sign chain[0]");
    chain_free(&c);
    x509_validator_stats_get(v, &s);
    assert_int_equal(s.issuer_cache_entries, 0);

    for (int round = 0; round < 3; round++) {
        for (int k = 0; k < 2; k++) {
            const gen_cert *leaf = k ? &leaf_b : &leaf_a, *own = k ? &twin_b : &twin_a,
                           *other = k ? &twin_a : &twin_b;
            chain_add_gen(&c, leaf);
            chain_add_gen(&c, own);
            expect_ok(v, &c, X509_ADD_CHAIN, &r);
            assert_memory_equal(r.fingerprints[0], k ? fp_b : fp_a, SHA256_LEN);
            assert_memory_equal(r.issuer_key_hash, k ? key_b : key_a, SHA256_LEN);
            assert_ptr_equal(r.issuer.data, c.span[1].data);
            chain_add_gen(&c, &root);
            expect_ok(v, &c, X509_ADD_CHAIN, &r);
            assert_memory_equal(r.fingerprints[0], k ? fp_b : fp_a, SHA256_LEN);
            chain_free(&c);
            chain_add_gen(&c, leaf);
            chain_add_gen(&c, other);
            expect_reject(v, &c, X509_ADD_CHAIN, "chain[1] did not sign chain[0]");
            chain_add_gen(&c, &root);
            expect_reject(v, &c, X509_ADD_CHAIN, "chain[1] did not sign chain[0]");
            chain_free(&c);
        }
    }
    x509_validator_stats_get(v, &s);
    assert_int_equal(s.issuer_cache_capacity, 4);
    assert_int_equal(s.issuer_cache_entries, 2); /* the twins; roots are not cached */
    /* twin_b is looked up in vain until a chain through it is accepted: the first cross pair,
     * round 0's two cross pairs for leaf_a, and its own first acceptance; twin_a once. */
    assert_int_equal(s.issuer_cache_misses, 5);
    assert_int_equal(s.issuer_cache_evictions, 0);
    assert_true(s.issuer_cache_hits >= 20);
    x509_validator_free(v);
    x509_root_set_free(roots);
    gen_free(&leaf_a);
    gen_free(&leaf_b);
    gen_free(&twin_a);
    gen_free(&twin_b);
    gen_free(&root);
}

typedef struct churn_job {
    x509_validator *v;
    const gen_cert *ints, *leaves;
    int count, offset, failures;
} churn_job;

static void *churn_loop(void *arg)
{
    churn_job *job = arg;
    for (int i = 0; i < 150; i++) {
        int k = (i * 7 + job->offset) % job->count;
        x509_span chain[2] = {{job->leaves[k].der, job->leaves[k].len},
                              {job->ints[k].der, job->ints[k].len}};
        x509_chain_result r;
        error err = {{0}};
        uint8_t fp[SHA256_LEN];
        sha256(job->ints[k].der, job->ints[k].len, fp);
        if (x509_validate_chain(job->v, chain, 2, X509_ADD_CHAIN, &r, &err) != 0 ||
            memcmp(r.fingerprints[0], fp, SHA256_LEN) != 0)
            job->failures++;
        /* The wrong intermediate (same name pattern, other key) must never pass. */
        chain[1] = (x509_span){job->ints[(k + 1) % job->count].der,
                               job->ints[(k + 1) % job->count].len};
        if (x509_validate_chain(job->v, chain, 2, X509_ADD_CHAIN, &r, &err) == 0)
            job->failures++;
    }
    return NULL;
}

/* Threads evicting each other's issuers from a tiny cache while using them: references keep
 * evicted issuers alive (ASan would see a use after free), and every verdict stays right. */
static void test_issuer_cache_concurrent_churn(void **state)
{
    (void)state;
    enum { INTERMEDIATES = 12, THREADS = 4 };
    gen_cert root = gen(&(gen_opts){.cn = "churn root", .ca = true, .path_len = -1});
    static gen_cert ints[INTERMEDIATES], leaves[INTERMEDIATES];
    for (int i = 0; i < INTERMEDIATES; i++) {
        ints[i] = gen(&(gen_opts){.cn = "churn int", .issuer = &root, .ca = true,
                                  .path_len = -1});
        leaves[i] = gen(&(gen_opts){.cn = "churn.example", .issuer = &ints[i], .path_len = -1});
    }
    x509_root_set *roots = roots_of_gen(&root);
    x509_validator_config cfg = {.roots = roots, .not_after_start = WIDE_START,
                                 .not_after_limit = WIDE_LIMIT, .issuer_cache_capacity = 4,
                                 .link_cache_capacity = 4};
    x509_validator *v = x509_validator_new(&cfg, NULL);
    assert_non_null(v);
    pthread_t threads[THREADS];
    churn_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (churn_job){.v = v, .ints = ints, .leaves = leaves, .count = INTERMEDIATES,
                              .offset = i * 3};
        assert_int_equal(pthread_create(&threads[i], NULL, churn_loop, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(jobs[i].failures, 0);
    }
    x509_validator_stats s;
    x509_validator_stats_get(v, &s);
    assert_true(s.issuer_cache_entries <= 4);
    assert_true(s.issuer_cache_evictions > 0);
    x509_validator_free(v);
    x509_root_set_free(roots);
    for (int i = 0; i < INTERMEDIATES; i++) {
        gen_free(&ints[i]);
        gen_free(&leaves[i]);
    }
    gen_free(&root);
}

/* ---- cost ----------------------------------------------------------------------------- */

static double thread_cpu_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* CPU time of one warm validation (issuers and links cached: only the leaf is new work). */
static double warm_validation_us(x509_validator *v, const test_chain *c, int rounds)
{
    x509_chain_result r;
    for (int i = 0; i < 20; i++)
        expect_ok(v, c, X509_ADD_CHAIN, &r);
    double start = thread_cpu_us();
    for (int i = 0; i < rounds; i++)
        expect_ok(v, c, X509_ADD_CHAIN, &r);
    return (thread_cpu_us() - start) / rounds;
}

/* Prints, never asserts: timings belong in reports, not in pass/fail. */
static void test_bench_warm_validation(void **state)
{
    (void)state;
    x509_root_set *roots = roots_of("chains/ctgo/fake-ca.cert", NULL);
    x509_validator *v = validator_for(roots, WIDE_START, WIDE_LIMIT, 0);
    test_chain three = chain_of("chains/ctgo/leaf02.chain", NULL); /* leaf, int-ca, fake-ca */
    test_chain two = chain_of("chains/ctgo/leaf00.chain", NULL);   /* leaf, int-ca (+ root) */
    assert_int_equal(three.n, 3);
    assert_int_equal(two.n, 2);
    double us3 = warm_validation_us(v, &three, 500);
    double us2 = warm_validation_us(v, &two, 500);
    print_message("x509chain warm validation, ECDSA P-256 leaf: 3 certificates %.1f us, "
                  "2 certificates (root appended) %.1f us CPU each\n", us3, us2);
    chain_free(&three);
    chain_free(&two);
    x509_validator_free(v);
    x509_root_set_free(roots);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pem_parse_fixture),
        cmocka_unit_test(test_pem_rejects_junk),
        cmocka_unit_test(test_root_set),
        cmocka_unit_test(test_valid_chains_root_included_and_omitted),
        cmocka_unit_test(test_expired_and_other_algorithms_accepted),
        cmocka_unit_test(test_constrained_intermediates_accepted),
        cmocka_unit_test(test_precerts),
        cmocka_unit_test(test_poison_variants),
        cmocka_unit_test(test_leaf_eku),
        cmocka_unit_test(test_not_after_window),
        cmocka_unit_test(test_wrong_order_missing_and_extra),
        cmocka_unit_test(test_mismatching_signature_algorithm),
        cmocka_unit_test(test_precert_signing_certificate_rejected),
        cmocka_unit_test(test_cloudflare_cross_signed),
        cmocka_unit_test(test_ca_and_path_length),
        cmocka_unit_test(test_garbage_input),
        cmocka_unit_test(test_hostile_mutations),
        cmocka_unit_test(test_reasons_distinct),
        cmocka_unit_test(test_link_cache_warm_costs_one_verification),
        cmocka_unit_test(test_link_cache_bounded),
        cmocka_unit_test(test_concurrent_validation),
        cmocka_unit_test(test_leaf_reader_known_answers),
        cmocka_unit_test(test_leaf_names_decided_as_openssl_does),
        cmocka_unit_test(test_openssl_fallbacks),
        cmocka_unit_test(test_direct_and_reference_paths_agree),
        cmocka_unit_test(test_leaf_edge_cases_agree),
        cmocka_unit_test(test_issuer_cache_lifetime),
        cmocka_unit_test(test_issuer_cache_bounded),
        cmocka_unit_test(test_issuer_cache_same_subject_never_confused),
        cmocka_unit_test(test_issuer_cache_concurrent_churn),
        cmocka_unit_test(test_bench_warm_validation),
    };
    return cmocka_run_group_tests_name("x509chain", tests, NULL, NULL);
}
