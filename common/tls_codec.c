#include "tls_codec.h"

void be_store(uint8_t *out, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t be_load(const uint8_t *in, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | in[i];
    return v;
}

static int put_uint(buffer *b, uint64_t v, int bytes)
{
    if (bytes < 8 && (v >> (8 * bytes)) != 0)
        return -1;
    if (buffer_reserve(b, (size_t)bytes) != 0)
        return -1;
    be_store(b->data + b->len, v, bytes);
    b->len += (size_t)bytes;
    return 0;
}

int tls_put_u8(buffer *b, uint8_t v) { return put_uint(b, v, 1); }
int tls_put_u16(buffer *b, uint16_t v) { return put_uint(b, v, 2); }
int tls_put_u24(buffer *b, uint32_t v) { return put_uint(b, v, 3); }
int tls_put_u40(buffer *b, uint64_t v) { return put_uint(b, v, 5); }
int tls_put_u64(buffer *b, uint64_t v) { return put_uint(b, v, 8); }

int tls_put_bytes(buffer *b, const uint8_t *data, size_t len)
{
    return buffer_append(b, data, len);
}

static int valid_prefix(int prefix_bytes)
{
    return prefix_bytes >= 1 && prefix_bytes <= 3;
}

int tls_put_vec(buffer *b, int prefix_bytes, const uint8_t *data, size_t len)
{
    if (!valid_prefix(prefix_bytes) || put_uint(b, len, prefix_bytes) != 0)
        return -1;
    return buffer_append(b, data, len);
}

int tls_vec_begin(buffer *b, int prefix_bytes, size_t *mark)
{
    if (!valid_prefix(prefix_bytes))
        return -1;
    *mark = b->len;
    return put_uint(b, 0, prefix_bytes);
}

int tls_vec_end(buffer *b, int prefix_bytes, size_t mark)
{
    if (!valid_prefix(prefix_bytes) || mark + (size_t)prefix_bytes > b->len)
        return -1;
    size_t content = b->len - mark - (size_t)prefix_bytes;
    if ((uint64_t)content >> (8 * prefix_bytes))
        return -1;
    be_store(b->data + mark, content, prefix_bytes);
    return 0;
}

void tls_reader_init(tls_reader *r, const uint8_t *data, size_t len)
{
    r->pos = data;
    r->left = data ? len : 0;
}

static int get_uint(tls_reader *r, int bytes, uint64_t *v)
{
    if (r->left < (size_t)bytes)
        return -1;
    *v = be_load(r->pos, bytes);
    r->pos += bytes;
    r->left -= (size_t)bytes;
    return 0;
}

int tls_get_u8(tls_reader *r, uint8_t *v)
{
    uint64_t x;
    if (get_uint(r, 1, &x) != 0)
        return -1;
    *v = (uint8_t)x;
    return 0;
}

int tls_get_u16(tls_reader *r, uint16_t *v)
{
    uint64_t x;
    if (get_uint(r, 2, &x) != 0)
        return -1;
    *v = (uint16_t)x;
    return 0;
}

int tls_get_u24(tls_reader *r, uint32_t *v)
{
    uint64_t x;
    if (get_uint(r, 3, &x) != 0)
        return -1;
    *v = (uint32_t)x;
    return 0;
}

int tls_get_u40(tls_reader *r, uint64_t *v) { return get_uint(r, 5, v); }
int tls_get_u64(tls_reader *r, uint64_t *v) { return get_uint(r, 8, v); }

int tls_get_bytes(tls_reader *r, size_t len, const uint8_t **data)
{
    if (r->left < len)
        return -1;
    *data = r->pos;
    r->pos += len;
    r->left -= len;
    return 0;
}

int tls_get_vec(tls_reader *r, int prefix_bytes, const uint8_t **data, size_t *len)
{
    if (!valid_prefix(prefix_bytes))
        return -1;
    tls_reader saved = *r;
    uint64_t n;
    if (get_uint(r, prefix_bytes, &n) != 0 || tls_get_bytes(r, (size_t)n, data) != 0) {
        *r = saved;
        return -1;
    }
    *len = (size_t)n;
    return 0;
}

int tls_get_vec_reader(tls_reader *r, int prefix_bytes, tls_reader *sub)
{
    const uint8_t *data;
    size_t len;
    if (tls_get_vec(r, prefix_bytes, &data, &len) != 0)
        return -1;
    tls_reader_init(sub, data, len);
    return 0;
}

bool tls_reader_empty(const tls_reader *r)
{
    return r->left == 0;
}
