/* tegula-frontend -c tegula.yaml [--listen HOST:PORT]
 *
 * Exit status: 0 after a graceful stop (SIGTERM/SIGINT), 1 when the service cannot start
 * (a key, a roots file, the listening address), 2 on a bad command line or config. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "frontend.h"
#include "log.h"

static void usage(FILE *out)
{
    fputs("Usage: tegula-frontend -c tegula.yaml [--listen HOST:PORT]\n"
          "\n"
          "Serves the RFC 6962 submission API (add-chain, add-pre-chain, get-roots) and\n"
          "log.v3.json of every log in the config, plus /healthz, /readyz and /metrics.\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE    the tegula YAML config (required)\n"
          "  -l, --listen ADDR    HOST:PORT to listen on (default: frontend.listen)\n"
          "  -h, --help           show this help\n",
          out);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *listen = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, ":c:l:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "tegula-frontend: option '%s' needs a value\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        default:
            fprintf(stderr, "tegula-frontend: unknown option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tegula-frontend: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!config_path) {
        fprintf(stderr, "tegula-frontend: -c tegula.yaml is required\n");
        usage(stderr);
        return 2;
    }

    error err = {{0}};
    config *cfg = config_load(config_path, &err);
    if (!cfg) {
        fprintf(stderr, "tegula-frontend: %s\n", err.msg);
        return 2;
    }
    log_init("frontend", cfg->log_level);

    /* Every thread started from here on inherits this mask; the main thread takes the
     * signals synchronously with sigwait. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    frontend_options opts = {.listen = listen};
    frontend *fe = frontend_start(cfg, &opts, &err);
    if (!fe) {
        log_error("frontend cannot start", "reason=\"%s\"", err.msg);
        config_free(cfg);
        return 1;
    }
    log_info("frontend listening", "listen=%s port=%u logs=%zu workers=%u",
             listen ? listen : cfg->frontend.listen, (unsigned)frontend_port(fe), cfg->log_count,
             cfg->frontend.workers);
    for (size_t i = 0; i < cfg->log_count; i++)
        log_info("serving log", "log=%s submission=%s", cfg->logs[i].name,
                 cfg->logs[i].submission_prefix);

    int sig = 0;
    sigwait(&stop_signals, &sig);
    log_info("stopping", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    frontend_stop(fe);
    log_info("stopped", "");
    config_free(cfg);
    return 0;
}
