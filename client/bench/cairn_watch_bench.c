/*
 * cairn-watch-bench: watch fan-out. W watchers on one node (a follower by
 * default), spread over C connections in P client processes, watch K keys
 * (watcher i watches key i % K); a writer in the parent process puts U
 * updates at R per second to the leader, on the keys round-robin (update u
 * goes to key u % K), open loop: update u is due at start + u / R whatever
 * happened to the earlier ones. Every update therefore reaches W / K
 * watchers (the fan-out factor), U * W / K deliveries in all.
 *
 * What is measured, per (update, watcher) delivery, on CLOCK_MONOTONIC
 * (one clock for every process of the machine):
 *   - from commit: receipt - the time the writer got the put's
 *     acknowledgement (the leader answers once the entry is committed and
 *     applied). A watcher on a follower may in principle see an update a
 *     little before the writer reads the leader's answer, so this can be
 *     negative; the minimum is reported.
 *   - from send: receipt - the time the put was due (open loop), so queueing
 *     in the writer counts.
 * Receipt is when the client process read the bytes that completed the
 * message, before decoding it.
 *
 * Every delivery is checked: each watcher must receive exactly the updates of
 * its key, each once, in increasing revision order, each with the revision
 * the writer's put reported. Anything else (a missing update when the drain
 * timeout expires, a duplicate, a reordering, a snapshot instead of events, a
 * canceled watch) makes the run fail with exit status 1.
 *
 * Memory: VmRSS of the serving node (found by the process listening on its
 * port, or --server-pid) before the watches, once they all exist, and after
 * the run; the per-watcher figure is (with watches - before) / W.
 *
 * Cairn is driven with its wire protocol (PROTO_WATCH, many watches per
 * connection); etcd v3 through its HTTP/JSON gateway: one POST /v3/watch per
 * connection whose body holds every create_request of that connection (the
 * gateway of etcd 3.4 serves a request body that is still streaming only
 * after it ended, so all watches of a connection are created at once).
 *
 *   cairn-watch-bench --endpoints 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 \
 *                     --watchers 10000 --keys 100 --updates 1000 --rate 1000
 *
 * See --help, and docs/performance.md ("Watch fan-out").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "buf.h"
#include "cairn.h"
#include "proto.h"

#define NS_PER_MS BENCH_NS_PER_MS
#define NS_PER_S BENCH_NS_PER_S
#define KEY_PREFIX "wbench/"
/* Cairn sends an idle watch a progress message every progress interval; the
 * benchmark asks for one a day, so that none interferes (etcd sends none
 * unless asked). */
#define PROGRESS_OFF_MS (24ull * 3600 * 1000)
/* The value of update u starts with u in this many decimal digits. */
#define SEQ_DIGITS 10
#define VALUE_SIZE_MIN (SEQ_DIGITS + 2)
#define ERRORS_SHOWN 5

struct options
{
    enum bench_target target;
    const char *endpoints;
    const char *watch_endpoint; /* NULL: a follower */
    uint64_t watchers;
    uint64_t conns;
    uint64_t procs;
    uint64_t keys;
    uint64_t updates;
    double rate;
    size_t value_size;
    uint64_t writer_conns;
    uint64_t retain; /* Cairn: versions kept per key under KEY_PREFIX; 0: leave */
    bool retain_set;
    double settle_s;
    double setup_timeout_s;
    double drain_timeout_s;
    long server_pid;
    bool json;
    const char *per_update; /* CSV file, or NULL */
};

/* Shared between the parent and the client processes (MAP_SHARED). */
enum phase {
    PHASE_SETUP = 0,   /* children create their watches */
    PHASE_WRITING = 1, /* the writer runs */
    PHASE_WRITTEN = 2, /* every put was acknowledged: ack times are final */
    PHASE_ABORT = 3,   /* give up */
};

enum child_state {
    CHILD_SETUP = 0,
    CHILD_READY = 1, /* every watch of the process exists */
    CHILD_DONE = 2,  /* report below is final */
};

struct child_report
{
    _Atomic uint64_t created;
    _Atomic int state;
    uint64_t expected;
    uint64_t received;
    uint64_t duplicates;
    uint64_t order_errors; /* a revision not above the watcher's previous one */
    uint64_t foreign;      /* an update that is not of the watcher's key */
    uint64_t rev_mismatch; /* an event's revision differs from the put's */
    uint64_t snapshots;    /* a snapshot instead of events (history incomplete) */
    uint64_t canceled;     /* watches the server ended */
    uint64_t proto_errors; /* bad frames, refused watches, broken connections */
    int64_t last_receipt;  /* CLOCK_MONOTONIC ns */
    char error[256];
};

struct shared
{
    _Atomic int phase;
    struct child_report child[]; /* procs */
};

struct bench
{
    struct options o;
    struct bench_endpoint *eps;
    size_t n_eps;
    struct bench_endpoint leader;
    struct bench_endpoint watch;
    bool watch_is_leader;
    size_t key_width;
    struct shared *sh;
    size_t sh_len;
    /* Per update, shared: when it was due, when its put was acknowledged,
     * the revision the put reported. */
    int64_t *due_ns;
    int64_t *ack_ns;
    uint64_t *rev;
    size_t upd_len;
    /* Per delivery, shared: receipt time (0: not received). Watcher i's
     * deliveries start at slot_base[i]; its j-th is update i % K + j * K. */
    int64_t *receipt;
    size_t receipt_len;
    uint64_t *slot_base; /* W + 1 entries, private (copied by fork) */
    uint64_t expected;
};

/* Helpers */

/* Zeroed memory that forked children share with the parent. */
static void *shared_alloc(size_t len)
{
    void *p =
        mmap(NULL, len > 0 ? len : 1, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        bench_die("mmap of %zu bytes: %s", len, strerror(errno));
    }
    return p;
}

/* The update number at the start of a value; false when there is none. */
static bool parse_seq(const char *v, size_t len, uint64_t *u)
{
    uint64_t x = 0;
    size_t i;
    if (len < SEQ_DIGITS) {
        return false;
    }
    for (i = 0; i < SEQ_DIGITS; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return false;
        }
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *u = x;
    return true;
}

static void format_key(const struct bench *b, uint64_t k, char *out, size_t cap)
{
    snprintf(out, cap, KEY_PREFIX "%0*" PRIu64, (int)b->key_width, k);
}

/* Where cairn_call_answer_cb puts the response. */
struct cairn_call_ctx
{
    const struct bench_endpoint *ep; /* borrowed */
    struct proto_response *resp;     /* borrowed */
};

static int cairn_call_answer_cb(const char *data, size_t len, void *arg, char *err, size_t err_len)
{
    struct cairn_call_ctx *ctx = arg;
    size_t payload_len = 0;
    int rv = proto_frame_peek(data, len, PROTO_FRAME_SIZE_MAX, &payload_len);
    if (rv < 0) {
        snprintf(err, err_len, "%s: frame too large", ctx->ep->name);
        return -1;
    }
    if (rv == 0) {
        return 0;
    }
    if (proto_decode_response(data + PROTO_FRAME_HEADER_SIZE, payload_len, ctx->resp) != 0) {
        snprintf(err, err_len, "%s: a response does not decode", ctx->ep->name);
        return -1;
    }
    return 1;
}

/* Cairn: one blocking request and its answer, on a connection of its own. On
 * success the caller frees resp with proto_response_free(). */
static int cairn_call(const struct bench_endpoint *ep, const struct proto_request *req,
                      struct proto_response *resp, char *err, size_t err_len)
{
    struct cairn_call_ctx ctx = {ep, resp};
    struct buf out;
    int rv;
    buf_init(&out);
    if (proto_encode_request(&out, req) != 0) {
        bench_die("out of memory");
    }
    rv = bench_exchange(ep, out.data, out.len, cairn_call_answer_cb, &ctx, err, err_len);
    buf_free(&out);
    return rv;
}

static void request_init(struct proto_request *req, uint8_t type)
{
    memset(req, 0, sizeof(*req));
    req->type = type;
    req->id = 1;
    req->op.key.ptr = "";
    req->op.value.ptr = "";
    req->op.after.ptr = "";
}

/* Options */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: cairn-watch-bench [options]\n"
            "\n"
            "Watch fan-out: W watchers on one node, K watched keys (watcher i watches key\n"
            "i %% K, so every update reaches W/K watchers), U updates put at R per second\n"
            "(open loop) to the leader on the keys round-robin. Reports delivery latency\n"
            "from each put's commit acknowledgement (and from its due send time) to its\n"
            "receipt by each watcher, and the serving node's memory per watcher. Fails\n"
            "(exit 1) unless every watcher received exactly its key's updates, once each,\n"
            "in revision order.\n"
            "\n"
            "  --target cairn|etcd     protocol [cairn]; etcd: v3 HTTP/JSON gateway\n"
            "  --endpoints H:P,...     the cluster [default: %s]\n"
            "  --endpoint H:P          the node serving the watches [a follower]\n"
            "  --watchers W            watchers [10000]\n"
            "  --conns C               client connections they are spread over [100]\n"
            "  --procs P               client processes the connections are spread over [4]\n"
            "  --keys K                watched keys " KEY_PREFIX "N [100]\n"
            "  --updates U             puts [1000]\n"
            "  --rate R                puts per second, open loop [1000]\n"
            "  --value-size B          bytes per value, at least %d [64]\n"
            "  --writer-conns N        writer connections to the leader, one put in\n"
            "                          flight each [32]\n"
            "  --retain N              Cairn: versions kept per key under " KEY_PREFIX
            ", so that a\n"
            "                          watcher that falls behind catches up from history\n"
            "                          (0: leave the node's policy) [max(U, 10)]\n"
            "  --settle S              wait after the watches exist, before reading RSS [1]\n"
            "  --setup-timeout S       time allowed to create every watch [120]\n"
            "  --drain-timeout S       time allowed, after the last put was acknowledged,\n"
            "                          for every delivery to arrive [30]\n"
            "  --server-pid PID        the serving node's pid [found by its port]\n"
            "  --json                  print the results as one JSON object\n"
            "  --per-update FILE       write one CSV line per update: due, ack, first and\n"
            "                          last receipt (ms from the first due time)\n"
            "  --help                  this text\n",
            CAIRN_DEFAULT_ENDPOINTS, VALUE_SIZE_MIN);
}

static void parse_options(struct options *o, int argc, char **argv)
{
    enum {
        O_TARGET = 256,
        O_ENDPOINTS,
        O_ENDPOINT,
        O_WATCHERS,
        O_CONNS,
        O_PROCS,
        O_KEYS,
        O_UPDATES,
        O_RATE,
        O_VALUE_SIZE,
        O_WRITER_CONNS,
        O_RETAIN,
        O_SETTLE,
        O_SETUP_TIMEOUT,
        O_DRAIN_TIMEOUT,
        O_SERVER_PID,
        O_JSON,
        O_PER_UPDATE,
        O_HELP,
    };
    static const struct option longs[] = {
        {"target", required_argument, NULL, O_TARGET},
        {"endpoints", required_argument, NULL, O_ENDPOINTS},
        {"endpoint", required_argument, NULL, O_ENDPOINT},
        {"watchers", required_argument, NULL, O_WATCHERS},
        {"conns", required_argument, NULL, O_CONNS},
        {"procs", required_argument, NULL, O_PROCS},
        {"keys", required_argument, NULL, O_KEYS},
        {"updates", required_argument, NULL, O_UPDATES},
        {"rate", required_argument, NULL, O_RATE},
        {"value-size", required_argument, NULL, O_VALUE_SIZE},
        {"writer-conns", required_argument, NULL, O_WRITER_CONNS},
        {"retain", required_argument, NULL, O_RETAIN},
        {"settle", required_argument, NULL, O_SETTLE},
        {"setup-timeout", required_argument, NULL, O_SETUP_TIMEOUT},
        {"drain-timeout", required_argument, NULL, O_DRAIN_TIMEOUT},
        {"server-pid", required_argument, NULL, O_SERVER_PID},
        {"json", no_argument, NULL, O_JSON},
        {"per-update", required_argument, NULL, O_PER_UPDATE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int c;
    memset(o, 0, sizeof(*o));
    o->target = BENCH_TARGET_CAIRN;
    o->endpoints = getenv("CAIRN_ENDPOINTS");
    if (o->endpoints == NULL || o->endpoints[0] == '\0') {
        o->endpoints = CAIRN_DEFAULT_ENDPOINTS;
    }
    o->watchers = 10000;
    o->conns = 100;
    o->procs = 4;
    o->keys = 100;
    o->updates = 1000;
    o->rate = 1000;
    o->value_size = 64;
    o->writer_conns = 32;
    o->settle_s = 1;
    o->setup_timeout_s = 120;
    o->drain_timeout_s = 30;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case O_TARGET:
                o->target = bench_parse_target("--target", optarg);
                break;
            case O_ENDPOINTS:
                o->endpoints = optarg;
                break;
            case O_ENDPOINT:
                o->watch_endpoint = optarg;
                break;
            case O_WATCHERS:
                o->watchers = bench_parse_u64("--watchers", optarg, 1, 10000000);
                break;
            case O_CONNS:
                o->conns = bench_parse_u64("--conns", optarg, 1, 100000);
                break;
            case O_PROCS:
                o->procs = bench_parse_u64("--procs", optarg, 1, 256);
                break;
            case O_KEYS:
                o->keys = bench_parse_u64("--keys", optarg, 1, 100000000);
                break;
            case O_UPDATES:
                o->updates = bench_parse_u64("--updates", optarg, 1, 100000000);
                break;
            case O_RATE:
                o->rate = bench_parse_double("--rate", optarg);
                if (o->rate <= 0) {
                    bench_bad_usage("--rate: must be positive");
                }
                break;
            case O_VALUE_SIZE:
                o->value_size =
                    (size_t)bench_parse_u64("--value-size", optarg, VALUE_SIZE_MIN, 1024 * 1024);
                break;
            case O_WRITER_CONNS:
                o->writer_conns = bench_parse_u64("--writer-conns", optarg, 1, 1024);
                break;
            case O_RETAIN:
                o->retain = bench_parse_u64("--retain", optarg, 0, UINT32_MAX);
                o->retain_set = true;
                break;
            case O_SETTLE:
                o->settle_s = bench_parse_double("--settle", optarg);
                break;
            case O_SETUP_TIMEOUT:
                o->setup_timeout_s = bench_parse_double("--setup-timeout", optarg);
                break;
            case O_DRAIN_TIMEOUT:
                o->drain_timeout_s = bench_parse_double("--drain-timeout", optarg);
                break;
            case O_SERVER_PID:
                o->server_pid = (long)bench_parse_u64("--server-pid", optarg, 1, INT32_MAX);
                break;
            case O_PER_UPDATE:
                o->per_update = optarg;
                break;
            case O_JSON:
                o->json = true;
                break;
            case O_HELP:
                usage(stdout);
                exit(0);
            default:
                fprintf(stderr, "cairn-watch-bench: unknown option or missing argument: %s\n",
                        argv[optind - 1]);
                usage(stderr);
                exit(2);
        }
    }
    if (optind < argc) {
        bench_bad_usage("unexpected argument \"%s\"", argv[optind]);
    }
    if (o->conns > o->watchers) {
        bench_bad_usage("--conns (%" PRIu64 ") exceeds --watchers (%" PRIu64 ")", o->conns,
                        o->watchers);
    }
    if (o->procs > o->conns) {
        bench_bad_usage("--procs (%" PRIu64 ") exceeds --conns (%" PRIu64 ")", o->procs, o->conns);
    }
    if (!o->retain_set) {
        o->retain = o->updates > 10 ? o->updates : 10;
    }
}

/* The serving node's process: memory and CPU */

/* The pid of the process listening on TCP port, or 0. */
static long find_listener_pid(uint16_t port)
{
    static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    unsigned long inode = 0;
    size_t t;
    DIR *proc;
    struct dirent *de;
    long found = 0;
    char want[64];
    for (t = 0; t < 2 && inode == 0; t++) {
        FILE *f = fopen(tables[t], "r");
        char line[512];
        if (f == NULL) {
            continue;
        }
        while (fgets(line, sizeof(line), f) != NULL) {
            char local[128];
            unsigned st;
            unsigned long ino;
            const char *colon;
            /* sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode */
            if (sscanf(line, " %*s %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &st, &ino) != 3) {
                continue;
            }
            colon = strrchr(local, ':');
            if (st == 0x0A && colon != NULL && strtoul(colon + 1, NULL, 16) == port) {
                inode = ino;
                break;
            }
        }
        fclose(f);
    }
    if (inode == 0) {
        return 0;
    }
    snprintf(want, sizeof(want), "socket:[%lu]", inode);
    proc = opendir("/proc");
    if (proc == NULL) {
        return 0;
    }
    while (found == 0 && (de = readdir(proc)) != NULL) {
        char path[300];
        DIR *fds;
        struct dirent *fe;
        if (de->d_name[0] < '0' || de->d_name[0] > '9') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%s/fd", de->d_name);
        fds = opendir(path);
        if (fds == NULL) {
            continue;
        }
        while ((fe = readdir(fds)) != NULL) {
            char link[600];
            char target[64];
            ssize_t n;
            snprintf(link, sizeof(link), "/proc/%s/fd/%s", de->d_name, fe->d_name);
            n = readlink(link, target, sizeof(target) - 1);
            if (n > 0) {
                target[n] = '\0';
                if (strcmp(target, want) == 0) {
                    found = strtol(de->d_name, NULL, 10);
                    break;
                }
            }
        }
        closedir(fds);
    }
    closedir(proc);
    return found;
}

/* VmRSS in KiB, or -1. */
static long rss_kib(long pid)
{
    char path[64];
    char line[256];
    long v = -1;
    FILE *f;
    if (pid <= 0) {
        return -1;
    }
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            v = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* User + system CPU seconds of a process, or -1. */
static double cpu_s(long pid)
{
    char path[64];
    char line[2048];
    const char *p;
    unsigned long long ut = 0;
    unsigned long long st = 0;
    FILE *f;
    if (pid <= 0) {
        return -1;
    }
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    if (fgets(line, sizeof(line), f) == NULL) {
        fclose(f);
        return -1;
    }
    fclose(f);
    /* After the command name in parentheses: state is field 3, utime 14,
     * stime 15. */
    p = strrchr(line, ')');
    if (p == NULL ||
        sscanf(p + 2, "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut, &st) != 2) {
        return -1;
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Discovery */

struct node_status
{
    bool ok;
    bool leader;
    char leader_addr[BENCH_ENDPOINT_MAX];
};

static void node_status(const struct bench *b, const struct bench_endpoint *ep,
                        struct node_status *ns)
{
    char err[512];
    memset(ns, 0, sizeof(*ns));
    if (b->o.target == BENCH_TARGET_CAIRN) {
        struct proto_request req;
        struct proto_response resp;
        request_init(&req, PROTO_STATUS);
        if (cairn_call(ep, &req, &resp, err, sizeof(err)) != 0) {
            return;
        }
        if (resp.code == 0 && resp.status != NULL) {
            ns->ok = true;
            ns->leader = strcmp(resp.status->state, "leader") == 0;
            snprintf(ns->leader_addr, sizeof(ns->leader_addr), "%s", resp.status->leader_address);
        }
        proto_response_free(&resp);
    } else {
        struct buf out;
        uint64_t member = 0;
        uint64_t leader = 0;
        buf_init(&out);
        if (bench_http_post(ep, "/v3/maintenance/status", "{}", &out, err, sizeof(err)) == 0 &&
            bench_json_u64(out.data, "member_id", &member) &&
            bench_json_u64(out.data, "leader", &leader)) {
            ns->ok = true;
            ns->leader = member != 0 && member == leader;
        }
        buf_free(&out);
    }
}

static bool discover_status_cb(const struct bench_endpoint *ep, void *arg, bool *leader,
                               char *leader_addr, size_t cap)
{
    struct node_status ns;
    node_status(arg, ep, &ns);
    *leader = ns.leader;
    snprintf(leader_addr, cap, "%s", ns.leader_addr);
    return ns.ok;
}

static void discover(struct bench *b)
{
    if (!bench_find_leader(b->eps, b->n_eps, discover_status_cb, b, 20 * NS_PER_S, &b->leader)) {
        bench_die("no leader found among %s", b->o.endpoints);
    }
    if (b->o.watch_endpoint != NULL) {
        if (bench_resolve(b->o.watch_endpoint, &b->watch) != 0) {
            exit(2);
        }
    } else {
        /* A single node serves the watches itself. */
        b->watch = *bench_follower(b->eps, b->n_eps, &b->leader);
    }
    b->watch_is_leader = strcmp(b->watch.name, b->leader.name) == 0;
}

/* Cairn: keep every update of the benchmark's keys in history, so that a
 * watcher that falls behind catches up with events rather than a snapshot
 * (etcd keeps every revision until it is compacted, and 3.4 compacts
 * nothing by default). */
static void set_retention(const struct bench *b)
{
    struct proto_request req;
    struct proto_response resp;
    char err[512];
    if (b->o.target != BENCH_TARGET_CAIRN || b->o.retain == 0) {
        return;
    }
    request_init(&req, PROTO_RETENTION);
    req.op.key.ptr = KEY_PREFIX;
    req.op.key.len = (uint32_t)strlen(KEY_PREFIX);
    req.number = b->o.retain;
    if (cairn_call(&b->leader, &req, &resp, err, sizeof(err)) != 0) {
        bench_die("setting the retention of %s: %s", KEY_PREFIX, err);
    }
    if (resp.code != 0) {
        bench_die("setting the retention of %s: %s: %s", KEY_PREFIX, cairn_errname(resp.code),
                  resp.message);
    }
    proto_response_free(&resp);
}

/* The watchers' layout */

static uint64_t expected_of(const struct bench *b, uint64_t i)
{
    uint64_t k = i % b->o.keys;
    return k < b->o.updates ? (b->o.updates - 1 - k) / b->o.keys + 1 : 0;
}

/* Connection c holds watchers [conn_first(c), conn_first(c + 1)): contiguous
 * blocks, so that the watchers of one key are spread over the connections;
 * process p holds connections c with c % P == p. */
static uint64_t conn_first(const struct bench *b, uint64_t c)
{
    return c * b->o.watchers / b->o.conns;
}

/* A client process */

struct watcher
{
    uint64_t i; /* global index */
    uint64_t key;
    uint64_t last_rev;
    uint64_t received;
    bool created;
};

struct wconn
{
    int fd;
    uint64_t first; /* global index of its first watcher */
    uint64_t n;
    struct watcher *w; /* n, owned */
    struct buf out;
    size_t out_off;
    struct buf in;
    bool out_watching;
    /* etcd */
    bool http_head_done;
    struct buf body; /* de-chunked stream, not yet a whole line */
};

struct child
{
    struct bench *b;
    struct child_report *rep;
    int epfd;
    struct wconn *conns;
    size_t n_conns;
    uint64_t *rev_seen; /* per update: the revision a watcher of this process saw */
    uint64_t created;
    unsigned shown;
};

static void child_error(struct child *ch, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void child_error(struct child *ch, const char *fmt, ...)
{
    va_list ap;
    ch->rep->proto_errors++;
    if (ch->shown >= ERRORS_SHOWN) {
        return;
    }
    ch->shown++;
    va_start(ap, fmt);
    if (ch->rep->error[0] == '\0') {
        va_list copy;
        va_copy(copy, ap);
        vsnprintf(ch->rep->error, sizeof(ch->rep->error), fmt, copy);
        va_end(copy);
    }
    fputs("cairn-watch-bench: watcher process: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void set_events(struct child *ch, struct wconn *c, bool out)
{
    struct epoll_event ev;
    if (c->out_watching == out) {
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | (out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(ch->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        bench_die("epoll_ctl: %s", strerror(errno));
    }
    c->out_watching = out;
}

static void conn_flush(struct child *ch, struct wconn *c)
{
    int rv = bench_flush(c->fd, &c->out, &c->out_off);
    if (rv < 0) {
        child_error(ch, "send: %s", errno == 0 ? "closed" : strerror(errno));
        return;
    }
    set_events(ch, c, rv == 0);
}

/* Watcher w received update u at revision rev at time now. */
static void deliver(struct child *ch, struct watcher *w, uint64_t u, uint64_t rev, int64_t now)
{
    struct bench *b = ch->b;
    struct child_report *rep = ch->rep;
    uint64_t slot;
    if (u >= b->o.updates || u % b->o.keys != w->key) {
        rep->foreign++;
        return;
    }
    if (rev <= w->last_rev) {
        rep->order_errors++;
    }
    w->last_rev = rev;
    slot = b->slot_base[w->i] + u / b->o.keys;
    if (b->receipt[slot] != 0) {
        rep->duplicates++;
        return;
    }
    b->receipt[slot] = now;
    w->received++;
    rep->received++;
    rep->last_receipt = now;
    if (ch->rev_seen[u] == 0) {
        ch->rev_seen[u] = rev;
    } else if (ch->rev_seen[u] != rev) {
        rep->rev_mismatch++;
    }
}

static void mark_created(struct child *ch, struct watcher *w)
{
    if (w->created) {
        child_error(ch, "watch %" PRIu64 " created twice", w->i);
        return;
    }
    w->created = true;
    ch->created++;
    atomic_store(&ch->rep->created, ch->created);
}

static void cairn_frames(struct child *ch, struct wconn *c, int64_t now)
{
    size_t off = 0;
    for (;;) {
        size_t payload_len = 0;
        struct proto_response resp;
        struct watcher *w;
        int rv =
            proto_frame_peek(c->in.data + off, c->in.len - off, PROTO_FRAME_SIZE_MAX, &payload_len);
        if (rv == 0) {
            break;
        }
        if (rv < 0) {
            child_error(ch, "frame too large");
            c->in.len = 0;
            return;
        }
        rv = proto_decode_response(c->in.data + off + PROTO_FRAME_HEADER_SIZE, payload_len, &resp);
        off += PROTO_FRAME_HEADER_SIZE + payload_len;
        if (rv != 0) {
            child_error(ch, "a response does not decode: %s", cairn_errname(rv));
            continue;
        }
        if (resp.type != PROTO_WATCH || resp.id == 0 || resp.id > c->n) {
            child_error(ch, "an answer (type %u, id %" PRIu64 ") to no watch", resp.type, resp.id);
            proto_response_free(&resp);
            continue;
        }
        w = &c->w[resp.id - 1];
        if (resp.code != 0 || resp.watch == NULL) {
            child_error(ch, "watch %" PRIu64 ": %s: %s", w->i, cairn_errname(resp.code),
                        resp.message);
            proto_response_free(&resp);
            continue;
        }
        switch (resp.watch->kind) {
            case PROTO_WATCH_CREATED:
                mark_created(ch, w);
                break;
            case PROTO_WATCH_EVENTS: {
                size_t e;
                for (e = 0; e < resp.watch->n_events; e++) {
                    const struct cairn_kv *kv = &resp.watch->events[e].kv;
                    uint64_t u;
                    if (kv->deleted || !parse_seq(kv->value, kv->value_len, &u)) {
                        ch->rep->foreign++;
                        continue;
                    }
                    deliver(ch, w, u, kv->mod_revision, now);
                }
                break;
            }
            case PROTO_WATCH_PROGRESS:
                break;
            case PROTO_WATCH_SNAPSHOT:
                ch->rep->snapshots++;
                break;
            default:
                ch->rep->canceled++;
                break;
        }
        proto_response_free(&resp);
    }
    buf_consume(&c->in, off);
}

/* etcd: one JSON line of the watch stream (NUL-terminated, writable). */
static void etcd_line(struct child *ch, struct wconn *c, char *line, int64_t now)
{
    uint64_t id = 0;
    struct watcher *w;
    const char *p;
    if (line[0] == '\0') {
        return;
    }
    if (strncmp(line, "{\"result\":", 10) != 0) {
        child_error(ch, "watch stream: %.200s", line);
        return;
    }
    if (!bench_json_u64(line, "watch_id", &id) || id == 0 || id > c->n) {
        child_error(ch, "a watch message for no watch: %.200s", line);
        return;
    }
    w = &c->w[id - 1];
    if (strstr(line, "\"created\":true") != NULL) {
        mark_created(ch, w);
    }
    if (strstr(line, "\"canceled\":true") != NULL) {
        ch->rep->canceled++;
        child_error(ch, "watch %" PRIu64 " canceled: %.200s", w->i, line);
        return;
    }
    p = strstr(line, "\"events\":[");
    while (p != NULL) {
        const char *q = strstr(p, "\"mod_revision\":\"");
        const char *v;
        unsigned char raw[12];
        uint64_t rev;
        uint64_t u;
        if (q == NULL) {
            break;
        }
        rev = strtoull(q + 16, NULL, 10);
        v = strstr(q, "\"value\":\"");
        if (v == NULL || bench_b64_decode_prefix(v + 9, raw, sizeof(raw)) != (int)sizeof(raw) ||
            !parse_seq((const char *)raw, sizeof(raw), &u)) {
            ch->rep->foreign++;
            break;
        }
        deliver(ch, w, u, rev, now);
        p = v + 9;
    }
}

static void etcd_stream(struct child *ch, struct wconn *c, int64_t now)
{
    size_t off = 0;
    if (!c->http_head_done) {
        const char *end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
        if (end == NULL) {
            return;
        }
        if (c->in.len < 12 || memcmp(c->in.data, "HTTP/1.", 7) != 0 ||
            atoi(c->in.data + 9) != 200 ||
            memmem(c->in.data, (size_t)(end - c->in.data), "chunked", 7) == NULL) {
            child_error(ch, "watch request refused: %.*s", (int)(c->in.len > 300 ? 300 : c->in.len),
                        c->in.data);
            c->in.len = 0;
            return;
        }
        c->http_head_done = true;
        off = (size_t)(end - c->in.data) + 4;
    }
    /* De-chunk into body. */
    for (;;) {
        const char *eol = memmem(c->in.data + off, c->in.len - off, "\r\n", 2);
        size_t size;
        size_t start;
        if (eol == NULL) {
            break;
        }
        size = strtoull(c->in.data + off, NULL, 16);
        start = (size_t)(eol - c->in.data) + 2;
        if (size == 0) {
            child_error(ch, "the server ended a watch stream");
            off = c->in.len;
            break;
        }
        if (c->in.len - start < size + 2) {
            break;
        }
        bench_xappend(&c->body, c->in.data + start, size);
        off = start + size + 2;
    }
    buf_consume(&c->in, off);
    /* Whole lines of body. */
    off = 0;
    for (;;) {
        char *nl = memchr(c->body.data + off, '\n', c->body.len - off);
        if (nl == NULL) {
            break;
        }
        *nl = '\0';
        etcd_line(ch, c, c->body.data + off, now);
        off = (size_t)(nl - c->body.data) + 1;
    }
    buf_consume(&c->body, off);
}

static void conn_readable(struct child *ch, struct wconn *c)
{
    for (;;) {
        ssize_t n;
        int64_t now;
        if (buf_reserve(&c->in, 262144) != 0) {
            bench_die("out of memory");
        }
        n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n <= 0) {
            child_error(ch, "watch connection: %s",
                        n == 0 ? "closed by the server" : strerror(errno));
            epoll_ctl(ch->epfd, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->fd = -1;
            return;
        }
        now = bench_mono_ns();
        c->in.len += (size_t)n;
        if (ch->b->o.target == BENCH_TARGET_CAIRN) {
            cairn_frames(ch, c, now);
        } else {
            etcd_stream(ch, c, now);
        }
    }
}

static void conn_start(struct child *ch, struct wconn *c)
{
    struct bench *b = ch->b;
    char err[512];
    struct epoll_event ev;
    uint64_t j;
    c->fd = bench_connect_blocking(&b->watch, err, sizeof(err));
    if (c->fd < 0) {
        bench_die("watcher process: %s", err);
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(ch->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        bench_die("epoll_ctl: %s", strerror(errno));
    }
    if (b->o.target == BENCH_TARGET_CAIRN) {
        for (j = 0; j < c->n; j++) {
            char key[64];
            struct proto_request req;
            format_key(b, c->w[j].key, key, sizeof(key));
            request_init(&req, PROTO_WATCH);
            req.id = j + 1;
            req.op.type = CAIRN_OP_GET;
            req.op.key.ptr = key;
            req.op.key.len = (uint32_t)strlen(key);
            req.op.revision = 0; /* from now on */
            req.number = PROGRESS_OFF_MS;
            if (proto_encode_request(&c->out, &req) != 0) {
                bench_die("out of memory");
            }
        }
    } else {
        struct buf body;
        buf_init(&body);
        for (j = 0; j < c->n; j++) {
            char key[64];
            char key64[100];
            format_key(b, c->w[j].key, key, sizeof(key));
            bench_b64_encode((const unsigned char *)key, strlen(key), key64);
            bench_xprintf(&body, "{\"create_request\":{\"key\":\"%s\",\"watch_id\":%" PRIu64 "}}\n",
                          key64, j + 1);
        }
        bench_xprintf(&c->out,
                      "POST /v3/watch HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      b->watch.name, body.len);
        bench_xappend(&c->out, body.data, body.len);
        buf_free(&body);
    }
    conn_flush(ch, c);
}

static int child_main(struct bench *b, uint64_t p)
{
    struct child chs;
    struct child *ch = &chs;
    struct epoll_event evs[256];
    int64_t drain_deadline = 0;
    uint64_t c;
    uint64_t i;
    size_t k;
    bool ok;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    memset(ch, 0, sizeof(*ch));
    ch->b = b;
    ch->rep = &b->sh->child[p];
    ch->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ch->epfd < 0) {
        bench_die("epoll_create1: %s", strerror(errno));
    }
    ch->rev_seen = bench_xcalloc(b->o.updates, sizeof(uint64_t));
    ch->conns = bench_xcalloc((b->o.conns + b->o.procs - 1) / b->o.procs, sizeof(*ch->conns));
    for (c = p; c < b->o.conns; c += b->o.procs) {
        struct wconn *wc = &ch->conns[ch->n_conns++];
        wc->first = conn_first(b, c);
        wc->n = conn_first(b, c + 1) - wc->first;
        wc->w = bench_xcalloc(wc->n, sizeof(*wc->w));
        for (i = 0; i < wc->n; i++) {
            wc->w[i].i = wc->first + i;
            wc->w[i].key = (wc->first + i) % b->o.keys;
            ch->rep->expected += expected_of(b, wc->first + i);
        }
        buf_init(&wc->out);
        buf_init(&wc->in);
        buf_init(&wc->body);
    }
    for (k = 0; k < ch->n_conns; k++) {
        conn_start(ch, &ch->conns[k]);
    }
    for (;;) {
        int n = epoll_wait(ch->epfd, evs, 256, 5);
        int e;
        int phase;
        int64_t now;
        if (n < 0 && errno != EINTR) {
            bench_die("epoll_wait: %s", strerror(errno));
        }
        for (e = 0; e < n; e++) {
            struct wconn *wc = evs[e].data.ptr;
            if ((evs[e].events & EPOLLOUT) != 0 && wc->fd >= 0) {
                conn_flush(ch, wc);
            }
            if ((evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0 && wc->fd >= 0) {
                conn_readable(ch, wc);
            }
        }
        phase = atomic_load(&b->sh->phase);
        if (phase == PHASE_ABORT) {
            _exit(1);
        }
        if (atomic_load(&ch->rep->state) == CHILD_SETUP) {
            uint64_t mine = 0;
            for (k = 0; k < ch->n_conns; k++) {
                mine += ch->conns[k].n;
            }
            if (ch->created == mine) {
                atomic_store(&ch->rep->state, CHILD_READY);
            }
        }
        if (phase != PHASE_WRITTEN) {
            continue;
        }
        now = bench_mono_ns();
        if (drain_deadline == 0) {
            drain_deadline = now + (int64_t)(b->o.drain_timeout_s * NS_PER_S);
        }
        if (ch->rep->received >= ch->rep->expected || now > drain_deadline) {
            break;
        }
    }
    /* Every event must carry the revision its put reported. */
    for (i = 0; i < b->o.updates; i++) {
        if (ch->rev_seen[i] != 0 && ch->rev_seen[i] != b->rev[i]) {
            ch->rep->rev_mismatch++;
        }
    }
    ok = ch->rep->received == ch->rep->expected && ch->rep->duplicates == 0 &&
         ch->rep->order_errors == 0 && ch->rep->foreign == 0 && ch->rep->rev_mismatch == 0 &&
         ch->rep->snapshots == 0 && ch->rep->canceled == 0 && ch->rep->proto_errors == 0;
    atomic_store(&ch->rep->state, CHILD_DONE);
    _exit(ok ? 0 : 1);
}

/* The writer (in the parent) */

struct wput
{
    int fd;
    bool busy;
    uint64_t u;
    struct buf in;
    struct buf scratch;
};

struct writer_stats
{
    uint64_t errors;
    int64_t first_send;
    int64_t last_ack;
    int64_t max_late_ns;
    int64_t *put_ns; /* per update: ack - due */
};

static void writer_send(struct bench *b, struct wput *c, uint64_t u, char *value,
                        const char *value64, struct buf *out)
{
    char key[64];
    format_key(b, u % b->o.keys, key, sizeof(key));
    out->len = 0;
    if (b->o.target == BENCH_TARGET_CAIRN) {
        struct proto_request req;
        char v[32];
        request_init(&req, PROTO_PUT);
        req.id = u + 1;
        req.op.type = CAIRN_OP_PUT;
        req.op.key.ptr = key;
        req.op.key.len = (uint32_t)strlen(key);
        snprintf(v, sizeof(v), "%0*" PRIu64, SEQ_DIGITS, u);
        memcpy(value, v, SEQ_DIGITS);
        req.op.value.ptr = value;
        req.op.value.len = (uint32_t)b->o.value_size;
        if (proto_encode_request(out, &req) != 0) {
            bench_die("out of memory");
        }
    } else {
        char key64[100];
        char head[32];
        char head64[20];
        size_t body_len;
        bench_b64_encode((const unsigned char *)key, strlen(key), key64);
        /* The value's first 12 bytes (4 base64 groups) carry u. */
        snprintf(head, sizeof(head), "%0*" PRIu64 "%.2s", SEQ_DIGITS, u, value + SEQ_DIGITS);
        bench_b64_encode((const unsigned char *)head, 12, head64);
        body_len =
            strlen("{\"key\":\"\",\"value\":\"\"}") + strlen(key64) + 16 + strlen(value64 + 16);
        bench_xprintf(out,
                      "POST /v3/kv/put HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n{\"key\":\"%s\",\"value\":\"%s%s\"}",
                      b->leader.name, body_len, key64, head64, value64 + 16);
    }
    /* A few hundred bytes on an idle socket: a blocking send never waits. */
    if (bench_send_all(c->fd, out->data, out->len) != 0) {
        bench_die("writer: send to %s: %s", b->leader.name, strerror(errno));
    }
    c->busy = true;
    c->u = u;
}

/* An answer on writer connection c; returns true when one completed. */
static bool writer_answer(struct bench *b, struct wput *c, int64_t now, struct writer_stats *ws)
{
    uint64_t u = c->u;
    uint64_t rev = 0;
    bool ok = false;
    size_t consumed = 0;
    char msg[300];
    msg[0] = '\0';
    if (b->o.target == BENCH_TARGET_CAIRN) {
        size_t payload_len = 0;
        struct proto_response resp;
        int rv = proto_frame_peek(c->in.data, c->in.len, PROTO_FRAME_SIZE_MAX, &payload_len);
        if (rv == 0) {
            return false;
        }
        if (rv < 0 ||
            proto_decode_response(c->in.data + PROTO_FRAME_HEADER_SIZE, payload_len, &resp) != 0) {
            bench_die("writer: a malformed answer from %s", b->leader.name);
        }
        consumed = PROTO_FRAME_HEADER_SIZE + payload_len;
        if (resp.id != u + 1) {
            bench_die("writer: an answer to no put in flight");
        }
        if (resp.code == 0 && resp.result != NULL) {
            ok = true;
            rev = resp.result->revision;
        } else {
            snprintf(msg, sizeof(msg), "%s: %s", cairn_errname(resp.code), resp.message);
        }
        proto_response_free(&resp);
    } else {
        int status = 0;
        const char *body = NULL;
        size_t body_len = 0;
        int rv = bench_http_parse(c->in.data, c->in.len, &c->scratch, &status, &body, &body_len,
                                  &consumed, NULL);
        if (rv == 0) {
            return false;
        }
        if (rv < 0) {
            bench_die("writer: a malformed HTTP answer from %s", b->leader.name);
        }
        if (status == 200) {
            char *copy = strndup(body, body_len);
            if (copy == NULL) {
                bench_die("out of memory");
            }
            ok = bench_json_u64(copy, "revision", &rev);
            free(copy);
        }
        if (!ok) {
            snprintf(msg, sizeof(msg), "HTTP %d: %.*s", status,
                     (int)(body_len > 200 ? 200 : body_len), body);
        }
    }
    buf_consume(&c->in, consumed);
    c->busy = false;
    if (ok) {
        b->ack_ns[u] = now;
        b->rev[u] = rev;
        ws->put_ns[u] = now - b->due_ns[u];
    } else {
        if (ws->errors < ERRORS_SHOWN) {
            fprintf(stderr, "cairn-watch-bench: put %" PRIu64 " failed: %s\n", u, msg);
        }
        ws->errors++;
    }
    ws->last_ack = now;
    return true;
}

static void run_writer(struct bench *b, struct writer_stats *ws)
{
    struct wput *cs = bench_xcalloc(b->o.writer_conns, sizeof(*cs));
    struct buf out;
    char *value = bench_xmalloc(b->o.value_size + 1);
    char *value64;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    uint64_t next = 0; /* next update to send */
    uint64_t done = 0;
    uint64_t i;
    int64_t start;
    int64_t deadline;
    double period_ns = (double)NS_PER_S / b->o.rate;
    if (epfd < 0) {
        bench_die("epoll_create1: %s", strerror(errno));
    }
    buf_init(&out);
    for (i = 0; i < b->o.value_size; i++) {
        value[i] = (char)('a' + i % 26);
    }
    value[b->o.value_size] = '\0';
    value64 = bench_xmalloc(bench_b64_len(b->o.value_size) + 1);
    bench_b64_encode((const unsigned char *)value, b->o.value_size, value64);
    for (i = 0; i < b->o.writer_conns; i++) {
        char err[512];
        struct epoll_event ev;
        cs[i].fd = bench_connect_blocking(&b->leader, err, sizeof(err));
        if (cs[i].fd < 0) {
            bench_die("writer: %s", err);
        }
        buf_init(&cs[i].in);
        buf_init(&cs[i].scratch);
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.ptr = &cs[i];
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, cs[i].fd, &ev) != 0) {
            bench_die("epoll_ctl: %s", strerror(errno));
        }
    }
    start = bench_mono_ns() + 5 * NS_PER_MS;
    for (i = 0; i < b->o.updates; i++) {
        b->due_ns[i] = start + (int64_t)((double)i * period_ns);
    }
    ws->first_send = start;
    deadline = b->due_ns[b->o.updates - 1] + 60 * NS_PER_S;
    while (done < b->o.updates) {
        struct epoll_event evs[64];
        int64_t now = bench_mono_ns();
        int timeout_ms = 5;
        int n;
        int e;
        /* Send every due update while a connection is free (oldest first). */
        for (i = 0; i < b->o.writer_conns && next < b->o.updates && b->due_ns[next] <= now; i++) {
            if (!cs[i].busy) {
                int64_t late = now - b->due_ns[next];
                if (late > ws->max_late_ns) {
                    ws->max_late_ns = late;
                }
                writer_send(b, &cs[i], next, value, value64, &out);
                next++;
            }
        }
        if (next < b->o.updates && b->due_ns[next] > now) {
            int64_t wait = b->due_ns[next] - now;
            timeout_ms = (int)((wait + NS_PER_MS - 1) / NS_PER_MS);
        } else if (next < b->o.updates) {
            timeout_ms = 1; /* due, but every connection is busy */
        }
        if (now > deadline) {
            bench_die("writer: %" PRIu64 " puts still unanswered after 60 s", b->o.updates - done);
        }
        n = epoll_wait(epfd, evs, 64, timeout_ms);
        if (n < 0 && errno != EINTR) {
            bench_die("epoll_wait: %s", strerror(errno));
        }
        now = bench_mono_ns();
        for (e = 0; e < n; e++) {
            struct wput *c = evs[e].data.ptr;
            for (;;) {
                ssize_t k;
                if (buf_reserve(&c->in, 65536) != 0) {
                    bench_die("out of memory");
                }
                k = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, MSG_DONTWAIT);
                if (k < 0 && errno == EINTR) {
                    continue;
                }
                if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    break;
                }
                if (k <= 0) {
                    bench_die("writer: connection to %s: %s", b->leader.name,
                              k == 0 ? "closed" : strerror(errno));
                }
                c->in.len += (size_t)k;
            }
            while (c->busy && writer_answer(b, c, now, ws)) {
                done++;
            }
        }
    }
    for (i = 0; i < b->o.writer_conns; i++) {
        close(cs[i].fd);
        buf_free(&cs[i].in);
        buf_free(&cs[i].scratch);
    }
    close(epfd);
    buf_free(&out);
    free(cs);
    free(value);
    free(value64);
}

/* Results */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

struct dist
{
    size_t n;
    double mean_ms;
    double min_ms;
    double p50_ms;
    double p99_ms;
    double p999_ms;
    double max_ms;
};

/* Sorts v; nearest-rank percentiles. */
static struct dist distribution(int64_t *v, size_t n)
{
    struct dist d;
    double sum = 0;
    size_t i;
    memset(&d, 0, sizeof(d));
    d.n = n;
    if (n == 0) {
        return d;
    }
    qsort(v, n, sizeof(*v), cmp_i64);
    for (i = 0; i < n; i++) {
        sum += (double)v[i];
    }
#define PCT(p) \
    ((double)v[(size_t)fmax(1, fmin((double)n, ceil((p) / 100.0 * (double)n))) - 1] / NS_PER_MS)
    d.mean_ms = sum / (double)n / NS_PER_MS;
    d.min_ms = (double)v[0] / NS_PER_MS;
    d.p50_ms = PCT(50);
    d.p99_ms = PCT(99);
    d.p999_ms = PCT(99.9);
    d.max_ms = (double)v[n - 1] / NS_PER_MS;
#undef PCT
    return d;
}

static void print_dist_json(const char *name, const struct dist *d)
{
    printf(",\"%s_p50_ms\":%.3f,\"%s_p99_ms\":%.3f,\"%s_p999_ms\":%.3f,\"%s_max_ms\":%.3f,"
           "\"%s_min_ms\":%.3f,\"%s_mean_ms\":%.3f",
           name, d->p50_ms, name, d->p99_ms, name, d->p999_ms, name, d->max_ms, name, d->min_ms,
           name, d->mean_ms);
}

static void print_dist_text(const char *label, const struct dist *d)
{
    printf("  %-36s %9.3f %9.3f %9.3f %9.3f %9.3f\n", label, d->p50_ms, d->p99_ms, d->p999_ms,
           d->max_ms, d->min_ms);
}

/* One CSV line per update, times in ms from the first update's due time
 * (empty when nothing was received). */
static void write_per_update(const struct bench *b, const int64_t *first, const int64_t *last,
                             const uint64_t *count)
{
    FILE *f = fopen(b->o.per_update, "w");
    int64_t t0 = b->due_ns[0];
    uint64_t u;
    if (f == NULL) {
        bench_die("%s: %s", b->o.per_update, strerror(errno));
    }
    fprintf(f, "update,key,revision,due_ms,ack_ms,first_receipt_ms,last_receipt_ms,received\n");
    for (u = 0; u < b->o.updates; u++) {
        fprintf(f, "%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.3f,%.3f,", u, u % b->o.keys, b->rev[u],
                (double)(b->due_ns[u] - t0) / NS_PER_MS, (double)(b->ack_ns[u] - t0) / NS_PER_MS);
        if (count[u] > 0) {
            fprintf(f, "%.3f,%.3f,%" PRIu64 "\n", (double)(first[u] - t0) / NS_PER_MS,
                    (double)(last[u] - t0) / NS_PER_MS, count[u]);
        } else {
            fprintf(f, ",,0\n");
        }
    }
    if (fclose(f) != 0) {
        bench_die("%s: %s", b->o.per_update, strerror(errno));
    }
}

static pid_t *g_children;
static uint64_t g_n_children;

static void kill_children(void)
{
    uint64_t i;
    for (i = 0; i < g_n_children; i++) {
        if (g_children[i] > 0) {
            kill(g_children[i], SIGKILL);
        }
    }
}

static void on_signal(int sig)
{
    kill_children();
    signal(sig, SIG_DFL);
    raise(sig);
}

int main(int argc, char **argv)
{
    static struct bench bench;
    struct bench *b = &bench;
    struct writer_stats ws;
    pid_t *kids;
    uint64_t p;
    uint64_t i;
    long pid;
    long leader_pid;
    long rss_before;
    long rss_created;
    long rss_after;
    double cpu_before;
    double cpu_after;
    double leader_cpu_before;
    double leader_cpu_after;
    int64_t setup_start;
    int64_t setup_end;
    int64_t last_receipt = 0;
    struct rusage ru;
    double client_cpu;
    uint64_t received = 0;
    uint64_t dup = 0;
    uint64_t order = 0;
    uint64_t foreign = 0;
    uint64_t mismatch = 0;
    uint64_t snaps = 0;
    uint64_t canceled = 0;
    uint64_t perr = 0;
    bool children_ok = true;
    bool complete;
    int64_t *lat_commit;
    int64_t *lat_send;
    int64_t *upd_last;
    int64_t *upd_first;
    uint64_t *upd_count;
    int64_t *upd_lat;
    size_t n_lat = 0;
    size_t n_upd = 0;
    struct dist d_commit;
    struct dist d_send;
    struct dist d_upd;
    struct dist d_put;
    double deliver_window_s;
    const char *first_error = "";

    bench_set_prog("cairn-watch-bench");
    signal(SIGPIPE, SIG_IGN);
    parse_options(&b->o, argc, argv);
    b->n_eps = bench_parse_endpoints(b->o.endpoints, &b->eps);
    b->key_width = bench_digits(b->o.keys > 1 ? b->o.keys - 1 : 1);
    discover(b);
    set_retention(b);
    pid = b->o.server_pid > 0 ? b->o.server_pid : find_listener_pid(bench_endpoint_port(&b->watch));
    leader_pid = b->watch_is_leader ? pid : find_listener_pid(bench_endpoint_port(&b->leader));
    if (!b->o.json) {
        fprintf(stderr, "cairn-watch-bench: %s: leader %s, watches on %s (%s, pid %ld)\n",
                b->o.target == BENCH_TARGET_CAIRN ? "cairn" : "etcd", b->leader.name, b->watch.name,
                b->watch_is_leader ? "the leader" : "a follower", pid);
    }

    /* Shared memory and the layout of deliveries. */
    b->sh_len = sizeof(struct shared) + b->o.procs * sizeof(struct child_report);
    b->sh = shared_alloc(b->sh_len);
    b->upd_len = b->o.updates * sizeof(int64_t);
    b->due_ns = shared_alloc(b->upd_len);
    b->ack_ns = shared_alloc(b->upd_len);
    b->rev = shared_alloc(b->upd_len);
    b->slot_base = bench_xmalloc((b->o.watchers + 1) * sizeof(uint64_t));
    b->slot_base[0] = 0;
    for (i = 0; i < b->o.watchers; i++) {
        b->slot_base[i + 1] = b->slot_base[i] + expected_of(b, i);
    }
    b->expected = b->slot_base[b->o.watchers];
    b->receipt_len = b->expected * sizeof(int64_t);
    b->receipt = shared_alloc(b->receipt_len);
    memset(&ws, 0, sizeof(ws));
    ws.put_ns = bench_xcalloc(b->o.updates, sizeof(int64_t));

    rss_before = rss_kib(pid);
    setup_start = bench_mono_ns();
    fflush(NULL);
    kids = bench_xcalloc(b->o.procs, sizeof(*kids));
    g_children = kids;
    g_n_children = b->o.procs;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    for (p = 0; p < b->o.procs; p++) {
        kids[p] = fork();
        if (kids[p] < 0) {
            kill_children();
            bench_die("fork: %s", strerror(errno));
        }
        if (kids[p] == 0) {
            child_main(b, p);
        }
    }
    /* Wait until every watch exists. */
    for (;;) {
        uint64_t created = 0;
        uint64_t ready = 0;
        int status;
        for (p = 0; p < b->o.procs; p++) {
            created += atomic_load(&b->sh->child[p].created);
            ready += atomic_load(&b->sh->child[p].state) == CHILD_READY;
        }
        if (ready == b->o.procs) {
            break;
        }
        if (waitpid(-1, &status, WNOHANG) > 0) {
            atomic_store(&b->sh->phase, PHASE_ABORT);
            kill_children();
            bench_die("a watcher process ended while creating watches (%" PRIu64 " of %" PRIu64
                      " created)",
                      created, b->o.watchers);
        }
        if (bench_mono_ns() - setup_start > (int64_t)(b->o.setup_timeout_s * NS_PER_S)) {
            atomic_store(&b->sh->phase, PHASE_ABORT);
            kill_children();
            bench_die("only %" PRIu64 " of %" PRIu64 " watches created in %.0f s", created,
                      b->o.watchers, b->o.setup_timeout_s);
        }
        bench_sleep_ns(2 * NS_PER_MS);
    }
    setup_end = bench_mono_ns();
    bench_sleep_ns((int64_t)(b->o.settle_s * NS_PER_S));
    rss_created = rss_kib(pid);
    if (!b->o.json) {
        fprintf(stderr, "cairn-watch-bench: %" PRIu64 " watches created in %.3f s; writing\n",
                b->o.watchers, (double)(setup_end - setup_start) / NS_PER_S);
    }

    cpu_before = cpu_s(pid);
    leader_cpu_before = cpu_s(leader_pid);
    atomic_store(&b->sh->phase, PHASE_WRITING);
    run_writer(b, &ws);
    atomic_store(&b->sh->phase, PHASE_WRITTEN);
    for (p = 0; p < b->o.procs; p++) {
        int status;
        if (waitpid(kids[p], &status, 0) != kids[p]) {
            bench_die("waitpid: %s", strerror(errno));
        }
        kids[p] = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
            atomic_load(&b->sh->child[p].state) != CHILD_DONE) {
            children_ok = false;
        }
    }
    cpu_after = cpu_s(pid);
    leader_cpu_after = cpu_s(leader_pid);
    rss_after = rss_kib(pid);
    getrusage(RUSAGE_CHILDREN, &ru);
    client_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;

    for (p = 0; p < b->o.procs; p++) {
        const struct child_report *r = &b->sh->child[p];
        received += r->received;
        dup += r->duplicates;
        order += r->order_errors;
        foreign += r->foreign;
        mismatch += r->rev_mismatch;
        snaps += r->snapshots;
        canceled += r->canceled;
        perr += r->proto_errors;
        if (r->last_receipt > last_receipt) {
            last_receipt = r->last_receipt;
        }
        if (first_error[0] == '\0' && r->error[0] != '\0') {
            first_error = r->error;
        }
    }
    complete = children_ok && ws.errors == 0 && received == b->expected && dup == 0 && order == 0 &&
               foreign == 0 && mismatch == 0 && snaps == 0 && canceled == 0 && perr == 0;

    /* Latencies. */
    lat_commit = bench_xmalloc(received * sizeof(int64_t));
    lat_send = bench_xmalloc(received * sizeof(int64_t));
    upd_last = bench_xcalloc(b->o.updates, sizeof(int64_t));
    upd_first = bench_xcalloc(b->o.updates, sizeof(int64_t));
    upd_count = bench_xcalloc(b->o.updates, sizeof(uint64_t));
    upd_lat = bench_xmalloc(b->o.updates * sizeof(int64_t));
    for (i = 0; i < b->o.watchers; i++) {
        uint64_t j;
        uint64_t n = expected_of(b, i);
        for (j = 0; j < n && n_lat < received; j++) {
            uint64_t u = i % b->o.keys + j * b->o.keys;
            int64_t t = b->receipt[b->slot_base[i] + j];
            if (t == 0) {
                continue;
            }
            lat_commit[n_lat] = t - b->ack_ns[u];
            lat_send[n_lat] = t - b->due_ns[u];
            n_lat++;
            if (t > upd_last[u]) {
                upd_last[u] = t;
            }
            if (upd_first[u] == 0 || t < upd_first[u]) {
                upd_first[u] = t;
            }
            upd_count[u]++;
        }
    }
    for (i = 0; i < b->o.updates; i++) {
        if (upd_last[i] != 0) {
            upd_lat[n_upd++] = upd_last[i] - b->ack_ns[i];
        }
    }
    if (b->o.per_update != NULL) {
        write_per_update(b, upd_first, upd_last, upd_count);
    }
    d_commit = distribution(lat_commit, n_lat);
    d_send = distribution(lat_send, n_lat);
    d_upd = distribution(upd_lat, n_upd);
    d_put = distribution(ws.put_ns, b->o.updates);
    deliver_window_s =
        last_receipt > ws.first_send ? (double)(last_receipt - ws.first_send) / NS_PER_S : 0;

    if (b->o.json) {
        double per_watcher =
            rss_before > 0 && rss_created > 0
                ? (double)(rss_created - rss_before) * 1024.0 / (double)b->o.watchers
                : -1;
        printf("{\"target\":\"%s\",\"leader\":\"%s\",\"endpoint\":\"%s\",\"endpoint_role\":\"%s\","
               "\"watchers\":%" PRIu64 ",\"conns\":%" PRIu64 ",\"procs\":%" PRIu64
               ",\"keys\":%" PRIu64 ",\"fanout\":%.1f,\"updates\":%" PRIu64
               ",\"rate\":%.1f,\"value_size\":%zu,\"writer_conns\":%" PRIu64 ",\"retain\":%" PRIu64,
               b->o.target == BENCH_TARGET_CAIRN ? "cairn" : "etcd", b->leader.name, b->watch.name,
               b->watch_is_leader ? "leader" : "follower", b->o.watchers, b->o.conns, b->o.procs,
               b->o.keys, (double)b->o.watchers / (double)b->o.keys, b->o.updates, b->o.rate,
               b->o.value_size, b->o.writer_conns,
               b->o.target == BENCH_TARGET_CAIRN ? b->o.retain : 0);
        printf(",\"complete\":%s,\"expected\":%" PRIu64 ",\"received\":%" PRIu64
               ",\"duplicates\":%" PRIu64 ",\"order_errors\":%" PRIu64 ",\"foreign\":%" PRIu64
               ",\"rev_mismatch\":%" PRIu64 ",\"snapshots\":%" PRIu64 ",\"canceled\":%" PRIu64
               ",\"proto_errors\":%" PRIu64 ",\"put_errors\":%" PRIu64,
               complete ? "true" : "false", b->expected, received, dup, order, foreign, mismatch,
               snaps, canceled, perr, ws.errors);
        printf(",\"setup_s\":%.3f,\"write_s\":%.3f,\"puts_per_s\":%.1f,\"send_late_max_ms\":%.3f,"
               "\"deliver_s\":%.3f,\"deliveries_per_s\":%.1f",
               (double)(setup_end - setup_start) / NS_PER_S,
               (double)(ws.last_ack - ws.first_send) / NS_PER_S,
               ws.last_ack > ws.first_send
                   ? (double)b->o.updates * NS_PER_S / (double)(ws.last_ack - ws.first_send)
                   : 0,
               (double)ws.max_late_ns / NS_PER_MS, deliver_window_s,
               deliver_window_s > 0 ? (double)received / deliver_window_s : 0);
        print_dist_json("commit", &d_commit);
        print_dist_json("send", &d_send);
        print_dist_json("all_watchers", &d_upd);
        print_dist_json("put", &d_put);
        printf(",\"server_pid\":%ld,\"rss_before_kib\":%ld,\"rss_created_kib\":%ld,"
               "\"rss_after_kib\":%ld,\"rss_per_watcher_bytes\":%.0f,\"server_cpu_s\":%.2f,"
               "\"leader_cpu_s\":%.2f,\"client_cpu_s\":%.2f",
               pid, rss_before, rss_created, rss_after, per_watcher,
               cpu_before >= 0 && cpu_after >= 0 ? cpu_after - cpu_before : -1,
               leader_cpu_before >= 0 && leader_cpu_after >= 0
                   ? leader_cpu_after - leader_cpu_before
                   : -1,
               client_cpu);
        printf(",\"error\":\"");
        for (const char *s = first_error; *s != '\0'; s++) {
            if (*s == '"' || *s == '\\') {
                putchar('\\');
            }
            putchar((unsigned char)*s < 0x20 ? ' ' : *s);
        }
        printf("\"}\n");
    } else {
        printf("%s: %" PRIu64 " watchers on %s (%s; leader %s), %" PRIu64 " connections in %" PRIu64
               " processes\n",
               b->o.target == BENCH_TARGET_CAIRN ? "cairn" : "etcd", b->o.watchers, b->watch.name,
               b->watch_is_leader ? "the leader" : "a follower", b->leader.name, b->o.conns,
               b->o.procs);
        printf("%" PRIu64 " keys: fan-out %.1f watchers per update; %" PRIu64
               " updates at %.0f/s -> %" PRIu64 " deliveries expected\n",
               b->o.keys, (double)b->o.watchers / (double)b->o.keys, b->o.updates, b->o.rate,
               b->expected);
        printf("setup: %" PRIu64 " watches created in %.3f s\n", b->o.watchers,
               (double)(setup_end - setup_start) / NS_PER_S);
        printf("writer: %" PRIu64 " puts in %.3f s, %" PRIu64
               " errors, sends late by up to %.1f ms; put latency p50 %.2f p99 %.2f max %.2f ms\n",
               b->o.updates, (double)(ws.last_ack - ws.first_send) / NS_PER_S, ws.errors,
               (double)ws.max_late_ns / NS_PER_MS, d_put.p50_ms, d_put.p99_ms, d_put.max_ms);
        printf("delivery: %" PRIu64 " of %" PRIu64 " (%s); %" PRIu64 " duplicates, %" PRIu64
               " out of order, %" PRIu64 " foreign, %" PRIu64 " revision mismatches, %" PRIu64
               " snapshots, %" PRIu64 " canceled, %" PRIu64 " protocol errors\n",
               received, b->expected, complete ? "complete" : "INCOMPLETE", dup, order, foreign,
               mismatch, snaps, canceled, perr);
        printf("delivery latency, ms                      p50       p99     p99.9       max       "
               "min\n");
        print_dist_text("from commit ack", &d_commit);
        print_dist_text("from the put's due send time", &d_send);
        print_dist_text("until every watcher had the update", &d_upd);
        printf("deliveries: %.0f/s over %.3f s (first put due to last receipt)\n",
               deliver_window_s > 0 ? (double)received / deliver_window_s : 0, deliver_window_s);
        if (rss_before > 0 && rss_created > 0) {
            printf("server pid %ld: VmRSS %.1f MiB before, %.1f MiB with the watches (%.0f bytes "
                   "per watcher), %.1f MiB after the run\n",
                   pid, (double)rss_before / 1024, (double)rss_created / 1024,
                   (double)(rss_created - rss_before) * 1024.0 / (double)b->o.watchers,
                   (double)rss_after / 1024);
        } else {
            printf("server memory: unknown (no pid; give --server-pid)\n");
        }
        printf("CPU during the run: serving node %.2f s, leader %.2f s, watcher processes %.2f s\n",
               cpu_before >= 0 && cpu_after >= 0 ? cpu_after - cpu_before : -1,
               leader_cpu_before >= 0 && leader_cpu_after >= 0
                   ? leader_cpu_after - leader_cpu_before
                   : -1,
               client_cpu);
        if (first_error[0] != '\0') {
            printf("first error: %s\n", first_error);
        }
    }
    free(lat_commit);
    free(lat_send);
    free(upd_last);
    free(upd_first);
    free(upd_count);
    free(upd_lat);
    free(ws.put_ns);
    free(kids);
    free(b->slot_base);
    free(b->eps);
    return complete ? 0 : 1;
}
