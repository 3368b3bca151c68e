/*
 * entry: the Raft log entry's format, shared by the state machine
 * (raft/fsm.c) and disaster recovery, which replays archived entries into a
 * key space of its own (src/dr_archive.c). Pure.
 *
 * An entry is msgpack [format, origin_id, time_ms, request], where request
 * is the client's request payload as the proposer received and validated it,
 * origin_id the proposing node and time_ms the proposer's wall clock.
 */
#ifndef CAIRN_ENTRY_H
#define CAIRN_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"

#define ENTRY_FORMAT 1

/* Split an entry into its fields (payload points into data). False when the
 * bytes are not an entry of a format this build knows: such an entry is
 * applied as a no-op on every node alike. */
bool entry_parse(const char *data, size_t len, uint64_t *origin, int64_t *time_ms,
                 const char **payload, uint32_t *payload_len);

/* Apply an entry to kv exactly as the state machine does, packing no
 * response. Returns 0 (applied, refused or a no-op alike: all are
 * deterministic) or CAIRN_ENOMEM, after which kv may be partly changed. */
int entry_apply(struct kv *kv, const char *data, size_t len);

#endif /* CAIRN_ENTRY_H */
