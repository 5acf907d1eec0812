#include "ct.h"

#include <inttypes.h>
#include <jansson.h>
#include <string.h>

#include "base64.h"
#include "sha256.h"

/* --- CtExtensions --- */

void ct_extensions_leaf_index_bytes(uint8_t out[CT_LEAF_INDEX_EXTENSIONS_LEN], uint64_t leaf_index)
{
    out[0] = CT_EXTENSION_LEAF_INDEX;
    be_store(out + 1, 5, 2);
    be_store(out + 3, leaf_index, 5);
}

int ct_extensions_put_leaf_index(buffer *b, uint64_t leaf_index)
{
    if (leaf_index > CT_MAX_LEAF_INDEX)
        return -1;
    uint8_t ext[CT_LEAF_INDEX_EXTENSIONS_LEN];
    ct_extensions_leaf_index_bytes(ext, leaf_index);
    return buffer_append(b, ext, sizeof ext);
}

int ct_extensions_parse(const uint8_t *data, size_t len, ct_extensions_mode mode,
                        uint64_t *leaf_index, error *err)
{
    tls_reader r;
    tls_reader_init(&r, data, len);
    bool seen[256] = {false};
    bool found = false;
    uint64_t index = 0;
    while (!tls_reader_empty(&r)) {
        uint8_t type;
        const uint8_t *value;
        size_t value_len;
        if (tls_get_u8(&r, &type) != 0 || tls_get_vec(&r, 2, &value, &value_len) != 0)
            return error_set(err, "extensions: truncated extension");
        if (seen[type])
            return error_set(err, "extensions: type %u appears twice", type);
        seen[type] = true;
        if (type == CT_EXTENSION_LEAF_INDEX) {
            if (value_len != 5)
                return error_set(err, "extensions: leaf_index of %zu bytes, want 5", value_len);
            index = be_load(value, 5);
            found = true;
        } else if (mode == CT_EXTENSIONS_DATA_TILE) {
            return error_set(err, "extensions: unexpected type %u in a data tile", type);
        }
    }
    if (!found)
        return error_set(err, "extensions: no leaf_index");
    if (leaf_index)
        *leaf_index = index;
    return 0;
}

/* --- TimestampedEntry / MerkleTreeLeaf --- */

static bool entry_type_valid(uint16_t type)
{
    return type == CT_ENTRY_X509 || type == CT_ENTRY_PRECERT;
}

static bool entry_encodable(const ct_entry *e, size_t ext_len)
{
    return entry_type_valid(e->entry_type) && e->cert_or_tbs_len >= 1 &&
           e->cert_or_tbs_len <= CT_MAX_CERT_LEN && ext_len <= 0xffff;
}

/* timestamp || entry_type || [issuer_key_hash] || uint24 length: everything of the
 * TimestampedEntry before the certificate bytes. */
#define TE_HEAD_MAX (8 + 2 + CT_HASH_LEN + 3)
static size_t timestamped_entry_head(uint8_t out[TE_HEAD_MAX], const ct_entry *e)
{
    size_t n = 0;
    be_store(out + n, e->timestamp, 8);
    n += 8;
    be_store(out + n, e->entry_type, 2);
    n += 2;
    if (e->entry_type == CT_ENTRY_PRECERT) {
        memcpy(out + n, e->issuer_key_hash, CT_HASH_LEN);
        n += CT_HASH_LEN;
    }
    be_store(out + n, e->cert_or_tbs_len, 3);
    return n + 3;
}

int ct_timestamped_entry_encode(buffer *b, const ct_entry *e, const uint8_t *ext, size_t ext_len)
{
    if (!entry_encodable(e, ext_len))
        return -1;
    uint8_t head[TE_HEAD_MAX];
    size_t head_len = timestamped_entry_head(head, e);
    size_t mark = b->len;
    if (buffer_append(b, head, head_len) != 0 ||
        buffer_append(b, e->cert_or_tbs, e->cert_or_tbs_len) != 0 ||
        tls_put_vec(b, 2, ext, ext_len) != 0) {
        b->len = mark;
        return -1;
    }
    return 0;
}

int ct_merkle_tree_leaf_encode_ext(buffer *b, const ct_entry *e, const uint8_t *ext,
                                   size_t ext_len)
{
    size_t mark = b->len;
    /* version v1, leaf_type timestamped_entry */
    if (tls_put_u16(b, 0) != 0 || ct_timestamped_entry_encode(b, e, ext, ext_len) != 0) {
        b->len = mark;
        return -1;
    }
    return 0;
}

int ct_merkle_tree_leaf_encode(buffer *b, const ct_entry *e)
{
    if (e->leaf_index > CT_MAX_LEAF_INDEX)
        return -1;
    uint8_t ext[CT_LEAF_INDEX_EXTENSIONS_LEN];
    ct_extensions_leaf_index_bytes(ext, e->leaf_index);
    return ct_merkle_tree_leaf_encode_ext(b, e, ext, sizeof ext);
}

int ct_leaf_hash_ext(const ct_entry *e, const uint8_t *ext, size_t ext_len,
                     uint8_t out[CT_HASH_LEN])
{
    if (!entry_encodable(e, ext_len))
        return -1;
    /* 00 (leaf hash prefix) || 00 (v1) || 00 (timestamped_entry) || TimestampedEntry */
    uint8_t head[3 + TE_HEAD_MAX] = {0, 0, 0};
    size_t head_len = 3 + timestamped_entry_head(head + 3, e);
    uint8_t ext_prefix[2];
    be_store(ext_prefix, ext_len, 2);
    static const uint8_t nothing[1];
    const void *parts[] = {head, e->cert_or_tbs, ext_prefix, ext_len ? ext : nothing};
    const size_t lens[] = {head_len, e->cert_or_tbs_len, 2, ext_len};
    sha256_parts(out, 4, parts, lens);
    return 0;
}

int ct_leaf_hash(const ct_entry *e, uint8_t out[CT_HASH_LEN])
{
    if (e->leaf_index > CT_MAX_LEAF_INDEX)
        return -1;
    uint8_t ext[CT_LEAF_INDEX_EXTENSIONS_LEN];
    ct_extensions_leaf_index_bytes(ext, e->leaf_index);
    return ct_leaf_hash_ext(e, ext, sizeof ext, out);
}

/* --- SCT v1 --- */

static int digitally_signed_read(tls_reader *r, const uint8_t **start, size_t *total,
                                 uint8_t *hash_alg, uint8_t *sig_alg, const uint8_t **sig,
                                 size_t *sig_len)
{
    tls_reader saved = *r;
    *start = r->pos;
    if (tls_get_u8(r, hash_alg) != 0 || tls_get_u8(r, sig_alg) != 0 ||
        tls_get_vec(r, 2, sig, sig_len) != 0) {
        *r = saved;
        return -1;
    }
    *total = (size_t)(r->pos - *start);
    return 0;
}

int ct_digitally_signed_parse(const uint8_t *data, size_t len, uint8_t *hash_alg,
                              uint8_t *sig_alg, const uint8_t **sig, size_t *sig_len, error *err)
{
    tls_reader r;
    tls_reader_init(&r, data, len);
    const uint8_t *start;
    size_t total;
    if (digitally_signed_read(&r, &start, &total, hash_alg, sig_alg, sig, sig_len) != 0)
        return error_set(err, "DigitallySigned: truncated");
    if (!tls_reader_empty(&r))
        return error_set(err, "DigitallySigned: %zu trailing bytes", r.left);
    return 0;
}

int ct_digitally_signed_encode(buffer *b, uint8_t hash_alg, uint8_t sig_alg, const uint8_t *sig,
                               size_t sig_len)
{
    size_t mark = b->len;
    if (tls_put_u8(b, hash_alg) != 0 || tls_put_u8(b, sig_alg) != 0 ||
        tls_put_vec(b, 2, sig, sig_len) != 0) {
        b->len = mark;
        return -1;
    }
    return 0;
}

static bool signature_well_formed(const ct_sct *sct)
{
    uint8_t hash_alg, sig_alg;
    const uint8_t *sig;
    size_t sig_len;
    return ct_digitally_signed_parse(sct->signature, sct->signature_len, &hash_alg, &sig_alg, &sig,
                                     &sig_len, NULL) == 0;
}

int ct_sct_encode(buffer *b, const ct_sct *sct)
{
    if (sct->version != CT_SCT_VERSION_V1 || sct->extensions_len > 0xffff ||
        !signature_well_formed(sct))
        return -1;
    size_t mark = b->len;
    if (tls_put_u8(b, sct->version) != 0 || tls_put_bytes(b, sct->log_id, CT_HASH_LEN) != 0 ||
        tls_put_u64(b, sct->timestamp) != 0 ||
        tls_put_vec(b, 2, sct->extensions, sct->extensions_len) != 0 ||
        tls_put_bytes(b, sct->signature, sct->signature_len) != 0) {
        b->len = mark;
        return -1;
    }
    return 0;
}

int ct_sct_read(tls_reader *r, ct_sct *sct, error *err)
{
    tls_reader saved = *r;
    const uint8_t *log_id;
    uint8_t hash_alg, sig_alg;
    const uint8_t *sig;
    size_t sig_len;
    if (tls_get_u8(r, &sct->version) != 0) {
        error_set(err, "SCT: empty");
        goto fail;
    }
    if (sct->version != CT_SCT_VERSION_V1) {
        error_set(err, "SCT: unsupported version %u", sct->version);
        goto fail;
    }
    if (tls_get_bytes(r, CT_HASH_LEN, &log_id) != 0 || tls_get_u64(r, &sct->timestamp) != 0 ||
        tls_get_vec(r, 2, &sct->extensions, &sct->extensions_len) != 0) {
        error_set(err, "SCT: truncated");
        goto fail;
    }
    if (digitally_signed_read(r, &sct->signature, &sct->signature_len, &hash_alg, &sig_alg, &sig,
                              &sig_len) != 0) {
        error_set(err, "SCT: truncated signature");
        goto fail;
    }
    memcpy(sct->log_id, log_id, CT_HASH_LEN);
    return 0;
fail:
    *r = saved;
    return -1;
}

int ct_sct_parse(const uint8_t *data, size_t len, ct_sct *sct, error *err)
{
    tls_reader r;
    tls_reader_init(&r, data, len);
    if (ct_sct_read(&r, sct, err) != 0)
        return -1;
    if (!tls_reader_empty(&r))
        return error_set(err, "SCT: %zu trailing bytes", r.left);
    return 0;
}

int ct_sct_leaf_index(const ct_sct *sct, uint64_t *leaf_index, error *err)
{
    if (ct_extensions_parse(sct->extensions, sct->extensions_len, CT_EXTENSIONS_SCT, leaf_index,
                            err) != 0)
        return error_wrap(err, "SCT");
    return 0;
}

int ct_sct_encode_json(buffer *b, const ct_sct *sct)
{
    if (sct->version != CT_SCT_VERSION_V1 || !signature_well_formed(sct))
        return -1;
    size_t mark = b->len;
    if (buffer_printf(b, "{\"sct_version\":%u,\"id\":\"", sct->version) != 0 ||
        base64_encode(b, sct->log_id, CT_HASH_LEN) != 0 ||
        buffer_printf(b, "\",\"timestamp\":%" PRIu64 ",\"extensions\":\"", sct->timestamp) != 0 ||
        base64_encode(b, sct->extensions, sct->extensions_len) != 0 ||
        buffer_append_str(b, "\",\"signature\":\"") != 0 ||
        base64_encode(b, sct->signature, sct->signature_len) != 0 ||
        buffer_append_str(b, "\"}") != 0) {
        b->len = mark;
        return -1;
    }
    return 0;
}

static const char *json_string_field(json_t *root, const char *name, size_t *len)
{
    json_t *v = json_object_get(root, name);
    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

int ct_sct_parse_json(const char *json, size_t len, ct_sct *sct, buffer *storage, error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return error_set(err, "SCT JSON: %s", jerr.text);
    int rc = -1;
    buffer_reset(storage);
    memset(sct, 0, sizeof *sct);
    if (!json_is_object(root)) {
        error_set(err, "SCT JSON: not an object");
        goto done;
    }
    json_t *version = json_object_get(root, "sct_version");
    if (!json_is_integer(version) || json_integer_value(version) != CT_SCT_VERSION_V1) {
        error_set(err, "SCT JSON: sct_version is not 0");
        goto done;
    }
    json_t *timestamp = json_object_get(root, "timestamp");
    if (!json_is_integer(timestamp) || json_integer_value(timestamp) < 0) {
        error_set(err, "SCT JSON: bad timestamp");
        goto done;
    }
    size_t id_len = 0, ext_len = 0, sig_len = 0;
    const char *id = json_string_field(root, "id", &id_len);
    const char *ext = json_string_field(root, "extensions", &ext_len);
    const char *sig = json_string_field(root, "signature", &sig_len);
    if (!id || !ext || !sig) {
        error_set(err, "SCT JSON: id, extensions and signature must be strings");
        goto done;
    }
    if (base64_decode_exact(sct->log_id, CT_HASH_LEN, id, id_len) != 0) {
        error_set(err, "SCT JSON: id is not base64 of 32 bytes");
        goto done;
    }
    if (base64_decode(storage, ext, ext_len) != 0) {
        error_set(err, "SCT JSON: extensions is not base64");
        goto done;
    }
    size_t extensions_len = storage->len;
    if (base64_decode(storage, sig, sig_len) != 0) {
        error_set(err, "SCT JSON: signature is not base64");
        goto done;
    }
    if (extensions_len > 0xffff) {
        error_set(err, "SCT JSON: extensions longer than 65535 bytes");
        goto done;
    }
    sct->version = CT_SCT_VERSION_V1;
    sct->timestamp = (uint64_t)json_integer_value(timestamp);
    sct->extensions = storage->data;
    sct->extensions_len = extensions_len;
    sct->signature = storage->data + extensions_len;
    sct->signature_len = storage->len - extensions_len;
    uint8_t hash_alg, sig_alg;
    const uint8_t *raw;
    size_t raw_len;
    if (ct_digitally_signed_parse(sct->signature, sct->signature_len, &hash_alg, &sig_alg, &raw,
                                  &raw_len, err) != 0) {
        error_wrap(err, "SCT JSON signature");
        goto done;
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

int ct_sct_signed_data(buffer *b, const ct_sct *sct, const ct_entry *e)
{
    ct_entry signed_entry = *e;
    signed_entry.timestamp = sct->timestamp;
    return ct_merkle_tree_leaf_encode_ext(b, &signed_entry, sct->extensions, sct->extensions_len);
}

/* --- TileLeaf --- */

int ct_tile_leaf_encode(buffer *b, const ct_entry *e)
{
    bool precert = e->entry_type == CT_ENTRY_PRECERT;
    if (e->leaf_index > CT_MAX_LEAF_INDEX || e->fingerprint_count > CT_MAX_FINGERPRINTS ||
        (precert && (e->pre_certificate_len < 1 || e->pre_certificate_len > CT_MAX_CERT_LEN)))
        return -1;
    uint8_t ext[CT_LEAF_INDEX_EXTENSIONS_LEN];
    ct_extensions_leaf_index_bytes(ext, e->leaf_index);
    size_t mark = b->len;
    if (ct_timestamped_entry_encode(b, e, ext, sizeof ext) != 0 ||
        (precert && tls_put_vec(b, 3, e->pre_certificate, e->pre_certificate_len) != 0) ||
        tls_put_vec(b, 2, e->fingerprints, e->fingerprint_count * CT_HASH_LEN) != 0) {
        b->len = mark;
        return -1;
    }
    return 0;
}

int ct_tile_leaf_read(tls_reader *r, ct_entry *e, error *err)
{
    tls_reader saved = *r;
    memset(e, 0, sizeof *e);
    const uint8_t *ikh, *ext, *fps;
    size_t ext_len, fps_len;
    const char *field = "timestamp";
    if (tls_get_u64(r, &e->timestamp) != 0)
        goto truncated;
    field = "entry_type";
    if (tls_get_u16(r, &e->entry_type) != 0)
        goto truncated;
    if (!entry_type_valid(e->entry_type)) {
        error_set(err, "TileLeaf: unknown entry_type %u", e->entry_type);
        goto fail;
    }
    bool precert = e->entry_type == CT_ENTRY_PRECERT;
    if (precert) {
        field = "issuer_key_hash";
        if (tls_get_bytes(r, CT_HASH_LEN, &ikh) != 0)
            goto truncated;
        memcpy(e->issuer_key_hash, ikh, CT_HASH_LEN);
    }
    field = precert ? "tbs_certificate" : "certificate";
    if (tls_get_vec(r, 3, &e->cert_or_tbs, &e->cert_or_tbs_len) != 0)
        goto truncated;
    if (e->cert_or_tbs_len == 0) {
        error_set(err, "TileLeaf: empty %s", field);
        goto fail;
    }
    field = "extensions";
    if (tls_get_vec(r, 2, &ext, &ext_len) != 0)
        goto truncated;
    if (ct_extensions_parse(ext, ext_len, CT_EXTENSIONS_DATA_TILE, &e->leaf_index, err) != 0) {
        error_wrap(err, "TileLeaf");
        goto fail;
    }
    if (precert) {
        field = "pre_certificate";
        if (tls_get_vec(r, 3, &e->pre_certificate, &e->pre_certificate_len) != 0)
            goto truncated;
        if (e->pre_certificate_len == 0) {
            error_set(err, "TileLeaf: empty pre_certificate");
            goto fail;
        }
    }
    field = "fingerprints";
    if (tls_get_vec(r, 2, &fps, &fps_len) != 0)
        goto truncated;
    if (fps_len % CT_HASH_LEN != 0) {
        error_set(err, "TileLeaf: fingerprints of %zu bytes, not a multiple of 32", fps_len);
        goto fail;
    }
    e->fingerprints = fps;
    e->fingerprint_count = fps_len / CT_HASH_LEN;
    return 0;
truncated:
    error_set(err, "TileLeaf: truncated %s", field);
fail:
    *r = saved;
    return -1;
}

void ct_data_tile_iter_init(ct_data_tile_iter *it, const uint8_t *data, size_t len)
{
    tls_reader_init(&it->r, data, len);
    it->count = 0;
}

int ct_data_tile_next(ct_data_tile_iter *it, ct_entry *e, error *err)
{
    if (tls_reader_empty(&it->r))
        return 0;
    if (ct_tile_leaf_read(&it->r, e, err) != 0)
        return error_wrap(err, "data tile entry %zu", it->count);
    it->count++;
    return 1;
}

/* --- Dedup key and extra_data --- */

int ct_dedup_key(const ct_entry *e, uint8_t out[CT_HASH_LEN])
{
    if (!entry_encodable(e, 0))
        return -1;
    uint8_t type[2], len[3];
    be_store(type, e->entry_type, 2);
    be_store(len, e->cert_or_tbs_len, 3);
    bool precert = e->entry_type == CT_ENTRY_PRECERT;
    const void *parts[] = {type, precert ? (const void *)e->issuer_key_hash : type, len,
                           e->cert_or_tbs};
    const size_t lens[] = {2, precert ? CT_HASH_LEN : 0, 3, e->cert_or_tbs_len};
    sha256_parts(out, 4, parts, lens);
    return 0;
}

int ct_extra_data_encode(buffer *b, const ct_entry *e, const uint8_t *const *issuers,
                         const size_t *issuer_lens, size_t n, error *err)
{
    if (!entry_type_valid(e->entry_type))
        return error_set(err, "extra_data: unknown entry_type %u", e->entry_type);
    if (n != e->fingerprint_count)
        return error_set(err, "extra_data: %zu issuers for %zu fingerprints", n,
                         e->fingerprint_count);
    for (size_t i = 0; i < n; i++) {
        uint8_t fp[CT_HASH_LEN];
        if (issuer_lens[i] < 1 || issuer_lens[i] > CT_MAX_CERT_LEN)
            return error_set(err, "extra_data: issuer %zu has length %zu", i, issuer_lens[i]);
        sha256(issuers[i], issuer_lens[i], fp);
        if (memcmp(fp, e->fingerprints + i * CT_HASH_LEN, CT_HASH_LEN) != 0)
            return error_set(err, "extra_data: issuer %zu does not match its fingerprint", i);
    }
    size_t mark = b->len, list;
    if (e->entry_type == CT_ENTRY_PRECERT &&
        (e->pre_certificate_len < 1 || e->pre_certificate_len > CT_MAX_CERT_LEN ||
         tls_put_vec(b, 3, e->pre_certificate, e->pre_certificate_len) != 0))
        goto fail;
    if (tls_vec_begin(b, 3, &list) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (tls_put_vec(b, 3, issuers[i], issuer_lens[i]) != 0)
            goto fail;
    if (tls_vec_end(b, 3, list) != 0)
        goto fail;
    return 0;
fail:
    b->len = mark;
    return error_set(err, "extra_data: too long or out of memory");
}
