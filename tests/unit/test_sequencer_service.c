/* sequencer service: Batch and Ping over real NNG on 127.0.0.1, with a real log in a temp
 * directory: the reply comes only after the round, carries each entry's index and the
 * round's timestamp, a resent batch gets the same answer, other logs are refused, and Pong
 * reports the published size. */
#include "testutil.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keys.h"
#include "lock.h"
#include "log.h"
#include "note.h"
#include "rpc.h"
#include "sha256.h"
#include "storage.h"

#include "../../sequencer/pool.h"
#include "../../sequencer/recovery.h"
#include "../../sequencer/round.h"
#include "../../sequencer/service.h"

#define ORIGIN "tegula.example/service"

typedef struct fixture {
    EVP_PKEY *key;
    log_signer *signer;
    storage *store;
    lock *lk;
    seq_log *log;
    pool *pool;
    seq_service *service;
    rpc_client *client;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char dir[PATH_MAX], url[PATH_MAX + 32];
    assert_non_null(realpath(test_tmpdir("sequencer_service"), dir));
    error err = {{0}};
    f->key = private_key_generate(KEY_KIND_EC_P256, &err);
    f->signer = log_signer_new(f->key, &err);
    snprintf(url, sizeof url, "file://%s/storage", dir);
    f->store = storage_open(url, &err);
    snprintf(url, sizeof url, "file://%s/lock", dir);
    f->lk = lock_open(url, &err);
    assert_non_null(f->store);
    assert_non_null(f->lk);
    seq_log_config cfg = {.name = "svc", .origin = ORIGIN, .signer = f->signer,
                          .store = f->store, .lock = f->lk};
    f->log = seq_log_new(&cfg, &err);
    assert_int_equal(recovery_run(f->log, true, 1767225600000, &err), 0);
    pool_config pc = {.entry_limit = 1000};
    f->pool = pool_new(&pc);
    seq_service_config sc = {.url = "tcp://127.0.0.1:0", .log_name = "svc", .log = f->log,
                             .pool = f->pool};
    f->service = seq_service_start(&sc, &err);
    if (f->service == NULL)
        fail_msg("%s", err.msg);
    char addr[64];
    snprintf(addr, sizeof addr, "tcp://127.0.0.1:%d", seq_service_port(f->service));
    f->client = rpc_client_open(addr, NULL, &err);
    assert_non_null(f->client);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    rpc_client_close(f->client);
    pool_close(f->pool);
    seq_service_stop(f->service, 1000);
    pool_free(f->pool);
    seq_log_free(f->log);
    lock_close(f->lk);
    storage_close(f->store);
    log_signer_free(f->signer);
    EVP_PKEY_free(f->key);
    free(f);
    return 0;
}

/* An asynchronous call whose outcome the test waits for. */
typedef struct call {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    rpc_status status;
    Tegula__Envelope *reply;
} call;

static void call_done(void *arg, rpc_status status, Tegula__Envelope *reply)
{
    call *c = arg;
    pthread_mutex_lock(&c->mu);
    c->done = true;
    c->status = status;
    c->reply = reply;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void call_init(call *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static bool call_is_done(call *c)
{
    pthread_mutex_lock(&c->mu);
    bool d = c->done;
    pthread_mutex_unlock(&c->mu);
    return d;
}

static void call_wait(call *c)
{
    pthread_mutex_lock(&c->mu);
    while (!c->done)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void call_free(call *c)
{
    rpc_envelope_free(c->reply);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static const char issuer[] = "\x30\x01issuer";

static void send_batch(fixture *f, const char *log, uint64_t seq, size_t n, call *c)
{
    uint8_t fp[32];
    sha256(issuer, sizeof issuer - 1, fp);
    ProtobufCBinaryData fps[1] = {{32, fp}};
    ProtobufCBinaryData issuers[1] = {{sizeof issuer - 1, (uint8_t *)issuer}};
    Tegula__BatchEntry entries[8];
    Tegula__BatchEntry *ptrs[8];
    char certs[8][32];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        tegula__batch_entry__init(&entries[i]);
        snprintf(certs[i], sizeof certs[i], "cert %llu/%zu", (unsigned long long)seq, i);
        entries[i].cert_or_tbs = (ProtobufCBinaryData){strlen(certs[i]), (uint8_t *)certs[i]};
        entries[i].n_chain_fps = 1;
        entries[i].chain_fps = fps;
        ptrs[i] = &entries[i];
    }
    Tegula__Batch b = TEGULA__BATCH__INIT;
    b.log = (char *)log;
    b.batcher_id = "tcp://127.0.0.1:9101";
    b.batch_seq = seq;
    b.n_entries = n;
    b.entries = ptrs;
    b.n_issuers = 1;
    b.issuers = issuers;
    Tegula__Envelope env = TEGULA__ENVELOPE__INIT;
    env.body_case = TEGULA__ENVELOPE__BODY_BATCH;
    env.batch = &b;
    call_init(c);
    assert_int_equal(rpc_call(f->client, &env, 10000, call_done, c), RPC_OK);
}

/* Waits until the pool holds `entries` entries (the batches crossed the network). */
static void wait_pooled(fixture *f, size_t entries)
{
    for (int i = 0; i < 1000; i++) {
        pool_stats st;
        pool_stats_read(f->pool, &st);
        if (st.pooled_entries == entries)
            return;
        usleep(5000);
    }
    fail_msg("the pool never reached %zu entries", entries);
}

static void test_batch_answered_after_round(void **state)
{
    fixture *f = *state;
    call a, b;
    /* Batch 1 is pooled before batch 2 is sent, so their indices come in that order. */
    send_batch(f, "svc", 1, 3, &a);
    wait_pooled(f, 3);
    send_batch(f, "svc", 2, 2, &b);
    wait_pooled(f, 5);
    assert_false(call_is_done(&a)); /* no answer before the round is published */
    round_report rep;
    error err = {{0}};
    assert_int_equal(round_run(f->log, f->pool, 1767225601000, &rep, &err), ROUND_OK);
    call_wait(&a);
    call_wait(&b);
    call *calls[2] = {&a, &b};
    size_t counts[2] = {3, 2};
    uint64_t next_index = 0;
    for (int k = 0; k < 2; k++) {
        call *c = calls[k];
        assert_int_equal(c->status, RPC_OK);
        assert_int_equal(c->reply->body_case, TEGULA__ENVELOPE__BODY_BATCH_REPLY);
        Tegula__BatchReply *r = c->reply->batch_reply;
        assert_int_equal(r->batch_seq, (uint64_t)k + 1);
        assert_int_equal(r->status, TEGULA__STATUS__STATUS_OK);
        assert_int_equal(r->n_results, counts[k]);
        for (size_t i = 0; i < r->n_results; i++) {
            assert_int_equal(r->results[i]->status, TEGULA__STATUS__STATUS_OK);
            assert_int_equal(r->results[i]->timestamp, 1767225601000);
            assert_int_equal(r->results[i]->leaf_index, next_index++);
        }
    }
    /* A resend of batch 1 gets the same results at once. */
    call again;
    send_batch(f, "svc", 1, 3, &again);
    call_wait(&again);
    assert_int_equal(again.status, RPC_OK);
    assert_int_equal(again.reply->batch_reply->n_results, 3);
    assert_int_equal(again.reply->batch_reply->results[2]->leaf_index, 2);
    call_free(&a);
    call_free(&b);
    call_free(&again);

    /* Pong carries the published size. */
    Tegula__Ping ping = TEGULA__PING__INIT;
    ping.from = "test";
    Tegula__Envelope env = TEGULA__ENVELOPE__INIT;
    env.body_case = TEGULA__ENVELOPE__BODY_PING;
    env.ping = &ping;
    Tegula__Envelope *reply = NULL;
    assert_int_equal(rpc_call_sync(f->client, &env, 5000, &reply), RPC_OK);
    assert_int_equal(reply->body_case, TEGULA__ENVELOPE__BODY_PONG);
    assert_string_equal(reply->pong->role, "sequencer");
    assert_string_equal(reply->pong->log, "svc");
    assert_int_equal(reply->pong->tree_size, 5);
    assert_true(reply->pong->ready);
    rpc_envelope_free(reply);
}

static void test_other_log_refused(void **state)
{
    fixture *f = *state;
    call c;
    send_batch(f, "another-log", 9, 2, &c);
    call_wait(&c);
    assert_int_equal(c.status, RPC_OK);
    Tegula__BatchReply *r = c.reply->batch_reply;
    assert_int_equal(r->status, TEGULA__STATUS__STATUS_BAD_REQUEST);
    assert_int_equal(r->batch_seq, 9);
    assert_non_null(strstr(r->message, "another log"));
    call_free(&c);
    pool_stats st;
    pool_stats_read(f->pool, &st);
    assert_int_equal(st.pooled_entries, 0);
    /* A request the sequencer does not serve gets an empty envelope. */
    Tegula__SubmitRequest sr = TEGULA__SUBMIT_REQUEST__INIT;
    Tegula__Envelope env = TEGULA__ENVELOPE__INIT;
    env.body_case = TEGULA__ENVELOPE__BODY_SUBMIT;
    env.submit = &sr;
    Tegula__Envelope *reply = NULL;
    assert_int_equal(rpc_call_sync(f->client, &env, 5000, &reply), RPC_PROTOCOL);
    assert_null(reply);
}

static void test_closed_pool_unavailable(void **state)
{
    fixture *f = *state;
    call c;
    send_batch(f, "svc", 5, 1, &c);
    wait_pooled(f, 1);
    pool_close(f->pool);
    /* Batches arriving after the close are refused at once; pooled ones get their round. */
    call late;
    send_batch(f, "svc", 6, 2, &late);
    call_wait(&late);
    assert_int_equal(late.reply->batch_reply->results[0]->status,
                     TEGULA__STATUS__STATUS_UNAVAILABLE);
    round_report rep;
    error err = {{0}};
    assert_int_equal(round_run(f->log, f->pool, 1767225602000, &rep, &err), ROUND_OK);
    call_wait(&c);
    assert_int_equal(c.reply->batch_reply->results[0]->status, TEGULA__STATUS__STATUS_OK);
    call_free(&c);
    call_free(&late);
}

int main(void)
{
    log_init("test", LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_answered_after_round, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_log_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_pool_unavailable, setup, teardown),
    };
    return cmocka_run_group_tests_name("sequencer_service", tests, NULL, NULL);
}
