/* staging: the bundle a round writes before it commits (docs/write-path.md, round step 3), so
 * a sequencer that dies between the lock CAS and the tile uploads can finish the job on
 * restart by replaying it.
 *
 * Object key: "staging/<tree size>-<64 hex root>" of the tree the round commits.
 * Content: for every tile of the round, in strictly increasing byte order of the keys,
 *   u16 key length ‖ key ‖ u32 data length ‖ data
 * and nothing else. The encoding is deterministic (sorted keys, no padding), so the same round
 * always gives the same bytes. Keys are tile paths ("tile/0/000.p/5", "tile/data/x001/234");
 * data tiles are carried gzip'd, exactly as they are uploaded. */
#ifndef TEGULA_SEQUENCER_STAGING_H
#define TEGULA_SEQUENCER_STAGING_H

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "error.h"

/* Parsing bounds (the bundle is read back from storage, so it is input like any other). */
#define STAGING_MAX_BYTES ((size_t)1 << 30)
#define STAGING_MAX_OBJECTS 100000
/* "staging/" + 20 digits + "-" + 64 hex + NUL. */
#define STAGING_KEY_MAX 96

typedef struct staging_object {
    const char *key; /* NUL-terminated */
    const uint8_t *data;
    size_t len;
} staging_object;

/* A parsed bundle. Keys are copied (NUL-terminated); data points into the parsed input. */
typedef struct staging_bundle {
    staging_object *objects;
    size_t count;
    char *key_storage;
} staging_bundle;

/* Writes "staging/<size>-<hex root>" into out. */
void staging_key(uint64_t size, const uint8_t root[32], char out[STAGING_KEY_MAX]);

/* Appends the bundle of `count` objects to out. The objects may come in any order: they are
 * sorted here (the array is reordered). Fails on an empty, over-long, invalid or duplicate key
 * or an object over 4 GiB; out is then left as it was. */
int staging_encode(buffer *out, staging_object *objects, size_t count, error *err);

/* Parses a bundle strictly: every key a valid tile path, keys strictly increasing, no
 * truncation, no trailing bytes, at most STAGING_MAX_OBJECTS objects and STAGING_MAX_BYTES
 * bytes. The bundle's data pointers go into `data`, which must outlive it. */
int staging_parse(staging_bundle *out, const uint8_t *data, size_t len, error *err);
void staging_bundle_free(staging_bundle *b);
/* The object with this key, or NULL (binary search). */
const staging_object *staging_find(const staging_bundle *b, const char *key);

#endif
