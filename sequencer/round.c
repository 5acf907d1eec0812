/* round: building a round's tiles and committing them in the order that survives a crash. */
#include "round.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "ct.h"
#include "gzip.h"
#include "log.h"
#include "merkle.h"
#include "staging.h"

/* A data tile holds at most 256 entries of bounded size; its gzip'd form is read back in
 * recovery with this cap. */
#define SEQ_DATA_TILE_MAX ((size_t)1 << 30)

uint64_t seq_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

double seq_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* --- stored-issuer set ------------------------------------------------------------------ */

static bool fp_is_zero(const uint8_t fp[32])
{
    static const uint8_t zero[32];
    return memcmp(fp, zero, 32) == 0;
}

static size_t fp_slot(const uint8_t fp[32], size_t cap)
{
    /* Fingerprints are SHA-256 outputs: any 8 bytes are uniformly spread. */
    uint64_t h;
    memcpy(&h, fp, 8);
    return (size_t)h & (cap - 1);
}

bool issuer_set_contains(const issuer_set *s, const uint8_t fp[32])
{
    if (fp_is_zero(fp))
        return s->has_zero;
    if (s->cap == 0)
        return false;
    for (size_t i = fp_slot(fp, s->cap);; i = (i + 1) & (s->cap - 1)) {
        if (fp_is_zero(s->slots[i]))
            return false;
        if (memcmp(s->slots[i], fp, 32) == 0)
            return true;
    }
}

static void issuer_set_place(uint8_t (*slots)[32], size_t cap, const uint8_t fp[32])
{
    size_t i = fp_slot(fp, cap);
    while (!fp_is_zero(slots[i]))
        i = (i + 1) & (cap - 1);
    memcpy(slots[i], fp, 32);
}

int issuer_set_add(issuer_set *s, const uint8_t fp[32])
{
    if (fp_is_zero(fp)) {
        s->has_zero = true;
        return 0;
    }
    if (issuer_set_contains(s, fp))
        return 0;
    if (s->count >= SEQ_ISSUER_SET_MAX) {
        /* Forget everything rather than grow without bound. */
        memset(s->slots, 0, s->cap * 32);
        s->count = 0;
    }
    if ((s->count + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        uint8_t (*slots)[32] = calloc(cap, 32);
        if (slots == NULL)
            return -1;
        for (size_t i = 0; i < s->cap; i++)
            if (!fp_is_zero(s->slots[i]))
                issuer_set_place(slots, cap, s->slots[i]);
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    issuer_set_place(s->slots, s->cap, fp);
    s->count++;
    return 0;
}

void issuer_set_free(issuer_set *s)
{
    free(s->slots);
    memset(s, 0, sizeof *s);
}

/* --- the log ---------------------------------------------------------------------------- */

static const double round_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5,   1,    2.5,   5,    10};

static void register_metrics(seq_log *log)
{
    metrics_registry *r = log->cfg.metrics;
    if (r == NULL)
        return;
    metrics_label labels[2] = {{"log", log->cfg.name ? log->cfg.name : ""}, {"result", ""}};
    const char *rounds_help = "Sequencing rounds by outcome.";
    labels[1].value = "ok";
    log->m.rounds_ok = metrics_counter_register(r, "tegula_sequencer_rounds_total", rounds_help,
                                                labels, 2, NULL);
    labels[1].value = "failed";
    log->m.rounds_failed = metrics_counter_register(r, "tegula_sequencer_rounds_total",
                                                    rounds_help, labels, 2, NULL);
    labels[1].value = "unpublished";
    log->m.rounds_unpublished = metrics_counter_register(r, "tegula_sequencer_rounds_total",
                                                         rounds_help, labels, 2, NULL);
    labels[1].value = "fatal";
    log->m.rounds_fatal = metrics_counter_register(r, "tegula_sequencer_rounds_total",
                                                   rounds_help, labels, 2, NULL);
    log->m.entries = metrics_counter_register(r, "tegula_sequencer_entries_total",
                                              "Entries sequenced and published.", labels, 1,
                                              NULL);
    log->m.round_seconds = metrics_histogram_register(
        r, "tegula_sequencer_round_seconds", "Duration of a sequencing round.", labels, 1,
        round_buckets, sizeof round_buckets / sizeof round_buckets[0], NULL);
    log->m.tree_size = metrics_gauge_register(r, "tegula_sequencer_tree_size",
                                              "Size of the last committed tree.", labels, 1, NULL);
    log->m.checkpoint_timestamp = metrics_gauge_register(
        r, "tegula_sequencer_checkpoint_timestamp_seconds",
        "Timestamp of the last committed checkpoint.", labels, 1, NULL);
}

seq_log *seq_log_new(const seq_log_config *cfg, error *err)
{
    if (cfg->origin == NULL || cfg->signer == NULL || cfg->store == NULL || cfg->lock == NULL) {
        error_set(err, "sequencer log needs an origin, a signer, a storage and a lock");
        return NULL;
    }
    seq_log *log = calloc(1, sizeof *log);
    if (log == NULL) {
        error_set(err, "out of memory");
        return NULL;
    }
    log->cfg = *cfg;
    log->stop_skips_left = cfg->stop_skip_rounds;
    log->public_key = log_signer_public_key(cfg->signer);
    log->edge = malloc(sizeof *log->edge);
    log->work_edge = malloc(sizeof *log->work_edge);
    if (log->edge == NULL || log->work_edge == NULL) {
        seq_log_free(log);
        error_set(err, "out of memory");
        return NULL;
    }
    tile_edge_init(log->edge);
    merkle_empty_root(log->root);
    register_metrics(log);
    return log;
}

void seq_log_free(seq_log *log)
{
    if (log == NULL)
        return;
    free(log->edge);
    free(log->work_edge);
    buffer_free(&log->data_tile);
    buffer_free(&log->checkpoint);
    issuer_set_free(&log->issuers);
    free(log);
}

uint64_t seq_log_size(const seq_log *log)
{
    return log->edge->size;
}

uint64_t seq_log_public_size(seq_log *log)
{
    return atomic_load(&log->public_size);
}

bool seq_log_ready(seq_log *log)
{
    return atomic_load(&log->ready);
}

void seq_log_root(const seq_log *log, uint8_t out[32])
{
    memcpy(out, log->root, 32);
}

uint64_t seq_log_last_timestamp(const seq_log *log)
{
    return log->last_timestamp;
}

int seq_fetch_tile(void *store, const tile_id *t, buffer *out, error *err)
{
    char path[TILE_PATH_MAX];
    if (tile_path_format(t, path) < 0)
        return error_set(err, "invalid tile id");
    int rc = storage_get(store, path, t->data ? SEQ_DATA_TILE_MAX : TILE_FULL_BYTES, out, err);
    if (rc == STORAGE_NOT_FOUND)
        return TILE_FETCH_NOT_FOUND;
    return rc == STORAGE_OK ? 0 : -1;
}

/* --- one round -------------------------------------------------------------------------- */

typedef struct round_object {
    char key[TILE_PATH_MAX];
    uint8_t *data;
    size_t len;
} round_object;

typedef struct round_objects {
    round_object *items;
    size_t len, cap;
} round_objects;

static int objects_add(round_objects *o, const tile_id *t, uint8_t *data, size_t len, error *err)
{
    if (o->len == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        round_object *items = realloc(o->items, cap * sizeof *items);
        if (items == NULL)
            return error_set(err, "out of memory collecting tiles");
        o->items = items;
        o->cap = cap;
    }
    round_object *obj = &o->items[o->len];
    if (tile_path_format(t, obj->key) < 0)
        return error_set(err, "invalid tile id");
    obj->data = data;
    obj->len = len;
    o->len++;
    return 0;
}

static void objects_free(round_objects *o)
{
    for (size_t i = 0; i < o->len; i++)
        free(o->items[i].data);
    free(o->items);
    memset(o, 0, sizeof *o);
}

static int emit_hash_tile(void *ctx, const tile_id *t, const uint8_t *data, size_t len,
                          error *err)
{
    uint8_t *copy = malloc(len);
    if (copy == NULL)
        return error_set(err, "out of memory copying a hash tile");
    memcpy(copy, data, len);
    if (objects_add(ctx, t, copy, len, err) != 0) {
        free(copy);
        return -1;
    }
    return 0;
}

/* Data tiles to compress: slices of the round's raw TileLeaf buffer. Compression is most of
 * a round's CPU, and tiles are independent, so a few threads share them. */
typedef struct data_job {
    uint64_t index;
    unsigned width;
    size_t start, end; /* offsets into the raw buffer */
    buffer gz;
    error err;
    int rc;
} data_job;

typedef struct compress_team {
    const buffer *raw;
    data_job *jobs;
    size_t count;
    atomic_size_t next;
} compress_team;

static void *compress_worker(void *arg)
{
    compress_team *team = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&team->next, 1);
        if (i >= team->count)
            return NULL;
        data_job *j = &team->jobs[i];
        j->rc = gzip_compress(team->raw->data + j->start, j->end - j->start, &j->gz, &j->err);
    }
}

static unsigned compress_thread_count(const seq_log *log)
{
    if (log->cfg.compress_threads > 0)
        return log->cfg.compress_threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 4 ? 4 : (unsigned)n;
}

static int compress_data_tiles(seq_log *log, const buffer *raw, data_job *jobs, size_t count,
                               round_objects *objects, error *err)
{
    compress_team team = {.raw = raw, .jobs = jobs, .count = count};
    atomic_init(&team.next, 0);
    unsigned want = compress_thread_count(log);
    if (want > count)
        want = (unsigned)count;
    pthread_t threads[16];
    unsigned started = 0;
    for (unsigned t = 1; t < want && t < 16; t++) {
        if (pthread_create(&threads[started], NULL, compress_worker, &team) != 0)
            break; /* fewer helpers, same result */
        started++;
    }
    compress_worker(&team);
    for (unsigned t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        data_job *j = &jobs[i];
        if (rc == 0 && j->rc != 0) {
            error_set(err, "compressing data tile %" PRIu64 ": %s", j->index, j->err.msg);
            rc = -1;
        }
        if (rc == 0) {
            tile_id t = {.data = true, .index = j->index, .width = (uint16_t)j->width};
            if (objects_add(objects, &t, j->gz.data, j->gz.len, err) != 0)
                rc = -1;
            else
                j->gz = (buffer){0}; /* owned by the object now */
        }
        buffer_free(&j->gz);
    }
    return rc;
}

/* Step 1: the round's tiles, built on the work copies of the edge and the data tile. The
 * raw buffer holds the committed partial data tile's entries followed by the round's. */
static int build_tiles(seq_log *log, pool_round *r, uint64_t ts, buffer *data_tile,
                       round_objects *objects, uint8_t root[32], error *err)
{
    uint64_t first = log->edge->size;
    size_t n = r->count;
    memcpy(log->work_edge, log->edge, sizeof *log->work_edge);
    buffer_reset(data_tile);
    if (buffer_append(data_tile, log->data_tile.data, log->data_tile.len) != 0)
        return error_set(err, "out of memory copying the data tile");
    if (n == 0) {
        memcpy(root, log->root, 32);
        return 0;
    }
    if (first + n > TILE_MAX_TREE_SIZE)
        return error_set(err, "the log is full (%" PRIu64 " entries)", first);
    uint64_t size = first + n;
    size_t job_count = (size_t)((size - 1) / TILE_WIDTH - first / TILE_WIDTH + 1);
    uint8_t (*hashes)[MERKLE_HASH_LEN] = malloc(n * MERKLE_HASH_LEN);
    data_job *jobs = calloc(job_count, sizeof *jobs);
    int rc = -1;
    if (hashes == NULL || jobs == NULL) {
        error_set(err, "out of memory for a round of %zu entries", n);
        goto out;
    }
    size_t jobs_made = 0, tile_start = 0;
    for (size_t i = 0; i < n; i++) {
        ct_entry *e = &r->entries[i];
        uint64_t index = first + i;
        e->timestamp = ts;
        e->leaf_index = index;
        if (ct_leaf_hash(e, hashes[i]) != 0 || ct_tile_leaf_encode(data_tile, e) != 0) {
            error_set(err, "entry %" PRIu64 " cannot be encoded", index);
            goto out;
        }
        if ((index + 1) % TILE_WIDTH == 0) {
            jobs[jobs_made++] = (data_job){.index = index / TILE_WIDTH, .width = 0,
                                           .start = tile_start, .end = data_tile->len};
            tile_start = data_tile->len;
        }
    }
    if (size % TILE_WIDTH != 0)
        jobs[jobs_made++] = (data_job){.index = size / TILE_WIDTH, .width = size % TILE_WIDTH,
                                       .start = tile_start, .end = data_tile->len};
    if (compress_data_tiles(log, data_tile, jobs, jobs_made, objects, err) != 0)
        goto out;
    /* Keep only the new partial data tile's entries for the next round. */
    if (tile_start > 0) {
        memmove(data_tile->data, data_tile->data + tile_start, data_tile->len - tile_start);
        data_tile->len -= tile_start;
    }
    if (tile_edge_append(log->work_edge, (const uint8_t(*)[MERKLE_HASH_LEN])hashes, n,
                         emit_hash_tile, objects, err) != 0) {
        error_wrap(err, "building hash tiles");
        goto out;
    }
    tile_edge_root(log->work_edge, root);
    rc = 0;
out:
    free(hashes);
    free(jobs);
    return rc;
}

static int compare_issuers(const void *a, const void *b)
{
    return memcmp(((const pool_issuer *)a)->fingerprint, ((const pool_issuer *)b)->fingerprint,
                  32);
}

/* Step 2: issuers the log has not stored yet, create-if-absent in one batch. */
static int upload_issuers(seq_log *log, pool_round *r, size_t *uploaded, error *err)
{
    *uploaded = 0;
    if (r->issuer_count == 0)
        return 0;
    pool_issuer *todo = malloc(r->issuer_count * sizeof *todo);
    if (todo == NULL)
        return error_set(err, "out of memory listing issuers");
    size_t n = 0;
    for (size_t i = 0; i < r->issuer_count; i++)
        if (!issuer_set_contains(&log->issuers, r->issuers[i].fingerprint))
            todo[n++] = r->issuers[i];
    qsort(todo, n, sizeof *todo, compare_issuers);
    size_t unique = 0;
    for (size_t i = 0; i < n; i++)
        if (unique == 0 || memcmp(todo[unique - 1].fingerprint, todo[i].fingerprint, 32) != 0)
            todo[unique++] = todo[i];
    n = unique;
    int rc = 0;
    if (n > 0) {
        storage_object *objs = calloc(n, sizeof *objs);
        char (*keys)[7 + 64 + 1] = malloc(n * sizeof *keys);
        if (objs == NULL || keys == NULL) {
            rc = error_set(err, "out of memory uploading issuers");
        } else {
            for (size_t i = 0; i < n; i++) {
                memcpy(keys[i], "issuer/", 7);
                hex_encode(keys[i] + 7, todo[i].fingerprint, 32);
                objs[i] = (storage_object){.key = keys[i], .data = todo[i].der,
                                           .len = todo[i].len, .mode = STORAGE_CREATE};
            }
            if (storage_write_batch(log->cfg.store, objs, n, NULL, err) != STORAGE_OK) {
                rc = error_wrap(err, "uploading %zu issuers", n);
            } else {
                for (size_t i = 0; i < n; i++)
                    issuer_set_add(&log->issuers, todo[i].fingerprint); /* best effort */
                *uploaded = n;
            }
        }
        free(objs);
        free(keys);
    }
    free(todo);
    return rc;
}

static int write_staging(seq_log *log, const round_objects *objects, uint64_t size,
                         const uint8_t root[32], char key[STAGING_KEY_MAX], error *err)
{
    staging_object *so = calloc(objects->len ? objects->len : 1, sizeof *so);
    if (so == NULL)
        return error_set(err, "out of memory staging");
    for (size_t i = 0; i < objects->len; i++)
        so[i] = (staging_object){objects->items[i].key, objects->items[i].data,
                                 objects->items[i].len};
    buffer bundle = {0};
    int rc = staging_encode(&bundle, so, objects->len, err);
    free(so);
    if (rc == 0) {
        staging_key(size, root, key);
        if (storage_put(log->cfg.store, key, bundle.data, bundle.len, NULL, err) != STORAGE_OK)
            rc = error_wrap(err, "writing %s", key);
    }
    buffer_free(&bundle);
    return rc;
}

static int upload_tiles(seq_log *log, const round_objects *objects, error *err)
{
    if (objects->len == 0)
        return 0;
    storage_object *objs = calloc(objects->len, sizeof *objs);
    if (objs == NULL)
        return error_set(err, "out of memory uploading tiles");
    for (size_t i = 0; i < objects->len; i++)
        objs[i] = (storage_object){.key = objects->items[i].key, .data = objects->items[i].data,
                                   .len = objects->items[i].len, .mode = STORAGE_CREATE};
    int rc = storage_write_batch(log->cfg.store, objs, objects->len, NULL, err);
    free(objs);
    if (rc != STORAGE_OK)
        return error_wrap(err, "uploading %zu tiles", objects->len);
    return 0;
}

static const char *stop_point_name(round_stop_point point)
{
    switch (point) {
    case ROUND_STOP_AFTER_STAGING: return "after-staging";
    case ROUND_STOP_AFTER_CAS: return "after-lock-cas";
    case ROUND_STOP_AFTER_TILES: return "after-tiles";
    default: return "never";
    }
}

/* The test hook: whether this round stops at `point` (see seq_log_config.stop_after). In the
 * crash form it does not return: the process ends as abruptly as a kill -9 would end it. */
static bool stop_here(seq_log *log, round_stop_point point, size_t entries, uint64_t size)
{
    if (log->cfg.stop_after != point)
        return false;
    if (!log->cfg.stop_exits)
        return true;
    if (entries == 0)
        return false;
    if (log->stop_skips_left > 0) {
        log->stop_skips_left--;
        return false;
    }
    log_warn("test crash point reached: exiting at once", "log=%s point=%s size=%" PRIu64,
             log->cfg.name ? log->cfg.name : "", stop_point_name(point), size);
    _exit(ROUND_CRASH_EXIT_STATUS);
}

static void count_outcome(seq_log *log, round_status st)
{
    switch (st) {
    case ROUND_OK: metrics_counter_inc(log->m.rounds_ok); break;
    case ROUND_FAILED: metrics_counter_inc(log->m.rounds_failed); break;
    case ROUND_UNPUBLISHED: metrics_counter_inc(log->m.rounds_unpublished); break;
    case ROUND_FATAL: metrics_counter_inc(log->m.rounds_fatal); break;
    }
}

round_status round_run(seq_log *log, pool *p, uint64_t now_ms, round_report *report,
                       error *err)
{
    round_report rep = {0};
    double t0 = seq_monotonic_ms(), t = t0, t_next;
    pool_round r = {0};
    round_objects objects = {0};
    buffer data_tile = {0}, note = {0};
    char staging[STAGING_KEY_MAX] = "";
    round_status st = ROUND_FAILED;
    uint8_t root[32];
    uint64_t ts = now_ms > log->last_timestamp ? now_ms : log->last_timestamp + 1;
    uint64_t first = log->edge->size;

    if (!log->loaded) {
        error_set(err, "the log has not been recovered");
        return ROUND_FATAL;
    }
    if (pool_take(p, &r, err) != 0)
        goto done; /* nothing taken: the batches wait for the next round */
    rep.first_index = first;
    rep.timestamp = ts;
    rep.entries = r.count;

    if (build_tiles(log, &r, ts, &data_tile, &objects, root, err) != 0)
        goto answer;
    uint64_t size = first + r.count;
    rep.size = size;
    rep.tiles = objects.len;
    for (size_t i = 0; i < objects.len; i++)
        rep.tile_bytes += objects.items[i].len;
    t_next = seq_monotonic_ms();
    rep.ms_build = t_next - t;
    t = t_next;

    if (upload_issuers(log, &r, &rep.issuers_uploaded, err) != 0)
        goto answer;
    t_next = seq_monotonic_ms();
    rep.ms_issuers = t_next - t;
    t = t_next;

    if (objects.len > 0 && write_staging(log, &objects, size, root, staging, err) != 0)
        goto answer;
    t_next = seq_monotonic_ms();
    rep.ms_staging = t_next - t;
    t = t_next;
    if (stop_here(log, ROUND_STOP_AFTER_STAGING, r.count, size)) {
        st = ROUND_FATAL;
        error_set(err, "stopped after staging (test)");
        goto answer;
    }

    if (checkpoint_sign(&note, log->cfg.signer, log->cfg.origin, size, root, ts, err) != 0)
        goto answer;
    char version[LOCK_VERSION_MAX];
    int lrc = lock_cas(log->cfg.lock, log->lock_version, note.data, note.len, version, err);
    if (lrc != LOCK_OK) {
        st = ROUND_FATAL;
        if (lrc == LOCK_CONFLICT)
            error_wrap(err, "lost the lock (another sequencer committed)");
        else
            error_wrap(err, "lock CAS failed, outcome unknown");
        goto answer;
    }
    /* Committed: the tree has advanced whatever happens next. */
    memcpy(log->lock_version, version, LOCK_VERSION_MAX);
    tile_edge *old = log->edge;
    log->edge = log->work_edge;
    log->work_edge = old;
    buffer swap = log->data_tile;
    log->data_tile = data_tile;
    data_tile = swap;
    memcpy(log->root, root, 32);
    log->last_timestamp = ts;
    buffer_reset(&log->checkpoint);
    if (buffer_append(&log->checkpoint, note.data, note.len) != 0)
        buffer_reset(&log->checkpoint);
    metrics_gauge_set(log->m.tree_size, (double)size);
    metrics_gauge_set(log->m.checkpoint_timestamp, (double)ts / 1000.0);
    t_next = seq_monotonic_ms();
    rep.ms_commit = t_next - t;
    t = t_next;
    if (stop_here(log, ROUND_STOP_AFTER_CAS, r.count, size)) {
        st = ROUND_FATAL;
        error_set(err, "stopped after the CAS (test)");
        goto answer;
    }

    if (upload_tiles(log, &objects, err) != 0) {
        st = ROUND_FATAL;
        goto answer;
    }
    t_next = seq_monotonic_ms();
    rep.ms_tiles = t_next - t;
    t = t_next;
    if (stop_here(log, ROUND_STOP_AFTER_TILES, r.count, size)) {
        st = ROUND_FATAL;
        error_set(err, "stopped after the tiles (test)");
        goto answer;
    }

    if (storage_put(log->cfg.store, "checkpoint", note.data, note.len, NULL, err) !=
        STORAGE_OK) {
        error_wrap(err, "uploading the checkpoint of size %" PRIu64, size);
        st = ROUND_UNPUBLISHED;
        goto answer;
    }
    t_next = seq_monotonic_ms();
    rep.ms_checkpoint = t_next - t;
    atomic_store(&log->public_size, size);
    st = ROUND_OK;

answer:
    if (st == ROUND_OK) {
        pool_round_finish(&r, TEGULA__STATUS__STATUS_OK, first, ts);
        metrics_counter_add(log->m.entries, r.count);
    } else {
        pool_round_finish(&r, TEGULA__STATUS__STATUS_UNAVAILABLE, 0, 0);
    }
    pool_answer(p, &r);
    /* The bundle is only needed until the tiles are uploaded; after a fatal stop recovery
     * needs it, so it stays. */
    if (staging[0] != '\0' && st != ROUND_FATAL) {
        error derr;
        if (storage_delete(log->cfg.store, staging, &derr) != STORAGE_OK)
            log_warn("could not delete the staging bundle", "key=%s error=\"%s\"", staging,
                     derr.msg);
    }
done:
    /* Ready means "the last round published": a log whose storage keeps failing is not. */
    atomic_store(&log->ready, st == ROUND_OK);
    rep.ms_total = seq_monotonic_ms() - t0;
    count_outcome(log, st);
    metrics_histogram_observe(log->m.round_seconds, rep.ms_total / 1000.0);
    if (report != NULL)
        *report = rep;
    pool_round_free(&r);
    objects_free(&objects);
    buffer_free(&data_tile);
    buffer_free(&note);
    return st;
}
