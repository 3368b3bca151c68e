/*
 * watch: each watcher's log against the committed log (the format is in
 * jepsen/README.md, "Watch logs"). Jepsen's own watch check compares
 * watchers with each other; this one compares each with what was committed,
 * so that a watcher and a replica that agree on a wrong history are caught.
 *
 * Per watcher, three passes:
 *  1. Order, over events as delivered: a (revision, key) seen before is a
 *     duplicate; a revision below the last one delivered is a reorder; the
 *     same revision continued in another update is a split transaction. An
 *     events update's revision must be its last event's revision.
 *  2. Coverage: walking the updates, the revisions a watcher has vouched for
 *     (from its start revision, or after a snapshot, to each update's
 *     revision, progress included) form intervals. A snapshot at X must
 *     equal the committed state of the range at X; it excuses the revisions
 *     up to X.
 *  3. Content: within the intervals, every committed revision that touched
 *     the range must have been delivered (else a gap) with exactly the
 *     committed events (key, type, value) of the range (else a mismatch),
 *     and nothing may be delivered that was not committed.
 * When the committed log names the run's final revision, a watcher the
 * harness did not end must have vouched for it (else it is behind).
 *
 * Stale reads (read lines) are checked on their own: a stale read is
 * answered from the contacted node's applied state, and its revision says
 * which state that is, so its value and mod_revision must be the key's
 * committed ones at that revision, and that revision must have been
 * committed (at most the final one). How stale they were is reported, not
 * judged: staleness is what a stale read allows.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "edn.h"
#include "strmap.h"

#define WATCH_FIELDS_MAX 8
#define REPORTS_PER_WATCHER_MAX 50

enum upd_kind { UPD_EVENTS, UPD_SNAPSHOT, UPD_PROGRESS };

struct wev
{
    uint64_t rev;
    uint32_t key;   /* id in keys */
    uint32_t value; /* 0: deleted; else 1 + id in values */
    size_t line;
    size_t update; /* index of its update in the watcher */
};

struct wkv
{
    uint32_t key;
    uint32_t value; /* 1 + id in values */
    size_t line;
    size_t update;
};

struct wupd
{
    enum upd_kind kind;
    uint64_t rev;
    size_t line;
    size_t n_events;
};

/* A stale read: reader R read KEY at revision rev. */
struct wread
{
    uint32_t reader; /* id in readers */
    uint64_t rev;
    uint32_t key;   /* id in keys */
    uint32_t value; /* 0: absent; else 1 + id in values */
    uint64_t mod;   /* the kv's mod_revision (0 when absent) */
    uint64_t known; /* the newest acknowledged write's revision when sent (0: unknown) */
    size_t line;
};

struct watcher
{
    char *id; /* borrowed from the id map */
    uint64_t start;
    bool ended; /* the harness ended it (an ended line): no final revision expected */
    bool prefix;
    uint32_t range; /* id in keys */
    struct wupd *upd;
    size_t n_upd, cap_upd;
    struct wev *ev;
    size_t n_ev, cap_ev;
    struct wkv *kv;
    size_t n_kv, cap_kv;
    size_t line;
};

struct wctx
{
    struct strmap keys, values, ids;
    struct watcher *w; /* by id */
    size_t cap_w;
    struct wev *log; /* the committed log, sorted by (rev, key) */
    size_t n_log, cap_log;
    uint64_t final; /* the committed log's final revision (0: none given) */
    struct strmap readers;
    struct wread *reads;
    size_t n_reads, cap_reads;
    size_t read_reports;
    struct reader_stats *reader_stats; /* by reader id, once the reads are checked */
    FILE *fj, *ft;
    size_t reports; /* in the current watcher */
    bool first_report;
    struct check_result *out;
};

static int grow(void **items, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) {
        return 0;
    }
    size_t cap2 = *cap == 0 ? 16 : *cap * 2;
    while (cap2 < need) {
        cap2 *= 2;
    }
    void *p = realloc(*items, cap2 * size);
    if (p == NULL) {
        return -1;
    }
    *items = p;
    *cap = cap2;
    return 0;
}

/* Percent-decodes a field in place; returns its new length or -1. */
static long decode(char *s, size_t len)
{
    size_t o = 0;
    for (size_t k = 0; k < len; k++) {
        if (s[k] != '%') {
            s[o++] = s[k];
            continue;
        }
        if (k + 2 >= len) {
            return -1;
        }
        int hi = edn_hex_digit(s[k + 1]), lo = edn_hex_digit(s[k + 2]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        s[o++] = (char)(hi * 16 + lo);
        k += 2;
    }
    return (long)o;
}

static int parse_u64(const char *s, uint64_t *v)
{
    if (*s < '0' || *s > '9') {
        return -1;
    }
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end != '\0') {
        return -1;
    }
    *v = x;
    return 0;
}

/* Interns a percent-encoded field (modified in place). */
static int field_id(struct strmap *m, char *s, uint32_t *id)
{
    long len = decode(s, strlen(s));
    if (len < 0) {
        return -1;
    }
    *id = strmap_intern(m, s, (size_t)len, NULL);
    return *id == STRMAP_NONE ? -1 : 0;
}

/* Parses an event's revision, key, type and value fields. */
static int parse_event(struct wctx *x, char **f, struct wev *ev, const char **why)
{
    if (parse_u64(f[0], &ev->rev) != 0 || ev->rev == 0) {
        *why = "revision is not a positive integer";
        return -1;
    }
    if (field_id(&x->keys, f[1], &ev->key) != 0) {
        *why = "bad percent-encoding in key";
        return -1;
    }
    if (strcmp(f[2], "del") == 0) {
        if (strcmp(f[3], "-") != 0) {
            *why = "a del event's value must be '-'";
            return -1;
        }
        ev->value = 0;
        return 0;
    }
    if (strcmp(f[2], "put") != 0) {
        *why = "event type is neither put nor del";
        return -1;
    }
    uint32_t v;
    if (field_id(&x->values, f[3], &v) != 0) {
        *why = "bad percent-encoding in value";
        return -1;
    }
    ev->value = v + 1;
    return 0;
}

static struct watcher *watcher_of(struct wctx *x, const char *id)
{
    uint32_t k = strmap_find(&x->ids, id, strlen(id));
    return k == STRMAP_NONE ? NULL : &x->w[k];
}

/* Parses one log. committed: only event lines, into x->log. */
static int parse_log(struct wctx *x, const char *name, const char *text, size_t len, bool committed,
                     char *errmsg, size_t errmsg_len)
{
    size_t line_no = 0;
    const char *p = text, *end = text + len;
    char *buf = NULL;
    size_t buf_cap = 0;
    int rv = -1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        size_t n = (size_t)(le - p);
        line_no++;
        if (n > 0 && p[n - 1] == '\r') {
            n--;
        }
        const char *next = le + 1;
        if (n == 0 || p[0] == '#') {
            p = next;
            continue;
        }
        if (grow((void **)&buf, &buf_cap, n + 1, 1) != 0) {
            snprintf(errmsg, errmsg_len, "out of memory");
            goto out;
        }
        memcpy(buf, p, n);
        buf[n] = '\0';
        char *f[WATCH_FIELDS_MAX];
        size_t nf = 0;
        char *s = buf;
        for (;;) {
            if (nf == WATCH_FIELDS_MAX) {
                snprintf(errmsg, errmsg_len, "%s:%zu: too many fields", name, line_no);
                goto out;
            }
            f[nf++] = s;
            char *tab = strchr(s, '\t');
            if (tab == NULL) {
                break;
            }
            *tab = '\0';
            s = tab + 1;
        }
        const char *why = NULL;
        const char *rec = f[0];
        bool of_watcher = strcmp(rec, "update") == 0 || strcmp(rec, "kv") == 0 ||
                          strcmp(rec, "ended") == 0 || (!committed && strcmp(rec, "event") == 0);
        struct watcher *w = nf >= 2 && of_watcher ? watcher_of(x, f[1]) : NULL;
        if (committed && strcmp(rec, "event") != 0 && strcmp(rec, "final") != 0) {
            why = "the committed log holds only event and final lines";
        } else if (!committed && strcmp(rec, "final") == 0) {
            why = "final belongs in the committed log";
        } else if (w != NULL && w->ended) {
            why = "a line of a watcher after its ended line";
        } else if (strcmp(rec, "final") == 0) {
            uint64_t fin;
            if (nf != 3 || parse_u64(f[2], &fin) != 0 || fin == 0) {
                why = "final needs 3 fields: final, log, a positive revision";
            } else if (x->final != 0) {
                why = "final given twice";
            } else {
                x->final = fin;
            }
        } else if (strcmp(rec, "ended") == 0) {
            uint64_t rev;
            if (nf != 3) {
                why = "ended needs 3 fields: ended, watcher, revision";
            } else if (w == NULL) {
                why = "ended of an undeclared watcher";
            } else if (parse_u64(f[2], &rev) != 0) {
                why = "ended revision is not an integer";
            } else {
                w->ended = true;
            }
        } else if (strcmp(rec, "read") == 0) {
            struct wread rd = {0};
            rd.line = line_no;
            uint32_t v = 0;
            if (nf != 7) {
                why = "read needs 7 fields: read, reader, revision, key, value, mod_revision, "
                      "known";
            } else if (f[1][0] == '\0') {
                why = "empty reader id";
            } else if (parse_u64(f[2], &rd.rev) != 0 || parse_u64(f[5], &rd.mod) != 0 ||
                       parse_u64(f[6], &rd.known) != 0) {
                why = "read revision, mod_revision or known is not an integer";
            } else if (field_id(&x->keys, f[3], &rd.key) != 0) {
                why = "bad percent-encoding in key";
            } else if (strcmp(f[4], "-") != 0 && field_id(&x->values, f[4], &v) != 0) {
                why = "bad percent-encoding in value";
            } else {
                rd.value = strcmp(f[4], "-") == 0 ? 0 : v + 1;
                rd.reader = strmap_intern(&x->readers, f[1], strlen(f[1]), NULL);
                if (rd.reader == STRMAP_NONE || grow((void **)&x->reads, &x->cap_reads,
                                                     x->n_reads + 1, sizeof(*x->reads)) != 0) {
                    snprintf(errmsg, errmsg_len, "out of memory");
                    goto out;
                }
                x->reads[x->n_reads++] = rd;
            }
        } else if (strcmp(rec, "watch") == 0) {
            if (nf != 5) {
                why = "watch needs 5 fields: watch, watcher, start, key|prefix, range";
            } else if (watcher_of(x, f[1]) != NULL || f[1][0] == '\0') {
                why = "watcher id empty or declared twice";
            } else {
                uint64_t start;
                uint32_t range;
                if (parse_u64(f[2], &start) != 0) {
                    why = "start revision is not an integer";
                } else if (strcmp(f[3], "key") != 0 && strcmp(f[3], "prefix") != 0) {
                    why = "range kind is neither key nor prefix";
                } else if (field_id(&x->keys, f[4], &range) != 0) {
                    why = "bad percent-encoding in range";
                } else {
                    uint32_t k = strmap_intern(&x->ids, f[1], strlen(f[1]), NULL);
                    if (k == STRMAP_NONE ||
                        grow((void **)&x->w, &x->cap_w, k + 1, sizeof(*x->w)) != 0) {
                        snprintf(errmsg, errmsg_len, "out of memory");
                        goto out;
                    }
                    memset(&x->w[k], 0, sizeof(x->w[k]));
                    x->w[k].id = x->ids.keys[k];
                    x->w[k].start = start;
                    x->w[k].prefix = strcmp(f[3], "prefix") == 0;
                    x->w[k].range = range;
                    x->w[k].line = line_no;
                }
            }
        } else if (strcmp(rec, "update") == 0) {
            struct wupd u = {UPD_EVENTS, 0, line_no, 0};
            if (nf != 4) {
                why = "update needs 4 fields: update, watcher, events|snapshot|progress, revision";
            } else if (w == NULL) {
                why = "update of an undeclared watcher";
            } else if (parse_u64(f[3], &u.rev) != 0) {
                why = "update revision is not an integer";
            } else if (strcmp(f[2], "events") == 0) {
                u.kind = UPD_EVENTS;
            } else if (strcmp(f[2], "snapshot") == 0) {
                u.kind = UPD_SNAPSHOT;
            } else if (strcmp(f[2], "progress") == 0) {
                u.kind = UPD_PROGRESS;
            } else {
                why = "update kind is not events, snapshot or progress";
            }
            if (why == NULL) {
                if (grow((void **)&w->upd, &w->cap_upd, w->n_upd + 1, sizeof(*w->upd)) != 0) {
                    snprintf(errmsg, errmsg_len, "out of memory");
                    goto out;
                }
                w->upd[w->n_upd++] = u;
            }
        } else if (strcmp(rec, "event") == 0) {
            struct wev ev = {0};
            ev.line = line_no;
            if (nf != 6) {
                why = "event needs 6 fields: event, watcher, revision, key, put|del, value";
            } else if (!committed && w == NULL) {
                why = "event of an undeclared watcher";
            } else if (!committed && (w->n_upd == 0 || w->upd[w->n_upd - 1].kind != UPD_EVENTS)) {
                why = "event outside an events update";
            } else if (parse_event(x, &f[2], &ev, &why) == 0) {
                if (committed) {
                    if (grow((void **)&x->log, &x->cap_log, x->n_log + 1, sizeof(*x->log)) != 0) {
                        snprintf(errmsg, errmsg_len, "out of memory");
                        goto out;
                    }
                    x->log[x->n_log++] = ev;
                } else {
                    if (grow((void **)&w->ev, &w->cap_ev, w->n_ev + 1, sizeof(*w->ev)) != 0) {
                        snprintf(errmsg, errmsg_len, "out of memory");
                        goto out;
                    }
                    ev.update = w->n_upd - 1;
                    w->upd[w->n_upd - 1].n_events++;
                    w->ev[w->n_ev++] = ev;
                }
            }
        } else if (strcmp(rec, "kv") == 0) {
            struct wkv kv = {0, 0, line_no, 0};
            uint32_t v;
            if (nf != 4) {
                why = "kv needs 4 fields: kv, watcher, key, value";
            } else if (w == NULL) {
                why = "kv of an undeclared watcher";
            } else if (w->n_upd == 0 || w->upd[w->n_upd - 1].kind != UPD_SNAPSHOT) {
                why = "kv outside a snapshot update";
            } else if (field_id(&x->keys, f[2], &kv.key) != 0 ||
                       field_id(&x->values, f[3], &v) != 0) {
                why = "bad percent-encoding in key or value";
            } else {
                kv.value = v + 1;
                kv.update = w->n_upd - 1;
                if (grow((void **)&w->kv, &w->cap_kv, w->n_kv + 1, sizeof(*w->kv)) != 0) {
                    snprintf(errmsg, errmsg_len, "out of memory");
                    goto out;
                }
                w->kv[w->n_kv++] = kv;
            }
        } else {
            why = "unknown record (expected watch, update, event, kv, ended or read)";
        }
        if (why != NULL) {
            snprintf(errmsg, errmsg_len, "%s:%zu: %s", name, line_no, why);
            goto out;
        }
        p = next;
    }
    rv = 0;
out:
    free(buf);
    return rv;
}

static int wev_cmp(const void *a, const void *b)
{
    const struct wev *x = a, *y = b;
    if (x->rev != y->rev) {
        return x->rev < y->rev ? -1 : 1;
    }
    return x->key < y->key ? -1 : x->key > y->key;
}

static bool in_range(const struct wctx *x, const struct watcher *w, uint32_t key)
{
    if (!w->prefix) {
        return key == w->range;
    }
    size_t rl = x->keys.lens[w->range];
    return x->keys.lens[key] >= rl && memcmp(x->keys.keys[key], x->keys.keys[w->range], rl) == 0;
}

/* A key or value percent-encoded as in the logs, for reports. The result
 * lives in one of a few rotating buffers: valid for the next three calls. */
static const char *enc(const struct strmap *m, uint32_t id)
{
    static char bufs[4][128];
    static unsigned next;
    char *b = bufs[next++ % 4];
    size_t o = 0;
    for (size_t k = 0; k < m->lens[id]; k++) {
        unsigned char c = (unsigned char)m->keys[id][k];
        if (o + 4 >= sizeof(bufs[0])) {
            memcpy(b + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x21 || c > 0x7e || c == '%') {
            o += (size_t)snprintf(b + o, 4, "%%%02X", c);
        } else {
            b[o++] = (char)c;
        }
    }
    b[o] = '\0';
    return b;
}

static void report(struct wctx *x, const struct watcher *w, enum check_anomaly kind, uint64_t rev,
                   size_t line, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void report(struct wctx *x, const struct watcher *w, enum check_anomaly kind, uint64_t rev,
                   size_t line, const char *fmt, ...)
{
    x->out->anomalies[kind]++;
    if (x->reports++ >= REPORTS_PER_WATCHER_MAX) {
        return;
    }
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    fprintf(x->fj, "%s{\"watcher\":", x->first_report ? "" : ",");
    x->first_report = false;
    check_json_string(x->fj, w->id, strlen(w->id));
    fprintf(x->fj,
            ",\"kind\":\"%s\",\"revision\":%llu,\"line\":%zu,\"detail\":", check_anomaly_name(kind),
            (unsigned long long)rev, line);
    check_json_string(x->fj, detail, strlen(detail));
    fprintf(x->fj, "}");
    fprintf(x->ft, "  watcher %s: %s at revision %llu", w->id, check_anomaly_name(kind),
            (unsigned long long)rev);
    if (line > 0) {
        fprintf(x->ft, " (watch log line %zu)", line);
    }
    fprintf(x->ft, ": %s\n", detail);
}

/* Pass 1: order of delivery. */
static int check_order(struct wctx *x, const struct watcher *w)
{
    struct strmap seen;
    strmap_init(&seen);
    uint64_t last_rev = 0;
    size_t last_update = SIZE_MAX;
    bool last_from_events = false;
    size_t e = 0;
    for (size_t u = 0; u < w->n_upd; u++) {
        const struct wupd *up = &w->upd[u];
        if (up->kind != UPD_EVENTS) {
            bool ok = up->kind == UPD_PROGRESS ? up->rev >= last_rev : up->rev > last_rev;
            if (!ok && !(up->kind == UPD_SNAPSHOT && last_rev == 0)) {
                report(x, w, ANOMALY_REORDER, up->rev, up->line,
                       "%s revision %llu after revision %llu was delivered",
                       up->kind == UPD_PROGRESS ? "progress" : "snapshot",
                       (unsigned long long)up->rev, (unsigned long long)last_rev);
            }
            if (up->rev > last_rev) {
                last_rev = up->rev;
                last_update = u;
                last_from_events = false;
            }
            continue;
        }
        uint64_t max_rev = 0;
        if (up->n_events == 0) {
            report(x, w, ANOMALY_BAD_UPDATE, up->rev, up->line, "events update without events");
        }
        for (; e < w->n_ev && w->ev[e].update == u; e++) {
            const struct wev *ev = &w->ev[e];
            uint8_t pair[12];
            memcpy(pair, &ev->rev, 8);
            memcpy(pair + 8, &ev->key, 4);
            int added = 0;
            if (strmap_intern(&seen, pair, sizeof(pair), &added) == STRMAP_NONE) {
                strmap_free(&seen);
                return -1;
            }
            max_rev = ev->rev > max_rev ? ev->rev : max_rev;
            if (!added) {
                report(x, w, ANOMALY_DUPLICATE, ev->rev, ev->line, "key %s delivered again",
                       enc(&x->keys, ev->key));
            } else if (ev->rev < last_rev || (ev->rev == last_rev && !last_from_events)) {
                report(x, w, ANOMALY_REORDER, ev->rev, ev->line,
                       "key %s of revision %llu delivered after revision %llu",
                       enc(&x->keys, ev->key), (unsigned long long)ev->rev,
                       (unsigned long long)last_rev);
            } else if (ev->rev == last_rev && last_update != u) {
                report(x, w, ANOMALY_SPLIT, ev->rev, ev->line,
                       "key %s of revision %llu came in a later update than the revision's "
                       "other events (line %zu)",
                       enc(&x->keys, ev->key), (unsigned long long)ev->rev,
                       w->upd[last_update].line);
            }
            if (ev->rev >= last_rev) {
                last_rev = ev->rev;
                last_update = u;
                last_from_events = true;
            }
        }
        if (up->n_events > 0 && max_rev != up->rev) {
            report(x, w, ANOMALY_BAD_UPDATE, up->rev, up->line,
                   "update revision %llu but its last event is at revision %llu",
                   (unsigned long long)up->rev, (unsigned long long)max_rev);
        }
    }
    strmap_free(&seen);
    return 0;
}

struct interval
{
    uint64_t lo, hi;
};

/* Compares a snapshot with the committed state of the range at its revision. */
static int check_snapshot(struct wctx *x, const struct watcher *w, size_t u)
{
    const struct wupd *up = &w->upd[u];
    uint32_t *want = calloc(x->keys.n + 1, sizeof(*want));
    uint32_t *got = calloc(x->keys.n + 1, sizeof(*got));
    if (want == NULL || got == NULL) {
        free(want);
        free(got);
        return -1;
    }
    for (size_t k = 0; k < x->n_log && x->log[k].rev <= up->rev; k++) {
        want[x->log[k].key] = x->log[k].value;
    }
    for (size_t k = 0; k < w->n_kv; k++) {
        if (w->kv[k].update != u) {
            continue;
        }
        if (got[w->kv[k].key] != 0) {
            report(x, w, ANOMALY_SNAPSHOT, up->rev, w->kv[k].line, "key %s listed twice",
                   enc(&x->keys, w->kv[k].key));
        }
        got[w->kv[k].key] = w->kv[k].value;
    }
    for (uint32_t key = 0; key < x->keys.n; key++) {
        if (!in_range(x, w, key)) {
            if (got[key] != 0) {
                report(x, w, ANOMALY_SNAPSHOT, up->rev, up->line, "key %s is outside the range",
                       enc(&x->keys, key));
            }
            continue;
        }
        if (want[key] != got[key]) {
            report(x, w, ANOMALY_SNAPSHOT, up->rev, up->line,
                   "key %s: snapshot has %s%s, committed state has %s%s", enc(&x->keys, key),
                   got[key] ? "value " : "no value", got[key] ? enc(&x->values, got[key] - 1) : "",
                   want[key] ? "value " : "no value",
                   want[key] ? enc(&x->values, want[key] - 1) : "");
        }
    }
    free(want);
    free(got);
    return 0;
}

/* Passes 2 and 3. */
static int check_content(struct wctx *x, const struct watcher *w)
{
    struct interval *iv = calloc(w->n_upd + 1, sizeof(*iv));
    struct wev *d = malloc((w->n_ev + 1) * sizeof(*d));
    size_t n_iv = 0, n_d = 0;
    int rv = -1;
    if (iv == NULL || d == NULL) {
        goto out;
    }
    uint64_t c = w->start;
    size_t e = 0;
    for (size_t u = 0; u < w->n_upd; u++) {
        const struct wupd *up = &w->upd[u];
        if (up->kind == UPD_SNAPSHOT) {
            if (check_snapshot(x, w, u) != 0) {
                goto out;
            }
            c = up->rev + 1 > c ? up->rev + 1 : c;
            continue;
        }
        if (c == 0) {
            /* Unknown start: begin at what the watcher first showed. */
            if (up->kind == UPD_PROGRESS) {
                c = up->rev + 1;
                continue;
            }
            c = UINT64_MAX;
            for (; e < w->n_ev && w->ev[e].update <= u; e++) {
                c = w->ev[e].rev < c ? w->ev[e].rev : c;
            }
        }
        if (up->rev >= c) {
            iv[n_iv++] = (struct interval){c, up->rev};
            c = up->rev + 1;
        }
    }
    /* The delivered events, each (revision, key) once. */
    if (w->n_ev > 0) {
        memcpy(d, w->ev, w->n_ev * sizeof(*d));
        qsort(d, w->n_ev, sizeof(*d), wev_cmp);
    }
    for (size_t k = 0; k < w->n_ev; k++) {
        if (n_d == 0 || wev_cmp(&d[n_d - 1], &d[k]) != 0) {
            d[n_d++] = d[k];
        }
    }
    /* Merge the committed log (in range) with the delivered events by revision. */
    size_t i = 0, j = 0, v = 0;
    while (i < x->n_log || j < n_d) {
        uint64_t r = UINT64_MAX;
        while (i < x->n_log && !in_range(x, w, x->log[i].key)) {
            i++;
        }
        if (i < x->n_log) {
            r = x->log[i].rev;
        }
        if (j < n_d && d[j].rev < r) {
            r = d[j].rev;
        }
        if (r == UINT64_MAX) {
            break;
        }
        size_t i0 = i, j0 = j;
        size_t n_want = 0;
        for (; i < x->n_log && x->log[i].rev == r; i++) {
            n_want += in_range(x, w, x->log[i].key);
        }
        for (; j < n_d && d[j].rev == r; j++) {
        }
        while (v < n_iv && iv[v].hi < r) {
            v++;
        }
        bool vouched = v < n_iv && iv[v].lo <= r;
        if (!vouched) {
            if (j > j0 && r < w->start) {
                report(x, w, ANOMALY_MISMATCH, r, d[j0].line,
                       "revision %llu delivered but the watch starts at %llu",
                       (unsigned long long)r, (unsigned long long)w->start);
            }
            continue;
        }
        if (j == j0) {
            report(x, w, ANOMALY_GAP, r, 0,
                   "committed revision %llu (%zu events in range, e.g. key %s) never delivered",
                   (unsigned long long)r, n_want, enc(&x->keys, x->log[i0].key));
            continue;
        }
        if (n_want == 0) {
            report(x, w, ANOMALY_MISMATCH, r, d[j0].line,
                   "revision %llu delivered but nothing in range was committed at it",
                   (unsigned long long)r);
            continue;
        }
        /* Both sorted by key: compare element by element. */
        size_t a = i0, b = j0;
        for (;;) {
            while (a < i && !in_range(x, w, x->log[a].key)) {
                a++;
            }
            if (a == i && b == j) {
                break;
            }
            if (a == i || (b < j && d[b].key < x->log[a].key)) {
                report(x, w, ANOMALY_MISMATCH, r, d[b].line,
                       "key %s was not changed at revision %llu", enc(&x->keys, d[b].key),
                       (unsigned long long)r);
                b++;
            } else if (b == j || x->log[a].key < d[b].key) {
                report(x, w, ANOMALY_MISMATCH, r, 0,
                       "committed event of key %s at revision %llu missing from the update",
                       enc(&x->keys, x->log[a].key), (unsigned long long)r);
                a++;
            } else {
                if (x->log[a].value != d[b].value) {
                    report(x, w, ANOMALY_MISMATCH, r, d[b].line,
                           "key %s: delivered %s %s, committed %s %s", enc(&x->keys, d[b].key),
                           d[b].value ? "put" : "del",
                           d[b].value ? enc(&x->values, d[b].value - 1) : "-",
                           x->log[a].value ? "put" : "del",
                           x->log[a].value ? enc(&x->values, x->log[a].value - 1) : "-");
                }
                a++;
                b++;
            }
        }
    }
    rv = 0;
out:
    free(iv);
    free(d);
    return rv;
}

/* A watcher that the harness did not end must have vouched for the final
 * revision: the harness waits for that (with progress requests) before it
 * stops the watchers, so one that never got there is stuck or lost. */
static void check_behind(struct wctx *x, const struct watcher *w)
{
    uint64_t vouched = 0;
    if (x->final == 0 || w->ended) {
        return;
    }
    for (size_t u = 0; u < w->n_upd; u++) {
        vouched = w->upd[u].rev > vouched ? w->upd[u].rev : vouched;
    }
    if (vouched < x->final) {
        report(x, w, ANOMALY_BEHIND, vouched, w->line,
               "the watcher never delivered up to the final revision %llu: its last update is at "
               "revision %llu",
               (unsigned long long)x->final, (unsigned long long)vouched);
    }
}

static void report_read(struct wctx *x, const struct wread *rd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report_read(struct wctx *x, const struct wread *rd, const char *fmt, ...)
{
    x->out->anomalies[ANOMALY_STALE_READ]++;
    if (x->read_reports++ >= REPORTS_PER_WATCHER_MAX) {
        return;
    }
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    const char *reader = x->readers.keys[rd->reader];
    fprintf(x->fj, "%s{\"reader\":", x->first_report ? "" : ",");
    x->first_report = false;
    check_json_string(x->fj, reader, strlen(reader));
    fprintf(x->fj, ",\"kind\":\"%s\",\"revision\":%llu,\"line\":%zu,\"detail\":",
            check_anomaly_name(ANOMALY_STALE_READ), (unsigned long long)rd->rev, rd->line);
    check_json_string(x->fj, detail, strlen(detail));
    fprintf(x->fj, "}");
    fprintf(x->ft, "  reader %s: stale-read at revision %llu (watch log line %zu): %s\n", reader,
            (unsigned long long)rd->rev, rd->line, detail);
}

static int wev_key_cmp(const void *a, const void *b)
{
    const struct wev *x = a, *y = b;
    if (x->key != y->key) {
        return x->key < y->key ? -1 : 1;
    }
    return x->rev < y->rev ? -1 : x->rev > y->rev;
}

/* What one reader saw, for the staleness figures. */
struct reader_stats
{
    size_t reads, absent;
    size_t behind;    /* reads at a revision below the newest acknowledged write when sent */
    uint64_t lag_max; /* known - revision, over those */
    uint64_t lag_sum;
    size_t backwards; /* reads at a lower revision than the reader's previous read */
    uint64_t last_rev;
};

/* Every read against the committed state of its key at its revision; the
 * staleness figures go to the summary. */
static int check_reads(struct wctx *x)
{
    uint64_t bound = x->final;
    struct wev *byk = NULL;
    size_t *first = NULL;
    struct reader_stats *st = NULL;
    int rv = -1;
    if (x->n_reads == 0) {
        return 0;
    }
    if (bound == 0) {
        /* No final revision given: the newest committed event bounds. */
        bound = x->n_log > 0 ? x->log[x->n_log - 1].rev : 0;
    }
    byk = malloc((x->n_log + 1) * sizeof(*byk));
    first = calloc(x->keys.n + 1, sizeof(*first));
    st = calloc(x->readers.n, sizeof(*st));
    if (byk == NULL || first == NULL || st == NULL) {
        goto out;
    }
    if (x->n_log > 0) {
        memcpy(byk, x->log, x->n_log * sizeof(*byk));
        qsort(byk, x->n_log, sizeof(*byk), wev_key_cmp);
    }
    /* first[k] .. first[k + 1]: key k's committed events, by revision. */
    for (size_t k = 0; k < x->n_log; k++) {
        first[byk[k].key + 1]++;
    }
    for (uint32_t k = 0; k < x->keys.n; k++) {
        first[k + 1] += first[k];
    }
    for (size_t k = 0; k < x->n_reads; k++) {
        const struct wread *rd = &x->reads[k];
        struct reader_stats *s = &st[rd->reader];
        s->reads++;
        s->absent += rd->value == 0;
        if (rd->known > rd->rev) {
            uint64_t lag = rd->known - rd->rev;
            s->behind++;
            s->lag_sum += lag;
            s->lag_max = lag > s->lag_max ? lag : s->lag_max;
        }
        s->backwards += rd->rev < s->last_rev;
        s->last_rev = rd->rev;
        if (rd->rev > bound) {
            report_read(
                x, rd, "key %s read at revision %llu, beyond the final committed revision %llu",
                enc(&x->keys, rd->key), (unsigned long long)rd->rev, (unsigned long long)bound);
            continue;
        }
        /* The key's last committed event at or before the read's revision. */
        size_t lo = first[rd->key], hi = first[rd->key + 1];
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (byk[mid].rev <= rd->rev) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        const struct wev *at = lo > first[rd->key] ? &byk[lo - 1] : NULL;
        uint32_t want = at != NULL ? at->value : 0;
        uint64_t want_mod = want != 0 ? at->rev : 0;
        if (want != rd->value || want_mod != rd->mod) {
            report_read(x, rd,
                        "key %s at revision %llu: read %s%s (mod_revision %llu), committed "
                        "state has %s%s (mod_revision %llu)",
                        enc(&x->keys, rd->key), (unsigned long long)rd->rev,
                        rd->value ? "value " : "no value",
                        rd->value ? enc(&x->values, rd->value - 1) : "",
                        (unsigned long long)rd->mod, want ? "value " : "no value",
                        want ? enc(&x->values, want - 1) : "", (unsigned long long)want_mod);
        }
    }
    if (x->read_reports > REPORTS_PER_WATCHER_MAX) {
        fprintf(x->ft, "  stale reads: %zu more anomalies not listed\n",
                x->read_reports - REPORTS_PER_WATCHER_MAX);
    }
    /* The figures: in the text, and as a JSON member (the caller has the
     * object open). */
    fprintf(x->ft, "  stale reads (informational: how far behind the newest acknowledged write "
                   "each reader was when it sent a read):\n");
    for (uint32_t r = 0; r < x->readers.n; r++) {
        const struct reader_stats *s = &st[r];
        fprintf(x->ft,
                "    reader %s: %zu reads (%zu absent), %zu behind by up to %llu revisions "
                "(mean %.1f), revision went back %zu times\n",
                x->readers.keys[r], s->reads, s->absent, s->behind, (unsigned long long)s->lag_max,
                s->behind > 0 ? (double)s->lag_sum / (double)s->behind : 0.0, s->backwards);
    }
    x->reader_stats = st;
    st = NULL;
    rv = 0;
out:
    free(byk);
    free(first);
    free(st);
    return rv;
}

int check_watch_text(const char *watch_log, size_t watch_len, const char *committed_log,
                     size_t committed_len, struct check_result *out, char *errmsg,
                     size_t errmsg_len)
{
    struct wctx x;
    memset(&x, 0, sizeof(x));
    memset(out, 0, sizeof(*out));
    strmap_init(&x.keys);
    strmap_init(&x.values);
    strmap_init(&x.ids);
    strmap_init(&x.readers);
    x.out = out;
    x.first_report = true;
    char *json = NULL, *text = NULL;
    size_t json_len, text_len;
    int rv = -1;
    if (parse_log(&x, "committed log", committed_log, committed_len, true, errmsg, errmsg_len) !=
            0 ||
        parse_log(&x, "watch log", watch_log, watch_len, false, errmsg, errmsg_len) != 0) {
        goto out;
    }
    if (x.n_log > 0) {
        qsort(x.log, x.n_log, sizeof(*x.log), wev_cmp);
    }
    for (size_t k = 1; k < x.n_log; k++) {
        if (wev_cmp(&x.log[k - 1], &x.log[k]) == 0) {
            snprintf(errmsg, errmsg_len, "committed log:%zu: key %s changed twice at revision %llu",
                     x.log[k].line, enc(&x.keys, x.log[k].key), (unsigned long long)x.log[k].rev);
            goto out;
        }
    }
    x.fj = open_memstream(&json, &json_len);
    x.ft = open_memstream(&text, &text_len);
    if (x.fj == NULL || x.ft == NULL) {
        snprintf(errmsg, errmsg_len, "out of memory");
        goto out;
    }
    fprintf(x.fj, "{\"check\":\"watch\",\"reports\":[");
    size_t n_events = 0, n_updates = 0;
    for (size_t k = 0; k < x.ids.n; k++) {
        x.reports = 0;
        n_events += x.w[k].n_ev;
        n_updates += x.w[k].n_upd;
        if (check_order(&x, &x.w[k]) != 0 || check_content(&x, &x.w[k]) != 0) {
            snprintf(errmsg, errmsg_len, "out of memory");
            goto out;
        }
        check_behind(&x, &x.w[k]);
        if (x.reports > REPORTS_PER_WATCHER_MAX) {
            fprintf(x.ft, "  watcher %s: %zu more anomalies not listed\n", x.w[k].id,
                    x.reports - REPORTS_PER_WATCHER_MAX);
        }
    }
    if (check_reads(&x) != 0) {
        snprintf(errmsg, errmsg_len, "out of memory");
        goto out;
    }
    size_t bad = 0;
    for (int k = ANOMALY_GAP; k <= ANOMALY_STALE_READ; k++) {
        bad += out->anomalies[k];
    }
    out->verdict = bad > 0 ? CHECK_INVALID : CHECK_VALID;
    fprintf(x.fj,
            "],\"verdict\":\"%s\",\"watchers\":%zu,\"updates\":%zu,\"events\":%zu,"
            "\"committed_events\":%zu,\"final_revision\":%llu,\"reads\":%zu,\"anomalies\":{",
            check_verdict_name(out->verdict), x.ids.n, n_updates, n_events, x.n_log,
            (unsigned long long)x.final, x.n_reads);
    for (int k = ANOMALY_GAP; k <= ANOMALY_STALE_READ; k++) {
        fprintf(x.fj, "%s\"%s\":%zu", k > ANOMALY_GAP ? "," : "",
                check_anomaly_name((enum check_anomaly)k), out->anomalies[k]);
    }
    fprintf(x.fj, "},\"readers\":[");
    for (uint32_t r = 0; x.reader_stats != NULL && r < x.readers.n; r++) {
        const struct reader_stats *rs = &x.reader_stats[r];
        fprintf(x.fj, "%s{\"reader\":", r > 0 ? "," : "");
        check_json_string(x.fj, x.readers.keys[r], x.readers.lens[r]);
        fprintf(x.fj,
                ",\"reads\":%zu,\"absent\":%zu,\"behind\":%zu,\"lag_max\":%llu,"
                "\"lag_mean\":%.2f,\"backwards\":%zu}",
                rs->reads, rs->absent, rs->behind, (unsigned long long)rs->lag_max,
                rs->behind > 0 ? (double)rs->lag_sum / (double)rs->behind : 0.0, rs->backwards);
    }
    fprintf(x.fj, "]}");
    fclose(x.fj);
    x.fj = NULL;
    fclose(x.ft);
    x.ft = NULL;
    size_t cap = 1024 + text_len;
    out->text = malloc(cap);
    if (out->text == NULL) {
        snprintf(errmsg, errmsg_len, "out of memory");
        goto out;
    }
    snprintf(out->text, cap,
             "watch: %s: %zu watchers, %zu updates, %zu events, %zu committed events (final "
             "revision %llu): %zu gaps, %zu duplicates, %zu reorders, %zu splits, "
             "%zu mismatches, %zu bad snapshots, %zu bad updates, %zu behind; %zu stale reads: "
             "%zu bad\n%s",
             check_verdict_name(out->verdict), x.ids.n, n_updates, n_events, x.n_log,
             (unsigned long long)x.final, out->anomalies[ANOMALY_GAP],
             out->anomalies[ANOMALY_DUPLICATE], out->anomalies[ANOMALY_REORDER],
             out->anomalies[ANOMALY_SPLIT], out->anomalies[ANOMALY_MISMATCH],
             out->anomalies[ANOMALY_SNAPSHOT], out->anomalies[ANOMALY_BAD_UPDATE],
             out->anomalies[ANOMALY_BEHIND], x.n_reads, out->anomalies[ANOMALY_STALE_READ], text);
    out->json = json;
    json = NULL;
    rv = 0;
out:
    if (x.fj != NULL) {
        fclose(x.fj);
    }
    if (x.ft != NULL) {
        fclose(x.ft);
    }
    free(json);
    free(text);
    for (size_t k = 0; k < x.ids.n; k++) {
        free(x.w[k].upd);
        free(x.w[k].ev);
        free(x.w[k].kv);
    }
    free(x.w);
    free(x.log);
    free(x.reads);
    free(x.reader_stats);
    strmap_free(&x.readers);
    strmap_free(&x.keys);
    strmap_free(&x.values);
    strmap_free(&x.ids);
    if (rv != 0) {
        check_result_free(out);
    }
    return rv;
}
