/*
 * http_watch: GET /v1/watch as Server-Sent Events.
 *
 * A stream is a native watch (cairn_watch) on a client of its own, connected
 * to this node, consumed from its queue on the worker thread and written out
 * as events. So it has the native watch's guarantees: every revision once,
 * in order, one transaction's events together, resumes
 * inside libcairn if the connection to the node breaks, and a snapshot when
 * the history it needs is gone. An id is the revision up to which everything
 * has been delivered, so a client that reconnects with Last-Event-ID: R
 * resumes at R + 1 and misses nothing. Hence only the last event of a
 * revision carries its id: a stream cut inside a transaction leaves the
 * client (an EventSource keeps the last id it saw) at the revision before,
 * and the whole transaction comes again.
 *
 * Each stream holds a CivetWeb worker until its client goes, so streams are
 * capped by --http-watch-streams-max; beyond it the answer is 503
 * watch_streams_exhausted. A stream ends when its client goes (the next
 * write fails: progress events every progress_ms make sure one comes), when
 * the server stops (checked every HTTP_STREAM_POLL_MS), or when the watch is
 * canceled (an "error" event says why).
 */
#include <civetweb.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* Progress interval when the request names none: often enough that a
 * client that went away is noticed within a couple of seconds. */
#define WATCH_PROGRESS_MS_DEFAULT 1000

/* Begins a message; id 0: none (the client keeps the last one it had). */
static void event_begin(struct buf *b, uint64_t id, const char *type)
{
    char head[96];
    int n = id != 0 ? snprintf(head, sizeof(head), "id: %" PRIu64 "\nevent: %s\ndata: ", id, type)
                    : snprintf(head, sizeof(head), "event: %s\ndata: ", type);
    buf_append(b, head, (size_t)n);
}

/* One SSE message per event; the last event of a revision carries its id. */
static void format_update(struct buf *b, const struct cairn_watch_update *u)
{
    struct json_writer w;
    size_t i;
    switch (u->kind) {
        case CAIRN_WATCH_EVENTS:
            for (i = 0; i < u->n_events; i++) {
                const struct cairn_event *e = &u->events[i];
                bool last =
                    i + 1 == u->n_events || u->events[i + 1].kv.mod_revision != e->kv.mod_revision;
                event_begin(b, last ? e->kv.mod_revision : 0,
                            e->type == CAIRN_EVENT_DELETE ? "delete" : "put");
                json_writer_init(&w, b);
                json_object_begin(&w);
                json_key(&w, "revision");
                json_uint(&w, e->kv.mod_revision);
                json_key(&w, "kv");
                http_write_kv(&w, &e->kv, true);
                json_key(&w, "prev_kv");
                if (e->prev_kv != NULL) {
                    http_write_kv(&w, e->prev_kv, true);
                } else {
                    json_null(&w);
                }
                json_object_end(&w);
                buf_append(b, "\n\n", 2);
            }
            break;
        case CAIRN_WATCH_SNAPSHOT:
            event_begin(b, u->revision, "snapshot");
            json_writer_init(&w, b);
            json_object_begin(&w);
            json_key(&w, "revision");
            json_uint(&w, u->revision);
            json_key(&w, "kvs");
            json_array_begin(&w);
            for (i = 0; i < u->n_kvs; i++) {
                http_write_kv(&w, &u->kvs[i], true);
            }
            json_array_end(&w);
            json_object_end(&w);
            buf_append(b, "\n\n", 2);
            break;
        case CAIRN_WATCH_PROGRESS:
            event_begin(b, u->revision, "progress");
            json_writer_init(&w, b);
            json_object_begin(&w);
            json_key(&w, "revision");
            json_uint(&w, u->revision);
            json_object_end(&w);
            buf_append(b, "\n\n", 2);
            break;
        case CAIRN_WATCH_CANCELED:
            /* No id: the client resumes from the last one it saw. */
            buf_append(b, "event: error\ndata: ", 19);
            json_writer_init(&w, b);
            json_object_begin(&w);
            json_key(&w, "error");
            json_object_begin(&w);
            json_key(&w, "code");
            json_cstring(&w, cairn_errname(u->error));
            json_key(&w, "message");
            json_cstring(&w, u->message != NULL ? u->message : "");
            json_object_end(&w);
            json_object_end(&w);
            buf_append(b, "\n\n", 2);
            break;
    }
}

static int parse_last_event_id(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (s == NULL || s[0] < '0' || s[0] > '9') {
        return -1;
    }
    v = strtoull(s, &end, 10);
    if (*end != '\0' || v == UINT64_MAX) {
        return -1;
    }
    *out = v;
    return 0;
}

void http_watch_serve(struct http_request *r)
{
    const char *key = NULL;
    size_t key_len = 0;
    const char *prefix = NULL;
    size_t prefix_len = 0;
    const char *last_id;
    struct cairn_watch_opts o;
    struct cairn_options copts = {HTTP_CALL_TIMEOUT_MS, 1000, 25, 1000, false};
    cairn_client *c = NULL;
    cairn_watcher *wt = NULL;
    uint64_t rev = 0;
    uint64_t progress_ms = WATCH_PROGRESS_MS_DEFAULT;
    bool prev_kv = false;
    int has_key;
    int has_prefix;
    int err = 0;
    int rv;
    struct buf b;

    has_key = http_query(r, "key", &key, &key_len);
    has_prefix = has_key < 0 ? -1 : http_query(r, "prefix", &prefix, &prefix_len);
    if (has_key < 0 || has_prefix < 0 || http_query_u64(r, "rev", &rev) != 0 ||
        http_query_bool(r, "prev_kv", &prev_kv) != 0 ||
        http_query_u64(r, "progress_ms", &progress_ms) != 0) {
        return;
    }
    if (has_key + has_prefix != 1) {
        http_reply_error(r, 400, "bad_request", "name exactly one of ?key=K or ?prefix=P");
        return;
    }
    if (progress_ms < 100 || progress_ms > 3600000) {
        http_reply_error(r, 400, "bad_request", "progress_ms must be between 100 and 3600000");
        return;
    }
    if (has_prefix) {
        key = prefix;
        key_len = prefix_len;
    }
    if (key_len > r->cfg->max_key_bytes) {
        http_reply_error(r, 413, "too_large", "key of %zu bytes exceeds max_key_bytes (%llu)",
                         key_len, (unsigned long long)r->cfg->max_key_bytes);
        return;
    }
    /* Last-Event-ID, sent by an EventSource that reconnects, wins over rev:
     * it is where this client's previous stream stopped. */
    last_id = mg_get_header(r->conn, "Last-Event-ID");
    if (last_id != NULL) {
        uint64_t id;
        if (parse_last_event_id(last_id, &id) != 0) {
            http_reply_error(r, 400, "bad_request", "Last-Event-ID must be a revision");
            return;
        }
        rev = id + 1;
    }
    if (!http_watch_slot_take(r->http)) {
        http_reply_error(r, 503, "watch_streams_exhausted",
                         "%llu HTTP watch streams are open, the most this node serves "
                         "(--http-watch-streams-max); retry later, or watch through the native "
                         "protocol (libcairn), which serves many watchers per connection",
                         (unsigned long long)r->cfg->http_watch_streams_max);
        return;
    }
    c = cairn_client_new(http_client_endpoint(r->http), &copts, &err);
    if (c == NULL) {
        http_reply_cairn(r, err, "cannot create a client");
        goto out;
    }
    memset(&o, 0, sizeof(o));
    o.prefix = has_prefix == 1;
    o.start_revision = rev;
    o.prev_kv = prev_kv;
    o.progress_ms = (uint32_t)progress_ms;
    rv = cairn_watch(c, key, key_len, &o, NULL, NULL, &wt);
    if (rv != 0) {
        http_reply_cairn(r, rv, cairn_errmsg(c));
        goto out;
    }
    http_stream_begin(r, "text/event-stream");
    buf_init(&b);
    {
        char hello[96];
        int n =
            snprintf(hello, sizeof(hello), "retry: 1000\n: watching from revision %" PRIu64 "\n\n",
                     cairn_watch_revision(wt) + 1);
        buf_append(&b, hello, (size_t)n);
    }
    for (;;) {
        struct cairn_watch_update *u = NULL;
        bool canceled;
        if (b.len > 0) {
            if (b.len > UINT32_MAX || mg_send_chunk(r->conn, b.data, (unsigned)b.len) < 0) {
                break; /* the client went away */
            }
            b.len = 0;
        }
        if (http_stopping(r->http)) {
            break;
        }
        rv = cairn_watch_next(wt, HTTP_STREAM_POLL_MS, &u);
        if (rv == CAIRN_ETIMEOUT) {
            continue;
        }
        if (rv != 0) {
            break;
        }
        format_update(&b, u);
        canceled = u->kind == CAIRN_WATCH_CANCELED;
        cairn_watch_update_free(u);
        if (canceled) {
            if (b.len <= UINT32_MAX) {
                mg_send_chunk(r->conn, b.data, (unsigned)b.len);
            }
            break;
        }
    }
    mg_send_chunk(r->conn, "", 0); /* the end of the chunked body */
    buf_free(&b);
out:
    if (wt != NULL) {
        cairn_watch_cancel(wt);
    }
    if (c != NULL) {
        cairn_client_free(c);
    }
    http_watch_slot_release(r->http);
}
