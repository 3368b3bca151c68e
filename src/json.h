/*
 * json: the small JSON writer and parser of the HTTP API. No I/O and no
 * knowledge of Cairn: text in, a tree out; calls in, text out.
 *
 * The parser is strict (RFC 8259 and nothing more): no comments, no trailing
 * commas, no leading zeros, no unescaped control characters, no invalid
 * UTF-8 (overlong forms and surrogates included), no lone surrogate escapes,
 * no duplicate member names, nothing after the value but whitespace. It is
 * bounded: nesting deeper than JSON_DEPTH_MAX, or more than JSON_VALUES_MAX
 * values, is refused, and every node and string it builds lives in the
 * caller's arena (strings take at most the input's size).
 *
 * The writer appends to a struct buf. It takes strings that are valid UTF-8
 * (check with json_utf8_valid first, or send bytes with json_base64); an
 * allocation failure is sticky and reported by json_writer_error().
 */
#ifndef CAIRN_JSON_H
#define CAIRN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Deepest nesting of arrays and objects the parser accepts. */
#define JSON_DEPTH_MAX 32
/* Most values (of any type, members and elements included) in one document:
 * "[0,0,0,...]" would otherwise cost ~100 bytes of tree per 2 bytes of
 * input. */
#define JSON_VALUES_MAX 100000

enum json_type {
    JSON_NULL = 0,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
};

struct json_value
{
    enum json_type type;
    bool boolean;  /* JSON_BOOL */
    bool is_uint;  /* JSON_NUMBER: a non-negative integer that fits 64 bits */
    uint64_t uint; /* ... and its value */
    /* JSON_STRING: the decoded string (NUL-terminated; may hold NULs, so use
     * len). JSON_NUMBER: the number's text. Both in the arena. */
    const char *str;
    size_t len;
    struct json_value *child; /* JSON_ARRAY, JSON_OBJECT: first element or member */
    size_t n;                 /* ... and how many */
    struct json_value *next;  /* next sibling in the parent */
    const char *key;          /* member name when the parent is an object */
    size_t key_len;
};

/* Parse text[0..len) into a tree allocated from arena (freed with it).
 * Returns 0 and sets *out, or -1 with a message naming the byte offset of the
 * problem in errmsg ("out of memory" when the arena failed). */
int json_parse(const char *text, size_t len, struct arena *arena, struct json_value **out,
               char *errmsg, size_t errmsg_len);

/* The member of an object named name (NUL-terminated), or NULL (also when v
 * is not an object). */
const struct json_value *json_get(const struct json_value *v, const char *name);

/* True when s[0..len) is well-formed UTF-8: shortest forms only, no
 * surrogates, nothing above U+10FFFF. */
bool json_utf8_valid(const char *s, size_t len);

/* Base64 (RFC 4648, standard alphabet). Encoding always pads. Decoding takes
 * padded or unpadded input and refuses anything else (whitespace, other
 * characters, bad padding, stray bits): returns the decoded length written
 * to out, which must hold json_base64_decoded_max(len) bytes, or -1. */
size_t json_base64_encoded_len(size_t len);
size_t json_base64_decoded_max(size_t len);
void json_base64_encode(const void *in, size_t len, char *out);
long long json_base64_decode(const char *in, size_t len, void *out);

/* The writer. Commas and colons are placed by the writer: call json_key()
 * before each member's value inside an object. */
struct json_writer
{
    struct buf *out; /* borrowed */
    bool comma;      /* a value was written at this level: the next needs a comma */
    int err;         /* sticky: -1 after an allocation failed */
};

void json_writer_init(struct json_writer *w, struct buf *out);
int json_writer_error(const struct json_writer *w);
void json_object_begin(struct json_writer *w);
void json_object_end(struct json_writer *w);
void json_array_begin(struct json_writer *w);
void json_array_end(struct json_writer *w);
/* A member name (NUL-terminated, valid UTF-8). */
void json_key(struct json_writer *w, const char *name);
/* A string value; s[0..len) must be valid UTF-8 (checked by assertion only
 * in the sense that invalid bytes are written as U+FFFD: never invalid
 * JSON). */
void json_string(struct json_writer *w, const char *s, size_t len);
void json_cstring(struct json_writer *w, const char *s);
void json_base64(struct json_writer *w, const void *data, size_t len);
void json_uint(struct json_writer *w, uint64_t v);
void json_int(struct json_writer *w, int64_t v);
void json_bool(struct json_writer *w, bool v);
void json_null(struct json_writer *w);
/* Text that is already JSON (a value), copied as is. */
void json_raw(struct json_writer *w, const char *text, size_t len);

#endif /* CAIRN_JSON_H */
