/* load_sct: verification of returned SCTs against the submitted chain. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "ct.h"
#include "keys.h"
#include "load_sct.h"
#include "precert.h"

void load_sct_scratch_free(load_sct_scratch *s)
{
    buffer_free(&s->sct_storage);
    buffer_free(&s->tbs);
    buffer_free(&s->signed_data);
}

int load_sct_verify(EVP_PKEY *key, const uint8_t log_id[32], const load_submission *sub,
                    const char *json, size_t json_len, load_sct_scratch *scratch,
                    load_sct_result *out, error *err)
{
    ct_sct sct;
    if (ct_sct_parse_json(json, json_len, &sct, &scratch->sct_storage, err) != 0)
        return -1;
    if (sct.version != CT_SCT_VERSION_V1)
        return error_set(err, "SCT version %u, not v1", sct.version);
    if (memcmp(sct.log_id, log_id, 32) != 0)
        return error_set(err, "SCT LogID is not the log key's");
    uint64_t leaf_index;
    if (ct_sct_leaf_index(&sct, &leaf_index, err) != 0)
        return -1;

    ct_entry e;
    memset(&e, 0, sizeof e);
    e.timestamp = sct.timestamp;
    e.leaf_index = leaf_index;
    if (sub->precert) {
        buffer_reset(&scratch->tbs);
        precert_poison poison;
        if (precert_tbs_for_log(sub->leaf, sub->leaf_len, &scratch->tbs, &poison, err) != 0)
            return -1;
        e.entry_type = CT_ENTRY_PRECERT;
        memcpy(e.issuer_key_hash, sub->issuer_key_hash, 32);
        e.cert_or_tbs = scratch->tbs.data;
        e.cert_or_tbs_len = scratch->tbs.len;
    } else {
        e.entry_type = CT_ENTRY_X509;
        e.cert_or_tbs = sub->leaf;
        e.cert_or_tbs_len = sub->leaf_len;
    }

    /* The signature covers the leaf with the SCT's own extensions; a static-ct log's SCT
     * must have exactly the leaf_index extension, so that is also the logged leaf. */
    uint8_t canonical_ext[CT_LEAF_INDEX_EXTENSIONS_LEN];
    ct_extensions_leaf_index_bytes(canonical_ext, leaf_index);
    if (sct.extensions_len != sizeof canonical_ext ||
        memcmp(sct.extensions, canonical_ext, sizeof canonical_ext) != 0)
        return error_set(err, "SCT extensions are not exactly leaf_index %" PRIu64, leaf_index);

    buffer_reset(&scratch->signed_data);
    if (ct_sct_signed_data(&scratch->signed_data, &sct, &e) != 0)
        return error_set(err, "cannot encode the signed entry");
    digitally_signed ds;
    if (digitally_signed_parse(sct.signature, sct.signature_len, &ds, err) != 0)
        return -1;
    if (digitally_signed_verify(key, scratch->signed_data.data, scratch->signed_data.len, &ds,
                                err) != 0)
        return -1;
    if (ct_leaf_hash(&e, out->leaf_hash) != 0)
        return error_set(err, "cannot hash the entry");
    out->leaf_index = leaf_index;
    out->timestamp = sct.timestamp;
    return 0;
}

int load_sct_format_line(const load_sct_result *r, buffer *out)
{
    char hex[65];
    hex_encode(hex, r->leaf_hash, 32);
    return buffer_printf(out, "%" PRIu64 " %" PRIu64 " %s\n", r->leaf_index, r->timestamp, hex);
}

static int compare_results(const void *a, const void *b)
{
    const load_sct_result *x = a, *y = b;
    if (x->leaf_index != y->leaf_index)
        return x->leaf_index < y->leaf_index ? -1 : 1;
    return x->timestamp < y->timestamp ? -1 : x->timestamp > y->timestamp;
}

int sct_list_load(sct_list *l, const char *path, error *err)
{
    memset(l, 0, sizeof *l);
    FILE *f = fopen(path, "r");
    if (!f)
        return error_set(err, "%s: %s", path, strerror(errno));
    char line[256];
    size_t cap = 0, lineno = 0;
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '\n')
            continue;
        load_sct_result r;
        char hex[80];
        int used = 0;
        if (sscanf(line, "%" SCNu64 " %" SCNu64 " %79s%n", &r.leaf_index, &r.timestamp, hex,
                   &used) != 3 ||
            (line[used] != '\n' && line[used] != '\0') ||
            hex_decode(r.leaf_hash, 32, hex, strlen(hex)) != 0) {
            rc = error_set(err, "%s:%zu: not \"<leaf_index> <timestamp> <hex leaf hash>\"", path,
                           lineno);
            break;
        }
        if (l->count == cap) {
            cap = cap ? cap * 2 : 1024;
            load_sct_result *p = realloc(l->items, cap * sizeof *p);
            if (!p) {
                rc = error_set(err, "out of memory");
                break;
            }
            l->items = p;
        }
        l->items[l->count++] = r;
    }
    if (rc == 0 && ferror(f))
        rc = error_set(err, "%s: read error", path);
    fclose(f);
    if (rc != 0) {
        sct_list_free(l);
        return -1;
    }
    if (l->count)
        qsort(l->items, l->count, sizeof *l->items, compare_results);
    return 0;
}

void sct_list_free(sct_list *l)
{
    free(l->items);
    memset(l, 0, sizeof *l);
}

size_t sct_list_check_entry(sct_list *l, uint64_t index, uint64_t timestamp,
                            const uint8_t leaf_hash[32], error *err)
{
    /* Entries come in order; an SCT left behind an earlier index was never matched. */
    while (l->next < l->count && l->items[l->next].leaf_index < index) {
        if (l->skipped++ == 0)
            l->first_skipped = l->items[l->next].leaf_index;
        l->next++;
    }
    size_t bad = 0;
    for (; l->next < l->count && l->items[l->next].leaf_index == index; l->next++) {
        const load_sct_result *r = &l->items[l->next];
        const char *why = NULL;
        if (r->timestamp != timestamp)
            why = "timestamp";
        else if (memcmp(r->leaf_hash, leaf_hash, 32) != 0)
            why = "leaf hash";
        if (why) {
            if (bad++ == 0)
                error_set(err, "SCT for index %" PRIu64 ": the logged entry has another %s",
                          index, why);
        } else {
            l->matched++;
        }
    }
    return bad;
}

size_t sct_list_missing(const sct_list *l, uint64_t *first)
{
    size_t missing = l->skipped + (l->count - l->next);
    if (missing && first)
        *first = l->skipped ? l->first_skipped : l->items[l->next].leaf_index;
    return missing;
}
