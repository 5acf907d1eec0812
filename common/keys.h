/* keys: the log's signing key and the public keys tegula verifies with.
 *
 * - Private keys: ECDSA P-256 (the log key, RFC 6962 §2.1.4) and Ed25519 (note keys for
 *   witnesses), read from PEM (SEC1 "EC PRIVATE KEY" or PKCS#8 "PRIVATE KEY") and written as
 *   unencrypted PKCS#8 to a new 0600 file. Key material is never logged or put in an error.
 * - Public keys: ECDSA P-256 and RSA >= 2048 bits (log keys, RFC 6962 allows both) and Ed25519
 *   (signed notes), from PEM or SubjectPublicKeyInfo DER. LogID = SHA-256(SPKI DER).
 * - DigitallySigned (RFC 5246 §4.7 as used by RFC 6962): hash 04 (SHA-256), signature 03
 *   (ECDSA, DER SEQUENCE{r,s}) or 01 (RSA PKCS#1 v1.5), then a u16-prefixed signature.
 * - log_signer: a P-256 private key with its SPKI, LogID and RFC 6979 precomputation. It is
 *   immutable after creation, so many threads may sign with one signer concurrently. */
#ifndef TEGULA_KEYS_H
#define TEGULA_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "buffer.h"
#include "error.h"
#include "tls_codec.h"

#define LOG_ID_LEN 32
#define ED25519_KEY_LEN 32
#define ED25519_SIG_LEN 64

/* DigitallySigned algorithm bytes. */
#define DS_HASH_SHA256 4
#define DS_SIG_RSA 1
#define DS_SIG_ECDSA 3
/* Largest DigitallySigned a P-256 log_signer emits: 4 header bytes + 72-byte DER. */
#define DS_ECDSA_P256_MAX 76

typedef enum key_kind {
    KEY_KIND_UNSUPPORTED = 0,
    KEY_KIND_EC_P256,
    KEY_KIND_RSA,     /* at least 2048 bits */
    KEY_KIND_ED25519,
} key_kind;

/* What a key is, as far as tegula cares; UNSUPPORTED for other curves, short RSA, etc. */
key_kind key_kind_of(const EVP_PKEY *key);

/* --- private keys --- */

/* Parses a P-256 or Ed25519 private key from PEM text (SEC1 or PKCS#8). Encrypted PEM is
 * refused rather than prompting for a password. */
EVP_PKEY *private_key_parse_pem(const char *pem, size_t len, error *err);
EVP_PKEY *private_key_load_pem(const char *path, error *err);
/* A fresh P-256 or Ed25519 key. */
EVP_PKEY *private_key_generate(key_kind kind, error *err);
/* Writes the key as PKCS#8 PEM to a file that must not exist yet, created with mode 0600 and
 * fsynced. A partially written file is removed. */
int private_key_store_pem(const char *path, const EVP_PKEY *key, error *err);

/* --- public keys --- */

/* Parse a "PUBLIC KEY" (SPKI) PEM, or SPKI DER (the whole input must be one SPKI). Only
 * P-256, RSA >= 2048 and Ed25519 keys are accepted. */
EVP_PKEY *public_key_parse_pem(const char *pem, size_t len, error *err);
EVP_PKEY *public_key_load_pem(const char *path, error *err);
EVP_PKEY *public_key_parse_spki(const uint8_t *der, size_t len, error *err);
/* Append the public half of a (public or private) key as "PUBLIC KEY" PEM / SPKI DER. */
int public_key_pem(buffer *out, const EVP_PKEY *key, error *err);
int public_key_spki(buffer *out, const EVP_PKEY *key, error *err);
/* LogID = SHA-256(SPKI DER). */
int public_key_log_id(const EVP_PKEY *key, uint8_t out[LOG_ID_LEN], error *err);
/* The 32-byte RFC 8032 encoding of an Ed25519 public key (what note key IDs hash). */
int public_key_ed25519_raw(const EVP_PKEY *key, uint8_t out[ED25519_KEY_LEN], error *err);

/* --- DigitallySigned --- */

typedef struct digitally_signed {
    uint8_t hash_alg;
    uint8_t sig_alg;
    const uint8_t *sig; /* not owned: points into the parsed input */
    size_t sig_len;
} digitally_signed;

int digitally_signed_encode(buffer *out, const digitally_signed *ds);
/* Reads one DigitallySigned from r (zero-copy). Any algorithm bytes are accepted here;
 * verification checks them. */
int digitally_signed_read(tls_reader *r, digitally_signed *out, error *err);
/* Parses data as exactly one DigitallySigned (no trailing bytes). */
int digitally_signed_parse(const uint8_t *data, size_t len, digitally_signed *out, error *err);
/* Verifies ds over msg (hashed with SHA-256) with a P-256 or RSA public key. The algorithm
 * bytes must be SHA-256 and match the key's type. Returns 0 only for a valid signature. */
int digitally_signed_verify(EVP_PKEY *key, const uint8_t *msg, size_t msg_len,
                            const digitally_signed *ds, error *err);

/* --- log_signer --- */

typedef struct log_signer log_signer;

/* A signer for a P-256 private key (the caller keeps its reference). Checks that the private
 * scalar matches the public key by signing and verifying once. */
log_signer *log_signer_new(EVP_PKEY *key, error *err);
log_signer *log_signer_load(const char *path, error *err);
void log_signer_free(log_signer *signer);
/* Appends the DigitallySigned (04 03 <u16 len> <DER>) RFC 6979 signature of SHA-256(msg).
 * Deterministic: the same key and message always give the same bytes. Thread-safe. On
 * failure out is left as it was. */
int log_signer_sign(const log_signer *signer, const uint8_t *msg, size_t len, buffer *out,
                    error *err);
const uint8_t *log_signer_log_id(const log_signer *signer);
const uint8_t *log_signer_spki(const log_signer *signer, size_t *len);
/* The public key alone (borrowed; valid while the signer lives). */
EVP_PKEY *log_signer_public_key(const log_signer *signer);

#endif
