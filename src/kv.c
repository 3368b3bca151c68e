#include "kv.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "mpread.h"

/* A range answer stops adding keys beyond this many bytes of keys and values
 * and reports more=true, so one response always fits in a frame. */
#define KV_RANGE_BYTES_MAX (16u * 1024u * 1024u)

/* 2 replaced the single retain_versions of 1 with the policy table; 3 added
 * the cluster id. Formats 1 and 2 are still read: the policy for "" alone,
 * and cluster id 0. */
#define KV_SNAPSHOT_FORMAT 3
#define KV_SNAPSHOT_FORMAT_V2 2
#define KV_SNAPSHOT_FORMAT_V1 1

/* State hash
 *
 * kv_hash() runs for every status request (the clients' liveness ping) and
 * after every applied entry, so it cannot walk the key space. The state is
 * seen instead as a set of items, each hashed on its own:
 *
 *  - a version: key, mod_rev, create_rev, version, time_ms, deleted, value;
 *  - a key's floor, when floor_rev != 0: key, floor_rev, floor_deleted;
 *  - a retention policy: prefix, max_versions, max_age_ms.
 *
 * items_hash is the sum of their hashes mod 2^64, which does not depend on
 * order, so a change adds or subtracts only the items it touches. kv_hash()
 * then mixes rev, compact_rev, cluster_id and that sum. Policies are items
 * rather than a walk at query time: the table can hold 1,024 of them.
 *
 * An item is hashed as a canonical sequence of 64-bit words: a tag naming
 * the kind of item, then each field (booleans as 0 or 1), and each byte
 * string as its length followed by its bytes in little-endian words, the
 * last one padded with zeros (the length says where the bytes end, so no
 * field boundary can move). Each word goes through MurmurHash64A's step (a
 * bijective mix of the word, xored into the state, which is then
 * multiplied), and the result through the splitmix64 finalizer, so every
 * input bit has a say in every output bit and a sum of two items that differ
 * slightly still moves unpredictably. Words rather than bytes: hashing a
 * value's bytes is the cost a put adds, and byte-wise FNV-1a took 1.1 us
 * per KiB where this takes 0.15. The hash detects divergence between
 * replicas; it is not meant to resist anyone crafting collisions. */

#define HASH_SEED 0x9e3779b97f4a7c15ull
#define HASH_M 0xc6a4a7935bd1e995ull /* MurmurHash64A's multiplier */
/* One tag per kind of item, and one for the final mix. */
#define HASH_TAG_VERSION 0x56 /* 'V' */
#define HASH_TAG_FLOOR 0x46   /* 'F' */
#define HASH_TAG_POLICY 0x50  /* 'P' */
#define HASH_TAG_STATE 0x53   /* 'S' */

static uint64_t hash_word(uint64_t h, uint64_t x)
{
    x *= HASH_M;
    x ^= x >> 47;
    x *= HASH_M;
    return (h ^ x) * HASH_M;
}

/* len, then the bytes as little-endian words whatever the host (data may be
 * NULL when len is 0). */
static uint64_t hash_string(uint64_t h, const char *data, uint32_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    uint64_t x;
    uint32_t i;
    h = hash_word(h, len);
    for (; len >= 8; p += 8, len -= 8) {
        /* Written out, gcc and clang make this one load on little-endian
         * hosts (a loop over i they do not). */
        x = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
            (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
            (uint64_t)p[7] << 56;
        h = hash_word(h, x);
    }
    if (len > 0) {
        x = 0;
        for (i = 0; i < len; i++) {
            x |= (uint64_t)p[i] << (8 * i);
        }
        h = hash_word(h, x);
    }
    return h;
}

/* splitmix64's finalizer. */
static uint64_t hash_finish(uint64_t h)
{
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

static uint64_t version_hash(const struct kv_key *k, const struct kv_version *v)
{
    uint64_t h = hash_word(HASH_SEED, HASH_TAG_VERSION);
    h = hash_string(h, k->key, k->key_len);
    h = hash_word(h, v->mod_rev);
    h = hash_word(h, v->create_rev);
    h = hash_word(h, v->version);
    h = hash_word(h, (uint64_t)v->time_ms);
    h = hash_word(h, v->deleted ? 1 : 0);
    h = hash_string(h, v->value, v->value_len);
    return hash_finish(h);
}

/* The hash of k's floor item; the caller checked floor_rev != 0. */
static uint64_t floor_hash(const struct kv_key *k)
{
    uint64_t h = hash_word(HASH_SEED, HASH_TAG_FLOOR);
    h = hash_string(h, k->key, k->key_len);
    h = hash_word(h, k->floor_rev);
    h = hash_word(h, k->floor_deleted ? 1 : 0);
    return hash_finish(h);
}

static uint64_t policy_hash(const struct kv_retention *p)
{
    uint64_t h = hash_word(HASH_SEED, HASH_TAG_POLICY);
    h = hash_string(h, p->prefix, p->prefix_len);
    h = hash_word(h, p->max_versions);
    h = hash_word(h, p->max_age_ms);
    return hash_finish(h);
}

/* The final mix of the kv-level fields with a sum of item hashes. */
static uint64_t state_hash(const struct kv *kv, uint64_t items)
{
    uint64_t h = hash_word(HASH_SEED, HASH_TAG_STATE);
    h = hash_word(h, kv->rev);
    h = hash_word(h, kv->compact_rev);
    h = hash_word(h, kv->cluster_id);
    h = hash_word(h, items);
    return hash_finish(h);
}

/* Every change of a key's floor goes through here (0: no floor, which is
 * not an item), so items_hash follows it. */
static void set_floor(struct kv *kv, struct kv_key *k, kv_rev floor_rev, bool floor_deleted)
{
    if (k->floor_rev != 0) {
        kv->items_hash -= floor_hash(k);
    }
    k->floor_rev = floor_rev;
    k->floor_deleted = floor_deleted;
    if (k->floor_rev != 0) {
        kv->items_hash += floor_hash(k);
    }
}

/* Skip list
 *
 * Keys are ordered bytewise (memcmp, shorter first on a tie). Levels are drawn
 * with p = 1/4 from a private xorshift generator: the level of a node never
 * changes what the key space answers, so it need not be replicated. */

static int key_cmp(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
    uint32_t n = alen < blen ? alen : blen;
    int c = n > 0 ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static uint8_t random_level(struct kv *kv)
{
    uint8_t level = 1;
    uint64_t x = kv->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    kv->rng = x;
    while (level < KV_LEVEL_MAX && (x & 3) == 0) {
        level++;
        x >>= 2;
    }
    return level;
}

static struct kv_key *key_alloc(uint8_t level)
{
    struct kv_key *k = cairn_calloc(1, sizeof(*k) + level * sizeof(k->next[0]));
    if (k != NULL) {
        k->level = level;
    }
    return k;
}

/* Values and key bytes may be read by a snapshot being encoded on another
 * thread (kv_capture): while a capture is alive they are freed later, when
 * the last capture is released. Everything else (nodes, version arrays) is
 * private to the loop thread and freed at once. */
static void free_later(struct kv *kv, void *p)
{
    if (p == NULL) {
        return;
    }
    if (kv->captures == 0) {
        cairn_free(p);
        return;
    }
    if (kv->n_deferred == kv->cap_deferred) {
        size_t cap = kv->cap_deferred == 0 ? 1024 : kv->cap_deferred * 2;
        void **d = cairn_realloc(kv->deferred, cap * sizeof(*d));
        if (d == NULL) {
            /* Freeing now could pull memory from under the encoder; leaking
             * one block is the lesser harm. */
            return;
        }
        kv->deferred = d;
        kv->cap_deferred = cap;
    }
    kv->deferred[kv->n_deferred++] = p;
}

static void key_free(struct kv *kv, struct kv_key *k)
{
    uint32_t i;
    for (i = 0; i < k->n_versions; i++) {
        free_later(kv, k->versions[i].value);
    }
    cairn_free(k->versions);
    free_later(kv, k->key);
    cairn_free(k);
}

/* First node whose key is >= the given key; update[] (when not NULL) gets the
 * rightmost node before it on every level. */
static struct kv_key *find_ge(const struct kv *kv, const char *key, uint32_t len,
                              struct kv_key **update)
{
    struct kv_key *x = kv->head;
    int i;
    for (i = kv->level - 1; i >= 0; i--) {
        while (x->next[i] != NULL && key_cmp(x->next[i]->key, x->next[i]->key_len, key, len) < 0) {
            x = x->next[i];
        }
        if (update != NULL) {
            update[i] = x;
        }
    }
    return x->next[0];
}

static struct kv_key *find_exact(const struct kv *kv, const char *key, uint32_t len)
{
    struct kv_key *x = find_ge(kv, key, len, NULL);
    if (x != NULL && key_cmp(x->key, x->key_len, key, len) == 0) {
        return x;
    }
    return NULL;
}

/* Insert a new node for key; the caller checked it is absent. */
static struct kv_key *key_insert(struct kv *kv, const char *key, uint32_t len)
{
    struct kv_key *update[KV_LEVEL_MAX];
    struct kv_key *k;
    uint8_t level;
    int i;
    find_ge(kv, key, len, update);
    level = random_level(kv);
    k = key_alloc(level);
    if (k == NULL) {
        return NULL;
    }
    k->key = cairn_malloc(len > 0 ? len : 1);
    if (k->key == NULL) {
        cairn_free(k);
        return NULL;
    }
    memcpy(k->key, key, len);
    k->key_len = len;
    for (i = kv->level; i < level; i++) {
        update[i] = kv->head;
    }
    if (level > kv->level) {
        kv->level = level;
    }
    for (i = 0; i < level; i++) {
        k->next[i] = update[i]->next[i];
        update[i]->next[i] = k;
    }
    kv->nodes++;
    return k;
}

static void key_unlink(struct kv *kv, struct kv_key *k)
{
    struct kv_key *update[KV_LEVEL_MAX];
    struct kv_key *found;
    int i;
    found = find_ge(kv, k->key, k->key_len, update);
    assert(found == k); /* the node being unlinked is in the list */
    (void)found;
    for (i = 0; i < k->level; i++) {
        update[i]->next[i] = k->next[i];
    }
    while (kv->level > 1 && kv->head->next[kv->level - 1] == NULL) {
        kv->level--;
    }
    kv->nodes--;
}

int kv_init(struct kv *kv)
{
    memset(kv, 0, sizeof(*kv));
    kv->head = key_alloc(KV_LEVEL_MAX);
    if (kv->head == NULL) {
        return CAIRN_ENOMEM;
    }
    /* The policy for "" always exists: every key has one that decides. */
    kv->policies = cairn_calloc(1, sizeof(*kv->policies));
    if (kv->policies == NULL) {
        cairn_free(kv->head);
        kv->head = NULL;
        return CAIRN_ENOMEM;
    }
    kv->policies[0].max_versions = KV_RETAIN_VERSIONS_DEFAULT;
    kv->n_policies = 1;
    kv->items_hash = policy_hash(&kv->policies[0]);
    kv->level = 1;
    kv->rng = 0x9e3779b97f4a7c15ull;
    return 0;
}

static void free_all_keys(struct kv *kv)
{
    struct kv_key *k = kv->head->next[0];
    while (k != NULL) {
        struct kv_key *next = k->next[0];
        key_free(kv, k);
        k = next;
    }
}

static void free_deferred(struct kv *kv)
{
    size_t i;
    for (i = 0; i < kv->n_deferred; i++) {
        cairn_free(kv->deferred[i]);
    }
    cairn_free(kv->deferred);
    kv->deferred = NULL;
    kv->n_deferred = 0;
    kv->cap_deferred = 0;
}

static void capture_fail(struct kv *kv, struct kv_capture *cap, int rv);

void kv_close(struct kv *kv)
{
    uint32_t i;
    if (kv->head == NULL) {
        return;
    }
    if (kv->slicing != NULL) {
        capture_fail(kv, kv->slicing, CAIRN_ESHUTDOWN); /* its state is going */
    }
    free_all_keys(kv);
    cairn_free(kv->head);
    kv->head = NULL;
    for (i = 0; i < kv->n_policies; i++) {
        free_later(kv, kv->policies[i].prefix); /* a capture may borrow it */
    }
    cairn_free(kv->policies);
    kv->policies = NULL;
    kv->n_policies = 0;
    kv->items_hash = 0; /* no item is left */
    if (kv->captures == 0) {
        free_deferred(kv);
    }
}

/* Versions */

static struct kv_version *newest(const struct kv_key *k)
{
    return k->n_versions > 0 ? &k->versions[k->n_versions - 1] : NULL;
}

static bool is_live(const struct kv_key *k)
{
    const struct kv_version *v = newest(k);
    return v != NULL && !v->deleted;
}

/* The version of k visible at rev: *out is NULL when the key did not exist or
 * was deleted at rev. Returns CAIRN_ECOMPACTED when the answer depends on a
 * discarded version. */
static int version_at(const struct kv_key *k, kv_rev rev, const struct kv_version **out)
{
    uint32_t i = k->n_versions;
    *out = NULL;
    while (i > 0) {
        const struct kv_version *v = &k->versions[i - 1];
        if (v->mod_rev <= rev) {
            *out = v->deleted ? NULL : v;
            return 0;
        }
        i--;
    }
    if (k->floor_rev == 0) {
        return 0; /* no version was ever discarded: the key did not exist */
    }
    if (rev >= k->floor_rev && k->floor_deleted) {
        return 0; /* the newest discarded version was a deletion */
    }
    return CAIRN_ECOMPACTED;
}

static void to_cairn_kv(const struct kv_key *k, const struct kv_version *v, struct cairn_kv *out)
{
    out->key = k->key;
    out->key_len = k->key_len;
    out->value = v->value != NULL ? v->value : "";
    out->value_len = v->value_len;
    out->create_revision = v->create_rev;
    out->mod_revision = v->mod_rev;
    out->version = v->version;
    out->time_ms = v->time_ms;
    out->deleted = v->deleted;
}

static void pack_version(struct proto_writer *w, const struct kv_key *k, const struct kv_version *v)
{
    struct cairn_kv ckv;
    to_cairn_kv(k, v, &ckv);
    proto_pack_kv(w, &ckv);
}

static void capture_preimage(struct kv *kv, struct kv_key *k);

/* Drop the oldest version of k, remembering what it was. Every version and
 * key that goes away goes through here. */
static void drop_oldest(struct kv *kv, struct kv_key *k)
{
    struct kv_version *v;
    if (kv->slicing != NULL) {
        capture_preimage(kv, k);
    }
    v = &k->versions[0];
    set_floor(kv, k, v->mod_rev, v->deleted);
    kv->items_hash -= v->item_hash;
    kv->value_bytes -= v->value_len + k->key_len;
    kv->total_versions--;
    free_later(kv, v->value);
    memmove(&k->versions[0], &k->versions[1], (k->n_versions - 1) * sizeof(k->versions[0]));
    k->n_versions--;
}

/* Retention policies
 *
 * The table is sorted bytewise by prefix and policies[0] is the one for "",
 * which sorts before everything. It holds at most KV_RETENTION_POLICIES_MAX
 * entries, so a binary search costs a dozen comparisons. */

/* Index of the last policy whose prefix sorts at or before key[0:len]. */
static uint32_t policy_last_le(const struct kv *kv, const char *key, uint32_t len)
{
    uint32_t lo = 0; /* policies[lo] <= key always: policies[0] is "" */
    uint32_t hi = kv->n_policies;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        const struct kv_retention *p = &kv->policies[mid];
        if (key_cmp(p->prefix, p->prefix_len, key, len) <= 0) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

const struct kv_retention *kv_retention_find(const struct kv *kv, const char *prefix, uint32_t len)
{
    const struct kv_retention *p = &kv->policies[policy_last_le(kv, prefix, len)];
    return key_cmp(p->prefix, p->prefix_len, prefix, len) == 0 ? p : NULL;
}

const struct kv_retention *kv_retention_for(const struct kv *kv, const char *key, uint32_t len)
{
    /* Let p be the last policy <= key[0:len]. If p is a prefix of it, p is
     * the longest such prefix: a longer one would sort after p and still at
     * or before the key. If it is not, p and the key first differ at some
     * byte c < len where p's is smaller; a policy that is a prefix of the key
     * and longer than c would sort after p, so every candidate is a prefix
     * of key[0:c]: search again there. Each round shortens len, and "" ends
     * the search. */
    for (;;) {
        const struct kv_retention *p = &kv->policies[policy_last_le(kv, key, len)];
        uint32_t common = 0;
        while (common < p->prefix_len && common < len && p->prefix[common] == key[common]) {
            common++;
        }
        if (common == p->prefix_len) {
            return p;
        }
        assert(common < len); /* p <= key[0:len] and p is not its prefix */
        len = common;
    }
}

/* Whether a past version is older than max_age_ms at time_ms. Times come
 * from log entries (any int64), so the difference is taken without
 * overflow; a version "from the future" (a clock stepped back) is young. */
static bool expired(const struct kv_version *v, int64_t time_ms, uint64_t max_age_ms)
{
    return time_ms > v->time_ms && (uint64_t)time_ms - (uint64_t)v->time_ms > max_age_ms;
}

/* Apply k's retention policy at time_ms (the entry being applied). The newest
 * version always stays; past versions go oldest first. */
static void trim(struct kv *kv, struct kv_key *k, int64_t time_ms)
{
    const struct kv_retention *p = kv_retention_for(kv, k->key, k->key_len);
    while (k->n_versions > 1 && p->max_versions > 0 && k->n_versions > p->max_versions) {
        drop_oldest(kv, k);
    }
    while (k->n_versions > 1 && p->max_age_ms > 0 &&
           expired(&k->versions[0], time_ms, p->max_age_ms)) {
        drop_oldest(kv, k);
    }
}

/* Insert a policy at index at (the caller keeps the table sorted). Returns 0
 * or CAIRN_ENOMEM (nothing changed). */
static int policy_insert(struct kv *kv, uint32_t at, const char *prefix, uint32_t len,
                         uint64_t max_versions, uint64_t max_age_ms)
{
    struct kv_retention *ps;
    struct kv_retention *p;
    char *copy = NULL;
    if (len > 0) {
        copy = cairn_malloc(len);
        if (copy == NULL) {
            return CAIRN_ENOMEM;
        }
        memcpy(copy, prefix, len);
    }
    ps = cairn_realloc(kv->policies, (kv->n_policies + 1) * sizeof(*ps));
    if (ps == NULL) {
        cairn_free(copy);
        return CAIRN_ENOMEM;
    }
    kv->policies = ps;
    memmove(&ps[at + 1], &ps[at], (kv->n_policies - at) * sizeof(*ps));
    kv->n_policies++;
    p = &ps[at];
    p->prefix = copy;
    p->prefix_len = len;
    p->max_versions = max_versions;
    p->max_age_ms = max_age_ms;
    kv->n_aged_policies += max_age_ms > 0;
    kv->items_hash += policy_hash(p);
    return 0;
}

/* Change the limits of an existing policy. */
static void policy_set_limits(struct kv *kv, struct kv_retention *p, uint64_t max_versions,
                              uint64_t max_age_ms)
{
    kv->items_hash -= policy_hash(p);
    kv->n_aged_policies -= p->max_age_ms > 0;
    p->max_versions = max_versions;
    p->max_age_ms = max_age_ms;
    kv->n_aged_policies += max_age_ms > 0;
    kv->items_hash += policy_hash(p);
}

/* Tell the observer that k's newest version was just appended. */
static void notify_change(struct kv *kv, const struct kv_key *k, const struct kv_version *prev)
{
    if (kv->observer != NULL) {
        kv->observer->change(kv->observer->data, k, newest(k), prev);
    }
}

/* Append a version to k. Returns 0 or CAIRN_ENOMEM (k unchanged). */
static int append_version(struct kv *kv, struct kv_key *k, const struct kv_version *v)
{
    if (k->n_versions == k->cap_versions) {
        uint32_t cap = k->cap_versions == 0 ? 2 : k->cap_versions * 2;
        struct kv_version *vs = cairn_realloc(k->versions, cap * sizeof(*vs));
        if (vs == NULL) {
            return CAIRN_ENOMEM;
        }
        k->versions = vs;
        k->cap_versions = cap;
    }
    k->versions[k->n_versions] = *v;
    k->versions[k->n_versions].item_hash = version_hash(k, v);
    kv->items_hash += k->versions[k->n_versions].item_hash;
    k->n_versions++;
    kv->value_bytes += v->value_len + k->key_len;
    kv->total_versions++;
    return 0;
}

static int do_put(struct kv *kv, const struct proto_op *op, kv_rev rev, int64_t time_ms,
                  struct proto_writer *w)
{
    struct kv_key *k = find_exact(kv, op->key.ptr, op->key.len);
    const struct kv_version *prev;
    struct kv_version v;
    int rv;
    if (k == NULL) {
        k = key_insert(kv, op->key.ptr, op->key.len);
        if (k == NULL) {
            return CAIRN_ENOMEM;
        }
    }
    prev = is_live(k) ? newest(k) : NULL;
    if (w != NULL) {
        bool with_prev = op->prev_kv && prev != NULL;
        proto_pack_result(w, with_prev ? 1 : 0, 0, false);
        if (with_prev) {
            pack_version(w, k, prev);
        }
    }
    memset(&v, 0, sizeof(v));
    v.mod_rev = rev;
    v.create_rev = prev != NULL ? prev->create_rev : rev;
    v.version = prev != NULL ? prev->version + 1 : 1;
    v.time_ms = time_ms;
    v.value_len = op->value.len;
    if (op->value.len > 0) {
        v.value = cairn_malloc(op->value.len);
        if (v.value == NULL) {
            return CAIRN_ENOMEM;
        }
        memcpy(v.value, op->value.ptr, op->value.len);
    }
    rv = append_version(kv, k, &v);
    if (rv != 0) {
        cairn_free(v.value);
        return rv;
    }
    if (prev == NULL) {
        kv->live_keys++;
    }
    /* append_version may have moved the array: find prev again. */
    notify_change(kv, k, prev != NULL ? &k->versions[k->n_versions - 2] : NULL);
    trim(kv, k, time_ms);
    return 0;
}

/* Append a tombstone to a live key. */
static int delete_key(struct kv *kv, struct kv_key *k, kv_rev rev, int64_t time_ms)
{
    struct kv_version v;
    int rv;
    memset(&v, 0, sizeof(v));
    v.mod_rev = rev;
    v.time_ms = time_ms;
    v.deleted = true;
    rv = append_version(kv, k, &v);
    if (rv != 0) {
        return rv;
    }
    kv->live_keys--;
    notify_change(kv, k, &k->versions[k->n_versions - 2]);
    trim(kv, k, time_ms);
    return 0;
}

static bool has_prefix(const struct kv_key *k, const struct proto_slice *prefix)
{
    /* An empty prefix may come with a NULL pointer (a zeroed request). */
    return k->key_len >= prefix->len &&
           (prefix->len == 0 || memcmp(k->key, prefix->ptr, prefix->len) == 0);
}

/* Deletes one key or every key under a prefix. *changed is set when anything
 * was deleted. */
static int do_del(struct kv *kv, const struct proto_op *op, kv_rev rev, int64_t time_ms,
                  struct proto_writer *w, bool *changed)
{
    uint64_t count = 0;
    struct kv_key *k;
    int rv;
    if (!op->prefix) {
        k = find_exact(kv, op->key.ptr, op->key.len);
        if (k != NULL && is_live(k)) {
            count = 1;
        }
        if (w != NULL) {
            proto_pack_result(w, op->prev_kv ? (uint32_t)count : 0, count, false);
            if (op->prev_kv && count == 1) {
                pack_version(w, k, newest(k));
            }
        }
        if (count == 1) {
            *changed = true;
            return delete_key(kv, k, rev, time_ms);
        }
        return 0;
    }
    for (k = find_ge(kv, op->key.ptr, op->key.len, NULL); k != NULL && has_prefix(k, &op->key);
         k = k->next[0]) {
        count += is_live(k);
    }
    if (w != NULL) {
        proto_pack_result(w, op->prev_kv ? (uint32_t)count : 0, count, false);
    }
    for (k = find_ge(kv, op->key.ptr, op->key.len, NULL); k != NULL && has_prefix(k, &op->key);
         k = k->next[0]) {
        if (!is_live(k)) {
            continue;
        }
        if (w != NULL && op->prev_kv) {
            pack_version(w, k, newest(k));
        }
        rv = delete_key(kv, k, rev, time_ms);
        if (rv != 0) {
            return rv;
        }
        *changed = true;
    }
    return 0;
}

/* Reads */

static uint64_t effective_limit(uint64_t limit)
{
    return limit == 0 || limit > KV_RANGE_LIMIT_MAX ? KV_RANGE_LIMIT_MAX : limit;
}

/* Where a range starts: at the prefix, or just after the continuation key. */
static struct kv_key *range_start(const struct kv *kv, const struct proto_op *op)
{
    struct kv_key *k;
    if (op->after.len == 0 || key_cmp(op->after.ptr, op->after.len, op->key.ptr, op->key.len) < 0) {
        return find_ge(kv, op->key.ptr, op->key.len, NULL);
    }
    k = find_ge(kv, op->after.ptr, op->after.len, NULL);
    if (k != NULL && key_cmp(k->key, k->key_len, op->after.ptr, op->after.len) == 0) {
        k = k->next[0];
    }
    return k;
}

/* Answers a get of one key or a prefix at revision rev (already checked to be
 * within [compact_rev, kv->rev]). Two passes: the first counts (and finds
 * compacted history before anything is packed), the second packs. */
static int do_get(const struct kv *kv, const struct proto_op *op, kv_rev rev,
                  struct proto_writer *w)
{
    const struct kv_version *v;
    struct kv_key *k;
    uint64_t limit = effective_limit(op->limit);
    uint64_t count = 0;
    uint64_t bytes = 0;
    bool more = false;
    int rv;
    if (!op->prefix) {
        k = find_exact(kv, op->key.ptr, op->key.len);
        v = NULL;
        if (k != NULL) {
            rv = version_at(k, rev, &v);
            if (rv != 0) {
                return rv;
            }
        }
        if (w != NULL) {
            proto_pack_result(w, v != NULL ? 1 : 0, 0, false);
            if (v != NULL) {
                pack_version(w, k, v);
            }
        }
        return 0;
    }
    for (k = range_start(kv, op); k != NULL && has_prefix(k, &op->key); k = k->next[0]) {
        rv = version_at(k, rev, &v);
        if (rv != 0) {
            return rv;
        }
        if (v == NULL) {
            continue;
        }
        if (count == limit ||
            (count > 0 && bytes + k->key_len + v->value_len > KV_RANGE_BYTES_MAX)) {
            more = true;
            break;
        }
        count++;
        bytes += k->key_len + v->value_len;
    }
    if (w == NULL) {
        return 0;
    }
    proto_pack_result(w, (uint32_t)count, 0, more);
    for (k = range_start(kv, op); count > 0; k = k->next[0]) {
        version_at(k, rev, &v);
        if (v != NULL) {
            pack_version(w, k, v);
            count--;
        }
    }
    return 0;
}

static int do_history(const struct kv *kv, const struct proto_op *op, struct proto_writer *w)
{
    struct kv_key *k = find_exact(kv, op->key.ptr, op->key.len);
    uint64_t n = k != NULL ? k->n_versions : 0;
    uint64_t limit = effective_limit(op->limit);
    uint64_t bytes = 0;
    uint64_t i;
    bool more = n > limit;
    if (more) {
        n = limit;
    }
    /* Like a range, a history answer stops before KV_RANGE_BYTES_MAX. */
    for (i = 0; i < n; i++) {
        const struct kv_version *v = &k->versions[k->n_versions - 1 - i];
        if (i > 0 && bytes + k->key_len + v->value_len > KV_RANGE_BYTES_MAX) {
            n = i;
            more = true;
            break;
        }
        bytes += k->key_len + v->value_len;
    }
    proto_pack_result(w, (uint32_t)n, 0, more);
    for (i = 0; i < n; i++) {
        pack_version(w, k, &k->versions[k->n_versions - 1 - i]);
    }
    return 0;
}

/* Transactions */

static bool compare_holds(const struct kv *kv, const struct proto_cmp *c)
{
    struct kv_key *k = find_exact(kv, c->key.ptr, c->key.len);
    const struct kv_version *v = k != NULL && is_live(k) ? newest(k) : NULL;
    int order;
    if (c->target == CAIRN_CMP_VALUE) {
        const char *p = v != NULL && v->value != NULL ? v->value : "";
        uint32_t len = v != NULL ? v->value_len : 0;
        order = key_cmp(p, len, c->value.ptr, c->value.len);
    } else {
        uint64_t x = 0;
        if (v != NULL) {
            x = c->target == CAIRN_CMP_VERSION ? v->version
                : c->target == CAIRN_CMP_MOD   ? v->mod_rev
                                               : v->create_rev;
        }
        order = x < c->number ? -1 : x > c->number ? 1 : 0;
    }
    switch (c->op) {
        case CAIRN_CMP_EQUAL:
            return order == 0;
        case CAIRN_CMP_NOT_EQUAL:
            return order != 0;
        case CAIRN_CMP_LESS:
            return order < 0;
        default:
            return order > 0;
    }
}

bool kv_txn_is_read_only(const struct proto_request *req)
{
    uint32_t i;
    for (i = 0; i < req->n_then; i++) {
        if (req->then_ops[i].type != CAIRN_OP_GET) {
            return false;
        }
    }
    for (i = 0; i < req->n_else; i++) {
        if (req->else_ops[i].type != CAIRN_OP_GET) {
            return false;
        }
    }
    return true;
}

static void pack_head(struct proto_writer *w, const struct kv *kv, const struct proto_request *req,
                      bool succeeded, uint32_t n_results)
{
    struct proto_response_head h;
    memset(&h, 0, sizeof(h));
    h.id = req->id;
    h.type = req->type;
    h.revision = kv->rev;
    h.compact_revision = kv->compact_rev;
    h.succeeded = succeeded;
    h.n_results = n_results;
    proto_pack_response_head(w, &h);
}

/* Runs ops at revision rev (the revision any write among them creates).
 * *changed is set when any op wrote. */
static int run_ops(struct kv *kv, const struct proto_op *ops, uint32_t n, kv_rev rev,
                   int64_t time_ms, struct proto_writer *w, bool *changed)
{
    uint32_t i;
    int rv = 0;
    for (i = 0; i < n && rv == 0; i++) {
        const struct proto_op *op = &ops[i];
        switch (op->type) {
            case CAIRN_OP_GET:
                /* Reads inside a transaction see the writes before them. */
                rv = do_get(kv, op, rev, w);
                break;
            case CAIRN_OP_PUT:
                rv = do_put(kv, op, rev, time_ms, w);
                *changed = true;
                break;
            default:
                rv = do_del(kv, op, rev, time_ms, w, changed);
                break;
        }
    }
    return rv;
}

static int run_txn(struct kv *kv, const struct proto_request *req, int64_t time_ms,
                   struct proto_writer *w)
{
    bool ok = true;
    bool changed = false;
    const struct proto_op *ops;
    uint32_t n;
    uint32_t i;
    kv_rev rev = kv->rev + 1;
    int rv;
    for (i = 0; i < req->n_cmps && ok; i++) {
        ok = compare_holds(kv, &req->cmps[i]);
    }
    ops = ok ? req->then_ops : req->else_ops;
    n = ok ? req->n_then : req->n_else;
    if (w != NULL) {
        pack_head(w, kv, req, ok, n);
    }
    rv = run_ops(kv, ops, n, rev, time_ms, w, &changed);
    if (rv != 0) {
        return rv;
    }
    if (changed) {
        kv->rev = rev;
        if (kv->observer != NULL) {
            kv->observer->revision_done(kv->observer->data, rev);
        }
    }
    if (w != NULL) {
        proto_patch_revision(w, kv->rev);
        proto_pack_nil(w); /* no status */
    }
    return 0;
}

static int do_compact(struct kv *kv, kv_rev rev)
{
    struct kv_key *k;
    if (rev > kv->rev) {
        return CAIRN_EFUTUREREV;
    }
    if (rev <= kv->compact_rev) {
        return CAIRN_ECOMPACTED;
    }
    kv->compact_rev = rev;
    k = kv->head->next[0];
    while (k != NULL) {
        struct kv_key *next = k->next[0];
        /* Keep the newest version at or before rev and everything after. */
        while (k->n_versions > 1 && k->versions[1].mod_rev <= rev) {
            drop_oldest(kv, k);
        }
        /* A key whose only version is a deletion at or before rev is gone
         * for every revision that can still be read. */
        if (k->n_versions == 1 && k->versions[0].deleted && k->versions[0].mod_rev <= rev) {
            drop_oldest(kv, k);
        }
        if (k->n_versions == 0) {
            set_floor(kv, k, 0, false); /* the key, floor included, is gone */
            key_unlink(kv, k);
            key_free(kv, k);
        }
        k = next;
    }
    return 0;
}

/* Trim every key under prefix (every key for ""). */
static void trim_under(struct kv *kv, const struct proto_slice *prefix, int64_t time_ms)
{
    struct kv_key *k;
    for (k = find_ge(kv, prefix->ptr, prefix->len, NULL); k != NULL && has_prefix(k, prefix);
         k = k->next[0]) {
        trim(kv, k, time_ms);
    }
}

/* PROTO_RETENTION: set, replace or remove the policy for req->op.key. */
static int set_retention(struct kv *kv, const struct proto_request *req, int64_t time_ms)
{
    const struct proto_slice *prefix = &req->op.key;
    uint64_t versions = req->number;
    uint64_t age_ms = req->age_ms;
    uint32_t at = policy_last_le(kv, prefix->ptr, prefix->len);
    struct kv_retention *p = &kv->policies[at];
    bool exists = key_cmp(p->prefix, p->prefix_len, prefix->ptr, prefix->len) == 0;
    int rv;
    if (versions > UINT32_MAX) {
        return CAIRN_EINVAL; /* a key's version count is a uint32_t */
    }
    if (versions == 0 && age_ms == 0 && prefix->len == 0) {
        versions = KV_RETAIN_VERSIONS_DEFAULT; /* "" always has a policy */
    }
    if (versions == 0 && age_ms == 0) {
        if (!exists) {
            return CAIRN_ENOTFOUND;
        }
        kv->items_hash -= policy_hash(p);
        /* A capture may borrow the prefix bytes. */
        free_later(kv, p->prefix);
        kv->n_aged_policies -= p->max_age_ms > 0;
        memmove(p, p + 1, (kv->n_policies - at - 1) * sizeof(*p));
        kv->n_policies--;
    } else if (exists) {
        policy_set_limits(kv, p, versions, age_ms);
    } else {
        if (kv->n_policies >= KV_RETENTION_POLICIES_MAX) {
            return CAIRN_ETOOLARGE;
        }
        rv = policy_insert(kv, at + 1, prefix->ptr, prefix->len, versions, age_ms);
        if (rv != 0) {
            return rv;
        }
    }
    /* Keys under the prefix may now fall under a stricter policy (a longer
     * prefix's keys keep theirs: trim() looks each key's policy up). */
    trim_under(kv, prefix, time_ms);
    return 0;
}

/* PROTO_SWEEP: apply every key's policy at time_ms. Only age limits change
 * with time (counts are applied at every write), so without one there is
 * nothing to do. */
static void sweep(struct kv *kv, int64_t time_ms)
{
    struct kv_key *k;
    if (kv->n_aged_policies == 0) {
        return;
    }
    for (k = kv->head->next[0]; k != NULL; k = k->next[0]) {
        trim(kv, k, time_ms);
    }
}

int kv_apply(struct kv *kv, const struct proto_request *req, int64_t time_ms,
             struct proto_writer *w)
{
    struct proto_request single;
    int rv;
    switch (req->type) {
        case PROTO_PUT:
        case PROTO_DEL:
            /* A single put or delete is a transaction with no compares. */
            if (req->op.type != (req->type == PROTO_PUT ? CAIRN_OP_PUT : CAIRN_OP_DEL)) {
                return CAIRN_EMALFORMED;
            }
            single = *req;
            single.n_cmps = 0;
            single.then_ops = (struct proto_op *)&req->op;
            single.n_then = 1;
            single.n_else = 0;
            return run_txn(kv, &single, time_ms, w);
        case PROTO_TXN:
            return run_txn(kv, req, time_ms, w);
        case PROTO_COMPACT:
        case PROTO_RETENTION:
        case PROTO_SWEEP:
        case PROTO_INIT:
            rv = 0;
            if (req->type == PROTO_COMPACT) {
                rv = do_compact(kv, req->number);
            } else if (req->type == PROTO_RETENTION) {
                rv = set_retention(kv, req, time_ms);
            } else if (req->type == PROTO_SWEEP) {
                sweep(kv, time_ms);
            } else if (kv->cluster_id == 0 ||
                       (req->op.revision != 0 && kv->cluster_id == req->op.revision)) {
                /* PROTO_INIT: the first nonzero id wins, or for a restored
                 * state, the first that replaces its provisional id (the
                 * one in op.revision). Later ones (a leader that proposed
                 * again before it saw the first one applied) change
                 * nothing, and still succeed. */
                kv->cluster_id = req->number;
            }
            if (rv != 0) {
                return rv;
            }
            if (w != NULL) {
                pack_head(w, kv, req, true, 0);
                proto_pack_nil(w);
            }
            return 0;
        default:
            return CAIRN_EMALFORMED;
    }
}

int kv_read(struct kv *kv, const struct proto_request *req, struct proto_writer *w)
{
    kv_rev rev;
    int rv;
    switch (req->type) {
        case PROTO_GET:
            rev = req->op.revision == 0 ? kv->rev : req->op.revision;
            if (rev > kv->rev) {
                return CAIRN_EFUTUREREV;
            }
            if (rev < kv->compact_rev) {
                return CAIRN_ECOMPACTED;
            }
            /* Find compacted history before packing anything. */
            rv = do_get(kv, &req->op, rev, NULL);
            if (rv != 0) {
                return rv;
            }
            pack_head(w, kv, req, true, 1);
            proto_patch_revision(w, rev);
            do_get(kv, &req->op, rev, w);
            proto_pack_nil(w);
            return 0;
        case PROTO_HISTORY:
            pack_head(w, kv, req, true, 1);
            do_history(kv, &req->op, w);
            proto_pack_nil(w);
            return 0;
        case PROTO_TXN:
            if (!kv_txn_is_read_only(req)) {
                return CAIRN_EINVAL;
            }
            return run_txn(kv, req, 0, w);
        default:
            return CAIRN_EINVAL;
    }
}

/* Snapshots: [format, rev, compact_rev, cluster_id,
 *             [[prefix, max_versions, max_age_ms]...],
 *             n_keys,
 *             [[key, floor_rev, floor_deleted,
 *               [[mod, create, version, time, deleted, value]...]]...]]
 * Policies and keys are in bytewise order; the first policy is "". Formats 1
 * and 2 are six elements with no cluster_id (it sits next to the revisions
 * so that a tool can read it without walking the keys); format 1 had
 * retain_versions (a number) where the policies are. */

static int snapshot_write_cb(void *data, const char *bytes, size_t len)
{
    return buf_append(data, bytes, len) == 0 ? 0 : -1;
}

/* A capture is the state at one revision, taken on the loop thread in time
 * proportional to the number of keys and versions (no value is copied): each
 * key's version array is copied, and values and key bytes are borrowed, kept
 * alive by free_later() until the capture is released.
 *
 * Taken at once (kv_capture), 100,000 keys with two versions each hold the
 * loop for 10-17 ms, mostly cache misses on the skip list's nodes and
 * version arrays. Taken in slices (kv_capture_begin/step), the walk resumes
 * by key after each slice, and the state may change in between. Every
 * change only appends versions newer than the capture's revision, which the
 * walk leaves out, except one: drop_oldest(), through which retention and
 * compaction discard versions and, last, whole keys. Before it touches a key
 * the walk has not reached yet, it copies that key's versions up to the
 * capture's revision into the capture (a pre-image) and marks the key, so
 * the walk skips it. Keys the walk holds carry the same mark. A key created
 * after the capture began has no version at or before its revision, so it
 * appears in neither part. The walk yields the keys in order, the pre-images
 * are sorted when the walk ends, and encoding merges the two. */
struct capture_key
{
    const char *key; /* borrowed */
    uint32_t key_len;
    uint32_t n_versions;
    kv_rev floor_rev;
    bool floor_deleted;
    uint64_t first; /* index of the first version in its part's array */
};

struct capture_part
{
    struct capture_key *keys;    /* owned */
    struct kv_version *versions; /* owned; values borrowed */
    uint64_t n_keys;
    uint64_t n_versions;
    uint64_t cap_keys;
    uint64_t cap_versions;
};

struct kv_capture
{
    kv_rev rev;
    kv_rev compact_rev;
    uint64_t cluster_id;
    struct kv_retention *policies; /* owned array; prefixes borrowed */
    uint32_t n_policies;
    uint64_t n_keys;          /* at the capture's revision */
    uint64_t n_versions;      /* likewise */
    uint64_t bytes;           /* keys and values, for sizing the encoding */
    struct capture_part walk; /* sized for everything up front */
    struct capture_part pre;  /* pre-images, grown as they come */
    /* Slicing. */
    uint32_t epoch; /* 0: taken at once */
    bool started;
    bool complete;
    int failed;         /* CAIRN_E* that stopped it, 0 if none */
    const char *cursor; /* borrowed: the last key walked */
    uint32_t cursor_len;
};

/* The number of k's versions at or before rev (a prefix: oldest first). */
static uint32_t versions_upto(const struct kv_key *k, kv_rev rev)
{
    uint32_t n = k->n_versions;
    while (n > 0 && k->versions[n - 1].mod_rev > rev) {
        n--;
    }
    return n;
}

/* Append k as it was at cap->rev to part. Returns 0 or a CAIRN_E* code. */
static int part_add(struct capture_part *part, const struct kv_key *k, uint32_t n, bool grow)
{
    struct capture_key *ck;
    if (part->n_keys == part->cap_keys || part->cap_versions - part->n_versions < n) {
        uint64_t ck_cap = part->cap_keys;
        uint64_t cv_cap = part->cap_versions;
        if (!grow) {
            return CAIRN_EINTERNAL; /* more than the counters said */
        }
        while (ck_cap <= part->n_keys) {
            ck_cap = ck_cap == 0 ? 64 : ck_cap * 2;
        }
        while (cv_cap - part->n_versions < n) {
            cv_cap = cv_cap == 0 ? 256 : cv_cap * 2;
        }
        if (ck_cap != part->cap_keys) {
            struct capture_key *keys = cairn_realloc(part->keys, ck_cap * sizeof(*keys));
            if (keys == NULL) {
                return CAIRN_ENOMEM;
            }
            part->keys = keys;
            part->cap_keys = ck_cap;
        }
        if (cv_cap != part->cap_versions) {
            struct kv_version *vs = cairn_realloc(part->versions, cv_cap * sizeof(*vs));
            if (vs == NULL) {
                return CAIRN_ENOMEM;
            }
            part->versions = vs;
            part->cap_versions = cv_cap;
        }
    }
    ck = &part->keys[part->n_keys++];
    ck->key = k->key;
    ck->key_len = k->key_len;
    ck->n_versions = n;
    ck->floor_rev = k->floor_rev;
    ck->floor_deleted = k->floor_deleted;
    ck->first = part->n_versions;
    memcpy(&part->versions[part->n_versions], k->versions, n * sizeof(*k->versions));
    part->n_versions += n;
    return 0;
}

static void capture_fail(struct kv *kv, struct kv_capture *cap, int rv)
{
    cap->failed = rv;
    if (kv->slicing == cap) {
        kv->slicing = NULL;
    }
}

/* drop_oldest() is about to change k: keep k as the sliced capture needs
 * it, unless the capture holds it already. */
static void capture_preimage(struct kv *kv, struct kv_key *k)
{
    struct kv_capture *cap = kv->slicing;
    uint32_t n;
    int rv;
    if (k->capture_mark == cap->epoch) {
        return;
    }
    k->capture_mark = cap->epoch;
    n = versions_upto(k, cap->rev);
    if (n == 0) {
        return; /* created after the capture began */
    }
    rv = part_add(&cap->pre, k, n, true);
    if (rv != 0) {
        capture_fail(kv, cap, rv);
    }
}

static void capture_free(struct kv_capture *cap)
{
    cairn_free(cap->policies);
    cairn_free(cap->walk.keys);
    cairn_free(cap->walk.versions);
    cairn_free(cap->pre.keys);
    cairn_free(cap->pre.versions);
    cairn_free(cap);
}

static int capture_create(struct kv *kv, struct kv_capture **out)
{
    struct kv_capture *cap = cairn_calloc(1, sizeof(*cap));
    uint32_t i;
    if (cap == NULL) {
        return CAIRN_ENOMEM;
    }
    cap->rev = kv->rev;
    cap->compact_rev = kv->compact_rev;
    cap->cluster_id = kv->cluster_id;
    cap->n_policies = kv->n_policies;
    cap->n_keys = kv->nodes;
    cap->n_versions = kv->total_versions;
    cap->bytes = kv->value_bytes;
    for (i = 0; i < kv->n_policies; i++) {
        cap->bytes += kv->policies[i].prefix_len;
    }
    /* The walk's arrays are sized for every key: pages are touched (and
     * faulted in) only as slices fill them. */
    cap->policies = cairn_malloc(kv->n_policies * sizeof(*cap->policies));
    cap->walk.cap_keys = kv->nodes;
    cap->walk.cap_versions = kv->total_versions;
    cap->walk.keys = cairn_malloc((kv->nodes > 0 ? kv->nodes : 1) * sizeof(*cap->walk.keys));
    cap->walk.versions = cairn_malloc((kv->total_versions > 0 ? kv->total_versions : 1) *
                                      sizeof(*cap->walk.versions));
    if (cap->policies == NULL || cap->walk.keys == NULL || cap->walk.versions == NULL) {
        capture_free(cap);
        return CAIRN_ENOMEM;
    }
    /* Prefix bytes are borrowed like keys: free_later() keeps them. */
    memcpy(cap->policies, kv->policies, kv->n_policies * sizeof(*cap->policies));
    kv->captures++;
    *out = cap;
    return 0;
}

static int capture_key_cmp(const void *a, const void *b)
{
    const struct capture_key *x = a;
    const struct capture_key *y = b;
    return key_cmp(x->key, x->key_len, y->key, y->key_len);
}

int kv_capture_step(struct kv *kv, struct kv_capture *cap, uint64_t budget)
{
    struct kv_key *k;
    bool sliced = cap->epoch != 0;
    int rv;
    if (cap->failed != 0) {
        return cap->failed;
    }
    if (cap->complete) {
        return 1;
    }
    if (!cap->started) {
        k = kv->head->next[0];
        cap->started = true;
    } else {
        /* The last key walked may be gone; its bytes are not (free_later). */
        k = find_ge(kv, cap->cursor, cap->cursor_len, NULL);
        if (k != NULL && key_cmp(k->key, k->key_len, cap->cursor, cap->cursor_len) == 0) {
            k = k->next[0];
        }
    }
    for (; k != NULL && budget > 0; k = k->next[0], budget--) {
        uint32_t n;
        cap->cursor = k->key;
        cap->cursor_len = k->key_len;
        if (sliced) {
            if (k->capture_mark == cap->epoch) {
                continue; /* held as a pre-image */
            }
            k->capture_mark = cap->epoch;
        }
        n = versions_upto(k, cap->rev);
        if (n == 0) {
            continue; /* created after the capture began */
        }
        rv = part_add(&cap->walk, k, n, false);
        if (rv != 0) {
            capture_fail(kv, cap, rv);
            return rv;
        }
    }
    if (k != NULL) {
        return 0;
    }
    if (kv->slicing == cap) {
        kv->slicing = NULL;
    }
    /* Every key and version of the capture's revision is in one part or the
     * other, once: the counters kept by every change say how many. */
    if (cap->walk.n_keys + cap->pre.n_keys != cap->n_keys ||
        cap->walk.n_versions + cap->pre.n_versions != cap->n_versions) {
        capture_fail(kv, cap, CAIRN_EINTERNAL);
        return CAIRN_EINTERNAL;
    }
    if (cap->pre.n_keys > 1) {
        qsort(cap->pre.keys, cap->pre.n_keys, sizeof(*cap->pre.keys), capture_key_cmp);
    }
    cap->complete = true;
    return 1;
}

int kv_capture_begin(struct kv *kv, struct kv_capture **out)
{
    struct kv_capture *cap;
    int rv;
    if (kv->slicing != NULL) {
        return CAIRN_EBUSY;
    }
    rv = capture_create(kv, &cap);
    if (rv != 0) {
        return rv;
    }
    if (++kv->capture_epoch == 0) {
        kv->capture_epoch = 1; /* 0 marks no key */
    }
    cap->epoch = kv->capture_epoch;
    kv->slicing = cap;
    *out = cap;
    return 0;
}

int kv_capture(struct kv *kv, struct kv_capture **out)
{
    struct kv_capture *cap;
    int rv = capture_create(kv, &cap);
    if (rv != 0) {
        return rv;
    }
    rv = kv_capture_step(kv, cap, UINT64_MAX);
    if (rv != 1) {
        kv_capture_release(kv, cap);
        return rv < 0 ? rv : CAIRN_EINTERNAL;
    }
    *out = cap;
    return 0;
}

void kv_capture_release(struct kv *kv, struct kv_capture *cap)
{
    if (cap == NULL) {
        return;
    }
    if (kv->slicing == cap) {
        kv->slicing = NULL;
    }
    capture_free(cap);
    assert(kv->captures > 0); /* every release matches one capture */
    if (--kv->captures == 0) {
        free_deferred(kv);
    }
}

static int pack_capture_key(msgpack_packer *pk, const struct capture_key *k,
                            const struct kv_version *versions)
{
    uint32_t j;
    int rv = 0;
    rv |= msgpack_pack_array(pk, 4);
    rv |= msgpack_pack_bin(pk, k->key_len);
    rv |= msgpack_pack_bin_body(pk, k->key, k->key_len);
    rv |= msgpack_pack_uint64(pk, k->floor_rev);
    rv |= k->floor_deleted ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    rv |= msgpack_pack_array(pk, k->n_versions);
    for (j = 0; j < k->n_versions; j++) {
        const struct kv_version *v = &versions[k->first + j];
        rv |= msgpack_pack_array(pk, 6);
        rv |= msgpack_pack_uint64(pk, v->mod_rev);
        rv |= msgpack_pack_uint64(pk, v->create_rev);
        rv |= msgpack_pack_uint64(pk, v->version);
        rv |= msgpack_pack_int64(pk, v->time_ms);
        rv |= v->deleted ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        rv |= msgpack_pack_bin(pk, v->value_len);
        rv |= msgpack_pack_bin_body(pk, v->value != NULL ? v->value : "", v->value_len);
    }
    return rv;
}

/* The capture as msgpack, into whatever pk writes to. */
static int pack_capture(const struct kv_capture *cap, msgpack_packer *pk)
{
    uint64_t wi = 0;
    uint64_t pi = 0;
    uint32_t j;
    int rv = 0;
    rv |= msgpack_pack_array(pk, 7);
    rv |= msgpack_pack_uint32(pk, KV_SNAPSHOT_FORMAT);
    rv |= msgpack_pack_uint64(pk, cap->rev);
    rv |= msgpack_pack_uint64(pk, cap->compact_rev);
    rv |= msgpack_pack_uint64(pk, cap->cluster_id);
    rv |= msgpack_pack_array(pk, cap->n_policies);
    for (j = 0; j < cap->n_policies; j++) {
        const struct kv_retention *p = &cap->policies[j];
        rv |= msgpack_pack_array(pk, 3);
        rv |= msgpack_pack_bin(pk, p->prefix_len);
        rv |= msgpack_pack_bin_body(pk, p->prefix != NULL ? p->prefix : "", p->prefix_len);
        rv |= msgpack_pack_uint64(pk, p->max_versions);
        rv |= msgpack_pack_uint64(pk, p->max_age_ms);
    }
    rv |= msgpack_pack_uint64(pk, cap->n_keys);
    rv |= msgpack_pack_array(pk, (uint32_t)cap->n_keys);
    /* The walk and the pre-images are each sorted and hold no key twice. */
    while ((wi < cap->walk.n_keys || pi < cap->pre.n_keys) && rv == 0) {
        if (pi == cap->pre.n_keys ||
            (wi < cap->walk.n_keys &&
             capture_key_cmp(&cap->walk.keys[wi], &cap->pre.keys[pi]) < 0)) {
            rv |= pack_capture_key(pk, &cap->walk.keys[wi++], cap->walk.versions);
        } else {
            rv |= pack_capture_key(pk, &cap->pre.keys[pi++], cap->pre.versions);
        }
    }
    return rv;
}

int kv_capture_encode(const struct kv_capture *cap, struct buf *out)
{
    msgpack_packer pk;
    if (!cap->complete) {
        return CAIRN_EINVAL;
    }
    /* Size the buffer once: keys and values plus a generous per-version and
     * per-key overhead, so encoding never copies what it wrote. */
    if (buf_reserve(out, cap->bytes + cap->n_policies * 24 + cap->n_keys * 24 +
                             cap->n_versions * 48 + 64) != 0) {
        return CAIRN_ENOMEM;
    }
    msgpack_packer_init(&pk, out, snapshot_write_cb);
    return pack_capture(cap, &pk) == 0 ? 0 : CAIRN_ENOMEM;
}

static int count_write_cb(void *data, const char *bytes, size_t len)
{
    (void)bytes;
    *(uint64_t *)data += len;
    return 0;
}

int kv_capture_encoded_size(const struct kv_capture *cap, uint64_t *size)
{
    msgpack_packer pk;
    *size = 0;
    if (!cap->complete) {
        return CAIRN_EINVAL;
    }
    msgpack_packer_init(&pk, size, count_write_cb);
    return pack_capture(cap, &pk) == 0 ? 0 : CAIRN_EINTERNAL;
}

/* kv_capture_encode_to's staging: small pieces gather here and go to the
 * sink KV_ENCODE_CHUNK bytes at a time; a larger piece goes straight on. */
#define KV_ENCODE_CHUNK ((size_t)256 << 10)

struct encode_stage
{
    kv_encode_sink sink;
    void *arg;
    char *buf;
    size_t len;
    int failed; /* the sink's first non-zero return */
};

static int stage_flush(struct encode_stage *st)
{
    if (st->len > 0 && st->failed == 0) {
        st->failed = st->sink(st->arg, st->buf, st->len);
    }
    st->len = 0;
    return st->failed;
}

static int stage_write_cb(void *data, const char *bytes, size_t len)
{
    struct encode_stage *st = data;
    if (st->failed != 0) {
        return -1;
    }
    if (st->len + len > KV_ENCODE_CHUNK) {
        if (stage_flush(st) != 0) {
            return -1;
        }
        if (len >= KV_ENCODE_CHUNK) {
            st->failed = st->sink(st->arg, bytes, len);
            return st->failed != 0 ? -1 : 0;
        }
    }
    memcpy(st->buf + st->len, bytes, len);
    st->len += len;
    return 0;
}

int kv_capture_encode_to(const struct kv_capture *cap, kv_encode_sink sink, void *arg)
{
    msgpack_packer pk;
    struct encode_stage st = {.sink = sink, .arg = arg};
    int rv;
    if (!cap->complete) {
        return CAIRN_EINVAL;
    }
    st.buf = cairn_malloc(KV_ENCODE_CHUNK);
    if (st.buf == NULL) {
        return CAIRN_ENOMEM;
    }
    msgpack_packer_init(&pk, &st, stage_write_cb);
    rv = pack_capture(cap, &pk);
    if (rv == 0) {
        stage_flush(&st);
    }
    cairn_free(st.buf);
    if (st.failed != 0) {
        return st.failed;
    }
    return rv == 0 ? 0 : CAIRN_EINTERNAL;
}

int kv_snapshot_encode(struct kv *kv, struct buf *out)
{
    struct kv_capture *cap;
    int rv = kv_capture(kv, &cap);
    if (rv != 0) {
        return rv;
    }
    rv = kv_capture_encode(cap, out);
    kv_capture_release(kv, cap);
    return rv;
}

/* The policy table of a snapshot into kv, which holds only the default
 * policy for "". Checks what set_retention() guarantees: "" first, prefixes
 * strictly ordered (no duplicates), at most KV_RETENTION_POLICIES_MAX, no
 * more than UINT32_MAX versions, and no policy that limits nothing. */
static int snapshot_decode_policies(struct kv *kv, struct mp_reader *r)
{
    uint32_t n;
    uint32_t i;
    if (!mp_array(r, &n) || n == 0 || n > KV_RETENTION_POLICIES_MAX) {
        return CAIRN_EMALFORMED;
    }
    for (i = 0; i < n; i++) {
        const struct kv_retention *last = &kv->policies[kv->n_policies - 1];
        uint32_t fields;
        const char *prefix;
        uint32_t prefix_len;
        uint64_t versions;
        uint64_t age_ms;
        int rv;
        if (!mp_array(r, &fields) || fields != 3 || !mp_bytes(r, &prefix, &prefix_len) ||
            !mp_uint(r, &versions) || !mp_uint(r, &age_ms) || versions > UINT32_MAX ||
            (versions == 0 && age_ms == 0) || (i == 0) != (prefix_len == 0)) {
            return CAIRN_EMALFORMED;
        }
        if (i == 0) {
            policy_set_limits(kv, &kv->policies[0], versions, age_ms);
            continue;
        }
        if (key_cmp(last->prefix, last->prefix_len, prefix, prefix_len) >= 0) {
            return CAIRN_EMALFORMED;
        }
        rv = policy_insert(kv, kv->n_policies, prefix, prefix_len, versions, age_ms);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

/* Decodes into a fresh kv so that a bad snapshot leaves the old one intact. */
static int snapshot_decode_into(struct kv *kv, const char *data, size_t len)
{
    struct mp_reader r;
    uint32_t n;
    uint64_t format;
    uint64_t retain_versions;
    uint64_t n_keys;
    uint32_t n_list;
    uint32_t i;
    uint32_t j;
    struct kv_key *prev_key = NULL;
    int rv;
    mp_init(&r, data, len);
    if (!mp_array(&r, &n) || !mp_uint(&r, &format) ||
        (format != KV_SNAPSHOT_FORMAT && format != KV_SNAPSHOT_FORMAT_V2 &&
         format != KV_SNAPSHOT_FORMAT_V1) ||
        n != (format == KV_SNAPSHOT_FORMAT ? 7 : 6) || !mp_uint(&r, &kv->rev) ||
        !mp_uint(&r, &kv->compact_rev) || kv->compact_rev > kv->rev) {
        return CAIRN_EMALFORMED;
    }
    /* Before format 3 no cluster id was known: kv_init's 0 stays. */
    if (format == KV_SNAPSHOT_FORMAT && !mp_uint(&r, &kv->cluster_id)) {
        return CAIRN_EMALFORMED;
    }
    if (format == KV_SNAPSHOT_FORMAT_V1) {
        if (!mp_uint(&r, &retain_versions) || retain_versions == 0 ||
            retain_versions > UINT32_MAX) {
            return CAIRN_EMALFORMED;
        }
        policy_set_limits(kv, &kv->policies[0], retain_versions, 0);
    } else {
        rv = snapshot_decode_policies(kv, &r);
        if (rv != 0) {
            return rv;
        }
    }
    if (!mp_uint(&r, &n_keys) || !mp_array(&r, &n_list) || n_list != n_keys) {
        return CAIRN_EMALFORMED;
    }
    for (i = 0; i < n_list; i++) {
        const char *key;
        uint32_t key_len;
        uint32_t fields;
        uint32_t n_versions;
        kv_rev floor_rev;
        bool floor_deleted;
        struct kv_key *k;
        if (!mp_array(&r, &fields) || fields < 4 || !mp_bytes(&r, &key, &key_len)) {
            return CAIRN_EMALFORMED;
        }
        /* Keys must arrive strictly ordered: that is what makes appending at
         * the end of the list correct, and it rejects duplicates. */
        if (prev_key != NULL && key_cmp(prev_key->key, prev_key->key_len, key, key_len) >= 0) {
            return CAIRN_EMALFORMED;
        }
        k = key_insert(kv, key, key_len);
        if (k == NULL) {
            return CAIRN_ENOMEM;
        }
        prev_key = k;
        if (!mp_uint(&r, &floor_rev) || !mp_bool(&r, &floor_deleted) ||
            !mp_array(&r, &n_versions) || n_versions == 0) {
            return CAIRN_EMALFORMED;
        }
        set_floor(kv, k, floor_rev, floor_deleted);
        for (j = 0; j < n_versions; j++) {
            struct kv_version v;
            uint32_t vf;
            const char *value;
            uint32_t value_len;
            memset(&v, 0, sizeof(v));
            /* Versions arrive oldest first. Two may share a mod_revision: a
             * transaction that writes one key twice appends both. */
            if (!mp_array(&r, &vf) || vf < 6 || !mp_uint(&r, &v.mod_rev) ||
                !mp_uint(&r, &v.create_rev) || !mp_uint(&r, &v.version) ||
                !mp_int(&r, &v.time_ms) || !mp_bool(&r, &v.deleted) ||
                !mp_bytes(&r, &value, &value_len) || v.mod_rev > kv->rev ||
                (k->n_versions > 0 && newest(k)->mod_rev > v.mod_rev)) {
                return CAIRN_EMALFORMED;
            }
            if (value_len > 0) {
                v.value = cairn_malloc(value_len);
                if (v.value == NULL) {
                    return CAIRN_ENOMEM;
                }
                memcpy(v.value, value, value_len);
            }
            v.value_len = value_len;
            rv = append_version(kv, k, &v);
            if (rv != 0) {
                cairn_free(v.value);
                return rv;
            }
        }
        if (is_live(k)) {
            kv->live_keys++;
        }
    }
    return mp_done(&r) ? 0 : CAIRN_EMALFORMED;
}

int kv_snapshot_decode(struct kv *kv, const char *data, size_t len)
{
    struct kv fresh;
    int rv = kv_init(&fresh);
    if (rv != 0) {
        return rv;
    }
    rv = snapshot_decode_into(&fresh, data, len);
    if (rv != 0) {
        kv_close(&fresh);
        return rv;
    }
    /* A snapshot of the old state may still be encoding: its memory goes to
     * the deferred list, which the new state inherits. */
    kv_close(kv);
    fresh.captures = kv->captures;
    fresh.capture_epoch = kv->capture_epoch;
    fresh.deferred = kv->deferred;
    fresh.n_deferred = kv->n_deferred;
    fresh.cap_deferred = kv->cap_deferred;
    fresh.observer = kv->observer;
    *kv = fresh;
    if (kv->observer != NULL) {
        kv->observer->restored(kv->observer->data);
    }
    return 0;
}

const struct kv_key *kv_seek(const struct kv *kv, const char *key, uint32_t len)
{
    return find_ge(kv, key, len, NULL);
}

const struct kv_key *kv_next(const struct kv_key *k)
{
    return k->next[0];
}

int kv_version_at(const struct kv_key *k, kv_rev rev, const struct kv_version **out)
{
    return version_at(k, rev, out);
}

void kv_to_cairn_kv(const struct kv_key *k, const struct kv_version *v, struct cairn_kv *out)
{
    to_cairn_kv(k, v, out);
}

uint64_t kv_hash(const struct kv *kv)
{
    return state_hash(kv, kv->items_hash);
}

uint64_t kv_hash_full(const struct kv *kv)
{
    uint64_t items = 0;
    const struct kv_key *k;
    uint32_t i;
    /* Recomputes every item from its fields; never reads the item_hash
     * cached in each version, which is what this checks. */
    for (i = 0; i < kv->n_policies; i++) {
        items += policy_hash(&kv->policies[i]);
    }
    for (k = kv->head->next[0]; k != NULL; k = k->next[0]) {
        if (k->floor_rev != 0) {
            items += floor_hash(k);
        }
        for (i = 0; i < k->n_versions; i++) {
            items += version_hash(k, &k->versions[i]);
        }
    }
    return state_hash(kv, items);
}
