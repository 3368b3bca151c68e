#include "dr_export.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dr.h"
#include "json.h"
#include "log.h"
#include "server.h"
#include "session.h"

/* Keys captured per loop turn, as for a backup snapshot (src/dr.c). */
#define EXPORT_SLICE_KEYS 2048
/* The writing thread's nice value, as the backup snapshot worker's. */
#define EXPORT_NICE 10

void dr_describe_state(struct server *s, struct dr_snapshot *snap)
{
    const struct kv *kv = &s->fsm.kv;
    memset(snap, 0, sizeof(*snap));
    snap->cluster_id = kv->cluster_id;
    snap->revision = kv->rev;
    snap->index = raft_last_applied(&s->raft);
    snap->term = s->raft.current_term;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snap->time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    snap->keys = kv->nodes;
    snap->versions = kv->total_versions;
    snap->state_hash = kv_hash(kv);
}

void dr_export_init(struct dr_export *x, struct server *srv)
{
    unsigned i;
    memset(x, 0, sizeof(*x));
    x->srv = srv;
    for (i = 0; i < DR_EXPORT_MAX; i++) {
        x->slots[i].srv = srv;
        x->slots[i].fd = -1;
        snprintf(x->slots[i].path, sizeof(x->slots[i].path), "%s/export-%u.tmp", srv->cfg->data_dir,
                 i);
    }
}

/* Back to IDLE from any state but WRITING: the capture and file go. */
static void reset(struct dr_export_slot *x)
{
    if (x->cap != NULL) {
        kv_capture_release(&x->srv->fsm.kv, x->cap);
        x->cap = NULL;
    }
    if (x->fd >= 0 && x->reads == 0) {
        close(x->fd); /* with reads under way, the last one closes it */
        x->fd = -1;
    }
    if (x->handles) {
        uv_idle_stop(&x->idle);
        uv_timer_stop(&x->timer);
    }
    x->state = DR_EXPORT_IDLE;
}

static void fail(struct dr_export_slot *x, int code, const char *message)
{
    log_warn("export: snapshot %" PRIu64 " failed: %s", x->id, message);
    reset(x);
    dr_answer_waiters(&x->waiters, 0, code, message, NULL);
}

/* Tests only: sleep as many milliseconds as the variable says, if set. */
static void test_delay(const char *variable)
{
    const char *ms = getenv(variable);
    if (ms != NULL) {
        usleep((useconds_t)atoi(ms) * 1000u);
    }
}

static void *write_main(void *arg)
{
    struct dr_export_slot *x = arg;
    /* Linux applies setpriority to one thread given its id. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), EXPORT_NICE) != 0) {
        /* not fatal: it only runs at the loop's priority */
    }
    /* Tests only: hold the export long enough to kill its leader under it. */
    test_delay("CAIRN_TEST_EXPORT_DELAY_MS");
    x->thread_rv = dr_snapshot_write(x->cap, &x->snap, x->fd, x->thread_err, sizeof(x->thread_err));
    uv_async_send(&x->async);
    return NULL;
}

static void idle_cb(uv_idle_t *h)
{
    struct dr_export_slot *x = h->data;
    struct kv *kv = &x->srv->fsm.kv;
    int rv;
    if (x->cap == NULL) {
        /* A backup snapshot's capture may be under way (one sliced capture
         * at a time): wait for it to finish. */
        rv = kv_capture_begin(kv, &x->cap);
        if (rv == CAIRN_EBUSY) {
            return;
        }
        if (rv != 0) {
            x->cap = NULL;
            fail(x, rv, "cannot capture the state");
            return;
        }
        dr_describe_state(x->srv, &x->snap);
        dr_name_snapshot(x->snap.cluster_id, x->snap.index, x->snap.name, sizeof(x->snap.name));
    }
    rv = kv_capture_step(kv, x->cap, EXPORT_SLICE_KEYS);
    if (rv == 0) {
        return;
    }
    uv_idle_stop(&x->idle);
    if (rv != 1) {
        /* The state was replaced under it (raft installed a snapshot): take
         * it again from the new state. */
        kv_capture_release(kv, x->cap);
        x->cap = NULL;
        if (rv == CAIRN_ESHUTDOWN && x->srv->state != SERVER_CLOSING) {
            uv_idle_start(&x->idle, idle_cb);
            return;
        }
        fail(x, rv, "the state's capture was cut short");
        return;
    }
    unlink(x->path);
    x->fd = open(x->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (x->fd < 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "%.400s: %s", x->path, strerror(errno));
        fail(x, CAIRN_EIO, msg);
        return;
    }
    /* Nothing of it outlives the process, even a crash. */
    unlink(x->path);
    x->state = DR_EXPORT_WRITING;
    if (pthread_create(&x->thread, NULL, write_main, x) != 0) {
        fail(x, CAIRN_ENOMEM, "cannot start a thread");
        return;
    }
    x->thread_started = true;
}

static void timer_cb(uv_timer_t *h)
{
    struct dr_export_slot *x = h->data;
    if (x->state == DR_EXPORT_READY) {
        log_info("export: snapshot %" PRIu64 " unread for %d s; dropped", x->id,
                 DR_EXPORT_IDLE_MS / 1000);
        reset(x);
    }
}

static bool anyone_waits(const struct dr_export_slot *x)
{
    const struct dr_waiter *w;
    for (w = x->waiters; w != NULL; w = w->next) {
        if (session_is_open(w->session)) {
            return true;
        }
    }
    return false;
}

static void async_cb(uv_async_t *h)
{
    struct dr_export_slot *x = h->data;
    struct buf json;
    struct json_writer w;
    struct buf manifest;
    if (!x->thread_started) {
        return;
    }
    pthread_join(x->thread, NULL);
    x->thread_started = false;
    kv_capture_release(&x->srv->fsm.kv, x->cap);
    x->cap = NULL;
    if (x->thread_rv != 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "writing the snapshot: %s", x->thread_err);
        fail(x, CAIRN_EIO, msg);
        return;
    }
    buf_init(&json);
    buf_init(&manifest);
    json_writer_init(&w, &json);
    json_object_begin(&w);
    json_key(&w, "export");
    json_uint(&w, x->id);
    json_key(&w, "bytes");
    json_uint(&w, x->snap.bytes_stored);
    json_key(&w, "snapshot");
    if (dr_manifest_json(&x->snap, true, &manifest) == 0) {
        json_raw(&w, manifest.data, manifest.len);
    } else {
        json_null(&w);
    }
    json_object_end(&w);
    if (json_writer_error(&w) != 0) {
        fail(x, CAIRN_ENOMEM, "out of memory");
    } else if (!anyone_waits(x)) {
        /* Its client went away meanwhile: nobody will read it, and it would
         * hold one of DR_EXPORT_MAX places (and its file) until the timer. */
        log_info("export: snapshot %" PRIu64 " written, but its client is gone; dropped", x->id);
        reset(x);
        dr_answer_waiters(&x->waiters, 0, CAIRN_ESHUTDOWN, "nobody waits", NULL);
    } else {
        x->state = DR_EXPORT_READY;
        uv_timer_start(&x->timer, timer_cb, DR_EXPORT_IDLE_MS, 0);
        log_info("export: snapshot %" PRIu64 " at revision %" PRIu64 " ready (%" PRIu64 " bytes)",
                 x->id, x->snap.revision, x->snap.bytes_stored);
        dr_answer_waiters(&x->waiters, x->snap.revision, 0, NULL, &json);
    }
    buf_free(&json);
    buf_free(&manifest);
}

static int start(struct dr_export_slot *x, uint64_t id)
{
    uv_loop_t *loop = x->srv->loop;
    if (!x->handles) {
        if (uv_idle_init(loop, &x->idle) != 0 || uv_timer_init(loop, &x->timer) != 0 ||
            uv_async_init(loop, &x->async, async_cb) != 0) {
            return CAIRN_ENOMEM;
        }
        x->idle.data = x;
        x->timer.data = x;
        x->async.data = x;
        x->handles = true;
    }
    x->id = id;
    x->state = DR_EXPORT_CAPTURING;
    uv_idle_start(&x->idle, idle_cb);
    return 0;
}

/* One export-read: the file is read on libuv's thread pool, so a piece of
 * up to DR_EXPORT_READ_MAX bytes never holds the loop; the answer is encoded
 * on the loop once it is read. */
struct export_read
{
    uv_work_t work;
    struct dr_export_slot *slot;
    struct session *session; /* referenced */
    uint64_t request_id;
    uint8_t type;
    uint64_t revision;
    int fd;
    uint64_t off;
    size_t want;
    char *chunk;
    int err; /* errno of the read, or -1: short */
};

static void read_work(uv_work_t *w)
{
    struct export_read *r = w->data;
    size_t got = 0;
    /* Tests only: make the reading last long enough to kill the leader
     * between two pieces. */
    test_delay("CAIRN_TEST_EXPORT_READ_DELAY_MS");
    while (got < r->want) {
        ssize_t n = pread(r->fd, r->chunk + got, r->want - got, (off_t)(r->off + got));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            r->err = n < 0 ? errno : -1;
            return;
        }
        got += (size_t)n;
    }
}

static void read_done(uv_work_t *w, int status)
{
    struct export_read *r = w->data;
    struct dr_export_slot *x = r->slot;
    struct session *session = r->session;
    x->reads--;
    if (!session_is_open(session)) {
        /* the client went away: nothing to answer */
    } else if (status != 0 || r->err != 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "reading the snapshot's file: %s",
                 status != 0  ? uv_strerror(status)
                 : r->err > 0 ? strerror(r->err)
                              : "short read");
        session_send_error(session, r->request_id, r->type, CAIRN_EIO, msg, NULL);
    } else if (proto_encode_text(session_output(session), r->request_id, PROTO_BACKUP, r->revision,
                                 r->chunk, r->want) != 0) {
        session_send_error(session, r->request_id, r->type, CAIRN_ENOMEM, "out of memory", NULL);
    } else {
        session_output_done(session);
    }
    session_unref(session);
    free(r->chunk);
    free(r);
    if (x->state == DR_EXPORT_IDLE && x->reads == 0 && x->fd >= 0) {
        close(x->fd); /* the export ended while this read was under way */
        x->fd = -1;
    }
}

static void read_chunk(struct dr_export_slot *x, struct session *session,
                       const struct proto_request *req)
{
    uint64_t off = req->op.revision;
    uint64_t want = req->op.limit;
    struct export_read *r;
    if (want == 0 || want > DR_EXPORT_READ_MAX) {
        want = DR_EXPORT_READ_MAX;
    }
    if (off > x->snap.bytes_stored) {
        session_send_error(session, req->id, req->type, CAIRN_EINVAL,
                           "offset past the end of the snapshot", NULL);
        return;
    }
    if (want > x->snap.bytes_stored - off) {
        want = x->snap.bytes_stored - off;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL || (r->chunk = malloc(want > 0 ? want : 1)) == NULL) {
        free(r);
        session_send_error(session, req->id, req->type, CAIRN_ENOMEM, "out of memory", NULL);
        return;
    }
    r->work.data = r;
    r->slot = x;
    r->session = session;
    r->request_id = req->id;
    r->type = req->type;
    r->revision = x->snap.revision;
    r->fd = x->fd;
    r->off = off;
    r->want = want;
    if (uv_queue_work(x->srv->loop, &r->work, read_work, read_done) != 0) {
        free(r->chunk);
        free(r);
        session_send_error(session, req->id, req->type, CAIRN_EIO, "cannot queue the read", NULL);
        return;
    }
    session_ref(session);
    x->reads++;
    uv_timer_start(&x->timer, timer_cb, DR_EXPORT_IDLE_MS, 0);
}

/* The export with this id, if it is still there. */
static struct dr_export_slot *find(struct dr_export *x, uint64_t id)
{
    unsigned i;
    for (i = 0; i < DR_EXPORT_MAX; i++) {
        if (x->slots[i].state != DR_EXPORT_IDLE && x->slots[i].id == id) {
            return &x->slots[i];
        }
    }
    return NULL;
}

static void begin(struct dr_export *x, struct session *session, const struct proto_request *req)
{
    struct dr_export_slot *slot = NULL;
    unsigned i;
    char msg[160];
    int rv;
    for (i = 0; i < DR_EXPORT_MAX && slot == NULL; i++) {
        /* A slot whose thread has not been joined yet is not free. */
        if (x->slots[i].state == DR_EXPORT_IDLE && !x->slots[i].thread_started &&
            x->slots[i].reads == 0) {
            slot = &x->slots[i];
        }
    }
    if (slot == NULL) {
        snprintf(msg, sizeof(msg),
                 "%d snapshot downloads are in progress on this node, the most at once; each "
                 "ends when read or after %d s unread",
                 DR_EXPORT_MAX, DR_EXPORT_IDLE_MS / 1000);
        session_send_error(session, req->id, req->type, CAIRN_EBUSY, msg, NULL);
        return;
    }
    rv = start(slot, ++x->last_id);
    if (rv != 0) {
        session_send_error(session, req->id, req->type, rv, "cannot start an export", NULL);
        return;
    }
    if (dr_add_waiter(&slot->waiters, session, req->id) != 0) {
        reset(slot);
    }
}

bool dr_export_handle(struct dr_export *x, struct session *session, const struct proto_request *req)
{
    const struct proto_slice *verb = &req->op.key;
    struct dr_export_slot *slot;
    char msg[160];
    if (verb->len == 6 && memcmp(verb->ptr, "export", 6) == 0) {
        begin(x, session, req);
        return true;
    }
    bool is_read = verb->len == 11 && memcmp(verb->ptr, "export-read", 11) == 0;
    bool is_end = verb->len == 10 && memcmp(verb->ptr, "export-end", 10) == 0;
    if (!is_read && !is_end) {
        return false;
    }
    slot = find(x, req->number);
    if (slot == NULL || slot->state != DR_EXPORT_READY) {
        snprintf(msg, sizeof(msg),
                 "no snapshot download %" PRIu64
                 " on this node (it ended, was unread for %d s, or leadership moved): start "
                 "again",
                 req->number, DR_EXPORT_IDLE_MS / 1000);
        session_send_error(session, req->id, req->type, CAIRN_ENOTFOUND, msg, NULL);
        return true;
    }
    if (is_read) {
        read_chunk(slot, session, req);
        return true;
    }
    uint64_t revision = slot->snap.revision;
    reset(slot);
    struct buf json;
    buf_init(&json);
    char text[64];
    int n = snprintf(text, sizeof(text), "{\"ended\":%" PRIu64 "}", req->number);
    if (buf_append(&json, text, (size_t)n) != 0) {
        session_send_error(session, req->id, req->type, CAIRN_ENOMEM, "out of memory", NULL);
    } else {
        dr_reply_json(session, req->id, revision, &json);
    }
    buf_free(&json);
    return true;
}

static void slot_close(struct dr_export_slot *x)
{
    if (x->thread_started) {
        pthread_join(x->thread, NULL);
        x->thread_started = false;
    }
    reset(x);
    dr_answer_waiters(&x->waiters, 0, CAIRN_ESHUTDOWN, "node is shutting down", NULL);
    if (x->handles) {
        x->handles = false;
        uv_close((uv_handle_t *)&x->idle, NULL);
        uv_close((uv_handle_t *)&x->timer, NULL);
        uv_close((uv_handle_t *)&x->async, NULL);
    }
}

void dr_export_close(struct dr_export *x)
{
    unsigned i;
    if (x->srv == NULL) {
        return; /* never initialized: the node stopped before dr_init */
    }
    for (i = 0; i < DR_EXPORT_MAX; i++) {
        slot_close(&x->slots[i]);
    }
}
