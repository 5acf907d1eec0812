/* metrics: a Prometheus registry of counters, gauges and histograms.
 *
 * Every series (one metric name + one set of label values) is registered once, typically at
 * startup, and the caller keeps the returned handle: updates are then single relaxed C11
 * atomic operations with no lookup and no lock, so they are safe on any hot path. Series that
 * share a name form a family and must agree on type, help text, label names and (for
 * histograms) bucket bounds. Registering the same name and label values again returns the
 * existing handle, so independent modules may register the same series.
 *
 * Update functions accept a NULL handle and do nothing, so code can run with metrics
 * disabled (config metrics.enabled: false) without branching at every call site.
 *
 * metrics_render writes the Prometheus text exposition format (version 0.0.4), families and
 * series in registration order. */
#ifndef TEGULA_METRICS_H
#define TEGULA_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "error.h"

#define METRICS_MAX_LABELS 8
#define METRICS_MAX_BUCKETS 64
/* Content-Type of the rendered text, for the /metrics HTTP response. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct metrics_registry metrics_registry;
typedef struct metrics_counter metrics_counter;
typedef struct metrics_gauge metrics_gauge;
typedef struct metrics_histogram metrics_histogram;

/* One label of a series; the value may hold any bytes but NUL (it is escaped on output). */
typedef struct metrics_label {
    const char *name;
    const char *value;
} metrics_label;

/* Latency buckets in seconds (5 ms .. 10 s), the usual Prometheus client default. */
extern const double metrics_latency_buckets[];
extern const size_t metrics_latency_bucket_count;

metrics_registry *metrics_registry_new(void);
/* Frees the registry and every handle it returned. No update may run concurrently. */
void metrics_registry_free(metrics_registry *r);

/* Registration (thread-safe). Names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 * [a-zA-Z_][a-zA-Z0-9_]* (not starting with "__"); at most METRICS_MAX_LABELS labels.
 * Returns NULL with err set on invalid names or a conflict with an existing family. */
metrics_counter *metrics_counter_register(metrics_registry *r, const char *name,
                                          const char *help, const metrics_label *labels,
                                          size_t label_count, error *err);
metrics_gauge *metrics_gauge_register(metrics_registry *r, const char *name, const char *help,
                                      const metrics_label *labels, size_t label_count,
                                      error *err);
/* bounds: strictly increasing finite upper bounds (the +Inf bucket is implicit), 1 to
 * METRICS_MAX_BUCKETS of them. Label "le" is reserved. */
metrics_histogram *metrics_histogram_register(metrics_registry *r, const char *name,
                                              const char *help, const metrics_label *labels,
                                              size_t label_count, const double *bounds,
                                              size_t bound_count, error *err);

/* Hot-path updates: lock-free, wait-free for counters and histogram buckets. */
void metrics_counter_inc(metrics_counter *c);
void metrics_counter_add(metrics_counter *c, uint64_t n);
uint64_t metrics_counter_value(const metrics_counter *c);

void metrics_gauge_set(metrics_gauge *g, double value);
void metrics_gauge_add(metrics_gauge *g, double delta); /* negative to decrease */
double metrics_gauge_value(const metrics_gauge *g);

/* value falls in the first bucket whose bound is >= value (Prometheus "le" semantics). */
void metrics_histogram_observe(metrics_histogram *h, double value);
uint64_t metrics_histogram_count(const metrics_histogram *h);
double metrics_histogram_sum(const metrics_histogram *h);

/* Appends the whole registry in the text exposition format. Returns 0, or -1 out of memory.
 * Safe to call while other threads update and register. */
int metrics_render(metrics_registry *r, buffer *out);

#endif
