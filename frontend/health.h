/* health: the frontend's readiness, probed in the background so /readyz never waits.
 *
 * Every interval the thread pings every batcher (which also marks the batcher ring) and the
 * sequencer of every active log, and caches the verdict: ready when at least one batcher and
 * every such sequencer answered. Until the first round completes the frontend is not ready. */
#ifndef TEGULA_FRONTEND_HEALTH_H
#define TEGULA_FRONTEND_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "batchers.h"
#include "config.h"
#include "error.h"

typedef struct health health;

/* Opens a client per active log's sequencer and starts probing every interval_ms, each ping
 * bounded by probe_timeout_ms. The pool is borrowed and must outlive the health checker. */
health *health_start(const config *cfg, batcher_pool *pool, unsigned interval_ms,
                     int probe_timeout_ms, error *err);
/* The cached verdict; when not ready, a one-line reason goes to reason[0..reason_len). */
bool health_ready(health *h, char *reason, size_t reason_len);
/* Batchers and sequencers that answered in the last round (for /metrics). */
void health_counts(health *h, size_t *batchers_live, size_t *sequencers_live,
                   size_t *sequencers);
/* Stops the thread (waits for a round in progress) and closes the sequencer clients. */
void health_stop(health *h);

#endif
