/* Helpers shared by the cmocka unit tests (linked into every test binary). */
#ifndef TEGULA_TESTUTIL_H
#define TEGULA_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buffer.h"

/* Path of a file under ../shared/testdata (or $TEGULA_TESTDATA). Static storage, reused. */
const char *testdata_path(const char *relative);
/* A fresh empty directory under $TEGULA_TMP (default build/tmp) for this test. */
const char *test_tmpdir(const char *name);
/* Reads a whole file into out; fails the test if it cannot. */
void read_file_or_fail(const char *path, buffer *out);
/* The exact DER of the first PEM block of a testdata file (no re-encoding by OpenSSL). */
void pem_der_or_fail(const char *relative, buffer *der);
/* Decodes hex or base64 into a fixed array; fails the test on bad input. */
void hex_or_fail(uint8_t *out, size_t len, const char *hex);

#endif
