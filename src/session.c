#include "session.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "server.h"

#define SESSION_READ_CHUNK 65536
/* A write buffer that grew past this (a burst of watch events, a large
 * range) is released once written rather than kept at its peak size for the
 * life of the connection. */
#define SESSION_BUF_KEEP_BYTES (1024 * 1024)

static void session_free(struct session *s)
{
    buf_free(&s->in);
    buf_free(&s->out);
    buf_free(&s->writing);
    cairn_free(s);
}

void session_ref(struct session *s)
{
    s->refs++;
}

void session_unref(struct session *s)
{
    /* Each ref was taken by session_ref() or at accept. */
    if (--s->refs == 0) {
        session_free(s);
    }
}

bool session_is_open(const struct session *s)
{
    return !s->closing;
}

static void close_cb(uv_handle_t *h)
{
    struct session *s = h->data;
    session_unref(s);
}

void session_close(struct session *s)
{
    if (s->closing) {
        return;
    }
    s->closing = true;
    watch_hub_session_closed(&s->srv->hub, s);
    reads_session_closed(&s->srv->reads, s);
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        s->srv->sessions = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    s->srv->n_sessions--;
    uv_close((uv_handle_t *)&s->tcp, close_cb);
}

static void mark_dirty(struct session *s)
{
    if (!s->dirty && !s->closing) {
        s->dirty = true;
        session_ref(s);
        s->dirty_next = s->srv->dirty;
        s->srv->dirty = s;
    }
}

struct buf *session_output(struct session *s)
{
    return &s->out;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct session *s = h->data;
    (void)suggested;
    if (buf_reserve(&s->in, SESSION_READ_CHUNK) != 0) {
        b->base = NULL;
        b->len = 0;
        return;
    }
    b->base = s->in.data + s->in.len;
    b->len = s->in.cap - s->in.len;
}

static void update_reading(struct session *s);

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    struct session *s = stream->data;
    size_t off = 0;
    (void)b;
    if (nread < 0) {
        if (nread != UV_EOF) {
            log_trace("client connection error: %s", uv_strerror((int)nread));
        }
        session_close(s);
        return;
    }
    if (nread == 0) {
        return;
    }
    s->in.len += (size_t)nread;
    /* Handle every whole frame; requests may answer at once into s->out. */
    while (!s->closing && !s->close_after_flush) {
        size_t payload_len;
        int rv;
        if (s->discard > 0) {
            /* The rest of an oversized frame: skipped unread. */
            size_t n = s->in.len - off < s->discard ? s->in.len - off : (size_t)s->discard;
            off += n;
            s->discard -= n;
            if (s->discard > 0) {
                break;
            }
        }
        rv = proto_frame_peek(s->in.data + off, s->in.len - off, s->srv->cfg->max_request_bytes,
                              &payload_len);
        if (rv == 0) {
            break;
        }
        if (rv < 0) {
            char msg[200];
            /* A frame within the protocol's ceiling is skipped, so that the
             * client reads a clean "too large" (certainly not applied) and
             * keeps its connection; beyond the ceiling the stream is not
             * believed to be ours at all, and is closed. */
            bool skip = payload_len <= PROTO_FRAME_SIZE_MAX;
            snprintf(msg, sizeof(msg), "frame of %zu bytes exceeds max_request_bytes (%llu)%s",
                     payload_len, (unsigned long long)s->srv->cfg->max_request_bytes,
                     skip ? "; request not applied" : "; closing connection");
            session_send_error(s, 0, 0, CAIRN_ETOOLARGE, msg, NULL);
            node_metrics_request(&s->srv->metrics, NODE_OP_INVALID, CAIRN_ETOOLARGE,
                                 metrics_now_ns());
            if (!skip) {
                session_close_after_flush(s);
                break;
            }
            s->discard = PROTO_FRAME_HEADER_SIZE + (uint64_t)payload_len;
            continue;
        }
        server_handle_request(s->srv, s, s->in.data + off + PROTO_FRAME_HEADER_SIZE, payload_len);
        off += PROTO_FRAME_HEADER_SIZE + payload_len;
    }
    buf_consume(&s->in, off);
    update_reading(s);
}

/* Stop reading while too much output waits (the client is not reading its
 * answers), resume once it drained. */
static void update_reading(struct session *s)
{
    bool want = !s->closing && !s->close_after_flush &&
                s->out.len + s->writing.len < s->srv->cfg->session_output_max_bytes;
    if (want && !s->reading) {
        if (uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, read_cb) == 0) {
            s->reading = true;
        }
    } else if (!want && s->reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = false;
    }
}

void session_output_done(struct session *s)
{
    mark_dirty(s);
}

void session_send_error(struct session *s, uint64_t id, uint8_t type, int code, const char *message,
                        const char *leader)
{
    if (s->closing) {
        return;
    }
    proto_encode_error(&s->out, id, type, code, message, leader);
    mark_dirty(s);
}

void session_close_after_flush(struct session *s)
{
    s->close_after_flush = true;
    mark_dirty(s);
}

static void write_cb(uv_write_t *req, int status)
{
    struct session *s = req->data;
    s->write_in_flight = false;
    s->written_bytes += s->writing.len;
    s->writing.len = 0;
    if (s->writing.cap > SESSION_BUF_KEEP_BYTES) {
        buf_free(&s->writing);
    }
    if (status != 0 || s->closing) {
        session_close(s);
        session_unref(s);
        return;
    }
    watch_hub_session_drained(&s->srv->hub, s);
    session_flush(s);
    update_reading(s);
    session_unref(s);
}

void session_flush(struct session *s)
{
    uv_buf_t b;
    struct buf tmp;
    int rv;
    if (s->closing || s->write_in_flight) {
        return;
    }
    if (s->out.len == 0) {
        if (s->close_after_flush) {
            session_close(s);
        }
        return;
    }
    /* Swap buffers: out becomes the write in flight, the old write buffer
     * (empty) collects further output. */
    tmp = s->writing;
    s->writing = s->out;
    s->out = tmp;
    s->out.len = 0;
    b = uv_buf_init(s->writing.data, (unsigned)s->writing.len);
    s->write_req.data = s;
    rv = uv_write(&s->write_req, (uv_stream_t *)&s->tcp, &b, 1, write_cb);
    if (rv != 0) {
        session_close(s);
        return;
    }
    s->write_in_flight = true;
    session_ref(s);
}

/* A new session on srv's list, its handle taken from the listener (fd < 0)
 * or from an open connection (fd, with bytes already read from it). */
static int session_start(struct server *srv, uv_stream_t *listener, int fd, const char *pending,
                         size_t pending_len)
{
    struct session *s = cairn_calloc(1, sizeof(*s));
    int rv;
    if (s == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        return UV_ENOMEM;
    }
    s->srv = srv;
    s->refs = 1; /* dropped by close_cb */
    buf_init(&s->in);
    buf_init(&s->out);
    buf_init(&s->writing);
    if (pending_len > 0 && buf_append(&s->in, pending, pending_len) != 0) {
        rv = UV_ENOMEM;
    } else {
        rv = uv_tcp_init(srv->loop, &s->tcp);
    }
    if (rv != 0) {
        buf_free(&s->in);
        cairn_free(s);
        if (fd >= 0) {
            close(fd);
        }
        return rv;
    }
    s->tcp.data = s;
    if (fd < 0) {
        rv = uv_accept(listener, (uv_stream_t *)&s->tcp);
    } else if ((rv = uv_tcp_open(&s->tcp, fd)) != 0) {
        close(fd); /* the handle did not take it */
    }
    /* From here the handle is initialized: it must be closed, not freed. */
    s->next = srv->sessions;
    if (srv->sessions != NULL) {
        srv->sessions->prev = s;
    }
    srv->sessions = s;
    srv->n_sessions++;
    if (rv != 0) {
        session_close(s);
        return rv;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    update_reading(s);
    metrics_counter_add(srv->metrics.connections_total, 1);
    return 0;
}

int session_accept(struct server *srv, uv_stream_t *listener)
{
    return session_start(srv, listener, -1, NULL, 0);
}

int session_adopt(struct server *srv, int fd, const char *pending, size_t pending_len)
{
    return session_start(srv, NULL, fd, pending, pending_len);
}
