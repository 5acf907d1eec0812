#include "note.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "base64.h"
#include "sha256.h"
#include "tls_codec.h"

/* "— ": U+2014 EM DASH and a space. */
static const char sig_prefix[] = "\xe2\x80\x94 ";
#define SIG_PREFIX_LEN 4

/* Decodes one UTF-8 sequence (shortest form, no surrogates, at most U+10FFFF). Returns its
 * length, or 0 if s does not start with a valid sequence. */
static size_t utf8_next(const uint8_t *s, size_t len, uint32_t *cp)
{
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, v = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, v = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* The whole note, text or signature lines alike: valid UTF-8 and no ASCII control
 * characters (below U+0020) other than newline. */
static int check_text(const char *data, size_t len, error *err)
{
    const uint8_t *s = (const uint8_t *)data;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x80) {
            if (s[i] < 0x20 && s[i] != '\n')
                return error_set(err, "control character 0x%02x at byte %zu", s[i], i);
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_next(s + i, len - i, &cp);
        if (!n)
            return error_set(err, "invalid UTF-8 at byte %zu", i);
        i += n;
    }
    return 0;
}

/* Unicode White_Space (what Go's unicode.IsSpace reports), which key names must not hold. */
static bool is_unicode_space(uint32_t cp)
{
    switch (cp) {
    case '\t': case '\n': case '\v': case '\f': case '\r': case ' ':
    case 0x85: case 0xa0: case 0x1680: case 0x2028: case 0x2029: case 0x202f: case 0x205f:
    case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200a;
    }
}

bool note_name_valid(const char *name, size_t len)
{
    if (len == 0)
        return false;
    const uint8_t *s = (const uint8_t *)name;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_next(s + i, len - i, &cp);
        if (!n || cp == '+' || cp < 0x20 || is_unicode_space(cp))
            return false;
        i += n;
    }
    return true;
}

uint32_t note_key_id(const char *name, uint8_t type, const uint8_t *key, size_t key_len)
{
    static const uint8_t newline = '\n';
    const void *parts[] = {name, &newline, &type, key};
    size_t lens[] = {strlen(name), 1, 1, key_len};
    uint8_t h[SHA256_LEN];
    sha256_parts(h, 4, parts, lens);
    return (uint32_t)be_load(h, 4);
}

void note_free(note *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n_sigs; i++) {
        free(n->sigs[i].name);
        free(n->sigs[i].sig);
    }
    free(n->sigs);
    free(n->text);
    memset(n, 0, sizeof *n);
}

static int parse_signature_line(note_signature *out, const char *line, size_t len, error *err)
{
    if (len < SIG_PREFIX_LEN || memcmp(line, sig_prefix, SIG_PREFIX_LEN) != 0)
        return error_set(err, "signature line does not start with an em dash and a space");
    line += SIG_PREFIX_LEN;
    len -= SIG_PREFIX_LEN;
    const char *space = memchr(line, ' ', len);
    if (!space)
        return error_set(err, "signature line has no signature after the key name");
    size_t name_len = (size_t)(space - line);
    const char *b64 = space + 1;
    size_t b64_len = len - name_len - 1;
    if (!note_name_valid(line, name_len))
        return error_set(err, "invalid key name in signature line");
    buffer raw = {0};
    if (b64_len == 0 || base64_decode(&raw, b64, b64_len) != 0) {
        buffer_free(&raw);
        return error_set(err, "bad base64 in signature line");
    }
    if (raw.len < 5) {
        buffer_free(&raw);
        return error_set(err, "signature shorter than a key ID and one byte");
    }
    out->name = strndup(line, name_len);
    out->key_id = (uint32_t)be_load(raw.data, 4);
    out->sig_len = raw.len - 4;
    out->sig = malloc(out->sig_len);
    if (!out->name || !out->sig) {
        buffer_free(&raw);
        return error_set(err, "out of memory");
    }
    memcpy(out->sig, raw.data + 4, out->sig_len);
    buffer_free(&raw);
    return 0;
}

int note_parse(note *out, const char *data, size_t len, error *err)
{
    memset(out, 0, sizeof *out);
    if (len > NOTE_MAX_SIZE)
        return error_set(err, "note is larger than %d bytes", NOTE_MAX_SIZE);
    if (check_text(data, len, err) != 0)
        return error_wrap(err, "malformed note");

    /* The separator is the last empty line: signature lines are never empty. */
    size_t split = 0;
    bool found = false;
    for (size_t i = len; i-- > 1;) {
        if (data[i] == '\n' && data[i - 1] == '\n') {
            split = i - 1;
            found = true;
            break;
        }
    }
    if (!found)
        return error_set(err, "malformed note: no empty line before the signatures");
    const char *sigs = data + split + 2;
    size_t sigs_len = len - split - 2;
    if (sigs_len == 0)
        return error_set(err, "malformed note: no signatures");
    if (sigs[sigs_len - 1] != '\n')
        return error_set(err, "malformed note: last signature line does not end in a newline");
    size_t count = 0;
    for (size_t i = 0; i < sigs_len; i++)
        count += sigs[i] == '\n';
    if (count > NOTE_MAX_SIGNATURES)
        return error_set(err, "malformed note: more than %d signatures", NOTE_MAX_SIGNATURES);

    out->text_len = split + 1;
    out->text = strndup(data, out->text_len);
    out->sigs = calloc(count, sizeof *out->sigs);
    if (!out->text || !out->sigs) {
        note_free(out);
        return error_set(err, "out of memory");
    }
    const char *line = sigs;
    for (size_t i = 0; i < count; i++) {
        const char *end = memchr(line, '\n', (size_t)(sigs + sigs_len - line));
        out->n_sigs = i + 1;
        if (parse_signature_line(&out->sigs[i], line, (size_t)(end - line), err) != 0) {
            note_free(out);
            return error_wrap(err, "malformed note: signature %zu", i + 1);
        }
        line = end + 1;
    }
    return 0;
}

int note_signature_line(buffer *out, const char *name, uint32_t key_id, const uint8_t *sig,
                        size_t sig_len, error *err)
{
    if (!note_name_valid(name, strlen(name)))
        return error_set(err, "invalid note key name");
    if (sig_len == 0 || sig_len > NOTE_MAX_SIZE)
        return error_set(err, "bad signature length %zu", sig_len);
    size_t start = out->len;
    uint8_t *raw = malloc(4 + sig_len);
    if (!raw)
        return error_set(err, "out of memory");
    be_store(raw, key_id, 4);
    memcpy(raw + 4, sig, sig_len);
    int ret = 0;
    if (buffer_append(out, sig_prefix, SIG_PREFIX_LEN) != 0 || buffer_append_str(out, name) != 0 ||
        buffer_append_byte(out, ' ') != 0 || base64_encode(out, raw, 4 + sig_len) != 0 ||
        buffer_append_byte(out, '\n') != 0) {
        out->len = start;
        ret = error_set(err, "out of memory");
    }
    free(raw);
    return ret;
}

/* A text that can be signed: non-empty, ends in \n, and obeys the note character rules. */
static int check_signable_text(const char *text, size_t len, error *err)
{
    if (len == 0 || text[len - 1] != '\n')
        return error_set(err, "note text must end with a newline");
    if (len > NOTE_MAX_SIZE)
        return error_set(err, "note text is larger than %d bytes", NOTE_MAX_SIZE);
    return check_text(text, len, err);
}

int note_format(buffer *out, const note *n, error *err)
{
    if (check_signable_text(n->text, n->text_len, err) != 0)
        return -1;
    if (n->n_sigs == 0 || n->n_sigs > NOTE_MAX_SIGNATURES)
        return error_set(err, "a note needs 1 to %d signatures", NOTE_MAX_SIGNATURES);
    size_t start = out->len;
    if (buffer_append(out, n->text, n->text_len) != 0 || buffer_append_byte(out, '\n') != 0) {
        out->len = start;
        return error_set(err, "out of memory");
    }
    for (size_t i = 0; i < n->n_sigs; i++) {
        const note_signature *s = &n->sigs[i];
        if (note_signature_line(out, s->name, s->key_id, s->sig, s->sig_len, err) != 0) {
            out->len = start;
            return -1;
        }
    }
    if (out->len - start > NOTE_MAX_SIZE) {
        out->len = start;
        return error_set(err, "note would be larger than %d bytes", NOTE_MAX_SIZE);
    }
    return 0;
}

int note_verifier_init(note_verifier *v, const char *name, uint8_t type, EVP_PKEY *key,
                       error *err)
{
    memset(v, 0, sizeof *v);
    if (!note_name_valid(name, strlen(name)))
        return error_set(err, "invalid note key name");
    key_kind kind = key_kind_of(key);
    if (type == NOTE_SIG_ED25519) {
        uint8_t raw[ED25519_KEY_LEN];
        if (kind != KEY_KIND_ED25519 || public_key_ed25519_raw(key, raw, err) != 0)
            return error_set(err, "note signature type 0x01 needs an Ed25519 key");
        v->key_id = note_key_id(name, type, raw, sizeof raw);
    } else if (type == NOTE_SIG_RFC6962) {
        uint8_t log_id[LOG_ID_LEN];
        if ((kind != KEY_KIND_EC_P256 && kind != KEY_KIND_RSA) ||
            public_key_log_id(key, log_id, err) != 0)
            return error_set(err, "note signature type 0x05 needs a P-256 or RSA log key");
        v->key_id = note_key_id(name, type, log_id, sizeof log_id);
    } else {
        return error_set(err, "unsupported note signature type 0x%02x", type);
    }
    v->name = name;
    v->type = type;
    v->key = key;
    return 0;
}

static int verify_ed25519(EVP_PKEY *key, const char *text, size_t text_len, const uint8_t *sig,
                          size_t sig_len, error *err)
{
    if (sig_len != ED25519_SIG_LEN)
        return error_set(err, "Ed25519 signature is %zu bytes, not 64", sig_len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return error_set(err, "out of memory");
    int ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestVerify(ctx, sig, sig_len, (const uint8_t *)text, text_len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok ? 0 : error_set(err, "Ed25519 signature does not verify");
}

/* Splits an RFC6962NoteSignature into timestamp and DigitallySigned. */
static int rfc6962_sig_parse(const uint8_t *sig, size_t len, uint64_t *timestamp,
                             digitally_signed *ds, error *err)
{
    tls_reader r;
    tls_reader_init(&r, sig, len);
    if (tls_get_u64(&r, timestamp) != 0 || digitally_signed_read(&r, ds, err) != 0)
        return error_set(err, "truncated RFC6962NoteSignature");
    if (!tls_reader_empty(&r))
        return error_set(err, "trailing bytes after RFC6962NoteSignature");
    return 0;
}

static int verify_rfc6962(const note_verifier *v, const note *n, const note_signature *s,
                          error *err)
{
    checkpoint cp;
    if (checkpoint_body_parse(&cp, n->text, n->text_len, err) != 0)
        return -1;
    if (cp.extension_lines)
        return error_set(err, "checkpoint has extension lines, forbidden with RFC 6962 signatures");
    /* The TreeHeadSignature does not cover the origin: the key name has to. */
    if (strcmp(cp.origin, v->name) != 0)
        return error_set(err, "checkpoint origin does not match the log's key name");
    uint64_t timestamp;
    digitally_signed ds;
    if (rfc6962_sig_parse(s->sig, s->sig_len, &timestamp, &ds, err) != 0)
        return -1;
    uint8_t input[TREE_HEAD_SIGNATURE_INPUT_LEN];
    tree_head_signature_input(input, timestamp, cp.size, cp.root);
    return digitally_signed_verify(v->key, input, sizeof input, &ds, err);
}

int note_verify(const note *n, const note_verifier *verifiers, size_t n_verifiers,
                bool *verified, error *err)
{
    if (verified)
        memset(verified, 0, n_verifiers * sizeof *verified);
    bool any = false;
    for (size_t i = 0; i < n->n_sigs; i++) {
        const note_signature *s = &n->sigs[i];
        for (size_t j = 0; j < n_verifiers; j++) {
            const note_verifier *v = &verifiers[j];
            if (s->key_id != v->key_id || strcmp(s->name, v->name) != 0)
                continue;
            int ret = v->type == NOTE_SIG_ED25519
                          ? verify_ed25519(v->key, n->text, n->text_len, s->sig, s->sig_len, err)
                          : verify_rfc6962(v, n, s, err);
            if (ret != 0)
                return error_wrap(err, "signature %zu by known key %s+%08x", i + 1, v->name,
                                  v->key_id);
            any = true;
            if (verified)
                verified[j] = true;
        }
    }
    if (!any)
        return error_set(err, "no signature from a known key");
    return 0;
}

int note_sign_ed25519_line(buffer *out, const char *name, EVP_PKEY *key, const char *text,
                           size_t text_len, error *err)
{
    uint8_t raw[ED25519_KEY_LEN], sig[ED25519_SIG_LEN];
    size_t sig_len = sizeof sig;
    if (check_signable_text(text, text_len, err) != 0)
        return -1;
    if (public_key_ed25519_raw(key, raw, err) != 0)
        return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return error_set(err, "out of memory");
    int ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestSign(ctx, sig, &sig_len, (const uint8_t *)text, text_len) == 1 &&
             sig_len == ED25519_SIG_LEN;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        ERR_clear_error();
        return error_set(err, "Ed25519 signing failed (is this a private key?)");
    }
    return note_signature_line(out, name, note_key_id(name, NOTE_SIG_ED25519, raw, sizeof raw),
                               sig, sig_len, err);
}

/* --- checkpoints --- */

static int check_origin(const char *origin, error *err)
{
    size_t len = strlen(origin);
    if (len > CHECKPOINT_ORIGIN_MAX)
        return error_set(err, "origin longer than %d bytes", CHECKPOINT_ORIGIN_MAX);
    if (!note_name_valid(origin, len))
        return error_set(err, "origin is not a valid note key name");
    return 0;
}

int checkpoint_body_format(buffer *out, const char *origin, uint64_t size, const uint8_t root[32],
                           error *err)
{
    if (check_origin(origin, err) != 0)
        return -1;
    size_t start = out->len;
    if (buffer_printf(out, "%s\n%llu\n", origin, (unsigned long long)size) != 0 ||
        base64_encode(out, root, 32) != 0 || buffer_append_byte(out, '\n') != 0) {
        out->len = start;
        return error_set(err, "out of memory");
    }
    return 0;
}

static int parse_size(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int checkpoint_body_parse(checkpoint *out, const char *text, size_t len, error *err)
{
    memset(out, 0, sizeof *out);
    if (len == 0 || text[len - 1] != '\n')
        return error_set(err, "checkpoint does not end with a newline");
    if (len > NOTE_MAX_SIZE || check_text(text, len, err) != 0)
        return error_wrap(err, "malformed checkpoint");
    const char *line = text, *end = text + len;
    for (int n = 0; line < end; n++) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t line_len = (size_t)(nl - line);
        switch (n) {
        case 0:
            if (line_len == 0)
                return error_set(err, "checkpoint origin is empty");
            if (line_len > CHECKPOINT_ORIGIN_MAX)
                return error_set(err, "checkpoint origin longer than %d bytes",
                                 CHECKPOINT_ORIGIN_MAX);
            memcpy(out->origin, line, line_len);
            out->origin[line_len] = 0;
            break;
        case 1:
            if (parse_size(line, line_len, &out->size) != 0)
                return error_set(err, "checkpoint tree size is not a canonical decimal");
            break;
        case 2:
            if (base64_decode_exact(out->root, 32, line, line_len) != 0)
                return error_set(err, "checkpoint root is not base64 of 32 bytes");
            break;
        default:
            if (line_len == 0)
                return error_set(err, "checkpoint has an empty extension line");
            out->extension_lines++;
        }
        line = nl + 1;
        if (line == end && n < 2)
            return error_set(err, "checkpoint has fewer than three lines");
    }
    return 0;
}

void tree_head_signature_input(uint8_t out[TREE_HEAD_SIGNATURE_INPUT_LEN], uint64_t timestamp,
                               uint64_t size, const uint8_t root[32])
{
    out[0] = 0; /* version v1 */
    out[1] = 1; /* signature_type tree_hash */
    be_store(out + 2, timestamp, 8);
    be_store(out + 10, size, 8);
    memcpy(out + 18, root, 32);
}

/* body || "\n" || "— origin base64(key ID || timestamp || DigitallySigned)\n" */
static int checkpoint_assemble(buffer *out, const char *origin, const uint8_t log_id[LOG_ID_LEN],
                               uint64_t size, const uint8_t root[32], uint64_t timestamp,
                               const uint8_t *ths, size_t ths_len, error *err)
{
    size_t start = out->len;
    uint8_t sig[8 + CHECKPOINT_THS_MAX];
    if (ths_len > CHECKPOINT_THS_MAX)
        return error_set(err, "tree head signature longer than %d bytes", CHECKPOINT_THS_MAX);
    be_store(sig, timestamp, 8);
    memcpy(sig + 8, ths, ths_len);
    uint32_t key_id = note_key_id(origin, NOTE_SIG_RFC6962, log_id, LOG_ID_LEN);
    if (checkpoint_body_format(out, origin, size, root, err) != 0)
        return -1;
    if (buffer_append_byte(out, '\n') != 0) {
        out->len = start;
        return error_set(err, "out of memory");
    }
    if (note_signature_line(out, origin, key_id, sig, 8 + ths_len, err) != 0) {
        out->len = start;
        return -1;
    }
    return 0;
}

int checkpoint_sign(buffer *out, const log_signer *signer, const char *origin, uint64_t size,
                    const uint8_t root[32], uint64_t timestamp, error *err)
{
    if (check_origin(origin, err) != 0)
        return -1;
    uint8_t input[TREE_HEAD_SIGNATURE_INPUT_LEN];
    tree_head_signature_input(input, timestamp, size, root);
    buffer ths = {0};
    int ret = log_signer_sign(signer, input, sizeof input, &ths, err);
    if (ret == 0)
        ret = checkpoint_assemble(out, origin, log_signer_log_id(signer), size, root, timestamp,
                                  ths.data, ths.len, err);
    buffer_free(&ths);
    return ret;
}

int checkpoint_from_sth(buffer *out, const char *origin, const uint8_t log_id[LOG_ID_LEN],
                        uint64_t size, const uint8_t root[32], uint64_t timestamp,
                        const uint8_t *tree_head_signature, size_t ths_len, error *err)
{
    digitally_signed ds;
    if (check_origin(origin, err) != 0)
        return -1;
    if (digitally_signed_parse(tree_head_signature, ths_len, &ds, err) != 0)
        return error_wrap(err, "tree_head_signature");
    return checkpoint_assemble(out, origin, log_id, size, root, timestamp, tree_head_signature,
                               ths_len, err);
}

int checkpoint_verify(const char *data, size_t len, const char *origin, EVP_PKEY *log_key,
                      signed_checkpoint *out, error *err)
{
    note n;
    note_verifier v;
    if (check_origin(origin, err) != 0 ||
        note_verifier_init(&v, origin, NOTE_SIG_RFC6962, log_key, err) != 0)
        return -1;
    if (note_parse(&n, data, len, err) != 0)
        return -1;
    int ret = note_verify(&n, &v, 1, NULL, err);
    if (ret == 0 && out) {
        memset(out, 0, sizeof *out);
        ret = checkpoint_body_parse(&out->cp, n.text, n.text_len, err);
        for (size_t i = 0; ret == 0 && i < n.n_sigs; i++) {
            const note_signature *s = &n.sigs[i];
            if (s->key_id != v.key_id || strcmp(s->name, origin) != 0)
                continue;
            /* note_verify accepted this line, so it parses and fits. */
            digitally_signed ds;
            ret = rfc6962_sig_parse(s->sig, s->sig_len, &out->timestamp, &ds, err);
            if (ret == 0 && s->sig_len - 8 > CHECKPOINT_THS_MAX)
                ret = error_set(err, "tree head signature longer than %d bytes",
                                CHECKPOINT_THS_MAX);
            if (ret == 0) {
                out->tree_head_signature_len = s->sig_len - 8;
                memcpy(out->tree_head_signature, s->sig + 8, out->tree_head_signature_len);
            }
            break;
        }
    }
    note_free(&n);
    return ret;
}
