/*
 * The watch hub; the states and bounds are described in watch.h.
 *
 * Why this shape: etcd keeps a buffered channel per watcher and parks
 * watchers whose channel is full as "victims", then catches them up from its
 * backend; when the backend was compacted the watcher gets ErrCompacted and
 * the application must re-list. We keep the catch-up idea but need no
 * per-watcher event copies at all: the key space already holds the history,
 * so a watcher that cannot take an event simply remembers the first revision
 * it missed. And where etcd gives up, we send the range's state instead.
 *
 * Live delivery cost is one encoding per event (done while kv applies it,
 * before retention can discard the previous version) and one memcpy of the
 * encoded bytes per matching watcher.
 */
#define _GNU_SOURCE /* qsort_r */
#include "watch.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "session.h"

enum watcher_state {
    WATCHER_SYNCED,
    WATCHER_CATCHUP,
    WATCHER_SNAPSHOT,
};

/* Watchers of the same key (or the same prefix) share a group, so an event
 * is matched once per distinct key or prefix, not once per watcher. */
struct watch_group
{
    char *key; /* owned */
    uint32_t key_len;
    bool prefix;
    uint64_t hash;
    struct watcher *members;
    uint64_t n_members;
    struct watch_group *hash_next;
    struct watch_group *prefix_next; /* hub's list of prefix groups */
    struct watch_group *prefix_prev;
    /* The EVENTS message of the revision being published, encoded once for
     * the watchers without prev_kv [0] and with it [1]: where it sits in the
     * hub's frames buffer, and where its id is. */
    kv_rev tmpl_rev[2];
    size_t tmpl_off[2];
    size_t tmpl_len[2];
    size_t tmpl_id_off[2];
};

/* A frame of a watcher's waiting in its session's output: where it ends in
 * the session's byte stream, and how many events it holds. */
struct queued
{
    uint64_t end;
    uint64_t n_events;
};

struct watcher
{
    struct watch_hub *hub;     /* borrowed */
    struct session *session;   /* borrowed; the session drops its watchers at close */
    struct watch_group *group; /* borrowed; shared */
    uint64_t id;
    bool prev_kv;
    bool ready;    /* on the hub's ready list */
    bool parked;   /* waits for its session's output to drain */
    bool canceled; /* gone, but still on the ready list: freed when popped */
    enum watcher_state state;
    kv_rev next_rev; /* first revision not yet delivered */
    /* SNAPSHOT: the revision being sent, the part number, and the key the
     * next part starts at (inclusive). */
    kv_rev snap_rev;
    uint32_t snap_part;
    bool snap_has_from;
    char *snap_from; /* owned */
    uint32_t snap_from_len;
    /* Frames in the session's unsent output, oldest first (a ring). */
    struct queued *ring; /* owned */
    uint32_t ring_head;
    uint32_t ring_len;
    uint32_t ring_cap;
    /* ring[ring_head].end while ring_len > 0, kept here because every
     * publish checks it for every matching watcher: reading it from the ring
     * cost a cache miss per watcher per revision. */
    uint64_t ring_head_end;
    uint64_t queued_events;
    uint64_t progress_ms;
    uint64_t last_sent_ms;
    /* Scratch while matching one revision. */
    kv_rev touch_rev;
    size_t first_pair;
    size_t last_pair;
    uint32_t n_touch;
    struct watcher *group_next;
    struct watcher *group_prev;
    struct watcher *session_next;
    struct watcher *session_prev;
    struct watcher *id_next;
    struct watcher *ready_next;
};

/* One (watcher, event) match of the revision being published; pairs of one
 * watcher are chained in event order. */
struct watch_pair
{
    size_t event;
    size_t next; /* SIZE_MAX: last */
};

/* A version found while catching up: the key, the version's index, and the
 * order the keys were visited in (key order) to break ties. */
struct catchup_item
{
    kv_rev rev;
    const struct kv_key *key;
    uint32_t index;
    uint64_t seq;
};

/* Hashing */

static uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t i;
    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t group_hash(const char *key, uint32_t len, bool prefix)
{
    uint64_t h = hash_bytes(14695981039346656037ull, key, len);
    return hash_bytes(h, &prefix, sizeof(prefix));
}

static uint64_t id_hash(const struct session *s, uint64_t id)
{
    uint64_t h = hash_bytes(14695981039346656037ull, &s, sizeof(s));
    return hash_bytes(h, &id, sizeof(id));
}

/* Grow a table of chained buckets to twice its size when it holds as many
 * entries as buckets. next_of gives the chain link of an entry, hash_of its
 * hash. Returns 0 or CAIRN_ENOMEM (the table is unchanged and still works). */
static int grow_groups(struct watch_hub *h)
{
    size_t n = h->n_group_buckets * 2;
    struct watch_group **b = cairn_calloc(n, sizeof(*b));
    size_t i;
    if (b == NULL) {
        return CAIRN_ENOMEM;
    }
    for (i = 0; i < h->n_group_buckets; i++) {
        struct watch_group *g = h->groups[i];
        while (g != NULL) {
            struct watch_group *next = g->hash_next;
            g->hash_next = b[g->hash & (n - 1)];
            b[g->hash & (n - 1)] = g;
            g = next;
        }
    }
    cairn_free(h->groups);
    h->groups = b;
    h->n_group_buckets = n;
    return 0;
}

static int grow_ids(struct watch_hub *h)
{
    size_t n = h->n_id_buckets * 2;
    struct watcher **b = cairn_calloc(n, sizeof(*b));
    size_t i;
    if (b == NULL) {
        return CAIRN_ENOMEM;
    }
    for (i = 0; i < h->n_id_buckets; i++) {
        struct watcher *w = h->by_id[i];
        while (w != NULL) {
            struct watcher *next = w->id_next;
            uint64_t x = id_hash(w->session, w->id) & (n - 1);
            w->id_next = b[x];
            b[x] = w;
            w = next;
        }
    }
    cairn_free(h->by_id);
    h->by_id = b;
    h->n_id_buckets = n;
    return 0;
}

static struct watch_group *group_find(const struct watch_hub *h, const char *key, uint32_t len,
                                      bool prefix)
{
    uint64_t x = group_hash(key, len, prefix);
    struct watch_group *g;
    for (g = h->groups[x & (h->n_group_buckets - 1)]; g != NULL; g = g->hash_next) {
        if (g->hash == x && g->prefix == prefix && g->key_len == len &&
            memcmp(g->key, key, len) == 0) {
            return g;
        }
    }
    return NULL;
}

static struct watch_group *group_get(struct watch_hub *h, const char *key, uint32_t len,
                                     bool prefix)
{
    struct watch_group *g = group_find(h, key, len, prefix);
    size_t x;
    if (g != NULL) {
        return g;
    }
    if (h->n_groups >= h->n_group_buckets) {
        grow_groups(h); /* on failure, chains just get longer */
    }
    g = cairn_calloc(1, sizeof(*g));
    if (g == NULL) {
        return NULL;
    }
    g->key = cairn_malloc(len > 0 ? len : 1);
    if (g->key == NULL) {
        cairn_free(g);
        return NULL;
    }
    memcpy(g->key, key, len);
    g->key_len = len;
    g->prefix = prefix;
    g->hash = group_hash(key, len, prefix);
    x = g->hash & (h->n_group_buckets - 1);
    g->hash_next = h->groups[x];
    h->groups[x] = g;
    h->n_groups++;
    if (prefix) {
        g->prefix_next = h->prefix_groups;
        if (h->prefix_groups != NULL) {
            h->prefix_groups->prefix_prev = g;
        }
        h->prefix_groups = g;
    }
    return g;
}

static void group_release(struct watch_hub *h, struct watch_group *g)
{
    struct watch_group **p;
    if (g->n_members > 0) {
        return;
    }
    for (p = &h->groups[g->hash & (h->n_group_buckets - 1)]; *p != g; p = &(*p)->hash_next) {
    }
    *p = g->hash_next;
    h->n_groups--;
    if (g->prefix) {
        if (g->prefix_prev != NULL) {
            g->prefix_prev->prefix_next = g->prefix_next;
        } else {
            h->prefix_groups = g->prefix_next;
        }
        if (g->prefix_next != NULL) {
            g->prefix_next->prefix_prev = g->prefix_prev;
        }
    }
    cairn_free(g->key);
    cairn_free(g);
}

static struct watcher *id_find(const struct watch_hub *h, const struct session *s, uint64_t id)
{
    struct watcher *w = h->by_id[id_hash(s, id) & (h->n_id_buckets - 1)];
    while (w != NULL && (w->session != s || w->id != id)) {
        w = w->id_next;
    }
    return w;
}

static void id_remove(struct watch_hub *h, struct watcher *w)
{
    struct watcher **p = &h->by_id[id_hash(w->session, w->id) & (h->n_id_buckets - 1)];
    while (*p != w) {
        p = &(*p)->id_next;
    }
    *p = w->id_next;
}

/* Output accounting */

static uint64_t session_pending(const struct session *s)
{
    return s->out.len + s->writing.len;
}

/* The position in the session's byte stream just after its last output. */
static uint64_t session_position(const struct session *s)
{
    return s->written_bytes + session_pending(s);
}

/* Forget frames the socket has taken. */
static void queue_retire(struct watcher *w)
{
    while (w->ring_len > 0 && w->ring_head_end <= w->session->written_bytes) {
        w->queued_events -= w->ring[w->ring_head].n_events;
        w->ring_head = (w->ring_head + 1) % w->ring_cap;
        w->ring_len--;
        if (w->ring_len > 0) {
            w->ring_head_end = w->ring[w->ring_head].end;
        }
    }
}

static int queue_push(struct watcher *w, uint64_t end, uint64_t n_events)
{
    if (w->ring_len == w->ring_cap) {
        uint32_t cap = w->ring_cap == 0 ? 4 : w->ring_cap * 2;
        struct queued *r = cairn_malloc(cap * sizeof(*r));
        uint32_t i;
        if (r == NULL) {
            return CAIRN_ENOMEM;
        }
        for (i = 0; i < w->ring_len; i++) {
            r[i] = w->ring[(w->ring_head + i) % w->ring_cap];
        }
        cairn_free(w->ring);
        w->ring = r;
        w->ring_cap = cap;
        w->ring_head = 0;
    }
    w->ring[(w->ring_head + w->ring_len) % w->ring_cap] = (struct queued){end, n_events};
    if (w->ring_len == 0) {
        w->ring_head_end = end;
    }
    w->ring_len++;
    w->queued_events += n_events;
    return 0;
}

/* Whether n more events may go to w's connection now. */
static bool has_room(struct watcher *w, uint64_t n)
{
    const struct watch_limits *l = &w->hub->limits;
    queue_retire(w);
    return w->queued_events + n <= l->queue_events_max &&
           session_pending(w->session) < l->output_max_bytes;
}

/* Finish a frame packed into the watcher's session and account for it.
 * Returns 0 or CAIRN_ENOMEM (then nothing was sent). */
static int frame_done(struct watcher *w, struct proto_writer *pw, uint64_t n_events)
{
    if (proto_writer_end(pw) != 0) {
        return CAIRN_ENOMEM;
    }
    if (n_events > 0 && queue_push(w, session_position(w->session), n_events) != 0) {
        /* The frame is out already; the bound is just counted loosely. */
        log_warn("watch: out of memory accounting a frame");
    }
    w->last_sent_ms = uv_now(w->hub->loop);
    session_output_done(w->session);
    return 0;
}

/* Scheduling catch-up and snapshot work */

static void work_cb(uv_idle_t *idle);

static void make_ready(struct watcher *w)
{
    struct watch_hub *h = w->hub;
    if (w->ready || w->parked || w->canceled) {
        return;
    }
    w->ready = true;
    w->ready_next = NULL;
    if (h->ready_tail != NULL) {
        h->ready_tail->ready_next = w;
    } else {
        h->ready_head = w;
    }
    h->ready_tail = w;
    if (!h->work_active) {
        uv_idle_start(&h->work, work_cb);
        h->work_active = true;
    }
}

static void park(struct watcher *w)
{
    if (!w->parked) {
        w->parked = true;
        w->session->watch_parked++;
    }
}

static void unpark(struct watcher *w)
{
    if (w->parked) {
        w->parked = false;
        w->session->watch_parked--;
    }
}

/* The watcher missed revision rev: it goes on from history. */
static void fall_behind(struct watcher *w, kv_rev rev)
{
    w->state = WATCHER_CATCHUP;
    w->next_rev = rev;
    w->hub->catchups++;
    make_ready(w);
}

/* Live delivery */

static void pack_event_bytes(struct watch_hub *h, struct proto_writer *pw, bool prev_kv,
                             const struct watch_event *e)
{
    proto_pack_event_head(pw);
    proto_pack_raw(pw, h->batch.data + e->kv_off, e->kv_len);
    if (prev_kv && e->prev_len > 0) {
        proto_pack_raw(pw, h->batch.data + e->prev_off, e->prev_len);
    } else {
        proto_pack_nil(pw);
    }
}

/* Every synced watcher of a group matched the same events, so the message
 * is encoded once per group (and prev_kv flavour) and copied to each, with
 * only the id rewritten. */
static int group_template(struct watch_hub *h, struct watcher *w, kv_rev rev)
{
    struct watch_group *g = w->group;
    int v = w->prev_kv ? 1 : 0;
    struct proto_writer pw;
    size_t p;
    if (g->tmpl_rev[v] == rev) {
        return 0;
    }
    proto_writer_begin(&pw, &h->frames);
    proto_pack_watch_head(&pw, w->id, PROTO_WATCH_EVENTS, rev, h->kv->compact_rev, false, 0,
                          w->n_touch);
    for (p = w->first_pair; p != SIZE_MAX; p = h->pairs[p].next) {
        pack_event_bytes(h, &pw, w->prev_kv, &h->events[h->pairs[p].event]);
    }
    if (proto_writer_end(&pw) != 0) {
        return CAIRN_ENOMEM;
    }
    g->tmpl_rev[v] = rev;
    g->tmpl_off[v] = pw.frame_start;
    g->tmpl_len[v] = h->frames.len - pw.frame_start;
    g->tmpl_id_off[v] = pw.id_offset - pw.frame_start;
    return 0;
}

static void deliver_live(struct watch_hub *h, struct watcher *w, kv_rev rev)
{
    struct watch_group *g = w->group;
    int v = w->prev_kv ? 1 : 0;
    struct buf *out;
    size_t at;
    int i;
    if (w->state != WATCHER_SYNCED) {
        return; /* fell behind while matching */
    }
    if (!has_room(w, w->n_touch) || group_template(h, w, rev) != 0) {
        fall_behind(w, rev);
        return;
    }
    out = session_output(w->session);
    at = out->len;
    if (buf_append(out, h->frames.data + g->tmpl_off[v], g->tmpl_len[v]) != 0) {
        fall_behind(w, rev);
        return;
    }
    for (i = 0; i < 8; i++) {
        out->data[at + g->tmpl_id_off[v] + (size_t)i] = (char)(w->id >> (56 - 8 * i));
    }
    if (queue_push(w, session_position(w->session), w->n_touch) != 0) {
        log_warn("watch: out of memory accounting a frame");
    }
    w->last_sent_ms = uv_now(h->loop);
    session_output_done(w->session);
    w->next_rev = rev + 1;
    h->events_sent += w->n_touch;
}

static int add_pair(struct watch_hub *h, struct watcher *w, size_t event, kv_rev rev)
{
    size_t p;
    if (w->state != WATCHER_SYNCED || w->next_rev > rev) {
        return 0; /* catching up from history, or starts later */
    }
    if (h->n_pairs == h->cap_pairs) {
        size_t cap = h->cap_pairs == 0 ? 64 : h->cap_pairs * 2;
        struct watch_pair *pairs = cairn_realloc(h->pairs, cap * sizeof(*pairs));
        if (pairs == NULL) {
            return CAIRN_ENOMEM;
        }
        h->pairs = pairs;
        h->cap_pairs = cap;
    }
    p = h->n_pairs++;
    h->pairs[p].event = event;
    h->pairs[p].next = SIZE_MAX;
    if (w->touch_rev != rev) {
        if (h->n_touched == h->cap_touched) {
            size_t cap = h->cap_touched == 0 ? 64 : h->cap_touched * 2;
            struct watcher **t = cairn_realloc(h->touched, cap * sizeof(*t));
            if (t == NULL) {
                h->n_pairs--;
                return CAIRN_ENOMEM;
            }
            h->touched = t;
            h->cap_touched = cap;
        }
        h->touched[h->n_touched++] = w;
        w->touch_rev = rev;
        w->first_pair = p;
        w->n_touch = 0;
    } else {
        h->pairs[w->last_pair].next = p;
    }
    w->last_pair = p;
    w->n_touch++;
    return 0;
}

static void match_group(struct watch_hub *h, struct watch_group *g, size_t event, kv_rev rev)
{
    struct watcher *w;
    for (w = g->members; w != NULL; w = w->group_next) {
        if (add_pair(h, w, event, rev) != 0) {
            /* Cannot even remember the match: the watcher catches up. */
            fall_behind(w, rev);
        }
    }
}

static int event_key_cmp(const void *a, const void *b, void *arg)
{
    const struct watch_event *x = a;
    const struct watch_event *y = b;
    const char *base = arg;
    uint32_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(base + x->key_off, base + y->key_off, n);
    if (c != 0) {
        return c;
    }
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static void batch_reset(struct watch_hub *h)
{
    h->batch.len = 0;
    h->frames.len = 0;
    /* A huge transaction must not pin its encoding for the node's life. */
    if (h->batch.cap > WATCH_BUF_KEEP_BYTES) {
        buf_free(&h->batch);
    }
    if (h->frames.cap > WATCH_BUF_KEEP_BYTES) {
        buf_free(&h->frames);
    }
    h->n_events = 0;
    h->n_pairs = 0;
    h->n_touched = 0;
}

/* kv_observer callbacks */

static void observe_change(void *data, const struct kv_key *k, const struct kv_version *v,
                           const struct kv_version *prev)
{
    struct watch_hub *h = data;
    struct watch_event *e;
    struct proto_writer pw;
    struct cairn_kv ckv;
    if (h->n_watchers == 0) {
        return;
    }
    if (h->n_events == h->cap_events) {
        size_t cap = h->cap_events == 0 ? 16 : h->cap_events * 2;
        struct watch_event *events = cairn_realloc(h->events, cap * sizeof(*events));
        if (events == NULL) {
            goto nomem;
        }
        h->events = events;
        h->cap_events = cap;
    }
    e = &h->events[h->n_events];
    memset(e, 0, sizeof(*e));
    e->key_off = h->batch.len;
    e->key_len = k->key_len;
    if (buf_append(&h->batch, k->key, k->key_len) != 0) {
        goto nomem;
    }
    e->kv_off = h->batch.len;
    proto_writer_begin_unframed(&pw, &h->batch);
    kv_to_cairn_kv(k, v, &ckv);
    proto_pack_kv(&pw, &ckv);
    if (proto_writer_end_unframed(&pw) != 0) {
        goto nomem;
    }
    e->kv_len = (uint32_t)(h->batch.len - e->kv_off);
    if (prev != NULL) {
        e->prev_off = h->batch.len;
        proto_writer_begin_unframed(&pw, &h->batch);
        kv_to_cairn_kv(k, prev, &ckv);
        proto_pack_kv(&pw, &ckv);
        if (proto_writer_end_unframed(&pw) != 0) {
            goto nomem;
        }
        e->prev_len = (uint32_t)(h->batch.len - e->prev_off);
    }
    h->n_events++;
    return;

nomem:
    /* Losing a live event is not an option: push every synced watcher to
     * catch up from history, which still holds this change. */
    log_warn("watch: out of memory encoding an event; watchers catch up from history");
    h->n_events = SIZE_MAX;
}

static void fall_behind_all_synced(struct watch_hub *h, kv_rev rev)
{
    size_t i;
    for (i = 0; i < h->n_id_buckets; i++) {
        struct watcher *w;
        for (w = h->by_id[i]; w != NULL; w = w->id_next) {
            if (w->state == WATCHER_SYNCED && w->next_rev <= rev) {
                fall_behind(w, rev);
            }
        }
    }
}

static void observe_revision_done(void *data, kv_rev rev)
{
    struct watch_hub *h = data;
    struct watch_group *g;
    size_t i;
    if (h->n_events == SIZE_MAX) {
        fall_behind_all_synced(h, rev);
        goto out;
    }
    if (h->n_events == 0) {
        goto out;
    }
    /* Within a revision, events go out in key order, as catch-up sends them. */
    if (h->n_events > 1) {
        qsort_r(h->events, h->n_events, sizeof(h->events[0]), event_key_cmp, h->batch.data);
    }
    for (i = 0; i < h->n_events; i++) {
        const struct watch_event *e = &h->events[i];
        const char *key = h->batch.data + e->key_off;
        g = group_find(h, key, e->key_len, false);
        if (g != NULL) {
            match_group(h, g, i, rev);
        }
        for (g = h->prefix_groups; g != NULL; g = g->prefix_next) {
            if (e->key_len >= g->key_len && memcmp(key, g->key, g->key_len) == 0) {
                match_group(h, g, i, rev);
            }
        }
    }
    for (i = 0; i < h->n_touched; i++) {
        deliver_live(h, h->touched[i], rev);
    }
out:
    batch_reset(h);
    h->rev = rev;
}

static void observe_restored(void *data)
{
    struct watch_hub *h = data;
    size_t i;
    /* The state jumped (a snapshot from the leader): a synced watcher has
     * everything up to the old revision and must find the rest, if any, in
     * the new state's history. */
    batch_reset(h);
    for (i = 0; i < h->n_id_buckets; i++) {
        struct watcher *w;
        for (w = h->by_id[i]; w != NULL; w = w->id_next) {
            if (w->state == WATCHER_SYNCED) {
                fall_behind(w, w->next_rev > h->rev + 1 ? w->next_rev : h->rev + 1);
            }
        }
    }
    h->rev = h->kv->rev;
}

/* Catch-up and snapshots */

static bool in_range(const struct watch_group *g, const struct kv_key *k)
{
    if (g->prefix) {
        return k->key_len >= g->key_len && memcmp(k->key, g->key, g->key_len) == 0;
    }
    return k->key_len == g->key_len && memcmp(k->key, g->key, g->key_len) == 0;
}

static const struct kv_key *range_first(const struct watch_hub *h, const struct watch_group *g)
{
    const struct kv_key *k = kv_seek(h->kv, g->key, g->key_len);
    return k != NULL && in_range(g, k) ? k : NULL;
}

static const struct kv_key *range_next(const struct watch_group *g, const struct kv_key *k)
{
    if (!g->prefix) {
        return NULL;
    }
    k = kv_next(k);
    return k != NULL && in_range(g, k) ? k : NULL;
}

static void begin_snapshot(struct watcher *w)
{
    w->state = WATCHER_SNAPSHOT;
    w->snap_rev = w->hub->kv->rev;
    w->snap_part = 0;
    w->snap_has_from = false;
    w->hub->snapshots++;
}

static int item_cmp(const void *a, const void *b)
{
    const struct catchup_item *x = a;
    const struct catchup_item *y = b;
    if (x->rev != y->rev) {
        return x->rev < y->rev ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* One step of CATCHUP: send the next batch of events from history, or find
 * that history is incomplete (then SNAPSHOT) or caught up (then SYNCED).
 * Returns true when more work remains. */
static bool catchup_step(struct watch_hub *h, struct watcher *w)
{
    const struct kv *kv = h->kv;
    struct catchup_item *items = NULL;
    size_t n = 0;
    size_t cap = 0;
    size_t take;
    size_t i;
    uint64_t seq = 0;
    const struct kv_key *k;
    struct proto_writer pw;
    uint64_t room;

    if (w->next_rev > kv->rev) {
        w->state = WATCHER_SYNCED;
        return false;
    }
    if (w->next_rev <= kv->compact_rev) {
        begin_snapshot(w);
        return true;
    }
    for (k = range_first(h, w->group); k != NULL; k = range_next(w->group, k)) {
        uint32_t j;
        if (k->floor_rev >= w->next_rev) {
            /* Retention discarded a version this watcher has not seen. */
            cairn_free(items);
            begin_snapshot(w);
            return true;
        }
        for (j = k->n_versions; j > 0 && k->versions[j - 1].mod_rev >= w->next_rev; j--) {
        }
        for (; j < k->n_versions; j++) {
            if (n == cap) {
                size_t c = cap == 0 ? 64 : cap * 2;
                struct catchup_item *it = cairn_realloc(items, c * sizeof(*it));
                if (it == NULL) {
                    cairn_free(items);
                    log_warn("watch: out of memory catching up; retrying");
                    return true;
                }
                items = it;
                cap = c;
            }
            items[n++] = (struct catchup_item){k->versions[j].mod_rev, k, j, seq++};
        }
    }
    if (n == 0) {
        w->next_rev = kv->rev + 1;
        w->state = WATCHER_SYNCED;
        return false;
    }
    qsort(items, n, sizeof(items[0]), item_cmp);
    /* As many events as the watcher's bound allows now, at least one whole
     * revision, at most a batch unless one revision is bigger. */
    queue_retire(w);
    room = h->limits.queue_events_max - w->queued_events;
    if (room > WATCH_CATCHUP_BATCH_EVENTS) {
        room = WATCH_CATCHUP_BATCH_EVENTS;
    }
    take = 1;
    while (take < n && (take < room || items[take].rev == items[take - 1].rev)) {
        take++;
    }
    proto_writer_begin(&pw, session_output(w->session));
    proto_pack_watch_head(&pw, w->id, PROTO_WATCH_EVENTS, items[take - 1].rev, kv->compact_rev,
                          false, 0, (uint32_t)take);
    for (i = 0; i < take; i++) {
        const struct kv_version *v = &items[i].key->versions[items[i].index];
        const struct kv_version *prev =
            items[i].index > 0 ? &items[i].key->versions[items[i].index - 1] : NULL;
        struct cairn_kv ckv;
        struct cairn_kv cprev;
        kv_to_cairn_kv(items[i].key, v, &ckv);
        if (w->prev_kv && prev != NULL && !prev->deleted) {
            kv_to_cairn_kv(items[i].key, prev, &cprev);
            proto_pack_event(&pw, &ckv, &cprev);
        } else {
            proto_pack_event(&pw, &ckv, NULL);
        }
    }
    if (frame_done(w, &pw, take) != 0) {
        cairn_free(items);
        return true;
    }
    h->events_sent += take;
    if (take == n) {
        /* Nothing else changed in the range up to the head. */
        w->next_rev = kv->rev + 1;
        w->state = WATCHER_SYNCED;
        cairn_free(items);
        return false;
    }
    w->next_rev = items[take - 1].rev + 1;
    cairn_free(items);
    return true;
}

/* One step of SNAPSHOT: send the next part of the range's state at snap_rev.
 * Returns true when more work remains. */
static bool snapshot_step(struct watch_hub *h, struct watcher *w)
{
    const struct kv *kv = h->kv;
    const struct kv_key *start;
    const struct kv_key *stop = NULL; /* first key of the next part */
    const struct kv_key *k;
    const struct kv_version *v;
    struct proto_writer pw;
    uint32_t n = 0;
    uint64_t bytes = 0;
    char *copy;

    if (kv->compact_rev > w->snap_rev) {
        begin_snapshot(w); /* compacted under us: start over, at a newer revision */
    }
    start = range_first(h, w->group);
    if (w->snap_has_from) {
        start = kv_seek(kv, w->snap_from, w->snap_from_len);
        if (start != NULL && !in_range(w->group, start)) {
            start = NULL;
        }
    }
    /* First pass: which keys go in this part, and is each still known at
     * snap_rev? */
    for (k = start; k != NULL; k = range_next(w->group, k)) {
        if (n == WATCH_SNAPSHOT_PART_KEYS || bytes >= WATCH_SNAPSHOT_PART_BYTES) {
            stop = k;
            break;
        }
        if (kv_version_at(k, w->snap_rev, &v) != 0) {
            begin_snapshot(w); /* retention trimmed it meanwhile: start over */
            return true;
        }
        if (v != NULL) {
            n++;
            bytes += k->key_len + v->value_len;
        }
    }
    proto_writer_begin(&pw, session_output(w->session));
    proto_pack_watch_head(&pw, w->id, PROTO_WATCH_SNAPSHOT, w->snap_rev, kv->compact_rev,
                          stop != NULL, w->snap_part, n);
    for (k = start; k != stop; k = range_next(w->group, k)) {
        struct cairn_kv ckv;
        kv_version_at(k, w->snap_rev, &v);
        if (v != NULL) {
            kv_to_cairn_kv(k, v, &ckv);
            proto_pack_event(&pw, &ckv, NULL);
        }
    }
    if (frame_done(w, &pw, n > 0 ? n : 1) != 0) {
        return true;
    }
    if (stop != NULL) {
        copy = cairn_malloc(stop->key_len > 0 ? stop->key_len : 1);
        if (copy == NULL) {
            begin_snapshot(w);
            return true;
        }
        memcpy(copy, stop->key, stop->key_len);
        cairn_free(w->snap_from);
        w->snap_from = copy;
        w->snap_from_len = stop->key_len;
        w->snap_has_from = true;
        w->snap_part++;
        return true;
    }
    cairn_free(w->snap_from);
    w->snap_from = NULL;
    w->snap_has_from = false;
    w->next_rev = w->snap_rev + 1;
    w->state = WATCHER_CATCHUP;
    return true;
}

static void watcher_free(struct watcher *w)
{
    cairn_free(w->snap_from);
    cairn_free(w->ring);
    cairn_free(w);
}

static void work_cb(uv_idle_t *idle)
{
    struct watch_hub *h = idle->data;
    int budget = WATCH_WORK_PER_ITERATION;
    while (h->ready_head != NULL && budget-- > 0) {
        struct watcher *w = h->ready_head;
        bool more;
        h->ready_head = w->ready_next;
        if (h->ready_head == NULL) {
            h->ready_tail = NULL;
        }
        w->ready = false;
        if (w->canceled) {
            watcher_free(w);
            continue;
        }
        if (!has_room(w, 1)) {
            park(w);
            continue;
        }
        switch (w->state) {
            case WATCHER_CATCHUP:
                more = catchup_step(h, w);
                break;
            case WATCHER_SNAPSHOT:
                more = snapshot_step(h, w);
                break;
            default:
                more = false;
                break;
        }
        if (more) {
            make_ready(w);
        }
    }
    if (h->ready_head == NULL && h->work_active) {
        uv_idle_stop(&h->work);
        h->work_active = false;
    }
}

/* Requests */

static void send_progress(struct watcher *w)
{
    struct watch_hub *h = w->hub;
    struct proto_writer pw;
    kv_rev rev = h->kv->rev;
    if (w->next_rev > rev + 1) {
        rev = w->next_rev - 1; /* starts in the future: keep revisions monotonic */
    }
    proto_writer_begin(&pw, session_output(w->session));
    proto_pack_watch_head(&pw, w->id, PROTO_WATCH_PROGRESS, rev, h->kv->compact_rev, false, 0, 0);
    frame_done(w, &pw, 0);
}

static void answer_ok(struct watch_hub *h, struct session *s, const struct proto_request *req)
{
    struct proto_writer pw;
    struct proto_response_head head;
    memset(&head, 0, sizeof(head));
    head.id = req->id;
    head.type = req->type;
    head.revision = h->kv->rev;
    head.compact_revision = h->kv->compact_rev;
    head.succeeded = true;
    proto_writer_begin(&pw, session_output(s));
    proto_pack_response_head(&pw, &head);
    proto_pack_nil(&pw);
    if (proto_writer_end(&pw) != 0) {
        session_send_error(s, req->id, req->type, CAIRN_ENOMEM, NULL, NULL);
        return;
    }
    session_output_done(s);
}

static void watcher_unlink(struct watch_hub *h, struct watcher *w)
{
    struct watch_group *g = w->group;
    struct session *s = w->session;
    id_remove(h, w);
    if (w->group_prev != NULL) {
        w->group_prev->group_next = w->group_next;
    } else {
        g->members = w->group_next;
    }
    if (w->group_next != NULL) {
        w->group_next->group_prev = w->group_prev;
    }
    g->n_members--;
    group_release(h, g);
    if (w->session_prev != NULL) {
        w->session_prev->session_next = w->session_next;
    } else {
        s->watchers = w->session_next;
    }
    if (w->session_next != NULL) {
        w->session_next->session_prev = w->session_prev;
    }
    s->n_watchers--;
    unpark(w);
    h->n_watchers--;
    if (w->ready) {
        w->canceled = true; /* the work loop frees it */
    } else {
        watcher_free(w);
    }
}

static int create_watch(struct watch_hub *h, struct session *s, const struct proto_request *req)
{
    struct watcher *w;
    struct watch_group *g;
    struct proto_writer pw;
    size_t x;
    if (req->id == 0) {
        session_send_error(s, req->id, req->type, CAIRN_EINVAL, "a watch id must not be 0", NULL);
        return CAIRN_EINVAL;
    }
    if (id_find(h, s, req->id) != NULL) {
        session_send_error(s, req->id, req->type, CAIRN_EINVAL,
                           "a watch with this id already exists on this connection", NULL);
        return CAIRN_EINVAL;
    }
    if (s->n_watchers >= h->limits.per_connection_max) {
        char msg[128];
        snprintf(msg, sizeof(msg), "more than watch_max_per_connection (%llu) watches",
                 (unsigned long long)h->limits.per_connection_max);
        session_send_error(s, req->id, req->type, CAIRN_ETOOLARGE, msg, NULL);
        return CAIRN_ETOOLARGE;
    }
    w = cairn_calloc(1, sizeof(*w));
    g = w != NULL ? group_get(h, req->op.key.ptr, req->op.key.len, req->op.prefix) : NULL;
    if (g == NULL) {
        cairn_free(w);
        session_send_error(s, req->id, req->type, CAIRN_ENOMEM, "no memory for a watch", NULL);
        return CAIRN_ENOMEM;
    }
    w->hub = h;
    w->session = s;
    w->group = g;
    w->id = req->id;
    w->prev_kv = req->op.prev_kv;
    w->progress_ms = req->number == 0 ? h->limits.progress_ms : req->number;
    if (w->progress_ms < WATCH_PROGRESS_MIN_MS) {
        w->progress_ms = WATCH_PROGRESS_MIN_MS;
    }
    w->next_rev = req->op.revision == 0 ? h->kv->rev + 1 : req->op.revision;
    w->touch_rev = UINT64_MAX;
    w->state = w->next_rev <= h->kv->rev ? WATCHER_CATCHUP : WATCHER_SYNCED;
    /* Link everywhere. */
    w->group_next = g->members;
    if (g->members != NULL) {
        g->members->group_prev = w;
    }
    g->members = w;
    g->n_members++;
    if (h->n_watchers >= h->n_id_buckets) {
        grow_ids(h);
    }
    x = id_hash(s, w->id) & (h->n_id_buckets - 1);
    w->id_next = h->by_id[x];
    h->by_id[x] = w;
    w->session_next = s->watchers;
    if (s->watchers != NULL) {
        s->watchers->session_prev = w;
    }
    s->watchers = w;
    s->n_watchers++;
    h->n_watchers++;
    proto_writer_begin(&pw, session_output(s));
    proto_pack_watch_head(&pw, w->id, PROTO_WATCH_CREATED, w->next_rev - 1, h->kv->compact_rev,
                          false, 0, 0);
    if (frame_done(w, &pw, 0) != 0) {
        watcher_unlink(h, w);
        session_send_error(s, req->id, req->type, CAIRN_ENOMEM, "no memory for a watch", NULL);
        return CAIRN_ENOMEM;
    }
    if (w->state == WATCHER_CATCHUP) {
        make_ready(w);
    }
    return 0;
}

int watch_hub_handle(struct watch_hub *h, struct session *s, const struct proto_request *req)
{
    struct watcher *w;
    switch (req->type) {
        case PROTO_WATCH:
            return create_watch(h, s, req);
        case PROTO_WATCH_CANCEL:
            w = id_find(h, s, req->number);
            if (w == NULL) {
                session_send_error(s, req->id, req->type, CAIRN_ENOTFOUND,
                                   "no such watch on this connection", NULL);
                return CAIRN_ENOTFOUND;
            }
            watcher_unlink(h, w);
            answer_ok(h, s, req);
            return 0;
        case PROTO_PROGRESS:
            if (req->number != 0) {
                w = id_find(h, s, req->number);
                if (w == NULL) {
                    session_send_error(s, req->id, req->type, CAIRN_ENOTFOUND,
                                       "no such watch on this connection", NULL);
                    return CAIRN_ENOTFOUND;
                }
                if (w->state == WATCHER_SYNCED) {
                    send_progress(w);
                }
            } else {
                for (w = s->watchers; w != NULL; w = w->session_next) {
                    if (w->state == WATCHER_SYNCED) {
                        send_progress(w);
                    }
                }
            }
            answer_ok(h, s, req);
            return 0;
        default:
            session_send_error(s, req->id, req->type, CAIRN_EINVAL, "not a watch request", NULL);
            return CAIRN_EINVAL;
    }
}

void watch_hub_session_closed(struct watch_hub *h, struct session *s)
{
    while (s->watchers != NULL) {
        watcher_unlink(h, s->watchers);
    }
}

void watch_hub_session_drained(struct watch_hub *h, struct session *s)
{
    struct watcher *w;
    (void)h;
    if (s->watch_parked == 0 || session_pending(s) >= h->limits.output_max_bytes) {
        return;
    }
    for (w = s->watchers; w != NULL && s->watch_parked > 0; w = w->session_next) {
        if (w->parked) {
            unpark(w);
            make_ready(w);
        }
    }
}

void watch_hub_tick(struct watch_hub *h)
{
    uint64_t now = uv_now(h->loop);
    size_t i;
    for (i = 0; i < h->n_id_buckets; i++) {
        struct watcher *w;
        for (w = h->by_id[i]; w != NULL; w = w->id_next) {
            if (w->state != WATCHER_SYNCED || now - w->last_sent_ms < w->progress_ms) {
                continue;
            }
            queue_retire(w);
            /* Only when everything sent before has left: a progress
             * notification must not pile up behind a stuck reader. */
            if (w->ring_len == 0 && session_pending(w->session) < h->limits.output_max_bytes) {
                send_progress(w);
            }
        }
    }
}

uint64_t watch_hub_count(const struct watch_hub *h)
{
    return h->n_watchers;
}

void watch_hub_stats(struct watch_hub *h, struct watch_hub_stats *out)
{
    size_t i;
    memset(out, 0, sizeof(*out));
    out->watchers = h->n_watchers;
    for (i = 0; i < h->n_id_buckets; i++) {
        struct watcher *w;
        for (w = h->by_id[i]; w != NULL; w = w->id_next) {
            /* Frames the socket took since the last look no longer wait. */
            queue_retire(w);
            out->queued_events += w->queued_events;
            out->behind += w->state != WATCHER_SYNCED;
        }
    }
}

int watch_hub_init(struct watch_hub *h, uv_loop_t *loop, struct kv *kv,
                   const struct watch_limits *limits)
{
    int rv;
    memset(h, 0, sizeof(*h));
    h->loop = loop;
    h->kv = kv;
    h->limits = *limits;
    h->rev = kv->rev;
    buf_init(&h->batch);
    buf_init(&h->frames);
    h->n_group_buckets = 64;
    h->groups = cairn_calloc(h->n_group_buckets, sizeof(*h->groups));
    h->n_id_buckets = 64;
    h->by_id = cairn_calloc(h->n_id_buckets, sizeof(*h->by_id));
    if (h->groups == NULL || h->by_id == NULL) {
        rv = CAIRN_ENOMEM;
        goto err;
    }
    rv = uv_idle_init(loop, &h->work);
    if (rv != 0) {
        rv = CAIRN_ENOMEM;
        goto err;
    }
    h->work.data = h;
    h->observer.data = h;
    h->observer.change = observe_change;
    h->observer.revision_done = observe_revision_done;
    h->observer.restored = observe_restored;
    return 0;

err:
    cairn_free(h->groups);
    cairn_free(h->by_id);
    return rv;
}

void watch_hub_close(struct watch_hub *h)
{
    if (h->work.loop != NULL && !uv_is_closing((uv_handle_t *)&h->work)) {
        uv_close((uv_handle_t *)&h->work, NULL);
    }
}

void watch_hub_free(struct watch_hub *h)
{
    while (h->ready_head != NULL) {
        struct watcher *w = h->ready_head;
        h->ready_head = w->ready_next;
        /* Every session closed first, so every watcher here was canceled. */
        watcher_free(w);
    }
    buf_free(&h->batch);
    buf_free(&h->frames);
    cairn_free(h->events);
    cairn_free(h->pairs);
    cairn_free(h->touched);
    cairn_free(h->groups);
    cairn_free(h->by_id);
    memset(h, 0, sizeof(*h));
}
