#include "s3.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base64.h"
#include "log.h"
#include "sha256.h"

#define DEFAULT_CONNECTIONS 16
#define DEFAULT_RETRY_TIME_MS 10000
#define DEFAULT_TIMEOUT_MS 30000
#define CONNECT_TIMEOUT_MS 3000
/* Backoff before retry n (from 1): a random point in the upper half of
 * min(BACKOFF_CAP, BACKOFF_BASE * 2^(n-1)), so retries spread out but still wait. */
#define BACKOFF_BASE_MS 50
#define BACKOFF_CAP_MS 2000
/* Error bodies are small XML documents; keep enough to name the error. */
#define ERROR_BODY_MAX 4096
/* Idle sessions kept for reuse; more are freed when returned. */
#define SESSIONS_KEPT 16
#define CREDENTIALS_FILE_MAX (64 * 1024)
/* Endpoints whose last working address is remembered (one per distinct host:port). */
#define KNOWN_ADDRESSES_MAX 16
#define ADDRESS_MAX 64
#define ADDRESS_KEY_MAX 300

typedef struct session {
    CURLM *multi;
    CURL *easy[S3_MAX_CONNECTIONS];
    struct session *next;
} session;

struct s3_client {
    char *bucket;
    char *prefix; /* "" when none */
    char *endpoint; /* scheme://host[:port], no trailing '/' */
    char *region;
    char *sigv4;  /* "aws:amz:REGION:s3" */
    bool path_style;
    unsigned connections;
    unsigned retry_time_ms;
    unsigned timeout_ms;
    char *access_key;
    char *secret_key;
    char *session_token; /* NULL when none */
    /* "host:port" the requests go to, for the last-known-address table; NULL when the
     * endpoint is an IP literal (nothing to resolve). */
    char *address_key;

    pthread_mutex_t sessions_lock;
    session *idle_sessions;
    unsigned idle_count;

    _Atomic uint64_t requests;
    _Atomic uint64_t retries;
    _Atomic uint64_t failures;
    _Atomic uint64_t stale_address_uses;
};

/* ---- small helpers ---- */

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t random_u64(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = monotonic_ms() * 0x9E3779B97F4A7C15ull; /* jitter only: any spread will do */
    return r;
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

/* Appends s percent-encoded (uppercase hex, as SigV4 wants); '/' kept when keep_slash. */
static int append_encoded(buffer *b, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p) || (keep_slash && *p == '/')) {
            if (buffer_append_byte(b, *p) != 0)
                return -1;
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            if (buffer_append(b, esc, 3) != 0)
                return -1;
        }
    }
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decodes [s, s+len) into a new string; NULL on a malformed escape or a NUL byte. */
static char *decode_component(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 1 < len ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        out[n++] = c;
    }
    out[n] = 0;
    return out;
}

/* ---- canonical query strings ---- */

typedef struct encoded_param {
    char *name;
    char *value;
} encoded_param;

static int compare_params(const void *a, const void *b)
{
    const encoded_param *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static char *encode_string(const char *s)
{
    buffer b = {0};
    if (append_encoded(&b, s ? s : "", false) != 0 || buffer_terminate(&b) != 0) {
        buffer_free(&b);
        return NULL;
    }
    if (!b.data)
        return strdup("");
    return (char *)b.data;
}

int s3_canonical_query(const s3_param *params, size_t count, buffer *out)
{
    buffer_reset(out);
    if (count == 0)
        return buffer_terminate(out);
    encoded_param *encoded = calloc(count, sizeof *encoded);
    if (!encoded)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        encoded[i].name = encode_string(params[i].name);
        encoded[i].value = encode_string(params[i].value);
        if (!encoded[i].name || !encoded[i].value)
            rc = -1;
    }
    /* SigV4 sorts by the encoded names (byte order), then values. */
    if (rc == 0)
        qsort(encoded, count, sizeof *encoded, compare_params);
    for (size_t i = 0; i < count && rc == 0; i++) {
        if ((i > 0 && buffer_append_byte(out, '&') != 0) ||
            buffer_append_str(out, encoded[i].name) != 0 || buffer_append_byte(out, '=') != 0 ||
            buffer_append_str(out, encoded[i].value) != 0)
            rc = -1;
    }
    for (size_t i = 0; i < count; i++) {
        free(encoded[i].name);
        free(encoded[i].value);
    }
    free(encoded);
    if (rc == 0)
        rc = buffer_terminate(out);
    return rc;
}

/* ---- opening: URL, parameters, credentials ---- */

static bool bucket_name_ok(const char *s, size_t len)
{
    if (len < 1 || len > 63)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_'))
            return false;
    }
    return true;
}

/* Prefixes and keys are '/'-separated non-empty segments of key characters, with no
 * dot-segments, so they never need more than path encoding and cannot climb. */
static bool object_name_ok(const char *s, size_t max_len)
{
    bool segment_start = true;
    size_t len = strnlen(s, max_len + 1);
    if (len == 0 || len > max_len)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '.' || c == '_' || c == '-' || c == '~' || c == '/'))
            return false;
        if (segment_start && (c == '/' || c == '.'))
            return false;
        segment_start = c == '/';
    }
    return !segment_start;
}

static bool endpoint_ok(const char *s)
{
    const char *host;
    if (strncmp(s, "http://", 7) == 0)
        host = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        host = s + 8;
    else
        return false;
    if (!*host || strlen(host) > 255)
        return false;
    for (const char *p = host; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!(isalnum(c) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
            return false; /* no path, user info, query or spaces */
    }
    return true;
}

static int parse_unsigned(const char *value, unsigned min, unsigned max, unsigned *out)
{
    if (!*value || !isdigit((unsigned char)value[0]))
        return -1;
    errno = 0;
    char *end;
    unsigned long v = strtoul(value, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

/* Reads one profile of an AWS shared-credentials file ("[profile]" sections of
 * "name = value" lines; '#' and ';' start comments). */
static int load_credentials_file(s3_client *c, const char *path, const char *profile,
                                 error *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return error_set(err, "S3 credentials file %s: %s", path, strerror(errno));
    char *text = malloc(CREDENTIALS_FILE_MAX + 1);
    if (!text) {
        fclose(fp);
        return error_set(err, "out of memory");
    }
    size_t len = fread(text, 1, CREDENTIALS_FILE_MAX + 1, fp);
    bool read_error = ferror(fp);
    fclose(fp);
    if (read_error || len > CREDENTIALS_FILE_MAX) {
        explicit_bzero(text, len);
        free(text);
        return error_set(err, "S3 credentials file %s: %s", path,
                         read_error ? "read error" : "larger than 64 KiB");
    }
    text[len] = 0;
    bool in_profile = false, found_profile = false;
    int rc = 0;
    for (char *line = text, *next; line && rc == 0; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        char *l = trim(line);
        if (*l == 0 || *l == '#' || *l == ';')
            continue;
        if (*l == '[') {
            char *close = strchr(l, ']');
            if (!close) {
                rc = error_set(err, "S3 credentials file %s: malformed section line", path);
                break;
            }
            *close = 0;
            char *name = trim(l + 1);
            if (strncmp(name, "profile ", 8) == 0) /* the config-file spelling */
                name = trim(name + 8);
            in_profile = strcmp(name, profile) == 0;
            found_profile |= in_profile;
            continue;
        }
        if (!in_profile)
            continue;
        char *eq = strchr(l, '=');
        if (!eq)
            continue;
        *eq = 0;
        char *name = trim(l), *value = trim(eq + 1);
        char **slot = NULL;
        if (strcmp(name, "aws_access_key_id") == 0)
            slot = &c->access_key;
        else if (strcmp(name, "aws_secret_access_key") == 0)
            slot = &c->secret_key;
        else if (strcmp(name, "aws_session_token") == 0)
            slot = &c->session_token;
        if (slot && *value) {
            wipe_free(*slot);
            *slot = strdup(value);
            if (!*slot)
                rc = error_set(err, "out of memory");
        }
    }
    explicit_bzero(text, len);
    free(text);
    if (rc != 0)
        return rc;
    if (!found_profile)
        return error_set(err, "S3 credentials file %s has no [%s] profile", path, profile);
    if (!c->access_key || !c->secret_key)
        return error_set(err, "S3 credentials file %s: profile [%s] lacks aws_access_key_id "
                              "or aws_secret_access_key", path, profile);
    return 0;
}

static int load_credentials_env(s3_client *c, error *err)
{
    const char *id = getenv("AWS_ACCESS_KEY_ID");
    const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *token = getenv("AWS_SESSION_TOKEN");
    if (!id || !*id || !secret || !*secret)
        return error_set(err, "no S3 credentials: set AWS_ACCESS_KEY_ID and "
                              "AWS_SECRET_ACCESS_KEY, or add credentials=FILE to the URL");
    c->access_key = strdup(id);
    c->secret_key = strdup(secret);
    if (token && *token)
        c->session_token = strdup(token);
    if (!c->access_key || !c->secret_key || (token && *token && !c->session_token))
        return error_set(err, "out of memory");
    return 0;
}

static bool credential_ok(const char *s)
{
    /* Sent in HTTP headers (the signature's credential scope, the token header). */
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* ---- the endpoint's last working address ----
 * A name that stops resolving (a DNS server restarting, a container network's resolver
 * reloading, a dropped UDP answer) must not stop a log that still reaches its object store:
 * every response records the address it came from, and a request whose name did not resolve
 * is retried at the endpoint's last working address. Shared by every client of the process,
 * so a client that has not resolved the name yet benefits from another's answer. */
static pthread_mutex_t known_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char key[ADDRESS_KEY_MAX];
    char address[ADDRESS_MAX];
} known_addresses[KNOWN_ADDRESSES_MAX];
static size_t known_count, known_next_evicted;

static void known_address_record(const char *key, const char *address)
{
    if (!key || !address || !address[0] || strlen(address) >= ADDRESS_MAX)
        return;
    pthread_mutex_lock(&known_lock);
    size_t i = 0;
    while (i < known_count && strcmp(known_addresses[i].key, key) != 0)
        i++;
    if (i == known_count) {
        if (known_count < KNOWN_ADDRESSES_MAX)
            known_count++;
        else
            i = known_next_evicted++ % KNOWN_ADDRESSES_MAX;
        snprintf(known_addresses[i].key, ADDRESS_KEY_MAX, "%s", key);
    }
    if (strcmp(known_addresses[i].address, address) != 0)
        snprintf(known_addresses[i].address, ADDRESS_MAX, "%s", address);
    pthread_mutex_unlock(&known_lock);
}

static bool known_address_find(const char *key, char out[ADDRESS_MAX])
{
    bool found = false;
    pthread_mutex_lock(&known_lock);
    for (size_t i = 0; i < known_count && !found; i++) {
        if (strcmp(known_addresses[i].key, key) == 0) {
            memcpy(out, known_addresses[i].address, ADDRESS_MAX);
            found = true;
        }
    }
    pthread_mutex_unlock(&known_lock);
    return found;
}

/* Sets *out to "host:port" of the requests' URLs (the bucket in front of the host unless path
 * style), or to NULL for an IP literal; -1 when out of memory. */
static int address_key_of(const s3_client *c, char **out)
{
    *out = NULL;
    bool https = strncmp(c->endpoint, "https://", 8) == 0;
    const char *host = c->endpoint + (https ? 8 : 7);
    if (host[0] == '[')
        return 0;
    const char *colon = strchr(host, ':');
    size_t host_len = colon ? (size_t)(colon - host) : strlen(host);
    bool literal = true;
    for (size_t i = 0; i < host_len; i++)
        literal &= isdigit((unsigned char)host[i]) || host[i] == '.';
    if (literal && c->path_style)
        return 0;
    const char *port = colon ? colon + 1 : https ? "443" : "80";
    size_t n = strlen(c->bucket) + host_len + strlen(port) + 3;
    if (!(*out = malloc(n)))
        return -1;
    snprintf(*out, n, "%s%s%.*s:%s", c->path_style ? "" : c->bucket, c->path_style ? "" : ".",
             (int)host_len, host, port);
    return 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_ALL);
}

s3_client *s3_client_open(const char *url, error *err)
{
    if (!url || strncmp(url, "s3://", 5) != 0)
        return error_set(err, "S3 URL must start with s3://"), NULL;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK)
        return error_set(err, "libcurl initialisation failed"), NULL;

    s3_client *c = calloc(1, sizeof *c);
    if (!c)
        return error_set(err, "out of memory"), NULL;
    pthread_mutex_init(&c->sessions_lock, NULL);
    c->path_style = true;
    c->connections = DEFAULT_CONNECTIONS;
    c->retry_time_ms = DEFAULT_RETRY_TIME_MS;
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
    char *credentials_file = NULL, *profile = NULL;
    int rc = 0;

    const char *rest = url + 5;
    const char *query = strchr(rest, '?');
    size_t path_len = query ? (size_t)(query - rest) : strlen(rest);
    const char *slash = memchr(rest, '/', path_len);
    size_t bucket_len = slash ? (size_t)(slash - rest) : path_len;
    if (!bucket_name_ok(rest, bucket_len)) {
        rc = error_set(err, "S3 URL: missing or malformed bucket name (s3://bucket/prefix?...)");
        goto done;
    }
    c->bucket = strndup(rest, bucket_len);
    if (slash) {
        const char *p = slash + 1;
        size_t n = path_len - bucket_len - 1;
        while (n > 0 && p[n - 1] == '/')
            n--; /* "s3://b/prefix/" means prefix */
        c->prefix = strndup(p, n);
    } else {
        c->prefix = strdup("");
    }
    if (!c->bucket || !c->prefix) {
        rc = error_set(err, "out of memory");
        goto done;
    }
    if (c->prefix[0] && !object_name_ok(c->prefix, 256)) {
        rc = error_set(err, "S3 URL: malformed key prefix \"%s\"", c->prefix);
        goto done;
    }

    for (const char *p = query ? query + 1 : NULL; p && *p && rc == 0;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (len == 0) {
            p = amp ? amp + 1 : NULL;
            continue;
        }
        if (!eq) {
            rc = error_set(err, "S3 URL: parameter \"%.*s\" has no value", (int)len, p);
            break;
        }
        size_t name_len = (size_t)(eq - p);
        char *value = decode_component(eq + 1, len - name_len - 1);
        if (!value) {
            rc = error_set(err, "S3 URL: malformed value for \"%.*s\"", (int)name_len, p);
            break;
        }
#define IS(name) (name_len == strlen(name) && strncmp(p, name, name_len) == 0)
        if (IS("endpoint")) {
            size_t n = strlen(value);
            while (n > 0 && value[n - 1] == '/')
                value[--n] = 0;
            if (!endpoint_ok(value))
                rc = error_set(err, "S3 URL: endpoint must be http[s]://host[:port], not \"%s\"",
                               value);
            free(c->endpoint);
            c->endpoint = value;
            value = NULL;
        } else if (IS("region")) {
            bool ok = *value && strlen(value) < 64;
            for (const char *q = value; *q; q++)
                ok &= isalnum((unsigned char)*q) || *q == '-' || *q == '_';
            if (!ok)
                rc = error_set(err, "S3 URL: malformed region \"%s\"", value);
            free(c->region);
            c->region = value;
            value = NULL;
        } else if (IS("path_style")) {
            if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
                c->path_style = true;
            else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
                c->path_style = false;
            else
                rc = error_set(err, "S3 URL: path_style must be true or false");
        } else if (IS("credentials")) {
            free(credentials_file);
            credentials_file = value;
            value = NULL;
        } else if (IS("profile")) {
            free(profile);
            profile = value;
            value = NULL;
        } else if (IS("connections")) {
            if (parse_unsigned(value, 1, S3_MAX_CONNECTIONS, &c->connections) != 0)
                rc = error_set(err, "S3 URL: connections must be 1..%d", S3_MAX_CONNECTIONS);
        } else if (IS("retry_time_ms")) {
            if (parse_unsigned(value, 0, 600000, &c->retry_time_ms) != 0)
                rc = error_set(err, "S3 URL: retry_time_ms must be 0..600000");
        } else if (IS("timeout_ms")) {
            if (parse_unsigned(value, 100, 3600000, &c->timeout_ms) != 0)
                rc = error_set(err, "S3 URL: timeout_ms must be 100..3600000");
        } else {
            rc = error_set(err, "S3 URL: unknown parameter \"%.*s\" (known: endpoint, region, "
                                "path_style, credentials, profile, connections, "
                                "retry_time_ms, timeout_ms)", (int)name_len, p);
        }
#undef IS
        free(value);
        p = amp ? amp + 1 : NULL;
    }
    if (rc != 0)
        goto done;
    if (!c->region && !(c->region = strdup("us-east-1"))) {
        rc = error_set(err, "out of memory");
        goto done;
    }
    if (!c->endpoint) {
        size_t n = strlen(c->region) + 40;
        c->endpoint = malloc(n);
        if (!c->endpoint) {
            rc = error_set(err, "out of memory");
            goto done;
        }
        snprintf(c->endpoint, n, "https://s3.%s.amazonaws.com", c->region);
    }
    size_t n = strlen(c->region) + 16;
    c->sigv4 = malloc(n);
    if (!c->sigv4) {
        rc = error_set(err, "out of memory");
        goto done;
    }
    snprintf(c->sigv4, n, "aws:amz:%s:s3", c->region);

    if (credentials_file)
        rc = load_credentials_file(c, credentials_file, profile ? profile : "default", err);
    else if (profile)
        rc = error_set(err, "S3 URL: profile= needs credentials=FILE");
    else
        rc = load_credentials_env(c, err);
    if (rc == 0 && (!credential_ok(c->access_key) || !credential_ok(c->secret_key) ||
                    (c->session_token && !credential_ok(c->session_token))))
        rc = error_set(err, "S3 credentials contain characters that cannot be sent");
    if (rc == 0 && address_key_of(c, &c->address_key) != 0)
        rc = error_set(err, "out of memory");

done:
    free(credentials_file);
    free(profile);
    if (rc != 0) {
        s3_client_free(c);
        return NULL;
    }
    return c;
}

static void session_free(session *s)
{
    for (unsigned i = 0; i < S3_MAX_CONNECTIONS; i++)
        if (s->easy[i])
            curl_easy_cleanup(s->easy[i]);
    if (s->multi)
        curl_multi_cleanup(s->multi);
    free(s);
}

void s3_client_free(s3_client *c)
{
    if (!c)
        return;
    while (c->idle_sessions) {
        session *s = c->idle_sessions;
        c->idle_sessions = s->next;
        session_free(s);
    }
    pthread_mutex_destroy(&c->sessions_lock);
    free(c->bucket);
    free(c->prefix);
    free(c->endpoint);
    free(c->region);
    free(c->sigv4);
    free(c->address_key);
    wipe_free(c->access_key);
    wipe_free(c->secret_key);
    wipe_free(c->session_token);
    free(c);
}

const char *s3_client_bucket(const s3_client *c)
{
    return c->bucket;
}

const char *s3_client_prefix(const s3_client *c)
{
    return c->prefix;
}

void s3_client_stats(const s3_client *c, s3_stats *out)
{
    out->requests = atomic_load(&((s3_client *)c)->requests);
    out->retries = atomic_load(&((s3_client *)c)->retries);
    out->failures = atomic_load(&((s3_client *)c)->failures);
    out->stale_address_uses = atomic_load(&((s3_client *)c)->stale_address_uses);
}

/* ---- sessions: a multi handle and its easy handles, used by one caller at a time ---- */

static session *session_take(s3_client *c)
{
    pthread_mutex_lock(&c->sessions_lock);
    session *s = c->idle_sessions;
    if (s) {
        c->idle_sessions = s->next;
        c->idle_count--;
    }
    pthread_mutex_unlock(&c->sessions_lock);
    if (s)
        return s;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->multi = curl_multi_init();
    if (!s->multi) {
        free(s);
        return NULL;
    }
    curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)c->connections);
    curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)c->connections);
    return s;
}

static void session_give_back(s3_client *c, session *s)
{
    pthread_mutex_lock(&c->sessions_lock);
    if (c->idle_count < SESSIONS_KEPT) {
        s->next = c->idle_sessions;
        c->idle_sessions = s;
        c->idle_count++;
        s = NULL;
    }
    pthread_mutex_unlock(&c->sessions_lock);
    if (s)
        session_free(s);
}

/* ---- transfers ---- */

typedef enum transfer_state { WAITING, RUNNING, FINISHED } transfer_state;

typedef struct transfer {
    s3_client *client;
    bool bucket_level; /* the client's prefix is not put in front (listing) */
    const s3_request *request;
    s3_response *response;
    char *url;
    struct curl_slist *headers;
    transfer_state state;
    CURL *easy;
    int slot;
    uint64_t not_before_ms; /* a retry waits until then */
    uint64_t deadline_ms;   /* no retry starts later than this */
    long status;            /* of the response being received */
    bool error_body;        /* the current response is not 2xx: keep only ERROR_BODY_MAX */
    bool name_failed;       /* an attempt could not resolve the endpoint's name */
    struct curl_slist *pinned; /* CURLOPT_RESOLVE entry of an attempt at the known address */
    char curl_error[CURL_ERROR_SIZE];
} transfer;

static bool method_ok(const char *m)
{
    return m && (strcmp(m, "GET") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "DELETE") == 0 ||
                 strcmp(m, "HEAD") == 0);
}

static bool header_value_ok(const char *v)
{
    if (!v)
        return true;
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || *v == 0x7f)
            return false;
    return true;
}

/* The object's path below the endpoint: "/bucket/prefix/key" (path style) or "/prefix/key". */
static int build_url(const s3_client *c, const s3_request *r, bool bucket_level, buffer *url)
{
    buffer_reset(url);
    const char *endpoint = c->endpoint;
    if (c->path_style) {
        if (buffer_append_str(url, endpoint) != 0 || buffer_append_byte(url, '/') != 0 ||
            append_encoded(url, c->bucket, false) != 0)
            return -1;
    } else {
        const char *host = strstr(endpoint, "://") + 3;
        if (buffer_append(url, endpoint, (size_t)(host - endpoint)) != 0 ||
            append_encoded(url, c->bucket, false) != 0 || buffer_append_byte(url, '.') != 0 ||
            buffer_append_str(url, host) != 0)
            return -1;
    }
    bool has_prefix = c->prefix[0] != 0 && !bucket_level;
    bool has_key = r->key && r->key[0];
    if (has_prefix || has_key) {
        if (buffer_append_byte(url, '/') != 0)
            return -1;
        if (has_prefix && append_encoded(url, c->prefix, true) != 0)
            return -1;
        if (has_prefix && has_key && buffer_append_byte(url, '/') != 0)
            return -1;
        if (has_key && append_encoded(url, r->key, true) != 0)
            return -1;
    } else if (!c->path_style && buffer_append_byte(url, '/') != 0) {
        return -1;
    }
    if (r->query_count > 0) {
        buffer query = {0};
        int rc = s3_canonical_query(r->query, r->query_count, &query);
        if (rc == 0)
            rc = buffer_append_byte(url, '?') != 0 ||
                         buffer_append(url, query.data, query.len) != 0 ? -1 : 0;
        buffer_free(&query);
        if (rc != 0)
            return -1;
    }
    return buffer_terminate(url);
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "%s: %s", name, value);
    if (n < 0 || (size_t)n >= sizeof line)
        return -1;
    struct curl_slist *next = curl_slist_append(*list, line);
    if (!next)
        return -1;
    *list = next;
    return 0;
}

static int prepare_transfer(transfer *t, error *err)
{
    const s3_request *r = t->request;
    const s3_client *c = t->client;
    if (!method_ok(r->method))
        return error_set(err, "S3 request: unsupported method");
    bool put = strcmp(r->method, "PUT") == 0;
    if (!put && r->body_len > 0)
        return error_set(err, "S3 request: only PUT carries a body");
    if (put && !r->body && r->body_len > 0)
        return error_set(err, "S3 request: no body data");
    if (r->key && r->key[0] && !object_name_ok(r->key, 1024))
        return error_set(err, "S3 request: malformed key");
    if (!header_value_ok(r->content_type) || !header_value_ok(r->content_encoding) ||
        !header_value_ok(r->cache_control) || !header_value_ok(r->if_match))
        return error_set(err, "S3 request: control characters in a header value");

    buffer url = {0};
    if (build_url(c, r, t->bucket_level, &url) != 0) {
        buffer_free(&url);
        return error_set(err, "out of memory");
    }
    t->url = (char *)url.data;

    uint8_t digest[SHA256_LEN];
    char payload_hash[2 * SHA256_LEN + 1];
    sha256(put && r->body ? r->body : "", put ? r->body_len : 0, digest);
    hex_encode(payload_hash, digest, sizeof digest);
    int rc = add_header(&t->headers, "x-amz-content-sha256", payload_hash);
    if (rc == 0 && c->session_token)
        rc = add_header(&t->headers, "x-amz-security-token", c->session_token);
    if (rc == 0 && put)
        rc = add_header(&t->headers, "Content-Type",
                        r->content_type ? r->content_type : "application/octet-stream");
    if (rc == 0 && put && r->content_encoding)
        rc = add_header(&t->headers, "Content-Encoding", r->content_encoding);
    if (rc == 0 && put && r->cache_control)
        rc = add_header(&t->headers, "Cache-Control", r->cache_control);
    if (rc == 0 && r->if_match)
        rc = add_header(&t->headers, "If-Match", r->if_match);
    if (rc == 0 && r->if_none_match_any)
        rc = add_header(&t->headers, "If-None-Match", "*");
    /* No "Expect:" (or any other empty) header to suppress libcurl's own: libcurl 7.88 signs
     * such a header although it does not send it, and the server then rejects the signature.
     * Bodies above 1 MiB therefore wait for "100 Continue", which RGW and S3 send at once. */
    if (rc != 0)
        return error_set(err, "out of memory (or an over-long header)");
    return 0;
}

/* Copies a header value (trimmed) into a fixed field, truncating. */
static void copy_field(char *dst, size_t cap, const char *value, size_t len)
{
    while (len > 0 && (value[0] == ' ' || value[0] == '\t')) {
        value++;
        len--;
    }
    while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n' ||
                       value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, value, len);
    dst[len] = 0;
}

static void reset_response_fields(s3_response *r)
{
    buffer_reset(&r->body);
    r->etag[0] = r->content_type[0] = r->content_encoding[0] = r->cache_control[0] = 0;
    r->last_modified[0] = 0;
    r->too_large = false;
}

static size_t on_header(char *data, size_t size, size_t count, void *ctx)
{
    transfer *t = ctx;
    size_t len = size * count;
    s3_response *r = t->response;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new response (after a 100 Continue, say): forget the previous one's fields. */
        reset_response_fields(r);
        const char *sp = memchr(data, ' ', len);
        t->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        t->error_body = t->status < 200 || t->status > 299;
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon)
        return len;
    size_t name_len = (size_t)(colon - data);
    const char *value = colon + 1;
    size_t value_len = len - name_len - 1;
#define NAMED(n) (name_len == strlen(n) && strncasecmp(data, n, name_len) == 0)
    if (NAMED("ETag")) {
        char raw[S3_ETAG_MAX + 8];
        copy_field(raw, sizeof raw, value, value_len);
        char *v = raw;
        if (strncmp(v, "W/", 2) == 0)
            v += 2;
        size_t n = strlen(v);
        if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
            v[n - 1] = 0;
            v++;
        }
        snprintf(r->etag, sizeof r->etag, "%s", v);
    } else if (NAMED("Content-Type")) {
        copy_field(r->content_type, sizeof r->content_type, value, value_len);
    } else if (NAMED("Content-Encoding")) {
        copy_field(r->content_encoding, sizeof r->content_encoding, value, value_len);
    } else if (NAMED("Cache-Control")) {
        copy_field(r->cache_control, sizeof r->cache_control, value, value_len);
    } else if (NAMED("Last-Modified")) {
        copy_field(r->last_modified, sizeof r->last_modified, value, value_len);
    } else if (NAMED("Content-Length") && !t->error_body) {
        char digits[32];
        copy_field(digits, sizeof digits, value, value_len);
        unsigned long long n = strtoull(digits, NULL, 10);
        if (n > t->request->max_response_bytes && strcmp(t->request->method, "HEAD") != 0) {
            r->too_large = true; /* refuse before reading any of it */
            return 0;
        }
    }
#undef NAMED
    return len;
}

static size_t on_body(char *data, size_t size, size_t count, void *ctx)
{
    transfer *t = ctx;
    size_t len = size * count;
    s3_response *r = t->response;
    if (t->error_body) {
        size_t room = r->body.len < ERROR_BODY_MAX ? ERROR_BODY_MAX - r->body.len : 0;
        if (buffer_append(&r->body, data, len < room ? len : room) != 0)
            return 0;
        return len;
    }
    size_t max = t->request->max_response_bytes;
    if (r->body.len > max || len > max - r->body.len) {
        r->too_large = true;
        return 0;
    }
    return buffer_append(&r->body, data, len) == 0 ? len : 0;
}

/* After a failed name lookup: sends this attempt (and, through the session's DNS cache, the
 * session's next requests for a minute) to the endpoint's last working address. */
static CURLcode pin_known_address(transfer *t, CURL *easy)
{
    s3_client *c = t->client;
    char address[ADDRESS_MAX];
    if (!c->address_key || !known_address_find(c->address_key, address))
        return CURLE_OK;
    char entry[ADDRESS_KEY_MAX + ADDRESS_MAX + 4];
    bool v6 = strchr(address, ':') != NULL;
    snprintf(entry, sizeof entry, "+%s:%s%s%s", c->address_key, v6 ? "[" : "", address,
             v6 ? "]" : "");
    curl_slist_free_all(t->pinned);
    if (!(t->pinned = curl_slist_append(NULL, entry)))
        return CURLE_OUT_OF_MEMORY;
    if (atomic_fetch_add(&c->stale_address_uses, 1) == 0)
        log_warn("the S3 endpoint's name does not resolve; using its last working address",
                 "endpoint=%s address=%s", c->address_key, address);
    return curl_easy_setopt(easy, CURLOPT_RESOLVE, t->pinned);
}

static int start_attempt(transfer *t, CURL *easy)
{
    const s3_client *c = t->client;
    const s3_request *r = t->request;
    curl_easy_reset(easy);
    reset_response_fields(t->response);
    t->status = 0;
    t->error_body = false;
    t->curl_error[0] = 0;
    t->easy = easy;
    CURLcode rc = CURLE_OK;
#define SET(opt, val) \
    if (rc == CURLE_OK) \
    rc = curl_easy_setopt(easy, opt, val)
    SET(CURLOPT_URL, t->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROXY, ""); /* the endpoint is reached directly, whatever the environment */
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    SET(CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    SET(CURLOPT_AWS_SIGV4, c->sigv4);
    SET(CURLOPT_USERNAME, c->access_key);
    SET(CURLOPT_PASSWORD, c->secret_key);
    SET(CURLOPT_HTTPHEADER, t->headers);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, t);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, t);
    SET(CURLOPT_ERRORBUFFER, t->curl_error);
    SET(CURLOPT_PRIVATE, t);
    SET(CURLOPT_USERAGENT, "tegula");
    if (strcmp(r->method, "PUT") == 0) {
        /* POSTFIELDS sends the caller's bytes without a copy; the method becomes PUT. */
        SET(CURLOPT_POSTFIELDS, r->body_len ? r->body : "");
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        SET(CURLOPT_CUSTOMREQUEST, "PUT");
    } else if (strcmp(r->method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "DELETE") == 0) {
        SET(CURLOPT_CUSTOMREQUEST, "DELETE");
    } else {
        SET(CURLOPT_HTTPGET, 1L);
    }
    if (rc == CURLE_OK && t->name_failed)
        rc = pin_known_address(t, easy);
#undef SET
    return rc == CURLE_OK ? 0 : -1;
}

static bool retryable(const s3_response *r)
{
    if (r->too_large)
        return false;
    return r->status == 0 || r->status == 429 || (r->status >= 500 && r->status != 501);
}

/* Pulls "<Code>X</Code>" and "<Message>Y</Message>" out of an S3 error body. */
static void describe_error_body(const s3_response *r, char *out, size_t cap)
{
    const char *body = (const char *)r->body.data;
    size_t len = r->body.len;
    char code[64] = "", message[96] = "";
    const struct {
        const char *open, *close;
        char *dst;
        size_t cap;
    } fields[] = {{"<Code>", "</Code>", code, sizeof code},
                  {"<Message>", "</Message>", message, sizeof message}};
    for (size_t f = 0; f < 2 && body; f++) {
        const char *start = memmem(body, len, fields[f].open, strlen(fields[f].open));
        if (!start)
            continue;
        start += strlen(fields[f].open);
        const char *end = memmem(start, len - (size_t)(start - body), fields[f].close,
                                 strlen(fields[f].close));
        if (!end)
            continue;
        size_t n = (size_t)(end - start);
        if (n >= fields[f].cap)
            n = fields[f].cap - 1;
        for (size_t i = 0; i < n; i++) /* printable only: it ends up in logs */
            fields[f].dst[i] = (start[i] >= 0x20 && start[i] < 0x7f) ? start[i] : '?';
        fields[f].dst[n] = 0;
    }
    snprintf(out, cap, "HTTP %d%s%s%s%s", r->status, code[0] ? " " : "", code,
             message[0] ? ": " : "", message);
}

static void finish_attempt(transfer *t, CURLcode result, uint64_t now)
{
    s3_response *r = t->response;
    s3_client *c = t->client;
    r->attempts++;
    atomic_fetch_add(&c->requests, 1);
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (result == CURLE_OK) {
        char *address = NULL;
        if (c->address_key && curl_easy_getinfo(t->easy, CURLINFO_PRIMARY_IP, &address) == CURLE_OK)
            known_address_record(c->address_key, address);
        r->status = (int)status;
        r->reason[0] = 0;
        if (status < 200 || status > 299)
            describe_error_body(r, r->reason, sizeof r->reason);
    } else if (r->too_large) {
        r->status = (int)status;
        snprintf(r->reason, sizeof r->reason, "response body larger than %zu bytes",
                 t->request->max_response_bytes);
    } else {
        r->status = 0;
        snprintf(r->reason, sizeof r->reason, "%s",
                 t->curl_error[0] ? t->curl_error : curl_easy_strerror(result));
        /* libcurl's words for a lookup that ran out of time (multi.c). */
        t->name_failed |= result == CURLE_COULDNT_RESOLVE_HOST ||
                          (result == CURLE_OPERATION_TIMEDOUT &&
                           strncmp(t->curl_error, "Resolving timed out", 19) == 0);
    }
    if (retryable(r)) {
        unsigned exponent = r->attempts - 1 < 16 ? r->attempts - 1 : 16;
        uint64_t ceiling = (uint64_t)BACKOFF_BASE_MS << exponent;
        if (ceiling > BACKOFF_CAP_MS)
            ceiling = BACKOFF_CAP_MS;
        uint64_t delay = ceiling / 2 + random_u64() % (ceiling / 2 + 1);
        if (now + delay <= t->deadline_ms) {
            atomic_fetch_add(&c->retries, 1);
            t->not_before_ms = now + delay;
            t->state = WAITING;
            return;
        }
    }
    if (r->status < 200 || r->status > 299 || r->too_large)
        atomic_fetch_add(&c->failures, 1);
    t->state = FINISHED;
}

static int perform(s3_client *c, const s3_request *requests, s3_response *responses,
                   size_t count, bool bucket_level, error *err)
{
    if (count == 0)
        return 0;
    transfer *transfers = calloc(count, sizeof *transfers);
    if (!transfers)
        return error_set(err, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        transfers[i] = (transfer){.client = c, .bucket_level = bucket_level,
                                  .request = &requests[i],
                                  .response = &responses[i], .slot = -1};
        rc = prepare_transfer(&transfers[i], err);
    }
    session *s = rc == 0 ? session_take(c) : NULL;
    if (rc == 0 && !s)
        rc = error_set(err, "out of memory (curl handles)");
    if (rc != 0)
        goto cleanup;

    uint64_t start = monotonic_ms();
    for (size_t i = 0; i < count; i++) {
        transfers[i].deadline_ms = start + c->retry_time_ms;
        responses[i].status = 0;
        responses[i].attempts = 0;
        responses[i].reason[0] = 0;
        reset_response_fields(&responses[i]);
    }
    bool slot_busy[S3_MAX_CONNECTIONS] = {0};
    size_t finished = 0, first_waiting = 0;
    unsigned running = 0;
    while (finished < count) {
        uint64_t now = monotonic_ms();
        uint64_t next_wake = now + 1000;
        /* Start what may start, oldest first, up to the connection limit. */
        for (size_t i = first_waiting; i < count && running < c->connections; i++) {
            transfer *t = &transfers[i];
            if (t->state != WAITING)
                continue;
            if (t->not_before_ms > now) {
                if (t->not_before_ms < next_wake)
                    next_wake = t->not_before_ms;
                continue;
            }
            int slot = 0;
            while (slot_busy[slot])
                slot++;
            if (!s->easy[slot] && !(s->easy[slot] = curl_easy_init())) {
                rc = error_set(err, "out of memory (curl handles)");
                break;
            }
            if (start_attempt(t, s->easy[slot]) != 0 ||
                curl_multi_add_handle(s->multi, s->easy[slot]) != CURLM_OK) {
                /* Only an out-of-memory libcurl refuses options it knows. */
                t->response->status = 0;
                snprintf(t->response->reason, sizeof t->response->reason,
                         "could not set up the transfer");
                t->state = FINISHED;
                finished++;
                continue;
            }
            slot_busy[slot] = true;
            t->slot = slot;
            t->state = RUNNING;
            running++;
        }
        if (rc != 0)
            break;
        while (first_waiting < count && transfers[first_waiting].state == FINISHED)
            first_waiting++;
        int still_running = 0;
        curl_multi_perform(s->multi, &still_running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(s->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            transfer *t = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
            CURLcode result = msg->data.result;
            curl_multi_remove_handle(s->multi, msg->easy_handle);
            slot_busy[t->slot] = false;
            t->slot = -1;
            running--;
            finish_attempt(t, result, monotonic_ms());
            t->easy = NULL;
            if (t->state == FINISHED)
                finished++;
            else if (t->not_before_ms < next_wake)
                next_wake = t->not_before_ms;
        }
        if (finished == count)
            break;
        /* Sleep until a retry falls due or a transfer makes progress; not at all when a
         * transfer could start now on a free connection. */
        now = monotonic_ms();
        bool startable = false;
        for (size_t i = first_waiting; i < count; i++) {
            if (transfers[i].state != WAITING)
                continue;
            if (transfers[i].not_before_ms <= now)
                startable |= running < c->connections;
            else if (transfers[i].not_before_ms < next_wake)
                next_wake = transfers[i].not_before_ms;
        }
        int wait_ms = startable ? 0 : next_wake > now ? (int)(next_wake - now) : 0;
        if (wait_ms > 1000)
            wait_ms = 1000;
        if (running > 0) {
            curl_multi_poll(s->multi, NULL, 0, wait_ms, NULL);
        } else if (wait_ms > 0) {
            struct timespec ts = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    /* Only an out-of-memory break leaves transfers running: take them out again. */
    for (size_t i = 0; i < count; i++)
        if (transfers[i].state == RUNNING && transfers[i].easy)
            curl_multi_remove_handle(s->multi, transfers[i].easy);
    session_give_back(c, s);

cleanup:
    for (size_t i = 0; i < count; i++) {
        free(transfers[i].url);
        curl_slist_free_all(transfers[i].headers);
        curl_slist_free_all(transfers[i].pinned);
    }
    free(transfers);
    return rc;
}

int s3_perform(s3_client *c, const s3_request *requests, s3_response *responses,
               size_t count, error *err)
{
    return perform(c, requests, responses, count, false, err);
}

void s3_response_free(s3_response *r)
{
    if (r)
        buffer_free(&r->body);
}

int s3_error(error *err, const s3_client *c, const s3_request *request,
             const s3_response *response)
{
    const char *key = request->key ? request->key : "";
    const char *sep1 = c->prefix[0] ? "/" : "";
    const char *sep2 = key[0] ? "/" : "";
    const char *hint = "";
    if (response->status == 403)
        hint = "; check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the "
               "credentials file) and the region";
    else if (response->status == 0 && response->attempts > 1)
        hint = "; gave up retrying";
    else if (response->status >= 500 && response->attempts > 1)
        hint = "; gave up retrying";
    char attempts[32] = "";
    if (response->attempts > 1)
        snprintf(attempts, sizeof attempts, " after %u attempts", response->attempts);
    return error_set(err, "S3 %s %s%s%s%s%s: %s%s%s", request->method, c->bucket, sep1,
                     c->prefix, sep2, key,
                     response->reason[0] ? response->reason : "failed", attempts, hint);
}

/* ---- listing ---- */

/* Decodes the five XML entities (and numeric ones below 0x80) in place. */
static void xml_unescape(char *s)
{
    char *out = s;
    while (*s) {
        if (*s == '&') {
            static const struct {
                const char *name;
                char c;
            } entities[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'},
                            {"&apos;", '\''}};
            bool done = false;
            for (size_t i = 0; i < 5 && !done; i++) {
                size_t n = strlen(entities[i].name);
                if (strncmp(s, entities[i].name, n) == 0) {
                    *out++ = entities[i].c;
                    s += n;
                    done = true;
                }
            }
            if (!done && s[1] == '#') {
                char *end;
                long v = s[2] == 'x' ? strtol(s + 3, &end, 16) : strtol(s + 2, &end, 10);
                if (*end == ';' && v > 0 && v < 0x80) {
                    *out++ = (char)v;
                    s = end + 1;
                    done = true;
                }
            }
            if (!done)
                *out++ = *s++;
        } else {
            *out++ = *s++;
        }
    }
    *out = 0;
}

/* Finds the text of the next <tag>...</tag> at or after *pos; NULL when none. */
static char *xml_next(const char *body, size_t len, size_t *pos, const char *tag)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    if (*pos >= len)
        return NULL;
    const char *start = memmem(body + *pos, len - *pos, open, strlen(open));
    if (!start)
        return NULL;
    start += strlen(open);
    const char *end = memmem(start, len - (size_t)(start - body), close, strlen(close));
    if (!end)
        return NULL;
    *pos = (size_t)(end - body) + strlen(close);
    char *text = strndup(start, (size_t)(end - start));
    if (text)
        xml_unescape(text);
    return text;
}

int s3_list(s3_client *c, const char *key_prefix, int (*each)(const char *key, void *ctx),
            void *ctx, error *err)
{
    buffer full_prefix = {0};
    if ((c->prefix[0] && (buffer_append_str(&full_prefix, c->prefix) != 0 ||
                          buffer_append_byte(&full_prefix, '/') != 0)) ||
        (key_prefix && buffer_append_str(&full_prefix, key_prefix) != 0) ||
        buffer_terminate(&full_prefix) != 0) {
        buffer_free(&full_prefix);
        return error_set(err, "out of memory");
    }
    const char *list_prefix = full_prefix.data ? (const char *)full_prefix.data : "";
    size_t strip = c->prefix[0] ? strlen(c->prefix) + 1 : 0;

    char *token = NULL;
    s3_response response = {0};
    int rc = 0;
    for (;;) {
        s3_param params[3] = {{"list-type", "2"}, {"prefix", list_prefix}};
        size_t n = 2;
        if (token)
            params[n++] = (s3_param){"continuation-token", token};
        s3_request request = {.method = "GET", .query = params, .query_count = n,
                              .max_response_bytes = 16u << 20};
        /* Listing addresses the bucket itself, with the prefix as a parameter. */
        if (perform(c, &request, &response, 1, true, err) != 0) {
            rc = -1;
            break;
        }
        if (response.status != 200 || response.too_large) {
            rc = s3_error(err, c, &request, &response);
            break;
        }
        const char *body = (const char *)response.body.data;
        size_t len = response.body.len, pos = 0;
        char *key;
        while (rc == 0 && (key = xml_next(body, len, &pos, "Key"))) {
            if (strlen(key) >= strip && strncmp(key, list_prefix, strlen(list_prefix)) == 0)
                rc = each(key + strip, ctx);
            free(key);
        }
        if (rc != 0)
            break;
        pos = 0;
        char *truncated = xml_next(body, len, &pos, "IsTruncated");
        bool more = truncated && strcmp(truncated, "true") == 0;
        free(truncated);
        free(token);
        pos = 0;
        token = more ? xml_next(body, len, &pos, "NextContinuationToken") : NULL;
        if (!more)
            break;
        if (!token) {
            rc = error_set(err, "S3 list %s: truncated listing without a continuation token",
                           c->bucket);
            break;
        }
    }
    free(token);
    s3_response_free(&response);
    buffer_free(&full_prefix);
    return rc;
}
