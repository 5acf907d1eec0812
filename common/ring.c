#include "ring.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

typedef struct ring_entry {
    char *name;
    uint64_t k0, k1; /* SipHash key derived from the name */
    atomic_bool down;
} ring_entry;

struct ring {
    size_t count;
    ring_entry *entries;
};

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline uint64_t rotl64(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

/* One SipRound of the four-word state (Aumasson and Bernstein, "SipHash: a fast short-input
 * PRF", 2012). */
#define SIP_ROUND(v0, v1, v2, v3)                                                              \
    do {                                                                                       \
        v0 += v1;                                                                              \
        v1 = rotl64(v1, 13);                                                                   \
        v1 ^= v0;                                                                              \
        v0 = rotl64(v0, 32);                                                                   \
        v2 += v3;                                                                              \
        v3 = rotl64(v3, 16);                                                                   \
        v3 ^= v2;                                                                              \
        v0 += v3;                                                                              \
        v3 = rotl64(v3, 21);                                                                   \
        v3 ^= v0;                                                                              \
        v2 += v1;                                                                              \
        v1 = rotl64(v1, 17);                                                                   \
        v1 ^= v2;                                                                              \
        v2 = rotl64(v2, 32);                                                                   \
    } while (0)

/* SipHash-2-4 with a 64-bit output: two rounds per 8-byte word, four to finalize. */
static uint64_t siphash24(uint64_t k0, uint64_t k1, const uint8_t *data, size_t len)
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL; /* "somepseudorandomlygeneratedbytes" */
    uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k1 ^ 0x7465646279746573ULL;
    size_t whole = len - len % 8;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(data + i);
        v3 ^= m;
        SIP_ROUND(v0, v1, v2, v3);
        SIP_ROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    /* The last word carries the leftover bytes and the length modulo 256 in its top byte. */
    uint64_t last = (uint64_t)(len & 0xff) << 56;
    for (size_t i = 0; i < len % 8; i++)
        last |= (uint64_t)data[whole + i] << (8 * i);
    v3 ^= last;
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

static void member_key(const char *name, uint64_t *k0, uint64_t *k1)
{
    uint8_t digest[SHA256_LEN];
    sha256(name, strlen(name), digest);
    *k0 = load_le64(digest);
    *k1 = load_le64(digest + 8);
}

uint64_t ring_score(const char *member, const void *key, size_t key_len)
{
    uint64_t k0, k1;
    member_key(member, &k0, &k1);
    return siphash24(k0, k1, key, key_len);
}

ring *ring_new(const char *const *members, size_t count, error *err)
{
    if (count > RING_MAX_MEMBERS) {
        error_set(err, "ring: %zu members, at most %d allowed", count, RING_MAX_MEMBERS);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        size_t n = members[i] ? strlen(members[i]) : 0;
        if (n == 0 || n > RING_MEMBER_NAME_MAX) {
            error_set(err, "ring: member %zu has no name or one longer than %d bytes", i,
                      RING_MEMBER_NAME_MAX);
            return NULL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(members[i], members[j]) == 0) {
                error_set(err, "ring: member %.*s is listed twice", (int)n, members[i]);
                return NULL;
            }
        }
    }
    ring *r = calloc(1, sizeof *r);
    if (!r || !(r->entries = calloc(count ? count : 1, sizeof r->entries[0]))) {
        free(r);
        error_set(err, "ring: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        ring_entry *e = &r->entries[i];
        if (!(e->name = strdup(members[i]))) {
            r->count = i;
            ring_free(r);
            error_set(err, "ring: out of memory");
            return NULL;
        }
        member_key(e->name, &e->k0, &e->k1);
        atomic_init(&e->down, false);
    }
    r->count = count;
    return r;
}

void ring_free(ring *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++)
        free(r->entries[i].name);
    free(r->entries);
    free(r);
}

size_t ring_size(const ring *r)
{
    return r->count;
}

const char *ring_member(const ring *r, size_t index)
{
    return index < r->count ? r->entries[index].name : NULL;
}

int ring_find(const ring *r, const char *name)
{
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(r->entries[i].name, name) == 0)
            return (int)i;
    return -1;
}

void ring_set_down(ring *r, size_t index, bool down)
{
    if (index < r->count)
        atomic_store_explicit(&r->entries[index].down, down, memory_order_relaxed);
}

bool ring_is_down(const ring *r, size_t index)
{
    if (index >= r->count)
        return true;
    return atomic_load_explicit(&((ring *)r)->entries[index].down, memory_order_relaxed);
}

/* Does candidate (score a, member ia) rank before (b, ib)? */
static bool ranks_before(const ring *r, uint64_t a, size_t ia, uint64_t b, size_t ib)
{
    if (a != b)
        return a > b;
    return strcmp(r->entries[ia].name, r->entries[ib].name) < 0;
}

size_t ring_order(const ring *r, const void *key, size_t key_len, size_t *out, size_t cap)
{
    uint64_t scores[RING_MAX_MEMBERS];
    size_t filled = 0;
    if (cap > r->count)
        cap = r->count;
    for (size_t i = 0; i < r->count && cap > 0; i++) {
        if (ring_is_down(r, i))
            continue;
        uint64_t s = siphash24(r->entries[i].k0, r->entries[i].k1, key, key_len);
        /* Insertion into the sorted top-`cap` prefix. */
        size_t pos = filled;
        while (pos > 0 && ranks_before(r, s, i, scores[pos - 1], out[pos - 1]))
            pos--;
        if (pos >= cap)
            continue;
        size_t last = filled < cap ? filled : cap - 1;
        for (size_t k = last; k > pos; k--) {
            scores[k] = scores[k - 1];
            out[k] = out[k - 1];
        }
        scores[pos] = s;
        out[pos] = i;
        if (filled < cap)
            filled++;
    }
    return filled;
}

int ring_pick(const ring *r, const void *key, size_t key_len)
{
    size_t best;
    return ring_order(r, key, key_len, &best, 1) == 1 ? (int)best : -1;
}
