/* submission: what the frontend does to one add-chain / add-pre-chain request before and
 * after the batcher, without any network: the strict `{"chain":[b64...]}` body parser, chain
 * validation into a log entry with its dedup key and issuers, the SubmitRequest that carries
 * it, and the signed SCT answered once the entry has an index and a timestamp.
 *
 * Every rejection comes with a one-line reason for the HTTP 400 body. Nothing here logs:
 * certificate bytes never reach a log line from this module. */
#ifndef TEGULA_FRONTEND_SUBMISSION_H
#define TEGULA_FRONTEND_SUBMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "ct.h"
#include "error.h"
#include "keys.h"
#include "tegula.pb-c.h"
#include "x509chain.h"

/* The certificates of a request body, decoded. All DER lives in one allocation. */
typedef struct submission_chain {
    size_t count;
    x509_span certs[X509_CHAIN_MAX];
    buffer storage;
} submission_chain;

/* Parses an add-chain / add-pre-chain body: a JSON object whose "chain" member is an array of
 * 1..X509_CHAIN_MAX strings, each strict base64 (padding required) of 1..X509_CERT_MAX_DER
 * bytes. Duplicate keys are refused; other members are ignored (RFC 6962 clients may add
 * some). On failure returns -1 with a reason naming what is wrong (and which element); `out`
 * is then empty. Call submission_chain_free either way. */
int submission_parse_body(const uint8_t *body, size_t len, submission_chain *out, error *err);
void submission_chain_free(submission_chain *chain);

/* One validated submission: the log entry (timestamp and leaf_index still 0), its dedup key
 * and the issuers (root included) that travel with it. `entry` points into the chain given
 * to submission_build and into this structure, so both must stay alive and in place. */
typedef struct submission {
    x509_chain_result chain;      /* issuers, fingerprints, issuer_key_hash */
    ct_entry entry;
    uint8_t dedup_key[CT_HASH_LEN];
    buffer tbs;                   /* precert: the TBS without the poison */
} submission;

/* Validates the chain for the endpoint and builds the entry (precert: TBS without poison and
 * the issuer's key hash) and its dedup key. -1 with the validator's reason (or another
 * one-line reason) on failure. Call submission_free either way. */
int submission_build(x509_validator *validator, const submission_chain *chain,
                     x509_endpoint endpoint, submission *out, error *err);
void submission_free(submission *sub);

/* The SubmitRequest for a built submission, in caller storage: every pointer in *req refers
 * to `sub` (and to the chain it came from) and to the two arrays given, which need room for
 * X509_CHAIN_MAX entries. Nothing is allocated. */
void submission_request(const submission *sub, const char *log_name,
                        Tegula__SubmitRequest *req, ProtobufCBinaryData *fingerprints,
                        ProtobufCBinaryData *issuers);

/* Signs the SCT for an entry whose timestamp and leaf_index are set: v1, the signer's LogID,
 * the leaf_index extension, and the RFC 6979 DigitallySigned over the MerkleTreeLeaf (which
 * is the SCT's signed data). Appends the RFC 6962 add-chain response JSON to json_out.
 * Deterministic: the same key and entry give the same bytes. Thread-safe. */
int submission_sct_json(const log_signer *signer, const ct_entry *entry, buffer *json_out,
                        error *err);

#endif
