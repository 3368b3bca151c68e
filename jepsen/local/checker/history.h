/*
 * history: a Jepsen history read from an EDN file (one map per line) and
 * its operations, each an invocation paired with its completion.
 *
 * Pairing follows Jepsen: a process has at most one operation in flight, so
 * the completion of an invoke is the next :ok / :fail / :info event of the
 * same process. An invoke that never completes is treated as :info (it may
 * have happened at any point after its invoke, or never). Nemesis events
 * (:process :nemesis) are read and kept out of the operations.
 */
#ifndef CAIRN_CHECKER_HISTORY_H
#define CAIRN_CHECKER_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "edn.h"

enum hist_type { HIST_INVOKE = 0, HIST_OK, HIST_FAIL, HIST_INFO };

struct hist_event
{
    enum hist_type type;
    bool nemesis;     /* :process :nemesis */
    int64_t process;  /* meaningful when !nemesis */
    char *f;          /* owned: the name of :f without the colon */
    struct edn value; /* owned: :value (nil when absent) */
    int64_t time;     /* :time in nanoseconds, -1 when absent */
    size_t line;      /* 1-based line in the file */
};

/* One operation: indexes into history.events. */
struct hist_op
{
    size_t invoke;          /* the :invoke event */
    size_t complete;        /* its completion, or SIZE_MAX when none */
    enum hist_type outcome; /* HIST_OK, HIST_FAIL or HIST_INFO (none: INFO) */
};

struct history
{
    struct hist_event *events; /* owned, in file order */
    size_t n_events;
    struct hist_op *ops; /* owned, in invoke order */
    size_t n_ops;
};

/* Reads and pairs a history. Returns 0, or -1 with "LINE: why" in errmsg
 * (the history is then empty). */
int history_read_file(const char *path, struct history *h, char *errmsg, size_t errmsg_len);

/* The same from text in memory (used by the tests). */
int history_read_text(const char *text, size_t len, struct history *h, char *errmsg,
                      size_t errmsg_len);

void history_free(struct history *h);

#endif /* CAIRN_CHECKER_HISTORY_H */
