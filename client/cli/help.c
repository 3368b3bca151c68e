/*
 * cairnctl's help for one command: `cairnctl COMMAND [VERB] --help` and
 * `cairnctl help COMMAND [VERB]`. The global help (every command on a line or
 * two) stays in cairnctl.c; this is the page an operator reads before running
 * one command, with every flag it takes.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "help.h"

#define S3_FLAGS                                                                             \
    "Reading a store directly (--from URL) takes cairnd's S3 settings:\n"                    \
    "  --backup-endpoint URL      the S3 endpoint (default: AWS for the region)\n"           \
    "  --backup-region R          the signing region (default us-east-1)\n"                  \
    "  --backup-addressing A      path, virtual-host or auto (default auto)\n"               \
    "  --backup-credentials-file F  an AWS credentials file; otherwise AWS_ACCESS_KEY_ID,\n" \
    "                             AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN\n"             \
    "  --cluster ID               the cluster to read (16 hex digits), when several\n"       \
    "                             clusters back up under one prefix\n"

#define GLOBAL_FLAGS \
    "Global flags: --endpoints H:P,..., --json, --timeout MS (see cairnctl --help).\n"

struct page
{
    const char *cmd;
    const char *verb; /* NULL: the command itself, or its overview */
    const char *text;
};

static const struct page pages[] = {
    {"put", NULL,
     "Usage: cairnctl put KEY [VALUE] [--prev]\n"
     "\n"
     "Write VALUE to KEY (read from stdin when VALUE is omitted, so a file can be\n"
     "written whole: cairnctl put app/config < app.conf). Prints the new revision.\n"
     "\n"
     "  --prev                     also print the value KEY had before\n"},
    {"get", NULL,
     "Usage: cairnctl get KEY [--prefix [--limit N] [--after KEY]] [--rev R]\n"
     "                    [--stale [--max-staleness DURATION] | --min-revision N]\n"
     "\n"
     "Read KEY's value. By default the read is linearizable: the leader confirms it\n"
     "still leads before answering.\n"
     "\n"
     "  --prefix                   every key under KEY, as key and value lines\n"
     "  --limit N                  at most N keys; a note on stderr says when more follow\n"
     "  --after KEY                continue a limited range after KEY\n"
     "  --rev R                    read as of revision R (CAIRN_ECOMPACTED once its\n"
     "                             history is discarded)\n"
     "  --stale                    answered by the contacted node from its own state,\n"
     "                             without the leader; it may lag\n"
     "  --max-staleness DURATION   with --stale: refused (CAIRN_ESTALE) by a node that\n"
     "                             has not been up to date for DURATION (500ms, 2s, 1m)\n"
     "  --min-revision N           wait until the contacted node has applied revision N\n"
     "                             (read your own write on a follower; implies --stale)\n"},
    {"del", NULL,
     "Usage: cairnctl del KEY [--prefix] [--prev]\n"
     "\n"
     "Delete KEY. Prints how many keys were deleted.\n"
     "\n"
     "  --prefix                   delete every key under KEY\n"
     "  --prev                     print what was deleted\n"},
    {"cas", NULL,
     "Usage: cairnctl cas KEY MOD_REV VALUE\n"
     "\n"
     "Write VALUE only if KEY's mod_revision is MOD_REV (0: only if KEY does not\n"
     "exist). When the compare fails, exits 1 and prints KEY's current mod_revision.\n"},
    {"txn", NULL,
     "Usage: cairnctl txn < FILE\n"
     "\n"
     "A transaction read from stdin, in three sections separated by blank lines:\n"
     "compares, the operations run if every compare holds, the operations run\n"
     "otherwise. It is applied as one revision.\n"
     "\n"
     "  value app/mode = blue          compares: value, version, mod or create;\n"
     "  mod app/replicas = 12          =, !=, < or >\n"
     "\n"
     "  put app/mode green             operations: put KEY VALUE, del KEY, get KEY\n"
     "\n"
     "  get app/mode\n"
     "\n"
     "Prints SUCCEEDED or FAILED with the revision, then what the gets returned.\n"},
    {"history", NULL,
     "Usage: cairnctl history KEY [--limit N]\n"
     "\n"
     "The versions of KEY that retention kept, newest first: revision, version\n"
     "(0 for a deletion), time, size and put or delete. --json adds the values.\n"
     "\n"
     "  --limit N                  the newest N versions only\n"},
    {"diff", NULL,
     "Usage: cairnctl diff KEY REV1 REV2\n"
     "\n"
     "A line diff (unified format) of KEY's values at revisions REV1 and REV2.\n"},
    {"rollback", NULL,
     "Usage: cairnctl rollback KEY REV\n"
     "\n"
     "Write KEY's value at revision REV back as a new revision. Refused when KEY\n"
     "changes between the read and the write; nothing is written then.\n"},
    {"compact", NULL,
     "Usage: cairnctl compact REV\n"
     "\n"
     "Discard every key's history before revision REV (each key keeps its value).\n"},
    {"retention", NULL,
     "Usage: cairnctl retention set PREFIX [--versions N] [--age DURATION]\n"
     "       cairnctl retention list\n"
     "       cairnctl retention remove PREFIX\n"
     "\n"
     "How much history the keys under PREFIX keep. The longest prefix that matches\n"
     "a key decides; \"\" is the default for every key (10 versions).\n"
     "\n"
     "  --versions N               keep the newest N versions\n"
     "  --age DURATION             drop versions older than DURATION (90s, 30m, 12h, 7d);\n"
     "                             the newest version always stays\n"},
    {"watch", NULL,
     "Usage: cairnctl watch KEY [--prefix] [--rev R] [--prev] [--progress]\n"
     "\n"
     "Print KEY's changes as they come, until SIGINT or SIGTERM.\n"
     "\n"
     "  --prefix                   every key under KEY\n"
     "  --rev R                    start at revision R (the changes since then first)\n"
     "  --prev                     with each change, the value before it\n"
     "  --progress                 print the progress updates that say how far the\n"
     "                             watch has seen when nothing changes\n"},
    {"status", NULL,
     "Usage: cairnctl status [--endpoint HOST:PORT] [--json]\n"
     "\n"
     "Each endpoint's id, role, term, commit and applied index, revision, keys and\n"
     "leader. --json adds every counter, state_hash, cluster_id and restored_as.\n"
     "\n"
     "  --endpoint HOST:PORT       ask that one node\n"},
    {"metrics", NULL,
     "Usage: cairnctl metrics [--endpoint HOST:PORT]\n"
     "\n"
     "One node's metrics, in the Prometheus text format. Any node answers.\n"
     "\n"
     "  --endpoint HOST:PORT       the node to ask (default: the first that answers)\n"},
    {"member", NULL,
     "Usage: cairnctl member list\n"
     "       cairnctl member add ID RAFT_HOST:PORT/CLIENT_HOST:PORT [--voter]\n"
     "       cairnctl member promote ID\n"
     "       cairnctl member demote ID\n"
     "       cairnctl member remove ID\n"
     "\n"
     "Change the cluster's membership, one change at a time (see docs/operations.md).\n"
     "`cairnctl member VERB --help` says more about each.\n"},
    {"member", "list",
     "Usage: cairnctl member list [--json]\n"
     "\n"
     "The members: id, role (voter, standby, spare), Raft and client address, leader\n"
     "or follower, and the leader's view of each one's catch-up.\n"},
    {"member", "add",
     "Usage: cairnctl member add ID RAFT_HOST:PORT/CLIENT_HOST:PORT [--voter]\n"
     "                           [--catch-up-timeout MS]\n"
     "\n"
     "Add a node started with --join 1 as a standby. The leader first checks that\n"
     "it answers at both addresses, reports ID and belongs to no cluster.\n"
     "\n"
     "  --voter                    wait until it has caught up, then promote it\n"
     "  --catch-up-timeout MS      how long --voter waits (default 300000)\n"},
    {"member", "promote",
     "Usage: cairnctl member promote ID\n"
     "\n"
     "A caught-up standby becomes a voter (CAIRN_EBUSY until member list shows it\n"
     "caught up).\n"},
    {"member", "demote",
     "Usage: cairnctl member demote ID\n"
     "\n"
     "A voter becomes a standby: it keeps receiving the log, without a vote. Refused\n"
     "for the last voter.\n"},
    {"member", "remove",
     "Usage: cairnctl member remove ID\n"
     "\n"
     "Remove a member; it stops by itself. Refused for the last voter; removing the\n"
     "leader hands leadership to another voter first.\n"},
    {"leader", NULL,
     "Usage: cairnctl leader transfer [--to ID]\n"
     "\n"
     "The leader hands leadership to another voter and returns once it leads.\n"
     "\n"
     "  --to ID                    the voter to hand it to (default: one the leader\n"
     "                             picks)\n"},
    {"snapshot", NULL,
     "Usage: cairnctl snapshot save [FILE]\n"
     "       cairnctl snapshot list [--from URL]\n"
     "       cairnctl snapshot verify [--from URL]\n"
     "       cairnctl snapshot restore --from URL|FILE --data-dir DIR [--revision R |\n"
     "                                 --time T] [--fallback]\n"
     "       cairnctl snapshot status [FILE]\n"
     "\n"
     "Backups of the whole store, and restores from them (see\n"
     "docs/disaster-recovery.md). `cairnctl snapshot VERB --help` says more about\n"
     "each. URL is file:///DIR or s3://BUCKET/PREFIX.\n"},
    {"snapshot", "save",
     "Usage: cairnctl snapshot save [FILE] [--json]\n"
     "\n"
     "Without FILE: the leader takes a snapshot and uploads it to the backup store\n"
     "now (cairnd's --backup-url). Prints its revision, keys, size, object name and\n"
     "state hash; --json prints its manifest. The snapshot holds every write\n"
     "acknowledged before the command began: one asked while another is being\n"
     "taken waits for a new one. When nothing changed since the last stored\n"
     "snapshot, that one is the answer. The answer comes once the log archive also\n"
     "reaches the snapshot, so that snapshot list shows no break before it.\n"
     "\n"
     "With FILE: a snapshot of the whole store is downloaded from the leader into\n"
     "FILE, checked whole (SHA-256, decoding, state hash), then renamed into place.\n"
     "No backup store is needed. If leadership moves during the download, it starts\n"
     "again from the new leader (FILE must then be a regular file, not a pipe).\n"},
    {"snapshot", "list",
     "Usage: cairnctl snapshot list [--from URL] [--json]\n"
     "\n"
     "The stored snapshots (revision, raft index, time, keys, size, state hash) and\n"
     "the restorable window: the earliest and latest revision and time a restore\n"
     "can reach. The cluster's leader answers; with --from URL cairnctl reads the\n"
     "store itself, so no cluster is needed.\n"
     "\n" S3_FLAGS},
    {"snapshot", "verify",
     "Usage: cairnctl snapshot verify [--from URL] [--json]\n"
     "\n"
     "Restore the newest snapshot plus the log archive in memory and compare the\n"
     "state hash with the one the cluster recorded, after every entry. The leader\n"
     "does it; with --from URL, cairnctl does it itself. Exits 1 on a mismatch.\n"
     "\n" S3_FLAGS},
    {"snapshot", "restore",
     "Usage: cairnctl snapshot restore --from URL --data-dir DIR\n"
     "                                 [--revision R | --time T] [--fallback]\n"
     "       cairnctl snapshot restore --from FILE --data-dir DIR\n"
     "\n"
     "Write the data directory of a member of a new cluster from backups: the\n"
     "nearest snapshot at or before the point, plus the archived log up to it.\n"
     "Every checksum is checked; nothing is written when one fails. Give every\n"
     "member of the new cluster the same --from and point (or copy the directory);\n"
     "start them with their usual flags. The new cluster gets a new cluster id.\n"
     "\n"
     "  --from URL                 the backup store: file:///DIR or s3://BUCKET/PREFIX\n"
     "  --from FILE                a file of `snapshot save FILE` (no ://); restores\n"
     "                             to the file's own revision\n"
     "  --data-dir DIR             the new member's data directory (it must not hold\n"
     "                             a node's data yet)\n"
     "  --revision R               restore to revision R (default, or 0: the latest)\n"
     "  --time T                   restore to the state at time T: RFC 3339\n"
     "                             (2026-11-22T10:00:00Z) or Unix milliseconds\n"
     "  --fallback                 when the chosen snapshot is corrupt or missing, use\n"
     "                             an earlier one plus more of the log\n"
     "\n" S3_FLAGS},
    {"snapshot", "status",
     "Usage: cairnctl snapshot status [FILE] [--json]\n"
     "\n"
     "Without FILE: the leader's backup state: where backups go, how far the\n"
     "archive is and its recovery point lag, the snapshots and log segments stored,\n"
     "the restorable window, the last snapshot and verification, failures. --json\n"
     "prints the document of GET /v1/backup.\n"
     "\n"
     "With FILE: check a snapshot file (SHA-256, decoding, state hash) and print\n"
     "what it holds; --json prints its manifest.\n"},
};

int help_page(FILE *out, FILE *err, const char *cmd, const char *verb)
{
    const struct page *overview = NULL;
    bool has_verbs = false;
    size_t i;
    for (i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        if (strcmp(pages[i].cmd, cmd) != 0) {
            continue;
        }
        if (pages[i].verb == NULL) {
            overview = &pages[i];
            continue;
        }
        has_verbs = true;
        if (verb != NULL && strcmp(pages[i].verb, verb) == 0) {
            fputs(pages[i].text, out);
            fputs("\n" GLOBAL_FLAGS, out);
            return HELP_FOUND;
        }
    }
    if (overview == NULL) {
        return HELP_NO_COMMAND;
    }
    /* A verb the command does not have: its overview lists the ones it has.
     * (For a command without verb pages, the word is its first argument.) */
    if (has_verbs && verb != NULL) {
        fputs(overview->text, err);
        return HELP_NO_VERB;
    }
    fputs(overview->text, out);
    fputs("\n" GLOBAL_FLAGS, out);
    return HELP_FOUND;
}
