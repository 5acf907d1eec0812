#include "der.h"

/* Lengths past 2^32-1 cannot occur in anything CT carries (certificates are u24-bounded). */
#define DER_MAX_LENGTH_OCTETS 4

void der_reader_init(der_reader *r, const uint8_t *data, size_t len)
{
    r->pos = data;
    r->left = data ? len : 0;
}

void der_reader_of(der_reader *r, const der_tlv *t)
{
    der_reader_init(r, t->content, t->len);
}

bool der_reader_empty(const der_reader *r)
{
    return r->left == 0;
}

int der_peek_tag(const der_reader *r, uint8_t *tag)
{
    if (r->left == 0)
        return -1;
    *tag = r->pos[0];
    return 0;
}

int der_read(der_reader *r, der_tlv *out, error *err)
{
    const uint8_t *p = r->pos;
    size_t left = r->left;
    if (left < 2)
        return error_set(err, "DER: truncated element header");
    uint8_t tag = p[0];
    if ((tag & 0x1f) == 0x1f)
        return error_set(err, "DER: high tag numbers are not supported (tag 0x%02x)", tag);
    uint8_t first = p[1];
    size_t header = 2;
    size_t len;
    if (first < 0x80) {
        len = first;
    } else {
        size_t octets = first & 0x7f;
        if (octets == 0)
            return error_set(err, "DER: indefinite length");
        if (octets > DER_MAX_LENGTH_OCTETS)
            return error_set(err, "DER: length of %zu octets is too long", octets);
        if (left - 2 < octets)
            return error_set(err, "DER: truncated length");
        if (p[2] == 0)
            return error_set(err, "DER: non-minimal length (leading zero octet)");
        len = 0;
        for (size_t i = 0; i < octets; i++)
            len = (len << 8) | p[2 + i];
        if (len < 0x80)
            return error_set(err, "DER: non-minimal length (long form for %zu)", len);
        header += octets;
    }
    if (left - header < len)
        return error_set(err, "DER: element of %zu bytes runs past the end (%zu left)", len,
                         left - header);
    out->tag = tag;
    out->start = p;
    out->header_len = header;
    out->total_len = header + len;
    out->content = p + header;
    out->len = len;
    r->pos += out->total_len;
    r->left -= out->total_len;
    return 0;
}

int der_read_expect(der_reader *r, uint8_t tag, der_tlv *out, error *err)
{
    uint8_t got;
    if (der_peek_tag(r, &got) != 0)
        return error_set(err, "DER: expected tag 0x%02x, found the end", tag);
    if (got != tag)
        return error_set(err, "DER: expected tag 0x%02x, found 0x%02x", tag, got);
    return der_read(r, out, err);
}

int der_read_optional(der_reader *r, uint8_t tag, der_tlv *out, error *err)
{
    uint8_t got;
    if (der_peek_tag(r, &got) != 0 || got != tag)
        return 0;
    return der_read(r, out, err) == 0 ? 1 : -1;
}

int der_parse_whole(const uint8_t *data, size_t len, uint8_t tag, der_tlv *out, error *err)
{
    der_reader r;
    der_reader_init(&r, data, len);
    if (der_read_expect(&r, tag, out, err) != 0)
        return -1;
    if (!der_reader_empty(&r))
        return error_set(err, "DER: %zu trailing bytes after the element", r.left);
    return 0;
}

size_t der_header_len(size_t len)
{
    size_t n = 2;
    if (len >= 0x80)
        for (size_t v = len; v; v >>= 8)
            n++;
    return n;
}

int der_put_header(buffer *b, uint8_t tag, size_t len)
{
    uint8_t header[2 + sizeof(size_t)];
    size_t n = 0;
    header[n++] = tag;
    if (len < 0x80) {
        header[n++] = (uint8_t)len;
    } else {
        size_t octets = 0;
        for (size_t v = len; v; v >>= 8)
            octets++;
        header[n++] = (uint8_t)(0x80 | octets);
        for (size_t i = octets; i > 0; i--)
            header[n++] = (uint8_t)(len >> (8 * (i - 1)));
    }
    return buffer_append(b, header, n);
}
