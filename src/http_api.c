/*
 * http_api: the JSON handlers of docs/http.md. Each turns one HTTP request
 * into libcairn calls on the worker's clients (http.h) and the answer into
 * JSON. They run on CivetWeb's worker threads and touch nothing but the
 * request, its arena and the clients.
 */
#include <civetweb.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "http.h"
#include "log.h"

/* Helpers */

/* The key (or prefix) in the path after route, decoded. */
static int path_key(struct http_request *r, const char *route, const char **key, size_t *len)
{
    size_t n = strlen(route);
    const char *p = r->path_len >= n ? r->path + n : "";
    size_t plen = r->path_len >= n ? r->path_len - n : 0;
    if (http_decode(r, p, plen, key, len) != 0) {
        http_reply_error(r, 400, "bad_request", "bad %%-encoding in the key");
        return -1;
    }
    if (*len > r->cfg->max_key_bytes) {
        http_reply_error(r, 413, "too_large", "key of %zu bytes exceeds max_key_bytes (%llu)", *len,
                         (unsigned long long)r->cfg->max_key_bytes);
        return -1;
    }
    return 0;
}

static void reply_client_error(struct http_request *r, cairn_client *c, int rv)
{
    http_reply_cairn(r, rv, cairn_errmsg(c));
}

/* A non-negative integer member; absent leaves *out. */
static int read_uint(struct http_request *r, const struct json_value *obj, const char *name,
                     bool required, uint64_t *out)
{
    const struct json_value *v = json_get(obj, name);
    if (v == NULL && !required) {
        return 0;
    }
    if (v == NULL || v->type != JSON_NUMBER || !v->is_uint) {
        http_reply_error(r, 400, "bad_request", "\"%s\" must be a non-negative integer", name);
        return -1;
    }
    *out = v->uint;
    return 0;
}

static int read_bool(struct http_request *r, const struct json_value *obj, const char *name,
                     bool *out)
{
    const struct json_value *v = json_get(obj, name);
    if (v == NULL) {
        return 0;
    }
    if (v->type != JSON_BOOL) {
        http_reply_error(r, 400, "bad_request", "\"%s\" must be true or false", name);
        return -1;
    }
    *out = v->boolean;
    return 0;
}

static void write_kvs(struct json_writer *w, const struct cairn_op_result *op, bool with_values)
{
    size_t i;
    json_array_begin(w);
    for (i = 0; op != NULL && i < op->n_kvs; i++) {
        http_write_kv(w, &op->kvs[i], with_values);
    }
    json_array_end(w);
}

static const struct cairn_kv *first_kv(const struct cairn_result *res, size_t op)
{
    if (res == NULL || res->n_ops <= op || res->ops[op].n_kvs == 0) {
        return NULL;
    }
    return &res->ops[op].kvs[0];
}

/* Begin a reply object in a fresh buffer. */
struct reply
{
    struct buf b;
    struct json_writer w;
};

static struct json_writer *reply_begin(struct reply *rp)
{
    buf_init(&rp->b);
    json_writer_init(&rp->w, &rp->b);
    json_object_begin(&rp->w);
    return &rp->w;
}

static void reply_end(struct http_request *r, struct reply *rp, uint64_t revision)
{
    json_key(&rp->w, "revision");
    json_uint(&rp->w, revision);
    json_object_end(&rp->w);
    http_reply_json(r, 200, &rp->w);
    buf_free(&rp->b);
}

/* /v1/kv */

static void kv_get(struct http_request *r, const char *key, size_t key_len)
{
    bool prefix = false;
    bool stale = false;
    bool keys_only = false;
    uint64_t rev = 0;
    uint64_t limit = HTTP_RANGE_LIMIT_DEFAULT;
    uint64_t min_revision = 0;
    uint64_t max_staleness_ms = 0;
    const char *after = NULL;
    size_t after_len = 0;
    struct cairn_get_opts o;
    struct cairn_result *res = NULL;
    cairn_client *c;
    struct reply rp;
    struct json_writer *w;
    int rv;
    if (http_query_bool(r, "prefix", &prefix) != 0 || http_query_bool(r, "stale", &stale) != 0 ||
        http_query_bool(r, "keys_only", &keys_only) != 0 || http_query_u64(r, "rev", &rev) != 0 ||
        http_query_u64(r, "limit", &limit) != 0 || http_query(r, "after", &after, &after_len) < 0 ||
        http_query_u64(r, "min_revision", &min_revision) != 0 ||
        http_query_u64(r, "max_staleness_ms", &max_staleness_ms) != 0) {
        return;
    }
    if (!prefix && key_len == 0) {
        http_reply_error(r, 400, "bad_request", "no key: GET /v1/kv/KEY, or ?prefix=true");
        return;
    }
    if (limit == 0 || limit > HTTP_RANGE_LIMIT_MAX) {
        http_reply_error(r, 400, "bad_request", "limit must be between 1 and %d",
                         HTTP_RANGE_LIMIT_MAX);
        return;
    }
    memset(&o, 0, sizeof(o));
    o.stale = stale;
    o.prefix = prefix;
    o.revision = rev;
    o.limit = prefix ? limit : 0;
    o.after = after;
    o.after_len = after_len;
    o.min_revision = min_revision;
    o.max_staleness_ms = max_staleness_ms;
    /* A read with a min_revision is answered by this node, like a stale
     * one (it waits at most about 80% of HTTP_LOCAL_TIMEOUT_MS). */
    c = stale || min_revision > 0 ? r->local : r->leader;
    rv = cairn_get(c, key, key_len, &o, &res);
    if (rv != 0) {
        reply_client_error(r, c, rv);
        cairn_result_free(res);
        return;
    }
    w = reply_begin(&rp);
    if (prefix) {
        json_key(w, "kvs");
        write_kvs(w, res->n_ops > 0 ? &res->ops[0] : NULL, !keys_only);
        json_key(w, "more");
        json_bool(w, res->n_ops > 0 && res->ops[0].more);
    } else {
        json_key(w, "kv");
        http_write_kv(w, first_kv(res, 0), !keys_only);
    }
    reply_end(r, &rp, res->revision);
    cairn_result_free(res);
}

/* A put or delete guarded by mod_revision == expected (0: absent), as one
 * transaction that reads the key back when the guard fails. */
static int guarded(struct http_request *r, const struct cairn_op *write, uint64_t expected,
                   struct cairn_result **res)
{
    struct cairn_compare cmp;
    struct cairn_op get;
    struct cairn_txn txn;
    int rv;
    memset(&cmp, 0, sizeof(cmp));
    cmp.key = write->key;
    cmp.key_len = write->key_len;
    cmp.target = CAIRN_CMP_MOD;
    cmp.op = CAIRN_CMP_EQUAL;
    cmp.number = expected;
    memset(&get, 0, sizeof(get));
    get.type = CAIRN_OP_GET;
    get.key = write->key;
    get.key_len = write->key_len;
    memset(&txn, 0, sizeof(txn));
    txn.compares = &cmp;
    txn.n_compares = 1;
    txn.then_ops = write;
    txn.n_then = 1;
    txn.else_ops = &get;
    txn.n_else = 1;
    rv = cairn_txn(r->leader, &txn, res);
    if (rv != 0) {
        reply_client_error(r, r->leader, rv);
        return -1;
    }
    if (!(*res)->succeeded) {
        const struct cairn_kv *now = first_kv(*res, 0);
        http_reply_error(r, 409, "compare_failed",
                         "compare failed: the key's mod_revision is %" PRIu64 ", not %" PRIu64,
                         now != NULL ? now->mod_revision : 0, expected);
        return -1;
    }
    return 0;
}

static void kv_put(struct http_request *r, const char *key, size_t key_len)
{
    const struct json_value *body;
    const char *value;
    size_t value_len;
    uint64_t cas = 0;
    const char *cas_text;
    size_t cas_len;
    bool has_cas;
    struct cairn_result *res = NULL;
    struct reply rp;
    struct json_writer *w;
    const struct cairn_kv *prev;
    int rv;
    if (key_len == 0) {
        http_reply_error(r, 400, "bad_request", "no key: PUT /v1/kv/KEY");
        return;
    }
    rv = http_query(r, "cas", &cas_text, &cas_len);
    if (rv < 0) {
        return;
    }
    has_cas = rv == 1;
    if (has_cas && http_query_u64(r, "cas", &cas) != 0) {
        return;
    }
    if (http_read_json(r, http_body_max(r->cfg), &body) != 0 ||
        http_read_bytes(r, body, "value", "encoding", true, &value, &value_len) != 0) {
        return;
    }
    if (has_cas) {
        struct cairn_op put;
        memset(&put, 0, sizeof(put));
        put.type = CAIRN_OP_PUT;
        put.key = key;
        put.key_len = key_len;
        put.value = value;
        put.value_len = value_len;
        put.prev_kv = true;
        if (guarded(r, &put, cas, &res) != 0) {
            cairn_result_free(res);
            return;
        }
    } else {
        struct cairn_put_opts o = {.prev_kv = true};
        rv = cairn_put(r->leader, key, key_len, value, value_len, &o, &res);
        if (rv != 0) {
            reply_client_error(r, r->leader, rv);
            return;
        }
    }
    w = reply_begin(&rp);
    json_key(w, "prev_kv");
    prev = first_kv(res, 0);
    if (prev != NULL) {
        http_write_kv(w, prev, true);
    } else {
        json_null(w);
    }
    reply_end(r, &rp, res->revision);
    cairn_result_free(res);
}

static void kv_delete(struct http_request *r, const char *key, size_t key_len)
{
    bool prefix = false;
    uint64_t cas = 0;
    const char *cas_text;
    size_t cas_len;
    struct cairn_result *res = NULL;
    struct reply rp;
    struct json_writer *w;
    int has_cas;
    int rv;
    if (http_query_bool(r, "prefix", &prefix) != 0) {
        return;
    }
    has_cas = http_query(r, "cas", &cas_text, &cas_len);
    if (has_cas < 0 || (has_cas == 1 && http_query_u64(r, "cas", &cas) != 0)) {
        return;
    }
    if (!prefix && key_len == 0) {
        http_reply_error(r, 400, "bad_request", "no key: DELETE /v1/kv/KEY, or ?prefix=true");
        return;
    }
    if (prefix && has_cas == 1) {
        http_reply_error(r, 400, "bad_request", "cas applies to one key, not a prefix");
        return;
    }
    if (has_cas == 1) {
        struct cairn_op del;
        memset(&del, 0, sizeof(del));
        del.type = CAIRN_OP_DEL;
        del.key = key;
        del.key_len = key_len;
        if (guarded(r, &del, cas, &res) != 0) {
            cairn_result_free(res);
            return;
        }
    } else {
        struct cairn_del_opts o = {.prefix = prefix};
        rv = cairn_del(r->leader, key, key_len, &o, &res);
        if (rv != 0) {
            reply_client_error(r, r->leader, rv);
            return;
        }
    }
    w = reply_begin(&rp);
    json_key(w, "deleted");
    json_uint(w, res->n_ops > 0 ? res->ops[0].deleted : 0);
    reply_end(r, &rp, res->revision);
    cairn_result_free(res);
}

void http_api_kv(struct http_request *r)
{
    const char *key;
    size_t key_len;
    if (path_key(r, r->path_len > 6 ? "/v1/kv/" : "/v1/kv", &key, &key_len) != 0) {
        return;
    }
    if (strcmp(r->method, "PUT") == 0) {
        kv_put(r, key, key_len);
    } else if (strcmp(r->method, "DELETE") == 0) {
        kv_delete(r, key, key_len);
    } else {
        kv_get(r, key, key_len);
    }
}

/* /v1/txn */

static int parse_compares(struct http_request *r, const struct json_value *arr,
                          struct cairn_compare **out, size_t *n_out)
{
    static const char *const targets[] = {"value", "version", "mod_revision", "create_revision"};
    static const char *const ops[] = {"==", "!=", "<", ">"};
    const struct json_value *c;
    struct cairn_compare *cmps;
    size_t i = 0;
    *out = NULL;
    *n_out = 0;
    if (arr == NULL) {
        return 0;
    }
    if (arr->type != JSON_ARRAY) {
        http_reply_error(r, 400, "bad_request", "\"compare\" must be an array");
        return -1;
    }
    if (arr->n > r->cfg->max_txn_ops) {
        http_reply_error(r, 413, "too_large", "%zu compares exceed max_txn_ops (%llu)", arr->n,
                         (unsigned long long)r->cfg->max_txn_ops);
        return -1;
    }
    cmps = arena_alloc(&r->arena, (arr->n + 1) * sizeof(*cmps));
    if (cmps == NULL) {
        http_reply_error(r, 500, "internal", "out of memory");
        return -1;
    }
    for (c = arr->child; c != NULL; c = c->next, i++) {
        const struct json_value *target = json_get(c, "target");
        const struct json_value *op = json_get(c, "op");
        size_t t;
        size_t o;
        memset(&cmps[i], 0, sizeof(cmps[i]));
        if (c->type != JSON_OBJECT) {
            http_reply_error(r, 400, "bad_request", "compare %zu is not an object", i);
            return -1;
        }
        if (http_read_bytes(r, c, "key", "key_encoding", true, (const char **)&cmps[i].key,
                            &cmps[i].key_len) != 0) {
            return -1;
        }
        for (t = 0; target != NULL && target->type == JSON_STRING && t < 4; t++) {
            if (strcmp(target->str, targets[t]) == 0) {
                break;
            }
        }
        for (o = 0; op != NULL && op->type == JSON_STRING && o < 4; o++) {
            if (strcmp(op->str, ops[o]) == 0) {
                break;
            }
        }
        if (target == NULL || target->type != JSON_STRING || t == 4) {
            http_reply_error(r, 400, "bad_request",
                             "compare %zu: \"target\" must be value, version, mod_revision or "
                             "create_revision",
                             i);
            return -1;
        }
        if (op == NULL || op->type != JSON_STRING || o == 4) {
            http_reply_error(r, 400, "bad_request", "compare %zu: \"op\" must be ==, !=, < or >",
                             i);
            return -1;
        }
        cmps[i].target = (enum cairn_cmp_target)t;
        cmps[i].op = (enum cairn_cmp_op)o;
        if (t == CAIRN_CMP_VALUE) {
            if (http_read_bytes(r, c, "value", "encoding", true, (const char **)&cmps[i].value,
                                &cmps[i].value_len) != 0) {
                return -1;
            }
        } else if (read_uint(r, c, "number", true, &cmps[i].number) != 0) {
            return -1;
        }
    }
    *out = cmps;
    *n_out = arr->n;
    return 0;
}

static int parse_ops(struct http_request *r, const char *name, const struct json_value *arr,
                     struct cairn_op **out, size_t *n_out)
{
    const struct json_value *c;
    struct cairn_op *ops;
    size_t i = 0;
    *out = NULL;
    *n_out = 0;
    if (arr == NULL) {
        return 0;
    }
    if (arr->type != JSON_ARRAY) {
        http_reply_error(r, 400, "bad_request", "\"%s\" must be an array", name);
        return -1;
    }
    if (arr->n > r->cfg->max_txn_ops) {
        http_reply_error(r, 413, "too_large", "%zu operations in \"%s\" exceed max_txn_ops (%llu)",
                         arr->n, name, (unsigned long long)r->cfg->max_txn_ops);
        return -1;
    }
    ops = arena_alloc(&r->arena, (arr->n + 1) * sizeof(*ops));
    if (ops == NULL) {
        http_reply_error(r, 500, "internal", "out of memory");
        return -1;
    }
    for (c = arr->child; c != NULL; c = c->next, i++) {
        const struct json_value *op = json_get(c, "op");
        memset(&ops[i], 0, sizeof(ops[i]));
        if (c->type != JSON_OBJECT || op == NULL || op->type != JSON_STRING) {
            http_reply_error(r, 400, "bad_request", "%s[%zu] needs \"op\": get, put or delete",
                             name, i);
            return -1;
        }
        if (strcmp(op->str, "get") == 0) {
            ops[i].type = CAIRN_OP_GET;
        } else if (strcmp(op->str, "put") == 0) {
            ops[i].type = CAIRN_OP_PUT;
        } else if (strcmp(op->str, "delete") == 0) {
            ops[i].type = CAIRN_OP_DEL;
        } else {
            http_reply_error(r, 400, "bad_request", "%s[%zu]: \"op\" must be get, put or delete",
                             name, i);
            return -1;
        }
        if (http_read_bytes(r, c, "key", "key_encoding", true, (const char **)&ops[i].key,
                            &ops[i].key_len) != 0 ||
            read_bool(r, c, "prefix", &ops[i].prefix) != 0 ||
            read_bool(r, c, "prev_kv", &ops[i].prev_kv) != 0 ||
            read_uint(r, c, "limit", false, &ops[i].limit) != 0) {
            return -1;
        }
        if (ops[i].type == CAIRN_OP_PUT &&
            http_read_bytes(r, c, "value", "encoding", true, (const char **)&ops[i].value,
                            &ops[i].value_len) != 0) {
            return -1;
        }
    }
    *out = ops;
    *n_out = arr->n;
    return 0;
}

void http_api_txn(struct http_request *r)
{
    const struct json_value *body;
    const struct json_value *m;
    struct cairn_compare *cmps;
    struct cairn_op *then_ops;
    struct cairn_op *else_ops;
    struct cairn_txn txn;
    struct cairn_result *res = NULL;
    struct reply rp;
    struct json_writer *w;
    size_t i;
    int rv;
    if (http_read_json(r, http_body_max(r->cfg), &body) != 0) {
        return;
    }
    for (m = body->child; m != NULL; m = m->next) {
        if (strcmp(m->key, "compare") != 0 && strcmp(m->key, "success") != 0 &&
            strcmp(m->key, "failure") != 0) {
            http_reply_error(r, 400, "bad_request", "unknown member \"%s\"", m->key);
            return;
        }
    }
    memset(&txn, 0, sizeof(txn));
    if (parse_compares(r, json_get(body, "compare"), &cmps, &txn.n_compares) != 0 ||
        parse_ops(r, "success", json_get(body, "success"), &then_ops, &txn.n_then) != 0 ||
        parse_ops(r, "failure", json_get(body, "failure"), &else_ops, &txn.n_else) != 0) {
        return;
    }
    txn.compares = cmps;
    txn.then_ops = then_ops;
    txn.else_ops = else_ops;
    rv = cairn_txn(r->leader, &txn, &res);
    if (rv != 0) {
        reply_client_error(r, r->leader, rv);
        return;
    }
    w = reply_begin(&rp);
    json_key(w, "succeeded");
    json_bool(w, res->succeeded);
    json_key(w, "results");
    json_array_begin(w);
    for (i = 0; i < res->n_ops; i++) {
        json_object_begin(w);
        json_key(w, "kvs");
        write_kvs(w, &res->ops[i], true);
        json_key(w, "deleted");
        json_uint(w, res->ops[i].deleted);
        json_key(w, "more");
        json_bool(w, res->ops[i].more);
        json_object_end(w);
    }
    json_array_end(w);
    reply_end(r, &rp, res->revision);
    cairn_result_free(res);
}

/* /v1/history */

void http_api_history(struct http_request *r)
{
    const char *key;
    size_t key_len;
    uint64_t limit = 0;
    bool values = false;
    struct cairn_result *res = NULL;
    struct reply rp;
    struct json_writer *w;
    int rv;
    if (path_key(r, "/v1/history/", &key, &key_len) != 0 ||
        http_query_u64(r, "limit", &limit) != 0 || http_query_bool(r, "values", &values) != 0) {
        return;
    }
    if (key_len == 0) {
        http_reply_error(r, 400, "bad_request", "no key: GET /v1/history/KEY");
        return;
    }
    rv = cairn_history(r->leader, key, key_len, limit, &res);
    if (rv != 0) {
        reply_client_error(r, r->leader, rv);
        return;
    }
    w = reply_begin(&rp);
    json_key(w, "versions");
    write_kvs(w, res->n_ops > 0 ? &res->ops[0] : NULL, values);
    json_key(w, "more");
    json_bool(w, res->n_ops > 0 && res->ops[0].more);
    reply_end(r, &rp, res->revision);
    cairn_result_free(res);
}

/* /v1/diff */

struct diff_side
{
    struct cairn_result *res; /* owned */
    const struct cairn_kv *kv;
    struct diff_line *lines; /* owned */
    size_t n_lines;
};

static int diff_read(struct http_request *r, const char *key, size_t key_len, uint64_t rev,
                     struct diff_side *side)
{
    struct cairn_get_opts o;
    int rv;
    memset(&o, 0, sizeof(o));
    o.revision = rev;
    rv = cairn_get(r->leader, key, key_len, &o, &side->res);
    if (rv != 0 && rv != CAIRN_ENOTFOUND) {
        reply_client_error(r, r->leader, rv);
        return -1;
    }
    side->kv = rv == 0 ? first_kv(side->res, 0) : NULL;
    if (diff_split_lines(side->kv != NULL ? side->kv->value : "",
                         side->kv != NULL ? side->kv->value_len : 0, &side->lines,
                         &side->n_lines) != 0) {
        http_reply_error(r, 500, "internal", "out of memory");
        return -1;
    }
    return 0;
}

static void write_diff(struct json_writer *w, const struct diff_side *x, const struct diff_side *y,
                       const struct diff_edit *e, size_t n)
{
    struct diff_hunk h;
    size_t at = 0;
    size_t i;
    json_array_begin(w);
    while (diff_next_hunk(e, n, &at, &h)) {
        json_object_begin(w);
        json_key(w, "from_line");
        json_uint(w, h.old_start);
        json_key(w, "from_lines");
        json_uint(w, h.old_lines);
        json_key(w, "to_line");
        json_uint(w, h.new_start);
        json_key(w, "to_lines");
        json_uint(w, h.new_lines);
        json_key(w, "lines");
        json_array_begin(w);
        for (i = h.start; i < h.end; i++) {
            const struct diff_line *l = diff_edit_line(&e[i], x->lines, y->lines);
            char op[2] = {e[i].op, '\0'};
            json_object_begin(w);
            json_key(w, "op");
            json_cstring(w, op);
            http_write_value(w, "text", l->p, l->len);
            json_key(w, "newline");
            json_bool(w, l->newline);
            json_object_end(w);
        }
        json_array_end(w);
        json_object_end(w);
    }
    json_array_end(w);
}

void http_api_diff(struct http_request *r)
{
    const char *key;
    size_t key_len;
    uint64_t from = 0;
    uint64_t to = 0;
    const char *s;
    size_t len;
    struct diff_side sides[2];
    struct diff_edit *edits = NULL;
    size_t n_edits = 0;
    bool minimal = true;
    struct reply rp;
    struct json_writer *w;
    int i;
    memset(sides, 0, sizeof(sides));
    if (path_key(r, "/v1/diff/", &key, &key_len) != 0 || http_query_u64(r, "from", &from) != 0 ||
        http_query_u64(r, "to", &to) != 0) {
        return;
    }
    if (key_len == 0 || http_query(r, "from", &s, &len) != 1) {
        http_reply_error(r, 400, "bad_request", "GET /v1/diff/KEY?from=REV[&to=REV] (to: now)");
        return;
    }
    if (diff_read(r, key, key_len, from, &sides[0]) != 0 ||
        diff_read(r, key, key_len, to, &sides[1]) != 0) {
        goto out;
    }
    if (diff_compute(sides[0].lines, sides[0].n_lines, sides[1].lines, sides[1].n_lines, &edits,
                     &n_edits, &minimal) != 0) {
        http_reply_error(r, 500, "internal", "out of memory");
        goto out;
    }
    w = reply_begin(&rp);
    for (i = 0; i < 2; i++) {
        json_key(w, i == 0 ? "from" : "to");
        if (sides[i].kv != NULL) {
            http_write_kv(w, sides[i].kv, true);
        } else {
            json_null(w);
        }
    }
    json_key(w, "minimal");
    json_bool(w, minimal);
    json_key(w, "hunks");
    write_diff(w, &sides[0], &sides[1], edits, n_edits);
    reply_end(r, &rp, sides[1].res->revision);
out:
    free(edits);
    for (i = 0; i < 2; i++) {
        free(sides[i].lines);
        cairn_result_free(sides[i].res);
    }
}

/* /v1/rollback: the value at a past revision written back, guarded by a
 * compare on the mod_revision read just before (and, if the caller sends
 * one, the mod_revision it saw), so a change made meanwhile is never
 * overwritten. */

void http_api_rollback(struct http_request *r)
{
    const char *key;
    size_t key_len;
    const struct json_value *body;
    uint64_t rev = 0;
    uint64_t seen = 0;
    bool has_seen;
    struct cairn_get_opts o;
    struct cairn_result *past = NULL;
    struct cairn_result *now = NULL;
    struct cairn_result *res = NULL;
    const struct cairn_kv *old;
    const struct cairn_kv *cur;
    uint64_t mod;
    struct reply rp;
    struct json_writer *w;
    int rv;
    if (path_key(r, "/v1/rollback/", &key, &key_len) != 0 ||
        http_read_json(r, http_body_max(r->cfg), &body) != 0 ||
        read_uint(r, body, "revision", true, &rev) != 0) {
        return;
    }
    has_seen = json_get(body, "mod_revision") != NULL;
    if (has_seen && read_uint(r, body, "mod_revision", true, &seen) != 0) {
        return;
    }
    if (key_len == 0 || rev == 0) {
        http_reply_error(r, 400, "bad_request",
                         "POST /v1/rollback/KEY with {\"revision\": R}, R >= 1");
        return;
    }
    memset(&o, 0, sizeof(o));
    o.revision = rev;
    rv = cairn_get(r->leader, key, key_len, &o, &past);
    if (rv != 0) {
        if (rv == CAIRN_ENOTFOUND) {
            http_reply_error(r, 404, "not_found", "the key had no value at revision %" PRIu64, rev);
        } else {
            reply_client_error(r, r->leader, rv);
        }
        goto out;
    }
    old = first_kv(past, 0);
    rv = cairn_get(r->leader, key, key_len, NULL, &now);
    if (rv != 0 && rv != CAIRN_ENOTFOUND) {
        reply_client_error(r, r->leader, rv);
        goto out;
    }
    cur = rv == 0 ? first_kv(now, 0) : NULL;
    mod = cur != NULL ? cur->mod_revision : 0;
    if (has_seen && seen != mod) {
        http_reply_error(r, 409, "compare_failed",
                         "the key changed: its mod_revision is %" PRIu64 ", not %" PRIu64, mod,
                         seen);
        goto out;
    }
    rv = cairn_cas(r->leader, key, key_len, mod, old->value, old->value_len, &res);
    if (rv != 0) {
        reply_client_error(r, r->leader, rv);
        goto out;
    }
    w = reply_begin(&rp);
    json_key(w, "rolled_back_to");
    json_uint(w, rev);
    reply_end(r, &rp, res->revision);
out:
    cairn_result_free(past);
    cairn_result_free(now);
    cairn_result_free(res);
}

/* /v1/compact */

void http_api_compact(struct http_request *r)
{
    const struct json_value *body;
    uint64_t rev = 0;
    struct cairn_result *res = NULL;
    struct reply rp;
    struct json_writer *w;
    int rv;
    if (http_read_json(r, 4096, &body) != 0 || read_uint(r, body, "revision", true, &rev) != 0) {
        return;
    }
    rv = cairn_compact(r->leader, rev, &res);
    if (rv != 0) {
        reply_client_error(r, r->leader, rv);
        return;
    }
    w = reply_begin(&rp);
    json_key(w, "compact_revision");
    json_uint(w, res->compact_revision != 0 ? res->compact_revision : rev);
    reply_end(r, &rp, res->revision);
    cairn_result_free(res);
}

/* /v1/retention */

void http_api_retention(struct http_request *r)
{
    struct reply rp;
    struct json_writer *w;
    int rv;
    if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0) {
        struct cairn_status *st = NULL;
        size_t i;
        rv = cairn_status(r->local, NULL, &st);
        if (rv != 0) {
            reply_client_error(r, r->local, rv);
            return;
        }
        w = reply_begin(&rp);
        json_key(w, "policies");
        json_array_begin(w);
        for (i = 0; i < st->n_retention; i++) {
            json_object_begin(w);
            http_write_value(w, "prefix", st->retention[i].prefix, st->retention[i].prefix_len);
            json_key(w, "versions");
            json_uint(w, st->retention[i].versions);
            json_key(w, "age_ms");
            json_uint(w, st->retention[i].age_ms);
            json_object_end(w);
        }
        json_array_end(w);
        reply_end(r, &rp, st->revision);
        cairn_status_free(st);
        return;
    }
    {
        struct cairn_retention policy;
        const char *prefix;
        size_t prefix_len;
        memset(&policy, 0, sizeof(policy));
        if (path_key(r, "/v1/retention/", &prefix, &prefix_len) != 0) {
            return;
        }
        policy.prefix = prefix;
        policy.prefix_len = prefix_len;
        if (strcmp(r->method, "PUT") == 0) {
            const struct json_value *body;
            if (http_read_json(r, 4096, &body) != 0 ||
                read_uint(r, body, "versions", false, &policy.versions) != 0 ||
                read_uint(r, body, "age_ms", false, &policy.age_ms) != 0) {
                return;
            }
            if (policy.versions == 0 && policy.age_ms == 0) {
                http_reply_error(r, 400, "bad_request",
                                 "a policy needs \"versions\" or \"age_ms\" (DELETE removes one)");
                return;
            }
        }
        rv = cairn_set_retention(r->leader, &policy);
        if (rv != 0) {
            reply_client_error(r, r->leader, rv);
            return;
        }
        buf_init(&rp.b);
        json_writer_init(&rp.w, &rp.b);
        json_object_begin(&rp.w);
        http_write_value(&rp.w, "prefix", prefix, prefix_len);
        json_key(&rp.w, "versions");
        json_uint(&rp.w, policy.versions);
        json_key(&rp.w, "age_ms");
        json_uint(&rp.w, policy.age_ms);
        json_object_end(&rp.w);
        http_reply_json(r, 200, &rp.w);
        buf_free(&rp.b);
    }
}

/* /v1/status, /v1/cluster, /health, /ready */

static void write_status(struct json_writer *w, const struct cairn_status *st)
{
    json_key(w, "id");
    json_uint(w, st->id);
    json_key(w, "state");
    json_cstring(w, st->state);
    json_key(w, "leader_id");
    json_uint(w, st->leader_id);
    json_key(w, "leader_address");
    json_cstring(w, st->leader_address);
    json_key(w, "term");
    json_uint(w, st->term);
    json_key(w, "commit_index");
    json_uint(w, st->commit_index);
    json_key(w, "applied_index");
    json_uint(w, st->applied_index);
    json_key(w, "last_index");
    json_uint(w, st->last_index);
    json_key(w, "compact_revision");
    json_uint(w, st->compact_revision);
    json_key(w, "keys");
    json_uint(w, st->keys);
    json_key(w, "bytes");
    json_uint(w, st->bytes);
    json_key(w, "snapshots");
    json_uint(w, st->snapshots);
    json_key(w, "read_barriers");
    json_uint(w, st->read_barriers);
    json_key(w, "linearizable_reads");
    json_uint(w, st->linearizable_reads);
    json_key(w, "watchers");
    json_uint(w, st->watchers);
    json_key(w, "watch_events");
    json_uint(w, st->watch_events);
    json_key(w, "watch_catchups");
    json_uint(w, st->watch_catchups);
    json_key(w, "watch_snapshots");
    json_uint(w, st->watch_snapshots);
    json_key(w, "state_hash");
    json_uint(w, st->state_hash);
    if (st->cluster_id != 0) {
        char hex[17];
        snprintf(hex, sizeof(hex), "%016" PRIx64, st->cluster_id);
        json_key(w, "cluster_id");
        json_cstring(w, hex);
    }
    if (st->restored_as != 0) {
        char hex[17];
        snprintf(hex, sizeof(hex), "%016" PRIx64, st->restored_as);
        json_key(w, "restored_as");
        json_cstring(w, hex);
    }
}

static void write_member(struct json_writer *w, const struct cairn_member *m)
{
    json_key(w, "id");
    json_uint(w, m->id);
    json_key(w, "raft_address");
    json_cstring(w, m->raft_address);
    json_key(w, "client_address");
    json_cstring(w, m->client_address);
    json_key(w, "role");
    json_cstring(w, m->role);
}

void http_api_status(struct http_request *r)
{
    struct cairn_status *st = NULL;
    struct reply rp;
    struct json_writer *w;
    size_t i;
    int rv = cairn_status(r->local, NULL, &st);
    if (rv != 0) {
        reply_client_error(r, r->local, rv);
        return;
    }
    w = reply_begin(&rp);
    write_status(w, st);
    json_key(w, "http_address");
    json_cstring(w, r->cfg->http_addr);
    json_key(w, "members");
    json_array_begin(w);
    for (i = 0; i < st->n_members; i++) {
        json_object_begin(w);
        write_member(w, &st->members[i]);
        json_object_end(w);
    }
    json_array_end(w);
    reply_end(r, &rp, st->revision);
    cairn_status_free(st);
}

/* Every member's status, asked of each member directly (an unreachable one
 * costs the client's connect timeout). Each reports its own HTTP address:
 * the Raft configuration records only the Raft and client addresses. */
void http_api_cluster(struct http_request *r)
{
    struct cairn_status *self = NULL;
    struct cairn_status **each;
    struct reply rp;
    struct json_writer *w;
    uint64_t leader_commit;
    size_t i;
    int rv = cairn_status(r->local, NULL, &self);
    if (rv != 0) {
        reply_client_error(r, r->local, rv);
        return;
    }
    each = calloc(self->n_members + 1, sizeof(*each));
    if (each == NULL) {
        cairn_status_free(self);
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    leader_commit = self->commit_index;
    for (i = 0; i < self->n_members; i++) {
        const struct cairn_member *m = &self->members[i];
        if (m->id == self->id) {
            continue;
        }
        if (cairn_status(r->local, m->client_address, &each[i]) != 0) {
            each[i] = NULL;
        } else if (m->id == self->leader_id) {
            leader_commit = each[i]->commit_index;
        }
    }
    w = reply_begin(&rp);
    json_key(w, "id");
    json_uint(w, self->id);
    json_key(w, "leader_id");
    json_uint(w, self->leader_id);
    json_key(w, "members");
    json_array_begin(w);
    for (i = 0; i < self->n_members; i++) {
        const struct cairn_member *m = &self->members[i];
        const struct cairn_status *st = m->id == self->id ? self : each[i];
        json_object_begin(w);
        write_member(w, m);
        /* Each member reports its own; "" (no HTTP, or a node too old to
         * say) and unreachable members give null. */
        json_key(w, "http_address");
        if (st != NULL && st->http_address != NULL && st->http_address[0] != '\0') {
            json_cstring(w, st->http_address);
        } else {
            json_null(w);
        }
        json_key(w, "reachable");
        json_bool(w, st != NULL);
        if (st != NULL) {
            json_key(w, "state");
            json_cstring(w, st->state);
            json_key(w, "term");
            json_uint(w, st->term);
            json_key(w, "leader_id");
            json_uint(w, st->leader_id);
            json_key(w, "commit_index");
            json_uint(w, st->commit_index);
            json_key(w, "applied_index");
            json_uint(w, st->applied_index);
            json_key(w, "revision");
            json_uint(w, st->revision);
            json_key(w, "lag");
            json_uint(w, leader_commit > st->applied_index ? leader_commit - st->applied_index : 0);
        }
        json_object_end(w);
    }
    json_array_end(w);
    reply_end(r, &rp, self->revision);
    for (i = 0; i < self->n_members; i++) {
        cairn_status_free(each[i]);
    }
    free(each);
    cairn_status_free(self);
}

void http_api_health(struct http_request *r)
{
    struct cairn_status *st = NULL;
    static const char ok[] = "{\"status\":\"ok\"}\n";
    int rv = cairn_status(r->local, NULL, &st);
    if (rv != 0) {
        http_reply_error(r, 503, "unavailable", "the node's loop does not answer: %s",
                         cairn_errmsg(r->local));
        return;
    }
    cairn_status_free(st);
    http_reply(r, 200, "application/json", ok, sizeof(ok) - 1);
}

void http_api_ready(struct http_request *r)
{
    struct cairn_status *st = NULL;
    struct reply rp;
    struct json_writer *w;
    uint64_t lag;
    int rv = cairn_status(r->local, NULL, &st);
    if (rv != 0) {
        http_reply_error(r, 503, "unavailable", "the node's loop does not answer: %s",
                         cairn_errmsg(r->local));
        return;
    }
    lag = st->commit_index > st->applied_index ? st->commit_index - st->applied_index : 0;
    if (st->leader_id == 0) {
        http_reply_error(r, 503, "not_ready", "no leader known (node %" PRIu64 " is %s)", st->id,
                         st->state);
    } else if (lag > r->cfg->ready_lag_max) {
        http_reply_error(r, 503, "not_ready",
                         "applied index %" PRIu64 " is %" PRIu64
                         " entries behind the commit index (ready_lag_max %llu)",
                         st->applied_index, lag, (unsigned long long)r->cfg->ready_lag_max);
    } else {
        w = reply_begin(&rp);
        json_key(w, "status");
        json_cstring(w, "ready");
        json_key(w, "leader_id");
        json_uint(w, st->leader_id);
        json_key(w, "lag");
        json_uint(w, lag);
        reply_end(r, &rp, st->revision);
    }
    cairn_status_free(st);
}

/* /v1/backup: the leader's disaster recovery, relayed. The node answers
 * with a JSON document of its own (docs/http.md, "Backups"), sent on as it
 * is: the gateway adds nothing and leaves nothing out, so the console and
 * curl see exactly what cairn_backup() returns. The call goes to the leader
 * on the worker's leader client, which waits up to CAIRN_BACKUP_TIMEOUT_MS
 * for a snapshot's upload or a verification: that worker is busy meanwhile
 * (one of --http-threads). */
static void backup_relay(struct http_request *r, const char *verb)
{
    char *json = NULL;
    size_t len = 0;
    int rv = cairn_backup(r->leader, verb, &json, &len);
    if (rv != 0) {
        reply_client_error(r, r->leader, rv);
        return;
    }
    http_reply(r, 200, "application/json", json, len);
    free(json);
}

void http_api_backup_status(struct http_request *r)
{
    backup_relay(r, "status");
}

void http_api_backup_snapshot(struct http_request *r)
{
    backup_relay(r, "save");
}

void http_api_backup_verify(struct http_request *r)
{
    backup_relay(r, "verify");
}

/* GET /v1/backup/download: a snapshot of the whole store, downloaded from
 * the leader (cairn_snapshot_stream) and sent on as it arrives, so that
 * the gateway holds 1 MiB of it at a time. The length is known before the
 * first byte; an error after that cuts the answer short of it. */
struct download
{
    struct http_request *r;
    bool broken; /* the browser went away */
};

static int download_begin(void *arg, const char *json, size_t len, uint64_t bytes)
{
    struct download *d = arg;
    struct arena a;
    struct json_value *root = NULL;
    const struct json_value *snap;
    const struct json_value *v;
    char msg[64];
    char name[96];
    uint64_t rev = 0;
    const char *cluster = "cairn";
    arena_init(&a);
    if (json_parse(json, len, &a, &root, msg, sizeof(msg)) == 0 &&
        (snap = json_get(root, "snapshot")) != NULL) {
        v = json_get(snap, "revision");
        if (v != NULL && v->type == JSON_NUMBER && v->is_uint) {
            rev = v->uint;
        }
        v = json_get(snap, "cluster_id");
        if (v != NULL && v->type == JSON_STRING && v->len == 16 &&
            strspn(v->str, "0123456789abcdef") == 16) {
            cluster = v->str;
        }
    }
    snprintf(name, sizeof(name), "cairn-%.16s-%llu.cairnsnap", cluster, (unsigned long long)rev);
    http_download_begin(d->r, "application/octet-stream", bytes, name);
    arena_free(&a);
    return 0;
}

static int download_data(void *arg, const char *data, size_t len)
{
    struct download *d = arg;
    if (mg_write(d->r->conn, data, len) <= 0) {
        d->broken = true;
        return -1;
    }
    return 0;
}

void http_api_backup_download(struct http_request *r)
{
    struct download d = {.r = r, .broken = false};
    char *json = NULL;
    int rv = cairn_snapshot_stream(r->leader, download_begin, download_data, &d, &json, NULL);
    free(json);
    if (rv == 0) {
        return;
    }
    if (r->status == 0) {
        reply_client_error(r, r->leader, rv);
    } else if (!d.broken) {
        log_warn("http: GET /v1/backup/download cut short: %s", cairn_errmsg(r->leader));
    }
}

/* /v1/members, /v1/leader/transfer: membership (docs/http.md, "Members").
 * Like /v1/backup, the node's JSON answer is sent on as it is. */

/* The member list with the leader's progress: this node's answer, or the
 * leader's when this node follows one. *json from malloc. */
static int members_list(struct http_request *r, char **json, size_t *len)
{
    struct arena a;
    struct json_value *doc = NULL;
    const struct json_value *state;
    const struct json_value *leader;
    char err[64];
    char leader_address[256] = "";
    int rv = cairn_members(r->local, NULL, json, len);
    if (rv != 0) {
        return rv;
    }
    arena_init(&a);
    if (json_parse(*json, *len, &a, &doc, err, sizeof(err)) == 0) {
        state = json_get(doc, "state");
        leader = json_get(doc, "leader_address");
        if (state != NULL && state->type == JSON_STRING && strcmp(state->str, "leader") != 0 &&
            leader != NULL && leader->type == JSON_STRING && leader->len > 0 &&
            leader->len < sizeof(leader_address)) {
            memcpy(leader_address, leader->str, leader->len + 1);
        }
    }
    arena_free(&a);
    if (leader_address[0] != '\0') {
        char *again = NULL;
        size_t again_len = 0;
        /* The leader may be unreachable from here: this node's view then. */
        if (cairn_members(r->local, leader_address, &again, &again_len) == 0) {
            free(*json);
            *json = again;
            *len = again_len;
        }
    }
    return 0;
}

/* A membership error: "another change is in progress" and "not caught up
 * yet" are conflicts with the cluster's state (409), not load (429). */
static void reply_member_error(struct http_request *r, cairn_client *c, int rv)
{
    if (rv == CAIRN_EBUSY) {
        http_reply_error(r, 409, "conflict", "%s", cairn_errmsg(c));
        return;
    }
    reply_client_error(r, c, rv);
}

static void member_change(struct http_request *r, const char *verb, uint64_t id,
                          const char *address)
{
    char *json = NULL;
    size_t len = 0;
    int rv = cairn_member_change(r->leader, verb, id, address, &json, &len);
    if (rv != 0) {
        reply_member_error(r, r->leader, rv);
        return;
    }
    http_reply(r, 200, "application/json", json, len);
    free(json);
}

void http_api_members(struct http_request *r)
{
    const struct json_value *body = NULL;
    const struct json_value *address;
    uint64_t id = 0;
    if (strcmp(r->method, "POST") == 0) {
        if (http_read_json(r, 4096, &body) != 0 || read_uint(r, body, "id", true, &id) != 0) {
            return;
        }
        address = json_get(body, "address");
        if (address == NULL || address->type != JSON_STRING || address->len == 0 ||
            strlen(address->str) != address->len) {
            http_reply_error(r, 400, "bad_request",
                             "\"address\" must be RAFT_HOST:PORT/CLIENT_HOST:PORT");
            return;
        }
        if (id == 0) {
            http_reply_error(r, 400, "bad_request", "\"id\" must be a positive integer");
            return;
        }
        member_change(r, "add", id, address->str);
        return;
    }
    {
        char *json = NULL;
        size_t len = 0;
        int rv = members_list(r, &json, &len);
        if (rv != 0) {
            reply_client_error(r, r->local, rv);
            return;
        }
        http_reply(r, 200, "application/json", json, len);
        free(json);
    }
}

/* /v1/members/{id}: DELETE removes the member; POST {"role": "voter"}
 * promotes it, {"role": "standby"} demotes it. */
void http_api_member(struct http_request *r)
{
    static const char route[] = "/v1/members/";
    const char *p = r->path + sizeof(route) - 1;
    size_t n = r->path_len - (sizeof(route) - 1);
    const struct json_value *body = NULL;
    const struct json_value *role;
    uint64_t id = 0;
    size_t i = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9' && id < UINT64_MAX / 10) {
        id = id * 10 + (uint64_t)(p[i] - '0');
        i++;
    }
    if (i == 0 || i != n || id == 0) {
        http_reply_error(r, 400, "bad_request", "a member id is a positive integer");
        return;
    }
    if (strcmp(r->method, "DELETE") == 0) {
        member_change(r, "remove", id, NULL);
        return;
    }
    if (http_read_json(r, 4096, &body) != 0) {
        return;
    }
    role = json_get(body, "role");
    if (role != NULL && role->type == JSON_STRING && strcmp(role->str, "voter") == 0) {
        member_change(r, "promote", id, NULL);
    } else if (role != NULL && role->type == JSON_STRING && strcmp(role->str, "standby") == 0) {
        member_change(r, "demote", id, NULL);
    } else {
        http_reply_error(r, 400, "bad_request", "\"role\" must be \"voter\" or \"standby\"");
    }
}

void http_api_leader_transfer(struct http_request *r)
{
    uint64_t to = 0;
    char *json = NULL;
    size_t len = 0;
    int rv;
    if (http_query_u64(r, "to", &to) != 0) {
        return;
    }
    rv = cairn_leader_transfer(r->leader, to, &json, &len);
    if (rv != 0) {
        reply_member_error(r, r->leader, rv);
        return;
    }
    http_reply(r, 200, "application/json", json, len);
    free(json);
}

/* /v1/openapi.json: src/openapi.json, embedded at build time (and checked
 * to be JSON then: src/CMakeLists.txt). tests/openapi holds it to the
 * routes of http.c and to what the server answers; docs/http.md has the
 * prose. */
void http_api_openapi(struct http_request *r)
{
    http_reply(r, 200, "application/json", (const char *)http_openapi_json, http_openapi_json_len);
}
