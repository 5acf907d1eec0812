#include "merkle.h"

#include <string.h>

#include "sha256.h"

void merkle_leaf_hash(const void *data, size_t len, uint8_t out[MERKLE_HASH_LEN])
{
    static const uint8_t prefix = 0x00;
    const void *parts[2] = {&prefix, data};
    size_t lens[2] = {1, len};
    sha256_parts(out, 2, parts, lens);
}

void merkle_node_hash(const uint8_t left[MERKLE_HASH_LEN], const uint8_t right[MERKLE_HASH_LEN],
                      uint8_t out[MERKLE_HASH_LEN])
{
    /* One contiguous 65-byte input: cheaper than a multi-part digest, and out may alias. */
    uint8_t in[1 + 2 * MERKLE_HASH_LEN];
    in[0] = 0x01;
    memcpy(in + 1, left, MERKLE_HASH_LEN);
    memcpy(in + 1 + MERKLE_HASH_LEN, right, MERKLE_HASH_LEN);
    sha256(in, sizeof in, out);
}

void merkle_empty_root(uint8_t out[MERKLE_HASH_LEN])
{
    sha256("", 0, out);
}

static unsigned bit_length(uint64_t x)
{
    return x ? 64u - (unsigned)__builtin_clzll(x) : 0;
}

/* Largest power of two strictly less than n (n >= 2): RFC 6962's split point k. */
static uint64_t split_point(uint64_t n)
{
    return (uint64_t)1 << (bit_length(n - 1) - 1);
}

void merkle_hashes_root(const uint8_t (*hashes)[MERKLE_HASH_LEN], size_t n,
                        uint8_t out[MERKLE_HASH_LEN])
{
    if (n == 0) {
        merkle_empty_root(out);
        return;
    }
    if (n == 1) {
        memcpy(out, hashes[0], MERKLE_HASH_LEN);
        return;
    }
    size_t k = (size_t)split_point(n);
    uint8_t left[MERKLE_HASH_LEN], right[MERKLE_HASH_LEN];
    merkle_hashes_root(hashes, k, left);
    merkle_hashes_root(hashes + k, n - k, right);
    merkle_node_hash(left, right, out);
}

static int get_node_or_fail(merkle_get_node_fn get_node, void *ctx, unsigned level,
                            uint64_t index, uint8_t out[MERKLE_HASH_LEN], error *err)
{
    if (get_node(ctx, level, index, out) != 0)
        return error_set(err, "cannot get tree node (level %u, index %llu)", level,
                         (unsigned long long)index);
    return 0;
}

int merkle_range_hash(merkle_get_node_fn get_node, void *ctx, uint64_t lo, uint64_t hi,
                      uint8_t out[MERKLE_HASH_LEN], error *err)
{
    if (lo > hi)
        return error_set(err, "empty range [%llu, %llu)", (unsigned long long)lo,
                         (unsigned long long)hi);
    if (lo == hi) {
        merkle_empty_root(out);
        return 0;
    }
    /* At most one chunk per bit of hi − lo. */
    uint8_t chunks[64][MERKLE_HASH_LEN];
    unsigned n = 0;
    for (uint64_t pos = lo; pos < hi; n++) {
        unsigned level = bit_length(hi - pos) - 1;
        uint64_t width = (uint64_t)1 << level;
        if (pos & (width - 1))
            return error_set(err, "range [%llu, %llu) is not aligned to its subtrees",
                             (unsigned long long)lo, (unsigned long long)hi);
        if (get_node_or_fail(get_node, ctx, level, pos >> level, chunks[n], err) != 0)
            return -1;
        pos += width;
    }
    uint8_t h[MERKLE_HASH_LEN];
    memcpy(h, chunks[n - 1], MERKLE_HASH_LEN);
    for (unsigned i = n - 1; i-- > 0;)
        merkle_node_hash(chunks[i], h, h);
    memcpy(out, h, MERKLE_HASH_LEN);
    return 0;
}

int merkle_root(merkle_get_node_fn get_node, void *ctx, uint64_t size,
                uint8_t out[MERKLE_HASH_LEN], error *err)
{
    return merkle_range_hash(get_node, ctx, 0, size, out, err);
}

/* Hashes are collected top-down while descending, and proofs list them bottom-up. */
static void reverse_into(uint8_t (*dst)[MERKLE_HASH_LEN], uint8_t (*src)[MERKLE_HASH_LEN],
                         size_t n)
{
    for (size_t i = 0; i < n; i++)
        memcpy(dst[i], src[n - 1 - i], MERKLE_HASH_LEN);
}

int merkle_inclusion_proof(merkle_get_node_fn get_node, void *ctx, uint64_t index, uint64_t size,
                           uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN], size_t *proof_len,
                           error *err)
{
    *proof_len = 0;
    if (index >= size)
        return error_set(err, "leaf index %llu is not in a tree of size %llu",
                         (unsigned long long)index, (unsigned long long)size);
    uint8_t path[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
    size_t n = 0;
    uint64_t lo = 0, hi = size;
    while (hi - lo > 1) {
        uint64_t k = split_point(hi - lo), mid = lo + k;
        if (n == MERKLE_MAX_PROOF)
            return error_set(err, "inclusion proof longer than %d hashes", MERKLE_MAX_PROOF);
        if (index < mid) {
            if (merkle_range_hash(get_node, ctx, mid, hi, path[n], err) != 0)
                return -1;
            hi = mid;
        } else {
            unsigned level = bit_length(k) - 1;
            if (get_node_or_fail(get_node, ctx, level, lo >> level, path[n], err) != 0)
                return -1;
            lo = mid;
        }
        n++;
    }
    reverse_into(proof, path, n);
    *proof_len = n;
    return 0;
}

int merkle_consistency_proof(merkle_get_node_fn get_node, void *ctx, uint64_t size1,
                             uint64_t size2, uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN],
                             size_t *proof_len, error *err)
{
    *proof_len = 0;
    if (size1 == 0 || size1 > size2)
        return error_set(err, "no consistency proof from size %llu to size %llu",
                         (unsigned long long)size1, (unsigned long long)size2);
    uint8_t path[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
    size_t n = 0;
    uint64_t lo = 0, hi = size2;
    bool whole_old_tree = true; /* SUBPROOF's b: D[lo:hi] still starts at the old tree's root. */
    while (hi != size1) {
        uint64_t k = split_point(hi - lo), mid = lo + k;
        if (n == MERKLE_MAX_PROOF)
            return error_set(err, "consistency proof longer than %d hashes", MERKLE_MAX_PROOF);
        if (size1 <= mid) {
            if (merkle_range_hash(get_node, ctx, mid, hi, path[n], err) != 0)
                return -1;
            hi = mid;
        } else {
            unsigned level = bit_length(k) - 1;
            if (get_node_or_fail(get_node, ctx, level, lo >> level, path[n], err) != 0)
                return -1;
            lo = mid;
            whole_old_tree = false;
        }
        n++;
    }
    size_t out = 0;
    if (!whole_old_tree) {
        if (n == MERKLE_MAX_PROOF)
            return error_set(err, "consistency proof longer than %d hashes", MERKLE_MAX_PROOF);
        if (merkle_range_hash(get_node, ctx, lo, hi, proof[0], err) != 0)
            return -1;
        out = 1;
    }
    reverse_into(proof + out, path, n);
    *proof_len = out + n;
    return 0;
}

int merkle_leaves_get_node(void *ctx, unsigned level, uint64_t index,
                           uint8_t out[MERKLE_HASH_LEN])
{
    const merkle_leaves *leaves = ctx;
    if (level >= 64 || index >= (leaves->count >> level))
        return -1;
    uint64_t width = (uint64_t)1 << level;
    if (width > SIZE_MAX)
        return -1;
    merkle_hashes_root(leaves->hashes + index * width, (size_t)width, out);
    return 0;
}

static bool is_hash(merkle_bytes b)
{
    return b.len == MERKLE_HASH_LEN && b.data != NULL;
}

static bool hash_equals(const uint8_t a[MERKLE_HASH_LEN], merkle_bytes b)
{
    return is_hash(b) && memcmp(a, b.data, MERKLE_HASH_LEN) == 0;
}

int merkle_verify_inclusion_bytes(uint64_t index, uint64_t size, merkle_bytes leaf_hash,
                                  const merkle_bytes *proof, size_t proof_len, merkle_bytes root,
                                  error *err)
{
    if (index >= size)
        return error_set(err, "leaf index %llu is not in a tree of size %llu",
                         (unsigned long long)index, (unsigned long long)size);
    if (!is_hash(leaf_hash))
        return error_set(err, "leaf hash is %zu bytes, not %d", leaf_hash.len, MERKLE_HASH_LEN);
    if (!is_hash(root))
        return error_set(err, "root is %zu bytes, not %d", root.len, MERKLE_HASH_LEN);
    unsigned inner = bit_length(index ^ (size - 1));
    unsigned border = (unsigned)__builtin_popcountll(inner < 64 ? index >> inner : 0);
    if (proof_len != (size_t)inner + border)
        return error_set(err, "inclusion proof has %zu hashes, want %u", proof_len,
                         inner + border);
    for (size_t i = 0; i < proof_len; i++)
        if (!is_hash(proof[i]))
            return error_set(err, "inclusion proof hash %zu is %zu bytes", i, proof[i].len);

    uint64_t fn = index, sn = size - 1;
    uint8_t r[MERKLE_HASH_LEN];
    memcpy(r, leaf_hash.data, MERKLE_HASH_LEN);
    for (size_t i = 0; i < proof_len; i++) {
        if (sn == 0)
            return error_set(err, "inclusion proof is too long");
        if ((fn & 1) || fn == sn) {
            merkle_node_hash(proof[i].data, r, r);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            merkle_node_hash(r, proof[i].data, r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0)
        return error_set(err, "inclusion proof is too short");
    if (!hash_equals(r, root))
        return error_set(err, "inclusion proof does not lead to the root");
    return 0;
}

int merkle_verify_consistency_bytes(uint64_t size1, uint64_t size2, const merkle_bytes *proof,
                                    size_t proof_len, merkle_bytes root1, merkle_bytes root2,
                                    error *err)
{
    if (size2 < size1)
        return error_set(err, "tree shrank from size %llu to %llu", (unsigned long long)size1,
                         (unsigned long long)size2);
    if (size1 == 0)
        return error_set(err, "consistency with the empty tree proves nothing");
    if (size1 == size2) {
        /* Nothing to prove: the roots must simply be the same value. */
        if (proof_len != 0)
            return error_set(err, "equal tree sizes need an empty consistency proof");
        if (root1.len != root2.len ||
            (root1.len && memcmp(root1.data, root2.data, root1.len) != 0))
            return error_set(err, "equal tree sizes with different roots");
        return 0;
    }
    if (proof_len == 0)
        return error_set(err, "empty consistency proof");
    if (!is_hash(root1) || !is_hash(root2))
        return error_set(err, "roots must be %d bytes", MERKLE_HASH_LEN);
    for (size_t i = 0; i < proof_len; i++)
        if (!is_hash(proof[i]))
            return error_set(err, "consistency proof hash %zu is %zu bytes", i, proof[i].len);

    /* Expected length: the inclusion path of leaf size1−1 in size2, minus the levels covered
     * by the old tree's rightmost perfect subtree, plus that subtree's hash unless it is the
     * whole old tree (then root1 stands in for it). */
    unsigned inner = bit_length((size1 - 1) ^ (size2 - 1));
    unsigned border = (unsigned)__builtin_popcountll(inner < 64 ? (size1 - 1) >> inner : 0);
    unsigned shift = (unsigned)__builtin_ctzll(size1);
    bool seed_is_root1 = size1 == ((uint64_t)1 << shift);
    size_t want = (seed_is_root1 ? 0 : 1) + (size_t)(inner - shift) + border;
    if (proof_len != want)
        return error_set(err, "consistency proof has %zu hashes, want %zu", proof_len, want);

    const uint8_t *seed = seed_is_root1 ? root1.data : proof[0].data;
    size_t start = seed_is_root1 ? 0 : 1;
    uint64_t fn = size1 - 1, sn = size2 - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    uint8_t fr[MERKLE_HASH_LEN], sr[MERKLE_HASH_LEN];
    memcpy(fr, seed, MERKLE_HASH_LEN);
    memcpy(sr, seed, MERKLE_HASH_LEN);
    for (size_t i = start; i < proof_len; i++) {
        if (sn == 0)
            return error_set(err, "consistency proof is too long");
        const uint8_t *c = proof[i].data;
        if ((fn & 1) || fn == sn) {
            merkle_node_hash(c, fr, fr);
            merkle_node_hash(c, sr, sr);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            merkle_node_hash(sr, c, sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0)
        return error_set(err, "consistency proof is too short");
    if (!hash_equals(fr, root1))
        return error_set(err, "consistency proof does not lead to the old root");
    if (!hash_equals(sr, root2))
        return error_set(err, "consistency proof does not lead to the new root");
    return 0;
}

static merkle_bytes hash_bytes(const uint8_t *h)
{
    return (merkle_bytes){h, MERKLE_HASH_LEN};
}

int merkle_verify_inclusion(uint64_t index, uint64_t size,
                            const uint8_t leaf_hash[MERKLE_HASH_LEN],
                            const uint8_t (*proof)[MERKLE_HASH_LEN], size_t proof_len,
                            const uint8_t root[MERKLE_HASH_LEN], error *err)
{
    if (proof_len > MERKLE_MAX_PROOF)
        return error_set(err, "inclusion proof longer than %d hashes", MERKLE_MAX_PROOF);
    merkle_bytes refs[MERKLE_MAX_PROOF];
    for (size_t i = 0; i < proof_len; i++)
        refs[i] = hash_bytes(proof[i]);
    return merkle_verify_inclusion_bytes(index, size, hash_bytes(leaf_hash), refs, proof_len,
                                         hash_bytes(root), err);
}

int merkle_verify_consistency(uint64_t size1, uint64_t size2,
                              const uint8_t (*proof)[MERKLE_HASH_LEN], size_t proof_len,
                              const uint8_t root1[MERKLE_HASH_LEN],
                              const uint8_t root2[MERKLE_HASH_LEN], error *err)
{
    if (proof_len > MERKLE_MAX_PROOF)
        return error_set(err, "consistency proof longer than %d hashes", MERKLE_MAX_PROOF);
    merkle_bytes refs[MERKLE_MAX_PROOF];
    for (size_t i = 0; i < proof_len; i++)
        refs[i] = hash_bytes(proof[i]);
    return merkle_verify_consistency_bytes(size1, size2, refs, proof_len, hash_bytes(root1),
                                           hash_bytes(root2), err);
}
