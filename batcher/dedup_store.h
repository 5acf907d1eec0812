/* dedup_store: the batcher's memory of entries already sequenced, so a resubmission is answered
 * with its original (leaf_index, timestamp) without going to the sequencer again.
 *
 * RocksDB, one database per batcher (batchers.db/<sanitised id>):
 *   key   = log name ‖ 0x00 ‖ 32-byte dedup key
 *   value = leaf_index u64 ‖ timestamp u64, both big-endian
 * Records are written only after the sequencer published them; losing the database costs
 * duplicates in the log, never a wrong answer. Writes go through the WAL without fsync: a
 * machine crash may lose the last writes (duplicates again), a process crash loses nothing.
 *
 * Thread-safe: any number of threads may look up and write concurrently. */
#ifndef TEGULA_BATCHER_DEDUP_STORE_H
#define TEGULA_BATCHER_DEDUP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "error.h"

#define DEDUP_KEY_LEN 32
#define DEDUP_VALUE_LEN 16

typedef struct dedup_store dedup_store;

/* One sequenced entry of one log. */
typedef struct dedup_record {
    const uint8_t *dedup_key; /* DEDUP_KEY_LEN bytes */
    uint64_t leaf_index;
    uint64_t timestamp;
} dedup_record;

/* Opens (creating if missing) the database in directory `path`. If it cannot be opened
 * (corruption, wrong format) and `recreate` is true, the old directory is renamed aside to
 * `<path>.broken-<unix ms>` and a fresh one is created; otherwise NULL with the reason.
 * A database held by another process is never recreated. */
dedup_store *dedup_store_open(const char *path, bool recreate, error *err);
void dedup_store_close(dedup_store *store);

/* Looks up one key. Returns 1 and fills *leaf_index / *timestamp when found, 0 when absent,
 * -1 on a read error. */
int dedup_store_get(dedup_store *store, const char *log, const uint8_t *dedup_key,
                    uint64_t *leaf_index, uint64_t *timestamp, error *err);

/* Writes every record of one log in one atomic write batch. Returns 0 or -1. */
int dedup_store_put(dedup_store *store, const char *log, const dedup_record *records,
                    size_t count, error *err);

/* The directory of a batcher's database: `db_dir`/<id with every byte outside [A-Za-z0-9._-]
 * replaced by '_', and a leading '.' too>, so "tcp://127.0.0.1:9101" becomes
 * "tcp___127.0.0.1_9101". Appends to out (NUL-terminated). Returns 0 or -1 (empty id, or
 * out of memory). */
int dedup_store_path(const char *db_dir, const char *id, buffer *out, error *err);

#endif
