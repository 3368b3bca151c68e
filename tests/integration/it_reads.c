/*
 * it_reads: linearizable reads see every acknowledged write, and are batched
 * behind barriers; stale reads say at which revision they answered.
 *
 * A writer puts an increasing counter; after each acknowledgement it
 * publishes the value. Readers, each with its own client, note the newest
 * acknowledged value and then read the key linearizably: the answer must be
 * at least that value (a read that starts after a write finished must see
 * it). Meanwhile the leader counts reads and the barriers it proposed to
 * confirm them: with several readers in flight, one barrier serves every
 * read that arrived before it was proposed, so barriers must be far fewer
 * than reads. Finally a stale read from a follower reports a revision that
 * covers the value it returned.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define READERS 6
#define RUN_MS 3000
#define KEY "lin/counter"

struct shared
{
    struct it_cluster *cluster;
    atomic_ulong acked; /* newest acknowledged counter value */
    atomic_bool stop;
    atomic_ulong reads; /* linearizable reads that answered */
    atomic_ulong stale; /* reads that returned less than acked before them */
    atomic_ulong errors;
};

static void *writer_main(void *arg)
{
    struct shared *sh = arg;
    cairn_client *c = it_client(sh->cluster, 0, 10000);
    unsigned long i;
    for (i = 1; !atomic_load(&sh->stop); i++) {
        char value[32];
        int rv;
        snprintf(value, sizeof(value), "%lu", i);
        rv = cairn_put(c, KEY, strlen(KEY), value, strlen(value), NULL, NULL);
        if (rv != 0) {
            it_log("put %lu: %s: %s", i, cairn_errname(rv), cairn_errmsg(c));
            atomic_fetch_add(&sh->errors, 1);
            continue;
        }
        atomic_store(&sh->acked, i);
    }
    cairn_client_free(c);
    return NULL;
}

static void *reader_main(void *arg)
{
    struct shared *sh = arg;
    cairn_client *c = it_client(sh->cluster, 0, 10000);
    while (!atomic_load(&sh->stop)) {
        unsigned long before = atomic_load(&sh->acked);
        struct cairn_result *r = NULL;
        int rv = cairn_get(c, KEY, strlen(KEY), NULL, &r);
        if (rv == CAIRN_ENOTFOUND && before == 0) {
            cairn_result_free(r);
            continue;
        }
        if (rv != 0) {
            it_log("get: %s: %s", cairn_errname(rv), cairn_errmsg(c));
            atomic_fetch_add(&sh->errors, 1);
            cairn_result_free(r);
            continue;
        }
        if (strtoul(r->ops[0].kvs[0].value, NULL, 10) < before) {
            it_log("stale linearizable read: %s after %lu was acknowledged", r->ops[0].kvs[0].value,
                   before);
            atomic_fetch_add(&sh->stale, 1);
        }
        atomic_fetch_add(&sh->reads, 1);
        cairn_result_free(r);
    }
    cairn_client_free(c);
    return NULL;
}

/* Sum of a counter over every running node (a leader change moves it). */
static void sum_counters(struct it_cluster *c, uint64_t *barriers, uint64_t *reads)
{
    unsigned i;
    *barriers = 0;
    *reads = 0;
    for (i = 1; i <= c->n; i++) {
        struct cairn_status *st;
        IT_ASSERT(it_node_status(c, i, &st) == 0, "status of node %u", i);
        *barriers += st->read_barriers;
        *reads += st->linearizable_reads;
        cairn_status_free(st);
    }
}

int main(void)
{
    struct shared sh;
    pthread_t writer;
    pthread_t readers[READERS];
    uint64_t barriers0;
    uint64_t reads0;
    uint64_t barriers;
    uint64_t reads;
    unsigned leader;
    unsigned follower;
    unsigned i;

    it_init("it_reads", IT_TIMEOUT_S);
    memset(&sh, 0, sizeof(sh));
    sh.cluster = it_cluster_new(3, NULL);
    leader = it_cluster_start(sh.cluster);
    sum_counters(sh.cluster, &barriers0, &reads0);

    IT_ASSERT(pthread_create(&writer, NULL, writer_main, &sh) == 0, "writer thread");
    for (i = 0; i < READERS; i++) {
        IT_ASSERT(pthread_create(&readers[i], NULL, reader_main, &sh) == 0, "reader thread");
    }
    it_sleep_ms(RUN_MS);
    atomic_store(&sh.stop, true);
    pthread_join(writer, NULL);
    for (i = 0; i < READERS; i++) {
        pthread_join(readers[i], NULL);
    }
    sum_counters(sh.cluster, &barriers, &reads);
    barriers -= barriers0;
    reads -= reads0;
    it_log("%lu writes acknowledged; %lu linearizable reads, %llu barriers on the servers",
           atomic_load(&sh.acked), atomic_load(&sh.reads), (unsigned long long)barriers);
    IT_ASSERT(atomic_load(&sh.errors) == 0, "no read or write failed");
    IT_ASSERT(atomic_load(&sh.stale) == 0, "no linearizable read missed an acknowledged write");
    IT_ASSERT(atomic_load(&sh.acked) >= 50, "the writer made progress");
    IT_ASSERT(reads >= atomic_load(&sh.reads), "the servers counted every read");
    IT_ASSERT(reads >= 300, "enough reads to judge batching (%llu)", (unsigned long long)reads);
    /* One barrier per read would make these equal; batching measured about
     * one barrier per three reads with six readers. */
    IT_ASSERT(barriers * 5 <= reads * 3, "barriers are batched: %llu barriers for %llu reads",
              (unsigned long long)barriers, (unsigned long long)reads);

    /* A stale read from a follower answers locally, at a revision that
     * covers what it returned. */
    follower = leader == 1 ? 2 : 1;
    it_wait_converged(sh.cluster, 10000);
    {
        cairn_client *local = it_client(sh.cluster, follower, 5000);
        struct cairn_get_opts opts;
        struct cairn_result *r = NULL;
        memset(&opts, 0, sizeof(opts));
        opts.stale = true;
        IT_ASSERT_OK(cairn_get(local, KEY, strlen(KEY), &opts, &r), local);
        IT_ASSERT(r->revision >= r->ops[0].kvs[0].mod_revision,
                  "the stale answer's revision (%llu) covers its value's (%llu)",
                  (unsigned long long)r->revision,
                  (unsigned long long)r->ops[0].kvs[0].mod_revision);
        IT_ASSERT(strtoul(r->ops[0].kvs[0].value, NULL, 10) == atomic_load(&sh.acked),
                  "after convergence the follower has the last write");
        cairn_result_free(r);
        cairn_client_free(local);
    }
    it_cluster_free(sh.cluster);
    return 0;
}
