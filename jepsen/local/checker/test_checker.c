/*
 * Unit tests of the chaos checker (jepsen/local/checker): each check must
 * report the anomalies it exists for, on small hand-written histories, and
 * accept valid ones, :info ops and concurrency included; the linearizability
 * search must be fast on a large valid history and report a limit hit as a
 * failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "check.h"

/* --- helpers ------------------------------------------------------------ */

#define INV(p, f, v) "{:type :invoke, :process " #p ", :f :" f ", :value " v "}\n"
#define OK(p, f, v) "{:type :ok, :process " #p ", :f :" f ", :value " v "}\n"
#define FAIL(p, f, v) "{:type :fail, :process " #p ", :f :" f ", :value " v "}\n"
#define INFO(p, f, v) "{:type :info, :process " #p ", :f :" f ", :value " v "}\n"

static void read_history(const char *text, struct history *h)
{
    char errmsg[256];
    if (history_read_text(text, strlen(text), h, errmsg, sizeof(errmsg)) != 0) {
        print_error("history: %s\n", errmsg);
        fail();
    }
}

/* Runs the register check; returns the verdict and fills *r (caller frees). */
static enum check_verdict reg(const char *text, const struct register_opts *opts,
                              struct check_result *r)
{
    struct history h;
    char errmsg[256];
    read_history(text, &h);
    if (check_register(&h, opts, r, errmsg, sizeof(errmsg)) != 0) {
        print_error("register: %s\n", errmsg);
        fail();
    }
    history_free(&h);
    return r->verdict;
}

static enum check_verdict reg_verdict(const char *text)
{
    struct check_result r;
    enum check_verdict v = reg(text, NULL, &r);
    if (getenv("CHECKER_VERBOSE") != NULL) {
        print_message("%s", r.text);
    }
    check_result_free(&r);
    return v;
}

static enum check_verdict set_check(const char *text, struct check_result *r)
{
    struct history h;
    char errmsg[256];
    read_history(text, &h);
    if (check_set(&h, r, errmsg, sizeof(errmsg)) != 0) {
        print_error("set: %s\n", errmsg);
        fail();
    }
    history_free(&h);
    return r->verdict;
}

static enum check_verdict watch(const char *wlog, const char *clog, struct check_result *r)
{
    char errmsg[256];
    if (check_watch_text(wlog, strlen(wlog), clog, strlen(clog), r, errmsg, sizeof(errmsg)) != 0) {
        print_error("watch: %s\n", errmsg);
        fail();
    }
    return r->verdict;
}

/* --- EDN and history ---------------------------------------------------- */

static void test_edn_subset(void **state)
{
    (void)state;
    const char *text = "{:a [1 -2 nil true false \"x\\\"y\\n\\u0041\"], :b #{:k sym}, "
                       ":c {:d ((3))}, :e 1.5} ; comment";
    struct edn v;
    char err[128], buf[256];
    assert_int_equal(edn_parse(text, strlen(text), &v, err, sizeof(err)), 0);
    assert_int_equal(v.type, EDN_MAP);
    const struct edn *a = edn_map_get(&v, "a");
    assert_non_null(a);
    assert_int_equal(a->n, 6);
    assert_int_equal(a->items[1].i, -2);
    assert_string_equal(a->items[5].s, "x\"y\nA");
    assert_int_equal(edn_map_get(&v, "b")->type, EDN_SET);
    edn_print(&v, buf, sizeof(buf));
    assert_non_null(strstr(buf, "#{:k sym}"));
    edn_free(&v);
}

static void test_edn_malformed(void **state)
{
    (void)state;
    const char *bad[] = {"{:a 1",       "[1 2}", "\"abc",   "{:a}",
                         "#inst \"x\"", "[1] 2", "\"\\q\"", "99999999999999999999",
                         ":",           ""};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        struct edn v;
        char err[128] = "";
        assert_int_equal(edn_parse(bad[k], strlen(bad[k]), &v, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "column"));
    }
    /* Deep nesting is refused, not a stack overflow. */
    char deep[400];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    struct edn v;
    char err[128];
    assert_int_equal(edn_parse(deep, strlen(deep), &v, err, sizeof(err)), -1);
}

static void test_history_errors_name_the_line(void **state)
{
    (void)state;
    struct history h;
    char err[256];
    const char *text = INV(0, "write", "[1 1]") "{:type :ok, :process 0, :f :write :value [1 1]\n";
    assert_int_equal(history_read_text(text, strlen(text), &h, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 2"));
    const char *orphan = OK(3, "write", "[1 1]");
    assert_int_equal(history_read_text(orphan, strlen(orphan), &h, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 1"));
    const char *badtype = "{:type :maybe, :process 0, :f :read, :value nil}\n";
    assert_int_equal(history_read_text(badtype, strlen(badtype), &h, err, sizeof(err)), -1);
    /* Key order, extra keys and nemesis events are fine. */
    const char *ok = "{:process :nemesis, :type :info, :f :start-partition, :value \"x\"}\n"
                     "{:index 0, :time 5, :value [1 nil], :f :read, :process 0, :type :invoke}\n"
                     "{:type :ok, :process 0, :f :read, :value [1 nil], :error \"none\"}\n";
    assert_int_equal(history_read_text(ok, strlen(ok), &h, err, sizeof(err)), 0);
    assert_int_equal(h.n_ops, 1);
    assert_int_equal(h.events[1].time, 5);
    history_free(&h);
}

/* --- register ----------------------------------------------------------- */

static void test_register_valid_sequential(void **state)
{
    (void)state;
    assert_int_equal(
        reg_verdict(INV(0, "read", "[1 nil]") OK(0, "read", "[1 nil]") INV(0, "write", "[1 5]")
                        OK(0, "write", "[1 5]") INV(1, "cas", "[1 [5 6]]") OK(1, "cas", "[1 [5 6]]")
                            INV(1, "cas", "[1 [5 7]]") FAIL(1, "cas", "[1 [5 7]]")
                                INV(0, "read", "[1 nil]") OK(0, "read", "[1 6]") INV(
                                    0, "write", "[\"k\" \"v\"]") OK(0, "write", "[\"k\" \"v\"]")
                                    INV(0, "read", "[\"k\" nil]") OK(0, "read", "[\"k\" \"v\"]")),
        CHECK_VALID);
}

static void test_register_stale_read(void **state)
{
    (void)state;
    struct check_result r;
    const char *h = INV(0, "write", "[1 1]") OK(0, "write", "[1 1]") /* lines 1-2 */
        INV(1, "write", "[1 2]") OK(1, "write", "[1 2]")             /* lines 3-4 */
        INV(2, "read", "[1 nil]") OK(2, "read", "[1 1]");            /* lines 5-6 */
    assert_int_equal(reg(h, NULL, &r), CHECK_INVALID);
    assert_int_equal(r.anomalies[ANOMALY_NONLINEARIZABLE], 1);
    assert_int_equal(r.first_bad_line, 5); /* the stale read */
    assert_non_null(strstr(r.text, "read 1"));
    assert_non_null(strstr(r.json, "\"blocked_op\":{\"f\":\"read\""));
    check_result_free(&r);
}

static void test_register_lost_write(void **state)
{
    (void)state;
    struct check_result r;
    const char *h = INV(0, "write", "[7 1]") OK(0, "write", "[7 1]") INV(1, "read", "[7 nil]")
        OK(1, "read", "[7 nil]");
    assert_int_equal(reg(h, NULL, &r), CHECK_INVALID);
    assert_int_equal(r.first_bad_line, 3);
    check_result_free(&r);
}

static void test_register_nonlinearizable_cas(void **state)
{
    (void)state;
    struct check_result r;
    /* Both cas from 1 succeed, one after the other. */
    const char *h = INV(0, "write", "[1 1]") OK(0, "write", "[1 1]") INV(0, "cas", "[1 [1 2]]")
        OK(0, "cas", "[1 [1 2]]") INV(1, "cas", "[1 [1 3]]") OK(1, "cas", "[1 [1 3]]");
    assert_int_equal(reg(h, NULL, &r), CHECK_INVALID);
    assert_int_equal(r.first_bad_line, 5);
    check_result_free(&r);
    /* Overlapping, they still cannot both succeed. */
    const char *h2 = INV(0, "write", "[1 1]") OK(0, "write", "[1 1]") INV(0, "cas", "[1 [1 2]]")
        INV(1, "cas", "[1 [1 3]]") OK(1, "cas", "[1 [1 3]]") OK(0, "cas", "[1 [1 2]]");
    assert_int_equal(reg(h2, NULL, &r), CHECK_INVALID);
    check_result_free(&r);
}

static void test_register_info_ops(void **state)
{
    (void)state;
    /* An :info write that took effect, later. */
    assert_int_equal(reg_verdict(INV(0, "write", "[1 1]") OK(0, "write", "[1 1]")
                                     INV(1, "write", "[1 2]") INFO(1, "write", "[1 2]")
                                         INV(0, "read", "[1 nil]") OK(0, "read", "[1 1]")
                                             INV(0, "read", "[1 nil]") OK(0, "read", "[1 2]")),
                     CHECK_VALID);
    /* An :info write that never took effect, and one never completed. */
    assert_int_equal(reg_verdict(INV(0, "write", "[1 1]") OK(0, "write", "[1 1]") INV(
                         1, "write", "[1 2]") INFO(1, "write", "[1 2]") INV(2, "cas", "[1 [1 3]]")
                                     INV(0, "read", "[1 nil]") OK(0, "read", "[1 1]")),
                     CHECK_VALID);
    /* An :info cas that did take effect. */
    assert_int_equal(reg_verdict(INV(0, "write", "[1 1]") OK(0, "write", "[1 1]")
                                     INV(1, "cas", "[1 [1 9]]") INFO(1, "cas", "[1 [1 9]]")
                                         INV(0, "read", "[1 nil]") OK(0, "read", "[1 9]")),
                     CHECK_VALID);
    /* But an :info write cannot explain a value it did not write. */
    assert_int_equal(reg_verdict(INV(1, "write", "[1 2]") INFO(1, "write", "[1 2]")
                                     INV(0, "read", "[1 nil]") OK(0, "read", "[1 3]")),
                     CHECK_INVALID);
    /* Nor can it take effect before its invoke. */
    assert_int_equal(reg_verdict(INV(0, "read", "[1 nil]") OK(0, "read", "[1 2]")
                                     INV(1, "write", "[1 2]") INFO(1, "write", "[1 2]")),
                     CHECK_INVALID);
}

static void test_register_concurrent(void **state)
{
    (void)state;
    /* w1 and w2 overlap; r sees 2 (w2 first), the last read sees 1. */
    assert_int_equal(reg_verdict(INV(0, "write", "[1 1]") INV(1, "write", "[1 2]")
                                     INV(2, "read", "[1 nil]") OK(2, "read", "[1 2]")
                                         OK(0, "write", "[1 1]") OK(1, "write", "[1 2]")
                                             INV(2, "read", "[1 nil]") OK(2, "read", "[1 1]")),
                     CHECK_VALID);
    /* A read overlapping a write may see either value. */
    assert_int_equal(reg_verdict(INV(0, "write", "[1 1]") OK(0, "write", "[1 1]")
                                     INV(0, "write", "[1 2]") INV(1, "read", "[1 nil]")
                                         OK(1, "read", "[1 1]") INV(2, "read", "[1 nil]")
                                             OK(2, "read", "[1 2]") OK(0, "write", "[1 2]")),
                     CHECK_VALID);
    /* But two sequential reads cannot see new then old. */
    assert_int_equal(reg_verdict(INV(0, "write", "[1 1]") OK(0, "write", "[1 1]")
                                     INV(0, "write", "[1 2]") INV(1, "read", "[1 nil]")
                                         OK(1, "read", "[1 2]") INV(2, "read", "[1 nil]")
                                             OK(2, "read", "[1 1]") OK(0, "write", "[1 2]")),
                     CHECK_INVALID);
}

/* A random valid history: 5 processes on keys of at most ops_per_key ops,
 * each op taking effect at a random instant between invoke and completion;
 * some writes and cas end :info (taken effect or not), failed cas :fail. */
static char *generate(unsigned seed, int keys, int ops_per_key, int procs, size_t *n_ops)
{
    enum { PROCS_MAX = 32 };
    const int PROCS = procs < PROCS_MAX ? procs : PROCS_MAX;
    struct proc
    {
        int phase; /* 0 idle, 1 invoked, 2 applied */
        int64_t id;
        int key, f;
        int64_t a, b, result; /* result: read value (-1 nil) or cas success */
    } p[PROCS_MAX];
    int64_t *reg = malloc(sizeof(*reg) * (size_t)keys);
    int *left = malloc(sizeof(*left) * (size_t)keys);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int64_t next_value = 1;
    int remaining = keys * ops_per_key;
    for (int k = 0; k < keys; k++) {
        reg[k] = -1;
        left[k] = ops_per_key;
    }
    for (int k = 0; k < PROCS; k++) {
        p[k] = (struct proc){0, k, 0, 0, 0, 0, 0};
    }
    srand(seed);
    *n_ops = 0;
    char v[64];
    int busy = 0;
    while (remaining > 0 || busy > 0) {
        struct proc *q = &p[rand() % PROCS];
        if (q->phase == 0) {
            if (remaining == 0) {
                continue;
            }
            int k = rand() % keys;
            while (left[k] == 0) {
                k = (k + 1) % keys;
            }
            left[k]--;
            remaining--;
            q->key = k;
            q->f = rand() % 3;
            if (q->f == 0) {
                snprintf(v, sizeof(v), "[%d nil]", k);
            } else if (q->f == 1) {
                q->a = next_value++;
                snprintf(v, sizeof(v), "[%d %lld]", k, (long long)q->a);
            } else {
                q->a = reg[k] >= 0 && rand() % 4 != 0 ? reg[k] : rand() % 5;
                q->b = next_value++;
                snprintf(v, sizeof(v), "[%d [%lld %lld]]", k, (long long)q->a, (long long)q->b);
            }
            fprintf(f, "{:type :invoke, :process %lld, :f :%s, :value %s, :time %zu}\n",
                    (long long)q->id,
                    q->f == 0   ? "read"
                    : q->f == 1 ? "write"
                                : "cas",
                    v, *n_ops);
            q->phase = 1;
            busy++;
            (*n_ops)++;
            continue;
        }
        const char *fname = q->f == 0 ? "read" : q->f == 1 ? "write" : "cas";
        if (q->phase == 1) {
            if (q->f != 0 && rand() % 40 == 0) {
                /* Times out and never takes effect. */
                fprintf(f, "{:type :info, :process %lld, :f :%s, :value nil}\n", (long long)q->id,
                        fname);
                q->id += PROCS;
                q->phase = 0;
                busy--;
                continue;
            }
            if (q->f == 0) {
                q->result = reg[q->key];
            } else if (q->f == 1) {
                reg[q->key] = q->a;
            } else {
                q->result = reg[q->key] == q->a;
                if (q->result) {
                    reg[q->key] = q->b;
                }
            }
            q->phase = 2;
            continue;
        }
        if (q->f != 0 && rand() % 40 == 0) {
            /* Took effect, but the client never learned. */
            fprintf(f, "{:type :info, :process %lld, :f :%s, :value nil}\n", (long long)q->id,
                    fname);
            q->id += PROCS;
        } else if (q->f == 0) {
            if (q->result < 0) {
                snprintf(v, sizeof(v), "[%d nil]", q->key);
            } else {
                snprintf(v, sizeof(v), "[%d %lld]", q->key, (long long)q->result);
            }
            fprintf(f, "{:type :ok, :process %lld, :f :read, :value %s}\n", (long long)q->id, v);
        } else if (q->f == 1) {
            fprintf(f, "{:type :ok, :process %lld, :f :write, :value [%d %lld]}\n",
                    (long long)q->id, q->key, (long long)q->a);
        } else {
            fprintf(f, "{:type :%s, :process %lld, :f :cas, :value [%d [%lld %lld]]}\n",
                    q->result ? "ok" : "fail", (long long)q->id, q->key, (long long)q->a,
                    (long long)q->b);
        }
        q->phase = 0;
        busy--;
    }
    fclose(f);
    free(reg);
    free(left);
    return text;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_register_large_valid_history(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 3; seed++) {
        size_t n_ops;
        char *text = generate(seed, 20, 200, 5, &n_ops);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct check_result r;
        enum check_verdict v = reg(text, NULL, &r);
        double s = seconds_since(&t0);
        print_message("seed %u: %zu ops on 20 keys, 5 processes: %s in %.3f s\n  %s", seed, n_ops,
                      check_verdict_name(v), s, r.text);
        assert_int_equal(v, CHECK_VALID);
        assert_true(s < 1.0);
        check_result_free(&r);
        free(text);
    }
}

/* Not a bound, a measurement: harder shapes than the harness produces. */
static void test_register_stress_measure(void **state)
{
    (void)state;
    const int shapes[][3] = {{1, 200, 5}, {1, 1000, 10}, {1, 2000, 20}};
    for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        size_t n_ops;
        char *text = generate(11, shapes[k][0], shapes[k][1], shapes[k][2], &n_ops);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct check_result r;
        enum check_verdict v = reg(text, NULL, &r);
        print_message("1 key, %d ops, %d processes: %s in %.3f s\n  %s", shapes[k][1], shapes[k][2],
                      check_verdict_name(v), seconds_since(&t0), r.text);
        assert_int_equal(v, CHECK_VALID);
        check_result_free(&r);
        free(text);
    }
}

static void test_register_corrupted_large_history(void **state)
{
    (void)state;
    /* The same history with one read's answer changed must fail. */
    size_t n_ops;
    char *text = generate(7, 5, 200, 5, &n_ops);
    char *at = strstr(text + strlen(text) / 2, "{:type :ok, :process");
    while (at != NULL && strncmp(strstr(at, ":f :") + 4, "read", 4) != 0) {
        at = strstr(at + 1, "{:type :ok, :process");
    }
    assert_non_null(at);
    char *val = strstr(at, ":value [") + 8;
    val = strchr(val, ' ') + 1; /* the value read */
    memcpy(val, "999999", 6 < strcspn(val, "]") ? 6 : strcspn(val, "]"));
    struct check_result r;
    assert_int_equal(reg(text, NULL, &r), CHECK_INVALID);
    check_result_free(&r);
    free(text);
}

static void test_register_limit_is_failure(void **state)
{
    (void)state;
    /* 20 concurrent writes, then a read of a value none wrote: the search
     * must try every subset of writes before it can say no. */
    char *text = NULL;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    for (int k = 0; k < 20; k++) {
        fprintf(f, "{:type :invoke, :process %d, :f :write, :value [1 %d]}\n", k, k);
    }
    for (int k = 0; k < 20; k++) {
        fprintf(f, "{:type :ok, :process %d, :f :write, :value [1 %d]}\n", k, k);
    }
    fprintf(f, "{:type :invoke, :process 0, :f :read, :value [1 nil]}\n");
    fprintf(f, "{:type :ok, :process 0, :f :read, :value [1 99]}\n");
    fclose(f);
    struct register_opts opts = {.steps_max = 10000};
    struct check_result r;
    assert_int_equal(reg(text, &opts, &r), CHECK_UNKNOWN);
    assert_int_equal(r.anomalies[ANOMALY_LIMIT], 1);
    assert_non_null(strstr(r.text, "limit hit"));
    check_result_free(&r);
    free(text);
}

/* --- set ---------------------------------------------------------------- */

static void test_set(void **state)
{
    (void)state;
    struct check_result r;
    const char *valid = INV(0, "add", "1") OK(0, "add", "1") INV(1, "add", "2") INFO(1, "add", "2")
        INV(2, "add", "3") INFO(2, "add", "3") INV(0, "add", "4") FAIL(0, "add", "4")
            INV(0, "read", "nil") OK(0, "read", "#{1 3}");
    assert_int_equal(set_check(valid, &r), CHECK_VALID);
    assert_non_null(strstr(r.json, "\"info_present\":1"));
    check_result_free(&r);

    const char *lost = INV(0, "add", "1") OK(0, "add", "1") INV(0, "add", "2") OK(0, "add", "2")
        INV(0, "read", "nil") OK(0, "read", "[2]");
    assert_int_equal(set_check(lost, &r), CHECK_INVALID);
    assert_int_equal(r.anomalies[ANOMALY_LOST], 1);
    assert_non_null(strstr(r.json, "\"lost\":[1]"));
    check_result_free(&r);

    const char *unexpected = INV(0, "add", "1") OK(0, "add", "1") INV(0, "add", "4")
        FAIL(0, "add", "4") INV(0, "read", "nil") OK(0, "read", "#{1 4 5}");
    assert_int_equal(set_check(unexpected, &r), CHECK_INVALID);
    assert_int_equal(r.anomalies[ANOMALY_UNEXPECTED], 2);
    check_result_free(&r);

    const char *no_read =
        INV(0, "add", "1") OK(0, "add", "1") INV(0, "read", "nil") INFO(0, "read", "nil");
    assert_int_equal(set_check(no_read, &r), CHECK_INVALID);
    assert_int_equal(r.anomalies[ANOMALY_NO_FINAL_READ], 1);
    check_result_free(&r);
}

/* --- watch -------------------------------------------------------------- */

/* Committed: rev 1 a=1; rev 2 b=x; rev 3 a=2 and c=z (a transaction);
 * rev 4 del b; rev 5 a=3. */
static const char *committed = "event\tlog\t1\ta\tput\t1\n"
                               "event\tlog\t2\tb\tput\tx\n"
                               "event\tlog\t3\ta\tput\t2\n"
                               "event\tlog\t3\tc\tput\tz\n"
                               "event\tlog\t4\tb\tdel\t-\n"
                               "event\tlog\t5\ta\tput\t3\n";

static void test_watch_valid(void **state)
{
    (void)state;
    struct check_result r;
    const char *w = "# two watchers, interleaved\n"
                    "watch\tw1\t1\tprefix\t\n"
                    "watch\tw2\t3\tkey\ta\n"
                    "update\tw1\tevents\t2\n"
                    "event\tw1\t1\ta\tput\t1\n"
                    "update\tw2\tevents\t3\n"
                    "event\tw2\t3\ta\tput\t2\n"
                    "event\tw1\t2\tb\tput\tx\n"
                    "update\tw1\tevents\t3\n"
                    "event\tw1\t3\ta\tput\t2\n"
                    "event\tw1\t3\tc\tput\tz\n"
                    "update\tw2\tprogress\t4\n"
                    "update\tw1\tsnapshot\t4\n"
                    "kv\tw1\ta\t2\n"
                    "kv\tw1\tc\tz\n"
                    "update\tw1\tevents\t5\n"
                    "event\tw1\t5\ta\tput\t3\n"
                    "update\tw2\tevents\t5\n"
                    "event\tw2\t5\ta\tput\t3\n";
    assert_int_equal(watch(w, committed, &r), CHECK_VALID);
    check_result_free(&r);
}

static void expect_watch(const char *w, enum check_anomaly kind)
{
    struct check_result r;
    assert_int_equal(watch(w, committed, &r), CHECK_INVALID);
    if (r.anomalies[kind] == 0) {
        print_error("expected %s:\n%s", check_anomaly_name(kind), r.text);
        fail();
    }
    check_result_free(&r);
}

static void test_watch_gap(void **state)
{
    (void)state;
    expect_watch("watch\tw\t1\tprefix\t\n"
                 "update\tw\tevents\t1\n"
                 "event\tw\t1\ta\tput\t1\n"
                 "update\tw\tevents\t3\n" /* revision 2 skipped */
                 "event\tw\t3\ta\tput\t2\n"
                 "event\tw\t3\tc\tput\tz\n",
                 ANOMALY_GAP);
    /* A progress update vouches for what precedes it. */
    expect_watch("watch\tw\t4\tkey\tb\n"
                 "update\tw\tprogress\t5\n",
                 ANOMALY_GAP);
}

static void test_watch_duplicate(void **state)
{
    (void)state;
    expect_watch("watch\tw\t1\tkey\ta\n"
                 "update\tw\tevents\t1\n"
                 "event\tw\t1\ta\tput\t1\n"
                 "update\tw\tevents\t3\n"
                 "event\tw\t3\ta\tput\t2\n"
                 "update\tw\tevents\t3\n"
                 "event\tw\t3\ta\tput\t2\n",
                 ANOMALY_DUPLICATE);
}

static void test_watch_reorder(void **state)
{
    (void)state;
    expect_watch("watch\tw\t1\tkey\ta\n"
                 "update\tw\tevents\t3\n"
                 "event\tw\t3\ta\tput\t2\n"
                 "update\tw\tevents\t1\n"
                 "event\tw\t1\ta\tput\t1\n",
                 ANOMALY_REORDER);
}

static void test_watch_split_transaction(void **state)
{
    (void)state;
    expect_watch("watch\tw\t3\tprefix\t\n"
                 "update\tw\tevents\t3\n"
                 "event\tw\t3\ta\tput\t2\n"
                 "update\tw\tevents\t3\n"
                 "event\tw\t3\tc\tput\tz\n",
                 ANOMALY_SPLIT);
    /* Half a transaction and nothing more is a mismatch. */
    expect_watch("watch\tw\t3\tprefix\t\n"
                 "update\tw\tevents\t3\n"
                 "event\tw\t3\ta\tput\t2\n",
                 ANOMALY_MISMATCH);
}

static void test_watch_wrong_value(void **state)
{
    (void)state;
    expect_watch("watch\tw\t4\tprefix\t\n"
                 "update\tw\tevents\t4\n"
                 "event\tw\t4\tb\tput\tx\n", /* a delete delivered as a put */
                 ANOMALY_MISMATCH);
    expect_watch("watch\tw\t5\tkey\ta\n"
                 "update\tw\tevents\t5\n"
                 "event\tw\t5\ta\tput\t%33%34\n", /* "34", not "3" */
                 ANOMALY_MISMATCH);
    expect_watch("watch\tw\t1\tkey\ta\n" /* a snapshot with a stale value */
                 "update\tw\tsnapshot\t3\n"
                 "kv\tw\ta\t1\n",
                 ANOMALY_SNAPSHOT);
    expect_watch("watch\tw\t1\tkey\ta\n"
                 "update\tw\tevents\t5\n"
                 "event\tw\t1\ta\tput\t1\n",
                 ANOMALY_BAD_UPDATE);
}

static void test_watch_malformed(void **state)
{
    (void)state;
    struct check_result r;
    char err[256];
    const char *bad[] = {"update\tw\tevents\t1\n",
                         "watch\tw\t1\tkey\n",
                         "watch\tw\t1\tkey\ta\nevent\tw\t1\ta\tput\t1\n",
                         "watch\tw\t1\tkey\ta\nupdate\tw\tevents\tx\n",
                         "watch\tw\t1\tkey\t%4\n",
                         "bogus\n"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        assert_int_equal(check_watch_text(bad[k], strlen(bad[k]), committed, strlen(committed), &r,
                                          err, sizeof(err)),
                         -1);
        assert_non_null(strstr(err, "watch log:"));
    }
    const char *dup = "event\tlog\t1\ta\tput\t1\nevent\tlog\t1\ta\tput\t2\n";
    assert_int_equal(check_watch_text("", 0, dup, strlen(dup), &r, err, sizeof(err)), -1);
}

/* --- stale reads (read lines of the watch log) ------------------------- */

/* The committed log above, complete up to revision 7 (6 and 7 changed no
 * key of the log). */
static const char *committed_final = "event\tlog\t1\ta\tput\t1\n"
                                     "event\tlog\t2\tb\tput\tx\n"
                                     "event\tlog\t3\ta\tput\t2\n"
                                     "event\tlog\t3\tc\tput\tz\n"
                                     "event\tlog\t4\tb\tdel\t-\n"
                                     "event\tlog\t5\ta\tput\t3\n"
                                     "final\tlog\t7\n";

static void expect_stale_read(const char *w, const char *clog)
{
    struct check_result r;
    assert_int_equal(watch(w, clog, &r), CHECK_INVALID);
    if (r.anomalies[ANOMALY_STALE_READ] == 0) {
        print_error("expected a stale-read anomaly:\n%s", r.text);
        fail();
    }
    check_result_free(&r);
}

static void test_stale_reads_valid(void **state)
{
    (void)state;
    struct check_result r;
    /* Each read shows the committed state at its own revision, however old:
     * that is all a stale read promises. */
    const char *w = "read\tn1\t2\ta\t1\t1\t5\n"  /* 3 revisions behind a known write */
                    "read\tn1\t4\tb\t-\t0\t4\n"  /* deleted at 4 */
                    "read\tn1\t3\tb\tx\t2\t0\n"  /* a restarted node: back to 3 */
                    "read\tn2\t7\ta\t3\t5\t0\n"  /* the final revision */
                    "read\tn2\t3\td\t-\t0\t0\n"  /* a key never written */
                    "read\tn2\t1\tc\t-\t0\t0\n"; /* before its first put */
    assert_int_equal(watch(w, committed_final, &r), CHECK_VALID);
    assert_int_equal(r.anomalies[ANOMALY_STALE_READ], 0);
    assert_non_null(strstr(r.text, "reader n1: 3 reads (1 absent), 1 behind by up to 3"));
    assert_non_null(strstr(r.text, "revision went back 1 times"));
    assert_non_null(strstr(r.json, "\"reads\":6"));
    assert_non_null(strstr(r.json, "\"stale-read\":0"));
    check_result_free(&r);
}

static void test_stale_reads_invalid(void **state)
{
    (void)state;
    /* A value that is not the key's at the read's revision: a=2 came at 3. */
    expect_stale_read("read\tn1\t2\ta\t2\t3\t0\n", committed_final);
    /* The right value with the wrong mod_revision. */
    expect_stale_read("read\tn1\t5\ta\t3\t4\t0\n", committed_final);
    /* A deleted key still read. */
    expect_stale_read("read\tn1\t4\tb\tx\t2\t0\n", committed_final);
    /* A key read absent that existed. */
    expect_stale_read("read\tn1\t3\tc\t-\t0\t0\n", committed_final);
    /* A revision from the future: beyond the final revision... */
    expect_stale_read("read\tn1\t8\ta\t3\t5\t0\n", committed_final);
    /* ... or, without one, beyond the newest committed event. */
    expect_stale_read("read\tn1\t6\ta\t3\t5\t0\n", committed);
    /* The report names the reader and the line. */
    struct check_result r;
    assert_int_equal(watch("read\tn3\t2\ta\t2\t3\t0\n", committed_final, &r), CHECK_INVALID);
    assert_non_null(strstr(r.text, "reader n3: stale-read at revision 2 (watch log line 1)"));
    assert_non_null(strstr(r.json, "\"reader\":\"n3\",\"kind\":\"stale-read\""));
    check_result_free(&r);
}

static void test_watch_behind_final(void **state)
{
    (void)state;
    struct check_result r;
    const char *stuck = "watch\tw\t5\tkey\ta\n"
                        "update\tw\tevents\t5\n"
                        "event\tw\t5\ta\tput\t3\n";
    assert_int_equal(watch(stuck, committed_final, &r), CHECK_INVALID);
    assert_true(r.anomalies[ANOMALY_BEHIND] > 0);
    check_result_free(&r);
    /* Caught up by a progress update: valid. */
    char caught[256];
    snprintf(caught, sizeof(caught), "%supdate\tw\tprogress\t7\n", stuck);
    assert_int_equal(watch(caught, committed_final, &r), CHECK_VALID);
    check_result_free(&r);
    /* Ended by the harness: no final revision expected. */
    snprintf(caught, sizeof(caught), "%sended\tw\t5\n", stuck);
    assert_int_equal(watch(caught, committed_final, &r), CHECK_VALID);
    check_result_free(&r);
}

static void test_stale_reads_malformed(void **state)
{
    (void)state;
    struct check_result r;
    char err[256];
    const char *bad[] = {"read\tn1\t2\ta\t1\t1\n",     /* 6 fields */
                         "read\tn1\tx\ta\t1\t1\t0\n",  /* revision */
                         "read\tn1\t2\ta\t%4\t1\t0\n", /* encoding */
                         "read\t\t2\ta\t1\t1\t0\n",    /* reader */
                         "final\tlog\t7\n",            /* in the watch log */
                         "watch\tw\t1\tkey\ta\nended\tw\t0\nupdate\tw\tprogress\t1\n"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        assert_int_equal(check_watch_text(bad[k], strlen(bad[k]), committed_final,
                                          strlen(committed_final), &r, err, sizeof(err)),
                         -1);
        assert_non_null(strstr(err, "watch log:"));
    }
    const char *twice = "final\tlog\t7\nfinal\tlog\t8\n";
    assert_int_equal(check_watch_text("", 0, twice, strlen(twice), &r, err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edn_subset),
        cmocka_unit_test(test_edn_malformed),
        cmocka_unit_test(test_history_errors_name_the_line),
        cmocka_unit_test(test_register_valid_sequential),
        cmocka_unit_test(test_register_stale_read),
        cmocka_unit_test(test_register_lost_write),
        cmocka_unit_test(test_register_nonlinearizable_cas),
        cmocka_unit_test(test_register_info_ops),
        cmocka_unit_test(test_register_concurrent),
        cmocka_unit_test(test_register_large_valid_history),
        cmocka_unit_test(test_register_stress_measure),
        cmocka_unit_test(test_register_corrupted_large_history),
        cmocka_unit_test(test_register_limit_is_failure),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_watch_valid),
        cmocka_unit_test(test_watch_gap),
        cmocka_unit_test(test_watch_duplicate),
        cmocka_unit_test(test_watch_reorder),
        cmocka_unit_test(test_watch_split_transaction),
        cmocka_unit_test(test_watch_wrong_value),
        cmocka_unit_test(test_watch_malformed),
        cmocka_unit_test(test_stale_reads_valid),
        cmocka_unit_test(test_stale_reads_invalid),
        cmocka_unit_test(test_watch_behind_final),
        cmocka_unit_test(test_stale_reads_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
