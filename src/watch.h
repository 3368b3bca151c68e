/*
 * watch: the watch hub. It serves every watch of one node, on any node
 * (followers from their applied state), and guarantees that each watcher
 * receives every change of its key or prefix from its start revision on, in
 * revision order, each revision once, one revision's events together.
 *
 * A watcher is always in one of three states:
 *
 *                 created at a past revision, or fell behind
 *              +---------------------------------------------+
 *              |                                             v
 *   created --> SYNCED  <--- history reached the head --- CATCHUP
 *   at "now"                                              |    ^
 *                                  history incomplete     |    | the last part
 *                                  (compacted, trimmed)   v    | was sent
 *                                                        SNAPSHOT
 *
 *  - SYNCED: changes are pushed as they are applied (kv_observer), encoded
 *    once per revision and copied into each matching watcher's connection.
 *  - CATCHUP: the watcher is behind the key space; the hub reads the missing
 *    revisions from the key space's retained history, a bounded batch at a
 *    time, whenever its connection has room.
 *  - SNAPSHOT: history no longer holds every change the watcher needs (its
 *    resume point is at or below the compaction revision, or retention
 *    trimmed a version it needs). The hub sends the watched range's state at
 *    one revision S, in parts read at S, and continues from S + 1.
 *
 * Bounds (see docs/cairnd.md): a watcher may have at most
 * watch_queue_events_max events in its connection's unsent output, and a
 * connection's output stops taking live events beyond watch_output_max_bytes.
 * A watcher that would exceed either is not dropped and nothing is skipped:
 * it turns CATCHUP at the first revision it missed, and catches up from
 * history once its connection drains. So a node's memory for watches is
 * bounded by connections times watch_output_max_bytes, plus a small constant
 * per watcher.
 *
 * Everything here runs on the loop thread.
 */
#ifndef CAIRN_WATCH_H
#define CAIRN_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "kv.h"
#include "proto.h"

struct session;
struct watcher;
struct watch_group;

/* Catch-up and snapshot work done per loop iteration before yielding. */
#define WATCH_WORK_PER_ITERATION 64
/* Events per catch-up message (rounded up to a whole revision). */
#define WATCH_CATCHUP_BATCH_EVENTS 256
/* Keys, and bytes of keys and values, per snapshot part. */
#define WATCH_SNAPSHOT_PART_KEYS 1024
#define WATCH_SNAPSHOT_PART_BYTES (256u * 1024u)
/* Scratch buffers larger than this are released after each revision. */
#define WATCH_BUF_KEEP_BYTES (1024u * 1024u)
/* Smallest progress interval a watch may ask for. */
#define WATCH_PROGRESS_MIN_MS 100

struct watch_limits
{
    uint64_t queue_events_max;   /* per watcher, events in unsent output */
    uint64_t output_max_bytes;   /* per connection, unsent output taking live events */
    uint64_t per_connection_max; /* watches on one connection */
    uint64_t progress_ms;        /* default progress interval */
};

/* One event of the revision being applied, encoded once. */
struct watch_event
{
    size_t key_off; /* into batch */
    uint32_t key_len;
    size_t kv_off; /* msgpack kv */
    uint32_t kv_len;
    size_t prev_off;   /* msgpack kv of the previous live version */
    uint32_t prev_len; /* 0: none */
};

struct watch_hub
{
    uv_loop_t *loop; /* borrowed */
    struct kv *kv;   /* borrowed */
    struct watch_limits limits;
    struct kv_observer observer; /* installed into kv by the server */
    uv_idle_t work;              /* runs catch-up and snapshot work */
    bool work_active;
    kv_rev rev; /* last revision published */
    /* Exact-key and prefix groups, hashed by (prefix flag, key). */
    struct watch_group **groups; /* owned */
    size_t n_group_buckets;
    size_t n_groups;
    struct watch_group *prefix_groups; /* list of the prefix groups */
    /* Watchers hashed by (session, id). */
    struct watcher **by_id; /* owned */
    size_t n_id_buckets;
    uint64_t n_watchers;
    /* Watchers with catch-up or snapshot work and room to do it. */
    struct watcher *ready_head;
    struct watcher *ready_tail;
    /* The revision being applied: its events, and its messages. */
    struct buf batch;
    struct buf frames;
    struct watch_event *events; /* owned */
    size_t n_events;
    size_t cap_events;
    /* Scratch for matching one revision. */
    struct watch_pair *pairs; /* owned */
    size_t n_pairs;
    size_t cap_pairs;
    struct watcher **touched; /* owned */
    size_t n_touched;
    size_t cap_touched;
    /* Counters for status and metrics. */
    uint64_t events_sent;
    uint64_t catchups;  /* times a watcher turned CATCHUP after being SYNCED */
    uint64_t snapshots; /* snapshots started */
};

int watch_hub_init(struct watch_hub *h, uv_loop_t *loop, struct kv *kv,
                   const struct watch_limits *limits);
/* Close the hub's handle (no-op when it was never initialized). */
void watch_hub_close(struct watch_hub *h);
/* Free the hub's memory once the loop has ended and every session closed;
 * safe on a zeroed hub. */
void watch_hub_free(struct watch_hub *h);

/* Handle PROTO_WATCH, PROTO_WATCH_CANCEL and PROTO_PROGRESS from session.
 * Answers go to the session's output. Returns the code answered: 0, or the
 * CAIRN_E* error sent. */
int watch_hub_handle(struct watch_hub *h, struct session *s, const struct proto_request *req);

/* The session is closing: drop its watchers. */
void watch_hub_session_closed(struct watch_hub *h, struct session *s);

/* The session's output drained: watchers waiting for room may go on. */
void watch_hub_session_drained(struct watch_hub *h, struct session *s);

/* Periodic: progress notifications. */
void watch_hub_tick(struct watch_hub *h);

uint64_t watch_hub_count(const struct watch_hub *h);

/* Figures for metrics, gathered by walking every watcher: call it when they
 * are asked for, not per event. */
struct watch_hub_stats
{
    uint64_t watchers;
    uint64_t behind;        /* CATCHUP or SNAPSHOT */
    uint64_t queued_events; /* sent, still in their connections' unsent output */
};

void watch_hub_stats(struct watch_hub *h, struct watch_hub_stats *out);

#endif /* CAIRN_WATCH_H */
