#include "probe.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct probe_round {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t remaining;
    bool *ok;
} probe_round;

typedef struct probe_arg {
    probe_round *round;
    size_t index;
} probe_arg;

static void probe_finish(probe_round *round, size_t index, bool ok)
{
    pthread_mutex_lock(&round->mu);
    round->ok[index] = ok;
    if (--round->remaining == 0)
        pthread_cond_signal(&round->cv);
    pthread_mutex_unlock(&round->mu);
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
    if (n == 0)
        return;
    probe_arg *args = calloc(n, sizeof *args);
    if (!args) {
        for (size_t i = 0; i < n; i++)
            ok[i] = false;
        return;
    }
    probe_round round = {.remaining = n, .ok = ok};
    pthread_mutex_init(&round.mu, NULL);
    pthread_cond_init(&round.cv, NULL);
    Tegula__Ping ping = TEGULA__PING__INIT;
    ping.from = "frontend";
    Tegula__Envelope env = TEGULA__ENVELOPE__INIT;
    env.body_case = TEGULA__ENVELOPE__BODY_PING;
    env.ping = &ping;
    for (size_t i = 0; i < n; i++) {
        args[i].round = &round;
        args[i].index = i;
        if (!clients[i] || rpc_call(clients[i], &env, timeout_ms, probe_done, &args[i]) != RPC_OK)
            probe_finish(&round, i, false);
    }
    pthread_mutex_lock(&round.mu);
    while (round.remaining > 0)
        pthread_cond_wait(&round.cv, &round.mu);
    pthread_mutex_unlock(&round.mu);
    pthread_cond_destroy(&round.cv);
    pthread_mutex_destroy(&round.mu);
    free(args);
}
