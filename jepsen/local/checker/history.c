/*
 * history: see history.h.
 */
#include "history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Grows an array by doubling; returns -1 when memory runs out. */
static int grow(void **items, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) {
        return 0;
    }
    size_t cap2 = *cap == 0 ? 64 : *cap;
    while (cap2 < need) {
        cap2 *= 2;
    }
    void *p = realloc(*items, cap2 * size);
    if (p == NULL) {
        return -1;
    }
    *items = p;
    *cap = cap2;
    return 0;
}

static int parse_event(const char *line, size_t len, size_t line_no, struct hist_event *ev,
                       char *errmsg, size_t errmsg_len)
{
    struct edn m;
    char why[256];
    memset(ev, 0, sizeof(*ev));
    if (edn_parse(line, len, &m, why, sizeof(why)) != 0) {
        snprintf(errmsg, errmsg_len, "line %zu: %s", line_no, why);
        return -1;
    }
    const char *problem = NULL;
    const struct edn *type = edn_map_get(&m, "type");
    const struct edn *process = edn_map_get(&m, "process");
    const struct edn *f = edn_map_get(&m, "f");
    const struct edn *value = edn_map_get(&m, "value");
    const struct edn *time = edn_map_get(&m, "time");
    if (m.type != EDN_MAP) {
        problem = "not a map";
    } else if (type == NULL || type->type != EDN_KEYWORD) {
        problem = "no :type keyword";
    } else if (process == NULL) {
        problem = "no :process";
    } else if (f == NULL ||
               (f->type != EDN_KEYWORD && f->type != EDN_SYMBOL && f->type != EDN_STRING)) {
        problem = "no :f keyword";
    } else if (time != NULL && time->type != EDN_INT) {
        problem = ":time is not an integer";
    }
    if (problem == NULL) {
        if (edn_is_keyword(type, "invoke")) {
            ev->type = HIST_INVOKE;
        } else if (edn_is_keyword(type, "ok")) {
            ev->type = HIST_OK;
        } else if (edn_is_keyword(type, "fail")) {
            ev->type = HIST_FAIL;
        } else if (edn_is_keyword(type, "info")) {
            ev->type = HIST_INFO;
        } else {
            problem = ":type is not :invoke, :ok, :fail or :info";
        }
    }
    if (problem == NULL) {
        if (process->type == EDN_INT) {
            ev->process = process->i;
        } else if (edn_is_keyword(process, "nemesis")) {
            ev->nemesis = true;
        } else {
            problem = ":process is neither an integer nor :nemesis";
        }
    }
    if (problem != NULL) {
        snprintf(errmsg, errmsg_len, "line %zu: %s", line_no, problem);
        edn_free(&m);
        return -1;
    }
    ev->f = strdup(f->s);
    ev->time = time != NULL ? time->i : -1;
    ev->line = line_no;
    if (value != NULL) {
        /* Take the value out of the map so that freeing the map leaves it. */
        ev->value = *value;
        memset((struct edn *)value, 0, sizeof(*value));
    }
    edn_free(&m);
    if (ev->f == NULL) {
        snprintf(errmsg, errmsg_len, "line %zu: out of memory", line_no);
        edn_free(&ev->value);
        return -1;
    }
    return 0;
}

/* Pairs each invoke with the next completion of its process. */
static int pair_ops(struct history *h, char *errmsg, size_t errmsg_len)
{
    size_t cap = 0;
    /* Open ops by process: a small open-addressed table would do, but
     * histories have few processes alive at once, so a list suffices. */
    size_t *open = NULL, n_open = 0, open_cap = 0;
    for (size_t e = 0; e < h->n_events; e++) {
        const struct hist_event *ev = &h->events[e];
        if (ev->nemesis) {
            continue;
        }
        size_t k;
        for (k = 0; k < n_open; k++) {
            if (h->events[h->ops[open[k]].invoke].process == ev->process) {
                break;
            }
        }
        if (ev->type == HIST_INVOKE) {
            if (k < n_open) {
                snprintf(errmsg, errmsg_len,
                         "line %zu: process %lld invokes while its op of line %zu is open",
                         ev->line, (long long)ev->process, h->events[h->ops[open[k]].invoke].line);
                free(open);
                return -1;
            }
            if (grow((void **)&h->ops, &cap, h->n_ops + 1, sizeof(*h->ops)) != 0 ||
                grow((void **)&open, &open_cap, n_open + 1, sizeof(*open)) != 0) {
                snprintf(errmsg, errmsg_len, "out of memory");
                free(open);
                return -1;
            }
            h->ops[h->n_ops] = (struct hist_op){e, SIZE_MAX, HIST_INFO};
            open[n_open++] = h->n_ops++;
        } else {
            if (k == n_open) {
                snprintf(errmsg, errmsg_len,
                         "line %zu: completion of process %lld without an invoke", ev->line,
                         (long long)ev->process);
                free(open);
                return -1;
            }
            struct hist_op *op = &h->ops[open[k]];
            if (strcmp(h->events[op->invoke].f, ev->f) != 0) {
                snprintf(errmsg, errmsg_len, "line %zu: completion :f %s differs from invoke's %s",
                         ev->line, ev->f, h->events[op->invoke].f);
                free(open);
                return -1;
            }
            op->complete = e;
            op->outcome = ev->type;
            open[k] = open[--n_open];
        }
    }
    free(open);
    return 0;
}

int history_read_text(const char *text, size_t len, struct history *h, char *errmsg,
                      size_t errmsg_len)
{
    size_t cap = 0, line_no = 0;
    memset(h, 0, sizeof(*h));
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl != NULL ? nl : end;
        line_no++;
        const char *q = p;
        while (q < line_end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == ',')) {
            q++;
        }
        if (q < line_end && *q != ';') {
            if (grow((void **)&h->events, &cap, h->n_events + 1, sizeof(*h->events)) != 0) {
                snprintf(errmsg, errmsg_len, "out of memory");
                history_free(h);
                return -1;
            }
            if (parse_event(p, (size_t)(line_end - p), line_no, &h->events[h->n_events], errmsg,
                            errmsg_len) != 0) {
                history_free(h);
                return -1;
            }
            h->n_events++;
        }
        p = line_end + 1;
    }
    if (pair_ops(h, errmsg, errmsg_len) != 0) {
        history_free(h);
        return -1;
    }
    return 0;
}

int history_read_file(const char *path, struct history *h, char *errmsg, size_t errmsg_len)
{
    memset(h, 0, sizeof(*h));
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(errmsg, errmsg_len, "%s: cannot open", path);
        return -1;
    }
    char *text = NULL;
    size_t len = 0, cap = 0, got;
    char chunk[65536];
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (grow((void **)&text, &cap, len + got, 1) != 0) {
            free(text);
            fclose(f);
            snprintf(errmsg, errmsg_len, "%s: out of memory", path);
            return -1;
        }
        memcpy(text + len, chunk, got);
        len += got;
    }
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) {
        free(text);
        snprintf(errmsg, errmsg_len, "%s: read error", path);
        return -1;
    }
    char why[512];
    int rv = history_read_text(text != NULL ? text : "", len, h, why, sizeof(why));
    free(text);
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "%s: %s", path, why);
    }
    return rv;
}

void history_free(struct history *h)
{
    for (size_t e = 0; e < h->n_events; e++) {
        free(h->events[e].f);
        edn_free(&h->events[e].value);
    }
    free(h->events);
    free(h->ops);
    memset(h, 0, sizeof(*h));
}
