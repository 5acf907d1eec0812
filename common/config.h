/* config: the one YAML file every tegula role reads (`-c tegula.yaml`).
 *
 * Loading is strict: unknown keys, wrong types, out-of-range numbers, bad URLs or timestamps,
 * duplicate logs and missing required fields are all errors, reported as
 *   FILE:LINE: field logs[1].not_after_limit: must be after not_after_start
 * (YAML syntax errors as FILE:LINE:COLUMN: YAML syntax error: ...), so an operator can fix the
 * file without guessing. Relative paths (key, roots, file: URLs, ipc:// addresses, batcher db,
 * sequencer data_dir) are resolved against the directory of the config file and stored
 * absolute. deploy/examples/tegula.yaml documents every key, its default and its range.
 *
 * A loaded config is immutable; share it read-only between threads. */
#ifndef TEGULA_CONFIG_H
#define TEGULA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "log.h"

#define CONFIG_MAX_LOGS 64
#define CONFIG_LOG_NAME_MAX 64
/* Longest config file accepted; a config is a few KiB, anything near this is a mistake. */
#define CONFIG_MAX_FILE_BYTES (1024 * 1024)

typedef enum config_log_status {
    CONFIG_LOG_ACTIVE = 0,   /* accepts submissions */
    CONFIG_LOG_READONLY = 1, /* frozen: submissions refused, monitoring still served */
} config_log_status;

typedef enum config_intended_use {
    CONFIG_USE_TEST = 0,
    CONFIG_USE_PRODUCTION = 1,
} config_intended_use;

typedef struct config_log {
    char *name;              /* [a-z0-9._-]{1,64}, unique; names the log on the wire */
    char *description;       /* "" when absent */
    char *submission_prefix; /* http(s)://host[:port]/path/ (ends with '/') */
    char *monitoring_prefix; /* defaults to submission_prefix */
    char *origin;            /* submission prefix without scheme and trailing '/' */
    char *path_prefix;       /* URL path of the submission prefix, e.g. "/2026h1/" */
    char *key_path;          /* absolute path of the PEM private key */
    char *roots_path;        /* absolute path of the PEM file of accepted roots */
    int64_t not_after_start_ms; /* accepted leaf notAfter: [start, limit), Unix ms */
    int64_t not_after_limit_ms;
    char *storage; /* file:///absolute/path or s3://bucket/prefix?... */
    char *lock;    /* same URL forms as storage */
    char *sequencer;   /* NNG address of this log's sequencer (tcp://, ipc:///abs, inproc://) */
    uint32_t period_ms;  /* sequencing period, 50..60000, default 1000 */
    uint32_t pool_limit; /* pending entries in the sequencer pool, default 50000 */
    uint32_t mmd_seconds; /* maximum merge delay advertised, default 60 */
    config_log_status status;
    config_intended_use intended_use;
} config_log;

typedef struct config_frontend {
    char *listen;               /* host:port, default 127.0.0.1:8080 */
    uint32_t workers;           /* 1..64, default = online CPUs */
    uint32_t max_body_bytes;    /* default 512 KiB */
    uint32_t submit_timeout_ms; /* default 15000 */
    bool read_path;             /* serve monitoring endpoints from storage, default true */
    char *index_dir;            /* leaf-hash index (get-proof-by-hash), one RocksDB per log;
                                   default data/frontend */
} config_frontend;

typedef struct config_batchers {
    /* Exactly one of the two is set: a static address list or a DNS name (host:port) whose
     * A records are re-resolved every few seconds. */
    char **addresses; /* NNG addresses, NULL when dns is used */
    size_t address_count;
    char *dns;        /* NULL when addresses are used */
    uint32_t batch_max;     /* 1..100000, default 256 */
    uint32_t batch_wait_ms; /* default 50 */
    uint32_t queue_limit;   /* pending entries per batcher before OVERLOADED, default 100000 */
    char *db;               /* absolute RocksDB directory; a batcher appends its id */
    uint32_t sequencer_timeout_ms; /* default 10000 */
} config_batchers;

typedef struct config_sequencer {
    char *data_dir; /* absolute, default <config dir>/data/sequencer */
} config_sequencer;

typedef struct config_metrics {
    bool enabled; /* default true */
} config_metrics;

/* A CTile caching proxy in front of a legacy RFC 6962 log (the frontend serves it). */
typedef struct config_ctile {
    char *prefix;                  /* local URL path, e.g. "/oak2026h1/" */
    char *upstream;                /* the upstream log's URL prefix (ct/v1/... lives under it) */
    char *cache;                   /* storage URL for full tiles */
    uint32_t tile_size;            /* entries per tile, default 256 */
    uint32_t partial_max_age_s;    /* partial tiles kept at most this long, 1..60, default 60 */
    uint32_t sth_max_age_s;        /* get-sth cached this long, 1..60, default 60 */
    uint32_t upstream_timeout_ms;  /* default 10000 */
} config_ctile;

typedef struct config {
    char *path; /* the file as given to config_load */
    char *dir;  /* absolute directory relative paths were resolved against */
    config_log *logs;
    size_t log_count;
    config_frontend frontend;
    config_batchers batchers;
    config_sequencer sequencer;
    config_metrics metrics;
    log_level log_level; /* default LOG_INFO */
    config_ctile *ctiles; /* optional `ctile:` list */
    size_t ctile_count;
} config;

/* Reads and validates a config file. Returns NULL with err set (FILE:LINE: ...) on failure. */
config *config_load(const char *path, error *err);
/* Same from memory: `name` is used in messages, `dir` resolves relative paths (NULL means the
 * current directory). */
config *config_parse(const char *text, size_t len, const char *name, const char *dir,
                     error *err);
void config_free(config *cfg);

/* The log with this exact name, or NULL. */
const config_log *config_log_by_name(const config *cfg, const char *name);
/* The log whose path_prefix is the longest prefix of this URL path ("/2026h1/ct/v1/add-chain"),
 * or NULL. `path` need not be NUL-terminated. */
const config_log *config_log_by_path(const config *cfg, const char *path, size_t len);

/* RFC 3339 timestamp ("2026-01-01T00:00:00Z", optional fraction and numeric offset) to Unix
 * milliseconds (fraction beyond ms truncated). Returns 0, or -1 if malformed. */
int config_timestamp_parse(const char *text, size_t len, int64_t *ms_out);
/* Unix milliseconds to "2026-01-01T00:00:00Z" (".123" added when ms is not whole seconds).
 * out needs 32 bytes. Returns 0, or -1 if the year is outside 0..9999. */
int config_timestamp_format(int64_t ms, char out[32]);

#endif
