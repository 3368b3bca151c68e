/*
 * it_metrics: every node answers the METRICS request with Prometheus text
 * whose series agree with what the test did to a real 3-node cluster.
 *
 * The nodes snapshot every 64 entries (it_small_snapshot_flags). The test
 * watches a prefix on one follower, writes PUTS keys at the leader, makes
 * one write through the other follower (which redirects it), reads (some
 * linearizable, one range, one at a future revision, one stale at a
 * follower), then checks on each node:
 *
 *  - the text is well-formed exposition format 0.0.4: HELP and TYPE before
 *    the samples of each family, valid names, quoted labels, numbers;
 *  - requests by op and result: the leader counted exactly the puts, gets
 *    and errors it answered, the follower the redirect ("notleader"), and
 *    the latency histogram of each op holds as many observations as its
 *    counters, in non-decreasing buckets ending at +Inf;
 *  - Raft: exactly one node has is_leader 1 (the leader), every node the
 *    same term and applied index, and saw at least one leader change;
 *  - the key space: keys and revision as written, equal on every node;
 *  - the watch: one watcher on its follower, which sent every event;
 *  - snapshots: the counter rose on every node with the writes, matching
 *    its duration histogram; a restarted follower counts a restore.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define PUTS 200
#define GETS 25
#define WAIT_MS 15000

static atomic_ulong g_events;

static void watch_cb(cairn_watcher *w, const struct cairn_watch_update *u, void *arg)
{
    (void)w;
    (void)arg;
    if (u->kind == CAIRN_WATCH_EVENTS) {
        atomic_fetch_add(&g_events, u->n_events);
    }
}

/* The metrics of node id, asked for by its address. */
static char *fetch(struct it_cluster *c, cairn_client *client, unsigned id)
{
    char *text = NULL;
    size_t len = 0;
    IT_ASSERT_OK(cairn_metrics_text(client, it_node(c, id)->client_addr, &text, &len), client);
    IT_ASSERT(text != NULL && strlen(text) == len, "node %u: text of %zu bytes", id, len);
    return text;
}

/* The value of the sample named exactly `series` (a name, with its labels
 * if any), or -1 when the text has none. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *p = text;
    while (p != NULL && *p != '\0') {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            return strtod(p + n + 1, NULL);
        }
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    return -1;
}

static double must(const char *text, unsigned id, const char *series)
{
    double v = sample(text, series);
    IT_ASSERT(v >= 0, "node %u has no sample %s", id, series);
    return v;
}

static bool name_char(char ch, bool first)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':' ||
           (!first && ch >= '0' && ch <= '9');
}

/* Length of the metric name at p (0: none). */
static size_t name_len(const char *p)
{
    size_t n = 0;
    while (name_char(p[n], n == 0)) {
        n++;
    }
    return n;
}

/* Check the exposition format line by line: comments are "# HELP name
 * text" or "# TYPE name type", and every sample belongs to the family
 * last typed (a histogram's with _bucket, _sum or _count), with labels
 * name="value" (escapes \\, \" and \n only) and a number. */
static void check_format(const char *text, unsigned id)
{
    char family[160] = "";
    char type[16] = "";
    const char *line = text;
    unsigned samples = 0;
    IT_ASSERT(text[0] != '\0' && text[strlen(text) - 1] == '\n', "node %u: text ends a line", id);
    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        const char *p = line;
        size_t n;
        char *num_end;
        IT_ASSERT(end != NULL && end > line, "node %u: empty or open line", id);
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
            n = name_len(line + 7);
            IT_ASSERT(n > 0 && n < sizeof(family) && line[7 + n] == ' ',
                      "node %u: bad comment %.*s", id, (int)(end - line), line);
            if (line[2] == 'T') {
                IT_ASSERT(strncmp(line + 7, family, n) == 0 && family[n] == '\0',
                          "node %u: TYPE without HELP just before: %.*s", id, (int)(end - line),
                          line);
                IT_FORMAT(type, "%.*s", (int)(end - (line + 8 + n)), line + 8 + n);
                IT_ASSERT(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                              strcmp(type, "histogram") == 0,
                          "node %u: type %s", id, type);
            } else {
                memcpy(family, line + 7, n);
                family[n] = '\0';
                type[0] = '\0';
            }
            line = end + 1;
            continue;
        }
        IT_ASSERT(line[0] != '#', "node %u: stray comment %.*s", id, (int)(end - line), line);
        n = name_len(p);
        IT_ASSERT(type[0] != '\0' && strncmp(p, family, strlen(family)) == 0,
                  "node %u: sample outside its family (%s): %.*s", id, family, (int)(end - line),
                  line);
        if (strcmp(type, "histogram") == 0) {
            const char *suffix = p + strlen(family);
            IT_ASSERT(strncmp(suffix, "_bucket", 7) == 0 || strncmp(suffix, "_sum", 4) == 0 ||
                          strncmp(suffix, "_count", 6) == 0,
                      "node %u: histogram sample %.*s", id, (int)(end - line), line);
        } else {
            IT_ASSERT(n == strlen(family), "node %u: sample %.*s", id, (int)(end - line), line);
        }
        p += n;
        if (*p == '{') {
            p++;
            while (*p != '}') {
                size_t ln = name_len(p);
                IT_ASSERT(ln > 0 && p[ln] == '=' && p[ln + 1] == '"', "node %u: label in %.*s", id,
                          (int)(end - line), line);
                p += ln + 2;
                while (*p != '"') {
                    IT_ASSERT(p < end, "node %u: open label value in %.*s", id, (int)(end - line),
                              line);
                    if (*p == '\\') {
                        IT_ASSERT(p[1] == '\\' || p[1] == '"' || p[1] == 'n', "node %u: escape",
                                  id);
                        p++;
                    }
                    p++;
                }
                p++;
                IT_ASSERT(*p == ',' || *p == '}', "node %u: labels in %.*s", id, (int)(end - line),
                          line);
                if (*p == ',') {
                    p++;
                }
            }
            p++;
        }
        IT_ASSERT(*p == ' ', "node %u: no value in %.*s", id, (int)(end - line), line);
        p++;
        if (strncmp(p, "NaN\n", 4) != 0 && strncmp(p, "+Inf\n", 5) != 0 &&
            strncmp(p, "-Inf\n", 5) != 0) {
            strtod(p, &num_end);
            IT_ASSERT(num_end == end, "node %u: value of %.*s", id, (int)(end - line), line);
        }
        samples++;
        line = end + 1;
    }
    IT_ASSERT(samples > 20, "node %u: only %u samples", id, samples);
}

/* The histogram of op on one node: cumulative buckets that never decrease,
 * +Inf equal to the count; returns the count. */
static double check_histogram(const char *text, unsigned id, const char *name, const char *labels)
{
    const char *p = text;
    char prefix[200];
    char series[240];
    double last = 0;
    double count;
    double inf;
    unsigned buckets = 0;
    IT_FORMAT(prefix, "%s_bucket{%s,le=\"", name, labels);
    while ((p = strstr(p, prefix)) != NULL) {
        const char *space = strchr(p, ' ');
        double v = strtod(space + 1, NULL);
        IT_ASSERT(v >= last, "node %u: %s buckets decrease", id, name);
        last = v;
        buckets++;
        p = space;
    }
    IT_ASSERT(buckets >= 2, "node %u: %s{%s} has %u buckets", id, name, labels, buckets);
    IT_FORMAT(series, "%s_bucket{%s,le=\"+Inf\"}", name, labels);
    inf = must(text, id, series);
    IT_FORMAT(series, "%s_count{%s}", name, labels);
    count = must(text, id, series);
    IT_ASSERT(inf == count && last == count, "node %u: %s{%s}: +Inf %g, count %g", id, name, labels,
              inf, count);
    IT_FORMAT(series, "%s_sum{%s}", name, labels);
    IT_ASSERT(count == 0 || must(text, id, series) > 0, "node %u: %s{%s} sums to nothing", id, name,
              labels);
    return count;
}

static double requests(const char *text, const char *op, const char *result)
{
    char series[128];
    double v;
    snprintf(series, sizeof(series), "cairn_requests_total{op=\"%s\",result=\"%s\"}", op, result);
    v = sample(text, series);
    return v < 0 ? 0 : v; /* a pair that never occurred has no series */
}

/* Snapshots taken by node id, once they match their duration histogram. */
static double snapshots_taken(const char *text, unsigned id)
{
    double taken = must(text, id, "cairn_snapshots_total{kind=\"taken\"}");
    double timed = check_histogram(text, id, "cairn_snapshot_duration_seconds", "kind=\"taken\"");
    IT_ASSERT(taken == timed, "node %u: %g snapshots taken, %g timed", id, taken, timed);
    return taken;
}

int main(void)
{
    struct it_cluster *c;
    cairn_client *admin;
    cairn_client *at_leader;
    cairn_client *at_watch_node;
    cairn_client *at_other;
    cairn_watcher *watcher = NULL;
    struct cairn_watch_opts wopts;
    struct cairn_get_opts gopts;
    struct cairn_result *r = NULL;
    char *text[IT_NODES_MAX + 1];
    double snapshots_before[IT_NODES_MAX + 1];
    double term = -1;
    double applied = -1;
    unsigned leader;
    unsigned watch_node;
    unsigned other;
    unsigned leaders;
    uint64_t revision;
    unsigned i;
    char key[64];
    char *bad = NULL;
    int64_t deadline;

    it_init("it_metrics", IT_TIMEOUT_S);
    c = it_cluster_new(3, it_small_snapshot_flags);
    leader = it_cluster_start(c);
    watch_node = leader == 1 ? 2 : 1;
    other = 6 - leader - watch_node;
    admin = it_client(c, 0, 5000);
    at_leader = it_client(c, leader, 5000);
    at_watch_node = it_client(c, watch_node, 5000);
    at_other = it_client(c, other, 5000);

    /* A bad endpoint is refused before anything is sent. */
    IT_ASSERT(cairn_metrics_text(admin, "no-port", &bad, NULL) == CAIRN_EINVAL && bad == NULL,
              "bad endpoint refused");

    for (i = 1; i <= c->n; i++) {
        text[i] = fetch(c, admin, i);
        check_format(text[i], i);
        snapshots_before[i] = snapshots_taken(text[i], i);
        free(text[i]);
    }

    memset(&wopts, 0, sizeof(wopts));
    wopts.prefix = true;
    IT_ASSERT_OK(cairn_watch(at_watch_node, "m/", 2, &wopts, watch_cb, NULL, &watcher),
                 at_watch_node);
    for (i = 0; i < PUTS; i++) {
        IT_FORMAT(key, "m/%04u", i);
        IT_ASSERT_OK(cairn_put(at_leader, key, strlen(key), "v", 1, NULL, NULL), at_leader);
    }
    /* Through the other follower: it answers "not the leader", and the
     * library follows the redirect to the leader. */
    IT_ASSERT_OK(cairn_put(at_other, "m/redirected", 12, "v", 1, NULL, &r), at_other);
    revision = r->revision;
    cairn_result_free(r);
    for (i = 0; i < GETS; i++) {
        IT_ASSERT_OK(cairn_get(at_leader, "m/0001", 6, NULL, NULL), at_leader);
    }
    memset(&gopts, 0, sizeof(gopts));
    gopts.prefix = true;
    gopts.limit = 10;
    IT_ASSERT_OK(cairn_get(at_leader, "m/", 2, &gopts, NULL), at_leader);
    memset(&gopts, 0, sizeof(gopts));
    gopts.revision = revision + 1000;
    IT_ASSERT(cairn_get(at_leader, "m/0001", 6, &gopts, NULL) == CAIRN_EFUTUREREV,
              "a read in the future fails");
    memset(&gopts, 0, sizeof(gopts));
    gopts.stale = true;
    IT_ASSERT_OK(cairn_get(at_watch_node, "m/0001", 6, &gopts, NULL), at_watch_node);
    {
        /* A backup status (answered without --backup-url too) counts as
         * op="backup", not as an invalid frame. */
        char *json = NULL;
        IT_ASSERT_OK(cairn_backup(at_leader, "status", &json, NULL), at_leader);
        free(json);
    }

    deadline = it_now_ms() + WAIT_MS;
    while (atomic_load(&g_events) < PUTS + 1 && it_now_ms() < deadline) {
        it_sleep_ms(20);
    }
    IT_ASSERT(atomic_load(&g_events) == PUTS + 1, "the watch saw %lu of %d events",
              atomic_load(&g_events), PUTS + 1);
    IT_ASSERT(it_wait_converged(c, WAIT_MS) == revision, "converged at the last write");

    /* Snapshots are written off the loop: wait until every node took one
     * more than before the writes (64 entries each, more than 200 written). */
    deadline = it_now_ms() + WAIT_MS;
    for (i = 1; i <= c->n; i++) {
        double taken;
        for (;;) {
            text[i] = fetch(c, admin, i);
            taken = snapshots_taken(text[i], i);
            if (taken > snapshots_before[i] || it_now_ms() > deadline) {
                break;
            }
            free(text[i]);
            it_sleep_ms(50);
        }
        IT_ASSERT(taken > snapshots_before[i], "node %u took no snapshot (%g before, %g now)", i,
                  snapshots_before[i], taken);
        it_log("node %u: %g snapshots taken", i, taken);
    }

    leaders = 0;
    for (i = 1; i <= c->n; i++) {
        const char *t = text[i];
        double is_leader;
        check_format(t, i);
        is_leader = must(t, i, "cairn_raft_is_leader");
        IT_ASSERT(is_leader == (i == leader ? 1 : 0), "node %u: is_leader %g", i, is_leader);
        leaders += is_leader == 1;
        if (term < 0) {
            term = must(t, i, "cairn_raft_term");
            applied = must(t, i, "cairn_raft_applied_index");
        }
        IT_ASSERT(must(t, i, "cairn_raft_term") == term && term >= 1, "node %u: term", i);
        IT_ASSERT(must(t, i, "cairn_raft_applied_index") == applied, "node %u: applied", i);
        IT_ASSERT(must(t, i, "cairn_raft_commit_index") >= applied, "node %u: commit", i);
        IT_ASSERT(must(t, i, "cairn_raft_last_index") >= applied, "node %u: last index", i);
        IT_ASSERT(applied > PUTS, "applied index %g covers the writes", applied);
        IT_ASSERT(must(t, i, "cairn_raft_leader_changes_total") >= 1, "node %u saw a leader", i);
        /* Sequential puts: after each commit nothing else carries it to the
         * followers, so the leader sends notices. */
        IT_ASSERT(i != leader || must(t, i, "cairn_raft_commit_notices_total") >= 1,
                  "leader %u sent no commit notice", i);
        IT_ASSERT(must(t, i, "cairn_raft_early_commits_total") >= 0, "node %u: early commits", i);
        IT_ASSERT(must(t, i, "cairn_revision") == (double)revision, "node %u: revision", i);
        IT_ASSERT(must(t, i, "cairn_keys") == PUTS + 1, "node %u: keys", i);
        IT_ASSERT(must(t, i, "cairn_bytes") >= (PUTS + 1) * 7, "node %u: bytes", i);
        IT_ASSERT(must(t, i, "cairn_compact_revision") == 0, "node %u: compact revision", i);
        IT_ASSERT(must(t, i, "cairn_client_connections") >= 1, "node %u: connections", i);
        IT_ASSERT(must(t, i, "cairn_client_connections_total") >= 1, "node %u: accepted", i);
        IT_ASSERT(must(t, i, "cairn_watch_queue_events") >= 0, "node %u: queue", i);
        IT_ASSERT(must(t, i, "process_resident_memory_bytes") > 1e6, "node %u: rss", i);
        IT_ASSERT(must(t, i, "cairn_build_info{version=\"0.1\"}") == 1, "node %u: build info", i);
        /* Every op seen has as many latencies as answers. */
        {
            static const char *const ops[] = {"put", "get", "range", "watch", "metrics"};
            static const char *const results[] = {"ok", "notleader", "futurerev"};
            size_t o;
            size_t k;
            for (o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
                char labels[64];
                double answered = 0;
                for (k = 0; k < sizeof(results) / sizeof(results[0]); k++) {
                    answered += requests(t, ops[o], results[k]);
                }
                if (answered == 0) {
                    continue;
                }
                IT_FORMAT(labels, "op=\"%s\"", ops[o]);
                IT_ASSERT(check_histogram(t, i, "cairn_request_duration_seconds", labels) ==
                              answered,
                          "node %u: op %s: latencies and answers differ", i, ops[o]);
            }
        }
        /* A METRICS request is counted once answered: this text shows the
         * earlier ones. */
        IT_ASSERT(requests(t, "metrics", "ok") >= 1, "node %u counted its metrics requests", i);
    }
    IT_ASSERT(leaders == 1, "exactly one leader (%u)", leaders);

    /* The leader answered every write and read; the followers none. */
    IT_ASSERT(requests(text[leader], "put", "ok") == PUTS + 1, "leader: %g puts",
              requests(text[leader], "put", "ok"));
    IT_ASSERT(requests(text[leader], "get", "ok") == GETS, "leader: gets");
    IT_ASSERT(requests(text[leader], "range", "ok") == 1, "leader: range");
    IT_ASSERT(requests(text[leader], "get", "futurerev") == 1, "leader: future read");
    IT_ASSERT(requests(text[leader], "backup", "ok") == 1, "leader: %g backup requests",
              requests(text[leader], "backup", "ok"));
    IT_ASSERT(requests(text[leader], "invalid", "ok") == 0, "leader: a request counted invalid");
    IT_ASSERT(must(text[leader], leader, "cairn_read_barriers_total") >= 1, "leader: barriers");
    IT_ASSERT(must(text[leader], leader, "cairn_linearizable_reads_total") >= GETS + 2,
              "leader: linearizable reads");
    IT_ASSERT(must(text[leader], leader, "cairn_writes_in_flight") == 0, "leader: writes done");
    IT_ASSERT(requests(text[other], "put", "notleader") == 1, "the follower redirected the write");
    IT_ASSERT(requests(text[other], "put", "ok") == 0, "the follower applied no write itself");
    IT_ASSERT(requests(text[watch_node], "put", "ok") == 0, "no write at the watch's node");
    IT_ASSERT(requests(text[watch_node], "get", "ok") == 1, "the stale read at the follower");

    /* The watch, served by its follower. */
    IT_ASSERT(must(text[watch_node], watch_node, "cairn_watchers") == 1, "one watcher");
    IT_ASSERT(must(text[watch_node], watch_node, "cairn_watchers_behind") == 0, "in sync");
    IT_ASSERT(must(text[watch_node], watch_node, "cairn_watch_events_total") >= PUTS + 1,
              "every event went out");
    IT_ASSERT(requests(text[watch_node], "watch", "ok") == 1, "the watch was created");
    IT_ASSERT(must(text[leader], leader, "cairn_watchers") == 0, "no watcher at the leader");
    for (i = 1; i <= c->n; i++) {
        free(text[i]);
    }

    /* A follower restarted from its snapshot counts a restore, and times
     * it. Asked through a new client of that node alone, with no endpoint
     * (at_other followed its redirect: it talks to the leader now). */
    IT_ASSERT(it_node_stop(c, other, 10000) == 0, "node %u stops cleanly", other);
    it_node_start(c, other);
    IT_ASSERT(it_wait_converged(c, WAIT_MS) == revision, "converged after the restart");
    cairn_client_free(at_other);
    at_other = it_client(c, other, 5000);
    {
        char *t = NULL;
        size_t len = 0;
        IT_ASSERT_OK(cairn_metrics_text(at_other, NULL, &t, &len), at_other);
        check_format(t, other);
        IT_ASSERT(must(t, other, "cairn_snapshots_total{kind=\"restored\"}") >= 1,
                  "the restart restored a snapshot");
        IT_ASSERT(
            check_histogram(t, other, "cairn_snapshot_duration_seconds", "kind=\"restored\"") ==
                must(t, other, "cairn_snapshots_total{kind=\"restored\"}"),
            "every restore timed");
        IT_ASSERT(must(t, other, "cairn_keys") == PUTS + 1, "the restarted node has every key");
        IT_ASSERT(requests(t, "put", "notleader") == 0, "counters start over with the process");
        free(t);
    }

    cairn_watch_cancel(watcher);
    cairn_client_free(at_other);
    cairn_client_free(at_watch_node);
    cairn_client_free(at_leader);
    cairn_client_free(admin);
    it_cluster_free(c);
    return 0;
}
