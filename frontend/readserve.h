/* readserve: the read side of one log on the frontend — the static-ct monitoring endpoints
 * (checkpoint, tiles, issuers) straight from the log's storage, and the RFC 6962 read layer
 * computed from the same tiles (get-sth, get-sth-consistency, get-proof-by-hash, get-entries,
 * get-entry-and-proof), with the leaf-hash index follower that get-proof-by-hash needs. */
#ifndef TEGULA_FRONTEND_READSERVE_H
#define TEGULA_FRONTEND_READSERVE_H

#include <openssl/evp.h>

#include "config.h"
#include "error.h"
#include "http_server.h"

typedef struct readserve readserve;

/* Opens the log's storage and read layers. The leaf index lives in
 * <frontend.index_dir>/<log name>; if it cannot be opened (another process holds it) the log
 * is still served and get-proof-by-hash answers 503. */
readserve *readserve_open(const config *cfg, const config_log *log, EVP_PKEY *log_key,
                          error *err);
void readserve_close(readserve *rs);

/* Adds the read routes under `prefix` (the log's URL path, ending in '/'): the RFC 6962 read
 * endpoints always, the monitoring objects when the monitoring prefix has the same path (when
 * it points elsewhere, a bucket or CDN serves them). Call before the router's catch-all. */
int readserve_add_routes(readserve *rs, http_router *router, const char *prefix, error *err);

#endif
