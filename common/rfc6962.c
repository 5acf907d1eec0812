#include "rfc6962.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "ct.h"
#include "gzip.h"
#include "log.h"
#include "merkle.h"
#include "sha256.h"
#include "tiles.h"

#define ENDPOINT_PREFIX "ct/v1/"
#define LONG_CACHE "public, max-age=86400"
#define IMMUTABLE_CACHE "public, max-age=86400, immutable"
#define ISSUER_MAX ((size_t)1 << 20)
/* Longest parameter value we accept: a base64 hash is 44 characters, a number at most 20. */
#define PARAM_MAX 128
/* Distinct issuers one tile render keeps at hand (a tile rarely names more than a few). */
#define RENDER_ISSUERS 32

/* A verified checkpoint with its get-sth answer, shared by reference between requests. */
typedef struct sth_snapshot {
    atomic_size_t refs;
    signed_checkpoint sc;
    char *json;
    size_t json_len;
} sth_snapshot;

struct rfc6962 {
    storage *storage;
    char *origin;
    EVP_PKEY *log_key;
    leafindex *index;
    read_cache *cache;
    bool own_cache;
    unsigned refresh_ms;
    char short_cache[READ_CACHE_CONTROL_MAX];
    size_t max_data_tile;

    pthread_mutex_t lock; /* current, checked_ms */
    sth_snapshot *current;
    uint64_t checked_ms;
    bool checked_once;
    pthread_mutex_t refresh_lock; /* one storage read + verification at a time */

    atomic_uint_fast64_t requests, bad_requests, errors, tiles_rendered, accepted, refused;
};

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static sth_snapshot *snapshot_ref(sth_snapshot *s)
{
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

static void snapshot_release(sth_snapshot *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        free(s->json);
        free(s);
    }
}

/* ---- Tiles through the cache ---------------------------------------------------------- */

/* A tile_fetch_fn over the cache and storage (ctx = the layer). Hash tiles are immutable
 * under their path, so all of them are cached. */
static int fetch_hash_tile(void *ctx, const tile_id *t, buffer *out, error *err)
{
    rfc6962 *layer = ctx;
    char path[TILE_PATH_MAX];
    if (tile_path_format(t, path) < 0)
        return error_set(err, "invalid tile");
    read_blob *b;
    int rc = read_cache_fetch(layer->cache, layer->storage, path, tile_hash_bytes(t), true, &b,
                              err);
    if (rc == STORAGE_NOT_FOUND)
        return TILE_FETCH_NOT_FOUND;
    if (rc != STORAGE_OK)
        return -1;
    rc = buffer_append(out, b->data, b->len);
    read_blob_release(b);
    return rc == 0 ? 0 : error_set(err, "out of memory");
}

/* ---- Checkpoints ------------------------------------------------------------------------ */

static int render_sth(sth_snapshot *s)
{
    buffer b = {0};
    int rc = buffer_printf(&b, "{\"tree_size\":%" PRIu64 ",\"timestamp\":%" PRIu64
                               ",\"sha256_root_hash\":\"",
                           s->sc.cp.size, s->sc.timestamp);
    rc |= base64_encode(&b, s->sc.cp.root, 32);
    rc |= buffer_append_str(&b, "\",\"tree_head_signature\":\"");
    rc |= base64_encode(&b, s->sc.tree_head_signature, s->sc.tree_head_signature_len);
    rc |= buffer_append_str(&b, "\"}");
    if (rc != 0) {
        buffer_free(&b);
        return -1;
    }
    s->json = (char *)buffer_steal(&b, &s->json_len);
    return 0;
}

/* Reads, verifies and checks the published checkpoint against the tiles and against the one
 * already trusted (prev, may be NULL). Returns a new snapshot, or NULL with a reason. */
static sth_snapshot *load_checkpoint(rfc6962 *layer, const sth_snapshot *prev, error *err)
{
    buffer data = {0};
    int rc = storage_get(layer->storage, "checkpoint", NOTE_MAX_SIZE, &data, err);
    if (rc == STORAGE_NOT_FOUND) {
        buffer_free(&data);
        return error_set(err, "no checkpoint published yet"), NULL;
    }
    if (rc != STORAGE_OK) {
        buffer_free(&data);
        return error_wrap(err, "reading the checkpoint"), NULL;
    }
    sth_snapshot *s = calloc(1, sizeof *s);
    if (!s) {
        buffer_free(&data);
        return error_set(err, "out of memory"), NULL;
    }
    atomic_init(&s->refs, 1);
    rc = checkpoint_verify((const char *)data.data, data.len, layer->origin, layer->log_key,
                           &s->sc, err);
    buffer_free(&data);
    if (rc != 0) {
        error_wrap(err, "checkpoint does not verify");
        goto refuse;
    }
    uint64_t size = s->sc.cp.size;
    if (size > TILE_MAX_TREE_SIZE) {
        error_set(err, "checkpoint size %" PRIu64 " is too large", size);
        goto refuse;
    }
    if (prev) {
        const checkpoint *old = &prev->sc.cp;
        if (size < old->size) {
            error_set(err, "checkpoint went backwards from %" PRIu64 " to %" PRIu64, old->size,
                      size);
            goto refuse;
        }
        if (size == old->size && memcmp(s->sc.cp.root, old->root, 32) != 0) {
            error_set(err, "checkpoint of size %" PRIu64 " has another root (fork)", size);
            goto refuse;
        }
        if (size == old->size && s->sc.timestamp == prev->sc.timestamp) {
            free(s);
            return snapshot_ref((sth_snapshot *)prev); /* unchanged */
        }
    }
    /* The tiles must hold this tree, and (for a grown tree) the one trusted before. */
    uint8_t root[32];
    tile_reader reader;
    tile_reader_init(&reader, size, fetch_hash_tile, layer);
    rc = merkle_root(tile_reader_get_node, &reader, size, root, err);
    if (rc == 0 && memcmp(root, s->sc.cp.root, 32) != 0) {
        rc = error_set(err, "the hash tiles give another root than the checkpoint of size %" PRIu64,
                       size);
    } else if (rc == 0 && prev && prev->sc.cp.size > 0 && prev->sc.cp.size < size) {
        rc = merkle_root(tile_reader_get_node, &reader, prev->sc.cp.size, root, err);
        if (rc == 0 && memcmp(root, prev->sc.cp.root, 32) != 0)
            rc = error_set(err, "the tiles of size %" PRIu64 " are not consistent with the "
                                "trusted checkpoint of size %" PRIu64,
                           size, prev->sc.cp.size);
    }
    if (rc != 0 && error_is_set(&reader.err))
        error_wrap(err, "%s", reader.err.msg);
    tile_reader_free(&reader);
    if (rc != 0)
        goto refuse;
    if (render_sth(s) != 0) {
        error_set(err, "out of memory");
        goto refuse;
    }
    return s;
refuse:
    free(s);
    return NULL;
}

/* Re-reads the checkpoint (one thread at a time) and installs it if it is acceptable. */
static void refresh(rfc6962 *layer, bool force)
{
    pthread_mutex_lock(&layer->refresh_lock);
    pthread_mutex_lock(&layer->lock);
    bool fresh = layer->checked_once && monotonic_ms() - layer->checked_ms < layer->refresh_ms;
    sth_snapshot *prev = snapshot_ref(layer->current);
    pthread_mutex_unlock(&layer->lock);
    if (fresh && !force) {
        snapshot_release(prev);
        pthread_mutex_unlock(&layer->refresh_lock);
        return; /* another thread refreshed while this one waited */
    }
    error err = {{0}};
    sth_snapshot *next = load_checkpoint(layer, prev, &err);
    if (!next) {
        atomic_fetch_add(&layer->refused, 1);
        log_warn("checkpoint not accepted for the RFC 6962 read layer; keeping the last one",
                 "origin=%s size=%" PRIu64 " reason=\"%s\"", layer->origin,
                 prev ? prev->sc.cp.size : 0, err.msg);
    } else if (next != prev) {
        atomic_fetch_add(&layer->accepted, 1);
    }
    pthread_mutex_lock(&layer->lock);
    if (next) {
        snapshot_release(layer->current);
        layer->current = next;
    }
    layer->checked_ms = monotonic_ms();
    layer->checked_once = true;
    pthread_mutex_unlock(&layer->lock);
    snapshot_release(prev);
    pthread_mutex_unlock(&layer->refresh_lock);
}

/* The snapshot to answer from (a new reference), refreshing it when stale; NULL when no
 * checkpoint has verified yet. */
static sth_snapshot *snapshot_get(rfc6962 *layer)
{
    pthread_mutex_lock(&layer->lock);
    sth_snapshot *s = snapshot_ref(layer->current);
    bool stale = !layer->checked_once || monotonic_ms() - layer->checked_ms >= layer->refresh_ms;
    pthread_mutex_unlock(&layer->lock);
    if (!stale)
        return s;
    if (s) {
        /* Someone else is already refreshing: answer from the current one meanwhile. */
        if (pthread_mutex_trylock(&layer->refresh_lock) != 0)
            return s;
        pthread_mutex_unlock(&layer->refresh_lock);
    }
    refresh(layer, false);
    snapshot_release(s);
    pthread_mutex_lock(&layer->lock);
    s = snapshot_ref(layer->current);
    pthread_mutex_unlock(&layer->lock);
    return s;
}

int rfc6962_refresh(rfc6962 *layer, error *err)
{
    refresh(layer, true);
    return rfc6962_checkpoint(layer, NULL, err);
}

int rfc6962_checkpoint(rfc6962 *layer, signed_checkpoint *out, error *err)
{
    sth_snapshot *s = snapshot_get(layer);
    if (!s)
        return error_set(err, "no verified checkpoint");
    if (out)
        *out = s->sc;
    snapshot_release(s);
    return 0;
}

int rfc6962_tree_size(void *ctx, uint64_t *size, error *err)
{
    signed_checkpoint sc = {0};
    if (rfc6962_checkpoint(ctx, &sc, err) != 0)
        return -1;
    *size = sc.cp.size;
    return 0;
}

/* ---- Setup -------------------------------------------------------------------------- */

rfc6962 *rfc6962_new(const rfc6962_config *config, error *err)
{
    if (!config || !config->storage || !config->origin || !config->log_key)
        return error_set(err, "rfc6962: storage, origin and log key are required"), NULL;
    rfc6962 *layer = calloc(1, sizeof *layer);
    if (!layer)
        return error_set(err, "rfc6962: out of memory"), NULL;
    layer->storage = config->storage;
    layer->origin = strdup(config->origin);
    layer->index = config->index;
    layer->refresh_ms = config->checkpoint_refresh_ms ? config->checkpoint_refresh_ms : 1000;
    snprintf(layer->short_cache, sizeof layer->short_cache, "public, max-age=%u",
             config->short_max_age_s ? config->short_max_age_s : 10);
    layer->max_data_tile = config->max_data_tile_bytes ? config->max_data_tile_bytes
                                                       : READPATH_DEFAULT_MAX_OBJECT;
    layer->cache = config->cache;
    if (!layer->cache) {
        layer->cache = read_cache_new(config->cache_bytes);
        layer->own_cache = true;
    }
    if (!layer->origin || !layer->cache || EVP_PKEY_up_ref(config->log_key) != 1) {
        if (layer->own_cache)
            read_cache_free(layer->cache);
        free(layer->origin);
        free(layer);
        return error_set(err, "rfc6962: out of memory"), NULL;
    }
    layer->log_key = config->log_key;
    pthread_mutex_init(&layer->lock, NULL);
    pthread_mutex_init(&layer->refresh_lock, NULL);
    return layer;
}

void rfc6962_free(rfc6962 *layer)
{
    if (!layer)
        return;
    snapshot_release(layer->current);
    if (layer->own_cache)
        read_cache_free(layer->cache);
    EVP_PKEY_free(layer->log_key);
    free(layer->origin);
    pthread_mutex_destroy(&layer->lock);
    pthread_mutex_destroy(&layer->refresh_lock);
    free(layer);
}

void rfc6962_stats_read(rfc6962 *layer, rfc6962_stats *out)
{
    *out = (rfc6962_stats){atomic_load(&layer->requests),  atomic_load(&layer->bad_requests),
                           atomic_load(&layer->errors),    atomic_load(&layer->tiles_rendered),
                           atomic_load(&layer->accepted),  atomic_load(&layer->refused)};
}

/* ---- Query parameters ------------------------------------------------------------------ */

typedef enum param_status {
    PARAM_ABSENT = 0,
    PARAM_OK = 1,
    PARAM_MALFORMED = 2, /* bad percent-encoding or far too long */
} param_status;

/* Percent-decodes s[0..len) into out (cap bytes, NUL-terminated). */
static bool percent_decode(const char *s, size_t len, char *out, size_t cap, size_t *out_len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (len - i < 3)
                return false;
            int hi = hex_digit_value(s[i + 1]), lo = hex_digit_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (n + 1 >= cap)
            return false;
        out[n++] = c;
    }
    out[n] = 0;
    *out_len = n;
    return true;
}

/* The first value of parameter `name` in a raw query string. */
static param_status query_param(const char *query, const char *name, char out[PARAM_MAX],
                                size_t *out_len)
{
    if (!query)
        return PARAM_ABSENT;
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *name_end = eq ? eq : end;
        char decoded[PARAM_MAX];
        size_t decoded_len;
        if (percent_decode(p, (size_t)(name_end - p), decoded, sizeof decoded, &decoded_len) &&
            strcmp(decoded, name) == 0 && decoded_len == strlen(name)) {
            const char *v = eq ? eq + 1 : end;
            if (!percent_decode(v, (size_t)(end - v), out, PARAM_MAX, out_len))
                return PARAM_MALFORMED;
            if (memchr(out, 0, *out_len))
                return PARAM_MALFORMED;
            return PARAM_OK;
        }
        p = amp ? amp + 1 : end;
    }
    return PARAM_ABSENT;
}

/* strconv.ParseInt(s, 10, 64): optional sign, one or more decimal digits, in range. */
static bool parse_int64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool negative = false;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
        negative = s[i] == '-';
        i++;
    }
    if (i == len)
        return false;
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = negative ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* Reads an integer parameter; on failure fills a 400 whose reason says which one. */
static bool int_param(const read_request *req, const char *name, int64_t *value,
                      read_response *out, const char *context)
{
    char text[PARAM_MAX];
    size_t len = 0;
    param_status st = query_param(req->query, name, text, &len);
    char reason[256];
    if (st == PARAM_ABSENT || (st == PARAM_OK && len == 0)) {
        snprintf(reason, sizeof reason, "%s: parameter '%s' is required", context, name);
    } else if (st == PARAM_MALFORMED || !parse_int64(text, len, value)) {
        snprintf(reason, sizeof reason, "%s: parameter '%s' is malformed", context, name);
    } else {
        return true;
    }
    read_response_error(out, 400, reason);
    return false;
}

/* ---- Rendering ------------------------------------------------------------------------ */

/* A rendered data tile: JSON fragments {"leaf_input":…,"extra_data":…} joined with ','.
 * Stored in a blob as u32 count, u32 offsets[count + 1] (offset of fragment i in the JSON;
 * the last is the JSON length + 1, as if a comma followed), then the JSON. */
typedef struct rendered_tile {
    read_blob *blob;
    uint32_t count;
    const char *json;
} rendered_tile;

static uint32_t rendered_offset(const rendered_tile *r, uint32_t i)
{
    uint32_t v;
    memcpy(&v, r->blob->data + 4 + 4 * (size_t)i, 4);
    return v;
}

static void rendered_view(rendered_tile *r, read_blob *b)
{
    r->blob = b;
    memcpy(&r->count, b->data, 4);
    r->json = (const char *)b->data + 4 + 4 * ((size_t)r->count + 1);
}

typedef struct issuer_set {
    uint8_t fingerprints[RENDER_ISSUERS][32];
    read_blob *blobs[RENDER_ISSUERS];
    size_t count, next;
} issuer_set;

static void issuer_set_free(issuer_set *set)
{
    for (size_t i = 0; i < set->count; i++)
        read_blob_release(set->blobs[i]);
}

/* The DER of the issuer with this fingerprint, via a small per-render set, the cache and
 * storage (which checks it hashes to its name). */
static read_blob *issuer_get(rfc6962 *layer, issuer_set *set, const uint8_t fp[32], error *err)
{
    for (size_t i = 0; i < set->count; i++)
        if (memcmp(set->fingerprints[i], fp, 32) == 0)
            return set->blobs[i];
    char key[8 + 64];
    memcpy(key, "issuer/", 7);
    hex_encode(key + 7, fp, 32);
    read_blob *b;
    int rc = read_cache_fetch(layer->cache, layer->storage, key, ISSUER_MAX, true, &b, err);
    if (rc != STORAGE_OK) {
        if (rc == STORAGE_NOT_FOUND)
            error_set(err, "%s is not published", key);
        return NULL;
    }
    size_t slot;
    if (set->count < RENDER_ISSUERS) {
        slot = set->count++;
    } else {
        slot = set->next;
        set->next = (set->next + 1) % RENDER_ISSUERS;
        read_blob_release(set->blobs[slot]);
    }
    memcpy(set->fingerprints[slot], fp, 32);
    set->blobs[slot] = b;
    return b;
}

static int append_fragment(rfc6962 *layer, issuer_set *set, const ct_entry *e, buffer *json,
                           buffer *scratch, error *err)
{
    const uint8_t *issuers[CT_MAX_FINGERPRINTS];
    size_t lens[CT_MAX_FINGERPRINTS];
    for (size_t i = 0; i < e->fingerprint_count; i++) {
        read_blob *b = issuer_get(layer, set, e->fingerprints + 32 * i, err);
        if (!b)
            return -1;
        issuers[i] = b->data;
        lens[i] = b->len;
    }
    buffer_reset(scratch);
    if (ct_merkle_tree_leaf_encode(scratch, e) != 0)
        return error_set(err, "entry %" PRIu64 ": cannot encode its MerkleTreeLeaf",
                         e->leaf_index);
    int rc = buffer_append_str(json, "{\"leaf_input\":\"");
    rc |= base64_encode(json, scratch->data, scratch->len);
    rc |= buffer_append_str(json, "\",\"extra_data\":\"");
    buffer_reset(scratch);
    if (ct_extra_data_encode(scratch, e, issuers, lens, e->fingerprint_count, err) != 0)
        return error_wrap(err, "entry %" PRIu64, e->leaf_index);
    rc |= base64_encode(json, scratch->data, scratch->len);
    rc |= buffer_append_str(json, "\"}");
    return rc == 0 ? 0 : error_set(err, "out of memory");
}

/* The entries of data tile n in a tree that holds `width` of them (1..256). The partial path
 * is tried first, then the full tile that supersedes it. */
static int load_data_tile(rfc6962 *layer, uint64_t n, unsigned width, buffer *plain, error *err)
{
    tile_id t = {.data = true, .index = n, .width = (uint16_t)(width % TILE_WIDTH)};
    char path[TILE_PATH_MAX];
    read_blob *b = NULL;
    int rc = STORAGE_NOT_FOUND;
    for (int attempt = 0; attempt < 2 && rc == STORAGE_NOT_FOUND; attempt++) {
        if (attempt == 1) {
            if (t.width == 0)
                break;
            t.width = 0;
        }
        tile_path_format(&t, path);
        /* The read path may hold the stored bytes already; a render does not add them. */
        rc = read_cache_fetch(layer->cache, layer->storage, path, layer->max_data_tile, false,
                              &b, err);
    }
    if (rc != STORAGE_OK) {
        if (rc == STORAGE_NOT_FOUND)
            error_set(err, "data tile %" PRIu64 " (%u entries) is not published", n, width);
        return -1;
    }
    if (gzip_is_gzip(b->data, b->len)) {
        rc = gzip_decompress(b->data, b->len, layer->max_data_tile, plain, err);
        if (rc != 0)
            error_wrap(err, "%s", path);
    } else {
        rc = buffer_append(plain, b->data, b->len);
        if (rc != 0)
            error_set(err, "out of memory");
    }
    read_blob_release(b);
    return rc;
}

static int render_tile(rfc6962 *layer, uint64_t n, unsigned width, read_blob **out, error *err)
{
    buffer plain = {0}, json = {0}, scratch = {0};
    uint32_t offsets[TILE_WIDTH + 1];
    issuer_set issuers = {0};
    int rc = load_data_tile(layer, n, width, &plain, err);
    ct_data_tile_iter it;
    ct_data_tile_iter_init(&it, plain.data, plain.len);
    for (unsigned i = 0; rc == 0 && i < width; i++) {
        ct_entry e;
        int next = ct_data_tile_next(&it, &e, err);
        if (next != 1) {
            if (next == 0)
                error_set(err, "data tile %" PRIu64 " has %u entries, want %u", n, i, width);
            rc = -1;
            break;
        }
        if (e.leaf_index != n * TILE_WIDTH + i) {
            rc = error_set(err, "entry %" PRIu64 " of data tile %" PRIu64
                                " carries leaf_index %" PRIu64,
                           n * TILE_WIDTH + i, n, e.leaf_index);
            break;
        }
        if (i > 0 && buffer_append_byte(&json, ',') != 0) {
            rc = error_set(err, "out of memory");
            break;
        }
        offsets[i] = (uint32_t)json.len;
        rc = append_fragment(layer, &issuers, &e, &json, &scratch, err);
        if (rc == 0 && json.len >= UINT32_MAX - 1)
            rc = error_set(err, "data tile %" PRIu64 " renders too large", n);
    }
    if (rc == 0) {
        offsets[width] = (uint32_t)json.len + 1;
        size_t header = 4 + 4 * ((size_t)width + 1);
        read_blob *b = malloc(sizeof *b + header + json.len);
        if (!b) {
            rc = error_set(err, "out of memory");
        } else {
            atomic_init(&b->refs, 1);
            b->len = header + json.len;
            b->has_digest = false;
            b->info = NULL;
            uint32_t count = width;
            memcpy(b->data, &count, 4);
            memcpy(b->data + 4, offsets, 4 * ((size_t)width + 1));
            memcpy(b->data + header, json.data, json.len);
            *out = b;
            atomic_fetch_add(&layer->tiles_rendered, 1);
        }
    }
    issuer_set_free(&issuers);
    buffer_free(&plain);
    buffer_free(&json);
    buffer_free(&scratch);
    return rc;
}

/* The rendering of data tile n as a tree holding `width` of its entries has it. */
static int rendered_get(rfc6962 *layer, uint64_t n, unsigned width, rendered_tile *out,
                        error *err)
{
    tile_id t = {.data = true, .index = n, .width = (uint16_t)(width % TILE_WIDTH)};
    char key[16 + TILE_PATH_MAX];
    memcpy(key, "rfc6962/", 8);
    tile_path_format(&t, key + 8);
    read_blob *b = read_cache_get(layer->cache, key);
    if (!b) {
        if (render_tile(layer, n, width, &b, err) != 0)
            return -1;
        read_cache_put(layer->cache, key, b);
    }
    rendered_view(out, b);
    return 0;
}

/* ---- Endpoints -------------------------------------------------------------------------- */

static void set_json(read_response *out, buffer *body, const char *cache_control)
{
    out->status = 200;
    out->content_type = "application/json";
    snprintf(out->cache_control, sizeof out->cache_control, "%s", cache_control);
    size_t len;
    out->body = buffer_steal(body, &len);
    out->body_len = len;
}

static void internal_error(rfc6962 *layer, read_response *out, const char *what, const error *err)
{
    atomic_fetch_add(&layer->errors, 1);
    log_error("RFC 6962 read layer failed", "origin=%s what=%s reason=\"%s\"", layer->origin,
              what, err->msg);
    read_response_error(out, 500, "internal error");
}

static int append_hash_list(buffer *b, const uint8_t (*hashes)[32], size_t n)
{
    int rc = buffer_append_byte(b, '[');
    for (size_t i = 0; i < n; i++) {
        rc |= buffer_append_str(b, i ? ",\"" : "\"");
        rc |= base64_encode(b, hashes[i], 32);
        rc |= buffer_append_byte(b, '"');
    }
    rc |= buffer_append_byte(b, ']');
    return rc;
}

static void no_checkpoint(rfc6962 *layer, read_response *out)
{
    atomic_fetch_add(&layer->errors, 1);
    read_response_error(out, 503, "no verified checkpoint available yet");
}

static void get_sth(rfc6962 *layer, read_response *out)
{
    sth_snapshot *s = snapshot_get(layer);
    if (!s)
        return no_checkpoint(layer, out);
    buffer b = {0};
    if (buffer_append(&b, s->json, s->json_len) != 0) {
        snapshot_release(s);
        error e = {"out of memory"};
        return internal_error(layer, out, "get-sth", &e);
    }
    snapshot_release(s);
    set_json(out, &b, layer->short_cache);
}

static void bad_request(rfc6962 *layer, read_response *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void bad_request(rfc6962 *layer, read_response *out, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&layer->bad_requests, 1);
    read_response_error(out, 400, reason);
}

/* Proof nodes come from "expanded" tiles: a hash tile plus every tree level inside it
 * (256 + 128 + ... + 1 hashes for a full tile), built once and kept in the cache, so a node
 * costs a lookup instead of up to 127 hashes. Expansions are keyed by tile path and width,
 * and tiles are immutable under their path, so they never go stale. */
#define SOURCE_LOCAL 8

typedef struct node_source {
    rfc6962 *layer;
    tile_reader reader; /* raw tiles, with tiles.h's fallbacks */
    struct {
        tile_id id;
        read_blob *blob;
    } local[SOURCE_LOCAL];
    size_t local_count, local_next;
    error err;
} node_source;

/* Offset (in hashes) of sub-level h inside an expansion of a tile of `count` entries. */
static size_t expansion_offset(size_t count, unsigned h)
{
    size_t offset = 0;
    for (unsigned j = 0; j < h; j++)
        offset += count >> j;
    return offset;
}

static read_blob *expand_tile(node_source *src, const tile_id *t)
{
    uint8_t (*hashes)[MERKLE_HASH_LEN] = malloc(TILE_WIDTH * MERKLE_HASH_LEN);
    if (!hashes)
        return error_set(&src->err, "out of memory"), NULL;
    size_t count;
    if (tile_reader_tile(&src->reader, t->level, t->index, hashes, &count, &src->err) != 0) {
        free(hashes);
        return NULL;
    }
    size_t total = expansion_offset(count, TILE_HEIGHT);
    read_blob *b = malloc(sizeof *b + total * MERKLE_HASH_LEN);
    if (!b) {
        free(hashes);
        return error_set(&src->err, "out of memory"), NULL;
    }
    atomic_init(&b->refs, 1);
    b->len = total * MERKLE_HASH_LEN;
    b->has_digest = false;
    b->info = NULL;
    memcpy(b->data, hashes, count * MERKLE_HASH_LEN);
    free(hashes);
    for (unsigned h = 1; h < TILE_HEIGHT; h++) {
        const uint8_t *below = b->data + expansion_offset(count, h - 1) * MERKLE_HASH_LEN;
        uint8_t *level = b->data + expansion_offset(count, h) * MERKLE_HASH_LEN;
        for (size_t k = 0; k < count >> h; k++)
            merkle_node_hash(below + 2 * k * MERKLE_HASH_LEN, below + (2 * k + 1) * MERKLE_HASH_LEN,
                             level + k * MERKLE_HASH_LEN);
    }
    return b;
}

static read_blob *expanded_get(node_source *src, const tile_id *t)
{
    for (size_t i = 0; i < src->local_count; i++)
        if (src->local[i].id.level == t->level && src->local[i].id.index == t->index &&
            src->local[i].id.width == t->width)
            return src->local[i].blob;
    char key[32 + TILE_PATH_MAX];
    memcpy(key, "rfc6962/nodes/", 14);
    if (tile_path_format(t, key + 14) < 0)
        return error_set(&src->err, "invalid tile"), NULL;
    read_blob *b = read_cache_get(src->layer->cache, key);
    if (!b) {
        b = expand_tile(src, t);
        if (!b)
            return NULL;
        read_cache_put(src->layer->cache, key, b);
    }
    size_t slot;
    if (src->local_count < SOURCE_LOCAL) {
        slot = src->local_count++;
    } else {
        slot = src->local_next;
        src->local_next = (src->local_next + 1) % SOURCE_LOCAL;
        read_blob_release(src->local[slot].blob);
    }
    src->local[slot].id = *t;
    src->local[slot].blob = b;
    return b;
}

/* A merkle_get_node_fn over expanded tiles of the verified tree (ctx = node_source). */
static int node_source_get(void *ctx, unsigned tree_level, uint64_t index,
                           uint8_t out[MERKLE_HASH_LEN])
{
    node_source *src = ctx;
    tile_id t;
    unsigned position;
    if (tile_locate(src->reader.size, tree_level, index, &t, &position, &src->err) != 0)
        return -1;
    read_blob *b = expanded_get(src, &t);
    if (!b)
        return -1;
    size_t count = t.width ? t.width : TILE_WIDTH;
    unsigned h = tree_level % TILE_HEIGHT;
    size_t k = position >> h;
    if (k >= count >> h)
        return error_set(&src->err, "tile too short for node (level %u, index %" PRIu64 ")",
                         tree_level, index);
    memcpy(out, b->data + (expansion_offset(count, h) + k) * MERKLE_HASH_LEN, MERKLE_HASH_LEN);
    return 0;
}

typedef struct proof_job {
    bool consistency;
    uint64_t a, b; /* (index, size) or (size1, size2) */
    uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
    size_t len;
} proof_job;

/* Runs a proof generator over the tiles of the verified tree; fails with the tiles' reason. */
static int run_proof(rfc6962 *layer, const sth_snapshot *s, proof_job *job, error *err)
{
    node_source src = {.layer = layer};
    /* Any node of a smaller tree is also a node of the verified one, so its tiles serve
     * every size up to it, including sizes never published. */
    tile_reader_init(&src.reader, s->sc.cp.size, fetch_hash_tile, layer);
    int rc = job->consistency
                 ? merkle_consistency_proof(node_source_get, &src, job->a, job->b, job->proof,
                                            &job->len, err)
                 : merkle_inclusion_proof(node_source_get, &src, job->a, job->b, job->proof,
                                          &job->len, err);
    if (rc != 0 && error_is_set(&src.err))
        error_wrap(err, "%s", src.err.msg);
    for (size_t i = 0; i < src.local_count; i++)
        read_blob_release(src.local[i].blob);
    tile_reader_free(&src.reader);
    return rc;
}

static void get_sth_consistency(rfc6962 *layer, const read_request *req, read_response *out)
{
    const char *ctx = "failed to parse consistency range";
    int64_t first, second;
    if (!int_param(req, "first", &first, out, ctx) || !int_param(req, "second", &second, out, ctx))
        return (void)atomic_fetch_add(&layer->bad_requests, 1);
    if (first < 0 || second < 0)
        return bad_request(layer, out, "%s: first and second params cannot be <0: %" PRId64
                                       " %" PRId64, ctx, first, second);
    if (second < first)
        return bad_request(layer, out, "%s: invalid first, second params: %" PRId64 " %" PRId64,
                           ctx, first, second);
    sth_snapshot *s = snapshot_get(layer);
    if (!s)
        return no_checkpoint(layer, out);
    if ((uint64_t)second > s->sc.cp.size) {
        uint64_t size = s->sc.cp.size;
        snapshot_release(s);
        return bad_request(layer, out, "need tree size: %" PRId64 " for proof but only got: %" PRIu64,
                           second, size);
    }
    proof_job job = {.consistency = true, .a = (uint64_t)first, .b = (uint64_t)second};
    error err = {{0}};
    int rc = 0;
    if (first > 0 && first < second)
        rc = run_proof(layer, s, &job, &err);
    snapshot_release(s);
    if (rc != 0)
        return internal_error(layer, out, "get-sth-consistency", &err);
    buffer b = {0};
    rc = buffer_append_str(&b, "{\"consistency\":");
    rc |= append_hash_list(&b, (const uint8_t(*)[32])job.proof, job.len);
    rc |= buffer_append_byte(&b, '}');
    if (rc != 0) {
        buffer_free(&b);
        error e = {"out of memory"};
        return internal_error(layer, out, "get-sth-consistency", &e);
    }
    set_json(out, &b, LONG_CACHE);
}

static void get_proof_by_hash(rfc6962 *layer, const read_request *req, read_response *out)
{
    char text[PARAM_MAX];
    size_t len = 0;
    param_status st = query_param(req->query, "hash", text, &len);
    if (st != PARAM_OK || len == 0)
        return bad_request(layer, out, "get-proof-by-hash: missing / empty hash param");
    uint8_t hash[32];
    buffer decoded = {0};
    if (base64_decode(&decoded, text, len) != 0) {
        buffer_free(&decoded);
        return bad_request(layer, out, "get-proof-by-hash: invalid base64 hash");
    }
    bool right_length = decoded.len == 32;
    if (right_length)
        memcpy(hash, decoded.data, 32);
    buffer_free(&decoded);
    if (!right_length)
        return bad_request(layer, out, "get-proof-by-hash: hash must be 32 bytes");
    char size_text[PARAM_MAX];
    int64_t tree_size;
    st = query_param(req->query, "tree_size", size_text, &len);
    if (st != PARAM_OK || !parse_int64(size_text, len, &tree_size) || tree_size < 1)
        return bad_request(layer, out, "get-proof-by-hash: missing or invalid tree_size");
    sth_snapshot *s = snapshot_get(layer);
    if (!s)
        return no_checkpoint(layer, out);
    uint64_t size = s->sc.cp.size;
    if ((uint64_t)tree_size > size) {
        snapshot_release(s);
        read_response_error(out, 404, "log returned tree size smaller than tree_size");
        return;
    }
    if (!layer->index) {
        snapshot_release(s);
        atomic_fetch_add(&layer->errors, 1);
        read_response_error(out, 503, "get-proof-by-hash: no leaf index for this log");
        return;
    }
    uint64_t index;
    error err = {{0}};
    int rc = leafindex_lookup(layer->index, hash, &index, &err);
    if (rc < 0) {
        snapshot_release(s);
        return internal_error(layer, out, "get-proof-by-hash", &err);
    }
    if (rc == LEAFINDEX_NOT_FOUND || index >= (uint64_t)tree_size) {
        snapshot_release(s);
        char reason[160];
        snprintf(reason, sizeof reason,
                 "get-proof-by-hash: no leaf with this hash in the tree of size %" PRId64,
                 tree_size);
        read_response_error(out, 404, reason);
        return;
    }
    proof_job job = {.consistency = false, .a = index, .b = (uint64_t)tree_size};
    rc = run_proof(layer, s, &job, &err);
    snapshot_release(s);
    if (rc != 0)
        return internal_error(layer, out, "get-proof-by-hash", &err);
    buffer b = {0};
    rc = buffer_printf(&b, "{\"leaf_index\":%" PRIu64 ",\"audit_path\":", index);
    rc |= append_hash_list(&b, (const uint8_t(*)[32])job.proof, job.len);
    rc |= buffer_append_byte(&b, '}');
    if (rc != 0) {
        buffer_free(&b);
        error e = {"out of memory"};
        return internal_error(layer, out, "get-proof-by-hash", &e);
    }
    set_json(out, &b, LONG_CACHE);
}

/* The tile holding leaf `index` in a tree of `size` (index < size): its number and how many
 * of its entries the tree has. */
static void tile_for_leaf(uint64_t index, uint64_t size, uint64_t *n, unsigned *width)
{
    *n = index / TILE_WIDTH;
    uint64_t end = (*n + 1) * TILE_WIDTH;
    *width = (unsigned)((end <= size ? end : size) - *n * TILE_WIDTH);
}

static void get_entries(rfc6962 *layer, const read_request *req, read_response *out)
{
    const char *ctx = "bad range on get-entries request";
    int64_t start, end;
    if (!int_param(req, "start", &start, out, ctx) || !int_param(req, "end", &end, out, ctx))
        return (void)atomic_fetch_add(&layer->bad_requests, 1);
    if (start < 0 || end < 0)
        return bad_request(layer, out, "%s: start (%" PRId64 ") and end (%" PRId64
                                       ") parameters must be >= 0", ctx, start, end);
    if (start > end)
        return bad_request(layer, out, "%s: start (%" PRId64 ") and end (%" PRId64
                                       ") is not a valid range", ctx, start, end);
    sth_snapshot *s = snapshot_get(layer);
    if (!s)
        return no_checkpoint(layer, out);
    uint64_t size = s->sc.cp.size;
    snapshot_release(s);
    if ((uint64_t)start >= size)
        return bad_request(layer, out, "need tree size: %" PRIu64 " to get leaves but only got: %" PRIu64,
                           (uint64_t)start + 1, size);
    uint64_t n;
    unsigned width;
    tile_for_leaf((uint64_t)start, size, &n, &width);
    uint64_t last = n * TILE_WIDTH + width - 1;
    if ((uint64_t)end < last)
        last = (uint64_t)end;
    rendered_tile r;
    error err = {{0}};
    if (rendered_get(layer, n, width, &r, &err) != 0)
        return internal_error(layer, out, "get-entries", &err);
    uint32_t a = (uint32_t)((uint64_t)start - n * TILE_WIDTH);
    uint32_t b = (uint32_t)(last - n * TILE_WIDTH);
    uint32_t from = rendered_offset(&r, a), to = rendered_offset(&r, b + 1) - 1;
    buffer body = {0};
    int rc = buffer_reserve(&body, 16 + (to - from));
    rc |= buffer_append_str(&body, "{\"entries\":[");
    rc |= buffer_append(&body, r.json + from, to - from);
    rc |= buffer_append_str(&body, "]}");
    read_blob_release(r.blob);
    if (rc != 0) {
        buffer_free(&body);
        error e = {"out of memory"};
        return internal_error(layer, out, "get-entries", &e);
    }
    set_json(out, &body, width == TILE_WIDTH ? IMMUTABLE_CACHE : layer->short_cache);
}

static void get_entry_and_proof(rfc6962 *layer, const read_request *req, read_response *out)
{
    const char *ctx = "failed to parse get-entry-and-proof params";
    int64_t leaf_index, tree_size;
    if (!int_param(req, "leaf_index", &leaf_index, out, ctx) ||
        !int_param(req, "tree_size", &tree_size, out, ctx))
        return (void)atomic_fetch_add(&layer->bad_requests, 1);
    if (tree_size <= 0)
        return bad_request(layer, out, "%s: tree_size must be > 0, got: %" PRId64, ctx, tree_size);
    if (leaf_index < 0)
        return bad_request(layer, out, "%s: leaf_index must be >= 0, got: %" PRId64, ctx,
                           leaf_index);
    if (leaf_index >= tree_size)
        return bad_request(layer, out, "%s: leaf_index %" PRId64 " out of range for tree of size %" PRId64,
                           ctx, leaf_index, tree_size);
    sth_snapshot *s = snapshot_get(layer);
    if (!s)
        return no_checkpoint(layer, out);
    uint64_t size = s->sc.cp.size;
    if ((uint64_t)tree_size > size) {
        snapshot_release(s);
        return bad_request(layer, out, "need tree size: %" PRId64 " for proof but only got: %" PRIu64,
                           tree_size, size);
    }
    proof_job job = {.consistency = false, .a = (uint64_t)leaf_index, .b = (uint64_t)tree_size};
    error err = {{0}};
    int rc = run_proof(layer, s, &job, &err);
    snapshot_release(s);
    if (rc != 0)
        return internal_error(layer, out, "get-entry-and-proof", &err);
    uint64_t n;
    unsigned width;
    tile_for_leaf((uint64_t)leaf_index, size, &n, &width);
    rendered_tile r;
    if (rendered_get(layer, n, width, &r, &err) != 0)
        return internal_error(layer, out, "get-entry-and-proof", &err);
    uint32_t i = (uint32_t)((uint64_t)leaf_index - n * TILE_WIDTH);
    uint32_t from = rendered_offset(&r, i), to = rendered_offset(&r, i + 1) - 1;
    buffer body = {0};
    /* The fragment is {"leaf_input":…,"extra_data":…}; the proof goes before its brace. */
    rc = buffer_append(&body, r.json + from, to - from - 1);
    rc |= buffer_append_str(&body, ",\"audit_path\":");
    rc |= append_hash_list(&body, (const uint8_t(*)[32])job.proof, job.len);
    rc |= buffer_append_byte(&body, '}');
    read_blob_release(r.blob);
    if (rc != 0) {
        buffer_free(&body);
        error e = {"out of memory"};
        return internal_error(layer, out, "get-entry-and-proof", &e);
    }
    set_json(out, &body, LONG_CACHE);
}

/* ---- Dispatch ------------------------------------------------------------------------- */

typedef enum endpoint {
    ENDPOINT_NONE,
    ENDPOINT_GET_STH,
    ENDPOINT_GET_STH_CONSISTENCY,
    ENDPOINT_GET_PROOF_BY_HASH,
    ENDPOINT_GET_ENTRIES,
    ENDPOINT_GET_ENTRY_AND_PROOF,
} endpoint;

static endpoint endpoint_for(const char *path, size_t len)
{
    static const struct {
        const char *name;
        endpoint e;
    } names[] = {
        {"get-sth", ENDPOINT_GET_STH},
        {"get-sth-consistency", ENDPOINT_GET_STH_CONSISTENCY},
        {"get-proof-by-hash", ENDPOINT_GET_PROOF_BY_HASH},
        {"get-entries", ENDPOINT_GET_ENTRIES},
        {"get-entry-and-proof", ENDPOINT_GET_ENTRY_AND_PROOF},
    };
    size_t prefix = strlen(ENDPOINT_PREFIX);
    if (!path || len <= prefix || memcmp(path, ENDPOINT_PREFIX, prefix) != 0)
        return ENDPOINT_NONE;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (len - prefix == strlen(names[i].name) &&
            memcmp(path + prefix, names[i].name, len - prefix) == 0)
            return names[i].e;
    return ENDPOINT_NONE;
}

bool rfc6962_handles_path(const char *path, size_t len)
{
    return endpoint_for(path, len) != ENDPOINT_NONE;
}

void rfc6962_handle(rfc6962 *layer, const read_request *req, read_response *out)
{
    memset(out, 0, sizeof *out);
    atomic_fetch_add(&layer->requests, 1);
    endpoint e = endpoint_for(req->path, req->path ? req->path_len : 0);
    if (e == ENDPOINT_NONE) {
        read_response_error(out, 404, "not found");
        return;
    }
    const char *method = req->method ? req->method : "";
    if (strcmp(method, "OPTIONS") == 0) {
        out->status = 204;
        out->allow = "GET, HEAD, OPTIONS";
        out->preflight = true;
        snprintf(out->cache_control, sizeof out->cache_control, "public, max-age=86400");
        return;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        atomic_fetch_add(&layer->bad_requests, 1);
        read_response_error(out, 405, "method not allowed");
        out->allow = "GET, HEAD, OPTIONS";
        return;
    }
    switch (e) {
    case ENDPOINT_GET_STH:
        get_sth(layer, out);
        break;
    case ENDPOINT_GET_STH_CONSISTENCY:
        get_sth_consistency(layer, req, out);
        break;
    case ENDPOINT_GET_PROOF_BY_HASH:
        get_proof_by_hash(layer, req, out);
        break;
    case ENDPOINT_GET_ENTRIES:
        get_entries(layer, req, out);
        break;
    case ENDPOINT_GET_ENTRY_AND_PROOF:
        get_entry_and_proof(layer, req, out);
        break;
    case ENDPOINT_NONE:
        break;
    }
}
