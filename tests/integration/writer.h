/*
 * writer: a thread that writes key PREFIX/NNNNNN = the key itself, one put
 * at a time through a client of the whole cluster, while a test changes
 * the cluster under it; then checks that every acknowledged write is there,
 * as acknowledged, and that no write that certainly failed is.
 *
 *   struct it_writer w;
 *   it_writer_start(&w, cluster, "sd/", 100000);
 *   it_writer_wait(&w, 100, 30000);         ... 100 more acknowledgments
 *   it_writer_stop(&w);
 *   it_writer_check(&w, cluster, node);     every ack on node, as acked
 *   it_writer_free(&w);
 */
#ifndef CAIRN_IT_WRITER_H
#define CAIRN_IT_WRITER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "harness.h"

enum it_write_outcome {
    IT_WRITE_NOT_SENT = 0,
    IT_WRITE_ACKED,
    IT_WRITE_UNKNOWN, /* CAIRN_EUNKNOWN: may or may not have applied */
    IT_WRITE_FAILED,  /* any other error: certainly not applied */
};

struct it_writer
{
    struct it_cluster *cluster;
    const char *prefix; /* borrowed */
    unsigned max;       /* writes at most */
    pthread_t thread;
    pthread_mutex_t mu;
    bool stop;
    unsigned n;             /* writes attempted */
    unsigned acked;         /* acknowledged */
    unsigned unknown;       /* CAIRN_EUNKNOWN: may or may not have applied */
    unsigned failed;        /* any other error: not applied */
    int64_t longest_gap_ms; /* the longest time between two acknowledgments */
    uint64_t *rev;          /* owned: acknowledged revision per write, 0 if not */
    uint8_t *outcome;       /* owned: enum it_write_outcome per write */
};

void it_writer_start(struct it_writer *w, struct it_cluster *c, const char *prefix, unsigned max);

/* Acknowledged writes so far. */
unsigned it_writer_acked(struct it_writer *w);

/* Waits until `more` more writes than now are acknowledged; fails the test
 * after timeout_ms. */
void it_writer_wait(struct it_writer *w, unsigned more, int timeout_ms);

/* Stops the thread after its current write; logs the counts. */
void it_writer_stop(struct it_writer *w);

/* Fails the test unless node holds every acknowledged write with the
 * revision its acknowledgment carried, each present write with its value
 * and version 1, no write that certainly failed, and no key of the prefix
 * that was never written. Read with a stale range of that node alone. Logs
 * how many writes of unknown outcome are there. */
void it_writer_check(struct it_writer *w, struct it_cluster *c, unsigned node);

/* Fails the test unless the acknowledged revisions strictly increase (one
 * writer, one put at a time: the order acknowledged is the order applied).
 * Returns the last one (0 if none). Call after it_writer_stop(). */
uint64_t it_writer_check_order(struct it_writer *w);

void it_writer_free(struct it_writer *w);

#endif
