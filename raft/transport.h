/*
 * transport: raft_uv's TCP transport, taught that a member's address may
 * carry its client address too.
 *
 * Cairn stores each member's address in the Raft configuration as
 * "RAFT_HOST:PORT/CLIENT_HOST:PORT". The configuration is replicated, so
 * every node (and every node added later) knows where every member's clients
 * connect, and a follower can redirect a client to the leader without any
 * other bookkeeping. raft_uv's TCP transport only understands "HOST:PORT",
 * so this wrapper hands it the Raft half of every address.
 *
 * It also turns on TCP_NODELAY on every Raft connection, which raft_uv 0.15
 * does not: with Nagle's algorithm a small AppendEntries (or its result)
 * written while an earlier one is unacknowledged waits for the peer's
 * delayed ACK, up to 40 ms, and that was the whole tail of Cairn's write
 * latency (docs/performance.md).
 */
#ifndef CAIRN_TRANSPORT_H
#define CAIRN_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>
#include <stddef.h>

struct transport
{
    struct raft_uv_transport outer; /* what raft_uv calls */
    struct raft_uv_transport tcp;   /* raft_uv's TCP transport */
    raft_uv_transport_close_cb close_cb;
    raft_uv_accept_cb accept_cb; /* raft_uv's, called after ours */
    /* The TCP transport keeps the pointer it is given at init, not a copy,
     * so the Raft half of our own address lives here. */
    char raft_address[256];
};

/* Returns 0 or a RAFT_* code. */
int transport_init(struct transport *t, struct uv_loop_s *loop, const char *bind_address);
void transport_close(struct transport *t);

/* Split a member address. Copies the halves (NUL-terminated) into raft_out
 * and client_out, each of size n; client_out gets "" when the address has no
 * client half. Returns 0, or -1 when a half does not fit. */
int transport_split_address(const char *address, char *raft_out, char *client_out, size_t n);

#endif /* CAIRN_TRANSPORT_H */
