/*
 * it_rolling_restart: every node of a 3-node cluster is restarted in turn
 * (SIGTERM, exit 0, start again, caught up) while a writer and a reader keep
 * calling, and no call fails (docs/operations.md, "Rolling restarts and
 * upgrades").
 *
 * A node stopping with SIGTERM answers CAIRN_ESHUTDOWN to new requests,
 * finishes its writes in flight, and hands leadership over when it leads;
 * libcairn retries what certainly did not happen. So the test asks more than
 * "no write lost": every write is acknowledged (no CAIRN_EUNKNOWN, no error
 * at all), every linearizable read succeeds, each read sees at least the
 * last write acknowledged before it began, and at the end every node holds
 * every write. It logs the longest pause between acknowledgements around
 * each restart; tests/ops/ops_bench.py measures that against its target.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WRITES_MAX 100000
#define SETTLE_WRITES 100 /* acknowledged writes wanted between restarts */

struct load
{
    struct it_cluster *cluster;
    pthread_t writer;
    pthread_t reader;
    pthread_mutex_t mu;
    bool stop;
    unsigned acked;      /* writes 0..acked-1 acknowledged, in order */
    uint64_t last_rev;   /* revision of the last acknowledged write */
    int64_t last_ack_ms; /* when it was acknowledged */
    int64_t max_gap_ms;  /* longest time between two acknowledgements, since reset */
    unsigned write_errors;
    unsigned reads;
    unsigned read_errors;
    unsigned stale_reads; /* a read older than a write acknowledged before it began */
    char last_err[256];
};

static void key_of(unsigned i, char *key, size_t len)
{
    snprintf(key, len, "rr/%06u", i);
}

static void *writer_main(void *arg)
{
    struct load *l = arg;
    cairn_client *c = it_client(l->cluster, 0, 10000);
    unsigned i;
    for (i = 0; i < WRITES_MAX; i++) {
        char key[32];
        struct cairn_result *r = NULL;
        int64_t now;
        int rv;
        pthread_mutex_lock(&l->mu);
        if (l->stop) {
            pthread_mutex_unlock(&l->mu);
            break;
        }
        pthread_mutex_unlock(&l->mu);
        key_of(i, key, sizeof(key));
        rv = cairn_put(c, key, strlen(key), key, strlen(key), NULL, &r);
        now = it_now_ms();
        pthread_mutex_lock(&l->mu);
        if (rv == 0) {
            if (now - l->last_ack_ms > l->max_gap_ms) {
                l->max_gap_ms = now - l->last_ack_ms;
            }
            l->acked = i + 1;
            l->last_rev = r->revision;
            l->last_ack_ms = now;
        } else {
            l->write_errors++;
            snprintf(l->last_err, sizeof(l->last_err), "write %u: %s: %s", i, cairn_errname(rv),
                     cairn_errmsg(c));
        }
        pthread_mutex_unlock(&l->mu);
        cairn_result_free(r);
        if (rv != 0) {
            break; /* the test fails; keep the first error */
        }
        it_sleep_ms(2);
    }
    cairn_client_free(c);
    return NULL;
}

static void *reader_main(void *arg)
{
    struct load *l = arg;
    cairn_client *c = it_client(l->cluster, 0, 10000);
    for (;;) {
        struct cairn_result *r = NULL;
        uint64_t floor;
        int rv;
        pthread_mutex_lock(&l->mu);
        if (l->stop) {
            pthread_mutex_unlock(&l->mu);
            break;
        }
        floor = l->last_rev;
        pthread_mutex_unlock(&l->mu);
        rv = cairn_get(c, "rr/", 3, &(struct cairn_get_opts){.prefix = true, .limit = 1}, &r);
        pthread_mutex_lock(&l->mu);
        l->reads++;
        if (rv != 0) {
            l->read_errors++;
            snprintf(l->last_err, sizeof(l->last_err), "read: %s: %s", cairn_errname(rv),
                     cairn_errmsg(c));
        } else if (r->revision < floor) {
            l->stale_reads++;
        }
        pthread_mutex_unlock(&l->mu);
        cairn_result_free(r);
        it_sleep_ms(5);
    }
    cairn_client_free(c);
    return NULL;
}

static unsigned acked(struct load *l)
{
    unsigned n;
    pthread_mutex_lock(&l->mu);
    n = l->acked;
    pthread_mutex_unlock(&l->mu);
    return n;
}

static void check_clean(struct load *l, const char *when)
{
    pthread_mutex_lock(&l->mu);
    IT_ASSERT(l->write_errors == 0 && l->read_errors == 0 && l->stale_reads == 0,
              "%s: %u failed writes, %u failed reads, %u stale reads; last: %s", when,
              l->write_errors, l->read_errors, l->stale_reads, l->last_err);
    pthread_mutex_unlock(&l->mu);
}

static void wait_progress(struct load *l, unsigned want, const char *when)
{
    int64_t deadline = it_now_ms() + 30000;
    while (acked(l) < want) {
        check_clean(l, when);
        IT_ASSERT(it_now_ms() < deadline, "%s: only %u of %u writes acknowledged", when, acked(l),
                  want);
        it_sleep_ms(10);
    }
}

static void wait_caught_up(struct it_cluster *c, struct load *l, unsigned id)
{
    int64_t deadline = it_now_ms() + 30000;
    for (;;) {
        struct cairn_status *st = NULL;
        uint64_t want;
        bool done;
        check_clean(l, "while a node caught up");
        pthread_mutex_lock(&l->mu);
        want = l->last_rev;
        pthread_mutex_unlock(&l->mu);
        done = it_node_status(c, id, &st) == 0 && st->revision >= want;
        cairn_status_free(st);
        if (done) {
            return;
        }
        IT_ASSERT(it_now_ms() < deadline, "node %u did not catch up", id);
        it_sleep_ms(20);
    }
}

int main(void)
{
    struct it_cluster *c;
    struct load l;
    unsigned leader;
    unsigned order[3];
    unsigned id;
    unsigned i;
    uint64_t rev;

    it_init("it_rolling_restart", IT_TIMEOUT_S);
    c = it_cluster_new(3, NULL);
    leader = it_cluster_start(c);
    it_log("node %u leads", leader);

    memset(&l, 0, sizeof(l));
    l.cluster = c;
    l.last_ack_ms = it_now_ms();
    pthread_mutex_init(&l.mu, NULL);
    IT_ASSERT(pthread_create(&l.writer, NULL, writer_main, &l) == 0, "pthread_create");
    IT_ASSERT(pthread_create(&l.reader, NULL, reader_main, &l) == 0, "pthread_create");
    wait_progress(&l, SETTLE_WRITES, "before the restarts");

    /* Followers first, the leader last, as an operator would; the leader's
     * turn is the one that moves leadership. */
    {
        unsigned n = 0;
        for (id = 1; id <= 3; id++) {
            if (id != leader) {
                order[n++] = id;
            }
        }
        order[2] = leader;
    }
    for (i = 0; i < 3; i++) {
        int64_t gap;
        int status;
        id = order[i];
        pthread_mutex_lock(&l.mu);
        l.max_gap_ms = 0;
        pthread_mutex_unlock(&l.mu);
        status = it_node_stop(c, id, 15000);
        IT_ASSERT(status == 0, "node %u exited with status %d", id, status);
        it_node_start(c, id);
        it_wait_leader(c, 0, 30000);
        /* Caught up: its applied revision reaches the writer's. */
        wait_caught_up(c, &l, id);
        wait_progress(&l, acked(&l) + SETTLE_WRITES, "after a restart");
        pthread_mutex_lock(&l.mu);
        gap = l.max_gap_ms;
        pthread_mutex_unlock(&l.mu);
        it_log("restarted node %u%s: longest pause between acknowledged writes %lld ms", id,
               id == leader ? " (the leader)" : "", (long long)gap);
    }
    IT_ASSERT(it_leader(c) != leader, "leadership did not move off the restarted leader");

    pthread_mutex_lock(&l.mu);
    l.stop = true;
    pthread_mutex_unlock(&l.mu);
    pthread_join(l.writer, NULL);
    pthread_join(l.reader, NULL);
    check_clean(&l, "at the end");
    it_log("%u writes and %u reads, none failed", l.acked, l.reads);

    /* Every node holds every write. */
    rev = it_wait_converged(c, 30000);
    for (id = 1; id <= 3; id++) {
        cairn_client *alone = it_client(c, id, 10000);
        struct cairn_result *r = NULL;
        IT_ASSERT_OK(
            cairn_get(alone, "rr/", 3, &(struct cairn_get_opts){.stale = true, .prefix = true}, &r),
            alone);
        IT_ASSERT(r->revision == rev && r->ops[0].n_kvs == l.acked,
                  "node %u holds %zu of %u writes at revision %llu", id, r->ops[0].n_kvs, l.acked,
                  (unsigned long long)r->revision);
        cairn_result_free(r);
        cairn_client_free(alone);
    }

    it_cluster_free(c);
    pthread_mutex_destroy(&l.mu);
    it_log("PASS");
    return 0;
}
