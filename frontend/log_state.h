/* log_state: what the frontend keeps in memory for one log: its accepted roots, the chain
 * validator (notAfter window from the config, link cache), the signer loaded from the key
 * file (LogID included), and the get-roots and log.v3.json bodies, rendered once.
 * Immutable after log_state_open, so every worker and RPC thread may share it. */
#ifndef TEGULA_FRONTEND_LOG_STATE_H
#define TEGULA_FRONTEND_LOG_STATE_H

#include "buffer.h"
#include "config.h"
#include "error.h"
#include "keys.h"
#include "x509chain.h"

typedef struct log_state {
    const config_log *config; /* borrowed from the loaded config */
    x509_root_set *roots;
    x509_validator *validator;
    log_signer *signer;
    buffer roots_json; /* {"certificates":["<base64 DER>",...]} */
    buffer logv3_json; /* log.v3.json */
} log_state;

/* Loads the roots PEM and the private key named by the config. On failure returns -1 with a
 * reason naming the log and the file (never any key material); `state` is left empty. */
int log_state_open(log_state *state, const config_log *config, error *err);
void log_state_close(log_state *state);

/* The validator's notAfter window in Unix seconds for a config window in milliseconds:
 * notAfter (whole seconds) is accepted iff notAfter*1000 is in [start_ms, limit_ms). */
void log_state_not_after_window(const config_log *config, int64_t *start_s, int64_t *limit_s);

#endif
