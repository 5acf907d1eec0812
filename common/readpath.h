/* readpath: the static-ct monitoring endpoints served from a log's object storage
 * (SPEC §1.5, §1.6, §1.9; DESIGN §4 and §6), as a transport-neutral library: the frontend
 * turns an HTTP request into a read_request, calls readpath_handle, and sends the
 * read_response it gets back (read_response_headers gives the header lines).
 *
 * Objects served, relative to the log's monitoring prefix:
 *   checkpoint                 text/plain; charset=utf-8, Cache-Control: no-store
 *   tile/<L>/<N>[.p/<W>]       application/octet-stream, public, max-age=604800, immutable
 *   tile/data/<N>[.p/<W>]      the same; stored gzip'd and sent as stored (Content-Encoding:
 *                              gzip) unless the client's Accept-Encoding refuses gzip, in
 *                              which case it is decompressed (Vary: Accept-Encoding)
 *   issuer/<64 lowercase hex>  application/pkix-cert, immutable
 *   log.v3.json                application/json, short caching
 * Every response carries Access-Control-Allow-Origin: *. Successful responses carry a strong
 * ETag (a hash of the stored bytes, distinct for the decompressed form) and If-None-Match
 * gives 304. When the backend keeps metadata with objects (s3://), the stored Content-Type,
 * Content-Encoding, Cache-Control, ETag and Last-Modified are passed through instead of the
 * ones above (an ETag gets "-identity" appended for the decompressed form); file:// keeps
 * none, so they are derived from the key. Errors (404 and the rest) carry Cache-Control: no-store, never a long lifetime,
 * so a CDN cannot pin a "not yet uploaded" tile. No directory listings, no redirects.
 *
 * Paths are matched against a strict grammar before anything reaches storage: tile paths must
 * re-encode byte for byte (tile_path_parse), issuers are exactly 64 lowercase hex digits.
 * Bytes that can never appear in an object name (NUL, '%', '\', control and non-ASCII bytes,
 * space) give 400; anything else that is not an object name (`..`, `//`, `tile/0/0001`,
 * `tile/6/000`, directories) gives 404. Nothing is percent-decoded, so `%2e%2e` or `%2f`
 * never turn into `..` or `/`. The file backend itself never follows a symbolic link.
 *
 * Immutable objects (tiles, partial tiles, issuers) are kept in a byte-bounded LRU cache
 * (read_cache), which the RFC 6962 layer of the same log can share (rfc6962.h).
 *
 * All functions are thread-safe on one handle. */
#ifndef TEGULA_READPATH_H
#define TEGULA_READPATH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "http_server.h"
#include "storage.h"

/* --- Requests and responses (shared with rfc6962.h) -------------------------------------- */

/* One request, as the transport saw it. Strings are borrowed for the duration of the call. */
typedef struct read_request {
    const char *method;          /* "GET", "HEAD", "OPTIONS"; anything else gets 405 */
    const char *path;            /* relative to the log's prefix, raw (not percent-decoded),
                                    without the query; may hold NUL bytes (path_len counts) */
    size_t path_len;
    const char *query;           /* raw query string without '?'; NULL or "" when absent */
    const char *accept_encoding; /* the Accept-Encoding header value, NULL when absent */
    const char *if_none_match;   /* the If-None-Match header value, NULL when absent */
} read_request;

#define READ_ETAG_MAX 160
#define READ_CACHE_CONTROL_MAX 128
/* Header lines read_response_headers can produce, plus the {NULL, NULL} terminator. */
#define READ_MAX_HEADERS 14

/* A response. The body is owned (malloc'd) and must be released with read_response_free or
 * taken with read_response_take_body. For HEAD the body is still filled in, so the transport
 * can send its Content-Length; the transport must not send the body itself (http_server does
 * that for HEAD). A 304 has no body. */
typedef struct read_response {
    int status;
    const char *content_type;     /* static string or NULL */
    const char *content_encoding; /* static string or NULL ("gzip") */
    const char *vary;             /* static string or NULL */
    const char *allow;            /* 405 and OPTIONS: the methods allowed */
    bool preflight;               /* OPTIONS: add the CORS preflight headers */
    char cache_control[READ_CACHE_CONTROL_MAX]; /* "" = no Cache-Control header */
    char etag[READ_ETAG_MAX];     /* quoted strong entity tag, "" = none */
    char last_modified[64];       /* "" = no Last-Modified header */
    /* Storage for the stored headers content_type/content_encoding point to when an object
     * is served with the metadata its backend kept (s3). */
    char stored_content_type[128];
    char stored_content_encoding[64];
    uint8_t *body;
    size_t body_len;
} read_response;

/* Fills out[] with the response's header lines (Content-Type, Content-Encoding,
 * Cache-Control, ETag, Vary, Allow, Access-Control-Allow-Origin, ...), ending with a
 * {NULL, NULL} entry, ready for http_respond. Strings point into r or are static; out is
 * valid while r is. Returns the number of lines (without the terminator). */
size_t read_response_headers(const read_response *r, http_header out[READ_MAX_HEADERS]);
/* Hands the malloc'd body to the caller (for http_respond_owned); r keeps no body. */
uint8_t *read_response_take_body(read_response *r, size_t *len);
void read_response_free(read_response *r);

/* An error response: status, text/plain body "<reason>\n", Cache-Control: no-store. */
void read_response_error(read_response *r, int status, const char *reason);

/* --- Cache of immutable objects -------------------------------------------------------- */

/* An immutable, reference-counted byte string. `digest` is SHA-256 of data when has_digest
 * (objects read from storage always have one; it names the ETag unless the stored metadata
 * has one). `info` is the metadata the backend stored with the object (s3), NULL when it keeps
 * none (file); owned by the blob. */
typedef struct read_blob {
    atomic_size_t refs;
    size_t len;
    bool has_digest;
    uint8_t digest[32];
    storage_object_info *info;
    uint8_t data[];
} read_blob;

/* A new blob holding a copy of data (refs = 1); NULL when out of memory. */
read_blob *read_blob_new(const void *data, size_t len);
read_blob *read_blob_ref(read_blob *b);
void read_blob_release(read_blob *b);

/* Byte-bounded LRU map from key strings to blobs. Thread-safe. */
typedef struct read_cache read_cache;

typedef struct read_cache_stats {
    uint64_t hits, misses, insertions, evictions;
    size_t bytes, entries, max_bytes;
} read_cache_stats;

/* max_bytes 0 picks READ_CACHE_DEFAULT_BYTES. NULL when out of memory. */
#define READ_CACHE_DEFAULT_BYTES ((size_t)128 << 20)
read_cache *read_cache_new(size_t max_bytes);
void read_cache_free(read_cache *c);
/* A new reference to the cached blob, or NULL. */
read_blob *read_cache_get(read_cache *c, const char *key);
/* Stores (its own reference to) b under key, replacing any older value; objects larger than
 * an eighth of the bound are not kept. Evicts least recently used entries to stay within the
 * bound. */
void read_cache_put(read_cache *c, const char *key, read_blob *b);
void read_cache_stats_read(read_cache *c, read_cache_stats *out);

/* Reads the immutable object `key` through the cache: a cached blob, or storage_get(max_len)
 * whose result is cached when `insert`. Objects under issuer/ must hash to their name (a
 * mismatch is an error, never served). Returns STORAGE_OK with a new reference in *out, or a
 * storage_status (STORAGE_NOT_FOUND, STORAGE_ERROR, ...) with a reason. */
int read_cache_fetch(read_cache *c, storage *s, const char *key, size_t max_len, bool insert,
                     read_blob **out, error *err);

/* --- Header parsing (shared with rfc6962.c) --------------------------------------------- */

/* Whether a client whose Accept-Encoding is `value` (NULL = header absent) accepts gzip:
 * absent → yes (RFC 9110 §12.5.3: any coding is acceptable), empty → no, otherwise gzip or
 * x-gzip with q > 0, or else '*' with q > 0. */
bool read_accepts_gzip(const char *value);
/* Whether If-None-Match `value` matches the quoted entity tag `etag` (weak comparison, as
 * RFC 9110 §13.1.2 asks; '*' matches any). */
bool read_etag_matches(const char *value, const char *etag);

/* --- The monitoring endpoints ------------------------------------------------------------ */

typedef struct readpath_config {
    storage *storage;        /* borrowed; the log's object storage */
    read_cache *cache;       /* borrowed; NULL = a private cache of cache_bytes */
    size_t cache_bytes;      /* 0 = READ_CACHE_DEFAULT_BYTES (private cache only) */
    size_t max_object_bytes; /* largest data tile served (stored or decompressed);
                                0 = READPATH_DEFAULT_MAX_OBJECT */
} readpath_config;

#define READPATH_DEFAULT_MAX_OBJECT ((size_t)64 << 20)

typedef struct readpath readpath;

readpath *readpath_new(const readpath_config *config, error *err);
void readpath_free(readpath *rp);
/* Answers one request (see the header comment). Always fills *out (free it with
 * read_response_free); storage failures become 500 with a reason, logged. */
void readpath_handle(readpath *rp, const read_request *req, read_response *out);

typedef struct readpath_stats {
    uint64_t requests, not_modified, not_found, bad_requests, errors;
} readpath_stats;
void readpath_stats_read(readpath *rp, readpath_stats *out);

#endif
