#include "dr_archive.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "artifact.h"
#include "entry.h"
#include "errbuf.h"
#include "json.h"
#include "spool.h"

void dr_hex64(uint64_t v, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, v);
}

bool dr_parse_hex64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;
    if (len != 16) {
        return false;
    }
    for (i = 0; i < len; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9') {
            d = (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else {
            return false;
        }
        v = v << 4 | d;
    }
    *out = v;
    return true;
}

void dr_name_snapshot(uint64_t cluster_id, uint64_t index, char *out, size_t len)
{
    snprintf(out, len, "%016" PRIx64 "/snap/%020" PRIu64 ".snap", cluster_id, index);
}

void dr_name_manifest(uint64_t cluster_id, uint64_t index, char *out, size_t len)
{
    snprintf(out, len, "%016" PRIx64 "/snap/%020" PRIu64 ".json", cluster_id, index);
}

void dr_name_segment(uint64_t cluster_id, uint64_t after, uint64_t last, uint64_t revision,
                     int64_t time_ms, char *out, size_t len)
{
    snprintf(out, len,
             "%016" PRIx64 "/log/%020" PRIu64 "-%020" PRIu64 "-%020" PRIu64 "-%013" PRId64 ".seg",
             cluster_id, after, last, revision, time_ms < 0 ? 0 : time_ms);
}

void dr_segment_name(const struct dr_segment *sg, char out[DR_SEGMENT_NAME_MAX])
{
    dr_name_segment(sg->cluster_id, sg->after, sg->last, sg->revision, sg->time_ms, out,
                    DR_SEGMENT_NAME_MAX);
}

int dr_manifest_json(const struct dr_snapshot *s, bool full, struct buf *out)
{
    struct json_writer w;
    char hex[17];
    json_writer_init(&w, out);
    json_object_begin(&w);
    if (full) {
        json_key(&w, "name");
        json_cstring(&w, s->name);
    }
    json_key(&w, "format");
    json_uint(&w, DR_FORMAT);
    json_key(&w, "kind");
    json_cstring(&w, "snapshot");
    dr_hex64(s->cluster_id, hex);
    json_key(&w, "cluster_id");
    json_cstring(&w, hex);
    json_key(&w, "revision");
    json_uint(&w, s->revision);
    json_key(&w, "raft_index");
    json_uint(&w, s->index);
    json_key(&w, "raft_term");
    json_uint(&w, s->term);
    json_key(&w, "time_ms");
    json_int(&w, s->time_ms);
    json_key(&w, "keys");
    json_uint(&w, s->keys);
    json_key(&w, "versions");
    json_uint(&w, s->versions);
    json_key(&w, "bytes_raw");
    json_uint(&w, s->bytes_raw);
    if (full) {
        json_key(&w, "bytes_stored");
        json_uint(&w, s->bytes_stored);
        json_key(&w, "sha256");
        json_cstring(&w, s->sha256);
    }
    dr_hex64(s->state_hash, hex);
    json_key(&w, "state_hash");
    json_cstring(&w, hex);
    json_object_end(&w);
    return json_writer_error(&w);
}

static bool get_uint(const struct json_value *o, const char *name, uint64_t *out)
{
    const struct json_value *v = json_get(o, name);
    if (v == NULL || v->type != JSON_NUMBER || !v->is_uint) {
        return false;
    }
    *out = v->uint;
    return true;
}

static bool get_hex(const struct json_value *o, const char *name, uint64_t *out)
{
    const struct json_value *v = json_get(o, name);
    return v != NULL && v->type == JSON_STRING && dr_parse_hex64(v->str, v->len, out);
}

int dr_manifest_parse(const char *text, size_t len, struct dr_snapshot *s, char *err, size_t errlen)
{
    struct arena a;
    struct json_value *root;
    const struct json_value *v;
    uint64_t format = 0;
    uint64_t t = 0;
    int rv = -1;
    char msg[160];
    memset(s, 0, sizeof(*s));
    arena_init(&a);
    if (json_parse(text, len, &a, &root, msg, sizeof(msg)) != 0) {
        errf(err, errlen, "manifest is not JSON: %s", msg);
        goto out;
    }
    if (!get_uint(root, "format", &format) || format != DR_FORMAT) {
        errf(err, errlen, "manifest format is not %d", DR_FORMAT);
        goto out;
    }
    if (!get_hex(root, "cluster_id", &s->cluster_id) || !get_uint(root, "revision", &s->revision) ||
        !get_uint(root, "raft_index", &s->index) || !get_uint(root, "raft_term", &s->term) ||
        !get_uint(root, "time_ms", &t) || !get_uint(root, "keys", &s->keys) ||
        !get_uint(root, "versions", &s->versions) || !get_uint(root, "bytes_raw", &s->bytes_raw) ||
        !get_hex(root, "state_hash", &s->state_hash)) {
        errf(err, errlen, "manifest lacks a field or has one of the wrong type");
        goto out;
    }
    s->time_ms = (int64_t)t;
    get_uint(root, "bytes_stored", &s->bytes_stored);
    v = json_get(root, "sha256");
    if (v != NULL && v->type == JSON_STRING && v->len == 64) {
        memcpy(s->sha256, v->str, 64);
    }
    v = json_get(root, "name");
    if (v != NULL && v->type == JSON_STRING && v->len < sizeof(s->name)) {
        memcpy(s->name, v->str, v->len);
    }
    rv = 0;
out:
    arena_free(&a);
    return rv;
}

/* Durations and times. */

int dr_parse_duration(const char *text, size_t len, uint64_t *ms)
{
    uint64_t v = 0;
    size_t i = 0;
    uint64_t unit = 1;
    if (len == 0) {
        return -1;
    }
    while (i < len && text[i] >= '0' && text[i] <= '9') {
        if (v > UINT64_MAX / 10 - 10) {
            return -1;
        }
        v = v * 10 + (uint64_t)(text[i] - '0');
        i++;
    }
    if (i == 0) {
        return -1;
    }
    if (i < len) {
        const char *u = text + i;
        size_t ul = len - i;
        if (ul == 2 && memcmp(u, "ms", 2) == 0) {
            unit = 1;
        } else if (ul == 1 && *u == 's') {
            unit = 1000;
        } else if (ul == 1 && *u == 'm') {
            unit = 60000;
        } else if (ul == 1 && *u == 'h') {
            unit = 3600000;
        } else if (ul == 1 && *u == 'd') {
            unit = 86400000;
        } else if (ul == 1 && *u == 'w') {
            unit = 7 * 86400000ull;
        } else if (ul == 1 && *u == 'y') {
            unit = 365 * 86400000ull;
        } else {
            return -1;
        }
    }
    if (v > UINT64_MAX / unit) {
        return -1;
    }
    *ms = v * unit;
    return 0;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned day)
{
    /* Howard Hinnant's well-known algorithm (public domain). */
    int64_t era;
    unsigned yoe;
    unsigned doy;
    unsigned doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int dr_parse_time(const char *text, int64_t *ms)
{
    int y;
    unsigned mo;
    unsigned d;
    unsigned h;
    unsigned mi;
    unsigned s;
    int n = 0;
    const char *p;
    int64_t frac = 0;
    int64_t off = 0;
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (*text >= '0' && *text <= '9' && *end == '\0' && errno == 0) {
        *ms = (int64_t)v;
        return 0;
    }
    if (sscanf(text, "%4d-%2u-%2uT%2u:%2u:%2u%n", &y, &mo, &d, &h, &mi, &s, &n) != 6 || mo < 1 ||
        mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
        return -1;
    }
    p = text + n;
    if (*p == '.') {
        int digits = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3) {
                frac = frac * 10 + (*p - '0');
            }
            digits++;
            p++;
        }
        while (digits > 0 && digits < 3) {
            frac *= 10;
            digits++;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        unsigned oh;
        unsigned om;
        int sign = *p == '-' ? -1 : 1;
        if (sscanf(p + 1, "%2u:%2u", &oh, &om) != 2) {
            return -1;
        }
        off = sign * (int64_t)(oh * 60 + om) * 60000;
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0') {
        return -1;
    }
    *ms = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) * 1000 + frac - off;
    return 0;
}

/* Listing. */

struct lister
{
    struct dr_catalog *cat;
    uint64_t cluster_id; /* 0: every cluster */
    char **manifests;    /* names of manifests to fetch */
    unsigned n_manifests;
    unsigned cap_manifests;
    unsigned cap_segs;
    int failed;
};

static int list_cb(void *arg, const char *name, uint64_t size)
{
    struct lister *l = arg;
    uint64_t cid;
    const char *rest;
    if (strlen(name) < 17 || name[16] != '/' || !dr_parse_hex64(name, 16, &cid)) {
        return 0; /* not ours */
    }
    {
        unsigned i;
        for (i = 0; i < l->cat->n_clusters && l->cat->clusters[i] != cid; i++) {
        }
        if (i == l->cat->n_clusters && i < sizeof(l->cat->clusters) / sizeof(l->cat->clusters[0])) {
            l->cat->clusters[l->cat->n_clusters++] = cid;
        }
    }
    if (l->cluster_id != 0 && cid != l->cluster_id) {
        return 0;
    }
    rest = name + 17;
    if (strncmp(rest, "snap/", 5) == 0 && strlen(rest) == 5 + 20 + 5 &&
        strcmp(rest + 25, ".json") == 0) {
        if (l->n_manifests == l->cap_manifests) {
            unsigned cap = l->cap_manifests == 0 ? 16 : l->cap_manifests * 2;
            char **m = realloc(l->manifests, cap * sizeof(*m));
            if (m == NULL) {
                l->failed = 1;
                return 1;
            }
            l->manifests = m;
            l->cap_manifests = cap;
        }
        l->manifests[l->n_manifests] = strdup(name);
        if (l->manifests[l->n_manifests] == NULL) {
            l->failed = 1;
            return 1;
        }
        l->n_manifests++;
    } else if (strncmp(rest, "log/", 4) == 0) {
        struct dr_segment sg;
        unsigned long long after;
        unsigned long long last;
        unsigned long long rev;
        long long t;
        int used = 0;
        char canonical[DR_SEGMENT_NAME_MAX];
        memset(&sg, 0, sizeof(sg));
        if (sscanf(rest + 4, "%20llu-%20llu-%20llu-%13lld.seg%n", &after, &last, &rev, &t, &used) !=
                4 ||
            rest[4 + used] != '\0' || last <= after || t < 0) {
            return 0;
        }
        sg.cluster_id = cid;
        sg.after = after;
        sg.last = last;
        sg.revision = rev;
        sg.time_ms = t;
        sg.size = size;
        /* The catalog keeps the numbers, not the name (a long archive holds
         * hundreds of thousands of segments): only names Cairn would write. */
        dr_segment_name(&sg, canonical);
        if (strcmp(canonical, name) != 0) {
            return 0;
        }
        if (l->cat->n_segs == l->cap_segs) {
            unsigned cap = l->cap_segs == 0 ? 64 : l->cap_segs * 2;
            struct dr_segment *s = realloc(l->cat->segs, cap * sizeof(*s));
            if (s == NULL) {
                l->failed = 1;
                return 1;
            }
            l->cat->segs = s;
            l->cap_segs = cap;
        }
        l->cat->segs[l->cat->n_segs++] = sg;
    }
    return 0;
}

static int cmp_snap(const void *a, const void *b)
{
    const struct dr_snapshot *x = a;
    const struct dr_snapshot *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int cmp_seg(const void *a, const void *b)
{
    const struct dr_segment *x = a;
    const struct dr_segment *y = b;
    if (x->after != y->after) {
        return x->after < y->after ? -1 : 1;
    }
    return x->last < y->last ? -1 : x->last > y->last;
}

/* Walking chains of segments: the segment that continues a chain at index
 * cur (after <= cur < last), reaching furthest, or NULL where the chain ends.
 * cur must not decrease from one call to the next on the same walk, so that
 * a walk over the whole catalog is one pass (segments are sorted by after):
 * a long archive holds hundreds of thousands of segments. */
struct seg_walk
{
    const struct dr_catalog *cat;
    unsigned pos;                   /* segments before it have after <= cur */
    const struct dr_segment *reach; /* of those, the one whose last is largest */
};

static void seg_walk_init(struct seg_walk *w, const struct dr_catalog *cat)
{
    w->cat = cat;
    w->pos = 0;
    w->reach = NULL;
}

static const struct dr_segment *seg_walk_next(struct seg_walk *w, uint64_t cur)
{
    while (w->pos < w->cat->n_segs && w->cat->segs[w->pos].after <= cur) {
        const struct dr_segment *s = &w->cat->segs[w->pos++];
        if (w->reach == NULL || s->last > w->reach->last) {
            w->reach = s;
        }
    }
    return w->reach != NULL && w->reach->last > cur ? w->reach : NULL;
}

/* A snapshot inside the range before it adds nothing: its chain reaches
 * exactly as far as that range's (whatever covers the log from the earlier
 * start covers it from the later one, and the other way round), so each
 * range is one walk, and all of them one pass. */
static void build_ranges(struct dr_catalog *cat)
{
    unsigned i;
    struct seg_walk w;
    cat->ranges = calloc(cat->n_snaps > 0 ? cat->n_snaps : 1, sizeof(*cat->ranges));
    if (cat->ranges == NULL) {
        return;
    }
    seg_walk_init(&w, cat);
    for (i = 0; i < cat->n_snaps; i++) {
        const struct dr_snapshot *sn = &cat->snaps[i];
        struct dr_range r = {sn->index,    sn->revision, sn->time_ms,
                             sn->revision, sn->time_ms,  sn->index};
        uint64_t cur = sn->index;
        const struct dr_segment *s;
        if (cat->n_ranges > 0 && cat->ranges[cat->n_ranges - 1].to_index >= sn->index) {
            continue;
        }
        while ((s = seg_walk_next(&w, cur)) != NULL) {
            cur = s->last;
            r.to_revision = s->revision;
            r.to_time_ms = s->time_ms;
            r.to_index = s->last;
        }
        cat->ranges[cat->n_ranges++] = r;
    }
}

static void warn_stderr(const char *msg)
{
    fprintf(stderr, "warning: %s\n", msg);
}

static void (*warn_fn)(const char *msg) = warn_stderr;

void dr_set_warn(void (*warn)(const char *msg))
{
    warn_fn = warn != NULL ? warn : warn_stderr;
}

static void warnf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnf(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    warn_fn(msg);
}

int dr_catalog_load(struct objstore *st, uint64_t cluster_id, struct dr_catalog *cat, char *err,
                    size_t errlen)
{
    struct lister l;
    unsigned i;
    int rv;
    memset(cat, 0, sizeof(*cat));
    memset(&l, 0, sizeof(l));
    l.cat = cat;
    l.cluster_id = cluster_id;
    rv = objstore_list(st, "", list_cb, &l, err, errlen);
    if (rv != 0 || l.failed) {
        if (l.failed) {
            errf(err, errlen, "out of memory listing %s", objstore_url(st));
        }
        goto fail;
    }
    cat->snaps = calloc(l.n_manifests > 0 ? l.n_manifests : 1, sizeof(*cat->snaps));
    if (cat->snaps == NULL) {
        errf(err, errlen, "out of memory");
        goto fail;
    }
    for (i = 0; i < l.n_manifests; i++) {
        void *data = NULL;
        size_t len = 0;
        char msg[256];
        struct dr_snapshot s;
        rv = objstore_get(st, l.manifests[i], &data, &len, msg, sizeof(msg));
        if (rv == OBJSTORE_ENOTFOUND) {
            continue; /* pruned meanwhile */
        }
        if (rv != 0) {
            errf(err, errlen, "%s", msg);
            goto fail;
        }
        rv = dr_manifest_parse(data, len, &s, msg, sizeof(msg));
        free(data);
        if (rv != 0) {
            warnf("ignoring manifest %s: %s", l.manifests[i], msg);
            continue;
        }
        dr_name_snapshot(s.cluster_id, s.index, s.name, sizeof(s.name));
        cat->snaps[cat->n_snaps++] = s;
    }
    /* Several clusters share the root: keep the one with the newest
     * snapshot (or the first found). */
    if (cluster_id == 0) {
        uint64_t pick = 0;
        int64_t newest = -1;
        unsigned j = 0;
        for (i = 0; i < cat->n_snaps; i++) {
            if (cat->snaps[i].time_ms > newest) {
                newest = cat->snaps[i].time_ms;
                pick = cat->snaps[i].cluster_id;
            }
        }
        if (pick == 0 && cat->n_segs > 0) {
            pick = cat->segs[0].cluster_id;
        }
        for (i = 0; i < cat->n_snaps; i++) {
            if (cat->snaps[i].cluster_id == pick) {
                cat->snaps[j++] = cat->snaps[i];
            }
        }
        cat->n_snaps = j;
        j = 0;
        for (i = 0; i < cat->n_segs; i++) {
            if (cat->segs[i].cluster_id == pick) {
                cat->segs[j++] = cat->segs[i];
            }
        }
        cat->n_segs = j;
        cluster_id = pick;
    }
    cat->cluster_id = cluster_id;
    if (cat->n_snaps > 1) {
        qsort(cat->snaps, cat->n_snaps, sizeof(*cat->snaps), cmp_snap);
    }
    if (cat->n_segs > 1) {
        qsort(cat->segs, cat->n_segs, sizeof(*cat->segs), cmp_seg);
    }
    build_ranges(cat);
    for (i = 0; i < l.n_manifests; i++) {
        free(l.manifests[i]);
    }
    free(l.manifests);
    return 0;
fail:
    for (i = 0; i < l.n_manifests; i++) {
        free(l.manifests[i]);
    }
    free(l.manifests);
    dr_catalog_free(cat);
    return -1;
}

void dr_catalog_free(struct dr_catalog *cat)
{
    free(cat->snaps);
    free(cat->segs);
    free(cat->ranges);
    memset(cat, 0, sizeof(*cat));
}

void dr_catalog_add(struct dr_catalog *cat, const struct dr_snapshot *s)
{
    struct dr_snapshot *snaps = realloc(cat->snaps, (cat->n_snaps + 1) * sizeof(*snaps));
    if (snaps == NULL) {
        return; /* shown at the next listing */
    }
    cat->snaps = snaps;
    cat->snaps[cat->n_snaps++] = *s;
    if (cat->cluster_id == 0) {
        cat->cluster_id = s->cluster_id;
    }
    qsort(cat->snaps, cat->n_snaps, sizeof(*cat->snaps), cmp_snap);
    free(cat->ranges);
    cat->ranges = NULL;
    cat->n_ranges = 0;
    build_ranges(cat);
}

int dr_catalog_replace_segments(struct dr_catalog *cat, const struct dr_segment *removed,
                                unsigned n_removed, const struct dr_segment *added,
                                unsigned n_added)
{
    struct dr_segment *segs;
    struct dr_segment *in = NULL;
    unsigned n = 0;
    unsigned i = 0;
    unsigned k = 0;
    if (n_removed == 0 && n_added == 1 &&
        (cat->n_segs == 0 || cmp_seg(&cat->segs[cat->n_segs - 1], added) < 0) &&
        cat->n_ranges > 0 && cat->ranges[cat->n_ranges - 1].to_index >= added->after &&
        cat->ranges[cat->n_ranges - 1].from_index <= added->after) {
        /* A shipment that continues the newest range from inside it, as
         * most do: no merge, no walk (the leader does this every 500 ms, on
         * its loop). One that starts before the newest range's snapshot may
         * join it to the range before: that takes the walk. */
        struct dr_range *r = &cat->ranges[cat->n_ranges - 1];
        segs = realloc(cat->segs, (cat->n_segs + 1) * sizeof(*segs));
        if (segs == NULL) {
            return -1;
        }
        cat->segs = segs;
        cat->segs[cat->n_segs++] = *added;
        if (added->last > r->to_index) {
            r->to_index = added->last;
            r->to_revision = added->revision;
            r->to_time_ms = added->time_ms;
        }
        return 0;
    }
    /* One pass over the sorted catalog, the removed found by binary search
     * and the added (sorted here) merged in: this runs on the leader's loop,
     * and an archive written before compaction may hold 345,600 segments. */
    segs = malloc((cat->n_segs + n_added + 1) * sizeof(*segs));
    if (n_added > 0) {
        in = malloc(n_added * sizeof(*in));
    }
    if (segs == NULL || (n_added > 0 && in == NULL)) {
        free(segs);
        free(in);
        return -1;
    }
    if (n_added > 0) {
        memcpy(in, added, n_added * sizeof(*in));
        qsort(in, n_added, sizeof(*in), cmp_seg);
    }
    while (i < cat->n_segs || k < n_added) {
        const struct dr_segment *s = i < cat->n_segs ? &cat->segs[i] : NULL;
        int c = s == NULL ? 1 : k == n_added ? -1 : cmp_seg(s, &in[k]);
        if (c > 0) {
            segs[n++] = in[k++];
            continue;
        }
        i++;
        if (c == 0) {
            segs[n++] = in[k++]; /* the same name written again replaces it */
        } else if (n_removed == 0 ||
                   bsearch(s, removed, n_removed, sizeof(*removed), cmp_seg) == NULL) {
            segs[n++] = *s;
        }
    }
    free(in);
    free(cat->segs);
    cat->segs = segs;
    cat->n_segs = n;
    free(cat->ranges);
    cat->ranges = NULL;
    cat->n_ranges = 0;
    build_ranges(cat);
    return 0;
}

/* Compaction's plan. The catalog is sorted by after, then last: of the
 * segments with the same after, the last reaches furthest and covers the
 * others. */
static uint64_t window_of(const struct dr_segment *s, uint64_t level_ms)
{
    return (uint64_t)(s->time_ms > 0 ? s->time_ms : 0) / level_ms;
}

static bool compactable(const struct dr_segment *s, uint64_t level_ms, uint64_t window_ms,
                        int64_t now_ms)
{
    uint64_t bucket = window_of(s, level_ms);
    return s->size < DR_COMPACT_BIG && (int64_t)((bucket + 1) * level_ms + window_ms / 5) <= now_ms;
}

int dr_compact_plan(const struct dr_catalog *cat, uint64_t window_ms, int64_t now_ms,
                    struct dr_segment **run)
{
    const struct dr_segment **members;
    int level;
    *run = NULL;
    if (window_ms == 0 || cat->n_segs < 2) {
        return 0;
    }
    members = malloc(DR_COMPACT_MAX_SEGMENTS * sizeof(*members));
    if (members == NULL) {
        return -1;
    }
    for (level = 0; level < 2; level++) {
        uint64_t level_ms = level == 0 ? window_ms * 12 : window_ms;
        unsigned n = 0;
        uint64_t run_last = 0;
        uint64_t bucket = 0;
        uint64_t bytes = 0;
        unsigned i;
        for (i = 0; i <= cat->n_segs; i++) {
            const struct dr_segment *s = i < cat->n_segs ? &cat->segs[i] : NULL;
            bool joins;
            if (s != NULL && i + 1 < cat->n_segs && cat->segs[i + 1].after == s->after &&
                cat->segs[i + 1].cluster_id == s->cluster_id) {
                continue; /* the next one covers it */
            }
            if (s != NULL && n > 0 && s->last <= run_last) {
                continue; /* inside the run: left from a merge cut short */
            }
            joins = s != NULL && n > 0 && s->after <= run_last &&
                    window_of(s, level_ms) == bucket && bytes + s->size <= DR_COMPACT_MAX_STORED &&
                    n < DR_COMPACT_MAX_SEGMENTS && compactable(s, level_ms, window_ms, now_ms);
            if (!joins) {
                if (n >= 2) {
                    struct dr_segment *out = malloc(n * sizeof(*out));
                    unsigned k;
                    if (out == NULL) {
                        free(members);
                        return -1;
                    }
                    for (k = 0; k < n; k++) {
                        out[k] = *members[k];
                    }
                    free(members);
                    *run = out;
                    return (int)n;
                }
                n = 0;
                if (s == NULL || !compactable(s, level_ms, window_ms, now_ms)) {
                    continue;
                }
                bucket = window_of(s, level_ms);
                bytes = 0;
            }
            members[n++] = s;
            run_last = s->last;
            bytes += s->size;
        }
    }
    free(members);
    return 0;
}

const struct dr_snapshot *dr_catalog_newest(const struct dr_catalog *cat)
{
    return cat->n_snaps > 0 ? &cat->snaps[cat->n_snaps - 1] : NULL;
}

int dr_parse_retention(const char *text, struct dr_tier *tiers, unsigned *n_tiers, char *errmsg,
                       size_t len)
{
    const char *p = text;
    *n_tiers = 0;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        const char *colon;
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        uint64_t window;
        uint64_t every = 0;
        colon = memchr(p, ':', n);
        if (colon == NULL || dr_parse_duration(p, (size_t)(colon - p), &window) != 0 ||
            window == 0) {
            errf(errmsg, len,
                 "--backup-retention \"%s\": each tier is WINDOW:all or WINDOW:EVERY, like "
                 "48h:all,30d:1d,365d:30d",
                 text);
            return -1;
        }
        if (!((size_t)(p + n - colon - 1) == 3 && memcmp(colon + 1, "all", 3) == 0) &&
            (dr_parse_duration(colon + 1, (size_t)(p + n - colon - 1), &every) != 0 ||
             every == 0)) {
            errf(errmsg, len, "--backup-retention \"%s\": \"%.*s\" is not all or a duration", text,
                 (int)(p + n - colon - 1), colon + 1);
            return -1;
        }
        if (*n_tiers == DR_TIERS_MAX) {
            errf(errmsg, len, "--backup-retention \"%s\": at most 8 tiers", text);
            return -1;
        }
        if (*n_tiers > 0 && window <= tiers[*n_tiers - 1].window_ms) {
            errf(errmsg, len, "--backup-retention \"%s\": windows must grow from tier to tier",
                 text);
            return -1;
        }
        tiers[*n_tiers].window_ms = window;
        tiers[*n_tiers].every_ms = every;
        (*n_tiers)++;
        p += n;
        if (*p == ',') {
            p++;
        }
    }
    if (*n_tiers == 0) {
        errf(errmsg, len, "--backup-retention is empty");
        return -1;
    }
    return 0;
}

void dr_retention_plan(const struct dr_catalog *cat, const struct dr_tier *tiers, unsigned n_tiers,
                       int64_t now_ms, bool *keep, uint64_t *log_floor)
{
    int64_t bucket_seen[DR_TIERS_MAX];
    bool bucket_any[DR_TIERS_MAX];
    uint64_t oldest_kept = UINT64_MAX;
    unsigned i;
    unsigned k;
    *log_floor = 0;
    if (cat->n_snaps == 0) {
        return;
    }
    memset(bucket_any, 0, sizeof(bucket_any));
    /* Oldest first, so that the snapshot kept in each bucket of a tier is
     * the first one, which stays put as newer ones come and go. */
    for (i = 0; i < cat->n_snaps; i++) {
        const struct dr_snapshot *s = &cat->snaps[i];
        int64_t age = now_ms - s->time_ms;
        keep[i] = false;
        for (k = 0; k < n_tiers; k++) {
            if (age <= (int64_t)tiers[k].window_ms) {
                break;
            }
        }
        if (k == n_tiers) {
            continue; /* older than every tier */
        }
        if (tiers[k].every_ms == 0) {
            keep[i] = true;
        } else {
            int64_t bucket = s->time_ms / (int64_t)tiers[k].every_ms;
            if (!bucket_any[k] || bucket_seen[k] != bucket) {
                keep[i] = true;
                bucket_any[k] = true;
                bucket_seen[k] = bucket;
            }
        }
    }
    keep[cat->n_snaps - 1] = true; /* never the newest */
    /* Point-in-time restore covers the first tier if it keeps everything:
     * the log from the newest kept snapshot before its window stays. */
    if (n_tiers > 0 && tiers[0].every_ms == 0) {
        for (i = cat->n_snaps; i-- > 0;) {
            if (keep[i] && now_ms - cat->snaps[i].time_ms > (int64_t)tiers[0].window_ms) {
                *log_floor = cat->snaps[i].index;
                break;
            }
        }
    } else {
        *log_floor = cat->snaps[cat->n_snaps - 1].index;
    }
    /* Segments before the oldest snapshot kept serve no restore. */
    for (i = 0; i < cat->n_snaps; i++) {
        if (keep[i] && cat->snaps[i].index < oldest_kept) {
            oldest_kept = cat->snaps[i].index;
        }
    }
    if (oldest_kept != UINT64_MAX && oldest_kept > *log_floor) {
        *log_floor = oldest_kept;
    }
}

/* Restore. */

static bool before_target(const struct dr_target *t, uint64_t revision, int64_t time_ms)
{
    if (t->revision != 0 && revision > t->revision) {
        return false;
    }
    if (t->time_ms != 0 && time_ms > t->time_ms) {
        return false;
    }
    return true;
}

/* Check the snapshot artifact data[0..len) and decode it into kv. what
 * names it in err. expected, when not NULL, is the manifest it must match
 * (SHA-256, state hash, revision); header, when not NULL, receives the
 * manifest the artifact carries, with its size and SHA-256 filled in. */
static int check_snapshot(const void *data, size_t len, const char *what,
                          const struct dr_snapshot *expected, struct dr_snapshot *header,
                          struct kv *kv, char *err, size_t errlen)
{
    struct artifact a;
    struct dr_snapshot own;
    struct buf body;
    char hex[65];
    char msg[256];
    int rv = -1;
    buf_init(&body);
    if (artifact_parse(data, len, &a, msg, sizeof(msg)) != 0) {
        errf(err, errlen, "%s: %s", what, msg);
        goto out;
    }
    artifact_hex(a.sha256, 32, hex);
    if (expected != NULL && expected->sha256[0] != '\0' && strcmp(hex, expected->sha256) != 0) {
        errf(err, errlen, "%s: SHA-256 %s differs from the manifest's %s", what, hex,
             expected->sha256);
        goto out;
    }
    if (a.kind != ARTIFACT_SNAPSHOT) {
        errf(err, errlen, "%s: not a snapshot artifact", what);
        goto out;
    }
    if (dr_manifest_parse(a.header, a.header_len, &own, msg, sizeof(msg)) != 0) {
        errf(err, errlen, "%s: its header: %s", what, msg);
        goto out;
    }
    own.bytes_stored = len;
    memcpy(own.sha256, hex, sizeof(own.sha256));
    if (expected == NULL) {
        expected = &own;
    }
    if (artifact_body(&a, &body, DR_SNAPSHOT_RAW_MAX, msg, sizeof(msg)) != 0) {
        errf(err, errlen, "%s: %s", what, msg);
        goto out;
    }
    if (kv_snapshot_decode(kv, body.data, body.len) != 0) {
        errf(err, errlen, "%s: the key space does not decode", what);
        goto out;
    }
    if (kv_hash(kv) != expected->state_hash || kv->rev != expected->revision) {
        errf(err, errlen, "%s: state hash or revision differs from its manifest", what);
        goto out;
    }
    if (header != NULL) {
        *header = own;
    }
    rv = 0;
out:
    buf_free(&body);
    return rv;
}

/* Download and check one snapshot into kv. */
static int load_snapshot(struct objstore *st, const struct dr_snapshot *sn, struct kv *kv,
                         char *err, size_t errlen)
{
    void *data = NULL;
    size_t len = 0;
    char what[128];
    char msg[256];
    int rv;
    rv = objstore_get(st, sn->name, &data, &len, msg, sizeof(msg));
    if (rv != 0) {
        errf(err, errlen, "snapshot %s: %s", sn->name,
             rv == OBJSTORE_ENOTFOUND ? "missing (its manifest exists)" : msg);
        return -1;
    }
    snprintf(what, sizeof(what), "snapshot %s", sn->name);
    rv = check_snapshot(data, len, what, sn, NULL, kv, err, errlen);
    free(data);
    return rv;
}

int dr_snapshot_file_load(const char *path, struct kv *kv, struct dr_snapshot *out, char *err,
                          size_t errlen)
{
    struct stat sb;
    char *data = NULL;
    size_t got = 0;
    int rv;
    if (stat(path, &sb) != 0) {
        errf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(sb.st_mode)) {
        /* Most likely a backup directory given as a path. */
        char *abs = realpath(path, NULL);
        errf(err, errlen,
             "%s is a directory, not a snapshot file; a backup store is named by its URL: "
             "file://%s",
             path, abs != NULL ? abs : path);
        free(abs);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        errf(err, errlen, "%s: not a regular file", path);
        return -1;
    }
    if ((uint64_t)sb.st_size > DR_SNAPSHOT_RAW_MAX) {
        errf(err, errlen, "%s: %lld bytes is larger than any snapshot", path,
             (long long)sb.st_size);
        return -1;
    }
    /* A short read shows as a truncated artifact. */
    if (spool_read_file(path, &data, &got) != 0) {
        errf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    rv = check_snapshot(data, got, path, NULL, out, kv, err, errlen);
    free(data);
    if (rv == 0 && out != NULL && out->name[0] == '\0') {
        /* The name it has, or would have, in a store. */
        dr_name_snapshot(out->cluster_id, out->index, out->name, sizeof(out->name));
    }
    return rv;
}

bool dr_is_snapshot_file(const char *from)
{
    return strstr(from, "://") == NULL;
}

int dr_restore_file(const char *path, struct kv *kv, struct dr_snapshot *sn, struct dr_result *res,
                    char *err, size_t errlen)
{
    memset(res, 0, sizeof(*res));
    if (dr_snapshot_file_load(path, kv, sn, err, errlen) != 0) {
        return -1;
    }
    res->snapshot = sn;
    res->revision = sn->revision;
    res->index = sn->index;
    res->time_ms = sn->time_ms;
    res->hash = sn->state_hash;
    res->expected = sn->state_hash;
    return 0;
}

static int fd_sink(void *arg, const void *data, size_t len)
{
    return spool_write_all(*(int *)arg, data, len);
}

/* kv_capture_encode_to's pieces into an artifact: CAIRN_EIO, with errno
 * set, when the artifact's file cannot be written. */
static int encode_sink(void *arg, const void *data, size_t len)
{
    return artifact_writer_write(arg, data, len) == 0 ? 0 : CAIRN_EIO;
}

int dr_snapshot_write(const struct kv_capture *cap, struct dr_snapshot *snap, int fd, char *err,
                      size_t errlen)
{
    struct buf header;
    struct artifact_writer w;
    unsigned char sha[32];
    uint64_t raw = 0;
    int rv = -1;
    int rc;
    buf_init(&header);
    /* The header holds the encoding's length, so it is measured first; the
     * encoding then goes through LZ4 to the file a piece at a time, never
     * whole in memory. */
    if (kv_capture_encoded_size(cap, &raw) != 0) {
        errf(err, errlen, "the snapshot's capture is incomplete");
        goto out;
    }
    snap->bytes_raw = raw;
    if (dr_manifest_json(snap, false, &header) != 0) {
        errf(err, errlen, "out of memory");
        goto out;
    }
    if (artifact_writer_begin(&w, ARTIFACT_SNAPSHOT, header.data, header.len, fd_sink, &fd) != 0) {
        errf(err, errlen, "out of memory");
        goto out;
    }
    rc = kv_capture_encode_to(cap, encode_sink, &w);
    if (rc != 0) {
        artifact_writer_abort(&w);
        errf(err, errlen, "%s", rc == CAIRN_EIO ? strerror(errno) : "out of memory");
        goto out;
    }
    if (w.raw_bytes != raw) {
        artifact_writer_abort(&w);
        errf(err, errlen, "the snapshot's encoding was %llu bytes, not %llu",
             (unsigned long long)w.raw_bytes, (unsigned long long)raw);
        goto out;
    }
    if (artifact_writer_end(&w, sha) != 0) {
        errf(err, errlen, "%s", strerror(errno));
        goto out;
    }
    snap->bytes_stored = w.stored_bytes; /* the trailer included */
    artifact_hex(sha, 32, snap->sha256);
    rv = 0;
out:
    buf_free(&header);
    return rv;
}

struct replay
{
    struct kv *kv;
    const struct dr_target *t;
    struct dr_result *res;
    uint64_t cur;                      /* last index applied */
    bool done;                         /* the target is reached */
    char segment[DR_SEGMENT_NAME_MAX]; /* the one being replayed */
    char *err;
    size_t errlen;
};

static int replay_cb(void *arg, const struct spool_record *r)
{
    struct replay *rp = arg;
    if (r->index <= rp->cur) {
        return 0; /* overlap with what was applied */
    }
    if (!before_target(rp->t, r->revision, r->time_ms)) {
        rp->done = true;
        return 1;
    }
    if (entry_apply(rp->kv, r->entry, r->entry_len) != 0) {
        errf(rp->err, rp->errlen, "out of memory replaying index %" PRIu64, r->index);
        return -1;
    }
    rp->cur = r->index;
    rp->res->entries++;
    rp->res->index = r->index;
    rp->res->time_ms = r->time_ms;
    rp->res->expected = r->hash;
    if (rp->kv->rev != r->revision || (rp->t->verify && kv_hash(rp->kv) != r->hash)) {
        errf(rp->err, rp->errlen,
             "segment %s: replaying index %" PRIu64 " gave revision %" PRIu64 " hash %016" PRIx64
             " where the cluster recorded revision %" PRIu64 " hash %016" PRIx64,
             rp->segment, r->index, rp->kv->rev, kv_hash(rp->kv), r->revision, r->hash);
        return -1;
    }
    return 0;
}

/* Records of a segment body: the spool's record framing. */
static int each_record(const char *data, size_t len, spool_read_cb cb, void *arg, char *err,
                       size_t errlen, const char *name)
{
    size_t off = 0;
    while (off < len) {
        const unsigned char *p = (const unsigned char *)data + off;
        size_t n;
        struct spool_record r;
        int rv;
        if (len - off < 4) {
            errf(err, errlen, "segment %s: a record is cut short", name);
            return -1;
        }
        n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        if (n > len - off - 4 || !spool_record_decode(data + off + 4, n, &r)) {
            errf(err, errlen, "segment %s: a record does not decode", name);
            return -1;
        }
        rv = cb(arg, &r);
        if (rv != 0) {
            return rv;
        }
        off += 4 + n;
    }
    return 0;
}

int dr_segment_read(struct objstore *st, const struct dr_segment *sg, spool_read_cb cb, void *arg,
                    char name[DR_SEGMENT_NAME_MAX], char *err, size_t errlen)
{
    void *data = NULL;
    size_t len = 0;
    struct artifact a;
    struct buf body;
    char msg[256];
    int rv;
    buf_init(&body);
    dr_segment_name(sg, name);
    rv = objstore_get(st, name, &data, &len, msg, sizeof(msg));
    if (rv != 0) {
        errf(err, errlen, "segment %s: %s", name, rv == OBJSTORE_ENOTFOUND ? "missing" : msg);
        return rv == OBJSTORE_ENOTFOUND ? DR_EMISSING : -1;
    }
    rv = -1;
    if (artifact_parse(data, len, &a, msg, sizeof(msg)) != 0 ||
        (a.kind != ARTIFACT_SEGMENT && snprintf(msg, sizeof(msg), "not a log segment") > 0) ||
        artifact_body(&a, &body, (size_t)1 << 32, msg, sizeof(msg)) != 0) {
        errf(err, errlen, "segment %s: %s", name, msg);
        goto out;
    }
    rv = each_record(body.data, body.len, cb, arg, err, errlen, name);
out:
    free(data);
    buf_free(&body);
    return rv;
}

static int replay_segment(struct objstore *st, const struct dr_segment *sg, struct replay *rp)
{
    int rv = dr_segment_read(st, sg, replay_cb, rp, rp->segment, rp->err, rp->errlen);
    if (rv > 0) {
        rv = 0; /* the target was reached */
    }
    if (rv == 0) {
        rp->res->segments++;
    }
    return rv;
}

int dr_restore(struct objstore *st, const struct dr_catalog *cat, const struct dr_target *t,
               struct kv *kv, struct dr_result *res, char *err, size_t errlen)
{
    struct dr_catalog fresh; /* listed again when a segment was merged away */
    unsigned relists = 0;
    int i;
    char first_err[512] = "";
    memset(&fresh, 0, sizeof(fresh));
    memset(res, 0, sizeof(*res));
    if (cat->n_snaps == 0) {
        errf(err, errlen, "%s holds no snapshot to restore from", objstore_url(st));
        return -1;
    }
    for (i = (int)cat->n_snaps - 1; i >= 0; i--) {
        const struct dr_snapshot *sn = &cat->snaps[i];
        struct replay rp;
        struct seg_walk w;
        const struct dr_segment *sg;
        if (!before_target(t, sn->revision, sn->time_ms)) {
            continue;
        }
        if (res->snapshot != NULL) {
            /* A later snapshot failed: start again on a fresh key space. */
            kv_close(kv);
            if (kv_init(kv) != 0) {
                errf(err, errlen, "out of memory");
                return -1;
            }
        }
        res->snapshot = sn;
        if (load_snapshot(st, sn, kv, err, errlen) != 0) {
            if (!t->fallback) {
                return -1;
            }
            if (first_err[0] == '\0') {
                snprintf(first_err, sizeof(first_err), "%s", err);
            }
            res->skipped_snapshots++;
            warnf("%s; falling back to an earlier snapshot", err);
            continue;
        }
        res->revision = sn->revision;
        res->index = sn->index;
        res->time_ms = sn->time_ms;
        res->expected = sn->state_hash;
        memset(&rp, 0, sizeof(rp));
        rp.kv = kv;
        rp.t = t;
        rp.res = res;
        rp.cur = sn->index;
        rp.err = err;
        rp.errlen = errlen;
        seg_walk_init(&w, cat);
        while (!rp.done && (sg = seg_walk_next(&w, rp.cur)) != NULL) {
            int rv = replay_segment(st, sg, &rp);
            if (rv == DR_EMISSING && relists < 3) {
                /* Merged into a larger segment (or pruned) since the
                 * listing: list again and go on from the same index, the
                 * entries replayed so far being skipped. */
                dr_catalog_free(&fresh);
                if (dr_catalog_load(st, cat->cluster_id, &fresh, err, errlen) != 0) {
                    return -1;
                }
                relists++;
                seg_walk_init(&w, &fresh);
                continue;
            }
            if (rv != 0) {
                dr_catalog_free(&fresh);
                return -1;
            }
        }
        dr_catalog_free(&fresh);
        res->revision = kv->rev;
        res->hash = kv_hash(kv);
        res->ended_before_time = t->time_ms != 0 && !rp.done;
        if (t->revision != 0 && res->revision < t->revision) {
            errf(err, errlen,
                 "revision %" PRIu64 " is beyond what the archive holds (it reaches %" PRIu64 ")",
                 t->revision, res->revision);
            return -1;
        }
        if (res->hash != res->expected) {
            errf(err, errlen,
                 "restored state hash %016" PRIx64 " differs from the recorded %016" PRIx64,
                 res->hash, res->expected);
            return -1;
        }
        return 0;
    }
    if (first_err[0] != '\0') {
        errf(err, errlen, "%s; and no earlier snapshot restores", first_err);
    } else {
        char when[32];
        time_t secs = (time_t)(cat->snaps[0].time_ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        errf(err, errlen,
             "no snapshot of cluster %016" PRIx64 " in %s is at or before the point asked for (its "
             "oldest is revision %" PRIu64 ", taken %s)%s",
             cat->cluster_id, objstore_url(st), cat->snaps[0].revision, when,
             cat->n_clusters > 1 ? "; the store holds other clusters too (snapshot list --from "
                                   "shows them): pick one with --cluster ID "
                                   "(cairnd: --restore-cluster ID)"
                                 : "");
    }
    return -1;
}

/* Seeds. */

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    char *p;
    if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

int dr_write_seed(const char *data_dir, struct kv *kv, const struct dr_result *res,
                  uint64_t old_cluster_id, char *err, size_t errlen)
{
    struct buf body;
    struct buf out;
    struct buf header;
    struct artifact_writer w;
    struct dr_snapshot m;
    char path[4096];
    char tmp[4096];
    int fd;
    int rv = -1;
    uint64_t id = mix64(old_cluster_id ^ mix64(res->revision ^ mix64(res->hash ^ 0x5eed)));
    buf_init(&body);
    buf_init(&out);
    buf_init(&header);
    if (mkdir_p(data_dir) != 0) {
        errf(err, errlen, "data directory %s: %s", data_dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof(path), "%s/cairn-node-id", data_dir);
    if (access(path, F_OK) == 0) {
        errf(err, errlen,
             "data directory %s already holds a node's data: restore into a new, empty "
             "directory",
             data_dir);
        return -1;
    }
    kv->cluster_id = id | KV_CLUSTER_PROVISIONAL;
    memset(&m, 0, sizeof(m));
    m.cluster_id = kv->cluster_id;
    m.revision = kv->rev;
    m.index = res->index;
    m.time_ms = res->time_ms;
    m.keys = kv->nodes;
    m.versions = kv->total_versions;
    m.state_hash = kv_hash(kv);
    if (kv_snapshot_encode(kv, &body) != 0) {
        errf(err, errlen, "out of memory");
        goto out;
    }
    m.bytes_raw = body.len;
    if (dr_manifest_json(&m, false, &header) != 0 ||
        artifact_writer_begin(&w, ARTIFACT_SNAPSHOT, header.data, header.len, artifact_sink_buf,
                              &out) != 0) {
        errf(err, errlen, "out of memory");
        goto out;
    }
    if (artifact_writer_write(&w, body.data, body.len) != 0 || artifact_writer_end(&w, NULL) != 0) {
        errf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(path, sizeof(path), "%s/" DR_SEED_FILE, data_dir);
    snprintf(tmp, sizeof(tmp), "%s/" DR_SEED_FILE ".tmp", data_dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || spool_write_all(fd, out.data, out.len) != 0 || fsync(fd) != 0) {
        errf(err, errlen, "%s: %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp); /* a full disk keeps no partial seed to fill it */
        }
        goto out;
    }
    close(fd);
    /* The provisional id, for as long as the directory lives: the seed goes
     * once raft has a snapshot of its own. Written first, so that a seed
     * never exists without it. */
    char idpath[4096];
    char idtext[18];
    dr_hex64(kv->cluster_id, idtext);
    idtext[16] = '\n';
    snprintf(idpath, sizeof(idpath), "%s/" DR_RESTORED_AS_FILE, data_dir);
    fd = open(idpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || spool_write_all(fd, idtext, 17) != 0 || fsync(fd) != 0) {
        errf(err, errlen, "%s: %s", idpath, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        errf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rv = 0;
out:
    buf_free(&body);
    buf_free(&out);
    buf_free(&header);
    return rv;
}

uint64_t dr_restored_as(const char *data_dir)
{
    char path[4096];
    char *data = NULL;
    size_t got = 0;
    uint64_t id = 0;
    snprintf(path, sizeof(path), "%s/" DR_RESTORED_AS_FILE, data_dir);
    if (spool_read_file(path, &data, &got) != 0) {
        return 0;
    }
    if (got < 16 || !dr_parse_hex64(data, 16, &id)) {
        id = 0;
    }
    free(data);
    return id;
}

int dr_seed_point(const char *data_dir, uint64_t *cluster_id, uint64_t *revision)
{
    char path[4096];
    unsigned char prefix[ARTIFACT_PREFIX_SIZE];
    char *header = NULL;
    char msg[256];
    struct dr_snapshot sn;
    unsigned kind;
    size_t hlen;
    int rv = -1;
    int fd;
    snprintf(path, sizeof(path), "%s/" DR_SEED_FILE, data_dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 1 : -1;
    }
    if (pread(fd, prefix, sizeof(prefix), 0) != (ssize_t)sizeof(prefix) ||
        artifact_prefix(prefix, &kind, &hlen, NULL, 0) != 0 || kind != ARTIFACT_SNAPSHOT) {
        goto out;
    }
    if (hlen == 0 || hlen > ARTIFACT_HEADER_MAX || (header = malloc(hlen)) == NULL ||
        pread(fd, header, hlen, sizeof(prefix)) != (ssize_t)hlen ||
        dr_manifest_parse(header, hlen, &sn, msg, sizeof(msg)) != 0) {
        goto out;
    }
    *cluster_id = sn.cluster_id;
    *revision = sn.revision;
    rv = 0;
out:
    free(header);
    close(fd);
    return rv;
}

int dr_load_seed(const char *data_dir, struct kv *kv, char *err, size_t errlen)
{
    char path[4096];
    char *data;
    size_t got = 0;
    int rv;
    snprintf(path, sizeof(path), "%s/" DR_SEED_FILE, data_dir);
    if (spool_read_file(path, &data, &got) != 0) {
        if (errno == ENOENT) {
            return 1;
        }
        errf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    rv = check_snapshot(data, got, path, NULL, NULL, kv, err, errlen);
    free(data);
    return rv;
}
