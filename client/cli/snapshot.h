/* cairnctl snapshot (snapshot.c). */
#ifndef CAIRNCTL_SNAPSHOT_H
#define CAIRNCTL_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn.h"

struct snapshot_opts
{
    const char *verb;
    const char *file; /* save FILE, status FILE */
    bool json;
    const char *from;     /* --from URL */
    const char *data_dir; /* --data-dir DIR */
    const char *cluster;  /* --cluster ID */
    uint64_t revision;    /* --revision R */
    const char *time;     /* --time T */
    bool fallback;        /* --fallback */
    const char *backup_endpoint;
    const char *backup_region;
    const char *backup_addressing;
    const char *backup_credentials_file;
};

int cmd_snapshot(cairn_client *c, const struct snapshot_opts *o);

#endif /* CAIRNCTL_SNAPSHOT_H */
