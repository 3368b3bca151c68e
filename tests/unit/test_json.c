/*
 * Unit tests of src/json.c: the strict parser (valid documents, every kind
 * of malformed and hostile input, the depth and size bounds), UTF-8
 * validation, base64 both ways, and the writer's escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cairn.h"
#include "http_status.h"
#include "json.h"

static int parse(const char *text, size_t len, struct arena *a, struct json_value **v, char *errmsg,
                 size_t errmsg_len)
{
    arena_init(a);
    return json_parse(text, len, a, v, errmsg, errmsg_len);
}

static void expect_ok(const char *text)
{
    struct arena a;
    struct json_value *v;
    char errmsg[256];
    if (parse(text, strlen(text), &a, &v, errmsg, sizeof(errmsg)) != 0) {
        print_error("refused %s: %s\n", text, errmsg);
        fail();
    }
    arena_free(&a);
}

static void expect_bad_len(const char *text, size_t len)
{
    struct arena a;
    struct json_value *v;
    char errmsg[256] = "";
    if (parse(text, len, &a, &v, errmsg, sizeof(errmsg)) == 0) {
        print_error("accepted %.*s\n", (int)len, text);
        fail();
    }
    assert_non_null(strstr(errmsg, "invalid JSON at byte"));
    arena_free(&a);
}

static void expect_bad(const char *text)
{
    expect_bad_len(text, strlen(text));
}

static void test_values(void **state)
{
    struct arena a;
    struct json_value *v;
    const struct json_value *m;
    char errmsg[256];
    static const char doc[] =
        " {\"s\": \"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\", \"n\": "
        "18446744073709551615,"
        " \"big\": 18446744073709551616, \"neg\": -1, \"f\": 1.5e3, \"t\": true, \"F\": false,"
        " \"z\": null, \"a\": [1, [], {}], \"nul\": \"x\\u0000y\"} ";
    (void)state;
    assert_int_equal(parse(doc, strlen(doc), &a, &v, errmsg, sizeof(errmsg)), 0);
    assert_int_equal(v->type, JSON_OBJECT);
    assert_int_equal(v->n, 10);
    m = json_get(v, "s");
    assert_non_null(m);
    assert_int_equal(m->type, JSON_STRING);
    assert_string_equal(m->str, "a\"b\\c/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
    m = json_get(v, "n");
    assert_true(m->is_uint);
    assert_true(m->uint == UINT64_MAX);
    assert_false(json_get(v, "big")->is_uint); /* too big for 64 bits: a number still */
    assert_int_equal(json_get(v, "big")->type, JSON_NUMBER);
    assert_false(json_get(v, "neg")->is_uint);
    assert_string_equal(json_get(v, "neg")->str, "-1");
    assert_false(json_get(v, "f")->is_uint);
    assert_true(json_get(v, "t")->boolean);
    assert_int_equal(json_get(v, "F")->type, JSON_BOOL);
    assert_false(json_get(v, "F")->boolean);
    assert_int_equal(json_get(v, "z")->type, JSON_NULL);
    m = json_get(v, "a");
    assert_int_equal(m->type, JSON_ARRAY);
    assert_int_equal(m->n, 3);
    assert_int_equal(m->child->uint, 1);
    assert_int_equal(m->child->next->type, JSON_ARRAY);
    assert_int_equal(m->child->next->next->type, JSON_OBJECT);
    m = json_get(v, "nul");
    assert_int_equal(m->len, 3);
    assert_memory_equal(m->str, "x\0y", 3);
    assert_null(json_get(v, "missing"));
    assert_null(json_get(m, "x")); /* not an object */
    arena_free(&a);

    expect_ok("0");
    expect_ok("-0");
    expect_ok("\"\"");
    expect_ok("[]");
    expect_ok("1E+2");
    expect_ok("\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
}

static void test_malformed(void **state)
{
    (void)state;
    expect_bad("");
    expect_bad("   ");
    expect_bad("{");
    expect_bad("{\"a\"}");
    expect_bad("{\"a\" 1}");
    expect_bad("{\"a\": 1,}");
    expect_bad("[1,]");
    expect_bad("[1 2]");
    expect_bad("{a: 1}");
    expect_bad("{'a': 1}");
    expect_bad("{\"a\": 1} x");
    expect_bad("{\"a\": 1}{}");
    expect_bad("[1] // comment");
    expect_bad("01");
    expect_bad("1.");
    expect_bad(".5");
    expect_bad("1e");
    expect_bad("+1");
    expect_bad("--1");
    expect_bad("NaN");
    expect_bad("Infinity");
    expect_bad("tru");
    expect_bad("nul");
    expect_bad("True");
    expect_bad("\"abc");
    expect_bad("\"a\\\"");
    expect_bad("\"\\x\"");
    expect_bad("\"\\u12\"");
    expect_bad("\"\\u12g4\"");
    expect_bad("\"\\ud800\"");        /* lone high surrogate */
    expect_bad("\"\\udc00\"");        /* lone low surrogate */
    expect_bad("\"\\ud800\\u0041\""); /* high surrogate, then not a low one */
    expect_bad("\"a\tb\"");           /* raw control character */
    expect_bad("\"a\nb\"");
    expect_bad_len("\"a\0b\"", 5);
    expect_bad("\"\xff\"");             /* not UTF-8 */
    expect_bad("\"\xc0\xaf\"");         /* overlong '/' */
    expect_bad("\"\xe0\x80\xaf\"");     /* overlong */
    expect_bad("\"\xed\xa0\x80\"");     /* encoded surrogate */
    expect_bad("\"\xf4\x90\x80\x80\""); /* above U+10FFFF */
    expect_bad("\"\xe2\x82\"");         /* truncated sequence */
    expect_bad("{\"a\": 1, \"a\": 2}"); /* duplicate member */
}

static void test_hostile(void **state)
{
    struct arena a;
    struct json_value *v;
    char errmsg[256];
    char *deep;
    char *wide;
    size_t i;
    size_t n;
    (void)state;
    /* Nesting: exactly the limit parses, one more does not. */
    deep = malloc(2 * JSON_DEPTH_MAX + 4);
    assert_non_null(deep);
    for (i = 0; i < JSON_DEPTH_MAX; i++) {
        deep[i] = '[';
        deep[JSON_DEPTH_MAX + i] = ']';
    }
    deep[2 * JSON_DEPTH_MAX] = '\0';
    expect_ok(deep);
    for (i = 0; i <= JSON_DEPTH_MAX; i++) {
        deep[i] = '[';
        deep[JSON_DEPTH_MAX + 1 + i] = ']';
    }
    deep[2 * JSON_DEPTH_MAX + 2] = '\0';
    assert_int_equal(parse(deep, strlen(deep), &a, &v, errmsg, sizeof(errmsg)), -1);
    assert_non_null(strstr(errmsg, "nested deeper"));
    arena_free(&a);
    /* A million unclosed brackets fail at the depth limit, not the stack. */
    n = 1000000;
    wide = malloc(2 * n + 3);
    assert_non_null(wide);
    memset(wide, '[', n);
    wide[n] = '\0';
    expect_bad(wide);
    /* Too many values: [0,0,...,0]. */
    wide[0] = '[';
    for (i = 0; i < JSON_VALUES_MAX + 1; i++) {
        wide[1 + 2 * i] = '0';
        wide[2 + 2 * i] = ',';
    }
    wide[2 * (JSON_VALUES_MAX + 1)] = ']';
    wide[2 * (JSON_VALUES_MAX + 1) + 1] = '\0';
    assert_int_equal(parse(wide, strlen(wide), &a, &v, errmsg, sizeof(errmsg)), -1);
    assert_non_null(strstr(errmsg, "values"));
    arena_free(&a);
    /* The root and JSON_VALUES_MAX - 1 elements are fine. */
    wide[2 * (JSON_VALUES_MAX - 1)] = ']';
    wide[2 * (JSON_VALUES_MAX - 1) + 1] = '\0';
    assert_int_equal(parse(wide, strlen(wide), &a, &v, errmsg, sizeof(errmsg)), 0);
    assert_int_equal(v->n, JSON_VALUES_MAX - 1);
    arena_free(&a);
    free(wide);
    free(deep);
    /* Every byte value on its own: never a crash, only 0-9 parse. */
    for (i = 0; i < 256; i++) {
        char c = (char)i;
        int rv = parse(&c, 1, &a, &v, errmsg, sizeof(errmsg));
        assert_int_equal(rv, i >= '0' && i <= '9' ? 0 : -1);
        arena_free(&a);
    }
    /* Every prefix of a valid document is refused (none is complete). */
    {
        static const char doc[] = "{\"k\": [\"\\u00e9\", 1.5, {\"x\": null}]}";
        for (i = 0; i + 1 < sizeof(doc) - 1; i++) {
            expect_bad_len(doc, i);
        }
    }
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(json_utf8_valid("", 0));
    assert_true(json_utf8_valid("plain", 5));
    assert_true(json_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_true(json_utf8_valid("a\0b", 3)); /* NUL is a character */
    assert_false(json_utf8_valid("\x80", 1));
    assert_false(json_utf8_valid("\xc3", 1));
    assert_false(json_utf8_valid("\xc1\xbf", 2));
    assert_false(json_utf8_valid("\xed\xbf\xbf", 3));
    assert_false(json_utf8_valid("\xf5\x80\x80\x80", 4));
    assert_false(json_utf8_valid("\xfe", 1));
}

static void test_base64(void **state)
{
    static const struct
    {
        const char *plain;
        const char *b64;
    } cases[] = {{"", ""},
                 {"f", "Zg=="},
                 {"fo", "Zm8="},
                 {"foo", "Zm9v"},
                 {"foob", "Zm9vYg=="},
                 {"fooba", "Zm9vYmE="},
                 {"foobar", "Zm9vYmFy"}};
    char out[64];
    size_t i;
    long long n;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].plain);
        json_base64_encode(cases[i].plain, len, out);
        assert_int_equal(json_base64_encoded_len(len), strlen(cases[i].b64));
        assert_memory_equal(out, cases[i].b64, strlen(cases[i].b64));
        n = json_base64_decode(cases[i].b64, strlen(cases[i].b64), out);
        assert_int_equal(n, (long long)len);
        assert_memory_equal(out, cases[i].plain, len);
    }
    /* Unpadded input decodes too. */
    assert_int_equal(json_base64_decode("Zm8", 3, out), 2);
    assert_memory_equal(out, "fo", 2);
    /* Binary, every byte value. */
    {
        unsigned char all[256];
        char enc[400];
        unsigned char back[300];
        for (i = 0; i < 256; i++) {
            all[i] = (unsigned char)i;
        }
        json_base64_encode(all, 256, enc);
        n = json_base64_decode(enc, json_base64_encoded_len(256), back);
        assert_int_equal(n, 256);
        assert_memory_equal(all, back, 256);
    }
    /* Refused: bad characters, whitespace, misplaced or excess padding,
     * impossible lengths, and non-zero leftover bits. */
    assert_true(json_base64_decode("Zm9v!", 5, out) < 0);
    assert_true(json_base64_decode("Zm 9v", 5, out) < 0);
    assert_true(json_base64_decode("Zm9v\n", 5, out) < 0);
    assert_true(json_base64_decode("Z===", 4, out) < 0);
    assert_true(json_base64_decode("Zg=", 3, out) < 0);
    assert_true(json_base64_decode("=Zg=", 4, out) < 0);
    assert_true(json_base64_decode("Z", 1, out) < 0);
    assert_true(json_base64_decode("Zh==", 4, out) < 0); /* 'h' leaves bits set */
    assert_true(json_base64_decode("Zm9vYg==Zg==", 12, out) < 0);
}

static void test_writer(void **state)
{
    struct buf b;
    struct json_writer w;
    struct arena a;
    struct json_value *v;
    char errmsg[256];
    static const char raw[] = "q\"b\\s\x01\x1f\n\t\xc3\xa9\xff.";
    (void)state;
    buf_init(&b);
    json_writer_init(&w, &b);
    json_object_begin(&w);
    json_key(&w, "s");
    json_string(&w, raw, sizeof(raw) - 1);
    json_key(&w, "n");
    json_uint(&w, UINT64_MAX);
    json_key(&w, "i");
    json_int(&w, -5);
    json_key(&w, "a");
    json_array_begin(&w);
    json_bool(&w, true);
    json_null(&w);
    json_base64(&w, "\x00\xff", 2);
    json_array_end(&w);
    json_key(&w, "e");
    json_object_begin(&w);
    json_object_end(&w);
    json_object_end(&w);
    assert_int_equal(json_writer_error(&w), 0);
    buf_append(&b, "", 1);
    assert_string_equal(b.data, "{\"s\":\"q\\\"b\\\\s\\u0001\\u001f\\n\\t\xc3\xa9\xef\xbf\xbd.\","
                                "\"n\":18446744073709551615,\"i\":-5,\"a\":[true,null,\"AP8=\"],"
                                "\"e\":{}}");
    /* What the writer writes, the parser reads back. */
    assert_int_equal(parse(b.data, b.len - 1, &a, &v, errmsg, sizeof(errmsg)), 0);
    assert_string_equal(json_get(v, "s")->str, "q\"b\\s\x01\x1f\n\t\xc3\xa9\xef\xbf\xbd.");
    arena_free(&a);
    buf_free(&b);
}

/* The error table of docs/http.md, row by row: every CAIRN_E* code maps to
 * the documented status and stable code (429 "overloaded" included, which no
 * integration test can provoke on demand). */
static void test_http_status_table(void **state)
{
    static const struct
    {
        int rv;
        int status;
        const char *code;
    } table[] = {
        {CAIRN_EINVAL, 400, "bad_request"},         {CAIRN_EMALFORMED, 400, "bad_request"},
        {CAIRN_EFUTUREREV, 400, "future_revision"}, {CAIRN_ENOTFOUND, 404, "not_found"},
        {CAIRN_ECOMPARE, 409, "compare_failed"},    {CAIRN_ECOMPACTED, 410, "compacted"},
        {CAIRN_ETOOLARGE, 413, "too_large"},        {CAIRN_EBUSY, 429, "overloaded"},
        {CAIRN_ENOLEADER, 503, "no_leader"},        {CAIRN_ENOTLEADER, 503, "no_leader"},
        {CAIRN_ETIMEOUT, 503, "unavailable"},       {CAIRN_EUNAVAILABLE, 503, "unavailable"},
        {CAIRN_ESHUTDOWN, 503, "unavailable"},      {CAIRN_ESTALE, 503, "stale"},
        {CAIRN_EUNKNOWN, 500, "outcome_unknown"},   {CAIRN_ENOMEM, 500, "internal"},
        {CAIRN_EVERSION, 500, "internal"},          {CAIRN_EIO, 500, "internal"},
        {CAIRN_EINTERNAL, 500, "internal"},         {-1000, 500, "internal"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        int status = 0;
        const char *code = NULL;
        http_status_of(table[i].rv, &status, &code);
        assert_int_equal(status, table[i].status);
        assert_string_equal(code, table[i].code);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_writer),
        cmocka_unit_test(test_http_status_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
