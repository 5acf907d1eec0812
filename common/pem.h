/* pem: reads PEM text (RFC 7468) holding CERTIFICATE blocks into DER buffers, for root sets
 * and test fixtures. Explanatory text between blocks is ignored, as RFC 7468 asks; anything
 * malformed inside or around a block (other block types, headers, bad base64, a missing END,
 * oversized blocks, NUL bytes) is an error with the line number, never silently skipped. */
#ifndef TEGULA_PEM_H
#define TEGULA_PEM_H

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "error.h"

/* Bounds: no certificate we accept is larger, and no root file holds more blocks. */
#define PEM_MAX_DER_LEN (128 * 1024)
#define PEM_MAX_BLOCKS 10000
#define PEM_MAX_TEXT_LEN (64 * 1024 * 1024)

typedef struct pem_der {
    uint8_t *data;
    size_t len;
} pem_der;

typedef struct pem_list {
    pem_der *items;
    size_t count;
} pem_list;

/* Parses every CERTIFICATE block of text[0..len) into out (which must be zeroed or freed).
 * Fails if there is none or more than max_blocks (0 means PEM_MAX_BLOCKS). On failure out is
 * left empty. */
int pem_parse_certificates(const char *text, size_t len, size_t max_blocks, pem_list *out,
                           error *err);
/* The same for a file (at most PEM_MAX_TEXT_LEN bytes). */
int pem_read_certificates_file(const char *path, size_t max_blocks, pem_list *out, error *err);
void pem_list_free(pem_list *list);

/* Appends one "-----BEGIN CERTIFICATE-----" block (64-column base64) for der to out. */
int pem_encode_certificate(buffer *out, const uint8_t *der, size_t len);

#endif
