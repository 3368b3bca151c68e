/*
 * session: one client connection on the native protocol.
 *
 * The session reads bytes, cuts them into frames (proto_frame_peek) and hands
 * each payload to server_handle_request(). Responses are appended to the
 * session's output buffer, from any point of the loop (a read answered at
 * once, a write answered when its entry is applied, a batch of linearizable
 * reads answered when their barrier commits); the server flushes every
 * session with output once per loop iteration, so responses produced
 * together leave in one write.
 *
 * A session whose peer is gone may still be named by requests in flight in
 * raft: it is reference-counted, and its memory is freed only when it is
 * closed and no request holds it. Answers for a closed session are dropped.
 *
 * Limits: a frame larger than max_request_bytes is answered with
 * CAIRN_ETOOLARGE and skipped (closed instead when it claims more than the
 * protocol's 64 MiB ceiling); a frame that does not decode is answered with
 * an error and the connection is closed after the answer is flushed. When more than
 * session_output_max_bytes of output waits (a client that does not read), the session stops reading
 * until the output drains.
 */
#ifndef CAIRN_SESSION_H
#define CAIRN_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"

struct server;
struct watcher;

struct session
{
    struct server *srv; /* borrowed */
    uv_tcp_t tcp;
    struct buf in;      /* bytes read, not yet a whole frame */
    struct buf out;     /* responses not yet handed to uv_write */
    struct buf writing; /* bytes in the uv_write in flight */
    uv_write_t write_req;
    bool write_in_flight;
    bool reading;
    bool closing;
    bool close_after_flush;
    bool dirty;           /* on the server's flush list */
    uint64_t discard;     /* bytes of an oversized frame still to skip */
    unsigned refs;        /* the connection itself + requests in flight */
    struct session *next; /* server's list of sessions */
    struct session *prev;
    struct session *dirty_next;
    uint64_t written_bytes;   /* bytes the socket has taken so far */
    struct watcher *watchers; /* the watch hub's watchers of this connection */
    uint64_t n_watchers;
    uint64_t watch_parked; /* watchers waiting for the output to drain */
    uint64_t parked_reads; /* reads waiting for a revision (reads.h) */
};

/* Accept a connection from listener into a new session. */
int session_accept(struct server *srv, uv_stream_t *listener);
/* The same for a connection accepted elsewhere (preflight.h): fd, and the
 * bytes already read from it (an incomplete frame), become a session. On
 * failure fd is closed. */
int session_adopt(struct server *srv, int fd, const char *pending, size_t pending_len);

/* Output buffer to pack a response into; call session_output_done() after. */
struct buf *session_output(struct session *s);
void session_output_done(struct session *s);

/* Answer with an error frame. */
void session_send_error(struct session *s, uint64_t id, uint8_t type, int code, const char *message,
                        const char *leader);

/* Close after the pending output is written. */
void session_close_after_flush(struct session *s);
void session_close(struct session *s);

/* Requests in flight hold the session. */
void session_ref(struct session *s);
void session_unref(struct session *s);
bool session_is_open(const struct session *s);

/* Write out pending output (called by the server once per loop iteration). */
void session_flush(struct session *s);

#endif /* CAIRN_SESSION_H */
