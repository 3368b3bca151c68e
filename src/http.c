/*
 * http: the CivetWeb server, routing, the request context, the error table
 * and the HTTP metrics. See http.h for the threading model and lifecycle.
 *
 * CivetWeb is told not to decode URLs (decode_url=no): a key travels
 * percent-encoded in the path and may hold any byte, "%2F" and "%00"
 * included, so the handlers decode the raw path themselves.
 */
#include "http.h"
#include "http_status.h"

#include <civetweb.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#ifdef CAIRN_HAVE_CONSOLE
#include "console_assets.h"
#endif

/* Statuses counted per route in cairn_http_requests_total. */
static const int counted_codes[] = {200, 304, 400, 404, 405, 409, 410, 413, 429, 500, 503};
#define CODES_N (sizeof(counted_codes) / sizeof(counted_codes[0]))

static const char *const route_labels[] = {
#define HTTP__ROUTE_LABEL(name, label) label,
    HTTP_ROUTES(HTTP__ROUTE_LABEL)
#undef HTTP__ROUTE_LABEL
};

enum http_state { HTTP_RUNNING, HTTP_STOPPING, HTTP_STOPPED };

struct http
{
    const struct config *cfg; /* borrowed */
    struct mg_context *ctx;   /* owned until stopped */
    char client_endpoint[CONFIG_STR_MAX];
    atomic_int state;
    pthread_t stopper;
    bool stopper_started;
    pthread_mutex_t mu; /* guards stopper_started */
    /* Metrics: plain atomics, any worker updates them. */
    atomic_uint_fast64_t requests[HTTP_ROUTES_N][CODES_N + 1]; /* last: other codes */
    atomic_int workers_busy;
    atomic_int watch_streams;
    unsigned workers;
};

/* A worker thread's clients (see http.h). */
struct http_worker
{
    cairn_client *leader; /* owned */
    cairn_client *local;  /* owned */
};

bool http_stopping(const struct http *h)
{
    return atomic_load(&((struct http *)h)->state) != HTTP_RUNNING;
}

const char *http_client_endpoint(const struct http *h)
{
    return h->client_endpoint;
}

bool http_watch_slot_take(struct http *h)
{
    int n = atomic_load(&h->watch_streams);
    do {
        if (n >= (int)h->cfg->http_watch_streams_max) {
            return false;
        }
    } while (!atomic_compare_exchange_weak(&h->watch_streams, &n, n + 1));
    return true;
}

void http_watch_slot_release(struct http *h)
{
    atomic_fetch_sub(&h->watch_streams, 1);
}

size_t http_body_max(const struct config *cfg)
{
    /* base64 grows a value by 4/3; JSON escapes of a UTF-8 value can grow
     * it up to 6 times (\u0001), but the request frame limit bounds what
     * the node takes anyway: allow the frame limit in base64, plus room. */
    return (size_t)cfg->max_request_bytes / 3 * 4 + 64 * 1024;
}

/* Decoding */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* form: '+' means a space (query strings only). */
static int decode(struct http_request *r, const char *s, size_t len, bool form, const char **out,
                  size_t *out_len)
{
    char *o = arena_alloc(&r->arena, len + 1);
    size_t n = 0;
    size_t i;
    if (o == NULL) {
        return -1;
    }
    for (i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi;
            int lo;
            if (i + 2 >= len) {
                return -1;
            }
            hi = hex_value(s[i + 1]);
            lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            o[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (s[i] == '+' && form) {
            o[n++] = ' ';
        } else {
            o[n++] = s[i];
        }
    }
    o[n] = '\0';
    *out = o;
    *out_len = n;
    return 0;
}

int http_decode(struct http_request *r, const char *s, size_t len, const char **out,
                size_t *out_len)
{
    return decode(r, s, len, false, out, out_len);
}

int http_query(struct http_request *r, const char *name, const char **value, size_t *len)
{
    const char *p = r->query;
    size_t name_len = strlen(name);
    while (p != NULL && *p != '\0') {
        const char *amp = strchr(p, '&');
        const char *end = amp != NULL ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *key_end = eq != NULL ? eq : end;
        if ((size_t)(key_end - p) == name_len && memcmp(p, name, name_len) == 0) {
            const char *v = eq != NULL ? eq + 1 : end;
            if (decode(r, v, (size_t)(end - v), true, value, len) != 0) {
                http_reply_error(r, 400, "bad_request", "query parameter %s: bad %%-encoding",
                                 name);
                return -1;
            }
            return 1;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    return 0;
}

int http_query_u64(struct http_request *r, const char *name, uint64_t *v)
{
    const char *s;
    size_t len;
    char *end;
    unsigned long long n;
    int rv = http_query(r, name, &s, &len);
    if (rv <= 0) {
        return rv;
    }
    errno = 0;
    n = strtoull(s, &end, 10);
    if (len == 0 || s[0] < '0' || s[0] > '9' || errno != 0 || *end != '\0' ||
        (size_t)(end - s) != len) {
        http_reply_error(r, 400, "bad_request", "query parameter %s wants a non-negative integer",
                         name);
        return -1;
    }
    *v = n;
    return 0;
}

int http_query_bool(struct http_request *r, const char *name, bool *v)
{
    const char *s;
    size_t len;
    int rv = http_query(r, name, &s, &len);
    if (rv <= 0) {
        return rv;
    }
    /* "?prefix" alone means true, as in etcd's gateway. */
    if (len == 0 || strcmp(s, "true") == 0 || strcmp(s, "1") == 0) {
        *v = true;
        return 0;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0) {
        *v = false;
        return 0;
    }
    http_reply_error(r, 400, "bad_request", "query parameter %s wants true or false", name);
    return -1;
}

int http_read_json(struct http_request *r, size_t max, const struct json_value **out)
{
    const struct mg_request_info *ri = mg_get_request_info(r->conn);
    struct json_value *v;
    char errmsg[256];
    char *body;
    size_t len = 0;
    if (ri->content_length > (long long)max) {
        http_reply_error(r, 413, "too_large", "request body of %lld bytes exceeds %zu",
                         ri->content_length, max);
        return -1;
    }
    /* The announced length when there is one (the common case), else room
     * for the most a body may be. */
    body = arena_alloc(&r->arena, (ri->content_length >= 0 ? (size_t)ri->content_length : max) + 1);
    if (body == NULL) {
        http_reply_error(r, 500, "internal", "out of memory");
        return -1;
    }
    for (;;) {
        size_t room = (ri->content_length >= 0 ? (size_t)ri->content_length : max) + 1 - len;
        int n = room > 0 ? mg_read(r->conn, body + len, room) : 0;
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        if (len > max) {
            http_reply_error(r, 413, "too_large", "request body exceeds %zu bytes", max);
            return -1;
        }
    }
    if (json_parse(body, len, &r->arena, &v, errmsg, sizeof(errmsg)) != 0) {
        http_reply_error(r, 400, "bad_request", "%s", errmsg);
        return -1;
    }
    if (v->type != JSON_OBJECT) {
        http_reply_error(r, 400, "bad_request", "the body must be a JSON object");
        return -1;
    }
    *out = v;
    return 0;
}

/* Replies */

static void count(struct http *h, enum http_route route, int status)
{
    size_t i;
    for (i = 0; i < CODES_N; i++) {
        if (counted_codes[i] == status) {
            break;
        }
    }
    atomic_fetch_add(&h->requests[route][i], 1);
}

static void reply_with(struct http_request *r, int status, const char *content_type,
                       const char *body, size_t len, const char *allow)
{
    char length[32];
    if (r->status != 0) {
        return; /* answered already */
    }
    r->status = status;
    count(r->http, r->route, status);
    snprintf(length, sizeof(length), "%zu", len);
    mg_response_header_start(r->conn, status);
    mg_response_header_add(r->conn, "Content-Type", content_type, -1);
    mg_response_header_add(r->conn, "Content-Length", length, -1);
    mg_response_header_add(r->conn, "Cache-Control", r->etag != NULL ? "no-cache" : "no-store", -1);
    if (allow != NULL) {
        mg_response_header_add(r->conn, "Allow", allow, -1);
    }
    if (r->etag != NULL) {
        mg_response_header_add(r->conn, "ETag", r->etag, -1);
    }
    mg_response_header_send(r->conn);
    if (len > 0 && strcmp(r->method, "HEAD") != 0) {
        mg_write(r->conn, body, len);
    }
}

void http_stream_begin(struct http_request *r, const char *content_type)
{
    r->status = 200;
    count(r->http, r->route, 200);
    mg_response_header_start(r->conn, 200);
    mg_response_header_add(r->conn, "Content-Type", content_type, -1);
    mg_response_header_add(r->conn, "Cache-Control", "no-store", -1);
    mg_response_header_add(r->conn, "Transfer-Encoding", "chunked", -1);
    /* Proxies must not hold events back to batch them. */
    mg_response_header_add(r->conn, "X-Accel-Buffering", "no", -1);
    mg_response_header_send(r->conn);
}

void http_download_begin(struct http_request *r, const char *content_type, uint64_t length,
                         const char *filename)
{
    char len[32];
    char disposition[300];
    r->status = 200;
    count(r->http, r->route, 200);
    snprintf(len, sizeof(len), "%llu", (unsigned long long)length);
    snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s\"", filename);
    mg_response_header_start(r->conn, 200);
    mg_response_header_add(r->conn, "Content-Type", content_type, -1);
    mg_response_header_add(r->conn, "Content-Length", len, -1);
    mg_response_header_add(r->conn, "Content-Disposition", disposition, -1);
    mg_response_header_add(r->conn, "Cache-Control", "no-store", -1);
    mg_response_header_send(r->conn);
}

void http_reply(struct http_request *r, int status, const char *content_type, const char *body,
                size_t len)
{
    reply_with(r, status, content_type, body, len, NULL);
}

void http_reply_json(struct http_request *r, int status, struct json_writer *w)
{
    if (json_writer_error(w) != 0) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    buf_append(w->out, "\n", 1);
    http_reply(r, status, "application/json", w->out->data, w->out->len);
}

static void reply_error_v(struct http_request *r, int status, const char *code, const char *allow,
                          const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static void reply_error_v(struct http_request *r, int status, const char *code, const char *allow,
                          const char *fmt, va_list ap)
{
    char msg[1024];
    struct buf b;
    struct json_writer w;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    buf_init(&b);
    json_writer_init(&w, &b);
    json_object_begin(&w);
    json_key(&w, "error");
    json_object_begin(&w);
    json_key(&w, "code");
    json_cstring(&w, code);
    json_key(&w, "message");
    json_cstring(&w, msg);
    json_object_end(&w);
    json_object_end(&w);
    buf_append(&b, "\n", 1);
    if (json_writer_error(&w) == 0) {
        reply_with(r, status, "application/json", b.data, b.len, allow);
    } else {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}\n";
        reply_with(r, 500, "application/json", oom, sizeof(oom) - 1, NULL);
    }
    buf_free(&b);
}

void http_reply_error(struct http_request *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(r, status, code, NULL, fmt, ap);
    va_end(ap);
}

static void reply_error_allow(struct http_request *r, const char *allow, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error_allow(struct http_request *r, const char *allow, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(r, 405, "method_not_allowed", allow, fmt, ap);
    va_end(ap);
}

static void reply_405(struct http_request *r, const char *allow)
{
    reply_error_allow(r, allow, "%s is not allowed here (allowed: %s)", r->method, allow);
}

/* The error table of docs/http.md (http_status.c). */
void http_reply_cairn(struct http_request *r, int rv, const char *message)
{
    int status;
    const char *code;
    http_status_of(rv, &status, &code);
    http_reply_error(r, status, code, "%s",
                     message != NULL && message[0] != '\0' ? message : cairn_strerror(rv));
}

/* Key-values */

void http_write_value(struct json_writer *w, const char *name, const char *data, size_t len)
{
    json_key(w, name);
    if (json_utf8_valid(data, len)) {
        json_string(w, data, len);
        json_key(w, "encoding");
        json_cstring(w, "utf8");
    } else {
        json_base64(w, data, len);
        json_key(w, "encoding");
        json_cstring(w, "base64");
    }
}

void http_write_kv(struct json_writer *w, const struct cairn_kv *kv, bool with_value)
{
    json_object_begin(w);
    json_key(w, "key");
    if (json_utf8_valid(kv->key, kv->key_len)) {
        json_string(w, kv->key, kv->key_len);
    } else {
        json_base64(w, kv->key, kv->key_len);
        json_key(w, "key_encoding");
        json_cstring(w, "base64");
    }
    if (with_value && !kv->deleted) {
        http_write_value(w, "value", kv->value, kv->value_len);
    }
    json_key(w, "create_revision");
    json_uint(w, kv->create_revision);
    json_key(w, "mod_revision");
    json_uint(w, kv->mod_revision);
    json_key(w, "version");
    json_uint(w, kv->version);
    json_key(w, "time_ms");
    json_int(w, kv->time_ms);
    json_key(w, "size");
    json_uint(w, kv->value_len);
    if (kv->deleted) {
        json_key(w, "deleted");
        json_bool(w, true);
    }
    json_object_end(w);
}

int http_read_bytes(struct http_request *r, const struct json_value *obj, const char *name,
                    const char *enc_name, bool required, const char **data, size_t *len)
{
    const struct json_value *v = json_get(obj, name);
    const struct json_value *enc = json_get(obj, enc_name);
    *data = NULL;
    *len = 0;
    if (v == NULL && !required) {
        return 0;
    }
    if (v == NULL || v->type != JSON_STRING) {
        http_reply_error(r, 400, "bad_request", "\"%s\" must be a string", name);
        return -1;
    }
    if (enc != NULL && (enc->type != JSON_STRING ||
                        (strcmp(enc->str, "utf8") != 0 && strcmp(enc->str, "base64") != 0))) {
        http_reply_error(r, 400, "bad_request", "\"%s\" must be \"utf8\" or \"base64\"", enc_name);
        return -1;
    }
    if (enc != NULL && strcmp(enc->str, "base64") == 0) {
        char *out = arena_alloc(&r->arena, json_base64_decoded_max(v->len) + 1);
        long long n;
        if (out == NULL) {
            http_reply_error(r, 500, "internal", "out of memory");
            return -1;
        }
        n = json_base64_decode(v->str, v->len, out);
        if (n < 0) {
            http_reply_error(r, 400, "bad_request", "\"%s\" is not valid base64", name);
            return -1;
        }
        *data = out;
        *len = (size_t)n;
        return 0;
    }
    *data = v->str;
    *len = v->len;
    return 0;
}

/* Metrics */

static void http_metrics(struct http_request *r)
{
    struct buf b;
    char line[256];
    size_t i;
    size_t j;
    buf_init(&b);
#define APPEND(...)                                                                        \
    do {                                                                                   \
        int n__ = snprintf(line, sizeof(line), __VA_ARGS__);                               \
        buf_append(&b, line, (size_t)n__ < sizeof(line) ? (size_t)n__ : sizeof(line) - 1); \
    } while (0)
    APPEND("# HELP cairn_http_requests_total HTTP requests answered, by route and status.\n");
    APPEND("# TYPE cairn_http_requests_total counter\n");
    for (i = 0; i < HTTP_ROUTES_N; i++) {
        for (j = 0; j <= CODES_N; j++) {
            uint64_t n = atomic_load(&r->http->requests[i][j]);
            if (n == 0) {
                continue;
            }
            if (j < CODES_N) {
                APPEND("cairn_http_requests_total{route=\"%s\",code=\"%d\"} %" PRIu64 "\n",
                       route_labels[i], counted_codes[j], n);
            } else {
                APPEND("cairn_http_requests_total{route=\"%s\",code=\"other\"} %" PRIu64 "\n",
                       route_labels[i], n);
            }
        }
    }
    APPEND("# HELP cairn_http_workers_busy HTTP worker threads serving a request now.\n");
    APPEND("# TYPE cairn_http_workers_busy gauge\n");
    /* This request's own worker is busy too. */
    APPEND("cairn_http_workers_busy %d\n", atomic_load(&r->http->workers_busy));
    APPEND("# HELP cairn_http_workers HTTP worker threads (--http-threads).\n");
    APPEND("# TYPE cairn_http_workers gauge\n");
    APPEND("cairn_http_workers %u\n", r->http->workers);
    APPEND("# HELP cairn_http_watch_streams Open HTTP watch streams (SSE).\n");
    APPEND("# TYPE cairn_http_watch_streams gauge\n");
    APPEND("cairn_http_watch_streams %d\n", atomic_load(&r->http->watch_streams));
    /* Then the node's own series (raft, requests, watches), asked of the
     * loop thread like any request. If it does not answer, the gateway's
     * series still go out, with a comment that says why the rest is
     * missing (a scrape then sees them absent rather than frozen). */
    {
        char *text = NULL;
        size_t len = 0;
        int rv = cairn_metrics_text(r->local, NULL, &text, &len);
        if (rv == 0) {
            buf_append(&b, text, len);
        } else {
            APPEND("# node metrics unavailable: %s\n", cairn_errmsg(r->local));
        }
        free(text);
    }
#undef APPEND
    http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    buf_free(&b);
}

/* The console */

static void http_console(struct http_request *r)
{
#ifdef CAIRN_HAVE_CONSOLE
    const char *path;
    size_t len;
    const struct console_asset *a;
    if (http_decode(r, r->path, r->path_len, &path, &len) != 0) {
        http_reply_error(r, 400, "bad_request", "bad %%-encoding in the path");
        return;
    }
    a = console_asset_find(path);
    if (a != NULL) {
        const char *inm = mg_get_header(r->conn, "If-None-Match");
        if (inm != NULL && a->etag != NULL && strcmp(inm, a->etag) == 0) {
            r->status = 304;
            count(r->http, r->route, 304);
            mg_response_header_start(r->conn, 304);
            mg_response_header_add(r->conn, "ETag", a->etag, -1);
            mg_response_header_send(r->conn);
            return;
        }
        r->etag = a->etag;
        http_reply(r, 200, a->content_type, (const char *)a->data, a->len);
        return;
    }
#endif
    http_reply_error(r, 404, "not_found", "no such route");
}

/* Routing */

/* The routes. A path ending in '/' is a prefix (the rest of the request's
 * path is a key, a prefix or a file), any other is matched whole; no two
 * overlap, so the order does not matter. A request for a route with a method
 * it does not list is answered 405 with an Allow header made from the list
 * (HEAD, which goes with GET, left out).
 *
 * tests/openapi reads this table to check that src/openapi.json documents
 * every route and method: keep one entry a line, in this form. */
enum {
    M_GET = 1 << 0,
    M_HEAD = 1 << 1,
    M_PUT = 1 << 2,
    M_POST = 1 << 3,
    M_DELETE = 1 << 4,
};

struct route
{
    const char *path;
    enum http_route route;
    unsigned methods;
    void (*handler)(struct http_request *r);
};

static const struct route routes[] = {
    {"/v1/kv/", HTTP_ROUTE_KV, M_GET | M_HEAD | M_PUT | M_DELETE, http_api_kv},
    {"/v1/kv", HTTP_ROUTE_KV, M_GET | M_HEAD | M_DELETE, http_api_kv},
    {"/v1/txn", HTTP_ROUTE_TXN, M_POST, http_api_txn},
    {"/v1/history/", HTTP_ROUTE_HISTORY, M_GET | M_HEAD, http_api_history},
    {"/v1/diff/", HTTP_ROUTE_DIFF, M_GET | M_HEAD, http_api_diff},
    {"/v1/rollback/", HTTP_ROUTE_ROLLBACK, M_POST, http_api_rollback},
    {"/v1/compact", HTTP_ROUTE_COMPACT, M_POST, http_api_compact},
    {"/v1/retention", HTTP_ROUTE_RETENTION, M_GET | M_HEAD, http_api_retention},
    {"/v1/retention/", HTTP_ROUTE_RETENTION, M_PUT | M_DELETE, http_api_retention},
    {"/v1/status", HTTP_ROUTE_STATUS, M_GET | M_HEAD, http_api_status},
    {"/v1/cluster", HTTP_ROUTE_CLUSTER, M_GET | M_HEAD, http_api_cluster},
    {"/v1/backup", HTTP_ROUTE_BACKUP, M_GET | M_HEAD, http_api_backup_status},
    {"/v1/backup/snapshot", HTTP_ROUTE_BACKUP, M_POST, http_api_backup_snapshot},
    {"/v1/backup/verify", HTTP_ROUTE_BACKUP, M_POST, http_api_backup_verify},
    {"/v1/backup/download", HTTP_ROUTE_BACKUP, M_GET, http_api_backup_download},
    {"/v1/members", HTTP_ROUTE_MEMBERS, M_GET | M_HEAD | M_POST, http_api_members},
    {"/v1/members/", HTTP_ROUTE_MEMBERS, M_POST | M_DELETE, http_api_member},
    {"/v1/leader/transfer", HTTP_ROUTE_LEADER, M_POST, http_api_leader_transfer},
    {"/v1/watch", HTTP_ROUTE_WATCH, M_GET, http_watch_serve},
    {"/v1/openapi.json", HTTP_ROUTE_OPENAPI, M_GET | M_HEAD, http_api_openapi},
    {"/health", HTTP_ROUTE_HEALTH, M_GET | M_HEAD, http_api_health},
    {"/ready", HTTP_ROUTE_READY, M_GET | M_HEAD, http_api_ready},
    {"/metrics", HTTP_ROUTE_METRICS, M_GET | M_HEAD, http_metrics},
    {"/", HTTP_ROUTE_CONSOLE, M_GET | M_HEAD, http_console},
    {"/index.html", HTTP_ROUTE_CONSOLE, M_GET | M_HEAD, http_console},
    {"/console/", HTTP_ROUTE_CONSOLE, M_GET | M_HEAD, http_console},
};

static const char *const method_names[] = {"GET", "HEAD", "PUT", "POST", "DELETE"};
#define METHODS_N (sizeof(method_names) / sizeof(method_names[0]))

static bool route_matches(const struct route *rt, const struct http_request *r)
{
    size_t n = strlen(rt->path);
    if (n > 1 && rt->path[n - 1] == '/') {
        return r->path_len >= n && memcmp(r->path, rt->path, n) == 0;
    }
    return r->path_len == n && memcmp(r->path, rt->path, n) == 0;
}

static unsigned method_bit(const char *method)
{
    size_t i;
    for (i = 0; i < METHODS_N; i++) {
        if (strcmp(method, method_names[i]) == 0) {
            return 1u << i;
        }
    }
    return 0;
}

static void dispatch(struct http_request *r)
{
    size_t i;
    for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const struct route *rt = &routes[i];
        char allow[64] = "";
        size_t m;
        if (!route_matches(rt, r)) {
            continue;
        }
        r->route = rt->route;
        if ((rt->methods & method_bit(r->method)) != 0) {
            rt->handler(r);
            return;
        }
        for (m = 0; m < METHODS_N; m++) {
            if ((rt->methods & (1u << m)) != 0 && (1u << m) != M_HEAD) {
                size_t len = strlen(allow);
                snprintf(allow + len, sizeof(allow) - len, "%s%s", len > 0 ? ", " : "",
                         method_names[m]);
            }
        }
        reply_405(r, allow);
        return;
    }
    r->route = HTTP_ROUTE_OTHER;
    http_reply_error(r, 404, "not_found", "no such route");
}

static int request_handler(struct mg_connection *conn, void *cbdata)
{
    struct http *h = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct http_worker *worker = mg_get_thread_pointer(conn);
    struct http_request r;
    const char *raw = ri->local_uri_raw != NULL ? ri->local_uri_raw : ri->local_uri;
    const char *q;
    atomic_fetch_add(&h->workers_busy, 1);
    memset(&r, 0, sizeof(r));
    r.conn = conn;
    r.http = h;
    r.cfg = h->cfg;
    r.method = ri->request_method;
    r.path = raw != NULL ? raw : "";
    /* local_uri_raw excludes the query in CivetWeb 1.15; be safe anyway. */
    q = strchr(r.path, '?');
    r.path_len = q != NULL ? (size_t)(q - r.path) : strlen(r.path);
    r.query = ri->query_string;
    r.route = HTTP_ROUTE_OTHER;
    arena_init(&r.arena);
    if (worker == NULL || worker->leader == NULL || worker->local == NULL) {
        http_reply_error(&r, 500, "internal", "this worker has no client (out of memory)");
    } else if (http_stopping(h)) {
        http_reply_error(&r, 503, "unavailable", "node is shutting down");
    } else {
        r.leader = worker->leader;
        r.local = worker->local;
        dispatch(&r);
    }
    if (r.status == 0) {
        /* A handler that forgot to answer is a bug; say so rather than hang. */
        http_reply_error(&r, 500, "internal", "no answer");
    }
    arena_free(&r.arena);
    atomic_fetch_sub(&h->workers_busy, 1);
    return r.status;
}

/* Worker threads */

static void *init_thread_cb(const struct mg_context *ctx, int thread_type)
{
    struct http *h = mg_get_user_data(ctx);
    struct http_worker *w;
    struct cairn_options leader_opts = {HTTP_CALL_TIMEOUT_MS, 1000, 25, 500, false};
    struct cairn_options local_opts = {HTTP_LOCAL_TIMEOUT_MS, 1000, 25, 250, false};
    if (thread_type != 1) {
        return NULL; /* the master and timer threads serve no request */
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    w->leader = cairn_client_new(h->client_endpoint, &leader_opts, NULL);
    w->local = cairn_client_new(h->client_endpoint, &local_opts, NULL);
    return w;
}

static void exit_thread_cb(const struct mg_context *ctx, int thread_type, void *thread_pointer)
{
    struct http_worker *w = thread_pointer;
    (void)ctx;
    (void)thread_type;
    if (w == NULL) {
        return;
    }
    if (w->leader != NULL) {
        cairn_client_free(w->leader);
    }
    if (w->local != NULL) {
        cairn_client_free(w->local);
    }
    free(w);
}

/* CivetWeb reports why mg_start() failed only through this callback, on
 * the thread that called it. */
static __thread char start_error[256];

static int log_message_cb(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    if (start_error[0] == '\0') {
        snprintf(start_error, sizeof(start_error), "%s", message); /* the first says why */
    }
    log_warn("http: %s", message);
    return 1;
}

/* Lifecycle */

/* The address this node's clients connect to, as the gateway dials it: a
 * wildcard listen address is reached on loopback. */
static void client_endpoint(const char *client_addr, char *out, size_t len)
{
    if (strncmp(client_addr, "0.0.0.0:", 8) == 0) {
        snprintf(out, len, "127.0.0.1%s", client_addr + 7);
    } else {
        snprintf(out, len, "%s", client_addr);
    }
}

int http_start(const struct config *cfg, struct http **out, char *errmsg, size_t errmsg_len)
{
    struct http *h;
    struct mg_callbacks callbacks;
    char threads[16];
    const char *options[32];
    size_t n = 0;
    *out = NULL;
    if (cfg->http_addr[0] == '\0') {
        return 0;
    }
    if (strchr(cfg->http_addr, ':') == NULL) {
        snprintf(errmsg, errmsg_len, "--http-addr \"%s\" is not HOST:PORT", cfg->http_addr);
        return -1;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(errmsg, errmsg_len, "out of memory");
        return -1;
    }
    h->cfg = cfg;
    h->workers = (unsigned)cfg->http_threads;
    atomic_init(&h->state, HTTP_RUNNING);
    atomic_init(&h->workers_busy, 0);
    atomic_init(&h->watch_streams, 0);
    pthread_mutex_init(&h->mu, NULL);
    client_endpoint(cfg->client_addr, h->client_endpoint, sizeof(h->client_endpoint));
    snprintf(threads, sizeof(threads), "%llu", (unsigned long long)cfg->http_threads);
    options[n++] = "listening_ports";
    options[n++] = cfg->http_addr;
    options[n++] = "num_threads";
    options[n++] = threads;
    options[n++] = "tcp_nodelay";
    options[n++] = "1"; /* DEPS.md: without it, ~44 ms per response */
    options[n++] = "enable_keep_alive";
    options[n++] = "yes";
    options[n++] = "decode_url";
    options[n++] = "no"; /* keys are percent-encoded bytes: we decode */
    /* A key at --max-key-bytes, percent-encoded, must fit the request line
     * (CivetWeb's default for the whole head is 16 KiB). */
    options[n++] = "max_request_size";
    options[n++] = "65536";
    options[n++] = "request_timeout_ms";
    options[n++] = "30000";
    options[n++] = "keep_alive_timeout_ms";
    options[n++] = "5000";
    options[n++] = NULL;
    memset(&callbacks, 0, sizeof(callbacks));
    callbacks.init_thread = init_thread_cb;
    callbacks.exit_thread = exit_thread_cb;
    callbacks.log_message = log_message_cb;
    mg_init_library(0);
    start_error[0] = '\0';
    h->ctx = mg_start(&callbacks, h, options);
    if (h->ctx == NULL) {
        snprintf(errmsg, errmsg_len, "cannot serve HTTP on %s: %s%s", cfg->http_addr,
                 start_error[0] != '\0' ? start_error : "CivetWeb failed to start",
                 strstr(start_error, "in use") != NULL ? " (is another cairnd running?)" : "");
        pthread_mutex_destroy(&h->mu);
        free(h);
        mg_exit_library();
        return -1;
    }
    mg_set_request_handler(h->ctx, "/", request_handler, h);
    log_info("serving HTTP on http://%s", cfg->http_addr);
    *out = h;
    return 0;
}

static void *stopper_main(void *arg)
{
    struct http *h = arg;
    int waited_ms = 0;
    /* Let the watch streams end their responses properly first (each looks
     * at the state every HTTP_STREAM_POLL_MS): once mg_stop() begins,
     * CivetWeb refuses every write. */
    while (atomic_load(&h->watch_streams) > 0 && waited_ms < 4 * HTTP_STREAM_POLL_MS) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        waited_ms += 10;
    }
    log_trace("http: stopping CivetWeb");
    mg_stop(h->ctx);
    log_trace("http: stopped");
    atomic_store(&h->state, HTTP_STOPPED);
    return NULL;
}

void http_stop_begin(struct http *h)
{
    int running = HTTP_RUNNING;
    if (h == NULL) {
        return;
    }
    if (!atomic_compare_exchange_strong(&h->state, &running, HTTP_STOPPING)) {
        return;
    }
    pthread_mutex_lock(&h->mu);
    if (pthread_create(&h->stopper, NULL, stopper_main, h) == 0) {
        h->stopper_started = true;
    } else {
        /* No thread: stop here (http_free will). */
        log_warn("http: cannot start the stopping thread; stopping at exit");
    }
    pthread_mutex_unlock(&h->mu);
}

bool http_stopped(struct http *h)
{
    bool started;
    if (h == NULL) {
        return true;
    }
    pthread_mutex_lock(&h->mu);
    started = h->stopper_started;
    pthread_mutex_unlock(&h->mu);
    return !started || atomic_load(&h->state) == HTTP_STOPPED;
}

void http_free(struct http *h)
{
    if (h == NULL) {
        return;
    }
    http_stop_begin(h);
    pthread_mutex_lock(&h->mu);
    if (h->stopper_started) {
        pthread_join(h->stopper, NULL);
        h->stopper_started = false;
    } else if (atomic_load(&h->state) != HTTP_STOPPED) {
        mg_stop(h->ctx);
        atomic_store(&h->state, HTTP_STOPPED);
    }
    pthread_mutex_unlock(&h->mu);
    pthread_mutex_destroy(&h->mu);
    mg_exit_library();
    free(h);
}
