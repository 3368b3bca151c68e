/*
 * read_wait: reads parked until this node has applied a revision.
 *
 * A read that carries a min_revision the node has not applied yet waits
 * here (docs/operations.md). Two orders matter: by revision, so that
 * each applied entry wakes exactly the reads it satisfies by looking at the
 * smallest one; and by deadline, so that the timer fails exactly the reads
 * whose bound has passed. Each is a binary min-heap of pointers to the same
 * waiters; every waiter knows its slot in both, so that one can be removed
 * from the middle (its session closed) in O(log n). Ties go to the waiter
 * that arrived first.
 *
 * Pure: no loop, no clock, no I/O. The caller owns the waiters (it embeds a
 * struct read_waiter in its own record) and reads the clock. Everything is
 * bounded: at most `max` waiters (CAIRN_EBUSY beyond), and the heaps'
 * arrays grow by doubling up to that.
 */
#ifndef CAIRN_READ_WAIT_H
#define CAIRN_READ_WAIT_H

#include <stdbool.h>
#include <stdint.h>

struct read_waiter
{
    uint64_t min_revision;
    uint64_t deadline_ms; /* in the caller's clock */
    uint64_t seq;         /* arrival order, set by read_wait_add */
    uint32_t rev_pos;     /* slot in by_rev */
    uint32_t due_pos;     /* slot in by_due */
};

struct read_wait
{
    struct read_waiter **by_rev; /* owned array; min-heap on (min_revision, seq) */
    struct read_waiter **by_due; /* owned array; min-heap on (deadline_ms, seq) */
    uint32_t n;
    uint32_t cap; /* slots allocated in each array */
    uint32_t max; /* most waiters held */
    uint64_t next_seq;
};

/* An empty wait list for at most max waiters (no memory is taken yet). */
void read_wait_init(struct read_wait *w, uint32_t max);
/* Free the arrays; the waiters still held are the caller's (it should have
 * taken them out first, e.g. with read_wait_pop). */
void read_wait_close(struct read_wait *w);

/* Hold e (borrowed until it is taken out again). Returns 0, CAIRN_EBUSY when
 * max waiters are held, or CAIRN_ENOMEM. */
int read_wait_add(struct read_wait *w, struct read_waiter *e);

/* Take out and return the waiter with the smallest min_revision if it is at
 * most rev, else NULL. Call until NULL after the applied revision grew. */
struct read_waiter *read_wait_ready(struct read_wait *w, uint64_t rev);

/* Take out and return the waiter with the earliest deadline if it is at or
 * before now_ms, else NULL. */
struct read_waiter *read_wait_expired(struct read_wait *w, uint64_t now_ms);

/* Take out and return any waiter (the lowest revision), NULL when empty. */
struct read_waiter *read_wait_pop(struct read_wait *w);

/* Take e out; it must be held. */
void read_wait_remove(struct read_wait *w, struct read_waiter *e);

/* The earliest deadline held; false when empty. */
bool read_wait_next_deadline(const struct read_wait *w, uint64_t *deadline_ms);

/* The i-th waiter held (i < w->n), in no particular order: for scans. */
struct read_waiter *read_wait_at(const struct read_wait *w, uint32_t i);

#endif /* CAIRN_READ_WAIT_H */
