/* tegula mkchain: a test CA (root + intermediate) and leaf / precertificate chains from it,
 * as PEM or as add-chain / add-pre-chain JSON bodies. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/rand.h>

#include "base64.h"
#include "certgen.h"
#include "commands.h"

#define MAX_COUNT 10000000UL

typedef struct mkchain_options {
    const char *ca_dir;
    bool init, leaf, precert, no_root;
    bool key_type_given;
    certgen_key_type key_type;
    const char *sans[CERTGEN_MAX_SANS];
    size_t san_count;
    time_t not_after;
    const char *out, *json, *out_dir;
    unsigned long count; /* 0: not given */
} mkchain_options;

/* Writes a whole output file, or standard output for "-". Chains are test data that can
 * be made again, so no temporary file or fsync: --count must stay fast. */
static int write_output(const char *path, const buffer *data, error *err)
{
    bool to_stdout = strcmp(path, "-") == 0;
    FILE *f = to_stdout ? stdout : fopen(path, "wb");
    if (!f)
        return error_set(err, "creating %s: %s", path, strerror(errno));
    bool ok = fwrite(data->data, 1, data->len, f) == data->len;
    if (to_stdout)
        ok = fflush(f) == 0 && ok;
    else
        ok = fclose(f) == 0 && ok;
    if (!ok)
        return error_set(err, "writing %s: %s", path, strerror(errno));
    return 0;
}

/* A fresh name per chain when none is given, so every chain differs in SAN too. */
static int random_san(char out[64], error *err)
{
    uint8_t bytes[8];
    char hex[2 * sizeof bytes + 1];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        return error_set(err, "generating a random SAN");
    hex_encode(hex, bytes, sizeof bytes);
    snprintf(out, 64, "%s.tegula.test", hex);
    return 0;
}

/* Mints one chain and writes it where the options say. */
static int mint_one(certgen *gen, const mkchain_options *opt, unsigned long index, error *err)
{
    char san_storage[64];
    const char *default_san[1] = {san_storage};
    certgen_leaf leaf = {
        .precert = opt->precert,
        .sans = opt->sans,
        .san_count = opt->san_count,
        .not_after = opt->not_after,
    };
    if (opt->san_count == 0) {
        if (random_san(san_storage, err) != 0)
            return -1;
        leaf.sans = default_san;
        leaf.san_count = 1;
    }
    buffer der = {0}, pem = {0}, json = {0};
    int rc = -1;
    if (certgen_mint(gen, &leaf, &der, err) != 0)
        goto done;
    bool want_pem = opt->out_dir || opt->out || !opt->json;
    bool want_json = opt->out_dir || opt->json;
    if ((want_pem && certgen_chain_pem(gen, der.data, der.len, !opt->no_root, &pem) != 0) ||
        (want_json && certgen_chain_json(gen, der.data, der.len, !opt->no_root, &json) != 0)) {
        error_set(err, "out of memory");
        goto done;
    }
    if (opt->out_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/chain-%06lu.pem", opt->out_dir, index + 1);
        if (write_output(path, &pem, err) != 0)
            goto done;
        snprintf(path, sizeof path, "%s/chain-%06lu.json", opt->out_dir, index + 1);
        if (write_output(path, &json, err) != 0)
            goto done;
    } else {
        if (want_pem && write_output(opt->out ? opt->out : "-", &pem, err) != 0)
            goto done;
        if (want_json && write_output(opt->json, &json, err) != 0)
            goto done;
    }
    rc = 0;
done:
    buffer_free(&der);
    buffer_free(&pem);
    buffer_free(&json);
    return rc;
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static int mint_chains(const tool_command *self, const mkchain_options *opt)
{
    error err = {{0}};
    if (opt->out_dir && mkdir(opt->out_dir, 0755) != 0 && errno != EEXIST)
        return tool_fail(self, "creating %s: %s", opt->out_dir, strerror(errno));
    certgen_ca *ca = certgen_ca_load(opt->ca_dir, &err);
    if (!ca)
        return tool_fail(self, "loading the CA: %s (make one with --init)", err.msg);
    certgen *gen = certgen_new(ca, opt->key_type_given ? opt->key_type : CERTGEN_KEY_P256, &err);
    certgen_ca_free(ca);
    if (!gen)
        return tool_fail(self, "%s", err.msg);
    unsigned long count = opt->count ? opt->count : 1;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int status = TOOL_EXIT_OK;
    for (unsigned long i = 0; i < count; i++) {
        if (mint_one(gen, opt, i, &err) != 0) {
            status = tool_fail(self, "%s", err.msg);
            break;
        }
    }
    if (status == TOOL_EXIT_OK && opt->out_dir) {
        double elapsed = seconds_since(&start);
        fprintf(stderr, "tegula mkchain: wrote %lu %s chains to %s in %.2f s (%.0f chains/s)\n",
                count, opt->precert ? "precertificate" : "leaf", opt->out_dir, elapsed,
                elapsed > 0 ? (double)count / elapsed : 0.0);
    }
    certgen_free(gen);
    return status;
}

static int make_ca(const tool_command *self, const mkchain_options *opt)
{
    error err = {{0}};
    certgen_key_type type = opt->key_type_given ? opt->key_type : CERTGEN_KEY_P256;
    if (certgen_ca_create(opt->ca_dir, type, &err) != 0)
        return tool_fail(self, "%s", err.msg);
    fprintf(stderr,
            "tegula mkchain: created a %s test CA in %s: root.pem, root.key, intermediate.pem, "
            "intermediate.key\n",
            certgen_key_type_name(type), opt->ca_dir);
    return TOOL_EXIT_OK;
}

static int mkchain_run(const tool_command *self, int argc, char **argv)
{
    enum {
        OPT_CA_DIR = 256, OPT_INIT, OPT_LEAF, OPT_PRECERT, OPT_SAN, OPT_NOT_AFTER,
        OPT_KEY_TYPE, OPT_NO_ROOT, OPT_JSON, OPT_COUNT, OPT_OUT_DIR,
    };
    static const struct option options[] = {
        {"ca-dir", required_argument, NULL, OPT_CA_DIR},
        {"init", no_argument, NULL, OPT_INIT},
        {"leaf", no_argument, NULL, OPT_LEAF},
        {"precert", no_argument, NULL, OPT_PRECERT},
        {"san", required_argument, NULL, OPT_SAN},
        {"not-after", required_argument, NULL, OPT_NOT_AFTER},
        {"key-type", required_argument, NULL, OPT_KEY_TYPE},
        {"no-root", no_argument, NULL, OPT_NO_ROOT},
        {"out", required_argument, NULL, 'o'},
        {"json", required_argument, NULL, OPT_JSON},
        {"count", required_argument, NULL, OPT_COUNT},
        {"out-dir", required_argument, NULL, OPT_OUT_DIR},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    mkchain_options opt = {0};
    bool leaf_options = false; /* any option that only makes sense when minting */
    int o;
    error err = {{0}};
    while ((o = getopt_long(argc, argv, ":o:h", options, NULL)) != -1) {
        switch (o) {
        case OPT_CA_DIR:
            opt.ca_dir = optarg;
            break;
        case OPT_INIT:
            opt.init = true;
            break;
        case OPT_LEAF:
            opt.leaf = true;
            break;
        case OPT_PRECERT:
            opt.precert = true;
            break;
        case OPT_SAN:
            if (opt.san_count == CERTGEN_MAX_SANS)
                return tool_usage_error(self, "at most %d --san", CERTGEN_MAX_SANS);
            opt.sans[opt.san_count++] = optarg;
            leaf_options = true;
            break;
        case OPT_NOT_AFTER:
            if (certgen_parse_rfc3339(optarg, &opt.not_after, &err) != 0)
                return tool_usage_error(self, "--not-after: %s", err.msg);
            leaf_options = true;
            break;
        case OPT_KEY_TYPE:
            if (certgen_key_type_parse(optarg, &opt.key_type) != 0)
                return tool_usage_error(self, "--key-type must be p256 or rsa2048, not '%s'",
                                        optarg);
            opt.key_type_given = true;
            break;
        case OPT_NO_ROOT:
            opt.no_root = true;
            leaf_options = true;
            break;
        case 'o':
            opt.out = optarg;
            leaf_options = true;
            break;
        case OPT_JSON:
            opt.json = optarg;
            leaf_options = true;
            break;
        case OPT_COUNT: {
            char *end;
            errno = 0;
            unsigned long n = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || n == 0 || n > MAX_COUNT)
                return tool_usage_error(self, "--count must be 1 to %lu, not '%s'", MAX_COUNT,
                                        optarg);
            opt.count = n;
            leaf_options = true;
            break;
        }
        case OPT_OUT_DIR:
            opt.out_dir = optarg;
            leaf_options = true;
            break;
        case 'h':
            tool_print_help(self, stdout);
            return TOOL_EXIT_OK;
        default:
            return tool_bad_option(self, o, argv);
        }
    }
    if (optind < argc)
        return tool_usage_error(self, "unexpected argument '%s'", argv[optind]);
    if (!opt.ca_dir || !opt.ca_dir[0])
        return tool_usage_error(self, "--ca-dir DIR is required");
    if (opt.init + opt.leaf + opt.precert != 1)
        return tool_usage_error(self, "give exactly one of --init, --leaf or --precert");
    if (opt.init) {
        if (leaf_options)
            return tool_usage_error(self, "--init takes only --ca-dir and --key-type");
        return make_ca(self, &opt);
    }
    if (opt.count && !opt.out_dir)
        return tool_usage_error(self, "--count needs --out-dir");
    if (opt.out_dir && (opt.out || opt.json))
        return tool_usage_error(self, "--out-dir writes its own files; drop --out and --json");
    if (opt.out && opt.json && strcmp(opt.out, "-") == 0 && strcmp(opt.json, "-") == 0)
        return tool_usage_error(self, "--out and --json cannot both be standard output");
    return mint_chains(self, &opt);
}

const tool_command command_mkchain = {
    .name = "mkchain",
    .summary = "make a test CA, and leaf or precertificate chains from it",
    .synopsis =
        "Usage: tegula mkchain --ca-dir DIR --init [--key-type p256|rsa2048]\n"
        "       tegula mkchain --ca-dir DIR (--leaf|--precert) [--san NAME]...\n"
        "                      [--not-after RFC3339] [--key-type p256|rsa2048] [--no-root]\n"
        "                      [--out chain.pem] [--json body.json] [--count N --out-dir D]",
    .details =
        "\n"
        "--init creates DIR with a test root CA and an intermediate CA it signed (root.pem,\n"
        "root.key, intermediate.pem, intermediate.key; keys mode 0600). It never overwrites\n"
        "an existing CA.\n"
        "\n"
        "--leaf / --precert mint a certificate signed by the intermediate: random 126-bit\n"
        "serial, subject CN = first SAN, the SANs, EKU serverAuth, basicConstraints CA:false,\n"
        "keyUsage digitalSignature, notBefore one hour ago. A precertificate also carries the\n"
        "critical CT poison extension (1.3.6.1.4.1.11129.2.4.3, value NULL).\n"
        "\n"
        "Options:\n"
        "  --ca-dir DIR        the CA directory (required)\n"
        "  --init              create the CA\n"
        "  --leaf, --precert   mint a certificate / a precertificate\n"
        "  --san NAME          a DNS SAN; repeat for more (default: a random *.tegula.test)\n"
        "  --not-after TIME    RFC 3339, e.g. 2026-06-01T00:00:00Z (default: now + 90 days);\n"
        "                      if earlier than an hour ago, notBefore = TIME - 90 days\n"
        "  --key-type TYPE     p256 (default) or rsa2048: the leaf key, or with --init the\n"
        "                      CA keys\n"
        "  --no-root           leave the root out of the chain\n"
        "  -o, --out FILE      write the PEM chain (leaf, intermediate[, root]); '-' = stdout\n"
        "  --json FILE         write the add-chain body {\"chain\":[\"<base64 DER>\",...]}\n"
        "                      ('-' = stdout); without --out and --json the PEM goes to stdout\n"
        "  --count N           mint N chains (one leaf key, distinct serials; distinct\n"
        "                      random SANs when no --san is given) ...\n"
        "  --out-dir D         ... into D/chain-NNNNNN.pem and D/chain-NNNNNN.json\n"
        "  -h, --help          show this help\n",
    .run = mkchain_run,
};
