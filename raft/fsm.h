/*
 * fsm: the Raft state machine. Glue between canonical/raft's struct raft_fsm
 * and the key space (src/kv.h).
 *
 * A log entry is msgpack [format, origin_id, time_ms, request], where request
 * is the client's request payload exactly as the proposer received and
 * validated it, origin_id the proposing node and time_ms the proposer's wall
 * clock (so every replica stamps versions with the same time).
 *
 * raft calls apply() and, on the proposing node only, the raft_apply callback
 * right after it, before applying the next entry (raft 0.15 applyCommand).
 * So apply() packs the client response into fsm->reply when this node is the
 * origin, and the callback sends those bytes: no response is kept beyond one
 * entry.
 *
 * A committed entry that does not decode is applied as a no-op on every node
 * alike: committed bytes are never asserted on. Running out of memory in the
 * middle of applying would leave this replica different from the others, so
 * it aborts the process (raft replays the log on restart).
 */
#ifndef CAIRN_FSM_H
#define CAIRN_FSM_H

#include <raft.h>
#include <stdint.h>

#include "buf.h"
#include "kv.h"
#include "metrics.h"

/* Who else learns of applied entries (disaster recovery, src/dr.h). Every
 * callback may be NULL. */
struct fsm_hooks
{
    void *data;
    /* A command entry was applied: its raft index, the proposer's time and
     * the entry's bytes (valid during the call). */
    void (*applied)(void *data, uint64_t index, int64_t time_ms, const char *entry, size_t len);
    /* The state was replaced by a snapshot raft installed. */
    void (*replaced)(void *data);
    /* raft is taking a snapshot: the log before it may go. */
    void (*before_snapshot)(void *data);
};

struct fsm
{
    struct raft_fsm raft_fsm; /* what raft calls */
    struct kv kv;
    raft_id id;        /* this node */
    struct raft *raft; /* borrowed, for the index being applied; NULL in tests */
    struct fsm_hooks hooks;
    /* Told after every applied command and installed snapshot that the key
     * space may have moved on (server.c answers the reads waiting for a
     * revision); NULL: nobody. It may read the key space, not change it. */
    void (*advanced)(void *data);
    void *advanced_data;
    struct buf reply;           /* the last response packed for a local proposal */
    struct kv_capture *capture; /* owned: the snapshot being encoded, if any */
    int reply_code;             /* 0 or the CAIRN_E* code of the reply packed last */
    uint64_t applied_commands;
    uint64_t applied_bytes; /* of those commands' log entries */
    uint64_t snapshots_taken;
    uint64_t snapshots_restored;
    uint64_t snapshot_started_ns; /* when the snapshot in progress was captured */
    /* Histograms in the node's metrics (nanoseconds); borrowed, NULL: not
     * measured. */
    struct metrics_series *snapshot_take_ns;
    struct metrics_series *snapshot_restore_ns;
};

int fsm_init(struct fsm *f, raft_id id);

/* How many entries raft should let pass between snapshots: at least
 * min_entries, and enough that the log since the last snapshot holds
 * log_percent % of state_bytes, at entry_bytes per entry on average (the
 * log's bytes over its entries so far). A snapshot rewrites the whole state,
 * so taking one every min_entries entries of a state of hundreds of MB
 * writes that much to disk every few seconds under load, stalling the log's
 * own fsyncs. Capped so that it fits raft's unsigned threshold. */
uint64_t fsm_snapshot_threshold(uint64_t min_entries, uint64_t log_percent, uint64_t state_bytes,
                                uint64_t entry_bytes);

/* The key space's size as a snapshot sees it: keys and values plus a
 * version's fixed fields. */
uint64_t fsm_state_bytes(const struct fsm *f);
void fsm_close(struct fsm *f);

/* Build a log entry for payload (a request as received) into a buffer from
 * raft_malloc(), ready for raft_apply(). Returns 0 or CAIRN_ENOMEM. */
int fsm_encode_entry(raft_id origin, int64_t time_ms, const char *payload, size_t len,
                     struct raft_buffer *out);

#endif /* CAIRN_FSM_H */
