#include "base64.h"

#include <string.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void base64_encode_to(char *out, const uint8_t *data, size_t len)
{
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = '=';
    }
    *out = 0;
}

int base64_encode(buffer *out, const uint8_t *data, size_t len)
{
    size_t n = base64_encoded_len(len);
    if (n < len || buffer_reserve(out, n + 1) != 0)
        return -1;
    base64_encode_to((char *)out->data + out->len, data, len);
    out->len += n;
    return 0;
}

static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int base64_decode(buffer *out, const char *text, size_t len)
{
    if (len % 4 != 0)
        return -1;
    size_t start = out->len;
    if (buffer_reserve(out, len / 4 * 3) != 0)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        int pad = 0;
        if (text[i + 3] == '=') {
            pad = 1;
            if (text[i + 2] == '=')
                pad = 2;
        }
        if (pad && i + 4 != len)
            goto bad;
        int s[4];
        for (int j = 0; j < 4 - pad; j++) {
            s[j] = sextet(text[i + (size_t)j]);
            if (s[j] < 0)
                goto bad;
        }
        for (int j = 4 - pad; j < 4; j++)
            s[j] = 0;
        uint32_t v = (uint32_t)s[0] << 18 | (uint32_t)s[1] << 12 | (uint32_t)s[2] << 6 | (uint32_t)s[3];
        /* Non-canonical trailing bits make a second spelling of the same bytes. */
        if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
            goto bad;
        out->data[out->len++] = (uint8_t)(v >> 16);
        if (pad < 2)
            out->data[out->len++] = (uint8_t)(v >> 8);
        if (pad < 1)
            out->data[out->len++] = (uint8_t)v;
    }
    return 0;
bad:
    out->len = start;
    return -1;
}

int base64_decode_exact(uint8_t *out, size_t want, const char *text, size_t len)
{
    if (len != base64_encoded_len(want))
        return -1;
    buffer tmp = {0};
    int rc = base64_decode(&tmp, text, len);
    if (rc == 0 && tmp.len == want)
        memcpy(out, tmp.data, want);
    else
        rc = -1;
    buffer_free(&tmp);
    return rc;
}

void hex_encode(char *out, const uint8_t *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = 0;
}

int hex_digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(uint8_t *out, size_t want, const char *text, size_t len)
{
    if (len != 2 * want)
        return -1;
    for (size_t i = 0; i < want; i++) {
        int hi = hex_digit_value(text[2 * i]), lo = hex_digit_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
