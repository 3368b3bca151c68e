/*
 * members: helpers of the membership tests (it_member_*): the leader's
 * member list, read through libcairn and our JSON parser.
 */
#ifndef CAIRN_IT_MEMBERS_H
#define CAIRN_IT_MEMBERS_H

#include <stdbool.h>
#include <stdint.h>

#include "harness.h"

#define MEMBERS_MAX 8

struct it_member
{
    uint64_t id;
    char role[16];
    char address[128]; /* RAFT_ADDR/CLIENT_ADDR */
    bool caught_up;
    bool reachable; /* the leader heard from it lately */
    uint64_t match_index;
};

struct it_members
{
    uint64_t leader_id;
    uint64_t configuration_index;
    size_t n;
    struct it_member members[MEMBERS_MAX];
};

/* The member list as the leader reports it, asked of the running nodes among
 * ids 1..c->n that are members; returns the leader's id, or 0 when no node
 * answered as leader. */
unsigned it_members_get(struct it_cluster *c, struct it_members *out);

/* Wait (up to timeout_ms) for a leader's list and return it. */
unsigned it_members_wait(struct it_cluster *c, struct it_members *out, int timeout_ms);

/* The member with this id in the list, or NULL. */
const struct it_member *it_members_find(const struct it_members *m, uint64_t id);

/* "RAFT_ADDR/CLIENT_ADDR" of node id. */
void it_member_address(struct it_cluster *c, unsigned id, char *out, size_t n);

/* A change on the leader through libcairn (the admin client follows
 * redirects): returns the call's code; *msg (if not NULL) gets its message. */
int it_member_change(struct it_cluster *c, const char *verb, unsigned id, char *msg, size_t n);

/* A change that must succeed: like it_member_change, but when the outcome
 * is unknown (CAIRN_EUNKNOWN: leadership moved while the change committed,
 * which a loaded machine can cause) or no leader answered, it reads the
 * leader's list and asks again unless the change took effect, as an
 * operator would. Fails the test on any other error. */
void it_member_ensure(struct it_cluster *c, const char *verb, unsigned id);

/* Wait until member id is listed caught up by the leader. */
void it_members_wait_caught_up(struct it_cluster *c, unsigned id, int timeout_ms);

/* Wait until node id exits by itself; assert exit status 0 and that its
 * log, from byte `from`, says it was removed. */
void it_member_wait_removed_exit(struct it_cluster *c, unsigned id, size_t from, int timeout_ms);

/* Start node id with --join 1 (a fresh node waiting to be added). The
 * harness keeps the flag for later starts of the node. */
void it_member_start_joining(struct it_cluster *c, unsigned id);

/* How many Raft snapshots node id restored (its cairn_snapshots_total
 * {kind="restored"}): a new member that catches up from a snapshot has
 * restored one. */
uint64_t it_member_snapshots_restored(struct it_cluster *c, unsigned id);

/* Make the cluster's --initial-cluster list only nodes 1..n (the others
 * join later). */
void it_members_initial(struct it_cluster *c, unsigned n);

#endif /* CAIRN_IT_MEMBERS_H */
