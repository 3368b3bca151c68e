/*
 * check: the checks of the Cairn chaos tests and the result they share.
 *
 * Each check reads already-parsed input, never talks to a cluster, and fills
 * a struct check_result: a verdict, a count per kind of anomaly found, a
 * JSON object (for the results file) and a human summary. Both strings are
 * owned by the result; free them with check_result_free().
 *
 * The verdict UNKNOWN (a search limit was hit) counts as a failure: a run
 * passes only when every check says VALID.
 */
#ifndef CAIRN_CHECKER_CHECK_H
#define CAIRN_CHECKER_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "history.h"

enum check_verdict { CHECK_VALID = 0, CHECK_INVALID = 1, CHECK_UNKNOWN = 2 };

/* Kinds of anomalies, counted in check_result.anomalies. The names (see
 * check_anomaly_name) appear in the JSON result. */
enum check_anomaly {
    ANOMALY_NONLINEARIZABLE = 0, /* register: a key with no linearization */
    ANOMALY_LIMIT,               /* register: a key whose search hit a limit */
    ANOMALY_LOST,                /* set: an acknowledged add missing from the final read */
    ANOMALY_UNEXPECTED,          /* set: an element read that was never added */
    ANOMALY_NO_FINAL_READ,       /* set: no successful final read */
    ANOMALY_GAP,                 /* watch: a committed revision not delivered */
    ANOMALY_DUPLICATE,           /* watch: the same (revision, key) delivered twice */
    ANOMALY_REORDER,             /* watch: a revision delivered after a later one */
    ANOMALY_SPLIT,               /* watch: one revision's events in two updates */
    ANOMALY_MISMATCH,            /* watch: events differ from the committed log */
    ANOMALY_SNAPSHOT,            /* watch: a snapshot differs from the committed state */
    ANOMALY_BAD_UPDATE,          /* watch: an update's revision disagrees with its events */
    ANOMALY_BEHIND,              /* watch: a live watcher never reached the final revision */
    ANOMALY_STALE_READ,          /* watch: a stale read that no committed state explains */
    ANOMALY_KINDS,
};

struct check_result
{
    enum check_verdict verdict;
    size_t anomalies[ANOMALY_KINDS];
    char *json; /* owned: one JSON object */
    char *text; /* owned: a human summary, several lines */
    /* Register check only: the history line of the op at which the search
     * of the first failing key could go no further (0 when none). */
    size_t first_bad_line;
};

const char *check_anomaly_name(enum check_anomaly a);
const char *check_verdict_name(enum check_verdict v);
void check_result_free(struct check_result *r);

/* Limits on the search of one key; 0 selects the default. Hitting one makes
 * the key, and so the check, UNKNOWN. */
struct register_opts
{
    uint64_t steps_max;       /* default 20,000,000 search steps */
    uint64_t time_ms_max;     /* default 10,000 ms */
    uint64_t cache_bytes_max; /* default 1 GiB of visited-configuration cache */
};

/* Every check returns 0 with *out filled (its verdict says whether the input
 * was valid), or -1 with a message in errmsg when the input cannot be checked
 * (malformed, inconsistent); *out is then empty. */

/* Per-key linearizability of the register workload (:read, :write, :cas on
 * [key value] tuples); see jepsen/README.md, "Checker". */
int check_register(const struct history *h, const struct register_opts *opts,
                   struct check_result *out, char *errmsg, size_t errmsg_len);

/* The set workload: every :ok :add in the last :ok :read, nothing read that
 * was never added. */
int check_set(const struct history *h, struct check_result *out, char *errmsg, size_t errmsg_len);

/* The watch check: every watcher's log against the committed log, and every
 * stale read of the watch log against the committed state at its revision.
 * Both are text in the format of jepsen/README.md. */
int check_watch_text(const char *watch_log, size_t watch_len, const char *committed_log,
                     size_t committed_len, struct check_result *out, char *errmsg,
                     size_t errmsg_len);

/* Reads a whole file into a NUL-terminated buffer the caller frees. */
char *check_read_file(const char *path, size_t *len, char *errmsg, size_t errmsg_len);

/* Writes s as a JSON string literal to f. */
void check_json_string(FILE *f, const char *s, size_t len);

/* Set out->text to a summary line (printf-style fmt) followed by body (the
 * detailed report, may be empty). Returns 0, or -1 with errmsg set. body is
 * only read. */
int check_set_text(struct check_result *out, const char *body, char *errmsg, size_t errmsg_len,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif /* CAIRN_CHECKER_CHECK_H */
