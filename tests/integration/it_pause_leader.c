/*
 * it_pause_leader: a leader paused (SIGSTOP) while serving linearizable
 * reads, deposed meanwhile, survives being resumed.
 *
 * Found by the chaos harness (jepsen/local): when the resumed leader learned
 * of the new term, raft failed its pending read barrier while converting it
 * to follower, and the read batcher proposed the next barrier from inside
 * that callback; raft's leader check still passed, its leader state was
 * already gone, and the node crashed in libraft (SIGSEGV). The test keeps a
 * reader thread issuing linearizable reads and pauses the leader ROUNDS
 * times, each long enough for the other two to elect a new one; after every
 * resume the old leader must still be running, and at the end every node
 * must stop cleanly (it_cluster_free checks exit statuses).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define ROUNDS 4
#define ELECTION_WAIT_MS 15000

struct reader
{
    struct it_cluster *cluster;
    pthread_t thread;
    volatile bool stop;
    unsigned ok;
};

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    cairn_client *cl = it_client(rd->cluster, 0, 1000);
    while (!rd->stop) {
        struct cairn_result *res = NULL;
        if (cairn_get(cl, "pl", 2, NULL, &res) == 0) {
            rd->ok++;
        }
        cairn_result_free(res);
    }
    cairn_client_free(cl);
    return NULL;
}

/* Wait until the nodes other than `paused` agree on a leader other than it. */
static unsigned wait_new_leader(struct it_cluster *c, unsigned paused)
{
    int64_t deadline = it_now_ms() + ELECTION_WAIT_MS;
    for (;;) {
        unsigned agreed = 0;
        bool same = true;
        unsigned i;
        for (i = 1; i <= c->n && same; i++) {
            struct cairn_status *st = NULL;
            if (i == paused) {
                continue;
            }
            if (it_node_status(c, i, &st) != 0) {
                same = false;
                break;
            }
            if (st->leader_id == 0 || st->leader_id == paused ||
                (agreed != 0 && st->leader_id != agreed)) {
                same = false;
            }
            agreed = (unsigned)st->leader_id;
            cairn_status_free(st);
        }
        if (same && agreed != 0) {
            return agreed;
        }
        IT_ASSERT(it_now_ms() < deadline, "no new leader while node %u was paused", paused);
        it_sleep_ms(50);
    }
}

int main(void)
{
    struct it_cluster *c;
    struct reader rd;
    struct cairn_result *res = NULL;
    unsigned round;
    int status;

    it_init("it_pause_leader", IT_TIMEOUT_S);
    c = it_cluster_new(3, NULL);
    it_cluster_start(c);
    IT_ASSERT_OK(cairn_put(c->admin, "pl", 2, "v", 1, NULL, &res), c->admin);
    cairn_result_free(res);
    memset(&rd, 0, sizeof(rd));
    rd.cluster = c;
    IT_ASSERT(pthread_create(&rd.thread, NULL, reader_main, &rd) == 0, "thread");

    for (round = 1; round <= ROUNDS; round++) {
        unsigned leader = it_wait_leader(c, 0, 20000);
        unsigned next;
        it_sleep_ms(300); /* reads in flight at the leader */
        it_log("round %u: pausing the leader, node %u (%u reads so far)", round, leader, rd.ok);
        it_node_signal(c, leader, SIGSTOP);
        next = wait_new_leader(c, leader);
        it_log("round %u: node %u leads; resuming node %u", round, next, leader);
        it_node_signal(c, leader, SIGCONT);
        it_sleep_ms(1500);
        IT_ASSERT(!it_node_exited(c, leader, &status),
                  "node %u died after being resumed (wait status 0x%x)", leader, status);
    }
    rd.stop = true;
    pthread_join(rd.thread, NULL);
    IT_ASSERT(rd.ok > 100, "the reader made too little progress (%u reads)", rd.ok);
    it_wait_converged(c, 20000);
    it_cluster_free(c);
    return 0;
}
