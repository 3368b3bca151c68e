/*
 * it_watch_faults: watches see exactly the committed sequence of changes
 * through leader crashes and the crash of their own node, and a watch whose
 * resume point was compacted away gets a snapshot, then events, and ends
 * with the right state.
 *
 * Phase 1 (faults). A writer thread streams puts, deletes and two-key
 * transactions over KEYS keys under "wf/". Four watchers on the prefix, all
 * starting at the same revision, are served by node 1, node 2, node 3 and
 * "a follower" (prefer_followers). Meanwhile the leader is killed with
 * SIGKILL and restarted, then the node serving watcher 1 is killed and
 * restarted. After the writer stops and the cluster converged at revision R,
 * every watcher must have delivered, in order, exactly the changes the
 * cluster committed between its start revision and R. The committed sequence
 * is read back from the cluster itself, every key's history (retention keeps
 * every version here: KEYS is large enough that no key is written 10 times),
 * not from what the watchers agree on (a retention policy on "wf/" keeps
 * every version). Each revision's events must arrive in one update (one
 * transaction, one update).
 *
 * Phase 2 (compaction). A watcher served by a follower sees that node hang
 * (SIGSTOP); while it hangs, more writes happen and the cluster compacts past
 * the watcher's resume point. The library resumes it on another node, which
 * answers with a SNAPSHOT of the prefix, then events. Applying the snapshot
 * and the events must give exactly the prefix's state read from the leader.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define KEYS 1000
#define WATCHERS 4
#define EVENTS_MAX 200000
#define VALUE_MAX 32
#define CATCH_UP_TIMEOUT_MS 30000

struct event
{
    uint64_t rev;
    uint32_t key;
    bool deleted;
    char value[VALUE_MAX];
    uint64_t update; /* which update delivered it */
};

struct record
{
    pthread_mutex_t mu;
    struct event *events;
    size_t n;
    uint64_t updates;
    uint64_t snapshots;
    uint64_t revision; /* the last revision delivered */
    char error[256];
    /* Phase 2: the state built from snapshots and events. */
    bool track_state;
    bool present[KEYS];
    char state[KEYS][VALUE_MAX];
};

static struct record g_rec[WATCHERS + 1];

static uint32_t key_index(const char *key, size_t len)
{
    char buf[16];
    if (len < 4 || len > 10 || memcmp(key, "wf/", 3) != 0) {
        return UINT32_MAX;
    }
    memcpy(buf, key + 3, len - 3);
    buf[len - 3] = '\0';
    return (uint32_t)strtoul(buf, NULL, 10);
}

static void copy_value(char *dst, const struct cairn_kv *kv)
{
    size_t n = kv->value_len < VALUE_MAX - 1 ? kv->value_len : VALUE_MAX - 1;
    memcpy(dst, kv->value, n);
    dst[n] = '\0';
}

static void watch_cb(cairn_watcher *w, const struct cairn_watch_update *u, void *arg)
{
    struct record *r = arg;
    size_t i;
    (void)w;
    pthread_mutex_lock(&r->mu);
    r->updates++;
    switch (u->kind) {
        case CAIRN_WATCH_EVENTS:
            for (i = 0; i < u->n_events; i++) {
                const struct cairn_event *e = &u->events[i];
                uint32_t k = key_index(e->kv.key, e->kv.key_len);
                if (k >= KEYS || r->n == EVENTS_MAX) {
                    snprintf(r->error, sizeof(r->error), "bad key or too many events");
                    break;
                }
                if (e->kv.mod_revision <= r->revision) {
                    snprintf(r->error, sizeof(r->error),
                             "event at revision %llu after revision %llu was delivered",
                             (unsigned long long)e->kv.mod_revision,
                             (unsigned long long)r->revision);
                }
                r->events[r->n].rev = e->kv.mod_revision;
                r->events[r->n].key = k;
                r->events[r->n].deleted = e->type == CAIRN_EVENT_DELETE;
                copy_value(r->events[r->n].value, &e->kv);
                r->events[r->n].update = r->updates;
                r->n++;
                if (r->track_state) {
                    r->present[k] = e->type == CAIRN_EVENT_PUT;
                    copy_value(r->state[k], &e->kv);
                }
            }
            break;
        case CAIRN_WATCH_SNAPSHOT:
            r->snapshots++;
            memset(r->present, 0, sizeof(r->present));
            for (i = 0; i < u->n_kvs; i++) {
                uint32_t k = key_index(u->kvs[i].key, u->kvs[i].key_len);
                if (k < KEYS) {
                    r->present[k] = true;
                    copy_value(r->state[k], &u->kvs[i]);
                }
            }
            break;
        case CAIRN_WATCH_CANCELED:
            snprintf(r->error, sizeof(r->error), "watch canceled: %s", cairn_errname(u->error));
            break;
        default:
            break;
    }
    if (u->revision > r->revision) {
        r->revision = u->revision;
    }
    pthread_mutex_unlock(&r->mu);
}

/* The writer */

struct writer
{
    struct it_cluster *cluster;
    pthread_t thread;
    volatile bool stop;
    unsigned acked;
    uint64_t rng;
};

static uint32_t next_rand(struct writer *wr)
{
    wr->rng ^= wr->rng << 13;
    wr->rng ^= wr->rng >> 7;
    wr->rng ^= wr->rng << 17;
    return (uint32_t)(wr->rng >> 16);
}

static void *writer_main(void *arg)
{
    struct writer *wr = arg;
    cairn_client *cl = it_client(wr->cluster, 0, 3000);
    unsigned i = 0;
    while (!wr->stop) {
        char key[16];
        char key2[16];
        char value[VALUE_MAX];
        struct cairn_result *res = NULL;
        uint32_t k = next_rand(wr) % KEYS;
        uint32_t dice = next_rand(wr) % 10;
        int rv;
        snprintf(key, sizeof(key), "wf/%u", k);
        snprintf(value, sizeof(value), "v%u", i++);
        if (dice == 0) {
            rv = cairn_del(cl, key, strlen(key), NULL, &res);
        } else if (dice == 1) {
            struct cairn_op ops[2];
            struct cairn_txn txn;
            snprintf(key2, sizeof(key2), "wf/%u", (k + 1 + next_rand(wr) % (KEYS - 1)) % KEYS);
            memset(ops, 0, sizeof(ops));
            memset(&txn, 0, sizeof(txn));
            ops[0].type = CAIRN_OP_PUT;
            ops[0].key = key;
            ops[0].key_len = strlen(key);
            ops[0].value = value;
            ops[0].value_len = strlen(value);
            ops[1] = ops[0];
            ops[1].key = key2;
            ops[1].key_len = strlen(key2);
            txn.then_ops = ops;
            txn.n_then = 2;
            rv = cairn_txn(cl, &txn, &res);
        } else {
            rv = cairn_put(cl, key, strlen(key), value, strlen(value), NULL, &res);
        }
        if (rv == 0) {
            wr->acked++;
        }
        cairn_result_free(res);
    }
    cairn_client_free(cl);
    return NULL;
}

/* Endpoints with node id first, so that the watch starts there. */
static void endpoints_from(struct it_cluster *c, unsigned id, char *out, size_t len)
{
    unsigned i;
    int n = snprintf(out, len, "%s", it_node(c, id)->client_addr);
    for (i = 1; i <= c->n; i++) {
        if (i != id) {
            n += snprintf(out + n, len - (size_t)n, ",%s", it_node(c, i)->client_addr);
        }
    }
}

static cairn_watcher *start_watch(cairn_client *cl, struct record *r, uint64_t start,
                                  bool prefer_followers)
{
    struct cairn_watch_opts o;
    cairn_watcher *w = NULL;
    memset(&o, 0, sizeof(o));
    o.prefix = true;
    o.start_revision = start;
    o.prefer_followers = prefer_followers;
    o.progress_ms = 200;
    IT_ASSERT_OK(cairn_watch(cl, "wf/", 3, &o, watch_cb, r, &w), cl);
    return w;
}

static uint64_t current_revision(cairn_client *cl)
{
    struct cairn_result *res = NULL;
    uint64_t rev;
    IT_ASSERT_OK(
        cairn_get(cl, "wf/", 3, &(struct cairn_get_opts){.prefix = true, .limit = 1}, &res), cl);
    rev = res->revision;
    cairn_result_free(res);
    return rev;
}

/* Wait until the watcher delivered everything up to rev. */
static void wait_delivered(struct record *r, uint64_t rev, const char *who)
{
    int64_t deadline = it_now_ms() + CATCH_UP_TIMEOUT_MS;
    for (;;) {
        uint64_t got;
        pthread_mutex_lock(&r->mu);
        got = r->revision;
        pthread_mutex_unlock(&r->mu);
        if (got >= rev) {
            return;
        }
        IT_ASSERT(it_now_ms() < deadline, "%s delivered only up to %llu of %llu", who,
                  (unsigned long long)got, (unsigned long long)rev);
        it_sleep_ms(50);
    }
}

static int event_cmp(const void *a, const void *b)
{
    const struct event *x = a;
    const struct event *y = b;
    char kx[16];
    char ky[16];
    if (x->rev != y->rev) {
        return x->rev < y->rev ? -1 : 1;
    }
    /* Within a revision, watches deliver in key order: bytewise. */
    snprintf(kx, sizeof(kx), "wf/%u", x->key);
    snprintf(ky, sizeof(ky), "wf/%u", y->key);
    return strcmp(kx, ky);
}

/* The committed sequence after revision `after`, from every key's history.
 * (A key deleted and written again restarts at version 1, so "version 1 is
 * retained" does not prove nothing older was trimmed; the retention policy
 * does. The check below catches a policy that did not take.) */
static struct event *committed(cairn_client *cl, uint64_t after, uint64_t upto, size_t *n_out)
{
    struct event *ev = calloc(EVENTS_MAX, sizeof(*ev));
    size_t n = 0;
    uint32_t k;
    IT_ASSERT(ev != NULL, "out of memory");
    for (k = 0; k < KEYS; k++) {
        char key[16];
        struct cairn_result *res = NULL;
        size_t i;
        snprintf(key, sizeof(key), "wf/%u", k);
        IT_ASSERT_OK(cairn_history(cl, key, strlen(key), 0, &res), cl);
        for (i = 0; res->n_ops > 0 && i < res->ops[0].n_kvs; i++) {
            const struct cairn_kv *kv = &res->ops[0].kvs[i];
            if (kv->mod_revision <= after || kv->mod_revision > upto) {
                continue;
            }
            IT_ASSERT(n < EVENTS_MAX, "too many versions");
            ev[n].rev = kv->mod_revision;
            ev[n].key = k;
            ev[n].deleted = kv->deleted;
            copy_value(ev[n].value, kv);
            n++;
        }
        if (res->n_ops > 0 && res->ops[0].n_kvs > 0) {
            /* Retention must not have trimmed anything we compare against. */
            const struct cairn_kv *oldest = &res->ops[0].kvs[res->ops[0].n_kvs - 1];
            IT_ASSERT(oldest->version == 1 || oldest->mod_revision <= after,
                      "key %s lost history to retention", key);
        }
        cairn_result_free(res);
    }
    qsort(ev, n, sizeof(*ev), event_cmp);
    *n_out = n;
    return ev;
}

static void compare(const char *who, struct record *r, const struct event *want, size_t n_want)
{
    size_t i;
    IT_ASSERT(r->error[0] == '\0', "%s: %s", who, r->error);
    IT_ASSERT(r->snapshots == 0, "%s got a snapshot although history was complete", who);
    for (i = 0; i < r->n && i < n_want; i++) {
        const struct event *g = &r->events[i];
        const struct event *w = &want[i];
        IT_ASSERT(g->rev == w->rev && g->key == w->key && g->deleted == w->deleted &&
                      strcmp(g->value, w->value) == 0,
                  "%s: event %zu is rev %llu key %u %s \"%s\", committed rev %llu key %u %s \"%s\"",
                  who, i, (unsigned long long)g->rev, g->key, g->deleted ? "del" : "put", g->value,
                  (unsigned long long)w->rev, w->key, w->deleted ? "del" : "put", w->value);
        if (i > 0 && g->rev == r->events[i - 1].rev) {
            IT_ASSERT(g->update == r->events[i - 1].update,
                      "%s: revision %llu was split over two updates", who,
                      (unsigned long long)g->rev);
        }
    }
    IT_ASSERT(r->n == n_want, "%s delivered %zu events, the cluster committed %zu", who, r->n,
              n_want);
}

static unsigned serving_node(struct it_cluster *c, cairn_watcher *w)
{
    const char *ep = cairn_watch_endpoint(w);
    unsigned i;
    for (i = 1; i <= c->n; i++) {
        if (ep != NULL && strcmp(ep, it_node(c, i)->client_addr) == 0) {
            return i;
        }
    }
    return 0;
}

static void phase_faults(struct it_cluster *c)
{
    cairn_client *clients[WATCHERS];
    cairn_watcher *watchers[WATCHERS];
    struct writer wr;
    char eps[512];
    uint64_t start;
    uint64_t final;
    struct event *want;
    size_t n_want;
    unsigned leader;
    unsigned victim;
    unsigned i;

    /* Keep every version under wf/, so that history is the whole log. */
    IT_ASSERT_OK(cairn_set_retention(c->admin, &(struct cairn_retention){.prefix = "wf/",
                                                                         .prefix_len = 3,
                                                                         .versions = 1000000}),
                 c->admin);
    start = current_revision(c->admin);
    for (i = 0; i < WATCHERS; i++) {
        endpoints_from(c, i < 3 ? i + 1 : 1, eps, sizeof(eps));
        clients[i] = cairn_client_new(eps, &(struct cairn_options){.timeout_ms = 5000}, NULL);
        IT_ASSERT(clients[i] != NULL, "client");
        watchers[i] = start_watch(clients[i], &g_rec[i], start + 1, i == 3);
        it_log("watcher %u served by node %u", i + 1, serving_node(c, watchers[i]));
    }
    memset(&wr, 0, sizeof(wr));
    wr.cluster = c;
    wr.rng = 0x2545f4914f6cdd1dull;
    IT_ASSERT(pthread_create(&wr.thread, NULL, writer_main, &wr) == 0, "thread");

    it_sleep_ms(1500);
    leader = it_leader(c);
    IT_ASSERT(leader != 0, "no leader");
    it_log("killing the leader, node %u (%u writes acknowledged)", leader, wr.acked);
    it_node_kill(c, leader);
    it_wait_leader(c, leader, 20000);
    it_sleep_ms(1500);
    it_node_start(c, leader);
    it_sleep_ms(1500);
    victim = serving_node(c, watchers[0]);
    IT_ASSERT(victim != 0, "watcher 1 is not connected");
    it_log("killing node %u, which serves watcher 1 (%u writes acknowledged)", victim, wr.acked);
    it_node_kill(c, victim);
    it_sleep_ms(1500);
    it_node_start(c, victim);
    it_sleep_ms(1500);
    wr.stop = true;
    pthread_join(wr.thread, NULL);
    it_wait_leader(c, 0, 20000);
    final = it_wait_converged(c, 30000);
    it_log("writer stopped after %u acknowledged writes; revision %llu", wr.acked,
           (unsigned long long) final);
    IT_ASSERT(wr.acked > 100, "too few writes to mean anything");

    want = committed(c->admin, start, final, &n_want);
    it_log("the cluster committed %zu changes under wf/ after revision %llu", n_want,
           (unsigned long long)start);
    for (i = 0; i < WATCHERS; i++) {
        char who[32];
        snprintf(who, sizeof(who), "watcher %u", i + 1);
        wait_delivered(&g_rec[i], final, who);
        cairn_watch_cancel(watchers[i]);
        compare(who, &g_rec[i], want, n_want);
        cairn_client_free(clients[i]);
    }
    free(want);
    it_log("all %u watchers delivered exactly the committed sequence", WATCHERS);
}

static void phase_compaction(struct it_cluster *c)
{
    struct record *r = &g_rec[WATCHERS];
    cairn_client *cl;
    cairn_client *writer;
    cairn_watcher *w;
    struct cairn_result *res = NULL;
    char eps[512];
    unsigned leader = it_wait_leader(c, 0, 20000);
    unsigned follower = leader % 3 + 1;
    unsigned served;
    uint64_t rev;
    unsigned i;
    uint32_t k;

    r->track_state = true;
    endpoints_from(c, follower, eps, sizeof(eps));
    cl = cairn_client_new(eps, &(struct cairn_options){.timeout_ms = 5000}, NULL);
    IT_ASSERT(cl != NULL, "client");
    w = start_watch(cl, r, 0, true);
    /* Start from the prefix's state: take it from the first snapshot the
     * test provokes below, so the watcher's view must be complete. */
    served = serving_node(c, w);
    IT_ASSERT(served != 0 && served != leader, "the watcher should be on a follower");
    /* Freeze the node (SIGSTOP): the connection stays open but silent, so
     * the library only gives it up after its liveness timeout, long after
     * the writes and the compaction below. A kill would make it reconnect at
     * once, before the compaction. */
    it_log("compaction: watcher on node %u; freezing it", served);
    it_node_signal(c, served, SIGSTOP);
    /* A frozen node still completes TCP handshakes; the writer must not try
     * it, or its writes time out with an unknown outcome. */
    eps[0] = '\0';
    for (i = 1; i <= c->n; i++) {
        if (i != served) {
            size_t len = strlen(eps);
            snprintf(eps + len, sizeof(eps) - len, "%s%s", len > 0 ? "," : "",
                     it_node(c, i)->client_addr);
        }
    }
    writer = cairn_client_new(eps, &(struct cairn_options){.timeout_ms = 5000}, NULL);
    IT_ASSERT(writer != NULL, "client");
    for (i = 0; i < 50; i++) {
        char key[16];
        char value[VALUE_MAX];
        snprintf(key, sizeof(key), "wf/%u", i * 7 % KEYS);
        snprintf(value, sizeof(value), "c%u", i);
        IT_ASSERT_OK(cairn_put(writer, key, strlen(key), value, strlen(value), NULL, &res), writer);
        rev = res->revision;
        cairn_result_free(res);
    }
    IT_ASSERT_OK(cairn_del(writer, "wf/14", 5, NULL, &res), writer);
    cairn_result_free(res);
    IT_ASSERT_OK(cairn_compact(writer, rev, &res), writer);
    cairn_result_free(res);
    it_log("compacted at %llu while the watcher's node was down", (unsigned long long)rev);
    /* The library resumes on another node: snapshot, then events. */
    IT_ASSERT_OK(cairn_put(writer, "wf/3", 4, "after", 5, NULL, &res), writer);
    rev = res->revision;
    cairn_result_free(res);
    wait_delivered(r, rev, "the compaction watcher");
    it_node_signal(c, served, SIGCONT);
    pthread_mutex_lock(&r->mu);
    IT_ASSERT(r->error[0] == '\0', "%s", r->error);
    IT_ASSERT(r->snapshots >= 1, "no snapshot after resuming past the compaction");
    pthread_mutex_unlock(&r->mu);
    cairn_watch_cancel(w);
    /* The state the watcher built equals the prefix read from the leader. */
    IT_ASSERT_OK(cairn_get(writer, "wf/", 3, &(struct cairn_get_opts){.prefix = true}, &res),
                 writer);
    IT_ASSERT(res->revision == rev, "the leader is at %llu, not %llu",
              (unsigned long long)res->revision, (unsigned long long)rev);
    {
        bool present[KEYS];
        memset(present, 0, sizeof(present));
        for (i = 0; i < res->ops[0].n_kvs; i++) {
            char value[VALUE_MAX];
            k = key_index(res->ops[0].kvs[i].key, res->ops[0].kvs[i].key_len);
            IT_ASSERT(k < KEYS, "odd key");
            present[k] = true;
            copy_value(value, &res->ops[0].kvs[i]);
            IT_ASSERT(r->present[k], "the watcher lacks wf/%u", k);
            IT_ASSERT(strcmp(r->state[k], value) == 0, "wf/%u is \"%s\", the watcher has \"%s\"", k,
                      value, r->state[k]);
        }
        for (k = 0; k < KEYS; k++) {
            IT_ASSERT(present[k] || !r->present[k], "the watcher still has deleted wf/%u", k);
        }
    }
    cairn_result_free(res);
    cairn_client_free(cl);
    cairn_client_free(writer);
    it_log("after a snapshot and events the watcher's state equals the leader's");
}

int main(void)
{
    struct it_cluster *c;
    unsigned i;
    it_init("it_watch_faults", IT_TIMEOUT_S);
    for (i = 0; i <= WATCHERS; i++) {
        pthread_mutex_init(&g_rec[i].mu, NULL);
        g_rec[i].events = calloc(EVENTS_MAX, sizeof(struct event));
        IT_ASSERT(g_rec[i].events != NULL, "out of memory");
    }
    c = it_cluster_new(3, NULL);
    it_cluster_start(c);
    phase_faults(c);
    phase_compaction(c);
    it_cluster_free(c);
    for (i = 0; i <= WATCHERS; i++) {
        free(g_rec[i].events);
    }
    return 0;
}
