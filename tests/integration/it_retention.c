/*
 * it_retention: retention policies on a real 3-node cluster. Age limits are
 * applied by sweep entries that the leader proposes (kv reads no clock), so
 * only a running cluster shows that keys nobody writes lose their old
 * versions, on every replica alike.
 *
 *  1. A policy set through the client is listed in every node's status,
 *     after the policy for "".
 *  2. While no policy has an age limit the leader proposes no sweep: the
 *     applied index stands still while the cluster idles.
 *  3. With an age limit, a key nobody writes loses its expired past versions
 *     on every node (a stale read at a trimmed revision answers
 *     CAIRN_ECOMPACTED on each), its newest version stays, and a key under a
 *     policy without an age keeps its history.
 *  4. Removing the aged policy stops the sweeps again.
 *  5. The cluster refuses a policy beyond the 1024th, and a prefix beyond
 *     the key limit, with messages that say so; removing one makes room.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define TIMEOUT_MS 10000
/* cairnd's --retention-sweep-ms here, and the age limit under test. */
#define SWEEP_MS 200
#define AGE_MS 2000
/* How long the cluster idles to show that no sweep is proposed. */
#define IDLE_MS (10 * SWEEP_MS)

static void set_policy(cairn_client *cl, const char *prefix, uint64_t versions, uint64_t age_ms)
{
    struct cairn_retention p;
    memset(&p, 0, sizeof(p));
    p.prefix = prefix;
    p.prefix_len = strlen(prefix);
    p.versions = versions;
    p.age_ms = age_ms;
    IT_ASSERT_OK(cairn_set_retention(cl, &p), cl);
}

static uint64_t put(cairn_client *cl, const char *key, const char *value)
{
    struct cairn_result *r = NULL;
    uint64_t rev;
    IT_ASSERT_OK(cairn_put(cl, key, strlen(key), value, strlen(value), NULL, &r), cl);
    rev = r->revision;
    cairn_result_free(r);
    return rev;
}

static uint64_t applied_index(struct it_cluster *c, unsigned id)
{
    struct cairn_status *st = NULL;
    uint64_t index;
    int rv = it_node_status(c, id, &st);
    IT_ASSERT(rv == 0, "status of node %u: %s", id, cairn_errname(rv));
    index = st->applied_index;
    cairn_status_free(st);
    return index;
}

/* Step 2 and 4: nothing is proposed while the cluster idles. */
static void expect_no_sweeps(struct it_cluster *c, unsigned leader, const char *when)
{
    uint64_t before;
    uint64_t after;
    it_wait_converged(c, TIMEOUT_MS);
    before = applied_index(c, leader);
    it_sleep_ms(IDLE_MS);
    after = applied_index(c, leader);
    IT_ASSERT(after == before, "%s: the applied index moved from %llu to %llu while idle", when,
              (unsigned long long)before, (unsigned long long)after);
}

/* A stale get of key at rev through node id alone: 0 or a CAIRN_E* code. */
static int stale_get(struct it_cluster *c, unsigned id, const char *key, uint64_t rev)
{
    cairn_client *alone = it_client(c, id, TIMEOUT_MS);
    struct cairn_get_opts go;
    struct cairn_result *r = NULL;
    int rv;
    memset(&go, 0, sizeof(go));
    go.stale = true;
    go.revision = rev;
    rv = cairn_get(alone, key, strlen(key), &go, &r);
    cairn_result_free(r);
    cairn_client_free(alone);
    return rv;
}

int main(void)
{
    static const char *const args[] = {"--retention-sweep-ms", "200", NULL}; /* SWEEP_MS */
    struct it_cluster *c;
    cairn_client *cl;
    struct cairn_result *r = NULL;
    unsigned leader;
    unsigned id;
    uint64_t first;
    uint64_t kept;
    int64_t deadline;
    int i;

    it_init("it_retention", IT_TIMEOUT_S);
    c = it_cluster_new(3, args);
    leader = it_cluster_start(c);
    cl = it_client(c, 0, TIMEOUT_MS);

    it_log("1. a policy is listed by every node");
    set_policy(cl, "cnt/", 2, 0);
    it_wait_converged(c, TIMEOUT_MS);
    for (id = 1; id <= c->n; id++) {
        struct cairn_status *st = NULL;
        IT_ASSERT(it_node_status(c, id, &st) == 0, "status of node %u", id);
        IT_ASSERT(st->n_retention == 2, "node %u lists %zu policies", id, st->n_retention);
        IT_ASSERT(st->retention[0].prefix_len == 0 && st->retention[0].versions == 10 &&
                      st->retention[0].age_ms == 0,
                  "node %u: the default policy is not first", id);
        IT_ASSERT(strcmp(st->retention[1].prefix, "cnt/") == 0 && st->retention[1].versions == 2 &&
                      st->retention[1].age_ms == 0,
                  "node %u: cnt/ policy not listed", id);
        IT_ASSERT(st->retain_versions == 10, "node %u: retain_versions %llu", id,
                  (unsigned long long)st->retain_versions);
        cairn_status_free(st);
    }

    it_log("2. no age limit, no sweeps");
    expect_no_sweeps(c, leader, "without an age limit");

    it_log("3. sweeps trim keys nobody writes, on every node");
    set_policy(cl, "tmp/", 0, AGE_MS);
    first = put(cl, "tmp/k", "1");
    put(cl, "tmp/k", "2");
    kept = put(cl, "tmp/k", "3");
    for (i = 0; i < 4; i++) {
        put(cl, "cnt/k", "c");
    }
    /* The writes themselves trimmed nothing (they came well within the age
     * limit), and from here on nobody writes tmp/k: only sweeps can trim
     * it. */
    IT_ASSERT(stale_get(c, leader, "tmp/k", first) == 0, "writes trimmed tmp/k already");
    deadline = it_now_ms() + AGE_MS + 20 * SWEEP_MS + TIMEOUT_MS;
    for (id = 1; id <= c->n; id++) {
        int rv;
        while ((rv = stale_get(c, id, "tmp/k", first)) == 0) {
            IT_ASSERT(it_now_ms() < deadline, "node %u still holds revision %llu of tmp/k", id,
                      (unsigned long long)first);
            it_sleep_ms(SWEEP_MS / 2);
        }
        IT_ASSERT(rv == CAIRN_ECOMPACTED, "node %u: get at a trimmed revision: %s", id,
                  cairn_errname(rv));
        IT_ASSERT(stale_get(c, id, "tmp/k", kept) == 0, "node %u lost the newest version", id);
    }
    IT_ASSERT_OK(cairn_history(cl, "tmp/k", 5, 0, &r), cl);
    IT_ASSERT(r->ops[0].n_kvs == 1 && r->ops[0].kvs[0].mod_revision == kept,
              "tmp/k keeps %zu versions", r->ops[0].n_kvs);
    cairn_result_free(r);
    IT_ASSERT_OK(cairn_history(cl, "cnt/k", 5, 0, &r), cl);
    IT_ASSERT(r->ops[0].n_kvs == 2, "cnt/k keeps %zu versions, not its policy's 2",
              r->ops[0].n_kvs);
    cairn_result_free(r);

    it_log("4. without the aged policy, no sweeps again");
    set_policy(cl, "tmp/", 0, 0);
    expect_no_sweeps(c, leader, "after removing the age limit");

    it_log("5. limits");
    for (i = 2; i < CAIRN_RETENTION_POLICIES_MAX; i++) {
        char prefix[32];
        IT_FORMAT(prefix, "many/%04d", i);
        set_policy(cl, prefix, 1, 0);
    }
    {
        struct cairn_retention p = {"one/too/many", 12, 1, 0};
        char *long_prefix = malloc(4097);
        int rv = cairn_set_retention(cl, &p);
        IT_ASSERT(rv == CAIRN_ETOOLARGE, "policy 1025: %s", cairn_errname(rv));
        IT_ASSERT(strstr(cairn_errmsg(cl), "already holds 1024 retention policies") != NULL,
                  "message: %s", cairn_errmsg(cl));
        set_policy(cl, "many/0002", 0, 0);
        IT_ASSERT_OK(cairn_set_retention(cl, &p), cl);
        IT_ASSERT(long_prefix != NULL, "out of memory");
        memset(long_prefix, 'k', 4097);
        p.prefix = long_prefix;
        p.prefix_len = 4097;
        rv = cairn_set_retention(cl, &p);
        IT_ASSERT(rv == CAIRN_ETOOLARGE, "a 4097-byte prefix: %s", cairn_errname(rv));
        IT_ASSERT(strstr(cairn_errmsg(cl), "exceeds max_key_bytes") != NULL, "message: %s",
                  cairn_errmsg(cl));
        free(long_prefix);
    }

    cairn_client_free(cl);
    it_cluster_free(c);
    it_log("ok");
    return 0;
}
