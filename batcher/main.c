/* tegula-batcher: receives SubmitRequests from frontends, de-duplicates them, batches them per
 * log and sends the batches to each log's sequencer (batching.h, dedup_store.h).
 *
 *   tegula-batcher -c tegula.yaml --listen tcp://127.0.0.1:9101 [--id NAME]
 *                  [--http HOST:PORT] [--recreate-db]
 *
 * Exit status: 0 after SIGTERM/SIGINT (graceful stop), 1 on a fatal error (the dedup database
 * or an address cannot be opened), 2 on a bad command line or config. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batching.h"
#include "buffer.h"
#include "config.h"
#include "fileio.h"
#include "dedup_store.h"
#include "http_server.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "rpc.h"
#include "service.h"

#define EXIT_USAGE 2
/* The batcher receives single submissions: a certificate chain of at most 10 certificates
 * (each far below 64 KiB in practice; a frontend caps bodies at max_body_bytes). */
#define MAX_REQUEST_BYTES ((size_t)8 << 20)
/* Graceful stop waits at most this long for batches in flight (and never longer than
 * batchers.sequencer_timeout_ms, after which they fail anyway). */
#define MAX_DRAIN_MS 10000
#define RPC_CLOSE_WAIT_MS 1000

static const char usage[] =
    "Usage: tegula-batcher -c tegula.yaml --listen tcp://HOST:PORT [--id NAME]\n"
    "                      [--http HOST:PORT] [--recreate-db]\n";

static const char help[] =
    "\n"
    "Receives submissions from frontends, answers duplicates from its RocksDB dedup database,\n"
    "coalesces identical submissions in flight, batches the rest per log and sends each batch\n"
    "to the log's sequencer.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE    the tegula YAML config (required)\n"
    "  --listen ADDR        NNG address to receive submissions on, e.g. tcp://127.0.0.1:9101\n"
    "                       (required)\n"
    "  --id NAME            batcher id sent with every batch; the sequencer tells batches\n"
    "                       apart by (id, batch sequence), so every running batcher of a\n"
    "                       deployment needs its own (default: the listen address, or this\n"
    "                       machine's host name when the listen host is a wildcard such as\n"
    "                       tcp://0.0.0.0:9100, as in a container: replicas listen on the\n"
    "                       same address but each has its own host name);\n"
    "                       the dedup database is batchers.db/<id, sanitised>\n"
    "  --http HOST:PORT     serve /healthz, /readyz and /metrics\n"
    "  --recreate-db        if the dedup database cannot be opened (corrupt), move it aside\n"
    "                       and start with an empty one (costs duplicate entries only);\n"
    "                       without it the batcher refuses to start\n"
    "  -h, --help           this help\n"
    "\n"
    "Exit status: 0 after SIGTERM/SIGINT, 1 on a fatal error, 2 on a bad command line or\n"
    "config.\n";

/* True when a TCP listen address binds every interface (host 0.0.0.0, '*', empty or [::]):
 * then every replica of a container or pod has the same one. */
static bool listen_host_is_wildcard(const char *listen)
{
    static const char *const wildcards[] = {"tcp://0.0.0.0:", "tcp://*:", "tcp://:",
                                            "tcp://[::]:", "tcp4://0.0.0.0:", "tcp6://[::]:"};
    for (size_t i = 0; i < sizeof wildcards / sizeof wildcards[0]; i++)
        if (strncmp(listen, wildcards[i], strlen(wildcards[i])) == 0)
            return true;
    return false;
}

typedef struct app {
    const config *cfg;
    batcher *batcher;
    metrics_registry *metrics;
} app;

/* ---- http ---- */

static void handle_healthz(http_request *req, void *ctx)
{
    (void)ctx;
    http_respond_text(req, 200, "ok\n");
}

static void handle_readyz(http_request *req, void *ctx)
{
    app *a = ctx;
    buffer report = {0};
    bool ready = batcher_ready(a->batcher, &report);
    buffer_terminate(&report);
    http_respond_text(req, ready ? 200 : 503, report.data ? (const char *)report.data : "");
    buffer_free(&report);
}

/* ---- startup helpers ---- */

static bool nng_address_ok(const char *addr)
{
    return (strncmp(addr, "tcp://", 6) == 0 && addr[6]) ||
           (strncmp(addr, "ipc://", 6) == 0 && addr[6]) ||
           (strncmp(addr, "inproc://", 9) == 0 && addr[9]);
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "tegula-batcher: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%sRun 'tegula-batcher --help' for details.\n", usage);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    log_init("batcher", LOG_INFO);
    const char *config_path = NULL, *listen = NULL, *id = NULL, *http_listen = NULL;
    bool recreate_db = false;
    enum { OPT_LISTEN = 256, OPT_ID, OPT_HTTP, OPT_RECREATE };
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"id", required_argument, NULL, OPT_ID},
        {"http", required_argument, NULL, OPT_HTTP},
        {"recreate-db", no_argument, NULL, OPT_RECREATE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case OPT_LISTEN: listen = optarg; break;
        case OPT_ID: id = optarg; break;
        case OPT_HTTP: http_listen = optarg; break;
        case OPT_RECREATE: recreate_db = true; break;
        case 'h':
            printf("%s%s", usage, help);
            return 0;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!config_path)
        return usage_error("%s", "missing -c tegula.yaml");
    if (!listen)
        return usage_error("%s", "missing --listen ADDR");
    if (!nng_address_ok(listen))
        return usage_error("--listen %s: want tcp://HOST:PORT, ipc://PATH or inproc://NAME",
                           listen);
    char hostname[256];
    if (!id && listen_host_is_wildcard(listen)) {
        if (gethostname(hostname, sizeof hostname) != 0 || hostname[0] == 0 ||
            memchr(hostname, 0, sizeof hostname) == NULL)
            return usage_error("--listen %s binds every interface and the host name is "
                               "unknown: give --id NAME", listen);
        id = hostname;
    }
    if (!id)
        id = listen;
    if (id[0] == 0 || strlen(id) > 255)
        return usage_error("--id '%s': want 1 to 255 bytes", id);

    error err = {{0}};
    config *cfg = config_load(config_path, &err);
    if (!cfg) {
        fprintf(stderr, "tegula-batcher: %s\n", err.msg);
        return EXIT_USAGE;
    }
    log_set_level(cfg->log_level);

    /* SIGTERM/SIGINT are taken by sigwait below: block them before any thread starts so
     * every thread inherits the mask. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    app a = {.cfg = cfg};
    dedup_store *store = NULL;
    rpc_server *server = NULL;
    http_server *http = NULL;
    http_router *router = NULL;
    buffer db_path = {0};

    if (directories_create(cfg->batchers.db, strlen(cfg->batchers.db), &err) != 0 ||
        dedup_store_path(cfg->batchers.db, id, &db_path, &err) != 0) {
        log_error("cannot prepare the dedup database directory", "reason=\"%s\"", err.msg);
        goto out;
    }
    store = dedup_store_open((const char *)db_path.data, recreate_db, &err);
    if (!store) {
        log_error("cannot open the dedup database (--recreate-db starts an empty one)",
                  "path=%s reason=\"%s\"", (const char *)db_path.data, err.msg);
        goto out;
    }
    if (cfg->metrics.enabled && !(a.metrics = metrics_registry_new())) {
        log_error("out of memory", "");
        goto out;
    }
    batcher_options bo = {.cfg = cfg,
                          .id = id,
                          .store = store,
                          .metrics = a.metrics,
                          .reply = batcher_service_reply};
    a.batcher = batcher_start(&bo, &err);
    if (!a.batcher) {
        log_error("cannot start batching", "reason=\"%s\"", err.msg);
        goto out;
    }
    rpc_server_options so = {.max_message_bytes = MAX_REQUEST_BYTES};
    server = rpc_server_open(listen, &so, batcher_service_handle, a.batcher, &err);
    if (!server) {
        log_error("cannot listen for submissions", "listen=%s reason=\"%s\"", listen, err.msg);
        goto out;
    }
    if (http_listen) {
        router = http_router_new();
        if (!router || http_router_add(router, "GET", "/healthz", handle_healthz, &a) != 0 ||
            http_router_add(router, "GET", "/readyz", handle_readyz, &a) != 0 ||
            http_router_add(router, "GET", "/metrics", metrics_http_handle, a.metrics) != 0) {
            log_error("out of memory", "");
            goto out;
        }
        http_server_config hc = {.listen = http_listen,
                                 .threads = 1,
                                 .stop_timeout_ms = 1000,
                                 .handler = http_router_handle,
                                 .handler_ctx = router};
        http = http_server_start(&hc, &err);
        if (!http) {
            log_error("cannot serve HTTP", "http=%s reason=\"%s\"", http_listen, err.msg);
            goto out;
        }
    }
    /* The bound ports are logged too: with port 0 they are how a caller finds us. */
    log_info("batcher started", "listen=%s rpc_port=%d id=%s db=%s http=%s http_port=%u "
             "logs=%zu batch_max=%u batch_wait_ms=%u queue_limit=%u",
             listen, rpc_server_port(server), id, (const char *)db_path.data,
             http_listen ? http_listen : "-", http ? (unsigned)http_server_port(http) : 0,
             cfg->log_count, cfg->batchers.batch_max, cfg->batchers.batch_wait_ms,
             cfg->batchers.queue_limit);

    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0)
        ;
    log_info("stopping", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    int drain_ms = (int)cfg->batchers.sequencer_timeout_ms;
    if (drain_ms > MAX_DRAIN_MS)
        drain_ms = MAX_DRAIN_MS;
    /* New keys are refused (UNAVAILABLE: the frontend tries the next batcher), open batches
     * go out now, and what is in flight is answered or failed within drain_ms. */
    batcher_drain(a.batcher, drain_ms);
    status = 0;

out:
    /* Every submission is answered by now (or the batcher never started): closing the server
     * only waits for handlers still running. */
    rpc_server_close(server, RPC_CLOSE_WAIT_MS);
    if (http)
        http_server_stop(http);
    http_router_free(router);
    batcher_free(a.batcher);
    dedup_store_close(store);
    metrics_registry_free(a.metrics);
    buffer_free(&db_path);
    config_free(cfg);
    if (status == 0)
        log_info("stopped", "");
    return status;
}
