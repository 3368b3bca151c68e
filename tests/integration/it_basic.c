/*
 * it_basic: a 3-node cluster serves every operation of cairn.h, through any
 * node's endpoint, and its replicas converge.
 *
 *  1. Through each node's endpoint alone, a write and a linearizable read
 *     succeed (a follower redirects them to the leader), and a stale read
 *     from a fresh client answers locally with the value and a revision.
 *  2. put / get (current, at a past revision, by prefix with pagination) /
 *     del (key, prefix) / cas / txn / history / compact behave as cairn.h
 *     documents, with the revisions the data model promises.
 *  3. All three nodes end at the same applied index and revision, and every
 *     node answers the same data to stale reads.
 *  4. Stale reads really are local: a follower whose peers are gone still
 *     answers them (at its revision), while a linearizable read fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define TIMEOUT_MS 10000

static bool kv_is(const struct cairn_kv *kv, const char *key, const char *value)
{
    return kv->key_len == strlen(key) && memcmp(kv->key, key, kv->key_len) == 0 &&
           kv->value_len == strlen(value) && memcmp(kv->value, value, kv->value_len) == 0;
}

static const struct cairn_kv *only_kv(const struct cairn_result *r)
{
    IT_ASSERT(r != NULL && r->n_ops == 1, "expected one operation result");
    IT_ASSERT(r->ops[0].n_kvs == 1, "expected one key, got %zu", r->ops[0].n_kvs);
    return &r->ops[0].kvs[0];
}

static uint64_t put(cairn_client *c, const char *key, const char *value)
{
    struct cairn_result *r = NULL;
    uint64_t rev;
    IT_ASSERT_OK(cairn_put(c, key, strlen(key), value, strlen(value), NULL, &r), c);
    IT_ASSERT(r->revision > 0, "put %s answered revision 0", key);
    rev = r->revision;
    cairn_result_free(r);
    return rev;
}

static void expect_get(cairn_client *c, const char *key, const struct cairn_get_opts *opts,
                       const char *value, uint64_t mod_rev)
{
    struct cairn_result *r = NULL;
    const struct cairn_kv *kv;
    IT_ASSERT_OK(cairn_get(c, key, strlen(key), opts, &r), c);
    kv = only_kv(r);
    IT_ASSERT(kv_is(kv, key, value), "get %s: got \"%.*s\", want \"%s\"", key, (int)kv->value_len,
              kv->value, value);
    IT_ASSERT(mod_rev == 0 || kv->mod_revision == mod_rev, "get %s: mod_revision %llu, want %llu",
              key, (unsigned long long)kv->mod_revision, (unsigned long long)mod_rev);
    IT_ASSERT(r->revision >= kv->mod_revision, "get %s: answered at revision %llu < mod %llu", key,
              (unsigned long long)r->revision, (unsigned long long)kv->mod_revision);
    cairn_result_free(r);
}

/* Step 1: every node's endpoint, alone, serves writes and both kinds of read. */
static void through_each_node(struct it_cluster *c, unsigned leader)
{
    unsigned id;
    for (id = 1; id <= c->n; id++) {
        cairn_client *alone = it_client(c, id, TIMEOUT_MS);
        cairn_client *fresh = it_client(c, id, TIMEOUT_MS);
        struct cairn_get_opts stale = {.stale = true};
        struct cairn_result *r = NULL;
        struct cairn_status *st = NULL;
        char key[64];
        char value[64];
        uint64_t rev;
        int64_t deadline = it_now_ms() + TIMEOUT_MS;
        snprintf(key, sizeof(key), "via/node%u", id);
        snprintf(value, sizeof(value), "written through node %u", id);
        rev = put(alone, key, value);
        /* Linearizable read: the leader's confirmed state, so our write. */
        expect_get(alone, key, NULL, value, rev);
        /* Stale read from a client that never learned the leader: node id
         * answers from its own state, once it has applied the write. */
        for (;;) {
            IT_ASSERT_OK(cairn_status(c->admin, it_node(c, id)->client_addr, &st), c->admin);
            if (st->revision >= rev) {
                cairn_status_free(st);
                break;
            }
            cairn_status_free(st);
            IT_ASSERT(it_now_ms() < deadline, "node %u did not apply revision %llu", id,
                      (unsigned long long)rev);
            it_sleep_ms(20);
        }
        IT_ASSERT_OK(cairn_get(fresh, key, strlen(key), &stale, &r), fresh);
        IT_ASSERT(kv_is(only_kv(r), key, value), "stale read from node %u", id);
        IT_ASSERT(r->revision >= rev, "stale read from node %u reports revision %llu < %llu", id,
                  (unsigned long long)r->revision, (unsigned long long)rev);
        cairn_result_free(r);
        /* A stale read of a key that does not exist is also answered. */
        IT_ASSERT(cairn_get(fresh, "via/none", 8, &stale, NULL) == CAIRN_ENOTFOUND,
                  "stale read of a missing key on node %u: %s", id, cairn_errmsg(fresh));
        it_log("node %u (%s): put at revision %llu, linearizable and stale reads ok", id,
               id == leader ? "leader" : "follower", (unsigned long long)rev);
        cairn_client_free(alone);
        cairn_client_free(fresh);
    }
}

static void puts_and_gets(cairn_client *c, uint64_t *r1_out, uint64_t *r2_out)
{
    struct cairn_put_opts prev = {.prev_kv = true};
    struct cairn_get_opts at = {0};
    struct cairn_result *r = NULL;
    const struct cairn_kv *kv;
    uint64_t r1;
    uint64_t r2;

    r1 = put(c, "k1", "v1");
    IT_ASSERT_OK(cairn_put(c, "k1", 2, "v2", 2, &prev, &r), c);
    r2 = r->revision;
    IT_ASSERT(r2 == r1 + 1, "second put at %llu, first at %llu: revisions must be consecutive",
              (unsigned long long)r2, (unsigned long long)r1);
    IT_ASSERT(r->n_ops == 1 && r->ops[0].n_kvs == 1 && kv_is(&r->ops[0].kvs[0], "k1", "v1"),
              "put with prev_kv returns the previous value");
    cairn_result_free(r);

    IT_ASSERT_OK(cairn_get(c, "k1", 2, NULL, &r), c);
    kv = only_kv(r);
    IT_ASSERT(kv_is(kv, "k1", "v2"), "current value");
    IT_ASSERT(kv->create_revision == r1 && kv->mod_revision == r2 && kv->version == 2,
              "k1: create %llu mod %llu version %llu", (unsigned long long)kv->create_revision,
              (unsigned long long)kv->mod_revision, (unsigned long long)kv->version);
    IT_ASSERT(kv->time_ms > 0 && !kv->deleted, "k1 carries a time and is live");
    cairn_result_free(r);

    at.revision = r1;
    expect_get(c, "k1", &at, "v1", r1);
    at.revision = r2 + 1000000;
    IT_ASSERT(cairn_get(c, "k1", 2, &at, NULL) == CAIRN_EFUTUREREV, "read in the future: %s",
              cairn_errmsg(c));
    IT_ASSERT(cairn_get(c, "nope", 4, NULL, NULL) == CAIRN_ENOTFOUND, "missing key: %s",
              cairn_errmsg(c));
    *r1_out = r1;
    *r2_out = r2;
}

static void prefix_pages(cairn_client *c)
{
    struct cairn_get_opts opts = {.prefix = true, .limit = 3};
    struct cairn_result *r = NULL;
    char last[32] = "";
    unsigned seen = 0;
    unsigned i;
    for (i = 0; i < 10; i++) {
        char key[32];
        char value[32];
        snprintf(key, sizeof(key), "dir/%02u", i);
        snprintf(value, sizeof(value), "value %u", i);
        put(c, key, value);
    }
    put(c, "dis", "not under dir/");
    /* Pages of 3 in key order, continuing after the last key seen. */
    for (;;) {
        size_t j;
        IT_ASSERT_OK(cairn_get(c, "dir/", 4, &opts, &r), c);
        IT_ASSERT(r->n_ops == 1 && r->ops[0].n_kvs <= 3, "a page holds at most limit keys");
        for (j = 0; j < r->ops[0].n_kvs; j++) {
            char want[32];
            const struct cairn_kv *kv = &r->ops[0].kvs[j];
            snprintf(want, sizeof(want), "dir/%02u", seen);
            IT_ASSERT(kv->key_len == strlen(want) && memcmp(kv->key, want, kv->key_len) == 0,
                      "page key %u is \"%.*s\"", seen, (int)kv->key_len, kv->key);
            snprintf(last, sizeof(last), "%.*s", (int)kv->key_len, kv->key);
            seen++;
        }
        if (!r->ops[0].more) {
            cairn_result_free(r);
            break;
        }
        cairn_result_free(r);
        opts.after = last;
        opts.after_len = strlen(last);
        IT_ASSERT(seen <= 10, "pagination does not end");
    }
    IT_ASSERT(seen == 10, "prefix range returned %u keys, want 10", seen);
}

static void deletes(cairn_client *c)
{
    struct cairn_del_opts prev = {.prev_kv = true};
    struct cairn_del_opts prefix = {.prefix = true};
    struct cairn_get_opts at = {0};
    struct cairn_result *r = NULL;
    uint64_t before;
    before = put(c, "gone", "soon");
    IT_ASSERT_OK(cairn_del(c, "gone", 4, &prev, &r), c);
    IT_ASSERT(r->revision == before + 1, "delete is the next revision");
    IT_ASSERT(r->n_ops == 1 && r->ops[0].deleted == 1, "deleted one key");
    IT_ASSERT(r->ops[0].n_kvs == 1 && kv_is(&r->ops[0].kvs[0], "gone", "soon"),
              "delete with prev_kv returns the value");
    cairn_result_free(r);
    IT_ASSERT(cairn_get(c, "gone", 4, NULL, NULL) == CAIRN_ENOTFOUND, "deleted key is gone");
    at.revision = before;
    expect_get(c, "gone", &at, "soon", before);

    IT_ASSERT_OK(cairn_del(c, "dir/", 4, &prefix, &r), c);
    IT_ASSERT(r->n_ops == 1 && r->ops[0].deleted == 10, "prefix delete removed %llu keys",
              (unsigned long long)(r->n_ops == 1 ? r->ops[0].deleted : 0));
    cairn_result_free(r);
    {
        struct cairn_get_opts range = {.prefix = true};
        IT_ASSERT_OK(cairn_get(c, "dir/", 4, &range, &r), c);
        IT_ASSERT(r->n_ops == 1 && r->ops[0].n_kvs == 0, "prefix is empty after delete");
        cairn_result_free(r);
    }
    expect_get(c, "dis", NULL, "not under dir/", 0);
}

static void cas_and_txn(cairn_client *c, uint64_t r2)
{
    struct cairn_result *r = NULL;
    uint64_t r3;
    uint64_t mod_a;

    /* Compare-and-swap on mod_revision. */
    IT_ASSERT(cairn_cas(c, "k1", 2, r2 - 1, "lost", 4, &r) == CAIRN_ECOMPARE, "stale cas: %s",
              cairn_errmsg(c));
    IT_ASSERT(r != NULL && !r->succeeded, "failed cas fills the result");
    IT_ASSERT(r->n_ops == 1 && r->ops[0].n_kvs == 1 && kv_is(&r->ops[0].kvs[0], "k1", "v2"),
              "failed cas returns the current value");
    cairn_result_free(r);
    IT_ASSERT_OK(cairn_cas(c, "k1", 2, r2, "v3", 2, &r), c);
    IT_ASSERT(r->succeeded, "cas succeeded");
    r3 = r->revision;
    cairn_result_free(r);
    expect_get(c, "k1", NULL, "v3", r3);
    IT_ASSERT_OK(cairn_cas(c, "fresh", 5, 0, "created", 7, NULL), c);
    IT_ASSERT(cairn_cas(c, "fresh", 5, 0, "again", 5, NULL) == CAIRN_ECOMPARE,
              "create-if-absent on an existing key must fail");

    /* A transaction whose compares hold: both puts in one revision. */
    {
        struct cairn_compare cmp = {.key = "k1",
                                    .key_len = 2,
                                    .target = CAIRN_CMP_VALUE,
                                    .op = CAIRN_CMP_EQUAL,
                                    .value = "v3",
                                    .value_len = 2};
        struct cairn_compare ver = {.key = "k1",
                                    .key_len = 2,
                                    .target = CAIRN_CMP_VERSION,
                                    .op = CAIRN_CMP_EQUAL,
                                    .number = 3};
        struct cairn_compare cmps[2] = {cmp, ver};
        struct cairn_op then_ops[3] = {
            {.type = CAIRN_OP_PUT, .key = "ta", .key_len = 2, .value = "A", .value_len = 1},
            {.type = CAIRN_OP_PUT, .key = "tb", .key_len = 2, .value = "B", .value_len = 1},
            {.type = CAIRN_OP_GET, .key = "k1", .key_len = 2},
        };
        struct cairn_op else_ops[1] = {
            {.type = CAIRN_OP_PUT, .key = "tc", .key_len = 2, .value = "C", .value_len = 1},
        };
        struct cairn_txn txn = {.compares = cmps,
                                .n_compares = 2,
                                .then_ops = then_ops,
                                .n_then = 3,
                                .else_ops = else_ops,
                                .n_else = 1};
        uint64_t before;
        IT_ASSERT_OK(cairn_get(c, "k1", 2, NULL, &r), c);
        before = r->revision;
        cairn_result_free(r);
        IT_ASSERT_OK(cairn_txn(c, &txn, &r), c);
        IT_ASSERT(r->succeeded, "compares held");
        IT_ASSERT(r->revision == before + 1, "a transaction is one revision (%llu after %llu)",
                  (unsigned long long)r->revision, (unsigned long long)before);
        IT_ASSERT(r->n_ops == 3, "one result per then-operation, got %zu", r->n_ops);
        IT_ASSERT(r->ops[2].n_kvs == 1 && kv_is(&r->ops[2].kvs[0], "k1", "v3"),
                  "get inside the transaction");
        mod_a = r->revision;
        cairn_result_free(r);
        expect_get(c, "ta", NULL, "A", mod_a);
        expect_get(c, "tb", NULL, "B", mod_a);
        IT_ASSERT(cairn_get(c, "tc", 2, NULL, NULL) == CAIRN_ENOTFOUND, "else branch not run");

        /* After k1 changes, the same transaction's compares fail and the
         * else branch runs, in one revision as well. */
        put(c, "k1", "v4");
        IT_ASSERT_OK(cairn_txn(c, &txn, &r), c);
        IT_ASSERT(!r->succeeded, "compares failed");
        IT_ASSERT(r->n_ops == 1, "one result per else-operation");
        cairn_result_free(r);
        expect_get(c, "tc", NULL, "C", 0);
    }

    /* A read-only transaction is a read: served, revision reported. */
    {
        struct cairn_op gets[2] = {
            {.type = CAIRN_OP_GET, .key = "ta", .key_len = 2},
            {.type = CAIRN_OP_GET, .key = "t", .key_len = 1, .prefix = true},
        };
        struct cairn_txn txn = {.then_ops = gets, .n_then = 2};
        IT_ASSERT_OK(cairn_txn(c, &txn, &r), c);
        IT_ASSERT(r->succeeded && r->n_ops == 2, "read-only transaction");
        IT_ASSERT(r->ops[1].n_kvs == 3, "prefix t holds ta, tb, tc (got %zu)", r->ops[1].n_kvs);
        cairn_result_free(r);
    }
}

static void history_and_compact(cairn_client *c, uint64_t r1, uint64_t r2)
{
    struct cairn_result *r = NULL;
    struct cairn_get_opts at = {0};
    uint64_t now;
    size_t i;

    /* k1: v1 (r1), v2 (r2), v3, v4: newest first. */
    IT_ASSERT_OK(cairn_history(c, "k1", 2, 0, &r), c);
    IT_ASSERT(r->n_ops == 1 && r->ops[0].n_kvs == 4, "k1 has 4 versions, got %zu",
              r->n_ops == 1 ? r->ops[0].n_kvs : 0);
    IT_ASSERT(kv_is(&r->ops[0].kvs[0], "k1", "v4") && kv_is(&r->ops[0].kvs[3], "k1", "v1"),
              "history is newest first");
    for (i = 0; i + 1 < r->ops[0].n_kvs; i++) {
        IT_ASSERT(r->ops[0].kvs[i].mod_revision > r->ops[0].kvs[i + 1].mod_revision &&
                      r->ops[0].kvs[i].version == r->ops[0].kvs[i + 1].version + 1,
                  "history entry %zu", i);
    }
    cairn_result_free(r);
    IT_ASSERT_OK(cairn_history(c, "k1", 2, 2, &r), c);
    IT_ASSERT(r->ops[0].n_kvs == 2, "history limit");
    cairn_result_free(r);

    /* Compact at r2: v2 (the newest at or before r2) stays readable, v1 not. */
    IT_ASSERT_OK(cairn_compact(c, r2, &r), c);
    now = r->revision;
    cairn_result_free(r);
    at.revision = r1;
    IT_ASSERT(cairn_get(c, "k1", 2, &at, NULL) == CAIRN_ECOMPACTED, "read below compaction: %s",
              cairn_errmsg(c));
    at.revision = r2;
    expect_get(c, "k1", &at, "v2", r2);
    IT_ASSERT_OK(cairn_history(c, "k1", 2, 0, &r), c);
    IT_ASSERT(r->ops[0].n_kvs == 3, "history after compaction holds 3 versions, got %zu",
              r->ops[0].n_kvs);
    IT_ASSERT(r->compact_revision == r2, "result reports compact_revision %llu",
              (unsigned long long)r->compact_revision);
    cairn_result_free(r);
    it_log("compacted at %llu (store at %llu)", (unsigned long long)r2, (unsigned long long)now);
}

/* Step 3: every node reports the same state and serves the same data. */
static void converged(struct it_cluster *c, uint64_t r2)
{
    uint64_t rev = it_wait_converged(c, 20000);
    unsigned id;
    struct cairn_result *first = NULL;
    for (id = 1; id <= c->n; id++) {
        cairn_client *alone = it_client(c, id, TIMEOUT_MS);
        struct cairn_get_opts all = {.stale = true, .prefix = true};
        struct cairn_status *st = NULL;
        struct cairn_result *r = NULL;
        size_t i;
        IT_ASSERT_OK(cairn_status(c->admin, it_node(c, id)->client_addr, &st), c->admin);
        IT_ASSERT(st->revision == rev && st->compact_revision == r2,
                  "node %u: revision %llu compact %llu", id, (unsigned long long)st->revision,
                  (unsigned long long)st->compact_revision);
        IT_ASSERT(st->n_members == 3, "node %u lists %zu members", id, st->n_members);
        cairn_status_free(st);
        IT_ASSERT_OK(cairn_get(alone, "", 0, &all, &r), alone);
        IT_ASSERT(r->revision == rev, "node %u answered at %llu, want %llu", id,
                  (unsigned long long)r->revision, (unsigned long long)rev);
        if (first == NULL) {
            first = r;
        } else {
            IT_ASSERT(r->ops[0].n_kvs == first->ops[0].n_kvs, "node %u holds %zu keys, not %zu", id,
                      r->ops[0].n_kvs, first->ops[0].n_kvs);
            for (i = 0; i < r->ops[0].n_kvs; i++) {
                const struct cairn_kv *a = &r->ops[0].kvs[i];
                const struct cairn_kv *b = &first->ops[0].kvs[i];
                IT_ASSERT(a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0 &&
                              a->value_len == b->value_len &&
                              memcmp(a->value, b->value, a->value_len) == 0 &&
                              a->mod_revision == b->mod_revision && a->version == b->version &&
                              a->time_ms == b->time_ms,
                          "node %u differs at key %zu", id, i);
            }
            cairn_result_free(r);
        }
        cairn_client_free(alone);
    }
    it_log("all nodes at revision %llu with %zu identical keys", (unsigned long long)rev,
           first->ops[0].n_kvs);
    cairn_result_free(first);
}

/* Step 4: a stale read is answered by the node itself. With the two other
 * nodes gone, a follower still answers stale reads from its own state, at
 * the revision it has, while a linearizable read cannot be confirmed. */
static void alone_in_the_dark(struct it_cluster *c, unsigned leader, uint64_t rev)
{
    unsigned follower = leader == 1 ? 2 : 1;
    cairn_client *alone = it_client(c, follower, 3000);
    struct cairn_get_opts stale = {.stale = true};
    struct cairn_result *r = NULL;
    unsigned id;
    int rv;
    for (id = 1; id <= c->n; id++) {
        if (id != follower) {
            it_node_kill(c, id);
        }
    }
    IT_ASSERT_OK(cairn_get(alone, "ta", 2, &stale, &r), alone);
    IT_ASSERT(kv_is(only_kv(r), "ta", "A") && r->revision == rev,
              "isolated node %u: stale read at revision %llu, want %llu", follower,
              (unsigned long long)r->revision, (unsigned long long)rev);
    cairn_result_free(r);
    rv = cairn_get(alone, "ta", 2, NULL, NULL);
    IT_ASSERT(rv != 0, "a linearizable read answered without a majority");
    it_log("isolated node %u: stale read answered at revision %llu; linearizable read: %s (%s)",
           follower, (unsigned long long)rev, cairn_errname(rv), cairn_errmsg(alone));
    cairn_client_free(alone);
}

int main(void)
{
    struct it_cluster *c;
    cairn_client *client;
    unsigned leader;
    uint64_t r1;
    uint64_t r2;

    it_init("it_basic", IT_TIMEOUT_S);
    c = it_cluster_new(3, NULL);
    leader = it_cluster_start(c);
    through_each_node(c, leader);

    client = it_client(c, 0, TIMEOUT_MS);
    puts_and_gets(client, &r1, &r2);
    prefix_pages(client);
    deletes(client);
    cas_and_txn(client, r2);
    history_and_compact(client, r1, r2);
    converged(c, r2);
    cairn_client_free(client);
    alone_in_the_dark(c, leader, it_wait_converged(c, 20000));
    it_cluster_free(c);
    it_log("PASS");
    return 0;
}
