/*
 * set: the set workload's check. Each :add of a unique element that was
 * acknowledged (:ok) must be in the final read; an :info add may or may not
 * be; a :fail add must not be (it certainly did not happen); and nothing may
 * be read that no :add ever attempted. The final read is the last :ok :read
 * in the history.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "strmap.h"

#define EXAMPLES_MAX 20 /* elements listed per anomaly kind */

enum add_state { ADD_OK = 1, ADD_INFO = 2, ADD_FAIL = 4 };

/* Canonical bytes: "i<decimal>" or "s<bytes>"; NULL for other types. */
static char *element(const struct edn *v, size_t *len)
{
    char *s = NULL;
    if (v->type == EDN_INT) {
        s = malloc(32);
        if (s != NULL) {
            *len = (size_t)snprintf(s, 32, "i%lld", (long long)v->i);
        }
    } else if (v->type == EDN_STRING) {
        s = malloc(v->len + 2);
        if (s != NULL) {
            s[0] = 's';
            memcpy(s + 1, v->s, v->len);
            s[v->len + 1] = '\0';
            *len = v->len + 1;
        }
    }
    return s;
}

static void element_print(FILE *f, const char *s, size_t len, bool json)
{
    if (s[0] == 'i') {
        fprintf(f, "%s", s + 1);
    } else {
        /* JSON's escapes are EDN's too, for the ASCII they are used on. */
        check_json_string(f, s + 1, len - 1);
    }
}

int check_set(const struct history *h, struct check_result *out, char *errmsg, size_t errmsg_len)
{
    memset(out, 0, sizeof(*out));
    struct strmap adds;
    strmap_init(&adds);
    uint8_t *state = NULL; /* by element id: ADD_* bits */
    uint8_t *seen = NULL;  /* by element id: in the final read */
    size_t state_cap = 0;
    const struct edn *final = NULL;
    size_t final_line = 0;
    char *json = NULL, *text = NULL;
    size_t json_len, text_len;
    FILE *fj = NULL, *ft = NULL;
    int rv = -1;
    size_t n_adds = 0;
    for (size_t i = 0; i < h->n_ops; i++) {
        const struct hist_op *op = &h->ops[i];
        const struct hist_event *inv = &h->events[op->invoke];
        if (strcmp(inv->f, "read") == 0) {
            if (op->outcome == HIST_OK) {
                final = &h->events[op->complete].value;
                final_line = h->events[op->complete].line;
            }
            continue;
        }
        if (strcmp(inv->f, "add") != 0) {
            snprintf(errmsg, errmsg_len, "line %zu: :f %s is not :add or :read", inv->line, inv->f);
            goto err;
        }
        size_t len;
        char *s = element(&inv->value, &len);
        if (s == NULL) {
            snprintf(errmsg, errmsg_len, "line %zu: added element is neither integer nor string",
                     inv->line);
            goto err;
        }
        uint32_t id = strmap_intern(&adds, s, len, NULL);
        free(s);
        if (id == STRMAP_NONE) {
            snprintf(errmsg, errmsg_len, "out of memory");
            goto err;
        }
        if (id >= state_cap) {
            size_t cap2 = state_cap == 0 ? 1024 : state_cap * 2;
            while (cap2 <= id) {
                cap2 *= 2;
            }
            uint8_t *grown = realloc(state, cap2);
            if (grown == NULL) {
                snprintf(errmsg, errmsg_len, "out of memory");
                goto err;
            }
            memset(grown + state_cap, 0, cap2 - state_cap);
            state = grown;
            state_cap = cap2;
        }
        state[id] |= op->outcome == HIST_OK     ? ADD_OK
                     : op->outcome == HIST_FAIL ? ADD_FAIL
                                                : ADD_INFO;
        n_adds++;
    }
    seen = calloc(adds.n + 1, 1);
    fj = open_memstream(&json, &json_len);
    ft = open_memstream(&text, &text_len);
    if (seen == NULL || fj == NULL || ft == NULL) {
        snprintf(errmsg, errmsg_len, "out of memory");
        goto err;
    }
    size_t n_ok = 0, n_info_present = 0, n_info = 0, n_read = 0;
    for (size_t id = 0; id < adds.n; id++) {
        n_ok += (state[id] & ADD_OK) != 0;
        n_info += (state[id] & (ADD_OK | ADD_INFO)) == ADD_INFO;
    }
    fprintf(fj, "{\"check\":\"set\",\"unexpected\":[");
    if (final == NULL) {
        out->anomalies[ANOMALY_NO_FINAL_READ] = 1;
    } else if (final->type != EDN_SET && final->type != EDN_VECTOR && final->type != EDN_LIST) {
        snprintf(errmsg, errmsg_len, "line %zu: final read is not a set or vector", final_line);
        goto err;
    } else {
        for (size_t k = 0; k < final->n; k++) {
            size_t len;
            char *s = element(&final->items[k], &len);
            if (s == NULL) {
                snprintf(errmsg, errmsg_len, "line %zu: read element is neither integer nor string",
                         final_line);
                goto err;
            }
            uint32_t id = strmap_find(&adds, s, len);
            n_read++;
            if (id == STRMAP_NONE || (state[id] & (ADD_OK | ADD_INFO)) == 0) {
                /* Never attempted, or attempted and certainly failed. */
                if (out->anomalies[ANOMALY_UNEXPECTED] < EXAMPLES_MAX) {
                    fprintf(fj, "%s", out->anomalies[ANOMALY_UNEXPECTED] > 0 ? "," : "");
                    element_print(fj, s, len, true);
                }
                out->anomalies[ANOMALY_UNEXPECTED]++;
            } else {
                seen[id] = 1;
            }
            free(s);
        }
    }
    fprintf(fj, "],\"lost\":[");
    for (size_t id = 0; final != NULL && id < adds.n; id++) {
        if ((state[id] & ADD_OK) != 0 && !seen[id]) {
            if (out->anomalies[ANOMALY_LOST] < EXAMPLES_MAX) {
                fprintf(fj, "%s", out->anomalies[ANOMALY_LOST] > 0 ? "," : "");
                element_print(fj, adds.keys[id], adds.lens[id], true);
                fprintf(ft, "%s", out->anomalies[ANOMALY_LOST] > 0 ? " " : "  lost:");
                element_print(ft, adds.keys[id], adds.lens[id], false);
            }
            out->anomalies[ANOMALY_LOST]++;
        }
        if ((state[id] & (ADD_OK | ADD_INFO)) == ADD_INFO && seen[id]) {
            n_info_present++;
        }
    }
    if (out->anomalies[ANOMALY_LOST] > 0) {
        fprintf(ft, "%s\n", out->anomalies[ANOMALY_LOST] > EXAMPLES_MAX ? " ..." : "");
    }
    bool bad = out->anomalies[ANOMALY_LOST] + out->anomalies[ANOMALY_UNEXPECTED] +
                   out->anomalies[ANOMALY_NO_FINAL_READ] >
               0;
    out->verdict = bad ? CHECK_INVALID : CHECK_VALID;
    fprintf(fj,
            "],\"verdict\":\"%s\",\"adds\":%zu,\"acknowledged\":%zu,\"info\":%zu,"
            "\"info_present\":%zu,\"final_read_line\":%zu,\"read\":%zu,"
            "\"anomalies\":{\"lost\":%zu,\"unexpected\":%zu,\"no-final-read\":%zu}}",
            check_verdict_name(out->verdict), n_adds, n_ok, n_info, n_info_present, final_line,
            n_read, out->anomalies[ANOMALY_LOST], out->anomalies[ANOMALY_UNEXPECTED],
            out->anomalies[ANOMALY_NO_FINAL_READ]);
    fclose(fj);
    fj = NULL;
    fclose(ft);
    ft = NULL;
    if (check_set_text(
            out, text, errmsg, errmsg_len,
            "set: %s: %zu adds (%zu acknowledged, %zu :info of which %zu present), final read "
            "%s with %zu elements: %zu lost, %zu unexpected",
            check_verdict_name(out->verdict), n_adds, n_ok, n_info, n_info_present,
            final != NULL ? "found" : "MISSING", n_read, out->anomalies[ANOMALY_LOST],
            out->anomalies[ANOMALY_UNEXPECTED]) != 0) {
        goto err;
    }
    out->json = json;
    json = NULL;
    rv = 0;
err:
    if (fj != NULL) {
        fclose(fj);
    }
    if (ft != NULL) {
        fclose(ft);
    }
    free(json);
    free(text);
    free(state);
    free(seen);
    strmap_free(&adds);
    if (rv != 0) {
        check_result_free(out);
    }
    return rv;
}
