/*
 * bench_util: helpers shared by the benchmark tools; the contract is in
 * bench_util.h.
 */
#define _GNU_SOURCE
#include "bench_util.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* What one recv() of a blocking exchange may add to its buffer. */
#define RECV_CHUNK 65536
/* How much of an error answer's body a message quotes. */
#define QUOTE_MAX 200

static const char *prog = "bench";

void bench_set_prog(const char *name)
{
    prog = name;
}

const char *bench_prog(void)
{
    return prog;
}

/* "PROG: message" and the end of the line, on stderr. */
static void vmessage(const char *fmt, va_list ap, const char *end)
    __attribute__((format(printf, 1, 0)));
static void vmessage(const char *fmt, va_list ap, const char *end)
{
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputs(end, stderr);
}

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap, "\n");
    va_end(ap);
    exit(1);
}

void bench_bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap, " (see --help)\n");
    va_end(ap);
    exit(2);
}

int64_t bench_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * BENCH_NS_PER_S + ts.tv_nsec;
}

void bench_sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / BENCH_NS_PER_S), (long)(ns % BENCH_NS_PER_S)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Sizes of 0 are rounded up to 1 so that a NULL return always means out of
 * memory. */
void *bench_xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);
    if (p == NULL) {
        bench_die("out of memory");
    }
    return p;
}

void *bench_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n > 0 ? n : 1, size);
    if (p == NULL) {
        bench_die("out of memory");
    }
    return p;
}

void bench_xappend(struct buf *out, const void *p, size_t n)
{
    if (buf_append(out, p, n) != 0) {
        bench_die("out of memory");
    }
}

void bench_xprintf(struct buf *out, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(out, (size_t)n + 1) != 0) {
        bench_die("out of memory");
    }
    va_start(ap, fmt);
    vsnprintf(out->data + out->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    out->len += (size_t)n;
}

size_t bench_b64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void bench_b64_encode(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = tab[v >> 18];
        *out++ = tab[(v >> 12) & 63];
        *out++ = tab[(v >> 6) & 63];
        *out++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        *out++ = tab[v >> 18];
        *out++ = tab[(v >> 12) & 63];
        *out++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
    *out = '\0';
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

int bench_b64_decode_prefix(const char *in, unsigned char *out, size_t cap)
{
    size_t n = 0;
    while (n + 3 <= cap) {
        int v[4];
        int k;
        /* One character at a time: a NUL stops the group before the
         * characters that follow it are read. */
        for (k = 0; k < 4; k++) {
            v[k] = b64_value(in[k]);
            if (v[k] < 0) {
                return -1;
            }
        }
        out[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        out[n++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
        out[n++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
        in += 4;
    }
    return (int)n;
}

double bench_parse_double(const char *flag, const char *s)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || !isfinite(v)) {
        bench_bad_usage("%s: \"%s\" is not a non-negative number", flag, s);
    }
    return v;
}

uint64_t bench_parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    unsigned long long v;
    errno = 0;
    /* strtoull() would take "-1" as a huge number. */
    if (*s == '-') {
        bench_bad_usage("%s: \"%s\" is not a non-negative integer", flag, s);
    }
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        bench_bad_usage("%s: \"%s\" is not a non-negative integer", flag, s);
    }
    if (v < min || v > max) {
        bench_bad_usage("%s: must be %" PRIu64 "..%" PRIu64, flag, min, max);
    }
    return v;
}

enum bench_target bench_parse_target(const char *flag, const char *s)
{
    if (strcmp(s, "cairn") == 0) {
        return BENCH_TARGET_CAIRN;
    }
    if (strcmp(s, "etcd") != 0) {
        bench_bad_usage("%s: \"%s\" is neither cairn nor etcd", flag, s);
    }
    return BENCH_TARGET_ETCD;
}

unsigned bench_digits(uint64_t n)
{
    unsigned d = 1;
    while (n >= 10) {
        d++;
        n /= 10;
    }
    return d;
}

int bench_resolve(const char *spec, struct bench_endpoint *ep)
{
    char host[BENCH_ENDPOINT_MAX];
    const char *colon;
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    int rv;
    /* etcd names its endpoints as URLs. */
    if (strncmp(spec, "http://", 7) == 0) {
        spec += 7;
    }
    colon = strrchr(spec, ':');
    if (colon == NULL || colon == spec || strlen(spec) >= BENCH_ENDPOINT_MAX) {
        fprintf(stderr, "%s: endpoint \"%s\" is not HOST:PORT\n", prog, spec);
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rv = getaddrinfo(host, colon + 1, &hints, &res);
    if (rv != 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, spec, gai_strerror(rv));
        return -1;
    }
    memcpy(&ep->addr, res->ai_addr, res->ai_addrlen);
    ep->addr_len = res->ai_addrlen;
    snprintf(ep->name, sizeof(ep->name), "%s", spec);
    freeaddrinfo(res);
    return 0;
}

uint16_t bench_endpoint_port(const struct bench_endpoint *ep)
{
    if (ep->addr.ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)&ep->addr)->sin_port);
    }
    return ntohs(((const struct sockaddr_in6 *)&ep->addr)->sin6_port);
}

size_t bench_parse_endpoints(const char *list, struct bench_endpoint **eps)
{
    const char *p = list;
    size_t cap = 8;
    size_t n_eps = 0;
    *eps = bench_xmalloc(cap * sizeof(**eps));
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char item[BENCH_ENDPOINT_MAX];
        if (n > 0) {
            if (n >= sizeof(item)) {
                bench_bad_usage("--endpoints: entry too long");
            }
            memcpy(item, p, n);
            item[n] = '\0';
            if (n_eps == cap) {
                cap *= 2;
                *eps = realloc(*eps, cap * sizeof(**eps));
                if (*eps == NULL) {
                    bench_die("out of memory");
                }
            }
            if (bench_resolve(item, &(*eps)[n_eps]) != 0) {
                exit(2);
            }
            n_eps++;
        }
        p += n + (comma != NULL ? 1 : 0);
    }
    if (n_eps == 0) {
        bench_bad_usage("--endpoints: no endpoint given");
    }
    return n_eps;
}

bool bench_find_leader(const struct bench_endpoint *eps, size_t n, bench_status_cb status,
                       void *arg, int64_t timeout_ns, struct bench_endpoint *leader)
{
    int64_t deadline = bench_mono_ns() + timeout_ns;
    for (;;) {
        size_t i;
        for (i = 0; i < n; i++) {
            bool leads = false;
            char addr[BENCH_ENDPOINT_MAX] = "";
            if (!status(&eps[i], arg, &leads, addr, sizeof(addr))) {
                continue;
            }
            if (leads) {
                *leader = eps[i];
                return true;
            }
            /* A follower that knows the leader: it may not be in eps. */
            if (addr[0] != '\0' && bench_resolve(addr, leader) == 0) {
                return true;
            }
        }
        if (bench_mono_ns() > deadline) {
            return false;
        }
        bench_sleep_ns(200 * BENCH_NS_PER_MS);
    }
}

const struct bench_endpoint *bench_follower(const struct bench_endpoint *eps, size_t n,
                                            const struct bench_endpoint *leader)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (strcmp(eps[i].name, leader->name) != 0) {
            return &eps[i];
        }
    }
    return leader;
}

int bench_flush(int fd, struct buf *out, size_t *off)
{
    while (*off < out->len) {
        ssize_t n = send(fd, out->data + *off, out->len - *off, MSG_NOSIGNAL);
        if (n > 0) {
            *off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        if (n == 0) {
            errno = 0;
        }
        return -1;
    }
    out->len = 0;
    *off = 0;
    return 1;
}

int bench_connect_blocking(const struct bench_endpoint *ep, char *err, size_t err_len)
{
    struct timeval tv = {BENCH_BLOCKING_TIMEOUT_S, 0};
    int one = 1;
    int fd = socket(ep->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (const struct sockaddr *)&ep->addr, ep->addr_len) != 0) {
        snprintf(err, err_len, "connect to %s: %s", ep->name, strerror(errno));
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int bench_send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int bench_exchange(const struct bench_endpoint *ep, const char *req, size_t req_len,
                   bench_answer_cb answer, void *arg, char *err, size_t err_len)
{
    struct buf in;
    int fd = bench_connect_blocking(ep, err, err_len);
    int rv = -1;
    if (fd < 0) {
        return -1;
    }
    buf_init(&in);
    if (bench_send_all(fd, req, req_len) != 0) {
        snprintf(err, err_len, "%s: send: %s", ep->name, strerror(errno));
        goto out;
    }
    for (;;) {
        ssize_t n;
        int arv = answer(in.data != NULL ? in.data : "", in.len, arg, err, err_len);
        if (arv < 0) {
            goto out;
        }
        if (arv > 0) {
            rv = 0;
            goto out;
        }
        if (buf_reserve(&in, RECV_CHUNK) != 0) {
            bench_die("out of memory");
        }
        n = recv(fd, in.data + in.len, in.cap - in.len, 0);
        if (n <= 0) {
            snprintf(err, err_len, "%s: %s", ep->name,
                     n == 0 ? "connection closed" : strerror(errno));
            goto out;
        }
        in.len += (size_t)n;
    }
out:
    close(fd);
    buf_free(&in);
    return rv;
}

int bench_http_parse(const char *d, size_t n, struct buf *scratch, int *status, const char **body,
                     size_t *body_len, size_t *consumed, bool *close_after)
{
    const char *end = memmem(d, n, "\r\n\r\n", 4);
    const char *p;
    size_t hdr_len;
    size_t content_length = 0;
    bool have_length = false;
    bool chunked = false;
    bool closes = false;
    if (end == NULL) {
        return n > BENCH_HTTP_HEAD_MAX ? -1 : 0;
    }
    hdr_len = (size_t)(end - d) + 4;
    if (n < 12 || memcmp(d, "HTTP/1.", 7) != 0) {
        return -1;
    }
    *status = atoi(d + 9);
    p = memchr(d, '\n', hdr_len);
    while (p != NULL && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end + 2 - line));
        size_t len = eol != NULL ? (size_t)(eol - line) : (size_t)(end - line);
        if (len > 15 && strncasecmp(line, "content-length:", 15) == 0) {
            content_length = strtoull(line + 15, NULL, 10);
            have_length = true;
        } else if (len > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0) {
            chunked = memmem(line, len, "chunked", 7) != NULL;
        } else if (len > 11 && strncasecmp(line, "connection:", 11) == 0) {
            closes = memmem(line, len, "close", 5) != NULL;
        }
        p = eol;
    }
    if (close_after != NULL) {
        *close_after = closes;
    }
    if (chunked) {
        size_t off = hdr_len;
        scratch->len = 0;
        for (;;) {
            const char *eol = memmem(d + off, n - off, "\r\n", 2);
            size_t size;
            if (eol == NULL) {
                return 0;
            }
            size = strtoull(d + off, NULL, 16);
            off = (size_t)(eol - d) + 2;
            if (size == 0) {
                /* Trailers end with an empty line. */
                for (;;) {
                    eol = memmem(d + off, n - off, "\r\n", 2);
                    if (eol == NULL) {
                        return 0;
                    }
                    if (eol == d + off) {
                        off += 2;
                        break;
                    }
                    off = (size_t)(eol - d) + 2;
                }
                *body = scratch->data != NULL ? scratch->data : "";
                *body_len = scratch->len;
                *consumed = off;
                return 1;
            }
            if (n - off < size + 2) {
                return 0;
            }
            bench_xappend(scratch, d + off, size);
            off += size + 2;
        }
    }
    if (!have_length) {
        return -1; /* a keep-alive answer always says how long it is */
    }
    if (n - hdr_len < content_length) {
        return 0;
    }
    *body = d + hdr_len;
    *body_len = content_length;
    *consumed = hdr_len + content_length;
    return 1;
}

/* What bench_http_post's answer callback needs. */
struct http_post_ctx
{
    const struct bench_endpoint *ep; /* borrowed */
    const char *path;                /* borrowed */
    struct buf scratch;              /* owned: a chunked body */
    struct buf *out;                 /* borrowed */
};

static int http_post_answer_cb(const char *data, size_t len, void *arg, char *err, size_t err_len)
{
    struct http_post_ctx *ctx = arg;
    int status = 0;
    const char *b = NULL;
    size_t blen = 0;
    size_t consumed = 0;
    int rv = bench_http_parse(data, len, &ctx->scratch, &status, &b, &blen, &consumed, NULL);
    if (rv < 0) {
        snprintf(err, err_len, "%s: malformed HTTP response", ctx->ep->name);
        return -1;
    }
    if (rv == 0) {
        return 0;
    }
    if (status != 200) {
        snprintf(err, err_len, "%s%s: HTTP %d: %.*s", ctx->ep->name, ctx->path, status,
                 (int)(blen > QUOTE_MAX ? QUOTE_MAX : blen), b);
        return -1;
    }
    ctx->out->len = 0;
    bench_xappend(ctx->out, b, blen);
    bench_xappend(ctx->out, "", 1);
    ctx->out->len--;
    return 1;
}

int bench_http_post(const struct bench_endpoint *ep, const char *path, const char *body,
                    struct buf *out, char *err, size_t err_len)
{
    struct http_post_ctx ctx = {ep, path, {NULL, 0, 0}, out};
    struct buf req;
    int rv;
    buf_init(&req);
    buf_init(&ctx.scratch);
    bench_xprintf(&req,
                  "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                  path, ep->name, strlen(body), body);
    rv = bench_exchange(ep, req.data, req.len, http_post_answer_cb, &ctx, err, err_len);
    buf_free(&req);
    buf_free(&ctx.scratch);
    return rv;
}

bool bench_json_u64(const char *json, const char *name, uint64_t *v)
{
    char pat[64];
    const char *p;
    snprintf(pat, sizeof(pat), "\"%s\":", name);
    p = strstr(json, pat);
    if (p == NULL) {
        return false;
    }
    p += strlen(pat);
    while (*p == ' ' || *p == '"') {
        p++;
    }
    if (*p < '0' || *p > '9') {
        return false;
    }
    *v = strtoull(p, NULL, 10);
    return true;
}
