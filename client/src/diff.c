/*
 * diff: see diff.h. Moved here from cairnctl so that cairnctl and cairnd's
 * HTTP API show the same diff.
 */
#include "diff.h"

#include <stdlib.h>
#include <string.h>

int diff_split_lines(const char *value, size_t len, struct diff_line **out, size_t *n_out)
{
    const char *p = value;
    const char *end = p + len;
    struct diff_line *lines;
    size_t n = 0;
    const char *q;
    for (q = p; q < end; q++) {
        n += *q == '\n';
    }
    n += len > 0 && end[-1] != '\n';
    lines = malloc((n > 0 ? n : 1) * sizeof(*lines));
    if (lines == NULL) {
        return -1;
    }
    n = 0;
    while (p < end) {
        struct diff_line *l = &lines[n++];
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        l->p = p;
        l->len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        l->newline = nl != NULL;
        p += l->len + (nl != NULL);
    }
    *out = lines;
    *n_out = n;
    return 0;
}

static bool line_eq(const struct diff_line *x, const struct diff_line *y)
{
    return x->len == y->len && x->newline == y->newline && memcmp(x->p, y->p, x->len) == 0;
}

static void diff_push(struct diff_edit *e, size_t *n, size_t *a, size_t *b, char op)
{
    e[*n].op = op;
    e[*n].a = *a;
    e[*n].b = *b;
    (*n)++;
    *a += op != '+';
    *b += op != '-';
}

int diff_compute(const struct diff_line *xs, size_t n, const struct diff_line *ys, size_t m,
                 struct diff_edit **out, size_t *n_out, bool *minimal)
{
    size_t head = 0;
    size_t tail = 0;
    size_t xn;
    size_t yn;
    size_t i;
    size_t j;
    size_t k = 0;
    size_t a = 0;
    size_t b = 0;
    uint32_t *lcs = NULL;
    struct diff_edit *e = malloc((n + m + 1) * sizeof(*e));
    if (e == NULL) {
        return -1;
    }
    while (head < n && head < m && line_eq(&xs[head], &ys[head])) {
        head++;
    }
    while (tail < n - head && tail < m - head && line_eq(&xs[n - 1 - tail], &ys[m - 1 - tail])) {
        tail++;
    }
    xn = n - head - tail;
    yn = m - head - tail;
    *minimal = true;
    if (xn > 0 && yn > 0) {
        if (xn + 1 > DIFF_LCS_CELLS_MAX / (yn + 1)) {
            *minimal = false;
        } else {
            lcs = calloc((xn + 1) * (yn + 1), sizeof(*lcs));
            if (lcs == NULL) {
                free(e);
                return -1;
            }
        }
    }
    /* L(i, j): the LCS length of the middles' suffixes from i and j. */
#define L(i, j) lcs[(i) * (yn + 1) + (j)]
    if (lcs != NULL) {
        for (i = xn; i-- > 0;) {
            for (j = yn; j-- > 0;) {
                if (line_eq(&xs[head + i], &ys[head + j])) {
                    L(i, j) = L(i + 1, j + 1) + 1;
                } else {
                    L(i, j) = L(i + 1, j) >= L(i, j + 1) ? L(i + 1, j) : L(i, j + 1);
                }
            }
        }
    }
    for (i = 0; i < head; i++) {
        diff_push(e, &k, &a, &b, ' ');
    }
    i = 0;
    j = 0;
    while (i < xn || j < yn) {
        if (lcs != NULL && i < xn && j < yn && line_eq(&xs[head + i], &ys[head + j])) {
            diff_push(e, &k, &a, &b, ' ');
            i++;
            j++;
        } else if (j == yn || (i < xn && (lcs == NULL || L(i + 1, j) >= L(i, j + 1)))) {
            diff_push(e, &k, &a, &b, '-');
            i++;
        } else {
            diff_push(e, &k, &a, &b, '+');
            j++;
        }
    }
#undef L
    for (i = 0; i < tail; i++) {
        diff_push(e, &k, &a, &b, ' ');
    }
    free(lcs);
    *out = e;
    *n_out = k;
    return 0;
}

/* Where the hunk holding the change at e[first] ends: changes closer than
 * twice the context join it, then DIFF_CONTEXT_LINES more. A hunk that
 * follows begins with its own context after this end, never before it. */
static size_t diff_hunk_end(const struct diff_edit *e, size_t n, size_t first)
{
    size_t last = first;
    size_t i;
    for (i = first + 1; i < n; i++) {
        if (e[i].op != ' ') {
            if (i - last - 1 > 2 * DIFF_CONTEXT_LINES) {
                break;
            }
            last = i;
        }
    }
    return last + 1 + DIFF_CONTEXT_LINES < n ? last + 1 + DIFF_CONTEXT_LINES : n;
}

bool diff_next_hunk(const struct diff_edit *e, size_t n, size_t *at, struct diff_hunk *h)
{
    size_t i = *at;
    size_t j;
    while (i < n && e[i].op == ' ') {
        i++;
    }
    if (i == n) {
        return false;
    }
    h->start = i > DIFF_CONTEXT_LINES ? i - DIFF_CONTEXT_LINES : 0;
    h->end = diff_hunk_end(e, n, i);
    h->old_lines = 0;
    h->new_lines = 0;
    for (j = h->start; j < h->end; j++) {
        h->old_lines += e[j].op != '+';
        h->new_lines += e[j].op != '-';
    }
    h->old_start = e[h->start].a + (h->old_lines > 0);
    h->new_start = e[h->start].b + (h->new_lines > 0);
    *at = h->end;
    return true;
}

const struct diff_line *diff_edit_line(const struct diff_edit *e, const struct diff_line *xs,
                                       const struct diff_line *ys)
{
    return e->op == '+' ? &ys[e->b] : &xs[e->a];
}
