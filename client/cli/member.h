/*
 * member: cairnctl's membership commands, "member list|add|promote|demote|
 * remove" and "leader transfer" (docs/cairnctl.md). Each prints the
 * leader's answer (a table, or with --json the JSON document as the server
 * sent it) and returns cairnctl's exit status.
 */
#ifndef CAIRNCTL_MEMBER_H
#define CAIRNCTL_MEMBER_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn.h"

struct member_opts
{
    const char *verb;    /* member: list, add, promote, demote, remove */
    const char *args[4]; /* the verb's arguments (borrowed) */
    int n_args;
    bool json;
    bool voter;      /* add --voter: promote once caught up */
    uint64_t to;     /* leader transfer --to ID (0: the leader picks) */
    int catch_up_ms; /* add --voter: how long to wait for the catch-up */
};

int cmd_member(cairn_client *c, const struct member_opts *o);
int cmd_leader(cairn_client *c, const struct member_opts *o);

#endif /* CAIRNCTL_MEMBER_H */
