/* certgen: the CLI's small OpenSSL toolbox — key files, a test CA, and fast minting of
 * leaf certificates and precertificates for test chains.
 *
 * Minting is built for the load generator, which needs thousands of distinct chains per
 * second: a `certgen` holds one leaf key pair (generated once) and every constant part
 * pre-encoded, so each certgen_mint costs one SHA-256, one signature by the intermediate and
 * a little DER writing; the serial (126 random bits) and the SANs are what vary. A `certgen`
 * is not thread-safe: make one per thread (a certgen_ca may be freed once they exist). */
#ifndef TEGULA_CERTGEN_H
#define TEGULA_CERTGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/evp.h>

#include "buffer.h"
#include "error.h"

typedef enum certgen_key_type {
    CERTGEN_KEY_P256,
    CERTGEN_KEY_RSA2048,
} certgen_key_type;

/* "p256" / "rsa2048" (also "P-256", "rsa"). Returns 0, or -1 if unknown. */
int certgen_key_type_parse(const char *name, certgen_key_type *out);
/* "P-256" / "RSA-2048", for messages. */
const char *certgen_key_type_name(certgen_key_type type);

/* ---- keys and files ---- */

EVP_PKEY *certgen_key_generate(certgen_key_type type, error *err);
/* Appends the unencrypted PKCS#8 PEM of the private key. It is secret: release it with
 * certgen_buffer_cleanse. */
int certgen_private_key_pem(EVP_PKEY *key, buffer *out, error *err);
/* Reads a PEM private key (PKCS#8 or traditional; encrypted keys are refused, never prompted
 * for). With allow_public, a PEM public key (SubjectPublicKeyInfo) is accepted too, and
 * *is_private (if not NULL) tells which was found. */
EVP_PKEY *certgen_key_read(const char *path, bool allow_public, bool *is_private, error *err);
/* Appends the DER SubjectPublicKeyInfo (SHA-256 of it is a CT log ID). */
int certgen_spki_der(EVP_PKEY *key, buffer *out, error *err);
/* Appends the PEM "PUBLIC KEY" block. */
int certgen_public_key_pem(EVP_PKEY *key, buffer *out, error *err);
/* Zeroes and frees a buffer that held secret material. */
void certgen_buffer_cleanse(buffer *b);
/* Writes a whole file with exactly `mode`, through a temporary file in the same directory
 * so a reader never sees a partial file. replace=false fails (atomically) if path exists. */
int certgen_write_file(const char *path, const void *data, size_t len, mode_t mode, bool replace,
                       error *err);

/* ---- test CA: DIR/root.pem, root.key, intermediate.pem, intermediate.key ---- */

typedef struct certgen_ca certgen_ca;

/* Creates DIR (if missing) and a new self-signed root plus an intermediate (pathlen 0) it
 * signed, both with keys of `type`. Fails if any of the four files exists already. */
int certgen_ca_create(const char *dir, certgen_key_type type, error *err);
/* Loads the four files and checks the intermediate key matches its certificate. */
certgen_ca *certgen_ca_load(const char *dir, error *err);
void certgen_ca_free(certgen_ca *ca);

/* ---- minting ---- */

typedef struct certgen certgen;

#define CERTGEN_MAX_SANS 100

typedef struct certgen_leaf {
    bool precert;           /* add the critical CT poison extension (value NULL) */
    const char *const *sans; /* DNS names; the first is also the subject CN (<= 64 chars) */
    size_t san_count;        /* 1 to CERTGEN_MAX_SANS */
    time_t not_after;        /* 0: now + 90 days */
} certgen_leaf;

/* Generates the leaf key pair of `leaf_type`, prepares the constant parts, and checks one
 * minted certificate with OpenSSL's parser and verifier. */
certgen *certgen_new(const certgen_ca *ca, certgen_key_type leaf_type, error *err);
void certgen_free(certgen *gen);
/* Appends the DER of a new leaf signed by the intermediate: random serial, subject CN =
 * first SAN, the SANs, EKU serverAuth, basicConstraints CA:false (critical), keyUsage
 * digitalSignature (critical), SKI/AKI; notBefore = now - 1h (or not_after - 90 days when
 * not_after is earlier than that), notAfter as asked. */
int certgen_mint(certgen *gen, const certgen_leaf *leaf, buffer *der, error *err);
/* Appends the add-chain body {"chain":["<b64 leaf>","<b64 intermediate>"[,"<b64 root>"]]}. */
int certgen_chain_json(const certgen *gen, const uint8_t *leaf, size_t leaf_len, bool with_root,
                       buffer *out);
/* Appends the PEM chain leaf, intermediate[, root]. */
int certgen_chain_pem(const certgen *gen, const uint8_t *leaf, size_t leaf_len, bool with_root,
                      buffer *out);
/* SHA-256 of the intermediate's DER SubjectPublicKeyInfo (the precert issuer_key_hash). */
void certgen_issuer_key_hash(const certgen *gen, uint8_t out[32]);

/* Parses an RFC 3339 date-time ("2026-06-01T00:00:00Z", "...T02:00:00.5+02:00"); fractions
 * of a second are dropped. Returns 0, or -1 with a reason. */
int certgen_parse_rfc3339(const char *text, time_t *out, error *err);

#endif
