#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

/* Unix domain socket paths (sun_path) hold 108 bytes including the terminator. */
#define IPC_PATH_MAX 107

/* State of one walk over a parsed document. Field paths ("logs[1].key") are built on the
 * stack by each section so that every message can name exactly what is wrong. */
typedef struct walker {
    const char *file;
    const char *dir;
    yaml_document_t *doc;
    error *err;
} walker;

static size_t node_line(const yaml_node_t *node)
{
    return node->start_mark.line + 1;
}

static int fail_at(walker *w, size_t line, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(walker *w, size_t line, const char *field, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (field && *field)
        return error_set(w->err, "%s:%zu: field %s: %s", w->file, line, field, what);
    return error_set(w->err, "%s:%zu: %s", w->file, line, what);
}

/* A short description of a node for "expected X, got Y" messages. */
static void node_describe(const yaml_node_t *node, char *out, size_t cap)
{
    switch (node->type) {
    case YAML_MAPPING_NODE:
        snprintf(out, cap, "a mapping");
        break;
    case YAML_SEQUENCE_NODE:
        snprintf(out, cap, "a list");
        break;
    case YAML_SCALAR_NODE: {
        size_t n = node->data.scalar.length;
        const char *v = (const char *)node->data.scalar.value;
        if (n > 40)
            snprintf(out, cap, "\"%.37s...\"", v);
        else
            snprintf(out, cap, "\"%.*s\"", (int)n, v);
        for (char *p = out; *p; p++)
            if ((unsigned char)*p < 0x20)
                *p = '?';
        break;
    }
    default:
        snprintf(out, cap, "nothing");
        break;
    }
}

static int fail_type(walker *w, const yaml_node_t *node, const char *field, const char *expected)
{
    char got[64];
    node_describe(node, got, sizeof got);
    return fail_at(w, node_line(node), field, "expected %s, got %s", expected, got);
}

static void field_join(char *out, size_t cap, const char *parent, const char *key)
{
    if (parent && *parent)
        snprintf(out, cap, "%s.%s", parent, key);
    else
        snprintf(out, cap, "%s", key);
}

static bool scalar_is_null(const yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)node->data.scalar.value;
    return strcmp(v, "") == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* Collects the values of a mapping's keys into values[] (indexed like keys[]); any other key
 * or a key given twice is an error. */
static int mapping_collect(walker *w, const yaml_node_t *map, const char *field,
                           const char *const *keys, size_t key_count, const yaml_node_t **values)
{
    if (map->type != YAML_MAPPING_NODE)
        return fail_type(w, map, field, "a mapping");
    const yaml_node_t *first_key[32] = {0};
    if (key_count > sizeof first_key / sizeof first_key[0])
        return fail_at(w, node_line(map), field, "too many keys in the schema");
    for (size_t i = 0; i < key_count; i++)
        values[i] = NULL;
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top; pair++) {
        const yaml_node_t *key = yaml_document_get_node(w->doc, pair->key);
        const yaml_node_t *value = yaml_document_get_node(w->doc, pair->value);
        if (!key || !value)
            return fail_at(w, node_line(map), field, "malformed mapping");
        if (key->type != YAML_SCALAR_NODE)
            return fail_type(w, key, field, "a key name");
        const char *name = (const char *)key->data.scalar.value;
        size_t index = key_count;
        for (size_t i = 0; i < key_count; i++) {
            if (strlen(keys[i]) == key->data.scalar.length && strcmp(keys[i], name) == 0) {
                index = i;
                break;
            }
        }
        char path[128];
        if (index == key_count) {
            char shown[80];
            snprintf(shown, sizeof shown, "%.64s", name);
            for (char *p = shown; *p; p++)
                if ((unsigned char)*p < 0x20)
                    *p = '?';
            field_join(path, sizeof path, field, shown);
            return fail_at(w, node_line(key), path, "unknown key");
        }
        field_join(path, sizeof path, field, keys[index]);
        if (first_key[index])
            return fail_at(w, node_line(key), path, "duplicate key (first given on line %zu)",
                           node_line(first_key[index]));
        first_key[index] = key;
        values[index] = value;
    }
    return 0;
}

static int fail_missing(walker *w, const yaml_node_t *parent, const char *parent_field,
                        const char *key)
{
    char path[128];
    field_join(path, sizeof path, parent_field, key);
    return fail_at(w, node_line(parent), path, "missing (required)");
}

/* A scalar's text, checked to be a non-empty string without NUL bytes. */
static int scalar_text(walker *w, const yaml_node_t *node, const char *field, bool allow_empty,
                       const char **out)
{
    if (node->type != YAML_SCALAR_NODE)
        return fail_type(w, node, field, "a string");
    if (scalar_is_null(node) && !allow_empty)
        return fail_at(w, node_line(node), field, "has no value");
    const char *v = (const char *)node->data.scalar.value;
    if (strlen(v) != node->data.scalar.length)
        return fail_at(w, node_line(node), field, "contains a NUL byte");
    if (!allow_empty && *v == 0)
        return fail_at(w, node_line(node), field, "must not be empty");
    *out = v;
    return 0;
}

static char *dup_or_fail(walker *w, const yaml_node_t *node, const char *field, const char *s)
{
    char *copy = strdup(s);
    if (!copy)
        fail_at(w, node_line(node), field, "out of memory");
    return copy;
}

static int get_string(walker *w, const yaml_node_t *node, const char *field, bool allow_empty,
                      char **out)
{
    const char *v;
    if (scalar_text(w, node, field, allow_empty, &v) != 0)
        return -1;
    if (allow_empty && scalar_is_null(node))
        v = "";
    *out = dup_or_fail(w, node, field, v);
    return *out ? 0 : -1;
}

/* Unsigned decimal integer within [min, max]. Quoted scalars are strings, not numbers. */
static int get_uint(walker *w, const yaml_node_t *node, const char *field, uint64_t min,
                    uint64_t max, uint32_t *out)
{
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return fail_type(w, node, field, "an integer");
    const char *v = (const char *)node->data.scalar.value;
    size_t n = node->data.scalar.length;
    bool negative = n > 0 && v[0] == '-';
    size_t start = negative ? 1 : 0;
    if (n == start || n - start > 19)
        return fail_type(w, node, field, "an integer");
    uint64_t value = 0;
    for (size_t i = start; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return fail_type(w, node, field, "an integer");
        value = value * 10 + (uint64_t)(v[i] - '0');
    }
    if (negative && value != 0)
        return fail_at(w, node_line(node), field, "%s is out of range %llu..%llu", v,
                       (unsigned long long)min, (unsigned long long)max);
    if (value < min || value > max)
        return fail_at(w, node_line(node), field, "%llu is out of range %llu..%llu",
                       (unsigned long long)value, (unsigned long long)min,
                       (unsigned long long)max);
    *out = (uint32_t)value;
    return 0;
}

static int get_uint_default(walker *w, const yaml_node_t *node, const char *parent,
                            const char *key, uint64_t min, uint64_t max, uint32_t fallback,
                            uint32_t *out)
{
    if (!node) {
        *out = fallback;
        return 0;
    }
    char path[128];
    field_join(path, sizeof path, parent, key);
    return get_uint(w, node, path, min, max, out);
}

static int get_bool(walker *w, const yaml_node_t *node, const char *field, bool *out)
{
    if (node->type == YAML_SCALAR_NODE && node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        const char *v = (const char *)node->data.scalar.value;
        if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE")) {
            *out = true;
            return 0;
        }
        if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE")) {
            *out = false;
            return 0;
        }
    }
    return fail_type(w, node, field, "true or false");
}

/* One of a fixed set of words; returns its index. */
static int get_choice(walker *w, const yaml_node_t *node, const char *field,
                      const char *const *choices, size_t count, const char *choices_text,
                      int *out)
{
    if (node->type == YAML_SCALAR_NODE) {
        const char *v = (const char *)node->data.scalar.value;
        for (size_t i = 0; i < count; i++) {
            if (strlen(choices[i]) == node->data.scalar.length && strcmp(v, choices[i]) == 0) {
                *out = (int)i;
                return 0;
            }
        }
    }
    return fail_type(w, node, field, choices_text);
}

/* ---- paths and URLs ---- */

static char *path_join(const char *dir, const char *relative)
{
    while (relative[0] == '.' && relative[1] == '/')
        relative += 2;
    size_t a = strlen(dir), b = strlen(relative);
    bool slash = a > 0 && dir[a - 1] == '/';
    char *out = malloc(a + b + 2);
    if (!out)
        return NULL;
    memcpy(out, dir, a);
    if (!slash)
        out[a++] = '/';
    memcpy(out + a, relative, b + 1);
    return out;
}

static char *resolve_path(walker *w, const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    return path_join(w->dir, path);
}

static int get_path(walker *w, const yaml_node_t *node, const char *field, char **out)
{
    const char *v;
    if (scalar_text(w, node, field, false, &v) != 0)
        return -1;
    *out = resolve_path(w, v);
    if (!*out)
        return fail_at(w, node_line(node), field, "out of memory");
    return 0;
}

static bool has_space_or_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
            return true;
    return false;
}

/* A port number 0..65535 (min given), all digits. */
static bool port_valid(const char *p, size_t n, unsigned min)
{
    if (n == 0 || n > 5)
        return false;
    unsigned value = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        value = value * 10 + (unsigned)(p[i] - '0');
    }
    return value >= min && value <= 65535;
}

/* host:port where host is a name, an IPv4 address or a [bracketed] IPv6 address. */
static bool host_port_valid(const char *s, bool host_required, unsigned min_port)
{
    if (has_space_or_control(s))
        return false;
    const char *colon = strrchr(s, ':');
    if (!colon)
        return false;
    size_t host_len = (size_t)(colon - s);
    if (host_len == 0 && host_required)
        return false;
    if (host_len > 0 && s[0] == '[') {
        if (s[host_len - 1] != ']' || host_len < 3)
            return false;
    } else {
        for (size_t i = 0; i < host_len; i++)
            if (s[i] == '[' || s[i] == ']' || s[i] == '/' || s[i] == '@' || s[i] == ':')
                return false;
    }
    return port_valid(colon + 1, strlen(colon + 1), min_port);
}

static int get_host_port(walker *w, const yaml_node_t *node, const char *field,
                         bool host_required, unsigned min_port, char **out)
{
    const char *v;
    if (scalar_text(w, node, field, false, &v) != 0)
        return -1;
    if (!host_port_valid(v, host_required, min_port)) {
        char got[64];
        node_describe(node, got, sizeof got);
        return fail_at(w, node_line(node), field, "expected host:port, got %s", got);
    }
    *out = dup_or_fail(w, node, field, v);
    return *out ? 0 : -1;
}

/* An http(s) URL prefix ending in '/'. Also yields the origin and the URL path. */
static int get_http_prefix(walker *w, const yaml_node_t *node, const char *field, char **out,
                           char **origin, char **path_prefix)
{
    const char *v;
    if (scalar_text(w, node, field, false, &v) != 0)
        return -1;
    char got[64];
    node_describe(node, got, sizeof got);
    size_t scheme = 0;
    if (strncmp(v, "https://", 8) == 0)
        scheme = 8;
    else if (strncmp(v, "http://", 7) == 0)
        scheme = 7;
    else
        return fail_at(w, node_line(node), field, "expected an http:// or https:// URL, got %s",
                       got);
    const char *host = v + scheme;
    const char *slash = strchr(host, '/');
    size_t len = strlen(v);
    if (has_space_or_control(v) || strpbrk(v, "?#@\\"))
        return fail_at(w, node_line(node), field,
                       "URL %s must not contain spaces, '?', '#', '@' or '\\'", got);
    if (slash == host || *host == 0)
        return fail_at(w, node_line(node), field, "URL %s has no host", got);
    if (!slash || v[len - 1] != '/')
        return fail_at(w, node_line(node), field, "URL %s must end with '/'", got);
    if (strstr(slash, "//"))
        return fail_at(w, node_line(node), field, "URL %s has an empty path segment", got);
    char *copy = strdup(v);
    char *o = origin ? strndup(host, (size_t)(v + len - 1 - host)) : NULL;
    char *p = path_prefix ? strdup(slash) : NULL;
    if (!copy || (origin && !o) || (path_prefix && !p)) {
        free(copy);
        free(o);
        free(p);
        return fail_at(w, node_line(node), field, "out of memory");
    }
    *out = copy;
    if (origin)
        *origin = o;
    if (path_prefix)
        *path_prefix = p;
    return 0;
}

/* Storage and lock URLs: file:///abs, file:relative (resolved), s3://bucket[/prefix][?query].
 * file URLs are stored as file:///absolute/path. */
static int get_store_url(walker *w, const yaml_node_t *node, const char *field, char **out)
{
    const char *v;
    if (scalar_text(w, node, field, false, &v) != 0)
        return -1;
    char got[64];
    node_describe(node, got, sizeof got);
    if (has_space_or_control(v))
        return fail_at(w, node_line(node), field, "URL %s must not contain spaces", got);
    if (strncmp(v, "s3://", 5) == 0) {
        size_t bucket = strcspn(v + 5, "/?");
        if (bucket == 0)
            return fail_at(w, node_line(node), field, "s3 URL %s has no bucket", got);
        for (size_t i = 0; i < bucket; i++) {
            char c = v[5 + i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
                return fail_at(w, node_line(node), field, "s3 URL %s has an invalid bucket name",
                               got);
        }
        *out = dup_or_fail(w, node, field, v);
        return *out ? 0 : -1;
    }
    if (strncmp(v, "file:", 5) == 0) {
        const char *path = v + 5;
        if (strncmp(path, "//", 2) == 0) {
            path += 2;
            if (strncmp(path, "localhost/", 10) == 0)
                path += 9;
            if (path[0] != '/')
                return fail_at(w, node_line(node), field,
                               "file URL %s must be file:///absolute/path or file:relative/path",
                               got);
        }
        if (strpbrk(path, "?#"))
            return fail_at(w, node_line(node), field, "file URL %s must not contain '?' or '#'",
                           got);
        if (path[0] == 0)
            return fail_at(w, node_line(node), field, "file URL %s has no path", got);
        char *resolved = resolve_path(w, path);
        char *url = resolved ? malloc(strlen(resolved) + 8) : NULL;
        if (!url) {
            free(resolved);
            return fail_at(w, node_line(node), field, "out of memory");
        }
        sprintf(url, "file://%s", resolved);
        free(resolved);
        *out = url;
        return 0;
    }
    return fail_at(w, node_line(node), field,
                   "expected a file:///path, file:relative/path or s3://bucket URL, got %s", got);
}

/* NNG addresses: tcp://host:port (also tcp4/tcp6), ipc://path (relative resolved, stored as
 * ipc:///abs) and inproc://name. */
static int get_nng_address(walker *w, const yaml_node_t *node, const char *field, char **out)
{
    const char *v;
    if (scalar_text(w, node, field, false, &v) != 0)
        return -1;
    char got[64];
    node_describe(node, got, sizeof got);
    if (has_space_or_control(v))
        return fail_at(w, node_line(node), field, "address %s must not contain spaces", got);
    const char *rest = NULL;
    if (strncmp(v, "tcp://", 6) == 0)
        rest = v + 6;
    else if (strncmp(v, "tcp4://", 7) == 0 || strncmp(v, "tcp6://", 7) == 0)
        rest = v + 7;
    if (rest) {
        if (!host_port_valid(rest, true, 1))
            return fail_at(w, node_line(node), field, "expected tcp://host:port, got %s", got);
        *out = dup_or_fail(w, node, field, v);
        return *out ? 0 : -1;
    }
    if (strncmp(v, "inproc://", 9) == 0) {
        if (v[9] == 0)
            return fail_at(w, node_line(node), field, "inproc address %s has no name", got);
        *out = dup_or_fail(w, node, field, v);
        return *out ? 0 : -1;
    }
    if (strncmp(v, "ipc://", 6) == 0) {
        if (v[6] == 0)
            return fail_at(w, node_line(node), field, "ipc address %s has no path", got);
        char *resolved = resolve_path(w, v + 6);
        if (!resolved)
            return fail_at(w, node_line(node), field, "out of memory");
        if (strlen(resolved) > IPC_PATH_MAX) {
            free(resolved);
            return fail_at(w, node_line(node), field,
                           "ipc path is longer than %d bytes once resolved", IPC_PATH_MAX);
        }
        char *url = malloc(strlen(resolved) + 7);
        if (!url) {
            free(resolved);
            return fail_at(w, node_line(node), field, "out of memory");
        }
        sprintf(url, "ipc://%s", resolved);
        free(resolved);
        *out = url;
        return 0;
    }
    return fail_at(w, node_line(node), field,
                   "expected an NNG address (tcp://host:port, ipc://path, inproc://name), got %s",
                   got);
}

/* ---- timestamps ---- */

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar: count whole 400-year
 * cycles (146097 days each) from year 0, then years, then months, then days. */
static int64_t days_since_epoch(int64_t y, int m, int d)
{
    int64_t days = 0;
    /* Years 0..y-1, with leap days by the Gregorian rule (year 0 is a leap year). */
    if (y > 0)
        days = y * 365 + (y + 3) / 4 - (y + 99) / 100 + (y + 399) / 400;
    for (int i = 1; i < m; i++)
        days += days_in_month(y, i);
    days += d - 1;
    /* 1970-01-01 is day 719528 counted from 0000-01-01. */
    return days - 719528;
}

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int config_timestamp_parse(const char *s, size_t len, int64_t *ms_out)
{
    int year, month, day, hour, minute, second;
    if (len < 20 || len > 40)
        return -1;
    if (!digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &month) || s[7] != '-' ||
        !digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &hour) ||
        s[13] != ':' || !digits(s + 14, 2, &minute) || s[16] != ':' ||
        !digits(s + 17, 2, &second))
        return -1;
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
        minute > 59 || second > 59)
        return -1;
    size_t i = 19;
    int64_t millis = 0;
    if (i < len && s[i] == '.') {
        i++;
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (i - start < 3)
                millis = millis * 10 + (s[i] - '0');
            i++;
        }
        if (i == start || i - start > 9)
            return -1;
        for (size_t k = i - start; k < 3; k++)
            millis *= 10;
    }
    int64_t offset_minutes = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (len - i != 6 || !digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
            !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset_minutes = (int64_t)oh * 60 + om;
        if (s[i] == '-')
            offset_minutes = -offset_minutes;
        i += 6;
    } else {
        return -1;
    }
    if (i != len)
        return -1;
    int64_t seconds = days_since_epoch(year, month, day) * 86400 + (int64_t)hour * 3600 +
                      (int64_t)minute * 60 + second - offset_minutes * 60;
    *ms_out = seconds * 1000 + millis;
    return 0;
}

int config_timestamp_format(int64_t ms, char out[32])
{
    int64_t seconds = ms / 1000, millis = ms % 1000;
    if (millis < 0) {
        millis += 1000;
        seconds -= 1;
    }
    int64_t days = seconds / 86400, rem = seconds % 86400;
    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    /* Walk back from the epoch day count to a date; bounded by the 0..9999 year range. */
    if (days < days_since_epoch(0, 1, 1) || days > days_since_epoch(9999, 12, 31))
        return -1;
    int64_t year = 1970 + days / 366;
    while (days_since_epoch(year + 1, 1, 1) <= days)
        year++;
    while (days_since_epoch(year, 1, 1) > days)
        year--;
    int month = 1;
    while (month < 12 && days_since_epoch(year, month + 1, 1) <= days)
        month++;
    int day = (int)(days - days_since_epoch(year, month, 1)) + 1;
    int n = snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d", (int)year, month, day,
                     (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
    if (millis)
        snprintf(out + n, (size_t)(32 - n), ".%03dZ", (int)millis);
    else
        snprintf(out + n, (size_t)(32 - n), "Z");
    return 0;
}

static int get_timestamp(walker *w, const yaml_node_t *node, const char *field, int64_t *out)
{
    if (node->type != YAML_SCALAR_NODE ||
        config_timestamp_parse((const char *)node->data.scalar.value, node->data.scalar.length,
                               out) != 0)
        return fail_type(w, node, field, "an RFC 3339 timestamp like 2026-01-01T00:00:00Z");
    return 0;
}

/* ---- sections ---- */

enum {
    LOG_NAME,
    LOG_DESCRIPTION,
    LOG_SUBMISSION_PREFIX,
    LOG_MONITORING_PREFIX,
    LOG_KEY,
    LOG_ROOTS,
    LOG_NOT_AFTER_START,
    LOG_NOT_AFTER_LIMIT,
    LOG_STORAGE,
    LOG_LOCK,
    LOG_SEQUENCER,
    LOG_PERIOD_MS,
    LOG_POOL_LIMIT,
    LOG_MMD,
    LOG_STATUS,
    LOG_INTENDED_USE,
    LOG_FIELD_COUNT
};

static const char *const log_keys[LOG_FIELD_COUNT] = {
    [LOG_NAME] = "name",
    [LOG_DESCRIPTION] = "description",
    [LOG_SUBMISSION_PREFIX] = "submission_prefix",
    [LOG_MONITORING_PREFIX] = "monitoring_prefix",
    [LOG_KEY] = "key",
    [LOG_ROOTS] = "roots",
    [LOG_NOT_AFTER_START] = "not_after_start",
    [LOG_NOT_AFTER_LIMIT] = "not_after_limit",
    [LOG_STORAGE] = "storage",
    [LOG_LOCK] = "lock",
    [LOG_SEQUENCER] = "sequencer",
    [LOG_PERIOD_MS] = "period_ms",
    [LOG_POOL_LIMIT] = "pool_limit",
    [LOG_MMD] = "mmd",
    [LOG_STATUS] = "status",
    [LOG_INTENDED_USE] = "intended_use",
};

/* Where each log's uniqueness-checked values came from, for cross-log messages. */
typedef struct log_lines {
    size_t name, submission, monitoring, storage, lock;
} log_lines;

static bool log_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CONFIG_LOG_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

/* Points `path` at "<field>.<key>" and fails if a required key is absent, so that fields are
 * checked (and a missing one reported) in schema order. */
static int log_field(walker *w, const yaml_node_t *log_node, const char *field,
                     const yaml_node_t *const *v, int index, bool required, char *path,
                     size_t cap)
{
    field_join(path, cap, field, log_keys[index]);
    if (required && !v[index])
        return fail_missing(w, log_node, field, log_keys[index]);
    return 0;
}

static int parse_log(walker *w, const yaml_node_t *node, const char *field, config_log *log,
                     log_lines *lines)
{
    const yaml_node_t *v[LOG_FIELD_COUNT];
    if (mapping_collect(w, node, field, log_keys, LOG_FIELD_COUNT, v) != 0)
        return -1;
    char path[128];
#define FIELD(index, required) log_field(w, node, field, v, index, required, path, sizeof path)

    if (FIELD(LOG_NAME, true) || get_string(w, v[LOG_NAME], path, false, &log->name))
        return -1;
    if (!log_name_valid(log->name))
        return fail_at(w, node_line(v[LOG_NAME]), path,
                       "\"%.64s\" is not a valid log name ([a-z0-9._-], 1 to 64 characters)",
                       log->name);
    lines->name = node_line(v[LOG_NAME]);

    FIELD(LOG_DESCRIPTION, false);
    if (v[LOG_DESCRIPTION]) {
        if (get_string(w, v[LOG_DESCRIPTION], path, true, &log->description))
            return -1;
    } else if (!(log->description = strdup(""))) {
        return fail_at(w, node_line(node), field, "out of memory");
    }

    if (FIELD(LOG_SUBMISSION_PREFIX, true) ||
        get_http_prefix(w, v[LOG_SUBMISSION_PREFIX], path, &log->submission_prefix,
                        &log->origin, &log->path_prefix))
        return -1;
    lines->submission = node_line(v[LOG_SUBMISSION_PREFIX]);

    FIELD(LOG_MONITORING_PREFIX, false);
    if (v[LOG_MONITORING_PREFIX]) {
        if (get_http_prefix(w, v[LOG_MONITORING_PREFIX], path, &log->monitoring_prefix, NULL,
                            NULL))
            return -1;
        lines->monitoring = node_line(v[LOG_MONITORING_PREFIX]);
    } else {
        if (!(log->monitoring_prefix = strdup(log->submission_prefix)))
            return fail_at(w, node_line(node), field, "out of memory");
        lines->monitoring = lines->submission;
    }

    if (FIELD(LOG_KEY, true) || get_path(w, v[LOG_KEY], path, &log->key_path) ||
        FIELD(LOG_ROOTS, true) || get_path(w, v[LOG_ROOTS], path, &log->roots_path) ||
        FIELD(LOG_NOT_AFTER_START, true) ||
        get_timestamp(w, v[LOG_NOT_AFTER_START], path, &log->not_after_start_ms) ||
        FIELD(LOG_NOT_AFTER_LIMIT, true) ||
        get_timestamp(w, v[LOG_NOT_AFTER_LIMIT], path, &log->not_after_limit_ms))
        return -1;
    if (log->not_after_limit_ms <= log->not_after_start_ms)
        return fail_at(w, node_line(v[LOG_NOT_AFTER_LIMIT]), path,
                       "must be after not_after_start");

    if (FIELD(LOG_STORAGE, true) || get_store_url(w, v[LOG_STORAGE], path, &log->storage))
        return -1;
    lines->storage = node_line(v[LOG_STORAGE]);
    if (FIELD(LOG_LOCK, true) || get_store_url(w, v[LOG_LOCK], path, &log->lock))
        return -1;
    lines->lock = node_line(v[LOG_LOCK]);
    if (FIELD(LOG_SEQUENCER, true) ||
        get_nng_address(w, v[LOG_SEQUENCER], path, &log->sequencer))
        return -1;

    if (get_uint_default(w, v[LOG_PERIOD_MS], field, "period_ms", 50, 60000, 1000,
                         &log->period_ms) ||
        get_uint_default(w, v[LOG_POOL_LIMIT], field, "pool_limit", 1, 10000000, 50000,
                         &log->pool_limit) ||
        get_uint_default(w, v[LOG_MMD], field, "mmd", 1, 86400, 60, &log->mmd_seconds))
        return -1;

    int choice = 0;
    static const char *const statuses[] = {"active", "readonly"};
    FIELD(LOG_STATUS, false);
    if (v[LOG_STATUS] &&
        get_choice(w, v[LOG_STATUS], path, statuses, 2, "active or readonly", &choice))
        return -1;
    log->status = choice == 1 ? CONFIG_LOG_READONLY : CONFIG_LOG_ACTIVE;

    choice = 0;
    static const char *const uses[] = {"test", "production"};
    FIELD(LOG_INTENDED_USE, false);
    if (v[LOG_INTENDED_USE] &&
        get_choice(w, v[LOG_INTENDED_USE], path, uses, 2, "test or production", &choice))
        return -1;
    log->intended_use = choice == 1 ? CONFIG_USE_PRODUCTION : CONFIG_USE_TEST;
#undef FIELD
    return 0;
}

/* Names, URLs and object stores must not be shared between logs: two logs writing the same
 * storage or lock would corrupt each other, and frontends route requests by URL path. */
static int check_logs_distinct(walker *w, const config *cfg, const log_lines *lines)
{
    char path[128];
    for (size_t i = 0; i < cfg->log_count; i++) {
        const config_log *a = &cfg->logs[i];
        for (size_t j = 0; j < i; j++) {
            const config_log *b = &cfg->logs[j];
            if (strcmp(a->name, b->name) == 0) {
                snprintf(path, sizeof path, "logs[%zu].name", i);
                return fail_at(w, lines[i].name, path, "duplicate log name \"%s\" (also logs[%zu])",
                               a->name, j);
            }
            if (strcmp(a->submission_prefix, b->submission_prefix) == 0) {
                snprintf(path, sizeof path, "logs[%zu].submission_prefix", i);
                return fail_at(w, lines[i].submission, path,
                               "duplicate submission prefix (also logs[%zu])", j);
            }
            if (strcmp(a->path_prefix, b->path_prefix) == 0) {
                snprintf(path, sizeof path, "logs[%zu].submission_prefix", i);
                return fail_at(w, lines[i].submission, path,
                               "URL path %.64s is also used by logs[%zu] (frontends route by "
                               "path)",
                               a->path_prefix, j);
            }
            if (strcmp(a->monitoring_prefix, b->monitoring_prefix) == 0) {
                snprintf(path, sizeof path, "logs[%zu].monitoring_prefix", i);
                return fail_at(w, lines[i].monitoring, path,
                               "duplicate monitoring prefix (also logs[%zu])", j);
            }
            if (strcmp(a->storage, b->storage) == 0) {
                snprintf(path, sizeof path, "logs[%zu].storage", i);
                return fail_at(w, lines[i].storage, path, "duplicate storage (also logs[%zu])", j);
            }
            if (strcmp(a->lock, b->lock) == 0) {
                snprintf(path, sizeof path, "logs[%zu].lock", i);
                return fail_at(w, lines[i].lock, path, "duplicate lock (also logs[%zu])", j);
            }
        }
    }
    return 0;
}

static int parse_logs(walker *w, const yaml_node_t *node, config *cfg)
{
    if (node->type != YAML_SEQUENCE_NODE)
        return fail_type(w, node, "logs", "a list of logs");
    size_t count = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (count < 1 || count > CONFIG_MAX_LOGS)
        return fail_at(w, node_line(node), "logs", "must list 1 to %d logs, got %zu",
                       CONFIG_MAX_LOGS, count);
    cfg->logs = calloc(count, sizeof cfg->logs[0]);
    log_lines *lines = calloc(count, sizeof lines[0]);
    if (!cfg->logs || !lines) {
        free(lines);
        return fail_at(w, node_line(node), "logs", "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        const yaml_node_t *item =
            yaml_document_get_node(w->doc, node->data.sequence.items.start[i]);
        char field[32];
        snprintf(field, sizeof field, "logs[%zu]", i);
        cfg->log_count = i + 1; /* so config_free releases a partly filled log */
        rc = item ? parse_log(w, item, field, &cfg->logs[i], &lines[i])
                  : fail_at(w, node_line(node), field, "malformed list");
    }
    if (rc == 0)
        rc = check_logs_distinct(w, cfg, lines);
    free(lines);
    return rc;
}

static int parse_frontend(walker *w, const yaml_node_t *node, config_frontend *fe)
{
    static const char *const keys[] = {"listen", "workers", "max_body_bytes", "submit_timeout_ms",
                                       "read_path", "index_dir"};
    const yaml_node_t *v[6];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint32_t default_workers = cpus < 1 ? 1 : cpus > 64 ? 64 : (uint32_t)cpus;
    fe->read_path = true;
    if (!node) {
        fe->workers = default_workers;
        fe->max_body_bytes = 512 * 1024;
        fe->submit_timeout_ms = 15000;
        fe->listen = strdup("127.0.0.1:8080");
        fe->index_dir = path_join(w->dir, "data/frontend");
        return fe->listen && fe->index_dir ? 0 : error_set(w->err, "%s: out of memory", w->file);
    }
    if (mapping_collect(w, node, "frontend", keys, 6, v) != 0)
        return -1;
    if (v[0]) {
        if (get_host_port(w, v[0], "frontend.listen", false, 0, &fe->listen) != 0)
            return -1;
    } else if (!(fe->listen = strdup("127.0.0.1:8080"))) {
        return fail_at(w, node_line(node), "frontend", "out of memory");
    }
    if (get_uint_default(w, v[1], "frontend", "workers", 1, 64, default_workers, &fe->workers) ||
        get_uint_default(w, v[2], "frontend", "max_body_bytes", 1024, 64 * 1024 * 1024,
                         512 * 1024, &fe->max_body_bytes) ||
        get_uint_default(w, v[3], "frontend", "submit_timeout_ms", 100, 600000, 15000,
                         &fe->submit_timeout_ms))
        return -1;
    if (v[4] && get_bool(w, v[4], "frontend.read_path", &fe->read_path) != 0)
        return -1;
    if (v[5])
        return get_path(w, v[5], "frontend.index_dir", &fe->index_dir);
    if (!(fe->index_dir = path_join(w->dir, "data/frontend")))
        return fail_at(w, node_line(node), "frontend", "out of memory");
    return 0;
}

static int parse_batchers(walker *w, const yaml_node_t *node, config_batchers *b)
{
    enum { B_ADDRESSES, B_DNS, B_BATCH_MAX, B_BATCH_WAIT, B_QUEUE, B_DB, B_SEQ_TIMEOUT, B_COUNT };
    static const char *const keys[B_COUNT] = {"addresses",    "dns",   "batch_max",
                                              "batch_wait_ms", "queue_limit", "db",
                                              "sequencer_timeout_ms"};
    const yaml_node_t *v[B_COUNT];
    if (mapping_collect(w, node, "batchers", keys, B_COUNT, v) != 0)
        return -1;
    if (v[B_ADDRESSES] && v[B_DNS])
        return fail_at(w, node_line(v[B_DNS]), "batchers.dns",
                       "give either batchers.addresses or batchers.dns, not both");
    if (!v[B_ADDRESSES] && !v[B_DNS])
        return fail_at(w, node_line(node), "batchers",
                       "missing batchers.addresses or batchers.dns (exactly one is required)");
    if (v[B_ADDRESSES]) {
        const yaml_node_t *list = v[B_ADDRESSES];
        if (list->type != YAML_SEQUENCE_NODE)
            return fail_type(w, list, "batchers.addresses", "a list of addresses");
        size_t count = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
        if (count < 1 || count > 1024)
            return fail_at(w, node_line(list), "batchers.addresses",
                           "must list 1 to 1024 addresses, got %zu", count);
        if (!(b->addresses = calloc(count, sizeof b->addresses[0])))
            return fail_at(w, node_line(list), "batchers.addresses", "out of memory");
        for (size_t i = 0; i < count; i++) {
            const yaml_node_t *item =
                yaml_document_get_node(w->doc, list->data.sequence.items.start[i]);
            char field[48];
            snprintf(field, sizeof field, "batchers.addresses[%zu]", i);
            if (!item)
                return fail_at(w, node_line(list), field, "malformed list");
            b->address_count = i + 1;
            if (get_nng_address(w, item, field, &b->addresses[i]) != 0)
                return -1;
            for (size_t j = 0; j < i; j++)
                if (strcmp(b->addresses[i], b->addresses[j]) == 0)
                    return fail_at(w, node_line(item), field,
                                   "duplicate address (also batchers.addresses[%zu])", j);
        }
    } else if (get_host_port(w, v[B_DNS], "batchers.dns", true, 1, &b->dns) != 0) {
        return -1;
    }
    if (get_uint_default(w, v[B_BATCH_MAX], "batchers", "batch_max", 1, 100000, 256,
                         &b->batch_max) ||
        get_uint_default(w, v[B_BATCH_WAIT], "batchers", "batch_wait_ms", 0, 60000, 50,
                         &b->batch_wait_ms) ||
        get_uint_default(w, v[B_QUEUE], "batchers", "queue_limit", 1, 10000000, 100000,
                         &b->queue_limit) ||
        get_uint_default(w, v[B_SEQ_TIMEOUT], "batchers", "sequencer_timeout_ms", 100, 600000,
                         10000, &b->sequencer_timeout_ms))
        return -1;
    if (v[B_DB])
        return get_path(w, v[B_DB], "batchers.db", &b->db);
    if (!(b->db = path_join(w->dir, "data/batcher")))
        return fail_at(w, node_line(node), "batchers", "out of memory");
    return 0;
}

static int parse_sequencer(walker *w, const yaml_node_t *node, config_sequencer *s)
{
    static const char *const keys[] = {"data_dir"};
    const yaml_node_t *v[1] = {NULL};
    if (node && mapping_collect(w, node, "sequencer", keys, 1, v) != 0)
        return -1;
    if (v[0])
        return get_path(w, v[0], "sequencer.data_dir", &s->data_dir);
    if (!(s->data_dir = path_join(w->dir, "data/sequencer")))
        return error_set(w->err, "%s: out of memory", w->file);
    return 0;
}

static int parse_metrics(walker *w, const yaml_node_t *node, config_metrics *m)
{
    static const char *const keys[] = {"enabled"};
    const yaml_node_t *v[1] = {NULL};
    m->enabled = true;
    if (node && mapping_collect(w, node, "metrics", keys, 1, v) != 0)
        return -1;
    if (v[0])
        return get_bool(w, v[0], "metrics.enabled", &m->enabled);
    return 0;
}

/* A CTile proxy path prefix: "/name/" with [A-Za-z0-9._-] segments. */
static bool url_path_prefix_valid(const char *p)
{
    size_t n = strlen(p);
    if (n < 2 || n > 256 || p[0] != '/' || p[n - 1] != '/' || strstr(p, "//"))
        return false;
    for (const char *c = p; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '/' || *c == '.' || *c == '_' || *c == '-'))
            return false;
    return strstr(p, "/./") == NULL && strstr(p, "/../") == NULL;
}

static int parse_ctile_entry(walker *w, const yaml_node_t *node, const char *field,
                             config_ctile *ct)
{
    enum { C_PREFIX, C_UPSTREAM, C_TILE_SIZE, C_CACHE, C_PARTIAL, C_STH, C_TIMEOUT, C_COUNT };
    static const char *const keys[C_COUNT] = {"prefix", "upstream", "tile_size", "cache",
                                              "partial_max_age_s", "sth_max_age_s",
                                              "upstream_timeout_ms"};
    const yaml_node_t *v[C_COUNT];
    if (mapping_collect(w, node, field, keys, C_COUNT, v) != 0)
        return -1;
    char path[96];
    for (int k = C_PREFIX; k <= C_UPSTREAM; k++)
        if (!v[k])
            return fail_missing(w, node, field, keys[k]);
    if (!v[C_CACHE])
        return fail_missing(w, node, field, "cache");
    snprintf(path, sizeof path, "%s.prefix", field);
    if (get_string(w, v[C_PREFIX], path, false, &ct->prefix) != 0)
        return -1;
    if (!url_path_prefix_valid(ct->prefix))
        return fail_at(w, node_line(v[C_PREFIX]), path,
                       "must be a URL path like /oak2026h1/ (starts and ends with '/')");
    snprintf(path, sizeof path, "%s.upstream", field);
    if (get_http_prefix(w, v[C_UPSTREAM], path, &ct->upstream, NULL, NULL) != 0)
        return -1;
    snprintf(path, sizeof path, "%s.cache", field);
    if (get_store_url(w, v[C_CACHE], path, &ct->cache) != 0)
        return -1;
    return get_uint_default(w, v[C_TILE_SIZE], field, "tile_size", 1, 4096, 256,
                            &ct->tile_size) ||
           get_uint_default(w, v[C_PARTIAL], field, "partial_max_age_s", 1, 60, 60,
                            &ct->partial_max_age_s) ||
           get_uint_default(w, v[C_STH], field, "sth_max_age_s", 1, 60, 60, &ct->sth_max_age_s) ||
           get_uint_default(w, v[C_TIMEOUT], field, "upstream_timeout_ms", 100, 600000, 10000,
                            &ct->upstream_timeout_ms)
               ? -1
               : 0;
}

/* Optional list of CTile proxies; their prefixes may not overlap a log's path or each other. */
static int parse_ctiles(walker *w, const yaml_node_t *node, config *cfg)
{
    if (!node)
        return 0;
    if (node->type != YAML_SEQUENCE_NODE)
        return fail_type(w, node, "ctile", "a list of proxies");
    size_t count = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (count > CONFIG_MAX_LOGS)
        return fail_at(w, node_line(node), "ctile", "at most %d proxies", CONFIG_MAX_LOGS);
    cfg->ctiles = calloc(count ? count : 1, sizeof cfg->ctiles[0]);
    if (!cfg->ctiles)
        return fail_at(w, node_line(node), "ctile", "out of memory");
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item =
            yaml_document_get_node(w->doc, node->data.sequence.items.start[i]);
        char field[32];
        snprintf(field, sizeof field, "ctile[%zu]", i);
        cfg->ctile_count = i + 1;
        if (!item)
            return fail_at(w, node_line(node), field, "malformed list");
        if (parse_ctile_entry(w, item, field, &cfg->ctiles[i]) != 0)
            return -1;
        const char *p = cfg->ctiles[i].prefix;
        for (size_t j = 0; j < cfg->log_count; j++) {
            const char *q = cfg->logs[j].path_prefix;
            if (strncmp(p, q, strlen(p)) == 0 || strncmp(q, p, strlen(q)) == 0)
                return fail_at(w, node_line(item), field, "prefix %s overlaps log %s (%s)", p,
                               cfg->logs[j].name, q);
        }
        for (size_t j = 0; j < i; j++) {
            const char *q = cfg->ctiles[j].prefix;
            if (strncmp(p, q, strlen(p)) == 0 || strncmp(q, p, strlen(q)) == 0)
                return fail_at(w, node_line(item), field, "prefix %s overlaps ctile[%zu]", p, j);
        }
    }
    return 0;
}

static int parse_root(walker *w, const yaml_node_t *root, config *cfg)
{
    enum { R_LOGS, R_FRONTEND, R_BATCHERS, R_SEQUENCER, R_METRICS, R_LOG_LEVEL, R_CTILE,
           R_COUNT };
    static const char *const keys[R_COUNT] = {"logs",    "frontend", "batchers", "sequencer",
                                              "metrics", "log_level", "ctile"};
    const yaml_node_t *v[R_COUNT];
    if (root->type != YAML_MAPPING_NODE) {
        char got[64];
        node_describe(root, got, sizeof got);
        return fail_at(w, node_line(root), NULL, "expected a mapping at the top level, got %s",
                       got);
    }
    if (mapping_collect(w, root, "", keys, R_COUNT, v) != 0)
        return -1;
    if (!v[R_LOGS])
        return fail_missing(w, root, "", "logs");
    if (parse_logs(w, v[R_LOGS], cfg) != 0 ||
        parse_frontend(w, v[R_FRONTEND], &cfg->frontend) != 0)
        return -1;
    if (!v[R_BATCHERS])
        return fail_missing(w, root, "", "batchers");
    if (parse_batchers(w, v[R_BATCHERS], &cfg->batchers) != 0 ||
        parse_sequencer(w, v[R_SEQUENCER], &cfg->sequencer) != 0 ||
        parse_metrics(w, v[R_METRICS], &cfg->metrics) != 0 ||
        parse_ctiles(w, v[R_CTILE], cfg) != 0)
        return -1;
    cfg->log_level = LOG_INFO;
    if (v[R_LOG_LEVEL]) {
        static const char *const levels[] = {"debug", "info", "warn", "error"};
        int level = LOG_INFO;
        if (get_choice(w, v[R_LOG_LEVEL], "log_level", levels, 4, "debug, info, warn or error",
                       &level) != 0)
            return -1;
        cfg->log_level = (log_level)level;
    }
    return 0;
}

static int yaml_failure(const char *file, const yaml_parser_t *parser, error *err)
{
    const char *problem = parser->problem ? parser->problem : "malformed YAML";
    if (parser->error == YAML_MEMORY_ERROR)
        return error_set(err, "%s: out of memory while parsing YAML", file);
    if (parser->error == YAML_READER_ERROR)
        return error_set(err, "%s: YAML reader error at byte %zu: %s", file,
                         parser->problem_offset, problem);
    size_t line = parser->problem_mark.line + 1, column = parser->problem_mark.column + 1;
    if (parser->context)
        return error_set(err, "%s:%zu:%zu: YAML syntax error: %s (%s on line %zu)", file, line,
                         column, problem, parser->context, parser->context_mark.line + 1);
    return error_set(err, "%s:%zu:%zu: YAML syntax error: %s", file, line, column, problem);
}

/* The directory relative paths resolve against, made absolute so that a daemon that later
 * changes directory still finds its files. */
static char *absolute_dir(const char *dir)
{
    if (dir && dir[0] == '/')
        return strdup(dir);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return NULL;
    if (!dir || !*dir || strcmp(dir, ".") == 0)
        return strdup(cwd);
    return path_join(cwd, dir);
}

config *config_parse(const char *text, size_t len, const char *name, const char *dir,
                     error *err)
{
    config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        error_set(err, "%s: out of memory", name);
        return NULL;
    }
    cfg->path = strdup(name);
    cfg->dir = absolute_dir(dir);
    if (!cfg->path || !cfg->dir) {
        error_set(err, "%s: cannot determine the config directory: %s", name, strerror(errno));
        config_free(cfg);
        return NULL;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        error_set(err, "%s: out of memory", name);
        config_free(cfg);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    yaml_document_t doc;
    int rc = -1;
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_failure(name, &parser, err);
        yaml_parser_delete(&parser);
        config_free(cfg);
        return NULL;
    }
    walker w = {.file = name, .dir = cfg->dir, .doc = &doc, .err = err};
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        error_set(err, "%s:1: the file is empty", name);
    } else {
        /* A second document would be silently ignored by a lazier reader; refuse it. */
        yaml_document_t next;
        if (!yaml_parser_load(&parser, &next)) {
            yaml_failure(name, &parser, err);
        } else {
            const yaml_node_t *next_root = yaml_document_get_root_node(&next);
            if (next_root)
                error_set(err, "%s:%zu: only one YAML document is allowed", name,
                          next.start_mark.line + 1);
            else
                rc = parse_root(&w, root, cfg);
            yaml_document_delete(&next);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc != 0) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

config *config_load(const char *path, error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        error_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *text = malloc(CONFIG_MAX_FILE_BYTES + 1);
    if (!text) {
        fclose(f);
        error_set(err, "%s: out of memory", path);
        return NULL;
    }
    size_t len = fread(text, 1, CONFIG_MAX_FILE_BYTES + 1, f);
    bool read_error = ferror(f);
    fclose(f);
    if (read_error || len > CONFIG_MAX_FILE_BYTES) {
        free(text);
        if (read_error)
            error_set(err, "%s: cannot read", path);
        else
            error_set(err, "%s: larger than %d bytes", path, CONFIG_MAX_FILE_BYTES);
        return NULL;
    }
    char *dir = strdup(path);
    if (!dir) {
        free(text);
        error_set(err, "%s: out of memory", path);
        return NULL;
    }
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    config *cfg = config_parse(text, len, path, dir, err);
    free(dir);
    free(text);
    return cfg;
}

void config_free(config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->log_count; i++) {
        config_log *log = &cfg->logs[i];
        free(log->name);
        free(log->description);
        free(log->submission_prefix);
        free(log->monitoring_prefix);
        free(log->origin);
        free(log->path_prefix);
        free(log->key_path);
        free(log->roots_path);
        free(log->storage);
        free(log->lock);
        free(log->sequencer);
    }
    free(cfg->logs);
    free(cfg->frontend.listen);
    for (size_t i = 0; i < cfg->batchers.address_count; i++)
        free(cfg->batchers.addresses[i]);
    free(cfg->batchers.addresses);
    free(cfg->batchers.dns);
    free(cfg->batchers.db);
    free(cfg->sequencer.data_dir);
    free(cfg->frontend.index_dir);
    for (size_t i = 0; i < cfg->ctile_count; i++) {
        free(cfg->ctiles[i].prefix);
        free(cfg->ctiles[i].upstream);
        free(cfg->ctiles[i].cache);
    }
    free(cfg->ctiles);
    free(cfg->path);
    free(cfg->dir);
    free(cfg);
}

const config_log *config_log_by_name(const config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->log_count; i++)
        if (strcmp(cfg->logs[i].name, name) == 0)
            return &cfg->logs[i];
    return NULL;
}

const config_log *config_log_by_path(const config *cfg, const char *path, size_t len)
{
    const config_log *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < cfg->log_count; i++) {
        const char *prefix = cfg->logs[i].path_prefix;
        size_t n = strlen(prefix);
        if (n <= len && n > best_len && memcmp(path, prefix, n) == 0) {
            best = &cfg->logs[i];
            best_len = n;
        }
    }
    return best;
}
