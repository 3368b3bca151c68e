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
 *   watch     writers put, delete and transact on --keys keys under PREFIX "w/"
 *             while watchers (on every node, and on all of them) and stale
 *             readers (one per node) log what they see; --out is then the
 *             watch log and --committed the committed log, in the formats of
 *             jepsen/README.md ("Watch logs"), not EDN. See "The watch
 *             workload" below.
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
#include <stdarg.h>
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

enum workload { WORKLOAD_REGISTER, WORKLOAD_SET, WORKLOAD_WATCH };

struct config
{
    const char *endpoints;
    const char *out_path;
    const char *committed_path; /* watch: the committed log */
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
    .committed_path = NULL,
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
           rv == CAIRN_EBUSY || rv == CAIRN_EUNAVAILABLE || rv == CAIRN_ECOMPARE;
}

/* Records how a write ended: :ok, :fail when it certainly did not happen,
 * else :info. Returns true after :info, when the thread must go on as a new
 * process. */
static bool emit_write_outcome(int rv, int64_t process, const char *f, const char *value)
{
    if (rv == 0) {
        emit("ok", process, f, value);
        return false;
    }
    if (write_certainly_failed(rv)) {
        emit("fail", process, f, value);
        return false;
    }
    emit("info", process, f, value);
    return true;
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
        return emit_write_outcome(rv, process, "write", val);
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
        if (rv == 0 && !r->succeeded) {
            rv = CAIRN_ECOMPARE; /* the compare did not hold: certainly not applied */
        }
        cairn_result_free(r);
        return emit_write_outcome(rv, process, "cas", val);
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
    return emit_write_outcome(rv, process, "add", val);
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

/*
 * The watch workload.
 *
 * Writers put and delete keys under PREFIX "w/" and run multi-key
 * transactions (several events at one revision); watchers record every
 * update they receive; stale readers, each bound to one node, read keys with
 * stale = true. Everything goes to the watch log (--out), in the format of
 * jepsen/README.md, "Watch logs". At the end the worker finds the final
 * revision with a linearizable read, waits until every watcher has delivered
 * up to it, and writes the committed log (--committed) from every key's
 * history, which a retention policy set before the first write keeps whole.
 */

#define WATCH_NODES_MAX 16
#define WATCH_WATCHERS_MAX (2 * WATCH_NODES_MAX + 8)
#define WATCH_TXN_OPS_MAX 4
#define WATCH_VALUE_BYTES_MAX 48
/* Retained versions per key under the workload's prefix: far above what a
 * run writes (rate x duration is at most a few 10,000 writes in all). */
#define WATCH_RETAIN_VERSIONS 1000000
#define WATCH_READS_PER_S 20    /* per stale reader */
#define WATCH_CATCH_UP_MS 30000 /* the final wait for the watchers */
#define WATCH_PAST_RESTART_S 15 /* the past watcher resumes explicitly this often */
#define WATCH_ENDPOINT_BYTES_MAX 64

/* A growable byte buffer for one update's lines: written with one fwrite. */
struct obuf
{
    char *p; /* owned */
    size_t len, cap;
};

static void obuf_reserve(struct obuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap) {
        return;
    }
    size_t cap = b->cap == 0 ? 1024 : b->cap;
    while (cap < b->len + more + 1) {
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        fprintf(stderr, "worker: out of memory\n");
        abort();
    }
    b->p = p;
    b->cap = cap;
}

static void obuf_printf(struct obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void obuf_printf(struct obuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        abort();
    }
    obuf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Appends a field percent-encoded as the watch logs want: every byte outside
 * 0x21..0x7E, and '%', as %XX; a value that is exactly "-" as %2D (a lone
 * "-" means "no value"). */
static void obuf_field(struct obuf *b, const char *s, size_t len)
{
    obuf_reserve(b, 3 * len + 1);
    if (len == 1 && s[0] == '-') {
        memcpy(b->p + b->len, "%2D", 3);
        b->len += 3;
        return;
    }
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c < 0x21 || c > 0x7e || c == '%') {
            b->len += (size_t)snprintf(b->p + b->len, 4, "%%%02X", c);
        } else {
            b->p[b->len++] = (char)c;
        }
    }
    b->p[b->len] = '\0';
}

/* Appends b to the watch log in one write, under the log's mutex, so that
 * the lines of one update (or one read) are never interleaved with others. */
static void obuf_flush(struct obuf *b)
{
    if (b->len == 0) {
        return;
    }
    pthread_mutex_lock(&history_mu);
    fwrite(b->p, 1, b->len, history);
    pthread_mutex_unlock(&history_mu);
    b->len = 0;
}

static char watch_eps[WATCH_NODES_MAX][WATCH_ENDPOINT_BYTES_MAX];
static int watch_n_eps;

/* The newest revision an acknowledged write of this run reported, and the
 * first one (the past watcher starts there). */
static uint64_t known_rev;
static uint64_t first_rev;
/* Set when writers and readers must stop, and when the watchers must. */
static int writers_stop;
static int watchers_stop;

static uint64_t load_u64(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void note_write(uint64_t rev)
{
    uint64_t cur = load_u64(&known_rev);
    while (rev > cur && !__atomic_compare_exchange_n(&known_rev, &cur, rev, false, __ATOMIC_SEQ_CST,
                                                     __ATOMIC_SEQ_CST)) {
    }
    uint64_t zero = 0;
    __atomic_compare_exchange_n(&first_rev, &zero, rev, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

static int watch_key(char *buf, size_t cap, int k)
{
    return snprintf(buf, cap, "%sw/k%d", cfg.prefix, k);
}

/* Counters for the end-of-run line on stderr. */
static size_t n_puts, n_dels, n_txns, n_write_ok, n_write_err, n_reads, n_read_err;

static void count(size_t *c)
{
    __atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

/* A writer's value: unique, and now and then one that needs encoding
 * ("-", empty, a space, a tab, a '%', a newline). */
static size_t writer_value(char *v, int thread, uint64_t seq)
{
    switch (seq % 29) {
        case 7:
            v[0] = '-';
            return 1;
        case 13:
            return 0;
        case 19:
            return (size_t)snprintf(v, WATCH_VALUE_BYTES_MAX, "a b\t%%%d.%" PRIu64 "\n", thread,
                                    seq);
        default:
            return (size_t)snprintf(v, WATCH_VALUE_BYTES_MAX, "v%d.%" PRIu64, thread, seq);
    }
}

static void watch_write_op(cairn_client *c, int thread, uint64_t *seq, unsigned *rs)
{
    char keys[WATCH_TXN_OPS_MAX][WORKER_KEY_BYTES_MAX];
    char vals[WATCH_TXN_OPS_MAX][WATCH_VALUE_BYTES_MAX];
    struct cairn_op ops[WATCH_TXN_OPS_MAX];
    struct cairn_result *r = NULL;
    unsigned kind = (unsigned)rand_r(rs) % 100;
    int rv;
    if (kind < 55 || kind >= 70) {
        /* A put, or (30%) a transaction of 2..4 puts and deletes of distinct
         * keys: one revision, several events. */
        int n = kind < 55 ? 1 : 2 + (int)((unsigned)rand_r(rs) % (WATCH_TXN_OPS_MAX - 1));
        int first = (int)((unsigned)rand_r(rs) % (unsigned)cfg.keys);
        if (n > cfg.keys) {
            n = cfg.keys;
        }
        for (int i = 0; i < n; i++) {
            int klen = watch_key(keys[i], sizeof(keys[i]), (first + i) % cfg.keys);
            size_t vlen = writer_value(vals[i], thread, (*seq)++);
            bool del = n > 1 && rand_r(rs) % 4 == 0;
            ops[i] = (struct cairn_op){.type = del ? CAIRN_OP_DEL : CAIRN_OP_PUT,
                                       .key = keys[i],
                                       .key_len = (size_t)klen,
                                       .value = del ? NULL : vals[i],
                                       .value_len = del ? 0 : vlen};
        }
        if (n == 1) {
            count(&n_puts);
            rv = cairn_put(c, ops[0].key, ops[0].key_len, ops[0].value, ops[0].value_len, NULL, &r);
        } else {
            struct cairn_txn txn = {.then_ops = ops, .n_then = (size_t)n};
            count(&n_txns);
            rv = cairn_txn(c, &txn, &r);
        }
    } else {
        int klen =
            watch_key(keys[0], sizeof(keys[0]), (int)((unsigned)rand_r(rs) % (unsigned)cfg.keys));
        count(&n_dels);
        rv = cairn_del(c, keys[0], (size_t)klen, NULL, &r);
    }
    if (rv == 0 && r != NULL) {
        count(&n_write_ok);
        note_write(r->revision);
    } else {
        count(&n_write_err);
    }
    cairn_result_free(r);
}

static void *watch_writer_main(void *argp)
{
    struct thread_arg *a = argp;
    struct cairn_options o = {.timeout_ms = cfg.timeout_ms,
                              .connect_timeout_ms = 500,
                              .backoff_min_ms = 25,
                              .backoff_max_ms = 500};
    int err;
    cairn_client *c = cairn_client_new(cfg.endpoints, &o, &err);
    unsigned rs = cfg.seed * 7919u + (unsigned)a->index;
    uint64_t seq = 0;
    int64_t period = (int64_t)(1e9 * cfg.threads / cfg.rate);
    int64_t next =
        mono_ns() + (int64_t)((unsigned)rand_r(&rs) % (unsigned)(period > 0 ? period : 1));
    if (c == NULL) {
        fprintf(stderr, "worker: cairn_client_new: %s\n", cairn_strerror(err));
        return NULL;
    }
    while (!__atomic_load_n(&writers_stop, __ATOMIC_SEQ_CST)) {
        sleep_ns(next - mono_ns());
        watch_write_op(c, a->index, &seq, &rs);
        next += period / 2 + (int64_t)((unsigned)rand_r(&rs) % (unsigned)(period > 0 ? period : 1));
        if (next < mono_ns() - period) {
            next = mono_ns();
        }
    }
    cairn_client_free(c);
    return NULL;
}

/* A stale reader: stale gets of random workload keys from one node only,
 * each logged as a read line (reader, the answer's revision, key, value or
 * "-", mod_revision, the newest acknowledged write's revision when sent). */
struct reader
{
    int node; /* index in watch_eps */
    pthread_t tid;
};

static void *stale_reader_main(void *argp)
{
    struct reader *rd = argp;
    struct cairn_options o = {
        .timeout_ms = 1000, .connect_timeout_ms = 300, .backoff_min_ms = 25, .backoff_max_ms = 300};
    int err;
    cairn_client *c = cairn_client_new(watch_eps[rd->node], &o, &err);
    unsigned rs = cfg.seed * 104729u + (unsigned)rd->node;
    struct obuf b = {0};
    if (c == NULL) {
        fprintf(stderr, "worker: cairn_client_new: %s\n", cairn_strerror(err));
        return NULL;
    }
    while (!__atomic_load_n(&writers_stop, __ATOMIC_SEQ_CST)) {
        char key[WORKER_KEY_BYTES_MAX];
        int klen = watch_key(key, sizeof(key), (int)((unsigned)rand_r(&rs) % (unsigned)cfg.keys));
        struct cairn_get_opts go = {.stale = true};
        struct cairn_result *r = NULL;
        uint64_t known = load_u64(&known_rev);
        int rv = cairn_get(c, key, (size_t)klen, &go, &r);
        count(&n_reads);
        if ((rv == 0 || rv == CAIRN_ENOTFOUND) && r != NULL) {
            const struct cairn_kv *kv =
                rv == 0 && r->n_ops > 0 && r->ops[0].n_kvs > 0 ? &r->ops[0].kvs[0] : NULL;
            obuf_printf(&b, "read\tn%d\t%" PRIu64 "\t", rd->node + 1, r->revision);
            obuf_field(&b, key, (size_t)klen);
            obuf_printf(&b, "\t");
            if (kv != NULL) {
                obuf_field(&b, kv->value, kv->value_len);
            } else {
                obuf_printf(&b, "-");
            }
            obuf_printf(&b, "\t%" PRIu64 "\t%" PRIu64 "\n", kv != NULL ? kv->mod_revision : 0,
                        known);
            obuf_flush(&b);
        } else {
            count(&n_read_err);
        }
        cairn_result_free(r);
        sleep_ns(1000000000 / WATCH_READS_PER_S);
    }
    free(b.p);
    cairn_client_free(c);
    return NULL;
}

/* One watcher of the run. Each has a client of its own (so one watcher's
 * pace never stalls another's) and a thread that takes its updates from the
 * library's queue and logs them. A watcher the library ends (a CANCELED
 * update), and the past watcher every WATCH_PAST_RESTART_S, is ended in the
 * log and started again as NAME.N from the revision after the last one it
 * delivered: resumption from an explicit revision, checked like the rest. */
struct wwatcher
{
    char name[32];
    char id[48]; /* the current incarnation: name, then name.2, ... */
    int incarnation;
    char endpoints[WATCH_NODES_MAX * WATCH_ENDPOINT_BYTES_MAX];
    bool prefix;
    char key[WORKER_KEY_BYTES_MAX];
    size_t key_len;
    bool from_first_write; /* start at the run's first acknowledged write */
    bool prefer_followers;
    bool restarts; /* end and resume explicitly every WATCH_PAST_RESTART_S */
    pthread_t tid;
    pthread_mutex_t mu; /* guards w against the main thread's progress requests */
    cairn_client *c;    /* owned */
    cairn_watcher *w;   /* owned; NULL between incarnations */
    uint64_t delivered; /* the last revision logged (atomic): where to resume */
    uint64_t vouched;   /* the last update's revision in this incarnation (atomic) */
    int live;           /* set (atomic) once the first incarnation started */
    size_t updates, events, snapshots, ended;
};

static struct wwatcher watchers[WATCH_WATCHERS_MAX];
static int n_watchers;

static void log_update(struct wwatcher *ww, const struct cairn_watch_update *u, struct obuf *b)
{
    static const char *const kinds[] = {[CAIRN_WATCH_EVENTS] = "events",
                                        [CAIRN_WATCH_SNAPSHOT] = "snapshot",
                                        [CAIRN_WATCH_PROGRESS] = "progress"};
    obuf_printf(b, "update\t%s\t%s\t%" PRIu64 "\n", ww->id, kinds[u->kind], u->revision);
    for (size_t i = 0; u->kind == CAIRN_WATCH_EVENTS && i < u->n_events; i++) {
        const struct cairn_event *e = &u->events[i];
        obuf_printf(b, "event\t%s\t%" PRIu64 "\t", ww->id, e->kv.mod_revision);
        obuf_field(b, e->kv.key, e->kv.key_len);
        if (e->type == CAIRN_EVENT_DELETE) {
            obuf_printf(b, "\tdel\t-\n");
        } else {
            obuf_printf(b, "\tput\t");
            obuf_field(b, e->kv.value, e->kv.value_len);
            obuf_printf(b, "\n");
        }
    }
    for (size_t i = 0; u->kind == CAIRN_WATCH_SNAPSHOT && i < u->n_kvs; i++) {
        obuf_printf(b, "kv\t%s\t", ww->id);
        obuf_field(b, u->kvs[i].key, u->kvs[i].key_len);
        obuf_printf(b, "\t");
        obuf_field(b, u->kvs[i].value, u->kvs[i].value_len);
        obuf_printf(b, "\n");
    }
    ww->updates++;
    ww->events += u->kind == CAIRN_WATCH_EVENTS ? u->n_events : 0;
    ww->snapshots += u->kind == CAIRN_WATCH_SNAPSHOT;
}

/* Starts the next incarnation from `start` (0: now). Declares it in the log
 * before any of its updates: START is the first revision it must deliver. */
static int watcher_start(struct wwatcher *ww, uint64_t start, struct obuf *b)
{
    struct cairn_watch_opts o = {
        .prefix = ww->prefix, .start_revision = start, .prefer_followers = ww->prefer_followers};
    cairn_watcher *w = NULL;
    int rv = cairn_watch(ww->c, ww->key, ww->key_len, &o, NULL, NULL, &w);
    if (rv != 0) {
        return rv;
    }
    ww->incarnation++;
    if (ww->incarnation == 1) {
        snprintf(ww->id, sizeof(ww->id), "%s", ww->name);
    } else {
        snprintf(ww->id, sizeof(ww->id), "%s.%d", ww->name, ww->incarnation);
    }
    /* No update was taken yet (this thread is the only consumer), so the
     * watch's revision is the one it started after. */
    uint64_t after = cairn_watch_revision(w);
    obuf_printf(b, "watch\t%s\t%" PRIu64 "\t%s\t", ww->id, after + 1,
                ww->prefix ? "prefix" : "key");
    obuf_field(b, ww->key, ww->key_len);
    obuf_printf(b, "\n");
    obuf_flush(b);
    __atomic_store_n(&ww->delivered, after, __ATOMIC_SEQ_CST);
    __atomic_store_n(&ww->vouched, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&ww->mu);
    ww->w = w;
    pthread_mutex_unlock(&ww->mu);
    return 0;
}

static void watcher_end(struct wwatcher *ww, struct obuf *b, bool logged)
{
    pthread_mutex_lock(&ww->mu);
    cairn_watch_cancel(ww->w);
    ww->w = NULL;
    pthread_mutex_unlock(&ww->mu);
    if (logged) {
        obuf_printf(b, "ended\t%s\t%" PRIu64 "\n", ww->id, load_u64(&ww->delivered));
        obuf_flush(b);
        ww->ended++;
    }
}

static void *watcher_main(void *argp)
{
    struct wwatcher *ww = argp;
    struct cairn_options o = {
        .timeout_ms = 2000, .connect_timeout_ms = 500, .backoff_min_ms = 25, .backoff_max_ms = 500};
    int err;
    struct obuf b = {0};
    int64_t started = 0;
    ww->c = cairn_client_new(ww->endpoints, &o, &err);
    if (ww->c == NULL) {
        fprintf(stderr, "worker: cairn_client_new: %s\n", cairn_strerror(err));
        return NULL;
    }
    while (!__atomic_load_n(&watchers_stop, __ATOMIC_SEQ_CST)) {
        if (ww->w == NULL) {
            uint64_t start = 0;
            if (ww->incarnation > 0) {
                start = load_u64(&ww->delivered) + 1;
            } else if (ww->from_first_write) {
                /* Some writes first, so that the start is in the past. */
                start = load_u64(&first_rev);
                if (start == 0 || load_u64(&known_rev) < start + 20) {
                    sleep_ns(100000000);
                    continue;
                }
            }
            int rv = watcher_start(ww, start, &b);
            if (rv != 0) {
                sleep_ns(200000000);
                continue;
            }
            started = mono_ns();
            __atomic_store_n(&ww->live, 1, __ATOMIC_SEQ_CST);
        }
        struct cairn_watch_update *u = NULL;
        int rv = cairn_watch_next(ww->w, 200, &u);
        if (rv == 0 && u->kind == CAIRN_WATCH_CANCELED) {
            fprintf(stderr, "worker: watcher %s ended by the library: %s (%s); resuming\n", ww->id,
                    cairn_errname(u->error), u->message);
            cairn_watch_update_free(u);
            watcher_end(ww, &b, true);
            continue;
        }
        if (rv == 0) {
            log_update(ww, u, &b);
            obuf_flush(&b);
            __atomic_store_n(&ww->delivered, u->revision, __ATOMIC_SEQ_CST);
            __atomic_store_n(&ww->vouched, u->revision, __ATOMIC_SEQ_CST);
            cairn_watch_update_free(u);
        }
        if (ww->restarts && !__atomic_load_n(&writers_stop, __ATOMIC_SEQ_CST) &&
            mono_ns() - started > (int64_t)WATCH_PAST_RESTART_S * 1000000000) {
            watcher_end(ww, &b, true);
        }
    }
    if (ww->w != NULL) {
        watcher_end(ww, &b, false);
    }
    cairn_client_free(ww->c);
    ww->c = NULL;
    free(b.p);
    return NULL;
}

static struct wwatcher *watcher_add(const char *name, const char *endpoints, bool prefix)
{
    struct wwatcher *ww = &watchers[n_watchers++];
    snprintf(ww->name, sizeof(ww->name), "%s", name);
    snprintf(ww->endpoints, sizeof(ww->endpoints), "%s", endpoints);
    ww->prefix = prefix;
    ww->key_len = prefix ? (size_t)snprintf(ww->key, sizeof(ww->key), "%sw/", cfg.prefix)
                         : (size_t)watch_key(ww->key, sizeof(ww->key), 0);
    pthread_mutex_init(&ww->mu, NULL);
    return ww;
}

/* Splits the endpoint list; returns the number of endpoints or -1. */
static int split_endpoints(void)
{
    char list[WATCH_NODES_MAX * WATCH_ENDPOINT_BYTES_MAX];
    char *save = NULL;
    if (snprintf(list, sizeof(list), "%s", cfg.endpoints) >= (int)sizeof(list)) {
        return -1;
    }
    for (char *ep = strtok_r(list, ",", &save); ep != NULL; ep = strtok_r(NULL, ",", &save)) {
        if (watch_n_eps == WATCH_NODES_MAX || strlen(ep) >= WATCH_ENDPOINT_BYTES_MAX) {
            return -1;
        }
        snprintf(watch_eps[watch_n_eps++], WATCH_ENDPOINT_BYTES_MAX, "%s", ep);
    }
    return watch_n_eps;
}

/* The end of a retry loop: true while there is time left (and then it
 * waits a little before the next attempt). */
static bool retry_again(int64_t deadline)
{
    if (mono_ns() >= deadline) {
        return false;
    }
    sleep_ns(200000000);
    return true;
}

/* Writes the committed log: every version of every workload key, from its
 * history, then the final revision. Returns 0, or -1 (said on stderr) when
 * the log could not be built whole; the file is then not created, so the
 * check fails rather than pass on a partial log. */
static int write_committed(cairn_client *c, uint64_t final)
{
    char tmp[4096];
    struct obuf b = {0};
    int rv = 0;
    size_t versions = 0;
    snprintf(tmp, sizeof(tmp), "%s.tmp", cfg.committed_path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "worker: %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    for (int k = 0; k < cfg.keys && rv == 0; k++) {
        char key[WORKER_KEY_BYTES_MAX];
        int klen = watch_key(key, sizeof(key), k);
        struct cairn_result *r = NULL;
        int got;
        int64_t deadline = mono_ns() + 10000000000;
        do {
            cairn_result_free(r);
            r = NULL;
            got = cairn_history(c, key, (size_t)klen, 0, &r);
            got = got == CAIRN_ENOTFOUND ? 0 : got;
        } while (got != 0 && retry_again(deadline));
        if (got != 0) {
            fprintf(stderr, "worker: history of %s: %s\n", key, cairn_errmsg(c));
            rv = -1;
            break;
        }
        size_t n = r != NULL && r->n_ops > 0 ? r->ops[0].n_kvs : 0;
        for (size_t i = 0; i < n; i++) {
            const struct cairn_kv *kv = &r->ops[0].kvs[i];
            obuf_printf(&b, "event\tlog\t%" PRIu64 "\t", kv->mod_revision);
            obuf_field(&b, kv->key, kv->key_len);
            if (kv->deleted) {
                obuf_printf(&b, "\tdel\t-\n");
            } else {
                obuf_printf(&b, "\tput\t");
                obuf_field(&b, kv->value, kv->value_len);
                obuf_printf(&b, "\n");
            }
        }
        versions += n;
        /* The oldest version retained must be the key's first: retention
         * trimmed nothing. */
        if (n > 0 && r->ops[0].kvs[n - 1].version != 1) {
            fprintf(stderr,
                    "worker: key %s lost history: its oldest version is version %" PRIu64 "\n", key,
                    r->ops[0].kvs[n - 1].version);
            rv = -1;
        }
        cairn_result_free(r);
        fwrite(b.p != NULL ? b.p : "", 1, b.len, f);
        b.len = 0;
    }
    fprintf(f, "final\tlog\t%" PRIu64 "\n", final);
    free(b.p);
    if (fclose(f) != 0 || rv != 0) {
        return -1;
    }
    if (rename(tmp, cfg.committed_path) != 0) {
        fprintf(stderr, "worker: %s: %s\n", cfg.committed_path, strerror(errno));
        return -1;
    }
    fprintf(stderr, "worker: committed log: %zu versions of %d keys, final revision %" PRIu64 "\n",
            versions, cfg.keys, final);
    return 0;
}

static int watch_workload(void)
{
    struct cairn_options o = {.timeout_ms = cfg.timeout_ms, .connect_timeout_ms = 500};
    struct thread_arg writers[WORKER_THREADS_MAX];
    struct reader readers[WATCH_NODES_MAX];
    char prefix[WORKER_KEY_BYTES_MAX];
    int err, rv, status = 0;
    if (split_endpoints() < 1) {
        fprintf(stderr, "worker: bad --endpoints for the watch workload\n");
        return 1;
    }
    /* No committed log unless this run writes a whole one (see
     * write_committed). */
    if (unlink(cfg.committed_path) != 0 && errno != ENOENT) {
        fprintf(stderr, "worker: %s: %s\n", cfg.committed_path, strerror(errno));
        return 1;
    }
    cairn_client *c = cairn_client_new(cfg.endpoints, &o, &err);
    if (c == NULL) {
        fprintf(stderr, "worker: cairn_client_new: %s\n", cairn_strerror(err));
        return 1;
    }
    /* Keep every version for the run, so that history rebuilds the log. */
    int plen = snprintf(prefix, sizeof(prefix), "%sw/", cfg.prefix);
    struct cairn_retention keep = {.prefix = prefix,
                                   .prefix_len = (size_t)plen,
                                   .versions = WATCH_RETAIN_VERSIONS,
                                   .age_ms = 0};
    int64_t deadline = mono_ns() + 30000000000;
    do {
        rv = cairn_set_retention(c, &keep);
    } while (rv != 0 && retry_again(deadline));
    if (rv != 0) {
        fprintf(stderr, "worker: cairn_set_retention: %s\n", cairn_errmsg(c));
        cairn_client_free(c);
        return 1;
    }
    /* The watchers: one per node on a client that knows only that node (a
     * fault on the node hits its watcher), one key watcher on the last node,
     * one prefix and one key watcher on every endpoint (the key one prefers
     * followers), one from an explicit past revision that also resumes
     * explicitly now and then. */
    for (int i = 0; i < watch_n_eps; i++) {
        char name[32];
        snprintf(name, sizeof(name), "w-n%d", i + 1);
        watcher_add(name, watch_eps[i], true);
    }
    {
        char name[32];
        snprintf(name, sizeof(name), "w-n%d-key", watch_n_eps);
        watcher_add(name, watch_eps[watch_n_eps - 1], false);
    }
    watcher_add("w-all", cfg.endpoints, true);
    watcher_add("w-all-key", cfg.endpoints, false)->prefer_followers = true;
    struct wwatcher *past = watcher_add("w-past", cfg.endpoints, true);
    past->from_first_write = true;
    past->restarts = true;
    for (int i = 0; i < n_watchers; i++) {
        if (pthread_create(&watchers[i].tid, NULL, watcher_main, &watchers[i]) != 0) {
            fprintf(stderr, "worker: pthread_create failed\n");
            return 1;
        }
    }
    /* Let the watches that start "now" be created before the first write. */
    for (int i = 0; i < 50; i++) {
        int live = 0;
        for (int j = 0; j < n_watchers; j++) {
            live += __atomic_load_n(&watchers[j].live, __ATOMIC_SEQ_CST);
        }
        if (live >= n_watchers - 1) {
            break;
        }
        sleep_ns(100000000);
    }
    for (int i = 0; i < cfg.threads; i++) {
        writers[i].index = i;
        if (pthread_create(&writers[i].tid, NULL, watch_writer_main, &writers[i]) != 0) {
            fprintf(stderr, "worker: pthread_create failed\n");
            return 1;
        }
    }
    for (int i = 0; i < watch_n_eps; i++) {
        readers[i].node = i;
        if (pthread_create(&readers[i].tid, NULL, stale_reader_main, &readers[i]) != 0) {
            fprintf(stderr, "worker: pthread_create failed\n");
            return 1;
        }
    }
    sleep_ns((int64_t)(cfg.duration_s * 1e9));
    __atomic_store_n(&writers_stop, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < cfg.threads; i++) {
        pthread_join(writers[i].tid, NULL);
    }
    for (int i = 0; i < watch_n_eps; i++) {
        pthread_join(readers[i].tid, NULL);
    }
    /* The final revision: a linearizable read, after every write ended. */
    uint64_t final = 0;
    struct cairn_get_opts one = {.prefix = true, .limit = 1};
    deadline = mono_ns() + 30000000000;
    do {
        struct cairn_result *r = NULL;
        rv = cairn_get(c, prefix, (size_t)plen, &one, &r);
        final = rv == 0 ? r->revision : 0;
        cairn_result_free(r);
    } while (rv != 0 && retry_again(deadline));
    if (rv != 0) {
        fprintf(stderr, "worker: the final read never succeeded: %s\n", cairn_errmsg(c));
        status = 1;
    }
    /* Every watcher up to it: ask for progress until each has delivered
     * it (bounded; one that never does is reported by the checker). An
     * incarnation vouches only for what it delivered itself. */
    deadline = mono_ns() + (int64_t)WATCH_CATCH_UP_MS * 1000000;
    for (;;) {
        int behind = 0;
        for (int i = 0; i < n_watchers; i++) {
            struct wwatcher *ww = &watchers[i];
            if (load_u64(&ww->vouched) >= final) {
                continue;
            }
            behind++;
            pthread_mutex_lock(&ww->mu);
            if (ww->w != NULL) {
                cairn_watch_request_progress(ww->w);
            }
            pthread_mutex_unlock(&ww->mu);
        }
        if (behind == 0 || mono_ns() >= deadline) {
            if (behind > 0) {
                fprintf(stderr, "worker: %d watchers did not reach revision %" PRIu64 " in %d ms\n",
                        behind, final, WATCH_CATCH_UP_MS);
            }
            break;
        }
        sleep_ns(250000000);
    }
    __atomic_store_n(&watchers_stop, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < n_watchers; i++) {
        pthread_join(watchers[i].tid, NULL);
        fprintf(stderr,
                "worker: watcher %s: %zu updates, %zu events, %zu snapshots, %zu restarts, "
                "delivered up to %" PRIu64 "\n",
                watchers[i].name, watchers[i].updates, watchers[i].events, watchers[i].snapshots,
                watchers[i].ended, load_u64(&watchers[i].delivered));
        pthread_mutex_destroy(&watchers[i].mu);
    }
    fflush(history);
    if (final > 0 && write_committed(c, final) != 0) {
        status = 1;
    }
    fprintf(stderr,
            "worker: watch workload: %zu puts, %zu deletes, %zu transactions (%zu ok, %zu not), "
            "%zu stale reads (%zu failed), final revision %" PRIu64 "\n",
            n_puts, n_dels, n_txns, n_write_ok, n_write_err, n_reads, n_read_err, final);
    cairn_client_free(c);
    return status;
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
            "       cairn-chaos-worker --endpoints H:P,... --workload watch --out WATCH_LOG\n"
            "         --committed COMMITTED_LOG [--threads N] [--rate OPS_PER_S] [--duration S]\n"
            "         [--keys K] [--prefix P] [--seed N]\n"
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
        } else if (strcmp(f, "--committed") == 0) {
            cfg.committed_path = v;
        } else if (strcmp(f, "--workload") == 0) {
            if (strcmp(v, "register") == 0) {
                cfg.workload = WORKLOAD_REGISTER;
            } else if (strcmp(v, "set") == 0) {
                cfg.workload = WORKLOAD_SET;
            } else if (strcmp(v, "watch") == 0) {
                cfg.workload = WORKLOAD_WATCH;
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
        cfg.rate <= 0 || cfg.ops_per_key < 1 ||
        (cfg.workload == WORKLOAD_WATCH) != (cfg.committed_path != NULL)) {
        usage();
    }
    history = fopen(cfg.out_path, "w");
    if (history == NULL) {
        fprintf(stderr, "worker: %s: %s\n", cfg.out_path, strerror(errno));
        return 1;
    }
    if (cfg.workload == WORKLOAD_WATCH) {
        int status = watch_workload();
        if (fclose(history) != 0) {
            fprintf(stderr, "worker: %s: %s\n", cfg.out_path, strerror(errno));
            status = 1;
        }
        return status;
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
