#include "probe.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* Grace beyond the calls' own deadline before the waiter gives up on a callback: NNG 1.5.2
 * can fail to complete an aio, and a health probe must never hang the process. */
#define PROBE_GRACE_MS 2000

/* Shared by the waiter and every call; the last of them to let go frees it, so a callback
 * that arrives after the waiter gave up writes into memory that still exists. */
typedef struct probe_round {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t remaining; /* calls not answered yet */
    size_t refs;      /* waiter + calls whose callback has not run */
    bool *ok;         /* n results, owned by the round */
    struct probe_arg {
        struct probe_round *round;
        size_t index;
    } *args;
} probe_round;

typedef struct probe_arg probe_arg;

static void probe_round_release(probe_round *round)
{
    pthread_mutex_lock(&round->mu);
    bool last = --round->refs == 0;
    pthread_mutex_unlock(&round->mu);
    if (!last)
        return;
    pthread_cond_destroy(&round->cv);
    pthread_mutex_destroy(&round->mu);
    free(round->ok);
    free(round->args);
    free(round);
}

static void probe_finish(probe_round *round, size_t index, bool ok)
{
    pthread_mutex_lock(&round->mu);
    round->ok[index] = ok;
    if (--round->remaining == 0)
        pthread_cond_signal(&round->cv);
    pthread_mutex_unlock(&round->mu);
    probe_round_release(round);
}

static void probe_done(void *arg, rpc_status status, Tegula__Envelope *reply)
{
    probe_arg *a = arg;
    bool ok = status == RPC_OK && reply && reply->body_case == TEGULA__ENVELOPE__BODY_PONG;
    rpc_envelope_free(reply);
    probe_finish(a->round, a->index, ok);
}

void probe_ping_all(rpc_client *const *clients, size_t n, int timeout_ms, bool *ok)
{
    for (size_t i = 0; i < n; i++)
        ok[i] = false;
    if (n == 0)
        return;
    probe_round *round = calloc(1, sizeof *round);
    if (!round || !(round->ok = calloc(n, sizeof *round->ok)) ||
        !(round->args = calloc(n, sizeof *round->args))) {
        if (round)
            free(round->ok);
        free(round);
        return;
    }
    round->remaining = n;
    round->refs = n + 1;
    pthread_mutex_init(&round->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&round->cv, &attr);
    pthread_condattr_destroy(&attr);
    Tegula__Ping ping = TEGULA__PING__INIT;
    ping.from = "frontend";
    Tegula__Envelope env = TEGULA__ENVELOPE__INIT;
    env.body_case = TEGULA__ENVELOPE__BODY_PING;
    env.ping = &ping;
    for (size_t i = 0; i < n; i++) {
        round->args[i].round = round;
        round->args[i].index = i;
        if (!clients[i] ||
            rpc_call(clients[i], &env, timeout_ms, probe_done, &round->args[i]) != RPC_OK)
            probe_finish(round, i, false);
    }
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    int64_t ns = deadline.tv_nsec + (int64_t)(timeout_ms + PROBE_GRACE_MS) * 1000000;
    deadline.tv_sec += ns / 1000000000;
    deadline.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&round->mu);
    while (round->remaining > 0)
        if (pthread_cond_timedwait(&round->cv, &round->mu, &deadline) == ETIMEDOUT)
            break; /* unanswered probes count as down */
    for (size_t i = 0; i < n; i++)
        ok[i] = round->ok[i];
    pthread_mutex_unlock(&round->mu);
    probe_round_release(round);
}
