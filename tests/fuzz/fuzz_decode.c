/*
 * libFuzzer target for every decoder that reads bytes from outside the
 * process, and for the key space fed with whatever decodes.
 *
 * One input is used four ways at once:
 *
 *  1. as raw bytes: proto_frame_peek, proto_decode_request,
 *     proto_decode_response and kv_snapshot_decode (into a scratch key
 *     space that already holds state) each get the whole input;
 *  2. as a stream of frames: up to FUZZ_FRAMES_MAX requests, each applied in
 *     turn to one small key space, so sequences of operations are fuzzed and
 *     not just single ones (the input itself, when it is a bare request
 *     payload, is applied first).
 *
 * Besides "no crash, no sanitizer report", it checks invariants a decoder
 * or the state machine must keep, and aborts when one breaks:
 *
 *  - a request that decodes re-encodes to bytes that decode to the same
 *    request;
 *  - a request kv refuses packs nothing and changes nothing (kv_hash);
 *  - a request kv answers packs a response that proto_decode_response
 *    accepts, with the request's id and type; reads change nothing;
 *  - a snapshot decode that fails leaves the target as it was; one that
 *    succeeds, and the snapshot of any state the requests reached, survive
 *    an encode / decode round trip with an equal kv_hash;
 *  - after every applied request and decoded snapshot, kv_hash (kept
 *    incrementally) equals kv_hash_full (recomputed from scratch).
 *
 * Work is bounded: the state grows by at most one version per op in the
 * input, and every op's cost is linear in the state.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kv.h"
#include "proto.h"

/* Requests applied from one input. */
#define FUZZ_FRAMES_MAX 64
/* Largest frame the stream walk accepts (a server's limit, scaled down). */
#define FUZZ_FRAME_BYTES_MAX (64u * 1024u)

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_decode: invariant broken: %s\n", what);
        abort();
    }
}

static bool slice_eq(struct proto_slice a, struct proto_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool op_eq(const struct proto_op *a, const struct proto_op *b)
{
    return a->type == b->type && slice_eq(a->key, b->key) && slice_eq(a->value, b->value) &&
           a->prefix == b->prefix && a->prev_kv == b->prev_kv && a->limit == b->limit &&
           slice_eq(a->after, b->after) && a->revision == b->revision && a->stale == b->stale;
}

static bool request_eq(const struct proto_request *a, const struct proto_request *b)
{
    uint32_t i;
    if (a->id != b->id || a->type != b->type || !op_eq(&a->op, &b->op) || a->n_cmps != b->n_cmps ||
        a->n_then != b->n_then || a->n_else != b->n_else || a->number != b->number ||
        a->age_ms != b->age_ms) {
        return false;
    }
    for (i = 0; i < a->n_cmps; i++) {
        const struct proto_cmp *x = &a->cmps[i];
        const struct proto_cmp *y = &b->cmps[i];
        if (!slice_eq(x->key, y->key) || x->target != y->target || x->op != y->op ||
            !slice_eq(x->value, y->value) || x->number != y->number) {
            return false;
        }
    }
    for (i = 0; i < a->n_then; i++) {
        if (!op_eq(&a->then_ops[i], &b->then_ops[i])) {
            return false;
        }
    }
    for (i = 0; i < a->n_else; i++) {
        if (!op_eq(&a->else_ops[i], &b->else_ops[i])) {
            return false;
        }
    }
    return true;
}

/* Re-encode a decoded request and decode it again: the codec must agree
 * with itself. */
static void check_request_round_trip(const struct proto_request *req)
{
    struct buf b;
    struct arena a;
    struct proto_request again;
    size_t n = 0;
    buf_init(&b);
    check(proto_encode_request(&b, req) == 0, "a decoded request encodes");
    check(proto_frame_peek(b.data, b.len, PROTO_FRAME_SIZE_MAX, &n) == 1,
          "an encoded request is one whole frame");
    check(n + PROTO_FRAME_HEADER_SIZE == b.len, "frame length matches");
    arena_init(&a);
    check(proto_decode_request(b.data + PROTO_FRAME_HEADER_SIZE, n, &a, &again) == 0,
          "a re-encoded request decodes");
    check(request_eq(req, &again), "a re-encoded request decodes to the same request");
    arena_free(&a);
    buf_free(&b);
}

/* A snapshot of kv decodes into a fresh key space with the same hash. */
static void check_snapshot_round_trip(struct kv *kv)
{
    struct buf s;
    struct kv copy;
    buf_init(&s);
    check(kv_snapshot_encode(kv, &s) == 0, "snapshot encodes");
    check(kv_init(&copy) == 0, "kv_init");
    check(kv_snapshot_decode(&copy, s.data, s.len) == 0, "a snapshot of a valid state decodes");
    check(kv_hash(&copy) == kv_hash(kv), "a decoded snapshot has the hash of its source");
    check(kv_hash(kv) == kv_hash_full(kv), "the kept hash is the one computed from scratch");
    check(kv_hash(&copy) == kv_hash_full(&copy), "so it is in the decoded copy");
    kv_close(&copy);
    buf_free(&s);
}

/* Runs one decoded request against kv the way cairnd would: writes through
 * kv_apply, reads (and, on odd ids, read-only transactions) through
 * kv_read. */
static void run_request(struct kv *kv, const struct proto_request *req, int64_t time_ms)
{
    struct buf out;
    struct proto_writer w;
    struct proto_response resp;
    uint64_t before = kv_hash(kv);
    bool read;
    size_t n = 0;
    int rv;
    switch (req->type) {
        case PROTO_STATUS:
        case PROTO_METRICS:
        case PROTO_BACKUP:
        case PROTO_MEMBER:
        case PROTO_TRANSFER:
            return; /* answered by the server, not the key space */
        case PROTO_GET:
        case PROTO_HISTORY:
            read = true;
            break;
        case PROTO_TXN:
            read = kv_txn_is_read_only(req) && req->id % 2 == 1;
            break;
        default:
            read = false;
            break;
    }
    buf_init(&out);
    proto_writer_begin(&w, &out);
    rv = read ? kv_read(kv, req, &w) : kv_apply(kv, req, time_ms, &w);
    if (rv != 0) {
        check(rv != CAIRN_ENOMEM, "no allocation failure without injection");
        check(out.len == PROTO_FRAME_HEADER_SIZE, "a refused request packs nothing");
        check(kv_hash(kv) == before, "a refused request changes nothing");
        buf_free(&out);
        return;
    }
    check(proto_writer_end(&w) == 0, "writer");
    check(proto_frame_peek(out.data, out.len, PROTO_FRAME_SIZE_MAX, &n) == 1,
          "a response is one whole frame");
    check(n + PROTO_FRAME_HEADER_SIZE == out.len, "response frame length matches");
    check(proto_decode_response(out.data + PROTO_FRAME_HEADER_SIZE, n, &resp) == 0,
          "kv packs responses that decode");
    check(resp.id == req->id && resp.type == req->type && resp.code == 0,
          "a response answers its request");
    check(resp.result != NULL, "a response carries a result");
    check(resp.result->revision <= kv->rev, "a response's revision is not in the future");
    check(kv_hash(kv) == kv_hash_full(kv), "every change keeps the hash up to date");
    if (read) {
        check(kv_hash(kv) == before, "a read changes nothing");
    }
    proto_response_free(&resp);
    buf_free(&out);
}

/* A small key space to start from, so that reads and compares on short
 * inputs find something. */
static void seed_state(struct kv *kv)
{
    static const char *const keys[] = {"a", "a/b", "a/c", "b", ""};
    struct proto_request req;
    size_t i;
    check(kv_init(kv) == 0, "kv_init");
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        memset(&req, 0, sizeof(req));
        req.type = PROTO_PUT;
        req.op.type = CAIRN_OP_PUT;
        req.op.key.ptr = keys[i];
        req.op.key.len = (uint32_t)strlen(keys[i]);
        req.op.value.ptr = "v";
        req.op.value.len = 1;
        check(kv_apply(kv, &req, 1000 + (int64_t)i, NULL) == 0, "seed put");
    }
}

/* Decodes payload as a request; when it decodes, checks the codec round
 * trip and applies it. */
static void try_request(struct kv *kv, const char *payload, size_t len, int64_t time_ms)
{
    struct arena a;
    struct proto_request req;
    arena_init(&a);
    if (proto_decode_request(payload, len, &a, &req) == 0) {
        check_request_round_trip(&req);
        run_request(kv, &req, time_ms);
    }
    arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *bytes = (const char *)data;
    struct proto_response resp;
    struct kv scratch;
    struct kv kv;
    uint64_t before;
    size_t n = 0;
    size_t off;
    int frames;
    int rv;

    /* 1. The raw input through every decoder. */
    rv = proto_frame_peek(bytes, size, FUZZ_FRAME_BYTES_MAX, &n);
    check(rv == 0 || rv == 1 || rv == CAIRN_ETOOLARGE, "peek answers 0, 1 or ETOOLARGE");
    if (rv == 1) {
        check(n <= size - PROTO_FRAME_HEADER_SIZE, "a whole frame fits in the input");
    }
    if (proto_decode_response(bytes, size, &resp) == 0) {
        check(resp.result != NULL, "a decoded response has a result");
        check(resp.text == NULL ||
                  (proto_type_has_text(resp.type) && resp.text[resp.text_len] == '\0'),
              "only a METRICS, BACKUP, MEMBER or TRANSFER answer has text, NUL-terminated");
        proto_response_free(&resp);
    }
    seed_state(&scratch);
    before = kv_hash(&scratch);
    rv = kv_snapshot_decode(&scratch, bytes, size);
    if (rv != 0) {
        check(rv == CAIRN_EMALFORMED, "a bad snapshot is EMALFORMED");
        check(kv_hash(&scratch) == before, "a bad snapshot leaves the target as it was");
    } else {
        check_snapshot_round_trip(&scratch);
    }
    kv_close(&scratch);

    /* 2. Requests: the input as one payload, then as a stream of frames. */
    seed_state(&kv);
    try_request(&kv, bytes, size, 2000);
    for (off = 0, frames = 0; frames < FUZZ_FRAMES_MAX; frames++) {
        rv = proto_frame_peek(bytes + off, size - off, FUZZ_FRAME_BYTES_MAX, &n);
        if (rv != 1) {
            break;
        }
        try_request(&kv, bytes + off + PROTO_FRAME_HEADER_SIZE, n, 3000 + frames);
        off += PROTO_FRAME_HEADER_SIZE + n;
    }
    check_snapshot_round_trip(&kv);
    kv_close(&kv);
    return 0;
}
