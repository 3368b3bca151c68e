/*
 * sim: one deterministic simulation run of a Cairn cluster (issue 4, item 7).
 *
 * A run takes a 64-bit seed and builds, on canonical/raft's raft_fixture (one
 * process, one simulated clock, in-memory network and disk), 3 or 5 servers
 * each running Cairn's real state machine (raft/fsm.c over src/kv.c) behind
 * raft/leader_guard.c. Simulated clients send register operations (read,
 * write, cas) to whoever they believe leads, while a seeded nemesis
 * partitions, drops messages one way, pauses nodes, fails disk writes and
 * disturbs election timing. At the end everything is healed and the run must
 * show liveness; the history (Jepsen EDN) goes through the register checker
 * of jepsen/local/checker, and every replica must agree.
 *
 * The seed decides everything: the same seed and options give the same
 * history, byte for byte. jepsen/sim/README.md describes what is simulated
 * and what is not.
 */
#ifndef CAIRN_SIM_H
#define CAIRN_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* A known bug injected into the simulated system, to prove that the
 * simulation and the checker can see it. */
enum sim_mutant {
    SIM_MUTANT_NONE = 0,
    SIM_MUTANT_STALE_READ, /* a leader answers linearizable reads without a barrier */
    SIM_MUTANT_NO_GUARD,   /* raft 0.15 without raft/leader_guard.c */
    SIM_MUTANT_NO_TRIM,    /* the guard without its trim below the snapshot (bug 5) */
};

struct sim_opts
{
    unsigned nodes; /* 3 or 5; 0 lets the seed choose */
    unsigned ops;   /* client operations per run (before the final phase) */
    enum sim_mutant mutant;
    FILE *trace;         /* a trace of faults and operations, or NULL */
    const char *out_dir; /* write history.edn and check.txt here, or NULL */
};

enum sim_verdict {
    SIM_PASS = 0,
    SIM_FAIL_LINEARIZABLE, /* the register checker rejected the history */
    SIM_FAIL_LIVENESS,     /* after the heal, something did not complete in time */
    SIM_FAIL_CONVERGENCE,  /* replicas differ at the end */
    SIM_FAIL_SAFETY,       /* two replicas applied different entries at one index */
    SIM_FAIL_INTERNAL,     /* the harness itself failed (memory, history, step budget) */
};

/* Limits named once (STYLE.md): everything a run holds is bounded. */
#define SIM_NODES_MAX 5
#define SIM_CLIENTS_MAX 6
#define SIM_KEY_SLOTS_MAX 4
#define SIM_OPS_PER_KEY_MAX 100     /* the checker's search stays fast */
#define SIM_STEPS_MAX 3000000       /* fixture steps in one run */
#define SIM_LIVENESS_BOUND_MS 20000 /* after the heal: pending requests complete */

struct sim_result
{
    enum sim_verdict verdict;
    char what[1024]; /* one line: why it failed */
    unsigned nodes;
    uint64_t steps;
    uint64_t sim_ms;     /* simulated time at the end */
    uint64_t ops;        /* client operations completed */
    uint64_t ops_ok;     /* ... of which :ok */
    uint64_t ops_info;   /* ... of which :info */
    uint64_t faults;     /* nemesis events */
    uint64_t elections;  /* leadership changes seen */
    uint64_t snapshots;  /* snapshots taken plus installed, all nodes */
    uint64_t fail_stops; /* nodes stopped after a failed write */
    uint64_t notices;    /* commit notices sent, all nodes (raft/leader_guard.h) */
    uint64_t splits;     /* commits taken ahead of their request, all nodes */
};

/* Run one seed. Returns 0 with *out filled (its verdict says pass or fail),
 * or -1 when the options are invalid (out->what says why). */
int sim_run(uint64_t seed, const struct sim_opts *opts, struct sim_result *out);

const char *sim_verdict_name(enum sim_verdict v);
const char *sim_mutant_name(enum sim_mutant m);
/* Parse a mutant name ("none", "stale-read", "no-guard", "no-trim"); -1 if
 * unknown. */
int sim_mutant_parse(const char *name, enum sim_mutant *out);

#endif /* CAIRN_SIM_H */
