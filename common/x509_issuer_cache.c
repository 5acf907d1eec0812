#include "x509_issuer_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

x509_issuer *x509_issuer_new(void)
{
    x509_issuer *issuer = calloc(1, sizeof *issuer);
    if (issuer)
        atomic_init(&issuer->refs, 1);
    return issuer;
}

x509_issuer *x509_issuer_ref(x509_issuer *issuer)
{
    atomic_fetch_add_explicit(&issuer->refs, 1, memory_order_relaxed);
    return issuer;
}

void x509_issuer_unref(x509_issuer *issuer)
{
    if (!issuer)
        return;
    /* Release/acquire so the freeing thread sees every other holder's last use. */
    if (atomic_fetch_sub_explicit(&issuer->refs, 1, memory_order_acq_rel) != 1)
        return;
    X509_free(issuer->cert);
    free(issuer->subject);
    free(issuer);
}

/* ------------------------------------------------------------------------------------------ */

#define ISSUER_WAYS 4
#define ISSUER_LOCK_STRIPES 64

typedef struct issuer_slot {
    x509_issuer *issuer; /* NULL: free */
    uint32_t last_used;
} issuer_slot;

typedef struct issuer_set {
    uint32_t clock;
    issuer_slot way[ISSUER_WAYS];
} issuer_set;

struct x509_issuer_cache {
    issuer_set *sets;
    size_t set_count;    /* power of two */
    size_t stripe_count;
    pthread_mutex_t *stripes;
    atomic_size_t entries;
    atomic_uint_fast64_t hits;
    atomic_uint_fast64_t misses;
    atomic_uint_fast64_t evictions;
};

x509_issuer_cache *x509_issuer_cache_new(size_t capacity)
{
    if (capacity == 0)
        capacity = X509_ISSUER_CACHE_DEFAULT;
    if (capacity > X509_ISSUER_CACHE_MAX)
        capacity = X509_ISSUER_CACHE_MAX;
    x509_issuer_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    size_t sets = 1;
    while (sets * ISSUER_WAYS < capacity)
        sets *= 2;
    c->set_count = sets;
    c->stripe_count = sets < ISSUER_LOCK_STRIPES ? sets : ISSUER_LOCK_STRIPES;
    c->sets = calloc(sets, sizeof *c->sets);
    c->stripes = calloc(c->stripe_count, sizeof *c->stripes);
    if (!c->sets || !c->stripes) {
        free(c->sets);
        free(c->stripes);
        free(c);
        return NULL;
    }
    for (size_t i = 0; i < c->stripe_count; i++)
        pthread_mutex_init(&c->stripes[i], NULL);
    atomic_init(&c->entries, 0);
    atomic_init(&c->hits, 0);
    atomic_init(&c->misses, 0);
    atomic_init(&c->evictions, 0);
    return c;
}

void x509_issuer_cache_free(x509_issuer_cache *c)
{
    if (!c)
        return;
    for (size_t s = 0; s < c->set_count; s++)
        for (int i = 0; i < ISSUER_WAYS; i++)
            x509_issuer_unref(c->sets[s].way[i].issuer);
    for (size_t i = 0; i < c->stripe_count; i++)
        pthread_mutex_destroy(&c->stripes[i]);
    free(c->stripes);
    free(c->sets);
    free(c);
}

/* The fingerprint is a hash already: its first bytes spread sets evenly. */
static size_t set_index(const x509_issuer_cache *c, const uint8_t *fp)
{
    uint64_t h;
    memcpy(&h, fp, sizeof h);
    return (size_t)(h & (c->set_count - 1));
}

static bool slot_matches(const issuer_slot *slot, const uint8_t *fp, size_t der_len)
{
    return slot->issuer && slot->issuer->der_len == der_len &&
           memcmp(slot->issuer->fingerprint, fp, SHA256_LEN) == 0;
}

x509_issuer *x509_issuer_cache_get(x509_issuer_cache *c, const uint8_t fp[SHA256_LEN],
                                   size_t der_len)
{
    size_t s = set_index(c, fp);
    issuer_set *set = &c->sets[s];
    x509_issuer *found = NULL;
    pthread_mutex_t *lock = &c->stripes[s % c->stripe_count];
    pthread_mutex_lock(lock);
    for (int i = 0; i < ISSUER_WAYS; i++) {
        issuer_slot *slot = &set->way[i];
        if (slot_matches(slot, fp, der_len)) {
            slot->last_used = ++set->clock;
            /* Taken under the lock, so an eviction cannot free it between lookup and ref. */
            found = x509_issuer_ref(slot->issuer);
            break;
        }
    }
    pthread_mutex_unlock(lock);
    atomic_fetch_add_explicit(found ? &c->hits : &c->misses, 1, memory_order_relaxed);
    return found;
}

void x509_issuer_cache_put(x509_issuer_cache *c, x509_issuer *issuer)
{
    size_t s = set_index(c, issuer->fingerprint);
    issuer_set *set = &c->sets[s];
    x509_issuer *evicted = NULL;
    bool stored = false;
    pthread_mutex_t *lock = &c->stripes[s % c->stripe_count];
    pthread_mutex_lock(lock);
    issuer_slot *victim = NULL;
    uint32_t victim_age = 0;
    for (int i = 0; i < ISSUER_WAYS; i++) {
        issuer_slot *slot = &set->way[i];
        if (!slot->issuer) {
            if (!victim || victim->issuer)
                victim = slot;
            continue;
        }
        if (slot_matches(slot, issuer->fingerprint, issuer->der_len))
            goto unlock; /* another request published the same certificate first */
        if (victim && !victim->issuer)
            continue;
        /* Unsigned difference from the clock ages entries correctly across wrap-around. */
        uint32_t age = set->clock - slot->last_used;
        if (!victim || age > victim_age) {
            victim = slot;
            victim_age = age;
        }
    }
    evicted = victim->issuer;
    victim->issuer = x509_issuer_ref(issuer);
    victim->last_used = ++set->clock;
    stored = true;
unlock:
    pthread_mutex_unlock(lock);
    if (evicted) {
        atomic_fetch_add_explicit(&c->evictions, 1, memory_order_relaxed);
        /* Freed outside the lock: X509_free is not free. */
        x509_issuer_unref(evicted);
    } else if (stored) {
        atomic_fetch_add_explicit(&c->entries, 1, memory_order_relaxed);
    }
}

void x509_issuer_cache_stats_get(x509_issuer_cache *c, x509_issuer_cache_stats *out)
{
    out->hits = atomic_load(&c->hits);
    out->misses = atomic_load(&c->misses);
    out->evictions = atomic_load(&c->evictions);
    out->entries = atomic_load(&c->entries);
    out->capacity = c->set_count * ISSUER_WAYS;
}
