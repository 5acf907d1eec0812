/* pool: the batches a sequencer holds between rounds (docs/write-path.md "Sequencer").
 *
 * Batches arrive from the RPC threads (pool_add) and wait for the next round, which takes
 * them all (pool_take), sequences their entries and answers them (pool_answer). The pool:
 *  - validates every entry (field sizes, fingerprints that resolve to issuers the batch
 *    carries) so a round never meets an entry it cannot encode: bad ones get BAD_REQUEST;
 *  - is bounded by entries (pool_limit) and bytes; entries beyond either bound get OVERLOADED
 *    while the rest of their batch is sequenced;
 *  - makes batches idempotent by (batcher_id, batch_seq): a duplicate of a batch that is
 *    pooled or being sequenced joins it and gets the same reply; a duplicate of a batch
 *    answered in the last `keep_rounds` rounds gets the same results again at once. Older
 *    results are forgotten, so memory stays bounded.
 * Thread-safe: pool_add from any thread, pool_take/pool_answer from the round thread. Reply
 * callbacks run without the pool's lock held. */
#ifndef TEGULA_SEQUENCER_POOL_H
#define TEGULA_SEQUENCER_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ct.h"
#include "error.h"
#include "tegula.pb-c.h"

/* Result statuses are the wire's (Tegula__Status). Pending is internal to the pool. */
#define POOL_STATUS_PENDING 255

/* Bounds on what one batch may carry (a batch is one NNG message). */
#define POOL_MAX_BATCH_ENTRIES 1000000
#define POOL_MAX_BATCH_ISSUERS 65535
#define POOL_MAX_BATCHER_ID 256
/* Default byte bound of pooled entry data. */
#define POOL_DEFAULT_MAX_BYTES ((size_t)256 << 20)
/* Default number of rounds an answered batch's results are kept for duplicates. */
#define POOL_DEFAULT_KEEP_ROUNDS 30

typedef struct pool_result {
    uint8_t status; /* Tegula__Status, or POOL_STATUS_PENDING inside the pool */
    uint64_t leaf_index;
    uint64_t timestamp;
} pool_result;

/* Called once per request (original or duplicate) with that batch's per-entry results.
 * results is only valid during the call. */
typedef void (*pool_reply_fn)(void *reply_ctx, uint64_t batch_seq, const pool_result *results,
                              size_t count);
/* Releases the memory of a batch once the pool no longer points into it. */
typedef void (*pool_release_fn)(void *release_ctx);

typedef struct pool_request {
    const Tegula__Batch *batch; /* borrowed until release is called */
    pool_release_fn release;    /* may be NULL */
    void *release_ctx;
    pool_reply_fn reply;        /* required */
    void *reply_ctx;
} pool_request;

typedef struct pool_config {
    size_t entry_limit;  /* pooled entries before OVERLOADED (config pool_limit) */
    size_t byte_limit;   /* 0 = POOL_DEFAULT_MAX_BYTES */
    unsigned keep_rounds; /* 0 = POOL_DEFAULT_KEEP_ROUNDS */
} pool_config;

typedef struct pool pool;

/* An issuer some entry of the round refers to (pointers into the batches). */
typedef struct pool_issuer {
    uint8_t fingerprint[32];
    const uint8_t *der;
    size_t len;
} pool_issuer;

/* What a round takes: its entries in sequencing order (views into the batches; timestamp and
 * leaf_index are the round's to fill in), the issuers of their batches, and where their
 * results go. Owned by the pool until pool_answer. */
typedef struct pool_round {
    ct_entry *entries;
    pool_result **results; /* results[i] is entry i's slot */
    size_t count;
    pool_issuer *issuers;  /* may repeat across batches */
    size_t issuer_count;
    size_t batch_count;
    struct pool_record **records; /* private */
    size_t record_cap;
    uint8_t *fingerprints; /* private: the entries' fingerprints, contiguous as ct_entry wants */
    size_t fingerprint_cap;
} pool_round;

pool *pool_new(const pool_config *config);
/* Answers every batch still held with UNAVAILABLE, then frees the pool. */
void pool_free(pool *p);

/* Offers one batch. Always answers the request exactly once (now or after its round) and
 * releases the batch exactly once. */
void pool_add(pool *p, const pool_request *req);
/* After this every pool_add is answered UNAVAILABLE at once; pooled batches stay for the last
 * round. */
void pool_close(pool *p);

/* Moves every pooled batch into r (which must be zeroed or previously answered). */
int pool_take(pool *p, pool_round *r, error *err);
/* Sets every pending result of the round: OK with leaf_index = first_index + i and the
 * timestamp when status is OK, else the given status with zero index and timestamp. */
void pool_round_finish(pool_round *r, uint8_t status, uint64_t first_index, uint64_t timestamp);
/* Replies to every request of the round (and their duplicates), remembers the results for
 * keep_rounds rounds, releases the batches, forgets expired results and empties r (it may be
 * reused for the next pool_take). Every result must be final (pool_round_finish). */
void pool_answer(pool *p, pool_round *r);
void pool_round_free(pool_round *r);

typedef struct pool_stats {
    size_t pooled_entries;
    size_t pooled_bytes;
    size_t pooled_batches;
    size_t remembered_batches; /* answered, kept for duplicates */
    uint64_t overloaded_entries;  /* total since start */
    uint64_t rejected_entries;    /* BAD_REQUEST, total */
    uint64_t duplicate_batches;   /* total */
} pool_stats;
void pool_stats_read(pool *p, pool_stats *out);

#endif
