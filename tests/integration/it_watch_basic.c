/*
 * it_watch_basic: the watch API against a real 3-node cluster, without
 * faults (it_watch_faults and it_watch_slow cover those).
 *
 *  - a key watch started "now" sees puts and a delete with their revisions,
 *    versions and create revisions, and nothing of other keys;
 *  - a watch started at a past revision (queue mode) replays from there;
 *  - a prefix watch with prev_kv sees previous values, and each transaction
 *    (a multi-key txn, a prefix delete) arrives as one update;
 *  - after cairn_watch_cancel() returns, no callback runs, even from a
 *    callback that cancels its own watch; a callback may use the client's
 *    blocking calls, and cairn_watch() from a callback fails cleanly;
 *  - progress arrives on request and periodically, never going backwards;
 *  - many watches share one client; every node serves the same sequence;
 *  - prefer_followers picks a node that does not lead;
 *  - a queue-mode watch that is not drained stops its connection, and once
 *    drained delivers every event exactly once, in order;
 *  - with no node reachable, cairn_watch() fails with CAIRN_EUNAVAILABLE.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define EVENTS_MAX 4096
#define TEXT_MAX 48
#define WAIT_MS 15000
#define MANY_WATCHES 300
#define BACKPRESSURE_PUTS 400
#define BACKPRESSURE_VALUE_BYTES 1024

struct got
{
    uint64_t rev;
    enum cairn_event_type type;
    char key[TEXT_MAX];
    char value[TEXT_MAX];
    uint64_t create_rev;
    uint64_t version;
    bool has_prev;
    char prev[TEXT_MAX];
    uint64_t update; /* which update delivered it */
};

/* What one callback-mode watch delivered. */
struct rec
{
    const char *name;
    pthread_mutex_t mu;
    struct got events[EVENTS_MAX];
    size_t n;
    uint64_t updates;
    uint64_t progress;
    uint64_t progress_rev;
    uint64_t last_rev;
    uint64_t canceled;
    /* H: the self-canceling callback. */
    cairn_client *client;
    bool cancel_self;
    int watch_from_cb;
    int get_from_cb;
};

static void copy_text(char *dst, const char *src, size_t len)
{
    size_t n = len < TEXT_MAX - 1 ? len : TEXT_MAX - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void rec_init(struct rec *r, const char *name)
{
    memset(r, 0, sizeof(*r));
    r->name = name;
    pthread_mutex_init(&r->mu, NULL);
}

/* Record one update (callback or queue mode), checking the order rules. */
static void record(struct rec *r, const struct cairn_watch_update *u)
{
    size_t i;
    pthread_mutex_lock(&r->mu);
    r->updates++;
    switch (u->kind) {
        case CAIRN_WATCH_EVENTS:
            IT_ASSERT(u->n_events > 0, "%s: an EVENTS update without events", r->name);
            IT_ASSERT(u->revision > r->last_rev, "%s: events at %llu after %llu", r->name,
                      (unsigned long long)u->revision, (unsigned long long)r->last_rev);
            for (i = 0; i < u->n_events; i++) {
                const struct cairn_event *e = &u->events[i];
                struct got *g = &r->events[r->n];
                IT_ASSERT(r->n < EVENTS_MAX, "%s: too many events", r->name);
                IT_ASSERT(e->kv.mod_revision > r->last_rev ||
                              (r->n > 0 && e->kv.mod_revision == r->events[r->n - 1].rev &&
                               r->events[r->n - 1].update == r->updates),
                          "%s: event at %llu after %llu", r->name,
                          (unsigned long long)e->kv.mod_revision, (unsigned long long)r->last_rev);
                IT_ASSERT(e->kv.mod_revision <= u->revision, "%s: event past its update", r->name);
                IT_ASSERT((e->type == CAIRN_EVENT_DELETE) == e->kv.deleted,
                          "%s: event type and deleted flag disagree", r->name);
                g->rev = e->kv.mod_revision;
                g->type = e->type;
                copy_text(g->key, e->kv.key, e->kv.key_len);
                copy_text(g->value, e->kv.value, e->kv.value_len);
                g->create_rev = e->kv.create_revision;
                g->version = e->kv.version;
                g->has_prev = e->prev_kv != NULL;
                if (e->prev_kv != NULL) {
                    copy_text(g->prev, e->prev_kv->value, e->prev_kv->value_len);
                }
                g->update = r->updates;
                r->n++;
            }
            r->last_rev = u->revision;
            break;
        case CAIRN_WATCH_PROGRESS:
            IT_ASSERT(u->revision >= r->last_rev, "%s: progress at %llu after %llu", r->name,
                      (unsigned long long)u->revision, (unsigned long long)r->last_rev);
            r->progress++;
            r->progress_rev = u->revision;
            r->last_rev = u->revision;
            break;
        case CAIRN_WATCH_SNAPSHOT:
            it_fail(__FILE__, __LINE__, "snapshot", "%s: a snapshot without compaction", r->name);
        case CAIRN_WATCH_CANCELED:
            r->canceled++;
            it_log("%s: canceled: %s: %s", r->name, cairn_errname(u->error), u->message);
            break;
    }
    pthread_mutex_unlock(&r->mu);
}

static void watch_cb(cairn_watcher *w, const struct cairn_watch_update *u, void *arg)
{
    struct rec *r = arg;
    (void)w;
    record(r, u);
}

/* Cancels its own watch at its first event, after trying cairn_watch()
 * and a blocking read on the same client. */
static void self_cancel_cb(cairn_watcher *w, const struct cairn_watch_update *u, void *arg)
{
    struct rec *r = arg;
    cairn_watcher *other = NULL;
    struct cairn_result *res = NULL;
    if (u->kind != CAIRN_WATCH_EVENTS) {
        return;
    }
    record(r, u);
    r->watch_from_cb = cairn_watch(r->client, "wb/x", 4, NULL, watch_cb, r, &other);
    r->get_from_cb = cairn_get(r->client, "wb/self", 7, NULL, &res);
    cairn_result_free(res);
    cairn_watch_cancel(w);
    /* w is gone; the callback may still finish its own work. */
    pthread_mutex_lock(&r->mu);
    r->cancel_self = true;
    pthread_mutex_unlock(&r->mu);
}

static size_t rec_count(struct rec *r)
{
    size_t n;
    pthread_mutex_lock(&r->mu);
    n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void wait_events(struct rec *r, size_t n)
{
    int64_t deadline = it_now_ms() + WAIT_MS;
    while (rec_count(r) < n) {
        IT_ASSERT(it_now_ms() < deadline, "%s: %zu of %zu events within %d ms", r->name,
                  rec_count(r), n, WAIT_MS);
        it_sleep_ms(10);
    }
}

static uint64_t put(cairn_client *c, const char *key, const char *value)
{
    struct cairn_result *r = NULL;
    uint64_t rev;
    IT_ASSERT_OK(cairn_put(c, key, strlen(key), value, strlen(value), NULL, &r), c);
    rev = r->revision;
    cairn_result_free(r);
    return rev;
}

static uint64_t del(cairn_client *c, const char *key, bool prefix)
{
    struct cairn_del_opts o = {prefix, false};
    struct cairn_result *r = NULL;
    uint64_t rev;
    IT_ASSERT_OK(cairn_del(c, key, strlen(key), &o, &r), c);
    rev = r->revision;
    cairn_result_free(r);
    return rev;
}

static void check_event(const struct rec *r, size_t i, uint64_t rev, enum cairn_event_type type,
                        const char *key, const char *value, const char *prev)
{
    const struct got *g = &r->events[i];
    IT_ASSERT(i < r->n, "%s: no event %zu", r->name, i);
    IT_ASSERT(g->rev == rev && g->type == type && strcmp(g->key, key) == 0 &&
                  strcmp(g->value, value) == 0,
              "%s: event %zu is %s %s=\"%s\" at %llu, want %s %s=\"%s\" at %llu", r->name, i,
              g->type == CAIRN_EVENT_PUT ? "put" : "delete", g->key, g->value,
              (unsigned long long)g->rev, type == CAIRN_EVENT_PUT ? "put" : "delete", key, value,
              (unsigned long long)rev);
    if (prev == NULL) {
        IT_ASSERT(!g->has_prev, "%s: event %zu has a prev_kv (\"%s\")", r->name, i, g->prev);
    } else {
        IT_ASSERT(g->has_prev && strcmp(g->prev, prev) == 0,
                  "%s: event %zu's prev_kv is %s\"%s\", want \"%s\"", r->name, i,
                  g->has_prev ? "" : "missing ", g->prev, prev);
    }
}

/* The next update of a queue-mode watch that is not a PROGRESS. */
static struct cairn_watch_update *next_update(cairn_watcher *w, bool skip_progress)
{
    int64_t deadline = it_now_ms() + WAIT_MS;
    for (;;) {
        struct cairn_watch_update *u = NULL;
        int rv = cairn_watch_next(w, 200, &u);
        if (rv == 0 && (!skip_progress || u->kind != CAIRN_WATCH_PROGRESS)) {
            return u;
        }
        IT_ASSERT(rv == 0 || rv == CAIRN_ETIMEOUT, "cairn_watch_next: %s", cairn_errname(rv));
        cairn_watch_update_free(u);
        IT_ASSERT(it_now_ms() < deadline, "no update within %d ms", WAIT_MS);
    }
}

static struct rec g_key;
static struct rec g_prefix;
static struct rec g_progress;
static struct rec g_self;
static struct rec g_many;
static struct rec g_node[3];

static void phase_key_and_past(struct it_cluster *cl, cairn_client *c, unsigned leader)
{
    /* "Now" is the serving node's revision, and a follower may not have
     * applied the last put yet: watch through the leader, which has. */
    cairn_client *lc = it_client(cl, leader, 10000);
    cairn_watcher *w = NULL;
    cairn_watcher *q = NULL;
    struct cairn_watch_opts past;
    uint64_t r0;
    uint64_t r1;
    uint64_t r2;
    uint64_t r3;
    uint64_t at;
    size_t n = 0;

    rec_init(&g_key, "key watch");
    r0 = put(c, "wb/k", "before");
    IT_ASSERT_OK(cairn_watch(lc, "wb/k", 4, NULL, watch_cb, &g_key, &w), lc);
    at = cairn_watch_revision(w);
    IT_ASSERT(at >= r0, "a watch from now on the leader starts after %llu, before the put at %llu",
              (unsigned long long)at, (unsigned long long)r0);
    IT_ASSERT(cairn_watch_endpoint(w) != NULL, "a live watch has an endpoint");
    r1 = put(c, "wb/k", "v1");
    put(c, "wb/other", "x");
    r2 = put(c, "wb/k", "v2");
    r3 = del(c, "wb/k", false);
    IT_ASSERT(r1 > at, "first put at %llu, watch started after %llu", (unsigned long long)r1,
              (unsigned long long)at);
    wait_events(&g_key, 3);
    it_sleep_ms(200);
    IT_ASSERT(rec_count(&g_key) == 3, "%zu events for 3 changes of the key", rec_count(&g_key));
    check_event(&g_key, 0, r1, CAIRN_EVENT_PUT, "wb/k", "v1", NULL);
    check_event(&g_key, 1, r2, CAIRN_EVENT_PUT, "wb/k", "v2", NULL);
    check_event(&g_key, 2, r3, CAIRN_EVENT_DELETE, "wb/k", "", NULL);
    IT_ASSERT(g_key.events[1].version == g_key.events[0].version + 1, "versions %llu then %llu",
              (unsigned long long)g_key.events[0].version,
              (unsigned long long)g_key.events[1].version);
    IT_ASSERT(g_key.events[1].create_rev == g_key.events[0].create_rev,
              "one life of a key, one create revision");
    IT_ASSERT(cairn_watch_revision(w) == r3, "cairn_watch_revision is %llu, last delivered %llu",
              (unsigned long long)cairn_watch_revision(w), (unsigned long long)r3);
    cairn_watch_cancel(w);
    cairn_client_free(lc);
    it_log("key watch: 3 events at %llu, %llu, %llu", (unsigned long long)r1,
           (unsigned long long)r2, (unsigned long long)r3);

    /* From a past revision, in queue mode: the same three changes. */
    memset(&past, 0, sizeof(past));
    past.start_revision = r1;
    IT_ASSERT_OK(cairn_watch(c, "wb/k", 4, &past, NULL, NULL, &q), c);
    IT_ASSERT(cairn_watch_revision(q) == r1 - 1, "a watch from %llu starts after %llu, not %llu",
              (unsigned long long)r1, (unsigned long long)(r1 - 1),
              (unsigned long long)cairn_watch_revision(q));
    rec_init(&g_key, "past watch");
    while (n < 3) {
        struct cairn_watch_update *u = next_update(q, true);
        record(&g_key, u);
        n = g_key.n;
        cairn_watch_update_free(u);
    }
    check_event(&g_key, 0, r1, CAIRN_EVENT_PUT, "wb/k", "v1", NULL);
    check_event(&g_key, 1, r2, CAIRN_EVENT_PUT, "wb/k", "v2", NULL);
    check_event(&g_key, 2, r3, CAIRN_EVENT_DELETE, "wb/k", "", NULL);
    IT_ASSERT(cairn_watch_revision(q) == r3, "queue mode: revision %llu after taking %llu",
              (unsigned long long)cairn_watch_revision(q), (unsigned long long)r3);
    {
        struct cairn_watch_update *u = NULL;
        IT_ASSERT(cairn_watch_next(q, 0, &u) == CAIRN_ETIMEOUT || u->kind == CAIRN_WATCH_PROGRESS,
                  "an update after the last change");
        cairn_watch_update_free(u);
    }
    cairn_watch_cancel(q);
    it_log("past watch: replayed from %llu", (unsigned long long)r1);
}

static void phase_prefix_txn_cancel(cairn_client *c)
{
    cairn_watcher *w = NULL;
    struct cairn_watch_opts o;
    struct cairn_op ops[3];
    struct cairn_txn txn;
    struct cairn_result *res = NULL;
    uint64_t ra;
    uint64_t rb;
    uint64_t rc;
    uint64_t rd;
    size_t before;

    rec_init(&g_prefix, "prefix watch");
    memset(&o, 0, sizeof(o));
    o.prefix = true;
    o.prev_kv = true;
    IT_ASSERT_OK(cairn_watch(c, "wb/p/", 5, &o, watch_cb, &g_prefix, &w), c);
    ra = put(c, "wb/p/x", "1");
    rb = put(c, "wb/p/x", "2");
    /* One transaction, three writes: two under the prefix, one not. */
    memset(ops, 0, sizeof(ops));
    ops[0].type = CAIRN_OP_PUT;
    ops[0].key = "wb/p/x";
    ops[0].key_len = 6;
    ops[0].value = "3";
    ops[0].value_len = 1;
    ops[1].type = CAIRN_OP_PUT;
    ops[1].key = "wb/p/y";
    ops[1].key_len = 6;
    ops[1].value = "y1";
    ops[1].value_len = 2;
    ops[2].type = CAIRN_OP_PUT;
    ops[2].key = "wb/q";
    ops[2].key_len = 4;
    ops[2].value = "no";
    ops[2].value_len = 2;
    memset(&txn, 0, sizeof(txn));
    txn.then_ops = ops;
    txn.n_then = 3;
    IT_ASSERT_OK(cairn_txn(c, &txn, &res), c);
    rc = res->revision;
    cairn_result_free(res);
    rd = del(c, "wb/p/", true);
    wait_events(&g_prefix, 6);
    it_sleep_ms(200);
    IT_ASSERT(rec_count(&g_prefix) == 6, "%zu events, want 6", rec_count(&g_prefix));
    check_event(&g_prefix, 0, ra, CAIRN_EVENT_PUT, "wb/p/x", "1", NULL);
    check_event(&g_prefix, 1, rb, CAIRN_EVENT_PUT, "wb/p/x", "2", "1");
    check_event(&g_prefix, 2, rc, CAIRN_EVENT_PUT, "wb/p/x", "3", "2");
    check_event(&g_prefix, 3, rc, CAIRN_EVENT_PUT, "wb/p/y", "y1", NULL);
    check_event(&g_prefix, 4, rd, CAIRN_EVENT_DELETE, "wb/p/x", "", "3");
    check_event(&g_prefix, 5, rd, CAIRN_EVENT_DELETE, "wb/p/y", "", "y1");
    IT_ASSERT(g_prefix.events[2].update == g_prefix.events[3].update,
              "the transaction's events came in two updates");
    IT_ASSERT(g_prefix.events[4].update == g_prefix.events[5].update,
              "the prefix delete's events came in two updates");
    it_log("prefix watch: prev_kv and one update per transaction");

    /* After cancel returns, nothing more. */
    cairn_watch_cancel(w);
    before = rec_count(&g_prefix);
    put(c, "wb/p/z", "after cancel");
    it_sleep_ms(300);
    IT_ASSERT(rec_count(&g_prefix) == before, "an event after cairn_watch_cancel returned");
}

static void phase_progress(cairn_client *c)
{
    cairn_watcher *q = NULL;
    cairn_watcher *w = NULL;
    struct cairn_watch_opts o;
    struct cairn_watch_update *u;
    uint64_t rev;
    uint64_t seen;
    int64_t deadline;

    /* On request: a long interval, so only the request answers. */
    memset(&o, 0, sizeof(o));
    o.progress_ms = 600000;
    IT_ASSERT_OK(cairn_watch(c, "wb/idle", 7, &o, NULL, NULL, &q), c);
    rev = put(c, "wb/elsewhere", "x");
    IT_ASSERT_OK(cairn_watch_request_progress(q), c);
    u = next_update(q, false);
    IT_ASSERT(u->kind == CAIRN_WATCH_PROGRESS, "a %d update, want PROGRESS", (int)u->kind);
    /* The node may answer before it applied the put (a follower): ask
     * again until it did. */
    while (u->revision < rev) {
        cairn_watch_update_free(u);
        IT_ASSERT_OK(cairn_watch_request_progress(q), c);
        u = next_update(q, false);
        IT_ASSERT(u->kind == CAIRN_WATCH_PROGRESS, "a %d update, want PROGRESS", (int)u->kind);
    }
    IT_ASSERT(cairn_watch_revision(q) == u->revision, "progress moves the watch's revision");
    cairn_watch_update_free(u);
    cairn_watch_cancel(q);
    it_log("progress on request reached revision %llu", (unsigned long long)rev);

    /* Periodic. */
    rec_init(&g_progress, "progress watch");
    o.progress_ms = 200;
    IT_ASSERT_OK(cairn_watch(c, "wb/idle", 7, &o, watch_cb, &g_progress, &w), c);
    it_sleep_ms(1500);
    pthread_mutex_lock(&g_progress.mu);
    IT_ASSERT(g_progress.progress >= 3, "%llu progress updates in 1.5 s at 200 ms",
              (unsigned long long)g_progress.progress);
    seen = g_progress.progress;
    pthread_mutex_unlock(&g_progress.mu);
    rev = put(c, "wb/elsewhere", "y");
    deadline = it_now_ms() + WAIT_MS;
    for (;;) {
        uint64_t at;
        pthread_mutex_lock(&g_progress.mu);
        at = g_progress.progress_rev;
        pthread_mutex_unlock(&g_progress.mu);
        if (at >= rev) {
            break;
        }
        IT_ASSERT(it_now_ms() < deadline, "progress stuck at %llu, store at %llu",
                  (unsigned long long)at, (unsigned long long)rev);
        it_sleep_ms(50);
    }
    IT_ASSERT(rec_count(&g_progress) == 0, "events on a key nobody wrote");
    cairn_watch_cancel(w);
    it_log("periodic progress: %llu updates, then past revision %llu", (unsigned long long)seen,
           (unsigned long long)rev);
}

static void phase_callbacks(cairn_client *c)
{
    cairn_watcher *w = NULL;
    size_t before;

    rec_init(&g_self, "self-canceling watch");
    g_self.client = c;
    IT_ASSERT_OK(cairn_watch(c, "wb/self", 7, NULL, self_cancel_cb, &g_self, &w), c);
    put(c, "wb/self", "1");
    wait_events(&g_self, 1);
    for (;;) {
        bool done;
        pthread_mutex_lock(&g_self.mu);
        done = g_self.cancel_self;
        pthread_mutex_unlock(&g_self.mu);
        if (done) {
            break;
        }
        it_sleep_ms(10);
    }
    IT_ASSERT(g_self.watch_from_cb == CAIRN_EINVAL, "cairn_watch from a callback returned %s",
              cairn_errname(g_self.watch_from_cb));
    IT_ASSERT(g_self.get_from_cb == 0, "cairn_get from a callback returned %s",
              cairn_errname(g_self.get_from_cb));
    before = rec_count(&g_self);
    put(c, "wb/self", "2");
    put(c, "wb/self", "3");
    it_sleep_ms(300);
    IT_ASSERT(rec_count(&g_self) == before, "a callback after the watch canceled itself");
    it_log("a callback canceled its own watch; blocking calls work from callbacks");
}

static void phase_many(cairn_client *c)
{
    static cairn_watcher *ws[MANY_WATCHES];
    static uint64_t revs[MANY_WATCHES];
    char key[32];
    size_t i;
    int64_t t0 = it_now_ms();

    rec_init(&g_many, "many watches");
    for (i = 0; i < MANY_WATCHES; i++) {
        snprintf(key, sizeof(key), "wb/m/%03zu", i);
        IT_ASSERT_OK(cairn_watch(c, key, strlen(key), NULL, watch_cb, &g_many, &ws[i]), c);
    }
    it_log("%d watches created in %lld ms", MANY_WATCHES, (long long)(it_now_ms() - t0));
    for (i = 0; i < MANY_WATCHES; i++) {
        snprintf(key, sizeof(key), "wb/m/%03zu", i);
        revs[i] = put(c, key, "v");
    }
    wait_events(&g_many, MANY_WATCHES);
    it_sleep_ms(200);
    IT_ASSERT(rec_count(&g_many) == MANY_WATCHES, "%zu events for %d puts", rec_count(&g_many),
              MANY_WATCHES);
    /* Each key's watch saw its put; the callbacks ran one at a time, in
     * order: the shared record's revisions only grow. */
    for (i = 0; i < MANY_WATCHES; i++) {
        snprintf(key, sizeof(key), "wb/m/%03zu", i);
        IT_ASSERT(strcmp(g_many.events[i].key, key) == 0 && g_many.events[i].rev == revs[i],
                  "event %zu: %s at %llu, want %s at %llu", i, g_many.events[i].key,
                  (unsigned long long)g_many.events[i].rev, key, (unsigned long long)revs[i]);
    }
    for (i = 0; i < MANY_WATCHES; i++) {
        cairn_watch_cancel(ws[i]);
    }
    it_log("%d watches on one client each saw its key", MANY_WATCHES);
}

/* Every node serves the same sequence; prefer_followers avoids the leader. */
static void phase_nodes(struct it_cluster *cl, cairn_client *c, unsigned leader)
{
    cairn_client *nc[3];
    cairn_watcher *w[3];
    cairn_client *fc;
    cairn_watcher *fw = NULL;
    struct cairn_watch_opts o;
    uint64_t start = put(c, "wb/n/start", "0");
    uint64_t last = 0;
    unsigned i;
    size_t j;
    const char *ep;

    memset(&o, 0, sizeof(o));
    o.prefix = true;
    o.start_revision = start;
    for (i = 0; i < 3; i++) {
        rec_init(&g_node[i], i == 0 ? "node 1" : i == 1 ? "node 2" : "node 3");
        nc[i] = it_client(cl, i + 1, 10000);
        IT_ASSERT_OK(cairn_watch(nc[i], "wb/n/", 5, &o, watch_cb, &g_node[i], &w[i]), nc[i]);
        ep = cairn_watch_endpoint(w[i]);
        IT_ASSERT(ep != NULL && strcmp(ep, it_node(cl, i + 1)->client_addr) == 0,
                  "node %u's watch is served by %s", i + 1, ep != NULL ? ep : "nobody");
    }
    for (j = 0; j < 20; j++) {
        char key[32];
        snprintf(key, sizeof(key), "wb/n/%zu", j % 7);
        last = j % 5 == 4 ? del(c, key, false) : put(c, key, "v");
    }
    for (i = 0; i < 3; i++) {
        struct rec *r = &g_node[i];
        int64_t deadline = it_now_ms() + WAIT_MS;
        for (;;) {
            uint64_t at;
            pthread_mutex_lock(&r->mu);
            at = r->n > 0 ? r->events[r->n - 1].rev : 0;
            pthread_mutex_unlock(&r->mu);
            if (at >= last) {
                break;
            }
            IT_ASSERT(it_now_ms() < deadline, "%s stuck at %llu", r->name, (unsigned long long)at);
            it_sleep_ms(10);
        }
        IT_ASSERT(r->n == g_node[0].n, "%s: %zu events, node 1: %zu", r->name, r->n, g_node[0].n);
        for (j = 0; j < r->n; j++) {
            IT_ASSERT(r->events[j].rev == g_node[0].events[j].rev &&
                          strcmp(r->events[j].key, g_node[0].events[j].key) == 0 &&
                          r->events[j].type == g_node[0].events[j].type,
                      "%s: event %zu differs from node 1's", r->name, j);
        }
        cairn_watch_cancel(w[i]);
        cairn_client_free(nc[i]);
    }
    IT_ASSERT(g_node[0].events[0].rev == start, "the first event is the start revision's");
    it_log("every node served the same %zu events", g_node[0].n);

    fc = it_client(cl, 0, 10000);
    memset(&o, 0, sizeof(o));
    o.prefer_followers = true;
    IT_ASSERT_OK(cairn_watch(fc, "wb/f", 4, &o, watch_cb, &g_node[0], &fw), fc);
    ep = cairn_watch_endpoint(fw);
    IT_ASSERT(ep != NULL && strcmp(ep, it_node(cl, leader)->client_addr) != 0,
              "prefer_followers: served by %s, the leader is %s", ep != NULL ? ep : "nobody",
              it_node(cl, leader)->client_addr);
    it_log("prefer_followers: served by %s", ep);
    cairn_watch_cancel(fw);
    cairn_client_free(fc);
}

/* A small queue that is not drained: the connection stops, nothing is lost. */
static void phase_backpressure(struct it_cluster *cl, cairn_client *c)
{
    cairn_client *qc = it_client(cl, 0, 10000);
    cairn_watcher *q = NULL;
    struct cairn_watch_opts o;
    static uint64_t revs[BACKPRESSURE_PUTS];
    char value[BACKPRESSURE_VALUE_BYTES + 1];
    size_t i;
    size_t k = 0;

    memset(value, 'b', BACKPRESSURE_VALUE_BYTES);
    value[BACKPRESSURE_VALUE_BYTES] = '\0';
    memset(&o, 0, sizeof(o));
    o.prefix = true;
    o.queue_bytes_max = 4096;
    IT_ASSERT_OK(cairn_watch(qc, "wb/bp/", 6, &o, NULL, NULL, &q), qc);
    for (i = 0; i < BACKPRESSURE_PUTS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "wb/bp/%zu", i % 50);
        revs[i] = put(c, key, value);
    }
    it_sleep_ms(300);
    while (k < BACKPRESSURE_PUTS) {
        struct cairn_watch_update *u = next_update(q, true);
        IT_ASSERT(u->kind == CAIRN_WATCH_EVENTS, "a %d update", (int)u->kind);
        for (i = 0; i < u->n_events; i++) {
            IT_ASSERT(k < BACKPRESSURE_PUTS && u->events[i].kv.mod_revision == revs[k],
                      "event %zu at %llu, want %llu", k,
                      (unsigned long long)u->events[i].kv.mod_revision,
                      (unsigned long long)(k < BACKPRESSURE_PUTS ? revs[k] : 0));
            IT_ASSERT(u->events[i].kv.value_len == BACKPRESSURE_VALUE_BYTES, "value of %zu bytes",
                      u->events[i].kv.value_len);
            k++;
        }
        cairn_watch_update_free(u);
    }
    cairn_watch_cancel(q);
    cairn_client_free(qc);
    it_log("a stalled queue-mode watch delivered all %d events once drained", BACKPRESSURE_PUTS);
}

static void phase_unreachable(void)
{
    struct cairn_options opts;
    cairn_client *c;
    cairn_watcher *w = (cairn_watcher *)1;
    int err = 0;
    int rv;
    int64_t t0 = it_now_ms();
    memset(&opts, 0, sizeof(opts));
    opts.timeout_ms = 500;
    c = cairn_client_new("127.0.0.1:1", &opts, &err);
    IT_ASSERT(c != NULL, "cairn_client_new: %s", cairn_errname(err));
    rv = cairn_watch(c, "k", 1, NULL, watch_cb, NULL, &w);
    IT_ASSERT(rv == CAIRN_EUNAVAILABLE, "watch with no node: %s", cairn_errname(rv));
    IT_ASSERT(w == NULL, "*out set on failure");
    IT_ASSERT(strstr(cairn_errmsg(c), "127.0.0.1:1") != NULL, "the message names the node: %s",
              cairn_errmsg(c));
    IT_ASSERT(it_now_ms() - t0 < 3000, "gave up after %lld ms", (long long)(it_now_ms() - t0));
    it_log("no node reachable: %s", cairn_errmsg(c));
    cairn_client_free(c);
}

int main(void)
{
    struct it_cluster *cl;
    cairn_client *c;
    unsigned leader;

    it_init("it_watch_basic", IT_TIMEOUT_S);
    cl = it_cluster_new(3, NULL);
    leader = it_cluster_start(cl);
    c = it_client(cl, 0, 10000);

    phase_key_and_past(cl, c, leader);
    phase_prefix_txn_cancel(c);
    phase_progress(c);
    phase_callbacks(c);
    phase_many(c);
    phase_nodes(cl, c, leader);
    phase_backpressure(cl, c);
    phase_unreachable();

    cairn_client_free(c);
    it_cluster_free(cl);
    it_log("PASS");
    return 0;
}
