/* precert: byte surgery on raw certificate DER for RFC 6962.
 * Everything here works on the exact submitted bytes and never re-encodes a parsed object:
 * the log entry, the issuer_key_hash and the SCT signature must cover what the CA signed.
 * (Chain validation with OpenSSL lives elsewhere; this module only cuts and splices.) */
#ifndef TEGULA_PRECERT_H
#define TEGULA_PRECERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "der.h"
#include "error.h"

/* DER bodies (no tag/length) of the CT OIDs, 1.3.6.1.4.1.11129.2.4.{2,3}. */
extern const uint8_t precert_poison_oid[10];
extern const uint8_t precert_sct_list_oid[10];

/* The TBSCertificate TLV of a Certificate (exactly one SEQUENCE, nothing after it). */
int cert_tbs(const uint8_t *cert, size_t len, der_tlv *tbs, error *err);
/* The subjectPublicKeyInfo TLV of a TBSCertificate (the TLV from cert_tbs). */
int tbs_spki(const der_tlv *tbs, der_tlv *spki, error *err);
/* The subjectPublicKeyInfo TLV of a Certificate. */
int cert_spki(const uint8_t *cert, size_t len, der_tlv *spki, error *err);

/* What the removed extension looked like (spans point into the input TBS). */
typedef struct tbs_removed_extension {
    der_tlv extension;   /* the whole Extension SEQUENCE */
    bool critical;       /* critical BOOLEAN present and TRUE */
    der_tlv value;       /* the extnValue OCTET STRING */
} tbs_removed_extension;

/* Appends to out the TBSCertificate `tbs` (its whole TLV) without the one extension whose OID
 * body is oid[0..oid_len): every other byte kept in order, the lengths of the Extensions
 * SEQUENCE, the [3] wrapper and the TBS SEQUENCE re-encoded as minimal DER. Fails if the
 * extension occurs zero times or more than once, or is the only extension (an empty
 * Extensions SEQUENCE is not valid DER for X.509). `removed` may be NULL. */
int tbs_remove_extension(const uint8_t *tbs, size_t tbs_len, const uint8_t *oid, size_t oid_len,
                         buffer *out, tbs_removed_extension *removed, error *err);

/* The poison as found in a precertificate. RFC 6962 requires critical and value NULL. */
typedef struct precert_poison {
    bool critical;
    bool value_is_null; /* extnValue is exactly 05 00 */
} precert_poison;

/* Appends to out the TBSCertificate logged for a precertificate: the precert's TBS with the
 * poison extension removed (RFC 6962 §3.2). `poison` (may be NULL) reports its form.
 * Precertificate Signing Certificates (issuer/AKI rewriting) are not handled here. */
int precert_tbs_for_log(const uint8_t *precert, size_t len, buffer *out, precert_poison *poison,
                        error *err);

/* issuer_key_hash: SHA-256 of the issuer certificate's SubjectPublicKeyInfo, exact DER bytes. */
int precert_issuer_key_hash(const uint8_t *issuer_cert, size_t len, uint8_t out[32], error *err);

#endif
