/* batching: the batcher's core (DESIGN.md §2 steps 4–6, docs/write-path.md "Batcher").
 *
 * Per log: an open batch, an in-flight map dedup_key → entry (with the reply tokens of every
 * submission waiting for it) and a pending count. A submission is answered
 *   - at once from the dedup store (RocksDB) when the key was sequenced before;
 *   - by joining the waiters of the same key when it is already in flight;
 *   - OVERLOADED when the log already has queue_limit entries pending (queue_limit / 2 for
 *     low_priority submissions, so ordinary traffic keeps room);
 *   - otherwise by appending a new entry to the log's open batch.
 * A batch is sent to the log's sequencer (rpc, one call with deadline sequencer_timeout_ms)
 * when it holds batch_max entries (or about 16 MiB) or is batch_wait_ms old. Each Batch
 * carries the batcher's id and a batch_seq that increases strictly across the whole batcher
 * (max(previous + 1, wall clock ms), so a restarted batcher does not reuse one unless it
 * averaged more than a batch per millisecond); issuers are de-duplicated inside a batch.
 * On the BatchReply every waiter gets its entry's (leaf_index, timestamp) or status, THEN the
 * OK results are written to the dedup store in one write batch (on the log's thread, not the
 * NNG thread). A call that times out or fails gives every waiter UNAVAILABLE and writes
 * nothing. Until its record is in RocksDB an answered entry stays in the in-flight map, so a
 * resubmission in between is answered from memory instead of being sequenced twice.
 *
 * Threads: batcher_submit may be called from any thread (NNG handler threads); each log has
 * its own mutex (no lock is shared between logs) and its own thread for age flushes and
 * dedup writes. Replies run on NNG threads, a log thread, or inside batcher_submit. */
#ifndef TEGULA_BATCHER_BATCHING_H
#define TEGULA_BATCHER_BATCHING_H

#include <stdbool.h>
#include <stdint.h>

#include "buffer.h"
#include "config.h"
#include "dedup_store.h"
#include "error.h"
#include "metrics.h"
#include "tegula.pb-c.h"

/* Bounds on what one submission may carry (the frontend allows 10 certificates). */
#define BATCHER_MAX_ISSUERS 16
/* A batch is also flushed once its entries and issuers reach this many bytes, so a Batch
 * message stays far below the sequencer's message size limit whatever batch_max is. */
#define BATCHER_MAX_BATCH_BYTES ((size_t)16 << 20)

typedef struct batcher batcher;

typedef struct batcher_result {
    Tegula__Status status;
    uint64_t leaf_index; /* OK only */
    uint64_t timestamp;  /* OK only */
    const char *message; /* never NULL, "" when OK; valid during the callback only */
} batcher_result;

/* Answers one submission. Called exactly once per batcher_submit, from any thread, possibly
 * before batcher_submit returns; must not call back into the batcher. */
typedef void (*batcher_reply_fn)(void *arg, void *token, const batcher_result *result);

typedef struct batcher_options {
    const config *cfg;         /* logs and the batchers section; must outlive the batcher */
    const char *id;            /* batcher_id sent with every Batch (copied) */
    dedup_store *store;        /* required; the caller closes it after batcher_free */
    metrics_registry *metrics; /* NULL: no metrics */
    batcher_reply_fn reply;    /* required */
    void *reply_arg;
} batcher_options;

/* Opens a client to every active log's sequencer (dialling in the background; an unreachable
 * sequencer is not an error here) and starts the log threads. NULL with err on failure. */
batcher *batcher_start(const batcher_options *opts, error *err);

/* Handles one SubmitRequest; req is only read during the call (what is kept is copied).
 * Unknown or read-only log, or a malformed request (wrong key or fingerprint lengths, a key
 * that is not the entry's dedup key, a fingerprint that is not its issuer's SHA-256, too many
 * issuers) → BAD_REQUEST with the reason; never a crash. */
void batcher_submit(batcher *b, const Tegula__SubmitRequest *req, void *token);

/* True while not draining and every active log's sequencer is connected. When report is not
 * NULL, appends one line per log ("2026h1 tcp://127.0.0.1:9201 connected\n"). */
bool batcher_ready(batcher *b, buffer *report);

/* Graceful stop: from now on new keys are refused with UNAVAILABLE; open batches are sent at
 * once; waits up to wait_ms for the batches in flight to be answered (and their records
 * written), then fails what is left with UNAVAILABLE (nothing written for those) and stops
 * the log threads. Every submission has been answered when it returns. Call it once, not from
 * a reply callback; afterwards only batcher_free may be called (no more batcher_submit). */
void batcher_drain(batcher *b, int wait_ms);
/* Drains with no wait if batcher_drain was not called, then frees. NULL is ignored. */
void batcher_free(batcher *b);

typedef struct batcher_stats {
    uint64_t batches_sent;
    uint64_t last_batch_seq;
    uint64_t pending; /* entries accepted and not yet finished, all logs */
} batcher_stats;

void batcher_stats_read(batcher *b, batcher_stats *out);

#endif
