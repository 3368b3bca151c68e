/*
 * it_follower_reads: reads answered by a follower without the leader, with a
 * minimum revision (read your writes) and a maximum staleness
 * (docs/operations.md). Five parts on one 3-node cluster:
 *
 *  a. a read on a follower with min_revision = its revision + 1 waits, and
 *     returns only after a later write through the leader, with that write;
 *  b. a write through the leader while a follower is paused (SIGSTOP), then
 *     a min_revision read sent to that follower while it is still paused:
 *     once resumed it answers with the write, never with the older value
 *     it holds when the read arrives; and a stale read with max_staleness_ms
 *     below the pause, also sent during it, is refused: the heartbeats that
 *     queued up while the follower was stopped do not make it fresh;
 *  c. a min_revision that never comes fails with CAIRN_ETIMEOUT after the
 *     node's bound (--read-wait-max-ms), or earlier when the client's own
 *     timeout is shorter; the node goes on serving;
 *  d. with the leader and the other follower paused, a follower refuses a
 *     read with max_staleness_ms (CAIRN_ESTALE) once it has not heard from a
 *     leader for that long, and still answers plain stale reads; the leader
 *     itself is never stale;
 *  f. the node's own bounds, on raw connections: --read-wait-queue-max reads
 *     park and one more is refused at once (CAIRN_EBUSY); closing the
 *     connection releases them (the sanitizer build checks nothing leaks);
 *     SIGTERM answers parked reads with CAIRN_ESHUTDOWN;
 *  g. the same wait for the other reads, on a raw connection to a follower:
 *     a HISTORY and a read-only TXN with min_revision = its revision + 1 are
 *     answered (by the follower, not redirected) after the next write, and
 *     see it;
 *  e. a client with track_revision writes through the leader while a
 *     follower is paused; the leader is killed; the client's next stale read
 *     lands on the paused follower and carries the write's revision, so it
 *     waits for the new leader to bring the follower up to date.
 *
 * Every part fails on a cairnd that ignores min_revision (the answer would
 * come at once, with the older value) or max_staleness_ms.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "harness.h"
#include "raw.h"

#define KEY "fr/key"
#define WAIT_MAX_MS 1500 /* the nodes' --read-wait-max-ms */
#define QUEUE_MAX 3      /* the nodes' --read-wait-queue-max */

static const char *const node_flags[] = {"--read-wait-max-ms", "1500", "--read-wait-queue-max", "3",
                                         NULL};

static uint64_t put(cairn_client *cl, const char *value)
{
    struct cairn_result *r = NULL;
    uint64_t rev;
    IT_ASSERT_OK(cairn_put(cl, KEY, strlen(KEY), value, strlen(value), NULL, &r), cl);
    rev = r->revision;
    cairn_result_free(r);
    return rev;
}

static unsigned a_follower(struct it_cluster *c, unsigned leader, unsigned not_id)
{
    unsigned i;
    for (i = 1; i <= c->n; i++) {
        if (i != leader && i != not_id && it_node_running(c, i)) {
            return i;
        }
    }
    IT_ASSERT(false, "no follower");
    return 0;
}

/* A read on its own thread, so that the test can act while it waits. */
struct pending_read
{
    cairn_client *client; /* borrowed */
    struct cairn_get_opts opts;
    pthread_t thread;
    atomic_bool done;
    int rv;
    char value[64];
    uint64_t revision;
    int64_t returned_ms;
};

static void *pending_main(void *arg)
{
    struct pending_read *p = arg;
    struct cairn_result *r = NULL;
    p->rv = cairn_get(p->client, KEY, strlen(KEY), &p->opts, &r);
    p->returned_ms = it_now_ms();
    if (p->rv == 0) {
        const struct cairn_kv *kv = &r->ops[0].kvs[0];
        snprintf(p->value, sizeof(p->value), "%.*s", (int)kv->value_len, kv->value);
        p->revision = r->revision;
    } else {
        snprintf(p->value, sizeof(p->value), "%s", cairn_errmsg(p->client));
    }
    cairn_result_free(r);
    atomic_store(&p->done, true);
    return NULL;
}

static void pending_start_bounded(struct pending_read *p, cairn_client *cl, uint64_t min_revision,
                                  uint64_t max_staleness_ms)
{
    memset(p, 0, sizeof(*p));
    p->client = cl;
    p->opts.stale = true;
    p->opts.min_revision = min_revision;
    p->opts.max_staleness_ms = max_staleness_ms;
    IT_ASSERT(pthread_create(&p->thread, NULL, pending_main, p) == 0, "thread");
}

static void pending_start(struct pending_read *p, cairn_client *cl, uint64_t min_revision)
{
    pending_start_bounded(p, cl, min_revision, 0);
}

static void pending_join(struct pending_read *p)
{
    pthread_join(p->thread, NULL);
}

static void part_a(struct it_cluster *c, unsigned leader)
{
    unsigned f = a_follower(c, leader, 0);
    cairn_client *w = it_client(c, leader, 5000);
    cairn_client *r = it_client(c, f, 8000);
    struct pending_read p;
    uint64_t rev;
    uint64_t written;
    int64_t wrote_ms;
    rev = put(w, "a0");
    it_wait_converged(c, 10000);
    it_log("a: follower %u at revision %llu; reading with min_revision %llu", f,
           (unsigned long long)rev, (unsigned long long)rev + 1);
    pending_start(&p, r, rev + 1);
    it_sleep_ms(500);
    IT_ASSERT(!atomic_load(&p.done), "the read answered before its revision existed: %s (%s)",
              p.value, cairn_errname(p.rv));
    wrote_ms = it_now_ms();
    written = put(w, "a1");
    IT_ASSERT(written == rev + 1, "the write made revision %llu, not %llu",
              (unsigned long long)written, (unsigned long long)rev + 1);
    pending_join(&p);
    IT_ASSERT(p.rv == 0, "the parked read failed: %s: %s", cairn_errname(p.rv), p.value);
    IT_ASSERT(strcmp(p.value, "a1") == 0, "the parked read returned \"%s\", not \"a1\"", p.value);
    IT_ASSERT(p.revision >= written, "answered at revision %llu", (unsigned long long)p.revision);
    it_log("a: answered %lld ms after the write was sent", (long long)(p.returned_ms - wrote_ms));
    cairn_client_free(w);
    cairn_client_free(r);
}

static void part_b(struct it_cluster *c, unsigned leader)
{
    unsigned f = a_follower(c, leader, 0);
    cairn_client *w = it_client(c, leader, 5000);
    cairn_client *r = it_client(c, f, 8000);
    cairn_client *r2 = it_client(c, f, 8000);
    struct pending_read p;
    struct pending_read p2;
    struct cairn_result *res = NULL;
    uint64_t rev;
    put(w, "b0");
    it_wait_converged(c, 10000);
    /* Connect now: a paused node's kernel still accepts connections, but
     * this keeps the read's own timing simple. */
    IT_ASSERT_OK(cairn_get(r, KEY, strlen(KEY), &(struct cairn_get_opts){.stale = true}, &res), r);
    cairn_result_free(res);
    IT_ASSERT_OK(cairn_get(r2, KEY, strlen(KEY), &(struct cairn_get_opts){.stale = true}, &res),
                 r2);
    cairn_result_free(res);
    it_node_signal(c, f, SIGSTOP);
    rev = put(w, "b1");
    it_log("b: wrote revision %llu with follower %u paused; reading it there",
           (unsigned long long)rev, f);
    /* Sent while the follower is paused: on resume it sees the read and the
     * leader's entries together, and holds "b0" until it applies them. */
    pending_start(&p, r, rev);
    pending_start_bounded(&p2, r2, 0, 200);
    it_sleep_ms(400);
    it_node_signal(c, f, SIGCONT);
    pending_join(&p);
    pending_join(&p2);
    IT_ASSERT(p2.rv == CAIRN_ESTALE,
              "a follower paused for 400 ms answered a read bounded to 200 ms: %s (%s)", p2.value,
              cairn_errname(p2.rv));
    it_log("b: %s", p2.value);
    IT_ASSERT(p.rv == 0, "the read failed: %s: %s", cairn_errname(p.rv), p.value);
    IT_ASSERT(strcmp(p.value, "b1") == 0, "the follower returned \"%s\", not \"b1\"", p.value);
    IT_ASSERT(p.revision >= rev, "answered at revision %llu", (unsigned long long)p.revision);
    cairn_client_free(w);
    cairn_client_free(r);
    cairn_client_free(r2);
}

static void part_c(struct it_cluster *c, unsigned leader)
{
    unsigned f = a_follower(c, leader, 0);
    cairn_client *r = it_client(c, f, 5000);
    cairn_client *quick = it_client(c, f, 1000);
    struct cairn_get_opts o;
    struct cairn_result *res = NULL;
    uint64_t rev;
    int64_t t0;
    int64_t took;
    int rv;
    IT_ASSERT_OK(cairn_get(r, KEY, strlen(KEY), &(struct cairn_get_opts){.stale = true}, &res), r);
    rev = res->revision;
    cairn_result_free(res);
    memset(&o, 0, sizeof(o));
    o.min_revision = rev + 1000;
    /* The node's bound. */
    t0 = it_now_ms();
    rv = cairn_get(r, KEY, strlen(KEY), &o, &res);
    took = it_now_ms() - t0;
    cairn_result_free(res);
    it_log("c: %s after %lld ms: %s", cairn_errname(rv), (long long)took, cairn_errmsg(r));
    IT_ASSERT(rv == CAIRN_ETIMEOUT, "want CAIRN_ETIMEOUT, got %s: %s", cairn_errname(rv),
              cairn_errmsg(r));
    IT_ASSERT(strstr(cairn_errmsg(r), "not applied within 1500 ms") != NULL,
              "the message does not give the node's bound: %s", cairn_errmsg(r));
    IT_ASSERT(took >= WAIT_MAX_MS - 100 && took < WAIT_MAX_MS + 1500, "took %lld ms",
              (long long)took);
    /* The client's timeout (1000 ms) is shorter: the node gives up first,
     * and says why, rather than the client timing out blind. */
    t0 = it_now_ms();
    rv = cairn_get(quick, KEY, strlen(KEY), &o, &res);
    took = it_now_ms() - t0;
    cairn_result_free(res);
    it_log("c: %s after %lld ms: %s", cairn_errname(rv), (long long)took, cairn_errmsg(quick));
    IT_ASSERT(rv == CAIRN_ETIMEOUT && strstr(cairn_errmsg(quick), "not applied within") != NULL,
              "want the node's CAIRN_ETIMEOUT, got %s: %s", cairn_errname(rv), cairn_errmsg(quick));
    IT_ASSERT(took < 1000, "took %lld ms", (long long)took);
    /* Its metrics count both (and nothing waits now). */
    {
        char *text = NULL;
        IT_ASSERT_OK(cairn_metrics_text(r, NULL, &text, NULL), r);
        IT_ASSERT(strstr(text, "\ncairn_read_wait_timeouts_total 2\n") != NULL &&
                      strstr(text, "\ncairn_reads_waiting 0\n") != NULL,
                  "metrics of node %u:\n%s", f, text);
        free(text);
    }
    /* The node still serves, plain and waiting reads alike. */
    IT_ASSERT_OK(cairn_get(r, KEY, strlen(KEY), &(struct cairn_get_opts){.stale = true}, &res), r);
    cairn_result_free(res);
    o.min_revision = rev;
    IT_ASSERT_OK(cairn_get(r, KEY, strlen(KEY), &o, &res), r);
    cairn_result_free(res);
    cairn_client_free(r);
    cairn_client_free(quick);
}

static void part_d(struct it_cluster *c, unsigned leader)
{
    unsigned f = a_follower(c, leader, 0);
    unsigned other = a_follower(c, leader, f);
    cairn_client *r = it_client(c, f, 3000);
    cairn_client *l = it_client(c, leader, 3000);
    struct cairn_get_opts bounded;
    struct cairn_result *res = NULL;
    int64_t paused_ms;
    int64_t refused_ms = 0;
    int rv;
    memset(&bounded, 0, sizeof(bounded));
    bounded.stale = true;
    bounded.max_staleness_ms = 400;
    /* Heartbeats every 100 ms keep a follower well within 400 ms; the leader
     * is never stale, even against 1 ms. */
    IT_ASSERT_OK(cairn_get(r, KEY, strlen(KEY), &bounded, &res), r);
    cairn_result_free(res);
    bounded.max_staleness_ms = 1;
    IT_ASSERT_OK(cairn_get(l, KEY, strlen(KEY), &bounded, &res), l);
    cairn_result_free(res);
    bounded.max_staleness_ms = 400;
    it_log("d: pausing the leader %u and follower %u; reading from follower %u", leader, other, f);
    it_node_signal(c, leader, SIGSTOP);
    it_node_signal(c, other, SIGSTOP);
    paused_ms = it_now_ms();
    for (;;) {
        rv = cairn_get(r, KEY, strlen(KEY), &bounded, &res);
        cairn_result_free(res);
        if (rv == CAIRN_ESTALE) {
            refused_ms = it_now_ms();
            break;
        }
        IT_ASSERT(rv == 0, "want success or CAIRN_ESTALE, got %s: %s", cairn_errname(rv),
                  cairn_errmsg(r));
        IT_ASSERT(it_now_ms() - paused_ms < 5000, "the follower never said it was too stale");
        it_sleep_ms(20);
    }
    it_log("d: refused %lld ms after the pause: %s", (long long)(refused_ms - paused_ms),
           cairn_errmsg(r));
    /* Not before the bound (less the heartbeat the leader may have sent
     * just before it was paused). */
    IT_ASSERT(refused_ms - paused_ms >= 400 - 150, "refused after only %lld ms",
              (long long)(refused_ms - paused_ms));
    /* Plain stale reads are still answered; later (no leader at all) the
     * refusal says so. */
    IT_ASSERT_OK(cairn_get(r, KEY, strlen(KEY), &(struct cairn_get_opts){.stale = true}, &res), r);
    cairn_result_free(res);
    it_sleep_ms(2500);
    rv = cairn_get(r, KEY, strlen(KEY), &bounded, &res);
    cairn_result_free(res);
    IT_ASSERT(rv == CAIRN_ESTALE, "want CAIRN_ESTALE without a leader, got %s", cairn_errname(rv));
    it_log("d: later: %s", cairn_errmsg(r));
    IT_ASSERT_OK(cairn_get(r, KEY, strlen(KEY), &(struct cairn_get_opts){.stale = true}, &res), r);
    cairn_result_free(res);
    it_node_signal(c, leader, SIGCONT);
    it_node_signal(c, other, SIGCONT);
    cairn_client_free(r);
    cairn_client_free(l);
}

static void part_f(struct it_cluster *c, unsigned leader)
{
    unsigned f = a_follower(c, leader, 0);
    struct it_node *n = it_node(c, f);
    struct cairn_status *st = NULL;
    struct proto_request req;
    struct proto_response resp;
    int fd;
    int i;
    IT_ASSERT(it_node_status(c, f, &st) == 0, "status of node %u", f);
    memset(&req, 0, sizeof(req));
    req.type = PROTO_GET;
    req.op.type = CAIRN_OP_GET;
    req.op.key.ptr = KEY;
    req.op.key.len = (uint32_t)strlen(KEY);
    req.op.value.ptr = "";
    req.op.after.ptr = "";
    req.op.stale = true;
    req.min_revision = st->revision + 1000;
    cairn_status_free(st);
    /* The cap: QUEUE_MAX park, the next is refused at once. */
    fd = it_raw_connect(n->client_port, 0);
    for (i = 1; i <= QUEUE_MAX + 1; i++) {
        req.id = (uint64_t)i;
        it_raw_send_request(fd, &req);
    }
    IT_ASSERT(it_raw_read_response(fd, 1000, &resp) == 1, "no answer to the read over the cap");
    IT_ASSERT(resp.id == QUEUE_MAX + 1 && resp.code == CAIRN_EBUSY,
              "want CAIRN_EBUSY for read %d, got %s for read %llu: %s", QUEUE_MAX + 1,
              cairn_errname(resp.code), (unsigned long long)resp.id, resp.message);
    it_log("f: %s", resp.message);
    proto_response_free(&resp);
    /* Closing the connection frees the slots at once. */
    close(fd);
    it_sleep_ms(100);
    fd = it_raw_connect(n->client_port, 0);
    for (i = 1; i <= QUEUE_MAX; i++) {
        req.id = (uint64_t)i;
        it_raw_send_request(fd, &req);
    }
    IT_ASSERT(it_raw_read_response(fd, 300, &resp) == -1, "a parked read answered: %s (%s)",
              resp.message, cairn_errname(resp.code));
    /* SIGTERM answers them (the client retries elsewhere). */
    it_node_signal(c, f, SIGTERM);
    for (i = 1; i <= QUEUE_MAX; i++) {
        IT_ASSERT(it_raw_read_response(fd, 3000, &resp) == 1, "no answer from the stopping node");
        IT_ASSERT(resp.code == CAIRN_ESHUTDOWN, "want CAIRN_ESHUTDOWN, got %s: %s",
                  cairn_errname(resp.code), resp.message);
        proto_response_free(&resp);
    }
    close(fd);
    IT_ASSERT(it_node_stop(c, f, 10000) == 0, "node %u did not stop cleanly", f);
    it_node_start(c, f);
}

static void set_key(struct proto_op *op)
{
    memset(op, 0, sizeof(*op));
    op->type = CAIRN_OP_GET;
    op->key.ptr = KEY;
    op->key.len = (uint32_t)strlen(KEY);
    op->value.ptr = "";
    op->after.ptr = "";
}

static void part_g(struct it_cluster *c, unsigned leader)
{
    unsigned f = a_follower(c, leader, 0);
    cairn_client *w = it_client(c, leader, 5000);
    struct proto_request hist;
    struct proto_request txn;
    struct proto_op get;
    struct proto_response resp;
    uint64_t rev;
    int fd;
    int i;
    rev = put(w, "g0");
    it_wait_converged(c, 10000);
    memset(&hist, 0, sizeof(hist));
    hist.id = 1;
    hist.type = PROTO_HISTORY;
    set_key(&hist.op);
    hist.min_revision = rev + 1;
    memset(&txn, 0, sizeof(txn));
    txn.id = 2;
    txn.type = PROTO_TXN;
    set_key(&txn.op);
    set_key(&get);
    txn.then_ops = &get;
    txn.n_then = 1;
    txn.min_revision = rev + 1;
    fd = it_raw_connect(it_node(c, f)->client_port, 0);
    it_raw_send_request(fd, &hist);
    it_raw_send_request(fd, &txn);
    IT_ASSERT(it_raw_read_response(fd, 300, &resp) == -1,
              "a read answered before its revision existed: %s (%s)", resp.message,
              cairn_errname(resp.code));
    put(w, "g1");
    for (i = 0; i < 2; i++) {
        const struct cairn_op_result *op;
        IT_ASSERT(it_raw_read_response(fd, 5000, &resp) == 1, "no answer after the write");
        IT_ASSERT(resp.code == 0, "read %llu: %s: %s", (unsigned long long)resp.id,
                  cairn_errname(resp.code), resp.message);
        IT_ASSERT(resp.result->revision >= rev + 1 && resp.result->n_ops == 1,
                  "read %llu answered at revision %llu", (unsigned long long)resp.id,
                  (unsigned long long)resp.result->revision);
        op = &resp.result->ops[0];
        /* History is newest first: the write waited for comes first. */
        IT_ASSERT(op->n_kvs >= 1 && op->kvs[0].value_len == 2 &&
                      memcmp(op->kvs[0].value, "g1", 2) == 0,
                  "read %llu did not see the write", (unsigned long long)resp.id);
        proto_response_free(&resp);
    }
    close(fd);
    cairn_client_free(w);
}

static void part_e(struct it_cluster *c, unsigned leader)
{
    unsigned f = a_follower(c, leader, 0);
    struct cairn_options opts;
    struct pending_read p;
    cairn_client *t;
    char endpoints[128];
    uint64_t rev;
    int err = 0;
    memset(&opts, 0, sizeof(opts));
    opts.timeout_ms = 10000;
    opts.track_revision = true;
    /* The follower alone: writes reach the leader by redirect. */
    IT_FORMAT(endpoints, "%s", it_node(c, f)->client_addr);
    t = cairn_client_new(endpoints, &opts, &err);
    IT_ASSERT(t != NULL, "client: %s", cairn_errname(err));
    put(t, "e0");
    it_wait_converged(c, 10000);
    it_node_signal(c, f, SIGSTOP);
    rev = put(t, "e1");
    IT_ASSERT(cairn_seen_revision(t) == rev, "the client saw %llu, its write made %llu",
              (unsigned long long)cairn_seen_revision(t), (unsigned long long)rev);
    it_log("e: wrote revision %llu with follower %u paused; killing the leader %u",
           (unsigned long long)rev, f, leader);
    it_node_kill(c, leader);
    /* The stale read finds the leader gone and goes to the paused follower
     * (holding "e0"), asking for the revision the client saw. */
    pending_start(&p, t, 0);
    it_sleep_ms(500);
    it_node_signal(c, f, SIGCONT);
    pending_join(&p);
    IT_ASSERT(p.rv == 0, "the read failed: %s: %s", cairn_errname(p.rv), p.value);
    IT_ASSERT(strcmp(p.value, "e1") == 0, "the client read \"%s\" after writing \"e1\"", p.value);
    IT_ASSERT(p.revision >= rev, "answered at revision %llu", (unsigned long long)p.revision);
    cairn_client_free(t);
}

int main(void)
{
    struct it_cluster *c;
    unsigned leader;

    it_init("it_follower_reads", IT_TIMEOUT_S);
    c = it_cluster_new(3, node_flags);
    leader = it_cluster_start(c);
    part_a(c, leader);
    part_b(c, leader);
    part_c(c, leader);
    part_d(c, leader);
    leader = it_wait_leader(c, 0, 20000);
    it_wait_converged(c, 20000);
    part_g(c, leader);
    part_f(c, leader);
    leader = it_wait_leader(c, 0, 20000);
    it_wait_converged(c, 20000);
    part_e(c, leader);
    it_wait_leader(c, leader, 20000);
    it_cluster_free(c);
    return 0;
}
