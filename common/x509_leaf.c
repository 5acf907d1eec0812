#include "x509_leaf.h"

#include <string.h>

#include "der.h"

/* OID contents (no tag or length). */
static const uint8_t oid_poison[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x03};
static const uint8_t oid_eku[] = {0x55, 0x1d, 0x25};
static const uint8_t oid_server_auth[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01};
static const uint8_t oid_any_eku[] = {0x55, 0x1d, 0x25, 0x00};

static const struct {
    uint8_t oid[9];
    uint8_t len;
    x509_sig_alg alg;
} sig_algs[] = {
    {{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}, 8, X509_SIG_ECDSA_SHA256},
    {{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03}, 8, X509_SIG_ECDSA_SHA384},
    {{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04}, 8, X509_SIG_ECDSA_SHA512},
    {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05}, 9, X509_SIG_RSA_SHA1},
    {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b}, 9, X509_SIG_RSA_SHA256},
    {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c}, 9, X509_SIG_RSA_SHA384},
    {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d}, 9, X509_SIG_RSA_SHA512},
};

static bool bytes_equal(const der_tlv *t, const uint8_t *want, size_t len)
{
    return t->len == len && memcmp(t->content, want, len) == 0;
}

static int expect(der_reader *r, uint8_t tag, der_tlv *out)
{
    return der_read_expect(r, tag, out, NULL);
}

/* The rule OpenSSL's OID decoder applies: non-empty, the last octet ends a subidentifier, and no
 * subidentifier starts with a padding octet 0x80. */
static bool oid_valid(const der_tlv *t)
{
    if (t->len == 0 || (t->content[t->len - 1] & 0x80))
        return false;
    for (size_t i = 0; i < t->len; i++)
        if (t->content[i] == 0x80 && (i == 0 || !(t->content[i - 1] & 0x80)))
            return false;
    return true;
}

static int expect_oid(der_reader *r, der_tlv *out)
{
    return expect(r, DER_OID, out) == 0 && oid_valid(out) ? 0 : -1;
}

/* Minimal two's complement, as DER and OpenSSL's INTEGER decoder both demand. */
static bool integer_valid(const der_tlv *t)
{
    if (t->len == 0)
        return false;
    if (t->len == 1)
        return true;
    uint8_t first = t->content[0], next_top = t->content[1] & 0x80;
    return !(first == 0x00 && !next_top) && !(first == 0xff && next_top);
}

/* AlgorithmIdentifier: an OID and parameters absent, NULL, or (key_params) an OID. */
static int read_algorithm(der_reader *r, bool key_params, der_tlv *alg, der_tlv *oid)
{
    der_reader in;
    der_tlv param;
    if (expect(r, DER_SEQUENCE, alg) != 0)
        return -1;
    der_reader_of(&in, alg);
    if (expect_oid(&in, oid) != 0)
        return -1;
    if (der_reader_empty(&in))
        return 0;
    if (der_read(&in, &param, NULL) != 0)
        return -1;
    bool ok = (param.tag == DER_NULL && param.len == 0) ||
              (key_params && param.tag == DER_OID && oid_valid(&param));
    return ok && der_reader_empty(&in) ? 0 : -1;
}

/* A BIT STRING with no unused bits: returns its octets after the unused-bits octet. */
static int read_octet_bits(der_reader *r, x509_span *out)
{
    der_tlv t;
    if (expect(r, DER_BIT_STRING, &t) != 0 || t.len < 1 || t.content[0] != 0)
        return -1;
    out->data = t.content + 1;
    out->len = t.len - 1;
    return 0;
}

static int digits(const uint8_t *p, int count)
{
    int v = 0;
    for (int i = 0; i < count; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ, the only forms DER allows in a
 * certificate; year 50..99 of a UTCTime is 19xx, as everywhere. Ranges as OpenSSL checks them
 * (seconds up to 59, day within its month). */
static int read_time(der_reader *r, int64_t *out)
{
    der_tlv t;
    if (der_read(r, &t, NULL) != 0)
        return -1;
    const uint8_t *p = t.content;
    int year;
    if (t.tag == 0x17 && t.len == 13) {
        year = digits(p, 2);
        if (year < 0)
            return -1;
        year += year < 50 ? 2000 : 1900;
        p += 2;
    } else if (t.tag == 0x18 && t.len == 15) {
        year = digits(p, 4);
        if (year < 0)
            return -1;
        p += 4;
    } else {
        return -1;
    }
    int month = digits(p, 2), day = digits(p + 2, 2), hour = digits(p + 4, 2);
    int minute = digits(p + 6, 2), second = digits(p + 8, 2);
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (p[10] != 'Z' || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 ||
        minute < 0 || minute > 59 || second < 0 || second > 59)
        return -1;
    if (day > month_days[month - 1] + (month == 2 && leap_year(year)))
        return -1;
    *out = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    return 0;
}

/* The value of an EKU extension: a SEQUENCE of valid OIDs filling it exactly. */
static int read_eku(const der_tlv *value, x509_leaf *out)
{
    der_tlv seq, oid;
    der_reader in;
    if (der_parse_whole(value->content, value->len, DER_SEQUENCE, &seq, NULL) != 0 ||
        seq.len == 0)
        return -1;
    der_reader_of(&in, &seq);
    while (!der_reader_empty(&in)) {
        if (expect_oid(&in, &oid) != 0)
            return -1;
        /* anyExtendedKeyUsage satisfies serverAuth, as in Go's x509 (ctfe, Sunlight). */
        if (bytes_equal(&oid, oid_server_auth, sizeof oid_server_auth) ||
            bytes_equal(&oid, oid_any_eku, sizeof oid_any_eku))
            out->eku_server_auth = true;
    }
    out->has_eku = true;
    return 0;
}

/* [3] EXPLICIT SEQUENCE OF Extension { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }. */
static int read_extensions(const der_tlv *explicit_tag, x509_leaf *out)
{
    der_tlv list, ext, oid, field, value;
    der_reader outer, exts, in;
    der_reader_of(&outer, explicit_tag);
    if (expect(&outer, DER_SEQUENCE, &list) != 0 || !der_reader_empty(&outer) || list.len == 0)
        return -1;
    der_reader_of(&exts, &list);
    while (!der_reader_empty(&exts)) {
        if (expect(&exts, DER_SEQUENCE, &ext) != 0)
            return -1;
        der_reader_of(&in, &ext);
        if (expect_oid(&in, &oid) != 0 || der_read(&in, &field, NULL) != 0)
            return -1;
        bool critical = false;
        if (field.tag == DER_BOOLEAN) {
            /* DER: TRUE is FF, and FALSE is never written (it is the default). */
            if (field.len != 1 || field.content[0] != 0xff)
                return -1;
            critical = true;
            if (der_read(&in, &field, NULL) != 0)
                return -1;
        }
        if (field.tag != DER_OCTET_STRING || !der_reader_empty(&in))
            return -1;
        value = field;
        if (bytes_equal(&oid, oid_poison, sizeof oid_poison)) {
            if (out->poison_count++ == 0) {
                static const uint8_t asn1_null[] = {0x05, 0x00};
                out->poison_critical = critical;
                out->poison_null = bytes_equal(&value, asn1_null, sizeof asn1_null);
            }
        } else if (bytes_equal(&oid, oid_eku, sizeof oid_eku)) {
            /* A repeated EKU is OpenSSL's to reject, with its reason. */
            if (out->has_eku || read_eku(&value, out) != 0)
                return -1;
        }
    }
    return 0;
}

int x509_leaf_read(const uint8_t *der, size_t len, x509_leaf *out)
{
    memset(out, 0, sizeof *out);
    if (len == 0 || len > X509_CERT_MAX_DER)
        return -1;
    der_tlv cert, tbs, outer_alg, outer_oid, alg, oid, t;
    der_reader c, r, in;
    if (der_parse_whole(der, len, DER_SEQUENCE, &cert, NULL) != 0)
        return -1;
    der_reader_of(&c, &cert);
    if (expect(&c, DER_SEQUENCE, &tbs) != 0 || read_algorithm(&c, false, &outer_alg, &outer_oid) ||
        read_octet_bits(&c, &out->signature) != 0 || !der_reader_empty(&c))
        return -1;
    out->tbs.data = tbs.start;
    out->tbs.len = tbs.total_len;

    der_reader_of(&r, &tbs);
    static const uint8_t v3[] = {0x02, 0x01, 0x02};
    if (expect(&r, DER_CONTEXT_CONSTRUCTED(0), &t) != 0 || !bytes_equal(&t, v3, sizeof v3))
        return -1;
    if (expect(&r, DER_INTEGER, &t) != 0 || !integer_valid(&t))
        return -1;
    /* The algorithm OpenSSL's X509_verify would compare with the outer one (X509_ALGOR_cmp):
     * with parameters limited to absent or NULL, equal values are equal bytes. */
    if (read_algorithm(&r, false, &alg, &oid) != 0 || alg.total_len != outer_alg.total_len ||
        memcmp(alg.start, outer_alg.start, alg.total_len) != 0)
        return -1;
    for (size_t i = 0; i < sizeof sig_algs / sizeof *sig_algs; i++)
        if (bytes_equal(&oid, sig_algs[i].oid, sig_algs[i].len))
            out->sig_alg = sig_algs[i].alg;

    if (expect(&r, DER_SEQUENCE, &t) != 0)
        return -1;
    out->issuer.data = t.start;
    out->issuer.len = t.total_len;
    int64_t not_before;
    if (expect(&r, DER_SEQUENCE, &t) != 0)
        return -1;
    der_reader_of(&in, &t);
    if (read_time(&in, &not_before) != 0 || read_time(&in, &out->not_after) != 0 ||
        !der_reader_empty(&in))
        return -1;
    if (expect(&r, DER_SEQUENCE, &t) != 0)
        return -1;
    out->subject.data = t.start;
    out->subject.len = t.total_len;

    x509_span key;
    if (expect(&r, DER_SEQUENCE, &t) != 0)
        return -1;
    der_reader_of(&in, &t);
    if (read_algorithm(&in, true, &alg, &oid) != 0 || read_octet_bits(&in, &key) != 0 ||
        !der_reader_empty(&in))
        return -1;

    /* No issuerUniqueID / subjectUniqueID ([1], [2]): only extensions may follow. */
    if (!der_reader_empty(&r)) {
        if (expect(&r, DER_CONTEXT_CONSTRUCTED(3), &t) != 0 || read_extensions(&t, out) != 0 ||
            !der_reader_empty(&r))
            return -1;
    }
    return 0;
}
