#include "log_state.h"

#include <string.h>

#include "base64.h"
#include "logv3.h"

/* ceil(ms / 1000) for any sign. */
static int64_t ms_to_seconds_ceil(int64_t ms)
{
    int64_t q = ms / 1000;
    return ms % 1000 > 0 ? q + 1 : q;
}

void log_state_not_after_window(const config_log *config, int64_t *start_s, int64_t *limit_s)
{
    *start_s = ms_to_seconds_ceil(config->not_after_start_ms);
    *limit_s = ms_to_seconds_ceil(config->not_after_limit_ms);
}

static int render_roots(buffer *out, const x509_root_set *roots)
{
    if (buffer_append_str(out, "{\"certificates\":[") != 0)
        return -1;
    size_t n = x509_root_set_count(roots);
    for (size_t i = 0; i < n; i++) {
        x509_span der = x509_root_set_der(roots, i);
        if ((i > 0 && buffer_append_byte(out, ',') != 0) || buffer_append_byte(out, '"') != 0 ||
            base64_encode(out, der.data, der.len) != 0 || buffer_append_byte(out, '"') != 0)
            return -1;
    }
    return buffer_append_str(out, "]}");
}

int log_state_open(log_state *state, const config_log *config, error *err)
{
    memset(state, 0, sizeof *state);
    state->config = config;
    state->roots = x509_root_set_new();
    if (!state->roots) {
        error_set(err, "log %s: out of memory", config->name);
        goto fail;
    }
    if (x509_root_set_add_pem_file(state->roots, config->roots_path, err) != 0) {
        error_wrap(err, "log %s: roots %s", config->name, config->roots_path);
        goto fail;
    }
    if (x509_root_set_count(state->roots) == 0) {
        error_set(err, "log %s: roots %s holds no certificate", config->name,
                  config->roots_path);
        goto fail;
    }
    x509_validator_config vcfg = {.roots = state->roots};
    log_state_not_after_window(config, &vcfg.not_after_start, &vcfg.not_after_limit);
    state->validator = x509_validator_new(&vcfg, err);
    if (!state->validator) {
        error_wrap(err, "log %s: validator", config->name);
        goto fail;
    }
    state->signer = log_signer_load(config->key_path, err);
    if (!state->signer) {
        error_wrap(err, "log %s: key %s", config->name, config->key_path);
        goto fail;
    }
    if (render_roots(&state->roots_json, state->roots) != 0) {
        error_set(err, "log %s: out of memory", config->name);
        goto fail;
    }
    size_t spki_len;
    const uint8_t *spki = log_signer_spki(state->signer, &spki_len);
    if (logv3_render(&state->logv3_json, config, spki, spki_len, NULL, err) != 0) {
        error_wrap(err, "log %s", config->name);
        goto fail;
    }
    return 0;
fail:
    log_state_close(state);
    return -1;
}

void log_state_close(log_state *state)
{
    if (!state)
        return;
    x509_validator_free(state->validator);
    x509_root_set_free(state->roots);
    log_signer_free(state->signer);
    buffer_free(&state->roots_json);
    buffer_free(&state->logv3_json);
    memset(state, 0, sizeof *state);
}
