/* rfc6979: deterministic ECDSA (RFC 6979 §3.2, HMAC-DRBG with HMAC-SHA256) built on OpenSSL's
 * BN and EC primitives, because OpenSSL 3.0 only offers random nonces. Determinism is what
 * lets a duplicate submission receive a byte-identical SCT, and it removes any dependence of
 * the nonce on the RNG.
 *
 * An rfc6979_key holds everything that does not depend on the message (the private scalar in
 * Montgomery form, the order's Montgomery context, int2octets(x)); it is never written after
 * creation, so any number of threads may sign with one key at once. Each call uses its own
 * BN_CTX. Secret-dependent arithmetic uses OpenSSL's constant-time paths where it has them
 * (BN_FLG_CONSTTIME, the fixed-window generator multiplication, a Fermat inversion with
 * BN_mod_exp_mont_consttime, Montgomery products). */
#ifndef TEGULA_RFC6979_H
#define TEGULA_RFC6979_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/bn.h>
#include <openssl/ec.h>

#include "buffer.h"
#include "error.h"

/* Longest DER ECDSA signature this module produces (P-521: 30 81 len, two 69-byte INTEGERs). */
#define ECDSA_DER_MAX 141

typedef struct rfc6979_key rfc6979_key;

/* A signing key on `group` (prime-order curve of at most 521 bits) with private scalar `priv`
 * (1 <= priv < order). Copies both; the caller keeps ownership of its arguments. */
rfc6979_key *rfc6979_key_new(const EC_GROUP *group, const BIGNUM *priv, error *err);
/* Frees the key and wipes its secrets. NULL is allowed. */
void rfc6979_key_free(rfc6979_key *key);

/* Signs the message hash h (bits2int takes its leftmost qlen bits). Stores r and s, and the
 * nonce k that produced them when k_out is not NULL (for known-answer tests only). */
int rfc6979_sign_rs(const rfc6979_key *key, const uint8_t *h, size_t h_len, BIGNUM *r, BIGNUM *s,
                    BIGNUM *k_out, error *err);
/* Signs the message hash h and appends the DER SEQUENCE { INTEGER r, INTEGER s }. */
int rfc6979_sign(const rfc6979_key *key, const uint8_t *h, size_t h_len, buffer *der, error *err);

/* Appends the DER SEQUENCE { INTEGER r, INTEGER s } for non-negative r and s of at most 66
 * bytes each. */
int ecdsa_sig_der_encode(buffer *out, const BIGNUM *r, const BIGNUM *s);

#endif
