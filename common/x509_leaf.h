/* x509_leaf: what chain validation needs from an end-entity certificate, read straight from
 * its DER (DESIGN.md §10).
 *
 * d2i_X509 costs more than the leaf's signature verification, and a leaf is new every time, so
 * no cache helps. The validator only needs a few fields of a leaf, and the signed bytes. This
 * reader accepts a strict, common subset of DER certificates: v3, minimal lengths and integers,
 * AlgorithmIdentifier parameters absent or NULL (or an OID in the key's, as for EC curves),
 * signature algorithm identical in the TBSCertificate and outside it, no unique identifiers,
 * extensions well formed with criticality omitted or TRUE, validity times in their DER forms,
 * an EKU extension at most once and decodable exactly. Outside that subset it returns -1 and
 * the caller hands the certificate to OpenSSL, which then decides and words any rejection.
 *
 * The subset is chosen so that d2i_X509 accepts every certificate accepted here and reads the
 * same facts from it. Two things it cannot judge without OpenSSL's rules are left to the caller:
 * whether the issuer and subject Names decode (d2i_X509_NAME), and the signature itself. */
#ifndef TEGULA_X509_LEAF_H
#define TEGULA_X509_LEAF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "x509chain.h"

/* Signature algorithms verified without X509_verify; anything else is OTHER. */
typedef enum x509_sig_alg {
    X509_SIG_OTHER = 0,
    X509_SIG_ECDSA_SHA256,
    X509_SIG_ECDSA_SHA384,
    X509_SIG_ECDSA_SHA512,
    X509_SIG_RSA_SHA1,
    X509_SIG_RSA_SHA256,
    X509_SIG_RSA_SHA384,
    X509_SIG_RSA_SHA512,
} x509_sig_alg;

typedef struct x509_leaf {
    x509_span tbs;           /* the signed bytes: the whole TBSCertificate TLV */
    x509_sig_alg sig_alg;
    x509_span signature;     /* signature value (the BIT STRING's octets after unused-bits) */
    x509_span issuer;        /* issuer Name TLV */
    x509_span subject;       /* subject Name TLV */
    int64_t not_after;       /* Unix seconds */
    /* CT poison (1.3.6.1.4.1.11129.2.4.3): occurrences, and the first one's flags. */
    int poison_count;
    bool poison_critical;
    bool poison_null;        /* its value is exactly ASN.1 NULL (05 00) */
    /* Extended key usage: present, and listing serverAuth or anyExtendedKeyUsage. */
    bool has_eku;
    bool eku_server_auth;
} x509_leaf;

/* Reads der[0..len). Returns 0 when the certificate is inside the subset (out filled, spans
 * pointing into der), -1 when it is not (out unspecified): not a judgement, only "ask OpenSSL". */
int x509_leaf_read(const uint8_t *der, size_t len, x509_leaf *out);

#endif
