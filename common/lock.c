#include "lock.h"

#include <string.h>

lock *lock_open(const char *url, error *err)
{
    if (!url)
        return error_set(err, "no lock URL"), NULL;
    if (strncmp(url, "file://", 7) == 0) {
        const char *path = url + 7;
        if (strncmp(path, "localhost/", 10) == 0)
            path += 9;
        if (path[0] != '/')
            return error_set(err, "lock URL %s: file:// needs an absolute path "
                                  "(file:///dir/lockfile)", url), NULL;
        return lock_file_open(path, err);
    }
    if (strncmp(url, "s3://", 5) == 0)
        return lock_s3_open(url, err);
    return error_set(err, "lock URL %s: unknown scheme (want file:// or s3://)", url), NULL;
}

void lock_close(lock *l)
{
    if (l)
        l->backend->close(l);
}

int lock_claim(lock *l, error *err)
{
    if (!l->backend->claim)
        return LOCK_OK;
    return l->backend->claim(l, err);
}

int lock_read(lock *l, buffer *content, char version[LOCK_VERSION_MAX], error *err)
{
    buffer_reset(content);
    return l->backend->read(l, content, version, err);
}

int lock_create(lock *l, const void *data, size_t len, char version[LOCK_VERSION_MAX],
                error *err)
{
    if (len > LOCK_CONTENT_MAX || (!data && len > 0)) {
        error_set(err, "lock content of %zu bytes refused (limit %u)", len, LOCK_CONTENT_MAX);
        return LOCK_ERROR;
    }
    return l->backend->create(l, data, len, version, err);
}

int lock_cas(lock *l, const char *expected, const void *data, size_t len,
             char new_version[LOCK_VERSION_MAX], error *err)
{
    if (len > LOCK_CONTENT_MAX || (!data && len > 0)) {
        error_set(err, "lock content of %zu bytes refused (limit %u)", len, LOCK_CONTENT_MAX);
        return LOCK_ERROR;
    }
    if (!expected || strnlen(expected, LOCK_VERSION_MAX) >= LOCK_VERSION_MAX) {
        error_set(err, "compare-and-swap needs the expected version");
        return LOCK_ERROR;
    }
    return l->backend->cas(l, expected, data, len, new_version, err);
}
