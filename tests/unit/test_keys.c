/* keys and rfc6979: RFC 6979 known answers, determinism, OpenSSL cross-verification, RFC 6962
 * SCT verification, RSA DigitallySigned, PEM/SPKI round trips. */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "base64.h"
#include "keys.h"
#include "rfc6979.h"
#include "sha256.h"
#include "tls_codec.h"

/* RFC 6979 appendix A.2.5: the P-256 key and, for SHA-256, the nonces and signatures. */
#define A25_X "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721"
#define A25_UX "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
#define A25_UY "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299"

static const struct {
    const char *msg, *k, *r, *s;
} a25_sha256[] = {
    {"sample", "A6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60",
     "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716",
     "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"},
    {"test", "D16B6AE827F17175E040871A1C7EC3500192C4C92677336EC2537ACAEE0008E0",
     "F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367",
     "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083"},
    /* C2SP CCTV rfc6979 vector, same key: the first candidate k is >= q and is rejected, so
     * this exercises the §3.2 step h.3 retry. */
    {"wv[vnX", "2AE40DF9D9DAB61D688DE3DCB9867A98ECC70DD4D6C0F6C228B6E4E0B18B29BC",
     "EFD9073B652E76DA1B5A019C0E4A2E3FA529B035A6ABB91EF67F0ED7A1F21234",
     "3DB4706C9D9F4A4FE13BB5E08EF0FAB53A57DBAB2061C83A35FA411C68D2BA33"},
};

static BIGNUM *bn_hex(const char *hex)
{
    BIGNUM *bn = NULL;
    assert_true(BN_hex2bn(&bn, hex) > 0);
    return bn;
}

static void assert_bn_equal(const BIGNUM *got, const char *want_hex)
{
    BIGNUM *want = bn_hex(want_hex);
    if (BN_cmp(got, want) != 0) {
        char *g = BN_bn2hex(got);
        print_error("got  %s\nwant %s\n", g, want_hex);
        OPENSSL_free(g);
        BN_free(want);
        fail();
    }
    BN_free(want);
}

/* SEC1 "EC PRIVATE KEY" PEM for P-256 from the private scalar and the public point. */
static void sec1_pem(buffer *pem, const char *x_hex, const char *ux_hex, const char *uy_hex)
{
    static const uint8_t head[] = {0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20};
    static const uint8_t mid[] = {0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
                                  0x03, 0x01, 0x07, 0xa1, 0x44, 0x03, 0x42, 0x00, 0x04};
    uint8_t der[121];
    size_t n = 0;
    memcpy(der, head, sizeof head), n += sizeof head;
    hex_or_fail(der + n, 32, x_hex), n += 32;
    memcpy(der + n, mid, sizeof mid), n += sizeof mid;
    hex_or_fail(der + n, 32, ux_hex), n += 32;
    hex_or_fail(der + n, 32, uy_hex), n += 32;
    assert_int_equal(n, sizeof der);
    buffer b64 = {0};
    assert_int_equal(base64_encode(&b64, der, sizeof der), 0);
    assert_int_equal(buffer_append_str(pem, "-----BEGIN EC PRIVATE KEY-----\n"), 0);
    for (size_t i = 0; i < b64.len; i += 64) {
        size_t m = b64.len - i < 64 ? b64.len - i : 64;
        assert_int_equal(buffer_append(pem, b64.data + i, m), 0);
        assert_int_equal(buffer_append_byte(pem, '\n'), 0);
    }
    assert_int_equal(buffer_append_str(pem, "-----END EC PRIVATE KEY-----\n"), 0);
    buffer_free(&b64);
}

/* OpenSSL's own verifier, independent of digitally_signed_verify. */
static int openssl_verify(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t *sig,
                          size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
    int ok = EVP_DigestVerify(ctx, sig, sig_len, msg, len);
    EVP_MD_CTX_free(ctx);
    return ok;
}

static void test_rfc6979_a25_known_answers(void **state)
{
    (void)state;
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    BIGNUM *x = bn_hex(A25_X);
    error err = {0};
    rfc6979_key *key = rfc6979_key_new(group, x, &err);
    assert_non_null(key);

    for (size_t i = 0; i < sizeof a25_sha256 / sizeof a25_sha256[0]; i++) {
        uint8_t h[SHA256_LEN];
        sha256(a25_sha256[i].msg, strlen(a25_sha256[i].msg), h);
        BIGNUM *k = BN_new(), *r = BN_new(), *s = BN_new();
        assert_int_equal(rfc6979_sign_rs(key, h, sizeof h, r, s, k, &err), 0);
        assert_bn_equal(k, a25_sha256[i].k);
        assert_bn_equal(r, a25_sha256[i].r);
        assert_bn_equal(s, a25_sha256[i].s);

        /* rfc6979_sign's DER carries exactly these r and s. */
        buffer der = {0};
        assert_int_equal(rfc6979_sign(key, h, sizeof h, &der, &err), 0);
        const unsigned char *p = der.data;
        ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der.len);
        assert_non_null(sig);
        assert_ptr_equal(p, der.data + der.len);
        assert_int_equal(BN_cmp(ECDSA_SIG_get0_r(sig), r), 0);
        assert_int_equal(BN_cmp(ECDSA_SIG_get0_s(sig), s), 0);
        ECDSA_SIG_free(sig);
        buffer_free(&der);
        BN_free(k), BN_free(r), BN_free(s);
    }
    rfc6979_key_free(key);
    BN_free(x);
    EC_GROUP_free(group);
}

/* The same vectors through the whole stack: SEC1 PEM -> log_signer -> DigitallySigned. */
static void test_log_signer_a25_from_sec1_pem(void **state)
{
    (void)state;
    buffer pem = {0};
    sec1_pem(&pem, A25_X, A25_UX, A25_UY);
    error err = {0};
    EVP_PKEY *key = private_key_parse_pem((const char *)pem.data, pem.len, &err);
    assert_non_null(key);
    assert_int_equal(key_kind_of(key), KEY_KIND_EC_P256);
    log_signer *signer = log_signer_new(key, &err);
    assert_non_null(signer);

    for (size_t i = 0; i < sizeof a25_sha256 / sizeof a25_sha256[0]; i++) {
        const uint8_t *msg = (const uint8_t *)a25_sha256[i].msg;
        size_t len = strlen(a25_sha256[i].msg);
        buffer out = {0};
        assert_int_equal(log_signer_sign(signer, msg, len, &out, &err), 0);
        digitally_signed ds;
        assert_int_equal(digitally_signed_parse(out.data, out.len, &ds, &err), 0);
        assert_int_equal(ds.hash_alg, DS_HASH_SHA256);
        assert_int_equal(ds.sig_alg, DS_SIG_ECDSA);
        assert_int_equal(out.len, 4 + ds.sig_len);
        assert_true(out.len <= DS_ECDSA_P256_MAX);
        const unsigned char *p = ds.sig;
        ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)ds.sig_len);
        assert_non_null(sig);
        assert_bn_equal(ECDSA_SIG_get0_r(sig), a25_sha256[i].r);
        assert_bn_equal(ECDSA_SIG_get0_s(sig), a25_sha256[i].s);
        ECDSA_SIG_free(sig);
        assert_int_equal(openssl_verify(key, msg, len, ds.sig, ds.sig_len), 1);
        assert_int_equal(digitally_signed_verify(log_signer_public_key(signer), msg, len, &ds, &err), 0);
        buffer_free(&out);
    }
    log_signer_free(signer);
    EVP_PKEY_free(key);
    buffer_free(&pem);
}

/* The module is generic: RFC 6979 A.2.6 (P-384) and A.2.7 (P-521, whose qlen is not a
 * multiple of 8, so bits2int shifts) with SHA-256 and message "sample". */
static void test_rfc6979_other_curves(void **state)
{
    (void)state;
    static const struct {
        int nid;
        const char *x, *k, *r, *s;
    } cases[] = {
        {NID_secp384r1,
         "6B9D3DAD2E1B8C1C05B19875B6659F4DE23C3B667BF297BA9AA47740787137D896D5724E4C70A825F872C9EA60D2EDF5",
         "180AE9F9AEC5438A44BC159A1FCB277C7BE54FA20E7CF404B490650A8ACC414E375572342863C899F9F2EDF9747A9B60",
         "21B13D1E013C7FA1392D03C5F99AF8B30C570C6F98D4EA8E354B63A21D3DAA33BDE1E888E63355D92FA2B3C36D8FB2CD",
         "F3AA443FB107745BF4BD77CB3891674632068A10CA67E3D45DB2266FA7D1FEEBEFDC63ECCD1AC42EC0CB8668A4FA0AB0"},
        {NID_secp521r1,
         "0FAD06DAA62BA3B25D2FB40133DA757205DE67F5BB0018FEE8C86E1B68C7E75CAA896EB32F1F47C70855836A6D16FCC1466F6D8FBEC67DB89EC0C08B0E996B83538",
         "0EDF38AFCAAECAB4383358B34D67C9F2216C8382AAEA44A3DAD5FDC9C32575761793FEF24EB0FC276DFC4F6E3EC476752F043CF01415387470BCBD8678ED2C7E1A0",
         "1511BB4D675114FE266FC4372B87682BAECC01D3CC62CF2303C92B3526012659D16876E25C7C1E57648F23B73564D67F61C6F14D527D54972810421E7D87589E1A7",
         "04A171143A83163D6DF460AAF61522695F207A58B95C0644D87E52AA1A347916E4F7A72930B1BC06DBE22CE3F58264AFD23704CBB63B29B931F7DE6C9D949A7ECFC"},
    };
    uint8_t h[SHA256_LEN];
    sha256("sample", 6, h);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        EC_GROUP *group = EC_GROUP_new_by_curve_name(cases[i].nid);
        BIGNUM *x = bn_hex(cases[i].x), *k = BN_new(), *r = BN_new(), *s = BN_new();
        error err = {0};
        rfc6979_key *key = rfc6979_key_new(group, x, &err);
        assert_non_null(key);
        assert_int_equal(rfc6979_sign_rs(key, h, sizeof h, r, s, k, &err), 0);
        assert_bn_equal(k, cases[i].k);
        assert_bn_equal(r, cases[i].r);
        assert_bn_equal(s, cases[i].s);
        buffer der = {0};
        assert_int_equal(rfc6979_sign(key, h, sizeof h, &der, &err), 0);
        assert_true(der.len <= ECDSA_DER_MAX);
        const unsigned char *p = der.data;
        ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der.len);
        assert_non_null(sig);
        assert_ptr_equal(p, der.data + der.len);
        assert_int_equal(BN_cmp(ECDSA_SIG_get0_s(sig), s), 0);
        ECDSA_SIG_free(sig);
        buffer_free(&der);
        rfc6979_key_free(key);
        BN_free(x), BN_free(k), BN_free(r), BN_free(s);
        EC_GROUP_free(group);
    }
}

static void test_mismatched_sec1_public_key_is_refused(void **state)
{
    (void)state;
    /* The A.2.5 private scalar with the generator as its "public key". */
    buffer pem = {0};
    sec1_pem(&pem, A25_X, "6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296",
             "4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5");
    error err = {0};
    EVP_PKEY *key = private_key_parse_pem((const char *)pem.data, pem.len, &err);
    /* OpenSSL loads it as is; the signer's self-test is what notices. */
    assert_non_null(key);
    assert_null(log_signer_new(key, &err));
    assert_non_null(strstr(err.msg, "does not match"));
    EVP_PKEY_free(key);
    buffer_free(&pem);
}

static void test_signing_is_deterministic_and_verifies(void **state)
{
    (void)state;
    error err = {0};
    EVP_PKEY *key = private_key_generate(KEY_KIND_EC_P256, &err);
    assert_non_null(key);
    log_signer *signer = log_signer_new(key, &err);
    assert_non_null(signer);
    uint8_t msg[300];
    for (int i = 0; i < 200; i++) {
        size_t len = (size_t)i * 3 % sizeof msg;
        assert_int_equal(RAND_bytes(msg, sizeof msg), 1);
        buffer a = {0}, b = {0};
        assert_int_equal(log_signer_sign(signer, msg, len, &a, &err), 0);
        assert_int_equal(log_signer_sign(signer, msg, len, &b, &err), 0);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        digitally_signed ds;
        assert_int_equal(digitally_signed_parse(a.data, a.len, &ds, &err), 0);
        assert_int_equal(openssl_verify(key, msg, len, ds.sig, ds.sig_len), 1);
        assert_int_equal(digitally_signed_verify(key, msg, len, &ds, &err), 0);
        /* A different message must not verify. */
        msg[len / 2] ^= 1;
        assert_int_equal(digitally_signed_verify(key, msg, len + (len == 0), &ds, &err), -1);
        buffer_free(&a);
        buffer_free(&b);
    }
    log_signer_free(signer);
    EVP_PKEY_free(key);
}

/* ct-go's test-cert SCT: the LogID of log-public-key.pem and the ECDSA DigitallySigned over
 * the x509 signed data (RFC 6962 §3.2) both check out. */
static void test_rfc6962_log_id_and_sct_signature(void **state)
{
    (void)state;
    error err = {0};
    EVP_PKEY *pub = public_key_load_pem(testdata_path("rfc6962-vectors/log-public-key.pem"), &err);
    assert_non_null(pub);
    assert_int_equal(key_kind_of(pub), KEY_KIND_EC_P256);

    buffer vectors = {0};
    read_file_or_fail(testdata_path("rfc6962-vectors/vectors.txt"), &vectors);
    assert_int_equal(buffer_terminate(&vectors), 0);
    const char *line = strstr((const char *)vectors.data, "\nsct-test-cert ");
    assert_non_null(line);
    line += strlen("\nsct-test-cert ");
    size_t hex_len = strcspn(line, "\n");
    uint8_t sct[256];
    assert_true(hex_len % 2 == 0 && hex_len / 2 <= sizeof sct);
    assert_int_equal(hex_decode(sct, hex_len / 2, line, hex_len), 0);

    uint8_t log_id[LOG_ID_LEN];
    assert_int_equal(public_key_log_id(pub, log_id, &err), 0);
    assert_memory_equal(log_id, sct + 1, LOG_ID_LEN);
    char log_id_hex[65];
    hex_encode(log_id_hex, log_id, sizeof log_id);
    assert_true(strncmp(log_id_hex, "df1c2ec1", 8) == 0);
    assert_string_equal(log_id_hex + 56, "3f74d764");

    /* SCT: version(1) log_id(32) timestamp(8) extensions(2+0) DigitallySigned. */
    tls_reader r;
    tls_reader_init(&r, sct, hex_len / 2);
    uint8_t version;
    const uint8_t *id;
    uint64_t timestamp;
    const uint8_t *ext;
    size_t ext_len;
    digitally_signed ds;
    assert_int_equal(tls_get_u8(&r, &version), 0);
    assert_int_equal(tls_get_bytes(&r, LOG_ID_LEN, &id), 0);
    assert_int_equal(tls_get_u64(&r, &timestamp), 0);
    assert_int_equal(tls_get_vec(&r, 2, &ext, &ext_len), 0);
    assert_int_equal(digitally_signed_read(&r, &ds, &err), 0);
    assert_true(tls_reader_empty(&r));

    FILE *f = fopen(testdata_path("rfc6962-vectors/test-cert.pem"), "r");
    assert_non_null(f);
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(cert);
    unsigned char *der = NULL;
    int der_len = i2d_X509(cert, &der);
    assert_true(der_len > 0);
    buffer signed_data = {0};
    assert_int_equal(tls_put_u8(&signed_data, 0), 0);   /* sct_version v1 */
    assert_int_equal(tls_put_u8(&signed_data, 0), 0);   /* certificate_timestamp */
    assert_int_equal(tls_put_u64(&signed_data, timestamp), 0);
    assert_int_equal(tls_put_u16(&signed_data, 0), 0);  /* x509_entry */
    assert_int_equal(tls_put_vec(&signed_data, 3, der, (size_t)der_len), 0);
    assert_int_equal(tls_put_vec(&signed_data, 2, ext, ext_len), 0);
    assert_int_equal(signed_data.len, 735);
    assert_int_equal(digitally_signed_verify(pub, signed_data.data, signed_data.len, &ds, &err), 0);
    assert_int_equal(openssl_verify(pub, signed_data.data, signed_data.len, ds.sig, ds.sig_len), 1);

    /* Any byte of the signed data or signature changed: rejected. */
    for (size_t i = 0; i < signed_data.len; i += 7) {
        signed_data.data[i] ^= 0x40;
        assert_int_equal(digitally_signed_verify(pub, signed_data.data, signed_data.len, &ds, &err), -1);
        signed_data.data[i] ^= 0x40;
    }
    uint8_t sig[128];
    memcpy(sig, ds.sig, ds.sig_len);
    digitally_signed bad = ds;
    bad.sig = sig;
    for (size_t i = 0; i < ds.sig_len; i++) {
        sig[i] ^= 0x01;
        assert_int_equal(digitally_signed_verify(pub, signed_data.data, signed_data.len, &bad, &err), -1);
        sig[i] ^= 0x01;
    }
    /* Wrong algorithm bytes for this key. */
    bad = ds;
    bad.sig_alg = DS_SIG_RSA;
    assert_int_equal(digitally_signed_verify(pub, signed_data.data, signed_data.len, &bad, &err), -1);
    assert_non_null(strstr(err.msg, "does not match"));
    bad = ds;
    bad.hash_alg = 2;
    assert_int_equal(digitally_signed_verify(pub, signed_data.data, signed_data.len, &bad, &err), -1);

    OPENSSL_free(der);
    X509_free(cert);
    buffer_free(&signed_data);
    buffer_free(&vectors);
    EVP_PKEY_free(pub);
}

static void test_rsa_digitally_signed(void **state)
{
    (void)state;
    error err = {0};
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    assert_non_null(rsa);
    assert_int_equal(key_kind_of(rsa), KEY_KIND_RSA);
    static const uint8_t msg[] = "\x00\x01 tree head to sign";

    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, rsa), 1);
    uint8_t sig[256];
    size_t sig_len = sizeof sig;
    assert_int_equal(EVP_DigestSign(ctx, sig, &sig_len, msg, sizeof msg), 1);
    EVP_MD_CTX_free(ctx);
    assert_int_equal(sig_len, 256);

    /* Through the wire encoding and back, verified with the public half only (SPKI). */
    digitally_signed ds = {DS_HASH_SHA256, DS_SIG_RSA, sig, sig_len}, parsed;
    buffer wire = {0}, spki = {0};
    assert_int_equal(digitally_signed_encode(&wire, &ds), 0);
    assert_int_equal(wire.len, 4 + 256);
    assert_int_equal(wire.data[0], 4);
    assert_int_equal(wire.data[1], 1);
    assert_int_equal(wire.data[2], 1);
    assert_int_equal(wire.data[3], 0);
    assert_int_equal(digitally_signed_parse(wire.data, wire.len, &parsed, &err), 0);
    assert_int_equal(public_key_spki(&spki, rsa, &err), 0);
    EVP_PKEY *pub = public_key_parse_spki(spki.data, spki.len, &err);
    assert_non_null(pub);
    assert_int_equal(digitally_signed_verify(pub, msg, sizeof msg, &parsed, &err), 0);

    wire.data[4 + 100] ^= 0x80;
    assert_int_equal(digitally_signed_verify(pub, msg, sizeof msg, &parsed, &err), -1);
    wire.data[4 + 100] ^= 0x80;
    assert_int_equal(digitally_signed_verify(pub, msg, sizeof msg - 1, &parsed, &err), -1);
    parsed.sig_alg = DS_SIG_ECDSA;
    assert_int_equal(digitally_signed_verify(pub, msg, sizeof msg, &parsed, &err), -1);

    /* RSA below 2048 bits is not a log key. */
    EVP_PKEY *small = EVP_RSA_gen(1024);
    assert_non_null(small);
    assert_int_equal(key_kind_of(small), KEY_KIND_UNSUPPORTED);
    buffer small_spki = {0};
    assert_int_equal(public_key_spki(&small_spki, small, &err), 0);
    assert_null(public_key_parse_spki(small_spki.data, small_spki.len, &err));

    buffer_free(&small_spki);
    EVP_PKEY_free(small);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(rsa);
    buffer_free(&wire);
    buffer_free(&spki);
}

static void test_digitally_signed_codec_bounds(void **state)
{
    (void)state;
    error err = {0};
    digitally_signed ds;
    static const uint8_t ok[] = {4, 3, 0, 2, 0xaa, 0xbb};
    assert_int_equal(digitally_signed_parse(ok, sizeof ok, &ds, &err), 0);
    assert_int_equal(ds.sig_len, 2);
    assert_ptr_equal(ds.sig, ok + 4);
    assert_int_equal(digitally_signed_parse(ok, sizeof ok - 1, &ds, &err), -1);
    assert_int_equal(digitally_signed_parse(ok, 3, &ds, &err), -1);
    static const uint8_t trailing[] = {4, 3, 0, 1, 0xaa, 0xbb};
    assert_int_equal(digitally_signed_parse(trailing, sizeof trailing, &ds, &err), -1);
    assert_non_null(strstr(err.msg, "trailing"));
}

static void test_private_key_pem_round_trip(void **state)
{
    (void)state;
    const char *dir = test_tmpdir("keys_pem");
    char path[4200];
    snprintf(path, sizeof path, "%s/log.key.pem", dir);
    error err = {0};
    EVP_PKEY *key = private_key_generate(KEY_KIND_EC_P256, &err);
    assert_non_null(key);
    assert_int_equal(private_key_store_pem(path, key, &err), 0);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* Never overwrites. */
    assert_int_equal(private_key_store_pem(path, key, &err), -1);
    assert_non_null(strstr(err.msg, "exists"));

    buffer text = {0};
    read_file_or_fail(path, &text);
    assert_int_equal(buffer_terminate(&text), 0);
    assert_non_null(strstr((const char *)text.data, "-----BEGIN PRIVATE KEY-----\n"));

    log_signer *a = log_signer_new(key, &err);
    log_signer *b = log_signer_load(path, &err);
    assert_non_null(a);
    assert_non_null(b);
    assert_memory_equal(log_signer_log_id(a), log_signer_log_id(b), LOG_ID_LEN);
    size_t spki_a_len, spki_b_len;
    const uint8_t *spki_a = log_signer_spki(a, &spki_a_len);
    const uint8_t *spki_b = log_signer_spki(b, &spki_b_len);
    assert_int_equal(spki_a_len, 91); /* P-256 SPKI, uncompressed point */
    assert_int_equal(spki_a_len, spki_b_len);
    assert_memory_equal(spki_a, spki_b, spki_a_len);
    uint8_t id[SHA256_LEN];
    sha256(spki_a, spki_a_len, id);
    assert_memory_equal(id, log_signer_log_id(a), LOG_ID_LEN);
    /* Same private scalar: deterministic signatures agree. */
    buffer sa = {0}, sb = {0};
    assert_int_equal(log_signer_sign(a, (const uint8_t *)"m", 1, &sa, &err), 0);
    assert_int_equal(log_signer_sign(b, (const uint8_t *)"m", 1, &sb, &err), 0);
    assert_int_equal(sa.len, sb.len);
    assert_memory_equal(sa.data, sb.data, sa.len);

    /* Public key: PEM and SPKI DER round trips keep the LogID. */
    buffer pub_pem = {0};
    assert_int_equal(public_key_pem(&pub_pem, key, &err), 0);
    assert_non_null(strstr((const char *)pub_pem.data, "-----BEGIN PUBLIC KEY-----"));
    assert_null(strstr((const char *)pub_pem.data, "PRIVATE"));
    EVP_PKEY *pub = public_key_parse_pem((const char *)pub_pem.data, pub_pem.len, &err);
    assert_non_null(pub);
    uint8_t pub_id[LOG_ID_LEN];
    assert_int_equal(public_key_log_id(pub, pub_id, &err), 0);
    assert_memory_equal(pub_id, log_signer_log_id(a), LOG_ID_LEN);
    EVP_PKEY *from_spki = public_key_parse_spki(spki_a, spki_a_len, &err);
    assert_non_null(from_spki);
    assert_int_equal(EVP_PKEY_eq(from_spki, pub), 1);
    /* SPKI with trailing garbage or truncated is refused. */
    uint8_t longer[92];
    memcpy(longer, spki_a, 91);
    longer[91] = 0;
    assert_null(public_key_parse_spki(longer, sizeof longer, &err));
    assert_null(public_key_parse_spki(spki_a, 90, &err));

    /* A private key PEM is not a public key PEM, and vice versa. */
    assert_null(public_key_parse_pem((const char *)text.data, text.len, &err));
    assert_null(private_key_parse_pem((const char *)pub_pem.data, pub_pem.len, &err));

    EVP_PKEY_free(from_spki);
    EVP_PKEY_free(pub);
    buffer_free(&pub_pem);
    buffer_free(&sa);
    buffer_free(&sb);
    buffer_free(&text);
    log_signer_free(a);
    log_signer_free(b);
    EVP_PKEY_free(key);
}

static void test_ed25519_private_key_round_trip(void **state)
{
    (void)state;
    const char *dir = test_tmpdir("keys_ed25519");
    char path[4200];
    snprintf(path, sizeof path, "%s/note.key.pem", dir);
    error err = {0};
    EVP_PKEY *key = private_key_generate(KEY_KIND_ED25519, &err);
    assert_non_null(key);
    assert_int_equal(private_key_store_pem(path, key, &err), 0);
    EVP_PKEY *loaded = private_key_load_pem(path, &err);
    assert_non_null(loaded);
    assert_int_equal(key_kind_of(loaded), KEY_KIND_ED25519);
    assert_int_equal(EVP_PKEY_eq(key, loaded), 1);
    /* Not a log key. */
    assert_null(log_signer_new(loaded, &err));
    uint8_t raw[ED25519_KEY_LEN];
    assert_int_equal(public_key_ed25519_raw(loaded, raw, &err), 0);

    EVP_PKEY *pub = public_key_load_pem(testdata_path("checkpoints/dev2024h2b.ed25519.pub.pem"), &err);
    assert_non_null(pub);
    assert_int_equal(key_kind_of(pub), KEY_KIND_ED25519);
    assert_int_equal(public_key_ed25519_raw(pub, raw, &err), 0);
    /* MCowBQYDK2VwAyEA || raw: the raw key is the last 32 bytes of the SPKI. */
    uint8_t want[32];
    assert_int_equal(base64_decode_exact(want, 32, "RN4KXLGKQrfUUGU1zwbFvEN1AckVY76d4CnuNRc20vI=", 44), 0);
    assert_memory_equal(raw, want, 32);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(loaded);
    EVP_PKEY_free(key);
}

static void test_encrypted_and_foreign_keys_are_refused(void **state)
{
    (void)state;
    error err = {0};
    /* ct-go's test keys are DES-encrypted SEC1: refused without a password prompt. */
    assert_null(private_key_load_pem(testdata_path("chains/ctgo/leaf.privkey.pem"), &err));
    assert_true(err.msg[0] != 0);
    /* A P-384 key is not a log key (tesseract's root is P-384). */
    EVP_PKEY *p384 = EVP_EC_gen("P-384");
    assert_non_null(p384);
    assert_int_equal(key_kind_of(p384), KEY_KIND_UNSUPPORTED);
    assert_null(log_signer_new(p384, &err));
    buffer spki = {0};
    assert_int_equal(public_key_spki(&spki, p384, &err), 0);
    assert_null(public_key_parse_spki(spki.data, spki.len, &err));
    buffer_free(&spki);
    EVP_PKEY_free(p384);
    assert_null(private_key_load_pem("/nonexistent/key.pem", &err));
    assert_non_null(strstr(err.msg, "/nonexistent/key.pem"));
    assert_null(private_key_parse_pem("garbage", 7, &err));
}

/* One signer, several threads: every thread gets the single-threaded answers. */
#define THREADS 4
#define PER_THREAD 200

struct thread_job {
    const log_signer *signer;
    const buffer *expected;
    int failures;
};

static void *sign_many(void *arg)
{
    struct thread_job *job = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        uint32_t m = (uint32_t)i;
        buffer out = {0};
        if (log_signer_sign(job->signer, (const uint8_t *)&m, sizeof m, &out, NULL) != 0 ||
            out.len != job->expected[i].len ||
            memcmp(out.data, job->expected[i].data, out.len) != 0)
            job->failures++;
        buffer_free(&out);
    }
    return NULL;
}

static void test_concurrent_signing(void **state)
{
    (void)state;
    error err = {0};
    EVP_PKEY *key = private_key_generate(KEY_KIND_EC_P256, &err);
    log_signer *signer = log_signer_new(key, &err);
    assert_non_null(signer);
    buffer expected[PER_THREAD] = {{0}};
    for (int i = 0; i < PER_THREAD; i++) {
        uint32_t m = (uint32_t)i;
        assert_int_equal(log_signer_sign(signer, (const uint8_t *)&m, sizeof m, &expected[i], &err), 0);
    }
    pthread_t threads[THREADS];
    struct thread_job jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (struct thread_job){signer, expected, 0};
        assert_int_equal(pthread_create(&threads[t], NULL, sign_many, &jobs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(threads[t], NULL), 0);
        assert_int_equal(jobs[t].failures, 0);
    }
    for (int i = 0; i < PER_THREAD; i++)
        buffer_free(&expected[i]);
    log_signer_free(signer);
    EVP_PKEY_free(key);
}

static void test_der_encoding_is_minimal(void **state)
{
    (void)state;
    BIGNUM *small = BN_new(), *high = bn_hex("80"), *zero = BN_new();
    BN_set_word(small, 0x7f);
    BN_zero(zero);
    buffer out = {0};
    assert_int_equal(ecdsa_sig_der_encode(&out, small, high), 0);
    static const uint8_t want[] = {0x30, 0x07, 0x02, 0x01, 0x7f, 0x02, 0x02, 0x00, 0x80};
    assert_int_equal(out.len, sizeof want);
    assert_memory_equal(out.data, want, sizeof want);
    buffer_reset(&out);
    assert_int_equal(ecdsa_sig_der_encode(&out, zero, small), 0);
    static const uint8_t want0[] = {0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x7f};
    assert_int_equal(out.len, sizeof want0);
    assert_memory_equal(out.data, want0, sizeof want0);
    buffer_free(&out);
    BN_free(small), BN_free(high), BN_free(zero);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6979_a25_known_answers),
        cmocka_unit_test(test_log_signer_a25_from_sec1_pem),
        cmocka_unit_test(test_rfc6979_other_curves),
        cmocka_unit_test(test_mismatched_sec1_public_key_is_refused),
        cmocka_unit_test(test_signing_is_deterministic_and_verifies),
        cmocka_unit_test(test_rfc6962_log_id_and_sct_signature),
        cmocka_unit_test(test_rsa_digitally_signed),
        cmocka_unit_test(test_digitally_signed_codec_bounds),
        cmocka_unit_test(test_private_key_pem_round_trip),
        cmocka_unit_test(test_ed25519_private_key_round_trip),
        cmocka_unit_test(test_encrypted_and_foreign_keys_are_refused),
        cmocka_unit_test(test_concurrent_signing),
        cmocka_unit_test(test_der_encoding_is_minimal),
    };
    return cmocka_run_group_tests_name("keys", tests, NULL, NULL);
}
