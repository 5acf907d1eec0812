#include "tiles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- Paths ---------------------------------------------------------------------------- */

int tile_path_format(const tile_id *t, char out[TILE_PATH_MAX])
{
    if (t->width >= TILE_WIDTH)
        return -1;
    if (t->data ? t->level != 0 : t->level > TILE_MAX_LEVEL)
        return -1;
    /* Three-digit groups, least significant first; a uint64 has at most 7. */
    unsigned groups[7], n = 0;
    uint64_t v = t->index;
    do {
        groups[n++] = (unsigned)(v % 1000);
        v /= 1000;
    } while (v);
    int pos = t->data ? snprintf(out, TILE_PATH_MAX, "tile/data/")
                      : snprintf(out, TILE_PATH_MAX, "tile/%u/", (unsigned)t->level);
    for (unsigned i = n - 1; i > 0; i--)
        pos += snprintf(out + pos, TILE_PATH_MAX - (size_t)pos, "x%03u/", groups[i]);
    pos += snprintf(out + pos, TILE_PATH_MAX - (size_t)pos, "%03u", groups[0]);
    if (t->width)
        pos += snprintf(out + pos, TILE_PATH_MAX - (size_t)pos, ".p/%u", (unsigned)t->width);
    return pos;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads 1..max_digits decimal digits at path[*p]. */
static bool parse_digits(const char *path, size_t len, size_t *p, unsigned max_digits,
                         unsigned *value)
{
    unsigned v = 0, n = 0;
    while (*p < len && is_digit(path[*p])) {
        if (++n > max_digits)
            return false;
        v = v * 10 + (unsigned)(path[*p] - '0');
        (*p)++;
    }
    *value = v;
    return n > 0;
}

static int malformed(error *err, const char *path, size_t len, const char *why)
{
    int shown = len > 80 ? 80 : (int)len;
    return error_set(err, "malformed tile path \"%.*s\": %s", shown, path, why);
}

int tile_path_parse(const char *path, size_t len, tile_id *out, error *err)
{
    /* Lenient parse, then the canonical re-encoding must give back the same bytes: that one
     * comparison rejects leading zeros, missing or extra 'x', short groups, .p/0 and so on. */
    tile_id t = {0};
    size_t p = 5;
    unsigned v;
    if (len >= TILE_PATH_MAX)
        return malformed(err, path, len, "too long");
    if (len < 5 || memcmp(path, "tile/", 5) != 0)
        return malformed(err, path, len, "does not start with tile/");
    if (len - p >= 5 && memcmp(path + p, "data/", 5) == 0) {
        t.data = true;
        p += 5;
    } else {
        if (!parse_digits(path, len, &p, 2, &v) || p >= len || path[p] != '/')
            return malformed(err, path, len, "bad level");
        if (v > TILE_MAX_LEVEL)
            return malformed(err, path, len, "level above 5");
        t.level = (uint8_t)v;
        p++;
    }
    uint64_t index = 0;
    for (;;) {
        if (p < len && path[p] == 'x')
            p++;
        if (!parse_digits(path, len, &p, 3, &v))
            return malformed(err, path, len, "bad index group");
        if (index > (UINT64_MAX - v) / 1000)
            return malformed(err, path, len, "index too large");
        index = index * 1000 + v;
        if (p == len)
            break;
        if (path[p] == '/') {
            p++;
            continue;
        }
        if (len - p < 3 || memcmp(path + p, ".p/", 3) != 0)
            return malformed(err, path, len, "unexpected character");
        p += 3;
        if (!parse_digits(path, len, &p, 3, &v) || p != len)
            return malformed(err, path, len, "bad width");
        if (v == 0 || v >= TILE_WIDTH)
            return malformed(err, path, len, "width not in 1..255");
        t.width = (uint16_t)v;
        break;
    }
    t.index = index;
    char canonical[TILE_PATH_MAX];
    int n = tile_path_format(&t, canonical);
    if (n < 0 || (size_t)n != len || memcmp(canonical, path, len) != 0)
        return malformed(err, path, len, "not in canonical form");
    *out = t;
    return 0;
}

/* --- Geometry ------------------------------------------------------------------------- */

uint64_t tile_level_hashes(uint64_t size, unsigned level)
{
    return level * TILE_HEIGHT < 64 ? size >> (level * TILE_HEIGHT) : 0;
}

unsigned tile_partial_width(uint64_t size, unsigned level)
{
    return (unsigned)(tile_level_hashes(size, level) % TILE_WIDTH);
}

size_t tile_hash_bytes(const tile_id *t)
{
    return (size_t)(t->width ? t->width : TILE_WIDTH) * MERKLE_HASH_LEN;
}

/* The tile of `level` with `index` as it exists in a tree of `size`: full, or the partial. */
static int tile_in_tree(uint64_t size, unsigned level, uint64_t index, tile_id *t, error *err)
{
    uint64_t count = tile_level_hashes(size, level);
    if (level > TILE_MAX_LEVEL || index > count / TILE_WIDTH ||
        (index == count / TILE_WIDTH && count % TILE_WIDTH == 0))
        return error_set(err, "no tile %u/%llu in a tree of size %llu", level,
                         (unsigned long long)index, (unsigned long long)size);
    *t = (tile_id){.level = (uint8_t)level, .index = index};
    if (index == count / TILE_WIDTH)
        t->width = (uint16_t)(count % TILE_WIDTH);
    return 0;
}

int tile_locate(uint64_t size, unsigned tree_level, uint64_t index, tile_id *t,
                unsigned *position, error *err)
{
    if (tree_level >= 64 || index >= (size >> tree_level))
        return error_set(err, "node (level %u, index %llu) is not in a tree of size %llu",
                         tree_level, (unsigned long long)index, (unsigned long long)size);
    unsigned level = tree_level / TILE_HEIGHT, height = tree_level % TILE_HEIGHT;
    /* index·2^tree_level < size, so this cannot overflow. */
    uint64_t first = index << height;
    if (tile_in_tree(size, level, first / TILE_WIDTH, t, err) != 0)
        return -1;
    *position = (unsigned)(first % TILE_WIDTH);
    return 0;
}

void tile_list_free(tile_list *l)
{
    free(l->items);
    *l = (tile_list){0};
}

static int tile_list_push(tile_list *l, tile_id t, error *err)
{
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        tile_id *items = realloc(l->items, cap * sizeof *items);
        if (!items)
            return error_set(err, "out of memory");
        l->items = items;
        l->cap = cap;
    }
    l->items[l->len++] = t;
    return 0;
}

/* The tiles of one level that appear when its hash count goes from c0 to c1. */
static int push_level_growth(tile_list *out, unsigned level, bool data, uint64_t c0, uint64_t c1,
                             error *err)
{
    tile_id t = {.level = (uint8_t)(data ? 0 : level), .data = data};
    for (t.index = c0 / TILE_WIDTH; t.index < c1 / TILE_WIDTH; t.index++)
        if (tile_list_push(out, t, err) != 0)
            return -1;
    if (c1 % TILE_WIDTH) {
        t.index = c1 / TILE_WIDTH;
        t.width = (uint16_t)(c1 % TILE_WIDTH);
        if (tile_list_push(out, t, err) != 0)
            return -1;
    }
    return 0;
}

int tiles_for_growth(uint64_t size0, uint64_t size1, bool with_data, tile_list *out,
                     error *err)
{
    if (size0 > size1 || size1 > TILE_MAX_TREE_SIZE)
        return error_set(err, "cannot grow a tree from size %llu to %llu",
                         (unsigned long long)size0, (unsigned long long)size1);
    if (size0 == size1)
        return 0;
    if (with_data && push_level_growth(out, 0, true, size0, size1, err) != 0)
        return -1;
    for (unsigned level = 0; level <= TILE_MAX_LEVEL; level++) {
        uint64_t c0 = tile_level_hashes(size0, level), c1 = tile_level_hashes(size1, level);
        if (c0 == c1)
            break; /* nothing reached this level, so nothing reaches the ones above */
        if (push_level_growth(out, level, false, c0, c1, err) != 0)
            return -1;
    }
    return 0;
}

int tiles_right_edge(uint64_t size, bool with_data, tile_list *out, error *err)
{
    if (size > TILE_MAX_TREE_SIZE)
        return error_set(err, "tree size %llu is too large", (unsigned long long)size);
    for (int pass = with_data ? 0 : 1; pass < 2; pass++) {
        for (unsigned level = 0; level <= TILE_MAX_LEVEL; level++) {
            uint64_t count = tile_level_hashes(size, level);
            if (count == 0)
                break;
            tile_id t = {.level = (uint8_t)level, .data = pass == 0, .index = count / TILE_WIDTH,
                         .width = (uint16_t)(count % TILE_WIDTH)};
            if (t.width == 0)
                t.index--;
            if (tile_list_push(out, t, err) != 0)
                return -1;
            if (pass == 0)
                break; /* data tiles exist at level 0 only */
        }
    }
    return 0;
}

/* --- Reading tiles --------------------------------------------------------------------- */

void tile_reader_init(tile_reader *r, uint64_t size, tile_fetch_fn fetch, void *fetch_ctx)
{
    memset(r, 0, sizeof *r);
    r->fetch = fetch;
    r->fetch_ctx = fetch_ctx;
    r->size = size;
}

void tile_reader_free(tile_reader *r)
{
    for (size_t i = 0; i < r->cache_len; i++)
        free(r->cache[i].hashes);
    r->cache_len = 0;
}

static bool same_tile(const tile_id *a, const tile_id *b)
{
    return a->level == b->level && a->data == b->data && a->index == b->index &&
           a->width == b->width;
}

static struct tile_reader_entry *cache_find(tile_reader *r, const tile_id *t)
{
    for (size_t i = 0; i < r->cache_len; i++)
        if (same_tile(&r->cache[i].id, t))
            return &r->cache[i];
    return NULL;
}

/* Takes ownership of hashes. Oldest entry out first: a proof walks the tree once. */
static struct tile_reader_entry *cache_put(tile_reader *r, const tile_id *t, uint8_t *hashes,
                                           size_t count)
{
    struct tile_reader_entry *e;
    if (r->cache_len < TILE_READER_CACHE) {
        e = &r->cache[r->cache_len++];
    } else {
        e = &r->cache[r->cache_next];
        r->cache_next = (r->cache_next + 1) % TILE_READER_CACHE;
        free(e->hashes);
    }
    *e = (struct tile_reader_entry){*t, hashes, count};
    return e;
}

static void tile_name(const tile_id *t, char out[TILE_PATH_MAX])
{
    if (tile_path_format(t, out) < 0)
        snprintf(out, TILE_PATH_MAX, "(invalid tile)");
}

/* Fetches t and checks its length is exactly `want` bytes. Returns 0, TILE_FETCH_NOT_FOUND or
 * -1; on 0, *hashes is a malloc'd copy the caller owns. */
static int fetch_exact(tile_reader *r, const tile_id *t, size_t want, uint8_t **hashes,
                       error *err)
{
    char name[TILE_PATH_MAX];
    buffer b = {0};
    error_clear(err);
    int rc = r->fetch(r->fetch_ctx, t, &b, err);
    if (rc == TILE_FETCH_NOT_FOUND) {
        buffer_free(&b);
        return TILE_FETCH_NOT_FOUND;
    }
    tile_name(t, name);
    if (rc != 0) {
        buffer_free(&b);
        return error_wrap(err, "fetching %s", name);
    }
    if (b.len != want) {
        size_t got = b.len;
        buffer_free(&b);
        return error_set(err, "%s is %zu bytes, want %zu", name, got, want);
    }
    size_t len;
    *hashes = buffer_steal(&b, &len);
    if (!*hashes)
        return error_set(err, "out of memory");
    return 0;
}

static int load_tile(tile_reader *r, const tile_id *t, struct tile_reader_entry **out,
                     error *err)
{
    struct tile_reader_entry *e = cache_find(r, t);
    if (e) {
        *out = e;
        return 0;
    }
    size_t count = t->width ? t->width : TILE_WIDTH;
    uint8_t *hashes = NULL;
    int rc = fetch_exact(r, t, count * MERKLE_HASH_LEN, &hashes, err);
    if (rc == TILE_FETCH_NOT_FOUND && t->width) {
        /* A partial tile may be gone once the full one replaced it; its prefix is the same. */
        tile_id full = *t;
        full.width = 0;
        rc = fetch_exact(r, &full, TILE_FULL_BYTES, &hashes, err);
    }
    if (rc == TILE_FETCH_NOT_FOUND && t->level > 0) {
        /* Each hash of a level-T tile is the root of one full level-(T−1) tile. */
        hashes = malloc(count * MERKLE_HASH_LEN);
        if (!hashes)
            return error_set(err, "out of memory");
        for (size_t j = 0; j < count; j++) {
            tile_id below = {.level = (uint8_t)(t->level - 1),
                             .index = t->index * TILE_WIDTH + j};
            struct tile_reader_entry *child;
            if (load_tile(r, &below, &child, err) != 0) {
                free(hashes);
                return -1;
            }
            merkle_hashes_root((const uint8_t (*)[MERKLE_HASH_LEN])child->hashes, TILE_WIDTH,
                               hashes + j * MERKLE_HASH_LEN);
        }
        rc = 0;
    }
    if (rc == TILE_FETCH_NOT_FOUND) {
        char name[TILE_PATH_MAX];
        tile_name(t, name);
        return error_set(err, "%s not found", name);
    }
    if (rc != 0)
        return -1;
    *out = cache_put(r, t, hashes, count);
    return 0;
}

int tile_reader_tile(tile_reader *r, unsigned level, uint64_t index,
                     uint8_t out[TILE_WIDTH][MERKLE_HASH_LEN], size_t *count, error *err)
{
    tile_id t;
    struct tile_reader_entry *e;
    if (tile_in_tree(r->size, level, index, &t, err) != 0 || load_tile(r, &t, &e, err) != 0)
        return -1;
    memcpy(out, e->hashes, e->count * MERKLE_HASH_LEN);
    *count = e->count;
    return 0;
}

int tile_reader_get_node(void *reader, unsigned tree_level, uint64_t index,
                         uint8_t out[MERKLE_HASH_LEN])
{
    tile_reader *r = reader;
    tile_id t;
    unsigned position;
    struct tile_reader_entry *e;
    error_clear(&r->err);
    if (tile_locate(r->size, tree_level, index, &t, &position, &r->err) != 0 ||
        load_tile(r, &t, &e, &r->err) != 0)
        return -1;
    size_t n = (size_t)1 << (tree_level % TILE_HEIGHT);
    if (position + n > e->count)
        return error_set(&r->err, "tile too short for node (level %u, index %llu)", tree_level,
                         (unsigned long long)index);
    merkle_hashes_root((const uint8_t (*)[MERKLE_HASH_LEN])(e->hashes +
                                                             position * MERKLE_HASH_LEN),
                       n, out);
    return 0;
}

/* Adds the reader's own reason to the generator's "cannot get tree node (...)". */
static int reader_failed(tile_reader *r, error *err)
{
    if (err && error_is_set(&r->err)) {
        char outer[sizeof err->msg];
        memcpy(outer, err->msg, sizeof outer);
        error_set(err, "%s: %s", outer, r->err.msg);
    }
    tile_reader_free(r);
    return -1;
}

int tile_tree_root(uint64_t size, tile_fetch_fn fetch, void *ctx, uint8_t out[MERKLE_HASH_LEN],
                   error *err)
{
    tile_reader r;
    tile_reader_init(&r, size, fetch, ctx);
    if (merkle_root(tile_reader_get_node, &r, size, out, err) != 0)
        return reader_failed(&r, err);
    tile_reader_free(&r);
    return 0;
}

int tile_tree_inclusion_proof(uint64_t size, uint64_t index, tile_fetch_fn fetch, void *ctx,
                              uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN],
                              size_t *proof_len, error *err)
{
    tile_reader r;
    tile_reader_init(&r, size, fetch, ctx);
    if (merkle_inclusion_proof(tile_reader_get_node, &r, index, size, proof, proof_len, err) != 0)
        return reader_failed(&r, err);
    tile_reader_free(&r);
    return 0;
}

int tile_tree_consistency_proof(uint64_t size1, uint64_t size2, tile_fetch_fn fetch, void *ctx,
                                uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN],
                                size_t *proof_len, error *err)
{
    tile_reader r;
    tile_reader_init(&r, size2, fetch, ctx);
    if (merkle_consistency_proof(tile_reader_get_node, &r, size1, size2, proof, proof_len,
                                 err) != 0)
        return reader_failed(&r, err);
    tile_reader_free(&r);
    return 0;
}

/* --- Building tiles ------------------------------------------------------------------- */

void tile_edge_init(tile_edge *e)
{
    memset(e, 0, sizeof *e);
}

int tile_edge_load(tile_edge *e, uint64_t size, tile_fetch_fn fetch, void *ctx, error *err)
{
    if (size > TILE_MAX_TREE_SIZE)
        return error_set(err, "tree size %llu is too large", (unsigned long long)size);
    tile_edge_init(e);
    tile_reader r;
    tile_reader_init(&r, size, fetch, ctx);
    for (unsigned level = 0; level <= TILE_MAX_LEVEL; level++) {
        uint64_t count = tile_level_hashes(size, level);
        unsigned width = tile_partial_width(size, level);
        size_t got;
        if (width == 0)
            continue; /* only the incomplete tile of a level is needed to extend it */
        if (tile_reader_tile(&r, level, count / TILE_WIDTH, e->hashes[level], &got, err) != 0) {
            tile_reader_free(&r);
            tile_edge_init(e);
            return error_wrap(err, "loading the right edge of size %llu",
                              (unsigned long long)size);
        }
    }
    tile_reader_free(&r);
    e->size = size;
    return 0;
}

int tile_edge_append(tile_edge *e, const uint8_t (*leaf_hashes)[MERKLE_HASH_LEN], size_t n,
                     tile_emit_fn emit, void *ctx, error *err)
{
    if (e->size > TILE_MAX_TREE_SIZE || n > TILE_MAX_TREE_SIZE - e->size)
        return error_set(err, "appending %zu leaves to size %llu exceeds 2^40", n,
                         (unsigned long long)e->size);
    uint64_t size0 = e->size;
    for (size_t i = 0; i < n; i++) {
        uint64_t s = e->size;
        uint8_t carry[MERKLE_HASH_LEN];
        const uint8_t *h = leaf_hashes[i];
        /* Put the hash in its level's incomplete tile; a tile that fills is written out and
         * its root climbs one level. The 2^40 bound keeps level 5 from ever filling. */
        for (unsigned level = 0;; level++) {
            unsigned width = tile_partial_width(s, level);
            memcpy(e->hashes[level][width], h, MERKLE_HASH_LEN);
            if (width < TILE_WIDTH - 1)
                break;
            tile_id full = {.level = (uint8_t)level,
                            .index = tile_level_hashes(s, level) / TILE_WIDTH};
            if (emit(ctx, &full, e->hashes[level][0], TILE_FULL_BYTES, err) != 0)
                return -1;
            merkle_hashes_root(e->hashes[level], TILE_WIDTH, carry);
            h = carry;
        }
        e->size = s + 1;
    }
    for (unsigned level = 0; level <= TILE_MAX_LEVEL; level++) {
        uint64_t c0 = tile_level_hashes(size0, level), c1 = tile_level_hashes(e->size, level);
        if (c0 == c1)
            break;
        tile_id partial = {.level = (uint8_t)level, .index = c1 / TILE_WIDTH,
                           .width = (uint16_t)(c1 % TILE_WIDTH)};
        if (partial.width &&
            emit(ctx, &partial, e->hashes[level][0], tile_hash_bytes(&partial), err) != 0)
            return -1;
    }
    return 0;
}

void tile_edge_root(const tile_edge *e, uint8_t out[MERKLE_HASH_LEN])
{
    if (e->size == 0) {
        merkle_empty_root(out);
        return;
    }
    /* The perfect subtrees of the size's set bits, largest first, are runs of 2^r hashes of
     * the levels' incomplete tiles; full tiles are already inside the level above. */
    uint8_t chunks[64][MERKLE_HASH_LEN];
    unsigned n = 0;
    for (int level = TILE_MAX_LEVEL; level >= 0; level--) {
        unsigned width = tile_partial_width(e->size, (unsigned)level), offset = 0;
        for (int height = TILE_HEIGHT - 1; height >= 0; height--) {
            unsigned run = 1u << height;
            if (!(width & run))
                continue;
            merkle_hashes_root(&e->hashes[level][offset], run, chunks[n++]);
            offset += run;
        }
    }
    uint8_t h[MERKLE_HASH_LEN];
    memcpy(h, chunks[n - 1], MERKLE_HASH_LEN);
    for (unsigned i = n - 1; i-- > 0;)
        merkle_node_hash(chunks[i], h, h);
    memcpy(out, h, MERKLE_HASH_LEN);
}

int tile_batch_emit(void *batch, const tile_id *t, const uint8_t *data, size_t len,
                    error *err)
{
    tile_batch *b = batch;
    if (b->len == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct tile_batch_item *items = realloc(b->items, cap * sizeof *items);
        if (!items)
            return error_set(err, "out of memory");
        b->items = items;
        b->cap = cap;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return error_set(err, "out of memory");
    memcpy(copy, data, len);
    b->items[b->len++] = (struct tile_batch_item){*t, copy, len};
    return 0;
}

void tile_batch_free(tile_batch *b)
{
    for (size_t i = 0; i < b->len; i++)
        free(b->items[i].data);
    free(b->items);
    *b = (tile_batch){0};
}
