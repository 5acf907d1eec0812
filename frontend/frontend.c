#include "frontend.h"
#include "readserve.h"

#include "ctile.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batchers.h"
#include "health.h"
#include "http_server.h"
#include "log.h"
#include "log_state.h"
#include "logv3.h"
#include "metrics.h"
#include "submission.h"

/* ---- metrics ---- */

/* Status codes counted individually; anything else is counted as "other". */
static const int counted_codes[] = {200, 400, 404, 405, 410, 413, 500, 503};
#define CODE_SLOTS (sizeof counted_codes / sizeof counted_codes[0] + 1)

/* Request counters and latency of one route; counters are registered the first time a code
 * is answered, so /metrics lists only codes that occurred. */
typedef struct route_stats {
    metrics_registry *registry; /* NULL when metrics are disabled */
    const char *log;            /* "" for the process-wide routes */
    const char *route;
    _Atomic(metrics_counter *) by_code[CODE_SLOTS];
    metrics_histogram *latency;
} route_stats;

static void route_stats_init(route_stats *rs, metrics_registry *reg, const char *log,
                             const char *route)
{
    memset(rs, 0, sizeof *rs);
    rs->registry = reg;
    rs->log = log;
    rs->route = route;
    if (!reg)
        return;
    metrics_label labels[] = {{"log", log}, {"route", route}};
    rs->latency = metrics_histogram_register(
        reg, "tegula_frontend_request_duration_seconds",
        "Time from a complete request to its response, by log and route.", labels, 2,
        metrics_latency_buckets, metrics_latency_bucket_count, NULL);
}

static void route_stats_count(route_stats *rs, int code)
{
    if (!rs->registry)
        return;
    size_t slot = CODE_SLOTS - 1;
    for (size_t i = 0; i < CODE_SLOTS - 1; i++)
        if (counted_codes[i] == code)
            slot = i;
    metrics_counter *c = atomic_load_explicit(&rs->by_code[slot], memory_order_acquire);
    if (!c) {
        char code_text[16];
        if (slot == CODE_SLOTS - 1)
            snprintf(code_text, sizeof code_text, "other");
        else
            snprintf(code_text, sizeof code_text, "%d", code);
        metrics_label labels[] = {{"log", rs->log}, {"route", rs->route}, {"code", code_text}};
        /* Registration is idempotent, so two threads racing here get the same handle. */
        c = metrics_counter_register(rs->registry, "tegula_frontend_requests_total",
                                     "HTTP requests answered, by log, route and status code.",
                                     labels, 3, NULL);
        atomic_store_explicit(&rs->by_code[slot], c, memory_order_release);
    }
    metrics_counter_inc(c);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- state ---- */

typedef struct frontend_log frontend_log;

/* One route of one log: what its handler needs. */
typedef struct log_route {
    frontend *fe;
    frontend_log *log;
    route_stats stats;
    x509_endpoint endpoint; /* submissions only */
    const char *allow;      /* for the 405 of this path */
} log_route;

enum { ROUTE_ADD_CHAIN, ROUTE_ADD_PRE_CHAIN, ROUTE_GET_ROOTS, ROUTE_LOGV3, ROUTE_OTHER,
       ROUTE_COUNT };

struct frontend_log {
    log_state state;
    readserve *reader; /* NULL when frontend.read_path is off */
    http_router *router;
    log_route routes[ROUTE_COUNT];
};

typedef struct process_route {
    frontend *fe;
    route_stats stats;
    const char *allow;
} process_route;

enum { PROC_HEALTHZ, PROC_READYZ, PROC_METRICS, PROC_OTHER, PROC_COUNT };

struct frontend {
    const config *cfg;
    frontend_log *logs;
    size_t log_count;
    batcher_pool *pool;
    health *health;
    metrics_registry *registry;
    http_router *router;
    http_server *server;
    process_route proc[PROC_COUNT];
    ctile_proxy **ctiles; /* one per `ctile:` entry */
    size_t ctile_count;

    metrics_counter *outcomes[8];
    metrics_gauge *batchers_known, *batchers_live, *sequencers_live, *ready_gauge;
    metrics_gauge *http_open, *http_errors;
    struct {
        metrics_gauge *verifications, *cache_hits, *cache_evictions, *cache_entries;
    } *validator_gauges;
};

/* Outcome counters, indexed by enum outcome_kind. */
enum outcome_kind { OUT_OK, OUT_OVERLOADED, OUT_UNAVAILABLE, OUT_BAD_REQUEST, OUT_INTERNAL,
                    OUT_TIMEOUT, OUT_NO_BATCHER, OUT_FAILED };
static const char *const outcome_names[] = {"ok", "overloaded", "unavailable", "bad_request",
                                            "internal", "timeout", "no_batcher", "failed"};

/* ---- responses ---- */

static const http_header text_headers[] = {
    {"Content-Type", "text/plain; charset=utf-8"},
    {NULL, NULL},
};
static const http_header retry_headers[] = {
    {"Content-Type", "text/plain; charset=utf-8"},
    {"Retry-After", "1"},
    {NULL, NULL},
};
static const http_header json_headers[] = {
    {"Content-Type", "application/json"},
    {NULL, NULL},
};

static void finish(route_stats *rs, uint64_t start_ns, http_request *req, int status,
                   const http_header *headers, const void *body, size_t len)
{
    route_stats_count(rs, status);
    metrics_histogram_observe(rs->latency, (double)(now_ns() - start_ns) / 1e9);
    http_respond(req, status, headers, body, len);
}

static void finish_owned(route_stats *rs, uint64_t start_ns, http_request *req, int status,
                         const http_header *headers, void *body, size_t len)
{
    route_stats_count(rs, status);
    metrics_histogram_observe(rs->latency, (double)(now_ns() - start_ns) / 1e9);
    http_respond_owned(req, status, headers, body, len);
}

/* A text body of one line plus newline. */
static void finish_text(route_stats *rs, uint64_t start_ns, http_request *req, int status,
                        const http_header *headers, const char *text)
{
    char body[320];
    int n = snprintf(body, sizeof body, "%s\n", text);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof body)
        n = sizeof body - 1;
    finish(rs, start_ns, req, status, headers, body, (size_t)n);
}

/* ---- submissions ---- */

typedef struct submit_ctx {
    log_route *route;
    http_request *req;
    uint64_t start_ns;
    submission_chain chain;
    submission sub;
    Tegula__SubmitRequest request;
    Tegula__Envelope envelope;
    ProtobufCBinaryData fingerprints[X509_CHAIN_MAX];
    ProtobufCBinaryData issuers[X509_CHAIN_MAX];
} submit_ctx;

static void submit_ctx_free(submit_ctx *s)
{
    submission_free(&s->sub);
    submission_chain_free(&s->chain);
    free(s);
}

static void count_outcome(frontend *fe, enum outcome_kind kind)
{
    metrics_counter_inc(fe->outcomes[kind]);
}

static void on_batcher_done(void *arg, batcher_outcome outcome, const Tegula__SubmitReply *reply,
                            const char *batcher)
{
    submit_ctx *s = arg;
    log_route *route = s->route;
    frontend *fe = route->fe;
    route_stats *rs = &route->stats;
    const char *log_name = route->log->state.config->name;

    switch (outcome) {
    case BATCHER_REPLY:
        break;
    case BATCHER_TIMEOUT:
        count_outcome(fe, OUT_TIMEOUT);
        log_warn("batcher did not answer in time", "log=%s batcher=%s", log_name, batcher);
        finish_text(rs, s->start_ns, s->req, 503, retry_headers,
                    "the log did not answer in time; retry later");
        submit_ctx_free(s);
        return;
    case BATCHER_UNAVAILABLE:
        count_outcome(fe, OUT_NO_BATCHER);
        finish_text(rs, s->start_ns, s->req, 503, retry_headers,
                    "no batcher is available; retry later");
        submit_ctx_free(s);
        return;
    case BATCHER_CLOSED:
        count_outcome(fe, OUT_FAILED);
        finish_text(rs, s->start_ns, s->req, 503, retry_headers, "the frontend is shutting down");
        submit_ctx_free(s);
        return;
    case BATCHER_FAILED:
    default:
        count_outcome(fe, OUT_FAILED);
        finish_text(rs, s->start_ns, s->req, 500, text_headers,
                    "internal error talking to the batcher");
        submit_ctx_free(s);
        return;
    }

    switch (reply->status) {
    case TEGULA__STATUS__STATUS_OK: {
        s->sub.entry.timestamp = reply->timestamp;
        s->sub.entry.leaf_index = reply->leaf_index;
        buffer json = {0};
        error err = {{0}};
        if (submission_sct_json(route->log->state.signer, &s->sub.entry, &json, &err) != 0) {
            count_outcome(fe, OUT_INTERNAL);
            log_error("cannot sign an SCT", "log=%s index=%" PRIu64 " reason=\"%s\"", log_name,
                      reply->leaf_index, err.msg);
            buffer_free(&json);
            finish_text(rs, s->start_ns, s->req, 500, text_headers, "cannot sign the SCT");
            break;
        }
        count_outcome(fe, OUT_OK);
        size_t len;
        uint8_t *body = buffer_steal(&json, &len);
        finish_owned(rs, s->start_ns, s->req, 200, json_headers, body, len);
        break;
    }
    case TEGULA__STATUS__STATUS_OVERLOADED:
        count_outcome(fe, OUT_OVERLOADED);
        finish_text(rs, s->start_ns, s->req, 503, retry_headers,
                    "the log is overloaded; retry later");
        break;
    case TEGULA__STATUS__STATUS_UNAVAILABLE:
        count_outcome(fe, OUT_UNAVAILABLE);
        finish_text(rs, s->start_ns, s->req, 503, retry_headers,
                    "the log is unavailable; retry later");
        break;
    case TEGULA__STATUS__STATUS_BAD_REQUEST: {
        count_outcome(fe, OUT_BAD_REQUEST);
        char text[300];
        snprintf(text, sizeof text, "rejected by the log: %s",
                 reply->message && reply->message[0] ? reply->message : "bad request");
        for (char *p = text; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        finish_text(rs, s->start_ns, s->req, 400, text_headers, text);
        break;
    }
    case TEGULA__STATUS__STATUS_INTERNAL:
    default:
        count_outcome(fe, OUT_INTERNAL);
        log_warn("batcher reported an internal error", "log=%s batcher=%s message=\"%s\"",
                 log_name, batcher, reply->message ? reply->message : "");
        finish_text(rs, s->start_ns, s->req, 500, text_headers, "internal error in the log");
        break;
    }
    submit_ctx_free(s);
}

static void handle_submit(http_request *req, void *arg)
{
    log_route *route = arg;
    frontend *fe = route->fe;
    uint64_t start = now_ns();
    const config_log *lc = route->log->state.config;
    if (lc->status != CONFIG_LOG_ACTIVE) {
        finish_text(&route->stats, start, req, 410, text_headers,
                    "this log is read-only and accepts no submissions");
        return;
    }
    submit_ctx *s = calloc(1, sizeof *s);
    if (!s) {
        finish_text(&route->stats, start, req, 500, text_headers, "out of memory");
        return;
    }
    s->route = route;
    s->req = req;
    s->start_ns = start;
    size_t len;
    const uint8_t *body = http_request_body(req, &len);
    error err = {{0}};
    if (submission_parse_body(body, len, &s->chain, &err) != 0 ||
        submission_build(route->log->state.validator, &s->chain, route->endpoint, &s->sub,
                         &err) != 0) {
        /* The reason names what is wrong, never the certificate bytes. */
        log_debug("submission rejected", "log=%s route=%s reason=\"%s\"", lc->name,
                  route->stats.route, err.msg);
        finish_text(&route->stats, start, req, 400, text_headers, err.msg);
        submit_ctx_free(s);
        return;
    }
    submission_request(&s->sub, lc->name, &s->request, s->fingerprints, s->issuers);
    tegula__envelope__init(&s->envelope);
    s->envelope.body_case = TEGULA__ENVELOPE__BODY_SUBMIT;
    s->envelope.submit = &s->request;
    batcher_pool_submit(fe->pool, &s->envelope, s->sub.dedup_key,
                        (int)fe->cfg->frontend.submit_timeout_ms, on_batcher_done, s);
}

/* ---- other log routes ---- */

static void handle_get_roots(http_request *req, void *arg)
{
    log_route *route = arg;
    const buffer *b = &route->log->state.roots_json;
    finish(&route->stats, now_ns(), req, 200, json_headers, b->data, b->len);
}

static void handle_logv3(http_request *req, void *arg)
{
    static const http_header headers[] = {
        {"Content-Type", LOGV3_CONTENT_TYPE},
        {"Cache-Control", "public, max-age=300"},
        {NULL, NULL},
    };
    log_route *route = arg;
    const buffer *b = &route->log->state.logv3_json;
    finish(&route->stats, now_ns(), req, 200, headers, b->data, b->len);
}

static void handle_log_405(http_request *req, void *arg)
{
    log_route *route = arg;
    const http_header headers[] = {
        {"Allow", route->allow},
        {"Content-Type", "text/plain; charset=utf-8"},
        {NULL, NULL},
    };
    finish_text(&route->stats, now_ns(), req, 405, headers, "method not allowed");
}

static void handle_log_404(http_request *req, void *arg)
{
    log_route *route = arg;
    finish_text(&route->stats, now_ns(), req, 404, text_headers, "not found");
}

/* ---- process routes ---- */

static void handle_healthz(http_request *req, void *arg)
{
    process_route *pr = arg;
    finish_text(&pr->stats, now_ns(), req, 200, text_headers, "ok");
}

static void handle_readyz(http_request *req, void *arg)
{
    process_route *pr = arg;
    char reason[256];
    if (health_ready(pr->fe->health, reason, sizeof reason))
        finish_text(&pr->stats, now_ns(), req, 200, text_headers, "ready");
    else
        finish_text(&pr->stats, now_ns(), req, 503, text_headers, reason);
}

static void update_gauges(frontend *fe)
{
    size_t members, live_marked, batchers_live, seq_live, seqs;
    batcher_pool_counts(fe->pool, &members, &live_marked);
    health_counts(fe->health, &batchers_live, &seq_live, &seqs);
    metrics_gauge_set(fe->batchers_known, (double)members);
    metrics_gauge_set(fe->batchers_live, (double)live_marked);
    metrics_gauge_set(fe->sequencers_live, (double)seq_live);
    metrics_gauge_set(fe->ready_gauge, health_ready(fe->health, NULL, 0) ? 1 : 0);
    if (fe->server) {
        http_server_stats st;
        http_server_stats_read(fe->server, &st);
        metrics_gauge_set(fe->http_open, (double)st.connections_open);
        metrics_gauge_set(fe->http_errors, (double)st.errors_sent);
    }
    for (size_t i = 0; i < fe->log_count; i++) {
        x509_validator_stats vs;
        x509_validator_stats_get(fe->logs[i].state.validator, &vs);
        metrics_gauge_set(fe->validator_gauges[i].verifications,
                          (double)vs.signature_verifications);
        metrics_gauge_set(fe->validator_gauges[i].cache_hits, (double)vs.link_cache_hits);
        metrics_gauge_set(fe->validator_gauges[i].cache_evictions,
                          (double)vs.link_cache_evictions);
        metrics_gauge_set(fe->validator_gauges[i].cache_entries, (double)vs.link_cache_entries);
    }
}

static void handle_metrics(http_request *req, void *arg)
{
    static const http_header headers[] = {
        {"Content-Type", METRICS_CONTENT_TYPE},
        {NULL, NULL},
    };
    process_route *pr = arg;
    frontend *fe = pr->fe;
    uint64_t start = now_ns();
    if (!fe->registry) {
        finish_text(&pr->stats, start, req, 404, text_headers, "metrics are disabled");
        return;
    }
    /* Counted before rendering so the response includes itself. */
    route_stats_count(&pr->stats, 200);
    update_gauges(fe);
    buffer out = {0};
    if (metrics_render(fe->registry, &out) != 0) {
        buffer_free(&out);
        http_respond_text(req, 500, "cannot render metrics\n");
        return;
    }
    size_t len;
    uint8_t *body = buffer_steal(&out, &len);
    metrics_histogram_observe(pr->stats.latency, (double)(now_ns() - start) / 1e9);
    http_respond_owned(req, 200, headers, body, len);
}

static void handle_proc_405(http_request *req, void *arg)
{
    process_route *pr = arg;
    const http_header headers[] = {
        {"Allow", pr->allow},
        {"Content-Type", "text/plain; charset=utf-8"},
        {NULL, NULL},
    };
    finish_text(&pr->stats, now_ns(), req, 405, headers, "method not allowed");
}

static void handle_proc_404(http_request *req, void *arg)
{
    process_route *pr = arg;
    finish_text(&pr->stats, now_ns(), req, 404, text_headers, "not found");
}

/* ---- setup ---- */

static int add_route(http_router *r, const char *method, const char *pattern,
                     http_handler handler, void *ctx, error *err)
{
    if (http_router_add(r, method, pattern, handler, ctx) != 0)
        return error_set(err, "cannot add route %s", pattern);
    return 0;
}

/* A path served with one method, and 405 for the others. */
static int add_path(http_router *r, const char *method, const char *path, http_handler handler,
                    http_handler not_allowed, void *ctx, error *err)
{
    if (add_route(r, method, path, handler, ctx, err) != 0 ||
        add_route(r, NULL, path, not_allowed, ctx, err) != 0)
        return -1;
    return 0;
}

static int log_routes_build(frontend *fe, frontend_log *fl, error *err)
{
    const char *name = fl->state.config->name;
    const char *prefix = fl->state.config->path_prefix;
    static const char *const route_names[ROUTE_COUNT] = {"add-chain", "add-pre-chain",
                                                         "get-roots", "log.v3.json", "other"};
    for (int i = 0; i < ROUTE_COUNT; i++) {
        log_route *r = &fl->routes[i];
        r->fe = fe;
        r->log = fl;
        route_stats_init(&r->stats, fe->registry, name, route_names[i]);
    }
    fl->routes[ROUTE_ADD_CHAIN].endpoint = X509_ADD_CHAIN;
    fl->routes[ROUTE_ADD_PRE_CHAIN].endpoint = X509_ADD_PRE_CHAIN;
    fl->routes[ROUTE_ADD_CHAIN].allow = "POST";
    fl->routes[ROUTE_ADD_PRE_CHAIN].allow = "POST";
    fl->routes[ROUTE_GET_ROOTS].allow = "GET, HEAD";
    fl->routes[ROUTE_LOGV3].allow = "GET, HEAD";

    fl->router = http_router_new();
    if (!fl->router)
        return error_set(err, "out of memory");
    char path[1024];
    struct {
        const char *method, *suffix;
        http_handler handler;
        int route;
    } table[] = {
        {"POST", "ct/v1/add-chain", handle_submit, ROUTE_ADD_CHAIN},
        {"POST", "ct/v1/add-pre-chain", handle_submit, ROUTE_ADD_PRE_CHAIN},
        {"GET", "ct/v1/get-roots", handle_get_roots, ROUTE_GET_ROOTS},
        {"GET", "log.v3.json", handle_logv3, ROUTE_LOGV3},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        snprintf(path, sizeof path, "%s%s", prefix, table[i].suffix);
        if (add_path(fl->router, table[i].method, path, table[i].handler, handle_log_405,
                     &fl->routes[table[i].route], err) != 0)
            return -1;
    }
    if (fl->reader && readserve_add_routes(fl->reader, fl->router, prefix, err) != 0)
        return -1;
    snprintf(path, sizeof path, "%s*", prefix);
    return add_route(fl->router, NULL, path, handle_log_404, &fl->routes[ROUTE_OTHER], err);
}

static int register_metrics(frontend *fe, error *err)
{
    metrics_registry *reg = fe->registry;
    for (size_t i = 0; i < sizeof outcome_names / sizeof outcome_names[0]; i++) {
        metrics_label l[] = {{"outcome", outcome_names[i]}};
        fe->outcomes[i] = metrics_counter_register(
            reg, "tegula_frontend_submissions_total",
            "Validated submissions by how the log answered them.", l, 1, err);
        if (!fe->outcomes[i])
            return -1;
    }
    metrics_label known[] = {{"state", "known"}}, live[] = {{"state", "live"}};
    if (!(fe->batchers_known = metrics_gauge_register(
              reg, "tegula_frontend_batchers", "Batchers in the ring, and those marked live.",
              known, 1, err)) ||
        !(fe->batchers_live = metrics_gauge_register(
              reg, "tegula_frontend_batchers", "Batchers in the ring, and those marked live.",
              live, 1, err)) ||
        !(fe->sequencers_live = metrics_gauge_register(
              reg, "tegula_frontend_sequencers_live",
              "Sequencers of active logs that answered the last ping.", NULL, 0, err)) ||
        !(fe->ready_gauge = metrics_gauge_register(reg, "tegula_frontend_ready",
                                                   "1 when /readyz answers 200.", NULL, 0,
                                                   err)) ||
        !(fe->http_open = metrics_gauge_register(reg, "tegula_frontend_http_connections_open",
                                                 "Open HTTP connections.", NULL, 0, err)) ||
        !(fe->http_errors = metrics_gauge_register(
              reg, "tegula_frontend_http_server_errors_sent",
              "Error responses produced by the HTTP server itself (413, 400, 408, ...).", NULL,
              0, err)))
        return -1;
    for (size_t i = 0; i < fe->log_count; i++) {
        metrics_label l[] = {{"log", fe->logs[i].state.config->name}};
        if (!(fe->validator_gauges[i].verifications = metrics_gauge_register(
                  reg, "tegula_frontend_validator_signature_verifications",
                  "Certificate signature verifications made by the chain validator.", l, 1,
                  err)) ||
            !(fe->validator_gauges[i].cache_hits = metrics_gauge_register(
                  reg, "tegula_frontend_validator_link_cache_hits",
                  "Issuer links found verified in the validator's cache.", l, 1, err)) ||
            !(fe->validator_gauges[i].cache_evictions = metrics_gauge_register(
                  reg, "tegula_frontend_validator_link_cache_evictions",
                  "Issuer links evicted from the validator's cache.", l, 1, err)) ||
            !(fe->validator_gauges[i].cache_entries = metrics_gauge_register(
                  reg, "tegula_frontend_validator_link_cache_entries",
                  "Issuer links in the validator's cache.", l, 1, err)))
            return -1;
    }
    return 0;
}

/* Longer prefixes first, so a log whose path lies under another's still gets its requests. */
static int cmp_prefix_len(const void *a, const void *b)
{
    const frontend_log *x = *(frontend_log *const *)a, *y = *(frontend_log *const *)b;
    size_t lx = strlen(x->state.config->path_prefix), ly = strlen(y->state.config->path_prefix);
    return lx < ly ? 1 : lx > ly ? -1 : 0;
}

static int top_router_build(frontend *fe, error *err)
{
    static const char *const names[PROC_COUNT] = {"healthz", "readyz", "metrics", "other"};
    for (int i = 0; i < PROC_COUNT; i++) {
        fe->proc[i].fe = fe;
        fe->proc[i].allow = "GET, HEAD";
        route_stats_init(&fe->proc[i].stats, fe->registry, "", names[i]);
    }
    fe->router = http_router_new();
    if (!fe->router)
        return error_set(err, "out of memory");
    if (add_path(fe->router, "GET", "/healthz", handle_healthz, handle_proc_405,
                 &fe->proc[PROC_HEALTHZ], err) != 0 ||
        add_path(fe->router, "GET", "/readyz", handle_readyz, handle_proc_405,
                 &fe->proc[PROC_READYZ], err) != 0 ||
        add_path(fe->router, "GET", "/metrics", handle_metrics, handle_proc_405,
                 &fe->proc[PROC_METRICS], err) != 0)
        return -1;
    frontend_log **sorted = calloc(fe->log_count ? fe->log_count : 1, sizeof *sorted);
    if (!sorted)
        return error_set(err, "out of memory");
    for (size_t i = 0; i < fe->log_count; i++)
        sorted[i] = &fe->logs[i];
    qsort(sorted, fe->log_count, sizeof *sorted, cmp_prefix_len);
    int rc = 0;
    for (size_t i = 0; i < fe->log_count && rc == 0; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s*", sorted[i]->state.config->path_prefix);
        rc = add_route(fe->router, NULL, path, http_router_handle, sorted[i]->router, err);
    }
    free(sorted);
    /* CTile prefixes never overlap a log's (the config checks it), so order is free. */
    for (size_t i = 0; i < fe->ctile_count && rc == 0; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s*", fe->cfg->ctiles[i].prefix);
        rc = add_route(fe->router, NULL, path, ctile_handle, fe->ctiles[i], err);
    }
    if (rc != 0)
        return -1;
    return add_route(fe->router, NULL, "*", handle_proc_404, &fe->proc[PROC_OTHER], err);
}

/* The CTile proxies of the `ctile:` section, each fronting a legacy RFC 6962 log. */
static int ctiles_open(frontend *fe, error *err)
{
    fe->ctiles = calloc(fe->cfg->ctile_count ? fe->cfg->ctile_count : 1, sizeof *fe->ctiles);
    if (!fe->ctiles)
        return error_set(err, "out of memory");
    for (size_t i = 0; i < fe->cfg->ctile_count; i++) {
        const config_ctile *c = &fe->cfg->ctiles[i];
        ctile_config cc = {
            .prefix = c->prefix,
            .upstream_url = c->upstream,
            .cache_url = c->cache,
            .tile_size = c->tile_size,
            .partial_max_age_s = c->partial_max_age_s,
            .sth_max_age_s = c->sth_max_age_s,
            .upstream_timeout_ms = c->upstream_timeout_ms,
        };
        if (!(fe->ctiles[i] = ctile_proxy_new(&cc, err)))
            return error_wrap(err, "ctile %s", c->prefix);
        fe->ctile_count = i + 1;
    }
    return 0;
}

static void frontend_free(frontend *fe)
{
    if (!fe)
        return;
    /* Order matters: the server first (no new requests), then the probes, then the pool
     * (which fails and completes every submission in flight), then what they used. */
    if (fe->server)
        http_server_stop(fe->server);
    health_stop(fe->health);
    batcher_pool_free(fe->pool);
    for (size_t i = 0; i < fe->ctile_count; i++)
        ctile_proxy_free(fe->ctiles[i]);
    free(fe->ctiles);
    http_router_free(fe->router);
    for (size_t i = 0; fe->logs && i < fe->log_count; i++) {
        http_router_free(fe->logs[i].router);
        readserve_close(fe->logs[i].reader);
        log_state_close(&fe->logs[i].state);
    }
    free(fe->logs);
    free(fe->validator_gauges);
    metrics_registry_free(fe->registry);
    free(fe);
}

frontend *frontend_start(const config *cfg, const frontend_options *opts, error *err)
{
    frontend_options o = {0};
    if (opts)
        o = *opts;
    frontend *fe = calloc(1, sizeof *fe);
    if (!fe) {
        error_set(err, "out of memory");
        return NULL;
    }
    fe->cfg = cfg;
    fe->log_count = cfg->log_count;
    fe->logs = calloc(cfg->log_count ? cfg->log_count : 1, sizeof *fe->logs);
    fe->validator_gauges =
        calloc(cfg->log_count ? cfg->log_count : 1, sizeof *fe->validator_gauges);
    if (!fe->logs || !fe->validator_gauges) {
        error_set(err, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->log_count; i++) {
        if (log_state_open(&fe->logs[i].state, &cfg->logs[i], err) != 0) {
            /* Only the logs opened so far need closing. */
            fe->log_count = i;
            goto fail;
        }
        if (cfg->frontend.read_path &&
            !(fe->logs[i].reader = readserve_open(cfg, &cfg->logs[i],
                                                  log_signer_public_key(fe->logs[i].state.signer),
                                                  err))) {
            fe->log_count = i + 1;
            goto fail;
        }
    }
    if (cfg->metrics.enabled) {
        fe->registry = metrics_registry_new();
        if (!fe->registry) {
            error_set(err, "out of memory");
            goto fail;
        }
        if (register_metrics(fe, err) != 0)
            goto fail;
    }
    for (size_t i = 0; i < fe->log_count; i++)
        if (log_routes_build(fe, &fe->logs[i], err) != 0)
            goto fail;
    if (ctiles_open(fe, err) != 0)
        goto fail;
    if (top_router_build(fe, err) != 0)
        goto fail;

    unsigned submit_ms = cfg->frontend.submit_timeout_ms;
    batcher_pool_options popts = {
        .dns_refresh_ms = o.dns_refresh_ms,
        .connect_wait_ms = submit_ms / 4 < 1000 ? submit_ms / 4 : 1000,
    };
    fe->pool = batcher_pool_new(&cfg->batchers, &popts, err);
    if (!fe->pool)
        goto fail;
    fe->health = health_start(cfg, fe->pool, o.health_interval_ms ? o.health_interval_ms : 2000,
                              1000, err);
    if (!fe->health)
        goto fail;

    http_server_config scfg = {
        .listen = o.listen ? o.listen : cfg->frontend.listen,
        .threads = cfg->frontend.workers,
        .max_body_bytes = cfg->frontend.max_body_bytes,
        /* Submissions in flight get their whole deadline before the server gives up. */
        .stop_timeout_ms = submit_ms + 1000,
        .handler = http_router_handle,
        .handler_ctx = fe->router,
    };
    fe->server = http_server_start(&scfg, err);
    if (!fe->server)
        goto fail;
    return fe;
fail:
    frontend_free(fe);
    return NULL;
}

uint16_t frontend_port(const frontend *fe)
{
    return http_server_port(fe->server);
}

void frontend_stop(frontend *fe)
{
    frontend_free(fe);
}
