/*
 * server: one cairnd node. Owns the libuv loop's handles, raft (with its
 * raft_uv I/O, the address-splitting transport and the leader guard), the
 * state machine and key space, the client listener and its sessions, and the
 * linearizable read batcher. Everything here runs on the loop thread.
 *
 * Lifecycle:
 *
 *   init --> RUNNING --SIGTERM/SIGINT--> DRAINING --> TRANSFERRING --> CLOSING --> (loop ends)
 *
 * DRAINING refuses new requests (CAIRN_ESHUTDOWN: certainly not applied, so
 * clients retry elsewhere) and waits briefly for writes in flight; a leader
 * with other voters then hands leadership over (TRANSFERRING) so that the
 * cluster does not wait an election timeout; CLOSING closes raft and every
 * handle.
 */
#ifndef CAIRN_SERVER_H
#define CAIRN_SERVER_H

#include <raft.h>
#include <raft/uv.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "dr.h"
#include "fsm.h"
#include "leader_guard.h"
#include "membership.h"
#include "node_metrics.h"
#include "reads.h"
#include "transport.h"
#include "watch.h"

struct session;
struct http;

enum server_state {
    SERVER_RUNNING,
    SERVER_DRAINING,
    SERVER_TRANSFERRING,
    SERVER_LINGERING, /* sessions stay open a moment, pointing clients elsewhere */
    SERVER_CLOSING,
};

struct server
{
    uv_loop_t *loop;    /* borrowed */
    struct config *cfg; /* borrowed */
    enum server_state state;
    /* Where the average entry size for --snapshot-log-percent starts. */
    uint64_t threshold_base_index;
    uint64_t threshold_base_bytes;
    char address[512]; /* ours, as stored in the Raft configuration */
    /* A restored data directory's provisional cluster id (dr_restored_as),
     * 0 otherwise: reported in status, so that the members of one restore
     * recognise each other after the cluster was named. */
    uint64_t restored_as;
    struct raft raft;
    struct raft_io io;
    struct transport transport;
    struct fsm fsm;
    struct leader_guard guard;
    struct reads reads;
    struct watch_hub hub;
    uv_tcp_t listener;
    /* The client port, bound before start-up's checks and handed to
     * listener at its end (preflight.h); -1 once handed over. */
    int client_fd;
    struct preflight *preflight; /* answers status meanwhile, or NULL */
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_timer_t ticker;
    uv_timer_t shutdown_timer;
    uv_check_t flusher;
    struct raft_transfer transfer;
    struct session *sessions; /* every open session */
    unsigned n_sessions;
    struct session *dirty; /* sessions with output to flush */
    uint64_t writes_in_flight;
    uint64_t leader_changes;
    int last_state; /* raft state seen by the ticker */
    raft_id last_leader;
    uint64_t drain_started_ms;
    /* Staleness (server.c, staleness_ms): raft's time of the last contact
     * from the leader at which this node had applied everything it knew
     * committed; meaningless until fresh_known. */
    uint64_t fresh_ms;
    bool fresh_known;
    /* Retention sweeps (server.c): one proposal at a time. */
    struct raft_apply sweep;
    bool sweep_in_flight;
    uint64_t last_sweep_ms;  /* loop time of the last proposal */
    char leader_client[256]; /* cache for server_leader_client_address */
    struct node_metrics metrics;
    struct dr dr; /* disaster recovery: backlog and object-store shipping */
    /* The cluster id (PROTO_INIT): proposed once by the first leader. */
    struct raft_apply init;
    bool init_in_flight;
    /* The state came from a restore's seed and no Raft snapshot holds it
     * yet: raft's log starts at index 1 without it, so a member added now
     * would replay the log onto an empty state. Raft takes a snapshot at the
     * first applied entry, which closes the gap; until then `member add`
     * waits (src/membership.c). */
    bool seed_gap;
    struct membership members; /* configuration changes, transfers, removal */
    int exit_code;
    struct http *http; /* borrowed from main (NULL without HTTP): stopped first */
};

/* Set up everything and start raft and the listener. On error returns
 * non-zero after writing a message for the operator into errmsg; the caller
 * then runs the loop until server_closed() so that handles close. */
int server_start(struct server *s, struct config *cfg, uv_loop_t *loop, char *errmsg,
                 size_t errmsg_len);

/* Begin the clean shutdown described above. */
void server_stop(struct server *s);
/* The cluster has its final id: named by its first leader (a restored
 * state's provisional id, KV_CLUSTER_PROVISIONAL, does not count). Backups
 * wait for it. */
bool server_cluster_named(const struct server *s);

/* Handle one request payload from a session. */
void server_handle_request(struct server *s, struct session *session, const char *payload,
                           size_t len);

/* Client address of the current leader, or NULL when unknown. The string is
 * valid until the next call. */
const char *server_leader_client_address(struct server *s);

/* Answer a request this node does not serve: CAIRN_ENOTLEADER with the
 * leader's client address, or CAIRN_ENOLEADER when none is known. Returns
 * the code sent. */
int server_redirect(struct server *s, struct session *session, const struct proto_request *req);

#endif /* CAIRN_SERVER_H */
