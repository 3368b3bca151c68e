/*
 * node_metrics: what a cairnd node measures, kept in a metrics registry
 * (metrics.h) that belongs to the loop thread, and rendered for the METRICS
 * request (docs/http.md, "Metrics", lists the series).
 *
 * Two kinds of figures, at two costs:
 *
 *  - Per request, on the hot path: a count by operation and result and the
 *    latency from receipt to answer. node_metrics_request() is two array
 *    lookups, an add and a short bucket scan; a series is allocated the
 *    first time an (operation, result) pair occurs, then kept.
 *  - Everything else (raft indexes, key-space size, watchers, sessions, the
 *    counters other modules keep anyway) is read only when the metrics are
 *    asked for, by node_metrics_render(): it costs nothing in between.
 *
 * Snapshot durations are measured by raft/fsm.c into the two histogram
 * series this module hands it (fsm.snapshot_take_ns, snapshot_restore_ns).
 */
#ifndef CAIRN_NODE_METRICS_H
#define CAIRN_NODE_METRICS_H

#include <stdint.h>

#include "buf.h"
#include "cairn.h"
#include "metrics.h"
#include "proto.h"

struct server;
struct fsm;

/* The op label of a request. */
enum node_metrics_op {
    NODE_OP_GET,
    NODE_OP_RANGE, /* a get with prefix */
    NODE_OP_PUT,
    NODE_OP_DELETE,
    NODE_OP_TXN,
    NODE_OP_HISTORY,
    NODE_OP_COMPACT,
    NODE_OP_STATUS,
    NODE_OP_RETENTION,
    NODE_OP_WATCH,
    NODE_OP_WATCH_CANCEL,
    NODE_OP_PROGRESS,
    NODE_OP_SWEEP,
    NODE_OP_METRICS,
    NODE_OP_MEMBER,   /* membership: list and changes */
    NODE_OP_TRANSFER, /* leadership transfer on request */
    NODE_OP_BACKUP,   /* disaster recovery: status, save, verify */
    NODE_OP_INVALID,  /* a frame that did not decode or was too large */
    NODE_OP_COUNT,
};

/* The result label: "ok", each CAIRN_E* code, and "other" for a code
 * outside the table. */
#define NODE_RESULT_CODES (0 CAIRN_ERRORS(NODE__COUNT_ONE))
#define NODE__COUNT_ONE(name, value, text) +1
#define NODE_RESULTS (NODE_RESULT_CODES + 1)

struct node_metrics
{
    struct metrics reg;
    struct metrics_family *requests; /* cairn_requests_total{op,result} */
    struct metrics_family *latency;  /* cairn_request_duration_seconds{op} */
    /* Created on first use; NULL until then (or when that allocation failed,
     * and then retried at the next request). */
    struct metrics_series *request_series[NODE_OP_COUNT][NODE_RESULTS];
    struct metrics_series *latency_series[NODE_OP_COUNT];
    /* Read when rendering. */
    struct metrics_series *raft_term;
    struct metrics_series *raft_commit;
    struct metrics_series *raft_applied;
    struct metrics_series *raft_last;
    struct metrics_series *raft_is_leader;
    struct metrics_series *raft_leader_changes;
    struct metrics_series *commit_notices;
    struct metrics_series *early_commits;
    struct metrics_series *writes_in_flight;
    struct metrics_series *read_barriers;
    struct metrics_series *linearizable_reads;
    struct metrics_series *reads_waiting;      /* parked for a min_revision now */
    struct metrics_series *read_waits_served;  /* answered after waiting */
    struct metrics_series *read_wait_timeouts; /* failed: the revision did not come */
    struct metrics_series *snapshots_taken;
    struct metrics_series *snapshots_restored;
    struct metrics_series *snapshot_take_ns;
    struct metrics_series *snapshot_restore_ns;
    struct metrics_series *keys;
    struct metrics_series *bytes;
    struct metrics_series *revision;
    struct metrics_series *compact_revision;
    struct metrics_series *retention_policies;
    struct metrics_series *watchers;
    struct metrics_series *watchers_behind;
    struct metrics_series *watch_events;
    struct metrics_series *watch_queue_events;
    struct metrics_series *watch_catchups;
    struct metrics_series *watch_snapshots;
    struct metrics_series *connections;
    struct metrics_series *connections_total;
    struct metrics_series *output_bytes;
    struct metrics_series *resident_bytes;
    struct metrics_series *start_time;
};

/* Register every family. Returns 0 or CAIRN_ENOMEM (then call
 * node_metrics_close() all the same). */
int node_metrics_init(struct node_metrics *nm);
void node_metrics_close(struct node_metrics *nm);

/* The op label of a decoded request. */
uint8_t node_metrics_op(const struct proto_request *req);

/* A request was answered with code (0 or CAIRN_E*), receipt_ns
 * (metrics_now_ns()) after it arrived. */
void node_metrics_request(struct node_metrics *nm, uint8_t op, int code, uint64_t receipt_ns);

/* Read the server's state into the registry and append the text exposition
 * to out. Returns 0, or CAIRN_ENOMEM with out as it was. */
int node_metrics_render(struct server *s, struct buf *out);

#endif /* CAIRN_NODE_METRICS_H */
