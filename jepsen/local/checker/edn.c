/*
 * edn: see edn.h. A recursive-descent reader. Every read is bounds-checked
 * against the end of the input and nesting is bounded, because the input is
 * a file written by another program: a malformed line yields an error
 * message, never an assertion.
 */
#include "edn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reader
{
    const char *start;
    const char *p;
    const char *end;
    char *errmsg;
    size_t errmsg_len;
};

static int fail(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct reader *r, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (r->errmsg_len > 0) {
        snprintf(r->errmsg, r->errmsg_len, "column %zu: %s", (size_t)(r->p - r->start) + 1, what);
    }
    return -1;
}

static void skip_space(struct reader *r)
{
    while (r->p < r->end) {
        char c = *r->p;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',') {
            r->p++;
        } else if (c == ';') {
            while (r->p < r->end && *r->p != '\n') {
                r->p++;
            }
        } else {
            break;
        }
    }
}

static bool is_delim(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '(' || c == ')' ||
           c == '[' || c == ']' || c == '{' || c == '}' || c == '"' || c == ';';
}

static int parse_value(struct reader *r, struct edn *out, int depth);

/* Appends a zeroed element to a growing array of values. */
static struct edn *push_item(struct reader *r, struct edn **items, size_t *n, size_t *cap)
{
    if (*n == *cap) {
        size_t cap2 = *cap == 0 ? 4 : *cap * 2;
        struct edn *grown = realloc(*items, cap2 * sizeof(**items));
        if (grown == NULL) {
            fail(r, "out of memory");
            return NULL;
        }
        *items = grown;
        *cap = cap2;
    }
    memset(&(*items)[*n], 0, sizeof(**items));
    return &(*items)[(*n)++];
}

static int parse_seq(struct reader *r, struct edn *out, enum edn_type type, char close, int depth)
{
    size_t cap = 0;
    /* A map is a vector of forms until it is complete, so that edn_free()
     * of a half-read map sees a consistent count. */
    out->type = type == EDN_MAP ? EDN_VECTOR : type;
    for (;;) {
        skip_space(r);
        if (r->p >= r->end) {
            return fail(r, "unterminated collection (expected '%c')", close);
        }
        if (*r->p == close) {
            r->p++;
            break;
        }
        if (*r->p == ')' || *r->p == ']' || *r->p == '}') {
            return fail(r, "unexpected '%c' (expected '%c')", *r->p, close);
        }
        struct edn *item = push_item(r, &out->items, &out->n, &cap);
        if (item == NULL || parse_value(r, item, depth + 1) != 0) {
            return -1;
        }
    }
    if (type == EDN_MAP) {
        if (out->n % 2 != 0) {
            return fail(r, "map with an odd number of forms");
        }
        out->n /= 2;
        out->type = EDN_MAP;
    }
    return 0;
}

int edn_hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int parse_string(struct reader *r, struct edn *out)
{
    r->p++; /* the opening quote */
    /* The decoded string is never longer than the encoded one. */
    const char *q = r->p;
    while (q < r->end && *q != '"') {
        q += (*q == '\\' && q + 1 < r->end) ? 2 : 1;
    }
    if (q >= r->end) {
        return fail(r, "unterminated string");
    }
    char *s = malloc((size_t)(q - r->p) + 1);
    if (s == NULL) {
        return fail(r, "out of memory");
    }
    size_t n = 0;
    while (*r->p != '"') {
        char c = *r->p++;
        if (c == '\\') {
            char e = *r->p++;
            switch (e) {
                case '"':
                    c = '"';
                    break;
                case '\\':
                    c = '\\';
                    break;
                case 'n':
                    c = '\n';
                    break;
                case 't':
                    c = '\t';
                    break;
                case 'r':
                    c = '\r';
                    break;
                case 'b':
                    c = '\b';
                    break;
                case 'f':
                    c = '\f';
                    break;
                case 'u': {
                    int code = 0;
                    for (int k = 0; k < 4; k++) {
                        int h = r->p < q ? edn_hex_digit(*r->p) : -1;
                        if (h < 0) {
                            free(s);
                            return fail(r, "bad \\u escape in string");
                        }
                        code = code * 16 + h;
                        r->p++;
                    }
                    if (code > 0x7f) {
                        free(s);
                        return fail(r, "\\u escape beyond ASCII is not supported");
                    }
                    c = (char)code;
                    break;
                }
                default:
                    free(s);
                    r->p--;
                    return fail(r, "unknown escape '\\%c' in string", e);
            }
        }
        s[n++] = c;
    }
    r->p++; /* the closing quote */
    s[n] = '\0';
    out->type = EDN_STRING;
    out->s = s;
    out->len = n;
    return 0;
}

/* A token: number, keyword, symbol, nil, true, false. */
static int parse_token(struct reader *r, struct edn *out)
{
    const char *t = r->p;
    while (r->p < r->end && !is_delim(*r->p)) {
        r->p++;
    }
    size_t n = (size_t)(r->p - t);
    if (n == 0) {
        return fail(r, "unexpected character '%c'", *r->p);
    }
    char tok[64];
    bool numeric = (t[0] >= '0' && t[0] <= '9') ||
                   ((t[0] == '-' || t[0] == '+') && n > 1 && t[1] >= '0' && t[1] <= '9');
    if (numeric) {
        if (n >= sizeof(tok)) {
            return fail(r, "number too long");
        }
        memcpy(tok, t, n);
        tok[n] = '\0';
        if (tok[n - 1] == 'N' || tok[n - 1] == 'M') {
            tok[--n] = '\0'; /* bigint / bigdecimal suffixes */
        }
        char *endp = NULL;
        errno = 0;
        if (strpbrk(tok, ".eE") != NULL) {
            out->type = EDN_FLOAT;
            out->d = strtod(tok, &endp);
        } else {
            out->type = EDN_INT;
            out->i = strtoll(tok, &endp, 10);
        }
        if (errno != 0 || endp == NULL || *endp != '\0') {
            r->p = t;
            return fail(r, "bad number '%s'", tok);
        }
        return 0;
    }
    if (n == 3 && memcmp(t, "nil", 3) == 0) {
        out->type = EDN_NIL;
        return 0;
    }
    if (n == 4 && memcmp(t, "true", 4) == 0) {
        out->type = EDN_BOOL;
        out->b = true;
        return 0;
    }
    if (n == 5 && memcmp(t, "false", 5) == 0) {
        out->type = EDN_BOOL;
        out->b = false;
        return 0;
    }
    if (t[0] == '#' || t[0] == '\\') {
        r->p = t;
        return fail(r, "tagged literals and characters are not supported");
    }
    size_t skip = t[0] == ':' ? 1 : 0;
    if (n == skip) {
        r->p = t;
        return fail(r, "empty keyword");
    }
    out->type = skip ? EDN_KEYWORD : EDN_SYMBOL;
    out->len = n - skip;
    out->s = malloc(out->len + 1);
    if (out->s == NULL) {
        return fail(r, "out of memory");
    }
    memcpy(out->s, t + skip, out->len);
    out->s[out->len] = '\0';
    return 0;
}

static int parse_value(struct reader *r, struct edn *out, int depth)
{
    memset(out, 0, sizeof(*out));
    if (depth > EDN_DEPTH_MAX) {
        return fail(r, "nested deeper than %d", EDN_DEPTH_MAX);
    }
    skip_space(r);
    if (r->p >= r->end) {
        return fail(r, "unexpected end of input");
    }
    char c = *r->p;
    switch (c) {
        case '[':
            r->p++;
            return parse_seq(r, out, EDN_VECTOR, ']', depth);
        case '(':
            r->p++;
            return parse_seq(r, out, EDN_LIST, ')', depth);
        case '{':
            r->p++;
            return parse_seq(r, out, EDN_MAP, '}', depth);
        case '"':
            return parse_string(r, out);
        case '#':
            if (r->p + 1 < r->end && r->p[1] == '{') {
                r->p += 2;
                return parse_seq(r, out, EDN_SET, '}', depth);
            }
            return fail(r, "tagged literals are not supported");
        case ')':
        case ']':
        case '}':
            return fail(r, "unexpected '%c'", c);
        default:
            return parse_token(r, out);
    }
}

int edn_parse(const char *text, size_t len, struct edn *out, char *errmsg, size_t errmsg_len)
{
    struct reader r = {text, text, text + len, errmsg, errmsg_len};
    if (parse_value(&r, out, 0) != 0) {
        edn_free(out);
        return -1;
    }
    skip_space(&r);
    if (r.p != r.end) {
        edn_free(out);
        return fail(&r, "extra text after the value");
    }
    return 0;
}

void edn_free(struct edn *v)
{
    size_t n = v->type == EDN_MAP ? v->n * 2 : v->n;
    for (size_t k = 0; v->items != NULL && k < n; k++) {
        edn_free(&v->items[k]);
    }
    free(v->items);
    free(v->s);
    memset(v, 0, sizeof(*v));
}

const struct edn *edn_map_get(const struct edn *m, const char *key)
{
    if (m == NULL || m->type != EDN_MAP) {
        return NULL;
    }
    for (size_t k = 0; k < m->n; k++) {
        if (edn_is_keyword(&m->items[2 * k], key)) {
            return &m->items[2 * k + 1];
        }
    }
    return NULL;
}

bool edn_is_keyword(const struct edn *v, const char *name)
{
    return v != NULL && v->type == EDN_KEYWORD && strcmp(v->s, name) == 0;
}

struct printer
{
    char *buf;
    size_t len;
    size_t used;
    bool truncated;
};

static void put(struct printer *pr, const char *s, size_t n)
{
    if (pr->used + n + 1 > pr->len) {
        pr->truncated = true;
        return;
    }
    memcpy(pr->buf + pr->used, s, n);
    pr->used += n;
    pr->buf[pr->used] = '\0';
}

static void print_value(struct printer *pr, const struct edn *v)
{
    char num[64];
    const char *open = "", *close = "";
    switch (v->type) {
        case EDN_NIL:
            put(pr, "nil", 3);
            return;
        case EDN_BOOL:
            put(pr, v->b ? "true" : "false", v->b ? 4 : 5);
            return;
        case EDN_INT:
            put(pr, num, (size_t)snprintf(num, sizeof(num), "%lld", (long long)v->i));
            return;
        case EDN_FLOAT:
            put(pr, num, (size_t)snprintf(num, sizeof(num), "%g", v->d));
            return;
        case EDN_KEYWORD:
            put(pr, ":", 1);
            put(pr, v->s, v->len);
            return;
        case EDN_SYMBOL:
            put(pr, v->s, v->len);
            return;
        case EDN_STRING:
            put(pr, "\"", 1);
            for (size_t k = 0; k < v->len; k++) {
                char c = v->s[k];
                if (c == '"' || c == '\\') {
                    put(pr, "\\", 1);
                } else if (c == '\n') {
                    put(pr, "\\n", 2);
                    continue;
                } else if ((unsigned char)c < 0x20) {
                    put(pr, num, (size_t)snprintf(num, sizeof(num), "\\u%04x", c));
                    continue;
                }
                put(pr, &c, 1);
            }
            put(pr, "\"", 1);
            return;
        case EDN_VECTOR:
            open = "[";
            close = "]";
            break;
        case EDN_LIST:
            open = "(";
            close = ")";
            break;
        case EDN_SET:
            open = "#{";
            close = "}";
            break;
        case EDN_MAP:
            open = "{";
            close = "}";
            break;
    }
    put(pr, open, strlen(open));
    size_t n = v->type == EDN_MAP ? v->n * 2 : v->n;
    for (size_t k = 0; k < n; k++) {
        if (k > 0) {
            put(pr, " ", 1);
        }
        print_value(pr, &v->items[k]);
    }
    put(pr, close, strlen(close));
}

char *edn_print(const struct edn *v, char *buf, size_t buf_len)
{
    struct printer pr = {buf, buf_len, 0, false};
    if (buf_len == 0) {
        return buf;
    }
    buf[0] = '\0';
    print_value(&pr, v);
    if (pr.truncated && buf_len >= 4) {
        size_t at = pr.used + 4 <= buf_len ? pr.used : buf_len - 4;
        memcpy(buf + at, "...", 4);
    }
    return buf;
}
