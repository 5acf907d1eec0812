/* The frontend service in-process over real HTTP (libcurl) and real NNG, against stand-in
 * batchers and sequencers built on the rpc server (the real ones run in the integration
 * tests): SCTs for certificates and precertificates that verify and repeat byte for byte,
 * what travels in the SubmitRequest, every batcher status mapped to its HTTP answer, a
 * timeout that is never resent, failover to the next batcher in ring order, 400/404/405/410/
 * 413, readiness following the probes, and /metrics. */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include "../../frontend/frontend.h"
#include "../../frontend/log_state.h"
#include "../../frontend/submission.h"
#include "base64.h"
#include "config.h"
#include "ct.h"
#include "keys.h"
#include "pem.h"
#include "ring.h"
#include "rpc.h"

/* ---- stand-in batchers and sequencers ---- */

typedef enum fake_mode {
    FAKE_OK,
    FAKE_OVERLOADED,
    FAKE_UNAVAILABLE,
    FAKE_BAD_REQUEST,
    FAKE_INTERNAL,
    FAKE_SILENT, /* never answers a submission */
} fake_mode;

#define MAX_KEYS 64

typedef struct fake_server {
    rpc_server *server;
    char url[64];
    bool is_batcher;
    pthread_mutex_t mu;
    fake_mode mode;
    int submissions;            /* SubmitRequests received */
    Tegula__Envelope *last;     /* the last SubmitRequest envelope */
    uint8_t keys[MAX_KEYS][32]; /* dedup key -> index (its position) */
    size_t key_count;
} fake_server;

#define FAKE_TIMESTAMP 1767225600000ULL

static void fake_handler(void *arg, Tegula__Envelope *request, rpc_reply_token *token)
{
    fake_server *f = arg;
    Tegula__Envelope reply = TEGULA__ENVELOPE__INIT;
    if (request->body_case == TEGULA__ENVELOPE__BODY_PING) {
        Tegula__Pong pong = TEGULA__PONG__INIT;
        pong.role = f->is_batcher ? "batcher" : "sequencer";
        pong.ready = true;
        reply.body_case = TEGULA__ENVELOPE__BODY_PONG;
        reply.pong = &pong;
        rpc_reply(token, &reply);
        rpc_envelope_free(request);
        return;
    }
    if (!f->is_batcher || request->body_case != TEGULA__ENVELOPE__BODY_SUBMIT) {
        rpc_reply_drop(token);
        rpc_envelope_free(request);
        return;
    }
    pthread_mutex_lock(&f->mu);
    f->submissions++;
    fake_mode mode = f->mode;
    uint64_t index = 0;
    if (mode == FAKE_OK && request->submit->dedup_key.len == 32) {
        size_t i;
        for (i = 0; i < f->key_count; i++)
            if (memcmp(f->keys[i], request->submit->dedup_key.data, 32) == 0)
                break;
        if (i == f->key_count && f->key_count < MAX_KEYS)
            memcpy(f->keys[f->key_count++], request->submit->dedup_key.data, 32);
        index = 1000 + i;
    }
    rpc_envelope_free(f->last);
    f->last = request;
    pthread_mutex_unlock(&f->mu);

    if (mode == FAKE_SILENT) {
        rpc_reply_drop(token);
        return;
    }
    Tegula__SubmitReply sr = TEGULA__SUBMIT_REPLY__INIT;
    switch (mode) {
    case FAKE_OK:
        sr.status = TEGULA__STATUS__STATUS_OK;
        sr.leaf_index = index;
        sr.timestamp = FAKE_TIMESTAMP + index;
        break;
    case FAKE_OVERLOADED: sr.status = TEGULA__STATUS__STATUS_OVERLOADED; break;
    case FAKE_UNAVAILABLE: sr.status = TEGULA__STATUS__STATUS_UNAVAILABLE; break;
    case FAKE_BAD_REQUEST:
        sr.status = TEGULA__STATUS__STATUS_BAD_REQUEST;
        sr.message = "unknown log";
        break;
    default: sr.status = TEGULA__STATUS__STATUS_INTERNAL; break;
    }
    reply.body_case = TEGULA__ENVELOPE__BODY_SUBMIT_REPLY;
    reply.submit_reply = &sr;
    rpc_reply(token, &reply);
}

static void fake_start(fake_server *f, bool is_batcher)
{
    memset(f, 0, sizeof *f);
    f->is_batcher = is_batcher;
    pthread_mutex_init(&f->mu, NULL);
    error err = {{0}};
    f->server = rpc_server_open("tcp://127.0.0.1:0", NULL, fake_handler, f, &err);
    if (!f->server)
        fail_msg("fake server: %s", err.msg);
    snprintf(f->url, sizeof f->url, "tcp://127.0.0.1:%d", rpc_server_port(f->server));
}

static void fake_stop(fake_server *f)
{
    if (f->server)
        rpc_server_close(f->server, 0);
    f->server = NULL;
}

static void fake_free(fake_server *f)
{
    fake_stop(f);
    rpc_envelope_free(f->last);
    f->last = NULL;
    pthread_mutex_destroy(&f->mu);
}

static void fake_set_mode(fake_server *f, fake_mode mode)
{
    pthread_mutex_lock(&f->mu);
    f->mode = mode;
    pthread_mutex_unlock(&f->mu);
}

static int fake_submissions(fake_server *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->submissions;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* ---- HTTP client ---- */

typedef struct http_result {
    long status;
    buffer body;
    buffer headers;
} http_result;

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    buffer *b = arg;
    if (buffer_append(b, data, size * n) != 0)
        return 0;
    return size * n;
}

static void http_do(const char *method, const char *url, const void *body, size_t len,
                    http_result *out)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &out->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    assert_int_equal(buffer_terminate(&out->body), 0);
    assert_int_equal(buffer_terminate(&out->headers), 0);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
}

static void http_result_free(http_result *r)
{
    buffer_free(&r->body);
    buffer_free(&r->headers);
}

static bool has_header(const http_result *r, const char *line)
{
    return strcasestr((const char *)r->headers.data, line) != NULL;
}

/* ---- fixture ---- */

typedef struct fixture {
    fake_server batchers[2];
    fake_server sequencers[2];
    config *cfg;
    frontend *fe;
    char base[128];
    char dir[4096];
} fixture;

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void append_file(FILE *out, const char *path)
{
    buffer b = {0};
    read_file_or_fail(path, &b);
    fwrite(b.data, 1, b.len, out);
    buffer_free(&b);
}

/* Writes keys, roots and a config whose batchers section is `batchers` (NULL: the two
 * stand-ins by address) to fx->dir/<file>, and loads it. */
static config *write_setup(fixture *fx, const char *file, const char *batchers)
{
    char path[4200];
    error err = {{0}};
    snprintf(path, sizeof path, "%s/roots.pem", fx->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    append_file(f, testdata_path("chains/ctgo/fake-ca.cert"));
    append_file(f, testdata_path("rfc6962-vectors/ca-cert.pem"));
    fclose(f);
    const char *keys[] = {"a.key", "b.key"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", fx->dir, keys[i]);
        if (access(path, F_OK) == 0) /* written for an earlier config of this fixture */
            continue;
        EVP_PKEY *k = private_key_generate(KEY_KIND_EC_P256, &err);
        assert_non_null(k);
        if (private_key_store_pem(path, k, &err) != 0)
            fail_msg("%s", err.msg);
        EVP_PKEY_free(k);
    }
    char static_batchers[256];
    if (!batchers) {
        snprintf(static_batchers, sizeof static_batchers, "  addresses: [%s, %s]\n",
                 fx->batchers[0].url, fx->batchers[1].url);
        batchers = static_batchers;
    }
    snprintf(path, sizeof path, "%s/%s", fx->dir, file);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "logs:\n"
            "  - name: wide\n"
            "    submission_prefix: http://127.0.0.1:8080/wide/\n"
            "    key: a.key\n"
            "    roots: roots.pem\n"
            "    not_after_start: 2010-01-01T00:00:00Z\n"
            "    not_after_limit: 2040-01-01T00:00:00Z\n"
            "    storage: file:data/a\n"
            "    lock: file:data/a.lock\n"
            "    sequencer: %s\n"
            "  - name: frozen\n"
            "    submission_prefix: http://127.0.0.1:8080/frozen/\n"
            "    key: b.key\n"
            "    roots: roots.pem\n"
            "    not_after_start: 2010-01-01T00:00:00Z\n"
            "    not_after_limit: 2040-01-01T00:00:00Z\n"
            "    storage: file:data/b\n"
            "    lock: file:data/b.lock\n"
            "    sequencer: %s\n"
            "    status: readonly\n"
            "frontend:\n"
            "  listen: 127.0.0.1:0\n"
            "  workers: 2\n"
            "  max_body_bytes: 65536\n"
            "  submit_timeout_ms: 400\n"
            "batchers:\n"
            "%s",
            fx->sequencers[0].url, fx->sequencers[1].url, batchers);
    fclose(f);
    config *cfg = config_load(path, &err);
    if (!cfg)
        fail_msg("config: %s", err.msg);
    return cfg;
}

static bool wait_ready_at(const char *base, long want)
{
    char url[256];
    snprintf(url, sizeof url, "%s/readyz", base);
    for (int i = 0; i < 100; i++) {
        http_result r;
        http_do("GET", url, NULL, 0, &r);
        long got = r.status;
        http_result_free(&r);
        if (got == want)
            return true;
        sleep_ms(50);
    }
    return false;
}

static bool wait_ready(fixture *fx, long want)
{
    return wait_ready_at(fx->base, want);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "%s", test_tmpdir("frontend_server"));
    for (int i = 0; i < 2; i++) {
        fake_start(&fx->batchers[i], true);
        fake_start(&fx->sequencers[i], false);
    }
    fx->cfg = write_setup(fx, "tegula.yaml", NULL);
    error err = {{0}};
    frontend_options opts = {.health_interval_ms = 50};
    fx->fe = frontend_start(fx->cfg, &opts, &err);
    if (!fx->fe)
        fail_msg("frontend_start: %s", err.msg);
    snprintf(fx->base, sizeof fx->base, "http://127.0.0.1:%u", (unsigned)frontend_port(fx->fe));
    assert_true(wait_ready(fx, 200));
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    frontend_stop(fx->fe);
    for (int i = 0; i < 2; i++) {
        fake_free(&fx->batchers[i]);
        fake_free(&fx->sequencers[i]);
    }
    config_free(fx->cfg);
    free(fx);
    return 0;
}

/* {"chain":[...]} from PEM files. */
static void body_from_pem(buffer *body, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    assert_int_equal(buffer_append_str(body, "{\"chain\":["), 0);
    size_t n = 0;
    for (const char *f = first; f; f = va_arg(ap, const char *)) {
        pem_list list = {0};
        error err = {{0}};
        if (pem_read_certificates_file(testdata_path(f), 0, &list, &err) != 0)
            fail_msg("%s: %s", f, err.msg);
        for (size_t i = 0; i < list.count; i++) {
            if (n++)
                assert_int_equal(buffer_append_byte(body, ','), 0);
            assert_int_equal(buffer_append_byte(body, '"'), 0);
            assert_int_equal(base64_encode(body, list.items[i].data, list.items[i].len), 0);
            assert_int_equal(buffer_append_byte(body, '"'), 0);
        }
        pem_list_free(&list);
    }
    va_end(ap);
    assert_int_equal(buffer_append_str(body, "]}"), 0);
}

static void post(fixture *fx, const char *path, const buffer *body, http_result *r)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", fx->base, path);
    http_do("POST", url, body->data, body->len, r);
}

static void get(fixture *fx, const char *path, http_result *r)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", fx->base, path);
    http_do("GET", url, NULL, 0, r);
}

/* Verifies an SCT answered for `body` on `endpoint` of log 0: LogID, timestamp and index from
 * the stand-in batcher, signature with the log's key over the entry rebuilt independently. */
static void check_sct(fixture *fx, const http_result *r, const buffer *body,
                      x509_endpoint endpoint)
{
    if (r->status != 200)
        fail_msg("status %ld: %s", r->status, (const char *)r->body.data);
    assert_true(has_header(r, "Content-Type: application/json"));
    log_state ls;
    error err = {{0}};
    assert_int_equal(log_state_open(&ls, &fx->cfg->logs[0], &err), 0);
    submission_chain chain;
    submission sub;
    assert_int_equal(submission_parse_body(body->data, body->len, &chain, &err), 0);
    assert_int_equal(submission_build(ls.validator, &chain, endpoint, &sub, &err), 0);

    ct_sct sct;
    buffer storage = {0};
    if (ct_sct_parse_json((const char *)r->body.data, r->body.len, &sct, &storage, &err) != 0)
        fail_msg("SCT JSON: %s", err.msg);
    assert_memory_equal(sct.log_id, log_signer_log_id(ls.signer), 32);
    uint64_t index;
    assert_int_equal(ct_sct_leaf_index(&sct, &index, &err), 0);
    assert_true(index >= 1000);
    assert_int_equal(sct.timestamp, FAKE_TIMESTAMP + index);
    sub.entry.timestamp = sct.timestamp;
    sub.entry.leaf_index = index;
    buffer signed_data = {0};
    assert_int_equal(ct_sct_signed_data(&signed_data, &sct, &sub.entry), 0);
    digitally_signed ds;
    assert_int_equal(digitally_signed_parse(sct.signature, sct.signature_len, &ds, &err), 0);
    if (digitally_signed_verify(log_signer_public_key(ls.signer), signed_data.data,
                                signed_data.len, &ds, &err) != 0)
        fail_msg("SCT signature: %s", err.msg);
    buffer_free(&signed_data);
    buffer_free(&storage);
    submission_free(&sub);
    submission_chain_free(&chain);
    log_state_close(&ls);
}

/* The stand-in that received the last submission. */
static fake_server *receiver(fixture *fx, int before0, int before1)
{
    int d0 = fake_submissions(&fx->batchers[0]) - before0;
    int d1 = fake_submissions(&fx->batchers[1]) - before1;
    assert_int_equal(d0 + d1, 1);
    return d0 ? &fx->batchers[0] : &fx->batchers[1];
}

/* ---- tests ---- */

static void test_add_chain_sct(void **state)
{
    fixture *fx = *state;
    buffer body = {0};
    body_from_pem(&body, "chains/ctgo/leaf00.chain", NULL); /* root omitted */
    int b0 = fake_submissions(&fx->batchers[0]), b1 = fake_submissions(&fx->batchers[1]);
    http_result r1, r2;
    post(fx, "/wide/ct/v1/add-chain", &body, &r1);
    check_sct(fx, &r1, &body, X509_ADD_CHAIN);
    fake_server *f = receiver(fx, b0, b1);

    /* What travelled: the log, the entry, the issuers with the root appended. */
    pthread_mutex_lock(&f->mu);
    const Tegula__SubmitRequest *req = f->last->submit;
    assert_string_equal(req->log, "wide");
    assert_int_equal(req->entry_type, TEGULA__ENTRY_TYPE__ENTRY_X509);
    assert_int_equal(req->dedup_key.len, 32);
    assert_int_equal(req->n_issuers, 2);
    assert_int_equal(req->n_chain_fps, 2);
    buffer root = {0};
    read_file_or_fail(testdata_path("chains/ctgo/fake-ca.cert"), &root);
    pem_list roots = {0};
    assert_int_equal(pem_parse_certificates((const char *)root.data, root.len, 0, &roots, NULL),
                     0);
    assert_int_equal(req->issuers[1].len, roots.items[0].len);
    assert_memory_equal(req->issuers[1].data, roots.items[0].data, roots.items[0].len);
    uint8_t fp[32];
    sha256(roots.items[0].data, roots.items[0].len, fp);
    assert_memory_equal(req->chain_fps[1].data, fp, 32);
    pthread_mutex_unlock(&f->mu);
    pem_list_free(&roots);
    buffer_free(&root);

    /* The same submission again goes to the same batcher and gets the same bytes. */
    b0 = fake_submissions(&fx->batchers[0]);
    b1 = fake_submissions(&fx->batchers[1]);
    post(fx, "/wide/ct/v1/add-chain", &body, &r2);
    assert_int_equal(r2.status, 200);
    assert_ptr_equal(receiver(fx, b0, b1), f);
    assert_int_equal(r1.body.len, r2.body.len);
    assert_memory_equal(r1.body.data, r2.body.data, r1.body.len);
    http_result_free(&r1);
    http_result_free(&r2);
    buffer_free(&body);
}

static void test_add_pre_chain_sct(void **state)
{
    fixture *fx = *state;
    buffer body = {0};
    body_from_pem(&body, "rfc6962-vectors/test-precert.pem", "rfc6962-vectors/ca-cert.pem",
                  NULL);
    int b0 = fake_submissions(&fx->batchers[0]), b1 = fake_submissions(&fx->batchers[1]);
    http_result r;
    post(fx, "/wide/ct/v1/add-pre-chain", &body, &r);
    check_sct(fx, &r, &body, X509_ADD_PRE_CHAIN);
    fake_server *f = receiver(fx, b0, b1);
    pthread_mutex_lock(&f->mu);
    const Tegula__SubmitRequest *req = f->last->submit;
    assert_int_equal(req->entry_type, TEGULA__ENTRY_TYPE__ENTRY_PRECERT);
    assert_int_equal(req->issuer_key_hash.len, 32);
    assert_true(req->precert.len > req->cert_or_tbs.len);
    assert_int_equal(req->n_issuers, 1);
    pthread_mutex_unlock(&f->mu);
    http_result_free(&r);

    /* The precertificate on add-chain: 400 with the validator's reason. */
    post(fx, "/wide/ct/v1/add-chain", &body, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr((const char *)r.body.data, "add-chain received a precertificate"));
    http_result_free(&r);
    buffer_free(&body);
}

static void set_both(fixture *fx, fake_mode mode)
{
    fake_set_mode(&fx->batchers[0], mode);
    fake_set_mode(&fx->batchers[1], mode);
}

static void test_batcher_statuses(void **state)
{
    fixture *fx = *state;
    buffer body = {0};
    body_from_pem(&body, "chains/ctgo/leaf02.chain", NULL);
    struct {
        fake_mode mode;
        long status;
        bool retry_after;
        const char *text;
    } cases[] = {
        {FAKE_OVERLOADED, 503, true, "overloaded"},
        {FAKE_UNAVAILABLE, 503, true, "unavailable"},
        {FAKE_BAD_REQUEST, 400, false, "unknown log"},
        {FAKE_INTERNAL, 500, false, "internal"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_both(fx, cases[i].mode);
        int before = fake_submissions(&fx->batchers[0]) + fake_submissions(&fx->batchers[1]);
        http_result r;
        post(fx, "/wide/ct/v1/add-chain", &body, &r);
        if (r.status != cases[i].status)
            fail_msg("case %zu: status %ld, want %ld", i, r.status, cases[i].status);
        assert_int_equal(has_header(&r, "Retry-After: 1"), cases[i].retry_after);
        assert_non_null(strstr((const char *)r.body.data, cases[i].text));
        /* One request, no failover after an answer. */
        assert_int_equal(fake_submissions(&fx->batchers[0]) +
                             fake_submissions(&fx->batchers[1]),
                         before + 1);
        http_result_free(&r);
    }
    set_both(fx, FAKE_OK);
    buffer_free(&body);
}

static void test_timeout_not_resent(void **state)
{
    fixture *fx = *state;
    set_both(fx, FAKE_SILENT);
    buffer body = {0};
    body_from_pem(&body, "chains/ctgo/leaf03.chain", NULL);
    int before = fake_submissions(&fx->batchers[0]) + fake_submissions(&fx->batchers[1]);
    http_result r;
    post(fx, "/wide/ct/v1/add-chain", &body, &r);
    assert_int_equal(r.status, 503);
    assert_true(has_header(&r, "Retry-After: 1"));
    assert_non_null(strstr((const char *)r.body.data, "did not answer in time"));
    http_result_free(&r);
    /* Past the deadline nothing else arrives: the request was sent exactly once. */
    sleep_ms(300);
    assert_int_equal(fake_submissions(&fx->batchers[0]) + fake_submissions(&fx->batchers[1]),
                     before + 1);
    set_both(fx, FAKE_OK);
    buffer_free(&body);
}

static void test_failover_and_readiness(void **state)
{
    fixture *fx = *state;
    buffer body = {0};
    body_from_pem(&body, "chains/ctgo/leaf05.chain", NULL);
    /* Which batcher the ring prefers for this entry. */
    log_state ls;
    error err = {{0}};
    assert_int_equal(log_state_open(&ls, &fx->cfg->logs[0], &err), 0);
    submission_chain chain;
    submission sub;
    assert_int_equal(submission_parse_body(body.data, body.len, &chain, &err), 0);
    assert_int_equal(submission_build(ls.validator, &chain, X509_ADD_CHAIN, &sub, &err), 0);
    const char *names[] = {fx->batchers[0].url, fx->batchers[1].url};
    ring *rg = ring_new(names, 2, &err);
    assert_non_null(rg);
    int first = ring_pick(rg, sub.dedup_key, 32);
    assert_true(first == 0 || first == 1);
    ring_free(rg);
    submission_free(&sub);
    submission_chain_free(&chain);
    log_state_close(&ls);

    /* With both up, the preferred one takes it. */
    int b0 = fake_submissions(&fx->batchers[0]), b1 = fake_submissions(&fx->batchers[1]);
    http_result r;
    post(fx, "/wide/ct/v1/add-chain", &body, &r);
    assert_int_equal(r.status, 200);
    assert_ptr_equal(receiver(fx, b0, b1), &fx->batchers[first]);
    http_result_free(&r);

    /* The preferred one goes away: the other answers, at once or after the probe. */
    fake_stop(&fx->batchers[first]);
    b0 = fake_submissions(&fx->batchers[0]);
    b1 = fake_submissions(&fx->batchers[1]);
    post(fx, "/wide/ct/v1/add-chain", &body, &r);
    check_sct(fx, &r, &body, X509_ADD_CHAIN);
    assert_ptr_equal(receiver(fx, b0, b1), &fx->batchers[1 - first]);
    http_result_free(&r);
    /* Still ready with one batcher. */
    assert_true(wait_ready(fx, 200));

    /* Both gone: 503 with Retry-After, and /readyz says why. */
    fake_stop(&fx->batchers[1 - first]);
    post(fx, "/wide/ct/v1/add-chain", &body, &r);
    assert_int_equal(r.status, 503);
    assert_true(has_header(&r, "Retry-After: 1"));
    http_result_free(&r);
    assert_true(wait_ready(fx, 503));
    get(fx, "/readyz", &r);
    assert_non_null(strstr((const char *)r.body.data, "no batcher answers"));
    http_result_free(&r);
    buffer_free(&body);
}

static void test_http_errors(void **state)
{
    fixture *fx = *state;
    http_result r;
    buffer body = {0};
    /* Malformed JSON and an oversized body. */
    assert_int_equal(buffer_append_str(&body, "{\"chain\":"), 0);
    post(fx, "/wide/ct/v1/add-chain", &body, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr((const char *)r.body.data, "not valid JSON"));
    assert_true(has_header(&r, "Content-Type: text/plain"));
    http_result_free(&r);
    buffer_reset(&body);
    assert_int_equal(buffer_reserve(&body, 70000), 0);
    memset(body.data, ' ', 70000);
    body.len = 70000;
    post(fx, "/wide/ct/v1/add-chain", &body, &r);
    assert_int_equal(r.status, 413);
    http_result_free(&r);

    /* A read-only log accepts no submissions but still serves its metadata. */
    buffer_reset(&body);
    body_from_pem(&body, "chains/ctgo/leaf02.chain", NULL);
    post(fx, "/frozen/ct/v1/add-chain", &body, &r);
    assert_int_equal(r.status, 410);
    http_result_free(&r);
    get(fx, "/frozen/log.v3.json", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr((const char *)r.body.data, "\"status\": \"readonly\""));
    http_result_free(&r);

    /* 404 and 405, inside and outside a log. */
    get(fx, "/wide/ct/v1/add-chain", &r);
    assert_int_equal(r.status, 405);
    assert_true(has_header(&r, "Allow: POST"));
    http_result_free(&r);
    post(fx, "/wide/ct/v1/get-roots", &body, &r);
    assert_int_equal(r.status, 405);
    assert_true(has_header(&r, "Allow: GET, HEAD"));
    http_result_free(&r);
    post(fx, "/healthz", &body, &r);
    assert_int_equal(r.status, 405);
    http_result_free(&r);
    get(fx, "/wide/ct/v1/get-nothing", &r);
    assert_int_equal(r.status, 404);
    http_result_free(&r);
    get(fx, "/nowhere", &r);
    assert_int_equal(r.status, 404);
    http_result_free(&r);
    get(fx, "/healthz", &r);
    assert_int_equal(r.status, 200);
    http_result_free(&r);

    /* get-roots: both roots of the file, in order. */
    get(fx, "/wide/ct/v1/get-roots", &r);
    assert_int_equal(r.status, 200);
    json_t *doc = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "certificates")), 2);
    json_decref(doc);
    http_result_free(&r);

    /* /metrics counts by log, route and code, and reports the validator cache. */
    get(fx, "/metrics", &r);
    assert_int_equal(r.status, 200);
    const char *m = (const char *)r.body.data;
    assert_non_null(
        strstr(m, "tegula_frontend_requests_total{log=\"wide\",route=\"add-chain\",code=\"400\"}"));
    assert_non_null(strstr(m, "tegula_frontend_requests_total{log=\"frozen\","
                              "route=\"add-chain\",code=\"410\"}"));
    assert_non_null(
        strstr(m, "tegula_frontend_requests_total{log=\"\",route=\"other\",code=\"404\"}"));
    assert_non_null(strstr(m, "tegula_frontend_validator_link_cache_hits{log=\"wide\"}"));
    assert_non_null(strstr(m, "tegula_frontend_request_duration_seconds_bucket{log=\"wide\","
                              "route=\"add-chain\",le=\"0.005\"}"));
    http_result_free(&r);
    buffer_free(&body);
}

/* Many clients at once on keep-alive connections: every answer is a 200 and a given chain
 * always gets the same bytes, whichever worker and RPC thread handled it. */
#define CONCURRENT_THREADS 8
#define CONCURRENT_ROUNDS 12
#define CONCURRENT_BODIES 4

typedef struct concurrent_arg {
    fixture *fx;
    const buffer *bodies;
    int thread;
    buffer answers[CONCURRENT_BODIES];
    int failures;
} concurrent_arg;

static void *concurrent_main(void *p)
{
    concurrent_arg *a = p;
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s/wide/ct/v1/add-chain", a->fx->base);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
    for (int i = 0; i < CONCURRENT_ROUNDS; i++) {
        int which = (i + a->thread) % CONCURRENT_BODIES;
        buffer body = {0};
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, a->bodies[which].data);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->bodies[which].len);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
        long status = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        buffer *seen = &a->answers[which];
        if (status != 200)
            a->failures++;
        else if (seen->len == 0)
            buffer_append(seen, body.data, body.len);
        else if (seen->len != body.len || memcmp(seen->data, body.data, body.len) != 0)
            a->failures++;
        buffer_free(&body);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return NULL;
}

static void test_concurrent_submissions(void **state)
{
    fixture *fx = *state;
    buffer bodies[CONCURRENT_BODIES] = {{0}};
    const char *files[CONCURRENT_BODIES] = {"chains/ctgo/leaf00.chain", "chains/ctgo/leaf01.chain",
                                            "chains/ctgo/leaf02.chain", "chains/ctgo/leaf03.chain"};
    for (int i = 0; i < CONCURRENT_BODIES; i++)
        body_from_pem(&bodies[i], files[i], NULL);
    pthread_t threads[CONCURRENT_THREADS];
    concurrent_arg args[CONCURRENT_THREADS];
    for (int t = 0; t < CONCURRENT_THREADS; t++) {
        memset(&args[t], 0, sizeof args[t]);
        args[t].fx = fx;
        args[t].bodies = bodies;
        args[t].thread = t;
        assert_int_equal(pthread_create(&threads[t], NULL, concurrent_main, &args[t]), 0);
    }
    for (int t = 0; t < CONCURRENT_THREADS; t++)
        pthread_join(threads[t], NULL);
    for (int t = 0; t < CONCURRENT_THREADS; t++) {
        assert_int_equal(args[t].failures, 0);
        for (int b = 0; b < CONCURRENT_BODIES; b++) {
            const buffer *x = &args[t].answers[b], *y = &args[0].answers[b];
            assert_true(x->len > 0);
            assert_int_equal(x->len, y->len);
            assert_memory_equal(x->data, y->data, x->len);
        }
    }
    for (int t = 0; t < CONCURRENT_THREADS; t++)
        for (int b = 0; b < CONCURRENT_BODIES; b++)
            buffer_free(&args[t].answers[b]);
    for (int i = 0; i < CONCURRENT_BODIES; i++)
        buffer_free(&bodies[i]);
}

/* Batchers found by DNS: "localhost:PORT" becomes tcp://127.0.0.1:PORT (re-resolved every
 * 20 ms here while submissions run); a name that does not resolve starts with no batcher. */
static void test_dns_batchers(void **state)
{
    fixture *fx = *state;
    char section[128];
    const char *port = strrchr(fx->batchers[0].url, ':') + 1;
    snprintf(section, sizeof section, "  dns: localhost:%s\n", port);
    config *cfg = write_setup(fx, "dns.yaml", section);
    error err = {{0}};
    frontend_options opts = {.health_interval_ms = 50, .dns_refresh_ms = 20};
    frontend *fe = frontend_start(cfg, &opts, &err);
    if (!fe)
        fail_msg("frontend_start: %s", err.msg);
    char base[128];
    snprintf(base, sizeof base, "http://127.0.0.1:%u", (unsigned)frontend_port(fe));
    assert_true(wait_ready_at(base, 200));
    buffer body = {0};
    body_from_pem(&body, "chains/ctgo/leaf20.chain", NULL);
    char url[256];
    snprintf(url, sizeof url, "%s/wide/ct/v1/add-chain", base);
    for (int i = 0; i < 10; i++) {
        int before = fake_submissions(&fx->batchers[0]);
        http_result r;
        http_do("POST", url, body.data, body.len, &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(fake_submissions(&fx->batchers[0]), before + 1);
        http_result_free(&r);
        sleep_ms(10);
    }
    frontend_stop(fe);
    config_free(cfg);

    cfg = write_setup(fx, "nodns.yaml", "  dns: tegula-no-such-host.invalid:9100\n");
    fe = frontend_start(cfg, &opts, &err);
    if (!fe)
        fail_msg("frontend_start: %s", err.msg);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", (unsigned)frontend_port(fe));
    /* 503 at once ("not probed yet"), then the verdict of the first probe round. */
    http_result r;
    snprintf(url, sizeof url, "%s/readyz", base);
    bool seen = false;
    for (int i = 0; i < 100 && !seen; i++) {
        http_do("GET", url, NULL, 0, &r);
        assert_int_equal(r.status, 503);
        seen = strstr((const char *)r.body.data, "no batcher answers (0 known)") != NULL;
        http_result_free(&r);
        if (!seen)
            sleep_ms(50);
    }
    assert_true(seen);
    snprintf(url, sizeof url, "%s/wide/ct/v1/add-chain", base);
    http_do("POST", url, body.data, body.len, &r);
    assert_int_equal(r.status, 503);
    assert_true(has_header(&r, "Retry-After: 1"));
    http_result_free(&r);
    frontend_stop(fe);
    config_free(cfg);
    buffer_free(&body);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* Order matters: failover stops the stand-in batchers, so it runs last. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_chain_sct),
        cmocka_unit_test(test_add_pre_chain_sct),
        cmocka_unit_test(test_batcher_statuses),
        cmocka_unit_test(test_timeout_not_resent),
        cmocka_unit_test(test_http_errors),
        cmocka_unit_test(test_concurrent_submissions),
        cmocka_unit_test(test_dns_batchers),
        cmocka_unit_test(test_failover_and_readiness),
    };
    int rc = cmocka_run_group_tests_name("frontend_server", tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
