/* ctile: a CTile-style caching proxy in front of a classic RFC 6962 log.
 *
 * Monitors hammer `get-entries` on RFC 6962 logs with arbitrary, overlapping ranges. The proxy
 * turns every `get-entries?start=S&end=E` into a fetch of the tile that holds S (tile
 * T = S / tile_size, upstream range T*size .. T*size+size-1), made once per tile however many
 * clients ask at the same moment (they all wait for the one fetch). A tile with tile_size
 * entries is FULL: it never changes again, so it is written to the cache storage and kept in
 * an in-memory LRU and served forever with `Cache-Control: public, max-age=86400`. A shorter
 * answer (the end of the log, or an upstream that caps get-entries lower than tile_size) is a
 * partial tile, kept in memory at most partial_max_age_s and served with a max-age no longer
 * than what is left of that. The client gets the entries from S to min(E, last entry of the
 * tile): never more than one tile, which RFC 6962 clients handle (short responses are allowed).
 * `get-sth` is cached for sth_max_age_s. Everything else under the prefix (get-roots,
 * get-proof-by-hash, get-sth-consistency, get-entry-and-proof, add-chain, ...) is passed
 * through with its method, raw query string and body; the upstream's status, Content-Type,
 * Cache-Control, Retry-After and body come back. Upstream failures are passed back (their
 * status and body; 502 for transport failures, 504 for timeouts) and never cached.
 *
 * tile_size must not exceed the upstream's own get-entries limit, or every tile would look
 * partial (CTile has the same rule).
 *
 * Wiring: http_router_add(router, NULL, "<prefix>*", ctile_handle, proxy). All functions are
 * safe from any thread; answers to waiting requests are sent from the HTTP client's threads. */
#ifndef TEGULA_CTILE_H
#define TEGULA_CTILE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "http_client.h"
#include "http_server.h"

/* Zero in any numeric field selects the default given in brackets. */
typedef struct ctile_config {
    /* Local path prefix the proxy answers under, starting and ending with '/', e.g.
     * "/oak2025h1/": "/oak2025h1/ct/v1/get-sth" is proxied to "<upstream_url>ct/v1/get-sth".
     * Required. */
    const char *prefix;
    /* The upstream log's base URL (http or https), under which "ct/v1/..." lives, e.g.
     * "https://oak.ct.letsencrypt.org/2025h1/" (a missing trailing '/' is added). Required. */
    const char *upstream_url;
    /* Where full tiles are kept (storage_open URL; file:///dir today). Keys are
     * "ctile/<tile_size>/<tile index>", each the JSON get-entries body of the whole tile. */
    const char *cache_url;
    unsigned tile_size;           /* entries per tile, 1..4096 [256] */
    unsigned partial_max_age_s;   /* a partial tile is refetched after this, at most 60 [60] */
    unsigned sth_max_age_s;       /* get-sth is refetched after this, at most 60 [60] */
    unsigned upstream_timeout_ms; /* a whole upstream request [10000] */
    size_t max_upstream_bytes;    /* largest upstream body accepted [32 MiB] */
    size_t memory_cache_bytes;    /* in-memory LRU of rendered tiles [256 MiB] */
    /* An HTTP client to share between proxies (it must outlive the proxy). NULL: the proxy
     * makes its own with the defaults of http_client.h and upstream_connections. */
    http_client *client;
    unsigned upstream_connections; /* parallel connections to the upstream, own client [16] */
} ctile_config;

typedef struct ctile_proxy ctile_proxy;

/* Validates the configuration and opens the cache storage. NULL with a reason on failure. */
ctile_proxy *ctile_proxy_new(const ctile_config *config, error *err);
/* Stop the HTTP server first. Upstream requests still running are cancelled when the proxy
 * owns its client (their waiting requests get 503), or waited for when the client is shared;
 * either way every request the proxy accepted has been answered when this returns. */
void ctile_proxy_free(ctile_proxy *proxy);

/* An http_handler (ctx: the proxy) for every request under the prefix; answers 404 to paths
 * outside it, 400 to paths or queries it will not forward (dot segments, '%' in the path,
 * empty segments, '#' or control bytes in the query). */
void ctile_handle(http_request *req, void *proxy);

/* Counters since the proxy was created (approximate snapshot, no lock). */
typedef struct ctile_stats {
    uint64_t entries_requests;    /* get-entries requests with valid parameters */
    uint64_t memory_hits;         /* answered from a tile already in memory */
    uint64_t storage_hits;        /* tile loaded from the cache storage */
    uint64_t upstream_tile_fetches;
    uint64_t joined_fetches;      /* requests that waited for a fetch another one started */
    uint64_t sth_requests;
    uint64_t sth_fetches;
    uint64_t passthrough_requests;
    uint64_t upstream_errors;     /* non-200 answers and transport failures from upstream */
    uint64_t storage_errors;      /* cache storage reads/writes that failed (not a miss) */
} ctile_stats;

void ctile_stats_read(ctile_proxy *proxy, ctile_stats *out);

#endif
