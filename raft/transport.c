#include "transport.h"

#include <assert.h>
#include <string.h>

#define ADDRESS_MAX 256

int transport_split_address(const char *address, char *raft_out, char *client_out, size_t n)
{
    const char *slash = strchr(address, '/');
    size_t raft_len = slash != NULL ? (size_t)(slash - address) : strlen(address);
    const char *client = slash != NULL ? slash + 1 : "";
    if (raft_len >= n || strlen(client) >= n) {
        return -1;
    }
    memcpy(raft_out, address, raft_len);
    raft_out[raft_len] = '\0';
    strcpy(client_out, client);
    return 0;
}

static struct transport *outer_to_transport(struct raft_uv_transport *outer)
{
    return outer->impl;
}

static int wrap_init(struct raft_uv_transport *outer, raft_id id, const char *address)
{
    struct transport *t = outer_to_transport(outer);
    char client_addr[ADDRESS_MAX];
    if (transport_split_address(address, t->raft_address, client_addr, sizeof(client_addr)) != 0) {
        return RAFT_NAMETOOLONG;
    }
    /* raft_uv keeps its state in the transport's data field and reads it back
     * in the callbacks it passes: the inner transport must carry the same. */
    t->tcp.data = outer->data;
    return t->tcp.init(&t->tcp, id, t->raft_address);
}

static struct transport *tcp_to_transport(struct raft_uv_transport *tcp)
{
    return (struct transport *)((char *)tcp - offsetof(struct transport, tcp));
}

static void nodelay(struct uv_stream_s *stream)
{
    /* Best effort: a connection without it is slower, not wrong. */
    uv_tcp_nodelay((uv_tcp_t *)stream, 1);
}

static void accept_cb(struct raft_uv_transport *tcp, raft_id id, const char *address,
                      struct uv_stream_s *stream)
{
    struct transport *t = tcp_to_transport(tcp);
    nodelay(stream);
    t->accept_cb(&t->outer, id, address, stream);
}

/* A connect callback gets only raft_uv's request, from which the transport
 * cannot be found; raft_uv passes the same function for every connect, so
 * one process-wide copy is enough (set before any connect is started). */
static raft_uv_connect_cb raft_connect_cb;

static void connect_cb(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    if (status == 0) {
        nodelay(stream);
    }
    raft_connect_cb(req, stream, status);
}

static int wrap_listen(struct raft_uv_transport *outer, raft_uv_accept_cb cb)
{
    struct transport *t = outer_to_transport(outer);
    int rv;
    t->tcp.data = outer->data;
    t->accept_cb = cb;
    rv = t->tcp.listen(&t->tcp, accept_cb);
    if (rv != 0) {
        memcpy(outer->errmsg, t->tcp.errmsg, sizeof(outer->errmsg));
    }
    return rv;
}

static int wrap_connect(struct raft_uv_transport *outer, struct raft_uv_connect *req, raft_id id,
                        const char *address, raft_uv_connect_cb cb)
{
    struct transport *t = outer_to_transport(outer);
    char raft_addr[ADDRESS_MAX];
    char client_addr[ADDRESS_MAX];
    if (transport_split_address(address, raft_addr, client_addr, sizeof(raft_addr)) != 0) {
        return RAFT_NAMETOOLONG;
    }
    t->tcp.data = outer->data;
    /* raft_uv always passes the same callback. */
    assert(raft_connect_cb == NULL || raft_connect_cb == cb);
    raft_connect_cb = cb;
    return t->tcp.connect(&t->tcp, req, id, raft_addr, connect_cb);
}

static void tcp_close_cb(struct raft_uv_transport *tcp)
{
    struct transport *t = tcp_to_transport(tcp);
    if (t->close_cb != NULL) {
        t->close_cb(&t->outer);
    }
}

static void wrap_close(struct raft_uv_transport *outer, raft_uv_transport_close_cb cb)
{
    struct transport *t = outer_to_transport(outer);
    t->close_cb = cb;
    t->tcp.close(&t->tcp, tcp_close_cb);
}

int transport_init(struct transport *t, struct uv_loop_s *loop, const char *bind_address)
{
    int rv;
    memset(t, 0, sizeof(*t));
    rv = raft_uv_tcp_init(&t->tcp, loop);
    if (rv != 0) {
        return rv;
    }
    if (bind_address != NULL) {
        rv = raft_uv_tcp_set_bind_address(&t->tcp, bind_address);
        if (rv != 0) {
            raft_uv_tcp_close(&t->tcp);
            return rv;
        }
    }
    t->outer.impl = t;
    t->outer.init = wrap_init;
    t->outer.listen = wrap_listen;
    t->outer.connect = wrap_connect;
    t->outer.close = wrap_close;
    return 0;
}

void transport_close(struct transport *t)
{
    raft_uv_tcp_close(&t->tcp);
}
