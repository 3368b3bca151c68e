#include "dr.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "artifact.h"
#include "errbuf.h"
#include "json.h"
#include "log.h"
#include "server.h"
#include "session.h"

/* Listing and pruning the store at most this often. */
#define DR_PRUNE_INTERVAL_MS 60000
/* Waits after failures double from 1 s up to this. */
#define DR_RETRY_MAX_MS 30000
/* Nice value of the snapshot and verification worker. */
#define DR_KEEP_NICE 10
/* How long a stopping node waits for a job in flight. */
#define DR_CLOSE_WAIT_MS 5000

enum job_kind { JOB_SYNC, JOB_SHIP, JOB_SNAPSHOT, JOB_PRUNE, JOB_VERIFY, JOB_COMPACT };
static const char *const job_names[] = {"sync", "ship", "snapshot", "prune", "verify", "compact"};
_Static_assert(sizeof(job_names) / sizeof(job_names[0]) == DR_JOB_KINDS, "a name for every job");

struct dr_job
{
    enum job_kind kind;
    int lane; /* DR_SHIP or DR_KEEP */
    uint64_t cluster_id;
    const char *spool_dir; /* borrowed from struct dr */
    /* ship: every record in (after, through] */
    uint64_t after;
    uint64_t through;
    uint64_t asked_through; /* through as submitted (a full segment stops short) */
    /* snapshot */
    struct kv_capture *cap;
    struct dr_snapshot snap;
    char tmp_path[4096];
    /* compact: the run of segments to merge (owned), how many were merged,
     * and the segment that holds them now */
    struct dr_segment *run;
    unsigned n_run;
    unsigned n_merged;
    struct dr_segment merged;
    /* prune */
    int64_t now_wall_ms;
    struct dr_tier tiers[DR_TIERS_MAX];
    unsigned n_tiers;
    /* results */
    int rv;
    char err[512];
    uint64_t out_index;
    uint64_t out_revision;
    int64_t out_time_ms;
    uint64_t out_bytes;
    struct dr_catalog cat;
    bool have_cat;
    struct dr_result vres;
    uint64_t vsnap_revision;
    uint64_t started_ns;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Parsing settings. */

/* The worker thread. */

struct seg_builder
{
    size_t max; /* raw bytes, checked before each record */
    struct buf body;
    uint64_t entries;
    uint64_t first_rev;
    uint64_t last_rev;
    int64_t first_time;
    int64_t last_time;
    uint64_t last_index;
    uint64_t last_hash;
};

/* The most raw bytes one segment holds: after an outage the backlog goes
 * out in pieces of this size, so shipping never holds the whole backlog in
 * memory. */
#define DR_SEGMENT_MAX_BYTES (16u << 20)

static int seg_record_cb(void *arg, const struct spool_record *r)
{
    struct seg_builder *b = arg;
    if (b->body.len >= b->max) {
        return 1; /* full: the rest goes in the next segment */
    }
    unsigned char len[4];
    size_t at = b->body.len;
    size_t n;
    if (buf_append(&b->body, "\0\0\0\0", 4) != 0 || spool_record_encode(&b->body, r) != 0) {
        return -1;
    }
    n = b->body.len - at - 4;
    len[0] = (unsigned char)(n >> 24);
    len[1] = (unsigned char)(n >> 16);
    len[2] = (unsigned char)(n >> 8);
    len[3] = (unsigned char)n;
    memcpy(b->body.data + at, len, 4);
    if (b->entries == 0) {
        b->first_rev = r->revision;
        b->first_time = r->time_ms;
    }
    b->entries++;
    b->last_rev = r->revision;
    b->last_time = r->time_ms;
    b->last_index = r->index;
    b->last_hash = r->hash;
    return 0;
}

/* A log segment artifact of the records in b, (after, through]. */
static int segment_artifact(uint64_t cluster_id, uint64_t after, uint64_t through,
                            const struct seg_builder *b, struct buf *out)
{
    struct buf header;
    struct artifact_writer w;
    struct json_writer jw;
    char hex[17];
    int rv = -1;
    buf_init(&header);
    json_writer_init(&jw, &header);
    json_object_begin(&jw);
    json_key(&jw, "format");
    json_uint(&jw, DR_FORMAT);
    json_key(&jw, "kind");
    json_cstring(&jw, "segment");
    dr_hex64(cluster_id, hex);
    json_key(&jw, "cluster_id");
    json_cstring(&jw, hex);
    json_key(&jw, "after_index");
    json_uint(&jw, after);
    json_key(&jw, "last_index");
    json_uint(&jw, through);
    json_key(&jw, "entries");
    json_uint(&jw, b->entries);
    json_key(&jw, "first_revision");
    json_uint(&jw, b->first_rev);
    json_key(&jw, "last_revision");
    json_uint(&jw, b->last_rev);
    json_key(&jw, "first_time_ms");
    json_int(&jw, b->first_time);
    json_key(&jw, "last_time_ms");
    json_int(&jw, b->last_time);
    dr_hex64(b->last_hash, hex);
    json_key(&jw, "state_hash");
    json_cstring(&jw, hex);
    json_object_end(&jw);
    if (json_writer_error(&jw) == 0 &&
        artifact_writer_begin(&w, ARTIFACT_SEGMENT, header.data, header.len, artifact_sink_buf,
                              out) == 0 &&
        artifact_writer_write(&w, b->body.data, b->body.len) == 0 &&
        artifact_writer_end(&w, NULL) == 0) {
        rv = 0;
    }
    buf_free(&header);
    return rv;
}

static void job_ship(struct objstore *st, struct dr_job *j)
{
    struct seg_builder b;
    struct buf out;
    char name[OBJSTORE_NAME_MAX];
    memset(&b, 0, sizeof(b));
    b.max = DR_SEGMENT_MAX_BYTES;
    buf_init(&b.body);
    buf_init(&out);
    j->rv = -1;
    switch (
        spool_read(j->spool_dir, j->after, j->through, seg_record_cb, &b, j->err, sizeof(j->err))) {
        case 0:
            break;
        case 1:
            j->through = b.last_index; /* a full segment; more follow */
            break;
        default:
            if (j->err[0] == '\0') {
                errf(j->err, sizeof(j->err), "out of memory building a segment");
            }
            goto out;
    }
    if (b.entries == 0) {
        errf(j->err, sizeof(j->err), "backlog holds nothing in (%" PRIu64 ", %" PRIu64 "]",
             j->after, j->through);
        goto out;
    }
    if (segment_artifact(j->cluster_id, j->after, j->through, &b, &out) != 0) {
        errf(j->err, sizeof(j->err), "out of memory building a segment");
        goto out;
    }
    dr_name_segment(j->cluster_id, j->after, j->through, b.last_rev, b.last_time, name,
                    sizeof(name));
    if (objstore_put(st, name, out.data, out.len, j->err, sizeof(j->err)) != 0) {
        goto out;
    }
    j->out_index = j->through;
    j->out_revision = b.last_rev;
    j->out_time_ms = b.last_time;
    j->out_bytes = out.len;
    j->rv = 0;
out:
    buf_free(&b.body);
    buf_free(&out);
}

/* Compaction: merge a run of segments into one (docs/disaster-recovery.md,
 * "Compaction"). The merged segment is written and read back before its
 * inputs are deleted, so every entry is in the store throughout; a restore
 * that listed the inputs and finds one gone lists again. */
#define DR_COMPACT_MAX_RAW (64u << 20)

struct compact_state
{
    struct seg_builder *b;
    uint64_t cur; /* last index taken */
};

static int compact_record_cb(void *arg, const struct spool_record *r)
{
    struct compact_state *c = arg;
    if (r->index <= c->cur) {
        return 0; /* overlapping shipments of two leaders: the same entry */
    }
    c->cur = r->index;
    return seg_record_cb(c->b, r) == 0 ? 0 : -1;
}

static int count_record_cb(void *arg, const struct spool_record *r)
{
    (void)r;
    (*(uint64_t *)arg)++;
    return 0;
}

static void job_compact(struct objstore *st, struct dr_job *j)
{
    struct seg_builder b;
    struct compact_state c;
    struct buf out;
    char name[DR_SEGMENT_NAME_MAX];
    char in_name[DR_SEGMENT_NAME_MAX];
    uint64_t back = 0;
    unsigned used = 0;
    unsigned i;
    int rc;
    memset(&b, 0, sizeof(b));
    b.max = SIZE_MAX;
    buf_init(&b.body);
    buf_init(&out);
    c.b = &b;
    c.cur = j->run[0].after;
    j->rv = -1;
    for (i = 0; i < j->n_run && !(used >= 2 && b.body.len >= DR_COMPACT_MAX_RAW); i++) {
        rc =
            dr_segment_read(st, &j->run[i], compact_record_cb, &c, in_name, j->err, sizeof(j->err));
        if (rc != 0) {
            if (rc > 0) {
                errf(j->err, sizeof(j->err), "out of memory merging segments");
            }
            goto out;
        }
        used++;
    }
    if (used < 2 || b.entries == 0) {
        errf(j->err, sizeof(j->err), "nothing to merge");
        goto out;
    }
    j->merged = j->run[used - 1];
    j->merged.after = j->run[0].after;
    if (segment_artifact(j->cluster_id, j->merged.after, j->merged.last, &b, &out) != 0) {
        errf(j->err, sizeof(j->err), "out of memory merging segments");
        goto out;
    }
    j->merged.size = out.len;
    dr_segment_name(&j->merged, name);
    if (objstore_put(st, name, out.data, out.len, j->err, sizeof(j->err)) != 0) {
        goto out;
    }
    /* Read it back, whole and checked, before anything goes. */
    rc = dr_segment_read(st, &j->merged, count_record_cb, &back, name, j->err, sizeof(j->err));
    if (rc != 0 || back != b.entries) {
        if (rc == 0) {
            errf(j->err, sizeof(j->err),
                 "merged segment %s read back with %" PRIu64 " entries of %" PRIu64, name, back,
                 b.entries);
        }
        goto out;
    }
    for (i = 0; i < used; i++) {
        dr_segment_name(&j->run[i], in_name);
        if (strcmp(in_name, name) != 0 &&
            objstore_delete(st, in_name, j->err, sizeof(j->err)) != 0) {
            /* Those left are covered by the merged one: a restore prefers
             * it, and retention removes them in time. */
            break;
        }
    }
    j->n_merged = used;
    j->out_bytes = out.len;
    j->rv = 0;
out:
    buf_free(&b.body);
    buf_free(&out);
}

static void job_snapshot(struct objstore *st, struct dr_job *j)
{
    struct buf manifest;
    char name[OBJSTORE_NAME_MAX];
    char msg[256];
    int fd;
    buf_init(&manifest);
    j->rv = -1;
    fd = open(j->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        errf(j->err, sizeof(j->err), "%s: %s", j->tmp_path, strerror(errno));
        goto out;
    }
    if (dr_snapshot_write(j->cap, &j->snap, fd, msg, sizeof(msg)) != 0) {
        errf(j->err, sizeof(j->err), "writing %s: %s", j->tmp_path, msg);
        goto out;
    }
    dr_name_snapshot(j->cluster_id, j->snap.index, j->snap.name, sizeof(j->snap.name));
    if (objstore_put_file(st, j->snap.name, fd, j->snap.bytes_stored, j->err, sizeof(j->err)) !=
        0) {
        goto out;
    }
    /* The manifest last: a snapshot exists once it does. */
    if (dr_manifest_json(&j->snap, true, &manifest) != 0) {
        errf(j->err, sizeof(j->err), "out of memory");
        goto out;
    }
    dr_name_manifest(j->cluster_id, j->snap.index, name, sizeof(name));
    if (objstore_put(st, name, manifest.data, manifest.len, j->err, sizeof(j->err)) != 0) {
        goto out;
    }
    j->out_bytes = j->snap.bytes_stored;
    j->rv = 0;
out:
    if (fd >= 0) {
        close(fd);
        unlink(j->tmp_path);
    }
    buf_free(&manifest);
}

static void job_sync(struct objstore *st, struct dr_job *j)
{
    j->rv = dr_catalog_load(st, j->cluster_id, &j->cat, j->err, sizeof(j->err));
    j->have_cat = j->rv == 0;
}

/* Retention: which snapshots stay (docs/disaster-recovery.md). */
static void job_prune(struct objstore *st, struct dr_job *j)
{
    struct dr_catalog *cat = &j->cat;
    bool *keep;
    uint64_t pitr_floor = 0; /* segments ending at or before this go */
    int i;
    unsigned k;
    char name[OBJSTORE_NAME_MAX];
    unsigned deleted = 0;
    if (dr_catalog_load(st, j->cluster_id, cat, j->err, sizeof(j->err)) != 0) {
        j->rv = -1;
        return;
    }
    j->have_cat = true;
    j->rv = 0;
    if (cat->n_snaps == 0) {
        return;
    }
    keep = calloc(cat->n_snaps, sizeof(*keep));
    if (keep == NULL) {
        return;
    }
    dr_retention_plan(cat, j->tiers, j->n_tiers, j->now_wall_ms, keep, &pitr_floor);
    for (i = 0; i < (int)cat->n_snaps; i++) {
        if (keep[i]) {
            continue;
        }
        dr_name_manifest(cat->cluster_id, cat->snaps[i].index, name, sizeof(name));
        if (objstore_delete(st, name, j->err, sizeof(j->err)) != 0) {
            j->rv = -1;
            goto out;
        }
        if (objstore_delete(st, cat->snaps[i].name, j->err, sizeof(j->err)) != 0) {
            j->rv = -1;
            goto out;
        }
        deleted++;
    }
    for (k = 0; k < cat->n_segs; k++) {
        if (cat->segs[k].last <= pitr_floor) {
            dr_segment_name(&cat->segs[k], name);
            if (objstore_delete(st, name, j->err, sizeof(j->err)) != 0) {
                j->rv = -1;
                goto out;
            }
            deleted++;
        }
    }
out:
    free(keep);
    if (deleted > 0) {
        log_info("backup: retention removed %u objects", deleted);
        dr_catalog_free(cat);
        if (dr_catalog_load(st, j->cluster_id, cat, j->rv == 0 ? j->err : name,
                            j->rv == 0 ? sizeof(j->err) : sizeof(name)) != 0) {
            j->have_cat = false;
            if (j->rv == 0) {
                j->rv = -1;
            }
        }
    }
}

static void job_verify(struct objstore *st, struct dr_job *j)
{
    struct kv kv;
    struct dr_target t;
    j->rv = -1;
    if (dr_catalog_load(st, j->cluster_id, &j->cat, j->err, sizeof(j->err)) != 0) {
        return;
    }
    j->have_cat = true;
    if (kv_init(&kv) != 0) {
        errf(j->err, sizeof(j->err), "out of memory");
        return;
    }
    memset(&t, 0, sizeof(t));
    t.verify = true;
    j->rv = dr_restore(st, &j->cat, &t, &kv, &j->vres, j->err, sizeof(j->err));
    if (j->vres.snapshot != NULL) {
        j->vsnap_revision = j->vres.snapshot->revision;
    }
    kv_close(&kv);
}

static void *worker_main(void *arg)
{
    struct dr_lane *lane = arg;
    struct dr *d = lane->d;
    if (lane == &d->lanes[DR_KEEP]) {
        /* Snapshots and verifications encode, compress, hash and replay a
         * whole store: at a low CPU priority, so that the loop threads
         * serving clients (on a small machine, every node's) go first.
         * Linux applies setpriority to one thread given its id. Shipping
         * keeps the normal priority: the recovery point depends on it. */
        if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), DR_KEEP_NICE) != 0) {
            log_warn("backup: cannot lower the snapshot worker's priority: %s", strerror(errno));
        }
    }
    for (;;) {
        struct dr_job *j;
        pthread_mutex_lock(&d->mu);
        while (lane->job == NULL && !d->stop) {
            pthread_cond_wait(&d->cond, &d->mu);
        }
        if (lane->job == NULL) {
            pthread_mutex_unlock(&d->mu);
            break;
        }
        j = lane->job;
        pthread_mutex_unlock(&d->mu);
        j->err[0] = '\0';
        switch (j->kind) {
            case JOB_SYNC:
                job_sync(lane->store, j);
                break;
            case JOB_SHIP:
                job_ship(lane->store, j);
                break;
            case JOB_SNAPSHOT:
                job_snapshot(lane->store, j);
                break;
            case JOB_PRUNE:
                job_prune(lane->store, j);
                break;
            case JOB_VERIFY:
                job_verify(lane->store, j);
                break;
            case JOB_COMPACT:
                job_compact(lane->store, j);
                break;
        }
        pthread_mutex_lock(&d->mu);
        lane->job = NULL;
        lane->done = j;
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->mu);
        uv_async_send(&d->async);
    }
    return NULL;
}

/* The loop thread. */

static bool lane_busy(struct dr *d, int lane)
{
    bool busy;
    if (lane == DR_KEEP && d->capturing != NULL) {
        return true; /* the snapshot goes to DR_KEEP once captured */
    }
    pthread_mutex_lock(&d->mu);
    busy = d->lanes[lane].job != NULL || d->lanes[lane].done != NULL;
    pthread_mutex_unlock(&d->mu);
    return busy;
}

static void submit(struct dr *d, int lane, struct dr_job *j)
{
    j->cluster_id = d->srv->fsm.kv.cluster_id;
    j->spool_dir = d->spool_dir;
    j->started_ns = metrics_now_ns();
    j->lane = lane;
    pthread_mutex_lock(&d->mu);
    d->lanes[lane].job = j;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->mu);
}

static struct dr_job *new_job(enum job_kind kind)
{
    struct dr_job *j = calloc(1, sizeof(*j));
    if (j != NULL) {
        j->kind = kind;
    }
    return j;
}

static void job_free(struct dr_job *j)
{
    if (j != NULL) {
        dr_catalog_free(&j->cat);
        free(j->run);
        free(j);
    }
}

void dr_reply_json(struct session *session, uint64_t id, uint64_t revision, const struct buf *json)
{
    if (!session_is_open(session)) {
        return;
    }
    if (proto_encode_text(session_output(session), id, PROTO_BACKUP, revision, json->data,
                          json->len) != 0) {
        session_send_error(session, id, PROTO_BACKUP, CAIRN_ENOMEM, "out of memory", NULL);
        return;
    }
    session_output_done(session);
}

void dr_answer_waiters(struct dr_waiter **list, uint64_t revision, int code, const char *message,
                       const struct buf *json)
{
    struct dr_waiter *w = *list;
    *list = NULL;
    while (w != NULL) {
        struct dr_waiter *next = w->next;
        if (code != 0) {
            if (session_is_open(w->session)) {
                session_send_error(w->session, w->id, PROTO_BACKUP, code, message, NULL);
            }
        } else {
            dr_reply_json(w->session, w->id, revision, json);
        }
        session_unref(w->session);
        free(w);
        w = next;
    }
}

static void snapshot_json(struct json_writer *w, const struct dr_snapshot *s)
{
    struct buf tmp;
    buf_init(&tmp);
    if (dr_manifest_json(s, true, &tmp) == 0) {
        json_raw(w, tmp.data, tmp.len);
    } else {
        json_null(w);
    }
    buf_free(&tmp);
}

static void verify_json(struct dr *d, struct json_writer *w)
{
    json_object_begin(w);
    json_key(w, "ok");
    json_bool(w, d->last_verify.ok);
    json_key(w, "time_ms");
    json_int(w, d->last_verify.time_ms);
    json_key(w, "revision");
    json_uint(w, d->last_verify.revision);
    json_key(w, "snapshot_revision");
    json_uint(w, d->verify_snapshot_revision);
    json_key(w, "entries");
    json_uint(w, d->verify_entries);
    json_key(w, "error");
    json_cstring(w, d->last_verify.error);
    json_object_end(w);
}

static uint64_t lag_ms(struct dr *d)
{
    uint64_t now = uv_now(d->srv->loop);
    if (!d->responsible || d->pending_since_ms == 0 || now < d->pending_since_ms) {
        return 0;
    }
    return now - d->pending_since_ms;
}

static bool behind(struct dr *d)
{
    const struct config *c = d->srv->cfg;
    uint64_t now = uv_now(d->srv->loop);
    if (!d->enabled || !d->responsible) {
        return false;
    }
    if (lag_ms(d) > c->backup_lag_alert_ms) {
        return true;
    }
    /* Scheduled snapshots are skipped while nothing changes, so on a quiet
     * cluster the last one ages without anything being behind: only state
     * that no snapshot has held for 2 intervals is. */
    return c->backup_snapshot_interval_ms > 0 &&
           (!d->have_snapshot || (d->changed_since_ms != 0 &&
                                  now - d->changed_since_ms > 2 * c->backup_snapshot_interval_ms));
}

struct point
{
    uint64_t index;
    uint64_t revision;
    int64_t time_ms;
};

/* The newest point a restore reaches: where shipping got to, or a newer
 * snapshot, which covers entries no shipment took yet (the log chain goes
 * on from where shipping stopped). */
static void recovery_point(const struct dr *d, struct point *p)
{
    if (d->last_snapshot_index > d->archived_index) {
        p->index = d->last_snapshot_index;
        p->revision = d->last_snapshot_revision;
        p->time_ms = d->last_snapshot_time_ms;
    } else {
        p->index = d->archived_index;
        p->revision = d->archived_revision;
        p->time_ms = d->archived_time_ms;
    }
}

static void status_json(struct dr *d, struct buf *out)
{
    struct json_writer w;
    struct point point;
    char hex[17];
    unsigned i;
    const struct dr_catalog *cat = &d->catalog;
    json_writer_init(&w, out);
    json_object_begin(&w);
    json_key(&w, "enabled");
    json_bool(&w, d->enabled);
    json_key(&w, "url");
    json_cstring(&w, d->enabled ? objstore_url(d->lanes[DR_KEEP].store) : "");
    dr_hex64(d->srv->fsm.kv.cluster_id, hex);
    json_key(&w, "cluster_id");
    json_cstring(&w, hex);
    json_key(&w, "responsible");
    json_bool(&w, d->responsible);
    json_key(&w, "snapshots");
    json_array_begin(&w);
    for (i = 0; i < cat->n_snaps; i++) {
        snapshot_json(&w, &cat->snaps[i]);
    }
    json_array_end(&w);
    json_key(&w, "segments");
    json_uint(&w, cat->n_segs);
    json_key(&w, "window");
    if (cat->n_ranges > 0) {
        const struct dr_range *first = &cat->ranges[0];
        const struct dr_range *last = &cat->ranges[cat->n_ranges - 1];
        json_object_begin(&w);
        json_key(&w, "earliest_revision");
        json_uint(&w, first->from_revision);
        json_key(&w, "earliest_time_ms");
        json_int(&w, first->from_time_ms);
        json_key(&w, "latest_revision");
        json_uint(&w, last->to_revision);
        json_key(&w, "latest_time_ms");
        json_int(&w, last->to_time_ms);
        json_key(&w, "gaps");
        json_uint(&w, cat->n_ranges - 1);
        json_object_end(&w);
    } else {
        json_null(&w);
    }
    recovery_point(d, &point);
    json_key(&w, "archive");
    json_object_begin(&w);
    json_key(&w, "archived_index");
    json_uint(&w, point.index);
    json_key(&w, "archived_revision");
    json_uint(&w, point.revision);
    json_key(&w, "archived_time_ms");
    json_int(&w, point.time_ms);
    json_key(&w, "lag_ms");
    json_uint(&w, lag_ms(d));
    json_key(&w, "backlog_bytes");
    json_uint(&w, d->spool.bytes);
    json_key(&w, "backlog_max_bytes");
    json_uint(&w, d->spool.max_bytes);
    json_key(&w, "behind");
    json_bool(&w, behind(d));
    json_object_end(&w);
    json_key(&w, "last_snapshot");
    if (d->have_last_snapshot) {
        json_object_begin(&w);
        json_key(&w, "ok");
        json_bool(&w, d->last_snapshot.ok);
        json_key(&w, "time_ms");
        json_int(&w, d->last_snapshot.time_ms);
        json_key(&w, "revision");
        json_uint(&w, d->last_snapshot.revision);
        json_key(&w, "error");
        json_cstring(&w, d->last_snapshot.error);
        json_object_end(&w);
    } else {
        json_null(&w);
    }
    json_key(&w, "last_verify");
    if (d->have_last_verify) {
        verify_json(d, &w);
    } else {
        json_null(&w);
    }
    json_key(&w, "failures");
    json_uint(&w, d->failures);
    json_object_end(&w);
}

static void take_catalog(struct dr *d, struct dr_job *j)
{
    struct dr_segment again[DR_SHIPPED_KEPT];
    unsigned n = 0;
    unsigned i;
    unsigned kept = d->n_shipped < DR_SHIPPED_KEPT ? d->n_shipped : DR_SHIPPED_KEPT;
    if (!j->have_cat) {
        return;
    }
    dr_catalog_free(&d->catalog);
    d->catalog = j->cat;
    memset(&j->cat, 0, sizeof(j->cat));
    j->have_cat = false;
    /* Segments shipped while the job listed may be missing from its listing. */
    for (i = d->n_shipped - kept; i < d->n_shipped; i++) {
        if (d->shipped[i % DR_SHIPPED_KEPT].done_ns >= j->started_ns &&
            d->shipped[i % DR_SHIPPED_KEPT].seg.cluster_id == d->catalog.cluster_id) {
            again[n++] = d->shipped[i % DR_SHIPPED_KEPT].seg;
        }
    }
    if (n > 0) {
        dr_catalog_replace_segments(&d->catalog, NULL, 0, again, n);
    }
}

static void failed(struct dr *d, struct dr_job *j)
{
    struct dr_lane *lane = &d->lanes[j->lane];
    unsigned shift = lane->failure_streak < 5 ? lane->failure_streak : 5;
    uint64_t wait = 1000ull << shift;
    d->failures++;
    lane->failure_streak++;
    metrics_counter_add(d->m_failures[j->kind], 1);
    lane->retry_at_ms = uv_now(d->srv->loop) + (wait < DR_RETRY_MAX_MS ? wait : DR_RETRY_MAX_MS);
    log_warn("backup: %s failed (%s); retrying in %llu ms", job_names[j->kind], j->err,
             (unsigned long long)(wait < DR_RETRY_MAX_MS ? wait : DR_RETRY_MAX_MS));
}

/* Answer those waiting on list for a snapshot: {"snapshot": MANIFEST}. */
static void answer_saved(struct dr *d, struct dr_waiter **list, const struct dr_snapshot *snap)
{
    struct buf json;
    struct json_writer w;
    buf_init(&json);
    json_writer_init(&w, &json);
    json_object_begin(&w);
    json_key(&w, "snapshot");
    snapshot_json(&w, snap);
    json_object_end(&w);
    dr_answer_waiters(list, d->srv->fsm.kv.rev, 0, NULL, &json);
    buf_free(&json);
}

/* Whether the log archive reaches index, or shipping will not get it
 * there: a gap in the backlog, or nothing more to ship (the entries after
 * the last spooled one carry no command). */
static bool shipping_settled(const struct dr *d, uint64_t index)
{
    return d->archived_index >= index || d->spool.base > d->archived_index ||
           d->spool.last <= d->archived_index;
}

/* Answer those waiting for the log archive to reach the stored snapshot.
 * Also when it cannot soon (shipping failed, a gap, leadership lost, the
 * node stopping): the snapshot is stored all the same, and the break before
 * it closes when shipping does. */
static void answer_shipped(struct dr *d)
{
    if (d->shipping_waiters != NULL) {
        answer_saved(d, &d->shipping_waiters, &d->shipped_snap);
    }
}

static void finish(struct dr *d, struct dr_job *j)
{
    struct kv *kv = &d->srv->fsm.kv;
    uint64_t now = uv_now(d->srv->loop);
    struct buf json;
    buf_init(&json);
    if (j->rv == 0) {
        d->lanes[j->lane].failure_streak = 0;
    } else {
        failed(d, j);
    }
    switch (j->kind) {
        case JOB_SYNC:
            if (j->rv == 0 && d->responsible) {
                const struct dr_snapshot *newest = dr_catalog_newest(&j->cat);
                d->synced = true;
                d->have_snapshot = newest != NULL;
                d->last_snapshot_index = newest != NULL ? newest->index : 0;
                d->last_snapshot_revision = newest != NULL ? newest->revision : 0;
                d->last_snapshot_time_ms = newest != NULL ? newest->time_ms : 0;
                if (newest != NULL && j->cat.n_ranges > 0) {
                    /* Resume where the archive ends. A predecessor that
                     * died after uploading a snapshot but before shipping
                     * the entries leading up to it left a gap just before
                     * that snapshot: when the stretch before the gap was
                     * being shipped (it ends in log, not at a bare
                     * snapshot, as stretches pruned by retention do) and
                     * this backlog reaches back to its end, resume there
                     * and fill the gap. */
                    const struct dr_range *r = &j->cat.ranges[j->cat.n_ranges - 1];
                    if (j->cat.n_ranges >= 2) {
                        const struct dr_range *prev = &j->cat.ranges[j->cat.n_ranges - 2];
                        if (prev->to_index > prev->from_index && d->spool.base <= prev->to_index) {
                            r = prev;
                        }
                    }
                    d->archived_index = r->to_index;
                    d->archived_revision = r->to_revision;
                    d->archived_time_ms = r->to_time_ms;
                    d->last_snapshot_taken_ms = newest->time_ms;
                    d->last_snapshot_hash = newest->state_hash;
                } else {
                    d->archived_index = 0;
                }
                log_info("backup: %s holds %u snapshots and %u segments; archive reaches index "
                         "%llu",
                         objstore_url(d->lanes[DR_KEEP].store), j->cat.n_snaps, j->cat.n_segs,
                         (unsigned long long)d->archived_index);
            }
            take_catalog(d, j);
            break;
        case JOB_SHIP:
            if (j->rv == 0 && j->out_index > d->archived_index) {
                d->archived_index = j->out_index;
                d->archived_revision = j->out_revision;
                d->archived_time_ms = j->out_time_ms;
                d->segments_uploaded++;
                d->bytes_uploaded += j->out_bytes;
                if (d->responsible) {
                    /* So that status shows the archive as it is, until the
                     * next listing. */
                    struct dr_segment sg = {j->cluster_id,   j->after,       j->out_index,
                                            j->out_revision, j->out_time_ms, j->out_bytes};
                    dr_catalog_replace_segments(&d->catalog, NULL, 0, &sg, 1);
                    d->shipped[d->n_shipped % DR_SHIPPED_KEPT].seg = sg;
                    d->shipped[d->n_shipped % DR_SHIPPED_KEPT].done_ns = metrics_now_ns();
                    d->n_shipped++;
                }
                spool_trim(&d->spool, d->archived_index);
                /* Entries after `through` arrived after the job began. */
                d->pending_since_ms = d->spool.last > d->archived_index ? d->last_ship_ms : 0;
                /* A backlog larger than one segment: ship on at once. */
                if (d->spool.last > d->archived_index && j->out_index < j->asked_through) {
                    d->last_ship_ms = 0;
                }
            }
            if (j->rv != 0 || shipping_settled(d, d->shipped_snap.index)) {
                answer_shipped(d);
            }
            break;
        case JOB_SNAPSHOT:
            kv_capture_release(kv, j->cap);
            j->cap = NULL;
            d->have_last_snapshot = true;
            d->last_snapshot.ok = j->rv == 0;
            d->last_snapshot.time_ms = wall_ms();
            d->last_snapshot.revision = j->snap.revision;
            snprintf(d->last_snapshot.error, sizeof(d->last_snapshot.error), "%s",
                     j->rv == 0 ? "" : j->err);
            if (j->rv == 0) {
                d->have_snapshot = true;
                d->last_snapshot_taken_ms = j->snap.time_ms;
                d->last_snapshot_hash = j->snap.state_hash;
                if (j->snap.index > d->last_snapshot_index) {
                    d->last_snapshot_index = j->snap.index;
                    d->last_snapshot_revision = j->snap.revision;
                    d->last_snapshot_time_ms = j->snap.time_ms;
                }
                d->snapshots_uploaded++;
                d->bytes_uploaded += j->out_bytes;
                metrics_observe(d->m_snapshot_ns, metrics_now_ns() - j->started_ns);
                if ((d->rebase || d->spool.base > d->archived_index) &&
                    d->archived_index < j->snap.index) {
                    /* The first snapshot, or one after a gap: the chain
                     * starts here, and older entries serve nothing. */
                    d->archived_index = j->snap.index;
                    d->archived_revision = j->snap.revision;
                    d->archived_time_ms = j->snap.time_ms;
                    spool_trim(&d->spool, d->archived_index);
                }
                log_info("backup: snapshot at revision %llu uploaded (%llu bytes, %.0f ms)",
                         (unsigned long long)j->snap.revision, (unsigned long long)j->out_bytes,
                         (double)(metrics_now_ns() - j->started_ns) / 1e6);
                d->last_prune_ms = 0; /* list and prune next */
                dr_catalog_add(&d->catalog, &j->snap);
                answer_shipped(d); /* an earlier snapshot's, if still waiting */
                if (!shipping_settled(d, j->snap.index)) {
                    /* The entries leading up to the snapshot are not all
                     * shipped yet: a listing now would show a break just
                     * before it. Ship them at once, and answer when they
                     * are stored (a few milliseconds more). */
                    d->shipped_snap = j->snap;
                    d->shipping_waiters = d->saving_waiters;
                    d->saving_waiters = NULL;
                    d->last_ship_ms = 0;
                } else {
                    answer_saved(d, &d->saving_waiters, &j->snap);
                }
            } else {
                dr_answer_waiters(&d->saving_waiters, 0, CAIRN_EIO, j->err, NULL);
            }
            break;
        case JOB_PRUNE:
            d->last_prune_ms = now;
            take_catalog(d, j);
            break;
        case JOB_COMPACT:
            if (j->rv == 0) {
                char name[DR_SEGMENT_NAME_MAX];
                dr_segment_name(&j->merged, name);
                log_info("backup: merged %u log segments into %s (%llu bytes)", j->n_merged, name,
                         (unsigned long long)j->out_bytes);
                d->segments_merged += j->n_merged;
                d->bytes_uploaded += j->out_bytes;
                dr_catalog_replace_segments(&d->catalog, j->run, j->n_merged, &j->merged, 1);
            } else {
                /* Whatever went wrong (the store down, an input gone or
                 * damaged; verification names damage), try again later,
                 * from a new listing. */
                d->compact_next_ms = now + 10 * DR_PRUNE_INTERVAL_MS;
                d->last_prune_ms = 0;
            }
            break;
        case JOB_VERIFY: {
            struct json_writer w;
            d->last_verify_ms = now;
            d->have_last_verify = true;
            d->last_verify.ok = j->rv == 0;
            d->last_verify.time_ms = wall_ms();
            d->last_verify.revision = j->vres.revision;
            d->verify_snapshot_revision = j->vsnap_revision;
            d->verify_entries = j->vres.entries;
            snprintf(d->last_verify.error, sizeof(d->last_verify.error), "%s",
                     j->rv == 0 ? "" : j->err);
            if (j->rv == 0) {
                log_info("backup: verified: snapshot at revision %llu plus %llu archived entries "
                         "restore to revision %llu with the state hash the cluster recorded",
                         (unsigned long long)j->vsnap_revision, (unsigned long long)j->vres.entries,
                         (unsigned long long)j->vres.revision);
            } else {
                log_error("backup: verification FAILED: %s", j->err);
            }
            take_catalog(d, j);
            json_writer_init(&w, &json);
            verify_json(d, &w);
            /* A verification that ran and failed is still an answer. */
            dr_answer_waiters(&d->verify_waiters, d->srv->fsm.kv.rev, 0, NULL, &json);
            break;
        }
    }
    buf_free(&json);
    job_free(j);
}

static void async_cb(uv_async_t *h)
{
    struct dr *d = h->data;
    int i;
    for (i = 0; i < 2; i++) {
        struct dr_job *j;
        pthread_mutex_lock(&d->mu);
        j = d->lanes[i].done;
        d->lanes[i].done = NULL;
        pthread_mutex_unlock(&d->mu);
        if (j != NULL) {
            finish(d, j);
        }
    }
}

/* The capture walks this many keys per loop turn: about 0.3-0.7 ms for keys
 * of 1 KiB with two versions each (docs/performance.md), where the whole of
 * 100,000 keys at once held the loop for 10-23 ms. */
#define DR_CAPTURE_SLICE_KEYS 2048

static void capture_idle_cb(uv_idle_t *h)
{
    struct dr *d = h->data;
    struct kv *kv = &d->srv->fsm.kv;
    struct dr_job *j = d->capturing;
    int rv = kv_capture_step(kv, j->cap, DR_CAPTURE_SLICE_KEYS);
    if (rv == 0) {
        return;
    }
    uv_idle_stop(&d->idle);
    d->capturing = NULL;
    if (rv == 1) {
        submit(d, DR_KEEP, j);
        return;
    }
    /* The state was replaced under it (raft installed a snapshot): the next
     * tick starts again from the new state. */
    log_warn("backup: the snapshot's capture at revision %llu was cut short (%s); taking it again",
             (unsigned long long)j->snap.revision, cairn_strerror(rv));
    kv_capture_release(kv, j->cap);
    job_free(j);
    d->save_requested = true;
    /* Its waiters wait for the retake, whose capture also begins after
     * their requests. */
    while (d->saving_waiters != NULL) {
        struct dr_waiter *w = d->saving_waiters;
        d->saving_waiters = w->next;
        w->next = d->save_waiters;
        d->save_waiters = w;
    }
}

/* The snapshot in the catalog of the same state as snap, if any. */
static const struct dr_snapshot *stored_already(const struct dr *d, const struct dr_snapshot *snap)
{
    for (unsigned i = d->catalog.n_snaps; i-- > 0;) {
        const struct dr_snapshot *had = &d->catalog.snaps[i];
        if (had->index == snap->index && had->state_hash == snap->state_hash &&
            had->cluster_id == snap->cluster_id) {
            return had;
        }
    }
    return NULL;
}

static void start_snapshot(struct dr *d)
{
    struct server *s = d->srv;
    struct kv *kv = &s->fsm.kv;
    struct dr_job *j = new_job(JOB_SNAPSHOT);
    if (j == NULL) {
        return;
    }
    /* The state as of now, taken in slices over the next loop turns so that
     * clients are never held up for long; the worker encodes it. */
    if (kv_capture_begin(kv, &j->cap) != 0) {
        job_free(j);
        return;
    }
    dr_describe_state(s, &j->snap);
    /* Entries after the last one spooled carry no command (read barriers,
     * configuration changes), so the state is the same as of that one: name
     * the snapshot after it. The log archive, which holds commands only,
     * then reaches the snapshot, and a quiet cluster shows no break between
     * its log and its newest snapshot. Not after raft replaced the state:
     * until the next entry the backlog ends before what the state holds. */
    if (!d->replaced && d->spool.last != 0 && d->spool.last < j->snap.index) {
        j->snap.index = d->spool.last;
    }
    /* Asked again with nothing changed: that snapshot is stored already.
     * Writing it again would only replace a good object under the same
     * name, under the feet of any restore reading it. (Not when the chain
     * needs a new start: that bookkeeping is the upload's.) */
    const struct dr_snapshot *had = NULL;
    if (d->save_requested && d->have_snapshot && d->spool.base <= d->archived_index) {
        had = stored_already(d, &j->snap);
    }
    if (had != NULL) {
        kv_capture_release(kv, j->cap);
        job_free(j);
        d->save_requested = false;
        log_info("backup: the snapshot at revision %llu is stored already",
                 (unsigned long long)had->revision);
        answer_saved(d, &d->save_waiters, had);
        return;
    }
    snprintf(j->tmp_path, sizeof(j->tmp_path), "%s/snapshot.tmp", d->spool_dir);
    d->save_requested = false;
    /* Those asking from now on need a capture begun after their request:
     * the next snapshot answers them. (None is in flight: DR_KEEP is free.) */
    d->saving_waiters = d->save_waiters;
    d->save_waiters = NULL;
    d->rebase = !d->have_snapshot || d->spool.base > d->archived_index;
    d->capturing = j;
    uv_idle_start(&d->idle, capture_idle_cb);
}

static void tick(struct dr *d)
{
    struct server *s = d->srv;
    const struct config *c = s->cfg;
    uint64_t now = uv_now(s->loop);
    struct point point;
    bool responsible;
    struct dr_job *j;
    spool_flush(&d->spool, false);
    if (d->spool.gaps != d->seen_gaps) {
        /* On followers the backlog turns over by design; only the node
         * that ships loses something to it. */
        if (d->responsible) {
            log_warn("backup: the backlog lost entries never shipped (over --backup-backlog-max, "
                     "or a snapshot installed); the archive restarts from a new snapshot");
        }
        d->seen_gaps = d->spool.gaps;
    }
    recovery_point(d, &point);
    if (d->spool.last <= point.index) {
        /* Everything is restorable: shipped, or in a snapshot that no
         * shipment has caught up with (the log chain goes on from where
         * shipping stopped). Nothing is at risk, so no lag. */
        d->pending_since_ms = 0;
    } else if (d->pending_since_ms == 0) {
        d->pending_since_ms = now;
    }
    responsible = raft_state(&s->raft) == RAFT_LEADER && s->state == SERVER_RUNNING &&
                  server_cluster_named(s);
    if (!responsible) {
        if (d->responsible) {
            log_info("backup: no longer responsible for shipping (not the leader)");
            d->responsible = false;
            d->synced = false;
            d->pending_since_ms = 0;
            d->changed_since_ms = 0; /* measured again if it leads again */
            dr_answer_waiters(&d->save_waiters, 0, CAIRN_ENOTLEADER, "leadership lost", NULL);
            dr_answer_waiters(&d->saving_waiters, 0, CAIRN_ENOTLEADER, "leadership lost", NULL);
            answer_shipped(d);
            dr_answer_waiters(&d->verify_waiters, 0, CAIRN_ENOTLEADER, "leadership lost", NULL);
        }
        return;
    }
    if (d->have_snapshot && kv_hash(&s->fsm.kv) != d->last_snapshot_hash) {
        if (d->changed_since_ms == 0) {
            d->changed_since_ms = now;
        }
    } else {
        d->changed_since_ms = 0;
    }
    if (!d->responsible) {
        log_info("backup: this node (the leader) now ships to %s",
                 objstore_url(d->lanes[DR_KEEP].store));
        d->responsible = true;
        d->synced = false;
        d->pending_since_ms = d->spool.last > 0 ? now : 0;
    }
    if (shipping_settled(d, d->shipped_snap.index)) {
        answer_shipped(d); /* also after a gap the last shipment did not see */
    }
    if (!d->synced) {
        if (!lane_busy(d, DR_KEEP) && now >= d->lanes[DR_KEEP].retry_at_ms &&
            (j = new_job(JOB_SYNC)) != NULL) {
            submit(d, DR_KEEP, j);
        }
        return;
    }
    /* Shipping, on its own lane: once a snapshot starts the chain and the
     * backlog joins the archive (no gap). */
    if (!lane_busy(d, DR_SHIP) && now >= d->lanes[DR_SHIP].retry_at_ms && d->have_snapshot &&
        d->spool.base <= d->archived_index && d->spool.last > d->archived_index &&
        now - d->last_ship_ms >= c->backup_ship_interval_ms && (j = new_job(JOB_SHIP)) != NULL) {
        spool_flush(&d->spool, false);
        j->after = d->archived_index;
        j->through = d->spool.last;
        j->asked_through = j->through;
        d->last_ship_ms = now;
        submit(d, DR_SHIP, j);
    }
    if (lane_busy(d, DR_KEEP) || now < d->lanes[DR_KEEP].retry_at_ms) {
        return;
    }
    if (d->save_requested || !d->have_snapshot || d->spool.base > d->archived_index ||
        (c->backup_snapshot_interval_ms > 0 &&
         wall_ms() - d->last_snapshot_taken_ms >= (int64_t)c->backup_snapshot_interval_ms &&
         d->changed_since_ms != 0 /* the state differs from the last snapshot */)) {
        start_snapshot(d);
        return;
    }
    if (d->last_prune_ms == 0 || now - d->last_prune_ms >= DR_PRUNE_INTERVAL_MS) {
        j = new_job(JOB_PRUNE);
        if (j != NULL) {
            j->now_wall_ms = wall_ms();
            memcpy(j->tiers, d->tiers, sizeof(j->tiers));
            j->n_tiers = d->n_tiers;
            d->last_prune_ms = now;
            submit(d, DR_KEEP, j);
        }
        return;
    }
    if (d->verify_requested ||
        (c->backup_verify_interval_ms > 0 && d->have_snapshot &&
         (d->last_verify_ms == 0 || now - d->last_verify_ms >= c->backup_verify_interval_ms))) {
        j = new_job(JOB_VERIFY);
        if (j != NULL) {
            d->verify_requested = false;
            d->last_verify_ms = now;
            submit(d, DR_KEEP, j);
        }
        return;
    }
    /* Last, when nothing else is due: merge small segments. */
    if (c->backup_compact_ms > 0 && now >= d->compact_next_ms) {
        struct dr_segment *run = NULL;
        int n = dr_compact_plan(&d->catalog, c->backup_compact_ms, wall_ms(), &run);
        if (n > 0 && (j = new_job(JOB_COMPACT)) != NULL) {
            j->run = run;
            j->n_run = (unsigned)n;
            submit(d, DR_KEEP, j);
            return;
        }
        free(run);
        d->compact_next_ms = now + 1000; /* nothing to merge: look again in a second */
    }
}

static void timer_cb(uv_timer_t *h)
{
    tick(h->data);
}

/* The object store's options from cairnd's settings (backups and
 * --restore-from alike). */
static int store_options(const struct config *c, struct objstore_options *opt, char *errmsg,
                         size_t len)
{
    memset(opt, 0, sizeof(*opt));
    opt->endpoint = c->backup_endpoint[0] != '\0' ? c->backup_endpoint : NULL;
    opt->region = c->backup_region[0] != '\0' ? c->backup_region : NULL;
    opt->credentials_file =
        c->backup_credentials_file[0] != '\0' ? c->backup_credentials_file : NULL;
    opt->part_size = (size_t)c->backup_part_size;
    if (c->backup_multipart_threshold < ((uint64_t)5 << 20)) {
        errf(errmsg, len, "--backup-multipart-threshold %llu: at least 5 MiB (5242880)",
             (unsigned long long)c->backup_multipart_threshold);
        return -1;
    }
    opt->multipart_threshold = (size_t)c->backup_multipart_threshold;
    if (strcmp(c->backup_addressing, "auto") == 0) {
        opt->path_style = -1;
    } else if (strcmp(c->backup_addressing, "path") == 0) {
        opt->path_style = 1;
    } else if (strcmp(c->backup_addressing, "virtual-host") == 0) {
        opt->path_style = 0;
    } else {
        errf(errmsg, len, "--backup-addressing \"%s\": auto, path or virtual-host",
             c->backup_addressing);
        return -1;
    }
    return 0;
}

int dr_init(struct dr *d, struct server *srv, struct metrics *reg, char *errmsg, size_t len)
{
    const struct config *c = srv->cfg;
    struct objstore_options opt;
    char err[512];
    struct metrics_family *fails;
    unsigned i;
    memset(d, 0, sizeof(*d));
    d->srv = srv;
    dr_export_init(&d->export, srv);
    d->spool.fd = -1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cond, NULL);
    if (c->backup_url[0] == '\0') {
        if (c->backup_sse[0] != '\0' || c->backup_sse_kms_key_id[0] != '\0') {
            errf(errmsg, len, "--backup-sse and --backup-sse-kms-key-id need --backup-url");
            return -1;
        }
        return 0;
    }
    if (dr_parse_retention(c->backup_retention, d->tiers, &d->n_tiers, errmsg, len) != 0) {
        return -1;
    }
    if (c->backup_ship_interval_ms == 0) {
        errf(errmsg, len, "--backup-ship-interval-ms must be positive");
        return -1;
    }
    if (store_options(c, &opt, errmsg, len) != 0) {
        return -1;
    }
    /* Only snapshots are uploaded from a file; segments go from memory. */
    opt.put_file_rate = c->backup_snapshot_rate;
    /* Only what writes asks for encryption: a restore reads. */
    if (c->backup_sse[0] != '\0' && strcmp(c->backup_sse, "AES256") != 0 &&
        strcmp(c->backup_sse, "aws:kms") != 0) {
        errf(errmsg, len, "--backup-sse \"%s\": AES256 or aws:kms", c->backup_sse);
        return -1;
    }
    if (c->backup_sse_kms_key_id[0] != '\0' && strcmp(c->backup_sse, "aws:kms") != 0) {
        errf(errmsg, len, "--backup-sse-kms-key-id needs --backup-sse aws:kms");
        return -1;
    }
    if (c->backup_sse[0] != '\0' && strncmp(c->backup_url, "s3://", 5) != 0) {
        errf(errmsg, len, "--backup-sse is for s3:// stores, not %s", c->backup_url);
        return -1;
    }
    opt.sse = c->backup_sse[0] != '\0' ? c->backup_sse : NULL;
    opt.sse_kms_key_id = c->backup_sse_kms_key_id[0] != '\0' ? c->backup_sse_kms_key_id : NULL;
    for (i = 0; i < 2; i++) {
        d->lanes[i].d = d;
        if (objstore_open(c->backup_url, &opt, &d->lanes[i].store, err, sizeof(err)) != 0) {
            errf(errmsg, len, "--backup-url: %s", err);
            objstore_close(d->lanes[0].store);
            d->lanes[0].store = NULL;
            return -1;
        }
    }
    d->enabled = true; /* from here on dr_close frees what there is */
    d->spool_dir = malloc(strlen(c->data_dir) + sizeof("/backlog"));
    if (d->spool_dir == NULL) {
        errf(errmsg, len, "out of memory");
        return -1;
    }
    sprintf(d->spool_dir, "%s/backlog", c->data_dir);
    if (spool_open(&d->spool, d->spool_dir, c->backup_backlog_max, err, sizeof(err)) != 0) {
        errf(errmsg, len, "%s", err);
        return -1;
    }

    d->m_enabled = metrics_add(reg, METRICS_GAUGE, "cairn_backup_enabled",
                               "1 when --backup-url is set.", NULL);
    d->m_responsible =
        metrics_add(reg, METRICS_GAUGE, "cairn_backup_responsible",
                    "1 on the node that ships to the object store (the leader).", NULL);
    d->m_lag = metrics_add(reg, METRICS_GAUGE, "cairn_backup_recovery_point_lag_seconds",
                           "How long the oldest committed entry not yet in the object store has "
                           "waited (0 when everything is shipped).",
                           NULL);
    d->m_snapshot_age =
        metrics_add(reg, METRICS_GAUGE, "cairn_backup_last_snapshot_age_seconds",
                    "Age of the newest snapshot in the object store (-1: none).", NULL);
    d->m_archived_rev = metrics_add(reg, METRICS_GAUGE, "cairn_backup_archived_revision",
                                    "The newest revision in the object store's log archive.", NULL);
    d->m_backlog =
        metrics_add(reg, METRICS_GAUGE, "cairn_backup_backlog_bytes",
                    "Bytes of applied entries spooled on this node's disk for shipping.", NULL);
    d->m_backlog_max = metrics_add(reg, METRICS_GAUGE, "cairn_backup_backlog_max_bytes",
                                   "The backlog's bound (--backup-backlog-max).", NULL);
    d->m_behind = metrics_add(reg, METRICS_GAUGE, "cairn_backup_behind",
                              "1 when backups are behind: the recovery point lags more than "
                              "--backup-lag-alert-ms, or the newest snapshot is older than twice "
                              "--backup-snapshot-interval-ms. Alert on it.",
                              NULL);
    d->m_verify_ok = metrics_add(reg, METRICS_GAUGE, "cairn_backup_verify_ok",
                                 "1 when the last verification restored the newest snapshot plus "
                                 "archive to the recorded state hash, 0 when it failed, -1 before "
                                 "the first.",
                                 NULL);
    d->m_verify_time = metrics_add(reg, METRICS_GAUGE, "cairn_backup_last_verify_timestamp_seconds",
                                   "When the last verification ended (Unix time).", NULL);
    fails = metrics_register(reg, METRICS_COUNTER, "cairn_backup_failures_total",
                             "Object-store jobs that failed, by job.", NULL);
    for (i = 0; i < DR_JOB_KINDS; i++) {
        d->m_failures[i] =
            metrics_series_get(fails, 1, (const char *[]){"job"}, (const char *[]){job_names[i]});
    }
    d->m_snapshots = metrics_add(reg, METRICS_COUNTER, "cairn_backup_snapshots_total",
                                 "Snapshots this node uploaded.", NULL);
    d->m_segments = metrics_add(reg, METRICS_COUNTER, "cairn_backup_segments_total",
                                "Log segments this node uploaded.", NULL);
    d->m_merged =
        metrics_add(reg, METRICS_COUNTER, "cairn_backup_segments_merged_total",
                    "Log segments this node's compactions merged into larger ones.", NULL);
    d->m_bytes = metrics_add(reg, METRICS_COUNTER, "cairn_backup_uploaded_bytes_total",
                             "Bytes this node uploaded to the object store.", NULL);
    d->m_gaps = metrics_add(reg, METRICS_COUNTER, "cairn_backup_backlog_gaps_total",
                            "Times the backlog lost continuity (over its bound, or a snapshot "
                            "installed from the leader); shipping then starts from a snapshot.",
                            NULL);
    d->m_snapshot_ns =
        metrics_add(reg, METRICS_HISTOGRAM, "cairn_backup_snapshot_duration_seconds",
                    "From capture to the manifest uploaded.", &metrics_duration_buckets);
    return 0;
}

int dr_start(struct dr *d)
{
    struct server *s = d->srv;
    uint64_t applied = raft_last_applied(&s->raft);
    int rv;
    int i;
    if (!d->enabled) {
        return 0;
    }
    if (d->spool.last < applied) {
        /* raft restored a snapshot beyond what the spool holds. */
        if (d->spool.last > 0) {
            log_info("backup: backlog ends at index %llu, before the restored %llu: starting "
                     "after it",
                     (unsigned long long)d->spool.last, (unsigned long long)applied);
        }
        spool_reset(&d->spool, applied);
    }
    d->seen_gaps = d->spool.gaps;
    uv_timer_init(s->loop, &d->timer);
    d->handles = true;
    d->timer.data = d;
    uv_idle_init(s->loop, &d->idle);
    d->idle.data = d;
    rv = uv_async_init(s->loop, &d->async, async_cb);
    if (rv != 0) {
        return -1;
    }
    d->async.data = d;
    for (i = 0; i < 2; i++) {
        if (pthread_create(&d->lanes[i].thread, NULL, worker_main, &d->lanes[i]) != 0) {
            return -1;
        }
        d->lanes[i].started = true;
    }
    /* Ticks finer than the ship interval, so shipments start on time. */
    uv_timer_start(&d->timer, timer_cb, 50,
                   s->cfg->backup_ship_interval_ms < 250 ? s->cfg->backup_ship_interval_ms / 5 + 1
                                                         : 50);
    return 0;
}

void dr_close(struct dr *d)
{
    struct timespec until;
    bool abandoned = false;
    int i;
    dr_export_close(&d->export);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += DR_CLOSE_WAIT_MS / 1000;
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_broadcast(&d->cond);
    for (i = 0; i < 2; i++) {
        while (d->lanes[i].started && d->lanes[i].job != NULL && !abandoned) {
            if (pthread_cond_timedwait(&d->cond, &d->mu, &until) == ETIMEDOUT) {
                abandoned = true;
            }
        }
    }
    pthread_mutex_unlock(&d->mu);
    for (i = 0; i < 2; i++) {
        struct dr_lane *lane = &d->lanes[i];
        if (!lane->started) {
            continue;
        }
        lane->started = false;
        if (abandoned) {
            /* An upload stuck on a slow store: the process is ending, and
             * the entries stay in the backlog for whoever ships next. */
            pthread_detach(lane->thread);
            continue;
        }
        pthread_join(lane->thread, NULL);
        if (lane->done != NULL) {
            if (lane->done->cap != NULL) {
                kv_capture_release(&d->srv->fsm.kv, lane->done->cap);
            }
            job_free(lane->done);
            lane->done = NULL;
        }
    }
    if (abandoned) {
        log_warn("backup: abandoning a job in flight to stop (the object store is slow); "
                 "unshipped entries stay in the backlog");
        d->abandoned = true;
    }
    dr_answer_waiters(&d->save_waiters, 0, CAIRN_ESHUTDOWN, "node is shutting down", NULL);
    dr_answer_waiters(&d->saving_waiters, 0, CAIRN_ESHUTDOWN, "node is shutting down", NULL);
    answer_shipped(d);
    dr_answer_waiters(&d->verify_waiters, 0, CAIRN_ESHUTDOWN, "node is shutting down", NULL);
    if (d->capturing != NULL) {
        uv_idle_stop(&d->idle);
        kv_capture_release(&d->srv->fsm.kv, d->capturing->cap);
        job_free(d->capturing);
        d->capturing = NULL;
    }
    if (d->handles) {
        d->handles = false;
        if (!uv_is_closing((uv_handle_t *)&d->timer)) {
            uv_close((uv_handle_t *)&d->timer, NULL);
        }
        if (!uv_is_closing((uv_handle_t *)&d->idle)) {
            uv_close((uv_handle_t *)&d->idle, NULL);
        }
        if (!uv_is_closing((uv_handle_t *)&d->async)) {
            uv_close((uv_handle_t *)&d->async, NULL);
        }
    }
    if (d->enabled && !abandoned) {
        d->enabled = false;
        spool_close(&d->spool); /* flushes */
        for (i = 0; i < 2; i++) {
            objstore_close(d->lanes[i].store);
            d->lanes[i].store = NULL;
        }
        dr_catalog_free(&d->catalog);
        free(d->spool_dir);
        d->spool_dir = NULL;
    }
}

void dr_entry_applied(struct dr *d, uint64_t index, int64_t time_ms, const char *entry, size_t len)
{
    struct spool_record r;
    const struct kv *kv = &d->srv->fsm.kv;
    if (!d->enabled) {
        return;
    }
    if (d->replaced) {
        /* The first entry after a snapshot raft installed: the backlog
         * holds nothing between its last record and this index. */
        d->replaced = false;
        spool_reset(&d->spool, index - 1);
    }
    r.index = index;
    r.time_ms = time_ms;
    r.revision = kv->rev;
    r.hash = kv_hash(kv);
    r.entry = entry;
    r.entry_len = (uint32_t)len;
    if (spool_append(&d->spool, &r) != 0) {
        log_warn("backup: cannot spool index %llu; the archive will restart from a snapshot",
                 (unsigned long long)index);
        spool_reset(&d->spool, index);
    }
}

void dr_state_replaced(struct dr *d)
{
    /* raft sets last_applied only after restore returns: the gap's end is
     * known at the next applied entry. Until then the backlog still holds
     * a continuous run, which may be shipped. */
    d->replaced = true;
}

void dr_before_raft_snapshot(struct dr *d)
{
    if (d->enabled) {
        spool_flush(&d->spool, true);
    }
}

int dr_add_waiter(struct dr_waiter **list, struct session *session, uint64_t id)
{
    struct dr_waiter *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        session_send_error(session, id, PROTO_BACKUP, CAIRN_ENOMEM, "out of memory", NULL);
        return -1;
    }
    session_ref(session);
    w->session = session;
    w->id = id;
    w->next = *list;
    *list = w;
    return 0;
}

void dr_handle(struct dr *d, struct session *session, const struct proto_request *req)
{
    const struct proto_slice *verb = &req->op.key;
    struct buf json;
    if (verb->len == 6 && memcmp(verb->ptr, "status", 6) == 0) {
        buf_init(&json);
        status_json(d, &json);
        dr_reply_json(session, req->id, d->srv->fsm.kv.rev, &json);
        buf_free(&json);
        return;
    }
    if (dr_export_handle(&d->export, session, req)) {
        return;
    }
    if (!d->enabled) {
        session_send_error(session, req->id, req->type, CAIRN_EINVAL,
                           "backups are not configured (--backup-url)", NULL);
        return;
    }
    if (verb->len == 4 && memcmp(verb->ptr, "save", 4) == 0) {
        d->save_requested = true;
        dr_add_waiter(&d->save_waiters, session, req->id);
        tick(d);
        return;
    }
    if (verb->len == 6 && memcmp(verb->ptr, "verify", 6) == 0) {
        d->verify_requested = true;
        dr_add_waiter(&d->verify_waiters, session, req->id);
        tick(d);
        return;
    }
    session_send_error(
        session, req->id, req->type, CAIRN_EINVAL,
        "unknown backup verb (status, save, verify, export, export-read or export-end)", NULL);
}

void dr_metrics_update(struct dr *d)
{
    struct point point;
    int64_t age = -1;
    if (!d->enabled) {
        return;
    }
    metrics_gauge_set(d->m_enabled, 1);
    metrics_gauge_set(d->m_responsible, d->responsible ? 1 : 0);
    metrics_gauge_set(d->m_lag, (double)lag_ms(d) / 1000.0);
    if (d->have_snapshot) {
        age = (wall_ms() - d->last_snapshot_taken_ms) / 1000;
    }
    metrics_gauge_set(d->m_snapshot_age, (double)age);
    recovery_point(d, &point);
    metrics_gauge_set(d->m_archived_rev, (double)point.revision);
    metrics_gauge_set(d->m_backlog, (double)d->spool.bytes);
    metrics_gauge_set(d->m_backlog_max, (double)d->spool.max_bytes);
    metrics_gauge_set(d->m_behind, behind(d) ? 1 : 0);
    metrics_gauge_set(d->m_verify_ok, d->have_last_verify ? (d->last_verify.ok ? 1 : 0) : -1);
    metrics_gauge_set(d->m_verify_time,
                      d->have_last_verify ? (double)d->last_verify.time_ms / 1000.0 : 0);
    metrics_counter_set(d->m_snapshots, d->snapshots_uploaded);
    metrics_counter_set(d->m_segments, d->segments_uploaded);
    metrics_counter_set(d->m_merged, d->segments_merged);
    metrics_counter_set(d->m_bytes, d->bytes_uploaded);
    metrics_counter_set(d->m_gaps, d->spool.gaps);
}

int dr_bootstrap(const struct config *c, int64_t time_ms, uint64_t *cluster_id, uint64_t *revision,
                 char *errmsg, size_t len)
{
    const char *url = c->restore_from;
    const char *data_dir = c->data_dir;
    struct objstore_options opt;
    uint64_t cluster = 0;
    struct objstore *st = NULL;
    struct dr_catalog cat;
    struct dr_target t;
    struct dr_result res;
    struct kv kv;
    char err[512];
    int rv = -1;
    if (dr_is_snapshot_file(url)) {
        struct dr_snapshot sn;
        if (c->restore_revision != 0 || time_ms != 0) {
            errf(errmsg, len,
                 "--restore-from %s: a snapshot file restores to its own revision; "
                 "--restore-revision and --restore-time need a store",
                 url);
            return -1;
        }
        if (kv_init(&kv) != 0) {
            errf(errmsg, len, "out of memory");
            return -1;
        }
        if (dr_restore_file(url, &kv, &sn, &res, err, sizeof(err)) != 0 ||
            dr_write_seed(data_dir, &kv, &res, sn.cluster_id, err, sizeof(err)) != 0) {
            errf(errmsg, len, "--restore-from: %s", err);
            kv_close(&kv);
            return -1;
        }
        log_info("restored revision %llu from the snapshot file %s into %s",
                 (unsigned long long)res.revision, url, data_dir);
        *cluster_id = kv.cluster_id;
        *revision = kv.rev;
        kv_close(&kv);
        return 0;
    }
    if (store_options(c, &opt, errmsg, len) != 0) {
        return -1;
    }
    if (objstore_open(url, &opt, &st, err, sizeof(err)) != 0) {
        errf(errmsg, len, "--restore-from: %s", err);
        return -1;
    }
    if (c->restore_cluster[0] != '\0' &&
        !dr_parse_hex64(c->restore_cluster, strlen(c->restore_cluster), &cluster)) {
        errf(errmsg, len, "--restore-cluster \"%s\" is not 16 hex digits", c->restore_cluster);
        objstore_close(st);
        return -1;
    }
    if (dr_catalog_load(st, cluster, &cat, err, sizeof(err)) != 0) {
        errf(errmsg, len, "--restore-from: %s", err);
        objstore_close(st);
        return -1;
    }
    memset(&t, 0, sizeof(t));
    t.revision = c->restore_revision;
    t.time_ms = time_ms;
    t.verify = true;
    if (kv_init(&kv) != 0) {
        errf(errmsg, len, "out of memory");
        goto out;
    }
    if (dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err)) != 0) {
        errf(errmsg, len, "--restore-from %s: %s", url, err);
        kv_close(&kv);
        goto out;
    }
    if (dr_write_seed(data_dir, &kv, &res, cat.cluster_id, err, sizeof(err)) != 0) {
        errf(errmsg, len, "--restore-from: %s", err);
        kv_close(&kv);
        goto out;
    }
    log_info("restored revision %llu (snapshot at revision %llu plus %llu archived entries) from "
             "%s into %s",
             (unsigned long long)res.revision, (unsigned long long)res.snapshot->revision,
             (unsigned long long)res.entries, url, data_dir);
    if (res.ended_before_time) {
        log_warn("--restore-time %s is after the archive's end: restored to its end, revision "
                 "%llu",
                 c->restore_time, (unsigned long long)res.revision);
    }
    *cluster_id = kv.cluster_id; /* the new cluster's, provisional (dr_archive.h) */
    *revision = kv.rev;
    kv_close(&kv);
    rv = 0;
out:
    dr_catalog_free(&cat);
    objstore_close(st);
    return rv;
}
