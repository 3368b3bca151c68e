/*
 * it_watch_restore: a follower's watchers miss nothing when the follower
 * catches up by installing a snapshot from the leader instead of applying
 * entries one by one.
 *
 * When a follower installs a snapshot, its key space jumps from revision A
 * to revision B at once, and no change between them passes the watch hub's
 * live path. The hub must then catch its watchers up from the new state's
 * history (or send them a snapshot). This test makes that happen: the nodes
 * snapshot every 64 entries, keep 16, and use small log segments (as
 * it_snapshot_catchup does). Node 3 is stopped while WRITES puts of unique
 * keys go in, so the leader compacts its log past node 3's position. Node 3
 * is restarted, and a raw connection watches "r/" on it from the revision
 * node 3 stopped at, at once: cairnd opens its client port before Raft
 * starts, and the leader reaches a restarted node only on its next connect
 * attempt, so the watch exists (waiting for revisions node 3 does not have
 * yet) when the snapshot arrives.
 *
 * The watcher, which never reconnects (a raw connection, no library), must
 * then receive every one of the WRITES changes exactly once, in revision
 * order, at the revisions the writer was acknowledged; and node 3's status
 * must show the catch-up that the snapshot forced (else the test did not
 * test the restore path, and says so).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "raw.h"

#define WRITES 1000
#define VALUE_BYTES 200
#define READ_TIMEOUT_MS 20000

/* Connect to a node that is starting: retry until its port accepts. */
static int connect_when_up(int port)
{
    int64_t deadline = it_now_ms() + 10000;
    for (;;) {
        struct sockaddr_in a;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        IT_ASSERT(fd >= 0, "socket");
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            return fd;
        }
        close(fd);
        IT_ASSERT(it_now_ms() < deadline, "node 3 never opened its client port");
        it_sleep_ms(2);
    }
}

int main(void)
{
    struct it_cluster *c;
    struct proto_request req;
    struct proto_response resp;
    struct cairn_status *st = NULL;
    cairn_client *writer;
    uint64_t revs[WRITES];
    char eps[256];
    char value[VALUE_BYTES + 1];
    unsigned leader;
    uint64_t start;
    unsigned seen = 0;
    unsigned i;
    int fd;

    it_init("it_watch_restore", IT_TIMEOUT_S);
    c = it_cluster_new(3, it_small_snapshot_flags);
    it_cluster_start(c);
    leader = it_wait_leader(c, 0, 20000);
    if (leader == 3) {
        /* Node 3 must be a follower: hand leadership away by restarting it. */
        it_node_stop(c, 3, 10000);
        leader = it_wait_leader(c, 3, 20000);
        it_node_start(c, 3);
        it_wait_converged(c, 20000);
    }

    start = it_wait_converged(c, 20000);
    it_log("stopping node 3 at revision %llu; the leader is node %u", (unsigned long long)start,
           leader);
    it_node_stop(c, 3, 10000);
    IT_FORMAT(eps, "%s,%s", it_node(c, 1)->client_addr, it_node(c, 2)->client_addr);
    writer = cairn_client_new(eps, &(struct cairn_options){.timeout_ms = 10000}, NULL);
    IT_ASSERT(writer != NULL, "client");
    memset(value, 'x', VALUE_BYTES);
    value[VALUE_BYTES] = '\0';
    for (i = 0; i < WRITES; i++) {
        struct cairn_result *res = NULL;
        char key[16];
        snprintf(key, sizeof(key), "r/%04u", i);
        IT_ASSERT_OK(cairn_put(writer, key, strlen(key), value, VALUE_BYTES, NULL, &res), writer);
        revs[i] = res->revision;
        cairn_result_free(res);
    }
    it_log("%u writes acknowledged; restarting node 3 and watching at once", WRITES);
    it_node_start(c, 3);
    fd = connect_when_up(it_node(c, 3)->client_port);
    memset(&req, 0, sizeof(req));
    req.id = 1;
    req.type = PROTO_WATCH;
    req.op.type = CAIRN_OP_GET;
    req.op.key.ptr = "r/";
    req.op.key.len = 2;
    req.op.prefix = true;
    req.op.revision = start + 1;
    req.number = 60000; /* no progress messages in the way */
    it_raw_send_request(fd, &req);
    IT_ASSERT(it_raw_read_response(fd, READ_TIMEOUT_MS, &resp) == 1, "no answer to the watch");
    IT_ASSERT(resp.watch != NULL && resp.watch->kind == PROTO_WATCH_CREATED, "no CREATED");
    proto_response_free(&resp);

    it_wait_converged(c, 30000);

    while (seen < WRITES) {
        size_t k;
        IT_ASSERT(it_raw_read_response(fd, READ_TIMEOUT_MS, &resp) == 1,
                  "the watcher stopped after %u of %u changes", seen, WRITES);
        IT_ASSERT(resp.watch != NULL, "not a watch message");
        IT_ASSERT(resp.watch->kind == PROTO_WATCH_EVENTS, "kind %u after %u changes",
                  resp.watch->kind, seen);
        for (k = 0; k < resp.watch->n_events; k++) {
            const struct cairn_kv *kv = &resp.watch->events[k].kv;
            char key[16];
            snprintf(key, sizeof(key), "r/%04u", seen);
            IT_ASSERT(seen < WRITES, "more changes than were written");
            IT_ASSERT(kv->mod_revision == revs[seen] && kv->key_len == strlen(key) &&
                          memcmp(kv->key, key, kv->key_len) == 0,
                      "change %u is %.*s at %llu, expected %s at %llu", seen, (int)kv->key_len,
                      kv->key, (unsigned long long)kv->mod_revision, key,
                      (unsigned long long)revs[seen]);
            seen++;
        }
        proto_response_free(&resp);
    }
    it_log("the watcher on node 3 received all %u changes in order", seen);

    IT_ASSERT(it_node_status(c, 3, &st) == 0, "status of node 3");
    it_log("node 3: %llu catch-ups, %llu watch snapshots", (unsigned long long)st->watch_catchups,
           (unsigned long long)st->watch_snapshots);
    IT_ASSERT(st->watch_catchups >= 1,
              "node 3 never caught its watcher up: it did not install a snapshot, so this test "
              "did not test what it is for");
    cairn_status_free(st);
    close(fd);
    cairn_client_free(writer);
    it_cluster_free(c);
    return 0;
}
