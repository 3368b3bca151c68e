/*
 * cairn-sim: deterministic simulation of a Cairn cluster (issue 4, item 7).
 * See jepsen/sim/README.md.
 *
 *   cairn-sim [--seeds N] [--first-seed S] [--seed S] [--nodes 3|5] [--ops N]
 *             [--verbose] [--out DIR] [--mutant NAME] [--stop-at-first]
 *             [--expect-fail-within N]
 *
 * Runs seeds S, S+1, ..., S+N-1 (or the one --seed), prints one line per
 * failing seed with the command that replays it, and a summary. Exit status
 * 0 when every seed passed, 1 when any failed, 2 on a usage error.
 * --expect-fail-within N inverts the verdict for mutant tests: exit 0 when
 * some seed among the first N fails, 1 when none does.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

#define SIM_DEFAULT_OPS 200
#define SIM_DEFAULT_SEEDS 100

static uint64_t current_seed;
static const char *current_mutant = "none";

/* An abort (raft_fixture's Election Safety check, an assertion, a crash)
 * ends the process: say which seed it was, then die as before. */
static void crash_handler(int sig)
{
    char line[256];
    int len = snprintf(line, sizeof(line),
                       "FAIL seed 0x%016" PRIx64 ": %s (signal %d); replay: cairn-sim --seed "
                       "0x%016" PRIx64 "%s%s --verbose --out sim-out\n",
                       current_seed, sig == SIGABRT ? "abort" : "crash", sig, current_seed,
                       strcmp(current_mutant, "none") != 0 ? " --mutant " : "",
                       strcmp(current_mutant, "none") != 0 ? current_mutant : "");
    if (len > 0) {
        ssize_t w =
            write(STDERR_FILENO, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
        (void)w;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cairn-sim [--seeds N] [--first-seed S] [--seed S] [--nodes 3|5] [--ops N]\n"
            "                 [--verbose] [--out DIR] [--mutant none|stale-read|no-guard|no-trim]\n"
            "                 [--stop-at-first] [--expect-fail-within N]\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 0);
    return errno == 0 && end != s && *end == '\0' ? 0 : -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct sim_opts opts;
    uint64_t seeds = SIM_DEFAULT_SEEDS;
    uint64_t first = 1;
    uint64_t expect_within = 0;
    bool one_seed = false;
    bool verbose = false;
    bool stop_at_first = false;
    uint64_t failed = 0;
    uint64_t first_failed = 0;
    uint64_t ran = 0;
    uint64_t steps = 0;
    uint64_t faults = 0;
    uint64_t ops = 0;
    uint64_t notices = 0;
    uint64_t splits = 0;
    double start;
    int i;

    memset(&opts, 0, sizeof(opts));
    opts.ops = SIM_DEFAULT_OPS;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t x;
        if (strcmp(a, "--verbose") == 0) {
            verbose = true;
        } else if (strcmp(a, "--stop-at-first") == 0) {
            stop_at_first = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (v == NULL) {
            usage(stderr);
            return 2;
        } else if (strcmp(a, "--seeds") == 0 && parse_u64(v, &x) == 0 && x > 0) {
            seeds = x;
            i++;
        } else if (strcmp(a, "--first-seed") == 0 && parse_u64(v, &x) == 0) {
            first = x;
            i++;
        } else if (strcmp(a, "--seed") == 0 && parse_u64(v, &x) == 0) {
            first = x;
            seeds = 1;
            one_seed = true;
            i++;
        } else if (strcmp(a, "--nodes") == 0 && parse_u64(v, &x) == 0 && (x == 3 || x == 5)) {
            opts.nodes = (unsigned)x;
            i++;
        } else if (strcmp(a, "--ops") == 0 && parse_u64(v, &x) == 0 && x > 0 && x <= 100000) {
            opts.ops = (unsigned)x;
            i++;
        } else if (strcmp(a, "--out") == 0) {
            opts.out_dir = v;
            i++;
        } else if (strcmp(a, "--mutant") == 0 && sim_mutant_parse(v, &opts.mutant) == 0) {
            i++;
        } else if (strcmp(a, "--expect-fail-within") == 0 && parse_u64(v, &x) == 0 && x > 0) {
            expect_within = x;
            i++;
        } else {
            fprintf(stderr, "cairn-sim: bad argument: %s %s\n", a, v);
            usage(stderr);
            return 2;
        }
    }
    if (opts.out_dir != NULL && !one_seed && seeds > 1) {
        fprintf(stderr, "cairn-sim: --out needs a single --seed\n");
        return 2;
    }
    if (expect_within > 0) {
        seeds = expect_within;
        stop_at_first = true;
    }
    opts.trace = verbose ? stdout : NULL;
    current_mutant = sim_mutant_name(opts.mutant);
    signal(SIGABRT, crash_handler);
    signal(SIGSEGV, crash_handler);
    signal(SIGBUS, crash_handler);
    start = now_s();
    for (uint64_t k = 0; k < seeds; k++) {
        uint64_t seed = first + k;
        struct sim_result r;
        current_seed = seed;
        if (sim_run(seed, &opts, &r) != 0) {
            fprintf(stderr, "cairn-sim: %s\n", r.what);
            return 2;
        }
        ran++;
        steps += r.steps;
        faults += r.faults;
        ops += r.ops;
        notices += r.notices;
        splits += r.splits;
        if (verbose || one_seed) {
            printf("seed 0x%016" PRIx64 ": %s%s%s (%u nodes, %" PRIu64 " ops, %" PRIu64
                   " ok, %" PRIu64 " info, %" PRIu64 " faults, %" PRIu64 " fail-stops, %" PRIu64
                   " leader changes, %" PRIu64 " snapshots, %" PRIu64 " commit notices, %" PRIu64
                   " early commits, %" PRIu64 " steps, %" PRIu64 " simulated ms)\n",
                   seed, sim_verdict_name(r.verdict), r.what[0] != '\0' ? ": " : "", r.what,
                   r.nodes, r.ops, r.ops_ok, r.ops_info, r.faults, r.fail_stops, r.elections,
                   r.snapshots, r.notices, r.splits, r.steps, r.sim_ms);
        }
        if (r.verdict != SIM_PASS) {
            if (failed == 0) {
                first_failed = seed;
            }
            failed++;
            printf("FAIL seed 0x%016" PRIx64 " [%s, %u nodes]: %s; replay: %s --seed 0x%016" PRIx64
                   "%s%s --verbose --out sim-out\n",
                   seed, sim_verdict_name(r.verdict), r.nodes, r.what, argv[0], seed,
                   opts.mutant != SIM_MUTANT_NONE ? " --mutant " : "",
                   opts.mutant != SIM_MUTANT_NONE ? sim_mutant_name(opts.mutant) : "");
            fflush(stdout);
            if (stop_at_first) {
                break;
            }
        }
    }
    {
        double secs = now_s() - start;
        printf("cairn-sim: %" PRIu64 " seeds from 0x%" PRIx64 ", %" PRIu64
               " failed, mutant %s; %" PRIu64 " ops, %" PRIu64 " faults, %" PRIu64
               " commit notices, %" PRIu64 " early commits, %" PRIu64 " steps; %.1f s (%.0f "
               "seeds/min)\n",
               ran, first, failed, sim_mutant_name(opts.mutant), ops, faults, notices, splits,
               steps, secs, secs > 0 ? (double)ran * 60.0 / secs : 0.0);
    }
    if (expect_within > 0) {
        if (failed > 0) {
            printf("cairn-sim: mutant %s caught at seed 0x%" PRIx64 " (%" PRIu64
                   " seeds run), as expected\n",
                   sim_mutant_name(opts.mutant), first_failed, ran);
            return 0;
        }
        printf("cairn-sim: mutant %s NOT caught within %" PRIu64 " seeds\n",
               sim_mutant_name(opts.mutant), expect_within);
        return 1;
    }
    return failed > 0 ? 1 : 0;
}
