/*
 * it_http: the HTTP API (docs/http.md) of a real 3-node cluster, driven with
 * real HTTP (libcurl) on every node's --http-addr.
 *
 * It covers every route's success shape; each error of the table with its
 * status and code (malformed JSON, a missing key, a wrong method with Allow,
 * a failed compare, a body or value over the limits, a compacted revision);
 * a value that is not UTF-8 going in and out as base64; stale and
 * linearizable reads and writes through a follower's port; pagination; a
 * transaction; history, diff and rollback (refused when the key changed);
 * Server-Sent Events in order with ids, resumed with Last-Event-ID after the
 * serving node went away; the watch-stream cap (503
 * watch_streams_exhausted); /metrics, /health, and /ready turning 503 on a
 * node cut off from a majority. Finally a node started without --http-addr
 * listens for HTTP on 127.0.0.1 only (when port 8001 is free to try).
 *
 * Responses are parsed with src/json.c; json's own unit tests check the
 * parser itself.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "json.h"

/* IT_ASSERT(cond) without a message is fine here: the condition says it. */
#pragma GCC diagnostic ignored "-Wformat-zero-length"

#define NODES 3
#define STREAMS_MAX 2
#define VALUE_MAX 4096

static int g_http_port[NODES + 1];

/* One HTTP exchange */

struct resp
{
    long status;
    char body[262144]; /* room for /v1/openapi.json (about 90 KB) */
    size_t len;
    char allow[128];
    struct arena arena;
    struct json_value *json; /* parsed body, NULL if not JSON */
};

static size_t body_cb(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t len = size * n;
    size_t room = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, p, len < room ? len : room);
    r->len += len < room ? len : room;
    r->body[r->len] = '\0';
    return len;
}

static size_t header_cb(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t len = size * n;
    if (len > 7 && strncasecmp(p, "Allow: ", 7) == 0) {
        size_t m = len - 7;
        while (m > 0 && (p[7 + m - 1] == '\r' || p[7 + m - 1] == '\n')) {
            m--;
        }
        snprintf(r->allow, sizeof(r->allow), "%.*s", (int)m, p + 7);
    }
    return len;
}

static void resp_free(struct resp *r)
{
    arena_free(&r->arena);
    free(r);
}

/* method on node's port at path (already percent-encoded); body may be
 * NULL. The response is parsed as JSON when it is. */
static struct resp *http(unsigned node, const char *method, const char *path, const char *body,
                         size_t body_len, const char *header)
{
    struct resp *r = calloc(1, sizeof(*r));
    CURL *c = curl_easy_init();
    struct curl_slist *headers = NULL;
    char url[8192];
    char errmsg[256];
    CURLcode rc;
    IT_ASSERT(r != NULL && c != NULL);
    arena_init(&r->arena);
    IT_FORMAT(url, "http://127.0.0.1:%d%s", g_http_port[node], path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        headers = curl_slist_append(headers, "Content-Type: application/json");
    }
    if (header != NULL) {
        headers = curl_slist_append(headers, header);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    rc = curl_easy_perform(c);
    IT_ASSERT(rc == CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (json_parse(r->body, r->len, &r->arena, &r->json, errmsg, sizeof(errmsg)) != 0) {
        r->json = NULL;
    }
    return r;
}

static struct resp *get(unsigned node, const char *path)
{
    return http(node, "GET", path, NULL, 0, NULL);
}

static struct resp *send_json(unsigned node, const char *method, const char *path, const char *body)
{
    return http(node, method, path, body, strlen(body), NULL);
}

/* JSON access: a dotted path of member names and array indexes. */
static const struct json_value *jpath(const struct json_value *v, const char *path)
{
    char part[64];
    while (v != NULL && *path != '\0') {
        const char *dot = strchr(path, '.');
        size_t n = dot != NULL ? (size_t)(dot - path) : strlen(path);
        snprintf(part, sizeof(part), "%.*s", (int)n, path);
        if (v->type == JSON_ARRAY) {
            size_t i = strtoul(part, NULL, 10);
            const struct json_value *e = v->child;
            while (e != NULL && i-- > 0) {
                e = e->next;
            }
            v = e;
        } else {
            v = json_get(v, part);
        }
        path += n + (dot != NULL);
    }
    return v;
}

static uint64_t juint(const struct resp *r, const char *path)
{
    const struct json_value *v = jpath(r->json, path);
    IT_ASSERT(v != NULL && v->type == JSON_NUMBER && v->is_uint, "%s missing in %s", path, r->body);
    return v->uint;
}

static const char *jstr(const struct resp *r, const char *path)
{
    const struct json_value *v = jpath(r->json, path);
    IT_ASSERT(v != NULL && v->type == JSON_STRING, "%s missing in %s", path, r->body);
    return v->str;
}

static bool jbool(const struct resp *r, const char *path)
{
    const struct json_value *v = jpath(r->json, path);
    IT_ASSERT(v != NULL && v->type == JSON_BOOL, "%s missing in %s", path, r->body);
    return v->boolean;
}

static size_t jlen(const struct resp *r, const char *path)
{
    const struct json_value *v = jpath(r->json, path);
    IT_ASSERT(v != NULL && v->type == JSON_ARRAY, "%s missing in %s", path, r->body);
    return v->n;
}

/* Assert status (and for errors, the code) and free. */
#define EXPECT(r, st) \
    IT_ASSERT((r)->status == (st), "status %ld, want %d: %s", (r)->status, (st), (r)->body)

static void expect_error(struct resp *r, int status, const char *code)
{
    EXPECT(r, status);
    IT_ASSERT(r->json != NULL, "error body is not JSON: %s", r->body);
    IT_ASSERT(strcmp(jstr(r, "error.code"), code) == 0, "code %s, want %s", jstr(r, "error.code"),
              code);
    IT_ASSERT(strlen(jstr(r, "error.message")) > 0, "no message");
    resp_free(r);
}

static uint64_t put(unsigned node, const char *key, const char *value)
{
    char path[512];
    char body[1024];
    struct resp *r;
    uint64_t rev;
    IT_FORMAT(path, "/v1/kv/%s", key);
    IT_FORMAT(body, "{\"value\": \"%s\"}", value);
    r = send_json(node, "PUT", path, body);
    EXPECT(r, 200);
    rev = juint(r, "revision");
    resp_free(r);
    return rev;
}

/* Server-Sent Events on a thread of their own */

struct sse
{
    pthread_t thread;
    char url[512];
    char last_event_id[64]; /* "" for none */
    pthread_mutex_t mu;
    char data[65536];
    size_t len;
    long status;
    atomic_bool stop;
    atomic_bool done;
    CURLcode rc;
};

static size_t sse_body_cb(char *p, size_t size, size_t n, void *arg)
{
    struct sse *s = arg;
    size_t len = size * n;
    pthread_mutex_lock(&s->mu);
    if (s->len + len < sizeof(s->data)) {
        memcpy(s->data + s->len, p, len);
        s->len += len;
        s->data[s->len] = '\0';
    }
    pthread_mutex_unlock(&s->mu);
    return len;
}

static int sse_progress_cb(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct sse *s = arg;
    (void)a;
    (void)b;
    (void)c;
    (void)d;
    return atomic_load(&s->stop) ? 1 : 0;
}

static void *sse_main(void *arg)
{
    struct sse *s = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *headers = NULL;
    char h[128];
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sse_body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, sse_progress_cb);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
    if (s->last_event_id[0] != '\0') {
        snprintf(h, sizeof(h), "Last-Event-ID: %s", s->last_event_id);
        headers = curl_slist_append(headers, h);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    }
    s->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    atomic_store(&s->done, true);
    return NULL;
}

static struct sse *sse_open(unsigned node, const char *query, const char *last_event_id)
{
    struct sse *s = calloc(1, sizeof(*s));
    IT_ASSERT(s != NULL);
    IT_FORMAT(s->url, "http://127.0.0.1:%d/v1/watch?%s", g_http_port[node], query);
    snprintf(s->last_event_id, sizeof(s->last_event_id), "%s",
             last_event_id != NULL ? last_event_id : "");
    pthread_mutex_init(&s->mu, NULL);
    IT_ASSERT(pthread_create(&s->thread, NULL, sse_main, s) == 0);
    return s;
}

static void sse_close(struct sse *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

struct sse_event
{
    uint64_t id; /* as an EventSource has it: the last id line so far */
    bool has_id; /* this message had an id line */
    char type[16];
    char data[2048];
};

/* The complete events received so far (comments and retry lines skipped). */
static size_t sse_events(struct sse *s, struct sse_event *out, size_t max)
{
    size_t n = 0;
    char *copy;
    char *p;
    pthread_mutex_lock(&s->mu);
    copy = strdup(s->data);
    pthread_mutex_unlock(&s->mu);
    IT_ASSERT(copy != NULL);
    uint64_t last_id = 0;
    p = copy;
    for (;;) {
        char *end = strstr(p, "\n\n");
        char *line;
        struct sse_event e;
        bool any = false;
        if (end == NULL || n == max) {
            break;
        }
        *end = '\0';
        memset(&e, 0, sizeof(e));
        e.id = last_id;
        for (line = strtok(p, "\n"); line != NULL; line = strtok(NULL, "\n")) {
            if (strncmp(line, "id: ", 4) == 0) {
                e.id = last_id = strtoull(line + 4, NULL, 10);
                e.has_id = true;
            } else if (strncmp(line, "event: ", 7) == 0) {
                snprintf(e.type, sizeof(e.type), "%s", line + 7);
                any = true;
            } else if (strncmp(line, "data: ", 6) == 0) {
                snprintf(e.data, sizeof(e.data), "%s", line + 6);
            }
        }
        if (any) {
            out[n++] = e;
        }
        p = end + 2;
    }
    free(copy);
    return n;
}

/* Wait until the stream holds at least want events of type (NULL: any) */
static size_t sse_wait(struct sse *s, const char *type, size_t want, struct sse_event *ev,
                       size_t max, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        size_t n = sse_events(s, ev, max);
        size_t k = 0;
        size_t i;
        for (i = 0; i < n; i++) {
            k += type == NULL || strcmp(ev[i].type, type) == 0;
        }
        if (k >= want) {
            return n;
        }
        IT_ASSERT(it_now_ms() < deadline, "waited for %zu %s events, have %zu of %zu: %s", want,
                  type != NULL ? type : "any", k, n, s->data);
        it_sleep_ms(20);
    }
}

/* The parts of the test */

static void check_kv_routes(struct it_cluster *c, unsigned leader, unsigned follower)
{
    struct resp *r;
    uint64_t rev1;
    uint64_t rev2;
    char path[256];
    int i;
    it_log("kv: put, get, range, delete, cas");
    rev1 = put(follower, "app/db/url", "postgres://a"); /* a write through a follower */
    IT_ASSERT(rev1 > 0);
    r = get(leader, "/v1/kv/app%2Fdb%2Furl");
    EXPECT(r, 200);
    IT_ASSERT(strcmp(jstr(r, "kv.key"), "app/db/url") == 0);
    IT_ASSERT(strcmp(jstr(r, "kv.value"), "postgres://a") == 0);
    IT_ASSERT(strcmp(jstr(r, "kv.encoding"), "utf8") == 0);
    IT_ASSERT(juint(r, "kv.mod_revision") == rev1 && juint(r, "kv.create_revision") == rev1);
    IT_ASSERT(juint(r, "kv.version") == 1 && juint(r, "kv.size") == 12);
    IT_ASSERT(juint(r, "kv.time_ms") > 0 && juint(r, "revision") >= rev1);
    resp_free(r);

    /* A second put returns the previous value. */
    r = send_json(leader, "PUT", "/v1/kv/app/db/url", "{\"value\": \"postgres://b\"}");
    EXPECT(r, 200);
    rev2 = juint(r, "revision");
    IT_ASSERT(rev2 > rev1);
    IT_ASSERT(strcmp(jstr(r, "prev_kv.value"), "postgres://a") == 0);
    resp_free(r);

    /* Linearizable read on a follower's port sees the write at once; a
     * stale one says which revision it answered at. */
    r = get(follower, "/v1/kv/app/db/url");
    EXPECT(r, 200);
    IT_ASSERT(strcmp(jstr(r, "kv.value"), "postgres://b") == 0);
    IT_ASSERT(juint(r, "revision") >= rev2);
    resp_free(r);
    it_wait_converged(c, 10000);
    r = get(follower, "/v1/kv/app/db/url?stale=true");
    EXPECT(r, 200);
    IT_ASSERT(strcmp(jstr(r, "kv.value"), "postgres://b") == 0);
    IT_ASSERT(juint(r, "revision") >= rev2);
    resp_free(r);
    /* At a past revision. */
    IT_FORMAT(path, "/v1/kv/app/db/url?rev=%llu", (unsigned long long)rev1);
    r = get(follower, path);
    EXPECT(r, 200);
    IT_ASSERT(strcmp(jstr(r, "kv.value"), "postgres://a") == 0);
    resp_free(r);

    /* Pagination: 5 keys, pages of 2. */
    for (i = 0; i < 5; i++) {
        char key[32];
        IT_FORMAT(key, "page/k%d", i);
        put(leader, key, "v");
    }
    {
        char after[64] = "";
        int pages = 0;
        int seen = 0;
        for (;;) {
            IT_FORMAT(path, "/v1/kv/page/?prefix=true&limit=2%s%s", after[0] ? "&after=" : "",
                      after);
            r = get(follower, path);
            EXPECT(r, 200);
            pages++;
            seen += (int)jlen(r, "kvs");
            if (!jbool(r, "more")) {
                resp_free(r);
                break;
            }
            IT_ASSERT(jlen(r, "kvs") == 2);
            IT_FORMAT(after, "%s", jstr(r, "kvs.1.key"));
            /* "page/k1" as a query value: the slash needs no escaping. */
            resp_free(r);
            IT_ASSERT(pages < 10);
        }
        IT_ASSERT(seen == 5 && pages == 3, "seen %d in %d pages", seen, pages);
    }
    r = get(leader, "/v1/kv/page/?prefix=true&keys_only=true");
    EXPECT(r, 200);
    IT_ASSERT(jlen(r, "kvs") == 5 && jpath(r->json, "kvs.0.value") == NULL);
    resp_free(r);

    /* cas: 409 when the mod_revision differs, 200 when it matches; 0 means
     * "only if absent". */
    IT_FORMAT(path, "/v1/kv/app/db/url?cas=%llu", (unsigned long long)rev1);
    expect_error(send_json(follower, "PUT", path, "{\"value\": \"x\"}"), 409, "compare_failed");
    IT_FORMAT(path, "/v1/kv/app/db/url?cas=%llu", (unsigned long long)rev2);
    r = send_json(follower, "PUT", path, "{\"value\": \"postgres://c\"}");
    EXPECT(r, 200);
    IT_ASSERT(strcmp(jstr(r, "prev_kv.value"), "postgres://b") == 0);
    resp_free(r);
    expect_error(send_json(leader, "PUT", "/v1/kv/app/db/url?cas=0", "{\"value\": \"x\"}"), 409,
                 "compare_failed");
    r = send_json(leader, "PUT", "/v1/kv/fresh?cas=0", "{\"value\": \"x\"}");
    EXPECT(r, 200);
    IT_ASSERT(jpath(r->json, "prev_kv") != NULL && jpath(r->json, "prev_kv")->type == JSON_NULL);
    resp_free(r);

    /* Delete: one key, then a prefix. */
    r = http(follower, "DELETE", "/v1/kv/fresh", NULL, 0, NULL);
    EXPECT(r, 200);
    IT_ASSERT(juint(r, "deleted") == 1 && juint(r, "revision") > rev2);
    resp_free(r);
    expect_error(get(leader, "/v1/kv/fresh"), 404, "not_found");
    r = http(leader, "DELETE", "/v1/kv/page/?prefix=true", NULL, 0, NULL);
    EXPECT(r, 200);
    IT_ASSERT(juint(r, "deleted") == 5);
    resp_free(r);
}

static void check_base64(unsigned node)
{
    /* The value bytes 00 ff fe 41 0a, and a key with bytes that are not
     * UTF-8 either: percent-encoded byte by byte in the path. */
    static const unsigned char value[] = {0x00, 0xff, 0xfe, 0x41, 0x0a};
    char b64[16];
    char body[128];
    struct resp *r;
    long long n;
    unsigned char back[16];
    it_log("base64: a value and a key that are not UTF-8");
    json_base64_encode(value, sizeof(value), b64);
    b64[json_base64_encoded_len(sizeof(value))] = '\0';
    IT_FORMAT(body, "{\"value\": \"%s\", \"encoding\": \"base64\"}", b64);
    r = send_json(node, "PUT", "/v1/kv/bin/%FF%00x", body);
    EXPECT(r, 200);
    resp_free(r);
    r = get(node, "/v1/kv/bin/%FF%00x");
    EXPECT(r, 200);
    IT_ASSERT(strcmp(jstr(r, "kv.encoding"), "base64") == 0);
    IT_ASSERT(strcmp(jstr(r, "kv.key_encoding"), "base64") == 0);
    n = json_base64_decode(jstr(r, "kv.value"), strlen(jstr(r, "kv.value")), back);
    IT_ASSERT(n == (long long)sizeof(value) && memcmp(back, value, sizeof(value)) == 0,
              "round trip: %s", r->body);
    n = json_base64_decode(jstr(r, "kv.key"), strlen(jstr(r, "kv.key")), back);
    IT_ASSERT(n == 7 && memcmp(back, "bin/\xff\x00x", 7) == 0, "key: %s", r->body);
    IT_ASSERT(juint(r, "kv.size") == sizeof(value));
    resp_free(r);
    /* A UTF-8 value with an escape and non-ASCII characters stays text. */
    r = send_json(node, "PUT", "/v1/kv/text", "{\"value\": \"caf\\u00e9 \xe2\x82\xac\\n\"}");
    EXPECT(r, 200);
    resp_free(r);
    r = get(node, "/v1/kv/text");
    EXPECT(r, 200);
    IT_ASSERT(strcmp(jstr(r, "kv.value"), "caf\xc3\xa9 \xe2\x82\xac\n") == 0, "%s", r->body);
    IT_ASSERT(strcmp(jstr(r, "kv.encoding"), "utf8") == 0);
    resp_free(r);
    expect_error(
        send_json(node, "PUT", "/v1/kv/x", "{\"value\": \"!!\", \"encoding\": \"base64\"}"), 400,
        "bad_request");
}

static void check_errors(unsigned leader, unsigned follower)
{
    struct resp *r;
    char *big;
    size_t big_len = VALUE_MAX + 100;
    it_log("errors: every status of the table");
    expect_error(send_json(follower, "PUT", "/v1/kv/k", "{\"value\": "), 400, "bad_request");
    expect_error(send_json(follower, "PUT", "/v1/kv/k", "{\"value\": \"a\",}"), 400, "bad_request");
    expect_error(send_json(follower, "PUT", "/v1/kv/k", "[1]"), 400, "bad_request");
    expect_error(send_json(follower, "PUT", "/v1/kv/k", "{\"value\": 1}"), 400, "bad_request");
    expect_error(send_json(follower, "PUT", "/v1/kv/k", "{\"value\": \"\xff\"}"), 400,
                 "bad_request");
    expect_error(get(follower, "/v1/kv/k?limit=abc"), 400, "bad_request");
    expect_error(get(follower, "/v1/kv/%zz"), 400, "bad_request");
    expect_error(get(follower, "/v1/kv/no/such/key"), 404, "not_found");
    expect_error(get(follower, "/v1/nothing"), 404, "not_found");
    r = http(follower, "POST", "/v1/kv/k", "{}", 2, NULL);
    IT_ASSERT(strcmp(r->allow, "GET, PUT, DELETE") == 0, "Allow: \"%s\"", r->allow);
    expect_error(r, 405, "method_not_allowed");
    r = http(follower, "GET", "/v1/txn", NULL, 0, NULL);
    IT_ASSERT(strcmp(r->allow, "POST") == 0, "Allow: \"%s\"", r->allow);
    expect_error(r, 405, "method_not_allowed");
    /* 413: a value over --max-value-bytes (the node refuses it), and a
     * body over the HTTP limit (refused before it is read). */
    big = malloc(big_len + 64);
    IT_ASSERT(big != NULL);
    memcpy(big, "{\"value\": \"", 11);
    memset(big + 11, 'v', big_len);
    memcpy(big + 11 + big_len, "\"}", 3);
    expect_error(http(leader, "PUT", "/v1/kv/big", big, strlen(big), NULL), 413, "too_large");
    free(big);
    big_len = 4 * 1024 * 1024;
    big = malloc(big_len);
    IT_ASSERT(big != NULL);
    memset(big, ' ', big_len);
    big[0] = '{';
    big[big_len - 1] = '}';
    expect_error(http(follower, "PUT", "/v1/kv/big", big, big_len, NULL), 413, "too_large");
    free(big);
    /* A revision from the future. */
    expect_error(get(leader, "/v1/kv/app/db/url?rev=999999999"), 400, "future_revision");
}

static void check_txn(unsigned node)
{
    struct resp *r;
    it_log("txn: compare, success, failure");
    put(node, "txn/a", "1");
    r = send_json(node, "POST", "/v1/txn",
                  "{\"compare\": [{\"key\": \"txn/a\", \"target\": \"value\", \"op\": \"==\", "
                  "\"value\": \"1\"}, {\"key\": \"txn/a\", \"target\": \"version\", \"op\": "
                  "\">\", \"number\": 0}],"
                  " \"success\": [{\"op\": \"put\", \"key\": \"txn/b\", \"value\": \"2\"}, "
                  "{\"op\": \"get\", \"key\": \"txn/\", \"prefix\": true}],"
                  " \"failure\": [{\"op\": \"delete\", \"key\": \"txn/a\"}]}");
    EXPECT(r, 200);
    IT_ASSERT(jbool(r, "succeeded"));
    IT_ASSERT(jlen(r, "results") == 2);
    /* Operations apply in order: the get sees the put before it. */
    IT_ASSERT(jlen(r, "results.1.kvs") == 2, "%s", r->body);
    resp_free(r);
    r = send_json(node, "POST", "/v1/txn",
                  "{\"compare\": [{\"key\": \"txn/a\", \"target\": \"mod_revision\", \"op\": "
                  "\"==\", \"number\": 1}],"
                  " \"failure\": [{\"op\": \"get\", \"key\": \"txn/b\"}]}");
    EXPECT(r, 200);
    IT_ASSERT(!jbool(r, "succeeded"));
    IT_ASSERT(strcmp(jstr(r, "results.0.kvs.0.value"), "2") == 0, "%s", r->body);
    resp_free(r);
    expect_error(send_json(node, "POST", "/v1/txn",
                           "{\"compare\": [{\"key\": \"a\", \"target\": \"size\", \"op\": "
                           "\"==\", \"number\": 1}]}"),
                 400, "bad_request");
    expect_error(send_json(node, "POST", "/v1/txn", "{\"success\": [{\"op\": \"frob\"}]}"), 400,
                 "bad_request");
}

static void check_history(unsigned leader, unsigned follower)
{
    struct resp *r;
    uint64_t r1;
    uint64_t r2;
    uint64_t r3;
    char path[256];
    char body[128];
    it_log("history, diff, rollback");
    r1 = put(leader, "cfg/app", "a\\nb\\nc\\n");
    r2 = put(leader, "cfg/app", "a\\nB\\nc\\nd\\n");
    r = get(follower, "/v1/history/cfg/app?values=true");
    EXPECT(r, 200);
    IT_ASSERT(jlen(r, "versions") == 2);
    IT_ASSERT(juint(r, "versions.0.mod_revision") == r2); /* newest first */
    IT_ASSERT(strcmp(jstr(r, "versions.1.value"), "a\nb\nc\n") == 0);
    resp_free(r);
    r = get(follower, "/v1/history/cfg/app?limit=1");
    EXPECT(r, 200);
    IT_ASSERT(jlen(r, "versions") == 1 && jpath(r->json, "versions.0.value") == NULL);
    resp_free(r);

    IT_FORMAT(path, "/v1/diff/cfg/app?from=%llu&to=%llu", (unsigned long long)r1,
              (unsigned long long)r2);
    r = get(follower, path);
    EXPECT(r, 200);
    IT_ASSERT(juint(r, "from.mod_revision") == r1 && juint(r, "to.mod_revision") == r2);
    IT_ASSERT(jlen(r, "hunks") == 1);
    IT_ASSERT(juint(r, "hunks.0.from_line") == 1 && juint(r, "hunks.0.to_line") == 1);
    /* " a", "-b", "+B", " c", "+d" */
    IT_ASSERT(jlen(r, "hunks.0.lines") == 5, "%s", r->body);
    IT_ASSERT(strcmp(jstr(r, "hunks.0.lines.1.op"), "-") == 0);
    IT_ASSERT(strcmp(jstr(r, "hunks.0.lines.1.text"), "b") == 0);
    IT_ASSERT(strcmp(jstr(r, "hunks.0.lines.2.op"), "+") == 0);
    IT_ASSERT(strcmp(jstr(r, "hunks.0.lines.4.text"), "d") == 0);
    resp_free(r);
    expect_error(get(follower, "/v1/diff/cfg/app"), 400, "bad_request");

    /* Rollback to r1: a new revision with r1's value. */
    IT_FORMAT(body, "{\"revision\": %llu}", (unsigned long long)r1);
    r = send_json(follower, "POST", "/v1/rollback/cfg/app", body);
    EXPECT(r, 200);
    r3 = juint(r, "revision");
    IT_ASSERT(r3 > r2 && juint(r, "rolled_back_to") == r1);
    resp_free(r);
    r = get(leader, "/v1/kv/cfg/app");
    IT_ASSERT(strcmp(jstr(r, "kv.value"), "a\nb\nc\n") == 0 && juint(r, "kv.mod_revision") == r3);
    resp_free(r);
    /* Refused when the key changed after the caller looked at it (r2). */
    IT_FORMAT(body, "{\"revision\": %llu, \"mod_revision\": %llu}", (unsigned long long)r2,
              (unsigned long long)r2);
    expect_error(send_json(leader, "POST", "/v1/rollback/cfg/app", body), 409, "compare_failed");
    r = get(leader, "/v1/kv/cfg/app");
    IT_ASSERT(juint(r, "kv.mod_revision") == r3, "the refused rollback wrote");
    resp_free(r);
    IT_FORMAT(body, "{\"revision\": %llu, \"mod_revision\": %llu}", (unsigned long long)r2,
              (unsigned long long)r3);
    r = send_json(leader, "POST", "/v1/rollback/cfg/app", body);
    EXPECT(r, 200);
    resp_free(r);
    expect_error(send_json(leader, "POST", "/v1/rollback/cfg/app", "{\"revision\": 1}"), 404,
                 "not_found");

    /* Compaction: reads below it answer 410. */
    IT_FORMAT(body, "{\"revision\": %llu}", (unsigned long long)r3);
    r = send_json(follower, "POST", "/v1/compact", body);
    EXPECT(r, 200);
    IT_ASSERT(juint(r, "compact_revision") == r3);
    resp_free(r);
    IT_FORMAT(path, "/v1/kv/cfg/app?rev=%llu", (unsigned long long)r1);
    expect_error(get(leader, path), 410, "compacted");
}

static void check_cluster_routes(unsigned leader, unsigned follower)
{
    struct resp *r;
    size_t i;
    it_log("status, cluster, retention, backup, metrics, openapi, health, ready");
    r = get(follower, "/v1/status");
    EXPECT(r, 200);
    IT_ASSERT(juint(r, "id") == follower && juint(r, "leader_id") == leader);
    IT_ASSERT(strcmp(jstr(r, "state"), "follower") == 0 && jlen(r, "members") == NODES);
    resp_free(r);
    r = get(follower, "/v1/cluster");
    EXPECT(r, 200);
    IT_ASSERT(jlen(r, "members") == NODES);
    for (i = 0; i < NODES; i++) {
        char p[64];
        IT_FORMAT(p, "members.%zu.reachable", i);
        IT_ASSERT(jbool(r, p));
        IT_FORMAT(p, "members.%zu.lag", i);
        (void)juint(r, p);
        {
            /* Every member reports its own HTTP address. */
            char want[32];
            IT_FORMAT(p, "members.%zu.id", i);
            IT_FORMAT(want, "127.0.0.1:%d", g_http_port[juint(r, p)]);
            IT_FORMAT(p, "members.%zu.http_address", i);
            IT_ASSERT(strcmp(jstr(r, p), want) == 0, "%s: %s, want %s", p, jstr(r, p), want);
        }
    }
    resp_free(r);
    r = send_json(leader, "PUT", "/v1/retention/cfg/", "{\"versions\": 5, \"age_ms\": 60000}");
    EXPECT(r, 200);
    resp_free(r);
    r = get(leader, "/v1/retention");
    EXPECT(r, 200);
    IT_ASSERT(jlen(r, "policies") == 2 && strcmp(jstr(r, "policies.1.prefix"), "cfg/") == 0);
    IT_ASSERT(juint(r, "policies.1.versions") == 5 && juint(r, "policies.1.age_ms") == 60000);
    resp_free(r);
    r = http(leader, "DELETE", "/v1/retention/cfg/", NULL, 0, NULL);
    EXPECT(r, 200);
    resp_free(r);
    expect_error(http(leader, "DELETE", "/v1/retention/cfg/", NULL, 0, NULL), 404, "not_found");

    /* This cluster has no --backup-url: the status says so, the actions
     * answer 400; all counted under route "backup". */
    r = get(follower, "/v1/backup");
    EXPECT(r, 200);
    IT_ASSERT(!jbool(r, "enabled") && jlen(r, "snapshots") == 0);
    resp_free(r);
    expect_error(http(follower, "POST", "/v1/backup/snapshot", NULL, 0, NULL), 400, "bad_request");
    expect_error(http(leader, "POST", "/v1/backup/verify", NULL, 0, NULL), 400, "bad_request");
    expect_error(get(follower, "/v1/backup/snapshot"), 405, "method_not_allowed");

    r = get(follower, "/metrics");
    EXPECT(r, 200);
    IT_ASSERT(strstr(r->body, "cairn_http_requests_total{route=\"kv\",code=\"200\"}") != NULL);
    IT_ASSERT(strstr(r->body, "cairn_http_requests_total{route=\"backup\",code=\"200\"} 1") !=
              NULL);
    IT_ASSERT(strstr(r->body, "cairn_http_requests_total{route=\"backup\",code=\"400\"} 1") !=
              NULL);
    IT_ASSERT(strstr(r->body, "cairn_http_requests_total{route=\"backup\",code=\"405\"} 1") !=
              NULL);
    IT_ASSERT(strstr(r->body, "cairn_http_workers 6") != NULL, "%s", r->body);
    IT_ASSERT(strstr(r->body, "cairn_http_watch_streams ") != NULL);
    IT_ASSERT(strstr(r->body, "cairn_http_workers_busy ") != NULL);
    resp_free(r);
    r = get(follower, "/v1/openapi.json");
    EXPECT(r, 200);
    IT_ASSERT(r->json != NULL && strcmp(jstr(r, "openapi"), "3.0.3") == 0);
    IT_ASSERT(json_get(json_get(r->json, "paths"), "/v1/watch") != NULL);
    resp_free(r);
    r = get(follower, "/health");
    EXPECT(r, 200);
    IT_ASSERT(strcmp(jstr(r, "status"), "ok") == 0);
    resp_free(r);
    r = get(follower, "/ready");
    EXPECT(r, 200);
    IT_ASSERT(strcmp(jstr(r, "status"), "ready") == 0);
    resp_free(r);
}

/* cairn_backup() itself, on a cluster without --backup-url: bad verbs are
 * refused before anything is sent, the status answers (enabled false), an
 * action or an unknown verb is refused by the node. */
static void check_backup_client(struct it_cluster *c)
{
    static const char *const local[] = {"", "seventeen-bytes!!", NULL};
    char *json = (char *)"unset";
    size_t len = 1;
    size_t i;
    it_log("cairn_backup");
    for (i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        IT_ASSERT(cairn_backup(c->admin, local[i], &json, &len) == CAIRN_EINVAL);
        IT_ASSERT(json == NULL && len == 0);
    }
    IT_ASSERT(cairn_backup(c->admin, "status", NULL, NULL) == CAIRN_EINVAL);
    IT_ASSERT_OK(cairn_backup(c->admin, "status", &json, &len), c->admin);
    IT_ASSERT(json != NULL && len == strlen(json));
    {
        struct arena a;
        struct json_value *doc = NULL;
        const struct json_value *enabled;
        char why[128];
        arena_init(&a);
        IT_ASSERT(json_parse(json, len, &a, &doc, why, sizeof(why)) == 0, "%s: %s", why, json);
        enabled = json_get(doc, "enabled");
        IT_ASSERT(enabled != NULL && enabled->type == JSON_BOOL && !enabled->boolean, "%s", json);
        arena_free(&a);
    }
    free(json);
    IT_ASSERT(cairn_backup(c->admin, "save", &json, NULL) == CAIRN_EINVAL && json == NULL);
    IT_ASSERT(strstr(cairn_errmsg(c->admin), "--backup-url") != NULL, "%s", cairn_errmsg(c->admin));
    IT_ASSERT(cairn_backup(c->admin, "frob", &json, NULL) == CAIRN_EINVAL && json == NULL);
}

static void check_watch(struct it_cluster *c, unsigned leader, unsigned follower)
{
    struct sse_event ev[64];
    struct sse *s;
    struct sse *extra[STREAMS_MAX];
    char last[32];
    uint64_t base;
    size_t n;
    size_t i;
    uint64_t prev = 0;
    unsigned other = 0;
    struct resp *r;
    it_log("watch: events in order with ids, resume with Last-Event-ID, the cap");
    for (i = 1; i <= NODES; i++) {
        if (i != leader && i != follower) {
            other = (unsigned)i;
        }
    }
    base = put(leader, "w/a", "0");
    {
        char q[128];
        IT_FORMAT(q, "prefix=w/&rev=%llu&prev_kv=true", (unsigned long long)base);
        s = sse_open(follower, q, NULL);
    }
    /* A transaction's two events share one id. */
    put(leader, "w/a", "1");
    r = send_json(leader, "POST", "/v1/txn",
                  "{\"success\": [{\"op\": \"put\", \"key\": \"w/b\", \"value\": \"x\"}, "
                  "{\"op\": \"delete\", \"key\": \"w/a\"}]}");
    EXPECT(r, 200);
    resp_free(r);
    put(leader, "w/c", "3");
    n = sse_wait(s, NULL, 5, ev, 64, 10000);
    for (i = 0; i < n && i < 5; i++) {
        IT_ASSERT(strcmp(ev[i].type, "put") == 0 || strcmp(ev[i].type, "delete") == 0,
                  "event %zu is %s", i, ev[i].type);
        IT_ASSERT(ev[i].id >= prev, "ids go back: %llu after %llu", (unsigned long long)ev[i].id,
                  (unsigned long long)prev);
        prev = ev[i].id;
    }
    IT_ASSERT(ev[0].id == base && strstr(ev[0].data, "\"value\":\"0\"") != NULL, "%s", ev[0].data);
    IT_ASSERT(ev[1].id == base + 1 && strstr(ev[1].data, "\"prev_kv\":{") != NULL, "%s",
              ev[1].data);
    /* Only a transaction's last event carries its id: a client cut off
     * after the first holds the revision before and gets the whole
     * transaction again. */
    IT_ASSERT(!ev[2].has_id && ev[2].id == base + 1, "a txn's first event has an id");
    IT_ASSERT(ev[3].has_id && ev[3].id == base + 2, "a txn's last event has no id");
    IT_ASSERT(strcmp(ev[2].type, "delete") == 0 && strstr(ev[2].data, "w/a") != NULL);
    IT_ASSERT(ev[4].has_id && ev[4].id == base + 3);
    {
        struct sse *cut;
        struct sse_event again[8];
        char held[32];
        snprintf(held, sizeof(held), "%llu", (unsigned long long)ev[2].id);
        cut = sse_open(other, "prefix=w/", held);
        IT_ASSERT(sse_wait(cut, "put", 2, again, 8, 10000) >= 3);
        IT_ASSERT(strcmp(again[0].type, "delete") == 0 && strstr(again[0].data, "w/a") != NULL &&
                      !again[0].has_id && again[1].has_id && again[1].id == base + 2 &&
                      strstr(again[1].data, "w/b") != NULL,
                  "resumed inside a transaction: %s / %s", again[0].data, again[1].data);
        sse_close(cut);
    }
    /* Progress events carry the revision too. */
    sse_wait(s, "progress", 1, ev, 64, 10000);

    /* The cap: STREAMS_MAX streams per node; the next is refused. */
    extra[0] = s;
    extra[1] = sse_open(follower, "key=w/z", NULL);
    sse_wait(extra[1], "progress", 1, ev, 64, 10000);
    r = get(follower, "/v1/watch?key=w/z");
    expect_error(r, 503, "watch_streams_exhausted");
    sse_close(extra[1]);

    /* The serving node goes away: the stream ends. Writes go on through
     * another node; a new stream with Last-Event-ID resumes right after. */
    n = sse_events(s, ev, 64);
    snprintf(last, sizeof(last), "%llu", (unsigned long long)ev[n - 1].id);
    IT_ASSERT(it_node_stop(c, follower, 20000) == 0, "node %u did not stop cleanly", follower);
    {
        int64_t deadline = it_now_ms() + 10000;
        while (!atomic_load(&s->done)) {
            IT_ASSERT(it_now_ms() < deadline, "the stream did not end with its node");
            it_sleep_ms(20);
        }
    }
    sse_close(s);
    put(other, "w/d", "4");
    put(other, "w/e", "5");
    it_node_start(c, follower);
    it_wait_leader(c, 0, 20000);
    it_wait_converged(c, 20000);
    s = sse_open(follower, "prefix=w/", last);
    n = sse_wait(s, "put", 2, ev, 64, 20000);
    for (i = 0; i < n; i++) {
        if (strcmp(ev[i].type, "put") == 0 || strcmp(ev[i].type, "delete") == 0) {
            break;
        }
    }
    IT_ASSERT(ev[i].id > strtoull(last, NULL, 10), "resumed at %llu, after %s",
              (unsigned long long)ev[i].id, last);
    IT_ASSERT(strstr(ev[i].data, "w/d") != NULL, "first event after resume: %s", ev[i].data);
    IT_ASSERT(strstr(ev[i + 1].data, "w/e") != NULL, "second event after resume: %s",
              ev[i + 1].data);
    sse_close(s);
    expect_error(get(follower, "/v1/watch"), 400, "bad_request");
}

static void check_ready_cut_off(struct it_cluster *c, unsigned node)
{
    int64_t deadline = it_now_ms() + 20000;
    unsigned i;
    it_log("ready: 503 on node %u once the others are gone", node);
    for (i = 1; i <= NODES; i++) {
        if (i != node) {
            it_node_kill(c, i);
        }
    }
    for (;;) {
        struct resp *r = get(node, "/ready");
        if (r->status == 503) {
            IT_ASSERT(strcmp(jstr(r, "error.code"), "not_ready") == 0, "%s", r->body);
            resp_free(r);
            break;
        }
        resp_free(r);
        IT_ASSERT(it_now_ms() < deadline, "/ready still 200 on a node cut off from a majority");
        it_sleep_ms(100);
    }
    /* The process still answers. */
    {
        struct resp *r = get(node, "/health");
        EXPECT(r, 200);
        resp_free(r);
    }
}

/* Is something listening on 127.0.0.1's or any address's port? Answers
 * with the local address /proc/net/tcp gives ("0100007F:1F41"), or "". */
static void listener_on(int port, char *out, size_t len)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[512];
    char want[16];
    snprintf(want, sizeof(want), ":%04X", port);
    out[0] = '\0';
    IT_ASSERT(f != NULL);
    while (fgets(line, sizeof(line), f) != NULL) {
        char local[64];
        char state[8];
        if (sscanf(line, " %*s %63s %*s %7s", local, state) == 2 && strcmp(state, "0A") == 0 &&
            strlen(local) > 5 && strcmp(local + strlen(local) - 5, want) == 0) {
            snprintf(out, len, "%s", local);
        }
    }
    fclose(f);
}

/* A node started without --http-addr serves HTTP on 127.0.0.1:8001, loopback
 * only. The harness turns HTTP off for its nodes, so this one is started by
 * hand (and only when port 8001 is free to take). */
static void check_default_loopback(void)
{
    struct sockaddr_in a;
    char dir[IT_PATH_MAX];
    char log_path[IT_PATH_MAX];
    char raft[32];
    char client[32];
    char local[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int64_t deadline;
    int status;
    pid_t pid;
    int ok;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(8001);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    if (!ok) {
        it_log("port 8001 is taken: skipping the default-address check");
        return;
    }
    it_log("default: HTTP on 127.0.0.1:8001 only");
    IT_FORMAT(dir, "%s/default", it_dir());
    IT_FORMAT(log_path, "%s/default.log", it_dir());
    IT_FORMAT(raft, "127.0.0.1:%d", it_pick_port());
    IT_FORMAT(client, "127.0.0.1:%d", it_pick_port());
    pid = fork();
    IT_ASSERT(pid >= 0);
    if (pid == 0) {
        int out = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (out >= 0) {
            dup2(out, 1);
            dup2(out, 2);
        }
        execl(CAIRND_PATH, CAIRND_PATH, "--id", "1", "--data-dir", dir, "--raft-addr", raft,
              "--client-addr", client, (char *)NULL);
        _exit(127);
    }
    deadline = it_now_ms() + 10000;
    for (;;) {
        listener_on(8001, local, sizeof(local));
        if (local[0] != '\0') {
            break;
        }
        IT_ASSERT(it_now_ms() < deadline, "nothing listens on port 8001; see %s", log_path);
        it_sleep_ms(50);
    }
    IT_ASSERT(strcmp(local, "0100007F:1F41") == 0, "HTTP listens on %s, not 127.0.0.1:8001", local);
    kill(pid, SIGTERM);
    IT_ASSERT(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the default node did not stop cleanly; see %s", log_path);
    it_check_sanitizer_reports(log_path);
}

int main(void)
{
    struct it_cluster *c;
    const char *args[] = {"--http-threads",
                          "6",
                          "--http-watch-streams-max",
                          "2",
                          "--max-value-bytes",
                          "4096",
                          "--watch-progress-ms",
                          "300",
                          NULL};
    char http_args[NODES + 1][2][32];
    unsigned leader;
    unsigned follower;
    unsigned i;
    it_init("it_http", IT_TIMEOUT_S);
    srand((unsigned)getpid() ^ (unsigned)it_now_ms());
    IT_ASSERT(curl_global_init(CURL_GLOBAL_DEFAULT) == 0);
    c = it_cluster_new(NODES, args);
    for (i = 1; i <= NODES; i++) {
        struct it_node *n = it_node(c, i);
        g_http_port[i] = it_pick_port();
        IT_FORMAT(http_args[i][0], "--http-addr");
        IT_FORMAT(http_args[i][1], "127.0.0.1:%d", g_http_port[i]);
        n->args[0] = http_args[i][0];
        n->args[1] = http_args[i][1];
        n->args[2] = NULL;
    }
    leader = it_cluster_start(c);
    follower = leader % NODES + 1;
    it_log("leader %u, follower %u", leader, follower);

    check_kv_routes(c, leader, follower);
    check_base64(follower);
    check_errors(leader, follower);
    check_txn(follower);
    check_history(leader, follower);
    check_cluster_routes(leader, follower);
    check_backup_client(c);
    check_watch(c, leader, follower);
    leader = it_wait_leader(c, 0, 20000);
    check_ready_cut_off(c, leader);
    it_cluster_free(c);
    check_default_loopback();
    curl_global_cleanup();
    it_log("ok");
    return 0;
}
