#include "logv3.h"

#include <jansson.h>
#include <string.h>

#include "base64.h"
#include "sha256.h"

/* A base64 string value (NULL out of memory). */
static json_t *json_base64(const uint8_t *data, size_t len)
{
    buffer b = {0};
    if (base64_encode(&b, data, len) != 0) {
        buffer_free(&b);
        return NULL;
    }
    json_t *v = json_stringn((const char *)b.data, b.len);
    buffer_free(&b);
    return v;
}

static json_t *json_timestamp(int64_t ms)
{
    char text[32];
    if (config_timestamp_format(ms, text) != 0)
        return NULL;
    return json_string(text);
}

/* json_object_set_new that remembers a failure (a NULL value or out of memory). */
static void set(json_t *obj, const char *key, json_t *value, int *failed)
{
    if (!value || json_object_set_new(obj, key, value) != 0)
        *failed = 1;
}

static json_t *url_object(const char *url)
{
    json_t *o = json_object();
    int failed = 0;
    if (o)
        set(o, "url", json_string(url), &failed);
    if (!o || failed) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int logv3_render(buffer *out, const config_log *log, const uint8_t *spki, size_t spki_len,
                 const logv3_tree_head *final_tree_head, error *err)
{
    if (!log || !spki || spki_len == 0)
        return error_set(err, "log.v3.json: no log or no public key");
    uint8_t log_id[SHA256_LEN];
    sha256(spki, spki_len, log_id);

    json_t *root = json_object();
    if (!root)
        return error_set(err, "log.v3.json: out of memory");
    int failed = 0;
    const char *description =
        log->description && log->description[0] ? log->description : log->origin;
    set(root, "description", json_string(description), &failed);
    set(root, "friendly_name", json_string(log->name), &failed);
    set(root, "log_id", json_base64(log_id, sizeof log_id), &failed);
    set(root, "key", json_base64(spki, spki_len), &failed);
    set(root, "mmd", json_integer(log->mmd_seconds), &failed);
    set(root, "mmd_seconds", json_integer(log->mmd_seconds), &failed);
    set(root, "log_spec", json_string("static-ct-api"), &failed);
    bool production = log->intended_use == CONFIG_USE_PRODUCTION;
    set(root, "log_type", json_string(production ? "prod" : "test"), &failed);
    set(root, "intended_use", json_string(production ? "production" : "test"), &failed);
    set(root, "status",
        json_string(log->status == CONFIG_LOG_READONLY ? "readonly" : "active"), &failed);
    set(root, "submission_url", json_string(log->submission_prefix), &failed);
    set(root, "monitoring_url", json_string(log->monitoring_prefix), &failed);
    set(root, "submission_endpoint", url_object(log->submission_prefix), &failed);
    set(root, "monitoring_endpoint", url_object(log->monitoring_prefix), &failed);
    set(root, "tls_only", json_boolean(strncmp(log->submission_prefix, "https://", 8) == 0),
        &failed);

    json_t *interval = json_object();
    if (interval) {
        set(interval, "start_inclusive", json_timestamp(log->not_after_start_ms), &failed);
        set(interval, "end_exclusive", json_timestamp(log->not_after_limit_ms), &failed);
    }
    set(root, "temporal_interval", interval, &failed);

    json_t *software = json_object();
    if (software) {
        set(software, "name", json_string(LOGV3_SOFTWARE_NAME), &failed);
        set(software, "version", json_string(LOGV3_SOFTWARE_VERSION), &failed);
    }
    set(root, "log_software", software, &failed);

    if (final_tree_head) {
        json_t *head = json_object();
        if (head) {
            set(head, "sha256_root_hash",
                json_base64(final_tree_head->root_hash, sizeof final_tree_head->root_hash),
                &failed);
            set(head, "tree_size", json_integer((json_int_t)final_tree_head->tree_size),
                &failed);
            set(head, "timestamp", json_integer((json_int_t)final_tree_head->timestamp),
                &failed);
        }
        set(root, "final_tree_head", head, &failed);
    }

    char *text = NULL;
    if (!failed)
        text = json_dumps(root, JSON_SORT_KEYS | JSON_INDENT(4));
    json_decref(root);
    if (!text)
        return error_set(err, "log.v3.json: cannot render (timestamp out of range or out of "
                              "memory)");
    int rc = buffer_append_str(out, text) == 0 && buffer_append_byte(out, '\n') == 0 ? 0 : -1;
    free(text);
    if (rc != 0)
        return error_set(err, "log.v3.json: out of memory");
    return 0;
}
