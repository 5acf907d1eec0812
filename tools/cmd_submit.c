/* tegula submit: posts one chain to a log's add-chain (or add-pre-chain) endpoint and prints
 * the SCT JSON. With --key it checks the SCT the way a CA or browser would: the LogID is the
 * key's, the signature covers the entry rebuilt from the submitted chain (with the SCT's
 * timestamp and leaf_index extension). With --log it also checks that the entry is in the
 * published log at that leaf_index: an inclusion proof from the tiles against the signed
 * checkpoint, and the data tile's entry at that position. --sct verifies an SCT obtained
 * earlier instead of submitting again. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "base64.h"
#include "buffer.h"
#include "certgen.h"
#include "commands.h"
#include "ct.h"
#include "error.h"
#include "keys.h"
#include "log_source.h"
#include "merkle.h"
#include "note.h"
#include "pem.h"
#include "precert.h"
#include "tiles.h"
#include "x509chain.h"

/* Inputs are one chain: X509_CHAIN_MAX certificates of at most X509_CERT_MAX_DER bytes,
 * base64'd in JSON, plus slack. A body the log would refuse (413) is still sent, so that
 * `submit` can demonstrate the refusal; the file bound is only against reading huge files. */
#define MAX_INPUT_BYTES (16u << 20)
/* An add-chain answer is a few hundred bytes; an error page a few KiB. */
#define MAX_RESPONSE_BYTES (1u << 20)
#define DEFAULT_TIMEOUT_S 60L

typedef struct submit_options {
    const char *url;    /* submission prefix */
    const char *input;  /* chain file */
    const char *key;    /* log public key, to verify the SCT */
    const char *sct;    /* verify this SCT file instead of submitting */
    const char *log;    /* monitoring prefix or storage directory, to check inclusion */
    const char *origin; /* checkpoint origin; default from url */
    int precert;        /* -1 auto-detect, 0 add-chain, 1 add-pre-chain */
    long timeout_s;
} submit_options;

/* The submitted chain, DER. */
typedef struct chain {
    pem_list certs;
} chain;

static int read_whole_file(const char *path, buffer *out, error *err)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return error_set(err, "opening %s: %s", path, strerror(errno));
    int rc = 0;
    for (;;) {
        if (buffer_reserve(out, 65536) != 0) {
            rc = error_set(err, "out of memory");
            break;
        }
        size_t n = fread(out->data + out->len, 1, 65536, f);
        out->len += n;
        if (out->len > MAX_INPUT_BYTES) {
            rc = error_set(err, "%s: larger than %u bytes", path, MAX_INPUT_BYTES);
            break;
        }
        if (n == 0) {
            if (ferror(f))
                rc = error_set(err, "reading %s: %s", path, strerror(errno));
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    if (rc == 0)
        rc = buffer_terminate(out) == 0 ? 0 : error_set(err, "out of memory");
    return rc;
}

static bool looks_like_json(const buffer *text)
{
    for (size_t i = 0; i < text->len; i++) {
        char c = (char)text->data[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        return c == '{';
    }
    return false;
}

/* {"chain":[b64, ...]} into DER certificates (the body is also sent as it is). */
static int chain_from_json(const buffer *text, chain *out, error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)text->data, text->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return error_set(err, "JSON line %d: %s", jerr.line, jerr.text);
    int rc = -1;
    json_t *list = json_object_get(root, "chain");
    if (!json_is_array(list) || json_array_size(list) == 0) {
        error_set(err, "JSON: \"chain\" must be a non-empty array");
        goto done;
    }
    size_t n = json_array_size(list);
    if (n > PEM_MAX_BLOCKS) {
        error_set(err, "JSON: %zu certificates is too many", n);
        goto done;
    }
    out->certs.items = calloc(n, sizeof *out->certs.items);
    if (!out->certs.items) {
        error_set(err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(list, i);
        if (!json_is_string(item)) {
            error_set(err, "JSON: chain[%zu] is not a string", i);
            goto done;
        }
        buffer der = {0};
        if (base64_decode(&der, json_string_value(item), json_string_length(item)) != 0 ||
            der.len == 0) {
            buffer_free(&der);
            error_set(err, "JSON: chain[%zu] is not base64", i);
            goto done;
        }
        out->certs.items[i].data = der.data;
        out->certs.items[i].len = der.len;
        out->certs.count = i + 1;
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

static int chain_body_json(const chain *c, buffer *body)
{
    if (buffer_append_str(body, "{\"chain\":[") != 0)
        return -1;
    for (size_t i = 0; i < c->certs.count; i++) {
        if ((i > 0 && buffer_append_byte(body, ',') != 0) || buffer_append_byte(body, '"') != 0 ||
            base64_encode(body, c->certs.items[i].data, c->certs.items[i].len) != 0 ||
            buffer_append_byte(body, '"') != 0)
            return -1;
    }
    return buffer_append_str(body, "]}");
}

/* Does the leaf carry the CT poison extension (a precertificate)? */
static int leaf_is_precert(const chain *c, bool *precert, error *err)
{
    const unsigned char *p = c->certs.items[0].data;
    X509 *x = d2i_X509(NULL, &p, (long)c->certs.items[0].len);
    if (!x)
        return error_set(err, "the first certificate does not parse");
    *precert = X509_get_ext_by_NID(x, NID_ct_precert_poison, -1) >= 0;
    X509_free(x);
    return 0;
}

static size_t collect_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    buffer *out = userdata;
    size_t n = size * nmemb;
    if (out->len + n > MAX_RESPONSE_BYTES || buffer_append(out, data, n) != 0)
        return 0; /* makes curl fail the transfer */
    return n;
}

static size_t collect_retry_after(char *data, size_t size, size_t nmemb, void *userdata)
{
    char *retry_after = userdata; /* 32 bytes */
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        size_t i = sizeof name - 1, j = 0;
        while (i < n && data[i] == ' ')
            i++;
        while (i < n && j < 31 && data[i] != '\r' && data[i] != '\n')
            retry_after[j++] = data[i++];
        retry_after[j] = 0;
    }
    return n;
}

/* POSTs the body; the response body goes to `response`. */
static int post(const char *url, const buffer *body, long timeout_s, long *status,
                buffer *response, char retry_after[32], error *err)
{
    CURL *c = curl_easy_init();
    if (!c)
        return error_set(err, "cannot initialise the HTTP client");
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)body->data);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, response);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect_retry_after);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, retry_after);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode res = curl_easy_perform(c);
    curl_slist_free_all(headers);
    int rc = 0;
    if (res != CURLE_OK)
        rc = error_set(err, "POST %s: %s", url, curl_easy_strerror(res));
    else
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    return rc;
}

/* The entry the log must have logged for this chain (no timestamp or index yet). For a
 * precertificate the issuer is chain[1]: the log only appends a root, and a precertificate
 * issued directly by a root needs that root in the chain for this check. */
static int rebuild_entry(const chain *c, bool precert, ct_entry *e, buffer *tbs, error *err)
{
    memset(e, 0, sizeof *e);
    if (!precert) {
        e->entry_type = CT_ENTRY_X509;
        e->cert_or_tbs = c->certs.items[0].data;
        e->cert_or_tbs_len = c->certs.items[0].len;
        return 0;
    }
    if (c->certs.count < 2)
        return error_set(err, "verifying a precertificate SCT needs its issuer in the chain");
    e->entry_type = CT_ENTRY_PRECERT;
    if (precert_issuer_key_hash(c->certs.items[1].data, c->certs.items[1].len,
                                e->issuer_key_hash, err) != 0)
        return error_wrap(err, "issuer");
    if (precert_tbs_for_log(c->certs.items[0].data, c->certs.items[0].len, tbs, NULL, err) != 0)
        return error_wrap(err, "precertificate");
    e->cert_or_tbs = tbs->data;
    e->cert_or_tbs_len = tbs->len;
    return 0;
}

/* Checks version, LogID and signature of the SCT for the entry; fills the leaf hash the
 * entry has in the log. */
static int verify_sct(const ct_sct *sct, ct_entry *e, EVP_PKEY *key,
                      uint8_t leaf_hash[MERKLE_HASH_LEN], error *err)
{
    if (sct->version != CT_SCT_VERSION_V1)
        return error_set(err, "SCT version %u is not v1", sct->version);
    uint8_t log_id[LOG_ID_LEN];
    if (public_key_log_id(key, log_id, err) != 0)
        return -1;
    if (memcmp(log_id, sct->log_id, LOG_ID_LEN) != 0)
        return error_set(err, "SCT log ID is not the key's");
    if (ct_sct_leaf_index(sct, &e->leaf_index, err) != 0)
        return error_wrap(err, "SCT extensions");
    e->timestamp = sct->timestamp;
    buffer signed_data = {0};
    digitally_signed ds;
    int rc = -1;
    if (ct_sct_signed_data(&signed_data, sct, e) != 0) {
        error_set(err, "cannot encode the signed entry");
        goto done;
    }
    if (digitally_signed_parse(sct->signature, sct->signature_len, &ds, err) != 0 ||
        digitally_signed_verify(key, signed_data.data, signed_data.len, &ds, err) != 0) {
        error_wrap(err, "SCT signature");
        goto done;
    }
    /* The SCT signs the MerkleTreeLeaf, which is exactly what the tree hashes. */
    merkle_leaf_hash(signed_data.data, signed_data.len, leaf_hash);
    rc = 0;
done:
    buffer_free(&signed_data);
    return rc;
}

static int fetch_tile(void *ctx, const tile_id *t, buffer *out, error *err)
{
    char path[TILE_PATH_MAX];
    if (tile_path_format(t, path) < 0)
        return error_set(err, "unformattable tile");
    int rc = log_source_get(ctx, path, out, err);
    return rc == LOG_SOURCE_NOT_FOUND ? TILE_FETCH_NOT_FOUND : rc;
}

/* The entry at leaf_index must be in the log's signed checkpoint (inclusion proof from the
 * hash tiles) and stored at that position of its data tile. */
static int check_included(const submit_options *opt, const char *origin, EVP_PKEY *key,
                          uint64_t leaf_index, const uint8_t leaf_hash[MERKLE_HASH_LEN],
                          uint64_t *tree_size, error *err)
{
    log_source *src = log_source_open(opt->log, err);
    if (!src)
        return -1;
    buffer obj = {0};
    int rc = -1;
    signed_checkpoint sc;
    int got = log_source_get(src, "checkpoint", &obj, err);
    if (got != 0) {
        if (got == LOG_SOURCE_NOT_FOUND)
            error_set(err, "%s has no checkpoint", opt->log);
        goto done;
    }
    if (checkpoint_verify((const char *)obj.data, obj.len, origin, key, &sc, err) != 0) {
        error_wrap(err, "checkpoint");
        goto done;
    }
    *tree_size = sc.cp.size;
    if (leaf_index >= sc.cp.size) {
        error_set(err, "leaf_index %" PRIu64 " is not in the published tree of size %" PRIu64,
                  leaf_index, sc.cp.size);
        goto done;
    }
    uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
    size_t proof_len = 0;
    if (tile_tree_inclusion_proof(sc.cp.size, leaf_index, fetch_tile, src, proof, &proof_len,
                                  err) != 0) {
        error_wrap(err, "inclusion proof from tiles");
        goto done;
    }
    if (merkle_verify_inclusion(leaf_index, sc.cp.size, leaf_hash,
                                (const uint8_t(*)[MERKLE_HASH_LEN])proof, proof_len, sc.cp.root,
                                err) != 0) {
        error_wrap(err, "the entry is not in the tree at leaf_index %" PRIu64, leaf_index);
        goto done;
    }
    tile_id t = {.data = true, .index = leaf_index / TILE_WIDTH};
    if (t.index == sc.cp.size / TILE_WIDTH)
        t.width = (uint16_t)(sc.cp.size % TILE_WIDTH);
    char path[TILE_PATH_MAX];
    tile_path_format(&t, path);
    got = log_source_get(src, path, &obj, err);
    if (got != 0) {
        if (got == LOG_SOURCE_NOT_FOUND)
            error_set(err, "%s is missing", path);
        goto done;
    }
    ct_data_tile_iter it;
    ct_entry stored;
    ct_data_tile_iter_init(&it, obj.data, obj.len);
    uint64_t position = leaf_index % TILE_WIDTH;
    for (uint64_t i = 0; i <= position; i++) {
        int next = ct_data_tile_next(&it, &stored, err);
        if (next != 1) {
            if (next == 0)
                error_set(err, "%s ends before position %" PRIu64, path, position);
            goto done;
        }
    }
    uint8_t stored_hash[MERKLE_HASH_LEN];
    if (stored.leaf_index != leaf_index) {
        error_set(err, "%s: entry %" PRIu64 " says leaf_index %" PRIu64, path, position,
                  stored.leaf_index);
        goto done;
    }
    if (ct_leaf_hash(&stored, stored_hash) != 0 ||
        memcmp(stored_hash, leaf_hash, MERKLE_HASH_LEN) != 0) {
        error_set(err, "%s: the entry at leaf_index %" PRIu64 " is another entry", path,
                  leaf_index);
        goto done;
    }
    rc = 0;
done:
    buffer_free(&obj);
    log_source_close(src);
    return rc;
}

/* "http://127.0.0.1:8080/2026h1/" -> "127.0.0.1:8080/2026h1". */
static void origin_from_url(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == '/')
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = 0;
}

static int submit(const tool_command *self, const submit_options *opt)
{
    error err = {{0}};
    buffer input = {0}, body = {0}, response = {0}, sct_storage = {0}, tbs = {0};
    chain c = {{0}};
    EVP_PKEY *key = NULL;
    int status = TOOL_EXIT_FAILURE;

    if (read_whole_file(opt->input, &input, &err) != 0) {
        tool_fail(self, "%s", err.msg);
        goto done;
    }
    bool json = looks_like_json(&input);
    int parsed = json ? chain_from_json(&input, &c, &err)
                      : pem_parse_certificates((const char *)input.data, input.len,
                                               X509_CHAIN_MAX + 1, &c.certs, &err);
    if (parsed != 0) {
        tool_fail(self, "%s: %s", opt->input, err.msg);
        goto done;
    }
    bool precert = opt->precert == 1;
    if (opt->precert < 0 && leaf_is_precert(&c, &precert, &err) != 0) {
        tool_fail(self, "%s: %s", opt->input, err.msg);
        goto done;
    }
    if (opt->key) {
        key = certgen_key_read(opt->key, true, NULL, &err);
        if (!key) {
            tool_fail(self, "%s", err.msg);
            goto done;
        }
    }

    if (opt->sct) {
        if (read_whole_file(opt->sct, &response, &err) != 0) {
            tool_fail(self, "%s", err.msg);
            goto done;
        }
    } else {
        /* JSON input is sent byte for byte (so malformed requests can be replayed). */
        if (json ? buffer_append(&body, input.data, input.len) : chain_body_json(&c, &body)) {
            tool_fail(self, "out of memory");
            goto done;
        }
        char url[4096];
        size_t n = strlen(opt->url);
        bool slash = n > 0 && opt->url[n - 1] == '/';
        if ((size_t)snprintf(url, sizeof url, "%s%sct/v1/%s", opt->url, slash ? "" : "/",
                             precert ? "add-pre-chain" : "add-chain") >= sizeof url) {
            tool_fail(self, "--url is too long");
            goto done;
        }
        long http = 0;
        char retry_after[32] = "";
        if (post(url, &body, opt->timeout_s, &http, &response, retry_after, &err) != 0) {
            tool_fail(self, "%s", err.msg);
            goto done;
        }
        if (http != 200) {
            while (response.len > 0 && (response.data[response.len - 1] == '\n' ||
                                        response.data[response.len - 1] == '\r'))
                response.len--;
            buffer_terminate(&response);
            /* Error bodies are one line of text; keep what the log said. */
            fprintf(stderr, "tegula submit: %s: HTTP %ld%s%s: %.*s\n", url, http,
                    retry_after[0] ? ", Retry-After: " : "", retry_after,
                    (int)(response.len > 2000 ? 2000 : response.len),
                    response.data ? (const char *)response.data : "");
            goto done;
        }
        fwrite(response.data, 1, response.len, stdout);
        if (response.len == 0 || response.data[response.len - 1] != '\n')
            fputc('\n', stdout);
    }
    if (!key) {
        status = TOOL_EXIT_OK;
        goto done;
    }

    ct_sct sct;
    ct_entry e;
    uint8_t leaf_hash[MERKLE_HASH_LEN];
    if (ct_sct_parse_json((const char *)response.data, response.len, &sct, &sct_storage,
                          &err) != 0 ||
        rebuild_entry(&c, precert, &e, &tbs, &err) != 0 ||
        verify_sct(&sct, &e, key, leaf_hash, &err) != 0) {
        tool_fail(self, "SCT does not verify: %s", err.msg);
        goto done;
    }
    char log_id_b64[64];
    base64_encode_to(log_id_b64, sct.log_id, sizeof sct.log_id);
    fprintf(stderr,
            "tegula submit: SCT verified: entry_type=%s leaf_index=%" PRIu64
            " timestamp=%" PRIu64 " log_id=%s\n",
            precert ? "precert" : "x509", e.leaf_index, sct.timestamp, log_id_b64);
    if (opt->log) {
        char origin[512];
        if (opt->origin)
            snprintf(origin, sizeof origin, "%s", opt->origin);
        else
            origin_from_url(opt->url, origin, sizeof origin);
        uint64_t tree_size = 0;
        if (check_included(opt, origin, key, e.leaf_index, leaf_hash, &tree_size, &err) != 0) {
            tool_fail(self, "%s: %s", opt->log, err.msg);
            goto done;
        }
        fprintf(stderr,
                "tegula submit: included: leaf_index=%" PRIu64 " tree_size=%" PRIu64 "\n",
                e.leaf_index, tree_size);
    }
    status = TOOL_EXIT_OK;
done:
    buffer_free(&input);
    buffer_free(&body);
    buffer_free(&response);
    buffer_free(&sct_storage);
    buffer_free(&tbs);
    pem_list_free(&c.certs);
    EVP_PKEY_free(key);
    return status;
}

static int submit_run(const tool_command *self, int argc, char **argv)
{
    enum { OPT_PRECERT = 256, OPT_NO_PRECERT, OPT_SCT, OPT_LOG, OPT_ORIGIN, OPT_TIMEOUT };
    static const struct option options[] = {
        {"url", required_argument, NULL, 'u'},
        {"key", required_argument, NULL, 'k'},
        {"precert", no_argument, NULL, OPT_PRECERT},
        {"no-precert", no_argument, NULL, OPT_NO_PRECERT},
        {"sct", required_argument, NULL, OPT_SCT},
        {"log", required_argument, NULL, OPT_LOG},
        {"origin", required_argument, NULL, OPT_ORIGIN},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    submit_options opt = {.precert = -1, .timeout_s = DEFAULT_TIMEOUT_S};
    int o;
    while ((o = getopt_long(argc, argv, ":u:k:h", options, NULL)) != -1) {
        switch (o) {
        case 'u': opt.url = optarg; break;
        case 'k': opt.key = optarg; break;
        case OPT_PRECERT: opt.precert = 1; break;
        case OPT_NO_PRECERT: opt.precert = 0; break;
        case OPT_SCT: opt.sct = optarg; break;
        case OPT_LOG: opt.log = optarg; break;
        case OPT_ORIGIN: opt.origin = optarg; break;
        case OPT_TIMEOUT: {
            char *end;
            errno = 0;
            long n = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || n < 1 || n > 3600)
                return tool_usage_error(self, "--timeout takes 1 to 3600 seconds");
            opt.timeout_s = n;
            break;
        }
        case 'h': tool_print_help(self, stdout); return TOOL_EXIT_OK;
        default: return tool_bad_option(self, o, argv);
        }
    }
    if (optind >= argc)
        return tool_usage_error(self, "which chain file?");
    if (optind + 1 < argc)
        return tool_usage_error(self, "unexpected argument '%s'", argv[optind + 1]);
    opt.input = argv[optind];
    if (!opt.url && !opt.sct)
        return tool_usage_error(self, "--url is required");
    if (opt.url && strncmp(opt.url, "http://", 7) != 0 && strncmp(opt.url, "https://", 8) != 0)
        return tool_usage_error(self, "--url must be an http:// or https:// submission prefix");
    if ((opt.sct || opt.log) && !opt.key)
        return tool_usage_error(self, "%s needs --key", opt.sct ? "--sct" : "--log");
    if (opt.log && !opt.url && !opt.origin)
        return tool_usage_error(self, "--log needs --url or --origin (the checkpoint origin)");
    return submit(self, &opt);
}

const tool_command command_submit = {
    .name = "submit",
    .summary = "submit a chain to a log and print (and verify) the SCT",
    .synopsis = "Usage: tegula submit --url PREFIX [--precert|--no-precert] [--key PUB.pem\n"
                "                     [--log URL|DIR]] CHAIN.pem|CHAIN.json\n"
                "       tegula submit --sct SCT.json --key PUB.pem [--log URL|DIR --url PREFIX]\n"
                "                     CHAIN.pem|CHAIN.json",
    .details =
        "\n"
        "Posts the chain (PEM certificates, leaf first, or an add-chain JSON body, sent as\n"
        "it is) to PREFIXct/v1/add-chain, or to add-pre-chain when the leaf carries the CT\n"
        "poison extension, and prints the SCT JSON the log returned on standard output.\n"
        "\n"
        "With --key, the SCT is verified: v1, the log ID is SHA-256 of the key, the\n"
        "leaf_index extension is present, and the signature covers the entry rebuilt from\n"
        "the chain (for a precertificate: the TBS without the poison and chain[1]'s key\n"
        "hash). A line \"tegula submit: SCT verified: ... leaf_index=N timestamp=T ...\" goes\n"
        "to standard error.\n"
        "\n"
        "With --log, the entry must also be in the published log: the checkpoint (origin =\n"
        "PREFIX without scheme and trailing '/', or --origin) verifies under the key, an\n"
        "inclusion proof for leaf_index read from the hash tiles leads to its root, and the\n"
        "data tile holds the same entry at that position.\n"
        "\n"
        "Options:\n"
        "  -u, --url PREFIX   the log's submission prefix (http://host:port/name/)\n"
        "      --precert      use add-pre-chain (default: detected from the poison)\n"
        "      --no-precert   use add-chain even for a poisoned leaf\n"
        "  -k, --key FILE     the log's public key (PEM; a private key works too)\n"
        "      --sct FILE     verify this SCT JSON instead of submitting\n"
        "      --log URL|DIR  monitoring prefix or storage directory: check inclusion\n"
        "      --origin NAME  checkpoint origin for --log\n"
        "      --timeout S    HTTP timeout in seconds (default 60)\n"
        "\n"
        "Exit status: 0 on success; 1 if the log refused the chain (the HTTP status and\n"
        "the log's reason are printed) or the SCT or inclusion does not verify; 2 on a bad\n"
        "command line.\n",
    .run = submit_run,
};
