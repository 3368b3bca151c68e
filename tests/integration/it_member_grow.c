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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "members.h"

#define WRITES_MAX 100000
#define CATCH_UP_MS 30000
#define EXIT_MS 20000

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
    int64_t longest_gap_ms; /* the longest time between two acknowledgments */
    uint64_t *rev;          /* owned: acknowledged revision per write, 0 if not */
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    cairn_client *c = it_client(w->cluster, 0, 10000);
    int64_t last_ack = it_now_ms();
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
        snprintf(key, sizeof(key), "g/%06u", i);
        rv = cairn_put(c, key, strlen(key), key, strlen(key), NULL, &r);
        pthread_mutex_lock(&w->mu);
        w->n = i + 1;
        if (rv == 0) {
            int64_t now = it_now_ms();
            w->rev[i] = r->revision;
            w->acked++;
            if (now - last_ack > w->longest_gap_ms) {
                w->longest_gap_ms = now - last_ack;
            }
            last_ack = now;
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

static void wait_more_writes(struct writer *w, unsigned more, int timeout_ms)
{
    unsigned want = acked(w) + more;
    int64_t deadline = it_now_ms() + timeout_ms;
    while (acked(w) < want) {
        IT_ASSERT(it_now_ms() < deadline, "only %u of %u writes acknowledged", acked(w), want);
        it_sleep_ms(10);
    }
}

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

static void grow(struct it_cluster *c, struct writer *w, unsigned id)
{
    it_member_start_joining(c, id);
    it_member_ensure(c, "add", id);
    expect_role(c, id, "standby");
    it_members_wait_caught_up(c, id, CATCH_UP_MS);
    /* The log it needed was compacted long ago: it came as a snapshot. */
    IT_ASSERT(it_member_snapshots_restored(c, id) >= 1, "node %u restored no snapshot", id);
    wait_more_writes(w, 50, 30000);
    it_member_ensure(c, "promote", id);
    expect_role(c, id, "voter");
    wait_more_writes(w, 50, 30000);
}

static void check_writes(struct it_cluster *c, struct writer *w)
{
    uint64_t *found = calloc(w->n + 1, sizeof(*found));
    unsigned i;
    IT_ASSERT(found != NULL, "out of memory");
    for (i = 1; i <= c->n; i++) {
        cairn_client *alone;
        struct cairn_get_opts all = {.stale = true, .prefix = true};
        struct cairn_result *r = NULL;
        size_t k;
        if (!it_node_running(c, i)) {
            continue;
        }
        alone = it_client(c, i, 10000);
        IT_ASSERT_OK(cairn_get(alone, "g/", 2, &all, &r), alone);
        memset(found, 0, w->n * sizeof(*found));
        for (k = 0; k < r->ops[0].n_kvs; k++) {
            const struct cairn_kv *kv = &r->ops[0].kvs[k];
            unsigned j;
            IT_ASSERT(sscanf(kv->key, "g/%u", &j) == 1 && j < w->n, "node %u: stray key %.*s", i,
                      (int)kv->key_len, kv->key);
            found[j] = kv->mod_revision;
        }
        for (k = 0; k < w->n; k++) {
            IT_ASSERT(w->rev[k] == 0 || found[k] == w->rev[k],
                      "node %u lacks acknowledged write g/%06zu at revision %llu", i, k,
                      (unsigned long long)w->rev[k]);
        }
        cairn_result_free(r);
        cairn_client_free(alone);
    }
    free(found);
}

int main(void)
{
    struct it_cluster *c;
    struct writer w;
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

    memset(&w, 0, sizeof(w));
    w.cluster = c;
    w.rev = calloc(WRITES_MAX, sizeof(*w.rev));
    IT_ASSERT(w.rev != NULL, "out of memory");
    pthread_mutex_init(&w.mu, NULL);
    IT_ASSERT(pthread_create(&w.thread, NULL, writer_main, &w) == 0, "pthread_create");
    wait_more_writes(&w, 200, 30000);

    /* Grow: 3 -> 5. */
    grow(c, &w, 4);
    grow(c, &w, 5);
    it_members_wait(c, &list, 10000);
    IT_ASSERT(list.n == 5, "5 members after growing, not %zu", list.n);
    it_log("grown to 5 with %u writes acknowledged", acked(&w));

    /* Leadership to node 5 on request. */
    IT_ASSERT_OK(cairn_leader_transfer(c->admin, 5, &json, NULL), c->admin);
    it_log("leader transfer: %s", json);
    /* Answered once node 5 led (it may not for long on a loaded machine). */
    IT_ASSERT(strstr(json, "\"leader_id\":5,") != NULL, "the transfer answered %s", json);
    free(json);
    wait_more_writes(&w, 50, 30000);

    /* Shrink: 5 -> 3. Node 4 goes demoted first, node 5 (leading) at once. */
    mark4 = it_file_size(it_node(c, 4)->log_path);
    mark5 = it_file_size(it_node(c, 5)->log_path);
    it_member_ensure(c, "demote", 4);
    expect_role(c, 4, "standby");
    wait_more_writes(&w, 50, 30000);
    it_member_ensure(c, "remove", 4);
    expect_role(c, 4, NULL);
    it_member_wait_removed_exit(c, 4, mark4, EXIT_MS);
    wait_more_writes(&w, 50, 30000);
    leader = it_members_wait(c, &list, 10000);
    it_log("removing node 5, %s", leader == 5 ? "the leader" : "a follower");
    it_member_ensure(c, "remove", 5);
    leader = it_members_wait(c, &list, 10000);
    IT_ASSERT(leader != 5 && list.n == 3 && it_members_find(&list, 5) == NULL,
              "node 5 removed (leader %u, %zu members)", leader, list.n);
    it_member_wait_removed_exit(c, 5, mark5, EXIT_MS);
    wait_more_writes(&w, 200, 30000);

    pthread_mutex_lock(&w.mu);
    w.stop = true;
    pthread_mutex_unlock(&w.mu);
    pthread_join(w.thread, NULL);
    it_log("writer done: %u writes, %u acknowledged, %u unknown, %u failed; longest pause "
           "between acknowledgments %lld ms",
           w.n, w.acked, w.unknown, w.failed, (long long)w.longest_gap_ms);
    /* Service never stopped: an election timeout (1 s) and a retry at most. */
    IT_ASSERT(w.longest_gap_ms < 5000, "writes paused for %lld ms", (long long)w.longest_gap_ms);

    it_wait_converged(c, 30000);
    check_writes(c, &w);
    it_log("the 3 remaining nodes hold all %u acknowledged writes", w.acked);
    it_cluster_free(c);
    pthread_mutex_destroy(&w.mu);
    free(w.rev);
    it_log("PASS");
    return 0;
}
