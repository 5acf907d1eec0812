/* logv3: the log.v3.json document of one log (SPEC.md §1.12), served by the frontend under
 * the submission prefix and written by the sequencer next to the tiles.
 *
 * The fields follow Sunlight's log.v3.json (Chrome log list v3 entry plus the
 * operator-published metadata proposal), so log-list tooling can read it unchanged:
 *   description, friendly_name, log_id (base64 LogID), key (base64 DER SPKI), mmd,
 *   mmd_seconds, log_spec "static-ct-api", log_type ("test" | "prod", ct-go loglist3),
 *   intended_use, status ("active" | "readonly"), submission_url, monitoring_url,
 *   submission_endpoint{url}, monitoring_endpoint{url}, temporal_interval{start_inclusive,
 *   end_exclusive} (RFC 3339), tls_only (true only for https:// submission prefixes),
 *   log_software{name, version}, and final_tree_head{sha256_root_hash, tree_size, timestamp}
 *   when the caller knows it (read-only logs).
 * Keys are sorted and the text indented by 4 spaces, so the bytes depend only on the inputs
 * and two processes rendering the same log produce the same file. */
#ifndef TEGULA_LOGV3_H
#define TEGULA_LOGV3_H

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "config.h"
#include "error.h"

#define LOGV3_CONTENT_TYPE "application/json"
#define LOGV3_SOFTWARE_NAME "tegula"
#define LOGV3_SOFTWARE_VERSION "0.1.0"

typedef struct logv3_tree_head {
    uint64_t tree_size;
    uint64_t timestamp; /* ms since the epoch */
    uint8_t root_hash[32];
} logv3_tree_head;

/* Appends log.v3.json for `log`, whose public key is the DER SubjectPublicKeyInfo
 * spki[0..spki_len) (LogID = SHA-256 of it). final_tree_head may be NULL. Returns 0, or -1
 * with err set (bad timestamps in the config, out of memory). */
int logv3_render(buffer *out, const config_log *log, const uint8_t *spki, size_t spki_len,
                 const logv3_tree_head *final_tree_head, error *err);

#endif
