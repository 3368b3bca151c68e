#include "writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *writer_main(void *arg)
{
    struct it_writer *w = arg;
    cairn_client *c = it_client(w->cluster, 0, 10000);
    size_t plen = strlen(w->prefix);
    int64_t last_ack = it_now_ms();
    unsigned i;
    for (i = 0; i < w->max; i++) {
        char key[64];
        struct cairn_result *r = NULL;
        int rv;
        pthread_mutex_lock(&w->mu);
        if (w->stop) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        pthread_mutex_unlock(&w->mu);
        snprintf(key, sizeof(key), "%.*s%06u", (int)plen, w->prefix, i);
        rv = cairn_put(c, key, strlen(key), key, strlen(key), NULL, &r);
        pthread_mutex_lock(&w->mu);
        w->n = i + 1;
        if (rv == 0) {
            int64_t now = it_now_ms();
            w->rev[i] = r->revision;
            w->outcome[i] = IT_WRITE_ACKED;
            w->acked++;
            if (now - last_ack > w->longest_gap_ms) {
                w->longest_gap_ms = now - last_ack;
            }
            last_ack = now;
        } else if (rv == CAIRN_EUNKNOWN) {
            w->outcome[i] = IT_WRITE_UNKNOWN;
            w->unknown++;
        } else {
            w->outcome[i] = IT_WRITE_FAILED;
            w->failed++;
        }
        pthread_mutex_unlock(&w->mu);
        if (rv != 0) {
            it_log("write %u: %s: %s", i, cairn_errname(rv), cairn_errmsg(c));
        }
        cairn_result_free(r);
    }
    cairn_client_free(c);
    return NULL;
}

void it_writer_start(struct it_writer *w, struct it_cluster *c, const char *prefix, unsigned max)
{
    memset(w, 0, sizeof(*w));
    w->cluster = c;
    w->prefix = prefix;
    w->max = max;
    w->rev = calloc(max, sizeof(*w->rev));
    w->outcome = calloc(max, sizeof(*w->outcome));
    IT_ASSERT(w->rev != NULL && w->outcome != NULL, "out of memory");
    pthread_mutex_init(&w->mu, NULL);
    IT_ASSERT(pthread_create(&w->thread, NULL, writer_main, w) == 0, "pthread_create");
}

unsigned it_writer_acked(struct it_writer *w)
{
    unsigned n;
    pthread_mutex_lock(&w->mu);
    n = w->acked;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void it_writer_wait(struct it_writer *w, unsigned more, int timeout_ms)
{
    unsigned want = it_writer_acked(w) + more;
    int64_t deadline = it_now_ms() + timeout_ms;
    while (it_writer_acked(w) < want) {
        IT_ASSERT(it_now_ms() < deadline, "only %u of %u writes acknowledged", it_writer_acked(w),
                  want);
        it_sleep_ms(10);
    }
}

void it_writer_stop(struct it_writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    it_log("writer done: %u writes, %u acknowledged, %u unknown, %u failed; longest pause "
           "between acknowledgments %lld ms",
           w->n, w->acked, w->unknown, w->failed, (long long)w->longest_gap_ms);
}

void it_writer_check(struct it_writer *w, struct it_cluster *c, unsigned node)
{
    uint64_t *found = calloc(w->n + 1, sizeof(*found));
    cairn_client *alone = it_client(c, node, 10000);
    struct cairn_get_opts all = {.stale = true, .prefix = true};
    struct cairn_result *r = NULL;
    size_t plen = strlen(w->prefix);
    unsigned present_unknown = 0;
    size_t k;
    IT_ASSERT(found != NULL, "out of memory");
    IT_ASSERT_OK(cairn_get(alone, w->prefix, plen, &all, &r), alone);
    IT_ASSERT(!r->ops[0].more, "node %u: range cut short", node);
    for (k = 0; k < r->ops[0].n_kvs; k++) {
        const struct cairn_kv *kv = &r->ops[0].kvs[k];
        char *end = NULL;
        unsigned long j = kv->key_len > plen ? strtoul(kv->key + plen, &end, 10) : w->n;
        IT_ASSERT(end != NULL && end == kv->key + kv->key_len && j < w->n,
                  "node %u: stray key %.*s", node, (int)kv->key_len, kv->key);
        IT_ASSERT(kv->value_len == kv->key_len && memcmp(kv->value, kv->key, kv->key_len) == 0,
                  "node %u: %.*s holds \"%.*s\"", node, (int)kv->key_len, kv->key,
                  (int)kv->value_len, kv->value);
        IT_ASSERT(kv->version == 1, "node %u: %.*s written once, version %llu", node,
                  (int)kv->key_len, kv->key, (unsigned long long)kv->version);
        IT_ASSERT(w->outcome[j] == IT_WRITE_ACKED || w->outcome[j] == IT_WRITE_UNKNOWN,
                  "node %u holds write %lu (%.*s), which certainly failed", node, j,
                  (int)kv->key_len, kv->key);
        if (w->outcome[j] == IT_WRITE_UNKNOWN) {
            present_unknown++;
        }
        found[j] = kv->mod_revision;
    }
    for (k = 0; k < w->n; k++) {
        IT_ASSERT(w->rev[k] == 0 || found[k] == w->rev[k],
                  "node %u lacks acknowledged write %s%06zu at revision %llu (has %llu)", node,
                  w->prefix, k, (unsigned long long)w->rev[k], (unsigned long long)found[k]);
    }
    it_log("node %u: all %u acknowledged writes present (and %u of %u with unknown outcome)", node,
           w->acked, present_unknown, w->unknown);
    cairn_result_free(r);
    cairn_client_free(alone);
    free(found);
}

uint64_t it_writer_check_order(struct it_writer *w)
{
    uint64_t prev = 0;
    unsigned i;
    for (i = 0; i < w->n; i++) {
        if (w->outcome[i] == IT_WRITE_ACKED) {
            IT_ASSERT(w->rev[i] > prev, "write %u acknowledged at revision %llu after %llu", i,
                      (unsigned long long)w->rev[i], (unsigned long long)prev);
            prev = w->rev[i];
        }
    }
    return prev;
}

void it_writer_free(struct it_writer *w)
{
    pthread_mutex_destroy(&w->mu);
    free(w->rev);
    free(w->outcome);
    w->rev = NULL;
    w->outcome = NULL;
}
