/* buffer: a growable byte buffer, the common currency of every encoder. */
#ifndef TEGULA_BUFFER_H
#define TEGULA_BUFFER_H

#include <stddef.h>
#include <stdint.h>

typedef struct buffer {
    uint8_t *data;
    size_t len;
    size_t cap;
} buffer;

/* Ensures room for `extra` more bytes. Returns 0, or -1 on overflow/out of memory. */
int buffer_reserve(buffer *b, size_t extra);
int buffer_append(buffer *b, const void *data, size_t len);
int buffer_append_byte(buffer *b, uint8_t byte);
/* Appends a NUL-terminated string without its terminator. */
int buffer_append_str(buffer *b, const char *s);
/* printf-style append; the buffer stays NUL-terminated (terminator not counted in len). */
int buffer_printf(buffer *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Makes data NUL-terminated (not counted in len) so it can be used as a C string. */
int buffer_terminate(buffer *b);
void buffer_reset(buffer *b);
void buffer_free(buffer *b);
/* Hands the storage to the caller (who frees it) and leaves the buffer empty. */
uint8_t *buffer_steal(buffer *b, size_t *len);

#endif
