/*
 * it_kill_leader: no acknowledged write is lost when the leader dies.
 *
 * A writer thread streams puts of unique keys through a client that knows
 * every endpoint and records each one the cluster acknowledged (key ->
 * revision). Mid-stream the leader is killed with SIGKILL (no chance to hand
 * over or flush anything). The test asserts that:
 *
 *  - writes resume under a new leader (progress after the kill);
 *  - acknowledged revisions strictly increase (one writer, one revision per
 *    write: the order the cluster acknowledged is the order it applied);
 *  - the killed node, restarted, rejoins;
 *  - at the end every node, read locally (stale reads, after the nodes have
 *    converged to the same applied index), holds every acknowledged write
 *    with its value and the revision it was acknowledged at.
 *
 * A write that returned CAIRN_EUNKNOWN may or may not be there; the test
 * only checks that if one is there, it has the value that was sent.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WRITES_MAX 200000
#define PHASE_WRITES 150 /* acknowledged writes wanted in each phase */
#define PHASE_TIMEOUT_MS 40000

enum outcome {
    NOT_SENT = 0,
    ACKED,
    UNKNOWN,
    FAILED, /* certainly not applied */
};

struct writer
{
    struct it_cluster *cluster;
    pthread_t thread;
    pthread_mutex_t mu;
    bool stop;
    unsigned n;       /* writes attempted */
    unsigned acked;   /* writes acknowledged */
    unsigned unknown; /* CAIRN_EUNKNOWN */
    unsigned failed;  /* any other error */
    uint8_t *outcome; /* owned: enum outcome per write */
    uint64_t *rev;    /* owned: acknowledged revision per write */
    char last_err[256];
};

static void key_of(unsigned i, char *key, size_t len)
{
    snprintf(key, len, "kl/%07u", i);
}

static void value_of(unsigned i, char *value, size_t len)
{
    snprintf(value, len, "value of write %u", i);
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    /* A generous timeout: an election on a loaded machine takes seconds. */
    cairn_client *c = it_client(w->cluster, 0, 10000);
    unsigned i;
    for (i = 0; i < WRITES_MAX; i++) {
        char key[32];
        char value[64];
        struct cairn_result *r = NULL;
        int rv;
        pthread_mutex_lock(&w->mu);
        if (w->stop) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        pthread_mutex_unlock(&w->mu);
        key_of(i, key, sizeof(key));
        value_of(i, value, sizeof(value));
        rv = cairn_put(c, key, strlen(key), value, strlen(value), NULL, &r);
        pthread_mutex_lock(&w->mu);
        w->n = i + 1;
        if (rv == 0) {
            w->outcome[i] = ACKED;
            w->rev[i] = r->revision;
            w->acked++;
        } else {
            w->outcome[i] = rv == CAIRN_EUNKNOWN ? UNKNOWN : FAILED;
            if (rv == CAIRN_EUNKNOWN) {
                w->unknown++;
            } else {
                w->failed++;
            }
            snprintf(w->last_err, sizeof(w->last_err), "write %u: %s: %s", i, cairn_errname(rv),
                     cairn_errmsg(c));
        }
        pthread_mutex_unlock(&w->mu);
        if (rv != 0) {
            it_log("%s", w->last_err);
        }
        cairn_result_free(r);
    }
    cairn_client_free(c);
    return NULL;
}

static unsigned acked(struct writer *w)
{
    unsigned n;
    pthread_mutex_lock(&w->mu);
    n = w->acked;
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* Wait until at least `want` writes were acknowledged in total. */
static void wait_acked(struct writer *w, unsigned want, const char *phase)
{
    int64_t deadline = it_now_ms() + PHASE_TIMEOUT_MS;
    while (acked(w) < want) {
        IT_ASSERT(it_now_ms() < deadline, "%s: only %u of %u writes acknowledged within %d ms",
                  phase, acked(w), want, PHASE_TIMEOUT_MS);
        it_sleep_ms(20);
    }
}

/* Every node's local copy holds every acknowledged write. */
static void check_node(struct it_cluster *c, struct writer *w, unsigned id, uint64_t rev)
{
    cairn_client *alone = it_client(c, id, 10000);
    struct cairn_get_opts all = {.stale = true, .prefix = true};
    struct cairn_result *r = NULL;
    unsigned i;
    size_t k = 0;
    unsigned present_unknown = 0;
    IT_ASSERT_OK(cairn_get(alone, "kl/", 3, &all, &r), alone);
    IT_ASSERT(r->revision == rev, "node %u answered at revision %llu, the cluster is at %llu", id,
              (unsigned long long)r->revision, (unsigned long long)rev);
    IT_ASSERT(!r->ops[0].more, "node %u: range cut short", id);
    /* Keys come back in order, as do write numbers: walk both. */
    for (i = 0; i < w->n; i++) {
        char key[32];
        char value[64];
        const struct cairn_kv *kv = k < r->ops[0].n_kvs ? &r->ops[0].kvs[k] : NULL;
        bool here;
        key_of(i, key, sizeof(key));
        value_of(i, value, sizeof(value));
        here = kv != NULL && kv->key_len == strlen(key) && memcmp(kv->key, key, kv->key_len) == 0;
        if (w->outcome[i] == ACKED) {
            IT_ASSERT(here, "node %u lost acknowledged write %u (%s at revision %llu)", id, i, key,
                      (unsigned long long)w->rev[i]);
            IT_ASSERT(kv->mod_revision == w->rev[i],
                      "node %u: %s has mod_revision %llu, acknowledged at %llu", id, key,
                      (unsigned long long)kv->mod_revision, (unsigned long long)w->rev[i]);
        } else if (here) {
            IT_ASSERT(w->outcome[i] == UNKNOWN,
                      "node %u holds write %u (%s), which certainly failed", id, i, key);
            present_unknown++;
        }
        if (here) {
            IT_ASSERT(kv->value_len == strlen(value) &&
                          memcmp(kv->value, value, kv->value_len) == 0,
                      "node %u: %s holds \"%.*s\"", id, key, (int)kv->value_len, kv->value);
            IT_ASSERT(kv->version == 1, "node %u: %s written once, version %llu", id, key,
                      (unsigned long long)kv->version);
            k++;
        }
    }
    IT_ASSERT(k == r->ops[0].n_kvs, "node %u holds %zu keys nobody wrote", id, r->ops[0].n_kvs - k);
    it_log("node %u: all %u acknowledged writes present (and %u of %u with unknown outcome)", id,
           w->acked, present_unknown, w->unknown);
    cairn_result_free(r);
    cairn_client_free(alone);
}

int main(void)
{
    struct it_cluster *c;
    struct writer w;
    unsigned leader;
    unsigned new_leader;
    unsigned at_kill;
    uint64_t rev;
    uint64_t prev = 0;
    unsigned i;
    int64_t t_kill;

    it_init("it_kill_leader", IT_TIMEOUT_S);
    c = it_cluster_new(3, NULL);
    leader = it_cluster_start(c);

    memset(&w, 0, sizeof(w));
    w.cluster = c;
    w.outcome = calloc(WRITES_MAX, sizeof(*w.outcome));
    w.rev = calloc(WRITES_MAX, sizeof(*w.rev));
    IT_ASSERT(w.outcome != NULL && w.rev != NULL, "out of memory");
    pthread_mutex_init(&w.mu, NULL);
    IT_ASSERT(pthread_create(&w.thread, NULL, writer_main, &w) == 0, "pthread_create");

    wait_acked(&w, PHASE_WRITES, "before the kill");
    at_kill = acked(&w);
    t_kill = it_now_ms();
    it_node_kill(c, leader);
    it_log("killed leader %u after %u acknowledged writes", leader, at_kill);

    new_leader = it_wait_leader(c, leader, 30000);
    it_log("node %u leads after %lld ms", new_leader, (long long)(it_now_ms() - t_kill));
    wait_acked(&w, at_kill + PHASE_WRITES, "after the kill");
    it_log("writes resumed: %u acknowledged now", acked(&w));

    /* The killed node comes back, learns the leader, and more writes
     * commit with it in the cluster again. */
    it_node_start(c, leader);
    it_wait_leader(c, 0, 30000);
    it_log("node %u rejoined", leader);
    wait_acked(&w, acked(&w) + PHASE_WRITES, "after the restart");

    pthread_mutex_lock(&w.mu);
    w.stop = true;
    pthread_mutex_unlock(&w.mu);
    pthread_join(w.thread, NULL);
    it_log("writer done: %u writes, %u acknowledged, %u unknown, %u failed", w.n, w.acked,
           w.unknown, w.failed);

    for (i = 0; i < w.n; i++) {
        if (w.outcome[i] == ACKED) {
            IT_ASSERT(w.rev[i] > prev, "write %u acknowledged at revision %llu after %llu", i,
                      (unsigned long long)w.rev[i], (unsigned long long)prev);
            prev = w.rev[i];
        }
    }

    /* Every node must know the leader again (the restarted one included)
     * before the replicas can converge. */
    it_wait_leader(c, 0, 30000);
    rev = it_wait_converged(c, 60000);
    it_log("converged at revision %llu", (unsigned long long)rev);
    IT_ASSERT(rev >= prev, "cluster revision %llu is behind an acknowledged write at %llu",
              (unsigned long long)rev, (unsigned long long)prev);
    for (i = 1; i <= c->n; i++) {
        check_node(c, &w, i, rev);
    }

    it_cluster_free(c);
    pthread_mutex_destroy(&w.mu);
    free(w.outcome);
    free(w.rev);
    it_log("PASS");
    return 0;
}
