/* load_sct: checks an add-chain / add-pre-chain answer the way a careful CA would, for the
 * load generator and the tests built on it.
 *
 * The SCT must be v1, carry the expected LogID and a leaf_index extension, and its signature
 * must verify with the log's public key over the entry rebuilt from what was submitted (for a
 * precertificate: the TBS without the poison, and the issuer's key hash). The result is what a
 * test later looks for in the log: the index, the timestamp and the Merkle leaf hash. */
#ifndef TEGULA_LOAD_SCT_H
#define TEGULA_LOAD_SCT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "buffer.h"
#include "error.h"

/* What was submitted: the leaf (or precertificate) DER and, for a precertificate, the SHA-256
 * of its issuer's SubjectPublicKeyInfo. */
typedef struct load_submission {
    bool precert;
    const uint8_t *leaf;
    size_t leaf_len;
    uint8_t issuer_key_hash[32];
} load_submission;

typedef struct load_sct_result {
    uint64_t leaf_index;
    uint64_t timestamp;
    uint8_t leaf_hash[32];
} load_sct_result;

/* Per-thread scratch space, so checking an SCT allocates nothing in the steady state. */
typedef struct load_sct_scratch {
    buffer sct_storage;
    buffer tbs;
    buffer signed_data;
} load_sct_scratch;

void load_sct_scratch_free(load_sct_scratch *s);

/* Verifies the JSON answer `json` for submission `sub` under `key` (whose LogID is log_id).
 * Returns 0 with *out filled, or -1 with the reason. Thread-safe for distinct scratches. */
int load_sct_verify(EVP_PKEY *key, const uint8_t log_id[32], const load_submission *sub,
                    const char *json, size_t json_len, load_sct_scratch *scratch,
                    load_sct_result *out, error *err);

/* The line --out-scts writes for one SCT: "<leaf_index> <timestamp> <hex leaf hash>\n". */
int load_sct_format_line(const load_sct_result *r, buffer *out);

/* ---- checking a --out-scts list against a log (tegula fsck --scts) ---- */

typedef struct sct_list {
    load_sct_result *items; /* sorted by leaf_index */
    size_t count;
    size_t next;            /* first item not yet matched against an entry */
    uint64_t matched;
    size_t skipped;         /* SCTs whose index was passed without an entry */
    uint64_t first_skipped;
} sct_list;

/* Reads a file of load_sct_format_line lines (blank lines ignored) and sorts it by index. */
int sct_list_load(sct_list *l, const char *path, error *err);
void sct_list_free(sct_list *l);
/* Matches the log entry at `index` (call for increasing indexes, every entry) against every
 * SCT for that index: the timestamp and the leaf hash must be equal. Returns how many did not
 * match, and the first mismatch's reason in err. */
size_t sct_list_check_entry(sct_list *l, uint64_t index, uint64_t timestamp,
                            const uint8_t leaf_hash[32], error *err);
/* SCTs never compared with an entry (index past the checked entries, or passed over); the
 * lowest such index in *first. */
size_t sct_list_missing(const sct_list *l, uint64_t *first);

#endif
