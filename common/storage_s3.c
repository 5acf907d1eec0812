/* storage: the s3:// backend. Objects are PUT with the metadata DESIGN §4 gives them (the
 * headers a CDN in front of the bucket passes on), a batch goes out in parallel, and
 * create-if-absent is a conditional PUT (If-None-Match: *) whose refusal is settled by reading
 * the object back: identical bytes are success (a replayed round), different ones a conflict. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3.h"
#include "storage.h"

typedef struct s3_storage {
    storage base; /* first: the interface's handle */
    s3_client *client;
} s3_storage;

static s3_client *client_of(storage *s)
{
    return ((s3_storage *)s)->client;
}

/* A 404 means "no such object" only when the bucket exists: a missing bucket is a
 * configuration error and must never look like an empty log. */
static bool no_such_bucket(const s3_response *r)
{
    return r->status == 404 && strstr(r->reason, "NoSuchBucket") != NULL;
}

static int fail(error *err, const s3_client *c, const s3_request *req, const s3_response *resp)
{
    s3_error(err, c, req, resp);
    return STORAGE_ERROR;
}

/* Settles refused creates (412): GETs every such object in parallel and compares. */
static void settle_refused_creates(s3_client *c, const storage_object *objects, size_t count,
                                   int *results, error *first_err, size_t *first_failed)
{
    size_t refused = 0;
    for (size_t i = 0; i < count; i++)
        refused += results[i] == STORAGE_CONFLICT;
    if (refused == 0)
        return;
    s3_request *requests = calloc(refused, sizeof *requests);
    s3_response *responses = calloc(refused, sizeof *responses);
    size_t *index = calloc(refused, sizeof *index);
    error err = {{0}};
    size_t n = 0;
    if (requests && responses && index) {
        for (size_t i = 0; i < count; i++) {
            if (results[i] != STORAGE_CONFLICT)
                continue;
            index[n] = i;
            /* One byte more than expected is enough to tell "longer" from "identical". */
            requests[n++] = (s3_request){.method = "GET", .key = objects[i].key,
                                         .max_response_bytes = objects[i].len + 1};
        }
    }
    if (n != refused || s3_perform(c, requests, responses, n, &err) != 0) {
        if (n != refused)
            error_set(&err, "out of memory");
        for (size_t i = 0; i < count; i++) {
            if (results[i] == STORAGE_CONFLICT) {
                results[i] = STORAGE_ERROR;
                if (i < *first_failed) {
                    *first_failed = i;
                    *first_err = err;
                }
            }
        }
        n = 0;
    }
    for (size_t j = 0; j < n; j++) {
        size_t i = index[j];
        const s3_response *r = &responses[j];
        error object_err = {{0}};
        if (r->status == 200 && !r->too_large && r->body.len == objects[i].len &&
            (objects[i].len == 0 || memcmp(r->body.data, objects[i].data, objects[i].len) == 0)) {
            results[i] = STORAGE_OK;
            continue;
        }
        if (r->status == 200) {
            results[i] = STORAGE_CONFLICT;
            error_set(&object_err, "object %s already exists with different content",
                      objects[i].key);
        } else if (r->status == 404 && !no_such_bucket(r)) {
            /* Refused as existing, then gone: deleted in between. Not ours to decide. */
            results[i] = STORAGE_ERROR;
            error_set(&object_err, "object %s: create refused but the object is gone "
                                   "(deleted concurrently?)", objects[i].key);
        } else {
            results[i] = fail(&object_err, c, &requests[j], r);
        }
        if (i < *first_failed) {
            *first_failed = i;
            *first_err = object_err;
        }
    }
    for (size_t j = 0; j < n; j++)
        s3_response_free(&responses[j]);
    free(requests);
    free(responses);
    free(index);
}

static int s3_write_batch(storage *s, const storage_object *objects, size_t count, int *results,
                          error *err)
{
    s3_client *c = client_of(s);
    s3_request *requests = calloc(count, sizeof *requests);
    s3_response *responses = calloc(count, sizeof *responses);
    storage_meta *metas = calloc(count, sizeof *metas);
    int *own_results = results ? NULL : calloc(count, sizeof *own_results);
    int *res = results ? results : own_results;
    int rc = STORAGE_OK;
    if (!requests || !responses || !metas || !res) {
        error_set(err, "out of memory");
        if (results)
            for (size_t i = 0; i < count; i++)
                results[i] = STORAGE_ERROR;
        rc = STORAGE_ERROR;
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        const storage_object *o = &objects[i];
        metas[i] = o->meta ? *o->meta : storage_meta_for_key(o->key);
        requests[i] = (s3_request){
            .method = "PUT",
            .key = o->key,
            .body = o->data,
            .body_len = o->len,
            .content_type = metas[i].content_type,
            .content_encoding = metas[i].content_encoding,
            .cache_control = metas[i].cache_control,
            .if_none_match_any = o->mode == STORAGE_CREATE,
        };
    }
    error perform_err = {{0}};
    if (s3_perform(c, requests, responses, count, &perform_err) != 0) {
        error_set(err, "%s", perform_err.msg);
        for (size_t i = 0; i < count; i++)
            res[i] = STORAGE_ERROR;
        rc = STORAGE_ERROR;
        goto done;
    }
    size_t first_failed = count;
    error first_err = {{0}};
    for (size_t i = 0; i < count; i++) {
        const s3_response *r = &responses[i];
        if (r->status >= 200 && r->status <= 299) {
            res[i] = STORAGE_OK;
        } else if (r->status == 412 && objects[i].mode == STORAGE_CREATE) {
            res[i] = STORAGE_CONFLICT; /* provisional: settled by reading it back */
        } else {
            error object_err = {{0}};
            res[i] = fail(&object_err, c, &requests[i], r);
            if (i < first_failed) {
                first_failed = i;
                first_err = object_err;
            }
        }
    }
    settle_refused_creates(c, objects, count, res, &first_err, &first_failed);
    bool any_error = false, any_conflict = false;
    for (size_t i = 0; i < count; i++) {
        any_error |= res[i] == STORAGE_ERROR;
        any_conflict |= res[i] == STORAGE_CONFLICT;
    }
    rc = any_error ? STORAGE_ERROR : any_conflict ? STORAGE_CONFLICT : STORAGE_OK;
    if (rc != STORAGE_OK)
        error_set(err, "%s", first_err.msg);

done:
    if (responses)
        for (size_t i = 0; i < count; i++)
            s3_response_free(&responses[i]);
    free(requests);
    free(responses);
    free(metas);
    free(own_results);
    return rc;
}

static int s3_get_info(storage *s, const char *key, size_t max_len, buffer *out,
                       storage_object_info *info, error *err)
{
    s3_client *c = client_of(s);
    s3_request request = {.method = "GET", .key = key, .max_response_bytes = max_len};
    s3_response response = {0};
    if (s3_perform(c, &request, &response, 1, err) != 0)
        return STORAGE_ERROR;
    int rc;
    if (response.status == 200 && !response.too_large) {
        buffer previous = *out;
        *out = response.body; /* hand over the body without copying it */
        response.body = previous;
        rc = STORAGE_OK;
        if (info) {
            info->has_meta = true;
            snprintf(info->content_type, sizeof info->content_type, "%s",
                     response.content_type);
            snprintf(info->content_encoding, sizeof info->content_encoding, "%s",
                     response.content_encoding);
            snprintf(info->cache_control, sizeof info->cache_control, "%s",
                     response.cache_control);
            snprintf(info->etag, sizeof info->etag, "%s", response.etag);
            snprintf(info->last_modified, sizeof info->last_modified, "%s",
                     response.last_modified);
        }
    } else if (response.too_large) {
        error_set(err, "object %s is larger than %zu bytes", key, max_len);
        rc = STORAGE_ERROR;
    } else if (response.status == 404 && !no_such_bucket(&response)) {
        error_set(err, "object %s not found", key);
        rc = STORAGE_NOT_FOUND;
    } else {
        rc = fail(err, c, &request, &response);
    }
    s3_response_free(&response);
    return rc;
}

static int s3_get(storage *s, const char *key, size_t max_len, buffer *out, error *err)
{
    return s3_get_info(s, key, max_len, out, NULL, err);
}

static int s3_remove(storage *s, const char *key, error *err)
{
    s3_client *c = client_of(s);
    s3_request request = {.method = "DELETE", .key = key};
    s3_response response = {0};
    if (s3_perform(c, &request, &response, 1, err) != 0)
        return STORAGE_ERROR;
    int rc = STORAGE_OK;
    bool gone = (response.status >= 200 && response.status <= 299) ||
                (response.status == 404 && !no_such_bucket(&response));
    if (!gone)
        rc = fail(err, c, &request, &response);
    s3_response_free(&response);
    return rc;
}

static void s3_close(storage *s)
{
    s3_client_free(client_of(s));
    free(s);
}

static const storage_backend S3_BACKEND = {
    .scheme = "s3",
    .write_batch = s3_write_batch,
    .get = s3_get,
    .remove = s3_remove,
    .close = s3_close,
    .get_info = s3_get_info,
};

storage *storage_s3_open(const char *url, error *err)
{
    s3_storage *s = calloc(1, sizeof *s);
    if (!s)
        return error_set(err, "out of memory"), NULL;
    s->client = s3_client_open(url, err);
    if (!s->client) {
        free(s);
        return NULL;
    }
    s->base.backend = &S3_BACKEND;
    return &s->base;
}
