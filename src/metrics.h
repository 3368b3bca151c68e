/*
 * metrics: a small registry of counters, gauges and histograms, and its
 * rendering in the Prometheus text exposition format, version 0.0.4.
 *
 * A registry belongs to one thread (in cairnd, the loop thread): nothing here
 * takes a lock, and nothing may be called from another thread. Other threads
 * get the rendered text by asking the owner (the native METRICS request).
 *
 * The model is Prometheus's: a family has a name, a help text and a type;
 * its series are told apart by label values. Families render in the order
 * they were registered, series in the order they were created.
 *
 *   struct metrics m;
 *   struct metrics_family *f;
 *   struct metrics_series *s;
 *   metrics_init(&m);
 *   f = metrics_register(&m, METRICS_COUNTER, "cairn_requests_total",
 *                        "Requests answered.", NULL);
 *   s = metrics_series_get(f, 2, (const char *[]){"op", "result"},
 *                          (const char *[]){"put", "ok"});
 *   metrics_counter_add(s, 1);
 *   metrics_render(&m, &out);   cairn_requests_total{op="put",result="ok"} 1
 *
 * Updating a series costs an add (a counter, a gauge) or a short scan of the
 * bucket bounds (a histogram): no allocation, no lookup. Look a series up
 * once (metrics_series_get) and keep the pointer; it stays valid until
 * metrics_free(). Every update function accepts NULL and then does nothing,
 * so that a series that could not be allocated costs a metric, never the
 * caller's work.
 *
 * Histograms count integer observations (durations in nanoseconds) in fixed
 * buckets; their bounds and sum render as decimals scaled by a power of ten
 * (nanoseconds as seconds), exactly, with no floating-point rounding.
 */
#ifndef CAIRN_METRICS_H
#define CAIRN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum metrics_type {
    METRICS_COUNTER,
    METRICS_GAUGE,
    METRICS_HISTOGRAM,
};

/* The most bucket bounds a histogram has (the +Inf bucket not counted). */
#define METRICS_BUCKETS_MAX 24
/* The most labels a series has. */
#define METRICS_LABELS_MAX 8
/* Longest metric or label name, and longest label value (before escaping). */
#define METRICS_NAME_MAX 128
#define METRICS_LABEL_VALUE_MAX 256

/* A histogram's bucket layout: upper bounds (inclusive, as Prometheus's le)
 * in the unit observations are made in, strictly ascending; a value renders
 * as raw / 10^decimals. Layouts are static: histograms borrow them. */
struct metrics_buckets
{
    const uint64_t *bounds;
    unsigned n_bounds; /* 1..METRICS_BUCKETS_MAX */
    unsigned decimals; /* 0..18; 9 renders nanoseconds as seconds */
};

/* Request latencies, in nanoseconds: 100 us to 10 s in 1-2.5-5 steps. */
extern const struct metrics_buckets metrics_latency_buckets;
/* Longer work (snapshots), in nanoseconds: 1 ms to 5 min. */
extern const struct metrics_buckets metrics_duration_buckets;

struct metrics_histogram
{
    const struct metrics_buckets *buckets; /* borrowed: static */
    /* Observations per bucket (not cumulative): counts[i] for values in
     * (bounds[i-1], bounds[i]], counts[n_bounds] for values above every
     * bound. The renderer accumulates them into Prometheus's le buckets. */
    uint64_t counts[METRICS_BUCKETS_MAX + 1];
    uint64_t sum; /* raw units; wraps after 584 years of nanoseconds */
    uint64_t count;
};

struct metrics_series
{
    struct metrics_series *next;
    char *labels; /* owned: rendered and escaped, `a="x",b="y"`; "" for none */
    uint64_t counter;
    double gauge;
    struct metrics_histogram hist;
};

struct metrics_family
{
    struct metrics_family *next;
    const char *name; /* borrowed: static strings */
    const char *help;
    enum metrics_type type;
    const struct metrics_buckets *buckets; /* histograms; borrowed */
    struct metrics_series *series;         /* owned */
    struct metrics_series **series_tail;
    size_t n_series;
};

struct metrics
{
    struct metrics_family *families; /* owned */
    struct metrics_family **families_tail;
};

void metrics_init(struct metrics *m);
/* Free every family and series; pointers to them become invalid. */
void metrics_free(struct metrics *m);

/* Add a family. name, help and buckets are borrowed and must outlive m
 * (string literals); buckets is required for histograms and ignored
 * otherwise. A name that is not a valid Prometheus metric name, or already
 * registered, is a programmer error (asserted). Returns NULL when out of
 * memory. */
struct metrics_family *metrics_register(struct metrics *m, enum metrics_type type, const char *name,
                                        const char *help, const struct metrics_buckets *buckets);

/* The series of f with these labels, created (at zero) on first use. Label
 * names must be valid Prometheus label names, not "le", at most
 * METRICS_LABELS_MAX (asserted); values are any strings (NULL reads as
 * ""), cut to METRICS_LABEL_VALUE_MAX bytes at a UTF-8 character boundary,
 * and escaped here. The
 * same names must be given in the same order on every call. Names and values
 * are copied. Returns NULL when out of memory (or when f is NULL). */
struct metrics_series *metrics_series_get(struct metrics_family *f, size_t n_labels,
                                          const char *const *names, const char *const *values);

/* Register a family without labels and return its only series. */
struct metrics_series *metrics_add(struct metrics *m, enum metrics_type type, const char *name,
                                   const char *help, const struct metrics_buckets *buckets);

/* Updates. Each does nothing when s is NULL. */
void metrics_counter_add(struct metrics_series *s, uint64_t n);
/* A counter kept elsewhere (monotonic), mirrored before rendering. */
void metrics_counter_set(struct metrics_series *s, uint64_t value);
void metrics_gauge_set(struct metrics_series *s, double value);
void metrics_observe(struct metrics_series *s, uint64_t value);

/* The same on a bare histogram (a histogram outside any registry, as the
 * unit tests use). */
void metrics_histogram_init(struct metrics_histogram *h, const struct metrics_buckets *buckets);
void metrics_histogram_observe(struct metrics_histogram *h, uint64_t value);

/* Append the text exposition of every family to out. Returns 0, or
 * CAIRN_ENOMEM with out as it was before the call. */
int metrics_render(const struct metrics *m, struct buf *out);

/* Monotonic clock for durations, in nanoseconds. */
uint64_t metrics_now_ns(void);

#endif /* CAIRN_METRICS_H */
