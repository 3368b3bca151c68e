/*
 * cairn-bench: a closed-loop load generator for Cairn (and, for comparison,
 * etcd v3 through its HTTP/JSON gateway).
 *
 * One thread drives N client connections with epoll; every client has at most
 * one request in flight and sends the next one as soon as the answer arrives
 * (a closed loop), so N is the concurrency. Puts and linearizable gets go to
 * the leader (found first with a status call), stale gets to --stale-endpoint
 * or to a follower. Each request's latency is taken with CLOCK_MONOTONIC from
 * the moment the client chose it to the moment its whole answer was parsed.
 *
 * Phases: optional preload (every key written once), warm-up (load runs, is
 * not recorded), measurement (answers that complete inside the window are
 * recorded; throughput is divided by the window actually measured), drain
 * (answers still in flight are awaited and dropped).
 *
 *   cairn-bench --endpoints 127.0.0.1:7001,... --clients 64 --duration 10 \
 *               --mix put=20,get=80 --keys 10000 --value-size 100 --preload
 *
 * See --help for every option, and docs/performance.md for how it is used.
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
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "buf.h"
#include "cairn.h"
#include "proto.h"

#define NS_PER_MS BENCH_NS_PER_MS
#define NS_PER_S BENCH_NS_PER_S
#define RECONNECT_DELAY_NS (100 * NS_PER_MS)
#define DRAIN_MAX_NS (5 * NS_PER_S)
#define SCAN_EVERY_NS (5 * NS_PER_MS)
#define VALUE_POOL 16
#define ERRORS_SHOWN 10
/* After an error a client pauses this long, so that a cluster without a
 * leader is not flooded with requests bound to fail. */
#define ERROR_PAUSE_NS (10 * NS_PER_MS)
#define LOST_LEADER_IGNORE_NS (3 * NS_PER_S)

enum op_kind {
    OP_PUT = 0,
    OP_GET = 1,   /* linearizable get, at the leader */
    OP_STALE = 2, /* stale get (etcd: serializable range), at the stale endpoint */
    /* Read your writes: a put at the leader, then at once a stale get of the
     * same key at the stale endpoint with min_revision = the put's revision
     * (Cairn only). The put is recorded as a put, the get as "ryw". */
    OP_RYW = 3,
    OP_N = 4,
};

static const char *const op_names[OP_N] = {"put", "get", "stale", "ryw"};

enum phase {
    PH_PRELOAD,
    PH_WARMUP,
    PH_MEASURE,
    PH_DRAIN,
    PH_DONE,
};

enum outcome {
    OUT_OK,
    OUT_MISS, /* a get that found no key: answered, but counted apart */
    OUT_ERR,
};

struct options
{
    const char *endpoints;
    int clients;
    double duration_s;
    bool duration_set;
    uint64_t requests;
    bool requests_set;
    double warmup_s;
    double rate; /* ops/s over all clients; 0: a closed loop */
    unsigned mix[OP_N];
    uint64_t keys;
    bool keys_set;
    size_t value_size;
    bool value_size_set;
    bool preload;
    bool memory_load;
    const char *stale_endpoint;
    bool json;
    const char *trace; /* --trace FILE, or NULL */
    enum bench_target target;
    int timeout_ms;
    uint64_t seed;
};

enum conn_state {
    CONN_DOWN,
    CONN_CONNECTING,
    CONN_UP,
};

struct client;

struct conn
{
    struct client *cl;
    struct bench_endpoint ep; /* where it is (or will be) connected */
    int fd;
    enum conn_state state;
    int64_t retry_at;
    uint32_t events; /* registered epoll events */
    struct buf out;
    size_t out_off;
    struct buf in;
};

struct client
{
    struct conn conns[2]; /* 0: the leader (put, get); 1: the stale endpoint */
    bool busy;            /* a request is chosen and not yet answered */
    bool sent;            /* ... and handed to its connection */
    bool preload;         /* the request belongs to the preload */
    enum op_kind op;
    int conn_i;
    uint64_t key;
    uint64_t id;
    int64_t started;
    int64_t not_before;    /* paused after an error until then */
    int64_t next_due;      /* --rate: when its next request is due */
    bool ryw_put;          /* this put is the first half of an OP_RYW */
    uint64_t min_revision; /* OP_RYW's get: the revision its put made */
};

/* One answered request, for --trace. */
struct trace_rec
{
    int64_t started; /* CLOCK_MONOTONIC ns */
    uint64_t ns;     /* its latency */
    unsigned op;
};

struct samples
{
    uint64_t *v; /* latencies in ns */
    size_t n;
    size_t cap;
    uint64_t ok;
    uint64_t misses;
    uint64_t errors;
};

struct bench
{
    struct options o;
    struct bench_endpoint *eps; /* the --endpoints list */
    size_t n_eps;
    struct bench_endpoint leader;
    struct bench_endpoint stale;
    int epfd;
    struct client *clients;
    enum phase phase;
    uint64_t rng;
    unsigned mix_total;
    char *values[VALUE_POOL];
    char *values_b64[VALUE_POOL];
    size_t key_width;
    /* preload */
    uint64_t preload_next;
    uint64_t preload_done;
    uint64_t preload_errors;
    int64_t preload_start;
    int64_t preload_end;
    /* measurement */
    int64_t warmup_start;
    int64_t measure_start;
    int64_t measure_end;
    int64_t drain_start;
    uint64_t measured;
    struct samples s[OP_N];
    struct trace_rec *trace; /* --trace: every measured answer, in order */
    size_t trace_n;
    size_t trace_cap;
    unsigned errors_shown;
    unsigned leader_notes;
    struct bench_endpoint lost_leader; /* the leader whose connection broke last */
    int64_t lost_at;
    uint64_t reconnects;
    struct buf scratch;
};

/* Helpers */

static void note_error(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_error(struct bench *b, const char *fmt, ...)
{
    va_list ap;
    if (b->errors_shown >= ERRORS_SHOWN) {
        return;
    }
    b->errors_shown++;
    fputs("cairn-bench: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (b->errors_shown == ERRORS_SHOWN) {
        fputs(" (further errors are counted, not shown)", stderr);
    }
    fputc('\n', stderr);
}

static void note_leader(struct bench *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note_leader(struct bench *b, const char *fmt, ...)
{
    va_list ap;
    if (b->leader_notes >= ERRORS_SHOWN) {
        return;
    }
    b->leader_notes++;
    fputs("cairn-bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static uint64_t rand_next(struct bench *b)
{
    /* xorshift64* */
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * 0x2545f4914f6cdd1dull;
}

static void format_key(const struct bench *b, uint64_t i, char *out, size_t cap)
{
    snprintf(out, cap, "bench/%0*" PRIu64, (int)b->key_width, i);
}

/* Options */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: cairn-bench [options]\n"
            "\n"
            "Drives a running cluster with N concurrent closed-loop clients and reports\n"
            "per-operation throughput and latency percentiles.\n"
            "\n"
            "  --endpoints H:P,...     cluster endpoints [default: %s]\n"
            "                          (etcd: its client URLs' host:port)\n"
            "  --clients N             concurrent clients, one request in flight each [64]\n"
            "  --duration S            measure for S seconds [10]\n"
            "  --requests N            measure N requests instead of a duration\n"
            "  --warmup S              load that runs first and is not recorded [2]\n"
            "  --rate R                offer R operations/s in all, spread over the clients,\n"
            "                          instead of a closed loop (latency is still taken from\n"
            "                          each request's send; a late client sends at once)\n"
            "  --mix put=P,get=G,stale=S,ryw=R  percentages of each operation [put=20,get=80]\n"
            "                          (get: linearizable, at the leader; stale: a stale get,\n"
            "                          for etcd a serializable range, at the stale endpoint;\n"
            "                          ryw: a put at the leader, then a get of that key at the\n"
            "                          stale endpoint with min_revision = the put's revision,\n"
            "                          Cairn only; its get is reported as ryw, its put as put)\n"
            "  --keys K                key space: bench/N for N < K, zero-padded [10000]\n"
            "  --value-size B          value bytes of every put [100]\n"
            "  --preload               write every key once before the warm-up\n"
            "  --memory-load           only load: write every key once (default 100000 keys\n"
            "                          of 1024 bytes), wait until every node has applied it,\n"
            "                          report and exit (the memory test's load)\n"
            "  --stale-endpoint H:P    where stale gets go [a follower]\n"
            "  --target cairn|etcd     protocol to speak [cairn]; etcd: v3 HTTP/JSON gateway\n"
            "  --timeout-ms MS         a request unanswered this long is an error [10000]\n"
            "  --seed N                random seed [fixed]\n"
            "  --json                  print the results as JSON\n"
            "  --trace FILE            also write every measured answer to FILE, a line\n"
            "                          each: its start (CLOCK_MONOTONIC ns), its latency\n"
            "                          (ns) and its operation, so that requests can be\n"
            "                          sorted by what else was happening when they ran\n"
            "  --help                  this text\n"
            "\n"
            "With --preload and --duration 0 only the preload runs.\n",
            CAIRN_DEFAULT_ENDPOINTS);
}

static void parse_mix(struct options *o, const char *spec)
{
    char copy[256];
    char *save = NULL;
    char *item;
    unsigned total = 0;
    int i;
    if (strlen(spec) >= sizeof(copy)) {
        bench_bad_usage("--mix: too long");
    }
    snprintf(copy, sizeof(copy), "%s", spec);
    memset(o->mix, 0, sizeof(o->mix));
    for (item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        bool found = false;
        if (eq == NULL) {
            bench_bad_usage("--mix: \"%s\" is not NAME=PERCENT (names: put, get, stale, ryw)",
                            item);
        }
        *eq = '\0';
        for (i = 0; i < OP_N; i++) {
            if (strcmp(item, op_names[i]) == 0) {
                uint64_t v = bench_parse_u64("--mix", eq + 1, 0, UINT64_MAX);
                if (v > 100) {
                    bench_bad_usage("--mix: %s=%" PRIu64 " is over 100", item, v);
                }
                o->mix[i] = (unsigned)v;
                found = true;
            }
        }
        if (!found) {
            bench_bad_usage("--mix: unknown operation \"%s\" (names: put, get, stale, ryw)", item);
        }
    }
    for (i = 0; i < OP_N; i++) {
        total += o->mix[i];
    }
    if (total != 100) {
        bench_bad_usage("--mix: percentages add up to %u, not 100", total);
    }
}

static void parse_options(struct options *o, int argc, char **argv)
{
    enum {
        O_ENDPOINTS = 256,
        O_CLIENTS,
        O_DURATION,
        O_REQUESTS,
        O_WARMUP,
        O_MIX,
        O_KEYS,
        O_VALUE_SIZE,
        O_PRELOAD,
        O_MEMORY_LOAD,
        O_STALE_ENDPOINT,
        O_JSON,
        O_TRACE,
        O_TARGET,
        O_TIMEOUT,
        O_SEED,
        O_RATE,
        O_HELP,
    };
    static const struct option longs[] = {
        {"endpoints", required_argument, NULL, O_ENDPOINTS},
        {"clients", required_argument, NULL, O_CLIENTS},
        {"duration", required_argument, NULL, O_DURATION},
        {"requests", required_argument, NULL, O_REQUESTS},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"mix", required_argument, NULL, O_MIX},
        {"keys", required_argument, NULL, O_KEYS},
        {"value-size", required_argument, NULL, O_VALUE_SIZE},
        {"preload", no_argument, NULL, O_PRELOAD},
        {"memory-load", no_argument, NULL, O_MEMORY_LOAD},
        {"stale-endpoint", required_argument, NULL, O_STALE_ENDPOINT},
        {"json", no_argument, NULL, O_JSON},
        {"trace", required_argument, NULL, O_TRACE},
        {"target", required_argument, NULL, O_TARGET},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"seed", required_argument, NULL, O_SEED},
        {"rate", required_argument, NULL, O_RATE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int c;
    memset(o, 0, sizeof(*o));
    o->endpoints = getenv("CAIRN_ENDPOINTS");
    if (o->endpoints == NULL || o->endpoints[0] == '\0') {
        o->endpoints = CAIRN_DEFAULT_ENDPOINTS;
    }
    o->clients = 64;
    o->duration_s = 10;
    o->warmup_s = 2;
    o->mix[OP_PUT] = 20;
    o->mix[OP_GET] = 80;
    o->keys = 10000;
    o->value_size = 100;
    o->timeout_ms = 10000;
    o->seed = 0x5eed5eed12345678ull;
    o->target = BENCH_TARGET_CAIRN;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case O_ENDPOINTS:
                o->endpoints = optarg;
                break;
            case O_CLIENTS: {
                uint64_t v = bench_parse_u64("--clients", optarg, 0, UINT64_MAX);
                if (v < 1 || v > 100000) {
                    bench_bad_usage("--clients: must be 1..100000");
                }
                o->clients = (int)v;
                break;
            }
            case O_DURATION:
                o->duration_s = bench_parse_double("--duration", optarg);
                o->duration_set = true;
                break;
            case O_REQUESTS:
                o->requests = bench_parse_u64("--requests", optarg, 0, UINT64_MAX);
                o->requests_set = true;
                break;
            case O_WARMUP:
                o->warmup_s = bench_parse_double("--warmup", optarg);
                break;
            case O_MIX:
                parse_mix(o, optarg);
                break;
            case O_KEYS:
                o->keys = bench_parse_u64("--keys", optarg, 0, UINT64_MAX);
                if (o->keys == 0) {
                    bench_bad_usage("--keys: must be at least 1");
                }
                o->keys_set = true;
                break;
            case O_VALUE_SIZE:
                o->value_size = (size_t)bench_parse_u64("--value-size", optarg, 0, UINT64_MAX);
                if (o->value_size > 64u * 1024 * 1024) {
                    bench_bad_usage("--value-size: at most 64 MiB");
                }
                o->value_size_set = true;
                break;
            case O_PRELOAD:
                o->preload = true;
                break;
            case O_RATE:
                o->rate = bench_parse_double("--rate", optarg);
                if (!(o->rate > 0)) {
                    bench_bad_usage("--rate: must be more than 0 operations per second");
                }
                break;
            case O_MEMORY_LOAD:
                o->memory_load = true;
                break;
            case O_STALE_ENDPOINT:
                o->stale_endpoint = optarg;
                break;
            case O_JSON:
                o->json = true;
                break;
            case O_TRACE:
                o->trace = optarg;
                break;
            case O_TARGET:
                o->target = bench_parse_target("--target", optarg);
                break;
            case O_TIMEOUT: {
                uint64_t v = bench_parse_u64("--timeout-ms", optarg, 0, UINT64_MAX);
                if (v < 1 || v > 3600000) {
                    bench_bad_usage("--timeout-ms: must be 1..3600000");
                }
                o->timeout_ms = (int)v;
                break;
            }
            case O_SEED:
                o->seed = bench_parse_u64("--seed", optarg, 0, UINT64_MAX);
                if (o->seed == 0) {
                    o->seed = 1;
                }
                break;
            case O_HELP:
                usage(stdout);
                exit(0);
            default:
                fprintf(stderr, "cairn-bench: unknown option or missing argument: %s\n",
                        argv[optind - 1]);
                usage(stderr);
                exit(2);
        }
    }
    if (optind < argc) {
        bench_bad_usage("unexpected argument \"%s\"", argv[optind]);
    }
    if (o->duration_set && o->requests_set) {
        bench_bad_usage("give --duration or --requests, not both");
    }
    if (o->mix[OP_RYW] > 0 && o->target != BENCH_TARGET_CAIRN) {
        bench_bad_usage("--mix: ryw needs Cairn's min_revision (--target cairn)");
    }
    if (o->memory_load) {
        o->preload = true;
        if (!o->keys_set) {
            o->keys = 100000;
        }
        if (!o->value_size_set) {
            o->value_size = 1024;
        }
    }
}

/* Connections */

static void conn_set_events(struct bench *b, struct conn *c, uint32_t events)
{
    struct epoll_event ev;
    if (c->events == events) {
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        bench_die("epoll_ctl: %s", strerror(errno));
    }
    c->events = events;
}

static void conn_connect(struct bench *b, struct conn *c)
{
    struct epoll_event ev;
    int rv;
    c->fd = socket(c->ep.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        bench_die("socket: %s", strerror(errno));
    }
    rv = connect(c->fd, (const struct sockaddr *)&c->ep.addr, c->ep.addr_len);
    if (rv != 0 && errno != EINPROGRESS) {
        note_error(b, "connect to %s: %s", c->ep.name, strerror(errno));
        close(c->fd);
        c->fd = -1;
        c->state = CONN_DOWN;
        c->retry_at = bench_mono_ns() + RECONNECT_DELAY_NS;
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLOUT;
    ev.data.ptr = c;
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        bench_die("epoll_ctl: %s", strerror(errno));
    }
    c->events = EPOLLOUT;
    c->state = CONN_CONNECTING;
    c->out.len = 0;
    c->out_off = 0;
    c->in.len = 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        close(c->fd); /* also leaves the epoll set */
    }
    c->fd = -1;
    c->state = CONN_DOWN;
    c->events = 0;
    c->out.len = 0;
    c->out_off = 0;
    c->in.len = 0;
}

static void finish(struct bench *b, struct client *cl, enum outcome out, int64_t now);

/* A connection broke: the request on it (if any) failed. */
static void conn_fail(struct bench *b, struct conn *c, const char *why)
{
    struct client *cl = c->cl;
    int64_t now = bench_mono_ns();
    note_error(b, "connection to %s: %s", c->ep.name, why);
    if (c == &cl->conns[0] && strcmp(c->ep.name, b->leader.name) == 0 && b->n_eps > 1) {
        /* The leader may be gone: ask the next node, which answers "not the
         * leader" with the new leader's address once one is elected. */
        size_t i;
        for (i = 0; i < b->n_eps; i++) {
            if (strcmp(b->eps[i].name, b->leader.name) == 0) {
                break;
            }
        }
        b->lost_leader = b->leader;
        b->lost_at = now;
        b->leader = b->eps[(i + 1) % b->n_eps];
        note_leader(b, "lost the leader %s; trying %s", c->ep.name, b->leader.name);
    }
    conn_close(c);
    c->retry_at = now + RECONNECT_DELAY_NS;
    b->reconnects++;
    if (cl->busy && &cl->conns[cl->conn_i] == c) {
        finish(b, cl, OUT_ERR, now);
    }
}

/* Write what is pending. */
static void conn_flush(struct bench *b, struct conn *c)
{
    int rv = bench_flush(c->fd, &c->out, &c->out_off);
    if (rv < 0) {
        conn_fail(b, c, errno == 0 ? "closed" : strerror(errno));
        return;
    }
    conn_set_events(b, c, rv == 0 ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* Requests */

static void encode_cairn(struct bench *b, struct client *cl, struct buf *out)
{
    char key[64];
    struct proto_request req;
    format_key(b, cl->key, key, sizeof(key));
    memset(&req, 0, sizeof(req));
    req.id = cl->id;
    req.op.key.ptr = key;
    req.op.key.len = (uint32_t)strlen(key);
    req.op.value.ptr = "";
    req.op.after.ptr = "";
    if (cl->op == OP_PUT) {
        req.type = PROTO_PUT;
        req.op.type = CAIRN_OP_PUT;
        req.op.value.ptr = b->values[cl->key % VALUE_POOL];
        req.op.value.len = (uint32_t)b->o.value_size;
    } else {
        req.type = PROTO_GET;
        req.op.type = CAIRN_OP_GET;
        req.op.stale = cl->op == OP_STALE || cl->op == OP_RYW;
        req.min_revision = cl->op == OP_RYW ? cl->min_revision : 0;
    }
    if (proto_encode_request(out, &req) != 0) {
        bench_die("out of memory");
    }
}

static void encode_etcd(struct bench *b, struct client *cl, const struct bench_endpoint *ep,
                        struct buf *out)
{
    char key[64];
    char key64[96];
    const char *path;
    size_t body_len;
    format_key(b, cl->key, key, sizeof(key));
    bench_b64_encode((const unsigned char *)key, strlen(key), key64);
    if (cl->op == OP_PUT) {
        const char *v64 = b->values_b64[cl->key % VALUE_POOL];
        path = "/v3/kv/put";
        body_len = strlen("{\"key\":\"\",\"value\":\"\"}") + strlen(key64) + strlen(v64);
        bench_xprintf(out,
                      "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n{\"key\":\"%s\",\"value\":\"%s\"}",
                      path, ep->name, body_len, key64, v64);
    } else {
        const char *extra = cl->op == OP_STALE ? ",\"serializable\":true" : "";
        path = "/v3/kv/range";
        body_len = strlen("{\"key\":\"\"}") + strlen(key64) + strlen(extra);
        bench_xprintf(out,
                      "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n{\"key\":\"%s\"%s}",
                      path, ep->name, body_len, key64, extra);
    }
}

static bool may_issue(const struct bench *b)
{
    if (b->phase == PH_PRELOAD) {
        return b->preload_next < b->o.keys;
    }
    return b->phase == PH_WARMUP || b->phase == PH_MEASURE;
}

/* Hand the chosen request to its connection, connecting first if needed. */
static void client_send(struct bench *b, struct client *cl, int64_t now)
{
    struct conn *c = &cl->conns[cl->conn_i];
    const struct bench_endpoint *want = cl->conn_i == 0 ? &b->leader : &b->stale;
    if (strcmp(c->ep.name, want->name) != 0) {
        conn_close(c); /* the leader moved */
        c->ep = *want;
    }
    if (c->state == CONN_DOWN) {
        if (now >= c->retry_at) {
            conn_connect(b, c);
        }
        return; /* sent once connected (or retried by the scan) */
    }
    if (c->state == CONN_CONNECTING) {
        return;
    }
    cl->sent = true;
    if (b->o.target == BENCH_TARGET_CAIRN) {
        encode_cairn(b, cl, &c->out);
    } else {
        encode_etcd(b, cl, &c->ep, &c->out);
    }
    conn_flush(b, c);
}

static void client_next(struct bench *b, struct client *cl, int64_t now)
{
    if (cl->busy || !may_issue(b) || now < cl->not_before) {
        return;
    }
    if (b->o.rate > 0 && b->phase != PH_PRELOAD) {
        /* Each client is due every clients/rate seconds, the clients spread
         * evenly over that spacing. A client whose answer came late sends
         * at once (so the offered rate holds while answers keep up), but
         * never makes up more than one spacing of lost time. */
        int64_t spacing = (int64_t)((double)b->o.clients * NS_PER_S / b->o.rate);
        if (cl->next_due == 0) {
            cl->next_due = now + (int64_t)((double)(cl - b->clients) * NS_PER_S / b->o.rate);
        }
        if (now < cl->next_due) {
            return;
        }
        cl->next_due = cl->next_due + spacing < now - spacing ? now : cl->next_due + spacing;
    }
    cl->busy = true;
    cl->sent = false;
    cl->id++;
    cl->started = now;
    if (b->phase == PH_PRELOAD) {
        cl->preload = true;
        cl->op = OP_PUT;
        cl->key = b->preload_next++;
    } else {
        unsigned r = (unsigned)(rand_next(b) % b->mix_total);
        int i;
        cl->preload = false;
        for (i = 0; i < OP_N; i++) {
            if (r < b->o.mix[i]) {
                break;
            }
            r -= b->o.mix[i];
        }
        cl->op = (enum op_kind)(i < OP_N ? i : OP_N - 1);
        cl->key = rand_next(b) % b->o.keys;
        if (cl->op == OP_RYW) {
            cl->op = OP_PUT; /* the get follows its answer (read_cairn) */
            cl->ryw_put = true;
        }
    }
    cl->conn_i = cl->op == OP_STALE ? 1 : 0;
    client_send(b, cl, now);
}

/* The second half of OP_RYW: read the key just written, at the stale
 * endpoint, once it has applied revision rev. */
static void client_next_ryw(struct bench *b, struct client *cl, uint64_t rev, int64_t now)
{
    if (!may_issue(b)) {
        return;
    }
    cl->busy = true;
    cl->sent = false;
    cl->id++;
    cl->started = now;
    cl->preload = false;
    cl->op = OP_RYW;
    cl->min_revision = rev;
    cl->conn_i = 1;
    client_send(b, cl, now);
}

static void samples_add(struct samples *s, uint64_t ns)
{
    if (s->n == s->cap) {
        size_t cap = s->cap == 0 ? 65536 : s->cap * 2;
        uint64_t *v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL) {
            bench_die("out of memory");
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = ns;
}

static void trace_add(struct bench *b, const struct client *cl, int64_t now)
{
    if (b->trace_n == b->trace_cap) {
        size_t cap = b->trace_cap == 0 ? 65536 : b->trace_cap * 2;
        struct trace_rec *v = realloc(b->trace, cap * sizeof(*v));
        if (v == NULL) {
            bench_die("out of memory");
        }
        b->trace = v;
        b->trace_cap = cap;
    }
    b->trace[b->trace_n++] = (struct trace_rec){
        .started = cl->started, .ns = (uint64_t)(now - cl->started), .op = cl->op};
}

static void trace_write(const struct bench *b)
{
    FILE *f = fopen(b->o.trace, "w");
    if (f == NULL) {
        bench_die("--trace %s: %s", b->o.trace, strerror(errno));
    }
    for (size_t i = 0; i < b->trace_n; i++) {
        fprintf(f, "%" PRId64 " %" PRIu64 " %s\n", b->trace[i].started, b->trace[i].ns,
                op_names[b->trace[i].op]);
    }
    if (fclose(f) != 0) {
        bench_die("--trace %s: %s", b->o.trace, strerror(errno));
    }
}

/* The request of cl got its answer (or failed) at time now. */
static void finish(struct bench *b, struct client *cl, enum outcome out, int64_t now)
{
    cl->busy = false;
    cl->sent = false;
    cl->ryw_put = false;
    if (out == OUT_ERR) {
        cl->not_before = now + ERROR_PAUSE_NS;
    }
    if (cl->preload) {
        b->preload_done++;
        if (out == OUT_ERR) {
            b->preload_errors++;
        }
    } else if (b->phase == PH_MEASURE && now <= b->measure_end &&
               !(b->o.requests_set && b->measured >= b->o.requests)) {
        struct samples *s = &b->s[cl->op];
        if (out == OUT_ERR) {
            s->errors++;
        } else {
            s->ok += out == OUT_OK;
            s->misses += out == OUT_MISS;
            samples_add(s, (uint64_t)(now - cl->started));
            if (b->o.trace != NULL) {
                trace_add(b, cl, now);
            }
        }
        b->measured++;
        if (b->o.requests_set && b->measured >= b->o.requests) {
            b->measure_end = now;
        }
    }
}

/* Answers */

/* Cairn: every whole frame in c->in. */
static void read_cairn(struct bench *b, struct conn *c, int64_t now)
{
    struct client *cl = c->cl;
    size_t off = 0;
    for (;;) {
        size_t payload_len = 0;
        struct proto_response resp;
        enum outcome out;
        uint64_t ryw_rev = 0; /* > 0: a ryw put succeeded, its get follows */
        int rv =
            proto_frame_peek(c->in.data + off, c->in.len - off, PROTO_FRAME_SIZE_MAX, &payload_len);
        if (rv == 0) {
            break;
        }
        if (rv < 0) {
            conn_fail(b, c, "frame too large");
            return;
        }
        rv = proto_decode_response(c->in.data + off + PROTO_FRAME_HEADER_SIZE, payload_len, &resp);
        off += PROTO_FRAME_HEADER_SIZE + payload_len;
        if (rv != 0) {
            conn_fail(b, c, "a response does not decode");
            return;
        }
        if (!cl->busy || &cl->conns[cl->conn_i] != c || resp.id != cl->id) {
            proto_response_free(&resp);
            conn_fail(b, c, "an answer to no request in flight");
            return;
        }
        if (resp.code == 0) {
            out = OUT_OK;
            if (cl->op != OP_PUT && (resp.result == NULL || resp.result->n_ops == 0 ||
                                     resp.result->ops[0].n_kvs == 0)) {
                out = OUT_MISS;
            }
        } else if (resp.code == CAIRN_ENOTFOUND) {
            out = OUT_MISS;
        } else {
            out = OUT_ERR;
            note_error(b, "%s %s: %s%s%s", c->ep.name, op_names[cl->op], cairn_errname(resp.code),
                       resp.message[0] != '\0' ? ": " : "", resp.message);
            /* Follow a redirect, unless it names the leader just lost (a
             * follower names it until the next election). */
            if (resp.code == CAIRN_ENOTLEADER && resp.leader[0] != '\0' &&
                strcmp(resp.leader, b->leader.name) != 0 &&
                (strcmp(resp.leader, b->lost_leader.name) != 0 ||
                 now - b->lost_at > LOST_LEADER_IGNORE_NS)) {
                struct bench_endpoint ep;
                if (bench_resolve(resp.leader, &ep) == 0) {
                    note_leader(b, "the leader is now %s", resp.leader);
                    b->leader = ep;
                }
            }
        }
        if (cl->ryw_put && out == OUT_OK && resp.result != NULL) {
            ryw_rev = resp.result->revision;
        }
        proto_response_free(&resp);
        finish(b, cl, out, now);
        if (ryw_rev > 0) {
            client_next_ryw(b, cl, ryw_rev, now);
        } else {
            client_next(b, cl, now);
        }
        if (c->state != CONN_UP) {
            return; /* closed meanwhile (a send failed, or the leader moved) */
        }
    }
    buf_consume(&c->in, off);
}

static void read_etcd(struct bench *b, struct conn *c, int64_t now)
{
    struct client *cl = c->cl;
    size_t off = 0;
    for (;;) {
        int status = 0;
        const char *body = NULL;
        size_t body_len = 0;
        size_t consumed = 0;
        bool close_after = false;
        enum outcome out;
        int rv = bench_http_parse(c->in.data + off, c->in.len - off, &b->scratch, &status, &body,
                                  &body_len, &consumed, &close_after);
        if (rv == 0) {
            break;
        }
        if (rv < 0) {
            conn_fail(b, c, "malformed HTTP response");
            return;
        }
        off += consumed;
        if (!cl->busy || &cl->conns[cl->conn_i] != c) {
            conn_fail(b, c, "an answer to no request in flight");
            return;
        }
        if (status == 200) {
            out = OUT_OK;
            if (cl->op != OP_PUT && memmem(body, body_len, "\"kvs\"", 5) == NULL) {
                out = OUT_MISS;
            }
        } else {
            out = OUT_ERR;
            note_error(b, "%s %s: HTTP %d: %.*s", c->ep.name, op_names[cl->op], status,
                       (int)(body_len > 200 ? 200 : body_len), body);
        }
        finish(b, cl, out, now);
        if (close_after) {
            conn_close(c);
            c->retry_at = 0;
            client_next(b, cl, now);
            return;
        }
        client_next(b, cl, now);
        if (c->state != CONN_UP) {
            return; /* closed meanwhile (a send failed) */
        }
    }
    buf_consume(&c->in, off);
}

static void conn_readable(struct bench *b, struct conn *c)
{
    int64_t now;
    for (;;) {
        ssize_t n;
        if (buf_reserve(&c->in, 65536) != 0) {
            bench_die("out of memory");
        }
        n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
        if (n > 0) {
            bool drained = (size_t)n < c->in.cap - c->in.len;
            c->in.len += (size_t)n;
            if (drained) {
                break; /* a short read: nothing more waits */
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        conn_fail(b, c, n == 0 ? "closed by the server" : strerror(errno));
        return;
    }
    now = bench_mono_ns();
    if (b->o.target == BENCH_TARGET_CAIRN) {
        read_cairn(b, c, now);
    } else {
        read_etcd(b, c, now);
    }
}

static void conn_event(struct bench *b, struct conn *c, uint32_t events)
{
    struct client *cl = c->cl;
    if (c->state == CONN_CONNECTING) {
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        int one = 1;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        if (soerr != 0 || (events & (EPOLLERR | EPOLLHUP)) != 0) {
            conn_fail(b, c, soerr != 0 ? strerror(soerr) : "connect failed");
            return;
        }
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->state = CONN_UP;
        conn_set_events(b, c, EPOLLIN);
        if (cl->busy && !cl->sent && &cl->conns[cl->conn_i] == c) {
            client_send(b, cl, bench_mono_ns());
        }
        return;
    }
    if (c->state != CONN_UP) {
        return;
    }
    if ((events & EPOLLOUT) != 0) {
        conn_flush(b, c);
        if (c->state != CONN_UP) {
            return;
        }
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
        conn_readable(b, c);
    }
}

/* Periodic work: phase changes, timeouts, reconnects, idle clients. */
static void scan(struct bench *b, int64_t now)
{
    int i;
    int busy = 0;
    int64_t timeout = (int64_t)b->o.timeout_ms * NS_PER_MS;
    if (b->phase == PH_PRELOAD && b->preload_done >= b->o.keys) {
        b->preload_end = now;
        if (b->o.memory_load || (b->o.duration_set && b->o.duration_s == 0) ||
            (b->o.requests_set && b->o.requests == 0)) {
            b->phase = PH_DONE;
            return;
        }
        b->phase = PH_WARMUP;
        b->warmup_start = now;
    }
    if (b->phase == PH_WARMUP && now - b->warmup_start >= (int64_t)(b->o.warmup_s * NS_PER_S)) {
        b->phase = PH_MEASURE;
        b->measure_start = now;
        b->measure_end =
            b->o.requests_set ? INT64_MAX : now + (int64_t)(b->o.duration_s * NS_PER_S);
    }
    if (b->phase == PH_MEASURE && now > b->measure_end) {
        b->phase = PH_DRAIN;
        b->drain_start = now;
    }
    for (i = 0; i < b->o.clients; i++) {
        struct client *cl = &b->clients[i];
        if (cl->busy && now - cl->started > timeout) {
            struct conn *c = &cl->conns[cl->conn_i];
            note_error(b, "%s %s: no answer in %d ms", c->ep.name[0] != '\0' ? c->ep.name : "?",
                       op_names[cl->op], b->o.timeout_ms);
            if (c->state != CONN_DOWN) {
                conn_close(c);
                c->retry_at = now + RECONNECT_DELAY_NS;
            }
            finish(b, cl, OUT_ERR, now);
        }
        if (cl->busy && !cl->sent) {
            client_send(b, cl, now);
        }
        if (!cl->busy) {
            client_next(b, cl, now);
        }
        busy += cl->busy;
    }
    if (b->phase == PH_DRAIN && (busy == 0 || now - b->drain_start > DRAIN_MAX_NS)) {
        b->phase = PH_DONE;
    }
}

static void run(struct bench *b)
{
    struct epoll_event evs[256];
    int64_t next_scan = 0;
    while (b->phase != PH_DONE) {
        int n = epoll_wait(b->epfd, evs, 256, b->o.rate > 0 ? 1 : 2);
        int i;
        int64_t now;
        if (n < 0 && errno != EINTR) {
            bench_die("epoll_wait: %s", strerror(errno));
        }
        for (i = 0; i < n; i++) {
            conn_event(b, evs[i].data.ptr, evs[i].events);
        }
        now = bench_mono_ns();
        /* With --rate the scan starts requests when they are due. */
        if (now >= next_scan || n <= 0) {
            scan(b, now);
            next_scan = now + (b->o.rate > 0 ? 0 : SCAN_EVERY_NS);
        }
    }
}

/* Discovery and status, with blocking calls before the load starts */

struct node_status
{
    bool ok;
    bool leader;
    uint64_t commit;  /* etcd: raftIndex */
    uint64_t applied; /* etcd: raftAppliedIndex */
    char leader_addr[BENCH_ENDPOINT_MAX];
};

static void node_status(struct bench *b, cairn_client *c, const struct bench_endpoint *ep,
                        struct node_status *ns, bool quiet)
{
    memset(ns, 0, sizeof(*ns));
    if (b->o.target == BENCH_TARGET_CAIRN) {
        struct cairn_status *st = NULL;
        if (cairn_status(c, ep->name, &st) != 0) {
            if (!quiet) {
                fprintf(stderr, "cairn-bench: status of %s: %s\n", ep->name, cairn_errmsg(c));
            }
            return;
        }
        ns->ok = true;
        ns->leader = strcmp(st->state, "leader") == 0;
        ns->commit = st->commit_index;
        ns->applied = st->applied_index;
        snprintf(ns->leader_addr, sizeof(ns->leader_addr), "%s", st->leader_address);
        cairn_status_free(st);
    } else {
        struct buf out;
        char err[512];
        uint64_t member = 0;
        uint64_t leader = 0;
        buf_init(&out);
        if (bench_http_post(ep, "/v3/maintenance/status", "{}", &out, err, sizeof(err)) != 0) {
            if (!quiet) {
                fprintf(stderr, "cairn-bench: status of %s: %s\n", ep->name, err);
            }
            buf_free(&out);
            return;
        }
        if (bench_json_u64(out.data, "member_id", &member) &&
            bench_json_u64(out.data, "leader", &leader)) {
            ns->ok = true;
            ns->leader = member != 0 && member == leader;
            bench_json_u64(out.data, "raftIndex", &ns->commit);
            if (!bench_json_u64(out.data, "raftAppliedIndex", &ns->applied)) {
                ns->applied = ns->commit;
            }
        } else if (!quiet) {
            fprintf(stderr, "cairn-bench: status of %s: unexpected answer: %.200s\n", ep->name,
                    out.data);
        }
        buf_free(&out);
    }
}

/* Find the leader (and a follower for stale reads) among the endpoints. */
/* What discover_status_cb needs. */
struct discover_ctx
{
    struct bench *b;  /* borrowed */
    cairn_client *cc; /* borrowed */
};

static bool discover_status_cb(const struct bench_endpoint *ep, void *arg, bool *leader,
                               char *leader_addr, size_t cap)
{
    struct discover_ctx *ctx = arg;
    struct node_status ns;
    node_status(ctx->b, ctx->cc, ep, &ns, true);
    *leader = ns.leader;
    snprintf(leader_addr, cap, "%s", ns.leader_addr);
    return ns.ok;
}

static void discover(struct bench *b, cairn_client *c)
{
    struct discover_ctx ctx = {b, c};
    size_t i;
    if (!bench_find_leader(b->eps, b->n_eps, discover_status_cb, &ctx, 20 * NS_PER_S, &b->leader)) {
        /* Ask once more, aloud, so that the user sees why. */
        for (i = 0; i < b->n_eps; i++) {
            struct node_status ns;
            node_status(b, c, &b->eps[i], &ns, false);
        }
        bench_die("no leader found among %s", b->o.endpoints);
    }
    if (b->o.stale_endpoint != NULL) {
        if (bench_resolve(b->o.stale_endpoint, &b->stale) != 0) {
            exit(2);
        }
        return;
    }
    /* A single node is its own follower. */
    b->stale = *bench_follower(b->eps, b->n_eps, &b->leader);
}

/* After a load: wait until every node applied what the leader committed. */
static bool wait_applied(struct bench *b, cairn_client *c, double *waited_s)
{
    struct node_status ls;
    int64_t start = bench_mono_ns();
    int64_t deadline = start + 60 * NS_PER_S;
    size_t i;
    node_status(b, c, &b->leader, &ls, false);
    if (!ls.ok) {
        return false;
    }
    for (;;) {
        bool all = true;
        for (i = 0; i < b->n_eps; i++) {
            struct node_status ns;
            node_status(b, c, &b->eps[i], &ns, true);
            all &= ns.ok && ns.applied >= ls.commit;
        }
        if (all) {
            *waited_s = (double)(bench_mono_ns() - start) / NS_PER_S;
            return true;
        }
        if (bench_mono_ns() > deadline) {
            *waited_s = (double)(bench_mono_ns() - start) / NS_PER_S;
            return false;
        }
        {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}

/* Results */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Nearest-rank percentile of sorted samples, in ms. */
static double pct_ms(const struct samples *s, double p)
{
    size_t rank;
    if (s->n == 0) {
        return 0;
    }
    rank = (size_t)ceil(p / 100.0 * (double)s->n);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > s->n) {
        rank = s->n;
    }
    return (double)s->v[rank - 1] / NS_PER_MS;
}

static double mean_ms(const struct samples *s)
{
    double sum = 0;
    size_t i;
    for (i = 0; i < s->n; i++) {
        sum += (double)s->v[i];
    }
    return s->n > 0 ? sum / (double)s->n / NS_PER_MS : 0;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            fprintf(f, "\\%c", *s);
        } else if ((unsigned char)*s < 0x20) {
            fprintf(f, "\\u%04x", *s);
        } else {
            fputc(*s, f);
        }
    }
    fputc('"', f);
}

static void report(struct bench *b, bool applied_ok, double applied_wait_s)
{
    double secs = (double)(b->measure_end - b->measure_start) / NS_PER_S;
    double preload_secs = (double)(b->preload_end - b->preload_start) / NS_PER_S;
    bool measured = b->phase == PH_DONE && b->measure_start != 0;
    struct samples all;
    int i;
    memset(&all, 0, sizeof(all));
    if (measured) {
        for (i = 0; i < OP_N; i++) {
            size_t j;
            qsort(b->s[i].v, b->s[i].n, sizeof(uint64_t), cmp_u64);
            for (j = 0; j < b->s[i].n; j++) {
                samples_add(&all, b->s[i].v[j]);
            }
            all.ok += b->s[i].ok;
            all.misses += b->s[i].misses;
            all.errors += b->s[i].errors;
        }
        qsort(all.v, all.n, sizeof(uint64_t), cmp_u64);
    }
    if (b->o.json) {
        FILE *f = stdout;
        fprintf(f, "{\"target\":\"%s\",\"endpoints\":",
                b->o.target == BENCH_TARGET_CAIRN ? "cairn" : "etcd");
        json_str(f, b->o.endpoints);
        fprintf(f, ",\"leader\":");
        json_str(f, b->leader.name);
        fprintf(f, ",\"stale_endpoint\":");
        json_str(f, b->stale.name);
        fprintf(f,
                ",\"clients\":%d,\"keys\":%" PRIu64 ",\"value_size\":%zu,"
                "\"mix\":{\"put\":%u,\"get\":%u,\"stale\":%u,\"ryw\":%u}",
                b->o.clients, b->o.keys, b->o.value_size, b->o.mix[OP_PUT], b->o.mix[OP_GET],
                b->o.mix[OP_STALE], b->o.mix[OP_RYW]);
        if (b->o.preload) {
            fprintf(f,
                    ",\"preload\":{\"keys\":%" PRIu64 ",\"errors\":%" PRIu64
                    ",\"seconds\":%.3f,\"ops_per_s\":%.1f",
                    b->preload_done, b->preload_errors, preload_secs,
                    preload_secs > 0 ? (double)b->preload_done / preload_secs : 0);
            if (b->o.memory_load) {
                fprintf(f, ",\"all_nodes_applied\":%s,\"apply_wait_s\":%.3f",
                        applied_ok ? "true" : "false", applied_wait_s);
            }
            fputc('}', f);
        }
        if (measured) {
            fprintf(f, ",\"warmup_s\":%.3f,\"duration_s\":%.6f,\"reconnects\":%" PRIu64,
                    (double)(b->measure_start - b->warmup_start) / NS_PER_S, secs, b->reconnects);
            bool first = true;
            fprintf(f, ",\"ops\":{");
            for (i = 0; i <= OP_N; i++) {
                const struct samples *s = i < OP_N ? &b->s[i] : &all;
                if (i < OP_N && b->o.mix[i] == 0 && b->s[i].n == 0) {
                    continue; /* (ryw's puts are puts) */
                }
                if (i == OP_N) {
                    fprintf(f, "},\"total\":");
                } else {
                    fprintf(f, "%s\"%s\":", first ? "" : ",", op_names[i]);
                    first = false;
                }
                fprintf(f,
                        "{\"count\":%zu,\"ok\":%" PRIu64 ",\"misses\":%" PRIu64
                        ",\"errors\":%" PRIu64 ",\"ops_per_s\":%.1f,\"mean_ms\":%.3f,"
                        "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f}",
                        s->n, s->ok, s->misses, s->errors, secs > 0 ? (double)s->n / secs : 0,
                        mean_ms(s), pct_ms(s, 50), pct_ms(s, 99), pct_ms(s, 99.9), pct_ms(s, 100));
            }
        }
        fprintf(f, "}\n");
    } else {
        printf("target %s, %d clients, leader %s",
               b->o.target == BENCH_TARGET_CAIRN ? "cairn" : "etcd", b->o.clients, b->leader.name);
        if (b->o.mix[OP_STALE] > 0 || b->o.mix[OP_RYW] > 0) {
            printf(", stale reads at %s", b->stale.name);
        }
        printf(", %" PRIu64 " keys, %zu-byte values\n", b->o.keys, b->o.value_size);
        if (b->o.preload) {
            printf("preload: %" PRIu64 " puts in %.3f s (%.0f/s), %" PRIu64 " errors\n",
                   b->preload_done, preload_secs,
                   preload_secs > 0 ? (double)b->preload_done / preload_secs : 0,
                   b->preload_errors);
            if (b->o.memory_load) {
                printf("every node applied the load: %s (waited %.3f s)\n",
                       applied_ok ? "yes" : "NO", applied_wait_s);
            }
        }
        if (measured) {
            printf("warm-up %.3f s (not recorded); measured %.3f s; %" PRIu64 " reconnects\n",
                   (double)(b->measure_start - b->warmup_start) / NS_PER_S, secs, b->reconnects);
            printf("%-6s %10s %10s %9s %9s %9s %9s %9s %8s %8s\n", "op", "count", "ops/s",
                   "mean ms", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors", "misses");
            for (i = 0; i <= OP_N; i++) {
                const struct samples *s = i < OP_N ? &b->s[i] : &all;
                if (i < OP_N && b->o.mix[i] == 0 && b->s[i].n == 0) {
                    continue; /* (ryw's puts are puts) */
                }
                printf("%-6s %10zu %10.0f %9.3f %9.3f %9.3f %9.3f %9.3f %8" PRIu64 " %8" PRIu64
                       "\n",
                       i < OP_N ? op_names[i] : "total", s->n, secs > 0 ? (double)s->n / secs : 0,
                       mean_ms(s), pct_ms(s, 50), pct_ms(s, 99), pct_ms(s, 99.9), pct_ms(s, 100),
                       s->errors, s->misses);
            }
        }
    }
    free(all.v);
}

/* Main */

int main(int argc, char **argv)
{
    static struct bench bench;
    struct bench *b = &bench;
    cairn_client *cc = NULL;
    bool applied_ok = true;
    double applied_wait = 0;
    int i;
    uint64_t total_ok = 0;

    bench_set_prog("cairn-bench");
    signal(SIGPIPE, SIG_IGN);
    parse_options(&b->o, argc, argv);
    b->rng = b->o.seed;
    b->mix_total = 100;
    buf_init(&b->scratch);
    b->n_eps = bench_parse_endpoints(b->o.endpoints, &b->eps);
    b->key_width = bench_digits(b->o.keys > 1 ? b->o.keys - 1 : 1);
    for (i = 0; i < VALUE_POOL; i++) {
        static const char alnum[] =
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        size_t j;
        b->values[i] = bench_xmalloc(b->o.value_size + 1);
        for (j = 0; j < b->o.value_size; j++) {
            b->values[i][j] = alnum[rand_next(b) % (sizeof(alnum) - 1)];
        }
        b->values[i][b->o.value_size] = '\0';
        if (b->o.target == BENCH_TARGET_ETCD) {
            b->values_b64[i] = bench_xmalloc(bench_b64_len(b->o.value_size) + 1);
            bench_b64_encode((const unsigned char *)b->values[i], b->o.value_size,
                             b->values_b64[i]);
        }
    }
    if (b->o.target == BENCH_TARGET_CAIRN) {
        int err = 0;
        struct cairn_options copts;
        memset(&copts, 0, sizeof(copts));
        copts.timeout_ms = 2000;
        cc = cairn_client_new(b->o.endpoints, &copts, &err);
        if (cc == NULL) {
            bench_bad_usage("--endpoints \"%s\": %s", b->o.endpoints, cairn_strerror(err));
        }
    }
    discover(b, cc);
    if (!b->o.json) {
        fprintf(stderr, "cairn-bench: leader %s, stale endpoint %s\n", b->leader.name,
                b->stale.name);
    }

    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        bench_die("epoll_create1: %s", strerror(errno));
    }
    b->clients = calloc((size_t)b->o.clients, sizeof(*b->clients));
    if (b->clients == NULL) {
        bench_die("out of memory");
    }
    for (i = 0; i < b->o.clients; i++) {
        int j;
        for (j = 0; j < 2; j++) {
            struct conn *c = &b->clients[i].conns[j];
            c->cl = &b->clients[i];
            c->fd = -1;
            buf_init(&c->out);
            buf_init(&c->in);
        }
    }
    {
        int64_t now = bench_mono_ns();
        if (b->o.preload) {
            b->phase = PH_PRELOAD;
            b->preload_start = now;
        } else {
            b->phase = PH_WARMUP;
            b->warmup_start = now;
        }
    }
    run(b);
    if (b->o.memory_load) {
        applied_ok = wait_applied(b, cc, &applied_wait);
    }
    report(b, applied_ok, applied_wait);
    if (b->o.trace != NULL) {
        trace_write(b);
    }
    free(b->trace);
    for (i = 0; i < OP_N; i++) {
        total_ok += b->s[i].n;
        free(b->s[i].v);
    }
    for (i = 0; i < b->o.clients; i++) {
        int j;
        for (j = 0; j < 2; j++) {
            conn_close(&b->clients[i].conns[j]);
            buf_free(&b->clients[i].conns[j].out);
            buf_free(&b->clients[i].conns[j].in);
        }
    }
    free(b->clients);
    for (i = 0; i < VALUE_POOL; i++) {
        free(b->values[i]);
        free(b->values_b64[i]);
    }
    free(b->eps);
    buf_free(&b->scratch);
    close(b->epfd);
    cairn_client_free(cc);
    if (b->o.preload && b->preload_errors > 0) {
        return 1;
    }
    if (b->measure_start != 0 && total_ok == 0) {
        return 1;
    }
    return applied_ok ? 0 : 1;
}
