#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each series gets its own cache line(s) so that hot counters updated by different threads
 * do not bounce one line between cores. */
#define SERIES_ALIGN 64

typedef enum metric_kind {
    KIND_COUNTER,
    KIND_GAUGE,
    KIND_HISTOGRAM,
} metric_kind;

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

struct family;

typedef struct series {
    struct series *next;
    char **label_values; /* family->label_count of them */
} series;

struct metrics_counter {
    series s;
    _Atomic uint64_t value;
};

/* A double kept as its bit pattern so it can live in a lock-free 64-bit atomic. */
struct metrics_gauge {
    series s;
    _Atomic uint64_t bits;
};

struct metrics_histogram {
    series s;
    const struct family *family;
    _Atomic uint64_t sum_bits;
    /* Per-bucket (not cumulative) counts; the last one is the +Inf bucket. Cumulating at
     * render time keeps observe() to a single increment. */
    _Atomic uint64_t buckets[];
};

typedef struct family {
    struct family *next;
    char *name;
    char *help;
    metric_kind kind;
    size_t label_count;
    char **label_names;
    double *bounds;
    size_t bound_count;
    series *first, *last;
} family;

struct metrics_registry {
    pthread_mutex_t lock;
    family *first, *last;
};

const double metrics_latency_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1,    2.5,   5,    10};
const size_t metrics_latency_bucket_count =
    sizeof metrics_latency_buckets / sizeof metrics_latency_buckets[0];

static uint64_t double_bits(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

static double bits_double(uint64_t bits)
{
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* Adds to a double stored as bits: a CAS loop, lock-free though not wait-free. */
static void atomic_double_add(_Atomic uint64_t *target, double delta)
{
    uint64_t old = atomic_load_explicit(target, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(target, &old,
                                                  double_bits(bits_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* ---- registration ---- */

static bool metric_name_valid(const char *name)
{
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(p != name && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static bool label_name_valid(const char *name)
{
    if (!name || !*name || strncmp(name, "__", 2) == 0)
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(p != name && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static int check_labels(const char *name, metric_kind kind, const metrics_label *labels,
                        size_t count, error *err)
{
    if (count > METRICS_MAX_LABELS)
        return error_set(err, "metric %s: more than %d labels", name, METRICS_MAX_LABELS);
    for (size_t i = 0; i < count; i++) {
        if (!label_name_valid(labels[i].name))
            return error_set(err, "metric %s: invalid label name \"%s\"", name,
                             labels[i].name ? labels[i].name : "(null)");
        if (!labels[i].value)
            return error_set(err, "metric %s: label %s has no value", name, labels[i].name);
        if (kind == KIND_HISTOGRAM && strcmp(labels[i].name, "le") == 0)
            return error_set(err, "metric %s: label \"le\" is reserved for histogram buckets",
                             name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[i].name, labels[j].name) == 0)
                return error_set(err, "metric %s: label %s given twice", name, labels[i].name);
    }
    return 0;
}

static int check_bounds(const char *name, const double *bounds, size_t count, error *err)
{
    if (count < 1 || count > METRICS_MAX_BUCKETS)
        return error_set(err, "metric %s: needs 1 to %d bucket bounds", name,
                         METRICS_MAX_BUCKETS);
    for (size_t i = 0; i < count; i++) {
        if (!isfinite(bounds[i]))
            return error_set(err, "metric %s: bucket bounds must be finite", name);
        if (i > 0 && !(bounds[i] > bounds[i - 1]))
            return error_set(err, "metric %s: bucket bounds must increase strictly", name);
    }
    return 0;
}

static void family_free(family *f)
{
    if (!f)
        return;
    for (series *s = f->first; s;) {
        series *next = s->next;
        for (size_t i = 0; i < f->label_count; i++)
            free(s->label_values[i]);
        free(s->label_values);
        free(s);
        s = next;
    }
    for (size_t i = 0; i < f->label_count; i++)
        free(f->label_names[i]);
    free(f->label_names);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

static family *family_new(const char *name, const char *help, metric_kind kind,
                          const metrics_label *labels, size_t label_count, const double *bounds,
                          size_t bound_count)
{
    family *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->kind = kind;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->label_names = calloc(label_count ? label_count : 1, sizeof f->label_names[0]);
    bool ok = f->name && f->help && f->label_names;
    if (ok)
        f->label_count = label_count;
    for (size_t i = 0; ok && i < label_count; i++)
        ok = (f->label_names[i] = strdup(labels[i].name)) != NULL;
    if (ok && bound_count) {
        f->bounds = malloc(bound_count * sizeof bounds[0]);
        ok = f->bounds != NULL;
        if (ok) {
            memcpy(f->bounds, bounds, bound_count * sizeof bounds[0]);
            f->bound_count = bound_count;
        }
    }
    if (!ok) {
        family_free(f);
        return NULL;
    }
    return f;
}

/* The family must be exactly the one the caller describes; a mismatch is a programming error
 * that would otherwise render an invalid exposition. */
static int family_matches(const family *f, const char *help, metric_kind kind,
                          const metrics_label *labels, size_t label_count, const double *bounds,
                          size_t bound_count, error *err)
{
    if (f->kind != kind)
        return error_set(err, "metric %s is already registered as a %s", f->name,
                         kind_names[f->kind]);
    if (strcmp(f->help, help ? help : "") != 0)
        return error_set(err, "metric %s is already registered with other help text", f->name);
    bool same = f->label_count == label_count;
    for (size_t i = 0; same && i < label_count; i++)
        same = strcmp(f->label_names[i], labels[i].name) == 0;
    if (!same)
        return error_set(err, "metric %s is already registered with other label names", f->name);
    if (f->bound_count != bound_count ||
        (bound_count && memcmp(f->bounds, bounds, bound_count * sizeof bounds[0]) != 0))
        return error_set(err, "metric %s is already registered with other buckets", f->name);
    return 0;
}

static series *series_find(const family *f, const metrics_label *labels)
{
    for (series *s = f->first; s; s = s->next) {
        bool same = true;
        for (size_t i = 0; same && i < f->label_count; i++)
            same = strcmp(s->label_values[i], labels[i].value) == 0;
        if (same)
            return s;
    }
    return NULL;
}

static series *series_new(const family *f, const metrics_label *labels)
{
    size_t size;
    switch (f->kind) {
    case KIND_COUNTER:
        size = sizeof(struct metrics_counter);
        break;
    case KIND_GAUGE:
        size = sizeof(struct metrics_gauge);
        break;
    default:
        size = sizeof(struct metrics_histogram) + (f->bound_count + 1) * sizeof(_Atomic uint64_t);
        break;
    }
    size = (size + SERIES_ALIGN - 1) / SERIES_ALIGN * SERIES_ALIGN;
    series *s = aligned_alloc(SERIES_ALIGN, size);
    if (!s)
        return NULL;
    memset(s, 0, size);
    s->label_values = calloc(f->label_count ? f->label_count : 1, sizeof s->label_values[0]);
    bool ok = s->label_values != NULL;
    for (size_t i = 0; ok && i < f->label_count; i++)
        ok = (s->label_values[i] = strdup(labels[i].value)) != NULL;
    if (!ok) {
        if (s->label_values)
            for (size_t i = 0; i < f->label_count; i++)
                free(s->label_values[i]);
        free(s->label_values);
        free(s);
        return NULL;
    }
    switch (f->kind) {
    case KIND_COUNTER:
        atomic_init(&((struct metrics_counter *)s)->value, 0);
        break;
    case KIND_GAUGE:
        atomic_init(&((struct metrics_gauge *)s)->bits, double_bits(0.0));
        break;
    default: {
        struct metrics_histogram *h = (struct metrics_histogram *)s;
        h->family = f;
        atomic_init(&h->sum_bits, double_bits(0.0));
        for (size_t i = 0; i <= f->bound_count; i++)
            atomic_init(&h->buckets[i], 0);
        break;
    }
    }
    return s;
}

static series *register_series(metrics_registry *r, const char *name, const char *help,
                               metric_kind kind, const metrics_label *labels,
                               size_t label_count, const double *bounds, size_t bound_count,
                               error *err)
{
    if (!metric_name_valid(name)) {
        error_set(err, "invalid metric name \"%s\"", name ? name : "(null)");
        return NULL;
    }
    if (check_labels(name, kind, labels, label_count, err) != 0)
        return NULL;
    if (kind == KIND_HISTOGRAM && check_bounds(name, bounds, bound_count, err) != 0)
        return NULL;
    pthread_mutex_lock(&r->lock);
    series *result = NULL;
    family *f = r->first;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    if (f) {
        if (family_matches(f, help, kind, labels, label_count, bounds, bound_count, err) != 0)
            goto done;
        if ((result = series_find(f, labels)) != NULL)
            goto done;
    } else {
        if (!(f = family_new(name, help, kind, labels, label_count, bounds, bound_count))) {
            error_set(err, "metric %s: out of memory", name);
            goto done;
        }
        if (r->last)
            r->last->next = f;
        else
            r->first = f;
        r->last = f;
    }
    if (!(result = series_new(f, labels))) {
        error_set(err, "metric %s: out of memory", name);
        goto done;
    }
    if (f->last)
        f->last->next = result;
    else
        f->first = result;
    f->last = result;
done:
    pthread_mutex_unlock(&r->lock);
    return result;
}

metrics_counter *metrics_counter_register(metrics_registry *r, const char *name,
                                          const char *help, const metrics_label *labels,
                                          size_t label_count, error *err)
{
    return (metrics_counter *)register_series(r, name, help, KIND_COUNTER, labels, label_count,
                                              NULL, 0, err);
}

metrics_gauge *metrics_gauge_register(metrics_registry *r, const char *name, const char *help,
                                      const metrics_label *labels, size_t label_count,
                                      error *err)
{
    return (metrics_gauge *)register_series(r, name, help, KIND_GAUGE, labels, label_count, NULL,
                                            0, err);
}

metrics_histogram *metrics_histogram_register(metrics_registry *r, const char *name,
                                              const char *help, const metrics_label *labels,
                                              size_t label_count, const double *bounds,
                                              size_t bound_count, error *err)
{
    if (!bounds)
        bound_count = 0;
    return (metrics_histogram *)register_series(r, name, help, KIND_HISTOGRAM, labels,
                                                label_count, bounds, bound_count, err);
}

metrics_registry *metrics_registry_new(void)
{
    metrics_registry *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void metrics_registry_free(metrics_registry *r)
{
    if (!r)
        return;
    for (family *f = r->first; f;) {
        family *next = f->next;
        family_free(f);
        f = next;
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* ---- updates ---- */

void metrics_counter_inc(metrics_counter *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->value, 1, memory_order_relaxed);
}

void metrics_counter_add(metrics_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t metrics_counter_value(const metrics_counter *c)
{
    return c ? atomic_load_explicit(&((metrics_counter *)c)->value, memory_order_relaxed) : 0;
}

void metrics_gauge_set(metrics_gauge *g, double value)
{
    if (g)
        atomic_store_explicit(&g->bits, double_bits(value), memory_order_relaxed);
}

void metrics_gauge_add(metrics_gauge *g, double delta)
{
    if (g)
        atomic_double_add(&g->bits, delta);
}

double metrics_gauge_value(const metrics_gauge *g)
{
    if (!g)
        return 0;
    return bits_double(atomic_load_explicit(&((metrics_gauge *)g)->bits, memory_order_relaxed));
}

void metrics_histogram_observe(metrics_histogram *h, double value)
{
    if (!h)
        return;
    const family *f = h->family;
    /* Binary search for the first bound >= value; NaN compares false and lands in +Inf. */
    size_t lo = 0, hi = f->bound_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (value <= f->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    if (isnan(value))
        lo = f->bound_count;
    atomic_fetch_add_explicit(&h->buckets[lo], 1, memory_order_relaxed);
    atomic_double_add(&h->sum_bits, value);
}

uint64_t metrics_histogram_count(const metrics_histogram *h)
{
    if (!h)
        return 0;
    uint64_t total = 0;
    for (size_t i = 0; i <= h->family->bound_count; i++)
        total += atomic_load_explicit(&((metrics_histogram *)h)->buckets[i], memory_order_relaxed);
    return total;
}

double metrics_histogram_sum(const metrics_histogram *h)
{
    if (!h)
        return 0;
    return bits_double(
        atomic_load_explicit(&((metrics_histogram *)h)->sum_bits, memory_order_relaxed));
}

/* ---- rendering ---- */

/* Shortest decimal that reads back as the same double, written without an exponent in the
 * usual range (as Go's strconv 'g' -1 does), so bounds print as written: 0.005, 10, 2.5. */
static void format_double(double v, char out[40])
{
    if (isnan(v)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    int digits = 1;
    for (; digits <= 17; digits++) {
        snprintf(out, 40, "%.*e", digits - 1, v);
        if (strtod(out, NULL) == v)
            break;
    }
    const char *e = strchr(out, 'e');
    int exponent = e ? atoi(e + 1) : 0;
    if (exponent >= -4 && exponent < 21) {
        int decimals = digits - 1 - exponent;
        snprintf(out, 40, "%.*f", decimals > 0 ? decimals : 0, v);
    }
}

/* Label values escape backslash, double quote and newline; help text backslash and newline. */
static int append_escaped(buffer *out, const char *s, bool quote)
{
    for (; *s; s++) {
        int rc;
        if (*s == '\\')
            rc = buffer_append(out, "\\\\", 2);
        else if (*s == '\n')
            rc = buffer_append(out, "\\n", 2);
        else if (*s == '"' && quote)
            rc = buffer_append(out, "\\\"", 2);
        else
            rc = buffer_append_byte(out, (uint8_t)*s);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* name{labels[,le="x"]} — the braces are omitted when there is nothing inside. */
static int append_series_name(buffer *out, const family *f, const series *s, const char *suffix,
                              const char *le)
{
    if (buffer_append_str(out, f->name) != 0 || buffer_append_str(out, suffix) != 0)
        return -1;
    if (f->label_count == 0 && !le)
        return 0;
    if (buffer_append_byte(out, '{') != 0)
        return -1;
    for (size_t i = 0; i < f->label_count; i++) {
        if ((i > 0 && buffer_append_byte(out, ',') != 0) ||
            buffer_printf(out, "%s=\"", f->label_names[i]) != 0 ||
            append_escaped(out, s->label_values[i], true) != 0 ||
            buffer_append_byte(out, '"') != 0)
            return -1;
    }
    if (le && buffer_printf(out, "%sle=\"%s\"", f->label_count ? "," : "", le) != 0)
        return -1;
    return buffer_append_byte(out, '}');
}

static int render_series(buffer *out, const family *f, const series *s)
{
    char number[40];
    switch (f->kind) {
    case KIND_COUNTER:
        return append_series_name(out, f, s, "", NULL) ||
               buffer_printf(out, " %llu\n",
                             (unsigned long long)metrics_counter_value(
                                 (const metrics_counter *)s));
    case KIND_GAUGE:
        format_double(metrics_gauge_value((const metrics_gauge *)s), number);
        return append_series_name(out, f, s, "", NULL) || buffer_printf(out, " %s\n", number);
    default: {
        struct metrics_histogram *h = (struct metrics_histogram *)s;
        uint64_t cumulative = 0;
        for (size_t i = 0; i <= f->bound_count; i++) {
            cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
            if (i < f->bound_count)
                format_double(f->bounds[i], number);
            else
                strcpy(number, "+Inf");
            if (append_series_name(out, f, s, "_bucket", number) ||
                buffer_printf(out, " %llu\n", (unsigned long long)cumulative))
                return -1;
        }
        /* _count is the +Inf bucket, so the two always agree even mid-update. */
        format_double(metrics_histogram_sum(h), number);
        return append_series_name(out, f, s, "_sum", NULL) ||
               buffer_printf(out, " %s\n", number) ||
               append_series_name(out, f, s, "_count", NULL) ||
               buffer_printf(out, " %llu\n", (unsigned long long)cumulative);
    }
    }
}

int metrics_render(metrics_registry *r, buffer *out)
{
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    for (const family *f = r->first; f && rc == 0; f = f->next) {
        rc = buffer_printf(out, "# HELP %s ", f->name) || append_escaped(out, f->help, false) ||
             buffer_printf(out, "\n# TYPE %s %s\n", f->name, kind_names[f->kind]);
        for (const series *s = f->first; s && rc == 0; s = s->next)
            rc = render_series(out, f, s);
    }
    pthread_mutex_unlock(&r->lock);
    return rc ? -1 : 0;
}
