/*
 * dr_archive: what lies in the object store and how to get a key space back
 * from it (docs/disaster-recovery.md). Shared by cairnd (shipping,
 * verification, bootstrap from object storage) and cairnctl (snapshot list,
 * verify, restore). Blocking: never call it on the loop thread.
 *
 * Layout under the store's root, per cluster (id in 16 hex digits):
 *
 *   <cluster>/snap/<index>.snap   a snapshot artifact (src/artifact.h)
 *   <cluster>/snap/<index>.json   its manifest, written after the artifact:
 *                                 a snapshot exists once its manifest does
 *   <cluster>/log/<after>-<last>-<revision>-<time_ms>.seg
 *                                 a log segment: every command entry with a
 *                                 raft index in (after, last]; revision and
 *                                 time are those after its last entry
 *
 * Numbers are zero-padded decimal (20 digits, time 13), so names sort in
 * index order. A chain is a snapshot followed by segments whose ranges join
 * up; overlapping segments (two nodes shipped around a leader change) hold
 * the same committed entries, and the replay skips indexes it has applied.
 */
#ifndef CAIRN_DR_ARCHIVE_H
#define CAIRN_DR_ARCHIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "kv.h"
#include "objstore.h"
#include "spool.h"

#define DR_FORMAT 1
/* The most a snapshot's body may decompress to. */
#define DR_SNAPSHOT_RAW_MAX ((size_t)16 << 30)

struct dr_snapshot
{
    char name[96]; /* the artifact's object name */
    uint64_t cluster_id;
    uint64_t revision;
    uint64_t index;
    uint64_t term;
    int64_t time_ms;
    uint64_t keys;
    uint64_t versions;
    uint64_t bytes_raw;
    uint64_t bytes_stored;
    uint64_t state_hash;
    char sha256[65];
};

struct dr_segment
{
    uint64_t cluster_id; /* its name follows from these (dr_segment_name) */
    uint64_t after;
    uint64_t last;
    uint64_t revision; /* after its last entry */
    int64_t time_ms;
    uint64_t size;
};

/* A contiguous stretch that can be restored to any point of. */
struct dr_range
{
    uint64_t from_index; /* its first snapshot's */
    uint64_t from_revision;
    int64_t from_time_ms;
    uint64_t to_revision;
    int64_t to_time_ms;
    uint64_t to_index;
};

struct dr_catalog
{
    uint64_t cluster_id;
    struct dr_snapshot *snaps; /* oldest first */
    unsigned n_snaps;
    struct dr_segment *segs; /* by after, then last */
    unsigned n_segs;
    struct dr_range *ranges; /* oldest first, disjoint */
    unsigned n_ranges;
    /* Every cluster with objects in the store (a restored cluster backs up
     * under its own id), the chosen one included; at most 16 listed. */
    uint64_t clusters[16];
    unsigned n_clusters;
};

/* Object names. */
void dr_name_snapshot(uint64_t cluster_id, uint64_t index, char *out, size_t len);
void dr_name_manifest(uint64_t cluster_id, uint64_t index, char *out, size_t len);
void dr_name_segment(uint64_t cluster_id, uint64_t after, uint64_t last, uint64_t revision,
                     int64_t time_ms, char *out, size_t len);
#define DR_SEGMENT_NAME_MAX 128
void dr_segment_name(const struct dr_segment *sg, char out[DR_SEGMENT_NAME_MAX]);

/* Manifests as JSON: for the store (with name, size and checksum) and for
 * the artifact's header (without). */
int dr_manifest_json(const struct dr_snapshot *s, bool full, struct buf *out);
int dr_manifest_parse(const char *text, size_t len, struct dr_snapshot *s, char *err,
                      size_t errlen);

/* List the store. cluster_id 0: the only cluster there, or the one with the
 * newest snapshot when there are several. Returns 0 (an empty catalog when
 * nothing is there) or -1 with err. */
int dr_catalog_load(struct objstore *st, uint64_t cluster_id, struct dr_catalog *cat, char *err,
                    size_t errlen);
void dr_catalog_free(struct dr_catalog *cat);
/* Add a snapshot just uploaded (the listing is refreshed later). */
void dr_catalog_add(struct dr_catalog *cat, const struct dr_snapshot *s);
/* Read a segment from the store and pass each record to cb (spool.h), which
 * returns 0 to go on or non-zero to stop. name gets the segment's object
 * name. Returns 0, the callback's value when it stopped, DR_EMISSING when
 * the object is gone (pruned or merged since the listing), or -1 with err. */
#define DR_EMISSING (-2)
int dr_segment_read(struct objstore *st, const struct dr_segment *sg, spool_read_cb cb, void *arg,
                    char name[DR_SEGMENT_NAME_MAX], char *err, size_t errlen);

/* Replace segments (matched by after and last; removed sorted as the
 * catalog is, by after then last) by others, keeping the order and the
 * ranges: segments shipped (nothing removed) or a compaction (its inputs
 * removed, its output added). Returns -1 when out of memory (the catalog is
 * then as it was; the next listing corrects it). */
int dr_catalog_replace_segments(struct dr_catalog *cat, const struct dr_segment *removed,
                                unsigned n_removed, const struct dr_segment *added,
                                unsigned n_added);

/* Compaction (docs/disaster-recovery.md, "Compaction"): the oldest run of
 * at least two segments that follow each other in the log, all in one
 * window of window_ms (by the time of their last entry) that ended more
 * than window_ms / 5 before now_ms, small enough to merge. Windows of 12 x
 * window_ms are tried first, then window_ms. Segments a run's first
 * segment already covers (left by a compaction cut short) are passed over.
 * Returns the number of segments copied to *run (malloc'd; 0 and NULL when
 * there is nothing to merge), or -1 when out of memory. */
#define DR_COMPACT_MAX_SEGMENTS 500       /* a job of at most ~10 s against a store 20 ms away */
#define DR_COMPACT_MAX_STORED (16u << 20) /* the inputs' stored bytes */
#define DR_COMPACT_BIG (8u << 20)         /* a segment this large is left alone */
int dr_compact_plan(const struct dr_catalog *cat, uint64_t window_ms, int64_t now_ms,
                    struct dr_segment **run);

/* The newest snapshot, NULL when none. */
const struct dr_snapshot *dr_catalog_newest(const struct dr_catalog *cat);

/* Retention tiers (--backup-retention "48h:all,30d:1d,365d:30d"): keep
 * every snapshot younger than window_ms when every_ms is 0, else one per
 * every_ms bucket (the oldest in it). */
#define DR_TIERS_MAX 8
struct dr_tier
{
    uint64_t window_ms;
    uint64_t every_ms;
};
int dr_parse_retention(const char *text, struct dr_tier *tiers, unsigned *n_tiers, char *errmsg,
                       size_t len);
/* What retention keeps: keep[i] for cat->snaps[i] (the newest always), and
 * *log_floor, the index at or below which log segments may go: those
 * before the kept snapshot that starts the point-in-time window (the first
 * tier, when it keeps all), and always those before the oldest kept. */
void dr_retention_plan(const struct dr_catalog *cat, const struct dr_tier *tiers, unsigned n_tiers,
                       int64_t now_ms, bool *keep, uint64_t *log_floor);

/* What to restore to. */
struct dr_target
{
    uint64_t revision; /* 0: not by revision */
    int64_t time_ms;   /* 0: not by time */
    bool fallback;     /* a bad snapshot: use an earlier one and more log */
    bool verify;       /* stop at the first state hash that differs */
};

struct dr_result
{
    const struct dr_snapshot *snapshot; /* the one used (in the catalog) */
    uint64_t revision;
    uint64_t index;
    int64_t time_ms;
    uint64_t entries; /* replayed from segments */
    uint64_t segments;
    uint64_t hash;     /* kv_hash at the end */
    uint64_t expected; /* what the cluster recorded there */
    unsigned skipped_snapshots;
    /* Restoring to a time after the archive's end: restored to the end,
     * which is all the archive knows of (a lost cluster's last second). */
    bool ended_before_time;
};

/* Where the restore library's warnings go (an ignored manifest, a fallback
 * to an earlier snapshot): one sentence, no newline. cairnd sends them to its
 * log, cairnctl to stderr under its own name; by default they go to stderr.
 * Set once, before any restore runs. */
void dr_set_warn(void (*warn)(const char *msg));

/* Build in kv (freshly initialized by the caller) the store as it was at
 * the target: the newest snapshot at or before it, then archived entries.
 * Checks every artifact's checksum, the snapshot's state hash, and the
 * revision and state hash after every replayed entry. Returns 0 or -1 with a
 * sentence in err naming the object at fault. */
int dr_restore(struct objstore *st, const struct dr_catalog *cat, const struct dr_target *t,
               struct kv *kv, struct dr_result *res, char *err, size_t errlen);

/* Write the snapshot artifact of a complete capture to fd (any thread):
 * the header is snap's manifest; snap's bytes_raw, bytes_stored and sha256
 * are filled in. Returns 0, or -1 with the reason in err. */
int dr_snapshot_write(const struct kv_capture *cap, struct dr_snapshot *snap, int fd, char *err,
                      size_t errlen);
/* Load a snapshot artifact from a local file (cairnctl snapshot save FILE)
 * into kv (freshly initialized): checks its SHA-256, its header, and the
 * state hash and revision the header names. out receives the header's
 * manifest, with the file's size and SHA-256. Returns 0 or -1 with a
 * sentence in err. */
int dr_snapshot_file_load(const char *path, struct kv *kv, struct dr_snapshot *out, char *err,
                          size_t errlen);

/* A restore from such a file: what dr_restore gives, for dr_write_seed (sn
 * receives the file's manifest and must outlive res). */
int dr_restore_file(const char *path, struct kv *kv, struct dr_snapshot *sn, struct dr_result *res,
                    char *err, size_t errlen);
/* A --from or --restore-from that names no store (no "scheme://") is a
 * snapshot file. */
bool dr_is_snapshot_file(const char *from);

/* The data directory of a new cluster member from a restored key space: a
 * seed file cairnd loads before raft starts (src/server.c). The key space
 * gets a provisional cluster id derived from the old one and the point
 * restored (KV_CLUSTER_PROVISIONAL set), so that every member restored to
 * the same point agrees on it and a member restored to another point is
 * told apart; it is also kept in DR_RESTORED_AS_FILE. The first leader then names the cluster with
 * a random id through the log (PROTO_INIT replacing the provisional one), so that two restores of
 * the same point never share an id, nor their backups. */
#define DR_SEED_FILE "seed.cairnsnap"
#define DR_RESTORED_AS_FILE "restored-as"
int dr_write_seed(const char *data_dir, struct kv *kv, const struct dr_result *res,
                  uint64_t old_cluster_id, char *err, size_t errlen);
/* Load a seed into kv; returns 1 when there was none, 0 loaded, -1 error. */
int dr_load_seed(const char *data_dir, struct kv *kv, char *err, size_t errlen);
/* The provisional id of a restored data directory (0: not restored). */
uint64_t dr_restored_as(const char *data_dir);
/* The point a data directory's seed holds, read from its header alone (the
 * whole seed is checked when it is loaded): its provisional cluster id and
 * revision. Returns 0, 1 when there is no seed, -1 when its header cannot be
 * read (the load then says why). */
int dr_seed_point(const char *data_dir, uint64_t *cluster_id, uint64_t *revision);

/* Parse "90s", "15m", "48h", "30d", "1y" or milliseconds. */
int dr_parse_duration(const char *text, size_t len, uint64_t *ms);
/* Parse RFC 3339 ("2026-11-22T10:00:00Z", offsets allowed) or milliseconds
 * since the epoch. */
int dr_parse_time(const char *text, int64_t *ms);

/* 16 lowercase hex digits, and back. */
void dr_hex64(uint64_t v, char out[17]);
bool dr_parse_hex64(const char *s, size_t len, uint64_t *out);

#endif /* CAIRN_DR_ARCHIVE_H */
