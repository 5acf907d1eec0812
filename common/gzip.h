/* gzip: data tiles are stored gzip-encoded (Content-Encoding: gzip). Compression must be
 * deterministic, because a replayed round (recovery) must write byte-identical objects and an
 * existing immutable object is compared byte for byte. Decompression reads untrusted bytes
 * (tiles fetched back, proxied logs), so its output is capped. */
#ifndef TEGULA_GZIP_H
#define TEGULA_GZIP_H

#include <stdbool.h>
#include <stddef.h>

#include "buffer.h"
#include "error.h"

/* Appends the gzip encoding of data to out: a single member with mtime 0, no file name, no
 * extra fields, OS byte 255 ("unknown"), deflate at a fixed level. The same input always gives
 * the same bytes with one zlib build. On failure out is left as it was. */
int gzip_compress(const void *data, size_t len, buffer *out, error *err);

/* Appends the decompressed content of a gzip stream (one or more members, as RFC 1952
 * allows) to out. Fails, leaving out as it was, when the input is not gzip, is corrupt or
 * truncated, has trailing bytes that are not another member, or would decompress to more
 * than max_out bytes (checked while inflating, so a zip bomb never gets allocated). */
int gzip_decompress(const void *data, size_t len, size_t max_out, buffer *out, error *err);

/* True when data starts with the gzip magic bytes 1f 8b. */
bool gzip_is_gzip(const void *data, size_t len);

#endif
