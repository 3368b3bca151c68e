/*
 * dr: disaster recovery inside cairnd (docs/disaster-recovery.md). Every
 * node spools the entries it applies (src/spool.h); the leader is
 * responsible for the object store: it ships the spool as log segments every
 * --backup-ship-interval-ms, takes snapshots on --backup-snapshot-interval-ms
 * and on demand, prunes by --backup-retention and verifies the newest
 * snapshot plus archive on --backup-verify-interval-ms. A new leader lists
 * the store to learn where its predecessor stopped and carries on from its
 * own spool.
 *
 * Threads: the loop thread owns struct dr and decides; two worker threads
 * do every object-store call, encoding and compression, one job each at a
 * time, and hand results back through a uv_async_t. Lane DR_SHIP only ships
 * log segments, so the recovery point never waits behind lane DR_KEEP's
 * slower work (sync, snapshot, prune, verify). A snapshot is captured on
 * the loop (kv_capture: no value copied) and encoded on DR_KEEP, so reads
 * and writes go on meanwhile.
 *
 *   loop:    tick --> ship job ---------------------------> DR_SHIP
 *                 --> sync | snapshot | prune | verify ---> DR_KEEP
 *   workers: objstore calls --> result --> uv_async --> loop: apply result
 */
#ifndef CAIRN_DR_H
#define CAIRN_DR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "dr_archive.h"
#include "dr_export.h"
#include "metrics.h"
#include "proto.h"
#include "spool.h"

struct server;
struct session;
struct dr_job;

enum { DR_SHIP = 0, DR_KEEP = 1 };

/* A request waiting for a job's end. */
struct dr_waiter
{
    struct dr_waiter *next;
    struct session *session; /* referenced */
    uint64_t id;
};

/* Waiters (loop thread): add one (it references the session; -1 when out
 * of memory, the request then answered with CAIRN_ENOMEM); answer them all,
 * with json at revision (code 0) or with the error (revision unused), and
 * release them. dr_reply_json
 * answers one request with a BACKUP text answer at revision. */
int dr_add_waiter(struct dr_waiter **list, struct session *session, uint64_t id);
void dr_answer_waiters(struct dr_waiter **list, uint64_t revision, int code, const char *message,
                       const struct buf *json);
void dr_reply_json(struct session *session, uint64_t id, uint64_t revision, const struct buf *json);

struct dr_status_snap
{
    bool ok;
    int64_t time_ms;
    uint64_t revision;
    char error[512];
};

#define DR_SHIPPED_KEPT 256
/* Kinds of object-store jobs (dr.c): sync, ship, snapshot, prune, verify,
 * compact. */
#define DR_JOB_KINDS 6

struct dr
{
    struct server *srv; /* borrowed */
    bool enabled;
    char *spool_dir; /* owned */
    struct spool spool;
    /* Two workers, so that shipping never waits behind a snapshot upload,
     * a pruning or a verification: lane DR_SHIP ships log segments, lane
     * DR_KEEP does everything else. */
    struct dr_lane
    {
        struct dr *d;
        struct objstore *store; /* owned; used by this lane's thread only */
        pthread_t thread;
        bool started;
        struct dr_job *job;   /* in flight (the thread's until done) */
        struct dr_job *done;  /* finished, for the loop */
        uint64_t retry_at_ms; /* after a failure, no job before this */
        unsigned failure_streak;
    } lanes[2];
    uv_timer_t timer;
    uv_async_t async;
    uv_idle_t idle;           /* steps the capture below, one slice per loop turn */
    struct dr_job *capturing; /* a snapshot whose state is being captured */
    bool handles;             /* timer, async and idle initialized */
    bool replaced;            /* raft installed a snapshot: a gap at the next entry */
    bool abandoned;           /* a stuck worker was left running at close: the key space
                               * it may read must not be freed */
    uint64_t seen_gaps;
    pthread_mutex_t mu; /* guards lanes' job and done, and stop */
    pthread_cond_t cond;
    bool stop;
    bool closing;
    /* Loop-thread state. */
    bool responsible;
    bool synced;
    uint64_t archived_index;
    uint64_t archived_revision;
    int64_t archived_time_ms;
    uint64_t pending_since_ms; /* loop time the oldest unshipped entry arrived; 0: none */
    uint64_t last_ship_ms;
    int64_t last_snapshot_taken_ms; /* wall clock, from the store or ours */
    uint64_t last_snapshot_hash;
    /* The newest snapshot: when shipping has not reached its index yet, it
     * is the recovery point (recovery_point() in dr.c). */
    uint64_t last_snapshot_index;
    uint64_t last_snapshot_revision;
    int64_t last_snapshot_time_ms;
    /* Loop time since which the state has differed from the last snapshot
     * (0: it has not); a snapshot is overdue when that lasts 2 intervals. */
    uint64_t changed_since_ms;
    bool have_snapshot;
    bool rebase; /* the snapshot in flight starts the archive's chain again */
    uint64_t last_prune_ms;
    uint64_t last_verify_ms;
    uint64_t compact_next_ms; /* loop time before which no compaction is planned */
    bool save_requested;
    bool verify_requested;
    /* Asked for a snapshot since the last one began: the next one answers. */
    struct dr_waiter *save_waiters;
    /* Those the snapshot in flight answers: their requests came before its
     * capture began, so it holds every write acknowledged before them. */
    struct dr_waiter *saving_waiters;
    /* Those a stored snapshot answers once the archive's log reaches it
     * (shipped_snap.index), so that a listing right after the answer shows
     * no break before it. */
    struct dr_waiter *shipping_waiters;
    struct dr_snapshot shipped_snap;
    struct dr_waiter *verify_waiters;
    /* What status shows. */
    struct dr_catalog catalog; /* the store as last listed, and shipped since */
    /* The latest shipments, so that a listing begun before one finished
     * does not lose it from the catalog (take_catalog in dr.c). */
    struct
    {
        struct dr_segment seg;
        uint64_t done_ns;
    } shipped[DR_SHIPPED_KEPT];
    unsigned n_shipped; /* ever; shipped[n % DR_SHIPPED_KEPT] is the next slot */
    struct dr_status_snap last_snapshot;
    bool have_last_snapshot;
    struct dr_status_snap last_verify;
    bool have_last_verify;
    uint64_t verify_snapshot_revision;
    uint64_t verify_entries;
    uint64_t failures;
    uint64_t snapshots_uploaded;
    uint64_t segments_uploaded;
    uint64_t segments_merged; /* by this node's compactions */
    uint64_t bytes_uploaded;
    /* Retention tiers, parsed from --backup-retention. */
    struct dr_tier tiers[DR_TIERS_MAX];
    unsigned n_tiers;
    /* Metrics. */
    struct metrics_series *m_enabled;
    struct metrics_series *m_responsible;
    struct metrics_series *m_lag;
    struct metrics_series *m_snapshot_age;
    struct metrics_series *m_archived_rev;
    struct metrics_series *m_backlog;
    struct metrics_series *m_backlog_max;
    struct metrics_series *m_behind;
    struct metrics_series *m_verify_ok;
    struct metrics_series *m_verify_time;
    struct metrics_series *m_failures[DR_JOB_KINDS];
    struct metrics_series *m_snapshots;
    struct metrics_series *m_segments;
    struct metrics_series *m_merged;
    struct metrics_series *m_bytes;
    struct metrics_series *m_gaps;
    struct metrics_series *m_snapshot_ns;
    /* Snapshots downloaded by clients (cairnctl snapshot save FILE); works
     * without a store too. */
    struct dr_export export;
};

/* Set up from the server's configuration: opens the store (validating the
 * URL) and the spool. Runs before raft starts. Returns 0 or -1 with errmsg. */
int dr_init(struct dr *d, struct server *srv, struct metrics *reg, char *errmsg, size_t len);
/* After raft_start: reconcile the spool with what raft restored and start
 * the worker and timer. */
int dr_start(struct dr *d);
/* Stop the worker (joins it) and close handles. */
void dr_close(struct dr *d);

/* From the state machine, for every applied command entry. */
void dr_entry_applied(struct dr *d, uint64_t index, int64_t time_ms, const char *entry, size_t len);
/* raft installed a snapshot: the spool has a gap. */
void dr_state_replaced(struct dr *d);
/* raft is about to take a snapshot: the spool must be on disk. */
void dr_before_raft_snapshot(struct dr *d);

/* A PROTO_BACKUP request (on the leader). */
void dr_handle(struct dr *d, struct session *session, const struct proto_request *req);
/* Mirror the state into the metrics before rendering. */
void dr_metrics_update(struct dr *d);

/* Bootstrap the data directory from --restore-from (to --restore-revision
 * or time_ms; the S3 settings are --backup-*'s), blocking, before the loop
 * runs. Returns 0 with the new cluster's id and the revision restored, or
 * -1 with errmsg. */
int dr_bootstrap(const struct config *c, int64_t time_ms, uint64_t *cluster_id, uint64_t *revision,
                 char *errmsg, size_t len);

#endif /* CAIRN_DR_H */
