/*
 * preflight: a new node's client port, answering status before the node runs.
 *
 * A node that bootstraps a new data directory with --initial-cluster first
 * asks its peers what they hold (server.c, check_peers): a restored node
 * refuses beside a member that was not restored, and an empty node refuses
 * beside members that hold a restored or older state. Each check can only
 * see a peer that answers. Two nodes that start at the same moment, each
 * asking before the other listens, would both pass.
 *
 * So such a node binds its client port before its check and, from a thread,
 * answers status with what it is about to serve (its id, the restored
 * cluster id and revision or nothing, the --initial-cluster members, state
 * "starting") until server.c hands the socket to the loop at the end of its
 * start. Of two nodes that start together, the one that asks second finds
 * the first answering. Every other request gets CAIRN_ENOLEADER, which
 * clients take as "try another node, then this one again".
 */
#ifndef CAIRN_PREFLIGHT_H
#define CAIRN_PREFLIGHT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

struct preflight;

struct preflight_member
{
    uint64_t id;
    const char *raft_address;
    const char *client_address;
};

/* A listening TCP socket bound to sa (addr names it in errors): the fd, or
 * -1 with err set. */
int preflight_bind(const struct sockaddr_in *sa, const char *addr, char *err, size_t len);

/* Answer status on fd from a thread. Everything is copied. NULL when out of
 * memory or no thread could start (the caller goes on without one). */
struct preflight *preflight_start(int fd, uint64_t id, uint64_t cluster_id, uint64_t revision,
                                  const char *http_address, const struct preflight_member *members,
                                  size_t n_members);

/* Each connection the thread holds, handed over: fd (now the callee's) and
 * the bytes read from it but not answered (an incomplete request). */
typedef void (*preflight_handover_cb)(void *arg, int fd, const char *pending, size_t len);

/* Stop answering. The connections the thread accepted go to handover (so a
 * client waiting on one is served by the node, not cut off), or are closed
 * when it is NULL. The listening socket stays open: queued connections wait
 * for its next owner. NULL is a no-op. */
void preflight_stop(struct preflight *p, preflight_handover_cb handover, void *arg);

#endif
