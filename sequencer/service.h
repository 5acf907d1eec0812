/* service: the sequencer's RPC face (docs/write-path.md "Transport"). Listens on the log's
 * `sequencer:` address and answers
 *   Batch -> BatchReply: per-entry results once the batch's round is published (through the
 *            pool, which makes batches idempotent); a batch for another log, or any batch
 *            while the log is read-only, is refused whole with BAD_REQUEST;
 *   Ping  -> Pong { role "sequencer", log, tree_size (published), ready }.
 * Anything else gets an empty Envelope (the caller sees a protocol error). */
#ifndef TEGULA_SEQUENCER_SERVICE_H
#define TEGULA_SEQUENCER_SERVICE_H

#include <stdbool.h>

#include "error.h"
#include "pool.h"
#include "round.h"

typedef struct seq_service seq_service;

typedef struct seq_service_config {
    const char *url;      /* NNG listen address */
    const char *log_name; /* batches must name this log */
    bool readonly;        /* refuse every batch */
    seq_log *log;         /* for Pong */
    pool *pool;           /* where batches go */
} seq_service_config;

seq_service *seq_service_start(const seq_service_config *cfg, error *err);
/* The TCP port bound (for tcp:// urls with port 0). */
int seq_service_port(const seq_service *s);
/* Stops listening, waits up to wait_ms for unanswered batches, frees the service. Batches
 * still in the pool are answered later by the pool (their replies are then dropped). */
void seq_service_stop(seq_service *s, int wait_ms);

#endif
