/*
 * leader_guard: closes safety gaps of canonical/raft 0.15.0 from outside the
 * library. The header states the contract; this file explains why each step
 * is needed. docs/raft.md has the inventory of upstream fixes.
 *
 * Four wrappers do the work: the tick and receive callbacks (to notice
 * leadership and hold back results), io->append (to see every write and its
 * completion) and io->send (to correct the results this node sends as a
 * follower, see guard_send()). A failed write of the leader's own entries
 * makes it step down (see guard_step_down()). The same wrappers carry the
 * commit notices, a latency fix (see "Commit notices" below).
 *
 * Lifecycle of one leadership, as the guard sees it:
 *
 *                 raft becomes leader of term T
 *   (any state) ------------------------------------> HOLDING
 *                 (seen after the tick or recv              |
 *                  callback returns; a barrier is           | an append of a
 *                  appended at once)                        | term-T entry is
 *                                                           | stored (status 0)
 *                                                           v
 *   (any state) <------------------------------------ OPEN
 *                 step-down or term change: held
 *                 messages are dropped, state reset
 *
 * In HOLDING, AppendEntries results that could advance the commit index are
 * queued instead of being handed to raft. When the leader's own entry of term
 * T is stored they are handed over in arrival order (OPEN).
 *
 * Why holding back results is enough: 0.15.0 decides commitment only in
 * replicationQuorum(r, r->last_stored), called when an AppendEntries result
 * arrives and when the leader's own write completes. Once the leader has
 * stored an entry of its own term, r->last_stored points at an entry of the
 * current term (a leader appends only entries of its term after its first
 * one), so counting replicas of that index is exactly the rule of the Raft
 * paper, section 5.4.2: "only log entries from the leader's current term are
 * committed by counting replicas; once an entry from the current term has
 * been committed in this way, then all prior entries are committed
 * indirectly". Before that moment r->last_stored may point at an entry of an
 * earlier term, and counting its replicas is the Figure 8 violation.
 *
 * Why the barrier: with results held back, a leader that appends nothing of
 * its own term would never commit anything (and never learn which earlier
 * entries are committed, dissertation section 6.4). Upstream 29bb302 made the
 * leader append a no-op at the start of its term for that reason; the guard
 * does the same with raft_barrier().
 *
 * Threading: like raft itself, the guard is used from one thread (the libuv
 * loop thread). The table of guards (used to get from a struct raft_io back to
 * its guard) is therefore a plain list.
 */
#include "leader_guard.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Upper bound on AppendEntries results held back by one guard. A leader
 * normally stores its own entry within one disk write, so only a handful of
 * results arrive meanwhile (one per follower per AppendEntries sent). If the
 * bound is hit the oldest held result is dropped: losing a message is
 * something Raft tolerates (the leader sends AppendEntries again at the next
 * heartbeat and the follower answers again), unlike unbounded memory. */
#define LEADER_GUARD_HELD_MAX 256

/* One AppendEntries result received while the leader had not yet stored an
 * entry of its term. */
struct guard_held
{
    struct guard_held *next;                  /* owned (next in FIFO) */
    raft_id server_id;                        /* sender */
    char *server_address;                     /* owned copy: the io's string may be freed */
    struct raft_append_entries_result result; /* plain values, no pointers */
};

/* One io->append request in flight, so the completion can be attributed. */
struct guard_append
{
    struct guard_append *next;  /* owned (next in list) */
    struct raft_io_append *req; /* borrowed: raft owns the request */
    raft_io_append_cb cb;       /* raft's own callback, called first */
    raft_term leader_term;      /* term if submitted as leader with entries of that term, or 0 */
    raft_term submit_term;      /* raft's term when the write was submitted */
    raft_index last_index;      /* index of the last entry written */
};

/* The guard's barrier, with a way back to the guard for its callback. */
struct guard_barrier
{
    struct raft_barrier req; /* must stay first: the callback gets &req */
    struct guard_impl *impl; /* borrowed */
};

/* What raft, as leader, last sent one follower in an AppendEntries: the
 * position the request left that follower's log at, and the highest commit
 * index it was told in the term. */
struct guard_peer
{
    raft_id id;
    raft_term term;        /* the leader's term when sent; 0 when unknown */
    raft_index last_index; /* prev_log_index + n_entries */
    raft_term last_term;   /* term of the entry at last_index */
    raft_index commit;     /* highest leader_commit sent in that term */
};

/* The private part of struct leader_guard. */
/* Contacts from the leader kept until this node applies their commit. */
#define GUARD_CONTACTS_MAX 64

struct guard_contact
{
    raft_time time;
    raft_index commit;
};

struct guard_impl
{
    struct guard_impl *next_impl; /* borrowed: next entry of the process-wide table */
    struct leader_guard *guard;   /* borrowed: the public struct */
    struct raft *raft;            /* borrowed */
    struct raft_io *io;           /* borrowed: raft's io, whose pointers we replaced */

    /* The io's own methods, which the wrappers call. */
    int (*io_start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv);
    int (*io_append)(struct raft_io *io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n, raft_io_append_cb cb);
    int (*io_send)(struct raft_io *io, struct raft_io_send *req, const struct raft_message *message,
                   raft_io_send_cb cb);

    /* raft's own callbacks, given to io->start. */
    raft_io_tick_cb tick_cb;
    raft_io_recv_cb recv_cb;

    /* The leadership being guarded. leader_term is 0 when not leader. */
    raft_term leader_term;
    raft_index term_first_index; /* index of the first entry of leader_term, or 0 */
    bool term_stored;            /* an entry of leader_term is stored on our disk */
    bool barrier_pending;        /* our barrier is in raft's hands */
    bool barrier_counted;        /* this leadership is already counted in n_barriers */
    bool barrier_disabled;       /* tests only: see leader_guard_disable_barrier() */
    bool trim_disabled;          /* tests only: see leader_guard_disable_trim() */
    bool delivering;             /* re-entrancy fence for guard_flush() */

    /* Held AppendEntries results, oldest first. */
    struct guard_held *held_head; /* owned */
    struct guard_held *held_tail; /* borrowed: last element of held_head */
    unsigned n_held;

    /* Appends in flight. */
    struct guard_append *appends; /* owned */

    /* Metrics. */
    unsigned long n_barriers;
    unsigned long n_held_total;
    unsigned long n_dropped;
    unsigned long n_results_fixed;
    unsigned long n_trimmed;
    unsigned long n_write_failures;
    unsigned long n_append_failures;

    /* What the AppendEntries result raft is about to send may claim (see
     * guard_send()). Valid only while raft runs inside guard_recv_cb() for an
     * AppendEntries request, or inside guard_append_cb() for a write. */
    bool verified_active;
    raft_index verified_index; /* last index checked against the leader's log */
    raft_term verified_term;   /* term in which it was checked, or 0 for any */

    /* Contacts from the leader, as a follower: (time, leader's commit
     * index) of AppendEntries and InstallSnapshot messages not yet covered
     * by this node's applied index, a ring with commits strictly rising
     * (see guard_note_contact() and leader_guard_fresh_since()). */
    struct guard_contact contacts[GUARD_CONTACTS_MAX];
    unsigned contacts_head;
    unsigned n_contacts;

    /* Commit notices (see guard_notify_commit() and guard_split_commit()). */
    bool notice_disabled;      /* tests only: see leader_guard_disable_notice() */
    bool splitting;            /* raft is handling a commit split off a request */
    raft_index noticed_commit; /* as leader: highest commit index notified */
    struct guard_peer *peers;  /* owned: what raft last sent each follower */
    unsigned n_peers;
    unsigned cap_peers;
    /* As follower: the last empty AppendEntries of the current term whose
     * commit index raft could not act on in full, because the entries it
     * covers were still being written (see guard_replay_commit()). */
    bool replay_disabled; /* tests only: see leader_guard_disable_replay() */
    bool replay_pending;
    struct raft_append_entries replay; /* no entries */
    raft_id replay_from;
    unsigned long n_notices; /* notices sent, as leader */
    unsigned long n_splits;  /* as follower: splits and replays handed to raft */
};

/* Every installed guard of the process, for guard_of(). */
static struct guard_impl *guard_table;

/* Return the guard installed on io. Each callback the guard receives comes
 * from an io it was installed on, so failing to find it is a programmer
 * error. */
static struct guard_impl *guard_of(struct raft_io *io)
{
    struct guard_impl *impl;
    for (impl = guard_table; impl != NULL; impl = impl->next_impl) {
        if (impl->io == io) {
            return impl;
        }
    }
    /* A wrapper ran for an io the guard was never installed on, or after
     * leader_guard_close(): a programmer error. Stop even in builds where
     * assert() is compiled out, rather than run raft unguarded. */
    abort();
}

static void guard_table_remove(struct guard_impl *impl)
{
    struct guard_impl **link;
    for (link = &guard_table; *link != NULL; link = &(*link)->next_impl) {
        if (*link == impl) {
            *link = impl->next_impl;
            return;
        }
    }
}

/* Whether raft is leader of the term the guard is tracking. */
static bool guard_is_leading(const struct guard_impl *impl)
{
    return impl->leader_term != 0 && raft_state(impl->raft) == RAFT_LEADER &&
           impl->raft->current_term == impl->leader_term;
}

/* Whether results must currently be held back: we lead, and no entry of our
 * term is stored on our own disk yet. */
static bool guard_is_holding(const struct guard_impl *impl)
{
    return guard_is_leading(impl) && !impl->term_stored;
}

static void guard_held_free(struct guard_held *held)
{
    raft_free(held->server_address);
    raft_free(held);
}

static struct guard_held *guard_held_pop(struct guard_impl *impl)
{
    struct guard_held *held = impl->held_head;
    if (held == NULL) {
        return NULL;
    }
    impl->held_head = held->next;
    if (impl->held_head == NULL) {
        impl->held_tail = NULL;
    }
    /* The count covers exactly the list. */
    assert(impl->n_held > 0);
    impl->n_held--;
    return held;
}

/* Drop all held results. They belong to a leadership that is over (a later
 * term, or a follower again), and raft would ignore them anyway: a result is
 * only used by a leader of the same term. */
static void guard_drop_held(struct guard_impl *impl)
{
    struct guard_held *held;
    while ((held = guard_held_pop(impl)) != NULL) {
        impl->n_dropped++;
        guard_held_free(held);
    }
}

static bool guard_holds_from(const struct guard_impl *impl, raft_id server_id)
{
    const struct guard_held *held;
    for (held = impl->held_head; held != NULL; held = held->next) {
        if (held->server_id == server_id) {
            return true;
        }
    }
    return false;
}

/* Copy message into the queue. Returns false if memory ran out, in which case
 * the caller drops the message (as a lossy network would). */
static bool guard_hold(struct guard_impl *impl, const struct raft_message *message)
{
    struct guard_held *held;
    size_t address_len;

    if (impl->n_held >= LEADER_GUARD_HELD_MAX) {
        /* Make room by losing the oldest message; see LEADER_GUARD_HELD_MAX. */
        struct guard_held *oldest = guard_held_pop(impl);
        impl->n_dropped++;
        guard_held_free(oldest);
    }

    held = raft_malloc(sizeof *held);
    if (held == NULL) {
        goto err;
    }
    /* raft_uv points server_address into the connection's state, which can be
     * freed before we deliver; the fixture points it at a long-lived string.
     * Either way we own a copy. */
    address_len = message->server_address != NULL ? strlen(message->server_address) : 0;
    held->server_address = raft_malloc(address_len + 1);
    if (held->server_address == NULL) {
        goto err_after_held_alloc;
    }
    if (address_len > 0) {
        memcpy(held->server_address, message->server_address, address_len);
    }
    held->server_address[address_len] = '\0';
    held->server_id = message->server_id;
    /* An AppendEntries result holds only integers, and raft frees nothing
     * inside it (unlike AppendEntries requests, whose entries raft takes
     * over), so a struct copy is complete. */
    held->result = message->append_entries_result;
    held->next = NULL;

    if (impl->held_tail != NULL) {
        impl->held_tail->next = held;
    } else {
        impl->held_head = held;
    }
    impl->held_tail = held;
    impl->n_held++;
    impl->n_held_total++;
    return true;

err_after_held_alloc:
    raft_free(held);
err:
    impl->n_dropped++;
    return false;
}

/* Decide whether an incoming message must wait. Only AppendEntries results
 * can make 0.15.0 advance the commit index (replicationUpdate() calls
 * replicationQuorum()), and among them only successful ones of our own term:
 *
 * - a result of a higher term must reach raft now so that it steps down
 *   (Raft paper, Figure 2, "Rules for Servers": if a response contains term
 *   T > currentTerm, convert to follower);
 * - a result of a lower term is ignored by raft;
 * - a rejection only makes raft retry with earlier entries (it returns before
 *   replicationQuorum()), and delaying it would delay bringing that follower
 *   up to date, which is exactly what a new leader must do first.
 *
 * Once a result from some server is held, later results from the same server
 * are held too, so that raft still sees each follower's results in the order
 * the follower sent them. */
static bool guard_should_hold(const struct guard_impl *impl, const struct raft_message *message)
{
    const struct raft_append_entries_result *result;

    if (message->type != RAFT_IO_APPEND_ENTRIES_RESULT) {
        return false;
    }
    if (!guard_is_holding(impl)) {
        return false;
    }
    result = &message->append_entries_result;
    if (result->term != impl->raft->current_term) {
        return false;
    }
    if (result->rejected != 0 && !guard_holds_from(impl, message->server_id)) {
        return false;
    }
    return true;
}

static void guard_barrier_cb(struct raft_barrier *req, int status)
{
    struct guard_barrier *barrier = (struct guard_barrier *)req;
    struct guard_impl *impl = barrier->impl;

    /* Whatever the outcome (committed, leadership lost, write failed), raft is
     * done with the request. If the leadership goes on without a stored
     * entry of its term, guard_retry_barrier() appends another one at the
     * next tick. */
    (void)status;
    impl->barrier_pending = false;
    raft_free(barrier);
}

/* Append a barrier of the current term. Errors are not fatal: the guard keeps
 * holding results and tries again at the next tick. */
static void guard_append_barrier(struct guard_impl *impl)
{
    struct guard_barrier *barrier;
    int rv;

    if (impl->barrier_disabled) {
        return;
    }
    barrier = raft_malloc(sizeof *barrier);
    if (barrier == NULL) {
        return;
    }
    memset(barrier, 0, sizeof *barrier);
    barrier->impl = impl;
    /* Set before the call, so that a callback fired from inside
     * raft_barrier() (no io does this today) finds a consistent state. */
    impl->barrier_pending = true;
    rv = raft_barrier(impl->raft, &barrier->req, guard_barrier_cb);
    if (rv != 0) {
        /* When raft_barrier() fails its callback is never called. */
        impl->barrier_pending = false;
        raft_free(barrier);
        return;
    }
    if (!impl->barrier_counted) {
        impl->barrier_counted = true;
        impl->n_barriers++;
    }
}

/* Look at raft's state after raft had the chance to change it (a tick, a
 * received message, a completed write) and follow it: start guarding a new
 * leadership, or forget one that ended. */
static void guard_check_leadership(struct guard_impl *impl)
{
    struct raft *r = impl->raft;

    if (raft_state(r) != RAFT_LEADER) {
        if (impl->leader_term != 0) {
            /* Step-down: what we held was for a leadership that is over. */
            guard_drop_held(impl);
            impl->leader_term = 0;
            impl->term_first_index = 0;
            impl->term_stored = false;
            impl->barrier_counted = false;
        }
        return;
    }

    if (r->current_term != impl->leader_term) {
        /* A new leadership (a leader's term never changes while it stays
         * leader, so a different term means we were elected again). */
        guard_drop_held(impl);
        impl->leader_term = r->current_term;
        impl->term_first_index = 0;
        impl->term_stored = false;
        impl->barrier_counted = false;
        impl->noticed_commit = 0;
        /* The leader's no-op, dissertation section 6.4: "Raft handles this by
         * having each leader commit a blank no-op entry into the log at the
         * start of its term." */
        guard_append_barrier(impl);
    }
}

/* Called at each tick. If the leadership's barrier could not be appended
 * (raft_barrier() refuses while a leadership transfer is in progress, or
 * memory ran out) and nothing of this term is stored yet, try again: without
 * an entry of its term the leader could never commit. (A failed write of the
 * barrier makes the leader step down instead, see guard_step_down().) */
static void guard_retry_barrier(struct guard_impl *impl)
{
    if (guard_is_holding(impl) && !impl->barrier_pending) {
        guard_append_barrier(impl);
    }
}

/* Hand the held results to raft once an entry of the leader's term is
 * stored. Only ever called from a wrapper after raft's own callback has
 * returned, so raft never sees a nested delivery. */
static void guard_flush(struct guard_impl *impl)
{
    struct guard_held *held;

    if (impl->delivering || impl->held_head == NULL) {
        return;
    }
    if (!guard_is_leading(impl)) {
        guard_drop_held(impl);
        return;
    }
    if (!impl->term_stored) {
        return;
    }

    impl->delivering = true;
    while ((held = guard_held_pop(impl)) != NULL) {
        struct raft_message message;
        memset(&message, 0, sizeof message);
        message.type = RAFT_IO_APPEND_ENTRIES_RESULT;
        message.server_id = held->server_id;
        message.server_address = held->server_address;
        message.append_entries_result = held->result;
        impl->recv_cb(impl->io, &message);
        guard_held_free(held);
        if (!guard_is_leading(impl)) {
            /* Processing a result can end the leadership (for example when a
             * committed configuration no longer contains us); the rest is
             * stale. */
            guard_drop_held(impl);
            break;
        }
    }
    impl->delivering = false;
    guard_check_leadership(impl);
}

/* Save and set the verified-prefix context of guard_send(). */
struct guard_verified
{
    bool active;
    raft_index index;
    raft_term term;
};

static struct guard_verified guard_verified_push(struct guard_impl *impl, raft_index index,
                                                 raft_term term)
{
    struct guard_verified saved = {impl->verified_active, impl->verified_index,
                                   impl->verified_term};
    impl->verified_active = true;
    impl->verified_index = index;
    impl->verified_term = term;
    return saved;
}

static void guard_verified_pop(struct guard_impl *impl, struct guard_verified saved)
{
    impl->verified_active = saved.active;
    impl->verified_index = saved.index;
    impl->verified_term = saved.term;
}

/* Commit notices: not a safety fix, a latency one.
 *
 * raft 0.15.0 tells followers that entries committed only inside its next
 * AppendEntries, and a follower acts on the commit index of a request that
 * carries entries only after it has written those entries to its own disk
 * (appendFollowerCb); only an empty request (a heartbeat) is acted on at once,
 * and the leader sends one only after --heartbeat-timeout-ms of silence. So a
 * follower applies a write one of its own disk writes, or a heartbeat
 * interval, after the leader acknowledged it, and a read that must see that
 * write there (a min-revision read, a watch) waits that long. The guard
 * shortens both steps:
 *
 *  - as leader, at the end of a loop turn in which the commit index advanced
 *    and raft's own requests did not carry it, it sends each follower an
 *    empty AppendEntries that does (guard_notify_commit());
 *  - as follower, when a request carries entries and a commit index that
 *    covers entries it already has, it first hands raft the same request
 *    without its entries (guard_split_commit());
 *  - as follower, an empty request whose commit index raft could act on only
 *    in part (the entries were still being written) is handed to raft again
 *    when the write completes (guard_keep_commit(), guard_replay_commit()).
 *
 * Either is a message the leader could have sent itself: an empty
 * AppendEntries of its current term whose prev_log_index and prev_log_term
 * name an entry of its log (one it sent to that follower, with its term),
 * with a commit index no higher than its own nor than prev_log_index. A
 * follower that finds that entry in its log holds the leader's log up to it
 * (Log Matching), so committing up to min(commit, what it stored) is the
 * paper's rule; one that does not rejects the request, which the leader
 * handles like any stale rejection. The answers to split and replayed
 * requests are not sent (the original is answered anyway); the answers to
 * notices are, and tell the leader no more than the follower has stored.
 */

static struct guard_peer *guard_peer_find(struct guard_impl *impl, raft_id id)
{
    for (unsigned i = 0; i < impl->n_peers; i++) {
        if (impl->peers[i].id == id) {
            return &impl->peers[i];
        }
    }
    return NULL;
}

/* The commit index a follower may act on from a request before its entries
 * are considered: no higher than prev_log_index, the entry it names. */
static raft_index guard_commit_before_entries(const struct raft_append_entries *args)
{
    return args->leader_commit < args->prev_log_index ? args->leader_commit : args->prev_log_index;
}

/* As follower, hand raft an empty request made by the guard (a split or a
 * replay), whose answer is not sent: see guard_send(). */
static void guard_deliver_quietly(struct guard_impl *impl, struct raft_message *message)
{
    impl->splitting = true;
    impl->recv_cb(impl->io, message);
    impl->splitting = false;
    impl->n_splits++;
}

/* Remember what raft sent: called by guard_send() for raft's own requests. */
static void guard_note_sent(struct guard_impl *impl, const struct raft_message *message)
{
    struct guard_peer *peer = guard_peer_find(impl, message->server_id);
    const struct raft_append_entries *args = &message->append_entries;

    if (peer == NULL) {
        if (impl->n_peers == impl->cap_peers) {
            unsigned cap = impl->cap_peers == 0 ? 4 : impl->cap_peers * 2;
            struct guard_peer *grown = raft_realloc(impl->peers, cap * sizeof *grown);
            if (grown == NULL) {
                return; /* no notices for this follower: only slower */
            }
            impl->peers = grown;
            impl->cap_peers = cap;
        }
        peer = &impl->peers[impl->n_peers++];
        memset(peer, 0, sizeof *peer);
        peer->id = message->server_id;
    }
    if (message->type != RAFT_IO_APPEND_ENTRIES) {
        /* An InstallSnapshot moves the follower elsewhere: wait for the next
         * AppendEntries to know where. */
        peer->term = 0;
        return;
    }
    if (peer->term != args->term) {
        peer->commit = 0;
    }
    peer->term = args->term;
    peer->last_index = args->prev_log_index + args->n_entries;
    peer->last_term =
        args->n_entries > 0 ? args->entries[args->n_entries - 1].term : args->prev_log_term;
    if (args->leader_commit > peer->commit) {
        peer->commit = args->leader_commit;
    }
}

static void guard_notice_sent_cb(struct raft_io_send *req, int status)
{
    (void)status; /* a lost notice costs only time */
    raft_free(req);
}

/* As leader, at the end of a loop turn (leader_guard_turn_end()): if the
 * commit index advanced (an AppendEntries result, the leader's own write
 * completing), tell every follower raft replicates to, unless raft's own
 * requests already did. Sending at once instead cost 18% of the write
 * throughput at 64 clients; at the turn's end under load raft has usually
 * sent the next entries, which carry the commit index, and no notice goes. */
static void guard_notify_commit(struct guard_impl *impl)
{
    struct raft *r = impl->raft;
    raft_index commit = r->commit_index;

    if (impl->notice_disabled || !guard_is_leading(impl) || commit <= impl->noticed_commit) {
        return;
    }
    impl->noticed_commit = commit;
    for (unsigned i = 0; i < impl->n_peers; i++) {
        struct guard_peer *peer = &impl->peers[i];
        const struct raft_server *server = NULL;
        struct raft_io_send *req;
        struct raft_message message;
        raft_index notice = commit < peer->last_index ? commit : peer->last_index;

        if (peer->term != r->current_term || notice <= peer->commit) {
            continue;
        }
        for (unsigned j = 0; j < r->configuration.n; j++) {
            if (r->configuration.servers[j].id == peer->id) {
                server = &r->configuration.servers[j];
                break;
            }
        }
        if (server == NULL || server->role == RAFT_SPARE) {
            continue; /* raft does not replicate to it */
        }
        req = raft_malloc(sizeof *req);
        if (req == NULL) {
            return;
        }
        memset(&message, 0, sizeof message);
        message.type = RAFT_IO_APPEND_ENTRIES;
        message.server_id = server->id;
        message.server_address = server->address;
        message.append_entries.term = r->current_term;
        message.append_entries.prev_log_index = peer->last_index;
        message.append_entries.prev_log_term = peer->last_term;
        message.append_entries.leader_commit = notice;
        if (impl->io_send(impl->io, req, &message, guard_notice_sent_cb) != 0) {
            raft_free(req);
            continue;
        }
        peer->commit = notice;
        impl->n_notices++;
    }
}

/* As follower, before raft handles a request with entries: let it act on the
 * request's commit index now, as far as the entries before the new ones go,
 * instead of after writing the new ones. Only when that commits something. */
static void guard_split_commit(struct guard_impl *impl, const struct raft_message *message)
{
    struct raft *r = impl->raft;
    const struct raft_append_entries *args = &message->append_entries;
    raft_index commit = guard_commit_before_entries(args);
    struct raft_message split;

    if (impl->notice_disabled || args->n_entries == 0 || raft_state(r) != RAFT_FOLLOWER ||
        args->term != r->current_term || commit <= r->commit_index ||
        r->last_stored <= r->commit_index) {
        return;
    }
    split = *message;
    split.append_entries.entries = NULL;
    split.append_entries.n_entries = 0;
    split.append_entries.leader_commit = commit;
    guard_deliver_quietly(impl, &split);
}

/* As follower, after raft handled an empty AppendEntries (a heartbeat or a
 * notice): raft 0.15 commits min(leader_commit, last_stored) and forgets the
 * rest, so a commit index that arrives while the entries it covers are still
 * being written is lost until the leader's next message (before notices that
 * was the next write or heartbeat; a leader that died meanwhile never sends
 * it). Keep the request, and hand it to raft again once a write completes. */
static void guard_keep_commit(struct guard_impl *impl, raft_id from,
                              const struct raft_append_entries *args)
{
    struct raft *r = impl->raft;
    raft_index commit = guard_commit_before_entries(args);
    if (impl->notice_disabled || impl->replay_disabled || args->n_entries != 0 ||
        raft_state(r) != RAFT_FOLLOWER || args->term != r->current_term ||
        commit <= r->commit_index) {
        return;
    }
    impl->replay_pending = true;
    impl->replay = *args;
    impl->replay.leader_commit = commit;
    impl->replay_from = from;
}

/* As follower, after one of its writes completed: the duplicate of the kept
 * request, which raft tolerates like any duplicated message. Its answer is
 * not sent (the original was answered). */
static void guard_replay_commit(struct guard_impl *impl)
{
    struct raft *r = impl->raft;
    struct raft_message message;
    char *address;

    if (!impl->replay_pending) {
        return;
    }
    if (raft_state(r) != RAFT_FOLLOWER || impl->replay.term != r->current_term ||
        impl->replay.leader_commit <= r->commit_index) {
        impl->replay_pending = false;
        return;
    }
    if (r->last_stored <= r->commit_index) {
        return; /* nothing new stored: wait for the next write */
    }
    impl->replay_pending = false;
    if (r->follower_state.current_leader.id != impl->replay_from ||
        r->follower_state.current_leader.address == NULL) {
        return;
    }
    /* raft may replace its copy of the leader's address while handling the
     * message: give it one of ours. */
    address = raft_malloc(strlen(r->follower_state.current_leader.address) + 1);
    if (address == NULL) {
        return;
    }
    strcpy(address, r->follower_state.current_leader.address);
    memset(&message, 0, sizeof message);
    message.type = RAFT_IO_APPEND_ENTRIES;
    message.server_id = impl->replay_from;
    message.server_address = address;
    message.append_entries = impl->replay;
    guard_deliver_quietly(impl, &message);
    raft_free(address);
    /* Still short (a write of later entries completed first): keep it. */
    guard_keep_commit(impl, message.server_id, &message.append_entries);
}

/* raft 0.15.0 (like later versions) answers a successful AppendEntries with
 * last_log_index = r->last_stored: everything this follower has on disk, not
 * prevLogIndex + len(entries), the part the request actually checked (Raft
 * paper, Figure 2: a success means the follower's log matches the leader's
 * "through the new entries"). The leader takes the value as the follower's
 * match index, clamped only to its own last index. A follower that still holds
 * uncommitted entries of an older term past that prefix (S2 in Figure 8) then
 * makes a new leader believe it stores the leader's newer entries at those
 * indexes, and the leader may count it towards committing an entry it does not
 * have. Also (fixed upstream by 35479fc), a follower whose write completes
 * after its term changed answers the new leader, in the new term, about
 * entries that the old leader sent.
 *
 * So on the follower side, when raft sends a successful result from inside a
 * context where the guard knows what was verified, clamp last_log_index to
 * that, and drop a result about a write submitted in an earlier term. Both only
 * make the leader think the follower has less; a lower match index costs at
 * most a resend. */
static int guard_send(struct raft_io *io, struct raft_io_send *req,
                      const struct raft_message *message, raft_io_send_cb cb)
{
    struct guard_impl *impl = guard_of(io);
    struct raft_message fixed;

    if (message->type == RAFT_IO_APPEND_ENTRIES_RESULT && impl->splitting) {
        /* The answer to a split or replayed request (guard_deliver_quietly()):
         * the original is answered anyway. raft frees the request of a failed
         * send. */
        return RAFT_NOCONNECTION;
    }
    if ((message->type == RAFT_IO_APPEND_ENTRIES || message->type == RAFT_IO_INSTALL_SNAPSHOT) &&
        raft_state(impl->raft) == RAFT_LEADER) {
        guard_note_sent(impl, message);
    }
    if (message->type != RAFT_IO_APPEND_ENTRIES_RESULT || !impl->verified_active ||
        message->append_entries_result.rejected != 0) {
        return impl->io_send(io, req, message, cb);
    }
    if (impl->verified_term != 0 && message->append_entries_result.term != impl->verified_term) {
        impl->n_results_fixed++;
        /* raft treats a failed send of a result as a lost message: it frees
         * the request itself and carries on. */
        return RAFT_NOCONNECTION;
    }
    if (message->append_entries_result.last_log_index <= impl->verified_index) {
        return impl->io_send(io, req, message, cb);
    }
    /* The io copies what it needs before send returns (raft itself passes a
     * message on its stack), so a local copy is fine. */
    fixed = *message;
    fixed.append_entries_result.last_log_index = impl->verified_index;
    impl->n_results_fixed++;
    return impl->io_send(io, req, &fixed, cb);
}

static void guard_tick_cb(struct raft_io *io)
{
    struct guard_impl *impl = guard_of(io);
    impl->tick_cb(io);
    /* A single-voter raft becomes leader in its tick; a leader steps down in
     * its tick when it lost contact with a majority. */
    guard_check_leadership(impl);
    guard_retry_barrier(impl);
    guard_flush(impl);
}

/* raft 0.15.0 (and upstream to 0.18.1) mishandles an AppendEntries whose
 * prev_log_index lies below this follower's snapshot, where the log has no
 * entries left to compare:
 *
 *  - with prev_log_index 0 (a new leader without a snapshot resets a
 *    follower's next index to match + 1 = 1 after a failed send), the entries
 *    are appended after the follower's last entry, at the wrong indexes, and
 *    the error path then truncates the log below the snapshot: the process
 *    crashes (replicationAppend, "No log entries found at index 1");
 *  - with another index in the compacted range the follower rejects, the
 *    leader steps back one index per round trip down to its own snapshot,
 *    sends it, hears "have more recent snapshot" as success at its snapshot's
 *    index, and probes below the follower's snapshot again: the follower
 *    never catches up until the leader snapshots past it (with 3 nodes, the
 *    cluster cannot commit).
 *
 * Everything up to the follower's snapshot is committed (a snapshot holds
 * applied entries only), and a leader's log holds every committed entry at
 * the same index with the same term (Leader Completeness). So the entries
 * the request carries up to the snapshot's index are exactly those the
 * snapshot covers: the guard drops them and moves prev_log_index and
 * prev_log_term to the snapshot's, which raft can check. A request from a
 * stale term is left alone (raft rejects it by its term), and so is one
 * whose entry at the snapshot's index has another term, which would mean a
 * committed entry differs: raft's own checks then decide. */
static void guard_trim_below_snapshot(struct guard_impl *impl, struct raft_append_entries *args)
{
    const struct raft *r = impl->raft;
    raft_index snap = r->log.snapshot.last_index;
    raft_index skip;
    struct raft_entry *kept = NULL;

    if (impl->trim_disabled || snap == 0 || args->prev_log_index >= snap ||
        args->term < r->current_term) {
        return;
    }
    skip = snap - args->prev_log_index; /* entries at prev+1 .. snap */
    if (skip <= args->n_entries && args->entries[skip - 1].term != r->log.snapshot.last_term) {
        return;
    }
    if (skip < args->n_entries) {
        /* Keep the tail in a new array; its entries still point into the
         * message's one batch, which raft frees through them. */
        kept = raft_malloc((args->n_entries - skip) * sizeof *kept);
        if (kept == NULL) {
            return; /* raft handles the request as it came */
        }
        memcpy(kept, &args->entries[skip], (args->n_entries - skip) * sizeof *kept);
        raft_free(args->entries);
        args->entries = kept;
        args->n_entries -= (unsigned)skip;
    } else if (args->n_entries > 0) {
        /* Nothing left: free the batch (one per message, as raft_uv and
         * raft_fixture deliver them) and the array. */
        void *batch = NULL;
        for (unsigned i = 0; i < args->n_entries; i++) {
            if (args->entries[i].batch != batch) {
                batch = args->entries[i].batch;
                raft_free(batch);
            }
        }
        raft_free(args->entries);
        args->entries = NULL;
        args->n_entries = 0;
    }
    args->prev_log_index = snap;
    args->prev_log_term = r->log.snapshot.last_term;
    impl->n_trimmed++;
}

/* After raft handled message: note what the leader of the current term had
 * committed when it sent it (server.c measures staleness against it; this
 * only reads raft).
 *
 * Messages carry no send time, so a contact is stamped when it is read.
 * Messages read in the same loop iteration share that time (raft_uv's time
 * is uv_now), and only the highest commit among them counts: a node that
 * resumes from a pause reads at once every heartbeat that queued up while
 * it was stopped, and the old ones must not make it look fresh.
 *
 * A later contact with a commit no higher than one already queued is at
 * least as useful and newer: it replaces those, so that the queue's commits
 * rise strictly and its front is always the next one the applied index can
 * reach. When the ring is full the newest contact replaces the last one: a
 * staleness bound then errs on the stale side, never the other. */
static struct guard_contact *guard_last_contact(struct guard_impl *impl)
{
    unsigned last = (impl->contacts_head + impl->n_contacts - 1) % GUARD_CONTACTS_MAX;
    return impl->n_contacts > 0 ? &impl->contacts[last] : NULL;
}

static void guard_note_contact(struct guard_impl *impl, int type, raft_term term, raft_index commit)
{
    struct raft *r = impl->raft;
    struct guard_contact *c;
    raft_time now;
    if ((type != RAFT_IO_APPEND_ENTRIES && type != RAFT_IO_INSTALL_SNAPSHOT) ||
        term != r->current_term || raft_state(r) != RAFT_FOLLOWER) {
        return;
    }
    now = impl->io->time(impl->io);
    c = guard_last_contact(impl);
    if (c != NULL && c->time == now) {
        c->commit = commit > c->commit ? commit : c->commit;
        return;
    }
    while ((c = guard_last_contact(impl)) != NULL && c->commit >= commit) {
        impl->n_contacts--;
    }
    if (impl->n_contacts == GUARD_CONTACTS_MAX) {
        impl->n_contacts--;
    }
    c = &impl->contacts[(impl->contacts_head + impl->n_contacts) % GUARD_CONTACTS_MAX];
    c->time = now;
    c->commit = commit;
    impl->n_contacts++;
}

static void guard_recv_cb(struct raft_io *io, struct raft_message *message)
{
    struct guard_impl *impl = guard_of(io);
    /* Read before raft takes the message over. A snapshot's last index is
     * committed at its sender, at least. */
    int type = message->type;
    raft_term term = type == RAFT_IO_APPEND_ENTRIES     ? message->append_entries.term
                     : type == RAFT_IO_INSTALL_SNAPSHOT ? message->install_snapshot.term
                                                        : 0;
    raft_index commit = type == RAFT_IO_APPEND_ENTRIES     ? message->append_entries.leader_commit
                        : type == RAFT_IO_INSTALL_SNAPSHOT ? message->install_snapshot.last_index
                                                           : 0;

    if (guard_should_hold(impl, message)) {
        /* The message's memory stays the io's: guard_hold() copies it. If the
         * copy fails the result is lost, which Raft tolerates. */
        (void)guard_hold(impl, message);
        return;
    }
    if (message->type == RAFT_IO_APPEND_ENTRIES) {
        guard_trim_below_snapshot(impl, &message->append_entries);
        /* If raft answers this request at once (nothing new to write), the
         * answer can vouch for the log up to the last entry the request
         * covered, and no further: see guard_send(). No term check here: an
         * answer to a stale request carries our higher term on purpose, so
         * that its sender steps down. */
        guard_split_commit(impl, message);
        struct raft_append_entries args = message->append_entries; /* raft takes the entries */
        raft_id from = message->server_id;
        struct guard_verified saved =
            guard_verified_push(impl, args.prev_log_index + args.n_entries, 0);
        impl->recv_cb(io, message);
        guard_verified_pop(impl, saved);
        guard_keep_commit(impl, from, &args);
    } else {
        impl->recv_cb(io, message);
    }
    guard_note_contact(impl, type, term, commit);
    /* A candidate becomes leader while handling a RequestVote result; any
     * message with a higher term makes a leader step down. */
    guard_check_leadership(impl);
    guard_flush(impl);
}

static int guard_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                       raft_io_recv_cb recv)
{
    struct guard_impl *impl = guard_of(io);
    /* raft_start() calls io->start exactly once. */
    assert(impl->tick_cb == NULL);
    impl->tick_cb = tick;
    impl->recv_cb = recv;
    return impl->io_start(io, msecs, guard_tick_cb, guard_recv_cb);
}

/* Make raft stop leading after one of its own writes failed.
 *
 * 0.15.0 (fixed upstream by 0cac59c, 0.16.0) truncates the failed entries from
 * its in-memory log but stays leader in the same term, so its next entry gets
 * the same index and the same term as an entry it may already have sent to
 * followers: two different entries with one (index, term), which breaks the
 * Log Matching property (Raft paper, section 5.3) and lets servers apply
 * different commands at that index. It also leaves the client requests of the
 * other failed entries queued, to be completed later by whatever entries reuse
 * their indexes (fixed upstream by 23ed201, 0.18.0).
 *
 * raft has no public call to step down, so hand it, through its own receive
 * callback, an AppendEntries result of the next term: any server may move to
 * a higher term (Figure 2, "Rules for Servers"), and raft reacts by persisting
 * the term and converting to follower, which fails every pending client
 * request with RAFT_LEADERSHIPLOST. If persisting the term fails as well raft
 * becomes unavailable, which is also safe. Called after raft's append callback
 * returned, before anything else can append. */
static void guard_step_down(struct guard_impl *impl)
{
    struct raft *r = impl->raft;
    struct raft_message message;

    memset(&message, 0, sizeof message);
    message.type = RAFT_IO_APPEND_ENTRIES_RESULT;
    message.server_id = r->id;
    message.server_address = r->address;
    message.append_entries_result.term = r->current_term + 1;
    impl->n_write_failures++;
    impl->recv_cb(impl->io, &message);
}

static void guard_append_cb(struct raft_io_append *req, int status)
{
    struct guard_impl *impl;
    struct guard_impl *candidate;
    struct guard_append **link;
    struct guard_append *append = NULL;
    raft_io_append_cb cb;
    raft_term leader_term;
    struct guard_verified saved;

    /* The callback does not tell which io it belongs to, so search every
     * guard's list of appends in flight. There are few guards (one per raft
     * instance) and few appends in flight. */
    impl = NULL;
    for (candidate = guard_table; candidate != NULL && impl == NULL;
         candidate = candidate->next_impl) {
        for (link = &candidate->appends; *link != NULL; link = &(*link)->next) {
            if ((*link)->req == req) {
                append = *link;
                *link = append->next;
                impl = candidate;
                break;
            }
        }
    }
    /* Every request reaching this callback went through guard_append(); if
     * not, raft's callback is unknown and nothing sensible can follow. */
    if (impl == NULL || append == NULL) {
        abort();
    }

    /* Copy what we need first: raft's callback frees the request, and raft
     * may submit a new one at the same address from inside it. */
    cb = append->cb;
    leader_term = append->leader_term;
    /* A follower answers the leader when its write completes; the answer can
     * vouch for the entries written, which follow the prefix raft checked
     * before writing them, and only in the term they were received in. */
    saved = guard_verified_push(impl, append->last_index, append->submit_term);
    raft_free(append);

    if (status != 0) {
        impl->n_append_failures++;
    }
    cb(req, status);
    guard_verified_pop(impl, saved);

    /* raft has now updated r->last_stored. Check it rather than trusting the
     * status alone: raft only counts entries still present in its log, and
     * the commit rule above is about what raft believes is stored. */
    if (status == 0 && leader_term != 0 && leader_term == impl->leader_term &&
        guard_is_leading(impl) && impl->term_first_index != 0 &&
        impl->raft->last_stored >= impl->term_first_index) {
        impl->term_stored = true;
    }
    if (status != 0 && leader_term != 0 && raft_state(impl->raft) == RAFT_LEADER &&
        impl->raft->current_term == leader_term) {
        guard_step_down(impl);
    }
    guard_check_leadership(impl);
    guard_flush(impl);
    if (status == 0) {
        guard_replay_commit(impl);
    }
}

static int guard_append(struct raft_io *io, struct raft_io_append *req,
                        const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    struct guard_impl *impl = guard_of(io);
    struct raft *r = impl->raft;
    struct guard_append *append;
    int rv;

    append = raft_malloc(sizeof *append);
    if (append == NULL) {
        rv = RAFT_NOMEM;
        goto err;
    }
    append->req = req;
    append->cb = cb;
    append->leader_term = 0;
    append->submit_term = r->current_term;
    /* raft (both as leader and as follower) writes the tail of its in-memory
     * log, which already holds these entries, so the last one is at
     * raft_last_index(). */
    append->last_index = raft_last_index(r);

    /* A leader writes only entries of its own term; the
     * first one it ever writes in this term is where "an entry of the current
     * term" starts (Raft paper, section 5.4.2). */
    if (n > 0 && raft_state(r) == RAFT_LEADER && entries[n - 1].term == r->current_term) {
        append->leader_term = r->current_term;
        if (impl->leader_term == r->current_term && impl->term_first_index == 0) {
            /* The entries are in the log already. */
            assert(append->last_index >= n);
            impl->term_first_index = append->last_index - n + 1;
        }
    }

    /* Link before submitting: an io may in principle complete synchronously. */
    append->next = impl->appends;
    impl->appends = append;

    rv = impl->io_append(io, req, entries, n, guard_append_cb);
    if (rv != 0) {
        goto err_after_link;
    }
    return 0;

err_after_link:
    /* When io->append fails its callback is never called. */
    impl->appends = append->next;
    raft_free(append);
err:
    return rv;
}

int leader_guard_init(struct leader_guard *g, struct raft *r, bool enabled)
{
    struct guard_impl *impl;

    memset(g, 0, sizeof *g);
    g->raft = r;
    g->enabled = enabled;
    if (!enabled) {
        return 0;
    }

    /* The guard must see io->start, so it goes in between raft_init() and
     * raft_start(). raft_init() sets io->data to r. */
    assert(r->io != NULL);
    assert(r->io->data == r);

    impl = raft_malloc(sizeof *impl);
    if (impl == NULL) {
        return RAFT_NOMEM;
    }
    memset(impl, 0, sizeof *impl);
    impl->guard = g;
    impl->raft = r;
    impl->io = r->io;
    impl->io_start = r->io->start;
    impl->io_append = r->io->append;
    impl->io_send = r->io->send;

    /* Interpose on the very struct raft_io that raft holds, so raft needs no
     * change and every other method goes straight to the io. */
    r->io->start = guard_start;
    r->io->append = guard_append;
    r->io->send = guard_send;

    impl->next_impl = guard_table;
    guard_table = impl;
    g->impl_ = impl;
    return 0;
}

void leader_guard_close(struct leader_guard *g)
{
    struct guard_impl *impl = g->impl_;
    struct guard_append *append;

    if (impl == NULL) {
        return;
    }
    guard_drop_held(impl);
    /* After raft_close()'s callback every append has completed (the io fires
     * pending callbacks, with an error if cancelled, before it closes). Free
     * anything left anyway rather than leak it. */
    while ((append = impl->appends) != NULL) {
        impl->appends = append->next;
        raft_free(append);
    }
    raft_free(impl->peers);
    /* Give the io its own methods back, in case it is reused. */
    impl->io->start = impl->io_start;
    impl->io->append = impl->io_append;
    impl->io->send = impl->io_send;
    guard_table_remove(impl);
    raft_free(impl);
    g->impl_ = NULL;
}

unsigned long leader_guard_barriers(const struct leader_guard *g)
{
    const struct guard_impl *impl = g->impl_;
    return impl != NULL ? impl->n_barriers : 0;
}

void leader_guard_disable_barrier(struct leader_guard *g)
{
    struct guard_impl *impl = g->impl_;
    if (impl != NULL) {
        impl->barrier_disabled = true;
    }
}

void leader_guard_disable_trim(struct leader_guard *g)
{
    struct guard_impl *impl = g->impl_;
    if (impl != NULL) {
        impl->trim_disabled = true;
    }
}

unsigned long leader_guard_trimmed(const struct leader_guard *g)
{
    const struct guard_impl *impl = g->impl_;
    return impl != NULL ? impl->n_trimmed : 0;
}

unsigned long leader_guard_held(const struct leader_guard *g)
{
    const struct guard_impl *impl = g->impl_;
    return impl != NULL ? impl->n_held_total : 0;
}

unsigned long leader_guard_append_failures(const struct leader_guard *g)
{
    const struct guard_impl *impl = g->impl_;
    return impl != NULL ? impl->n_append_failures : 0;
}

unsigned long leader_guard_write_failures(const struct leader_guard *g)
{
    const struct guard_impl *impl = g->impl_;
    return impl != NULL ? impl->n_write_failures : 0;
}

unsigned long leader_guard_results_fixed(const struct leader_guard *g)
{
    const struct guard_impl *impl = g->impl_;
    return impl != NULL ? impl->n_results_fixed : 0;
}

unsigned long leader_guard_dropped(const struct leader_guard *g)
{
    const struct guard_impl *impl = g->impl_;
    return impl != NULL ? impl->n_dropped : 0;
}

bool leader_guard_fresh_since(struct leader_guard *g, uint64_t applied, uint64_t *time_ms)
{
    struct guard_impl *impl = g->impl_;
    bool found = false;
    if (impl == NULL) {
        return false;
    }
    while (impl->n_contacts > 0 && impl->contacts[impl->contacts_head].commit <= applied) {
        *time_ms = impl->contacts[impl->contacts_head].time;
        found = true;
        impl->contacts_head = (impl->contacts_head + 1) % GUARD_CONTACTS_MAX;
        impl->n_contacts--;
    }
    return found;
}

void leader_guard_turn_end(struct leader_guard *g)
{
    struct guard_impl *impl = g->impl_;
    if (impl != NULL) {
        guard_notify_commit(impl);
    }
}

void leader_guard_disable_replay(struct leader_guard *g)
{
    struct guard_impl *impl = g->impl_;
    if (impl != NULL) {
        impl->replay_disabled = true;
    }
}

void leader_guard_disable_notice(struct leader_guard *g)
{
    struct guard_impl *impl = g->impl_;
    if (impl != NULL) {
        impl->notice_disabled = true;
    }
}

unsigned long leader_guard_notices(const struct leader_guard *g)
{
    const struct guard_impl *impl = g->impl_;
    return impl != NULL ? impl->n_notices : 0;
}

unsigned long leader_guard_splits(const struct leader_guard *g)
{
    const struct guard_impl *impl = g->impl_;
    return impl != NULL ? impl->n_splits : 0;
}
