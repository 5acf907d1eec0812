/* leafindex: the leaf hash → leaf index map that RFC 6962 get-proof-by-hash needs, which
 * tiles alone cannot answer. One RocksDB database per log holds
 *   "h" || leaf hash (32 bytes)  →  leaf index (8 bytes, big-endian)
 *   "m:indexed"                  →  how many leaves are indexed (8 bytes, big-endian)
 *   "m:origin"                   →  the log's origin (a database is never reused for another)
 * A follower reads the data tiles the log published past the indexed count, up to the
 * verified checkpoint size, computes each leaf hash, checks it against the level-0 hash tile
 * and writes one tile's worth of keys together with the new count in one write batch, so a
 * crash never leaves the count ahead of the keys. static-ct leaf hashes are unique (every
 * leaf carries its own index), so one hash never maps to two indexes.
 *
 * Thread-safe: lookups run concurrently with the follower. */
#ifndef TEGULA_LEAFINDEX_H
#define TEGULA_LEAFINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "storage.h"

#define LEAFINDEX_NOT_FOUND 1

typedef struct leafindex leafindex;

/* Opens (creating when missing) the database in directory `path` for the log `origin`.
 * Refuses a database made for another origin. */
leafindex *leafindex_open(const char *path, const char *origin, error *err);
void leafindex_close(leafindex *li);

/* Returns 0 with *index, LEAFINDEX_NOT_FOUND, or -1 with a reason. */
int leafindex_lookup(leafindex *li, const uint8_t leaf_hash[32], uint64_t *index, error *err);
/* How many leaves (a prefix of the log) are indexed. */
uint64_t leafindex_indexed(leafindex *li);

/* Indexes the leaves [indexed, target_size) of the log in `storage`, at most max_tiles data
 * tiles (0 = no limit) per call. Each data tile is checked against the level-0 hash tile; a
 * mismatch stops with an error and indexes nothing from that tile. Returns the number of
 * leaves indexed (>= 0), or -1 with a reason. target_size below the indexed count is an
 * error (the log went backwards). */
int64_t leafindex_catch_up(leafindex *li, storage *s, uint64_t target_size, unsigned max_tiles,
                           error *err);

/* Where a follower learns the size it may index up to: the verified checkpoint's size.
 * Returns 0, or -1 with a reason. */
typedef int (*leafindex_size_fn)(void *ctx, uint64_t *size, error *err);

typedef struct leafindex_follower leafindex_follower;

/* Starts a thread that, every poll_ms (0 = 1000), asks size_fn for the tree size and catches
 * up to it (without sleeping while it is still behind). Failures are logged when their
 * reason changes and retried on the next poll. */
leafindex_follower *leafindex_follower_start(leafindex *li, storage *s, leafindex_size_fn size_fn,
                                             void *ctx, unsigned poll_ms, error *err);
/* Stops and joins the thread (promptly: a poll in progress finishes its current tile). */
void leafindex_follower_stop(leafindex_follower *f);

#endif
