#include "proto.h"

#include <string.h>

#include "mpread.h"

/* An allocation failed while decoding: the input may be fine. */
static void mp_fail_nomem(struct mp_reader *r)
{
    r->err = true;
    r->nomem = true;
}

int proto_frame_peek(const char *data, size_t len, size_t max_payload, size_t *payload_len)
{
    const uint8_t *p = (const uint8_t *)data;
    size_t n;
    if (len < PROTO_FRAME_HEADER_SIZE) {
        return 0;
    }
    n = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
    if (n > max_payload || n > PROTO_FRAME_SIZE_MAX) {
        *payload_len = n;
        return CAIRN_ETOOLARGE;
    }
    if (len - PROTO_FRAME_HEADER_SIZE < n) {
        return 0;
    }
    *payload_len = n;
    return 1;
}

static int writer_append_cb(void *data, const char *bytes, size_t len)
{
    struct proto_writer *w = data;
    if (w->failed) {
        return -1;
    }
    if (buf_append(w->out, bytes, len) != 0) {
        w->failed = true;
        return -1;
    }
    return 0;
}

void proto_writer_begin(struct proto_writer *w, struct buf *out)
{
    static const char zero[PROTO_FRAME_HEADER_SIZE] = {0};
    w->out = out;
    w->frame_start = out->len;
    w->failed = buf_append(out, zero, sizeof(zero)) != 0;
    msgpack_packer_init(&w->pk, w, writer_append_cb);
}

void proto_writer_begin_unframed(struct proto_writer *w, struct buf *out)
{
    w->out = out;
    w->frame_start = out->len;
    w->failed = false;
    msgpack_packer_init(&w->pk, w, writer_append_cb);
}

int proto_writer_end_unframed(struct proto_writer *w)
{
    if (w->failed) {
        w->out->len = w->frame_start;
        return CAIRN_ENOMEM;
    }
    return 0;
}

int proto_writer_end(struct proto_writer *w)
{
    size_t n;
    uint8_t *h;
    if (w->failed) {
        w->out->len = w->frame_start;
        return CAIRN_ENOMEM;
    }
    n = w->out->len - w->frame_start - PROTO_FRAME_HEADER_SIZE;
    h = (uint8_t *)w->out->data + w->frame_start;
    h[0] = (uint8_t)(n >> 24);
    h[1] = (uint8_t)(n >> 16);
    h[2] = (uint8_t)(n >> 8);
    h[3] = (uint8_t)n;
    return 0;
}

static void pack_bytes(msgpack_packer *pk, const void *p, size_t len)
{
    msgpack_pack_bin(pk, len);
    msgpack_pack_bin_body(pk, p, len);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s != NULL ? s : "", len);
}

static void pack_bool(msgpack_packer *pk, bool b)
{
    if (b) {
        msgpack_pack_true(pk);
    } else {
        msgpack_pack_false(pk);
    }
}

static void pack_op(msgpack_packer *pk, const struct proto_op *op)
{
    msgpack_pack_array(pk, 9);
    msgpack_pack_uint8(pk, op->type);
    pack_bytes(pk, op->key.ptr, op->key.len);
    pack_bytes(pk, op->value.ptr, op->value.len);
    pack_bool(pk, op->prefix);
    pack_bool(pk, op->prev_kv);
    msgpack_pack_uint64(pk, op->limit);
    pack_bytes(pk, op->after.ptr, op->after.len);
    msgpack_pack_uint64(pk, op->revision);
    pack_bool(pk, op->stale);
}

int proto_encode_request(struct buf *out, const struct proto_request *req)
{
    struct proto_writer w;
    uint32_t i;
    proto_writer_begin(&w, out);
    msgpack_pack_array(&w.pk, 12);
    msgpack_pack_uint32(&w.pk, PROTO_VERSION);
    msgpack_pack_uint64(&w.pk, req->id);
    msgpack_pack_uint8(&w.pk, req->type);
    pack_op(&w.pk, &req->op);
    msgpack_pack_array(&w.pk, req->n_cmps);
    for (i = 0; i < req->n_cmps; i++) {
        const struct proto_cmp *c = &req->cmps[i];
        msgpack_pack_array(&w.pk, 5);
        pack_bytes(&w.pk, c->key.ptr, c->key.len);
        msgpack_pack_uint8(&w.pk, c->target);
        msgpack_pack_uint8(&w.pk, c->op);
        pack_bytes(&w.pk, c->value.ptr, c->value.len);
        msgpack_pack_uint64(&w.pk, c->number);
    }
    msgpack_pack_array(&w.pk, req->n_then);
    for (i = 0; i < req->n_then; i++) {
        pack_op(&w.pk, &req->then_ops[i]);
    }
    msgpack_pack_array(&w.pk, req->n_else);
    for (i = 0; i < req->n_else; i++) {
        pack_op(&w.pk, &req->else_ops[i]);
    }
    msgpack_pack_uint64(&w.pk, req->number);
    msgpack_pack_uint64(&w.pk, req->age_ms);
    msgpack_pack_uint64(&w.pk, req->min_revision);
    msgpack_pack_uint64(&w.pk, req->max_staleness_ms);
    msgpack_pack_uint64(&w.pk, req->wait_ms);
    return proto_writer_end(&w);
}

/* Skip the elements of an array beyond the ones this version knows. */
static bool skip_rest(struct mp_reader *r, uint32_t n, uint32_t known)
{
    uint32_t i;
    for (i = known; i < n; i++) {
        if (!mp_skip(r)) {
            return false;
        }
    }
    return true;
}

static bool read_slice(struct mp_reader *r, struct proto_slice *s)
{
    if (mp_try_nil(r)) {
        s->ptr = "";
        s->len = 0;
        return true;
    }
    return mp_bytes(r, &s->ptr, &s->len);
}

static bool read_u8(struct mp_reader *r, uint8_t *v, uint8_t max)
{
    uint64_t x;
    if (!mp_uint(r, &x) || x > max) {
        r->err = true;
        return false;
    }
    *v = (uint8_t)x;
    return true;
}

static bool read_op(struct mp_reader *r, struct proto_op *op)
{
    uint32_t n;
    if (!mp_array(r, &n) || n < 9) {
        return false;
    }
    return read_u8(r, &op->type, CAIRN_OP_DEL) && read_slice(r, &op->key) &&
           read_slice(r, &op->value) && mp_bool(r, &op->prefix) && mp_bool(r, &op->prev_kv) &&
           mp_uint(r, &op->limit) && read_slice(r, &op->after) && mp_uint(r, &op->revision) &&
           mp_bool(r, &op->stale) && skip_rest(r, n, 9);
}

static bool read_ops(struct mp_reader *r, struct arena *a, struct proto_op **ops, uint32_t *n_ops)
{
    uint32_t n;
    uint32_t i;
    if (!mp_array(r, &n)) {
        return false;
    }
    *n_ops = n;
    *ops = NULL;
    if (n == 0) {
        return true;
    }
    *ops = arena_alloc(a, n * sizeof(**ops));
    if (*ops == NULL) {
        mp_fail_nomem(r);
        return false;
    }
    for (i = 0; i < n; i++) {
        memset(&(*ops)[i], 0, sizeof(**ops));
        if (!read_op(r, &(*ops)[i]) || (*ops)[i].type == 0) {
            r->err = true;
            return false;
        }
    }
    return true;
}

static bool read_cmps(struct mp_reader *r, struct arena *a, struct proto_request *req)
{
    uint32_t n;
    uint32_t i;
    if (!mp_array(r, &n)) {
        return false;
    }
    req->n_cmps = n;
    req->cmps = NULL;
    if (n == 0) {
        return true;
    }
    req->cmps = arena_alloc(a, n * sizeof(*req->cmps));
    if (req->cmps == NULL) {
        mp_fail_nomem(r);
        return false;
    }
    for (i = 0; i < n; i++) {
        struct proto_cmp *c = &req->cmps[i];
        uint32_t m;
        if (!mp_array(r, &m) || m < 5) {
            r->err = true;
            return false;
        }
        if (!read_slice(r, &c->key) || !read_u8(r, &c->target, CAIRN_CMP_CREATE) ||
            !read_u8(r, &c->op, CAIRN_CMP_GREATER) || !read_slice(r, &c->value) ||
            !mp_uint(r, &c->number) || !skip_rest(r, m, 5)) {
            return false;
        }
    }
    return true;
}

int proto_decode_request(const char *payload, size_t len, struct arena *a,
                         struct proto_request *out)
{
    struct mp_reader r;
    uint32_t n;
    uint64_t version;
    memset(out, 0, sizeof(*out));
    mp_init(&r, payload, len);
    if (!mp_array(&r, &n) || n < 8 || !mp_uint(&r, &version)) {
        return CAIRN_EMALFORMED;
    }
    if (!mp_uint(&r, &out->id)) {
        return CAIRN_EMALFORMED;
    }
    if (version != PROTO_VERSION) {
        return CAIRN_EVERSION;
    }
    if (!read_u8(&r, &out->type, PROTO_TYPE_MAX) || out->type == 0) {
        return CAIRN_EMALFORMED;
    }
    if (!read_op(&r, &out->op) || !read_cmps(&r, a, out) ||
        !read_ops(&r, a, &out->then_ops, &out->n_then) ||
        !read_ops(&r, a, &out->else_ops, &out->n_else) || !mp_uint(&r, &out->number) ||
        (n > 8 && !mp_uint(&r, &out->age_ms)) || (n > 9 && !mp_uint(&r, &out->min_revision)) ||
        (n > 10 && !mp_uint(&r, &out->max_staleness_ms)) ||
        (n > 11 && !mp_uint(&r, &out->wait_ms)) || !skip_rest(&r, n, 12) || !mp_done(&r)) {
        return r.nomem ? CAIRN_ENOMEM : CAIRN_EMALFORMED;
    }
    /* A verb is a short word: anything else is not a request of ours. */
    if ((out->type == PROTO_BACKUP || out->type == PROTO_MEMBER) &&
        (out->op.key.len == 0 || out->op.key.len > PROTO_BACKUP_VERB_MAX)) {
        return CAIRN_EMALFORMED;
    }
    return 0;
}

/* The head of a response of n_fields elements (11 up to the status; more
 * when a watch or text follows). */
static void pack_head(struct proto_writer *w, uint32_t n_fields,
                      const struct proto_response_head *h)
{
    msgpack_packer *pk = &w->pk;
    msgpack_pack_array(pk, n_fields);
    msgpack_pack_uint32(pk, PROTO_VERSION);
    msgpack_pack_uint64(pk, h->id);
    msgpack_pack_uint8(pk, (uint8_t)(h->type | PROTO_RESPONSE_FLAG));
    msgpack_pack_int(pk, h->code);
    pack_str(pk, h->message);
    pack_str(pk, h->leader);
    /* Fixed width so that proto_patch_revision() can rewrite it in place. */
    w->rev_offset = w->out->len;
    msgpack_pack_fix_uint64(pk, h->revision);
    msgpack_pack_uint64(pk, h->compact_revision);
    w->ok_offset = w->out->len;
    pack_bool(pk, h->succeeded);
    msgpack_pack_array(pk, h->n_results);
}

void proto_pack_response_head(struct proto_writer *w, const struct proto_response_head *h)
{
    pack_head(w, 11, h);
}

void proto_patch_revision(struct proto_writer *w, uint64_t revision)
{
    uint8_t *p;
    int i;
    if (w->failed) {
        return;
    }
    p = (uint8_t *)w->out->data + w->rev_offset;
    /* 0xcf is msgpack's uint64 tag, written by msgpack_pack_fix_uint64. */
    p[0] = 0xcf;
    for (i = 0; i < 8; i++) {
        p[1 + i] = (uint8_t)(revision >> (56 - 8 * i));
    }
}

void proto_patch_succeeded(struct proto_writer *w, bool succeeded)
{
    if (w->failed) {
        return;
    }
    w->out->data[w->ok_offset] = (char)(succeeded ? 0xc3 : 0xc2);
}

void proto_pack_result(struct proto_writer *w, uint32_t n_kvs, uint64_t deleted, bool more)
{
    msgpack_pack_array(&w->pk, 3);
    msgpack_pack_uint64(&w->pk, deleted);
    pack_bool(&w->pk, more);
    msgpack_pack_array(&w->pk, n_kvs);
}

void proto_pack_kv(struct proto_writer *w, const struct cairn_kv *kv)
{
    msgpack_packer *pk = &w->pk;
    msgpack_pack_array(pk, 7);
    pack_bytes(pk, kv->key, kv->key_len);
    pack_bytes(pk, kv->value, kv->value_len);
    msgpack_pack_uint64(pk, kv->create_revision);
    msgpack_pack_uint64(pk, kv->mod_revision);
    msgpack_pack_uint64(pk, kv->version);
    msgpack_pack_int64(pk, kv->time_ms);
    pack_bool(pk, kv->deleted);
}

void proto_pack_nil(struct proto_writer *w)
{
    msgpack_pack_nil(&w->pk);
}

static void pack_key(msgpack_packer *pk, const char *k)
{
    pack_str(pk, k);
}

static void pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    pack_key(pk, k);
    msgpack_pack_uint64(pk, v);
}

void proto_pack_status(struct proto_writer *w, const struct cairn_status *s)
{
    msgpack_packer *pk = &w->pk;
    size_t i;
    size_t n;
    msgpack_pack_map(pk, 27);
    pack_kv_u64(pk, "id", s->id);
    pack_key(pk, "state");
    pack_str(pk, s->state);
    pack_kv_u64(pk, "leader", s->leader_id);
    pack_key(pk, "leader_addr");
    pack_str(pk, s->leader_address);
    pack_kv_u64(pk, "term", s->term);
    pack_kv_u64(pk, "commit", s->commit_index);
    pack_kv_u64(pk, "applied", s->applied_index);
    pack_kv_u64(pk, "last", s->last_index);
    pack_kv_u64(pk, "rev", s->revision);
    pack_kv_u64(pk, "compact", s->compact_revision);
    pack_kv_u64(pk, "keys", s->keys);
    pack_kv_u64(pk, "bytes", s->bytes);
    pack_kv_u64(pk, "retain", s->retain_versions);
    pack_kv_u64(pk, "snapshots", s->snapshots);
    pack_kv_u64(pk, "read_barriers", s->read_barriers);
    pack_kv_u64(pk, "linearizable_reads", s->linearizable_reads);
    pack_kv_u64(pk, "watchers", s->watchers);
    pack_kv_u64(pk, "watch_events", s->watch_events);
    pack_kv_u64(pk, "watch_catchups", s->watch_catchups);
    pack_kv_u64(pk, "watch_snapshots", s->watch_snapshots);
    pack_kv_u64(pk, "state_hash", s->state_hash);
    pack_kv_u64(pk, "cluster_id", s->cluster_id);
    pack_kv_u64(pk, "restored_as", s->restored_as);
    pack_key(pk, "http_addr");
    pack_str(pk, s->http_address != NULL ? s->http_address : "");
    pack_key(pk, "members");
    msgpack_pack_array(pk, s->n_members);
    for (i = 0; i < s->n_members; i++) {
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint64(pk, s->members[i].id);
        pack_str(pk, s->members[i].raft_address);
        pack_str(pk, s->members[i].client_address);
        pack_str(pk, s->members[i].role);
    }
    /* [[prefix, versions, age_ms]...]; a table beyond the cap is cut short
     * rather than refused by every decoder. */
    pack_key(pk, "retention");
    n = s->n_retention < CAIRN_RETENTION_POLICIES_MAX ? s->n_retention
                                                      : CAIRN_RETENTION_POLICIES_MAX;
    msgpack_pack_array(pk, (uint32_t)n);
    for (i = 0; i < n; i++) {
        msgpack_pack_array(pk, 3);
        pack_bytes(pk, s->retention[i].prefix, s->retention[i].prefix_len);
        msgpack_pack_uint64(pk, s->retention[i].versions);
        msgpack_pack_uint64(pk, s->retention[i].age_ms);
    }
    pack_key(pk, "reserved");
    msgpack_pack_nil(pk);
}

void proto_pack_watch_head(struct proto_writer *w, uint64_t watch_id, uint8_t kind,
                           uint64_t revision, uint64_t compact_revision, bool more, uint32_t part,
                           uint32_t n_events)
{
    msgpack_packer *pk = &w->pk;
    msgpack_pack_array(pk, 12);
    msgpack_pack_uint32(pk, PROTO_VERSION);
    w->id_offset = w->out->len + 1; /* after the 0xcf marker */
    msgpack_pack_fix_uint64(pk, watch_id);
    msgpack_pack_uint8(pk, (uint8_t)(PROTO_WATCH | PROTO_RESPONSE_FLAG));
    msgpack_pack_int(pk, 0);
    pack_str(pk, NULL);
    pack_str(pk, NULL);
    msgpack_pack_uint64(pk, revision);
    msgpack_pack_uint64(pk, compact_revision);
    msgpack_pack_true(pk);
    msgpack_pack_array(pk, 0);
    msgpack_pack_nil(pk);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, kind);
    pack_bool(pk, more);
    msgpack_pack_uint32(pk, part);
    msgpack_pack_array(pk, n_events);
}

void proto_pack_event_head(struct proto_writer *w)
{
    msgpack_pack_array(&w->pk, 2);
}

void proto_pack_event(struct proto_writer *w, const struct cairn_kv *kv,
                      const struct cairn_kv *prev)
{
    proto_pack_event_head(w);
    proto_pack_kv(w, kv);
    if (prev != NULL) {
        proto_pack_kv(w, prev);
    } else {
        msgpack_pack_nil(&w->pk);
    }
}

void proto_pack_raw(struct proto_writer *w, const void *bytes, size_t len)
{
    if (writer_append_cb(w, bytes, len) != 0) {
        w->failed = true;
    }
}

int proto_encode_error(struct buf *out, uint64_t id, uint8_t type, int code, const char *message,
                       const char *leader)
{
    struct proto_writer w;
    struct proto_response_head h;
    memset(&h, 0, sizeof(h));
    h.id = id;
    h.type = type;
    h.code = code;
    h.message = message;
    h.leader = leader;
    proto_writer_begin(&w, out);
    proto_pack_response_head(&w, &h);
    proto_pack_nil(&w);
    return proto_writer_end(&w);
}

bool proto_type_has_text(uint8_t type)
{
    return type == PROTO_METRICS || type == PROTO_BACKUP || type == PROTO_MEMBER ||
           type == PROTO_TRANSFER;
}

int proto_encode_text(struct buf *out, uint64_t id, uint8_t type, uint64_t revision,
                      const char *text, size_t len)
{
    struct proto_writer w;
    struct proto_response_head h;
    if (len > UINT32_MAX) {
        return CAIRN_ETOOLARGE; /* msgpack's str limit; never near it */
    }
    memset(&h, 0, sizeof(h));
    h.id = id;
    h.type = type;
    h.revision = revision;
    h.succeeded = true;
    proto_writer_begin(&w, out);
    pack_head(&w, 13, &h);
    msgpack_pack_nil(&w.pk); /* status */
    msgpack_pack_nil(&w.pk); /* watch */
    msgpack_pack_str(&w.pk, len);
    msgpack_pack_str_body(&w.pk, text, len);
    return proto_writer_end(&w);
}

int proto_encode_metrics(struct buf *out, uint64_t id, uint64_t revision, const char *text,
                         size_t len)
{
    return proto_encode_text(out, id, PROTO_METRICS, revision, text, len);
}

/* Response decoding: everything is copied into an arena that the returned
 * result or status owns, so the payload can be released at once. */

struct holder
{
    struct arena arena;
};

static char *arena_strndup(struct arena *a, const char *p, size_t len)
{
    char *s = arena_alloc(a, len + 1);
    if (s != NULL) {
        memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

static bool read_str_copy(struct mp_reader *r, struct arena *a, const char **out)
{
    const char *p;
    uint32_t len;
    if (!mp_bytes(r, &p, &len)) {
        return false;
    }
    *out = arena_strndup(a, p, len);
    if (*out == NULL) {
        mp_fail_nomem(r);
        return false;
    }
    return true;
}

static bool read_kv(struct mp_reader *r, struct arena *a, struct cairn_kv *kv)
{
    uint32_t n;
    const char *p;
    uint32_t len;
    int64_t t;
    if (!mp_array(r, &n) || n < 7) {
        r->err = true;
        return false;
    }
    if (!mp_bytes(r, &p, &len)) {
        return false;
    }
    kv->key = arena_strndup(a, p, len);
    kv->key_len = len;
    if (!mp_bytes(r, &p, &len)) {
        return false;
    }
    kv->value = arena_strndup(a, p, len);
    kv->value_len = len;
    if (kv->key == NULL || kv->value == NULL) {
        mp_fail_nomem(r);
        return false;
    }
    if (!mp_uint(r, &kv->create_revision) || !mp_uint(r, &kv->mod_revision) ||
        !mp_uint(r, &kv->version) || !mp_int(r, &t) || !mp_bool(r, &kv->deleted)) {
        return false;
    }
    kv->time_ms = t;
    return skip_rest(r, n, 7);
}

static bool read_results(struct mp_reader *r, struct arena *a, struct cairn_result *res)
{
    uint32_t n;
    uint32_t i;
    if (!mp_array(r, &n)) {
        return false;
    }
    res->n_ops = n;
    res->ops = arena_alloc(a, (n > 0 ? n : 1) * sizeof(*res->ops));
    if (res->ops == NULL) {
        mp_fail_nomem(r);
        return false;
    }
    for (i = 0; i < n; i++) {
        struct cairn_op_result *op = &res->ops[i];
        uint32_t m;
        uint32_t k;
        uint32_t j;
        if (!mp_array(r, &m) || m < 3 || !mp_uint(r, &op->deleted) || !mp_bool(r, &op->more) ||
            !mp_array(r, &k)) {
            r->err = true;
            return false;
        }
        op->n_kvs = k;
        op->kvs = arena_alloc(a, (k > 0 ? k : 1) * sizeof(*op->kvs));
        if (op->kvs == NULL) {
            mp_fail_nomem(r);
            return false;
        }
        for (j = 0; j < k; j++) {
            if (!read_kv(r, a, &op->kvs[j])) {
                return false;
            }
        }
        if (!skip_rest(r, m, 3)) {
            return false;
        }
    }
    return true;
}

static bool read_watch(struct mp_reader *r, struct arena *a, struct proto_watch_msg *wm)
{
    uint32_t n;
    uint32_t k;
    uint32_t i;
    uint64_t part;
    if (!mp_array(r, &n) || n < 4) {
        r->err = true;
        return false;
    }
    if (!read_u8(r, &wm->kind, PROTO_WATCH_KIND_MAX) || wm->kind == 0 || !mp_bool(r, &wm->more) ||
        !mp_uint(r, &part) || part > UINT32_MAX || !mp_array(r, &k)) {
        r->err = true;
        return false;
    }
    wm->part = (uint32_t)part;
    wm->n_events = k;
    wm->events = arena_alloc(a, (k > 0 ? k : 1) * sizeof(*wm->events));
    if (wm->events == NULL) {
        mp_fail_nomem(r);
        return false;
    }
    for (i = 0; i < k; i++) {
        struct cairn_event *e = &wm->events[i];
        uint32_t m;
        memset(e, 0, sizeof(*e));
        if (!mp_array(r, &m) || m < 2 || !read_kv(r, a, &e->kv)) {
            r->err = true;
            return false;
        }
        e->type = e->kv.deleted ? CAIRN_EVENT_DELETE : CAIRN_EVENT_PUT;
        if (!mp_try_nil(r)) {
            struct cairn_kv *prev = arena_alloc(a, sizeof(*prev));
            if (prev == NULL) {
                mp_fail_nomem(r);
                return false;
            }
            if (!read_kv(r, a, prev)) {
                return false;
            }
            e->prev_kv = prev;
        }
        if (!skip_rest(r, m, 2)) {
            return false;
        }
    }
    return skip_rest(r, n, 4);
}

static bool key_is(const char *p, uint32_t len, const char *name)
{
    return strlen(name) == len && memcmp(p, name, len) == 0;
}

/* The status's retention table: at most CAIRN_RETENTION_POLICIES_MAX. */
static bool read_retention(struct mp_reader *r, struct arena *a, struct cairn_status *s)
{
    uint32_t m;
    uint32_t j;
    if (!mp_array(r, &m) || m > CAIRN_RETENTION_POLICIES_MAX) {
        r->err = true;
        return false;
    }
    s->n_retention = m;
    s->retention = arena_alloc(a, (m > 0 ? m : 1) * sizeof(*s->retention));
    if (s->retention == NULL) {
        mp_fail_nomem(r);
        return false;
    }
    for (j = 0; j < m; j++) {
        struct cairn_retention *p = &s->retention[j];
        const char *prefix;
        uint32_t len;
        uint32_t f;
        if (!mp_array(r, &f) || f < 3 || !mp_bytes(r, &prefix, &len)) {
            r->err = true;
            return false;
        }
        p->prefix = arena_strndup(a, prefix, len);
        if (p->prefix == NULL) {
            mp_fail_nomem(r);
            return false;
        }
        p->prefix_len = len;
        if (!mp_uint(r, &p->versions) || !mp_uint(r, &p->age_ms) || !skip_rest(r, f, 3)) {
            return false;
        }
    }
    return true;
}

static bool read_status(struct mp_reader *r, struct arena *a, struct cairn_status *s)
{
    uint32_t n;
    uint32_t i;
    if (!mp_map(r, &n)) {
        return false;
    }
    s->state = "";
    s->leader_address = "";
    s->http_address = "";
    for (i = 0; i < n; i++) {
        const char *k;
        uint32_t klen;
        uint64_t *field = NULL;
        if (!mp_bytes(r, &k, &klen)) {
            return false;
        }
        if (key_is(k, klen, "id")) {
            field = &s->id;
        } else if (key_is(k, klen, "leader")) {
            field = &s->leader_id;
        } else if (key_is(k, klen, "term")) {
            field = &s->term;
        } else if (key_is(k, klen, "commit")) {
            field = &s->commit_index;
        } else if (key_is(k, klen, "applied")) {
            field = &s->applied_index;
        } else if (key_is(k, klen, "last")) {
            field = &s->last_index;
        } else if (key_is(k, klen, "rev")) {
            field = &s->revision;
        } else if (key_is(k, klen, "compact")) {
            field = &s->compact_revision;
        } else if (key_is(k, klen, "keys")) {
            field = &s->keys;
        } else if (key_is(k, klen, "bytes")) {
            field = &s->bytes;
        } else if (key_is(k, klen, "retain")) {
            field = &s->retain_versions;
        } else if (key_is(k, klen, "snapshots")) {
            field = &s->snapshots;
        } else if (key_is(k, klen, "read_barriers")) {
            field = &s->read_barriers;
        } else if (key_is(k, klen, "linearizable_reads")) {
            field = &s->linearizable_reads;
        } else if (key_is(k, klen, "watchers")) {
            field = &s->watchers;
        } else if (key_is(k, klen, "watch_events")) {
            field = &s->watch_events;
        } else if (key_is(k, klen, "watch_catchups")) {
            field = &s->watch_catchups;
        } else if (key_is(k, klen, "watch_snapshots")) {
            field = &s->watch_snapshots;
        } else if (key_is(k, klen, "state_hash")) {
            field = &s->state_hash;
        } else if (key_is(k, klen, "cluster_id")) {
            field = &s->cluster_id;
        } else if (key_is(k, klen, "restored_as")) {
            field = &s->restored_as;
        }
        if (field != NULL) {
            if (!mp_uint(r, field)) {
                return false;
            }
        } else if (key_is(k, klen, "state")) {
            if (!read_str_copy(r, a, &s->state)) {
                return false;
            }
        } else if (key_is(k, klen, "leader_addr")) {
            if (!read_str_copy(r, a, &s->leader_address)) {
                return false;
            }
        } else if (key_is(k, klen, "http_addr")) {
            if (!read_str_copy(r, a, &s->http_address)) {
                return false;
            }
        } else if (key_is(k, klen, "retention")) {
            if (!read_retention(r, a, s)) {
                return false;
            }
        } else if (key_is(k, klen, "members")) {
            uint32_t m;
            uint32_t j;
            if (!mp_array(r, &m)) {
                return false;
            }
            s->n_members = m;
            s->members = arena_alloc(a, (m > 0 ? m : 1) * sizeof(*s->members));
            if (s->members == NULL) {
                mp_fail_nomem(r);
                return false;
            }
            for (j = 0; j < m; j++) {
                struct cairn_member *mem = &s->members[j];
                uint32_t f;
                if (!mp_array(r, &f) || f < 4 || !mp_uint(r, &mem->id) ||
                    !read_str_copy(r, a, &mem->raft_address) ||
                    !read_str_copy(r, a, &mem->client_address) ||
                    !read_str_copy(r, a, &mem->role) || !skip_rest(r, f, 4)) {
                    r->err = true;
                    return false;
                }
            }
        } else if (!mp_skip(r)) {
            return false;
        }
    }
    return true;
}

int proto_decode_response(const char *payload, size_t len, struct proto_response *out)
{
    struct mp_reader r;
    uint32_t n;
    uint64_t version;
    int64_t code;
    uint8_t type;
    struct holder *h = NULL;
    struct arena a;
    struct cairn_result *res = NULL;
    struct cairn_status *st = NULL;
    struct proto_watch_msg *wm = NULL;
    uint32_t known = 12;
    int rv = CAIRN_EMALFORMED;

    memset(out, 0, sizeof(*out));
    arena_init(&a);
    mp_init(&r, payload, len);
    if (!mp_array(&r, &n) || n < 11 || !mp_uint(&r, &version) || !mp_uint(&r, &out->id)) {
        goto err;
    }
    if (version != PROTO_VERSION) {
        rv = CAIRN_EVERSION;
        goto err;
    }
    if (!read_u8(&r, &type, 0xff) || (type & PROTO_RESPONSE_FLAG) == 0 || !mp_int(&r, &code)) {
        goto err;
    }
    out->type = type & (uint8_t)~PROTO_RESPONSE_FLAG;
    out->code = (int)code;
    res = arena_alloc(&a, sizeof(*res));
    if (res == NULL) {
        rv = CAIRN_ENOMEM;
        goto err;
    }
    memset(res, 0, sizeof(*res));
    if (!read_str_copy(&r, &a, &out->message) || !read_str_copy(&r, &a, &out->leader) ||
        !mp_uint(&r, &res->revision) || !mp_uint(&r, &res->compact_revision) ||
        !mp_bool(&r, &res->succeeded) || !read_results(&r, &a, res)) {
        goto err;
    }
    if (!mp_try_nil(&r)) {
        st = arena_alloc(&a, sizeof(*st));
        if (st == NULL) {
            rv = CAIRN_ENOMEM;
            goto err;
        }
        memset(st, 0, sizeof(*st));
        if (!read_status(&r, &a, st)) {
            goto err;
        }
    }
    if (n > 11 && !mp_try_nil(&r)) {
        wm = arena_alloc(&a, sizeof(*wm));
        if (wm == NULL) {
            rv = CAIRN_ENOMEM;
            goto err;
        }
        memset(wm, 0, sizeof(*wm));
        if (!read_watch(&r, &a, wm)) {
            goto err;
        }
    }
    /* The text is a METRICS, BACKUP, MEMBER or TRANSFER answer's; in any
     * other response a thirteenth element is a later version's field,
     * skipped like any other. */
    if (n > 12 && proto_type_has_text(out->type)) {
        known = 13;
        if (!mp_try_nil(&r)) {
            const char *p;
            uint32_t text_len;
            if (!mp_bytes(&r, &p, &text_len)) {
                goto err;
            }
            out->text = arena_strndup(&a, p, text_len);
            if (out->text == NULL) {
                rv = CAIRN_ENOMEM;
                goto err;
            }
            out->text_len = text_len;
        }
    }
    if (!skip_rest(&r, n, known) || !mp_done(&r)) {
        goto err;
    }
    /* The arena's first owner is a holder allocated from itself. */
    h = arena_alloc(&a, sizeof(*h));
    if (h == NULL) {
        rv = CAIRN_ENOMEM;
        goto err;
    }
    h->arena = a;
    res->internal_ = h;
    out->result = res;
    if (st != NULL) {
        st->internal_ = h;
        out->status = st;
    }
    out->watch = wm;
    return 0;

err:
    arena_free(&a);
    memset(out, 0, sizeof(*out));
    return r.nomem ? CAIRN_ENOMEM : rv;
}

void proto_response_free(struct proto_response *r)
{
    /* result and status share one arena: free it once. */
    if (r->result != NULL) {
        struct holder *h = r->result->internal_;
        struct arena a = h->arena;
        arena_free(&a);
    } else if (r->status != NULL) {
        struct holder *h = r->status->internal_;
        struct arena a = h->arena;
        arena_free(&a);
    }
    memset(r, 0, sizeof(*r));
}
