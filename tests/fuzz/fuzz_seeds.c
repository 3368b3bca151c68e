/*
 * Writes the seed corpus for fuzz_decode into a directory: one bare request
 * payload of every type, a stream of framed requests that walks the key
 * space through retention and compaction, responses (a read, an error, a
 * status) and a snapshot. Generated from the codec itself, so the seeds
 * follow the wire format when it changes.
 *
 * Usage: fuzz_seeds DIR
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "kv.h"
#include "proto.h"

static const char *dir;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_seeds: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void write_seed(const char *name, const char *data, size_t len)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        die(path);
    }
}

static struct proto_slice s(const char *str)
{
    struct proto_slice out;
    out.ptr = str;
    out.len = (uint32_t)strlen(str);
    return out;
}

static struct proto_op op(uint8_t type, const char *key, const char *value)
{
    struct proto_op o;
    memset(&o, 0, sizeof(o));
    o.type = type;
    o.key = s(key);
    o.value = s(value);
    o.after = s("");
    return o;
}

static struct proto_request request(uint64_t id, uint8_t type)
{
    struct proto_request r;
    memset(&r, 0, sizeof(r));
    r.id = id;
    r.type = type;
    return r;
}

/* Appends req as a frame to stream, and (when name is not NULL) writes its
 * bare payload as a seed of its own. */
static void emit(struct buf *stream, const struct proto_request *req, const char *name)
{
    size_t start = stream->len;
    if (proto_encode_request(stream, req) != 0) {
        die("encode");
    }
    if (name != NULL) {
        write_seed(name, stream->data + start + PROTO_FRAME_HEADER_SIZE,
                   stream->len - start - PROTO_FRAME_HEADER_SIZE);
    }
}

/* Applies every frame of stream to kv, as fuzz_decode will. */
static void apply_stream(struct kv *kv, const struct buf *stream)
{
    size_t off = 0;
    size_t n;
    int64_t t = 1000;
    while (proto_frame_peek(stream->data + off, stream->len - off, PROTO_FRAME_SIZE_MAX, &n) == 1) {
        struct arena a;
        struct proto_request req;
        arena_init(&a);
        if (proto_decode_request(stream->data + off + PROTO_FRAME_HEADER_SIZE, n, &a, &req) == 0 &&
            req.type != PROTO_GET && req.type != PROTO_HISTORY && req.type != PROTO_STATUS &&
            req.type != PROTO_METRICS && req.type != PROTO_BACKUP && req.type != PROTO_MEMBER &&
            req.type != PROTO_TRANSFER) {
            kv_apply(kv, &req, t++, NULL);
        }
        arena_free(&a);
        off += PROTO_FRAME_HEADER_SIZE + n;
    }
}

int main(int argc, char **argv)
{
    struct buf stream;
    struct buf out;
    struct proto_request req;
    struct proto_cmp cmps[2];
    struct proto_op then_ops[3];
    struct proto_op else_ops[2];
    struct proto_writer w;
    struct kv kv;
    uint64_t id = 1;
    int i;

    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    dir = argv[1];
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        die(dir);
    }
    buf_init(&stream);

    req = request(id++, PROTO_PUT);
    req.op = op(CAIRN_OP_PUT, "app/port", "8080");
    emit(&stream, &req, "req_put");
    req = request(id++, PROTO_PUT);
    req.op = op(CAIRN_OP_PUT, "app/host", "db.local");
    req.op.prev_kv = true;
    emit(&stream, &req, NULL);
    for (i = 0; i < 4; i++) {
        req = request(id++, PROTO_PUT);
        req.op = op(CAIRN_OP_PUT, "app/port", i % 2 == 0 ? "8081" : "8082");
        emit(&stream, &req, NULL);
    }
    req = request(id++, PROTO_RETENTION);
    req.number = 2;
    emit(&stream, &req, "req_retention");
    req = request(id++, PROTO_RETENTION);
    req.op = op(CAIRN_OP_GET, "app/", "");
    req.number = 3;
    req.age_ms = 60000;
    emit(&stream, &req, "req_retention_prefix");
    req = request(id++, PROTO_SWEEP);
    emit(&stream, &req, "req_sweep");
    req = request(id++, PROTO_WATCH);
    req.op = op(CAIRN_OP_GET, "app/", "");
    req.op.prefix = true;
    req.op.prev_kv = true;
    req.op.revision = 2;
    req.number = 500;
    emit(&stream, &req, "req_watch");

    req = request(id++, PROTO_TXN);
    cmps[0] = (struct proto_cmp){s("app/port"), CAIRN_CMP_MOD, CAIRN_CMP_EQUAL, s(""), 6};
    cmps[1] = (struct proto_cmp){s("app/host"), CAIRN_CMP_VALUE, CAIRN_CMP_NOT_EQUAL, s("x"), 0};
    then_ops[0] = op(CAIRN_OP_PUT, "app/port", "9000");
    then_ops[1] = op(CAIRN_OP_GET, "app/", "");
    then_ops[1].prefix = true;
    then_ops[2] = op(CAIRN_OP_DEL, "app/host", "");
    then_ops[2].prev_kv = true;
    else_ops[0] = op(CAIRN_OP_GET, "app/port", "");
    else_ops[1] = op(CAIRN_OP_PUT, "app/port", "9000");
    req.cmps = cmps;
    req.n_cmps = 2;
    req.then_ops = then_ops;
    req.n_then = 3;
    req.else_ops = else_ops;
    req.n_else = 2;
    emit(&stream, &req, "req_txn");

    req = request(id++, PROTO_GET);
    req.op = op(CAIRN_OP_GET, "app/", "");
    req.op.prefix = true;
    req.op.limit = 1;
    req.op.after = s("app/host");
    emit(&stream, &req, "req_get_range");
    req = request(id++, PROTO_GET);
    req.op = op(CAIRN_OP_GET, "app/port", "");
    req.op.revision = 3;
    emit(&stream, &req, "req_get_at");
    req = request(id++, PROTO_HISTORY);
    req.op = op(CAIRN_OP_GET, "app/port", "");
    emit(&stream, &req, "req_history");
    req = request(id++, PROTO_DEL);
    req.op = op(CAIRN_OP_DEL, "app/", "");
    req.op.prefix = true;
    emit(&stream, &req, "req_del");
    req = request(id++, PROTO_COMPACT);
    req.number = 5;
    emit(&stream, &req, "req_compact");
    req = request(id++, PROTO_STATUS);
    emit(&stream, &req, "req_status");
    req = request(id++, PROTO_METRICS);
    emit(&stream, &req, "req_metrics");
    req = request(id++, PROTO_BACKUP);
    req.op = op(0, "status", "");
    emit(&stream, &req, "req_backup");
    req = request(id++, PROTO_PUT);
    req.op = op(CAIRN_OP_PUT, "app/port", "again");
    emit(&stream, &req, NULL);
    write_seed("stream", stream.data, stream.len);

    /* The state the stream leads to, as a snapshot and as answers. */
    if (kv_init(&kv) != 0) {
        die("kv_init");
    }
    apply_stream(&kv, &stream);
    buf_init(&out);
    if (kv_snapshot_encode(&kv, &out) != 0) {
        die("snapshot");
    }
    write_seed("snapshot", out.data, out.len);
    buf_free(&out);

    buf_init(&out);
    req = request(id++, PROTO_GET);
    req.op = op(CAIRN_OP_GET, "", "");
    req.op.prefix = true;
    proto_writer_begin(&w, &out);
    if (kv_read(&kv, &req, &w) != 0 || proto_writer_end(&w) != 0) {
        die("read");
    }
    write_seed("resp_get", out.data + PROTO_FRAME_HEADER_SIZE, out.len - PROTO_FRAME_HEADER_SIZE);
    buf_free(&out);

    buf_init(&out);
    if (proto_encode_error(&out, 7, PROTO_PUT, CAIRN_ENOTLEADER, "not the leader",
                           "127.0.0.1:7002") != 0) {
        die("error");
    }
    write_seed("resp_error", out.data + PROTO_FRAME_HEADER_SIZE, out.len - PROTO_FRAME_HEADER_SIZE);
    buf_free(&out);

    {
        struct cairn_member members[2] = {{1, "127.0.0.1:7101", "127.0.0.1:7001", "voter"},
                                          {2, "127.0.0.1:7102", "127.0.0.1:7002", "standby"}};
        struct cairn_status st;
        struct proto_response_head h;
        memset(&st, 0, sizeof(st));
        st.id = 1;
        st.state = "leader";
        st.leader_id = 1;
        st.leader_address = "127.0.0.1:7001";
        st.revision = kv.rev;
        st.members = members;
        st.n_members = 2;
        memset(&h, 0, sizeof(h));
        h.id = 8;
        h.type = PROTO_STATUS;
        h.revision = kv.rev;
        buf_init(&out);
        proto_writer_begin(&w, &out);
        proto_pack_response_head(&w, &h);
        proto_pack_status(&w, &st);
        if (proto_writer_end(&w) != 0) {
            die("status");
        }
        write_seed("resp_status", out.data + PROTO_FRAME_HEADER_SIZE,
                   out.len - PROTO_FRAME_HEADER_SIZE);
        buf_free(&out);
    }

    {
        struct cairn_kv a = {"app/port", 8, "9000", 4, 1, 7, 3, 1795000000000, false};
        struct cairn_kv b = {"app/port", 8, "8082", 4, 1, 6, 2, 1795000000000, false};
        buf_init(&out);
        proto_writer_begin(&w, &out);
        proto_pack_watch_head(&w, 9, PROTO_WATCH_EVENTS, 7, 2, false, 0, 2);
        proto_pack_event(&w, &a, &b);
        proto_pack_event(&w, &a, NULL);
        if (proto_writer_end(&w) != 0) {
            die("watch");
        }
        write_seed("resp_watch_events", out.data + PROTO_FRAME_HEADER_SIZE,
                   out.len - PROTO_FRAME_HEADER_SIZE);
        buf_free(&out);
        buf_init(&out);
        proto_writer_begin(&w, &out);
        proto_pack_watch_head(&w, 9, PROTO_WATCH_SNAPSHOT, 7, 2, true, 1, 1);
        proto_pack_event(&w, &a, NULL);
        if (proto_writer_end(&w) != 0) {
            die("watch");
        }
        write_seed("resp_watch_snapshot", out.data + PROTO_FRAME_HEADER_SIZE,
                   out.len - PROTO_FRAME_HEADER_SIZE);
        buf_free(&out);
    }

    {
        static const char text[] = "# TYPE cairn_keys gauge\ncairn_keys 2\n";
        buf_init(&out);
        if (proto_encode_metrics(&out, 10, kv.rev, text, sizeof(text) - 1) != 0) {
            die("metrics");
        }
    }
    write_seed("resp_metrics", out.data + PROTO_FRAME_HEADER_SIZE,
               out.len - PROTO_FRAME_HEADER_SIZE);
    buf_free(&out);

    {
        static const char json[] = "{\"snapshot\": {\"revision\": 3, \"keys\": 2}}";
        buf_init(&out);
        if (proto_encode_text(&out, 11, PROTO_BACKUP, kv.rev, json, sizeof(json) - 1) != 0) {
            die("backup");
        }
    }
    write_seed("resp_backup", out.data + PROTO_FRAME_HEADER_SIZE,
               out.len - PROTO_FRAME_HEADER_SIZE);
    buf_free(&out);

    kv_close(&kv);
    buf_free(&stream);
    return 0;
}
