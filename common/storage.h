/* storage: the object store that holds a log's public state (tiles, data tiles, issuers,
 * checkpoint) and the sequencer's staging bundles. One interface, several backends chosen by
 * URL scheme: file:// (a directory on a local or shared file system) and s3:// (an
 * S3-compatible bucket: AWS S3, R2, Ceph RGW, MinIO; see s3.h).
 *
 * Keys are relative object names ("tile/0/x001/234", "checkpoint", "issuer/<hex>",
 * "staging/12-<hex>"). Untrusted URL paths reach storage_get through the read path, so every
 * entry point validates its key (storage_key_is_valid) before a backend sees it.
 *
 * Every function is safe to call from several threads at once on one handle. */
#ifndef TEGULA_STORAGE_H
#define TEGULA_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "error.h"

/* Results. Every failure is negative, so `if (rc != 0)` catches all of them; callers that
 * need to tell them apart compare with these names. */
enum storage_status {
    STORAGE_OK = 0,
    STORAGE_ERROR = -1,       /* I/O, permissions, too large, backend failure */
    STORAGE_NOT_FOUND = -2,   /* get: no object under that key */
    STORAGE_CONFLICT = -3,    /* create: an object with different content already exists */
    STORAGE_INVALID_KEY = -4, /* the key is not a well-formed object name */
};

#define STORAGE_KEY_MAX 512

/* HTTP metadata stored with an object. NULL fields mean "none" (content_type NULL means
 * application/octet-stream). The file backend does not keep it (the read path derives it
 * from the key again); the s3 backend sends it as headers. Strings are borrowed. */
typedef struct storage_meta {
    const char *content_type;
    const char *content_encoding;
    const char *cache_control;
} storage_meta;

/* The metadata DESIGN §4 gives the object at `key`: checkpoint (text, no-store), hash tiles
 * and data tiles (immutable; data tiles are gzip-encoded), issuers (pkix-cert, immutable),
 * staging bundles, log.v3.json and roots.pem (short caching). Unknown keys get
 * application/octet-stream with no encoding and no caching. Returns static strings. */
storage_meta storage_meta_for_key(const char *key);

/* Strict object-name check: 1..STORAGE_KEY_MAX bytes of [A-Za-z0-9._/-], '/'-separated
 * non-empty segments, no leading or trailing '/', and no segment that starts with '.'
 * (so no "." or "..", and names the file backend uses for its temporary files can never be
 * addressed). Takes a length so embedded NUL bytes from decoded input are caught too. Nothing
 * is percent-decoded: "%2e%2e" is refused for its '%', never treated as "..". */
bool storage_key_is_valid(const char *key, size_t len);

typedef enum storage_write_mode {
    STORAGE_PUT = 0,    /* create or overwrite */
    STORAGE_CREATE = 1, /* create if absent; an existing identical object is success, an
                           existing different one is STORAGE_CONFLICT and stays unchanged */
} storage_write_mode;

/* One object of a batch write. meta NULL means storage_meta_for_key(key). */
typedef struct storage_object {
    const char *key;
    const void *data;
    size_t len;
    storage_write_mode mode;
    const storage_meta *meta;
} storage_object;

typedef struct storage storage;

/* Opens a store from its URL:
 *   file:///absolute/dir   the directory is created (with parents) when missing.
 *                          The path is taken literally (no percent-decoding).
 *   s3://bucket/prefix?endpoint=http://127.0.0.1:PORT&region=us-east-1&path_style=true
 *                          an S3-compatible bucket; keys go below the optional prefix. The
 *                          parameters (and credentials) are described in s3.h. Nothing is
 *                          sent until the first operation.
 * Returns NULL with a reason on failure. */
storage *storage_open(const char *url, error *err);
void storage_close(storage *s);
/* The scheme of the backend ("file"), for logs and metrics. */
const char *storage_scheme(const storage *s);

/* Writes are durable and atomic when they return STORAGE_OK: readers see the old object or
 * the whole new one, never a part, and a crash afterwards does not lose it. */
int storage_put(storage *s, const char *key, const void *data, size_t len,
                const storage_meta *meta, error *err);
/* Create-if-absent. Concurrent creators of one key with different contents: exactly one
 * wins, every other gets STORAGE_CONFLICT. */
int storage_create(storage *s, const char *key, const void *data, size_t len,
                   const storage_meta *meta, error *err);
/* Writes many objects (a round's tiles) with one durability barrier for all of them.
 * results (may be NULL) receives each object's status; an object is stored only when its
 * result is STORAGE_OK. Returns STORAGE_OK when all succeeded, otherwise STORAGE_ERROR if any
 * object failed for another reason than a conflict, else STORAGE_CONFLICT; err names the
 * first failed key. Objects not attempted after an I/O failure get STORAGE_ERROR. */
int storage_write_batch(storage *s, const storage_object *objects, size_t count, int *results,
                        error *err);
/* Reads a whole object into out (replacing what it held). Objects larger than max_len are
 * refused with STORAGE_ERROR rather than read. STORAGE_NOT_FOUND when absent. */
int storage_get(storage *s, const char *key, size_t max_len, buffer *out, error *err);

/* What a backend that keeps HTTP metadata (s3) returns with an object: its stored headers,
 * copied ("" when the object has none). The file backend keeps none: has_meta is false and
 * every field is "", and readers derive the headers from the key (storage_meta_for_key). */
typedef struct storage_object_info {
    bool has_meta;
    char content_type[128];
    char content_encoding[64];
    char cache_control[128];
    char etag[130];          /* without quotes */
    char last_modified[64];  /* the HTTP date as the server sent it */
} storage_object_info;

/* storage_get, also filling *info (never NULL) with the object's stored metadata. */
int storage_get_info(storage *s, const char *key, size_t max_len, buffer *out,
                     storage_object_info *info, error *err);
/* Removes an object; an absent one is success. */
int storage_delete(storage *s, const char *key, error *err);

/* ---- Backend interface (for storage_*.c only) ----
 * A backend embeds `storage` as the first member of its handle and fills in the vtable.
 * Keys reaching a backend have already been validated. */
typedef struct storage_backend {
    const char *scheme;
    int (*write_batch)(storage *s, const storage_object *objects, size_t count, int *results,
                       error *err);
    int (*get)(storage *s, const char *key, size_t max_len, buffer *out, error *err);
    int (*remove)(storage *s, const char *key, error *err);
    void (*close)(storage *s);
    /* Optional (NULL: the backend keeps no metadata and get is used): get that also fills
     * *info. */
    int (*get_info)(storage *s, const char *key, size_t max_len, buffer *out,
                    storage_object_info *info, error *err);
} storage_backend;

struct storage {
    const storage_backend *backend;
};

/* file:// backend on the directory at `path` (absolute; created with parents if missing). */
storage *storage_file_open(const char *path, error *err);
/* s3:// backend on the whole URL (see s3.h). */
storage *storage_s3_open(const char *url, error *err);

#endif
