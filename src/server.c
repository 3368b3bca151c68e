#include "server.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "errbuf.h"
#include "http.h"
#include "log.h"
#include "membership.h"
#include "preflight.h"
#include "proto.h"
#include "session.h"
#include "transport.h"

#define TICK_MS 100
#define DRAIN_MAX_MS 1000
#define NODE_ID_FILE "cairn-node-id"
/* What --recover-members last forced, so that the flag left in place applies
 * only once (docs/operations.md). */
#define RECOVERED_FILE "cairn-recovered"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The data directory
 *
 * Checked before raft touches it, so that the operator reads "not writable"
 * or "disk full" rather than an error from deep inside raft_uv. */

static int mkdir_p(const char *path)
{
    char tmp[CONFIG_STR_MAX];
    char *p;
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

static int prepare_data_dir(const struct config *cfg, char *errmsg, size_t len)
{
    const char *dir = cfg->data_dir;
    char path[CONFIG_STR_MAX + 64];
    char block[4096];
    struct stat st;
    FILE *f;
    int fd;
    ssize_t n;
    if (mkdir_p(dir) != 0) {
        errf(errmsg, len, "data directory %s cannot be created: %s", dir, strerror(errno));
        return -1;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        errf(errmsg, len, "data directory %s is not a directory", dir);
        return -1;
    }
    /* Probe: a block written and synced proves the directory is writable and
     * the disk has room, which raft_uv needs to preallocate its segments. */
    snprintf(path, sizeof(path), "%s/.cairn-probe", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        errf(errmsg, len, "data directory %s is not writable: %s", dir, strerror(errno));
        return -1;
    }
    memset(block, 0, sizeof(block));
    n = write(fd, block, sizeof(block));
    if (n != (ssize_t)sizeof(block) || fsync(fd) != 0 ||
        posix_fallocate(fd, 0, (off_t)cfg->segment_size_bytes) != 0) {
        int e = n < 0 ? errno : ENOSPC;
        close(fd);
        unlink(path);
        errf(errmsg, len, "data directory %s: cannot write (%s)%s", dir, strerror(e),
             e == ENOSPC ? ": the disk is full" : "");
        return -1;
    }
    close(fd);
    unlink(path);
    /* The node id is written once; a data directory never changes owner. */
    snprintf(path, sizeof(path), "%s/%s", dir, NODE_ID_FILE);
    f = fopen(path, "r");
    if (f != NULL) {
        unsigned long long id = 0;
        int ok = fscanf(f, "%llu", &id) == 1;
        fclose(f);
        if (!ok) {
            errf(errmsg, len, "%s is corrupt (expected a node id)", path);
            return -1;
        }
        if (id != cfg->id) {
            errf(errmsg, len, "data directory %s belongs to node %llu, not node %llu", dir, id,
                 (unsigned long long)cfg->id);
            return -1;
        }
        return 0;
    }
    f = fopen(path, "w");
    if (f == NULL || fprintf(f, "%llu\n", (unsigned long long)cfg->id) < 0 || fflush(f) != 0 ||
        fsync(fileno(f)) != 0) {
        errf(errmsg, len, "cannot write %s: %s", path, strerror(errno));
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    fclose(f);
    return 0;
}

/* Initial membership: "ID=RAFT_ADDR/CLIENT_ADDR,..." */
/* A member list ID=RAFT_HOST:PORT/CLIENT_HOST:PORT,... given to `flag`, every
 * member a voter; it must list this node, with its own address. */
static int parse_members(struct server *s, const char *spec, const char *flag,
                         struct raft_configuration *conf, char *errmsg, size_t len)
{
    char item[600];
    bool found_self = false;
    raft_configuration_init(conf);
    while (*spec != '\0') {
        const char *comma = strchr(spec, ',');
        size_t n = comma != NULL ? (size_t)(comma - spec) : strlen(spec);
        char *eq;
        char *end;
        unsigned long long id;
        int rv;
        if (n >= sizeof(item)) {
            errf(errmsg, len, "%s: member entry too long", flag);
            return -1;
        }
        memcpy(item, spec, n);
        item[n] = '\0';
        spec += n + (comma != NULL ? 1 : 0);
        eq = strchr(item, '=');
        if (eq == NULL || strchr(eq, '/') == NULL || strchr(eq, ':') == NULL) {
            errf(errmsg, len, "%s: \"%s\" is not ID=RAFT_HOST:PORT/CLIENT_HOST:PORT", flag, item);
            return -1;
        }
        *eq = '\0';
        errno = 0;
        id = strtoull(item, &end, 10);
        if (errno != 0 || *end != '\0' || id == 0) {
            errf(errmsg, len, "%s: bad member id \"%s\"", flag, item);
            return -1;
        }
        if (id == s->cfg->id) {
            if (strcmp(eq + 1, s->address) != 0) {
                errf(errmsg, len, "%s gives node %llu the address %s, but its flags say %s", flag,
                     id, eq + 1, s->address);
                return -1;
            }
            found_self = true;
        }
        rv = raft_configuration_add(conf, id, eq + 1, RAFT_VOTER);
        if (rv != 0) {
            errf(errmsg, len, "%s: member %llu: %s", flag, id, raft_strerror(rv));
            return -1;
        }
    }
    if (!found_self) {
        errf(errmsg, len, "%s does not list this node (id %llu)", flag,
             (unsigned long long)s->cfg->id);
        return -1;
    }
    return 0;
}

static int parse_initial_cluster(struct server *s, struct raft_configuration *conf, char *errmsg,
                                 size_t len)
{
    if (s->cfg->initial_cluster[0] == '\0') {
        raft_configuration_init(conf);
        return raft_configuration_add(conf, s->cfg->id, s->address, RAFT_VOTER) == 0 ? 0 : -1;
    }
    return parse_members(s, s->cfg->initial_cluster, "--initial-cluster", conf, errmsg, len);
}

const char *server_leader_client_address(struct server *s)
{
    raft_id id = 0;
    const char *addr = NULL;
    unsigned i;
    char raft_part[256];
    raft_leader(&s->raft, &id, &addr);
    if (id == 0) {
        return NULL;
    }
    for (i = 0; i < s->raft.configuration.n; i++) {
        const struct raft_server *m = &s->raft.configuration.servers[i];
        if (m->id == id) {
            if (transport_split_address(m->address, raft_part, s->leader_client,
                                        sizeof(s->leader_client)) != 0 ||
                s->leader_client[0] == '\0') {
                return NULL;
            }
            return s->leader_client;
        }
    }
    return NULL;
}

/* Requests */

static int check_op_limits(const struct config *cfg, const struct proto_op *op, char *msg,
                           size_t len)
{
    if (op->key.len > cfg->max_key_bytes || op->after.len > cfg->max_key_bytes) {
        errf(msg, len, "key of %u bytes exceeds max_key_bytes (%llu)",
             op->key.len > op->after.len ? op->key.len : op->after.len,
             (unsigned long long)cfg->max_key_bytes);
        return CAIRN_ETOOLARGE;
    }
    if (op->value.len > cfg->max_value_bytes) {
        errf(msg, len, "value of %u bytes exceeds max_value_bytes (%llu)", op->value.len,
             (unsigned long long)cfg->max_value_bytes);
        return CAIRN_ETOOLARGE;
    }
    if ((op->type == CAIRN_OP_PUT || (op->type == CAIRN_OP_DEL && !op->prefix)) &&
        op->key.len == 0) {
        errf(msg, len, "empty key");
        return CAIRN_EINVAL;
    }
    return 0;
}

static bool slice_has_prefix(const struct proto_slice *s, const struct proto_slice *prefix)
{
    return s->len >= prefix->len && memcmp(s->ptr, prefix->ptr, prefix->len) == 0;
}

/* Whether two writes of one branch touch the same key: the same key twice,
 * or a key under a prefix the branch deletes. etcd refuses such transactions
 * ("duplicate key given in txn request"), and so do we: the outcome would
 * depend on the order of operations inside one revision. */
static bool writes_overlap(const struct proto_op *a, const struct proto_op *b)
{
    if (a->type == CAIRN_OP_GET || b->type == CAIRN_OP_GET) {
        return false;
    }
    if (a->type == CAIRN_OP_DEL && a->prefix) {
        return slice_has_prefix(&b->key, &a->key);
    }
    if (b->type == CAIRN_OP_DEL && b->prefix) {
        return slice_has_prefix(&a->key, &b->key);
    }
    return a->key.len == b->key.len && memcmp(a->key.ptr, b->key.ptr, a->key.len) == 0;
}

static int check_branch_overlap(const struct proto_op *ops, uint32_t n, char *msg, size_t len)
{
    uint32_t i;
    uint32_t j;
    for (i = 0; i < n; i++) {
        for (j = i + 1; j < n; j++) {
            if (writes_overlap(&ops[i], &ops[j])) {
                errf(msg, len, "a transaction branch writes key \"%.*s\" twice",
                     (int)(ops[j].key.len > 200 ? 200 : ops[j].key.len), ops[j].key.ptr);
                return CAIRN_EINVAL;
            }
        }
    }
    return 0;
}

/* A retention policy request, checked against the leader's applied table:
 * the key space checks the count and existence again when the entry applies
 * (deterministically on every node), but only here can the refusal say why. */
static int check_retention(const struct config *cfg, const struct kv *kv,
                           const struct proto_request *req, char *msg, size_t len)
{
    const struct proto_slice *prefix = &req->op.key;
    bool removal = req->number == 0 && req->age_ms == 0;
    int shown = (int)(prefix->len > 200 ? 200 : prefix->len);
    if (prefix->len > cfg->max_key_bytes) {
        errf(msg, len, "retention prefix of %u bytes exceeds max_key_bytes (%llu)", prefix->len,
             (unsigned long long)cfg->max_key_bytes);
        return CAIRN_ETOOLARGE;
    }
    if (req->number > UINT32_MAX) {
        errf(msg, len, "retention keeps at most %lu versions of a key", (unsigned long)UINT32_MAX);
        return CAIRN_EINVAL;
    }
    if (prefix->len == 0 || kv_retention_find(kv, prefix->ptr, prefix->len) != NULL) {
        return 0;
    }
    if (removal) {
        errf(msg, len, "no retention policy for prefix \"%.*s\"", shown, prefix->ptr);
        return CAIRN_ENOTFOUND;
    }
    if (kv->n_policies >= KV_RETENTION_POLICIES_MAX) {
        errf(msg, len,
             "the cluster already holds %d retention policies, the most it keeps; "
             "remove one first",
             KV_RETENTION_POLICIES_MAX);
        return CAIRN_ETOOLARGE;
    }
    return 0;
}

static int check_limits(const struct config *cfg, const struct kv *kv,
                        const struct proto_request *req, char *msg, size_t len)
{
    uint32_t i;
    int rv;
    if (req->type == PROTO_TXN) {
        if (req->n_cmps > cfg->max_txn_ops || req->n_then > cfg->max_txn_ops ||
            req->n_else > cfg->max_txn_ops) {
            errf(msg, len, "transaction has more than max_txn_ops (%llu) compares or operations",
                 (unsigned long long)cfg->max_txn_ops);
            return CAIRN_ETOOLARGE;
        }
        for (i = 0; i < req->n_cmps; i++) {
            if (req->cmps[i].key.len > cfg->max_key_bytes ||
                req->cmps[i].value.len > cfg->max_value_bytes) {
                errf(msg, len,
                     "compare key or value exceeds max_key_bytes (%llu) or "
                     "max_value_bytes (%llu)",
                     (unsigned long long)cfg->max_key_bytes,
                     (unsigned long long)cfg->max_value_bytes);
                return CAIRN_ETOOLARGE;
            }
        }
        for (i = 0; i < req->n_then; i++) {
            if ((rv = check_op_limits(cfg, &req->then_ops[i], msg, len)) != 0) {
                return rv;
            }
        }
        for (i = 0; i < req->n_else; i++) {
            if ((rv = check_op_limits(cfg, &req->else_ops[i], msg, len)) != 0) {
                return rv;
            }
        }
        if ((rv = check_branch_overlap(req->then_ops, req->n_then, msg, len)) != 0) {
            return rv;
        }
        return check_branch_overlap(req->else_ops, req->n_else, msg, len);
    }
    if (req->type == PROTO_WATCH) {
        return check_op_limits(cfg, &req->op, msg, len);
    }
    if (req->type == PROTO_PUT || req->type == PROTO_DEL || req->type == PROTO_GET ||
        req->type == PROTO_HISTORY) {
        uint8_t expect = req->type == PROTO_PUT   ? CAIRN_OP_PUT
                         : req->type == PROTO_DEL ? CAIRN_OP_DEL
                                                  : CAIRN_OP_GET;
        if (req->type != PROTO_HISTORY && req->op.type != expect) {
            errf(msg, len, "operation type does not match request type");
            return CAIRN_EMALFORMED;
        }
        return check_op_limits(cfg, &req->op, msg, len);
    }
    if (req->type == PROTO_RETENTION) {
        return check_retention(cfg, kv, req, msg, len);
    }
    return 0;
}

static const char *state_name(int state)
{
    switch (state) {
        case RAFT_LEADER:
            return "leader";
        case RAFT_FOLLOWER:
            return "follower";
        case RAFT_CANDIDATE:
            return "candidate";
        default:
            return "unavailable";
    }
}

static const char *role_name(int role)
{
    return role == RAFT_VOTER ? "voter" : role == RAFT_STANDBY ? "standby" : "spare";
}

static int answer_status(struct server *s, struct session *session, const struct proto_request *req)
{
    struct cairn_status st;
    struct cairn_member *members;
    char(*parts)[2][256]; /* each member's raft and client address */
    struct proto_writer w;
    struct proto_response_head h;
    const char *leader = server_leader_client_address(s);
    raft_id leader_id = 0;
    const char *leader_raft = NULL;
    const struct kv *kv = &s->fsm.kv;
    struct cairn_retention *retention;
    unsigned i;
    /* Up to KV_RETENTION_POLICIES_MAX of them: too many for the stack. */
    /* Every member, however many (membership.c grows the configuration):
     * the heap, not the stack. */
    retention = cairn_malloc(kv->n_policies * sizeof(*retention));
    members = cairn_malloc((s->raft.configuration.n + 1) * sizeof(*members));
    parts = cairn_malloc((s->raft.configuration.n + 1) * sizeof(*parts));
    if (retention == NULL || members == NULL || parts == NULL) {
        cairn_free(retention);
        cairn_free(members);
        cairn_free(parts);
        session_send_error(session, req->id, req->type, CAIRN_ENOMEM, NULL, NULL);
        return CAIRN_ENOMEM;
    }
    for (i = 0; i < kv->n_policies; i++) {
        retention[i].prefix = kv->policies[i].prefix != NULL ? kv->policies[i].prefix : "";
        retention[i].prefix_len = kv->policies[i].prefix_len;
        retention[i].versions = kv->policies[i].max_versions;
        retention[i].age_ms = kv->policies[i].max_age_ms;
    }
    memset(&st, 0, sizeof(st));
    st.retention = retention;
    st.n_retention = kv->n_policies;
    raft_leader(&s->raft, &leader_id, &leader_raft);
    st.id = s->cfg->id;
    st.state = state_name(raft_state(&s->raft));
    st.leader_id = leader_id;
    st.leader_address = leader != NULL ? leader : "";
    st.term = s->raft.current_term;
    st.commit_index = s->raft.commit_index;
    st.applied_index = raft_last_applied(&s->raft);
    st.last_index = raft_last_index(&s->raft);
    st.revision = s->fsm.kv.rev;
    st.compact_revision = s->fsm.kv.compact_rev;
    st.keys = s->fsm.kv.live_keys;
    st.bytes = s->fsm.kv.value_bytes;
    st.retain_versions = kv->policies[0].max_versions; /* the policy for "" */
    st.snapshots = s->fsm.snapshots_taken;
    st.read_barriers = s->reads.barriers;
    st.linearizable_reads = s->reads.served;
    st.watchers = watch_hub_count(&s->hub);
    st.watch_events = s->hub.events_sent;
    st.watch_catchups = s->hub.catchups;
    st.watch_snapshots = s->hub.snapshots;
    st.state_hash = kv_hash(&s->fsm.kv);
    st.cluster_id = s->fsm.kv.cluster_id;
    st.restored_as = s->restored_as;
    st.http_address = s->cfg->http_addr;
    for (i = 0; i < s->raft.configuration.n; i++) {
        const struct raft_server *m = &s->raft.configuration.servers[i];
        parts[i][0][0] = parts[i][1][0] = '\0';
        transport_split_address(m->address, parts[i][0], parts[i][1], sizeof(parts[i][0]));
        members[i].id = m->id;
        members[i].raft_address = parts[i][0];
        members[i].client_address = parts[i][1];
        members[i].role = role_name(m->role);
    }
    st.members = members;
    st.n_members = i;
    memset(&h, 0, sizeof(h));
    h.id = req->id;
    h.type = req->type;
    h.revision = s->fsm.kv.rev;
    h.compact_revision = s->fsm.kv.compact_rev;
    h.succeeded = true;
    proto_writer_begin(&w, session_output(session));
    proto_pack_response_head(&w, &h);
    proto_pack_status(&w, &st);
    proto_writer_end(&w);
    session_output_done(session);
    cairn_free(retention);
    cairn_free(members);
    cairn_free(parts);
    return 0;
}

/* The node's metrics as Prometheus text (node_metrics.h); any node answers,
 * in any state, like status. */
static int answer_metrics(struct server *s, struct session *session,
                          const struct proto_request *req)
{
    struct buf text;
    int rv;
    buf_init(&text);
    rv = node_metrics_render(s, &text);
    if (rv == 0) {
        rv = proto_encode_metrics(session_output(session), req->id, s->fsm.kv.rev, text.data,
                                  text.len);
    }
    buf_free(&text);
    if (rv != 0) {
        session_send_error(session, req->id, req->type, rv, "no memory for the metrics", NULL);
        return rv;
    }
    session_output_done(session);
    return 0;
}

struct write_req
{
    struct raft_apply apply;
    struct server *srv;
    struct session *session; /* referenced */
    uint64_t id;
    uint8_t type;
    uint8_t metrics_op;  /* enum node_metrics_op */
    uint64_t receipt_ns; /* when the request arrived (metrics_now_ns) */
};

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct write_req *wr = req->data;
    struct session *session = wr->session;
    struct buf *reply = result;
    int code = status != 0                        ? CAIRN_EUNKNOWN
               : reply == NULL || reply->len == 0 ? CAIRN_EINTERNAL
                                                  : wr->srv->fsm.reply_code;
    wr->srv->writes_in_flight--;
    node_metrics_request(&wr->srv->metrics, wr->metrics_op, code, wr->receipt_ns);
    if (session_is_open(session)) {
        if (status != 0) {
            /* raft reports the proposal lost (leadership lost, shutdown):
             * the entry may still commit under the next leader. */
            char msg[200];
            snprintf(msg, sizeof(msg),
                     "%s before the write was known to commit: it may or may not have been "
                     "applied",
                     raft_strerror(status));
            session_send_error(session, wr->id, wr->type, CAIRN_EUNKNOWN, msg, NULL);
        } else if (reply == NULL || reply->len == 0) {
            session_send_error(session, wr->id, wr->type, CAIRN_EINTERNAL,
                               "applied, but the response could not be built", NULL);
        } else {
            buf_append(session_output(session), reply->data, reply->len);
            session_output_done(session);
        }
    }
    session_unref(session);
    cairn_free(wr);
}

/* Propose a write. Returns 0 when proposed (apply_cb answers and counts
 * it), else the code answered now. */
static int propose(struct server *s, struct session *session, const struct proto_request *req,
                   const char *payload, size_t len, uint64_t receipt_ns)
{
    struct write_req *wr = cairn_calloc(1, sizeof(*wr));
    struct raft_buffer entry;
    int code;
    int rv;
    if (wr == NULL || fsm_encode_entry(s->cfg->id, now_ms(), payload, len, &entry) != 0) {
        cairn_free(wr);
        session_send_error(session, req->id, req->type, CAIRN_ENOMEM, NULL, NULL);
        return CAIRN_ENOMEM;
    }
    wr->srv = s;
    wr->session = session;
    wr->id = req->id;
    wr->type = req->type;
    wr->metrics_op = node_metrics_op(req);
    wr->receipt_ns = receipt_ns;
    wr->apply.data = wr;
    rv = raft_apply(&s->raft, &wr->apply, &entry, 1, apply_cb);
    if (rv != 0) {
        /* Not proposed at all: certainly not applied. */
        raft_free(entry.base);
        cairn_free(wr);
        code = rv == RAFT_NOTLEADER ? CAIRN_ENOTLEADER : CAIRN_EBUSY;
        session_send_error(session, req->id, req->type, code, raft_strerror(rv),
                           server_leader_client_address(s));
        return code;
    }
    session_ref(session);
    s->writes_in_flight++;
    return 0;
}

int server_redirect(struct server *s, struct session *session, const struct proto_request *req)
{
    const char *leader = server_leader_client_address(s);
    if (leader == NULL) {
        session_send_error(session, req->id, req->type, CAIRN_ENOLEADER,
                           "no leader known: the cluster is electing one or has lost its majority",
                           NULL);
        return CAIRN_ENOLEADER;
    }
    session_send_error(session, req->id, req->type, CAIRN_ENOTLEADER, "not the leader", leader);
    return CAIRN_ENOTLEADER;
}

static int answer_local_read(struct server *s, struct session *session,
                             const struct proto_request *req)
{
    struct proto_writer w;
    struct buf *out = session_output(session);
    size_t mark = out->len;
    int rv;
    proto_writer_begin(&w, out);
    rv = kv_read(&s->fsm.kv, req, &w);
    if (rv == 0) {
        rv = proto_writer_end(&w);
    }
    if (rv != 0) {
        out->len = mark;
        session_send_error(session, req->id, req->type, rv, NULL, NULL);
        return rv;
    }
    session_output_done(session);
    return 0;
}

/* Staleness (docs/operations.md, "Max staleness")
 *
 * A leader is never stale: it is the one that decides what is committed (a
 * leader cut off from its majority believes so for up to an election
 * timeout, after which raft makes it step down). A follower or standby is
 * fresh as of the last message from the current leader (AppendEntries,
 * heartbeat or InstallSnapshot) whose commit index it has applied: at that
 * moment it had everything the leader had committed. The leader guard,
 * which sees every message raft receives, keeps each one's time and commit
 * index until this node has applied that commit (leader_guard.h; messages
 * read together count as one, with the highest commit, so that heartbeats
 * queued while the node was paused do not count as fresh when it resumes).
 * The follower's own commit index would not do: raft 0.15
 * raises it only to what the follower has stored, so a follower whose log
 * the leader is still repairing, or that is installing a snapshot, would
 * look caught up. A node applying a backlog keeps the time at which it was
 * last caught up. A node that knows no leader (a candidate, or a follower
 * during an election) has no bound. Raft's clock is the loop's (raft_uv's
 * time is uv_now). */

/* Move the freshness point to the newest contact from the leader whose
 * commit index this node has applied. Called on every staleness check, every
 * applied entry and every tick, so that under a stream of writes (where each
 * message carries a commit the node has not applied yet when it arrives) the
 * point still follows the node's progress. */
static void note_fresh(struct server *s)
{
    uint64_t contact_ms;
    if (leader_guard_fresh_since(&s->guard, raft_last_applied(&s->raft), &contact_ms) &&
        (!s->fresh_known || contact_ms > s->fresh_ms)) {
        s->fresh_ms = contact_ms;
        s->fresh_known = true;
    }
}

/* How stale this node may be, in ms; UINT64_MAX when there is no bound. */
static uint64_t staleness_ms(struct server *s)
{
    raft_id leader = 0;
    const char *addr = NULL;
    uint64_t now;
    int state = raft_state(&s->raft);
    if (state == RAFT_LEADER) {
        return 0;
    }
    raft_leader(&s->raft, &leader, &addr);
    if (state != RAFT_FOLLOWER || leader == 0) {
        return UINT64_MAX;
    }
    note_fresh(s);
    if (!s->fresh_known) {
        return UINT64_MAX;
    }
    now = s->raft.io->time(s->raft.io);
    return now > s->fresh_ms ? now - s->fresh_ms : 0;
}

/* A read answered by this node without the leader: a stale read, or one
 * with a min_revision (which implies it). It is refused when this node is
 * staler than max_staleness_ms, parked when min_revision is not applied
 * yet, and otherwise answered at once. Returns the code answered now (0
 * with *later set when reads.c answers and counts it). */
static int local_read(struct server *s, struct session *session, const struct proto_request *req,
                      const char *payload, size_t len, uint8_t op, uint64_t receipt_ns, bool *later)
{
    uint64_t wait_ms;
    if (req->max_staleness_ms > 0) {
        uint64_t staleness = staleness_ms(s);
        if (staleness > req->max_staleness_ms) {
            char msg[256];
            raft_id leader = 0;
            const char *addr = NULL;
            raft_leader(&s->raft, &leader, &addr);
            if (staleness == UINT64_MAX) {
                snprintf(msg, sizeof(msg),
                         "node %llu (%s) %s, so how stale it is has no bound; the read asks for "
                         "at most %llu ms: ask another node",
                         (unsigned long long)s->cfg->id, state_name(raft_state(&s->raft)),
                         leader == 0 ? "knows no leader" : "has not caught up since it started",
                         (unsigned long long)req->max_staleness_ms);
            } else {
                snprintf(msg, sizeof(msg),
                         "node %llu was last up to date with leader %llu %llu ms ago; the read "
                         "asks for at most %llu ms: ask another node",
                         (unsigned long long)s->cfg->id, (unsigned long long)leader,
                         (unsigned long long)staleness, (unsigned long long)req->max_staleness_ms);
            }
            session_send_error(session, req->id, req->type, CAIRN_ESTALE, msg,
                               server_leader_client_address(s));
            return CAIRN_ESTALE;
        }
    }
    if (req->min_revision > s->fsm.kv.rev) {
        /* Revisions are not raft indexes (barriers, sweeps and membership
         * entries take indexes but no revision; a restored cluster starts
         * at a high revision), so no node can tell a revision that is on
         * its way from one that will never come: it waits, bounded. */
        wait_ms = s->cfg->read_wait_max_ms;
        if (req->wait_ms > 0 && req->wait_ms < wait_ms) {
            wait_ms = req->wait_ms;
        }
        reads_park(&s->reads, session, payload, len, req->id, req->type, op, receipt_ns,
                   req->min_revision, wait_ms);
        *later = true;
        return 0;
    }
    return answer_local_read(s, session, req);
}

static void server_advanced(void *data)
{
    struct server *s = data;
    reads_applied(&s->reads);
    /* raft counts the entry applied only after this returns: errs stale. */
    note_fresh(s);
}

void server_handle_request(struct server *s, struct session *session, const char *payload,
                           size_t len)
{
    uint64_t receipt_ns = metrics_now_ns();
    uint8_t op = NODE_OP_INVALID;
    bool later = false; /* answered, and counted, by reads.c or apply_cb */
    struct arena a;
    struct proto_request req;
    char msg[256];
    bool leader;
    int rv;
    arena_init(&a);
    rv = proto_decode_request(payload, len, &a, &req);
    if (rv == CAIRN_ENOMEM) {
        /* The frame was fine and is consumed; the connection stays usable. */
        session_send_error(session, req.id, req.type, rv,
                           "out of memory decoding the request; not applied", NULL);
        goto out;
    }
    if (rv != 0) {
        session_send_error(session, req.id, req.type, rv,
                           rv == CAIRN_EVERSION ? "unsupported protocol version; closing"
                                                : "request does not decode; closing",
                           NULL);
        session_close_after_flush(session);
        goto out;
    }
    op = node_metrics_op(&req);
    msg[0] = '\0';
    rv = check_limits(s->cfg, &s->fsm.kv, &req, msg, sizeof(msg));
    if (rv != 0) {
        session_send_error(session, req.id, req.type, rv, msg, NULL);
        goto out;
    }
    if (s->state == SERVER_LINGERING && req.type != PROTO_STATUS && req.type != PROTO_METRICS &&
        raft_state(&s->raft) != RAFT_LEADER && server_leader_client_address(s) != NULL) {
        /* Handed over: send the client to the new leader (nothing applied). */
        rv = server_redirect(s, session, &req);
        goto out;
    }
    if (s->state != SERVER_RUNNING && req.type != PROTO_STATUS && req.type != PROTO_METRICS) {
        rv = CAIRN_ESHUTDOWN;
        session_send_error(session, req.id, req.type, rv,
                           "node is shutting down; the request was not applied", NULL);
        goto out;
    }
    leader = raft_state(&s->raft) == RAFT_LEADER;
    switch (req.type) {
        case PROTO_WATCH:
        case PROTO_WATCH_CANCEL:
        case PROTO_PROGRESS:
            /* Any node serves watches, from its applied state. */
            rv = watch_hub_handle(&s->hub, session, &req);
            break;
        case PROTO_STATUS:
            rv = answer_status(s, session, &req);
            break;
        case PROTO_METRICS:
            rv = answer_metrics(s, session, &req);
            break;
        case PROTO_BACKUP:
            /* The leader is responsible for backups (src/dr.h). */
            if (leader) {
                dr_handle(&s->dr, session, &req);
            } else {
                rv = server_redirect(s, session, &req);
            }
            break;
        case PROTO_MEMBER:
        case PROTO_TRANSFER:
            /* Changes and transfers are the leader's; any node lists. */
            rv = membership_handle(&s->members, session, &req);
            break;
        case PROTO_INIT:
            rv = CAIRN_EINVAL;
            session_send_error(session, req.id, req.type, rv,
                               "INIT is proposed by the leader, not by clients", NULL);
            break;
        case PROTO_GET:
        case PROTO_HISTORY:
            if (req.op.stale || req.min_revision > 0) {
                rv = local_read(s, session, &req, payload, len, op, receipt_ns, &later);
            } else if (leader) {
                reads_submit(&s->reads, session, payload, len, req.id, req.type, op, receipt_ns);
                later = true;
            } else {
                rv = server_redirect(s, session, &req);
            }
            break;
        case PROTO_TXN:
            if (kv_txn_is_read_only(&req)) {
                if (req.op.stale || req.min_revision > 0) {
                    rv = local_read(s, session, &req, payload, len, op, receipt_ns, &later);
                } else if (leader) {
                    reads_submit(&s->reads, session, payload, len, req.id, req.type, op,
                                 receipt_ns);
                    later = true;
                } else {
                    rv = server_redirect(s, session, &req);
                }
                break;
            }
            /* A transaction that writes is proposed like any write. */
            __attribute__((fallthrough));
        default:
            if (leader) {
                rv = propose(s, session, &req, payload, len, receipt_ns);
                later = rv == 0;
            } else {
                rv = server_redirect(s, session, &req);
            }
            break;
    }
out:
    if (!later) {
        node_metrics_request(&s->metrics, op, rv, receipt_ns);
    }
    arena_free(&a);
}

/* Handles */

static void flush_cb(uv_check_t *h)
{
    struct server *s = h->data;
    /* Commit notices first: a client acknowledged below may read from a
     * follower at once. */
    leader_guard_turn_end(&s->guard);
    while (s->dirty != NULL) {
        struct session *session = s->dirty;
        s->dirty = session->dirty_next;
        session->dirty = false;
        session_flush(session);
        session_unref(session);
    }
}

/* Retention sweeps
 *
 * Age limits discard history as time passes, but the key space never reads a
 * clock: it trims by the time stamped in the entry it applies, so that every
 * replica trims alike. Keys nobody writes would then keep expired versions
 * for ever; so while some policy has an age limit, the leader proposes a
 * PROTO_SWEEP entry every retention_sweep_ms. One at a time: a slow commit
 * never queues more, and a lost one is simply followed by the next. */

static void sweep_cb(struct raft_apply *req, int status, void *result)
{
    struct server *s = req->data;
    (void)result;
    s->sweep_in_flight = false;
    if (status != 0) {
        log_info("retention sweep not committed (%s); the next one follows", raft_strerror(status));
    }
}

/* Propose an entry the leader makes itself (no client waits for it).
 * Returns 0 or a raft / CAIRN_E* code. */
static int propose_internal(struct server *s, const struct proto_request *req,
                            struct raft_apply *apply, raft_apply_cb cb)
{
    struct buf frame;
    struct raft_buffer entry;
    int rv;
    buf_init(&frame);
    rv = proto_encode_request(&frame, req);
    if (rv == 0) {
        rv = fsm_encode_entry(s->cfg->id, now_ms(), frame.data + PROTO_FRAME_HEADER_SIZE,
                              frame.len - PROTO_FRAME_HEADER_SIZE, &entry);
    }
    buf_free(&frame);
    if (rv != 0) {
        return rv;
    }
    apply->data = s;
    rv = raft_apply(&s->raft, apply, &entry, 1, cb);
    if (rv != 0) {
        raft_free(entry.base);
    }
    return rv;
}

static void propose_sweep(struct server *s)
{
    struct proto_request req;
    uint64_t now = uv_now(s->loop);
    int rv;
    if (s->cfg->retention_sweep_ms == 0 || s->sweep_in_flight || s->state != SERVER_RUNNING ||
        raft_state(&s->raft) != RAFT_LEADER || s->fsm.kv.n_aged_policies == 0 ||
        now - s->last_sweep_ms < s->cfg->retention_sweep_ms) {
        return;
    }
    s->last_sweep_ms = now;
    memset(&req, 0, sizeof(req));
    req.type = PROTO_SWEEP;
    rv = propose_internal(s, &req, &s->sweep, sweep_cb);
    if (rv != 0) {
        log_warn("retention sweep not proposed (%s); trying again in %llu ms",
                 rv < 0 ? cairn_strerror(rv) : raft_strerror(rv),
                 (unsigned long long)s->cfg->retention_sweep_ms);
        return;
    }
    s->sweep_in_flight = true;
}

/* Disaster recovery (src/dr.h). */

static void fsm_applied_hook(void *data, uint64_t index, int64_t time_ms, const char *entry,
                             size_t len)
{
    dr_entry_applied(data, index, time_ms, entry, len);
}

static void fsm_replaced_hook(void *data)
{
    dr_state_replaced(data);
}

static void fsm_before_snapshot_hook(void *data)
{
    dr_before_raft_snapshot(data);
}

/* A file of the data directory. */
static void data_path(const struct config *cfg, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", cfg->data_dir, name);
}

/* True when the data directory holds nothing of a node yet. */
static bool data_dir_is_fresh(const struct config *cfg)
{
    char path[CONFIG_STR_MAX + 64];
    struct stat st;
    data_path(cfg, NODE_ID_FILE, path, sizeof(path));
    if (stat(path, &st) == 0) {
        return false;
    }
    data_path(cfg, DR_SEED_FILE, path, sizeof(path));
    return stat(path, &st) != 0;
}

/* What --restore-from asks for, as one line. cairnd keeps it in
 * RESTORE_PENDING_FILE from before its restore until raft has bootstrapped
 * on the result: a start that failed in between (a port in use, a peer that
 * refused the restore point, a crash) leaves a seed that no node ever ran,
 * which the next start may replace instead of taking for this node's data. */
#define RESTORE_PENDING_FILE "restore-pending"

static void restore_target(const struct config *cfg, char *buf, size_t len)
{
    snprintf(buf, len, "from=%s revision=%llu time=%s cluster=%s", cfg->restore_from,
             (unsigned long long)cfg->restore_revision, cfg->restore_time, cfg->restore_cluster);
}

/* The seed and what goes with it, when the restore never ran. */
static void unlink_restore(const struct config *cfg)
{
    char path[CONFIG_STR_MAX + 64];
    data_path(cfg, DR_SEED_FILE, path, sizeof(path));
    unlink(path);
    data_path(cfg, DR_RESTORED_AS_FILE, path, sizeof(path));
    unlink(path);
    data_path(cfg, RESTORE_PENDING_FILE, path, sizeof(path));
    unlink(path);
}

static int write_restore_pending(const struct config *cfg, char *errmsg, size_t len)
{
    char path[CONFIG_STR_MAX + 64];
    char line[3 * CONFIG_STR_MAX + 64];
    FILE *f;
    if (mkdir_p(cfg->data_dir) != 0) {
        errf(errmsg, len, "data directory %s cannot be created: %s", cfg->data_dir,
             strerror(errno));
        return -1;
    }
    data_path(cfg, RESTORE_PENDING_FILE, path, sizeof(path));
    restore_target(cfg, line, sizeof(line));
    f = fopen(path, "w");
    if (f == NULL || fprintf(f, "%s\n", line) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        errf(errmsg, len, "%s: %s", path, strerror(errno));
        if (f != NULL) {
            fclose(f);
        }
        unlink(path);
        return -1;
    }
    fclose(f);
    return 0;
}

/* Whether raft has bootstrapped in the data directory (its metadata files). */
static bool raft_has_data(const struct config *cfg)
{
    char path[CONFIG_STR_MAX + 64];
    struct stat st;
    data_path(cfg, "metadata1", path, sizeof(path));
    if (stat(path, &st) == 0) {
        return true;
    }
    data_path(cfg, "metadata2", path, sizeof(path));
    return stat(path, &st) == 0;
}

/* True, with the target in buf, when the data directory holds a restore of
 * an earlier start that raft never bootstrapped on. A marker that raft's own
 * files outlived (a crash right after the bootstrap) is removed. */
static bool restore_pending(const struct config *cfg, char *buf, size_t len)
{
    char path[CONFIG_STR_MAX + 64];
    FILE *f;
    data_path(cfg, RESTORE_PENDING_FILE, path, sizeof(path));
    f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    if (fgets(buf, (int)len, f) == NULL) {
        buf[0] = '\0';
    }
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    if (raft_has_data(cfg)) {
        data_path(cfg, RESTORE_PENDING_FILE, path, sizeof(path));
        unlink(path);
        return false;
    }
    return true;
}

/* A node about to bootstrap from --initial-cluster on an empty data
 * directory asks the other members listed whether a cluster of them already
 * holds data with this node as a voter. If one does, this node's data was
 * lost (a wiped or replaced disk): rejoining as if nothing happened would
 * let it vote with an empty log and count towards majorities for entries it
 * no longer has, which can lose acknowledged writes. So it refuses, and says
 * what to do. A member that does not answer is skipped: at a cluster's
 * first start the others are not up yet, or hold no data.
 *
 * A node just restored from object storage (restored_id, its new cluster
 * id) asks instead whether they serve a cluster with another id in which it
 * is a member: its state then is not their base (another restore point, as
 * when the store's newest point has moved on since they were restored), and
 * their log would be replayed onto the wrong state. */
#define LOST_CHECK_TIMEOUT_MS 1500
#define LOST_CHECK_CONNECT_MS 300

static bool lists_member(const struct cairn_status *st, raft_id id, bool voter_only)
{
    size_t k;
    for (k = 0; k < st->n_members; k++) {
        if (st->members[k].id == id && (!voter_only || strcmp(st->members[k].role, "voter") == 0)) {
            return true;
        }
    }
    return false;
}

static int check_peers(struct server *s, uint64_t restored_id, uint64_t restored_rev, char *errmsg,
                       size_t len)
{
    const struct config *cfg = s->cfg;
    unsigned long long me = (unsigned long long)cfg->id;
    struct raft_configuration conf;
    struct cairn_options opts;
    unsigned i;
    int refused = 0;
    if (parse_initial_cluster(s, &conf, errmsg, len) != 0) {
        raft_configuration_close(&conf);
        return -1;
    }
    memset(&opts, 0, sizeof(opts));
    opts.timeout_ms = LOST_CHECK_TIMEOUT_MS;
    opts.connect_timeout_ms = LOST_CHECK_CONNECT_MS;
    for (i = 0; i < conf.n && !refused; i++) {
        const struct raft_server *m = &conf.servers[i];
        char raft_part[CONFIG_STR_MAX];
        char client_part[CONFIG_STR_MAX];
        struct cairn_status *st = NULL;
        cairn_client *c;
        if (m->id == cfg->id ||
            transport_split_address(m->address, raft_part, client_part, sizeof(raft_part)) != 0) {
            continue;
        }
        c = cairn_client_new(client_part, &opts, NULL);
        if (c == NULL || cairn_status(c, client_part, &st) != 0) {
            cairn_client_free(c);
            continue;
        }
        if (restored_id != 0) {
            /* 0: a node that has no id yet, or predates reporting it. */
            /* A peer of the same restore may have named the cluster
             * already: it still reports the provisional id. */
            if (st->cluster_id != 0 && st->cluster_id != restored_id &&
                st->restored_as != restored_id && lists_member(st, cfg->id, false)) {
                errf(errmsg, len,
                     "%s was restored as cluster %016" PRIx64 " (revision %llu), but node %llu "
                     "(%s) serves cluster %016" PRIx64 " in which node %llu is a member: not "
                     "the same restore point (has the store's newest point moved on since "
                     "they were restored?), so their log cannot apply to this state. If the "
                     "cluster runs and this node's data was lost: remove it (cairnctl member "
                     "remove %llu), then start it empty with --join 1 and no --restore-from, "
                     "and add it again (docs/operations.md, \"Replacing a dead node\"). If "
                     "every member is being restored now: restore them all to the same point "
                     "(cairnd --restore-revision or --restore-time; cairnctl snapshot restore "
                     "--revision or --time)",
                     cfg->data_dir, restored_id, (unsigned long long)restored_rev,
                     (unsigned long long)st->id, client_part, st->cluster_id, me, me);
                refused = 1;
            } else if (st->cluster_id == 0 && st->revision == 0 && restored_rev > 0 &&
                       lists_member(st, cfg->id, false)) {
                /* A member with nothing, bootstrapped with this node in its
                 * configuration: one started without --restore-from. Raft
                 * would give it the log without the restored state. */
                errf(errmsg, len,
                     "%s was restored (revision %llu), but node %llu (%s), a member of the "
                     "same --initial-cluster, serves an empty state: it was started without "
                     "--restore-from, and would replay the cluster's log onto nothing. Stop "
                     "it, empty its data directory and start it with the same --restore-from "
                     "as this node; then start this node again",
                     cfg->data_dir, (unsigned long long)restored_rev, (unsigned long long)st->id,
                     client_part);
                refused = 1;
            }
        } else if (st->revision > 0 && st->cluster_id != 0 && st->state != NULL &&
                   strcmp(st->state, "starting") == 0 && lists_member(st, cfg->id, true)) {
            /* A peer restored from a backup that starts at this same moment
             * (preflight.h): this node would bootstrap empty beside it. */
            errf(errmsg, len,
                 "%s is empty, but node %llu (%s) is starting restored from a backup "
                 "(cluster %016" PRIx64 ", revision %llu) with node %llu in its "
                 "--initial-cluster: this node was started without --restore-from, and would "
                 "replay the cluster's log onto nothing. Start it with the same --restore-from "
                 "as the other members",
                 cfg->data_dir, (unsigned long long)st->id, client_part, st->cluster_id,
                 (unsigned long long)st->revision, me);
            refused = 1;
        } else if (st->revision > 0 && lists_member(st, cfg->id, true)) {
            /* Revision 0: the cluster took no writes yet, so nothing can be
             * lost. */
            errf(errmsg, len,
                 "%s is empty, but node %llu (%s) serves a cluster at revision %llu in "
                 "which node %llu is a voter: this node's data was lost, and rejoining "
                 "empty could lose acknowledged writes. Remove it first (cairnctl member "
                 "remove %llu), then start it with --join 1 and add it again "
                 "(docs/operations.md, \"Replacing a dead node\"); the same steps if it never "
                 "ran before and starts after the others took writes",
                 cfg->data_dir, (unsigned long long)st->id, client_part,
                 (unsigned long long)st->revision, me, me);
            refused = 1;
        }
        cairn_status_free(st);
        cairn_client_free(c);
    }
    raft_configuration_close(&conf);
    return refused ? -1 : 0;
}

/* --recover-members: after losing a majority for good, force a new
 * configuration onto this node's log (raft_recover appends it), so that the
 * survivors it lists can elect a leader again. Runs between raft_init and
 * raft_start. The same list is applied once: a restart with the flag still
 * given would otherwise undo every membership change made since. */
static int recover_members(struct server *s, char *errmsg, size_t len)
{
    const struct config *cfg = s->cfg;
    struct raft_configuration conf;
    char path[CONFIG_STR_MAX + 64];
    char done[CONFIG_STR_MAX + 2];
    size_t n = 0;
    FILE *f;
    int rv;
    snprintf(path, sizeof(path), "%s/%s", cfg->data_dir, RECOVERED_FILE);
    f = fopen(path, "r");
    if (f != NULL) {
        n = fread(done, 1, sizeof(done) - 1, f);
        fclose(f);
        done[n] = '\0';
        done[strcspn(done, "\n")] = '\0';
        if (strcmp(done, cfg->recover_members) == 0) {
            log_warn("--recover-members %s was applied already (%s); ignoring it: take it out of "
                     "this node's flags",
                     cfg->recover_members, path);
            return 0;
        }
    }
    if (parse_members(s, cfg->recover_members, "--recover-members", &conf, errmsg, len) != 0) {
        raft_configuration_close(&conf);
        return -1;
    }
    rv = raft_recover(&s->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0) {
        errf(errmsg, len, "--recover-members: %s", raft_errmsg(&s->raft));
        return -1;
    }
    f = fopen(path, "w");
    if (f == NULL || fprintf(f, "%s\n", cfg->recover_members) < 0 || fflush(f) != 0 ||
        fsync(fileno(f)) != 0) {
        errf(errmsg, len,
             "--recover-members was applied, but %s cannot be written (%s): take "
             "the flag out before the next start",
             path, strerror(errno));
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    fclose(f);
    log_warn("recovered: the cluster's configuration is now %s. Every former member not "
             "listed must be wiped before it runs again, and joins as a new member",
             cfg->recover_members);
    return 0;
}

static int restore_from(const struct config *cfg, uint64_t *cluster_id, uint64_t *revision,
                        char *errmsg, size_t len)
{
    int64_t time_ms = 0;
    if (cfg->restore_time[0] != '\0' && cfg->restore_revision != 0) {
        errf(errmsg, len, "give --restore-revision or --restore-time, not both");
        return -1;
    }
    if (cfg->restore_time[0] != '\0' && dr_parse_time(cfg->restore_time, &time_ms) != 0) {
        errf(errmsg, len,
             "--restore-time \"%s\" is not RFC 3339 (2026-11-22T10:00:00Z) or milliseconds",
             cfg->restore_time);
        return -1;
    }
    log_info("restoring %s from %s", cfg->data_dir, cfg->restore_from);
    return dr_bootstrap(cfg, time_ms, cluster_id, revision, errmsg, len);
}

static void init_cb(struct raft_apply *req, int status, void *result)
{
    struct server *s = req->data;
    (void)result;
    s->init_in_flight = false;
    if (status != 0) {
        log_info("cluster id not committed (%s); proposing again", raft_strerror(status));
    }
}

bool server_cluster_named(const struct server *s)
{
    uint64_t id = s->fsm.kv.cluster_id;
    return id != 0 && (id & KV_CLUSTER_PROVISIONAL) == 0;
}

/* A new cluster's first leader names it: a random id in the replicated
 * state, so every node and every backup agrees on it. A restored cluster
 * is new too: its provisional id (src/dr_archive.h) is replaced, or two
 * restores of one point would back up under one id. */
static void propose_init(struct server *s)
{
    struct proto_request req;
    uint64_t id = 0;
    if (server_cluster_named(s) || s->init_in_flight || s->state != SERVER_RUNNING ||
        raft_state(&s->raft) != RAFT_LEADER) {
        return;
    }
    while (id == 0) {
        if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id)) {
            id = (uint64_t)now_ms() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
        }
        id &= ~KV_CLUSTER_PROVISIONAL; /* a final id */
    }
    memset(&req, 0, sizeof(req));
    req.type = PROTO_INIT;
    req.number = id;
    req.op.revision = s->fsm.kv.cluster_id; /* the provisional id, or 0 */
    if (req.op.revision != 0) {
        log_info("naming the restored cluster %016" PRIx64 " anew: %016" PRIx64, req.op.revision,
                 id);
    }
    if (propose_internal(s, &req, &s->init, init_cb) == 0) {
        s->init_in_flight = true;
    }
}

/* --snapshot-log-percent: raft takes a snapshot every `threshold` applied
 * entries; keep that in step with the state's size (fsm.h). Entries that
 * carry no command (barriers) count in raft's index but hold no bytes, so
 * the average is over the index. */
static void adapt_snapshot_threshold(struct server *s)
{
    uint64_t applied = raft_last_applied(&s->raft);
    uint64_t want;
    uint64_t have = s->raft.snapshot.threshold;
    if (s->seed_gap) {
        return; /* threshold 1 until the restored state is in a snapshot */
    }
    if (s->threshold_base_index == 0) {
        s->threshold_base_index = applied;
        s->threshold_base_bytes = s->fsm.applied_bytes;
        return;
    }
    if (applied < s->threshold_base_index + 1024) {
        return; /* too few entries for an average */
    }
    want = fsm_snapshot_threshold(
        s->cfg->snapshot_threshold, s->cfg->snapshot_log_percent, fsm_state_bytes(&s->fsm),
        (s->fsm.applied_bytes - s->threshold_base_bytes) / (applied - s->threshold_base_index) + 1);
    /* Small drifts are not worth following. */
    if (want > have + have / 8 || want + want / 8 < have) {
        raft_set_snapshot_threshold(&s->raft, (unsigned)want);
    }
}

/* A restored node's first Raft snapshot holds the seed's state: from then
 * on raft sends that snapshot to any member whose log starts before it
 * (a new member starts at index 1), never the bare log. */
static void close_seed_gap(struct server *s)
{
    if (!s->seed_gap || s->raft.log.snapshot.last_index == 0) {
        return;
    }
    s->seed_gap = false;
    raft_set_snapshot_threshold(&s->raft, (unsigned)s->cfg->snapshot_threshold);
    s->threshold_base_index = 0;
    log_info("the restored state is in a Raft snapshot (index %llu): members added from now on "
             "receive it",
             (unsigned long long)s->raft.log.snapshot.last_index);
}

static void ticker_cb(uv_timer_t *h)
{
    struct server *s = h->data;
    int state = raft_state(&s->raft);
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&s->raft, &leader, &addr);
    if (state != s->last_state) {
        log_info("raft state %s -> %s (term %llu)", state_name(s->last_state), state_name(state),
                 (unsigned long long)s->raft.current_term);
        s->last_state = state;
        if (state != RAFT_LEADER) {
            reads_fail_all(&s->reads, CAIRN_ENOTLEADER, "leadership lost");
        }
    }
    if (leader_guard_append_failures(&s->guard) > 0 && s->state == SERVER_RUNNING) {
        /* raft 0.15 keeps a follower's in-memory log after a failed write
         * (upstream 857e17e, fixed in 0.18): carrying on could acknowledge
         * entries that are not on disk. Stop; a restart reloads the log,
         * and every acknowledged write is on a majority already. */
        log_error("a Raft log write failed (disk full or failing?); stopping so that a "
                  "restart reloads the log from disk");
        s->exit_code = 1;
        server_stop(s);
    }
    watch_hub_tick(&s->hub);
    close_seed_gap(s);
    adapt_snapshot_threshold(s);
    note_fresh(s);
    if (leader != s->last_leader) {
        if (leader != 0) {
            s->leader_changes++;
            log_info("leader is node %llu", (unsigned long long)leader);
        }
        s->last_leader = leader;
    }
    propose_sweep(s);
    propose_init(s);
    membership_tick(&s->members);
}

static void close_handles(struct server *s);

static void server_raft_close_cb(struct raft *r)
{
    struct server *s = r->data;
    raft_uv_close(&s->io);
    transport_close(&s->transport);
    leader_guard_close(&s->guard);
    close_handles(s);
    log_info("stopped");
}

static void begin_closing(struct server *s)
{
    struct session *session;
    if (s->state == SERVER_CLOSING) {
        return;
    }
    s->state = SERVER_CLOSING;
    uv_timer_stop(&s->shutdown_timer);
    reads_fail_all(&s->reads, CAIRN_ESHUTDOWN, "node is shutting down");
    membership_close(&s->members);
    for (session = s->sessions; session != NULL;) {
        struct session *next = session->next;
        session_close(session);
        session = next;
    }
    s->raft.data = s;
    raft_close(&s->raft, server_raft_close_cb);
}

/* How long a stopping node keeps its client connections open after its
 * writes in flight finished (and it handed leadership over), answering every
 * request "not the leader" with the leader's address, or "shutting down":
 * answers that say the request was not applied. Closing at once would reset
 * connections on which a client had just sent a request (clients following
 * a redirect to this node while it handed over), and that client could only
 * report the write's outcome as unknown. */
#define LINGER_MS 250

static void shutdown_timer_cb(uv_timer_t *h);

static void linger(struct server *s)
{
    if (s->state == SERVER_LINGERING || s->state == SERVER_CLOSING) {
        return;
    }
    s->state = SERVER_LINGERING;
    uv_timer_start(&s->shutdown_timer, shutdown_timer_cb, LINGER_MS, 0);
}

static void transfer_cb(struct raft_transfer *req)
{
    struct server *s = req->data;
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&s->raft, &leader, &addr);
    /* raft calls this when the transfer ends either way (it gives up after an
     * election timeout): only say "handed over" when another node leads. */
    if (leader != 0 && leader != s->cfg->id) {
        log_info("leadership handed over (leader now %llu)", (unsigned long long)leader);
    } else {
        log_warn("leadership transfer did not complete; stopping anyway");
    }
    linger(s);
}

static unsigned count_voters(const struct server *s)
{
    unsigned i;
    unsigned n = 0;
    for (i = 0; i < s->raft.configuration.n; i++) {
        n += s->raft.configuration.servers[i].role == RAFT_VOTER;
    }
    return n;
}

static void shutdown_timer_cb(uv_timer_t *h)
{
    struct server *s = h->data;
    int rv;
    if (s->state == SERVER_DRAINING) {
        if (!http_stopped(s->http) &&
            (uint64_t)now_ms() - s->drain_started_ms < HTTP_CALL_TIMEOUT_MS + DRAIN_MAX_MS) {
            return; /* HTTP workers may still be waiting for answers */
        }
        if (s->writes_in_flight > 0 && (uint64_t)now_ms() - s->drain_started_ms < DRAIN_MAX_MS) {
            return; /* keep waiting for writes in flight */
        }
        if (raft_state(&s->raft) == RAFT_LEADER && count_voters(s) > 1) {
            s->state = SERVER_TRANSFERRING;
            s->transfer.data = s;
            rv = raft_transfer(&s->raft, &s->transfer, 0, transfer_cb);
            if (rv == 0) {
                log_info("handing leadership over before stopping");
                uv_timer_start(&s->shutdown_timer, shutdown_timer_cb,
                               s->cfg->shutdown_transfer_timeout_ms, 0);
                return;
            }
            log_warn("leadership transfer failed: %s; stopping anyway", raft_strerror(rv));
        }
        linger(s);
        return;
    }
    if (s->state == SERVER_TRANSFERRING) {
        log_warn("leadership transfer did not finish in %llu ms; stopping anyway",
                 (unsigned long long)s->cfg->shutdown_transfer_timeout_ms);
        linger(s);
        return;
    }
    if (s->state == SERVER_LINGERING) {
        begin_closing(s);
    }
}

void server_stop(struct server *s)
{
    if (s->state != SERVER_RUNNING) {
        return;
    }
    log_info("stopping");
    /* HTTP first: its workers call this node, so it stops while the loop
     * still answers them (http.h). */
    http_stop_begin(s->http);
    s->state = SERVER_DRAINING;
    s->drain_started_ms = (uint64_t)now_ms();
    /* Reads waiting for a revision would outlive the drain: clients retry
     * them on another node. */
    reads_fail_parked(&s->reads, CAIRN_ESHUTDOWN,
                      "node is shutting down before the revision was applied; ask another node");
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_timer_start(&s->shutdown_timer, shutdown_timer_cb, 0, 10);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct server *s = h->data;
    log_info("received %s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    server_stop(s);
}

static void close_handles(struct server *s)
{
    uv_handle_t *handles[] = {
        (uv_handle_t *)&s->sigterm,        (uv_handle_t *)&s->sigint,  (uv_handle_t *)&s->ticker,
        (uv_handle_t *)&s->shutdown_timer, (uv_handle_t *)&s->flusher, (uv_handle_t *)&s->listener,
    };
    size_t i;
    for (i = 0; i < sizeof(handles) / sizeof(handles[0]); i++) {
        if (handles[i]->loop != NULL && !uv_is_closing(handles[i])) {
            uv_close(handles[i], NULL);
        }
    }
    reads_close(&s->reads);
    watch_hub_close(&s->hub);
    dr_close(&s->dr);
}

static void connection_cb(uv_stream_t *listener, int status)
{
    struct server *s = listener->data;
    int rv;
    if (status != 0) {
        log_warn("accept: %s", uv_strerror(status));
        return;
    }
    rv = session_accept(s, listener);
    if (rv != 0) {
        log_warn("accept: %s", uv_strerror(rv));
    }
}

/* Parse an IPv4 HOST:PORT flag value, naming the flag in the error. */
static int parse_ipv4(const char *flag, const char *value, struct sockaddr_in *addr, char *errmsg,
                      size_t len)
{
    char host[256];
    const char *colon = strrchr(value, ':');
    char *end;
    long port;
    if (colon == NULL || (size_t)(colon - value) >= sizeof(host)) {
        errf(errmsg, len, "--%s \"%s\" is not HOST:PORT", flag, value);
        return -1;
    }
    memcpy(host, value, (size_t)(colon - value));
    host[colon - value] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || port <= 0 || port > 65535 ||
        uv_ip4_addr(host, (int)port, addr) != 0) {
        errf(errmsg, len, "--%s \"%s\" is not an IPv4 HOST:PORT", flag, value);
        return -1;
    }
    return 0;
}

static int listen_clients(struct server *s, char *errmsg, size_t len)
{
    int rv;
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    rv = uv_tcp_open(&s->listener, s->client_fd);
    if (rv == 0) {
        s->client_fd = -1; /* the handle owns it now */
        rv = uv_listen((uv_stream_t *)&s->listener, 1024, connection_cb);
    }
    if (rv != 0) {
        errf(errmsg, len, "cannot listen for clients on %s: %s", s->cfg->client_addr,
             uv_strerror(rv));
        return -1;
    }
    return 0;
}

static void adopt_connection(void *arg, int fd, const char *pending, size_t len)
{
    struct server *s = arg;
    int rv = session_adopt(s, fd, pending, len);
    if (rv != 0) {
        log_warn("a client connection from start-up was lost: %s", uv_strerror(rv));
    }
}

/* Answer status while this new node checks its peers and loads its state
 * (preflight.h). */
static void start_preflight(struct server *s, uint64_t restored_id, uint64_t restored_rev)
{
    struct raft_configuration conf;
    struct preflight_member *members;
    char(*parts)[2][CONFIG_STR_MAX];
    char errmsg[256];
    unsigned i;
    if (parse_initial_cluster(s, &conf, errmsg, sizeof(errmsg)) != 0) {
        raft_configuration_close(&conf);
        return; /* checked before: cannot happen */
    }
    members = calloc(conf.n + 1, sizeof(*members));
    parts = calloc(conf.n + 1, sizeof(*parts));
    if (members != NULL && parts != NULL) {
        for (i = 0; i < conf.n; i++) {
            parts[i][0][0] = parts[i][1][0] = '\0';
            transport_split_address(conf.servers[i].address, parts[i][0], parts[i][1],
                                    sizeof(parts[i][0]));
            members[i].id = conf.servers[i].id;
            members[i].raft_address = parts[i][0];
            members[i].client_address = parts[i][1];
        }
        s->preflight = preflight_start(s->client_fd, s->cfg->id, restored_id, restored_rev,
                                       s->cfg->http_addr, members, conf.n);
    }
    if (s->preflight == NULL) {
        log_warn("cannot answer status during start-up (out of memory or threads): a peer "
                 "starting at the same moment may not see this node");
    }
    free(members);
    free(parts);
    raft_configuration_close(&conf);
}

/* Fails fast with a clear message when the Raft port is taken: raft_uv would
 * only report it from raft_start() with a terse code. */
static int check_raft_port(struct server *s, char *errmsg, size_t len)
{
    struct sockaddr_in addr;
    uv_tcp_t probe;
    int rv;
    if (parse_ipv4("raft-addr", s->cfg->raft_addr, &addr, errmsg, len) != 0) {
        return -1;
    }
    uv_tcp_init(s->loop, &probe);
    rv = uv_tcp_bind(&probe, (const struct sockaddr *)&addr, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&probe, 1, NULL);
    }
    uv_close((uv_handle_t *)&probe, NULL);
    uv_run(s->loop, UV_RUN_NOWAIT);
    if (rv != 0) {
        errf(errmsg, len, "cannot listen for Raft peers on %s: %s%s", s->cfg->raft_addr,
             uv_strerror(rv), rv == UV_EADDRINUSE ? " (is another cairnd running?)" : "");
        return -1;
    }
    return 0;
}

static int start_node(struct server *s, struct config *cfg, uv_loop_t *loop, char *errmsg,
                      size_t errmsg_len)
{
    struct raft_configuration conf;
    struct sockaddr_in client_sa;
    struct watch_limits limits;
    bool fresh;
    /* A restored state that no node has run yet (made by this start's
     * --restore-from, or a seed written before): its provisional cluster id
     * and revision, for the peer check. */
    uint64_t restored_id = 0;
    uint64_t restored_rev = 0;
    bool restored_now = false; /* by this start's --restore-from */
    bool check_seed = false;   /* a seed written before, never run */
    int rv;

    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->cfg = cfg;
    s->client_fd = -1;
    s->state = SERVER_RUNNING;
    s->last_state = -1;
    reads_init(&s->reads, s);
    if ((size_t)snprintf(s->address, sizeof(s->address), "%s/%s", cfg->raft_addr,
                         cfg->client_addr) >= sizeof(s->address)) {
        errf(errmsg, errmsg_len, "--raft-addr and --client-addr are too long");
        return -1;
    }
    /* Check --initial-cluster before anything is allocated or touched: it is
     * parsed for real only after raft_init, and an error there would leave
     * raft's objects behind (the sanitizer builds report them at exit). */
    if (cfg->join == 0) {
        rv = parse_initial_cluster(s, &conf, errmsg, errmsg_len);
        raft_configuration_close(&conf);
        if (rv != 0) {
            return -1;
        }
    }
    /* A new data directory restored from object storage gets its seed
     * first; an existing one keeps its data (restarts reuse the flags). */
    fresh = data_dir_is_fresh(cfg);
    if (!fresh) {
        char pending[3 * CONFIG_STR_MAX + 64];
        if (!restore_pending(cfg, pending, sizeof(pending))) {
            /* this node's data, or a seed cairnctl snapshot restore wrote */
        } else if (cfg->restore_from[0] != '\0') {
            /* Restore again, to what this start asks (which may differ), and
             * check the peers again as a restored node. */
            char path[CONFIG_STR_MAX + 64];
            log_info("%s holds a restore an earlier start made and never ran (%s): "
                     "restoring again",
                     cfg->data_dir, pending);
            unlink_restore(cfg);
            data_path(cfg, NODE_ID_FILE, path, sizeof(path)); /* that start's, never used */
            unlink(path);
            fresh = true;
        } else {
            log_info("%s holds a restore an earlier start made and never ran (%s): starting "
                     "from it, without --restore-from",
                     cfg->data_dir, pending);
        }
    }
    if (cfg->recover_members[0] != '\0') {
        rv = parse_members(s, cfg->recover_members, "--recover-members", &conf, errmsg, errmsg_len);
        raft_configuration_close(&conf);
        if (rv != 0) {
            return -1;
        }
        if (fresh) {
            errf(errmsg, errmsg_len,
                 "--recover-members recovers a node's existing data, and %s holds none",
                 cfg->data_dir);
            return -1;
        }
    }
    /* The client port first: taken, it fails the start before a download.
     * Connections queue until the loop (or the preflight thread) takes them. */
    if (parse_ipv4("client-addr", cfg->client_addr, &client_sa, errmsg, errmsg_len) != 0) {
        return -1;
    }
    s->client_fd = preflight_bind(&client_sa, cfg->client_addr, errmsg, errmsg_len);
    if (s->client_fd < 0) {
        return -1;
    }
    if (cfg->restore_from[0] != '\0') {
        if (!fresh) {
            log_warn("--restore-from ignored: %s already holds this node's data (from an "
                     "earlier start, or an earlier restore); to restore again, empty it first",
                     cfg->data_dir);
        } else if (write_restore_pending(cfg, errmsg, errmsg_len) != 0) {
            return -1;
        } else if (restore_from(cfg, &restored_id, &restored_rev, errmsg, errmsg_len) != 0) {
            unlink_restore(cfg); /* the seed is not there: a failed restore leaves none */
            return -1;
        } else {
            restored_now = true;
        }
    }
    /* A seed no node has run yet, which cairnctl snapshot restore wrote (or
     * an earlier start of ours that failed): the peers are checked as for a
     * restore made now, or members restored to different points (a store
     * whose newest point moved on between them) would diverge unseen. */
    if (!fresh && !restored_now && cfg->join == 0 && !raft_has_data(cfg) &&
        dr_seed_point(cfg->data_dir, &restored_id, &restored_rev) == 0) {
        check_seed = true;
    }
    if ((fresh || check_seed) && cfg->join == 0) {
        /* Tests only: peers that start together check at the same time. */
        const char *delay = getenv("CAIRN_TEST_PEER_CHECK_DELAY_MS");
        start_preflight(s, restored_id, restored_rev);
        if (delay != NULL) {
            usleep((useconds_t)atoi(delay) * 1000u);
        }
    }
    if ((fresh || check_seed) && cfg->join == 0 &&
        check_peers(s, restored_id, restored_rev, errmsg, errmsg_len) != 0) {
        if (restored_now) {
            /* Leave the directory new again, or the next start would take
             * the seed for this node's data and skip both restore and check. */
            unlink_restore(cfg);
        }
        return -1;
    }
    if (prepare_data_dir(cfg, errmsg, errmsg_len) != 0) {
        return -1;
    }
    if (check_raft_port(s, errmsg, errmsg_len) != 0) {
        return -1;
    }
    rv = fsm_init(&s->fsm, cfg->id);
    if (rv != 0) {
        errf(errmsg, errmsg_len, "out of memory");
        return -1;
    }
    /* Before raft starts: loading a snapshot at start is measured too. */
    rv = node_metrics_init(&s->metrics);
    if (rv != 0) {
        errf(errmsg, errmsg_len, "out of memory");
        return -1;
    }
    s->fsm.snapshot_take_ns = s->metrics.snapshot_take_ns;
    s->fsm.snapshot_restore_ns = s->metrics.snapshot_restore_ns;
    /* A data directory restored from object storage starts from its seed;
     * raft's own snapshot, if any, replaces it when raft starts. */
    rv = dr_load_seed(cfg->data_dir, &s->fsm.kv, errmsg, errmsg_len);
    if (rv < 0) {
        return -1;
    }
    if (rv == 0) {
        log_info("loaded the restored state (revision %llu) from %s/%s",
                 (unsigned long long)s->fsm.kv.rev, cfg->data_dir, DR_SEED_FILE);
        s->seed_gap = true; /* until raft_start shows a snapshot of its own */
    }
    s->restored_as = dr_restored_as(cfg->data_dir);
    if (dr_init(&s->dr, s, &s->metrics.reg, errmsg, errmsg_len) != 0) {
        return -1;
    }
    limits.queue_events_max = cfg->watch_queue_events_max;
    limits.output_max_bytes = cfg->watch_output_max_bytes;
    limits.per_connection_max = cfg->watch_max_per_connection;
    limits.progress_ms = cfg->watch_progress_ms;
    rv = watch_hub_init(&s->hub, loop, &s->fsm.kv, &limits);
    if (rv != 0) {
        errf(errmsg, errmsg_len, "out of memory");
        return -1;
    }
    s->fsm.kv.observer = &s->hub.observer;
    rv = transport_init(&s->transport, loop, cfg->raft_addr);
    if (rv != 0) {
        errf(errmsg, errmsg_len, "raft transport: %s", raft_strerror(rv));
        return -1;
    }
    rv = raft_uv_init(&s->io, loop, cfg->data_dir, &s->transport.outer);
    if (rv != 0) {
        errf(errmsg, errmsg_len, "raft storage in %s: %s", cfg->data_dir, s->io.errmsg);
        return -1;
    }
    raft_uv_set_segment_size(&s->io, cfg->segment_size_bytes);
    /* raft_uv 0.15 implements async_work (used for asynchronous snapshots)
     * but reports io version 1, which makes raft_init refuse a version 3
     * fsm; upstream raised it to 2 in 269e541 (0.17.1) without other
     * changes. */
    s->io.version = 2;
    /* Snapshots are LZ4-compressed by raft_uv; insist on it rather than
     * silently writing them raw if the library lacks LZ4. */
    rv = raft_uv_set_snapshot_compression(&s->io, true);
    if (rv != 0) {
        errf(errmsg, errmsg_len, "raft_uv cannot compress snapshots with LZ4: %s",
             raft_strerror(rv));
        return -1;
    }
    rv = raft_init(&s->raft, &s->io, &s->fsm.raft_fsm, cfg->id, s->address);
    if (rv != 0) {
        errf(errmsg, errmsg_len, "raft: %s", raft_errmsg(&s->raft));
        return -1;
    }
    raft_set_election_timeout(&s->raft, (unsigned)cfg->election_timeout_ms);
    raft_set_heartbeat_timeout(&s->raft, (unsigned)cfg->heartbeat_timeout_ms);
    raft_set_snapshot_threshold(&s->raft, (unsigned)cfg->snapshot_threshold);
    raft_set_snapshot_trailing(&s->raft, (unsigned)cfg->snapshot_trailing);
    raft_set_install_snapshot_timeout(&s->raft, (unsigned)cfg->install_snapshot_timeout_ms);
    membership_init(&s->members, s);
    if (cfg->join != 0) {
        /* A joining node bootstraps nothing: raft starts with an empty
         * configuration (or the one in its data directory, on a restart)
         * and the leader's AppendEntries bring the cluster's once it has
         * been added. Until then it never campaigns. */
    } else {
        if (parse_initial_cluster(s, &conf, errmsg, errmsg_len) != 0) {
            raft_configuration_close(&conf);
            return -1;
        }
        rv = raft_bootstrap(&s->raft, &conf);
        raft_configuration_close(&conf);
        if (rv == 0) {
            char path[CONFIG_STR_MAX + 64];
            log_info("bootstrapped a new cluster in %s", cfg->data_dir);
            /* From here the restored state is raft's: the node's data. */
            data_path(cfg, RESTORE_PENDING_FILE, path, sizeof(path));
            unlink(path);
        } else if (rv == RAFT_CANTBOOTSTRAP) {
            log_info("restarting from existing data in %s", cfg->data_dir);
        } else {
            errf(errmsg, errmsg_len, "bootstrap: %s", raft_errmsg(&s->raft));
            return -1;
        }
    }
    if (cfg->recover_members[0] != '\0' && recover_members(s, errmsg, errmsg_len) != 0) {
        return -1;
    }
    rv = leader_guard_init(&s->guard, &s->raft, true);
    if (rv != 0) {
        errf(errmsg, errmsg_len, "leader guard: %s", raft_strerror(rv));
        return -1;
    }
    if (getenv("CAIRN_NO_COMMIT_NOTICES") != NULL) {
        /* For measurements only (docs/performance.md): raft 0.15 alone. */
        leader_guard_disable_notice(&s->guard);
    }
    rv = raft_start(&s->raft);
    if (rv != 0) {
        errf(errmsg, errmsg_len, "raft start: %s", raft_errmsg(&s->raft));
        return -1;
    }
    if (s->seed_gap && s->raft.log.snapshot.last_index > 0) {
        s->seed_gap = false; /* raft restored a snapshot taken since the seed */
    } else if (s->seed_gap) {
        raft_set_snapshot_threshold(&s->raft, 1);
        log_info("the restored state is not in a Raft snapshot yet: taking one at the first "
                 "applied entry");
    }
    if (s->raft.configuration.n == 0) {
        log_info("joining: waiting for the cluster's leader to add node %llu (cairnctl member add "
                 "%llu %s)",
                 (unsigned long long)cfg->id, (unsigned long long)cfg->id, s->address);
    }
    /* Hooks only now: raft_start restored its snapshot (if any) and applies
     * entries only later; dr_start reconciles the backlog with it. */
    s->fsm.raft = &s->raft;
    s->fsm.advanced = server_advanced;
    s->fsm.advanced_data = s;
    if (s->dr.enabled) {
        s->fsm.hooks.data = &s->dr;
        s->fsm.hooks.applied = fsm_applied_hook;
        s->fsm.hooks.replaced = fsm_replaced_hook;
        s->fsm.hooks.before_snapshot = fsm_before_snapshot_hook;
    }
    if (dr_start(&s->dr) != 0) {
        errf(errmsg, errmsg_len, "backup: cannot start its worker");
        return -1;
    }
    uv_signal_init(loop, &s->sigterm);
    uv_signal_init(loop, &s->sigint);
    s->sigterm.data = s;
    s->sigint.data = s;
    uv_signal_start(&s->sigterm, signal_cb, SIGTERM);
    uv_signal_start(&s->sigint, signal_cb, SIGINT);
    uv_timer_init(loop, &s->ticker);
    uv_timer_init(loop, &s->shutdown_timer);
    s->ticker.data = s;
    s->shutdown_timer.data = s;
    uv_timer_start(&s->ticker, ticker_cb, TICK_MS, TICK_MS);
    uv_check_init(loop, &s->flusher);
    s->flusher.data = s;
    uv_check_start(&s->flusher, flush_cb);
    return 0;
}

int server_start(struct server *s, struct config *cfg, uv_loop_t *loop, char *errmsg,
                 size_t errmsg_len)
{
    int rv = start_node(s, cfg, loop, errmsg, errmsg_len);
    struct preflight *p = s->preflight;
    /* The loop answers from here on: the preflight's connections become
     * sessions, and queued ones wait for the listener. */
    s->preflight = NULL;
    preflight_stop(p, rv == 0 ? adopt_connection : NULL, s);
    if (rv == 0) {
        rv = listen_clients(s, errmsg, errmsg_len);
    }
    if (s->client_fd >= 0) {
        close(s->client_fd); /* a failed start: main() closes the handles */
        s->client_fd = -1;
    }
    if (rv == 0) {
        log_info("node %llu serving clients on %s, raft on %s, data in %s",
                 (unsigned long long)cfg->id, cfg->client_addr, cfg->raft_addr, cfg->data_dir);
    }
    return rv;
}
