/*
 * it_shutdown: SIGTERM to the leader of a 3-node cluster is a clean,
 * fast hand-over.
 *
 * While a writer streams puts, the leader gets SIGTERM. The test asserts
 * that:
 *
 *  - another node is leader within 2 s of the signal: the leader handed
 *    over (raft_transfer) instead of leaving the others to wait out an
 *    election timeout;
 *  - the old leader exits with code 0 within a few seconds, and its log says
 *    leadership was handed over to that node;
 *  - writes go on: the writer makes progress after the signal, no write it
 *    sent failed in a way that claims "certainly not applied" and was
 *    applied anyway, and every acknowledged write is on both survivors.
 *
 * Then the old leader is restarted and rejoins.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define WRITES_MAX 100000
#define NEW_LEADER_MS 2000
#define EXIT_MS 5000

struct writer
{
    struct it_cluster *cluster;
    pthread_t thread;
    pthread_mutex_t mu;
    bool stop;
    unsigned n;
    unsigned acked;
    unsigned unknown;
    unsigned failed;
    uint64_t *rev; /* owned: acknowledged revision per write, 0 if not */
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    cairn_client *c = it_client(w->cluster, 0, 10000);
    unsigned i;
    for (i = 0; i < WRITES_MAX; i++) {
        char key[32];
        struct cairn_result *r = NULL;
        int rv;
        pthread_mutex_lock(&w->mu);
        if (w->stop) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        pthread_mutex_unlock(&w->mu);
        snprintf(key, sizeof(key), "sd/%06u", i);
        rv = cairn_put(c, key, strlen(key), key, strlen(key), NULL, &r);
        pthread_mutex_lock(&w->mu);
        w->n = i + 1;
        if (rv == 0) {
            w->rev[i] = r->revision;
            w->acked++;
        } else if (rv == CAIRN_EUNKNOWN) {
            w->unknown++;
        } else {
            w->failed++;
        }
        pthread_mutex_unlock(&w->mu);
        if (rv != 0) {
            it_log("write %u: %s: %s", i, cairn_errname(rv), cairn_errmsg(c));
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

static void wait_acked(struct writer *w, unsigned want, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (acked(w) < want) {
        IT_ASSERT(it_now_ms() < deadline, "only %u of %u writes acknowledged", acked(w), want);
        it_sleep_ms(10);
    }
}

/* The other running node that reports itself leader, or 0. */
static unsigned other_leader(struct it_cluster *c, unsigned old)
{
    unsigned i;
    for (i = 1; i <= c->n; i++) {
        struct cairn_status *st;
        bool leads;
        if (i == old || !it_node_running(c, i) || it_node_status(c, i, &st) != 0) {
            continue;
        }
        leads = strcmp(st->state, "leader") == 0;
        cairn_status_free(st);
        if (leads) {
            return i;
        }
    }
    return 0;
}

int main(void)
{
    struct it_cluster *c;
    struct writer w;
    struct it_node *old;
    uint64_t *found;
    unsigned leader;
    unsigned next = 0;
    unsigned at_signal;
    int64_t t_signal;
    int64_t t_next = 0;
    int64_t t_exit = 0;
    int status = 0;
    size_t log_mark;
    char *log;
    char handed[64];
    unsigned i;

    it_init("it_shutdown", IT_TIMEOUT_S);
    c = it_cluster_new(3, NULL);
    leader = it_cluster_start(c);
    old = it_node(c, leader);

    memset(&w, 0, sizeof(w));
    w.cluster = c;
    w.rev = calloc(WRITES_MAX, sizeof(*w.rev));
    IT_ASSERT(w.rev != NULL, "out of memory");
    pthread_mutex_init(&w.mu, NULL);
    IT_ASSERT(pthread_create(&w.thread, NULL, writer_main, &w) == 0, "pthread_create");
    wait_acked(&w, 100, 30000);

    /* SIGTERM the leader; poll the others for a new leader while it exits. */
    log_mark = it_file_size(old->log_path);
    at_signal = acked(&w);
    t_signal = it_now_ms();
    it_node_signal(c, leader, SIGTERM);
    it_log("SIGTERM to leader %u after %u acknowledged writes", leader, at_signal);
    while (next == 0 || t_exit == 0) {
        int64_t now = it_now_ms();
        if (t_exit == 0 && it_node_exited(c, leader, &status)) {
            t_exit = now;
        }
        if (next == 0) {
            next = other_leader(c, leader);
            if (next != 0) {
                t_next = it_now_ms();
            }
        }
        IT_ASSERT(next != 0 || now - t_signal < NEW_LEADER_MS,
                  "no other node became leader within %d ms of SIGTERM", NEW_LEADER_MS);
        IT_ASSERT(t_exit != 0 || now - t_signal < EXIT_MS,
                  "the old leader did not exit within %d ms of SIGTERM", EXIT_MS);
        it_sleep_ms(10);
    }
    it_log("node %u leads %lld ms after SIGTERM; old leader exited after %lld ms", next,
           (long long)(t_next - t_signal), (long long)(t_exit - t_signal));
    IT_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the old leader exits with code 0 (status %#x)", status);

    log = it_read_file(old->log_path, log_mark);
    IT_ASSERT(log != NULL, "read the old leader's log");
    snprintf(handed, sizeof(handed), "leadership handed over (leader now %u)", next);
    IT_ASSERT(strstr(log, "handing leadership over") != NULL && strstr(log, handed) != NULL,
              "the old leader's log does not say \"%s\":\n%s", handed, log);
    free(log);

    /* Writes continue under the new leader. */
    wait_acked(&w, acked(&w) + 100, 30000);
    it_log("writes continue: %u acknowledged", acked(&w));
    pthread_mutex_lock(&w.mu);
    w.stop = true;
    pthread_mutex_unlock(&w.mu);
    pthread_join(w.thread, NULL);
    it_log("writer done: %u writes, %u acknowledged, %u unknown, %u failed", w.n, w.acked,
           w.unknown, w.failed);

    /* Every acknowledged write is on both survivors. */
    found = calloc(w.n + 1, sizeof(*found));
    IT_ASSERT(found != NULL, "out of memory");
    it_wait_converged(c, 30000);
    for (i = 1; i <= c->n; i++) {
        cairn_client *alone;
        struct cairn_get_opts all = {.stale = true, .prefix = true};
        struct cairn_result *r = NULL;
        size_t k;
        if (!it_node_running(c, i)) {
            continue;
        }
        alone = it_client(c, i, 10000);
        IT_ASSERT_OK(cairn_get(alone, "sd/", 3, &all, &r), alone);
        memset(found, 0, w.n * sizeof(*found));
        for (k = 0; k < r->ops[0].n_kvs; k++) {
            const struct cairn_kv *kv = &r->ops[0].kvs[k];
            unsigned j;
            IT_ASSERT(sscanf(kv->key, "sd/%u", &j) == 1 && j < w.n, "node %u: stray key %.*s", i,
                      (int)kv->key_len, kv->key);
            found[j] = kv->mod_revision;
        }
        for (k = 0; k < w.n; k++) {
            IT_ASSERT(w.rev[k] == 0 || found[k] == w.rev[k],
                      "node %u lacks acknowledged write sd/%06zu at revision %llu", i, k,
                      (unsigned long long)w.rev[k]);
        }
        cairn_result_free(r);
        cairn_client_free(alone);
    }
    free(found);
    it_log("both survivors hold all %u acknowledged writes", w.acked);

    /* The old leader comes back. */
    it_node_start(c, leader);
    IT_ASSERT(it_wait_leader(c, 0, 30000) != 0, "a leader every node agrees on");
    it_wait_converged(c, 30000);
    it_cluster_free(c);
    pthread_mutex_destroy(&w.mu);
    free(w.rev);
    it_log("PASS");
    return 0;
}
