/*
 * reads: linearizable reads on the leader, batched behind barriers; and, on
 * any node, local reads that wait until it has applied a revision.
 *
 * canonical/raft 0.15 has no read-index, so a leader proves it still leads by
 * committing a barrier entry of its current term (Raft dissertation, section
 * 6.4: a leader must check it has not been deposed before answering a
 * read-only request). A read waits for a barrier proposed after it arrived;
 * one barrier serves every read that arrived before it was proposed. Only one
 * barrier is in flight: reads arriving meanwhile wait for the next, which is
 * proposed as soon as the current one commits. Under load each barrier so
 * covers a whole batch, and the fsync it costs is shared.
 *
 * A read with a min_revision (docs/operations.md) is answered by the
 * node that receives it, leader or not, once that node's key space has
 * reached the revision. If it has not yet, the read is parked (src/read_wait.h)
 * until the state machine applies it (reads_applied(), called by the fsm
 * after every entry and snapshot) or its bound passes (CAIRN_ETIMEOUT from a
 * timer). Bounds: --read-wait-queue-max reads and READS_PARKED_BYTES_MAX
 * bytes of request payloads (CAIRN_EBUSY beyond); a parked read leaves when
 * its session closes, and every parked read fails with CAIRN_ESHUTDOWN when
 * the node stops.
 */
#ifndef CAIRN_READS_H
#define CAIRN_READS_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "read_wait.h"

/* Request bytes that parked reads may hold in all. */
#define READS_PARKED_BYTES_MAX (64u * 1024u * 1024u)

struct server;
struct session;

struct read_req
{
    struct read_req *next;
    struct session *session; /* referenced */
    char *payload;           /* owned: the request as received */
    size_t len;
    uint64_t id;
    uint8_t type;
    uint8_t metrics_op;  /* enum node_metrics_op */
    uint64_t receipt_ns; /* when the request arrived (metrics_now_ns) */
};

/* A read parked until its min_revision is applied. */
struct parked_read
{
    struct read_waiter waiter; /* in reads.parked */
    struct read_req req;       /* the request, as for a linearizable read */
    uint64_t min_revision;
    uint64_t wait_ms; /* its bound, for the message */
};

struct reads
{
    struct server *srv;       /* borrowed */
    struct read_req *waiting; /* arrived since the barrier in flight was proposed */
    struct read_req **waiting_tail;
    struct read_req *batch; /* served by the barrier in flight */
    struct raft_barrier barrier;
    bool barrier_in_flight;
    uint64_t barriers;
    uint64_t served;
    /* Reads waiting for a revision. */
    struct read_wait parked;
    uint64_t parked_bytes;
    uv_timer_t parked_timer; /* fires at the earliest deadline */
    uint64_t waited;         /* reads answered after waiting */
    uint64_t wait_timeouts;  /* reads failed because their bound passed */
};

/* srv->loop and srv->cfg must be set. */
void reads_init(struct reads *r, struct server *srv);
/* Close the timer handle (the loop then runs its close callback). */
void reads_close(struct reads *r);
/* Free the wait list's memory once nothing is parked (after the loop). */
void reads_free(struct reads *r);

/* Queue a linearizable read (the payload is copied). It is counted in the
 * node's metrics (op, receipt_ns) when answered, here or later. */
void reads_submit(struct reads *r, struct session *s, const char *payload, size_t len, uint64_t id,
                  uint8_t type, uint8_t op, uint64_t receipt_ns);

/* Answer every queued read with an error (leadership lost, shutdown). */
void reads_fail_all(struct reads *r, int code, const char *message);

/* A read whose min_revision (> the node's revision) is not applied yet: park
 * it (the payload is copied) for at most wait_ms. Answered and counted
 * (op, receipt_ns) here or later: at once with CAIRN_EBUSY when the wait list
 * is full, CAIRN_ETIMEOUT when wait_ms is 0. */
void reads_park(struct reads *r, struct session *s, const char *payload, size_t len, uint64_t id,
                uint8_t type, uint8_t op, uint64_t receipt_ns, uint64_t min_revision,
                uint64_t wait_ms);

/* The key space may have moved on: answer every parked read it satisfies. */
void reads_applied(struct reads *r);

/* The session is closing: drop its parked reads. */
void reads_session_closed(struct reads *r, struct session *s);

/* Answer every parked read with an error (shutdown). */
void reads_fail_parked(struct reads *r, int code, const char *message);

#endif /* CAIRN_READS_H */
