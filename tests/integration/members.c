#include "members.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "buf.h"
#include "json.h"

static bool parse_list(const char *json, size_t len, struct it_members *out, bool *is_leader)
{
    struct arena a;
    struct json_value *doc = NULL;
    const struct json_value *v;
    const struct json_value *e;
    char err[128];
    bool ok = false;
    memset(out, 0, sizeof(*out));
    arena_init(&a);
    if (json_parse(json, len, &a, &doc, err, sizeof(err)) != 0) {
        it_fail(__FILE__, __LINE__, "json_parse", "member list: %s: %.300s", err, json);
    }
    v = json_get(doc, "state");
    *is_leader = v != NULL && v->type == JSON_STRING && strcmp(v->str, "leader") == 0;
    v = json_get(doc, "leader_id");
    out->leader_id = v != NULL && v->is_uint ? v->uint : 0;
    v = json_get(doc, "configuration_index");
    out->configuration_index = v != NULL && v->is_uint ? v->uint : 0;
    v = json_get(doc, "members");
    if (v != NULL && v->type == JSON_ARRAY) {
        ok = true;
        for (e = v->child; e != NULL && out->n < MEMBERS_MAX; e = e->next) {
            struct it_member *m = &out->members[out->n++];
            const struct json_value *f = json_get(e, "id");
            const struct json_value *raft = json_get(e, "raft_address");
            const struct json_value *client = json_get(e, "client_address");
            m->id = f != NULL && f->is_uint ? f->uint : 0;
            f = json_get(e, "role");
            snprintf(m->role, sizeof(m->role), "%s", f != NULL && f->str != NULL ? f->str : "");
            snprintf(m->address, sizeof(m->address), "%s/%s",
                     raft != NULL && raft->str != NULL ? raft->str : "",
                     client != NULL && client->str != NULL ? client->str : "");
            f = json_get(e, "caught_up");
            m->caught_up = f != NULL && f->type == JSON_BOOL && f->boolean;
            f = json_get(e, "reachable");
            m->reachable = f != NULL && f->type == JSON_BOOL && f->boolean;
            f = json_get(e, "match_index");
            m->match_index = f != NULL && f->is_uint ? f->uint : 0;
        }
    }
    arena_free(&a);
    return ok;
}

unsigned it_members_get(struct it_cluster *c, struct it_members *out)
{
    unsigned i;
    for (i = 1; i <= c->n; i++) {
        char *json = NULL;
        size_t len = 0;
        bool leader = false;
        if (!it_node_running(c, i) ||
            cairn_members(c->admin, it_node(c, i)->client_addr, &json, &len) != 0) {
            continue;
        }
        if (parse_list(json, len, out, &leader) && leader) {
            free(json);
            return i;
        }
        free(json);
    }
    memset(out, 0, sizeof(*out));
    return 0;
}

unsigned it_members_wait(struct it_cluster *c, struct it_members *out, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        unsigned leader = it_members_get(c, out);
        if (leader != 0) {
            return leader;
        }
        IT_ASSERT(it_now_ms() < deadline, "no leader answered member list within %d ms",
                  timeout_ms);
        it_sleep_ms(50);
    }
}

const struct it_member *it_members_find(const struct it_members *m, uint64_t id)
{
    size_t i;
    for (i = 0; i < m->n; i++) {
        if (m->members[i].id == id) {
            return &m->members[i];
        }
    }
    return NULL;
}

void it_member_address(struct it_cluster *c, unsigned id, char *out, size_t n)
{
    struct it_node *node = it_node(c, id);
    snprintf(out, n, "%s/%s", node->raft_addr, node->client_addr);
}

int it_member_change(struct it_cluster *c, const char *verb, unsigned id, char *msg, size_t n)
{
    char address[128];
    char *json = NULL;
    cairn_client *admin = it_client(c, 0, 10000);
    int rv;
    it_member_address(c, id, address, sizeof(address));
    rv = cairn_member_change(admin, verb, id, strcmp(verb, "add") == 0 ? address : NULL, &json,
                             NULL);
    if (msg != NULL) {
        snprintf(msg, n, "%s", rv == 0 ? json : cairn_errmsg(admin));
    }
    it_log("member %s %u: %s%s%s", verb, id, rv == 0 ? "ok " : cairn_errname(rv),
           rv == 0 ? json : ": ", rv == 0 ? "" : cairn_errmsg(admin));
    free(json);
    cairn_client_free(admin);
    return rv;
}

void it_members_wait_caught_up(struct it_cluster *c, unsigned id, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        struct it_members list;
        const struct it_member *m;
        it_members_wait(c, &list, timeout_ms);
        m = it_members_find(&list, id);
        IT_ASSERT(m != NULL, "node %u is not listed", id);
        if (m->caught_up) {
            it_log("node %u caught up (match index %llu)", id, (unsigned long long)m->match_index);
            return;
        }
        IT_ASSERT(it_now_ms() < deadline, "node %u did not catch up within %d ms (match %llu)", id,
                  timeout_ms, (unsigned long long)m->match_index);
        it_sleep_ms(100);
    }
}

void it_member_wait_removed_exit(struct it_cluster *c, unsigned id, size_t from, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    int status = 0;
    char needle[96];
    char *log;
    while (!it_node_exited(c, id, &status)) {
        IT_ASSERT(it_now_ms() < deadline, "removed node %u still runs after %d ms", id, timeout_ms);
        it_sleep_ms(50);
    }
    IT_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "removed node %u exits with status 0 (status %#x)", id, status);
    log = it_read_file(it_node(c, id)->log_path, from);
    IT_ASSERT(log != NULL, "read node %u's log", id);
    snprintf(needle, sizeof(needle), "no longer lists node %u); stopping", id);
    IT_ASSERT(strstr(log, "removed from the cluster (configuration at index ") != NULL &&
                  strstr(log, needle) != NULL,
              "node %u's log does not say it was removed:\n%s", id, log);
    free(log);
}

void it_member_start_joining(struct it_cluster *c, unsigned id)
{
    struct it_node *node = it_node(c, id);
    struct cairn_status *st = NULL;
    int64_t deadline;
    size_t i = 0;
    bool flagged = false;
    while (node->args[i] != NULL) {
        flagged = flagged || strcmp(node->args[i], "--join") == 0;
        i++;
    }
    if (!flagged) {
        IT_ASSERT(i + 2 < IT_ARGS_MAX, "too many flags for node %u", id);
        node->args[i] = "--join";
        node->args[i + 1] = "1";
        node->args[i + 2] = NULL;
    }
    it_node_start(c, id);
    /* Ready once it answers (it listens only after raft has started). */
    deadline = it_now_ms() + 10000;
    while (it_node_status(c, id, &st) != 0) {
        IT_ASSERT(it_now_ms() < deadline, "joining node %u does not answer status", id);
        it_sleep_ms(25);
    }
    IT_ASSERT(st->n_members == 0, "joining node %u lists %zu members", id, st->n_members);
    cairn_status_free(st);
}

void it_members_initial(struct it_cluster *c, unsigned n)
{
    size_t off = 0;
    unsigned i;
    c->initial_cluster[0] = '\0';
    for (i = 1; i <= n; i++) {
        struct it_node *node = it_node(c, i);
        off +=
            (size_t)snprintf(c->initial_cluster + off, sizeof(c->initial_cluster) - off,
                             "%s%u=%s/%s", i > 1 ? "," : "", i, node->raft_addr, node->client_addr);
        IT_ASSERT(off < sizeof(c->initial_cluster), "initial cluster too long");
    }
}

uint64_t it_member_snapshots_restored(struct it_cluster *c, unsigned id)
{
    static const char series[] = "cairn_snapshots_total{kind=\"restored\"} ";
    char *text = NULL;
    const char *line;
    unsigned long long n = 0;
    IT_ASSERT_OK(cairn_metrics_text(c->admin, it_node(c, id)->client_addr, &text, NULL), c->admin);
    line = strstr(text, series);
    IT_ASSERT(line != NULL, "node %u's metrics lack %s", id, series);
    IT_ASSERT(sscanf(line + sizeof(series) - 1, "%llu", &n) == 1, "node %u: %.80s", id, line);
    free(text);
    return n;
}

/* Whether the leader's list shows the change done. */
static bool change_done(struct it_cluster *c, const char *verb, unsigned id)
{
    struct it_members list;
    const struct it_member *m;
    it_members_wait(c, &list, 20000);
    m = it_members_find(&list, id);
    if (strcmp(verb, "remove") == 0) {
        return m == NULL;
    }
    if (m == NULL) {
        return false;
    }
    return strcmp(m->role, strcmp(verb, "promote") == 0 ? "voter" : "standby") == 0;
}

void it_member_ensure(struct it_cluster *c, const char *verb, unsigned id)
{
    char msg[512];
    int attempt;
    for (attempt = 1;; attempt++) {
        int rv = it_member_change(c, verb, id, msg, sizeof(msg));
        if (rv == 0) {
            return;
        }
        if (rv == CAIRN_EBUSY && strcmp(verb, "promote") == 0 && strstr(msg, "caught up") &&
            attempt < 5) {
            /* Writes since it caught up put it behind again, as a user
             * would see it: wait for the catch-up and promote again. */
            it_members_wait_caught_up(c, id, 30000);
            continue;
        }
        IT_ASSERT(rv == CAIRN_EUNKNOWN || rv == CAIRN_ENOLEADER || rv == CAIRN_ETIMEOUT,
                  "member %s %u: %s: %s", verb, id, cairn_errname(rv), msg);
        if (change_done(c, verb, id)) {
            it_log("member %s %u took effect despite %s", verb, id, cairn_errname(rv));
            return;
        }
        IT_ASSERT(attempt < 5, "member %s %u: %s after %d attempts: %s", verb, id,
                  cairn_errname(rv), attempt, msg);
        it_sleep_ms(200);
    }
}
