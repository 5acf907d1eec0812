/* round: one log's sequencing state and the round that advances it (docs/write-path.md
 * "Sequencer", DESIGN.md §4). Every period the sequencer takes the whole pool and, in order:
 *   1. stamps the entries with ts = max(now_ms, last_ts + 1) and consecutive indices, appends
 *      their TileLeafs to the right-edge data tile (a partial data tile holds the whole tile
 *      prefix) and their leaf hashes to the tile edge, collecting every new tile (data tiles
 *      gzip'd deterministically);
 *   2. uploads issuers the log has not stored yet (create-if-absent; an in-memory set avoids
 *      re-uploads);
 *   3. writes the staging bundle staging/<size>-<hex root> (not for empty rounds: they write
 *      no tiles);
 *   4. signs the checkpoint and CASes it into the lock — from here the tree has advanced;
 *   5. uploads the tiles as one storage batch;
 *   6. uploads `checkpoint`;
 *   7. answers every batch (OK only when step 6 succeeded) and deletes the staging bundle.
 * A failure before step 4 leaves the state as it was (the round's entries get UNAVAILABLE);
 * a lost or failed CAS and a failed tile upload are fatal (the process must stop; recovery
 * finishes the round from the staging bundle); a failed checkpoint upload fails the round's
 * entries but the tree stays advanced.
 *
 * One thread runs rounds; seq_log_public_size and seq_log_ready may be read from any thread. */
#ifndef TEGULA_SEQUENCER_ROUND_H
#define TEGULA_SEQUENCER_ROUND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "error.h"
#include "keys.h"
#include "lock.h"
#include "metrics.h"
#include "note.h"
#include "pool.h"
#include "storage.h"
#include "tiles.h"

/* Test hook: end a round as if the process died right after this step (returns ROUND_FATAL
 * without doing the rest; with seq_log_config.stop_exits the process really ends there). */
typedef enum round_stop_point {
    ROUND_STOP_NEVER = 0,
    ROUND_STOP_AFTER_STAGING,  /* staged, lock not yet CASed */
    ROUND_STOP_AFTER_CAS,      /* lock ahead, tiles not uploaded */
    ROUND_STOP_AFTER_TILES,    /* tiles uploaded, checkpoint not */
} round_stop_point;

typedef struct seq_log_config {
    const char *name;   /* the log's config name (metric labels, log lines) */
    const char *origin; /* checkpoint origin */
    const log_signer *signer;
    storage *store;
    lock *lock;
    metrics_registry *metrics; /* NULL: no metrics */
    unsigned compress_threads; /* threads gzip'ing data tiles; 0 = online CPUs, at most 4 */
    round_stop_point stop_after;
    /* Test hook for system tests (tegula-sequencer reads TEGULA_CRASH_AT): at stop_after the
     * process calls _exit(ROUND_CRASH_EXIT_STATUS) at once, like a kill -9 there (no reply,
     * no cleanup, the staging bundle left behind), instead of returning ROUND_FATAL. Only
     * rounds with entries stop, after stop_skip_rounds of them went past the point. */
    bool stop_exits;
    unsigned stop_skip_rounds;
} seq_log_config;

#define ROUND_CRASH_EXIT_STATUS 86

/* Bound on issuers remembered as stored; beyond it the set restarts (re-uploads of existing
 * issuers are harmless create-if-absent no-ops). */
#define SEQ_ISSUER_SET_MAX (1u << 20)

typedef struct issuer_set {
    uint8_t (*slots)[32]; /* open addressing; all-zero = empty */
    size_t cap, count;
    bool has_zero;
} issuer_set;

/* One log's state. Recovery (recovery.h) fills it in; rounds advance it. Fields are the
 * sequencer's own: outside sequencer/ use the accessors. */
typedef struct seq_log {
    seq_log_config cfg;
    EVP_PKEY *public_key; /* borrowed from the signer */
    char lock_version[LOCK_VERSION_MAX];
    tile_edge *edge;       /* the committed tree (edge->size) */
    tile_edge *work_edge;  /* scratch for the next round */
    uint8_t root[32];
    uint64_t last_timestamp;
    buffer data_tile;      /* TileLeafs of the entries [size - size % 256, size) */
    buffer checkpoint;     /* the last signed checkpoint note */
    issuer_set issuers;
    bool loaded;           /* recovery finished */
    _Atomic uint64_t public_size; /* size of the last checkpoint uploaded */
    _Atomic bool ready;
    unsigned stop_skips_left; /* rounds with entries still to pass cfg.stop_after */
    struct seq_metrics {
        metrics_counter *rounds_ok, *rounds_failed, *rounds_unpublished, *rounds_fatal;
        metrics_counter *entries;
        metrics_histogram *round_seconds;
        metrics_gauge *tree_size, *checkpoint_timestamp;
    } m;
} seq_log;

seq_log *seq_log_new(const seq_log_config *cfg, error *err);
void seq_log_free(seq_log *log);

uint64_t seq_log_size(const seq_log *log);
/* Size of the last checkpoint uploaded to storage. */
uint64_t seq_log_public_size(seq_log *log);
/* Recovered, and the last round (if any) published its checkpoint. */
bool seq_log_ready(seq_log *log);
void seq_log_root(const seq_log *log, uint8_t out[32]);
uint64_t seq_log_last_timestamp(const seq_log *log);

typedef enum round_status {
    ROUND_OK = 0,           /* committed and published; entries answered OK */
    ROUND_FAILED = -1,      /* nothing committed; entries answered UNAVAILABLE */
    ROUND_UNPUBLISHED = -2, /* committed, checkpoint upload failed; entries UNAVAILABLE */
    ROUND_FATAL = -3,       /* CAS lost/failed or tiles not uploaded: stop the process */
} round_status;

typedef struct round_report {
    uint64_t first_index; /* index of the round's first entry */
    uint64_t timestamp;   /* the round's timestamp (entries and checkpoint) */
    uint64_t size;        /* tree size after the round */
    size_t entries;
    size_t tiles;
    size_t issuers_uploaded;
    size_t tile_bytes;    /* bytes of the round's tiles as uploaded */
    /* Milliseconds spent per phase. */
    double ms_build, ms_issuers, ms_staging, ms_commit, ms_tiles, ms_checkpoint, ms_total;
} round_report;

/* Runs one round over everything pooled now. Answers every batch the round took, whatever
 * the outcome. report (may be NULL) describes the round; err says why it did not succeed. */
round_status round_run(seq_log *log, pool *p, uint64_t now_ms, round_report *report,
                       error *err);

/* --- pieces recovery shares --- */

/* The data tile objects' fetch function over a storage (a tile_fetch_fn; ctx = storage). */
int seq_fetch_tile(void *store, const tile_id *t, buffer *out, error *err);
/* Adds fingerprints to / checks the stored-issuer set. */
int issuer_set_add(issuer_set *s, const uint8_t fp[32]);
bool issuer_set_contains(const issuer_set *s, const uint8_t fp[32]);
void issuer_set_free(issuer_set *s);

/* Milliseconds since the Unix epoch, and a monotonic clock in ms, for callers. */
uint64_t seq_now_ms(void);
double seq_monotonic_ms(void);

#endif
