/* gzip: determinism, round trips on a real data tile, the output cap, corrupt input, and
 * interoperability with the gzip(1) tool. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gzip.h"

static void load_tile(buffer *tile)
{
    read_file_or_fail(testdata_path("navigli2025h2/tile/data/000"), tile);
    assert_true(tile->len > 400000); /* the real 256-entry tile, stored uncompressed */
}

static void test_compression_is_deterministic(void **state)
{
    (void)state;
    buffer tile = {0}, first = {0}, second = {0};
    load_tile(&tile);
    assert_int_equal(gzip_compress(tile.data, tile.len, &first, NULL), 0);
    assert_int_equal(gzip_compress(tile.data, tile.len, &second, NULL), 0);
    assert_int_equal(first.len, second.len);
    assert_memory_equal(first.data, second.data, first.len);
    assert_true(first.len < tile.len);
    /* Pinned header: magic, deflate, no flags, mtime 0, XFL 0 (level 6), OS 255. */
    static const uint8_t header[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
    assert_memory_equal(first.data, header, sizeof header);
    /* The trailer carries the input size mod 2^32, little-endian. */
    const uint8_t *isize = first.data + first.len - 4;
    uint32_t size = isize[0] | isize[1] << 8 | isize[2] << 16 | (uint32_t)isize[3] << 24;
    assert_int_equal(size, (uint32_t)tile.len);
    buffer_free(&tile);
    buffer_free(&first);
    buffer_free(&second);
}

static void test_round_trip_real_tile(void **state)
{
    (void)state;
    buffer tile = {0}, packed = {0}, unpacked = {0};
    load_tile(&tile);
    assert_int_equal(gzip_compress(tile.data, tile.len, &packed, NULL), 0);
    assert_true(gzip_is_gzip(packed.data, packed.len));
    error err = {{0}};
    assert_int_equal(gzip_decompress(packed.data, packed.len, tile.len, &unpacked, &err), 0);
    assert_int_equal(unpacked.len, tile.len);
    assert_memory_equal(unpacked.data, tile.data, tile.len);

    /* Both functions append to what the buffer already holds. */
    buffer appended = {0};
    assert_int_equal(buffer_append_str(&appended, "prefix"), 0);
    assert_int_equal(gzip_decompress(packed.data, packed.len, tile.len, &appended, NULL), 0);
    assert_int_equal(appended.len, 6 + tile.len);
    assert_memory_equal(appended.data, "prefix", 6);
    assert_memory_equal(appended.data + 6, tile.data, tile.len);
    buffer_free(&appended);
    buffer_free(&tile);
    buffer_free(&packed);
    buffer_free(&unpacked);
}

static void test_empty_input_round_trips(void **state)
{
    (void)state;
    buffer packed = {0}, unpacked = {0};
    assert_int_equal(gzip_compress("", 0, &packed, NULL), 0);
    assert_int_equal(packed.len, 20); /* 10-byte header, 2-byte empty block, 8-byte trailer */
    assert_int_equal(gzip_decompress(packed.data, packed.len, 0, &unpacked, NULL), 0);
    assert_int_equal(unpacked.len, 0);
    buffer_free(&packed);
    buffer_free(&unpacked);
}

static void test_output_cap_is_enforced(void **state)
{
    (void)state;
    buffer tile = {0}, packed = {0}, out = {0};
    load_tile(&tile);
    assert_int_equal(gzip_compress(tile.data, tile.len, &packed, NULL), 0);
    error err = {{0}};
    assert_int_equal(gzip_decompress(packed.data, packed.len, tile.len - 1, &out, &err), -1);
    assert_non_null(strstr(err.msg, "limit"));
    assert_int_equal(out.len, 0);
    assert_int_equal(gzip_decompress(packed.data, packed.len, tile.len, &out, NULL), 0);
    assert_int_equal(out.len, tile.len);

    /* A bomb: 64 MiB of zeros packs into ~64 KiB; a 1 MiB cap must stop it early without
     * allocating anywhere near the full size. */
    size_t bomb_len = (size_t)64 << 20;
    uint8_t *zeros = calloc(1, bomb_len);
    assert_non_null(zeros);
    buffer bomb = {0}, small = {0};
    assert_int_equal(gzip_compress(zeros, bomb_len, &bomb, NULL), 0);
    free(zeros);
    assert_true(bomb.len < 256 * 1024);
    assert_int_equal(gzip_decompress(bomb.data, bomb.len, 1 << 20, &small, &err), -1);
    assert_non_null(strstr(err.msg, "limit"));
    assert_int_equal(small.len, 0);
    assert_true(small.cap <= (2u << 20) + 1);
    buffer_free(&bomb);
    buffer_free(&small);
    buffer_free(&tile);
    buffer_free(&packed);
    buffer_free(&out);
}

static void test_corrupt_input_is_rejected(void **state)
{
    (void)state;
    buffer tile = {0}, packed = {0}, out = {0};
    load_tile(&tile);
    assert_int_equal(gzip_compress(tile.data, tile.len, &packed, NULL), 0);
    error err = {{0}};

    /* A flipped byte in the deflate stream: bad data or a CRC mismatch, never success. */
    buffer flipped = {0};
    assert_int_equal(buffer_append(&flipped, packed.data, packed.len), 0);
    flipped.data[flipped.len / 2] ^= 0x5a;
    assert_int_equal(gzip_decompress(flipped.data, flipped.len, tile.len, &out, &err), -1);
    assert_int_equal(out.len, 0);

    /* A flipped byte in the CRC trailer. */
    flipped.data[flipped.len / 2] ^= 0x5a;
    flipped.data[flipped.len - 6] ^= 1;
    assert_int_equal(gzip_decompress(flipped.data, flipped.len, tile.len, &out, &err), -1);
    assert_non_null(strstr(err.msg, "corrupt"));

    /* Truncated in the trailer, in the middle, and down to the header alone. */
    size_t cuts[] = {packed.len - 1, packed.len - 4, packed.len / 2, 10, 2};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        error_clear(&err);
        assert_int_equal(gzip_decompress(packed.data, cuts[i], tile.len, &out, &err), -1);
        assert_true(err.msg[0] != 0);
        assert_int_equal(out.len, 0);
    }
    assert_int_equal(gzip_decompress(packed.data, packed.len / 2, tile.len, &out, &err), -1);
    assert_non_null(strstr(err.msg, "truncated"));

    /* Not gzip at all, and gzip followed by garbage. */
    assert_int_equal(gzip_decompress(tile.data, tile.len, tile.len, &out, &err), -1);
    assert_non_null(strstr(err.msg, "not gzip"));
    assert_int_equal(gzip_decompress("", 0, 10, &out, &err), -1);
    buffer trailing = {0};
    assert_int_equal(buffer_append(&trailing, packed.data, packed.len), 0);
    assert_int_equal(buffer_append_str(&trailing, "junk"), 0);
    assert_int_equal(gzip_decompress(trailing.data, trailing.len, tile.len, &out, &err), -1);
    assert_non_null(strstr(err.msg, "trailing"));
    assert_int_equal(out.len, 0);

    buffer_free(&trailing);
    buffer_free(&flipped);
    buffer_free(&tile);
    buffer_free(&packed);
    buffer_free(&out);
}

static void test_concatenated_members_are_one_stream(void **state)
{
    (void)state;
    buffer both = {0}, out = {0};
    assert_int_equal(gzip_compress("hello, ", 7, &both, NULL), 0);
    assert_int_equal(gzip_compress("world", 5, &both, NULL), 0);
    assert_int_equal(gzip_decompress(both.data, both.len, 100, &out, NULL), 0);
    assert_int_equal(out.len, 12);
    assert_memory_equal(out.data, "hello, world", 12);
    /* The cap counts across members. */
    buffer_reset(&out);
    assert_int_equal(gzip_decompress(both.data, both.len, 11, &out, NULL), -1);
    buffer_free(&both);
    buffer_free(&out);
}

static void test_magic_detection(void **state)
{
    (void)state;
    assert_true(gzip_is_gzip("\x1f\x8b", 2));
    assert_true(gzip_is_gzip("\x1f\x8b\x08\x00", 4));
    assert_false(gzip_is_gzip("\x1f", 1));
    assert_false(gzip_is_gzip("", 0));
    assert_false(gzip_is_gzip("\x8b\x1f", 2));
    assert_false(gzip_is_gzip("\x00\x00\x01\x96", 4)); /* an uncompressed data tile */
}

static void test_gzip_tool_decodes_output(void **state)
{
    (void)state;
    buffer tile = {0}, packed = {0}, decoded = {0};
    load_tile(&tile);
    assert_int_equal(gzip_compress(tile.data, tile.len, &packed, NULL), 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/tile.gz", test_tmpdir("gzip_tool"));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(packed.data, 1, packed.len, f), packed.len);
    assert_int_equal(fclose(f), 0);

    char command[4300];
    snprintf(command, sizeof command, "gzip -dc '%s'", path);
    FILE *pipe = popen(command, "r");
    assert_non_null(pipe);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, pipe)) > 0)
        assert_int_equal(buffer_append(&decoded, chunk, n), 0);
    assert_int_equal(pclose(pipe), 0);
    assert_int_equal(decoded.len, tile.len);
    assert_memory_equal(decoded.data, tile.data, tile.len);
    buffer_free(&tile);
    buffer_free(&packed);
    buffer_free(&decoded);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compression_is_deterministic),
        cmocka_unit_test(test_round_trip_real_tile),
        cmocka_unit_test(test_empty_input_round_trips),
        cmocka_unit_test(test_output_cap_is_enforced),
        cmocka_unit_test(test_corrupt_input_is_rejected),
        cmocka_unit_test(test_concatenated_members_are_one_stream),
        cmocka_unit_test(test_magic_detection),
        cmocka_unit_test(test_gzip_tool_decodes_output),
    };
    return cmocka_run_group_tests_name("gzip", tests, NULL, NULL);
}
