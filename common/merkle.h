/* merkle: RFC 6962 / RFC 9162 §2.1 Merkle tree hashing, proof generation and verification.
 *
 * Generation never holds the tree: it asks a caller-supplied source for the hashes of perfect
 * subtrees, node(level, k) = MTH(D[k·2^level : (k+1)·2^level]). Sources are tiles (tiles.h), an
 * in-memory array of leaf hashes (merkle_leaves, below), or anything else that can answer that
 * one question. Proofs are bounded to MERKLE_MAX_PROOF hashes, held in caller arrays. */
#ifndef TEGULA_MERKLE_H
#define TEGULA_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define MERKLE_HASH_LEN 32
/* Enough for any proof in a tree of at most 2^63 leaves. */
#define MERKLE_MAX_PROOF 64

/* Writes node(level, index) into out. Returns 0, or -1 if the node cannot be produced (the
 * source keeps its own reason; the generators report which node failed). */
typedef int (*merkle_get_node_fn)(void *ctx, unsigned level, uint64_t index,
                                  uint8_t out[MERKLE_HASH_LEN]);

/* H(0x00 || data). */
void merkle_leaf_hash(const void *data, size_t len, uint8_t out[MERKLE_HASH_LEN]);
/* H(0x01 || left || right). out may alias left or right. */
void merkle_node_hash(const uint8_t left[MERKLE_HASH_LEN], const uint8_t right[MERKLE_HASH_LEN],
                      uint8_t out[MERKLE_HASH_LEN]);
/* MTH of the empty tree, H(""). */
void merkle_empty_root(uint8_t out[MERKLE_HASH_LEN]);
/* MTH over n already-computed leaf (or lower-level node) hashes, split as RFC 6962 does.
 * n = 0 gives H(""). Used to hash a tile's 256 entries into one hash of the level above. */
void merkle_hashes_root(const uint8_t (*hashes)[MERKLE_HASH_LEN], size_t n,
                        uint8_t out[MERKLE_HASH_LEN]);

/* MTH(D[lo:hi]) from perfect subtrees (the set bits of hi−lo, high to low, folded from the
 * right). lo must be aligned as in RFC 6962 recursion (a multiple of the largest chunk);
 * lo = hi gives H(""). */
int merkle_range_hash(merkle_get_node_fn get_node, void *ctx, uint64_t lo, uint64_t hi,
                      uint8_t out[MERKLE_HASH_LEN], error *err);
/* Root of the tree of the first `size` leaves. */
int merkle_root(merkle_get_node_fn get_node, void *ctx, uint64_t size,
                uint8_t out[MERKLE_HASH_LEN], error *err);
/* RFC 6962 PATH(index, D[0:size]), deepest sibling first. Needs index < size. */
int merkle_inclusion_proof(merkle_get_node_fn get_node, void *ctx, uint64_t index, uint64_t size,
                           uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN], size_t *proof_len,
                           error *err);
/* RFC 6962 PROOF(size1, D[0:size2]). Needs 0 < size1 <= size2; size1 = size2 gives an empty
 * proof. size1 = 0 is refused, as the verifier refuses it. */
int merkle_consistency_proof(merkle_get_node_fn get_node, void *ctx, uint64_t size1,
                             uint64_t size2, uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN],
                             size_t *proof_len, error *err);

/* A node source over an in-memory array of leaf hashes. Each node costs 2^level − 1 hashes, so
 * it suits tests and small trees; pass a pointer to it as ctx with merkle_leaves_get_node. */
typedef struct merkle_leaves {
    const uint8_t (*hashes)[MERKLE_HASH_LEN];
    uint64_t count;
} merkle_leaves;
int merkle_leaves_get_node(void *ctx, unsigned level, uint64_t index,
                           uint8_t out[MERKLE_HASH_LEN]);

/* A hash as received (decoded from JSON, say): its length is checked by the verifier, so a
 * truncated or empty value is a failed proof, never a read past the end. */
typedef struct merkle_bytes {
    const uint8_t *data;
    size_t len;
} merkle_bytes;

/* RFC 9162 §2.1.3.2. Fails (-1, with the reason) unless index < size, every hash is 32 bytes,
 * the proof has exactly the expected length and it leads from leaf_hash to root. */
int merkle_verify_inclusion_bytes(uint64_t index, uint64_t size, merkle_bytes leaf_hash,
                                  const merkle_bytes *proof, size_t proof_len, merkle_bytes root,
                                  error *err);
/* RFC 9162 §2.1.4.2. size1 = 0 always fails (as in transparency-dev/merkle; tlog-witness
 * treats it as trivially consistent, which is the caller's call). size1 = size2 needs an empty
 * proof and byte-equal roots (no length check, as the vectors expect); otherwise
 * size1 < size2, all hashes 32 bytes, exact proof length, and both roots must match. */
int merkle_verify_consistency_bytes(uint64_t size1, uint64_t size2, const merkle_bytes *proof,
                                    size_t proof_len, merkle_bytes root1, merkle_bytes root2,
                                    error *err);
/* The same over fixed-size hashes, for callers that already hold them as such. */
int merkle_verify_inclusion(uint64_t index, uint64_t size,
                            const uint8_t leaf_hash[MERKLE_HASH_LEN],
                            const uint8_t (*proof)[MERKLE_HASH_LEN], size_t proof_len,
                            const uint8_t root[MERKLE_HASH_LEN], error *err);
int merkle_verify_consistency(uint64_t size1, uint64_t size2,
                              const uint8_t (*proof)[MERKLE_HASH_LEN], size_t proof_len,
                              const uint8_t root1[MERKLE_HASH_LEN],
                              const uint8_t root2[MERKLE_HASH_LEN], error *err);

#endif
