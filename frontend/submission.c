#include "submission.h"

#include <jansson.h>
#include <string.h>

#include "base64.h"
#include "precert.h"

/* ---- body ---- */

/* jansson's messages are short, but keep the reason on one line whatever they say. */
static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

void submission_chain_free(submission_chain *chain)
{
    if (!chain)
        return;
    buffer_free(&chain->storage);
    memset(chain, 0, sizeof *chain);
}

int submission_parse_body(const uint8_t *body, size_t len, submission_chain *out, error *err)
{
    memset(out, 0, sizeof *out);
    if (len == 0)
        return error_set(err, "request body is empty; expected {\"chain\":[...]}");
    json_error_t jerr;
    json_t *root =
        json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        one_line(jerr.text);
        return error_set(err, "request body is not valid JSON: %s (line %d, column %d)",
                         jerr.text, jerr.line, jerr.column);
    }
    int rc = -1;
    if (!json_is_object(root)) {
        error_set(err, "request body must be a JSON object {\"chain\":[...]}");
        goto done;
    }
    json_t *array = json_object_get(root, "chain");
    if (!array) {
        error_set(err, "request body has no \"chain\" member");
        goto done;
    }
    if (!json_is_array(array)) {
        error_set(err, "\"chain\" must be an array of base64 certificates");
        goto done;
    }
    size_t n = json_array_size(array);
    if (n == 0) {
        error_set(err, "\"chain\" is empty; it must hold at least the leaf certificate");
        goto done;
    }
    if (n > X509_CHAIN_MAX) {
        error_set(err, "\"chain\" has %zu certificates; at most %d are accepted", n,
                  X509_CHAIN_MAX);
        goto done;
    }
    /* Check every element before decoding any, and size the one allocation. */
    size_t max_encoded = base64_encoded_len(X509_CERT_MAX_DER);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(array, i);
        if (!json_is_string(item)) {
            error_set(err, "chain[%zu] is not a string", i);
            goto done;
        }
        size_t item_len = json_string_length(item);
        if (item_len == 0) {
            error_set(err, "chain[%zu] is an empty string", i);
            goto done;
        }
        if (item_len > max_encoded) {
            error_set(err, "chain[%zu] is larger than %d bytes of DER", i, X509_CERT_MAX_DER);
            goto done;
        }
        total += item_len / 4 * 3;
    }
    if (buffer_reserve(&out->storage, total) != 0) {
        error_set(err, "out of memory");
        goto done;
    }
    size_t offsets[X509_CHAIN_MAX];
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(array, i);
        offsets[i] = out->storage.len;
        if (base64_decode(&out->storage, json_string_value(item), json_string_length(item)) !=
            0) {
            error_set(err, "chain[%zu] is not valid base64 (standard alphabet, padded)", i);
            goto done;
        }
        if (out->storage.len - offsets[i] > X509_CERT_MAX_DER) {
            error_set(err, "chain[%zu] is larger than %d bytes of DER", i, X509_CERT_MAX_DER);
            goto done;
        }
    }
    /* The storage was reserved up front, but take the spans only now in any case. */
    for (size_t i = 0; i < n; i++) {
        size_t end = i + 1 < n ? offsets[i + 1] : out->storage.len;
        out->certs[i].data = out->storage.data + offsets[i];
        out->certs[i].len = end - offsets[i];
    }
    out->count = n;
    rc = 0;
done:
    json_decref(root);
    if (rc != 0)
        submission_chain_free(out);
    return rc;
}

/* ---- entry ---- */

void submission_free(submission *sub)
{
    if (!sub)
        return;
    buffer_free(&sub->tbs);
    memset(sub, 0, sizeof *sub);
}

int submission_build(x509_validator *validator, const submission_chain *chain,
                     x509_endpoint endpoint, submission *out, error *err)
{
    memset(out, 0, sizeof *out);
    if (x509_validate_chain(validator, chain->certs, chain->count, endpoint, &out->chain, err) !=
        0)
        return -1;
    ct_entry *e = &out->entry;
    const x509_span leaf = out->chain.leaf;
    if (out->chain.is_precert) {
        if (precert_tbs_for_log(leaf.data, leaf.len, &out->tbs, NULL, err) != 0)
            return error_wrap(err, "precertificate");
        e->entry_type = CT_ENTRY_PRECERT;
        memcpy(e->issuer_key_hash, out->chain.issuer_key_hash, CT_HASH_LEN);
        e->cert_or_tbs = out->tbs.data;
        e->cert_or_tbs_len = out->tbs.len;
        e->pre_certificate = leaf.data;
        e->pre_certificate_len = leaf.len;
    } else {
        e->entry_type = CT_ENTRY_X509;
        e->cert_or_tbs = leaf.data;
        e->cert_or_tbs_len = leaf.len;
    }
    e->fingerprints = &out->chain.fingerprints[0][0];
    e->fingerprint_count = out->chain.issuer_count;
    if (ct_dedup_key(e, out->dedup_key) != 0)
        return error_set(err, "the certificate is too large for a log entry");
    return 0;
}

void submission_request(const submission *sub, const char *log_name,
                        Tegula__SubmitRequest *req, ProtobufCBinaryData *fingerprints,
                        ProtobufCBinaryData *issuers)
{
    const ct_entry *e = &sub->entry;
    tegula__submit_request__init(req);
    req->log = (char *)log_name;
    req->dedup_key.data = (uint8_t *)sub->dedup_key;
    req->dedup_key.len = CT_HASH_LEN;
    req->cert_or_tbs.data = (uint8_t *)e->cert_or_tbs;
    req->cert_or_tbs.len = e->cert_or_tbs_len;
    if (e->entry_type == CT_ENTRY_PRECERT) {
        req->entry_type = TEGULA__ENTRY_TYPE__ENTRY_PRECERT;
        req->issuer_key_hash.data = (uint8_t *)e->issuer_key_hash;
        req->issuer_key_hash.len = CT_HASH_LEN;
        req->precert.data = (uint8_t *)e->pre_certificate;
        req->precert.len = e->pre_certificate_len;
    } else {
        req->entry_type = TEGULA__ENTRY_TYPE__ENTRY_X509;
    }
    size_t n = sub->chain.issuer_count;
    for (size_t i = 0; i < n; i++) {
        fingerprints[i].data = (uint8_t *)sub->chain.fingerprints[i];
        fingerprints[i].len = CT_HASH_LEN;
        issuers[i].data = (uint8_t *)sub->chain.issuers[i].data;
        issuers[i].len = sub->chain.issuers[i].len;
    }
    req->n_chain_fps = n;
    req->chain_fps = fingerprints;
    req->n_issuers = n;
    req->issuers = issuers;
}

/* ---- SCT ---- */

int submission_sct_json(const log_signer *signer, const ct_entry *entry, buffer *json_out,
                        error *err)
{
    if (entry->leaf_index > CT_MAX_LEAF_INDEX)
        return error_set(err, "leaf_index %llu does not fit 40 bits",
                         (unsigned long long)entry->leaf_index);
    buffer leaf = {0};
    buffer sig = {0};
    int rc = -1;
    if (ct_merkle_tree_leaf_encode(&leaf, entry) != 0) {
        error_set(err, "cannot encode the MerkleTreeLeaf");
        goto done;
    }
    if (log_signer_sign(signer, leaf.data, leaf.len, &sig, err) != 0)
        goto done;
    uint8_t ext[CT_LEAF_INDEX_EXTENSIONS_LEN];
    ct_extensions_leaf_index_bytes(ext, entry->leaf_index);
    ct_sct sct = {
        .version = CT_SCT_VERSION_V1,
        .timestamp = entry->timestamp,
        .extensions = ext,
        .extensions_len = sizeof ext,
        .signature = sig.data,
        .signature_len = sig.len,
    };
    memcpy(sct.log_id, log_signer_log_id(signer), CT_HASH_LEN);
    if (ct_sct_encode_json(json_out, &sct) != 0) {
        error_set(err, "cannot encode the SCT");
        goto done;
    }
    rc = 0;
done:
    buffer_free(&leaf);
    buffer_free(&sig);
    return rc;
}
