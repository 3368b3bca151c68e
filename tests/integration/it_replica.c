/*
 * it_replica: a read replica, a standby member (docs/operations.md, "Read
 * replicas"), serves stale reads and watches from its own state, waits for
 * a min_revision, sends the rest on to the leader, and has no vote.
 *
 * A 3-voter cluster gets node 4 (--join 1, member add, never promoted). A
 * client that knows only the replica's endpoint then:
 *
 *  - watches a prefix: the replica itself serves the watch (its status counts
 *    the watcher) and delivers a write made through the voters;
 *  - reads that write stale with min_revision = its revision: the replica
 *    answers at or past that revision;
 *  - writes and reads linearizably: both are sent on to the leader and
 *    succeed;
 *  - and the replica's applied index and revision are visible in its status.
 *
 * Then two voters are stopped: with the replica up, the remaining voter and
 * the replica are not a majority (a standby does not vote), so a write
 * fails, while the replica still answers stale reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "members.h"

int main(void)
{
    struct it_cluster *c;
    cairn_client *voters;
    cairn_client *replica;
    cairn_watcher *w = NULL;
    struct cairn_watch_opts wo = {.prefix = true};
    struct cairn_result *r = NULL;
    struct cairn_status *st = NULL;
    struct it_members m;
    const struct it_member *me;
    uint64_t rev;
    unsigned leader;
    unsigned id;
    bool seen = false;
    int64_t deadline;
    int rv;

    it_init("it_replica", IT_TIMEOUT_S);
    c = it_cluster_new(4, NULL);
    /* Nodes 1-3 form the cluster; node 4 joins it later. */
    it_members_initial(c, 3);
    for (id = 1; id <= 3; id++) {
        it_node_start(c, id);
    }
    leader = it_members_wait(c, &m, 30000);
    it_member_start_joining(c, 4);
    it_member_ensure(c, "add", 4);
    it_members_wait_caught_up(c, 4, 30000);
    it_members_wait(c, &m, 10000);
    me = it_members_find(&m, 4);
    IT_ASSERT(me != NULL && strcmp(me->role, "standby") == 0, "node 4 is not a standby");
    it_log("node 4 is a standby, caught up");

    voters = it_client(c, 0, 10000);
    replica = it_client(c, 4, 10000);

    /* A watch through the replica-only client is served by the replica. */
    IT_ASSERT_OK(cairn_watch(replica, "rep/", 4, &wo, NULL, NULL, &w), replica);
    IT_ASSERT(it_node_status(c, 4, &st) == 0 && st->watchers == 1,
              "the replica does not serve the watch");
    cairn_status_free(st);

    IT_ASSERT_OK(cairn_put(voters, "rep/a", 5, "one", 3, NULL, &r), voters);
    rev = r->revision;
    cairn_result_free(r);
    deadline = it_now_ms() + 10000;
    while (!seen) {
        struct cairn_watch_update *u = NULL;
        IT_ASSERT(it_now_ms() < deadline, "the replica's watch did not deliver revision %llu",
                  (unsigned long long)rev);
        if (cairn_watch_next(w, 200, &u) == 0) {
            seen = u->kind == CAIRN_WATCH_EVENTS && u->revision >= rev;
            cairn_watch_update_free(u);
        }
    }
    it_log("the replica's watch delivered revision %llu", (unsigned long long)rev);

    /* Read your write on the replica. */
    {
        struct cairn_get_opts o = {.stale = true, .min_revision = rev};
        IT_ASSERT_OK(cairn_get(replica, "rep/a", 5, &o, &r), replica);
        IT_ASSERT(r->revision >= rev && r->ops[0].n_kvs == 1 && r->ops[0].kvs[0].value_len == 3 &&
                      memcmp(r->ops[0].kvs[0].value, "one", 3) == 0,
                  "the replica's read at min_revision %llu", (unsigned long long)rev);
        cairn_result_free(r);
    }

    /* Writes and linearizable reads go on to the leader. */
    IT_ASSERT_OK(cairn_put(replica, "rep/b", 5, "two", 3, NULL, &r), replica);
    rev = r->revision;
    cairn_result_free(r);
    IT_ASSERT_OK(cairn_get(replica, "rep/b", 5, NULL, &r), replica);
    IT_ASSERT(r->ops[0].n_kvs == 1 && r->revision >= rev, "linearizable read through a replica");
    cairn_result_free(r);
    it_log("a write and a linearizable read through the replica's endpoint went to the leader");

    /* Its progress is visible. */
    deadline = it_now_ms() + 10000;
    for (;;) {
        IT_ASSERT(it_node_status(c, 4, &st) == 0, "status of the replica");
        if (st->revision >= rev) {
            break;
        }
        cairn_status_free(st);
        IT_ASSERT(it_now_ms() < deadline, "the replica's status never reached %llu",
                  (unsigned long long)rev);
        it_sleep_ms(20);
    }
    IT_ASSERT(st->applied_index > 0 && st->applied_index <= st->commit_index,
              "the replica reports applied %llu of %llu", (unsigned long long)st->applied_index,
              (unsigned long long)st->commit_index);
    cairn_status_free(st);

    cairn_watch_cancel(w);

    /* No vote: one voter and the replica cannot commit. */
    leader = it_members_wait(c, &m, 10000);
    for (id = 1; id <= 3; id++) {
        if (id != leader) {
            break;
        }
    }
    it_node_kill(c, leader);
    it_node_kill(c, id);
    {
        cairn_client *one = it_client(c, 0, 3000);
        rv = cairn_put(one, "rep/c", 5, "three", 5, NULL, NULL);
        IT_ASSERT(rv != 0, "a write committed with one voter of three and a standby");
        it_log("with one voter and the replica left, a write fails: %s", cairn_errname(rv));
        cairn_client_free(one);
    }
    {
        struct cairn_get_opts o = {.stale = true};
        IT_ASSERT_OK(cairn_get(replica, "rep/b", 5, &o, &r), replica);
        IT_ASSERT(r->ops[0].n_kvs == 1, "the replica's stale read after the voters died");
        cairn_result_free(r);
    }
    it_log("the replica still answers stale reads");

    cairn_client_free(voters);
    cairn_client_free(replica);
    it_cluster_free(c);
    it_log("PASS");
    return 0;
}
