/* lock: a strongly consistent cell holding a log's latest signed checkpoint, changed only by
 * compare-and-swap. It is what keeps two sequencers of one log from both committing: each
 * round CASes its new checkpoint against the version it last saw, and the loser stops.
 *
 * Backends by URL scheme: file:///path/to/lockfile (one host: fsync + rename under flock on
 * a sidecar file) and s3:// (If-Match / If-None-Match conditional PUTs on one object).
 * Every function is safe to call from several threads at once on one handle. */
#ifndef TEGULA_LOCK_H
#define TEGULA_LOCK_H

#include <stddef.h>

#include "buffer.h"
#include "error.h"

enum lock_status {
    LOCK_OK = 0,
    LOCK_ERROR = -1,     /* I/O or backend failure: the outcome of a write may be unknown */
    LOCK_NOT_FOUND = -2, /* read/cas: the lock has never been created */
    LOCK_CONFLICT = -3,  /* cas: the stored version differs; create: it already exists */
    LOCK_HELD = -4,      /* claim: another live process holds the lock */
};

/* A version is an opaque, NUL-terminated string naming one stored content: the file backend
 * uses the SHA-256 hex of the content (so writing identical bytes gives the same version),
 * S3 will use the ETag. Compare versions only for equality. */
#define LOCK_VERSION_MAX 128
/* Lock contents are checkpoints: small. Larger writes are refused, larger reads fail. */
#define LOCK_CONTENT_MAX (1u << 20)

typedef struct lock lock;

/* Opens a lock from its URL: file:///absolute/path/to/lockfile (its directory is created if
 * missing; the lock itself is not), or s3://bucket/path/to/lock?endpoint=...&region=...
 * (parameters and credentials as in s3.h; versions are ETags; no holder claim). Returns NULL
 * with a reason. */
lock *lock_open(const char *url, error *err);
/* Closes the handle, releasing a holder claim. */
void lock_close(lock *l);

/* Claims the lock for this handle's lifetime so a second sequencer for the same log on this
 * host is refused at once (LOCK_HELD, the reason names the holder's pid) instead of losing
 * a CAS later. Idempotent on one handle. Backends without such a mechanism succeed: CAS
 * alone keeps them safe. */
int lock_claim(lock *l, error *err);

/* Reads the content (replacing what `content` held) and its version (may be NULL). */
int lock_read(lock *l, buffer *content, char version[LOCK_VERSION_MAX], error *err);
/* Creates the lock with this content if it does not exist (LOCK_CONFLICT if it does, even
 * with identical content). version (may be NULL) receives the new version. */
int lock_create(lock *l, const void *data, size_t len, char version[LOCK_VERSION_MAX],
                error *err);
/* Replaces the content if the stored version is still `expected`; LOCK_CONFLICT otherwise
 * (nothing written). new_version (may be NULL) receives the new version. */
int lock_cas(lock *l, const char *expected, const void *data, size_t len,
             char new_version[LOCK_VERSION_MAX], error *err);

/* ---- Backend interface (for lock_*.c only) ----
 * A backend embeds `lock` as the first member of its handle. Sizes are checked already. */
typedef struct lock_backend {
    const char *scheme;
    int (*claim)(lock *l, error *err); /* NULL: no holder mechanism */
    int (*read)(lock *l, buffer *content, char version[LOCK_VERSION_MAX], error *err);
    int (*create)(lock *l, const void *data, size_t len, char version[LOCK_VERSION_MAX],
                  error *err);
    int (*cas)(lock *l, const char *expected, const void *data, size_t len,
               char new_version[LOCK_VERSION_MAX], error *err);
    void (*close)(lock *l);
} lock_backend;

struct lock {
    const lock_backend *backend;
};

/* file:// backend on the lock file at `path` (absolute). */
lock *lock_file_open(const char *path, error *err);
/* s3:// backend on the whole URL (see s3.h); the URL's path names the lock object. */
lock *lock_s3_open(const char *url, error *err);

#endif
