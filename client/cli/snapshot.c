/*
 * cairnctl snapshot: disaster recovery from the command line
 * (docs/disaster-recovery.md).
 *
 *   save                 the cluster's leader takes a snapshot now
 *   save FILE            download a snapshot of the whole store into FILE
 *   status               the cluster's backup state, as JSON
 *   status FILE          check a snapshot file and say what it holds
 *   list    [--from URL] snapshots and the restorable window
 *   verify  [--from URL] restore the newest snapshot plus archive in memory
 *                        and compare state hashes
 *   restore --from URL --data-dir DIR [--revision R | --time T] [--fallback]
 *                        prepare a new cluster member's data directory
 *                        (--from FILE: from a file of save FILE)
 *
 * Without --from, list and verify ask the cluster (which knows its store);
 * with it, cairnctl reads the store itself, so they work when no cluster is
 * left. restore always reads the store itself.
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dr_archive.h"
#include "json.h"
#include "objstore.h"

static void fmt_time(int64_t ms, char *out, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(out, len, "-");
        return;
    }
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void fmt_bytes(uint64_t n, char *out, size_t len)
{
    if (n >= 10ull << 30) {
        snprintf(out, len, "%.1f GiB", (double)n / (1 << 30));
    } else if (n >= 10ull << 20) {
        snprintf(out, len, "%.1f MiB", (double)n / (1 << 20));
    } else if (n >= 10ull << 10) {
        snprintf(out, len, "%.1f KiB", (double)n / (1 << 10));
    } else {
        snprintf(out, len, "%" PRIu64 " B", n);
    }
}

/* "" or "s", to follow a count of n. */
static const char *plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

static int open_store(const struct snapshot_opts *o, struct objstore **st)
{
    struct objstore_options opt;
    char err[512];
    memset(&opt, 0, sizeof(opt));
    opt.path_style = -1;
    opt.endpoint = o->backup_endpoint;
    opt.region = o->backup_region;
    opt.credentials_file = o->backup_credentials_file;
    if (o->backup_addressing != NULL) {
        if (strcmp(o->backup_addressing, "path") == 0) {
            opt.path_style = 1;
        } else if (strcmp(o->backup_addressing, "virtual-host") == 0) {
            opt.path_style = 0;
        } else if (strcmp(o->backup_addressing, "auto") != 0) {
            fprintf(stderr, "cairnctl: --backup-addressing wants path, virtual-host or auto\n");
            return -1;
        }
    }
    if (objstore_open(o->from, &opt, st, err, sizeof(err)) != 0) {
        fprintf(stderr, "cairnctl: snapshot: %s\n", err);
        return -1;
    }
    return 0;
}

static int load(const struct snapshot_opts *o, struct objstore **st, struct dr_catalog *cat)
{
    char err[512];
    uint64_t cluster = 0;
    if (o->cluster != NULL && !dr_parse_hex64(o->cluster, strlen(o->cluster), &cluster)) {
        fprintf(stderr, "cairnctl: --cluster wants 16 hex digits\n");
        return -1;
    }
    if (open_store(o, st) != 0) {
        return -1;
    }
    if (dr_catalog_load(*st, cluster, cat, err, sizeof(err)) != 0) {
        fprintf(stderr, "cairnctl: snapshot: %s\n", err);
        objstore_close(*st);
        return -1;
    }
    return 0;
}

static void print_catalog_json(const struct objstore *st, const struct dr_catalog *cat)
{
    struct buf out;
    struct json_writer w;
    char hex[17];
    unsigned i;
    buf_init(&out);
    json_writer_init(&w, &out);
    json_object_begin(&w);
    json_key(&w, "url");
    json_cstring(&w, objstore_url(st));
    dr_hex64(cat->cluster_id, hex);
    json_key(&w, "cluster_id");
    json_cstring(&w, hex);
    json_key(&w, "snapshots");
    json_array_begin(&w);
    for (i = 0; i < cat->n_snaps; i++) {
        struct buf m;
        buf_init(&m);
        if (dr_manifest_json(&cat->snaps[i], true, &m) == 0) {
            json_raw(&w, m.data, m.len);
        }
        buf_free(&m);
    }
    json_array_end(&w);
    json_key(&w, "segments");
    json_uint(&w, cat->n_segs);
    json_key(&w, "clusters");
    json_array_begin(&w);
    for (i = 0; i < cat->n_clusters; i++) {
        dr_hex64(cat->clusters[i], hex);
        json_cstring(&w, hex);
    }
    json_array_end(&w);
    json_key(&w, "ranges");
    json_array_begin(&w);
    for (i = 0; i < cat->n_ranges; i++) {
        const struct dr_range *r = &cat->ranges[i];
        json_object_begin(&w);
        json_key(&w, "earliest_revision");
        json_uint(&w, r->from_revision);
        json_key(&w, "earliest_time_ms");
        json_int(&w, r->from_time_ms);
        json_key(&w, "latest_revision");
        json_uint(&w, r->to_revision);
        json_key(&w, "latest_time_ms");
        json_int(&w, r->to_time_ms);
        json_object_end(&w);
    }
    json_array_end(&w);
    json_object_end(&w);
    fwrite(out.data, 1, out.len, stdout);
    printf("\n");
    buf_free(&out);
}

/* A seed already there is from an earlier restore whose node never
 * started (a started node's directory is refused): say that it goes. */
static bool seed_exists(const char *data_dir)
{
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/" DR_SEED_FILE, data_dir);
    return stat(path, &sb) == 0;
}

static void note_replaced(bool had_seed, const char *data_dir)
{
    if (had_seed) {
        fprintf(stderr,
                "cairnctl: note: %s held the seed of an earlier restore, never started; "
                "replaced\n",
                data_dir);
    }
}

static void print_catalog(const struct objstore *st, const struct dr_catalog *cat)
{
    unsigned i;
    if (cat->n_clusters == 0 && cat->n_snaps == 0 && cat->n_segs == 0) {
        printf("%s holds no backups (no snapshot or log segment of any cluster)\n",
               objstore_url(st));
        return;
    }
    printf("%s, cluster %016" PRIx64 ": %u snapshot%s, %u log segment%s\n", objstore_url(st),
           cat->cluster_id, cat->n_snaps, plural(cat->n_snaps), cat->n_segs, plural(cat->n_segs));
    printf("%-10s %-10s %-20s %-9s %-10s %-16s %s\n", "REVISION", "INDEX", "TIME", "KEYS", "STORED",
           "STATE HASH", "SHA-256");
    for (i = 0; i < cat->n_snaps; i++) {
        const struct dr_snapshot *s = &cat->snaps[i];
        char t[32];
        char b[32];
        fmt_time(s->time_ms, t, sizeof(t));
        fmt_bytes(s->bytes_stored, b, sizeof(b));
        printf("%-10" PRIu64 " %-10" PRIu64 " %-20s %-9" PRIu64 " %-10s %016" PRIx64 " %.16s\n",
               s->revision, s->index, t, s->keys, b, s->state_hash, s->sha256);
    }
    for (i = 0; i < cat->n_ranges; i++) {
        const struct dr_range *r = &cat->ranges[i];
        char a[32];
        char z[32];
        fmt_time(r->from_time_ms, a, sizeof(a));
        fmt_time(r->to_time_ms, z, sizeof(z));
        printf("restorable: revision %" PRIu64 " (%s) to revision %" PRIu64 " (%s)\n",
               r->from_revision, a, r->to_revision, z);
    }
    if (cat->n_ranges == 0) {
        printf("restorable: nothing (no snapshot)\n");
    }
    for (i = 0; i < cat->n_clusters; i++) {
        if (cat->clusters[i] != cat->cluster_id) {
            printf("also in this store: cluster %016" PRIx64 " (--cluster %016" PRIx64 ")\n",
                   cat->clusters[i], cat->clusters[i]);
        }
    }
}

/* Ask the cluster's leader; on failure say why (as snapshot WHAT). */
static int backup_call(cairn_client *c, const char *what, const char *verb, char **json,
                       size_t *len)
{
    int rv = cairn_backup(c, verb, json, len);
    if (rv != 0) {
        fprintf(stderr, "cairnctl: snapshot %s: %s (%s)\n", what, cairn_errmsg(c),
                cairn_errname(rv));
        return -1;
    }
    return 0;
}

static uint64_t json_u64(const struct json_value *obj, const char *key)
{
    const struct json_value *v = obj != NULL ? json_get(obj, key) : NULL;
    return v != NULL && v->type == JSON_NUMBER && v->is_uint ? v->uint : 0;
}

static const char *json_str(const struct json_value *obj, const char *key)
{
    const struct json_value *v = obj != NULL ? json_get(obj, key) : NULL;
    return v != NULL && v->type == JSON_STRING ? v->str : "";
}

/* The leader's JSON answer to a backup verb, parsed (root NULL when it did
 * not parse). */
struct answer
{
    char *json;
    size_t len;
    struct arena a;
    struct json_value *root;
};

static int answer_get(cairn_client *c, const char *verb, struct answer *ans)
{
    char msg[128];
    memset(ans, 0, sizeof(*ans));
    if (backup_call(c, verb, verb, &ans->json, &ans->len) != 0) {
        return -1;
    }
    arena_init(&ans->a);
    if (json_parse(ans->json, ans->len, &ans->a, &ans->root, msg, sizeof(msg)) != 0) {
        ans->root = NULL;
    }
    return 0;
}

static void answer_print(const struct answer *ans)
{
    fwrite(ans->json, 1, ans->len, stdout);
    printf("\n");
}

static void answer_free(struct answer *ans)
{
    arena_free(&ans->a);
    free(ans->json);
}

/* save answers {"snapshot": MANIFEST}: one line, or the JSON with --json. */
static int cluster_save(cairn_client *c, const struct snapshot_opts *o)
{
    struct answer ans;
    const struct json_value *m;
    char b[32];
    if (answer_get(c, "save", &ans) != 0) {
        return 1;
    }
    m = ans.root != NULL ? json_get(ans.root, "snapshot") : NULL;
    if (o->json || m == NULL || m->type != JSON_OBJECT) {
        answer_print(&ans);
    } else {
        fmt_bytes(json_u64(m, "bytes_stored"), b, sizeof(b));
        printf("saved: revision %" PRIu64 " (raft index %" PRIu64 "), %" PRIu64
               " keys, %s stored as %s (state hash %s)\n",
               json_u64(m, "revision"), json_u64(m, "raft_index"), json_u64(m, "keys"), b,
               json_str(m, "name"), json_str(m, "state_hash"));
    }
    answer_free(&ans);
    return 0;
}

/* verify answers {"ok": ...}: the exit status follows it. */
static int cluster_verify(cairn_client *c, const struct snapshot_opts *o)
{
    struct answer ans;
    const struct json_value *ok;
    int rv = 1;
    if (answer_get(c, "verify", &ans) != 0) {
        return 1;
    }
    ok = ans.root != NULL ? json_get(ans.root, "ok") : NULL;
    if (ok != NULL && ok->type == JSON_BOOL) {
        rv = ok->boolean ? 0 : 1;
        if (o->json) {
            answer_print(&ans);
        } else if (ok->boolean) {
            printf("verified: snapshot at revision %" PRIu64 " plus %" PRIu64
                   " archived entries restore to revision %" PRIu64
                   " with the state hash the cluster recorded\n",
                   json_u64(ans.root, "snapshot_revision"), json_u64(ans.root, "entries"),
                   json_u64(ans.root, "revision"));
        } else {
            const char *e = json_str(ans.root, "error");
            fprintf(stderr, "cairnctl: snapshot verify: FAILED: %s\n",
                    e[0] != '\0' ? e : "(no reason given)");
        }
    } else {
        fprintf(stderr, "cairnctl: snapshot verify: the answer is not the JSON expected\n");
    }
    answer_free(&ans);
    return rv;
}

static int local_verify(const struct snapshot_opts *o)
{
    struct objstore *st;
    struct dr_catalog cat;
    struct dr_target t;
    struct dr_result res;
    struct kv kv;
    char err[512];
    int rv;
    if (load(o, &st, &cat) != 0) {
        return 1;
    }
    memset(&t, 0, sizeof(t));
    t.verify = true;
    t.fallback = o->fallback;
    kv_init(&kv);
    rv = dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "cairnctl: snapshot verify: FAILED: %s\n", err);
    } else if (o->json) {
        printf("{\"ok\":true,\"revision\":%" PRIu64 ",\"snapshot_revision\":%" PRIu64
               ",\"entries\":%" PRIu64 ",\"segments\":%" PRIu64 ",\"state_hash\":\"%016" PRIx64
               "\"}\n",
               res.revision, res.snapshot->revision, res.entries, res.segments, res.hash);
    } else {
        printf("verified: snapshot at revision %" PRIu64 " plus %" PRIu64 " entries from %" PRIu64
               " segments restore to revision %" PRIu64 " with state hash %016" PRIx64
               ", as recorded\n",
               res.snapshot->revision, res.entries, res.segments, res.revision, res.hash);
    }
    kv_close(&kv);
    dr_catalog_free(&cat);
    objstore_close(st);
    return rv == 0 ? 0 : 1;
}

static int local_restore(const struct snapshot_opts *o)
{
    struct objstore *st;
    struct dr_catalog cat;
    struct dr_target t;
    struct dr_result res;
    struct kv kv;
    char err[512];
    int rv = 1;
    memset(&t, 0, sizeof(t));
    if (o->data_dir == NULL) {
        fprintf(stderr, "cairnctl: snapshot restore wants --data-dir DIR (a new member's data "
                        "directory)\n");
        return 2;
    }
    if (o->revision != 0 && o->time != NULL) {
        fprintf(stderr, "cairnctl: snapshot restore: give --revision or --time, not both\n");
        return 2;
    }
    if (o->time != NULL && dr_parse_time(o->time, &t.time_ms) != 0) {
        fprintf(stderr,
                "cairnctl: --time \"%s\" is not RFC 3339 (2026-11-22T10:00:00Z) or Unix "
                "milliseconds\n",
                o->time);
        return 2;
    }
    t.revision = o->revision;
    t.fallback = o->fallback;
    t.verify = true;
    if (load(o, &st, &cat) != 0) {
        return 1;
    }
    kv_init(&kv);
    bool had_seed = seed_exists(o->data_dir);
    if (dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err)) != 0) {
        fprintf(stderr, "cairnctl: snapshot restore: %s\n", err);
    } else if (dr_write_seed(o->data_dir, &kv, &res, cat.cluster_id, err, sizeof(err)) != 0) {
        fprintf(stderr, "cairnctl: snapshot restore: %s\n", err);
    } else {
        char when[32];
        fmt_time(res.time_ms, when, sizeof(when));
        note_replaced(had_seed, o->data_dir);
        if (res.ended_before_time) {
            fprintf(stderr,
                    "cairnctl: note: --time %s is after the archive's end (revision %" PRIu64
                    ", %s): restored to the end\n",
                    o->time, res.revision, when);
        }
        if (o->json) {
            printf("{\"revision\":%" PRIu64 ",\"time_ms\":%" PRId64
                   ",\"snapshot_revision\":%" PRIu64 ",\"entries\":%" PRIu64
                   ",\"cluster_id\":\"%016" PRIx64 "\",\"state_hash\":\"%016" PRIx64
                   "\",\"skipped_snapshots\":%u}\n",
                   res.revision, res.time_ms, res.snapshot->revision, res.entries, kv.cluster_id,
                   kv_hash(&kv), res.skipped_snapshots);
        } else {
            printf("restored revision %" PRIu64 " (%s) into %s: snapshot at revision %" PRIu64
                   " plus %" PRIu64 " archived entries; provisional cluster id %016" PRIx64 "\n",
                   res.revision, when, o->data_dir, res.snapshot->revision, res.entries,
                   kv.cluster_id);
            printf("start cairnd with --data-dir %s and the new cluster's --initial-cluster; "
                   "restore every member to the same point\n",
                   o->data_dir);
        }
        rv = 0;
    }
    kv_close(&kv);
    dr_catalog_free(&cat);
    objstore_close(st);
    return rv;
}

static bool json_true(const struct json_value *obj, const char *key)
{
    const struct json_value *v = obj != NULL ? json_get(obj, key) : NULL;
    return v != NULL && v->type == JSON_BOOL && v->boolean;
}

/* One "last ..." line of status: ok or failed, when, and what. */
static void print_outcome(const char *label, const struct json_value *o)
{
    char when[32];
    if (o == NULL || o->type != JSON_OBJECT) {
        printf("%-14s none yet\n", label);
        return;
    }
    fmt_time((int64_t)json_u64(o, "time_ms"), when, sizeof(when));
    if (json_true(o, "ok")) {
        printf("%-14s ok at %s, revision %" PRIu64, label, when, json_u64(o, "revision"));
        if (json_get(o, "snapshot_revision") != NULL) {
            printf(" (snapshot at revision %" PRIu64 " plus %" PRIu64 " entries)",
                   json_u64(o, "snapshot_revision"), json_u64(o, "entries"));
        }
        printf("\n");
    } else {
        printf("%-14s FAILED at %s: %s\n", label, when, json_str(o, "error"));
    }
}

/* status: the leader's backup state for a human; --json: as it came. */
static int cluster_status(cairn_client *c, const struct snapshot_opts *o)
{
    struct answer ans;
    const struct json_value *r;
    const struct json_value *ar;
    const struct json_value *w;
    const struct json_value *v;
    char when[32];
    char b1[32];
    char b2[32];
    unsigned n = 0;
    if (answer_get(c, "status", &ans) != 0) {
        return 1;
    }
    r = ans.root;
    if (o->json || r == NULL) {
        answer_print(&ans);
        answer_free(&ans);
        return 0;
    }
    if (!json_true(r, "enabled")) {
        printf("%-14s not configured on this cluster (cairnd --backup-url); snapshot save FILE "
               "still works\n",
               "backups");
        answer_free(&ans);
        return 0;
    }
    printf("%-14s to %s, cluster %s\n", "backups", json_str(r, "url"), json_str(r, "cluster_id"));
    ar = json_get(r, "archive");
    fmt_time((int64_t)json_u64(ar, "archived_time_ms"), when, sizeof(when));
    fmt_bytes(json_u64(ar, "backlog_bytes"), b1, sizeof(b1));
    fmt_bytes(json_u64(ar, "backlog_max_bytes"), b2, sizeof(b2));
    printf("%-14s revision %" PRIu64 " (%s), recovery point lag %" PRIu64
           " ms, backlog %s of %s: %s\n",
           "archive", json_u64(ar, "archived_revision"), when, json_u64(ar, "lag_ms"), b1, b2,
           json_true(ar, "behind") ? "BEHIND" : "current");
    v = json_get(r, "snapshots");
    for (const struct json_value *s = v != NULL && v->type == JSON_ARRAY ? v->child : NULL;
         s != NULL; s = s->next) {
        n++;
    }
    uint64_t segs = json_u64(r, "segments");
    printf("%-14s %u, and %" PRIu64 " log segment%s\n", "snapshots", n, segs, plural(segs));
    w = json_get(r, "window");
    if (w != NULL && w->type == JSON_OBJECT) {
        char from[32];
        fmt_time((int64_t)json_u64(w, "earliest_time_ms"), from, sizeof(from));
        fmt_time((int64_t)json_u64(w, "latest_time_ms"), when, sizeof(when));
        printf("%-14s revision %" PRIu64 " (%s) to revision %" PRIu64 " (%s)", "restorable",
               json_u64(w, "earliest_revision"), from, json_u64(w, "latest_revision"), when);
        if (json_u64(w, "gaps") > 0) {
            printf(", %" PRIu64 " break(s) in the log (snapshot list shows them)",
                   json_u64(w, "gaps"));
        }
        printf("\n");
    } else {
        printf("%-14s nothing stored yet\n", "restorable");
    }
    print_outcome("last snapshot", json_get(r, "last_snapshot"));
    print_outcome("last verify", json_get(r, "last_verify"));
    printf("%-14s %" PRIu64 "\n", "failures", json_u64(r, "failures"));
    answer_free(&ans);
    return 0;
}

/* The cluster's status JSON, for list without --from. */
static int cluster_list(cairn_client *c, const struct snapshot_opts *o)
{
    char *json = NULL;
    size_t len = 0;
    struct arena a;
    struct json_value *root;
    const struct json_value *v;
    const struct json_value *s;
    char msg[128];
    int rv;
    if (backup_call(c, "list", "status", &json, &len) != 0) {
        return 1;
    }
    if (o->json) {
        fwrite(json, 1, len, stdout);
        printf("\n");
        free(json);
        return 0;
    }
    arena_init(&a);
    rv = 1;
    if (json_parse(json, len, &a, &root, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "cairnctl: snapshot list: the answer is not JSON (%s)\n", msg);
        goto out;
    }
    if (!json_true(root, "enabled")) {
        fprintf(stderr, "cairnctl: snapshot list: backups are not configured on this cluster "
                        "(cairnd --backup-url)\n");
        goto out;
    }
    /* The same layout as list --from prints (print_catalog). */
    {
        unsigned n = 0;
        v = json_get(root, "snapshots");
        for (s = v != NULL && v->type == JSON_ARRAY ? v->child : NULL; s != NULL; s = s->next) {
            n++;
        }
        uint64_t segs = json_u64(root, "segments");
        printf("%s, cluster %s: %u snapshot%s, %" PRIu64 " log segment%s\n", json_str(root, "url"),
               json_str(root, "cluster_id"), n, plural(n), segs, plural(segs));
    }
    printf("%-10s %-10s %-20s %-9s %-10s %-16s %s\n", "REVISION", "INDEX", "TIME", "KEYS", "STORED",
           "STATE HASH", "SHA-256");
    for (s = v != NULL && v->type == JSON_ARRAY ? v->child : NULL; s != NULL; s = s->next) {
        const struct json_value *f[7] = {json_get(s, "revision"),     json_get(s, "raft_index"),
                                         json_get(s, "time_ms"),      json_get(s, "keys"),
                                         json_get(s, "bytes_stored"), json_get(s, "state_hash"),
                                         json_get(s, "sha256")};
        char t[32];
        char b[32];
        unsigned k;
        for (k = 0; k < 7; k++) {
            if (f[k] == NULL) {
                break;
            }
        }
        if (k < 7 || f[5]->type != JSON_STRING || f[6]->type != JSON_STRING) {
            continue;
        }
        fmt_time((int64_t)f[2]->uint, t, sizeof(t));
        fmt_bytes(f[4]->uint, b, sizeof(b));
        printf("%-10" PRIu64 " %-10" PRIu64 " %-20s %-9" PRIu64 " %-10s %-16s %.16s\n", f[0]->uint,
               f[1]->uint, t, f[3]->uint, b, f[5]->str, f[6]->str);
    }
    v = json_get(root, "window");
    if (v != NULL && v->type == JSON_OBJECT) {
        const struct json_value *er = json_get(v, "earliest_revision");
        const struct json_value *et = json_get(v, "earliest_time_ms");
        const struct json_value *lr = json_get(v, "latest_revision");
        const struct json_value *lt = json_get(v, "latest_time_ms");
        char a1[32];
        char a2[32];
        if (er != NULL && et != NULL && lr != NULL && lt != NULL) {
            fmt_time((int64_t)et->uint, a1, sizeof(a1));
            fmt_time((int64_t)lt->uint, a2, sizeof(a2));
            printf("restorable: revision %" PRIu64 " (%s) to revision %" PRIu64 " (%s)\n", er->uint,
                   a1, lr->uint, a2);
        }
        if (json_u64(v, "gaps") > 0) {
            printf("with %" PRIu64 " break%s in the log: snapshot list --from %s shows each "
                   "restorable stretch\n",
                   json_u64(v, "gaps"), plural(json_u64(v, "gaps")), json_str(root, "url"));
        }
    } else {
        printf("restorable: nothing yet (no snapshot)\n");
    }
    rv = 0;
out:
    arena_free(&a);
    free(json);
    return rv;
}

static void print_file_manifest(const char *path, const struct dr_snapshot *sn)
{
    char when[32];
    char raw[32];
    char stored[32];
    fmt_time(sn->time_ms, when, sizeof(when));
    fmt_bytes(sn->bytes_raw, raw, sizeof(raw));
    fmt_bytes(sn->bytes_stored, stored, sizeof(stored));
    printf("file          %s\n", path);
    printf("cluster id    %016" PRIx64 "\n", sn->cluster_id);
    printf("revision      %" PRIu64 "\n", sn->revision);
    printf("taken         %s\n", when);
    printf("raft          index %" PRIu64 ", term %" PRIu64 "\n", sn->index, sn->term);
    printf("keys          %" PRIu64 " (%" PRIu64 " versions retained)\n", sn->keys, sn->versions);
    printf("size          %s (%s before compression)\n", stored, raw);
    printf("sha256        %s\n", sn->sha256);
    printf("state hash    %016" PRIx64 " (checked)\n", sn->state_hash);
}

/* status FILE: the whole file checked (checksum, decoding, state hash). */
static int file_status(const struct snapshot_opts *o)
{
    struct dr_snapshot sn;
    struct kv kv;
    struct buf m;
    char err[512];
    int rv = 1;
    kv_init(&kv);
    buf_init(&m);
    if (dr_snapshot_file_load(o->file, &kv, &sn, err, sizeof(err)) != 0) {
        fprintf(stderr, "cairnctl: snapshot status: %s\n", err);
    } else if (o->json) {
        if (dr_manifest_json(&sn, true, &m) == 0) {
            fwrite(m.data, 1, m.len, stdout);
            printf("\n");
            rv = 0;
        }
    } else {
        print_file_manifest(o->file, &sn);
        rv = 0;
    }
    buf_free(&m);
    kv_close(&kv);
    return rv;
}

/* save FILE: downloaded into FILE.part, checked whole, then renamed, so
 * that FILE is either the old file or a good snapshot. */
static int file_save(cairn_client *c, const struct snapshot_opts *o)
{
    char part[4096];
    char err[512];
    char *json = NULL;
    size_t len = 0;
    struct dr_snapshot sn;
    struct kv kv;
    int rv = 1;
    int fd;
    if ((size_t)snprintf(part, sizeof(part), "%s.part", o->file) >= sizeof(part)) {
        fprintf(stderr, "cairnctl: snapshot save: the file name is too long\n");
        return 2;
    }
    fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "cairnctl: snapshot save: %s: %s\n", part, strerror(errno));
        return 1;
    }
    int dl = cairn_snapshot_download(c, fd, &json, &len);
    if (dl != 0) {
        fprintf(stderr, "cairnctl: snapshot save: %s (%s)\n", cairn_errmsg(c), cairn_errname(dl));
        close(fd);
        unlink(part);
        return 1;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fprintf(stderr, "cairnctl: snapshot save: %s: %s\n", part, strerror(errno));
        unlink(part);
        free(json);
        return 1;
    }
    kv_init(&kv);
    if (dr_snapshot_file_load(part, &kv, &sn, err, sizeof(err)) != 0) {
        fprintf(stderr, "cairnctl: snapshot save: the download does not check: %s\n", err);
        unlink(part);
    } else if (rename(part, o->file) != 0) {
        fprintf(stderr, "cairnctl: snapshot save: %s: %s\n", o->file, strerror(errno));
        unlink(part);
    } else if (o->json) {
        /* The node's answer, with the file it went to. */
        struct buf out;
        struct json_writer w;
        buf_init(&out);
        json_writer_init(&w, &out);
        json_object_begin(&w);
        json_key(&w, "file");
        json_cstring(&w, o->file);
        json_key(&w, "download");
        json_raw(&w, json, len);
        json_object_end(&w);
        if (json_writer_error(&w) == 0) {
            fwrite(out.data, 1, out.len, stdout);
            printf("\n");
            rv = 0;
        }
        buf_free(&out);
    } else {
        char b[32];
        fmt_bytes(sn.bytes_stored, b, sizeof(b));
        printf("saved: revision %" PRIu64 " (raft index %" PRIu64 "), %" PRIu64
               " keys, %s to %s (sha256 %s, state hash %016" PRIx64 " checked)\n",
               sn.revision, sn.index, sn.keys, b, o->file, sn.sha256, sn.state_hash);
        rv = 0;
    }
    kv_close(&kv);
    free(json);
    return rv;
}

/* restore --from FILE: that snapshot, as it is. */
static int file_restore(const struct snapshot_opts *o)
{
    struct dr_snapshot sn;
    struct dr_result res;
    struct kv kv;
    char err[512];
    int rv = 1;
    if (o->revision != 0 || o->time != NULL || o->fallback) {
        fprintf(stderr, "cairnctl: snapshot restore: a snapshot file restores to its own "
                        "revision; --revision, --time and --fallback need a store "
                        "(--from file:///DIR or s3://BUCKET/PREFIX)\n");
        return 2;
    }
    kv_init(&kv);
    bool had_seed = seed_exists(o->data_dir);
    if (dr_restore_file(o->from, &kv, &sn, &res, err, sizeof(err)) != 0) {
        fprintf(stderr, "cairnctl: snapshot restore: %s\n", err);
        goto out;
    }
    if (dr_write_seed(o->data_dir, &kv, &res, sn.cluster_id, err, sizeof(err)) != 0) {
        fprintf(stderr, "cairnctl: snapshot restore: %s\n", err);
        goto out;
    }
    note_replaced(had_seed, o->data_dir);
    if (o->json) {
        printf("{\"revision\":%" PRIu64 ",\"time_ms\":%" PRId64 ",\"snapshot_revision\":%" PRIu64
               ",\"entries\":0,\"cluster_id\":\"%016" PRIx64 "\",\"state_hash\":\"%016" PRIx64
               "\",\"skipped_snapshots\":0}\n",
               sn.revision, sn.time_ms, sn.revision, kv.cluster_id, kv_hash(&kv));
    } else {
        char when[32];
        fmt_time(sn.time_ms, when, sizeof(when));
        printf("restored revision %" PRIu64
               " (%s) into %s from %s; provisional cluster id %016" PRIx64 "\n",
               sn.revision, when, o->data_dir, o->from, kv.cluster_id);
        printf("start cairnd with --data-dir %s and the new cluster's --initial-cluster; "
               "restore every member from the same file\n",
               o->data_dir);
    }
    rv = 0;
out:
    kv_close(&kv);
    return rv;
}

int cmd_snapshot(cairn_client *c, const struct snapshot_opts *o)
{
    const char *verb = o->verb;
    if (verb == NULL) {
        fprintf(stderr, "cairnctl: snapshot wants save, status, list, verify or restore\n");
        return 2;
    }
    if (o->file != NULL && strcmp(verb, "save") != 0 && strcmp(verb, "status") != 0) {
        fprintf(stderr, "cairnctl: snapshot %s takes no FILE (save FILE and status FILE do)\n",
                verb);
        return 2;
    }
    if (o->file != NULL && (o->from != NULL || o->data_dir != NULL || o->revision != 0 ||
                            o->time != NULL || o->fallback)) {
        fprintf(stderr,
                "cairnctl: snapshot %s FILE takes none of --from, --data-dir, "
                "--revision, --time, --fallback\n",
                verb);
        return 2;
    }
    if (strcmp(verb, "save") == 0) {
        return o->file != NULL ? file_save(c, o) : cluster_save(c, o);
    }
    if (strcmp(verb, "status") == 0) {
        return o->file != NULL ? file_status(o) : cluster_status(c, o);
    }
    if (strcmp(verb, "list") == 0) {
        struct objstore *st;
        struct dr_catalog cat;
        if (o->from == NULL) {
            return cluster_list(c, o);
        }
        if (load(o, &st, &cat) != 0) {
            return 1;
        }
        if (o->json) {
            print_catalog_json(st, &cat);
        } else {
            print_catalog(st, &cat);
        }
        dr_catalog_free(&cat);
        objstore_close(st);
        return 0;
    }
    if (strcmp(verb, "verify") == 0) {
        return o->from == NULL ? cluster_verify(c, o) : local_verify(o);
    }
    if (strcmp(verb, "restore") == 0) {
        if (o->from == NULL) {
            fprintf(stderr, "cairnctl: snapshot restore wants --from URL (the backup store: "
                            "file:///DIR or s3://BUCKET/PREFIX) or --from FILE (a file of "
                            "snapshot save FILE)\n");
            return 2;
        }
        if (o->data_dir == NULL) {
            fprintf(stderr, "cairnctl: snapshot restore wants --data-dir DIR (a new member's "
                            "data directory)\n");
            return 2;
        }
        return dr_is_snapshot_file(o->from) ? file_restore(o) : local_restore(o);
    }
    fprintf(stderr,
            "cairnctl: unknown snapshot verb \"%s\" (save, status, list, verify, "
            "restore)\n",
            verb);
    return 2;
}
