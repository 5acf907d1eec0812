/* probe: liveness pings for /readyz and the batcher ring (a Ping answered by a Pong). */
#ifndef TEGULA_FRONTEND_PROBE_H
#define TEGULA_FRONTEND_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc.h"

/* Pings every client at once and waits for all answers (each bounded by timeout_ms, so the
 * whole call is too). ok[i] says whether clients[i] answered with a Pong. Blocking: never
 * call it from an NNG callback. */
void probe_ping_all(rpc_client *const *clients, size_t n, int timeout_ms, bool *ok);

#endif
