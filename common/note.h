/* note: signed notes (c2sp.org/signed-note), checkpoints (c2sp.org/tlog-checkpoint) and the
 * static-ct-api RFC6962NoteSignature (signature type 0x05), plus Ed25519 (0x01) note keys.
 *
 *   <text lines, each ending in \n>      <- the signed text (includes its final \n)
 *   \n                                    <- the last empty line splits text from signatures
 *   — <key name> <base64(key ID[4] || signature)>\n   (one or more; — is U+2014)
 *
 * A verifier knows (name, key ID, key) triples. Lines with any other (name, key ID) pair are
 * ignored (grease, witnesses, other keys); a known pair that fails rejects the note; at least
 * one known pair must verify. For 0x05 the signature does not cover the origin, so the
 * verifier also insists that the checkpoint's origin line equals the key name. */
#ifndef TEGULA_NOTE_H
#define TEGULA_NOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "buffer.h"
#include "error.h"
#include "keys.h"

/* Parsing bounds: the spec requires accepting at least 16 signatures. */
#define NOTE_MAX_SIZE (1024 * 1024)
#define NOTE_MAX_SIGNATURES 100

/* Signature type bytes (signed-note §Signature types). */
#define NOTE_SIG_ED25519 0x01
#define NOTE_SIG_RFC6962 0x05

typedef struct note_signature {
    char *name;        /* NUL-terminated key name */
    uint32_t key_id;
    uint8_t *sig;      /* the bytes after the key ID */
    size_t sig_len;
} note_signature;

/* A parsed note; owns all its memory (note_free). */
typedef struct note {
    char *text;        /* the signed text, ending in \n; NUL-terminated */
    size_t text_len;
    note_signature *sigs;
    size_t n_sigs;
} note;

/* Parses and checks the syntax of a note: size and signature-count bounds, UTF-8 without
 * control characters other than \n, split at the last empty line, every signature line
 * well formed (valid name, strict base64, at least key ID + 1 byte). Verifies nothing. */
int note_parse(note *out, const char *data, size_t len, error *err);
void note_free(note *n);
/* Appends text || "\n" || one line per signature. Checks the text and names as note_parse
 * would, so whatever this emits parses again. */
int note_format(buffer *out, const note *n, error *err);
/* Appends "— <name> <base64(key_id || sig)>\n". */
int note_signature_line(buffer *out, const char *name, uint32_t key_id, const uint8_t *sig,
                        size_t sig_len, error *err);
/* Non-empty, valid UTF-8, no Unicode white space and no '+'. */
bool note_name_valid(const char *name, size_t len);
/* H(name || 0x0A || type || key)[:4] read big-endian. For 0x05 `key` is the 32-byte LogID,
 * for 0x01 the 32-byte Ed25519 public key. */
uint32_t note_key_id(const char *name, uint8_t type, const uint8_t *key, size_t key_len);

/* A key a verifier trusts. */
typedef struct note_verifier {
    const char *name;  /* borrowed */
    uint8_t type;      /* NOTE_SIG_ED25519 or NOTE_SIG_RFC6962 */
    EVP_PKEY *key;     /* borrowed: Ed25519 for 0x01, the log's P-256/RSA key for 0x05 */
    uint32_t key_id;   /* set by note_verifier_init */
} note_verifier;

/* Fills in v (computing the key ID) after checking that the key suits the type. */
int note_verifier_init(note_verifier *v, const char *name, uint8_t type, EVP_PKEY *key,
                       error *err);
/* Applies the rules in the header comment. verified (optional, n_verifiers entries) says
 * which verifiers had a valid signature. Returns 0 only if the note is accepted. */
int note_verify(const note *n, const note_verifier *verifiers, size_t n_verifiers,
                bool *verified, error *err);

/* Appends an Ed25519 (0x01) signature line over text by private key `key` under `name`. */
int note_sign_ed25519_line(buffer *out, const char *name, EVP_PKEY *key, const char *text,
                           size_t text_len, error *err);

/* --- checkpoints --- */

/* Origins longer than this are refused (ML-DSA cosignatures carry the origin with a 1-byte
 * length, so a longer one could never be witnessed). */
#define CHECKPOINT_ORIGIN_MAX 255
/* A TreeHeadSignature DigitallySigned: 4 header bytes + up to an 8192-bit RSA signature. */
#define CHECKPOINT_THS_MAX (4 + 1024)
/* The TreeHeadSignature input: 00 01 timestamp(8) tree_size(8) root(32). */
#define TREE_HEAD_SIGNATURE_INPUT_LEN 50

typedef struct checkpoint {
    char origin[CHECKPOINT_ORIGIN_MAX + 1];
    uint64_t size;
    uint8_t root[32];
    size_t extension_lines; /* non-empty lines after the root (none allowed with 0x05) */
} checkpoint;

/* "<origin>\n<size>\n<base64 root>\n", no extension lines. */
int checkpoint_body_format(buffer *out, const char *origin, uint64_t size, const uint8_t root[32],
                           error *err);
/* Parses a checkpoint body (the note text): origin, decimal size without leading zeros,
 * base64 32-byte root, then optional non-empty extension lines. */
int checkpoint_body_parse(checkpoint *out, const char *text, size_t len, error *err);

/* The 50-byte RFC 6962 §3.5 TreeHeadSignature input. */
void tree_head_signature_input(uint8_t out[TREE_HEAD_SIGNATURE_INPUT_LEN], uint64_t timestamp,
                               uint64_t size, const uint8_t root[32]);

/* A verified checkpoint, with what get-sth needs. */
typedef struct signed_checkpoint {
    checkpoint cp;
    uint64_t timestamp;  /* ms, from the RFC6962NoteSignature */
    uint8_t tree_head_signature[CHECKPOINT_THS_MAX]; /* the DigitallySigned, as in get-sth */
    size_t tree_head_signature_len;
} signed_checkpoint;

/* Signs: appends the whole checkpoint note with one 0x05 line by `signer` under origin. */
int checkpoint_sign(buffer *out, const log_signer *signer, const char *origin, uint64_t size,
                    const uint8_t root[32], uint64_t timestamp, error *err);
/* Builds the same note from get-sth fields (no private key): tree_head_signature is the
 * DigitallySigned bytes, log_id the log's LogID. The signature is not checked here. */
int checkpoint_from_sth(buffer *out, const char *origin, const uint8_t log_id[LOG_ID_LEN],
                        uint64_t size, const uint8_t root[32], uint64_t timestamp,
                        const uint8_t *tree_head_signature, size_t ths_len, error *err);
/* Verifies a checkpoint note for a log known by origin and public key: the (origin, 0x05 key
 * ID) signature must verify, the body's origin must equal origin, and the body must have no
 * extension lines. Fills out (optional) on success. */
int checkpoint_verify(const char *data, size_t len, const char *origin, EVP_PKEY *log_key,
                      signed_checkpoint *out, error *err);

#endif
