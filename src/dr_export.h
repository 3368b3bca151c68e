/*
 * dr_export: a snapshot of the whole store downloaded by a client, as
 * `etcdctl snapshot save FILE` and `consul snapshot save FILE` do
 * (`cairnctl snapshot save FILE`, docs/disaster-recovery.md). It needs no
 * object store: the leader captures its state (in slices, like a backup
 * snapshot), a thread of its own writes the same artifact a backup would
 * upload into an unlinked file in the data directory, and the client reads
 * it in pieces with BACKUP requests:
 *
 *   "export"       start one; answered, once written, with
 *                  {"export": ID, "bytes": N, "snapshot": MANIFEST}
 *   "export-read"  number = ID, op.revision = offset, op.limit = most bytes
 *                  (at most DR_EXPORT_READ_MAX); answered with the bytes as
 *                  the answer's text
 *   "export-end"   number = ID: the file goes
 *
 * Up to DR_EXPORT_MAX exports at once per node, each with its own capture,
 * file and thread (the captures take turns: one sliced capture at a time);
 * one more "export" meanwhile is refused with CAIRN_EBUSY. An export nobody
 * reads for DR_EXPORT_IDLE_MS goes by itself, and nothing of it outlives the
 * process (the file is unlinked at once).
 * Everything here runs on the loop thread but the writing (a thread of its
 * own) and the reading of pieces (libuv's thread pool).
 */
#ifndef CAIRN_DR_EXPORT_H
#define CAIRN_DR_EXPORT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "dr_archive.h"
#include "proto.h"

struct server;
struct session;
struct dr_waiter;

#define DR_EXPORT_READ_MAX (4u << 20)
#define DR_EXPORT_IDLE_MS 60000
#define DR_EXPORT_MAX 4

enum dr_export_state {
    DR_EXPORT_IDLE = 0,
    DR_EXPORT_CAPTURING, /* waiting to begin the capture, or stepping it */
    DR_EXPORT_WRITING,   /* the thread writes the file */
    DR_EXPORT_READY,     /* written: clients read it */
};

/* One export. */
struct dr_export_slot
{
    struct server *srv; /* borrowed */
    enum dr_export_state state;
    uint64_t id; /* the current (or last) export's */
    struct kv_capture *cap;
    struct dr_snapshot snap;
    int fd;
    char path[4096];
    bool handles; /* idle, async and timer initialized */
    uv_idle_t idle;
    uv_async_t async;
    uv_timer_t timer;
    pthread_t thread;
    bool thread_started;
    int thread_rv; /* the thread's result: 0 or -1 with thread_err */
    char thread_err[512];
    struct dr_waiter *waiters;
    unsigned reads; /* export-reads under way on the thread pool */
};

struct dr_export
{
    struct server *srv; /* borrowed */
    uint64_t last_id;   /* ids are never reused while the node runs */
    struct dr_export_slot slots[DR_EXPORT_MAX];
};

void dr_export_init(struct dr_export *x, struct server *srv);
/* Answer a BACKUP request whose verb begins with "export"; returns false
 * (nothing answered) for any other verb. */
bool dr_export_handle(struct dr_export *x, struct session *session,
                      const struct proto_request *req);
/* Waits for the writing thread, answers waiters, frees everything. */
void dr_export_close(struct dr_export *x);

/* The manifest of the state as it is now (loop thread): what a snapshot
 * captured in this loop turn holds. */
void dr_describe_state(struct server *s, struct dr_snapshot *snap);

#endif /* CAIRN_DR_EXPORT_H */
