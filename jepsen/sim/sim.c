/*
 * sim: a deterministic simulation of a Cairn cluster on raft_fixture. The
 * header states the contract; jepsen/sim/README.md the model and its limits.
 *
 * One run, in order:
 *
 *   setup      N servers (3 or 5), each: raft on the fixture's in-memory io,
 *              an io shim (disk faults, see shim_append), leader_guard, and
 *              Cairn's fsm wrapped to record what it applies (safety check)
 *   ops        clients issue register operations while the nemesis injects
 *              and heals faults; cairnd's request handling is reproduced:
 *              writes through raft_apply (src/server.c propose/apply_cb),
 *              linearizable reads batched behind barriers (src/reads.c),
 *              the commit notices at the end of each loop turn
 *              (src/server.c flush_cb) and the
 *              ticker's fail-stop after a failed log write
 *   heal       every fault is undone and paused nodes resume
 *   liveness   every request pending in raft completes, a fresh write
 *              commits and a read of every key succeeds, each within
 *              SIM_LIVENESS_BOUND_MS of simulated time
 *   converge   every running replica reaches the same applied index, then
 *              their key spaces must have the same revision and kv_hash
 *   check      the history (Jepsen EDN, built in memory) goes through
 *              check_register of jepsen/local/checker
 *
 * Everything random comes from one xoshiro256** stream seeded by the run's
 * seed, and the fixture itself is deterministic; nothing reads a clock or
 * iterates over pointers, so a seed replays byte for byte.
 *
 * The fixture's callbacks carry no user pointer, so one run at a time owns
 * the process (sim_current).
 */
#include "sim.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <raft.h>
#include <raft/fixture.h>

#include "check.h"
#include "fsm.h"
#include "history.h"
#include "kv.h"
#include "leader_guard.h"
#include "prng.h"
#include "proto.h"

/* Timing, in simulated milliseconds. cairnd's defaults are an election
 * timeout of 1000 ms and heartbeats every 100 ms (src/config.h), which are
 * also the fixture's. */
#define SIM_ELECTION_TIMEOUT_MS 1000
#define SIM_HEARTBEAT_MS 100
#define SIM_TICKER_MS 100      /* cairnd's ticker_cb period (TICK_MS) */
#define SIM_NET_LATENCY_MS 15  /* the fixture's default */
#define SIM_DISK_LATENCY_MS 10 /* the fixture's default */
#define SIM_OP_TIMEOUT_MS 1500 /* a client gives up on an operation */
#define SIM_RETRY_MIN_MS 10    /* client back-off after a redirect */
#define SIM_RETRY_MAX_MS 50
#define SIM_THINK_MAX_MS 30        /* client pause between operations */
#define SIM_OPS_PHASE_MAX_MS 60000 /* the ops phase ends here whatever happens */
/* cairnd's --install-snapshot-timeout-ms default: a leader whose
 * InstallSnapshot was lost waits this long before it sends the snapshot
 * again (raft 0.15's own 30 s made a lost snapshot outlast the liveness
 * bound and stall a cluster that needed that follower for a majority). */
#define SIM_INSTALL_SNAPSHOT_TIMEOUT_MS 10000
/* After the final reads every replica catches up: a follower that lost an
 * InstallSnapshot may wait out the timeout above first. */
#define SIM_CONVERGE_BOUND_MS (SIM_INSTALL_SNAPSHOT_TIMEOUT_MS + 5000)
#define SIM_FAULTS_MAX 4                 /* faults active at once */
#define SIM_VALUE_MAX 10                 /* register values are 0..SIM_VALUE_MAX-1 */
#define SIM_TIME_BASE_MS 1700000000000LL /* the wall clock at simulated time 0 */
#define SIM_FINAL_KEY 1000000            /* the key of the liveness write */
#define SIM_KEYS_MAX 256                 /* distinct keys in one run */
#define SIM_INFOS_PER_KEY_MAX 8          /* :info operations on one key */

enum op_kind { OP_READ, OP_WRITE, OP_CAS };

struct sim_op
{
    enum op_kind kind;
    int64_t key;
    int value; /* write: the value; cas: the new value */
    int from;  /* cas: the expected value */
    int slot;  /* key slot, -1 for the final operations */
};

enum client_state {
    CLIENT_IDLE,    /* no operation; the next starts at next_ms */
    CLIENT_WAITING, /* a request is at a node; its answer or the deadline ends it */
    CLIENT_BACKOFF, /* redirected; the next attempt is at next_ms */
};

struct sim_client
{
    unsigned index;
    int64_t process;
    int64_t process_step; /* added to process after an :info */
    unsigned target;      /* the node believed to lead */
    enum client_state state;
    struct sim_op op;
    uint64_t op_seq; /* identifies the operation in flight, for late answers */
    int64_t next_ms;
    int64_t deadline_ms;
    bool final; /* the liveness client: never gives up before the bound */
};

struct sim_node;

/* A write proposed through raft_apply (src/server.c struct write_req). */
struct sim_write
{
    struct raft_apply req; /* req.data points back here */
    struct sim_node *node;
    unsigned client;
    uint64_t op_seq;
};

/* A linearizable read waiting for a barrier (src/reads.h struct read_req). */
struct sim_read
{
    struct sim_read *next;
    unsigned client;
    uint64_t op_seq;
    char *payload; /* owned: the request as received */
    size_t len;
};

/* An append in flight through the shim (see shim_append). */
struct shim_append
{
    struct shim_append *next;
    struct raft_io_append *req; /* borrowed: raft's */
    raft_io_append_cb cb;       /* the guard's (or raft's) callback */
    unsigned n;
    bool fail;
};

struct sim;

struct sim_node
{
    struct sim *sim;
    unsigned i;
    struct fsm fsm;       /* Cairn's state machine and key space */
    struct raft_fsm wrap; /* what raft calls: records, then calls fsm */
    struct leader_guard guard;
    struct raft_io *io; /* borrowed: the fixture's io of this server */
    int (*io_append)(struct raft_io *io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n, raft_io_append_cb cb);
    int (*io_truncate)(struct raft_io *io, raft_index index);
    int (*io_send)(struct raft_io *io, struct raft_io_send *req, const struct raft_message *message,
                   raft_io_send_cb cb);
    unsigned net_latency_ms;     /* what the nemesis wants now */
    unsigned disk_latency_ms;    /* what the nemesis wants now */
    raft_time disk_done;         /* completion time of the last write submitted */
    raft_time net_done;          /* delivery time of the last message sent */
    struct shim_append *appends; /* owned */
    size_t persisted;            /* entries in the fixture's in-memory disk */
    bool disk_fault_armed;       /* the next append completes with an error */
    bool doomed;                 /* a disk fault was armed: the node will stop */
    bool paused;                 /* fixture kill: a pause, see README */
    bool stopped;                /* fail-stopped after a failed write; for good */
    int last_state;
    unsigned pending; /* raft requests of clients not yet called back */
    /* The linearizable read batcher, as in src/reads.c. */
    struct sim_read *waiting;
    struct sim_read **waiting_tail;
    struct sim_read *batch;
    struct raft_barrier barrier;
    bool barrier_in_flight;
    unsigned writes_in_flight;
};

enum fault_kind {
    FAULT_PARTITION,
    FAULT_ONEWAY,
    FAULT_PAUSE,
    FAULT_DISK,
    FAULT_CANDIDATE,
    FAULT_LATENCY,
    FAULT_KINDS,
};

struct fault
{
    bool active;
    enum fault_kind kind;
    int64_t heal_ms;
    unsigned side; /* partition: bit mask of one side */
    unsigned from; /* oneway: sender; pause, latency: the node */
    unsigned to;   /* oneway: bit mask of the other ends */
    bool reverse;  /* oneway: the others' messages to from are dropped */
};

/* First entry applied at each index by any server (State Machine Safety). */
struct applied_entry
{
    uint64_t hash;
    unsigned node;
    bool set;
};

struct sim
{
    uint64_t seed;
    const struct sim_opts *opts;
    struct sim_result *res;
    struct prng rng;
    struct raft_fixture *f; /* owned */
    bool fixture_ready;
    bool closing;
    unsigned n;
    struct sim_node nodes[SIM_NODES_MAX];
    unsigned n_clients;
    struct sim_client clients[SIM_CLIENTS_MAX + 1]; /* the last: liveness */
    /* Keys: slots of the register workload, rotated after ops_per_key. */
    unsigned n_slots;
    int64_t slot_key[SIM_KEY_SLOTS_MAX];
    unsigned slot_ops[SIM_KEY_SLOTS_MAX];
    unsigned slot_infos[SIM_KEY_SLOTS_MAX];
    int64_t next_key;
    unsigned ops_per_key;
    int64_t keys_used[SIM_KEYS_MAX];
    unsigned n_keys_used;
    unsigned ops_issued;
    bool issuing;
    /* Network model: counts, so that faults may overlap. */
    unsigned cut[SIM_NODES_MAX][SIM_NODES_MAX];  /* disconnected both ways */
    unsigned drop[SIM_NODES_MAX][SIM_NODES_MAX]; /* i -> j silently dropped */
    struct fault faults[SIM_FAULTS_MAX];
    int64_t next_fault_ms;
    unsigned fault_gap_max_ms;
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    unsigned weights[FAULT_KINDS];
    int64_t next_ticker_ms;
    raft_id last_leader;
    /* Safety record. */
    struct applied_entry *applied; /* owned, indexed by raft index */
    size_t applied_cap;
    /* History. */
    char *hist_text; /* owned by the memstream until fclose */
    size_t hist_len;
    FILE *hist;
    uint64_t request_id;
    int64_t final_process;
    bool failed;
};

static struct sim *sim_current;

const char *sim_verdict_name(enum sim_verdict v)
{
    switch (v) {
        case SIM_PASS:
            return "pass";
        case SIM_FAIL_LINEARIZABLE:
            return "linearizability";
        case SIM_FAIL_LIVENESS:
            return "liveness";
        case SIM_FAIL_CONVERGENCE:
            return "convergence";
        case SIM_FAIL_SAFETY:
            return "safety";
        case SIM_FAIL_INTERNAL:
            return "internal";
    }
    return "?";
}

const char *sim_mutant_name(enum sim_mutant m)
{
    switch (m) {
        case SIM_MUTANT_NONE:
            return "none";
        case SIM_MUTANT_STALE_READ:
            return "stale-read";
        case SIM_MUTANT_NO_GUARD:
            return "no-guard";
        case SIM_MUTANT_NO_TRIM:
            return "no-trim";
    }
    return "?";
}

int sim_mutant_parse(const char *name, enum sim_mutant *out)
{
    enum sim_mutant m;
    for (m = SIM_MUTANT_NONE; m <= SIM_MUTANT_NO_TRIM; m++) {
        if (strcmp(name, sim_mutant_name(m)) == 0) {
            *out = m;
            return 0;
        }
    }
    return -1;
}

/* Failing and tracing */

static void sim_fail(struct sim *s, enum sim_verdict v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sim_fail(struct sim *s, enum sim_verdict v, const char *fmt, ...)
{
    va_list ap;
    if (s->failed) {
        return; /* the first failure is the one reported */
    }
    s->failed = true;
    s->res->verdict = v;
    va_start(ap, fmt);
    vsnprintf(s->res->what, sizeof(s->res->what), fmt, ap);
    va_end(ap);
}

static int64_t now_ms(const struct sim *s)
{
    return s->f != NULL ? (int64_t)s->f->time : 0;
}

static void trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    if (s->opts->trace == NULL) {
        return;
    }
    fprintf(s->opts->trace, "[%7" PRId64 " ms] ", now_ms(s));
    va_start(ap, fmt);
    vfprintf(s->opts->trace, fmt, ap);
    va_end(ap);
    fputc('\n', s->opts->trace);
    fflush(s->opts->trace);
}

/* One history line; the trace gets a copy. */
static void emit(struct sim *s, const char *type, int64_t process, const char *f, const char *value)
{
    char line[256];
    snprintf(line, sizeof(line),
             "{:type :%s, :f :%s, :value %s, :process %" PRId64 ", :time %" PRId64 "}", type, f,
             value, process, now_ms(s) * 1000000);
    fprintf(s->hist, "%s\n", line);
    trace(s, "%s", line);
}

static void emit_nemesis(struct sim *s, const char *f, const char *value)
{
    char line[256];
    snprintf(line, sizeof(line),
             "{:type :info, :f :%s, :value \"%s\", :process :nemesis, :time %" PRId64 "}", f, value,
             now_ms(s) * 1000000);
    fprintf(s->hist, "%s\n", line);
    trace(s, "%s", line);
    s->res->faults++;
}

static struct raft *node_raft(struct sim *s, unsigned i)
{
    return raft_fixture_get(s->f, i);
}

static const char *state_name(int state)
{
    switch (state) {
        case RAFT_FOLLOWER:
            return "follower";
        case RAFT_CANDIDATE:
            return "candidate";
        case RAFT_LEADER:
            return "leader";
    }
    return "unavailable";
}

/* State Machine Safety (Raft paper, Figure 3): no two servers apply
 * different entries at one index. The fixture checks Election Safety itself
 * (it aborts); its Leader Append-Only check is an assert(), compiled out of
 * Debian's libraft. */

static uint64_t hash_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    size_t k;
    for (k = 0; k < len; k++) {
        h ^= p[k];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void safety_record(struct sim *s, unsigned node, raft_index index, uint64_t hash)
{
    struct applied_entry *e;
    if (index >= s->applied_cap) {
        size_t cap = s->applied_cap == 0 ? 1024 : s->applied_cap;
        struct applied_entry *grown;
        while (cap <= index) {
            cap *= 2;
        }
        grown = realloc(s->applied, cap * sizeof(*grown));
        if (grown == NULL) {
            sim_fail(s, SIM_FAIL_INTERNAL, "out of memory (safety record)");
            return;
        }
        memset(grown + s->applied_cap, 0, (cap - s->applied_cap) * sizeof(*grown));
        s->applied = grown;
        s->applied_cap = cap;
    }
    e = &s->applied[index];
    if (!e->set) {
        e->set = true;
        e->hash = hash;
        e->node = node;
        return;
    }
    if (e->hash != hash) {
        trace(s, "SAFETY: n%u applied a different entry at index %llu than n%u", node + 1,
              (unsigned long long)index, e->node + 1);
        sim_fail(s, SIM_FAIL_SAFETY,
                 "n%u and n%u applied different entries at index %llu (State Machine Safety)",
                 e->node + 1, node + 1, (unsigned long long)index);
    }
}

/* The fsm wrapper: raft calls these, they call Cairn's fsm. */

static int wrap_apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    struct sim_node *n = rf->data;
    struct sim *s = n->sim;
    /* raft 0.15 sets last_applied after apply returns. */
    raft_index index = raft_last_applied(node_raft(s, n->i)) + 1;
    if (!s->closing) {
        safety_record(s, n->i, index, hash_bytes(buf->base, buf->len));
    }
    return n->fsm.raft_fsm.apply(&n->fsm.raft_fsm, buf, result);
}

static int wrap_snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct sim_node *n = rf->data;
    return n->fsm.raft_fsm.snapshot(&n->fsm.raft_fsm, bufs, n_bufs);
}

static int wrap_snapshot_async(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct sim_node *n = rf->data;
    return n->fsm.raft_fsm.snapshot_async(&n->fsm.raft_fsm, bufs, n_bufs);
}

static int wrap_snapshot_finalize(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct sim_node *n = rf->data;
    return n->fsm.raft_fsm.snapshot_finalize(&n->fsm.raft_fsm, bufs, n_bufs);
}

static int wrap_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
    struct sim_node *n = rf->data;
    return n->fsm.raft_fsm.restore(&n->fsm.raft_fsm, buf);
}

/* The io shim sits under the guard, on the fixture's io.
 *
 * Disk faults: raft_fixture_io_fault() makes io calls fail synchronously
 * (append, but also send, set_term, set_vote, truncate), which is not how a
 * full or failing disk shows under raft_uv: there a write is accepted and its
 * completion reports the error. That asynchronous failure is what Cairn's
 * policy is about (docs/raft.md: the guard makes a leader step down, and
 * cairnd stops the node), so the shim produces it: when armed, the next
 * append is completed by the fixture and reported to raft as failed, as
 * tests/raft/test_leader_guard.c does.
 *
 * Truncation: the fixture's in-memory disk assumes its entries start at
 * index 1, which stops being true after a snapshot is installed (its
 * snapshot_put with trailing 0 empties it); a later truncate then copies past
 * the end of its array. The shim counts the entries the fixture holds and
 * skips a truncate that would read past them. What the fixture's disk holds
 * matters only when a server reloads it, which no run does (README).
 *
 * Ordering: the fixture completes each request at submission time plus the
 * server's current latency, so lowering a latency while requests are in
 * flight would complete a later write before an earlier one, or deliver a
 * later message first. raft_uv does neither: it writes its log in order, and
 * each peer's messages travel in order on one TCP connection. raft 0.15
 * relies on in-order write completion (a follower's last_stored went wrong
 * and it stopped committing when the first harness let writes overtake each
 * other), so the shim sets the latency of each request to at least what
 * keeps it behind the previous one. */

static struct sim_node *node_of_io(struct sim *s, struct raft_io *io)
{
    unsigned i;
    for (i = 0; i < s->n; i++) {
        if (s->nodes[i].io == io) {
            return &s->nodes[i];
        }
    }
    abort(); /* every server's io has a shim */
}

/* Set server i's latency for the request about to be submitted: wanted_ms,
 * or more if that would complete it before the previous one (*done). */
static void shim_order(struct sim *s, unsigned i, unsigned wanted_ms, raft_time *done,
                       void (*set)(struct raft_fixture *f, unsigned i, unsigned msecs))
{
    raft_time now = s->f->time;
    raft_time at = now + wanted_ms;
    if (at < *done) {
        at = *done;
    }
    *done = at;
    set(s->f, i, (unsigned)(at - now));
}

static int shim_send(struct raft_io *io, struct raft_io_send *req,
                     const struct raft_message *message, raft_io_send_cb cb)
{
    struct sim *s = sim_current;
    struct sim_node *n = node_of_io(s, io);
    /* The fixture hands the message to the network at the current time
     * (its send completes at once) and delivers it after the latency in
     * force then; every send at this time sees the latency set last, which
     * is the largest. */
    shim_order(s, n->i, n->net_latency_ms, &n->net_done, raft_fixture_set_network_latency);
    return n->io_send(io, req, message, cb);
}

static void shim_append_cb(struct raft_io_append *req, int status)
{
    struct sim *s = sim_current;
    struct shim_append *a = NULL;
    struct sim_node *n = NULL;
    raft_io_append_cb cb;
    bool fail;
    unsigned i;
    for (i = 0; i < s->n && a == NULL; i++) {
        struct shim_append **link;
        for (link = &s->nodes[i].appends; *link != NULL; link = &(*link)->next) {
            if ((*link)->req == req) {
                a = *link;
                *link = a->next;
                n = &s->nodes[i];
                break;
            }
        }
    }
    if (a == NULL) {
        abort(); /* only appends that went through shim_append get here */
    }
    if (status == 0) {
        n->persisted += a->n; /* the fixture stored them */
    }
    cb = a->cb;
    fail = a->fail;
    free(a);
    if (fail && !s->closing) {
        trace(s, "n%u: disk write failed (injected)", n->i + 1);
        status = RAFT_IOERR;
    }
    cb(req, status);
}

static int shim_append(struct raft_io *io, struct raft_io_append *req,
                       const struct raft_entry entries[], unsigned n_entries, raft_io_append_cb cb)
{
    struct sim *s = sim_current;
    struct sim_node *n = node_of_io(s, io);
    struct shim_append *a = malloc(sizeof(*a));
    int rv;
    if (a == NULL) {
        return RAFT_NOMEM;
    }
    a->req = req;
    a->cb = cb;
    a->n = n_entries;
    a->fail = n->disk_fault_armed;
    a->next = n->appends;
    n->appends = a;
    shim_order(s, n->i, n->disk_latency_ms, &n->disk_done, raft_fixture_set_disk_latency);
    rv = n->io_append(io, req, entries, n_entries, shim_append_cb);
    if (rv != 0) {
        n->appends = a->next;
        free(a);
        return rv;
    }
    n->disk_fault_armed = false;
    return 0;
}

static int shim_truncate(struct raft_io *io, raft_index index)
{
    struct sim *s = sim_current;
    struct sim_node *n = node_of_io(s, io);
    int rv;
    if (index == 0 || index - 1 > n->persisted) {
        return 0; /* see the comment above shim_append_cb */
    }
    rv = n->io_truncate(io, index);
    if (rv == 0) {
        n->persisted = (size_t)(index - 1);
    }
    return rv;
}

/* The network model. The fixture's kill and revive change saturation of
 * every link of the node, so after any change the whole model is applied
 * again: a link i->j is disconnected while some partition cuts it, and
 * saturated (messages silently dropped) while a one-way fault drops it or
 * either end is not running. */

static bool node_running(const struct sim_node *n)
{
    return !n->paused && !n->stopped;
}

static void net_apply(struct sim *s)
{
    unsigned i;
    unsigned j;
    /* What raft_fixture_kill() and revive() do, without their saturating
     * of links that a partition disconnected (the fixture asserts that a
     * saturated link is connected, in builds that keep assertions). */
    for (i = 0; i < s->n; i++) {
        s->f->servers[i].alive = node_running(&s->nodes[i]);
    }
    for (i = 0; i < s->n; i++) {
        for (j = 0; j < s->n; j++) {
            if (i == j) {
                continue;
            }
            /* Saturation is set on a connected link and survives a
             * disconnection. */
            raft_fixture_reconnect(s->f, i, j);
            if (s->drop[i][j] > 0 || !node_running(&s->nodes[i]) || !node_running(&s->nodes[j])) {
                raft_fixture_saturate(s->f, i, j);
            } else {
                raft_fixture_desaturate(s->f, i, j);
            }
            if (s->cut[i][j] > 0) {
                raft_fixture_disconnect(s->f, i, j);
            }
        }
    }
}

/* Requests: building them with the client codec */

static void op_key(int64_t key, char *out, size_t len, uint32_t *key_len)
{
    int k = snprintf(out, len, "r/%" PRId64, key);
    *key_len = (uint32_t)k;
}

/* Encode op as the framed request a client would send. Returns 0 or -1. */
static int build_request(struct sim *s, const struct sim_op *op, struct buf *frame)
{
    struct proto_request req;
    struct proto_cmp cmp;
    struct proto_op put;
    char key[32];
    char value[16];
    char from[16];
    uint32_t key_len;
    memset(&req, 0, sizeof(req));
    memset(&cmp, 0, sizeof(cmp));
    memset(&put, 0, sizeof(put));
    op_key(op->key, key, sizeof(key), &key_len);
    snprintf(value, sizeof(value), "%d", op->value);
    snprintf(from, sizeof(from), "%d", op->from);
    req.id = ++s->request_id;
    switch (op->kind) {
        case OP_READ:
            req.type = PROTO_GET;
            req.op.type = CAIRN_OP_GET;
            req.op.key.ptr = key;
            req.op.key.len = key_len;
            break;
        case OP_WRITE:
            req.type = PROTO_PUT;
            req.op.type = CAIRN_OP_PUT;
            req.op.key.ptr = key;
            req.op.key.len = key_len;
            req.op.value.ptr = value;
            req.op.value.len = (uint32_t)strlen(value);
            break;
        case OP_CAS:
            /* As jepsen/local/worker.c: a transaction comparing the value.
             * A missing key compares as the empty value, which no "N"
             * equals, so a cas on an absent key fails. */
            req.type = PROTO_TXN;
            cmp.key.ptr = key;
            cmp.key.len = key_len;
            cmp.target = CAIRN_CMP_VALUE;
            cmp.op = CAIRN_CMP_EQUAL;
            cmp.value.ptr = from;
            cmp.value.len = (uint32_t)strlen(from);
            put.type = CAIRN_OP_PUT;
            put.key.ptr = key;
            put.key.len = key_len;
            put.value.ptr = value;
            put.value.len = (uint32_t)strlen(value);
            req.cmps = &cmp;
            req.n_cmps = 1;
            req.then_ops = &put;
            req.n_then = 1;
            break;
    }
    return proto_encode_request(frame, &req) == 0 ? 0 : -1;
}

/* Clients */

static const char *op_name(enum op_kind k)
{
    return k == OP_READ ? "read" : k == OP_WRITE ? "write" : "cas";
}

static void op_value(const struct sim_op *op, bool read_has, int64_t read_value, char *out,
                     size_t len)
{
    switch (op->kind) {
        case OP_READ:
            if (read_has) {
                snprintf(out, len, "[%" PRId64 " %" PRId64 "]", op->key, read_value);
            } else {
                snprintf(out, len, "[%" PRId64 " nil]", op->key);
            }
            break;
        case OP_WRITE:
            snprintf(out, len, "[%" PRId64 " %d]", op->key, op->value);
            break;
        case OP_CAS:
            snprintf(out, len, "[%" PRId64 " [%d %d]]", op->key, op->from, op->value);
            break;
    }
}

static void client_finish(struct sim *s, struct sim_client *c, enum hist_type type, bool has,
                          int64_t value)
{
    char v[96];
    const char *name = type == HIST_OK ? "ok" : type == HIST_FAIL ? "fail" : "info";
    op_value(&c->op, has, value, v, sizeof(v));
    emit(s, name, c->process, op_name(c->op.kind), v);
    s->res->ops++;
    if (type == HIST_OK) {
        s->res->ops_ok++;
    }
    if (type == HIST_INFO) {
        s->res->ops_info++;
        if (c->op.slot >= 0 && s->slot_key[c->op.slot] == c->op.key) {
            s->slot_infos[c->op.slot]++;
        }
        c->process += c->process_step; /* as Jepsen: a new process */
    }
    c->state = CLIENT_IDLE;
    c->op_seq++;
    c->next_ms = now_ms(s) + prng_range(&s->rng, 0, SIM_THINK_MAX_MS);
}

/* The attempt failed without effect (not the leader, no leader, refused):
 * follow the node's leader hint if it has one, otherwise try another node,
 * after a short back-off. */
static void client_redirect(struct sim *s, struct sim_client *c, unsigned from)
{
    raft_id id = 0;
    const char *address = NULL;
    if (node_running(&s->nodes[from])) {
        raft_leader(node_raft(s, from), &id, &address);
    }
    if (id != 0 && id - 1 != from) {
        c->target = (unsigned)(id - 1);
    } else {
        c->target = (unsigned)prng_below(&s->rng, s->n);
    }
    c->state = CLIENT_BACKOFF;
    c->next_ms = now_ms(s) + prng_range(&s->rng, SIM_RETRY_MIN_MS, SIM_RETRY_MAX_MS);
}

static void client_of_request(struct sim *s, unsigned client, uint64_t op_seq,
                              struct sim_client **out)
{
    struct sim_client *c = &s->clients[client];
    *out = NULL;
    if (!s->closing && c->op_seq == op_seq && c->state == CLIENT_WAITING) {
        *out = c;
    }
}

/* Parse a register value written by this simulation. */
static bool parse_value(const char *p, size_t len, int64_t *out)
{
    int64_t v = 0;
    size_t k;
    if (len == 0 || len > 18) {
        return false;
    }
    for (k = 0; k < len; k++) {
        if (p[k] < '0' || p[k] > '9') {
            return false;
        }
        v = v * 10 + (p[k] - '0');
    }
    *out = v;
    return true;
}

/* Finish a read from a framed response; any error means it did not happen. */
static void client_read_answer(struct sim *s, struct sim_client *c, const struct buf *frame,
                               unsigned node)
{
    struct proto_response resp;
    int64_t v = 0;
    if (frame->len < PROTO_FRAME_HEADER_SIZE ||
        proto_decode_response(frame->data + PROTO_FRAME_HEADER_SIZE,
                              frame->len - PROTO_FRAME_HEADER_SIZE, &resp) != 0) {
        sim_fail(s, SIM_FAIL_INTERNAL, "n%u: a read response does not decode", node + 1);
        client_finish(s, c, HIST_FAIL, false, 0);
        return;
    }
    if (resp.code == CAIRN_ENOTFOUND ||
        (resp.code == 0 &&
         (resp.result == NULL || resp.result->n_ops == 0 || resp.result->ops[0].n_kvs == 0))) {
        client_finish(s, c, HIST_OK, false, 0);
    } else if (resp.code == 0) {
        const struct cairn_kv *kv = &resp.result->ops[0].kvs[0];
        if (!parse_value(kv->value, kv->value_len, &v)) {
            sim_fail(s, SIM_FAIL_INTERNAL, "n%u: read a value this run never wrote", node + 1);
            client_finish(s, c, HIST_FAIL, false, 0);
        } else {
            client_finish(s, c, HIST_OK, true, v);
        }
    } else {
        client_finish(s, c, HIST_FAIL, false, 0);
    }
    proto_response_free(&resp);
}

/* Linearizable reads: src/reads.c, reproduced. reads.c is bound to cairnd's
 * sessions and server (it answers through session_output), so it cannot be
 * linked here; this keeps its rule exactly: a read waits for a barrier
 * proposed after it arrived, one barrier in flight serves the batch that
 * arrived before it was proposed, the next is proposed from a successful
 * barrier callback only, a failed barrier fails its batch and every waiting
 * read and proposes nothing (raft 0.15 crashes on a proposal from a failing
 * callback, docs/raft.md), and the ticker fails waiting reads when the node
 * is no longer leader. Answers come from the node's applied key space via
 * kv_read, as in reads.c answer(). */

static void read_free(struct sim_node *n, struct sim_read *rr)
{
    n->pending--;
    free(rr->payload);
    free(rr);
}

static void read_answer(struct sim *s, struct sim_node *n, const char *payload, size_t len,
                        struct sim_client *c)
{
    struct arena a;
    struct proto_request req;
    struct proto_writer w;
    struct buf out;
    int rv;
    arena_init(&a);
    buf_init(&out);
    rv = proto_decode_request(payload, len, &a, &req);
    if (rv == 0) {
        proto_writer_begin(&w, &out);
        rv = kv_read(&n->fsm.kv, &req, &w);
        if (rv == 0) {
            rv = proto_writer_end(&w);
        }
    }
    if (rv == 0) {
        client_read_answer(s, c, &out, n->i);
    } else if (rv == CAIRN_ENOTFOUND) {
        client_finish(s, c, HIST_OK, false, 0);
    } else {
        client_finish(s, c, HIST_FAIL, false, 0);
    }
    buf_free(&out);
    arena_free(&a);
}

static void reads_fail_list(struct sim *s, struct sim_node *n, struct sim_read *rr)
{
    while (rr != NULL) {
        struct sim_read *next = rr->next;
        struct sim_client *c;
        client_of_request(s, rr->client, rr->op_seq, &c);
        if (c != NULL) {
            client_redirect(s, c, n->i); /* ENOTLEADER: nothing was read */
        }
        read_free(n, rr);
        rr = next;
    }
}

static void reads_fail_all(struct sim *s, struct sim_node *n)
{
    struct sim_read *rr = n->waiting;
    n->waiting = NULL;
    n->waiting_tail = &n->waiting;
    reads_fail_list(s, n, rr);
}

static void reads_propose(struct sim *s, struct sim_node *n);

static void reads_barrier_cb(struct raft_barrier *req, int status)
{
    struct sim_node *n = req->data;
    struct sim *s = n->sim;
    struct sim_read *rr = n->batch;
    n->batch = NULL;
    n->barrier_in_flight = false;
    if (status != 0) {
        reads_fail_list(s, n, rr);
        reads_fail_all(s, n);
        return;
    }
    while (rr != NULL) {
        struct sim_read *next = rr->next;
        struct sim_client *c;
        client_of_request(s, rr->client, rr->op_seq, &c);
        if (c != NULL) {
            read_answer(s, n, rr->payload, rr->len, c);
        }
        read_free(n, rr);
        rr = next;
    }
    if (n->waiting != NULL && !s->closing) {
        reads_propose(s, n);
    }
}

static void reads_propose(struct sim *s, struct sim_node *n)
{
    int rv;
    n->batch = n->waiting;
    n->waiting = NULL;
    n->waiting_tail = &n->waiting;
    n->barrier.data = n;
    rv = raft_barrier(node_raft(s, n->i), &n->barrier, reads_barrier_cb);
    if (rv != 0) {
        struct sim_read *rr = n->batch;
        n->batch = NULL;
        reads_fail_list(s, n, rr);
        return;
    }
    n->barrier_in_flight = true;
}

static void reads_submit(struct sim *s, struct sim_node *n, struct sim_client *c,
                         const char *payload, size_t len)
{
    struct sim_read *rr = calloc(1, sizeof(*rr));
    if (rr == NULL || (rr->payload = malloc(len)) == NULL) {
        free(rr);
        sim_fail(s, SIM_FAIL_INTERNAL, "out of memory (read)");
        client_finish(s, c, HIST_FAIL, false, 0);
        return;
    }
    memcpy(rr->payload, payload, len);
    rr->len = len;
    rr->client = c->index;
    rr->op_seq = c->op_seq;
    n->pending++;
    *n->waiting_tail = rr;
    n->waiting_tail = &rr->next;
    c->state = CLIENT_WAITING;
    if (!n->barrier_in_flight) {
        reads_propose(s, n);
    }
}

/* Writes: src/server.c propose() and apply_cb(), reproduced. */

static void write_cb(struct raft_apply *req, int status, void *result)
{
    struct sim_write *w = req->data;
    struct sim_node *n = w->node;
    struct sim *s = n->sim;
    struct buf *reply = result;
    struct sim_client *c;
    n->writes_in_flight--;
    n->pending--;
    client_of_request(s, w->client, w->op_seq, &c);
    free(w);
    if (c == NULL) {
        return; /* the client gave up, or the run is over */
    }
    if (status != 0) {
        /* cairnd: "may or may not have been applied" (CAIRN_EUNKNOWN). */
        client_finish(s, c, HIST_INFO, false, 0);
        return;
    }
    if (reply == NULL || reply->len <= PROTO_FRAME_HEADER_SIZE) {
        client_finish(s, c, HIST_INFO, false, 0); /* CAIRN_EINTERNAL */
        return;
    }
    {
        struct proto_response resp;
        if (proto_decode_response(reply->data + PROTO_FRAME_HEADER_SIZE,
                                  reply->len - PROTO_FRAME_HEADER_SIZE, &resp) != 0) {
            sim_fail(s, SIM_FAIL_INTERNAL, "n%u: a write response does not decode", n->i + 1);
            client_finish(s, c, HIST_INFO, false, 0);
            return;
        }
        if (resp.code != 0) {
            /* Refused by the key space, on every replica alike. */
            client_finish(s, c, HIST_FAIL, false, 0);
        } else if (c->op.kind == OP_CAS) {
            bool ok = resp.result != NULL && resp.result->succeeded;
            client_finish(s, c, ok ? HIST_OK : HIST_FAIL, false, 0);
        } else {
            client_finish(s, c, HIST_OK, false, 0);
        }
        proto_response_free(&resp);
    }
}

static void propose(struct sim *s, struct sim_node *n, struct sim_client *c, const char *payload,
                    size_t len)
{
    struct sim_write *w = calloc(1, sizeof(*w));
    struct raft_buffer entry;
    int rv;
    if (w == NULL ||
        fsm_encode_entry(n->fsm.id, SIM_TIME_BASE_MS + now_ms(s), payload, len, &entry) != 0) {
        free(w);
        sim_fail(s, SIM_FAIL_INTERNAL, "out of memory (write)");
        client_finish(s, c, HIST_FAIL, false, 0);
        return;
    }
    w->node = n;
    w->client = c->index;
    w->op_seq = c->op_seq;
    w->req.data = w;
    rv = raft_apply(node_raft(s, n->i), &w->req, &entry, 1, write_cb);
    if (rv != 0) {
        /* Not proposed at all: certainly not applied. */
        raft_free(entry.base);
        free(w);
        client_redirect(s, c, n->i);
        return;
    }
    n->writes_in_flight++;
    n->pending++;
    c->state = CLIENT_WAITING;
}

/* A request reaches node n: src/server.c server_handle_request(). */
static void node_handle(struct sim *s, struct sim_node *n, struct sim_client *c)
{
    struct buf frame;
    const char *payload;
    size_t len;
    buf_init(&frame);
    if (build_request(s, &c->op, &frame) != 0) {
        sim_fail(s, SIM_FAIL_INTERNAL, "out of memory (request)");
        client_finish(s, c, HIST_FAIL, false, 0);
        buf_free(&frame);
        return;
    }
    payload = frame.data + PROTO_FRAME_HEADER_SIZE;
    len = frame.len - PROTO_FRAME_HEADER_SIZE;
    if (raft_state(node_raft(s, n->i)) != RAFT_LEADER) {
        client_redirect(s, c, n->i);
    } else if (c->op.kind == OP_READ) {
        if (s->opts->mutant == SIM_MUTANT_STALE_READ) {
            /* The injected bug: answer from the applied state at once,
             * trusting raft_state() instead of a barrier. */
            c->state = CLIENT_WAITING;
            read_answer(s, n, payload, len, c);
        } else {
            reads_submit(s, n, c, payload, len);
        }
    } else {
        propose(s, n, c, payload, len);
    }
    buf_free(&frame);
}

static void client_attempt(struct sim *s, struct sim_client *c)
{
    struct sim_node *n = &s->nodes[c->target];
    if (n->stopped) {
        /* Connection refused: certainly not applied; try another node. */
        client_redirect(s, c, c->target);
        return;
    }
    if (n->paused) {
        /* A paused process accepts nothing and answers nothing: the
         * request waits until the client's deadline. */
        c->state = CLIENT_WAITING;
        return;
    }
    node_handle(s, n, c);
}

static void record_key(struct sim *s, int64_t key)
{
    unsigned k;
    for (k = 0; k < s->n_keys_used; k++) {
        if (s->keys_used[k] == key) {
            return;
        }
    }
    if (s->n_keys_used < SIM_KEYS_MAX) {
        s->keys_used[s->n_keys_used++] = key;
    }
}

/* A key for the next operation. A slot moves to a fresh key after
 * ops_per_key operations, or after SIM_INFOS_PER_KEY_MAX of them ended
 * :info: each :info stays open to the end of the history, and the
 * checker's search grows with the operations open at once. */
static int64_t pick_key(struct sim *s, int *slot_out)
{
    unsigned slot = (unsigned)prng_below(&s->rng, s->n_slots);
    if (s->slot_ops[slot] >= s->ops_per_key || s->slot_infos[slot] >= SIM_INFOS_PER_KEY_MAX) {
        s->slot_key[slot] = s->next_key++;
        s->slot_ops[slot] = 0;
        s->slot_infos[slot] = 0;
    }
    s->slot_ops[slot]++;
    record_key(s, s->slot_key[slot]);
    *slot_out = (int)slot;
    return s->slot_key[slot];
}

static void client_start(struct sim *s, struct sim_client *c, const struct sim_op *op)
{
    char v[96];
    c->op = *op;
    c->op_seq++;
    c->deadline_ms = now_ms(s) + SIM_OP_TIMEOUT_MS;
    op_value(&c->op, false, 0, v, sizeof(v));
    emit(s, "invoke", c->process, op_name(op->kind), v);
    client_attempt(s, c);
}

static void client_start_random(struct sim *s, struct sim_client *c)
{
    struct sim_op op;
    unsigned kind = (unsigned)prng_below(&s->rng, 3);
    op.kind = kind == 0 ? OP_READ : kind == 1 ? OP_WRITE : OP_CAS;
    op.key = pick_key(s, &op.slot);
    op.value = (int)prng_below(&s->rng, SIM_VALUE_MAX);
    op.from = (int)prng_below(&s->rng, SIM_VALUE_MAX);
    s->ops_issued++;
    client_start(s, c, &op);
}

/* What a client does when its time comes. */
static void client_due(struct sim *s, struct sim_client *c)
{
    int64_t now = now_ms(s);
    switch (c->state) {
        case CLIENT_IDLE:
            if (!c->final && s->issuing && now >= c->next_ms && s->ops_issued < s->opts->ops) {
                client_start_random(s, c);
            }
            break;
        case CLIENT_BACKOFF:
            if (now >= c->deadline_ms && !c->final) {
                /* Every attempt failed without effect. */
                client_finish(s, c, HIST_FAIL, false, 0);
            } else if (now >= c->next_ms) {
                client_attempt(s, c);
            }
            break;
        case CLIENT_WAITING:
            if (now >= c->deadline_ms && !c->final) {
                /* Timed out: a read changed nothing, a write may have. */
                client_finish(s, c, c->op.kind == OP_READ ? HIST_FAIL : HIST_INFO, false, 0);
            }
            break;
    }
}

/* The node tickers: src/server.c ticker_cb(), every SIM_TICKER_MS. */

static void node_stop(struct sim *s, struct sim_node *n)
{
    unsigned k;
    n->stopped = true;
    s->res->fail_stops++;
    trace(s, "n%u: a Raft log write failed; the node stops (cairnd exits with status 1)", n->i + 1);
    {
        char what[16];
        snprintf(what, sizeof(what), "n%u", n->i + 1);
        emit_nemesis(s, "fail-stop", what);
    }
    net_apply(s);
    /* Its clients lose their connection: a write may have happened. */
    for (k = 0; k <= s->n_clients; k++) {
        struct sim_client *c = &s->clients[k];
        if (c->state == CLIENT_WAITING && c->target == n->i) {
            if (c->final) {
                client_redirect(s, c, n->i);
                c->op_seq++; /* its requests at n are orphaned */
            } else {
                client_finish(s, c, c->op.kind == OP_READ ? HIST_FAIL : HIST_INFO, false, 0);
            }
        }
    }
}

static void node_ticker(struct sim *s, struct sim_node *n)
{
    int state;
    if (!node_running(n)) {
        return; /* a paused or stopped process runs no timer */
    }
    state = raft_state(node_raft(s, n->i));
    if (state != n->last_state) {
        n->last_state = state;
        if (state != RAFT_LEADER) {
            reads_fail_all(s, n);
        }
    }
    if (leader_guard_append_failures(&n->guard) > 0) {
        node_stop(s, n);
    }
}

/* The nemesis */

static void format_nodes(const struct sim *s, unsigned mask, char *out, size_t len)
{
    size_t at = 0;
    unsigned i;
    out[0] = '\0';
    for (i = 0; i < s->n && at + 4 < len; i++) {
        if ((mask & (1U << i)) != 0) {
            at += (size_t)snprintf(out + at, len - at, "%sn%u", at > 0 ? " " : "", i + 1);
        }
    }
}

static unsigned leader_or_random(struct sim *s)
{
    unsigned i;
    if (prng_chance(&s->rng, 50)) {
        for (i = 0; i < s->n; i++) {
            if (node_running(&s->nodes[i]) && raft_state(node_raft(s, i)) == RAFT_LEADER) {
                return i;
            }
        }
    }
    return (unsigned)prng_below(&s->rng, s->n);
}

static unsigned count_stopped(const struct sim *s)
{
    unsigned i;
    unsigned k = 0;
    for (i = 0; i < s->n; i++) {
        k += s->nodes[i].stopped || s->nodes[i].doomed;
    }
    return k;
}

static void oneway_name(const struct sim *s, const struct fault *ft, char *out, size_t len)
{
    char list[48];
    format_nodes(s, ft->to, list, sizeof(list));
    if (ft->reverse) {
        snprintf(out, len, "%s -> n%u", list, ft->from + 1);
    } else {
        snprintf(out, len, "n%u -> %s", ft->from + 1, list);
    }
}

static void fault_heal(struct sim *s, struct fault *ft)
{
    char what[64];
    unsigned i;
    unsigned j;
    ft->active = false;
    switch (ft->kind) {
        case FAULT_PARTITION:
            for (i = 0; i < s->n; i++) {
                for (j = 0; j < s->n; j++) {
                    if (((ft->side >> i) & 1U) != ((ft->side >> j) & 1U)) {
                        s->cut[i][j]--;
                    }
                }
            }
            format_nodes(s, ft->side, what, sizeof(what));
            emit_nemesis(s, "stop-partition", what);
            break;
        case FAULT_ONEWAY:
            for (j = 0; j < s->n; j++) {
                if ((ft->to & (1U << j)) != 0) {
                    if (ft->reverse) {
                        s->drop[j][ft->from]--;
                    } else {
                        s->drop[ft->from][j]--;
                    }
                }
            }
            oneway_name(s, ft, what, sizeof(what));
            emit_nemesis(s, "stop-drop", what);
            break;
        case FAULT_PAUSE:
            s->nodes[ft->from].paused = false;
            snprintf(what, sizeof(what), "n%u", ft->from + 1);
            emit_nemesis(s, "resume", what);
            break;
        case FAULT_LATENCY:
            s->nodes[ft->from].net_latency_ms = SIM_NET_LATENCY_MS;
            s->nodes[ft->from].disk_latency_ms = SIM_DISK_LATENCY_MS;
            snprintf(what, sizeof(what), "n%u", ft->from + 1);
            emit_nemesis(s, "stop-latency", what);
            break;
        default:
            break;
    }
    net_apply(s);
}

static void fault_start(struct sim *s)
{
    struct fault *ft = NULL;
    unsigned total = 0;
    unsigned pick;
    unsigned k;
    unsigned i;
    unsigned j;
    char what[96];
    char list[64];
    for (k = 0; k < SIM_FAULTS_MAX; k++) {
        if (!s->faults[k].active) {
            ft = &s->faults[k];
            break;
        }
    }
    if (ft == NULL) {
        return; /* enough trouble already */
    }
    for (k = 0; k < FAULT_KINDS; k++) {
        total += s->weights[k];
    }
    if (total == 0) {
        return;
    }
    pick = (unsigned)prng_below(&s->rng, total);
    for (k = 0; k < FAULT_KINDS && pick >= s->weights[k]; k++) {
        pick -= s->weights[k];
    }
    memset(ft, 0, sizeof(*ft));
    ft->kind = (enum fault_kind)k;
    ft->heal_ms = now_ms(s) + prng_range(&s->rng, 200, 3000);
    switch (ft->kind) {
        case FAULT_PARTITION:
            if (prng_chance(&s->rng, 50)) {
                ft->side = 1U << leader_or_random(s); /* one node alone */
            } else {
                do {
                    ft->side = (unsigned)prng_below(&s->rng, 1U << s->n);
                } while (ft->side == 0 || ft->side == (1U << s->n) - 1);
            }
            for (i = 0; i < s->n; i++) {
                for (j = 0; j < s->n; j++) {
                    if (((ft->side >> i) & 1U) != ((ft->side >> j) & 1U)) {
                        s->cut[i][j]++;
                    }
                }
            }
            format_nodes(s, ft->side, list, sizeof(list));
            snprintf(what, sizeof(what), "%s | rest", list);
            ft->active = true;
            emit_nemesis(s, "start-partition", what);
            break;
        case FAULT_ONEWAY:
            ft->from = leader_or_random(s);
            do {
                ft->to = (unsigned)prng_below(&s->rng, 1U << s->n) & ~(1U << ft->from);
            } while (ft->to == 0);
            /* Mostly from the node (a leader that cannot reach followers),
             * sometimes towards it (a leader that hears nothing back). */
            ft->reverse = prng_chance(&s->rng, 30);
            for (j = 0; j < s->n; j++) {
                if ((ft->to & (1U << j)) != 0) {
                    if (ft->reverse) {
                        s->drop[j][ft->from]++;
                    } else {
                        s->drop[ft->from][j]++;
                    }
                }
            }
            oneway_name(s, ft, what, sizeof(what));
            ft->active = true;
            emit_nemesis(s, "start-drop", what);
            break;
        case FAULT_PAUSE:
            ft->from = leader_or_random(s);
            if (!node_running(&s->nodes[ft->from])) {
                return;
            }
            s->nodes[ft->from].paused = true;
            snprintf(what, sizeof(what), "n%u", ft->from + 1);
            ft->active = true;
            emit_nemesis(s, "pause", what);
            break;
        case FAULT_DISK:
            /* Stopped nodes never come back (README), so at most a minority
             * may ever be stopped. */
            i = leader_or_random(s);
            if (count_stopped(s) + 1 > (s->n - 1) / 2 || !node_running(&s->nodes[i])) {
                return;
            }
            s->nodes[i].disk_fault_armed = true;
            s->nodes[i].doomed = true;
            snprintf(what, sizeof(what), "n%u", i + 1);
            emit_nemesis(s, "disk-fail", what);
            return; /* nothing to heal */
        case FAULT_CANDIDATE:
            /* Make a follower's election timer fire at its next tick: it
             * stands with a higher term, which deposes the leader when the
             * leader hears of it (raft 0.15 has no pre-vote enabled). */
            i = (unsigned)prng_below(&s->rng, s->n);
            if (!node_running(&s->nodes[i]) || raft_state(node_raft(s, i)) != RAFT_FOLLOWER) {
                return;
            }
            node_raft(s, i)->follower_state.randomized_election_timeout = 0;
            snprintf(what, sizeof(what), "n%u", i + 1);
            emit_nemesis(s, "candidate", what);
            return;
        case FAULT_LATENCY:
            ft->from = (unsigned)prng_below(&s->rng, s->n);
            {
                unsigned net = prng_chance(&s->rng, 20) ? (unsigned)prng_range(&s->rng, 150, 600)
                                                        : (unsigned)prng_range(&s->rng, 1, 80);
                unsigned disk = prng_chance(&s->rng, 20) ? (unsigned)prng_range(&s->rng, 100, 1200)
                                                         : (unsigned)prng_range(&s->rng, 1, 40);
                s->nodes[ft->from].net_latency_ms = net;
                s->nodes[ft->from].disk_latency_ms = disk;
                snprintf(what, sizeof(what), "n%u net %u ms disk %u ms", ft->from + 1, net, disk);
            }
            ft->active = true;
            emit_nemesis(s, "start-latency", what);
            break;
        default:
            return;
    }
    net_apply(s);
}

static void nemesis_due(struct sim *s)
{
    unsigned k;
    int64_t now = now_ms(s);
    for (k = 0; k < SIM_FAULTS_MAX; k++) {
        if (s->faults[k].active && now >= s->faults[k].heal_ms) {
            fault_heal(s, &s->faults[k]);
        }
    }
    if (s->issuing && now >= s->next_fault_ms) {
        fault_start(s);
        s->next_fault_ms = now + prng_range(&s->rng, 100, s->fault_gap_max_ms);
    }
}

/* Re-randomize election timeouts: the fixture's io->random() returns one
 * fixed value per server, where raft_uv draws a fresh one in
 * [timeout, 2 * timeout) each time raft resets its timer. */
static void randomize_election_timeouts(struct sim *s)
{
    unsigned i;
    for (i = 0; i < s->n; i++) {
        raft_fixture_set_randomized_election_timeout(
            s->f, i,
            SIM_ELECTION_TIMEOUT_MS + (unsigned)prng_below(&s->rng, SIM_ELECTION_TIMEOUT_MS));
    }
}

/* The step loop */

static void after_step(struct sim *s)
{
    int64_t now = now_ms(s);
    unsigned k;
    if (s->f->leader_id != s->last_leader) {
        if (s->f->leader_id != 0) {
            s->res->elections++;
            trace(s, "leader is n%llu (term %llu)", (unsigned long long)s->f->leader_id,
                  (unsigned long long)node_raft(s, (unsigned)s->f->leader_id - 1)->current_term);
        }
        s->last_leader = s->f->leader_id;
    }
    while (now >= s->next_ticker_ms) {
        s->next_ticker_ms += SIM_TICKER_MS;
        for (k = 0; k < s->n; k++) {
            node_ticker(s, &s->nodes[k]);
        }
        randomize_election_timeouts(s);
    }
    nemesis_due(s);
    for (k = 0; k <= s->n_clients; k++) {
        client_due(s, &s->clients[k]);
    }
    /* A fixture step is the simulation's turn of cairnd's loop: send the
     * commit notices its check handle would (src/server.c flush_cb). */
    for (k = 0; k < s->n; k++) {
        if (!s->nodes[k].paused && !s->nodes[k].stopped && !s->closing) {
            leader_guard_turn_end(&s->nodes[k].guard);
        }
    }
}

static bool step(struct sim *s)
{
    if (s->res->steps >= SIM_STEPS_MAX) {
        sim_fail(s, SIM_FAIL_INTERNAL, "more than %d fixture steps", SIM_STEPS_MAX);
        return false;
    }
    raft_fixture_step(s->f);
    s->res->steps++;
    after_step(s);
    return true;
}

/* Each server's view, and the leader's view of each follower, for a
 * liveness failure's one line. */
static void cluster_detail(struct sim *s, char *detail, size_t size)
{
    size_t len = 0;
    unsigned i;
    detail[0] = '\0';
    for (i = 0; i < s->n && len < size; i++) {
        struct raft *r = node_raft(s, i);
        len += (size_t)snprintf(
            detail + len, size - len,
            " n%u:%s/term %llu/last %llu/stored %llu/commit %llu/applied %llu", i + 1,
            s->nodes[i].stopped  ? "stopped"
            : s->nodes[i].paused ? "paused"
                                 : state_name(raft_state(r)),
            (unsigned long long)r->current_term, (unsigned long long)raft_last_index(r),
            (unsigned long long)r->last_stored, (unsigned long long)r->commit_index,
            (unsigned long long)raft_last_applied(r));
    }
    for (i = 0; i < s->n && len < size; i++) {
        struct raft *r = node_raft(s, i);
        unsigned j;
        if (s->nodes[i].stopped || raft_state(r) != RAFT_LEADER) {
            continue;
        }
        for (j = 0; j < r->configuration.n && len < size; j++) {
            const struct raft_progress *p = &r->leader_state.progress[j];
            if (j == i) {
                continue;
            }
            len += (size_t)snprintf(detail + len, size - len,
                                    " [n%u sees n%u: mode %u next %llu match %llu]", i + 1, j + 1,
                                    p->state, (unsigned long long)p->next_index,
                                    (unsigned long long)p->match_index);
        }
    }
}

static bool clients_idle(const struct sim *s)
{
    unsigned k;
    for (k = 0; k < s->n_clients; k++) {
        if (s->clients[k].state != CLIENT_IDLE) {
            return false;
        }
    }
    return true;
}

static unsigned pending_requests(const struct sim *s)
{
    unsigned i;
    unsigned p = 0;
    for (i = 0; i < s->n; i++) {
        if (!s->nodes[i].stopped) {
            p += s->nodes[i].pending;
        }
    }
    return p;
}

static void heal_all(struct sim *s)
{
    unsigned k;
    unsigned i;
    for (k = 0; k < SIM_FAULTS_MAX; k++) {
        if (s->faults[k].active) {
            fault_heal(s, &s->faults[k]);
        }
    }
    for (i = 0; i < s->n; i++) {
        s->nodes[i].net_latency_ms = SIM_NET_LATENCY_MS;
        s->nodes[i].disk_latency_ms = SIM_DISK_LATENCY_MS;
    }
    net_apply(s);
    emit_nemesis(s, "heal", "all");
}

/* Run one operation of the liveness client to its end, within bound_ms.
 * Returns false (with the failure set) when it did not end in time. */
static bool final_op(struct sim *s, const struct sim_op *op, int64_t bound_ms, const char *what)
{
    struct sim_client *c = &s->clients[s->n_clients];
    client_start(s, c, op);
    while (c->state != CLIENT_IDLE && now_ms(s) < bound_ms && !s->failed) {
        if (!step(s)) {
            return false;
        }
    }
    if (s->failed) {
        return false;
    }
    if (c->state != CLIENT_IDLE) {
        char detail[800];
        cluster_detail(s, detail, sizeof(detail));
        sim_fail(s, SIM_FAIL_LIVENESS, "%s did not complete within %d ms of the heal:%s", what,
                 SIM_LIVENESS_BOUND_MS, detail);
        return false;
    }
    return true;
}

static void final_client_init(struct sim *s)
{
    struct sim_client *c = &s->clients[s->n_clients];
    memset(c, 0, sizeof(*c));
    c->index = s->n_clients;
    c->final = true;
    c->process = 1000000;
    c->process_step = 1;
    c->target = (unsigned)prng_below(&s->rng, s->n);
    c->state = CLIENT_IDLE;
}

/* Liveness: after the heal, every pending request completes, a fresh write
 * commits and a read of every key succeeds, each within the bound. */
static void liveness(struct sim *s)
{
    int64_t bound = now_ms(s) + SIM_LIVENESS_BOUND_MS;
    struct sim_op op;
    unsigned k;
    while ((pending_requests(s) > 0 || !clients_idle(s)) && now_ms(s) < bound && !s->failed) {
        if (!step(s)) {
            return;
        }
    }
    if (s->failed) {
        return;
    }
    if (pending_requests(s) > 0) {
        char detail[800];
        cluster_detail(s, detail, sizeof(detail));
        sim_fail(s, SIM_FAIL_LIVENESS, "%u requests still pending in raft %d ms after the heal:%s",
                 pending_requests(s), SIM_LIVENESS_BOUND_MS, detail);
        return;
    }
    /* A fresh write must commit: retried until :ok, within the bound. */
    bound = now_ms(s) + SIM_LIVENESS_BOUND_MS;
    memset(&op, 0, sizeof(op));
    op.kind = OP_WRITE;
    op.key = SIM_FINAL_KEY;
    op.slot = -1;
    op.value = 1;
    record_key(s, SIM_FINAL_KEY);
    for (;;) {
        uint64_t ok_before = s->res->ops_ok;
        if (!final_op(s, &op, bound, "the fresh write after the heal")) {
            return;
        }
        if (s->res->ops_ok > ok_before) {
            break;
        }
        if (now_ms(s) >= bound) {
            sim_fail(s, SIM_FAIL_LIVENESS, "no write committed within %d ms of the heal",
                     SIM_LIVENESS_BOUND_MS);
            return;
        }
    }
    /* A read of every key, linearizable, must succeed. */
    for (k = 0; k < s->n_keys_used; k++) {
        memset(&op, 0, sizeof(op));
        op.kind = OP_READ;
        op.key = s->keys_used[k];
        op.slot = -1;
        for (;;) {
            uint64_t ok_before = s->res->ops_ok;
            if (!final_op(s, &op, bound, "a final read")) {
                return;
            }
            if (s->res->ops_ok > ok_before) {
                break;
            }
            if (now_ms(s) >= bound) {
                sim_fail(s, SIM_FAIL_LIVENESS, "the final reads did not succeed within %d ms",
                         SIM_LIVENESS_BOUND_MS);
                return;
            }
        }
    }
}

/* Convergence: every running replica applies up to the same index, then
 * holds the same key space. Stopped nodes are left out: they stopped at
 * some prefix of the log (the safety record covers what they applied). */
static bool converged(struct sim *s, raft_index *at)
{
    raft_index max_last = 0;
    unsigned i;
    for (i = 0; i < s->n; i++) {
        if (!s->nodes[i].stopped && raft_last_index(node_raft(s, i)) > max_last) {
            max_last = raft_last_index(node_raft(s, i));
        }
    }
    for (i = 0; i < s->n; i++) {
        if (!s->nodes[i].stopped && raft_last_applied(node_raft(s, i)) != max_last) {
            return false;
        }
    }
    *at = max_last;
    return true;
}

static void convergence(struct sim *s)
{
    int64_t bound = now_ms(s) + SIM_CONVERGE_BOUND_MS;
    raft_index at = 0;
    unsigned i;
    unsigned first = s->n;
    while (!converged(s, &at) && now_ms(s) < bound && !s->failed) {
        if (!step(s)) {
            return;
        }
    }
    if (s->failed) {
        return;
    }
    if (!converged(s, &at)) {
        char detail[800];
        cluster_detail(s, detail, sizeof(detail));
        sim_fail(s, SIM_FAIL_LIVENESS, "replicas did not catch up within %d ms:%s",
                 SIM_CONVERGE_BOUND_MS, detail);
        return;
    }
    for (i = 0; i < s->n; i++) {
        const struct kv *kv = &s->nodes[i].fsm.kv;
        const struct kv *ref;
        if (s->nodes[i].stopped) {
            continue;
        }
        if (first == s->n) {
            first = i;
            continue;
        }
        ref = &s->nodes[first].fsm.kv;
        if (kv->rev != ref->rev || kv_hash(kv) != kv_hash(ref)) {
            sim_fail(s, SIM_FAIL_CONVERGENCE,
                     "at index %llu n%u has revision %llu hash %016llx, n%u revision %llu hash "
                     "%016llx",
                     (unsigned long long)at, first + 1, (unsigned long long)ref->rev,
                     (unsigned long long)kv_hash(ref), i + 1, (unsigned long long)kv->rev,
                     (unsigned long long)kv_hash(kv));
            return;
        }
    }
    trace(s, "converged at index %llu, revision %llu, hash %016llx", (unsigned long long)at,
          (unsigned long long)s->nodes[first].fsm.kv.rev,
          (unsigned long long)kv_hash(&s->nodes[first].fsm.kv));
}

/* Setup and teardown */

static int setup(struct sim *s)
{
    struct raft_configuration conf;
    unsigned i;
    int rv;
    s->f = calloc(1, sizeof(*s->f));
    if (s->f == NULL) {
        return -1;
    }
    rv = raft_fixture_initialize(s->f);
    if (rv != 0) {
        return -1;
    }
    s->fixture_ready = true;
    for (i = 0; i < s->n; i++) {
        struct sim_node *n = &s->nodes[i];
        struct raft *r;
        n->sim = s;
        n->i = i;
        n->last_state = -1;
        n->waiting_tail = &n->waiting;
        if (fsm_init(&n->fsm, i + 1) != 0) {
            return -1;
        }
        n->wrap.version = 3;
        n->wrap.data = n;
        n->wrap.apply = wrap_apply;
        n->wrap.snapshot = wrap_snapshot;
        n->wrap.snapshot_async = wrap_snapshot_async;
        n->wrap.snapshot_finalize = wrap_snapshot_finalize;
        n->wrap.restore = wrap_restore;
        /* raft_init() refuses a version 3 fsm unless io->version > 1. The
         * fixture implements async_work but never sets the version; its
         * ioInit() leaves the field alone, so it is set before the server
         * is created (cairnd does the same for raft_uv, src/server.c). */
        s->f->servers[i].io.version = 2;
        rv = raft_fixture_grow(s->f, &n->wrap);
        if (rv != 0) {
            return -1;
        }
        r = node_raft(s, i);
        n->io = r->io;
        n->io_append = n->io->append;
        n->io_truncate = n->io->truncate;
        n->io_send = n->io->send;
        n->io->append = shim_append;
        n->io->truncate = shim_truncate;
        n->io->send = shim_send;
        n->net_latency_ms = SIM_NET_LATENCY_MS;
        n->disk_latency_ms = SIM_DISK_LATENCY_MS;
        raft_set_election_timeout(r, SIM_ELECTION_TIMEOUT_MS);
        raft_set_heartbeat_timeout(r, SIM_HEARTBEAT_MS);
        raft_set_install_snapshot_timeout(r, SIM_INSTALL_SNAPSHOT_TIMEOUT_MS);
        raft_set_snapshot_threshold(r, s->snapshot_threshold);
        raft_set_snapshot_trailing(r, s->snapshot_trailing);
        rv = leader_guard_init(&n->guard, r, s->opts->mutant != SIM_MUTANT_NO_GUARD);
        if (rv != 0) {
            return -1;
        }
        if (s->opts->mutant == SIM_MUTANT_NO_TRIM) {
            leader_guard_disable_trim(&n->guard);
        }
    }
    rv = raft_fixture_configuration(s->f, s->n, &conf);
    if (rv != 0) {
        return -1;
    }
    rv = raft_fixture_bootstrap(s->f, &conf);
    raft_configuration_close(&conf);
    if (rv != 0) {
        return -1;
    }
    for (i = 0; i < s->n; i++) {
        s->nodes[i].persisted = 1; /* the bootstrap configuration */
    }
    randomize_election_timeouts(s);
    rv = raft_fixture_start(s->f);
    if (rv != 0) {
        return -1;
    }
    return 0;
}

static void teardown(struct sim *s)
{
    unsigned i;
    s->closing = true;
    if (s->fixture_ready) {
        /* Closing the fixture completes pending writes through the shims
         * and guards and fails pending requests through their callbacks, so
         * all of those go after it. */
        raft_fixture_close(s->f);
    }
    for (i = 0; i < s->n; i++) {
        struct sim_node *n = &s->nodes[i];
        struct shim_append *a;
        leader_guard_close(&n->guard);
        while ((a = n->appends) != NULL) {
            n->appends = a->next;
            free(a);
        }
        /* raft_close failed the barriers; anything left was never proposed. */
        while (n->waiting != NULL) {
            struct sim_read *rr = n->waiting;
            n->waiting = rr->next;
            free(rr->payload);
            free(rr);
        }
        fsm_close(&n->fsm);
    }
    free(s->f);
    free(s->applied);
}

/* Choose the run's shape from the seed. */
static void choose(struct sim *s)
{
    unsigned k;
    s->n = s->opts->nodes != 0 ? s->opts->nodes : prng_chance(&s->rng, 50) ? 3 : 5;
    s->n_clients = (unsigned)prng_range(&s->rng, 3, SIM_CLIENTS_MAX);
    s->n_slots = (unsigned)prng_range(&s->rng, 2, SIM_KEY_SLOTS_MAX);
    s->ops_per_key = (unsigned)prng_range(&s->rng, 30, SIM_OPS_PER_KEY_MAX);
    s->fault_gap_max_ms = (unsigned)prng_range(&s->rng, 300, 2000);
    /* Small snapshot thresholds: snapshots, their installation on lagging
     * followers (Cairn's kv_capture_encode / kv_snapshot_decode) and a short
     * log, which the fixture copies at every step. */
    s->snapshot_threshold = (unsigned)prng_range(&s->rng, 8, 128);
    s->snapshot_trailing = (unsigned)prng_range(&s->rng, 2, 64);
    for (k = 0; k < FAULT_KINDS; k++) {
        /* Some runs leave some kinds out entirely. */
        s->weights[k] = prng_chance(&s->rng, 20) ? 0 : (unsigned)prng_range(&s->rng, 1, 10);
    }
    s->weights[FAULT_DISK] /= 3; /* a fail-stop is for good: rarer */
    for (k = 0; k < s->n_slots; k++) {
        s->slot_key[k] = s->next_key++;
    }
    for (k = 0; k < s->n_clients; k++) {
        struct sim_client *c = &s->clients[k];
        c->index = k;
        c->process = k;
        c->process_step = s->n_clients;
        c->target = (unsigned)prng_below(&s->rng, s->n);
        c->state = CLIENT_IDLE;
        c->next_ms = prng_range(&s->rng, 0, 500);
    }
    s->next_fault_ms = prng_range(&s->rng, 500, 3000);
    s->next_ticker_ms = SIM_TICKER_MS;
}

static int write_out(struct sim *s, const struct check_result *cr)
{
    char path[4096];
    FILE *f;
    if (mkdir(s->opts->out_dir, 0755) != 0 && errno != EEXIST) {
        return -1;
    }
    snprintf(path, sizeof(path), "%s/history.edn", s->opts->out_dir);
    f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    fwrite(s->hist_text, 1, s->hist_len, f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/check.txt", s->opts->out_dir);
    f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "seed 0x%016" PRIx64 " nodes %u mutant %s\nverdict: %s%s%s\n", s->seed, s->n,
            sim_mutant_name(s->opts->mutant), sim_verdict_name(s->res->verdict),
            s->res->what[0] != '\0' ? ": " : "", s->res->what);
    if (cr != NULL && cr->text != NULL) {
        fprintf(f, "\nregister checker:\n%s\n", cr->text);
    }
    if (cr != NULL && cr->json != NULL) {
        fprintf(f, "\n%s\n", cr->json);
    }
    fclose(f);
    return 0;
}

int sim_run(uint64_t seed, const struct sim_opts *opts, struct sim_result *out)
{
    struct sim *s;
    struct history h;
    struct check_result cr;
    struct register_opts ro;
    char errmsg[256];
    bool checked = false;
    int64_t ops_end = SIM_OPS_PHASE_MAX_MS;

    memset(out, 0, sizeof(*out));
    if (opts->nodes != 0 && opts->nodes != 3 && opts->nodes != 5) {
        snprintf(out->what, sizeof(out->what), "--nodes must be 3 or 5");
        return -1;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        out->verdict = SIM_FAIL_INTERNAL;
        snprintf(out->what, sizeof(out->what), "out of memory");
        return 0;
    }
    s->seed = seed;
    s->opts = opts;
    s->res = out;
    prng_seed(&s->rng, seed);
    sim_current = s;
    s->hist = open_memstream(&s->hist_text, &s->hist_len);
    if (s->hist == NULL) {
        free(s);
        out->verdict = SIM_FAIL_INTERNAL;
        snprintf(out->what, sizeof(out->what), "open_memstream failed");
        return 0;
    }
    choose(s);
    out->nodes = s->n;
    trace(s,
          "seed 0x%016" PRIx64 ": %u nodes, %u clients, %u key slots, %u ops per key, "
          "snapshot every %u entries keeping %u, mutant %s",
          seed, s->n, s->n_clients, s->n_slots, s->ops_per_key, s->snapshot_threshold,
          s->snapshot_trailing, sim_mutant_name(opts->mutant));
    if (setup(s) != 0) {
        sim_fail(s, SIM_FAIL_INTERNAL, "fixture setup failed");
        goto out;
    }
    final_client_init(s);
    s->issuing = true;
    /* The ops phase: until every operation was issued and answered. */
    while (!s->failed && now_ms(s) < ops_end) {
        if (s->ops_issued >= opts->ops && clients_idle(s)) {
            break;
        }
        if (!step(s)) {
            break;
        }
    }
    s->issuing = false;
    if (!s->failed) {
        heal_all(s);
        liveness(s);
    }
    if (!s->failed) {
        convergence(s);
    }
out:
    out->sim_ms = s->f != NULL ? (uint64_t)s->f->time : 0;
    for (unsigned i = 0; i < s->n; i++) {
        out->snapshots += s->nodes[i].fsm.snapshots_taken + s->nodes[i].fsm.snapshots_restored;
        out->notices += leader_guard_notices(&s->nodes[i].guard);
        out->splits += leader_guard_splits(&s->nodes[i].guard);
    }
    teardown(s);
    fclose(s->hist);
    s->hist = NULL;
    /* The history is checked even when something else failed: its verdict
     * is reported second. */
    memset(&cr, 0, sizeof(cr));
    memset(&ro, 0, sizeof(ro));
    ro.time_ms_max = 60000;
    if (history_read_text(s->hist_text, s->hist_len, &h, errmsg, sizeof(errmsg)) != 0) {
        sim_fail(s, SIM_FAIL_INTERNAL, "the simulated history does not parse: %s", errmsg);
    } else {
        if (check_register(&h, &ro, &cr, errmsg, sizeof(errmsg)) != 0) {
            sim_fail(s, SIM_FAIL_INTERNAL, "the register checker refused the history: %s", errmsg);
        } else {
            checked = true;
            if (cr.verdict != CHECK_VALID) {
                const char *nl = cr.text != NULL ? strchr(cr.text, '\n') : NULL;
                int len = cr.text == NULL ? 0
                          : nl != NULL    ? (int)(nl - cr.text)
                                          : (int)strlen(cr.text);
                sim_fail(s, SIM_FAIL_LINEARIZABLE, "register check %s: %.*s",
                         check_verdict_name(cr.verdict), len, cr.text != NULL ? cr.text : "");
            }
        }
        history_free(&h);
    }
    if (opts->out_dir != NULL && write_out(s, checked ? &cr : NULL) != 0) {
        fprintf(stderr, "cairn-sim: cannot write to %s: %s\n", opts->out_dir, strerror(errno));
    }
    if (checked) {
        check_result_free(&cr);
    }
    free(s->hist_text);
    sim_current = NULL;
    free(s);
    return 0;
}
