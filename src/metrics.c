#include "metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn.h"

#define MS 1000000ull
#define SEC 1000000000ull

static const uint64_t latency_bounds[] = {
    100000,  250000,   500000,   1 * MS,   2500000, 5 * MS,    10 * MS, 25 * MS,
    50 * MS, 100 * MS, 250 * MS, 500 * MS, 1 * SEC, 2500 * MS, 5 * SEC, 10 * SEC,
};

static const uint64_t duration_bounds[] = {
    1 * MS,  2500000,   5 * MS,  10 * MS,  25 * MS,  50 * MS,  100 * MS,  250 * MS,  500 * MS,
    1 * SEC, 2500 * MS, 5 * SEC, 10 * SEC, 30 * SEC, 60 * SEC, 120 * SEC, 300 * SEC,
};

const struct metrics_buckets metrics_latency_buckets = {
    latency_bounds, sizeof(latency_bounds) / sizeof(latency_bounds[0]), 9};
const struct metrics_buckets metrics_duration_buckets = {
    duration_bounds, sizeof(duration_bounds) / sizeof(duration_bounds[0]), 9};

uint64_t metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

/* Names: the exposition format's grammar. Metric names may hold colons
 * (reserved for recording rules, but legal); label names may not, and those
 * starting with "__" are Prometheus's own. */

static bool name_char(char c, bool first, bool colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
           (!first && c >= '0' && c <= '9');
}

static bool valid_name(const char *name, bool colon)
{
    size_t i;
    if (name == NULL || name[0] == '\0' || strlen(name) > METRICS_NAME_MAX) {
        return false;
    }
    for (i = 0; name[i] != '\0'; i++) {
        if (!name_char(name[i], i == 0, colon)) {
            return false;
        }
    }
    return true;
}

static bool valid_label_name(const char *name)
{
    return valid_name(name, false) && strncmp(name, "__", 2) != 0 && strcmp(name, "le") != 0;
}

void metrics_init(struct metrics *m)
{
    m->families = NULL;
    m->families_tail = &m->families;
}

void metrics_free(struct metrics *m)
{
    struct metrics_family *f = m->families;
    while (f != NULL) {
        struct metrics_family *next_family = f->next;
        struct metrics_series *s = f->series;
        while (s != NULL) {
            struct metrics_series *next = s->next;
            cairn_free(s->labels);
            cairn_free(s);
            s = next;
        }
        cairn_free(f);
        f = next_family;
    }
    metrics_init(m);
}

struct metrics_family *metrics_register(struct metrics *m, enum metrics_type type, const char *name,
                                        const char *help, const struct metrics_buckets *buckets)
{
    struct metrics_family *f;
    /* Names come from our code, not from outside: a bad one is a bug. */
    assert(valid_name(name, true));
    assert(help != NULL);
    /* A histogram needs a bucket layout within the fixed storage. */
    assert(type != METRICS_HISTOGRAM || buckets != NULL);
    assert(type != METRICS_HISTOGRAM ||
           (buckets->n_bounds > 0 && buckets->n_bounds <= METRICS_BUCKETS_MAX));
    assert(type != METRICS_HISTOGRAM || buckets->decimals <= 18);
    for (f = m->families; f != NULL; f = f->next) {
        /* Two families of one name would render as one broken family. */
        assert(strcmp(f->name, name) != 0);
    }
    f = cairn_calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    f->name = name;
    f->help = help;
    f->type = type;
    f->buckets = type == METRICS_HISTOGRAM ? buckets : NULL;
    f->series_tail = &f->series;
    *m->families_tail = f;
    m->families_tail = &f->next;
    return f;
}

/* Appending text to a buf, remembering the first failure. */
struct out
{
    struct buf *b;
    bool failed;
};

static void put(struct out *o, const char *s, size_t len)
{
    if (!o->failed && buf_append(o->b, s, len) != 0) {
        o->failed = true;
    }
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* A label value or HELP text, escaped as the format asks: backslash and
 * newline always, the double quote inside label values. */
static void put_escaped(struct out *o, const char *s, size_t len, bool quote)
{
    size_t start = 0;
    size_t i;
    for (i = 0; i < len; i++) {
        const char *esc = s[i] == '\\'           ? "\\\\"
                          : s[i] == '\n'         ? "\\n"
                          : quote && s[i] == '"' ? "\\\""
                                                 : NULL;
        if (esc != NULL) {
            put(o, s + start, i - start);
            puts_(o, esc);
            start = i + 1;
        }
    }
    put(o, s + start, len - start);
}

/* Length of v cut to METRICS_LABEL_VALUE_MAX bytes without splitting a
 * UTF-8 sequence. */
static size_t label_value_len(const char *v)
{
    size_t len = strlen(v);
    if (len <= METRICS_LABEL_VALUE_MAX) {
        return len;
    }
    len = METRICS_LABEL_VALUE_MAX;
    while (len > 0 && ((unsigned char)v[len] & 0xc0) == 0x80) {
        len--;
    }
    return len;
}

struct metrics_series *metrics_series_get(struct metrics_family *f, size_t n_labels,
                                          const char *const *names, const char *const *values)
{
    struct metrics_series *s;
    struct buf labels;
    struct out o;
    size_t i;
    if (f == NULL) {
        return NULL;
    }
    /* Label names come from our code: a bad one is a bug. */
    assert(n_labels <= METRICS_LABELS_MAX);
    buf_init(&labels);
    o.b = &labels;
    o.failed = false;
    for (i = 0; i < n_labels; i++) {
        const char *v = values[i] != NULL ? values[i] : "";
        assert(valid_label_name(names[i]));
        if (i > 0) {
            puts_(&o, ",");
        }
        puts_(&o, names[i]);
        puts_(&o, "=\"");
        put_escaped(&o, v, label_value_len(v), true);
        puts_(&o, "\"");
    }
    put(&o, "", 1); /* the terminating NUL */
    if (o.failed) {
        buf_free(&labels);
        return NULL;
    }
    for (s = f->series; s != NULL; s = s->next) {
        if (strcmp(s->labels, labels.data) == 0) {
            buf_free(&labels);
            return s;
        }
    }
    s = cairn_calloc(1, sizeof(*s));
    if (s == NULL) {
        buf_free(&labels);
        return NULL;
    }
    s->labels = buf_steal(&labels);
    if (f->type == METRICS_HISTOGRAM) {
        metrics_histogram_init(&s->hist, f->buckets);
    }
    *f->series_tail = s;
    f->series_tail = &s->next;
    f->n_series++;
    return s;
}

struct metrics_series *metrics_add(struct metrics *m, enum metrics_type type, const char *name,
                                   const char *help, const struct metrics_buckets *buckets)
{
    return metrics_series_get(metrics_register(m, type, name, help, buckets), 0, NULL, NULL);
}

void metrics_counter_add(struct metrics_series *s, uint64_t n)
{
    if (s != NULL) {
        s->counter += n;
    }
}

void metrics_counter_set(struct metrics_series *s, uint64_t value)
{
    if (s != NULL) {
        s->counter = value;
    }
}

void metrics_gauge_set(struct metrics_series *s, double value)
{
    if (s != NULL) {
        s->gauge = value;
    }
}

void metrics_histogram_init(struct metrics_histogram *h, const struct metrics_buckets *buckets)
{
    memset(h, 0, sizeof(*h));
    h->buckets = buckets;
}

void metrics_histogram_observe(struct metrics_histogram *h, uint64_t value)
{
    const struct metrics_buckets *b = h->buckets;
    unsigned i = 0;
    /* A linear scan: a dozen or two bounds, and most observations stop in
     * the first few (fast requests), which a binary search would not. */
    while (i < b->n_bounds && value > b->bounds[i]) {
        i++;
    }
    h->counts[i]++;
    h->sum += value;
    h->count++;
}

void metrics_observe(struct metrics_series *s, uint64_t value)
{
    if (s != NULL && s->hist.buckets != NULL) {
        metrics_histogram_observe(&s->hist, value);
    }
}

/* Rendering */

/* raw / 10^decimals as an exact decimal, without trailing zeros:
 * (2500000, 9) -> "0.0025", (10^10, 9) -> "10". */
static void format_fixed(char *out, size_t n, uint64_t raw, unsigned decimals)
{
    uint64_t scale = 1;
    unsigned i;
    int len;
    for (i = 0; i < decimals; i++) {
        scale *= 10;
    }
    if (decimals == 0 || raw % scale == 0) {
        snprintf(out, n, "%" PRIu64, raw / scale);
        return;
    }
    len = snprintf(out, n, "%" PRIu64 ".%0*" PRIu64, raw / scale, (int)decimals, raw % scale);
    while (len > 0 && (size_t)len < n && out[len - 1] == '0') {
        out[--len] = '\0';
    }
}

/* A float as Prometheus reads it: NaN, +Inf, -Inf, or the shortest of %.15g
 * and %.17g that reads back to the same value (integers print plainly). */
static void format_double(char *out, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(out, n, "NaN");
    } else if (isinf(v)) {
        snprintf(out, n, "%s", v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(out, n, "%.15g", v);
        if (strtod(out, NULL) != v) {
            snprintf(out, n, "%.17g", v);
        }
    }
}

/* name{labels} or name{labels,extra} (or bare name), then a space. */
static void put_sample_head(struct out *o, const char *name, const char *suffix, const char *labels,
                            const char *extra)
{
    bool any = labels[0] != '\0' || extra != NULL;
    puts_(o, name);
    puts_(o, suffix);
    if (any) {
        puts_(o, "{");
        puts_(o, labels);
        if (extra != NULL) {
            if (labels[0] != '\0') {
                puts_(o, ",");
            }
            puts_(o, extra);
        }
        puts_(o, "}");
    }
    puts_(o, " ");
}

static void put_u64(struct out *o, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRIu64, v);
    puts_(o, num);
}

static void render_histogram(struct out *o, const struct metrics_family *f,
                             const struct metrics_series *s)
{
    const struct metrics_histogram *h = &s->hist;
    const struct metrics_buckets *b = h->buckets;
    uint64_t cumulative = 0;
    char le[48];
    char num[32];
    unsigned i;
    for (i = 0; i <= b->n_bounds; i++) {
        cumulative += h->counts[i];
        if (i < b->n_bounds) {
            format_fixed(num, sizeof(num), b->bounds[i], b->decimals);
            snprintf(le, sizeof(le), "le=\"%s\"", num);
        } else {
            snprintf(le, sizeof(le), "le=\"+Inf\"");
        }
        put_sample_head(o, f->name, "_bucket", s->labels, le);
        put_u64(o, cumulative);
        puts_(o, "\n");
    }
    put_sample_head(o, f->name, "_sum", s->labels, NULL);
    format_fixed(num, sizeof(num), h->sum, b->decimals);
    puts_(o, num);
    puts_(o, "\n");
    put_sample_head(o, f->name, "_count", s->labels, NULL);
    put_u64(o, h->count);
    puts_(o, "\n");
}

static const char *type_name(enum metrics_type t)
{
    switch (t) {
        case METRICS_COUNTER:
            return "counter";
        case METRICS_GAUGE:
            return "gauge";
        case METRICS_HISTOGRAM:
            return "histogram";
    }
    return "untyped";
}

int metrics_render(const struct metrics *m, struct buf *out)
{
    const struct metrics_family *f;
    const struct metrics_series *s;
    size_t mark = out->len;
    struct out o;
    char num[40];
    o.b = out;
    o.failed = false;
    for (f = m->families; f != NULL && !o.failed; f = f->next) {
        puts_(&o, "# HELP ");
        puts_(&o, f->name);
        puts_(&o, " ");
        put_escaped(&o, f->help, strlen(f->help), false);
        puts_(&o, "\n# TYPE ");
        puts_(&o, f->name);
        puts_(&o, " ");
        puts_(&o, type_name(f->type));
        puts_(&o, "\n");
        for (s = f->series; s != NULL; s = s->next) {
            switch (f->type) {
                case METRICS_COUNTER:
                    put_sample_head(&o, f->name, "", s->labels, NULL);
                    put_u64(&o, s->counter);
                    puts_(&o, "\n");
                    break;
                case METRICS_GAUGE:
                    put_sample_head(&o, f->name, "", s->labels, NULL);
                    format_double(num, sizeof(num), s->gauge);
                    puts_(&o, num);
                    puts_(&o, "\n");
                    break;
                case METRICS_HISTOGRAM:
                    render_histogram(&o, f, s);
                    break;
            }
        }
    }
    if (o.failed) {
        out->len = mark;
        return CAIRN_ENOMEM;
    }
    return 0;
}
