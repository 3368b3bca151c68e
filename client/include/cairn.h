/*
 * cairn.h: the public C API of Cairn's client library (libcairn).
 *
 * A cairn_client holds a list of endpoints, a connection to one of them and
 * the knowledge of which node leads. Every call is blocking and has a
 * timeout. On failure a call returns a negative CAIRN_E* code and the client
 * keeps a message (cairn_errmsg) that says what went wrong.
 *
 * Thread safety: a cairn_client may be shared by several threads; calls on
 * one client are serialized by an internal mutex, so one slow call delays the
 * others. For concurrency open one client per thread. Results are plain
 * memory owned by the caller once returned and may be used from any thread.
 *
 * Retries: the library retries reads (they change nothing) and writes that
 * certainly did not happen (the request never left, or the node answered
 * "not leader" before proposing it). A write whose fate is unknown (the
 * connection broke or the call timed out after the request was sent, or the
 * leader lost leadership while the write was in flight) returns
 * CAIRN_EUNKNOWN: the write may or may not have been committed. Read the key
 * (or use a compare-and-swap on mod_revision) to find out; never assume
 * either outcome. A node too stale for a read's max_staleness_ms
 * (CAIRN_ESTALE) sends the read to the next endpoint; CAIRN_ESTALE comes
 * back only once every endpoint refused. A read whose min_revision the node
 * did not apply in time (CAIRN_ETIMEOUT) is not retried: the wait used the
 * call's time.
 *
 * Ownership: a struct cairn_result returned through an out parameter belongs
 * to the caller and is released with cairn_result_free(); every pointer inside
 * it stays valid until then. Input buffers are only read during the call.
 */
#ifndef CAIRN_H
#define CAIRN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_VERSION_MAJOR 0
#define CAIRN_VERSION_MINOR 1

/* Default client endpoint of the local cluster started by
 * deploy/local/cluster.sh, used when no endpoints are given. */
#define CAIRN_DEFAULT_ENDPOINTS "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"

/* Error codes. 0 is success; every error is negative. The same table is used
 * on the wire, so the numbers never change. */
#define CAIRN_ERRORS(X)                                    \
    X(CAIRN_OK, 0, "ok")                                   \
    X(CAIRN_EINVAL, -1, "invalid argument")                \
    X(CAIRN_ENOMEM, -2, "out of memory")                   \
    X(CAIRN_EMALFORMED, -3, "malformed message")           \
    X(CAIRN_ETOOLARGE, -4, "limit exceeded")               \
    X(CAIRN_ENOTFOUND, -5, "key not found")                \
    X(CAIRN_ECOMPACTED, -6, "revision compacted")          \
    X(CAIRN_EFUTUREREV, -7, "revision is in the future")   \
    X(CAIRN_ENOTLEADER, -8, "not the leader")              \
    X(CAIRN_ENOLEADER, -9, "no leader")                    \
    X(CAIRN_ETIMEOUT, -10, "timed out")                    \
    X(CAIRN_EUNAVAILABLE, -11, "no endpoint reachable")    \
    X(CAIRN_EUNKNOWN, -12, "outcome unknown")              \
    X(CAIRN_EVERSION, -13, "unsupported protocol version") \
    X(CAIRN_ESHUTDOWN, -14, "node shutting down")          \
    X(CAIRN_EIO, -15, "I/O error")                         \
    X(CAIRN_ECOMPARE, -16, "compare failed")               \
    X(CAIRN_EBUSY, -17, "node overloaded")                 \
    X(CAIRN_EINTERNAL, -18, "internal error")              \
    X(CAIRN_ESTALE, -19, "node too stale")

enum {
#define CAIRN__ENUM(name, value, text) name = value,
    CAIRN_ERRORS(CAIRN__ENUM)
#undef CAIRN__ENUM
};

/* Static description of an error code ("unknown error" for unknown codes). */
const char *cairn_strerror(int code);

/* Symbolic name of an error code, e.g. "CAIRN_ENOTFOUND". */
const char *cairn_errname(int code);

/* One version of one key. For a deleted key (tombstone), deleted is true and
 * value is empty. time_ms is the leader's wall clock when the write was
 * proposed, in milliseconds since the Unix epoch. */
struct cairn_kv
{
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    uint64_t create_revision;
    uint64_t mod_revision;
    uint64_t version;
    int64_t time_ms;
    bool deleted;
};

/* The result of one operation. For a read: kvs holds the keys found, and more
 * is true when a limit cut the range short (continue after the last key).
 * For a put: revision is the new revision and kvs holds the previous value if
 * it was asked for. For a delete: deleted counts deleted keys and kvs holds the
 * previous values if asked for. */
struct cairn_op_result
{
    struct cairn_kv *kvs;
    size_t n_kvs;
    uint64_t deleted;
    bool more;
};

/* The result of a call. revision is the store revision the answer reflects:
 * for a write, the revision it created (or the current one if it changed
 * nothing); for a read, the revision the node answered at. */
struct cairn_result
{
    uint64_t revision;
    uint64_t compact_revision;
    bool succeeded; /* transactions: true when the compares held */
    struct cairn_op_result *ops;
    size_t n_ops;
    void *internal_; /* owned: backing memory */
};

void cairn_result_free(struct cairn_result *result);

/* A retention policy: how much history each key under prefix keeps. The
 * policy with the longest prefix of a key decides for it; the one for ""
 * always exists (by default 10 versions, no age limit). A past version (any
 * but the key's newest, which always stays) is discarded when it is not
 * among the key's newest `versions` versions (if versions > 0), or when it is
 * more than age_ms older than the write or sweep being applied (if
 * age_ms > 0), measured on the leader's clock that stamps each write. */
struct cairn_retention
{
    const char *prefix; /* prefix_len bytes (NUL-terminated in status results) */
    size_t prefix_len;
    uint64_t versions; /* 0: no limit on the count; at most UINT32_MAX */
    uint64_t age_ms;   /* 0: no limit on the age */
};

/* The most retention policies a cluster holds (the one for "" included), and
 * so the most a status reports. */
#define CAIRN_RETENTION_POLICIES_MAX 1024
/* The policy for "" until set otherwise (and after it is removed). */
#define CAIRN_RETENTION_VERSIONS_DEFAULT 10

/* Per-node status as reported by cairnd. */
struct cairn_member
{
    uint64_t id;
    const char *raft_address;
    const char *client_address;
    const char *role; /* "voter", "standby", "spare" */
};

struct cairn_status
{
    uint64_t id;                /* the answering node */
    const char *state;          /* "leader", "follower", "candidate", "starting", ... */
    uint64_t leader_id;         /* 0 when unknown */
    const char *leader_address; /* client address of the leader, "" when unknown */
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t last_index;
    uint64_t revision;
    uint64_t compact_revision;
    uint64_t keys;
    uint64_t bytes;
    uint64_t retain_versions; /* the "" policy's versions (0: no limit) */
    uint64_t snapshots;
    uint64_t read_barriers;      /* barriers proposed to confirm linearizable reads */
    uint64_t linearizable_reads; /* linearizable reads answered by this node */
    uint64_t watchers;           /* watches this node serves now */
    uint64_t watch_events;       /* events it has sent to watchers */
    uint64_t watch_catchups;     /* times a watcher fell behind and caught up from history */
    uint64_t watch_snapshots;    /* snapshots sent because history was gone */
    uint64_t state_hash;         /* hash of the whole key space: equal on replicas at
                                  * the same revision (chaos tests compare them) */
    const char *http_address;    /* the node's --http-addr, "" when it serves no HTTP */
    struct cairn_member *members;
    size_t n_members;
    /* Every retention policy in force at this node, sorted by prefix (so the
     * one for "" first); at most CAIRN_RETENTION_POLICIES_MAX. */
    struct cairn_retention *retention;
    size_t n_retention;
    /* The cluster's id, as in backups' object names (0 before the first
     * leader named it, or from a node too old to report it). Each new
     * cluster, restored ones too, gets a random id from its first leader. */
    uint64_t cluster_id;
    /* A node restored from a backup: the provisional id its restore gave it
     * (derived from the source cluster and the restore point, so the nodes
     * of one restore agree), which cluster_id keeps until the first leader
     * names the cluster; 0 for a node that was not restored. */
    uint64_t restored_as;
    void *internal_; /* owned: backing memory */
};

void cairn_status_free(struct cairn_status *status);

struct cairn_options
{
    int timeout_ms;         /* per call, default 5000 */
    int connect_timeout_ms; /* per connection attempt, default 1000 */
    int backoff_min_ms;     /* first reconnect delay, default 25 */
    int backoff_max_ms;     /* cap of the exponential backoff, default 1000 */
    /* Read your own writes on any node: the client remembers the highest
     * revision any answer of this client carried (writes and reads alike,
     * see cairn_seen_revision()) and sends it as min_revision with every
     * stale read (struct cairn_get_opts), unless the read asks for a higher
     * one. A stale read then never returns state older than what this
     * client already saw, whichever node answers it. */
    bool track_revision;
};

typedef struct cairn_client cairn_client;

/* Create a client for a comma-separated list of host:port endpoints (NULL
 * means CAIRN_DEFAULT_ENDPOINTS). Connections are made lazily, so this only
 * fails on bad arguments or memory; then it returns NULL and sets *err (if
 * not NULL) to the error code. opts may be NULL for defaults. */
cairn_client *cairn_client_new(const char *endpoints, const struct cairn_options *opts, int *err);
void cairn_client_free(cairn_client *c);

/* Code and message of the last failed call on this client (thread-local to the
 * call: read them right after the call returned, before another call). */
int cairn_errcode(const cairn_client *c);
const char *cairn_errmsg(const cairn_client *c);

/* Reads.
 *
 * A linearizable read (the default) is answered by the leader once it has
 * confirmed it still leads. A stale read is answered by whichever node the
 * client reaches (the leader if the client knows it, else the next
 * endpoint), from what that node has applied; result->revision says which
 * revision that was. Two bounds make stale reads safe to use on followers
 * and non-voting standbys (docs/operations.md):
 *
 *   - min_revision: the node answers only once it has applied this revision
 *     (every write's result carries its revision: pass it to read your own
 *     write). It waits up to its --read-wait-max-ms, and never longer than
 *     about 80% of what is left of this call's timeout_ms, then fails with
 *     CAIRN_ETIMEOUT ("node N is at revision X; revision Y not applied
 *     within Z ms"); too many reads waiting already: CAIRN_EBUSY. A read
 *     with min_revision is always stale: the node that receives it answers.
 *   - max_staleness_ms: the node refuses with CAIRN_ESTALE unless it is the
 *     leader, or a follower or standby that heard from the current leader at
 *     most this long ago with everything it knew committed applied. The
 *     library then tries the other endpoints, and returns CAIRN_ESTALE once
 *     each of them refused.
 *
 * A node too old to know either field would answer without honouring it: the
 * library checks that a read with min_revision (at the current revision)
 * answered at a revision at least that high, else tries another endpoint and
 * finally fails with CAIRN_EVERSION. It cannot check max_staleness_ms. */
struct cairn_get_opts
{
    bool stale;        /* answer from the contacted node without the leader */
    bool prefix;       /* key is a prefix: return every key under it */
    uint64_t revision; /* read at this past revision (0: current) */
    uint64_t limit;    /* maximum keys returned (0: server maximum) */
    const char *after; /* range continuation: start strictly after this key */
    size_t after_len;
    uint64_t min_revision;     /* answer once this revision is applied (0: none); implies stale */
    uint64_t max_staleness_ms; /* stale reads: refuse when staler than this (0: no bound) */
};

/* The highest revision any answer of this client carried so far (0 before
 * the first). Kept whether or not track_revision is set. */
uint64_t cairn_seen_revision(cairn_client *c);

/* Get a key (or a prefix). A missing single key returns CAIRN_ENOTFOUND. */
int cairn_get(cairn_client *c, const void *key, size_t key_len, const struct cairn_get_opts *opts,
              struct cairn_result **out);

struct cairn_put_opts
{
    bool prev_kv; /* return the previous value in the result */
};

int cairn_put(cairn_client *c, const void *key, size_t key_len, const void *value, size_t value_len,
              const struct cairn_put_opts *opts, struct cairn_result **out);

struct cairn_del_opts
{
    bool prefix;
    bool prev_kv;
};

int cairn_del(cairn_client *c, const void *key, size_t key_len, const struct cairn_del_opts *opts,
              struct cairn_result **out);

/* Transactions: if every compare holds, run the "then" operations, otherwise
 * the "else" ones; either way, one revision. */
enum cairn_cmp_target {
    CAIRN_CMP_VALUE = 0,
    CAIRN_CMP_VERSION = 1,
    CAIRN_CMP_MOD = 2,    /* mod_revision */
    CAIRN_CMP_CREATE = 3, /* create_revision */
};

enum cairn_cmp_op {
    CAIRN_CMP_EQUAL = 0,
    CAIRN_CMP_NOT_EQUAL = 1,
    CAIRN_CMP_LESS = 2,
    CAIRN_CMP_GREATER = 3,
};

/* A missing key compares as version 0, mod/create revision 0, empty value. */
struct cairn_compare
{
    const void *key;
    size_t key_len;
    enum cairn_cmp_target target;
    enum cairn_cmp_op op;
    const void *value; /* CAIRN_CMP_VALUE */
    size_t value_len;
    uint64_t number; /* the other targets */
};

enum cairn_op_type {
    CAIRN_OP_GET = 1,
    CAIRN_OP_PUT = 2,
    CAIRN_OP_DEL = 3,
};

struct cairn_op
{
    enum cairn_op_type type;
    const void *key;
    size_t key_len;
    const void *value; /* CAIRN_OP_PUT */
    size_t value_len;
    bool prefix;  /* CAIRN_OP_GET, CAIRN_OP_DEL */
    bool prev_kv; /* CAIRN_OP_PUT, CAIRN_OP_DEL */
    uint64_t limit;
};

struct cairn_txn
{
    const struct cairn_compare *compares;
    size_t n_compares;
    const struct cairn_op *then_ops;
    size_t n_then;
    const struct cairn_op *else_ops;
    size_t n_else;
};

int cairn_txn(cairn_client *c, const struct cairn_txn *txn, struct cairn_result **out);

/* Compare-and-swap: put value only if the key's mod_revision equals
 * expected_mod (0: only if the key does not exist). Returns CAIRN_ECOMPARE
 * (with *out filled) when the compare failed. */
int cairn_cas(cairn_client *c, const void *key, size_t key_len, uint64_t expected_mod,
              const void *value, size_t value_len, struct cairn_result **out);

/* Retained versions of one key, newest first (at most limit, 0: all). */
int cairn_history(cairn_client *c, const void *key, size_t key_len, uint64_t limit,
                  struct cairn_result **out);

/* Discard history older than revision (the newest version of each key at or
 * before it stays readable). */
int cairn_compact(cairn_client *c, uint64_t revision, struct cairn_result **out);

/* Set the retention policy for policy->prefix (replacing any policy for the
 * same prefix) and trim the history of every key under it at once. With
 * versions and age_ms both 0 the policy for that prefix is removed (keys
 * under it fall to the next shorter prefix's policy; CAIRN_ENOTFOUND when
 * there was none), or for "" the default (10 versions, no age) is restored.
 * Fails with CAIRN_ETOOLARGE when the cluster already holds
 * CAIRN_RETENTION_POLICIES_MAX policies or the prefix is longer than the
 * cluster's key limit, CAIRN_EINVAL for more than UINT32_MAX versions. The
 * policies in force are listed by cairn_status(). */
int cairn_set_retention(cairn_client *c, const struct cairn_retention *policy);

/* Status of the node behind `endpoint` (NULL: whichever node the client is
 * connected to). */
int cairn_status(cairn_client *c, const char *endpoint, struct cairn_status **out);

/* Metrics of the node behind `endpoint` (NULL: whichever node the client is
 * connected to), in the Prometheus text exposition format 0.0.4: what that
 * node's HTTP /metrics serves, without the HTTP server's own series. Any
 * node answers, leader or not, and while it shuts down. On success *text is
 * a NUL-terminated string from malloc() that the caller releases with
 * free(), and *len (if len is not NULL) its length without the NUL. On
 * failure *text is NULL and a CAIRN_E* code is returned; a node too old to
 * know the request answers CAIRN_EMALFORMED. */
int cairn_metrics_text(cairn_client *c, const char *endpoint, char **text, size_t *len);

/* Disaster recovery: the cluster's leader takes snapshots to object storage
 * (--backup-url) and archives the Raft log behind them. This asks it, by
 * verb:
 *
 *   "status"  what is stored, the window it can restore, how far the
 *             archive has come, the last snapshot and verification;
 *   "save"    take a snapshot now and upload it;
 *   "verify"  check now that the newest snapshot and the archived log after
 *             it restore.
 *
 * The answer is a JSON document (its fields are listed in docs/http.md,
 * "Backups"): "status" the whole state, "save" {"snapshot": {...}} with the
 * snapshot just stored, "verify" the verification's result (its "ok" and
 * "error" members say whether it passed).
 * On success *json is a NUL-terminated string from malloc() that the caller
 * releases with free(), and *len (if len is not NULL) its length; on
 * failure *json is NULL and the code says why: CAIRN_EINVAL for a verb that
 * is empty, longer than 16 bytes or unknown to the node, or for "save" and
 * "verify" when the cluster has no backup location (--backup-url; "status"
 * answers then, with "enabled" false); CAIRN_EIO with the object store's
 * error; CAIRN_EUNKNOWN when the answer to "save" was lost (a snapshot may
 * or may not have been taken: ask "status"). CAIRN_EBUSY, should the node
 * refuse for load, is returned at once rather than retried.
 *
 * Sent to the leader, following redirects like a write (never answered
 * stale). Reaching the leader takes at most the client's timeout_ms, as for
 * any call; once the request is sent its answer is awaited for
 * max(timeout_ms, CAIRN_BACKUP_TIMEOUT_MS), long enough for a snapshot's
 * upload or a verification. The client's mutex is held meanwhile: give
 * backups a client of their own if other calls must not wait. */
#define CAIRN_BACKUP_TIMEOUT_MS 120000
int cairn_backup(cairn_client *c, const char *verb, char **json, size_t *len);

/* Download a snapshot of the whole store (keys and retained history) from
 * the leader into fd, as `etcdctl snapshot save` does; the cluster needs no
 * backup location for this. The leader captures its state when the call
 * arrives, so the snapshot holds every write acknowledged before; it writes
 * the snapshot as a backup artifact (docs/disaster-recovery.md, "Formats")
 * and the client reads it in pieces of 1 MiB. fd gets exactly the
 * artifact's bytes, from its current offset; check them before trusting
 * them (cairnctl's `snapshot save FILE` does, and `snapshot restore --from
 * FILE` restores such a file). On success *json is the node's answer,
 * {"export": ID, "bytes": N, "snapshot": MANIFEST}, from malloc(); on
 * failure *json is NULL and the code says why: CAIRN_EBUSY when the leader
 * already serves four downloads, the most at once; CAIRN_EIO when fd cannot be
 * written. A leader lost before the reading begins is replaced by the next
 * one within the client's timeout_ms. If leadership moves once the reading
 * has begun and fd is seekable (a file), fd is truncated back to its offset
 * at the call and the download taken again from the new leader, up to 3
 * times in all; otherwise (a pipe, a socket, or the third time) the call
 * fails with CAIRN_ENOTFOUND, and the caller may start again. The client's
 * mutex is held for the whole download. */
int cairn_snapshot_download(cairn_client *c, int fd, char **json, size_t *len);
/* The same, with the bytes handed to data as they arrive (in pieces of up
 * to 1 MiB, in order) instead of written to a file descriptor: begin, when
 * not NULL, is called first with the leader's answer and the snapshot's
 * size in bytes. A non-zero return from either stops the download
 * (CAIRN_EIO). Bytes handed on cannot be taken back, so this form is not
 * started again when leadership moves during the reading: it fails with
 * CAIRN_ENOTFOUND. Both run with the client's mutex held: they must not call
 * this client. */
typedef int (*cairn_snapshot_begin_fn)(void *arg, const char *json, size_t len, uint64_t bytes);
typedef int (*cairn_snapshot_data_fn)(void *arg, const char *data, size_t len);
int cairn_snapshot_stream(cairn_client *c, cairn_snapshot_begin_fn begin,
                          cairn_snapshot_data_fn data, void *arg, char **json, size_t *len);

/* Membership (docs/cairnctl.md, "member"). Every call answers a JSON
 * document: on success *json is a NUL-terminated string from malloc() that
 * the caller releases with free(), and *len (if len is not NULL) its
 * length; on failure *json is NULL and the code says why.
 *
 * cairn_members: the configuration as the node behind `endpoint` (NULL:
 * whichever node the client is connected to) sees it: "id", "state",
 * "leader_id", "leader_address", "configuration_index", "committed",
 * "joining" (the node waits to be added), "last_index", "commit_index",
 * "change" (the change under way, or null) and "members", each with "id",
 * "role" ("voter", "standby", "spare"), "raft_address", "client_address",
 * "leader", and from the leader only (null elsewhere) "match_index",
 * "caught_up" and "reachable". Any node answers.
 *
 * cairn_member_change: verb "add" (id and address RAFT_HOST:PORT/
 * CLIENT_HOST:PORT of a node started with --join 1, which the leader probes
 * first; it joins as a standby and catches up), "promote" (a caught-up
 * standby becomes a voter), "demote" (a voter becomes a standby) or
 * "remove" (address NULL for all but "add"). Sent to the leader, following
 * redirects; answered once the change is committed with {"verb", "id",
 * "role", "configuration_index"}. Errors: CAIRN_EINVAL (a bad id or address,
 * a duplicate id or address, a node that is not waiting to join, the last
 * voter), CAIRN_ENOTFOUND (no such member), CAIRN_EBUSY (another change is
 * in progress, or the node to promote has not caught up: returned at once,
 * not retried), CAIRN_EUNAVAILABLE (the new node cannot be reached, or
 * never caught up), CAIRN_EUNKNOWN (the answer was lost: see the list).
 * The answer is awaited for up to max(timeout_ms, CAIRN_MEMBER_TIMEOUT_MS).
 *
 * cairn_leader_transfer: the leader hands leadership to voter to_id (0: the
 * leader picks one) and answers, once another node leads, with
 * {"leader_id", "leader_address", "previous_leader_id"}; CAIRN_EUNAVAILABLE
 * when it did not happen within an election timeout. */
#define CAIRN_MEMBER_TIMEOUT_MS 60000
int cairn_members(cairn_client *c, const char *endpoint, char **json, size_t *len);
int cairn_member_change(cairn_client *c, const char *verb, uint64_t id, const char *address,
                        char **json, size_t *len);
int cairn_leader_transfer(cairn_client *c, uint64_t to_id, char **json, size_t *len);

/*
 * Watches.
 *
 * A watch delivers every change to a key (or to every key under a prefix)
 * from a start revision on: in revision order, each revision exactly once,
 * the events of one transaction together in one update. The library keeps
 * each watch alive across reconnects, node crashes and leader changes by
 * resuming from the revision after the last one it delivered; the caller does
 * nothing. Any node can serve a watch (followers from their applied state).
 *
 * When the history a watch needs was compacted or trimmed by retention (a
 * resume after a long outage, a watcher that fell too far behind), the node
 * sends the watched range's complete state at the current revision instead:
 * the update's kind is CAIRN_WATCH_SNAPSHOT and the caller should replace its
 * view of the range with it. Events then continue from that revision.
 *
 * Threading: all watches of one cairn_client share one connection and one
 * background thread, started with the first watch. Callbacks run on that
 * thread, one at a time, in order; a slow callback delays every watch of the
 * client (and the server then moves them to catch-up; nothing is lost). A
 * callback may call cairn_watch_cancel() on its own or another watch,
 * cairn_watch_request_progress(), cairn_watch_revision(), and the blocking
 * calls of cairn.h on the same client (they use another connection). It must
 * not call cairn_watch() (it would wait for the thread that runs the
 * callback: it fails with CAIRN_EINVAL) nor cairn_client_free().
 *
 * A watch without a callback queues its updates; when its queue is full the
 * thread stops reading the shared connection, so every watch of that client
 * waits until the queue is drained with cairn_watch_next() (the server holds
 * or re-reads the backlog from history; nothing is lost). Consume queues
 * promptly, or give watches consumed at different paces their own clients.
 */
enum cairn_watch_kind {
    CAIRN_WATCH_EVENTS = 1,   /* events of one or more whole revisions */
    CAIRN_WATCH_SNAPSHOT = 2, /* the range's whole state at revision: replace yours */
    CAIRN_WATCH_PROGRESS = 3, /* nothing changed up to revision */
    CAIRN_WATCH_CANCELED = 4, /* the watch ended (error says why); no more updates */
};

enum cairn_event_type {
    CAIRN_EVENT_PUT = 1,
    CAIRN_EVENT_DELETE = 2,
};

/* One change. For a delete, kv.deleted is true, kv.value is empty and
 * kv.mod_revision is the deletion's revision. prev_kv is the key's previous
 * live version when the watch asked for it and it is still retained, else
 * NULL. */
struct cairn_event
{
    enum cairn_event_type type;
    struct cairn_kv kv;
    const struct cairn_kv *prev_kv;
};

/* What a callback receives. revision means "every change up to revision has
 * been delivered": for EVENTS the revision of the last event, for SNAPSHOT
 * the revision of the state, for PROGRESS the serving node's revision. It
 * never decreases; persist it to resume later (start_revision = revision + 1).
 * Every pointer is valid only during the callback (or until
 * cairn_watch_update_free() for updates taken with cairn_watch_next()). */
struct cairn_watch_update
{
    enum cairn_watch_kind kind;
    uint64_t revision;
    uint64_t compact_revision;
    const struct cairn_event *events; /* EVENTS */
    size_t n_events;
    const struct cairn_kv *kvs; /* SNAPSHOT: every live key of the range, in key order */
    size_t n_kvs;
    int error;           /* CANCELED: a CAIRN_E* code */
    const char *message; /* CANCELED: what went wrong, in words ("" otherwise) */
};

typedef struct cairn_watcher cairn_watcher;

/* Called on the client's watch thread; see "Threading" above. */
typedef void (*cairn_watch_cb)(cairn_watcher *w, const struct cairn_watch_update *u, void *arg);

/* Bounds on what the library holds for one watch (0 in the options below
 * selects them). A queue may exceed its bound by one update (the one that
 * filled it); a snapshot larger than its bound ends the watch with
 * CAIRN_ETOOLARGE rather than take unbounded memory. */
#define CAIRN_WATCH_QUEUE_BYTES_DEFAULT (16u * 1024u * 1024u)
#define CAIRN_WATCH_SNAPSHOT_BYTES_DEFAULT (256u * 1024u * 1024u)

struct cairn_watch_opts
{
    bool prefix;                 /* watch every key under key */
    uint64_t start_revision;     /* first revision to deliver (0: changes after now) */
    bool prev_kv;                /* events carry the previous value */
    bool prefer_followers;       /* serve from a follower when one is reachable */
    uint32_t progress_ms;        /* progress interval (0: the server's default) */
    uint64_t queue_bytes_max;    /* without a callback: queued bytes before reading stops */
    uint64_t snapshot_bytes_max; /* largest snapshot assembled */
};

/* Start watching. With cb, updates are delivered to cb on the watch thread;
 * with cb NULL, they queue (bounded: see "Threading") until taken with
 * cairn_watch_next(). Returns once the serving node acknowledged the watch
 * (or with an error: CAIRN_EINVAL for bad arguments or a call from a watch
 * callback, CAIRN_EUNAVAILABLE when no node could be reached within the
 * client's timeout_ms, CAIRN_ETIMEOUT when one was but did not acknowledge
 * in time, or the node's refusal, e.g. CAIRN_ETOOLARGE for a key over its
 * limit; cairn_errmsg(c) says more). opts may be NULL for defaults; key is
 * copied. When prefer_followers is set on any watch of a client, that
 * client's watch connection goes to a node that is not the leader if one is
 * reachable. *out is released by cairn_watch_cancel(). */
int cairn_watch(cairn_client *c, const void *key, size_t key_len,
                const struct cairn_watch_opts *opts, cairn_watch_cb cb, void *arg,
                cairn_watcher **out);

/* Take the next queued update (only for watches started without a callback).
 * Waits at most timeout_ms (-1: forever). Returns 0, CAIRN_ETIMEOUT, or
 * CAIRN_EINVAL when the watch has a callback or its CANCELED update was
 * already taken (the watch is over). Free *out with
 * cairn_watch_update_free(). Do not call it concurrently with
 * cairn_watch_cancel() on the same watch. */
int cairn_watch_next(cairn_watcher *w, int timeout_ms, struct cairn_watch_update **out);
void cairn_watch_update_free(struct cairn_watch_update *u);

/* Ask the serving node for a progress update now (sent as soon as the watch
 * is established on a connection; the answer arrives as a PROGRESS update
 * unless the node is behind what was already delivered). Returns 0, or
 * CAIRN_EINVAL when the watch has ended. */
int cairn_watch_request_progress(cairn_watcher *w);

/* The revision of the last update handed to the caller (before the first
 * one: the revision the watch started after). The watch resumes after it. */
uint64_t cairn_watch_revision(const cairn_watcher *w);

/* The endpoint ("host:port", as given to cairn_client_new) of the node
 * serving w right now, or NULL while w is between nodes (or has ended). The
 * string belongs to the client and stays valid until cairn_client_free(). */
const char *cairn_watch_endpoint(const cairn_watcher *w);

/* Stop the watch and free w. When it returns, no callback for w is running
 * or will run (except that, called from w's own callback, that callback
 * finishes; w must not be used after it returns). Updates still queued for
 * w are freed; those already taken with cairn_watch_next() stay valid until
 * freed. Watches left open are freed by cairn_client_free(). */
void cairn_watch_cancel(cairn_watcher *w);

#ifdef __cplusplus
}
#endif

#endif /* CAIRN_H */
