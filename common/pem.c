#include "pem.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

#define PEM_BEGIN "-----BEGIN "
#define PEM_END "-----END "
#define PEM_DASHES "-----"
#define PEM_LABEL "CERTIFICATE"

/* Base64 of the largest DER we accept, plus nothing: lines are stripped of whitespace. */
#define PEM_MAX_BASE64_LEN (((PEM_MAX_DER_LEN + 2) / 3) * 4)

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/' || c == '=';
}

static bool starts_with(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

/* Copies a label for an error message, replacing anything unprintable. */
static void printable_label(char *out, size_t cap, const char *s, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
    out[n] = '\0';
}

/* A boundary line is "-----BEGIN <label>-----" or "-----END <label>-----". Returns the label
 * span, or -1 if the line does not have that shape. */
static int boundary_label(const char *line, size_t len, const char *prefix, const char **label,
                          size_t *label_len)
{
    size_t p = strlen(prefix), d = strlen(PEM_DASHES);
    if (len < p + d || memcmp(line + len - d, PEM_DASHES, d) != 0)
        return -1;
    *label = line + p;
    *label_len = len - p - d;
    return 0;
}

static int list_push(pem_list *out, buffer *der)
{
    pem_der *grown = realloc(out->items, (out->count + 1) * sizeof *grown);
    if (!grown)
        return -1;
    out->items = grown;
    size_t len;
    uint8_t *data = buffer_steal(der, &len);
    out->items[out->count].data = data;
    out->items[out->count].len = len;
    out->count++;
    return 0;
}

int pem_parse_certificates(const char *text, size_t len, size_t max_blocks, pem_list *out,
                           error *err)
{
    out->items = NULL;
    out->count = 0;
    if (max_blocks == 0 || max_blocks > PEM_MAX_BLOCKS)
        max_blocks = PEM_MAX_BLOCKS;
    if (len > PEM_MAX_TEXT_LEN)
        return error_set(err, "PEM text is %zu bytes, more than the %d allowed", len,
                         PEM_MAX_TEXT_LEN);
    if (memchr(text, '\0', len))
        return error_set(err, "PEM text contains a NUL byte (binary data is not PEM)");

    buffer b64 = {0}, der = {0};
    bool inside = false;
    size_t line_no = 0, begin_line = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - line) : len - pos;
        pos += line_len + (nl ? 1 : 0);
        line_no++;
        /* RFC 7468 allows trailing whitespace on every line; leading only on base64 lines. */
        while (line_len > 0 && is_space(line[line_len - 1]))
            line_len--;

        if (!inside) {
            if (starts_with(line, line_len, PEM_BEGIN)) {
                const char *label;
                size_t label_len;
                if (boundary_label(line, line_len, PEM_BEGIN, &label, &label_len) != 0) {
                    error_set(err, "line %zu: malformed PEM BEGIN line", line_no);
                    goto fail;
                }
                if (label_len != strlen(PEM_LABEL) || memcmp(label, PEM_LABEL, label_len) != 0) {
                    char shown[48];
                    printable_label(shown, sizeof shown, label, label_len);
                    error_set(err, "line %zu: PEM block of type \"%s\"; only CERTIFICATE blocks "
                              "are accepted", line_no, shown);
                    goto fail;
                }
                if (out->count >= max_blocks) {
                    error_set(err, "line %zu: more than %zu CERTIFICATE blocks", line_no,
                              max_blocks);
                    goto fail;
                }
                inside = true;
                begin_line = line_no;
                buffer_reset(&b64);
            } else if (starts_with(line, line_len, PEM_DASHES)) {
                error_set(err, "line %zu: PEM boundary line outside a block (END without "
                          "BEGIN?)", line_no);
                goto fail;
            }
            /* Anything else outside a block is explanatory text. */
            continue;
        }

        if (starts_with(line, line_len, PEM_END)) {
            const char *label;
            size_t label_len;
            if (boundary_label(line, line_len, PEM_END, &label, &label_len) != 0 ||
                label_len != strlen(PEM_LABEL) || memcmp(label, PEM_LABEL, label_len) != 0) {
                error_set(err, "line %zu: expected \"-----END CERTIFICATE-----\"", line_no);
                goto fail;
            }
            if (b64.len == 0) {
                error_set(err, "line %zu: empty CERTIFICATE block", line_no);
                goto fail;
            }
            buffer_reset(&der);
            if (base64_decode(&der, (const char *)b64.data, b64.len) != 0) {
                error_set(err, "lines %zu-%zu: CERTIFICATE block is not valid base64",
                          begin_line, line_no);
                goto fail;
            }
            if (der.len == 0 || der.len > PEM_MAX_DER_LEN) {
                error_set(err, "lines %zu-%zu: CERTIFICATE block decodes to %zu bytes (1 to %d "
                          "allowed)", begin_line, line_no, der.len, PEM_MAX_DER_LEN);
                goto fail;
            }
            if (list_push(out, &der) != 0) {
                error_set(err, "out of memory reading PEM");
                goto fail;
            }
            inside = false;
            continue;
        }
        if (starts_with(line, line_len, PEM_DASHES)) {
            error_set(err, "line %zu: unexpected boundary inside the CERTIFICATE block that "
                      "began on line %zu", line_no, begin_line);
            goto fail;
        }
        size_t start = 0;
        while (start < line_len && is_space(line[start]))
            start++;
        if (memchr(line + start, ':', line_len - start)) {
            error_set(err, "line %zu: PEM headers are not supported in CERTIFICATE blocks",
                      line_no);
            goto fail;
        }
        for (size_t i = start; i < line_len; i++) {
            if (!is_base64_char(line[i])) {
                error_set(err, "line %zu: character 0x%02x is not base64", line_no,
                          (unsigned char)line[i]);
                goto fail;
            }
        }
        if (b64.len + (line_len - start) > PEM_MAX_BASE64_LEN) {
            error_set(err, "lines %zu-%zu: CERTIFICATE block larger than %d bytes", begin_line,
                      line_no, PEM_MAX_DER_LEN);
            goto fail;
        }
        if (buffer_append(&b64, line + start, line_len - start) != 0) {
            error_set(err, "out of memory reading PEM");
            goto fail;
        }
    }
    if (inside) {
        error_set(err, "CERTIFICATE block that began on line %zu has no END line", begin_line);
        goto fail;
    }
    if (out->count == 0) {
        error_set(err, "no CERTIFICATE block found in PEM text");
        goto fail;
    }
    buffer_free(&b64);
    buffer_free(&der);
    return 0;

fail:
    buffer_free(&b64);
    buffer_free(&der);
    pem_list_free(out);
    return -1;
}

int pem_read_certificates_file(const char *path, size_t max_blocks, pem_list *out, error *err)
{
    out->items = NULL;
    out->count = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return error_set(err, "cannot open %s: %s", path, strerror(errno));
    buffer text = {0};
    char chunk[65536];
    size_t n;
    int rc = -1;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (text.len + n > PEM_MAX_TEXT_LEN) {
            error_set(err, "%s is larger than %d bytes", path, PEM_MAX_TEXT_LEN);
            goto done;
        }
        if (buffer_append(&text, chunk, n) != 0) {
            error_set(err, "out of memory reading %s", path);
            goto done;
        }
    }
    if (ferror(f)) {
        error_set(err, "cannot read %s", path);
        goto done;
    }
    rc = pem_parse_certificates(text.len ? (const char *)text.data : "", text.len, max_blocks,
                                out, err);
    if (rc != 0)
        error_wrap(err, "%s", path);
done:
    fclose(f);
    buffer_free(&text);
    return rc;
}

void pem_list_free(pem_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i].data);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

int pem_encode_certificate(buffer *out, const uint8_t *der, size_t len)
{
    buffer b64 = {0};
    if (base64_encode(&b64, der, len) != 0)
        return -1;
    int rc = buffer_append_str(out, PEM_BEGIN PEM_LABEL PEM_DASHES "\n");
    for (size_t i = 0; rc == 0 && i < b64.len; i += 64) {
        size_t n = b64.len - i < 64 ? b64.len - i : 64;
        rc = buffer_append(out, b64.data + i, n);
        if (rc == 0)
            rc = buffer_append_byte(out, '\n');
    }
    if (rc == 0)
        rc = buffer_append_str(out, PEM_END PEM_LABEL PEM_DASHES "\n");
    buffer_free(&b64);
    return rc;
}
