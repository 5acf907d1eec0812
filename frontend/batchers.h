/* batchers: the frontend's view of the batcher fleet. One rpc_client per batcher address, a
 * rendezvous ring over them (the same certificate always goes to the same batcher), and the
 * failover rule of docs/write-path.md.
 *
 * Addresses come from the config, either a static list or a DNS name (host:port) whose A
 * records are re-resolved in the background every few seconds; each record becomes
 * tcp://ip:port. A membership change builds a new ring and swaps it in; requests in flight
 * keep the ring they started with (reference counted), clients of departed batchers are closed
 * once no request uses them.
 *
 * Failover: a submission goes to the first live member in ring order for its dedup key. It
 * moves on to the next member only when the request was not taken: the call could not be
 * started (client busy) or the rpc layer reports the batcher unreachable. A timeout is final
 * (the batcher may be sequencing the entry): no resend, the caller answers 503. */
#ifndef TEGULA_FRONTEND_BATCHERS_H
#define TEGULA_FRONTEND_BATCHERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "tegula.pb-c.h"

typedef struct batcher_pool batcher_pool;

typedef struct batcher_pool_options {
    unsigned dns_refresh_ms;  /* DNS re-resolution period [5000] */
    unsigned connect_wait_ms; /* how long one attempt waits for a connection [1000] */
} batcher_pool_options;

/* Opens clients for cfg->addresses, or resolves cfg->dns once (an unresolvable name starts
 * with no batchers and a warning; resolution is retried) and starts the refresh thread.
 * opts may be NULL. */
batcher_pool *batcher_pool_new(const config_batchers *cfg, const batcher_pool_options *opts,
                               error *err);
/* Fails every submission still in flight (their callbacks run with BATCHER_CLOSED), stops the
 * refresh thread and frees everything. Never call it from a submission callback. */
void batcher_pool_free(batcher_pool *pool);

typedef enum batcher_outcome {
    BATCHER_REPLY,       /* a batcher answered: see the SubmitReply */
    BATCHER_TIMEOUT,     /* the request went out, no reply in time (not resent) */
    BATCHER_UNAVAILABLE, /* no batcher could take it (none known, all down or unreachable) */
    BATCHER_FAILED,      /* a malformed reply or an internal error */
    BATCHER_CLOSED,      /* the pool is shutting down */
} batcher_outcome;

const char *batcher_outcome_name(batcher_outcome outcome);

/* Runs exactly once per submission; reply is set only for BATCHER_REPLY and only valid during
 * the call. `batcher` names the member that answered or timed out ("" if none). May run on
 * the submitting thread (when nothing could be sent) or on an NNG thread. */
typedef void (*batcher_done_fn)(void *arg, batcher_outcome outcome,
                                const Tegula__SubmitReply *reply, const char *batcher);

/* Sends an Envelope holding a SubmitRequest, routed by dedup_key (32 bytes). The envelope
 * and everything it points to must stay valid until done runs. timeout_ms bounds the whole
 * submission, failovers included. */
void batcher_pool_submit(batcher_pool *pool, const Tegula__Envelope *request,
                         const uint8_t dedup_key[32], int timeout_ms, batcher_done_fn done,
                         void *arg);

/* Pings every member (bounded by timeout_ms), marks the ring accordingly and returns how many
 * answered. Blocking: call it from a background thread. */
size_t batcher_pool_probe(batcher_pool *pool, int timeout_ms);

/* Members in the current ring, and how many of them are marked live. */
void batcher_pool_counts(batcher_pool *pool, size_t *members, size_t *live);

#endif
