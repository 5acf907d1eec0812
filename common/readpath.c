#include "readpath.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "gzip.h"
#include "log.h"
#include "note.h"
#include "sha256.h"
#include "tiles.h"

/* The checkpoint and log.v3.json are small; anything near this is not ours. */
#define SMALL_OBJECT_MAX ((size_t)1 << 20)
/* Issuers are single certificates; submissions are capped far below this. */
#define ISSUER_MAX ((size_t)1 << 20)
/* No object name we serve is longer ("tile/data/" + 7 groups + ".p/255" is under 64). */
#define PATH_MAX_SERVED 128
#define ISSUER_PREFIX "issuer/"
#define ISSUER_HEX_LEN 64

/* ---- Responses ---------------------------------------------------------------------- */

size_t read_response_headers(const read_response *r, http_header out[READ_MAX_HEADERS])
{
    size_t n = 0;
    if (r->content_type)
        out[n++] = (http_header){"Content-Type", r->content_type};
    if (r->content_encoding)
        out[n++] = (http_header){"Content-Encoding", r->content_encoding};
    if (r->cache_control[0])
        out[n++] = (http_header){"Cache-Control", r->cache_control};
    if (r->etag[0])
        out[n++] = (http_header){"ETag", r->etag};
    if (r->last_modified[0])
        out[n++] = (http_header){"Last-Modified", r->last_modified};
    if (r->vary)
        out[n++] = (http_header){"Vary", r->vary};
    if (r->allow)
        out[n++] = (http_header){"Allow", r->allow};
    out[n++] = (http_header){"Access-Control-Allow-Origin", "*"};
    if (r->preflight) {
        out[n++] = (http_header){"Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"};
        out[n++] = (http_header){"Access-Control-Allow-Headers", "If-None-Match"};
        out[n++] = (http_header){"Access-Control-Max-Age", "86400"};
    }
    /* Certificates and JSON must not be sniffed into something a browser would run. */
    out[n++] = (http_header){"X-Content-Type-Options", "nosniff"};
    out[n] = (http_header){NULL, NULL};
    return n;
}

uint8_t *read_response_take_body(read_response *r, size_t *len)
{
    uint8_t *body = r->body;
    *len = r->body_len;
    r->body = NULL;
    r->body_len = 0;
    return body;
}

void read_response_free(read_response *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

static void set_cache_control(read_response *r, const char *value)
{
    snprintf(r->cache_control, sizeof r->cache_control, "%s", value ? value : "");
}

void read_response_error(read_response *r, int status, const char *reason)
{
    free(r->body);
    memset(r, 0, sizeof *r);
    r->status = status;
    r->content_type = "text/plain; charset=utf-8";
    set_cache_control(r, "no-store");
    size_t len = strlen(reason);
    r->body = malloc(len + 1);
    if (r->body) {
        memcpy(r->body, reason, len);
        r->body[len] = '\n';
        r->body_len = len + 1;
    }
}

/* ---- Blobs -------------------------------------------------------------------------- */

read_blob *read_blob_new(const void *data, size_t len)
{
    if (len > SIZE_MAX - sizeof(read_blob))
        return NULL;
    read_blob *b = malloc(sizeof *b + (len ? len : 1));
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    b->has_digest = false;
    b->info = NULL;
    if (len)
        memcpy(b->data, data, len);
    return b;
}

read_blob *read_blob_ref(read_blob *b)
{
    if (b)
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void read_blob_release(read_blob *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
        free(b->info);
        free(b);
    }
}

/* ---- LRU cache ---------------------------------------------------------------------- */

typedef struct cache_entry {
    struct cache_entry *chain;       /* next in the hash bucket */
    struct cache_entry *newer, *older;
    uint64_t hash;
    size_t cost;
    read_blob *blob;
    char key[];
} cache_entry;

struct read_cache {
    pthread_mutex_t lock;
    cache_entry **buckets;
    size_t bucket_count; /* a power of two */
    cache_entry *newest, *oldest;
    size_t bytes, entries, max_bytes;
    uint64_t hits, misses, insertions, evictions;
};

#define CACHE_INITIAL_BUCKETS 1024

static uint64_t key_hash(const char *key)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return h;
}

read_cache *read_cache_new(size_t max_bytes)
{
    read_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->bucket_count = CACHE_INITIAL_BUCKETS;
    c->buckets = calloc(c->bucket_count, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    c->max_bytes = max_bytes ? max_bytes : READ_CACHE_DEFAULT_BYTES;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void read_cache_free(read_cache *c)
{
    if (!c)
        return;
    cache_entry *e = c->newest;
    while (e) {
        cache_entry *next = e->older;
        read_blob_release(e->blob);
        free(e);
        e = next;
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static cache_entry **bucket_slot(read_cache *c, const char *key, uint64_t h)
{
    cache_entry **slot = &c->buckets[h & (c->bucket_count - 1)];
    while (*slot && ((*slot)->hash != h || strcmp((*slot)->key, key) != 0))
        slot = &(*slot)->chain;
    return slot;
}

static void lru_unlink(read_cache *c, cache_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push_newest(read_cache *c, cache_entry *e)
{
    e->newer = NULL;
    e->older = c->newest;
    if (c->newest)
        c->newest->newer = e;
    c->newest = e;
    if (!c->oldest)
        c->oldest = e;
}

/* Unlinks e from everything and frees it (the caller holds the lock). */
static void cache_remove(read_cache *c, cache_entry *e)
{
    cache_entry **slot = bucket_slot(c, e->key, e->hash);
    if (*slot == e)
        *slot = e->chain;
    lru_unlink(c, e);
    c->bytes -= e->cost;
    c->entries--;
    read_blob_release(e->blob);
    free(e);
}

static void cache_grow(read_cache *c)
{
    size_t count = c->bucket_count * 2;
    cache_entry **buckets = calloc(count, sizeof *buckets);
    if (!buckets)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < c->bucket_count; i++) {
        cache_entry *e = c->buckets[i];
        while (e) {
            cache_entry *next = e->chain;
            cache_entry **slot = &buckets[e->hash & (count - 1)];
            e->chain = *slot;
            *slot = e;
            e = next;
        }
    }
    free(c->buckets);
    c->buckets = buckets;
    c->bucket_count = count;
}

read_blob *read_cache_get(read_cache *c, const char *key)
{
    uint64_t h = key_hash(key);
    pthread_mutex_lock(&c->lock);
    cache_entry *e = *bucket_slot(c, key, h);
    read_blob *b = NULL;
    if (e) {
        lru_unlink(c, e);
        lru_push_newest(c, e);
        b = read_blob_ref(e->blob);
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->lock);
    return b;
}

void read_cache_put(read_cache *c, const char *key, read_blob *b)
{
    size_t key_len = strlen(key);
    size_t cost = sizeof(cache_entry) + key_len + 1 + sizeof(read_blob) + b->len;
    if (cost > c->max_bytes / 8)
        return;
    cache_entry *e = malloc(sizeof *e + key_len + 1);
    if (!e)
        return;
    memcpy(e->key, key, key_len + 1);
    e->hash = key_hash(key);
    e->cost = cost;
    e->blob = read_blob_ref(b);
    e->newer = e->older = e->chain = NULL;
    pthread_mutex_lock(&c->lock);
    cache_entry *old = *bucket_slot(c, key, e->hash);
    if (old)
        cache_remove(c, old);
    while (c->oldest && c->bytes + cost > c->max_bytes) {
        cache_remove(c, c->oldest);
        c->evictions++;
    }
    if (c->entries >= c->bucket_count)
        cache_grow(c);
    cache_entry **slot = &c->buckets[e->hash & (c->bucket_count - 1)];
    e->chain = *slot;
    *slot = e;
    lru_push_newest(c, e);
    c->bytes += cost;
    c->entries++;
    c->insertions++;
    pthread_mutex_unlock(&c->lock);
}

void read_cache_stats_read(read_cache *c, read_cache_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = (read_cache_stats){c->hits,  c->misses,  c->insertions, c->evictions,
                              c->bytes, c->entries, c->max_bytes};
    pthread_mutex_unlock(&c->lock);
}

int read_cache_fetch(read_cache *c, storage *s, const char *key, size_t max_len, bool insert,
                     read_blob **out, error *err)
{
    *out = read_cache_get(c, key);
    if (*out)
        return STORAGE_OK;
    buffer data = {0};
    storage_object_info info;
    int rc = storage_get_info(s, key, max_len, &data, &info, err);
    if (rc != STORAGE_OK) {
        buffer_free(&data);
        return rc;
    }
    read_blob *b = read_blob_new(data.data, data.len);
    buffer_free(&data);
    if (b && info.has_meta) {
        b->info = malloc(sizeof *b->info);
        if (b->info)
            *b->info = info;
        else
            read_blob_release(b), b = NULL;
    }
    if (!b)
        return error_set(err, "%s: out of memory", key), STORAGE_ERROR;
    sha256(b->data, b->len, b->digest);
    b->has_digest = true;
    if (strncmp(key, ISSUER_PREFIX, strlen(ISSUER_PREFIX)) == 0) {
        char hex[2 * SHA256_LEN + 1];
        hex_encode(hex, b->digest, SHA256_LEN);
        if (strcmp(hex, key + strlen(ISSUER_PREFIX)) != 0) {
            read_blob_release(b);
            return error_set(err, "%s does not hash to its name", key), STORAGE_ERROR;
        }
    }
    if (insert)
        read_cache_put(c, key, b);
    *out = b;
    return STORAGE_OK;
}

/* ---- Header parsing ----------------------------------------------------------------- */

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *trim_ows_end(const char *start, const char *end)
{
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return end;
}

/* A qvalue (RFC 9110 §12.4.2) is zero only when it is "0" with optional zero decimals;
 * anything else that is not a valid zero is treated as acceptable. */
static bool qvalue_is_zero(const char *p, const char *end)
{
    if (p >= end || *p != '0')
        return false;
    p++;
    if (p < end && *p == '.') {
        p++;
        while (p < end && *p == '0')
            p++;
    }
    return p == end;
}

/* Parses one Accept-Encoding member "coding *( OWS ; OWS param )" and returns its coding and
 * whether its q is above zero. */
static void parse_coding(const char *start, const char *end, const char **name, size_t *name_len,
                         bool *acceptable)
{
    start = skip_ows(start, end);
    end = trim_ows_end(start, end);
    const char *semi = memchr(start, ';', (size_t)(end - start));
    const char *name_end = trim_ows_end(start, semi ? semi : end);
    *name = start;
    *name_len = (size_t)(name_end - start);
    *acceptable = true;
    while (semi) {
        const char *p = skip_ows(semi + 1, end);
        if (p >= end)
            break;
        semi = memchr(p, ';', (size_t)(end - p));
        const char *param_end = trim_ows_end(p, semi ? semi : end);
        if (param_end - p >= 2 && (p[0] == 'q' || p[0] == 'Q')) {
            const char *v = skip_ows(p + 1, param_end);
            if (v < param_end && *v == '=')
                *acceptable = !qvalue_is_zero(skip_ows(v + 1, param_end), param_end);
        }
    }
}

static bool token_is(const char *name, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

bool read_accepts_gzip(const char *value)
{
    if (!value)
        return true;
    int gzip = -1, star = -1; /* -1: not mentioned, 0: refused, 1: accepted */
    const char *p = value, *end = value + strlen(value);
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *member_end = comma ? comma : end;
        const char *name;
        size_t name_len;
        bool ok;
        parse_coding(p, member_end, &name, &name_len, &ok);
        if (token_is(name, name_len, "gzip") || token_is(name, name_len, "x-gzip"))
            gzip = ok ? 1 : (gzip == 1 ? 1 : 0);
        else if (token_is(name, name_len, "*"))
            star = ok;
        p = comma ? comma + 1 : end;
    }
    if (gzip >= 0)
        return gzip == 1;
    return star == 1;
}

bool read_etag_matches(const char *value, const char *etag)
{
    if (!value || !etag || !etag[0])
        return false;
    size_t want = strlen(etag);
    const char *p = value, *end = value + strlen(value);
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *member_end = comma ? comma : end;
        const char *s = skip_ows(p, member_end);
        const char *e = trim_ows_end(s, member_end);
        if (e - s == 1 && *s == '*')
            return true;
        if (e - s >= 2 && s[0] == 'W' && s[1] == '/')
            s += 2;
        if ((size_t)(e - s) == want && memcmp(s, etag, want) == 0)
            return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

/* ---- The monitoring endpoints --------------------------------------------------------- */

struct readpath {
    storage *storage;
    read_cache *cache;
    bool own_cache;
    size_t max_object;
    atomic_uint_fast64_t requests, not_modified, not_found, bad_requests, errors;
};

readpath *readpath_new(const readpath_config *config, error *err)
{
    if (!config || !config->storage)
        return error_set(err, "readpath: no storage"), NULL;
    readpath *rp = calloc(1, sizeof *rp);
    if (!rp)
        return error_set(err, "readpath: out of memory"), NULL;
    rp->storage = config->storage;
    rp->max_object = config->max_object_bytes ? config->max_object_bytes
                                              : READPATH_DEFAULT_MAX_OBJECT;
    rp->cache = config->cache;
    if (!rp->cache) {
        rp->cache = read_cache_new(config->cache_bytes);
        rp->own_cache = true;
        if (!rp->cache) {
            free(rp);
            return error_set(err, "readpath: out of memory"), NULL;
        }
    }
    return rp;
}

void readpath_free(readpath *rp)
{
    if (!rp)
        return;
    if (rp->own_cache)
        read_cache_free(rp->cache);
    free(rp);
}

void readpath_stats_read(readpath *rp, readpath_stats *out)
{
    *out = (readpath_stats){atomic_load(&rp->requests), atomic_load(&rp->not_modified),
                            atomic_load(&rp->not_found), atomic_load(&rp->bad_requests),
                            atomic_load(&rp->errors)};
}

typedef enum object_kind {
    OBJECT_CHECKPOINT,
    OBJECT_LOG_V3,
    OBJECT_HASH_TILE,
    OBJECT_DATA_TILE,
    OBJECT_ISSUER,
} object_kind;

/* Bytes that no object name holds. Refusing them up front (400) means neither encoded
 * separators nor NUL-truncation tricks get any further. */
static bool path_bytes_acceptable(const char *path, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c <= 0x20 || c >= 0x7f || c == '%' || c == '\\')
            return false;
    }
    return true;
}

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Maps a request path to the object it names; returns 0, 400 or 404. key receives the object
 * name (identical to the path, which the grammar has just proven to be well formed). */
static int classify_path(const char *path, size_t len, char key[PATH_MAX_SERVED + 1],
                         object_kind *kind, tile_id *tile)
{
    if (!path_bytes_acceptable(path, len))
        return 400;
    if (len == 0 || len > PATH_MAX_SERVED)
        return 404;
    if (len == 10 && memcmp(path, "checkpoint", 10) == 0) {
        *kind = OBJECT_CHECKPOINT;
    } else if (len == 11 && memcmp(path, "log.v3.json", 11) == 0) {
        *kind = OBJECT_LOG_V3;
    } else if (len > 5 && memcmp(path, "tile/", 5) == 0) {
        if (tile_path_parse(path, len, tile, NULL) != 0)
            return 404;
        *kind = tile->data ? OBJECT_DATA_TILE : OBJECT_HASH_TILE;
    } else if (len == strlen(ISSUER_PREFIX) + ISSUER_HEX_LEN &&
               memcmp(path, ISSUER_PREFIX, strlen(ISSUER_PREFIX)) == 0) {
        for (size_t i = strlen(ISSUER_PREFIX); i < len; i++)
            if (!is_lower_hex(path[i]))
                return 404;
        *kind = OBJECT_ISSUER;
    } else {
        return 404;
    }
    memcpy(key, path, len);
    key[len] = 0;
    /* Defence in depth: the grammar above only admits valid storage keys. */
    if (!storage_key_is_valid(key, len))
        return 404;
    return 0;
}

static void etag_from_digest(char out[READ_ETAG_MAX], const uint8_t digest[32], const char *suffix)
{
    char hex[33];
    hex_encode(hex, digest, 16);
    snprintf(out, READ_ETAG_MAX, "\"%s%s\"", hex, suffix);
}

/* The quoted ETag of a representation: the stored object's own (s3) when the backend kept
 * one, else a hash of the stored bytes; `suffix` tells a decompressed form apart. */
static void set_etag(read_response *out, const storage_object_info *info,
                     const uint8_t digest[32], const char *suffix)
{
    if (info && info->has_meta && info->etag[0] &&
        strlen(info->etag) + strlen(suffix) + 3 <= READ_ETAG_MAX) {
        snprintf(out->etag, READ_ETAG_MAX, "\"%s%s\"", info->etag, suffix);
        return;
    }
    etag_from_digest(out->etag, digest, suffix);
}

/* Content-Type, Content-Encoding, Cache-Control and Last-Modified of an object as stored:
 * the headers its backend kept with it (s3), passed through as they are, or — when the
 * backend keeps none (file) — the ones DESIGN §4 gives its key. */
static void set_object_headers(read_response *out, const char *key,
                               const storage_object_info *info)
{
    if (info && info->has_meta) {
        snprintf(out->stored_content_type, sizeof out->stored_content_type, "%s",
                 info->content_type);
        snprintf(out->stored_content_encoding, sizeof out->stored_content_encoding, "%s",
                 info->content_encoding);
        out->content_type = out->stored_content_type[0] ? out->stored_content_type : NULL;
        out->content_encoding =
            out->stored_content_encoding[0] ? out->stored_content_encoding : NULL;
        set_cache_control(out, info->cache_control);
        snprintf(out->last_modified, sizeof out->last_modified, "%s", info->last_modified);
        return;
    }
    storage_meta meta = storage_meta_for_key(key);
    out->content_type = meta.content_type;
    out->content_encoding = meta.content_encoding;
    set_cache_control(out, meta.cache_control);
}

static int set_body(read_response *out, const void *data, size_t len)
{
    out->body = malloc(len ? len : 1);
    if (!out->body)
        return -1;
    if (len)
        memcpy(out->body, data, len);
    out->body_len = len;
    return 0;
}

static void storage_failure(readpath *rp, read_response *out, int rc, const char *key,
                            const error *err)
{
    if (rc == STORAGE_NOT_FOUND || rc == STORAGE_INVALID_KEY) {
        atomic_fetch_add(&rp->not_found, 1);
        read_response_error(out, 404, "not found");
        return;
    }
    atomic_fetch_add(&rp->errors, 1);
    log_error("reading an object for the read path failed", "key=%s reason=\"%s\"", key,
              err->msg);
    read_response_error(out, 500, "storage error");
}

/* Turns a 200 into a 304 when the client already holds this representation. */
static void maybe_not_modified(readpath *rp, const read_request *req, read_response *out)
{
    if (!read_etag_matches(req->if_none_match, out->etag))
        return;
    atomic_fetch_add(&rp->not_modified, 1);
    free(out->body);
    out->body = NULL;
    out->body_len = 0;
    out->status = 304;
    out->content_type = NULL;
    out->content_encoding = NULL;
}

static void serve_mutable(readpath *rp, const read_request *req, const char *key,
                          read_response *out)
{
    buffer data = {0};
    error err = {{0}};
    storage_object_info info;
    int rc = storage_get_info(rp->storage, key, SMALL_OBJECT_MAX, &data, &info, &err);
    if (rc != STORAGE_OK) {
        buffer_free(&data);
        storage_failure(rp, out, rc, key, &err);
        return;
    }
    uint8_t digest[32];
    sha256(data.data, data.len, digest);
    out->status = 200;
    set_object_headers(out, key, &info);
    set_etag(out, &info, digest, "");
    size_t len;
    out->body = buffer_steal(&data, &len);
    out->body_len = len;
    if (!out->body && len == 0)
        out->body = malloc(1);
    maybe_not_modified(rp, req, out);
}

static void serve_immutable(readpath *rp, const read_request *req, const char *key,
                            object_kind kind, const tile_id *tile, read_response *out)
{
    size_t max_len = kind == OBJECT_HASH_TILE ? tile_hash_bytes(tile)
                     : kind == OBJECT_ISSUER  ? ISSUER_MAX
                                              : rp->max_object;
    read_blob *blob;
    error err = {{0}};
    int rc = read_cache_fetch(rp->cache, rp->storage, key, max_len, true, &blob, &err);
    if (rc != STORAGE_OK) {
        storage_failure(rp, out, rc, key, &err);
        return;
    }
    if (kind == OBJECT_HASH_TILE && blob->len != tile_hash_bytes(tile)) {
        /* Never hand a truncated tile to caches that keep it for a week. */
        atomic_fetch_add(&rp->errors, 1);
        log_error("a stored hash tile has the wrong length", "key=%s len=%zu want=%zu", key,
                  blob->len, tile_hash_bytes(tile));
        read_blob_release(blob);
        read_response_error(out, 500, "stored tile has the wrong length");
        return;
    }
    const storage_object_info *info = blob->info;
    out->status = 200;
    set_object_headers(out, key, info);
    /* Stored gzip'd: what the stored Content-Encoding says when the backend kept metadata,
     * else what DESIGN §4 stores data tiles as, confirmed by the bytes. */
    bool gzipped = info ? out->content_encoding && strcasecmp(out->content_encoding, "gzip") == 0
                        : kind == OBJECT_DATA_TILE && gzip_is_gzip(blob->data, blob->len);
    int body_rc;
    if (gzipped) {
        out->vary = "Accept-Encoding";
        if (read_accepts_gzip(req->accept_encoding)) {
            if (!info)
                out->content_encoding = "gzip";
            set_etag(out, info, blob->digest, "");
            body_rc = set_body(out, blob->data, blob->len);
        } else {
            buffer plain = {0};
            body_rc = gzip_decompress(blob->data, blob->len, rp->max_object, &plain, &err);
            if (body_rc != 0) {
                buffer_free(&plain);
                atomic_fetch_add(&rp->errors, 1);
                log_error("a stored data tile does not decompress", "key=%s reason=\"%s\"",
                          key, err.msg);
                read_blob_release(blob);
                read_response_error(out, 500, "stored data tile is corrupt");
                return;
            }
            out->content_encoding = NULL;
            set_etag(out, info, blob->digest, "-identity");
            size_t len;
            out->body = buffer_steal(&plain, &len);
            out->body_len = len;
            body_rc = out->body || len == 0 ? 0 : -1;
            if (!out->body)
                out->body = malloc(1);
        }
    } else {
        /* Stored uncompressed (hash tiles, issuers; foreign data tiles): sent as stored. */
        if (!info)
            out->content_encoding = NULL;
        set_etag(out, info, blob->digest, "");
        body_rc = set_body(out, blob->data, blob->len);
    }
    read_blob_release(blob);
    if (body_rc != 0) {
        atomic_fetch_add(&rp->errors, 1);
        read_response_error(out, 500, "out of memory");
        return;
    }
    maybe_not_modified(rp, req, out);
}

void readpath_handle(readpath *rp, const read_request *req, read_response *out)
{
    memset(out, 0, sizeof *out);
    atomic_fetch_add(&rp->requests, 1);
    const char *method = req->method ? req->method : "";
    if (strcmp(method, "OPTIONS") == 0) {
        out->status = 204;
        out->allow = "GET, HEAD, OPTIONS";
        out->preflight = true;
        set_cache_control(out, "public, max-age=86400");
        return;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        atomic_fetch_add(&rp->bad_requests, 1);
        read_response_error(out, 405, "method not allowed");
        out->allow = "GET, HEAD, OPTIONS";
        return;
    }
    char key[PATH_MAX_SERVED + 1];
    object_kind kind;
    tile_id tile;
    int status = classify_path(req->path ? req->path : "", req->path ? req->path_len : 0, key,
                               &kind, &tile);
    if (status == 400) {
        atomic_fetch_add(&rp->bad_requests, 1);
        read_response_error(out, 400, "malformed path");
        return;
    }
    if (status != 0) {
        atomic_fetch_add(&rp->not_found, 1);
        read_response_error(out, 404, "not found");
        return;
    }
    if (kind == OBJECT_CHECKPOINT || kind == OBJECT_LOG_V3)
        serve_mutable(rp, req, key, out);
    else
        serve_immutable(rp, req, key, kind, &tile, out);
}
