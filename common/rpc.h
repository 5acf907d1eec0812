/* rpc: tegula's internal request/reply transport (docs/write-path.md, "Transport").
 *
 * NNG req0/rep0 over tcp://, one message = one protobuf-c tegula.Envelope.
 *
 * Client: one socket dialling one address in the background (NNG redials by itself), a pool
 * of (nng_ctx, nng_aio) pairs, one per outstanding call, resending disabled: a request is
 * delivered at most once, and a lost connection fails the calls waiting on it instead of
 * replaying them on the next connection.
 *
 * Server: a listening rep0 socket with a pool of contexts. A context that hands a request
 * to the handler is replaced at once by another receiving context (up to max_contexts), so a
 * handler may keep many thousands of requests unanswered and answer them later, from any
 * thread, in any order: a rep0 reply has to go out on the context that received the
 * request, so the token the handler holds *is* that context.
 *
 * Threads: completion callbacks and handlers run on NNG's worker threads. They must be
 * short and must never block on another RPC (no rpc_call_sync, no rpc_*_close inside them);
 * starting new asynchronous calls and replying are fine.
 *
 * NNG 1.5.2 (Debian 12) defects this module works around: closing a socket while another
 * thread is still inside nng_ctx_send/recv on it crashes (close waits for those calls); a
 * dialer can stop redialling after a connection dies while being set up (the client
 * replaces a dialer that stays disconnected, on a thread of its own: closing a dialer from
 * NNG's callbacks exhausts its task threads and deadlocks it); pipe events can arrive removal-first. One it
 * cannot: a connection reset while NNG is still writing to it (e.g. a request over the
 * server's size limit) can wedge NNG's reaper, after which closing that process's sockets
 * blocks (apparently nng PR #1636, in 1.6.0). Clients refuse oversized requests, the one
 * trigger this code controls. */
#ifndef TEGULA_RPC_H
#define TEGULA_RPC_H

#include <stdbool.h>
#include <stddef.h>

#include <nng/nng.h>

#include "error.h"
#include "tegula.pb-c.h"

/* How a call ended. */
typedef enum rpc_status {
    RPC_OK = 0,
    /* The request went out but no reply came before the deadline. */
    RPC_TIMEOUT,
    /* The request could not be sent before the deadline (no connection), or the connection
     * it went out on closed before the reply: try elsewhere or answer "unavailable". */
    RPC_UNREACHABLE,
    /* The reply was not an Envelope with a body (garbage, or the peer could not decode the
     * request: servers answer undecodable requests with an empty Envelope). */
    RPC_PROTOCOL,
    /* rpc_call only: the client already has max_outstanding calls; nothing was sent. */
    RPC_BUSY,
    /* The client is closing or closed. */
    RPC_CLOSED,
    /* rpc_call only: the encoded request exceeds max_message_bytes; nothing was sent (a
     * server drops the connection of a peer that sends more than its own limit). */
    RPC_TOO_LARGE,
    /* Out of memory, a request that cannot be encoded, or an unexpected NNG failure. */
    RPC_INTERNAL,
} rpc_status;

/* "ok", "timeout", "unreachable", ... for logs. */
const char *rpc_status_name(rpc_status status);
/* "OK", "OVERLOADED", "UNAVAILABLE", "BAD_REQUEST", "INTERNAL" for a tegula.Status. */
const char *rpc_proto_status_name(Tegula__Status status);
/* "submit", "batch_reply", ..., or "none" when no body is set. */
const char *rpc_body_name(const Tegula__Envelope *env);

/* Envelope <-> nng_msg. The encoder allocates *out (the caller sends or frees it). The decoder
 * returns a new Envelope (free with rpc_envelope_free) or NULL when the bytes are not one. */
int rpc_envelope_to_msg(const Tegula__Envelope *env, nng_msg **out, error *err);
Tegula__Envelope *rpc_envelope_decode(const void *data, size_t len, error *err);
Tegula__Envelope *rpc_envelope_from_msg(nng_msg *msg, error *err);
void rpc_envelope_free(Tegula__Envelope *env);

/* ---- client ---- */

typedef struct rpc_client rpc_client;

/* Zero means "the default" for every field. */
typedef struct rpc_client_options {
    int max_outstanding;      /* calls in flight before rpc_call says RPC_BUSY (16384) */
    int reconnect_min_ms;     /* first redial delay after a failure or a drop (100) */
    int reconnect_max_ms;     /* redial back-off ceiling (1000) */
    /* Largest request sent and reply accepted (64 MiB); keep it equal to the servers'. */
    size_t max_message_bytes;
    /* How long a call may wait for a connection before it fails RPC_UNREACHABLE; 0 = until
     * the call's own deadline. */
    int connect_wait_ms;
} rpc_client_options;

/* Called exactly once per started call, on an NNG thread. On RPC_OK, reply is the decoded
 * reply, owned by the callee (free it with rpc_envelope_free); otherwise reply is NULL. */
typedef void (*rpc_done_fn)(void *arg, rpc_status status, Tegula__Envelope *reply);

/* Starts dialling url (e.g. "tcp://10.0.0.5:7001") in the background; never waits for the
 * peer. NULL on a malformed url or an NNG failure. opts may be NULL. */
rpc_client *rpc_client_open(const char *url, const rpc_client_options *opts, error *err);
/* Sends req and returns RPC_OK: done will then run exactly once, within about timeout_ms
 * (the whole call: waiting for a connection, sending, the reply). Any other return value
 * (RPC_BUSY, RPC_TOO_LARGE, RPC_CLOSED, RPC_INTERNAL) means nothing was sent and done will
 * not run.
 * req is encoded before rpc_call returns; the caller keeps ownership. */
rpc_status rpc_call(rpc_client *client, const Tegula__Envelope *req, int timeout_ms,
                    rpc_done_fn done, void *arg);
/* Blocking form: waits for the outcome; on RPC_OK *reply is set (free with
 * rpc_envelope_free). Never call it from an NNG callback or a handler. */
rpc_status rpc_call_sync(rpc_client *client, const Tegula__Envelope *req, int timeout_ms,
                         Tegula__Envelope **reply);
/* True while the client has a live connection to its peer (liveness, /readyz). NNG reports
 * connections coming and going a moment after the fact, so this may briefly lag: a call
 * made while it says true can still fail RPC_UNREACHABLE on a connection being torn down. */
bool rpc_client_connected(rpc_client *client);
/* Calls started and not yet completed. */
int rpc_client_outstanding(rpc_client *client);
/* The request resend interval in force on the socket and on every context the client has
 * opened (0 when they all agree; it is NNG_DURATION_INFINITE unless something is broken).
 * -1 when they disagree or cannot be read. */
int rpc_client_resend_time(rpc_client *client, nng_duration *out);
/* Fails every call still in flight (each done runs once, with RPC_CLOSED or the outcome it
 * already had), waits for those callbacks to return, then frees the client. Never call it
 * from a done callback. NULL is ignored. */
void rpc_client_close(rpc_client *client);

/* ---- server ---- */

typedef struct rpc_server rpc_server;
/* One received request awaiting its answer; a handler must pass every token to rpc_reply
 * or rpc_reply_drop exactly once, even after the server was closed. */
typedef struct rpc_reply_token rpc_reply_token;

/* Runs on an NNG thread for every decoded request. The handler owns request (free it with
 * rpc_envelope_free when done with it) and must answer token, now or later, from any
 * thread. Requests that do not decode never reach the handler: the server answers them with
 * an empty Envelope, which the caller sees as RPC_PROTOCOL. */
typedef void (*rpc_handler_fn)(void *arg, Tegula__Envelope *request, rpc_reply_token *token);

/* Zero means "the default" for every field. */
typedef struct rpc_server_options {
    int recv_contexts;        /* contexts kept waiting for requests (256) */
    /* Bound on contexts in all states, hence on requests handed to the handler and not yet
     * answered; at the bound the server stops reading and TCP pushes back (65536). */
    int max_contexts;
    size_t max_message_bytes; /* largest request accepted; a bigger one drops the link (64 MiB) */
    int send_timeout_ms;      /* a reply not taken by the peer's connection in time is dropped (30000) */
} rpc_server_options;

/* Listens on url ("tcp://0.0.0.0:7001"; port 0 picks a free port, see rpc_server_port) and
 * starts serving. NULL if the address cannot be bound. opts may be NULL. */
rpc_server *rpc_server_open(const char *url, const rpc_server_options *opts,
                            rpc_handler_fn handler, void *arg, error *err);
/* The TCP port actually bound (useful with port 0); 0 for non-TCP urls. */
int rpc_server_port(const rpc_server *server);
/* Requests handed to the handler and not yet answered. */
int rpc_server_pending(rpc_server *server);
/* Sends reply (the caller keeps ownership of it) and gives the token back. After the server
 * was closed, or if the peer went away, the reply is discarded. Returns -1 only when reply
 * cannot be encoded (the token is still consumed; the caller's peer will time out). */
int rpc_reply(rpc_reply_token *token, const Tegula__Envelope *reply);
/* Gives the token back without answering (the caller's peer will time out). */
void rpc_reply_drop(rpc_reply_token *token);
/* Stops receiving, waits up to wait_ms for unanswered requests to be answered (and always
 * for handlers that are running to return), then closes the socket and frees the server.
 * Tokens still held afterwards stay valid for rpc_reply/rpc_reply_drop, which then only
 * release them. Never call it from a handler. NULL is ignored. */
void rpc_server_close(rpc_server *server, int wait_ms);

#endif
