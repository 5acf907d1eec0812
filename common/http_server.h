/* http_server: the HTTP/1.1 server of every tegula process (the frontend's submission API and
 * read path; /healthz and /metrics on batchers and sequencers).
 *
 * libuv + http-parser. N worker threads, each with its own uv_loop and its own listening socket
 * on the same port (SO_REUSEPORT), so the kernel spreads connections and no lock is shared on
 * the hot path. Keep-alive, pipelining (one request at a time per connection, in order),
 * chunked request bodies, `Expect: 100-continue`, HEAD. Limits answer 413 (body), 431 (headers),
 * 414 (URL), 400 (malformed), 408 (slow request) and then close the connection.
 *
 * A handler runs on a worker thread and may answer at once or later from ANY thread: the
 * response is handed to the connection's loop. If the client went away meanwhile, or the server
 * was stopped, the late response is dropped; the request stays valid until it is answered.
 * Every request passed to a handler must be answered exactly once (http_respond*), even after
 * http_server_stop(); the request must not be touched afterwards. */
#ifndef TEGULA_HTTP_SERVER_H
#define TEGULA_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct http_server http_server;
typedef struct http_request http_request;

/* A header line. Response header arrays end with an entry whose name is NULL. */
typedef struct http_header {
    const char *name;
    const char *value;
} http_header;

typedef void (*http_handler)(http_request *req, void *ctx);

/* Zero in any numeric field selects the default given in brackets. */
typedef struct http_server_config {
    /* "127.0.0.1:8080", "0.0.0.0:80", "[::]:443", "localhost:0"; port 0 picks a free port
     * (http_server_port tells which). */
    const char *listen;
    unsigned threads;             /* worker threads, each with its own loop and socket [1] */
    size_t max_body_bytes;        /* larger bodies get 413 [1 MiB] */
    size_t max_header_bytes;      /* request line + header fields; larger get 431 [16 KiB] */
    size_t max_url_bytes;         /* request target; longer gets 414 [8 KiB] */
    unsigned max_headers;         /* header fields per request; more get 431 [100] */
    unsigned idle_timeout_ms;     /* keep-alive connection with no request in progress [60 s] */
    unsigned read_timeout_ms;     /* a whole request must arrive within this after its first
                                   * byte (408 otherwise); also bounds writing a response [30 s] */
    unsigned max_connections;     /* per worker; extra connections get 503 and are closed [10000] */
    unsigned stop_timeout_ms;     /* http_server_stop waits this long for in-flight requests [5 s] */
    int backlog;                  /* listen(2) backlog [1024] */
    http_handler handler;         /* required */
    void *handler_ctx;
} http_server_config;

/* Binds every worker's socket, then starts the workers. NULL (reason in err) if the address
 * does not parse or cannot be bound. */
http_server *http_server_start(const http_server_config *config, error *err);
/* The bound TCP port (useful with port 0). */
uint16_t http_server_port(const http_server *server);
/* Graceful stop: stops accepting, closes idle connections, lets requests in progress finish
 * (their responses carry Connection: close) for up to stop_timeout_ms, then closes the rest,
 * joins the workers and frees the server. Requests still unanswered stay valid and must still
 * be answered; their responses are dropped. Never call it from a handler. */
void http_server_stop(http_server *server);

typedef struct http_server_stats {
    uint64_t connections_accepted;
    uint64_t connections_rejected; /* over max_connections */
    uint64_t connections_open;
    uint64_t requests;             /* complete requests handed to the handler */
    uint64_t responses_dropped;    /* answered after the client had gone */
    uint64_t errors_sent;          /* 4xx/5xx produced by the server itself (413, 400, ...) */
} http_server_stats;

/* A snapshot summed over workers (counters are updated without locks, so approximately
 * consistent with each other). */
void http_server_stats_read(const http_server *server, http_server_stats *out);

/* Request accessors. Valid from the handler call until the request is answered; safe from any
 * thread. Strings are NUL-terminated; path and query are raw (not percent-decoded). */
const char *http_request_method(const http_request *req);   /* "GET", "POST", ... */
const char *http_request_target(const http_request *req);   /* as sent: "/a/b?x=1" */
const char *http_request_path(const http_request *req);     /* "/a/b" */
const char *http_request_query(const http_request *req);    /* "x=1", "" when absent */
/* First header with that name (case-insensitive), or NULL. */
const char *http_request_header(const http_request *req, const char *name);
/* All header fields in arrival order; *count receives how many. */
const http_header *http_request_headers(const http_request *req, size_t *count);
/* The body (NUL-terminated for convenience; the terminator is not counted), length in *len. */
const uint8_t *http_request_body(const http_request *req, size_t *len);
/* The client's address as "192.0.2.1:5555" or "[2001:db8::1]:5555"; 0, or -1 if unknown. */
int http_request_peer(const http_request *req, char *out, size_t out_len);

/* Answers a request, from any thread. headers ends with a {NULL, NULL} entry (or is NULL);
 * Content-Length, Date and Connection are set by the server (such entries, and any with CR or
 * LF, are ignored). The body is copied. HEAD requests get the headers only. */
void http_respond(http_request *req, int status, const http_header *headers, const void *body,
                  size_t body_len);
/* The same, but takes ownership of a malloc'd body (freed by the server, also when dropped). */
void http_respond_owned(http_request *req, int status, const http_header *headers, void *body,
                        size_t body_len);
/* Convenience: a text/plain; charset=utf-8 response. */
void http_respond_text(http_request *req, int status, const char *text);

/* A small router to use as the server's handler: http_server_config.handler =
 * http_router_handle, handler_ctx = the router. Routes are tried in the order added. Built
 * before the server starts and read-only afterwards (so safe to share between workers).
 * No path match → 404; a path match with another method only → 405 with Allow. */
typedef struct http_router http_router;

http_router *http_router_new(void);
/* method NULL matches any method. pattern is an exact path, or a prefix when it ends in '*'
 * (e.g. "/2024h1/ct/v1/" followed by a star). Returns 0, or -1 if out of memory. */
int http_router_add(http_router *router, const char *method, const char *pattern,
                    http_handler handler, void *ctx);
void http_router_handle(http_request *req, void *router);
void http_router_free(http_router *router);

#endif
