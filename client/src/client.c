/*
 * The blocking client: endpoints, leader discovery, redirects, reconnects
 * with exponential backoff and jitter, per-call deadlines, and the retry
 * rule of cairn.h (reads always; writes only when certainly not applied).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cairn.h"
#include "client_internal.h"
#include "proto.h"

#define ENDPOINTS_MAX 64

struct cairn_client
{
    pthread_mutex_t mu;
    char endpoints[ENDPOINTS_MAX][ENDPOINT_MAX];
    size_t n_endpoints;
    size_t next;               /* endpoint to try when no leader is known */
    char leader[ENDPOINT_MAX]; /* last leader learned, "" if none */
    char connected[ENDPOINT_MAX];
    int fd;
    struct cairn_options opts;
    uint64_t next_id;
    struct buf in;
    struct buf out;
    int err;
    char errmsg[512];
    uint64_t rng;
    uint64_t seen_rev;         /* highest revision an answer carried */
    struct watch_mux *watches; /* owned: its thread starts with the first watch */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Records the error of the last call (fmt NULL: the code's own words). */
static int vset_err(struct cairn_client *c, int code, const char *fmt, va_list ap)
{
    c->err = code;
    if (fmt == NULL) {
        snprintf(c->errmsg, sizeof(c->errmsg), "%s", cairn_strerror(code));
    } else {
        vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    }
    return code;
}

static int set_err(struct cairn_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(struct cairn_client *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_err(c, code, fmt, ap);
    va_end(ap);
    return code;
}

/* set_err, for a call that holds c->mu and gives up: releases it. */
static int refuse(struct cairn_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(struct cairn_client *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_err(c, code, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&c->mu);
    return code;
}

int cairn_errcode(const cairn_client *c)
{
    return c->err;
}

const char *cairn_errmsg(const cairn_client *c)
{
    return c->errmsg;
}

int64_t client_now_ms(void)
{
    return mono_ms();
}

size_t client_n_endpoints(const struct cairn_client *c)
{
    return c->n_endpoints;
}

const char *client_endpoint(const struct cairn_client *c, size_t i)
{
    return c->endpoints[i % c->n_endpoints];
}

const struct cairn_options *client_options(const struct cairn_client *c)
{
    return &c->opts;
}

struct watch_mux *client_watch_mux(struct cairn_client *c)
{
    return c->watches;
}

int client_fail(struct cairn_client *c, int code, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&c->mu);
    va_start(ap, fmt);
    vset_err(c, code, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&c->mu);
    return code;
}

static int parse_endpoints(struct cairn_client *c, const char *spec)
{
    while (*spec != '\0') {
        const char *comma = strchr(spec, ',');
        size_t n = comma != NULL ? (size_t)(comma - spec) : strlen(spec);
        if (n > 0) {
            if (n >= ENDPOINT_MAX || c->n_endpoints == ENDPOINTS_MAX ||
                memchr(spec, ':', n) == NULL) {
                return CAIRN_EINVAL;
            }
            memcpy(c->endpoints[c->n_endpoints], spec, n);
            c->endpoints[c->n_endpoints][n] = '\0';
            c->n_endpoints++;
        }
        spec += n + (comma != NULL ? 1 : 0);
    }
    return c->n_endpoints > 0 ? 0 : CAIRN_EINVAL;
}

cairn_client *cairn_client_new(const char *endpoints, const struct cairn_options *opts, int *err)
{
    struct cairn_client *c = cairn_calloc(1, sizeof(*c));
    if (c == NULL) {
        if (err != NULL) {
            *err = CAIRN_ENOMEM;
        }
        return NULL;
    }
    if (parse_endpoints(c, endpoints != NULL ? endpoints : CAIRN_DEFAULT_ENDPOINTS) != 0) {
        cairn_free(c);
        if (err != NULL) {
            *err = CAIRN_EINVAL;
        }
        return NULL;
    }
    if (opts != NULL) {
        c->opts = *opts;
    }
    if (c->opts.timeout_ms <= 0) {
        c->opts.timeout_ms = 5000;
    }
    if (c->opts.connect_timeout_ms <= 0) {
        c->opts.connect_timeout_ms = 1000;
    }
    if (c->opts.backoff_min_ms <= 0) {
        c->opts.backoff_min_ms = 25;
    }
    if (c->opts.backoff_max_ms < c->opts.backoff_min_ms) {
        c->opts.backoff_max_ms = c->opts.backoff_min_ms > 1000 ? c->opts.backoff_min_ms : 1000;
    }
    c->watches = watch_mux_new(c);
    if (c->watches == NULL) {
        cairn_free(c);
        if (err != NULL) {
            *err = CAIRN_ENOMEM;
        }
        return NULL;
    }
    c->fd = -1;
    c->next_id = 1;
    c->rng = (uint64_t)mono_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
    /* Start at a random endpoint so that many clients spread their load. */
    c->next = (size_t)(c->rng % c->n_endpoints);
    buf_init(&c->in);
    buf_init(&c->out);
    pthread_mutex_init(&c->mu, NULL);
    if (err != NULL) {
        *err = 0;
    }
    return c;
}

static void disconnect(struct cairn_client *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->connected[0] = '\0';
    c->in.len = 0;
    c->out.len = 0;
}

void cairn_client_free(cairn_client *c)
{
    if (c == NULL) {
        return;
    }
    /* First: the watch thread reads the endpoints and options. */
    watch_mux_free(c->watches);
    disconnect(c);
    buf_free(&c->in);
    buf_free(&c->out);
    pthread_mutex_destroy(&c->mu);
    cairn_free(c);
}

static uint64_t rand_next(struct cairn_client *c)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return c->rng;
}

/* Sleep for the attempt's backoff: exponential, capped, with full jitter in
 * its upper half so that clients do not reconnect in lockstep. */
static void backoff(struct cairn_client *c, unsigned attempt, int64_t deadline)
{
    int64_t ms = c->opts.backoff_min_ms;
    int64_t left = deadline - mono_ms();
    struct timespec ts;
    unsigned i;
    for (i = 1; i < attempt && ms < c->opts.backoff_max_ms; i++) {
        ms *= 2;
    }
    if (ms > c->opts.backoff_max_ms) {
        ms = c->opts.backoff_max_ms;
    }
    ms = ms / 2 + (int64_t)(rand_next(c) % (uint64_t)(ms / 2 + 1));
    if (ms > left) {
        ms = left;
    }
    if (ms <= 0) {
        return;
    }
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000;
    nanosleep(&ts, NULL);
}

int client_connect(const char *endpoint, int64_t deadline_ms, int connect_timeout_ms, char *why,
                   size_t why_len)
{
    char host[ENDPOINT_MAX];
    const char *colon = strrchr(endpoint, ':');
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    struct addrinfo *ai;
    int fd = -1;
    int rv;
    if (colon == NULL || (size_t)(colon - endpoint) >= sizeof(host)) {
        snprintf(why, why_len, "%s: not host:port", endpoint);
        return -1;
    }
    memcpy(host, endpoint, (size_t)(colon - endpoint));
    host[colon - endpoint] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rv = getaddrinfo(host, colon + 1, &hints, &res);
    if (rv != 0) {
        snprintf(why, why_len, "%s: %s", endpoint, gai_strerror(rv));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        struct pollfd p;
        int64_t wait;
        int soerr = 0;
        socklen_t slen = sizeof(soerr);
        int one = 1;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            snprintf(why, why_len, "%s: %s", endpoint, strerror(errno));
            continue;
        }
        rv = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rv != 0 && errno != EINPROGRESS) {
            snprintf(why, why_len, "%s: %s", endpoint, strerror(errno));
            close(fd);
            fd = -1;
            continue;
        }
        if (rv != 0) {
            wait = deadline_ms - mono_ms();
            if (wait > connect_timeout_ms) {
                wait = connect_timeout_ms;
            }
            p.fd = fd;
            p.events = POLLOUT;
            rv = wait > 0 ? poll(&p, 1, (int)wait) : 0;
            if (rv <= 0) {
                snprintf(why, why_len, "%s: connect timed out", endpoint);
                close(fd);
                fd = -1;
                continue;
            }
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen);
            if (soerr != 0) {
                snprintf(why, why_len, "%s: %s", endpoint, strerror(soerr));
                close(fd);
                fd = -1;
                continue;
            }
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        break;
    }
    freeaddrinfo(res);
    return fd;
}

/* Connect to host:port within the timeout. Returns an fd or -1 (errmsg set). */
static int connect_to(struct cairn_client *c, const char *endpoint, int64_t deadline)
{
    char why[sizeof(c->errmsg)];
    int fd = client_connect(endpoint, deadline, c->opts.connect_timeout_ms, why, sizeof(why));
    if (fd < 0) {
        set_err(c, CAIRN_EUNAVAILABLE, "%s", why);
    }
    return fd;
}

static const char *pick_endpoint(struct cairn_client *c, const char *want)
{
    if (want != NULL) {
        return want;
    }
    if (c->leader[0] != '\0') {
        return c->leader;
    }
    return c->endpoints[c->next % c->n_endpoints];
}

/* Move on from an endpoint that failed. failed names it explicitly: by the
 * time a failure is handled the connection may be gone (c->connected empty),
 * and a leader that cannot be reached must be forgotten, or every later call
 * would retry the dead leader until its deadline. */
static void forget_endpoint(struct cairn_client *c, const char *failed)
{
    if (c->leader[0] != '\0' && strcmp(c->leader, failed) == 0) {
        c->leader[0] = '\0';
    }
    c->next++;
    disconnect(c);
}

/* Write the whole output buffer. Returns 0, or -1 with *sent_any telling
 * whether any byte left. */
static int send_all(struct cairn_client *c, int64_t deadline, bool *sent_any)
{
    size_t off = 0;
    while (off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            *sent_any = true;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {c->fd, POLLOUT, 0};
            int64_t wait = deadline - mono_ms();
            if (wait <= 0 || poll(&p, 1, (int)wait) <= 0) {
                set_err(c, CAIRN_ETIMEOUT, "timed out sending to %s", c->connected);
                return -1;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        set_err(c, CAIRN_EUNAVAILABLE, "%s: %s", c->connected,
                n == 0 ? "connection closed" : strerror(errno));
        return -1;
    }
    c->out.len = 0;
    return 0;
}

/* Read until the response with the given id is decoded into resp. */
static int recv_response(struct cairn_client *c, uint64_t id, int64_t deadline,
                         struct proto_response *resp)
{
    for (;;) {
        size_t payload_len;
        int rv = proto_frame_peek(c->in.data, c->in.len, PROTO_FRAME_SIZE_MAX, &payload_len);
        if (rv < 0) {
            return set_err(c, CAIRN_EMALFORMED, "%s sent a frame of %zu bytes", c->connected,
                           payload_len);
        }
        if (rv == 1) {
            rv = proto_decode_response(c->in.data + PROTO_FRAME_HEADER_SIZE, payload_len, resp);
            buf_consume(&c->in, PROTO_FRAME_HEADER_SIZE + payload_len);
            if (rv != 0) {
                return set_err(c, rv, "%s sent a response that does not decode", c->connected);
            }
            if (resp->id == id || resp->id == 0) {
                return 0;
            }
            /* A stale answer to a request we gave up on: skip it. */
            proto_response_free(resp);
            continue;
        }
        if (buf_reserve(&c->in, 65536) != 0) {
            return set_err(c, CAIRN_ENOMEM, NULL);
        }
        {
            ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
            if (n > 0) {
                c->in.len += (size_t)n;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                struct pollfd p = {c->fd, POLLIN, 0};
                int64_t wait = deadline - mono_ms();
                if (wait <= 0 || poll(&p, 1, (int)wait) <= 0) {
                    return set_err(c, CAIRN_ETIMEOUT, "timed out waiting for %s", c->connected);
                }
                continue;
            }
            return set_err(c, CAIRN_EUNAVAILABLE, "%s: %s", c->connected,
                           n == 0 ? "connection closed" : strerror(errno));
        }
    }
}

/* How call() treats one request. */
struct call_spec
{
    bool is_write;        /* a lost answer leaves the outcome unknown */
    const char *endpoint; /* pins the call to one node (NULL: follow the leader) */
    /* Once the request is sent, wait at least this long for its answer (0:
     * the client's timeout_ms). Finding a node, redirects and retries stay
     * within timeout_ms: only a slow answer gets the longer wait. */
    int64_t answer_wait_ms;
    bool busy_is_final; /* CAIRN_EBUSY answers the call; otherwise retried */
};

/* The deadline for an answer to a request sent now: the call's, or later
 * when the request takes long by nature (answer_wait_ms). */
static int64_t answer_deadline(int64_t deadline, int64_t answer_wait_ms)
{
    int64_t longer = mono_ms() + answer_wait_ms;
    return longer > deadline ? longer : deadline;
}

static bool is_read(const struct proto_request *req)
{
    return req->type == PROTO_GET || req->type == PROTO_HISTORY || req->type == PROTO_TXN;
}

/* Requests whose answer's revision is a revision of the key space that
 * this client has now seen (status and metrics report one too, but of
 * whichever node was asked, not of anything read or written). */
static bool carries_revision(const struct proto_request *req)
{
    return is_read(req) || req->type == PROTO_PUT || req->type == PROTO_DEL ||
           req->type == PROTO_COMPACT;
}

/* The node's wait for a min_revision must end before this call gives up,
 * so that the caller reads the node's reason (CAIRN_ETIMEOUT, "revision Y
 * not applied within Z ms") rather than a bare client timeout: it gets 80%
 * of what is left. */
static uint64_t node_wait_ms(int64_t deadline)
{
    int64_t left = deadline - mono_ms();
    return left > 5 ? (uint64_t)(left - left / 5) : 1;
}

/* One call with retries (see struct call_spec). */
static int call_with(struct cairn_client *c, struct proto_request *req,
                     const struct call_spec *spec, struct proto_response *resp)
{
    int64_t deadline = mono_ms() + c->opts.timeout_ms;
    const char *endpoint = spec->endpoint;
    bool is_write = spec->is_write;
    unsigned attempt = 0;
    size_t refusals = 0; /* nodes that were too stale (or too old) for this read */
    int rv;
    memset(resp, 0, sizeof(*resp));
    /* track_revision: a stale read asks for what this client has seen. */
    if (c->opts.track_revision && is_read(req) && (req->op.stale || req->min_revision > 0) &&
        req->min_revision < c->seen_rev) {
        req->min_revision = c->seen_rev;
    }
    for (;;) {
        const char *target;
        bool sent_any = false;
        if (attempt > 0) {
            if (mono_ms() >= deadline) {
                /* Keep the last error: it says why the attempts failed. */
                if (c->err == 0) {
                    set_err(c, CAIRN_ETIMEOUT, NULL);
                }
                return c->err;
            }
        }
        attempt++;
        target = pick_endpoint(c, endpoint);
        if (c->fd >= 0 && strcmp(c->connected, target) != 0) {
            disconnect(c);
        }
        if (c->fd < 0) {
            char copy[ENDPOINT_MAX];
            snprintf(copy, sizeof(copy), "%s", target);
            c->fd = connect_to(c, copy, deadline);
            if (c->fd < 0) {
                if (endpoint != NULL) {
                    return c->err;
                }
                forget_endpoint(c, copy);
                backoff(c, attempt, deadline);
                continue;
            }
            snprintf(c->connected, sizeof(c->connected), "%s", copy);
        }
        req->id = c->next_id++;
        if (req->min_revision > 0) {
            req->wait_ms = node_wait_ms(deadline);
        }
        c->out.len = 0;
        if (proto_encode_request(&c->out, req) != 0) {
            return set_err(c, CAIRN_ENOMEM, NULL);
        }
        if (send_all(c, deadline, &sent_any) != 0 ||
            recv_response(c, req->id, answer_deadline(deadline, spec->answer_wait_ms), resp) != 0) {
            int code = c->err;
            char failed[ENDPOINT_MAX];
            snprintf(failed, sizeof(failed), "%s", c->connected);
            disconnect(c);
            if (is_write && sent_any) {
                char why[sizeof(c->errmsg)];
                snprintf(why, sizeof(why), "%s", c->errmsg);
                return set_err(c, CAIRN_EUNKNOWN,
                               "%s; the write was sent, so it may or may not have been applied",
                               why);
            }
            if (code == CAIRN_EMALFORMED || code == CAIRN_ENOMEM || endpoint != NULL) {
                return code;
            }
            forget_endpoint(c, failed);
            backoff(c, attempt, deadline);
            continue;
        }
        rv = resp->code;
        if (rv == CAIRN_ENOTLEADER && endpoint == NULL) {
            /* Certainly not applied: follow the redirect. */
            if (resp->leader[0] != '\0' && strcmp(resp->leader, c->connected) != 0) {
                snprintf(c->leader, sizeof(c->leader), "%s", resp->leader);
            } else {
                c->leader[0] = '\0';
                c->next++;
                backoff(c, attempt, deadline);
            }
            set_err(c, rv, "%s", resp->message[0] != '\0' ? resp->message : cairn_strerror(rv));
            proto_response_free(resp);
            continue;
        }
        if ((rv == CAIRN_ENOLEADER || rv == CAIRN_ESHUTDOWN ||
             (rv == CAIRN_EBUSY && !spec->busy_is_final)) &&
            endpoint == NULL) {
            set_err(c, rv, "%s: %s", c->connected,
                    resp->message[0] != '\0' ? resp->message : cairn_strerror(rv));
            proto_response_free(resp);
            if (rv == CAIRN_ESHUTDOWN) {
                forget_endpoint(c, c->connected);
            } else {
                c->leader[0] = '\0';
                /* A node that knows no leader (one cut off from the
                 * majority, or one waiting to join) cannot help: ask the
                 * next one rather than the same node until the deadline. */
                if (rv == CAIRN_ENOLEADER) {
                    c->next++;
                }
            }
            backoff(c, attempt, deadline);
            continue;
        }
        /* A read with min_revision answered below it came from a node that
         * predates the field (it skipped it): as wrong for this read as a
         * node too stale for max_staleness_ms. */
        if (rv == 0 && req->min_revision > 0 && req->op.revision == 0 && resp->result != NULL &&
            resp->result->revision < req->min_revision) {
            rv = CAIRN_EVERSION;
            set_err(c, rv,
                    "%s answered at revision %" PRIu64 ", below the read's min_revision %" PRIu64
                    ": a node too old to know min_revision?",
                    c->connected, resp->result->revision, req->min_revision);
            proto_response_free(resp);
        } else if (rv == CAIRN_ESTALE) {
            set_err(c, rv, "%s", resp->message[0] != '\0' ? resp->message : cairn_strerror(rv));
            proto_response_free(resp);
        }
        if ((rv == CAIRN_ESTALE || rv == CAIRN_EVERSION) && endpoint == NULL) {
            /* Another node may be fresher (or newer): try each once. A
             * leader is never stale, so the one that refused does not
             * lead (whatever this client believed). */
            if (++refusals >= c->n_endpoints) {
                return rv;
            }
            forget_endpoint(c, c->connected);
            continue;
        }
        if (rv == CAIRN_ESTALE || rv == CAIRN_EVERSION) {
            return rv;
        }
        if (rv != 0) {
            set_err(c, rv, "%s", resp->message[0] != '\0' ? resp->message : cairn_strerror(rv));
            proto_response_free(resp);
            return rv;
        }
        if (carries_revision(req) && resp->result != NULL && resp->result->revision > c->seen_rev &&
            req->op.revision == 0) {
            c->seen_rev = resp->result->revision;
        }
        /* Remember who answered a leader-only request: it leads. */
        if (!req->op.stale && req->min_revision == 0 && req->type != PROTO_STATUS &&
            req->type != PROTO_METRICS && endpoint == NULL) {
            snprintf(c->leader, sizeof(c->leader), "%s", c->connected);
        }
        c->err = 0;
        c->errmsg[0] = '\0';
        return 0;
    }
}

static int call(struct cairn_client *c, struct proto_request *req, bool is_write,
                const char *endpoint, struct proto_response *resp)
{
    struct call_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.is_write = is_write;
    spec.endpoint = endpoint;
    return call_with(c, req, &spec, resp);
}

uint64_t cairn_seen_revision(cairn_client *c)
{
    uint64_t rev;
    pthread_mutex_lock(&c->mu);
    rev = c->seen_rev;
    pthread_mutex_unlock(&c->mu);
    return rev;
}

static int finish(int rv, struct proto_response *resp, struct cairn_result **out)
{
    if (rv != 0) {
        if (out != NULL) {
            *out = NULL;
        }
        return rv;
    }
    if (out != NULL) {
        *out = resp->result;
    } else {
        cairn_result_free(resp->result);
    }
    return 0;
}

static int locked_call(struct cairn_client *c, struct proto_request *req, bool is_write,
                       struct cairn_result **out)
{
    struct proto_response resp;
    int rv;
    pthread_mutex_lock(&c->mu);
    rv = call(c, req, is_write, NULL, &resp);
    rv = finish(rv, &resp, out);
    pthread_mutex_unlock(&c->mu);
    return rv;
}

void cairn_result_free(struct cairn_result *result)
{
    struct proto_response r;
    if (result == NULL) {
        return;
    }
    memset(&r, 0, sizeof(r));
    r.result = result;
    proto_response_free(&r);
}

void cairn_status_free(struct cairn_status *status)
{
    struct proto_response r;
    if (status == NULL) {
        return;
    }
    memset(&r, 0, sizeof(r));
    r.status = status;
    proto_response_free(&r);
}

static void set_slice(struct proto_slice *s, const void *p, size_t len)
{
    s->ptr = p != NULL ? p : "";
    s->len = (uint32_t)len;
}

static int check_len(cairn_client *c, size_t len)
{
    if (len > PROTO_FRAME_SIZE_MAX) {
        pthread_mutex_lock(&c->mu);
        set_err(c, CAIRN_ETOOLARGE, "argument of %zu bytes exceeds the protocol's frame limit",
                len);
        pthread_mutex_unlock(&c->mu);
        return CAIRN_ETOOLARGE;
    }
    return 0;
}

int cairn_get(cairn_client *c, const void *key, size_t key_len, const struct cairn_get_opts *opts,
              struct cairn_result **out)
{
    struct proto_request req;
    struct cairn_result *res = NULL;
    int rv;
    if (check_len(c, key_len) != 0) {
        return CAIRN_ETOOLARGE;
    }
    memset(&req, 0, sizeof(req));
    req.type = PROTO_GET;
    req.op.type = CAIRN_OP_GET;
    set_slice(&req.op.key, key, key_len);
    if (opts != NULL) {
        /* A read with a min_revision is answered by the node it reaches. */
        req.op.stale = opts->stale || opts->min_revision > 0;
        req.op.prefix = opts->prefix;
        req.op.revision = opts->revision;
        req.op.limit = opts->limit;
        set_slice(&req.op.after, opts->after, opts->after_len);
        req.min_revision = opts->min_revision;
        req.max_staleness_ms = opts->max_staleness_ms;
    }
    rv = locked_call(c, &req, false, &res);
    if (rv == 0 && !req.op.prefix && (res->n_ops == 0 || res->ops[0].n_kvs == 0)) {
        pthread_mutex_lock(&c->mu);
        set_err(c, CAIRN_ENOTFOUND, "key not found: %.*s", (int)(key_len > 200 ? 200 : key_len),
                (const char *)key);
        pthread_mutex_unlock(&c->mu);
        rv = CAIRN_ENOTFOUND;
    }
    if (out != NULL) {
        *out = res;
    } else {
        cairn_result_free(res);
    }
    return rv;
}

int cairn_put(cairn_client *c, const void *key, size_t key_len, const void *value, size_t value_len,
              const struct cairn_put_opts *opts, struct cairn_result **out)
{
    struct proto_request req;
    if (check_len(c, key_len) != 0 || check_len(c, value_len) != 0) {
        return CAIRN_ETOOLARGE;
    }
    memset(&req, 0, sizeof(req));
    req.type = PROTO_PUT;
    req.op.type = CAIRN_OP_PUT;
    set_slice(&req.op.key, key, key_len);
    set_slice(&req.op.value, value, value_len);
    req.op.prev_kv = opts != NULL && opts->prev_kv;
    return locked_call(c, &req, true, out);
}

int cairn_del(cairn_client *c, const void *key, size_t key_len, const struct cairn_del_opts *opts,
              struct cairn_result **out)
{
    struct proto_request req;
    if (check_len(c, key_len) != 0) {
        return CAIRN_ETOOLARGE;
    }
    memset(&req, 0, sizeof(req));
    req.type = PROTO_DEL;
    req.op.type = CAIRN_OP_DEL;
    set_slice(&req.op.key, key, key_len);
    if (opts != NULL) {
        req.op.prefix = opts->prefix;
        req.op.prev_kv = opts->prev_kv;
    }
    return locked_call(c, &req, true, out);
}

static int convert_ops(const struct cairn_op *in, size_t n, struct proto_op *out)
{
    size_t i;
    for (i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        if (in[i].type < CAIRN_OP_GET || in[i].type > CAIRN_OP_DEL) {
            return CAIRN_EINVAL;
        }
        out[i].type = (uint8_t)in[i].type;
        set_slice(&out[i].key, in[i].key, in[i].key_len);
        set_slice(&out[i].value, in[i].value, in[i].value_len);
        out[i].prefix = in[i].prefix;
        out[i].prev_kv = in[i].prev_kv;
        out[i].limit = in[i].limit;
    }
    return 0;
}

int cairn_txn(cairn_client *c, const struct cairn_txn *txn, struct cairn_result **out)
{
    struct proto_request req;
    struct proto_cmp *cmps = NULL;
    struct proto_op *then_ops = NULL;
    struct proto_op *else_ops = NULL;
    bool writes = false;
    bool local_error = true;
    size_t i;
    int rv = CAIRN_ENOMEM;
    memset(&req, 0, sizeof(req));
    req.type = PROTO_TXN;
    cmps = cairn_calloc(txn->n_compares + 1, sizeof(*cmps));
    then_ops = cairn_calloc(txn->n_then + 1, sizeof(*then_ops));
    else_ops = cairn_calloc(txn->n_else + 1, sizeof(*else_ops));
    if (cmps == NULL || then_ops == NULL || else_ops == NULL) {
        goto out;
    }
    for (i = 0; i < txn->n_compares; i++) {
        const struct cairn_compare *in = &txn->compares[i];
        set_slice(&cmps[i].key, in->key, in->key_len);
        set_slice(&cmps[i].value, in->value, in->value_len);
        cmps[i].target = (uint8_t)in->target;
        cmps[i].op = (uint8_t)in->op;
        cmps[i].number = in->number;
    }
    rv = convert_ops(txn->then_ops, txn->n_then, then_ops);
    if (rv == 0) {
        rv = convert_ops(txn->else_ops, txn->n_else, else_ops);
    }
    if (rv != 0) {
        goto out;
    }
    for (i = 0; i < txn->n_then; i++) {
        writes |= then_ops[i].type != CAIRN_OP_GET;
    }
    for (i = 0; i < txn->n_else; i++) {
        writes |= else_ops[i].type != CAIRN_OP_GET;
    }
    req.cmps = cmps;
    req.n_cmps = (uint32_t)txn->n_compares;
    req.then_ops = then_ops;
    req.n_then = (uint32_t)txn->n_then;
    req.else_ops = else_ops;
    req.n_else = (uint32_t)txn->n_else;
    /* The call sets the error itself, with the server's message. */
    local_error = false;
    rv = locked_call(c, &req, writes, out);
out:
    if (local_error) {
        pthread_mutex_lock(&c->mu);
        set_err(c, rv, rv == CAIRN_EINVAL ? "transaction operation type out of range" : NULL);
        pthread_mutex_unlock(&c->mu);
    }
    cairn_free(cmps);
    cairn_free(then_ops);
    cairn_free(else_ops);
    return rv;
}

int cairn_cas(cairn_client *c, const void *key, size_t key_len, uint64_t expected_mod,
              const void *value, size_t value_len, struct cairn_result **out)
{
    struct cairn_compare cmp;
    struct cairn_op put;
    struct cairn_op get;
    struct cairn_txn txn;
    struct cairn_result *res = NULL;
    int rv;
    memset(&cmp, 0, sizeof(cmp));
    cmp.key = key;
    cmp.key_len = key_len;
    cmp.target = CAIRN_CMP_MOD;
    cmp.op = CAIRN_CMP_EQUAL;
    cmp.number = expected_mod;
    memset(&put, 0, sizeof(put));
    put.type = CAIRN_OP_PUT;
    put.key = key;
    put.key_len = key_len;
    put.value = value;
    put.value_len = value_len;
    /* On failure, return the current value so the caller can retry. */
    memset(&get, 0, sizeof(get));
    get.type = CAIRN_OP_GET;
    get.key = key;
    get.key_len = key_len;
    memset(&txn, 0, sizeof(txn));
    txn.compares = &cmp;
    txn.n_compares = 1;
    txn.then_ops = &put;
    txn.n_then = 1;
    txn.else_ops = &get;
    txn.n_else = 1;
    rv = cairn_txn(c, &txn, &res);
    if (rv == 0 && !res->succeeded) {
        pthread_mutex_lock(&c->mu);
        set_err(c, CAIRN_ECOMPARE, "compare failed: mod_revision of the key is not %llu",
                (unsigned long long)expected_mod);
        pthread_mutex_unlock(&c->mu);
        rv = CAIRN_ECOMPARE;
    }
    if (out != NULL) {
        *out = res;
    } else {
        cairn_result_free(res);
    }
    return rv;
}

int cairn_history(cairn_client *c, const void *key, size_t key_len, uint64_t limit,
                  struct cairn_result **out)
{
    struct proto_request req;
    if (check_len(c, key_len) != 0) {
        return CAIRN_ETOOLARGE;
    }
    memset(&req, 0, sizeof(req));
    req.type = PROTO_HISTORY;
    req.op.type = CAIRN_OP_GET;
    set_slice(&req.op.key, key, key_len);
    req.op.limit = limit;
    return locked_call(c, &req, false, out);
}

int cairn_compact(cairn_client *c, uint64_t revision, struct cairn_result **out)
{
    struct proto_request req;
    memset(&req, 0, sizeof(req));
    req.type = PROTO_COMPACT;
    req.number = revision;
    /* Compaction is idempotent in effect: a retry after an unknown outcome
     * answers "already compacted" at worst. Still report unknown outcomes. */
    return locked_call(c, &req, true, out);
}

int cairn_set_retention(cairn_client *c, const struct cairn_retention *policy)
{
    struct proto_request req;
    if (policy == NULL || (policy->prefix == NULL && policy->prefix_len > 0)) {
        pthread_mutex_lock(&c->mu);
        set_err(c, CAIRN_EINVAL, "no retention policy given");
        pthread_mutex_unlock(&c->mu);
        return CAIRN_EINVAL;
    }
    if (check_len(c, policy->prefix_len) != 0) {
        return CAIRN_ETOOLARGE;
    }
    memset(&req, 0, sizeof(req));
    req.type = PROTO_RETENTION;
    set_slice(&req.op.key, policy->prefix, policy->prefix_len);
    req.number = policy->versions;
    req.age_ms = policy->age_ms;
    /* Setting a policy is idempotent, but like any write its outcome is
     * reported unknown when it may or may not have been applied. */
    return locked_call(c, &req, true, NULL);
}

int cairn_status(cairn_client *c, const char *endpoint, struct cairn_status **out)
{
    struct proto_request req;
    struct proto_response resp;
    int rv;
    memset(&req, 0, sizeof(req));
    req.type = PROTO_STATUS;
    pthread_mutex_lock(&c->mu);
    if (endpoint != NULL && (strchr(endpoint, ':') == NULL || strlen(endpoint) >= ENDPOINT_MAX)) {
        rv = set_err(c, CAIRN_EINVAL, "endpoint \"%s\" is not host:port", endpoint);
        pthread_mutex_unlock(&c->mu);
        return rv;
    }
    rv = call(c, &req, false, endpoint, &resp);
    if (rv == 0 && resp.status == NULL) {
        proto_response_free(&resp);
        rv = set_err(c, CAIRN_EMALFORMED, "status response carries no status");
    }
    if (endpoint != NULL) {
        disconnect(c); /* do not stay pinned to that node */
    }
    pthread_mutex_unlock(&c->mu);
    if (rv != 0) {
        *out = NULL;
        return rv;
    }
    *out = resp.status;
    return 0;
}

int cairn_metrics_text(cairn_client *c, const char *endpoint, char **text, size_t *len)
{
    struct proto_request req;
    struct proto_response resp;
    char *copy = NULL;
    int rv;
    *text = NULL;
    if (len != NULL) {
        *len = 0;
    }
    memset(&req, 0, sizeof(req));
    req.type = PROTO_METRICS;
    pthread_mutex_lock(&c->mu);
    if (endpoint != NULL && (strchr(endpoint, ':') == NULL || strlen(endpoint) >= ENDPOINT_MAX)) {
        rv = set_err(c, CAIRN_EINVAL, "endpoint \"%s\" is not host:port", endpoint);
        pthread_mutex_unlock(&c->mu);
        return rv;
    }
    rv = call(c, &req, false, endpoint, &resp);
    if (rv == 0) {
        if (resp.text == NULL) {
            rv = set_err(c, CAIRN_EMALFORMED, "metrics response carries no text");
        } else if ((copy = malloc(resp.text_len + 1)) == NULL) {
            rv = set_err(c, CAIRN_ENOMEM, "no memory for %zu bytes of metrics", resp.text_len);
        } else {
            /* Plain malloc: the caller frees with free(). */
            memcpy(copy, resp.text, resp.text_len + 1);
            *text = copy;
            if (len != NULL) {
                *len = resp.text_len;
            }
        }
        proto_response_free(&resp);
    }
    if (endpoint != NULL) {
        disconnect(c); /* do not stay pinned to that node */
    }
    pthread_mutex_unlock(&c->mu);
    return rv;
}

/* The text answer of a BACKUP, MEMBER or TRANSFER call, copied for the caller. */
static int take_text(struct cairn_client *c, struct proto_response *resp, char **json, size_t *len)
{
    char *copy;
    if (resp->text == NULL) {
        return set_err(c, CAIRN_EMALFORMED, "the answer carries no text");
    }
    copy = malloc(resp->text_len + 1);
    if (copy == NULL) {
        return set_err(c, CAIRN_ENOMEM, "no memory for %zu bytes of answer", resp->text_len);
    }
    /* Plain malloc: the caller frees with free(). */
    memcpy(copy, resp->text, resp->text_len + 1);
    *json = copy;
    if (len != NULL) {
        *len = resp->text_len;
    }
    return 0;
}

static int text_call(cairn_client *c, struct proto_request *req, const struct call_spec *spec,
                     char **json, size_t *len)
{
    struct proto_response resp;
    int rv = call_with(c, req, spec, &resp);
    if (rv == 0) {
        rv = take_text(c, &resp, json, len);
        proto_response_free(&resp);
    }
    return rv;
}

/* The start of every text call: clears the outputs, zeroes req and spec and
 * takes the client's lock. Returns 0 with the lock held, or CAIRN_EINVAL
 * without it when json is NULL. */
static int text_call_begin(cairn_client *c, char **json, size_t *len, struct proto_request *req,
                           struct call_spec *spec)
{
    if (json != NULL) {
        *json = NULL;
    }
    if (len != NULL) {
        *len = 0;
    }
    memset(req, 0, sizeof(*req));
    memset(spec, 0, sizeof(*spec));
    pthread_mutex_lock(&c->mu);
    if (json == NULL) {
        return refuse(c, CAIRN_EINVAL, "json is NULL");
    }
    return 0;
}

int cairn_backup(cairn_client *c, const char *verb, char **json, size_t *len)
{
    struct proto_request req;
    struct call_spec spec;
    size_t verb_len = verb != NULL ? strlen(verb) : 0;
    int rv = text_call_begin(c, json, len, &req, &spec);
    if (rv != 0) {
        return rv;
    }
    if (verb_len == 0 || verb_len > PROTO_BACKUP_VERB_MAX) {
        return refuse(c, CAIRN_EINVAL, "a backup verb is 1 to %d bytes (status, save, verify)",
                      PROTO_BACKUP_VERB_MAX);
    }
    req.type = PROTO_BACKUP;
    set_slice(&req.op.key, verb, verb_len);
    /* A snapshot whose answer is lost may or may not have been taken:
     * report that rather than take another. Status and verify change
     * nothing and are retried like reads. */
    spec.is_write = strcmp(verb, "save") == 0;
    spec.answer_wait_ms = CAIRN_BACKUP_TIMEOUT_MS;
    /* Should the node refuse a backup for load, say so at once rather than
     * retry it for as long as a snapshot may take. */
    spec.busy_is_final = true;
    rv = text_call(c, &req, &spec, json, len);
    pthread_mutex_unlock(&c->mu);
    return rv;
}

/* One BACKUP call of the export protocol (src/dr_export.h), the client's
 * lock held. */
static int export_call(cairn_client *c, const char *verb, uint64_t id, uint64_t offset,
                       uint64_t limit, struct proto_response *resp)
{
    struct proto_request req;
    struct call_spec spec;
    memset(&req, 0, sizeof(req));
    memset(&spec, 0, sizeof(spec));
    req.type = PROTO_BACKUP;
    set_slice(&req.op.key, verb, strlen(verb));
    req.number = id;
    req.op.revision = offset;
    req.op.limit = limit;
    /* Retried like reads, "export" too: sent again after a lost answer (a
     * leader that died, say), it starts a new export wherever the leader
     * now is, whose capture begins after it, as the caller asked; the lost
     * one, if any, is dropped unread after a minute. */
    spec.is_write = false;
    spec.answer_wait_ms = CAIRN_BACKUP_TIMEOUT_MS;
    spec.busy_is_final = true;
    return call_with(c, &req, &spec, resp);
}

static uint64_t json_number_after(const char *text, size_t len, const char *key)
{
    size_t klen = strlen(key);
    uint64_t v = 0;
    for (size_t i = 0; i + klen < len; i++) {
        if (memcmp(text + i, key, klen) == 0) {
            for (i += klen; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
                v = v * 10 + (uint64_t)(text[i] - '0');
            }
            return v;
        }
    }
    return 0;
}

#define EXPORT_CHUNK (1u << 20)

int cairn_snapshot_stream(cairn_client *c, cairn_snapshot_begin_fn begin,
                          cairn_snapshot_data_fn data, void *arg, char **json, size_t *len)
{
    struct proto_request req;
    struct call_spec spec;
    struct proto_response resp;
    uint64_t id;
    uint64_t size;
    uint64_t off = 0;
    char *answer = NULL;
    size_t answer_len = 0;
    int rv = text_call_begin(c, json, len, &req, &spec);
    if (rv != 0) {
        return rv;
    }
    if (data == NULL) {
        rv = refuse(c, CAIRN_EINVAL, "data is NULL");
        return rv;
    }
    rv = export_call(c, "export", 0, 0, 0, &resp);
    if (rv == 0) {
        rv = take_text(c, &resp, &answer, &answer_len);
        proto_response_free(&resp);
    }
    if (rv != 0) {
        pthread_mutex_unlock(&c->mu);
        return rv;
    }
    /* {"export":ID,"bytes":N,"snapshot":{...}}: written by the node, so the
     * two numbers are where they are. */
    id = json_number_after(answer, answer_len, "\"export\":");
    size = json_number_after(answer, answer_len, "\"bytes\":");
    if (id == 0) {
        free(answer);
        rv = set_err(c, CAIRN_EMALFORMED, "the node's answer names no export");
        pthread_mutex_unlock(&c->mu);
        return rv;
    }
    if (begin != NULL && begin(arg, answer, answer_len, size) != 0) {
        rv = set_err(c, CAIRN_EIO, "the caller stopped the download");
    }
    while (rv == 0 && off < size) {
        rv = export_call(c, "export-read", id, off, EXPORT_CHUNK, &resp);
        if (rv != 0) {
            break;
        }
        if (resp.text == NULL || resp.text_len == 0 || resp.text_len > size - off) {
            rv = set_err(c, CAIRN_EMALFORMED,
                         "the node sent %zu bytes at offset %" PRIu64 " of %" PRIu64,
                         resp.text != NULL ? resp.text_len : 0, off, size);
        } else if (data(arg, resp.text, resp.text_len) != 0) {
            rv = set_err(c, CAIRN_EIO, "the caller stopped the download at offset %" PRIu64, off);
        } else {
            off += resp.text_len;
        }
        proto_response_free(&resp);
    }
    /* Done or not, the node may drop it now (it would after a minute). */
    if (rv != CAIRN_ENOTFOUND && export_call(c, "export-end", id, 0, 0, &resp) == 0) {
        proto_response_free(&resp);
    }
    if (rv == 0) {
        *json = answer;
        if (len != NULL) {
            *len = answer_len;
        }
    } else {
        free(answer);
    }
    pthread_mutex_unlock(&c->mu);
    return rv;
}

struct fd_download
{
    int fd;
    int err; /* errno of a failed write */
};

static int fd_download_data(void *arg, const char *p, size_t n)
{
    struct fd_download *f = arg;
    while (n > 0) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            f->err = errno;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Downloads started again when leadership moves during the reading. */
#define DOWNLOAD_ATTEMPTS 3

int cairn_snapshot_download(cairn_client *c, int fd, char **json, size_t *len)
{
    struct fd_download f = {.fd = fd, .err = 0};
    /* A file can be started again from where it began: a download that
     * lost its leader is then taken afresh from the next one, whose
     * capture is newer still. A pipe or socket cannot take back what it
     * was given, so there the caller starts again. */
    off_t start = lseek(fd, 0, SEEK_CUR);
    int rv = cairn_snapshot_stream(c, NULL, fd_download_data, &f, json, len);
    for (int attempt = 1; rv == CAIRN_ENOTFOUND && start >= 0 && attempt < DOWNLOAD_ATTEMPTS;
         attempt++) {
        if (ftruncate(fd, start) != 0 || lseek(fd, start, SEEK_SET) != start) {
            f.err = errno;
            break;
        }
        rv = cairn_snapshot_stream(c, NULL, fd_download_data, &f, json, len);
    }
    if (rv != 0 && f.err != 0) {
        pthread_mutex_lock(&c->mu);
        rv = set_err(c, CAIRN_EIO, "writing the snapshot: %s", strerror(f.err));
        pthread_mutex_unlock(&c->mu);
    }
    return rv;
}

int cairn_members(cairn_client *c, const char *endpoint, char **json, size_t *len)
{
    struct proto_request req;
    struct call_spec spec;
    int rv = text_call_begin(c, json, len, &req, &spec);
    if (rv != 0) {
        return rv;
    }
    if (endpoint != NULL && (strchr(endpoint, ':') == NULL || strlen(endpoint) >= ENDPOINT_MAX)) {
        return refuse(c, CAIRN_EINVAL, "endpoint \"%s\" is not host:port", endpoint);
    }
    req.type = PROTO_MEMBER;
    set_slice(&req.op.key, "list", 4);
    /* Any node answers: like a stale read, it does not make the answering
     * node the client's leader. */
    req.op.stale = true;
    spec.endpoint = endpoint;
    rv = text_call(c, &req, &spec, json, len);
    if (endpoint != NULL) {
        disconnect(c); /* do not stay pinned to that node */
    }
    pthread_mutex_unlock(&c->mu);
    return rv;
}

int cairn_member_change(cairn_client *c, const char *verb, uint64_t id, const char *address,
                        char **json, size_t *len)
{
    struct proto_request req;
    struct call_spec spec;
    bool add = verb != NULL && strcmp(verb, "add") == 0;
    int rv = text_call_begin(c, json, len, &req, &spec);
    if (rv != 0) {
        return rv;
    }
    if (verb == NULL || (!add && strcmp(verb, "promote") != 0 && strcmp(verb, "demote") != 0 &&
                         strcmp(verb, "remove") != 0)) {
        return refuse(c, CAIRN_EINVAL, "a member change is add, promote, demote or remove");
    }
    if (id == 0 || (add && (address == NULL || address[0] == '\0'))) {
        return refuse(c, CAIRN_EINVAL, "%s needs a member id%s", verb,
                      add ? " and its address RAFT_HOST:PORT/CLIENT_HOST:PORT" : "");
    }
    req.type = PROTO_MEMBER;
    set_slice(&req.op.key, verb, strlen(verb));
    if (add) {
        set_slice(&req.op.value, address, strlen(address));
    }
    req.number = id;
    spec.is_write = true; /* a lost answer leaves the change unknown */
    spec.answer_wait_ms = CAIRN_MEMBER_TIMEOUT_MS;
    /* "Another change is in progress" and "not caught up yet" are answers
     * for the operator, not load to wait out. */
    spec.busy_is_final = true;
    rv = text_call(c, &req, &spec, json, len);
    pthread_mutex_unlock(&c->mu);
    return rv;
}

int cairn_leader_transfer(cairn_client *c, uint64_t to_id, char **json, size_t *len)
{
    struct proto_request req;
    struct call_spec spec;
    int rv = text_call_begin(c, json, len, &req, &spec);
    if (rv != 0) {
        return rv;
    }
    req.type = PROTO_TRANSFER;
    req.number = to_id;
    spec.is_write = true;
    spec.answer_wait_ms = CAIRN_MEMBER_TIMEOUT_MS;
    spec.busy_is_final = true;
    rv = text_call(c, &req, &spec, json, len);
    /* The node that answered leads no more. */
    c->leader[0] = '\0';
    pthread_mutex_unlock(&c->mu);
    return rv;
}
