#include "node_metrics.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server.h"
#include "session.h"

static const char *const op_names[NODE_OP_COUNT] = {
    [NODE_OP_GET] = "get",
    [NODE_OP_RANGE] = "range",
    [NODE_OP_PUT] = "put",
    [NODE_OP_DELETE] = "delete",
    [NODE_OP_TXN] = "txn",
    [NODE_OP_HISTORY] = "history",
    [NODE_OP_COMPACT] = "compact",
    [NODE_OP_STATUS] = "status",
    [NODE_OP_RETENTION] = "retention",
    [NODE_OP_WATCH] = "watch",
    [NODE_OP_WATCH_CANCEL] = "watch_cancel",
    [NODE_OP_PROGRESS] = "progress",
    [NODE_OP_SWEEP] = "sweep",
    [NODE_OP_METRICS] = "metrics",
    [NODE_OP_MEMBER] = "member",
    [NODE_OP_TRANSFER] = "transfer",
    [NODE_OP_BACKUP] = "backup",
    [NODE_OP_INVALID] = "invalid",
};

int node_metrics_init(struct node_metrics *nm)
{
    struct metrics *m = &nm->reg;
    struct metrics_family *snapshots;
    struct metrics_family *snapshot_seconds;
    static const char *const kind[] = {"kind"};
    static const char *const taken[] = {"taken"};
    static const char *const restored[] = {"restored"};
    static const char *const version_name[] = {"version"};
    char version[32];
    const char *version_value[1];
    struct metrics_series *info;

    memset(nm, 0, sizeof(*nm));
    metrics_init(m);
    snprintf(version, sizeof(version), "%d.%d", CAIRN_VERSION_MAJOR, CAIRN_VERSION_MINOR);
    version_value[0] = version;
    info = metrics_series_get(
        metrics_register(m, METRICS_GAUGE, "cairn_build_info",
                         "Always 1; the version label says which cairnd runs.", NULL),
        1, version_name, version_value);
    metrics_gauge_set(info, 1);

    nm->requests = metrics_register(m, METRICS_COUNTER, "cairn_requests_total",
                                    "Client requests answered, by operation and result (ok, or "
                                    "the CAIRN_E* error in lower case without its prefix).",
                                    NULL);
    nm->latency =
        metrics_register(m, METRICS_HISTOGRAM, "cairn_request_duration_seconds",
                         "Time from a request's arrival to its answer, by operation "
                         "(linearizable reads include their barrier, writes their commit).",
                         &metrics_latency_buckets);

    nm->raft_term = metrics_add(m, METRICS_GAUGE, "cairn_raft_term", "Current Raft term.", NULL);
    nm->raft_commit = metrics_add(m, METRICS_GAUGE, "cairn_raft_commit_index",
                                  "Highest Raft log index known to be committed.", NULL);
    nm->raft_applied = metrics_add(m, METRICS_GAUGE, "cairn_raft_applied_index",
                                   "Highest Raft log index applied to the key space.", NULL);
    nm->raft_last = metrics_add(m, METRICS_GAUGE, "cairn_raft_last_index",
                                "Highest index in this node's Raft log.", NULL);
    nm->raft_is_leader = metrics_add(m, METRICS_GAUGE, "cairn_raft_is_leader",
                                     "1 when this node is the Raft leader, else 0.", NULL);
    nm->raft_leader_changes = metrics_add(
        m, METRICS_COUNTER, "cairn_raft_leader_changes_total",
        "Times this node saw a new leader (sampled every 100 ms, so a change and its undo "
        "within one sample go unseen).",
        NULL);
    nm->commit_notices =
        metrics_add(m, METRICS_COUNTER, "cairn_raft_commit_notices_total",
                    "Empty AppendEntries this node sent as leader to tell followers of a commit "
                    "(docs/raft.md, commit notices).",
                    NULL);
    nm->early_commits = metrics_add(
        m, METRICS_COUNTER, "cairn_raft_early_commits_total",
        "Commit indexes this node, as follower, acted on before writing the entries that came "
        "with them, or when a write completed (docs/raft.md, commit notices).",
        NULL);
    nm->writes_in_flight = metrics_add(m, METRICS_GAUGE, "cairn_writes_in_flight",
                                       "Writes proposed by this node and not yet answered.", NULL);
    nm->read_barriers = metrics_add(m, METRICS_COUNTER, "cairn_read_barriers_total",
                                    "Barriers proposed to confirm linearizable reads (one serves "
                                    "a whole batch).",
                                    NULL);
    nm->linearizable_reads = metrics_add(m, METRICS_COUNTER, "cairn_linearizable_reads_total",
                                         "Linearizable reads answered after their barrier.", NULL);
    nm->reads_waiting =
        metrics_add(m, METRICS_GAUGE, "cairn_reads_waiting",
                    "Reads waiting for this node to apply their min_revision.", NULL);
    nm->read_waits_served =
        metrics_add(m, METRICS_COUNTER, "cairn_read_waits_answered_total",
                    "Reads answered after waiting for their min_revision.", NULL);
    nm->read_wait_timeouts = metrics_add(
        m, METRICS_COUNTER, "cairn_read_wait_timeouts_total",
        "Reads failed because their min_revision was not applied within their bound.", NULL);

    snapshots = metrics_register(m, METRICS_COUNTER, "cairn_snapshots_total",
                                 "Raft snapshots taken by this node, and restored into it (at "
                                 "start, or sent by the leader).",
                                 NULL);
    nm->snapshots_taken = metrics_series_get(snapshots, 1, kind, taken);
    nm->snapshots_restored = metrics_series_get(snapshots, 1, kind, restored);
    snapshot_seconds = metrics_register(
        m, METRICS_HISTOGRAM, "cairn_snapshot_duration_seconds",
        "Snapshot durations: taken, from capture to the file written; restored, decoding into "
        "the key space.",
        &metrics_duration_buckets);
    nm->snapshot_take_ns = metrics_series_get(snapshot_seconds, 1, kind, taken);
    nm->snapshot_restore_ns = metrics_series_get(snapshot_seconds, 1, kind, restored);

    nm->keys = metrics_add(m, METRICS_GAUGE, "cairn_keys", "Live keys (not deleted).", NULL);
    nm->bytes = metrics_add(m, METRICS_GAUGE, "cairn_bytes",
                            "Bytes of keys and values over every retained version.", NULL);
    nm->revision = metrics_add(m, METRICS_GAUGE, "cairn_revision",
                               "Revision of the key space (applied).", NULL);
    nm->compact_revision = metrics_add(m, METRICS_GAUGE, "cairn_compact_revision",
                                       "Revision below which history was compacted.", NULL);
    nm->retention_policies =
        metrics_add(m, METRICS_GAUGE, "cairn_retention_policies",
                    "Retention policies in force (the one for \"\" included).", NULL);

    nm->watchers =
        metrics_add(m, METRICS_GAUGE, "cairn_watchers", "Watches this node serves.", NULL);
    nm->watchers_behind =
        metrics_add(m, METRICS_GAUGE, "cairn_watchers_behind",
                    "Watches catching up from history or sending a snapshot.", NULL);
    nm->watch_events = metrics_add(m, METRICS_COUNTER, "cairn_watch_events_total",
                                   "Events sent to watchers.", NULL);
    nm->watch_queue_events = metrics_add(m, METRICS_GAUGE, "cairn_watch_queue_events",
                                         "Events sent to watchers and still waiting in their "
                                         "connections' output.",
                                         NULL);
    nm->watch_catchups =
        metrics_add(m, METRICS_COUNTER, "cairn_watch_catchups_total",
                    "Times a watcher fell behind and caught up from history.", NULL);
    nm->watch_snapshots = metrics_add(m, METRICS_COUNTER, "cairn_watch_snapshots_total",
                                      "Snapshots sent to watchers whose history was gone.", NULL);

    nm->connections = metrics_add(m, METRICS_GAUGE, "cairn_client_connections",
                                  "Open client connections (native protocol).", NULL);
    nm->connections_total = metrics_add(m, METRICS_COUNTER, "cairn_client_connections_total",
                                        "Client connections accepted.", NULL);
    nm->output_bytes =
        metrics_add(m, METRICS_GAUGE, "cairn_client_output_bytes",
                    "Answer and watch bytes waiting to be written to clients.", NULL);

    nm->resident_bytes = metrics_add(m, METRICS_GAUGE, "process_resident_memory_bytes",
                                     "Resident memory size in bytes.", NULL);
    nm->start_time =
        metrics_add(m, METRICS_GAUGE, "process_start_time_seconds",
                    "Start time of the process since the Unix epoch in seconds.", NULL);
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        metrics_gauge_set(nm->start_time, (double)ts.tv_sec);
    }
    /* Every series above exists unless memory ran out. */
    if (info == NULL || nm->requests == NULL || nm->latency == NULL || nm->start_time == NULL ||
        nm->snapshot_restore_ns == NULL || nm->output_bytes == NULL) {
        return CAIRN_ENOMEM;
    }
    return 0;
}

void node_metrics_close(struct node_metrics *nm)
{
    metrics_free(&nm->reg);
    memset(nm, 0, sizeof(*nm));
}

uint8_t node_metrics_op(const struct proto_request *req)
{
    switch (req->type) {
        case PROTO_GET:
            return req->op.prefix ? NODE_OP_RANGE : NODE_OP_GET;
        case PROTO_PUT:
            return NODE_OP_PUT;
        case PROTO_DEL:
            return NODE_OP_DELETE;
        case PROTO_TXN:
            return NODE_OP_TXN;
        case PROTO_HISTORY:
            return NODE_OP_HISTORY;
        case PROTO_COMPACT:
            return NODE_OP_COMPACT;
        case PROTO_STATUS:
            return NODE_OP_STATUS;
        case PROTO_RETENTION:
            return NODE_OP_RETENTION;
        case PROTO_WATCH:
            return NODE_OP_WATCH;
        case PROTO_WATCH_CANCEL:
            return NODE_OP_WATCH_CANCEL;
        case PROTO_PROGRESS:
            return NODE_OP_PROGRESS;
        case PROTO_SWEEP:
            return NODE_OP_SWEEP;
        case PROTO_METRICS:
            return NODE_OP_METRICS;
        case PROTO_MEMBER:
            return NODE_OP_MEMBER;
        case PROTO_TRANSFER:
            return NODE_OP_TRANSFER;
        case PROTO_BACKUP:
            return NODE_OP_BACKUP;
        default:
            return NODE_OP_INVALID;
    }
}

/* "CAIRN_ENOTLEADER" -> "notleader". */
static void result_name(int code, char *out, size_t n)
{
    const char *name = cairn_errname(code);
    size_t i;
    if (code == 0) {
        snprintf(out, n, "ok");
        return;
    }
    if (code < 0 && -code < NODE_RESULT_CODES && strncmp(name, "CAIRN_E", 7) == 0) {
        name += 7;
        for (i = 0; name[i] != '\0' && i + 1 < n; i++) {
            out[i] = (char)tolower((unsigned char)name[i]);
        }
        out[i] = '\0';
        return;
    }
    snprintf(out, n, "other");
}

/* The series of (op, result index) for node_metrics_request. */
static struct metrics_series *request_series(struct node_metrics *nm, uint8_t op, int result)
{
    static const char *const names[] = {"op", "result"};
    const char *values[2];
    char name[32];
    /* Index r stands for code -r; the last index for any other code. */
    int code = result == NODE_RESULT_CODES ? 1 : -result;
    result_name(code, name, sizeof(name));
    values[0] = op_names[op];
    values[1] = name;
    nm->request_series[op][result] = metrics_series_get(nm->requests, 2, names, values);
    return nm->request_series[op][result];
}

void node_metrics_request(struct node_metrics *nm, uint8_t op, int code, uint64_t receipt_ns)
{
    /* Codes are 0 or negative; anything else lands on "other". */
    int result = code <= 0 && -code < NODE_RESULT_CODES ? -code : NODE_RESULT_CODES;
    struct metrics_series *count;
    struct metrics_series *latency;
    uint64_t now;
    /* op comes from node_metrics_op(): a bad one is a bug. */
    assert(op < NODE_OP_COUNT);
    count = nm->request_series[op][result];
    if (count == NULL) {
        count = request_series(nm, op, result);
    }
    metrics_counter_add(count, 1);
    latency = nm->latency_series[op];
    if (latency == NULL) {
        static const char *const names[] = {"op"};
        latency = metrics_series_get(nm->latency, 1, names, &op_names[op]);
        nm->latency_series[op] = latency;
    }
    now = metrics_now_ns();
    metrics_observe(latency, now > receipt_ns ? now - receipt_ns : 0);
}

/* Resident set size from /proc/self/statm (pages), 0 when unreadable. */
static uint64_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0;
    unsigned long long resident = 0;
    long page = sysconf(_SC_PAGESIZE);
    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%llu %llu", &size, &resident) != 2) {
        resident = 0;
    }
    fclose(f);
    return (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);
}

int node_metrics_render(struct server *s, struct buf *out)
{
    struct node_metrics *nm = &s->metrics;
    const struct kv *kv = &s->fsm.kv;
    struct watch_hub_stats ws;
    const struct session *session;
    uint64_t pending = 0;

    metrics_gauge_set(nm->raft_term, (double)s->raft.current_term);
    metrics_gauge_set(nm->raft_commit, (double)s->raft.commit_index);
    metrics_gauge_set(nm->raft_applied, (double)raft_last_applied(&s->raft));
    metrics_gauge_set(nm->raft_last, (double)raft_last_index(&s->raft));
    metrics_gauge_set(nm->raft_is_leader, raft_state(&s->raft) == RAFT_LEADER ? 1 : 0);
    metrics_counter_set(nm->raft_leader_changes, s->leader_changes);
    metrics_counter_set(nm->commit_notices, leader_guard_notices(&s->guard));
    metrics_counter_set(nm->early_commits, leader_guard_splits(&s->guard));
    metrics_gauge_set(nm->writes_in_flight, (double)s->writes_in_flight);
    metrics_counter_set(nm->read_barriers, s->reads.barriers);
    metrics_counter_set(nm->linearizable_reads, s->reads.served);
    metrics_gauge_set(nm->reads_waiting, (double)s->reads.parked.n);
    metrics_counter_set(nm->read_waits_served, s->reads.waited);
    metrics_counter_set(nm->read_wait_timeouts, s->reads.wait_timeouts);

    metrics_counter_set(nm->snapshots_taken, s->fsm.snapshots_taken);
    metrics_counter_set(nm->snapshots_restored, s->fsm.snapshots_restored);

    metrics_gauge_set(nm->keys, (double)kv->live_keys);
    metrics_gauge_set(nm->bytes, (double)kv->value_bytes);
    metrics_gauge_set(nm->revision, (double)kv->rev);
    metrics_gauge_set(nm->compact_revision, (double)kv->compact_rev);
    metrics_gauge_set(nm->retention_policies, (double)kv->n_policies);

    watch_hub_stats(&s->hub, &ws);
    metrics_gauge_set(nm->watchers, (double)ws.watchers);
    metrics_gauge_set(nm->watchers_behind, (double)ws.behind);
    metrics_gauge_set(nm->watch_queue_events, (double)ws.queued_events);
    metrics_counter_set(nm->watch_events, s->hub.events_sent);
    metrics_counter_set(nm->watch_catchups, s->hub.catchups);
    metrics_counter_set(nm->watch_snapshots, s->hub.snapshots);

    for (session = s->sessions; session != NULL; session = session->next) {
        pending += session->out.len + session->writing.len;
    }
    metrics_gauge_set(nm->connections, (double)s->n_sessions);
    metrics_gauge_set(nm->output_bytes, (double)pending);
    metrics_gauge_set(nm->resident_bytes, (double)resident_bytes());
    dr_metrics_update(&s->dr);
    return metrics_render(&nm->reg, out);
}
