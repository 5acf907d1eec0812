/* sequencer staging bundles: deterministic encoding, exact layout, strict parsing. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "../../sequencer/staging.h"
#include "tls_codec.h"

static void test_key(void **state)
{
    (void)state;
    uint8_t root[32];
    for (int i = 0; i < 32; i++)
        root[i] = (uint8_t)i;
    char key[STAGING_KEY_MAX];
    staging_key(513, root, key);
    assert_string_equal(key, "staging/513-000102030405060708090a0b0c0d0e0f"
                             "101112131415161718191a1b1c1d1e1f");
}

static void test_round_trip_sorted_and_exact(void **state)
{
    (void)state;
    const uint8_t a[] = {1, 2, 3}, b[] = {9}, c[] = {0xff, 0xfe};
    staging_object objs[] = {
        {"tile/data/000.p/5", a, sizeof a},
        {"tile/0/000.p/5", b, sizeof b},
        {"tile/0/000", c, 0}, /* empty data is allowed by the format */
    };
    buffer out = {0};
    error err = {{0}};
    assert_int_equal(staging_encode(&out, objs, 3, &err), 0);
    /* Keys sorted bytewise: tile/0/000 < tile/0/000.p/5 < tile/data/000.p/5. */
    buffer want = {0};
    const char *keys[] = {"tile/0/000", "tile/0/000.p/5", "tile/data/000.p/5"};
    const uint8_t *datas[] = {c, b, a};
    size_t lens[] = {0, 1, 3};
    for (int i = 0; i < 3; i++) {
        tls_put_u16(&want, (uint16_t)strlen(keys[i]));
        buffer_append_str(&want, keys[i]);
        uint8_t l[4];
        be_store(l, lens[i], 4);
        buffer_append(&want, l, 4);
        buffer_append(&want, datas[i], lens[i]);
    }
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);

    /* Any input order gives the same bytes. */
    staging_object again[] = {objs[2], objs[1], objs[0]};
    buffer out2 = {0};
    assert_int_equal(staging_encode(&out2, again, 3, &err), 0);
    assert_int_equal(out2.len, out.len);
    assert_memory_equal(out2.data, out.data, out.len);

    staging_bundle bundle;
    assert_int_equal(staging_parse(&bundle, out.data, out.len, &err), 0);
    assert_int_equal(bundle.count, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(bundle.objects[i].key, keys[i]);
        assert_int_equal(bundle.objects[i].len, lens[i]);
        if (lens[i])
            assert_memory_equal(bundle.objects[i].data, datas[i], lens[i]);
    }
    const staging_object *found = staging_find(&bundle, "tile/0/000.p/5");
    assert_non_null(found);
    assert_int_equal(found->len, 1);
    assert_int_equal(found->data[0], 9);
    assert_null(staging_find(&bundle, "tile/0/001"));
    staging_bundle_free(&bundle);

    /* The empty bundle. */
    assert_int_equal(staging_parse(&bundle, (const uint8_t *)"", 0, &err), 0);
    assert_int_equal(bundle.count, 0);
    staging_bundle_free(&bundle);
    buffer_free(&out);
    buffer_free(&out2);
    buffer_free(&want);
}

static void test_encode_rejects(void **state)
{
    (void)state;
    const uint8_t d[] = {1};
    error err = {{0}};
    buffer out = {0};
    staging_object dup[] = {{"tile/0/000", d, 1}, {"tile/0/000", d, 1}};
    assert_int_equal(staging_encode(&out, dup, 2, &err), -1);
    assert_non_null(strstr(err.msg, "duplicate"));
    staging_object bad[] = {{"checkpoint", d, 1}};
    assert_int_equal(staging_encode(&out, bad, 1, &err), -1);
    staging_object bad2[] = {{"tile/0/0000", d, 1}};
    assert_int_equal(staging_encode(&out, bad2, 1, &err), -1);
    staging_object empty[] = {{"", d, 1}};
    assert_int_equal(staging_encode(&out, empty, 1, &err), -1);
    assert_int_equal(out.len, 0);
    buffer_free(&out);
}

static void expect_parse_fails(const buffer *b, const char *why)
{
    staging_bundle bundle;
    error err = {{0}};
    assert_int_equal(staging_parse(&bundle, b->data, b->len, &err), -1);
    if (why != NULL && strstr(err.msg, why) == NULL)
        fail_msg("expected '%s' in '%s'", why, err.msg);
}

static void put_object(buffer *b, const char *key, const void *data, uint32_t len)
{
    tls_put_u16(b, (uint16_t)strlen(key));
    buffer_append_str(b, key);
    uint8_t l[4];
    be_store(l, len, 4);
    buffer_append(b, l, 4);
    buffer_append(b, data, len);
}

static void test_parse_rejects_malformed(void **state)
{
    (void)state;
    buffer good = {0};
    put_object(&good, "tile/0/000.p/1", "0123456789abcdef0123456789abcdef", 32);
    put_object(&good, "tile/data/000.p/1", "xyz", 3);
    staging_bundle bundle;
    error err = {{0}};
    assert_int_equal(staging_parse(&bundle, good.data, good.len, &err), 0);
    staging_bundle_free(&bundle);

    /* Every truncation fails, except at the object boundary (the format has no count;
     * recovery checks the replayed tiles against the lock's root). */
    size_t first_len = 2 + strlen("tile/0/000.p/1") + 4 + 32;
    for (size_t cut = 1; cut < good.len; cut++) {
        if (good.len - cut == first_len)
            continue;
        buffer t = {0};
        buffer_append(&t, good.data, good.len - cut);
        expect_parse_fails(&t, NULL);
        buffer_free(&t);
    }
    /* Trailing garbage: a lone byte is not a key length. */
    buffer t = {0};
    buffer_append(&t, good.data, good.len);
    buffer_append_byte(&t, 0);
    expect_parse_fails(&t, "truncated");
    buffer_free(&t);

    /* Out of order, duplicate. */
    buffer b = {0};
    put_object(&b, "tile/data/000.p/1", "x", 1);
    put_object(&b, "tile/0/000.p/1", "y", 1);
    expect_parse_fails(&b, "strictly increasing");
    buffer_free(&b);
    put_object(&b, "tile/0/000.p/1", "x", 1);
    put_object(&b, "tile/0/000.p/1", "x", 1);
    expect_parse_fails(&b, "strictly increasing");
    buffer_free(&b);
    /* Keys that are not tile paths. */
    const char *bad_keys[] = {"checkpoint", "tile/0/000.p/0", "tile/6/000", "../tile/0/000",
                              "tile/0/x000/001", "tile/data/000.p/256", ""};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        put_object(&b, bad_keys[i], "x", 1);
        expect_parse_fails(&b, NULL);
        buffer_free(&b);
    }
    /* NUL inside a key. */
    tls_put_u16(&b, 11);
    buffer_append(&b, "tile/0/000\0", 11);
    buffer_append(&b, "\0\0\0\1x", 5);
    expect_parse_fails(&b, "NUL");
    buffer_free(&b);
    /* A data length far past the end. */
    tls_put_u16(&b, 10);
    buffer_append_str(&b, "tile/0/000");
    buffer_append(&b, "\xff\xff\xff\xff", 4);
    expect_parse_fails(&b, "truncated data");
    buffer_free(&b);
    buffer_free(&good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_round_trip_sorted_and_exact),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_parse_rejects_malformed),
    };
    return cmocka_run_group_tests_name("sequencer_staging", tests, NULL, NULL);
}
