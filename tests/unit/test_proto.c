/*
 * Unit tests of the wire codec (client/src/proto.c) and the bounds-checked
 * msgpack reader under it (client/src/mpread.c).
 *
 * Round trips cover every request type and a response with every part
 * (results, kvs, status map). The robustness tests feed the decoders bytes a
 * hostile peer could send: every truncation of valid messages, counts that
 * claim far more elements than the bytes hold, a wrong version, nesting past
 * the skip depth limit and trailing garbage. Each must come back as an error
 * code, never a crash, and without allocating on the strength of a count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <msgpack.h>

#include "buf.h"
#include "mpread.h"
#include "proto.h"

/* Helpers */

static struct proto_slice slice(const char *s)
{
    struct proto_slice out;
    out.ptr = s;
    out.len = (uint32_t)strlen(s);
    return out;
}

static void assert_slice_eq(struct proto_slice a, struct proto_slice b)
{
    assert_int_equal(a.len, b.len);
    if (a.len > 0) {
        assert_memory_equal(a.ptr, b.ptr, a.len);
    }
}

static void assert_op_eq(const struct proto_op *a, const struct proto_op *b)
{
    assert_int_equal(a->type, b->type);
    assert_slice_eq(a->key, b->key);
    assert_slice_eq(a->value, b->value);
    assert_int_equal(a->prefix, b->prefix);
    assert_int_equal(a->prev_kv, b->prev_kv);
    assert_int_equal(a->limit, b->limit);
    assert_slice_eq(a->after, b->after);
    assert_int_equal(a->revision, b->revision);
    assert_int_equal(a->stale, b->stale);
}

static void assert_request_eq(const struct proto_request *a, const struct proto_request *b)
{
    uint32_t i;
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->type, b->type);
    assert_op_eq(&a->op, &b->op);
    assert_int_equal(a->n_cmps, b->n_cmps);
    for (i = 0; i < a->n_cmps; i++) {
        assert_slice_eq(a->cmps[i].key, b->cmps[i].key);
        assert_int_equal(a->cmps[i].target, b->cmps[i].target);
        assert_int_equal(a->cmps[i].op, b->cmps[i].op);
        assert_slice_eq(a->cmps[i].value, b->cmps[i].value);
        assert_int_equal(a->cmps[i].number, b->cmps[i].number);
    }
    assert_int_equal(a->n_then, b->n_then);
    for (i = 0; i < a->n_then; i++) {
        assert_op_eq(&a->then_ops[i], &b->then_ops[i]);
    }
    assert_int_equal(a->n_else, b->n_else);
    for (i = 0; i < a->n_else; i++) {
        assert_op_eq(&a->else_ops[i], &b->else_ops[i]);
    }
    assert_int_equal(a->number, b->number);
    assert_int_equal(a->age_ms, b->age_ms);
    assert_int_equal(a->min_revision, b->min_revision);
    assert_int_equal(a->max_staleness_ms, b->max_staleness_ms);
    assert_int_equal(a->wait_ms, b->wait_ms);
}

/* Encode req as a frame; *payload and *len describe the payload inside b. */
static void encode_request(struct buf *b, const struct proto_request *req, const char **payload,
                           size_t *len)
{
    size_t n = 0;
    buf_init(b);
    assert_int_equal(proto_encode_request(b, req), 0);
    assert_int_equal(proto_frame_peek(b->data, b->len, PROTO_FRAME_SIZE_MAX, &n), 1);
    assert_int_equal(n + PROTO_FRAME_HEADER_SIZE, b->len);
    *payload = b->data + PROTO_FRAME_HEADER_SIZE;
    *len = n;
}

/* A malloc'ed copy of a payload, so that ASan catches any read past its end
 * (the frame buffer has spare capacity behind the payload). */
static char *exact_copy(const char *p, size_t len)
{
    char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    if (len > 0) {
        memcpy(copy, p, len);
    }
    return copy;
}

static struct proto_op make_op(uint8_t type, const char *key, const char *value)
{
    struct proto_op op;
    memset(&op, 0, sizeof(op));
    op.type = type;
    op.key = slice(key);
    op.value = slice(value);
    op.after = slice("");
    return op;
}

/* Fills a TXN request exercising every compare target and operator and every
 * op type in both branches; the arrays live in the caller. */
static void make_txn(struct proto_request *req, struct proto_cmp cmps[4],
                     struct proto_op then_ops[3], struct proto_op else_ops[2])
{
    memset(req, 0, sizeof(*req));
    req->id = 0xfedcba9876543210ull;
    req->type = PROTO_TXN;
    cmps[0] = (struct proto_cmp){slice("k1"), CAIRN_CMP_VALUE, CAIRN_CMP_EQUAL, slice("v1"), 0};
    cmps[1] = (struct proto_cmp){slice("k2"), CAIRN_CMP_VERSION, CAIRN_CMP_NOT_EQUAL, slice(""), 3};
    cmps[2] = (struct proto_cmp){slice("k3"), CAIRN_CMP_MOD, CAIRN_CMP_LESS, slice(""), 1u << 20};
    cmps[3] =
        (struct proto_cmp){slice("k4"), CAIRN_CMP_CREATE, CAIRN_CMP_GREATER, slice(""), UINT64_MAX};
    then_ops[0] = make_op(CAIRN_OP_PUT, "k1", "new value");
    then_ops[0].prev_kv = true;
    then_ops[1] = make_op(CAIRN_OP_DEL, "dir/", "");
    then_ops[1].prefix = true;
    then_ops[2] = make_op(CAIRN_OP_GET, "dir/", "");
    then_ops[2].prefix = true;
    then_ops[2].limit = 7;
    then_ops[2].after = slice("dir/a");
    else_ops[0] = make_op(CAIRN_OP_GET, "k1", "");
    else_ops[0].revision = 42;
    else_ops[1] = make_op(CAIRN_OP_PUT, "k\0bin", "");
    else_ops[1].key.len = 5; /* a key with a NUL byte inside */
    req->cmps = cmps;
    req->n_cmps = 4;
    req->then_ops = then_ops;
    req->n_then = 3;
    req->else_ops = else_ops;
    req->n_else = 2;
}

/* A msgpack buffer for handcrafted messages. */
struct mpbuf
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static void mpbuf_init(struct mpbuf *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mpbuf_raw(struct mpbuf *m, const void *bytes, size_t len)
{
    msgpack_sbuffer_write(&m->sb, bytes, len);
}

static void mpbuf_free(struct mpbuf *m)
{
    msgpack_sbuffer_destroy(&m->sb);
}

/* Packs an op with nine fields, as pack_op in proto.c does, plus extra
 * elements (extra > 0) that a newer version might append. */
static void pack_op_fields(msgpack_packer *pk, uint8_t type, unsigned extra)
{
    unsigned i;
    msgpack_pack_array(pk, 9 + extra);
    msgpack_pack_uint8(pk, type);
    msgpack_pack_bin(pk, 1);
    msgpack_pack_bin_body(pk, "k", 1);
    msgpack_pack_nil(pk); /* value: nil reads as an empty slice */
    msgpack_pack_false(pk);
    msgpack_pack_false(pk);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_nil(pk);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_false(pk);
    for (i = 0; i < extra; i++) {
        msgpack_pack_str(pk, 5);
        msgpack_pack_str_body(pk, "extra", 5);
    }
}

/* The head of a GET request: [1, id, GET, op, [], [], [], 0] with n_fields
 * array elements, of which those past 8 are left for the caller to pack. */
/* The first eight fields of a request claiming n_fields: version, id, type,
 * an op of op_type (with extra_op_fields unknown trailing fields), no
 * compares, empty branches, number 0. */
static void pack_request_head(msgpack_packer *pk, uint32_t n_fields, uint64_t version, uint64_t id,
                              uint64_t type, uint8_t op_type, unsigned extra_op_fields)
{
    msgpack_pack_array(pk, n_fields);
    msgpack_pack_uint64(pk, version);
    msgpack_pack_uint64(pk, id);
    msgpack_pack_uint64(pk, type);
    pack_op_fields(pk, op_type, extra_op_fields);
    msgpack_pack_array(pk, 0);
    msgpack_pack_array(pk, 0);
    msgpack_pack_array(pk, 0);
    msgpack_pack_uint64(pk, 0);
}

static void pack_get_head(msgpack_packer *pk, uint32_t n_fields, uint64_t version)
{
    pack_request_head(pk, n_fields, version, 77, PROTO_GET, CAIRN_OP_GET, 0);
}

static int decode_bytes(const void *p, size_t len, struct proto_request *req)
{
    struct arena a;
    char *copy = exact_copy(p, len);
    int rv;
    arena_init(&a);
    rv = proto_decode_request(copy, len, &a, req);
    arena_free(&a);
    free(copy);
    return rv;
}

/* Encodes req as a frame, decodes the frame back and checks that every
 * field survived. */
static void assert_request_round_trips(const struct proto_request *req)
{
    struct proto_request out;
    struct buf b;
    struct arena a;
    const char *payload;
    size_t len;
    encode_request(&b, req, &payload, &len);
    arena_init(&a);
    assert_int_equal(proto_decode_request(payload, len, &a, &out), 0);
    assert_request_eq(req, &out);
    arena_free(&a);
    buf_free(&b);
}

/* Requests */

static void test_request_round_trip_simple_types(void **state)
{
    static const uint8_t types[] = {PROTO_GET,     PROTO_PUT,    PROTO_DEL,       PROTO_HISTORY,
                                    PROTO_COMPACT, PROTO_STATUS, PROTO_RETENTION, PROTO_METRICS};
    static const uint8_t op_types[] = {
        CAIRN_OP_GET, CAIRN_OP_PUT, CAIRN_OP_DEL, CAIRN_OP_GET, 0, 0, 0, 0};
    size_t t;
    (void)state;
    for (t = 0; t < sizeof(types); t++) {
        struct proto_request req;
        memset(&req, 0, sizeof(req));
        req.id = 1000 + t;
        req.type = types[t];
        req.op = make_op(op_types[t], "config/service/port", t == 1 ? "8080" : "");
        req.op.prefix = t % 2 == 0;
        req.op.prev_kv = t % 3 == 0;
        req.op.limit = t * 1000;
        req.op.after = slice(t == 0 ? "config/service/a" : "");
        req.op.revision = t == 0 ? UINT64_MAX : t;
        req.op.stale = t == 0;
        req.number = types[t] == PROTO_COMPACT ? 123456789 : types[t] == PROTO_RETENTION ? 5 : 0;
        req.min_revision = t == 0 ? UINT64_MAX : t * 7;
        req.max_staleness_ms = t * 250;
        req.wait_ms = t == 3 ? 0 : 1000 + t;
        assert_request_round_trips(&req);
    }
}

static void test_request_round_trip_txn(void **state)
{
    struct proto_request req;
    struct proto_request out;
    struct proto_cmp cmps[4];
    struct proto_op then_ops[3];
    struct proto_op else_ops[2];
    struct buf b;
    struct arena a;
    const char *payload;
    size_t len;
    (void)state;
    make_txn(&req, cmps, then_ops, else_ops);
    encode_request(&b, &req, &payload, &len);
    arena_init(&a);
    assert_int_equal(proto_decode_request(payload, len, &a, &out), 0);
    assert_request_eq(&req, &out);
    /* Slices point into the payload: nothing was copied. */
    assert_true(out.then_ops[0].value.ptr >= payload && out.then_ops[0].value.ptr < payload + len);
    arena_free(&a);
    buf_free(&b);
}

static void test_request_empty_txn_and_large_values(void **state)
{
    struct proto_request req;
    struct proto_request out;
    struct buf b;
    struct arena a;
    const char *payload;
    size_t len;
    char *big = malloc(70000); /* needs a bin32 header */
    (void)state;
    assert_non_null(big);
    memset(big, 'x', 69999);
    big[69999] = '\0';
    memset(&req, 0, sizeof(req));
    req.id = 1;
    req.type = PROTO_PUT;
    req.op = make_op(CAIRN_OP_PUT, "big", big);
    encode_request(&b, &req, &payload, &len);
    arena_init(&a);
    assert_int_equal(proto_decode_request(payload, len, &a, &out), 0);
    assert_request_eq(&req, &out);
    arena_free(&a);
    buf_free(&b);

    memset(&req, 0, sizeof(req));
    req.id = 2;
    req.type = PROTO_TXN;
    encode_request(&b, &req, &payload, &len);
    arena_init(&a);
    assert_int_equal(proto_decode_request(payload, len, &a, &out), 0);
    assert_request_eq(&req, &out);
    assert_null(out.cmps);
    assert_null(out.then_ops);
    assert_null(out.else_ops);
    assert_null(a.head); /* nothing to allocate */
    arena_free(&a);
    buf_free(&b);
    free(big);
}

static void test_request_pipelined_frames(void **state)
{
    struct proto_request req;
    struct proto_request out;
    struct buf b;
    struct arena a;
    size_t n;
    uint64_t id;
    (void)state;
    buf_init(&b);
    memset(&req, 0, sizeof(req));
    req.type = PROTO_GET;
    req.op = make_op(CAIRN_OP_GET, "k", "");
    for (id = 1; id <= 3; id++) {
        req.id = id;
        assert_int_equal(proto_encode_request(&b, &req), 0);
    }
    for (id = 1; id <= 3; id++) {
        assert_int_equal(proto_frame_peek(b.data, b.len, 1024, &n), 1);
        arena_init(&a);
        assert_int_equal(proto_decode_request(b.data + PROTO_FRAME_HEADER_SIZE, n, &a, &out), 0);
        assert_int_equal(out.id, id);
        arena_free(&a);
        buf_consume(&b, PROTO_FRAME_HEADER_SIZE + n);
    }
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_request_forward_compatible_extra_fields(void **state)
{
    struct mpbuf m;
    struct proto_request out;
    (void)state;
    /* A request with a thirteenth element and an op with two more fields. */
    mpbuf_init(&m);
    pack_request_head(&m.pk, 13, PROTO_VERSION, 5, PROTO_GET, CAIRN_OP_GET, 2);
    msgpack_pack_uint64(&m.pk, 0); /* age_ms */
    msgpack_pack_uint64(&m.pk, 0); /* min_revision */
    msgpack_pack_uint64(&m.pk, 0); /* max_staleness_ms */
    msgpack_pack_uint64(&m.pk, 0); /* wait_ms */
    msgpack_pack_map(&m.pk, 1);    /* the new trailing element */
    msgpack_pack_str(&m.pk, 1);
    msgpack_pack_str_body(&m.pk, "x", 1);
    msgpack_pack_double(&m.pk, 1.5);
    assert_int_equal(decode_bytes(m.sb.data, m.sb.size, &out), 0);
    assert_int_equal(out.id, 5);
    assert_int_equal(out.op.key.len, 1);
    assert_int_equal(out.op.value.len, 0); /* nil */
    mpbuf_free(&m);
}

/* The read bounds are optional trailing fields: a request of 9 elements
 * (an older client) reads 0 for all three, and a sender may stop after any
 * of them. A bound that is not an unsigned integer is malformed. */
static void test_request_read_bounds_optional(void **state)
{
    unsigned n;
    (void)state;
    for (n = 9; n <= 12; n++) {
        struct mpbuf m;
        struct proto_request out;
        mpbuf_init(&m);
        pack_get_head(&m.pk, n, PROTO_VERSION);
        msgpack_pack_uint64(&m.pk, 0); /* age_ms */
        if (n > 9) {
            msgpack_pack_uint64(&m.pk, 41); /* min_revision */
        }
        if (n > 10) {
            msgpack_pack_uint64(&m.pk, 500); /* max_staleness_ms */
        }
        if (n > 11) {
            msgpack_pack_uint64(&m.pk, 1500); /* wait_ms */
        }
        assert_int_equal(decode_bytes(m.sb.data, m.sb.size, &out), 0);
        assert_int_equal(out.min_revision, n > 9 ? 41 : 0);
        assert_int_equal(out.max_staleness_ms, n > 10 ? 500 : 0);
        assert_int_equal(out.wait_ms, n > 11 ? 1500 : 0);
        mpbuf_free(&m);
    }
    {
        struct mpbuf m;
        struct proto_request out;
        mpbuf_init(&m);
        pack_get_head(&m.pk, 10, PROTO_VERSION);
        msgpack_pack_uint64(&m.pk, 0);
        msgpack_pack_int64(&m.pk, -1); /* a negative min_revision */
        assert_int_equal(decode_bytes(m.sb.data, m.sb.size, &out), CAIRN_EMALFORMED);
        mpbuf_free(&m);
    }
}

static void test_request_invalid_enums(void **state)
{
    struct mpbuf m;
    struct proto_request out;
    uint64_t bad_types[] = {0, PROTO_TYPE_MAX + 1, 255, 256};
    size_t i;
    (void)state;
    for (i = 0; i < 4; i++) {
        mpbuf_init(&m);
        pack_request_head(&m.pk, 8, PROTO_VERSION, 5, bad_types[i], CAIRN_OP_GET, 0);
        assert_int_equal(decode_bytes(m.sb.data, m.sb.size, &out), CAIRN_EMALFORMED);
        mpbuf_free(&m);
    }
    /* Op type beyond CAIRN_OP_DEL in the main op. */
    mpbuf_init(&m);
    pack_request_head(&m.pk, 8, PROTO_VERSION, 5, PROTO_GET, CAIRN_OP_DEL + 1, 0);
    assert_int_equal(decode_bytes(m.sb.data, m.sb.size, &out), CAIRN_EMALFORMED);
    mpbuf_free(&m);
    /* A transaction op of type 0 (only the main op may be "no op"). */
    mpbuf_init(&m);
    msgpack_pack_array(&m.pk, 8);
    msgpack_pack_uint64(&m.pk, PROTO_VERSION);
    msgpack_pack_uint64(&m.pk, 5);
    msgpack_pack_uint8(&m.pk, PROTO_TXN);
    pack_op_fields(&m.pk, 0, 0);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_array(&m.pk, 1);
    pack_op_fields(&m.pk, 0, 0);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_uint64(&m.pk, 0);
    assert_int_equal(decode_bytes(m.sb.data, m.sb.size, &out), CAIRN_EMALFORMED);
    mpbuf_free(&m);
    /* Compare target and operator out of range. */
    for (i = 0; i < 2; i++) {
        mpbuf_init(&m);
        msgpack_pack_array(&m.pk, 8);
        msgpack_pack_uint64(&m.pk, PROTO_VERSION);
        msgpack_pack_uint64(&m.pk, 5);
        msgpack_pack_uint8(&m.pk, PROTO_TXN);
        pack_op_fields(&m.pk, 0, 0);
        msgpack_pack_array(&m.pk, 1);
        msgpack_pack_array(&m.pk, 5);
        msgpack_pack_bin(&m.pk, 1);
        msgpack_pack_bin_body(&m.pk, "k", 1);
        msgpack_pack_uint8(&m.pk, i == 0 ? CAIRN_CMP_CREATE + 1 : CAIRN_CMP_VALUE);
        msgpack_pack_uint8(&m.pk, i == 1 ? CAIRN_CMP_GREATER + 1 : CAIRN_CMP_EQUAL);
        msgpack_pack_nil(&m.pk);
        msgpack_pack_uint64(&m.pk, 0);
        msgpack_pack_array(&m.pk, 0);
        msgpack_pack_array(&m.pk, 0);
        msgpack_pack_uint64(&m.pk, 0);
        assert_int_equal(decode_bytes(m.sb.data, m.sb.size, &out), CAIRN_EMALFORMED);
        mpbuf_free(&m);
    }
    /* Too few fields in the request, an op, or a compare. */
    mpbuf_init(&m);
    pack_get_head(&m.pk, 7, PROTO_VERSION); /* claims 7, holds 8 */
    assert_int_equal(decode_bytes(m.sb.data, m.sb.size, &out), CAIRN_EMALFORMED);
    mpbuf_free(&m);
}

static void test_request_wrong_version(void **state)
{
    struct mpbuf m;
    struct proto_request out;
    (void)state;
    mpbuf_init(&m);
    pack_get_head(&m.pk, 8, PROTO_VERSION + 1);
    assert_int_equal(decode_bytes(m.sb.data, m.sb.size, &out), CAIRN_EVERSION);
    assert_int_equal(out.id, 77); /* so that the error can be answered */
    mpbuf_free(&m);
    mpbuf_init(&m);
    pack_get_head(&m.pk, 8, 0);
    assert_int_equal(decode_bytes(m.sb.data, m.sb.size, &out), CAIRN_EVERSION);
    mpbuf_free(&m);
    /* Sanity: the same bytes with the right version decode. */
    mpbuf_init(&m);
    pack_get_head(&m.pk, 8, PROTO_VERSION);
    assert_int_equal(decode_bytes(m.sb.data, m.sb.size, &out), 0);
    mpbuf_free(&m);
}

static void test_request_trailing_garbage(void **state)
{
    struct proto_request req;
    struct proto_request out;
    struct proto_cmp cmps[4];
    struct proto_op then_ops[3];
    struct proto_op else_ops[2];
    struct buf b;
    const char *payload;
    size_t len;
    char *padded;
    (void)state;
    make_txn(&req, cmps, then_ops, else_ops);
    encode_request(&b, &req, &payload, &len);
    padded = malloc(len + 1);
    assert_non_null(padded);
    memcpy(padded, payload, len);
    padded[len] = 0x00; /* a valid msgpack object, but outside the request */
    assert_int_equal(decode_bytes(padded, len + 1, &out), CAIRN_EMALFORMED);
    padded[len] = (char)0xc0;
    assert_int_equal(decode_bytes(padded, len + 1, &out), CAIRN_EMALFORMED);
    free(padded);
    buf_free(&b);
}

/* Every proper prefix of a valid payload must be refused. */
static void check_request_truncations(const struct proto_request *req)
{
    struct buf b;
    struct proto_request out;
    const char *payload;
    size_t len;
    size_t cut;
    encode_request(&b, req, &payload, &len);
    for (cut = 0; cut < len; cut++) {
        int rv = decode_bytes(payload, cut, &out);
        assert_int_equal(rv, CAIRN_EMALFORMED);
    }
    assert_int_equal(decode_bytes(payload, len, &out), 0);
    buf_free(&b);
}

static void test_request_every_truncation(void **state)
{
    struct proto_request req;
    struct proto_cmp cmps[4];
    struct proto_op then_ops[3];
    struct proto_op else_ops[2];
    (void)state;
    make_txn(&req, cmps, then_ops, else_ops);
    check_request_truncations(&req);
    memset(&req, 0, sizeof(req));
    req.id = UINT64_MAX;
    req.type = PROTO_PUT;
    req.op = make_op(CAIRN_OP_PUT, "a/b/c", "some value");
    check_request_truncations(&req);
    memset(&req, 0, sizeof(req));
    req.type = PROTO_COMPACT;
    req.number = 1ull << 40;
    check_request_truncations(&req);
}

static void test_request_huge_counts(void **state)
{
    /* An array claiming 2^32-1 elements, alone and inside a request. */
    static const uint8_t alone[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t map_alone[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    struct proto_request out;
    struct arena a;
    struct mpbuf m;
    unsigned where;
    struct timespec t0;
    struct timespec t1;
    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(decode_bytes(alone, sizeof(alone), &out), CAIRN_EMALFORMED);
    assert_int_equal(decode_bytes(map_alone, sizeof(map_alone), &out), CAIRN_EMALFORMED);
    /* In place of the compares, the then-ops and the else-ops: the count is
     * refused before anything is allocated for it. */
    for (where = 0; where < 3; where++) {
        unsigned i;
        mpbuf_init(&m);
        msgpack_pack_array(&m.pk, 8);
        msgpack_pack_uint64(&m.pk, PROTO_VERSION);
        msgpack_pack_uint64(&m.pk, 5);
        msgpack_pack_uint8(&m.pk, PROTO_TXN);
        pack_op_fields(&m.pk, 0, 0);
        for (i = 0; i < 3; i++) {
            if (i == where) {
                mpbuf_raw(&m, alone, sizeof(alone));
            } else {
                msgpack_pack_array(&m.pk, 0);
            }
        }
        msgpack_pack_uint64(&m.pk, 0);
        arena_init(&a);
        assert_int_equal(proto_decode_request(m.sb.data, m.sb.size, &a, &out), CAIRN_EMALFORMED);
        assert_null(a.head);
        arena_free(&a);
        mpbuf_free(&m);
    }
    /* A modest count that a naive decoder would happily allocate for (1000
     * ops, about 100 KB) but that the remaining bytes cannot hold. */
    mpbuf_init(&m);
    msgpack_pack_array(&m.pk, 8);
    msgpack_pack_uint64(&m.pk, PROTO_VERSION);
    msgpack_pack_uint64(&m.pk, 5);
    msgpack_pack_uint8(&m.pk, PROTO_TXN);
    pack_op_fields(&m.pk, 0, 0);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_array(&m.pk, 1000);
    pack_op_fields(&m.pk, CAIRN_OP_GET, 0);
    arena_init(&a);
    assert_int_equal(proto_decode_request(m.sb.data, m.sb.size, &a, &out), CAIRN_EMALFORMED);
    assert_null(a.head);
    arena_free(&a);
    mpbuf_free(&m);
    /* The reader refuses such counts itself. */
    {
        struct mp_reader r;
        uint32_t n;
        mp_init(&r, alone, sizeof(alone));
        assert_false(mp_array(&r, &n));
        mp_init(&r, map_alone, sizeof(map_alone));
        assert_false(mp_map(&r, &n));
    }
    /* With allocation failing outright the answer is the same: the count
     * was never trusted. */
    cairn_alloc_fail_after(0);
    assert_int_equal(decode_bytes(alone, sizeof(alone), &out), CAIRN_EMALFORMED);
    cairn_alloc_fail_after(-1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true((t1.tv_sec - t0.tv_sec) < 2);
}

/* Nests depth arrays around a fixint and appends it as a request's
 * thirteenth element (which the decoder skips with mp_skip). */
static int decode_with_nesting(unsigned depth)
{
    struct mpbuf m;
    struct proto_request out;
    unsigned i;
    int rv;
    mpbuf_init(&m);
    pack_get_head(&m.pk, 13, PROTO_VERSION);
    msgpack_pack_uint64(&m.pk, 0); /* age_ms */
    msgpack_pack_uint64(&m.pk, 0); /* min_revision */
    msgpack_pack_uint64(&m.pk, 0); /* max_staleness_ms */
    msgpack_pack_uint64(&m.pk, 0); /* wait_ms */
    for (i = 0; i < depth; i++) {
        msgpack_pack_array(&m.pk, 1);
    }
    msgpack_pack_uint8(&m.pk, 1);
    rv = decode_bytes(m.sb.data, m.sb.size, &out);
    mpbuf_free(&m);
    return rv;
}

static void test_request_deep_nesting(void **state)
{
    (void)state;
    /* The skipped element sits at depth 0 of mp_skip; the scalar inside
     * depth arrays sits at depth `depth`. */
    assert_int_equal(decode_with_nesting(0), 0);
    assert_int_equal(decode_with_nesting(MP_DEPTH_MAX), 0);
    assert_int_equal(decode_with_nesting(MP_DEPTH_MAX + 1), CAIRN_EMALFORMED);
    /* Far deeper than any stack would survive if skipping recursed freely. */
    assert_int_equal(decode_with_nesting(200000), CAIRN_EMALFORMED);
}

/* Frames */

static void test_frame_peek(void **state)
{
    char frame[4 + 5] = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
    size_t n = 12345;
    size_t len;
    (void)state;
    for (len = 0; len < PROTO_FRAME_HEADER_SIZE; len++) {
        assert_int_equal(proto_frame_peek(frame, len, 100, &n), 0);
    }
    for (len = PROTO_FRAME_HEADER_SIZE; len < sizeof(frame); len++) {
        assert_int_equal(proto_frame_peek(frame, len, 100, &n), 0);
    }
    assert_int_equal(proto_frame_peek(frame, sizeof(frame), 100, &n), 1);
    assert_int_equal(n, 5);
    /* A limit of exactly the payload size is enough; one less is not, and
     * the answer comes from the header alone. */
    assert_int_equal(proto_frame_peek(frame, sizeof(frame), 5, &n), 1);
    assert_int_equal(proto_frame_peek(frame, sizeof(frame), 4, &n), CAIRN_ETOOLARGE);
    assert_int_equal(proto_frame_peek(frame, PROTO_FRAME_HEADER_SIZE, 4, &n), CAIRN_ETOOLARGE);
    assert_int_equal(n, 5);
    /* An empty payload is a whole frame. */
    memset(frame, 0, 4);
    assert_int_equal(proto_frame_peek(frame, 4, 0, &n), 1);
    assert_int_equal(n, 0);
    /* The hard ceiling applies whatever the caller's limit. */
    frame[0] = (char)0xff;
    frame[1] = (char)0xff;
    frame[2] = (char)0xff;
    frame[3] = (char)0xff;
    assert_int_equal(proto_frame_peek(frame, 4, SIZE_MAX, &n), CAIRN_ETOOLARGE);
    assert_int_equal(n, 0xffffffffu);
    frame[0] = (char)((PROTO_FRAME_SIZE_MAX + 1) >> 24);
    frame[1] = (char)((PROTO_FRAME_SIZE_MAX + 1) >> 16);
    frame[2] = (char)((PROTO_FRAME_SIZE_MAX + 1) >> 8);
    frame[3] = (char)(PROTO_FRAME_SIZE_MAX + 1);
    assert_int_equal(proto_frame_peek(frame, 4, SIZE_MAX, &n), CAIRN_ETOOLARGE);
}

/* Responses */

static const struct cairn_kv test_kvs[] = {
    {"alpha", 5, "one", 3, 2, 3, 2, 1700000000000, false},
    {"beta", 4, "", 0, 4, 9, 1, -5, true},
    {"g\0mma", 5, "bin\0ary", 7, UINT64_MAX, 1, 1000, INT64_MIN, false},
};

static const struct cairn_member test_members[] = {
    {1, "10.0.0.1:7101", "10.0.0.1:7001", "voter"},
    {2, "10.0.0.2:7101", "10.0.0.2:7001", "standby"},
};

static const struct cairn_retention test_retention[] = {
    {"", 0, 10, 0},
    {"app/\0x", 6, 0, 604800000},
    {"tmp/", 4, 3, 90000},
};

static void fill_status(struct cairn_status *s)
{
    memset(s, 0, sizeof(*s));
    s->id = 2;
    s->state = "follower";
    s->leader_id = 1;
    s->leader_address = "10.0.0.1:7001";
    s->http_address = "10.0.0.2:8001";
    s->term = 7;
    s->commit_index = 100;
    s->applied_index = 99;
    s->last_index = 101;
    s->revision = 55;
    s->compact_revision = 10;
    s->keys = 3;
    s->bytes = 4096;
    s->retain_versions = 10;
    s->snapshots = 4;
    s->members = (struct cairn_member *)test_members;
    s->n_members = 2;
    s->retention = (struct cairn_retention *)test_retention;
    s->n_retention = 3;
}

/* A response with two results (the second with every test kv) and, when
 * with_status, a status map. */
static void encode_response(struct buf *b, bool with_status)
{
    struct proto_writer w;
    struct proto_response_head h;
    struct cairn_status s;
    size_t i;
    buf_init(b);
    memset(&h, 0, sizeof(h));
    h.id = 31337;
    h.type = PROTO_TXN;
    h.code = 0;
    h.message = "all good";
    h.leader = "127.0.0.1:7001";
    h.revision = 1;
    h.compact_revision = 3;
    h.succeeded = false;
    h.n_results = 2;
    proto_writer_begin(&w, b);
    proto_pack_response_head(&w, &h);
    proto_pack_result(&w, 0, 0, false);
    proto_pack_result(&w, 3, 17, true);
    for (i = 0; i < 3; i++) {
        proto_pack_kv(&w, &test_kvs[i]);
    }
    if (with_status) {
        fill_status(&s);
        proto_pack_status(&w, &s);
    } else {
        proto_pack_nil(&w);
    }
    /* Decided after the operations ran. */
    proto_patch_revision(&w, 0x0102030405060708ull);
    proto_patch_succeeded(&w, true);
    assert_int_equal(proto_writer_end(&w), 0);
}

static void assert_kv_eq(const struct cairn_kv *a, const struct cairn_kv *b)
{
    assert_int_equal(a->key_len, b->key_len);
    assert_memory_equal(a->key, b->key, a->key_len);
    assert_int_equal(a->value_len, b->value_len);
    if (a->value_len > 0) {
        assert_memory_equal(a->value, b->value, a->value_len);
    }
    assert_int_equal(a->create_revision, b->create_revision);
    assert_int_equal(a->mod_revision, b->mod_revision);
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->time_ms, b->time_ms);
    assert_int_equal(a->deleted, b->deleted);
}

static int decode_response_copy(const char *p, size_t len, struct proto_response *out)
{
    char *copy = exact_copy(p, len);
    int rv = proto_decode_response(copy, len, out);
    /* Everything was copied out: the payload can go at once. */
    memset(copy, 0xee, len);
    free(copy);
    return rv;
}

/* The first nine elements of a successful response, for handcrafted ones:
 * [version, id, type | response flag, code 0, message "", leader "",
 * revision, compact revision 0, succeeded], in an array of n_fields. The
 * caller packs the results and what follows them. */
static void pack_response_head(msgpack_packer *pk, uint32_t n_fields, uint64_t id, uint8_t type,
                               uint64_t revision)
{
    msgpack_pack_array(pk, n_fields);
    msgpack_pack_uint64(pk, PROTO_VERSION);
    msgpack_pack_uint64(pk, id);
    msgpack_pack_uint8(pk, (uint8_t)(type | PROTO_RESPONSE_FLAG));
    msgpack_pack_int(pk, 0);
    msgpack_pack_str(pk, 0); /* message */
    msgpack_pack_str(pk, 0); /* leader */
    msgpack_pack_uint64(pk, revision);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_true(pk);
}

static void test_response_round_trip(void **state)
{
    struct buf b;
    struct proto_response r;
    struct cairn_status s;
    size_t n;
    size_t i;
    (void)state;
    encode_response(&b, true);
    assert_int_equal(proto_frame_peek(b.data, b.len, PROTO_FRAME_SIZE_MAX, &n), 1);
    assert_int_equal(n + 4, b.len);
    assert_int_equal(decode_response_copy(b.data + 4, n, &r), 0);
    assert_int_equal(r.id, 31337);
    assert_int_equal(r.type, PROTO_TXN);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.message, "all good");
    assert_string_equal(r.leader, "127.0.0.1:7001");
    assert_non_null(r.result);
    assert_int_equal(r.result->revision, 0x0102030405060708ull);
    assert_int_equal(r.result->compact_revision, 3);
    assert_true(r.result->succeeded);
    assert_int_equal(r.result->n_ops, 2);
    assert_int_equal(r.result->ops[0].n_kvs, 0);
    assert_int_equal(r.result->ops[0].deleted, 0);
    assert_false(r.result->ops[0].more);
    assert_int_equal(r.result->ops[1].n_kvs, 3);
    assert_int_equal(r.result->ops[1].deleted, 17);
    assert_true(r.result->ops[1].more);
    for (i = 0; i < 3; i++) {
        assert_kv_eq(&r.result->ops[1].kvs[i], &test_kvs[i]);
    }
    assert_non_null(r.status);
    fill_status(&s);
    assert_int_equal(r.status->id, s.id);
    assert_string_equal(r.status->state, s.state);
    assert_int_equal(r.status->leader_id, s.leader_id);
    assert_string_equal(r.status->leader_address, s.leader_address);
    assert_string_equal(r.status->http_address, s.http_address);
    assert_int_equal(r.status->term, s.term);
    assert_int_equal(r.status->commit_index, s.commit_index);
    assert_int_equal(r.status->applied_index, s.applied_index);
    assert_int_equal(r.status->last_index, s.last_index);
    assert_int_equal(r.status->revision, s.revision);
    assert_int_equal(r.status->compact_revision, s.compact_revision);
    assert_int_equal(r.status->keys, s.keys);
    assert_int_equal(r.status->bytes, s.bytes);
    assert_int_equal(r.status->retain_versions, s.retain_versions);
    assert_int_equal(r.status->snapshots, s.snapshots);
    assert_int_equal(r.status->n_members, 2);
    for (i = 0; i < 2; i++) {
        assert_int_equal(r.status->members[i].id, test_members[i].id);
        assert_string_equal(r.status->members[i].raft_address, test_members[i].raft_address);
        assert_string_equal(r.status->members[i].client_address, test_members[i].client_address);
        assert_string_equal(r.status->members[i].role, test_members[i].role);
    }
    assert_int_equal(r.status->n_retention, 3);
    for (i = 0; i < 3; i++) {
        const struct cairn_retention *p = &r.status->retention[i];
        assert_int_equal(p->prefix_len, test_retention[i].prefix_len);
        assert_memory_equal(p->prefix, test_retention[i].prefix, p->prefix_len);
        assert_int_equal(p->prefix[p->prefix_len], '\0'); /* usable as a string */
        assert_int_equal(p->versions, test_retention[i].versions);
        assert_int_equal(p->age_ms, test_retention[i].age_ms);
    }
    proto_response_free(&r);
    assert_null(r.result);
    buf_free(&b);

    encode_response(&b, false);
    assert_int_equal(decode_response_copy(b.data + 4, b.len - 4, &r), 0);
    assert_null(r.status);
    assert_int_equal(r.result->n_ops, 2);
    proto_response_free(&r);
    buf_free(&b);
}

static void test_response_error_frame(void **state)
{
    struct buf b;
    struct proto_response r;
    (void)state;
    buf_init(&b);
    assert_int_equal(
        proto_encode_error(&b, 9, PROTO_PUT, CAIRN_ENOTLEADER, "not the leader", "127.0.0.1:7002"),
        0);
    assert_int_equal(decode_response_copy(b.data + 4, b.len - 4, &r), 0);
    assert_int_equal(r.id, 9);
    assert_int_equal(r.type, PROTO_PUT);
    assert_int_equal(r.code, CAIRN_ENOTLEADER);
    assert_string_equal(r.message, "not the leader");
    assert_string_equal(r.leader, "127.0.0.1:7002");
    assert_int_equal(r.result->n_ops, 0);
    assert_null(r.status);
    proto_response_free(&r);
    buf_free(&b);
    /* NULL message and leader read back as "". */
    buf_init(&b);
    assert_int_equal(proto_encode_error(&b, 10, PROTO_GET, CAIRN_EBUSY, NULL, NULL), 0);
    assert_int_equal(decode_response_copy(b.data + 4, b.len - 4, &r), 0);
    assert_string_equal(r.message, "");
    assert_string_equal(r.leader, "");
    assert_int_equal(r.code, CAIRN_EBUSY);
    proto_response_free(&r);
    buf_free(&b);
}

/* A status lists at most CAIRN_RETENTION_POLICIES_MAX policies: the packer
 * cuts a longer table short, and the decoder refuses one (it would allocate
 * for a count nobody sends). */
static void test_response_status_retention_cap(void **state)
{
    struct cairn_retention *many;
    struct cairn_status s;
    struct proto_writer w;
    struct proto_response_head h;
    struct proto_response r;
    struct mpbuf m;
    struct buf b;
    size_t i;
    (void)state;
    many = calloc(CAIRN_RETENTION_POLICIES_MAX + 5, sizeof(*many));
    assert_non_null(many);
    for (i = 0; i < CAIRN_RETENTION_POLICIES_MAX + 5; i++) {
        many[i].prefix = "p";
        many[i].prefix_len = 1;
        many[i].versions = i;
    }
    fill_status(&s);
    s.retention = many;
    s.n_retention = CAIRN_RETENTION_POLICIES_MAX + 5;
    memset(&h, 0, sizeof(h));
    h.type = PROTO_STATUS;
    buf_init(&b);
    proto_writer_begin(&w, &b);
    proto_pack_response_head(&w, &h);
    proto_pack_status(&w, &s);
    assert_int_equal(proto_writer_end(&w), 0);
    assert_int_equal(decode_response_copy(b.data + 4, b.len - 4, &r), 0);
    assert_int_equal(r.status->n_retention, CAIRN_RETENTION_POLICIES_MAX);
    assert_int_equal(r.status->retention[CAIRN_RETENTION_POLICIES_MAX - 1].versions,
                     CAIRN_RETENTION_POLICIES_MAX - 1);
    proto_response_free(&r);
    buf_free(&b);
    free(many);

    mpbuf_init(&m);
    pack_response_head(&m.pk, 11, 1, PROTO_STATUS, 8);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_map(&m.pk, 1);
    msgpack_pack_str_with_body(&m.pk, "retention", 9);
    msgpack_pack_array(&m.pk, CAIRN_RETENTION_POLICIES_MAX + 1);
    for (i = 0; i < CAIRN_RETENTION_POLICIES_MAX + 1; i++) {
        msgpack_pack_array(&m.pk, 3);
        msgpack_pack_bin_with_body(&m.pk, "", 0); /* prefix */
        msgpack_pack_uint64(&m.pk, 1);            /* versions */
        msgpack_pack_uint64(&m.pk, 0);            /* age_ms */
    }
    assert_int_equal(decode_response_copy(m.sb.data, m.sb.size, &r), CAIRN_EMALFORMED);
    mpbuf_free(&m);
}

static void test_response_status_unknown_keys(void **state)
{
    struct mpbuf m;
    struct proto_response r;
    (void)state;
    mpbuf_init(&m);
    pack_response_head(&m.pk, 12, 1, PROTO_STATUS, 8); /* one trailing element more than v1 */
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_map(&m.pk, 3);
    msgpack_pack_str(&m.pk, 4);
    msgpack_pack_str_body(&m.pk, "term", 4);
    msgpack_pack_uint64(&m.pk, 12);
    msgpack_pack_str(&m.pk, 6);
    msgpack_pack_str_body(&m.pk, "future", 6);
    msgpack_pack_array(&m.pk, 2); /* an unknown key with a nested value */
    msgpack_pack_map(&m.pk, 0);
    msgpack_pack_double(&m.pk, 2.5);
    msgpack_pack_str(&m.pk, 5);
    msgpack_pack_str_body(&m.pk, "state", 5);
    msgpack_pack_str(&m.pk, 6);
    msgpack_pack_str_body(&m.pk, "leader", 6);
    msgpack_pack_nil(&m.pk); /* the trailing element */
    assert_int_equal(decode_response_copy(m.sb.data, m.sb.size, &r), 0);
    assert_non_null(r.status);
    assert_int_equal(r.status->term, 12);
    assert_string_equal(r.status->state, "leader");
    assert_string_equal(r.status->leader_address, "");
    assert_string_equal(r.status->http_address, ""); /* absent: an older node */
    assert_int_equal(r.status->n_members, 0);
    assert_int_equal(r.type, PROTO_STATUS);
    proto_response_free(&r);
    mpbuf_free(&m);
}

/* Every cut of the response frame in b short of its end is malformed and
 * leaves the response empty; so is the whole payload followed by one more
 * byte, garbage. Frees b. */
static void assert_truncations_and_garbage_malformed(struct buf *b, char garbage)
{
    struct proto_response r;
    size_t len = b->len - 4;
    size_t cut;
    char *padded;
    for (cut = 0; cut < len; cut++) {
        assert_int_equal(decode_response_copy(b->data + 4, cut, &r), CAIRN_EMALFORMED);
        assert_null(r.result);
        assert_null(r.status);
        assert_null(r.watch);
    }
    padded = malloc(len + 1);
    assert_non_null(padded);
    memcpy(padded, b->data + 4, len);
    padded[len] = garbage;
    assert_int_equal(decode_response_copy(padded, len + 1, &r), CAIRN_EMALFORMED);
    free(padded);
    buf_free(b);
}

static void test_response_every_truncation_and_garbage(void **state)
{
    struct buf b;
    (void)state;
    encode_response(&b, true);
    assert_truncations_and_garbage_malformed(&b, 0x01);
}

static void test_response_version_flag_and_counts(void **state)
{
    struct buf b;
    struct proto_response r;
    char *p;
    size_t len;
    struct mpbuf m;
    (void)state;
    encode_response(&b, false);
    p = b.data + 4;
    len = b.len - 4;
    /* [0x9b, version 0x01, id 0xcd 0x7a 0x69, type 0xcc 0x84, ...] */
    assert_int_equal((uint8_t)p[0], 0x9b);
    assert_int_equal((uint8_t)p[1], PROTO_VERSION);
    p[1] = PROTO_VERSION + 1;
    assert_int_equal(decode_response_copy(p, len, &r), CAIRN_EVERSION);
    p[1] = PROTO_VERSION;
    /* A type without the response flag is a request, not a response. The
     * type is a uint8 (0xcc) since the flag puts it above fixint range. */
    assert_int_equal((uint8_t)p[5], 0xcc);
    assert_int_equal((uint8_t)p[6], PROTO_TXN | PROTO_RESPONSE_FLAG);
    p[6] = PROTO_TXN;
    assert_int_equal(decode_response_copy(p, len, &r), CAIRN_EMALFORMED);
    buf_free(&b);

    /* A results array claiming 2^32-1 entries. */
    mpbuf_init(&m);
    pack_response_head(&m.pk, 11, 1, PROTO_GET, 8);
    mpbuf_raw(&m, "\xdd\xff\xff\xff\xff", 5);
    msgpack_pack_nil(&m.pk);
    assert_int_equal(decode_response_copy(m.sb.data, m.sb.size, &r), CAIRN_EMALFORMED);
    mpbuf_free(&m);
}

static void test_request_allocation_failure(void **state)
{
    struct proto_cmp cmps[2];
    struct proto_op ops[3];
    struct proto_request req;
    struct proto_request got;
    struct buf b;
    long n;
    bool succeeded = false;
    (void)state;
    memset(cmps, 0, sizeof(cmps));
    memset(ops, 0, sizeof(ops));
    memset(&req, 0, sizeof(req));
    ops[0].type = CAIRN_OP_PUT;
    ops[1].type = CAIRN_OP_GET;
    ops[2].type = CAIRN_OP_DEL;
    req.type = PROTO_TXN;
    req.op.type = CAIRN_OP_GET;
    req.cmps = cmps;
    req.n_cmps = 2;
    req.then_ops = ops;
    req.n_then = 2;
    req.else_ops = ops + 2;
    req.n_else = 1;
    buf_init(&b);
    assert_int_equal(proto_encode_request(&b, &req), 0);
    for (n = 0; n < 20 && !succeeded; n++) {
        struct arena a;
        int rv;
        arena_init(&a);
        cairn_alloc_fail_after(n);
        rv = proto_decode_request(b.data + 4, b.len - 4, &a, &got);
        cairn_alloc_fail_after(-1);
        arena_free(&a);
        if (rv == 0) {
            succeeded = true;
        } else {
            assert_int_equal(rv, CAIRN_ENOMEM);
        }
    }
    assert_true(succeeded);
    assert_true(n > 1); /* at least one allocation was made to fail */
    buf_free(&b);
}

/* Decodes the response frame in b into r with the first, second, ...
 * allocation failing until decoding gets through: each failure must be
 * reported as such and leave r empty (the sanitizers see that it leaks
 * nothing). Returns how many attempts failed; r is then the caller's to free. */
static long decode_response_failing_allocations(const struct buf *b, struct proto_response *r)
{
    long n;
    for (n = 0; n < 100; n++) {
        int rv;
        cairn_alloc_fail_after(n);
        rv = proto_decode_response(b->data + 4, b->len - 4, r);
        cairn_alloc_fail_after(-1);
        if (rv == 0) {
            return n;
        }
        /* A well-formed response that could not be allocated is out of
         * memory, never "malformed". */
        assert_int_equal(rv, CAIRN_ENOMEM);
        assert_null(r->result);
        assert_null(r->watch);
    }
    fail_msg("decoding still failed after %ld allocation failures", n);
    return n;
}

static void test_response_allocation_failure(void **state)
{
    struct buf b;
    struct proto_response r;
    (void)state;
    encode_response(&b, true);
    decode_response_failing_allocations(&b, &r);
    proto_response_free(&r);
    buf_free(&b);
}

/* METRICS answers: the text rides as a thirteenth element. */

static const char metrics_text[] = "# HELP cairn_keys Live keys.\n"
                                   "# TYPE cairn_keys gauge\n"
                                   "cairn_keys 3\n";

static void test_metrics_response_round_trip(void **state)
{
    /* Ordinary text, an empty text, and bytes holding a NUL: the length is
     * what counts. */
    static const struct
    {
        const char *text;
        size_t len;
    } cases[] = {{metrics_text, sizeof(metrics_text) - 1}, {"", 0}, {"a\0b", 3}};
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf b;
        struct proto_response r;
        size_t n = 0;
        buf_init(&b);
        assert_int_equal(proto_encode_metrics(&b, 4242 + i, 77, cases[i].text, cases[i].len), 0);
        assert_int_equal(proto_frame_peek(b.data, b.len, PROTO_FRAME_SIZE_MAX, &n), 1);
        assert_int_equal(n + 4, b.len);
        assert_int_equal(decode_response_copy(b.data + 4, n, &r), 0);
        assert_int_equal(r.id, 4242 + i);
        assert_int_equal(r.type, PROTO_METRICS);
        assert_int_equal(r.code, 0);
        assert_non_null(r.result);
        assert_int_equal(r.result->revision, 77);
        assert_int_equal(r.result->n_ops, 0);
        assert_null(r.status);
        assert_null(r.watch);
        assert_non_null(r.text);
        assert_int_equal(r.text_len, cases[i].len);
        assert_memory_equal(r.text, cases[i].text, cases[i].len);
        assert_int_equal(r.text[r.text_len], '\0'); /* usable as a C string */
        proto_response_free(&r);
        assert_null(r.text);
        /* Each cut short of the end is malformed, and so is a byte more. */
        assert_truncations_and_garbage_malformed(&b, 0x01);
    }
}

static void test_metrics_response_text_optional_and_typed(void **state)
{
    struct mpbuf m;
    struct proto_response r;
    (void)state;
    /* Twelve elements (no text), or a nil text: no text, still a response. */
    mpbuf_init(&m);
    pack_response_head(&m.pk, 12, 5, PROTO_METRICS, 9);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_nil(&m.pk);
    assert_int_equal(decode_response_copy(m.sb.data, m.sb.size, &r), 0);
    assert_null(r.text);
    assert_int_equal(r.text_len, 0);
    proto_response_free(&r);
    mpbuf_free(&m);
    mpbuf_init(&m);
    pack_response_head(&m.pk, 13, 5, PROTO_METRICS, 9);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_nil(&m.pk);
    assert_int_equal(decode_response_copy(m.sb.data, m.sb.size, &r), 0);
    assert_null(r.text);
    proto_response_free(&r);
    mpbuf_free(&m);
    /* A METRICS answer whose text is not a string is malformed. */
    mpbuf_init(&m);
    pack_response_head(&m.pk, 13, 5, PROTO_METRICS, 9);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_uint32(&m.pk, 12);
    assert_int_equal(decode_response_copy(m.sb.data, m.sb.size, &r), CAIRN_EMALFORMED);
    assert_null(r.result);
    assert_null(r.text);
    mpbuf_free(&m);
    /* In another response a thirteenth element is a later version's field:
     * skipped, never taken for text. */
    mpbuf_init(&m);
    pack_response_head(&m.pk, 14, 5, PROTO_GET, 9);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_str(&m.pk, 3);
    msgpack_pack_str_body(&m.pk, "abc", 3);
    msgpack_pack_uint32(&m.pk, 12);
    assert_int_equal(decode_response_copy(m.sb.data, m.sb.size, &r), 0);
    assert_null(r.text);
    proto_response_free(&r);
    mpbuf_free(&m);
    /* A later version may append fields after the text too. */
    mpbuf_init(&m);
    pack_response_head(&m.pk, 14, 5, PROTO_METRICS, 9);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_bin(&m.pk, 2); /* bin is accepted like str */
    msgpack_pack_bin_body(&m.pk, "ok", 2);
    msgpack_pack_map(&m.pk, 0);
    assert_int_equal(decode_response_copy(m.sb.data, m.sb.size, &r), 0);
    assert_non_null(r.text);
    assert_string_equal(r.text, "ok");
    proto_response_free(&r);
    mpbuf_free(&m);
}

static void test_metrics_response_allocation_failure(void **state)
{
    struct buf b;
    struct proto_response r;
    (void)state;
    buf_init(&b);
    assert_int_equal(proto_encode_metrics(&b, 1, 2, metrics_text, sizeof(metrics_text) - 1), 0);
    decode_response_failing_allocations(&b, &r);
    assert_string_equal(r.text, metrics_text);
    proto_response_free(&r);
    buf_free(&b);
    /* Encoding that runs out of memory leaves the buffer as it was. */
    buf_init(&b);
    cairn_alloc_fail_after(0);
    assert_int_equal(proto_encode_metrics(&b, 1, 2, metrics_text, sizeof(metrics_text) - 1),
                     CAIRN_ENOMEM);
    cairn_alloc_fail_after(-1);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

/* Disaster recovery: INIT entries and BACKUP requests and answers */

static void test_init_and_backup_requests_round_trip(void **state)
{
    static const char *const verbs[] = {"status", "save", "verify", "v",
                                        "sixteen-bytes-ok"}; /* 16: the limit */
    struct proto_request req;
    size_t i;
    (void)state;
    /* INIT: an internal entry whose number is the cluster id, all 64 bits. */
    memset(&req, 0, sizeof(req));
    req.id = 1;
    req.type = PROTO_INIT;
    req.op = make_op(0, "", "");
    req.number = 0x0123456789abcdefull;
    assert_request_round_trips(&req);
    req.number = UINT64_MAX;
    assert_request_round_trips(&req);
    for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        memset(&req, 0, sizeof(req));
        req.id = 100 + i;
        req.type = PROTO_BACKUP;
        req.op = make_op(0, verbs[i], "");
        assert_int_equal(strlen(verbs[i]) <= PROTO_BACKUP_VERB_MAX, true);
        assert_request_round_trips(&req);
    }
}

static void test_backup_request_malformed_verbs(void **state)
{
    /* Empty, one byte over the limit, and far over it: refused by the
     * decoder, which leaves unknown but well-formed verbs to the server. */
    static const char *const bad[] = {"", "seventeen-bytes!!",
                                      "a verb far longer than any verb will ever be"};
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct proto_request req;
        struct proto_request out;
        struct buf b;
        const char *payload;
        size_t len;
        memset(&req, 0, sizeof(req));
        req.id = 9;
        req.type = PROTO_BACKUP;
        req.op = make_op(0, bad[i], "");
        encode_request(&b, &req, &payload, &len);
        assert_int_equal(decode_bytes(payload, len, &out), CAIRN_EMALFORMED);
        buf_free(&b);
    }
    /* A nil verb reads as empty: malformed too; the same op with a verb
     * decodes. */
    for (i = 0; i < 2; i++) {
        struct mpbuf m;
        struct proto_request out;
        mpbuf_init(&m);
        msgpack_pack_array(&m.pk, 8);
        msgpack_pack_uint64(&m.pk, PROTO_VERSION);
        msgpack_pack_uint64(&m.pk, 5);
        msgpack_pack_uint8(&m.pk, PROTO_BACKUP);
        msgpack_pack_array(&m.pk, 9);
        msgpack_pack_uint8(&m.pk, 0);
        if (i == 0) {
            msgpack_pack_nil(&m.pk);
        } else {
            msgpack_pack_str(&m.pk, 4);
            msgpack_pack_str_body(&m.pk, "save", 4);
        }
        msgpack_pack_nil(&m.pk); /* value */
        msgpack_pack_false(&m.pk);
        msgpack_pack_false(&m.pk);
        msgpack_pack_uint64(&m.pk, 0);
        msgpack_pack_nil(&m.pk); /* after */
        msgpack_pack_uint64(&m.pk, 0);
        msgpack_pack_false(&m.pk);
        msgpack_pack_array(&m.pk, 0);
        msgpack_pack_array(&m.pk, 0);
        msgpack_pack_array(&m.pk, 0);
        msgpack_pack_uint64(&m.pk, 0);
        assert_int_equal(decode_bytes(m.sb.data, m.sb.size, &out), i == 0 ? CAIRN_EMALFORMED : 0);
        mpbuf_free(&m);
    }
    /* The length rule is BACKUP's alone: other types take any key. */
    {
        struct proto_request req;
        memset(&req, 0, sizeof(req));
        req.id = 10;
        req.type = PROTO_RETENTION;
        req.op = make_op(0, "", "");
        assert_request_round_trips(&req);
        req.op = make_op(0, bad[2], "");
        assert_request_round_trips(&req);
    }
}

/* MEMBER and TRANSFER: a verb bounded like BACKUP's, an id in number, an
 * address in op.value; their answers carry JSON text like BACKUP's. */
static void test_member_requests_and_answers(void **state)
{
    static const char *const verbs[] = {"list", "add", "promote", "demote", "remove"};
    static const char list_json[] = "{\"id\": 1, \"members\": []}";
    struct proto_request req;
    struct proto_request out;
    struct proto_response r;
    struct buf b;
    const char *payload;
    size_t len;
    size_t n = 0;
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        memset(&req, 0, sizeof(req));
        req.id = 200 + i;
        req.type = PROTO_MEMBER;
        req.op = make_op(0, verbs[i], i == 1 ? "127.0.0.1:7104/127.0.0.1:7004" : "");
        req.number = 4;
        assert_request_round_trips(&req);
    }
    memset(&req, 0, sizeof(req));
    req.id = 210;
    req.type = PROTO_TRANSFER;
    req.op = make_op(0, "", "");
    req.number = 3;
    assert_request_round_trips(&req);
    /* An empty or overlong verb does not decode. */
    memset(&req, 0, sizeof(req));
    req.id = 211;
    req.type = PROTO_MEMBER;
    req.op = make_op(0, "", "");
    encode_request(&b, &req, &payload, &len);
    assert_int_equal(decode_bytes(payload, len, &out), CAIRN_EMALFORMED);
    buf_free(&b);
    req.op = make_op(0, "seventeen-bytes!!", "");
    encode_request(&b, &req, &payload, &len);
    assert_int_equal(decode_bytes(payload, len, &out), CAIRN_EMALFORMED);
    buf_free(&b);
    /* Both answers carry their text. */
    for (i = 0; i < 2; i++) {
        uint8_t type = i == 0 ? PROTO_MEMBER : PROTO_TRANSFER;
        assert_true(proto_type_has_text(type));
        buf_init(&b);
        assert_int_equal(proto_encode_text(&b, 40 + i, type, 7, list_json, sizeof(list_json) - 1),
                         0);
        assert_int_equal(proto_frame_peek(b.data, b.len, PROTO_FRAME_SIZE_MAX, &n), 1);
        assert_int_equal(decode_response_copy(b.data + 4, n, &r), 0);
        assert_int_equal(r.type, type);
        assert_non_null(r.text);
        assert_string_equal(r.text, list_json);
        proto_response_free(&r);
        buf_free(&b);
    }
    assert_false(proto_type_has_text(PROTO_GET));
    assert_false(proto_type_has_text(PROTO_STATUS));
}

static const char backup_json[] = "{\"enabled\": true, \"url\": \"file:///var/backups/cairn\", "
                                  "\"snapshots\": [], \"window\": null, \"failures\": 0}";

static void test_backup_response_round_trip(void **state)
{
    struct buf b;
    struct proto_response r;
    size_t n = 0;
    (void)state;
    buf_init(&b);
    assert_int_equal(
        proto_encode_text(&b, 31, PROTO_BACKUP, 140, backup_json, sizeof(backup_json) - 1), 0);
    assert_int_equal(proto_frame_peek(b.data, b.len, PROTO_FRAME_SIZE_MAX, &n), 1);
    assert_int_equal(n + 4, b.len);
    assert_int_equal(decode_response_copy(b.data + 4, n, &r), 0);
    assert_int_equal(r.id, 31);
    assert_int_equal(r.type, PROTO_BACKUP);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.result->revision, 140);
    assert_null(r.status);
    assert_null(r.watch);
    assert_non_null(r.text);
    assert_int_equal(r.text_len, sizeof(backup_json) - 1);
    assert_string_equal(r.text, backup_json);
    proto_response_free(&r);
    assert_truncations_and_garbage_malformed(&b, 0x01);
    buf_free(&b);
    /* proto_encode_metrics is proto_encode_text for METRICS, byte for byte. */
    {
        struct buf m;
        buf_init(&b);
        buf_init(&m);
        assert_int_equal(proto_encode_text(&b, 7, PROTO_METRICS, 3, "x 1\n", 4), 0);
        assert_int_equal(proto_encode_metrics(&m, 7, 3, "x 1\n", 4), 0);
        assert_int_equal(b.len, m.len);
        assert_memory_equal(b.data, m.data, b.len);
        buf_free(&b);
        buf_free(&m);
    }
    /* An error answer to BACKUP is an ordinary error response: no text. */
    buf_init(&b);
    assert_int_equal(proto_encode_error(&b, 32, PROTO_BACKUP, CAIRN_EINVAL,
                                        "backups are not configured (--backup-url)", NULL),
                     0);
    assert_int_equal(proto_frame_peek(b.data, b.len, PROTO_FRAME_SIZE_MAX, &n), 1);
    assert_int_equal(decode_response_copy(b.data + 4, n, &r), 0);
    assert_int_equal(r.type, PROTO_BACKUP);
    assert_int_equal(r.code, CAIRN_EINVAL);
    assert_string_equal(r.message, "backups are not configured (--backup-url)");
    assert_null(r.text);
    proto_response_free(&r);
    buf_free(&b);
    /* Text typed as anything but a string is malformed in a BACKUP answer. */
    {
        struct mpbuf m;
        mpbuf_init(&m);
        pack_response_head(&m.pk, 13, 5, PROTO_BACKUP, 9);
        msgpack_pack_array(&m.pk, 0);
        msgpack_pack_nil(&m.pk);
        msgpack_pack_nil(&m.pk);
        msgpack_pack_map(&m.pk, 0);
        assert_int_equal(decode_response_copy(m.sb.data, m.sb.size, &r), CAIRN_EMALFORMED);
        assert_null(r.text);
        mpbuf_free(&m);
    }
}

static void test_backup_response_allocation_failure(void **state)
{
    struct buf b;
    struct proto_response r;
    (void)state;
    buf_init(&b);
    assert_int_equal(
        proto_encode_text(&b, 1, PROTO_BACKUP, 2, backup_json, sizeof(backup_json) - 1), 0);
    decode_response_failing_allocations(&b, &r);
    assert_string_equal(r.text, backup_json);
    proto_response_free(&r);
    buf_free(&b);
    buf_init(&b);
    cairn_alloc_fail_after(0);
    assert_int_equal(
        proto_encode_text(&b, 1, PROTO_BACKUP, 2, backup_json, sizeof(backup_json) - 1),
        CAIRN_ENOMEM);
    cairn_alloc_fail_after(-1);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

/* Watch messages */

/* The three test kvs as events: a put with its previous version, a delete
 * (prev nil) and a put of binary bytes with a previous version. */
static const struct cairn_kv *const test_prevs[] = {&test_kvs[2], NULL, &test_kvs[0]};

/* A whole watch message frame into b: the head, then n_events of test_kvs
 * with test_prevs (or none). */
static void encode_watch(struct buf *b, uint64_t id, uint8_t kind, uint64_t rev, bool more,
                         uint32_t part, uint32_t n_events)
{
    struct proto_writer w;
    uint32_t i;
    buf_init(b);
    proto_writer_begin(&w, b);
    proto_pack_watch_head(&w, id, kind, rev, 7, more, part, n_events);
    for (i = 0; i < n_events; i++) {
        proto_pack_event(&w, &test_kvs[i % 3], test_prevs[i % 3]);
    }
    assert_int_equal(proto_writer_end(&w), 0);
}

static void test_watch_requests_round_trip(void **state)
{
    static const uint8_t types[] = {PROTO_WATCH, PROTO_WATCH_CANCEL, PROTO_PROGRESS};
    size_t t;
    (void)state;
    for (t = 0; t < sizeof(types); t++) {
        struct proto_request req;
        memset(&req, 0, sizeof(req));
        req.id = 0x100000000ull + t;
        req.type = types[t];
        req.op = make_op(CAIRN_OP_GET, types[t] == PROTO_WATCH ? "app/" : "", "");
        req.op.prefix = types[t] == PROTO_WATCH;
        req.op.prev_kv = types[t] == PROTO_WATCH;
        req.op.revision = types[t] == PROTO_WATCH ? 12345 : 0;
        /* WATCH: progress interval; CANCEL: the watch id; PROGRESS: 0 = all. */
        req.number = types[t] == PROTO_WATCH ? 250 : types[t] == PROTO_WATCH_CANCEL ? 77 : 0;
        assert_request_round_trips(&req);
    }
}

static void test_watch_message_round_trip(void **state)
{
    static const uint8_t kinds[] = {PROTO_WATCH_CREATED, PROTO_WATCH_EVENTS, PROTO_WATCH_PROGRESS,
                                    PROTO_WATCH_SNAPSHOT, PROTO_WATCH_CANCELED};
    size_t k;
    (void)state;
    for (k = 0; k < sizeof(kinds); k++) {
        bool with_events = kinds[k] == PROTO_WATCH_EVENTS || kinds[k] == PROTO_WATCH_SNAPSHOT;
        uint32_t n_events = with_events ? 3 : 0;
        struct buf b;
        struct proto_response r;
        size_t n = 0;
        uint32_t i;
        encode_watch(&b, 0xabcdef01ull + k, kinds[k], 1000 + k, kinds[k] == PROTO_WATCH_SNAPSHOT,
                     kinds[k] == PROTO_WATCH_SNAPSHOT ? 4 : 0, n_events);
        assert_int_equal(proto_frame_peek(b.data, b.len, PROTO_FRAME_SIZE_MAX, &n), 1);
        assert_int_equal(n + PROTO_FRAME_HEADER_SIZE, b.len);
        assert_int_equal(decode_response_copy(b.data + 4, n, &r), 0);
        /* The head: the watch id, the watch type, the head revision. */
        assert_int_equal(r.id, 0xabcdef01ull + k);
        assert_int_equal(r.type, PROTO_WATCH);
        assert_int_equal(r.code, 0);
        assert_string_equal(r.message, "");
        assert_non_null(r.result);
        assert_int_equal(r.result->revision, 1000 + k);
        assert_int_equal(r.result->compact_revision, 7);
        assert_int_equal(r.result->n_ops, 0);
        assert_null(r.status);
        assert_non_null(r.watch);
        assert_int_equal(r.watch->kind, kinds[k]);
        assert_int_equal(r.watch->more, kinds[k] == PROTO_WATCH_SNAPSHOT);
        assert_int_equal(r.watch->part, kinds[k] == PROTO_WATCH_SNAPSHOT ? 4 : 0);
        assert_int_equal(r.watch->n_events, n_events);
        for (i = 0; i < n_events; i++) {
            const struct cairn_event *e = &r.watch->events[i];
            assert_kv_eq(&e->kv, &test_kvs[i]);
            /* The type follows the kv's deleted flag. */
            assert_int_equal(e->type, test_kvs[i].deleted ? CAIRN_EVENT_DELETE : CAIRN_EVENT_PUT);
            if (test_prevs[i] == NULL) {
                assert_null(e->prev_kv);
            } else {
                assert_non_null(e->prev_kv);
                assert_kv_eq(e->prev_kv, test_prevs[i]);
            }
        }
        proto_response_free(&r);
        assert_null(r.watch);
        buf_free(&b);
    }
}

/* Watch messages and ordinary responses interleave on one connection. */
static void test_watch_messages_pipelined(void **state)
{
    struct buf b;
    struct buf one;
    struct proto_response r;
    size_t off = 0;
    size_t n;
    int i;
    (void)state;
    buf_init(&b);
    encode_watch(&one, 5, PROTO_WATCH_CREATED, 9, false, 0, 0);
    assert_int_equal(buf_append(&b, one.data, one.len), 0);
    buf_free(&one);
    assert_int_equal(proto_encode_error(&b, 6, PROTO_WATCH, CAIRN_EINVAL, "duplicate", NULL), 0);
    encode_watch(&one, 5, PROTO_WATCH_EVENTS, 10, false, 0, 2);
    assert_int_equal(buf_append(&b, one.data, one.len), 0);
    buf_free(&one);
    for (i = 0; i < 3; i++) {
        assert_int_equal(proto_frame_peek(b.data + off, b.len - off, PROTO_FRAME_SIZE_MAX, &n), 1);
        assert_int_equal(decode_response_copy(b.data + off + 4, n, &r), 0);
        off += 4 + n;
        if (i == 1) {
            /* A refused watch: a plain error with the watch's id, no watch element. */
            assert_int_equal(r.id, 6);
            assert_int_equal(r.code, CAIRN_EINVAL);
            assert_string_equal(r.message, "duplicate");
            assert_null(r.watch);
        } else {
            assert_int_equal(r.id, 5);
            assert_non_null(r.watch);
            assert_int_equal(r.watch->n_events, i == 0 ? 0 : 2);
        }
        proto_response_free(&r);
    }
    assert_int_equal(off, b.len);
    buf_free(&b);
}

/* The first eleven elements of a watch message, for handcrafted ones. */
static void pack_watch_msg_head(msgpack_packer *pk, uint32_t n_fields)
{
    pack_response_head(pk, n_fields, 3, PROTO_WATCH, 50);
    msgpack_pack_array(pk, 0);
    msgpack_pack_nil(pk);
}

static void pack_test_kv(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 7);
    msgpack_pack_bin(pk, 1);
    msgpack_pack_bin_body(pk, "k", 1);
    msgpack_pack_bin(pk, 1);
    msgpack_pack_bin_body(pk, "v", 1);
    msgpack_pack_uint64(pk, 50);
    msgpack_pack_uint64(pk, 50);
    msgpack_pack_uint64(pk, 1);
    msgpack_pack_int64(pk, 0);
    msgpack_pack_false(pk);
}

enum bad_watch {
    BAD_KIND_ZERO,
    BAD_KIND_TOO_BIG,
    BAD_NOT_ARRAY,
    BAD_TOO_FEW_FIELDS,
    BAD_MORE_NOT_BOOL,
    BAD_PART_TOO_BIG,
    BAD_EVENTS_NOT_ARRAY,
    BAD_EVENTS_COUNT_LIES,
    BAD_EVENT_TOO_SHORT,
    BAD_EVENT_KV_SHORT,
    BAD_PREV_NOT_KV,
    BAD_COUNT,
};

/* A watch message with one defect. */
static void pack_bad_watch(struct mpbuf *m, enum bad_watch bad)
{
    msgpack_packer *pk = &m->pk;
    pack_watch_msg_head(pk, 12);
    if (bad == BAD_NOT_ARRAY) {
        msgpack_pack_uint8(pk, PROTO_WATCH_EVENTS);
        return;
    }
    msgpack_pack_array(pk, bad == BAD_TOO_FEW_FIELDS ? 3 : 4);
    msgpack_pack_uint8(pk, bad == BAD_KIND_ZERO      ? 0
                           : bad == BAD_KIND_TOO_BIG ? PROTO_WATCH_KIND_MAX + 1
                                                     : PROTO_WATCH_EVENTS);
    if (bad == BAD_MORE_NOT_BOOL) {
        msgpack_pack_uint8(pk, 1);
    } else {
        msgpack_pack_false(pk);
    }
    if (bad == BAD_PART_TOO_BIG) {
        msgpack_pack_uint64(pk, (uint64_t)UINT32_MAX + 1);
    } else {
        msgpack_pack_uint32(pk, 0);
    }
    if (bad == BAD_TOO_FEW_FIELDS) {
        return;
    }
    if (bad == BAD_EVENTS_NOT_ARRAY) {
        msgpack_pack_nil(pk);
        return;
    }
    if (bad == BAD_EVENTS_COUNT_LIES) {
        /* 2^32-1 events claimed, one present. */
        mpbuf_raw(m, "\xdd\xff\xff\xff\xff", 5);
    } else {
        msgpack_pack_array(pk, 1);
    }
    msgpack_pack_array(pk, bad == BAD_EVENT_TOO_SHORT ? 1 : 2);
    if (bad == BAD_EVENT_KV_SHORT) {
        msgpack_pack_array(pk, 6);
        msgpack_pack_bin(pk, 1);
        msgpack_pack_bin_body(pk, "k", 1);
        msgpack_pack_bin(pk, 0);
        msgpack_pack_uint64(pk, 1);
        msgpack_pack_uint64(pk, 1);
        msgpack_pack_uint64(pk, 1);
        msgpack_pack_int64(pk, 0);
    } else {
        pack_test_kv(pk);
    }
    if (bad == BAD_EVENT_TOO_SHORT) {
        return;
    }
    if (bad == BAD_PREV_NOT_KV) {
        msgpack_pack_uint64(pk, 9);
    } else {
        msgpack_pack_nil(pk);
    }
}

static void test_watch_malformed(void **state)
{
    int bad;
    struct proto_response r;
    (void)state;
    for (bad = 0; bad < BAD_COUNT; bad++) {
        struct mpbuf m;
        mpbuf_init(&m);
        pack_bad_watch(&m, (enum bad_watch)bad);
        assert_int_equal(decode_response_copy(m.sb.data, m.sb.size, &r), CAIRN_EMALFORMED);
        assert_null(r.result);
        assert_null(r.watch);
        mpbuf_free(&m);
    }
}

static void test_watch_forward_compatible_and_optional(void **state)
{
    uint32_t n_fields;
    struct mpbuf m;
    struct proto_response r;
    (void)state;
    /* Eleven elements (an ordinary response): no watch element; twelve, of
     * which the watch element is nil: none either. */
    for (n_fields = 11; n_fields <= 12; n_fields++) {
        mpbuf_init(&m);
        pack_watch_msg_head(&m.pk, n_fields);
        if (n_fields == 12) {
            msgpack_pack_nil(&m.pk);
        }
        assert_int_equal(decode_response_copy(m.sb.data, m.sb.size, &r), 0);
        assert_null(r.watch);
        proto_response_free(&r);
        mpbuf_free(&m);
    }
    /* A later version's extra fields: in the response, the watch element
     * and the event are skipped. */
    mpbuf_init(&m);
    pack_watch_msg_head(&m.pk, 13);
    msgpack_pack_array(&m.pk, 5);
    msgpack_pack_uint8(&m.pk, PROTO_WATCH_EVENTS);
    msgpack_pack_false(&m.pk);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_array(&m.pk, 3);
    pack_test_kv(&m.pk);
    pack_test_kv(&m.pk); /* a prev_kv */
    msgpack_pack_str(&m.pk, 5);
    msgpack_pack_str_body(&m.pk, "extra", 5);
    msgpack_pack_map(&m.pk, 0);      /* the watch element's extra field */
    msgpack_pack_double(&m.pk, 1.5); /* the response's extra field */
    assert_int_equal(decode_response_copy(m.sb.data, m.sb.size, &r), 0);
    assert_non_null(r.watch);
    assert_int_equal(r.watch->n_events, 1);
    assert_non_null(r.watch->events[0].prev_kv);
    assert_int_equal(r.watch->events[0].prev_kv->mod_revision, 50);
    assert_memory_equal(r.watch->events[0].kv.key, "k", 2);
    proto_response_free(&r);
    mpbuf_free(&m);
}

static void test_watch_every_truncation_and_garbage(void **state)
{
    struct buf b;
    (void)state;
    encode_watch(&b, 12, PROTO_WATCH_EVENTS, 99, false, 0, 3);
    assert_truncations_and_garbage_malformed(&b, (char)0xc0);
}

static void test_watch_allocation_failure(void **state)
{
    struct buf b;
    struct proto_response r;
    (void)state;
    encode_watch(&b, 12, PROTO_WATCH_SNAPSHOT, 99, true, 0, 3);
    /* At least one allocation was made to fail. */
    assert_true(decode_response_failing_allocations(&b, &r) > 0);
    assert_int_equal(r.watch->n_events, 3);
    proto_response_free(&r);
    buf_free(&b);
}

/* mpread */

static void test_mp_uint_every_width(void **state)
{
    static const struct
    {
        uint8_t bytes[9];
        size_t len;
        uint64_t value;
    } cases[] = {
        {{0x00}, 1, 0},
        {{0x7f}, 1, 127},
        {{0xcc, 0xff}, 2, 255},
        {{0xcd, 0x01, 0x00}, 3, 256},
        {{0xcd, 0xff, 0xff}, 3, 65535},
        {{0xce, 0x00, 0x01, 0x00, 0x00}, 5, 65536},
        {{0xce, 0xff, 0xff, 0xff, 0xff}, 5, 0xffffffffu},
        {{0xcf, 0, 0, 0, 1, 0, 0, 0, 0}, 9, 0x100000000ull},
        {{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, UINT64_MAX},
        /* Signed encodings of non-negative numbers are fine. */
        {{0xd0, 0x05}, 2, 5},
        {{0xd1, 0x7f, 0xff}, 3, 32767},
        {{0xd2, 0x7f, 0xff, 0xff, 0xff}, 5, 0x7fffffff},
        {{0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, INT64_MAX},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mp_reader r;
        uint64_t v = 0;
        size_t cut;
        mp_init(&r, cases[i].bytes, cases[i].len);
        assert_true(mp_uint(&r, &v));
        assert_int_equal(v, cases[i].value);
        assert_true(mp_done(&r));
        for (cut = 0; cut < cases[i].len; cut++) {
            mp_init(&r, cases[i].bytes, cut);
            assert_false(mp_uint(&r, &v));
            assert_true(r.err);
        }
    }
}

static void test_mp_uint_rejects_negative(void **state)
{
    static const struct
    {
        uint8_t bytes[9];
        size_t len;
    } cases[] = {
        {{0xff}, 1},
        {{0xe0}, 1},
        {{0xd0, 0x80}, 2},
        {{0xd1, 0xff, 0xff}, 3},
        {{0xd2, 0x80, 0, 0, 0}, 5},
        {{0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9},
        /* Not integers at all. */
        {{0xc0}, 1},
        {{0xc3}, 1},
        {{0xa1, 'x'}, 2},
        {{0xca, 0, 0, 0, 0}, 5},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mp_reader r;
        uint64_t v = 99;
        mp_init(&r, cases[i].bytes, cases[i].len);
        assert_false(mp_uint(&r, &v));
        assert_true(r.err);
        assert_false(mp_done(&r));
    }
}

static void test_mp_int_every_width(void **state)
{
    static const struct
    {
        uint8_t bytes[9];
        size_t len;
        int64_t value;
    } cases[] = {
        {{0x00}, 1, 0},
        {{0x7f}, 1, 127},
        {{0xff}, 1, -1},
        {{0xe0}, 1, -32},
        {{0xd0, 0x80}, 2, -128},
        {{0xd0, 0x7f}, 2, 127},
        {{0xd1, 0x80, 0x00}, 3, -32768},
        {{0xd2, 0x80, 0, 0, 0}, 5, INT32_MIN},
        {{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9, INT64_MIN},
        {{0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}, 9, -2},
        {{0xcc, 0xff}, 2, 255},
        {{0xcd, 0xff, 0xff}, 3, 65535},
        {{0xce, 0xff, 0xff, 0xff, 0xff}, 5, 0xffffffffll},
        {{0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, INT64_MAX},
    };
    size_t i;
    struct mp_reader r;
    int64_t v;
    static const uint8_t too_big[] = {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0};
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t cut;
        mp_init(&r, cases[i].bytes, cases[i].len);
        assert_true(mp_int(&r, &v));
        assert_int_equal(v, cases[i].value);
        assert_true(mp_done(&r));
        for (cut = 0; cut < cases[i].len; cut++) {
            mp_init(&r, cases[i].bytes, cut);
            assert_false(mp_int(&r, &v));
        }
    }
    /* A uint64 above INT64_MAX does not fit. */
    mp_init(&r, too_big, sizeof(too_big));
    assert_false(mp_int(&r, &v));
}

/* Packs a str or bin header of the given width and body_len bytes of body. */
static size_t pack_bytes_header(uint8_t *out, uint8_t tag, unsigned width, uint32_t len)
{
    unsigned i;
    out[0] = tag;
    for (i = 0; i < width; i++) {
        out[1 + i] = (uint8_t)(len >> (8 * (width - 1 - i)));
    }
    return 1 + width;
}

static void test_mp_bytes_every_width(void **state)
{
    static const struct
    {
        uint8_t tag;
        unsigned width;
        uint32_t len;
    } cases[] = {
        {0xd9, 1, 0}, {0xd9, 1, 200}, {0xda, 2, 300}, {0xda, 2, 65535}, {0xdb, 4, 65536},
        {0xdb, 4, 3}, {0xc4, 1, 255}, {0xc5, 2, 256}, {0xc6, 4, 70000}, {0xc4, 1, 0},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t total = 5 + cases[i].len;
        uint8_t *msg = malloc(total);
        size_t h;
        uint32_t j;
        struct mp_reader r;
        const char *data;
        uint32_t len;
        assert_non_null(msg);
        h = pack_bytes_header(msg, cases[i].tag, cases[i].width, cases[i].len);
        for (j = 0; j < cases[i].len; j++) {
            msg[h + j] = (uint8_t)j;
        }
        mp_init(&r, msg, h + cases[i].len);
        assert_true(mp_bytes(&r, &data, &len));
        assert_int_equal(len, cases[i].len);
        assert_ptr_equal(data, (const char *)msg + h);
        assert_true(mp_done(&r));
        /* One byte short of the body, and a header cut short. */
        mp_init(&r, msg, h + cases[i].len - (cases[i].len > 0 ? 1 : 0));
        if (cases[i].len > 0) {
            assert_false(mp_bytes(&r, &data, &len));
        }
        mp_init(&r, msg, h - 1);
        assert_false(mp_bytes(&r, &data, &len));
        /* mp_skip agrees on where the object ends. */
        mp_init(&r, msg, h + cases[i].len);
        assert_true(mp_skip(&r));
        assert_true(mp_done(&r));
        free(msg);
    }
}

static void test_mp_fixstr_and_huge_lengths(void **state)
{
    static const uint8_t fixstr[] = {0xa3, 'a', 'b', 'c'};
    static const uint8_t empty[] = {0xa0};
    static const uint8_t str32_huge[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'x'};
    static const uint8_t bin32_huge[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 'x'};
    static const uint8_t not_bytes[] = {0x01};
    struct mp_reader r;
    const char *data;
    uint32_t len;
    (void)state;
    mp_init(&r, fixstr, sizeof(fixstr));
    assert_true(mp_bytes(&r, &data, &len));
    assert_int_equal(len, 3);
    assert_memory_equal(data, "abc", 3);
    mp_init(&r, empty, sizeof(empty));
    assert_true(mp_bytes(&r, &data, &len));
    assert_int_equal(len, 0);
    mp_init(&r, str32_huge, sizeof(str32_huge));
    assert_false(mp_bytes(&r, &data, &len));
    mp_init(&r, bin32_huge, sizeof(bin32_huge));
    assert_false(mp_skip(&r));
    mp_init(&r, not_bytes, sizeof(not_bytes));
    assert_false(mp_bytes(&r, &data, &len));
}

static void test_mp_containers_and_errors_latch(void **state)
{
    static const uint8_t arr[] = {0x92, 0x01, 0xc3};
    static const uint8_t arr16[] = {0xdc, 0x00, 0x02, 0x01, 0x02};
    static const uint8_t arr16_short[] = {0xdc, 0x00, 0x03, 0x01, 0x02};
    static const uint8_t map[] = {0x81, 0xa1, 'k', 0xc0};
    static const uint8_t map32_short[] = {0xdf, 0x00, 0x00, 0x00, 0x02, 0x01, 0x02, 0x03};
    struct mp_reader r;
    uint32_t n;
    uint64_t v;
    bool b;
    (void)state;
    mp_init(&r, arr, sizeof(arr));
    assert_true(mp_array(&r, &n));
    assert_int_equal(n, 2);
    assert_true(mp_uint(&r, &v));
    assert_true(mp_bool(&r, &b));
    assert_true(b);
    assert_true(mp_done(&r));
    mp_init(&r, arr16, sizeof(arr16));
    assert_true(mp_array(&r, &n));
    assert_int_equal(n, 2);
    mp_init(&r, arr16_short, sizeof(arr16_short));
    assert_false(mp_array(&r, &n));
    mp_init(&r, map, sizeof(map));
    assert_false(mp_array(&r, &n)); /* a map is not an array */
    mp_init(&r, map, sizeof(map));
    assert_true(mp_map(&r, &n));
    assert_int_equal(n, 1);
    assert_true(mp_skip(&r));
    assert_true(mp_try_nil(&r));
    assert_false(mp_try_nil(&r)); /* at the end */
    assert_true(mp_done(&r));
    mp_init(&r, map32_short, sizeof(map32_short));
    assert_false(mp_map(&r, &n)); /* 2 pairs need at least 4 bytes */
    /* Once an error latched, every call fails, even on good bytes. */
    mp_init(&r, arr, sizeof(arr));
    assert_false(mp_bool(&r, &b)); /* 0x92 is not a bool */
    assert_true(r.err);
    assert_false(mp_uint(&r, &v));
    assert_false(mp_skip(&r));
    assert_false(mp_try_nil(&r));
    assert_false(mp_done(&r));
    /* Empty input. */
    mp_init(&r, arr, 0);
    assert_true(mp_done(&r));
    assert_false(mp_array(&r, &n));
}

static void test_mp_skip_every_type(void **state)
{
    /* One of everything msgpack has, in one array. */
    /* clang-format off */
    static const uint8_t all[] = {
        0xdc, 0x00, 21,                         /* array16 of 21 */
        0x05,                                   /* fixint */
        0xf0,                                   /* negative fixint */
        0xc0,                                   /* nil */
        0xc2,                                   /* false */
        0xca, 0x3f, 0x80, 0x00, 0x00,           /* float32 */
        0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0,     /* float64 */
        0xd4, 0x01, 0xaa,                       /* fixext1 */
        0xd5, 0x01, 0xaa, 0xbb,                 /* fixext2 */
        0xd6, 0x01, 1, 2, 3, 4,                 /* fixext4 */
        0xd7, 0x01, 1, 2, 3, 4, 5, 6, 7, 8,     /* fixext8 */
        0xd8, 0x01, 1, 2, 3, 4, 5, 6, 7, 8,     /* fixext16 ... */
        9, 10, 11, 12, 13, 14, 15, 16,          /* ... its last 8 bytes */
        0xc7, 0x02, 0x01, 0xaa, 0xbb,           /* ext8 */
        0xc8, 0x00, 0x01, 0x01, 0xaa,           /* ext16 */
        0xc9, 0x00, 0x00, 0x00, 0x00, 0x01,     /* ext32, empty */
        0x80,                                   /* empty fixmap */
        0xde, 0x00, 0x01, 0x01, 0x02,           /* map16 */
        0x90,                                   /* empty fixarray */
        0xd1, 0x00, 0x01,                       /* int16 */
        0xcd, 0x00, 0x01,                       /* uint16 */
        0xce, 0, 0, 0, 1,                       /* uint32 */
        0xa2, 'h', 'i',                         /* fixstr */
    };
    /* clang-format on */
    static const uint8_t reserved[] = {0xc1};
    static const uint8_t ext32_huge[] = {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01};
    struct mp_reader r;
    size_t cut;
    (void)state;
    mp_init(&r, all, sizeof(all));
    assert_true(mp_skip(&r));
    assert_true(mp_done(&r));
    for (cut = 0; cut < sizeof(all); cut++) {
        uint8_t *copy = malloc(cut > 0 ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, all, cut);
        mp_init(&r, copy, cut);
        assert_false(mp_skip(&r));
        free(copy);
    }
    mp_init(&r, reserved, sizeof(reserved));
    assert_false(mp_skip(&r));
    mp_init(&r, ext32_huge, sizeof(ext32_huge));
    assert_false(mp_skip(&r));
}

static void test_mp_skip_depth_limit(void **state)
{
    uint8_t nest[MP_DEPTH_MAX + 3];
    struct mp_reader r;
    unsigned depth;
    (void)state;
    for (depth = 0; depth <= MP_DEPTH_MAX + 1; depth++) {
        unsigned i;
        for (i = 0; i < depth; i++) {
            nest[i] = 0x91; /* a fixarray of one */
        }
        nest[depth] = 0x01;
        mp_init(&r, nest, depth + 1);
        if (depth <= MP_DEPTH_MAX) {
            assert_true(mp_skip(&r));
            assert_true(mp_done(&r));
        } else {
            assert_false(mp_skip(&r));
        }
    }
    /* Maps nest the same way: {k: {k: ...}}. */
    {
        uint8_t maps[2 * (MP_DEPTH_MAX + 2) + 1];
        unsigned i;
        for (i = 0; i < MP_DEPTH_MAX + 2; i++) {
            maps[2 * i] = 0x81;
            maps[2 * i + 1] = 0x00;
        }
        maps[2 * (MP_DEPTH_MAX + 2)] = 0x00;
        mp_init(&r, maps, sizeof(maps));
        assert_false(mp_skip(&r));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip_simple_types),
        cmocka_unit_test(test_request_round_trip_txn),
        cmocka_unit_test(test_request_empty_txn_and_large_values),
        cmocka_unit_test(test_request_pipelined_frames),
        cmocka_unit_test(test_request_forward_compatible_extra_fields),
        cmocka_unit_test(test_request_read_bounds_optional),
        cmocka_unit_test(test_request_invalid_enums),
        cmocka_unit_test(test_request_wrong_version),
        cmocka_unit_test(test_request_trailing_garbage),
        cmocka_unit_test(test_request_every_truncation),
        cmocka_unit_test(test_request_huge_counts),
        cmocka_unit_test(test_request_deep_nesting),
        cmocka_unit_test(test_frame_peek),
        cmocka_unit_test(test_response_round_trip),
        cmocka_unit_test(test_response_error_frame),
        cmocka_unit_test(test_response_status_unknown_keys),
        cmocka_unit_test(test_response_every_truncation_and_garbage),
        cmocka_unit_test(test_response_version_flag_and_counts),
        cmocka_unit_test(test_request_allocation_failure),
        cmocka_unit_test(test_response_allocation_failure),
        cmocka_unit_test(test_watch_requests_round_trip),
        cmocka_unit_test(test_watch_message_round_trip),
        cmocka_unit_test(test_watch_messages_pipelined),
        cmocka_unit_test(test_watch_malformed),
        cmocka_unit_test(test_watch_forward_compatible_and_optional),
        cmocka_unit_test(test_watch_every_truncation_and_garbage),
        cmocka_unit_test(test_watch_allocation_failure),
        cmocka_unit_test(test_mp_uint_every_width),
        cmocka_unit_test(test_mp_uint_rejects_negative),
        cmocka_unit_test(test_mp_int_every_width),
        cmocka_unit_test(test_mp_bytes_every_width),
        cmocka_unit_test(test_mp_fixstr_and_huge_lengths),
        cmocka_unit_test(test_mp_containers_and_errors_latch),
        cmocka_unit_test(test_mp_skip_every_type),
        cmocka_unit_test(test_mp_skip_depth_limit),
        cmocka_unit_test(test_response_status_retention_cap),
        cmocka_unit_test(test_metrics_response_round_trip),
        cmocka_unit_test(test_metrics_response_text_optional_and_typed),
        cmocka_unit_test(test_metrics_response_allocation_failure),
        cmocka_unit_test(test_init_and_backup_requests_round_trip),
        cmocka_unit_test(test_backup_request_malformed_verbs),
        cmocka_unit_test(test_backup_response_round_trip),
        cmocka_unit_test(test_member_requests_and_answers),
        cmocka_unit_test(test_backup_response_allocation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
