#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int error_set(error *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int error_status(error *err, int status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

int error_wrap(error *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[sizeof err->msg], old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Truncation is fine: a reason is for people and the front matters most. */
    size_t n = strnlen(prefix, sizeof prefix - 1);
    memcpy(err->msg, prefix, n);
    const char *tail = old[0] ? old : "failed";
    size_t room = sizeof err->msg - 1 - n;
    size_t m = 0;
    if (room >= 2) {
        memcpy(err->msg + n, ": ", 2);
        n += 2;
        m = strnlen(tail, room - 2);
        memcpy(err->msg + n, tail, m);
    }
    err->msg[n + m] = 0;
    return -1;
}

void error_clear(error *err)
{
    if (err)
        err->msg[0] = 0;
}

bool error_is_set(const error *err)
{
    return err && err->msg[0] != 0;
}
