#include "rpc.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "log.h"

#define DEFAULT_MAX_MESSAGE_BYTES ((size_t)64 << 20)
/* How long a graceful server close lets the last replies drain out of NNG's queues. */
#define CLOSE_LINGER_MS 100

/* ---- names and codec ---- */

const char *rpc_status_name(rpc_status status)
{
    switch (status) {
    case RPC_OK: return "ok";
    case RPC_TIMEOUT: return "timeout";
    case RPC_UNREACHABLE: return "unreachable";
    case RPC_PROTOCOL: return "protocol";
    case RPC_BUSY: return "busy";
    case RPC_CLOSED: return "closed";
    case RPC_TOO_LARGE: return "too_large";
    case RPC_INTERNAL: return "internal";
    }
    return "unknown";
}

const char *rpc_proto_status_name(Tegula__Status status)
{
    switch (status) {
    case TEGULA__STATUS__STATUS_OK: return "OK";
    case TEGULA__STATUS__STATUS_OVERLOADED: return "OVERLOADED";
    case TEGULA__STATUS__STATUS_UNAVAILABLE: return "UNAVAILABLE";
    case TEGULA__STATUS__STATUS_BAD_REQUEST: return "BAD_REQUEST";
    case TEGULA__STATUS__STATUS_INTERNAL: return "INTERNAL";
    default: return "UNKNOWN";
    }
}

const char *rpc_body_name(const Tegula__Envelope *env)
{
    if (env == NULL)
        return "none";
    switch (env->body_case) {
    case TEGULA__ENVELOPE__BODY_SUBMIT: return "submit";
    case TEGULA__ENVELOPE__BODY_SUBMIT_REPLY: return "submit_reply";
    case TEGULA__ENVELOPE__BODY_BATCH: return "batch";
    case TEGULA__ENVELOPE__BODY_BATCH_REPLY: return "batch_reply";
    case TEGULA__ENVELOPE__BODY_PING: return "ping";
    case TEGULA__ENVELOPE__BODY_PONG: return "pong";
    default: return "none";
    }
}

int rpc_envelope_to_msg(const Tegula__Envelope *env, nng_msg **out, error *err)
{
    *out = NULL;
    size_t len = tegula__envelope__get_packed_size(env);
    nng_msg *msg;
    int rv = nng_msg_alloc(&msg, len);
    if (rv != 0)
        return error_set(err, "allocating a %zu-byte message: %s", len, nng_strerror(rv));
    if (len > 0 && tegula__envelope__pack(env, nng_msg_body(msg)) != len) {
        nng_msg_free(msg);
        return error_set(err, "encoding the envelope gave an unexpected length");
    }
    *out = msg;
    return 0;
}

Tegula__Envelope *rpc_envelope_decode(const void *data, size_t len, error *err)
{
    /* protobuf-c reads nothing through the pointer when len is 0, but wants a non-NULL one. */
    static const uint8_t empty[1];
    Tegula__Envelope *env =
        tegula__envelope__unpack(NULL, len, len > 0 ? (const uint8_t *)data : empty);
    if (env == NULL)
        error_set(err, "%zu bytes are not a tegula.Envelope", len);
    return env;
}

Tegula__Envelope *rpc_envelope_from_msg(nng_msg *msg, error *err)
{
    return rpc_envelope_decode(nng_msg_body(msg), nng_msg_len(msg), err);
}

void rpc_envelope_free(Tegula__Envelope *env)
{
    if (env != NULL)
        tegula__envelope__free_unpacked(env, NULL);
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

/* Waits on cv until deadline (monotonic ms); returns false once it has passed. */
static bool cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms)
{
    if (monotonic_ms() >= deadline_ms)
        return false;
    struct timespec ts = {.tv_sec = deadline_ms / 1000, .tv_nsec = (deadline_ms % 1000) * 1000000};
    pthread_cond_timedwait(cv, mu, &ts);
    return true;
}

/* ---- client ---- */

enum call_phase { CALL_IDLE, CALL_SENDING, CALL_RECEIVING };

/* One (context, aio) pair; reused from call to call. */
typedef struct call_slot {
    rpc_client *client;
    nng_ctx ctx;
    nng_aio *aio;
    enum call_phase phase;
    /* Under client->mu: 1 while the call is outstanding or its done runs, plus 1 while a
     * thread is inside an nng_ctx_* call on this slot. The slot is free (reusable) at 0. */
    int refs;
    int64_t deadline_ms;
    rpc_done_fn done;
    void *arg;
    struct call_slot *next_free;
    struct call_slot *next_all;
} call_slot;

/* A req socket with one dialer has one pipe alive at a time, two while an old one is torn
 * down; more are never expected and would simply not be tracked. */
#define TRACKED_PIPES 8

struct rpc_client {
    nng_socket sock;
    nng_dialer dialer;
    rpc_client_options opts;

    pthread_mutex_t mu; /* guards everything below except the pipe set */
    pthread_cond_t idle;
    bool closing;
    int outstanding; /* started calls whose done has not been called yet */
    int active;      /* slots in use: outstanding calls plus done callbacks still running */
    /* Threads inside nng_ctx_send/recv. NNG 1.5.2 can crash if a socket is closed while a
     * thread is still inside one of those (even after the operation itself completed on
     * another thread), so close first stops new ones and waits for these to return. */
    int in_nng;
    call_slot *free_slots;
    call_slot *all_slots;

    /* Pipe set, under its own lock: NNG runs pipe callbacks with socket locks held, so they
     * must not wait on anything that is held while calling into NNG. */
    pthread_mutex_t pipe_mu;
    uint32_t pipe_ids[TRACKED_PIPES]; /* live */
    int pipe_count;
    uint32_t gone_ids[TRACKED_PIPES]; /* removed before they were reported added */
    int gone_count;
    int64_t down_since_ms; /* when the last pipe went (or the client opened); 0 while up */

    /* Dialer watchdog. NNG 1.5.2's dialer can stop redialling for good when a connection is
     * dropped while it is still being set up (a peer that accepts and hangs up at once, or
     * kicks the very first request); a dialer that has had no connection for stuck_ms is
     * replaced. It runs on a thread of its own, not as an NNG aio callback: closing a dialer
     * waits for NNG's task threads, and a callback doing so from each of them (one per client
     * while the peers are down) deadlocked NNG for good. The dialer handle is only touched
     * by open and by this thread; `watch_wake` (with mu) ends its sleep on close. */
    pthread_t watch_thread;
    pthread_cond_t watch_wake;
    int stuck_ms;
    char url[256];
};

static bool pipe_id_take(uint32_t *ids, int *n, uint32_t id)
{
    for (int i = 0; i < *n; i++) {
        if (ids[i] == id) {
            ids[i] = ids[--*n];
            return true;
        }
    }
    return false;
}

static void client_pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    rpc_client *c = arg;
    uint32_t id = (uint32_t)nng_pipe_id(pipe);
    bool up = false, down = false;
    pthread_mutex_lock(&c->pipe_mu);
    if (ev == NNG_PIPE_EV_ADD_POST) {
        /* NNG may report a pipe's removal before its addition when it closes at once. */
        if (!pipe_id_take(c->gone_ids, &c->gone_count, id) && c->pipe_count < TRACKED_PIPES) {
            c->pipe_ids[c->pipe_count++] = id;
            up = true;
        }
    } else if (ev == NNG_PIPE_EV_REM_POST) {
        if (pipe_id_take(c->pipe_ids, &c->pipe_count, id)) {
            down = true;
        } else {
            if (c->gone_count == TRACKED_PIPES) /* forget the oldest */
                pipe_id_take(c->gone_ids, &c->gone_count, c->gone_ids[0]);
            c->gone_ids[c->gone_count++] = id;
        }
    }
    if (up)
        c->down_since_ms = 0;
    else if (down && c->pipe_count == 0)
        c->down_since_ms = monotonic_ms();
    pthread_mutex_unlock(&c->pipe_mu);
    if (up)
        log_info("rpc connection up", "peer=%s pipe=%u", c->url, id);
    if (down)
        log_info("rpc connection down", "peer=%s pipe=%u", c->url, id);
}

/* Replaces the dialer when it has had no connection for stuck_ms (also what happens while
 * the peer is simply down: then it only restarts the retry). */
static void client_check_dialer(rpc_client *c)
{
    pthread_mutex_lock(&c->pipe_mu);
    int64_t now = monotonic_ms();
    bool stuck = c->pipe_count == 0 && c->down_since_ms != 0 && now - c->down_since_ms >= c->stuck_ms;
    if (stuck)
        c->down_since_ms = now; /* give the new dialer its own stuck_ms */
    pthread_mutex_unlock(&c->pipe_mu);
    if (!stuck)
        return;
    log_debug("rpc dialer restarted after a long disconnection", "peer=%s", c->url);
    nng_dialer old = c->dialer;
    int rv = nng_dial(c->sock, c->url, &c->dialer, NNG_FLAG_NONBLOCK);
    if (rv != 0) {
        c->dialer = old;
        log_warn("rpc dialer restart failed", "peer=%s err=\"%s\"", c->url, nng_strerror(rv));
    } else {
        nng_dialer_close(old);
    }
}

static void *client_watch(void *arg)
{
    rpc_client *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->closing) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t ns = until.tv_nsec + (int64_t)(c->stuck_ms / 2) * 1000000;
        until.tv_sec += ns / 1000000000;
        until.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&c->watch_wake, &c->mu, &until);
        if (c->closing)
            break;
        pthread_mutex_unlock(&c->mu);
        client_check_dialer(c);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Drops a slot reference, and the in_nng count when leaving an NNG call. */
static void slot_unref(call_slot *s, bool leaving_nng)
{
    rpc_client *c = s->client;
    pthread_mutex_lock(&c->mu);
    if (leaving_nng && --c->in_nng == 0 && c->closing)
        pthread_cond_broadcast(&c->idle);
    if (--s->refs == 0) {
        s->phase = CALL_IDLE;
        s->done = NULL;
        s->arg = NULL;
        s->next_free = c->free_slots;
        c->free_slots = s;
        c->active--;
        if (c->active == 0)
            pthread_cond_broadcast(&c->idle);
    }
    pthread_mutex_unlock(&c->mu);
}

static void call_finish(call_slot *s, rpc_status status, Tegula__Envelope *reply)
{
    rpc_client *c = s->client;
    rpc_done_fn done = s->done;
    void *arg = s->arg;
    /* The call stops counting against max_outstanding before done runs, so a caller woken by
     * done can start the next call at once; the slot itself goes back only after done
     * returned, so close can wait for every callback. */
    pthread_mutex_lock(&c->mu);
    c->outstanding--;
    pthread_mutex_unlock(&c->mu);
    done(arg, status, reply);
    slot_unref(s, false);
}

/* Whatever NNG reports while the socket is being torn down, the caller's answer is "closed". */
static bool client_closing(rpc_client *c)
{
    pthread_mutex_lock(&c->mu);
    bool closing = c->closing;
    pthread_mutex_unlock(&c->mu);
    return closing;
}

static void call_aio_done(void *arg)
{
    call_slot *s = arg;
    int rv = nng_aio_result(s->aio);

    if (s->phase == CALL_SENDING) {
        if (rv == 0) {
            /* Handed to a connection: now wait for the reply with what is left of the
             * deadline (req0 keeps a reply that beats this receive). */
            s->phase = CALL_RECEIVING;
            int64_t left = s->deadline_ms - monotonic_ms();
            nng_aio_set_timeout(s->aio, (nng_duration)(left < 1 ? 1 : left));
            rpc_client *c = s->client;
            pthread_mutex_lock(&c->mu);
            bool closing = c->closing;
            if (!closing) {
                s->refs++;
                c->in_nng++;
            }
            pthread_mutex_unlock(&c->mu);
            if (closing) {
                call_finish(s, RPC_CLOSED, NULL);
                return;
            }
            nng_ctx_recv(s->ctx, s->aio);
            slot_unref(s, true);
            return;
        }
        /* Not sent: the message comes back to us. */
        nng_msg *msg = nng_aio_get_msg(s->aio);
        nng_aio_set_msg(s->aio, NULL);
        if (msg != NULL)
            nng_msg_free(msg);
        call_finish(s, rv == NNG_ECLOSED || client_closing(s->client) ? RPC_CLOSED
                                                                       : RPC_UNREACHABLE,
                    NULL);
        return;
    }

    if (rv != 0) {
        rpc_status status;
        if (rv == NNG_ECLOSED || client_closing(s->client))
            status = RPC_CLOSED;
        else if (rv == NNG_ETIMEDOUT)
            status = RPC_TIMEOUT;
        else /* NNG_ECONNRESET: the pipe carrying the request closed (resend is off). */
            status = RPC_UNREACHABLE;
        call_finish(s, status, NULL);
        return;
    }
    nng_msg *msg = nng_aio_get_msg(s->aio);
    nng_aio_set_msg(s->aio, NULL);
    Tegula__Envelope *reply = rpc_envelope_from_msg(msg, NULL);
    size_t len = nng_msg_len(msg);
    nng_msg_free(msg);
    if (reply == NULL || reply->body_case == TEGULA__ENVELOPE__BODY__NOT_SET) {
        log_warn("rpc reply is not a usable envelope", "bytes=%zu", len);
        rpc_envelope_free(reply);
        call_finish(s, RPC_PROTOCOL, NULL);
        return;
    }
    call_finish(s, RPC_OK, reply);
}

/* Called with c->mu held. */
static call_slot *slot_new(rpc_client *c)
{
    call_slot *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->client = c;
    if (nng_ctx_open(&s->ctx, c->sock) != 0) {
        free(s);
        return NULL;
    }
    /* The socket option is copied into contexts when they open; set it here as well so the
     * guarantee does not hang on that detail. */
    if (nng_ctx_set_ms(s->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE) != 0 ||
        nng_aio_alloc(&s->aio, call_aio_done, s) != 0) {
        nng_ctx_close(s->ctx);
        free(s);
        return NULL;
    }
    s->next_all = c->all_slots;
    c->all_slots = s;
    return s;
}

rpc_client *rpc_client_open(const char *url, const rpc_client_options *opts, error *err)
{
    rpc_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        error_set(err, "out of memory");
        return NULL;
    }
    if (opts != NULL)
        c->opts = *opts;
    snprintf(c->url, sizeof c->url, "%s", url);
    if (c->opts.max_outstanding <= 0)
        c->opts.max_outstanding = 16384;
    if (c->opts.reconnect_min_ms <= 0)
        c->opts.reconnect_min_ms = 100;
    if (c->opts.reconnect_max_ms <= 0)
        c->opts.reconnect_max_ms = 1000;
    if (c->opts.reconnect_max_ms < c->opts.reconnect_min_ms)
        c->opts.reconnect_max_ms = c->opts.reconnect_min_ms;
    if (c->opts.max_message_bytes == 0)
        c->opts.max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->pipe_mu, NULL);
    pthread_cond_init(&c->idle, NULL);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&c->watch_wake, &monotonic);
    pthread_condattr_destroy(&monotonic);

    int rv = nng_req0_open(&c->sock);
    if (rv != 0) {
        error_set(err, "opening a req socket: %s", nng_strerror(rv));
        goto fail_nosock;
    }
    const char *what = "";
    if ((rv = nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0) {
        what = "resend time";
    } else if ((rv = nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, c->opts.reconnect_min_ms)) != 0) {
        what = "reconnect min";
    } else if ((rv = nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, c->opts.reconnect_max_ms)) != 0) {
        what = "reconnect max";
    } else if ((rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, c->opts.max_message_bytes)) != 0) {
        what = "receive size";
    } else if ((rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, client_pipe_event, c)) != 0 ||
               (rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, client_pipe_event, c)) != 0) {
        what = "pipe notify";
    }
    if (rv != 0) {
        error_set(err, "setting the %s option: %s", what, nng_strerror(rv));
        goto fail;
    }
    /* Non-blocking: a peer that is down now is simply redialled until it comes up. */
    c->down_since_ms = monotonic_ms();
    if ((rv = nng_dial(c->sock, url, &c->dialer, NNG_FLAG_NONBLOCK)) != 0) {
        error_set(err, "dialling %s: %s", url, nng_strerror(rv));
        goto fail;
    }
    c->stuck_ms = 3 * c->opts.reconnect_max_ms < 1000 ? 1000 : 3 * c->opts.reconnect_max_ms;
    if ((rv = pthread_create(&c->watch_thread, NULL, client_watch, c)) != 0) {
        error_set(err, "starting the dialer watchdog: %s", strerror(rv));
        goto fail;
    }
    return c;

fail:
    nng_close(c->sock);
fail_nosock:
    pthread_cond_destroy(&c->idle);
    pthread_cond_destroy(&c->watch_wake);
    pthread_mutex_destroy(&c->pipe_mu);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return NULL;
}

rpc_status rpc_call(rpc_client *c, const Tegula__Envelope *req, int timeout_ms, rpc_done_fn done,
                    void *arg)
{
    if (tegula__envelope__get_packed_size(req) > c->opts.max_message_bytes)
        return RPC_TOO_LARGE;
    nng_msg *msg;
    if (done == NULL || rpc_envelope_to_msg(req, &msg, NULL) != 0)
        return RPC_INTERNAL;
    if (timeout_ms < 1)
        timeout_ms = 1;

    pthread_mutex_lock(&c->mu);
    if (c->closing) {
        pthread_mutex_unlock(&c->mu);
        nng_msg_free(msg);
        return RPC_CLOSED;
    }
    if (c->outstanding >= c->opts.max_outstanding) {
        pthread_mutex_unlock(&c->mu);
        nng_msg_free(msg);
        return RPC_BUSY;
    }
    call_slot *s = c->free_slots;
    if (s != NULL)
        c->free_slots = s->next_free;
    else if ((s = slot_new(c)) == NULL) {
        pthread_mutex_unlock(&c->mu);
        nng_msg_free(msg);
        return RPC_INTERNAL;
    }
    c->outstanding++;
    c->active++;
    s->refs = 2; /* the call, and the nng_ctx_send below */
    c->in_nng++;
    pthread_mutex_unlock(&c->mu);

    s->next_free = NULL;
    s->done = done;
    s->arg = arg;
    s->phase = CALL_SENDING;
    s->deadline_ms = monotonic_ms() + timeout_ms;
    int send_wait = timeout_ms;
    if (c->opts.connect_wait_ms > 0 && c->opts.connect_wait_ms < send_wait)
        send_wait = c->opts.connect_wait_ms;
    nng_aio_set_msg(s->aio, msg);
    nng_aio_set_timeout(s->aio, send_wait);
    /* The slot is referenced, so close waits for this call's callback even if it closes the
     * socket before the send is posted (the send then fails with NNG_ECLOSED). */
    nng_ctx_send(s->ctx, s->aio);
    slot_unref(s, true);
    return RPC_OK;
}

typedef struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    rpc_status status;
    Tegula__Envelope *reply;
} sync_wait;

static void sync_done(void *arg, rpc_status status, Tegula__Envelope *reply)
{
    sync_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    w->reply = reply;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

rpc_status rpc_call_sync(rpc_client *c, const Tegula__Envelope *req, int timeout_ms,
                         Tegula__Envelope **reply)
{
    *reply = NULL;
    sync_wait w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    rpc_status st = rpc_call(c, req, timeout_ms, sync_done, &w);
    if (st == RPC_OK) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        st = w.status;
        *reply = w.reply;
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return st;
}

bool rpc_client_connected(rpc_client *c)
{
    pthread_mutex_lock(&c->pipe_mu);
    bool up = c->pipe_count > 0;
    pthread_mutex_unlock(&c->pipe_mu);
    return up;
}

int rpc_client_outstanding(rpc_client *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->outstanding;
    pthread_mutex_unlock(&c->mu);
    return n;
}

int rpc_client_resend_time(rpc_client *c, nng_duration *out)
{
    nng_duration want;
    if (nng_socket_get_ms(c->sock, NNG_OPT_REQ_RESENDTIME, &want) != 0)
        return -1;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    for (call_slot *s = c->all_slots; s != NULL; s = s->next_all) {
        nng_duration d;
        if (nng_ctx_get_ms(s->ctx, NNG_OPT_REQ_RESENDTIME, &d) != 0 || d != want) {
            rc = -1;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    *out = want;
    return rc;
}

void rpc_client_close(rpc_client *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    pthread_cond_signal(&c->watch_wake);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->watch_thread, NULL); /* waits for a running check */
    pthread_mutex_lock(&c->mu);
    while (c->in_nng > 0)
        pthread_cond_wait(&c->idle, &c->mu);
    pthread_mutex_unlock(&c->mu);
    /* Closing the socket completes every pending send and receive with NNG_ECLOSED. */
    nng_close(c->sock);
    pthread_mutex_lock(&c->mu);
    while (c->active > 0)
        pthread_cond_wait(&c->idle, &c->mu);
    pthread_mutex_unlock(&c->mu);
    call_slot *s = c->all_slots;
    while (s != NULL) {
        call_slot *next = s->next_all;
        nng_aio_free(s->aio); /* waits for the tail of a callback still unwinding */
        free(s);
        s = next;
    }
    pthread_cond_destroy(&c->idle);
    pthread_cond_destroy(&c->watch_wake);
    pthread_mutex_destroy(&c->pipe_mu);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ---- server ---- */

enum ctx_state { CTX_RECEIVING, CTX_HANDLING, CTX_SENDING, CTX_PARKED };

/* A server context; while a request is with the handler it is that request's token. */
struct rpc_reply_token {
    rpc_server *server;
    nng_ctx ctx;
    nng_aio *aio;
    enum ctx_state state;
    struct rpc_reply_token *next_parked;
    struct rpc_reply_token *next_all;
};

struct rpc_server {
    nng_socket sock;
    nng_listener listener;
    int port;
    rpc_handler_fn handler;
    void *arg;
    rpc_server_options opts;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled while closing whenever a count below drops */
    bool closing;      /* no new receives, no new handler calls */
    /* No NNG context calls any more: the socket is about to close. Every nng_ctx_* call is
     * made with mu held, so once this is set under mu none is in progress (NNG 1.5.2 can
     * crash closing a socket while a thread is inside nng_ctx_send/recv on it). */
    bool sock_closing;
    bool closed;       /* socket closed: replies are discarded, tokens freed one by one */
    int contexts;      /* contexts not parked (receiving, handling, sending) */
    int receiving;
    int pending;       /* tokens held by handlers */
    int sending;       /* replies handed to NNG and not yet taken by a connection */
    int64_t last_sent_ms; /* when the latest reply was taken by a connection */
    int in_handler;    /* handler calls running */
    int refs;          /* 1 for the owner + pending; the server is freed when it reaches 0 */
    rpc_reply_token *parked;
    rpc_reply_token *all;
};

static void server_ctx_done(void *arg);

static void server_free(rpc_server *srv)
{
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}

/* Called with srv->mu held: ctx starts waiting for a request. */
static void server_post_recv(rpc_server *srv, rpc_reply_token *t)
{
    t->state = CTX_RECEIVING;
    srv->receiving++;
    nng_aio_set_timeout(t->aio, NNG_DURATION_INFINITE);
    nng_ctx_recv(t->ctx, t->aio);
}

/* Called with srv->mu held: ctx has nothing to do; keep it for later. */
static void server_park(rpc_server *srv, rpc_reply_token *t)
{
    t->state = CTX_PARKED;
    srv->contexts--;
    t->next_parked = srv->parked;
    srv->parked = t;
}

/* Called with srv->mu held: a context finished a reply (or dropped one); it goes back to
 * receiving unless enough contexts already are. */
static void server_recycle(rpc_server *srv, rpc_reply_token *t)
{
    if (!srv->closing && srv->receiving < srv->opts.recv_contexts) {
        server_post_recv(srv, t);
    } else {
        server_park(srv, t);
    }
}

/* Called with srv->mu held: a new context, not yet started. */
static rpc_reply_token *server_ctx_new(rpc_server *srv)
{
    rpc_reply_token *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->server = srv;
    if (nng_ctx_open(&t->ctx, srv->sock) != 0) {
        free(t);
        return NULL;
    }
    if (nng_aio_alloc(&t->aio, server_ctx_done, t) != 0) {
        nng_ctx_close(t->ctx);
        free(t);
        return NULL;
    }
    t->next_all = srv->all;
    srv->all = t;
    return t;
}

/* Called with srv->mu held: keeps recv_contexts contexts receiving while the bound allows. */
static void server_top_up(rpc_server *srv)
{
    while (!srv->closing && srv->receiving < srv->opts.recv_contexts &&
           srv->contexts < srv->opts.max_contexts) {
        rpc_reply_token *t = srv->parked;
        if (t != NULL) {
            srv->parked = t->next_parked;
            t->next_parked = NULL;
        } else if ((t = server_ctx_new(srv)) == NULL) {
            log_error("rpc server cannot open another context", "contexts=%d", srv->contexts);
            return;
        }
        srv->contexts++;
        server_post_recv(srv, t);
    }
}

static void server_got_request(rpc_server *srv, rpc_reply_token *t, nng_msg *msg)
{
    Tegula__Envelope *req = rpc_envelope_from_msg(msg, NULL);
    size_t len = nng_msg_len(msg);
    nng_msg_free(msg);
    if (req == NULL) {
        log_warn("rpc request is not an envelope; answering with an empty one", "bytes=%zu", len);
        Tegula__Envelope empty = TEGULA__ENVELOPE__INIT;
        rpc_reply(t, &empty);
    } else {
        srv->handler(srv->arg, req, t);
    }
    pthread_mutex_lock(&srv->mu);
    srv->in_handler--;
    if (srv->closing)
        pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
}

static void server_ctx_done(void *arg)
{
    rpc_reply_token *t = arg;
    rpc_server *srv = t->server;
    int rv = nng_aio_result(t->aio);
    nng_msg *msg = NULL;
    if (rv == 0 || t->state == CTX_SENDING) {
        msg = nng_aio_get_msg(t->aio); /* a received request, or an unsent reply */
        nng_aio_set_msg(t->aio, NULL);
    }

    pthread_mutex_lock(&srv->mu);
    if (t->state == CTX_RECEIVING) {
        srv->receiving--;
        if (rv == 0 && !srv->closing) {
            t->state = CTX_HANDLING;
            srv->pending++;
            srv->refs++;
            srv->in_handler++;
            server_top_up(srv);
            pthread_mutex_unlock(&srv->mu);
            server_got_request(srv, t, msg);
            return;
        }
        if (!srv->closing && rv != NNG_ECLOSED && rv != NNG_ECANCELED) {
            log_warn("rpc server receive failed", "err=\"%s\"", nng_strerror(rv));
            server_post_recv(srv, t);
        } else {
            server_park(srv, t);
        }
    } else if (t->state == CTX_SENDING) {
        srv->sending--;
        if (rv == 0)
            srv->last_sent_ms = monotonic_ms();
        else if (rv != NNG_ECLOSED)
            log_warn("rpc reply not sent", "err=\"%s\"", nng_strerror(rv));
        server_recycle(srv, t);
    }
    if (srv->closing)
        pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    /* An unsent reply, or a request that arrived while closing (dropped). */
    if (msg != NULL)
        nng_msg_free(msg);
}

rpc_server *rpc_server_open(const char *url, const rpc_server_options *opts,
                            rpc_handler_fn handler, void *arg, error *err)
{
    rpc_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        error_set(err, "out of memory");
        return NULL;
    }
    if (opts != NULL)
        srv->opts = *opts;
    if (srv->opts.recv_contexts <= 0)
        srv->opts.recv_contexts = 256;
    if (srv->opts.max_contexts <= 0)
        srv->opts.max_contexts = 65536;
    if (srv->opts.max_contexts < srv->opts.recv_contexts)
        srv->opts.max_contexts = srv->opts.recv_contexts;
    if (srv->opts.max_message_bytes == 0)
        srv->opts.max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES;
    if (srv->opts.send_timeout_ms <= 0)
        srv->opts.send_timeout_ms = 30000;
    srv->handler = handler;
    srv->arg = arg;
    srv->refs = 1;
    pthread_mutex_init(&srv->mu, NULL);
    cond_init_monotonic(&srv->cv);

    int rv = nng_rep0_open(&srv->sock);
    if (rv != 0) {
        error_set(err, "opening a rep socket: %s", nng_strerror(rv));
        server_free(srv);
        return NULL;
    }
    if ((rv = nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ, srv->opts.max_message_bytes)) != 0) {
        error_set(err, "setting the receive size: %s", nng_strerror(rv));
        goto fail;
    }
    if ((rv = nng_listen(srv->sock, url, &srv->listener, 0)) != 0) {
        error_set(err, "listening on %s: %s", url, nng_strerror(rv));
        goto fail;
    }
    int port = 0;
    if (nng_listener_get_int(srv->listener, NNG_OPT_TCP_BOUND_PORT, &port) == 0)
        srv->port = port;

    pthread_mutex_lock(&srv->mu);
    server_top_up(srv);
    bool started = srv->receiving > 0;
    pthread_mutex_unlock(&srv->mu);
    if (!started) {
        error_set(err, "could not open any server context");
        rpc_server_close(srv, 0);
        return NULL;
    }
    return srv;

fail:
    nng_close(srv->sock);
    server_free(srv);
    return NULL;
}

int rpc_server_port(const rpc_server *srv) { return srv->port; }

int rpc_server_pending(rpc_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    int n = srv->pending;
    pthread_mutex_unlock(&srv->mu);
    return n;
}

/* Gives a token back, sending msg on its context when there is one and the server is open.
 * Consumes msg. */
static void token_release(rpc_reply_token *t, nng_msg *msg)
{
    rpc_server *srv = t->server;
    pthread_mutex_lock(&srv->mu);
    srv->pending--;
    srv->refs--;
    if (srv->closed) {
        /* The server is gone but for its tokens: this one is freed here, and the last one
         * frees the rest. No operation is pending on its aio. */
        bool last = srv->refs == 0;
        pthread_mutex_unlock(&srv->mu);
        if (msg != NULL)
            nng_msg_free(msg);
        nng_aio_free(t->aio);
        free(t);
        if (last)
            server_free(srv);
        return;
    }
    /* The send is posted with the lock held so close cannot free the context meanwhile;
     * NNG completes it on another thread, which then waits for this lock. */
    if (srv->sock_closing) {
        if (msg != NULL)
            nng_msg_free(msg);
        server_park(srv, t);
    } else if (msg != NULL) {
        t->state = CTX_SENDING;
        srv->sending++;
        nng_aio_set_msg(t->aio, msg);
        nng_aio_set_timeout(t->aio, srv->opts.send_timeout_ms);
        nng_ctx_send(t->ctx, t->aio);
    } else {
        server_recycle(srv, t);
    }
    if (srv->closing)
        pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
}

int rpc_reply(rpc_reply_token *t, const Tegula__Envelope *reply)
{
    nng_msg *msg = NULL;
    error err;
    int rc = 0;
    if (rpc_envelope_to_msg(reply, &msg, &err) != 0) {
        log_error("rpc reply cannot be encoded", "err=\"%s\"", err.msg);
        rc = -1;
    }
    token_release(t, msg);
    return rc;
}

void rpc_reply_drop(rpc_reply_token *t) { token_release(t, NULL); }

void rpc_server_close(rpc_server *srv, int wait_ms)
{
    if (srv == NULL)
        return;
    pthread_mutex_lock(&srv->mu);
    srv->closing = true;
    for (rpc_reply_token *t = srv->all; t != NULL; t = t->next_all)
        if (t->state == CTX_RECEIVING)
            nng_aio_cancel(t->aio); /* completes later on an NNG thread, which parks it */
    int64_t deadline = monotonic_ms() + (wait_ms > 0 ? wait_ms : 0);
    while ((srv->pending > 0 || srv->sending > 0 || srv->in_handler > 0 || srv->receiving > 0) &&
           cond_wait_until(&srv->cv, &srv->mu, deadline))
        ;
    /* A reply taken by a connection may still sit in NNG's transport queue, and closing the
     * socket discards it: give recent ones a moment to reach the kernel. */
    int64_t linger_until = srv->last_sent_ms + CLOSE_LINGER_MS;
    if (linger_until > deadline)
        linger_until = deadline;
    while (srv->last_sent_ms != 0 && cond_wait_until(&srv->cv, &srv->mu, linger_until))
        ;
    /* Past the bound, unanswered tokens are left to their holders, but a handler that is
     * running is waited for: it may still use its context. */
    while (srv->in_handler > 0 || srv->receiving > 0)
        pthread_cond_wait(&srv->cv, &srv->mu);
    if (srv->pending > 0)
        log_warn("rpc server closing with unanswered requests", "pending=%d", srv->pending);
    srv->sock_closing = true;
    pthread_mutex_unlock(&srv->mu);

    nng_listener_close(srv->listener);
    /* Cuts every connection; replies still queued complete with NNG_ECLOSED and park. */
    nng_close(srv->sock);

    pthread_mutex_lock(&srv->mu);
    srv->closed = true;
    rpc_reply_token *to_free = NULL;
    for (rpc_reply_token *t = srv->all, *next; t != NULL; t = next) {
        next = t->next_all;
        if (t->state != CTX_HANDLING) {
            t->next_all = to_free;
            to_free = t;
        }
    }
    srv->all = NULL;
    srv->parked = NULL;
    pthread_mutex_unlock(&srv->mu);

    while (to_free != NULL) {
        rpc_reply_token *next = to_free->next_all;
        nng_aio_free(to_free->aio); /* waits for a completion callback still unwinding */
        free(to_free);
        to_free = next;
    }

    pthread_mutex_lock(&srv->mu);
    bool last = --srv->refs == 0;
    pthread_mutex_unlock(&srv->mu);
    if (last)
        server_free(srv);
}
