/* der: a minimal, bounds-checked DER walker for the few places where CT needs the exact bytes
 * of a certificate (the TBSCertificate, the SubjectPublicKeyInfo, extensions) rather than a
 * parsed object. It reads one TLV at a time, zero-copy, and refuses anything DER forbids that
 * would make two byte strings mean the same thing: indefinite lengths, non-minimal lengths.
 * Only low tag numbers (single identifier octet) are accepted; X.509 never uses others. */
#ifndef TEGULA_DER_H
#define TEGULA_DER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "error.h"

/* Identifier octets used by X.509. */
#define DER_BOOLEAN 0x01
#define DER_INTEGER 0x02
#define DER_BIT_STRING 0x03
#define DER_OCTET_STRING 0x04
#define DER_NULL 0x05
#define DER_OID 0x06
#define DER_SEQUENCE 0x30
#define DER_SET 0x31
/* Context-specific tag n, constructed ([n] EXPLICIT) or primitive ([n] IMPLICIT of a primitive). */
#define DER_CONTEXT_CONSTRUCTED(n) ((uint8_t)(0xa0 | (n)))
#define DER_CONTEXT_PRIMITIVE(n) ((uint8_t)(0x80 | (n)))

/* One element: `start` points at its tag; the whole TLV is start[0..total_len),
 * the content is content[0..len). Both point into the walked input. */
typedef struct der_tlv {
    uint8_t tag;
    const uint8_t *start;
    size_t header_len;
    size_t total_len;
    const uint8_t *content;
    size_t len;
} der_tlv;

typedef struct der_reader {
    const uint8_t *pos;
    size_t left;
} der_reader;

void der_reader_init(der_reader *r, const uint8_t *data, size_t len);
/* A reader over the content of a constructed element. */
void der_reader_of(der_reader *r, const der_tlv *t);
bool der_reader_empty(const der_reader *r);
/* The tag of the next element without consuming it; -1 when the reader is empty. */
int der_peek_tag(const der_reader *r, uint8_t *tag);

/* Reads the next TLV. Returns 0, or -1 with a reason (the reader is left untouched). */
int der_read(der_reader *r, der_tlv *out, error *err);
/* Reads the next TLV and requires its tag to be `tag`. */
int der_read_expect(der_reader *r, uint8_t tag, der_tlv *out, error *err);
/* Reads the next TLV only if its tag is `tag`: returns 1 (read), 0 (absent or empty), -1. */
int der_read_optional(der_reader *r, uint8_t tag, der_tlv *out, error *err);
/* Parses data[0..len) as exactly one TLV with the given tag, nothing after it. */
int der_parse_whole(const uint8_t *data, size_t len, uint8_t tag, der_tlv *out, error *err);

/* Bytes a minimal DER header takes for a content of `len` bytes (tag included). */
size_t der_header_len(size_t len);
/* Appends a tag and a minimal DER length. Returns 0, or -1 when out of memory. */
int der_put_header(buffer *b, uint8_t tag, size_t len);

#endif
