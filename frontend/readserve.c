#include "readserve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "leafindex.h"
#include "log.h"
#include "readpath.h"
#include "rfc6962.h"
#include "storage.h"

typedef enum read_kind { READ_OBJECTS, READ_RFC6962 } read_kind;

typedef struct read_route {
    readserve *rs;
    read_kind kind;
    size_t prefix_len;
} read_route;

struct readserve {
    const config_log *log;
    storage *storage;
    read_cache *cache; /* shared by both layers of this log (keys are not per log) */
    readpath *objects;
    rfc6962 *layer;
    leafindex *index;
    leafindex_follower *follower;
    read_route routes[2];
};

/* The path part of an http(s) URL prefix ("https://host:1/a/" → "/a/"). */
static const char *url_path(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    return p ? p : "/";
}

static void handle_read(http_request *req, void *arg)
{
    const read_route *route = arg;
    const char *path = http_request_path(req) + route->prefix_len;
    read_request r = {
        .method = http_request_method(req),
        .path = path,
        .path_len = strlen(path),
        .query = http_request_query(req),
        .accept_encoding = http_request_header(req, "Accept-Encoding"),
        .if_none_match = http_request_header(req, "If-None-Match"),
    };
    read_response out = {0};
    if (route->kind == READ_RFC6962)
        rfc6962_handle(route->rs->layer, &r, &out);
    else
        readpath_handle(route->rs->objects, &r, &out);
    http_header headers[READ_MAX_HEADERS + 1];
    size_t n = read_response_headers(&out, headers);
    headers[n] = (http_header){NULL, NULL};
    size_t len;
    uint8_t *body = read_response_take_body(&out, &len);
    http_respond_owned(req, out.status, headers, body, len);
    read_response_free(&out);
}

/* The index is optional: without it get-proof-by-hash answers 503, everything else works. */
static void open_index(readserve *rs, const config *cfg, const config_log *log)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", cfg->frontend.index_dir, log->name);
    error err = {{0}};
    /* RocksDB creates the database directory but not its parents. */
    if (directories_create(path, strlen(path), &err) != 0)
        log_warn("cannot create the leaf index directory", "log=%s reason=\"%s\"", log->name,
                 err.msg);
    rs->index = leafindex_open(path, log->origin, &err);
    if (!rs->index)
        log_warn("leaf index unavailable: get-proof-by-hash answers 503", "log=%s reason=\"%s\"",
                 log->name, err.msg);
}

static void start_follower(readserve *rs)
{
    if (!rs->index)
        return;
    error err = {{0}};
    rs->follower = leafindex_follower_start(rs->index, rs->storage, rfc6962_tree_size, rs->layer,
                                            1000, &err);
    if (!rs->follower)
        log_warn("leaf index follower did not start", "log=%s reason=\"%s\"", rs->log->name,
                 err.msg);
}

readserve *readserve_open(const config *cfg, const config_log *log, EVP_PKEY *log_key,
                          error *err)
{
    readserve *rs = calloc(1, sizeof *rs);
    if (!rs) {
        error_set(err, "out of memory");
        return NULL;
    }
    rs->log = log;
    rs->storage = storage_open(log->storage, err);
    rs->cache = rs->storage ? read_cache_new(READ_CACHE_DEFAULT_BYTES) : NULL;
    if (!rs->cache)
        goto fail;
    readpath_config rc = {.storage = rs->storage, .cache = rs->cache};
    if (!(rs->objects = readpath_new(&rc, err)))
        goto fail;
    open_index(rs, cfg, log);
    rfc6962_config lc = {.storage = rs->storage, .origin = log->origin, .log_key = log_key,
                         .index = rs->index, .cache = rs->cache};
    if (!(rs->layer = rfc6962_new(&lc, err)))
        goto fail;
    start_follower(rs);
    return rs;
fail:
    error_wrap(err, "log %s read path", log->name);
    readserve_close(rs);
    return NULL;
}

void readserve_close(readserve *rs)
{
    if (!rs)
        return;
    if (rs->follower)
        leafindex_follower_stop(rs->follower);
    rfc6962_free(rs->layer);
    leafindex_close(rs->index);
    readpath_free(rs->objects);
    read_cache_free(rs->cache);
    storage_close(rs->storage);
    free(rs);
}

int readserve_add_routes(readserve *rs, http_router *router, const char *prefix, error *err)
{
    static const char *const rfc6962_paths[] = {"ct/v1/get-sth", "ct/v1/get-sth-consistency",
                                                "ct/v1/get-proof-by-hash", "ct/v1/get-entries",
                                                "ct/v1/get-entry-and-proof"};
    static const char *const object_patterns[] = {"checkpoint", "tile/*", "issuer/*"};
    size_t prefix_len = strlen(prefix);
    rs->routes[READ_OBJECTS] = (read_route){rs, READ_OBJECTS, prefix_len};
    rs->routes[READ_RFC6962] = (read_route){rs, READ_RFC6962, prefix_len};
    char path[1024];
    /* Any method reaches the handlers: they answer HEAD, OPTIONS (CORS) and 405 themselves. */
    for (size_t i = 0; i < sizeof rfc6962_paths / sizeof rfc6962_paths[0]; i++) {
        snprintf(path, sizeof path, "%s%s", prefix, rfc6962_paths[i]);
        if (http_router_add(router, NULL, path, handle_read, &rs->routes[READ_RFC6962]) != 0)
            return error_set(err, "adding route %s", path);
    }
    if (strcmp(url_path(rs->log->monitoring_prefix), prefix) != 0) {
        log_info("monitoring objects are served at the monitoring prefix, not here",
                 "log=%s monitoring_prefix=%s", rs->log->name, rs->log->monitoring_prefix);
        return 0;
    }
    for (size_t i = 0; i < sizeof object_patterns / sizeof object_patterns[0]; i++) {
        snprintf(path, sizeof path, "%s%s", prefix, object_patterns[i]);
        if (http_router_add(router, NULL, path, handle_read, &rs->routes[READ_OBJECTS]) != 0)
            return error_set(err, "adding route %s", path);
    }
    return 0;
}
