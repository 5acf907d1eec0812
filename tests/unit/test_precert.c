/* der walker and precert surgery: DER length rules, TBS/SPKI extraction checked against
 * OpenSSL, poison removal on synthetic TBSs (compared with the TBS built without the poison,
 * across length-of-length boundaries), the ct-go test precert and all 1,024 navigli entries. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ct.h"
#include "der.h"
#include "precert.h"
#include "sha256.h"

/* --- DER walker --- */

static int parse_hex(const char *hex, buffer *b, der_tlv *t, error *err)
{
    buffer_reset(b);
    size_t n = strlen(hex) / 2;
    assert_int_equal(buffer_reserve(b, n + 1), 0);
    hex_or_fail(b->data, n, hex);
    b->len = n;
    der_reader r;
    der_reader_init(&r, b->data, b->len);
    int rc = der_read(&r, t, err);
    if (rc != 0) {
        /* A failed read leaves the reader where it was. */
        assert_ptr_equal(r.pos, b->data);
        assert_int_equal(r.left, n);
    }
    return rc;
}

static void test_der_lengths(void **state)
{
    (void)state;
    buffer b = {0};
    der_tlv t;
    error err = {{0}};
    assert_int_equal(parse_hex("020105", &b, &t, &err), 0);
    assert_int_equal(t.tag, DER_INTEGER);
    assert_int_equal(t.header_len, 2);
    assert_int_equal(t.len, 1);
    assert_int_equal(t.total_len, 3);
    assert_int_equal(t.content[0], 5);
    assert_int_equal(parse_hex("0500", &b, &t, &err), 0);
    assert_int_equal(t.len, 0);

    /* Long form, and every truncation of it. */
    buffer big = {0};
    assert_int_equal(der_put_header(&big, DER_OCTET_STRING, 300), 0);
    assert_int_equal(big.len, 4);
    assert_memory_equal(big.data, "\x04\x82\x01\x2c", 4);
    for (int i = 0; i < 300; i++)
        assert_int_equal(buffer_append_byte(&big, (uint8_t)i), 0);
    der_reader r;
    der_reader_init(&r, big.data, big.len);
    assert_int_equal(der_read(&r, &t, &err), 0);
    assert_int_equal(t.header_len, 4);
    assert_int_equal(t.len, 300);
    assert_ptr_equal(t.content, big.data + 4);
    assert_true(der_reader_empty(&r));
    for (size_t n = 0; n < big.len; n++) {
        der_reader_init(&r, big.data, n);
        assert_int_equal(der_read(&r, &t, &err), -1);
        assert_int_equal(r.left, n);
    }
    buffer_free(&big);

    static const struct {
        const char *hex;
        const char *reason;
    } bad[] = {
        {"04810500000000", "non-minimal"},   /* long form for 5 */
        {"04817f", "non-minimal"},           /* long form for 127 */
        {"0482007f", "non-minimal"},         /* leading zero, and < 128 */
        {"048200ff", "non-minimal"},         /* leading zero */
        {"04830001ff", "non-minimal"},       /* leading zero */
        {"30800500 0000", "indefinite"},
        {"04850000000001", "too long"},
        {"1f0100", "high tag"},
        {"04", "truncated"},
        {"0482", "truncated"},
        {"048201", "truncated"},
        {"040201", "past the end"},
        {"0481ff00", "past the end"},
        {"", "truncated"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char hex[64];
        size_t k = 0;
        for (const char *p = bad[i].hex; *p; p++)
            if (*p != ' ')
                hex[k++] = *p;
        hex[k] = 0;
        assert_int_equal(parse_hex(hex, &b, &t, &err), -1);
        if (!strstr(err.msg, bad[i].reason))
            fail_msg("case %zu (%s): %s", i, bad[i].hex, err.msg);
    }

    /* Minimal headers round-trip at every length-of-length boundary. */
    static const size_t lengths[] = {0, 1, 127, 128, 255, 256, 65535, 65536, 16777215, 16777216};
    static const size_t header_lens[] = {2, 2, 2, 3, 3, 4, 4, 5, 5, 6};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        buffer h = {0};
        assert_int_equal(der_put_header(&h, DER_SEQUENCE, lengths[i]), 0);
        assert_int_equal(h.len, header_lens[i]);
        assert_int_equal(der_header_len(lengths[i]), header_lens[i]);
        /* Parse the header alone against a fake length: content needs lengths[i] bytes. */
        assert_int_equal(buffer_reserve(&h, lengths[i]), 0);
        memset(h.data + h.len, 0, lengths[i]);
        der_reader_init(&r, h.data, h.len + lengths[i]);
        assert_int_equal(der_read(&r, &t, &err), 0);
        assert_int_equal(t.len, lengths[i]);
        assert_int_equal(t.header_len, header_lens[i]);
        assert_true(der_reader_empty(&r));
        buffer_free(&h);
    }

    /* parse_whole: exactly one element of the right tag. */
    static const uint8_t two[] = {0x05, 0x00, 0x05, 0x00};
    assert_int_equal(der_parse_whole(two, 2, DER_NULL, &t, &err), 0);
    assert_int_equal(der_parse_whole(two, 4, DER_NULL, &t, &err), -1);
    assert_non_null(strstr(err.msg, "trailing"));
    assert_int_equal(der_parse_whole(two, 2, DER_SEQUENCE, &t, &err), -1);
    assert_non_null(strstr(err.msg, "expected tag 0x30"));
    der_reader_init(&r, two, 4);
    assert_int_equal(der_read_optional(&r, DER_SEQUENCE, &t, &err), 0);
    assert_int_equal(der_read_optional(&r, DER_NULL, &t, &err), 1);
    assert_int_equal(der_read_optional(&r, DER_NULL, &t, &err), 1);
    assert_int_equal(der_read_optional(&r, DER_NULL, &t, &err), 0);
    assert_int_equal(der_read_expect(&r, DER_NULL, &t, &err), -1);
    buffer_free(&b);
}

/* --- TBS / SPKI extraction --- */

static void test_tbs_and_spki_match_openssl(void **state)
{
    (void)state;
    static const char *const files[] = {"rfc6962-vectors/ca-cert.pem",
                                        "rfc6962-vectors/test-cert.pem",
                                        "rfc6962-vectors/test-precert.pem",
                                        "rfc6962-vectors/test-embedded-cert.pem",
                                        "chains/azul/cloudflare.pem",
                                        "chains/azul/p521-ecdsa-leaf-cert.pem"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        buffer der = {0};
        pem_der_or_fail(files[i], &der);
        const unsigned char *p = der.data;
        X509 *x = d2i_X509(NULL, &p, (long)der.len);
        assert_non_null(x);
        error err = {{0}};
        der_tlv tbs, spki;
        if (cert_tbs(der.data, der.len, &tbs, &err) != 0 ||
            cert_spki(der.data, der.len, &spki, &err) != 0)
            fail_msg("%s: %s", files[i], err.msg);
        unsigned char *enc = NULL;
        int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &enc);
        assert_int_equal((size_t)n, spki.total_len);
        assert_memory_equal(enc, spki.start, spki.total_len);
        OPENSSL_free(enc);
        enc = NULL;
        n = i2d_re_X509_tbs(x, &enc);
        assert_int_equal((size_t)n, tbs.total_len);
        assert_memory_equal(enc, tbs.start, tbs.total_len);
        OPENSSL_free(enc);

        uint8_t want[32], got[32];
        sha256(spki.start, spki.total_len, want);
        assert_int_equal(precert_issuer_key_hash(der.data, der.len, got, &err), 0);
        assert_memory_equal(got, want, 32);
        X509_free(x);
        buffer_free(&der);
    }
}

/* --- Poison removal on synthetic TBSs --- */

static void put_tlv(buffer *b, uint8_t tag, const void *content, size_t len)
{
    assert_int_equal(der_put_header(b, tag, len), 0);
    assert_int_equal(buffer_append(b, content, len), 0);
}

static void wrap(buffer *b, uint8_t tag)
{
    buffer w = {0};
    put_tlv(&w, tag, b->data, b->len);
    buffer_free(b);
    *b = w;
}

/* A TBSCertificate with a subject padded by `pad` bytes and the given extensions
 * (concatenated Extension TLVs; NULL for no [3] at all). */
static void build_tbs(buffer *out, size_t pad, const buffer *extensions)
{
    buffer body = {0}, part = {0};
    static const uint8_t version[] = {0x02, 0x01, 0x02};
    put_tlv(&body, DER_CONTEXT_CONSTRUCTED(0), version, sizeof version);
    put_tlv(&body, DER_INTEGER, "\x01", 1);
    static const uint8_t alg[] = {0x06, 0x03, 0x2a, 0x03, 0x04};
    put_tlv(&body, DER_SEQUENCE, alg, sizeof alg);
    put_tlv(&body, DER_SEQUENCE, NULL, 0);
    put_tlv(&body, DER_SEQUENCE, NULL, 0);
    uint8_t *padding = calloc(1, pad + 1);
    put_tlv(&part, DER_OCTET_STRING, padding, pad);
    free(padding);
    put_tlv(&body, DER_SEQUENCE, part.data, part.len);
    static const uint8_t spki[] = {0x30, 0x05, 0x06, 0x03, 0x2a, 0x03, 0x05,
                                   0x03, 0x02, 0x00, 0x00};
    put_tlv(&body, DER_SEQUENCE, spki, sizeof spki);
    if (extensions) {
        buffer_reset(&part);
        put_tlv(&part, DER_SEQUENCE, extensions->data, extensions->len);
        put_tlv(&body, DER_CONTEXT_CONSTRUCTED(3), part.data, part.len);
    }
    wrap(&body, DER_SEQUENCE);
    buffer_reset(out);
    assert_int_equal(buffer_append(out, body.data, body.len), 0);
    buffer_free(&body);
    buffer_free(&part);
}

static void build_cert(buffer *out, const buffer *tbs)
{
    buffer body = {0};
    assert_int_equal(buffer_append(&body, tbs->data, tbs->len), 0);
    static const uint8_t alg[] = {0x06, 0x03, 0x2a, 0x03, 0x04};
    put_tlv(&body, DER_SEQUENCE, alg, sizeof alg);
    put_tlv(&body, DER_BIT_STRING, "\x00\x01", 2);
    wrap(&body, DER_SEQUENCE);
    buffer_reset(out);
    assert_int_equal(buffer_append(out, body.data, body.len), 0);
    buffer_free(&body);
}

static const uint8_t canonical_poison[21] = {0x30, 0x13, 0x06, 0x0a, 0x2b, 0x06, 0x01,
                                             0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x03,
                                             0x01, 0x01, 0xff, 0x04, 0x02, 0x05, 0x00};

static void put_other_extension(buffer *b, uint8_t id, size_t value_len)
{
    buffer ext = {0};
    static const uint8_t oid[] = {0x06, 0x03, 0x55, 0x1d, 0x00};
    assert_int_equal(buffer_append(&ext, oid, sizeof oid), 0);
    ext.data[4] = id;
    uint8_t *value = malloc(value_len + 1);
    memset(value, id, value_len);
    put_tlv(&ext, DER_OCTET_STRING, value, value_len);
    free(value);
    put_tlv(b, DER_SEQUENCE, ext.data, ext.len);
    buffer_free(&ext);
}

/* Removing the poison from the TBS with `poison_at` gives the TBS built without it. */
static void check_removal(size_t pad, size_t value_len, int poison_at)
{
    buffer with = {0}, without = {0}, tbs_with = {0}, tbs_without = {0}, cert = {0}, got = {0};
    for (int i = 0; i < 3; i++) {
        if (i == poison_at)
            assert_int_equal(buffer_append(&with, canonical_poison, sizeof canonical_poison), 0);
        put_other_extension(&with, (uint8_t)(0x0e + i), i == 1 ? value_len : 3);
        put_other_extension(&without, (uint8_t)(0x0e + i), i == 1 ? value_len : 3);
    }
    if (poison_at == 3)
        assert_int_equal(buffer_append(&with, canonical_poison, sizeof canonical_poison), 0);
    build_tbs(&tbs_with, pad, &with);
    build_tbs(&tbs_without, pad, &without);
    build_cert(&cert, &tbs_with);
    precert_poison poison = {false, false};
    error err = {{0}};
    if (precert_tbs_for_log(cert.data, cert.len, &got, &poison, &err) != 0)
        fail_msg("pad %zu value %zu at %d: %s", pad, value_len, poison_at, err.msg);
    assert_true(poison.critical);
    assert_true(poison.value_is_null);
    if (got.len != tbs_without.len || memcmp(got.data, tbs_without.data, got.len) != 0)
        fail_msg("pad %zu value %zu at %d: surgery differs", pad, value_len, poison_at);
    buffer_free(&with);
    buffer_free(&without);
    buffer_free(&tbs_with);
    buffer_free(&tbs_without);
    buffer_free(&cert);
    buffer_free(&got);
}

static void test_poison_removal_synthetic(void **state)
{
    (void)state;
    /* Sizes chosen so the Extensions SEQUENCE, the [3] wrapper and the TBS each cross the
     * 128 and 256 byte boundaries (the length-of-length shrinks) in some combination. */
    for (int at = 0; at <= 3; at++)
        for (size_t value = 60; value <= 120; value += 1)
            check_removal(10, value, at);
    for (size_t pad = 0; pad <= 320; pad++)
        check_removal(pad, 90, 1);
    check_removal(65000, 40000, 2);
}

static void test_poison_removal_failures(void **state)
{
    (void)state;
    buffer exts = {0}, tbs = {0}, cert = {0}, out = {0};
    error err = {{0}};

    /* Zero times. */
    put_other_extension(&exts, 0x0e, 3);
    build_tbs(&tbs, 0, &exts);
    build_cert(&cert, &tbs);
    assert_int_equal(precert_tbs_for_log(cert.data, cert.len, &out, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "not found"));
    /* Twice. */
    assert_int_equal(buffer_append(&exts, canonical_poison, sizeof canonical_poison), 0);
    assert_int_equal(buffer_append(&exts, canonical_poison, sizeof canonical_poison), 0);
    build_tbs(&tbs, 0, &exts);
    build_cert(&cert, &tbs);
    assert_int_equal(precert_tbs_for_log(cert.data, cert.len, &out, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "2 times"));
    /* The only extension. */
    buffer_reset(&exts);
    assert_int_equal(buffer_append(&exts, canonical_poison, sizeof canonical_poison), 0);
    build_tbs(&tbs, 0, &exts);
    build_cert(&cert, &tbs);
    assert_int_equal(precert_tbs_for_log(cert.data, cert.len, &out, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "only one"));
    /* No extensions at all. */
    build_tbs(&tbs, 0, NULL);
    build_cert(&cert, &tbs);
    assert_int_equal(precert_tbs_for_log(cert.data, cert.len, &out, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no extensions"));
    /* An Extension missing its value. */
    buffer_reset(&exts);
    put_other_extension(&exts, 0x0e, 3);
    static const uint8_t broken[] = {0x30, 0x05, 0x06, 0x03, 0x55, 0x1d, 0x0f};
    assert_int_equal(buffer_append(&exts, broken, sizeof broken), 0);
    assert_int_equal(buffer_append(&exts, canonical_poison, sizeof canonical_poison), 0);
    build_tbs(&tbs, 0, &exts);
    build_cert(&cert, &tbs);
    assert_int_equal(precert_tbs_for_log(cert.data, cert.len, &out, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "extnValue"));
    assert_int_equal(out.len, 0);

    /* A non-critical poison, and one whose value is not NULL, are removed and reported. */
    static const uint8_t lax_poison[] = {0x30, 0x11, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01,
                                         0xd6, 0x79, 0x02, 0x04, 0x03, 0x04, 0x03, 0x04,
                                         0x01, 0x00};
    buffer_reset(&exts);
    put_other_extension(&exts, 0x0e, 3);
    assert_int_equal(buffer_append(&exts, lax_poison, sizeof lax_poison), 0);
    build_tbs(&tbs, 0, &exts);
    build_cert(&cert, &tbs);
    precert_poison poison = {true, true};
    assert_int_equal(precert_tbs_for_log(cert.data, cert.len, &out, &poison, &err), 0);
    assert_false(poison.critical);
    assert_false(poison.value_is_null);
    buffer_free(&exts);
    buffer_free(&tbs);
    buffer_free(&cert);
    buffer_free(&out);
}

/* --- Real precertificates --- */

static void test_rfc6962_precert(void **state)
{
    (void)state;
    buffer precert = {0}, cert = {0}, tbs = {0}, copy = {0};
    pem_der_or_fail("rfc6962-vectors/test-precert.pem", &precert);
    pem_der_or_fail("rfc6962-vectors/test-cert.pem", &cert);
    error err = {{0}};
    precert_poison poison;
    assert_int_equal(precert_tbs_for_log(precert.data, precert.len, &tbs, &poison, &err), 0);
    assert_true(poison.critical && poison.value_is_null);
    der_tlv original;
    assert_int_equal(cert_tbs(precert.data, precert.len, &original, &err), 0);
    assert_int_equal(tbs.len, original.total_len - sizeof canonical_poison);
    /* The result is a well-formed TBS whose SPKI is the precert's. */
    der_tlv stripped, spki_a, spki_b;
    assert_int_equal(der_parse_whole(tbs.data, tbs.len, DER_SEQUENCE, &stripped, &err), 0);
    assert_int_equal(tbs_spki(&stripped, &spki_a, &err), 0);
    assert_int_equal(tbs_spki(&original, &spki_b, &err), 0);
    assert_int_equal(spki_a.total_len, spki_b.total_len);
    assert_memory_equal(spki_a.start, spki_b.start, spki_a.total_len);
    /* Removing again finds no poison. */
    buffer again = {0};
    assert_int_equal(tbs_remove_extension(tbs.data, tbs.len, precert_poison_oid,
                                          sizeof precert_poison_oid, &again, NULL, &err), -1);
    buffer_free(&again);

    /* A certificate without extensions is no precertificate. */
    size_t before = tbs.len;
    assert_int_equal(precert_tbs_for_log(cert.data, cert.len, &tbs, NULL, &err), -1);
    assert_int_equal(tbs.len, before);

    /* Every truncation, a trailing byte, and a non-minimal outer length fail cleanly. */
    for (size_t n = 0; n < precert.len; n++) {
        buffer out = {0};
        assert_int_equal(precert_tbs_for_log(precert.data, n, &out, NULL, &err), -1);
        assert_int_equal(out.len, 0);
        buffer_free(&out);
    }
    assert_int_equal(buffer_append(&copy, precert.data, precert.len), 0);
    assert_int_equal(buffer_append_byte(&copy, 0), 0);
    assert_int_equal(precert_tbs_for_log(copy.data, copy.len, &tbs, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "trailing"));
    buffer_reset(&copy);
    assert_int_equal(precert.data[1], 0x82); /* re-spell the outer length with 3 octets */
    assert_int_equal(buffer_append(&copy, "\x30\x83\x00", 3), 0);
    assert_int_equal(buffer_append(&copy, precert.data + 2, precert.len - 2), 0);
    assert_int_equal(precert_tbs_for_log(copy.data, copy.len, &tbs, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "non-minimal"));
    buffer_free(&precert);
    buffer_free(&cert);
    buffer_free(&tbs);
    buffer_free(&copy);
}

/* Precertificates from other CT implementations' fixtures: each has one canonical poison,
 * and the surgery output is a TBS with the same fields minus exactly those 21 bytes. */
static void test_fixture_precerts(void **state)
{
    (void)state;
    static const char *const files[] = {
        "chains/azul/precert-valid.pem",
        "chains/azul/preissuer-chain.pem",
        "chains/azul/real-precert-with-eku.pem",
        "chains/tesseract/test_leaf_pre_cert_signed_by_intermediate.pem",
        "chains/tesseract/test_leaf_pre_cert_signed_by_pre_intermediate.pem",
        "chains/tesseract/test_leaf_pre_cert_signed_by_root.pem",
        "chains/ctgo/subleaf-pre.cert",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        buffer der = {0}, tbs = {0}, again = {0};
        pem_der_or_fail(files[i], &der);
        error err = {{0}};
        precert_poison poison = {false, false};
        if (precert_tbs_for_log(der.data, der.len, &tbs, &poison, &err) != 0)
            fail_msg("%s: %s", files[i], err.msg);
        assert_true(poison.critical && poison.value_is_null);
        der_tlv original, stripped, spki_a, spki_b;
        assert_int_equal(cert_tbs(der.data, der.len, &original, &err), 0);
        assert_int_equal(der_parse_whole(tbs.data, tbs.len, DER_SEQUENCE, &stripped, &err), 0);
        /* The 21 canonical bytes go; at most two length octets can shrink with them. */
        assert_true(tbs.len <= original.total_len - sizeof canonical_poison);
        assert_true(tbs.len + 2 >= original.total_len - sizeof canonical_poison);
        assert_non_null(memmem(original.start, original.total_len, canonical_poison,
                               sizeof canonical_poison));
        assert_null(memmem(tbs.data, tbs.len, canonical_poison, sizeof canonical_poison));
        assert_int_equal(tbs_spki(&stripped, &spki_a, &err), 0);
        assert_int_equal(tbs_spki(&original, &spki_b, &err), 0);
        assert_int_equal(spki_a.total_len, spki_b.total_len);
        assert_memory_equal(spki_a.start, spki_b.start, spki_a.total_len);
        assert_int_equal(tbs_remove_extension(tbs.data, tbs.len, precert_poison_oid,
                                              sizeof precert_poison_oid, &again, NULL, &err), -1);
        assert_non_null(strstr(err.msg, "not found"));
        buffer_free(&der);
        buffer_free(&tbs);
        buffer_free(&again);
    }
}

static void test_navigli_surgery(void **state)
{
    (void)state;
    buffer tile = {0}, tbs = {0};
    size_t total = 0;
    for (int n = 0; n < 4; n++) {
        char path[64];
        snprintf(path, sizeof path, "navigli2025h2/tile/data/%03d", n);
        buffer_reset(&tile);
        read_file_or_fail(testdata_path(path), &tile);
        ct_data_tile_iter it;
        ct_data_tile_iter_init(&it, tile.data, tile.len);
        ct_entry e;
        error err = {{0}};
        int rc;
        while ((rc = ct_data_tile_next(&it, &e, &err)) == 1) {
            buffer_reset(&tbs);
            precert_poison poison = {false, false};
            if (precert_tbs_for_log(e.pre_certificate, e.pre_certificate_len, &tbs, &poison,
                                    &err) != 0)
                fail_msg("entry %zu: %s", total, err.msg);
            assert_true(poison.critical && poison.value_is_null);
            assert_int_equal(tbs.len, e.cert_or_tbs_len);
            assert_memory_equal(tbs.data, e.cert_or_tbs, tbs.len);
            total++;
        }
        assert_int_equal(rc, 0);
    }
    assert_int_equal(total, 1024);
    buffer_free(&tile);
    buffer_free(&tbs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_der_lengths),
        cmocka_unit_test(test_tbs_and_spki_match_openssl),
        cmocka_unit_test(test_poison_removal_synthetic),
        cmocka_unit_test(test_poison_removal_failures),
        cmocka_unit_test(test_rfc6962_precert),
        cmocka_unit_test(test_fixture_precerts),
        cmocka_unit_test(test_navigli_surgery),
    };
    return cmocka_run_group_tests_name("precert", tests, NULL, NULL);
}
