#include "membership.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "transport.h"

static const char *role_name(int role)
{
    return role == RAFT_VOTER ? "voter" : role == RAFT_STANDBY ? "standby" : "spare";
}

static const char *step_name(enum membership_step step)
{
    switch (step) {
        case MEMBERSHIP_PROBING:
            return "probing";
        case MEMBERSHIP_ADDING:
            return "adding";
        case MEMBERSHIP_STANDBY:
            return "standby";
        case MEMBERSHIP_ROLLBACK:
            return "rollback";
        case MEMBERSHIP_CHANGING:
            return "changing";
        case MEMBERSHIP_HANDOVER:
            return "handover";
        case MEMBERSHIP_TRANSFER:
            return "transfer";
        case MEMBERSHIP_WAITING:
            return "waiting";
        default:
            return "idle";
    }
}

void membership_init(struct membership *m, struct server *srv)
{
    memset(m, 0, sizeof(*m));
    m->srv = srv;
    m->probe.m = m;
    m->check.m = m;
    m->probe.work.data = &m->probe;
    m->check.work.data = &m->check;
    raft_set_max_catch_up_rounds(&srv->raft, MEMBERSHIP_CATCH_UP_ROUNDS);
    raft_set_max_catch_up_round_duration(&srv->raft, MEMBERSHIP_CATCH_UP_ROUND_MS);
}

static const struct raft_server *find_member(const struct raft *r, raft_id id, unsigned *index)
{
    unsigned i;
    for (i = 0; i < r->configuration.n; i++) {
        if (r->configuration.servers[i].id == id) {
            if (index != NULL) {
                *index = i;
            }
            return &r->configuration.servers[i];
        }
    }
    return NULL;
}

static unsigned count_voters(const struct raft *r)
{
    unsigned i;
    unsigned n = 0;
    for (i = 0; i < r->configuration.n; i++) {
        n += r->configuration.servers[i].role == RAFT_VOTER;
    }
    return n;
}

static bool is_leader(const struct membership *m)
{
    return raft_state(&m->srv->raft) == RAFT_LEADER;
}

/* How far a member's log is behind the leader's, as the leader knows it (only
 * meaningful at the leader). */
static uint64_t member_match_index(struct membership *m, unsigned i)
{
    struct raft *r = &m->srv->raft;
    if (r->configuration.servers[i].id == r->id) {
        return raft_last_index(r);
    }
    return r->leader_state.progress[i].match_index;
}

static bool member_caught_up(struct membership *m, unsigned i)
{
    uint64_t last = raft_last_index(&m->srv->raft);
    uint64_t match = member_match_index(m, i);
    /* 0: the member has acknowledged nothing yet, however short the log. */
    return match != 0 && match + MEMBERSHIP_CAUGHT_UP_LAG >= last;
}

/* When the leader last saw member id answer: 0 if never (or not tracked). */
static uint64_t *contact_slot(struct membership *m, raft_id id, bool create)
{
    unsigned i;
    unsigned free_slot = MEMBERSHIP_TRACKED_MAX;
    for (i = 0; i < MEMBERSHIP_TRACKED_MAX; i++) {
        if (m->contact[i].id == id) {
            return &m->contact[i].seen;
        }
        if (m->contact[i].id == 0 && free_slot == MEMBERSHIP_TRACKED_MAX) {
            free_slot = i;
        }
    }
    if (!create || free_slot == MEMBERSHIP_TRACKED_MAX) {
        return NULL;
    }
    m->contact[free_slot].id = id;
    m->contact[free_slot].seen = 0;
    return &m->contact[free_slot].seen;
}

/* Sampled every tick at the leader: raft sets recent_recv when a member
 * answers and clears it every election timeout, so the flag alone would
 * call a healthy member unreachable just after each clearing. */
static void track_contacts(struct membership *m, uint64_t now)
{
    struct raft *r = &m->srv->raft;
    unsigned i;
    for (i = 0; i < MEMBERSHIP_TRACKED_MAX; i++) {
        if (m->contact[i].id != 0 && find_member(r, m->contact[i].id, NULL) == NULL) {
            m->contact[i].id = 0; /* no longer a member */
        }
    }
    for (i = 0; i < r->configuration.n; i++) {
        if (r->leader_state.progress[i].recent_recv) {
            uint64_t *seen = contact_slot(m, r->configuration.servers[i].id, true);
            if (seen != NULL) {
                *seen = now;
            }
        }
    }
}

static bool member_reachable(struct membership *m, unsigned i)
{
    struct raft *r = &m->srv->raft;
    const struct raft_server *member = &r->configuration.servers[i];
    uint64_t *seen;
    if (member->id == r->id || r->leader_state.progress[i].recent_recv) {
        return true;
    }
    seen = contact_slot(m, member->id, false);
    return seen != NULL && *seen != 0 &&
           uv_now(m->srv->loop) - *seen <= 2 * m->srv->cfg->election_timeout_ms;
}

/* Answers */

static void reply_json(struct membership *m, struct session *session, uint64_t id, uint8_t type,
                       const struct buf *json)
{
    if (!session_is_open(session)) {
        return;
    }
    if (proto_encode_text(session_output(session), id, type, m->srv->fsm.kv.rev, json->data,
                          json->len) != 0) {
        session_send_error(session, id, type, CAIRN_ENOMEM, "out of memory", NULL);
        return;
    }
    session_output_done(session);
}

/* The request being served ends: answer it (code 0: with json) and forget
 * it. */
static void finish(struct membership *m, int code, const char *message, const char *leader,
                   const struct buf *json)
{
    struct session *session = m->session;
    if (session != NULL) {
        if (code != 0) {
            if (session_is_open(session)) {
                session_send_error(session, m->req_id, m->req_type, code, message, leader);
            }
        } else {
            reply_json(m, session, m->req_id, m->req_type, json);
        }
        session_unref(session);
    }
    m->session = NULL;
    m->step = MEMBERSHIP_IDLE;
    m->target = 0;
}

/* The outcome of a change as a small document: what was asked, and the
 * member's role now. */
static void finish_ok(struct membership *m)
{
    struct buf out;
    struct json_writer w;
    const struct raft_server *member = find_member(&m->srv->raft, m->target, NULL);
    buf_init(&out);
    json_writer_init(&w, &out);
    json_object_begin(&w);
    json_key(&w, "verb");
    json_cstring(&w, m->verb);
    json_key(&w, "id");
    json_uint(&w, m->target);
    json_key(&w, "role");
    if (member != NULL) {
        json_cstring(&w, role_name(member->role));
    } else {
        json_null(&w);
    }
    json_key(&w, "configuration_index");
    json_uint(&w, m->srv->raft.configuration_uncommitted_index != 0
                      ? m->srv->raft.configuration_uncommitted_index
                      : m->srv->raft.configuration_index);
    json_object_end(&w);
    if (json_writer_error(&w) != 0) {
        finish(m, CAIRN_ENOMEM, "out of memory", NULL, NULL);
    } else {
        log_info("membership: %s node %llu done", m->verb, (unsigned long long)m->target);
        finish(m, 0, NULL, NULL, &out);
    }
    buf_free(&out);
}

/* A raft change callback's failure, as the client sees it. */
static int change_failure(int status, char *msg, size_t len, const char *verb, raft_id id)
{
    if (status == RAFT_LEADERSHIPLOST || status == RAFT_SHUTDOWN) {
        snprintf(msg, len,
                 "%s node %llu: %s before the change was known to commit: it may or may not "
                 "have been applied (see member list)",
                 verb, (unsigned long long)id, raft_strerror(status));
        return CAIRN_EUNKNOWN;
    }
    snprintf(msg, len, "%s node %llu failed: %s", verb, (unsigned long long)id,
             raft_strerror(status));
    return status == RAFT_NOCONNECTION ? CAIRN_EUNAVAILABLE : CAIRN_EINTERNAL;
}

/* The list: this node's view of the configuration; the leader adds each
 * member's replication progress. */
static int list_json(struct membership *m, struct buf *out)
{
    struct server *s = m->srv;
    struct raft *r = &s->raft;
    struct json_writer w;
    raft_id leader_id = 0;
    const char *leader_raft = NULL;
    const char *leader_client = server_leader_client_address(s);
    bool leader = is_leader(m);
    uint64_t last = raft_last_index(r);
    unsigned i;
    raft_leader(r, &leader_id, &leader_raft);
    json_writer_init(&w, out);
    json_object_begin(&w);
    json_key(&w, "id");
    json_uint(&w, s->cfg->id);
    json_key(&w, "state");
    json_cstring(&w, leader                            ? "leader"
                     : raft_state(r) == RAFT_FOLLOWER  ? "follower"
                     : raft_state(r) == RAFT_CANDIDATE ? "candidate"
                                                       : "unavailable");
    json_key(&w, "leader_id");
    json_uint(&w, leader_id);
    json_key(&w, "leader_address");
    json_cstring(&w, leader_client != NULL ? leader_client : "");
    json_key(&w, "term");
    json_uint(&w, r->current_term);
    json_key(&w, "configuration_index");
    json_uint(&w, r->configuration_uncommitted_index != 0 ? r->configuration_uncommitted_index
                                                          : r->configuration_index);
    json_key(&w, "committed");
    json_bool(&w, r->configuration_uncommitted_index == 0 && r->configuration_index != 0);
    json_key(&w, "joining");
    json_bool(&w, r->configuration.n == 0);
    json_key(&w, "last_index");
    json_uint(&w, last);
    json_key(&w, "commit_index");
    json_uint(&w, r->commit_index);
    json_key(&w, "change");
    if (leader && (m->step != MEMBERSHIP_IDLE || r->leader_state.change != NULL)) {
        json_object_begin(&w);
        json_key(&w, "verb");
        json_cstring(&w, m->step != MEMBERSHIP_IDLE ? m->verb : "raft");
        json_key(&w, "id");
        json_uint(&w, m->target);
        json_key(&w, "step");
        json_cstring(&w, step_name(m->step));
        json_object_end(&w);
    } else {
        json_null(&w);
    }
    json_key(&w, "members");
    json_array_begin(&w);
    for (i = 0; i < r->configuration.n; i++) {
        const struct raft_server *member = &r->configuration.servers[i];
        char raft_part[256];
        char client_part[256];
        if (transport_split_address(member->address, raft_part, client_part, sizeof(raft_part)) !=
            0) {
            snprintf(raft_part, sizeof(raft_part), "?");
            client_part[0] = '\0';
        }
        json_object_begin(&w);
        json_key(&w, "id");
        json_uint(&w, member->id);
        json_key(&w, "role");
        json_cstring(&w, role_name(member->role));
        json_key(&w, "raft_address");
        json_cstring(&w, raft_part);
        json_key(&w, "client_address");
        json_cstring(&w, client_part);
        json_key(&w, "leader");
        json_bool(&w, member->id == leader_id);
        json_key(&w, "match_index");
        if (leader) {
            json_uint(&w, member_match_index(m, i));
        } else {
            json_null(&w);
        }
        json_key(&w, "caught_up");
        if (leader) {
            json_bool(&w, member_caught_up(m, i));
        } else {
            json_null(&w);
        }
        json_key(&w, "reachable");
        if (leader) {
            json_bool(&w, member_reachable(m, i));
        } else {
            json_null(&w);
        }
        json_object_end(&w);
    }
    json_array_end(&w);
    json_object_end(&w);
    return json_writer_error(&w) != 0 ? CAIRN_ENOMEM : 0;
}

static int answer_list(struct membership *m, struct session *session,
                       const struct proto_request *req)
{
    struct buf out;
    int rv;
    buf_init(&out);
    rv = list_json(m, &out);
    if (rv != 0) {
        session_send_error(session, req->id, req->type, rv, "out of memory", NULL);
    } else {
        reply_json(m, session, req->id, req->type, &out);
    }
    buf_free(&out);
    return rv;
}

/* Answer a request with an error now; returns the code (for the metrics). */
static int refuse(struct session *session, const struct proto_request *req, int code,
                  const char *message, const char *leader)
{
    session_send_error(session, req->id, req->type, code, message, leader);
    return code;
}

/* Begin serving a request that answers later. */
static void begin(struct membership *m, struct session *session, const struct proto_request *req,
                  enum membership_step step, const char *verb, raft_id target)
{
    /* One request at a time: every caller checked that none is served. */
    assert(m->step == MEMBERSHIP_IDLE);
    assert(m->session == NULL);
    session_ref(session);
    m->session = session;
    m->req_id = req->id;
    m->req_type = req->type;
    m->step = step;
    m->target = target;
    snprintf(m->verb, sizeof(m->verb), "%s", verb);
}

/* Adding a node */

static void change_cb(struct raft_change *req, int status);

/* "host:port" with an IPv4 host; the address split at the slash. */
static bool address_valid(const char *address, char *raft_part, char *client_part, size_t n)
{
    const char *p;
    for (p = address; *p != '\0'; p++) {
        /* Printable, no spaces or commas: it goes into JSON and flags. */
        if (*p <= ' ' || *p > '~' || *p == ',' || *p == '"' || *p == '\\') {
            return false;
        }
    }
    if (transport_split_address(address, raft_part, client_part, n) != 0 ||
        strchr(raft_part, ':') == NULL || strchr(client_part, ':') == NULL) {
        return false;
    }
    return true;
}

/* Off the loop: TCP to the Raft address, then STATUS over the client
 * address. Writes only p's out fields. */
static void probe_work(uv_work_t *work)
{
    struct membership_probe *p = work->data;
    struct cairn_options opts;
    struct cairn_status *st = NULL;
    struct sockaddr_in sa;
    struct timeval tv;
    cairn_client *c;
    char host[256];
    const char *colon = strrchr(p->raft_address, ':');
    int fd;
    int err = 0;
    int rv;
    p->code = 0;
    p->message[0] = '\0';
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    if (colon == NULL || (size_t)(colon - p->raft_address) >= sizeof(host)) {
        p->code = CAIRN_EINVAL;
        snprintf(p->message, sizeof(p->message), "Raft address %s is not HOST:PORT",
                 p->raft_address);
        return;
    }
    memcpy(host, p->raft_address, (size_t)(colon - p->raft_address));
    host[colon - p->raft_address] = '\0';
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || sa.sin_port == 0) {
        p->code = CAIRN_EINVAL;
        snprintf(p->message, sizeof(p->message), "Raft address %s is not an IPv4 HOST:PORT",
                 p->raft_address);
        return;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        p->code = CAIRN_EIO;
        snprintf(p->message, sizeof(p->message), "socket: %s", strerror(errno));
        return;
    }
    /* On Linux the send timeout bounds connect() too. */
    tv.tv_sec = MEMBERSHIP_PROBE_TIMEOUT_MS / 1000;
    tv.tv_usec = (MEMBERSHIP_PROBE_TIMEOUT_MS % 1000) * 1000;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    rv = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    err = errno;
    close(fd);
    if (rv != 0) {
        p->code = CAIRN_EUNAVAILABLE;
        snprintf(p->message, sizeof(p->message),
                 "node %llu cannot be reached at its Raft address %s (%s): is it running, "
                 "started with --join 1?",
                 (unsigned long long)p->id, p->raft_address, strerror(err));
        return;
    }
    memset(&opts, 0, sizeof(opts));
    opts.timeout_ms = MEMBERSHIP_PROBE_TIMEOUT_MS;
    opts.connect_timeout_ms = MEMBERSHIP_PROBE_TIMEOUT_MS / 2;
    c = cairn_client_new(p->endpoints, &opts, &err);
    if (c == NULL) {
        p->code = err;
        snprintf(p->message, sizeof(p->message), "client address %.200s: %s", p->endpoints,
                 cairn_strerror(err));
        return;
    }
    rv = cairn_status(c, p->endpoints, &st);
    if (rv != 0) {
        p->code = CAIRN_EUNAVAILABLE;
        snprintf(p->message, sizeof(p->message),
                 "node %llu does not answer at its client address %.200s (%.200s): is it running, "
                 "started with --join 1?",
                 (unsigned long long)p->id, p->endpoints, cairn_errmsg(c));
    } else if (st->id != p->id) {
        p->code = CAIRN_EINVAL;
        snprintf(p->message, sizeof(p->message), "the node at %.200s is node %llu, not node %llu",
                 p->endpoints, (unsigned long long)st->id, (unsigned long long)p->id);
    } else if (st->n_members != 0) {
        p->code = CAIRN_EINVAL;
        snprintf(p->message, sizeof(p->message),
                 "node %llu at %.200s already belongs to a cluster (its configuration lists %zu "
                 "members): start it with an empty data directory and --join 1",
                 (unsigned long long)p->id, p->endpoints, st->n_members);
    }
    cairn_status_free(st);
    cairn_client_free(c);
}

static void probe_after_cb(uv_work_t *work, int status)
{
    struct membership_probe *p = work->data;
    struct membership *m = p->m;
    struct raft *r = &m->srv->raft;
    char msg[256];
    int rv;
    p->in_flight = false;
    if (m->closing || m->step != MEMBERSHIP_PROBING) {
        return; /* membership_close answered already */
    }
    if (status != 0) {
        finish(m, CAIRN_EINTERNAL, "the probe of the new node was canceled", NULL, NULL);
        return;
    }
    if (p->code != 0) {
        log_warn("membership: add node %llu refused: %s", (unsigned long long)m->target,
                 p->message);
        finish(m, p->code, p->message, NULL, NULL);
        return;
    }
    /* The loop ran meanwhile: check again what the request checked. */
    if (!is_leader(m)) {
        finish(m, CAIRN_ENOTLEADER, "leadership moved while the new node was probed",
               server_leader_client_address(m->srv), NULL);
        return;
    }
    if (find_member(r, m->target, NULL) != NULL) {
        snprintf(msg, sizeof(msg), "node %llu is already a member", (unsigned long long)m->target);
        finish(m, CAIRN_EINVAL, msg, NULL, NULL);
        return;
    }
    m->step = MEMBERSHIP_ADDING;
    m->change.data = m;
    rv = raft_add(r, &m->change, m->target, m->address, change_cb);
    if (rv != 0) {
        snprintf(msg, sizeof(msg), "add node %llu: %s", (unsigned long long)m->target,
                 raft_strerror(rv));
        finish(m, rv == RAFT_CANTCHANGE ? CAIRN_EBUSY : CAIRN_EINVAL, msg, NULL, NULL);
        return;
    }
    log_info("membership: adding node %llu (%s) as a spare", (unsigned long long)m->target,
             m->address);
}

static void change_cb(struct raft_change *req, int status)
{
    struct membership *m = req->data;
    struct raft *r = &m->srv->raft;
    char msg[600];
    int code;
    int rv;
    if (m->closing) {
        return; /* answered by membership_close */
    }
    switch (m->step) {
        case MEMBERSHIP_ADDING:
            if (status != 0) {
                code = change_failure(status, msg, sizeof(msg), "add", m->target);
                finish(m, code, msg, NULL, NULL);
                return;
            }
            /* A spare receives nothing: make it a standby so that it
             * catches up (from a snapshot if the log was compacted). */
            m->step = MEMBERSHIP_STANDBY;
            rv = raft_assign(r, &m->change, m->target, RAFT_STANDBY, change_cb);
            if (rv == 0) {
                return;
            }
            status = rv;
            __attribute__((fallthrough));
        case MEMBERSHIP_STANDBY:
            if (status == 0) {
                finish_ok(m);
                return;
            }
            m->failure = change_failure(status, m->failure_msg, sizeof(m->failure_msg),
                                        "make standby", m->target);
            if (status == RAFT_LEADERSHIPLOST || status == RAFT_SHUTDOWN || !is_leader(m)) {
                /* Nothing more can be done here: say so. */
                snprintf(msg, sizeof(msg),
                         "%s; node %llu may be left a spare: remove it (member remove %llu)",
                         m->failure_msg, (unsigned long long)m->target,
                         (unsigned long long)m->target);
                finish(m, m->failure, msg, NULL, NULL);
                return;
            }
            /* Put the configuration back as it was. */
            m->step = MEMBERSHIP_ROLLBACK;
            rv = raft_remove(r, &m->change, m->target, change_cb);
            if (rv != 0) {
                snprintf(msg, sizeof(msg),
                         "%s; removing it again failed too (%s): remove node %llu by hand",
                         m->failure_msg, raft_strerror(rv), (unsigned long long)m->target);
                finish(m, m->failure, msg, NULL, NULL);
            }
            return;
        case MEMBERSHIP_ROLLBACK:
            snprintf(msg, sizeof(msg), "%s; node %llu was removed again%s", m->failure_msg,
                     (unsigned long long)m->target,
                     status == 0 ? "" : " (not confirmed: check member list)");
            finish(m, m->failure, msg, NULL, NULL);
            return;
        case MEMBERSHIP_CHANGING:
            if (status != 0) {
                code = change_failure(status, msg, sizeof(msg), m->verb, m->target);
                if (status == RAFT_NOCONNECTION && strcmp(m->verb, "promote") == 0) {
                    snprintf(msg, sizeof(msg),
                             "promote node %llu failed: it did not catch up (raft gives up after "
                             "%d ms without an answer, or %d rounds); it stays a standby",
                             (unsigned long long)m->target, MEMBERSHIP_CATCH_UP_ROUND_MS,
                             MEMBERSHIP_CATCH_UP_ROUNDS);
                }
                finish(m, code, msg, NULL, NULL);
                return;
            }
            finish_ok(m);
            return;
        default:
            return;
    }
}

/* Whether a change can start now: 0 yes, 1 no (another change is under
 * way: msg says which), 2 not yet (the last configuration is still being
 * committed, as right after an election: the request waits). */
static int change_in_progress(struct membership *m, char *msg, size_t len)
{
    struct raft *r = &m->srv->raft;
    if (m->step != MEMBERSHIP_IDLE) {
        snprintf(msg, len,
                 "another membership change is in progress (%s node %llu); try again when it "
                 "has finished",
                 m->verb, (unsigned long long)m->target);
        return 1;
    }
    if (r->leader_state.change != NULL) {
        snprintf(msg, len,
                 "another membership change is in progress; try again when it has "
                 "finished");
        return 1;
    }
    if (r->configuration_uncommitted_index != 0) {
        snprintf(msg, len,
                 "the last configuration change is still being committed; try again when it "
                 "has finished");
        return 2;
    }
    return 0;
}

/* Park a request until the last configuration commits (membership_tick
 * serves it again), for at most a few election timeouts. */
static void wait_for_commit(struct membership *m, struct session *session,
                            const struct proto_request *req)
{
    char verb[PROTO_MEMBER_VERB_MAX + 1];
    size_t n = req->op.key.len < sizeof(verb) ? req->op.key.len : sizeof(verb) - 1;
    size_t a = req->op.value.len < sizeof(m->address) ? req->op.value.len : 0;
    memcpy(verb, req->op.key.ptr, n);
    verb[n] = '\0';
    begin(m, session, req, MEMBERSHIP_WAITING, req->type == PROTO_TRANSFER ? "transfer" : verb,
          req->number);
    memmove(m->address, req->op.value.ptr, a);
    m->address[a] = '\0';
    m->wait_until = uv_now(m->srv->loop) + 4 * m->srv->cfg->election_timeout_ms;
}

/* Whether a change may start now. When not, the request has been refused
 * (another change is under way) or parked until the last configuration
 * commits, and *rv is what its handler returns. */
static bool may_start(struct membership *m, struct session *session,
                      const struct proto_request *req, int *rv)
{
    char msg[400];
    switch (change_in_progress(m, msg, sizeof(msg))) {
        case 1:
            *rv = refuse(session, req, CAIRN_EBUSY, msg, NULL);
            return false;
        case 2:
            wait_for_commit(m, session, req);
            *rv = 0;
            return false;
        default:
            return true;
    }
}

static int handle_add(struct membership *m, struct session *session,
                      const struct proto_request *req)
{
    struct raft *r = &m->srv->raft;
    char address[512];
    char raft_part[256];
    char client_part[256];
    char msg[400];
    unsigned i;
    int rv;
    if (req->number == 0) {
        return refuse(session, req, CAIRN_EINVAL,
                      "add needs the new member's id (a positive integer)", NULL);
    }
    if (req->op.value.len == 0 || req->op.value.len >= sizeof(address)) {
        return refuse(session, req, CAIRN_EINVAL,
                      "add needs the new member's address RAFT_HOST:PORT/CLIENT_HOST:PORT", NULL);
    }
    memcpy(address, req->op.value.ptr, req->op.value.len);
    address[req->op.value.len] = '\0';
    if (strlen(address) != req->op.value.len ||
        !address_valid(address, raft_part, client_part, sizeof(raft_part))) {
        return refuse(session, req, CAIRN_EINVAL,
                      "the new member's address is not RAFT_HOST:PORT/CLIENT_HOST:PORT", NULL);
    }
    if (!may_start(m, session, req, &rv)) {
        return rv;
    }
    for (i = 0; i < r->configuration.n; i++) {
        const struct raft_server *member = &r->configuration.servers[i];
        char other_raft[256];
        char other_client[256];
        if (member->id == req->number) {
            snprintf(msg, sizeof(msg), "node %llu is already a member (%s, %.200s)",
                     (unsigned long long)member->id, role_name(member->role), member->address);
            return refuse(session, req, CAIRN_EINVAL, msg, NULL);
        }
        if (transport_split_address(member->address, other_raft, other_client,
                                    sizeof(other_raft)) != 0) {
            continue;
        }
        if (strcmp(other_raft, raft_part) == 0 || strcmp(other_client, client_part) == 0) {
            snprintf(msg, sizeof(msg), "address %.200s is already used by node %llu (%.150s)",
                     address, (unsigned long long)member->id, member->address);
            return refuse(session, req, CAIRN_EINVAL, msg, NULL);
        }
    }
    if (m->srv->seed_gap) {
        /* A restored leader's log starts without the restored state until
         * its first Raft snapshot: a node added now would get the bare log
         * and diverge. The snapshot comes at the first applied entry. */
        wait_for_commit(m, session, req);
        return 0;
    }
    begin(m, session, req, MEMBERSHIP_PROBING, "add", req->number);
    snprintf(m->address, sizeof(m->address), "%s", address);
    m->probe.id = req->number;
    snprintf(m->probe.endpoints, sizeof(m->probe.endpoints), "%s", client_part);
    snprintf(m->probe.raft_address, sizeof(m->probe.raft_address), "%s", raft_part);
    rv = uv_queue_work(m->srv->loop, &m->probe.work, probe_work, probe_after_cb);
    if (rv != 0) {
        finish(m, CAIRN_EINTERNAL, "cannot start probing the new node", NULL, NULL);
        return 0;
    }
    m->probe.in_flight = true;
    log_info("membership: probing node %llu at %s before adding it", (unsigned long long)m->target,
             address);
    return 0;
}

/* Promote, demote, remove */

static void handover_cb(struct raft_transfer *req);

static int handle_change(struct membership *m, struct session *session,
                         const struct proto_request *req, const char *verb)
{
    struct raft *r = &m->srv->raft;
    const struct raft_server *member;
    unsigned index = 0;
    char msg[400];
    int role = -1;
    int rv;
    member = find_member(r, req->number, &index);
    if (req->number == 0 || member == NULL) {
        snprintf(msg, sizeof(msg), "node %llu is not a member", (unsigned long long)req->number);
        return refuse(session, req, CAIRN_ENOTFOUND, msg, NULL);
    }
    if (!may_start(m, session, req, &rv)) {
        return rv;
    }
    if (strcmp(verb, "promote") == 0) {
        if (member->role == RAFT_VOTER) {
            snprintf(msg, sizeof(msg), "node %llu is a voter already",
                     (unsigned long long)req->number);
            return refuse(session, req, CAIRN_EINVAL, msg, NULL);
        }
        if (!member_caught_up(m, index)) {
            snprintf(msg, sizeof(msg),
                     "node %llu has not caught up yet (it has %llu of %llu entries); promote it "
                     "when member list shows it caught up",
                     (unsigned long long)req->number,
                     (unsigned long long)member_match_index(m, index),
                     (unsigned long long)raft_last_index(r));
            return refuse(session, req, CAIRN_EBUSY, msg, NULL);
        }
        role = RAFT_VOTER;
    } else if (strcmp(verb, "demote") == 0) {
        if (member->role != RAFT_VOTER) {
            snprintf(msg, sizeof(msg), "node %llu is not a voter (it is a %s)",
                     (unsigned long long)req->number, role_name(member->role));
            return refuse(session, req, CAIRN_EINVAL, msg, NULL);
        }
        role = RAFT_STANDBY;
    }
    if (member->role == RAFT_VOTER && role != RAFT_VOTER && count_voters(r) <= 1) {
        snprintf(msg, sizeof(msg),
                 "node %llu is the cluster's last voter: %s it would leave nobody to elect a "
                 "leader; promote another member first",
                 (unsigned long long)req->number, role == RAFT_STANDBY ? "demoting" : "removing");
        return refuse(session, req, CAIRN_EINVAL, msg, NULL);
    }
    /* member points into raft's configuration, which a change replaces:
     * from here on, only req->number. */
    if (req->number == r->id) {
        /* The leader steps aside first; the new leader makes the change
         * (libcairn follows the redirect this request is answered with). */
        begin(m, session, req, MEMBERSHIP_HANDOVER, verb, req->number);
        m->transfer.data = m;
        rv = raft_transfer(r, &m->transfer, 0, handover_cb);
        if (rv != 0) {
            snprintf(msg, sizeof(msg), "%s node %llu (the leader): leadership transfer: %s", verb,
                     (unsigned long long)req->number, raft_strerror(rv));
            finish(m, CAIRN_EBUSY, msg, NULL, NULL);
            return 0;
        }
        log_info("membership: %s node %llu, this leader: handing leadership over first", verb,
                 (unsigned long long)req->number);
        return 0;
    }
    begin(m, session, req, MEMBERSHIP_CHANGING, verb, req->number);
    m->change.data = m;
    if (role >= 0) {
        rv = raft_assign(r, &m->change, req->number, role, change_cb);
    } else {
        rv = raft_remove(r, &m->change, req->number, change_cb);
    }
    if (rv != 0) {
        snprintf(msg, sizeof(msg), "%s node %llu: %s", verb, (unsigned long long)req->number,
                 raft_strerror(rv));
        finish(m, rv == RAFT_CANTCHANGE ? CAIRN_EBUSY : CAIRN_EINVAL, msg, NULL, NULL);
        return 0;
    }
    log_info("membership: %s node %llu", verb, (unsigned long long)req->number);
    return 0;
}

static void handover_cb(struct raft_transfer *req)
{
    struct membership *m = req->data;
    raft_id leader = 0;
    const char *addr = NULL;
    char msg[300];
    if (m->closing || (m->step != MEMBERSHIP_HANDOVER && m->step != MEMBERSHIP_TRANSFER)) {
        return;
    }
    raft_leader(&m->srv->raft, &leader, &addr);
    if (m->step == MEMBERSHIP_HANDOVER) {
        if (leader != 0 && leader != m->srv->cfg->id) {
            snprintf(msg, sizeof(msg),
                     "leadership handed over to node %llu, which makes the change",
                     (unsigned long long)leader);
            finish(m, CAIRN_ENOTLEADER, msg, server_leader_client_address(m->srv), NULL);
        } else {
            snprintf(msg, sizeof(msg),
                     "%s node %llu (the leader): leadership could not be handed over; nothing "
                     "changed",
                     m->verb, (unsigned long long)m->target);
            finish(m, CAIRN_EUNAVAILABLE, msg, NULL, NULL);
        }
        return;
    }
    /* A TRANSFER request. */
    if (leader != 0 && leader != m->srv->cfg->id && (m->target == 0 || leader == m->target)) {
        struct buf out;
        struct json_writer w;
        const char *client = server_leader_client_address(m->srv);
        buf_init(&out);
        json_writer_init(&w, &out);
        json_object_begin(&w);
        json_key(&w, "leader_id");
        json_uint(&w, leader);
        json_key(&w, "leader_address");
        json_cstring(&w, client != NULL ? client : "");
        json_key(&w, "previous_leader_id");
        json_uint(&w, m->srv->cfg->id);
        json_object_end(&w);
        log_info("leadership transferred to node %llu on request", (unsigned long long)leader);
        if (json_writer_error(&w) != 0) {
            finish(m, CAIRN_ENOMEM, "out of memory", NULL, NULL);
        } else {
            finish(m, 0, NULL, NULL, &out);
        }
        buf_free(&out);
        return;
    }
    if (leader != 0 && leader != m->srv->cfg->id) {
        snprintf(msg, sizeof(msg), "leadership went to node %llu, not node %llu",
                 (unsigned long long)leader, (unsigned long long)m->target);
    } else {
        snprintf(msg, sizeof(msg),
                 "leadership transfer did not complete within the election timeout; node %llu "
                 "%s",
                 (unsigned long long)m->srv->cfg->id,
                 leader == m->srv->cfg->id ? "still leads" : "gave up leading");
    }
    finish(m, CAIRN_EUNAVAILABLE, msg, NULL, NULL);
}

static int handle_transfer(struct membership *m, struct session *session,
                           const struct proto_request *req)
{
    struct raft *r = &m->srv->raft;
    const struct raft_server *member = NULL;
    char msg[300];
    int rv;
    if (req->number != 0) {
        member = find_member(r, req->number, NULL);
        if (member == NULL) {
            snprintf(msg, sizeof(msg), "node %llu is not a member",
                     (unsigned long long)req->number);
            return refuse(session, req, CAIRN_ENOTFOUND, msg, NULL);
        }
        if (member->id == r->id) {
            snprintf(msg, sizeof(msg), "node %llu leads already", (unsigned long long)member->id);
            return refuse(session, req, CAIRN_EINVAL, msg, NULL);
        }
        if (member->role != RAFT_VOTER) {
            snprintf(msg, sizeof(msg), "node %llu is a %s: only a voter can lead",
                     (unsigned long long)member->id, role_name(member->role));
            return refuse(session, req, CAIRN_EINVAL, msg, NULL);
        }
    } else if (count_voters(r) <= 1) {
        return refuse(session, req, CAIRN_EINVAL, "no other voter to hand leadership to", NULL);
    }
    if (m->step != MEMBERSHIP_IDLE || r->transfer != NULL) {
        snprintf(msg, sizeof(msg), "another membership change or transfer is in progress");
        return refuse(session, req, CAIRN_EBUSY, msg, NULL);
    }
    begin(m, session, req, MEMBERSHIP_TRANSFER, "transfer", req->number);
    m->transfer.data = m;
    rv = raft_transfer(r, &m->transfer, req->number, handover_cb);
    if (rv != 0) {
        snprintf(msg, sizeof(msg), "leadership transfer: %s", raft_strerror(rv));
        finish(m, rv == RAFT_NOTLEADER ? CAIRN_ENOTLEADER : CAIRN_EBUSY, msg,
               server_leader_client_address(m->srv), NULL);
        return 0;
    }
    log_info("transferring leadership to %s on request",
             req->number == 0 ? "a voter raft picks" : "the node asked for");
    return 0;
}

static bool verb_is(const struct proto_request *req, const char *verb)
{
    size_t n = strlen(verb);
    return req->op.key.len == n && memcmp(req->op.key.ptr, verb, n) == 0;
}

int membership_handle(struct membership *m, struct session *session,
                      const struct proto_request *req)
{
    if (m->closing) {
        return refuse(session, req, CAIRN_ESHUTDOWN, "node is shutting down; nothing changed",
                      NULL);
    }
    if (req->type == PROTO_MEMBER && verb_is(req, "list")) {
        return answer_list(m, session, req);
    }
    if (req->type == PROTO_MEMBER && !verb_is(req, "add") && !verb_is(req, "promote") &&
        !verb_is(req, "demote") && !verb_is(req, "remove")) {
        return refuse(session, req, CAIRN_EINVAL,
                      "unknown member verb (list, add, promote, demote or remove)", NULL);
    }
    if (!is_leader(m)) {
        return server_redirect(m->srv, session, req);
    }
    if (req->type == PROTO_TRANSFER) {
        return handle_transfer(m, session, req);
    }
    if (verb_is(req, "add")) {
        return handle_add(m, session, req);
    }
    if (verb_is(req, "promote")) {
        return handle_change(m, session, req, "promote");
    }
    if (verb_is(req, "demote")) {
        return handle_change(m, session, req, "demote");
    }
    return handle_change(m, session, req, "remove");
}

/* Removal detection */

/* Off the loop: ask each endpoint for its member list until one answers as
 * the leader with a committed configuration. */
static void check_work(uv_work_t *work)
{
    struct membership_probe *p = work->data;
    struct cairn_options opts;
    char endpoints[sizeof(p->endpoints)];
    char *save = NULL;
    char *ep;
    int asked = 0;
    p->code = -1;
    p->index = 0;
    memset(&opts, 0, sizeof(opts));
    opts.timeout_ms = MEMBERSHIP_CHECK_TIMEOUT_MS;
    opts.connect_timeout_ms = MEMBERSHIP_CHECK_TIMEOUT_MS / 2;
    snprintf(endpoints, sizeof(endpoints), "%s", p->endpoints);
    for (ep = strtok_r(endpoints, ",", &save); ep != NULL && asked < MEMBERSHIP_CHECK_ASKED_MAX;
         ep = strtok_r(NULL, ",", &save), asked++) {
        cairn_client *c = cairn_client_new(ep, &opts, NULL);
        char *json = NULL;
        size_t len = 0;
        struct arena a;
        struct json_value *doc = NULL;
        char err[128];
        if (c == NULL) {
            continue;
        }
        if (cairn_members(c, ep, &json, &len) == 0) {
            arena_init(&a);
            if (json_parse(json, len, &a, &doc, err, sizeof(err)) == 0) {
                const struct json_value *state = json_get(doc, "state");
                const struct json_value *committed = json_get(doc, "committed");
                const struct json_value *index = json_get(doc, "configuration_index");
                const struct json_value *members = json_get(doc, "members");
                const struct json_value *term = json_get(doc, "term");
                /* A leader of an earlier term than one this node has seen
                 * lead may be a stale one, cut off and about to step down:
                 * its configuration may predate this node's (re)addition. */
                if (term != NULL && term->is_uint && term->uint >= p->min_term && state != NULL &&
                    state->type == JSON_STRING && strcmp(state->str, "leader") == 0 &&
                    committed != NULL && committed->type == JSON_BOOL && committed->boolean &&
                    members != NULL && members->type == JSON_ARRAY && index != NULL &&
                    index->is_uint) {
                    const struct json_value *e;
                    bool listed = false;
                    for (e = members->child; e != NULL; e = e->next) {
                        const struct json_value *id = json_get(e, "id");
                        listed = listed || (id != NULL && id->is_uint && id->uint == p->id);
                    }
                    p->code = listed ? 0 : 1;
                    p->index = index->uint;
                }
            }
            arena_free(&a);
            free(json);
        }
        cairn_client_free(c);
        if (p->code >= 0) {
            return;
        }
    }
}

static void check_after_cb(uv_work_t *work, int status)
{
    struct membership_probe *p = work->data;
    struct membership *m = p->m;
    struct server *s = m->srv;
    p->in_flight = false;
    if (status != 0 || m->closing || p->code != 1 || s->state != SERVER_RUNNING) {
        return;
    }
    /* Still not a leader here: a node that leads is a member by definition. */
    if (is_leader(m)) {
        return;
    }
    log_info("removed from the cluster (configuration at index %llu no longer lists node %llu); "
             "stopping",
             (unsigned long long)p->index, (unsigned long long)s->cfg->id);
    m->removed = true;
    s->exit_code = 0;
    server_stop(s);
}

/* What a parked request still waits for, or NULL when it may be served:
 * the last configuration's commit; for an add on a restored leader, also
 * the Raft snapshot of the restored state (handle_add). */
static const char *wait_reason(const struct membership *m)
{
    if (m->srv->raft.configuration_uncommitted_index != 0) {
        return "the last configuration change was not committed";
    }
    if (m->srv->seed_gap && strcmp(m->verb, "add") == 0) {
        return "this cluster was restored, and its leader has not yet put the restored state in "
               "a Raft snapshot (it takes one at the first applied entry)";
    }
    return NULL;
}

static void serve_waiting(struct membership *m, uint64_t now)
{
    struct proto_request req;
    struct session *session = m->session;
    const char *reason;
    char msg[400];
    if (!is_leader(m)) {
        finish(m, CAIRN_ENOTLEADER, "leadership moved; nothing changed",
               server_leader_client_address(m->srv), NULL);
        return;
    }
    reason = wait_reason(m);
    if (reason != NULL) {
        if (now >= m->wait_until) {
            snprintf(msg, sizeof(msg), "%s within %llu ms; nothing changed, try again", reason,
                     (unsigned long long)(4 * m->srv->cfg->election_timeout_ms));
            finish(m, CAIRN_EBUSY, msg, NULL, NULL);
        }
        return;
    }
    /* Serve it again as it came: the session stays referenced meanwhile. */
    memset(&req, 0, sizeof(req));
    req.id = m->req_id;
    req.type = m->req_type;
    req.number = m->target;
    req.op.key.ptr = m->verb;
    req.op.key.len = (uint32_t)strlen(m->verb);
    req.op.value.ptr = m->address;
    req.op.value.len = (uint32_t)strlen(m->address);
    m->session = NULL;
    m->step = MEMBERSHIP_IDLE;
    if (session_is_open(session)) {
        membership_handle(m, session, &req);
    }
    session_unref(session);
}

void membership_tick(struct membership *m)
{
    struct server *s = m->srv;
    struct raft *r = &s->raft;
    const struct raft_server *self;
    raft_id leader = 0;
    const char *addr = NULL;
    uint64_t now = uv_now(s->loop);
    uint64_t interval = 2 * s->cfg->election_timeout_ms;
    size_t off = 0;
    unsigned i;
    unsigned k;
    int rv;
    if (m->closing || m->removed || s->state != SERVER_RUNNING) {
        return;
    }
    if (m->step == MEMBERSHIP_WAITING) {
        serve_waiting(m, now);
    }
    self = find_member(r, r->id, NULL);
    if (self != NULL) {
        m->was_member = true;
    }
    if (raft_state(r) == RAFT_LEADER) {
        track_contacts(m, now);
    }
    /* A joining node is not a member yet; a leader is one. */
    if (!m->was_member || self == NULL || raft_state(r) == RAFT_LEADER) {
        m->leaderless_since = 0;
        return;
    }
    raft_leader(r, &leader, &addr);
    if (leader != 0) {
        m->leader_term = r->current_term;
    }
    if (leader != 0 && self->role == RAFT_VOTER) {
        m->leaderless_since = 0;
        return;
    }
    /* A non-voter keeps the leader it last heard of, whether or not it
     * still hears from it: it asks now and then regardless. */
    if (m->leaderless_since == 0) {
        m->leaderless_since = now;
    }
    if (interval < MEMBERSHIP_CHECK_INTERVAL_MS) {
        interval = MEMBERSHIP_CHECK_INTERVAL_MS;
    }
    if (m->check.in_flight || now - m->leaderless_since < interval ||
        now - m->last_check < interval) {
        return;
    }
    /* Each round starts one member further on: a round asks at most
     * MEMBERSHIP_CHECK_ASKED_MAX of them, and the leader may be any. */
    m->check.endpoints[0] = '\0';
    m->check_rounds++;
    for (k = 0; k < r->configuration.n; k++) {
        char raft_part[256];
        char client_part[256];
        i = (unsigned)((k + m->check_rounds) % r->configuration.n);
        if (r->configuration.servers[i].id == r->id ||
            transport_split_address(r->configuration.servers[i].address, raft_part, client_part,
                                    sizeof(raft_part)) != 0 ||
            client_part[0] == '\0' || off + strlen(client_part) + 2 >= sizeof(m->check.endpoints)) {
            continue;
        }
        off += (size_t)snprintf(m->check.endpoints + off, sizeof(m->check.endpoints) - off, "%s%s",
                                off > 0 ? "," : "", client_part);
    }
    if (off == 0) {
        return;
    }
    m->check.id = r->id;
    m->check.min_term = m->leader_term;
    m->last_check = now;
    rv = uv_queue_work(s->loop, &m->check.work, check_work, check_after_cb);
    if (rv == 0) {
        m->check.in_flight = true;
    }
}

void membership_close(struct membership *m)
{
    if (m->closing) {
        return;
    }
    m->closing = true;
    if (m->step != MEMBERSHIP_IDLE) {
        finish(m, CAIRN_ESHUTDOWN,
               "node is shutting down: the membership change may or may not have been applied "
               "(see member list)",
               NULL, NULL);
    }
}
