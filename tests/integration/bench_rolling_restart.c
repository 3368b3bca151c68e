/*
 * bench_rolling_restart: write unavailability during a rolling restart of a
 * 3-node cluster under a steady write load (issue 7's third figure;
 * docs/performance.md, "Rolling restart").
 *
 *   bench_rolling_restart [--rate 1000] [--writers 16] [--rounds 3] [--settle-ms 2000]
 *
 * Real cairnd processes on 127.0.0.1 (the integration harness starts them).
 * `--writers` threads, each with its own libcairn client that knows every
 * node, write at `--rate` writes/s in all, open loop: write i is due at
 * t0 + i / rate whatever happened to the earlier ones, and a writer that
 * falls behind sends its overdue writes at once. Each round restarts every
 * node once, followers first and the leader last, as an operator would:
 * SIGTERM, wait for exit, start again, wait until the node's revision
 * reaches the last acknowledged one, then `--settle-ms` of plain load.
 *
 * For each restart it prints: the longest time no write was acknowledged
 * (the largest gap between consecutive acknowledgements, from SIGTERM until
 * the node is back plus the settle time), the largest latency of a write due
 * in that window (acknowledgement - due time), and whether leadership moved.
 * The target is an unavailability under two election timeouts
 * (--election-timeout-ms, 1,000 ms by default) per leader change. Every
 * write's outcome is counted; libcairn retries what certainly did not happen,
 * so any error is printed.
 *
 * Exit status: 0 when every round ran (whatever the figures), 1 when it
 * could not run, 2 on bad usage.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define ELECTION_TIMEOUT_MS 1000 /* cairnd's default, which the cluster runs with */

struct write_rec
{
    int64_t due_ms;
    int64_t ack_ms; /* 0: not acknowledged */
    int rc;
};

struct bench
{
    struct it_cluster *cluster;
    double rate;
    unsigned writers;
    unsigned n; /* writes planned */
    int64_t t0;
    struct write_rec *w; /* owned: n of them */
    pthread_mutex_t mu;
    uint64_t last_rev;
    bool stop;
};

struct writer_arg
{
    struct bench *b;
    unsigned k;
};

static void *writer_main(void *arg)
{
    struct writer_arg *wa = arg;
    struct bench *b = wa->b;
    cairn_client *c = it_client(b->cluster, 0, 10000);
    unsigned i;
    for (i = wa->k; i < b->n; i += b->writers) {
        struct write_rec *rec = &b->w[i];
        struct cairn_result *r = NULL;
        char key[32];
        char value[64];
        int64_t now = it_now_ms();
        bool stop;
        pthread_mutex_lock(&b->mu);
        stop = b->stop;
        pthread_mutex_unlock(&b->mu);
        if (stop) {
            break;
        }
        rec->due_ms = b->t0 + (int64_t)((double)i * 1000.0 / b->rate);
        if (rec->due_ms > now) {
            it_sleep_ms(rec->due_ms - now);
        }
        snprintf(key, sizeof(key), "roll/%04u", i % 1000);
        snprintf(value, sizeof(value), "write %u", i);
        rec->rc = cairn_put(c, key, strlen(key), value, strlen(value), NULL, &r);
        if (rec->rc == 0) {
            rec->ack_ms = it_now_ms();
            pthread_mutex_lock(&b->mu);
            if (r->revision > b->last_rev) {
                b->last_rev = r->revision;
            }
            pthread_mutex_unlock(&b->mu);
        }
        cairn_result_free(r);
    }
    cairn_client_free(c);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

struct restart
{
    unsigned id;
    bool was_leader;
    unsigned leader_after;
    int64_t t_term;
    int64_t t_back; /* caught up again */
    int64_t t_end;  /* end of its settle time */
};

/* Longest stretch of [from, to] without an acknowledgement, and the largest
 * latency of a write due in it. */
static void window_figures(const struct bench *b, int64_t from, int64_t to, int64_t *gap,
                           int64_t *latency)
{
    int64_t *acks = malloc(b->n * sizeof(*acks));
    unsigned n = 0;
    unsigned i;
    int64_t prev = from;
    IT_ASSERT(acks != NULL, "out of memory");
    *gap = 0;
    *latency = 0;
    for (i = 0; i < b->n; i++) {
        const struct write_rec *rec = &b->w[i];
        if (rec->ack_ms >= from && rec->ack_ms <= to) {
            acks[n++] = rec->ack_ms;
        }
        if (rec->due_ms >= from && rec->due_ms <= to && rec->ack_ms > 0 &&
            rec->ack_ms - rec->due_ms > *latency) {
            *latency = rec->ack_ms - rec->due_ms;
        }
    }
    qsort(acks, n, sizeof(*acks), cmp_i64);
    for (i = 0; i < n; i++) {
        if (acks[i] - prev > *gap) {
            *gap = acks[i] - prev;
        }
        prev = acks[i];
    }
    if (to - prev > *gap) {
        *gap = to - prev;
    }
    free(acks);
}

static void wait_caught_up(struct bench *b, unsigned id)
{
    int64_t deadline = it_now_ms() + 60000;
    for (;;) {
        struct cairn_status *st = NULL;
        uint64_t want;
        bool done;
        pthread_mutex_lock(&b->mu);
        want = b->last_rev;
        pthread_mutex_unlock(&b->mu);
        done =
            it_node_status(b->cluster, id, &st) == 0 && st->revision >= want && st->leader_id != 0;
        cairn_status_free(st);
        if (done) {
            return;
        }
        IT_ASSERT(it_now_ms() < deadline, "node %u did not catch up", id);
        it_sleep_ms(10);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_rolling_restart [--rate R] [--writers N] [--rounds N] "
                    "[--settle-ms MS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"rate", required_argument, NULL, 'r'},   {"writers", required_argument, NULL, 'w'},
        {"rounds", required_argument, NULL, 'n'}, {"settle-ms", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    struct bench b;
    struct writer_arg *wa;
    pthread_t *threads;
    struct restart *rs;
    unsigned rounds = 3;
    int64_t settle_ms = 2000;
    unsigned n_rs = 0;
    unsigned leader;
    unsigned round;
    unsigned i;
    unsigned acked = 0;
    unsigned errors[32] = {0};
    int64_t worst_leader_gap = 0;
    int opt;

    memset(&b, 0, sizeof(b));
    b.rate = 1000;
    b.writers = 16;
    while ((opt = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (opt) {
            case 'r':
                b.rate = atof(optarg);
                break;
            case 'w':
                b.writers = (unsigned)atoi(optarg);
                break;
            case 'n':
                rounds = (unsigned)atoi(optarg);
                break;
            case 's':
                settle_ms = atoll(optarg);
                break;
            default:
                usage();
        }
    }
    if (b.rate <= 0 || b.writers == 0 || rounds == 0 || settle_ms < 0) {
        usage();
    }

    it_init("bench_rolling_restart", IT_TIMEOUT_S);
    b.cluster = it_cluster_new(3, NULL);
    leader = it_cluster_start(b.cluster);
    /* Enough writes for the whole run with room to spare; writers stop when told. */
    b.n = (unsigned)(b.rate * (double)(rounds * 3 * (settle_ms + 20000) + 4000) / 1000.0);
    b.w = calloc(b.n, sizeof(*b.w));
    wa = calloc(b.writers, sizeof(*wa));
    threads = calloc(b.writers, sizeof(*threads));
    rs = calloc(rounds * 3, sizeof(*rs));
    IT_ASSERT(b.w != NULL && wa != NULL && threads != NULL && rs != NULL, "out of memory");
    pthread_mutex_init(&b.mu, NULL);
    b.t0 = it_now_ms() + 100;
    for (i = 0; i < b.writers; i++) {
        wa[i].b = &b;
        wa[i].k = i;
        IT_ASSERT(pthread_create(&threads[i], NULL, writer_main, &wa[i]) == 0, "pthread_create");
    }
    it_sleep_ms(2000);

    for (round = 0; round < rounds; round++) {
        unsigned order[3];
        unsigned k = 0;
        unsigned id;
        for (id = 1; id <= 3; id++) {
            if (id != leader) {
                order[k++] = id;
            }
        }
        order[2] = leader;
        for (k = 0; k < 3; k++) {
            struct restart *r = &rs[n_rs++];
            int status;
            r->id = order[k];
            r->was_leader = order[k] == leader;
            r->t_term = it_now_ms();
            status = it_node_stop(b.cluster, r->id, 15000);
            IT_ASSERT(status == 0, "node %u exited with status %d", r->id, status);
            it_node_start(b.cluster, r->id);
            leader = it_wait_leader(b.cluster, 0, 30000);
            wait_caught_up(&b, r->id);
            r->t_back = it_now_ms();
            r->leader_after = leader;
            it_sleep_ms(settle_ms);
            r->t_end = it_now_ms();
        }
    }
    pthread_mutex_lock(&b.mu);
    b.stop = true;
    pthread_mutex_unlock(&b.mu);
    for (i = 0; i < b.writers; i++) {
        pthread_join(threads[i], NULL);
    }

    printf("rolling restart of 3 nodes, %u round(s), %.0f writes/s from %u libcairn clients "
           "(open loop), settle %lld ms\n",
           rounds, b.rate, b.writers, (long long)settle_ms);
    printf("%-6s %-5s %-8s %-13s %-12s %-16s %-14s\n", "round", "node", "role", "leader after",
           "back (ms)", "longest gap (ms)", "max lat. (ms)");
    for (i = 0; i < n_rs; i++) {
        const struct restart *r = &rs[i];
        int64_t gap;
        int64_t lat;
        window_figures(&b, r->t_term, r->t_end, &gap, &lat);
        printf("%-6u %-5u %-8s %-13u %-12lld %-16lld %-14lld\n", i / 3 + 1, r->id,
               r->was_leader ? "leader" : "follower", r->leader_after,
               (long long)(r->t_back - r->t_term), (long long)gap, (long long)lat);
        if (r->was_leader && gap > worst_leader_gap) {
            worst_leader_gap = gap;
        }
    }
    for (i = 0; i < b.n; i++) {
        if (b.w[i].due_ms == 0) {
            continue;
        }
        if (b.w[i].rc == 0) {
            acked++;
        } else {
            errors[-b.w[i].rc < 32 ? -b.w[i].rc : 0]++;
        }
    }
    printf("writes acknowledged: %u; failed:", acked);
    for (i = 0; i < 32; i++) {
        if (errors[i] > 0) {
            printf(" %s %u", cairn_errname(-(int)i), errors[i]);
        }
    }
    printf("%s\n", acked > 0 ? "" : " (nothing acknowledged)");
    printf("longest write unavailability at a leader change: %lld ms (target: < %d ms, two "
           "election timeouts)\n",
           (long long)worst_leader_gap, 2 * ELECTION_TIMEOUT_MS);
    fflush(stdout);
    it_cluster_free(b.cluster);
    free(b.w);
    free(wa);
    free(threads);
    free(rs);
    return acked > 0 ? 0 : 1;
}
