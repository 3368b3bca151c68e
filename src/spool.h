/*
 * spool: this node's backlog of applied log entries not yet known to be in
 * the object store's log archive (docs/disaster-recovery.md). Every node
 * keeps one, so whichever node becomes responsible for shipping (the leader)
 * has the entries the previous one had not shipped yet.
 *
 * The spool is a directory of append-only files named by the index of their
 * first record. A record is a 4-byte big-endian length and msgpack
 * [index, time_ms, revision, state_hash, entry]: the raft index, the
 * proposer's time, the revision and state hash after applying it, and the
 * log entry's bytes exactly as raft committed them.
 *
 * Continuity: the spool holds every command entry with an index in
 * (base, last]. A gap (entries that were never spooled: a snapshot installed
 * from the leader, a backlog dropped for exceeding its bound) resets it to
 * empty with a new base; shipping then needs a fresh snapshot to start the
 * archive's chain again.
 *
 * Bound: at most max_bytes on disk; beyond, the oldest files go (a gap).
 * Writes are buffered and written at spool_flush (the loop calls it once per
 * iteration); spool_flush(sync) also fdatasyncs, which server.c does before
 * raft takes a snapshot, so entries raft compacts away are on disk here.
 *
 * The loop thread owns the struct; another thread may read closed ranges of
 * the files with spool_read, given the directory.
 */
#ifndef CAIRN_SPOOL_H
#define CAIRN_SPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

#define SPOOL_FILE_MAX (8u * 1024u * 1024u)

struct spool_record
{
    uint64_t index;
    int64_t time_ms;
    uint64_t revision;
    uint64_t hash;
    const char *entry;
    uint32_t entry_len;
};

struct spool_file
{
    uint64_t first; /* index of its first record */
    uint64_t bytes;
};

struct spool
{
    char *dir; /* owned */
    uint64_t base;
    uint64_t last;
    uint64_t max_bytes;
    uint64_t bytes;           /* on disk and pending */
    uint64_t gaps;            /* resets since start */
    struct spool_file *files; /* owned, oldest first */
    unsigned n_files;
    unsigned cap_files;
    int fd; /* the newest file, open for appending; -1 */
    struct buf pending;
};

/* Open (creating) dir, loading what an earlier run left. A torn record at
 * the end of the newest file is cut off. Returns 0 or -1 with err. */
int spool_open(struct spool *sp, const char *dir, uint64_t max_bytes, char *err, size_t errlen);
void spool_close(struct spool *sp);

/* Append a record (index > sp->last). Returns 0 or -1 (out of memory). */
int spool_append(struct spool *sp, const struct spool_record *r);
/* Drop everything; the spool now continues after base. */
void spool_reset(struct spool *sp, uint64_t base);
/* Write pending records (and fdatasync when sync). Returns 0 or -1; on a
 * write error the spool resets (a gap) rather than keep a hole. */
int spool_flush(struct spool *sp, bool sync);
/* Remove files whose every record has index <= through. */
void spool_trim(struct spool *sp, uint64_t through);

/* Any thread: call cb for every record with after < index <= through, in
 * order, from the files in dir. Returns 0, -1 with err, or cb's non-zero. */
typedef int (*spool_read_cb)(void *arg, const struct spool_record *r);
int spool_read(const char *dir, uint64_t after, uint64_t through, spool_read_cb cb, void *arg,
               char *err, size_t errlen);

/* Parse one record's msgpack (no length prefix). Returns true on success. */
bool spool_record_decode(const char *data, size_t len, struct spool_record *r);
/* Append one record's msgpack (no length prefix) to out. Returns 0 or -1. */
int spool_record_encode(struct buf *out, const struct spool_record *r);

/* File helpers disaster recovery shares: read a whole file (malloc'd;
 * -1 with errno), and write all of len bytes (0 or -1 with errno). */
int spool_read_file(const char *path, char **data, size_t *len);
int spool_write_all(int fd, const void *data, size_t len);

#endif /* CAIRN_SPOOL_H */
