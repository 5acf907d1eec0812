/* ctile: tile-aligned get-entries cache, cached get-sth and pass-through for a legacy log. */
#include "ctile.h"

#include "base64.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buffer.h"
#include "log.h"
#include "storage.h"

#define DEFAULT_TILE_SIZE 256
#define MAX_TILE_SIZE 4096
#define DEFAULT_MAX_AGE_S 60
#define MAX_MAX_AGE_S 60
#define DEFAULT_UPSTREAM_TIMEOUT_MS 10000
#define DEFAULT_MAX_UPSTREAM_BYTES ((size_t)32 << 20)
#define DEFAULT_MEMORY_CACHE_BYTES ((size_t)256 << 20)
#define DEFAULT_UPSTREAM_CONNECTIONS 16
#define FULL_TILE_CACHE_CONTROL "public, max-age=86400"
#define ENTRIES_PATH "ct/v1/get-entries"
#define STH_PATH "ct/v1/get-sth"
/* RFC 6962 indices are int64 on every implementation; refusing more keeps T*size+size safe. */
#define MAX_INDEX ((uint64_t)INT64_MAX)
#define INITIAL_BUCKETS 256

/* ---------- cached objects ---------- */

/* A tile rendered as the get-entries body of the whole tile; a client's sub-range is a
 * contiguous slice of it because entries are separated by single commas. Immutable once
 * built, shared by reference count between the cache and responses being built. */
typedef struct tile {
    atomic_uint refs;
    uint64_t index;
    size_t count;
    bool full;
    uint64_t fetched_ms;
    char *body;
    size_t body_len;
    size_t *spans; /* entry i is body[spans[2i] .. spans[2i+1]) */
} tile;

/* A cached get-sth answer, as the upstream sent it. */
typedef struct sth_answer {
    atomic_uint refs;
    uint64_t fetched_ms;
    char *body;
    size_t body_len;
    char *content_type;
} sth_answer;

typedef struct waiter {
    struct waiter *next;
    http_request *req;
    uint64_t start, end;
} waiter;

/* One tile index the proxy knows about: with content, with a fetch in flight, or both
 * (a stale partial tile being refreshed). */
typedef struct slot {
    uint64_t index;
    tile *tile;
    bool fetching;
    waiter *waiters;
    struct slot *hash_next;
    struct slot *lru_prev, *lru_next; /* only while tile != NULL */
} slot;

typedef struct counters {
    atomic_uint_fast64_t entries_requests, memory_hits, storage_hits, upstream_tile_fetches,
        joined_fetches, sth_requests, sth_fetches, passthrough_requests, upstream_errors,
        storage_errors;
} counters;

struct ctile_proxy {
    char *prefix;
    size_t prefix_len;
    char *upstream; /* ends with '/' */
    unsigned tile_size;
    unsigned partial_max_age_s;
    unsigned sth_max_age_s;
    unsigned upstream_timeout_ms;
    size_t max_upstream_bytes;
    size_t memory_cache_bytes;
    storage *cache;
    http_client *client;
    bool owns_client;

    pthread_mutex_t lock;
    pthread_cond_t idle_cond;
    unsigned outstanding; /* upstream work in flight whose completion still uses the proxy */
    slot **buckets;
    size_t bucket_count;
    size_t slot_count;
    slot *lru_head, *lru_tail; /* head: most recently used */
    size_t memory_bytes;
    sth_answer *sth;
    bool sth_fetching;
    waiter *sth_waiters;

    counters stats;
};

/* An upstream failure to hand to waiting clients: the upstream's own status and body when
 * it answered, or a gateway error made up here. */
typedef struct failure {
    int status;
    const char *content_type;
    const void *body;
    size_t body_len;
} failure;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void count(atomic_uint_fast64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

static void tile_unref(tile *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1) {
        free(t->body);
        free(t->spans);
        free(t);
    }
}

static tile *tile_ref(tile *t)
{
    atomic_fetch_add(&t->refs, 1);
    return t;
}

static size_t tile_memory(const tile *t)
{
    return sizeof *t + t->body_len + 2 * t->count * sizeof(size_t);
}

static void sth_unref(sth_answer *a)
{
    if (a && atomic_fetch_sub(&a->refs, 1) == 1) {
        free(a->body);
        free(a->content_type);
        free(a);
    }
}

/* ---------- parsing and rendering get-entries ---------- */

static bool is_base64_text(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || c == '='))
            return false;
    }
    return true;
}

/* Builds a tile from a get-entries JSON body (the upstream's, or our own stored rendering).
 * Only leaf_input and extra_data are kept; both must be base64 text, so the rendering needs
 * no escaping and cannot be made to carry anything else. */
static tile *tile_from_json(const void *json, size_t len, uint64_t index, unsigned tile_size,
                            error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root) {
        error_set(err, "not JSON: %s", jerr.text);
        return NULL;
    }
    tile *t = NULL;
    buffer body = {0};
    json_t *entries = json_is_object(root) ? json_object_get(root, "entries") : NULL;
    if (!json_is_array(entries)) {
        error_set(err, "no \"entries\" array");
        goto fail;
    }
    size_t n = json_array_size(entries);
    if (n > tile_size) {
        error_set(err, "%zu entries where at most %u were asked for", n, tile_size);
        goto fail;
    }
    t = calloc(1, sizeof *t);
    if (!t || (n > 0 && !(t->spans = calloc(2 * n, sizeof(size_t))))) {
        error_set(err, "out of memory");
        goto fail;
    }
    atomic_init(&t->refs, 1);
    t->index = index;
    t->count = n;
    t->full = n == tile_size;
    bool ok = buffer_append_str(&body, "{\"entries\":[") == 0;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *entry = json_array_get(entries, i);
        json_t *leaf = json_object_get(entry, "leaf_input");
        json_t *extra = json_object_get(entry, "extra_data");
        if (!json_is_string(leaf) || !json_is_string(extra) ||
            !is_base64_text(json_string_value(leaf), json_string_length(leaf)) ||
            !is_base64_text(json_string_value(extra), json_string_length(extra))) {
            error_set(err, "entry %zu lacks base64 leaf_input and extra_data", i);
            goto fail;
        }
        if (i > 0)
            ok = ok && buffer_append_byte(&body, ',') == 0;
        t->spans[2 * i] = body.len;
        ok = ok && buffer_append_str(&body, "{\"leaf_input\":\"") == 0 &&
             buffer_append(&body, json_string_value(leaf), json_string_length(leaf)) == 0 &&
             buffer_append_str(&body, "\",\"extra_data\":\"") == 0 &&
             buffer_append(&body, json_string_value(extra), json_string_length(extra)) == 0 &&
             buffer_append_str(&body, "\"}") == 0;
        t->spans[2 * i + 1] = body.len;
    }
    ok = ok && buffer_append_str(&body, "]}") == 0;
    if (!ok) {
        error_set(err, "out of memory");
        goto fail;
    }
    t->body = (char *)buffer_steal(&body, &t->body_len);
    json_decref(root);
    return t;
fail:
    buffer_free(&body);
    if (t) {
        free(t->spans);
        free(t);
    }
    json_decref(root);
    return NULL;
}

/* ---------- request parsing ---------- */

/* Percent-decodes src[0..len) into out (at most out_size-1 bytes, NUL-terminated; '+' is a
 * space as in forms). -1 when malformed or too long. */
static int query_decode(const char *src, size_t len, char *out, size_t out_size)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int hi = hex_digit_value(src[i + 1]);
            int lo = hex_digit_value(src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= out_size)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* The first value of `name` in a raw query string, decoded. 1 found, 0 absent, -1 malformed. */
static int query_param(const char *query, const char *name, char *out, size_t out_size)
{
    size_t name_len = strlen(name);
    const char *p = query;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t key_len = eq ? (size_t)(eq - p) : len;
        char key[64];
        if (query_decode(p, key_len, key, sizeof key) == 0 && strlen(key) == name_len &&
            memcmp(key, name, name_len) == 0) {
            if (!eq) {
                out[0] = '\0';
                return 1;
            }
            return query_decode(eq + 1, len - key_len - 1, out, out_size) == 0 ? 1 : -1;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/* A non-negative decimal int64, digits only (RFC 6962 servers parse them as such). */
static bool parse_index(const char *s, uint64_t *out)
{
    if (!*s)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (MAX_INDEX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static int entries_params(const char *query, uint64_t *start, uint64_t *end, error *err)
{
    char value[64];
    int rc = query_param(query, "start", value, sizeof value);
    if (rc == 0)
        return error_set(err, "missing start parameter");
    if (rc < 0 || !parse_index(value, start))
        return error_set(err, "invalid start parameter");
    rc = query_param(query, "end", value, sizeof value);
    if (rc == 0)
        return error_set(err, "missing end parameter");
    if (rc < 0 || !parse_index(value, end))
        return error_set(err, "invalid end parameter");
    if (*end < *start)
        return error_set(err, "end must be greater than or equal to start");
    return 0;
}

/* A path below the prefix that is safe to append to the upstream URL: unreserved characters
 * and '/', no empty, "." or ".." segment, nothing percent-encoded (CT paths never need it,
 * and an encoded dot or slash is how one walks out of a prefix). */
static bool relative_path_is_valid(const char *rel)
{
    if (!*rel)
        return true;
    const char *seg = rel;
    for (const char *p = rel;; p++) {
        char c = *p;
        if (c == '/' || c == '\0') {
            size_t n = (size_t)(p - seg);
            if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (c == '\0')
                return true;
            seg = p + 1;
            continue;
        }
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '~'))
            return false;
    }
}

static bool query_is_forwardable(const char *q)
{
    for (; *q; q++) {
        unsigned char c = (unsigned char)*q;
        if (c <= 0x20 || c >= 0x7f || c == '#')
            return false;
    }
    return true;
}

/* ---------- answering ---------- */

static void respond_plain(http_request *req, int status, const char *text)
{
    const http_header headers[] = {
        {"Content-Type", "text/plain; charset=utf-8"},
        {"Cache-Control", "no-store"},
        {NULL, NULL},
    };
    http_respond(req, status, headers, text, strlen(text));
}

static void respond_failure(http_request *req, const failure *f)
{
    const http_header headers[] = {
        {"Content-Type", f->content_type ? f->content_type : "text/plain; charset=utf-8"},
        {"Cache-Control", "no-store"},
        {NULL, NULL},
    };
    http_respond(req, f->status, headers, f->body, f->body_len);
}

/* What is left of a partial answer's freshness, so no cache downstream keeps it longer than
 * max_age_s after the upstream produced it. */
static void partial_cache_control(char *out, size_t out_size, uint64_t fetched_ms,
                                  unsigned max_age_s)
{
    uint64_t age_s = (now_ms() - fetched_ms) / 1000;
    uint64_t left = age_s >= max_age_s ? 0 : max_age_s - age_s;
    snprintf(out, out_size, "public, max-age=%" PRIu64, left);
}

static void answer_entries(ctile_proxy *p, http_request *req, const tile *t, uint64_t start,
                           uint64_t end)
{
    uint64_t first = t->index * p->tile_size;
    uint64_t offset = start - first;
    if (offset >= t->count) {
        /* The tile starts inside the log but the asked range does not: RFC 6962 logs
         * answer 400 for a start past the tree. */
        respond_plain(req, 400, "requested range is past the end of the log\n");
        return;
    }
    uint64_t last = (end - first < t->count - 1) ? end - first : t->count - 1;
    char cache_control[64];
    if (t->full)
        snprintf(cache_control, sizeof cache_control, "%s", FULL_TILE_CACHE_CONTROL);
    else
        partial_cache_control(cache_control, sizeof cache_control, t->fetched_ms,
                              p->partial_max_age_s);
    const http_header headers[] = {
        {"Content-Type", "application/json"},
        {"Cache-Control", cache_control},
        {NULL, NULL},
    };
    if (offset == 0 && last == t->count - 1) {
        http_respond(req, 200, headers, t->body, t->body_len);
        return;
    }
    static const char head[] = "{\"entries\":[";
    static const char tail[] = "]}";
    size_t slice_start = t->spans[2 * offset];
    size_t slice_len = t->spans[2 * last + 1] - slice_start;
    size_t len = sizeof head - 1 + slice_len + sizeof tail - 1;
    char *body = malloc(len);
    if (!body) {
        respond_plain(req, 503, "out of memory\n");
        return;
    }
    memcpy(body, head, sizeof head - 1);
    memcpy(body + sizeof head - 1, t->body + slice_start, slice_len);
    memcpy(body + sizeof head - 1 + slice_len, tail, sizeof tail - 1);
    http_respond_owned(req, 200, headers, body, len);
}

static void answer_sth(ctile_proxy *p, http_request *req, const sth_answer *a)
{
    char cache_control[64];
    partial_cache_control(cache_control, sizeof cache_control, a->fetched_ms, p->sth_max_age_s);
    const http_header headers[] = {
        {"Content-Type", a->content_type ? a->content_type : "application/json"},
        {"Cache-Control", cache_control},
        {NULL, NULL},
    };
    http_respond(req, 200, headers, a->body, a->body_len);
}

/* Turns a failed or non-200 upstream response into what waiting clients get. The reason
 * text lives in `text` (caller's storage). */
static void failure_from_response(const http_client_response *r, failure *f, char *text,
                                  size_t text_size)
{
    if (r->result == HTTP_CLIENT_OK) {
        f->status = r->status;
        f->content_type = http_client_response_header(r, "Content-Type");
        f->body = r->body.data;
        f->body_len = r->body.len;
        return;
    }
    f->status = r->result == HTTP_CLIENT_TIMEOUT     ? 504
                : r->result == HTTP_CLIENT_CANCELLED ? 503
                                                     : 502;
    snprintf(text, text_size, "upstream request failed: %s\n", r->reason);
    f->content_type = NULL;
    f->body = text;
    f->body_len = strlen(text);
}

static waiter *waiter_new(http_request *req, uint64_t start, uint64_t end)
{
    waiter *w = malloc(sizeof *w);
    if (w) {
        w->next = NULL;
        w->req = req;
        w->start = start;
        w->end = end;
    }
    return w;
}

/* ---------- outstanding work (what ctile_proxy_free waits for) ---------- */

static void work_begin(ctile_proxy *p)
{
    pthread_mutex_lock(&p->lock);
    p->outstanding++;
    pthread_mutex_unlock(&p->lock);
}

static void work_end(ctile_proxy *p)
{
    pthread_mutex_lock(&p->lock);
    if (--p->outstanding == 0)
        pthread_cond_broadcast(&p->idle_cond);
    pthread_mutex_unlock(&p->lock);
}

/* ---------- the tile table (under p->lock) ---------- */

static size_t bucket_of(const ctile_proxy *p, uint64_t index)
{
    uint64_t h = index * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (p->bucket_count - 1);
}

static slot *slot_find(ctile_proxy *p, uint64_t index)
{
    for (slot *s = p->buckets[bucket_of(p, index)]; s; s = s->hash_next)
        if (s->index == index)
            return s;
    return NULL;
}

static void table_grow(ctile_proxy *p)
{
    size_t new_count = p->bucket_count * 2;
    slot **fresh = calloc(new_count, sizeof *fresh);
    if (!fresh)
        return; /* longer chains, still correct */
    slot **old = p->buckets;
    size_t old_count = p->bucket_count;
    p->buckets = fresh;
    p->bucket_count = new_count;
    for (size_t i = 0; i < old_count; i++) {
        slot *s = old[i];
        while (s) {
            slot *next = s->hash_next;
            size_t b = bucket_of(p, s->index);
            s->hash_next = p->buckets[b];
            p->buckets[b] = s;
            s = next;
        }
    }
    free(old);
}

static slot *slot_create(ctile_proxy *p, uint64_t index)
{
    slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->index = index;
    size_t b = bucket_of(p, index);
    s->hash_next = p->buckets[b];
    p->buckets[b] = s;
    if (++p->slot_count > p->bucket_count)
        table_grow(p);
    return s;
}

static void lru_unlink(ctile_proxy *p, slot *s)
{
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else
        p->lru_head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else
        p->lru_tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
}

static void lru_push_front(ctile_proxy *p, slot *s)
{
    s->lru_prev = NULL;
    s->lru_next = p->lru_head;
    if (p->lru_head)
        p->lru_head->lru_prev = s;
    else
        p->lru_tail = s;
    p->lru_head = s;
}

static void slot_drop_tile(ctile_proxy *p, slot *s)
{
    if (!s->tile)
        return;
    lru_unlink(p, s);
    p->memory_bytes -= tile_memory(s->tile);
    tile_unref(s->tile);
    s->tile = NULL;
}

/* Removes a slot that has no fetch in flight. */
static void slot_remove(ctile_proxy *p, slot *s)
{
    slot_drop_tile(p, s);
    slot **link = &p->buckets[bucket_of(p, s->index)];
    while (*link != s)
        link = &(*link)->hash_next;
    *link = s->hash_next;
    p->slot_count--;
    free(s);
}

static void slot_set_tile(ctile_proxy *p, slot *s, tile *t)
{
    slot_drop_tile(p, s);
    s->tile = tile_ref(t);
    p->memory_bytes += tile_memory(t);
    lru_push_front(p, s);
    /* Evict least recently used tiles, never the one just stored. */
    while (p->memory_bytes > p->memory_cache_bytes && p->lru_tail && p->lru_tail != s) {
        slot *victim = p->lru_tail;
        if (victim->fetching)
            slot_drop_tile(p, victim);
        else
            slot_remove(p, victim);
    }
}

static bool tile_is_fresh(const ctile_proxy *p, const tile *t, uint64_t now)
{
    return t->full || now - t->fetched_ms < (uint64_t)p->partial_max_age_s * 1000u;
}

/* ---------- fetching tiles ---------- */

typedef struct tile_fetch {
    ctile_proxy *proxy;
    uint64_t index;
} tile_fetch;

static void tile_key(const ctile_proxy *p, uint64_t index, char *out, size_t out_size)
{
    snprintf(out, out_size, "ctile/%u/%" PRIu64, p->tile_size, index);
}

/* Ends a fetch: stores the tile (when there is one) and answers every waiter, from the tile
 * or with the failure. */
static void tile_fetch_done(ctile_proxy *p, uint64_t index, tile *t, const failure *f)
{
    pthread_mutex_lock(&p->lock);
    slot *s = slot_find(p, index);
    waiter *waiters = NULL;
    if (s) {
        waiters = s->waiters;
        s->waiters = NULL;
        s->fetching = false;
        if (t)
            slot_set_tile(p, s, t);
        else
            slot_remove(p, s); /* a stale partial tile must not outlive a failed refresh */
    }
    pthread_mutex_unlock(&p->lock);
    while (waiters) {
        waiter *w = waiters;
        waiters = w->next;
        if (t)
            answer_entries(p, w->req, t, w->start, w->end);
        else
            respond_failure(w->req, f);
        free(w);
    }
}

static void tile_fetched(http_client_response *r, void *arg)
{
    tile_fetch *fetch = arg;
    ctile_proxy *p = fetch->proxy;
    uint64_t index = fetch->index;
    free(fetch);
    tile *t = NULL;
    failure f = {0};
    char text[512];
    error err = {{0}};
    if (r->result != HTTP_CLIENT_OK || r->status != 200) {
        count(&p->stats.upstream_errors);
        failure_from_response(r, &f, text, sizeof text);
        log_debug("upstream get-entries failed", "tile=%" PRIu64 " status=%d", index, f.status);
    } else if (!(t = tile_from_json(r->body.data, r->body.len, index, p->tile_size, &err))) {
        count(&p->stats.upstream_errors);
        log_warn("upstream get-entries answer is malformed", "tile=%" PRIu64 " reason=\"%s\"",
                 index, err.msg);
        snprintf(text, sizeof text, "upstream get-entries answer is malformed: %s\n", err.msg);
        f = (failure){502, NULL, text, strlen(text)};
    } else {
        t->fetched_ms = now_ms();
    }
    /* Stored before anyone is answered, so a client that saw a full tile can count on it
     * surviving a restart; this costs the first fetch of each tile one durable write. */
    if (t && t->full) {
        char key[64];
        tile_key(p, index, key, sizeof key);
        storage_meta meta = {"application/json", NULL, FULL_TILE_CACHE_CONTROL};
        if (storage_put(p->cache, key, t->body, t->body_len, &meta, &err) != STORAGE_OK) {
            count(&p->stats.storage_errors);
            log_warn("cannot store a full tile", "key=%s reason=\"%s\"", key, err.msg);
        }
    }
    tile_fetch_done(p, index, t, &f);
    tile_unref(t);
    work_end(p);
}

/* Runs on the thread of the request that found the tile missing; work_begin already done. */
static void tile_fetch_start(ctile_proxy *p, uint64_t index)
{
    char key[64];
    tile_key(p, index, key, sizeof key);
    buffer stored = {0};
    error err = {{0}};
    int rc = storage_get(p->cache, key, p->max_upstream_bytes, &stored, &err);
    if (rc == STORAGE_OK) {
        tile *t = tile_from_json(stored.data, stored.len, index, p->tile_size, &err);
        buffer_free(&stored);
        if (t && t->full) {
            count(&p->stats.storage_hits);
            t->fetched_ms = now_ms();
            tile_fetch_done(p, index, t, NULL);
            tile_unref(t);
            work_end(p);
            return;
        }
        tile_unref(t);
        count(&p->stats.storage_errors);
        log_warn("ignoring a damaged cached tile", "key=%s reason=\"%s\"", key,
                 t ? "not a full tile" : err.msg);
    } else if (rc != STORAGE_NOT_FOUND) {
        buffer_free(&stored);
        count(&p->stats.storage_errors);
        log_warn("cannot read the tile cache", "key=%s reason=\"%s\"", key, err.msg);
    }

    char url[4096];
    uint64_t first = index * p->tile_size;
    snprintf(url, sizeof url, "%s" ENTRIES_PATH "?start=%" PRIu64 "&end=%" PRIu64, p->upstream,
             first, first + p->tile_size - 1);
    http_client_request req = {
        .method = "GET",
        .url = url,
        .timeout_ms = p->upstream_timeout_ms,
        .max_body_bytes = p->max_upstream_bytes,
        .decompress = true,
    };
    tile_fetch *fetch = malloc(sizeof *fetch);
    if (fetch) {
        fetch->proxy = p;
        fetch->index = index;
        count(&p->stats.upstream_tile_fetches);
        if (http_client_send(p->client, &req, tile_fetched, fetch, &err) == 0)
            return;
        free(fetch);
    } else {
        error_set(&err, "out of memory");
    }
    char text[300];
    snprintf(text, sizeof text, "cannot reach the upstream log: %s\n", err.msg);
    failure f = {503, NULL, text, strlen(text)};
    tile_fetch_done(p, index, NULL, &f);
    work_end(p);
}

static void handle_entries(ctile_proxy *p, http_request *req)
{
    uint64_t start = 0, end = 0;
    error err = {{0}};
    if (entries_params(http_request_query(req), &start, &end, &err) != 0) {
        char text[300];
        snprintf(text, sizeof text, "%s\n", err.msg);
        respond_plain(req, 400, text);
        return;
    }
    count(&p->stats.entries_requests);
    uint64_t index = start / p->tile_size;
    pthread_mutex_lock(&p->lock);
    slot *s = slot_find(p, index);
    if (s && s->tile && tile_is_fresh(p, s->tile, now_ms())) {
        tile *t = tile_ref(s->tile);
        lru_unlink(p, s);
        lru_push_front(p, s);
        pthread_mutex_unlock(&p->lock);
        count(&p->stats.memory_hits);
        answer_entries(p, req, t, start, end);
        tile_unref(t);
        return;
    }
    waiter *w = waiter_new(req, start, end);
    if (!w) {
        pthread_mutex_unlock(&p->lock);
        respond_plain(req, 503, "out of memory\n");
        return;
    }
    if (s && s->fetching) {
        w->next = s->waiters;
        s->waiters = w;
        pthread_mutex_unlock(&p->lock);
        count(&p->stats.joined_fetches);
        return;
    }
    if (!s && !(s = slot_create(p, index))) {
        pthread_mutex_unlock(&p->lock);
        free(w);
        respond_plain(req, 503, "out of memory\n");
        return;
    }
    s->fetching = true;
    s->waiters = w;
    p->outstanding++;
    pthread_mutex_unlock(&p->lock);
    tile_fetch_start(p, index);
}

/* ---------- get-sth ---------- */

static void sth_fetch_done(ctile_proxy *p, sth_answer *a, const failure *f)
{
    pthread_mutex_lock(&p->lock);
    waiter *waiters = p->sth_waiters;
    p->sth_waiters = NULL;
    p->sth_fetching = false;
    if (a) {
        sth_unref(p->sth);
        atomic_fetch_add(&a->refs, 1);
        p->sth = a;
    }
    pthread_mutex_unlock(&p->lock);
    while (waiters) {
        waiter *w = waiters;
        waiters = w->next;
        if (a)
            answer_sth(p, w->req, a);
        else
            respond_failure(w->req, f);
        free(w);
    }
}

static void sth_fetched(http_client_response *r, void *arg)
{
    ctile_proxy *p = arg;
    failure f = {0};
    char text[512];
    sth_answer *a = NULL;
    if (r->result != HTTP_CLIENT_OK || r->status != 200) {
        count(&p->stats.upstream_errors);
        failure_from_response(r, &f, text, sizeof text);
    } else {
        /* Only something that parses as a JSON object is worth caching for everyone. */
        json_t *root = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
        bool ok = json_is_object(root);
        json_decref(root);
        const char *type = http_client_response_header(r, "Content-Type");
        if (ok && (a = calloc(1, sizeof *a)) != NULL) {
            atomic_init(&a->refs, 1);
            a->fetched_ms = now_ms();
            a->body = (char *)buffer_steal(&r->body, &a->body_len);
            a->content_type = strdup(type ? type : "application/json");
            if (!a->content_type || (!a->body && a->body_len)) {
                sth_unref(a);
                a = NULL;
            }
        }
        if (!a) {
            count(&p->stats.upstream_errors);
            snprintf(text, sizeof text, "upstream get-sth answer is %s\n",
                     ok ? "unusable (out of memory)" : "not a JSON object");
            f = (failure){502, NULL, text, strlen(text)};
        }
    }
    sth_fetch_done(p, a, &f);
    sth_unref(a);
    work_end(p);
}

static void handle_sth(ctile_proxy *p, http_request *req)
{
    count(&p->stats.sth_requests);
    pthread_mutex_lock(&p->lock);
    sth_answer *a = p->sth;
    if (a && now_ms() - a->fetched_ms < (uint64_t)p->sth_max_age_s * 1000u) {
        atomic_fetch_add(&a->refs, 1);
        pthread_mutex_unlock(&p->lock);
        answer_sth(p, req, a);
        sth_unref(a);
        return;
    }
    waiter *w = waiter_new(req, 0, 0);
    if (!w) {
        pthread_mutex_unlock(&p->lock);
        respond_plain(req, 503, "out of memory\n");
        return;
    }
    w->next = p->sth_waiters;
    p->sth_waiters = w;
    if (p->sth_fetching) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    p->sth_fetching = true;
    p->outstanding++;
    pthread_mutex_unlock(&p->lock);

    char url[4096];
    snprintf(url, sizeof url, "%s" STH_PATH, p->upstream);
    http_client_request upstream = {
        .method = "GET",
        .url = url,
        .timeout_ms = p->upstream_timeout_ms,
        .max_body_bytes = p->max_upstream_bytes,
        .decompress = true,
    };
    error err = {{0}};
    count(&p->stats.sth_fetches);
    if (http_client_send(p->client, &upstream, sth_fetched, p, &err) == 0)
        return;
    char text[300];
    snprintf(text, sizeof text, "cannot reach the upstream log: %s\n", err.msg);
    failure f = {503, NULL, text, strlen(text)};
    sth_fetch_done(p, NULL, &f);
    work_end(p);
}

/* ---------- pass-through ---------- */

typedef struct passthrough {
    ctile_proxy *proxy;
    http_request *req;
} passthrough;

static void passthrough_done(http_client_response *r, void *arg)
{
    passthrough *pt = arg;
    ctile_proxy *p = pt->proxy;
    if (r->result != HTTP_CLIENT_OK) {
        count(&p->stats.upstream_errors);
        failure f;
        char text[512];
        failure_from_response(r, &f, text, sizeof text);
        respond_failure(pt->req, &f);
    } else {
        if (r->status >= 400)
            count(&p->stats.upstream_errors);
        /* Only what describes the body and how long it may be kept comes back; hop-by-hop
         * and connection details belong to each side's own connection. */
        static const char *const forwarded[] = {"Content-Type", "Cache-Control", "Retry-After"};
        http_header headers[4];
        size_t n = 0;
        for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) {
            const char *v = http_client_response_header(r, forwarded[i]);
            if (v)
                headers[n++] = (http_header){forwarded[i], v};
        }
        headers[n] = (http_header){NULL, NULL};
        size_t len;
        void *body = buffer_steal(&r->body, &len);
        http_respond_owned(pt->req, r->status, headers, body, len);
    }
    free(pt);
    work_end(p);
}

static void handle_passthrough(ctile_proxy *p, http_request *req, const char *rel)
{
    count(&p->stats.passthrough_requests);
    const char *target = http_request_target(req);
    bool has_query = strchr(target, '?') != NULL;
    buffer url = {0};
    if (buffer_printf(&url, "%s%s%s%s", p->upstream, rel, has_query ? "?" : "",
                      has_query ? http_request_query(req) : "") != 0) {
        buffer_free(&url);
        respond_plain(req, 503, "out of memory\n");
        return;
    }
    http_header headers[3];
    size_t n = 0;
    static const char *const forwarded[] = {"Content-Type", "Accept"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = http_request_header(req, forwarded[i]);
        if (v)
            headers[n++] = (http_header){forwarded[i], v};
    }
    headers[n] = (http_header){NULL, NULL};
    size_t body_len = 0;
    const uint8_t *body = http_request_body(req, &body_len);
    http_client_request upstream = {
        .method = http_request_method(req),
        .url = (const char *)url.data,
        .headers = headers,
        .body = body,
        .body_len = body_len,
        .timeout_ms = p->upstream_timeout_ms,
        .max_body_bytes = p->max_upstream_bytes,
        .decompress = true,
    };
    passthrough *pt = malloc(sizeof *pt);
    error err = {{0}};
    if (!pt) {
        buffer_free(&url);
        respond_plain(req, 503, "out of memory\n");
        return;
    }
    pt->proxy = p;
    pt->req = req;
    work_begin(p);
    int rc = http_client_send(p->client, &upstream, passthrough_done, pt, &err);
    buffer_free(&url);
    if (rc != 0) {
        free(pt);
        char text[300];
        snprintf(text, sizeof text, "cannot forward the request: %s\n", err.msg);
        respond_plain(req, 503, text);
        work_end(p);
    }
}

/* ---------- entry points ---------- */

void ctile_handle(http_request *req, void *arg)
{
    ctile_proxy *p = arg;
    const char *path = http_request_path(req);
    if (strncmp(path, p->prefix, p->prefix_len) != 0) {
        respond_plain(req, 404, "not found\n");
        return;
    }
    const char *rel = path + p->prefix_len;
    if (!relative_path_is_valid(rel)) {
        respond_plain(req, 400, "invalid path\n");
        return;
    }
    if (!query_is_forwardable(http_request_query(req))) {
        respond_plain(req, 400, "invalid query string\n");
        return;
    }
    bool is_entries = strcmp(rel, ENTRIES_PATH) == 0;
    bool is_sth = strcmp(rel, STH_PATH) == 0;
    if (is_entries || is_sth) {
        const char *method = http_request_method(req);
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            const http_header headers[] = {
                {"Allow", "GET, HEAD"},
                {"Content-Type", "text/plain; charset=utf-8"},
                {"Cache-Control", "no-store"},
                {NULL, NULL},
            };
            static const char text[] = "method not allowed\n";
            http_respond(req, 405, headers, text, sizeof text - 1);
        } else if (is_entries) {
            handle_entries(p, req);
        } else {
            handle_sth(p, req);
        }
        return;
    }
    handle_passthrough(p, req, rel);
}

static bool prefix_is_valid(const char *prefix)
{
    size_t n = strlen(prefix);
    if (n == 0 || prefix[0] != '/' || prefix[n - 1] != '/')
        return false;
    if (n == 1)
        return true;
    char *inner = strndup(prefix + 1, n - 2);
    bool ok = inner && relative_path_is_valid(inner);
    free(inner);
    return ok;
}

ctile_proxy *ctile_proxy_new(const ctile_config *config, error *err)
{
    if (!config || !config->prefix || !prefix_is_valid(config->prefix)) {
        error_set(err, "ctile: prefix must be a path starting and ending with '/'");
        return NULL;
    }
    const char *up = config->upstream_url;
    if (!up || (strncmp(up, "http://", 7) != 0 && strncmp(up, "https://", 8) != 0) ||
        strpbrk(up, "?# \t\r\n") || strlen(up) > 2048) {
        error_set(err, "ctile: upstream_url must be an http:// or https:// URL without a query");
        return NULL;
    }
    if (!config->cache_url || !*config->cache_url) {
        error_set(err, "ctile: cache_url is required");
        return NULL;
    }
    unsigned tile_size = config->tile_size ? config->tile_size : DEFAULT_TILE_SIZE;
    if (tile_size > MAX_TILE_SIZE) {
        error_set(err, "ctile: tile_size %u is above %u", tile_size, MAX_TILE_SIZE);
        return NULL;
    }
    unsigned partial_age = config->partial_max_age_s ? config->partial_max_age_s : DEFAULT_MAX_AGE_S;
    unsigned sth_age = config->sth_max_age_s ? config->sth_max_age_s : DEFAULT_MAX_AGE_S;
    if (partial_age > MAX_MAX_AGE_S || sth_age > MAX_MAX_AGE_S) {
        error_set(err, "ctile: partial_max_age_s and sth_max_age_s are at most %d", MAX_MAX_AGE_S);
        return NULL;
    }
    ctile_proxy *p = calloc(1, sizeof *p);
    if (!p) {
        error_set(err, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->idle_cond, NULL);
    p->tile_size = tile_size;
    p->partial_max_age_s = partial_age;
    p->sth_max_age_s = sth_age;
    p->upstream_timeout_ms =
        config->upstream_timeout_ms ? config->upstream_timeout_ms : DEFAULT_UPSTREAM_TIMEOUT_MS;
    p->max_upstream_bytes =
        config->max_upstream_bytes ? config->max_upstream_bytes : DEFAULT_MAX_UPSTREAM_BYTES;
    p->memory_cache_bytes =
        config->memory_cache_bytes ? config->memory_cache_bytes : DEFAULT_MEMORY_CACHE_BYTES;
    p->prefix = strdup(config->prefix);
    p->prefix_len = strlen(config->prefix);
    size_t up_len = strlen(up);
    bool slash = up[up_len - 1] == '/';
    p->upstream = malloc(up_len + 2);
    p->bucket_count = INITIAL_BUCKETS;
    p->buckets = calloc(p->bucket_count, sizeof *p->buckets);
    if (!p->prefix || !p->upstream || !p->buckets) {
        error_set(err, "out of memory");
        goto fail;
    }
    memcpy(p->upstream, up, up_len);
    if (!slash)
        p->upstream[up_len++] = '/';
    p->upstream[up_len] = '\0';
    p->cache = storage_open(config->cache_url, err);
    if (!p->cache) {
        error_wrap(err, "ctile: cache storage");
        goto fail;
    }
    if (config->client) {
        p->client = config->client;
    } else {
        http_client_config cc = {
            .max_host_connections = config->upstream_connections ? config->upstream_connections
                                                                  : DEFAULT_UPSTREAM_CONNECTIONS,
            .timeout_ms = p->upstream_timeout_ms,
            .max_body_bytes = p->max_upstream_bytes,
            .user_agent = "tegula-ctile",
        };
        p->client = http_client_new(&cc, err);
        if (!p->client) {
            error_wrap(err, "ctile: HTTP client");
            goto fail;
        }
        p->owns_client = true;
    }
    return p;
fail:
    ctile_proxy_free(p);
    return NULL;
}

void ctile_proxy_free(ctile_proxy *p)
{
    if (!p)
        return;
    /* Cancelling runs every pending callback, which answers its waiters and ends its work. */
    if (p->owns_client)
        http_client_free(p->client);
    pthread_mutex_lock(&p->lock);
    while (p->outstanding > 0)
        pthread_cond_wait(&p->idle_cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
    if (p->buckets) {
        for (size_t i = 0; i < p->bucket_count; i++) {
            slot *s = p->buckets[i];
            while (s) {
                slot *next = s->hash_next;
                tile_unref(s->tile);
                free(s);
                s = next;
            }
        }
    }
    free(p->buckets);
    sth_unref(p->sth);
    storage_close(p->cache);
    pthread_cond_destroy(&p->idle_cond);
    pthread_mutex_destroy(&p->lock);
    free(p->prefix);
    free(p->upstream);
    free(p);
}

void ctile_stats_read(ctile_proxy *p, ctile_stats *out)
{
    counters *c = &p->stats;
    out->entries_requests = atomic_load_explicit(&c->entries_requests, memory_order_relaxed);
    out->memory_hits = atomic_load_explicit(&c->memory_hits, memory_order_relaxed);
    out->storage_hits = atomic_load_explicit(&c->storage_hits, memory_order_relaxed);
    out->upstream_tile_fetches =
        atomic_load_explicit(&c->upstream_tile_fetches, memory_order_relaxed);
    out->joined_fetches = atomic_load_explicit(&c->joined_fetches, memory_order_relaxed);
    out->sth_requests = atomic_load_explicit(&c->sth_requests, memory_order_relaxed);
    out->sth_fetches = atomic_load_explicit(&c->sth_fetches, memory_order_relaxed);
    out->passthrough_requests = atomic_load_explicit(&c->passthrough_requests, memory_order_relaxed);
    out->upstream_errors = atomic_load_explicit(&c->upstream_errors, memory_order_relaxed);
    out->storage_errors = atomic_load_explicit(&c->storage_errors, memory_order_relaxed);
}
