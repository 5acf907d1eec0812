/* tegula keygen: makes a log's P-256 signing key, or shows the identity of an existing one. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base64.h"
#include "certgen.h"
#include "commands.h"
#include "sha256.h"

/* Prints the public key and the values a log list and a config need: the log ID
 * (SHA-256 of the DER SubjectPublicKeyInfo) and the SPKI itself. */
static int print_key_identity(const tool_command *self, EVP_PKEY *key)
{
    buffer spki = {0}, pem = {0}, spki_b64 = {0};
    error err = {{0}};
    int status = TOOL_EXIT_OK;
    if (certgen_spki_der(key, &spki, &err) != 0 || certgen_public_key_pem(key, &pem, &err) != 0) {
        status = tool_fail(self, "%s", err.msg);
        goto done;
    }
    uint8_t log_id[SHA256_LEN];
    char log_id_hex[2 * SHA256_LEN + 1], log_id_b64[64];
    sha256(spki.data, spki.len, log_id);
    hex_encode(log_id_hex, log_id, sizeof log_id);
    base64_encode_to(log_id_b64, log_id, sizeof log_id);
    if (base64_encode(&spki_b64, spki.data, spki.len) != 0) {
        status = tool_fail(self, "out of memory");
        goto done;
    }
    /* "EC prime256v1", "RSA 2048" */
    const char *type = EVP_PKEY_get0_type_name(key);
    char group[64];
    size_t group_len = 0;
    if (!EVP_PKEY_get_group_name(key, group, sizeof group, &group_len))
        snprintf(group, sizeof group, "%d", EVP_PKEY_get_bits(key));
    printf("%s", (const char *)pem.data);
    printf("key_type: %s %s\n", type ? type : "unknown", group);
    printf("log_id_base64: %s\n", log_id_b64);
    printf("log_id_hex: %s\n", log_id_hex);
    printf("spki_base64: %s\n", (const char *)spki_b64.data);
done:
    buffer_free(&spki);
    buffer_free(&pem);
    buffer_free(&spki_b64);
    return status;
}

static int write_new_key(const tool_command *self, const char *path, bool force)
{
    /* Checked first so a refusal costs nothing; certgen_write_file checks again atomically. */
    if (!force && access(path, F_OK) == 0)
        return tool_fail(self,
                         "%s already exists; refusing to overwrite a key (--force replaces it)",
                         path);
    error err = {{0}};
    buffer pem = {0};
    int status = TOOL_EXIT_OK;
    EVP_PKEY *key = certgen_key_generate(CERTGEN_KEY_P256, &err);
    if (!key || certgen_private_key_pem(key, &pem, &err) != 0 ||
        certgen_write_file(path, pem.data, pem.len, 0600, force, &err) != 0) {
        status = tool_fail(self, "%s", err.msg);
        goto done;
    }
    fprintf(stderr, "tegula keygen: wrote a new P-256 private key to %s (PKCS#8 PEM, mode 0600)\n",
            path);
    status = print_key_identity(self, key);
done:
    certgen_buffer_cleanse(&pem);
    EVP_PKEY_free(key);
    return status;
}

static int show_key(const tool_command *self, const char *path)
{
    error err = {{0}};
    bool is_private = false;
    EVP_PKEY *key = certgen_key_read(path, true, &is_private, &err);
    if (!key)
        return tool_fail(self, "%s", err.msg);
    /* A public key file may be world-readable; a private one should not be. */
    struct stat st;
    if (is_private && stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
        fprintf(stderr, "tegula keygen: warning: %s is readable by group or others (mode %04o)\n",
                path, (unsigned)(st.st_mode & 07777));
    int status = print_key_identity(self, key);
    EVP_PKEY_free(key);
    return status;
}

static int keygen_run(const tool_command *self, int argc, char **argv)
{
    static const struct option options[] = {
        {"out", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {"public", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL, *public_path = NULL;
    bool force = false;
    int opt;
    while ((opt = getopt_long(argc, argv, ":o:fh", options, NULL)) != -1) {
        switch (opt) {
        case 'o':
            out = optarg;
            break;
        case 'f':
            force = true;
            break;
        case 'p':
            public_path = optarg;
            break;
        case 'h':
            tool_print_help(self, stdout);
            return TOOL_EXIT_OK;
        default:
            return tool_bad_option(self, opt, argv);
        }
    }
    if (optind < argc)
        return tool_usage_error(self, "unexpected argument '%s'", argv[optind]);
    if (!out == !public_path)
        return tool_usage_error(self, "give exactly one of -o FILE or --public FILE");
    if (force && public_path)
        return tool_usage_error(self, "--force only goes with -o");
    if (out && out[0] == 0)
        return tool_usage_error(self, "-o needs a file name");
    return out ? write_new_key(self, out, force) : show_key(self, public_path);
}

const tool_command command_keygen = {
    .name = "keygen",
    .summary = "make a log signing key (P-256), or show a key's log ID",
    .synopsis = "Usage: tegula keygen -o FILE [--force]\n"
                "       tegula keygen --public FILE",
    .details =
        "\n"
        "Makes a new ECDSA P-256 log key and writes it to FILE as unencrypted PKCS#8 PEM,\n"
        "mode 0600. The private key is never printed. Then prints the public key (PEM), the\n"
        "key type, the log ID (SHA-256 of the DER SubjectPublicKeyInfo) in base64 and hex,\n"
        "and the SubjectPublicKeyInfo in base64 (the \"key\" of a log list entry).\n"
        "\n"
        "Options:\n"
        "  -o, --out FILE     where to write the new private key; refuses an existing file\n"
        "  -f, --force        replace an existing FILE (atomically)\n"
        "      --public FILE  print the same information for an existing key (private or\n"
        "                     public PEM) without writing anything\n"
        "  -h, --help         show this help\n",
    .run = keygen_run,
};
