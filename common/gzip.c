#include "gzip.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

/* zlib's default trade-off; fixed, because the level shapes the bytes (and the XFL byte). */
#define GZIP_LEVEL 6
/* windowBits 15 plus 16 asks zlib for a gzip wrapper instead of a zlib one. */
#define GZIP_WINDOW_BITS (15 + 16)
/* zlib counts in uInt; feed and drain it in steps it can represent. */
#define ZLIB_STEP (1u << 30)
#define OUTPUT_STEP ((size_t)64 * 1024)

bool gzip_is_gzip(const void *data, size_t len)
{
    const uint8_t *p = data;
    return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

/* Hands zlib the next slice of input once it has used up the previous one. */
static void feed_input(z_stream *zs, const uint8_t **next, size_t *left)
{
    if (zs->avail_in == 0 && *left > 0) {
        size_t step = *left < ZLIB_STEP ? *left : ZLIB_STEP;
        zs->next_in = (Bytef *)*next;
        zs->avail_in = (uInt)step;
        *next += step;
        *left -= step;
    }
}

int gzip_compress(const void *data, size_t len, buffer *out, error *err)
{
    size_t start = out->len;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, GZIP_LEVEL, Z_DEFLATED, GZIP_WINDOW_BITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return error_set(err, "gzip: cannot initialize deflate");
    /* Without an explicit header zlib writes its build's OS code; this pins every field. */
    gz_header header;
    memset(&header, 0, sizeof header);
    header.os = 255;
    if (deflateSetHeader(&zs, &header) != Z_OK) {
        deflateEnd(&zs);
        return error_set(err, "gzip: cannot set the header");
    }
    uLong bound = deflateBound(&zs, len < ZLIB_STEP ? (uLong)len : ZLIB_STEP);
    if (buffer_reserve(out, (size_t)bound) != 0) {
        deflateEnd(&zs);
        return error_set(err, "gzip: out of memory");
    }
    const uint8_t *next = data;
    size_t left = len;
    int ret;
    do {
        feed_input(&zs, &next, &left);
        if (out->cap - out->len < OUTPUT_STEP && buffer_reserve(out, OUTPUT_STEP) != 0) {
            deflateEnd(&zs);
            out->len = start;
            return error_set(err, "gzip: out of memory");
        }
        size_t room = out->cap - out->len;
        if (room > ZLIB_STEP)
            room = ZLIB_STEP;
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)room;
        /* All input still to come is in avail_in once left reaches 0. */
        ret = deflate(&zs, left == 0 ? Z_FINISH : Z_NO_FLUSH);
        out->len += room - zs.avail_out;
        if (ret == Z_STREAM_ERROR) {
            deflateEnd(&zs);
            out->len = start;
            return error_set(err, "gzip: deflate failed");
        }
    } while (ret != Z_STREAM_END);
    deflateEnd(&zs);
    return 0;
}

static int decompress_fail(z_stream *zs, buffer *out, size_t start, error *err, const char *why)
{
    inflateEnd(zs);
    out->len = start;
    return error_set(err, "gzip: %s", why);
}

int gzip_decompress(const void *data, size_t len, size_t max_out, buffer *out, error *err)
{
    if (!gzip_is_gzip(data, len))
        return error_set(err, "gzip: not gzip data (no 1f 8b magic)");
    size_t start = out->len;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, GZIP_WINDOW_BITS) != Z_OK)
        return error_set(err, "gzip: cannot initialize inflate");
    const uint8_t *next = data;
    size_t left = len;
    size_t produced = 0;
    for (;;) {
        feed_input(&zs, &next, &left);
        /* One byte beyond the cap is allowed to land so that exceeding it is observed. */
        size_t allowance = max_out - produced < SIZE_MAX ? max_out - produced + 1 : SIZE_MAX;
        if (out->cap == out->len) {
            size_t grow = out->len - start > OUTPUT_STEP ? out->len - start : OUTPUT_STEP;
            if (grow > allowance)
                grow = allowance;
            if (buffer_reserve(out, grow) != 0)
                return decompress_fail(&zs, out, start, err, "out of memory");
        }
        size_t room = out->cap - out->len;
        if (room > allowance)
            room = allowance;
        if (room > ZLIB_STEP)
            room = ZLIB_STEP;
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)room;
        int ret = inflate(&zs, Z_NO_FLUSH);
        size_t got = room - zs.avail_out;
        out->len += got;
        produced += got;
        if (produced > max_out) {
            inflateEnd(&zs);
            out->len = start;
            return error_set(err, "gzip: decompressed data exceeds the %zu-byte limit", max_out);
        }
        if (ret == Z_STREAM_END) {
            size_t remaining = zs.avail_in + left;
            if (remaining == 0)
                break;
            /* The rest must be another member, which lies contiguously after this one. */
            if (!gzip_is_gzip(zs.next_in, remaining))
                return decompress_fail(&zs, out, start, err, "trailing bytes after gzip data");
            if (inflateReset(&zs) != Z_OK)
                return decompress_fail(&zs, out, start, err, "cannot reset inflate");
            continue;
        }
        if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT) {
            char why[160];
            snprintf(why, sizeof why, "corrupt data (%s)", zs.msg ? zs.msg : "invalid stream");
            return decompress_fail(&zs, out, start, err, why);
        }
        if (ret == Z_MEM_ERROR)
            return decompress_fail(&zs, out, start, err, "out of memory");
        if (ret == Z_BUF_ERROR || ret == Z_OK) {
            if (zs.avail_in == 0 && left == 0 && zs.avail_out > 0)
                return decompress_fail(&zs, out, start, err, "truncated data");
            continue;
        }
        return decompress_fail(&zs, out, start, err, "inflate failed");
    }
    inflateEnd(&zs);
    return 0;
}
