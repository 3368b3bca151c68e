/*
 * http: cairnd's HTTP gateway (docs/http.md). CivetWeb serves the JSON API
 * under /v1/, Server-Sent Events at /v1/watch, /health, /ready, /metrics and
 * the console on --http-addr, from its own worker threads.
 *
 * Nothing here touches raft, the key space or any other state of the loop
 * thread. Each worker turns its request into native requests sent through
 * libcairn to this node's own client address (as etcd's JSON gateway does
 * with gRPC), so the HTTP API inherits redirects to the leader, linearizable
 * reads, retries and resuming watches from the client library, and the loop
 * thread stays the only one that touches state.
 *
 * Each worker thread owns two clients, created when CivetWeb starts the
 * thread and freed when it ends it, so no client is ever shared between
 * threads and none outlives the thread that calls it:
 *
 *   - "leader" follows redirects: writes and linearizable reads;
 *   - "local" never learns a leader (it only sends stale reads and status
 *     requests, which any node answers), so it always asks this node.
 *
 * A watch stream opens a client of its own for its watch (http_watch.c).
 *
 * Lifecycle (the calls of main.c and server.c):
 *
 *   http_start --> RUNNING --http_stop_begin--> STOPPING --> STOPPED --http_free
 *
 * http_stop_begin() (from the loop thread, on SIGTERM) makes new requests
 * answer 503 at once, ends every watch stream within HTTP_STREAM_POLL_MS,
 * and runs CivetWeb's mg_stop() on a thread of its own: mg_stop() waits for
 * every worker, and a worker may be waiting for the loop thread to answer,
 * so the loop must keep running meanwhile. The server keeps its loop alive
 * until http_stopped() (server.c, DRAINING), and main() calls http_free()
 * after the loop ends.
 */
#ifndef CAIRN_HTTP_H
#define CAIRN_HTTP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cairn.h"
#include "config.h"
#include "json.h"

/* How often a watch stream looks for the end of the server or its client. */
#define HTTP_STREAM_POLL_MS 250
/* Per-call deadline of the gateway's clients: a request that needs the
 * leader rides out an election up to this long. */
#define HTTP_CALL_TIMEOUT_MS 5000
/* Stale reads and status are answered by this node alone. */
#define HTTP_LOCAL_TIMEOUT_MS 2000
/* Range reads: default and largest page. */
#define HTTP_RANGE_LIMIT_DEFAULT 100
#define HTTP_RANGE_LIMIT_MAX 1000

struct http;

/* Start serving on cfg->http_addr (nothing when it is empty: *out is then
 * NULL and 0 is returned). Returns 0, or -1 with a message for the operator
 * in errmsg. cfg must outlive the server. */
int http_start(const struct config *cfg, struct http **out, char *errmsg, size_t errmsg_len);

/* Begin stopping (see above); returns at once. Idempotent; NULL is a no-op. */
void http_stop_begin(struct http *h);

/* True once every worker has ended (or h is NULL). */
bool http_stopped(struct http *h);

/* Stop if not yet stopped, wait for it, free. NULL is a no-op. */
void http_free(struct http *h);

/*
 * For the handlers (http_api.c, http_watch.c): one request being answered.
 */

/* Routes, for the metrics' "route" label. */
#define HTTP_ROUTES(X)                   \
    X(HTTP_ROUTE_KV, "kv")               \
    X(HTTP_ROUTE_TXN, "txn")             \
    X(HTTP_ROUTE_HISTORY, "history")     \
    X(HTTP_ROUTE_DIFF, "diff")           \
    X(HTTP_ROUTE_ROLLBACK, "rollback")   \
    X(HTTP_ROUTE_COMPACT, "compact")     \
    X(HTTP_ROUTE_RETENTION, "retention") \
    X(HTTP_ROUTE_STATUS, "status")       \
    X(HTTP_ROUTE_CLUSTER, "cluster")     \
    X(HTTP_ROUTE_BACKUP, "backup")       \
    X(HTTP_ROUTE_MEMBERS, "members")     \
    X(HTTP_ROUTE_LEADER, "leader")       \
    X(HTTP_ROUTE_WATCH, "watch")         \
    X(HTTP_ROUTE_OPENAPI, "openapi")     \
    X(HTTP_ROUTE_HEALTH, "health")       \
    X(HTTP_ROUTE_READY, "ready")         \
    X(HTTP_ROUTE_METRICS, "metrics")     \
    X(HTTP_ROUTE_CONSOLE, "console")     \
    X(HTTP_ROUTE_OTHER, "other")

enum http_route {
#define HTTP__ROUTE_ENUM(name, label) name,
    HTTP_ROUTES(HTTP__ROUTE_ENUM)
#undef HTTP__ROUTE_ENUM
        HTTP_ROUTES_N
};

struct mg_connection;

struct http_request
{
    struct mg_connection *conn; /* borrowed */
    struct http *http;          /* borrowed */
    const struct config *cfg;   /* borrowed */
    cairn_client *leader;       /* borrowed from the worker: writes, linearizable reads */
    cairn_client *local;        /* borrowed from the worker: stale reads, status */
    const char *method;
    const char *path; /* raw (percent-encoded), without the query */
    size_t path_len;
    const char *query; /* raw, NULL when absent */
    enum http_route route;
    int status;         /* the status answered, 0 until then */
    const char *etag;   /* borrowed: sent with the answer when set (console assets) */
    struct arena arena; /* decoded parameters, the parsed body */
};

/* Percent-decode s[0..len) into the request's arena (NUL-terminated).
 * Returns 0, or -1 for a bad escape (or out of memory). */
int http_decode(struct http_request *r, const char *s, size_t len, const char **out,
                size_t *out_len);

/* The query parameter name, decoded: 1 when present, 0 when absent, -1 when
 * its encoding is bad (the request was answered 400). */
int http_query(struct http_request *r, const char *name, const char **value, size_t *len);
/* Typed forms: 0 when absent (the default is left in *v) or parsed, -1 after
 * answering 400 for a value that is not a number / true|false. */
int http_query_u64(struct http_request *r, const char *name, uint64_t *v);
int http_query_bool(struct http_request *r, const char *name, bool *v);

/* Read the body (at most max bytes) and parse it as a JSON object into the
 * arena. Returns 0, or -1 after answering 413 or 400. */
int http_read_json(struct http_request *r, size_t max, const struct json_value **out);

/* Answer with status and body (a JSON document) and count it. */
void http_reply(struct http_request *r, int status, const char *content_type, const char *body,
                size_t len);
void http_reply_json(struct http_request *r, int status, struct json_writer *w);
/* {"error": {"code": code, "message": ...}} */
void http_reply_error(struct http_request *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The error of a libcairn call: CAIRN_E* code to status and code, with the
 * client's message. */
void http_reply_cairn(struct http_request *r, int rv, const char *message);

/* The largest body a request may send: a value at the limit, base64-encoded,
 * plus room for the rest of a transaction. */
size_t http_body_max(const struct config *cfg);

/* A key-value as docs/http.md shows it; with_value false leaves the value
 * out (keys_only, history without values). */
void http_write_kv(struct json_writer *w, const struct cairn_kv *kv, bool with_value);
/* "value" and "encoding" members for bytes. */
void http_write_value(struct json_writer *w, const char *name, const char *data, size_t len);
/* Bytes from a member of a request object: a string, decoded per the member
 * enc_name ("utf8" by default, or "base64") into the arena. Absent: *data
 * NULL, and a 400 when required. Returns 0, or -1 after answering 400 (or
 * 500 when out of memory). */
int http_read_bytes(struct http_request *r, const struct json_value *obj, const char *name,
                    const char *enc_name, bool required, const char **data, size_t *len);

/* Handlers (http_api.c). */
void http_api_kv(struct http_request *r);
void http_api_txn(struct http_request *r);
void http_api_history(struct http_request *r);
void http_api_diff(struct http_request *r);
void http_api_rollback(struct http_request *r);
void http_api_compact(struct http_request *r);
void http_api_retention(struct http_request *r);
void http_api_status(struct http_request *r);
void http_api_cluster(struct http_request *r);
void http_api_health(struct http_request *r);
void http_api_ready(struct http_request *r);
void http_api_openapi(struct http_request *r);
/* GET /v1/backup, POST /v1/backup/snapshot, POST /v1/backup/verify:
 * cairn_backup() with "status", "save", "verify". */
void http_api_backup_status(struct http_request *r);
void http_api_backup_snapshot(struct http_request *r);
void http_api_backup_verify(struct http_request *r);
void http_api_backup_download(struct http_request *r);
/* GET /v1/members (the leader's list when this node follows one), POST
 * /v1/members {"id", "address"} (add); DELETE /v1/members/ID (remove), POST
 * /v1/members/ID {"role": "voter" | "standby"} (promote, demote); POST
 * /v1/leader/transfer?to=ID. */
void http_api_members(struct http_request *r);
void http_api_member(struct http_request *r);
void http_api_leader_transfer(struct http_request *r);

/* src/openapi.json, embedded at build time (src/embed_openapi.cmake): len
 * bytes, NUL-terminated. */
extern const unsigned char http_openapi_json[];
extern const size_t http_openapi_json_len;

/* The watch stream (http_watch.c). */
void http_watch_serve(struct http_request *r);

/* Start a streamed answer: 200, the content type, chunked transfer; the
 * body follows with mg_send_chunk() and ends with an empty chunk. */
void http_stream_begin(struct http_request *r, const char *content_type);
/* Start a 200 answer of length bytes to be saved as filename (a name of
 * letters, digits, '-', '_' and '.'); the body follows with mg_write. */
void http_download_begin(struct http_request *r, const char *content_type, uint64_t length,
                         const char *filename);

/* State the handlers share with the server (http.c). */
bool http_stopping(const struct http *h);
/* This node's client address, as the gateway's clients dial it. */
const char *http_client_endpoint(const struct http *h);
/* Take a watch stream slot: false when --http-watch-streams-max are open. */
bool http_watch_slot_take(struct http *h);
void http_watch_slot_release(struct http *h);

#endif /* CAIRN_HTTP_H */
