/*
 * register: per-key linearizability of a read / write / cas register by the
 * Wing & Gong search with Lowe's improvements ("Testing for linearizability",
 * Lowe 2017), the algorithm of Knossos' "wgl" and of Porcupine.
 *
 * The history of one key becomes a doubly linked list of call and return
 * entries in real-time order (history order). The search walks the list:
 * at a call it tries to linearize the op now (apply it to the model); if the
 * model accepts and the pair (set of linearized ops, model state) was never
 * seen, the op is lifted out of the list (call and return) and pushed on a
 * stack, and the walk restarts at the head. At a return entry the op it
 * belongs to should already have been linearized, so the search backtracks:
 * it pops the last op, restores the state and tries the next call after it.
 * An empty stack at a return means no linearization exists.
 *
 * :info ops (and invokes never completed) may have taken effect at any time
 * after their invoke, or never: their returns go at the end of the list, and
 * the search succeeds as soon as the walk reaches one of them or the end,
 * because then every op that did complete has been linearized. :fail ops
 * certainly did not happen and :info reads constrain nothing: both are
 * dropped.
 *
 * The visited set is what makes this tractable (Lowe): a configuration is a
 * bitset of linearized ops plus the register's value, hashed incrementally
 * (Zobrist: XOR of a random word per linearized op) so a step costs O(1)
 * besides the cache probe.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "strmap.h"

#define STEPS_MAX_DEFAULT 20000000ull
#define TIME_MS_MAX_DEFAULT 10000ull
#define CACHE_BYTES_MAX_DEFAULT (1024ull * 1024ull * 1024ull)
#define PREFIX_REPORTED_MAX 8 /* linearized ops shown before the blocked one */

enum rop_f { F_READ, F_WRITE, F_CAS };

/* One register op of one key. Values are ids: 0 = nil (absent), else
 * 1 + the value's id in the shared value map. */
struct rop
{
    enum rop_f f;
    uint32_t a; /* read: value read; write: value written; cas: expected */
    uint32_t b; /* cas: new value */
    size_t call_pos;
    size_t ret_pos; /* SIZE_MAX: open-ended (:info) */
    size_t hist_op; /* index into history.ops */
    uint32_t key;
};

struct entry
{
    int32_t op;
    int32_t match; /* call: its return entry; return: its call entry */
    int32_t prev;
    int32_t next; /* -1: end of list */
    bool call;
    bool open; /* the return of an open-ended op */
};

struct frame
{
    int32_t call;
    uint32_t state;
};

/* A visited configuration set: open addressing over a pool of records, each
 * (words of bitset, state). */
struct cache
{
    uint64_t *pool;             /* owned */
    size_t pool_used, pool_cap; /* in words */
    uint64_t *slot_hash;        /* owned */
    size_t *slot_at;            /* owned: record offset + 1, 0 = empty */
    size_t n_slots, n;
    size_t words; /* bitset words per record */
    uint64_t bytes_max;
};

struct key_result
{
    enum check_verdict verdict;
    const char *reason;
    uint64_t steps;
    size_t best_depth;
    int32_t blocked_op; /* -1: none */
    uint32_t blocked_state;
    int32_t *best_prefix; /* owned: ops linearized at the deepest point */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Returns 1 when added, 0 when present, -1 when the memory bound is hit. */
static int cache_add(struct cache *c, const uint64_t *bits, uint32_t state, uint64_t hash)
{
    size_t rec = c->words + 1;
    if ((c->n + 1) * 2 > c->n_slots) {
        size_t n2 = c->n_slots == 0 ? 1024 : c->n_slots * 2;
        if ((n2 * (sizeof(uint64_t) + sizeof(size_t)) + c->pool_cap * 8) > c->bytes_max) {
            return -1;
        }
        uint64_t *h2 = malloc(n2 * sizeof(*h2));
        size_t *a2 = calloc(n2, sizeof(*a2));
        if (h2 == NULL || a2 == NULL) {
            free(h2);
            free(a2);
            return -1;
        }
        for (size_t s = 0; s < c->n_slots; s++) {
            if (c->slot_at[s] == 0) {
                continue;
            }
            size_t t = c->slot_hash[s] & (n2 - 1);
            while (a2[t] != 0) {
                t = (t + 1) & (n2 - 1);
            }
            a2[t] = c->slot_at[s];
            h2[t] = c->slot_hash[s];
        }
        free(c->slot_hash);
        free(c->slot_at);
        c->slot_hash = h2;
        c->slot_at = a2;
        c->n_slots = n2;
    }
    size_t s = hash & (c->n_slots - 1);
    for (; c->slot_at[s] != 0; s = (s + 1) & (c->n_slots - 1)) {
        if (c->slot_hash[s] != hash) {
            continue;
        }
        const uint64_t *r = &c->pool[c->slot_at[s] - 1];
        if (r[c->words] == state && memcmp(r, bits, c->words * sizeof(*bits)) == 0) {
            return 0;
        }
    }
    if (c->pool_used + rec > c->pool_cap) {
        size_t cap2 = c->pool_cap == 0 ? rec * 1024 : c->pool_cap * 2;
        if (cap2 * 8 + c->n_slots * (sizeof(uint64_t) + sizeof(size_t)) > c->bytes_max) {
            return -1;
        }
        uint64_t *p2 = realloc(c->pool, cap2 * sizeof(*p2));
        if (p2 == NULL) {
            return -1;
        }
        c->pool = p2;
        c->pool_cap = cap2;
    }
    memcpy(&c->pool[c->pool_used], bits, c->words * sizeof(*bits));
    c->pool[c->pool_used + c->words] = state;
    c->slot_at[s] = c->pool_used + 1;
    c->slot_hash[s] = hash;
    c->pool_used += rec;
    c->n++;
    return 1;
}

static void cache_free(struct cache *c)
{
    free(c->pool);
    free(c->slot_hash);
    free(c->slot_at);
}

/* The register model: may op take effect in state? Sets *next. */
static bool model_step(const struct rop *op, uint32_t state, uint32_t *next)
{
    switch (op->f) {
        case F_READ:
            *next = state;
            return op->a == state;
        case F_WRITE:
            *next = op->a;
            return true;
        case F_CAS:
            *next = op->b;
            return op->a == state;
    }
    return false;
}

static void lift(struct entry *e, int32_t c)
{
    int32_t r = e[c].match;
    e[e[c].prev].next = e[c].next;
    e[e[c].next].prev = e[c].prev; /* a call always has a successor: its return */
    e[e[r].prev].next = e[r].next;
    if (e[r].next >= 0) {
        e[e[r].next].prev = e[r].prev;
    }
}

static void unlift(struct entry *e, int32_t c)
{
    int32_t r = e[c].match;
    e[e[r].prev].next = r;
    if (e[r].next >= 0) {
        e[e[r].next].prev = r;
    }
    e[e[c].prev].next = c;
    e[e[c].next].prev = c;
}

struct pos_entry
{
    size_t pos;
    size_t tie;
    int32_t entry;
};

static int pos_cmp(const void *a, const void *b)
{
    const struct pos_entry *x = a, *y = b;
    if (x->pos != y->pos) {
        return x->pos < y->pos ? -1 : 1;
    }
    return x->tie < y->tie ? -1 : x->tie > y->tie;
}

/* Searches one key's ops (ops[0..n)). Fills kr; returns -1 only when memory
 * for the search itself cannot be had. */
static int search_key(const struct rop *ops, int32_t n, const struct register_opts *opts,
                      struct key_result *kr)
{
    memset(kr, 0, sizeof(*kr));
    kr->blocked_op = -1;
    struct entry *e = calloc((size_t)(2 * n + 1), sizeof(*e));
    struct pos_entry *order = calloc((size_t)(2 * n), sizeof(*order));
    struct frame *stack = calloc((size_t)n + 1, sizeof(*stack));
    uint64_t *zobrist = calloc((size_t)n + 1, sizeof(*zobrist));
    struct cache cache = {.words = ((size_t)n + 63) / 64, .bytes_max = opts->cache_bytes_max};
    uint64_t *bits = calloc(cache.words + 1, sizeof(*bits));
    kr->best_prefix = calloc((size_t)n + 1, sizeof(*kr->best_prefix));
    if (e == NULL || order == NULL || stack == NULL || zobrist == NULL || bits == NULL ||
        kr->best_prefix == NULL) {
        free(e);
        free(order);
        free(stack);
        free(zobrist);
        free(bits);
        free(kr->best_prefix);
        kr->best_prefix = NULL;
        return -1;
    }
    /* Entry 0 is the head sentinel; op i has call 1 + 2i and return 2 + 2i. */
    uint64_t seed = 0x5eed;
    for (int32_t i = 0; i < n; i++) {
        int32_t c = 1 + 2 * i, r = 2 + 2 * i;
        bool open = ops[i].ret_pos == SIZE_MAX;
        e[c] = (struct entry){i, r, 0, 0, true, false};
        e[r] = (struct entry){i, c, 0, 0, false, open};
        /* Open returns sort after every event, among themselves by op. */
        order[2 * i] = (struct pos_entry){ops[i].call_pos, 0, c};
        order[2 * i + 1] = (struct pos_entry){ops[i].ret_pos, (size_t)i, r};
        zobrist[i] = splitmix(&seed);
    }
    qsort(order, (size_t)(2 * n), sizeof(*order), pos_cmp);
    int32_t prev = 0;
    for (int32_t k = 0; k < 2 * n; k++) {
        e[prev].next = order[k].entry;
        e[order[k].entry].prev = prev;
        prev = order[k].entry;
    }
    e[prev].next = -1;
    free(order);

    uint64_t started = now_ms();
    uint32_t state = 0;
    uint64_t hash = 0;
    int32_t depth = 0;
    int32_t at = e[0].next;
    kr->verdict = CHECK_INVALID;
    kr->reason = "no linearization";
    for (;;) {
        if (at < 0 || e[at].open) {
            kr->verdict = CHECK_VALID;
            kr->reason = NULL;
            break;
        }
        if (++kr->steps > opts->steps_max) {
            kr->verdict = CHECK_UNKNOWN;
            kr->reason = "limit hit: search steps";
            break;
        }
        if ((kr->steps & 4095) == 0 && now_ms() - started > opts->time_ms_max) {
            kr->verdict = CHECK_UNKNOWN;
            kr->reason = "limit hit: time";
            break;
        }
        if (e[at].call) {
            int32_t op = e[at].op;
            uint32_t next;
            if (model_step(&ops[op], state, &next)) {
                bits[op / 64] |= 1ull << (op % 64);
                uint64_t h2 = hash ^ zobrist[op];
                int added = cache_add(&cache, bits, next, h2 ^ strmap_hash(&next, sizeof(next)));
                if (added < 0) {
                    kr->verdict = CHECK_UNKNOWN;
                    kr->reason = "limit hit: cache memory";
                    break;
                }
                if (added == 1) {
                    stack[depth++] = (struct frame){at, state};
                    state = next;
                    hash = h2;
                    lift(e, at);
                    at = e[0].next;
                    continue;
                }
                bits[op / 64] &= ~(1ull << (op % 64));
            }
            at = e[at].next;
            continue;
        }
        /* A return whose op is not linearized yet: backtrack. */
        if ((size_t)depth >= kr->best_depth || kr->blocked_op < 0) {
            if ((size_t)depth > kr->best_depth || kr->blocked_op < 0) {
                kr->best_depth = (size_t)depth;
                kr->blocked_op = e[at].op;
                kr->blocked_state = state;
                for (int32_t k = 0; k < depth; k++) {
                    kr->best_prefix[k] = e[stack[k].call].op;
                }
            }
        }
        if (depth == 0) {
            break;
        }
        struct frame top = stack[--depth];
        int32_t op = e[top.call].op;
        bits[op / 64] &= ~(1ull << (op % 64));
        hash ^= zobrist[op];
        state = top.state;
        unlift(e, top.call);
        at = e[top.call].next;
    }
    free(e);
    free(stack);
    free(zobrist);
    free(bits);
    cache_free(&cache);
    return 0;
}

/* Canonical bytes of a key or value: "i<decimal>" or "s<bytes>". */
static char *canon(const struct edn *v, size_t *len)
{
    char *s;
    if (v->type == EDN_INT) {
        s = malloc(32);
        if (s != NULL) {
            *len = (size_t)snprintf(s, 32, "i%lld", (long long)v->i);
        }
        return s;
    }
    if (v->type == EDN_STRING) {
        s = malloc(v->len + 2);
        if (s != NULL) {
            s[0] = 's';
            memcpy(s + 1, v->s, v->len);
            s[v->len + 1] = '\0';
            *len = v->len + 1;
        }
        return s;
    }
    return NULL;
}

/* Interns v (nil: 0). Returns -1 on a type we do not model. */
static int value_id(struct strmap *values, const struct edn *v, uint32_t *id)
{
    if (v->type == EDN_NIL) {
        *id = 0;
        return 0;
    }
    size_t len;
    char *s = canon(v, &len);
    if (s == NULL) {
        return -1;
    }
    uint32_t got = strmap_intern(values, s, len, NULL);
    free(s);
    if (got == STRMAP_NONE) {
        return -1;
    }
    *id = got + 1;
    return 0;
}

/* Writes the canonical bytes back as EDN-ish text (for reports). */
static void canon_print(FILE *f, const struct strmap *m, uint32_t id, bool json)
{
    const char *s = m->keys[id];
    size_t len = m->lens[id];
    if (s[0] == 'i') {
        fprintf(f, "%s", s + 1);
    } else {
        /* JSON's escapes are EDN's too, for the ASCII they are used on. */
        check_json_string(f, s + 1, len - 1);
    }
}

static void value_print(FILE *f, const struct strmap *values, uint32_t v, bool json)
{
    if (v == 0) {
        fprintf(f, json ? "null" : "nil");
    } else {
        canon_print(f, values, v - 1, json);
    }
}

/* Turns one history op into a register op; 1 when dropped, -1 when bad. */
static int to_rop(const struct history *h, size_t i, struct strmap *keys, struct strmap *values,
                  struct rop *out, char *errmsg, size_t errmsg_len)
{
    const struct hist_op *hop = &h->ops[i];
    const struct hist_event *inv = &h->events[hop->invoke];
    const struct hist_event *done = hop->complete != SIZE_MAX ? &h->events[hop->complete] : NULL;
    memset(out, 0, sizeof(*out));
    if (strcmp(inv->f, "read") == 0) {
        out->f = F_READ;
    } else if (strcmp(inv->f, "write") == 0) {
        out->f = F_WRITE;
    } else if (strcmp(inv->f, "cas") == 0) {
        out->f = F_CAS;
    } else {
        snprintf(errmsg, errmsg_len, "line %zu: :f %s is not :read, :write or :cas", inv->line,
                 inv->f);
        return -1;
    }
    if (hop->outcome == HIST_FAIL || (out->f == F_READ && hop->outcome != HIST_OK)) {
        return 1;
    }
    /* The tuple that carries the data: the completion's for a read. */
    const struct hist_event *src = out->f == F_READ ? done : inv;
    const struct edn *t = &src->value;
    if (t->type != EDN_VECTOR || t->n != 2) {
        snprintf(errmsg, errmsg_len, "line %zu: :value is not a [key value] tuple", src->line);
        return -1;
    }
    size_t klen;
    char *k = canon(&t->items[0], &klen);
    if (k == NULL) {
        snprintf(errmsg, errmsg_len, "line %zu: key is neither an integer nor a string", src->line);
        return -1;
    }
    out->key = strmap_intern(keys, k, klen, NULL);
    free(k);
    const struct edn *v = &t->items[1];
    int bad = 0;
    if (out->f == F_CAS) {
        if (v->type != EDN_VECTOR || v->n != 2) {
            snprintf(errmsg, errmsg_len, "line %zu: cas value is not [old new]", src->line);
            return -1;
        }
        bad = value_id(values, &v->items[0], &out->a) | value_id(values, &v->items[1], &out->b);
    } else {
        bad = value_id(values, v, &out->a);
    }
    if (bad != 0 || out->key == STRMAP_NONE) {
        snprintf(errmsg, errmsg_len, "line %zu: value is neither nil, an integer nor a string",
                 src->line);
        return -1;
    }
    out->call_pos = hop->invoke;
    out->ret_pos = hop->outcome == HIST_INFO ? SIZE_MAX : hop->complete;
    out->hist_op = i;
    return 0;
}

static int rop_key_cmp(const void *a, const void *b)
{
    const struct rop *x = a, *y = b;
    if (x->key != y->key) {
        return x->key < y->key ? -1 : 1;
    }
    return x->call_pos < y->call_pos ? -1 : x->call_pos > y->call_pos;
}

static const char *f_name(enum rop_f f)
{
    return f == F_READ ? "read" : f == F_WRITE ? "write" : "cas";
}

static void op_print(FILE *f, const struct history *h, const struct strmap *values,
                     const struct rop *op, bool json)
{
    const struct hist_op *hop = &h->ops[op->hist_op];
    size_t ret_line = hop->complete != SIZE_MAX ? h->events[hop->complete].line : 0;
    if (json) {
        fprintf(f, "{\"f\":\"%s\",\"invoke_line\":%zu,\"complete_line\":%zu,\"outcome\":\"%s\",",
                f_name(op->f), h->events[hop->invoke].line, ret_line,
                hop->outcome == HIST_OK ? "ok" : "info");
        fprintf(f, "\"process\":%lld,\"value\":", (long long)h->events[hop->invoke].process);
    } else {
        fprintf(f, "%s ", f_name(op->f));
    }
    if (op->f == F_CAS) {
        fprintf(f, "[");
        value_print(f, values, op->a, json);
        fprintf(f, json ? "," : " ");
        value_print(f, values, op->b, json);
        fprintf(f, "]");
    } else {
        value_print(f, values, op->a, json);
    }
    if (json) {
        fprintf(f, "}");
    } else {
        fprintf(f, " (process %lld, lines %zu-%zu%s)", (long long)h->events[hop->invoke].process,
                h->events[hop->invoke].line, ret_line, hop->outcome == HIST_OK ? "" : ", :info");
    }
}

int check_register(const struct history *h, const struct register_opts *opts_in,
                   struct check_result *out, char *errmsg, size_t errmsg_len)
{
    struct register_opts opts = opts_in != NULL ? *opts_in : (struct register_opts){0};
    opts.steps_max = opts.steps_max != 0 ? opts.steps_max : STEPS_MAX_DEFAULT;
    opts.time_ms_max = opts.time_ms_max != 0 ? opts.time_ms_max : TIME_MS_MAX_DEFAULT;
    opts.cache_bytes_max =
        opts.cache_bytes_max != 0 ? opts.cache_bytes_max : CACHE_BYTES_MAX_DEFAULT;
    memset(out, 0, sizeof(*out));
    struct strmap keys, values;
    strmap_init(&keys);
    strmap_init(&values);
    struct rop *ops = calloc(h->n_ops + 1, sizeof(*ops));
    size_t n = 0, dropped = 0;
    char *json = NULL, *text = NULL;
    size_t json_len, text_len;
    FILE *fj = NULL, *ft = NULL;
    int rv = -1;
    if (ops == NULL) {
        snprintf(errmsg, errmsg_len, "out of memory");
        goto err;
    }
    for (size_t i = 0; i < h->n_ops; i++) {
        int got = to_rop(h, i, &keys, &values, &ops[n], errmsg, errmsg_len);
        if (got < 0) {
            goto err;
        }
        if (got == 0) {
            n++;
        } else {
            dropped++;
        }
    }
    if (n > INT32_MAX / 4) {
        snprintf(errmsg, errmsg_len, "too many ops");
        goto err;
    }
    qsort(ops, n, sizeof(*ops), rop_key_cmp);
    fj = open_memstream(&json, &json_len);
    ft = open_memstream(&text, &text_len);
    if (fj == NULL || ft == NULL) {
        snprintf(errmsg, errmsg_len, "out of memory");
        goto err;
    }
    uint64_t started = now_ms(), steps_total = 0, steps_max = 0;
    size_t n_keys = 0, max_ops_key = 0;
    fprintf(fj, "{\"check\":\"register\",\"failures\":[");
    bool first_failure = true;
    for (size_t lo = 0; lo < n;) {
        size_t hi = lo;
        while (hi < n && ops[hi].key == ops[lo].key) {
            hi++;
        }
        n_keys++;
        max_ops_key = hi - lo > max_ops_key ? hi - lo : max_ops_key;
        struct key_result kr;
        if (search_key(&ops[lo], (int32_t)(hi - lo), &opts, &kr) != 0) {
            snprintf(errmsg, errmsg_len, "out of memory");
            goto err;
        }
        steps_total += kr.steps;
        steps_max = kr.steps > steps_max ? kr.steps : steps_max;
        if (kr.verdict != CHECK_VALID) {
            out->anomalies[kr.verdict == CHECK_UNKNOWN ? ANOMALY_LIMIT : ANOMALY_NONLINEARIZABLE]++;
            if (out->verdict == CHECK_VALID || kr.verdict == CHECK_INVALID) {
                out->verdict = kr.verdict;
            }
            const struct rop *blocked =
                kr.blocked_op >= 0 ? &ops[lo + (size_t)kr.blocked_op] : NULL;
            if (out->first_bad_line == 0 && blocked != NULL && kr.verdict == CHECK_INVALID) {
                out->first_bad_line = h->events[h->ops[blocked->hist_op].invoke].line;
            }
            /* JSON */
            fprintf(fj, "%s{\"key\":", first_failure ? "" : ",");
            first_failure = false;
            canon_print(fj, &keys, ops[lo].key, true);
            fprintf(fj, ",\"verdict\":\"%s\",\"reason\":\"%s\",\"ops\":%zu,\"steps\":%llu,",
                    check_verdict_name(kr.verdict), kr.reason, hi - lo,
                    (unsigned long long)kr.steps);
            fprintf(fj, "\"linearized\":%zu,\"blocked_op\":", kr.best_depth);
            if (blocked != NULL) {
                op_print(fj, h, &values, blocked, true);
                fprintf(fj, ",\"state\":");
                value_print(fj, &values, kr.blocked_state, true);
            } else {
                fprintf(fj, "null");
            }
            fprintf(fj, ",\"prefix\":[");
            size_t from =
                kr.best_depth > PREFIX_REPORTED_MAX ? kr.best_depth - PREFIX_REPORTED_MAX : 0;
            for (size_t k = from; k < kr.best_depth; k++) {
                fprintf(fj, "%s", k > from ? "," : "");
                op_print(fj, h, &values, &ops[lo + (size_t)kr.best_prefix[k]], true);
            }
            fprintf(fj, "]}");
            /* Text */
            fprintf(ft, "  key ");
            canon_print(ft, &keys, ops[lo].key, false);
            fprintf(ft, ": %s (%s) after %llu steps, %zu ops\n", check_verdict_name(kr.verdict),
                    kr.reason, (unsigned long long)kr.steps, hi - lo);
            if (blocked != NULL) {
                fprintf(ft, "    longest linearizable prefix: %zu ops, ending", kr.best_depth);
                if (kr.best_depth == 0) {
                    fprintf(ft, " (none)");
                }
                fprintf(ft, "\n");
                for (size_t k = from; k < kr.best_depth; k++) {
                    fprintf(ft, "      ");
                    op_print(ft, h, &values, &ops[lo + (size_t)kr.best_prefix[k]], false);
                    fprintf(ft, "\n");
                }
                fprintf(ft, "    then the register holds ");
                value_print(ft, &values, kr.blocked_state, false);
                fprintf(ft, " and this op, already returned, cannot be linearized:\n      ");
                op_print(ft, h, &values, blocked, false);
                fprintf(ft, "\n");
            }
        }
        free(kr.best_prefix);
        lo = hi;
    }
    uint64_t elapsed = now_ms() - started;
    fprintf(fj, "],\"verdict\":\"%s\",\"keys\":%zu,\"ops\":%zu,\"dropped\":%zu,",
            check_verdict_name(out->verdict), n_keys, n, dropped);
    fprintf(fj,
            "\"max_ops_per_key\":%zu,\"steps\":%llu,\"max_steps_per_key\":%llu,"
            "\"elapsed_ms\":%llu,\"anomalies\":{\"nonlinearizable\":%zu,\"limit\":%zu}}",
            max_ops_key, (unsigned long long)steps_total, (unsigned long long)steps_max,
            (unsigned long long)elapsed, out->anomalies[ANOMALY_NONLINEARIZABLE],
            out->anomalies[ANOMALY_LIMIT]);
    fclose(fj);
    fj = NULL;
    fclose(ft);
    ft = NULL;
    /* The summary line goes first. */
    if (check_set_text(
            out, text, errmsg, errmsg_len,
            "register: %s: %zu keys, %zu ops (%zu dropped: :fail, or reads without :ok), "
            "%zu non-linearizable, %zu limit hit; %llu steps (max %llu on one key), %llu ms",
            check_verdict_name(out->verdict), n_keys, n, dropped,
            out->anomalies[ANOMALY_NONLINEARIZABLE], out->anomalies[ANOMALY_LIMIT],
            (unsigned long long)steps_total, (unsigned long long)steps_max,
            (unsigned long long)elapsed) != 0) {
        goto err;
    }
    free(text);
    text = NULL;
    out->json = json;
    json = NULL;
    rv = 0;
err:
    if (fj != NULL) {
        fclose(fj);
    }
    if (ft != NULL) {
        fclose(ft);
    }
    free(json);
    free(text);
    free(ops);
    strmap_free(&keys);
    strmap_free(&values);
    if (rv != 0) {
        check_result_free(out);
    }
    return rv;
}
