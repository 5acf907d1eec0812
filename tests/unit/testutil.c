#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "base64.h"

const char *testdata_path(const char *relative)
{
    static char path[4096];
    const char *root = getenv("TEGULA_TESTDATA");
    snprintf(path, sizeof path, "%s/%s", root ? root : "../shared/testdata", relative);
    return path;
}

const char *test_tmpdir(const char *name)
{
    static char path[4096];
    const char *root = getenv("TEGULA_TMP");
    char cmd[4300];
    snprintf(path, sizeof path, "%s/%s", root ? root : "build/tmp", name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", path, path);
    if (system(cmd) != 0)
        fail_msg("cannot create %s", path);
    return path;
}

void read_file_or_fail(const char *path, buffer *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(buffer_append(out, chunk, n), 0);
    fclose(f);
}

void hex_or_fail(uint8_t *out, size_t len, const char *hex)
{
    if (hex_decode(out, len, hex, strlen(hex)) != 0)
        fail_msg("bad hex test constant %s", hex);
}

void pem_der_or_fail(const char *relative, buffer *der)
{
    BIO *bio = BIO_new_file(testdata_path(relative), "r");
    if (!bio)
        fail_msg("cannot open %s", relative);
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long len = 0;
    if (PEM_read_bio(bio, &name, &header, &data, &len) != 1)
        fail_msg("no PEM block in %s", relative);
    buffer_reset(der);
    assert_int_equal(buffer_append(der, data, (size_t)len), 0);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    BIO_free(bio);
}
