/*
 * diff: a line diff of two byte strings, as diff -u computes it: the common
 * head and tail, a longest common subsequence of the lines between, and
 * hunks with DIFF_CONTEXT_LINES of context. No I/O and no knowledge of Cairn;
 * cairnctl prints it as text or JSON, cairnd's HTTP API as JSON.
 *
 * Lines are compared with their newline, so that a missing newline at the
 * end of a value shows, as it does in diff. Memory returned through out
 * parameters is malloc'd and belongs to the caller (free()).
 */
#ifndef CAIRN_DIFF_H
#define CAIRN_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Unchanged lines shown around each change, as in diff -u. */
#define DIFF_CONTEXT_LINES 3
/* The LCS table spans the lines between the common head and tail, one
 * uint32_t per pair of lines. Beyond this many cells (16 MiB), the differing
 * middle is shown replaced as a whole: still a correct diff, not a minimal
 * one (diff_compute says so). */
#define DIFF_LCS_CELLS_MAX (4u * 1024u * 1024u)

struct diff_line
{
    const char *p; /* borrowed from the value */
    size_t len;    /* without the newline */
    bool newline;  /* ends with '\n' (every line but perhaps the last) */
};

/* One step of the edit script that turns the old lines into the new. */
struct diff_edit
{
    char op;  /* ' ' in both, '-' only in the old value, '+' only in the new */
    size_t a; /* old lines before this step */
    size_t b; /* new lines before this step */
};

struct diff_hunk
{
    size_t start; /* edits [start, end) */
    size_t end;
    size_t old_start; /* as diff -u numbers them: from 1, or the line before when empty */
    size_t old_lines;
    size_t new_start;
    size_t new_lines;
};

/* Split value[0..len) into lines (*out borrows from value). Returns 0 or -1
 * when out of memory. */
int diff_split_lines(const char *value, size_t len, struct diff_line **out, size_t *n_out);

/* The edit script from xs to ys into *out (n + m steps at most). *minimal is
 * false when the middle was too large for the LCS (see DIFF_LCS_CELLS_MAX).
 * Returns 0 or -1 when out of memory. */
int diff_compute(const struct diff_line *xs, size_t n, const struct diff_line *ys, size_t m,
                 struct diff_edit **out, size_t *n_out, bool *minimal);

/* The next hunk at or after edit *at; false when no change is left. */
bool diff_next_hunk(const struct diff_edit *e, size_t n, size_t *at, struct diff_hunk *h);

/* The line an edit shows: from ys for '+', from xs otherwise. */
const struct diff_line *diff_edit_line(const struct diff_edit *e, const struct diff_line *xs,
                                       const struct diff_line *ys);

#endif /* CAIRN_DIFF_H */
