/* rfc6962: the RFC 6962 read API of a static-ct log, computed from its tiles (DESIGN §6,
 * SPEC §2.3–2.4, §5.6), for monitors that do not speak static-ct-api yet. Transport-neutral
 * like readpath.h: paths are relative to the log's submission prefix.
 *
 *   ct/v1/get-sth                           the latest verified checkpoint: its RFC6962
 *                                           NoteSignature is the STH signature
 *   ct/v1/get-sth-consistency?first&second  consistency proof from hash tiles
 *   ct/v1/get-proof-by-hash?hash&tree_size  leaf index from the leafindex, proof from tiles
 *   ct/v1/get-entries?start&end             inclusive range, never crossing a 256-entry data
 *                                           tile, cut at the tree size (may return fewer)
 *   ct/v1/get-entry-and-proof?leaf_index&tree_size
 * (get-roots and the write API stay with the frontend: rfc6962_handles_path says which paths
 * are ours.) leaf_input is the MerkleTreeLeaf, extra_data the certificate chain (x509) or
 * PrecertChainEntry rebuilt from the issuers the entry's fingerprints name.
 *
 * Parameters are parsed like RFC 6962 logs built on certificate-transparency-go: decimal
 * 64-bit integers (an optional sign; leading zeros allowed), the first occurrence of a
 * parameter wins, values are percent-decoded (a literal '+' stays '+': base64 has no spaces).
 * Missing, malformed, negative or out-of-range values give 400 with a one-line reason;
 * get-entries with start at or past the tree size gives 400; first = 0 gives an empty
 * consistency proof; a tree_size larger than the verified checkpoint gives 400 (404 for
 * get-proof-by-hash, as ct-go does); a hash not in the tree of tree_size gives 404.
 *
 * The checkpoint is re-read from storage at most every checkpoint_refresh_ms, verified with
 * the log's key, and its root recomputed from the hash tiles before it is used; a checkpoint
 * that goes backwards or forks (same size, another root) is refused and the previous one kept.
 * Proofs are only given for sizes up to the verified size.
 *
 * Caching: get-entries answers inside a full tile never change; each full tile is rendered to
 * JSON once and kept (read_cache), and any range inside it is a slice of that rendering,
 * served with Cache-Control: public, max-age=86400, immutable. Ranges in the partial tile
 * and get-sth get a short max-age. Proofs for fixed sizes are immutable (max-age=86400).
 *
 * Thread-safe on one handle. */
#ifndef TEGULA_RFC6962_H
#define TEGULA_RFC6962_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "error.h"
#include "leafindex.h"
#include "note.h"
#include "readpath.h"
#include "storage.h"

typedef struct rfc6962_config {
    storage *storage;   /* borrowed: the log's object storage */
    const char *origin; /* the checkpoint origin (copied) */
    EVP_PKEY *log_key;  /* the log's public key (a reference is taken) */
    leafindex *index;   /* borrowed, optional: without it get-proof-by-hash answers 503 */
    read_cache *cache;  /* borrowed, optional: share the readpath cache of the same log
                           (keys are not per log); NULL = a private cache of cache_bytes */
    size_t cache_bytes; /* 0 = READ_CACHE_DEFAULT_BYTES (private cache only) */
    unsigned checkpoint_refresh_ms; /* 0 = 1000 */
    unsigned short_max_age_s;       /* get-sth and partial-tile get-entries; 0 = 10 */
    size_t max_data_tile_bytes;     /* stored and decompressed; 0 = READPATH_DEFAULT_MAX_OBJECT */
} rfc6962_config;

typedef struct rfc6962 rfc6962;

rfc6962 *rfc6962_new(const rfc6962_config *config, error *err);
void rfc6962_free(rfc6962 *layer);

/* True for the five read endpoints above ("ct/v1/get-sth", ...; exact match). */
bool rfc6962_handles_path(const char *path, size_t len);
/* Answers one request; always fills *out (read_response_free). Unknown paths get 404. */
void rfc6962_handle(rfc6962 *layer, const read_request *req, read_response *out);

/* The latest verified checkpoint (refreshed when older than checkpoint_refresh_ms); out may
 * be NULL. Returns 0, or -1 when no checkpoint has verified yet. */
int rfc6962_checkpoint(rfc6962 *layer, signed_checkpoint *out, error *err);
/* Re-reads the checkpoint now (e.g. when told a new one was published), then as above. A
 * refused checkpoint is logged and the previous one kept. */
int rfc6962_refresh(rfc6962 *layer, error *err);
/* A leafindex_size_fn (ctx = the layer): the verified tree size, for the index follower. */
int rfc6962_tree_size(void *layer, uint64_t *size, error *err);

typedef struct rfc6962_stats {
    uint64_t requests, bad_requests, errors;
    uint64_t tiles_rendered;       /* data tiles turned into get-entries JSON */
    uint64_t checkpoints_accepted, checkpoints_refused;
} rfc6962_stats;
void rfc6962_stats_read(rfc6962 *layer, rfc6962_stats *out);

#endif
