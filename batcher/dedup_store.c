#include "dedup_store.h"

#include <errno.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "tls_codec.h"

/* Keys are short and looked up at random: a bloom filter saves the disk read for every miss,
 * which is most lookups (fresh submissions). */
#define BLOOM_BITS_PER_KEY 10
#define BLOCK_CACHE_BYTES ((size_t)64 << 20)

struct dedup_store {
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_block_based_table_options_t *table;
    rocksdb_cache_t *cache;
    rocksdb_readoptions_t *read;
    rocksdb_writeoptions_t *write;
};

static void store_free(dedup_store *s)
{
    if (!s)
        return;
    if (s->db)
        rocksdb_close(s->db);
    if (s->read)
        rocksdb_readoptions_destroy(s->read);
    if (s->write)
        rocksdb_writeoptions_destroy(s->write);
    if (s->options)
        rocksdb_options_destroy(s->options);
    if (s->table)
        rocksdb_block_based_options_destroy(s->table);
    if (s->cache)
        rocksdb_cache_destroy(s->cache);
    free(s);
}

static rocksdb_t *open_db(dedup_store *s, const char *path, error *err)
{
    char *rerr = NULL;
    rocksdb_t *db = rocksdb_open(s->options, path, &rerr);
    if (!db) {
        error_set(err, "%s", rerr ? rerr : "unknown RocksDB error");
        rocksdb_free(rerr);
    }
    return db;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

dedup_store *dedup_store_open(const char *path, bool recreate, error *err)
{
    dedup_store *s = calloc(1, sizeof *s);
    if (!s) {
        error_set(err, "out of memory");
        return NULL;
    }
    s->options = rocksdb_options_create();
    s->table = rocksdb_block_based_options_create();
    s->cache = rocksdb_cache_create_lru(BLOCK_CACHE_BYTES);
    s->read = rocksdb_readoptions_create();
    s->write = rocksdb_writeoptions_create();
    if (!s->options || !s->table || !s->cache || !s->read || !s->write) {
        store_free(s);
        error_set(err, "out of memory");
        return NULL;
    }
    rocksdb_block_based_options_set_block_cache(s->table, s->cache);
    rocksdb_block_based_options_set_filter_policy(
        s->table, rocksdb_filterpolicy_create_bloom_full(BLOOM_BITS_PER_KEY));
    rocksdb_options_set_block_based_table_factory(s->options, s->table);
    rocksdb_options_set_create_if_missing(s->options, 1);
    rocksdb_options_set_paranoid_checks(s->options, 1);
    rocksdb_options_set_info_log_level(s->options, 2 /* warn */);
    rocksdb_options_set_keep_log_file_num(s->options, 4);
    /* WAL on, no fsync: a record lost in a power cut costs a duplicate, not correctness. */
    rocksdb_writeoptions_set_sync(s->write, 0);

    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        error_set(err, "creating %s: %s", path, strerror(errno));
        store_free(s);
        return NULL;
    }
    error open_err = {{0}};
    s->db = open_db(s, path, &open_err);
    /* Another process holding the lock is an operator mistake (two batchers with one id),
     * not damage: never move its database away. */
    if (!s->db && recreate && !strstr(open_err.msg, "lock")) {
        char aside[4096];
        snprintf(aside, sizeof aside, "%s.broken-%lld", path, (long long)wall_ms());
        log_warn("dedup database cannot be opened; moving it aside and starting empty",
                 "path=%s aside=%s reason=\"%s\"", path, aside, open_err.msg);
        if (rename(path, aside) != 0) {
            error_set(err, "moving %s aside: %s (open failed: %s)", path, strerror(errno),
                      open_err.msg);
            store_free(s);
            return NULL;
        }
        if (mkdir(path, 0755) != 0) {
            error_set(err, "creating %s: %s", path, strerror(errno));
            store_free(s);
            return NULL;
        }
        s->db = open_db(s, path, &open_err);
    }
    if (!s->db) {
        error_set(err, "opening dedup database %s: %s", path, open_err.msg);
        store_free(s);
        return NULL;
    }
    return s;
}

void dedup_store_close(dedup_store *store)
{
    store_free(store);
}

/* log ‖ 0x00 ‖ key. Log names are at most 64 bytes (config), so a small stack buffer does. */
#define MAX_LOG_NAME 255
static size_t make_key(uint8_t *out, const char *log, size_t log_len, const uint8_t *dedup_key)
{
    memcpy(out, log, log_len);
    out[log_len] = 0;
    memcpy(out + log_len + 1, dedup_key, DEDUP_KEY_LEN);
    return log_len + 1 + DEDUP_KEY_LEN;
}

int dedup_store_get(dedup_store *store, const char *log, const uint8_t *dedup_key,
                    uint64_t *leaf_index, uint64_t *timestamp, error *err)
{
    size_t log_len = strlen(log);
    if (log_len == 0 || log_len > MAX_LOG_NAME)
        return error_set(err, "log name length %zu out of range", log_len);
    uint8_t key[MAX_LOG_NAME + 1 + DEDUP_KEY_LEN];
    size_t key_len = make_key(key, log, log_len, dedup_key);
    char *rerr = NULL;
    size_t value_len = 0;
    char *value = rocksdb_get(store->db, store->read, (const char *)key, key_len, &value_len,
                              &rerr);
    if (rerr) {
        error_set(err, "dedup lookup: %s", rerr);
        rocksdb_free(rerr);
        return -1;
    }
    if (!value)
        return 0;
    if (value_len != DEDUP_VALUE_LEN) {
        rocksdb_free(value);
        return error_set(err, "dedup record of %zu bytes, want %d", value_len, DEDUP_VALUE_LEN);
    }
    *leaf_index = be_load((const uint8_t *)value, 8);
    *timestamp = be_load((const uint8_t *)value + 8, 8);
    rocksdb_free(value);
    return 1;
}

int dedup_store_put(dedup_store *store, const char *log, const dedup_record *records,
                    size_t count, error *err)
{
    size_t log_len = strlen(log);
    if (log_len == 0 || log_len > MAX_LOG_NAME)
        return error_set(err, "log name length %zu out of range", log_len);
    if (count == 0)
        return 0;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    if (!wb)
        return error_set(err, "out of memory");
    for (size_t i = 0; i < count; i++) {
        uint8_t key[MAX_LOG_NAME + 1 + DEDUP_KEY_LEN];
        size_t key_len = make_key(key, log, log_len, records[i].dedup_key);
        uint8_t value[DEDUP_VALUE_LEN];
        be_store(value, records[i].leaf_index, 8);
        be_store(value + 8, records[i].timestamp, 8);
        rocksdb_writebatch_put(wb, (const char *)key, key_len, (const char *)value,
                               sizeof value);
    }
    char *rerr = NULL;
    rocksdb_write(store->db, store->write, wb, &rerr);
    rocksdb_writebatch_destroy(wb);
    if (rerr) {
        error_set(err, "dedup write: %s", rerr);
        rocksdb_free(rerr);
        return -1;
    }
    return 0;
}

int dedup_store_path(const char *db_dir, const char *id, buffer *out, error *err)
{
    size_t id_len = strlen(id);
    if (id_len == 0)
        return error_set(err, "empty batcher id");
    if (buffer_append_str(out, db_dir) != 0 || buffer_append_byte(out, '/') != 0)
        return error_set(err, "out of memory");
    for (size_t i = 0; i < id_len; i++) {
        char c = id[i];
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || (c == '.' && i > 0);
        if (buffer_append_byte(out, keep ? (uint8_t)c : '_') != 0)
            return error_set(err, "out of memory");
    }
    if (buffer_terminate(out) != 0)
        return error_set(err, "out of memory");
    return 0;
}
