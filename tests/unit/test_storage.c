/* storage: a backend-independent conformance suite (functions taking a `storage *`), run
 * here against file://, plus the file backend's own guarantees (symbolic links, temporary
 * files) and the key and metadata rules.
 *
 * TEGULA_TEST_STORAGE_URL=s3://... runs the conformance part against another store; every
 * case then works under its own fresh key prefix. */
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "storage.h"

/* ---- helpers ---- */

typedef struct fixture {
    storage *store;
    char prefix[64];     /* every key of a case starts with it */
    char root[PATH_MAX]; /* file:// only: the directory, else empty */
} fixture;

static int fixture_counter;

static int fixture_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    int n = ++fixture_counter;
    char url[PATH_MAX + 16];
    const char *configured = getenv("TEGULA_TEST_STORAGE_URL");
    if (configured) {
        snprintf(url, sizeof url, "%s", configured);
    } else {
        char name[64];
        snprintf(name, sizeof name, "storage_%d", n);
        const char *dir = test_tmpdir(name);
        assert_non_null(realpath(dir, f->root));
        snprintf(url, sizeof url, "file://%s", f->root);
    }
    snprintf(f->prefix, sizeof f->prefix, "conformance/%ld-%d", (long)getpid(), n);
    error err = {{0}};
    f->store = storage_open(url, &err);
    if (!f->store)
        fail_msg("storage_open(%s): %s", url, err.msg);
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture *f = *state;
    storage_close(f->store);
    free(f);
    return 0;
}

static const char *key_of(char *out, const char *prefix, const char *suffix)
{
    snprintf(out, STORAGE_KEY_MAX + 1, "%s/%s", prefix, suffix);
    return out;
}

static void expect_content(storage *s, const char *key, const void *want, size_t len)
{
    buffer got = {0};
    error err = {{0}};
    int rc = storage_get(s, key, len + 1024, &got, &err);
    if (rc != STORAGE_OK)
        fail_msg("get %s: %d %s", key, rc, err.msg);
    assert_int_equal(got.len, len);
    if (len)
        assert_memory_equal(got.data, want, len);
    buffer_free(&got);
}

/* Deterministic filler so large objects are not all zeros. */
static void fill_pattern(uint8_t *data, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = (uint8_t)x;
    }
}

/* ---- conformance suite: only the public interface, any backend ---- */

static void conformance_round_trip(storage *s, const char *prefix)
{
    char key[STORAGE_KEY_MAX + 1];
    error err = {{0}};
    const char body[] = "tree size 1234\n";
    key_of(key, prefix, "tile/0/x001/234");
    assert_int_equal(storage_put(s, key, body, sizeof body - 1, NULL, &err), STORAGE_OK);
    expect_content(s, key, body, sizeof body - 1);

    /* A caller's size cap: exactly the size is fine, one byte less is refused. */
    buffer got = {0};
    assert_int_equal(storage_get(s, key, sizeof body - 1, &got, &err), STORAGE_OK);
    assert_int_equal(got.len, sizeof body - 1);
    assert_int_equal(storage_get(s, key, sizeof body - 2, &got, &err), STORAGE_ERROR);
    /* get replaces what the buffer held. */
    assert_int_equal(buffer_append_str(&got, "stale"), 0);
    assert_int_equal(storage_get(s, key, 1024, &got, &err), STORAGE_OK);
    assert_int_equal(got.len, sizeof body - 1);
    buffer_free(&got);

    /* Empty objects are objects. */
    key_of(key, prefix, "empty");
    assert_int_equal(storage_put(s, key, NULL, 0, NULL, &err), STORAGE_OK);
    expect_content(s, key, "", 0);

    /* Explicit metadata is accepted (the file backend does not keep it). */
    storage_meta meta = {"text/plain; charset=utf-8", NULL, "no-store"};
    key_of(key, prefix, "checkpoint");
    assert_int_equal(storage_put(s, key, "x\n", 2, &meta, &err), STORAGE_OK);
    expect_content(s, key, "x\n", 2);
}

static void conformance_overwrite(storage *s, const char *prefix)
{
    char key[STORAGE_KEY_MAX + 1];
    key_of(key, prefix, "checkpoint");
    assert_int_equal(storage_put(s, key, "first", 5, NULL, NULL), STORAGE_OK);
    assert_int_equal(storage_put(s, key, "second, longer", 14, NULL, NULL), STORAGE_OK);
    expect_content(s, key, "second, longer", 14);
    assert_int_equal(storage_put(s, key, "3", 1, NULL, NULL), STORAGE_OK);
    expect_content(s, key, "3", 1);
}

static void conformance_create_identical(storage *s, const char *prefix)
{
    char key[STORAGE_KEY_MAX + 1];
    error err = {{0}};
    key_of(key, prefix, "issuer/ab12");
    assert_int_equal(storage_create(s, key, "cert", 4, NULL, &err), STORAGE_OK);
    assert_int_equal(storage_create(s, key, "cert", 4, NULL, &err), STORAGE_OK);
    expect_content(s, key, "cert", 4);
    /* An object first written by put can be "created" again with the same bytes. */
    key_of(key, prefix, "tile/1/000");
    assert_int_equal(storage_put(s, key, "hashes", 6, NULL, &err), STORAGE_OK);
    assert_int_equal(storage_create(s, key, "hashes", 6, NULL, &err), STORAGE_OK);
    /* Empty content is identical to empty content. */
    key_of(key, prefix, "empty");
    assert_int_equal(storage_create(s, key, "", 0, NULL, &err), STORAGE_OK);
    assert_int_equal(storage_create(s, key, "", 0, NULL, &err), STORAGE_OK);
}

static void conformance_create_different(storage *s, const char *prefix)
{
    char key[STORAGE_KEY_MAX + 1];
    error err = {{0}};
    key_of(key, prefix, "issuer/cd34");
    assert_int_equal(storage_create(s, key, "original", 8, NULL, &err), STORAGE_OK);
    /* Same length, different bytes; a different length; a prefix of it; empty. */
    assert_int_equal(storage_create(s, key, "imposter", 8, NULL, &err), STORAGE_CONFLICT);
    assert_non_null(strstr(err.msg, "different"));
    assert_int_equal(storage_create(s, key, "original!", 9, NULL, &err), STORAGE_CONFLICT);
    assert_int_equal(storage_create(s, key, "orig", 4, NULL, &err), STORAGE_CONFLICT);
    assert_int_equal(storage_create(s, key, "", 0, NULL, &err), STORAGE_CONFLICT);
    expect_content(s, key, "original", 8);
}

typedef struct race_arg {
    storage *store;
    const char *key;
    pthread_barrier_t *barrier;
    int id;
    int result;
    char content[32];
    size_t len;
} race_arg;

static void *race_create(void *p)
{
    race_arg *a = p;
    pthread_barrier_wait(a->barrier);
    a->result = storage_create(a->store, a->key, a->content, a->len, NULL, NULL);
    return NULL;
}

static void conformance_create_race(storage *s, const char *prefix)
{
    enum { THREADS = 8, ROUNDS = 12 };
    for (int round = 0; round < ROUNDS; round++) {
        char key[STORAGE_KEY_MAX + 1], suffix[64];
        /* Fresh directories each round, so the threads also race to create them. */
        snprintf(suffix, sizeof suffix, "race/%d/x%03d/obj", round, round);
        key_of(key, prefix, suffix);
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, THREADS);
        race_arg args[THREADS];
        pthread_t threads[THREADS];
        for (int i = 0; i < THREADS; i++) {
            args[i] = (race_arg){.store = s, .key = key, .barrier = &barrier, .id = i};
            /* Different lengths for some, same length for others. */
            args[i].len = (size_t)snprintf(args[i].content, sizeof args[i].content,
                                           "content of thread %d%.*s", i, i % 3, "xyz");
            assert_int_equal(pthread_create(&threads[i], NULL, race_create, &args[i]), 0);
        }
        int winners = 0, losers = 0, winner = -1;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(threads[i], NULL);
            if (args[i].result == STORAGE_OK) {
                winners++;
                winner = i;
            } else if (args[i].result == STORAGE_CONFLICT) {
                losers++;
            }
        }
        pthread_barrier_destroy(&barrier);
        assert_int_equal(winners, 1);
        assert_int_equal(losers, THREADS - 1);
        expect_content(s, key, args[winner].content, args[winner].len);
    }
}

static void conformance_missing(storage *s, const char *prefix)
{
    char key[STORAGE_KEY_MAX + 1];
    buffer got = {0};
    error err = {{0}};
    assert_int_equal(storage_get(s, key_of(key, prefix, "never/written"), 100, &got, &err),
                     STORAGE_NOT_FOUND);
    assert_int_equal(got.len, 0);
    assert_int_equal(storage_get(s, key_of(key, prefix, "nothing"), 100, &got, &err),
                     STORAGE_NOT_FOUND);
    /* A "directory" below an object, and a name that is only a key prefix. */
    assert_int_equal(storage_put(s, key_of(key, prefix, "leaf"), "x", 1, NULL, NULL), 0);
    assert_int_equal(storage_get(s, key_of(key, prefix, "leaf/below"), 100, &got, &err),
                     STORAGE_NOT_FOUND);
    assert_int_equal(storage_put(s, key_of(key, prefix, "dir/obj"), "x", 1, NULL, NULL), 0);
    assert_int_equal(storage_get(s, key_of(key, prefix, "dir"), 100, &got, &err),
                     STORAGE_NOT_FOUND);
    buffer_free(&got);
}

static void conformance_delete(storage *s, const char *prefix)
{
    char key[STORAGE_KEY_MAX + 1];
    buffer got = {0};
    error err = {{0}};
    key_of(key, prefix, "staging/12-abcdef");
    assert_int_equal(storage_put(s, key, "bundle", 6, NULL, &err), STORAGE_OK);
    assert_int_equal(storage_delete(s, key, &err), STORAGE_OK);
    assert_int_equal(storage_get(s, key, 100, &got, &err), STORAGE_NOT_FOUND);
    /* Deleting what is not there is fine, also below a missing directory. */
    assert_int_equal(storage_delete(s, key, &err), STORAGE_OK);
    assert_int_equal(storage_delete(s, key_of(key, prefix, "no/such/dir/x"), &err), STORAGE_OK);
    /* After a delete, create-if-absent starts over. */
    key_of(key, prefix, "staging/12-abcdef");
    assert_int_equal(storage_create(s, key, "other", 5, NULL, &err), STORAGE_OK);
    expect_content(s, key, "other", 5);
    buffer_free(&got);
}

static void conformance_large_objects(storage *s, const char *prefix)
{
    size_t len = ((size_t)8 << 20) + 12345;
    uint8_t *data = malloc(len);
    assert_non_null(data);
    fill_pattern(data, len, 7);
    char key[STORAGE_KEY_MAX + 1];
    error err = {{0}};
    key_of(key, prefix, "tile/data/x001/big");
    assert_int_equal(storage_put(s, key, data, len, NULL, &err), STORAGE_OK);
    buffer got = {0};
    assert_int_equal(storage_get(s, key, len, &got, &err), STORAGE_OK);
    assert_int_equal(got.len, len);
    assert_memory_equal(got.data, data, len);
    assert_int_equal(storage_get(s, key, len - 1, &got, &err), STORAGE_ERROR);

    /* Create compares all of it: identical is fine, one changed last byte conflicts. */
    assert_int_equal(storage_create(s, key, data, len, NULL, &err), STORAGE_OK);
    data[len - 1] ^= 1;
    assert_int_equal(storage_create(s, key, data, len, NULL, &err), STORAGE_CONFLICT);
    data[len - 1] ^= 1;
    assert_int_equal(storage_get(s, key, len, &got, &err), STORAGE_OK);
    assert_memory_equal(got.data, data, len);
    buffer_free(&got);
    free(data);
}

static void conformance_invalid_keys(storage *s, const char *prefix)
{
    (void)prefix;
    static const char *const bad[] = {
        "", "/abs", "/", "../x", "a/../b", "a/..", "..", ".", "a//b", "a/./b", "a/", "./a",
        "a\\b", "a b", "%2e%2e/x", "a/%2e%2e", "tile/\xc3\xa9", "a?b", "a#b", ".hidden",
        "a/.tmp-1-2-3", "a:b",
    };
    buffer got = {0};
    error err = {{0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *k = bad[i];
        if (storage_key_is_valid(k, strlen(k)))
            fail_msg("key \"%s\" accepted", k);
        assert_int_equal(storage_put(s, k, "x", 1, NULL, &err), STORAGE_INVALID_KEY);
        assert_int_equal(storage_create(s, k, "x", 1, NULL, &err), STORAGE_INVALID_KEY);
        assert_int_equal(storage_get(s, k, 10, &got, &err), STORAGE_INVALID_KEY);
        assert_int_equal(storage_delete(s, k, &err), STORAGE_INVALID_KEY);
    }
    assert_int_equal(storage_put(s, NULL, "x", 1, NULL, &err), STORAGE_INVALID_KEY);
    /* Length: 512 is the most. */
    char longest[STORAGE_KEY_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[STORAGE_KEY_MAX] = 0;
    assert_true(storage_key_is_valid(longest, STORAGE_KEY_MAX));
    longest[STORAGE_KEY_MAX] = 'a';
    longest[STORAGE_KEY_MAX + 1] = 0;
    assert_false(storage_key_is_valid(longest, STORAGE_KEY_MAX + 1));
    assert_int_equal(storage_get(s, longest, 10, &got, &err), STORAGE_INVALID_KEY);
    /* An embedded NUL is caught when the length is known. */
    assert_false(storage_key_is_valid("a\0b", 3));
    assert_false(storage_key_is_valid("tile/0\0/../x", 12));
    /* A batch with one bad key writes nothing. */
    char good[STORAGE_KEY_MAX + 1];
    key_of(good, prefix, "batch-with-bad-key");
    storage_object objects[] = {
        {good, "x", 1, STORAGE_PUT, NULL},
        {"../escape", "y", 1, STORAGE_PUT, NULL},
    };
    int results[2];
    assert_int_equal(storage_write_batch(s, objects, 2, results, &err), STORAGE_INVALID_KEY);
    assert_int_equal(storage_get(s, good, 10, &got, &err), STORAGE_NOT_FOUND);
    buffer_free(&got);
}

static void conformance_batch(storage *s, const char *prefix)
{
    enum { COUNT = 40 };
    char keys[COUNT][STORAGE_KEY_MAX + 1];
    char bodies[COUNT][32];
    storage_object objects[COUNT];
    int results[COUNT];
    for (int i = 0; i < COUNT; i++) {
        char suffix[64];
        /* A round's spread: several levels, data tiles, partials, shared directories. */
        if (i % 4 == 0)
            snprintf(suffix, sizeof suffix, "tile/0/x%03d/%03d", i / 16, i);
        else if (i % 4 == 1)
            snprintf(suffix, sizeof suffix, "tile/1/%03d.p/%d", i, i % 7 + 1);
        else if (i % 4 == 2)
            snprintf(suffix, sizeof suffix, "tile/data/%03d", i);
        else
            snprintf(suffix, sizeof suffix, "issuer/%02x", i);
        key_of(keys[i], prefix, suffix);
        size_t len = (size_t)snprintf(bodies[i], sizeof bodies[i], "body %d", i);
        objects[i] = (storage_object){keys[i], bodies[i], len,
                                      i % 2 ? STORAGE_CREATE : STORAGE_PUT, NULL};
        results[i] = 99;
    }
    error err = {{0}};
    assert_int_equal(storage_write_batch(s, objects, COUNT, results, &err), STORAGE_OK);
    for (int i = 0; i < COUNT; i++) {
        assert_int_equal(results[i], STORAGE_OK);
        expect_content(s, keys[i], bodies[i], strlen(bodies[i]));
    }
    /* Replaying the same batch (recovery) succeeds: creates find identical objects. */
    assert_int_equal(storage_write_batch(s, objects, COUNT, results, &err), STORAGE_OK);

    /* One conflicting create does not stop the others, and is reported by index. */
    char changed[] = "changed";
    char fresh_key[STORAGE_KEY_MAX + 1];
    key_of(fresh_key, prefix, "tile/2/000");
    storage_object second[] = {
        {keys[1], changed, 7, STORAGE_CREATE, NULL},   /* conflicts */
        {keys[0], changed, 7, STORAGE_PUT, NULL},      /* overwrites */
        {fresh_key, changed, 7, STORAGE_CREATE, NULL}, /* new */
    };
    int second_results[3];
    assert_int_equal(storage_write_batch(s, second, 3, second_results, &err), STORAGE_CONFLICT);
    assert_non_null(strstr(err.msg, keys[1]));
    assert_int_equal(second_results[0], STORAGE_CONFLICT);
    assert_int_equal(second_results[1], STORAGE_OK);
    assert_int_equal(second_results[2], STORAGE_OK);
    expect_content(s, keys[1], bodies[1], strlen(bodies[1]));
    expect_content(s, keys[0], changed, 7);
    expect_content(s, fresh_key, changed, 7);
    /* results may be NULL; an empty batch is a no-op. */
    assert_int_equal(storage_write_batch(s, second + 1, 2, NULL, &err), STORAGE_OK);
    assert_int_equal(storage_write_batch(s, NULL, 0, NULL, &err), STORAGE_OK);
}

typedef struct writer_arg {
    storage *store;
    const char *prefix;
    int id;
    int failures;
} writer_arg;

static void *concurrent_writer(void *p)
{
    writer_arg *a = p;
    for (int i = 0; i < 30; i++) {
        char key[STORAGE_KEY_MAX + 1], suffix[64], body[64];
        /* Threads share directories and the "latest" key; each owns its own keys. */
        snprintf(suffix, sizeof suffix, "shared/x%03d/t%d-%d", i % 5, a->id, i);
        int len = snprintf(body, sizeof body, "writer %d item %d", a->id, i);
        key_of(key, a->prefix, suffix);
        storage_object objects[2] = {
            {key, body, (size_t)len, STORAGE_CREATE, NULL},
            {"", body, (size_t)len, STORAGE_PUT, NULL},
        };
        char latest[STORAGE_KEY_MAX + 1];
        objects[1].key = key_of(latest, a->prefix, "shared/latest");
        if (storage_write_batch(a->store, objects, 2, NULL, NULL) != STORAGE_OK)
            a->failures++;
        buffer got = {0};
        if (storage_get(a->store, key, 100, &got, NULL) != STORAGE_OK ||
            got.len != (size_t)len || memcmp(got.data, body, got.len) != 0)
            a->failures++;
        /* "latest" is always some writer's whole body, never a mix. */
        if (storage_get(a->store, latest, 100, &got, NULL) != STORAGE_OK ||
            strncmp((const char *)got.data, "writer ", 7) != 0)
            a->failures++;
        buffer_free(&got);
    }
    return NULL;
}

static void conformance_concurrent_writers(storage *s, const char *prefix)
{
    enum { THREADS = 6 };
    pthread_t threads[THREADS];
    writer_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (writer_arg){s, prefix, i, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, concurrent_writer, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
}

/* cmocka wrappers: one fixture (fresh store or prefix) per conformance case. */
#define CONFORMANCE(name)                                                                  \
    static void test_conformance_##name(void **state)                                      \
    {                                                                                      \
        fixture *f = *state;                                                               \
        conformance_##name(f->store, f->prefix);                                           \
    }
CONFORMANCE(round_trip)
CONFORMANCE(overwrite)
CONFORMANCE(create_identical)
CONFORMANCE(create_different)
CONFORMANCE(create_race)
CONFORMANCE(missing)
CONFORMANCE(delete)
CONFORMANCE(large_objects)
CONFORMANCE(invalid_keys)
CONFORMANCE(batch)
CONFORMANCE(concurrent_writers)

/* ---- file backend specifics ---- */

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static void test_file_symlinks_are_not_followed(void **state)
{
    fixture *f = *state;
    if (!f->root[0])
        skip();
    char outside[PATH_MAX], path[PATH_MAX + 64], target[PATH_MAX + 64];
    assert_non_null(realpath(test_tmpdir("storage_outside"), outside));
    snprintf(target, sizeof target, "%s/secret", outside);
    write_file(target, "do not serve me");

    error err = {{0}};
    assert_int_equal(storage_put(f->store, "issuer/real", "cert", 4, NULL, &err), STORAGE_OK);
    assert_int_equal(storage_put(f->store, "tile/0/000", "h", 1, NULL, &err), STORAGE_OK);
    /* A link to a file outside, and a link to a directory outside. */
    snprintf(path, sizeof path, "%s/issuer/evil", f->root);
    assert_int_equal(symlink(target, path), 0);
    snprintf(path, sizeof path, "%s/tile/link", f->root);
    assert_int_equal(symlink(outside, path), 0);
    /* A relative link climbing out of the root. */
    snprintf(path, sizeof path, "%s/issuer/climb", f->root);
    assert_int_equal(symlink("../../storage_outside/secret", path), 0);

    buffer got = {0};
    const char *reads[] = {"issuer/evil", "tile/link/secret", "issuer/climb"};
    for (size_t i = 0; i < 3; i++) {
        error_clear(&err);
        int rc = storage_get(f->store, reads[i], 1000, &got, &err);
        assert_int_not_equal(rc, STORAGE_OK);
        assert_int_equal(got.len, 0);
        assert_true(err.msg[0] != 0);
    }
    assert_int_equal(storage_get(f->store, "issuer/evil", 1000, &got, &err), STORAGE_ERROR);
    assert_non_null(strstr(err.msg, "symbolic link"));

    /* Writes do not go through a linked directory or into a linked file either. */
    assert_int_not_equal(storage_put(f->store, "tile/link/planted", "x", 1, NULL, &err), 0);
    snprintf(path, sizeof path, "%s/planted", outside);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_not_equal(storage_create(f->store, "issuer/evil", "x", 1, NULL, &err), 0);
    buffer secret = {0};
    read_file_or_fail(target, &secret);
    assert_int_equal(secret.len, 15);
    assert_memory_equal(secret.data, "do not serve me", 15);
    /* put replaces the link itself (rename does not follow it), never the target. */
    assert_int_equal(storage_put(f->store, "issuer/evil", "mine", 4, NULL, &err), STORAGE_OK);
    expect_content(f->store, "issuer/evil", "mine", 4);
    buffer_reset(&secret);
    read_file_or_fail(target, &secret);
    assert_memory_equal(secret.data, "do not serve me", 15);
    /* Deleting removes the link, not the target. */
    assert_int_equal(storage_delete(f->store, "tile/link", &err), STORAGE_OK);
    assert_int_equal(access(target, F_OK), 0);
    buffer_free(&secret);
    buffer_free(&got);
}

static int temp_files_found;

static int count_temp_files(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    if (strncmp(path + ftw->base, ".tmp", 4) == 0)
        temp_files_found++;
    return 0;
}

static void test_file_no_temp_files_left(void **state)
{
    fixture *f = *state;
    if (!f->root[0])
        skip();
    /* Successes, conflicts, failures and races, then look for leftovers. */
    conformance_round_trip(f->store, "a");
    conformance_create_different(f->store, "b");
    conformance_create_race(f->store, "c");
    conformance_batch(f->store, "d");
    conformance_concurrent_writers(f->store, "e");
    error err = {{0}};
    assert_int_equal(storage_put(f->store, "f", "file", 4, NULL, &err), STORAGE_OK);
    /* Fails after writing temporary files for earlier objects of the batch. */
    storage_object objects[] = {
        {"g/ok", "x", 1, STORAGE_PUT, NULL},
        {"f/below-a-file", "y", 1, STORAGE_PUT, NULL},
    };
    int results[2];
    assert_int_equal(storage_write_batch(f->store, objects, 2, results, &err), STORAGE_ERROR);
    assert_int_equal(results[0], STORAGE_ERROR);
    assert_int_equal(results[1], STORAGE_ERROR);
    temp_files_found = 0;
    assert_int_equal(nftw(f->root, count_temp_files, 16, FTW_PHYS), 0);
    assert_int_equal(temp_files_found, 0);
}

static void test_file_objects_are_plain_files(void **state)
{
    fixture *f = *state;
    if (!f->root[0])
        skip();
    /* The layout under the root is the key layout: a CDN or web server can serve it. */
    assert_int_equal(storage_put(f->store, "tile/data/x001/002.p/7", "d", 1, NULL, NULL), 0);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/tile/data/x001/002.p/7", f->root);
    buffer content = {0};
    read_file_or_fail(path, &content);
    assert_int_equal(content.len, 1);
    assert_int_equal(content.data[0], 'd');
    buffer_free(&content);
    /* A directory is not an object. */
    buffer got = {0};
    assert_int_equal(storage_get(f->store, "tile/data", 100, &got, NULL), STORAGE_NOT_FOUND);
    buffer_free(&got);
}

static void test_open_urls(void **state)
{
    (void)state;
    error err = {{0}};
    assert_null(storage_open("ftp://example/x", &err));
    assert_non_null(strstr(err.msg, "unknown scheme"));
    assert_null(storage_open("s3://bucket/prefix?bogus=1", &err));
    assert_non_null(strstr(err.msg, "unknown parameter \"bogus\""));
    assert_null(storage_open("file://relative/dir", &err));
    assert_non_null(strstr(err.msg, "absolute"));
    assert_null(storage_open(NULL, &err));

    /* Missing directories are created, with parents; localhost is the empty host. */
    char root[PATH_MAX], url[PATH_MAX + 64];
    assert_non_null(realpath(test_tmpdir("storage_open"), root));
    snprintf(url, sizeof url, "file://%s/deep/er/store", root);
    storage *s = storage_open(url, &err);
    assert_non_null(s);
    assert_string_equal(storage_scheme(s), "file");
    assert_int_equal(storage_put(s, "checkpoint", "c", 1, NULL, &err), 0);
    storage_close(s);
    snprintf(url, sizeof url, "file://localhost%s/deep/er/store", root);
    s = storage_open(url, &err);
    assert_non_null(s);
    expect_content(s, "checkpoint", "c", 1);
    storage_close(s);
    /* A path that is a file, not a directory. */
    snprintf(url, sizeof url, "file://%s/deep/er/store/checkpoint", root);
    assert_null(storage_open(url, &err));
}

static void test_valid_keys(void **state)
{
    (void)state;
    static const char *const good[] = {
        "checkpoint", "tile/0/x001/234", "tile/0/x001/234.p/5", "tile/data/000",
        "issuer/0123abcdef", "staging/12-00ff", "log.v3.json", "roots.pem", "a..b",
        "a/b.", "A_Z-09", "x/y/z/w",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!storage_key_is_valid(good[i], strlen(good[i])))
            fail_msg("key \"%s\" refused", good[i]);
}

static void test_metadata_for_keys(void **state)
{
    (void)state;
    const char *immutable = "public, max-age=604800, immutable";
    storage_meta m = storage_meta_for_key("checkpoint");
    assert_string_equal(m.content_type, "text/plain; charset=utf-8");
    assert_null(m.content_encoding);
    assert_string_equal(m.cache_control, "no-store");

    const char *tiles[] = {"tile/0/000", "tile/3/x001/002.p/9", "tile/0/x001/234"};
    for (size_t i = 0; i < 3; i++) {
        m = storage_meta_for_key(tiles[i]);
        assert_string_equal(m.content_type, "application/octet-stream");
        assert_null(m.content_encoding);
        assert_string_equal(m.cache_control, immutable);
    }
    m = storage_meta_for_key("tile/data/x001/234.p/3");
    assert_string_equal(m.content_type, "application/octet-stream");
    assert_string_equal(m.content_encoding, "gzip");
    assert_string_equal(m.cache_control, immutable);

    m = storage_meta_for_key("issuer/abcdef");
    assert_string_equal(m.content_type, "application/pkix-cert");
    assert_null(m.content_encoding);
    assert_string_equal(m.cache_control, immutable);

    m = storage_meta_for_key("staging/12-abcd");
    assert_string_equal(m.content_type, "application/octet-stream");
    assert_null(m.content_encoding);
    assert_null(m.cache_control);

    m = storage_meta_for_key("log.v3.json");
    assert_string_equal(m.content_type, "application/json");
    assert_non_null(strstr(m.cache_control, "max-age="));
    assert_null(strstr(m.cache_control, "immutable"));
    m = storage_meta_for_key("roots.pem");
    assert_string_equal(m.content_type, "application/x-pem-file");
    assert_non_null(strstr(m.cache_control, "max-age="));

    /* "tile/data" prefix only: a level-named "tile/datax" is not a data tile. */
    m = storage_meta_for_key("tile/datax/1");
    assert_null(m.content_encoding);
    m = storage_meta_for_key("something/else");
    assert_string_equal(m.content_type, "application/octet-stream");
    assert_null(m.cache_control);
}

/* storage_get_info: the bytes as storage_get gives them, plus the headers the backend stored
 * with the object. S3 must give back exactly what was sent (explicit metadata, or the
 * metadata DESIGN §4 gives the key) with its ETag (the MD5 of a single-part upload) and a
 * Last-Modified date; file:// stores none and says so. */
static void test_conformance_get_info(void **state)
{
    fixture *f = *state;
    char key[STORAGE_KEY_MAX + 1], other[STORAGE_KEY_MAX + 1];
    error err = {{0}};
    const char body[] = "\x1f\x8b not really gzip";
    key_of(key, f->prefix, "tile/data/x001/234.p/3");
    assert_int_equal(storage_put(f->store, key, body, sizeof body - 1, NULL, &err), STORAGE_OK);
    storage_meta explicit = {"text/x-test", "identity", "private, max-age=7"};
    key_of(other, f->prefix, "some/object");
    assert_int_equal(storage_put(f->store, other, "abc", 3, &explicit, &err), STORAGE_OK);

    buffer got = {0};
    storage_object_info info;
    memset(&info, 0x55, sizeof info); /* every field must be set, whatever it held */
    assert_int_equal(buffer_append_str(&got, "stale"), 0);
    assert_int_equal(storage_get_info(f->store, key, 1024, &got, &info, &err), STORAGE_OK);
    assert_int_equal(got.len, sizeof body - 1);
    assert_memory_equal(got.data, body, sizeof body - 1);
    bool s3 = strcmp(storage_scheme(f->store), "s3") == 0;
    if (!s3) {
        assert_false(info.has_meta);
        assert_string_equal(info.content_type, "");
        assert_string_equal(info.content_encoding, "");
        assert_string_equal(info.cache_control, "");
        assert_string_equal(info.etag, "");
        assert_string_equal(info.last_modified, "");
    } else {
        /* The key's own metadata, as storage_put sent it (no meta given). */
        storage_meta want = storage_meta_for_key(key);
        assert_true(info.has_meta);
        assert_string_equal(info.content_type, want.content_type ? want.content_type : "");
        assert_string_equal(info.content_encoding,
                            want.content_encoding ? want.content_encoding : "");
        assert_string_equal(info.cache_control, want.cache_control ? want.cache_control : "");
        unsigned char md5[16];
        unsigned md5_len = 0;
        assert_int_equal(EVP_Digest(body, sizeof body - 1, md5, &md5_len, EVP_md5(), NULL), 1);
        char md5_hex[33];
        for (unsigned i = 0; i < 16; i++)
            snprintf(md5_hex + 2 * i, 3, "%02x", md5[i]);
        assert_string_equal(info.etag, md5_hex);
        assert_non_null(strstr(info.last_modified, " GMT"));
    }
    assert_int_equal(storage_get_info(f->store, other, 1024, &got, &info, &err), STORAGE_OK);
    assert_int_equal(got.len, 3);
    assert_memory_equal(got.data, "abc", 3);
    assert_int_equal(info.has_meta, s3);
    if (s3) {
        assert_string_equal(info.content_type, "text/x-test");
        assert_string_equal(info.content_encoding, "identity");
        assert_string_equal(info.cache_control, "private, max-age=7");
    }
    /* Missing keys and size caps behave as for storage_get. */
    key_of(other, f->prefix, "never/written");
    assert_int_equal(storage_get_info(f->store, other, 1024, &got, &info, &err),
                     STORAGE_NOT_FOUND);
    assert_false(info.has_meta);
    assert_int_equal(storage_get_info(f->store, key, sizeof body - 2, &got, &info, &err),
                     STORAGE_ERROR);
    assert_int_equal(storage_get_info(f->store, "../escape", 10, &got, &info, &err),
                     STORAGE_INVALID_KEY);
    buffer_free(&got);
}

#define WITH_STORE(test) cmocka_unit_test_setup_teardown(test, fixture_setup, fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        WITH_STORE(test_conformance_round_trip),
        WITH_STORE(test_conformance_overwrite),
        WITH_STORE(test_conformance_create_identical),
        WITH_STORE(test_conformance_create_different),
        WITH_STORE(test_conformance_create_race),
        WITH_STORE(test_conformance_missing),
        WITH_STORE(test_conformance_delete),
        WITH_STORE(test_conformance_large_objects),
        WITH_STORE(test_conformance_invalid_keys),
        WITH_STORE(test_conformance_batch),
        WITH_STORE(test_conformance_concurrent_writers),
        WITH_STORE(test_conformance_get_info),
        WITH_STORE(test_file_symlinks_are_not_followed),
        WITH_STORE(test_file_no_temp_files_left),
        WITH_STORE(test_file_objects_are_plain_files),
        cmocka_unit_test(test_open_urls),
        cmocka_unit_test(test_valid_keys),
        cmocka_unit_test(test_metadata_for_keys),
    };
    return cmocka_run_group_tests_name("storage", tests, NULL, NULL);
}
