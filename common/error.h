/* error: a fixed-size reason string that travels up from where a failure is understood
 * to where it is reported (an HTTP 400 body, a config error, an fsck line). */
#ifndef TEGULA_ERROR_H
#define TEGULA_ERROR_H

#include <stdbool.h>

typedef struct error {
    char msg[256];
} error;

/* Sets the reason (printf-style) and returns -1 so callers can `return error_set(...)`.
 * A NULL err is allowed and ignored. */
int error_set(error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same, returning `status` instead of -1, for APIs with several failure codes
 * (`return error_status(err, STORAGE_CONFLICT, "...")`). */
int error_status(error *err, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes the existing reason with context ("reading tile 0/000: <old reason>"). */
int error_wrap(error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void error_clear(error *err);
bool error_is_set(const error *err);

#endif
