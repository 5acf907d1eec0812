#include "batching.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ct.h"
#include "log.h"
#include "rpc.h"
#include "sha256.h"
#include "tls_codec.h"

#define STATUS_COUNT 5 /* tegula.Status values 0..4 */
#define SUBMIT_RESULT_NAMES {"ok", "overloaded", "unavailable", "bad_request", "internal"}
/* How long the log thread sleeps when it has nothing to do; only bounds how late it notices
 * a lost wake-up, which cannot happen (every change it waits for signals it). */
#define IDLE_SLEEP_MS 1000

/* One unique key in flight: the submission's fields (copied into `arena`) and every token
 * waiting for its result. */
typedef struct entry {
    struct entry *map_next;
    uint8_t key[DEDUP_KEY_LEN];
    Tegula__EntryType type;
    ProtobufCBinaryData cert_or_tbs, issuer_key_hash, precert;
    size_t issuer_count;
    ProtobufCBinaryData *fps;     /* issuer_count fingerprints, in the arena */
    ProtobufCBinaryData *issuers; /* issuer_count DERs, in the arena */
    size_t bytes;                 /* what the entry adds to an encoded Batch, about */
    void **waiters;
    size_t waiter_count, waiter_cap;
    void *inline_waiter; /* most entries have one waiter: no second allocation */
    /* Result, set under the log mutex. done: answered OK and not yet in RocksDB. */
    bool done;
    Tegula__Status status;
    uint64_t leaf_index, timestamp;
    alignas(max_align_t) uint8_t arena[];
} entry;

/* Chained hash table keyed by the dedup key (a SHA-256, so its first bytes are uniform). */
typedef struct entry_map {
    entry **slots;
    size_t mask;
    size_t count;
} entry_map;

typedef struct log_state log_state;

typedef struct batch {
    struct batch *next; /* in the log's done list */
    log_state *log;
    uint64_t seq;
    entry **entries;
    size_t count, cap;
    /* Distinct issuers of the batch (views into entries' arenas) and an open-addressing set
     * of their fingerprints (slot = issuer index + 1, 0 = empty). */
    ProtobufCBinaryData *issuers;
    const uint8_t **issuer_fps;
    size_t issuer_count, issuer_cap;
    uint32_t *fp_slots;
    size_t fp_mask;
    size_t bytes;
    int64_t opened_ms; /* monotonic */
    int64_t sent_ns;   /* monotonic */
} batch;

struct log_state {
    batcher *owner;
    const config_log *cfg;
    bool active;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* the log thread: a batch opened, a reply to persist, stop */
    pthread_cond_t idle; /* drain: in-flight work finished */
    entry_map map;
    batch *open;
    size_t pending;  /* unique entries accepted and not yet finished */
    size_t inflight; /* batches detached and not yet finished */
    size_t senders;  /* threads between detaching a batch and the end of send_batch */
    batch *done_head, *done_tail;
    /* Bumped after entries leave the map because their records are in RocksDB: a submitter
     * that missed RocksDB before such a removal must look again (see batcher_submit). */
    _Atomic uint64_t removals;
    bool stopping, exit_thread, thread_started;
    pthread_t thread;
    rpc_client *client;

    metrics_counter *m_results[STATUS_COUNT];
    metrics_counter *m_hits_store, *m_hits_inflight;
    metrics_counter *m_batches_sent, *m_batches_ok, *m_batches_failed;
    metrics_counter *m_store_errors;
    metrics_histogram *m_batch_entries, *m_seq_latency;
    metrics_gauge *m_pending;
};

struct batcher {
    const config *cfg;
    char *id;
    dedup_store *store;
    batcher_reply_fn reply;
    void *reply_arg;
    log_state *logs;
    size_t log_count;
    _Atomic bool draining;
    bool drained;
    /* Held by batcher_ready while it looks at the clients, so drain never frees one under it. */
    pthread_mutex_t ready_mu;
    _Atomic uint64_t last_seq;
    _Atomic uint64_t batches_sent;
    metrics_counter *m_unknown_log[STATUS_COUNT];
};

/* ---- time ---- */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t mono_ms(void)
{
    return mono_ns() / 1000000;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void cond_wait_until_ms(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline_ms)
{
    struct timespec ts = {.tv_sec = deadline_ms / 1000, .tv_nsec = (deadline_ms % 1000) * 1000000};
    pthread_cond_timedwait(c, m, &ts);
}

static int cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return -1;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

/* ---- answers ---- */

static void answer(batcher *b, log_state *ls, void *token, Tegula__Status status,
                   uint64_t leaf_index, uint64_t timestamp, const char *message)
{
    if ((unsigned)status < STATUS_COUNT)
        metrics_counter_inc(ls ? ls->m_results[status] : b->m_unknown_log[status]);
    batcher_result r = {status, leaf_index, timestamp, message ? message : ""};
    b->reply(b->reply_arg, token, &r);
}

static Tegula__Status known_status(Tegula__Status s)
{
    return (unsigned)s < STATUS_COUNT ? s : TEGULA__STATUS__STATUS_INTERNAL;
}

/* ---- entries and the map ---- */

static entry *entry_new(const Tegula__SubmitRequest *r, void *token)
{
    size_t n = r->n_chain_fps;
    size_t size = sizeof(entry) + 2 * n * sizeof(ProtobufCBinaryData) + r->cert_or_tbs.len +
                  r->issuer_key_hash.len + r->precert.len;
    for (size_t i = 0; i < n; i++)
        size += r->chain_fps[i].len + r->issuers[i].len;
    entry *e = malloc(size);
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    memcpy(e->key, r->dedup_key.data, DEDUP_KEY_LEN);
    e->type = r->entry_type;
    e->issuer_count = n;
    e->fps = (ProtobufCBinaryData *)e->arena;
    e->issuers = e->fps + n;
    uint8_t *p = (uint8_t *)(e->issuers + n);
#define COPY_BYTES(dst, src)                                                                  \
    do {                                                                                      \
        (dst).len = (src).len;                                                                \
        (dst).data = p;                                                                       \
        if ((src).len)                                                                        \
            memcpy(p, (src).data, (src).len);                                                 \
        p += (src).len;                                                                       \
    } while (0)
    COPY_BYTES(e->cert_or_tbs, r->cert_or_tbs);
    COPY_BYTES(e->issuer_key_hash, r->issuer_key_hash);
    COPY_BYTES(e->precert, r->precert);
    for (size_t i = 0; i < n; i++) {
        COPY_BYTES(e->fps[i], r->chain_fps[i]);
        COPY_BYTES(e->issuers[i], r->issuers[i]);
    }
#undef COPY_BYTES
    e->bytes = 64 + r->cert_or_tbs.len + r->issuer_key_hash.len + r->precert.len + 34 * n;
    e->waiters = &e->inline_waiter;
    e->waiter_cap = 1;
    e->waiters[0] = token;
    e->waiter_count = 1;
    return e;
}

static void entry_free(entry *e)
{
    if (e->waiters != &e->inline_waiter)
        free(e->waiters);
    free(e);
}

static int entry_add_waiter(entry *e, void *token)
{
    if (e->waiter_count == e->waiter_cap) {
        size_t cap = e->waiter_cap * 2;
        void **w = malloc(cap * sizeof *w);
        if (!w)
            return -1;
        memcpy(w, e->waiters, e->waiter_count * sizeof *w);
        if (e->waiters != &e->inline_waiter)
            free(e->waiters);
        e->waiters = w;
        e->waiter_cap = cap;
    }
    e->waiters[e->waiter_count++] = token;
    return 0;
}

static size_t key_slot(const entry_map *m, const uint8_t *key)
{
    return (size_t)be_load(key, 8) & m->mask;
}

static int map_init(entry_map *m)
{
    m->mask = 1023;
    m->count = 0;
    m->slots = calloc(m->mask + 1, sizeof *m->slots);
    return m->slots ? 0 : -1;
}

static entry *map_find(const entry_map *m, const uint8_t *key)
{
    for (entry *e = m->slots[key_slot(m, key)]; e; e = e->map_next)
        if (memcmp(e->key, key, DEDUP_KEY_LEN) == 0)
            return e;
    return NULL;
}

/* Never fails: if the table cannot grow, chains just get longer. */
static void map_insert(entry_map *m, entry *e)
{
    if (m->count > m->mask) {
        size_t new_mask = m->mask * 2 + 1;
        entry **slots = calloc(new_mask + 1, sizeof *slots);
        if (slots) {
            for (size_t i = 0; i <= m->mask; i++) {
                entry *x = m->slots[i];
                while (x) {
                    entry *next = x->map_next;
                    size_t s = (size_t)be_load(x->key, 8) & new_mask;
                    x->map_next = slots[s];
                    slots[s] = x;
                    x = next;
                }
            }
            free(m->slots);
            m->slots = slots;
            m->mask = new_mask;
        }
    }
    size_t s = key_slot(m, e->key);
    e->map_next = m->slots[s];
    m->slots[s] = e;
    m->count++;
}

static void map_remove(entry_map *m, entry *e)
{
    for (entry **pp = &m->slots[key_slot(m, e->key)]; *pp; pp = &(*pp)->map_next) {
        if (*pp == e) {
            *pp = e->map_next;
            e->map_next = NULL;
            m->count--;
            return;
        }
    }
}

/* ---- batches ---- */

static void batch_free(batch *bt)
{
    for (size_t i = 0; i < bt->count; i++)
        entry_free(bt->entries[i]);
    free(bt->entries);
    free(bt->issuers);
    free(bt->issuer_fps);
    free(bt->fp_slots);
    free(bt);
}

static int fp_set_grow(batch *bt)
{
    size_t new_mask = bt->fp_mask ? bt->fp_mask * 2 + 1 : 63;
    uint32_t *slots = calloc(new_mask + 1, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < bt->issuer_count; i++) {
        size_t s = (size_t)be_load(bt->issuer_fps[i], 8) & new_mask;
        while (slots[s])
            s = (s + 1) & new_mask;
        slots[s] = (uint32_t)(i + 1);
    }
    free(bt->fp_slots);
    bt->fp_slots = slots;
    bt->fp_mask = new_mask;
    return 0;
}

/* Makes room for one more entry with `issuers` issuers, so that adding it cannot fail
 * half-way (which would leave the batch pointing into an entry that is then freed). */
static int batch_reserve(batch *bt, size_t issuers)
{
    if (bt->count == bt->cap) {
        size_t cap = bt->cap ? bt->cap * 2 : 64;
        entry **es = realloc(bt->entries, cap * sizeof *es);
        if (!es)
            return -1;
        bt->entries = es;
        bt->cap = cap;
    }
    size_t need = bt->issuer_count + issuers;
    if (need > bt->issuer_cap) {
        size_t cap = bt->issuer_cap ? bt->issuer_cap * 2 : 16;
        while (cap < need)
            cap *= 2;
        ProtobufCBinaryData *iss = realloc(bt->issuers, cap * sizeof *iss);
        if (!iss)
            return -1;
        bt->issuers = iss;
        const uint8_t **fps = realloc(bt->issuer_fps, cap * sizeof *fps);
        if (!fps)
            return -1;
        bt->issuer_fps = fps;
        bt->issuer_cap = cap;
    }
    /* The fingerprint set stays at most half full. */
    while (need * 2 > bt->fp_mask + 1)
        if (fp_set_grow(bt) != 0)
            return -1;
    return 0;
}

/* Adds the issuer unless the batch already carries one with this fingerprint. Room was made
 * by batch_reserve. */
static void batch_add_issuer(batch *bt, const uint8_t *fp, const ProtobufCBinaryData *der)
{
    size_t s = (size_t)be_load(fp, 8) & bt->fp_mask;
    while (bt->fp_slots[s]) {
        if (memcmp(bt->issuer_fps[bt->fp_slots[s] - 1], fp, 32) == 0)
            return;
        s = (s + 1) & bt->fp_mask;
    }
    bt->issuers[bt->issuer_count] = *der;
    bt->issuer_fps[bt->issuer_count] = fp;
    bt->issuer_count++;
    bt->fp_slots[s] = (uint32_t)bt->issuer_count;
    bt->bytes += der->len + 4;
}

/* Appends e to the batch; on failure (out of memory) the batch is unchanged. */
static int batch_add(batch *bt, entry *e)
{
    if (batch_reserve(bt, e->issuer_count) != 0)
        return -1;
    for (size_t i = 0; i < e->issuer_count; i++)
        batch_add_issuer(bt, e->fps[i].data, &e->issuers[i]);
    bt->entries[bt->count++] = e;
    bt->bytes += e->bytes;
    return 0;
}

/* max(previous + 1, wall clock ms): strictly increasing even if the clock steps back. */
static uint64_t next_batch_seq(batcher *b)
{
    uint64_t prev = atomic_load(&b->last_seq);
    for (;;) {
        uint64_t now = wall_ms();
        uint64_t next = now > prev ? now : prev + 1;
        if (atomic_compare_exchange_weak(&b->last_seq, &prev, next))
            return next;
    }
}

/* Under ls->mu: takes the open batch for sending. */
static batch *detach_open_batch(log_state *ls)
{
    batch *bt = ls->open;
    ls->open = NULL;
    bt->seq = next_batch_seq(ls->owner);
    ls->inflight++;
    ls->senders++;
    return bt;
}

static void set_pending_gauge(log_state *ls)
{
    metrics_gauge_set(ls->m_pending, (double)ls->pending);
}

/* The batch failed as a whole: every waiter gets `status`, nothing is written. */
static void batch_fail(log_state *ls, batch *bt, Tegula__Status status, const char *message)
{
    batcher *b = ls->owner;
    pthread_mutex_lock(&ls->mu);
    for (size_t i = 0; i < bt->count; i++)
        map_remove(&ls->map, bt->entries[i]);
    ls->pending -= bt->count;
    set_pending_gauge(ls);
    pthread_mutex_unlock(&ls->mu);
    /* No lock is needed for the waiters: the entries left the map, nobody else sees them. */
    for (size_t i = 0; i < bt->count; i++) {
        entry *e = bt->entries[i];
        for (size_t w = 0; w < e->waiter_count; w++)
            answer(b, ls, e->waiters[w], status, 0, 0, message);
    }
    metrics_counter_inc(ls->m_batches_failed);
    log_warn("batch failed", "log=%s batch_seq=%llu entries=%zu status=%s reason=\"%s\"",
             ls->cfg->name, (unsigned long long)bt->seq, bt->count,
             rpc_proto_status_name(status), message);
    batch_free(bt);
    pthread_mutex_lock(&ls->mu);
    ls->inflight--;
    pthread_cond_broadcast(&ls->idle);
    pthread_mutex_unlock(&ls->mu);
}

/* The sequencer answered every entry: answer the waiters now, persist on the log thread. */
static void batch_complete(log_state *ls, batch *bt, Tegula__EntryResult **results)
{
    batcher *b = ls->owner;
    pthread_mutex_lock(&ls->mu);
    for (size_t i = 0; i < bt->count; i++) {
        entry *e = bt->entries[i];
        e->status = known_status(results[i]->status);
        if (e->status == TEGULA__STATUS__STATUS_OK) {
            e->leaf_index = results[i]->leaf_index;
            e->timestamp = results[i]->timestamp;
            e->done = true; /* stays in the map until its record is in RocksDB */
        } else {
            map_remove(&ls->map, e);
        }
    }
    pthread_mutex_unlock(&ls->mu);
    /* Nobody adds waiters any more: a done entry is answered directly, a failed one is gone. */
    for (size_t i = 0; i < bt->count; i++) {
        entry *e = bt->entries[i];
        char message[64] = "";
        if (e->status != TEGULA__STATUS__STATUS_OK)
            snprintf(message, sizeof message, "sequencer answered %s",
                     rpc_proto_status_name(e->status));
        for (size_t w = 0; w < e->waiter_count; w++)
            answer(b, ls, e->waiters[w], e->status, e->leaf_index, e->timestamp, message);
    }
    metrics_counter_inc(ls->m_batches_ok);
    pthread_mutex_lock(&ls->mu);
    bt->next = NULL;
    if (ls->done_tail)
        ls->done_tail->next = bt;
    else
        ls->done_head = bt;
    ls->done_tail = bt;
    pthread_cond_signal(&ls->wake);
    pthread_mutex_unlock(&ls->mu);
}

/* Writes the OK results of an answered batch, then lets its entries go. */
static void batch_persist(log_state *ls, batch *bt)
{
    batcher *b = ls->owner;
    dedup_record stack_records[256];
    dedup_record *records = bt->count <= 256 ? stack_records : malloc(bt->count * sizeof *records);
    size_t n = 0;
    if (records) {
        for (size_t i = 0; i < bt->count; i++) {
            entry *e = bt->entries[i];
            if (e->done)
                records[n++] = (dedup_record){e->key, e->leaf_index, e->timestamp};
        }
        error err = {{0}};
        if (n > 0 && dedup_store_put(b->store, ls->cfg->name, records, n, &err) != 0) {
            metrics_counter_inc(ls->m_store_errors);
            log_warn("dedup records not written; resubmissions may be sequenced again",
                     "log=%s entries=%zu reason=\"%s\"", ls->cfg->name, n, err.msg);
        }
        if (records != stack_records)
            free(records);
    } else {
        metrics_counter_inc(ls->m_store_errors);
        log_warn("dedup records not written: out of memory", "log=%s", ls->cfg->name);
    }
    pthread_mutex_lock(&ls->mu);
    for (size_t i = 0; i < bt->count; i++)
        if (bt->entries[i]->done)
            map_remove(&ls->map, bt->entries[i]);
    atomic_fetch_add(&ls->removals, 1);
    ls->pending -= bt->count;
    set_pending_gauge(ls);
    pthread_mutex_unlock(&ls->mu);
    batch_free(bt);
    pthread_mutex_lock(&ls->mu);
    ls->inflight--;
    pthread_cond_broadcast(&ls->idle);
    pthread_mutex_unlock(&ls->mu);
}

static void batch_done(void *arg, rpc_status status, Tegula__Envelope *reply)
{
    batch *bt = arg;
    log_state *ls = bt->log;
    metrics_histogram_observe(ls->m_seq_latency, (double)(mono_ns() - bt->sent_ns) / 1e9);
    char message[160];
    if (status != RPC_OK) {
        if (atomic_load(&ls->owner->draining))
            snprintf(message, sizeof message, "batcher stopped before sequencer %s answered",
                     ls->cfg->sequencer);
        else
            snprintf(message, sizeof message, "sequencer %s: %s", ls->cfg->sequencer,
                     rpc_status_name(status));
        batch_fail(ls, bt, TEGULA__STATUS__STATUS_UNAVAILABLE, message);
        return;
    }
    const Tegula__BatchReply *br =
        reply->body_case == TEGULA__ENVELOPE__BODY_BATCH_REPLY ? reply->batch_reply : NULL;
    if (!br) {
        snprintf(message, sizeof message, "sequencer answered a %s message",
                 rpc_body_name(reply));
        batch_fail(ls, bt, TEGULA__STATUS__STATUS_INTERNAL, message);
    } else if (br->batch_seq != bt->seq) {
        snprintf(message, sizeof message, "sequencer answered batch_seq %llu for %llu",
                 (unsigned long long)br->batch_seq, (unsigned long long)bt->seq);
        batch_fail(ls, bt, TEGULA__STATUS__STATUS_INTERNAL, message);
    } else if (br->status != TEGULA__STATUS__STATUS_OK) {
        snprintf(message, sizeof message, "sequencer refused the batch: %s %.100s",
                 rpc_proto_status_name(br->status), br->message ? br->message : "");
        batch_fail(ls, bt, known_status(br->status), message);
    } else if (br->n_results != bt->count) {
        snprintf(message, sizeof message, "sequencer answered %zu results for %zu entries",
                 br->n_results, bt->count);
        batch_fail(ls, bt, TEGULA__STATUS__STATUS_INTERNAL, message);
    } else {
        batch_complete(ls, bt, br->results);
    }
    rpc_envelope_free(reply);
}

/* Encodes and sends a detached batch (no lock held). Every path ends the batch: sent (then
 * batch_done runs), or failed here. */
static void send_batch(log_state *ls, batch *bt)
{
    batcher *b = ls->owner;
    size_t count = bt->count;
    Tegula__BatchEntry *entries = calloc(count, sizeof *entries);
    Tegula__BatchEntry **entry_ptrs = calloc(count, sizeof *entry_ptrs);
    rpc_status st = RPC_INTERNAL;
    if (entries && entry_ptrs) {
        for (size_t i = 0; i < count; i++) {
            const entry *e = bt->entries[i];
            tegula__batch_entry__init(&entries[i]);
            entries[i].dedup_key.data = (uint8_t *)e->key;
            entries[i].dedup_key.len = DEDUP_KEY_LEN;
            entries[i].entry_type = e->type;
            entries[i].cert_or_tbs = e->cert_or_tbs;
            entries[i].issuer_key_hash = e->issuer_key_hash;
            entries[i].precert = e->precert;
            entries[i].n_chain_fps = e->issuer_count;
            entries[i].chain_fps = e->fps;
            entry_ptrs[i] = &entries[i];
        }
        Tegula__Batch msg = TEGULA__BATCH__INIT;
        msg.log = ls->cfg->name;
        msg.batcher_id = b->id;
        msg.batch_seq = bt->seq;
        msg.n_entries = count;
        msg.entries = entry_ptrs;
        msg.n_issuers = bt->issuer_count;
        msg.issuers = bt->issuers;
        Tegula__Envelope env = TEGULA__ENVELOPE__INIT;
        env.body_case = TEGULA__ENVELOPE__BODY_BATCH;
        env.batch = &msg;
        metrics_counter_inc(ls->m_batches_sent);
        metrics_histogram_observe(ls->m_batch_entries, (double)count);
        atomic_fetch_add(&b->batches_sent, 1);
        bt->sent_ns = mono_ns();
        /* From here on bt belongs to batch_done, which may already have freed it. */
        st = rpc_call(ls->client, &env, (int)b->cfg->batchers.sequencer_timeout_ms, batch_done,
                      bt);
    }
    free(entries);
    free(entry_ptrs);
    if (st != RPC_OK) {
        char message[160];
        snprintf(message, sizeof message, "sequencer %s: %s", ls->cfg->sequencer,
                 rpc_status_name(st));
        batch_fail(ls, bt, TEGULA__STATUS__STATUS_UNAVAILABLE, message);
    }
    pthread_mutex_lock(&ls->mu);
    ls->senders--;
    pthread_cond_broadcast(&ls->idle);
    pthread_mutex_unlock(&ls->mu);
}

/* ---- the log thread: age flushes and dedup writes ---- */

static void *log_thread(void *arg)
{
    log_state *ls = arg;
    int64_t wait_ms = ls->owner->cfg->batchers.batch_wait_ms;
    pthread_mutex_lock(&ls->mu);
    for (;;) {
        if (ls->done_head) {
            batch *list = ls->done_head;
            ls->done_head = ls->done_tail = NULL;
            pthread_mutex_unlock(&ls->mu);
            while (list) {
                batch *next = list->next;
                batch_persist(ls, list);
                list = next;
            }
            pthread_mutex_lock(&ls->mu);
            continue;
        }
        if (ls->open && (ls->stopping || mono_ms() >= ls->open->opened_ms + wait_ms)) {
            batch *bt = detach_open_batch(ls);
            pthread_mutex_unlock(&ls->mu);
            send_batch(ls, bt);
            pthread_mutex_lock(&ls->mu);
            continue;
        }
        if (ls->exit_thread)
            break;
        int64_t deadline = ls->open ? ls->open->opened_ms + wait_ms : mono_ms() + IDLE_SLEEP_MS;
        cond_wait_until_ms(&ls->wake, &ls->mu, deadline);
    }
    pthread_mutex_unlock(&ls->mu);
    return NULL;
}

/* ---- validation ---- */

static int validate_request(const Tegula__SubmitRequest *r, error *err)
{
    if (r->dedup_key.len != DEDUP_KEY_LEN)
        return error_set(err, "dedup_key is %zu bytes, want %d", r->dedup_key.len,
                         DEDUP_KEY_LEN);
    bool precert = r->entry_type == TEGULA__ENTRY_TYPE__ENTRY_PRECERT;
    if (!precert && r->entry_type != TEGULA__ENTRY_TYPE__ENTRY_X509)
        return error_set(err, "unknown entry_type %d", (int)r->entry_type);
    if (r->cert_or_tbs.len == 0 || r->cert_or_tbs.len > CT_MAX_CERT_LEN)
        return error_set(err, "cert_or_tbs is %zu bytes", r->cert_or_tbs.len);
    if (precert) {
        if (r->issuer_key_hash.len != CT_HASH_LEN)
            return error_set(err, "issuer_key_hash is %zu bytes, want %d",
                             r->issuer_key_hash.len, CT_HASH_LEN);
        if (r->precert.len == 0 || r->precert.len > CT_MAX_CERT_LEN)
            return error_set(err, "precert is %zu bytes", r->precert.len);
    } else if (r->issuer_key_hash.len != 0 || r->precert.len != 0) {
        return error_set(err, "x509 entry with precertificate fields");
    }
    if (r->n_chain_fps != r->n_issuers)
        return error_set(err, "%zu chain fingerprints for %zu issuers", r->n_chain_fps,
                         r->n_issuers);
    if (r->n_chain_fps > BATCHER_MAX_ISSUERS)
        return error_set(err, "%zu issuers, at most %d", r->n_chain_fps, BATCHER_MAX_ISSUERS);
    for (size_t i = 0; i < r->n_chain_fps; i++) {
        if (r->chain_fps[i].len != CT_HASH_LEN)
            return error_set(err, "chain fingerprint %zu is %zu bytes", i, r->chain_fps[i].len);
        if (r->issuers[i].len == 0 || r->issuers[i].len > CT_MAX_CERT_LEN)
            return error_set(err, "issuer %zu is %zu bytes", i, r->issuers[i].len);
        uint8_t fp[CT_HASH_LEN];
        sha256(r->issuers[i].data, r->issuers[i].len, fp);
        if (memcmp(fp, r->chain_fps[i].data, CT_HASH_LEN) != 0)
            return error_set(err, "chain fingerprint %zu is not the SHA-256 of issuer %zu", i,
                             i);
    }
    /* A wrong key would hand this entry's index to another certificate's SCT one day. */
    ct_entry e = {0};
    e.entry_type = precert ? CT_ENTRY_PRECERT : CT_ENTRY_X509;
    if (precert)
        memcpy(e.issuer_key_hash, r->issuer_key_hash.data, CT_HASH_LEN);
    e.cert_or_tbs = r->cert_or_tbs.data;
    e.cert_or_tbs_len = r->cert_or_tbs.len;
    uint8_t key[CT_HASH_LEN];
    if (ct_dedup_key(&e, key) != 0)
        return error_set(err, "entry cannot be encoded");
    if (memcmp(key, r->dedup_key.data, CT_HASH_LEN) != 0)
        return error_set(err, "dedup_key is not the entry's dedup key");
    return 0;
}

/* ---- submissions ---- */

static log_state *find_log(batcher *b, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < b->log_count; i++)
        if (strcmp(b->logs[i].cfg->name, name) == 0)
            return &b->logs[i];
    return NULL;
}

/* 1 hit, 0 miss; a read error counts as a miss (at worst a duplicate entry). */
static int store_lookup(log_state *ls, const uint8_t *key, uint64_t *idx, uint64_t *ts)
{
    error err = {{0}};
    int rc = dedup_store_get(ls->owner->store, ls->cfg->name, key, idx, ts, &err);
    if (rc < 0) {
        metrics_counter_inc(ls->m_store_errors);
        log_warn("dedup lookup failed; treating it as a miss", "log=%s reason=\"%s\"",
                 ls->cfg->name, err.msg);
        return 0;
    }
    return rc;
}

void batcher_submit(batcher *b, const Tegula__SubmitRequest *req, void *token)
{
    char message[192];
    log_state *ls = req ? find_log(b, req->log) : NULL;
    if (!ls) {
        snprintf(message, sizeof message, "unknown log \"%.64s\"", req && req->log ? req->log : "");
        answer(b, NULL, token, TEGULA__STATUS__STATUS_BAD_REQUEST, 0, 0, message);
        return;
    }
    if (!ls->active) {
        snprintf(message, sizeof message, "log %s is read-only", ls->cfg->name);
        answer(b, ls, token, TEGULA__STATUS__STATUS_BAD_REQUEST, 0, 0, message);
        return;
    }
    error err = {{0}};
    if (validate_request(req, &err) != 0) {
        answer(b, ls, token, TEGULA__STATUS__STATUS_BAD_REQUEST, 0, 0, err.msg);
        return;
    }
    if (atomic_load(&b->draining)) {
        answer(b, ls, token, TEGULA__STATUS__STATUS_UNAVAILABLE, 0, 0, "batcher is stopping");
        return;
    }
    const uint8_t *key = req->dedup_key.data;
    uint64_t idx = 0, ts = 0;
    uint64_t removals_seen = atomic_load(&ls->removals);
    if (store_lookup(ls, key, &idx, &ts) == 1) {
        metrics_counter_inc(ls->m_hits_store);
        answer(b, ls, token, TEGULA__STATUS__STATUS_OK, idx, ts, "");
        return;
    }

    pthread_mutex_lock(&ls->mu);
    entry *e = map_find(&ls->map, key);
    if (e) {
        if (e->done) {
            idx = e->leaf_index;
            ts = e->timestamp;
            pthread_mutex_unlock(&ls->mu);
            metrics_counter_inc(ls->m_hits_inflight);
            answer(b, ls, token, TEGULA__STATUS__STATUS_OK, idx, ts, "");
            return;
        }
        int rc = entry_add_waiter(e, token);
        pthread_mutex_unlock(&ls->mu);
        if (rc != 0)
            answer(b, ls, token, TEGULA__STATUS__STATUS_INTERNAL, 0, 0, "out of memory");
        else
            metrics_counter_inc(ls->m_hits_inflight);
        return;
    }
    /* Entries leave the map only after their records are in RocksDB; if one left since our
     * lookup, it may have been this key: look again (rare, and cheap). */
    if (atomic_load(&ls->removals) != removals_seen && store_lookup(ls, key, &idx, &ts) == 1) {
        pthread_mutex_unlock(&ls->mu);
        metrics_counter_inc(ls->m_hits_store);
        answer(b, ls, token, TEGULA__STATUS__STATUS_OK, idx, ts, "");
        return;
    }
    if (ls->stopping) {
        pthread_mutex_unlock(&ls->mu);
        answer(b, ls, token, TEGULA__STATUS__STATUS_UNAVAILABLE, 0, 0, "batcher is stopping");
        return;
    }
    const config_batchers *bc = &b->cfg->batchers;
    size_t limit = bc->queue_limit;
    if (req->low_priority)
        limit = limit / 2 > 0 ? limit / 2 : 1;
    if (ls->pending >= limit) {
        size_t pending = ls->pending;
        pthread_mutex_unlock(&ls->mu);
        snprintf(message, sizeof message, "batcher queue for %s is full (%zu pending)",
                 ls->cfg->name, pending);
        answer(b, ls, token, TEGULA__STATUS__STATUS_OVERLOADED, 0, 0, message);
        return;
    }
    bool opened = false;
    if (!ls->open) {
        ls->open = calloc(1, sizeof *ls->open);
        if (ls->open) {
            ls->open->log = ls;
            ls->open->opened_ms = mono_ms();
            opened = true;
        }
    }
    e = ls->open ? entry_new(req, token) : NULL;
    if (!e || batch_add(ls->open, e) != 0) {
        if (e)
            entry_free(e);
        if (ls->open && ls->open->count == 0) {
            batch_free(ls->open);
            ls->open = NULL;
        }
        pthread_mutex_unlock(&ls->mu);
        answer(b, ls, token, TEGULA__STATUS__STATUS_INTERNAL, 0, 0, "out of memory");
        return;
    }
    map_insert(&ls->map, e);
    ls->pending++;
    set_pending_gauge(ls);
    batch *ready = NULL;
    if (ls->open->count >= bc->batch_max || ls->open->bytes >= BATCHER_MAX_BATCH_BYTES ||
        bc->batch_wait_ms == 0)
        ready = detach_open_batch(ls);
    else if (opened)
        pthread_cond_signal(&ls->wake);
    pthread_mutex_unlock(&ls->mu);
    if (ready)
        send_batch(ls, ready);
}

/* ---- life cycle ---- */

static int register_metrics(batcher *b, log_state *ls, metrics_registry *r, error *err)
{
    static const char *const result_names[] = SUBMIT_RESULT_NAMES;
    static const double size_bounds[] = {1,    2,    4,    8,     16,    32,    64,
                                         128,  256,  512,  1024,  2048,  4096,  8192,
                                         16384, 32768, 65536, 131072};
    const char *name = ls->cfg->name;
    for (int s = 0; s < STATUS_COUNT; s++) {
        metrics_label labels[] = {{"log", name}, {"result", result_names[s]}};
        ls->m_results[s] = metrics_counter_register(
            r, "tegula_batcher_submissions_total", "Submissions answered, by result.", labels,
            2, err);
        if (!ls->m_results[s])
            return -1;
    }
    metrics_label log_only[] = {{"log", name}};
    metrics_label store[] = {{"log", name}, {"source", "store"}};
    metrics_label inflight[] = {{"log", name}, {"source", "inflight"}};
    const char *hits_help = "Submissions answered from the dedup store or joined to an "
                            "in-flight entry.";
    metrics_label ok[] = {{"log", name}, {"result", "ok"}};
    metrics_label failed[] = {{"log", name}, {"result", "failed"}};
    const char *batches_help = "Batches answered by the sequencer (ok) or failed as a whole.";
    if (!(ls->m_hits_store = metrics_counter_register(r, "tegula_batcher_dedup_hits_total",
                                                      hits_help, store, 2, err)) ||
        !(ls->m_hits_inflight = metrics_counter_register(r, "tegula_batcher_dedup_hits_total",
                                                         hits_help, inflight, 2, err)) ||
        !(ls->m_batches_sent = metrics_counter_register(
              r, "tegula_batcher_batches_sent_total", "Batches sent to the sequencer.",
              log_only, 1, err)) ||
        !(ls->m_batches_ok = metrics_counter_register(r, "tegula_batcher_batches_total",
                                                      batches_help, ok, 2, err)) ||
        !(ls->m_batches_failed = metrics_counter_register(r, "tegula_batcher_batches_total",
                                                          batches_help, failed, 2, err)) ||
        !(ls->m_store_errors = metrics_counter_register(
              r, "tegula_batcher_dedup_store_errors_total",
              "Dedup store reads or writes that failed.", log_only, 1, err)) ||
        !(ls->m_batch_entries = metrics_histogram_register(
              r, "tegula_batcher_batch_entries", "Entries per batch sent.", log_only, 1,
              size_bounds, sizeof size_bounds / sizeof size_bounds[0], err)) ||
        !(ls->m_seq_latency = metrics_histogram_register(
              r, "tegula_batcher_sequencer_seconds",
              "Time from sending a batch to its reply (or failure).", log_only, 1,
              metrics_latency_buckets, metrics_latency_bucket_count, err)) ||
        !(ls->m_pending = metrics_gauge_register(
              r, "tegula_batcher_pending", "Entries accepted and not yet finished.", log_only,
              1, err)))
        return -1;
    (void)b;
    return 0;
}

batcher *batcher_start(const batcher_options *opts, error *err)
{
    if (!opts || !opts->cfg || !opts->id || !opts->store || !opts->reply) {
        error_set(err, "batcher_start: missing option");
        return NULL;
    }
    batcher *b = calloc(1, sizeof *b);
    if (!b) {
        error_set(err, "out of memory");
        return NULL;
    }
    b->cfg = opts->cfg;
    b->store = opts->store;
    b->reply = opts->reply;
    b->reply_arg = opts->reply_arg;
    b->id = strdup(opts->id);
    b->logs = calloc(opts->cfg->log_count ? opts->cfg->log_count : 1, sizeof *b->logs);
    atomic_init(&b->draining, false);
    pthread_mutex_init(&b->ready_mu, NULL);
    atomic_init(&b->last_seq, 0);
    atomic_init(&b->batches_sent, 0);
    if (!b->id || !b->logs) {
        error_set(err, "out of memory");
        goto fail;
    }
    if (opts->metrics) {
        static const char *const result_names[] = SUBMIT_RESULT_NAMES;
        for (int s = 0; s < STATUS_COUNT; s++) {
            metrics_label labels[] = {{"log", ""}, {"result", result_names[s]}};
            b->m_unknown_log[s] = metrics_counter_register(
                opts->metrics, "tegula_batcher_submissions_total",
                "Submissions answered, by result.", labels, 2, err);
            if (!b->m_unknown_log[s])
                goto fail;
        }
    }
    for (size_t i = 0; i < opts->cfg->log_count; i++) {
        log_state *ls = &b->logs[i];
        ls->owner = b;
        ls->cfg = &opts->cfg->logs[i];
        ls->active = ls->cfg->status == CONFIG_LOG_ACTIVE;
        atomic_init(&ls->removals, 0);
        if (pthread_mutex_init(&ls->mu, NULL) != 0 || cond_init_monotonic(&ls->wake) != 0 ||
            cond_init_monotonic(&ls->idle) != 0 || map_init(&ls->map) != 0) {
            error_set(err, "out of memory");
            b->log_count = i + 1;
            goto fail;
        }
        b->log_count = i + 1;
        if (opts->metrics && register_metrics(b, ls, opts->metrics, err) != 0)
            goto fail;
        if (!ls->active)
            continue;
        ls->client = rpc_client_open(ls->cfg->sequencer, NULL, err);
        if (!ls->client) {
            error_wrap(err, "sequencer of log %s", ls->cfg->name);
            goto fail;
        }
        if (pthread_create(&ls->thread, NULL, log_thread, ls) != 0) {
            error_set(err, "cannot start the thread of log %s", ls->cfg->name);
            goto fail;
        }
        ls->thread_started = true;
    }
    return b;
fail:
    batcher_free(b);
    return NULL;
}

void batcher_drain(batcher *b, int wait_ms)
{
    if (b->drained)
        return;
    b->drained = true;
    atomic_store(&b->draining, true);
    for (size_t i = 0; i < b->log_count; i++) {
        log_state *ls = &b->logs[i];
        pthread_mutex_lock(&ls->mu);
        ls->stopping = true;
        pthread_cond_signal(&ls->wake);
        pthread_mutex_unlock(&ls->mu);
    }
    /* From here batcher_ready answers without touching the clients. */
    pthread_mutex_lock(&b->ready_mu);
    pthread_mutex_unlock(&b->ready_mu);
    int64_t deadline = mono_ms() + (wait_ms > 0 ? wait_ms : 0);
    for (size_t i = 0; i < b->log_count; i++) {
        log_state *ls = &b->logs[i];
        if (!ls->thread_started)
            continue;
        pthread_mutex_lock(&ls->mu);
        while ((ls->open || ls->inflight > 0) && mono_ms() < deadline)
            cond_wait_until_ms(&ls->idle, &ls->mu, deadline);
        ls->exit_thread = true;
        pthread_cond_signal(&ls->wake);
        pthread_mutex_unlock(&ls->mu);
    }
    for (size_t i = 0; i < b->log_count; i++) {
        log_state *ls = &b->logs[i];
        if (ls->thread_started) {
            pthread_join(ls->thread, NULL);
            ls->thread_started = false;
        }
        /* A submitter may still be handing a full batch to rpc_call. */
        pthread_mutex_lock(&ls->mu);
        while (ls->senders > 0)
            pthread_cond_wait(&ls->idle, &ls->mu);
        pthread_mutex_unlock(&ls->mu);
        /* Fails the calls still waiting (their waiters get UNAVAILABLE); replies that already
         * arrived land on the done list. */
        rpc_client_close(ls->client);
        ls->client = NULL;
        pthread_mutex_lock(&ls->mu);
        batch *list = ls->done_head;
        ls->done_head = ls->done_tail = NULL;
        pthread_mutex_unlock(&ls->mu);
        while (list) {
            batch *next = list->next;
            batch_persist(ls, list);
            list = next;
        }
        if (ls->pending > 0)
            log_warn("entries left after stopping", "log=%s pending=%zu", ls->cfg->name,
                     ls->pending);
    }
}

void batcher_free(batcher *b)
{
    if (!b)
        return;
    batcher_drain(b, 0);
    for (size_t i = 0; i < b->log_count; i++) {
        log_state *ls = &b->logs[i];
        if (ls->open)
            batch_free(ls->open); /* cannot happen after a drain; kept for safety */
        free(ls->map.slots);
        pthread_cond_destroy(&ls->wake);
        pthread_cond_destroy(&ls->idle);
        pthread_mutex_destroy(&ls->mu);
    }
    free(b->logs);
    free(b->id);
    pthread_mutex_destroy(&b->ready_mu);
    free(b);
}

bool batcher_ready(batcher *b, buffer *report)
{
    pthread_mutex_lock(&b->ready_mu);
    bool draining = atomic_load(&b->draining);
    bool ready = !draining;
    for (size_t i = 0; i < b->log_count; i++) {
        log_state *ls = &b->logs[i];
        const char *state;
        if (!ls->active) {
            state = "read-only";
        } else if (!draining && ls->client && rpc_client_connected(ls->client)) {
            state = "connected";
        } else {
            state = "unreachable";
            ready = false;
        }
        if (report)
            buffer_printf(report, "%s %s %s\n", ls->cfg->name, ls->cfg->sequencer, state);
    }
    pthread_mutex_unlock(&b->ready_mu);
    if (report && draining)
        buffer_printf(report, "stopping\n");
    return ready;
}

void batcher_stats_read(batcher *b, batcher_stats *out)
{
    memset(out, 0, sizeof *out);
    out->batches_sent = atomic_load(&b->batches_sent);
    out->last_batch_seq = atomic_load(&b->last_seq);
    for (size_t i = 0; i < b->log_count; i++) {
        log_state *ls = &b->logs[i];
        pthread_mutex_lock(&ls->mu);
        out->pending += ls->pending;
        pthread_mutex_unlock(&ls->mu);
    }
}
