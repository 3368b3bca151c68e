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
 * only checks that if one is there, it has the value that was sent. The
 * writer and the checks are tests/integration/writer.c's.
 */
#include "harness.h"
#include "writer.h"

#define WRITES_MAX 200000
#define PHASE_WRITES 150 /* acknowledged writes wanted in each phase */
#define PHASE_TIMEOUT_MS 40000

int main(void)
{
    struct it_cluster *c;
    struct it_writer w;
    unsigned leader;
    unsigned new_leader;
    uint64_t rev;
    uint64_t last;
    unsigned i;
    int64_t t_kill;

    it_init("it_kill_leader", IT_TIMEOUT_S);
    c = it_cluster_new(3, NULL);
    leader = it_cluster_start(c);

    it_writer_start(&w, c, "kl/", WRITES_MAX);
    it_writer_wait(&w, PHASE_WRITES, PHASE_TIMEOUT_MS);
    t_kill = it_now_ms();
    it_node_kill(c, leader);
    it_log("killed leader %u after %u acknowledged writes", leader, it_writer_acked(&w));

    new_leader = it_wait_leader(c, leader, 30000);
    it_log("node %u leads after %lld ms", new_leader, (long long)(it_now_ms() - t_kill));
    it_writer_wait(&w, PHASE_WRITES, PHASE_TIMEOUT_MS);
    it_log("writes resumed: %u acknowledged now", it_writer_acked(&w));

    /* The killed node comes back, learns the leader, and more writes
     * commit with it in the cluster again. */
    it_node_start(c, leader);
    it_wait_leader(c, 0, 30000);
    it_log("node %u rejoined", leader);
    it_writer_wait(&w, PHASE_WRITES, PHASE_TIMEOUT_MS);

    it_writer_stop(&w);
    last = it_writer_check_order(&w);

    /* Every node must know the leader again (the restarted one included)
     * before the replicas can converge. */
    it_wait_leader(c, 0, 30000);
    rev = it_wait_converged(c, 60000);
    it_log("converged at revision %llu", (unsigned long long)rev);
    IT_ASSERT(rev >= last, "cluster revision %llu is behind an acknowledged write at %llu",
              (unsigned long long)rev, (unsigned long long)last);
    for (i = 1; i <= c->n; i++) {
        it_writer_check(&w, c, i);
    }

    it_writer_free(&w);
    it_cluster_free(c);
    it_log("PASS");
    return 0;
}
