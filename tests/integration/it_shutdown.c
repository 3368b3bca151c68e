/*
 * it_shutdown: SIGTERM to the leader of a 3-node cluster is a clean,
 * fast hand-over.
 *
 * While a writer streams puts, the leader gets SIGTERM. The test asserts
 * that:
 *
 *  - another node is leader within 2 s of the signal: the leader handed
 *    over (raft_transfer) instead of leaving the others to wait out an
 *    election timeout;
 *  - the old leader exits with code 0 within a few seconds, and its log says
 *    leadership was handed over to that node;
 *  - writes go on: the writer makes progress after the signal, no write it
 *    sent failed in a way that claims "certainly not applied" and was
 *    applied anyway, and every acknowledged write is on both survivors.
 *
 * Then the old leader is restarted and rejoins.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "writer.h"

#define WRITES_MAX 100000
#define NEW_LEADER_MS 2000
#define EXIT_MS 5000

/* The other running node that reports itself leader, or 0. */
static unsigned other_leader(struct it_cluster *c, unsigned old)
{
    unsigned i;
    for (i = 1; i <= c->n; i++) {
        struct cairn_status *st;
        bool leads;
        if (i == old || !it_node_running(c, i) || it_node_status(c, i, &st) != 0) {
            continue;
        }
        leads = strcmp(st->state, "leader") == 0;
        cairn_status_free(st);
        if (leads) {
            return i;
        }
    }
    return 0;
}

int main(void)
{
    struct it_cluster *c;
    struct it_writer w;
    struct it_node *old;
    unsigned leader;
    unsigned next = 0;
    unsigned at_signal;
    int64_t t_signal;
    int64_t t_next = 0;
    int64_t t_exit = 0;
    int status = 0;
    size_t log_mark;
    char *log;
    char handed[64];
    unsigned i;

    it_init("it_shutdown", IT_TIMEOUT_S);
    c = it_cluster_new(3, NULL);
    leader = it_cluster_start(c);
    old = it_node(c, leader);

    it_writer_start(&w, c, "sd/", WRITES_MAX);
    it_writer_wait(&w, 100, 30000);

    /* SIGTERM the leader; poll the others for a new leader while it exits. */
    log_mark = it_file_size(old->log_path);
    at_signal = it_writer_acked(&w);
    t_signal = it_now_ms();
    it_node_signal(c, leader, SIGTERM);
    it_log("SIGTERM to leader %u after %u acknowledged writes", leader, at_signal);
    while (next == 0 || t_exit == 0) {
        int64_t now = it_now_ms();
        if (t_exit == 0 && it_node_exited(c, leader, &status)) {
            t_exit = now;
        }
        if (next == 0) {
            next = other_leader(c, leader);
            if (next != 0) {
                t_next = it_now_ms();
            }
        }
        IT_ASSERT(next != 0 || now - t_signal < NEW_LEADER_MS,
                  "no other node became leader within %d ms of SIGTERM", NEW_LEADER_MS);
        IT_ASSERT(t_exit != 0 || now - t_signal < EXIT_MS,
                  "the old leader did not exit within %d ms of SIGTERM", EXIT_MS);
        it_sleep_ms(10);
    }
    it_log("node %u leads %lld ms after SIGTERM; old leader exited after %lld ms", next,
           (long long)(t_next - t_signal), (long long)(t_exit - t_signal));
    IT_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the old leader exits with code 0 (status %#x)", status);

    log = it_read_file(old->log_path, log_mark);
    IT_ASSERT(log != NULL, "read the old leader's log");
    snprintf(handed, sizeof(handed), "leadership handed over (leader now %u)", next);
    IT_ASSERT(strstr(log, "handing leadership over") != NULL && strstr(log, handed) != NULL,
              "the old leader's log does not say \"%s\":\n%s", handed, log);
    free(log);

    /* Writes continue under the new leader. */
    it_writer_wait(&w, 100, 30000);
    it_log("writes continue: %u acknowledged", it_writer_acked(&w));
    it_writer_stop(&w);

    /* Every acknowledged write is on both survivors. */
    it_wait_converged(c, 30000);
    for (i = 1; i <= c->n; i++) {
        if (it_node_running(c, i)) {
            it_writer_check(&w, c, i);
        }
    }
    it_log("both survivors hold all %u acknowledged writes", w.acked);

    /* The old leader comes back. */
    it_node_start(c, leader);
    IT_ASSERT(it_wait_leader(c, 0, 30000) != 0, "a leader every node agrees on");
    it_wait_converged(c, 30000);
    it_cluster_free(c);
    it_writer_free(&w);
    it_log("PASS");
    return 0;
}
