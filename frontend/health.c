#include "health.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "probe.h"
#include "rpc.h"

struct health {
    batcher_pool *pool;
    unsigned interval_ms;
    int probe_timeout_ms;
    size_t count;             /* sequencers probed */
    rpc_client **sequencers;
    const char **names;       /* log names, borrowed from the config */
    bool *ok;

    pthread_mutex_t mu;       /* guards the verdict and stop */
    pthread_cond_t cv;
    bool stop;
    bool ready;
    bool probed; /* at least one round completed */
    char reason[256];
    size_t batchers_live;
    size_t sequencers_live;
    pthread_t thread;
    bool thread_started;
};

static void health_round(health *h)
{
    size_t live = batcher_pool_probe(h->pool, h->probe_timeout_ms);
    probe_ping_all(h->sequencers, h->count, h->probe_timeout_ms, h->ok);
    size_t members, live_marked;
    batcher_pool_counts(h->pool, &members, &live_marked);
    char reason[256] = "";
    size_t seq_live = 0;
    const char *down = NULL;
    for (size_t i = 0; i < h->count; i++) {
        if (h->ok[i])
            seq_live++;
        else if (!down)
            down = h->names[i];
    }
    if (live == 0)
        snprintf(reason, sizeof reason, "no batcher answers (%zu known)", members);
    else if (down)
        snprintf(reason, sizeof reason, "the sequencer of log %s does not answer", down);
    pthread_mutex_lock(&h->mu);
    bool changed = !h->probed || h->ready != (reason[0] == 0);
    h->probed = true;
    h->ready = reason[0] == 0;
    memcpy(h->reason, reason, sizeof reason);
    h->batchers_live = live;
    h->sequencers_live = seq_live;
    pthread_mutex_unlock(&h->mu);
    if (changed) {
        if (reason[0])
            log_warn("frontend not ready", "reason=\"%s\"", reason);
        else
            log_info("frontend ready", "batchers=%zu sequencers=%zu", live, seq_live);
    }
}

static void *health_main(void *arg)
{
    health *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        pthread_mutex_unlock(&h->mu);
        health_round(h);
        pthread_mutex_lock(&h->mu);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long ns = ts.tv_nsec + (long long)(h->interval_ms % 1000) * 1000000;
        ts.tv_sec += h->interval_ms / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        while (!h->stop && pthread_cond_timedwait(&h->cv, &h->mu, &ts) == 0)
            ;
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

health *health_start(const config *cfg, batcher_pool *pool, unsigned interval_ms,
                     int probe_timeout_ms, error *err)
{
    health *h = calloc(1, sizeof *h);
    if (!h) {
        error_set(err, "out of memory");
        return NULL;
    }
    h->pool = pool;
    h->interval_ms = interval_ms ? interval_ms : 2000;
    h->probe_timeout_ms = probe_timeout_ms > 0 ? probe_timeout_ms : 1000;
    snprintf(h->reason, sizeof h->reason, "starting: not probed yet");
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cv, &attr);
    pthread_condattr_destroy(&attr);
    size_t n = cfg->log_count;
    h->sequencers = calloc(n ? n : 1, sizeof *h->sequencers);
    h->names = calloc(n ? n : 1, sizeof *h->names);
    h->ok = calloc(n ? n : 1, sizeof *h->ok);
    if (!h->sequencers || !h->names || !h->ok) {
        error_set(err, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const config_log *l = &cfg->logs[i];
        if (l->status != CONFIG_LOG_ACTIVE)
            continue; /* a frozen log needs no sequencer to serve what it serves */
        rpc_client *c = rpc_client_open(l->sequencer, NULL, err);
        if (!c) {
            error_wrap(err, "log %s: sequencer %s", l->name, l->sequencer);
            goto fail;
        }
        h->sequencers[h->count] = c;
        h->names[h->count] = l->name;
        h->count++;
    }
    if (pthread_create(&h->thread, NULL, health_main, h) != 0) {
        error_set(err, "cannot start the health thread");
        goto fail;
    }
    h->thread_started = true;
    return h;
fail:
    health_stop(h);
    return NULL;
}

bool health_ready(health *h, char *reason, size_t reason_len)
{
    pthread_mutex_lock(&h->mu);
    bool ready = h->ready;
    if (!ready && reason && reason_len)
        snprintf(reason, reason_len, "%s", h->reason);
    pthread_mutex_unlock(&h->mu);
    return ready;
}

void health_counts(health *h, size_t *batchers_live, size_t *sequencers_live,
                   size_t *sequencers)
{
    pthread_mutex_lock(&h->mu);
    *batchers_live = h->batchers_live;
    *sequencers_live = h->sequencers_live;
    *sequencers = h->count;
    pthread_mutex_unlock(&h->mu);
}

void health_stop(health *h)
{
    if (!h)
        return;
    if (h->thread_started) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->thread, NULL);
    }
    for (size_t i = 0; i < h->count; i++)
        rpc_client_close(h->sequencers[i]);
    free(h->sequencers);
    free(h->names);
    free(h->ok);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
