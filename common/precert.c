#include "precert.h"

#include <string.h>

#include "sha256.h"

const uint8_t precert_poison_oid[10] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x03};
const uint8_t precert_sct_list_oid[10] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02};

/* The fields of a TBSCertificate this module needs, located by walking all of them so that
 * a malformed TBS is refused rather than half-used. */
typedef struct tbs_layout {
    der_tlv tbs;
    der_tlv spki;
    bool has_extensions;
    der_tlv extensions_wrapper; /* [3] EXPLICIT */
    der_tlv extensions;         /* the SEQUENCE OF Extension inside it */
} tbs_layout;

static int tbs_walk(const uint8_t *data, size_t len, tbs_layout *out, error *err)
{
    memset(out, 0, sizeof *out);
    if (der_parse_whole(data, len, DER_SEQUENCE, &out->tbs, err) != 0)
        return error_wrap(err, "TBSCertificate");
    der_reader r;
    der_reader_of(&r, &out->tbs);
    der_tlv t;
    if (der_read_optional(&r, DER_CONTEXT_CONSTRUCTED(0), &t, err) < 0)
        return error_wrap(err, "TBSCertificate version");
    if (der_read_expect(&r, DER_INTEGER, &t, err) != 0)
        return error_wrap(err, "TBSCertificate serialNumber");
    static const char *const sequences[] = {"signature", "issuer", "validity", "subject",
                                            "subjectPublicKeyInfo"};
    for (size_t i = 0; i < sizeof sequences / sizeof sequences[0]; i++)
        if (der_read_expect(&r, DER_SEQUENCE, &t, err) != 0)
            return error_wrap(err, "TBSCertificate %s", sequences[i]);
    out->spki = t;
    if (der_read_optional(&r, DER_CONTEXT_PRIMITIVE(1), &t, err) < 0)
        return error_wrap(err, "TBSCertificate issuerUniqueID");
    if (der_read_optional(&r, DER_CONTEXT_PRIMITIVE(2), &t, err) < 0)
        return error_wrap(err, "TBSCertificate subjectUniqueID");
    int has = der_read_optional(&r, DER_CONTEXT_CONSTRUCTED(3), &out->extensions_wrapper, err);
    if (has < 0)
        return error_wrap(err, "TBSCertificate extensions");
    if (!der_reader_empty(&r))
        return error_set(err, "TBSCertificate: unexpected element after the fields");
    if (has) {
        out->has_extensions = true;
        if (der_parse_whole(out->extensions_wrapper.content, out->extensions_wrapper.len,
                            DER_SEQUENCE, &out->extensions, err) != 0)
            return error_wrap(err, "TBSCertificate extensions");
    }
    return 0;
}

int cert_tbs(const uint8_t *cert, size_t len, der_tlv *tbs, error *err)
{
    der_tlv outer, t;
    if (der_parse_whole(cert, len, DER_SEQUENCE, &outer, err) != 0)
        return error_wrap(err, "Certificate");
    der_reader r;
    der_reader_of(&r, &outer);
    if (der_read_expect(&r, DER_SEQUENCE, tbs, err) != 0)
        return error_wrap(err, "Certificate tbsCertificate");
    if (der_read_expect(&r, DER_SEQUENCE, &t, err) != 0)
        return error_wrap(err, "Certificate signatureAlgorithm");
    if (der_read_expect(&r, DER_BIT_STRING, &t, err) != 0)
        return error_wrap(err, "Certificate signatureValue");
    if (!der_reader_empty(&r))
        return error_set(err, "Certificate: unexpected element after the signature");
    return 0;
}

int tbs_spki(const der_tlv *tbs, der_tlv *spki, error *err)
{
    tbs_layout layout;
    if (tbs_walk(tbs->start, tbs->total_len, &layout, err) != 0)
        return -1;
    *spki = layout.spki;
    return 0;
}

int cert_spki(const uint8_t *cert, size_t len, der_tlv *spki, error *err)
{
    der_tlv tbs;
    if (cert_tbs(cert, len, &tbs, err) != 0)
        return -1;
    return tbs_spki(&tbs, spki, err);
}

/* Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } */
static int extension_parse(const der_tlv *ext, der_tlv *oid, bool *critical, der_tlv *value,
                           error *err)
{
    der_reader r;
    der_reader_of(&r, ext);
    if (der_read_expect(&r, DER_OID, oid, err) != 0)
        return error_wrap(err, "extnID");
    der_tlv flag;
    int has = der_read_optional(&r, DER_BOOLEAN, &flag, err);
    if (has < 0)
        return error_wrap(err, "critical");
    if (has && flag.len != 1)
        return error_set(err, "critical: BOOLEAN of %zu bytes", flag.len);
    *critical = has && flag.content[0] != 0;
    if (der_read_expect(&r, DER_OCTET_STRING, value, err) != 0)
        return error_wrap(err, "extnValue");
    if (!der_reader_empty(&r))
        return error_set(err, "unexpected element after extnValue");
    return 0;
}

int tbs_remove_extension(const uint8_t *tbs, size_t tbs_len, const uint8_t *oid, size_t oid_len,
                         buffer *out, tbs_removed_extension *removed, error *err)
{
    tbs_layout layout;
    if (tbs_walk(tbs, tbs_len, &layout, err) != 0)
        return -1;
    if (!layout.has_extensions)
        return error_set(err, "TBSCertificate has no extensions");

    der_reader r;
    der_reader_of(&r, &layout.extensions);
    size_t total = 0, matches = 0;
    tbs_removed_extension found = {0};
    while (!der_reader_empty(&r)) {
        der_tlv ext, ext_oid, value;
        bool critical = false;
        if (der_read_expect(&r, DER_SEQUENCE, &ext, err) != 0 ||
            extension_parse(&ext, &ext_oid, &critical, &value, err) != 0)
            return error_wrap(err, "TBSCertificate extension %zu", total);
        total++;
        if (ext_oid.len == oid_len && memcmp(ext_oid.content, oid, oid_len) == 0) {
            matches++;
            found.extension = ext;
            found.critical = critical;
            found.value = value;
        }
    }
    if (matches == 0)
        return error_set(err, "extension not found");
    if (matches > 1)
        return error_set(err, "extension occurs %zu times", matches);
    if (total == 1)
        return error_set(err, "extension is the only one (Extensions would be empty)");

    /* Everything between the TBS content start and the [3] wrapper is copied unchanged;
     * the walk guarantees nothing follows the wrapper. */
    const uint8_t *fields = layout.tbs.content;
    size_t fields_len = (size_t)(layout.extensions_wrapper.start - fields);
    const uint8_t *before = layout.extensions.content;
    size_t before_len = (size_t)(found.extension.start - before);
    const uint8_t *after = found.extension.start + found.extension.total_len;
    size_t after_len = layout.extensions.len - before_len - found.extension.total_len;

    size_t ext_len = before_len + after_len;
    size_t wrapper_len = der_header_len(ext_len) + ext_len;
    size_t tbs_content_len = fields_len + der_header_len(wrapper_len) + wrapper_len;

    size_t mark = out->len;
    if (der_put_header(out, DER_SEQUENCE, tbs_content_len) != 0 ||
        buffer_append(out, fields, fields_len) != 0 ||
        der_put_header(out, DER_CONTEXT_CONSTRUCTED(3), wrapper_len) != 0 ||
        der_put_header(out, DER_SEQUENCE, ext_len) != 0 ||
        buffer_append(out, before, before_len) != 0 || buffer_append(out, after, after_len) != 0) {
        out->len = mark;
        return error_set(err, "out of memory");
    }
    if (removed)
        *removed = found;
    return 0;
}

int precert_tbs_for_log(const uint8_t *precert, size_t len, buffer *out, precert_poison *poison,
                        error *err)
{
    der_tlv tbs;
    if (cert_tbs(precert, len, &tbs, err) != 0)
        return error_wrap(err, "precertificate");
    tbs_removed_extension removed;
    if (tbs_remove_extension(tbs.start, tbs.total_len, precert_poison_oid,
                             sizeof precert_poison_oid, out, &removed, err) != 0)
        return error_wrap(err, "precertificate poison");
    if (poison) {
        static const uint8_t asn1_null[] = {DER_NULL, 0x00};
        poison->critical = removed.critical;
        poison->value_is_null = removed.value.len == sizeof asn1_null &&
                                memcmp(removed.value.content, asn1_null, sizeof asn1_null) == 0;
    }
    return 0;
}

int precert_issuer_key_hash(const uint8_t *issuer_cert, size_t len, uint8_t out[32], error *err)
{
    der_tlv spki;
    if (cert_spki(issuer_cert, len, &spki, err) != 0)
        return error_wrap(err, "issuer certificate");
    sha256(spki.start, spki.total_len, out);
    return 0;
}
