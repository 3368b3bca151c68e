#include "reads.h"

#include <stddef.h>
#include <stdio.h>
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
    read_wait_init(&r->parked, (uint32_t)srv->cfg->read_wait_queue_max);
    uv_timer_init(srv->loop, &r->parked_timer);
    r->parked_timer.data = r;
}

void reads_close(struct reads *r)
{
    uv_handle_t *h = (uv_handle_t *)&r->parked_timer;
    if (h->loop != NULL && !uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

void reads_free(struct reads *r)
{
    read_wait_close(&r->parked);
}

static void read_free(struct read_req *rr)
{
    session_unref(rr->session);
    cairn_free(rr->payload);
    cairn_free(rr);
}

/* Answer rr from the key space as it is now; returns the code answered.
 * The session must be open. */
static int answer_now(struct reads *r, struct read_req *rr)
{
    struct session *s = rr->session;
    struct arena a;
    struct proto_request req;
    struct proto_writer w;
    int rv;
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
    return rv;
}

static void answer(struct reads *r, struct read_req *rr)
{
    int rv;
    if (!session_is_open(rr->session)) {
        return;
    }
    rv = answer_now(r, rr);
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

/* Reads parked for a revision */

static struct parked_read *parked_of(struct read_waiter *w)
{
    return (struct parked_read *)((char *)w - offsetof(struct parked_read, waiter));
}

/* Take pr off its session and free it; it is no longer in the wait list. */
static void parked_free(struct reads *r, struct parked_read *pr)
{
    pr->req.session->parked_reads--;
    r->parked_bytes -= pr->req.len;
    session_unref(pr->req.session);
    cairn_free(pr->req.payload);
    cairn_free(pr);
}

/* Answer pr: from the key space when code is 0, else with the error. */
static void parked_finish(struct reads *r, struct parked_read *pr, int code, const char *message)
{
    struct read_req *rr = &pr->req;
    if (session_is_open(rr->session)) {
        if (code == 0) {
            code = answer_now(r, rr);
        } else {
            session_send_error(rr->session, rr->id, rr->type, code, message, NULL);
        }
        node_metrics_request(&r->srv->metrics, rr->metrics_op, code, rr->receipt_ns);
    }
    parked_free(r, pr);
}

static void timeout_message(struct reads *r, uint64_t min_revision, uint64_t wait_ms, char *msg,
                            size_t len)
{
    snprintf(msg, len, "node %llu is at revision %llu; revision %llu not applied within %llu ms",
             (unsigned long long)r->srv->cfg->id, (unsigned long long)r->srv->fsm.kv.rev,
             (unsigned long long)min_revision, (unsigned long long)wait_ms);
}

static void parked_timer_cb(uv_timer_t *h)
{
    struct reads *r = h->data;
    uint64_t now = uv_now(r->srv->loop);
    uint64_t next;
    struct read_waiter *w;
    while ((w = read_wait_expired(&r->parked, now)) != NULL) {
        struct parked_read *pr = parked_of(w);
        char msg[200];
        timeout_message(r, pr->min_revision, pr->wait_ms, msg, sizeof(msg));
        r->wait_timeouts++;
        parked_finish(r, pr, CAIRN_ETIMEOUT, msg);
    }
    /* Reads answered since the timer was armed make it fire early at
     * worst: it is armed again for the earliest deadline left. */
    if (read_wait_next_deadline(&r->parked, &next)) {
        uv_timer_start(&r->parked_timer, parked_timer_cb, next > now ? next - now : 0, 0);
    }
}

void reads_park(struct reads *r, struct session *s, const char *payload, size_t len, uint64_t id,
                uint8_t type, uint8_t op, uint64_t receipt_ns, uint64_t min_revision,
                uint64_t wait_ms)
{
    struct parked_read *pr = NULL;
    uint64_t now = uv_now(r->srv->loop);
    uint64_t next;
    char msg[200];
    int code = 0;
    if (wait_ms == 0) {
        timeout_message(r, min_revision, wait_ms, msg, sizeof(msg));
        r->wait_timeouts++;
        code = CAIRN_ETIMEOUT;
    } else if (r->parked.n >= r->parked.max || len > READS_PARKED_BYTES_MAX - r->parked_bytes) {
        snprintf(msg, sizeof(msg),
                 "node %llu already holds %u reads (%llu bytes) waiting for a revision "
                 "(--read-wait-queue-max %u): retry later or elsewhere",
                 (unsigned long long)r->srv->cfg->id, r->parked.n,
                 (unsigned long long)r->parked_bytes, r->parked.max);
        code = CAIRN_EBUSY;
    } else {
        pr = cairn_calloc(1, sizeof(*pr));
        if (pr == NULL || (pr->req.payload = cairn_malloc(len > 0 ? len : 1)) == NULL) {
            cairn_free(pr);
            pr = NULL;
            snprintf(msg, sizeof(msg), "out of memory parking a read");
            code = CAIRN_ENOMEM;
        }
    }
    if (code == 0) {
        memcpy(pr->req.payload, payload, len);
        pr->req.len = len;
        pr->req.id = id;
        pr->req.type = type;
        pr->req.metrics_op = op;
        pr->req.receipt_ns = receipt_ns;
        pr->req.session = s;
        pr->min_revision = min_revision;
        pr->wait_ms = wait_ms;
        pr->waiter.min_revision = min_revision;
        pr->waiter.deadline_ms = now + wait_ms;
        code = read_wait_add(&r->parked, &pr->waiter);
        if (code != 0) {
            snprintf(msg, sizeof(msg), "cannot park the read: %s", cairn_strerror(code));
            cairn_free(pr->req.payload);
            cairn_free(pr);
        }
    }
    if (code != 0) {
        session_send_error(s, id, type, code, msg, NULL);
        node_metrics_request(&r->srv->metrics, op, code, receipt_ns);
        return;
    }
    session_ref(s);
    s->parked_reads++;
    r->parked_bytes += len;
    /* Armed for the earliest deadline: this one, if it is. */
    if (read_wait_next_deadline(&r->parked, &next) && next == pr->waiter.deadline_ms) {
        uv_timer_start(&r->parked_timer, parked_timer_cb, wait_ms, 0);
    }
}

void reads_applied(struct reads *r)
{
    struct read_waiter *w;
    while ((w = read_wait_ready(&r->parked, r->srv->fsm.kv.rev)) != NULL) {
        r->waited++;
        parked_finish(r, parked_of(w), 0, NULL);
    }
}

void reads_session_closed(struct reads *r, struct session *s)
{
    struct read_req *list = NULL;
    uint32_t i;
    if (s->parked_reads == 0) {
        return;
    }
    /* Collect first: removing while scanning would move waiters around. */
    for (i = 0; i < r->parked.n; i++) {
        struct parked_read *pr = parked_of(read_wait_at(&r->parked, i));
        if (pr->req.session == s) {
            pr->req.next = list;
            list = &pr->req;
        }
    }
    while (list != NULL) {
        struct parked_read *pr =
            (struct parked_read *)((char *)list - offsetof(struct parked_read, req));
        list = list->next;
        read_wait_remove(&r->parked, &pr->waiter);
        parked_free(r, pr);
    }
}

void reads_fail_parked(struct reads *r, int code, const char *message)
{
    struct read_waiter *w;
    while ((w = read_wait_pop(&r->parked)) != NULL) {
        parked_finish(r, parked_of(w), code, message);
    }
    uv_timer_stop(&r->parked_timer);
}
