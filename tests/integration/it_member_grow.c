/*
 * it_member_grow: a 3-node cluster grows to 5 and shrinks back to 3 while a
 * writer writes without pause; nothing acknowledged is lost and service
 * never stops.
 *
 *  - nodes 4 and 5 start with --join 1 and wait; each is added (a standby),
 *    catches up (from a snapshot: the nodes snapshot every 64 entries and
 *    keep 16 behind, so the log a new node needs is gone), and is promoted
 *    to voter;
 *  - leadership is transferred to node 5 on request (leader transfer --to);
 *  - node 4 is demoted, then removed; node 5, the leader, is removed (it
 *    hands leadership over first, and libcairn follows the redirect);
 *  - each removed node stops by itself, exit status 0, with the log line
 *    "removed from the cluster (configuration at index N no longer lists
 *    node ID); stopping";
 *  - every acknowledged write is on each of the 3 remaining nodes, and their
 *    state hashes agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "writer.h"
#include "members.h"

#define WRITES_MAX 100000
#define CATCH_UP_MS 30000
#define EXIT_MS 20000

static void expect_role(struct it_cluster *c, unsigned id, const char *role)
{
    struct it_members list;
    const struct it_member *m;
    it_members_wait(c, &list, 10000);
    m = it_members_find(&list, id);
    if (role == NULL) {
        IT_ASSERT(m == NULL, "node %u is still listed (%s)", id, m->role);
        return;
    }
    IT_ASSERT(m != NULL, "node %u is not listed", id);
    IT_ASSERT(strcmp(m->role, role) == 0, "node %u is a %s, not a %s", id, m->role, role);
}

static void grow(struct it_cluster *c, struct it_writer *w, unsigned id)
{
    it_member_start_joining(c, id);
    it_member_ensure(c, "add", id);
    expect_role(c, id, "standby");
    it_members_wait_caught_up(c, id, CATCH_UP_MS);
    /* The log it needed was compacted long ago: it came as a snapshot. */
    IT_ASSERT(it_member_snapshots_restored(c, id) >= 1, "node %u restored no snapshot", id);
    it_writer_wait(w, 50, 30000);
    it_member_ensure(c, "promote", id);
    expect_role(c, id, "voter");
    it_writer_wait(w, 50, 30000);
}

int main(void)
{
    struct it_cluster *c;
    struct it_writer w;
    struct it_members list;
    char *json = NULL;
    size_t mark4;
    size_t mark5;
    unsigned leader;
    unsigned i;

    it_init("it_member_grow", IT_TIMEOUT_S);
    c = it_cluster_new(5, it_small_snapshot_flags);
    it_members_initial(c, 3);
    for (i = 1; i <= 3; i++) {
        it_node_start(c, i);
    }
    leader = it_members_wait(c, &list, 30000);
    IT_ASSERT(list.n == 3, "the cluster starts with 3 members, not %zu", list.n);
    it_log("node %u leads a cluster of 3", leader);

    it_writer_start(&w, c, "g/", WRITES_MAX);
    it_writer_wait(&w, 200, 30000);

    /* Grow: 3 -> 5. */
    grow(c, &w, 4);
    grow(c, &w, 5);
    it_members_wait(c, &list, 10000);
    IT_ASSERT(list.n == 5, "5 members after growing, not %zu", list.n);
    it_log("grown to 5 with %u writes acknowledged", it_writer_acked(&w));

    /* Leadership to node 5 on request. */
    IT_ASSERT_OK(cairn_leader_transfer(c->admin, 5, &json, NULL), c->admin);
    it_log("leader transfer: %s", json);
    /* Answered once node 5 led (it may not for long on a loaded machine). */
    IT_ASSERT(strstr(json, "\"leader_id\":5,") != NULL, "the transfer answered %s", json);
    free(json);
    it_writer_wait(&w, 50, 30000);

    /* Shrink: 5 -> 3. Node 4 goes demoted first, node 5 (leading) at once. */
    mark4 = it_file_size(it_node(c, 4)->log_path);
    mark5 = it_file_size(it_node(c, 5)->log_path);
    it_member_ensure(c, "demote", 4);
    expect_role(c, 4, "standby");
    it_writer_wait(&w, 50, 30000);
    it_member_ensure(c, "remove", 4);
    expect_role(c, 4, NULL);
    it_member_wait_removed_exit(c, 4, mark4, EXIT_MS);
    it_writer_wait(&w, 50, 30000);
    leader = it_members_wait(c, &list, 10000);
    it_log("removing node 5, %s", leader == 5 ? "the leader" : "a follower");
    it_member_ensure(c, "remove", 5);
    leader = it_members_wait(c, &list, 10000);
    IT_ASSERT(leader != 5 && list.n == 3 && it_members_find(&list, 5) == NULL,
              "node 5 removed (leader %u, %zu members)", leader, list.n);
    it_member_wait_removed_exit(c, 5, mark5, EXIT_MS);
    it_writer_wait(&w, 200, 30000);

    it_writer_stop(&w);
    /* Service never stopped: an election timeout (1 s) and a retry at most. */
    IT_ASSERT(w.longest_gap_ms < 5000, "writes paused for %lld ms", (long long)w.longest_gap_ms);

    it_wait_converged(c, 30000);
    for (i = 1; i <= c->n; i++) {
        if (it_node_running(c, i)) {
            it_writer_check(&w, c, i);
        }
    }
    it_log("the 3 remaining nodes hold all %u acknowledged writes", w.acked);
    it_cluster_free(c);
    it_writer_free(&w);
    it_log("PASS");
    return 0;
}
