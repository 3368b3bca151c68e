/*
 * config: cairnd's settings. Each setting is a flag (--name value or
 * --name=value) and may also be given in a config file (--config FILE, lines
 * "name = value", # comments); flags override the file. The table below is
 * the single source of the names, defaults and help text (docs/cairnd.md
 * lists the same).
 */
#ifndef CAIRN_CONFIG_H
#define CAIRN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_STR_MAX 4096

/* X(name, kind, default, help): kind is U64 or STR. */
#define CONFIG_SETTINGS(X)                                                                         \
    X(id, U64, "0", "this node's id, a positive integer unique in the cluster (required)")         \
    X(data_dir, STR, "",                                                                           \
      "directory for the Raft log, snapshots and metadata (required; "                             \
      "created if missing)")                                                                       \
    X(raft_addr, STR, "127.0.0.1:7101", "host:port peers use for Raft traffic")                    \
    X(client_addr, STR, "127.0.0.1:7001", "host:port clients (cairnctl, libcairn) connect to")     \
    X(initial_cluster, STR, "",                                                                    \
      "members of a new cluster, ID=RAFT_ADDR/CLIENT_ADDR,... (default: this node alone); "        \
      "ignored when the data directory already holds a cluster")                                   \
    X(join, U64, "0",                                                                              \
      "1: join an existing cluster instead of starting one (--initial-cluster is ignored): the "   \
      "node waits, serving status, until the leader adds it (cairnctl member add)")                \
    X(election_timeout_ms, U64, "1000", "Raft election timeout")                                   \
    X(heartbeat_timeout_ms, U64, "100", "Raft heartbeat interval")                                 \
    X(snapshot_threshold, U64, "32768", "take a Raft snapshot every this many applied entries")    \
    X(snapshot_log_percent, U64, "100",                                                            \
      "and wait until the log since the last snapshot holds this percentage of the state's size, " \
      "so that a large state is not rewritten every --snapshot-threshold entries (0: entries "     \
      "only)")                                                                                     \
    X(snapshot_trailing, U64, "8192", "log entries kept after a snapshot for slow followers")      \
    X(install_snapshot_timeout_ms, U64, "10000",                                                   \
      "how long a leader waits for a follower to install a snapshot before sending it again")      \
    X(retention_sweep_ms, U64, "60000",                                                            \
      "how often the leader applies retention age limits to keys nobody writes (0: never)")        \
    X(segment_size_bytes, U64, "8388608", "size of each preallocated Raft log segment")            \
    X(max_key_bytes, U64, "4096", "largest key accepted")                                          \
    X(max_value_bytes, U64, "1048576", "largest value accepted")                                   \
    X(max_txn_ops, U64, "128", "most compares, and most operations per branch, in a transaction")  \
    X(max_request_bytes, U64, "2097152", "largest request frame accepted")                         \
    X(session_output_max_bytes, U64, "67108864",                                                   \
      "pending output per client connection beyond which cairnd stops reading from it")            \
    X(watch_queue_events_max, U64, "1024",                                                         \
      "events one watcher may have in its connection's unsent output before it falls back to "     \
      "catching up from history")                                                                  \
    X(watch_output_max_bytes, U64, "4194304",                                                      \
      "unsent output of a connection beyond which its watchers stop taking live events and "       \
      "catch up from history once it drains")                                                      \
    X(watch_max_per_connection, U64, "100000", "most watches on one client connection")            \
    X(watch_progress_ms, U64, "1000",                                                              \
      "how often an idle watcher is told the revision the node has reached")                       \
    X(shutdown_transfer_timeout_ms, U64, "3000",                                                   \
      "on SIGTERM, how long a leader waits to hand leadership over before stopping")               \
    X(http_addr, STR, "127.0.0.1:8001",                                                            \
      "host:port of the HTTP API, console, /health, /ready and /metrics (loopback by default: "    \
      "there is no authentication; empty: no HTTP)")                                               \
    X(http_threads, U64, "16", "CivetWeb worker threads: HTTP requests served at once")            \
    X(http_watch_streams_max, U64, "8",                                                            \
      "most open HTTP watch streams (SSE); each holds a worker thread, so fewer than "             \
      "--http-threads")                                                                            \
    X(ready_lag_max, U64, "1000",                                                                  \
      "/ready fails while this node's applied index is more than this many entries behind the "    \
      "commit index it knows")                                                                     \
    X(read_wait_max_ms, U64, "5000",                                                               \
      "longest a read with a min_revision waits for this node to apply it before failing with "    \
      "CAIRN_ETIMEOUT (a request may ask for less; 0: never wait)")                                \
    X(read_wait_queue_max, U64, "10000",                                                           \
      "most reads waiting for a min_revision at once; more are refused with CAIRN_EBUSY")          \
    X(backup_url, STR, "",                                                                         \
      "object store for disaster recovery: file:///DIR or s3://BUCKET/PREFIX (empty: no backups)") \
    X(backup_endpoint, STR, "",                                                                    \
      "S3 endpoint URL, e.g. http://127.0.0.1:9000 for MinIO (empty: AWS for the region)")         \
    X(backup_region, STR, "", "S3 region (empty: $AWS_REGION, else us-east-1)")                    \
    X(backup_addressing, STR, "auto",                                                              \
      "S3 addressing: path, virtual-host, or auto (path when --backup-endpoint is set)")           \
    X(backup_credentials_file, STR, "",                                                            \
      "AWS credentials file (empty: the AWS_* environment variables, else ~/.aws/credentials)")    \
    X(backup_sse, STR, "",                                                                         \
      "S3 server-side encryption of every object Cairn writes: AES256 (keys managed by S3) or "    \
      "aws:kms (AWS KMS) (empty: the bucket's default)")                                           \
    X(backup_sse_kms_key_id, STR, "",                                                              \
      "with --backup-sse aws:kms: the KMS key, as an ID, ARN or alias/NAME (empty: the "           \
      "account's default key for S3)")                                                             \
    X(backup_part_size, U64, "8388608",                                                            \
      "part size of S3 multipart uploads (at least 5 MiB); one part is held in memory at a time")  \
    X(backup_multipart_threshold, U64, "268435456",                                                \
      "S3 objects larger than this go up in a multipart upload, smaller ones in one PUT streamed " \
      "from disk (at least 5 MiB)")                                                                \
    X(backup_snapshot_rate, U64, "50331648",                                                       \
      "bytes/s a snapshot is uploaded at most (0: no limit), so that its upload takes the "        \
      "store's CPU and the node's a little at a time; the log archive is never limited")           \
    X(backup_snapshot_interval_ms, U64, "3600000",                                                 \
      "how often the leader uploads a snapshot when the store changed (0: only on demand)")        \
    X(backup_ship_interval_ms, U64, "500",                                                         \
      "how often the leader ships newly committed entries to the log archive (the recovery "       \
      "point lags by about this plus one upload)")                                                 \
    X(backup_compact_ms, U64, "60000",                                                             \
      "the log archive's segments are merged per window of this length once it has passed, and "   \
      "again per 12 windows, so that the archive holds and a restore fetches few objects (0: "     \
      "never)")                                                                                    \
    X(backup_backlog_max, U64, "268435456",                                                        \
      "bytes of applied entries each node keeps on disk for shipping; beyond, the oldest go "      \
      "and the archive restarts from a snapshot")                                                  \
    X(backup_retention, STR, "48h:all,30d:1d,365d:30d",                                            \
      "retention tiers WINDOW:all|EVERY: keep every snapshot (and the log, for point-in-time "     \
      "restore) for the first window, then one per EVERY; the newest snapshot always stays")       \
    X(backup_verify_interval_ms, U64, "3600000",                                                   \
      "how often the leader restores the newest snapshot plus archive in scratch space and "       \
      "checks its state hash (0: only on demand)")                                                 \
    X(backup_lag_alert_ms, U64, "10000",                                                           \
      "cairn_backup_behind turns 1 when the recovery point lags more than this")                   \
    X(restore_from, STR, "",                                                                       \
      "when the data directory is new, restore it from this object store (a backup URL), or "      \
      "from a file of cairnctl snapshot save FILE, before starting")                               \
    X(restore_revision, U64, "0", "with --restore-from: restore to this revision (0: latest)")     \
    X(restore_cluster, STR, "",                                                                    \
      "with --restore-from: the cluster id to restore when the store holds several (default: "     \
      "the one with the newest snapshot)")                                                         \
    X(restore_time, STR, "",                                                                       \
      "with --restore-from: restore to this time, RFC 3339 or Unix milliseconds")                  \
    X(recover_members, STR, "",                                                                    \
      "after a majority is lost for good: replace the cluster's configuration with these "         \
      "members, ID=RAFT_ADDR/CLIENT_ADDR,... (usually this node alone), on the survivor with "     \
      "the newest log; applied once (docs/operations.md)")                                         \
    X(log_level, STR, "info", "trace, info, warn or error")

struct config
{
#define CONFIG__FIELD_U64 uint64_t
#define CONFIG__FIELD_STR char *
#define CONFIG__FIELD(name, kind, def, help) CONFIG__FIELD_##kind name;
    CONFIG_SETTINGS(CONFIG__FIELD)
#undef CONFIG__FIELD
    bool help;
    bool version;
};

/* Parse argv (and the config file it names). Returns 0, or -1 after writing a
 * message that names the bad flag or line into errmsg. */
int config_parse(struct config *c, int argc, char **argv, char *errmsg, size_t errmsg_len);
void config_free(struct config *c);
void config_print_help(const char *prog);

#endif /* CAIRN_CONFIG_H */
