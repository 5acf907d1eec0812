#include "storage.h"

#include <string.h>

static const char IMMUTABLE[] = "public, max-age=604800, immutable";
/* Metadata files change only when an operator edits the configuration. */
static const char SHORT_LIVED[] = "public, max-age=300";

storage_meta storage_meta_for_key(const char *key)
{
    storage_meta meta = {"application/octet-stream", NULL, NULL};
    if (!key)
        return meta;
    if (strcmp(key, "checkpoint") == 0) {
        meta.content_type = "text/plain; charset=utf-8";
        meta.cache_control = "no-store";
    } else if (strncmp(key, "tile/data/", 10) == 0) {
        meta.content_encoding = "gzip";
        meta.cache_control = IMMUTABLE;
    } else if (strncmp(key, "tile/", 5) == 0) {
        meta.cache_control = IMMUTABLE;
    } else if (strncmp(key, "issuer/", 7) == 0) {
        meta.content_type = "application/pkix-cert";
        meta.cache_control = IMMUTABLE;
    } else if (strcmp(key, "log.v3.json") == 0) {
        meta.content_type = "application/json";
        meta.cache_control = SHORT_LIVED;
    } else if (strcmp(key, "roots.pem") == 0) {
        meta.content_type = "application/x-pem-file";
        meta.cache_control = SHORT_LIVED;
    }
    /* staging/ and anything else: octet-stream, never cached. */
    return meta;
}

static bool key_char_allowed(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-' || c == '/';
}

bool storage_key_is_valid(const char *key, size_t len)
{
    if (!key || len == 0 || len > STORAGE_KEY_MAX)
        return false;
    bool segment_start = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (!key_char_allowed(c))
            return false;
        if (segment_start && (c == '/' || c == '.'))
            return false; /* empty segment (leading '/', "//") or a dot-name */
        segment_start = c == '/';
    }
    return !segment_start; /* a trailing '/' leaves an empty last segment */
}

static int check_key(const char *key, error *err)
{
    size_t len = key ? strnlen(key, STORAGE_KEY_MAX + 1) : 0;
    if (!storage_key_is_valid(key, len)) {
        error_set(err, "invalid object key");
        return STORAGE_INVALID_KEY;
    }
    return STORAGE_OK;
}

storage *storage_open(const char *url, error *err)
{
    if (!url)
        return error_set(err, "no storage URL"), NULL;
    if (strncmp(url, "file://", 7) == 0) {
        const char *path = url + 7;
        if (strncmp(path, "localhost/", 10) == 0)
            path += 9;
        if (path[0] != '/')
            return error_set(err, "storage URL %s: file:// needs an absolute path "
                                  "(file:///dir)", url), NULL;
        return storage_file_open(path, err);
    }
    if (strncmp(url, "s3://", 5) == 0)
        return storage_s3_open(url, err);
    return error_set(err, "storage URL %s: unknown scheme (want file:// or s3://)", url), NULL;
}

void storage_close(storage *s)
{
    if (s)
        s->backend->close(s);
}

const char *storage_scheme(const storage *s)
{
    return s->backend->scheme;
}

int storage_write_batch(storage *s, const storage_object *objects, size_t count, int *results,
                        error *err)
{
    int rc = STORAGE_OK;
    for (size_t i = 0; i < count; i++) {
        if (rc != STORAGE_OK)
            break;
        if (check_key(objects[i].key, NULL) != STORAGE_OK) {
            error_set(err, "object %zu: invalid object key", i);
            rc = STORAGE_INVALID_KEY;
        } else if (!objects[i].data && objects[i].len > 0) {
            error_set(err, "object %s: no data", objects[i].key);
            rc = STORAGE_ERROR;
        } else if (objects[i].mode != STORAGE_PUT && objects[i].mode != STORAGE_CREATE) {
            error_set(err, "object %s: unknown write mode", objects[i].key);
            rc = STORAGE_ERROR;
        }
    }
    if (rc != STORAGE_OK) {
        /* Nothing is written when any object is malformed: a batch is one unit of work. */
        if (results)
            for (size_t i = 0; i < count; i++)
                results[i] = rc;
        return rc;
    }
    if (count == 0)
        return STORAGE_OK;
    return s->backend->write_batch(s, objects, count, results, err);
}

int storage_put(storage *s, const char *key, const void *data, size_t len,
                const storage_meta *meta, error *err)
{
    storage_object object = {key, data, len, STORAGE_PUT, meta};
    return storage_write_batch(s, &object, 1, NULL, err);
}

int storage_create(storage *s, const char *key, const void *data, size_t len,
                   const storage_meta *meta, error *err)
{
    storage_object object = {key, data, len, STORAGE_CREATE, meta};
    return storage_write_batch(s, &object, 1, NULL, err);
}

int storage_get(storage *s, const char *key, size_t max_len, buffer *out, error *err)
{
    int rc = check_key(key, err);
    if (rc != STORAGE_OK)
        return rc;
    buffer_reset(out);
    return s->backend->get(s, key, max_len, out, err);
}

int storage_get_info(storage *s, const char *key, size_t max_len, buffer *out,
                     storage_object_info *info, error *err)
{
    memset(info, 0, sizeof *info);
    int rc = check_key(key, err);
    if (rc != STORAGE_OK)
        return rc;
    buffer_reset(out);
    if (s->backend->get_info)
        return s->backend->get_info(s, key, max_len, out, info, err);
    return s->backend->get(s, key, max_len, out, err);
}

int storage_delete(storage *s, const char *key, error *err)
{
    int rc = check_key(key, err);
    if (rc != STORAGE_OK)
        return rc;
    return s->backend->remove(s, key, err);
}
