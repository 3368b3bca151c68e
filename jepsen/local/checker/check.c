/*
 * check: what the checks share (see check.h).
 */
#include "check.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const anomaly_names[ANOMALY_KINDS] = {
    [ANOMALY_NONLINEARIZABLE] = "nonlinearizable",
    [ANOMALY_LIMIT] = "limit",
    [ANOMALY_LOST] = "lost",
    [ANOMALY_UNEXPECTED] = "unexpected",
    [ANOMALY_NO_FINAL_READ] = "no-final-read",
    [ANOMALY_GAP] = "gap",
    [ANOMALY_DUPLICATE] = "duplicate",
    [ANOMALY_REORDER] = "reorder",
    [ANOMALY_SPLIT] = "split",
    [ANOMALY_MISMATCH] = "mismatch",
    [ANOMALY_SNAPSHOT] = "snapshot",
    [ANOMALY_BAD_UPDATE] = "bad-update",
    [ANOMALY_BEHIND] = "behind",
    [ANOMALY_STALE_READ] = "stale-read",
};

const char *check_anomaly_name(enum check_anomaly a)
{
    return (unsigned)a < ANOMALY_KINDS ? anomaly_names[a] : "?";
}

const char *check_verdict_name(enum check_verdict v)
{
    switch (v) {
        case CHECK_VALID:
            return "valid";
        case CHECK_INVALID:
            return "invalid";
        case CHECK_UNKNOWN:
            return "unknown";
    }
    return "?";
}

void check_result_free(struct check_result *r)
{
    free(r->json);
    free(r->text);
    memset(r, 0, sizeof(*r));
}

char *check_read_file(const char *path, size_t *len, char *errmsg, size_t errmsg_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(errmsg, errmsg_len, "%s: cannot open", path);
        return NULL;
    }
    char *text = NULL;
    size_t n = 0, cap = 0, got;
    char chunk[65536];
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (n + got + 1 > cap) {
            size_t cap2 = cap == 0 ? sizeof(chunk) * 2 : cap * 2;
            while (cap2 < n + got + 1) {
                cap2 *= 2;
            }
            char *grown = realloc(text, cap2);
            if (grown == NULL) {
                free(text);
                fclose(f);
                snprintf(errmsg, errmsg_len, "%s: out of memory", path);
                return NULL;
            }
            text = grown;
            cap = cap2;
        }
        memcpy(text + n, chunk, got);
        n += got;
    }
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) {
        free(text);
        snprintf(errmsg, errmsg_len, "%s: read error", path);
        return NULL;
    }
    if (text == NULL) {
        text = calloc(1, 1);
        if (text == NULL) {
            snprintf(errmsg, errmsg_len, "%s: out of memory", path);
            return NULL;
        }
    }
    text[n] = '\0';
    *len = n;
    return text;
}

void check_json_string(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c < 0x20 || c >= 0x7f) {
            fprintf(f, "\\u%04x", c);
        } else {
            fputc(c, f);
        }
    }
    fputc('"', f);
}

int check_set_text(struct check_result *out, const char *body, char *errmsg, size_t errmsg_len,
                   const char *fmt, ...)
{
    va_list ap;
    size_t body_len = body != NULL ? strlen(body) : 0;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        snprintf(errmsg, errmsg_len, "cannot format the summary");
        return -1;
    }
    out->text = malloc((size_t)n + body_len + 2);
    if (out->text == NULL) {
        snprintf(errmsg, errmsg_len, "out of memory");
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(out->text, (size_t)n + 1, fmt, ap);
    va_end(ap);
    out->text[n] = '\n';
    memcpy(out->text + n + 1, body != NULL ? body : "", body_len);
    out->text[n + 1 + body_len] = '\0';
    return 0;
}
