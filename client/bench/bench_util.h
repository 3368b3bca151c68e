/*
 * bench_util: what the benchmark tools (cairn-bench, cairn-watch-bench) share.
 * Generic helpers with no knowledge of either tool's workload: messages that
 * end the process, allocation that cannot fail, base64, command-line
 * numbers, endpoints ("HOST:PORT", resolved once), blocking request/answer
 * exchanges, and the few bits of HTTP/1.1 and JSON needed to drive etcd's
 * v3 HTTP/JSON gateway.
 *
 * These are tools, not a library: on out of memory or a bad command line the
 * helpers end the process (exit status 1, or 2 for a bad command line) with a
 * message prefixed by the tool's name (bench_set_prog). Everything else
 * (connection and protocol errors) is returned to the caller.
 */
#ifndef CAIRN_BENCH_UTIL_H
#define CAIRN_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"

#define BENCH_NS_PER_MS 1000000LL
#define BENCH_NS_PER_S 1000000000LL
/* The longest "host:port" an endpoint may be, NUL included. */
#define BENCH_ENDPOINT_MAX 256
/* Send and receive timeout of a blocking socket (bench_connect_blocking). */
#define BENCH_BLOCKING_TIMEOUT_S 5
/* A response head (etcd) longer than this is malformed. */
#define BENCH_HTTP_HEAD_MAX 65536

/* Messages */

/* The name that prefixes every message of the helpers ("cairn-bench");
 * borrowed: name must outlive the process's use of the helpers. Call first in
 * main(). */
void bench_set_prog(const char *name);
const char *bench_prog(void);

/* Print "PROG: message" on stderr and exit with status 1. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A bad command line: "PROG: message (see --help)" and exit status 2. */
void bench_bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* What the tools drive: Cairn with its wire protocol, or etcd v3 through its
 * HTTP/JSON gateway. */
enum bench_target {
    BENCH_TARGET_CAIRN,
    BENCH_TARGET_ETCD,
};

/* Time */

/* CLOCK_MONOTONIC in ns: one clock for every process of the machine. */
int64_t bench_mono_ns(void);

/* Sleep ns nanoseconds, resumed across signals. */
void bench_sleep_ns(int64_t ns);

/* Memory: the process ends on out of memory */

/* malloc/calloc that never return NULL (a size of 0 gets a valid pointer);
 * the caller frees with free(). */
void *bench_xmalloc(size_t n);
void *bench_xcalloc(size_t n, size_t size);

/* Append n bytes of p (copied) to out. */
void bench_xappend(struct buf *out, const void *p, size_t n);

/* Append printf-formatted text to out (no NUL counted in out->len, though
 * one follows the text). */
void bench_xprintf(struct buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Base64 (standard alphabet, padded), as etcd's gateway wants bytes */

/* Characters that bench_b64_encode writes for n bytes, NUL not counted. */
size_t bench_b64_len(size_t n);

/* Encode n bytes of in into out, which holds bench_b64_len(n) + 1 chars;
 * out is NUL-terminated. */
void bench_b64_encode(const unsigned char *in, size_t n, char *out);

/* Decode the first groups of a base64 string into out (cap bytes, a multiple
 * of 3): returns the bytes decoded (cap, unless cap is not a multiple of 3),
 * or -1 when a character of those groups is not base64 (padding included).
 * in must hold at least cap / 3 * 4 characters or end in a NUL earlier. */
int bench_b64_decode_prefix(const char *in, unsigned char *out, size_t cap);

/* Command line: a malformed value is a bad usage (exit status 2) */

/* A finite non-negative number. */
double bench_parse_double(const char *flag, const char *s);

/* A decimal integer in [min, max]. */
uint64_t bench_parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max);

/* --target: "cairn" or "etcd". */
enum bench_target bench_parse_target(const char *flag, const char *s);

/* How many decimal digits n has (1 for 0): the width of zero-padded keys. */
unsigned bench_digits(uint64_t n);

/* Endpoints */

struct bench_endpoint
{
    char name[BENCH_ENDPOINT_MAX]; /* host:port */
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

/* Resolve "HOST:PORT" (or an etcd-style "http://HOST:PORT") into ep, with
 * the first address getaddrinfo gives. Returns 0, or -1 after printing why on
 * stderr. */
int bench_resolve(const char *spec, struct bench_endpoint *ep);

/* The port of a resolved endpoint, in host order. */
uint16_t bench_endpoint_port(const struct bench_endpoint *ep);

/* Resolve a comma-separated list of endpoints (--endpoints): sets *eps to an
 * array the caller frees with free() and returns how many it holds, at least
 * one. A bad list is a bad usage; an address that does not resolve ends the
 * process with status 2. */
size_t bench_parse_endpoints(const char *list, struct bench_endpoint **eps);

/* Asks a node about itself: returns true when it answered, with whether it
 * leads and, when it knows, its leader's "host:port" in leader_addr (cap
 * bytes; "" when unknown). */
typedef bool (*bench_status_cb)(const struct bench_endpoint *ep, void *arg, bool *leader,
                                char *leader_addr, size_t cap);

/* Find the leader among eps (n of them): asks each in turn with status,
 * every 200 ms, until one says it leads or names its leader. Returns true
 * with the leader in *leader (copied, or resolved from the name given), false
 * once timeout_ns passed without one. */
bool bench_find_leader(const struct bench_endpoint *eps, size_t n, bench_status_cb status,
                       void *arg, int64_t timeout_ns, struct bench_endpoint *leader);

/* The first of eps (n of them) that is not leader, or leader itself when it
 * is the only node: where reads from a follower go. */
const struct bench_endpoint *bench_follower(const struct bench_endpoint *eps, size_t n,
                                            const struct bench_endpoint *leader);

/* Non-blocking sockets */

/* Send what is pending in out from *off on the non-blocking socket fd.
 * Returns 1 once all of it is sent (out emptied, *off reset to 0), 0 when the
 * socket would block (wait for it to be writable, then call again), -1 when
 * the connection failed: errno says why, 0 when the peer closed it. */
int bench_flush(int fd, struct buf *out, size_t *off);

/* Blocking exchanges, before or beside a load */

/* A connected blocking socket with send and receive timeouts
 * (BENCH_BLOCKING_TIMEOUT_S) and TCP_NODELAY, or -1 with why in err. */
int bench_connect_blocking(const struct bench_endpoint *ep, char *err, size_t err_len);

/* Send all n bytes of p on a blocking socket: 0, or -1 with errno set. */
int bench_send_all(int fd, const char *p, size_t n);

/* Decides whether the bytes received so far hold a whole answer: returns 1
 * when done (the exchange succeeds), 0 to read more, -1 on an error it wrote
 * into err. data is valid only during the call. */
typedef int (*bench_answer_cb)(const char *data, size_t len, void *arg, char *err, size_t err_len);

/* Connect to ep, send req_len bytes of req, and read until answer returns
 * other than 0 or the connection ends. Returns 0 when answer returned 1,
 * else -1 with why in err. The connection is closed before the return. */
int bench_exchange(const struct bench_endpoint *ep, const char *req, size_t req_len,
                   bench_answer_cb answer, void *arg, char *err, size_t err_len);

/* HTTP/1.1 and JSON (etcd's gateway) */

/* Parse one HTTP/1.1 response at the start of d (n bytes): returns 1 with the
 * status, the body and the bytes the response took (consumed); 0 when it is
 * incomplete; -1 when it is malformed. The body points into d, or into
 * scratch when the response is chunked (scratch is overwritten); both must
 * outlive its use. When close_after is not NULL it says whether the server
 * closes the connection after this response ("Connection: close"). */
int bench_http_parse(const char *d, size_t n, struct buf *scratch, int *status, const char **body,
                     size_t *body_len, size_t *consumed, bool *close_after);

/* A blocking POST of a JSON body to ep's path, on a connection of its own.
 * Returns 0 with the body of a 200 answer in out (replaced, NUL-terminated),
 * else -1 with why in err. */
int bench_http_post(const struct bench_endpoint *ep, const char *path, const char *body,
                    struct buf *out, char *err, size_t err_len);

/* The first numeric field called name in a grpc-gateway JSON text (uint64s
 * come as strings): true with its value in v, false when there is none. */
bool bench_json_u64(const char *json, const char *name, uint64_t *v);

#endif /* CAIRN_BENCH_UTIL_H */
