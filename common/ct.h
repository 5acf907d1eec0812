/* ct: the RFC 6962 and static-ct-api byte structures of one log entry.
 * TimestampedEntry, MerkleTreeLeaf and its hash, CtExtensions with leaf_index, SCT v1 (TLS wire
 * and JSON), the static-ct TileLeaf and data tiles, the dedup key and RFC 6962 extra_data.
 * Parsers are bounded and zero-copy: parsed structures point into the caller's input. */
#ifndef TEGULA_CT_H
#define TEGULA_CT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "error.h"
#include "tls_codec.h"

#define CT_ENTRY_X509 0
#define CT_ENTRY_PRECERT 1

#define CT_HASH_LEN 32
#define CT_MAX_LEAF_INDEX ((UINT64_C(1) << 40) - 1)
#define CT_MAX_CERT_LEN ((size_t)0xffffff)  /* uint24 vectors */
#define CT_MAX_FINGERPRINTS (0xffff / 32)   /* uint16 vector of 32-byte hashes */

#define CT_EXTENSION_LEAF_INDEX 0
/* Content of a CtExtensions holding only leaf_index: type(1) length(2) uint40. */
#define CT_LEAF_INDEX_EXTENSIONS_LEN 8

/* One log entry. Pointers are views into someone else's memory (a parsed tile, a request). */
typedef struct ct_entry {
    uint16_t entry_type;                    /* CT_ENTRY_X509 or CT_ENTRY_PRECERT */
    uint64_t timestamp;                     /* ms since the epoch, the SCT timestamp */
    uint8_t issuer_key_hash[CT_HASH_LEN];   /* precert only */
    const uint8_t *cert_or_tbs;             /* x509: leaf DER; precert: TBS without poison */
    size_t cert_or_tbs_len;
    uint64_t leaf_index;
    const uint8_t *pre_certificate;         /* precert only: the precertificate as submitted */
    size_t pre_certificate_len;
    const uint8_t *fingerprints;            /* fingerprint_count * 32 bytes: H(chain[1..]) */
    size_t fingerprint_count;
} ct_entry;

/* --- CtExtensions (static-ct-api §leaf_index) --- */

/* Appends the 8-byte extensions content `00 0005 <uint40 leaf_index>` (no length prefix). */
int ct_extensions_put_leaf_index(buffer *b, uint64_t leaf_index);
void ct_extensions_leaf_index_bytes(uint8_t out[CT_LEAF_INDEX_EXTENSIONS_LEN], uint64_t leaf_index);

typedef enum ct_extensions_mode {
    /* An SCT: unknown types are tolerated, leaf_index is required, no type twice. */
    CT_EXTENSIONS_SCT,
    /* A data tile: exactly one extension, leaf_index. */
    CT_EXTENSIONS_DATA_TILE,
} ct_extensions_mode;

/* Parses CtExtensions content (without its uint16 prefix) and returns the leaf_index. */
int ct_extensions_parse(const uint8_t *data, size_t len, ct_extensions_mode mode,
                        uint64_t *leaf_index, error *err);

/* --- TimestampedEntry / MerkleTreeLeaf --- */

/* Appends TimestampedEntry with the given CtExtensions content (ext may be NULL if 0 bytes). */
int ct_timestamped_entry_encode(buffer *b, const ct_entry *e, const uint8_t *ext, size_t ext_len);
/* Appends MerkleTreeLeaf = 00 00 || TimestampedEntry, with the entry's leaf_index extension.
 * This is also the data an SCT for the entry signs (RFC 6962 §3.2, static-ct-api). */
int ct_merkle_tree_leaf_encode(buffer *b, const ct_entry *e);
/* The same with arbitrary CtExtensions content (RFC 6962 logs, foreign SCTs). */
int ct_merkle_tree_leaf_encode_ext(buffer *b, const ct_entry *e, const uint8_t *ext,
                                   size_t ext_len);
/* Leaf hash H(00 || MerkleTreeLeaf) with the leaf_index extension, without building the leaf.
 * Returns -1 if a field does not fit its encoding. */
int ct_leaf_hash(const ct_entry *e, uint8_t out[CT_HASH_LEN]);
int ct_leaf_hash_ext(const ct_entry *e, const uint8_t *ext, size_t ext_len,
                     uint8_t out[CT_HASH_LEN]);

/* --- SCT v1 --- */

#define CT_SCT_VERSION_V1 0
#define CT_HASH_ALG_SHA256 4
#define CT_SIG_ALG_RSA 1
#define CT_SIG_ALG_ECDSA 3

typedef struct ct_sct {
    uint8_t version;                 /* 0 = v1 (the only one parsed) */
    uint8_t log_id[CT_HASH_LEN];
    uint64_t timestamp;
    const uint8_t *extensions;       /* CtExtensions content, without its uint16 prefix */
    size_t extensions_len;
    const uint8_t *signature;        /* the whole DigitallySigned: hash, sig alg, u16 len, sig */
    size_t signature_len;
} ct_sct;

/* Splits a DigitallySigned (exactly data[0..len)). Pointers go into data. */
int ct_digitally_signed_parse(const uint8_t *data, size_t len, uint8_t *hash_alg,
                              uint8_t *sig_alg, const uint8_t **sig, size_t *sig_len, error *err);
/* Appends a DigitallySigned with the given algorithms around a raw signature. */
int ct_digitally_signed_encode(buffer *b, uint8_t hash_alg, uint8_t sig_alg, const uint8_t *sig,
                               size_t sig_len);

/* TLS wire form (the form embedded in certificates and TLS/OCSP SCT lists). */
int ct_sct_encode(buffer *b, const ct_sct *sct);
/* Reads one SCT from r (bounded by r); the SCT's pointers go into r's input. */
int ct_sct_read(tls_reader *r, ct_sct *sct, error *err);
/* Parses exactly data[0..len) as one SCT. */
int ct_sct_parse(const uint8_t *data, size_t len, ct_sct *sct, error *err);
/* The SCT's leaf_index (static-ct-api requires it): CT_EXTENSIONS_SCT rules. */
int ct_sct_leaf_index(const ct_sct *sct, uint64_t *leaf_index, error *err);

/* RFC 6962 §4.1 add-chain response JSON (extensions base64 without the uint16 prefix). */
int ct_sct_encode_json(buffer *b, const ct_sct *sct);
/* Parses that JSON (as a client). Decoded bytes go to `storage` (reset first), which the SCT
 * then points into: keep storage alive and unmodified while the SCT is used. */
int ct_sct_parse_json(const char *json, size_t len, ct_sct *sct, buffer *storage, error *err);

/* Appends the data an SCT signs for an entry: MerkleTreeLeaf with the SCT's timestamp and
 * extensions (not the entry's). For an SCT the log issued this equals the entry's leaf. */
int ct_sct_signed_data(buffer *b, const ct_sct *sct, const ct_entry *e);

/* --- static-ct-api TileLeaf and data tiles --- */

/* Appends one TileLeaf: TimestampedEntry (leaf_index extension), then for precerts the
 * pre_certificate, then the fingerprints. */
int ct_tile_leaf_encode(buffer *b, const ct_entry *e);
/* Reads one TileLeaf from r; the entry points into r's input. Extensions must be exactly one
 * leaf_index. */
int ct_tile_leaf_read(tls_reader *r, ct_entry *e, error *err);

typedef struct ct_data_tile_iter {
    tls_reader r;
    size_t count; /* entries returned so far */
} ct_data_tile_iter;

void ct_data_tile_iter_init(ct_data_tile_iter *it, const uint8_t *data, size_t len);
/* 1 with the next entry in *e, 0 at the clean end of the tile, -1 on malformed input
 * (including trailing bytes that do not form a whole TileLeaf). */
int ct_data_tile_next(ct_data_tile_iter *it, ct_entry *e, error *err);

/* --- Helpers for the submission and read paths --- */

/* Dedup key: H(entry_type u16 || [issuer_key_hash, precert only] || u24 len || cert or TBS). */
int ct_dedup_key(const ct_entry *e, uint8_t out[CT_HASH_LEN]);

/* RFC 6962 get-entries extra_data for an entry, given the issuer DERs in chain order
 * (issuers[i] must hash to fingerprint i; checked). x509: uint24 list of uint24 certs;
 * precert: uint24 pre_certificate || uint24 list of uint24 certs. */
int ct_extra_data_encode(buffer *b, const ct_entry *e, const uint8_t *const *issuers,
                         const size_t *issuer_lens, size_t n, error *err);

#endif
