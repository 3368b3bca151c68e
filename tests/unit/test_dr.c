/*
 * Unit tests of disaster recovery's pure and local pieces: the artifact
 * format (src/artifact.c), the backlog files (src/spool.c), and the archive
 * (src/dr_archive.c) on a file:// store in a temporary directory: chains,
 * restorable ranges, restore to a revision and a time, refusal of corrupt
 * objects, fallback, retention plans and the settings' parsers.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "artifact.h"
#include "dr_archive.h"
#include "entry.h"
#include "json.h"
#include "kv.h"
#include "objstore.h"
#include "spool.h"

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/cairn-test-dr-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
}

/* Artifacts. */

static void build_artifact(struct buf *out, const char *body, size_t len)
{
    struct artifact_writer w;
    buf_init(out);
    assert_int_equal(
        artifact_writer_begin(&w, ARTIFACT_SEGMENT, "{\"a\":1}", 7, artifact_sink_buf, out), 0);
    assert_int_equal(artifact_writer_write(&w, body, len), 0);
    assert_int_equal(artifact_writer_end(&w, NULL), 0);
}

static void test_artifact_round_trip(void **state)
{
    struct buf out;
    struct buf body;
    struct artifact a;
    char err[256];
    char *big = malloc(3u << 20);
    size_t i;
    (void)state;
    for (i = 0; i < (3u << 20); i++) {
        big[i] = (char)(i * 2654435761u >> 13);
    }
    build_artifact(&out, big, 3u << 20);
    assert_int_equal(artifact_parse(out.data, out.len, &a, err, sizeof(err)), 0);
    assert_int_equal(a.kind, ARTIFACT_SEGMENT);
    assert_int_equal(a.header_len, 7);
    assert_memory_equal(a.header, "{\"a\":1}", 7);
    buf_init(&body);
    assert_int_equal(artifact_body(&a, &body, 4u << 20, err, sizeof(err)), 0);
    assert_int_equal(body.len, 3u << 20);
    assert_memory_equal(body.data, big, 3u << 20);
    buf_free(&body);
    /* The bound on the decompressed size holds. */
    buf_init(&body);
    assert_int_equal(artifact_body(&a, &body, 1u << 20, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "larger"));
    buf_free(&body);
    buf_free(&out);
    /* An empty body. */
    build_artifact(&out, "", 0);
    assert_int_equal(artifact_parse(out.data, out.len, &a, err, sizeof(err)), 0);
    buf_init(&body);
    assert_int_equal(artifact_body(&a, &body, 10, err, sizeof(err)), 0);
    assert_int_equal(body.len, 0);
    buf_free(&body);
    buf_free(&out);
    free(big);
}

static void test_artifact_refuses_damage(void **state)
{
    struct buf out;
    struct artifact a;
    char err[256];
    size_t cut;
    size_t i;
    (void)state;
    build_artifact(&out, "hello, backups", 14);
    /* Every truncation fails, and says so. */
    for (cut = 0; cut < out.len; cut++) {
        assert_int_equal(artifact_parse(out.data, cut, &a, err, sizeof(err)), -1);
    }
    /* Every single flipped byte fails the checksum (or the magic). */
    for (i = 0; i < out.len; i++) {
        out.data[i] ^= 0x40;
        assert_int_equal(artifact_parse(out.data, out.len, &a, err, sizeof(err)), -1);
        out.data[i] ^= 0x40;
    }
    assert_int_equal(artifact_parse(out.data, out.len, &a, err, sizeof(err)), 0);
    out.data[out.len / 2] ^= 1;
    assert_int_equal(artifact_parse(out.data, out.len, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "checksum mismatch"));
    buf_free(&out);
}

/* The backlog. */

static int collect_cb(void *arg, const struct spool_record *r)
{
    uint64_t *seen = arg;
    assert_int_equal(r->entry_len, 8);
    assert_int_equal(memcmp(r->entry, "entry-", 6), 0);
    assert_int_equal(r->revision, r->index * 10);
    seen[0]++;
    seen[1] = r->index;
    return 0;
}

static void append(struct spool *sp, uint64_t index)
{
    struct spool_record r;
    char entry[9];
    snprintf(entry, sizeof(entry), "entry-%02u", (unsigned)(index % 100));
    r.index = index;
    r.time_ms = (int64_t)index * 1000;
    r.revision = index * 10;
    r.hash = index ^ 0xabc;
    r.entry = entry;
    r.entry_len = 8;
    assert_int_equal(spool_append(sp, &r), 0);
}

static void test_spool(void **state)
{
    struct spool sp;
    char dir[512];
    char path[600];
    char err[256];
    uint64_t seen[2] = {0, 0};
    uint64_t i;
    FILE *f;
    (void)state;
    make_tmpdir();
    snprintf(dir, sizeof(dir), "%s/backlog", tmpdir);
    assert_int_equal(spool_open(&sp, dir, 1u << 30, err, sizeof(err)), 0);
    assert_int_equal(sp.base, 0);
    for (i = 1; i <= 100; i += 2) { /* odd indexes: others are not commands */
        append(&sp, i);
    }
    assert_int_equal(spool_flush(&sp, true), 0);
    assert_int_equal(sp.last, 99);
    assert_int_equal(spool_read(dir, 10, 99, collect_cb, seen, err, sizeof(err)), 0);
    assert_int_equal(seen[0], 45); /* 11, 13, ..., 99 */
    assert_int_equal(seen[1], 99);
    /* Reading past what is there is an error, not a silent gap. */
    assert_int_equal(spool_read(dir, 10, 150, collect_cb, seen, err, sizeof(err)), -1);
    spool_close(&sp);
    /* A torn record at the end (a crash mid-write) is cut off on open. */
    snprintf(path, sizeof(path), "%s/%020d.spool", dir, 1);
    f = fopen(path, "ab");
    assert_non_null(f);
    fwrite("\0\0\0\x40garbage", 1, 11, f);
    fclose(f);
    assert_int_equal(spool_open(&sp, dir, 1u << 30, err, sizeof(err)), 0);
    assert_int_equal(sp.last, 99);
    append(&sp, 101); /* appends go on after the cut */
    /* Already spooled (raft replays after a restart): ignored. */
    append(&sp, 51);
    assert_int_equal(spool_flush(&sp, false), 0);
    seen[0] = 0;
    assert_int_equal(spool_read(dir, 98, 101, collect_cb, seen, err, sizeof(err)), 0);
    assert_int_equal(seen[0], 2);
    /* A gap: everything goes, and the base moves. */
    spool_reset(&sp, 500);
    assert_int_equal(sp.base, 500);
    assert_int_equal(sp.bytes, 0);
    spool_close(&sp);
    assert_int_equal(spool_open(&sp, dir, 1u << 30, err, sizeof(err)), 0);
    assert_int_equal(sp.base, 500);
    assert_int_equal(sp.last, 500);
    spool_close(&sp);
    remove_tmpdir();
}

static int count_cb(void *arg, const struct spool_record *r)
{
    uint64_t *count = arg;
    assert_int_equal(r->entry_len, 4096);
    assert_int_equal(r->revision, r->index);
    (*count)++;
    return 0;
}

static void test_spool_bound(void **state)
{
    struct spool sp;
    char dir[512];
    char err[256];
    char big[4096];
    uint64_t i;
    (void)state;
    make_tmpdir();
    snprintf(dir, sizeof(dir), "%s/backlog", tmpdir);
    memset(big, 'x', sizeof(big));
    /* Bound of 20 MiB with 8 MiB files: the oldest files go, and the base
     * follows them (a gap the shipper sees). */
    assert_int_equal(spool_open(&sp, dir, 20u << 20, err, sizeof(err)), 0);
    for (i = 1; i <= 10000; i++) {
        struct spool_record r = {i, (int64_t)i, i, i, big, sizeof(big)};
        assert_int_equal(spool_append(&sp, &r), 0);
        if (i % 100 == 0) {
            assert_int_equal(spool_flush(&sp, false), 0);
        }
    }
    assert_int_equal(spool_flush(&sp, false), 0);
    assert_true(sp.bytes <= (20u << 20));
    assert_true(sp.base > 0);
    assert_true(sp.gaps > 0);
    assert_int_equal(sp.last, 10000);
    /* Every record left reads back, across the files' boundaries. */
    {
        uint64_t count = 0;
        assert_int_equal(spool_read(dir, sp.base, sp.last, count_cb, &count, err, sizeof(err)), 0);
        assert_int_equal(count, sp.last - sp.base);
    }
    /* Trimming what was shipped removes whole files only. */
    spool_trim(&sp, 9000);
    assert_true(sp.n_files >= 1);
    assert_true(sp.files[0].first <= 9001);
    spool_close(&sp);
    remove_tmpdir();
}

/* The archive, on a file:// store. */

static void put_entry(struct kv *kv, struct buf *seg, uint64_t index, int64_t time_ms,
                      const char *key, const char *value)
{
    struct proto_request req;
    struct buf frame;
    struct buf entry;
    struct spool_record r;
    unsigned char len[4];
    size_t at;
    memset(&req, 0, sizeof(req));
    req.type = PROTO_PUT;
    req.op.type = CAIRN_OP_PUT;
    req.op.key.ptr = key;
    req.op.key.len = (uint32_t)strlen(key);
    req.op.value.ptr = value;
    req.op.value.len = (uint32_t)strlen(value);
    buf_init(&frame);
    assert_int_equal(proto_encode_request(&frame, &req), 0);
    buf_init(&entry);
    /* An entry exactly as fsm_encode_entry makes it (without padding). */
    {
        char hdr[32];
        size_t n = 0;
        hdr[n++] = (char)0x94; /* array of 4 */
        hdr[n++] = ENTRY_FORMAT;
        hdr[n++] = 1; /* origin */
        hdr[n++] = (char)0xd3;
        for (int i = 7; i >= 0; i--) {
            hdr[n++] = (char)((uint64_t)time_ms >> (8 * i));
        }
        hdr[n++] = (char)0xc6;
        uint32_t pl = (uint32_t)(frame.len - PROTO_FRAME_HEADER_SIZE);
        hdr[n++] = (char)(pl >> 24);
        hdr[n++] = (char)(pl >> 16);
        hdr[n++] = (char)(pl >> 8);
        hdr[n++] = (char)pl;
        assert_int_equal(buf_append(&entry, hdr, n), 0);
        assert_int_equal(buf_append(&entry, frame.data + PROTO_FRAME_HEADER_SIZE, pl), 0);
    }
    assert_int_equal(entry_apply(kv, entry.data, entry.len), 0);
    r.index = index;
    r.time_ms = time_ms;
    r.revision = kv->rev;
    r.hash = kv_hash(kv);
    r.entry = entry.data;
    r.entry_len = (uint32_t)entry.len;
    at = seg->len;
    assert_int_equal(buf_append(seg, "\0\0\0\0", 4), 0);
    assert_int_equal(spool_record_encode(seg, &r), 0);
    {
        size_t n = seg->len - at - 4;
        len[0] = (unsigned char)(n >> 24);
        len[1] = (unsigned char)(n >> 16);
        len[2] = (unsigned char)(n >> 8);
        len[3] = (unsigned char)n;
        memcpy(seg->data + at, len, 4);
    }
    buf_free(&entry);
    buf_free(&frame);
}

static void upload_snapshot(struct objstore *st, struct kv *kv, uint64_t cid, uint64_t index,
                            int64_t time_ms)
{
    struct dr_snapshot m;
    struct buf body;
    struct buf header;
    struct buf out;
    struct buf manifest;
    struct artifact_writer w;
    unsigned char sha[32];
    char name[256];
    char err[256];
    memset(&m, 0, sizeof(m));
    m.cluster_id = cid;
    m.revision = kv->rev;
    m.index = index;
    m.term = 1;
    m.time_ms = time_ms;
    m.keys = kv->nodes;
    m.versions = kv->total_versions;
    m.state_hash = kv_hash(kv);
    buf_init(&body);
    buf_init(&header);
    buf_init(&out);
    buf_init(&manifest);
    assert_int_equal(kv_snapshot_encode(kv, &body), 0);
    m.bytes_raw = body.len;
    assert_int_equal(dr_manifest_json(&m, false, &header), 0);
    assert_int_equal(artifact_writer_begin(&w, ARTIFACT_SNAPSHOT, header.data, header.len,
                                           artifact_sink_buf, &out),
                     0);
    assert_int_equal(artifact_writer_write(&w, body.data, body.len), 0);
    assert_int_equal(artifact_writer_end(&w, sha), 0);
    artifact_hex(sha, 32, m.sha256);
    m.bytes_stored = out.len;
    dr_name_snapshot(cid, index, m.name, sizeof(m.name));
    assert_int_equal(objstore_put(st, m.name, out.data, out.len, err, sizeof(err)), 0);
    assert_int_equal(dr_manifest_json(&m, true, &manifest), 0);
    dr_name_manifest(cid, index, name, sizeof(name));
    assert_int_equal(objstore_put(st, name, manifest.data, manifest.len, err, sizeof(err)), 0);
    buf_free(&body);
    buf_free(&header);
    buf_free(&out);
    buf_free(&manifest);
}

static void upload_segment(struct objstore *st, struct buf *seg, uint64_t cid, uint64_t after,
                           uint64_t last, uint64_t rev, int64_t time_ms)
{
    struct buf out;
    struct artifact_writer w;
    char name[256];
    char err[256];
    buf_init(&out);
    assert_int_equal(artifact_writer_begin(&w, ARTIFACT_SEGMENT, "{}", 2, artifact_sink_buf, &out),
                     0);
    assert_int_equal(artifact_writer_write(&w, seg->data, seg->len), 0);
    assert_int_equal(artifact_writer_end(&w, NULL), 0);
    dr_name_segment(cid, after, last, rev, time_ms, name, sizeof(name));
    assert_int_equal(objstore_put(st, name, out.data, out.len, err, sizeof(err)), 0);
    buf_free(&out);
    seg->len = 0;
}

/* A history on a store: snapshot at index 10 (rev 2), entries 11..20
 * (rev 3..12) in two segments, snapshot at index 20 (rev 12), entries
 * 21..25 (rev 13..17). Returns the expected hash at every revision. */
static void build_history(struct objstore *st, uint64_t cid, uint64_t hashes[32])
{
    struct kv kv;
    struct buf seg;
    char key[16];
    char value[16];
    uint64_t i;
    buf_init(&seg);
    kv_init(&kv);
    for (i = 0; i < 10; i++) {
        /* Entries before the first snapshot: only its state matters. */
        snprintf(value, sizeof(value), "v%llu", (unsigned long long)i);
        put_entry(&kv, &seg, i + 1, 1000, i % 2 ? "a" : "b", value);
    }
    seg.len = 0; /* entries before the first snapshot: not shipped */
    upload_snapshot(st, &kv, cid, 10, 1000);
    hashes[kv.rev] = kv_hash(&kv);
    for (i = 11; i <= 25; i++) {
        snprintf(key, sizeof(key), "k%llu", (unsigned long long)(i % 4));
        snprintf(value, sizeof(value), "x%llu", (unsigned long long)i);
        put_entry(&kv, &seg, i, (int64_t)i * 1000, key, value);
        hashes[kv.rev] = kv_hash(&kv);
        if (i == 15 || i == 20 || i == 25) {
            upload_segment(st, &seg, cid, i == 15 ? 10 : i - 5, i, kv.rev, (int64_t)i * 1000);
        }
        if (i == 20) {
            upload_snapshot(st, &kv, cid, 20, 20000);
        }
    }
    kv_close(&kv);
    buf_free(&seg);
}

static void test_archive_restore(void **state)
{
    char url[600];
    char err[512];
    char path[700];
    struct objstore *st;
    struct dr_catalog cat;
    struct dr_target t;
    struct dr_result res;
    struct kv kv;
    uint64_t hashes[32] = {0};
    uint64_t cid = 0x1234abcd5678ef90ull;
    FILE *f;
    (void)state;
    make_tmpdir();
    snprintf(url, sizeof(url), "file://%s", tmpdir);
    assert_int_equal(objstore_open(url, NULL, &st, err, sizeof(err)), 0);
    build_history(st, cid, hashes);
    assert_int_equal(dr_catalog_load(st, 0, &cat, err, sizeof(err)), 0);
    assert_int_equal(cat.cluster_id, cid);
    assert_int_equal(cat.n_snaps, 2);
    assert_int_equal(cat.n_segs, 3);
    assert_int_equal(cat.n_ranges, 1);
    assert_int_equal(cat.ranges[0].from_revision, 10);
    assert_int_equal(cat.ranges[0].to_revision, 25);
    assert_int_equal(cat.ranges[0].to_index, 25);

    /* Latest. */
    memset(&t, 0, sizeof(t));
    t.verify = true;
    kv_init(&kv);
    assert_int_equal(dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err)), 0);
    assert_int_equal(res.revision, 25);
    assert_int_equal(res.snapshot->index, 20);
    assert_int_equal(res.entries, 5);
    assert_int_equal(kv_hash(&kv), hashes[25]);
    kv_close(&kv);
    /* Every revision in the window, exactly. */
    for (uint64_t r = 10; r <= 25; r++) {
        t.revision = r;
        kv_init(&kv);
        assert_int_equal(dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err)), 0);
        assert_int_equal(kv.rev, r);
        assert_int_equal(kv_hash(&kv), hashes[r]);
        kv_close(&kv);
    }
    /* By time: entries proposed at or before 17.5 s (index 17, rev 17). */
    t.revision = 0;
    t.time_ms = 17500;
    kv_init(&kv);
    assert_int_equal(dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err)), 0);
    assert_int_equal(kv.rev, 17);
    assert_false(res.ended_before_time);
    kv_close(&kv);
    /* A time after the archive's end: its end, and said so. */
    t.time_ms = 99000;
    kv_init(&kv);
    assert_int_equal(dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err)), 0);
    assert_int_equal(kv.rev, 25);
    assert_true(res.ended_before_time);
    kv_close(&kv);
    /* Beyond the archive, and before the first snapshot: clear errors. */
    t.time_ms = 0;
    t.revision = 99;
    kv_init(&kv);
    assert_int_equal(dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "beyond"));
    kv_close(&kv);
    t.revision = 5;
    kv_init(&kv);
    assert_int_equal(dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no snapshot"));
    assert_non_null(strstr(err, "oldest is revision 10, taken 1970-01-01T"));
    kv_close(&kv);

    /* Corrupt the newest snapshot: refused, naming it; --fallback takes
     * the older one plus more log to the same state. */
    snprintf(path, sizeof(path), "%s/%s", tmpdir, cat.snaps[1].name);
    f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 40, SEEK_SET);
    fputc('!', f);
    fclose(f);
    memset(&t, 0, sizeof(t));
    kv_init(&kv);
    assert_int_equal(dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "checksum mismatch"));
    assert_non_null(strstr(err, cat.snaps[1].name));
    kv_close(&kv);
    t.fallback = true;
    t.verify = true;
    kv_init(&kv);
    assert_int_equal(dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err)), 0);
    assert_int_equal(res.skipped_snapshots, 1);
    assert_int_equal(kv.rev, 25);
    assert_int_equal(kv_hash(&kv), hashes[25]);
    kv_close(&kv);

    /* A missing segment cuts the chain: the window shows it. */
    dr_catalog_free(&cat);
    snprintf(path, sizeof(path), "%s/%016llx/log", tmpdir, (unsigned long long)cid);
    {
        char cmd[900];
        snprintf(cmd, sizeof(cmd), "rm -f %s/00000000000000000015-*", path);
        assert_int_equal(system(cmd), 0);
    }
    assert_int_equal(dr_catalog_load(st, cid, &cat, err, sizeof(err)), 0);
    assert_int_equal(cat.n_ranges, 2);
    assert_int_equal(cat.ranges[0].to_revision, 15);
    assert_int_equal(cat.ranges[1].from_revision, 20);
    dr_catalog_free(&cat);
    objstore_close(st);
    remove_tmpdir();
}

/* The restorable ranges of random catalogs (overlapping segments, gaps,
 * snapshots inside and outside the chains) against a reference that walks
 * every chain from every snapshot by brute force; and names Cairn would not
 * write are not taken for segments. Only the listing is read, so the
 * objects are empty. */
struct ref_seg
{
    uint64_t after;
    uint64_t last;
};

static uint64_t ref_reach(const struct ref_seg *segs, unsigned n, uint64_t from)
{
    uint64_t cur = from;
    for (;;) {
        uint64_t best = cur;
        unsigned i;
        for (i = 0; i < n; i++) {
            if (segs[i].after <= cur && segs[i].last > best) {
                best = segs[i].last;
            }
        }
        if (best == cur) {
            return cur;
        }
        cur = best;
    }
}

static void put_empty(struct objstore *st, const char *name)
{
    char err[256];
    assert_int_equal(objstore_put(st, name, "", 0, err, sizeof(err)), 0);
}

static void test_catalog_ranges(void **state)
{
    char url[600];
    char err[512];
    char name[256];
    struct objstore *st;
    uint64_t cid = 0x0badc0ffee123456ull;
    unsigned round;
    unsigned seed = 12345;
    (void)state;
    for (round = 0; round < 60; round++) {
        struct ref_seg segs[40];
        uint64_t snaps[8];
        unsigned n_segs = 0;
        unsigned n_snaps = 0;
        uint64_t ref_from[8];
        uint64_t ref_to[8];
        unsigned n_ref = 0;
        uint64_t idx;
        unsigned i;
        struct dr_catalog cat;
        make_tmpdir();
        snprintf(url, sizeof(url), "file://%s", tmpdir);
        assert_int_equal(objstore_open(url, NULL, &st, err, sizeof(err)), 0);
        /* Snapshots at increasing indexes; segments of 1-6 entries from
         * random points, some overlapping, some leaving gaps. */
        for (idx = 1 + (uint64_t)(rand_r(&seed) % 5); n_snaps < 1 + round % 8;
             idx += 1 + (uint64_t)(rand_r(&seed) % 12)) {
            struct dr_snapshot m;
            struct buf manifest;
            memset(&m, 0, sizeof(m));
            m.cluster_id = cid;
            m.index = idx;
            m.revision = idx;
            m.time_ms = (int64_t)idx * 1000;
            dr_name_snapshot(cid, idx, m.name, sizeof(m.name));
            buf_init(&manifest);
            assert_int_equal(dr_manifest_json(&m, true, &manifest), 0);
            dr_name_manifest(cid, idx, name, sizeof(name));
            assert_int_equal(objstore_put(st, name, manifest.data, manifest.len, err, sizeof(err)),
                             0);
            buf_free(&manifest);
            snaps[n_snaps++] = idx;
        }
        while (n_segs < 10 + round % 30) {
            uint64_t after = (uint64_t)(rand_r(&seed) % (unsigned)(idx + 4));
            uint64_t last = after + 1 + (uint64_t)(rand_r(&seed) % 6);
            unsigned k;
            for (k = 0; k < n_segs && (segs[k].after != after || segs[k].last != last); k++) {
            }
            if (k < n_segs) {
                continue; /* the same name */
            }
            segs[n_segs].after = after;
            segs[n_segs].last = last;
            n_segs++;
            dr_name_segment(cid, after, last, last, (int64_t)last * 1000, name, sizeof(name));
            put_empty(st, name);
        }
        /* Not Cairn's: a short name, and another cluster's segment. */
        snprintf(name, sizeof(name), "%016llx/log/3-900-900-900.seg", (unsigned long long)cid);
        put_empty(st, name);
        dr_name_segment(cid + 1, 0, 1000, 1000, 1000, name, sizeof(name));
        put_empty(st, name);

        for (i = 0; i < n_snaps; i++) {
            uint64_t to;
            if (n_ref > 0 && ref_to[n_ref - 1] >= snaps[i]) {
                to = ref_reach(segs, n_segs, snaps[i]);
                assert_true(to == ref_to[n_ref - 1]); /* what build_ranges relies on */
                continue;
            }
            ref_from[n_ref] = snaps[i];
            ref_to[n_ref] = ref_reach(segs, n_segs, snaps[i]);
            n_ref++;
        }
        assert_int_equal(dr_catalog_load(st, cid, &cat, err, sizeof(err)), 0);
        assert_int_equal(cat.n_snaps, n_snaps);
        assert_int_equal(cat.n_segs, n_segs);
        assert_int_equal(cat.n_ranges, n_ref);
        for (i = 0; i < n_ref; i++) {
            assert_int_equal(cat.ranges[i].from_index, ref_from[i]);
            assert_int_equal(cat.ranges[i].to_index, ref_to[i]);
            /* A range's end carries the revision of the segment reaching it
             * (here equal to its last index), or its snapshot's. */
            assert_int_equal(cat.ranges[i].to_revision, ref_to[i]);
        }
        dr_catalog_free(&cat);
        objstore_close(st);
        remove_tmpdir();
    }
}

/* Compaction's plan: closed windows only, bigger windows first, runs that
 * follow each other in the log, nothing across a gap or a big segment, and
 * segments a merge already covers passed over. */
static struct dr_segment seg_at(uint64_t after, uint64_t last, int64_t time_ms, uint64_t size)
{
    struct dr_segment sg;
    memset(&sg, 0, sizeof(sg));
    sg.cluster_id = 7;
    sg.after = after;
    sg.last = last;
    sg.revision = last;
    sg.time_ms = time_ms;
    sg.size = size;
    return sg;
}

static int plan(struct dr_segment *segs, unsigned n, int64_t now_ms, struct dr_segment **run)
{
    struct dr_catalog cat;
    memset(&cat, 0, sizeof(cat));
    cat.segs = segs;
    cat.n_segs = n;
    return dr_compact_plan(&cat, 1000, now_ms, run);
}

static void test_compact_plan(void **state)
{
    struct dr_segment *run = NULL;
    (void)state;
    {
        /* Four in one 12 s window, closed long ago: all four at once. */
        struct dr_segment segs[] = {seg_at(10, 11, 1100, 100), seg_at(11, 12, 1500, 100),
                                    seg_at(12, 13, 1900, 100), seg_at(13, 14, 2100, 100)};
        assert_int_equal(plan(segs, 4, 100000, &run), 4);
        assert_int_equal(run[0].after, 10);
        assert_int_equal(run[3].last, 14);
        free(run);
        /* At 2.5 s only the 1 s window [1 s, 2 s) is closed (0.2 s after
         * its end): its three. At 2.1 s none is. */
        assert_int_equal(plan(segs, 4, 2500, &run), 3);
        assert_int_equal(run[2].last, 13);
        free(run);
        assert_int_equal(plan(segs, 4, 2100, &run), 0);
        assert_null(run);
    }
    {
        /* A gap in the log, or a big segment, between two: no run. */
        struct dr_segment gap[] = {seg_at(10, 11, 1100, 100), seg_at(12, 13, 1900, 100)};
        struct dr_segment big[] = {seg_at(10, 11, 1100, 100), seg_at(11, 12, 1500, 9u << 20),
                                   seg_at(12, 13, 1900, 100)};
        assert_int_equal(plan(gap, 2, 100000, &run), 0);
        assert_int_equal(plan(big, 3, 100000, &run), 0);
    }
    {
        /* Left by a merge cut short: (10, 20] covers (10, 11] and (11, 12];
         * the run is the merge and what follows it. */
        struct dr_segment segs[] = {seg_at(10, 11, 1100, 100), seg_at(10, 20, 1900, 100),
                                    seg_at(11, 12, 1200, 100), seg_at(20, 21, 1950, 100)};
        assert_int_equal(plan(segs, 4, 100000, &run), 2);
        assert_int_equal(run[0].after, 10);
        assert_int_equal(run[0].last, 20);
        assert_int_equal(run[1].last, 21);
        free(run);
    }
    {
        /* Overlapping shipments of two leaders join; the stored size caps
         * a run (16 MiB). */
        struct dr_segment overlap[] = {seg_at(10, 12, 1100, 100), seg_at(11, 13, 1500, 100)};
        struct dr_segment heavy[] = {seg_at(10, 11, 1100, 7u << 20), seg_at(11, 12, 1500, 7u << 20),
                                     seg_at(12, 13, 1900, 7u << 20)};
        assert_int_equal(plan(overlap, 2, 100000, &run), 2);
        free(run);
        assert_int_equal(plan(heavy, 3, 100000, &run), 2);
        assert_int_equal(run[1].last, 12);
        free(run);
    }
}

/* A catalog of snapshots at these indexes (revision = index), no segments. */
static void catalog_of_snapshots(struct dr_catalog *cat, const uint64_t *index, unsigned n)
{
    unsigned i;
    memset(cat, 0, sizeof(*cat));
    cat->snaps = calloc(n, sizeof(*cat->snaps));
    assert_non_null(cat->snaps);
    for (i = 0; i < n; i++) {
        cat->snaps[i].index = index[i];
        cat->snaps[i].revision = index[i];
    }
    cat->n_snaps = n;
}

/* The catalog kept up to date without listing: a shipment that continues
 * the newest range extends it; one after a gap starts no range (only a
 * snapshot does); a merge replaces its inputs. */
static void test_catalog_replace(void **state)
{
    struct dr_catalog cat;
    struct dr_segment segs[2] = {seg_at(10, 15, 1000, 10), seg_at(15, 20, 2000, 10)};
    struct dr_segment more = seg_at(20, 22, 3000, 10);
    struct dr_segment later = seg_at(30, 31, 4000, 10);
    struct dr_segment merged = seg_at(10, 22, 3000, 30);
    (void)state;
    catalog_of_snapshots(&cat, (uint64_t[]){10}, 1);
    assert_int_equal(dr_catalog_replace_segments(&cat, NULL, 0, segs, 2), 0);
    assert_int_equal(cat.n_ranges, 1);
    assert_int_equal(cat.ranges[0].to_index, 20);
    assert_int_equal(dr_catalog_replace_segments(&cat, NULL, 0, &more, 1), 0);
    assert_int_equal(cat.n_segs, 3);
    assert_int_equal(cat.ranges[0].to_index, 22);
    assert_int_equal(cat.ranges[0].to_revision, 22);
    assert_int_equal(dr_catalog_replace_segments(&cat, NULL, 0, &later, 1), 0);
    assert_int_equal(cat.n_ranges, 1);
    assert_int_equal(cat.ranges[0].to_index, 22);
    {
        struct dr_segment inputs[3] = {seg_at(10, 15, 1000, 10), seg_at(15, 20, 2000, 10), more};
        assert_int_equal(dr_catalog_replace_segments(&cat, inputs, 3, &merged, 1), 0);
    }
    assert_int_equal(cat.n_segs, 2);
    assert_int_equal(cat.segs[0].after, 10);
    assert_int_equal(cat.segs[0].last, 22);
    assert_int_equal(cat.segs[1].after, 30);
    assert_int_equal(cat.n_ranges, 1);
    assert_int_equal(cat.ranges[0].to_index, 22);
    dr_catalog_free(&cat);
    /* A snapshot listed before the log that leads to it was shipped: two
     * ranges, until that shipment joins them. */
    {
        struct dr_segment first = seg_at(10, 15, 1000, 10);
        struct dr_segment bridge = seg_at(15, 20, 2000, 10);
        catalog_of_snapshots(&cat, (uint64_t[]){10, 20}, 2);
        assert_int_equal(dr_catalog_replace_segments(&cat, NULL, 0, &first, 1), 0);
        assert_int_equal(cat.n_ranges, 2);
        assert_int_equal(dr_catalog_replace_segments(&cat, NULL, 0, &bridge, 1), 0);
        assert_int_equal(cat.n_ranges, 1);
        assert_int_equal(cat.ranges[0].to_index, 20);
    }
    dr_catalog_free(&cat);
}

/* A restore that listed segments since merged (and deleted) lists again and
 * goes on from where it was. */
struct collect
{
    struct buf *body;
    uint64_t last_rev;
    int64_t last_time;
};

static int reframe_cb(void *arg, const struct spool_record *r)
{
    struct collect *c = arg;
    size_t at = c->body->len;
    size_t n;
    assert_int_equal(buf_append(c->body, "\0\0\0\0", 4), 0);
    assert_int_equal(spool_record_encode(c->body, r), 0);
    n = c->body->len - at - 4;
    c->body->data[at] = (char)(n >> 24);
    c->body->data[at + 1] = (char)(n >> 16);
    c->body->data[at + 2] = (char)(n >> 8);
    c->body->data[at + 3] = (char)n;
    c->last_rev = r->revision;
    c->last_time = r->time_ms;
    return 0;
}

static void test_restore_after_merge(void **state)
{
    char url[600];
    char err[512];
    char name[DR_SEGMENT_NAME_MAX];
    struct objstore *st;
    struct dr_catalog cat;
    struct dr_target t;
    struct dr_result res;
    struct kv kv;
    struct buf body;
    struct buf out;
    struct artifact_writer w;
    struct collect c;
    uint64_t hashes[32] = {0};
    uint64_t cid = 0x1234abcd5678ef90ull;
    unsigned i;
    (void)state;
    make_tmpdir();
    snprintf(url, sizeof(url), "file://%s", tmpdir);
    assert_int_equal(objstore_open(url, NULL, &st, err, sizeof(err)), 0);
    build_history(st, cid, hashes);
    assert_int_equal(dr_catalog_load(st, cid, &cat, err, sizeof(err)), 0);
    assert_int_equal(cat.n_segs, 3);
    /* Merge (15, 20] and (20, 25] into (15, 25], as compaction does, after
     * the catalog was listed. */
    buf_init(&body);
    c.body = &body;
    for (i = 1; i < 3; i++) {
        assert_int_equal(dr_segment_read(st, &cat.segs[i], reframe_cb, &c, name, err, sizeof(err)),
                         0);
    }
    buf_init(&out);
    assert_int_equal(artifact_writer_begin(&w, ARTIFACT_SEGMENT, "{}", 2, artifact_sink_buf, &out),
                     0);
    assert_int_equal(artifact_writer_write(&w, body.data, body.len), 0);
    assert_int_equal(artifact_writer_end(&w, NULL), 0);
    dr_name_segment(cid, 15, 25, c.last_rev, c.last_time, name, sizeof(name));
    assert_int_equal(objstore_put(st, name, out.data, out.len, err, sizeof(err)), 0);
    for (i = 1; i < 3; i++) {
        dr_segment_name(&cat.segs[i], name);
        assert_int_equal(objstore_delete(st, name, err, sizeof(err)), 0);
    }
    /* From the older snapshot (revision 18 is before the newer one) and
     * from the newer, with the stale listing. */
    memset(&t, 0, sizeof(t));
    t.verify = true;
    t.revision = 18;
    kv_init(&kv);
    assert_int_equal(dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err)), 0);
    assert_int_equal(kv.rev, 18);
    assert_int_equal(kv_hash(&kv), hashes[18]);
    kv_close(&kv);
    t.revision = 0;
    kv_init(&kv);
    assert_int_equal(dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err)), 0);
    assert_int_equal(kv.rev, 25);
    assert_int_equal(kv_hash(&kv), hashes[25]);
    kv_close(&kv);
    buf_free(&body);
    buf_free(&out);
    dr_catalog_free(&cat);
    objstore_close(st);
    remove_tmpdir();
}

/* An archive whose recorded state hash differs from what replaying gives
 * (a diverged replica shipped it, or replay is broken): verification fails
 * at that entry, naming it. */
static void test_verify_detects_divergence(void **state)
{
    char url[600];
    char err[512];
    struct objstore *st;
    struct dr_catalog cat;
    struct dr_target t;
    struct dr_result res;
    struct kv kv;
    struct kv shadow;
    struct buf seg;
    uint64_t hashes[32] = {0};
    uint64_t cid = 0x42;
    (void)state;
    make_tmpdir();
    snprintf(url, sizeof(url), "file://%s", tmpdir);
    assert_int_equal(objstore_open(url, NULL, &st, err, sizeof(err)), 0);
    build_history(st, cid, hashes);
    /* One more entry, recorded with the hash of a different value. */
    kv_init(&shadow);
    buf_init(&seg);
    put_entry(&shadow, &seg, 26, 26000, "k2", "the value the cluster had");
    {
        /* Re-encode the record with a hash that cannot match. */
        struct spool_record r;
        struct buf fixed;
        unsigned char len[4];
        size_t n;
        assert_true(spool_record_decode(seg.data + 4, seg.len - 4, &r));
        r.revision = 26;
        r.hash ^= 0x5555;
        buf_init(&fixed);
        assert_int_equal(buf_append(&fixed, "\0\0\0\0", 4), 0);
        assert_int_equal(spool_record_encode(&fixed, &r), 0);
        n = fixed.len - 4;
        len[0] = (unsigned char)(n >> 24);
        len[1] = (unsigned char)(n >> 16);
        len[2] = (unsigned char)(n >> 8);
        len[3] = (unsigned char)n;
        memcpy(fixed.data, len, 4);
        upload_segment(st, &fixed, cid, 25, 26, 26, 26000);
        buf_free(&fixed);
    }
    buf_free(&seg);
    kv_close(&shadow);
    assert_int_equal(dr_catalog_load(st, cid, &cat, err, sizeof(err)), 0);
    memset(&t, 0, sizeof(t));
    t.verify = true;
    kv_init(&kv);
    assert_int_equal(dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "replaying index 26"));
    kv_close(&kv);
    /* Without per-entry checks the end state still does not pass. */
    t.verify = false;
    kv_init(&kv);
    assert_int_equal(dr_restore(st, &cat, &t, &kv, &res, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "differs"));
    kv_close(&kv);
    dr_catalog_free(&cat);
    objstore_close(st);
    remove_tmpdir();
}

static void test_seed(void **state)
{
    struct kv kv;
    struct kv back;
    struct dr_result res;
    char err[256];
    char dir[512];
    struct proto_request req;
    (void)state;
    make_tmpdir();
    snprintf(dir, sizeof(dir), "%s/new/member", tmpdir);
    kv_init(&kv);
    memset(&req, 0, sizeof(req));
    req.type = PROTO_PUT;
    req.op.type = CAIRN_OP_PUT;
    req.op.key.ptr = "a";
    req.op.key.len = 1;
    req.op.value.ptr = "1";
    req.op.value.len = 1;
    assert_int_equal(kv_apply(&kv, &req, 1000, NULL), 0);
    memset(&res, 0, sizeof(res));
    res.revision = kv.rev;
    res.hash = kv_hash(&kv);
    assert_int_equal(dr_write_seed(dir, &kv, &res, 77, err, sizeof(err)), 0);
    assert_true(kv.cluster_id != 0 && kv.cluster_id != 77);
    kv_init(&back);
    assert_int_equal(dr_load_seed(dir, &back, err, sizeof(err)), 0);
    assert_int_equal(kv_hash(&back), kv_hash(&kv));
    assert_int_equal(back.cluster_id, kv.cluster_id);
    kv_close(&back);
    /* The provisional id is marked as such in the state itself, so that a
     * member that joins before the cluster is named knows it is not, and
     * kept beside the seed. */
    assert_true((kv.cluster_id & KV_CLUSTER_PROVISIONAL) != 0);
    assert_true(dr_restored_as(dir) == kv.cluster_id);
    assert_true(dr_restored_as(tmpdir) == 0);
    /* The same point restored again: the same provisional cluster id. */
    {
        uint64_t id = kv.cluster_id;
        char dir2[600];
        kv.cluster_id = 0;
        snprintf(dir2, sizeof(dir2), "%s/other", tmpdir);
        assert_int_equal(dr_write_seed(dir2, &kv, &res, 77, err, sizeof(err)), 0);
        assert_int_equal(kv.cluster_id, id);
    }
    /* The first leader names it: an INIT that names the provisional id
     * replaces it; one naming another id, or a second one, changes nothing. */
    {
        uint64_t provisional = kv.cluster_id;
        struct proto_request init;
        memset(&init, 0, sizeof(init));
        init.type = PROTO_INIT;
        init.number = 0x1234;
        init.op.revision = provisional + 1;
        assert_int_equal(kv_apply(&kv, &init, 1000, NULL), 0);
        assert_true(kv.cluster_id == provisional);
        init.op.revision = provisional;
        assert_int_equal(kv_apply(&kv, &init, 1000, NULL), 0);
        assert_true(kv.cluster_id == 0x1234);
        init.number = 0x5678;
        assert_int_equal(kv_apply(&kv, &init, 1000, NULL), 0);
        assert_true(kv.cluster_id == 0x1234);
    }
    /* No seed: 1. */
    kv_init(&back);
    assert_int_equal(dr_load_seed(tmpdir, &back, err, sizeof(err)), 1);
    kv_close(&back);
    kv_close(&kv);
    remove_tmpdir();
}

static void test_parsers(void **state)
{
    struct dr_tier tiers[DR_TIERS_MAX];
    unsigned n = 0;
    char err[256];
    uint64_t ms;
    int64_t t;
    (void)state;
    assert_int_equal(dr_parse_retention("48h:all,30d:1d,365d:30d", tiers, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_int_equal(tiers[0].window_ms, 48 * 3600000ull);
    assert_int_equal(tiers[0].every_ms, 0);
    assert_int_equal(tiers[1].every_ms, 86400000ull);
    assert_int_equal(tiers[2].window_ms, 365 * 86400000ull);
    assert_int_equal(dr_parse_retention("", tiers, &n, err, sizeof(err)), -1);
    assert_int_equal(dr_parse_retention("48h", tiers, &n, err, sizeof(err)), -1);
    assert_int_equal(dr_parse_retention("48h:sometimes", tiers, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "sometimes"));
    assert_int_equal(dr_parse_retention("30d:1d,48h:all", tiers, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "grow"));
    assert_int_equal(dr_parse_duration("90s", 3, &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(dr_parse_duration("250", 3, &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(dr_parse_duration("5x", 2, &ms), -1);
    assert_int_equal(dr_parse_time("2026-11-22T10:00:00Z", &t), 0);
    assert_int_equal(t, 1795341600000ll);
    assert_int_equal(dr_parse_time("2026-11-22T11:00:00.250+01:00", &t), 0);
    assert_int_equal(t, 1795341600250ll);
    assert_int_equal(dr_parse_time("1795341600000", &t), 0);
    assert_int_equal(t, 1795341600000ll);
    assert_int_equal(dr_parse_time("yesterday", &t), -1);
    assert_int_equal(dr_parse_time("2026-11-22 10:00:00", &t), -1);
}

static void test_retention_plan(void **state)
{
    struct dr_catalog cat;
    struct dr_tier tiers[DR_TIERS_MAX];
    unsigned n = 0;
    char err[256];
    bool keep[200];
    uint64_t floor;
    int64_t day = 86400000;
    int64_t now = 400 * day;
    unsigned i;
    unsigned kept = 0;
    (void)state;
    assert_int_equal(dr_parse_retention("48h:all,30d:1d,365d:30d", tiers, &n, err, sizeof(err)), 0);
    memset(&cat, 0, sizeof(cat));
    /* A snapshot every 12 hours for 400 days. */
    cat.n_snaps = 800;
    cat.snaps = calloc(cat.n_snaps, sizeof(*cat.snaps));
    for (i = 0; i < cat.n_snaps; i++) {
        cat.snaps[i].time_ms = (int64_t)i * day / 2;
        cat.snaps[i].index = 1000 + i;
    }
    {
        bool *k = calloc(cat.n_snaps, sizeof(*k));
        assert_non_null(k);
        dr_retention_plan(&cat, tiers, n, now, k, &floor);
        for (i = 0; i < cat.n_snaps; i++) {
            int64_t age = now - cat.snaps[i].time_ms;
            kept += k[i];
            if (age <= 2 * day) {
                assert_true(k[i]); /* every one in the first 48 h */
            }
            if (age > 365 * day) {
                assert_false(k[i]);
            }
        }
        assert_true(k[cat.n_snaps - 1]);
        /* 5 in 48 h, ~28 daily, ~11 monthly. */
        assert_in_range(kept, 40, 48);
        /* The log stays from the newest kept snapshot older than 48 h. */
        assert_true(floor < cat.snaps[cat.n_snaps - 5].index);
        assert_true(floor >= cat.snaps[cat.n_snaps - 8].index);
        free(k);
    }
    (void)keep;
    /* Only old snapshots: the newest stays anyway. */
    for (i = 0; i < cat.n_snaps; i++) {
        cat.snaps[i].time_ms = 0;
    }
    {
        bool *k = calloc(cat.n_snaps, sizeof(*k));
        dr_retention_plan(&cat, tiers, n, now * 10, k, &floor);
        kept = 0;
        for (i = 0; i < cat.n_snaps; i++) {
            kept += k[i];
        }
        assert_int_equal(kept, 1);
        assert_true(k[cat.n_snaps - 1]);
        assert_int_equal(floor, cat.snaps[cat.n_snaps - 1].index);
        free(k);
    }
    free(cat.snaps);
}

/* A snapshot written by dr_snapshot_write (what cairnd's backups and
 * downloads write) loads back from a file with the same state; damage,
 * truncation and a log segment in its place are refused. */
static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_snapshot_file(void **state)
{
    struct kv kv;
    struct kv back;
    struct kv_capture *cap;
    struct dr_snapshot sn;
    struct dr_snapshot got;
    struct buf seg;
    struct buf file;
    char path[300];
    char err[512];
    char value[64];
    int fd;
    (void)state;
    make_tmpdir();
    kv_init(&kv);
    buf_init(&seg);
    for (int i = 0; i < 300; i++) {
        char key[32];
        snprintf(key, sizeof(key), "k/%03d", i % 100);
        snprintf(value, sizeof(value), "value %d", i);
        put_entry(&kv, &seg, (uint64_t)i + 1, 1000 + i, key, value);
    }
    memset(&sn, 0, sizeof(sn));
    sn.cluster_id = 0x1234;
    sn.revision = kv.rev;
    sn.index = 300;
    sn.term = 2;
    sn.time_ms = 5000;
    sn.keys = kv.nodes;
    sn.versions = kv.total_versions;
    sn.state_hash = kv_hash(&kv);
    assert_int_equal(kv_capture(&kv, &cap), 0);
    snprintf(path, sizeof(path), "%s/a.snap", tmpdir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(dr_snapshot_write(cap, &sn, fd, err, sizeof(err)), 0);
    close(fd);
    kv_capture_release(&kv, cap);

    kv_init(&back);
    assert_int_equal(dr_snapshot_file_load(path, &back, &got, err, sizeof(err)), 0);
    assert_int_equal(kv_hash(&back), kv_hash(&kv));
    assert_int_equal(back.rev, kv.rev);
    assert_int_equal(got.revision, kv.rev);
    assert_int_equal(got.cluster_id, 0x1234);
    assert_int_equal(got.index, 300);
    assert_int_equal(got.versions, kv.total_versions);
    assert_int_equal(got.bytes_stored, sn.bytes_stored);
    assert_string_equal(got.sha256, sn.sha256);
    kv_close(&back);

    /* The file's bytes, damaged one way at a time. */
    buf_init(&file);
    {
        FILE *f = fopen(path, "rb");
        char chunk[4096];
        size_t n;
        assert_non_null(f);
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
            assert_int_equal(buf_append(&file, chunk, n), 0);
        }
        fclose(f);
    }
    snprintf(path, sizeof(path), "%s/bad.snap", tmpdir);
    file.data[file.len / 2] ^= 0x40;
    write_file(path, file.data, file.len);
    kv_init(&back);
    assert_int_equal(dr_snapshot_file_load(path, &back, &got, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "checksum mismatch"));
    assert_int_equal(back.rev, 0);
    file.data[file.len / 2] ^= 0x40;
    write_file(path, file.data, file.len - 100);
    assert_int_equal(dr_snapshot_file_load(path, &back, &got, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "checksum mismatch"));
    write_file(path, "", 0);
    assert_int_equal(dr_snapshot_file_load(path, &back, &got, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "truncated"));
    assert_int_equal(dr_snapshot_file_load(tmpdir, &back, &got, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is a directory, not a snapshot file"));
    snprintf(path, sizeof(path), "%s/none.snap", tmpdir);
    assert_int_equal(dr_snapshot_file_load(path, &back, &got, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "No such file"));
    /* A log segment is an artifact too, but not a snapshot. */
    {
        struct buf out;
        struct artifact_writer w;
        unsigned char sha[32];
        buf_init(&out);
        assert_int_equal(
            artifact_writer_begin(&w, ARTIFACT_SEGMENT, "{}", 2, artifact_sink_buf, &out), 0);
        assert_int_equal(artifact_writer_write(&w, seg.data, seg.len), 0);
        assert_int_equal(artifact_writer_end(&w, sha), 0);
        snprintf(path, sizeof(path), "%s/seg.snap", tmpdir);
        write_file(path, out.data, out.len);
        assert_int_equal(dr_snapshot_file_load(path, &back, &got, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "not a snapshot"));
        buf_free(&out);
    }
    assert_int_equal(back.rev, 0);
    kv_close(&back);
    buf_free(&file);
    buf_free(&seg);
    kv_close(&kv);
    remove_tmpdir();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_artifact_round_trip),
        cmocka_unit_test(test_artifact_refuses_damage),
        cmocka_unit_test(test_spool),
        cmocka_unit_test(test_spool_bound),
        cmocka_unit_test(test_archive_restore),
        cmocka_unit_test(test_catalog_ranges),
        cmocka_unit_test(test_compact_plan),
        cmocka_unit_test(test_catalog_replace),
        cmocka_unit_test(test_restore_after_merge),
        cmocka_unit_test(test_verify_detects_divergence),
        cmocka_unit_test(test_seed),
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_retention_plan),
        cmocka_unit_test(test_snapshot_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
