/* tls_codec: the TLS presentation language (RFC 8446 §3) as used by RFC 6962:
 * big-endian integers of 1..8 bytes and vectors with 1-, 2- or 3-byte length prefixes.
 * Writers append to a buffer; the reader is bounds-checked and zero-copy. */
#ifndef TEGULA_TLS_CODEC_H
#define TEGULA_TLS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"

/* Writers: return 0, or -1 when out of memory or the value/length does not fit. */
int tls_put_u8(buffer *b, uint8_t v);
int tls_put_u16(buffer *b, uint16_t v);
int tls_put_u24(buffer *b, uint32_t v);
int tls_put_u40(buffer *b, uint64_t v);
int tls_put_u64(buffer *b, uint64_t v);
int tls_put_bytes(buffer *b, const uint8_t *data, size_t len);
/* A vector with a `prefix_bytes` (1, 2 or 3) length prefix. */
int tls_put_vec(buffer *b, int prefix_bytes, const uint8_t *data, size_t len);

/* For vectors built in place: tls_vec_begin reserves the prefix and returns a mark,
 * tls_vec_end fills the prefix in (fails if the content is too long). */
int tls_vec_begin(buffer *b, int prefix_bytes, size_t *mark);
int tls_vec_end(buffer *b, int prefix_bytes, size_t mark);

/* Big-endian stores/loads into fixed memory. */
void be_store(uint8_t *out, uint64_t v, int bytes);
uint64_t be_load(const uint8_t *in, int bytes);

typedef struct tls_reader {
    const uint8_t *pos;
    size_t left;
} tls_reader;

void tls_reader_init(tls_reader *r, const uint8_t *data, size_t len);
/* Readers: return 0, or -1 (reader untouched) when the input is too short. */
int tls_get_u8(tls_reader *r, uint8_t *v);
int tls_get_u16(tls_reader *r, uint16_t *v);
int tls_get_u24(tls_reader *r, uint32_t *v);
int tls_get_u40(tls_reader *r, uint64_t *v);
int tls_get_u64(tls_reader *r, uint64_t *v);
/* Points *data at the next `len` bytes of the input (no copy). */
int tls_get_bytes(tls_reader *r, size_t len, const uint8_t **data);
/* Reads a `prefix_bytes`-prefixed vector; *data points into the input. */
int tls_get_vec(tls_reader *r, int prefix_bytes, const uint8_t **data, size_t *len);
/* A sub-reader over a prefixed vector (for nested structures). */
int tls_get_vec_reader(tls_reader *r, int prefix_bytes, tls_reader *sub);
bool tls_reader_empty(const tls_reader *r);

#endif
