/*
 * edn: a reader for the subset of EDN that Jepsen histories use.
 *
 * Supported: nil, true, false, integers (64-bit, optional sign), floats
 * (kept as doubles, only so that extra keys such as :latency do not make a
 * line unreadable), strings with the escapes \" \\ \n \t \r \uXXXX (ASCII
 * only), keywords (:ok), symbols, vectors [..], lists (..), sets #{..} and
 * maps {..}, nested to at most EDN_DEPTH_MAX. Commas are whitespace and ';'
 * starts a comment. Tagged literals (#inst ...) and characters (\c) are not
 * supported: they are reported as errors, never asserted on.
 *
 * The reader does no I/O: give it one line (or any text holding exactly one
 * value) and it returns a tree that the caller owns and frees with
 * edn_free().
 */
#ifndef CAIRN_CHECKER_EDN_H
#define CAIRN_CHECKER_EDN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EDN_DEPTH_MAX 64

enum edn_type {
    EDN_NIL = 0,
    EDN_BOOL,
    EDN_INT,
    EDN_FLOAT,
    EDN_STRING,
    EDN_KEYWORD, /* s holds the name without the colon */
    EDN_SYMBOL,
    EDN_VECTOR,
    EDN_LIST,
    EDN_SET,
    EDN_MAP, /* items holds 2 * n values: key, value, key, value... */
};

struct edn
{
    enum edn_type type;
    bool b;
    int64_t i;
    double d;
    char *s;           /* owned: STRING, KEYWORD, SYMBOL; NUL-terminated */
    size_t len;        /* bytes in s, without the NUL */
    struct edn *items; /* owned: VECTOR, LIST, SET, MAP */
    size_t n;          /* elements (pairs for a MAP) */
};

/* Parses exactly one value from text[0..len) (surrounding whitespace and
 * comments allowed). Returns 0 and fills *out (owned by the caller), or -1
 * with a message in errmsg naming the column; *out is then empty. */
int edn_parse(const char *text, size_t len, struct edn *out, char *errmsg, size_t errmsg_len);

/* Frees what edn_parse() allocated; *v becomes nil. */
void edn_free(struct edn *v);

/* The value of keyword key (without colon) in map m, or NULL. */
const struct edn *edn_map_get(const struct edn *m, const char *key);

/* True when v is the keyword name. */
bool edn_is_keyword(const struct edn *v, const char *name);

/* Writes v as EDN into buf (always NUL-terminated, truncated with "..."
 * when it does not fit). Returns buf. */
char *edn_print(const struct edn *v, char *buf, size_t buf_len);

/* The value of a hexadecimal digit, -1 if c is none. */
int edn_hex_digit(char c);

#endif /* CAIRN_CHECKER_EDN_H */
