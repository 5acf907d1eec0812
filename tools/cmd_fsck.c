/* tegula fsck: verifies a published static-ct log end to end, streaming one data tile at a
 * time so memory stays flat whatever the log's size:
 *   - the checkpoint's RFC 6962 note signature under the log key and origin;
 *   - every data-tile entry parses, carries its own leaf_index, and (precerts) logs exactly
 *     the precertificate's TBS without the poison and the issuer's key hash;
 *   - every hash tile at every level equals what the leaf hashes imply, and the root equals
 *     the checkpoint's;
 *   - every issuer fingerprint resolves at issuer/<hex> to bytes with that hash.
 * --kat N checks N entries of data tiles against stored level-0 tiles without a checkpoint. */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "buffer.h"
#include "commands.h"
#include "ct.h"
#include "error.h"
#include "log_source.h"
#include "merkle.h"
#include "precert.h"
#include "sha256.h"
#include "tiles.h"
#include "keys.h"
#include "load_sct.h"
#include "note.h"

#define MAX_REPORTED_ERRORS 20

typedef struct fsck {
    log_source *src;
    uint64_t size;           /* entries to check */
    bool kat;                /* no checkpoint: compare against stored level-0 tiles */
    tile_edge *edge;
    uint64_t errors;
    uint64_t entries;
    uint64_t hash_tiles;
    uint64_t data_tiles;
    /* Issuer fingerprints already verified (sorted array; issuers are few). */
    uint8_t (*issuers)[32];
    size_t issuer_count, issuer_cap;
    buffer scratch;
    sct_list *scts;          /* --scts: SCTs that must be in the log at their index */
} fsck;

static void report(fsck *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(fsck *f, const char *fmt, ...)
{
    if (f->errors++ < MAX_REPORTED_ERRORS) {
        va_list ap;
        va_start(ap, fmt);
        fputs("fsck: error: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    } else if (f->errors == MAX_REPORTED_ERRORS + 1) {
        fputs("fsck: error: (further errors are counted, not shown)\n", stderr);
    }
}

static int fetch_tile(void *ctx, const tile_id *t, buffer *out, error *err)
{
    fsck *f = ctx;
    char path[TILE_PATH_MAX];
    if (tile_path_format(t, path) < 0)
        return error_set(err, "unformattable tile");
    int rc = log_source_get(f->src, path, out, err);
    return rc == LOG_SOURCE_NOT_FOUND ? TILE_FETCH_NOT_FOUND : rc;
}

/* Is tile t one the log must still serve at the checked size? Full tiles always are; a
 * partial one only if it is the right edge of that size (older partials may be deleted). */
static bool tile_published_at(const tile_id *t, uint64_t size)
{
    if (t->width == 0)
        return true;
    unsigned level = t->level;
    return tile_partial_width(size, level) == t->width &&
           tile_level_hashes(size, level) / TILE_WIDTH == t->index;
}

static int compare_emitted_tile(void *ctx, const tile_id *t, const uint8_t *data, size_t len,
                                error *err)
{
    (void)err;
    fsck *f = ctx;
    if (t->data || !tile_published_at(t, f->size))
        return 0;
    char path[TILE_PATH_MAX];
    tile_path_format(t, path);
    error ferr = {{0}};
    int rc = log_source_get(f->src, path, &f->scratch, &ferr);
    if (rc == LOG_SOURCE_NOT_FOUND) {
        /* A --kat check has only what the data came with (navigli has no level-1 tile). */
        if (!(f->kat && t->level > 0))
            report(f, "%s: missing", path);
        return 0;
    }
    if (rc != 0) {
        report(f, "%s: %s", path, ferr.msg);
        return 0;
    }
    f->hash_tiles++;
    if (f->scratch.len != len || memcmp(f->scratch.data, data, len) != 0)
        report(f, "%s: stored tile differs from the tile the entries imply", path);
    return 0;
}

static bool issuer_known(fsck *f, const uint8_t fp[32], size_t *pos)
{
    size_t lo = 0, hi = f->issuer_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = memcmp(f->issuers[mid], fp, 32);
        if (c == 0) {
            *pos = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return false;
}

/* Fetches and hashes each issuer once; returns its DER in f->scratch when `want_der`. */
static void check_issuer(fsck *f, const uint8_t fp[32], uint64_t index)
{
    size_t pos;
    if (issuer_known(f, fp, &pos))
        return;
    char hex[65], key[80];
    hex_encode(hex, fp, 32);
    snprintf(key, sizeof key, "issuer/%s", hex);
    error err = {{0}};
    int rc = log_source_get(f->src, key, &f->scratch, &err);
    if (rc == LOG_SOURCE_NOT_FOUND) {
        report(f, "entry %" PRIu64 ": issuer %s is not published", index, hex);
        return;
    }
    if (rc != 0) {
        report(f, "entry %" PRIu64 ": %s", index, err.msg);
        return;
    }
    uint8_t got[32];
    sha256(f->scratch.data, f->scratch.len, got);
    if (memcmp(got, fp, 32) != 0) {
        report(f, "%s: content does not hash to its name", key);
        return;
    }
    if (f->issuer_count == f->issuer_cap) {
        size_t cap = f->issuer_cap ? 2 * f->issuer_cap : 16;
        void *p = realloc(f->issuers, cap * 32);
        if (!p) {
            report(f, "out of memory");
            return;
        }
        f->issuers = p;
        f->issuer_cap = cap;
    }
    memmove(f->issuers + pos + 1, f->issuers + pos, (f->issuer_count - pos) * 32);
    memcpy(f->issuers[pos], fp, 32);
    f->issuer_count++;
}

/* A precert entry must log the precertificate's TBS minus the poison, and the key hash of
 * the issuer that follows it in the chain. */
static void check_precert(fsck *f, const ct_entry *e)
{
    buffer tbs = {0};
    error err = {{0}};
    precert_poison poison;
    if (precert_tbs_for_log(e->pre_certificate, e->pre_certificate_len, &tbs, &poison, &err) != 0)
        report(f, "entry %" PRIu64 ": pre_certificate: %s", e->leaf_index, err.msg);
    else if (tbs.len != e->cert_or_tbs_len || memcmp(tbs.data, e->cert_or_tbs, tbs.len) != 0)
        report(f, "entry %" PRIu64 ": logged TBS is not the precertificate's TBS without poison",
               e->leaf_index);
    buffer_free(&tbs);
    if (f->kat || e->fingerprint_count == 0)
        return;
    /* The issuer was fetched (and its hash checked) just before; it is in scratch only if
     * fetched now, so fetch it again for its key: issuers are few and this runs once each. */
    char hex[65], key[80];
    hex_encode(hex, e->fingerprints, 32);
    snprintf(key, sizeof key, "issuer/%s", hex);
    if (log_source_get(f->src, key, &f->scratch, &err) != 0)
        return; /* already reported by check_issuer */
    uint8_t ikh[32];
    if (precert_issuer_key_hash(f->scratch.data, f->scratch.len, ikh, &err) != 0)
        report(f, "entry %" PRIu64 ": issuer: %s", e->leaf_index, err.msg);
    else if (memcmp(ikh, e->issuer_key_hash, 32) != 0)
        report(f, "entry %" PRIu64 ": issuer_key_hash is not the issuer's key hash", e->leaf_index);
}

/* Checks one data tile's entries; appends their leaf hashes to `hashes`. */
static void check_data_tile(fsck *f, uint64_t tile_index, unsigned width,
                            uint8_t (*hashes)[MERKLE_HASH_LEN], size_t *count)
{
    tile_id t = {.data = true, .level = 0, .index = tile_index, .width = (uint16_t)width};
    char path[TILE_PATH_MAX];
    tile_path_format(&t, path);
    buffer tile = {0};
    error err = {{0}};
    *count = 0;
    int rc = fetch_tile(f, &t, &tile, &err);
    if (rc != 0) {
        report(f, "%s: %s", path, rc == TILE_FETCH_NOT_FOUND ? "missing" : err.msg);
        buffer_free(&tile);
        return;
    }
    f->data_tiles++;
    unsigned want = width ? width : TILE_WIDTH;
    ct_data_tile_iter it;
    ct_data_tile_iter_init(&it, tile.data, tile.len);
    ct_entry e;
    while (*count < want && (rc = ct_data_tile_next(&it, &e, &err)) == 1) {
        uint64_t index = tile_index * TILE_WIDTH + *count;
        if (e.leaf_index != index)
            report(f, "%s: entry %zu carries leaf_index %" PRIu64 ", expected %" PRIu64, path,
                   *count, e.leaf_index, index);
        ct_leaf_hash(&e, hashes[*count]);
        if (f->scts) {
            error serr = {{0}};
            for (size_t bad = sct_list_check_entry(f->scts, index, e.timestamp, hashes[*count],
                                                   &serr);
                 bad > 0; bad--)
                report(f, "%s", serr.msg);
        }
        if (e.entry_type == CT_ENTRY_PRECERT)
            check_precert(f, &e);
        if (!f->kat)
            for (size_t i = 0; i < e.fingerprint_count; i++)
                check_issuer(f, e.fingerprints + 32 * i, index);
        (*count)++;
        f->entries++;
    }
    if (rc < 0)
        report(f, "%s: entry %zu: %s", path, *count, err.msg);
    else if (*count < want)
        report(f, "%s: holds %zu entries, expected %u", path, *count, want);
    else if (ct_data_tile_next(&it, &e, &err) != 0)
        report(f, "%s: bytes after the last entry", path);
    buffer_free(&tile);
}

static int check_entries(fsck *f, uint8_t root[MERKLE_HASH_LEN])
{
    uint8_t (*hashes)[MERKLE_HASH_LEN] = malloc(TILE_WIDTH * MERKLE_HASH_LEN);
    f->edge = malloc(sizeof *f->edge);
    if (!hashes || !f->edge) {
        free(hashes);
        fprintf(stderr, "fsck: out of memory\n");
        return -1;
    }
    tile_edge_init(f->edge);
    uint64_t tiles = (f->size + TILE_WIDTH - 1) / TILE_WIDTH;
    for (uint64_t n = 0; n < tiles; n++) {
        unsigned width = n + 1 < tiles || f->size % TILE_WIDTH == 0 ? 0 : f->size % TILE_WIDTH;
        size_t count;
        check_data_tile(f, n, width, hashes, &count);
        if (count != (width ? width : TILE_WIDTH))
            break; /* the tree cannot be rebuilt past a broken tile */
        error err = {{0}};
        if (tile_edge_append(f->edge, (const uint8_t(*)[MERKLE_HASH_LEN])hashes, count,
                             compare_emitted_tile, f, &err) != 0) {
            report(f, "building tiles: %s", err.msg);
            break;
        }
    }
    tile_edge_root(f->edge, root);
    free(hashes);
    free(f->edge);
    f->edge = NULL;
    return 0;
}

/* Reads and verifies the checkpoint: the 0x05 signature under `key_path` for `origin`
 * (default: the checkpoint's own first line, which the signature then binds to the key). */
static int verify_checkpoint(log_source *src, const char *key_path, const char *origin,
                             uint64_t *size, uint8_t root[MERKLE_HASH_LEN], error *err)
{
    EVP_PKEY *key = public_key_load_pem(key_path, err);
    if (!key)
        return -1;
    buffer text = {0};
    int rc = log_source_get(src, "checkpoint", &text, err);
    if (rc == LOG_SOURCE_NOT_FOUND)
        rc = error_set(err, "no checkpoint published");
    char first_line[CHECKPOINT_ORIGIN_MAX + 1] = "";
    if (rc == 0 && !origin) {
        const char *nl = memchr(text.data, '\n', text.len);
        size_t n = nl ? (size_t)(nl - (const char *)text.data) : 0;
        if (n == 0 || n > CHECKPOINT_ORIGIN_MAX)
            rc = error_set(err, "checkpoint has no origin line");
        else
            memcpy(first_line, text.data, n);
        origin = first_line;
    }
    signed_checkpoint sc;
    if (rc == 0 && checkpoint_verify((const char *)text.data, text.len, origin, key, &sc, err) == 0) {
        *size = sc.cp.size;
        memcpy(root, sc.cp.root, MERKLE_HASH_LEN);
        printf("fsck: checkpoint of %s verifies: size %" PRIu64 ", timestamp %" PRIu64 "\n",
               origin, sc.cp.size, sc.timestamp);
    } else {
        rc = -1;
    }
    buffer_free(&text);
    EVP_PKEY_free(key);
    return rc;
}

static int run(const tool_command *self, int argc, char **argv)
{
    static const struct option options[] = {
        {"url", required_argument, NULL, 'u'}, {"key", required_argument, NULL, 'k'},
        {"origin", required_argument, NULL, 'o'}, {"kat", required_argument, NULL, 'K'},
        {"scts", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *key = NULL, *origin = NULL, *kat = NULL, *scts = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, ":u:k:o:K:S:h", options, NULL)) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'k': key = optarg; break;
        case 'o': origin = optarg; break;
        case 'K': kat = optarg; break;
        case 'S': scts = optarg; break;
        case 'h': tool_print_help(self, stdout); return TOOL_EXIT_OK;
        default: return tool_bad_option(self, opt, argv);
        }
    }
    if (optind < argc)
        return tool_usage_error(self, "unexpected argument '%s'", argv[optind]);
    if (!url)
        return tool_usage_error(self, "--url is required");
    if (!kat && !key)
        return tool_usage_error(self, "--key is required (or --kat N)");
    fsck f = {0};
    if (kat) {
        char *end;
        unsigned long long n = strtoull(kat, &end, 10);
        if (*kat < '1' || *kat > '9' || *end || n > TILE_MAX_TREE_SIZE)
            return tool_usage_error(self, "--kat needs a positive entry count");
        f.size = n;
        f.kat = true;
    }
    error err = {{0}};
    sct_list sct_list_storage;
    if (scts) {
        if (sct_list_load(&sct_list_storage, scts, &err) != 0)
            return tool_fail(self, "%s", err.msg);
        f.scts = &sct_list_storage;
    }
    f.src = log_source_open(url, &err);
    if (!f.src) {
        if (f.scts)
            sct_list_free(f.scts);
        return tool_fail(self, "%s", err.msg);
    }
    uint8_t want_root[MERKLE_HASH_LEN], root[MERKLE_HASH_LEN];
    int rc = 0;
    if (!f.kat) {
        rc = verify_checkpoint(f.src, key, origin, &f.size, want_root, &err);
        if (rc != 0)
            report(&f, "checkpoint: %s", err.msg);
    }
    if (rc == 0 && f.size > 0 && check_entries(&f, root) != 0)
        f.errors++;
    if (rc == 0 && !f.kat && f.size > 0 && memcmp(root, want_root, sizeof root) != 0)
        report(&f, "the entries' root differs from the checkpoint's root");
    if (f.scts) {
        uint64_t first = 0;
        size_t missing = sct_list_missing(f.scts, &first);
        if (missing)
            report(&f, "%zu SCTs are not in the checked log (first: leaf index %" PRIu64
                       ", tree size %" PRIu64 ")",
                   missing, first, f.size);
        else if (f.errors == 0)
            printf("fsck: all %zu SCTs found at their leaf index with their timestamp\n",
                   f.scts->count);
        sct_list_free(f.scts);
    }

    char root_b64[64] = "";
    if (f.size > 0 && f.errors == 0)
        base64_encode_to(root_b64, root, sizeof root);
    if (f.errors == 0)
        printf("fsck: OK: %" PRIu64 " entries, %" PRIu64 " data tiles, %" PRIu64
               " hash tiles, %zu issuers verified; root %s\n",
               f.entries, f.data_tiles, f.hash_tiles, f.issuer_count,
               f.size ? root_b64 : "(empty tree)");
    else
        printf("fsck: FAILED: %" PRIu64 " errors (%" PRIu64 " entries checked)\n", f.errors,
               f.entries);
    buffer_free(&f.scratch);
    free(f.issuers);
    log_source_close(f.src);
    return f.errors == 0 ? TOOL_EXIT_OK : TOOL_EXIT_FAILURE;
}

const tool_command command_fsck = {
    .name = "fsck",
    .summary = "verify a whole static-ct log from its monitoring URL or directory",
    .synopsis = "Usage: tegula fsck --url URL|DIR --key PUBKEY.pem [--origin ORIGIN]\n"
                "                   [--scts FILE]\n"
                "       tegula fsck --url URL|DIR --kat N",
    .details =
        "\n"
        "Verifies a static-ct-api log end to end, one data tile at a time:\n"
        "  - the checkpoint's RFC 6962 note signature under the log key; the origin is\n"
        "    --origin, or else the checkpoint's own first line;\n"
        "  - every data-tile entry parses and carries its own leaf_index; a precertificate\n"
        "    entry logs exactly its TBS without the poison and its issuer's key hash;\n"
        "  - every hash tile at every level equals what the entries imply, and the root\n"
        "    equals the checkpoint's;\n"
        "  - every issuer fingerprint resolves at issuer/<hex> to bytes with that hash.\n"
        "--kat N checks the first N entries of the data tiles against the stored level-0\n"
        "tiles (and any higher tiles present), without a checkpoint or issuers.\n"
        "Data tiles may be stored raw or gzip'd. Prints one summary line and exits 1 on any\n"
        "failure.\n"
        "\n"
        "Options:\n"
        "  --url URL|DIR   monitoring prefix (http:// or https://), s3://bucket/prefix?…\n"
        "                  (credentials from AWS_* env) or a storage directory\n"
        "  --key FILE      the log's public key (PEM); required without --kat\n"
        "  --origin NAME   expected checkpoint origin\n"
        "  --kat N         known-answer check of N entries without a checkpoint\n"
        "  --scts FILE     also require every SCT listed (`tegula load --out-scts`: lines\n"
        "                  \"<leaf_index> <timestamp> <hex leaf hash>\") to be in the log at\n"
        "                  its index with its timestamp and leaf hash\n",
    .run = run,
};
