/* sequencer pool on its own: entry validation, (batcher_id, batch_seq) idempotency in every
 * state, expiry of remembered results, entry and byte bounds, close and free. */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "sha256.h"

#include "../../sequencer/pool.h"

typedef struct replies {
    int calls;
    pool_result results[64];
    size_t count;
} replies;

static void on_reply(void *ctx, uint64_t seq, const pool_result *res, size_t n)
{
    (void)seq;
    replies *r = ctx;
    r->calls++;
    assert_true(n <= 64);
    memcpy(r->results, res, n * sizeof *res);
    r->count = n;
}

static int releases;
static void on_release(void *ctx)
{
    (void)ctx;
    releases++;
}

static const char issuer[] = "issuer DER";
static uint8_t issuer_fp[32];
static uint8_t ikh[32];
static uint8_t cert_bytes[4096];

/* A batch held in static-lifetime memory owned by the test. */
typedef struct test_batch {
    Tegula__Batch b;
    Tegula__BatchEntry entries[16];
    Tegula__BatchEntry *ptrs[16];
    ProtobufCBinaryData fps[16][2];
    ProtobufCBinaryData issuers[1];
} test_batch;

static void batch_init(test_batch *t, const char *id, uint64_t seq, size_t n, size_t cert_len)
{
    sha256(issuer, sizeof issuer - 1, issuer_fp);
    memset(t, 0, sizeof *t);
    tegula__batch__init(&t->b);
    t->b.log = "l";
    t->b.batcher_id = (char *)id;
    t->b.batch_seq = seq;
    t->issuers[0] = (ProtobufCBinaryData){sizeof issuer - 1, (uint8_t *)issuer};
    t->b.issuers = t->issuers;
    t->b.n_issuers = 1;
    for (size_t i = 0; i < n; i++) {
        Tegula__BatchEntry *e = &t->entries[i];
        tegula__batch_entry__init(e);
        e->cert_or_tbs = (ProtobufCBinaryData){cert_len, cert_bytes};
        t->fps[i][0] = (ProtobufCBinaryData){32, issuer_fp};
        e->chain_fps = t->fps[i];
        e->n_chain_fps = 1;
        t->ptrs[i] = e;
    }
    t->b.entries = t->ptrs;
    t->b.n_entries = n;
}

static void add(pool *p, test_batch *t, replies *r)
{
    pool_request req = {.batch = &t->b, .release = on_release, .release_ctx = t,
                        .reply = on_reply, .reply_ctx = r};
    pool_add(p, &req);
}

/* take → finish OK from first_index → answer; returns the number of entries taken. */
static size_t run_round(pool *p, uint64_t first, uint64_t ts)
{
    pool_round r = {0};
    error err = {{0}};
    assert_int_equal(pool_take(p, &r, &err), 0);
    size_t n = r.count;
    pool_round_finish(&r, TEGULA__STATUS__STATUS_OK, first, ts);
    pool_answer(p, &r);
    pool_round_free(&r);
    return n;
}

static void test_validation(void **state)
{
    (void)state;
    pool_config pc = {.entry_limit = 100};
    pool *p = pool_new(&pc);
    test_batch t;
    batch_init(&t, "b", 1, 9, 100);
    /* 0 ok; 1 unknown type; 2 empty cert; 3 precert without key hash; 4 precert ok;
     * 5 x509 with a key hash; 6 fingerprint not carried; 7 no fingerprints; 8 short fp. */
    t.entries[1].entry_type = 7;
    t.entries[2].cert_or_tbs.len = 0;
    t.entries[3].entry_type = TEGULA__ENTRY_TYPE__ENTRY_PRECERT;
    t.entries[3].precert = (ProtobufCBinaryData){10, cert_bytes};
    t.entries[4].entry_type = TEGULA__ENTRY_TYPE__ENTRY_PRECERT;
    t.entries[4].precert = (ProtobufCBinaryData){10, cert_bytes};
    t.entries[4].issuer_key_hash = (ProtobufCBinaryData){32, ikh};
    t.entries[5].issuer_key_hash = (ProtobufCBinaryData){32, ikh};
    static uint8_t other_fp[32] = {1};
    t.fps[6][0].data = other_fp;
    t.entries[7].n_chain_fps = 0;
    t.fps[8][0].len = 31;
    replies r = {0};
    releases = 0;
    add(p, &t, &r);
    assert_int_equal(r.calls, 0);
    pool_round round = {0};
    error err = {{0}};
    assert_int_equal(pool_take(p, &round, &err), 0);
    assert_int_equal(round.count, 2);
    assert_int_equal(round.entries[1].entry_type, CT_ENTRY_PRECERT);
    assert_int_equal(round.entries[1].pre_certificate_len, 10);
    assert_int_equal(round.entries[0].fingerprint_count, 1);
    assert_memory_equal(round.entries[0].fingerprints, issuer_fp, 32);
    assert_int_equal(round.issuer_count, 1);
    assert_memory_equal(round.issuers[0].fingerprint, issuer_fp, 32);
    pool_round_finish(&round, TEGULA__STATUS__STATUS_OK, 40, 123);
    pool_answer(p, &round);
    pool_round_free(&round);
    assert_int_equal(r.calls, 1);
    assert_int_equal(releases, 1);
    assert_int_equal(r.count, 9);
    const uint8_t want[9] = {0, 3, 3, 3, 0, 3, 3, 3, 3};
    for (size_t i = 0; i < 9; i++)
        assert_int_equal(r.results[i].status, want[i]);
    assert_int_equal(r.results[0].leaf_index, 40);
    assert_int_equal(r.results[4].leaf_index, 41);
    assert_int_equal(r.results[4].timestamp, 123);
    pool_stats st;
    pool_stats_read(p, &st);
    assert_int_equal(st.rejected_entries, 7);

    /* A batch without an id is refused whole, at once. */
    test_batch anon;
    batch_init(&anon, "", 2, 2, 10);
    replies ra = {0};
    add(p, &anon, &ra);
    assert_int_equal(ra.calls, 1);
    assert_int_equal(ra.results[1].status, TEGULA__STATUS__STATUS_BAD_REQUEST);
    assert_int_equal(releases, 2);
    pool_free(p);
}

static void test_dedup_in_every_state(void **state)
{
    (void)state;
    pool_config pc = {.entry_limit = 100, .keep_rounds = 2};
    pool *p = pool_new(&pc);
    test_batch a, a_again, a_during, a_after, other_id;
    batch_init(&a, "b1", 5, 3, 10);
    batch_init(&a_again, "b1", 5, 3, 10);
    batch_init(&a_during, "b1", 5, 3, 10);
    batch_init(&a_after, "b1", 5, 3, 10);
    batch_init(&other_id, "b2", 5, 1, 10);
    replies r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0}, r5 = {0};
    releases = 0;
    add(p, &a, &r1);
    add(p, &a_again, &r2);     /* pooled: joins */
    add(p, &other_id, &r5);    /* same seq, other batcher: separate */
    assert_int_equal(releases, 1); /* the duplicate's memory is released at once */
    pool_round round = {0};
    error err = {{0}};
    assert_int_equal(pool_take(p, &round, &err), 0);
    assert_int_equal(round.count, 4);
    add(p, &a_during, &r3);    /* being sequenced: joins too */
    assert_int_equal(r3.calls, 0);
    pool_round_finish(&round, TEGULA__STATUS__STATUS_OK, 0, 77);
    pool_answer(p, &round);
    pool_round_free(&round);
    replies *all[3] = {&r1, &r2, &r3};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(all[k]->calls, 1);
        assert_int_equal(all[k]->count, 3);
        for (size_t i = 0; i < 3; i++) {
            assert_int_equal(all[k]->results[i].status, TEGULA__STATUS__STATUS_OK);
            assert_int_equal(all[k]->results[i].leaf_index, i);
        }
    }
    assert_int_equal(r5.results[0].leaf_index, 3);
    add(p, &a_after, &r4);     /* answered: same results at once */
    assert_int_equal(r4.calls, 1);
    assert_memory_equal(r4.results, r1.results, 3 * sizeof r1.results[0]);
    pool_stats st;
    pool_stats_read(p, &st);
    assert_int_equal(st.duplicate_batches, 3);
    assert_int_equal(st.remembered_batches, 2);

    /* Remembered results expire keep_rounds rounds later: then the batch is new again. */
    assert_int_equal(run_round(p, 4, 78), 0);
    pool_stats_read(p, &st);
    assert_int_equal(st.remembered_batches, 2);
    assert_int_equal(run_round(p, 4, 78), 0);
    pool_stats_read(p, &st);
    assert_int_equal(st.remembered_batches, 0);
    replies r6 = {0};
    add(p, &a_after, &r6);
    assert_int_equal(r6.calls, 0);
    assert_int_equal(run_round(p, 4, 79), 3);
    assert_int_equal(r6.results[0].leaf_index, 4);
    assert_int_equal(releases, 6); /* every request released exactly once */
    pool_free(p);
}

static void test_bounds(void **state)
{
    (void)state;
    /* Entry bound: admitted in order, the rest OVERLOADED, per entry. */
    pool_config pc = {.entry_limit = 5};
    pool *p = pool_new(&pc);
    test_batch a, b;
    batch_init(&a, "b", 1, 3, 10);
    batch_init(&b, "b", 2, 4, 10);
    replies ra = {0}, rb = {0};
    add(p, &a, &ra);
    add(p, &b, &rb);
    pool_stats st;
    pool_stats_read(p, &st);
    assert_int_equal(st.pooled_entries, 5);
    assert_int_equal(st.overloaded_entries, 2);
    assert_int_equal(run_round(p, 0, 1), 5);
    assert_int_equal(rb.results[1].status, TEGULA__STATUS__STATUS_OK);
    assert_int_equal(rb.results[2].status, TEGULA__STATUS__STATUS_OVERLOADED);
    assert_int_equal(rb.results[3].status, TEGULA__STATUS__STATUS_OVERLOADED);
    pool_free(p);

    /* Byte bound. */
    pool_config pb = {.entry_limit = 1000, .byte_limit = 3 * 4096};
    p = pool_new(&pb);
    test_batch c;
    batch_init(&c, "b", 3, 5, 3000);
    replies rc = {0};
    add(p, &c, &rc);
    pool_stats_read(p, &st);
    assert_int_equal(st.pooled_entries, 3);
    assert_true(st.pooled_bytes <= 3 * 4096);
    assert_int_equal(run_round(p, 0, 1), 3);
    assert_int_equal(rc.results[2].status, TEGULA__STATUS__STATUS_OK);
    assert_int_equal(rc.results[3].status, TEGULA__STATUS__STATUS_OVERLOADED);
    pool_free(p);
}

static void test_close_and_free(void **state)
{
    (void)state;
    pool_config pc = {.entry_limit = 100};
    pool *p = pool_new(&pc);
    test_batch a, b;
    batch_init(&a, "b", 1, 2, 10);
    batch_init(&b, "b", 2, 2, 10);
    replies ra = {0}, rb = {0};
    releases = 0;
    add(p, &a, &ra);
    pool_close(p);
    add(p, &b, &rb);
    assert_int_equal(rb.calls, 1);
    assert_int_equal(rb.results[0].status, TEGULA__STATUS__STATUS_UNAVAILABLE);
    assert_int_equal(ra.calls, 0);
    pool_free(p); /* still pooled: UNAVAILABLE */
    assert_int_equal(ra.calls, 1);
    assert_int_equal(ra.results[1].status, TEGULA__STATUS__STATUS_UNAVAILABLE);
    assert_int_equal(releases, 2);
}

/* Threads adding batches (a third of them resends) while rounds run: every request gets
 * exactly one reply, a resend gets its original's results, and no index is handed out twice. */
#define STRESS_THREADS 4
#define STRESS_BATCHES 150

typedef struct stress_req {
    test_batch batch;
    replies reply;
    uint64_t seq;
} stress_req;

typedef struct stress_thread {
    pool *p;
    int id;
    stress_req *reqs;
} stress_thread;

static pthread_mutex_t stress_mu = PTHREAD_MUTEX_INITIALIZER;
static int stress_replies;

static void stress_on_reply(void *ctx, uint64_t seq, const pool_result *res, size_t n)
{
    pthread_mutex_lock(&stress_mu);
    on_reply(ctx, seq, res, n);
    stress_replies++;
    pthread_mutex_unlock(&stress_mu);
}

static void *stress_main(void *arg)
{
    stress_thread *t = arg;
    char id[16];
    snprintf(id, sizeof id, "b%d", t->id);
    for (int i = 0; i < STRESS_BATCHES; i++) {
        stress_req *r = &t->reqs[i];
        /* Every third request resends the batch two before it. */
        r->seq = (i % 3 == 2) ? t->reqs[i - 2].seq : (uint64_t)i;
        batch_init(&r->batch, id, r->seq, 1 + (size_t)(i % 4), 10);
        r->batch.b.batcher_id = strdup(id);
        pool_request req = {.batch = &r->batch.b, .reply = stress_on_reply, .reply_ctx = &r->reply};
        pool_add(t->p, &req);
        if (i % 16 == 0)
            usleep(100);
    }
    return NULL;
}

static void test_concurrent_adds_and_rounds(void **state)
{
    (void)state;
    pool_config pc = {.entry_limit = 100000, .keep_rounds = 1000};
    pool *p = pool_new(&pc);
    stress_thread threads[STRESS_THREADS];
    pthread_t tids[STRESS_THREADS];
    stress_replies = 0;
    for (int i = 0; i < STRESS_THREADS; i++) {
        threads[i] = (stress_thread){p, i, calloc(STRESS_BATCHES, sizeof(stress_req))};
        assert_int_equal(pthread_create(&tids[i], NULL, stress_main, &threads[i]), 0);
    }
    uint64_t next_index = 0;
    int total = STRESS_THREADS * STRESS_BATCHES;
    for (int rounds = 0; rounds < 100000; rounds++) {
        next_index += run_round(p, next_index, (uint64_t)rounds + 1);
        pthread_mutex_lock(&stress_mu);
        int done = stress_replies;
        pthread_mutex_unlock(&stress_mu);
        if (done == total)
            break;
        usleep(200);
    }
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_join(tids[i], NULL);
    assert_int_equal(stress_replies, total);
    uint8_t *seen = calloc(next_index ? next_index : 1, 1);
    size_t distinct_entries = 0;
    for (int t = 0; t < STRESS_THREADS; t++) {
        for (int i = 0; i < STRESS_BATCHES; i++) {
            stress_req *r = &threads[t].reqs[i];
            assert_int_equal(r->reply.calls, 1);
            if (i % 3 == 2) {
                replies *orig = &threads[t].reqs[i - 2].reply;
                assert_int_equal(r->reply.count, orig->count);
                assert_memory_equal(r->reply.results, orig->results,
                                    orig->count * sizeof orig->results[0]);
                continue;
            }
            assert_int_equal(r->reply.count, 1 + (size_t)(i % 4));
            for (size_t k = 0; k < r->reply.count; k++) {
                assert_int_equal(r->reply.results[k].status, TEGULA__STATUS__STATUS_OK);
                uint64_t idx = r->reply.results[k].leaf_index;
                assert_true(idx < next_index);
                assert_int_equal(seen[idx], 0);
                seen[idx] = 1;
                distinct_entries++;
            }
        }
    }
    assert_int_equal(distinct_entries, next_index);
    free(seen);
    for (int t = 0; t < STRESS_THREADS; t++) {
        for (int i = 0; i < STRESS_BATCHES; i++)
            free(threads[t].reqs[i].batch.b.batcher_id);
        free(threads[t].reqs);
    }
    pool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_dedup_in_every_state),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_close_and_free),
        cmocka_unit_test(test_concurrent_adds_and_rounds),
    };
    return cmocka_run_group_tests_name("sequencer_pool", tests, NULL, NULL);
}
