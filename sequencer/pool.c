/* pool: batches between rounds, their idempotency records and their replies. */
#include "pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

typedef enum record_state {
    RECORD_POOLED,
    RECORD_SEQUENCING,
    RECORD_ANSWERED,
} record_state;

typedef struct waiter {
    pool_reply_fn fn;
    void *ctx;
} waiter;

typedef struct pool_record {
    struct pool_record *hash_next; /* chain in the (batcher_id, batch_seq) table */
    struct pool_record *list_next; /* pooled list, or answered FIFO */
    char *batcher_id;
    uint64_t batch_seq;
    uint64_t hash;
    record_state state;
    const Tegula__Batch *batch; /* NULL once released */
    pool_release_fn release;
    void *release_ctx;
    waiter *waiters;
    size_t waiter_count, waiter_cap;
    pool_result *results; /* one per batch entry */
    size_t count;
    uint8_t (*issuer_fps)[32]; /* one per batch issuer */
    size_t admitted;
    size_t bytes;
    uint64_t answered_round;
} pool_record;

struct pool {
    pthread_mutex_t mutex;
    pool_config cfg;
    bool closed;
    pool_record **buckets;
    size_t bucket_count; /* power of two */
    size_t record_count;
    pool_record *pooled_head, *pooled_tail;
    size_t pooled_entries, pooled_bytes, pooled_batches;
    pool_record *answered_head, *answered_tail;
    size_t answered_count;
    uint64_t round_number;
    uint64_t overloaded_total, rejected_total, duplicate_total;
};

/* FNV-1a over the id and the sequence number: not adversarial input (batchers are ours). */
static uint64_t record_hash(const char *id, uint64_t seq)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    for (int i = 0; i < 8; i++)
        h = (h ^ ((seq >> (8 * i)) & 0xff)) * 0x100000001b3ULL;
    return h;
}

pool *pool_new(const pool_config *config)
{
    pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->cfg = *config;
    if (p->cfg.byte_limit == 0)
        p->cfg.byte_limit = POOL_DEFAULT_MAX_BYTES;
    if (p->cfg.keep_rounds == 0)
        p->cfg.keep_rounds = POOL_DEFAULT_KEEP_ROUNDS;
    p->bucket_count = 256;
    p->buckets = calloc(p->bucket_count, sizeof *p->buckets);
    if (p->buckets == NULL || pthread_mutex_init(&p->mutex, NULL) != 0) {
        free(p->buckets);
        free(p);
        return NULL;
    }
    return p;
}

static pool_record *table_find(pool *p, const char *id, uint64_t seq, uint64_t hash)
{
    for (pool_record *r = p->buckets[hash & (p->bucket_count - 1)]; r; r = r->hash_next)
        if (r->hash == hash && r->batch_seq == seq && strcmp(r->batcher_id, id) == 0)
            return r;
    return NULL;
}

static void table_insert(pool *p, pool_record *rec)
{
    if (p->record_count >= p->bucket_count) {
        size_t n = p->bucket_count * 2;
        pool_record **nb = calloc(n, sizeof *nb);
        if (nb != NULL) { /* without memory the chains just get longer */
            for (size_t i = 0; i < p->bucket_count; i++) {
                pool_record *r = p->buckets[i];
                while (r) {
                    pool_record *next = r->hash_next;
                    r->hash_next = nb[r->hash & (n - 1)];
                    nb[r->hash & (n - 1)] = r;
                    r = next;
                }
            }
            free(p->buckets);
            p->buckets = nb;
            p->bucket_count = n;
        }
    }
    pool_record **slot = &p->buckets[rec->hash & (p->bucket_count - 1)];
    rec->hash_next = *slot;
    *slot = rec;
    p->record_count++;
}

static void table_remove(pool *p, pool_record *rec)
{
    pool_record **slot = &p->buckets[rec->hash & (p->bucket_count - 1)];
    while (*slot && *slot != rec)
        slot = &(*slot)->hash_next;
    if (*slot) {
        *slot = rec->hash_next;
        p->record_count--;
    }
}

static void record_release_batch(pool_record *rec)
{
    if (rec->batch != NULL && rec->release != NULL)
        rec->release(rec->release_ctx);
    rec->batch = NULL;
}

static void record_free(pool_record *rec)
{
    if (rec == NULL)
        return;
    free(rec->batcher_id);
    free(rec->waiters);
    free(rec->results);
    free(rec->issuer_fps);
    free(rec);
}

static int waiter_add(pool_record *rec, pool_reply_fn fn, void *ctx)
{
    if (rec->waiter_count == rec->waiter_cap) {
        size_t n = rec->waiter_cap ? rec->waiter_cap * 2 : 2;
        waiter *w = realloc(rec->waiters, n * sizeof *w);
        if (w == NULL)
            return -1;
        rec->waiters = w;
        rec->waiter_cap = n;
    }
    rec->waiters[rec->waiter_count++] = (waiter){fn, ctx};
    return 0;
}

static void reply_all(const pool_request *req, uint8_t status)
{
    size_t n = req->batch->n_entries;
    pool_result *res = calloc(n ? n : 1, sizeof *res);
    if (res != NULL) {
        for (size_t i = 0; i < n; i++)
            res[i].status = status;
        req->reply(req->reply_ctx, req->batch->batch_seq, res, n);
    } else {
        /* Out of memory: a reply with no results still tells the batcher to fail them all. */
        req->reply(req->reply_ctx, req->batch->batch_seq, NULL, 0);
    }
    free(res);
}

static int compare_fp(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

static bool valid_len(size_t len, size_t max)
{
    return len >= 1 && len <= max;
}

/* Per-entry checks, so that ct_leaf_hash and ct_tile_leaf_encode cannot fail in a round. */
static bool entry_valid(const Tegula__BatchEntry *e, uint8_t (*sorted_fps)[32], size_t n_fps)
{
    if (e == NULL || !valid_len(e->cert_or_tbs.len, CT_MAX_CERT_LEN))
        return false;
    if (e->entry_type == TEGULA__ENTRY_TYPE__ENTRY_X509) {
        if (e->issuer_key_hash.len != 0 || e->precert.len != 0)
            return false;
    } else if (e->entry_type == TEGULA__ENTRY_TYPE__ENTRY_PRECERT) {
        if (e->issuer_key_hash.len != CT_HASH_LEN || !valid_len(e->precert.len, CT_MAX_CERT_LEN))
            return false;
    } else {
        return false;
    }
    /* Every fingerprint must resolve at issuer/<hex>, so its issuer must travel with it. */
    if (!valid_len(e->n_chain_fps, CT_MAX_FINGERPRINTS))
        return false;
    for (size_t i = 0; i < e->n_chain_fps; i++) {
        if (e->chain_fps[i].len != 32 ||
            bsearch(e->chain_fps[i].data, sorted_fps, n_fps, 32, compare_fp) == NULL)
            return false;
    }
    return true;
}

static size_t entry_bytes(const Tegula__BatchEntry *e)
{
    return 128 + e->cert_or_tbs.len + e->precert.len + 32 * e->n_chain_fps;
}

/* A request for a batch the pool already knows; called with the lock held, returns with it
 * released. Pooled or being sequenced: wait for the same reply. Answered: the same results
 * now (copied, as the record may expire once the lock is dropped). */
static void join_duplicate(pool *p, pool_record *dup, const pool_request *req)
{
    p->duplicate_total++;
    if (dup->state != RECORD_ANSWERED) {
        int rc = waiter_add(dup, req->reply, req->reply_ctx);
        pthread_mutex_unlock(&p->mutex);
        if (rc != 0)
            reply_all(req, TEGULA__STATUS__STATUS_UNAVAILABLE);
        return;
    }
    size_t n = dup->count;
    pool_result *copy = malloc((n ? n : 1) * sizeof *copy);
    if (copy != NULL)
        memcpy(copy, dup->results, n * sizeof *copy);
    pthread_mutex_unlock(&p->mutex);
    if (copy != NULL)
        req->reply(req->reply_ctx, req->batch->batch_seq, copy, n);
    else
        reply_all(req, TEGULA__STATUS__STATUS_UNAVAILABLE);
    free(copy);
}

void pool_add(pool *p, const pool_request *req)
{
    const Tegula__Batch *b = req->batch;
    const char *id = b->batcher_id ? b->batcher_id : "";
    size_t id_len = strlen(id);
    bool batch_ok = id_len >= 1 && id_len <= POOL_MAX_BATCHER_ID &&
                    b->n_entries <= POOL_MAX_BATCH_ENTRIES &&
                    b->n_issuers <= POOL_MAX_BATCH_ISSUERS;
    for (size_t i = 0; batch_ok && i < b->n_issuers; i++)
        batch_ok = valid_len(b->issuers[i].len, CT_MAX_CERT_LEN);
    if (!batch_ok) {
        pthread_mutex_lock(&p->mutex);
        p->rejected_total += b->n_entries;
        pthread_mutex_unlock(&p->mutex);
        reply_all(req, TEGULA__STATUS__STATUS_BAD_REQUEST);
        goto release;
    }

    uint64_t hash = record_hash(id, b->batch_seq);
    /* Duplicates first, before spending hashes on validation. */
    pthread_mutex_lock(&p->mutex);
    if (p->closed) {
        pthread_mutex_unlock(&p->mutex);
        reply_all(req, TEGULA__STATUS__STATUS_UNAVAILABLE);
        goto release;
    }
    pool_record *dup = table_find(p, id, b->batch_seq, hash);
    if (dup != NULL) {
        join_duplicate(p, dup, req); /* unlocks */
        goto release;
    }
    pthread_mutex_unlock(&p->mutex);

    pool_record *rec = calloc(1, sizeof *rec);
    if (rec == NULL)
        goto unavailable;
    rec->batcher_id = strdup(id);
    rec->results = calloc(b->n_entries ? b->n_entries : 1, sizeof *rec->results);
    rec->issuer_fps = malloc((b->n_issuers ? b->n_issuers : 1) * 32);
    if (rec->batcher_id == NULL || rec->results == NULL || rec->issuer_fps == NULL) {
        record_free(rec);
        goto unavailable;
    }
    rec->batch_seq = b->batch_seq;
    rec->hash = hash;
    rec->count = b->n_entries;
    for (size_t i = 0; i < b->n_issuers; i++) {
        sha256(b->issuers[i].data, b->issuers[i].len, rec->issuer_fps[i]);
        rec->bytes += b->issuers[i].len;
    }
    uint8_t (*sorted)[32] = malloc((b->n_issuers ? b->n_issuers : 1) * 32);
    if (sorted == NULL) {
        record_free(rec);
        goto unavailable;
    }
    memcpy(sorted, rec->issuer_fps, b->n_issuers * 32);
    qsort(sorted, b->n_issuers, 32, compare_fp);
    size_t rejected = 0;
    for (size_t i = 0; i < b->n_entries; i++) {
        if (entry_valid(b->entries[i], sorted, b->n_issuers)) {
            rec->results[i].status = POOL_STATUS_PENDING;
        } else {
            rec->results[i].status = TEGULA__STATUS__STATUS_BAD_REQUEST;
            rejected++;
        }
    }
    free(sorted);

    pthread_mutex_lock(&p->mutex);
    p->rejected_total += rejected;
    if (p->closed) {
        pthread_mutex_unlock(&p->mutex);
        record_free(rec);
        reply_all(req, TEGULA__STATUS__STATUS_UNAVAILABLE);
        goto release;
    }
    dup = table_find(p, id, b->batch_seq, hash);
    if (dup != NULL) {
        /* A copy of this batch arrived while this one was being validated. */
        record_free(rec);
        join_duplicate(p, dup, req); /* unlocks */
        goto release;
    }
    /* Admit entries in order until a bound is hit; the rest of the batch is OVERLOADED. */
    size_t overloaded = 0;
    bool full = false;
    for (size_t i = 0; i < b->n_entries; i++) {
        if (rec->results[i].status != POOL_STATUS_PENDING)
            continue;
        size_t eb = entry_bytes(b->entries[i]);
        if (!full && (p->pooled_entries + rec->admitted >= p->cfg.entry_limit ||
                      p->pooled_bytes + rec->bytes + eb > p->cfg.byte_limit))
            full = true;
        if (full) {
            rec->results[i].status = TEGULA__STATUS__STATUS_OVERLOADED;
            overloaded++;
            continue;
        }
        rec->admitted++;
        rec->bytes += eb;
    }
    p->overloaded_total += overloaded;
    if (rec->admitted == 0) {
        /* Nothing to sequence: answer now, remember nothing (no entry was stored). */
        pthread_mutex_unlock(&p->mutex);
        req->reply(req->reply_ctx, b->batch_seq, rec->results, rec->count);
        record_free(rec);
        goto release;
    }
    rec->state = RECORD_POOLED;
    rec->batch = b;
    rec->release = req->release;
    rec->release_ctx = req->release_ctx;
    if (waiter_add(rec, req->reply, req->reply_ctx) != 0) {
        pthread_mutex_unlock(&p->mutex);
        record_free(rec);
        goto unavailable;
    }
    table_insert(p, rec);
    if (p->pooled_tail)
        p->pooled_tail->list_next = rec;
    else
        p->pooled_head = rec;
    p->pooled_tail = rec;
    p->pooled_entries += rec->admitted;
    p->pooled_bytes += rec->bytes;
    p->pooled_batches++;
    pthread_mutex_unlock(&p->mutex);
    return; /* the record now owns the batch */

unavailable:
    reply_all(req, TEGULA__STATUS__STATUS_UNAVAILABLE);
release:
    if (req->release != NULL)
        req->release(req->release_ctx);
}

void pool_close(pool *p)
{
    pthread_mutex_lock(&p->mutex);
    p->closed = true;
    pthread_mutex_unlock(&p->mutex);
}

static int round_reserve(pool_round *r, size_t entries, size_t issuers, size_t records,
                         size_t fingerprints)
{
    if (fingerprints > r->fingerprint_cap) {
        uint8_t *f = realloc(r->fingerprints, fingerprints * 32);
        if (f == NULL)
            return -1;
        r->fingerprints = f;
        r->fingerprint_cap = fingerprints;
    }
    ct_entry *e = realloc(r->entries, (entries ? entries : 1) * sizeof *e);
    if (e == NULL)
        return -1;
    r->entries = e;
    pool_result **res = realloc(r->results, (entries ? entries : 1) * sizeof *res);
    if (res == NULL)
        return -1;
    r->results = res;
    pool_issuer *is = realloc(r->issuers, (issuers ? issuers : 1) * sizeof *is);
    if (is == NULL)
        return -1;
    r->issuers = is;
    if (records > r->record_cap) {
        pool_record **recs = realloc(r->records, records * sizeof *recs);
        if (recs == NULL)
            return -1;
        r->records = recs;
        r->record_cap = records;
    }
    return 0;
}

static void entry_view(const Tegula__BatchEntry *be, ct_entry *e, uint8_t *fps)
{
    memset(e, 0, sizeof *e);
    e->entry_type = (uint16_t)be->entry_type;
    if (be->entry_type == TEGULA__ENTRY_TYPE__ENTRY_PRECERT) {
        memcpy(e->issuer_key_hash, be->issuer_key_hash.data, CT_HASH_LEN);
        e->pre_certificate = be->precert.data;
        e->pre_certificate_len = be->precert.len;
    }
    e->cert_or_tbs = be->cert_or_tbs.data;
    e->cert_or_tbs_len = be->cert_or_tbs.len;
    /* Fingerprints are separate fields on the wire; ct_entry wants them contiguous. */
    for (size_t i = 0; i < be->n_chain_fps; i++)
        memcpy(fps + 32 * i, be->chain_fps[i].data, 32);
    e->fingerprints = fps;
    e->fingerprint_count = be->n_chain_fps;
}

int pool_take(pool *p, pool_round *r, error *err)
{
    pthread_mutex_lock(&p->mutex);
    pool_record *head = p->pooled_head;
    size_t entries = p->pooled_entries, batches = p->pooled_batches;
    size_t issuers = 0, fingerprints = 0;
    for (pool_record *rec = head; rec; rec = rec->list_next) {
        const Tegula__Batch *b = rec->batch;
        issuers += b->n_issuers;
        for (size_t i = 0; i < b->n_entries; i++)
            if (rec->results[i].status == POOL_STATUS_PENDING)
                fingerprints += b->entries[i]->n_chain_fps;
    }
    if (round_reserve(r, entries, issuers, batches, fingerprints) != 0) {
        pthread_mutex_unlock(&p->mutex);
        return error_set(err, "out of memory taking %zu pooled entries", entries);
    }
    for (pool_record *rec = head; rec; rec = rec->list_next)
        rec->state = RECORD_SEQUENCING;
    p->pooled_head = p->pooled_tail = NULL;
    p->pooled_entries = p->pooled_bytes = p->pooled_batches = 0;
    p->round_number++;
    pthread_mutex_unlock(&p->mutex);

    /* Records in SEQUENCING are only touched here and in pool_answer (duplicates only add
     * waiters), so the views can be built without the lock. */
    size_t n = 0, ni = 0, nb = 0, nf = 0;
    for (pool_record *rec = head; rec; rec = rec->list_next) {
        const Tegula__Batch *b = rec->batch;
        r->records[nb++] = rec;
        for (size_t i = 0; i < b->n_entries; i++) {
            if (rec->results[i].status != POOL_STATUS_PENDING)
                continue;
            entry_view(b->entries[i], &r->entries[n], r->fingerprints + 32 * nf);
            nf += b->entries[i]->n_chain_fps;
            r->results[n] = &rec->results[i];
            n++;
        }
        for (size_t i = 0; i < b->n_issuers; i++) {
            memcpy(r->issuers[ni].fingerprint, rec->issuer_fps[i], 32);
            r->issuers[ni].der = b->issuers[i].data;
            r->issuers[ni].len = b->issuers[i].len;
            ni++;
        }
    }
    r->count = n;
    r->issuer_count = ni;
    r->batch_count = nb;
    return 0;
}

void pool_round_finish(pool_round *r, uint8_t status, uint64_t first_index, uint64_t timestamp)
{
    for (size_t i = 0; i < r->count; i++) {
        pool_result *res = r->results[i];
        if (status == TEGULA__STATUS__STATUS_OK)
            *res = (pool_result){status, first_index + i, timestamp};
        else
            *res = (pool_result){status, 0, 0};
    }
}

static void expire_answered(pool *p, pool_record **freed)
{
    while (p->answered_head &&
           p->answered_head->answered_round + p->cfg.keep_rounds <= p->round_number) {
        pool_record *rec = p->answered_head;
        p->answered_head = rec->list_next;
        if (p->answered_head == NULL)
            p->answered_tail = NULL;
        p->answered_count--;
        table_remove(p, rec);
        rec->list_next = *freed;
        *freed = rec;
    }
}

void pool_answer(pool *p, pool_round *r)
{
    /* Any result still pending (a caller that forgot pool_round_finish) fails safe. */
    for (size_t b = 0; b < r->batch_count; b++) {
        pool_record *rec = r->records[b];
        for (size_t i = 0; i < rec->count; i++)
            if (rec->results[i].status == POOL_STATUS_PENDING)
                rec->results[i] = (pool_result){TEGULA__STATUS__STATUS_UNAVAILABLE, 0, 0};
    }
    /* Steal the waiter lists under the lock: after that, duplicates see ANSWERED and copy the
     * results themselves. */
    waiter **lists = calloc(r->batch_count ? r->batch_count : 1, sizeof *lists);
    size_t *lens = calloc(r->batch_count ? r->batch_count : 1, sizeof *lens);
    pool_record *freed = NULL;
    pthread_mutex_lock(&p->mutex);
    for (size_t b = 0; b < r->batch_count; b++) {
        pool_record *rec = r->records[b];
        rec->state = RECORD_ANSWERED;
        rec->answered_round = p->round_number;
        if (lists != NULL && lens != NULL) {
            lists[b] = rec->waiters;
            lens[b] = rec->waiter_count;
            rec->waiters = NULL;
            rec->waiter_count = rec->waiter_cap = 0;
        }
        rec->list_next = NULL;
        if (p->answered_tail)
            p->answered_tail->list_next = rec;
        else
            p->answered_head = rec;
        p->answered_tail = rec;
        p->answered_count++;
    }
    bool stolen = lists != NULL && lens != NULL;
    if (!stolen) {
        /* Out of memory for the lists: reply while holding the lock instead. */
        for (size_t b = 0; b < r->batch_count; b++) {
            pool_record *rec = r->records[b];
            for (size_t w = 0; w < rec->waiter_count; w++)
                rec->waiters[w].fn(rec->waiters[w].ctx, rec->batch_seq, rec->results,
                                   rec->count);
            free(rec->waiters);
            rec->waiters = NULL;
            rec->waiter_count = rec->waiter_cap = 0;
        }
    }
    pthread_mutex_unlock(&p->mutex);

    /* Results of this round's records stay put until they expire, which only happens below
     * (on this thread), so replying from them without the lock is safe. */
    for (size_t b = 0; b < r->batch_count; b++) {
        pool_record *rec = r->records[b];
        if (stolen) {
            for (size_t w = 0; w < lens[b]; w++)
                lists[b][w].fn(lists[b][w].ctx, rec->batch_seq, rec->results, rec->count);
            free(lists[b]);
        }
        record_release_batch(rec);
    }
    free(lists);
    free(lens);

    pthread_mutex_lock(&p->mutex);
    expire_answered(p, &freed);
    pthread_mutex_unlock(&p->mutex);
    while (freed) {
        pool_record *next = freed->list_next;
        record_free(freed);
        freed = next;
    }
    r->count = r->issuer_count = r->batch_count = 0;
}

void pool_round_free(pool_round *r)
{
    free(r->entries);
    free(r->results);
    free(r->issuers);
    free(r->records);
    free(r->fingerprints);
    memset(r, 0, sizeof *r);
}

void pool_free(pool *p)
{
    if (p == NULL)
        return;
    pool_round r = {0};
    error err;
    /* Whatever is still pooled fails; what a round holds is that round's to answer. */
    if (pool_take(p, &r, &err) == 0) {
        pool_round_finish(&r, TEGULA__STATUS__STATUS_UNAVAILABLE, 0, 0);
        pool_answer(p, &r);
    }
    pool_round_free(&r);
    for (size_t i = 0; i < p->bucket_count; i++) {
        pool_record *rec = p->buckets[i];
        while (rec) {
            pool_record *next = rec->hash_next;
            record_release_batch(rec);
            record_free(rec);
            rec = next;
        }
    }
    free(p->buckets);
    pthread_mutex_destroy(&p->mutex);
    free(p);
}

void pool_stats_read(pool *p, pool_stats *out)
{
    pthread_mutex_lock(&p->mutex);
    out->pooled_entries = p->pooled_entries;
    out->pooled_bytes = p->pooled_bytes;
    out->pooled_batches = p->pooled_batches;
    out->remembered_batches = p->answered_count;
    out->overloaded_entries = p->overloaded_total;
    out->rejected_entries = p->rejected_total;
    out->duplicate_batches = p->duplicate_total;
    pthread_mutex_unlock(&p->mutex);
}
