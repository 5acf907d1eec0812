/* tegula-sequencer: the one sequencer of one log.
 *
 *   tegula-sequencer -c tegula.yaml --log NAME [--create] [--http HOST:PORT]
 *
 * Claims the log's lock, recovers (or with --create creates) the log, listens on the log's
 * `sequencer:` address for batches, and runs a round every period_ms, even when idle.
 * Exit status: 0 after SIGTERM/SIGINT (once the last round is done), 1 on a fatal error (lost
 * CAS, fork, storage failure, another sequencer holding the lock), 2 on bad usage or config. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "http_server.h"
#include "keys.h"
#include "lock.h"
#include "log.h"
#include "logv3.h"
#include "metrics.h"
#include "metrics_http.h"
#include "storage.h"

#include "pool.h"
#include "recovery.h"
#include "round.h"
#include "service.h"

#define EXIT_FATAL 1
#define EXIT_USAGE 2
#define EXIT_EXISTS 3
/* How long a stopping sequencer waits for replies to leave. */
#define STOP_WAIT_MS 2000

static const char usage_text[] =
    "Usage: tegula-sequencer -c tegula.yaml --log NAME [--create | --create-only]\n"
    "                        [--http HOST:PORT]\n"
    "\n"
    "Runs the sequencer of one log: pools batches from the batchers on the log's\n"
    "`sequencer:` address and every period_ms commits them to the log's storage and lock.\n"
    "\n"
    "  -c, --config FILE   the tegula YAML config\n"
    "  -l, --log NAME      the log to sequence (its name in the config)\n"
    "      --create        create the log (only when neither the lock nor storage has a\n"
    "                      checkpoint); without it a missing log is an error\n"
    "      --create-only   create the log as --create does, then exit without sequencing\n"
    "                      (a first-start step: exit status 3, nothing changed, when the\n"
    "                      lock already holds a checkpoint)\n"
    "      --http ADDR     serve /healthz and /metrics on HOST:PORT\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit status: 0 after SIGTERM/SIGINT (or --create-only created the log), 1 on a fatal\n"
    "error, 2 on bad usage or config, 3 when --create-only found the log existing.\n";

typedef struct options {
    const char *config_path;
    const char *log_name;
    const char *http_listen;
    bool create;
    bool create_only;
} options;

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "tegula-sequencer: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_text);
    return EXIT_USAGE;
}

/* Returns -1 to continue, otherwise an exit status. */
static int parse_options(int argc, char **argv, options *o)
{
    enum { OPT_CREATE = 256, OPT_HTTP, OPT_CREATE_ONLY };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"log", required_argument, NULL, 'l'},
        {"create", no_argument, NULL, OPT_CREATE}, {"http", required_argument, NULL, OPT_HTTP},
        {"create-only", no_argument, NULL, OPT_CREATE_ONLY},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":c:l:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': o->config_path = optarg; break;
        case 'l': o->log_name = optarg; break;
        case OPT_CREATE: o->create = true; break;
        case OPT_CREATE_ONLY: o->create = o->create_only = true; break;
        case OPT_HTTP: o->http_listen = optarg; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (o->config_path == NULL)
        return usage_error("%s", "-c CONFIG is required");
    if (o->log_name == NULL)
        return usage_error("%s", "--log NAME is required");
    return -1;
}

/* ---- /healthz and /metrics ---- */

typedef struct http_ctx {
    seq_log *log;
    metrics_registry *metrics;
} http_ctx;

static void handle_healthz(http_request *req, void *arg)
{
    http_ctx *h = arg;
    if (seq_log_ready(h->log))
        http_respond_text(req, 200, "ok\n");
    else
        http_respond_text(req, 503, "not ready\n");
}

/* ---- pool metrics, refreshed after every round ---- */

typedef struct pool_metrics {
    metrics_gauge *entries, *bytes, *remembered;
    metrics_counter *overloaded, *rejected, *duplicates;
    pool_stats last;
} pool_metrics;

static void pool_metrics_register(pool_metrics *pm, metrics_registry *r, const char *name)
{
    memset(pm, 0, sizeof *pm);
    if (r == NULL)
        return;
    metrics_label l[1] = {{"log", name}};
    pm->entries = metrics_gauge_register(r, "tegula_sequencer_pool_entries",
                                         "Entries waiting for the next round.", l, 1, NULL);
    pm->bytes = metrics_gauge_register(r, "tegula_sequencer_pool_bytes",
                                       "Bytes of entries waiting for the next round.", l, 1,
                                       NULL);
    pm->remembered = metrics_gauge_register(
        r, "tegula_sequencer_answered_batches",
        "Answered batches remembered for idempotent resends.", l, 1, NULL);
    pm->overloaded = metrics_counter_register(r, "tegula_sequencer_overloaded_entries_total",
                                              "Entries refused because the pool was full.", l,
                                              1, NULL);
    pm->rejected = metrics_counter_register(r, "tegula_sequencer_rejected_entries_total",
                                            "Entries refused as malformed.", l, 1, NULL);
    pm->duplicates = metrics_counter_register(r, "tegula_sequencer_duplicate_batches_total",
                                              "Batches received again (same batcher and "
                                              "sequence number).",
                                              l, 1, NULL);
}

static void pool_metrics_update(pool_metrics *pm, pool *p)
{
    pool_stats st;
    pool_stats_read(p, &st);
    metrics_gauge_set(pm->entries, (double)st.pooled_entries);
    metrics_gauge_set(pm->bytes, (double)st.pooled_bytes);
    metrics_gauge_set(pm->remembered, (double)st.remembered_batches);
    metrics_counter_add(pm->overloaded, st.overloaded_entries - pm->last.overloaded_entries);
    metrics_counter_add(pm->rejected, st.rejected_entries - pm->last.rejected_entries);
    metrics_counter_add(pm->duplicates, st.duplicate_batches - pm->last.duplicate_batches);
    pm->last = st;
}

/* ---- log.v3.json ---- */

/* Writes log.v3.json next to the tiles, for a bucket or CDN to serve. A read-only log carries
 * its final tree head. Not fatal: the frontend renders the same document itself. */
static void publish_logv3(const config_log *lc, const log_signer *signer, storage *store,
                          seq_log *log)
{
    size_t spki_len;
    const uint8_t *spki = log_signer_spki(signer, &spki_len);
    logv3_tree_head head;
    const logv3_tree_head *final_head = NULL;
    if (lc->status == CONFIG_LOG_READONLY) {
        head.tree_size = seq_log_size(log);
        head.timestamp = seq_log_last_timestamp(log);
        seq_log_root(log, head.root_hash);
        final_head = &head;
    }
    buffer json = {0};
    error err = {{0}};
    if (logv3_render(&json, lc, spki, spki_len, final_head, &err) != 0 ||
        storage_put(store, "log.v3.json", json.data, json.len, NULL, &err) != STORAGE_OK)
        log_warn("could not publish log.v3.json", "log=%s error=\"%s\"", lc->name, err.msg);
    buffer_free(&json);
}

/* ---- the round loop ---- */

static void timespec_from_ms(double ms, struct timespec *ts)
{
    if (ms < 0)
        ms = 0;
    ts->tv_sec = (time_t)(ms / 1000.0);
    ts->tv_nsec = (long)((ms - (double)ts->tv_sec * 1000.0) * 1e6);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static round_status one_round(seq_log *log, pool *p, pool_metrics *pm, const char *name)
{
    round_report rep;
    error err = {{0}};
    round_status st = round_run(log, p, seq_now_ms(), &rep, &err);
    pool_metrics_update(pm, p);
    switch (st) {
    case ROUND_OK:
        if (rep.entries > 0)
            log_info("round published",
                     "log=%s entries=%zu size=%" PRIu64 " timestamp=%" PRIu64
                     " tiles=%zu ms=%.1f build_ms=%.1f tiles_ms=%.1f",
                     name, rep.entries, rep.size, rep.timestamp, rep.tiles, rep.ms_total,
                     rep.ms_build, rep.ms_tiles);
        else
            log_debug("checkpoint refreshed", "log=%s size=%" PRIu64 " timestamp=%" PRIu64,
                      name, rep.size, rep.timestamp);
        break;
    case ROUND_FAILED:
        log_error("round failed before committing; its entries were refused",
                  "log=%s entries=%zu error=\"%s\"", name, rep.entries, err.msg);
        break;
    case ROUND_UNPUBLISHED:
        log_error("round committed but the checkpoint upload failed; its entries were refused",
                  "log=%s entries=%zu size=%" PRIu64 " error=\"%s\"", name, rep.entries,
                  rep.size, err.msg);
        break;
    case ROUND_FATAL:
        log_error("fatal round failure; stopping", "log=%s entries=%zu error=\"%s\"", name,
                  rep.entries, err.msg);
        break;
    }
    return st;
}

/* Runs rounds every period until a stop signal (0) or a fatal round (1). Signals are blocked
 * in every thread and taken here with sigtimedwait, which doubles as the round timer. */
static int round_loop(seq_log *log, pool *p, pool_metrics *pm, const char *name,
                      uint32_t period_ms, const sigset_t *stop_signals)
{
    double next = seq_monotonic_ms() + period_ms;
    for (;;) {
        struct timespec wait;
        timespec_from_ms(next - seq_monotonic_ms(), &wait);
        int sig = sigtimedwait(stop_signals, NULL, &wait);
        if (sig > 0) {
            log_info("stopping", "log=%s signal=%d", name, sig);
            return 0;
        }
        if (sig < 0 && errno == EINTR)
            continue;
        if (seq_monotonic_ms() < next)
            continue; /* woke early */
        if (one_round(log, p, pm, name) == ROUND_FATAL)
            return EXIT_FATAL;
        /* Keep the cadence; after an overrun start the next round at once, not a burst. */
        next += period_ms;
        double now = seq_monotonic_ms();
        if (next < now)
            next = now;
    }
}

int main(int argc, char **argv)
{
    options opt = {0};
    int rc = parse_options(argc, argv, &opt);
    if (rc >= 0)
        return rc;

    log_init("sequencer", LOG_INFO);
    error err = {{0}};
    config *cfg = config_load(opt.config_path, &err);
    if (cfg == NULL) {
        log_error("cannot load the config", "error=\"%s\"", err.msg);
        return EXIT_USAGE;
    }
    log_set_level(cfg->log_level);
    const config_log *lc = config_log_by_name(cfg, opt.log_name);
    if (lc == NULL) {
        log_error("no such log in the config", "log=%s config=%s", opt.log_name, cfg->path);
        config_free(cfg);
        return EXIT_USAGE;
    }

    /* Block the stop signals before any thread exists, so every thread inherits the mask and
     * only round_loop's sigtimedwait takes them. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = EXIT_FATAL;
    log_signer *signer = NULL;
    storage *store = NULL;
    lock *lk = NULL;
    metrics_registry *metrics = NULL;
    seq_log *log = NULL;
    pool *p = NULL;
    seq_service *service = NULL;
    http_server *http = NULL;
    http_router *router = NULL;
    http_ctx hctx;
    pool_metrics pm;

    signer = log_signer_load(lc->key_path, &err);
    if (signer == NULL) {
        log_error("cannot load the log key", "log=%s key=%s error=\"%s\"", lc->name,
                  lc->key_path, err.msg);
        rc = EXIT_USAGE;
        goto out;
    }
    store = storage_open(lc->storage, &err);
    if (store == NULL) {
        log_error("cannot open storage", "log=%s storage=%s error=\"%s\"", lc->name,
                  lc->storage, err.msg);
        goto out;
    }
    lk = lock_open(lc->lock, &err);
    if (lk == NULL) {
        log_error("cannot open the lock", "log=%s lock=%s error=\"%s\"", lc->name, lc->lock,
                  err.msg);
        goto out;
    }
    if (lock_claim(lk, &err) != LOCK_OK) {
        log_error("cannot claim the lock: is another sequencer running for this log?",
                  "log=%s error=\"%s\"", lc->name, err.msg);
        goto out;
    }
    if (cfg->metrics.enabled)
        metrics = metrics_registry_new();
    seq_log_config sc = {.name = lc->name, .origin = lc->origin, .signer = signer,
                         .store = store, .lock = lk, .metrics = metrics};
    log = seq_log_new(&sc, &err);
    if (log == NULL) {
        log_error("cannot set up the log", "log=%s error=\"%s\"", lc->name, err.msg);
        goto out;
    }
    if (opt.create_only) {
        buffer existing = {0};
        char version[LOCK_VERSION_MAX];
        int lrc = lock_read(lk, &existing, version, &err);
        buffer_free(&existing);
        if (lrc == LOCK_OK) {
            log_info("the log already exists; nothing to create", "log=%s", lc->name);
            rc = EXIT_EXISTS;
            goto out;
        }
    }
    if (recovery_run(log, opt.create, seq_now_ms(), &err) != 0) {
        log_error("refusing to start", "log=%s error=\"%s\"", lc->name, err.msg);
        goto out;
    }
    publish_logv3(lc, signer, store, log);
    if (opt.create_only) {
        rc = 0;
        goto out;
    }
    pool_config pc = {.entry_limit = lc->pool_limit};
    p = pool_new(&pc);
    if (p == NULL) {
        log_error("out of memory", "");
        goto out;
    }
    pool_metrics_register(&pm, metrics, lc->name);
    seq_service_config svc = {.url = lc->sequencer, .log_name = lc->name,
                              .readonly = lc->status == CONFIG_LOG_READONLY, .log = log,
                              .pool = p};
    service = seq_service_start(&svc, &err);
    if (service == NULL) {
        log_error("cannot listen for batches", "log=%s error=\"%s\"", lc->name, err.msg);
        goto out;
    }
    if (opt.http_listen != NULL) {
        hctx = (http_ctx){log, metrics};
        router = http_router_new();
        if (router == NULL || http_router_add(router, "GET", "/healthz", handle_healthz, &hctx) ||
            http_router_add(router, "GET", "/metrics", metrics_http_handle, hctx.metrics)) {
            log_error("out of memory", "");
            goto out;
        }
        http_server_config hc = {.listen = opt.http_listen, .threads = 1,
                                 .handler = http_router_handle, .handler_ctx = router};
        http = http_server_start(&hc, &err);
        if (http == NULL) {
            log_error("cannot serve HTTP", "listen=%s error=\"%s\"", opt.http_listen, err.msg);
            goto out;
        }
    }
    log_info("sequencing", "log=%s origin=%s size=%" PRIu64 " listen=%s period_ms=%" PRIu32
             " pool_limit=%" PRIu32,
             lc->name, lc->origin, seq_log_size(log), lc->sequencer, lc->period_ms,
             lc->pool_limit);

    rc = round_loop(log, p, &pm, lc->name, lc->period_ms, &stop_signals);
    if (rc == 0) {
        /* Stop taking batches, then give what is pooled its round. */
        pool_close(p);
        if (one_round(log, p, &pm, lc->name) == ROUND_FATAL)
            rc = EXIT_FATAL;
    }

out:
    if (p != NULL)
        pool_close(p);
    if (http != NULL)
        http_server_stop(http);
    http_router_free(router);
    seq_service_stop(service, STOP_WAIT_MS);
    pool_free(p); /* answers anything still pooled with UNAVAILABLE */
    seq_log_free(log);
    metrics_registry_free(metrics);
    lock_close(lk);
    storage_close(store);
    log_signer_free(signer);
    config_free(cfg);
    if (rc == 0)
        log_info("stopped", "");
    return rc;
}
