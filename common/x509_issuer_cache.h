/* x509_issuer_cache: CA certificates parsed once and shared by every request (DESIGN.md §10).
 *
 * OpenSSL 3.0's d2i_X509 costs more than a signature verification (≈ 150 µs, most of it
 * decoding the public key), and a log sees the same few thousand intermediates again and again.
 * An x509_issuer is one such certificate, parsed, with everything chain validation asks of a CA
 * computed up front. It is immutable once published and reference-counted, so threads use it
 * without locks and an eviction never frees one still in use.
 *
 * The cache maps the SHA-256 of the exact submitted DER (and its length) to an issuer: a
 * bounded set-associative table with LRU replacement inside each set and striped locks, like
 * x509chain's link cache. Two different certificates never share an entry, whatever their
 * names: the key is the whole DER's hash. Filling an issuer is the caller's business
 * (x509chain); this module owns lifetime and lookup only. */
#ifndef TEGULA_X509_ISSUER_CACHE_H
#define TEGULA_X509_ISSUER_CACHE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "sha256.h"

/* Capacity when the configuration says 0, and the most it may say. A parsed certificate takes
 * some 6-15 KB, so the default bounds the cache near 10 MB. */
#define X509_ISSUER_CACHE_DEFAULT 1024
#define X509_ISSUER_CACHE_MAX (1u << 16)

/* Public key families the validator verifies without X509_verify. */
typedef enum x509_key_kind {
    X509_KEY_OTHER = 0, /* anything else, or a key OpenSSL could not decode */
    X509_KEY_EC,
    X509_KEY_RSA,       /* rsaEncryption (PKCS #1 v1.5); RSA-PSS keys are OTHER */
} x509_key_kind;

typedef struct x509_issuer {
    uint8_t fingerprint[SHA256_LEN]; /* SHA-256 of the DER */
    size_t der_len;
    X509 *cert;                      /* owned; its extension cache is already filled */
    EVP_PKEY *key;                   /* cert's public key (owned by cert); NULL if undecodable */
    x509_key_kind key_kind;
    uint8_t *subject;                /* owned copy of the subject Name TLV as encoded */
    size_t subject_len;
    int ca;                          /* basicConstraints: 1 CA, 0 not a CA or absent, -1 bad */
    int64_t path_len;                /* -1 when unconstrained */
    bool precert_signer;             /* a Precertificate Signing Certificate */
    uint8_t spki_hash[SHA256_LEN];   /* SHA-256 of the DER SubjectPublicKeyInfo */
    atomic_uint refs;                /* private: use x509_issuer_ref / _unref */
} x509_issuer;

/* A zeroed issuer holding one reference, or NULL when out of memory. */
x509_issuer *x509_issuer_new(void);
x509_issuer *x509_issuer_ref(x509_issuer *issuer);
/* Drops one reference; the last one frees cert and subject. NULL is ignored. */
void x509_issuer_unref(x509_issuer *issuer);

typedef struct x509_issuer_cache x509_issuer_cache;

/* capacity: entries; 0 = X509_ISSUER_CACHE_DEFAULT; clamped to the maximum, rounded up to a
 * power-of-two number of sets. NULL when out of memory. */
x509_issuer_cache *x509_issuer_cache_new(size_t capacity);
/* Drops the cache's references; issuers still held elsewhere live on. */
void x509_issuer_cache_free(x509_issuer_cache *cache);
/* A new reference to the issuer whose DER has this SHA-256 and length, or NULL. */
x509_issuer *x509_issuer_cache_get(x509_issuer_cache *cache, const uint8_t fp[SHA256_LEN],
                                   size_t der_len);
/* Publishes a fully built issuer (the cache takes its own reference), evicting the least
 * recently used entry of its set when full. An issuer with the same key already present is
 * kept and this one is not stored. */
void x509_issuer_cache_put(x509_issuer_cache *cache, x509_issuer *issuer);

typedef struct x509_issuer_cache_stats {
    uint64_t hits;
    uint64_t misses;
    uint64_t evictions;
    size_t entries;
    size_t capacity;
} x509_issuer_cache_stats;

void x509_issuer_cache_stats_get(x509_issuer_cache *cache, x509_issuer_cache_stats *out);

#endif
