/* staging: encoding and strict parsing of the round's staging bundle. */
#include "staging.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "tiles.h"
#include "tls_codec.h"

void staging_key(uint64_t size, const uint8_t root[32], char out[STAGING_KEY_MAX])
{
    char hex[65];
    hex_encode(hex, root, 32);
    snprintf(out, STAGING_KEY_MAX, "staging/%" PRIu64 "-%s", size, hex);
}

static int compare_objects(const void *a, const void *b)
{
    return strcmp(((const staging_object *)a)->key, ((const staging_object *)b)->key);
}

/* Only tile paths belong in a bundle: anything else would be replayed into storage blindly. */
static int check_key(const char *key, size_t len, error *err)
{
    tile_id t;
    if (len == 0 || len >= TILE_PATH_MAX)
        return error_set(err, "staging key of %zu bytes is not a tile path", len);
    if (tile_path_parse(key, len, &t, err) != 0)
        return error_wrap(err, "staging key");
    return 0;
}

int staging_encode(buffer *out, staging_object *objects, size_t count, error *err)
{
    if (count > STAGING_MAX_OBJECTS)
        return error_set(err, "%zu staging objects exceed the limit of %d", count,
                         STAGING_MAX_OBJECTS);
    if (count > 1)
        qsort(objects, count, sizeof objects[0], compare_objects);
    for (size_t i = 0; i < count; i++) {
        if (check_key(objects[i].key, strlen(objects[i].key), err) != 0)
            return -1;
        if (i > 0 && strcmp(objects[i - 1].key, objects[i].key) == 0)
            return error_set(err, "duplicate staging key %s", objects[i].key);
        if (objects[i].len > UINT32_MAX)
            return error_set(err, "staging object %s is too large", objects[i].key);
    }
    size_t start = out->len;
    for (size_t i = 0; i < count; i++) {
        size_t klen = strlen(objects[i].key);
        uint8_t head[4];
        be_store(head, klen, 2);
        int rc = buffer_append(out, head, 2);
        rc |= buffer_append(out, objects[i].key, klen);
        be_store(head, objects[i].len, 4);
        rc |= buffer_append(out, head, 4);
        rc |= buffer_append(out, objects[i].data, objects[i].len);
        if (rc != 0) {
            out->len = start;
            return error_set(err, "out of memory encoding the staging bundle");
        }
    }
    if (out->len - start > STAGING_MAX_BYTES) {
        out->len = start;
        return error_set(err, "staging bundle exceeds %zu bytes", STAGING_MAX_BYTES);
    }
    return 0;
}

int staging_parse(staging_bundle *out, const uint8_t *data, size_t len, error *err)
{
    memset(out, 0, sizeof *out);
    if (len > STAGING_MAX_BYTES)
        return error_set(err, "staging bundle of %zu bytes exceeds %zu", len, STAGING_MAX_BYTES);
    /* First pass: validate and count, so the second needs no reallocation. */
    tls_reader r;
    tls_reader_init(&r, data, len);
    size_t count = 0, key_bytes = 0;
    const uint8_t *prev_key = NULL;
    size_t prev_len = 0;
    while (!tls_reader_empty(&r)) {
        const uint8_t *key, *body;
        size_t klen, blen;
        if (count == STAGING_MAX_OBJECTS)
            return error_set(err, "staging bundle has more than %d objects", STAGING_MAX_OBJECTS);
        if (tls_get_vec(&r, 2, &key, &klen) != 0)
            return error_set(err, "staging object %zu: truncated key", count);
        if (memchr(key, 0, klen) != NULL)
            return error_set(err, "staging object %zu: NUL in key", count);
        if (check_key((const char *)key, klen, err) != 0)
            return error_wrap(err, "staging object %zu", count);
        if (prev_key != NULL) {
            size_t m = prev_len < klen ? prev_len : klen;
            int c = memcmp(prev_key, key, m);
            if (c > 0 || (c == 0 && prev_len >= klen))
                return error_set(err, "staging object %zu: keys not strictly increasing", count);
        }
        const uint8_t *lp;
        if (tls_get_bytes(&r, 4, &lp) != 0)
            return error_set(err, "staging object %zu: truncated length", count);
        blen = (size_t)be_load(lp, 4);
        if (tls_get_bytes(&r, blen, &body) != 0)
            return error_set(err, "staging object %zu: truncated data (%zu bytes)", count, blen);
        prev_key = key;
        prev_len = klen;
        key_bytes += klen + 1;
        count++;
    }
    out->objects = calloc(count ? count : 1, sizeof *out->objects);
    out->key_storage = malloc(key_bytes ? key_bytes : 1);
    if (out->objects == NULL || out->key_storage == NULL) {
        staging_bundle_free(out);
        return error_set(err, "out of memory parsing the staging bundle");
    }
    tls_reader_init(&r, data, len);
    char *kp = out->key_storage;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *key, *lp, *body;
        size_t klen;
        /* Cannot fail: the first pass read the same bytes. */
        tls_get_vec(&r, 2, &key, &klen);
        tls_get_bytes(&r, 4, &lp);
        size_t blen = (size_t)be_load(lp, 4);
        tls_get_bytes(&r, blen, &body);
        memcpy(kp, key, klen);
        kp[klen] = '\0';
        out->objects[i] = (staging_object){.key = kp, .data = body, .len = blen};
        kp += klen + 1;
    }
    out->count = count;
    return 0;
}

void staging_bundle_free(staging_bundle *b)
{
    free(b->objects);
    free(b->key_storage);
    memset(b, 0, sizeof *b);
}

const staging_object *staging_find(const staging_bundle *b, const char *key)
{
    size_t lo = 0, hi = b->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(b->objects[mid].key, key);
        if (c == 0)
            return &b->objects[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
