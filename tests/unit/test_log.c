/* log: one logfmt line per event, levels filter, hostile messages stay on one line. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sha256.h"

/* Runs fn with stderr redirected into a temp file and returns what it wrote. */
static void capture(void (*fn)(void), buffer *out)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    char chunk[4096];
    size_t n;
    buffer_reset(out);
    while ((n = fread(chunk, 1, sizeof chunk, tmp)) > 0)
        buffer_append(out, chunk, n);
    buffer_terminate(out);
    fclose(tmp);
}

static void emit_levels(void)
{
    log_init("tester", LOG_INFO);
    log_debug("hidden", "n=%d", 1);
    log_info("round committed", "size=%d root=%s", 512, "abc");
    log_warn("plain", "");
    log_error("bad \"peer\"\nsent\tthis", "peer=%s", "127.0.0.1:9\nx");
}

static void test_lines_and_levels(void **state)
{
    (void)state;
    buffer out = {0};
    capture(emit_levels, &out);
    const char *text = (const char *)out.data;
    assert_null(strstr(text, "hidden"));
    assert_non_null(strstr(text, "level=info comp=tester msg=\"round committed\" size=512 root=abc\n"));
    assert_non_null(strstr(text, "level=warn comp=tester msg=\"plain\"\n"));
    /* Quotes escaped, control characters neutralised: one event is one line. */
    assert_non_null(strstr(text, "msg=\"bad \\\"peer\\\"?sent?this\" peer=127.0.0.1:9 x\n"));
    int lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 3);
    assert_int_equal(strncmp(text, "ts=", 3), 0);
    buffer_free(&out);
}

static void test_level_parse(void **state)
{
    (void)state;
    log_level l;
    assert_int_equal(log_level_parse("warn", &l), 0);
    assert_int_equal(l, LOG_WARN);
    assert_int_equal(log_level_parse("verbose", &l), -1);
    log_set_level(LOG_ERROR);
    assert_int_equal(log_get_level(), LOG_ERROR);
}

static void test_sha256_known_answers(void **state)
{
    (void)state;
    uint8_t got[32], want[32];
    sha256("", 0, got);
    hex_or_fail(want, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_memory_equal(got, want, 32);
    const void *parts[] = {"a", "bc"};
    const size_t lens[] = {1, 2};
    sha256_parts(got, 2, parts, lens);
    hex_or_fail(want, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_memory_equal(got, want, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_and_levels),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_sha256_known_answers),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
