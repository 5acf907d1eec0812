#include "buffer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int buffer_reserve(buffer *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        return -1;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *data = realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

int buffer_append(buffer *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (buffer_reserve(b, len) != 0)
        return -1;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

int buffer_append_byte(buffer *b, uint8_t byte)
{
    return buffer_append(b, &byte, 1);
}

int buffer_append_str(buffer *b, const char *s)
{
    return buffer_append(b, s, strlen(s));
}

int buffer_printf(buffer *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buffer_reserve(b, (size_t)n + 1) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int buffer_terminate(buffer *b)
{
    if (buffer_reserve(b, 1) != 0)
        return -1;
    b->data[b->len] = 0;
    return 0;
}

void buffer_reset(buffer *b)
{
    b->len = 0;
}

void buffer_free(buffer *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

uint8_t *buffer_steal(buffer *b, size_t *len)
{
    uint8_t *data = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return data;
}
