#include "member.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "json.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
/* How often add --voter looks at the new member's progress. */
#define CATCH_UP_POLL_MS 200

static int fail(cairn_client *c, int rv, const char *what)
{
    fprintf(stderr, "cairnctl: %s: %s (%s)\n", what, cairn_errmsg(c), cairn_errname(rv));
    return EXIT_FAIL;
}

static int parse_id(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    errno = 0;
    if (s == NULL || *s < '0' || *s > '9') {
        return -1;
    }
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0) {
        return -1;
    }
    *out = v;
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *str_member(const struct json_value *v, const char *name)
{
    const struct json_value *m = json_get(v, name);
    return m != NULL && m->type == JSON_STRING ? m->str : "";
}

/* A member's progress column: "caught up", "behind N", or "-" off the
 * leader. */
static void progress_text(const struct json_value *member, uint64_t last, char *out, size_t n)
{
    const struct json_value *match = json_get(member, "match_index");
    const struct json_value *caught = json_get(member, "caught_up");
    const struct json_value *reachable = json_get(member, "reachable");
    if (match == NULL || !match->is_uint) {
        snprintf(out, n, "-");
        return;
    }
    snprintf(out, n, "%s%s (%" PRIu64 "/%" PRIu64 ")",
             caught != NULL && caught->type == JSON_BOOL && caught->boolean ? "caught up"
                                                                            : "catching up",
             reachable != NULL && reachable->type == JSON_BOOL && !reachable->boolean
                 ? ", unreachable"
                 : "",
             match->uint, last);
}

static int print_list(const char *json, size_t len)
{
    struct arena a;
    struct json_value *doc = NULL;
    const struct json_value *members;
    const struct json_value *last;
    const struct json_value *e;
    char err[128];
    arena_init(&a);
    if (json_parse(json, len, &a, &doc, err, sizeof(err)) != 0 ||
        (members = json_get(doc, "members")) == NULL || members->type != JSON_ARRAY) {
        fprintf(stderr, "cairnctl: member list: the answer is not a member list\n");
        arena_free(&a);
        return EXIT_FAIL;
    }
    last = json_get(doc, "last_index");
    printf("%-6s %-8s %-22s %-22s %-9s %s\n", "ID", "ROLE", "RAFT ADDRESS", "CLIENT ADDRESS",
           "STATE", "PROGRESS");
    for (e = members->child; e != NULL; e = e->next) {
        const struct json_value *id = json_get(e, "id");
        const struct json_value *leader = json_get(e, "leader");
        char progress[96];
        progress_text(e, last != NULL && last->is_uint ? last->uint : 0, progress,
                      sizeof(progress));
        printf(
            "%-6" PRIu64 " %-8s %-22s %-22s %-9s %s\n", id != NULL ? id->uint : 0,
            str_member(e, "role"), str_member(e, "raft_address"), str_member(e, "client_address"),
            leader != NULL && leader->type == JSON_BOOL && leader->boolean ? "leader" : "follower",
            progress);
    }
    if (members->n == 0) {
        printf("(none: this node waits to join a cluster)\n");
    }
    arena_free(&a);
    return 0;
}

/* The leader's list (with progress) when one is known, else the contacted
 * node's. *json from malloc. */
static int leader_list(cairn_client *c, char **json, size_t *len)
{
    struct arena a;
    struct json_value *doc = NULL;
    char err[128];
    char leader[256] = "";
    bool is_leader = false;
    int rv = cairn_members(c, NULL, json, len);
    if (rv != 0) {
        return rv;
    }
    arena_init(&a);
    if (json_parse(*json, *len, &a, &doc, err, sizeof(err)) == 0) {
        is_leader = strcmp(str_member(doc, "state"), "leader") == 0;
        snprintf(leader, sizeof(leader), "%s", str_member(doc, "leader_address"));
    }
    arena_free(&a);
    if (!is_leader && leader[0] != '\0') {
        char *again = NULL;
        size_t again_len = 0;
        if (cairn_members(c, leader, &again, &again_len) == 0) {
            free(*json);
            *json = again;
            *len = again_len;
        }
    }
    return 0;
}

/* Whether member id is caught up in the leader's list: 1, 0, or -1 when the
 * list says nothing (no leader answered). */
static int caught_up(const char *json, size_t len, uint64_t id)
{
    struct arena a;
    struct json_value *doc = NULL;
    const struct json_value *members;
    const struct json_value *e;
    char err[128];
    int result = -1;
    arena_init(&a);
    if (json_parse(json, len, &a, &doc, err, sizeof(err)) == 0 &&
        (members = json_get(doc, "members")) != NULL && members->type == JSON_ARRAY) {
        for (e = members->child; e != NULL; e = e->next) {
            const struct json_value *mid = json_get(e, "id");
            const struct json_value *caught = json_get(e, "caught_up");
            if (mid != NULL && mid->is_uint && mid->uint == id && caught != NULL &&
                caught->type == JSON_BOOL) {
                result = caught->boolean ? 1 : 0;
            }
        }
    }
    arena_free(&a);
    return result;
}

static void print_answer(const struct member_opts *o, const char *json, size_t len,
                         const char *text)
{
    if (o->json) {
        fwrite(json, 1, len, stdout);
        printf("\n");
    } else {
        printf("%s\n", text);
    }
}

static int64_t elapsed_ms(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* member add --voter: wait for the catch-up, then promote. A write burst
 * between the two can put the node behind again (the leader refuses with
 * CAIRN_EBUSY): wait again, within the same --catch-up-timeout. */
static int promote_when_caught_up(cairn_client *c, const struct member_opts *o, uint64_t id)
{
    struct timespec start;
    char text[128];
    char *json = NULL;
    size_t len = 0;
    int rv;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int caught = 0;
        if (leader_list(c, &json, &len) == 0) {
            caught = caught_up(json, len, id);
            free(json);
            json = NULL;
        }
        if (caught == 1) {
            rv = cairn_member_change(c, "promote", id, NULL, &json, &len);
            if (rv == 0) {
                snprintf(text, sizeof(text), "node %" PRIu64 " is now a voter", id);
                print_answer(o, json, len, text);
                free(json);
                return 0;
            }
            if (rv != CAIRN_EBUSY || elapsed_ms(&start) > o->catch_up_ms) {
                return fail(c, rv, "member promote");
            }
        }
        if (elapsed_ms(&start) > o->catch_up_ms) {
            fprintf(stderr,
                    "cairnctl: member add --voter: node %" PRIu64
                    " did not catch up within %d ms; it stays a standby (promote it "
                    "later with: cairnctl member promote %" PRIu64 ")\n",
                    id, o->catch_up_ms, id);
            return EXIT_FAIL;
        }
        sleep_ms(CATCH_UP_POLL_MS);
    }
}

int cmd_member(cairn_client *c, const struct member_opts *o)
{
    const char *verb = o->verb != NULL ? o->verb : "list";
    char *json = NULL;
    size_t len = 0;
    uint64_t id = 0;
    char text[256];
    int rv;
    if (strcmp(verb, "list") == 0) {
        rv = leader_list(c, &json, &len);
        if (rv != 0) {
            return fail(c, rv, "member list");
        }
        if (o->json) {
            fwrite(json, 1, len, stdout);
            printf("\n");
            rv = 0;
        } else {
            rv = print_list(json, len);
        }
        free(json);
        return rv;
    }
    if (strcmp(verb, "add") != 0 && strcmp(verb, "promote") != 0 && strcmp(verb, "demote") != 0 &&
        strcmp(verb, "remove") != 0) {
        fprintf(stderr,
                "cairnctl: member: unknown verb \"%s\" (list, add, promote, demote, "
                "remove)\n",
                verb);
        return EXIT_USAGE;
    }
    if (o->n_args < 1 || parse_id(o->args[0], &id) != 0) {
        fprintf(stderr, "cairnctl: member %s: wants a member id (a positive integer)\n", verb);
        return EXIT_USAGE;
    }
    if (strcmp(verb, "add") == 0) {
        if (o->n_args < 2 || strchr(o->args[1], '/') == NULL) {
            fprintf(stderr, "cairnctl: member add ID RAFT_HOST:PORT/CLIENT_HOST:PORT\n");
            return EXIT_USAGE;
        }
        rv = cairn_member_change(c, "add", id, o->args[1], &json, &len);
        if (rv != 0) {
            return fail(c, rv, "member add");
        }
        snprintf(text, sizeof(text), "node %" PRIu64 " added as a standby; it is catching up", id);
        if (!o->voter) {
            print_answer(o, json, len, text);
            free(json);
            return 0;
        }
        free(json);
        json = NULL;
        fprintf(stderr, "cairnctl: %s\n", text);
        return promote_when_caught_up(c, o, id);
    }
    rv = cairn_member_change(c, verb, id, NULL, &json, &len);
    if (rv != 0) {
        char what[64];
        snprintf(what, sizeof(what), "member %s", verb);
        return fail(c, rv, what);
    }
    snprintf(text, sizeof(text), "node %" PRIu64 " %s", id,
             strcmp(verb, "promote") == 0  ? "is now a voter"
             : strcmp(verb, "demote") == 0 ? "is now a standby"
                                           : "removed; it stops by itself");
    print_answer(o, json, len, text);
    free(json);
    return 0;
}

int cmd_leader(cairn_client *c, const struct member_opts *o)
{
    struct arena a;
    struct json_value *doc = NULL;
    char err[128];
    char text[256];
    char *json = NULL;
    size_t len = 0;
    int rv;
    if (o->verb == NULL || strcmp(o->verb, "transfer") != 0) {
        fprintf(stderr, "cairnctl: leader transfer [--to ID]\n");
        return EXIT_USAGE;
    }
    rv = cairn_leader_transfer(c, o->to, &json, &len);
    if (rv != 0) {
        return fail(c, rv, "leader transfer");
    }
    snprintf(text, sizeof(text), "leadership transferred");
    arena_init(&a);
    if (json_parse(json, len, &a, &doc, err, sizeof(err)) == 0) {
        const struct json_value *id = json_get(doc, "leader_id");
        snprintf(text, sizeof(text), "node %" PRIu64 " leads now (%s)",
                 id != NULL && id->is_uint ? id->uint : 0, str_member(doc, "leader_address"));
    }
    arena_free(&a);
    print_answer(o, json, len, text);
    free(json);
    return 0;
}
