/* config: the example file, defaults, path resolution, lookups, and the exact message (with
 * the right line) for every class of error. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char config_path[4200];

/* Writes text to a fresh directory as c.yaml and loads it. */
static config *load_text(const char *dir_name, const char *text, error *err)
{
    const char *dir = test_tmpdir(dir_name);
    snprintf(config_path, sizeof config_path, "%s/c.yaml", dir);
    FILE *f = fopen(config_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return config_load(config_path, err);
}

/* Loading must fail with exactly "<path>:<tail>". */
static void expect_error(const char *text, const char *tail)
{
    error err = {{0}};
    config *cfg = load_text("config_error", text, &err);
    if (cfg) {
        config_free(cfg);
        fail_msg("config loaded, expected error %s", tail);
    }
    char want[4500];
    snprintf(want, sizeof want, "%s:%s", config_path, tail);
    assert_string_equal(err.msg, want);
}

static char *absolute(const char *relative)
{
    static char out[8192];
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(out, sizeof out, "%s/%s", cwd, relative);
    return out;
}

/* A valid log entry of 9 lines (lines 2..10 after "logs:"). */
#define LOG_A                                                                                   \
    "  - name: a\n"                                                                             \
    "    submission_prefix: http://h/a/\n"                                                      \
    "    key: k.pem\n"                                                                          \
    "    roots: r.pem\n"                                                                        \
    "    not_after_start: 2026-01-01T00:00:00Z\n"                                               \
    "    not_after_limit: 2026-07-01T00:00:00Z\n"                                               \
    "    storage: file:///s/a\n"                                                                \
    "    lock: file:///l/a\n"                                                                   \
    "    sequencer: tcp://127.0.0.1:9201\n"
#define BATCHERS_DNS "batchers:\n  dns: batcher:9100\n"

static void test_example_config_loads_every_field(void **state)
{
    (void)state;
    error err = {{0}};
    config *cfg = config_load("deploy/examples/tegula.yaml", &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    char dir[8192];
    snprintf(dir, sizeof dir, "%s", absolute("deploy/examples"));
    char want[9000];
    assert_string_equal(cfg->dir, dir);
    assert_int_equal(cfg->log_count, 2);

    const config_log *a = &cfg->logs[0];
    assert_string_equal(a->name, "2026h1");
    assert_string_equal(a->description, "tegula 2026h1");
    assert_string_equal(a->submission_prefix, "http://127.0.0.1:8080/2026h1/");
    assert_string_equal(a->monitoring_prefix, "http://127.0.0.1:8080/2026h1/");
    assert_string_equal(a->origin, "127.0.0.1:8080/2026h1");
    assert_string_equal(a->path_prefix, "/2026h1/");
    snprintf(want, sizeof want, "%s/keys/2026h1.key", dir);
    assert_string_equal(a->key_path, want);
    snprintf(want, sizeof want, "%s/roots.pem", dir);
    assert_string_equal(a->roots_path, want);
    assert_true(a->not_after_start_ms == 1767225600000LL);
    assert_true(a->not_after_limit_ms == 1782864000000LL);
    snprintf(want, sizeof want, "file://%s/data/2026h1/storage", dir);
    assert_string_equal(a->storage, want);
    snprintf(want, sizeof want, "file://%s/data/2026h1/lock", dir);
    assert_string_equal(a->lock, want);
    assert_string_equal(a->sequencer, "tcp://127.0.0.1:9201");
    assert_int_equal(a->period_ms, 1000);
    assert_int_equal(a->pool_limit, 50000);
    assert_int_equal(a->mmd_seconds, 60);
    assert_int_equal(a->status, CONFIG_LOG_ACTIVE);
    assert_int_equal(a->intended_use, CONFIG_USE_TEST);

    const config_log *b = &cfg->logs[1];
    assert_string_equal(b->name, "2026h2");
    assert_string_equal(b->description, "");
    assert_string_equal(b->monitoring_prefix, "http://127.0.0.1:8080/2026h2/");
    assert_string_equal(b->origin, "127.0.0.1:8080/2026h2");
    assert_true(b->not_after_start_ms == 1782864000000LL);
    assert_true(b->not_after_limit_ms == 1798761600000LL);
    assert_string_equal(b->sequencer, "tcp://127.0.0.1:9202");

    assert_string_equal(cfg->frontend.listen, "127.0.0.1:8080");
    assert_int_equal(cfg->frontend.workers, 2);
    assert_int_equal(cfg->frontend.max_body_bytes, 524288);
    assert_int_equal(cfg->frontend.submit_timeout_ms, 15000);
    assert_true(cfg->frontend.read_path);

    assert_int_equal(cfg->batchers.address_count, 2);
    assert_string_equal(cfg->batchers.addresses[0], "tcp://127.0.0.1:9101");
    assert_string_equal(cfg->batchers.addresses[1], "tcp://127.0.0.1:9102");
    assert_null(cfg->batchers.dns);
    assert_int_equal(cfg->batchers.batch_max, 256);
    assert_int_equal(cfg->batchers.batch_wait_ms, 50);
    assert_int_equal(cfg->batchers.queue_limit, 100000);
    snprintf(want, sizeof want, "%s/data/batcher", dir);
    assert_string_equal(cfg->batchers.db, want);
    assert_int_equal(cfg->batchers.sequencer_timeout_ms, 10000);
    snprintf(want, sizeof want, "%s/data/sequencer", dir);
    assert_string_equal(cfg->sequencer.data_dir, want);
    assert_true(cfg->metrics.enabled);
    assert_int_equal(cfg->log_level, LOG_INFO);
    config_free(cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    error err = {{0}};
    config *cfg = load_text("config_defaults", "logs:\n" LOG_A BATCHERS_DNS, &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    const config_log *a = &cfg->logs[0];
    assert_string_equal(a->description, "");
    assert_string_equal(a->monitoring_prefix, "http://h/a/");
    assert_string_equal(a->origin, "h/a");
    assert_string_equal(a->path_prefix, "/a/");
    assert_int_equal(a->period_ms, 1000);
    assert_int_equal(a->pool_limit, 50000);
    assert_int_equal(a->mmd_seconds, 60);
    assert_int_equal(a->status, CONFIG_LOG_ACTIVE);
    assert_int_equal(a->intended_use, CONFIG_USE_TEST);
    assert_string_equal(cfg->frontend.listen, "127.0.0.1:8080");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(cfg->frontend.workers, cpus < 1 ? 1 : cpus > 64 ? 64 : cpus);
    assert_int_equal(cfg->frontend.max_body_bytes, 512 * 1024);
    assert_int_equal(cfg->frontend.submit_timeout_ms, 15000);
    assert_true(cfg->frontend.read_path);
    assert_null(cfg->batchers.addresses);
    assert_int_equal(cfg->batchers.address_count, 0);
    assert_string_equal(cfg->batchers.dns, "batcher:9100");
    assert_int_equal(cfg->batchers.batch_max, 256);
    assert_int_equal(cfg->batchers.batch_wait_ms, 50);
    assert_int_equal(cfg->batchers.queue_limit, 100000);
    assert_int_equal(cfg->batchers.sequencer_timeout_ms, 10000);
    assert_true(cfg->metrics.enabled);
    assert_int_equal(cfg->log_level, LOG_INFO);
    char dir[8192], want[9000];
    snprintf(dir, sizeof dir, "%s", config_path[0] == '/' ? config_path : absolute(config_path));
    *strrchr(dir, '/') = 0;
    snprintf(want, sizeof want, "%s/data/batcher", dir);
    assert_string_equal(cfg->batchers.db, want);
    snprintf(want, sizeof want, "%s/data/sequencer", dir);
    assert_string_equal(cfg->sequencer.data_dir, want);
    snprintf(want, sizeof want, "%s/data/frontend", dir);
    assert_string_equal(cfg->frontend.index_dir, want);
    assert_int_equal(cfg->ctile_count, 0);
    config_free(cfg);
}

static void test_ctile_proxies(void **state)
{
    (void)state;
    error err = {{0}};
    config *cfg = load_text("config_ctile",
                            "logs:\n" LOG_A BATCHERS_DNS
                            "ctile:\n"
                            "  - prefix: /oak2026h1/\n"
                            "    upstream: https://oak.example/2026h1/\n"
                            "    cache: file:///c/oak\n"
                            "  - prefix: /elm/\n"
                            "    upstream: http://127.0.0.1:9/elm/\n"
                            "    cache: file:///c/elm\n"
                            "    tile_size: 1000\n"
                            "    partial_max_age_s: 5\n"
                            "    sth_max_age_s: 7\n"
                            "    upstream_timeout_ms: 2500\n",
                            &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    assert_int_equal(cfg->ctile_count, 2);
    assert_string_equal(cfg->ctiles[0].prefix, "/oak2026h1/");
    assert_string_equal(cfg->ctiles[0].upstream, "https://oak.example/2026h1/");
    assert_string_equal(cfg->ctiles[0].cache, "file:///c/oak");
    assert_int_equal(cfg->ctiles[0].tile_size, 256);
    assert_int_equal(cfg->ctiles[0].partial_max_age_s, 60);
    assert_int_equal(cfg->ctiles[0].sth_max_age_s, 60);
    assert_int_equal(cfg->ctiles[0].upstream_timeout_ms, 10000);
    assert_int_equal(cfg->ctiles[1].tile_size, 1000);
    assert_int_equal(cfg->ctiles[1].partial_max_age_s, 5);
    assert_int_equal(cfg->ctiles[1].sth_max_age_s, 7);
    assert_int_equal(cfg->ctiles[1].upstream_timeout_ms, 2500);
    config_free(cfg);

#define CT(body) "logs:\n" LOG_A BATCHERS_DNS "ctile:\n" body
    expect_error(CT("  - prefix: /a/\n    upstream: http://u/\n    cache: file:///c\n"),
                 "14: field ctile[0]: prefix /a/ overlaps log a (/a/)");
    expect_error(CT("  - prefix: oak\n    upstream: http://u/\n    cache: file:///c\n"),
                 "14: field ctile[0].prefix: must be a URL path like /oak2026h1/ (starts and "
                 "ends with '/')");
    expect_error(CT("  - prefix: /o/../x/\n    upstream: http://u/\n    cache: file:///c\n"),
                 "14: field ctile[0].prefix: must be a URL path like /oak2026h1/ (starts and "
                 "ends with '/')");
    expect_error(CT("  - prefix: /o/\n    cache: file:///c\n"),
                 "14: field ctile[0].upstream: missing (required)");
    expect_error(CT("  - prefix: /o/\n    upstream: http://u/\n    cache: file:///c\n"
                    "    partial_max_age_s: 61\n"),
                 "17: field ctile[0].partial_max_age_s: 61 is out of range 1..60");
    expect_error(CT("  - prefix: /o/\n    upstream: http://u/\n    cache: file:///c\n"
                    "  - prefix: /o/p/\n    upstream: http://u/\n    cache: file:///d\n"),
                 "17: field ctile[1]: prefix /o/p/ overlaps ctile[0]");
#undef CT
}

static void test_non_default_values(void **state)
{
    (void)state;
    error err = {{0}};
    config *cfg = load_text("config_values",
                            "logs:\n" LOG_A
                            "    monitoring_prefix: https://mon.example.org/\n"
                            "    period_ms: 50\n"
                            "    pool_limit: 7\n"
                            "    mmd: 86400\n"
                            "    status: readonly\n"
                            "    intended_use: production\n"
                            "    description: \"\"\n"
                            "frontend: {listen: '[::]:0', workers: 64, read_path: false}\n"
                            "batchers:\n"
                            "  addresses:\n"
                            "    - ipc:///tmp/b.ipc\n"
                            "    - inproc://b2\n"
                            "  batch_wait_ms: 0\n"
                            "metrics: {enabled: false}\n"
                            "log_level: debug\n",
                            &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    const config_log *a = &cfg->logs[0];
    assert_string_equal(a->monitoring_prefix, "https://mon.example.org/");
    assert_string_equal(a->origin, "h/a");
    assert_int_equal(a->period_ms, 50);
    assert_int_equal(a->pool_limit, 7);
    assert_int_equal(a->mmd_seconds, 86400);
    assert_int_equal(a->status, CONFIG_LOG_READONLY);
    assert_int_equal(a->intended_use, CONFIG_USE_PRODUCTION);
    assert_string_equal(cfg->frontend.listen, "[::]:0");
    assert_int_equal(cfg->frontend.workers, 64);
    assert_false(cfg->frontend.read_path);
    assert_int_equal(cfg->batchers.address_count, 2);
    assert_string_equal(cfg->batchers.addresses[0], "ipc:///tmp/b.ipc");
    assert_string_equal(cfg->batchers.addresses[1], "inproc://b2");
    assert_int_equal(cfg->batchers.batch_wait_ms, 0);
    assert_false(cfg->metrics.enabled);
    assert_int_equal(cfg->log_level, LOG_DEBUG);
    config_free(cfg);
}

static void test_relative_paths_resolve_against_config_dir(void **state)
{
    (void)state;
    error err = {{0}};
    config *cfg = load_text("config_paths",
                            "logs:\n"
                            "  - name: a\n"
                            "    submission_prefix: http://h/a/\n"
                            "    key: ./keys/a.key\n"
                            "    roots: /etc/roots.pem\n"
                            "    not_after_start: 2026-01-01T00:00:00Z\n"
                            "    not_after_limit: 2026-07-01T00:00:00Z\n"
                            "    storage: file:store\n"
                            "    lock: file://localhost/var/lock/a\n"
                            "    sequencer: ipc://seq.ipc\n"
                            "batchers:\n"
                            "  dns: b:1\n"
                            "  db: /var/lib/batcher\n"
                            "sequencer:\n"
                            "  data_dir: seq\n",
                            &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    /* The directory is made absolute from the (relative) path the file was loaded by. */
    char dir[8192], want[9000];
    snprintf(dir, sizeof dir, "%s", config_path[0] == '/' ? config_path : absolute(config_path));
    *strrchr(dir, '/') = 0;
    assert_string_equal(cfg->dir, dir);
    const config_log *a = &cfg->logs[0];
    snprintf(want, sizeof want, "%s/keys/a.key", dir);
    assert_string_equal(a->key_path, want);
    assert_string_equal(a->roots_path, "/etc/roots.pem");
    snprintf(want, sizeof want, "file://%s/store", dir);
    assert_string_equal(a->storage, want);
    assert_string_equal(a->lock, "file:///var/lock/a");
    snprintf(want, sizeof want, "ipc://%s/seq.ipc", dir);
    assert_string_equal(a->sequencer, want);
    assert_string_equal(cfg->batchers.db, "/var/lib/batcher");
    snprintf(want, sizeof want, "%s/seq", dir);
    assert_string_equal(cfg->sequencer.data_dir, want);
    config_free(cfg);

    /* From memory, with an explicit directory. */
    const char *text = "logs:\n" LOG_A BATCHERS_DNS;
    cfg = config_parse(text, strlen(text), "mem.yaml", "/srv/tegula", &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    assert_string_equal(cfg->logs[0].key_path, "/srv/tegula/k.pem");
    assert_string_equal(cfg->sequencer.data_dir, "/srv/tegula/data/sequencer");
    config_free(cfg);
}

static void test_lookups(void **state)
{
    (void)state;
    const char *text = "logs:\n" LOG_A
                       "  - name: root\n"
                       "    submission_prefix: https://ct.example.com/\n"
                       "    key: k2.pem\n"
                       "    roots: r.pem\n"
                       "    not_after_start: 2026-01-01T00:00:00Z\n"
                       "    not_after_limit: 2026-07-01T00:00:00Z\n"
                       "    storage: s3://bucket/root?region=auto\n"
                       "    lock: s3://bucket/root-lock\n"
                       "    sequencer: tcp://seq:9201\n"
                       "  - name: deep.log_1\n"
                       "    submission_prefix: https://ct.example.com/a/b/\n"
                       "    key: k3.pem\n"
                       "    roots: r.pem\n"
                       "    not_after_start: 2026-01-01T00:00:00Z\n"
                       "    not_after_limit: 2026-07-01T00:00:00Z\n"
                       "    storage: file:///s/deep\n"
                       "    lock: file:///l/deep\n"
                       "    sequencer: tcp://seq:9201\n" BATCHERS_DNS;
    error err = {{0}};
    config *cfg = config_parse(text, strlen(text), "mem.yaml", "/x", &err);
    if (!cfg)
        fail_msg("%s", err.msg);
    assert_ptr_equal(config_log_by_name(cfg, "a"), &cfg->logs[0]);
    assert_ptr_equal(config_log_by_name(cfg, "root"), &cfg->logs[1]);
    assert_ptr_equal(config_log_by_name(cfg, "deep.log_1"), &cfg->logs[2]);
    assert_null(config_log_by_name(cfg, "b"));
    assert_string_equal(cfg->logs[1].origin, "ct.example.com");
    assert_string_equal(cfg->logs[1].path_prefix, "/");
    assert_string_equal(cfg->logs[2].origin, "ct.example.com/a/b");
    assert_string_equal(cfg->logs[2].path_prefix, "/a/b/");
    assert_string_equal(cfg->logs[1].storage, "s3://bucket/root?region=auto");

    const char *p = "/a/ct/v1/add-chain";
    assert_ptr_equal(config_log_by_path(cfg, p, strlen(p)), &cfg->logs[0]);
    p = "/a/b/checkpoint";
    assert_ptr_equal(config_log_by_path(cfg, p, strlen(p)), &cfg->logs[2]); /* longest wins */
    p = "/a/b";
    assert_ptr_equal(config_log_by_path(cfg, p, strlen(p)), &cfg->logs[0]);
    p = "/zzz/checkpoint";
    assert_ptr_equal(config_log_by_path(cfg, p, strlen(p)), &cfg->logs[1]);
    /* Only the given length counts. */
    p = "/a/ct";
    assert_ptr_equal(config_log_by_path(cfg, p, 2), &cfg->logs[1]);
    config_free(cfg);

    cfg = config_parse("logs:\n" LOG_A BATCHERS_DNS, strlen("logs:\n" LOG_A BATCHERS_DNS),
                       "mem.yaml", "/x", &err);
    assert_non_null(cfg);
    assert_null(config_log_by_path(cfg, "/b/", 3));
    assert_null(config_log_by_path(cfg, "", 0));
    config_free(cfg);
}

static void test_timestamps(void **state)
{
    (void)state;
    struct {
        const char *text;
        long long ms;
    } good[] = {
        {"2026-01-01T00:00:00Z", 1767225600000LL},
        {"2026-01-01t00:00:00z", 1767225600000LL},
        {"2026-01-01T01:30:00+01:30", 1767225600000LL},
        {"2025-12-31T23:00:00-01:00", 1767225600000LL},
        {"2000-02-29T12:34:56.789Z", 951827696789LL},
        {"2000-02-29T12:34:56.7891234Z", 951827696789LL},
        {"2000-02-29T12:34:56.5Z", 951827696500LL},
        {"1970-01-01T00:00:00Z", 0},
        {"1900-03-01T00:00:00Z", -2203891200000LL},
        {"9999-12-31T23:59:59Z", 253402300799000LL},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = -1;
        assert_int_equal(config_timestamp_parse(good[i].text, strlen(good[i].text), &ms), 0);
        assert_true(ms == good[i].ms);
    }
    const char *bad[] = {
        "2026-01-01",           "2026-01-01T00:00:00",     "2026-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z", "2026-13-01T00:00:00Z",    "2026-00-01T00:00:00Z",
        "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z",    "2026-01-01T00:00:60Z",
        "2026-01-01 00:00:00Z", "2026-01-01T00:00:00.Z",   "2026-01-01T00:00:00+0100",
        "2026-01-01T00:00:00Zx", "2026-1-01T00:00:00Z",    "+026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.1234567890Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms;
        if (config_timestamp_parse(bad[i], strlen(bad[i]), &ms) == 0)
            fail_msg("accepted %s", bad[i]);
    }
    char out[32];
    assert_int_equal(config_timestamp_format(1767225600000LL, out), 0);
    assert_string_equal(out, "2026-01-01T00:00:00Z");
    assert_int_equal(config_timestamp_format(951827696789LL, out), 0);
    assert_string_equal(out, "2000-02-29T12:34:56.789Z");
    assert_int_equal(config_timestamp_format(0, out), 0);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    assert_int_equal(config_timestamp_format(-1, out), 0);
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
    assert_int_equal(config_timestamp_format(-2203891200000LL, out), 0);
    assert_string_equal(out, "1900-03-01T00:00:00Z");
    assert_int_equal(config_timestamp_format(253402300799000LL, out), 0);
    assert_string_equal(out, "9999-12-31T23:59:59Z");
    assert_int_equal(config_timestamp_format(253402300800000LL, out), -1);
    /* Every day boundary over a few centuries round-trips. */
    for (int64_t day = -80000; day < 80000; day += 7) {
        int64_t ms = day * 86400000LL + 12345, back;
        assert_int_equal(config_timestamp_format(ms, out), 0);
        assert_int_equal(config_timestamp_parse(out, strlen(out), &back), 0);
        assert_true(back == ms);
    }
}

static void test_yaml_syntax_errors(void **state)
{
    (void)state;
    expect_error("logs:\n"
                 "  - name: a\n"
                 "   bad: x\n",
                 "3:4: YAML syntax error: did not find expected '-' indicator (while parsing a block collection on line 2)");
    expect_error("logs: [a, b\n"
                 "batchers: {}\n",
                 "2:9: YAML syntax error: did not find expected ',' or ']' (while parsing a flow "
                 "sequence on line 1)");
    expect_error("logs:\n  - \"unterminated\n",
                 "3:1: YAML syntax error: found unexpected end of stream (while scanning a quoted "
                 "scalar on line 2)");
    expect_error("logs: *nowhere\n", "1:7: YAML syntax error: found undefined alias");
    expect_error("", "1: the file is empty");
    expect_error("# only a comment\n", "1: the file is empty");
    expect_error("logs: []\n---\nlogs: []\n", "2: only one YAML document is allowed");
    expect_error("- a\n- b\n", "1: expected a mapping at the top level, got a list");
}

static void test_unknown_and_duplicate_keys(void **state)
{
    (void)state;
    expect_error("logs:\n" LOG_A BATCHERS_DNS "logz: 1\n", "13: field logz: unknown key");
    expect_error("logs:\n" LOG_A "    colour: red\n" BATCHERS_DNS,
                 "11: field logs[0].colour: unknown key");
    expect_error("logs:\n" LOG_A BATCHERS_DNS "frontend:\n  listen: :80\n  threads: 4\n",
                 "15: field frontend.threads: unknown key");
    expect_error("logs:\n" LOG_A "    key: other.pem\n" BATCHERS_DNS,
                 "11: field logs[0].key: duplicate key (first given on line 4)");
    expect_error("logs:\n" LOG_A BATCHERS_DNS "metrics: {enabled: true, on: 1}\n",
                 "13: field metrics.on: unknown key");
    expect_error("logs:\n" LOG_A BATCHERS_DNS "sequencer: {[a]: 1}\n",
                 "13: field sequencer: expected a key name, got a list");
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_error("logs: 5\n" BATCHERS_DNS, "1: field logs: expected a list of logs, got \"5\"");
    expect_error("logs:\n  - just a string\n" BATCHERS_DNS,
                 "2: field logs[0]: expected a mapping, got \"just a string\"");
    expect_error("logs:\n" LOG_A BATCHERS_DNS "frontend:\n  workers: many\n",
                 "14: field frontend.workers: expected an integer, got \"many\"");
    expect_error("logs:\n" LOG_A BATCHERS_DNS "frontend:\n  workers: \"2\"\n",
                 "14: field frontend.workers: expected an integer, got \"2\"");
    expect_error("logs:\n" LOG_A BATCHERS_DNS "frontend:\n  workers: 1.5\n",
                 "14: field frontend.workers: expected an integer, got \"1.5\"");
    expect_error("logs:\n" LOG_A BATCHERS_DNS "frontend:\n  read_path: yes\n",
                 "14: field frontend.read_path: expected true or false, got \"yes\"");
    expect_error("logs:\n" LOG_A "    name2: x\n" BATCHERS_DNS,
                 "11: field logs[0].name2: unknown key");
    expect_error("logs:\n" LOG_A "    description: [a]\n" BATCHERS_DNS,
                 "11: field logs[0].description: expected a string, got a list");
    expect_error("logs:\n" LOG_A "    status: paused\n" BATCHERS_DNS,
                 "11: field logs[0].status: expected active or readonly, got \"paused\"");
    expect_error("logs:\n" LOG_A "    intended_use: prod\n" BATCHERS_DNS,
                 "11: field logs[0].intended_use: expected test or production, got \"prod\"");
    expect_error("logs:\n" LOG_A BATCHERS_DNS "log_level: verbose\n",
                 "13: field log_level: expected debug, info, warn or error, got \"verbose\"");
    expect_error("logs:\n" LOG_A BATCHERS_DNS "frontend: 1\n",
                 "13: field frontend: expected a mapping, got \"1\"");
    expect_error("logs:\n" LOG_A "batchers:\n  addresses: tcp://a:1\n",
                 "12: field batchers.addresses: expected a list of addresses, got \"tcp://a:1\"");
    expect_error("logs:\n" LOG_A "    key:\n" BATCHERS_DNS, "11: field logs[0].key: duplicate key "
                                                          "(first given on line 4)");
}

static void test_out_of_range_numbers(void **state)
{
    (void)state;
    expect_error("logs:\n" LOG_A "    period_ms: 10\n" BATCHERS_DNS,
                 "11: field logs[0].period_ms: 10 is out of range 50..60000");
    expect_error("logs:\n" LOG_A "    period_ms: 60001\n" BATCHERS_DNS,
                 "11: field logs[0].period_ms: 60001 is out of range 50..60000");
    expect_error("logs:\n" LOG_A "    mmd: -1\n" BATCHERS_DNS,
                 "11: field logs[0].mmd: -1 is out of range 1..86400");
    expect_error("logs:\n" LOG_A BATCHERS_DNS "frontend: {workers: 0}\n",
                 "13: field frontend.workers: 0 is out of range 1..64");
    expect_error("logs:\n" LOG_A "batchers:\n  dns: b:1\n  batch_max: 100001\n",
                 "13: field batchers.batch_max: 100001 is out of range 1..100000");
    expect_error("logs:\n" LOG_A "batchers:\n  dns: b:1\n  batch_max: 99999999999999999999\n",
                 "13: field batchers.batch_max: expected an integer, got "
                 "\"99999999999999999999\"");
    expect_error("logs: []\n" BATCHERS_DNS, "1: field logs: must list 1 to 64 logs, got 0");
}

static void test_bad_urls_and_addresses(void **state)
{
    (void)state;
    expect_error("logs:\n"
                 "  - name: a\n"
                 "    submission_prefix: http://h/a\n"
                 "    key: k\n",
                 "3: field logs[0].submission_prefix: URL \"http://h/a\" must end with '/'");
    expect_error("logs:\n"
                 "  - name: a\n"
                 "    submission_prefix: ftp://h/a/\n",
                 "3: field logs[0].submission_prefix: expected an http:// or https:// URL, got "
                 "\"ftp://h/a/\"");
    expect_error("logs:\n"
                 "  - name: a\n"
                 "    submission_prefix: https:///a/\n",
                 "3: field logs[0].submission_prefix: URL \"https:///a/\" has no host");
    expect_error("logs:\n"
                 "  - name: a\n"
                 "    submission_prefix: https://h/a/?x=1/\n",
                 "3: field logs[0].submission_prefix: URL \"https://h/a/?x=1/\" must not contain "
                 "spaces, '?', '#', '@' or '\\'");
    expect_error("logs:\n"
                 "  - name: a\n"
                 "    submission_prefix: https://h//a/\n",
                 "3: field logs[0].submission_prefix: URL \"https://h//a/\" has an empty path "
                 "segment");
    expect_error("logs:\n" LOG_A "    monitoring_prefix: https://mon.example.org\n" BATCHERS_DNS,
                 "11: field logs[0].monitoring_prefix: URL \"https://mon.example.org\" must end "
                 "with '/'");
    expect_error("logs:\n" LOG_A "    storage: data/a\n" BATCHERS_DNS,
                 "11: field logs[0].storage: duplicate key (first given on line 8)");
    expect_error("logs:\n"
                 "  - name: a\n"
                 "    submission_prefix: http://h/a/\n"
                 "    key: k.pem\n"
                 "    roots: r.pem\n"
                 "    not_after_start: 2026-01-01T00:00:00Z\n"
                 "    not_after_limit: 2026-07-01T00:00:00Z\n"
                 "    storage: data/a\n",
                 "8: field logs[0].storage: expected a file:///path, file:relative/path or "
                 "s3://bucket URL, got \"data/a\"");
    expect_error("logs:\n"
                 "  - name: a\n"
                 "    submission_prefix: http://h/a/\n"
                 "    key: k.pem\n"
                 "    roots: r.pem\n"
                 "    not_after_start: 2026-01-01T00:00:00Z\n"
                 "    not_after_limit: 2026-07-01T00:00:00Z\n"
                 "    storage: file://host/a\n",
                 "8: field logs[0].storage: file URL \"file://host/a\" must be "
                 "file:///absolute/path or file:relative/path");
    expect_error("logs:\n"
                 "  - name: a\n"
                 "    submission_prefix: http://h/a/\n"
                 "    key: k.pem\n"
                 "    roots: r.pem\n"
                 "    not_after_start: 2026-01-01T00:00:00Z\n"
                 "    not_after_limit: 2026-07-01T00:00:00Z\n"
                 "    storage: s3:///prefix\n",
                 "8: field logs[0].storage: s3 URL \"s3:///prefix\" has no bucket");
    expect_error("logs:\n"
                 "  - name: a\n"
                 "    submission_prefix: http://h/a/\n"
                 "    key: k.pem\n"
                 "    roots: r.pem\n"
                 "    not_after_start: 2026-01-01T00:00:00Z\n"
                 "    not_after_limit: 2026-07-01T00:00:00Z\n"
                 "    storage: file:///s\n"
                 "    lock: file:///l\n"
                 "    sequencer: http://seq:9201\n",
                 "10: field logs[0].sequencer: expected an NNG address (tcp://host:port, "
                 "ipc://path, inproc://name), got \"http://seq:9201\"");
    expect_error("logs:\n"
                 "  - name: a\n"
                 "    submission_prefix: http://h/a/\n"
                 "    key: k.pem\n"
                 "    roots: r.pem\n"
                 "    not_after_start: 2026-01-01T00:00:00Z\n"
                 "    not_after_limit: 2026-07-01T00:00:00Z\n"
                 "    storage: file:///s\n"
                 "    lock: file:///l\n"
                 "    sequencer: tcp://seq:70000\n",
                 "10: field logs[0].sequencer: expected tcp://host:port, got \"tcp://seq:70000\"");
    expect_error("logs:\n" LOG_A "batchers:\n  addresses:\n    - tcp://a:1\n    - tcp://:2\n",
                 "14: field batchers.addresses[1]: expected tcp://host:port, got \"tcp://:2\"");
    expect_error("logs:\n" LOG_A "batchers:\n  addresses:\n    - tcp://a:1\n    - tcp://a:1\n",
                 "14: field batchers.addresses[1]: duplicate address (also "
                 "batchers.addresses[0])");
    expect_error("logs:\n" LOG_A "batchers:\n  addresses: []\n",
                 "12: field batchers.addresses: must list 1 to 1024 addresses, got 0");
    expect_error("logs:\n" LOG_A "batchers:\n  dns: batcher\n",
                 "12: field batchers.dns: expected host:port, got \"batcher\"");
    expect_error("logs:\n" LOG_A BATCHERS_DNS "frontend:\n  listen: 8080\n",
                 "14: field frontend.listen: expected host:port, got \"8080\"");
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_error("logs:\n"
                 "  - name: a\n"
                 "    submission_prefix: http://h/a/\n"
                 "    key: k.pem\n"
                 "    roots: r.pem\n"
                 "    not_after_start: 2026-02-30T00:00:00Z\n",
                 "6: field logs[0].not_after_start: expected an RFC 3339 timestamp like "
                 "2026-01-01T00:00:00Z, got \"2026-02-30T00:00:00Z\"");
    expect_error("logs:\n"
                 "  - name: a\n"
                 "    submission_prefix: http://h/a/\n"
                 "    key: k.pem\n"
                 "    roots: r.pem\n"
                 "    not_after_start: 2026-01-01T00:00:00Z\n"
                 "    not_after_limit: 2026-01-01\n",
                 "7: field logs[0].not_after_limit: expected an RFC 3339 timestamp like "
                 "2026-01-01T00:00:00Z, got \"2026-01-01\"");
    expect_error("logs:\n"
                 "  - name: a\n"
                 "    submission_prefix: http://h/a/\n"
                 "    key: k.pem\n"
                 "    roots: r.pem\n"
                 "    not_after_start: 2026-07-01T00:00:00Z\n"
                 "    not_after_limit: 2026-07-01T00:00:00Z\n"
                 "    storage: file:///s\n"
                 "    lock: file:///l\n"
                 "    sequencer: tcp://s:1\n",
                 "7: field logs[0].not_after_limit: must be after not_after_start");
}

static void test_bad_values_limit(void **state)
{
    (void)state;
    /* The error names the second log and the line of its limit. */
    expect_error("logs:\n" LOG_A
                 "  - name: b\n"
                 "    submission_prefix: http://h/b/\n"
                 "    key: k.pem\n"
                 "    roots: r.pem\n"
                 "    not_after_start: 2026-07-01T00:00:00Z\n"
                 "    not_after_limit: 2026-06-01T00:00:00Z\n"
                 "    storage: file:///s/b\n"
                 "    lock: file:///l/b\n"
                 "    sequencer: tcp://s:1\n" BATCHERS_DNS,
                 "16: field logs[1].not_after_limit: must be after not_after_start");
    expect_error("logs:\n"
                 "  - name: A b\n",
                 "2: field logs[0].name: \"A b\" is not a valid log name ([a-z0-9._-], 1 to 64 "
                 "characters)");
    expect_error("logs:\n"
                 "  - name: ~\n",
                 "2: field logs[0].name: has no value");
    expect_error("logs:\n"
                 "  - name: \"a\\0b\"\n",
                 "2: field logs[0].name: contains a NUL byte");
}

static void test_duplicates_between_logs(void **state)
{
    (void)state;
#define LOG_B(name, prefix, store, lock)                                                        \
    "  - name: " name "\n"                                                                      \
    "    submission_prefix: " prefix "\n"                                                       \
    "    key: k.pem\n"                                                                          \
    "    roots: r.pem\n"                                                                        \
    "    not_after_start: 2026-01-01T00:00:00Z\n"                                               \
    "    not_after_limit: 2026-07-01T00:00:00Z\n"                                               \
    "    storage: " store "\n"                                                                  \
    "    lock: " lock "\n"                                                                      \
    "    sequencer: tcp://127.0.0.1:9201\n"
    expect_error("logs:\n" LOG_A LOG_B("a", "http://h/b/", "file:///s/b", "file:///l/b")
                     BATCHERS_DNS,
                 "11: field logs[1].name: duplicate log name \"a\" (also logs[0])");
    expect_error("logs:\n" LOG_A LOG_B("b", "http://h/a/", "file:///s/b", "file:///l/b")
                     BATCHERS_DNS,
                 "12: field logs[1].submission_prefix: duplicate submission prefix (also "
                 "logs[0])");
    expect_error("logs:\n" LOG_A LOG_B("b", "https://other/a/", "file:///s/b", "file:///l/b")
                     BATCHERS_DNS,
                 "12: field logs[1].submission_prefix: URL path /a/ is also used by logs[0] "
                 "(frontends route by path)");
    expect_error("logs:\n" LOG_A LOG_B("b", "http://h/b/", "file:///s/a", "file:///l/b")
                     BATCHERS_DNS,
                 "17: field logs[1].storage: duplicate storage (also logs[0])");
    expect_error("logs:\n" LOG_A LOG_B("b", "http://h/b/", "file:///s/b", "file:///l/a")
                     BATCHERS_DNS,
                 "18: field logs[1].lock: duplicate lock (also logs[0])");
    expect_error("logs:\n" LOG_A LOG_B("b", "http://h/b/", "file:///s/b", "file:///l/b")
                     "    monitoring_prefix: http://h/a/\n" BATCHERS_DNS,
                 "20: field logs[1].monitoring_prefix: duplicate monitoring prefix (also "
                 "logs[0])");
    /* The same storage spelled relative and absolute is still the same storage. */
    error err = {{0}};
    const char *text = "logs:\n" LOG_B("a", "http://h/a/", "file:x", "file:///l/a")
        LOG_B("b", "http://h/b/", "file:///cfg/x", "file:///l/b") BATCHERS_DNS;
    assert_null(config_parse(text, strlen(text), "m.yaml", "/cfg", &err));
    assert_string_equal(err.msg, "m.yaml:17: field logs[1].storage: duplicate storage (also "
                                 "logs[0])");
#undef LOG_B
}

static void test_missing_required(void **state)
{
    (void)state;
    expect_error("logs:\n"
                 "  - name: a\n"
                 "    submission_prefix: http://h/a/\n"
                 "    roots: r.pem\n",
                 "2: field logs[0].key: missing (required)");
    expect_error(BATCHERS_DNS, "1: field logs: missing (required)");
    expect_error("# comment\nlogs:\n" LOG_A, "2: field batchers: missing (required)");
    expect_error("logs:\n" LOG_A "batchers:\n  batch_max: 5\n",
                 "12: field batchers: missing batchers.addresses or batchers.dns (exactly one is "
                 "required)");
    expect_error("logs:\n" LOG_A "batchers:\n  addresses: [tcp://a:1]\n  dns: b:1\n",
                 "13: field batchers.dns: give either batchers.addresses or batchers.dns, not "
                 "both");
}

static void test_file_errors(void **state)
{
    (void)state;
    error err = {{0}};
    assert_null(config_load("/nonexistent/tegula.yaml", &err));
    assert_string_equal(err.msg, "/nonexistent/tegula.yaml: cannot open: No such file or directory");
    /* A NULL error pointer is allowed. */
    assert_null(config_load("/nonexistent/tegula.yaml", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_config_loads_every_field),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_ctile_proxies),
        cmocka_unit_test(test_non_default_values),
        cmocka_unit_test(test_relative_paths_resolve_against_config_dir),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_yaml_syntax_errors),
        cmocka_unit_test(test_unknown_and_duplicate_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_out_of_range_numbers),
        cmocka_unit_test(test_bad_urls_and_addresses),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_bad_values_limit),
        cmocka_unit_test(test_duplicates_between_logs),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_file_errors),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
