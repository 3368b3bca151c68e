/*
 * it_recover: a cluster that lost its majority for good comes back from one
 * survivor with --recover-members (docs/operations.md, "Recovering from the
 * loss of a majority").
 *
 * Three nodes take 100 acknowledged writes. The two followers are killed and
 * their data directories deleted: the leader alone can no longer commit, and
 * a write through it fails. The survivor (the leader, whose log holds every
 * committed entry) is stopped and started again with --recover-members
 * naming itself alone. The test asserts that:
 *
 *  - it leads a one-member cluster, serves every acknowledged write with its
 *    revision, and commits new writes;
 *  - it logged the recovery;
 *  - restarted with the flag still given, it does not apply it again (the
 *    marker file), says so, and still serves everything;
 *  - the two wiped nodes join again (--join 1, member add, promote), and the
 *    cluster is back to three voters holding every write;
 *  - the flag is refused on a data directory that holds nothing, and a
 *    member list that does not name the node is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "members.h"

#define WRITES 100

static void key_of(unsigned i, char *key, size_t len)
{
    snprintf(key, len, "rc/%04u", i);
}

static void value_of(unsigned i, char *value, size_t len)
{
    snprintf(value, len, "value %u", i);
}

/* Every acknowledged write, read from node id's own state (stale) or
 * through the leader (linearizable). */
static void check_all(struct it_cluster *c, unsigned id, const uint64_t *revs, bool stale)
{
    cairn_client *cl = it_client(c, id, 5000);
    struct cairn_get_opts opts = {.stale = stale};
    unsigned i;
    for (i = 0; i < WRITES; i++) {
        char key[32];
        char value[32];
        struct cairn_result *r = NULL;
        key_of(i, key, sizeof(key));
        value_of(i, value, sizeof(value));
        IT_ASSERT_OK(cairn_get(cl, key, strlen(key), &opts, &r), cl);
        IT_ASSERT(r->ops[0].n_kvs == 1 && r->ops[0].kvs[0].value_len == strlen(value) &&
                      memcmp(r->ops[0].kvs[0].value, value, strlen(value)) == 0,
                  "%s lost or changed", key);
        IT_ASSERT(r->ops[0].kvs[0].mod_revision == revs[i], "%s at revision %llu, acked at %llu",
                  key, (unsigned long long)r->ops[0].kvs[0].mod_revision,
                  (unsigned long long)revs[i]);
        cairn_result_free(r);
    }
    cairn_client_free(cl);
}

static void put_ok(struct it_cluster *c, unsigned id, const char *key, const char *value)
{
    cairn_client *cl = it_client(c, id, 10000);
    IT_ASSERT_OK(cairn_put(cl, key, strlen(key), value, strlen(value), NULL, NULL), cl);
    cairn_client_free(cl);
}

static unsigned members(struct it_cluster *c, unsigned id)
{
    struct cairn_status *st = NULL;
    unsigned n;
    IT_ASSERT(it_node_status(c, id, &st) == 0, "status of node %u", id);
    n = (unsigned)st->n_members;
    cairn_status_free(st);
    return n;
}

/* cairnd with these extra flags on a directory of its own must refuse to
 * start, naming the problem. */
static void expect_refused(const char *name, const char *const *extra, const char *needle)
{
    const char *args[16];
    char dir[IT_PATH_MAX];
    char out[IT_PATH_MAX];
    char raft[32];
    char client[32];
    char self[96];
    unsigned n = 0;
    int status;
    IT_FORMAT(dir, "%s/%s", it_dir(), name);
    IT_FORMAT(out, "%s/%s.out", it_dir(), name);
    IT_FORMAT(raft, "127.0.0.1:%d", it_pick_port());
    IT_FORMAT(client, "127.0.0.1:%d", it_pick_port());
    IT_FORMAT(self, "1=%s/%s", raft, client);
    args[n++] = "--id";
    args[n++] = "1";
    args[n++] = "--data-dir";
    args[n++] = dir;
    args[n++] = "--raft-addr";
    args[n++] = raft;
    args[n++] = "--client-addr";
    args[n++] = client;
    args[n++] = "--http-addr";
    args[n++] = "";
    args[n++] = "--recover-members";
    args[n++] = extra[0] != NULL ? extra[0] : self;
    args[n] = NULL;
    status = it_run_cairnd(args, out, 10000);
    IT_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) != 0, "%s: cairnd started", name);
    IT_ASSERT(it_file_contains(out, needle), "%s: no \"%s\" in %s", name, needle, out);
}

int main(void)
{
    struct it_cluster *c;
    struct it_node *survivor;
    uint64_t revs[WRITES];
    char spec[128];
    char cmd[IT_PATH_MAX + 16];
    cairn_client *cl;
    unsigned leader;
    unsigned i;
    size_t log_mark;
    int rv;

    it_init("it_recover", IT_TIMEOUT_S);
    c = it_cluster_new(3, NULL);
    leader = it_cluster_start(c);
    survivor = it_node(c, leader);

    cl = it_client(c, 0, 10000);
    for (i = 0; i < WRITES; i++) {
        char key[32];
        char value[32];
        struct cairn_result *r = NULL;
        key_of(i, key, sizeof(key));
        value_of(i, value, sizeof(value));
        IT_ASSERT_OK(cairn_put(cl, key, strlen(key), value, strlen(value), NULL, &r), cl);
        revs[i] = r->revision;
        cairn_result_free(r);
    }
    cairn_client_free(cl);
    it_log("%u writes acknowledged; node %u leads", WRITES, leader);

    /* The majority is gone for good: both followers killed, their disks
     * wiped. */
    for (i = 1; i <= 3; i++) {
        if (i != leader) {
            it_node_kill(c, i);
            IT_FORMAT(cmd, "rm -rf '%s'", it_node(c, i)->data_dir);
            IT_ASSERT(system(cmd) == 0, "%s", cmd);
        }
    }
    it_log("killed and wiped every node but %u", leader);

    /* Alone, the survivor cannot commit. */
    cl = it_client(c, leader, 3000);
    rv = cairn_put(cl, "rc/lost", 7, "x", 1, NULL, NULL);
    IT_ASSERT(rv != 0, "a write committed without a majority");
    it_log("a write without a majority: %s", cairn_errname(rv));
    cairn_client_free(cl);

    /* Recover: stop it, then start it forcing a configuration of itself. */
    IT_ASSERT(it_node_stop(c, leader, 15000) == 0, "the survivor did not stop cleanly");
    IT_FORMAT(spec, "%u=%s/%s", leader, survivor->raft_addr, survivor->client_addr);
    survivor->args[0] = "--recover-members";
    survivor->args[1] = spec;
    survivor->args[2] = NULL;
    log_mark = it_file_size(survivor->log_path);
    it_node_start(c, leader);
    IT_ASSERT(it_wait_leader(c, 0, 30000) == leader, "the survivor does not lead");
    {
        char *tail = it_read_file(survivor->log_path, log_mark);
        IT_ASSERT(tail != NULL &&
                      strstr(tail, "recovered: the cluster's configuration is now") != NULL,
                  "no recovery line in %s", survivor->log_path);
        free(tail);
    }
    IT_ASSERT(members(c, leader) == 1, "the configuration still lists %u members",
              members(c, leader));
    check_all(c, leader, revs, false);
    put_ok(c, leader, "rc/after", "written after the recovery");
    it_log("node %u leads alone, holds every acknowledged write and commits new ones", leader);

    /* The flag left in place applies once. */
    IT_ASSERT(it_node_stop(c, leader, 15000) == 0, "the survivor did not stop cleanly");
    log_mark = it_file_size(survivor->log_path);
    it_node_start(c, leader);
    IT_ASSERT(it_wait_leader(c, 0, 30000) == leader, "the survivor does not lead after a restart");
    {
        char *tail = it_read_file(survivor->log_path, log_mark);
        IT_ASSERT(tail != NULL && strstr(tail, "was applied already") != NULL &&
                      strstr(tail, "recovered: the cluster's") == NULL,
                  "the restart applied --recover-members again, or said nothing");
        free(tail);
    }
    check_all(c, leader, revs, false);
    put_ok(c, leader, "rc/after2", "and after a restart");
    it_log("restarted with the flag still given: not applied again");

    /* Back to three voters: the wiped nodes join as new members. */
    for (i = 1; i <= 3; i++) {
        if (i == leader) {
            continue;
        }
        it_member_start_joining(c, i);
        it_member_ensure(c, "add", i);
        it_members_wait_caught_up(c, i, 60000);
        it_member_ensure(c, "promote", i);
    }
    {
        struct it_members m;
        unsigned voters = 0;
        size_t k;
        it_members_wait(c, &m, 10000);
        for (k = 0; k < m.n; k++) {
            voters += strcmp(m.members[k].role, "voter") == 0;
        }
        IT_ASSERT(m.n == 3 && voters == 3, "%zu members, %u voters after the re-adds", m.n, voters);
    }
    it_wait_converged(c, 30000);
    for (i = 1; i <= 3; i++) {
        check_all(c, i, revs, true);
    }
    it_log("the wiped nodes joined again: three voters, every write on each");

    /* Misuse is refused before anything is touched. */
    {
        const char *none[] = {NULL};
        const char *other[] = {"2=127.0.0.1:1/127.0.0.1:2", NULL};
        expect_refused("fresh", none, "holds none");
        expect_refused("other", other, "does not list this node");
    }

    it_cluster_free(c);
    it_log("PASS");
    return 0;
}
