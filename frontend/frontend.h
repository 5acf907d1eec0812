/* frontend: the tegula-frontend HTTP service (DESIGN.md §1-2, docs/write-path.md "Frontend").
 *
 * Routes (each log's under its submission prefix path, e.g. /2026h1/):
 *   POST <prefix>ct/v1/add-chain, POST <prefix>ct/v1/add-pre-chain   RFC 6962 submissions
 *   GET  <prefix>ct/v1/get-roots                                      {"certificates":[...]}
 *   GET  <prefix>log.v3.json                                          logv3.h
 *   GET  /healthz (always 200), /readyz (batchers and sequencers answer), /metrics
 * Wrong method: 405 with Allow; unknown path: 404. Every log has its own router (the read
 * path adds its routes there). A submission is validated on the HTTP worker, sent to a
 * batcher, and answered from the RPC completion thread with a signed SCT (200), 400 with a
 * reason, 410 (read-only log), 413 (body over max_body_bytes, from the server), 500, or 503
 * with Retry-After: 1 (overloaded, unavailable, timed out). */
#ifndef TEGULA_FRONTEND_FRONTEND_H
#define TEGULA_FRONTEND_FRONTEND_H

#include <stdint.h>

#include "config.h"
#include "error.h"

typedef struct frontend frontend;

typedef struct frontend_options {
    const char *listen;         /* NULL: cfg->frontend.listen */
    unsigned health_interval_ms; /* readiness probing period [2000] */
    unsigned dns_refresh_ms;    /* batcher DNS re-resolution period [5000] */
} frontend_options;

/* Loads every log's roots and key, opens the batcher clients, starts readiness probing and
 * the HTTP server. The config must outlive the frontend. NULL with err on failure. */
frontend *frontend_start(const config *cfg, const frontend_options *opts, error *err);
/* The bound TCP port. */
uint16_t frontend_port(const frontend *fe);
/* Graceful stop: no new connections; submissions in flight finish (bounded by the submit
 * timeout) or fail; then everything is freed. */
void frontend_stop(frontend *fe);

#endif
