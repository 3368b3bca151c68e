/*
 * json: see json.h. The parser is a recursive descent over a bounded depth;
 * the recursion is the depth, so JSON_DEPTH_MAX also bounds the stack. It
 * never asserts on its input: whatever the bytes, the answer is a tree or a
 * message.
 */
#include "json.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* UTF-8 */

/* Length of the well-formed UTF-8 sequence at s[0..len), 0 if there is none
 * (Unicode 15, table 3-7). */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        return len >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
        unsigned char hi = c == 0xED ? 0x9F : 0xBF; /* 0xED: no surrogates */
        return len >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
        unsigned char hi = c == 0xF4 ? 0x8F : 0xBF; /* nothing above U+10FFFF */
        return len >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 &&
                       (s[3] & 0xC0) == 0x80
                   ? 4
                   : 0;
    }
    return 0;
}

bool json_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        n = utf8_seq(p + i, len - i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

/* Base64 */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t json_base64_encoded_len(size_t len)
{
    return (len + 2) / 3 * 4;
}

size_t json_base64_decoded_max(size_t len)
{
    return (len + 3) / 4 * 3;
}

void json_base64_encode(const void *in, size_t len, char *out)
{
    const unsigned char *p = in;
    size_t i;
    size_t o = 0;
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

long long json_base64_decode(const char *in, size_t len, void *out)
{
    unsigned char *o = out;
    size_t n = 0;
    size_t i;
    size_t pad = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    /* Padding only at the end, at most two, and only to a multiple of 4. */
    while (pad < 2 && len > 0 && in[len - 1] == '=') {
        len--;
        pad++;
    }
    if (pad > 0 && (len + pad) % 4 != 0) {
        return -1;
    }
    if (len % 4 == 1) {
        return -1;
    }
    for (i = 0; i < len; i++) {
        int v = b64_value(in[i]);
        if (v < 0) {
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* The leftover bits of the last character must be zero (canonical). */
    if (acc != 0) {
        return -1;
    }
    return (long long)n;
}

/* Parser */

struct parser
{
    const char *p;
    const char *start;
    const char *end;
    struct arena *arena;
    size_t values; /* allocated so far, at most JSON_VALUES_MAX */
    char *errmsg;
    size_t errmsg_len;
};

static int perr(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct parser *ps, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(ps->errmsg, ps->errmsg_len, "invalid JSON at byte %zu: %s",
             (size_t)(ps->p - ps->start), what);
    return -1;
}

static int oom(struct parser *ps)
{
    snprintf(ps->errmsg, ps->errmsg_len, "out of memory");
    return -1;
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) {
        ps->p++;
    }
}

static int hex4(struct parser *ps, uint32_t *out)
{
    uint32_t v = 0;
    int i;
    if (ps->end - ps->p < 4) {
        return perr(ps, "truncated \\u escape");
    }
    for (i = 0; i < 4; i++) {
        char c = ps->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (uint32_t)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (uint32_t)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (uint32_t)(c - 'A' + 10);
        } else {
            return perr(ps, "bad hex digit in \\u escape");
        }
    }
    ps->p += 4;
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string at ps->p (the opening quote). The decoded form is never longer
 * than the source (an escape of 6 or 12 bytes yields at most 4), so one
 * allocation of the source's length suffices. */
static int parse_string(struct parser *ps, const char **out, size_t *out_len)
{
    const char *q;
    char *o;
    size_t n = 0;
    ps->p++; /* the quote */
    /* Find the closing quote first, to size the copy. */
    for (q = ps->p; q < ps->end && *q != '"'; q++) {
        if (*q == '\\') {
            q++;
            if (q == ps->end) {
                break;
            }
        }
    }
    if (q >= ps->end) {
        return perr(ps, "unterminated string");
    }
    o = arena_alloc(ps->arena, (size_t)(q - ps->p) + 1);
    if (o == NULL) {
        return oom(ps);
    }
    while (ps->p < q) {
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20) {
            return perr(ps, "control character in string");
        }
        if (c >= 0x80) {
            size_t len = utf8_seq((const unsigned char *)ps->p, (size_t)(q - ps->p));
            if (len == 0) {
                return perr(ps, "invalid UTF-8 in string");
            }
            memcpy(o + n, ps->p, len);
            n += len;
            ps->p += len;
            continue;
        }
        if (c != '\\') {
            o[n++] = (char)c;
            ps->p++;
            continue;
        }
        ps->p++;
        switch (*ps->p++) {
            case '"':
                o[n++] = '"';
                break;
            case '\\':
                o[n++] = '\\';
                break;
            case '/':
                o[n++] = '/';
                break;
            case 'b':
                o[n++] = '\b';
                break;
            case 'f':
                o[n++] = '\f';
                break;
            case 'n':
                o[n++] = '\n';
                break;
            case 'r':
                o[n++] = '\r';
                break;
            case 't':
                o[n++] = '\t';
                break;
            case 'u': {
                uint32_t cp;
                if (hex4(ps, &cp) != 0) {
                    return -1;
                }
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return perr(ps, "lone low surrogate in \\u escape");
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (q - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                        return perr(ps, "high surrogate not followed by a low one");
                    }
                    ps->p += 2;
                    if (hex4(ps, &lo) != 0) {
                        return -1;
                    }
                    if (lo < 0xDC00 || lo > 0xDFFF) {
                        return perr(ps, "high surrogate not followed by a low one");
                    }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                n += put_utf8(o + n, cp);
                break;
            }
            default:
                ps->p--;
                return perr(ps, "bad escape");
        }
        if (ps->p > q) {
            /* An escape that ran into the closing quote ("\u12"). */
            return perr(ps, "truncated escape");
        }
    }
    o[n] = '\0';
    ps->p = q + 1;
    *out = o;
    *out_len = n;
    return 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int parse_number(struct parser *ps, struct json_value *v)
{
    const char *s = ps->p;
    const char *q = s;
    char *text;
    bool integer = true;
    if (q < ps->end && *q == '-') {
        q++;
    }
    if (q == ps->end || !is_digit(*q)) {
        return perr(ps, "bad number");
    }
    if (*q == '0') {
        q++;
        if (q < ps->end && is_digit(*q)) {
            return perr(ps, "leading zero in number");
        }
    } else {
        while (q < ps->end && is_digit(*q)) {
            q++;
        }
    }
    if (q < ps->end && *q == '.') {
        integer = false;
        q++;
        if (q == ps->end || !is_digit(*q)) {
            return perr(ps, "bad fraction in number");
        }
        while (q < ps->end && is_digit(*q)) {
            q++;
        }
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        integer = false;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) {
            q++;
        }
        if (q == ps->end || !is_digit(*q)) {
            return perr(ps, "bad exponent in number");
        }
        while (q < ps->end && is_digit(*q)) {
            q++;
        }
    }
    text = arena_alloc(ps->arena, (size_t)(q - s) + 1);
    if (text == NULL) {
        return oom(ps);
    }
    memcpy(text, s, (size_t)(q - s));
    text[q - s] = '\0';
    v->type = JSON_NUMBER;
    v->str = text;
    v->len = (size_t)(q - s);
    if (integer && s[0] != '-') {
        const char *d;
        uint64_t u = 0;
        v->is_uint = true;
        for (d = s; d < q; d++) {
            unsigned digit = (unsigned)(*d - '0');
            if (u > (UINT64_MAX - digit) / 10) {
                v->is_uint = false;
                break;
            }
            u = u * 10 + digit;
        }
        v->uint = v->is_uint ? u : 0;
    }
    ps->p = q;
    return 0;
}

static int parse_value(struct parser *ps, struct json_value *v, int depth);

static bool has_member(const struct json_value *obj, const char *key, size_t len)
{
    const struct json_value *m;
    for (m = obj->child; m != NULL; m = m->next) {
        if (m->key_len == len && memcmp(m->key, key, len) == 0) {
            return true;
        }
    }
    return false;
}

/* Objects and arrays: members in order, appended at the tail. Duplicate
 * names are looked up linearly: an object of n members costs n^2/2
 * comparisons, bounded by the caller's limit on the body. */
static int parse_container(struct parser *ps, struct json_value *v, int depth)
{
    bool object = *ps->p == '{';
    char close = object ? '}' : ']';
    struct json_value **tail = &v->child;
    if (depth >= JSON_DEPTH_MAX) {
        return perr(ps, "nested deeper than %d", JSON_DEPTH_MAX);
    }
    v->type = object ? JSON_OBJECT : JSON_ARRAY;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    for (;;) {
        struct json_value *item;
        if (++ps->values > JSON_VALUES_MAX) {
            return perr(ps, "more than %d values", JSON_VALUES_MAX);
        }
        item = arena_alloc(ps->arena, sizeof(*item));
        if (item == NULL) {
            return oom(ps);
        }
        memset(item, 0, sizeof(*item));
        skip_ws(ps);
        if (object) {
            const char *key;
            size_t key_len;
            if (ps->p == ps->end || *ps->p != '"') {
                return perr(ps, "expected a member name");
            }
            if (parse_string(ps, &key, &key_len) != 0) {
                return -1;
            }
            if (has_member(v, key, key_len)) {
                return perr(ps, "duplicate member \"%.*s\"", (int)(key_len > 40 ? 40 : key_len),
                            key);
            }
            item->key = key;
            item->key_len = key_len;
            skip_ws(ps);
            if (ps->p == ps->end || *ps->p != ':') {
                return perr(ps, "expected ':'");
            }
            ps->p++;
        }
        if (parse_value(ps, item, depth + 1) != 0) {
            return -1;
        }
        *tail = item;
        tail = &item->next;
        v->n++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return 0;
        }
        return perr(ps, "expected ',' or '%c'", close);
    }
}

static int literal(struct parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
        return perr(ps, "unexpected character");
    }
    ps->p += n;
    return 0;
}

static int parse_value(struct parser *ps, struct json_value *v, int depth)
{
    skip_ws(ps);
    if (ps->p == ps->end) {
        return perr(ps, "unexpected end of input");
    }
    switch (*ps->p) {
        case '{':
        case '[':
            return parse_container(ps, v, depth);
        case '"':
            v->type = JSON_STRING;
            return parse_string(ps, &v->str, &v->len);
        case 't':
            v->type = JSON_BOOL;
            v->boolean = true;
            return literal(ps, "true");
        case 'f':
            v->type = JSON_BOOL;
            return literal(ps, "false");
        case 'n':
            v->type = JSON_NULL;
            return literal(ps, "null");
        default:
            return parse_number(ps, v);
    }
}

int json_parse(const char *text, size_t len, struct arena *arena, struct json_value **out,
               char *errmsg, size_t errmsg_len)
{
    struct parser ps;
    struct json_value *root;
    ps.p = text;
    ps.start = text;
    ps.end = text + len;
    ps.arena = arena;
    ps.values = 1;
    ps.errmsg = errmsg;
    ps.errmsg_len = errmsg_len;
    root = arena_alloc(arena, sizeof(*root));
    if (root == NULL) {
        return oom(&ps);
    }
    memset(root, 0, sizeof(*root));
    if (parse_value(&ps, root, 0) != 0) {
        return -1;
    }
    skip_ws(&ps);
    if (ps.p != ps.end) {
        return perr(&ps, "unexpected data after the value");
    }
    *out = root;
    return 0;
}

const struct json_value *json_get(const struct json_value *v, const char *name)
{
    const struct json_value *m;
    size_t len = strlen(name);
    if (v == NULL || v->type != JSON_OBJECT) {
        return NULL;
    }
    for (m = v->child; m != NULL; m = m->next) {
        if (m->key_len == len && memcmp(m->key, name, len) == 0) {
            return m;
        }
    }
    return NULL;
}

/* Writer */

void json_writer_init(struct json_writer *w, struct buf *out)
{
    w->out = out;
    w->comma = false;
    w->err = 0;
}

int json_writer_error(const struct json_writer *w)
{
    return w->err;
}

static void put(struct json_writer *w, const void *p, size_t len)
{
    if (w->err == 0 && buf_append(w->out, p, len) != 0) {
        w->err = -1;
    }
}

static void value_start(struct json_writer *w)
{
    if (w->comma) {
        put(w, ",", 1);
    }
}

void json_object_begin(struct json_writer *w)
{
    value_start(w);
    put(w, "{", 1);
    w->comma = false;
}

void json_object_end(struct json_writer *w)
{
    put(w, "}", 1);
    w->comma = true;
}

void json_array_begin(struct json_writer *w)
{
    value_start(w);
    put(w, "[", 1);
    w->comma = false;
}

void json_array_end(struct json_writer *w)
{
    put(w, "]", 1);
    w->comma = true;
}

void json_key(struct json_writer *w, const char *name)
{
    json_cstring(w, name);
    put(w, ":", 1);
    w->comma = false;
}

void json_string(struct json_writer *w, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    size_t run = 0; /* bytes copied as they are, pending */
    value_start(w);
    put(w, "\"", 1);
    while (i < len) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char u[6];
        size_t n;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            run++;
            continue;
        }
        if (c >= 0x80) {
            n = utf8_seq(p + i, len - i);
            if (n > 0) {
                i += n;
                run += n;
                continue;
            }
        }
        put(w, p + i - run, run);
        run = 0;
        switch (c) {
            case '"':
                esc = "\\\"";
                break;
            case '\\':
                esc = "\\\\";
                break;
            case '\n':
                esc = "\\n";
                break;
            case '\r':
                esc = "\\r";
                break;
            case '\t':
                esc = "\\t";
                break;
            default:
                break;
        }
        if (esc != NULL) {
            put(w, esc, 2);
        } else if (c < 0x20) {
            u[0] = '\\';
            u[1] = 'u';
            u[2] = '0';
            u[3] = '0';
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            put(w, u, 6);
        } else {
            put(w, "\xEF\xBF\xBD", 3); /* invalid UTF-8: U+FFFD */
        }
        i++;
    }
    put(w, p + i - run, run);
    put(w, "\"", 1);
    w->comma = true;
}

void json_cstring(struct json_writer *w, const char *s)
{
    json_string(w, s, strlen(s));
}

void json_base64(struct json_writer *w, const void *data, size_t len)
{
    size_t n = json_base64_encoded_len(len);
    value_start(w);
    put(w, "\"", 1);
    if (w->err == 0 && buf_reserve(w->out, n) != 0) {
        w->err = -1;
    }
    if (w->err == 0) {
        json_base64_encode(data, len, w->out->data + w->out->len);
        w->out->len += n;
    }
    put(w, "\"", 1);
    w->comma = true;
}

void json_uint(struct json_writer *w, uint64_t v)
{
    char t[32];
    int n = snprintf(t, sizeof(t), "%" PRIu64, v);
    value_start(w);
    put(w, t, (size_t)n);
    w->comma = true;
}

void json_int(struct json_writer *w, int64_t v)
{
    char t[32];
    int n = snprintf(t, sizeof(t), "%" PRId64, v);
    value_start(w);
    put(w, t, (size_t)n);
    w->comma = true;
}

void json_bool(struct json_writer *w, bool v)
{
    value_start(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
    w->comma = true;
}

void json_null(struct json_writer *w)
{
    value_start(w);
    put(w, "null", 4);
    w->comma = true;
}

void json_raw(struct json_writer *w, const char *text, size_t len)
{
    value_start(w);
    put(w, text, len);
    w->comma = true;
}
