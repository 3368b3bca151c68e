/*
 * it_member_replace: a node whose data directory was wiped is replaced.
 *
 * Node 3 of a 3-node cluster (snapshots every 64 entries, so the log is
 * compacted) is killed and its data directory deleted. Restarted as it was
 * (--initial-cluster, empty), it refuses to start: it would be a voter that
 * lost its log. The operator removes
 * it, starts a fresh node 3 with --join 1, adds it (it catches up from a
 * snapshot: the log it needs is gone), and promotes it. Writes made before,
 * during and after are on every node, and the state hashes agree; the new
 * node 3 then serves as a voter: with node 1 stopped, the cluster still has
 * a majority.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "members.h"

static void put_range(struct it_cluster *c, unsigned from, unsigned to)
{
    cairn_client *cl = it_client(c, 0, 10000);
    unsigned i;
    for (i = from; i < to; i++) {
        char key[32];
        snprintf(key, sizeof(key), "r/%06u", i);
        IT_ASSERT_OK(cairn_put(cl, key, strlen(key), key, strlen(key), NULL, NULL), cl);
    }
    cairn_client_free(cl);
}

static void check_range(struct it_cluster *c, unsigned id, unsigned n)
{
    cairn_client *alone = it_client(c, id, 10000);
    struct cairn_get_opts all = {.stale = true, .prefix = true};
    struct cairn_result *r = NULL;
    IT_ASSERT_OK(cairn_get(alone, "r/", 2, &all, &r), alone);
    IT_ASSERT(r->ops[0].n_kvs == n, "node %u holds %zu keys, not %u", id, r->ops[0].n_kvs, n);
    cairn_result_free(r);
    cairn_client_free(alone);
}

int main(void)
{
    struct it_cluster *c;
    struct it_members list;
    struct cairn_status *st = NULL;
    char cmd[IT_PATH_MAX + 16];
    unsigned leader;
    unsigned i;

    it_init("it_member_replace", IT_TIMEOUT_S);
    c = it_cluster_new(3, it_small_snapshot_flags);
    leader = it_cluster_start(c);
    if (leader == 3) {
        char *json = NULL;
        IT_ASSERT_OK(cairn_leader_transfer(c->admin, 1, &json, NULL), c->admin);
        free(json);
    }
    put_range(c, 0, 300);

    it_node_kill(c, 3);
    IT_FORMAT(cmd, "rm -rf %s", it_node(c, 3)->data_dir);
    IT_ASSERT(system(cmd) == 0, "%s", cmd);
    it_log("node 3 killed and its data directory wiped");
    put_range(c, 300, 500);

    /* Restarted as it was (--initial-cluster, now on an empty directory), it
     * must not rejoin as a voter that lost its log: it refuses to start and
     * says what to do, and nothing of it is left behind. */
    {
        size_t mark = it_file_size(it_node(c, 3)->log_path);
        int64_t deadline = it_now_ms() + 10000;
        int status = 0;
        char *log;
        it_node_start(c, 3);
        while (!it_node_exited(c, 3, &status)) {
            IT_ASSERT(it_now_ms() < deadline, "node 3 did not refuse to start on empty data");
            it_sleep_ms(20);
        }
        IT_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) != 0, "node 3 exited with %#x", status);
        log = it_read_file(it_node(c, 3)->log_path, mark);
        IT_ASSERT(log != NULL && strstr(log, "this node's data was lost") != NULL &&
                      strstr(log, "cairnctl member remove 3") != NULL,
                  "node 3's log does not say its data was lost:\n%s", log != NULL ? log : "");
        free(log);
        IT_FORMAT(cmd, "rm -rf %s", it_node(c, 3)->data_dir);
        IT_ASSERT(system(cmd) == 0, "%s", cmd);
        it_log("node 3, restarted empty with --initial-cluster, refused to start");
    }

    /* Out with the dead node; in with a fresh one under the same id. */
    it_member_ensure(c, "remove", 3);
    it_members_wait(c, &list, 10000);
    IT_ASSERT(list.n == 2 && it_members_find(&list, 3) == NULL, "node 3 is gone");
    it_member_start_joining(c, 3);
    it_member_ensure(c, "add", 3);
    put_range(c, 500, 600);
    it_members_wait_caught_up(c, 3, 30000);
    it_member_ensure(c, "promote", 3);
    it_members_wait(c, &list, 10000);
    IT_ASSERT(list.n == 3 && strcmp(it_members_find(&list, 3)->role, "voter") == 0,
              "node 3 is a voter again");
    put_range(c, 600, 700);

    it_wait_converged(c, 30000);
    for (i = 1; i <= 3; i++) {
        check_range(c, i, 700);
    }
    /* It started empty, waiting to join, and caught up from a snapshot (the
     * log it needed was compacted). */
    IT_ASSERT(it_member_snapshots_restored(c, 3) >= 1, "node 3 restored no snapshot");
    IT_ASSERT(it_file_contains(it_node(c, 3)->log_path, "joining: waiting"),
              "node 3 started as a joining node");
    IT_ASSERT(it_node_status(c, 3, &st) == 0, "status of node 3");
    IT_ASSERT(st->applied_index > 64, "node 3 applied %llu", (unsigned long long)st->applied_index);
    cairn_status_free(st);

    /* The new node 3 counts: with node 1 down, nodes 2 and 3 are a majority. */
    it_node_stop(c, 1, 10000);
    put_range(c, 700, 720);
    it_node_start(c, 1);
    it_wait_converged(c, 30000);
    check_range(c, 3, 720);
    it_cluster_free(c);
    it_log("PASS");
    return 0;
}
