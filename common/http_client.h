/* http_client: a small asynchronous HTTP/1.1 client (libcurl) usable from any thread, for
 * talking to upstream services (the CTile proxy's RFC 6962 log, later S3 and friends).
 *
 * One I/O thread drives a curl multi handle: every transfer of a client shares its
 * connection cache (keep-alive, at most max_host_connections per host; further transfers
 * queue inside curl until a connection frees up), and easy handles are pooled and reused.
 * Completed transfers are handed to a small pool of callback threads, so a callback may
 * block for a while (write to storage, answer an HTTP request) without stalling other
 * transfers. Redirects are not followed, only http and https are allowed, and proxy
 * environment variables are ignored: an upstream is reached directly, as configured. */
#ifndef TEGULA_HTTP_CLIENT_H
#define TEGULA_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "buffer.h"
#include "error.h"
#include "http_server.h" /* http_header */

typedef struct http_client http_client;

/* Zero in any numeric field selects the default given in brackets. */
typedef struct http_client_config {
    unsigned callback_threads;     /* threads that run completion callbacks [2] */
    unsigned max_host_connections; /* parallel connections to one host [16] */
    unsigned max_idle_connections; /* keep-alive connections kept open in all [64] */
    unsigned connect_timeout_ms;   /* [5000] */
    unsigned timeout_ms;           /* a whole transfer, connecting included [30000] */
    size_t max_body_bytes;         /* response bodies above this fail as TOO_LARGE [16 MiB] */
    unsigned max_pending;          /* transfers queued or running; more are refused [10000] */
    const char *user_agent;        /* [NULL: "tegula"] */
} http_client_config;

typedef struct http_client_request {
    const char *method;         /* "GET", "POST", "HEAD", ... (NULL: "GET") */
    const char *url;            /* sent as given: the path and query are not normalised */
    const http_header *headers; /* extra request headers ending with {NULL, NULL}, or NULL */
    const void *body;           /* request body; ignored for GET and HEAD */
    size_t body_len;
    unsigned timeout_ms;        /* 0: the client's timeout_ms */
    size_t max_body_bytes;      /* 0: the client's max_body_bytes */
    /* Offer gzip/deflate/br and decode the response; the decoded body is what counts
     * against max_body_bytes (so a compressed bomb fails), and the response carries no
     * Content-Encoding or Content-Length header any more. */
    bool decompress;
} http_client_request;

typedef enum http_client_result {
    HTTP_CLIENT_OK = 0,         /* a whole response arrived, whatever its status */
    HTTP_CLIENT_TIMEOUT,        /* connect or transfer timeout */
    HTTP_CLIENT_CONNECT_FAILED, /* name resolution or connection refused/unreachable */
    HTTP_CLIENT_TOO_LARGE,      /* the body exceeded its limit */
    HTTP_CLIENT_FAILED,         /* any other transport or protocol failure */
    HTTP_CLIENT_CANCELLED,      /* the client was freed before the transfer finished */
} http_client_result;

typedef struct http_client_response {
    http_client_result result;
    int status;             /* the final response's status; 0 unless result is OK */
    char reason[256];       /* why, when result is not OK */
    http_header *headers;   /* the final response's header fields, in order */
    size_t header_count;
    buffer body;
} http_client_response;

/* Runs on a callback thread once per http_client_send, whatever happened. The response is
 * valid until the callback returns; it may take the body (buffer_steal) but nothing else. */
typedef void (*http_client_callback)(http_client_response *response, void *ctx);

http_client *http_client_new(const http_client_config *config, error *err);
/* Cancels what is still queued or running (each callback runs with HTTP_CLIENT_CANCELLED),
 * waits for every callback to return, then frees the client. Never call it from a callback. */
void http_client_free(http_client *client);

/* Starts a transfer; everything in the request is copied. Returns 0 and calls `callback`
 * exactly once later, or -1 (reason in err; callback never called) for a malformed request,
 * a full queue or a client being freed. */
int http_client_send(http_client *client, const http_client_request *request,
                     http_client_callback callback, void *ctx, error *err);

/* The same, blocking until it completes: *response is filled in (also on transport failure;
 * check response->result) and must be freed with http_client_response_free. Returns -1 only
 * when the transfer could not be started. Never call it from a callback. */
int http_client_fetch(http_client *client, const http_client_request *request,
                      http_client_response *response, error *err);

/* First response header with that name (case-insensitive), or NULL. */
const char *http_client_response_header(const http_client_response *response, const char *name);
/* Frees what http_client_fetch put into a response. */
void http_client_response_free(http_client_response *response);

#endif
