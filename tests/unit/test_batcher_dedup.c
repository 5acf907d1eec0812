/* dedup_store: records survive a reopen, logs do not see each other's keys, the on-disk key and
 * value bytes are exactly log ‖ 0x00 ‖ key → index ‖ timestamp (big-endian), a damaged database
 * is refused unless recreation is asked for, and a locked one is never moved aside. */
#include "testutil.h"

#include <dirent.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../batcher/dedup_store.h"

static void fill_key(uint8_t key[DEDUP_KEY_LEN], uint8_t seed)
{
    for (int i = 0; i < DEDUP_KEY_LEN; i++)
        key[i] = (uint8_t)(seed * 31 + i);
}

static void test_path_sanitised(void **state)
{
    (void)state;
    buffer b = {0};
    assert_int_equal(dedup_store_path("/var/db", "tcp://127.0.0.1:9101", &b, NULL), 0);
    assert_string_equal((char *)b.data, "/var/db/tcp___127.0.0.1_9101");
    buffer_free(&b);
    assert_int_equal(dedup_store_path("/var/db", "..", &b, NULL), 0);
    assert_string_equal((char *)b.data, "/var/db/_.");
    buffer_free(&b);
    assert_int_equal(dedup_store_path("/var/db", "b-1/x y", &b, NULL), 0);
    assert_string_equal((char *)b.data, "/var/db/b-1_x_y");
    buffer_free(&b);
    error err = {{0}};
    assert_int_equal(dedup_store_path("/var/db", "", &b, &err), -1);
    assert_non_null(strstr(err.msg, "empty"));
    buffer_free(&b);
}

static void test_round_trip_and_reopen(void **state)
{
    (void)state;
    const char *dir = test_tmpdir("batcher_dedup_rt");
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    error err = {{0}};
    dedup_store *s = dedup_store_open(path, false, &err);
    assert_non_null(s);

    uint8_t keys[3][DEDUP_KEY_LEN];
    for (int i = 0; i < 3; i++)
        fill_key(keys[i], (uint8_t)i);
    dedup_record recs[3] = {
        {keys[0], 0, 1767225600000ull},
        {keys[1], 1, 1767225600001ull},
        {keys[2], UINT64_C(0x0102030405060708), UINT64_MAX},
    };
    assert_int_equal(dedup_store_put(s, "2026h1", recs, 3, &err), 0);
    /* Same key in another log, other values: logs are separate namespaces. */
    dedup_record other = {keys[0], 77, 88};
    assert_int_equal(dedup_store_put(s, "2026h2", &other, 1, &err), 0);
    assert_int_equal(dedup_store_put(s, "2026h2", NULL, 0, &err), 0);

    for (int round = 0; round < 2; round++) {
        uint64_t idx = 0, ts = 0;
        for (int i = 0; i < 3; i++) {
            assert_int_equal(dedup_store_get(s, "2026h1", keys[i], &idx, &ts, &err), 1);
            assert_true(idx == recs[i].leaf_index);
            assert_true(ts == recs[i].timestamp);
        }
        assert_int_equal(dedup_store_get(s, "2026h2", keys[0], &idx, &ts, &err), 1);
        assert_int_equal(idx, 77);
        assert_int_equal(ts, 88);
        assert_int_equal(dedup_store_get(s, "2026h2", keys[1], &idx, &ts, &err), 0);
        /* A log whose name is a prefix of another must not match: the 0x00 separates them. */
        assert_int_equal(dedup_store_get(s, "2026h", keys[0], &idx, &ts, &err), 0);
        uint8_t absent[DEDUP_KEY_LEN];
        fill_key(absent, 200);
        assert_int_equal(dedup_store_get(s, "2026h1", absent, &idx, &ts, &err), 0);
        dedup_store_close(s);
        s = dedup_store_open(path, false, &err);
        assert_non_null(s);
    }
    dedup_store_close(s);

    /* The bytes on disk, read with RocksDB directly. */
    rocksdb_options_t *o = rocksdb_options_create();
    char *rerr = NULL;
    rocksdb_t *db = rocksdb_open_for_read_only(o, path, 0, &rerr);
    assert_null(rerr);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    uint8_t raw_key[7 + DEDUP_KEY_LEN];
    memcpy(raw_key, "2026h1", 6);
    raw_key[6] = 0;
    memcpy(raw_key + 7, keys[2], DEDUP_KEY_LEN);
    size_t vlen = 0;
    char *v = rocksdb_get(db, ro, (const char *)raw_key, sizeof raw_key, &vlen, &rerr);
    assert_null(rerr);
    assert_non_null(v);
    static const uint8_t want[16] = {1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0xff, 0xff,
                                     0xff, 0xff, 0xff, 0xff};
    assert_int_equal(vlen, 16);
    assert_memory_equal(v, want, 16);
    rocksdb_free(v);
    rocksdb_readoptions_destroy(ro);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
}

static void test_bad_record_is_an_error(void **state)
{
    (void)state;
    const char *dir = test_tmpdir("batcher_dedup_bad");
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    char *rerr = NULL;
    rocksdb_t *db = rocksdb_open(o, path, &rerr);
    assert_null(rerr);
    uint8_t key[DEDUP_KEY_LEN];
    fill_key(key, 5);
    uint8_t raw_key[3 + DEDUP_KEY_LEN] = {'l', 'g', 0};
    memcpy(raw_key + 3, key, DEDUP_KEY_LEN);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_put(db, wo, (const char *)raw_key, sizeof raw_key, "short", 5, &rerr);
    assert_null(rerr);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_close(db);
    rocksdb_options_destroy(o);

    error err = {{0}};
    dedup_store *s = dedup_store_open(path, false, &err);
    assert_non_null(s);
    uint64_t idx, ts;
    assert_int_equal(dedup_store_get(s, "lg", key, &idx, &ts, &err), -1);
    assert_non_null(strstr(err.msg, "5 bytes"));
    dedup_store_close(s);
}

static int count_entries_with_prefix(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

static void test_corrupt_refused_unless_recreate(void **state)
{
    (void)state;
    const char *tmp = test_tmpdir("batcher_dedup_corrupt");
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s", tmp);
    snprintf(path, sizeof path, "%s/db", dir);
    error err = {{0}};
    dedup_store *s = dedup_store_open(path, false, &err);
    assert_non_null(s);
    uint8_t key[DEDUP_KEY_LEN];
    fill_key(key, 9);
    dedup_record r = {key, 5, 6};
    assert_int_equal(dedup_store_put(s, "lg", &r, 1, &err), 0);
    dedup_store_close(s);

    /* CURRENT names the manifest; pointing it at garbage makes the database unopenable. */
    char current[4300];
    snprintf(current, sizeof current, "%s/CURRENT", path);
    FILE *f = fopen(current, "w");
    assert_non_null(f);
    fputs("MANIFEST-999999\n", f);
    fclose(f);

    memset(&err, 0, sizeof err);
    assert_null(dedup_store_open(path, false, &err));
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(count_entries_with_prefix(dir, "db.broken-"), 0);

    memset(&err, 0, sizeof err);
    s = dedup_store_open(path, true, &err);
    assert_non_null(s);
    assert_int_equal(count_entries_with_prefix(dir, "db.broken-"), 1);
    uint64_t idx, ts;
    assert_int_equal(dedup_store_get(s, "lg", key, &idx, &ts, &err), 0);
    dedup_store_close(s);
}

static void test_locked_never_recreated(void **state)
{
    (void)state;
    const char *tmp = test_tmpdir("batcher_dedup_locked");
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s", tmp);
    snprintf(path, sizeof path, "%s/db", dir);
    error err = {{0}};
    dedup_store *s = dedup_store_open(path, false, &err);
    assert_non_null(s);
    memset(&err, 0, sizeof err);
    assert_null(dedup_store_open(path, true, &err));
    assert_non_null(strstr(err.msg, "lock"));
    assert_int_equal(count_entries_with_prefix(dir, "db.broken-"), 0);
    dedup_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_sanitised),
        cmocka_unit_test(test_round_trip_and_reopen),
        cmocka_unit_test(test_bad_record_is_an_error),
        cmocka_unit_test(test_corrupt_refused_unless_recreate),
        cmocka_unit_test(test_locked_never_recreated),
    };
    return cmocka_run_group_tests_name("batcher_dedup", tests, NULL, NULL);
}
