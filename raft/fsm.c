#include "fsm.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "entry.h"

static int entry_write_cb(void *data, const char *bytes, size_t len)
{
    return buf_append(data, bytes, len) == 0 ? 0 : -1;
}

int fsm_encode_entry(raft_id origin, int64_t time_ms, const char *payload, size_t len,
                     struct raft_buffer *out)
{
    struct buf b;
    msgpack_packer pk;
    int rv = 0;
    buf_init(&b);
    msgpack_packer_init(&pk, &b, entry_write_cb);
    rv |= msgpack_pack_array(&pk, 4);
    rv |= msgpack_pack_uint32(&pk, ENTRY_FORMAT);
    rv |= msgpack_pack_uint64(&pk, origin);
    rv |= msgpack_pack_int64(&pk, time_ms);
    rv |= msgpack_pack_bin(&pk, len);
    rv |= msgpack_pack_bin_body(&pk, payload, len);
    if (rv != 0) {
        buf_free(&b);
        return CAIRN_ENOMEM;
    }
    /* Ownership of the entry passes to raft, which frees it with raft_free.
     * raft_uv's segment format needs entry sizes that are multiples of 8:
     * it pads the data on disk but records the unpadded size, and a closed
     * segment holding an odd-sized entry then fails to load ("short read").
     * The zero padding follows the msgpack array, which apply ignores. */
    out->len = (b.len + 7) / 8 * 8;
    out->base = raft_malloc(out->len);
    if (out->base == NULL) {
        buf_free(&b);
        return CAIRN_ENOMEM;
    }
    memset(out->base, 0, out->len);
    memcpy(out->base, b.data, b.len);
    buf_free(&b);
    return 0;
}

static void fatal(const char *what)
{
    fprintf(stderr,
            "cairnd: fatal: %s while applying a committed entry; aborting so that "
            "this replica never diverges (the log is replayed on restart)\n",
            what);
    abort();
}

static int fsm_apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    struct fsm *f = rf->data;
    uint64_t origin;
    int64_t time_ms;
    const char *payload;
    uint32_t len;
    struct arena a;
    struct proto_request req;
    struct proto_writer w;
    bool mine;
    int rv;

    *result = NULL;
    f->applied_commands++;
    f->applied_bytes += buf->len;
    f->reply.len = 0;
    f->reply_code = 0;
    if (!entry_parse(buf->base, buf->len, &origin, &time_ms, &payload, &len)) {
        return 0; /* not ours to judge: a no-op everywhere */
    }
    arena_init(&a);
    rv = proto_decode_request(payload, len, &a, &req);
    if (rv != 0) {
        arena_free(&a);
        return 0;
    }
    mine = origin == f->id;
    if (mine) {
        proto_writer_begin(&w, &f->reply);
    }
    rv = kv_apply(&f->kv, &req, time_ms, mine ? &w : NULL);
    if (rv == CAIRN_ENOMEM) {
        fatal("out of memory");
    }
    if (f->hooks.applied != NULL && f->raft != NULL) {
        /* raft sets last_applied once apply returns (0.15 applyCommand). */
        f->hooks.applied(f->hooks.data, f->raft->last_applied + 1, time_ms, buf->base, buf->len);
    }
    if (f->advanced != NULL) {
        f->advanced(f->advanced_data);
    }
    if (mine) {
        if (rv != 0) {
            /* Refused (deterministically on every node): answer the error. */
            f->reply_code = rv;
            f->reply.len = 0;
            rv = proto_encode_error(&f->reply, req.id, req.type, rv, NULL, NULL);
        } else {
            rv = proto_writer_end(&w);
        }
        if (rv != 0) {
            f->reply.len = 0; /* the callback answers "internal error" */
        }
        *result = &f->reply;
    }
    arena_free(&a);
    return 0;
}

/* Snapshots are taken in three steps (raft_fsm version 3), so that the loop
 * never stalls encoding the whole store:
 *
 *   fsm_snapshot           loop thread   capture the state (no value copied)
 *   fsm_snapshot_async     thread pool   encode the capture into one buffer
 *   fsm_snapshot_finalize  loop thread   free the buffer, release the capture
 *
 * raft takes one snapshot at a time, so one capture slot is enough. raft_uv
 * then compresses the buffer with LZ4 and writes it. */
/* Nice value of a pool thread while it encodes a snapshot. */
#define FSM_SNAPSHOT_NICE 10

static int fsm_snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct fsm *f = rf->data;
    int rv;
    if (f->capture != NULL) {
        return RAFT_BUSY; /* raft retries at the next threshold */
    }
    if (f->hooks.before_snapshot != NULL) {
        f->hooks.before_snapshot(f->hooks.data);
    }
    *bufs = raft_calloc(1, sizeof(**bufs));
    if (*bufs == NULL) {
        return RAFT_NOMEM;
    }
    rv = kv_capture(&f->kv, &f->capture);
    if (rv != 0) {
        raft_free(*bufs);
        *bufs = NULL;
        return RAFT_NOMEM;
    }
    *n_bufs = 1;
    f->snapshot_started_ns = metrics_now_ns();
    return 0;
}

static int fsm_snapshot_async(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct fsm *f = rf->data;
    struct buf b;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    int nice_before;
    bool reniced;
    int rv;
    buf_init(&b);
    /* Encode at a low CPU priority: on a small machine every node encodes at
     * the same index, and the loop threads (which serve requests) must not
     * wait behind it. Linux applies setpriority to one thread given its id.
     * The thread belongs to libuv's pool, so its priority is restored. */
    errno = 0;
    nice_before = getpriority(PRIO_PROCESS, (id_t)tid);
    reniced = errno == 0 && setpriority(PRIO_PROCESS, (id_t)tid, FSM_SNAPSHOT_NICE) == 0;
    /* Reads only the capture and the values it keeps alive. */
    rv = kv_capture_encode(f->capture, &b);
    if (reniced) {
        setpriority(PRIO_PROCESS, (id_t)tid, nice_before);
    }
    if (rv != 0) {
        buf_free(&b);
        return RAFT_NOMEM;
    }
    (*bufs)[0].len = b.len;
    (*bufs)[0].base = buf_steal(&b); /* freed by fsm_snapshot_finalize */
    *n_bufs = 1;
    return 0;
}

static void *free_main(void *p)
{
    cairn_free(p);
    return NULL;
}

/* Free a large block on a thread of its own. Giving 100-200 MB back to the
 * kernel (munmap) took 9 ms on the loop thread, stalling every client of
 * the node for that long (docs/performance.md, "Disaster recovery"). */
static void free_off_loop(void *p)
{
    pthread_attr_t attr;
    pthread_t t;
    bool started = false;
    if (p == NULL) {
        return;
    }
    if (pthread_attr_init(&attr) == 0) {
        started = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
                  pthread_create(&t, &attr, free_main, p) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started) {
        cairn_free(p);
    }
}

static int fsm_snapshot_finalize(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct fsm *f = rf->data;
    if (*bufs != NULL) {
        if ((*bufs)[0].base != NULL) {
            /* raft calls this once the snapshot is written (or failed to
             * be): the duration covers capture, encoding, LZ4 and the
             * write. */
            f->snapshots_taken++;
            metrics_observe(f->snapshot_take_ns, metrics_now_ns() - f->snapshot_started_ns);
        }
        free_off_loop((*bufs)[0].base);
        raft_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    kv_capture_release(&f->kv, f->capture);
    f->capture = NULL;
    return 0;
}

static int fsm_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
    struct fsm *f = rf->data;
    uint64_t started_ns = metrics_now_ns();
    int rv = kv_snapshot_decode(&f->kv, buf->base, buf->len);
    if (rv != 0) {
        fprintf(stderr, "cairnd: snapshot does not decode (%s); keeping current state\n",
                cairn_strerror(rv));
        return rv == CAIRN_ENOMEM ? RAFT_NOMEM : RAFT_CORRUPT;
    }
    /* On success the restore callback owns the buffer (raft.h). */
    raft_free(buf->base);
    if (f->hooks.replaced != NULL) {
        f->hooks.replaced(f->hooks.data);
    }
    if (f->advanced != NULL) {
        f->advanced(f->advanced_data);
    }
    f->snapshots_restored++;
    metrics_observe(f->snapshot_restore_ns, metrics_now_ns() - started_ns);
    return 0;
}

int fsm_init(struct fsm *f, raft_id id)
{
    int rv;
    memset(f, 0, sizeof(*f));
    rv = kv_init(&f->kv);
    if (rv != 0) {
        return rv;
    }
    f->id = id;
    buf_init(&f->reply);
    /* Version 3: asynchronous snapshots. raft_init refuses it unless the
     * io reports version 2 (see server.c). */
    f->raft_fsm.version = 3;
    f->raft_fsm.data = f;
    f->raft_fsm.apply = fsm_apply;
    f->raft_fsm.snapshot = fsm_snapshot;
    f->raft_fsm.restore = fsm_restore;
    f->raft_fsm.snapshot_finalize = fsm_snapshot_finalize;
    f->raft_fsm.snapshot_async = fsm_snapshot_async;
    return 0;
}

void fsm_close(struct fsm *f)
{
    kv_close(&f->kv);
    buf_free(&f->reply);
}

#define FSM_VERSION_OVERHEAD_BYTES 48 /* a version's fixed fields, encoded */
#define FSM_THRESHOLD_MAX (1ull << 30)

uint64_t fsm_snapshot_threshold(uint64_t min_entries, uint64_t log_percent, uint64_t state_bytes,
                                uint64_t entry_bytes)
{
    uint64_t want;
    if (log_percent == 0 || entry_bytes == 0) {
        return min_entries;
    }
    /* state_bytes * log_percent / 100 / entry_bytes without overflow: state
     * sizes stay far below 2^57 bytes, and the percentage below 2^7 * 100. */
    want = state_bytes / 100 * log_percent / entry_bytes;
    if (want > FSM_THRESHOLD_MAX) {
        want = FSM_THRESHOLD_MAX;
    }
    return want > min_entries ? want : min_entries;
}

uint64_t fsm_state_bytes(const struct fsm *f)
{
    return f->kv.value_bytes + f->kv.total_versions * FSM_VERSION_OVERHEAD_BYTES;
}
