/*
 * it_disk_full: a follower whose disk fills up while the cluster runs stops
 * with a clear error, loses nothing, and catches up once it has room.
 *
 * Node 3's data directory is a small tmpfs. Writes of 64 KiB values fill it.
 * raft 0.15 would keep a follower's in-memory log after a failed write
 * (upstream 857e17e), so cairnd stops the node instead (exit status 1, with a
 * log line that says why). The other two carry on and keep acknowledging
 * writes. Then the tmpfs is made larger, node 3 restarts, and every
 * acknowledged write is readable from it.
 *
 * Needs root for mount(2); elsewhere the test reports itself skipped (77).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define VALUE_BYTES (64 * 1024)
#define WRITES_MAX 400

int main(void)
{
    static const char *const args[] = {"--segment-size-bytes", "1048576", NULL};
    struct it_cluster *c;
    struct it_node *full;
    cairn_client *client;
    char *value;
    uint64_t rev[WRITES_MAX];
    unsigned n = 0;
    unsigned acked = 0;
    unsigned after_exit = 0;
    bool exited = false;
    int status = 0;
    unsigned i;

    it_init("it_disk_full", IT_TIMEOUT_S);
    if (geteuid() != 0) {
        it_log("skipped: mounting a small tmpfs needs root");
        return 77;
    }
    c = it_cluster_new(3, args);
    full = it_node(c, 3);
    IT_ASSERT(mkdir(full->data_dir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", full->data_dir,
              strerror(errno));
    if (mount("tmpfs", full->data_dir, "tmpfs", 0, "size=8m") != 0) {
        it_log("skipped: mount tmpfs: %s", strerror(errno));
        return 77;
    }
    it_track_mount(full->data_dir);
    it_cluster_start(c);

    value = malloc(VALUE_BYTES);
    IT_ASSERT(value != NULL, "out of memory");
    memset(value, 'x', VALUE_BYTES);
    client = it_client(c, 0, 10000);
    /* Write until node 3 has stopped and 20 more writes were acknowledged
     * without it. */
    for (i = 0; i < WRITES_MAX && after_exit < 20; i++) {
        char key[32];
        struct cairn_result *r = NULL;
        int rv;
        snprintf(key, sizeof(key), "df/%04u", i);
        rv = cairn_put(client, key, strlen(key), value, VALUE_BYTES, NULL, &r);
        n = i + 1;
        rev[i] = 0;
        if (rv == 0) {
            rev[i] = r->revision;
            acked++;
            after_exit += exited;
        } else {
            it_log("write %u: %s: %s", i, cairn_errname(rv), cairn_errmsg(client));
        }
        cairn_result_free(r);
        if (!exited && it_node_exited(c, 3, &status)) {
            exited = true;
        }
    }
    IT_ASSERT(exited, "node 3 kept running on a full disk after %u writes", n);
    IT_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 1,
              "node 3 exits with status 1 (status %d)", status);
    IT_ASSERT(it_file_contains(full->log_path, "Raft log write failed"),
              "node 3's log says why it stopped");
    IT_ASSERT(after_exit >= 20, "the other two nodes kept acknowledging writes (%u)", after_exit);
    it_log("node 3 stopped on a full disk; %u of %u writes acknowledged", acked, n);

    /* Give node 3 room and bring it back: it catches up with everything. */
    IT_ASSERT(mount("tmpfs", full->data_dir, "tmpfs", MS_REMOUNT, "size=256m") == 0, "remount: %s",
              strerror(errno));
    it_node_start(c, 3);
    it_wait_converged(c, 30000);
    {
        cairn_client *local = it_client(c, 3, 10000);
        for (i = 0; i < n; i++) {
            char key[32];
            struct cairn_get_opts opts;
            struct cairn_result *r = NULL;
            int rv;
            if (rev[i] == 0) {
                continue;
            }
            snprintf(key, sizeof(key), "df/%04u", i);
            memset(&opts, 0, sizeof(opts));
            opts.stale = true;
            rv = cairn_get(local, key, strlen(key), &opts, &r);
            IT_ASSERT(rv == 0, "acknowledged write %s missing on node 3: %s", key,
                      cairn_errname(rv));
            IT_ASSERT(r->ops[0].kvs[0].mod_revision == rev[i] &&
                          r->ops[0].kvs[0].value_len == VALUE_BYTES,
                      "write %s on node 3 has its acknowledged revision and value", key);
            cairn_result_free(r);
        }
        cairn_client_free(local);
    }
    it_log("node 3 caught up: all %u acknowledged writes present", acked);
    cairn_client_free(client);
    free(value);
    it_cluster_free(c);
    return 0;
}
