#include "reads.h"

#include <string.h>

#include "log.h"
#include "proto.h"
#include "server.h"
#include "session.h"

void reads_init(struct reads *r, struct server *srv)
{
    memset(r, 0, sizeof(*r));
    r->srv = srv;
    r->waiting_tail = &r->waiting;
}

static void read_free(struct read_req *rr)
{
    session_unref(rr->session);
    cairn_free(rr->payload);
    cairn_free(rr);
}

static void answer(struct reads *r, struct read_req *rr)
{
    struct session *s = rr->session;
    struct arena a;
    struct proto_request req;
    struct proto_writer w;
    int rv;
    if (!session_is_open(s)) {
        return;
    }
    arena_init(&a);
    rv = proto_decode_request(rr->payload, rr->len, &a, &req);
    if (rv == 0) {
        size_t mark = session_output(s)->len;
        proto_writer_begin(&w, session_output(s));
        rv = kv_read(&r->srv->fsm.kv, &req, &w);
        if (rv == 0) {
            rv = proto_writer_end(&w);
        } else {
            session_output(s)->len = mark;
        }
    }
    arena_free(&a);
    if (rv != 0) {
        session_send_error(s, rr->id, rr->type, rv, NULL, NULL);
    } else {
        session_output_done(s);
    }
    r->served++;
    node_metrics_request(&r->srv->metrics, rr->metrics_op, rv, rr->receipt_ns);
}

static void fail_list(struct reads *r, struct read_req *rr, int code, const char *message,
                      const char *leader)
{
    while (rr != NULL) {
        struct read_req *next = rr->next;
        if (session_is_open(rr->session)) {
            session_send_error(rr->session, rr->id, rr->type, code, message, leader);
        }
        node_metrics_request(&r->srv->metrics, rr->metrics_op, code, rr->receipt_ns);
        read_free(rr);
        rr = next;
    }
}

static void propose(struct reads *r);

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct reads *r = req->data;
    struct read_req *rr = r->batch;
    r->batch = NULL;
    r->barrier_in_flight = false;
    if (status != 0) {
        /* Leadership was lost: nothing was read, so the client may retry.
         * The reads still waiting fail too, and no new barrier is proposed
         * from here: raft fails pending barriers while it converts the
         * leader to follower, with its leader state already torn down but
         * its state not yet changed, so a raft_barrier() from this callback
         * passed raft's leader check and crashed it (found by the chaos
         * harness: a paused leader resuming; tests/integration/it_pause_leader.c). */
        fail_list(r, rr, CAIRN_ENOTLEADER, "leadership lost before the read could be confirmed",
                  server_leader_client_address(r->srv));
        reads_fail_all(r, CAIRN_ENOTLEADER, "leadership lost before the read could be confirmed");
        return;
    } else {
        while (rr != NULL) {
            struct read_req *next = rr->next;
            answer(r, rr);
            read_free(rr);
            rr = next;
        }
    }
    if (r->waiting != NULL) {
        propose(r);
    }
}

static void propose(struct reads *r)
{
    int rv;
    /* Every waiting read arrived before this barrier is proposed. */
    r->batch = r->waiting;
    r->waiting = NULL;
    r->waiting_tail = &r->waiting;
    r->barrier.data = r;
    rv = raft_barrier(&r->srv->raft, &r->barrier, barrier_cb);
    if (rv != 0) {
        struct read_req *rr = r->batch;
        r->batch = NULL;
        fail_list(r, rr, rv == RAFT_NOTLEADER ? CAIRN_ENOTLEADER : CAIRN_EBUSY, raft_strerror(rv),
                  server_leader_client_address(r->srv));
        return;
    }
    r->barrier_in_flight = true;
    r->barriers++;
}

void reads_submit(struct reads *r, struct session *s, const char *payload, size_t len, uint64_t id,
                  uint8_t type, uint8_t op, uint64_t receipt_ns)
{
    struct read_req *rr = cairn_calloc(1, sizeof(*rr));
    if (rr == NULL || (rr->payload = cairn_malloc(len > 0 ? len : 1)) == NULL) {
        cairn_free(rr);
        session_send_error(s, id, type, CAIRN_ENOMEM, NULL, NULL);
        node_metrics_request(&r->srv->metrics, op, CAIRN_ENOMEM, receipt_ns);
        return;
    }
    memcpy(rr->payload, payload, len);
    rr->len = len;
    rr->id = id;
    rr->type = type;
    rr->metrics_op = op;
    rr->receipt_ns = receipt_ns;
    rr->session = s;
    session_ref(s);
    *r->waiting_tail = rr;
    r->waiting_tail = &rr->next;
    if (!r->barrier_in_flight) {
        propose(r);
    }
}

void reads_fail_all(struct reads *r, int code, const char *message)
{
    struct read_req *rr = r->waiting;
    r->waiting = NULL;
    r->waiting_tail = &r->waiting;
    fail_list(r, rr, code, message, NULL);
}
