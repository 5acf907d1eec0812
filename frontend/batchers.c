#include "batchers.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "probe.h"
#include "ring.h"
#include "rpc.h"

/* Failover never walks further than this many members for one submission. */
#define MAX_ATTEMPTS 16

/* One batcher: its address and client, shared by every ring that lists it. */
typedef struct member {
    char *url;
    rpc_client *client;
    atomic_int refs;
    struct member *next_dead;
} member;

/* An immutable membership: the ring (member names are the urls) and the members by index. */
typedef struct member_set {
    atomic_int refs;
    ring *ring;
    size_t count;
    member **members;
} member_set;

struct batcher_pool {
    batcher_pool_options opts;
    rpc_client_options client_opts;

    pthread_mutex_t mu; /* guards current and graveyard */
    member_set *current;
    member *graveyard; /* members no ring uses any more, closed by a background thread */

    /* Read-held while a call is being started, write-held to set `closing`: once it is set no
     * call starts on a client that may be closing. */
    pthread_rwlock_t closing_lock;
    bool closing;

    /* Submissions whose callback has not returned; the pool is freed only at zero. A call's
     * decrement is its last touch of the pool, so batcher_pool_free polls the count rather
     * than have finishing calls signal a condition variable it is about to destroy. */
    atomic_size_t calls;

    /* DNS mode */
    char *dns_host;
    char *dns_port;
    bool dns_thread_started;
    pthread_t dns_thread;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    bool stop;
};

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *batcher_outcome_name(batcher_outcome outcome)
{
    switch (outcome) {
    case BATCHER_REPLY: return "reply";
    case BATCHER_TIMEOUT: return "timeout";
    case BATCHER_UNAVAILABLE: return "unavailable";
    case BATCHER_FAILED: return "failed";
    case BATCHER_CLOSED: return "closed";
    }
    return "unknown";
}

/* ---- members and sets ---- */

static member *member_open(batcher_pool *pool, const char *url)
{
    member *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->url = strdup(url);
    error err = {{0}};
    m->client = m->url ? rpc_client_open(url, &pool->client_opts, &err) : NULL;
    if (!m->client) {
        log_warn("cannot open a client for a batcher", "url=%s reason=\"%s\"", url, err.msg);
        free(m->url);
        free(m);
        return NULL;
    }
    atomic_init(&m->refs, 1);
    return m;
}

/* Frees a member nobody uses; closing its client waits for its callbacks, so never from one. */
static void member_destroy(member *m)
{
    rpc_client_close(m->client);
    free(m->url);
    free(m);
}

static void member_release(batcher_pool *pool, member *m)
{
    if (atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    /* The last user may be an NNG callback, which must not close a client: defer. */
    pthread_mutex_lock(&pool->mu);
    m->next_dead = pool->graveyard;
    pool->graveyard = m;
    pthread_mutex_unlock(&pool->mu);
}

static void reap_graveyard(batcher_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    member *m = pool->graveyard;
    pool->graveyard = NULL;
    pthread_mutex_unlock(&pool->mu);
    while (m) {
        member *next = m->next_dead;
        member_destroy(m);
        m = next;
    }
}

/* Takes ownership of one reference to each member. */
static member_set *set_new(member **members, size_t count, error *err)
{
    member_set *s = calloc(1, sizeof *s);
    const char **names = calloc(count ? count : 1, sizeof *names);
    if (!s || !names) {
        free(s);
        free(names);
        error_set(err, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < count; i++)
        names[i] = members[i]->url;
    s->ring = ring_new(names, count, err);
    free(names);
    if (!s->ring) {
        free(s);
        return NULL;
    }
    s->members = members;
    s->count = count;
    atomic_init(&s->refs, 1);
    return s;
}

static void set_release(batcher_pool *pool, member_set *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->count; i++)
        member_release(pool, s->members[i]);
    ring_free(s->ring);
    free(s->members);
    free(s);
}

static member_set *set_acquire(batcher_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    member_set *s = pool->current;
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&pool->mu);
    return s;
}

/* Builds a set for these urls (sorted, distinct), reusing the members and the down marks of
 * `old` where the url is the same. */
static member_set *set_build(batcher_pool *pool, member_set *old, char **urls, size_t n,
                             error *err)
{
    member **members = calloc(n ? n : 1, sizeof *members);
    if (!members) {
        error_set(err, "out of memory");
        return NULL;
    }
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        int idx = old ? ring_find(old->ring, urls[i]) : -1;
        if (idx >= 0) {
            members[count] = old->members[idx];
            atomic_fetch_add(&members[count]->refs, 1);
            count++;
        } else if ((members[count] = member_open(pool, urls[i])) != NULL) {
            count++;
        }
    }
    member_set *s = set_new(members, count, err);
    if (!s) {
        for (size_t i = 0; i < count; i++)
            member_release(pool, members[i]);
        free(members);
        return NULL;
    }
    for (size_t i = 0; old && i < count; i++) {
        int idx = ring_find(old->ring, members[i]->url);
        if (idx >= 0 && ring_is_down(old->ring, (size_t)idx))
            ring_set_down(s->ring, i, true);
    }
    return s;
}

static void set_install(batcher_pool *pool, member_set *s)
{
    pthread_mutex_lock(&pool->mu);
    member_set *old = pool->current;
    pool->current = s;
    pthread_mutex_unlock(&pool->mu);
    set_release(pool, old);
}

/* ---- DNS ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_urls(char **urls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(urls[i]);
    free(urls);
}

/* Every A record of the name as tcp://ip:port, sorted and distinct. -1 if resolution failed. */
static int resolve(const batcher_pool *pool, char ***urls_out, size_t *n_out)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(pool->dns_host, pool->dns_port, &hints, &res);
    if (rc != 0) {
        log_warn("cannot resolve the batchers' DNS name", "name=%s port=%s reason=\"%s\"",
                 pool->dns_host, pool->dns_port, gai_strerror(rc));
        return -1;
    }
    size_t cap = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        cap++;
    char **urls = calloc(cap ? cap : 1, sizeof *urls);
    size_t n = 0;
    for (struct addrinfo *ai = res; urls && ai && n < RING_MAX_MEMBERS; ai = ai->ai_next) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
        char ip[INET_ADDRSTRLEN];
        if (!inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip))
            continue;
        char url[64];
        snprintf(url, sizeof url, "tcp://%s:%u", ip, (unsigned)ntohs(sin->sin_port));
        if ((urls[n] = strdup(url)) != NULL)
            n++;
    }
    freeaddrinfo(res);
    if (!urls)
        return -1;
    qsort(urls, n, sizeof *urls, cmp_str);
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        if (distinct > 0 && strcmp(urls[distinct - 1], urls[i]) == 0)
            free(urls[i]);
        else
            urls[distinct++] = urls[i];
    }
    *urls_out = urls;
    *n_out = distinct;
    return 0;
}

static bool set_has_urls(const member_set *s, char **urls, size_t n)
{
    if (!s || s->count != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ring_find(s->ring, urls[i]) < 0)
            return false;
    return true;
}

static void dns_refresh(batcher_pool *pool)
{
    char **urls;
    size_t n;
    if (resolve(pool, &urls, &n) != 0)
        return; /* keep the members we have */
    member_set *old = set_acquire(pool);
    if (!set_has_urls(old, urls, n)) {
        error err = {{0}};
        member_set *s = set_build(pool, old, urls, n, &err);
        if (s) {
            log_info("batcher membership changed", "dns=%s:%s members=%zu", pool->dns_host,
                     pool->dns_port, s->count);
            set_install(pool, s);
        } else {
            log_warn("cannot rebuild the batcher ring", "reason=\"%s\"", err.msg);
        }
    }
    set_release(pool, old);
    free_urls(urls, n);
}

static void *dns_thread_main(void *arg)
{
    batcher_pool *pool = arg;
    pthread_mutex_lock(&pool->stop_mu);
    while (!pool->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (int64_t)(pool->opts.dns_refresh_ms % 1000) * 1000000;
        ts.tv_sec += pool->opts.dns_refresh_ms / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        while (!pool->stop && pthread_cond_timedwait(&pool->stop_cv, &pool->stop_mu, &ts) == 0)
            ;
        if (pool->stop)
            break;
        pthread_mutex_unlock(&pool->stop_mu);
        dns_refresh(pool);
        reap_graveyard(pool);
        pthread_mutex_lock(&pool->stop_mu);
    }
    pthread_mutex_unlock(&pool->stop_mu);
    return NULL;
}

/* ---- pool ---- */

static int split_host_port(const char *text, char **host, char **port)
{
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || !colon[1])
        return -1;
    *host = strndup(text, (size_t)(colon - text));
    *port = strdup(colon + 1);
    return *host && *port ? 0 : -1;
}

batcher_pool *batcher_pool_new(const config_batchers *cfg, const batcher_pool_options *opts,
                               error *err)
{
    batcher_pool *pool = calloc(1, sizeof *pool);
    if (!pool) {
        error_set(err, "out of memory");
        return NULL;
    }
    if (opts)
        pool->opts = *opts;
    if (!pool->opts.dns_refresh_ms)
        pool->opts.dns_refresh_ms = 5000;
    if (!pool->opts.connect_wait_ms)
        pool->opts.connect_wait_ms = 1000;
    pool->client_opts.connect_wait_ms = (int)pool->opts.connect_wait_ms;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_rwlock_init(&pool->closing_lock, NULL);
    pthread_mutex_init(&pool->stop_mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool->stop_cv, &attr);
    pthread_condattr_destroy(&attr);

    if (cfg->dns) {
        if (split_host_port(cfg->dns, &pool->dns_host, &pool->dns_port) != 0) {
            error_set(err, "batchers.dns: %s is not host:port", cfg->dns);
            goto fail;
        }
        char **urls = NULL;
        size_t n = 0;
        if (resolve(pool, &urls, &n) != 0) {
            urls = NULL;
            n = 0;
        }
        member_set *s = set_build(pool, NULL, urls, n, err);
        free_urls(urls, n);
        if (!s)
            goto fail;
        set_install(pool, s);
        if (pthread_create(&pool->dns_thread, NULL, dns_thread_main, pool) != 0) {
            error_set(err, "cannot start the DNS refresh thread");
            goto fail;
        }
        pool->dns_thread_started = true;
    } else {
        member **members = calloc(cfg->address_count ? cfg->address_count : 1, sizeof *members);
        size_t count = 0;
        for (size_t i = 0; members && i < cfg->address_count; i++) {
            members[count] = member_open(pool, cfg->addresses[i]);
            if (!members[count]) {
                error_set(err, "batchers.addresses[%zu]: cannot open a client for %s", i,
                          cfg->addresses[i]);
                break;
            }
            count++;
        }
        member_set *s = NULL;
        if (members && count == cfg->address_count)
            s = set_new(members, count, err);
        if (!s) {
            for (size_t i = 0; i < count; i++)
                member_destroy(members[i]);
            free(members);
            if (!error_is_set(err))
                error_set(err, "out of memory");
            goto fail;
        }
        set_install(pool, s);
    }
    return pool;
fail:
    batcher_pool_free(pool);
    return NULL;
}

void batcher_pool_free(batcher_pool *pool)
{
    if (!pool)
        return;
    if (pool->dns_thread_started) {
        pthread_mutex_lock(&pool->stop_mu);
        pool->stop = true;
        pthread_cond_signal(&pool->stop_cv);
        pthread_mutex_unlock(&pool->stop_mu);
        pthread_join(pool->dns_thread, NULL);
    }
    pthread_rwlock_wrlock(&pool->closing_lock);
    pool->closing = true;
    pthread_rwlock_unlock(&pool->closing_lock);
    /* Close the current members' clients so the calls on them end now (CLOSED). Calls still
     * on batchers that left the ring earlier (DNS) end by their own deadline. */
    member_set *s = set_acquire(pool);
    for (size_t i = 0; s && i < s->count; i++) {
        rpc_client_close(s->members[i]->client);
        s->members[i]->client = NULL;
    }
    set_release(pool, s);
    set_install(pool, NULL);
    while (atomic_load(&pool->calls) > 0) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000000};
        nanosleep(&pause, NULL);
    }
    /* Every set is gone now, so every member is in the graveyard. */
    reap_graveyard(pool);
    free(pool->dns_host);
    free(pool->dns_port);
    pthread_cond_destroy(&pool->stop_cv);
    pthread_mutex_destroy(&pool->stop_mu);
    pthread_rwlock_destroy(&pool->closing_lock);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
}

void batcher_pool_counts(batcher_pool *pool, size_t *members, size_t *live)
{
    member_set *s = set_acquire(pool);
    size_t n = s ? s->count : 0, up = 0;
    for (size_t i = 0; i < n; i++)
        if (!ring_is_down(s->ring, i))
            up++;
    set_release(pool, s);
    *members = n;
    *live = up;
}

size_t batcher_pool_probe(batcher_pool *pool, int timeout_ms)
{
    member_set *s = set_acquire(pool);
    if (!s || s->count == 0) {
        set_release(pool, s);
        reap_graveyard(pool);
        return 0;
    }
    rpc_client **clients = calloc(s->count, sizeof *clients);
    bool *ok = calloc(s->count, sizeof *ok);
    size_t live = 0;
    if (clients && ok) {
        for (size_t i = 0; i < s->count; i++)
            clients[i] = s->members[i]->client;
        pthread_rwlock_rdlock(&pool->closing_lock);
        bool closing = pool->closing;
        pthread_rwlock_unlock(&pool->closing_lock);
        if (!closing)
            probe_ping_all(clients, s->count, timeout_ms, ok);
        for (size_t i = 0; i < s->count; i++) {
            if (ring_is_down(s->ring, i) != !ok[i])
                log_info(ok[i] ? "batcher is up" : "batcher is down", "url=%s",
                         s->members[i]->url);
            ring_set_down(s->ring, i, !ok[i]);
            live += ok[i];
        }
    }
    free(clients);
    free(ok);
    set_release(pool, s);
    /* Static mode has no DNS thread; departed members only exist in DNS mode, but reaping
     * here as well costs nothing. */
    reap_graveyard(pool);
    return live;
}

/* ---- submissions ---- */

typedef struct submit_call {
    batcher_pool *pool;
    member_set *set;
    const Tegula__Envelope *request;
    size_t order[MAX_ATTEMPTS];
    size_t order_count;
    size_t next;
    size_t current; /* index (in set) of the member asked last */
    int64_t deadline_ms;
    batcher_done_fn done;
    void *arg;
} submit_call;

static void call_finish(submit_call *call, batcher_outcome outcome,
                        const Tegula__SubmitReply *reply, const char *batcher)
{
    batcher_pool *pool = call->pool;
    call->done(call->arg, outcome, reply, batcher ? batcher : "");
    set_release(pool, call->set);
    free(call);
    atomic_fetch_sub(&pool->calls, 1); /* the last touch of the pool */
}

static void call_try_next(submit_call *call);

static void call_done(void *arg, rpc_status status, Tegula__Envelope *reply)
{
    submit_call *call = arg;
    member *m = call->set->members[call->current];
    switch (status) {
    case RPC_OK:
        if (reply->body_case == TEGULA__ENVELOPE__BODY_SUBMIT_REPLY && reply->submit_reply) {
            call_finish(call, BATCHER_REPLY, reply->submit_reply, m->url);
        } else {
            log_warn("batcher answered a submission with the wrong message", "url=%s body=%s",
                     m->url, rpc_body_name(reply));
            call_finish(call, BATCHER_FAILED, NULL, m->url);
        }
        rpc_envelope_free(reply);
        return;
    case RPC_TIMEOUT:
        call_finish(call, BATCHER_TIMEOUT, NULL, m->url);
        return;
    case RPC_UNREACHABLE:
        if (!ring_is_down(call->set->ring, call->current))
            log_warn("batcher unreachable; failing over", "url=%s", m->url);
        ring_set_down(call->set->ring, call->current, true);
        call_try_next(call);
        return;
    case RPC_CLOSED:
        call_finish(call, BATCHER_CLOSED, NULL, m->url);
        return;
    default:
        log_warn("submission to a batcher failed", "url=%s status=%s", m->url,
                 rpc_status_name(status));
        call_finish(call, BATCHER_FAILED, NULL, m->url);
        return;
    }
}

static void call_try_next(submit_call *call)
{
    batcher_pool *pool = call->pool;
    pthread_rwlock_rdlock(&pool->closing_lock);
    if (pool->closing) {
        pthread_rwlock_unlock(&pool->closing_lock);
        call_finish(call, BATCHER_CLOSED, NULL, NULL);
        return;
    }
    while (call->next < call->order_count) {
        int64_t left = call->deadline_ms - monotonic_ms();
        if (left < 1)
            break;
        size_t idx = call->order[call->next++];
        member *m = call->set->members[idx];
        /* A member without a connection is skipped while a connected one remains to try. */
        if (!rpc_client_connected(m->client)) {
            bool other_connected = false;
            for (size_t j = call->next; j < call->order_count && !other_connected; j++)
                other_connected = rpc_client_connected(call->set->members[call->order[j]]->client);
            if (other_connected)
                continue;
        }
        call->current = idx;
        rpc_status st = rpc_call(m->client, call->request, (int)left, call_done, call);
        if (st == RPC_OK) {
            pthread_rwlock_unlock(&pool->closing_lock);
            return;
        }
        if (st == RPC_CLOSED) {
            pthread_rwlock_unlock(&pool->closing_lock);
            call_finish(call, BATCHER_CLOSED, NULL, m->url);
            return;
        }
        /* BUSY or INTERNAL: nothing was sent; the next member may take it. */
        log_debug("batcher refused a call; trying the next", "url=%s status=%s", m->url,
                  rpc_status_name(st));
    }
    pthread_rwlock_unlock(&pool->closing_lock);
    call_finish(call, BATCHER_UNAVAILABLE, NULL, NULL);
}

/* When every member is marked down, the marks may just be stale (a batcher restarted since
 * the last probe): the connected members, in rendezvous order, are worth a try. */
static size_t connected_order(const member_set *s, const uint8_t key[32], size_t *out)
{
    uint64_t scores[MAX_ATTEMPTS];
    size_t n = 0;
    for (size_t i = 0; i < s->count; i++) {
        if (!rpc_client_connected(s->members[i]->client))
            continue;
        uint64_t score = ring_score(s->members[i]->url, key, 32);
        /* Insertion into the best-first list, keeping at most MAX_ATTEMPTS. */
        size_t pos = n;
        while (pos > 0 && scores[pos - 1] < score)
            pos--;
        if (pos >= MAX_ATTEMPTS)
            continue;
        size_t last = n < MAX_ATTEMPTS ? n : MAX_ATTEMPTS - 1;
        for (size_t j = last; j > pos; j--) {
            scores[j] = scores[j - 1];
            out[j] = out[j - 1];
        }
        scores[pos] = score;
        out[pos] = i;
        if (n < MAX_ATTEMPTS)
            n++;
    }
    return n;
}

void batcher_pool_submit(batcher_pool *pool, const Tegula__Envelope *request,
                         const uint8_t dedup_key[32], int timeout_ms, batcher_done_fn done,
                         void *arg)
{
    submit_call *call = calloc(1, sizeof *call);
    if (!call) {
        done(arg, BATCHER_FAILED, NULL, "");
        return;
    }
    atomic_fetch_add(&pool->calls, 1);
    call->pool = pool;
    call->set = set_acquire(pool);
    call->request = request;
    call->done = done;
    call->arg = arg;
    call->deadline_ms = monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 1);
    /* Clients are only touched while the pool is not closing. */
    pthread_rwlock_rdlock(&pool->closing_lock);
    if (call->set && !pool->closing) {
        call->order_count = ring_order(call->set->ring, dedup_key, 32, call->order, MAX_ATTEMPTS);
        if (call->order_count == 0)
            call->order_count = connected_order(call->set, dedup_key, call->order);
    }
    pthread_rwlock_unlock(&pool->closing_lock);
    call_try_next(call);
}
