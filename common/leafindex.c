#include "leafindex.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rocksdb/c.h>

#include "ct.h"
#include "gzip.h"
#include "log.h"
#include "tiles.h"
#include "tls_codec.h"

#define KEY_HASH_PREFIX 'h'
#define KEY_INDEXED "m:indexed"
#define KEY_ORIGIN "m:origin"
#define ORIGIN_MAX 1024
/* Data tiles are a few MiB at most; a larger object is not a data tile we wrote. */
#define MAX_DATA_TILE ((size_t)64 << 20)

struct leafindex {
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_block_based_table_options_t *table_options;
    rocksdb_readoptions_t *read_options;
    rocksdb_writeoptions_t *write_options;
    atomic_uint_fast64_t indexed;
    pthread_mutex_t catch_up_lock; /* one catch-up at a time */
};

static int rocks_error(error *err, const char *what, char *rerr)
{
    error_set(err, "leaf index: %s: %s", what, rerr ? rerr : "unknown error");
    rocksdb_free(rerr);
    return -1;
}

/* Reads a small metadata value; returns 0 (found, *len set), 1 (absent) or -1. */
static int get_meta(leafindex *li, const char *key, char *out, size_t cap, size_t *len,
                    error *err)
{
    char *rerr = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get(li->db, li->read_options, key, strlen(key), &vlen, &rerr);
    if (rerr)
        return rocks_error(err, "reading metadata", rerr);
    if (!v)
        return 1;
    if (vlen > cap) {
        rocksdb_free(v);
        return error_set(err, "leaf index: metadata %s is %zu bytes", key, vlen);
    }
    memcpy(out, v, vlen);
    *len = vlen;
    rocksdb_free(v);
    return 0;
}

static void free_handles(leafindex *li)
{
    if (li->db)
        rocksdb_close(li->db);
    if (li->read_options)
        rocksdb_readoptions_destroy(li->read_options);
    if (li->write_options)
        rocksdb_writeoptions_destroy(li->write_options);
    if (li->options)
        rocksdb_options_destroy(li->options);
    if (li->table_options)
        rocksdb_block_based_options_destroy(li->table_options);
    pthread_mutex_destroy(&li->catch_up_lock);
    free(li);
}

leafindex *leafindex_open(const char *path, const char *origin, error *err)
{
    if (!path || !origin || !origin[0] || strlen(origin) > ORIGIN_MAX)
        return error_set(err, "leaf index: no path or no valid origin"), NULL;
    leafindex *li = calloc(1, sizeof *li);
    if (!li)
        return error_set(err, "leaf index: out of memory"), NULL;
    pthread_mutex_init(&li->catch_up_lock, NULL);
    li->options = rocksdb_options_create();
    li->table_options = rocksdb_block_based_options_create();
    li->read_options = rocksdb_readoptions_create();
    li->write_options = rocksdb_writeoptions_create();
    /* Lookups are random point reads of random keys: a bloom filter saves most disk reads,
     * and compression gains nothing on hashes. */
    rocksdb_block_based_options_set_filter_policy(li->table_options,
                                                  rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_set_block_based_table_factory(li->options, li->table_options);
    rocksdb_options_set_compression(li->options, rocksdb_no_compression);
    rocksdb_options_set_create_if_missing(li->options, 1);
    char *rerr = NULL;
    li->db = rocksdb_open(li->options, path, &rerr);
    if (rerr) {
        error_set(err, "leaf index: opening %s: %s", path, rerr);
        rocksdb_free(rerr);
        free_handles(li);
        return NULL;
    }
    char stored[ORIGIN_MAX];
    size_t len;
    int rc = get_meta(li, KEY_ORIGIN, stored, sizeof stored, &len, err);
    if (rc < 0) {
        free_handles(li);
        return NULL;
    }
    if (rc == 0 && (len != strlen(origin) || memcmp(stored, origin, len) != 0)) {
        error_set(err, "leaf index %s belongs to another log (%.*s)", path, (int)len, stored);
        free_handles(li);
        return NULL;
    }
    if (rc == 1) {
        rocksdb_put(li->db, li->write_options, KEY_ORIGIN, strlen(KEY_ORIGIN), origin,
                    strlen(origin), &rerr);
        if (rerr) {
            rocks_error(err, "writing the origin", rerr);
            free_handles(li);
            return NULL;
        }
    }
    char count[8];
    rc = get_meta(li, KEY_INDEXED, count, sizeof count, &len, err);
    if (rc < 0 || (rc == 0 && len != 8)) {
        if (rc == 0)
            error_set(err, "leaf index: the indexed count is %zu bytes", len);
        free_handles(li);
        return NULL;
    }
    atomic_init(&li->indexed, rc == 0 ? be_load((const uint8_t *)count, 8) : 0);
    return li;
}

void leafindex_close(leafindex *li)
{
    if (li)
        free_handles(li);
}

uint64_t leafindex_indexed(leafindex *li)
{
    return atomic_load(&li->indexed);
}

int leafindex_lookup(leafindex *li, const uint8_t leaf_hash[32], uint64_t *index, error *err)
{
    char key[33];
    key[0] = KEY_HASH_PREFIX;
    memcpy(key + 1, leaf_hash, 32);
    char *rerr = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get(li->db, li->read_options, key, sizeof key, &vlen, &rerr);
    if (rerr)
        return rocks_error(err, "lookup", rerr);
    if (!v)
        return LEAFINDEX_NOT_FOUND;
    int rc = 0;
    if (vlen != 8)
        rc = error_set(err, "leaf index: a stored index is %zu bytes", vlen);
    else
        *index = be_load((const uint8_t *)v, 8);
    rocksdb_free(v);
    return rc;
}

/* Fetches a tile of `width` entries: its partial path first (when width < 256), then the
 * full tile that supersedes it (same prefix). */
static int fetch_tile(storage *s, tile_id t, buffer *out, size_t max_len, error *err)
{
    char path[TILE_PATH_MAX];
    for (int attempt = 0; attempt < 2; attempt++) {
        if (tile_path_format(&t, path) < 0)
            return error_set(err, "leaf index: invalid tile");
        int rc = storage_get(s, path, max_len, out, err);
        if (rc == STORAGE_OK)
            return 0;
        if (rc != STORAGE_NOT_FOUND || t.width == 0)
            return error_wrap(err, "leaf index: reading %s", path);
        t.width = 0;
    }
    return -1;
}

/* Indexes leaves [first, n·256 + width) of data tile n within one write batch. */
static int index_tile(leafindex *li, storage *s, uint64_t n, unsigned first, unsigned width,
                      error *err)
{
    buffer stored = {0}, plain = {0}, hashes = {0};
    rocksdb_writebatch_t *batch = NULL;
    int rc = -1;
    tile_id data = {.data = true, .index = n, .width = (uint16_t)(width % TILE_WIDTH)};
    tile_id level0 = {.level = 0, .index = n, .width = (uint16_t)(width % TILE_WIDTH)};
    if (fetch_tile(s, data, &stored, MAX_DATA_TILE, err) != 0 ||
        fetch_tile(s, level0, &hashes, TILE_FULL_BYTES, err) != 0)
        goto done;
    const uint8_t *entries = stored.data;
    size_t entries_len = stored.len;
    if (gzip_is_gzip(stored.data, stored.len)) {
        if (gzip_decompress(stored.data, stored.len, MAX_DATA_TILE, &plain, err) != 0) {
            error_wrap(err, "leaf index: data tile %llu", (unsigned long long)n);
            goto done;
        }
        entries = plain.data;
        entries_len = plain.len;
    }
    if (hashes.len < (size_t)width * 32 || hashes.len % 32 != 0) {
        error_set(err, "leaf index: level-0 tile %llu is %zu bytes, want %u entries",
                  (unsigned long long)n, hashes.len, width);
        goto done;
    }
    batch = rocksdb_writebatch_create();
    ct_data_tile_iter it;
    ct_data_tile_iter_init(&it, entries, entries_len);
    for (unsigned i = 0; i < width; i++) {
        ct_entry e;
        int next = ct_data_tile_next(&it, &e, err);
        if (next != 1) {
            if (next == 0)
                error_set(err, "data tile %llu has %u entries, want %u", (unsigned long long)n,
                          i, width);
            error_wrap(err, "leaf index");
            goto done;
        }
        uint64_t index = n * TILE_WIDTH + i;
        if (e.leaf_index != index) {
            error_set(err, "leaf index: entry %llu carries leaf_index %llu",
                      (unsigned long long)index, (unsigned long long)e.leaf_index);
            goto done;
        }
        if (i < first)
            continue;
        uint8_t key[33];
        key[0] = KEY_HASH_PREFIX;
        if (ct_leaf_hash(&e, key + 1) != 0) {
            error_set(err, "leaf index: entry %llu cannot be hashed", (unsigned long long)index);
            goto done;
        }
        if (memcmp(key + 1, hashes.data + (size_t)i * 32, 32) != 0) {
            error_set(err, "leaf index: entry %llu does not match its level-0 tile hash",
                      (unsigned long long)index);
            goto done;
        }
        uint8_t value[8];
        be_store(value, index, 8);
        rocksdb_writebatch_put(batch, (const char *)key, sizeof key, (const char *)value,
                               sizeof value);
    }
    uint8_t count[8];
    uint64_t indexed = n * TILE_WIDTH + width;
    be_store(count, indexed, 8);
    rocksdb_writebatch_put(batch, KEY_INDEXED, strlen(KEY_INDEXED), (const char *)count,
                           sizeof count);
    char *rerr = NULL;
    rocksdb_write(li->db, li->write_options, batch, &rerr);
    if (rerr) {
        rocks_error(err, "writing", rerr);
        goto done;
    }
    atomic_store(&li->indexed, indexed);
    rc = 0;
done:
    if (batch)
        rocksdb_writebatch_destroy(batch);
    buffer_free(&stored);
    buffer_free(&plain);
    buffer_free(&hashes);
    return rc;
}

int64_t leafindex_catch_up(leafindex *li, storage *s, uint64_t target_size, unsigned max_tiles,
                           error *err)
{
    if (target_size > TILE_MAX_TREE_SIZE)
        return error_set(err, "leaf index: tree size %llu is too large",
                         (unsigned long long)target_size);
    pthread_mutex_lock(&li->catch_up_lock);
    uint64_t start = atomic_load(&li->indexed);
    int64_t rc = 0;
    if (target_size < start) {
        rc = error_set(err, "leaf index: tree size %llu is below the %llu leaves already indexed",
                       (unsigned long long)target_size, (unsigned long long)start);
        goto done;
    }
    for (unsigned tiles = 0; max_tiles == 0 || tiles < max_tiles; tiles++) {
        uint64_t indexed = atomic_load(&li->indexed);
        if (indexed >= target_size)
            break;
        uint64_t n = indexed / TILE_WIDTH;
        uint64_t end = (n + 1) * TILE_WIDTH < target_size ? (n + 1) * TILE_WIDTH : target_size;
        if (index_tile(li, s, n, (unsigned)(indexed % TILE_WIDTH),
                       (unsigned)(end - n * TILE_WIDTH), err) != 0) {
            rc = -1;
            goto done;
        }
    }
    rc = (int64_t)(atomic_load(&li->indexed) - start);
done:
    pthread_mutex_unlock(&li->catch_up_lock);
    return rc;
}

/* ---- Follower thread ---------------------------------------------------------------- */

/* Tiles per catch-up call, so stop requests are noticed between steps. */
#define FOLLOWER_STEP_TILES 16

struct leafindex_follower {
    leafindex *li;
    storage *storage;
    leafindex_size_fn size_fn;
    void *ctx;
    unsigned poll_ms;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    char last_error[sizeof(((error *)0)->msg)];
};

static void follower_report(leafindex_follower *f, const error *err)
{
    if (!err) {
        if (f->last_error[0])
            log_info("leaf index follower recovered", "indexed=%llu",
                     (unsigned long long)leafindex_indexed(f->li));
        f->last_error[0] = 0;
        return;
    }
    if (strcmp(f->last_error, err->msg) != 0)
        log_warn("leaf index follower failed; retrying", "reason=\"%s\"", err->msg);
    memcpy(f->last_error, err->msg, sizeof f->last_error);
}

/* Sleeps up to poll_ms; returns true when asked to stop. */
static bool follower_wait(leafindex_follower *f)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += f->poll_ms / 1000;
    deadline.tv_nsec += (long)(f->poll_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->lock);
    while (!f->stop && pthread_cond_timedwait(&f->wake, &f->lock, &deadline) != ETIMEDOUT) {
    }
    bool stop = f->stop;
    pthread_mutex_unlock(&f->lock);
    return stop;
}

static bool follower_stopping(leafindex_follower *f)
{
    pthread_mutex_lock(&f->lock);
    bool stop = f->stop;
    pthread_mutex_unlock(&f->lock);
    return stop;
}

static void *follower_main(void *arg)
{
    leafindex_follower *f = arg;
    while (!follower_stopping(f)) {
        error err = {{0}};
        uint64_t size;
        if (f->size_fn(f->ctx, &size, &err) != 0) {
            error_wrap(&err, "tree size");
            follower_report(f, &err);
        } else if (leafindex_catch_up(f->li, f->storage, size, FOLLOWER_STEP_TILES, &err) < 0) {
            follower_report(f, &err);
        } else {
            follower_report(f, NULL);
            if (leafindex_indexed(f->li) < size)
                continue; /* still behind: no pause */
        }
        if (follower_wait(f))
            break;
    }
    return NULL;
}

leafindex_follower *leafindex_follower_start(leafindex *li, storage *s, leafindex_size_fn size_fn,
                                             void *ctx, unsigned poll_ms, error *err)
{
    if (!li || !s || !size_fn)
        return error_set(err, "leaf index follower: missing argument"), NULL;
    leafindex_follower *f = calloc(1, sizeof *f);
    if (!f)
        return error_set(err, "leaf index follower: out of memory"), NULL;
    *f = (leafindex_follower){.li = li, .storage = s, .size_fn = size_fn, .ctx = ctx,
                              .poll_ms = poll_ms ? poll_ms : 1000};
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&f->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&f->lock, NULL);
    int rc = pthread_create(&f->thread, NULL, follower_main, f);
    if (rc != 0) {
        pthread_cond_destroy(&f->wake);
        pthread_mutex_destroy(&f->lock);
        free(f);
        return error_set(err, "leaf index follower: cannot start a thread: %s", strerror(rc)),
               NULL;
    }
    return f;
}

void leafindex_follower_stop(leafindex_follower *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    pthread_cond_broadcast(&f->wake);
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    pthread_cond_destroy(&f->wake);
    pthread_mutex_destroy(&f->lock);
    free(f);
}
