/*
 * it_member_errors: membership changes that must be refused leave the
 * cluster as it was, with a clear error:
 *
 *  - adding a node that cannot be reached (nothing listens), a node that
 *    does not answer (a listener that never replies: the probe times out),
 *    a node that reports another id, a duplicate id, a duplicate address;
 *  - a second change while the first is in progress (CAIRN_EBUSY);
 *  - an unknown id (CAIRN_ENOTFOUND);
 *  - demoting or removing the last voter;
 *  - transferring leadership to a standby;
 *  - promoting a standby that stopped answering (SIGSTOP): raft's catch-up
 *    rounds give up within seconds and it stays a standby.
 *
 * Then what is allowed: leader transfer to a given voter, and a standby
 * that is added and removed stops by itself with the log line.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "members.h"

/* The configuration must not have moved: same members, roles and index. */
static void expect_unchanged(struct it_cluster *c, const struct it_members *before,
                             const char *after_what)
{
    struct it_members now;
    size_t i;
    it_members_wait(c, &now, 10000);
    IT_ASSERT(now.n == before->n, "after %s: %zu members, not %zu", after_what, now.n, before->n);
    IT_ASSERT(now.configuration_index == before->configuration_index,
              "after %s: configuration index %llu, not %llu", after_what,
              (unsigned long long)now.configuration_index,
              (unsigned long long)before->configuration_index);
    for (i = 0; i < before->n; i++) {
        const struct it_member *m = it_members_find(&now, before->members[i].id);
        IT_ASSERT(m != NULL && strcmp(m->role, before->members[i].role) == 0,
                  "after %s: node %llu changed", after_what,
                  (unsigned long long)before->members[i].id);
    }
}

static int add_at(struct it_cluster *c, unsigned id, const char *address, char *msg, size_t n)
{
    char *json = NULL;
    int rv = cairn_member_change(c->admin, "add", id, address, &json, NULL);
    snprintf(msg, n, "%s", rv == 0 ? json : cairn_errmsg(c->admin));
    it_log("add %u at %s: %s: %s", id, address, cairn_errname(rv), msg);
    free(json);
    return rv;
}

/* A TCP listener that accepts nothing: connections complete in its backlog
 * and requests are never answered. */
static int blackhole(int *port)
{
    struct sockaddr_in sa;
    int fd;
    *port = it_pick_port();
    fd = socket(AF_INET, SOCK_STREAM, 0);
    IT_ASSERT(fd >= 0, "socket");
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)*port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    IT_ASSERT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind %d", *port);
    IT_ASSERT(listen(fd, 16) == 0, "listen");
    return fd;
}

struct slow_add
{
    struct it_cluster *c;
    char address[128];
    int rv;
    char msg[512];
    pthread_t thread;
};

static void *slow_add_main(void *arg)
{
    struct slow_add *a = arg;
    cairn_client *admin = it_client(a->c, 0, 10000);
    char *json = NULL;
    a->rv = cairn_member_change(admin, "add", 6, a->address, &json, NULL);
    snprintf(a->msg, sizeof(a->msg), "%s", a->rv == 0 ? json : cairn_errmsg(admin));
    free(json);
    cairn_client_free(admin);
    return NULL;
}

int main(void)
{
    struct it_cluster *c;
    struct it_members before;
    struct slow_add slow;
    char address[128];
    char msg[512];
    char *json = NULL;
    int raft_hole;
    int client_hole;
    int raft_port;
    int client_port;
    unsigned leader;
    size_t mark;
    int rv;
    unsigned i;

    it_init("it_member_errors", IT_TIMEOUT_S);
    c = it_cluster_new(4, NULL);
    it_members_initial(c, 3);
    for (i = 1; i <= 3; i++) {
        it_node_start(c, i);
    }
    it_members_wait(c, &before, 30000);
    it_member_start_joining(c, 4);

    /* Nothing listens. */
    snprintf(address, sizeof(address), "127.0.0.1:%d/127.0.0.1:%d", it_pick_port(), it_pick_port());
    rv = add_at(c, 5, address, msg, sizeof(msg));
    IT_ASSERT(rv == CAIRN_EUNAVAILABLE && strstr(msg, "cannot be reached") != NULL,
              "add of an unreachable node: %s: %s", cairn_errname(rv), msg);
    expect_unchanged(c, &before, "adding an unreachable node");

    /* Node 4 waits to join, but as node 4. */
    snprintf(address, sizeof(address), "%s/%s", it_node(c, 4)->raft_addr,
             it_node(c, 4)->client_addr);
    rv = add_at(c, 5, address, msg, sizeof(msg));
    IT_ASSERT(rv == CAIRN_EINVAL && strstr(msg, "is node 4, not node 5") != NULL,
              "add under the wrong id: %s: %s", cairn_errname(rv), msg);
    /* A duplicate id, a duplicate address. */
    rv = add_at(c, 2, address, msg, sizeof(msg));
    IT_ASSERT(rv == CAIRN_EINVAL && strstr(msg, "already a member") != NULL,
              "add of a duplicate id: %s: %s", cairn_errname(rv), msg);
    it_member_address(c, 1, address, sizeof(address));
    rv = add_at(c, 7, address, msg, sizeof(msg));
    IT_ASSERT(rv == CAIRN_EINVAL && strstr(msg, "already used by node 1") != NULL,
              "add at a member's address: %s: %s", cairn_errname(rv), msg);
    rv = add_at(c, 7, "not-an-address", msg, sizeof(msg));
    IT_ASSERT(rv == CAIRN_EINVAL, "add at a bad address: %s: %s", cairn_errname(rv), msg);
    rv = cairn_member_change(c->admin, "remove", 9, NULL, &json, NULL);
    IT_ASSERT(rv == CAIRN_ENOTFOUND, "remove of an unknown id: %s", cairn_errname(rv));
    expect_unchanged(c, &before, "refused adds");

    /* A node that accepts connections but never answers: the probe takes
     * its full timeout, and meanwhile every other change is refused. */
    raft_hole = blackhole(&raft_port);
    client_hole = blackhole(&client_port);
    memset(&slow, 0, sizeof(slow));
    slow.c = c;
    snprintf(slow.address, sizeof(slow.address), "127.0.0.1:%d/127.0.0.1:%d", raft_port,
             client_port);
    IT_ASSERT(pthread_create(&slow.thread, NULL, slow_add_main, &slow) == 0, "pthread_create");
    it_sleep_ms(500);
    rv = it_member_change(c, "demote", 2, msg, sizeof(msg));
    IT_ASSERT(rv == CAIRN_EBUSY && strstr(msg, "in progress") != NULL,
              "a change during an add: %s: %s", cairn_errname(rv), msg);
    rv = it_member_change(c, "add", 4, msg, sizeof(msg));
    IT_ASSERT(rv == CAIRN_EBUSY, "a second add during an add: %s: %s", cairn_errname(rv), msg);
    pthread_join(slow.thread, NULL);
    it_log("add of a node that never answers: %s: %s", cairn_errname(slow.rv), slow.msg);
    IT_ASSERT(slow.rv == CAIRN_EUNAVAILABLE && strstr(slow.msg, "does not answer") != NULL,
              "add of a silent node: %s: %s", cairn_errname(slow.rv), slow.msg);
    close(raft_hole);
    close(client_hole);
    expect_unchanged(c, &before, "adding a silent node");

    /* The last voter stays. Demote two voters (the leader among them hands
     * leadership over first), then try the third. */
    it_member_ensure(c, "demote", 1);
    it_member_ensure(c, "demote", 2);
    leader = it_members_wait(c, &before, 10000);
    IT_ASSERT(leader == 3, "node 3, the last voter, leads (not %u)", leader);
    rv = it_member_change(c, "demote", 3, msg, sizeof(msg));
    IT_ASSERT(rv == CAIRN_EINVAL && strstr(msg, "last voter") != NULL,
              "demote of the last voter: %s: %s", cairn_errname(rv), msg);
    rv = it_member_change(c, "remove", 3, msg, sizeof(msg));
    IT_ASSERT(rv == CAIRN_EINVAL && strstr(msg, "last voter") != NULL,
              "remove of the last voter: %s: %s", cairn_errname(rv), msg);
    rv = cairn_leader_transfer(c->admin, 1, &json, NULL);
    IT_ASSERT(rv == CAIRN_EINVAL, "transfer to a standby: %s", cairn_errname(rv));
    expect_unchanged(c, &before, "refusing to lose the last voter");
    it_member_ensure(c, "promote", 1);
    it_member_ensure(c, "promote", 2);

    /* Transfer to a given voter. */
    IT_ASSERT_OK(cairn_leader_transfer(c->admin, 2, &json, NULL), c->admin);
    it_log("transfer: %s", json);
    IT_ASSERT(strstr(json, "\"leader_id\":2,") != NULL, "the transfer answered %s", json);
    free(json);

    /* A standby that stops answering cannot be promoted: raft's catch-up
     * rounds give up (bounded) and it stays a standby. */
    mark = it_file_size(it_node(c, 4)->log_path);
    it_member_ensure(c, "add", 4);
    it_members_wait_caught_up(c, 4, 30000);
    it_node_signal(c, 4, SIGSTOP);
    {
        /* The leader's endpoint alone: a client could pick the paused node. */
        cairn_client *w = it_client(c, it_members_wait(c, &before, 10000), 10000);
        int64_t t0;
        for (i = 0; i < 30; i++) {
            IT_ASSERT_OK(cairn_put(w, "e/k", 3, "v", 1, NULL, NULL), w);
        }
        t0 = it_now_ms();
        rv = cairn_member_change(w, "promote", 4, NULL, &json, NULL);
        snprintf(msg, sizeof(msg), "%s", rv == 0 ? json : cairn_errmsg(w));
        free(json);
        json = NULL;
        cairn_client_free(w);
        it_log("promote of a paused node: %s after %lld ms", cairn_errname(rv),
               (long long)(it_now_ms() - t0));
        IT_ASSERT((rv == CAIRN_EUNAVAILABLE && strstr(msg, "did not catch up") != NULL) ||
                      (rv == CAIRN_EBUSY && strstr(msg, "not caught up") != NULL),
                  "promote of a paused node: %s: %s", cairn_errname(rv), msg);
        IT_ASSERT(it_now_ms() - t0 < 15000, "the promotion took %lld ms to give up",
                  (long long)(it_now_ms() - t0));
    }
    it_members_wait(c, &before, 10000);
    IT_ASSERT(strcmp(it_members_find(&before, 4)->role, "standby") == 0,
              "the paused node stays a standby");
    IT_ASSERT(!it_members_find(&before, 4)->reachable, "the paused node is listed unreachable");
    IT_ASSERT(it_members_find(&before, 1)->reachable && it_members_find(&before, 3)->reachable,
              "the running voters are listed reachable");
    it_node_signal(c, 4, SIGCONT);
    it_members_wait_caught_up(c, 4, 30000);

    /* A standby removed stops by itself. */
    it_member_ensure(c, "remove", 4);
    it_member_wait_removed_exit(c, 4, mark, 20000);

    it_wait_converged(c, 30000);
    it_cluster_free(c);
    it_log("PASS");
    return 0;
}
