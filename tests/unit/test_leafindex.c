/* leafindex: the RocksDB leaf hash → index map and its follower, over real logs (one built
 * here and sunlight's navigli2025h2 tiles as a known answer). */
#include "testutil.h"
#include "testlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "leafindex.h"
#include "sha256.h"

static leafindex *open_index(const char *name, const char *origin)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/db", test_tmpdir(name));
    error err = {{0}};
    leafindex *li = leafindex_open(path, origin, &err);
    if (!li)
        fail_msg("%s", err.msg);
    return li;
}

static void assert_indexed(leafindex *li, const test_log *l, uint64_t from, uint64_t to)
{
    error err = {{0}};
    for (uint64_t i = from; i < to; i++) {
        uint64_t index = UINT64_MAX;
        assert_int_equal(leafindex_lookup(li, l->leaf_hashes[i], &index, &err), 0);
        assert_int_equal(index, i);
    }
}

static void test_catch_up_and_lookup(void **state)
{
    (void)state;
    test_log l;
    test_log_create(&l, "li-log");
    test_log_grow(&l, 600);
    char db[PATH_MAX];
    snprintf(db, sizeof db, "%s/db", test_tmpdir("li-db"));
    error err = {{0}};
    leafindex *li = leafindex_open(db, TEST_LOG_ORIGIN, &err);
    assert_non_null(li);
    assert_int_equal(leafindex_indexed(li), 0);

    /* One tile per call: 256, 256, then the 88 of the partial tile. */
    assert_int_equal(leafindex_catch_up(li, l.storage, 600, 1, &err), 256);
    assert_int_equal(leafindex_indexed(li), 256);
    assert_int_equal(leafindex_catch_up(li, l.storage, 600, 0, &err), 344);
    assert_int_equal(leafindex_indexed(li), 600);
    assert_int_equal(leafindex_catch_up(li, l.storage, 600, 0, &err), 0);
    assert_indexed(li, &l, 0, 600);
    uint8_t unknown[32];
    sha256("nope", 4, unknown);
    uint64_t index;
    assert_int_equal(leafindex_lookup(li, unknown, &index, &err), LEAFINDEX_NOT_FOUND);
    /* A tree below what is indexed means the log went backwards. */
    assert_int_equal(leafindex_catch_up(li, l.storage, 599, 0, &err), -1);
    assert_non_null(strstr(err.msg, "below"));
    leafindex_close(li);

    /* Reopened: the count persists; growth continues from the middle of tile 2. Size 700 was
     * never published (no tile/data/002.p/188): the full tiles that supersede it serve. */
    li = leafindex_open(db, TEST_LOG_ORIGIN, &err);
    assert_non_null(li);
    assert_int_equal(leafindex_indexed(li), 600);
    test_log_grow(&l, 1030);
    char path[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/tile/data/002.p/88", l.dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(leafindex_catch_up(li, l.storage, 700, 0, &err), 100);
    assert_int_equal(leafindex_indexed(li), 700);
    assert_int_equal(leafindex_catch_up(li, l.storage, 1030, 0, &err), 330);
    assert_int_equal(leafindex_indexed(li), 1030);
    assert_indexed(li, &l, 0, 1030);
    leafindex_close(li);

    /* A database belongs to one log. */
    assert_null(leafindex_open(db, "other.example/log", &err));
    assert_non_null(strstr(err.msg, "another log"));
    test_log_free(&l);
}

static void test_mismatch_with_hash_tile_stops(void **state)
{
    (void)state;
    test_log l;
    test_log_create(&l, "li-bad-log");
    test_log_grow(&l, 600);
    /* Flip a byte of leaf 300's hash in tile/0/001: that tile must not be indexed. */
    char path[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/tile/0/001", l.dir);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 44 * 32, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 44 * 32, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
    leafindex *li = open_index("li-bad-db", TEST_LOG_ORIGIN);
    error err = {{0}};
    assert_int_equal(leafindex_catch_up(li, l.storage, 600, 0, &err), -1);
    assert_non_null(strstr(err.msg, "entry 300 does not match its level-0 tile hash"));
    assert_int_equal(leafindex_indexed(li), 256);
    uint64_t index;
    assert_int_equal(leafindex_lookup(li, l.leaf_hashes[256], &index, &err), LEAFINDEX_NOT_FOUND);
    /* A missing data tile is an error too, not a gap. */
    snprintf(path, sizeof path, "%s/tile/data/001", l.dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(leafindex_catch_up(li, l.storage, 600, 0, &err), -1);
    assert_non_null(strstr(err.msg, "tile/data/001"));
    leafindex_close(li);
    test_log_free(&l);
}

/* Known answer: sunlight's navigli2025h2 tiles (data stored uncompressed, no checkpoint). */
static void test_navigli_index(void **state)
{
    (void)state;
    char url[PATH_MAX + 16];
    snprintf(url, sizeof url, "file://%s", testdata_path("navigli2025h2"));
    char abs[PATH_MAX];
    assert_non_null(realpath(testdata_path("navigli2025h2"), abs));
    snprintf(url, sizeof url, "file://%s", abs);
    error err = {{0}};
    storage *s = storage_open(url, &err);
    assert_non_null(s);
    leafindex *li = open_index("li-navigli", "navigli2025h2.staging.ct.example");
    /* 778 uses the partial tiles 003.p/10; then on to 1024 through the full tile 003. */
    assert_int_equal(leafindex_catch_up(li, s, 778, 0, &err), 778);
    assert_int_equal(leafindex_catch_up(li, s, 1024, 0, &err), 246);
    uint8_t hash[32];
    uint64_t index;
    hex_or_fail(hash, 32, "c853d5121104135a85f8a66a9d16d62234d541473ed78424032622564baddddf");
    assert_int_equal(leafindex_lookup(li, hash, &index, &err), 0);
    assert_int_equal(index, 0);
    /* Every level-0 hash maps back to its position. */
    for (int t = 0; t < 4; t++) {
        char name[64];
        snprintf(name, sizeof name, "navigli2025h2/tile/0/00%d", t);
        buffer tile = {0};
        read_file_or_fail(testdata_path(name), &tile);
        assert_int_equal(tile.len, 8192);
        for (int i = 0; i < 256; i++) {
            assert_int_equal(leafindex_lookup(li, tile.data + 32 * i, &index, &err), 0);
            assert_int_equal(index, (uint64_t)(256 * t + i));
        }
        buffer_free(&tile);
    }
    leafindex_close(li);
    storage_close(s);
}

typedef struct size_source {
    uint64_t size;
    int calls;
} size_source;

static int source_size(void *ctx, uint64_t *size, error *err)
{
    (void)err;
    size_source *src = ctx;
    __atomic_add_fetch(&src->calls, 1, __ATOMIC_SEQ_CST);
    *size = __atomic_load_n(&src->size, __ATOMIC_SEQ_CST);
    return 0;
}

static void wait_for_indexed(leafindex *li, uint64_t want)
{
    for (int i = 0; i < 2000 && leafindex_indexed(li) < want; i++)
        usleep(5000);
    assert_int_equal(leafindex_indexed(li), want);
}

static void test_follower(void **state)
{
    (void)state;
    test_log l;
    test_log_create(&l, "li-follow-log");
    test_log_grow(&l, 300);
    leafindex *li = open_index("li-follow-db", TEST_LOG_ORIGIN);
    size_source src = {.size = 300};
    error err = {{0}};
    leafindex_follower *f = leafindex_follower_start(li, l.storage, source_size, &src, 10, &err);
    assert_non_null(f);
    wait_for_indexed(li, 300);
    test_log_grow(&l, 1030);
    __atomic_store_n(&src.size, 1030, __ATOMIC_SEQ_CST);
    wait_for_indexed(li, 1030);
    assert_indexed(li, &l, 0, 1030);
    leafindex_follower_stop(f);
    assert_true(src.calls >= 2);
    leafindex_close(li);
    test_log_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catch_up_and_lookup),
        cmocka_unit_test(test_mismatch_with_hash_tile_stops),
        cmocka_unit_test(test_navigli_index),
        cmocka_unit_test(test_follower),
    };
    return cmocka_run_group_tests_name("leafindex", tests, test_log_global_setup,
                                       test_log_global_teardown);
}
