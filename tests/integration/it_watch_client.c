/*
 * it_watch_client: libcairn's watch client against a scripted node.
 *
 * A real cairnd rarely replays what a client already has, restarts a
 * snapshot halfway, sends a frame that does not decode or goes silent on
 * cue; this test's fake node does each on purpose, on two loopback
 * endpoints, and checks what the client sends back while the test checks
 * what the caller receives:
 *
 *  - a refused watch: cairn_watch() returns the node's code and message;
 *  - resume: after the connection drops, the client asks the next node for
 *    the revision after the last one delivered, and drops everything that
 *    node replays at or below it (events, progress, a stale snapshot);
 *  - snapshots: parts are assembled into one update, a new part 0 discards
 *    a partial snapshot, and one over snapshot_bytes_max ends the watch with
 *    CAIRN_ETOOLARGE (and the node is told: a cancel, or the connection
 *    closes since no watch is left on it);
 *  - a malformed frame, or events out of order, make the client resume
 *    elsewhere;
 *  - a node that stops answering is given up within the silence bound.
 *
 * Pings (status requests) are answered by the fake node as a healthy
 * follower would.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "proto.h"

#define FAKE_WAIT_MS 10000
#define WATCH_ID_ANY 0

/* The scripted node: two listeners, connections taken in order from both. */
struct fake
{
    int listeners[2];
    int ports[2];
    int fd; /* the current connection */
    struct buf in;
    uint64_t watch_id;   /* the id of the watch being served */
    uint64_t canceled;   /* the watch id of the last PROTO_WATCH_CANCEL seen */
    uint64_t progress_n; /* PROTO_PROGRESS requests seen */
    bool may_close;      /* the client may hang up now: sends may fail */
};

static int listen_on(int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    IT_ASSERT(fd >= 0, "socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    IT_ASSERT(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind: %s", strerror(errno));
    IT_ASSERT(listen(fd, 8) == 0, "listen: %s", strerror(errno));
    IT_ASSERT(getsockname(fd, (struct sockaddr *)&a, &len) == 0, "getsockname");
    *port = ntohs(a.sin_port);
    return fd;
}

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    f->listeners[0] = listen_on(&f->ports[0]);
    f->listeners[1] = listen_on(&f->ports[1]);
    f->fd = -1;
    buf_init(&f->in);
}

static void fake_drop(struct fake *f)
{
    if (f->fd >= 0) {
        close(f->fd);
    }
    f->fd = -1;
    f->in.len = 0;
}

/* Take the client's next connection, on either endpoint. */
static void fake_accept(struct fake *f)
{
    struct pollfd p[2] = {{f->listeners[0], POLLIN, 0}, {f->listeners[1], POLLIN, 0}};
    int i;
    fake_drop(f);
    IT_ASSERT(poll(p, 2, FAKE_WAIT_MS) > 0, "the client did not connect within %d ms",
              FAKE_WAIT_MS);
    i = p[0].revents != 0 ? 0 : 1;
    f->fd = accept(f->listeners[i], NULL, NULL);
    IT_ASSERT(f->fd >= 0, "accept: %s", strerror(errno));
}

static void fake_send(struct fake *f, struct buf *b)
{
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = send(f->fd, b->data + off, b->len - off, MSG_NOSIGNAL);
        if (n <= 0 && f->may_close) {
            break;
        }
        IT_ASSERT(n > 0, "send to the client: %s", strerror(errno));
        off += (size_t)n;
    }
    b->len = 0;
}

static void fake_answer_status(struct fake *f, uint64_t id)
{
    struct buf b;
    struct proto_writer w;
    struct proto_response_head h;
    struct cairn_status s;
    buf_init(&b);
    memset(&h, 0, sizeof(h));
    h.id = id;
    h.type = PROTO_STATUS;
    memset(&s, 0, sizeof(s));
    s.id = 2;
    s.state = "follower";
    s.leader_id = 1;
    s.leader_address = "";
    proto_writer_begin(&w, &b);
    proto_pack_response_head(&w, &h);
    proto_pack_status(&w, &s);
    IT_ASSERT(proto_writer_end(&w) == 0, "encoding a status");
    fake_send(f, &b);
    buf_free(&b);
}

/* Read requests until one of type `want` arrives (answering pings, noting
 * cancels and progress requests on the way); returns it decoded into req
 * (slices into f->in's copy kept in *payload, which the caller frees). */
static void fake_expect(struct fake *f, uint8_t want, struct proto_request *req, char **payload)
{
    int64_t deadline = it_now_ms() + FAKE_WAIT_MS;
    for (;;) {
        size_t len = 0;
        int rv = proto_frame_peek(f->in.data, f->in.len, PROTO_FRAME_SIZE_MAX, &len);
        IT_ASSERT(rv >= 0, "the client sent a frame of %zu bytes", len);
        if (rv == 1) {
            struct arena a;
            char *copy = malloc(len + 1);
            IT_ASSERT(copy != NULL, "out of memory");
            memcpy(copy, f->in.data + PROTO_FRAME_HEADER_SIZE, len);
            buf_consume(&f->in, PROTO_FRAME_HEADER_SIZE + len);
            arena_init(&a);
            rv = proto_decode_request(copy, len, &a, req);
            IT_ASSERT(rv == 0, "the client sent a request that does not decode: %s",
                      cairn_errname(rv));
            /* Only scalar fields and key slices (into copy) are used. */
            arena_free(&a);
            if (req->type == PROTO_STATUS && want != PROTO_STATUS) {
                fake_answer_status(f, req->id);
            } else if (req->type == PROTO_WATCH_CANCEL) {
                f->canceled = req->number;
            } else if (req->type == PROTO_PROGRESS) {
                f->progress_n++;
            }
            if (req->type == want) {
                *payload = copy;
                return;
            }
            free(copy);
            continue;
        }
        {
            struct pollfd p = {f->fd, POLLIN, 0};
            int64_t left = deadline - it_now_ms();
            ssize_t n;
            IT_ASSERT(left > 0, "no request of type %u within %d ms", want, FAKE_WAIT_MS);
            if (poll(&p, 1, (int)left) <= 0) {
                continue;
            }
            IT_ASSERT(buf_reserve(&f->in, 65536) == 0, "out of memory");
            n = recv(f->fd, f->in.data + f->in.len, f->in.cap - f->in.len, 0);
            IT_ASSERT(n > 0,
                      "the client closed the connection while a request of type %u was "
                      "expected",
                      want);
            f->in.len += (size_t)n;
        }
    }
}

/* Accept a connection and the client's PROTO_WATCH on it: returns the
 * revision it asks for. */
static uint64_t fake_watch_request(struct fake *f, const char *key)
{
    struct proto_request req;
    char *payload = NULL;
    uint64_t rev;
    fake_accept(f);
    fake_expect(f, PROTO_WATCH, &req, &payload);
    IT_ASSERT(req.id != 0, "a watch id of 0");
    IT_ASSERT(req.op.key.len == strlen(key) && memcmp(req.op.key.ptr, key, req.op.key.len) == 0,
              "the watch is for \"%.*s\", not %s", (int)req.op.key.len, req.op.key.ptr, key);
    IT_ASSERT(f->watch_id == WATCH_ID_ANY || req.id == f->watch_id,
              "the watch's id changed from %llu to %llu", (unsigned long long)f->watch_id,
              (unsigned long long)req.id);
    f->watch_id = req.id;
    rev = req.op.revision;
    free(payload);
    return rev;
}

static const struct cairn_kv *kv_at(uint64_t rev, const char *key, const char *value)
{
    static struct cairn_kv kv;
    memset(&kv, 0, sizeof(kv));
    kv.key = key;
    kv.key_len = strlen(key);
    kv.value = value;
    kv.value_len = strlen(value);
    kv.create_revision = 1;
    kv.mod_revision = rev;
    kv.version = rev;
    return &kv;
}

/* A watch message whose events are at revs[0 .. n) (key "k"). */
static void fake_msg(struct fake *f, uint8_t kind, uint64_t head, bool more, uint32_t part,
                     const uint64_t *revs, uint32_t n)
{
    struct buf b;
    struct proto_writer w;
    uint32_t i;
    buf_init(&b);
    proto_writer_begin(&w, &b);
    proto_pack_watch_head(&w, f->watch_id, kind, head, 0, more, part, n);
    for (i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), kind == PROTO_WATCH_SNAPSHOT ? "k%02u" : "k",
                 (unsigned)(part * 100 + i));
        proto_pack_event(&w, kv_at(revs[i], key, "v"), NULL);
    }
    IT_ASSERT(proto_writer_end(&w) == 0, "encoding a watch message");
    fake_send(f, &b);
    buf_free(&b);
}

static void fake_created(struct fake *f, uint64_t head)
{
    fake_msg(f, PROTO_WATCH_CREATED, head, false, 0, NULL, 0);
}

/* The scenario runs on the fake node's thread; the caller's side runs on
 * the main thread. They meet through what the client sends and delivers. */
struct scenario
{
    struct fake f;
    pthread_t thread;
    pthread_mutex_t mu;
    int step; /* how far the node got */
};

static struct scenario g_sc;

static void node_step(int step)
{
    pthread_mutex_lock(&g_sc.mu);
    g_sc.step = step;
    pthread_mutex_unlock(&g_sc.mu);
}

static void wait_step(int step)
{
    int64_t deadline = it_now_ms() + FAKE_WAIT_MS;
    for (;;) {
        int at;
        pthread_mutex_lock(&g_sc.mu);
        at = g_sc.step;
        pthread_mutex_unlock(&g_sc.mu);
        if (at >= step) {
            return;
        }
        IT_ASSERT(it_now_ms() < deadline, "nobody reached step %d", step);
        it_sleep_ms(5);
    }
}

/* Read the client's requests until it cancels the watch or closes the
 * connection (which ends every watch on it too). */
static void fake_until_cancel_or_close(struct fake *f)
{
    struct proto_request req;
    char *payload = NULL;
    for (;;) {
        struct pollfd p = {f->fd, POLLIN, 0};
        ssize_t n;
        size_t len = 0;
        if (f->canceled == f->watch_id) {
            return;
        }
        if (proto_frame_peek(f->in.data, f->in.len, PROTO_FRAME_SIZE_MAX, &len) == 1) {
            /* A whole request is there: let fake_expect take it. */
            fake_expect(f, PROTO_WATCH_CANCEL, &req, &payload);
            free(payload);
            continue;
        }
        IT_ASSERT(poll(&p, 1, FAKE_WAIT_MS) > 0, "neither a cancel nor a close");
        IT_ASSERT(buf_reserve(&f->in, 65536) == 0, "out of memory");
        n = recv(f->fd, f->in.data + f->in.len, f->in.cap - f->in.len, 0);
        if (n <= 0) {
            return;
        }
        f->in.len += (size_t)n;
    }
}

static void *node_main(void *arg)
{
    struct fake *f = &g_sc.f;
    struct proto_request req;
    char *payload = NULL;
    uint64_t rev;
    static const uint64_t r11_12[] = {11, 12};
    static const uint64_t r11_13[] = {11, 12, 13, 13};
    static const uint64_t r_snap[] = {20, 20, 20};
    static const uint64_t r_bad_order[] = {32, 31};
    static const uint64_t r_33[] = {33};
    static const uint64_t r_34[] = {34};
    (void)arg;

    /* 1. A refused watch. */
    fake_accept(f);
    fake_expect(f, PROTO_WATCH, &req, &payload);
    {
        struct buf b;
        buf_init(&b);
        IT_ASSERT(proto_encode_error(&b, req.id, PROTO_WATCH, CAIRN_EINVAL,
                                     "keys must not start with a dot", NULL) == 0,
                  "encoding an error");
        fake_send(f, &b);
        buf_free(&b);
    }
    free(payload);
    node_step(1);

    /* 2. Created at 10 (start 11), events 11 and 12, then the node dies. */
    rev = fake_watch_request(f, "k");
    IT_ASSERT(rev == 11, "the watch asks for revision %llu, not 11", (unsigned long long)rev);
    fake_created(f, 10);
    fake_msg(f, PROTO_WATCH_EVENTS, 12, false, 0, r11_12, 2);
    /* Once the caller has them, the node dies. */
    wait_step(2);
    fake_drop(f);

    /* 3. The next node is asked for 13; it replays 11..13 (13 twice, as one
     * revision of two events), sends progress behind and at 13, and a
     * snapshot at 12 (stale), then one at 20 in parts, restarted once. */
    rev = fake_watch_request(f, "k");
    IT_ASSERT(rev == 13, "resumed at %llu, not 13", (unsigned long long)rev);
    fake_created(f, 12);
    fake_msg(f, PROTO_WATCH_EVENTS, 13, false, 0, r11_13, 4);
    fake_msg(f, PROTO_WATCH_PROGRESS, 12, false, 0, NULL, 0);
    fake_msg(f, PROTO_WATCH_PROGRESS, 13, false, 0, NULL, 0);
    fake_msg(f, PROTO_WATCH_SNAPSHOT, 12, false, 0, r11_12, 2);
    fake_msg(f, PROTO_WATCH_SNAPSHOT, 20, true, 0, r_snap, 3);
    fake_msg(f, PROTO_WATCH_SNAPSHOT, 20, true, 1, r_snap, 3);
    fake_msg(f, PROTO_WATCH_SNAPSHOT, 20, true, 0, r_snap, 2); /* restarted */
    fake_msg(f, PROTO_WATCH_SNAPSHOT, 20, false, 1, r_snap, 1);
    node_step(3);

    /* 4. A frame that does not decode: the client resumes after 20. */
    {
        static const char garbage[] = {0, 0, 0, 3, (char)0x93, (char)0xc1, (char)0xc1};
        struct buf b;
        buf_init(&b);
        IT_ASSERT(buf_append(&b, garbage, sizeof(garbage)) == 0, "out of memory");
        fake_send(f, &b);
        buf_free(&b);
    }
    rev = fake_watch_request(f, "k");
    IT_ASSERT(rev == 21, "resumed at %llu after a bad frame, not 21", (unsigned long long)rev);
    fake_created(f, 20);

    /* 5. Events out of order: the client leaves; the next node serves 31
     * onwards (the client asks for 21, as nothing was delivered). */
    fake_msg(f, PROTO_WATCH_EVENTS, 32, false, 0, r_bad_order, 2);
    rev = fake_watch_request(f, "k");
    IT_ASSERT(rev == 21, "resumed at %llu after disordered events, not 21",
              (unsigned long long)rev);
    fake_created(f, 20);
    fake_msg(f, PROTO_WATCH_EVENTS, 33, false, 0, r_33, 1);
    node_step(5);

    /* 6. Silence: the node reads but answers nothing, not even pings. The
     * client must give it up and resume on the other node. */
    {
        int64_t t0 = it_now_ms();
        char sink[4096];
        int fd = f->fd;
        f->fd = -1; /* keep it open, unanswered, while the next one comes */
        for (;;) {
            struct pollfd l[3] = {
                {f->listeners[0], POLLIN, 0}, {f->listeners[1], POLLIN, 0}, {fd, POLLIN, 0}};
            IT_ASSERT(it_now_ms() - t0 < FAKE_WAIT_MS, "a silent node was not given up");
            if (poll(l, 3, 100) > 0 && (l[0].revents | l[1].revents) != 0) {
                break;
            }
            if ((l[2].revents & POLLIN) != 0 && recv(fd, sink, sizeof(sink), 0) <= 0) {
                break; /* the client closed it */
            }
        }
        rev = fake_watch_request(f, "k");
        close(fd);
        IT_ASSERT(rev == 34, "resumed at %llu after silence, not 34", (unsigned long long)rev);
        it_log("a silent node was given up after %lld ms", (long long)(it_now_ms() - t0));
        fake_created(f, 33);
        fake_msg(f, PROTO_WATCH_EVENTS, 34, false, 0, r_34, 1);
    }
    node_step(6);

    /* 7. A snapshot over the bound: CANCELED for the caller; the node is
     * told with a cancel, or by the connection closing (the client's last
     * watch ended). The test's watch has snapshot_bytes_max of 4096. */
    {
        uint64_t revs[64];
        uint32_t i;
        for (i = 0; i < 64; i++) {
            revs[i] = 40;
        }
        /* The client may hang up after the first part. */
        f->may_close = true;
        for (i = 0; i < 4; i++) {
            fake_msg(f, PROTO_WATCH_SNAPSHOT, 40, true, i, revs, 64);
        }
        fake_until_cancel_or_close(f);
    }
    node_step(7);
    return NULL;
}

static struct cairn_watch_update *take(cairn_watcher *w)
{
    struct cairn_watch_update *u = NULL;
    int rv = cairn_watch_next(w, FAKE_WAIT_MS, &u);
    IT_ASSERT(rv == 0, "no update within %d ms: %s", FAKE_WAIT_MS, cairn_errname(rv));
    return u;
}

static void expect_events(cairn_watcher *w, uint64_t rev, size_t n)
{
    struct cairn_watch_update *u = take(w);
    size_t i;
    IT_ASSERT(u->kind == CAIRN_WATCH_EVENTS, "a %d update, want EVENTS at %llu", (int)u->kind,
              (unsigned long long)rev);
    IT_ASSERT(u->revision == rev && u->n_events == n,
              "EVENTS at %llu with %zu events, want %llu "
              "with %zu",
              (unsigned long long)u->revision, u->n_events, (unsigned long long)rev, n);
    for (i = 0; i < n; i++) {
        IT_ASSERT(u->events[i].kv.mod_revision <= rev, "an event past its update");
    }
    cairn_watch_update_free(u);
}

int main(void)
{
    struct cairn_options opts;
    struct cairn_watch_opts o;
    cairn_client *c;
    cairn_watcher *w = NULL;
    struct cairn_watch_update *u;
    char endpoints[64];
    int err = 0;
    int rv;

    it_init("it_watch_client", IT_TIMEOUT_S);
    fake_init(&g_sc.f);
    pthread_mutex_init(&g_sc.mu, NULL);
    IT_FORMAT(endpoints, "127.0.0.1:%d,127.0.0.1:%d", g_sc.f.ports[0], g_sc.f.ports[1]);
    memset(&opts, 0, sizeof(opts));
    opts.timeout_ms = FAKE_WAIT_MS;
    opts.backoff_min_ms = 10;
    opts.backoff_max_ms = 50;
    c = cairn_client_new(endpoints, &opts, &err);
    IT_ASSERT(c != NULL, "cairn_client_new: %s", cairn_errname(err));
    IT_ASSERT(pthread_create(&g_sc.thread, NULL, node_main, NULL) == 0, "pthread_create");

    /* 1. */
    rv = cairn_watch(c, ".k", 2, NULL, NULL, NULL, &w);
    IT_ASSERT(rv == CAIRN_EINVAL && w == NULL, "a refused watch returned %s", cairn_errname(rv));
    IT_ASSERT(strstr(cairn_errmsg(c), "keys must not start with a dot") != NULL,
              "the node's reason is lost: %s", cairn_errmsg(c));
    it_log("refused: %s", cairn_errmsg(c));
    wait_step(1);

    /* 2. */
    memset(&o, 0, sizeof(o));
    o.start_revision = 11;
    o.snapshot_bytes_max = 4096;
    IT_ASSERT_OK(cairn_watch(c, "k", 1, &o, NULL, NULL, &w), c);
    IT_ASSERT(cairn_watch_revision(w) == 10, "starts after %llu",
              (unsigned long long)cairn_watch_revision(w));
    expect_events(w, 12, 2);
    node_step(2);

    /* 3. Only revision 13's two events, progress at 13, one snapshot. */
    expect_events(w, 13, 2);
    u = take(w);
    IT_ASSERT(u->kind == CAIRN_WATCH_PROGRESS && u->revision == 13,
              "a %d update at %llu, want PROGRESS at 13", (int)u->kind,
              (unsigned long long)u->revision);
    cairn_watch_update_free(u);
    u = take(w);
    IT_ASSERT(u->kind == CAIRN_WATCH_SNAPSHOT && u->revision == 20,
              "a %d update at %llu, want SNAPSHOT at 20", (int)u->kind,
              (unsigned long long)u->revision);
    IT_ASSERT(u->n_kvs == 3, "the snapshot holds %zu keys, want the restarted one's 3", u->n_kvs);
    IT_ASSERT(strcmp(u->kvs[0].key, "k00") == 0 && strcmp(u->kvs[1].key, "k01") == 0 &&
                  strcmp(u->kvs[2].key, "k100") == 0,
              "the snapshot's keys are %s, %s, %s", u->kvs[0].key, u->kvs[1].key, u->kvs[2].key);
    cairn_watch_update_free(u);
    IT_ASSERT(cairn_watch_revision(w) == 20, "at %llu after the snapshot",
              (unsigned long long)cairn_watch_revision(w));
    it_log("resume: replays dropped, one snapshot from two tries");

    /* 4, 5. */
    expect_events(w, 33, 1);
    it_log("a bad frame and disordered events: resumed elsewhere");

    /* 6. */
    expect_events(w, 34, 1);

    /* 7. */
    u = take(w);
    IT_ASSERT(u->kind == CAIRN_WATCH_CANCELED && u->error == CAIRN_ETOOLARGE,
              "a %d update (%s), want CANCELED with CAIRN_ETOOLARGE", (int)u->kind,
              cairn_errname(u->error));
    IT_ASSERT(strstr(u->message, "snapshot_bytes_max") != NULL, "the message: %s", u->message);
    it_log("canceled: %s", u->message);
    cairn_watch_update_free(u);
    IT_ASSERT(cairn_watch_next(w, 0, &u) == CAIRN_EINVAL, "an update after CANCELED");
    IT_ASSERT(cairn_watch_request_progress(w) == CAIRN_EINVAL, "progress on an ended watch");
    wait_step(7);
    cairn_watch_cancel(w);

    pthread_join(g_sc.thread, NULL);
    cairn_client_free(c);
    fake_drop(&g_sc.f);
    close(g_sc.f.listeners[0]);
    close(g_sc.f.listeners[1]);
    buf_free(&g_sc.f.in);
    it_log("PASS");
    return 0;
}
