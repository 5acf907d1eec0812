/* lock: create, read, compare-and-swap, races between threads and between processes,
 * persistence across handles, and the holder claim.
 *
 * TEGULA_TEST_LOCK_URL=s3://bucket[/prefix]?... runs the same cases against another backend
 * (each test on its own lock object below that URL); what only the file backend promises
 * (versions are SHA-256 of the content, the file on disk, the holder claim) is then skipped. */
#include "testutil.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base64.h"
#include "lock.h"
#include "sha256.h"

static char lock_url[PATH_MAX + 2048];

static const char *other_backend(void)
{
    const char *url = getenv("TEGULA_TEST_LOCK_URL");
    return url && *url ? url : NULL;
}

/* A fresh lock URL (file:///.../name/checkpoint.lock) for each test. */
static const char *fresh_lock_url(const char *name)
{
    const char *base = other_backend();
    if (base) {
        /* s3://bucket[/prefix]?params -> s3://bucket[/prefix]/locktest-PID/name?params */
        const char *q = strchr(base, '?');
        size_t len = q ? (size_t)(q - base) : strlen(base);
        snprintf(lock_url, sizeof lock_url, "%.*s/locktest-%ld/%s%s", (int)len, base,
                 (long)getpid(), name, q ? q : "");
        return lock_url;
    }
    char root[PATH_MAX];
    assert_non_null(realpath(test_tmpdir(name), root));
    snprintf(lock_url, sizeof lock_url, "file://%s/sub/dir/checkpoint.lock", root);
    return lock_url;
}

static lock *open_or_fail(const char *url)
{
    error err = {{0}};
    lock *l = lock_open(url, &err);
    if (!l)
        fail_msg("lock_open(%s): %s", url, err.msg);
    return l;
}

static void sha256_hex(const char *text, char out[LOCK_VERSION_MAX])
{
    uint8_t digest[SHA256_LEN];
    sha256(text, strlen(text), digest);
    hex_encode(out, digest, sizeof digest);
}

static void expect_state(lock *l, const char *content, const char *version)
{
    buffer got = {0};
    char v[LOCK_VERSION_MAX];
    error err = {{0}};
    int rc = lock_read(l, &got, v, &err);
    if (rc != LOCK_OK)
        fail_msg("lock_read: %d %s", rc, err.msg);
    assert_int_equal(got.len, strlen(content));
    assert_memory_equal(got.data, content, got.len);
    assert_string_equal(v, version);
    buffer_free(&got);
}

static void test_create_read_cas(void **state)
{
    (void)state;
    lock *l = open_or_fail(fresh_lock_url("lock_basic"));
    buffer got = {0};
    char version[LOCK_VERSION_MAX], v2[LOCK_VERSION_MAX], want[LOCK_VERSION_MAX];
    error err = {{0}};

    /* Nothing there yet. */
    assert_int_equal(lock_read(l, &got, version, &err), LOCK_NOT_FOUND);
    assert_int_equal(lock_cas(l, "00", "x", 1, version, &err), LOCK_NOT_FOUND);

    const char *first = "log.example/2026h1\n100\nroot=\n\n- sig\n";
    assert_int_equal(lock_create(l, first, strlen(first), version, &err), LOCK_OK);
    sha256_hex(first, want);
    if (!other_backend())
        assert_string_equal(version, want); /* file versions are the content's SHA-256 */
    expect_state(l, first, version);

    /* Creating again fails, even with identical bytes, and changes nothing. */
    assert_int_equal(lock_create(l, first, strlen(first), NULL, &err), LOCK_CONFLICT);
    assert_int_equal(lock_create(l, "other", 5, NULL, &err), LOCK_CONFLICT);
    expect_state(l, first, version);

    /* CAS from the current version succeeds and returns the next version. */
    const char *second = "log.example/2026h1\n200\nroot=\n\n- sig\n";
    assert_int_equal(lock_cas(l, version, second, strlen(second), v2, &err), LOCK_OK);
    sha256_hex(second, want);
    if (!other_backend())
        assert_string_equal(v2, want);
    assert_string_not_equal(v2, version);
    expect_state(l, second, v2);

    /* A stale CAS (from the first version) conflicts and leaves the content alone. */
    assert_int_equal(lock_cas(l, version, "third", 5, NULL, &err), LOCK_CONFLICT);
    assert_non_null(strstr(err.msg, "changed"));
    expect_state(l, second, v2);
    assert_int_equal(lock_cas(l, "not a version", "third", 5, NULL, &err), LOCK_CONFLICT);
    expect_state(l, second, v2);

    /* Chained CAS with NULL out-versions still works; limits are enforced. */
    assert_int_equal(lock_cas(l, v2, "third", 5, NULL, &err), LOCK_OK);
    sha256_hex("third", want);
    if (other_backend())
        assert_int_equal(lock_read(l, &got, want, &err), LOCK_OK);
    expect_state(l, "third", want);
    assert_int_equal(lock_cas(l, NULL, "x", 1, NULL, &err), LOCK_ERROR);
    assert_int_equal(lock_cas(l, want, "x", (size_t)LOCK_CONTENT_MAX + 1, NULL, &err),
                     LOCK_ERROR);
    expect_state(l, "third", want);
    buffer_free(&got);
    lock_close(l);
}

static void test_data_survives_reopen(void **state)
{
    (void)state;
    const char *url = fresh_lock_url("lock_reopen");
    char version[LOCK_VERSION_MAX];
    lock *l = open_or_fail(url);
    assert_int_equal(lock_create(l, "persisted\n", 10, version, NULL), LOCK_OK);
    lock_close(l);

    l = open_or_fail(url);
    expect_state(l, "persisted\n", version);
    char next[LOCK_VERSION_MAX];
    assert_int_equal(lock_cas(l, version, "again\n", 6, next, NULL), LOCK_OK);
    lock_close(l);
    l = open_or_fail(url);
    expect_state(l, "again\n", next);
    lock_close(l);
    if (other_backend())
        return;

    /* The lock file holds exactly the content, and no temporary file is left beside it. */
    buffer raw = {0};
    read_file_or_fail(url + 7, &raw);
    assert_int_equal(raw.len, 6);
    assert_memory_equal(raw.data, "again\n", 6);
    buffer_free(&raw);
    char command[PATH_MAX + 128];
    snprintf(command, sizeof command, "ls -a \"$(dirname '%s')\" | grep -c tmp", url + 7);
    FILE *p = popen(command, "r");
    assert_non_null(p);
    char count[16] = {0};
    assert_non_null(fgets(count, sizeof count, p));
    pclose(p);
    assert_int_equal(atoi(count), 0);
}

/* Contents near the size limit keep each CAS busy long enough (write, fsync) for racers to
 * overlap: with tiny contents the first thread off the barrier is often done before the
 * others start, and a broken lock would go unnoticed. */
#define RACE_CONTENT_LEN ((size_t)512 * 1024)

typedef struct cas_arg {
    lock *handle;
    const char *expected;
    pthread_barrier_t *barrier;
    uint8_t *content;
    int result;
} cas_arg;

static void *race_cas(void *p)
{
    cas_arg *a = p;
    pthread_barrier_wait(a->barrier);
    a->result = lock_cas(a->handle, a->expected, a->content, RACE_CONTENT_LEN, NULL, NULL);
    return NULL;
}

static void race_content(uint8_t *out, int round, int racer)
{
    memset(out, 'a' + racer, RACE_CONTENT_LEN);
    snprintf((char *)out, 32, "round %d by %d", round, racer);
}

static void expect_bytes(lock *l, const uint8_t *content, size_t len,
                         char version[LOCK_VERSION_MAX])
{
    buffer got = {0};
    uint8_t digest[SHA256_LEN];
    char want[LOCK_VERSION_MAX];
    sha256(content, len, digest);
    hex_encode(want, digest, sizeof digest);
    assert_int_equal(lock_read(l, &got, version, NULL), LOCK_OK);
    assert_int_equal(got.len, len);
    assert_memory_equal(got.data, content, len);
    if (!other_backend())
        assert_string_equal(version, want);
    buffer_free(&got);
}

static void test_threads_race_cas(void **state)
{
    (void)state;
    enum { THREADS = 4, ROUNDS = 25 };
    const char *url = fresh_lock_url("lock_threads");
    lock *handles[THREADS];
    for (int i = 0; i < THREADS; i++)
        handles[i] = open_or_fail(url);
    char version[LOCK_VERSION_MAX];
    assert_int_equal(lock_create(handles[0], "round -1", 8, version, NULL), LOCK_OK);
    for (int round = 0; round < ROUNDS; round++) {
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, THREADS);
        cas_arg args[THREADS];
        pthread_t threads[THREADS];
        for (int i = 0; i < THREADS; i++) {
            /* Two threads share one handle: the handle itself must be thread-safe. */
            args[i] = (cas_arg){.handle = handles[i == 3 ? 0 : i], .expected = version,
                                .barrier = &barrier, .content = malloc(RACE_CONTENT_LEN)};
            assert_non_null(args[i].content);
            race_content(args[i].content, round, i);
            assert_int_equal(pthread_create(&threads[i], NULL, race_cas, &args[i]), 0);
        }
        int winners = 0, winner = -1;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(threads[i], NULL);
            if (args[i].result == LOCK_OK) {
                winners++;
                winner = i;
            } else {
                assert_int_equal(args[i].result, LOCK_CONFLICT);
            }
        }
        pthread_barrier_destroy(&barrier);
        assert_int_equal(winners, 1);
        expect_bytes(handles[1], args[winner].content, RACE_CONTENT_LEN, version);
        for (int i = 0; i < THREADS; i++)
            free(args[i].content);
    }
    for (int i = 0; i < THREADS; i++)
        lock_close(handles[i]);
}

static void test_processes_race_cas(void **state)
{
    (void)state;
    enum { ROUNDS = 10 };
    const char *url = fresh_lock_url("lock_fork");
    lock *l = open_or_fail(url);
    char version[LOCK_VERSION_MAX];
    assert_int_equal(lock_create(l, "start", 5, version, NULL), LOCK_OK);
    for (int round = 0; round < ROUNDS; round++) {
        int go[2];
        assert_int_equal(pipe(go), 0);
        uint8_t *mine = malloc(RACE_CONTENT_LEN), *theirs = malloc(RACE_CONTENT_LEN);
        assert_non_null(mine);
        assert_non_null(theirs);
        race_content(mine, round, 0);
        race_content(theirs, round, 1);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            /* The child opens its own handle, like a second sequencer would. */
            close(go[1]);
            lock *own = lock_open(url, NULL);
            char byte;
            if (!own || read(go[0], &byte, 1) != 1)
                _exit(2);
            int rc = lock_cas(own, version, theirs, RACE_CONTENT_LEN, NULL, NULL);
            _exit(rc == LOCK_OK ? 0 : rc == LOCK_CONFLICT ? 1 : 3);
        }
        close(go[0]);
        assert_int_equal(write(go[1], "g", 1), 1);
        close(go[1]);
        int rc = lock_cas(l, version, mine, RACE_CONTENT_LEN, NULL, NULL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        int child = WEXITSTATUS(status);
        assert_true(child == 0 || child == 1);
        assert_true(rc == LOCK_OK || rc == LOCK_CONFLICT);
        /* Exactly one of the two committed, and the lock holds its content. */
        assert_int_equal((rc == LOCK_OK) + (child == 0), 1);
        expect_bytes(l, rc == LOCK_OK ? mine : theirs, RACE_CONTENT_LEN, version);
        free(mine);
        free(theirs);
    }
    lock_close(l);
}

static void test_holder_claim(void **state)
{
    (void)state;
    const char *url = fresh_lock_url("lock_holder");
    error err = {{0}};
    lock *first = open_or_fail(url);
    lock *second = open_or_fail(url);
    if (other_backend()) {
        /* No holder mechanism there: claims succeed, CAS alone keeps writers apart. */
        assert_int_equal(lock_claim(first, &err), LOCK_OK);
        assert_int_equal(lock_claim(second, &err), LOCK_OK);
        lock_close(first);
        lock_close(second);
        skip();
    }
    assert_int_equal(lock_claim(first, &err), LOCK_OK);
    assert_int_equal(lock_claim(first, &err), LOCK_OK); /* idempotent */

    /* A second handle in this process is refused at once, naming the holder. */
    assert_int_equal(lock_claim(second, &err), LOCK_HELD);
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    assert_non_null(strstr(err.msg, pid));
    assert_non_null(strstr(err.msg, "held"));

    /* So is another process. */
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        lock *own = lock_open(url, NULL);
        _exit(own && lock_claim(own, NULL) == LOCK_HELD ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* The claim does not block the data operations of other handles. */
    char version[LOCK_VERSION_MAX];
    assert_int_equal(lock_create(second, "c", 1, version, &err), LOCK_OK);
    expect_state(first, "c", version);

    /* Closing the holder frees the claim. */
    lock_close(first);
    assert_int_equal(lock_claim(second, &err), LOCK_OK);
    lock_close(second);
}

static void test_open_urls(void **state)
{
    (void)state;
    error err = {{0}};
    /* s3:// needs the lock object's name; nothing is sent when opening. */
    setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 0);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 0);
    assert_null(lock_open("s3://bucket?endpoint=http://127.0.0.1:1", &err));
    assert_non_null(strstr(err.msg, "name the lock object"));
    assert_null(lock_open("s3://bucket/lock?endpoint=http://127.0.0.1:1&colour=red", &err));
    assert_non_null(strstr(err.msg, "colour"));
    lock *l = lock_open("s3://bucket/logs/lock?endpoint=http://127.0.0.1:1", &err);
    assert_non_null(l);
    lock_close(l);
    assert_null(lock_open("redis://x", &err));
    assert_non_null(strstr(err.msg, "unknown scheme"));
    assert_null(lock_open("file://relative", &err));
    assert_null(lock_open("file:///tmp/dir/", &err));
    assert_null(lock_open(NULL, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_read_cas),
        cmocka_unit_test(test_data_survives_reopen),
        cmocka_unit_test(test_threads_race_cas),
        cmocka_unit_test(test_processes_race_cas),
        cmocka_unit_test(test_holder_claim),
        cmocka_unit_test(test_open_urls),
    };
    return cmocka_run_group_tests_name("lock", tests, NULL, NULL);
}
