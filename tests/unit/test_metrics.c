/* metrics: exact exposition text, escaping, registration rules, and exact totals under
 * concurrent updates. */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"

static void render_equals(metrics_registry *r, const char *want)
{
    buffer out = {0};
    assert_int_equal(metrics_render(r, &out), 0);
    assert_int_equal(buffer_terminate(&out), 0);
    assert_string_equal((const char *)out.data, want);
    buffer_free(&out);
}

static void test_render_small_registry(void **state)
{
    (void)state;
    error err = {{0}};
    metrics_registry *r = metrics_registry_new();
    assert_non_null(r);
    metrics_label ok[] = {{"log", "2026h1"}, {"code", "200"}};
    metrics_label bad[] = {{"log", "2026h1"}, {"code", "400"}};
    metrics_counter *requests =
        metrics_counter_register(r, "tegula_http_requests_total", "HTTP requests served.", ok,
                                 2, &err);
    metrics_counter *requests_bad =
        metrics_counter_register(r, "tegula_http_requests_total", "HTTP requests served.", bad,
                                 2, &err);
    metrics_gauge *pool =
        metrics_gauge_register(r, "tegula_pool_entries", "Entries waiting.", NULL, 0, &err);
    static const double bounds[] = {0.1, 1, 2.5};
    metrics_label log[] = {{"log", "2026h1"}};
    metrics_histogram *latency = metrics_histogram_register(
        r, "tegula_round_seconds", "Round duration.", log, 1, bounds, 3, &err);
    metrics_counter *plain = metrics_counter_register(r, "tegula_up", "", NULL, 0, &err);
    assert_non_null(requests);
    assert_non_null(requests_bad);
    assert_non_null(pool);
    assert_non_null(latency);
    assert_non_null(plain);

    metrics_counter_add(requests, 41);
    metrics_counter_inc(requests);
    metrics_counter_inc(requests_bad);
    metrics_gauge_set(pool, 12);
    metrics_gauge_add(pool, -2.5);
    metrics_histogram_observe(latency, 0.05);
    metrics_histogram_observe(latency, 0.1); /* on the bound: le is inclusive */
    metrics_histogram_observe(latency, 2);
    metrics_histogram_observe(latency, 7.25);
    metrics_counter_inc(plain);

    assert_int_equal(metrics_counter_value(requests), 42);
    assert_true(metrics_gauge_value(pool) == 9.5);
    assert_int_equal(metrics_histogram_count(latency), 4);
    assert_true(metrics_histogram_sum(latency) == 0.05 + 0.1 + 2 + 7.25);

    render_equals(r, "# HELP tegula_http_requests_total HTTP requests served.\n"
                     "# TYPE tegula_http_requests_total counter\n"
                     "tegula_http_requests_total{log=\"2026h1\",code=\"200\"} 42\n"
                     "tegula_http_requests_total{log=\"2026h1\",code=\"400\"} 1\n"
                     "# HELP tegula_pool_entries Entries waiting.\n"
                     "# TYPE tegula_pool_entries gauge\n"
                     "tegula_pool_entries 9.5\n"
                     "# HELP tegula_round_seconds Round duration.\n"
                     "# TYPE tegula_round_seconds histogram\n"
                     "tegula_round_seconds_bucket{log=\"2026h1\",le=\"0.1\"} 2\n"
                     "tegula_round_seconds_bucket{log=\"2026h1\",le=\"1\"} 2\n"
                     "tegula_round_seconds_bucket{log=\"2026h1\",le=\"2.5\"} 3\n"
                     "tegula_round_seconds_bucket{log=\"2026h1\",le=\"+Inf\"} 4\n"
                     "tegula_round_seconds_sum{log=\"2026h1\"} 9.4\n"
                     "tegula_round_seconds_count{log=\"2026h1\"} 4\n"
                     "# HELP tegula_up \n"
                     "# TYPE tegula_up counter\n"
                     "tegula_up 1\n");
    metrics_registry_free(r);
}

static void test_histogram_without_labels_and_default_buckets(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new();
    metrics_histogram *h = metrics_histogram_register(
        r, "lat", "Latency.", NULL, 0, metrics_latency_buckets, metrics_latency_bucket_count,
        NULL);
    assert_non_null(h);
    metrics_histogram_observe(h, 0.003);
    metrics_histogram_observe(h, 100);
    metrics_histogram_observe(h, NAN); /* lands in +Inf; the sum becomes NaN */
    metrics_gauge *g = metrics_gauge_register(r, "g", "G.", NULL, 0, NULL);
    metrics_gauge_set(g, -INFINITY);
    render_equals(r, "# HELP lat Latency.\n"
                     "# TYPE lat histogram\n"
                     "lat_bucket{le=\"0.005\"} 1\n"
                     "lat_bucket{le=\"0.01\"} 1\n"
                     "lat_bucket{le=\"0.025\"} 1\n"
                     "lat_bucket{le=\"0.05\"} 1\n"
                     "lat_bucket{le=\"0.1\"} 1\n"
                     "lat_bucket{le=\"0.25\"} 1\n"
                     "lat_bucket{le=\"0.5\"} 1\n"
                     "lat_bucket{le=\"1\"} 1\n"
                     "lat_bucket{le=\"2.5\"} 1\n"
                     "lat_bucket{le=\"5\"} 1\n"
                     "lat_bucket{le=\"10\"} 1\n"
                     "lat_bucket{le=\"+Inf\"} 3\n"
                     "lat_sum NaN\n"
                     "lat_count 3\n"
                     "# HELP g G.\n"
                     "# TYPE g gauge\n"
                     "g -Inf\n");
    metrics_registry_free(r);
}

static void test_number_formatting(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new();
    static const double values[] = {0, -0.5, 1e21, 1e20, 1e-5, 0.0001, 123456789.125, 0.1 + 0.2};
    metrics_gauge *g[8];
    for (int i = 0; i < 8; i++) {
        char value[8];
        snprintf(value, sizeof value, "%d", i);
        metrics_label label[] = {{"i", value}};
        g[i] = metrics_gauge_register(r, "v", "Values.", label, 1, NULL);
        metrics_gauge_set(g[i], values[i]);
    }
    render_equals(r, "# HELP v Values.\n"
                     "# TYPE v gauge\n"
                     "v{i=\"0\"} 0\n"
                     "v{i=\"1\"} -0.5\n"
                     "v{i=\"2\"} 1e+21\n"
                     "v{i=\"3\"} 100000000000000000000\n"
                     "v{i=\"4\"} 1e-05\n"
                     "v{i=\"5\"} 0.0001\n"
                     "v{i=\"6\"} 123456789.125\n"
                     "v{i=\"7\"} 0.30000000000000004\n");
    metrics_registry_free(r);
}

static void test_label_and_help_escaping(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new();
    metrics_label labels[] = {{"path", "a\"b\\c\nd"}, {"empty", ""}};
    metrics_counter *c =
        metrics_counter_register(r, "x_total", "Line one\nback\\slash \"quoted\"", labels, 2,
                                 NULL);
    assert_non_null(c);
    metrics_counter_add(c, 18446744073709551615ULL);
    render_equals(r, "# HELP x_total Line one\\nback\\\\slash \"quoted\"\n"
                     "# TYPE x_total counter\n"
                     "x_total{path=\"a\\\"b\\\\c\\nd\",empty=\"\"} 18446744073709551615\n");
    metrics_registry_free(r);
}

static void test_registration_rules(void **state)
{
    (void)state;
    error err = {{0}};
    metrics_registry *r = metrics_registry_new();
    metrics_label a[] = {{"log", "a"}};
    metrics_label b[] = {{"log", "b"}};
    metrics_label other[] = {{"shard", "a"}};
    metrics_counter *c1 = metrics_counter_register(r, "c_total", "C.", a, 1, &err);
    assert_non_null(c1);
    /* The same series again is the same handle; another value is another series. */
    assert_ptr_equal(metrics_counter_register(r, "c_total", "C.", a, 1, &err), c1);
    metrics_counter *c2 = metrics_counter_register(r, "c_total", "C.", b, 1, &err);
    assert_non_null(c2);
    assert_ptr_not_equal(c1, c2);

    assert_null(metrics_gauge_register(r, "c_total", "C.", a, 1, &err));
    assert_string_equal(err.msg, "metric c_total is already registered as a counter");
    assert_null(metrics_counter_register(r, "c_total", "Other.", a, 1, &err));
    assert_string_equal(err.msg, "metric c_total is already registered with other help text");
    assert_null(metrics_counter_register(r, "c_total", "C.", other, 1, &err));
    assert_string_equal(err.msg, "metric c_total is already registered with other label names");
    assert_null(metrics_counter_register(r, "c_total", "C.", NULL, 0, &err));
    assert_string_equal(err.msg, "metric c_total is already registered with other label names");

    assert_null(metrics_counter_register(r, "9lives", "", NULL, 0, &err));
    assert_string_equal(err.msg, "invalid metric name \"9lives\"");
    assert_null(metrics_counter_register(r, "a-b", "", NULL, 0, &err));
    assert_null(metrics_counter_register(r, "", "", NULL, 0, &err));
    assert_non_null(metrics_counter_register(r, "ns:sub_total9", "", NULL, 0, &err));
    metrics_label reserved[] = {{"__name", "x"}};
    assert_null(metrics_counter_register(r, "d", "", reserved, 1, &err));
    assert_string_equal(err.msg, "metric d: invalid label name \"__name\"");
    metrics_label twice[] = {{"x", "1"}, {"x", "2"}};
    assert_null(metrics_counter_register(r, "d", "", twice, 2, &err));
    assert_string_equal(err.msg, "metric d: label x given twice");
    metrics_label no_value[] = {{"x", NULL}};
    assert_null(metrics_counter_register(r, "d", "", no_value, 1, &err));
    assert_string_equal(err.msg, "metric d: label x has no value");

    static const double good[] = {1, 2}, unsorted[] = {2, 1}, infinite[] = {1, INFINITY};
    metrics_label le[] = {{"le", "1"}};
    assert_null(metrics_histogram_register(r, "h", "", le, 1, good, 2, &err));
    assert_string_equal(err.msg, "metric h: label \"le\" is reserved for histogram buckets");
    assert_null(metrics_histogram_register(r, "h", "", NULL, 0, unsorted, 2, &err));
    assert_string_equal(err.msg, "metric h: bucket bounds must increase strictly");
    assert_null(metrics_histogram_register(r, "h", "", NULL, 0, infinite, 2, &err));
    assert_string_equal(err.msg, "metric h: bucket bounds must be finite");
    assert_null(metrics_histogram_register(r, "h", "", NULL, 0, good, 0, &err));
    assert_string_equal(err.msg, "metric h: needs 1 to 64 bucket bounds");
    metrics_histogram *h = metrics_histogram_register(r, "h", "", a, 1, good, 2, &err);
    assert_non_null(h);
    assert_null(metrics_histogram_register(r, "h", "", b, 1, good, 1, &err));
    assert_string_equal(err.msg, "metric h is already registered with other buckets");
    assert_ptr_equal(metrics_histogram_register(r, "h", "", a, 1, good, 2, &err), h);
    metrics_registry_free(r);
}

static void test_null_handles_are_ignored(void **state)
{
    (void)state;
    metrics_counter_inc(NULL);
    metrics_counter_add(NULL, 5);
    metrics_gauge_set(NULL, 1);
    metrics_gauge_add(NULL, 1);
    metrics_histogram_observe(NULL, 1);
    assert_int_equal(metrics_counter_value(NULL), 0);
    assert_true(metrics_gauge_value(NULL) == 0);
    assert_int_equal(metrics_histogram_count(NULL), 0);
    metrics_registry_free(NULL);
}

#define THREADS 4
#define ITERATIONS 100000

typedef struct worker_args {
    metrics_registry *r;
    metrics_counter *shared;
    metrics_gauge *gauge;
    metrics_histogram *hist;
    int id;
    buffer scrape;
} worker_args;

static void *worker(void *arg)
{
    worker_args *a = arg;
    /* Registering concurrently with updates and scrapes must be safe too. */
    char name[32];
    snprintf(name, sizeof name, "worker_%d_total", a->id);
    metrics_counter *own = metrics_counter_register(a->r, name, "Per worker.", NULL, 0, NULL);
    metrics_label shared_label[] = {{"kind", "shared"}};
    metrics_counter *again =
        metrics_counter_register(a->r, "shared_total", "Shared.", shared_label, 1, NULL);
    for (int i = 0; i < ITERATIONS; i++) {
        metrics_counter_inc(a->shared);
        metrics_counter_inc(again);
        metrics_counter_inc(own);
        metrics_gauge_add(a->gauge, 1.0);
        metrics_histogram_observe(a->hist, (double)(i % 4));
        if (i % 25000 == 0) {
            buffer_reset(&a->scrape);
            if (metrics_render(a->r, &a->scrape) != 0)
                return (void *)1;
        }
    }
    return NULL;
}

static void test_concurrent_updates_are_exact(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new();
    metrics_label shared_label[] = {{"kind", "shared"}};
    static const double bounds[] = {0, 1, 2};
    worker_args args[THREADS];
    pthread_t threads[THREADS];
    metrics_counter *shared =
        metrics_counter_register(r, "shared_total", "Shared.", shared_label, 1, NULL);
    metrics_gauge *gauge = metrics_gauge_register(r, "level", "Level.", NULL, 0, NULL);
    metrics_histogram *hist = metrics_histogram_register(r, "obs", "Obs.", NULL, 0, bounds, 3, NULL);
    for (int t = 0; t < THREADS; t++) {
        args[t] = (worker_args){.r = r, .shared = shared, .gauge = gauge, .hist = hist, .id = t};
        assert_int_equal(pthread_create(&threads[t], NULL, worker, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        void *result;
        assert_int_equal(pthread_join(threads[t], &result), 0);
        assert_null(result);
        buffer_free(&args[t].scrape);
    }
    /* Each worker incremented the shared series twice per iteration (handle and re-registered
     * handle are the same series). */
    assert_int_equal(metrics_counter_value(shared), 2 * THREADS * ITERATIONS);
    assert_true(metrics_gauge_value(gauge) == THREADS * ITERATIONS);
    assert_int_equal(metrics_histogram_count(hist), THREADS * ITERATIONS);
    assert_true(metrics_histogram_sum(hist) == THREADS * (ITERATIONS / 4) * (0 + 1 + 2 + 3));

    buffer out = {0};
    assert_int_equal(metrics_render(r, &out), 0);
    assert_int_equal(buffer_terminate(&out), 0);
    const char *text = (const char *)out.data;
    assert_non_null(strstr(text, "shared_total{kind=\"shared\"} 800000\n"));
    assert_non_null(strstr(text, "level 400000\n"));
    assert_non_null(strstr(text, "obs_bucket{le=\"0\"} 100000\n"
                                 "obs_bucket{le=\"1\"} 200000\n"
                                 "obs_bucket{le=\"2\"} 300000\n"
                                 "obs_bucket{le=\"+Inf\"} 400000\n"
                                 "obs_sum 600000\n"
                                 "obs_count 400000\n"));
    for (int t = 0; t < THREADS; t++) {
        char line[64];
        snprintf(line, sizeof line, "worker_%d_total 100000\n", t);
        assert_non_null(strstr(text, line));
    }
    buffer_free(&out);
    metrics_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_small_registry),
        cmocka_unit_test(test_histogram_without_labels_and_default_buckets),
        cmocka_unit_test(test_number_formatting),
        cmocka_unit_test(test_label_and_help_escaping),
        cmocka_unit_test(test_registration_rules),
        cmocka_unit_test(test_null_handles_are_ignored),
        cmocka_unit_test(test_concurrent_updates_are_exact),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
