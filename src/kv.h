/*
 * kv: the versioned key space. Pure data structure, no I/O, deterministic:
 * applying the same committed requests in the same order on every node gives
 * the same state (this is what the Raft state machine relies on).
 *
 * Every write request that changes something gets the next global revision
 * (a transaction is one revision). Each key keeps its versions oldest first:
 * (mod_revision, create_revision, version, time, value or tombstone). How
 * many past versions stay is decided by two independent rules:
 *
 *  - retention: a table of policies (prefix, max_versions, max_age_ms),
 *    replicated through the log so every node trims identically. The policy
 *    with the longest prefix of a key decides for it; the policy for "" always
 *    exists (by default 10 versions, no age limit). A past version (any but
 *    the key's newest, which always stays) is discarded when it is not among
 *    the newest max_versions versions (when max_versions > 0), or when it is
 *    more than max_age_ms older than the time of the log entry being applied
 *    (when max_age_ms > 0). That time is the proposer's clock, recorded in
 *    the entry, so every replica decides alike; kv never reads a clock.
 *    Versions go oldest first: a version stays while an older one does, which
 *    matters only if proposers' clocks stepped back across a leader change
 *    (history is then kept longer, never shorter). Keys are trimmed when
 *    written, when a policy covering them is set or removed, and by a sweep
 *    entry (PROTO_SWEEP), which the leader proposes periodically so that age
 *    limits apply to keys nobody writes;
 *  - compaction: kv_compact(R) discards every version older than the newest
 *    version at or before R, and refuses reads below R.
 *
 * A read at a past revision that needs a discarded version answers
 * CAIRN_ECOMPACTED rather than a wrong value. Keys are ordered bytewise in a
 * skip list, so prefix ranges are ordered scans.
 *
 * The state also holds a cluster id: 0 until the first PROTO_INIT entry with
 * a nonzero number sets it, and never changed after. It is replicated like
 * everything else (snapshots carry it), so every node, and every backup made
 * from any node, names the cluster whose history it holds.
 *
 * kv_hash() identifies the whole state in O(1): it mixes the revisions and
 * the cluster id with a sum (mod 2^64) of one 64-bit hash per item (every
 * retained version, every key's floor, every retention policy). The sum is
 * kept up to date by every change, so the hash can be read after each
 * applied entry or on every status request; kv_hash_full() computes the
 * same value from scratch.
 *
 * Results are written straight into a protocol response (proto_writer), so
 * no intermediate copy of values is made.
 */
#ifndef CAIRN_KV_H
#define CAIRN_KV_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

typedef uint64_t kv_rev;

#define KV_LEVEL_MAX 24
/* The policy for "" unless set otherwise. */
#define KV_RETAIN_VERSIONS_DEFAULT CAIRN_RETENTION_VERSIONS_DEFAULT
/* Retention policies a key space holds, the one for "" included. */
#define KV_RETENTION_POLICIES_MAX CAIRN_RETENTION_POLICIES_MAX

struct kv_version
{
    kv_rev mod_rev;
    kv_rev create_rev;
    uint64_t version;
    int64_t time_ms;
    uint64_t item_hash; /* this version's term of kv->items_hash, kept so removal needs no rehash */
    char *value;        /* owned; NULL for tombstones and empty values */
    uint32_t value_len;
    bool deleted; /* a tombstone */
};

struct kv_key
{
    char *key; /* owned */
    uint32_t key_len;
    uint32_t n_versions;
    uint32_t cap_versions;
    struct kv_version *versions; /* owned, oldest first */
    kv_rev floor_rev;            /* newest discarded version's mod_rev, 0 if none */
    uint32_t capture_mark;       /* the sliced capture's epoch once it holds this key */
    bool floor_deleted;          /* that version was a tombstone */
    uint8_t level;
    struct kv_key *next[]; /* skip list forward pointers, `level` of them */
};

/* A retention policy for every key under prefix (see the top of this file). */
struct kv_retention
{
    char *prefix; /* owned; NULL when prefix_len is 0 */
    uint32_t prefix_len;
    uint64_t max_versions; /* 0: no limit on the count; at most UINT32_MAX */
    uint64_t max_age_ms;   /* 0: no limit on the age */
};

/* Who learns of every change as it is applied: the watch hub. Callbacks run
 * inside kv_apply / kv_snapshot_decode and must not modify the key space. */
struct kv_observer
{
    void *data; /* borrowed */
    /* Key k changed: v is its new version (a tombstone for a deletion) and
     * prev its previous live version, NULL when there was none. Called before
     * retention trims k, so prev is always available. Both pointers are valid
     * only during the call. */
    void (*change)(void *data, const struct kv_key *k, const struct kv_version *v,
                   const struct kv_version *prev);
    /* Every change of revision rev has been reported. */
    void (*revision_done)(void *data, kv_rev rev);
    /* The whole state was replaced (a snapshot was installed). */
    void (*restored)(void *data);
};

/* The top bit of a cluster id marks a restored state's provisional id;
 * ids that PROTO_INIT gives have it clear. Every node can tell from the
 * state alone whether the cluster is named, members that joined later too. */
#define KV_CLUSTER_PROVISIONAL (UINT64_C(1) << 63)

struct kv
{
    struct kv_key *head; /* owned: sentinel of KV_LEVEL_MAX levels */
    uint8_t level;       /* highest level in use */
    kv_rev rev;
    kv_rev compact_rev;
    /* 0 until PROTO_INIT sets it; then never changes, unless it is a
     * restored state's provisional id (KV_CLUSTER_PROVISIONAL set), which
     * the first PROTO_INIT naming it replaces (src/dr_archive.h). */
    uint64_t cluster_id;
    /* owned: sorted bytewise by prefix, so policies[0] is the one for "" */
    struct kv_retention *policies;
    uint32_t n_policies;
    uint32_t n_aged_policies; /* policies with max_age_ms > 0: sweeps matter */
    uint64_t live_keys;       /* keys whose newest version is not a tombstone */
    uint64_t nodes;           /* keys with any retained version */
    uint64_t value_bytes;     /* bytes of keys and values over all retained versions */
    uint64_t total_versions;  /* retained versions over all keys */
    /* Sum (mod 2^64) of the item hashes of every retained version, every key
     * floor and every retention policy: what kv_hash() needs beyond the
     * revisions and the cluster id. Kept by every change. */
    uint64_t items_hash;
    uint64_t rng; /* skip list level choice; not part of the state */
    /* Snapshot captures alive, and memory whose release waits for them. */
    unsigned captures;
    /* The capture being taken in slices, if any (kv_capture_begin), and the
     * epoch that marks the keys it already holds. */
    struct kv_capture *slicing;
    uint32_t capture_epoch;
    void **deferred; /* owned */
    size_t n_deferred;
    size_t cap_deferred;
    struct kv_observer *observer; /* borrowed; NULL when nobody watches */
};

/* A consistent image of the state at one revision, for encoding a snapshot
 * on another thread while the loop goes on applying entries. */
struct kv_capture;

/* Limits applied by kv on what it returns. */
#define KV_RANGE_LIMIT_MAX 100000

int kv_init(struct kv *kv);
void kv_close(struct kv *kv);

/* Apply a committed write request (PUT, DEL, TXN, COMPACT, RETENTION, SWEEP,
 * INIT) with the proposer's wall clock time_ms. When w is not NULL, the full
 * response for request id is packed into it (the caller began it and ends
 * it). Returns 0, or a CAIRN_E* code when the request was refused without
 * changing anything (then nothing was packed and the caller packs an error).
 * Requests are validated by the proposer, but committed bytes may still be
 * anything: nothing here asserts on them.
 *
 * RETENTION sets the policy for prefix op.key to keep `number` versions and
 * versions younger than age_ms, and trims every key under the prefix at once;
 * with number and age_ms both 0 it removes that policy (CAIRN_ENOTFOUND when
 * there is none), or for "" restores the default. It refuses more than
 * UINT32_MAX versions (CAIRN_EINVAL) and a new policy beyond
 * KV_RETENTION_POLICIES_MAX (CAIRN_ETOOLARGE). SWEEP trims every key by its
 * policy at time_ms. INIT sets the cluster id to `number` when it is still 0
 * and number is not (otherwise it changes nothing, and still succeeds).
 * RETENTION, SWEEP and INIT create no revision; like COMPACT they answer an
 * empty success. */
int kv_apply(struct kv *kv, const struct proto_request *req, int64_t time_ms,
             struct proto_writer *w);

/* Answer a read request (GET, HISTORY, or a read-only TXN) from the current
 * state into w. Returns 0 or a CAIRN_E* code (nothing packed). */
int kv_read(struct kv *kv, const struct proto_request *req, struct proto_writer *w);

/* True when a TXN request contains no put or delete. */
bool kv_txn_is_read_only(const struct proto_request *req);

/* Serialize the whole state (keys, retained history, revisions, settings,
 * cluster id) as msgpack into out. Returns 0 or CAIRN_ENOMEM. */
int kv_snapshot_encode(struct kv *kv, struct buf *out);

/* The same in three steps, so that the encoding can run on another thread:
 * kv_capture (loop thread, O(keys + versions), copies no value), then
 * kv_capture_encode (any thread; it reads only the capture and the values it
 * borrows, which stay alive until release), then kv_capture_release (loop
 * thread). The key space may change freely in between. */
int kv_capture(struct kv *kv, struct kv_capture **out);

/* kv_capture in slices, so that a large key space never stalls the loop:
 * kv_capture_begin records the revision, counts and settings (O(1)); then
 * each kv_capture_step (loop thread) walks at most `budget` more keys and
 * returns 0 while keys remain, 1 once the capture is complete, or a CAIRN_E*
 * code when it cannot complete (CAIRN_ESHUTDOWN: the state was replaced or
 * closed; CAIRN_ENOMEM; CAIRN_EINTERNAL: the counts do not add up). The key
 * space may change between steps: a change that would discard a version the
 * capture still needs first copies that key's versions as of the capture's
 * revision, so the result is the state at kv_capture_begin, exactly as
 * kv_capture would have taken it then. One sliced capture at a time
 * (CAIRN_EBUSY otherwise); kv_capture may run meanwhile. Release it with
 * kv_capture_release, complete or not. */
int kv_capture_begin(struct kv *kv, struct kv_capture **out);
int kv_capture_step(struct kv *kv, struct kv_capture *cap, uint64_t budget);

int kv_capture_encode(const struct kv_capture *cap, struct buf *out);
/* The same encoding without holding it: kv_capture_encoded_size gives its
 * length (a walk that writes nothing), and kv_capture_encode_to hands it to
 * sink in pieces of up to 256 KiB (larger only for a single larger value),
 * in order. A non-zero return of sink stops the encoding and is returned
 * as it is; otherwise 0 or a CAIRN_E* code. */
typedef int (*kv_encode_sink)(void *arg, const void *data, size_t len);
int kv_capture_encoded_size(const struct kv_capture *cap, uint64_t *size);
int kv_capture_encode_to(const struct kv_capture *cap, kv_encode_sink sink, void *arg);
void kv_capture_release(struct kv *kv, struct kv_capture *cap);

/* Replace the state with a decoded snapshot. On error (CAIRN_EMALFORMED,
 * CAIRN_ENOMEM) kv is left unchanged. */
int kv_snapshot_decode(struct kv *kv, const char *data, size_t len);

/* For the watch hub: the first key >= key (NULL at the end), the next one,
 * and the live version of k at revision rev (*out NULL when k did not exist
 * or was deleted then; CAIRN_ECOMPACTED when that is no longer known). */
const struct kv_key *kv_seek(const struct kv *kv, const char *key, uint32_t len);
const struct kv_key *kv_next(const struct kv_key *k);
int kv_version_at(const struct kv_key *k, kv_rev rev, const struct kv_version **out);
/* A kv_key's version as a protocol kv (pointers into k and v). */
void kv_to_cairn_kv(const struct kv_key *k, const struct kv_version *v, struct cairn_kv *out);

/* The policy set exactly for prefix, NULL when there is none. */
const struct kv_retention *kv_retention_find(const struct kv *kv, const char *prefix, uint32_t len);
/* The policy that decides for key: the one with the longest prefix of it. */
const struct kv_retention *kv_retention_for(const struct kv *kv, const char *key, uint32_t len);

/* A 64-bit hash of the whole state, equal on replicas with equal state: the
 * revision, the compact revision, the cluster id, the retention policies, and
 * every retained version and key floor (with its time and value), which is
 * all a snapshot carries. O(1): it reads the incrementally kept items_hash.
 * The value is only meaningful between nodes running the same definition (it
 * changed when it became incremental). */
uint64_t kv_hash(const struct kv *kv);

/* The same value as kv_hash(), computed from scratch by walking every policy,
 * key and version: O(keys + versions + bytes). For tests and debugging (a
 * mismatch with kv_hash() means a change forgot to update items_hash), not
 * for the loop thread. */
uint64_t kv_hash_full(const struct kv *kv);

#endif /* CAIRN_KV_H */
