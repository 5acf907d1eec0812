/* tiles: paths, growth geometry, building tiles from the right edge, and reading roots and
 * proofs back from tiles, against SPEC §1.6/§1.7/§2 and the real navigli2025h2 tiles. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "merkle.h"
#include "tiles.h"

#define HL MERKLE_HASH_LEN

static void assert_path(const tile_id *t, const char *want)
{
    char got[TILE_PATH_MAX];
    int n = tile_path_format(t, got);
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(got, want);
    tile_id back;
    error err = {{0}};
    if (tile_path_parse(want, strlen(want), &back, &err) != 0)
        fail_msg("%s: %s", want, err.msg);
    assert_int_equal(back.level, t->level);
    assert_int_equal(back.data, t->data);
    assert_true(back.index == t->index);
    assert_int_equal(back.width, t->width);
}

static void test_path_examples(void **state)
{
    (void)state;
    static const struct {
        uint64_t index;
        const char *path;
    } table[] = {
        {0, "tile/0/000"},
        {5, "tile/0/005"},
        {999, "tile/0/999"},
        {1000, "tile/0/x001/000"},
        {1000000, "tile/0/x001/x000/000"},
        {1234067, "tile/0/x001/x234/067"},
        {4294967295ULL, "tile/0/x004/x294/x967/295"},
        {UINT64_MAX, "tile/0/x018/x446/x744/x073/x709/x551/615"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        tile_id t = {.index = table[i].index};
        assert_path(&t, table[i].path);
    }
    assert_path(&(tile_id){.level = 0, .index = 4820, .width = 148}, "tile/0/x004/820.p/148");
    assert_path(&(tile_id){.level = 1, .index = 18, .width = 212}, "tile/1/018.p/212");
    assert_path(&(tile_id){.level = 2, .index = 0, .width = 18}, "tile/2/000.p/18");
    assert_path(&(tile_id){.level = 5, .index = 0, .width = 1}, "tile/5/000.p/1");
    assert_path(&(tile_id){.level = 1, .index = 1, .width = 17}, "tile/1/001.p/17");
    assert_path(&(tile_id){.level = 0, .index = 256, .width = 1}, "tile/0/256.p/1");
    assert_path(&(tile_id){.level = 0, .index = 3, .width = 255}, "tile/0/003.p/255");
    assert_path(&(tile_id){.data = true, .index = 4820}, "tile/data/x004/820");
    assert_path(&(tile_id){.data = true, .index = 3, .width = 10}, "tile/data/003.p/10");
    assert_path(&(tile_id){.data = true, .index = 0}, "tile/data/000");
    /* The longest path still fits. */
    char buf[TILE_PATH_MAX];
    assert_true(tile_path_format(&(tile_id){.data = true, .index = UINT64_MAX, .width = 255},
                                 buf) < TILE_PATH_MAX);
}

static void test_path_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "", "tile", "tile/", "tile/0", "tile/0/", "/tile/0/000", "tile/0/000/", " tile/0/000",
        "tile/0/000 ", "TILE/0/000", "tiles/0/000", "tile//000", "tile/0//000",
        "tile/6/000", "tile/7/000", "tile/63/000", "tile/00/000", "tile/01/000", "tile/+1/000",
        "tile/-1/000", "tile/a/000", "tile/1x/000",
        "tile/0/0", "tile/0/00", "tile/0/0000", "tile/0/1000", "tile/0/12a", "tile/0/-01",
        "tile/0/+01", "tile/0/x000", "tile/0/x001", "tile/0/x001/", "tile/0/001/000",
        "tile/0/x000/000", "tile/0/x000/001", "tile/0/x01/000", "tile/0/x0001/000",
        "tile/0/x001/x000", "tile/0/xx001/000", "tile/0/x/000", "tile/0/x001/x00/000",
        "tile/0/x018/x446/x744/x073/x709/x551/616",
        "tile/0/x001/x018/x446/x744/x073/x709/x551/615",
        "tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/010", "tile/0/000.p/00",
        "tile/0/000.p/", "tile/0/000.p", "tile/0/000.", "tile/0/000.p/1x", "tile/0/000.p/1/",
        "tile/0/000.p/+1", "tile/0/000.q/1", "tile/0/000p/1", "tile/0/000.p/1000",
        "tile/data/", "tile/data/00", "tile/data/x000/001", "tile/data/000.p/0",
        "tile/data/000.p/256", "tile/data/0/000", "tile/names/000", "tile/entries/000",
        "tile/0/000\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tile_id t;
        error err = {{0}};
        if (tile_path_parse(bad[i], strlen(bad[i]), &t, &err) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_true(error_is_set(&err));
    }
    /* An embedded NUL is not a terminator. */
    tile_id t;
    assert_int_equal(tile_path_parse("tile/0/000\0", 11, &t, NULL), -1);
    assert_int_equal(tile_path_parse("tile/0/000", 10, &t, NULL), 0);
    /* Ids that have no path. */
    char buf[TILE_PATH_MAX];
    assert_int_equal(tile_path_format(&(tile_id){.level = 6}, buf), -1);
    assert_int_equal(tile_path_format(&(tile_id){.level = 0, .width = 256}, buf), -1);
    assert_int_equal(tile_path_format(&(tile_id){.data = true, .level = 1}, buf), -1);
}

static int compare_tiles(const void *a, const void *b)
{
    const tile_id *x = a, *y = b;
    if (x->data != y->data)
        return x->data ? -1 : 1;
    if (x->level != y->level)
        return x->level < y->level ? -1 : 1;
    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    return (int)x->width - (int)y->width;
}

/* Compares a tile list with paths, in order. */
static void assert_tile_paths(const tile_id *items, size_t n, const char *const *want,
                              size_t want_n)
{
    char got[TILE_PATH_MAX];
    for (size_t i = 0; i < n && i < want_n; i++) {
        assert_true(tile_path_format(&items[i], got) > 0);
        if (strcmp(got, want[i]) != 0)
            fail_msg("tile %zu: got %s, want %s", i, got, want[i]);
    }
    assert_int_equal(n, want_n);
}

static void test_tree_size_table(void **state)
{
    (void)state;
    /* SPEC §1.7: full tile count and partial path per level (NULL = no partial). */
    static const struct {
        uint64_t size;
        uint64_t full[3];
        const char *partial[3];
    } table[] = {
        {1, {0, 0, 0}, {"tile/0/000.p/1", NULL, NULL}},
        {255, {0, 0, 0}, {"tile/0/000.p/255", NULL, NULL}},
        {256, {1, 0, 0}, {NULL, "tile/1/000.p/1", NULL}},
        {65536, {256, 1, 0}, {NULL, NULL, "tile/2/000.p/1"}},
        {65537, {256, 1, 0}, {"tile/0/256.p/1", NULL, "tile/2/000.p/1"}},
        {70000, {273, 1, 0}, {"tile/0/273.p/112", "tile/1/001.p/17", "tile/2/000.p/1"}},
        {1234068, {4820, 18, 0}, {"tile/0/x004/820.p/148", "tile/1/018.p/212", "tile/2/000.p/18"}},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        uint64_t size = table[i].size;
        tile_list all = {0}, edge = {0};
        assert_int_equal(tiles_for_growth(0, size, false, &all, NULL), 0);
        assert_int_equal(tiles_right_edge(size, false, &edge, NULL), 0);
        size_t edge_seen = 0;
        for (unsigned level = 0; level < 3; level++) {
            assert_true(tile_level_hashes(size, level) / TILE_WIDTH == table[i].full[level]);
            uint64_t full = 0;
            const tile_id *partial = NULL;
            for (size_t k = 0; k < all.len; k++) {
                if (all.items[k].level != level)
                    continue;
                if (all.items[k].width) {
                    assert_null(partial);
                    partial = &all.items[k];
                } else {
                    assert_true(all.items[k].index == full); /* in index order */
                    full++;
                }
            }
            assert_true(full == table[i].full[level]);
            char path[TILE_PATH_MAX];
            const char *want = table[i].partial[level];
            if (want) {
                assert_non_null(partial);
                tile_path_format(partial, path);
                assert_string_equal(path, want);
                assert_int_equal(tile_partial_width(size, level), partial->width);
            } else {
                assert_null(partial);
                assert_int_equal(tile_partial_width(size, level), 0);
            }
            /* The right edge: that partial, or else the last full tile of the level. */
            if (want || full) {
                assert_true(edge_seen < edge.len);
                const tile_id *e = &edge.items[edge_seen++];
                assert_int_equal(e->level, level);
                if (want) {
                    tile_path_format(e, path);
                    assert_string_equal(path, want);
                } else {
                    assert_int_equal(e->width, 0);
                    assert_true(e->index == full - 1);
                }
            }
        }
        assert_int_equal(edge_seen, edge.len);
        tile_list_free(&all);
        tile_list_free(&edge);
    }
}

static void test_worked_example(void **state)
{
    (void)state;
    /* Leaf 1,234,067 (SPEC §1.6): its tiles at levels 0, 1, 2 in a tree large enough. */
    tile_id t;
    unsigned pos;
    char path[TILE_PATH_MAX];
    assert_int_equal(tile_locate(TILE_MAX_TREE_SIZE, 0, 1234067, &t, &pos, NULL), 0);
    tile_path_format(&t, path);
    assert_string_equal(path, "tile/0/x004/820");
    assert_int_equal(pos, 147);
    t.data = true;
    tile_path_format(&t, path);
    assert_string_equal(path, "tile/data/x004/820");
    assert_int_equal(tile_locate(TILE_MAX_TREE_SIZE, 8, 4820, &t, &pos, NULL), 0);
    tile_path_format(&t, path);
    assert_string_equal(path, "tile/1/018");
    assert_int_equal(pos, 212);
    assert_int_equal(tile_locate(TILE_MAX_TREE_SIZE, 16, 18, &t, &pos, NULL), 0);
    tile_path_format(&t, path);
    assert_string_equal(path, "tile/2/000");
    assert_int_equal(pos, 18);
    /* As the last leaf of size 1,234,068 it sits in the partial level-0 tile. */
    assert_int_equal(tile_locate(1234068, 0, 1234067, &t, &pos, NULL), 0);
    tile_path_format(&t, path);
    assert_string_equal(path, "tile/0/x004/820.p/148");
    assert_int_equal(pos, 147);
    /* node(3, 1234064/8) spans entries 144..151 of that tile: 151 >= 148, so not there. */
    assert_int_equal(tile_locate(1234068, 3, 1234064 / 8, &t, &pos, NULL), -1);
    assert_int_equal(tile_locate(1234068, 2, 1234064 / 4, &t, &pos, NULL), 0);
    assert_int_equal(pos, 144);
    assert_int_equal(t.width, 148);
    /* Tree level 9 inside level-1 tile 0: 2 entries starting at 2·k. */
    assert_int_equal(tile_locate(1024, 9, 1, &t, &pos, NULL), 0);
    assert_int_equal(t.level, 1);
    assert_int_equal(t.width, 4);
    assert_int_equal(pos, 2);
    assert_int_equal(tile_locate(1024, 10, 1, &t, &pos, NULL), -1);
}

static void test_growth_lists(void **state)
{
    (void)state;
    static const struct {
        uint64_t s0, s1;
        const char *want[8];
    } cases[] = {
        {255, 256, {"tile/data/000", "tile/0/000", "tile/1/000.p/1"}},
        {256, 257, {"tile/data/001.p/1", "tile/0/001.p/1"}},
        {511, 513, {"tile/data/001", "tile/data/002.p/1", "tile/0/001", "tile/0/002.p/1",
                    "tile/1/000.p/2"}},
        {65535, 65537, {"tile/data/255", "tile/data/256.p/1", "tile/0/255", "tile/0/256.p/1",
                        "tile/1/000", "tile/2/000.p/1"}},
        {0, 1, {"tile/data/000.p/1", "tile/0/000.p/1"}},
        {1, 2, {"tile/data/000.p/2", "tile/0/000.p/2"}},
        {100, 700, {"tile/data/000", "tile/data/001", "tile/data/002.p/188", "tile/0/000",
                    "tile/0/001", "tile/0/002.p/188", "tile/1/000.p/2"}},
        {300, 301, {"tile/data/001.p/45", "tile/0/001.p/45"}},
        {256, 256, {NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t want_n = 0;
        while (want_n < 8 && cases[i].want[want_n])
            want_n++;
        tile_list l = {0};
        assert_int_equal(tiles_for_growth(cases[i].s0, cases[i].s1, true, &l, NULL), 0);
        assert_tile_paths(l.items, l.len, cases[i].want, want_n);
        tile_list_free(&l);
    }
    tile_list l = {0};
    assert_int_equal(tiles_for_growth(5, 4, false, &l, NULL), -1);
    assert_int_equal(tiles_for_growth(0, TILE_MAX_TREE_SIZE + 1, false, &l, NULL), -1);
    assert_int_equal(tiles_for_growth(TILE_MAX_TREE_SIZE - 1, TILE_MAX_TREE_SIZE, false, &l,
                                      NULL), 0);
    /* At 2^40 every level 0..4 fills its last tile and level 5 gets its single hash. */
    static const char *top[] = {"tile/0/x004/x294/x967/295", "tile/1/x016/x777/215",
                                "tile/2/x065/535", "tile/3/255", "tile/4/000",
                                "tile/5/000.p/1"};
    assert_tile_paths(l.items, l.len, top, 6);
    tile_list_free(&l);

    static const struct {
        uint64_t size;
        const char *want[7];
    } edges[] = {
        {0, {NULL}},
        {1, {"tile/data/000.p/1", "tile/0/000.p/1"}},
        {256, {"tile/data/000", "tile/0/000", "tile/1/000.p/1"}},
        {65536, {"tile/data/255", "tile/0/255", "tile/1/000", "tile/2/000.p/1"}},
        {778, {"tile/data/003.p/10", "tile/0/003.p/10", "tile/1/000.p/3"}},
    };
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        size_t want_n = 0;
        while (want_n < 7 && edges[i].want[want_n])
            want_n++;
        assert_int_equal(tiles_right_edge(edges[i].size, true, &l, NULL), 0);
        assert_tile_paths(l.items, l.len, edges[i].want, want_n);
        l.len = 0;
    }
    tile_list_free(&l);
}

/* --- navigli2025h2 ---------------------------------------------------------------------- */

typedef struct dir_store {
    char root[4096];
    char log[256][TILE_PATH_MAX]; /* every tile asked for, found or not */
    size_t asked;
} dir_store;

static int dir_fetch(void *ctx, const tile_id *t, buffer *out, error *err)
{
    dir_store *s = ctx;
    char rel[TILE_PATH_MAX], path[4200];
    assert_true(tile_path_format(t, rel) > 0);
    if (s->asked < 256)
        memcpy(s->log[s->asked], rel, TILE_PATH_MAX);
    s->asked++;
    snprintf(path, sizeof path, "%s/%s", s->root, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? TILE_FETCH_NOT_FOUND : error_set(err, "%s", strerror(errno));
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(buffer_append(out, chunk, n), 0);
    fclose(f);
    return 0;
}

static void navigli_store(dir_store *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->root, sizeof s->root, "%s", testdata_path("navigli2025h2"));
}

static bool was_asked(const dir_store *s, const char *path)
{
    for (size_t i = 0; i < s->asked && i < 256; i++)
        if (strcmp(s->log[i], path) == 0)
            return true;
    return false;
}

/* The 1,024 leaf hashes are the concatenation of tile/0/000..003. */
static uint8_t (*navigli_leaves(void))[HL]
{
    buffer b = {0};
    for (int i = 0; i < 4; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "navigli2025h2/tile/0/%03d", i);
        read_file_or_fail(testdata_path(rel), &b);
    }
    assert_int_equal(b.len, 1024 * HL);
    size_t len;
    return (uint8_t (*)[HL])buffer_steal(&b, &len);
}

static const struct {
    uint64_t size;
    const char *root;
} navigli_roots[] = {
    {1, "c853d5121104135a85f8a66a9d16d62234d541473ed78424032622564baddddf"},
    {2, "dc578af5badcaf361d3ede2f9df66ec033cec51214dbd2175340b8688408e2cb"},
    {3, "ba640ed5fbc7031a7ee12b949e96fe3ddf323983f789bee7a0414875d74c88aa"},
    {256, "6c80217987879103977872b0d0f2a3b6d989da11ad194fd50f15396f44806fe7"},
    {257, "6abc5fafdf003d52d1283d7d089cedebcab5a8aafa6a7b22b29ce5dae2d13dbb"},
    {778, "f969c738c45997f2c6d7aebda1eb246dd2bd6dc3b89e4ad8d5c7d5ca49c2e765"},
    {1024, "10c7c61bce6e21d75e397b79ff075018fdc841dd02382aa82e0f50e82b0f2c90"},
};

static void navigli_root(uint64_t size, uint8_t out[HL])
{
    for (size_t i = 0; i < sizeof navigli_roots / sizeof navigli_roots[0]; i++)
        if (navigli_roots[i].size == size) {
            hex_or_fail(out, HL, navigli_roots[i].root);
            return;
        }
    fail_msg("no known root for %llu", (unsigned long long)size);
}

static void test_navigli_roots(void **state)
{
    (void)state;
    dir_store *s = malloc(sizeof *s);
    assert_non_null(s);
    for (size_t i = 0; i < sizeof navigli_roots / sizeof navigli_roots[0]; i++) {
        navigli_store(s);
        uint8_t want[HL], got[HL];
        error err = {{0}};
        navigli_root(navigli_roots[i].size, want);
        if (tile_tree_root(navigli_roots[i].size, dir_fetch, s, got, &err) != 0)
            fail_msg("size %llu: %s", (unsigned long long)navigli_roots[i].size, err.msg);
        assert_memory_equal(got, want, HL);
    }
    /* Root of 778 = tile/0/003.p/10 + tile/1/000.p/3, and the level-1 tile is not there, so
     * it was rebuilt from the roots of tile/0/000..002. */
    navigli_store(s);
    uint8_t got[HL];
    assert_int_equal(tile_tree_root(778, dir_fetch, s, got, NULL), 0);
    assert_true(was_asked(s, "tile/0/003.p/10"));
    assert_true(was_asked(s, "tile/1/000.p/3"));
    assert_true(was_asked(s, "tile/1/000"));
    assert_true(was_asked(s, "tile/0/000") && was_asked(s, "tile/0/001") &&
                was_asked(s, "tile/0/002"));
    assert_false(was_asked(s, "tile/0/003"));
    /* Each tile was fetched once: the reader caches within the call. */
    assert_int_equal(s->asked, 6);

    /* The level-1 hashes (SPEC §6.5) as the reader rebuilds them. */
    navigli_store(s);
    tile_reader r;
    tile_reader_init(&r, 1024, dir_fetch, s);
    uint8_t level1[TILE_WIDTH][HL];
    size_t count;
    assert_int_equal(tile_reader_tile(&r, 1, 0, level1, &count, NULL), 0);
    assert_int_equal(count, 4);
    static const char *prefix[4] = {"6c802179", "e36486be", "135816f7", "a3847a46"};
    static const char *suffix[4] = {"44806fe7", "ca3769c1", "22aa04af", "3cb45bfe"};
    for (int i = 0; i < 4; i++) {
        char hex[2 * HL + 1];
        hex_encode(hex, level1[i], HL);
        assert_memory_equal(hex, prefix[i], 8);
        assert_memory_equal(hex + 56, suffix[i], 8);
    }
    /* Beyond the tree: no such tile or node. */
    assert_int_equal(tile_reader_tile(&r, 1, 1, level1, &count, NULL), -1);
    assert_int_equal(tile_reader_tile(&r, 0, 4, level1, &count, NULL), -1);
    uint8_t node[HL];
    assert_int_equal(tile_reader_get_node(&r, 0, 1024, node), -1);
    assert_int_equal(tile_reader_get_node(&r, 10, 0, node), 0);
    uint8_t want1024[HL];
    navigli_root(1024, want1024);
    assert_memory_equal(node, want1024, HL);
    tile_reader_free(&r);
    free(s);
}

static void decode_proof(const char *text, uint8_t (*out)[HL], size_t *n)
{
    *n = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '\n')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, " \n");
        assert_int_equal(base64_decode_exact(out[*n], HL, p, len), 0);
        (*n)++;
        p += len;
    }
}

static void test_navigli_proofs(void **state)
{
    (void)state;
    static const char *inclusion_300_778 =
        "QYgsOB4baXWO0jK5QTUeku5wBK/1dHGB2Ss78c/+BfY= gBP7Zef6Byw5w0EzXquF5svMdT1Ir4aOAe0E9n7Lp24= "
        "dBL3IkDjN/dkwoAXYD/zJYkYmlbqO15W5AWi96ZS0XA= tRh/I79/UfMDbM0M3zRID3hDTDthTQE0Gpwn+DPwI9E= "
        "KYm5wnhdq3uxbm/BlVQsnr+Uy8Gq+FWqp81DZlXPoow= JVfnyMzW4f7mikXr68343gEVQIf96j6RE+8xJKjFTVg= "
        "LEE90NJHx9xCIiEgHUtopxfP+1jVmEKxuPwUW41cikk= j2DrfsjN9OSyVl5zZYU9XkRN8ZGeS4Mez4A5OepvV3Y= "
        "bIAheYeHkQOXeHKw0PKjttmJ2hGtGU/VDxU5b0SAb+c= qrInvKeicml6CvP29aHk3pj0emGHQJnrm6qsGMeOZlY=";
    static const char *consistency_778_1024 =
        "GKYPPW57YamSPTxUYcrfR6X1+KCHl5XENjWqWbxHja0= fgwbmNNFiGDwh+wMhuyfkRixt8BQg8Hn49dt1Wd1kl4= "
        "/xn1dmOkDtKjozFZV0D0wXJ5mOJWh3xRYg3e6CPrcYg= X/QtWtzhgLEsLUxSVKjvk3uKAynenuH6GkGpIjIdBqs= "
        "CbJRW/VSB17d3Bve2VSXJEDgoddF8tbqTUy+UjHj98g= 4TKrxWI7jcEeM/mNXAzhV/tdwHzfY2TRcJz6RyGOgPg= "
        "4gxLH1/1PBAEW/0sPT0/8TML4D6e546j2WTRfJKVmiw= k1MmI2MZnjzEMui9y2GeXDVWs+xkAAl9d1oqRFNviaw= "
        "E1gW90mgNUoieyOfhYJOovdGz5Tu+MlFJjJVSyKqBK8= 1rualgPSURLEItjl5HFo49Lce7W6WxraoY66Rfa1PUU=";
    uint8_t want[MERKLE_MAX_PROOF][HL], got[MERKLE_MAX_PROOF][HL];
    size_t want_n, got_n;
    uint8_t root778[HL], root1024[HL];
    navigli_root(778, root778);
    navigli_root(1024, root1024);
    uint8_t (*leaves)[HL] = navigli_leaves();
    dir_store *s = malloc(sizeof *s);
    assert_non_null(s);
    error err = {{0}};

    navigli_store(s);
    decode_proof(inclusion_300_778, want, &want_n);
    assert_int_equal(want_n, 10);
    if (tile_tree_inclusion_proof(778, 300, dir_fetch, s, got, &got_n, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(got_n, want_n);
    assert_memory_equal(got, want, want_n * HL);
    /* Leaf 300 is entry 44 of tile/0/001. */
    assert_int_equal(merkle_verify_inclusion(300, 778, leaves[300], (const uint8_t (*)[HL])got,
                                             got_n, root778, NULL), 0);
    assert_true(was_asked(s, "tile/0/001"));

    navigli_store(s);
    decode_proof(consistency_778_1024, want, &want_n);
    assert_int_equal(want_n, 10);
    if (tile_tree_consistency_proof(778, 1024, dir_fetch, s, got, &got_n, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(got_n, want_n);
    assert_memory_equal(got, want, want_n * HL);
    assert_int_equal(merkle_verify_consistency(778, 1024, (const uint8_t (*)[HL])got, got_n,
                                               root778, root1024, NULL), 0);
    assert_true(was_asked(s, "tile/0/003"));
    assert_true(was_asked(s, "tile/1/000.p/4"));

    /* Every leaf of 1024 has a proof from the tiles that verifies (one reader, cached). */
    navigli_store(s);
    tile_reader r;
    tile_reader_init(&r, 1024, dir_fetch, s);
    for (uint64_t i = 0; i < 1024; i += 7) {
        assert_int_equal(merkle_inclusion_proof(tile_reader_get_node, &r, i, 1024, got, &got_n,
                                                NULL), 0);
        assert_int_equal(merkle_verify_inclusion(i, 1024, leaves[i],
                                                 (const uint8_t (*)[HL])got, got_n, root1024,
                                                 NULL), 0);
    }
    tile_reader_free(&r);
    assert_true(s->asked < 40);

    /* A tile that is not there at all is an error naming it. */
    navigli_store(s);
    error_clear(&err);
    assert_int_equal(tile_tree_root(1025, dir_fetch, s, root778, &err), -1);
    assert_non_null(strstr(err.msg, "tile/0/004.p/1"));
    free(leaves);
    free(s);
}

/* --- Building -------------------------------------------------------------------------- */

static const struct tile_batch_item *batch_find(const tile_batch *b, const char *path)
{
    char got[TILE_PATH_MAX];
    for (size_t i = 0; i < b->len; i++) {
        tile_path_format(&b->items[i].id, got);
        if (strcmp(got, path) == 0)
            return &b->items[i];
    }
    return NULL;
}

static void assert_tile_equals_file(const tile_batch *b, const char *path)
{
    const struct tile_batch_item *item = batch_find(b, path);
    if (!item)
        fail_msg("%s was not emitted", path);
    char rel[128];
    snprintf(rel, sizeof rel, "navigli2025h2/%s", path);
    buffer file = {0};
    read_file_or_fail(testdata_path(rel), &file);
    assert_int_equal(item->len, file.len);
    assert_memory_equal(item->data, file.data, file.len);
    buffer_free(&file);
}

/* Emitted tiles are exactly tiles_for_growth(s0, s1) as a set. */
static void assert_emitted_set(const tile_batch *b, size_t from, uint64_t s0, uint64_t s1)
{
    tile_list want = {0};
    assert_int_equal(tiles_for_growth(s0, s1, false, &want, NULL), 0);
    size_t n = b->len - from;
    assert_int_equal(n, want.len);
    tile_id *got = malloc((n ? n : 1) * sizeof *got);
    assert_non_null(got);
    for (size_t i = 0; i < n; i++) {
        got[i] = b->items[from + i].id;
        assert_int_equal(b->items[from + i].len, tile_hash_bytes(&got[i]));
    }
    if (n) {
        qsort(got, n, sizeof *got, compare_tiles);
        qsort(want.items, n, sizeof *got, compare_tiles);
    }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(compare_tiles(&got[i], &want.items[i]), 0);
    free(got);
    tile_list_free(&want);
}

static void test_navigli_build_one_step(void **state)
{
    (void)state;
    uint8_t (*leaves)[HL] = navigli_leaves();
    tile_edge *e = malloc(sizeof *e);
    assert_non_null(e);
    uint8_t root[HL], want[HL];

    tile_edge_init(e);
    tile_edge_root(e, root);
    merkle_empty_root(want);
    assert_memory_equal(root, want, HL);

    tile_batch b = {0};
    assert_int_equal(tile_edge_append(e, (const uint8_t (*)[HL])leaves, 1024, tile_batch_emit,
                                      &b, NULL), 0);
    assert_emitted_set(&b, 0, 0, 1024);
    for (int i = 0; i < 4; i++) {
        char path[32];
        snprintf(path, sizeof path, "tile/0/%03d", i);
        assert_tile_equals_file(&b, path);
    }
    /* Level 1: a partial of width 4 holding the roots of the four level-0 tiles. */
    const struct tile_batch_item *l1 = batch_find(&b, "tile/1/000.p/4");
    assert_non_null(l1);
    assert_int_equal(l1->len, 4 * HL);
    for (int i = 0; i < 4; i++) {
        merkle_hashes_root((const uint8_t (*)[HL])leaves + 256 * i, 256, want);
        assert_memory_equal(l1->data + i * HL, want, HL);
    }
    navigli_root(256, want);
    assert_memory_equal(l1->data, want, HL);
    tile_edge_root(e, root);
    navigli_root(1024, want);
    assert_memory_equal(root, want, HL);
    tile_batch_free(&b);

    /* Size 778: the partial level-0 tile is the stored 003.p/10. */
    tile_edge_init(e);
    assert_int_equal(tile_edge_append(e, (const uint8_t (*)[HL])leaves, 778, tile_batch_emit,
                                      &b, NULL), 0);
    assert_emitted_set(&b, 0, 0, 778);
    assert_tile_equals_file(&b, "tile/0/000");
    assert_tile_equals_file(&b, "tile/0/002");
    assert_tile_equals_file(&b, "tile/0/003.p/10");
    assert_non_null(batch_find(&b, "tile/1/000.p/3"));
    tile_edge_root(e, root);
    navigli_root(778, want);
    assert_memory_equal(root, want, HL);
    tile_batch_free(&b);

    /* The small known roots, one leaf at a time. */
    tile_edge_init(e);
    for (uint64_t n = 1; n <= 257; n++) {
        assert_int_equal(tile_edge_append(e, (const uint8_t (*)[HL])leaves + n - 1, 1,
                                          tile_batch_emit, &b, NULL), 0);
        if (n <= 3 || n >= 256) {
            tile_edge_root(e, root);
            navigli_root(n, want);
            assert_memory_equal(root, want, HL);
        }
    }
    tile_batch_free(&b);
    free(e);
    free(leaves);
}

static void test_navigli_build_uneven_steps(void **state)
{
    (void)state;
    uint8_t (*leaves)[HL] = navigli_leaves();
    tile_edge *e = malloc(sizeof *e), *big = malloc(sizeof *big);
    assert_non_null(e);
    assert_non_null(big);
    tile_batch one = {0}, steps = {0};
    tile_edge_init(big);
    assert_int_equal(tile_edge_append(big, (const uint8_t (*)[HL])leaves, 1024, tile_batch_emit,
                                      &one, NULL), 0);

    static const size_t sizes[] = {1, 254, 1, 300, 7, 215, 1, 0, 245};
    tile_edge_init(e);
    uint64_t at = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t from = steps.len;
        assert_int_equal(tile_edge_append(e, (const uint8_t (*)[HL])leaves + at, sizes[i],
                                          tile_batch_emit, &steps, NULL), 0);
        assert_emitted_set(&steps, from, at, at + sizes[i]);
        at += sizes[i];
        assert_true(e->size == at);
        uint8_t root[HL], want[HL];
        tile_edge_root(e, root);
        merkle_hashes_root((const uint8_t (*)[HL])leaves, at, want);
        assert_memory_equal(root, want, HL);
        if (at == 778)
            assert_tile_equals_file(&steps, "tile/0/003.p/10");
    }
    assert_true(at == 1024);
    /* Every tile of the one big step, with identical bytes, came out of the small steps too;
     * full tiles exactly once. */
    for (size_t i = 0; i < one.len; i++) {
        size_t seen = 0;
        for (size_t k = 0; k < steps.len; k++) {
            if (compare_tiles(&one.items[i].id, &steps.items[k].id) != 0)
                continue;
            assert_int_equal(steps.items[k].len, one.items[i].len);
            assert_memory_equal(steps.items[k].data, one.items[i].data, one.items[i].len);
            seen++;
        }
        assert_int_equal(seen, 1);
    }
    uint8_t r1[HL], r2[HL];
    tile_edge_root(e, r1);
    tile_edge_root(big, r2);
    assert_memory_equal(r1, r2, HL);
    tile_batch_free(&one);
    tile_batch_free(&steps);
    free(e);
    free(big);
    free(leaves);
}

static void test_edge_load_navigli(void **state)
{
    (void)state;
    uint8_t (*leaves)[HL] = navigli_leaves();
    tile_edge *e = malloc(sizeof *e);
    dir_store *s = malloc(sizeof *s);
    assert_non_null(e);
    assert_non_null(s);
    navigli_store(s);
    error err = {{0}};
    if (tile_edge_load(e, 778, dir_fetch, s, &err) != 0)
        fail_msg("%s", err.msg);
    /* Only the partial tiles are read (level 1 through its fallback). */
    assert_true(was_asked(s, "tile/0/003.p/10"));
    assert_true(was_asked(s, "tile/1/000.p/3"));
    uint8_t root[HL], want[HL];
    tile_edge_root(e, root);
    navigli_root(778, want);
    assert_memory_equal(root, want, HL);

    tile_batch b = {0};
    assert_int_equal(tile_edge_append(e, (const uint8_t (*)[HL])leaves + 778, 1024 - 778,
                                      tile_batch_emit, &b, NULL), 0);
    assert_emitted_set(&b, 0, 778, 1024);
    assert_tile_equals_file(&b, "tile/0/003");
    assert_non_null(batch_find(&b, "tile/1/000.p/4"));
    tile_edge_root(e, root);
    navigli_root(1024, want);
    assert_memory_equal(root, want, HL);
    tile_batch_free(&b);

    /* Sizes whose edge tiles are missing cannot be loaded, and the edge is left empty. */
    navigli_store(s);
    error_clear(&err);
    assert_int_equal(tile_edge_load(e, 1030, dir_fetch, s, &err), -1);
    assert_non_null(strstr(err.msg, "tile/0/004.p/6"));
    assert_true(e->size == 0);
    free(s);
    free(e);
    free(leaves);
}

/* --- A bigger tree, written and read back through an in-memory store -------------------- */

/* Serves the most recent emitted copy of each tile; optionally corrupts lengths. */
typedef struct batch_store {
    const tile_batch *b;
    size_t fetches;
    bool truncate;
    bool hide_superseded; /* partial tiles whose full tile exists are gone (deleted) */
} batch_store;

static int batch_fetch(void *ctx, const tile_id *t, buffer *out, error *err)
{
    batch_store *s = ctx;
    (void)err;
    s->fetches++;
    if (s->hide_superseded && t->width) {
        tile_id full = *t;
        full.width = 0;
        for (size_t i = 0; i < s->b->len; i++)
            if (compare_tiles(&s->b->items[i].id, &full) == 0)
                return TILE_FETCH_NOT_FOUND;
    }
    for (size_t i = s->b->len; i-- > 0;)
        if (compare_tiles(&s->b->items[i].id, t) == 0) {
            size_t len = s->b->items[i].len - (s->truncate ? 1 : 0);
            assert_int_equal(buffer_append(out, s->b->items[i].data, len), 0);
            return 0;
        }
    return TILE_FETCH_NOT_FOUND;
}

static void test_large_tree_round_trip(void **state)
{
    (void)state;
    enum { N = 70000 };
    uint8_t (*leaves)[HL] = malloc((size_t)N * HL);
    assert_non_null(leaves);
    for (size_t i = 0; i < N; i++) {
        char data[32];
        int len = snprintf(data, sizeof data, "entry %zu", i);
        merkle_leaf_hash(data, (size_t)len, leaves[i]);
    }
    /* Published sizes: tile boundaries at every level, and rounds of up to 5,000. */
    uint64_t published[64];
    size_t np = 0;
    static const uint64_t fixed[] = {1, 255, 256, 257, 511, 513, 5000, 10000, 65535, 65537,
                                     65538, 66000, 69999, 70000};
    uint64_t seed = 12345;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        uint64_t prev = np ? published[np - 1] : 0;
        while (fixed[i] - prev > 5000) { /* fill large gaps with uneven rounds */
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            prev += 1 + (seed >> 33) % 5000;
            if (prev >= fixed[i])
                break;
            published[np++] = prev;
        }
        published[np++] = fixed[i];
    }
    assert_true(np < 64);

    tile_edge *e = malloc(sizeof *e), *loaded = malloc(sizeof *loaded);
    assert_non_null(e);
    assert_non_null(loaded);
    tile_edge_init(e);
    tile_batch b = {0};
    uint8_t roots[64][HL];
    uint64_t at = 0;
    batch_store store = {.b = &b};
    for (size_t i = 0; i < np; i++) {
        size_t from = b.len;
        assert_int_equal(tile_edge_append(e, (const uint8_t (*)[HL])leaves + at,
                                          (size_t)(published[i] - at), tile_batch_emit, &b,
                                          NULL), 0);
        assert_emitted_set(&b, from, at, published[i]);
        at = published[i];
        tile_edge_root(e, roots[i]);
        uint8_t want[HL];
        merkle_hashes_root((const uint8_t (*)[HL])leaves, at, want);
        assert_memory_equal(roots[i], want, HL);

        /* Reading back at this size: root from the tiles, and the edge reloads to the same. */
        uint8_t got[HL];
        error err = {{0}};
        if (tile_tree_root(at, batch_fetch, &store, got, &err) != 0)
            fail_msg("size %llu: %s", (unsigned long long)at, err.msg);
        assert_memory_equal(got, want, HL);
        assert_int_equal(tile_edge_load(loaded, at, batch_fetch, &store, NULL), 0);
        tile_edge_root(loaded, got);
        assert_memory_equal(got, want, HL);
    }
    assert_non_null(batch_find(&b, "tile/2/000.p/1"));
    assert_non_null(batch_find(&b, "tile/1/000"));
    assert_non_null(batch_find(&b, "tile/1/001.p/17"));
    assert_non_null(batch_find(&b, "tile/0/273.p/112"));

    /* A reloaded edge continues exactly like the original one. */
    tile_batch cont1 = {0}, cont2 = {0};
    size_t k = 8; /* some mid-way published size */
    assert_int_equal(tile_edge_load(loaded, published[k], batch_fetch, &store, NULL), 0);
    assert_int_equal(tile_edge_append(loaded, (const uint8_t (*)[HL])leaves + published[k],
                                      (size_t)(N - published[k]), tile_batch_emit, &cont1,
                                      NULL), 0);
    tile_edge_init(e);
    assert_int_equal(tile_edge_append(e, (const uint8_t (*)[HL])leaves, (size_t)published[k],
                                      tile_batch_emit, &cont2, NULL), 0);
    size_t skip = cont2.len;
    assert_int_equal(tile_edge_append(e, (const uint8_t (*)[HL])leaves + published[k],
                                      (size_t)(N - published[k]), tile_batch_emit, &cont2,
                                      NULL), 0);
    assert_int_equal(cont1.len, cont2.len - skip);
    for (size_t i = 0; i < cont1.len; i++) {
        assert_int_equal(compare_tiles(&cont1.items[i].id, &cont2.items[skip + i].id), 0);
        assert_int_equal(cont1.items[i].len, cont2.items[skip + i].len);
        assert_memory_equal(cont1.items[i].data, cont2.items[skip + i].data, cont1.items[i].len);
    }
    tile_batch_free(&cont1);
    tile_batch_free(&cont2);

    /* Proofs from the tiles between published sizes verify against the edge roots. */
    uint8_t proof[MERKLE_MAX_PROOF][HL];
    size_t len;
    for (size_t i = 0; i < np; i++) {
        for (size_t j = i; j < np; j++) {
            if ((i * 7 + j) % 3 != 0 && j != np - 1)
                continue;
            error err = {{0}};
            if (tile_tree_consistency_proof(published[i], published[j], batch_fetch, &store,
                                            proof, &len, &err) != 0)
                fail_msg("%llu -> %llu: %s", (unsigned long long)published[i],
                         (unsigned long long)published[j], err.msg);
            assert_int_equal(merkle_verify_consistency(published[i], published[j],
                                                       (const uint8_t (*)[HL])proof, len,
                                                       roots[i], roots[j], NULL), 0);
        }
        uint64_t index = ((published[i] * 2654435761u) >> 5) % published[i];
        assert_int_equal(tile_tree_inclusion_proof(published[i], index, batch_fetch, &store,
                                                   proof, &len, NULL), 0);
        assert_int_equal(merkle_verify_inclusion(index, published[i], leaves[index],
                                                 (const uint8_t (*)[HL])proof, len, roots[i],
                                                 NULL), 0);
        assert_int_equal(tile_tree_inclusion_proof(published[i], published[i] - 1, batch_fetch,
                                                   &store, proof, &len, NULL), 0);
        assert_int_equal(merkle_verify_inclusion(published[i] - 1, published[i],
                                                 leaves[published[i] - 1],
                                                 (const uint8_t (*)[HL])proof, len, roots[i],
                                                 NULL), 0);
    }

    /* Old sizes still read after their partial tiles were deleted (cut from the full tile). */
    store.hide_superseded = true;
    for (size_t i = 0; i < np; i++) {
        uint8_t got[HL];
        error err = {{0}};
        if (tile_tree_root(published[i], batch_fetch, &store, got, &err) != 0)
            fail_msg("size %llu: %s", (unsigned long long)published[i], err.msg);
        assert_memory_equal(got, roots[i], HL);
    }
    store.hide_superseded = false;

    /* A tile one byte short is refused, naming the tile and its length. */
    store.truncate = true;
    error err = {{0}};
    assert_int_equal(tile_tree_root(70000, batch_fetch, &store, roots[0], &err), -1);
    assert_non_null(strstr(err.msg, "bytes"));
    assert_int_equal(tile_edge_load(loaded, 70000, batch_fetch, &store, NULL), -1);

    tile_batch_free(&b);
    free(loaded);
    free(e);
    free(leaves);
}

static void test_edge_limits(void **state)
{
    (void)state;
    tile_edge *e = malloc(sizeof *e);
    assert_non_null(e);
    tile_edge_init(e);
    uint8_t h[1][HL] = {{0}};
    tile_batch b = {0};
    assert_int_equal(tile_edge_append(e, (const uint8_t (*)[HL])h, 0, tile_batch_emit, &b,
                                      NULL), 0);
    assert_int_equal(b.len, 0);
    e->size = TILE_MAX_TREE_SIZE;
    assert_int_equal(tile_edge_append(e, (const uint8_t (*)[HL])h, 1, tile_batch_emit, &b,
                                      NULL), -1);
    assert_int_equal(tile_edge_load(e, TILE_MAX_TREE_SIZE + 1, batch_fetch, NULL, NULL), -1);
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_examples),
        cmocka_unit_test(test_path_rejects),
        cmocka_unit_test(test_tree_size_table),
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_growth_lists),
        cmocka_unit_test(test_navigli_roots),
        cmocka_unit_test(test_navigli_proofs),
        cmocka_unit_test(test_navigli_build_one_step),
        cmocka_unit_test(test_navigli_build_uneven_steps),
        cmocka_unit_test(test_edge_load_navigli),
        cmocka_unit_test(test_large_tree_round_trip),
        cmocka_unit_test(test_edge_limits),
    };
    return cmocka_run_group_tests_name("tiles", tests, NULL, NULL);
}
