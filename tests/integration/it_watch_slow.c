/*
 * it_watch_slow: a watcher that stops reading cannot make a node grow, and
 * loses nothing.
 *
 * A raw connection with a tiny receive buffer creates a prefix watch and
 * then stops reading while PUTS values of VALUE_BYTES are written under the
 * prefix (PUTS * VALUE_BYTES = 16 MiB of events). The node runs with a small
 * --watch-output-max-bytes, so the watcher must fall back to catching up from
 * history instead of queueing everything. The test asserts:
 *
 *  - memory: the node's resident set grows by about what the same writes
 *    cost with no watcher at all (measured first, on another prefix), plus
 *    far less than the 16 MiB the stalled watcher would otherwise queue;
 *  - completeness: once the watcher reads again, it receives every one of
 *    the PUTS changes, each exactly once, in revision order, with the values
 *    written;
 *  - the snapshot path: a second stalled watcher, on one key written more
 *    often than retention keeps versions, gets a SNAPSHOT holding the key's
 *    final value at the final revision (history no longer has what it
 *    missed), then the events after it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "raw.h"

#define PUTS 4000
#define VALUE_BYTES 4096
#define OUTPUT_MAX "262144"
#define QUEUE_MAX "64"
/* The key watcher must stall too, beyond what kernel socket buffers absorb
 * (up to 4 MiB with autotuning), on a key written far more often than the
 * default retention of 10 versions. */
#define HOT_PUTS 1000
#define HOT_VALUE_BYTES 8192
#define READ_TIMEOUT_MS 20000
/* The stalled watcher may cost this much more than no watcher at all: the
 * output bound, the kernel's share, allocator slack. Without the bound the
 * difference is the whole 16 MiB (more, with buffer doubling). */
#define RSS_SLACK_KIB (6 * 1024)

static long rss_kib(pid_t pid)
{
    char path[64];
    char line[256];
    long kib = -1;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    IT_ASSERT(f != NULL, "cannot read %s", path);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
        }
    }
    fclose(f);
    IT_ASSERT(kib >= 0, "no VmRSS in %s", path);
    return kib;
}

static void put_many(cairn_client *cl, const char *prefix, unsigned n, uint64_t *first_rev)
{
    char key[64];
    char *value = malloc(VALUE_BYTES);
    unsigned i;
    IT_ASSERT(value != NULL, "out of memory");
    for (i = 0; i < n; i++) {
        struct cairn_result *res = NULL;
        snprintf(key, sizeof(key), "%s%05u", prefix, i);
        memset(value, 'a' + (int)(i % 26), VALUE_BYTES);
        IT_ASSERT_OK(cairn_put(cl, key, strlen(key), value, VALUE_BYTES, NULL, &res), cl);
        if (i == 0 && first_rev != NULL) {
            *first_rev = res->revision;
        }
        cairn_result_free(res);
    }
    free(value);
}

static int create_watch(int port, const char *key, bool prefix, uint64_t id)
{
    struct proto_request req;
    struct proto_response resp;
    int fd = it_raw_connect(port, 4096);
    memset(&req, 0, sizeof(req));
    req.id = id;
    req.type = PROTO_WATCH;
    req.op.type = CAIRN_OP_GET;
    req.op.key.ptr = key;
    req.op.key.len = (uint32_t)strlen(key);
    req.op.prefix = prefix;
    it_raw_send_request(fd, &req);
    IT_ASSERT(it_raw_read_response(fd, READ_TIMEOUT_MS, &resp) == 1, "no answer to the watch");
    IT_ASSERT(resp.code == 0, "watch refused: %s", resp.message);
    IT_ASSERT(resp.watch != NULL && resp.watch->kind == PROTO_WATCH_CREATED, "no CREATED");
    proto_response_free(&resp);
    return fd;
}

/* The stalled prefix watcher reads again: every change, once, in order. */
static void check_complete(int fd, uint64_t first_rev)
{
    unsigned seen = 0;
    uint64_t last_rev = first_rev - 1;
    char key[64];
    while (seen < PUTS) {
        struct proto_response resp;
        size_t i;
        IT_ASSERT(it_raw_read_response(fd, READ_TIMEOUT_MS, &resp) == 1,
                  "the watcher stopped after %u of %u events", seen, PUTS);
        IT_ASSERT(resp.watch != NULL, "not a watch message");
        if (resp.watch->kind == PROTO_WATCH_PROGRESS) {
            proto_response_free(&resp);
            continue;
        }
        IT_ASSERT(resp.watch->kind == PROTO_WATCH_EVENTS, "kind %u after %u events",
                  resp.watch->kind, seen);
        for (i = 0; i < resp.watch->n_events; i++) {
            const struct cairn_event *e = &resp.watch->events[i];
            snprintf(key, sizeof(key), "slow/%05u", seen);
            IT_ASSERT(e->kv.mod_revision == last_rev + 1,
                      "event %u has revision %llu, expected %llu", seen,
                      (unsigned long long)e->kv.mod_revision, (unsigned long long)last_rev + 1);
            IT_ASSERT(e->kv.key_len == strlen(key) && memcmp(e->kv.key, key, e->kv.key_len) == 0,
                      "event %u is for the wrong key", seen);
            IT_ASSERT(e->kv.value_len == VALUE_BYTES && e->kv.value[0] == 'a' + (int)(seen % 26),
                      "event %u carries the wrong value", seen);
            last_rev = e->kv.mod_revision;
            seen++;
        }
        IT_ASSERT(resp.result->revision == last_rev, "message revision %llu after event %llu",
                  (unsigned long long)resp.result->revision, (unsigned long long)last_rev);
        proto_response_free(&resp);
    }
    it_log("the stalled watcher received all %u changes in order", seen);
}

/* The stalled key watcher: some early events may have been queued before it
 * stalled; then a snapshot with the final value; then new events. */
static void check_snapshot(int fd, cairn_client *cl, uint64_t final_rev)
{
    bool snapshot = false;
    uint64_t last_rev = 0;
    struct cairn_result *res = NULL;
    while (!snapshot) {
        struct proto_response resp;
        IT_ASSERT(it_raw_read_response(fd, READ_TIMEOUT_MS, &resp) == 1, "no snapshot came");
        IT_ASSERT(resp.watch != NULL, "not a watch message");
        if (resp.watch->kind == PROTO_WATCH_EVENTS) {
            IT_ASSERT(resp.result->revision > last_rev, "revisions went backwards");
            last_rev = resp.result->revision;
        } else if (resp.watch->kind == PROTO_WATCH_SNAPSHOT) {
            IT_ASSERT(resp.watch->part == 0 && !resp.watch->more, "a one-part snapshot");
            IT_ASSERT(resp.result->revision == final_rev, "snapshot at %llu, expected %llu",
                      (unsigned long long)resp.result->revision, (unsigned long long)final_rev);
            IT_ASSERT(resp.watch->n_events == 1, "one key");
            IT_ASSERT(resp.watch->events[0].kv.mod_revision == final_rev, "final revision");
            IT_ASSERT(resp.watch->events[0].kv.value_len == 3 &&
                          memcmp(resp.watch->events[0].kv.value, "end", 3) == 0,
                      "the final value");
            snapshot = true;
        }
        proto_response_free(&resp);
    }
    IT_ASSERT(last_rev < final_rev, "the watcher got every event: it never stalled");
    /* Events continue after the snapshot. */
    IT_ASSERT_OK(cairn_put(cl, "hot", 3, "after", 5, NULL, &res), cl);
    for (;;) {
        struct proto_response resp;
        IT_ASSERT(it_raw_read_response(fd, READ_TIMEOUT_MS, &resp) == 1, "no event after snapshot");
        IT_ASSERT(resp.watch != NULL, "not a watch message");
        if (resp.watch->kind == PROTO_WATCH_EVENTS) {
            IT_ASSERT(resp.watch->n_events == 1, "one key");
            IT_ASSERT(resp.watch->events[0].kv.mod_revision == res->revision, "the new put");
            proto_response_free(&resp);
            break;
        }
        IT_ASSERT(resp.watch->kind == PROTO_WATCH_PROGRESS, "only progress between");
        proto_response_free(&resp);
    }
    cairn_result_free(res);
    it_log("the stalled key watcher got a snapshot at %llu, then events",
           (unsigned long long)final_rev);
}

int main(void)
{
    static const char *const args[] = {"--watch-output-max-bytes", OUTPUT_MAX,
                                       "--watch-queue-events-max", QUEUE_MAX, NULL};
    struct it_cluster *c;
    struct it_node *n;
    cairn_client *cl;
    long before;
    long baseline;
    long stalled;
    uint64_t first_rev = 0;
    uint64_t final_rev = 0;
    int fd;
    int hot_fd;
    char *hot;
    unsigned i;

    it_init("it_watch_slow", IT_TIMEOUT_S);
    c = it_cluster_new(1, args);
    it_cluster_start(c);
    n = it_node(c, 1);
    cl = it_client(c, 1, 10000);

    /* Warm the allocator up, then measure the writes alone. */
    put_many(cl, "warm/", PUTS / 4, NULL);
    before = rss_kib(n->pid);
    put_many(cl, "base/", PUTS, NULL);
    baseline = rss_kib(n->pid) - before;
    it_log("no watcher: %u puts of %u bytes grew the node by %ld KiB", PUTS, VALUE_BYTES, baseline);

    fd = create_watch(n->client_port, "slow/", true, 1);
    hot_fd = create_watch(n->client_port, "hot", false, 2);
    before = rss_kib(n->pid);
    put_many(cl, "slow/", PUTS, &first_rev);
    stalled = rss_kib(n->pid) - before;
    it_log("a stalled watcher: the same puts grew the node by %ld KiB", stalled);
    IT_ASSERT(stalled < baseline + RSS_SLACK_KIB,
              "a stalled watcher cost %ld KiB more than no watcher (bound %d KiB)",
              stalled - baseline, RSS_SLACK_KIB);

    hot = malloc(HOT_VALUE_BYTES);
    IT_ASSERT(hot != NULL, "out of memory");
    memset(hot, 'h', HOT_VALUE_BYTES);
    for (i = 0; i < HOT_PUTS; i++) {
        struct cairn_result *res = NULL;
        bool last = i == HOT_PUTS - 1;
        IT_ASSERT_OK(
            cairn_put(cl, "hot", 3, last ? "end" : hot, last ? 3 : HOT_VALUE_BYTES, NULL, &res),
            cl);
        final_rev = res->revision;
        cairn_result_free(res);
    }
    free(hot);
    check_complete(fd, first_rev);
    check_snapshot(hot_fd, cl, final_rev);
    {
        struct cairn_status *st = NULL;
        IT_ASSERT(it_node_status(c, 1, &st) == 0, "status");
        it_log("status: %llu watchers, %llu catch-ups, %llu snapshots, %llu events sent",
               (unsigned long long)st->watchers, (unsigned long long)st->watch_catchups,
               (unsigned long long)st->watch_snapshots, (unsigned long long)st->watch_events);
        IT_ASSERT(st->watchers == 2, "the node counts %llu watchers",
                  (unsigned long long)st->watchers);
        IT_ASSERT(st->watch_catchups >= 2, "both watchers fell behind");
        IT_ASSERT(st->watch_snapshots >= 1, "the key watcher got a snapshot");
        cairn_status_free(st);
    }
    close(fd);
    close(hot_fd);
    cairn_client_free(cl);
    it_cluster_free(c);
    return 0;
}
