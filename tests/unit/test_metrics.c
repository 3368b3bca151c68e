/*
 * Unit tests of the metrics registry and its Prometheus text rendering
 * (src/metrics.c): the exact exposition format 0.0.4 (HELP and TYPE lines,
 * label and help escaping, number formats), histogram bucket arithmetic
 * (inclusive upper bounds, cumulative counts, +Inf, exact sums), series
 * identity and order, and behaviour when memory runs out.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cairn.h"
#include "metrics.h"

/* Render m into a NUL-terminated string owned by the caller. */
static char *render(const struct metrics *m)
{
    struct buf b;
    char *s;
    buf_init(&b);
    assert_int_equal(metrics_render(m, &b), 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    s = buf_steal(&b);
    return s;
}

static void expect_render(const struct metrics *m, const char *want)
{
    char *got = render(m);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "--- want\n%s--- got\n%s---\n", want, got);
    }
    assert_string_equal(got, want);
    free(got);
}

static void test_counter_and_gauge(void **state)
{
    struct metrics m;
    struct metrics_series *c;
    struct metrics_series *g;
    (void)state;
    metrics_init(&m);
    c = metrics_add(&m, METRICS_COUNTER, "cairn_things_total", "Things counted.", NULL);
    g = metrics_add(&m, METRICS_GAUGE, "cairn_level", "A level.", NULL);
    assert_non_null(c);
    assert_non_null(g);
    /* A new series renders at zero. */
    expect_render(&m, "# HELP cairn_things_total Things counted.\n"
                      "# TYPE cairn_things_total counter\n"
                      "cairn_things_total 0\n"
                      "# HELP cairn_level A level.\n"
                      "# TYPE cairn_level gauge\n"
                      "cairn_level 0\n");
    metrics_counter_add(c, 2);
    metrics_counter_add(c, 40);
    metrics_gauge_set(g, 7);
    expect_render(&m, "# HELP cairn_things_total Things counted.\n"
                      "# TYPE cairn_things_total counter\n"
                      "cairn_things_total 42\n"
                      "# HELP cairn_level A level.\n"
                      "# TYPE cairn_level gauge\n"
                      "cairn_level 7\n");
    /* A mirrored counter, up to the largest uint64. */
    metrics_counter_set(c, UINT64_MAX);
    metrics_gauge_set(g, -3);
    expect_render(&m, "# HELP cairn_things_total Things counted.\n"
                      "# TYPE cairn_things_total counter\n"
                      "cairn_things_total 18446744073709551615\n"
                      "# HELP cairn_level A level.\n"
                      "# TYPE cairn_level gauge\n"
                      "cairn_level -3\n");
    metrics_free(&m);
    /* An empty registry renders nothing. */
    expect_render(&m, "");
}

static void test_gauge_number_formats(void **state)
{
    static const struct
    {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {1, "1"},
        {123456789012, "123456789012"},
        {9007199254740992.0, "9007199254740992"}, /* 2^53: still exact */
        {0.1, "0.1"},                             /* shortest form that reads back */
        {0.3000001, "0.3000001"},                 /* not 0.30000009999999999 */
        {-2.5, "-2.5"},
        {1e-9, "1e-09"},
        {1.0 / 3.0, "0.33333333333333331"}, /* needs 17 digits to read back */
        {1e300, "1e+300"},
    };
    struct metrics m;
    struct metrics_series *g;
    char want[256];
    size_t i;
    (void)state;
    metrics_init(&m);
    g = metrics_add(&m, METRICS_GAUGE, "g", "h", NULL);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        metrics_gauge_set(g, cases[i].v);
        snprintf(want, sizeof(want), "# HELP g h\n# TYPE g gauge\ng %s\n", cases[i].text);
        expect_render(&m, want);
        /* Whatever is printed reads back to the same value. */
        assert_true(strtod(cases[i].text, NULL) == cases[i].v);
    }
    /* Prometheus spells the special values NaN, +Inf and -Inf. */
    metrics_gauge_set(g, NAN);
    expect_render(&m, "# HELP g h\n# TYPE g gauge\ng NaN\n");
    metrics_gauge_set(g, INFINITY);
    expect_render(&m, "# HELP g h\n# TYPE g gauge\ng +Inf\n");
    metrics_gauge_set(g, -INFINITY);
    expect_render(&m, "# HELP g h\n# TYPE g gauge\ng -Inf\n");
    metrics_free(&m);
}

static void test_labels_and_escaping(void **state)
{
    static const char *const names[] = {"op", "result"};
    struct metrics m;
    struct metrics_family *f;
    struct metrics_series *a;
    struct metrics_series *b;
    struct metrics_series *again;
    const char *va[2] = {"put", "ok"};
    /* Backslash, double quote and newline are escaped in label values. */
    const char *vb[2] = {"a\\b\"c\nd", "tab\there"};
    (void)state;
    metrics_init(&m);
    /* HELP escapes backslash and newline, but not the double quote. */
    f = metrics_register(&m, METRICS_COUNTER, "cairn_requests_total",
                         "Requests \"answered\",\nby op\\result.", NULL);
    assert_non_null(f);
    /* A labeled family without series yet: only its HELP and TYPE. */
    expect_render(&m, "# HELP cairn_requests_total Requests \"answered\",\\nby op\\\\result.\n"
                      "# TYPE cairn_requests_total counter\n");
    a = metrics_series_get(f, 2, names, va);
    b = metrics_series_get(f, 2, names, vb);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    /* The same labels find the same series (values are copied, so a
     * different buffer with equal contents matches). */
    {
        char op[] = "put";
        const char *vc[2] = {op, "ok"};
        again = metrics_series_get(f, 2, names, vc);
    }
    assert_ptr_equal(again, a);
    assert_int_equal(f->n_series, 2);
    metrics_counter_add(a, 3);
    metrics_counter_add(b, 1);
    /* Series render in creation order. */
    expect_render(&m, "# HELP cairn_requests_total Requests \"answered\",\\nby op\\\\result.\n"
                      "# TYPE cairn_requests_total counter\n"
                      "cairn_requests_total{op=\"put\",result=\"ok\"} 3\n"
                      "cairn_requests_total{op=\"a\\\\b\\\"c\\nd\",result=\"tab\there\"} 1\n");
    metrics_free(&m);
}

static void test_label_value_cut(void **state)
{
    static const char *const names[] = {"v"};
    struct metrics m;
    struct metrics_family *f;
    struct metrics_series *s;
    char value[METRICS_LABEL_VALUE_MAX + 16];
    const char *values[1] = {value};
    size_t i;
    (void)state;
    metrics_init(&m);
    f = metrics_register(&m, METRICS_GAUGE, "g", "h", NULL);
    /* 255 ASCII bytes, then a two-byte UTF-8 character straddling the
     * limit: the cut falls before it, not in its middle. */
    for (i = 0; i < METRICS_LABEL_VALUE_MAX - 1; i++) {
        value[i] = 'x';
    }
    value[METRICS_LABEL_VALUE_MAX - 1] = (char)0xc3;
    value[METRICS_LABEL_VALUE_MAX] = (char)0xa9; /* U+00E9 */
    value[METRICS_LABEL_VALUE_MAX + 1] = 'y';
    value[METRICS_LABEL_VALUE_MAX + 2] = '\0';
    s = metrics_series_get(f, 1, names, values);
    assert_non_null(s);
    assert_int_equal(strlen(s->labels), strlen("v=\"\"") + METRICS_LABEL_VALUE_MAX - 1);
    assert_int_equal(s->labels[strlen(s->labels) - 2], 'x');
    /* A value of exactly the limit is kept whole. */
    value[METRICS_LABEL_VALUE_MAX - 1] = 'z';
    value[METRICS_LABEL_VALUE_MAX] = '\0';
    s = metrics_series_get(f, 1, names, values);
    assert_non_null(s);
    assert_int_equal(strlen(s->labels), strlen("v=\"\"") + METRICS_LABEL_VALUE_MAX);
    metrics_free(&m);
}

/* Bounds 1, 2 and 5 in tenths. */
static const uint64_t tenth_bounds[] = {10, 20, 50};
static const struct metrics_buckets tenths = {tenth_bounds, 3, 1};

static void test_histogram_bucket_math(void **state)
{
    static const uint64_t observations[] = {0, 10, 11, 20, 50, 51, 1000};
    struct metrics_histogram h;
    size_t i;
    (void)state;
    metrics_histogram_init(&h, &tenths);
    for (i = 0; i < sizeof(observations) / sizeof(observations[0]); i++) {
        metrics_histogram_observe(&h, observations[i]);
    }
    /* Upper bounds are inclusive (Prometheus's le): 0 and 10 in the first
     * bucket, 11 and 20 in the second, 50 in the third, 51 and 1000 above
     * every bound. */
    assert_int_equal(h.counts[0], 2);
    assert_int_equal(h.counts[1], 2);
    assert_int_equal(h.counts[2], 1);
    assert_int_equal(h.counts[3], 2);
    assert_int_equal(h.count, 7);
    assert_int_equal(h.sum, 1142);
}

static void test_histogram_render(void **state)
{
    static const char *const names[] = {"op"};
    static const char *const get[] = {"get"};
    struct metrics m;
    struct metrics_family *f;
    struct metrics_series *bare;
    struct metrics_series *s;
    (void)state;
    metrics_init(&m);
    bare = metrics_add(&m, METRICS_HISTOGRAM, "t_seconds", "Times.", &tenths);
    f = metrics_register(&m, METRICS_HISTOGRAM, "u_seconds", "Times by op.", &tenths);
    s = metrics_series_get(f, 1, names, get);
    assert_non_null(bare);
    assert_non_null(s);
    metrics_observe(bare, 10);
    metrics_observe(bare, 1000);
    metrics_observe(bare, 3);
    metrics_observe(s, 21);
    /* Buckets are cumulative and end with +Inf, which equals the count; the
     * sum is exact (1013 tenths); le joins the other labels, last. */
    expect_render(&m, "# HELP t_seconds Times.\n"
                      "# TYPE t_seconds histogram\n"
                      "t_seconds_bucket{le=\"1\"} 2\n"
                      "t_seconds_bucket{le=\"2\"} 2\n"
                      "t_seconds_bucket{le=\"5\"} 2\n"
                      "t_seconds_bucket{le=\"+Inf\"} 3\n"
                      "t_seconds_sum 101.3\n"
                      "t_seconds_count 3\n"
                      "# HELP u_seconds Times by op.\n"
                      "# TYPE u_seconds histogram\n"
                      "u_seconds_bucket{op=\"get\",le=\"1\"} 0\n"
                      "u_seconds_bucket{op=\"get\",le=\"2\"} 0\n"
                      "u_seconds_bucket{op=\"get\",le=\"5\"} 1\n"
                      "u_seconds_bucket{op=\"get\",le=\"+Inf\"} 1\n"
                      "u_seconds_sum{op=\"get\"} 2.1\n"
                      "u_seconds_count{op=\"get\"} 1\n");
    /* Observing into a series that is not a histogram does nothing. */
    metrics_observe(metrics_add(&m, METRICS_COUNTER, "c_total", "C.", NULL), 5);
    metrics_free(&m);
}

/* The two built-in layouts: nanoseconds shown as seconds, exactly. */
static void test_latency_buckets(void **state)
{
    static const char *const le[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
                                     "0.01",   "0.025",   "0.05",   "0.1",   "0.25",   "0.5",
                                     "1",      "2.5",     "5",      "10"};
    struct metrics m;
    struct metrics_series *s;
    char *text;
    char line[128];
    size_t i;
    (void)state;
    assert_int_equal(metrics_latency_buckets.n_bounds, sizeof(le) / sizeof(le[0]));
    assert_int_equal(metrics_latency_buckets.bounds[0], 100000);                 /* 100 us */
    assert_int_equal(metrics_latency_buckets.bounds[15], 10ull * 1000000000ull); /* 10 s */
    for (i = 1; i < metrics_latency_buckets.n_bounds; i++) {
        assert_true(metrics_latency_buckets.bounds[i - 1] < metrics_latency_buckets.bounds[i]);
    }
    for (i = 1; i < metrics_duration_buckets.n_bounds; i++) {
        assert_true(metrics_duration_buckets.bounds[i - 1] < metrics_duration_buckets.bounds[i]);
    }
    assert_true(metrics_duration_buckets.n_bounds <= METRICS_BUCKETS_MAX);

    metrics_init(&m);
    s = metrics_add(&m, METRICS_HISTOGRAM, "l_seconds", "L.", &metrics_latency_buckets);
    metrics_observe(s, 100000);                /* exactly 100 us: the first bucket */
    metrics_observe(s, 100001);                /* just above: the second */
    metrics_observe(s, 10ull * 1000000000ull); /* exactly 10 s: the last bound */
    metrics_observe(s, 10ull * 1000000000ull + 1);
    text = render(&m);
    for (i = 0; i < sizeof(le) / sizeof(le[0]); i++) {
        unsigned long long want = i == 0 ? 1 : i < 15 ? 2 : 3;
        snprintf(line, sizeof(line), "\nl_seconds_bucket{le=\"%s\"} %llu\n", le[i], want);
        assert_non_null(strstr(text, line));
    }
    assert_non_null(strstr(text, "\nl_seconds_bucket{le=\"+Inf\"} 4\n"));
    /* 100 us + 100.001 us + 10 s + 10.000000001 s */
    assert_non_null(strstr(text, "\nl_seconds_sum 20.000200002\n"));
    assert_non_null(strstr(text, "\nl_seconds_count 4\n"));
    free(text);
    metrics_free(&m);
}

static void test_null_series_are_ignored(void **state)
{
    (void)state;
    /* A series that could not be allocated costs its metric, nothing else. */
    metrics_counter_add(NULL, 1);
    metrics_counter_set(NULL, 1);
    metrics_gauge_set(NULL, 1);
    metrics_observe(NULL, 1);
    assert_null(metrics_series_get(NULL, 0, NULL, NULL));
}

static char long_help[400];

static void test_out_of_memory(void **state)
{
    static const char *const names[] = {"k"};
    static const char *const values[] = {"v"};
    struct metrics m;
    struct metrics_series *s;
    struct buf b;
    long n;
    (void)state;
    /* Registration and series creation fail cleanly at every allocation. */
    metrics_init(&m);
    cairn_alloc_fail_after(0);
    assert_null(metrics_add(&m, METRICS_COUNTER, "a_total", "A.", NULL));
    cairn_alloc_fail_after(-1);
    metrics_free(&m);
    for (n = 0; n < 8; n++) {
        struct metrics_family *f;
        metrics_init(&m);
        cairn_alloc_fail_after(n);
        f = metrics_register(&m, METRICS_GAUGE, "g", "G.", NULL);
        s = metrics_series_get(f, 1, names, values);
        cairn_alloc_fail_after(-1);
        if (s != NULL) {
            assert_string_equal(s->labels, "k=\"v\"");
        }
        metrics_free(&m); /* nothing leaks either way (ASan builds check) */
    }
    /* Rendering that runs out of memory leaves the buffer as it was. The
     * help text is longer than a buffer's first allocation (256 bytes), so
     * rendering must grow it. */
    memset(long_help, 'h', sizeof(long_help) - 1);
    long_help[sizeof(long_help) - 1] = '\0';
    metrics_init(&m);
    s = metrics_add(&m, METRICS_COUNTER, "a_total", long_help, NULL);
    assert_non_null(s);
    buf_init(&b);
    assert_int_equal(buf_append(&b, "keep", 4), 0);
    cairn_alloc_fail_after(0);
    assert_int_equal(metrics_render(&m, &b), CAIRN_ENOMEM);
    cairn_alloc_fail_after(-1);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "keep", 4);
    buf_free(&b);
    metrics_free(&m);
}

static void test_clock(void **state)
{
    uint64_t a;
    uint64_t b;
    (void)state;
    a = metrics_now_ns();
    b = metrics_now_ns();
    assert_true(a > 0);
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge),
        cmocka_unit_test(test_gauge_number_formats),
        cmocka_unit_test(test_labels_and_escaping),
        cmocka_unit_test(test_label_value_cut),
        cmocka_unit_test(test_histogram_bucket_math),
        cmocka_unit_test(test_histogram_render),
        cmocka_unit_test(test_latency_buckets),
        cmocka_unit_test(test_null_series_are_ignored),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
