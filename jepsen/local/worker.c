/*
 * cairn-chaos-worker: the client side of the local fault harness
 * (jepsen/local/run.sh). It drives a Cairn cluster through libcairn and
 * writes a Jepsen history in EDN, one map per line:
 *
 *   {:type :invoke|:ok|:fail|:info, :process P, :f F, :value V, :time NANOS}
 *
 * Workloads (one per process; run.sh starts one worker per workload):
 *
 *   register  keys 0..K-1 are live at a time; each op picks one at random and
 *             reads it (linearizable get), writes it (put) or compares and
 *             swaps its value (a cairn_txn comparing CAIRN_CMP_VALUE: cairn_cas
 *             compares mod_revision, which is not a register CAS). A key takes
 *             at most --ops-per-key invocations, then it is retired and a
 *             fresh key id takes its slot, which keeps every per-key history
 *             small enough for a linearizability search (etcd's test uses
 *             200). Values: [K V], [K [OLD NEW]] for cas, V nil when absent.
 *   set       unique integer adds (one key per element under the prefix),
 *             then a final read of the whole prefix: {:f :read, :value #{...}}.
 *
 * What :fail means. An op is :fail only when it certainly did not happen:
 * a read that returned an error (reads change nothing), a cas whose compare
 * did not hold, and a write that libcairn gave up on before any attempt left
 * without a definite answer (CAIRN_ENOTLEADER, CAIRN_ENOLEADER,
 * CAIRN_ESHUTDOWN, CAIRN_EBUSY, CAIRN_EUNAVAILABLE; cairn.h: libcairn turns a
 * sent write with no answer into CAIRN_EUNKNOWN at once). Every other write
 * error, CAIRN_EUNKNOWN and CAIRN_ETIMEOUT included, is :info: the write may
 * have happened at any point after its invoke, or never. After an :info the
 * thread goes on as a new process (process += threads), as Jepsen does.
 *
 * Time: nanoseconds since --t0-ns, a CLOCK_REALTIME instant chosen by run.sh,
 * which stamps the nemesis events of the same run on the same clock. Lines
 * are written under one mutex with the time taken inside it, so the file is
 * ordered by time.
 *
 * A second mode, --status, prints one line per endpoint for run.sh:
 *   ENDPOINT ID STATE TERM LEADER_ID COMMIT APPLIED REVISION STATE_HASH
 * ("ENDPOINT - down" when a node does not answer).
 */
#include <cairn.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WORKER_THREADS_MAX 64
#define WORKER_KEYS_MAX 1024
#define WORKER_VALUE_MAX 5 /* register values are 0..WORKER_VALUE_MAX-1 */
#define WORKER_KEY_BYTES_MAX 64
#define WORKER_SET_READ_PAGE 1000

enum workload { WORKLOAD_REGISTER, WORKLOAD_SET };

struct config
{
    const char *endpoints;
    const char *out_path;
    enum workload workload;
    int threads;
    double rate;        /* ops per second, all threads together */
    double duration_s;  /* how long to issue ops */
    int keys;           /* register: live keys at a time */
    int ops_per_key;    /* register: invocations before a key retires */
    int timeout_ms;     /* per call */
    int64_t t0_ns;      /* CLOCK_REALTIME origin of :time */
    const char *prefix; /* key prefix, e.g. "jepsen/" */
    unsigned seed;
};

static struct config cfg = {
    .endpoints = NULL,
    .out_path = NULL,
    .workload = WORKLOAD_REGISTER,
    .threads = 5,
    .rate = 100,
    .duration_s = 30,
    .keys = 8,
    .ops_per_key = 200,
    .timeout_ms = 2000,
    .t0_ns = 0,
    .prefix = "jepsen/",
    .seed = 1,
};

static FILE *history;
static pthread_mutex_t history_mu = PTHREAD_MUTEX_INITIALIZER;

/* Register key slots: slot_key[i] is the key id live in slot i, slot_ops[i]
 * how many ops it took so far. */
static pthread_mutex_t keys_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t slot_key[WORKER_KEYS_MAX];
static int slot_ops[WORKER_KEYS_MAX];
static int64_t next_key;

/* Set elements: every add gets the next integer. */
static pthread_mutex_t set_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t next_element;

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Monotonic instant corresponding to t0: history times use the monotonic
 * clock so that a wall-clock step cannot reorder them. */
static int64_t mono_t0;

static void sleep_ns(int64_t ns)
{
    struct timespec ts;
    if (ns <= 0) {
        return;
    }
    ts.tv_sec = ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Append one event; value is already EDN text. */
static void emit(const char *type, int64_t process, const char *f, const char *value)
{
    pthread_mutex_lock(&history_mu);
    int64_t t = mono_ns() - mono_t0;
    fprintf(history, "{:type :%s, :process %" PRId64 ", :f :%s, :value %s, :time %" PRId64 "}\n",
            type, process, f, value, t);
    fflush(history);
    pthread_mutex_unlock(&history_mu);
}

/* Parses a register value; -1 when absent or not a number we wrote. */
static int parse_value(const char *v, size_t len, int64_t *out)
{
    char buf[32];
    char *end;
    if (len == 0 || len >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, v, len);
    buf[len] = '\0';
    *out = strtoll(buf, &end, 10);
    return *end == '\0' ? 0 : -1;
}

static bool write_certainly_failed(int rv)
{
    return rv == CAIRN_ENOTLEADER || rv == CAIRN_ENOLEADER || rv == CAIRN_ESHUTDOWN ||
           rv == CAIRN_EBUSY || rv == CAIRN_EUNAVAILABLE;
}

static int64_t pick_key(unsigned *seed)
{
    int slot = (int)(rand_r(seed) % (unsigned)cfg.keys);
    int64_t k;
    pthread_mutex_lock(&keys_mu);
    if (slot_ops[slot] >= cfg.ops_per_key) {
        slot_key[slot] = next_key++;
        slot_ops[slot] = 0;
    }
    slot_ops[slot]++;
    k = slot_key[slot];
    pthread_mutex_unlock(&keys_mu);
    return k;
}

/* One register op. Returns true when the outcome was :info (new process). */
static bool register_op(cairn_client *c, int64_t process, unsigned *seed)
{
    char key[WORKER_KEY_BYTES_MAX];
    char val[128];
    char nv[16];
    struct cairn_result *r = NULL;
    int64_t k = pick_key(seed);
    int kind = (int)(rand_r(seed) % 3);
    int rv;
    int klen = snprintf(key, sizeof(key), "%sr/%" PRId64, cfg.prefix, k);
    if (kind == 0) {
        snprintf(val, sizeof(val), "[%" PRId64 " nil]", k);
        emit("invoke", process, "read", val);
        rv = cairn_get(c, key, (size_t)klen, NULL, &r);
        if (rv == 0 && r->n_ops > 0 && r->ops[0].n_kvs > 0) {
            int64_t v;
            const struct cairn_kv *kv = &r->ops[0].kvs[0];
            if (parse_value(kv->value, kv->value_len, &v) == 0) {
                snprintf(val, sizeof(val), "[%" PRId64 " %" PRId64 "]", k, v);
            } else {
                snprintf(val, sizeof(val), "[%" PRId64 " :garbage]", k);
            }
            emit("ok", process, "read", val);
        } else if (rv == 0 || rv == CAIRN_ENOTFOUND) {
            snprintf(val, sizeof(val), "[%" PRId64 " nil]", k);
            emit("ok", process, "read", val);
        } else {
            /* A read changes nothing: any error means it did not happen. */
            snprintf(val, sizeof(val), "[%" PRId64 " nil]", k);
            emit("fail", process, "read", val);
        }
        cairn_result_free(r);
        return false;
    }
    if (kind == 1) {
        int v = (int)(rand_r(seed) % WORKER_VALUE_MAX);
        int nlen = snprintf(nv, sizeof(nv), "%d", v);
        snprintf(val, sizeof(val), "[%" PRId64 " %d]", k, v);
        emit("invoke", process, "write", val);
        rv = cairn_put(c, key, (size_t)klen, nv, (size_t)nlen, NULL, NULL);
        if (rv == 0) {
            emit("ok", process, "write", val);
            return false;
        }
        if (write_certainly_failed(rv)) {
            emit("fail", process, "write", val);
            return false;
        }
        emit("info", process, "write", val);
        return true;
    }
    {
        int from = (int)(rand_r(seed) % WORKER_VALUE_MAX);
        int to = (int)(rand_r(seed) % WORKER_VALUE_MAX);
        char ov[16];
        int olen = snprintf(ov, sizeof(ov), "%d", from);
        int nlen = snprintf(nv, sizeof(nv), "%d", to);
        struct cairn_compare cmp = {.key = key,
                                    .key_len = (size_t)klen,
                                    .target = CAIRN_CMP_VALUE,
                                    .op = CAIRN_CMP_EQUAL,
                                    .value = ov,
                                    .value_len = (size_t)olen};
        struct cairn_op put = {.type = CAIRN_OP_PUT,
                               .key = key,
                               .key_len = (size_t)klen,
                               .value = nv,
                               .value_len = (size_t)nlen};
        /* A missing key compares as the empty value, which no "N" equals,
         * so cas on an absent key fails, as it does on a nil register. */
        struct cairn_txn txn = {.compares = &cmp, .n_compares = 1, .then_ops = &put, .n_then = 1};
        snprintf(val, sizeof(val), "[%" PRId64 " [%d %d]]", k, from, to);
        emit("invoke", process, "cas", val);
        rv = cairn_txn(c, &txn, &r);
        if (rv == 0) {
            emit(r->succeeded ? "ok" : "fail", process, "cas", val);
            cairn_result_free(r);
            return false;
        }
        cairn_result_free(r);
        if (write_certainly_failed(rv)) {
            emit("fail", process, "cas", val);
            return false;
        }
        emit("info", process, "cas", val);
        return true;
    }
}

static bool set_add(cairn_client *c, int64_t process)
{
    char key[WORKER_KEY_BYTES_MAX];
    char val[32];
    int64_t e;
    int rv;
    pthread_mutex_lock(&set_mu);
    e = next_element++;
    pthread_mutex_unlock(&set_mu);
    int klen = snprintf(key, sizeof(key), "%ss/%012" PRId64, cfg.prefix, e);
    int vlen = snprintf(val, sizeof(val), "%" PRId64, e);
    emit("invoke", process, "add", val);
    rv = cairn_put(c, key, (size_t)klen, val, (size_t)vlen, NULL, NULL);
    if (rv == 0) {
        emit("ok", process, "add", val);
        return false;
    }
    if (write_certainly_failed(rv)) {
        emit("fail", process, "add", val);
        return false;
    }
    emit("info", process, "add", val);
    return true;
}

/* The final read of the set: every element under the prefix, paged. Retried
 * (as a new invoke each time) until it succeeds or the attempts run out. */
static int set_final_read(cairn_client *c, int64_t process)
{
    char prefix[WORKER_KEY_BYTES_MAX];
    int plen = snprintf(prefix, sizeof(prefix), "%ss/", cfg.prefix);
    for (int attempt = 0; attempt < 30; attempt++) {
        size_t cap = 4096, len = 0;
        char *buf = malloc(cap);
        char after[WORKER_KEY_BYTES_MAX] = "";
        size_t after_len = 0;
        bool more = true;
        int rv = 0;
        if (buf == NULL) {
            return -1;
        }
        emit("invoke", process, "read", "nil");
        len += (size_t)snprintf(buf, cap, "#{");
        while (more) {
            struct cairn_result *r = NULL;
            struct cairn_get_opts o = {.prefix = true,
                                       .limit = WORKER_SET_READ_PAGE,
                                       .after = after_len > 0 ? after : NULL,
                                       .after_len = after_len};
            rv = cairn_get(c, prefix, (size_t)plen, &o, &r);
            if (rv == CAIRN_ENOTFOUND) {
                rv = 0;
                cairn_result_free(r);
                break;
            }
            if (rv != 0) {
                cairn_result_free(r);
                break;
            }
            more = r->ops[0].more;
            for (size_t i = 0; i < r->ops[0].n_kvs; i++) {
                const struct cairn_kv *kv = &r->ops[0].kvs[i];
                if (len + kv->value_len + 4 >= cap) {
                    char *nb;
                    cap = cap * 2 + kv->value_len;
                    nb = realloc(buf, cap);
                    if (nb == NULL) {
                        free(buf);
                        return -1;
                    }
                    buf = nb;
                }
                len += (size_t)snprintf(buf + len, cap - len, "%s%.*s", len > 2 ? " " : "",
                                        (int)kv->value_len, kv->value);
                if (i + 1 == r->ops[0].n_kvs && kv->key_len < sizeof(after)) {
                    memcpy(after, kv->key, kv->key_len);
                    after_len = kv->key_len;
                }
            }
            cairn_result_free(r);
        }
        if (rv == 0) {
            snprintf(buf + len, cap - len, "}");
            emit("ok", process, "read", buf);
            free(buf);
            return 0;
        }
        emit("fail", process, "read", "nil");
        free(buf);
        sleep_ns(1000000000);
    }
    return -1;
}

struct thread_arg
{
    int index;
    pthread_t tid;
};

static void *worker_main(void *argp)
{
    struct thread_arg *a = argp;
    struct cairn_options o = {.timeout_ms = cfg.timeout_ms,
                              .connect_timeout_ms = 500,
                              .backoff_min_ms = 25,
                              .backoff_max_ms = 500};
    int err;
    cairn_client *c = cairn_client_new(cfg.endpoints, &o, &err);
    unsigned seed = cfg.seed * 7919u + (unsigned)a->index;
    int64_t process = a->index;
    /* Each thread issues rate/threads ops per second, on a fixed schedule
     * with jitter; a slow op makes the next ones go at once, not pile up. */
    int64_t period = (int64_t)(1e9 * cfg.threads / cfg.rate);
    int64_t end = mono_ns() + (int64_t)(cfg.duration_s * 1e9);
    int64_t next = mono_ns() + (int64_t)(rand_r(&seed) % (unsigned)(period > 0 ? period : 1));
    if (c == NULL) {
        fprintf(stderr, "worker: cairn_client_new: %s\n", cairn_strerror(err));
        return NULL;
    }
    while (mono_ns() < end) {
        bool info;
        sleep_ns(next - mono_ns());
        if (mono_ns() >= end) {
            break;
        }
        info = cfg.workload == WORKLOAD_REGISTER ? register_op(c, process, &seed)
                                                 : set_add(c, process);
        if (info) {
            process += cfg.threads;
        }
        next += period / 2 + (int64_t)(rand_r(&seed) % (unsigned)(period > 0 ? period : 1));
        if (next < mono_ns() - period) {
            next = mono_ns();
        }
    }
    cairn_client_free(c);
    return NULL;
}

/* After every thread is done: the set's final read, or one read of every
 * live register key, by a process of their own (no op of it is pending). */
static int final_reads(void)
{
    struct cairn_options o = {.timeout_ms = cfg.timeout_ms, .connect_timeout_ms = 500};
    int err;
    int rv = 0;
    int64_t process = (int64_t)cfg.threads * 100000;
    cairn_client *c = cairn_client_new(cfg.endpoints, &o, &err);
    if (c == NULL) {
        return -1;
    }
    if (cfg.workload == WORKLOAD_SET) {
        rv = set_final_read(c, process);
    } else {
        for (int i = 0; i < cfg.keys; i++) {
            char key[WORKER_KEY_BYTES_MAX];
            char val[64];
            int64_t k = slot_key[i];
            int klen = snprintf(key, sizeof(key), "%sr/%" PRId64, cfg.prefix, k);
            struct cairn_result *r = NULL;
            int got;
            snprintf(val, sizeof(val), "[%" PRId64 " nil]", k);
            emit("invoke", process, "read", val);
            got = cairn_get(c, key, (size_t)klen, NULL, &r);
            if (got == 0 && r->n_ops > 0 && r->ops[0].n_kvs > 0) {
                int64_t v;
                const struct cairn_kv *kv = &r->ops[0].kvs[0];
                if (parse_value(kv->value, kv->value_len, &v) == 0) {
                    snprintf(val, sizeof(val), "[%" PRId64 " %" PRId64 "]", k, v);
                }
                emit("ok", process, "read", val);
            } else if (got == 0 || got == CAIRN_ENOTFOUND) {
                emit("ok", process, "read", val);
            } else {
                emit("fail", process, "read", val);
                rv = -1;
            }
            cairn_result_free(r);
        }
    }
    cairn_client_free(c);
    return rv;
}

static int status_mode(const char *endpoints)
{
    char *list = strdup(endpoints);
    char *save = NULL;
    struct cairn_options o = {.timeout_ms = 1000, .connect_timeout_ms = 500};
    int err;
    cairn_client *c = cairn_client_new(endpoints, &o, &err);
    if (c == NULL || list == NULL) {
        return 1;
    }
    for (char *ep = strtok_r(list, ",", &save); ep != NULL; ep = strtok_r(NULL, ",", &save)) {
        struct cairn_status *s = NULL;
        if (cairn_status(c, ep, &s) == 0) {
            printf("%s %" PRIu64 " %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                   " %016" PRIx64 "\n",
                   ep, s->id, s->state, s->term, s->leader_id, s->commit_index, s->applied_index,
                   s->revision, s->state_hash);
        } else {
            printf("%s - down\n", ep);
        }
        cairn_status_free(s);
    }
    cairn_client_free(c);
    free(list);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: cairn-chaos-worker --endpoints H:P,... --out FILE [--workload register|set]\n"
            "         [--threads N] [--rate OPS_PER_S] [--duration S] [--keys K]\n"
            "         [--ops-per-key N] [--timeout-ms MS] [--t0-ns NANOS] [--prefix P] [--seed N]\n"
            "       cairn-chaos-worker --status H:P,...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct thread_arg args[WORKER_THREADS_MAX];
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
        }
        i++;
        if (strcmp(f, "--status") == 0) {
            return status_mode(v);
        } else if (strcmp(f, "--endpoints") == 0) {
            cfg.endpoints = v;
        } else if (strcmp(f, "--out") == 0) {
            cfg.out_path = v;
        } else if (strcmp(f, "--workload") == 0) {
            if (strcmp(v, "register") == 0) {
                cfg.workload = WORKLOAD_REGISTER;
            } else if (strcmp(v, "set") == 0) {
                cfg.workload = WORKLOAD_SET;
            } else {
                usage();
            }
        } else if (strcmp(f, "--threads") == 0) {
            cfg.threads = atoi(v);
        } else if (strcmp(f, "--rate") == 0) {
            cfg.rate = atof(v);
        } else if (strcmp(f, "--duration") == 0) {
            cfg.duration_s = atof(v);
        } else if (strcmp(f, "--keys") == 0) {
            cfg.keys = atoi(v);
        } else if (strcmp(f, "--ops-per-key") == 0) {
            cfg.ops_per_key = atoi(v);
        } else if (strcmp(f, "--timeout-ms") == 0) {
            cfg.timeout_ms = atoi(v);
        } else if (strcmp(f, "--t0-ns") == 0) {
            cfg.t0_ns = strtoll(v, NULL, 10);
        } else if (strcmp(f, "--prefix") == 0) {
            cfg.prefix = v;
        } else if (strcmp(f, "--seed") == 0) {
            cfg.seed = (unsigned)strtoul(v, NULL, 10);
        } else {
            usage();
        }
    }
    if (cfg.endpoints == NULL || cfg.out_path == NULL || cfg.threads < 1 ||
        cfg.threads > WORKER_THREADS_MAX || cfg.keys < 1 || cfg.keys > WORKER_KEYS_MAX ||
        cfg.rate <= 0 || cfg.ops_per_key < 1) {
        usage();
    }
    history = fopen(cfg.out_path, "w");
    if (history == NULL) {
        fprintf(stderr, "worker: %s: %s\n", cfg.out_path, strerror(errno));
        return 1;
    }
    if (cfg.t0_ns == 0) {
        cfg.t0_ns = real_ns();
    }
    mono_t0 = mono_ns() - (real_ns() - cfg.t0_ns);
    for (int i = 0; i < cfg.keys; i++) {
        slot_key[i] = i;
    }
    next_key = cfg.keys;
    for (int i = 0; i < cfg.threads; i++) {
        args[i].index = i;
        if (pthread_create(&args[i].tid, NULL, worker_main, &args[i]) != 0) {
            fprintf(stderr, "worker: pthread_create failed\n");
            return 1;
        }
    }
    for (int i = 0; i < cfg.threads; i++) {
        pthread_join(args[i].tid, NULL);
    }
    if (final_reads() != 0) {
        fprintf(stderr, "worker: the final read never succeeded\n");
    }
    fclose(history);
    return 0;
}
