/*
 * cairn-check: the checker of the chaos tests, on files a harness wrote.
 *
 *   cairn-check register HISTORY [--out FILE] [--steps-max N] [--time-ms-max N]
 *   cairn-check set HISTORY [--out FILE]
 *   cairn-check watch WATCH_LOG COMMITTED_LOG [--out FILE]
 *
 * Prints a human summary on stdout and, with --out, writes the JSON result.
 * Exit status: 0 valid, 1 invalid (or unknown: a search limit was hit),
 * 2 usage or input error. See jepsen/README.md, "Checker".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define EXIT_VALID 0
#define EXIT_INVALID 1
#define EXIT_USAGE 2

static int usage(void)
{
    fprintf(stderr,
            "usage: cairn-check register HISTORY [--out FILE] [--steps-max N] [--time-ms-max N]\n"
            "       cairn-check set HISTORY [--out FILE]\n"
            "       cairn-check watch WATCH_LOG COMMITTED_LOG [--out FILE]\n"
            "exit status: 0 valid, 1 invalid or unknown (limit hit), 2 usage or input error\n");
    return EXIT_USAGE;
}

static int parse_count(const char *s, uint64_t *v)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9') {
        return -1;
    }
    *v = strtoull(s, &end, 10);
    return *end == '\0' && *v > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        return usage();
    }
    const char *cmd = argv[1];
    const char *inputs[2] = {NULL, NULL};
    size_t n_inputs = 0, want = strcmp(cmd, "watch") == 0 ? 2 : 1;
    const char *out_path = NULL;
    struct register_opts ropts = {0};
    if (strcmp(cmd, "register") != 0 && strcmp(cmd, "set") != 0 && strcmp(cmd, "watch") != 0) {
        return usage();
    }
    for (int k = 2; k < argc; k++) {
        const char *a = argv[k];
        if (strcmp(a, "--out") == 0 && k + 1 < argc) {
            out_path = argv[++k];
        } else if (strcmp(a, "--steps-max") == 0 && strcmp(cmd, "register") == 0) {
            if (parse_count(k + 1 < argc ? argv[++k] : NULL, &ropts.steps_max) != 0) {
                return usage();
            }
        } else if (strcmp(a, "--time-ms-max") == 0 && strcmp(cmd, "register") == 0) {
            if (parse_count(k + 1 < argc ? argv[++k] : NULL, &ropts.time_ms_max) != 0) {
                return usage();
            }
        } else if (a[0] == '-' && a[1] == '-') {
            return usage();
        } else if (n_inputs < want) {
            inputs[n_inputs++] = a;
        } else {
            return usage();
        }
    }
    if (n_inputs != want) {
        return usage();
    }
    char errmsg[1024] = "";
    struct check_result r;
    int rv;
    if (want == 2) {
        size_t wl, cl;
        char *w = check_read_file(inputs[0], &wl, errmsg, sizeof(errmsg));
        char *c = w != NULL ? check_read_file(inputs[1], &cl, errmsg, sizeof(errmsg)) : NULL;
        rv = c != NULL ? check_watch_text(w, wl, c, cl, &r, errmsg, sizeof(errmsg)) : -1;
        free(w);
        free(c);
    } else {
        struct history h;
        rv = history_read_file(inputs[0], &h, errmsg, sizeof(errmsg));
        if (rv == 0) {
            rv = strcmp(cmd, "set") == 0 ? check_set(&h, &r, errmsg, sizeof(errmsg))
                                         : check_register(&h, &ropts, &r, errmsg, sizeof(errmsg));
            history_free(&h);
        }
    }
    if (rv != 0) {
        fprintf(stderr, "cairn-check %s: %s\n", cmd, errmsg);
        return EXIT_USAGE;
    }
    fputs(r.text, stdout);
    if (out_path != NULL) {
        FILE *f = fopen(out_path, "w");
        if (f == NULL || fprintf(f, "%s\n", r.json) < 0 || fclose(f) != 0) {
            fprintf(stderr, "cairn-check: cannot write %s\n", out_path);
            check_result_free(&r);
            return EXIT_USAGE;
        }
    }
    int status = r.verdict == CHECK_VALID ? EXIT_VALID : EXIT_INVALID;
    check_result_free(&r);
    return status;
}
