/*
 * Unit tests of the versioned key space (src/kv.c).
 *
 * Every answer is checked the way a client sees it: the request runs through
 * kv_apply / kv_read into a protocol writer, and the packed response is
 * decoded again with proto_decode_response. That way the tests also prove
 * that kv packs exactly the results and kvs it announces.
 *
 * The snapshot tests compare two key spaces by kv_hash and, more strictly,
 * by the bytes of their answers to the same reads. Random corruption uses a
 * fixed seed, printed on failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "kv.h"
#include "proto.h"

/* The proposer's clock: every write gets the next millisecond. */
static int64_t now_ms = 1700000000000;

/* Requests */

static struct proto_slice bytes(const void *p, size_t len)
{
    struct proto_slice s;
    s.ptr = p;
    s.len = (uint32_t)len;
    return s;
}

static struct proto_slice str(const char *s)
{
    return bytes(s, strlen(s));
}

static struct proto_op op_of(uint8_t type, const char *key, const char *value)
{
    struct proto_op op;
    memset(&op, 0, sizeof(op));
    op.type = type;
    op.key = str(key);
    op.value = str(value != NULL ? value : "");
    op.after = str("");
    return op;
}

static struct proto_request request(uint8_t type)
{
    static uint64_t next_id = 1;
    struct proto_request req;
    memset(&req, 0, sizeof(req));
    req.id = next_id++;
    req.type = type;
    return req;
}

/* Runs req through kv_apply (write) or kv_read into a fresh buffer. Returns
 * kv's code; on success *out holds the whole frame. A refused request must
 * not have packed anything. */
static int answer(struct kv *kv, const struct proto_request *req, bool write, struct buf *out)
{
    struct proto_writer w;
    int rv;
    buf_init(out);
    proto_writer_begin(&w, out);
    rv = write ? kv_apply(kv, req, now_ms++, &w) : kv_read(kv, req, &w);
    if (rv != 0) {
        assert_int_equal(out->len, PROTO_FRAME_HEADER_SIZE);
        buf_free(out);
        return rv;
    }
    assert_int_equal(proto_writer_end(&w), 0);
    return 0;
}

/* As answer(), then decodes the response into *r (the caller frees it). */
static int exec(struct kv *kv, const struct proto_request *req, bool write,
                struct proto_response *r)
{
    struct buf b;
    size_t n;
    int rv;
    memset(r, 0, sizeof(*r));
    rv = answer(kv, req, write, &b);
    if (rv != 0) {
        return rv;
    }
    assert_int_equal(proto_frame_peek(b.data, b.len, PROTO_FRAME_SIZE_MAX, &n), 1);
    assert_int_equal(n + PROTO_FRAME_HEADER_SIZE, b.len);
    assert_int_equal(proto_decode_response(b.data + PROTO_FRAME_HEADER_SIZE, n, r), 0);
    assert_int_equal(r->id, req->id);
    assert_int_equal(r->type, req->type);
    assert_int_equal(r->code, 0);
    assert_non_null(r->result);
    assert_null(r->status);
    assert_int_equal(r->result->compact_revision, kv->compact_rev);
    buf_free(&b);
    return 0;
}

/* Put and return the revision the response reports. */
static uint64_t put(struct kv *kv, const char *key, const char *value)
{
    struct proto_request req = request(PROTO_PUT);
    struct proto_response r;
    uint64_t rev;
    req.op = op_of(CAIRN_OP_PUT, key, value);
    assert_int_equal(exec(kv, &req, true, &r), 0);
    assert_int_equal(r.result->n_ops, 1);
    assert_int_equal(r.result->ops[0].n_kvs, 0);
    assert_true(r.result->succeeded);
    rev = r.result->revision;
    assert_int_equal(rev, kv->rev);
    proto_response_free(&r);
    return rev;
}

/* Delete a key or prefix and return how many keys went. */
static uint64_t del(struct kv *kv, const char *key, bool prefix)
{
    struct proto_request req = request(PROTO_DEL);
    struct proto_response r;
    uint64_t n;
    req.op = op_of(CAIRN_OP_DEL, key, NULL);
    req.op.prefix = prefix;
    assert_int_equal(exec(kv, &req, true, &r), 0);
    assert_int_equal(r.result->n_ops, 1);
    n = r.result->ops[0].deleted;
    assert_int_equal(r.result->revision, kv->rev);
    proto_response_free(&r);
    return n;
}

static int apply_number(struct kv *kv, uint8_t type, uint64_t number)
{
    struct proto_request req = request(type);
    struct proto_response r;
    int rv;
    req.number = number;
    rv = exec(kv, &req, true, &r);
    if (rv == 0) {
        assert_int_equal(r.result->n_ops, 0);
        assert_int_equal(r.result->revision, kv->rev);
        proto_response_free(&r);
    }
    return rv;
}

static int compact(struct kv *kv, uint64_t rev)
{
    return apply_number(kv, PROTO_COMPACT, rev);
}

static int retain(struct kv *kv, uint64_t versions)
{
    return apply_number(kv, PROTO_RETENTION, versions);
}

/* Get one key at rev (0: current) into *r. */
static int get(struct kv *kv, const char *key, uint64_t rev, struct proto_response *r)
{
    struct proto_request req = request(PROTO_GET);
    int rv;
    req.op = op_of(CAIRN_OP_GET, key, NULL);
    req.op.revision = rev;
    rv = exec(kv, &req, false, r);
    if (rv == 0) {
        assert_int_equal(r->result->n_ops, 1);
        assert_int_equal(r->result->revision, rev != 0 ? rev : kv->rev);
    }
    return rv;
}

/* Asserts what a get of key at rev answers: value (NULL: absent) or code. */
static void expect_get(struct kv *kv, const char *key, uint64_t rev, const char *value)
{
    struct proto_response r;
    assert_int_equal(get(kv, key, rev, &r), 0);
    if (value == NULL) {
        assert_int_equal(r.result->ops[0].n_kvs, 0);
    } else {
        assert_int_equal(r.result->ops[0].n_kvs, 1);
        assert_int_equal(r.result->ops[0].kvs[0].value_len, strlen(value));
        assert_memory_equal(r.result->ops[0].kvs[0].value, value, strlen(value));
        assert_false(r.result->ops[0].kvs[0].deleted);
    }
    proto_response_free(&r);
}

static void expect_get_error(struct kv *kv, const char *key, uint64_t rev, int code)
{
    struct proto_response r;
    assert_int_equal(get(kv, key, rev, &r), code);
}

/* A range read of prefix at rev, continuing after `after` (NULL: none). */
static int range(struct kv *kv, const char *prefix, const char *after, uint64_t limit, uint64_t rev,
                 struct proto_response *r)
{
    struct proto_request req = request(PROTO_GET);
    req.op = op_of(CAIRN_OP_GET, prefix, NULL);
    req.op.prefix = true;
    req.op.limit = limit;
    req.op.revision = rev;
    if (after != NULL) {
        req.op.after = str(after);
    }
    return exec(kv, &req, false, r);
}

/* The keys of a range result joined with ',' into out. */
static void range_keys(const struct cairn_op_result *op, char *out, size_t len)
{
    size_t i;
    size_t used = 0;
    out[0] = '\0';
    for (i = 0; i < op->n_kvs; i++) {
        used += (size_t)snprintf(out + used, len - used, "%s%.*s", i > 0 ? "," : "",
                                 (int)op->kvs[i].key_len, op->kvs[i].key);
        assert_true(used < len);
    }
}

static void expect_range(struct kv *kv, const char *prefix, const char *after, uint64_t limit,
                         uint64_t rev, const char *keys, bool more)
{
    struct proto_response r;
    char got[512];
    assert_int_equal(range(kv, prefix, after, limit, rev, &r), 0);
    assert_int_equal(r.result->n_ops, 1);
    range_keys(&r.result->ops[0], got, sizeof(got));
    assert_string_equal(got, keys);
    assert_int_equal(r.result->ops[0].more, more);
    proto_response_free(&r);
}

static int history(struct kv *kv, const char *key, uint64_t limit, struct proto_response *r)
{
    struct proto_request req = request(PROTO_HISTORY);
    req.op = op_of(CAIRN_OP_GET, key, NULL);
    req.op.limit = limit;
    return exec(kv, &req, false, r);
}

/* Checks the mod revisions (newest first) of key's history, 0 marking a
 * tombstone's position by deleted == true in `tombstones`. */
static void expect_history(struct kv *kv, const char *key, const uint64_t *mods,
                           const bool *tombstones, size_t n)
{
    struct proto_response r;
    size_t i;
    assert_int_equal(history(kv, key, 0, &r), 0);
    assert_int_equal(r.result->ops[0].n_kvs, n);
    assert_false(r.result->ops[0].more);
    for (i = 0; i < n; i++) {
        assert_int_equal(r.result->ops[0].kvs[i].mod_revision, mods[i]);
        assert_int_equal(r.result->ops[0].kvs[i].deleted, tombstones[i]);
    }
    proto_response_free(&r);
}

static void setup_kv(struct kv *kv)
{
    assert_int_equal(kv_init(kv), 0);
}

/* Basic reads and writes */

static void test_put_get_metadata(void **state)
{
    struct kv kv;
    struct proto_response r;
    struct proto_request req;
    const struct cairn_kv *got;
    int64_t before;
    (void)state;
    setup_kv(&kv);
    assert_int_equal(kv.rev, 0);
    expect_get(&kv, "a", 0, NULL);

    before = now_ms;
    assert_int_equal(put(&kv, "a", "1"), 1);
    assert_int_equal(put(&kv, "a", "2"), 2);
    assert_int_equal(put(&kv, "b", "x"), 3);
    assert_int_equal(kv.live_keys, 2);

    assert_int_equal(get(&kv, "a", 0, &r), 0);
    assert_int_equal(r.result->revision, 3);
    got = &r.result->ops[0].kvs[0];
    assert_int_equal(got->key_len, 1);
    assert_memory_equal(got->key, "a", 1);
    assert_memory_equal(got->value, "2", 1);
    assert_int_equal(got->create_revision, 1);
    assert_int_equal(got->mod_revision, 2);
    assert_int_equal(got->version, 2);
    assert_int_equal(got->time_ms, before + 1); /* the second write's clock */
    assert_false(got->deleted);
    proto_response_free(&r);

    assert_int_equal(get(&kv, "b", 0, &r), 0);
    got = &r.result->ops[0].kvs[0];
    assert_int_equal(got->create_revision, 3);
    assert_int_equal(got->mod_revision, 3);
    assert_int_equal(got->version, 1);
    proto_response_free(&r);

    /* prev_kv returns the value a put replaced (and nothing for a new key). */
    req = request(PROTO_PUT);
    req.op = op_of(CAIRN_OP_PUT, "a", "3");
    req.op.prev_kv = true;
    assert_int_equal(exec(&kv, &req, true, &r), 0);
    assert_int_equal(r.result->revision, 4);
    assert_int_equal(r.result->ops[0].n_kvs, 1);
    assert_memory_equal(r.result->ops[0].kvs[0].value, "2", 1);
    assert_int_equal(r.result->ops[0].kvs[0].version, 2);
    proto_response_free(&r);
    req = request(PROTO_PUT);
    req.op = op_of(CAIRN_OP_PUT, "new", "v");
    req.op.prev_kv = true;
    assert_int_equal(exec(&kv, &req, true, &r), 0);
    assert_int_equal(r.result->ops[0].n_kvs, 0);
    proto_response_free(&r);

    /* Empty values and binary keys are values like any other. */
    put(&kv, "empty", "");
    expect_get(&kv, "empty", 0, "");
    req = request(PROTO_PUT);
    req.op = op_of(CAIRN_OP_PUT, "", "v");
    req.op.key = bytes("k\0z", 3);
    assert_int_equal(exec(&kv, &req, true, &r), 0);
    proto_response_free(&r);
    req = request(PROTO_GET);
    req.op = op_of(CAIRN_OP_GET, "", NULL);
    req.op.key = bytes("k\0z", 3);
    assert_int_equal(exec(&kv, &req, false, &r), 0);
    assert_int_equal(r.result->ops[0].n_kvs, 1);
    assert_int_equal(r.result->ops[0].kvs[0].key_len, 3);
    assert_memory_equal(r.result->ops[0].kvs[0].key, "k\0z", 3);
    proto_response_free(&r);
    expect_get(&kv, "k", 0, NULL);
    kv_close(&kv);
}

static void test_revision_counting(void **state)
{
    struct kv kv;
    struct proto_response r;
    struct proto_request req;
    struct proto_op ops[3];
    struct proto_cmp cmp;
    (void)state;
    setup_kv(&kv);
    put(&kv, "a", "1");
    assert_int_equal(kv.rev, 1);

    /* Deleting a missing key (or an empty prefix) changes nothing. */
    assert_int_equal(del(&kv, "missing", false), 0);
    assert_int_equal(del(&kv, "nothing/", true), 0);
    assert_int_equal(kv.rev, 1);

    /* A transaction of three writes is one revision. */
    req = request(PROTO_TXN);
    ops[0] = op_of(CAIRN_OP_PUT, "x", "1");
    ops[1] = op_of(CAIRN_OP_PUT, "y", "2");
    ops[2] = op_of(CAIRN_OP_DEL, "a", NULL);
    req.then_ops = ops;
    req.n_then = 3;
    assert_int_equal(exec(&kv, &req, true, &r), 0);
    assert_int_equal(r.result->revision, 2);
    assert_int_equal(r.result->n_ops, 3);
    assert_int_equal(r.result->ops[2].deleted, 1);
    proto_response_free(&r);
    assert_int_equal(kv.rev, 2);
    assert_int_equal(get(&kv, "y", 0, &r), 0);
    assert_int_equal(r.result->ops[0].kvs[0].mod_revision, 2);
    proto_response_free(&r);
    assert_int_equal(get(&kv, "x", 0, &r), 0);
    assert_int_equal(r.result->ops[0].kvs[0].mod_revision, 2);
    proto_response_free(&r);

    /* A transaction whose branch writes nothing creates no revision. */
    req = request(PROTO_TXN);
    cmp.key = str("x");
    cmp.target = CAIRN_CMP_VALUE;
    cmp.op = CAIRN_CMP_EQUAL;
    cmp.value = str("not it");
    cmp.number = 0;
    req.cmps = &cmp;
    req.n_cmps = 1;
    req.then_ops = ops;
    req.n_then = 2;
    assert_int_equal(exec(&kv, &req, true, &r), 0);
    assert_false(r.result->succeeded);
    assert_int_equal(r.result->n_ops, 0);
    assert_int_equal(r.result->revision, 2);
    proto_response_free(&r);
    ops[0] = op_of(CAIRN_OP_GET, "x", NULL);
    ops[1] = op_of(CAIRN_OP_DEL, "gone", NULL);
    req = request(PROTO_TXN);
    req.then_ops = ops;
    req.n_then = 2;
    assert_int_equal(exec(&kv, &req, true, &r), 0);
    assert_int_equal(r.result->revision, 2);
    proto_response_free(&r);
    assert_int_equal(kv.rev, 2);

    /* Compaction and retention are settings, not revisions. */
    assert_int_equal(retain(&kv, 4), 0);
    assert_int_equal(compact(&kv, 1), 0);
    assert_int_equal(kv.rev, 2);

    /* Writing the same value again is still a write. */
    put(&kv, "x", "1");
    put(&kv, "x", "1");
    assert_int_equal(kv.rev, 4);
    kv_close(&kv);
}

static void test_get_at_past_revisions(void **state)
{
    struct kv kv;
    struct proto_response r;
    (void)state;
    setup_kv(&kv);
    put(&kv, "a", "v1");    /* 1 */
    put(&kv, "a", "v2");    /* 2 */
    put(&kv, "other", "o"); /* 3 */
    del(&kv, "a", false);   /* 4 */
    put(&kv, "a", "v5");    /* 5 */
    expect_get(&kv, "a", 1, "v1");
    expect_get(&kv, "a", 2, "v2");
    expect_get(&kv, "a", 3, "v2");
    expect_get(&kv, "a", 4, NULL);
    expect_get(&kv, "a", 5, "v5");
    expect_get(&kv, "a", 0, "v5");
    expect_get(&kv, "other", 2, NULL); /* did not exist yet */
    expect_get_error(&kv, "a", 6, CAIRN_EFUTUREREV);
    expect_get_error(&kv, "a", UINT64_MAX, CAIRN_EFUTUREREV);

    /* Recreated after a delete: a new life, version 1 again. */
    assert_int_equal(get(&kv, "a", 5, &r), 0);
    assert_int_equal(r.result->ops[0].kvs[0].create_revision, 5);
    assert_int_equal(r.result->ops[0].kvs[0].version, 1);
    proto_response_free(&r);
    assert_int_equal(get(&kv, "a", 2, &r), 0);
    assert_int_equal(r.result->ops[0].kvs[0].create_revision, 1);
    assert_int_equal(r.result->ops[0].kvs[0].version, 2);
    assert_int_equal(r.result->revision, 2); /* answered at the revision asked */
    proto_response_free(&r);

    /* Ranges at a past revision too. */
    expect_range(&kv, "", NULL, 0, 3, "a,other", false);
    expect_range(&kv, "", NULL, 0, 4, "other", false);
    kv_close(&kv);
}

static void test_range_prefix_pagination(void **state)
{
    struct kv kv;
    char key[16];
    char after[16];
    int i;
    (void)state;
    setup_kv(&kv);
    /* Insert out of order so the skip list does the ordering. */
    for (i = 9; i >= 0; i--) {
        snprintf(key, sizeof(key), "app/%c", 'a' + i);
        put(&kv, key, "v");
    }
    put(&kv, "apq", "v");
    put(&kv, "ap", "v");
    put(&kv, "b", "v");
    put(&kv, "app", "v");
    put(&kv, "app/", "v");

    expect_range(&kv, "app/", NULL, 0, 0,
                 "app/,app/a,app/b,app/c,app/d,app/e,app/f,app/g,app/h,"
                 "app/i,app/j",
                 false);
    expect_range(&kv, "app", NULL, 0, 0,
                 "app,app/,app/a,app/b,app/c,app/d,app/e,app/f,app/g,app/h,app/i,app/j", false);
    expect_range(&kv, "", NULL, 0, 0,
                 "ap,app,app/,app/a,app/b,app/c,app/d,app/e,app/f,app/g,app/h,app/i,app/j,apq,b",
                 false);
    expect_range(&kv, "zzz", NULL, 0, 0, "", false);

    /* Pages of 3, each continuing after the last key of the one before. */
    expect_range(&kv, "app/", NULL, 3, 0, "app/,app/a,app/b", true);
    expect_range(&kv, "app/", "app/b", 3, 0, "app/c,app/d,app/e", true);
    expect_range(&kv, "app/", "app/e", 3, 0, "app/f,app/g,app/h", true);
    expect_range(&kv, "app/", "app/h", 3, 0, "app/i,app/j", false);
    /* Exactly limit keys left: no more. */
    expect_range(&kv, "app/", "app/g", 3, 0, "app/h,app/i,app/j", false);
    expect_range(&kv, "app/", "app/j", 3, 0, "", false);
    /* A continuation key that is not itself a key starts at the next one. */
    expect_range(&kv, "app/", "app/cc", 2, 0, "app/d,app/e", true);
    /* One before the prefix starts at the prefix; one past it is empty. */
    expect_range(&kv, "app/", "aaa", 2, 0, "app/,app/a", true);
    expect_range(&kv, "app/", "b", 2, 0, "", false);

    /* Walk the whole prefix one key at a time. */
    after[0] = '\0';
    for (i = 0; i < 11; i++) {
        struct proto_response r;
        assert_int_equal(range(&kv, "app/", after[0] != '\0' ? after : NULL, 1, 0, &r), 0);
        assert_int_equal(r.result->ops[0].n_kvs, 1);
        assert_int_equal(r.result->ops[0].more, i < 10);
        snprintf(after, sizeof(after), "%.*s", (int)r.result->ops[0].kvs[0].key_len,
                 r.result->ops[0].kvs[0].key);
        proto_response_free(&r);
    }
    assert_string_equal(after, "app/j");

    /* Deleted keys are skipped, and pages count only live keys. */
    del(&kv, "app/b", false);
    del(&kv, "app/c", false);
    expect_range(&kv, "app/", NULL, 3, 0, "app/,app/a,app/d", true);
    /* ... but a read at an older revision still sees them. */
    expect_range(&kv, "app/", NULL, 3, 15, "app/,app/a,app/b", true);
    kv_close(&kv);
}

static void test_range_byte_limit(void **state)
{
    struct kv kv;
    struct proto_response r;
    size_t big = 6u * 1024u * 1024u;
    char *value = malloc(big + 1);
    (void)state;
    assert_non_null(value);
    memset(value, 'v', big);
    value[big] = '\0';
    setup_kv(&kv);
    put(&kv, "big/1", value);
    put(&kv, "big/2", value);
    put(&kv, "big/3", value);
    /* 16 MiB per answer: two values fit, the third waits for the next page. */
    assert_int_equal(range(&kv, "big/", NULL, 0, 0, &r), 0);
    assert_int_equal(r.result->ops[0].n_kvs, 2);
    assert_true(r.result->ops[0].more);
    proto_response_free(&r);
    assert_int_equal(range(&kv, "big/", "big/2", 0, 0, &r), 0);
    assert_int_equal(r.result->ops[0].n_kvs, 1);
    assert_false(r.result->ops[0].more);
    proto_response_free(&r);
    kv_close(&kv);
    free(value);

    /* A single value over the limit still comes back, alone: a page never
     * stops before its first key, or the range could never advance. */
    big = 17u * 1024u * 1024u;
    value = malloc(big + 1);
    assert_non_null(value);
    memset(value, 'w', big);
    value[big] = '\0';
    setup_kv(&kv);
    put(&kv, "huge/1", value);
    put(&kv, "huge/2", "small");
    assert_int_equal(range(&kv, "huge/", NULL, 0, 0, &r), 0);
    assert_int_equal(r.result->ops[0].n_kvs, 1);
    assert_int_equal(r.result->ops[0].kvs[0].value_len, big);
    assert_true(r.result->ops[0].more);
    proto_response_free(&r);
    kv_close(&kv);
    free(value);
}

static void test_delete_key_and_prefix(void **state)
{
    struct kv kv;
    struct proto_response r;
    struct proto_request req;
    char got[256];
    (void)state;
    setup_kv(&kv);
    put(&kv, "dir/a", "1"); /* 1 */
    put(&kv, "dir/b", "2"); /* 2 */
    put(&kv, "dir/c", "3"); /* 3 */
    put(&kv, "dir/d", "4"); /* 4 */
    put(&kv, "dirt", "5");  /* 5 */
    put(&kv, "solo", "6");  /* 6 */
    assert_int_equal(kv.live_keys, 6);

    /* A single key, with the value it had. */
    req = request(PROTO_DEL);
    req.op = op_of(CAIRN_OP_DEL, "solo", NULL);
    req.op.prev_kv = true;
    assert_int_equal(exec(&kv, &req, true, &r), 0);
    assert_int_equal(r.result->revision, 7);
    assert_int_equal(r.result->ops[0].deleted, 1);
    assert_int_equal(r.result->ops[0].n_kvs, 1);
    assert_memory_equal(r.result->ops[0].kvs[0].value, "6", 1);
    assert_int_equal(r.result->ops[0].kvs[0].mod_revision, 6);
    proto_response_free(&r);
    assert_int_equal(kv.live_keys, 5);
    expect_get(&kv, "solo", 0, NULL);
    assert_int_equal(del(&kv, "solo", false), 0); /* already gone */
    assert_int_equal(kv.rev, 7);

    del(&kv, "dir/b", false); /* 8 */
    /* A prefix: the three live keys under dir/, not dirt (prefix "dir/"). */
    req = request(PROTO_DEL);
    req.op = op_of(CAIRN_OP_DEL, "dir/", NULL);
    req.op.prefix = true;
    req.op.prev_kv = true;
    assert_int_equal(exec(&kv, &req, true, &r), 0);
    assert_int_equal(r.result->revision, 9);
    assert_int_equal(r.result->ops[0].deleted, 3);
    range_keys(&r.result->ops[0], got, sizeof(got));
    assert_string_equal(got, "dir/a,dir/c,dir/d");
    proto_response_free(&r);
    assert_int_equal(kv.live_keys, 1);
    expect_range(&kv, "dir", NULL, 0, 0, "dirt", false);
    expect_range(&kv, "dir/", NULL, 0, 8, "dir/a,dir/c,dir/d", false);

    /* Tombstones stay in history until compaction. */
    {
        const uint64_t mods[] = {9, 3};
        const bool tomb[] = {true, false};
        expect_history(&kv, "dir/c", mods, tomb, 2);
    }
    assert_int_equal(kv.nodes, 6);

    /* The empty prefix is everything. */
    assert_int_equal(del(&kv, "", true), 1);
    assert_int_equal(kv.live_keys, 0);
    assert_int_equal(kv.rev, 10);
    assert_int_equal(del(&kv, "", true), 0);
    assert_int_equal(kv.rev, 10);
    kv_close(&kv);
}

/* Transactions */

/* Runs a txn with one compare; then puts r=then, else puts r=else. Returns
 * whether the compare held (and checks the branch that ran). */
static bool txn_holds(struct kv *kv, const char *key, uint8_t target, uint8_t op, const char *value,
                      uint64_t number)
{
    struct proto_request req = request(PROTO_TXN);
    struct proto_response r;
    struct proto_cmp cmp;
    struct proto_op then_op = op_of(CAIRN_OP_PUT, "r", "then");
    struct proto_op else_op = op_of(CAIRN_OP_PUT, "r", "else");
    bool ok;
    cmp.key = str(key);
    cmp.target = target;
    cmp.op = op;
    cmp.value = str(value != NULL ? value : "");
    cmp.number = number;
    req.cmps = &cmp;
    req.n_cmps = 1;
    req.then_ops = &then_op;
    req.n_then = 1;
    req.else_ops = &else_op;
    req.n_else = 1;
    assert_int_equal(exec(kv, &req, true, &r), 0);
    ok = r.result->succeeded;
    assert_int_equal(r.result->n_ops, 1);
    proto_response_free(&r);
    expect_get(kv, "r", 0, ok ? "then" : "else");
    return ok;
}

static void test_txn_compares(void **state)
{
    struct kv kv;
    (void)state;
    setup_kv(&kv);
    put(&kv, "k", "m");   /* 1: create 1 */
    put(&kv, "pad", "x"); /* 2 */
    put(&kv, "k", "m2");  /* 3: mod 3, version 2 */
    /* The txns below write "r", so k stays as it is. */

    /* value: bytewise order, shorter first on a tie. */
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_VALUE, CAIRN_CMP_EQUAL, "m2", 0));
    assert_false(txn_holds(&kv, "k", CAIRN_CMP_VALUE, CAIRN_CMP_EQUAL, "m", 0));
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_VALUE, CAIRN_CMP_NOT_EQUAL, "m", 0));
    assert_false(txn_holds(&kv, "k", CAIRN_CMP_VALUE, CAIRN_CMP_NOT_EQUAL, "m2", 0));
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_VALUE, CAIRN_CMP_LESS, "m3", 0));
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_VALUE, CAIRN_CMP_LESS, "m20", 0));
    assert_false(txn_holds(&kv, "k", CAIRN_CMP_VALUE, CAIRN_CMP_LESS, "m2", 0));
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_VALUE, CAIRN_CMP_GREATER, "m", 0));
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_VALUE, CAIRN_CMP_GREATER, "a99", 0));
    assert_false(txn_holds(&kv, "k", CAIRN_CMP_VALUE, CAIRN_CMP_GREATER, "n", 0));

    /* version = 2 */
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_VERSION, CAIRN_CMP_EQUAL, NULL, 2));
    assert_false(txn_holds(&kv, "k", CAIRN_CMP_VERSION, CAIRN_CMP_EQUAL, NULL, 1));
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_VERSION, CAIRN_CMP_NOT_EQUAL, NULL, 1));
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_VERSION, CAIRN_CMP_LESS, NULL, 3));
    assert_false(txn_holds(&kv, "k", CAIRN_CMP_VERSION, CAIRN_CMP_LESS, NULL, 2));
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_VERSION, CAIRN_CMP_GREATER, NULL, 1));
    assert_false(txn_holds(&kv, "k", CAIRN_CMP_VERSION, CAIRN_CMP_GREATER, NULL, 2));

    /* mod_revision = 3 */
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_MOD, CAIRN_CMP_EQUAL, NULL, 3));
    assert_false(txn_holds(&kv, "k", CAIRN_CMP_MOD, CAIRN_CMP_EQUAL, NULL, 1));
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_MOD, CAIRN_CMP_NOT_EQUAL, NULL, 2));
    assert_false(txn_holds(&kv, "k", CAIRN_CMP_MOD, CAIRN_CMP_NOT_EQUAL, NULL, 3));
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_MOD, CAIRN_CMP_LESS, NULL, 4));
    assert_false(txn_holds(&kv, "k", CAIRN_CMP_MOD, CAIRN_CMP_LESS, NULL, 3));
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_MOD, CAIRN_CMP_GREATER, NULL, 2));
    assert_false(txn_holds(&kv, "k", CAIRN_CMP_MOD, CAIRN_CMP_GREATER, NULL, 3));

    /* create_revision = 1 */
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_CREATE, CAIRN_CMP_EQUAL, NULL, 1));
    assert_false(txn_holds(&kv, "k", CAIRN_CMP_CREATE, CAIRN_CMP_EQUAL, NULL, 3));
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_CREATE, CAIRN_CMP_NOT_EQUAL, NULL, 3));
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_CREATE, CAIRN_CMP_LESS, NULL, 2));
    assert_false(txn_holds(&kv, "k", CAIRN_CMP_CREATE, CAIRN_CMP_LESS, NULL, 1));
    assert_true(txn_holds(&kv, "k", CAIRN_CMP_CREATE, CAIRN_CMP_GREATER, NULL, 0));
    assert_false(txn_holds(&kv, "k", CAIRN_CMP_CREATE, CAIRN_CMP_GREATER, NULL, 1));

    /* A missing (or deleted) key: version 0, revisions 0, empty value. */
    assert_true(txn_holds(&kv, "nope", CAIRN_CMP_VERSION, CAIRN_CMP_EQUAL, NULL, 0));
    assert_true(txn_holds(&kv, "nope", CAIRN_CMP_MOD, CAIRN_CMP_EQUAL, NULL, 0));
    assert_true(txn_holds(&kv, "nope", CAIRN_CMP_CREATE, CAIRN_CMP_EQUAL, NULL, 0));
    assert_true(txn_holds(&kv, "nope", CAIRN_CMP_VALUE, CAIRN_CMP_EQUAL, "", 0));
    assert_false(txn_holds(&kv, "nope", CAIRN_CMP_VERSION, CAIRN_CMP_GREATER, NULL, 0));
    del(&kv, "pad", false);
    assert_true(txn_holds(&kv, "pad", CAIRN_CMP_MOD, CAIRN_CMP_EQUAL, NULL, 0));
    assert_true(txn_holds(&kv, "pad", CAIRN_CMP_VALUE, CAIRN_CMP_EQUAL, "", 0));

    /* Compare-and-swap as cairn_cas does it: mod_revision == expected. */
    assert_true(txn_holds(&kv, "r", CAIRN_CMP_MOD, CAIRN_CMP_EQUAL, NULL, kv.rev));
    assert_false(txn_holds(&kv, "r", CAIRN_CMP_MOD, CAIRN_CMP_EQUAL, NULL, kv.rev - 1));

    /* Every compare must hold. */
    {
        struct proto_request req = request(PROTO_TXN);
        struct proto_response r;
        struct proto_cmp cmps[2];
        struct proto_op then_op = op_of(CAIRN_OP_PUT, "multi", "then");
        struct proto_op else_op = op_of(CAIRN_OP_PUT, "multi", "else");
        uint64_t rev = kv.rev;
        memset(cmps, 0, sizeof(cmps));
        cmps[0].key = str("k");
        cmps[0].target = CAIRN_CMP_VERSION;
        cmps[0].op = CAIRN_CMP_EQUAL;
        cmps[0].number = 2;
        cmps[1].key = str("k");
        cmps[1].target = CAIRN_CMP_VALUE;
        cmps[1].op = CAIRN_CMP_EQUAL;
        cmps[1].value = str("wrong");
        req.cmps = cmps;
        req.n_cmps = 2;
        req.then_ops = &then_op;
        req.n_then = 1;
        req.else_ops = &else_op;
        req.n_else = 1;
        assert_int_equal(exec(&kv, &req, true, &r), 0);
        assert_false(r.result->succeeded);
        assert_int_equal(r.result->revision, rev + 1);
        proto_response_free(&r);
        expect_get(&kv, "multi", 0, "else");
    }
    kv_close(&kv);
}

static void test_txn_reads_see_earlier_writes(void **state)
{
    struct kv kv;
    struct proto_request req;
    struct proto_response r;
    struct proto_op ops[7];
    const struct cairn_op_result *res;
    char got[128];
    (void)state;
    setup_kv(&kv);
    put(&kv, "x", "old"); /* 1 */
    put(&kv, "z/1", "z"); /* 2 */

    ops[0] = op_of(CAIRN_OP_GET, "x", NULL);
    ops[1] = op_of(CAIRN_OP_PUT, "x", "new");
    ops[2] = op_of(CAIRN_OP_GET, "x", NULL);
    ops[3] = op_of(CAIRN_OP_PUT, "z/2", "z");
    ops[4] = op_of(CAIRN_OP_GET, "z/", NULL);
    ops[4].prefix = true;
    ops[5] = op_of(CAIRN_OP_DEL, "x", NULL);
    ops[6] = op_of(CAIRN_OP_GET, "x", NULL);
    req = request(PROTO_TXN);
    req.then_ops = ops;
    req.n_then = 7;
    assert_int_equal(exec(&kv, &req, true, &r), 0);
    assert_true(r.result->succeeded);
    assert_int_equal(r.result->revision, 3);
    assert_int_equal(r.result->n_ops, 7);
    res = r.result->ops;
    assert_int_equal(res[0].n_kvs, 1);
    assert_memory_equal(res[0].kvs[0].value, "old", 3);
    assert_int_equal(res[2].n_kvs, 1);
    assert_memory_equal(res[2].kvs[0].value, "new", 3);
    assert_int_equal(res[2].kvs[0].mod_revision, 3);
    assert_int_equal(res[2].kvs[0].version, 2);
    range_keys(&res[4], got, sizeof(got));
    assert_string_equal(got, "z/1,z/2");
    assert_int_equal(res[5].deleted, 1);
    assert_int_equal(res[6].n_kvs, 0);
    proto_response_free(&r);
    assert_int_equal(kv.rev, 3);
    expect_get(&kv, "x", 0, NULL);
    expect_get(&kv, "x", 2, "old");

    /* A read-only transaction through kv_read: current state, no revision. */
    ops[0] = op_of(CAIRN_OP_GET, "z/2", NULL);
    req = request(PROTO_TXN);
    req.then_ops = ops;
    req.n_then = 1;
    assert_true(kv_txn_is_read_only(&req));
    assert_int_equal(exec(&kv, &req, false, &r), 0);
    assert_int_equal(r.result->revision, 3);
    assert_int_equal(r.result->ops[0].n_kvs, 1);
    proto_response_free(&r);
    /* kv_read refuses a transaction that writes. */
    req.else_ops = &ops[1];
    req.n_else = 1;
    assert_false(kv_txn_is_read_only(&req));
    assert_int_equal(exec(&kv, &req, false, &r), CAIRN_EINVAL);
    assert_int_equal(kv.rev, 3);
    kv_close(&kv);
}

static void test_apply_and_read_refuse_mismatched_requests(void **state)
{
    struct kv kv;
    struct proto_request req;
    struct proto_response r;
    uint64_t hash;
    (void)state;
    setup_kv(&kv);
    put(&kv, "a", "1");
    hash = kv_hash(&kv);
    req = request(PROTO_PUT);
    req.op = op_of(CAIRN_OP_DEL, "a", NULL);
    assert_int_equal(exec(&kv, &req, true, &r), CAIRN_EMALFORMED);
    req = request(PROTO_DEL);
    req.op = op_of(CAIRN_OP_PUT, "a", "2");
    assert_int_equal(exec(&kv, &req, true, &r), CAIRN_EMALFORMED);
    req = request(PROTO_GET);
    req.op = op_of(CAIRN_OP_GET, "a", NULL);
    assert_int_equal(exec(&kv, &req, true, &r), CAIRN_EMALFORMED);
    req = request(PROTO_STATUS);
    assert_int_equal(exec(&kv, &req, true, &r), CAIRN_EMALFORMED);
    req = request(PROTO_PUT);
    req.op = op_of(CAIRN_OP_PUT, "a", "2");
    assert_int_equal(exec(&kv, &req, false, &r), CAIRN_EINVAL);
    req = request(PROTO_COMPACT);
    assert_int_equal(exec(&kv, &req, false, &r), CAIRN_EINVAL);
    assert_int_equal(kv_hash(&kv), hash);
    /* Without a writer (a follower applying someone else's request). */
    req = request(PROTO_PUT);
    req.op = op_of(CAIRN_OP_PUT, "a", "2");
    assert_int_equal(kv_apply(&kv, &req, now_ms++, NULL), 0);
    expect_get(&kv, "a", 0, "2");
    kv_close(&kv);
}

/* Retention and compaction */

static void test_retention(void **state)
{
    struct kv kv;
    struct proto_response r;
    uint64_t hash;
    int i;
    (void)state;
    setup_kv(&kv);
    assert_int_equal(kv.n_policies, 1);
    assert_int_equal(kv.policies[0].prefix_len, 0);
    assert_int_equal(kv.policies[0].max_versions, KV_RETAIN_VERSIONS_DEFAULT);
    assert_int_equal(kv.policies[0].max_age_ms, 0);
    assert_int_equal(retain(&kv, 3), 0);
    assert_int_equal(kv.policies[0].max_versions, 3);
    for (i = 1; i <= 5; i++) {
        char v[8];
        snprintf(v, sizeof(v), "v%d", i);
        put(&kv, "a", v); /* revisions 1..5 */
    }
    {
        const uint64_t mods[] = {5, 4, 3};
        const bool tomb[] = {false, false, false};
        expect_history(&kv, "a", mods, tomb, 3);
    }
    expect_get(&kv, "a", 3, "v3");
    expect_get(&kv, "a", 4, "v4");
    /* Trimmed by retention, not by compaction: the read says so. */
    expect_get_error(&kv, "a", 2, CAIRN_ECOMPACTED);
    expect_get_error(&kv, "a", 1, CAIRN_ECOMPACTED);
    assert_int_equal(range(&kv, "", NULL, 0, 2, &r), CAIRN_ECOMPACTED);
    assert_int_equal(kv.compact_rev, 0);

    /* Deleted, then trimmed: the tombstone is the newest discarded version.
     * At its revision the key is known to be absent; before it, unknown. */
    assert_int_equal(retain(&kv, 2), 0);
    put(&kv, "b", "b1");  /* 6 */
    del(&kv, "b", false); /* 7 */
    put(&kv, "b", "b3");  /* 8 */
    put(&kv, "b", "b4");  /* 9 */
    {
        const uint64_t mods[] = {9, 8};
        const bool tomb[] = {false, false};
        expect_history(&kv, "b", mods, tomb, 2);
    }
    expect_get(&kv, "b", 7, NULL);
    expect_get(&kv, "b", 8, "b3");
    expect_get_error(&kv, "b", 6, CAIRN_ECOMPACTED);
    expect_range(&kv, "b", NULL, 0, 7, "", false);
    assert_int_equal(range(&kv, "b", NULL, 0, 6, &r), CAIRN_ECOMPACTED);
    /* A key that never had anything discarded is simply absent before it
     * was created, even though other keys lost history. */
    put(&kv, "c", "c1"); /* 10 */
    expect_get(&kv, "c", 9, NULL);
    expect_get(&kv, "c", 1, NULL);

    /* Retention 1 with a deleted key: only the tombstone remains. */
    assert_int_equal(retain(&kv, 1), 0);
    del(&kv, "c", false); /* 11 */
    {
        const uint64_t mods[] = {11};
        const bool tomb[] = {true};
        expect_history(&kv, "c", mods, tomb, 1);
    }
    expect_get(&kv, "c", 11, NULL);
    expect_get_error(&kv, "c", 10, CAIRN_ECOMPACTED);
    assert_int_equal(kv.live_keys, 2);
    /* Lowering retention trims existing history at once. */
    {
        const uint64_t mods[] = {9};
        const bool tomb[] = {false};
        expect_history(&kv, "b", mods, tomb, 1);
    }
    expect_get_error(&kv, "b", 8, CAIRN_ECOMPACTED);
    /* Recreating a deleted key under retention 1. */
    put(&kv, "c", "again"); /* 12 */
    expect_get(&kv, "c", 12, "again");
    expect_get(&kv, "c", 11, NULL);

    /* Refused settings change nothing. */
    hash = kv_hash(&kv);
    assert_int_equal(retain(&kv, (uint64_t)UINT32_MAX + 1), CAIRN_EINVAL);
    assert_int_equal(kv.policies[0].max_versions, 1);
    assert_int_equal(kv_hash(&kv), hash);
    /* Raising it keeps what is left and lets history grow again. */
    assert_int_equal(retain(&kv, 10), 0);
    put(&kv, "b", "b5");
    {
        const uint64_t mods[] = {13, 9};
        const bool tomb[] = {false, false};
        expect_history(&kv, "b", mods, tomb, 2);
    }
    kv_close(&kv);
}

static void test_compaction(void **state)
{
    struct kv kv;
    struct proto_response r;
    uint64_t hash;
    (void)state;
    setup_kv(&kv);
    put(&kv, "a", "a1");  /* 1 */
    put(&kv, "a", "a2");  /* 2 */
    put(&kv, "b", "b3");  /* 3 */
    del(&kv, "b", false); /* 4 */
    put(&kv, "c", "c5");  /* 5 */
    put(&kv, "a", "a6");  /* 6 */
    put(&kv, "d", "d7");  /* 7 */
    del(&kv, "d", false); /* 8 */
    assert_int_equal(kv.nodes, 4);

    assert_int_equal(compact(&kv, 4), 0);
    assert_int_equal(kv.compact_rev, 4);
    /* Below the compact revision every read is refused. */
    expect_get_error(&kv, "a", 3, CAIRN_ECOMPACTED);
    expect_get_error(&kv, "c", 1, CAIRN_ECOMPACTED);
    assert_int_equal(range(&kv, "", NULL, 0, 2, &r), CAIRN_ECOMPACTED);
    /* At and above it the answers are what they were. */
    expect_get(&kv, "a", 4, "a2");
    expect_get(&kv, "a", 5, "a2");
    expect_get(&kv, "a", 6, "a6");
    expect_get(&kv, "b", 4, NULL);
    expect_get(&kv, "c", 4, NULL);
    expect_get(&kv, "d", 7, "d7");
    expect_range(&kv, "", NULL, 0, 4, "a", false);
    expect_range(&kv, "", NULL, 0, 7, "a,c,d", false);
    /* b was deleted at or before 4: gone from the key space entirely. */
    assert_int_equal(kv.nodes, 3);
    assert_int_equal(history(&kv, "b", 0, &r), 0);
    assert_int_equal(r.result->ops[0].n_kvs, 0);
    proto_response_free(&r);
    {
        const uint64_t mods[] = {6, 2};
        const bool tomb[] = {false, false};
        expect_history(&kv, "a", mods, tomb, 2);
    }
    /* The compact revision shows in every response (exec checks it). */
    expect_get(&kv, "c", 0, "c5");

    /* Compacting again at or below is refused; the future too. */
    hash = kv_hash(&kv);
    assert_int_equal(compact(&kv, 4), CAIRN_ECOMPACTED);
    assert_int_equal(compact(&kv, 3), CAIRN_ECOMPACTED);
    assert_int_equal(compact(&kv, 0), CAIRN_ECOMPACTED);
    assert_int_equal(compact(&kv, 9), CAIRN_EFUTUREREV);
    assert_int_equal(compact(&kv, UINT64_MAX), CAIRN_EFUTUREREV);
    assert_int_equal(kv_hash(&kv), hash);
    assert_int_equal(kv.compact_rev, 4);

    /* Up to the current revision: one version per key, d disappears. */
    assert_int_equal(compact(&kv, 8), 0);
    assert_int_equal(kv.nodes, 2);
    {
        const uint64_t mods[] = {6};
        const bool tomb[] = {false};
        expect_history(&kv, "a", mods, tomb, 1);
    }
    expect_get(&kv, "a", 8, "a6");
    expect_get(&kv, "d", 8, NULL);
    expect_get_error(&kv, "a", 7, CAIRN_ECOMPACTED);
    assert_int_equal(kv.live_keys, 2);

    /* A key deleted after compaction, then recreated, starts a new life. */
    put(&kv, "d", "d9"); /* 9 */
    expect_get(&kv, "d", 8, NULL);
    expect_get(&kv, "d", 9, "d9");
    assert_int_equal(get(&kv, "d", 9, &r), 0);
    assert_int_equal(r.result->ops[0].kvs[0].version, 1);
    assert_int_equal(r.result->ops[0].kvs[0].create_revision, 9);
    proto_response_free(&r);
    kv_close(&kv);
}

static void test_compaction_on_empty_store(void **state)
{
    struct kv kv;
    (void)state;
    setup_kv(&kv);
    assert_int_equal(compact(&kv, 0), CAIRN_ECOMPACTED);
    assert_int_equal(compact(&kv, 1), CAIRN_EFUTUREREV);
    put(&kv, "a", "1");
    assert_int_equal(compact(&kv, 1), 0);
    expect_get(&kv, "a", 1, "1");
    kv_close(&kv);
}

static void test_history(void **state)
{
    struct kv kv;
    struct proto_response r;
    const struct cairn_kv *h;
    (void)state;
    setup_kv(&kv);
    put(&kv, "k", "1");   /* 1 */
    put(&kv, "k", "2");   /* 2 */
    del(&kv, "k", false); /* 3 */
    put(&kv, "k", "4");   /* 4 */
    assert_int_equal(history(&kv, "k", 0, &r), 0);
    assert_int_equal(r.result->n_ops, 1);
    assert_int_equal(r.result->ops[0].n_kvs, 4);
    assert_false(r.result->ops[0].more);
    h = r.result->ops[0].kvs;
    assert_int_equal(h[0].mod_revision, 4);
    assert_memory_equal(h[0].value, "4", 1);
    assert_int_equal(h[0].version, 1);
    assert_int_equal(h[0].create_revision, 4);
    assert_int_equal(h[1].mod_revision, 3);
    assert_true(h[1].deleted);
    assert_int_equal(h[1].value_len, 0);
    assert_int_equal(h[2].mod_revision, 2);
    assert_int_equal(h[2].version, 2);
    assert_int_equal(h[3].mod_revision, 1);
    assert_true(h[3].time_ms < h[2].time_ms);
    proto_response_free(&r);
    assert_int_equal(history(&kv, "k", 2, &r), 0);
    assert_int_equal(r.result->ops[0].n_kvs, 2);
    assert_true(r.result->ops[0].more);
    assert_int_equal(r.result->ops[0].kvs[1].mod_revision, 3);
    proto_response_free(&r);
    assert_int_equal(history(&kv, "missing", 0, &r), 0);
    assert_int_equal(r.result->ops[0].n_kvs, 0);
    assert_false(r.result->ops[0].more);
    proto_response_free(&r);
    kv_close(&kv);
}

/* Snapshots */

static int policy(struct kv *kv, const char *prefix, uint64_t versions, uint64_t age_ms);

/* A state with a bit of everything: binary keys, empty values, tombstones,
 * history trimmed by retention (deleted and not), retention policies, and a
 * compaction. */
static void build_rich_state(struct kv *kv)
{
    struct proto_request req;
    struct proto_response r;
    struct proto_op ops[3];
    int i;
    assert_int_equal(retain(kv, 4), 0);
    assert_int_equal(policy(kv, "txn/", 5, 0), 0);
    assert_int_equal(policy(kv, "cfg/d", 4, 3600000), 0);
    for (i = 0; i < 6; i++) {
        char v[16];
        snprintf(v, sizeof(v), "value-%d", i);
        put(kv, "cfg/a", v);
    }
    put(kv, "cfg/b", "");
    put(kv, "cfg/c", "c");
    del(kv, "cfg/c", false);
    put(kv, "gone", "g");
    del(kv, "gone", false);
    put(kv, "cfg/d", "d1");
    del(kv, "cfg/d", false);
    put(kv, "cfg/d", "d3");
    put(kv, "cfg/d", "d4");
    put(kv, "cfg/d", "d5");
    put(kv, "cfg/d", "d6");
    req = request(PROTO_PUT);
    req.op = op_of(CAIRN_OP_PUT, "", "bin\0ary");
    req.op.key = bytes("\x00\xff\x01", 3);
    req.op.value.len = 7;
    assert_int_equal(exec(kv, &req, true, &r), 0);
    proto_response_free(&r);
    /* One transaction writing several keys at one revision. */
    ops[0] = op_of(CAIRN_OP_PUT, "txn/1", "t");
    ops[1] = op_of(CAIRN_OP_PUT, "txn/2", "t");
    ops[2] = op_of(CAIRN_OP_DEL, "cfg/b", NULL);
    req = request(PROTO_TXN);
    req.then_ops = ops;
    req.n_then = 3;
    assert_int_equal(exec(kv, &req, true, &r), 0);
    proto_response_free(&r);
    assert_int_equal(compact(kv, 10), 0);
    put(kv, "late", "l");
}

/* Reads that cover every key at every readable revision. */
static void expect_same_answers(struct kv *a, struct kv *b)
{
    static const char *keys[] = {"cfg/a", "cfg/b", "cfg/c", "cfg/d", "gone",
                                 "txn/1", "late",  "",      "cfg/",  "zzz"};
    uint64_t rev;
    size_t i;
    assert_int_equal(a->rev, b->rev);
    assert_int_equal(a->compact_rev, b->compact_rev);
    assert_int_equal(a->n_policies, b->n_policies);
    assert_int_equal(a->n_aged_policies, b->n_aged_policies);
    for (i = 0; i < a->n_policies; i++) {
        assert_int_equal(a->policies[i].prefix_len, b->policies[i].prefix_len);
        assert_memory_equal(a->policies[i].prefix != NULL ? a->policies[i].prefix : "",
                            b->policies[i].prefix != NULL ? b->policies[i].prefix : "",
                            a->policies[i].prefix_len);
        assert_int_equal(a->policies[i].max_versions, b->policies[i].max_versions);
        assert_int_equal(a->policies[i].max_age_ms, b->policies[i].max_age_ms);
    }
    assert_int_equal(a->live_keys, b->live_keys);
    assert_int_equal(a->nodes, b->nodes);
    assert_int_equal(a->value_bytes, b->value_bytes);
    for (rev = a->compact_rev; rev <= a->rev + 1; rev++) {
        for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            int prefix;
            for (prefix = 0; prefix < 3; prefix++) {
                struct proto_request req = request(prefix == 2 ? PROTO_HISTORY : PROTO_GET);
                struct buf ba;
                struct buf bb;
                int ra;
                int rb;
                req.op = op_of(CAIRN_OP_GET, keys[i], NULL);
                req.op.prefix = prefix == 1;
                req.op.revision = rev;
                ra = answer(a, &req, false, &ba);
                rb = answer(b, &req, false, &bb);
                assert_int_equal(ra, rb);
                if (ra == 0) {
                    assert_int_equal(ba.len, bb.len);
                    assert_memory_equal(ba.data, bb.data, ba.len);
                    buf_free(&ba);
                    buf_free(&bb);
                }
            }
        }
    }
}

static void test_snapshot_round_trip(void **state)
{
    struct kv a;
    struct kv b;
    struct buf s1;
    struct buf s2;
    int64_t t;
    (void)state;
    setup_kv(&a);
    setup_kv(&b);
    build_rich_state(&a);
    put(&b, "will be replaced", "x");
    buf_init(&s1);
    assert_int_equal(kv_snapshot_encode(&a, &s1), 0);
    assert_int_equal(kv_snapshot_decode(&b, s1.data, s1.len), 0);
    assert_int_equal(kv_hash(&a), kv_hash(&b));
    expect_same_answers(&a, &b);
    /* Re-encoding gives the same bytes. */
    buf_init(&s2);
    assert_int_equal(kv_snapshot_encode(&b, &s2), 0);
    assert_int_equal(s1.len, s2.len);
    assert_memory_equal(s1.data, s2.data, s1.len);
    /* Both go on identically (at the same proposer times). */
    t = now_ms;
    put(&a, "cfg/a", "after");
    del(&a, "cfg/", true);
    assert_int_equal(compact(&a, 15), 0);
    put(&a, "new", "n");
    now_ms = t;
    put(&b, "cfg/a", "after");
    del(&b, "cfg/", true);
    assert_int_equal(compact(&b, 15), 0);
    put(&b, "new", "n");
    assert_int_equal(kv_hash(&a), kv_hash(&b));
    expect_same_answers(&a, &b);
    buf_free(&s1);
    buf_free(&s2);

    /* An empty store round-trips too. */
    kv_close(&b);
    setup_kv(&b);
    buf_init(&s1);
    assert_int_equal(kv_snapshot_encode(&b, &s1), 0);
    assert_int_equal(kv_snapshot_decode(&a, s1.data, s1.len), 0);
    assert_int_equal(kv_hash(&a), kv_hash(&b));
    assert_int_equal(a.rev, 0);
    assert_int_equal(a.nodes, 0);
    buf_free(&s1);
    kv_close(&a);
    kv_close(&b);
}

/* A capture (what an asynchronous snapshot encodes on another thread) must
 * keep describing the state at capture time while the key space goes on:
 * overwrites that trim history, deletes, compaction that unlinks keys, a
 * retention change, and even a whole snapshot restored over it. Under ASan
 * this also proves the capture never reads freed memory. */
static void test_snapshot_capture_survives_changes(void **state)
{
    struct kv a;
    struct kv other;
    struct kv_capture *cap;
    struct buf ref;
    struct buf got;
    struct buf other_snap;
    int i;
    (void)state;
    setup_kv(&a);
    build_rich_state(&a);
    buf_init(&ref);
    assert_int_equal(kv_snapshot_encode(&a, &ref), 0);
    assert_int_equal(kv_capture(&a, &cap), 0);
    assert_int_equal(a.captures, 1);

    for (i = 0; i < 20; i++) {
        put(&a, "cfg/a", "overwritten, trimming the captured versions");
    }
    del(&a, "cfg/", true);
    del(&a, "", true);
    assert_int_equal(compact(&a, a.rev), 0);
    assert_int_equal(retain(&a, 1), 0);
    assert_true(a.n_deferred > 0); /* freed values wait for the capture */
    setup_kv(&other);
    put(&other, "other", "state");
    buf_init(&other_snap);
    assert_int_equal(kv_snapshot_encode(&other, &other_snap), 0);
    assert_int_equal(kv_snapshot_decode(&a, other_snap.data, other_snap.len), 0);
    assert_int_equal(a.captures, 1); /* the restored state inherits it */

    buf_init(&got);
    assert_int_equal(kv_capture_encode(cap, &got), 0);
    assert_int_equal(got.len, ref.len);
    assert_memory_equal(got.data, ref.data, ref.len);
    kv_capture_release(&a, cap);
    assert_int_equal(a.captures, 0);
    assert_int_equal(a.n_deferred, 0);
    assert_int_equal(kv_hash(&a), kv_hash(&other));

    buf_free(&ref);
    buf_free(&got);
    buf_free(&other_snap);
    kv_close(&other);
    kv_close(&a);
}

struct piece_sink
{
    struct buf out;
    size_t calls;
    size_t largest;
    size_t fail_at; /* the call that fails (1-based), 0: none */
};

static int piece_sink_cb(void *arg, const void *data, size_t len)
{
    struct piece_sink *ps = arg;
    ps->calls++;
    if (ps->fail_at != 0 && ps->calls == ps->fail_at) {
        return -7;
    }
    if (len > ps->largest) {
        ps->largest = len;
    }
    return buf_append(&ps->out, data, len);
}

/* kv_capture_encode_to gives the bytes kv_capture_encode does, in pieces
 * of at most 256 KiB unless one value is larger, and its size is what
 * kv_capture_encoded_size says; a failing sink stops it with its code. */
static void test_capture_encode_streamed(void **state)
{
    struct kv a;
    struct kv_capture *cap;
    struct buf ref;
    struct piece_sink ps;
    uint64_t size = 0;
    char key[32];
    char *big = malloc((size_t)600 << 10);
    int i;
    (void)state;
    setup_kv(&a);
    build_rich_state(&a);
    memset(big, 'v', (size_t)600 << 10);
    big[((size_t)600 << 10) - 1] = '\0';
    for (i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "many/%05d", i);
        put(&a, key, "a value of some length, to fill several pieces of the encoding");
    }
    put(&a, "big", big); /* one value larger than a piece */
    buf_init(&ref);
    assert_int_equal(kv_capture(&a, &cap), 0);
    assert_int_equal(kv_capture_encode(cap, &ref), 0);
    assert_int_equal(kv_capture_encoded_size(cap, &size), 0);
    assert_int_equal(size, ref.len);

    memset(&ps, 0, sizeof(ps));
    buf_init(&ps.out);
    assert_int_equal(kv_capture_encode_to(cap, piece_sink_cb, &ps), 0);
    assert_int_equal(ps.out.len, ref.len);
    assert_memory_equal(ps.out.data, ref.data, ref.len);
    assert_true(ps.calls > 2);
    assert_true(ps.largest >= ((size_t)600 << 10) - 1); /* the big value, straight on */
    buf_free(&ps.out);

    memset(&ps, 0, sizeof(ps));
    buf_init(&ps.out);
    ps.fail_at = 2;
    assert_int_equal(kv_capture_encode_to(cap, piece_sink_cb, &ps), -7);
    assert_int_equal(ps.calls, 2); /* nothing more after the failure */
    buf_free(&ps.out);

    kv_capture_release(&a, cap);
    buf_free(&ref);
    free(big);
    kv_close(&a);
}

/* The same key written twice in one transaction (put then put, or delete
 * then put) leaves two versions with one mod_revision. That state must
 * survive a snapshot like any other. */
static void test_snapshot_same_key_twice_in_txn(void **state)
{
    struct kv a;
    struct kv b;
    struct buf s;
    struct proto_request req;
    struct proto_response r;
    struct proto_op ops[4];
    (void)state;
    setup_kv(&a);
    setup_kv(&b);
    put(&a, "k", "0");
    put(&a, "p/x", "0");
    ops[0] = op_of(CAIRN_OP_PUT, "k", "1");
    ops[1] = op_of(CAIRN_OP_PUT, "k", "2");
    ops[2] = op_of(CAIRN_OP_DEL, "p/", NULL);
    ops[2].prefix = true;
    ops[3] = op_of(CAIRN_OP_PUT, "p/x", "3");
    req = request(PROTO_TXN);
    req.then_ops = ops;
    req.n_then = 4;
    assert_int_equal(exec(&a, &req, true, &r), 0);
    assert_int_equal(r.result->revision, 3);
    proto_response_free(&r);
    expect_get(&a, "k", 3, "2");
    expect_get(&a, "p/x", 3, "3");
    buf_init(&s);
    assert_int_equal(kv_snapshot_encode(&a, &s), 0);
    assert_int_equal(kv_snapshot_decode(&b, s.data, s.len), 0);
    assert_int_equal(kv_hash(&a), kv_hash(&b));
    expect_same_answers(&a, &b);
    buf_free(&s);
    kv_close(&a);
    kv_close(&b);
}

/* A tiny deterministic generator for the corruption tests. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static void test_snapshot_decode_corrupt(void **state)
{
    struct kv src;
    struct kv target;
    struct buf s;
    struct buf original;
    uint64_t hash;
    size_t cut;
    uint64_t seed = 0x5eed5eed12345678ull;
    uint64_t rng = seed;
    int i;
    int accepted = 0;
    (void)state;
    setup_kv(&src);
    put(&src, "a", "1");
    put(&src, "a", "2");
    put(&src, "b", "3");
    del(&src, "b", false);
    put(&src, "c", "");
    assert_int_equal(retain(&src, 2), 0);
    put(&src, "a", "4");
    buf_init(&s);
    assert_int_equal(kv_snapshot_encode(&src, &s), 0);

    setup_kv(&target);
    put(&target, "existing", "state");
    put(&target, "existing", "state2");
    hash = kv_hash(&target);
    buf_init(&original);
    assert_int_equal(kv_snapshot_encode(&target, &original), 0);

    /* Every truncation, from each own exact-size allocation so that ASan
     * sees any read past the end. */
    for (cut = 0; cut < s.len; cut++) {
        char *copy = malloc(cut > 0 ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, s.data, cut);
        assert_int_equal(kv_snapshot_decode(&target, copy, cut), CAIRN_EMALFORMED);
        assert_int_equal(kv_hash(&target), hash);
        free(copy);
    }
    expect_get(&target, "existing", 0, "state2");
    expect_get(&target, "existing", 1, "state");

    /* Random flips of one to three bytes. Some flips give another valid
     * snapshot (a changed value byte); those must decode to a consistent
     * key space, which we check by round-tripping it. */
    for (i = 0; i < 3000; i++) {
        char *copy = malloc(s.len);
        int flips = 1 + (int)(rng_next(&rng) % 3);
        int f;
        int rv;
        assert_non_null(copy);
        memcpy(copy, s.data, s.len);
        for (f = 0; f < flips; f++) {
            size_t at = (size_t)(rng_next(&rng) % s.len);
            copy[at] = (char)(copy[at] ^ (uint8_t)(1 + rng_next(&rng) % 255));
        }
        rv = kv_snapshot_decode(&target, copy, s.len);
        if (rv != 0) {
            if (rv != CAIRN_EMALFORMED || kv_hash(&target) != hash) {
                print_error("seed %#llx iteration %d: rv %d\n", (unsigned long long)seed, i, rv);
            }
            assert_int_equal(rv, CAIRN_EMALFORMED);
            assert_int_equal(kv_hash(&target), hash);
        } else {
            struct kv again;
            struct buf s2;
            accepted++;
            setup_kv(&again);
            buf_init(&s2);
            assert_int_equal(kv_snapshot_encode(&target, &s2), 0);
            assert_int_equal(kv_snapshot_decode(&again, s2.data, s2.len), 0);
            assert_int_equal(kv_hash(&again), kv_hash(&target));
            kv_close(&again);
            buf_free(&s2);
            /* Back to the known state for the next round. */
            assert_int_equal(kv_snapshot_decode(&target, original.data, original.len), 0);
            assert_int_equal(kv_hash(&target), hash);
        }
        free(copy);
    }
    /* Most flips break the structure. */
    assert_true(accepted < 3000 / 2);
    buf_free(&original);
    buf_free(&s);
    kv_close(&src);
    kv_close(&target);
}

/* Handcrafted snapshots that are well-formed msgpack but not a valid state. */
struct snap_key
{
    const char *key;
    uint64_t floor_rev;
    uint64_t mods[3];
    unsigned n_versions;
};

/* A key's head in a snapshot: [key, floor_rev, floor_deleted false,
 * [n_versions versions]]; the caller packs the versions. */
static void pack_snap_key(msgpack_packer *pk, const char *key, uint64_t floor_rev,
                          unsigned n_versions)
{
    size_t len = strlen(key);
    msgpack_pack_array(pk, 4);
    msgpack_pack_bin(pk, len);
    msgpack_pack_bin_body(pk, key, len);
    msgpack_pack_uint64(pk, floor_rev);
    msgpack_pack_false(pk);
    msgpack_pack_array(pk, n_versions);
}

/* One version of a key in a snapshot: a put of "v" with no lease. */
static void pack_snap_version(msgpack_packer *pk, uint64_t mod_rev, uint64_t create_rev,
                              uint64_t version)
{
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint64(pk, mod_rev);
    msgpack_pack_uint64(pk, create_rev);
    msgpack_pack_uint64(pk, version);
    msgpack_pack_int64(pk, 0);
    msgpack_pack_false(pk);
    msgpack_pack_bin(pk, 1);
    msgpack_pack_bin_body(pk, "v", 1);
}

/* Starts a handcrafted snapshot in sb (initialised here, packed through pk):
 * a six-element array with its format and revisions; the caller packs the
 * other three elements and ends with snap_pack_end(). */
static void snap_pack_begin(msgpack_sbuffer *sb, msgpack_packer *pk, uint64_t format, uint64_t rev,
                            uint64_t compact_rev)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint64(pk, format);
    msgpack_pack_uint64(pk, rev);
    msgpack_pack_uint64(pk, compact_rev);
}

/* Copies what was packed into sb to out (initialised here) and frees sb. */
static void snap_pack_end(msgpack_sbuffer *sb, struct buf *out)
{
    buf_init(out);
    assert_int_equal(buf_append(out, sb->data, sb->size), 0);
    msgpack_sbuffer_destroy(sb);
}

/* Decodes the snapshot s into target, expecting rv; a refused snapshot must
 * leave target as it was (its hash still hash). Frees s. */
static void expect_snapshot_decode(struct kv *target, struct buf *s, int rv, uint64_t hash)
{
    assert_int_equal(kv_snapshot_decode(target, s->data, s->len), rv);
    if (rv != 0) {
        assert_int_equal(kv_hash(target), hash);
    }
    buf_free(s);
}

static void pack_snapshot(struct buf *out, uint64_t format, uint64_t rev, uint64_t compact_rev,
                          uint64_t retain_n, uint64_t n_keys_claimed, const struct snap_key *keys,
                          unsigned n_keys)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    unsigned i;
    unsigned j;
    snap_pack_begin(&sb, &pk, format, rev, compact_rev);
    msgpack_pack_uint64(&pk, retain_n);
    msgpack_pack_uint64(&pk, n_keys_claimed);
    msgpack_pack_array(&pk, n_keys);
    for (i = 0; i < n_keys; i++) {
        pack_snap_key(&pk, keys[i].key, keys[i].floor_rev, keys[i].n_versions);
        for (j = 0; j < keys[i].n_versions; j++) {
            pack_snap_version(&pk, keys[i].mods[j], keys[i].mods[0], j + 1);
        }
    }
    snap_pack_end(&sb, out);
}

static void test_snapshot_decode_invalid_states(void **state)
{
    static const struct snap_key good[] = {{"a", 0, {1, 2}, 2}, {"b", 0, {3}, 1}};
    static const struct snap_key unordered[] = {{"b", 0, {1}, 1}, {"a", 0, {2}, 1}};
    static const struct snap_key duplicate[] = {{"a", 0, {1}, 1}, {"a", 0, {2}, 1}};
    static const struct snap_key versions_backwards[] = {{"a", 0, {2, 1}, 2}};
    static const struct snap_key future_version[] = {{"a", 0, {1, 9}, 2}};
    static const struct snap_key no_versions[] = {{"a", 0, {0}, 0}};
    struct kv target;
    struct buf s;
    uint64_t hash;
    (void)state;
    setup_kv(&target);
    put(&target, "x", "y");
    hash = kv_hash(&target);

#define EXPECT_SNAPSHOT(rv, ...)                         \
    do {                                                 \
        pack_snapshot(&s, __VA_ARGS__);                  \
        expect_snapshot_decode(&target, &s, (rv), hash); \
    } while (0)

    EXPECT_SNAPSHOT(CAIRN_EMALFORMED, 4, 3, 0, 10, 2, good, 2);      /* unknown format */
    EXPECT_SNAPSHOT(CAIRN_EMALFORMED, 3, 3, 0, 10, 2, good, 2);      /* 3 with six elements */
    EXPECT_SNAPSHOT(CAIRN_EMALFORMED, 2, 3, 0, 10, 2, good, 2);      /* 2 with a number */
    EXPECT_SNAPSHOT(CAIRN_EMALFORMED, 1, 3, 4, 10, 2, good, 2);      /* compact > rev */
    EXPECT_SNAPSHOT(CAIRN_EMALFORMED, 1, 3, 0, 0, 2, good, 2);       /* retain 0 */
    EXPECT_SNAPSHOT(CAIRN_EMALFORMED, 1, 3, 0, 10, 3, good, 2);      /* count mismatch */
    EXPECT_SNAPSHOT(CAIRN_EMALFORMED, 1, 2, 0, 10, 2, good, 2);      /* version after rev */
    EXPECT_SNAPSHOT(CAIRN_EMALFORMED, 1, 3, 0, 10, 2, unordered, 2); /* keys out of order */
    EXPECT_SNAPSHOT(CAIRN_EMALFORMED, 1, 3, 0, 10, 2, duplicate, 2); /* duplicate key */
    EXPECT_SNAPSHOT(CAIRN_EMALFORMED, 1, 3, 0, 10, 1, versions_backwards, 1);
    EXPECT_SNAPSHOT(CAIRN_EMALFORMED, 1, 3, 0, 10, 1, future_version, 1);
    EXPECT_SNAPSHOT(CAIRN_EMALFORMED, 1, 3, 0, 10, 1, no_versions, 1);
    /* The good one decodes, and answers like the state it describes. */
    EXPECT_SNAPSHOT(0, 1, 3, 0, 10, 2, good, 2);
#undef EXPECT_SNAPSHOT
    /* Format 1 (a single retain_versions) is the policy for "" alone. */
    assert_int_equal(target.n_policies, 1);
    assert_int_equal(target.policies[0].max_versions, 10);
    assert_int_equal(target.policies[0].max_age_ms, 0);
    assert_int_equal(target.rev, 3);
    assert_int_equal(target.live_keys, 2);
    expect_get(&target, "a", 1, "v");
    expect_get(&target, "x", 0, NULL);
    assert_int_equal(kv_hash(&target), kv_hash_full(&target));
    /* A count other than the default is that policy's. */
    hash = kv_hash(&target);
    pack_snapshot(&s, 1, 3, 0, 3, 2, good, 2);
    expect_snapshot_decode(&target, &s, 0, hash);
    assert_int_equal(target.policies[0].max_versions, 3);
    assert_int_not_equal(kv_hash(&target), hash);
    assert_int_equal(kv_hash(&target), kv_hash_full(&target));
    kv_close(&target);
}

static void test_snapshot_decode_out_of_memory(void **state)
{
    struct kv src;
    struct kv target;
    struct buf s;
    uint64_t hash;
    long n;
    int rv = CAIRN_ENOMEM;
    (void)state;
    setup_kv(&src);
    build_rich_state(&src);
    buf_init(&s);
    assert_int_equal(kv_snapshot_encode(&src, &s), 0);
    setup_kv(&target);
    put(&target, "existing", "state");
    hash = kv_hash(&target);
    /* Fail the n-th allocation for n = 0, 1, ... until decoding needs no
     * more than that: every failure is ENOMEM and leaves target as it was
     * (LeakSanitizer checks nothing of the half-built state leaks). */
    for (n = 0; rv == CAIRN_ENOMEM; n++) {
        assert_true(n < 10000);
        cairn_alloc_fail_after(n);
        rv = kv_snapshot_decode(&target, s.data, s.len);
        cairn_alloc_fail_after(-1);
        if (rv != 0) {
            assert_int_equal(rv, CAIRN_ENOMEM);
            assert_int_equal(kv_hash(&target), hash);
            expect_get(&target, "existing", 0, "state");
        }
    }
    assert_int_equal(rv, 0);
    assert_true(n > 5); /* the loop did fail several allocations */
    assert_int_equal(kv_hash(&target), kv_hash(&src));
    expect_same_answers(&src, &target);

    /* Encoding reports running out of memory as well. */
    {
        struct buf e;
        buf_init(&e);
        cairn_alloc_fail_after(0);
        assert_int_equal(kv_snapshot_encode(&src, &e), CAIRN_ENOMEM);
        cairn_alloc_fail_after(-1);
        buf_free(&e);
    }
    buf_free(&s);
    kv_close(&src);
    kv_close(&target);
}

/* Retention policies per prefix */

/* Set the policy for prefix (len bytes); versions and age_ms both 0 remove
 * it. Applied at now_ms like any entry. */
static int policy_bytes(struct kv *kv, const char *prefix, size_t len, uint64_t versions,
                        uint64_t age_ms)
{
    struct proto_request req = request(PROTO_RETENTION);
    struct proto_response r;
    uint64_t rev = kv->rev;
    int rv;
    req.op.key = bytes(prefix, len);
    req.number = versions;
    req.age_ms = age_ms;
    rv = exec(kv, &req, true, &r);
    if (rv == 0) {
        assert_int_equal(r.result->n_ops, 0);
        assert_int_equal(r.result->revision, rev); /* a setting, not a revision */
        assert_int_equal(kv->rev, rev);
        proto_response_free(&r);
    }
    return rv;
}

static int policy(struct kv *kv, const char *prefix, uint64_t versions, uint64_t age_ms)
{
    return policy_bytes(kv, prefix, strlen(prefix), versions, age_ms);
}

/* A sweep entry proposed at time t. */
static void sweep_at(struct kv *kv, int64_t t)
{
    struct proto_request req = request(PROTO_SWEEP);
    struct proto_response r;
    uint64_t rev = kv->rev;
    now_ms = t;
    assert_int_equal(exec(kv, &req, true, &r), 0);
    assert_int_equal(r.result->n_ops, 0);
    assert_int_equal(r.result->revision, rev);
    assert_int_equal(kv->rev, rev);
    proto_response_free(&r);
}

/* A put whose entry was proposed at time t. */
static uint64_t put_at(struct kv *kv, int64_t t, const char *key, const char *value)
{
    now_ms = t;
    return put(kv, key, value);
}

static const struct kv_key *key_of(const struct kv *kv, const char *key)
{
    const struct kv_key *k = kv_seek(kv, key, (uint32_t)strlen(key));
    if (k == NULL || k->key_len != strlen(key) || memcmp(k->key, key, k->key_len) != 0) {
        return NULL;
    }
    return k;
}

/* Versions key retains (0: not in the key space). */
static uint32_t versions_of(const struct kv *kv, const char *key)
{
    const struct kv_key *k = key_of(kv, key);
    return k != NULL ? k->n_versions : 0;
}

/* The policy deciding for key, found by a plain scan of the table. */
static const struct kv_retention *policy_by_scan(const struct kv *kv, const char *key, size_t len)
{
    const struct kv_retention *best = NULL;
    uint32_t i;
    for (i = 0; i < kv->n_policies; i++) {
        const struct kv_retention *p = &kv->policies[i];
        if (p->prefix_len <= len &&
            (p->prefix_len == 0 || memcmp(p->prefix, key, p->prefix_len) == 0) &&
            (best == NULL || p->prefix_len > best->prefix_len)) {
            best = p;
        }
    }
    return best;
}

static void expect_policy_for(const struct kv *kv, const char *key, uint64_t versions)
{
    const struct kv_retention *p = kv_retention_for(kv, key, (uint32_t)strlen(key));
    assert_non_null(p);
    assert_int_equal(p->max_versions, versions);
}

static void test_retention_longest_prefix(void **state)
{
    static const char alphabet[] = {'a', 'b', '\0', '\xff'};
    struct kv kv;
    uint64_t seed = 0x9e7e47104ull;
    uint64_t rng = seed;
    uint32_t i;
    int n;
    (void)state;
    setup_kv(&kv);
    assert_int_equal(policy(&kv, "a", 1, 0), 0);
    assert_int_equal(policy(&kv, "ab", 2, 0), 0);
    assert_int_equal(policy(&kv, "abb", 3, 0), 0);
    assert_int_equal(policy(&kv, "abc/", 4, 0), 0);
    assert_int_equal(policy(&kv, "b", 5, 0), 0);
    assert_int_equal(kv.n_policies, 6);
    /* "abb" and "abc/" sort on either side of "abc" and neither is its
     * prefix: the search must fall back to "ab". */
    expect_policy_for(&kv, "abc", 2);
    expect_policy_for(&kv, "abc/x", 4);
    expect_policy_for(&kv, "abc/", 4);
    expect_policy_for(&kv, "abba", 3);
    expect_policy_for(&kv, "abb", 3);
    expect_policy_for(&kv, "ab", 2);
    expect_policy_for(&kv, "aa", 1);
    expect_policy_for(&kv, "a", 1);
    expect_policy_for(&kv, "b/x", 5);
    expect_policy_for(&kv, "", KV_RETAIN_VERSIONS_DEFAULT);
    expect_policy_for(&kv, "0", KV_RETAIN_VERSIONS_DEFAULT);
    expect_policy_for(&kv, "c", KV_RETAIN_VERSIONS_DEFAULT);
    /* Writes obey the policy that decides. */
    for (n = 0; n < 6; n++) {
        put(&kv, "abc", "v");
        put(&kv, "abc/x", "v");
        put(&kv, "c", "v");
    }
    assert_int_equal(versions_of(&kv, "abc"), 2);
    assert_int_equal(versions_of(&kv, "abc/x"), 4);
    assert_int_equal(versions_of(&kv, "c"), 6);
    kv_close(&kv);

    /* Random tables over a small alphabet (with NUL and 0xff bytes) agree
     * with a plain scan, and stay strictly sorted. */
    setup_kv(&kv);
    for (n = 0; n < 300; n++) {
        char p[4];
        size_t len = (size_t)(rng_next(&rng) % 4);
        size_t j;
        for (j = 0; j < len; j++) {
            p[j] = alphabet[rng_next(&rng) % sizeof(alphabet)];
        }
        assert_int_equal(policy_bytes(&kv, p, len, (uint64_t)n + 1, 0), 0);
    }
    for (i = 1; i < kv.n_policies; i++) {
        const struct kv_retention *x = &kv.policies[i - 1];
        const struct kv_retention *y = &kv.policies[i];
        size_t len = x->prefix_len < y->prefix_len ? x->prefix_len : y->prefix_len;
        int c = len > 0 ? memcmp(x->prefix, y->prefix, len) : 0;
        assert_true(c < 0 || (c == 0 && x->prefix_len < y->prefix_len));
    }
    for (n = 0; n < 5000; n++) {
        char key[7];
        size_t len = (size_t)(rng_next(&rng) % 7);
        size_t j;
        const struct kv_retention *want;
        const struct kv_retention *got;
        for (j = 0; j < len; j++) {
            key[j] = alphabet[rng_next(&rng) % sizeof(alphabet)];
        }
        want = policy_by_scan(&kv, key, len);
        got = kv_retention_for(&kv, key, (uint32_t)len);
        if (got != want) {
            print_error("seed %#llx: key %d\n", (unsigned long long)seed, n);
        }
        assert_ptr_equal(got, want);
    }
    kv_close(&kv);
}

static void test_retention_version_cap(void **state)
{
    struct kv kv;
    uint64_t mods[5];
    int i;
    (void)state;
    setup_kv(&kv);
    assert_int_equal(policy(&kv, "app/", 2, 0), 0);
    for (i = 0; i < 5; i++) {
        mods[i] = put(&kv, "app/x", "v");
        put(&kv, "other/x", "v");
    }
    assert_int_equal(versions_of(&kv, "app/x"), 2);
    assert_int_equal(versions_of(&kv, "other/x"), 5);
    /* The trimmed versions are reported as such, not as absent. */
    assert_int_equal(key_of(&kv, "app/x")->floor_rev, mods[2]);
    expect_get_error(&kv, "app/x", mods[2], CAIRN_ECOMPACTED);
    expect_get(&kv, "app/x", mods[3], "v");
    /* Setting a policy trims what is under it at once, and nothing else. */
    assert_int_equal(policy(&kv, "other/", 1, 0), 0);
    assert_int_equal(versions_of(&kv, "other/x"), 1);
    assert_int_equal(versions_of(&kv, "app/x"), 2);
    /* The version count and the key space's totals agree. */
    assert_int_equal(kv.total_versions, 3);
    kv_close(&kv);
}

static void test_retention_age(void **state)
{
    const int64_t t0 = 1800000000000;
    struct kv kv;
    uint64_t r1;
    uint64_t r2;
    (void)state;
    setup_kv(&kv);
    now_ms = t0 - 10;
    assert_int_equal(policy(&kv, "tmp/", 0, 1000), 0);
    assert_int_equal(kv.n_aged_policies, 1);
    r1 = put_at(&kv, t0, "tmp/a", "v1");
    r2 = put_at(&kv, t0 + 500, "tmp/a", "v2");
    /* Exactly max_age_ms old is not older than it. */
    put_at(&kv, t0 + 1000, "tmp/a", "v3");
    assert_int_equal(versions_of(&kv, "tmp/a"), 3);
    put_at(&kv, t0 + 1001, "tmp/a", "v4");
    assert_int_equal(versions_of(&kv, "tmp/a"), 3);
    assert_int_equal(key_of(&kv, "tmp/a")->floor_rev, r1);
    assert_false(key_of(&kv, "tmp/a")->floor_deleted);
    expect_get_error(&kv, "tmp/a", r1, CAIRN_ECOMPACTED);
    expect_get(&kv, "tmp/a", r2, "v2");
    /* Age counts from each version's own time, on the entry's clock: a
     * write long after keeps only itself. */
    put_at(&kv, t0 + 100000, "tmp/a", "v5");
    assert_int_equal(versions_of(&kv, "tmp/a"), 1);
    expect_get(&kv, "tmp/a", 0, "v5");
    /* Outside the prefix, the default policy: no age limit. */
    put_at(&kv, t0, "keep", "k1");
    put_at(&kv, t0 + 100000000, "keep", "k2");
    assert_int_equal(versions_of(&kv, "keep"), 2);

    /* Both limits at once: whichever discards more. */
    assert_int_equal(policy(&kv, "both/", 2, 1000), 0);
    put_at(&kv, t0, "both/k", "1");
    put_at(&kv, t0 + 1, "both/k", "2");
    put_at(&kv, t0 + 2, "both/k", "3");
    assert_int_equal(versions_of(&kv, "both/k"), 2); /* the count */
    put_at(&kv, t0 + 1500, "both/k", "4");
    assert_int_equal(versions_of(&kv, "both/k"), 1); /* the age */

    /* A clock that stepped back (a new leader behind the old one): a version
     * from the future is young, and versions go oldest first, so the older
     * but expired one after it stays too. History is kept longer, never
     * shorter. */
    put_at(&kv, t0 + 5000, "tmp/back", "b1");
    put_at(&kv, t0, "tmp/back", "b2");
    put_at(&kv, t0 + 5500, "tmp/back", "b3");
    assert_int_equal(versions_of(&kv, "tmp/back"), 3);
    put_at(&kv, t0 + 6001, "tmp/back", "b4");
    assert_int_equal(versions_of(&kv, "tmp/back"), 2);
    kv_close(&kv);
}

static void test_retention_newest_always_stays(void **state)
{
    const int64_t t0 = 1800000000000;
    struct kv kv;
    uint64_t put_rev;
    uint64_t del_rev;
    (void)state;
    setup_kv(&kv);
    now_ms = t0 - 1;
    assert_int_equal(policy(&kv, "", 0, 1), 0); /* an age, no count */
    put_at(&kv, t0, "k", "only");
    put_rev = put_at(&kv, t0, "d", "x");
    now_ms = t0 + 1;
    del(&kv, "d", false);
    del_rev = kv.rev;
    sweep_at(&kv, INT64_MAX - 1);
    assert_int_equal(versions_of(&kv, "k"), 1);
    expect_get(&kv, "k", 0, "only");
    /* A deleted key keeps its tombstone: at its revision the key is known
     * to be absent, before it the answer is gone. */
    assert_int_equal(versions_of(&kv, "d"), 1);
    assert_true(key_of(&kv, "d")->versions[0].deleted);
    expect_get(&kv, "d", del_rev, NULL);
    expect_get_error(&kv, "d", put_rev, CAIRN_ECOMPACTED);
    /* Times from the far past and future do not overflow the age. */
    put_at(&kv, INT64_MIN, "k", "ancient");
    assert_int_equal(versions_of(&kv, "k"), 2);
    put_at(&kv, INT64_MAX - 1, "k", "future");
    assert_int_equal(versions_of(&kv, "k"), 1);
    expect_get(&kv, "k", 0, "future");
    now_ms = t0 + 1000000; /* back to a clock the next tests can advance */
    kv_close(&kv);
}

static void test_retention_sweep(void **state)
{
    const int64_t t0 = 1800000000000;
    struct kv kv;
    uint64_t hash;
    uint64_t second;
    (void)state;
    setup_kv(&kv);
    put_at(&kv, t0, "s/a", "1");
    second = put_at(&kv, t0 + 1, "s/a", "2");
    put_at(&kv, t0 + 2, "s/a", "3");
    put_at(&kv, t0, "keep", "1");
    put_at(&kv, t0 + 1, "keep", "2");
    /* Without an age limit a sweep has nothing to do. */
    hash = kv_hash(&kv);
    sweep_at(&kv, t0 + 1000000);
    assert_int_equal(kv_hash(&kv), hash);
    /* Setting the policy trims by age at the entry's time: nothing yet. */
    now_ms = t0 + 100;
    assert_int_equal(policy(&kv, "s/", 0, 1000), 0);
    assert_int_equal(versions_of(&kv, "s/a"), 3);
    /* Nobody writes s/a: sweeps age it out, one version at a time here. */
    sweep_at(&kv, t0 + 1000);
    assert_int_equal(versions_of(&kv, "s/a"), 3);
    sweep_at(&kv, t0 + 1001);
    assert_int_equal(versions_of(&kv, "s/a"), 2);
    sweep_at(&kv, t0 + 1002);
    assert_int_equal(versions_of(&kv, "s/a"), 1);
    assert_int_equal(key_of(&kv, "s/a")->floor_rev, second);
    sweep_at(&kv, t0 + 100000);
    assert_int_equal(versions_of(&kv, "s/a"), 1);
    expect_get(&kv, "s/a", 0, "3");
    /* Keys under other policies are untouched. */
    assert_int_equal(versions_of(&kv, "keep"), 2);
    kv_close(&kv);
}

static void test_retention_remove_and_default(void **state)
{
    struct kv kv;
    uint64_t hash;
    int i;
    (void)state;
    setup_kv(&kv);
    assert_int_equal(policy(&kv, "", 2, 0), 0);
    assert_int_equal(policy(&kv, "app/", 5, 0), 0);
    for (i = 0; i < 5; i++) {
        put(&kv, "app/x", "v");
        put(&kv, "other", "v");
    }
    assert_int_equal(versions_of(&kv, "app/x"), 5);
    assert_int_equal(versions_of(&kv, "other"), 2);
    /* Removing a policy that does not exist is refused and changes nothing. */
    hash = kv_hash(&kv);
    assert_int_equal(policy(&kv, "nope/", 0, 0), CAIRN_ENOTFOUND);
    assert_int_equal(policy(&kv, "app", 0, 0), CAIRN_ENOTFOUND);
    assert_int_equal(kv_hash(&kv), hash);
    /* Removing one hands its keys to the next shorter prefix, at once. */
    assert_int_equal(policy(&kv, "app/", 0, 0), 0);
    assert_int_equal(kv.n_policies, 1);
    assert_null(kv_retention_find(&kv, "app/", 4));
    assert_int_equal(versions_of(&kv, "app/x"), 2);
    assert_int_equal(policy(&kv, "app/", 0, 0), CAIRN_ENOTFOUND);
    /* "" cannot be removed: that restores the default. */
    assert_int_equal(policy(&kv, "", 3, 7000), 0);
    assert_int_equal(kv.n_aged_policies, 1);
    assert_int_equal(policy(&kv, "", 0, 0), 0);
    assert_int_equal(kv.n_policies, 1);
    assert_int_equal(kv.policies[0].max_versions, KV_RETAIN_VERSIONS_DEFAULT);
    assert_int_equal(kv.policies[0].max_age_ms, 0);
    assert_int_equal(kv.n_aged_policies, 0);
    /* Replacing a policy replaces both limits. */
    assert_int_equal(policy(&kv, "app/", 3, 5000), 0);
    assert_int_equal(policy(&kv, "app/", 4, 0), 0);
    assert_int_equal(kv_retention_find(&kv, "app/", 4)->max_versions, 4);
    assert_int_equal(kv_retention_find(&kv, "app/", 4)->max_age_ms, 0);
    assert_int_equal(kv.n_aged_policies, 0);
    /* A longer prefix's keys keep their own policy when a shorter one is
     * set over them. */
    assert_int_equal(policy(&kv, "app/db/", 4, 0), 0);
    for (i = 0; i < 4; i++) {
        put(&kv, "app/db/x", "v");
        put(&kv, "app/y", "v");
    }
    assert_int_equal(policy(&kv, "app/", 1, 0), 0);
    assert_int_equal(versions_of(&kv, "app/db/x"), 4);
    assert_int_equal(versions_of(&kv, "app/y"), 1);
    assert_int_equal(versions_of(&kv, "app/x"), 1);
    kv_close(&kv);
}

static void test_retention_limits(void **state)
{
    struct kv kv;
    uint64_t hash;
    char p[16];
    int i;
    (void)state;
    setup_kv(&kv);
    for (i = 1; i < KV_RETENTION_POLICIES_MAX; i++) {
        snprintf(p, sizeof(p), "p/%04d", i);
        assert_int_equal(policy(&kv, p, 1, 0), 0);
    }
    assert_int_equal(kv.n_policies, KV_RETENTION_POLICIES_MAX);
    hash = kv_hash(&kv);
    assert_int_equal(policy(&kv, "p/x", 1, 0), CAIRN_ETOOLARGE);
    assert_int_equal(kv_hash(&kv), hash);
    /* A full table still takes changes to its policies, and room made. */
    assert_int_equal(policy(&kv, "p/0001", 2, 0), 0);
    assert_int_equal(policy(&kv, "", 3, 0), 0);
    assert_int_equal(policy(&kv, "p/0002", 0, 0), 0);
    assert_int_equal(policy(&kv, "p/x", 1, 0), 0);
    /* A key's version count is a uint32_t. */
    hash = kv_hash(&kv);
    assert_int_equal(policy(&kv, "p/0001", (uint64_t)UINT32_MAX + 1, 0), CAIRN_EINVAL);
    assert_int_equal(kv_hash(&kv), hash);
    assert_int_equal(policy(&kv, "p/0001", UINT32_MAX, 0), 0);
    kv_close(&kv);
}

/* Policies in snapshots */

static void test_snapshot_policies(void **state)
{
    struct kv a;
    struct kv b;
    struct buf s;
    int64_t t;
    int i;
    (void)state;
    setup_kv(&a);
    setup_kv(&b);
    assert_int_equal(policy(&a, "", 7, 0), 0);
    assert_int_equal(policy(&a, "cfg/", 3, 3600000), 0);
    assert_int_equal(policy_bytes(&a, "\0\xff", 2, 1, 0), 0);
    assert_int_equal(policy(&a, "tmp/", 0, 1000), 0);
    for (i = 0; i < 5; i++) {
        put(&a, "cfg/a", "v");
        put(&a, "tmp/a", "v");
    }
    buf_init(&s);
    assert_int_equal(kv_snapshot_encode(&a, &s), 0);
    assert_int_equal(kv_snapshot_decode(&b, s.data, s.len), 0);
    buf_free(&s);
    assert_int_equal(b.n_policies, 4);
    assert_int_equal(b.n_aged_policies, 2);
    assert_int_equal(kv_hash(&a), kv_hash(&b));
    expect_same_answers(&a, &b); /* compares the tables too */
    /* Both trim alike from then on: the restored policies are in force. */
    t = now_ms;
    for (i = 0; i < 5; i++) {
        put(&a, "cfg/a", "w");
        put(&a, "tmp/a", "w");
    }
    sweep_at(&a, t + 100000);
    now_ms = t;
    for (i = 0; i < 5; i++) {
        put(&b, "cfg/a", "w");
        put(&b, "tmp/a", "w");
    }
    sweep_at(&b, t + 100000);
    assert_int_equal(versions_of(&b, "cfg/a"), 3);
    assert_int_equal(versions_of(&b, "tmp/a"), 1);
    assert_int_equal(kv_hash(&a), kv_hash(&b));
    kv_close(&a);
    kv_close(&b);
}

/* A format 2 snapshot with the given policy table and one key. */
struct snap_policy
{
    const char *prefix;
    size_t len;
    uint64_t versions;
    uint64_t age_ms;
    unsigned fields; /* 3, or a wrong count */
};

static void pack_snapshot_v2(struct buf *out, const struct snap_policy *policies, unsigned n,
                             unsigned n_claimed)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    unsigned i;
    unsigned f;
    snap_pack_begin(&sb, &pk, 2, 1, 0);
    msgpack_pack_array(&pk, n_claimed);
    for (i = 0; i < n; i++) {
        msgpack_pack_array(&pk, policies[i].fields);
        msgpack_pack_bin(&pk, policies[i].len);
        msgpack_pack_bin_body(&pk, policies[i].prefix, policies[i].len);
        msgpack_pack_uint64(&pk, policies[i].versions);
        msgpack_pack_uint64(&pk, policies[i].age_ms);
        for (f = 3; f < policies[i].fields; f++) {
            msgpack_pack_nil(&pk);
        }
    }
    msgpack_pack_uint64(&pk, 1); /* n_keys */
    msgpack_pack_array(&pk, 1);
    pack_snap_key(&pk, "k", 0, 1);
    pack_snap_version(&pk, 1, 1, 1);
    snap_pack_end(&sb, out);
}

static void test_snapshot_decode_rejects_bad_policies(void **state)
{
    static const struct snap_policy good[] = {
        {"", 0, 10, 0, 3}, {"a", 1, 1, 0, 3}, {"b", 1, 0, 500, 3}};
    static const struct snap_policy not_default_first[] = {{"a", 1, 1, 0, 3}};
    static const struct snap_policy default_twice[] = {{"", 0, 1, 0, 3}, {"", 0, 2, 0, 3}};
    static const struct snap_policy unordered[] = {
        {"", 0, 10, 0, 3}, {"b", 1, 1, 0, 3}, {"a", 1, 1, 0, 3}};
    static const struct snap_policy duplicate[] = {
        {"", 0, 10, 0, 3}, {"a", 1, 1, 0, 3}, {"a", 1, 2, 0, 3}};
    static const struct snap_policy too_many_versions[] = {
        {"", 0, 10, 0, 3}, {"a", 1, (uint64_t)UINT32_MAX + 1, 0, 3}};
    static const struct snap_policy limits_nothing[] = {{"", 0, 10, 0, 3}, {"a", 1, 0, 0, 3}};
    static const struct snap_policy default_limits_nothing[] = {{"", 0, 0, 0, 3}};
    static const struct snap_policy short_entry[] = {{"", 0, 10, 0, 2}};
    static const struct snap_policy long_entry[] = {{"", 0, 10, 0, 4}};
    struct snap_policy *many;
    struct kv target;
    struct buf s;
    uint64_t hash;
    unsigned i;
    (void)state;
    setup_kv(&target);
    put(&target, "x", "y");
    assert_int_equal(policy(&target, "x", 3, 0), 0);
    hash = kv_hash(&target);

#define EXPECT_POLICIES(rv, table, n, claimed)           \
    do {                                                 \
        pack_snapshot_v2(&s, table, n, claimed);         \
        expect_snapshot_decode(&target, &s, (rv), hash); \
    } while (0)

    EXPECT_POLICIES(CAIRN_EMALFORMED, good, 0, 0); /* no policy at all */
    EXPECT_POLICIES(CAIRN_EMALFORMED, good, 2, 3); /* fewer than announced */
    EXPECT_POLICIES(CAIRN_EMALFORMED, not_default_first, 1, 1);
    EXPECT_POLICIES(CAIRN_EMALFORMED, default_twice, 2, 2);
    EXPECT_POLICIES(CAIRN_EMALFORMED, unordered, 3, 3);
    EXPECT_POLICIES(CAIRN_EMALFORMED, duplicate, 3, 3);
    EXPECT_POLICIES(CAIRN_EMALFORMED, too_many_versions, 2, 2);
    EXPECT_POLICIES(CAIRN_EMALFORMED, limits_nothing, 2, 2);
    EXPECT_POLICIES(CAIRN_EMALFORMED, default_limits_nothing, 1, 1);
    EXPECT_POLICIES(CAIRN_EMALFORMED, short_entry, 1, 1);
    EXPECT_POLICIES(CAIRN_EMALFORMED, long_entry, 1, 1);
    /* One policy beyond the limit, otherwise well formed. */
    many = calloc(KV_RETENTION_POLICIES_MAX + 1, sizeof(*many));
    assert_non_null(many);
    many[0] = good[0];
    for (i = 1; i <= KV_RETENTION_POLICIES_MAX; i++) {
        char *p = malloc(8);
        assert_non_null(p);
        snprintf(p, 8, "p%05u", i);
        many[i].prefix = p;
        many[i].len = strlen(p);
        many[i].versions = 1;
        many[i].fields = 3;
    }
    EXPECT_POLICIES(CAIRN_EMALFORMED, many, KV_RETENTION_POLICIES_MAX + 1,
                    KV_RETENTION_POLICIES_MAX + 1);
    EXPECT_POLICIES(0, many, KV_RETENTION_POLICIES_MAX, KV_RETENTION_POLICIES_MAX);
    assert_int_equal(target.n_policies, KV_RETENTION_POLICIES_MAX);
    for (i = 1; i <= KV_RETENTION_POLICIES_MAX; i++) {
        free((char *)many[i].prefix);
    }
    free(many);
    /* The good one decodes into exactly its table. */
    EXPECT_POLICIES(0, good, 3, 3);
#undef EXPECT_POLICIES
    assert_int_equal(target.n_policies, 3);
    assert_int_equal(target.n_aged_policies, 1);
    assert_int_equal(kv_retention_find(&target, "b", 1)->max_age_ms, 500);
    assert_null(kv_retention_find(&target, "x", 1));
    expect_get(&target, "k", 0, "v");
    kv_close(&target);
}

/* Two key spaces in different states must hash differently; both are
 * closed after. */
static void assert_hashes_differ(struct kv *a, struct kv *b)
{
    assert_int_not_equal(kv_hash(a), kv_hash(b));
    kv_close(a);
    kv_close(b);
}

static void test_hash_tracks_policies(void **state)
{
    struct kv a;
    struct kv b;
    (void)state;
    /* The prefix, the count or the age alone: a replica that missed any
     * of them would trim differently from then on. */
    setup_kv(&a);
    setup_kv(&b);
    assert_int_equal(policy(&a, "a/", 3, 0), 0);
    assert_int_equal(policy(&b, "b/", 3, 0), 0);
    assert_int_not_equal(kv_hash(&a), kv_hash(&b));
    assert_int_equal(policy(&b, "b/", 0, 0), 0);
    assert_int_equal(policy(&b, "a/", 4, 0), 0);
    assert_int_not_equal(kv_hash(&a), kv_hash(&b));
    assert_int_equal(policy(&b, "a/", 3, 1), 0);
    assert_int_not_equal(kv_hash(&a), kv_hash(&b));
    /* The same table, however it was reached, hashes the same. */
    assert_int_equal(policy(&b, "a/", 3, 0), 0);
    assert_int_equal(kv_hash(&a), kv_hash(&b));
    assert_int_equal(policy(&a, "z", 1, 0), 0);
    assert_int_equal(policy(&a, "m", 1, 0), 0);
    assert_int_equal(policy(&b, "m", 1, 0), 0);
    assert_int_equal(policy(&b, "z", 1, 0), 0);
    assert_int_equal(kv_hash(&a), kv_hash(&b));
    /* The default's age too. */
    assert_int_equal(policy(&a, "", KV_RETAIN_VERSIONS_DEFAULT, 60000), 0);
    assert_hashes_differ(&a, &b);
}

/* Hash */

static void test_hash_tracks_state(void **state)
{
    struct kv a;
    struct kv b;
    int64_t t;
    (void)state;
    setup_kv(&a);
    setup_kv(&b);
    assert_int_equal(kv_hash(&a), kv_hash(&b));

    /* Same writes at the same times: same hash. */
    t = now_ms;
    put(&a, "k", "v");
    now_ms = t;
    put(&b, "k", "v");
    assert_int_equal(kv_hash(&a), kv_hash(&b));

    /* A different value. */
    t = now_ms;
    put(&a, "k", "v1");
    now_ms = t;
    put(&b, "k", "v2");
    assert_hashes_differ(&a, &b);

    /* A different key with the same value. */
    setup_kv(&a);
    setup_kv(&b);
    t = now_ms;
    put(&a, "k1", "v");
    now_ms = t;
    put(&b, "k2", "v");
    assert_hashes_differ(&a, &b);

    /* The same live data reached through different histories. */
    setup_kv(&a);
    setup_kv(&b);
    put(&a, "k", "v");
    put(&b, "k", "x");
    put(&b, "k", "v");
    assert_hashes_differ(&a, &b);

    /* A value and a tombstone; an empty value and no value. */
    setup_kv(&a);
    setup_kv(&b);
    t = now_ms;
    put(&a, "k", "");
    put(&a, "k", "");
    now_ms = t;
    put(&b, "k", "");
    del(&b, "k", false);
    assert_hashes_differ(&a, &b);

    /* Only the compact revision differs. */
    setup_kv(&a);
    setup_kv(&b);
    t = now_ms;
    put(&a, "k", "v");
    put(&a, "j", "v");
    now_ms = t;
    put(&b, "k", "v");
    put(&b, "j", "v");
    assert_int_equal(kv_hash(&a), kv_hash(&b));
    assert_int_equal(compact(&a, 1), 0);
    assert_hashes_differ(&a, &b);

    /* Only the retention setting differs: a replica that missed it would
     * trim differently from then on, so the hash must show it. */
    setup_kv(&a);
    setup_kv(&b);
    assert_int_equal(retain(&a, 5), 0);
    assert_hashes_differ(&a, &b);

    /* Only the write time differs: reads return time_ms, so it is state. */
    setup_kv(&a);
    setup_kv(&b);
    put(&a, "k", "v");
    now_ms += 10;
    put(&b, "k", "v");
    assert_hashes_differ(&a, &b);

    /* Only what retention discarded differs: a put or a delete. The answers
     * at revision 2 differ (ECOMPACTED or absent), so must the hashes. */
    setup_kv(&a);
    setup_kv(&b);
    assert_int_equal(retain(&a, 1), 0);
    assert_int_equal(retain(&b, 1), 0);
    t = now_ms;
    put(&a, "k", "v");
    put(&a, "pad", "v");
    put(&a, "k", "w");
    now_ms = t;
    put(&b, "k", "v");
    del(&b, "k", false);
    put(&b, "k", "w");
    assert_int_equal(a.rev, b.rev);
    assert_hashes_differ(&a, &b);

    /* Only whether the floor was a deletion differs. Requests do not reach
     * such a pair (the next version's create_rev and version tell), so flip
     * it in a snapshot: a read at the floor's revision then answers absent
     * rather than ECOMPACTED. */
    setup_kv(&a);
    setup_kv(&b);
    assert_int_equal(retain(&a, 1), 0);
    put(&a, "k", "v");
    put(&a, "k", "w");
    {
        static const char floor_of_k[] = {'\xc4', 1, 'k', 1, '\xc2'}; /* "k", 1, false */
        struct buf s;
        size_t at;
        buf_init(&s);
        assert_int_equal(kv_snapshot_encode(&a, &s), 0);
        for (at = 0; at + sizeof(floor_of_k) <= s.len; at++) {
            if (memcmp(s.data + at, floor_of_k, sizeof(floor_of_k)) == 0) {
                break;
            }
        }
        assert_true(at + sizeof(floor_of_k) <= s.len);
        s.data[at + sizeof(floor_of_k) - 1] = '\xc3'; /* true */
        assert_int_equal(kv_snapshot_decode(&b, s.data, s.len), 0);
        buf_free(&s);
    }
    expect_get_error(&a, "k", 1, CAIRN_ECOMPACTED);
    expect_get(&b, "k", 1, NULL);
    assert_int_equal(kv_hash(&b), kv_hash_full(&b));
    assert_hashes_differ(&a, &b);
}

/* Cluster id */

/* A PROTO_INIT entry carrying number, applied like the others. */
static int init_cluster(struct kv *kv, uint64_t number)
{
    return apply_number(kv, PROTO_INIT, number);
}

static void test_init_sets_cluster_id_once(void **state)
{
    struct kv a;
    struct kv b;
    struct buf s;
    uint64_t hash;
    (void)state;
    setup_kv(&a);
    setup_kv(&b);
    put(&a, "k", "v");
    assert_int_equal(a.cluster_id, 0);
    hash = kv_hash(&a);
    /* 0 is "no id": it changes nothing, and still succeeds. */
    assert_int_equal(init_cluster(&a, 0), 0);
    assert_int_equal(a.cluster_id, 0);
    assert_int_equal(kv_hash(&a), hash);
    /* The first nonzero id is set, without a revision (apply_number checks
     * the answer is an empty success at the unchanged revision). */
    assert_int_equal(init_cluster(&a, 0xc1057e4dull), 0);
    assert_int_equal(a.cluster_id, 0xc1057e4dull);
    assert_int_equal(a.rev, 1);
    assert_int_not_equal(kv_hash(&a), hash);
    assert_int_equal(kv_hash(&a), kv_hash_full(&a));
    /* Later ones change nothing. */
    hash = kv_hash(&a);
    assert_int_equal(init_cluster(&a, 7), 0);
    assert_int_equal(init_cluster(&a, 0), 0);
    assert_int_equal(a.cluster_id, 0xc1057e4dull);
    assert_int_equal(kv_hash(&a), hash);
    /* Applied without a writer (a follower) it does the same. */
    {
        struct proto_request req = request(PROTO_INIT);
        req.number = 9;
        assert_int_equal(kv_apply(&b, &req, now_ms++, NULL), 0);
        assert_int_equal(b.cluster_id, 9);
        req.number = 10;
        assert_int_equal(kv_apply(&b, &req, now_ms++, NULL), 0);
        assert_int_equal(b.cluster_id, 9);
    }
    /* The id is state: it is in the hash and in the snapshot. */
    kv_close(&b);
    setup_kv(&b);
    put(&b, "k", "v");
    buf_init(&s);
    assert_int_equal(kv_snapshot_encode(&a, &s), 0);
    assert_int_equal(kv_snapshot_decode(&b, s.data, s.len), 0);
    assert_int_equal(b.cluster_id, 0xc1057e4dull);
    assert_int_equal(kv_hash(&b), kv_hash(&a));
    assert_int_equal(kv_hash_full(&b), kv_hash(&a));
    buf_free(&s);
    /* Only the id differs: the hashes do too. */
    kv_close(&b);
    setup_kv(&b);
    assert_int_equal(init_cluster(&b, 1), 0);
    {
        struct kv c;
        setup_kv(&c);
        assert_int_equal(init_cluster(&c, 2), 0);
        assert_hashes_differ(&b, &c);
    }
    kv_close(&a);
}

/* A format 2 snapshot exactly as the encoder before cluster ids wrote it
 * (HEAD d172681), of this history at these proposer times:
 *   retention "" 2 versions; retention "b/" age 500 ms     (t 1000)
 *   put a=1, a=2, a=3                                      (t 1001..1003)
 *   put b/x=x, del b/x, put b/x=y                          (t 1004..1006)
 *   sweep                                                  (t 2000)
 *   put c=""                                               (t 2001)
 *   compact 2                                              (t 2002)
 * so it holds two policies, a floor after a put (a) and one after a
 * deletion (b/x), and an empty value. */
static const unsigned char snapshot_format_2[] = {
    0x96, 0x02, 0x07, 0x02, 0x92, 0x93, 0xc4, 0x00, 0x02, 0x00, 0x93, 0xc4, 0x02, 0x62, 0x2f,
    0x00, 0xcd, 0x01, 0xf4, 0x03, 0x93, 0x94, 0xc4, 0x01, 0x61, 0x01, 0xc2, 0x92, 0x96, 0x02,
    0x01, 0x02, 0xcd, 0x03, 0xea, 0xc2, 0xc4, 0x01, 0x32, 0x96, 0x03, 0x01, 0x03, 0xcd, 0x03,
    0xeb, 0xc2, 0xc4, 0x01, 0x33, 0x94, 0xc4, 0x03, 0x62, 0x2f, 0x78, 0x05, 0xc3, 0x91, 0x96,
    0x06, 0x06, 0x01, 0xcd, 0x03, 0xee, 0xc2, 0xc4, 0x01, 0x79, 0x94, 0xc4, 0x01, 0x63, 0x00,
    0xc2, 0x91, 0x96, 0x07, 0x07, 0x01, 0xcd, 0x07, 0xd1, 0xc2, 0xc4, 0x00};

static void test_snapshot_decode_format_2(void **state)
{
    struct kv old;
    struct kv now;
    struct buf s;
    (void)state;
    setup_kv(&old);
    assert_int_equal(init_cluster(&old, 5), 0); /* replaced by the snapshot's 0 */
    assert_int_equal(
        kv_snapshot_decode(&old, (const char *)snapshot_format_2, sizeof(snapshot_format_2)), 0);
    assert_int_equal(old.cluster_id, 0);
    assert_int_equal(kv_hash(&old), kv_hash_full(&old));
    /* The same history replayed today gives the same state. */
    setup_kv(&now);
    now_ms = 1000;
    assert_int_equal(policy(&now, "", 2, 0), 0);
    now_ms = 1000;
    assert_int_equal(policy(&now, "b/", 0, 500), 0);
    now_ms = 1001;
    put(&now, "a", "1");
    put(&now, "a", "2");
    put(&now, "a", "3");
    put(&now, "b/x", "x");
    del(&now, "b/x", false);
    put(&now, "b/x", "y");
    sweep_at(&now, 2000);
    put(&now, "c", "");
    assert_int_equal(compact(&now, 2), 0);
    assert_int_equal(kv_hash(&now), kv_hash(&old));
    expect_get_error(&old, "a", 1, CAIRN_ECOMPACTED);
    expect_get(&old, "a", 2, "2");
    expect_get(&old, "b/x", 5, NULL);
    expect_get(&old, "b/x", 6, "y");
    /* Written again, it is format 3 and decodes to the same state. */
    buf_init(&s);
    assert_int_equal(kv_snapshot_encode(&old, &s), 0);
    assert_int_equal((unsigned char)s.data[0], 0x97); /* seven elements */
    assert_int_equal(s.data[1], 3);
    kv_close(&now);
    setup_kv(&now);
    assert_int_equal(kv_snapshot_decode(&now, s.data, s.len), 0);
    assert_int_equal(kv_hash(&now), kv_hash(&old));
    buf_free(&s);
    kv_close(&now);
    kv_close(&old);
}

/* Incremental hash
 *
 * kv_hash() reads a sum kept up to date by every change; kv_hash_full()
 * recomputes it. A random history touching every kind of change checks the
 * two agree after each step, on two key spaces given the same entries. */

#define RANDOM_HASH_OPS 4000

static const char *const random_keys[] = {"a",   "a/1", "a/2",   "a/22",  "b/1",
                                          "b/2", "c",   "c/x/1", "c/x/2", "d"};
static const char *const random_prefixes[] = {"", "a", "a/", "b/", "c/x/", "zz"};

static const char *pick(const char *const *list, size_t n, uint64_t *rng)
{
    return list[rng_next(rng) % n];
}

#define PICK(list, rng) pick((list), sizeof(list) / sizeof((list)[0]), (rng))

/* A value of 0 to 40 bytes, now and then 1 KiB, from a small alphabet so
 * that equal values happen. */
static const char *random_value(uint64_t *rng, char *out, size_t cap)
{
    size_t len = rng_next(rng) % 41;
    size_t i;
    if (rng_next(rng) % 20 == 0) {
        len = 1024;
    }
    assert_true(len < cap);
    for (i = 0; i < len; i++) {
        out[i] = "xyz0"[rng_next(rng) % 4];
    }
    out[len] = '\0';
    return out;
}

static void random_op_of(struct proto_op *op, uint64_t *rng, char *value, size_t cap)
{
    switch (rng_next(rng) % 3) {
        case 0:
            /* Two statements: the order of draws must not be the compiler's. */
            *op = op_of(CAIRN_OP_PUT, PICK(random_keys, rng), NULL);
            op->value = str(random_value(rng, value, cap));
            break;
        case 1:
            *op = op_of(CAIRN_OP_DEL, PICK(random_keys, rng), NULL);
            op->prefix = rng_next(rng) % 4 == 0;
            break;
        default:
            *op = op_of(CAIRN_OP_GET, PICK(random_keys, rng), NULL);
            break;
    }
}

/* Decodes snapshot s into a scratch key space and checks its hash. */
static void expect_snapshot_hash(const struct buf *s, uint64_t hash)
{
    struct kv scratch;
    setup_kv(&scratch);
    assert_int_equal(kv_snapshot_decode(&scratch, s->data, s->len), 0);
    assert_int_equal(kv_hash(&scratch), hash);
    assert_int_equal(kv_hash_full(&scratch), hash);
    kv_close(&scratch);
}

/* One random entry (or snapshot step) on kv, chosen by *rng; writes happen
 * at now_ms and after. nested: called while a capture is alive. */
static void random_hash_op(struct kv *kv, uint64_t *rng, bool nested)
{
    static char values[4][1100];
    uint64_t before = kv_hash(kv);
    uint64_t dice = rng_next(rng) % 100;
    struct proto_request req;
    struct proto_response r;
    struct proto_op then_ops[3];
    struct proto_op else_ops[2];
    struct proto_cmp cmp;
    struct buf s;
    uint32_t i;
    int rv;
    if (dice < 35) {
        const char *key = PICK(random_keys, rng);
        put(kv, key, random_value(rng, values[0], sizeof(values[0])));
    } else if (dice < 45) {
        del(kv, PICK(random_keys, rng), false);
    } else if (dice < 50) {
        del(kv, PICK(random_prefixes, rng), true);
    } else if (dice < 60) {
        req = request(PROTO_TXN);
        memset(&cmp, 0, sizeof(cmp));
        cmp.key = str(PICK(random_keys, rng));
        cmp.target = rng_next(rng) % 2 == 0 ? CAIRN_CMP_VERSION : CAIRN_CMP_VALUE;
        cmp.op = CAIRN_CMP_LESS;
        cmp.number = rng_next(rng) % 4;
        cmp.value = str("y");
        req.cmps = &cmp;
        req.n_cmps = 1;
        req.n_then = 1 + (uint32_t)(rng_next(rng) % 3);
        req.n_else = (uint32_t)(rng_next(rng) % 3);
        for (i = 0; i < req.n_then; i++) {
            random_op_of(&then_ops[i], rng, values[i], sizeof(values[i]));
        }
        for (i = 0; i < req.n_else; i++) {
            random_op_of(&else_ops[i], rng, values[3], sizeof(values[3]));
        }
        req.then_ops = then_ops;
        req.else_ops = else_ops;
        assert_int_equal(exec(kv, &req, true, &r), 0);
        proto_response_free(&r);
    } else if (dice < 68) {
        /* Versions 0..3 and an age of 0 or up to 3 s: both 0 removes. */
        uint64_t versions = rng_next(rng) % 4;
        uint64_t age_ms = rng_next(rng) % 2 == 0 ? 0 : rng_next(rng) % 3000;
        rv = policy(kv, PICK(random_prefixes, rng), versions, age_ms);
        assert_true(rv == 0 || rv == CAIRN_ENOTFOUND);
        if (rv != 0) {
            assert_int_equal(kv_hash(kv), before);
        }
    } else if (dice < 76) {
        sweep_at(kv, now_ms);
    } else if (dice < 82) {
        if (kv->rev > kv->compact_rev) {
            assert_int_equal(
                compact(kv, kv->compact_rev + 1 + rng_next(rng) % (kv->rev - kv->compact_rev)), 0);
        } else {
            assert_int_equal(compact(kv, kv->rev + 1), CAIRN_EFUTUREREV);
            assert_int_equal(kv_hash(kv), before);
        }
    } else if (dice < 87) {
        /* A round trip, and the key space replaced by its own snapshot. */
        buf_init(&s);
        assert_int_equal(kv_snapshot_encode(kv, &s), 0);
        expect_snapshot_hash(&s, before);
        assert_int_equal(kv_snapshot_decode(kv, s.data, s.len), 0);
        assert_int_equal(kv_hash(kv), before);
        buf_free(&s);
    } else if (dice < 93 && !nested) {
        /* A capture encoded after the next entry still has the old hash. */
        struct kv_capture *cap;
        assert_int_equal(kv_capture(kv, &cap), 0);
        random_hash_op(kv, rng, true);
        assert_int_equal(kv_hash(kv), kv_hash_full(kv));
        buf_init(&s);
        assert_int_equal(kv_capture_encode(cap, &s), 0);
        kv_capture_release(kv, cap);
        expect_snapshot_hash(&s, before);
        buf_free(&s);
    } else {
        uint64_t id = kv->cluster_id;
        uint64_t number = rng_next(rng) % 3 == 0 ? 0 : 1 + rng_next(rng) % 1000;
        assert_int_equal(init_cluster(kv, number), 0);
        assert_int_equal(kv->cluster_id, id != 0 ? id : number);
    }
}

/* A capture taken in slices (kv_capture_begin/step) must equal, byte for
 * byte, the snapshot encoded when it began, whatever entries run between its
 * steps: writes that trim history, deletes, compaction that unlinks keys the
 * walk has or has not reached, keys created behind and ahead of it,
 * retention changes, sweeps, and captures taken at once meanwhile. A
 * snapshot installed over the state ends it with CAIRN_ESHUTDOWN. */
#define SLICED_CAPTURE_ROUNDS 400

static void test_capture_in_slices(void **state)
{
    struct kv a;
    struct kv_capture *cap;
    struct kv_capture *other;
    struct buf ref;
    struct buf got;
    uint64_t rng = 0x51ced5ull;
    int completed = 0;
    int ended = 0;
    int round;
    int i;
    int rv;
    (void)state;
    setup_kv(&a);
    now_ms = 1700000000000;
    for (round = 0; round < SLICED_CAPTURE_ROUNDS; round++) {
        uint64_t hash;
        int steps = 0;
        for (i = 0; i < 20; i++) {
            random_hash_op(&a, &rng, false);
            now_ms += (int64_t)(rng_next(&rng) % 500);
        }
        hash = kv_hash(&a);
        buf_init(&ref);
        assert_int_equal(kv_snapshot_encode(&a, &ref), 0);
        assert_int_equal(kv_capture_begin(&a, &cap), 0);
        assert_int_equal(kv_capture_begin(&a, &other), CAIRN_EBUSY);
        buf_init(&got);
        assert_int_equal(kv_capture_encode(cap, &got), CAIRN_EINVAL); /* not complete */
        for (;;) {
            bool replaced = a.slicing == NULL;
            rv = kv_capture_step(&a, cap, 1 + rng_next(&rng) % 3);
            if (replaced) {
                assert_int_equal(rv, CAIRN_ESHUTDOWN);
                ended++;
                break;
            }
            if (rv == 1) {
                completed++;
                break;
            }
            assert_int_equal(rv, 0);
            steps++;
            if (rng_next(&rng) % 8 == 0) {
                /* A capture at once (raft's snapshot) meanwhile. */
                struct buf now_ref;
                struct buf now_got;
                buf_init(&now_ref);
                buf_init(&now_got);
                assert_int_equal(kv_snapshot_encode(&a, &now_ref), 0);
                assert_int_equal(kv_capture(&a, &other), 0);
                assert_int_equal(kv_capture_encode(other, &now_got), 0);
                kv_capture_release(&a, other);
                assert_int_equal(now_got.len, now_ref.len);
                assert_memory_equal(now_got.data, now_ref.data, now_ref.len);
                buf_free(&now_ref);
                buf_free(&now_got);
            }
            random_hash_op(&a, &rng, true);
            now_ms += (int64_t)(rng_next(&rng) % 500);
        }
        if (rv == 1) {
            assert_int_equal(kv_capture_encode(cap, &got), 0);
            if (got.len != ref.len || memcmp(got.data, ref.data, ref.len) != 0) {
                print_error("round %d after %d steps\n", round, steps);
            }
            assert_int_equal(got.len, ref.len);
            assert_memory_equal(got.data, ref.data, ref.len);
            expect_snapshot_hash(&got, hash);
            assert_int_equal(kv_capture_step(&a, cap, 1), 1); /* stays complete */
        }
        /* Now and then released before the end, which must also do. */
        kv_capture_release(&a, cap);
        assert_null(a.slicing);
        assert_int_equal(a.captures, 0);
        buf_free(&ref);
        buf_free(&got);
    }
    /* Both ends happened, and the state went through what matters. */
    assert_true(completed > SLICED_CAPTURE_ROUNDS / 2);
    assert_true(ended > 0);
    assert_true(a.compact_rev > 0);

    /* Released half-way, and closed half-way. */
    assert_int_equal(kv_capture_begin(&a, &cap), 0);
    assert_int_equal(kv_capture_step(&a, cap, 1), 0);
    kv_capture_release(&a, cap);
    assert_null(a.slicing);
    assert_int_equal(kv_capture_begin(&a, &cap), 0);
    assert_int_equal(kv_capture_step(&a, cap, 1), 0);
    kv_close(&a);
    assert_int_equal(kv_capture_step(&a, cap, 1), CAIRN_ESHUTDOWN);
    kv_capture_release(&a, cap);
    assert_int_equal(a.captures, 0);
}

static void test_hash_incremental_matches_full(void **state)
{
    struct kv a;
    struct kv b;
    struct kv c;
    struct buf s;
    uint64_t seed = 0x4a5ee0ddull;
    uint64_t rng = seed;
    int64_t t;
    int i;
    (void)state;
    setup_kv(&a);
    setup_kv(&b);
    assert_int_equal(kv_hash(&a), kv_hash_full(&a));
    now_ms = 1700000000000;
    for (i = 0; i < RANDOM_HASH_OPS; i++) {
        uint64_t ra = rng;
        uint64_t rb = rng;
        t = now_ms;
        random_hash_op(&a, &ra, false);
        now_ms = t;
        random_hash_op(&b, &rb, false);
        assert_int_equal(ra, rb);
        rng = ra;
        if (kv_hash(&a) != kv_hash_full(&a) || kv_hash(&a) != kv_hash(&b)) {
            print_error("seed %#llx operation %d\n", (unsigned long long)seed, i);
        }
        assert_int_equal(kv_hash(&a), kv_hash_full(&a));
        assert_int_equal(kv_hash(&b), kv_hash_full(&b));
        assert_int_equal(kv_hash(&a), kv_hash(&b));
        /* Time goes on by up to half a second between entries. */
        now_ms += (int64_t)(rng_next(&rng) % 500);
    }
    /* The history reached what it should: history trimmed, keys compacted
     * away, policies with age limits, and a cluster id. */
    assert_true(a.nodes > 0);
    assert_true(a.compact_rev > 0);
    assert_true(a.n_policies > 1);
    assert_true(a.cluster_id != 0);
    expect_same_answers(&a, &b);

    /* A copy of a (by snapshot) diverges on a different value or time. */
    setup_kv(&c);
    buf_init(&s);
    assert_int_equal(kv_snapshot_encode(&a, &s), 0);
    assert_int_equal(kv_snapshot_decode(&c, s.data, s.len), 0);
    buf_free(&s);
    assert_int_equal(kv_hash(&c), kv_hash(&a));
    t = now_ms;
    put(&a, "a", "same");
    now_ms = t;
    put(&b, "a", "other");
    now_ms = t + 1;
    put(&c, "a", "same");
    assert_int_not_equal(kv_hash(&a), kv_hash(&b));
    assert_int_not_equal(kv_hash(&a), kv_hash(&c));
    assert_int_not_equal(kv_hash(&b), kv_hash(&c));
    assert_int_equal(kv_hash(&c), kv_hash_full(&c));
    kv_close(&a);
    kv_close(&b);
    kv_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_metadata),
        cmocka_unit_test(test_revision_counting),
        cmocka_unit_test(test_get_at_past_revisions),
        cmocka_unit_test(test_range_prefix_pagination),
        cmocka_unit_test(test_range_byte_limit),
        cmocka_unit_test(test_delete_key_and_prefix),
        cmocka_unit_test(test_txn_compares),
        cmocka_unit_test(test_txn_reads_see_earlier_writes),
        cmocka_unit_test(test_apply_and_read_refuse_mismatched_requests),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_compaction_on_empty_store),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_snapshot_same_key_twice_in_txn),
        cmocka_unit_test(test_snapshot_capture_survives_changes),
        cmocka_unit_test(test_capture_encode_streamed),
        cmocka_unit_test(test_capture_in_slices),
        cmocka_unit_test(test_snapshot_decode_corrupt),
        cmocka_unit_test(test_snapshot_decode_invalid_states),
        cmocka_unit_test(test_snapshot_decode_out_of_memory),
        cmocka_unit_test(test_hash_tracks_state),
        cmocka_unit_test(test_retention_longest_prefix),
        cmocka_unit_test(test_retention_version_cap),
        cmocka_unit_test(test_retention_age),
        cmocka_unit_test(test_retention_newest_always_stays),
        cmocka_unit_test(test_retention_sweep),
        cmocka_unit_test(test_retention_remove_and_default),
        cmocka_unit_test(test_retention_limits),
        cmocka_unit_test(test_snapshot_policies),
        cmocka_unit_test(test_snapshot_decode_rejects_bad_policies),
        cmocka_unit_test(test_hash_tracks_policies),
        cmocka_unit_test(test_init_sets_cluster_id_once),
        cmocka_unit_test(test_snapshot_decode_format_2),
        cmocka_unit_test(test_hash_incremental_matches_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
