/*
 * harness: integration tests against real cairnd processes on 127.0.0.1.
 *
 * A test calls it_init() first. The harness then owns a temporary directory
 * ($TMPDIR or /tmp, "cairn-it-XXXXXX") that holds every node's data
 * directory and log, and it guarantees that no cairnd outlives the test:
 *
 *  - every child is started with PR_SET_PDEATHSIG, so it dies with the test
 *    process however that ends (even SIGKILL from ctest);
 *  - an atexit() handler kills every child still running and undoes every
 *    mount the test registered (it_track_mount), so a failed assertion, which
 *    calls exit(1), cleans up;
 *  - a per-test alarm() fires before ctest's own timeout: its handler kills
 *    the children, unmounts, prints the tail of every node log (using only
 *    async-signal-safe calls) and exits.
 *
 * On success the temporary directory is removed; on failure it is kept (its
 * path is printed) and the tail of every node log goes to stderr.
 *
 * Every node log is scanned for sanitizer reports ("ERROR: AddressSanitizer",
 * "runtime error:", ...) when the cluster is freed, so a test built with
 * -DCAIRN_SANITIZE=ON fails when cairnd reports anything.
 *
 * Ports: picked at random in [20000, start of the kernel's ephemeral range)
 * and checked free by binding them. Ports below the ephemeral range are
 * never handed out by the kernel for outgoing connections, so a node's port
 * cannot be taken by a peer's reconnect attempt while the node is down and
 * must be restarted on the same address. CAIRN_IT_PORTS=LO-HI in the
 * environment picks them in that range instead (inclusive), for machines
 * shared by several test runs. CAIRN_IT_SLOT=K/N, which ctest sets, keeps a
 * test to the K-th of N equal parts of the range, so that tests run in
 * parallel (ctest -j) cannot take each other's ports.
 *
 * Everything here runs on the test's main thread, except it_fail(),
 * it_log() and it_client(c, 0, ...), which worker threads may call too.
 */
#ifndef CAIRN_IT_HARNESS_H
#define CAIRN_IT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cairn.h"

#ifndef CAIRND_PATH
#error "CAIRND_PATH must name the cairnd binary under test"
#endif

#define IT_NODES_MAX 5
#define IT_ARGS_MAX 32
#define IT_ENV_MAX 8
#define IT_PATH_MAX 512

/* Failing a test: print where and why, dump node logs, exit(1). The atexit
 * handler then kills every child. Callable from any thread. */
void it_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

/* IT_ASSERT(cond) or IT_ASSERT(cond, "format", args...). */
#define IT_ASSERT(cond, ...) ((cond) ? (void)0 : it_fail(__FILE__, __LINE__, #cond, "" __VA_ARGS__))

/* Assert that a libcairn call returned 0; the message names the error. */
#define IT_ASSERT_OK(rv, client)                                              \
    do {                                                                      \
        int it__rv = (rv);                                                    \
        if (it__rv != 0) {                                                    \
            it_fail(__FILE__, __LINE__, #rv, "%s: %s", cairn_errname(it__rv), \
                    cairn_errmsg(client));                                    \
        }                                                                     \
    } while (0)

/* snprintf into an array that fails the test rather than truncate. */
#define IT_FORMAT(buf, ...) \
    IT_ASSERT(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf), "%s too long", #buf)

/* Start the test: temporary directory, cleanup handlers, and a watchdog that
 * ends the test after timeout_s seconds. */
void it_init(const char *test_name, unsigned timeout_s);

/* The test's temporary directory. */
const char *it_dir(void);

/* A timestamped progress line on stderr. */
void it_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int64_t it_now_ms(void);
void it_sleep_ms(int64_t ms);

/* A free TCP port on 127.0.0.1, >= 20000 and below the ephemeral range. */
int it_pick_port(void);

/* Undo this mount (umount2 MNT_DETACH) at exit, even on failure. */
void it_track_mount(const char *path);
void it_untrack_mount(const char *path);

struct it_node
{
    unsigned id;
    pid_t pid; /* 0 when not running */
    int raft_port;
    int client_port;
    char raft_addr[32];
    char client_addr[32];
    char data_dir[IT_PATH_MAX];
    char log_path[IT_PATH_MAX];
    unsigned starts;               /* how many times it was started */
    const char *env[IT_ENV_MAX];   /* borrowed: NAME=VALUE for every later start */
    const char *args[IT_ARGS_MAX]; /* borrowed: extra flags for this node only */
};

struct it_cluster
{
    unsigned n;
    struct it_node nodes[IT_NODES_MAX]; /* node id i is nodes[i - 1] */
    char initial_cluster[1024];
    char endpoints[512];           /* every node's client address */
    const char *args[IT_ARGS_MAX]; /* borrowed: extra flags for every node */
    cairn_client *admin;           /* owned: status polls, short timeouts */
};

/* Extra cairnd flags (NULL-terminated, for it_cluster_new()) that make nodes
 * snapshot every 64 entries (whatever the state's size: --snapshot-log-percent 0), keep 16 entries
 * behind a snapshot and cut 64 KiB log segments: a test's thousand writes then cross many snapshots
 * and compact the log, so a node that fell behind must catch up (or a
 * watch must restore) from a snapshot rather than from the log. */
extern const char *const it_small_snapshot_flags[];

/* A cluster of n nodes (ids 1..n) with ports and directories chosen but no
 * process started. args (NULL-terminated, may be NULL) are extra cairnd
 * flags given to every node; the array must outlive the cluster. Nodes
 * serve no HTTP unless args (or a node's own args) give --http-addr. */
struct it_cluster *it_cluster_new(unsigned n, const char *const *args);

/* Start every node, then wait until they agree on a leader; returns its id. */
unsigned it_cluster_start(struct it_cluster *c);

/* Stop every running node with SIGTERM and assert each exits 0; then scan
 * every log for sanitizer reports and free the cluster. */
void it_cluster_free(struct it_cluster *c);

struct it_node *it_node(struct it_cluster *c, unsigned id);

/* Start (or restart after a stop or kill) node id. Its output goes to its log
 * file, appended to across restarts after a "harness:" marker line. */
void it_node_start(struct it_cluster *c, unsigned id);

/* SIGTERM, then wait up to timeout_ms for the process to exit. Returns its
 * wait status; fails the test if it does not exit in time. */
int it_node_stop(struct it_cluster *c, unsigned id, int timeout_ms);

/* Send a signal without waiting (SIGTERM to watch a shutdown happen). */
void it_node_signal(struct it_cluster *c, unsigned id, int sig);

/* Reap node id if it has exited: returns true and sets *status (its wait
 * status); false while it runs. */
bool it_node_exited(struct it_cluster *c, unsigned id, int *status);

/* SIGKILL and reap. */
void it_node_kill(struct it_cluster *c, unsigned id);

bool it_node_running(const struct it_cluster *c, unsigned id);

/* Status of node id (0: any running node), or a negative CAIRN_E* code. */
int it_node_status(struct it_cluster *c, unsigned id, struct cairn_status **out);

/* Id of the leader that every running node agrees on, 0 if there is none. */
unsigned it_leader(struct it_cluster *c);

/* Wait until every running node agrees on a leader (other than `not`, if
 * not 0) and return its id; fails the test after timeout_ms. */
unsigned it_wait_leader(struct it_cluster *c, unsigned not_id, int timeout_ms);

/* Wait until every running node has applied the same index and reached the
 * same revision; returns that revision. Fails after timeout_ms, and at once
 * when nodes at the same index report different state hashes. */
uint64_t it_wait_converged(struct it_cluster *c, int timeout_ms);

/* A client for node id's endpoint alone (0: every node's endpoint), with the
 * given per-call timeout (0: the library default). Free with
 * cairn_client_free(). */
cairn_client *it_client(struct it_cluster *c, unsigned id, int timeout_ms);

/* Run cairnd once with argv[1..] = args (NULL-terminated), stdout and stderr
 * to out_path, and wait up to timeout_ms for it to exit (killing it and
 * failing the test otherwise). Returns the wait status. */
int it_run_cairnd(const char *const *args, const char *out_path, int timeout_ms);

/* File helpers. it_read_file returns a NUL-terminated malloc'd copy of the
 * file from byte offset `from` (NULL if unreadable). */
char *it_read_file(const char *path, size_t from);
size_t it_file_size(const char *path);
bool it_file_contains(const char *path, const char *needle);

/* Fail the test if the file holds a sanitizer report. */
void it_check_sanitizer_reports(const char *path);

#endif /* CAIRN_IT_HARNESS_H */
