/*
 * fuzz_json: src/json.c's parser on arbitrary bytes. Whatever the input, it
 * returns a tree or a message, within its depth and value bounds; a tree,
 * written back out with the writer, parses again to the same shape.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static void write_value(struct json_writer *w, const struct json_value *v)
{
    const struct json_value *c;
    switch (v->type) {
        case JSON_NULL:
            json_null(w);
            break;
        case JSON_BOOL:
            json_bool(w, v->boolean);
            break;
        case JSON_NUMBER:
            json_raw(w, v->str, v->len);
            break;
        case JSON_STRING:
            json_string(w, v->str, v->len);
            break;
        case JSON_ARRAY:
            json_array_begin(w);
            for (c = v->child; c != NULL; c = c->next) {
                write_value(w, c);
            }
            json_array_end(w);
            break;
        case JSON_OBJECT:
            json_object_begin(w);
            for (c = v->child; c != NULL; c = c->next) {
                /* Member names may hold NULs: written through json_string. */
                json_string(w, c->key, c->key_len);
                w->comma = false; /* json_raw would put a comma before ':' */
                json_raw(w, ":", 1);
                w->comma = false;
                write_value(w, c);
            }
            json_object_end(w);
            break;
    }
}

static size_t count(const struct json_value *v)
{
    const struct json_value *c;
    size_t n = 1;
    for (c = v->child; c != NULL; c = c->next) {
        n += count(c);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena a;
    struct arena b;
    struct json_value *v;
    struct json_value *again;
    char errmsg[256];
    struct buf out;
    struct json_writer w;
    arena_init(&a);
    if (json_parse((const char *)data, size, &a, &v, errmsg, sizeof(errmsg)) == 0) {
        buf_init(&out);
        json_writer_init(&w, &out);
        write_value(&w, v);
        if (json_writer_error(&w) == 0) {
            arena_init(&b);
            if (json_parse(out.data, out.len, &b, &again, errmsg, sizeof(errmsg)) != 0 ||
                count(again) != count(v)) {
                abort();
            }
            arena_free(&b);
        }
        buf_free(&out);
    }
    arena_free(&a);
    /* Base64 and UTF-8 checks on the same bytes. */
    {
        char *dec = malloc(json_base64_decoded_max(size) + 1);
        if (dec != NULL) {
            long long n = json_base64_decode((const char *)data, size, dec);
            if (n >= 0) {
                char *enc = malloc(json_base64_encoded_len((size_t)n) + 1);
                if (enc != NULL) {
                    json_base64_encode(dec, (size_t)n, enc);
                    free(enc);
                }
            }
            free(dec);
        }
        (void)json_utf8_valid((const char *)data, size);
    }
    return 0;
}
