/* ring: the score is SipHash-2-4 keyed by SHA-256(member) (checked against OpenSSL's own
 * SipHash), choices are deterministic and balanced, adding a member moves only its share, and
 * down members are skipped in score order. */
#include "testutil.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

#include "ring.h"
#include "sha256.h"

#define KEYS 100000

/* SipHash-2-4, 64-bit output, computed by OpenSSL as an independent reference. */
static uint64_t openssl_siphash(const uint8_t key[16], const uint8_t *data, size_t len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    assert_non_null(mac);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    assert_non_null(ctx);
    size_t size = 8;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                           OSSL_PARAM_construct_end()};
    assert_int_equal(EVP_MAC_init(ctx, key, 16, params), 1);
    assert_int_equal(EVP_MAC_update(ctx, data, len), 1);
    uint8_t out[8];
    size_t out_len = 0;
    assert_int_equal(EVP_MAC_final(ctx, out, &out_len, sizeof out), 1);
    assert_int_equal(out_len, 8);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | out[i];
    return v;
}

static void test_score_is_siphash_keyed_by_member_digest(void **state)
{
    (void)state;
    /* The reference harness agrees with the SipHash paper's test vector (key 00..0f,
     * message 00..0e), so the byte order below is the specified one. */
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    assert_true(openssl_siphash(key, msg, 15) == 0xa129ca6149be45e5ULL);
    assert_true(openssl_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ULL);

    const char *members[] = {"tcp://127.0.0.1:9101", "batcher-0", "x"};
    for (size_t m = 0; m < 3; m++) {
        uint8_t digest[SHA256_LEN];
        sha256(members[m], strlen(members[m]), digest);
        for (size_t len = 0; len <= 64; len++)
            assert_true(ring_score(members[m], msg, len) == openssl_siphash(digest, msg, len));
    }
}

static void key_for(uint64_t i, uint8_t out[SHA256_LEN])
{
    uint8_t raw[8];
    for (int b = 0; b < 8; b++)
        raw[b] = (uint8_t)(i >> (8 * b));
    sha256(raw, sizeof raw, out); /* like a dedup key */
}

static ring *ring_of(size_t count, error *err)
{
    char names[16][32];
    const char *members[16];
    for (size_t i = 0; i < count; i++) {
        snprintf(names[i], sizeof names[i], "tcp://10.0.0.%zu:9100", i + 1);
        members[i] = names[i];
    }
    return ring_new(members, count, err);
}

static void test_deterministic_and_order_independent(void **state)
{
    (void)state;
    const char *forward[] = {"a", "b", "c", "d", "e"};
    const char *backward[] = {"e", "d", "c", "b", "a"};
    ring *r1 = ring_new(forward, 5, NULL), *r2 = ring_new(backward, 5, NULL);
    assert_non_null(r1);
    assert_non_null(r2);
    for (uint64_t i = 0; i < 1000; i++) {
        uint8_t key[SHA256_LEN];
        key_for(i, key);
        size_t o1[5], o2[5], again[5];
        assert_int_equal(ring_order(r1, key, sizeof key, o1, 5), 5);
        assert_int_equal(ring_order(r2, key, sizeof key, o2, 5), 5);
        assert_int_equal(ring_order(r1, key, sizeof key, again, 5), 5);
        for (int k = 0; k < 5; k++) {
            assert_int_equal(o1[k], again[k]);
            assert_string_equal(ring_member(r1, o1[k]), ring_member(r2, o2[k]));
            if (k > 0)
                assert_true(ring_score(ring_member(r1, o1[k - 1]), key, sizeof key) >=
                            ring_score(ring_member(r1, o1[k]), key, sizeof key));
        }
        assert_int_equal(ring_pick(r1, key, sizeof key), (int)o1[0]);
        /* A shorter answer is a prefix of the full order. */
        size_t top2[2];
        assert_int_equal(ring_order(r1, key, sizeof key, top2, 2), 2);
        assert_int_equal(top2[0], o1[0]);
        assert_int_equal(top2[1], o1[1]);
    }
    ring_free(r1);
    ring_free(r2);
}

static void test_balanced_over_ten_members(void **state)
{
    (void)state;
    ring *r = ring_of(10, NULL);
    assert_non_null(r);
    size_t counts[10] = {0};
    for (uint64_t i = 0; i < KEYS; i++) {
        uint8_t key[SHA256_LEN];
        key_for(i, key);
        int m = ring_pick(r, key, sizeof key);
        assert_true(m >= 0 && m < 10);
        counts[m]++;
    }
    for (int m = 0; m < 10; m++) {
        if (counts[m] < 9000 || counts[m] > 11000)
            fail_msg("member %d got %zu of %d keys (mean 10000)", m, counts[m], KEYS);
    }
    ring_free(r);
}

static void test_adding_a_member_moves_only_its_share(void **state)
{
    (void)state;
    ring *ten = ring_of(10, NULL), *eleven = ring_of(11, NULL);
    assert_non_null(ten);
    assert_non_null(eleven);
    int newcomer = ring_find(eleven, "tcp://10.0.0.11:9100");
    assert_int_equal(newcomer, 10);
    size_t moved = 0;
    for (uint64_t i = 0; i < KEYS; i++) {
        uint8_t key[SHA256_LEN];
        key_for(i, key);
        const char *before = ring_member(ten, (size_t)ring_pick(ten, key, sizeof key));
        int after = ring_pick(eleven, key, sizeof key);
        if (strcmp(before, ring_member(eleven, (size_t)after)) != 0) {
            moved++;
            assert_int_equal(after, newcomer);
        }
    }
    double fraction = (double)moved / KEYS;
    if (fraction < 0.06 || fraction > 0.12)
        fail_msg("%.4f of keys moved, expected about 1/11", fraction);
    ring_free(ten);
    ring_free(eleven);
}

static void test_down_members_are_skipped_in_order(void **state)
{
    (void)state;
    ring *r = ring_of(6, NULL);
    assert_non_null(r);
    for (uint64_t i = 0; i < 200; i++) {
        uint8_t key[SHA256_LEN];
        key_for(i, key);
        size_t full[6], now[6];
        assert_int_equal(ring_order(r, key, sizeof key, full, 6), 6);

        /* Down the first and third choices: the rest keep their relative order. */
        ring_set_down(r, full[0], true);
        ring_set_down(r, full[2], true);
        assert_true(ring_is_down(r, full[0]));
        assert_int_equal(ring_order(r, key, sizeof key, now, 6), 4);
        assert_int_equal(now[0], full[1]);
        assert_int_equal(now[1], full[3]);
        assert_int_equal(now[2], full[4]);
        assert_int_equal(now[3], full[5]);
        assert_int_equal(ring_pick(r, key, sizeof key), (int)full[1]);
        assert_int_equal(ring_order(r, key, sizeof key, now, 1), 1);
        assert_int_equal(now[0], full[1]);

        /* Everyone down: nothing to pick. */
        for (size_t m = 0; m < 6; m++)
            ring_set_down(r, m, true);
        assert_int_equal(ring_order(r, key, sizeof key, now, 6), 0);
        assert_int_equal(ring_pick(r, key, sizeof key), -1);

        /* Back up: the original order returns. */
        for (size_t m = 0; m < 6; m++)
            ring_set_down(r, m, false);
        assert_int_equal(ring_order(r, key, sizeof key, now, 6), 6);
        assert_memory_equal(now, full, sizeof full);
    }
    ring_free(r);
}

static void test_construction_rules(void **state)
{
    (void)state;
    error err = {{0}};
    const char *dup[] = {"a", "b", "a"};
    assert_null(ring_new(dup, 3, &err));
    assert_string_equal(err.msg, "ring: member a is listed twice");
    const char *empty[] = {"a", ""};
    assert_null(ring_new(empty, 2, &err));
    assert_string_equal(err.msg, "ring: member 1 has no name or one longer than 255 bytes");
    assert_null(ring_new(dup, RING_MAX_MEMBERS + 1, &err));
    assert_string_equal(err.msg, "ring: 1025 members, at most 1024 allowed");

    ring *none = ring_new(NULL, 0, &err);
    assert_non_null(none);
    assert_int_equal(ring_size(none), 0);
    assert_int_equal(ring_pick(none, "k", 1), -1);
    ring_free(none);

    const char *two[] = {"a", "b"};
    ring *r = ring_new(two, 2, &err);
    assert_int_equal(ring_size(r), 2);
    assert_string_equal(ring_member(r, 1), "b");
    assert_null(ring_member(r, 2));
    assert_int_equal(ring_find(r, "b"), 1);
    assert_int_equal(ring_find(r, "c"), -1);
    size_t out[8];
    assert_int_equal(ring_order(r, "k", 1, out, 8), 2); /* cap above the size is fine */
    assert_int_equal(ring_order(r, "k", 1, out, 0), 0);
    ring_free(r);
    ring_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_is_siphash_keyed_by_member_digest),
        cmocka_unit_test(test_deterministic_and_order_independent),
        cmocka_unit_test(test_balanced_over_ten_members),
        cmocka_unit_test(test_adding_a_member_moves_only_its_share),
        cmocka_unit_test(test_down_members_are_skipped_in_order),
        cmocka_unit_test(test_construction_rules),
    };
    return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
