/* ring: rendezvous (highest random weight) hashing, used by frontends to pick the batcher
 * for a dedup key so that one certificate always goes to the same batcher, and only ~1/M of
 * keys move when a batcher joins or leaves.
 *
 * score(member, key) = SipHash-2-4 over the key bytes, keyed with the first 16 bytes of
 * SHA-256(member name) (k0, k1 read little-endian); the SipHash output is the 64-bit score.
 * A key goes to the live member with the highest score; ties (practically impossible) go to
 * the smaller name in strcmp order. The score depends only on (member name, key), never on
 * the order or set of members, so every frontend computes the same choice from any view of
 * the membership, and rebuilding the ring after DNS changes is free of side effects.
 *
 * A ring's membership is fixed at creation (build a new ring when it changes); the down
 * marks are atomic, so a health checker may flip them while request threads read. */
#ifndef TEGULA_RING_H
#define TEGULA_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define RING_MAX_MEMBERS 1024
#define RING_MEMBER_NAME_MAX 255

typedef struct ring ring;

/* Copies the member names (1..255 bytes each, distinct, at most RING_MAX_MEMBERS; zero members
 * is allowed and picks nothing). All members start up. NULL with err on bad input. */
ring *ring_new(const char *const *members, size_t count, error *err);
void ring_free(ring *r);

size_t ring_size(const ring *r);
const char *ring_member(const ring *r, size_t index);
/* Index of the member with this name, or -1. */
int ring_find(const ring *r, const char *name);

/* Marks a member down (skipped by ring_order/ring_pick) or up again. Thread-safe. */
void ring_set_down(ring *r, size_t index, bool down);
bool ring_is_down(const ring *r, size_t index);

/* The rendezvous score of (member, key), as described above. */
uint64_t ring_score(const char *member, const void *key, size_t key_len);

/* Writes up to cap member indices, live members only, best score first: out[0] is the
 * member to use, out[1] the one to fail over to, and so on. Returns how many were written.
 * Costs one SipHash per member; no allocation. */
size_t ring_order(const ring *r, const void *key, size_t key_len, size_t *out, size_t cap);
/* The best live member's index, or -1 when every member is down (or there are none). */
int ring_pick(const ring *r, const void *key, size_t key_len);

#endif
