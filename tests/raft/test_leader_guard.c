/*
 * Deterministic tests of raft/leader_guard.c on raft_fixture (5 servers).
 *
 * Each scenario runs twice or three times with the same schedule: once
 * without the guard, where the test asserts that canonical/raft 0.15.0 shows
 * the bug (so the test fails if the fixture stops reproducing it, and the
 * guard would then no longer be shown to matter), and once with the guard,
 * where it asserts that the bug does not show.
 *
 * The fixture has no randomness: the same calls give the same steps. There is
 * therefore no seed; a failure prints the test, the variant, the number of
 * fixture steps taken and the simulated time, which identify the point of
 * failure exactly. Every wait is bounded in simulated milliseconds, and the
 * step hook aborts a run that exceeds STEPS_MAX steps.
 *
 * Servers are numbered S1..S5 in comments (fixture indexes 0..4), as in
 * Figure 8 of the Raft paper.
 *
 * Scenarios (docs/raft.md describes the bugs):
 *  - figure8: earlier-term entries committed by counting replicas (524f735);
 *  - new_leader_commits: no entry of the leader's own term (29bb302);
 *  - leftover_match: a follower acknowledging more than the leader checked;
 *  - leader_write_failure: a leader that keeps leading after a failed write
 *    (0cac59c, 23ed201);
 *  - elections_progress: the guard across several leader changes.
 *
 * Run one scenario by naming it: test_leader_guard figure8.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>
#include <raft/fixture.h>

#include "leader_guard.h"

#define N_SERVERS 5

/* Hard limit on fixture steps in one run; a scenario needs a few thousand. */
#define STEPS_MAX 200000

/* Commands an fsm can remember, and log indexes the cluster history covers. */
#define FSM_RECORDS_MAX 64
#define HISTORY_MAX 64

/* Values of the commands the scenarios write. */
#define VALUE_BASE 100 /* committed everywhere before a scenario starts */
#define VALUE_X 200    /* written by S1 in term 2 */
#define VALUE_Y 300    /* written by S5 in the next leader's term */
#define VALUE_Z 400    /* a client write in the bug 1 scenario */
#define VALUE_Y2 500   /* a second entry written by S1 in term 2 */
#define VALUE_C 600    /* a client write to a new leader */
#define VALUE_C1 700   /* a write whose disk write fails at the leader */
#define VALUE_C2 800   /* the write after it */

enum guard_mode {
    MODE_OFF,       /* no guard: plain 0.15.0 */
    MODE_HOLD_ONLY, /* hold-back without the barrier (bug 2 fixed, bug 1 not) */
    MODE_FULL,      /* the guard as Cairn runs it */
    MODE_NO_NOTICE, /* the guard without commit notices (raft 0.15's commit timing) */
};

static const char *mode_name(enum guard_mode mode)
{
    switch (mode) {
        case MODE_OFF:
            return "without guard";
        case MODE_HOLD_ONLY:
            return "hold-back only";
        case MODE_FULL:
            return "with guard";
        case MODE_NO_NOTICE:
            return "guard without commit notices";
    }
    return "?";
}

struct cluster;

/* What one server's state machine applied, in order. */
struct test_fsm
{
    struct cluster *cluster; /* borrowed */
    unsigned i;              /* fixture index of the server */
    unsigned n;
    struct
    {
        raft_index index;
        uint64_t value;
    } records[FSM_RECORDS_MAX];
};

/* The first breach of State Machine Safety seen (Raft paper, Figure 3: "if a
 * server has applied a log entry at a given index to its state machine, no
 * other server will ever apply a different log entry for the same index"). */
struct violation
{
    bool seen;
    raft_index index;
    uint64_t first_value;
    unsigned first_server;
    uint64_t second_value;
    unsigned second_server;
    unsigned long step;
};

struct cluster
{
    const char *test;
    enum guard_mode mode;
    struct raft_fixture f;
    struct raft_fsm fsms[N_SERVERS];
    struct test_fsm test_fsms[N_SERVERS];
    struct leader_guard guards[N_SERVERS];
    unsigned long steps;
    bool fixture_ready; /* raft_fixture_initialize() succeeded */
    /* First value applied at each index by any server, and by whom. */
    bool history_set[HISTORY_MAX];
    uint64_t history_value[HISTORY_MAX];
    unsigned history_server[HISTORY_MAX];
    struct violation violation;
};

/* The fixture's hook carries no user pointer; one scenario runs at a time. */
static struct cluster *current_cluster;

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

/* Print each server's view, to make a failure readable without a debugger. */
static void dump_cluster(const struct cluster *cl)
{
    unsigned i;
    if (!cl->fixture_ready || cl->f.n < N_SERVERS) {
        return;
    }
    for (i = 0; i < N_SERVERS; i++) {
        struct raft *r = raft_fixture_get((struct raft_fixture *)&cl->f, i);
        fprintf(stderr,
                "  S%u: %s%s term %llu voted %llu last %llu stored %llu commit %llu applied %llu "
                "held %lu\n",
                i + 1, raft_fixture_alive((struct raft_fixture *)&cl->f, i) ? "" : "dead ",
                state_name(raft_state(r)), (unsigned long long)r->current_term,
                (unsigned long long)r->voted_for, (unsigned long long)raft_last_index(r),
                (unsigned long long)r->last_stored, (unsigned long long)r->commit_index,
                (unsigned long long)raft_last_applied(r), leader_guard_held(&cl->guards[i]));
    }
}

static void report(const struct cluster *cl, const char *file, int line, const char *expr,
                   const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s [%s] (deterministic schedule, no seed) step %lu, time %llu ms\n",
            cl->test, mode_name(cl->mode), cl->steps, (unsigned long long)cl->f.time);
    fprintf(stderr, "  %s:%d: check failed: %s\n  ", file, line, expr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    dump_cluster(cl);
}

/* Check a condition of the scenario; on failure report and jump to the
 * caller's cleanup label "out" with rc = 1. */
#define CHECK(cl, cond, ...)                                      \
    do {                                                          \
        if (!(cond)) {                                            \
            report((cl), __FILE__, __LINE__, #cond, __VA_ARGS__); \
            rc = 1;                                               \
            goto out;                                             \
        }                                                         \
    } while (0)

/* Call a helper returning 0 or 1 (having reported already). */
#define TRY(expr)          \
    do {                   \
        if ((expr) != 0) { \
            rc = 1;        \
            goto out;      \
        }                  \
    } while (0)

static void encode_u64(void *buf, uint64_t value)
{
    unsigned i;
    for (i = 0; i < 8; i++) {
        ((uint8_t *)buf)[i] = (uint8_t)(value >> (8 * i));
    }
}

static uint64_t decode_u64(const void *buf)
{
    uint64_t value = 0;
    unsigned i;
    for (i = 0; i < 8; i++) {
        value |= (uint64_t)((const uint8_t *)buf)[i] << (8 * i);
    }
    return value;
}

static void history_record(struct cluster *cl, unsigned server, raft_index index, uint64_t value)
{
    if (index >= HISTORY_MAX) {
        return;
    }
    if (!cl->history_set[index]) {
        cl->history_set[index] = true;
        cl->history_value[index] = value;
        cl->history_server[index] = server;
        return;
    }
    if (cl->history_value[index] != value && !cl->violation.seen) {
        cl->violation.seen = true;
        cl->violation.index = index;
        cl->violation.first_value = cl->history_value[index];
        cl->violation.first_server = cl->history_server[index];
        cl->violation.second_value = value;
        cl->violation.second_server = server;
        cl->violation.step = cl->steps;
    }
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct test_fsm *t = fsm->data;
    struct raft *r = raft_fixture_get(&t->cluster->f, t->i);
    /* raft sets last_applied after apply returns, so the entry being applied
     * is the next one. */
    raft_index index = raft_last_applied(r) + 1;
    uint64_t value;

    *result = NULL;
    if (buf->len != 8) {
        return RAFT_MALFORMED;
    }
    value = decode_u64(buf->base);
    if (t->n < FSM_RECORDS_MAX) {
        t->records[t->n].index = index;
        t->records[t->n].value = value;
        t->n++;
    }
    history_record(t->cluster, t->i, index, value);
    return 0;
}

/* Snapshots are not part of these scenarios (the threshold is set out of
 * reach), but raft requires the methods; they store the records faithfully. */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct test_fsm *t = fsm->data;
    *bufs = raft_malloc(sizeof **bufs);
    if (*bufs == NULL) {
        return RAFT_NOMEM;
    }
    (*bufs)[0].len = sizeof t->n + sizeof t->records;
    (*bufs)[0].base = raft_malloc((*bufs)[0].len);
    if ((*bufs)[0].base == NULL) {
        raft_free(*bufs);
        return RAFT_NOMEM;
    }
    memcpy((*bufs)[0].base, &t->n, sizeof t->n);
    memcpy((char *)(*bufs)[0].base + sizeof t->n, t->records, sizeof t->records);
    *n_bufs = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct test_fsm *t = fsm->data;
    if (buf->len != sizeof t->n + sizeof t->records) {
        raft_free(buf->base);
        return RAFT_MALFORMED;
    }
    memcpy(&t->n, buf->base, sizeof t->n);
    memcpy(t->records, (char *)buf->base + sizeof t->n, sizeof t->records);
    raft_free(buf->base);
    return 0;
}

/* Value the server's fsm applied at index, or 0 if none. */
static uint64_t fsm_value_at(const struct cluster *cl, unsigned i, raft_index index)
{
    const struct test_fsm *t = &cl->test_fsms[i];
    unsigned k;
    for (k = 0; k < t->n; k++) {
        if (t->records[k].index == index) {
            return t->records[k].value;
        }
    }
    return 0;
}

static bool fsm_applied_value(const struct cluster *cl, unsigned i, uint64_t value)
{
    const struct test_fsm *t = &cl->test_fsms[i];
    unsigned k;
    for (k = 0; k < t->n; k++) {
        if (t->records[k].value == value) {
            return true;
        }
    }
    return false;
}

static void step_hook(struct raft_fixture *f, struct raft_fixture_event *event)
{
    unsigned i;
    (void)event;
    /* A fixture step is one turn of cairnd's loop, at whose end cairnd sends
     * the commit notices due (src/server.c flush_cb). */
    for (i = 0; i < N_SERVERS; i++) {
        if (raft_fixture_alive(f, i)) {
            leader_guard_turn_end(&current_cluster->guards[i]);
        }
    }
    current_cluster->steps++;
    if (current_cluster->steps > STEPS_MAX) {
        fprintf(stderr, "FAIL %s [%s]: more than %d fixture steps, time %llu ms\n",
                current_cluster->test, mode_name(current_cluster->mode), STEPS_MAX,
                (unsigned long long)f->time);
        abort();
    }
}

static struct raft *server(struct cluster *cl, unsigned i)
{
    return raft_fixture_get(&cl->f, i);
}

/* A disk that fails one write on demand. raft_fixture 0.15.0 can only make
 * io->append fail synchronously, which raft handles; the bug of a failed
 * leader write needs a write that fails after it was submitted, as with a
 * full disk under raft_uv. This shim sits under the guard (it is installed
 * first): when armed, it lets the fixture complete the next write and reports
 * it as failed. */
struct disk_fault
{
    struct raft_io *io; /* borrowed */
    int (*append)(struct raft_io *io, struct raft_io_append *req, const struct raft_entry entries[],
                  unsigned n, raft_io_append_cb cb);
    bool armed;
    struct raft_io_append *req; /* the write to fail, once submitted */
    raft_io_append_cb cb;       /* its real callback */
    unsigned fired;
};

static struct disk_fault disk_faults[N_SERVERS];

static struct disk_fault *disk_fault_of_io(struct raft_io *io)
{
    unsigned i;
    for (i = 0; i < N_SERVERS; i++) {
        if (disk_faults[i].io == io) {
            return &disk_faults[i];
        }
    }
    abort(); /* every server's io has a shim */
}

static void disk_fault_append_cb(struct raft_io_append *req, int status)
{
    unsigned i;
    for (i = 0; i < N_SERVERS; i++) {
        struct disk_fault *d = &disk_faults[i];
        if (d->req == req) {
            raft_io_append_cb cb = d->cb;
            d->req = NULL;
            d->fired++;
            cb(req, status == 0 ? RAFT_IOERR : status);
            return;
        }
    }
    abort(); /* only armed writes get this callback */
}

static int disk_fault_append(struct raft_io *io, struct raft_io_append *req,
                             const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    struct disk_fault *d = disk_fault_of_io(io);
    if (!d->armed) {
        return d->append(io, req, entries, n, cb);
    }
    d->armed = false;
    d->req = req;
    d->cb = cb;
    return d->append(io, req, entries, n, disk_fault_append_cb);
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    (void)status;
    (void)result;
    free(req);
}

/* Submit a command carrying value on server i, which must be leader. */
static int apply_value(struct cluster *cl, unsigned i, uint64_t value)
{
    struct raft_apply *req;
    struct raft_buffer buf;
    int rc = 0;
    int rv;

    req = malloc(sizeof *req);
    CHECK(cl, req != NULL, "out of memory");
    buf.len = 8;
    buf.base = raft_malloc(buf.len);
    CHECK(cl, buf.base != NULL, "out of memory");
    encode_u64(buf.base, value);
    rv = raft_apply(server(cl, i), req, &buf, 1, apply_cb);
    if (rv != 0) {
        raft_free(buf.base);
        free(req);
    }
    CHECK(cl, rv == 0, "raft_apply on S%u: %s", i + 1, raft_strerror(rv));
out:
    return rc;
}

static void set_election_timer(struct raft *r, unsigned msecs)
{
    switch (raft_state(r)) {
        case RAFT_FOLLOWER:
            r->follower_state.randomized_election_timeout = msecs;
            break;
        case RAFT_CANDIDATE:
            r->candidate_state.randomized_election_timeout = msecs;
            break;
        default:
            break;
    }
}

/* Step predicate: every server in the mask is ready to vote, that is, it is
 * not a follower that still knows a leader. */
struct voters_arg
{
    unsigned mask;
};

static bool voters_ready(struct raft_fixture *f, void *arg)
{
    const struct voters_arg *a = arg;
    unsigned j;
    for (j = 0; j < N_SERVERS; j++) {
        struct raft *r = raft_fixture_get(f, j);
        if ((a->mask & (1U << j)) != 0 && raft_state(r) == RAFT_FOLLOWER &&
            r->follower_state.current_leader.id != 0) {
            return false;
        }
    }
    return true;
}

static bool is_candidate_or_leader(struct raft_fixture *f, void *arg)
{
    const unsigned *i = arg;
    int state = raft_state(raft_fixture_get(f, *i));
    return state == RAFT_CANDIDATE || state == RAFT_LEADER;
}

#define SERVER_BIT(i) (1U << (i))

/* Make server i win an election with the votes of the servers in the voters
 * mask (it may get others too).
 *
 * 0.15.0 refuses a vote whenever the receiver is a follower that knows a
 * leader, however long ago it heard from it (its take on the dissertation's
 * section 4.2.3); a follower forgets its leader only when its own election
 * timer fires or a higher term reaches it. So, with everyone else's timers
 * pushed far out (ten election timeouts, longer than any phase here):
 *
 *  1. i's timer is made to fire at its next tick; it becomes candidate,
 *     having voted for itself, which also makes it refuse the voters'
 *     requests of the same term in step 2;
 *  2. each voter that still knows a leader is made to time out the same way,
 *     so it forgets that leader (its own candidacy fails: i and the other
 *     voters have voted for themselves or know a leader);
 *  3. i, retrying every election timeout with a higher term, then gets the
 *     voters' votes if its log is at least as up-to-date as theirs
 *     (section 5.4.1).
 *
 * Setting a randomized timer below the election timeout is what
 * raft_fixture_elect() itself does to make a timer fire at the next tick.
 * Unlike raft_fixture_elect(), no "stable leader" is required, so i may win
 * while partitioned from some servers, and dead servers may still believe
 * they lead. */
static int elect(struct cluster *cl, unsigned i, unsigned voters)
{
    struct raft *r = server(cl, i);
    unsigned timeout = r->election_timeout;
    struct voters_arg arg = {voters & ~SERVER_BIT(i)};
    unsigned j;
    int rc = 0;

    for (j = 0; j < N_SERVERS; j++) {
        if (j == i) {
            continue;
        }
        raft_fixture_set_randomized_election_timeout(&cl->f, j, timeout * 10);
        set_election_timer(server(cl, j), timeout * 10);
    }
    CHECK(cl, raft_state(r) == RAFT_FOLLOWER, "S%u must be follower to be elected, state %d", i + 1,
          raft_state(r));
    raft_fixture_set_randomized_election_timeout(&cl->f, i, timeout);
    set_election_timer(r, 0);
    CHECK(cl, raft_fixture_step_until(&cl->f, is_candidate_or_leader, &i, timeout),
          "S%u did not become candidate", i + 1);

    for (j = 0; j < N_SERVERS; j++) {
        struct raft *v = server(cl, j);
        if ((arg.mask & SERVER_BIT(j)) != 0 && raft_state(v) == RAFT_FOLLOWER &&
            v->follower_state.current_leader.id != 0) {
            set_election_timer(v, 0);
        }
    }
    CHECK(cl, raft_fixture_step_until(&cl->f, voters_ready, &arg, timeout),
          "voters of S%u still follow a leader", i + 1);

    CHECK(cl, raft_fixture_step_until_state_is(&cl->f, i, RAFT_LEADER, timeout * 5),
          "S%u was not elected within %u ms (term %llu)", i + 1, timeout * 5,
          (unsigned long long)r->current_term);
out:
    return rc;
}

static int step_until_follower(struct cluster *cl, unsigned i)
{
    int rc = 0;
    unsigned timeout = server(cl, i)->election_timeout;
    CHECK(cl, raft_fixture_step_until_state_is(&cl->f, i, RAFT_FOLLOWER, timeout * 3),
          "S%u did not step down within %u ms", i + 1, timeout * 3);
out:
    return rc;
}

struct stored_arg
{
    unsigned i;
    raft_index index;
};

static bool has_stored(struct raft_fixture *f, void *arg)
{
    const struct stored_arg *a = arg;
    return raft_fixture_get(f, a->i)->last_stored >= a->index;
}

static int step_until_stored(struct cluster *cl, unsigned i, raft_index index, unsigned max_msecs)
{
    struct stored_arg arg = {i, index};
    int rc = 0;
    CHECK(cl, raft_fixture_step_until(&cl->f, has_stored, &arg, max_msecs),
          "S%u did not store index %llu within %u ms (last stored %llu)", i + 1,
          (unsigned long long)index, max_msecs, (unsigned long long)server(cl, i)->last_stored);
out:
    return rc;
}

struct follows_arg
{
    unsigned follower;
    unsigned leader;
};

/* Whether the follower has accepted an AppendEntries of the leader's current
 * term. */
static bool follows_leader(struct raft_fixture *f, void *arg)
{
    const struct follows_arg *a = arg;
    struct raft *follower = raft_fixture_get(f, a->follower);
    struct raft *leader = raft_fixture_get(f, a->leader);
    return raft_state(follower) == RAFT_FOLLOWER &&
           follower->current_term == leader->current_term &&
           follower->follower_state.current_leader.id == leader->id;
}

static bool has_committed(struct raft_fixture *f, void *arg)
{
    const struct stored_arg *a = arg;
    return raft_fixture_get(f, a->i)->commit_index >= a->index;
}

/* Step until server i's commit index reaches index; false if max_msecs
 * elapsed first. */
static bool step_until_committed(struct cluster *cl, unsigned i, raft_index index,
                                 unsigned max_msecs)
{
    struct stored_arg arg = {i, index};
    return raft_fixture_step_until(&cl->f, has_committed, &arg, max_msecs);
}

static void saturate_both_ways(struct cluster *cl, unsigned i, unsigned j)
{
    raft_fixture_saturate(&cl->f, i, j);
    raft_fixture_saturate(&cl->f, j, i);
}

static void cluster_close(struct cluster *cl)
{
    unsigned i;
    if (cl->fixture_ready) {
        /* Closing the fixture completes pending writes through the guards'
         * wrappers, so the guards go after it, as leader_guard.h requires. */
        raft_fixture_close(&cl->f);
    }
    for (i = 0; i < N_SERVERS; i++) {
        leader_guard_close(&cl->guards[i]);
    }
    current_cluster = NULL;
}

/* Start 5 voters with the given guard mode, elect S1 in term 2 and commit one
 * command on every server, so that every scenario starts from identical,
 * fully committed logs. */
static int cluster_setup(struct cluster *cl, const char *test, enum guard_mode mode)
{
    struct raft_configuration configuration;
    raft_index base;
    unsigned i;
    int rc = 0;
    int rv;

    memset(cl, 0, sizeof *cl);
    cl->test = test;
    cl->mode = mode;
    current_cluster = cl;

    /* raft_fixture_initialize() leaves the server count to the caller. */
    rv = raft_fixture_initialize(&cl->f);
    CHECK(cl, rv == 0, "raft_fixture_initialize: %s", raft_strerror(rv));
    cl->fixture_ready = true;
    for (i = 0; i < N_SERVERS; i++) {
        struct raft_fsm *fsm = &cl->fsms[i];
        cl->test_fsms[i].cluster = cl;
        cl->test_fsms[i].i = i;
        fsm->version = 1;
        fsm->data = &cl->test_fsms[i];
        fsm->apply = fsm_apply;
        fsm->snapshot = fsm_snapshot;
        fsm->restore = fsm_restore;
        rv = raft_fixture_grow(&cl->f, fsm);
        CHECK(cl, rv == 0, "raft_fixture_grow: %s", raft_strerror(rv));
        raft_set_snapshot_threshold(server(cl, i), 1U << 30);
    }
    for (i = 0; i < N_SERVERS; i++) {
        struct raft_io *io = server(cl, i)->io;
        memset(&disk_faults[i], 0, sizeof disk_faults[i]);
        disk_faults[i].io = io;
        disk_faults[i].append = io->append;
        io->append = disk_fault_append;
    }
    for (i = 0; i < N_SERVERS; i++) {
        rv = leader_guard_init(&cl->guards[i], server(cl, i), mode != MODE_OFF);
        CHECK(cl, rv == 0, "leader_guard_init: %s", raft_strerror(rv));
        if (mode == MODE_HOLD_ONLY) {
            leader_guard_disable_barrier(&cl->guards[i]);
        }
        if (mode == MODE_NO_NOTICE) {
            leader_guard_disable_notice(&cl->guards[i]);
        }
    }

    rv = raft_fixture_configuration(&cl->f, N_SERVERS, &configuration);
    CHECK(cl, rv == 0, "raft_fixture_configuration: %s", raft_strerror(rv));
    rv = raft_fixture_bootstrap(&cl->f, &configuration);
    raft_configuration_close(&configuration);
    CHECK(cl, rv == 0, "raft_fixture_bootstrap: %s", raft_strerror(rv));
    rv = raft_fixture_start(&cl->f);
    CHECK(cl, rv == 0, "raft_fixture_start: %s", raft_strerror(rv));
    raft_fixture_hook(&cl->f, step_hook);

    TRY(elect(cl, 0, SERVER_BIT(1) | SERVER_BIT(2) | SERVER_BIT(3) | SERVER_BIT(4)));
    CHECK(cl, server(cl, 0)->current_term == 2, "S1 elected in term %llu, expected 2",
          (unsigned long long)server(cl, 0)->current_term);
    TRY(apply_value(cl, 0, VALUE_BASE));
    base = raft_last_index(server(cl, 0));
    CHECK(cl, raft_fixture_step_until_applied(&cl->f, N_SERVERS, base, 2000),
          "index %llu not applied everywhere within 2000 ms", (unsigned long long)base);
out:
    return rc;
}

/*
 * Figure 8 of the Raft paper, step by step. b is the last index every server
 * has applied after cluster_setup() (term 2, S1 leader). Terms grow by more
 * than one per election here, because 0.15.0 followers refuse votes while they
 * remember a leader (see elect()); the paper's terms 2 < 3 < 4 < 5 become
 * 2 < T3 < T4 < T5, which is all the argument needs.
 *
 *  (a) S1, leader in term 2, writes X at b+1 and replicates it only to S2.
 *  (b) S1 crashes. S5 is elected in T3 with the votes of S3, S4 and itself,
 *      and writes Y at b+1 (with the guard: its barrier at b+1, Y at b+2),
 *      without replicating anything.
 *  (c) S5 crashes. S1 restarts, is elected in T4 with the votes of S2 and S3,
 *      and replicates X to S3 only: X is now on a majority (S1, S2, S3). S1's
 *      disk is slow (500 ms per write, against a 30 ms round trip), so the
 *      followers' acknowledgements arrive before S1 has stored anything of
 *      T4. Without the guard 0.15.0 commits X here by counting replicas;
 *      with the guard the acknowledgements wait for S1's barrier. S1 crashes
 *      right after S3's acknowledgement reached it.
 *  (d) S5 restarts and is elected in T5 with the votes of S2 and S4: its
 *      last entry is of T3, newer than X's term 2. (With the guard S3 could
 *      not vote for it, holding S1's barrier of T4; it is not asked to.) S5
 *      overwrites b+1 on every live server and commits.
 *
 * Without the guard, S1 applied X at b+1 in (c) and the others apply Y at b+1
 * in (d): two different commands applied at one index. With the guard X was
 * never committed, so the overwrite in (d) is legal and every state machine
 * agrees.
 */
static int test_figure8(enum guard_mode mode)
{
    struct cluster cl;
    struct raft *s1;
    struct raft *s5;
    raft_index b;
    raft_index s5_last;
    raft_index s1_commit;
    raft_term term_y;
    raft_term term_s1;
    raft_term term_s5;
    unsigned i;
    int rc = 0;

    TRY(cluster_setup(&cl, "figure8", mode));
    s1 = server(&cl, 0);
    s5 = server(&cl, 4);
    b = raft_last_index(s1);

    /* (a) S1's AppendEntries reach only S2. */
    for (i = 2; i < N_SERVERS; i++) {
        raft_fixture_saturate(&cl.f, 0, i);
    }
    TRY(apply_value(&cl, 0, VALUE_X));
    CHECK(&cl, raft_last_index(s1) == b + 1, "X not at b+1");
    TRY(step_until_stored(&cl, 1, b + 1, 500));
    TRY(step_until_stored(&cl, 0, b + 1, 500));
    CHECK(&cl, s1->commit_index < b + 1, "X committed with 2 of 5 copies");

    /* (b) S1 crashes; S5 wins T3. S2 would refuse its vote (S2's log is more
     * up-to-date, section 5.4.1); S3 and S4 grant it. */
    raft_fixture_kill(&cl.f, 0);
    TRY(elect(&cl, 4, SERVER_BIT(2) | SERVER_BIT(3)));
    term_y = s5->current_term;
    CHECK(&cl, term_y > 2, "S5 elected in term %llu", (unsigned long long)term_y);
    /* S5's first AppendEntries are in flight; drop them, so that nothing S5
     * writes in T3 leaves it. */
    for (i = 0; i < N_SERVERS; i++) {
        if (i != 4) {
            raft_fixture_saturate(&cl.f, 4, i);
        }
    }
    TRY(apply_value(&cl, 4, VALUE_Y));
    s5_last = raft_last_index(s5);
    CHECK(&cl, s5_last == (mode == MODE_FULL ? b + 2 : b + 1), "S5's log ends at %llu, b is %llu",
          (unsigned long long)s5_last, (unsigned long long)b);
    TRY(step_until_stored(&cl, 4, s5_last, 500));

    /* (c) S5 crashes. S1 restarts, only reachable by S2 and S3, with a slow
     * disk. It still believes it leads term 2 until S3 answers with T3. */
    raft_fixture_kill(&cl.f, 4);
    raft_fixture_revive(&cl.f, 0);
    saturate_both_ways(&cl, 0, 3);
    raft_fixture_set_disk_latency(&cl.f, 0, 500);
    TRY(step_until_follower(&cl, 0));
    TRY(elect(&cl, 0, SERVER_BIT(1) | SERVER_BIT(2)));
    term_s1 = s1->current_term;
    CHECK(&cl, term_s1 > term_y, "S1 elected in term %llu, S5 led %llu",
          (unsigned long long)term_s1, (unsigned long long)term_y);
    /* S2 already holds X: let its answer to S1's first AppendEntries reach
     * S1, then cut S1 -> S2, so that S1 replicates to S3 only, as in the
     * figure (with the guard, S1's barrier thus stays off S2). */
    {
        struct follows_arg follows = {1, 0};
        CHECK(&cl, raft_fixture_step_until(&cl.f, follows_leader, &follows, 500),
              "S2 heard nothing from S1");
    }
    CHECK(&cl, raft_fixture_step_until_delivered(&cl.f, 1, 0, 500),
          "S2's acknowledgement did not reach S1");
    raft_fixture_saturate(&cl.f, 0, 1);
    TRY(step_until_stored(&cl, 2, b + 1, 500));
    CHECK(&cl, raft_fixture_step_until_delivered(&cl.f, 2, 0, 500),
          "S3's acknowledgement did not reach S1");
    s1_commit = s1->commit_index;
    raft_fixture_kill(&cl.f, 0);

    if (mode == MODE_OFF) {
        /* 0.15.0 counted S1, S2 and S3 for X, an entry of term 2, in T4. */
        CHECK(&cl, s1_commit >= b + 1,
              "expected 0.15.0 to commit the term-2 entry by counting replicas (the "
              "bug this guard exists for); S1's commit index is %llu, X is at %llu. "
              "Has the fixture or the library changed?",
              (unsigned long long)s1_commit, (unsigned long long)(b + 1));
        CHECK(&cl, fsm_value_at(&cl, 0, b + 1) == VALUE_X, "S1 did not apply X at %llu",
              (unsigned long long)(b + 1));
    } else {
        CHECK(&cl, s1_commit < b + 1, "S1 committed index %llu with no entry of T4 stored",
              (unsigned long long)s1_commit);
        CHECK(&cl, leader_guard_held(&cl.guards[0]) > 0,
              "the guard on S1 held nothing back, so this run did not exercise it");
    }

    /* (d) S5 restarts. It still believes it leads T3 until S2 or S3 answer
     * with T4, then wins T5. */
    raft_fixture_revive(&cl.f, 4);
    TRY(step_until_follower(&cl, 4));
    TRY(elect(&cl, 4, SERVER_BIT(1) | SERVER_BIT(3)));
    term_s5 = s5->current_term;
    CHECK(&cl, term_s5 > term_s1, "S5 elected in term %llu, S1 led %llu",
          (unsigned long long)term_s5, (unsigned long long)term_s1);
    s5_last = raft_last_index(s5);
    for (i = 1; i < N_SERVERS; i++) {
        CHECK(&cl, raft_fixture_step_until_applied(&cl.f, i, s5_last, 3000),
              "S%u did not apply up to %llu within 3000 ms", i + 1, (unsigned long long)s5_last);
    }

    if (mode == MODE_OFF) {
        CHECK(&cl, cl.violation.seen,
              "expected 0.15.0 to break State Machine Safety in Figure 8 (d), but no two "
              "servers applied different commands at one index");
        CHECK(&cl, cl.violation.index == b + 1, "violation at %llu, expected %llu",
              (unsigned long long)cl.violation.index, (unsigned long long)(b + 1));
        CHECK(&cl, cl.violation.first_value == VALUE_X && cl.violation.second_value == VALUE_Y,
              "unexpected values %" PRIu64 " / %" PRIu64, cl.violation.first_value,
              cl.violation.second_value);
        for (i = 1; i < N_SERVERS; i++) {
            CHECK(&cl, fsm_value_at(&cl, i, b + 1) == VALUE_Y, "S%u did not apply Y at %llu", i + 1,
                  (unsigned long long)(b + 1));
        }
        printf("  [%s] reproduced: S%u applied X=%d at index %llu, S%u applied Y=%d there "
               "(step %lu)\n",
               mode_name(mode), cl.violation.first_server + 1, VALUE_X,
               (unsigned long long)cl.violation.index, cl.violation.second_server + 1, VALUE_Y,
               cl.violation.step);
    } else {
        CHECK(&cl, !cl.violation.seen,
              "State Machine Safety broken: S%u applied %" PRIu64 " at index %llu, S%u "
              "applied %" PRIu64 " (step %lu)",
              cl.violation.first_server + 1, cl.violation.first_value,
              (unsigned long long)cl.violation.index, cl.violation.second_server + 1,
              cl.violation.second_value, cl.violation.step);
        /* S2..S5 applied past b+1 without ever applying X: X, which S2 and
         * S3 held at b+1, was overwritten, legally since it was never
         * committed. */
        for (i = 0; i < N_SERVERS; i++) {
            CHECK(&cl, !fsm_applied_value(&cl, i, VALUE_X), "S%u applied X, never committed",
                  i + 1);
        }
        for (i = 1; i < N_SERVERS; i++) {
            CHECK(&cl, fsm_value_at(&cl, i, b + 2) == VALUE_Y, "S%u did not apply Y at %llu", i + 1,
                  (unsigned long long)(b + 2));
        }
        printf("  [%s] safe: X never committed, Y applied at %llu on S2..S5; S1's guard held "
               "%lu results\n",
               mode_name(mode), (unsigned long long)(b + 2), leader_guard_held(&cl.guards[0]));
    }

out:
    cluster_close(&cl);
    return rc;
}

/*
 * Bug 1 (upstream 29bb302): a new leader appends no entry of its own term.
 *
 * S1, leader in term 2, replicates X to S2 and S3, a majority, but their
 * acknowledgements never reach S1, so nobody knows X is committed. S1
 * crashes; S2 is elected in a later term T with X as its last entry, and no
 * client writes.
 *
 * - Without the guard, 0.15.0's bug 2 hides bug 1: S2 commits X anyway, by
 *   counting replicas of a term-2 entry in T while its log holds nothing of
 *   T. The test asserts exactly that (it is the unsafe rule, harmless here
 *   only because X really is on a majority).
 * - With the hold-back alone (bug 2 fixed, bug 1 not), S2's commit index does
 *   not move for 800 ms (eight heartbeats) until a client writes; then the
 *   client's entry commits X with it.
 * - With the full guard, S2's barrier of term T commits X within a few
 *   round trips, without any client write.
 */
static int test_new_leader_commits(enum guard_mode mode)
{
    struct cluster cl;
    struct raft *s2;
    raft_index b;
    unsigned long steps_before;
    raft_time time_before;
    int rc = 0;

    TRY(cluster_setup(&cl, "new_leader_commits", mode));
    s2 = server(&cl, 1);
    b = raft_last_index(server(&cl, 0));

    /* S1's AppendEntries reach S2 and S3 only, and no acknowledgement comes
     * back to S1. */
    raft_fixture_saturate(&cl.f, 0, 3);
    raft_fixture_saturate(&cl.f, 0, 4);
    raft_fixture_saturate(&cl.f, 1, 0);
    raft_fixture_saturate(&cl.f, 2, 0);
    TRY(apply_value(&cl, 0, VALUE_X));
    TRY(step_until_stored(&cl, 1, b + 1, 500));
    TRY(step_until_stored(&cl, 2, b + 1, 500));
    CHECK(&cl, server(&cl, 0)->commit_index < b + 1, "S1 committed X without acknowledgements");
    raft_fixture_kill(&cl.f, 0);

    TRY(elect(&cl, 1, SERVER_BIT(2) | SERVER_BIT(3) | SERVER_BIT(4)));
    steps_before = cl.steps;
    time_before = cl.f.time;

    switch (mode) {
        case MODE_OFF:
            CHECK(&cl, step_until_committed(&cl, 1, b + 1, 500),
                  "expected 0.15.0 to commit X by counting replicas; commit index %llu",
                  (unsigned long long)s2->commit_index);
            CHECK(&cl, raft_last_index(s2) == b + 1,
                  "S2 appended an entry of its own term (last index %llu): has 29bb302 "
                  "reached this libraft?",
                  (unsigned long long)raft_last_index(s2));
            printf("  [%s] S2 committed term-2 entry %llu by counting replicas in term %llu, "
                   "with no entry of that term in its log (bug 2 masking bug 1)\n",
                   mode_name(mode), (unsigned long long)(b + 1),
                   (unsigned long long)s2->current_term);
            break;
        case MODE_HOLD_ONLY:
            /* Eight heartbeats, less than an election timeout: a leader that
             * hears no acknowledgement for a whole election timeout steps
             * down. */
            raft_fixture_step_until_elapsed(&cl.f, 800);
            CHECK(&cl, raft_state(s2) == RAFT_LEADER, "S2 lost leadership");
            CHECK(&cl, s2->commit_index < b + 1,
                  "commit index advanced to %llu with no entry of S2's term",
                  (unsigned long long)s2->commit_index);
            CHECK(&cl, raft_last_index(s2) == b + 1, "an entry of S2's term appeared");
            CHECK(&cl, leader_guard_held(&cl.guards[1]) > 0, "nothing held back");
            /* A client write is the only thing that unblocks it. */
            TRY(apply_value(&cl, 1, VALUE_Z));
            CHECK(&cl, step_until_committed(&cl, 1, b + 2, 500),
                  "the client entry did not commit; commit index %llu",
                  (unsigned long long)s2->commit_index);
            CHECK(&cl, fsm_value_at(&cl, 1, b + 1) == VALUE_X, "X not applied at %llu",
                  (unsigned long long)(b + 1));
            printf("  [%s] commit index stuck at %llu for 800 ms until a client wrote\n",
                   mode_name(mode), (unsigned long long)b);
            break;
        case MODE_FULL:
        case MODE_NO_NOTICE:
            CHECK(&cl, step_until_committed(&cl, 1, b + 2, 500),
                  "the guard's barrier did not commit within 500 ms; commit index %llu",
                  (unsigned long long)s2->commit_index);
            CHECK(&cl, raft_last_index(s2) == b + 2, "expected exactly the barrier after X");
            CHECK(&cl, leader_guard_barriers(&cl.guards[1]) == 1,
                  "S2's guard appended %lu barriers", leader_guard_barriers(&cl.guards[1]));
            CHECK(&cl, fsm_value_at(&cl, 1, b + 1) == VALUE_X, "X not applied at %llu",
                  (unsigned long long)(b + 1));
            printf("  [%s] S2 committed X through its barrier of term %llu after %lu steps, "
                   "%llu ms\n",
                   mode_name(mode), (unsigned long long)s2->current_term, cl.steps - steps_before,
                   (unsigned long long)(cl.f.time - time_before));
            break;
    }
    CHECK(&cl, !cl.violation.seen, "State Machine Safety broken at index %llu",
          (unsigned long long)cl.violation.index);

out:
    cluster_close(&cl);
    return rc;
}

/*
 * Leftover entries counted as matched (docs/raft.md, section 3): a
 * follower answers a successful AppendEntries with last_log_index =
 * last_stored, which can include entries of an older term past the prefix the
 * request verified.
 *
 *  (a) S1, leader in term 2, writes Y1 and Y2 and replicates them only to S2.
 *  (b) S1 crashes. S3 is elected with S4 and S5 (S2 would refuse: its log is
 *      longer), cut off from S5 afterwards, and a client writes C to it. S3's
 *      first, empty AppendEntries checks S2's log only up to b; S2 answers
 *      "success, last_log_index b+2", counting Y1 and Y2.
 *  (c) Without the follower-side fix, S3 takes b+2 as S2's match index and
 *      commits C with S3, S4 and S2, though S2 does not have C; S3 applies C
 *      and crashes.
 *  (d) S1 restarts and S2 is elected with S1 and S5 (S4 refuses: it has C).
 *      S2's log has Y1, Y2 where C was; it commits them.
 *
 * Without the guard S3 applied C at an index where the others apply Y1 (or Y2
 * with the guard's barrier shifting indexes): the test asserts the violation.
 * With the guard, S2 answers "last_log_index b", S3 sends S2 its entries, S2
 * drops Y1 and Y2, and C is committed only once S2 really has it.
 */
static int test_leftover_match(enum guard_mode mode)
{
    struct cluster cl;
    struct raft *s1;
    struct raft *s3;
    raft_index b;
    raft_index c_index;
    unsigned s2_appends_before;
    unsigned s2_appends;
    bool committed;
    unsigned i;
    int rc = 0;

    TRY(cluster_setup(&cl, "leftover_match", mode));
    s1 = server(&cl, 0);
    s3 = server(&cl, 2);
    b = raft_last_index(s1);

    /* (a) */
    for (i = 2; i < N_SERVERS; i++) {
        raft_fixture_saturate(&cl.f, 0, i);
    }
    TRY(apply_value(&cl, 0, VALUE_Y));
    TRY(apply_value(&cl, 0, VALUE_Y2));
    TRY(step_until_stored(&cl, 1, b + 2, 500));
    raft_fixture_kill(&cl.f, 0);

    /* (b) */
    TRY(elect(&cl, 2, SERVER_BIT(3) | SERVER_BIT(4)));
    raft_fixture_saturate(&cl.f, 2, 4);
    s2_appends_before = raft_fixture_n_recv(&cl.f, 1, RAFT_IO_APPEND_ENTRIES);
    TRY(apply_value(&cl, 2, VALUE_C));
    c_index = raft_last_index(s3);

    /* (c) Give S3 a few round trips, well under a heartbeat interval of
     * 100 ms after which it would send S2 its entries anyway. */
    committed = step_until_committed(&cl, 2, c_index, 80);
    s2_appends = raft_fixture_n_recv(&cl.f, 1, RAFT_IO_APPEND_ENTRIES) - s2_appends_before;
    raft_fixture_kill(&cl.f, 2);
    if (mode == MODE_OFF) {
        CHECK(&cl, committed,
              "expected 0.15.0 to commit C with S2's leftover entries counted; S3's "
              "commit index %llu, C at %llu",
              (unsigned long long)s3->commit_index, (unsigned long long)c_index);
        CHECK(&cl, s2_appends <= 1,
              "S2 received %u AppendEntries from S3, expected only the first, empty one",
              s2_appends);
        CHECK(&cl, fsm_value_at(&cl, 2, c_index) == VALUE_C, "S3 did not apply C");
    } else {
        CHECK(&cl, leader_guard_results_fixed(&cl.guards[1]) > 0,
              "S2's guard corrected no result, so this run did not exercise it");
    }

    /* (d) */
    raft_fixture_revive(&cl.f, 0);
    TRY(step_until_follower(&cl, 0));
    TRY(elect(&cl, 1, SERVER_BIT(0) | SERVER_BIT(4)));
    {
        raft_index last = raft_last_index(server(&cl, 1));
        static const unsigned alive[] = {0, 1, 3, 4};
        for (i = 0; i < sizeof alive / sizeof alive[0]; i++) {
            CHECK(&cl, raft_fixture_step_until_applied(&cl.f, alive[i], last, 3000),
                  "S%u did not apply up to %llu", alive[i] + 1, (unsigned long long)last);
        }
    }

    if (mode == MODE_OFF) {
        CHECK(&cl, cl.violation.seen,
              "expected 0.15.0 to break State Machine Safety after counting S2's leftovers");
        CHECK(&cl, cl.violation.index == c_index, "violation at %llu, C was at %llu",
              (unsigned long long)cl.violation.index, (unsigned long long)c_index);
        printf("  [%s] reproduced: S%u applied %" PRIu64 " at index %llu, S%u applied %" PRIu64
               " there (step %lu)\n",
               mode_name(mode), cl.violation.first_server + 1, cl.violation.first_value,
               (unsigned long long)cl.violation.index, cl.violation.second_server + 1,
               cl.violation.second_value, cl.violation.step);
    } else {
        CHECK(&cl, !cl.violation.seen,
              "State Machine Safety broken: S%u applied %" PRIu64 " at index %llu, S%u "
              "applied %" PRIu64 " (step %lu)",
              cl.violation.first_server + 1, cl.violation.first_value,
              (unsigned long long)cl.violation.index, cl.violation.second_server + 1,
              cl.violation.second_value, cl.violation.step);
        printf("  [%s] safe: S2's guard corrected %lu results; C %s before S3 crashed\n",
               mode_name(mode), leader_guard_results_fixed(&cl.guards[1]),
               committed ? "committed (with S2 really holding it)" : "was not committed");
    }

out:
    cluster_close(&cl);
    return rc;
}

/*
 * A leader's disk write fails (upstream 0cac59c and 23ed201).
 *
 * S1 leads; the write of its entry C1 fails on its own disk, after C1 was sent
 * to the followers, which store it. 0.15.0 drops C1 from S1's log but keeps S1
 * leader in the same term, so the next write, C2, gets C1's index and term.
 * The followers take C2's AppendEntries as matching what they have (same
 * index, same term) and keep C1; S1 commits the index and applies C2, the
 * followers apply C1. The test asserts this without the guard. With the guard,
 * S1 steps down at once; a new leader commits C1 and every server agrees.
 */
static int test_leader_write_failure(enum guard_mode mode)
{
    struct cluster cl;
    struct raft *s1;
    raft_index b;
    unsigned i;
    int rc = 0;

    TRY(cluster_setup(&cl, "leader_write_failure", mode));
    s1 = server(&cl, 0);
    b = raft_last_index(s1);

    disk_faults[0].armed = true;
    TRY(apply_value(&cl, 0, VALUE_C1));
    {
        unsigned fired = disk_faults[0].fired;
        raft_time start = cl.f.time;
        while (disk_faults[0].fired == fired && cl.f.time - start < 500) {
            raft_fixture_step(&cl.f);
        }
        CHECK(&cl, disk_faults[0].fired > fired, "S1's write of C1 never completed");
    }

    if (mode == MODE_OFF) {
        CHECK(&cl, raft_state(s1) == RAFT_LEADER,
              "expected 0.15.0 to keep S1 leader after its write failed: has 0cac59c reached "
              "this libraft?");
        CHECK(&cl, raft_last_index(s1) == b, "S1 kept C1 in its log");
        TRY(apply_value(&cl, 0, VALUE_C2));
        CHECK(&cl, raft_last_index(s1) == b + 1, "C2 not at C1's index");
        for (i = 0; i < N_SERVERS; i++) {
            CHECK(&cl, raft_fixture_step_until_applied(&cl.f, i, b + 1, 2000),
                  "S%u did not apply %llu", i + 1, (unsigned long long)(b + 1));
        }
        CHECK(&cl, cl.violation.seen, "expected 0.15.0 to apply different commands at index %llu",
              (unsigned long long)(b + 1));
        CHECK(&cl,
              fsm_value_at(&cl, 0, b + 1) == VALUE_C2 && fsm_value_at(&cl, 1, b + 1) == VALUE_C1,
              "expected C2 on S1 and C1 on S2 at %llu", (unsigned long long)(b + 1));
        printf("  [%s] reproduced: S1 applied C2 at index %llu, the followers applied C1\n",
               mode_name(mode), (unsigned long long)(b + 1));
    } else {
        raft_index last;
        CHECK(&cl, raft_state(s1) != RAFT_LEADER, "S1 still leads after its write failed");
        CHECK(&cl, leader_guard_write_failures(&cl.guards[0]) == 1, "%lu write failures counted",
              leader_guard_write_failures(&cl.guards[0]));
        TRY(elect(&cl, 1, SERVER_BIT(0) | SERVER_BIT(2) | SERVER_BIT(3) | SERVER_BIT(4)));
        TRY(apply_value(&cl, 1, VALUE_C2));
        last = raft_last_index(server(&cl, 1));
        for (i = 0; i < N_SERVERS; i++) {
            CHECK(&cl, raft_fixture_step_until_applied(&cl.f, i, last, 2000),
                  "S%u did not apply %llu", i + 1, (unsigned long long)last);
        }
        CHECK(&cl, !cl.violation.seen,
              "State Machine Safety broken: S%u applied %" PRIu64 " at index %llu, S%u "
              "applied %" PRIu64 " (step %lu)",
              cl.violation.first_server + 1, cl.violation.first_value,
              (unsigned long long)cl.violation.index, cl.violation.second_server + 1,
              cl.violation.second_value, cl.violation.step);
        for (i = 0; i < N_SERVERS; i++) {
            CHECK(&cl, fsm_value_at(&cl, i, b + 1) == VALUE_C1, "S%u did not apply C1 at %llu",
                  i + 1, (unsigned long long)(b + 1));
        }
        printf("  [%s] safe: S1 stepped down after its failed write; C1 committed by the next "
               "leader\n",
               mode_name(mode));
    }

out:
    cluster_close(&cl);
    return rc;
}

/* Whether every follower (S2..S5) commits index, each within max_msecs of
 * the previous one. */
static bool followers_commit_within(struct cluster *cl, raft_index index, unsigned max_msecs)
{
    bool all = true;
    unsigned i;
    for (i = 1; i < N_SERVERS; i++) {
        if (!step_until_committed(cl, i, index, max_msecs)) {
            all = false;
        }
    }
    return all;
}

/* The end of every commit notice scenario: with or without notices, every
 * server applies index, and they agree. */
static int all_apply_and_agree(struct cluster *cl, raft_index index)
{
    int rc = 0;
    CHECK(cl, raft_fixture_step_until_applied(&cl->f, N_SERVERS, index, 2000),
          "index %llu not applied everywhere", (unsigned long long)index);
    CHECK(cl, !cl->violation.seen, "State Machine Safety broken at index %llu",
          (unsigned long long)cl->violation.index);
out:
    return rc;
}

/* S1, leader, writes value at the next index (*index) and commits it. */
static int s1_writes_and_commits(struct cluster *cl, uint64_t value, raft_index *index)
{
    int rc = 0;
    *index = raft_last_index(server(cl, 0)) + 1;
    TRY(apply_value(cl, 0, value));
    CHECK(cl, step_until_committed(cl, 0, *index, 500), "S1 did not commit %llu",
          (unsigned long long)*index);
out:
    return rc;
}

/* Followers learn of a commit as soon as the leader knows it (commit
 * notices, as leader). b+1 is written and committed by S1; raft 0.15 would
 * tell the followers in its next AppendEntries, here the next heartbeat,
 * made 500 ms long. With notices every follower commits b+1 one network hop
 * (15 ms in the fixture) after S1 does. */
static int test_commit_notice(enum guard_mode mode)
{
    struct cluster cl;
    raft_index b;
    raft_index x;
    raft_time committed_at;
    bool all_within;
    int rc = 0;

    TRY(cluster_setup(&cl, "commit_notice", mode));
    raft_set_heartbeat_timeout(server(&cl, 0), 500);
    TRY(s1_writes_and_commits(&cl, VALUE_C, &x));
    b = x - 1;
    committed_at = cl.f.time;
    all_within = followers_commit_within(&cl, b + 1, 40);
    if (mode == MODE_NO_NOTICE) {
        CHECK(&cl, !all_within, "followers learned of the commit within 40 ms without notices");
        printf("  [%s] followers did not learn of commit %llu within 40 ms\n", mode_name(mode),
               (unsigned long long)(b + 1));
    } else {
        CHECK(&cl, all_within, "a follower did not commit %llu within 40 ms of S1",
              (unsigned long long)(b + 1));
        CHECK(&cl, leader_guard_notices(&cl.guards[0]) > 0, "S1 sent no notice");
        printf("  [%s] every follower committed %llu %llu ms after S1 (%lu notices)\n",
               mode_name(mode), (unsigned long long)(b + 1),
               (unsigned long long)(cl.f.time - committed_at), leader_guard_notices(&cl.guards[0]));
    }
    TRY(all_apply_and_agree(&cl, b + 1));
out:
    cluster_close(&cl);
    return rc;
}

/* A follower acts on the commit index a request carries before writing the
 * request's entries (commit notices, as follower). S1 sends no notices
 * here, and followers' disks take 100 ms a write: S1 commits X at b+1, then
 * Y's AppendEntries tells the followers. raft 0.15 commits b+1 on a follower
 * only once Y is on its disk; with the split, on arrival. */
static int test_commit_split(enum guard_mode mode)
{
    struct cluster cl;
    raft_index b;
    raft_index x;
    unsigned i;
    bool all_within;
    bool y_stored = false;
    int rc = 0;

    TRY(cluster_setup(&cl, "commit_split", mode));
    leader_guard_disable_notice(&cl.guards[0]);
    raft_set_heartbeat_timeout(server(&cl, 0), 500);
    for (i = 1; i < N_SERVERS; i++) {
        raft_fixture_set_disk_latency(&cl.f, i, 100);
    }
    TRY(s1_writes_and_commits(&cl, VALUE_X, &x));
    b = x - 1;
    CHECK(&cl, server(&cl, 1)->commit_index < b + 1, "S2 knew of the commit before Y was sent");
    TRY(apply_value(&cl, 0, VALUE_Y));
    all_within = followers_commit_within(&cl, b + 1, 40);
    for (i = 1; i < N_SERVERS; i++) {
        if (server(&cl, i)->last_stored >= b + 2) {
            y_stored = true;
        }
    }
    if (mode == MODE_NO_NOTICE) {
        CHECK(&cl, !all_within, "followers committed %llu within 40 ms without the split",
              (unsigned long long)(b + 1));
        printf("  [%s] followers committed %llu only after writing Y\n", mode_name(mode),
               (unsigned long long)(b + 1));
    } else {
        CHECK(&cl, all_within, "a follower did not commit %llu within 40 ms of Y's request",
              (unsigned long long)(b + 1));
        CHECK(&cl, !y_stored, "a follower had written Y already: the test shows nothing");
        unsigned long splits = 0;
        for (i = 1; i < N_SERVERS; i++) {
            splits += leader_guard_splits(&cl.guards[i]);
        }
        CHECK(&cl, splits >= N_SERVERS - 1, "followers split %lu requests", splits);
        printf("  [%s] followers committed %llu on Y's arrival, before writing Y\n",
               mode_name(mode), (unsigned long long)(b + 1));
    }
    TRY(all_apply_and_agree(&cl, b + 2));
    CHECK(&cl, fsm_value_at(&cl, 3, b + 1) == VALUE_X && fsm_value_at(&cl, 3, b + 2) == VALUE_Y,
          "S4 applied something else");
out:
    cluster_close(&cl);
    return rc;
}

/* A commit index that arrives while the entries it covers are still being
 * written is acted on when the write completes. S5's disk takes 300 ms a
 * write, the others' 100 ms: S1 commits X with S2..S4, and its notice reaches
 * S5 while S5 is still writing X. raft 0.15 commits min(leader_commit,
 * last_stored) on an empty AppendEntries and forgets the rest, so S5 would
 * wait for S1's next message (a 500 ms heartbeat here, or never if S1 died);
 * the guard hands the notice to raft again after the write. Variant
 * "replay": the same with that part disabled on S5. */
static int test_commit_replay(enum guard_mode mode, bool replay)
{
    struct cluster cl;
    raft_index b;
    raft_index x;
    raft_time applied_at;
    bool within;
    unsigned i;
    int rc = 0;

    TRY(cluster_setup(&cl, replay ? "commit_replay" : "commit_replay_disabled", mode));
    if (!replay) {
        leader_guard_disable_replay(&cl.guards[4]);
    }
    raft_set_heartbeat_timeout(server(&cl, 0), 500);
    for (i = 1; i < N_SERVERS; i++) {
        raft_fixture_set_disk_latency(&cl.f, i, i == 4 ? 300 : 100);
    }
    applied_at = cl.f.time;
    TRY(s1_writes_and_commits(&cl, VALUE_X, &x));
    b = x - 1;
    CHECK(&cl, server(&cl, 4)->last_stored < b + 1, "S5 stored X before S1 committed it");
    within = step_until_committed(&cl, 4, b + 1, 340 - (unsigned)(cl.f.time - applied_at));
    if (replay) {
        CHECK(&cl, within, "S5 did not commit %llu when its write completed (%llu ms)",
              (unsigned long long)(b + 1), (unsigned long long)(cl.f.time - applied_at));
        printf("  [%s] S5 committed %llu %llu ms after the write was proposed, as its disk "
               "write completed\n",
               mode_name(mode), (unsigned long long)(b + 1),
               (unsigned long long)(cl.f.time - applied_at));
    } else {
        CHECK(&cl, !within, "S5 committed %llu within 340 ms without the replay",
              (unsigned long long)(b + 1));
        printf("  [%s, no replay] S5 did not commit %llu within 340 ms\n", mode_name(mode),
               (unsigned long long)(b + 1));
    }
    TRY(all_apply_and_agree(&cl, b + 1));
out:
    cluster_close(&cl);
    return rc;
}

static int run_commit_replay(enum guard_mode mode)
{
    return test_commit_replay(mode, true);
}

static int run_commit_replay_disabled(enum guard_mode mode)
{
    return test_commit_replay(mode, false);
}

/* The guard must follow leadership changes: every election of a guarded
 * server appends one barrier, held results are dropped on step-down, and a
 * cluster keeps making progress across several elections. */
static int test_elections_progress(void)
{
    struct cluster cl;
    unsigned round;
    unsigned long barriers = 0;
    int rc = 0;

    TRY(cluster_setup(&cl, "elections_progress", MODE_FULL));
    for (round = 0; round < 4; round++) {
        unsigned leader = round % N_SERVERS;
        unsigned next = (round + 1) % N_SERVERS;
        raft_index index;

        TRY(apply_value(&cl, leader, VALUE_Z + round));
        index = raft_last_index(server(&cl, leader));
        CHECK(&cl, raft_fixture_step_until_applied(&cl.f, N_SERVERS, index, 2000),
              "round %u: index %llu not applied everywhere", round, (unsigned long long)index);
        /* Crash the leader, elect the next server, and bring the old leader
         * back: it steps down when it hears the new term. */
        raft_fixture_kill(&cl.f, leader);
        TRY(elect(&cl, next, 0x1FU & ~SERVER_BIT(leader)));
        raft_fixture_revive(&cl.f, leader);
    }
    for (round = 0; round < N_SERVERS; round++) {
        barriers += leader_guard_barriers(&cl.guards[round]);
    }
    /* Five leaderships: the setup's and one per round. */
    CHECK(&cl, barriers == 5, "expected 5 barriers, got %lu", barriers);
    CHECK(&cl, !cl.violation.seen, "State Machine Safety broken at index %llu",
          (unsigned long long)cl.violation.index);
out:
    cluster_close(&cl);
    return rc;
}

struct test_case
{
    const char *name;
    int (*run)(enum guard_mode mode);
    enum guard_mode mode;
};

static int run_elections_progress(enum guard_mode mode)
{
    (void)mode;
    return test_elections_progress();
}

static const struct test_case test_cases[] = {
    {"figure8", test_figure8, MODE_OFF},
    {"figure8", test_figure8, MODE_FULL},
    {"new_leader_commits", test_new_leader_commits, MODE_OFF},
    {"new_leader_commits", test_new_leader_commits, MODE_HOLD_ONLY},
    {"new_leader_commits", test_new_leader_commits, MODE_FULL},
    {"leftover_match", test_leftover_match, MODE_OFF},
    {"leftover_match", test_leftover_match, MODE_FULL},
    {"leader_write_failure", test_leader_write_failure, MODE_OFF},
    {"leader_write_failure", test_leader_write_failure, MODE_FULL},
    {"elections_progress", run_elections_progress, MODE_FULL},
    {"commit_notice", test_commit_notice, MODE_NO_NOTICE},
    {"commit_notice", test_commit_notice, MODE_FULL},
    {"commit_split", test_commit_split, MODE_NO_NOTICE},
    {"commit_split", test_commit_split, MODE_FULL},
    {"commit_replay_disabled", run_commit_replay_disabled, MODE_FULL},
    {"commit_replay", run_commit_replay, MODE_FULL},
};

int main(int argc, char *argv[])
{
    size_t i;
    unsigned failed = 0;
    unsigned ran = 0;

    for (i = 0; i < sizeof test_cases / sizeof test_cases[0]; i++) {
        const struct test_case *t = &test_cases[i];
        int rv;
        /* An optional argument selects tests by name. */
        if (argc > 1 && strcmp(argv[1], t->name) != 0) {
            continue;
        }
        printf("%s [%s]\n", t->name, mode_name(t->mode));
        fflush(stdout);
        rv = t->run(t->mode);
        ran++;
        if (rv != 0) {
            failed++;
        }
        printf("%s [%s]: %s\n", t->name, mode_name(t->mode), rv == 0 ? "ok" : "FAILED");
        fflush(stdout);
    }
    printf("%u of %u passed\n", ran - failed, ran);
    return failed == 0 && ran > 0 ? 0 : 1;
}
