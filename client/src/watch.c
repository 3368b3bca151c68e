/*
 * watch: the client side of watches (cairn_watch and friends in cairn.h).
 *
 * Each cairn_client owns one watch multiplexer (struct watch_mux). The first
 * cairn_watch() starts its thread, which owns one TCP connection carrying
 * every watch of the client: it sends their PROTO_WATCH requests, decodes the
 * watch messages that come back, and delivers updates to callbacks or
 * queues. Callers talk to the thread through the mutex-protected state below
 * and wake it with an eventfd (new watch, cancel, progress request, a queue
 * drained, shutdown).
 *
 * A watch's life:
 *
 *   cairn_watch() -> PENDING --CREATED--> LIVE --the server or the library
 *                       |                  ^ |     ends it (CANCELED update)--> ENDED
 *                       | refused          | |
 *                       v                  +-+ connection lost: sent again to
 *                    FAILED                    another node from resume_rev + 1
 *   (cairn_watch returns the error)
 *
 * cairn_watch_cancel() removes a watch in any state and frees it.
 *
 * Resume without gap or duplicate rests on the protocol's invariant: a watch
 * message with head revision R means every change up to R was sent, so the
 * resume point is R + 1. resume_rev is the last revision accepted for
 * delivery. After any loss of the connection (reset, EOF, a message that
 * does not decode, or silence: see "Liveness"), the thread reconnects to
 * another endpoint with exponential backoff and jitter and sends every LIVE
 * watch again with revision resume_rev + 1, under the same id (ids are never
 * reused within a client, so nothing from an old connection can be mistaken
 * for a new watch). Whatever a node sends at or below resume_rev is dropped:
 * leading events of an EVENTS message, PROGRESS and SNAPSHOT updates that do
 * not move past it. Revisions delivered to the caller therefore strictly
 * increase for events and snapshots, and never decrease for progress.
 *
 * Snapshots arrive in parts (0, 1, ... all with the same head revision S,
 * `more` on all but the last). The parts' decoded messages are kept, up to
 * snapshot_bytes_max, and handed over as one SNAPSHOT update when the last
 * part arrives; a new part 0 or a lost connection discards a partial one. A
 * snapshot over the bound ends the watch with CAIRN_ETOOLARGE instead of
 * taking unbounded memory.
 *
 * Liveness: a node that hangs keeps the TCP connection open but says
 * nothing, and a follower cut off from the leader by a partition answers but
 * stops advancing. Every ping_idle_ms (at most WATCH_PING_IDLE_MAX_MS, less
 * when a watch asked for progress more often) the thread sends a
 * PROTO_STATUS request as a ping. When nothing at all arrived within
 * 2 * ping_idle_ms + WATCH_SILENCE_SLACK_MS of a ping, the node is given up;
 * so is a node whose answers say it has known no leader for
 * WATCH_LEADERLESS_MAX_MS (when there are other endpoints to try: with the
 * whole cluster leaderless, nothing can change anyway). Time spent paused (a
 * full queue) or in callbacks does not count against the node.
 *
 * Back-pressure: a watch without a callback queues its updates; when a queue
 * holds queue_bytes_max bytes the thread stops reading the socket (every
 * watch of the connection waits), so the server sees a slow reader and moves
 * its watchers to catch-up from history. cairn_watch_next() wakes the thread
 * when it takes a queue back under its bound.
 *
 * Memory: everything a delivered update points into (the decoded messages)
 * hangs off a struct update_box. Allocation failures never lose an update:
 * resume_rev only advances once the box exists, and an allocation failure in
 * the thread is handled like a lost connection (the watches resume). The box
 * that reports a watch's end is allocated with the watch, so that end is
 * always delivered.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cairn.h"
#include "client_internal.h"
#include "proto.h"

/* Time between pings (status requests that prove the node alive), at most. */
#define WATCH_PING_IDLE_MAX_MS 1000
/* ... and at least, however often a watch asked for progress. */
#define WATCH_PING_IDLE_MIN_MS 100
/* Beyond two ping intervals, how long an unanswered ping may take. */
#define WATCH_SILENCE_SLACK_MS 1500
/* A node that has known no leader this long is left for another: cut off
 * from the cluster, it would keep a watch alive that never advances. */
#define WATCH_LEADERLESS_MAX_MS 5000
/* Bytes read from the socket before the thread looks at its other work. */
#define WATCH_READ_BURST_BYTES (1u << 20)
#define WATCH_READ_CHUNK 65536
#define WATCH_ERRMSG_MAX 256
/* Longest key quoted in an error message. */
#define WATCH_KEY_QUOTE_MAX 200

enum watcher_state {
    WATCHER_PENDING = 0, /* waiting for the first CREATED */
    WATCHER_LIVE,        /* created; resumed after every reconnect */
    WATCHER_FAILED,      /* refused at creation; cairn_watch() reports it */
    WATCHER_ENDED,       /* CANCELED delivered; nothing more comes */
};

/* An update handed to the caller, and what its pointers point into. */
struct update_box
{
    struct cairn_watch_update u;  /* first: cairn_watch_update_free() casts back */
    struct update_box *next;      /* queue link */
    size_t bytes;                 /* counted against the queue's bound */
    struct proto_response one;    /* owned: the message of an EVENTS/PROGRESS update */
    struct proto_response *resps; /* owned: &one, or a SNAPSHOT's parts */
    size_t n_resps;
    struct cairn_kv *kvs; /* owned: a SNAPSHOT's kvs, gathered from its parts */
    char message[WATCH_ERRMSG_MAX];
};

struct cairn_watcher
{
    struct watch_mux *mux; /* borrowed: the client's */
    uint64_t id;           /* the watch id on every connection */
    char *key;             /* owned */
    size_t key_len;
    struct cairn_watch_opts opts; /* bounds filled in */
    cairn_watch_cb cb;            /* NULL: queue mode */
    void *arg;
    /* Everything below is under mux->mu. */
    pthread_cond_t cond; /* state left PENDING; an update was queued */
    enum watcher_state state;
    bool created;           /* CREATED seen once: resume from resume_rev + 1 */
    uint64_t resume_rev;    /* last revision accepted for delivery */
    uint64_t delivered_rev; /* last revision handed to the caller */
    uint64_t sent_gen;      /* connection the PROTO_WATCH went out on (0: none) */
    bool progress_wanted;
    bool free_after_callback; /* canceled from its own callback */
    int error;                /* FAILED: why */
    char errmsg[WATCH_ERRMSG_MAX];
    struct update_box *end_box; /* owned: the CANCELED update, allocated up front */
    /* Queue mode. */
    struct update_box *q_head; /* owned */
    struct update_box *q_tail;
    uint64_t q_bytes;
    bool full;      /* q_bytes reached the bound: counted in mux->n_full */
    bool end_taken; /* the CANCELED update was taken */
    /* The snapshot being assembled. */
    struct proto_response *snap; /* owned: the parts so far */
    size_t n_snap;
    size_t cap_snap;
    uint64_t snap_bytes;
    size_t snap_kvs;
    uint64_t snap_rev;
    uint64_t snap_compact;
};

/* A request for the thread to send on connection gen (cancels). */
struct mux_req
{
    uint8_t type;
    uint64_t number;
    uint64_t gen;
};

struct watch_mux
{
    struct cairn_client *client; /* borrowed: the owner */
    int wake_fd;                 /* an eventfd, made with the thread (-1 before) */
    pthread_mutex_t mu;
    pthread_cond_t callback_done; /* in_callback changed */
    /* Under mu. */
    pthread_t thread;
    bool started;
    bool stop;
    struct cairn_watcher **watches; /* owned array, sorted by id (ids only grow) */
    size_t n_watches;
    size_t cap_watches;
    size_t n_active;           /* PENDING or LIVE: they need a connection */
    size_t n_prefer_followers; /* watches that asked for a follower */
    size_t n_full;             /* queue-mode watches at their bound */
    uint32_t min_progress_ms;  /* smallest explicit progress_ms (0: none) */
    bool dirty;                /* something to send: scan the watches */
    uint64_t next_id;          /* watch and request ids, never reused */
    uint64_t gen;              /* current connection's number (0: none yet) */
    bool connected;
    char endpoint[ENDPOINT_MAX]; /* the node connected to, "" when none */
    const char *serving;         /* borrowed: the client's copy of it, NULL when none */
    int conn_err;                /* why the last connection failed (0: none) */
    char conn_errmsg[WATCH_ERRMSG_MAX];
    struct mux_req *reqs; /* owned */
    size_t n_reqs;
    size_t cap_reqs;
    struct cairn_watcher *in_callback; /* whose callback runs now */
    /* The thread's own. */
    int fd;
    struct buf in;
    struct buf out;
    size_t next_ep;
    unsigned attempt; /* consecutive failures, for the backoff */
    int64_t last_rx_ms;
    bool ping_out; /* sent, and nothing received since */
    int64_t ping_sent_ms;
    int64_t leaderless_since_ms; /* 0: the node knows a leader */
    uint64_t rng;
};

/* Helpers */

static void mux_wake(struct watch_mux *m)
{
    uint64_t one = 1;
    ssize_t n;
    if (m->wake_fd < 0) {
        return; /* no thread to wake */
    }
    /* EAGAIN means the counter is already non-zero: the thread will wake. */
    do {
        n = write(m->wake_fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
}

static void drain_wake(struct watch_mux *m)
{
    uint64_t v;
    while (read(m->wake_fd, &v, sizeof(v)) < 0 && errno == EINTR) {
    }
}

static struct timespec deadline_ts(int64_t deadline_ms)
{
    struct timespec ts;
    int64_t left = deadline_ms - client_now_ms();
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (left < 0) {
        left = 0;
    }
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

static bool on_mux_thread(const struct watch_mux *m)
{
    return m->started && pthread_equal(pthread_self(), m->thread);
}

static int quote_len(size_t key_len)
{
    return (int)(key_len > WATCH_KEY_QUOTE_MAX ? WATCH_KEY_QUOTE_MAX : key_len);
}

static bool is_active(const struct cairn_watcher *w)
{
    return w->state == WATCHER_PENDING || w->state == WATCHER_LIVE;
}

/* Codes after which another node (or the same one later) may well accept
 * the watch: the connection is dropped and the watches resumed elsewhere. */
static bool is_transient(int code)
{
    return code == CAIRN_ESHUTDOWN || code == CAIRN_EBUSY || code == CAIRN_ENOLEADER ||
           code == CAIRN_ENOTLEADER || code == CAIRN_EUNAVAILABLE || code == CAIRN_ETIMEOUT ||
           code == CAIRN_EIO || code == CAIRN_ENOMEM;
}

/* Update boxes */

static void box_free(struct update_box *b)
{
    size_t i;
    if (b == NULL) {
        return;
    }
    for (i = 0; i < b->n_resps; i++) {
        proto_response_free(&b->resps[i]);
    }
    if (b->resps != &b->one) {
        cairn_free(b->resps);
    }
    cairn_free(b->kvs);
    cairn_free(b);
}

static struct update_box *box_new(enum cairn_watch_kind kind)
{
    struct update_box *b = cairn_calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->u.kind = kind;
    b->u.message = b->message;
    b->resps = &b->one;
    b->bytes = sizeof(*b);
    return b;
}

/* Watchers */

static void snap_discard(struct cairn_watcher *w)
{
    size_t i;
    for (i = 0; i < w->n_snap; i++) {
        proto_response_free(&w->snap[i]);
    }
    cairn_free(w->snap);
    w->snap = NULL;
    w->n_snap = 0;
    w->cap_snap = 0;
    w->snap_bytes = 0;
    w->snap_kvs = 0;
}

static void watcher_free(struct cairn_watcher *w)
{
    struct update_box *b = w->q_head;
    while (b != NULL) {
        struct update_box *next = b->next;
        box_free(b);
        b = next;
    }
    snap_discard(w);
    box_free(w->end_box);
    pthread_cond_destroy(&w->cond);
    cairn_free(w->key);
    cairn_free(w);
}

static struct cairn_watcher *watcher_new(struct watch_mux *m, const void *key, size_t key_len,
                                         const struct cairn_watch_opts *opts, cairn_watch_cb cb,
                                         void *arg)
{
    struct cairn_watcher *w = cairn_calloc(1, sizeof(*w));
    pthread_condattr_t attr;
    if (w == NULL) {
        return NULL;
    }
    w->key = cairn_malloc(key_len + 1);
    w->end_box = box_new(CAIRN_WATCH_CANCELED);
    if (w->key == NULL || w->end_box == NULL) {
        box_free(w->end_box);
        cairn_free(w->key);
        cairn_free(w);
        return NULL;
    }
    if (key_len > 0) {
        memcpy(w->key, key, key_len);
    }
    w->key[key_len] = '\0';
    w->key_len = key_len;
    w->mux = m;
    if (opts != NULL) {
        w->opts = *opts;
    }
    if (w->opts.queue_bytes_max == 0) {
        w->opts.queue_bytes_max = CAIRN_WATCH_QUEUE_BYTES_DEFAULT;
    }
    if (w->opts.snapshot_bytes_max == 0) {
        w->opts.snapshot_bytes_max = CAIRN_WATCH_SNAPSHOT_BYTES_DEFAULT;
    }
    w->cb = cb;
    w->arg = arg;
    w->state = WATCHER_PENDING;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    return w;
}

/* The watches array (under mu) */

static struct cairn_watcher *mux_find(struct watch_mux *m, uint64_t id)
{
    size_t lo = 0;
    size_t hi = m->n_watches;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->watches[mid]->id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < m->n_watches && m->watches[lo]->id == id ? m->watches[lo] : NULL;
}

static void recompute_min_progress(struct watch_mux *m)
{
    size_t i;
    m->min_progress_ms = 0;
    for (i = 0; i < m->n_watches; i++) {
        uint32_t p = m->watches[i]->opts.progress_ms;
        if (p > 0 && (m->min_progress_ms == 0 || p < m->min_progress_ms)) {
            m->min_progress_ms = p;
        }
    }
}

/* Add w with the next id. Returns 0 or CAIRN_ENOMEM. */
static int mux_add(struct watch_mux *m, struct cairn_watcher *w)
{
    if (m->n_watches == m->cap_watches) {
        size_t cap = m->cap_watches > 0 ? m->cap_watches * 2 : 16;
        struct cairn_watcher **grown = cairn_realloc(m->watches, cap * sizeof(*grown));
        if (grown == NULL) {
            return CAIRN_ENOMEM;
        }
        m->watches = grown;
        m->cap_watches = cap;
    }
    w->id = m->next_id++;
    m->watches[m->n_watches++] = w;
    m->n_active++;
    if (w->opts.prefer_followers) {
        m->n_prefer_followers++;
    }
    if (w->opts.progress_ms > 0 &&
        (m->min_progress_ms == 0 || w->opts.progress_ms < m->min_progress_ms)) {
        m->min_progress_ms = w->opts.progress_ms;
    }
    m->dirty = true;
    return 0;
}

static void set_state(struct watch_mux *m, struct cairn_watcher *w, enum watcher_state s)
{
    if (is_active(w) && !(s == WATCHER_PENDING || s == WATCHER_LIVE)) {
        m->n_active--;
    }
    w->state = s;
}

/* Ask the server to drop w if it knows it (sent on the current connection). */
static void mux_cancel_on_server(struct watch_mux *m, struct cairn_watcher *w)
{
    struct mux_req *r;
    if (!m->connected || w->sent_gen != m->gen || !is_active(w)) {
        return;
    }
    if (m->n_reqs == m->cap_reqs) {
        size_t cap = m->cap_reqs > 0 ? m->cap_reqs * 2 : 8;
        struct mux_req *grown = cairn_realloc(m->reqs, cap * sizeof(*grown));
        if (grown == NULL) {
            /* The server keeps sending for w until the connection ends;
             * the thread drops those messages (w is gone). */
            return;
        }
        m->reqs = grown;
        m->cap_reqs = cap;
    }
    r = &m->reqs[m->n_reqs++];
    r->type = PROTO_WATCH_CANCEL;
    r->number = w->id;
    r->gen = m->gen;
    m->dirty = true;
}

/* Take w out of the array and the counters; it is not freed. */
static void mux_remove(struct watch_mux *m, struct cairn_watcher *w)
{
    size_t i;
    for (i = 0; i < m->n_watches && m->watches[i] != w; i++) {
    }
    if (i == m->n_watches) {
        return;
    }
    memmove(&m->watches[i], &m->watches[i + 1], (m->n_watches - i - 1) * sizeof(m->watches[0]));
    m->n_watches--;
    if (is_active(w)) {
        m->n_active--;
    }
    if (w->opts.prefer_followers) {
        m->n_prefer_followers--;
    }
    if (w->full) {
        w->full = false;
        m->n_full--;
    }
    if (w->opts.progress_ms > 0 && w->opts.progress_ms == m->min_progress_ms) {
        recompute_min_progress(m);
    }
}

/* Delivery (called with mu held; returns with it released) */

static void deliver(struct watch_mux *m, struct cairn_watcher *w, struct update_box *b)
{
    if (w->cb == NULL) {
        if (w->q_tail != NULL) {
            w->q_tail->next = b;
        } else {
            w->q_head = b;
        }
        w->q_tail = b;
        w->q_bytes += b->bytes;
        if (!w->full && w->q_bytes >= w->opts.queue_bytes_max) {
            w->full = true;
            m->n_full++;
        }
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&m->mu);
        return;
    }
    if (b->u.kind != CAIRN_WATCH_CANCELED) {
        w->delivered_rev = b->u.revision;
    }
    /* While in_callback is w, cairn_watch_cancel(w) from another thread
     * waits, so w stays valid through the callback and the lines after. */
    m->in_callback = w;
    pthread_mutex_unlock(&m->mu);
    w->cb(w, &b->u, w->arg);
    box_free(b);
    pthread_mutex_lock(&m->mu);
    m->in_callback = NULL;
    if (w->free_after_callback) {
        watcher_free(w);
    }
    pthread_cond_broadcast(&m->callback_done);
    pthread_mutex_unlock(&m->mu);
}

/* End w: tell the server (if it still serves w) and deliver CANCELED. */
static void end_watch(struct watch_mux *m, struct cairn_watcher *w, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void end_watch(struct watch_mux *m, struct cairn_watcher *w, int code, const char *fmt, ...)
{
    struct update_box *b = w->end_box;
    va_list ap;
    mux_cancel_on_server(m, w);
    set_state(m, w, WATCHER_ENDED);
    snap_discard(w);
    w->end_box = NULL;
    b->u.error = code;
    b->u.revision = w->resume_rev;
    va_start(ap, fmt);
    vsnprintf(b->message, sizeof(b->message), fmt, ap);
    va_end(ap);
    deliver(m, w, b);
}

/* Say why the connection is being given up (mu held): cairn_watch() quotes
 * it when no node acknowledges a new watch in time. */
static void conn_error(struct watch_mux *m, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_error(struct watch_mux *m, int code, const char *fmt, ...)
{
    va_list ap;
    m->conn_err = code;
    va_start(ap, fmt);
    vsnprintf(m->conn_errmsg, sizeof(m->conn_errmsg), fmt, ap);
    va_end(ap);
}

/* Handling one message: called by mux_handle() with mu held, each returns
 * with mu released, having taken ownership of r. 0 means go on; a code
 * means give up the connection (conn_err says why). */

/* Done with message r (mu held): releases mu, frees r and returns rv for
 * mux_handle(), 0 to go on or a code to give up the connection. */
static int handled(struct watch_mux *m, struct proto_response *r, int rv)
{
    pthread_mutex_unlock(&m->mu);
    proto_response_free(r);
    return rv;
}

/* The node answered a watch not yet acknowledged (WATCHER_PENDING) with a
 * lasting error (mu held, released on return): the watch fails for good,
 * and cairn_watch(), woken here, returns code with why (copied) as its
 * message. */
static void fail_pending(struct watch_mux *m, struct cairn_watcher *w, int code, const char *why)
{
    w->error = code;
    snprintf(w->errmsg, sizeof(w->errmsg), "%s", why);
    set_state(m, w, WATCHER_FAILED);
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&m->mu);
}

static int on_refused(struct watch_mux *m, struct cairn_watcher *w, struct proto_response *r)
{
    int code = r->code;
    const char *why = r->message[0] != '\0' ? r->message : cairn_strerror(code);
    if (is_transient(code) || (w->created && code == CAIRN_EFUTUREREV)) {
        /* Try another node: this one cannot serve now, or (a resumed
         * watch) is behind what was already delivered. */
        conn_error(m, code, "%s refused the watch: %s", m->endpoint, why);
        return handled(m, r, code);
    }
    if (w->state == WATCHER_PENDING) {
        fail_pending(m, w, code, why);
    } else {
        end_watch(m, w, code, "%s refused to resume the watch: %s", m->endpoint, why);
    }
    proto_response_free(r);
    return 0;
}

static int on_created(struct watch_mux *m, struct cairn_watcher *w, struct proto_response *r)
{
    if (w->state == WATCHER_PENDING) {
        /* An explicit start is the caller's; "now" is the node's revision. */
        w->resume_rev =
            w->opts.start_revision > 0 ? w->opts.start_revision - 1 : r->result->revision;
        w->delivered_rev = w->resume_rev;
        w->created = true;
        set_state(m, w, WATCHER_LIVE);
        pthread_cond_broadcast(&w->cond);
    }
    /* The node serves: the next failure starts the backoff afresh. */
    m->attempt = 0;
    return handled(m, r, 0);
}

static int on_events(struct watch_mux *m, struct cairn_watcher *w, struct proto_response *r,
                     size_t payload_len)
{
    const struct proto_watch_msg *wm = r->watch;
    uint64_t head = r->result->revision;
    struct update_box *b;
    size_t skip = 0;
    size_t i;
    for (i = 1; i < wm->n_events; i++) {
        if (wm->events[i].kv.mod_revision < wm->events[i - 1].kv.mod_revision) {
            conn_error(m, CAIRN_EMALFORMED, "%s sent events out of revision order", m->endpoint);
            goto malformed;
        }
    }
    if (wm->n_events > 0 && head < wm->events[wm->n_events - 1].kv.mod_revision) {
        conn_error(m, CAIRN_EMALFORMED, "%s sent events past their message's revision",
                   m->endpoint);
        goto malformed;
    }
    /* The server gave up a snapshot it had started. */
    snap_discard(w);
    while (skip < wm->n_events && wm->events[skip].kv.mod_revision <= w->resume_rev) {
        skip++;
    }
    if (w->state != WATCHER_LIVE || skip == wm->n_events) {
        /* Nothing new: a replay from a resumed watch. */
        return handled(m, r, 0);
    }
    b = box_new(CAIRN_WATCH_EVENTS);
    if (b == NULL) {
        conn_error(m, CAIRN_ENOMEM, "out of memory for an update");
        return handled(m, r, CAIRN_ENOMEM);
    }
    b->one = *r;
    b->n_resps = 1;
    b->bytes += payload_len + wm->n_events * sizeof(struct cairn_event);
    b->u.revision = head;
    b->u.compact_revision = r->result->compact_revision;
    b->u.events = wm->events + skip;
    b->u.n_events = wm->n_events - skip;
    w->resume_rev = head;
    deliver(m, w, b);
    return 0;

malformed:
    return handled(m, r, CAIRN_EMALFORMED);
}

static int on_progress(struct watch_mux *m, struct cairn_watcher *w, struct proto_response *r)
{
    uint64_t head = r->result->revision;
    struct update_box *b;
    /* Mid-snapshot the caller's state is not at any revision yet; a node
     * behind what was delivered has nothing to say. */
    if (w->state != WATCHER_LIVE || w->n_snap > 0 || head < w->resume_rev) {
        return handled(m, r, 0);
    }
    b = box_new(CAIRN_WATCH_PROGRESS);
    if (b == NULL) {
        conn_error(m, CAIRN_ENOMEM, "out of memory for an update");
        return handled(m, r, CAIRN_ENOMEM);
    }
    b->u.revision = head;
    b->u.compact_revision = r->result->compact_revision;
    w->resume_rev = head;
    proto_response_free(r);
    deliver(m, w, b);
    return 0;
}

static int on_snapshot(struct watch_mux *m, struct cairn_watcher *w, struct proto_response *r,
                       size_t payload_len)
{
    const struct proto_watch_msg *wm = r->watch;
    uint64_t head = r->result->revision;
    uint64_t bytes =
        payload_len + wm->n_events * (sizeof(struct cairn_event) + sizeof(struct cairn_kv));
    struct update_box *b;
    size_t i;
    size_t k = 0;
    if (w->state != WATCHER_LIVE) {
        return handled(m, r, 0);
    }
    if (wm->part == 0) {
        snap_discard(w);
        w->snap_rev = head;
        w->snap_compact = r->result->compact_revision;
    }
    if (wm->part != w->n_snap || head != w->snap_rev) {
        conn_error(m, CAIRN_EMALFORMED,
                   "%s sent snapshot part %u at revision %llu after %zu parts at %llu", m->endpoint,
                   wm->part, (unsigned long long)head, w->n_snap, (unsigned long long)w->snap_rev);
        return handled(m, r, CAIRN_EMALFORMED);
    }
    if (w->snap_bytes + bytes > w->opts.snapshot_bytes_max) {
        uint64_t limit = w->opts.snapshot_bytes_max;
        proto_response_free(r);
        end_watch(m, w, CAIRN_ETOOLARGE,
                  "the snapshot of the watched range at revision %llu exceeds snapshot_bytes_max "
                  "(%llu bytes)",
                  (unsigned long long)head, (unsigned long long)limit);
        return 0;
    }
    if (w->n_snap == w->cap_snap) {
        size_t cap = w->cap_snap > 0 ? w->cap_snap * 2 : 4;
        struct proto_response *grown = cairn_realloc(w->snap, cap * sizeof(*grown));
        if (grown == NULL) {
            goto nomem;
        }
        w->snap = grown;
        w->cap_snap = cap;
    }
    w->snap[w->n_snap++] = *r;
    w->snap_bytes += bytes;
    w->snap_kvs += wm->n_events;
    if (wm->more) {
        pthread_mutex_unlock(&m->mu);
        return 0;
    }
    if (head <= w->resume_rev) {
        /* The caller already holds this state (or a newer one). */
        snap_discard(w);
        pthread_mutex_unlock(&m->mu);
        return 0;
    }
    b = box_new(CAIRN_WATCH_SNAPSHOT);
    if (b == NULL) {
        snap_discard(w);
        goto nomem_after_keep;
    }
    b->kvs = cairn_malloc((w->snap_kvs > 0 ? w->snap_kvs : 1) * sizeof(*b->kvs));
    if (b->kvs == NULL) {
        box_free(b);
        snap_discard(w);
        goto nomem_after_keep;
    }
    for (i = 0; i < w->n_snap; i++) {
        size_t j;
        for (j = 0; j < w->snap[i].watch->n_events; j++) {
            b->kvs[k++] = w->snap[i].watch->events[j].kv;
        }
    }
    /* The parts move to the box. */
    b->resps = w->snap;
    b->n_resps = w->n_snap;
    b->bytes += w->snap_bytes;
    b->u.revision = head;
    b->u.compact_revision = w->snap_compact;
    b->u.kvs = b->kvs;
    b->u.n_kvs = k;
    w->snap = NULL;
    w->n_snap = 0;
    w->cap_snap = 0;
    w->snap_bytes = 0;
    w->snap_kvs = 0;
    w->resume_rev = head;
    deliver(m, w, b);
    return 0;

nomem:
    proto_response_free(r);
    snap_discard(w);
nomem_after_keep:
    conn_error(m, CAIRN_ENOMEM, "out of memory assembling a snapshot");
    pthread_mutex_unlock(&m->mu);
    return CAIRN_ENOMEM;
}

static int on_canceled(struct watch_mux *m, struct cairn_watcher *w, struct proto_response *r)
{
    int code = r->code != 0 ? r->code : CAIRN_EINTERNAL;
    const char *why = r->message[0] != '\0' ? r->message : cairn_strerror(code);
    if (is_transient(code)) {
        conn_error(m, code, "%s ended the watch: %s", m->endpoint, why);
        return handled(m, r, code);
    }
    if (w->state == WATCHER_PENDING) {
        fail_pending(m, w, code, why);
    } else {
        /* The server already forgot it: no cancel to send. */
        w->sent_gen = 0;
        end_watch(m, w, code, "%s ended the watch: %s", m->endpoint, why);
    }
    proto_response_free(r);
    return 0;
}

/* The answer to a ping (the thread's own fields; mu not held). */
static int on_status(struct watch_mux *m, struct proto_response *r)
{
    int64_t now = client_now_ms();
    bool leaderless = r->status->leader_id == 0;
    proto_response_free(r);
    if (!leaderless) {
        m->leaderless_since_ms = 0;
        return 0;
    }
    if (m->leaderless_since_ms == 0) {
        m->leaderless_since_ms = now;
        return 0;
    }
    if (now - m->leaderless_since_ms < WATCH_LEADERLESS_MAX_MS ||
        client_n_endpoints(m->client) < 2) {
        return 0;
    }
    pthread_mutex_lock(&m->mu);
    conn_error(m, CAIRN_ENOLEADER, "%s has known no leader for %lld ms", m->endpoint,
               (long long)(now - m->leaderless_since_ms));
    pthread_mutex_unlock(&m->mu);
    return CAIRN_ENOLEADER;
}

/* Takes ownership of r. */
static int mux_handle(struct watch_mux *m, struct proto_response *r, size_t payload_len)
{
    struct cairn_watcher *w;
    if (r->type == PROTO_STATUS && r->status != NULL) {
        return on_status(m, r);
    }
    pthread_mutex_lock(&m->mu);
    w = mux_find(m, r->id);
    /* Answers to pings, cancels and progress requests carry ids that name no
     * watch; messages for a canceled or ended watch, or one not (yet) sent
     * on this connection, are stale. */
    if (w == NULL || w->sent_gen != m->gen || !is_active(w)) {
        pthread_mutex_unlock(&m->mu);
        proto_response_free(r);
        return 0;
    }
    if (r->watch == NULL) {
        if (r->code != 0) {
            return on_refused(m, w, r);
        }
        pthread_mutex_unlock(&m->mu);
        proto_response_free(r);
        return 0;
    }
    switch (r->watch->kind) {
        case PROTO_WATCH_CREATED:
            return on_created(m, w, r);
        case PROTO_WATCH_EVENTS:
            return on_events(m, w, r, payload_len);
        case PROTO_WATCH_PROGRESS:
            return on_progress(m, w, r);
        case PROTO_WATCH_SNAPSHOT:
            return on_snapshot(m, w, r, payload_len);
        case PROTO_WATCH_CANCELED:
            return on_canceled(m, w, r);
        default:
            /* proto_decode_response() admits only the kinds above. */
            pthread_mutex_unlock(&m->mu);
            proto_response_free(r);
            return 0;
    }
}

/* The connection (the thread only) */

static uint64_t rand_next(struct watch_mux *m)
{
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return m->rng;
}

/* The wait before attempt number m->attempt: exponential from the client's
 * backoff_min_ms, capped at backoff_max_ms, jittered in its upper half so
 * that many clients that lost the same node do not reconnect in lockstep
 * (as client.c does). */
static int64_t backoff_ms(struct watch_mux *m)
{
    const struct cairn_options *o = client_options(m->client);
    int64_t ms = o->backoff_min_ms;
    unsigned i;
    for (i = 1; i < m->attempt && ms < o->backoff_max_ms; i++) {
        ms *= 2;
    }
    if (ms > o->backoff_max_ms) {
        ms = o->backoff_max_ms;
    }
    return ms / 2 + (int64_t)(rand_next(m) % (uint64_t)(ms / 2 + 1));
}

static bool stopping(struct watch_mux *m)
{
    bool stop;
    pthread_mutex_lock(&m->mu);
    stop = m->stop;
    pthread_mutex_unlock(&m->mu);
    return stop;
}

/* Sleep ms unless told to stop. Returns true when stopping. */
static bool mux_sleep(struct watch_mux *m, int64_t ms)
{
    int64_t deadline = client_now_ms() + ms;
    for (;;) {
        struct pollfd p = {m->wake_fd, POLLIN, 0};
        int64_t left = deadline - client_now_ms();
        if (stopping(m)) {
            return true;
        }
        if (left <= 0) {
            return false;
        }
        if (poll(&p, 1, (int)left) > 0) {
            drain_wake(m);
        }
    }
}

static void mux_close(struct watch_mux *m)
{
    if (m->fd >= 0) {
        close(m->fd);
    }
    m->fd = -1;
    m->in.len = 0;
    m->out.len = 0;
    pthread_mutex_lock(&m->mu);
    m->connected = false;
    m->endpoint[0] = '\0';
    m->serving = NULL;
    m->n_reqs = 0;
    pthread_mutex_unlock(&m->mu);
}

/* The connection failed (conn_err says why): resume elsewhere. */
static void mux_lost(struct watch_mux *m)
{
    size_t i;
    mux_close(m);
    pthread_mutex_lock(&m->mu);
    for (i = 0; i < m->n_watches; i++) {
        snap_discard(m->watches[i]);
    }
    pthread_mutex_unlock(&m->mu);
    m->next_ep++;
    m->attempt++;
}

/* Send what the socket takes now. Returns 0 or a code (conn_err set). */
static int mux_flush(struct watch_mux *m)
{
    size_t off = 0;
    int rv = 0;
    while (off < m->out.len) {
        ssize_t n = send(m->fd, m->out.data + off, m->out.len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        pthread_mutex_lock(&m->mu);
        conn_error(m, CAIRN_EUNAVAILABLE, "%s: %s", m->endpoint,
                   n == 0 ? "connection closed" : strerror(errno));
        pthread_mutex_unlock(&m->mu);
        rv = CAIRN_EUNAVAILABLE;
        break;
    }
    buf_consume(&m->out, off);
    return rv;
}

/* One blocking exchange on a fresh connection: send req, wait for its
 * answer until deadline_ms (or until told to stop). */
static int exchange(struct watch_mux *m, int fd, const char *endpoint, struct proto_request *req,
                    int64_t deadline_ms, struct proto_response *resp, char *why, size_t why_len)
{
    struct buf b;
    size_t off = 0;
    int rv = CAIRN_ETIMEOUT;
    buf_init(&b);
    if (proto_encode_request(&b, req) != 0) {
        snprintf(why, why_len, "out of memory");
        buf_free(&b);
        return CAIRN_ENOMEM;
    }
    while (off < b.len) {
        ssize_t n = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {fd, POLLOUT, 0};
            int64_t left = deadline_ms - client_now_ms();
            if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
                snprintf(why, why_len, "%s: timed out sending", endpoint);
                goto out;
            }
        } else {
            snprintf(why, why_len, "%s: %s", endpoint, strerror(errno));
            rv = CAIRN_EUNAVAILABLE;
            goto out;
        }
    }
    b.len = 0;
    for (;;) {
        size_t len = 0;
        struct pollfd p[2] = {{fd, POLLIN, 0}, {m->wake_fd, POLLIN, 0}};
        int64_t left;
        ssize_t n;
        int peek = proto_frame_peek(b.data, b.len, PROTO_FRAME_SIZE_MAX, &len);
        if (peek < 0) {
            snprintf(why, why_len, "%s sent a frame of %zu bytes", endpoint, len);
            rv = CAIRN_EMALFORMED;
            goto out;
        }
        if (peek == 1) {
            rv = proto_decode_response(b.data + PROTO_FRAME_HEADER_SIZE, len, resp);
            buf_consume(&b, PROTO_FRAME_HEADER_SIZE + len);
            if (rv != 0) {
                snprintf(why, why_len, "%s sent a response that does not decode", endpoint);
                goto out;
            }
            if (resp->id == req->id) {
                goto out;
            }
            proto_response_free(resp);
            continue;
        }
        left = deadline_ms - client_now_ms();
        if (left <= 0 || stopping(m)) {
            snprintf(why, why_len, "%s: no answer to %s", endpoint,
                     req->type == PROTO_STATUS ? "status" : "a request");
            rv = CAIRN_ETIMEOUT;
            goto out;
        }
        if (poll(p, 2, (int)left) < 0 && errno != EINTR) {
            snprintf(why, why_len, "poll: %s", strerror(errno));
            rv = CAIRN_EIO;
            goto out;
        }
        if (p[1].revents != 0) {
            /* The main loop looks at everything again after connecting. */
            drain_wake(m);
        }
        if (p[0].revents == 0) {
            continue;
        }
        if (buf_reserve(&b, WATCH_READ_CHUNK) != 0) {
            snprintf(why, why_len, "out of memory");
            rv = CAIRN_ENOMEM;
            goto out;
        }
        n = recv(fd, b.data + b.len, b.cap - b.len, 0);
        if (n > 0) {
            b.len += (size_t)n;
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            snprintf(why, why_len, "%s: %s", endpoint,
                     n == 0 ? "connection closed" : strerror(errno));
            rv = CAIRN_EUNAVAILABLE;
            goto out;
        }
    }
out:
    buf_free(&b);
    return rv;
}

/* Ask a fresh connection whether its node leads. Returns 0 and sets
 * *leader, or an error code (why set). */
static int probe_leader(struct watch_mux *m, int fd, const char *endpoint, bool *leader, char *why,
                        size_t why_len)
{
    struct proto_request req;
    struct proto_response resp;
    const struct cairn_options *o = client_options(m->client);
    int rv;
    memset(&req, 0, sizeof(req));
    req.type = PROTO_STATUS;
    pthread_mutex_lock(&m->mu);
    req.id = m->next_id++;
    pthread_mutex_unlock(&m->mu);
    rv = exchange(m, fd, endpoint, &req, client_now_ms() + o->connect_timeout_ms, &resp, why,
                  why_len);
    if (rv != 0) {
        return rv;
    }
    if (resp.code != 0 || resp.status == NULL) {
        rv = resp.code != 0 ? resp.code : CAIRN_EMALFORMED;
        snprintf(why, why_len, "%s: status failed: %s", endpoint,
                 resp.message[0] != '\0' ? resp.message : cairn_strerror(rv));
        proto_response_free(&resp);
        return rv;
    }
    *leader = strcmp(resp.status->state, "leader") == 0;
    proto_response_free(&resp);
    return 0;
}

/* Connect to the next endpoint; when a watch prefers followers, to the
 * first node of a round over every endpoint that says it does not lead
 * (the leader, if it is the only one that answers). Returns 0 or -1. */
static int mux_connect(struct watch_mux *m)
{
    const struct cairn_options *o = client_options(m->client);
    size_t n = client_n_endpoints(m->client);
    char why[WATCH_ERRMSG_MAX] = "";
    bool prefer;
    int fd = -1;
    int fallback = -1;
    size_t chosen = 0;
    size_t fallback_at = 0;
    size_t i;

    pthread_mutex_lock(&m->mu);
    prefer = m->n_prefer_followers > 0 && n > 1;
    pthread_mutex_unlock(&m->mu);
    for (i = 0; i < (prefer ? n : 1) && !stopping(m); i++) {
        const char *ep = client_endpoint(m->client, m->next_ep + i);
        bool leader = false;
        fd = client_connect(ep, client_now_ms() + o->connect_timeout_ms, o->connect_timeout_ms, why,
                            sizeof(why));
        if (fd < 0) {
            continue;
        }
        if (!prefer) {
            chosen = m->next_ep + i;
            break;
        }
        if (probe_leader(m, fd, ep, &leader, why, sizeof(why)) != 0) {
            close(fd);
            fd = -1;
            continue;
        }
        if (!leader) {
            chosen = m->next_ep + i;
            break;
        }
        /* Keep the leader's connection in case no follower answers. */
        if (fallback < 0) {
            fallback = fd;
            fallback_at = m->next_ep + i;
        } else {
            close(fd);
        }
        fd = -1;
    }
    if (fd < 0 && fallback >= 0) {
        fd = fallback;
        chosen = fallback_at;
    } else if (fallback >= 0) {
        close(fallback);
    }
    pthread_mutex_lock(&m->mu);
    if (fd < 0) {
        conn_error(m, CAIRN_EUNAVAILABLE, "%s", why[0] != '\0' ? why : "stopping");
        pthread_mutex_unlock(&m->mu);
        m->next_ep++;
        return -1;
    }
    m->next_ep = chosen;
    m->gen++;
    m->connected = true;
    m->dirty = true;
    m->serving = client_endpoint(m->client, chosen);
    snprintf(m->endpoint, sizeof(m->endpoint), "%s", m->serving);
    pthread_mutex_unlock(&m->mu);
    m->fd = fd;
    m->in.len = 0;
    m->out.len = 0;
    m->last_rx_ms = client_now_ms();
    m->ping_out = false;
    m->ping_sent_ms = m->last_rx_ms;
    m->leaderless_since_ms = 0;
    return 0;
}

static uint32_t ping_idle_ms(const struct watch_mux *m)
{
    uint32_t ms = WATCH_PING_IDLE_MAX_MS;
    if (m->min_progress_ms > 0 && m->min_progress_ms < ms) {
        ms = m->min_progress_ms;
    }
    return ms < WATCH_PING_IDLE_MIN_MS ? WATCH_PING_IDLE_MIN_MS : ms;
}

static void watch_request(struct proto_request *req, const struct cairn_watcher *w)
{
    memset(req, 0, sizeof(*req));
    req->id = w->id;
    req->type = PROTO_WATCH;
    req->op.type = CAIRN_OP_GET;
    req->op.key.ptr = w->key;
    req->op.key.len = (uint32_t)w->key_len;
    req->op.value.ptr = "";
    req->op.after.ptr = "";
    req->op.prefix = w->opts.prefix;
    req->op.prev_kv = w->opts.prev_kv;
    /* A watch that was created resumes after what it delivered. */
    req->op.revision = w->created ? w->resume_rev + 1 : w->opts.start_revision;
    req->number = w->opts.progress_ms;
}

/* Encode what there is to send (mu held). Returns 0 or CAIRN_ENOMEM. */
static int mux_encode_requests(struct watch_mux *m, bool ping)
{
    struct proto_request req;
    size_t i;
    if (ping) {
        memset(&req, 0, sizeof(req));
        req.type = PROTO_STATUS;
        req.id = m->next_id++;
        if (proto_encode_request(&m->out, &req) != 0) {
            return CAIRN_ENOMEM;
        }
        m->ping_out = true;
        m->ping_sent_ms = client_now_ms();
    }
    if (!m->dirty) {
        return 0;
    }
    for (i = 0; i < m->n_watches; i++) {
        struct cairn_watcher *w = m->watches[i];
        if (!is_active(w)) {
            continue;
        }
        if (w->sent_gen != m->gen) {
            watch_request(&req, w);
            if (proto_encode_request(&m->out, &req) != 0) {
                return CAIRN_ENOMEM;
            }
            w->sent_gen = m->gen;
            snap_discard(w);
        }
        if (w->progress_wanted) {
            memset(&req, 0, sizeof(req));
            req.type = PROTO_PROGRESS;
            req.id = m->next_id++;
            req.number = w->id;
            if (proto_encode_request(&m->out, &req) != 0) {
                return CAIRN_ENOMEM;
            }
            w->progress_wanted = false;
        }
    }
    for (i = 0; i < m->n_reqs; i++) {
        if (m->reqs[i].gen != m->gen) {
            continue;
        }
        memset(&req, 0, sizeof(req));
        req.type = m->reqs[i].type;
        req.id = m->next_id++;
        req.number = m->reqs[i].number;
        if (proto_encode_request(&m->out, &req) != 0) {
            return CAIRN_ENOMEM;
        }
    }
    m->n_reqs = 0;
    m->dirty = false;
    return 0;
}

static bool mux_paused(struct watch_mux *m)
{
    bool paused;
    pthread_mutex_lock(&m->mu);
    paused = m->n_full > 0;
    pthread_mutex_unlock(&m->mu);
    return paused;
}

/* Decode and handle every whole frame received, unless a queue fills. */
static int mux_process_input(struct watch_mux *m)
{
    size_t off = 0;
    int rv = 0;
    while (!mux_paused(m)) {
        struct proto_response r;
        size_t len = 0;
        int peek = proto_frame_peek(m->in.data + off, m->in.len - off, PROTO_FRAME_SIZE_MAX, &len);
        if (peek == 0) {
            break;
        }
        if (peek < 0) {
            pthread_mutex_lock(&m->mu);
            conn_error(m, CAIRN_EMALFORMED, "%s sent a frame of %zu bytes", m->endpoint, len);
            pthread_mutex_unlock(&m->mu);
            rv = CAIRN_EMALFORMED;
            break;
        }
        rv = proto_decode_response(m->in.data + off + PROTO_FRAME_HEADER_SIZE, len, &r);
        off += PROTO_FRAME_HEADER_SIZE + len;
        if (rv != 0) {
            pthread_mutex_lock(&m->mu);
            conn_error(m, rv, "%s sent a message that does not decode (%s)", m->endpoint,
                       cairn_errname(rv));
            pthread_mutex_unlock(&m->mu);
            break;
        }
        rv = mux_handle(m, &r, len);
        if (rv != 0) {
            break;
        }
    }
    buf_consume(&m->in, off);
    return rv;
}

/* Read what the socket has, up to a burst. Returns 0 or a code. */
static int mux_read(struct watch_mux *m)
{
    size_t got = 0;
    while (got < WATCH_READ_BURST_BYTES) {
        ssize_t n;
        if (buf_reserve(&m->in, WATCH_READ_CHUNK) != 0) {
            pthread_mutex_lock(&m->mu);
            conn_error(m, CAIRN_ENOMEM, "out of memory reading from %s", m->endpoint);
            pthread_mutex_unlock(&m->mu);
            return CAIRN_ENOMEM;
        }
        n = recv(m->fd, m->in.data + m->in.len, m->in.cap - m->in.len, 0);
        if (n > 0) {
            m->in.len += (size_t)n;
            got += (size_t)n;
            m->last_rx_ms = client_now_ms();
            m->ping_out = false;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        pthread_mutex_lock(&m->mu);
        conn_error(m, CAIRN_EUNAVAILABLE, "%s: %s", m->endpoint,
                   n == 0 ? "connection closed" : strerror(errno));
        pthread_mutex_unlock(&m->mu);
        return CAIRN_EUNAVAILABLE;
    }
    return 0;
}

/* One turn of the connected loop. Returns 0, or a code when the connection
 * must be given up (conn_err set). */
static int mux_step(struct watch_mux *m)
{
    struct pollfd p[2];
    int64_t now = client_now_ms();
    int64_t timeout = -1;
    uint32_t idle;
    int64_t dead;
    bool paused;
    bool ping;
    int read_rv = 0;
    int rv;

    pthread_mutex_lock(&m->mu);
    paused = m->n_full > 0;
    idle = ping_idle_ms(m);
    dead = 2 * (int64_t)idle + WATCH_SILENCE_SLACK_MS;
    if (paused) {
        /* Not reading says nothing about the node. */
        m->last_rx_ms = now;
        m->ping_out = false;
        m->ping_sent_ms = now;
    }
    /* Pinged even while messages flow: the answers say whether the node
     * still knows a leader. */
    ping = !paused && !m->ping_out && now - m->ping_sent_ms >= idle;
    rv = mux_encode_requests(m, ping);
    if (rv != 0) {
        conn_error(m, rv, "out of memory for requests");
    }
    pthread_mutex_unlock(&m->mu);
    if (rv != 0 || (rv = mux_flush(m)) != 0) {
        return rv;
    }
    if (!paused) {
        timeout = m->ping_sent_ms + (m->ping_out ? dead : idle) - now;
        if (timeout < 0) {
            timeout = 0;
        }
    }
    p[0].fd = m->wake_fd;
    p[0].events = POLLIN;
    p[0].revents = 0;
    /* Paused with nothing to send, leave the socket out: a hang-up would
     * make poll return at once, again and again. */
    p[1].fd = paused && m->out.len == 0 ? -1 : m->fd;
    p[1].events = (short)((paused ? 0 : POLLIN) | (m->out.len > 0 ? POLLOUT : 0));
    p[1].revents = 0;
    if (poll(p, 2, (int)timeout) < 0 && errno != EINTR) {
        pthread_mutex_lock(&m->mu);
        conn_error(m, CAIRN_EIO, "poll: %s", strerror(errno));
        pthread_mutex_unlock(&m->mu);
        return CAIRN_EIO;
    }
    if (p[0].revents != 0) {
        drain_wake(m);
    }
    if (!paused && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        read_rv = mux_read(m);
    }
    if ((p[1].revents & (POLLOUT | POLLHUP | POLLERR)) != 0 && m->out.len > 0 &&
        (rv = mux_flush(m)) != 0) {
        return rv;
    }
    /* Judged before the callbacks below run: everything the node sent by
     * now was just read, and a long callback is no fault of the node's. */
    now = client_now_ms();
    if (!paused && read_rv == 0 && m->ping_out && now - m->ping_sent_ms >= dead) {
        pthread_mutex_lock(&m->mu);
        conn_error(m, CAIRN_ETIMEOUT, "%s said nothing for %lld ms", m->endpoint,
                   (long long)(now - m->last_rx_ms));
        pthread_mutex_unlock(&m->mu);
        return CAIRN_ETIMEOUT;
    }
    /* Messages that arrived before a hang-up still count (a CANCELED that
     * says why, say). */
    rv = mux_process_input(m);
    return rv != 0 ? rv : read_rv;
}

static void *mux_main(void *arg)
{
    struct watch_mux *m = arg;
    for (;;) {
        bool want;
        pthread_mutex_lock(&m->mu);
        if (m->stop) {
            pthread_mutex_unlock(&m->mu);
            break;
        }
        want = m->n_active > 0;
        pthread_mutex_unlock(&m->mu);
        if (!want) {
            struct pollfd p = {m->wake_fd, POLLIN, 0};
            /* Nothing to serve: let the node go, and wait for work. */
            if (m->fd >= 0) {
                mux_close(m);
                m->attempt = 0;
            }
            if (poll(&p, 1, -1) > 0) {
                drain_wake(m);
            }
            continue;
        }
        if (m->fd < 0) {
            if (m->attempt > 0 && mux_sleep(m, backoff_ms(m))) {
                break;
            }
            if (mux_connect(m) != 0) {
                m->attempt++;
                continue;
            }
        }
        if (mux_step(m) != 0) {
            mux_lost(m);
        }
    }
    mux_close(m);
    return NULL;
}

/* Start the thread (mu held). Signals are blocked in it so that the
 * application's handlers run on its own threads. */
static int mux_start(struct watch_mux *m)
{
    sigset_t all;
    sigset_t old;
    int rv;
    if (m->started) {
        return 0;
    }
    /* Made here, not with the client: clients that never watch cost no
     * descriptor. */
    m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->wake_fd < 0) {
        return CAIRN_ENOMEM;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rv = pthread_create(&m->thread, NULL, mux_main, m);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rv != 0) {
        close(m->wake_fd);
        m->wake_fd = -1;
        return CAIRN_ENOMEM;
    }
    m->started = true;
    return 0;
}

struct watch_mux *watch_mux_new(struct cairn_client *c)
{
    struct watch_mux *m = cairn_calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    m->wake_fd = -1;
    m->client = c;
    m->fd = -1;
    m->next_id = 1;
    m->rng = (uint64_t)client_now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)m;
    if (m->rng == 0) {
        m->rng = 1;
    }
    /* Spread clients over the endpoints, as client.c does. */
    m->next_ep = (size_t)(rand_next(m) % client_n_endpoints(c));
    buf_init(&m->in);
    buf_init(&m->out);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->callback_done, NULL);
    return m;
}

void watch_mux_free(struct watch_mux *m)
{
    size_t i;
    bool started;
    if (m == NULL) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    /* A programmer error: joining the thread from itself never returns. */
    if (on_mux_thread(m)) {
        fprintf(stderr, "libcairn: cairn_client_free() called from a watch callback\n");
        abort();
    }
    m->stop = true;
    started = m->started;
    pthread_mutex_unlock(&m->mu);
    mux_wake(m);
    if (started) {
        pthread_join(m->thread, NULL);
    }
    for (i = 0; i < m->n_watches; i++) {
        watcher_free(m->watches[i]);
    }
    cairn_free(m->watches);
    cairn_free(m->reqs);
    buf_free(&m->in);
    buf_free(&m->out);
    if (m->wake_fd >= 0) {
        close(m->wake_fd);
    }
    pthread_cond_destroy(&m->callback_done);
    pthread_mutex_destroy(&m->mu);
    cairn_free(m);
}

/* The public API */

int cairn_watch(cairn_client *c, const void *key, size_t key_len,
                const struct cairn_watch_opts *opts, cairn_watch_cb cb, void *arg,
                cairn_watcher **out)
{
    struct watch_mux *m;
    struct cairn_watcher *w;
    int64_t deadline;
    int timeout_ms;
    int code;
    char why[2 * WATCH_ERRMSG_MAX + ENDPOINT_MAX];
    if (out != NULL) {
        *out = NULL;
    }
    if (c == NULL) {
        return CAIRN_EINVAL;
    }
    if (out == NULL || (key == NULL && key_len > 0)) {
        return client_fail(c, CAIRN_EINVAL, "cairn_watch: %s is NULL", out == NULL ? "out" : "key");
    }
    if (key_len > PROTO_FRAME_SIZE_MAX) {
        return client_fail(c, CAIRN_ETOOLARGE,
                           "key of %zu bytes exceeds the protocol's frame limit", key_len);
    }
    m = client_watch_mux(c);
    timeout_ms = client_options(c)->timeout_ms;
    w = watcher_new(m, key, key_len, opts, cb, arg);
    if (w == NULL) {
        return client_fail(c, CAIRN_ENOMEM, "out of memory for a watch");
    }
    deadline = client_now_ms() + timeout_ms;
    pthread_mutex_lock(&m->mu);
    if (on_mux_thread(m)) {
        pthread_mutex_unlock(&m->mu);
        watcher_free(w);
        return client_fail(c, CAIRN_EINVAL,
                           "cairn_watch() called from a watch callback: it would wait for the "
                           "thread that runs the callback");
    }
    if (mux_start(m) != 0 || mux_add(m, w) != 0) {
        pthread_mutex_unlock(&m->mu);
        watcher_free(w);
        return client_fail(c, CAIRN_ENOMEM,
                           "out of memory (or threads, or file descriptors) for a watch");
    }
    mux_wake(m);
    while (w->state == WATCHER_PENDING) {
        struct timespec ts = deadline_ts(deadline);
        if (pthread_cond_timedwait(&w->cond, &m->mu, &ts) == ETIMEDOUT &&
            client_now_ms() >= deadline) {
            break;
        }
    }
    if (w->state == WATCHER_LIVE) {
        pthread_mutex_unlock(&m->mu);
        *out = w;
        return 0;
    }
    if (w->state == WATCHER_FAILED) {
        code = w->error;
        snprintf(why, sizeof(why), "%s", w->errmsg);
    } else if (m->connected) {
        code = CAIRN_ETIMEOUT;
        snprintf(why, sizeof(why), "%s did not acknowledge the watch within %d ms", m->endpoint,
                 timeout_ms);
    } else {
        code = CAIRN_EUNAVAILABLE;
        snprintf(why, sizeof(why), "no node acknowledged the watch within %d ms (last error: %s)",
                 timeout_ms, m->conn_err != 0 ? m->conn_errmsg : "none");
    }
    mux_cancel_on_server(m, w);
    mux_remove(m, w);
    mux_wake(m);
    pthread_mutex_unlock(&m->mu);
    client_fail(c, code, "watch %.*s%s: %s", quote_len(w->key_len), w->key,
                w->opts.prefix ? " (prefix)" : "", why);
    watcher_free(w);
    return code;
}

int cairn_watch_next(cairn_watcher *w, int timeout_ms, struct cairn_watch_update **out)
{
    struct watch_mux *m;
    struct update_box *b;
    int64_t deadline = client_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    bool wake = false;
    if (out != NULL) {
        *out = NULL;
    }
    if (w == NULL || out == NULL || w->cb != NULL) {
        return CAIRN_EINVAL;
    }
    m = w->mux;
    pthread_mutex_lock(&m->mu);
    while (w->q_head == NULL) {
        if (w->end_taken) {
            pthread_mutex_unlock(&m->mu);
            return CAIRN_EINVAL;
        }
        if (timeout_ms == 0) {
            pthread_mutex_unlock(&m->mu);
            return CAIRN_ETIMEOUT;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&w->cond, &m->mu);
        } else {
            struct timespec ts = deadline_ts(deadline);
            if (pthread_cond_timedwait(&w->cond, &m->mu, &ts) == ETIMEDOUT && w->q_head == NULL &&
                client_now_ms() >= deadline) {
                pthread_mutex_unlock(&m->mu);
                return CAIRN_ETIMEOUT;
            }
        }
    }
    b = w->q_head;
    w->q_head = b->next;
    if (w->q_head == NULL) {
        w->q_tail = NULL;
    }
    b->next = NULL;
    w->q_bytes -= b->bytes;
    if (w->full && w->q_bytes < w->opts.queue_bytes_max) {
        w->full = false;
        m->n_full--;
        wake = m->n_full == 0;
    }
    if (b->u.kind == CAIRN_WATCH_CANCELED) {
        w->end_taken = true;
    } else {
        w->delivered_rev = b->u.revision;
    }
    pthread_mutex_unlock(&m->mu);
    if (wake) {
        /* The thread stopped reading for this queue: it may go on. */
        mux_wake(m);
    }
    *out = &b->u;
    return 0;
}

void cairn_watch_update_free(struct cairn_watch_update *u)
{
    /* u is the first member of its box. */
    box_free((struct update_box *)u);
}

int cairn_watch_request_progress(cairn_watcher *w)
{
    struct watch_mux *m;
    if (w == NULL) {
        return CAIRN_EINVAL;
    }
    m = w->mux;
    pthread_mutex_lock(&m->mu);
    if (!is_active(w)) {
        pthread_mutex_unlock(&m->mu);
        return CAIRN_EINVAL;
    }
    w->progress_wanted = true;
    m->dirty = true;
    pthread_mutex_unlock(&m->mu);
    mux_wake(m);
    return 0;
}

uint64_t cairn_watch_revision(const cairn_watcher *w)
{
    uint64_t rev;
    pthread_mutex_lock(&w->mux->mu);
    rev = w->delivered_rev;
    pthread_mutex_unlock(&w->mux->mu);
    return rev;
}

const char *cairn_watch_endpoint(const cairn_watcher *w)
{
    struct watch_mux *m = w->mux;
    const char *ep = NULL;
    pthread_mutex_lock(&m->mu);
    if (m->connected && w->sent_gen == m->gen && w->state == WATCHER_LIVE) {
        /* The client's own copy: it never changes while the client lives. */
        ep = m->serving;
    }
    pthread_mutex_unlock(&m->mu);
    return ep;
}

void cairn_watch_cancel(cairn_watcher *w)
{
    struct watch_mux *m;
    if (w == NULL) {
        return;
    }
    m = w->mux;
    pthread_mutex_lock(&m->mu);
    mux_cancel_on_server(m, w);
    mux_remove(m, w);
    if (m->in_callback == w) {
        if (on_mux_thread(m)) {
            /* From w's own callback: the thread frees w once it returns. */
            w->free_after_callback = true;
            pthread_mutex_unlock(&m->mu);
            mux_wake(m);
            return;
        }
        while (m->in_callback == w) {
            pthread_cond_wait(&m->callback_done, &m->mu);
        }
    }
    pthread_mutex_unlock(&m->mu);
    mux_wake(m);
    watcher_free(w);
}
