/*
 * proto: Cairn's client protocol codec, shared by cairnd and libcairn. It does
 * no I/O: feed it bytes, get messages; give it messages, get bytes.
 *
 * A frame is a 4-byte big-endian payload length followed by that many bytes
 * of msgpack. Requests and responses are msgpack arrays whose positions are
 * fixed (see docs/architecture.md, "The protocol"); a decoder ignores extra
 * trailing elements so that later versions can append fields.
 *
 *   request  = [version, id, type, op, [cmp...], [then-op...], [else-op...], number,
 *               age_ms, min_revision, max_staleness_ms, wait_ms]
 *   op       = [type, key, value, prefix, prev_kv, limit, after, revision, stale]
 *   cmp      = [key, target, cmp-op, value, number]
 *   response = [version, id, type|0x80, code, message, leader, revision,
 *               compact_revision, succeeded, [result...], status|nil, watch|nil,
 *               text]
 *   result   = [deleted, more, [kv...]]
 *   kv       = [key, value, create_rev, mod_rev, version, time_ms, deleted]
 *   status   = {"id": .., "state": .., ...} (a map: it grows most often)
 *   watch    = [kind, more, part, [event...]]   (watch messages only)
 *   event    = [kv, prev_kv|nil]
 *   text     = a string            (METRICS, BACKUP, MEMBER, TRANSFER answers only)
 *
 * Ids are chosen by the client and echoed by the server, so any number of
 * requests may be in flight on one connection (pipelining); a server answers
 * them in any order.
 */
#ifndef CAIRN_PROTO_H
#define CAIRN_PROTO_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cairn.h"

#define PROTO_VERSION 1
#define PROTO_FRAME_HEADER_SIZE 4
/* Hard ceiling on any frame; servers configure a lower request limit. */
#define PROTO_FRAME_SIZE_MAX (64u * 1024u * 1024u)

enum proto_type {
    PROTO_GET = 1,
    PROTO_PUT = 2,
    PROTO_DEL = 3,
    PROTO_TXN = 4,
    PROTO_HISTORY = 5,
    PROTO_COMPACT = 6,
    PROTO_STATUS = 7,
    PROTO_RETENTION = 8,
    PROTO_WATCH = 9,
    PROTO_WATCH_CANCEL = 10,
    PROTO_PROGRESS = 11,
    PROTO_SWEEP = 12,    /* apply retention age limits at the entry's time */
    PROTO_METRICS = 13,  /* the node's metrics, as Prometheus text (any node answers) */
    PROTO_INIT = 14,     /* internal log entry: number = cluster id (set once) */
    PROTO_BACKUP = 15,   /* disaster recovery: op.key = verb; answered with JSON text */
    PROTO_MEMBER = 16,   /* membership: op.key = verb, number = member id, op.value =
                          * RAFT_ADDR/CLIENT_ADDR (add); answered with JSON text */
    PROTO_TRANSFER = 17, /* leadership transfer: number = target id (0: raft picks);
                          * answered with JSON text */
    PROTO_TYPE_MAX = 17,
};

/* A BACKUP request's verb (op.key): "status", "save", "verify", "export",
 * "export-read" or "export-end" today (the export verbs: src/dr_export.h). The
 * decoder refuses an empty verb or one longer than this (CAIRN_EMALFORMED);
 * the server answers a verb it does not know with CAIRN_EINVAL, so that
 * later verbs need no change here. */
#define PROTO_BACKUP_VERB_MAX 16

/* A MEMBER request's verb (op.key): "list", "add", "promote", "demote" or
 * "remove"; the same bounds as a BACKUP verb, checked the same way. */
#define PROTO_MEMBER_VERB_MAX PROTO_BACKUP_VERB_MAX

/* Whether answers of this type carry text (the response's thirteenth
 * element): METRICS (Prometheus text), BACKUP, MEMBER and TRANSFER (JSON). */
bool proto_type_has_text(uint8_t type);

/* What a watch message (a response to PROTO_WATCH, sent any number of times
 * with the watch's id) carries. Its head revision R always means "every
 * event up to R has now been delivered": the resume point is R + 1. */
enum proto_watch_kind {
    PROTO_WATCH_CREATED = 1,  /* the watch exists; R = start - 1 */
    PROTO_WATCH_EVENTS = 2,   /* one or more whole revisions, ascending; R = the last */
    PROTO_WATCH_PROGRESS = 3, /* no events; R = the node's revision */
    PROTO_WATCH_SNAPSHOT = 4, /* one part of the range's state at R */
    PROTO_WATCH_CANCELED = 5, /* the server ended the watch; code says why */
    PROTO_WATCH_KIND_MAX = 5,
};

#define PROTO_RESPONSE_FLAG 0x80

struct proto_slice
{
    const char *ptr; /* borrowed */
    uint32_t len;
};

struct proto_op
{
    uint8_t type; /* enum cairn_op_type */
    struct proto_slice key;
    struct proto_slice value;
    bool prefix;
    bool prev_kv;
    uint64_t limit;
    struct proto_slice after;
    uint64_t revision;
    bool stale;
};

struct proto_cmp
{
    struct proto_slice key;
    uint8_t target; /* enum cairn_cmp_target */
    uint8_t op;     /* enum cairn_cmp_op */
    struct proto_slice value;
    uint64_t number;
};

struct proto_request
{
    uint64_t id;
    uint8_t type;           /* enum proto_type */
    struct proto_op op;     /* GET, PUT, DEL, HISTORY; RETENTION, BACKUP and MEMBER use
                             * op.key; MEMBER "add" the member's address in op.value */
    struct proto_cmp *cmps; /* TXN; arena memory */
    uint32_t n_cmps;
    struct proto_op *then_ops;
    uint32_t n_then;
    struct proto_op *else_ops;
    uint32_t n_else;
    uint64_t number; /* COMPACT: revision; RETENTION: versions; WATCH: progress
                      * interval in ms (0: server default); WATCH_CANCEL: the
                      * watch id; PROGRESS: a watch id, 0 for all; INIT: the
                      * cluster id */
    uint64_t age_ms; /* RETENTION: maximum age of past versions (0: none);
                      * the prefix is op.key */
    /* Reads (GET, HISTORY, read-only TXN); 0 means "none" in each, which is
     * also what a peer that predates them sends (a request of 9 elements).
     * min_revision: answer locally once this node has applied it (implies
     * op.stale); max_staleness_ms: a stale read refused with CAIRN_ESTALE
     * when this node is staler; wait_ms: how long the sender waits for the
     * answer, capping the node's wait for min_revision (0: the node's
     * --read-wait-max-ms). An older node ignores all three: a client checks
     * the answer's revision against min_revision. */
    uint64_t min_revision;
    uint64_t max_staleness_ms;
    uint64_t wait_ms;
};

/* Inspect the start of a byte stream. Returns 1 and sets *payload_len when a
 * whole frame is present, 0 when more bytes are needed, CAIRN_ETOOLARGE when
 * the header announces more than max_payload bytes. */
int proto_frame_peek(const char *data, size_t len, size_t max_payload, size_t *payload_len);

/* Append one framed request to out. Returns 0 or CAIRN_ENOMEM. */
int proto_encode_request(struct buf *out, const struct proto_request *req);

/* Decode a request payload (no frame header). Slices point into payload;
 * arrays come from arena a. Returns 0, CAIRN_EMALFORMED or CAIRN_EVERSION;
 * on error *id is set when the id could be read (else 0). The only check
 * beyond the layout is a BACKUP verb's length (PROTO_BACKUP_VERB_MAX). */
int proto_decode_request(const char *payload, size_t len, struct arena *a,
                         struct proto_request *out);

/* Encoding a response: a packer appending to a buf, and a frame whose length
 * header is patched when the response is finished. */
struct proto_writer
{
    struct buf *out; /* borrowed */
    size_t frame_start;
    bool failed;       /* an append ran out of memory */
    size_t rev_offset; /* where the response head's revision sits */
    size_t ok_offset;  /* where the response head's succeeded flag sits */
    size_t id_offset;  /* where a watch head's id sits: 8 big-endian bytes */
    msgpack_packer pk;
};

void proto_writer_begin(struct proto_writer *w, struct buf *out);
/* Returns 0, or CAIRN_ENOMEM if any append failed since begin. */
int proto_writer_end(struct proto_writer *w);
/* The same without a frame header: bare msgpack appended to out (for
 * encoding pieces once and copying them into many frames). On failure, end
 * truncates out back to where begin found it. */
void proto_writer_begin_unframed(struct proto_writer *w, struct buf *out);
int proto_writer_end_unframed(struct proto_writer *w);

struct proto_response_head
{
    uint64_t id;
    uint8_t type;
    int code;
    const char *message; /* NULL: none */
    const char *leader;  /* NULL: none */
    uint64_t revision;
    uint64_t compact_revision;
    bool succeeded;
    uint32_t n_results;
};

/* Packs everything up to the results array header; the caller then packs
 * n_results results (proto_pack_result + kvs) and finally either nil or a
 * status map (proto_pack_status). */
void proto_pack_response_head(struct proto_writer *w, const struct proto_response_head *h);
/* Overwrite the revision / succeeded fields of a head packed earlier into
 * the same writer (kv decides them only after running the operations). */
void proto_patch_revision(struct proto_writer *w, uint64_t revision);
void proto_patch_succeeded(struct proto_writer *w, bool succeeded);
void proto_pack_result(struct proto_writer *w, uint32_t n_kvs, uint64_t deleted, bool more);
void proto_pack_kv(struct proto_writer *w, const struct cairn_kv *kv);
void proto_pack_nil(struct proto_writer *w);
void proto_pack_status(struct proto_writer *w, const struct cairn_status *s);

/* A watch message: a whole response head for watch_id (no results, no
 * status) followed by the watch element's header. The id is packed at a
 * fixed width, its 8 big-endian bytes at w->id_offset, so that one encoded
 * message can be copied to many watchers and only the id rewritten; the caller then packs
 * exactly n_events events with proto_pack_event(), or with
 * proto_pack_event_head() and two pre-encoded kvs (proto_pack_raw). For a
 * snapshot part, more says whether further parts follow and part numbers
 * them from 0 (a part 0 starts a new snapshot). */
void proto_pack_watch_head(struct proto_writer *w, uint64_t watch_id, uint8_t kind,
                           uint64_t revision, uint64_t compact_revision, bool more, uint32_t part,
                           uint32_t n_events);
/* An event: prev may be NULL (packed as nil). */
void proto_pack_event(struct proto_writer *w, const struct cairn_kv *kv,
                      const struct cairn_kv *prev);
void proto_pack_event_head(struct proto_writer *w);
/* Append bytes that already are msgpack. */
void proto_pack_raw(struct proto_writer *w, const void *bytes, size_t len);

/* Convenience: a whole error response frame. */
int proto_encode_error(struct buf *out, uint64_t id, uint8_t type, int code, const char *message,
                       const char *leader);

/* A whole answer frame that carries text: the head (code 0, revision), no
 * results, no status, no watch, and text (len bytes, copied; UTF-8 by
 * contract, not checked). type is PROTO_METRICS (Prometheus text), or
 * PROTO_BACKUP, PROTO_MEMBER or PROTO_TRANSFER (a JSON document): the only
 * types whose text a decoder reads (proto_type_has_text).
 * Returns 0, or CAIRN_ENOMEM (CAIRN_ETOOLARGE beyond 4 GiB of text) with out
 * as it was. */
int proto_encode_text(struct buf *out, uint64_t id, uint8_t type, uint64_t revision,
                      const char *text, size_t len);
/* The same for PROTO_METRICS (the form server.c calls). */
int proto_encode_metrics(struct buf *out, uint64_t id, uint64_t revision, const char *text,
                         size_t len);

/* A decoded response; everything is copied into an arena it owns. */
struct proto_response
{
    uint64_t id;
    uint8_t type;
    int code;
    const char *message;           /* "" when none */
    const char *leader;            /* "" when none */
    struct cairn_result *result;   /* owned; NULL when the response carried none */
    struct cairn_status *status;   /* owned; NULL when none */
    struct proto_watch_msg *watch; /* owned; NULL unless a watch message */
    const char *text;              /* proto_type_has_text: NUL-terminated (arena); NULL when none */
    size_t text_len;               /* bytes of text before the NUL (it may hold NULs) */
};

/* The watch element of a watch message. Memory shares the response's arena. */
struct proto_watch_msg
{
    uint8_t kind; /* enum proto_watch_kind */
    bool more;
    uint32_t part;
    struct cairn_event *events;
    size_t n_events;
};

/* Decode a response payload. Returns 0 or CAIRN_EMALFORMED / CAIRN_EVERSION /
 * CAIRN_ENOMEM. On success the caller owns out->result, out->status,
 * out->watch and out->text; they share one arena: release them together
 * with proto_response_free(), or keep out->result and free it with
 * cairn_result_free() (which releases the others as well). */
int proto_decode_response(const char *payload, size_t len, struct proto_response *out);
void proto_response_free(struct proto_response *r);

#endif /* CAIRN_PROTO_H */
