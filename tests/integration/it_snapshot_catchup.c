/*
 * it_snapshot_catchup: a follower that fell behind the leader's log catches
 * up through a snapshot.
 *
 * The nodes snapshot every 64 applied entries and keep 16 entries behind
 * each snapshot, in 64 KiB log segments. One follower is stopped (SIGTERM);
 * then 1000 writes of ~200 bytes go in, so the leader snapshots many times
 * and deletes the log segments that still held what the follower lacks.
 * The test asserts that:
 *
 *  - the leader took snapshots (status.snapshots) and its oldest remaining
 *    log segment starts after the follower's last index (read from the file
 *    names raft_uv gives closed segments, "FIRST-LAST"), so the log alone can
 *    no longer bring the follower up to date;
 *  - the restarted follower converges to the same applied index and revision,
 *    and serves every key, with the right value and revision, to stale reads;
 *  - it got there through a snapshot: raft's trace on the follower
 *    (LIBRAFT_TRACE=1, from the restart on) shows a snapshot being installed,
 *    and the follower's data directory now holds a snapshot-* file at an
 *    index past where it stopped.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WRITES 1000
#define VALUE_BYTES 200

static void value_of(unsigned i, char *value, size_t len)
{
    size_t n = (size_t)snprintf(value, len, "value %u ", i);
    while (n + 1 < len && n < VALUE_BYTES) {
        value[n] = (char)('a' + (i + n) % 26);
        n++;
    }
    value[n] = '\0';
}

/* Lowest first index of the closed segments in dir ("%016llu-%016llu"), and
 * the highest index of the snapshots in it ("snapshot-TERM-INDEX-TIME"). */
static void scan_data_dir(const char *dir, uint64_t *first_closed, uint64_t *last_snapshot)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    *first_closed = UINT64_MAX;
    *last_snapshot = 0;
    IT_ASSERT(d != NULL, "opendir %s", dir);
    while ((e = readdir(d)) != NULL) {
        unsigned long long a;
        unsigned long long b;
        unsigned long long t;
        int end = 0;
        if (sscanf(e->d_name, "%llu-%llu%n", &a, &b, &end) == 2 && e->d_name[end] == '\0' &&
            a < *first_closed) {
            *first_closed = a;
        }
        end = 0;
        if (sscanf(e->d_name, "snapshot-%llu-%llu-%llu%n", &t, &a, &b, &end) == 3 &&
            e->d_name[end] == '\0' && a > *last_snapshot) {
            *last_snapshot = a;
        }
    }
    closedir(d);
}

int main(void)
{
    struct it_cluster *c;
    cairn_client *client;
    cairn_client *alone;
    struct cairn_status *st = NULL;
    struct cairn_result *r = NULL;
    struct cairn_get_opts all = {.stale = true, .prefix = true};
    static const char *const trace_env[] = {"LIBRAFT_TRACE=1", NULL};
    uint64_t revs[WRITES];
    uint64_t follower_last;
    uint64_t first_closed;
    uint64_t last_snapshot;
    uint64_t rev;
    size_t log_mark;
    char *log;
    unsigned leader;
    unsigned follower;
    unsigned i;

    it_init("it_snapshot_catchup", IT_TIMEOUT_S);
    c = it_cluster_new(3, it_small_snapshot_flags);
    leader = it_cluster_start(c);
    follower = leader == 1 ? 2 : 1;
    client = it_client(c, 0, 10000);

    /* A little history the follower does have. */
    for (i = 0; i < 10; i++) {
        char key[32];
        snprintf(key, sizeof(key), "early/%u", i);
        IT_ASSERT_OK(cairn_put(client, key, strlen(key), "x", 1, NULL, NULL), client);
    }
    it_wait_converged(c, 20000);
    IT_ASSERT_OK(it_node_status(c, follower, &st), c->admin);
    follower_last = st->last_index;
    cairn_status_free(st);
    IT_ASSERT(it_node_stop(c, follower, 20000) == 0, "follower %u stops cleanly", follower);
    it_log("stopped follower %u at log index %llu", follower, (unsigned long long)follower_last);

    for (i = 0; i < WRITES; i++) {
        char key[32];
        char value[VALUE_BYTES + 1];
        snprintf(key, sizeof(key), "snap/%05u", i);
        value_of(i, value, sizeof(value));
        IT_ASSERT_OK(cairn_put(client, key, strlen(key), value, strlen(value), NULL, &r), client);
        revs[i] = r->revision;
        cairn_result_free(r);
    }
    it_log("%u writes done without the follower", WRITES);

    /* The leader snapshotted and dropped the log the follower would need. */
    leader = it_wait_leader(c, 0, 20000);
    IT_ASSERT_OK(it_node_status(c, leader, &st), c->admin);
    IT_ASSERT(st->snapshots > 0, "leader %u took no snapshot", leader);
    it_log("leader %u: %llu snapshots, last index %llu", leader, (unsigned long long)st->snapshots,
           (unsigned long long)st->last_index);
    cairn_status_free(st);
    scan_data_dir(it_node(c, leader)->data_dir, &first_closed, &last_snapshot);
    it_log("leader's oldest closed segment starts at %llu, newest snapshot at %llu",
           (unsigned long long)first_closed, (unsigned long long)last_snapshot);
    IT_ASSERT(first_closed != UINT64_MAX && first_closed > follower_last + 1,
              "the leader's log still starts at %llu, not past the follower's %llu",
              (unsigned long long)first_closed, (unsigned long long)follower_last);
    scan_data_dir(it_node(c, follower)->data_dir, &first_closed, &last_snapshot);
    IT_ASSERT(last_snapshot <= follower_last, "the stopped follower has a snapshot at %llu",
              (unsigned long long)last_snapshot);

    /* Restart the follower with raft's trace on, and let it catch up. */
    log_mark = it_file_size(it_node(c, follower)->log_path);
    it_node(c, follower)->env[0] = trace_env[0];
    it_node_start(c, follower);
    it_wait_leader(c, 0, 30000);
    rev = it_wait_converged(c, 60000);
    IT_ASSERT(rev >= revs[WRITES - 1], "converged at %llu, before the last write at %llu",
              (unsigned long long)rev, (unsigned long long)revs[WRITES - 1]);
    it_log("follower %u caught up: revision %llu", follower, (unsigned long long)rev);

    /* Every key, read locally on the follower. */
    alone = it_client(c, follower, 10000);
    IT_ASSERT_OK(cairn_get(alone, "snap/", 5, &all, &r), alone);
    IT_ASSERT(r->revision == rev, "follower answered at %llu", (unsigned long long)r->revision);
    IT_ASSERT(r->ops[0].n_kvs == WRITES, "follower holds %zu of %u keys", r->ops[0].n_kvs, WRITES);
    for (i = 0; i < WRITES; i++) {
        const struct cairn_kv *kv = &r->ops[0].kvs[i];
        char key[32];
        char value[VALUE_BYTES + 1];
        snprintf(key, sizeof(key), "snap/%05u", i);
        value_of(i, value, sizeof(value));
        IT_ASSERT(kv->key_len == strlen(key) && memcmp(kv->key, key, kv->key_len) == 0,
                  "follower key %u is %.*s", i, (int)kv->key_len, kv->key);
        IT_ASSERT(kv->value_len == strlen(value) && memcmp(kv->value, value, kv->value_len) == 0,
                  "follower value of %s", key);
        IT_ASSERT(kv->mod_revision == revs[i], "follower %s at revision %llu, written at %llu", key,
                  (unsigned long long)kv->mod_revision, (unsigned long long)revs[i]);
    }
    cairn_result_free(r);
    IT_ASSERT_OK(cairn_get(alone, "early/", 6, &all, &r), alone);
    IT_ASSERT(r->ops[0].n_kvs == 10, "follower holds %zu of the 10 early keys", r->ops[0].n_kvs);
    cairn_result_free(r);
    cairn_client_free(alone);

    /* ...through a snapshot. */
    log = it_read_file(it_node(c, follower)->log_path, log_mark);
    IT_ASSERT(log != NULL, "read the follower's log");
    IT_ASSERT(strstr(log, "recv_install_snapshot") != NULL,
              "the follower's raft trace shows no InstallSnapshot");
    IT_ASSERT(strstr(log, "restored snapshot with last index") != NULL,
              "the follower's raft trace shows no snapshot restored");
    free(log);
    scan_data_dir(it_node(c, follower)->data_dir, &first_closed, &last_snapshot);
    IT_ASSERT(last_snapshot > follower_last,
              "the follower's newest snapshot is at %llu, not past %llu",
              (unsigned long long)last_snapshot, (unsigned long long)follower_last);
    it_log("follower %u installed a snapshot (newest on disk at index %llu)", follower,
           (unsigned long long)last_snapshot);

    cairn_client_free(client);
    it_cluster_free(c);
    it_log("PASS");
    return 0;
}
