/* tiles: tlog-tiles geometry as static-ct-api uses it (SPEC §1.6, §1.7, §2).
 *
 * Height 8, width 256, hash tile levels 0..5 plus data tiles that mirror level 0. A level-L
 * tile holds tree-level 8L hashes; hash N of level L (L >= 1) is the root of full tile N of
 * level L−1. Partial tiles (width 1..255) never feed the level above.
 *
 * Four jobs: tile paths (format / strict parse); which tiles a growing tree writes; building
 * tile contents incrementally from the right edge (the sequencer's hot path); and reading any
 * tree node, root or proof back from stored tiles. */
#ifndef TEGULA_TILES_H
#define TEGULA_TILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "error.h"
#include "merkle.h"

#define TILE_HEIGHT 8
#define TILE_WIDTH 256
#define TILE_MAX_LEVEL 5
#define TILE_LEVELS (TILE_MAX_LEVEL + 1)
/* leaf_index is 40 bits: a static-ct tree never holds more, and then level 5 never fills. */
#define TILE_MAX_TREE_SIZE ((uint64_t)1 << 40)
/* Longest path plus terminator ("tile/data/" + 7 index groups + ".p/255"). */
#define TILE_PATH_MAX 64
/* Bytes of a full hash tile. */
#define TILE_FULL_BYTES (TILE_WIDTH * MERKLE_HASH_LEN)

typedef struct tile_id {
    uint8_t level;   /* 0..TILE_MAX_LEVEL; 0 for data tiles */
    bool data;       /* tile/data/... (entries) instead of a hash tile */
    uint64_t index;
    uint16_t width;  /* 0 = full tile, 1..255 = partial tile of that many entries */
} tile_id;

/* --- Paths ---------------------------------------------------------------------------- */

/* Writes the path ("tile/1/x001/234.p/5", "tile/data/000") NUL-terminated into out.
 * Returns its length, or -1 if the id is not valid (level > 5, width > 255, data level != 0). */
int tile_path_format(const tile_id *t, char out[TILE_PATH_MAX]);
/* Parses path[0..len) strictly: it must be exactly what tile_path_format would write. */
int tile_path_parse(const char *path, size_t len, tile_id *out, error *err);

/* --- Geometry of a tree of size s ------------------------------------------------------ */

/* Number of hashes stored at tile level `level`: floor(s / 256^level). */
uint64_t tile_level_hashes(uint64_t size, unsigned level);
/* Width of the partial tile at that level, floor(s / 256^level) mod 256; 0 = none. */
unsigned tile_partial_width(uint64_t size, unsigned level);
/* Byte length of a hash tile: 32·width, 8192 when full. */
size_t tile_hash_bytes(const tile_id *t);
/* Which tile holds the entries needed for node(tree_level, index) in a tree of `size`
 * (SPEC §2.3 steps 1–3): the tile (full or the size's partial), and the position of the
 * first of the 2^(tree_level mod 8) entries. Fails if the node is not in the tree. */
int tile_locate(uint64_t size, unsigned tree_level, uint64_t index, tile_id *t,
                unsigned *position, error *err);

typedef struct tile_list {
    tile_id *items;
    size_t len, cap;
} tile_list;
void tile_list_free(tile_list *l);

/* Appends the tiles that are new when the tree grows from size0 to size1 (SPEC §2.5): per
 * level, every tile that became full plus the new partial tile (if the level's width is not
 * 0 and the level changed at all). Data tiles first (when with_data), then hash levels
 * 0, 1, ...; each level in index order with its partial last. size0 = size1 adds nothing. */
int tiles_for_growth(uint64_t size0, uint64_t size1, bool with_data, tile_list *out,
                     error *err);
/* Appends the right-edge tiles of a tree of `size`: per level that has hashes, the partial
 * tile, or the last full tile when the width is 0. Data tile first when with_data. */
int tiles_right_edge(uint64_t size, bool with_data, tile_list *out, error *err);

/* --- Reading tiles --------------------------------------------------------------------- */

/* Returned by a fetch callback when the tile does not exist (as opposed to -1, a failure). */
#define TILE_FETCH_NOT_FOUND 1
/* Appends the stored bytes of tile t to out (empty on entry). Returns 0, TILE_FETCH_NOT_FOUND,
 * or -1 with a reason. Hash tiles only: the reader never asks for data tiles. */
typedef int (*tile_fetch_fn)(void *ctx, const tile_id *t, buffer *out, error *err);

#define TILE_READER_CACHE 32

/* Reads node hashes of a tree of a given size from tiles, caching the tiles it fetched.
 * Fallbacks when a tile is not found: a partial tile is cut from the full tile of the same
 * index; a hash tile of level T >= 1 is rebuilt from the roots of the level T−1 full tiles
 * (SPEC §2.3; needed for the navigli test data). Every tile's length is checked exactly
 * against the width the tree size implies. Fields are private. */
typedef struct tile_reader {
    tile_fetch_fn fetch;
    void *fetch_ctx;
    uint64_t size;
    struct tile_reader_entry {
        tile_id id;
        uint8_t *hashes;
        size_t count;
    } cache[TILE_READER_CACHE];
    size_t cache_len, cache_next;
    error err; /* why the last tile_reader_get_node failed */
} tile_reader;

void tile_reader_init(tile_reader *r, uint64_t size, tile_fetch_fn fetch, void *fetch_ctx);
void tile_reader_free(tile_reader *r);
/* Copies the entries of the size's tile (level, index) into out; *count = its width. */
int tile_reader_tile(tile_reader *r, unsigned level, uint64_t index,
                     uint8_t out[TILE_WIDTH][MERKLE_HASH_LEN], size_t *count, error *err);
/* node(tree_level, index) from tiles; a merkle_get_node_fn (ctx = the tile_reader). */
int tile_reader_get_node(void *reader, unsigned tree_level, uint64_t index,
                         uint8_t out[MERKLE_HASH_LEN]);

/* One-call conveniences, each with its own short-lived reader. */
int tile_tree_root(uint64_t size, tile_fetch_fn fetch, void *ctx, uint8_t out[MERKLE_HASH_LEN],
                   error *err);
int tile_tree_inclusion_proof(uint64_t size, uint64_t index, tile_fetch_fn fetch, void *ctx,
                              uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN],
                              size_t *proof_len, error *err);
int tile_tree_consistency_proof(uint64_t size1, uint64_t size2, tile_fetch_fn fetch, void *ctx,
                                uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN],
                                size_t *proof_len, error *err);

/* --- Building tiles: the right edge ---------------------------------------------------- */

/* Receives one new or changed hash tile: 32·width bytes (8192 when full), valid only during
 * the call. Return 0, or -1 with a reason to abort the append. */
typedef int (*tile_emit_fn)(void *ctx, const tile_id *t, const uint8_t *data, size_t len,
                            error *err);

/* Everything needed to extend the tree: per level, the hashes of its incomplete tile
 * (tile_partial_width(size, level) of them). About 48 KiB, so keep it on the heap. `size` may
 * be read; change it only through the functions below. */
typedef struct tile_edge {
    uint64_t size;
    uint8_t hashes[TILE_LEVELS][TILE_WIDTH][MERKLE_HASH_LEN];
} tile_edge;

/* The empty tree. */
void tile_edge_init(tile_edge *e);
/* Loads the edge of a tree of `size` from its stored partial tiles. Compare tile_edge_root
 * with the checkpoint root before trusting it. */
int tile_edge_load(tile_edge *e, uint64_t size, tile_fetch_fn fetch, void *ctx, error *err);
/* Appends n leaf hashes and emits every tile the growth writes, exactly the set of
 * tiles_for_growth(old size, new size, false): full tiles as they fill (the root of each
 * becomes the next hash of the level above, so a tile comes before the one it completes),
 * then the partial tiles of the new size, level 0 first. Cost is O(n) hashes. On failure the edge is unchanged if nothing was emitted yet; otherwise it is
 * half-advanced and must be reloaded. */
int tile_edge_append(tile_edge *e, const uint8_t (*leaf_hashes)[MERKLE_HASH_LEN], size_t n,
                     tile_emit_fn emit, void *ctx, error *err);
/* Root of the tree the edge describes (at most ~1,500 hashes, from the partial tiles only). */
void tile_edge_root(const tile_edge *e, uint8_t out[MERKLE_HASH_LEN]);

/* A tile_emit_fn that keeps copies of the emitted tiles (ctx = tile_batch). */
typedef struct tile_batch {
    struct tile_batch_item {
        tile_id id;
        uint8_t *data;
        size_t len;
    } *items;
    size_t len, cap;
} tile_batch;
int tile_batch_emit(void *batch, const tile_id *t, const uint8_t *data, size_t len,
                    error *err);
void tile_batch_free(tile_batch *b);

#endif
