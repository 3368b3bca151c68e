/*
 * membership: changes to the Raft configuration while the cluster serves
 * (add a node, promote it to voter, demote it, remove it), leadership
 * transfer on request, and the end of a node that was removed.
 *
 * Requests (client protocol, docs/architecture.md "Membership"):
 *
 *   MEMBER   op.key = verb, number = member id, op.value = address ("add")
 *            "list"     any node answers with its view; the leader adds each
 *                       member's replication progress
 *            "add"      the leader probes the new node, then adds it as a
 *                       spare and makes it a standby (it receives the log)
 *            "promote"  standby -> voter, once caught up
 *            "demote"   voter -> standby
 *            "remove"   out of the configuration
 *   TRANSFER number = target id (0: raft picks a voter)
 *
 * Every answer is a JSON document (proto_encode_text). Everything but "list"
 * is the leader's: other nodes redirect (CAIRN_ENOTLEADER). One change at a
 * time: a second one while a change is under way (ours, or raft's own
 * leader_state.change) gets CAIRN_EBUSY. Demoting or removing the leader
 * itself first hands leadership to another voter and then answers
 * CAIRN_ENOTLEADER naming the new leader, where libcairn sends the request
 * again.
 *
 * The add of one node walks these steps; each failure answers the client
 * and leaves the configuration as it was:
 *
 *   IDLE --add--> PROBING --probe ok--> ADDING --committed--> STANDBY --committed--> IDLE
 *                    |                     |                      |
 *                    +--probe failed--> IDLE                      +--failed--> ROLLBACK --> IDLE
 *
 * A removed node: raft 0.15 stops replicating to a node as soon as the
 * configuration without it is appended, so the node never learns that it
 * was removed and keeps campaigning (DEPS.md). membership_tick() therefore
 * asks the other members, off the loop, for the leader's committed
 * configuration whenever this node (once a member) has gone without a
 * leader for a while, or is a non-voter; when that configuration no longer
 * lists it, the node stops by itself (exit status 0).
 *
 * Everything here runs on the loop thread, except the probes' work
 * functions, which touch only their own request.
 */
#ifndef CAIRN_MEMBERSHIP_H
#define CAIRN_MEMBERSHIP_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "proto.h"

struct server;
struct session;

/* A member whose match index is at most this many entries behind the
 * leader's last index counts as caught up (promote waits for it). Writes in
 * flight keep even a healthy follower a few entries behind. */
#define MEMBERSHIP_CAUGHT_UP_LAG 256
/* How long the probe of a new node may take (each of its connections). */
#define MEMBERSHIP_PROBE_TIMEOUT_MS 2000
/* How long a removal check waits for each member it asks, and how many it
 * asks per round: the check holds one of libuv's threadpool threads, which
 * raft_uv also uses for its disk work, so a round stays short (at most
 * about 3 s) even when every member it asks is unreachable. */
#define MEMBERSHIP_CHECK_TIMEOUT_MS 1000
#define MEMBERSHIP_CHECK_ASKED_MAX 3
/* How often a node without a leader (or a non-voter) asks whether it is
 * still a member, at least; the election timeout doubled if longer. */
#define MEMBERSHIP_CHECK_INTERVAL_MS 2000
/* Catch-up rounds raft runs before promoting a standby (each at most the
 * round duration): the promotion fails after about their product. */
#define MEMBERSHIP_CATCH_UP_ROUNDS 5
#define MEMBERSHIP_CATCH_UP_ROUND_MS 5000

/* Members whose last contact the leader tracks for "reachable" (raft 0.15
 * clears its own flag, recent_recv, every election timeout). */
#define MEMBERSHIP_TRACKED_MAX 64

enum membership_step {
    MEMBERSHIP_IDLE,
    MEMBERSHIP_PROBING,  /* add: the new node is asked, off the loop */
    MEMBERSHIP_ADDING,   /* add: raft_add (spare) proposed */
    MEMBERSHIP_STANDBY,  /* add: raft_assign(STANDBY) proposed */
    MEMBERSHIP_ROLLBACK, /* add: raft_remove after a failed assign */
    MEMBERSHIP_CHANGING, /* promote, demote, remove: one raft change */
    MEMBERSHIP_HANDOVER, /* demote/remove of the leader: transferring first */
    MEMBERSHIP_TRANSFER, /* a TRANSFER request */
    MEMBERSHIP_WAITING,  /* a change waits for the last configuration to commit */
};

/* The off-loop half of a probe (of a new node) or of a check (whether this
 * node is still a member). */
struct membership_probe
{
    uv_work_t work;
    struct membership *m; /* borrowed */
    bool in_flight;
    /* in */
    uint64_t id;            /* the node expected (probe), or this node (check) */
    uint64_t min_term;      /* check: ignore leaders of terms before this one */
    char endpoints[4096];   /* client addresses to ask, comma-separated */
    char raft_address[256]; /* probe: the new node's Raft address */
    /* out */
    int code;          /* 0 or a CAIRN_E* code (probe); check: 1 removed, 0 not, <0 unknown */
    uint64_t index;    /* check: the configuration index that omits us */
    char message[512]; /* why the probe failed */
};

struct membership
{
    struct server *srv; /* borrowed */
    enum membership_step step;
    /* The request being served (step != IDLE). */
    struct session *session; /* referenced */
    uint64_t req_id;
    uint8_t req_type;
    char verb[PROTO_MEMBER_VERB_MAX + 1];
    raft_id target;
    char address[512];   /* add: RAFT_ADDR/CLIENT_ADDR */
    uint64_t wait_until; /* WAITING: loop time at which it gives up */
    int failure;         /* rollback: the code to answer once it is done */
    char failure_msg[256];
    struct raft_change change;
    struct raft_transfer transfer;
    struct membership_probe probe; /* a new node */
    /* Leader: when each member was last seen answering (loop time). */
    struct
    {
        raft_id id;
        uint64_t seen;
    } contact[MEMBERSHIP_TRACKED_MAX];
    /* Removal detection. */
    bool was_member;           /* this node has been in its own configuration */
    uint64_t leaderless_since; /* loop time; 0 while a leader is known */
    uint64_t leader_term;      /* the term in which this node last knew a leader */
    uint64_t last_check;       /* loop time of the last check started */
    uint64_t check_rounds;     /* checks started: where the next one starts asking */
    struct membership_probe check;
    bool removed; /* stopping because the cluster removed us */
    bool closing;
};

void membership_init(struct membership *m, struct server *srv);

/* Serve a MEMBER or TRANSFER request: answered now or later, always once.
 * Returns the code of an answer given now (for the metrics), 0 when the
 * answer was a success or comes later. */
int membership_handle(struct membership *m, struct session *session,
                      const struct proto_request *req);

/* Called by the server's ticker: watches for this node's removal. */
void membership_tick(struct membership *m);

/* The server is closing: answer whatever waits (CAIRN_ESHUTDOWN) and start
 * nothing new. Work in flight still finishes on the loop. */
void membership_close(struct membership *m);

#endif /* CAIRN_MEMBERSHIP_H */
