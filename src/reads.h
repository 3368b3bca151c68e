/*
 * reads: linearizable reads on the leader, batched behind barriers.
 *
 * canonical/raft 0.15 has no read-index, so a leader proves it still leads by
 * committing a barrier entry of its current term (Raft dissertation, section
 * 6.4: a leader must check it has not been deposed before answering a
 * read-only request). A read waits for a barrier proposed after it arrived;
 * one barrier serves every read that arrived before it was proposed. Only one
 * barrier is in flight: reads arriving meanwhile wait for the next, which is
 * proposed as soon as the current one commits. Under load each barrier so
 * covers a whole batch, and the fsync it costs is shared.
 */
#ifndef CAIRN_READS_H
#define CAIRN_READS_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

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
};

void reads_init(struct reads *r, struct server *srv);

/* Queue a linearizable read (the payload is copied). It is counted in the
 * node's metrics (op, receipt_ns) when answered, here or later. */
void reads_submit(struct reads *r, struct session *s, const char *payload, size_t len, uint64_t id,
                  uint8_t type, uint8_t op, uint64_t receipt_ns);

/* Answer every queued read with an error (leadership lost, shutdown). */
void reads_fail_all(struct reads *r, int code, const char *message);

#endif /* CAIRN_READS_H */
