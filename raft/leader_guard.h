/*
 * leader_guard: neutralizes known safety bugs of canonical/raft 0.15.0 from
 * outside the library (see docs/raft.md).
 *
 *  1. Upstream 29bb302 (fixed in 0.17.1): a new leader appends no entry of
 *     its own term, so entries of earlier terms stay uncommitted until a client
 *     writes. The guard appends a barrier as soon as it sees its raft become
 *     leader of a new term.
 *
 *  2. Upstream 524f735 (fixed in 0.17.1): a new leader commits entries of
 *     earlier terms by counting replicas (Raft paper, Figure 8, and section
 *     5.4.2 of the paper: "Raft never commits log entries from previous terms
 *     by counting replicas"). 0.15.0 calls replicationQuorum() with the
 *     leader's last stored index whenever an AppendEntries result arrives, so
 *     the guard holds back AppendEntries results received by a leader until
 *     that leader has stored an entry of its own term; from then on the index
 *     counted is of the current term, which is the paper's rule.
 *
 *  3. Not fixed upstream (35479fc covers one case, in 0.17.1): a follower
 *     answers a successful AppendEntries with everything it has stored, not
 *     just the prefix the request verified, and can answer a new leader about
 *     entries an old leader sent; the new leader may then count it for entries
 *     it does not have. As a follower, the guard lowers last_log_index in its
 *     successful results to the verified prefix and drops results whose term
 *     changed since the entries arrived.
 *
 *  4. Upstream 0cac59c (0.16.0) and 23ed201 (0.18.0): a leader whose log
 *     write fails stays leader and reuses the failed entries' indexes in the
 *     same term. The guard makes it step down at once.
 *
 *  5. Not fixed upstream (found by Cairn's simulation, jepsen/sim): a
 *     follower mishandles an AppendEntries whose prev_log_index is below its
 *     snapshot: at prev_log_index 0 it crashes, otherwise it may never catch
 *     up. The guard trims such a request to the part above the snapshot.
 *
 * Not a safety fix, but in the same place because it needs the same view of
 * raft's messages: commit notices, so that followers apply a write about one
 * network hop after the leader does (see leader_guard_turn_end()).
 *
 * The guard interposes on the struct raft_io that raft already uses: it
 * replaces the io's start, append and send function pointers with its own,
 * keeping the originals. It therefore works on raft_uv's io and on raft_fixture's
 * in-memory io alike, and uses only public interfaces.
 */
#ifndef CAIRN_LEADER_GUARD_H
#define CAIRN_LEADER_GUARD_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

struct leader_guard;

/* Install the guard on r (and r->io). Call after raft_init() and before
 * raft_start(). g must stay at a stable address until raft_close()'s callback
 * has fired. enabled=false installs nothing (tests use it to show the unsafe
 * behaviour). Returns 0 or a RAFT_* error code. */
int leader_guard_init(struct leader_guard *g, struct raft *r, bool enabled);

/* Release memory held by the guard (held messages). Call after raft_close()'s
 * callback. */
void leader_guard_close(struct leader_guard *g);

/* Number of leaderships in which the guard appended its barrier (metrics). */
unsigned long leader_guard_barriers(const struct leader_guard *g);

/* For tests only: stop appending the barrier, keeping only the hold-back.
 * This is the state of an application that fixed bug 2 but not bug 1: a new
 * leader then commits nothing until a client writes (tests/raft shows it). */
void leader_guard_disable_barrier(struct leader_guard *g);

/* For tests only: leave AppendEntries below the snapshot as they come
 * (bug 5 above), to show what raft 0.15 does with them. */
void leader_guard_disable_trim(struct leader_guard *g);

/* Number of AppendEntries requests this node, as a follower, trimmed to the
 * part above its snapshot (bug 5 above). */
unsigned long leader_guard_trimmed(const struct leader_guard *g);

/* Number of AppendEntries results the guard has held back so far, because
 * they reached a leader that had not yet stored an entry of its term
 * (metrics; tests use it to show the guard acted). 0 when disabled. */
unsigned long leader_guard_held(const struct leader_guard *g);

/* Number of successful AppendEntries results this node, as a follower, sent
 * with last_log_index lowered to the prefix the leader's request verified, or
 * did not send because its term changed since the entries arrived (see
 * docs/raft.md, "Leftover entries counted as matched"). */
unsigned long leader_guard_results_fixed(const struct leader_guard *g);

/* Number of times this node's own write failed while it led, and the guard
 * made it step down. */
unsigned long leader_guard_write_failures(const struct leader_guard *g);

/* Number of failed log writes on this node, in any role. raft 0.15 keeps a
 * follower's in-memory log after its write failed (fixed upstream in 0.18),
 * so the server stops the node when this grows: a restart reloads the log
 * from disk. */
unsigned long leader_guard_append_failures(const struct leader_guard *g);

/* Number of held results never handed to raft: the leadership ended first, or
 * the queue was full or out of memory. Raft tolerates lost messages (the
 * leader sends AppendEntries again at the next heartbeat). */
unsigned long leader_guard_dropped(const struct leader_guard *g);

/* Not a safety fix: commit notices (leader_guard.c explains). As leader, the
 * guard sends each follower an empty AppendEntries as soon as the commit
 * index advances; as follower, it lets raft act on the commit index of a
 * request before writing the request's entries, and on that of an empty
 * request that came while the entries it covers were being written once the
 * write completes. A write is then applied on
 * followers about one network hop after the leader, not one follower disk
 * write or one heartbeat interval later. notices counts those sent as
 * leader, splits the requests whose commit was taken early as follower. */
unsigned long leader_guard_notices(const struct leader_guard *g);

/* Send the commit notices due (none when raft's own requests already carried
 * the commit index). Call at the end of each turn of the event loop, after
 * raft had the turn's messages and writes: a notice then goes out only when
 * nothing else will carry the commit index soon. */
void leader_guard_turn_end(struct leader_guard *g);
unsigned long leader_guard_splits(const struct leader_guard *g);

/* For tests and measurements only: send and split no commit notices, as
 * raft 0.15 alone behaves. */
void leader_guard_disable_notice(struct leader_guard *g);

/* For tests only: as follower, forget a commit index that arrived in an empty
 * AppendEntries while the entries it covers were still being written, as
 * raft 0.15 does, instead of acting on it when the write completes. */
void leader_guard_disable_replay(struct leader_guard *g);

/* The struct is public so it can be embedded; its fields are private. */
/* Not a safety fix: what server.c needs to say how stale a follower is
 * (docs/operations.md). The guard sees every AppendEntries and
 * InstallSnapshot this node receives as a follower from the leader of its
 * current term, and keeps the time (raft's clock, io->time) and the
 * leader's commit index of each (a snapshot's last index) until the node has
 * applied that much, up to 64 of them. Given the node's applied index, this
 * forgets every contact it covers and returns true with *time_ms the newest
 * one's time: the node then held everything the leader had committed at
 * that time. False when none is covered (or the guard is disabled). */
bool leader_guard_fresh_since(struct leader_guard *g, uint64_t applied, uint64_t *time_ms);

struct leader_guard
{
    struct raft *raft; /* borrowed */
    bool enabled;
    /* The rest is private to leader_guard.c. */
    void *impl_; /* owned */
};

#endif /* CAIRN_LEADER_GUARD_H */
