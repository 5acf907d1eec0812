/* x509chain: the lax chain validation of a CT log (DESIGN.md §7, SPEC.md §1.11, §5.3) on
 * OpenSSL 3.0.
 *
 * A chain is accepted when every submitted certificate parses as exact DER, chain[i+1] is named
 * as and has signed chain[i] and is a CA within its path length, and the last submitted
 * certificate is an accepted root or is signed by one (which is then appended). Every submitted
 * certificate is used, once, in the submitted order. Validity dates are never compared with the
 * clock and name constraints and policies are ignored: CT observes, it does not police. The leaf's
 * notAfter must fall in the log's window, the leaf needs serverAuth when it has an EKU, and the
 * poison extension must be present exactly for add-pre-chain. Chains through a Precertificate
 * Signing Certificate are refused (static-ct-api v1.1.0 allows it; CA/B Forum SC-092 retires
 * them).
 *
 * Verified issuer links (child fingerprint, parent fingerprint) are kept in a bounded,
 * thread-safe cache, so with a warm cache a submission costs one signature verification: the
 * leaf's. Leaf links are never cached (each leaf is new).
 *
 * Parsing costs more than that verification with OpenSSL 3.0 (DESIGN.md §10), so it is avoided
 * too: issuers of accepted chains are kept parsed in a bounded cache keyed by the SHA-256 of
 * their DER (x509_issuer_cache), and the leaf is read from its DER (x509_leaf) and its signature
 * checked over the raw TBSCertificate bytes with the issuer's parsed key. A leaf outside
 * x509_leaf's strict subset, or signed with an algorithm not handled directly (RSA-PSS,
 * Ed25519, ...), goes through d2i_X509 and X509_verify as before; either way the verdict and
 * its reason are the same. */
#ifndef TEGULA_X509CHAIN_H
#define TEGULA_X509CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "sha256.h"

/* At most this many submitted certificates (leaf included). */
#define X509_CHAIN_MAX 10
/* Largest accepted DER certificate. */
#define X509_CERT_MAX_DER (128 * 1024)
/* Largest root set. */
#define X509_ROOTS_MAX 10000
/* Link cache capacity when the configuration says 0, and the most it may say. */
#define X509_LINK_CACHE_DEFAULT 16384
#define X509_LINK_CACHE_MAX (1u << 20)

typedef struct x509_span {
    const uint8_t *data;
    size_t len;
} x509_span;

/* ---- Root set: build it, then share it read-only (thread-safe once built). ---- */

typedef struct x509_root_set x509_root_set;

x509_root_set *x509_root_set_new(void);
void x509_root_set_free(x509_root_set *roots);
/* Adds one DER root (kept byte for byte). A root already present is ignored (returns 0).
 * Fails on bad DER, a signature algorithm mismatch or when the set is full. */
int x509_root_set_add_der(x509_root_set *roots, const uint8_t *der, size_t len, error *err);
/* Adds every CERTIFICATE block of PEM text / a PEM file. All or nothing on error is not
 * promised: on failure the set may hold the roots before the bad one. */
int x509_root_set_add_pem(x509_root_set *roots, const char *text, size_t len, error *err);
int x509_root_set_add_pem_file(x509_root_set *roots, const char *path, error *err);
/* Roots in the order they were added (the get-roots list). */
size_t x509_root_set_count(const x509_root_set *roots);
x509_span x509_root_set_der(const x509_root_set *roots, size_t index);
const uint8_t *x509_root_set_fingerprint(const x509_root_set *roots, size_t index);
/* Index of the root with this SHA-256 fingerprint, or -1. */
long x509_root_set_find(const x509_root_set *roots, const uint8_t fingerprint[SHA256_LEN]);

/* ---- Validator ---- */

typedef enum x509_endpoint {
    X509_ADD_CHAIN = 0,
    X509_ADD_PRE_CHAIN = 1,
} x509_endpoint;

typedef struct x509_validator_config {
    const x509_root_set *roots;   /* borrowed; must outlive the validator, unchanged */
    int64_t not_after_start;      /* leaf notAfter >= this (Unix seconds) */
    int64_t not_after_limit;      /* leaf notAfter < this (Unix seconds) */
    size_t link_cache_capacity;   /* entries; 0 = X509_LINK_CACHE_DEFAULT; rounded up */
    /* Sunlight-style strictness: also reject a leaf with no EKU extension at all. DESIGN.md §7
     * only asks for serverAuth when an EKU is present, so the default (false) accepts it. */
    bool require_server_auth_eku;
    /* Parsed issuers kept; 0 = X509_ISSUER_CACHE_DEFAULT (x509_issuer_cache.h); rounded up. */
    size_t issuer_cache_capacity;
    /* Always parse the leaf with d2i_X509 and verify it with X509_verify. Slower, same
     * verdicts: it exists so tests can compare the two paths. */
    bool reference_path_only;
} x509_validator_config;

typedef struct x509_validator x509_validator;

x509_validator *x509_validator_new(const x509_validator_config *config, error *err);
void x509_validator_free(x509_validator *validator);

typedef struct x509_chain_result {
    bool is_precert;
    x509_span leaf;                          /* chain[0] as submitted */
    /* chain[1..n-1] as submitted, then the root from the root set when it was appended.
     * Empty only when the leaf itself is an accepted root. */
    size_t issuer_count;
    x509_span issuers[X509_CHAIN_MAX];
    uint8_t fingerprints[X509_CHAIN_MAX][SHA256_LEN]; /* SHA-256 of issuers[i]; ends with root */
    bool root_appended;
    /* issuers[0] (chain[1], or the appended root): the CA whose SPKI names the issuer of a
     * precertificate, and SHA-256 of that DER SubjectPublicKeyInfo as it appears in it. */
    x509_span issuer;
    uint8_t issuer_key_hash[SHA256_LEN];
} x509_chain_result;

/* Validates chain[0..n) for the endpoint. On success fills out, whose spans point into the
 * caller's chain buffers and the root set. On failure returns -1 with a one-line reason in err,
 * fit for an HTTP 400 body. Thread-safe. */
int x509_validate_chain(x509_validator *validator, const x509_span *chain, size_t n,
                        x509_endpoint endpoint, x509_chain_result *out, error *err);

typedef struct x509_validator_stats {
    uint64_t signature_verifications; /* signatures verified so far (leaves and links) */
    uint64_t link_cache_hits;
    uint64_t link_cache_evictions;
    size_t link_cache_entries;
    size_t link_cache_capacity;
    uint64_t issuer_cache_hits;       /* submitted issuers found parsed */
    uint64_t issuer_cache_misses;     /* ... and not (then parsed; roots are never looked up) */
    uint64_t issuer_cache_evictions;
    size_t issuer_cache_entries;
    size_t issuer_cache_capacity;
    uint64_t leaf_openssl_parses;     /* leaves that needed d2i_X509 (see above) */
} x509_validator_stats;

void x509_validator_stats_get(x509_validator *validator, x509_validator_stats *out);

/* ---- DER helpers, exact bytes (no re-encoding) ---- */

/* The SubjectPublicKeyInfo TLV inside a DER certificate. Returns 0 or -1. */
int x509_cert_spki(const uint8_t *der, size_t len, x509_span *out);

#endif
