/* tls_codec, base64, hex, buffer. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "tls_codec.h"

static void test_integers_round_trip(void **state)
{
    (void)state;
    buffer b = {0};
    assert_int_equal(tls_put_u8(&b, 0xab), 0);
    assert_int_equal(tls_put_u16(&b, 0x1234), 0);
    assert_int_equal(tls_put_u24(&b, 0x56789a), 0);
    assert_int_equal(tls_put_u40(&b, 0xffffffffffULL), 0);
    assert_int_equal(tls_put_u64(&b, 0x0102030405060708ULL), 0);
    static const uint8_t want[] = {0xab, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);

    tls_reader r;
    tls_reader_init(&r, b.data, b.len);
    uint8_t u8; uint16_t u16; uint32_t u24; uint64_t u40, u64;
    assert_int_equal(tls_get_u8(&r, &u8), 0);
    assert_int_equal(tls_get_u16(&r, &u16), 0);
    assert_int_equal(tls_get_u24(&r, &u24), 0);
    assert_int_equal(tls_get_u40(&r, &u40), 0);
    assert_int_equal(tls_get_u64(&r, &u64), 0);
    assert_int_equal(u8, 0xab);
    assert_int_equal(u16, 0x1234);
    assert_int_equal(u24, 0x56789a);
    assert_true(u40 == 0xffffffffffULL);
    assert_true(u64 == 0x0102030405060708ULL);
    assert_true(tls_reader_empty(&r));
    assert_int_equal(tls_get_u8(&r, &u8), -1);
    buffer_free(&b);
}

static void test_values_too_large_are_refused(void **state)
{
    (void)state;
    buffer b = {0};
    assert_int_equal(tls_put_u24(&b, 0x1000000), -1);
    assert_int_equal(tls_put_u40(&b, 1ULL << 40), -1);
    uint8_t big[300] = {0};
    assert_int_equal(tls_put_vec(&b, 1, big, 256), -1);
    assert_int_equal(tls_put_vec(&b, 1, big, 255), 0);
    assert_int_equal(b.len, 256);
    assert_int_equal(tls_put_vec(&b, 4, big, 1), -1);
    buffer_free(&b);
}

static void test_vectors_and_bounds(void **state)
{
    (void)state;
    buffer b = {0};
    size_t mark;
    assert_int_equal(tls_vec_begin(&b, 2, &mark), 0);
    assert_int_equal(tls_put_vec(&b, 3, (const uint8_t *)"abc", 3), 0);
    assert_int_equal(tls_vec_end(&b, 2, mark), 0);
    static const uint8_t want[] = {0, 6, 0, 0, 3, 'a', 'b', 'c'};
    assert_memory_equal(b.data, want, sizeof want);

    tls_reader r, sub;
    const uint8_t *p;
    size_t n;
    tls_reader_init(&r, b.data, b.len);
    assert_int_equal(tls_get_vec_reader(&r, 2, &sub), 0);
    assert_int_equal(tls_get_vec(&sub, 3, &p, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(p, "abc", 3);
    assert_true(tls_reader_empty(&sub) && tls_reader_empty(&r));

    /* A length prefix that points past the end must fail and leave the reader as it was. */
    for (size_t cut = 0; cut < b.len; cut++) {
        tls_reader_init(&r, b.data, cut);
        assert_int_equal(tls_get_vec_reader(&r, 2, &sub), -1);
        assert_int_equal(r.left, cut);
    }
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 1};
    tls_reader_init(&r, huge, sizeof huge);
    assert_int_equal(tls_get_vec(&r, 3, &p, &n), -1);
    buffer_free(&b);
}

static void test_base64_known_answers(void **state)
{
    (void)state;
    static const struct { const char *plain, *b64; } cases[] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buffer enc = {0}, dec = {0};
        assert_int_equal(base64_encode(&enc, (const uint8_t *)cases[i].plain, strlen(cases[i].plain)), 0);
        assert_int_equal(enc.len, strlen(cases[i].b64));
        assert_memory_equal(enc.data, cases[i].b64, enc.len);
        assert_int_equal(base64_decode(&dec, cases[i].b64, strlen(cases[i].b64)), 0);
        assert_int_equal(dec.len, strlen(cases[i].plain));
        if (dec.len)
            assert_memory_equal(dec.data, cases[i].plain, dec.len);
        buffer_free(&enc);
        buffer_free(&dec);
    }
    /* SPEC §1.3: the leaf_index extension for index 1,234,067. */
    static const uint8_t ext[] = {0, 0, 5, 0, 0, 0x12, 0xd4, 0x93};
    char out[16];
    base64_encode_to(out, ext, sizeof ext);
    assert_string_equal(out, "AAAFAAAS1JM=");
}

static void test_base64_rejects_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {"Zg=", "Zg", "Z===", "Zm9v!", "Zm=v", "Zh==", "Zm9=", "Zg==Zg==",
                                "Zm9v\n", " Zm9v", "=Zm9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buffer dec = {0};
        assert_int_equal(base64_decode(&dec, bad[i], strlen(bad[i])), -1);
        assert_int_equal(dec.len, 0);
        buffer_free(&dec);
    }
    uint8_t h[32];
    assert_int_equal(base64_decode_exact(h, 32, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", 44), 0);
    assert_int_equal(h[0], 0xe3);
    assert_int_equal(base64_decode_exact(h, 31, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", 44), -1);
}

static void test_hex(void **state)
{
    (void)state;
    uint8_t b[4];
    char s[9];
    assert_int_equal(hex_decode(b, 4, "DEADbeef", 8), 0);
    hex_encode(s, b, 4);
    assert_string_equal(s, "deadbeef");
    assert_int_equal(hex_decode(b, 4, "deadbee", 7), -1);
    assert_int_equal(hex_decode(b, 4, "deadbeeg", 8), -1);
}

static void test_buffer_printf_and_steal(void **state)
{
    (void)state;
    buffer b = {0};
    assert_int_equal(buffer_printf(&b, "%s-%d", "x", 42), 0);
    assert_int_equal(buffer_printf(&b, "/%03d", 7), 0);
    assert_string_equal((char *)b.data, "x-42/007");
    size_t len;
    uint8_t *p = buffer_steal(&b, &len);
    assert_int_equal(len, 8);
    assert_null(b.data);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers_round_trip),
        cmocka_unit_test(test_values_too_large_are_refused),
        cmocka_unit_test(test_vectors_and_bounds),
        cmocka_unit_test(test_base64_known_answers),
        cmocka_unit_test(test_base64_rejects_malformed),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_buffer_printf_and_steal),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
