/* base64 (RFC 4648 standard alphabet, with '=' padding, as RFC 6962 JSON and signed notes
 * use it) and lowercase hex. Decoders are strict: they reject bad characters, missing or
 * misplaced padding and non-zero trailing bits, so one value has exactly one encoding. */
#ifndef TEGULA_BASE64_H
#define TEGULA_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"

/* Length of the encoding of n bytes (without terminator). */
size_t base64_encoded_len(size_t n);
/* Appends the encoding of data to out (NUL-terminated, terminator not counted). */
int base64_encode(buffer *out, const uint8_t *data, size_t len);
/* Encodes into a caller array of at least base64_encoded_len(len)+1 bytes. */
void base64_encode_to(char *out, const uint8_t *data, size_t len);
/* Appends the decoding of text[0..len) to out. Returns 0, or -1 on any invalid input. */
int base64_decode(buffer *out, const char *text, size_t len);
/* Decodes into a fixed array; fails unless the result is exactly `want` bytes. */
int base64_decode_exact(uint8_t *out, size_t want, const char *text, size_t len);

/* Lowercase hex: out must hold 2*len+1 chars. */
void hex_encode(char *out, const uint8_t *data, size_t len);
/* The value of one hex digit (either case), or -1. */
int hex_digit_value(char c);
/* Decodes exactly 2*want hex digits (either case) into out. Returns 0 or -1. */
int hex_decode(uint8_t *out, size_t want, const char *text, size_t len);

#endif
