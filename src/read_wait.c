#include "read_wait.h"

#include <assert.h>
#include <stddef.h>

#include "buf.h"
#include "cairn.h"

/* The two heaps share one implementation: `which` selects the array, the
 * key and the slot field. */
enum heap { BY_REV, BY_DUE };

static struct read_waiter **heap_of(struct read_wait *w, enum heap which)
{
    return which == BY_REV ? w->by_rev : w->by_due;
}

static uint32_t *pos_of(struct read_waiter *e, enum heap which)
{
    return which == BY_REV ? &e->rev_pos : &e->due_pos;
}

static uint64_t key_of(const struct read_waiter *e, enum heap which)
{
    return which == BY_REV ? e->min_revision : e->deadline_ms;
}

/* Strict order: by key, then by arrival. */
static bool before(const struct read_waiter *a, const struct read_waiter *b, enum heap which)
{
    uint64_t ka = key_of(a, which);
    uint64_t kb = key_of(b, which);
    return ka < kb || (ka == kb && a->seq < b->seq);
}

static void put(struct read_wait *w, enum heap which, uint32_t i, struct read_waiter *e)
{
    heap_of(w, which)[i] = e;
    *pos_of(e, which) = i;
}

static void sift_up(struct read_wait *w, enum heap which, uint32_t i)
{
    struct read_waiter **h = heap_of(w, which);
    struct read_waiter *e = h[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(e, h[parent], which)) {
            break;
        }
        put(w, which, i, h[parent]);
        i = parent;
    }
    put(w, which, i, e);
}

static void sift_down(struct read_wait *w, enum heap which, uint32_t i)
{
    struct read_waiter **h = heap_of(w, which);
    struct read_waiter *e = h[i];
    for (;;) {
        uint32_t left = 2 * i + 1;
        uint32_t right = left + 1;
        uint32_t least = left;
        if (left >= w->n) {
            break;
        }
        if (right < w->n && before(h[right], h[left], which)) {
            least = right;
        }
        if (!before(h[least], e, which)) {
            break;
        }
        put(w, which, i, h[least]);
        i = least;
    }
    put(w, which, i, e);
}

/* Remove slot i of one heap; w->n already counts one fewer, and the last
 * element (at w->n) fills the hole. */
static void heap_remove_at(struct read_wait *w, enum heap which, uint32_t i)
{
    struct read_waiter **h = heap_of(w, which);
    if (i == w->n) {
        return; /* it was the last one */
    }
    put(w, which, i, h[w->n]);
    if (i > 0 && before(h[i], h[(i - 1) / 2], which)) {
        sift_up(w, which, i);
    } else {
        sift_down(w, which, i);
    }
}

void read_wait_init(struct read_wait *w, uint32_t max)
{
    w->by_rev = NULL;
    w->by_due = NULL;
    w->n = 0;
    w->cap = 0;
    w->max = max;
    w->next_seq = 0;
}

void read_wait_close(struct read_wait *w)
{
    cairn_free(w->by_rev);
    cairn_free(w->by_due);
    w->by_rev = NULL;
    w->by_due = NULL;
    w->n = 0;
    w->cap = 0;
}

static int grow(struct read_wait *w)
{
    uint32_t cap = w->cap == 0 ? 16 : w->cap * 2;
    struct read_waiter **rev;
    struct read_waiter **due;
    if (cap > w->max) {
        cap = w->max;
    }
    rev = cairn_realloc(w->by_rev, (size_t)cap * sizeof(*rev));
    if (rev == NULL) {
        return CAIRN_ENOMEM;
    }
    w->by_rev = rev;
    due = cairn_realloc(w->by_due, (size_t)cap * sizeof(*due));
    if (due == NULL) {
        return CAIRN_ENOMEM; /* by_rev is larger than needed: harmless */
    }
    w->by_due = due;
    w->cap = cap;
    return 0;
}

int read_wait_add(struct read_wait *w, struct read_waiter *e)
{
    if (w->n >= w->max) {
        return CAIRN_EBUSY;
    }
    if (w->n == w->cap && grow(w) != 0) {
        return CAIRN_ENOMEM;
    }
    e->seq = w->next_seq++;
    w->n++;
    put(w, BY_REV, w->n - 1, e);
    put(w, BY_DUE, w->n - 1, e);
    sift_up(w, BY_REV, w->n - 1);
    sift_up(w, BY_DUE, w->n - 1);
    return 0;
}

void read_wait_remove(struct read_wait *w, struct read_waiter *e)
{
    /* e must be held: its slots name it. */
    assert(e->rev_pos < w->n && w->by_rev[e->rev_pos] == e);
    assert(e->due_pos < w->n && w->by_due[e->due_pos] == e);
    w->n--;
    heap_remove_at(w, BY_REV, e->rev_pos);
    heap_remove_at(w, BY_DUE, e->due_pos);
}

struct read_waiter *read_wait_ready(struct read_wait *w, uint64_t rev)
{
    struct read_waiter *e;
    if (w->n == 0 || w->by_rev[0]->min_revision > rev) {
        return NULL;
    }
    e = w->by_rev[0];
    read_wait_remove(w, e);
    return e;
}

struct read_waiter *read_wait_expired(struct read_wait *w, uint64_t now_ms)
{
    struct read_waiter *e;
    if (w->n == 0 || w->by_due[0]->deadline_ms > now_ms) {
        return NULL;
    }
    e = w->by_due[0];
    read_wait_remove(w, e);
    return e;
}

struct read_waiter *read_wait_pop(struct read_wait *w)
{
    struct read_waiter *e;
    if (w->n == 0) {
        return NULL;
    }
    e = w->by_rev[0];
    read_wait_remove(w, e);
    return e;
}

bool read_wait_next_deadline(const struct read_wait *w, uint64_t *deadline_ms)
{
    if (w->n == 0) {
        return false;
    }
    *deadline_ms = w->by_due[0]->deadline_ms;
    return true;
}

struct read_waiter *read_wait_at(const struct read_wait *w, uint32_t i)
{
    /* A scan stays below the count it read. */
    assert(i < w->n);
    return w->by_rev[i];
}
