#define _GNU_SOURCE /* accept4 */
#include "preflight.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "cairn.h"
#include "proto.h"

#define CONNS_MAX 16
#define REQUEST_MAX (64u * 1024u) /* a status request is a few bytes */

struct conn
{
    int fd;
    struct buf in;
};

struct preflight
{
    pthread_t thread;
    int listen_fd;
    int stop_fd; /* eventfd: written once by preflight_stop */
    struct cairn_status status;
    struct cairn_member *members;
    char **strings; /* every string the status points to */
    size_t n_strings;
    struct conn conns[CONNS_MAX];
};

int preflight_bind(const struct sockaddr_in *sa, const char *addr, char *err, size_t len)
{
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, len, "cannot listen for clients on %s: %s", addr, strerror(errno));
        return -1;
    }
    /* As libuv does for its listeners: a restart may bind while the last
     * run's connections linger in TIME_WAIT. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        snprintf(err, len, "cannot listen for clients on %s: %s%s", addr, strerror(e),
                 e == EADDRINUSE ? " (is another cairnd running?)" : "");
        close(fd);
        return -1;
    }
    return fd;
}

static const char *keep(struct preflight *p, const char *s)
{
    char *copy = strdup(s != NULL ? s : "");
    if (copy == NULL) {
        return NULL;
    }
    p->strings[p->n_strings++] = copy;
    return copy;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    buf_free(&c->in);
}

static int send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Answer every whole request in c's buffer: 0, or -1 to close it. */
static int answer(struct preflight *p, struct conn *c)
{
    for (;;) {
        size_t len = 0;
        struct proto_request req;
        struct arena a;
        struct buf out;
        int rv = proto_frame_peek(c->in.data, c->in.len, REQUEST_MAX, &len);
        if (rv == 0) {
            return 0;
        }
        if (rv < 0) {
            return -1;
        }
        memset(&req, 0, sizeof(req));
        arena_init(&a);
        buf_init(&out);
        rv = proto_decode_request(c->in.data + PROTO_FRAME_HEADER_SIZE, len, &a, &req);
        if (rv != 0) {
            rv = proto_encode_error(&out, req.id, 0, rv, "malformed request", NULL);
        } else if (req.type == PROTO_STATUS) {
            struct proto_writer w;
            struct proto_response_head h;
            memset(&h, 0, sizeof(h));
            h.id = req.id;
            h.type = req.type;
            h.revision = p->status.revision;
            h.succeeded = true;
            proto_writer_begin(&w, &out);
            proto_pack_response_head(&w, &h);
            proto_pack_status(&w, &p->status);
            rv = proto_writer_end(&w);
        } else {
            /* No leader known yet, which is true: clients try the next
             * endpoint and come back, as they would to a closed port. */
            rv = proto_encode_error(&out, req.id, req.type, CAIRN_ENOLEADER,
                                    "this node is starting (checking its peers, loading its "
                                    "state): it knows no leader yet",
                                    NULL);
        }
        arena_free(&a);
        if (rv == 0) {
            rv = send_all(c->fd, out.data, out.len);
        }
        buf_free(&out);
        if (rv != 0) {
            return -1;
        }
        buf_consume(&c->in, PROTO_FRAME_HEADER_SIZE + len);
    }
}

static void *run(void *arg)
{
    struct preflight *p = arg;
    for (;;) {
        struct pollfd fds[2 + CONNS_MAX];
        int at[2 + CONNS_MAX];
        nfds_t n = 0;
        nfds_t i;
        fds[n].fd = p->stop_fd;
        fds[n++].events = POLLIN;
        fds[n].fd = p->listen_fd;
        fds[n++].events = POLLIN;
        for (i = 0; i < CONNS_MAX; i++) {
            if (p->conns[i].fd >= 0) {
                at[n] = (int)i;
                fds[n].fd = p->conns[i].fd;
                fds[n++].events = POLLIN;
            }
        }
        if (poll(fds, n, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (fds[0].revents != 0) {
            break;
        }
        for (i = 2; i < n; i++) {
            struct conn *c = &p->conns[at[i]];
            ssize_t got;
            if (fds[i].revents == 0) {
                continue;
            }
            if (buf_reserve(&c->in, 4096) != 0) {
                conn_close(c);
                continue;
            }
            got = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
            if (got < 0 && errno == EINTR) {
                continue;
            }
            if (got <= 0) {
                conn_close(c);
                continue;
            }
            c->in.len += (size_t)got;
            if (answer(p, c) != 0) {
                conn_close(c);
            }
        }
        if (fds[1].revents != 0) {
            int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
            struct timeval tv = {1, 0};
            if (fd >= 0) {
                /* A client that stops reading must not hold the start up. */
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                for (i = 0; i < CONNS_MAX && p->conns[i].fd >= 0; i++) {
                }
                if (i == CONNS_MAX) {
                    conn_close(&p->conns[0]); /* all taken: the first one goes */
                    i = 0;
                }
                p->conns[i].fd = fd;
            }
        }
    }
    return NULL;
}

static void destroy(struct preflight *p)
{
    size_t i;
    for (i = 0; i < CONNS_MAX; i++) {
        conn_close(&p->conns[i]);
    }
    for (i = 0; i < p->n_strings; i++) {
        free(p->strings[i]);
    }
    free(p->strings);
    free(p->members);
    if (p->stop_fd >= 0) {
        close(p->stop_fd);
    }
    free(p);
}

struct preflight *preflight_start(int fd, uint64_t id, uint64_t cluster_id, uint64_t revision,
                                  const char *http_address, const struct preflight_member *members,
                                  size_t n_members)
{
    struct preflight *p = calloc(1, sizeof(*p));
    size_t i;
    bool ok;
    if (p == NULL) {
        return NULL;
    }
    p->listen_fd = fd;
    p->stop_fd = -1;
    for (i = 0; i < CONNS_MAX; i++) {
        p->conns[i].fd = -1;
        buf_init(&p->conns[i].in);
    }
    p->strings = calloc(3 + 2 * n_members, sizeof(*p->strings));
    p->members = calloc(n_members + 1, sizeof(*p->members));
    ok = p->strings != NULL && p->members != NULL;
    p->status.id = id;
    p->status.cluster_id = cluster_id;
    p->status.restored_as = cluster_id; /* starting restored: the provisional id */
    p->status.revision = revision;
    ok = ok && (p->status.state = keep(p, "starting")) != NULL &&
         (p->status.leader_address = keep(p, "")) != NULL &&
         (p->status.http_address = keep(p, http_address)) != NULL;
    for (i = 0; ok && i < n_members; i++) {
        p->members[i].id = members[i].id;
        p->members[i].role = "voter"; /* a string literal: nothing to free */
        ok = (p->members[i].raft_address = keep(p, members[i].raft_address)) != NULL &&
             (p->members[i].client_address = keep(p, members[i].client_address)) != NULL;
    }
    p->status.members = p->members;
    p->status.n_members = n_members;
    p->stop_fd = ok ? eventfd(0, EFD_CLOEXEC) : -1;
    if (!ok || p->stop_fd < 0 || pthread_create(&p->thread, NULL, run, p) != 0) {
        destroy(p);
        return NULL;
    }
    return p;
}

void preflight_stop(struct preflight *p, preflight_handover_cb handover, void *arg)
{
    uint64_t one = 1;
    size_t i;
    if (p == NULL) {
        return;
    }
    while (write(p->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    pthread_join(p->thread, NULL);
    for (i = 0; handover != NULL && i < CONNS_MAX; i++) {
        struct conn *c = &p->conns[i];
        if (c->fd >= 0) {
            struct timeval none = {0, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
            handover(arg, c->fd, c->in.data, c->in.len);
            c->fd = -1;
        }
    }
    destroy(p);
}
