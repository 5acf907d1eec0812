/* lock: the s3:// backend. The lock is one object (the URL's path below the bucket); its
 * version is the ETag. Creation is a PUT with If-None-Match: *, compare-and-swap a PUT with
 * If-Match: <ETag> (sent without quotes: RGW compares the bare value). Racing If-Match writers
 * on RGW sometimes get 500 instead of 412; the client retries those, and the retry gets 412.
 *
 * A retried write is ambiguous: the first attempt may have landed before its answer was lost,
 * and then the retry is refused by our own write. So a refusal after a retry reads the lock
 * back, and finding exactly our bytes there counts as success. */
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "s3.h"

typedef struct s3_lock {
    lock base; /* first: the interface's handle */
    s3_client *client;
} s3_lock;

static s3_client *client_of(lock *l)
{
    return ((s3_lock *)l)->client;
}

static bool no_such_bucket(const s3_response *r)
{
    return r->status == 404 && strstr(r->reason, "NoSuchBucket") != NULL;
}

static int copy_version(const s3_response *r, char version[LOCK_VERSION_MAX], error *err)
{
    size_t len = strlen(r->etag);
    if (len == 0 || len >= LOCK_VERSION_MAX)
        return error_set(err, "S3 lock: the server sent %s ETag",
                         len ? "an over-long" : "no");
    if (version)
        memcpy(version, r->etag, len + 1);
    return 0;
}

static int s3_lock_read(lock *l, buffer *content, char version[LOCK_VERSION_MAX], error *err)
{
    s3_client *c = client_of(l);
    s3_request request = {.method = "GET", .max_response_bytes = LOCK_CONTENT_MAX};
    s3_response response = {0};
    if (s3_perform(c, &request, &response, 1, err) != 0)
        return LOCK_ERROR;
    int rc;
    if (response.status == 200 && !response.too_large) {
        rc = copy_version(&response, version, err) == 0 ? LOCK_OK : LOCK_ERROR;
        if (rc == LOCK_OK) {
            buffer previous = *content;
            *content = response.body;
            response.body = previous;
        }
    } else if (response.too_large) {
        error_set(err, "S3 lock %s/%s is larger than %u bytes", s3_client_bucket(c),
                  s3_client_prefix(c), LOCK_CONTENT_MAX);
        rc = LOCK_ERROR;
    } else if (response.status == 404 && !no_such_bucket(&response)) {
        error_set(err, "S3 lock %s/%s does not exist", s3_client_bucket(c), s3_client_prefix(c));
        rc = LOCK_NOT_FOUND;
    } else {
        s3_error(err, c, &request, &response);
        rc = LOCK_ERROR;
    }
    s3_response_free(&response);
    return rc;
}

/* After a refused write: is the lock there, and does it hold exactly `data`?
 * Returns LOCK_OK (ours, version filled), LOCK_CONFLICT (someone else's), LOCK_NOT_FOUND, or
 * LOCK_ERROR; `found` receives the stored version for messages. */
static int check_stored(lock *l, const void *data, size_t len, char version[LOCK_VERSION_MAX],
                        char found[LOCK_VERSION_MAX], error *err)
{
    buffer stored = {0};
    int rc = s3_lock_read(l, &stored, found, err);
    if (rc == LOCK_OK) {
        bool same = stored.len == len && (len == 0 || memcmp(stored.data, data, len) == 0);
        rc = same ? LOCK_OK : LOCK_CONFLICT;
        if (same && version)
            memcpy(version, found, strlen(found) + 1);
    }
    buffer_free(&stored);
    return rc;
}

static int conditional_put(lock *l, const char *if_match, const void *data, size_t len,
                           char version[LOCK_VERSION_MAX], error *err)
{
    s3_client *c = client_of(l);
    s3_request request = {
        .method = "PUT",
        .body = data,
        .body_len = len,
        .content_type = "text/plain; charset=utf-8",
        .cache_control = "no-store",
        .if_match = if_match,
        .if_none_match_any = if_match == NULL,
    };
    s3_response response = {0};
    if (s3_perform(c, &request, &response, 1, err) != 0)
        return LOCK_ERROR;
    int rc;
    char found[LOCK_VERSION_MAX] = "";
    /* AWS answers a concurrent conditional write with 409, and If-Match on a missing key
     * with 404; RGW answers both with 412. */
    bool refused = response.status == 412 || response.status == 409 ||
                   (response.status == 404 && if_match && !no_such_bucket(&response));
    if (response.status >= 200 && response.status <= 299) {
        rc = copy_version(&response, version, err) == 0 ? LOCK_OK : LOCK_ERROR;
    } else if (!refused) {
        s3_error(err, c, &request, &response);
        rc = LOCK_ERROR;
    } else if (!if_match) {
        rc = LOCK_CONFLICT;
        if (response.attempts > 1 &&
            check_stored(l, data, len, version, found, err) == LOCK_OK)
            rc = LOCK_OK;
        else
            error_set(err, "S3 lock %s/%s already exists", s3_client_bucket(c),
                      s3_client_prefix(c));
    } else {
        error check_err = {{0}};
        rc = check_stored(l, data, len, version, found, &check_err);
        if (rc == LOCK_OK && response.attempts == 1)
            rc = LOCK_CONFLICT; /* identical bytes written by someone else since */
        if (rc == LOCK_CONFLICT)
            error_set(err, "S3 lock %s/%s changed: expected version %s, found %s",
                      s3_client_bucket(c), s3_client_prefix(c), if_match,
                      found[0] ? found : "another");
        else if (rc != LOCK_OK)
            error_set(err, "%s", check_err.msg);
    }
    s3_response_free(&response);
    return rc;
}

static int s3_lock_create(lock *l, const void *data, size_t len, char version[LOCK_VERSION_MAX],
                          error *err)
{
    return conditional_put(l, NULL, data, len, version, err);
}

static int s3_lock_cas(lock *l, const char *expected, const void *data, size_t len,
                       char new_version[LOCK_VERSION_MAX], error *err)
{
    /* An ETag is printable ASCII; anything else cannot be a version of ours and would not
     * survive as a header. */
    for (const char *p = expected; *p; p++)
        if (*p < 0x21 || *p > 0x7e || *p == '"') {
            error_set(err, "S3 lock: \"%s\" is not a version this lock gave out", expected);
            return LOCK_CONFLICT;
        }
    if (!expected[0]) {
        error_set(err, "S3 lock: empty expected version");
        return LOCK_CONFLICT;
    }
    return conditional_put(l, expected, data, len, new_version, err);
}

static void s3_lock_close(lock *l)
{
    s3_client_free(client_of(l));
    free(l);
}

static const lock_backend S3_LOCK_BACKEND = {
    .scheme = "s3",
    .claim = NULL, /* no holder mechanism: compare-and-swap alone keeps two writers apart */
    .read = s3_lock_read,
    .create = s3_lock_create,
    .cas = s3_lock_cas,
    .close = s3_lock_close,
};

lock *lock_s3_open(const char *url, error *err)
{
    s3_lock *l = calloc(1, sizeof *l);
    if (!l)
        return error_set(err, "out of memory"), NULL;
    l->client = s3_client_open(url, err);
    if (!l->client) {
        free(l);
        return NULL;
    }
    if (!s3_client_prefix(l->client)[0]) {
        error_set(err, "lock URL %s: name the lock object (s3://bucket/path/to/lock?...)",
                  s3_client_bucket(l->client));
        s3_client_free(l->client);
        free(l);
        return NULL;
    }
    l->base.backend = &S3_LOCK_BACKEND;
    return &l->base;
}
