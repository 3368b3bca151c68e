/*
 * test_objstore: runs the whole objstore interface (src/objstore.h) against
 * the store at URL. tests/dr/objstore_test.sh runs it against a fresh
 * directory and against s3rver behind tests/dr/sigv4_proxy.py.
 *
 *   test_objstore [options] URL
 *     --endpoint E           S3 endpoint (http://127.0.0.1:PORT)
 *     --region R             S3 region
 *     --path-style N         -1, 0 or 1
 *     --credentials FILE     shared credentials file
 *     --expect-auth-failure  only check that a put is refused, quickly
 *     --bench MIB            only time puts and a get of a MIB-MiB object
 *     --list PREFIX          only print "NAME SIZE" for each object listed
 *
 * Exits 0 when every check passed, 1 otherwise (each failure is printed).
 */
#define _GNU_SOURCE
#include "objstore.h"

#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures;
static int checks;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        checks++;                                                           \
        if (!(cond)) {                                                      \
            failures++;                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                          \
        }                                                                   \
    } while (0)

static struct objstore_options base_opt = {.path_style = -1};
static const char *store_url;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int is_s3(void)
{
    return strncmp(store_url, "s3://", 5) == 0;
}

static struct objstore *open_store(const char *url, const struct objstore_options *opt)
{
    char err[512];
    struct objstore *s = NULL;
    int rc = objstore_open(url, opt, &s, err, sizeof err);
    CHECK(rc == 0, "open %s: %s", url, err);
    if (rc != 0) {
        exit(1);
    }
    return s;
}

/* Deterministic bytes, different per seed. */
static void fill(char *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (char)x;
    }
}

static void expect_object(struct objstore *s, const char *name, const void *want, size_t want_len)
{
    char err[512] = "";
    void *data = NULL;
    size_t len = 0;
    int rc = objstore_get(s, name, &data, &len, err, sizeof err);
    CHECK(rc == 0, "get %s: rc %d: %s", name, rc, err);
    if (rc == 0) {
        CHECK(len == want_len, "get %s: %zu bytes, want %zu", name, len, want_len);
        CHECK(len != want_len || memcmp(data, want, len) == 0, "get %s: content differs", name);
        CHECK(((char *)data)[len] == '\0', "get %s: not NUL-terminated", name);
    }
    cairn_free(data);
}

static void put_ok(struct objstore *s, const char *name, const void *data, size_t len)
{
    char err[512] = "";
    int rc = objstore_put(s, name, data, len, err, sizeof err);
    CHECK(rc == 0, "put %s: %s", name, err);
}

/* --- listing ---------------------------------------------------------- */

struct listing
{
    char **names;
    uint64_t *sizes;
    size_t n, cap;
    size_t stop_after; /* 0: never */
};

static int list_cb(void *arg, const char *name, uint64_t size)
{
    struct listing *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->names = realloc(l->names, l->cap * sizeof *l->names);
        l->sizes = realloc(l->sizes, l->cap * sizeof *l->sizes);
    }
    l->names[l->n] = strdup(name);
    l->sizes[l->n] = size;
    l->n++;
    return l->stop_after != 0 && l->n >= l->stop_after;
}

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->names[i]);
    }
    free(l->names);
    free(l->sizes);
    memset(l, 0, sizeof *l);
}

static void list_ok(struct objstore *s, const char *prefix, struct listing *l)
{
    char err[512] = "";
    int rc = objstore_list(s, prefix, list_cb, l, err, sizeof err);
    CHECK(rc == 0, "list %s: %s", prefix, err);
}

static void expect_listing(struct objstore *s, const char *prefix, const char *const *names,
                           const uint64_t *sizes, size_t n)
{
    struct listing l = {0};
    list_ok(s, prefix, &l);
    CHECK(l.n == n, "list \"%s\": %zu names, want %zu", prefix, l.n, n);
    for (size_t i = 0; i < l.n && i < n; i++) {
        CHECK(strcmp(l.names[i], names[i]) == 0, "list \"%s\" [%zu]: %s, want %s", prefix, i,
              l.names[i], names[i]);
        CHECK(l.sizes[i] == sizes[i], "list \"%s\" %s: size %llu, want %llu", prefix, names[i],
              (unsigned long long)l.sizes[i], (unsigned long long)sizes[i]);
    }
    listing_free(&l);
}

/* --- the cases -------------------------------------------------------- */

static void test_open_errors(void)
{
    static const char *const bad[] = {
        "http://example.com/x",
        "file://relative/dir",
        "file:///nonexistent/cairn-objstore-x",
        "s3://",
        "s3://ab",
        "s3://Upper",
        "s3://bucket/../x",
        "s3://bucket/a//b",
        "s3://bucket/a b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[512] = "";
        struct objstore *s = (struct objstore *)1;
        int rc = objstore_open(bad[i], &base_opt, &s, err, sizeof err);
        CHECK(rc == -1, "open %s succeeded", bad[i]);
        CHECK(s == NULL, "open %s: *out not NULL", bad[i]);
        CHECK(strstr(err, bad[i]) != NULL, "open %s: err does not name the URL: %s", bad[i], err);
        if (rc == 0) {
            objstore_close(s);
        }
    }
    /* Options are checked too. */
    struct objstore_options o = base_opt;
    o.part_size = 1 << 20;
    char err[512] = "";
    struct objstore *s = NULL;
    CHECK(objstore_open("s3://bucket", &o, &s, err, sizeof err) == -1, "part size 1 MiB accepted");
    o = base_opt;
    o.endpoint = "ftp://x";
    CHECK(objstore_open("s3://bucket", &o, &s, err, sizeof err) == -1, "ftp endpoint accepted");
    o.endpoint = "http://127.0.0.1:1/path";
    CHECK(objstore_open("s3://bucket", &o, &s, err, sizeof err) == -1,
          "endpoint with a path accepted");
}

static void test_names(struct objstore *s)
{
    static const char *const bad[] = {
        "",    "/a",   "a/",  "a//b",  "a/../b",   "..",    ".",    "a/./b",
        "a b", "a\\b", "x?y", "a%2Fb", "\xc3\xa4", "a~tmp", "a\nb",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[512] = "";
        int rc = objstore_put(s, bad[i], "x", 1, err, sizeof err);
        CHECK(rc == -1, "put \"%s\" accepted", bad[i]);
        CHECK(strstr(err, objstore_url(s)) != NULL, "err does not name the URL: %s", err);
        void *data = NULL;
        size_t len;
        rc = objstore_get(s, bad[i], &data, &len, err, sizeof err);
        CHECK(rc == -1 && data == NULL, "get \"%s\": rc %d", bad[i], rc);
        CHECK(objstore_delete(s, bad[i], err, sizeof err) == -1, "delete \"%s\" accepted", bad[i]);
    }
    char err[512] = "";
    CHECK(objstore_put(s, NULL, "x", 1, err, sizeof err) == -1, "NULL name accepted");
    char *long_name = malloc(OBJSTORE_NAME_MAX + 2);
    memset(long_name, 'a', OBJSTORE_NAME_MAX + 1);
    long_name[OBJSTORE_NAME_MAX + 1] = '\0';
    CHECK(objstore_put(s, long_name, "x", 1, err, sizeof err) == -1, "long name accepted");
    long_name[OBJSTORE_NAME_MAX] = '\0';
    /* The longest name is fine (as one file name it would be too long for
     * most file systems, so make it a path). */
    for (size_t i = 100; i < OBJSTORE_NAME_MAX; i += 100) {
        long_name[i] = '/';
    }
    put_ok(s, long_name, "long", 4);
    expect_object(s, long_name, "long", 4);
    CHECK(objstore_delete(s, long_name, err, sizeof err) == 0, "delete long: %s", err);
    free(long_name);
    /* Bad list prefixes; good ones may end anywhere. */
    struct listing l = {0};
    CHECK(objstore_list(s, "/x", list_cb, &l, err, sizeof err) == -1, "list /x accepted");
    CHECK(objstore_list(s, "a//", list_cb, &l, err, sizeof err) == -1, "list a// accepted");
    CHECK(objstore_list(s, "../", list_cb, &l, err, sizeof err) == -1, "list ../ accepted");
    listing_free(&l);
    /* Odd but valid names. */
    put_ok(s, ".hidden", "h", 1);
    put_ok(s, "v/...", "d", 1);
    put_ok(s, "v/-_.A9", "e", 1);
    expect_object(s, ".hidden", "h", 1);
    expect_object(s, "v/...", "d", 1);
    expect_object(s, "v/-_.A9", "e", 1);
    objstore_delete(s, ".hidden", err, sizeof err);
    objstore_delete(s, "v/...", err, sizeof err);
    objstore_delete(s, "v/-_.A9", err, sizeof err);
}

static void test_round_trip(struct objstore *s)
{
    put_ok(s, "rt/small", "hello, world", 12);
    expect_object(s, "rt/small", "hello, world", 12);
    put_ok(s, "rt/small", "replaced", 8);
    expect_object(s, "rt/small", "replaced", 8);
    put_ok(s, "rt/empty", "", 0);
    expect_object(s, "rt/empty", "", 0);
    put_ok(s, "rt/null-empty", NULL, 0);
    expect_object(s, "rt/null-empty", "", 0);
    char binary[4096];
    fill(binary, sizeof binary, 7);
    binary[0] = '\0';
    put_ok(s, "rt/deep/er/binary.bin", binary, sizeof binary);
    expect_object(s, "rt/deep/er/binary.bin", binary, sizeof binary);

    /* put_file, small: one request. */
    char path[] = "/tmp/cairn-objstore-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
    unlink(path);
    CHECK(write(fd, binary, sizeof binary) == (ssize_t)sizeof binary, "write");
    char err[512] = "";
    int rc = objstore_put_file(s, "rt/from-file", fd, sizeof binary, err, sizeof err);
    CHECK(rc == 0, "put_file: %s", err);
    expect_object(s, "rt/from-file", binary, sizeof binary);
    CHECK(lseek(fd, 0, SEEK_CUR) == (off_t)sizeof binary, "put_file moved the offset");
    /* A file shorter than the length given: refused before anything is
     * sent (one PUT hashes the file first). */
    uint64_t before = objstore_requests(s);
    rc = objstore_put_file(s, "rt/short", fd, sizeof binary + 1, err, sizeof err);
    CHECK(rc == -1, "short file accepted");
    CHECK(strstr(err, "shorter") != NULL, "short file: %s", err);
    CHECK(objstore_requests(s) == before, "a short file was sent");
    void *data = NULL;
    size_t len;
    CHECK(objstore_get(s, "rt/short", &data, &len, err, sizeof err) == OBJSTORE_ENOTFOUND,
          "a failed put left an object");
    cairn_free(data);
    close(fd);
}

/* Fills big (len bytes) from seed and returns an unlinked temporary file
 * holding the same bytes. */
static int filled_temp_file(char *big, size_t len, uint32_t seed)
{
    char path[] = "/tmp/cairn-objstore-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
    unlink(path);
    fill(big, len, seed);
    CHECK(write(fd, big, len) == (ssize_t)len, "write");
    return fd;
}

static void test_large(struct objstore *s)
{
    /* 20 MiB with 5 MiB parts: four parts by objstore_put, and 20 MiB +
     * 123 bytes by put_file: five parts, the last one short. */
    size_t len = (size_t)20 << 20;
    char *big = malloc(len + 123);
    int fd = filled_temp_file(big, len + 123, 20);
    char err[512] = "";
    double t0 = now_s();
    int rc = objstore_put(s, "large/twenty", big, len, err, sizeof err);
    double t1 = now_s();
    CHECK(rc == 0, "put 20 MiB: %s", err);
    printf("  put 20 MiB (5 MiB parts): %.2f s, %.1f MB/s\n", t1 - t0, 20.0 * 1.048576 / (t1 - t0));
    expect_object(s, "large/twenty", big, len);

    rc = objstore_put_file(s, "large/twenty-file", fd, len + 123, err, sizeof err);
    CHECK(rc == 0, "put_file 20 MiB + 123: %s", err);
    expect_object(s, "large/twenty-file", big, len + 123);
    /* A short file fails in the middle of a multipart upload. */
    rc = objstore_put_file(s, "large/short", fd, len + 124, err, sizeof err);
    CHECK(rc == -1, "short file accepted (multipart)");
    void *data = NULL;
    size_t got;
    CHECK(objstore_get(s, "large/short", &data, &got, err, sizeof err) == OBJSTORE_ENOTFOUND,
          "a failed multipart upload left an object");
    cairn_free(data);
    close(fd);
    free(big);
    objstore_delete(s, "large/twenty", err, sizeof err);
    objstore_delete(s, "large/twenty-file", err, sizeof err);
}

static void test_list(struct objstore *s)
{
    put_ok(s, "list/b/d", "dd", 2);
    put_ok(s, "list/a", "a", 1);
    put_ok(s, "list/ba", "bab", 3);
    put_ok(s, "list/b/c", "", 0);
    put_ok(s, "list/b-", "-", 1); /* '-' sorts before '/' */
    put_ok(s, "lis", "no", 2);
    put_ok(s, "listing", "no", 2);
    {
        static const char *const n[] = {"list/a", "list/b-", "list/b/c", "list/b/d", "list/ba"};
        static const uint64_t z[] = {1, 1, 0, 2, 3};
        expect_listing(s, "list/", n, z, 5);
    }
    {
        static const char *const n[] = {"list/b-", "list/b/c", "list/b/d", "list/ba"};
        static const uint64_t z[] = {1, 0, 2, 3};
        expect_listing(s, "list/b", n, z, 4);
    }
    {
        static const char *const n[] = {"list/b/c", "list/b/d"};
        static const uint64_t z[] = {0, 2};
        expect_listing(s, "list/b/", n, z, 2);
    }
    {
        static const char *const n[] = {"lis",      "list/a",  "list/b-", "list/b/c",
                                        "list/b/d", "list/ba", "listing"};
        static const uint64_t z[] = {2, 1, 1, 0, 2, 3, 2};
        expect_listing(s, "lis", n, z, 7);
        expect_listing(s, "list/b/d", n + 4, z + 4, 1);
        expect_listing(s, "nothing/", NULL, NULL, 0);
        expect_listing(s, "list/bz", NULL, NULL, 0);
    }
    /* The callback stops the listing. */
    struct listing l = {.stop_after = 2};
    list_ok(s, "list/", &l);
    CHECK(l.n == 2, "stop after 2: got %zu", l.n);
    listing_free(&l);
    /* NULL and "" list everything. */
    list_ok(s, NULL, &l);
    CHECK(l.n >= 7, "list all: %zu", l.n);
    for (size_t i = 1; i < l.n; i++) {
        CHECK(strcmp(l.names[i - 1], l.names[i]) < 0, "list all: %s before %s", l.names[i - 1],
              l.names[i]);
    }
    listing_free(&l);
    char err[512];
    static const char *const all[] = {"list/b/d", "list/a", "list/ba", "list/b/c",
                                      "list/b-",  "lis",    "listing"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        CHECK(objstore_delete(s, all[i], err, sizeof err) == 0, "delete %s: %s", all[i], err);
    }
    expect_listing(s, "lis", NULL, NULL, 0);
}

static void test_paging(struct objstore *s)
{
    /* More than the 1000 keys of one ListObjectsV2 page. */
    enum { count = 1100 };
    double t0 = now_s();
    for (int i = 0; i < count; i++) {
        char name[32], body[16];
        snprintf(name, sizeof name, "page/%05d", i);
        int n = snprintf(body, sizeof body, "%d", i);
        put_ok(s, name, body, (size_t)n);
    }
    double t1 = now_s();
    printf("  %d tiny puts: %.2f s, %.1f ms each\n", count, t1 - t0, (t1 - t0) * 1000 / count);
    unsigned page_sizes[] = {0, 97};
    for (size_t p = 0; p < 2; p++) {
        objstore_set_list_page_size(s, page_sizes[p]);
        struct listing l = {0};
        list_ok(s, "page/", &l);
        CHECK(l.n == count, "page size %u: %zu names", page_sizes[p], l.n);
        for (size_t i = 0; i < l.n; i++) {
            char name[32];
            snprintf(name, sizeof name, "page/%05zu", i);
            if (strcmp(l.names[i], name) != 0) {
                CHECK(0, "page size %u [%zu]: %s, want %s", page_sizes[p], i, l.names[i], name);
                break;
            }
        }
        listing_free(&l);
    }
    objstore_set_list_page_size(s, 0);
    char err[512];
    for (int i = 0; i < count; i++) {
        char name[32];
        snprintf(name, sizeof name, "page/%05d", i);
        CHECK(objstore_delete(s, name, err, sizeof err) == 0, "delete %s: %s", name, err);
    }
    expect_listing(s, "page/", NULL, NULL, 0);
}

static void test_not_found_and_delete(struct objstore *s)
{
    char err[512] = "";
    void *data = (void *)1;
    size_t len = 99;
    int rc = objstore_get(s, "missing/object", &data, &len, err, sizeof err);
    CHECK(rc == OBJSTORE_ENOTFOUND, "get missing: rc %d: %s", rc, err);
    CHECK(data == NULL && len == 0, "get missing: data or len set");
    /* A name below an existing object, and a "directory". */
    put_ok(s, "nf/file", "x", 1);
    put_ok(s, "nf/dir/inner", "y", 1);
    CHECK(objstore_get(s, "nf/file/below", &data, &len, err, sizeof err) == OBJSTORE_ENOTFOUND,
          "below a file: %s", err);
    CHECK(objstore_get(s, "nf/dir", &data, &len, err, sizeof err) == OBJSTORE_ENOTFOUND,
          "a directory: %s", err);
    CHECK(objstore_delete(s, "nf/dir", err, sizeof err) == 0, "delete a prefix: %s", err);
    expect_object(s, "nf/dir/inner", "y", 1);
    CHECK(objstore_delete(s, "nf/file", err, sizeof err) == 0, "delete: %s", err);
    CHECK(objstore_get(s, "nf/file", &data, &len, err, sizeof err) == OBJSTORE_ENOTFOUND,
          "get after delete");
    CHECK(objstore_delete(s, "nf/file", err, sizeof err) == 0, "delete twice: %s", err);
    CHECK(objstore_delete(s, "nf/never/was", err, sizeof err) == 0, "delete absent: %s", err);
    CHECK(objstore_delete(s, "nf/dir/inner", err, sizeof err) == 0, "delete: %s", err);
    put_ok(s, "rt/small", "z", 1);
    CHECK(objstore_delete(s, "rt/small", err, sizeof err) == 0, "delete: %s", err);
    static const char *const rest[] = {"rt/empty", "rt/null-empty", "rt/deep/er/binary.bin",
                                       "rt/from-file"};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) {
        CHECK(objstore_delete(s, rest[i], err, sizeof err) == 0, "delete %s: %s", rest[i], err);
    }
}

/* S3: a sibling prefix in the same bucket is another store. */
static void test_prefix_isolation(struct objstore *s)
{
    char sibling[512];
    snprintf(sibling, sizeof sibling, "%s-sibling", store_url);
    struct objstore *o = open_store(sibling, &base_opt);
    put_ok(o, "iso/x", "sib", 3);
    put_ok(s, "iso/y", "me", 2);
    static const char *const n[] = {"iso/y"};
    static const uint64_t z[] = {2};
    expect_listing(s, "iso/", n, z, 1);
    void *data = NULL;
    size_t len;
    char err[512];
    CHECK(objstore_get(s, "iso/x", &data, &len, err, sizeof err) == OBJSTORE_ENOTFOUND,
          "a sibling's object is visible");
    objstore_delete(o, "iso/x", err, sizeof err);
    objstore_delete(s, "iso/y", err, sizeof err);
    objstore_close(o);
}

/* File: nothing but objects is left (no temporary files). */
static int count_strays(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "find '%s' -type f -name '*~tmp*' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p != NULL) {
        if (fscanf(p, "%d", &n) != 1) {
            n = -1;
        }
        pclose(p);
    }
    return n;
}

/* A socket bound to a free port of 127.0.0.1 in 26000-26999 (the range
 * tests may use), listening if asked; *port is set. */
static int bind_test_port(int do_listen, int *port)
{
    srand((unsigned)getpid() ^ (unsigned)time(NULL));
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        *port = 26000 + rand() % 1000;
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                .sin_port = htons((uint16_t)*port)};
        if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && (!do_listen || listen(fd, 16) == 0)) {
            return fd;
        }
        close(fd);
    }
    CHECK(0, "no free port in 26000-26999");
    exit(1);
}

static void test_down(void)
{
    /* A port nothing listens on: bind one, note it, close it. */
    int port;
    int fd = bind_test_port(0, &port);
    close(fd);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", port);
    struct objstore_options o = base_opt;
    o.endpoint = endpoint;
    o.path_style = 1;
    struct objstore *s = open_store("s3://cairn-down", &o);
    char err[512] = "";
    double t0 = now_s();
    int rc = objstore_put(s, "x", "x", 1, err, sizeof err);
    double took = now_s() - t0;
    CHECK(rc == -1, "put to a closed port succeeded");
    CHECK(strstr(err, "after 5 attempts") != NULL, "closed port: %s", err);
    CHECK(strstr(err, "s3://cairn-down") != NULL, "closed port: %s", err);
    /* Four waits: at least 100+200+400+800 ms, at most 200+400+800+1600. */
    CHECK(took >= 1.4 && took < 10, "closed port: %.2f s", took);
    printf("  connection refused: %.2f s: %s\n", took, err);
    objstore_close(s);

    /* A server that accepts connections (the kernel does) but never
     * answers: each attempt times out. */
    fd = bind_test_port(1, &port);
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", port);
    o.timeout_ms = 300;
    o.retries = 1;
    s = open_store("s3://cairn-silent", &o);
    t0 = now_s();
    void *data = NULL;
    size_t len;
    rc = objstore_get(s, "x", &data, &len, err, sizeof err);
    took = now_s() - t0;
    CHECK(rc == -1, "get from a silent server: rc %d", rc);
    CHECK(strstr(err, "after 2 attempts") != NULL, "silent server: %s", err);
    CHECK(strstr(err, "imed out") != NULL, "silent server: %s", err);
    CHECK(took >= 0.6 && took < 3, "silent server: %.2f s", took);
    printf("  silent server: %.2f s: %s\n", took, err);
    objstore_close(s);
    close(fd);
}

static int run_auth_failure(void)
{
    struct objstore *s = open_store(store_url, &base_opt);
    char err[512] = "";
    double t0 = now_s();
    int rc = objstore_put(s, "auth/x", "x", 1, err, sizeof err);
    double took = now_s() - t0;
    CHECK(rc == -1, "a put with a wrong secret succeeded");
    CHECK(strstr(err, "HTTP 403 SignatureDoesNotMatch") != NULL, "wrong secret: %s", err);
    CHECK(strstr(err, "attempts") == NULL, "a 403 was retried: %s", err);
    CHECK(took < 2, "wrong secret took %.2f s", took);
    printf("wrong secret: %s\n", err);
    objstore_close(s);
    return failures == 0 ? 0 : 1;
}

static int run_bench(size_t mib)
{
    size_t len = mib << 20;
    char *big = malloc(len);
    fill(big, len, 99);
    char err[512] = "";
    size_t parts[] = {len + 1, (size_t)8 << 20, (size_t)16 << 20};
    for (size_t i = 0; i < 3; i++) {
        struct objstore_options o = base_opt;
        o.part_size = parts[i];
        o.multipart_threshold = parts[i];
        struct objstore *s = open_store(store_url, &o);
        double t0 = now_s();
        int rc = objstore_put(s, "bench/object", big, len, err, sizeof err);
        double t = now_s() - t0;
        CHECK(rc == 0, "bench put: %s", err);
        printf("put %zu MiB, %s: %.2f s, %.1f MB/s\n", mib,
               i == 0   ? "single PUT"
               : i == 1 ? "8 MiB parts"
                        : "16 MiB parts",
               t, (double)len / 1e6 / t);
        if (i == 0) {
            void *data = NULL;
            size_t got = 0;
            t0 = now_s();
            rc = objstore_get(s, "bench/object", &data, &got, err, sizeof err);
            t = now_s() - t0;
            CHECK(rc == 0 && got == len, "bench get: %s", err);
            printf("get %zu MiB: %.2f s, %.1f MB/s\n", mib, t, (double)len / 1e6 / t);
            cairn_free(data);
        }
        objstore_delete(s, "bench/object", err, sizeof err);
        objstore_close(s);
    }
    free(big);
    return failures == 0 ? 0 : 1;
}

static int print_cb(void *arg, const char *name, uint64_t size)
{
    printf("%s %llu\n", name, (unsigned long long)size);
    return 0;
}

static int run_list(const char *prefix)
{
    struct objstore *s = open_store(store_url, &base_opt);
    char err[512] = "";
    int rc = objstore_list(s, prefix, print_cb, NULL, err, sizeof err);
    CHECK(rc == 0, "list %s: %s", prefix, err);
    objstore_close(s);
    return failures == 0 ? 0 : 1;
}

/* put_file_rate: an upload from a file goes no faster than the limit
 * (single request and multipart alike); objstore_put from memory is not
 * limited. The lower bound on time is what the limit guarantees. */
static void test_rate(void)
{
    struct objstore_options o = base_opt;
    size_t len = (size_t)12 << 20; /* 12 MiB: three 5 MiB parts on S3 */
    char *big = malloc(len);
    char err[512] = "";
    int fd = filled_temp_file(big, len, 77);
    o.part_size = (size_t)5 << 20;
    o.multipart_threshold = (size_t)5 << 20;
    o.put_file_rate = (uint64_t)16 << 20; /* 16 MiB/s: at least 0.75 s */
    struct objstore *s = open_store(store_url, &o);
    double t0 = now_s();
    int rc = objstore_put_file(s, "rate/file", fd, len, err, sizeof err);
    double dt = now_s() - t0;
    CHECK(rc == 0, "put_file at 16 MiB/s: %s", err);
    CHECK(dt >= 0.70, "12 MiB at 16 MiB/s took only %.2f s", dt);
    printf("  put_file 12 MiB at 16 MiB/s: %.2f s\n", dt);
    expect_object(s, "rate/file", big, len);
    /* One request below the part size is paced too. */
    t0 = now_s();
    rc = objstore_put_file(s, "rate/small", fd, (size_t)4 << 20, err, sizeof err);
    dt = now_s() - t0;
    CHECK(rc == 0, "put_file 4 MiB at 16 MiB/s: %s", err);
    CHECK(dt >= 0.22, "4 MiB at 16 MiB/s took only %.2f s", dt);
    /* Pacing may outlast the per-request timeout: a 1 s timeout and a
     * 4 MiB part at 2 MiB/s (2 s) must still succeed. */
    if (is_s3()) {
        struct objstore_options paced = o;
        paced.timeout_ms = 1000;
        paced.put_file_rate = (uint64_t)2 << 20;
        struct objstore *s2 = open_store(store_url, &paced);
        t0 = now_s();
        rc = objstore_put_file(s2, "rate/long", fd, (size_t)4 << 20, err, sizeof err);
        dt = now_s() - t0;
        CHECK(rc == 0, "4 MiB at 2 MiB/s with a 1 s timeout: %s", err);
        CHECK(dt >= 1.5, "4 MiB at 2 MiB/s took only %.2f s", dt);
        printf("  put_file 4 MiB at 2 MiB/s, 1 s timeout: %.2f s\n", dt);
        objstore_delete(s2, "rate/long", err, sizeof err);
        objstore_close(s2);
    }
    /* From memory: no limit. At 1 MiB/s, 2 MiB would take 2 s. */
    struct objstore_options slow = o;
    slow.put_file_rate = (uint64_t)1 << 20;
    struct objstore *s1 = open_store(store_url, &slow);
    t0 = now_s();
    rc = objstore_put(s1, "rate/memory", big, (size_t)2 << 20, err, sizeof err);
    dt = now_s() - t0;
    CHECK(rc == 0 && dt < 1.5, "put from memory: rc %d, %.2f s: %s", rc, dt, err);
    objstore_close(s1);
    objstore_delete(s, "rate/file", err, sizeof err);
    objstore_delete(s, "rate/small", err, sizeof err);
    objstore_delete(s, "rate/memory", err, sizeof err);
    objstore_close(s);
    close(fd);
    free(big);
}

/* Below multipart_threshold an object goes in one PUT, even when it is
 * larger than a part, and a file's bytes are streamed, not held; above it,
 * in parts. Counted by objstore_requests (S3 only). */
static void test_one_put(void)
{
    size_t len = (size_t)12 << 20;
    char *big = malloc(len);
    char err[512] = "";
    int fd = filled_temp_file(big, len, 55);
    struct objstore_options o = base_opt;
    o.part_size = (size_t)5 << 20; /* the default threshold, 256 MiB */
    struct objstore *s = open_store(store_url, &o);
    uint64_t before = objstore_requests(s);
    int rc = objstore_put_file(s, "one/file", fd, len, err, sizeof err);
    CHECK(rc == 0, "put_file 12 MiB in one PUT: %s", err);
    CHECK(objstore_requests(s) - before == 1, "12 MiB under the threshold: %llu requests",
          (unsigned long long)(objstore_requests(s) - before));
    expect_object(s, "one/file", big, len);
    before = objstore_requests(s);
    rc = objstore_put(s, "one/memory", big, len, err, sizeof err);
    CHECK(rc == 0 && objstore_requests(s) - before == 1, "put 12 MiB from memory: %d, %llu: %s", rc,
          (unsigned long long)(objstore_requests(s) - before), err);
    objstore_close(s);

    /* Above the threshold: create, three parts, complete. */
    o.multipart_threshold = (size_t)10 << 20;
    s = open_store(store_url, &o);
    before = objstore_requests(s);
    rc = objstore_put_file(s, "one/parts", fd, len, err, sizeof err);
    CHECK(rc == 0, "put_file 12 MiB in parts: %s", err);
    CHECK(objstore_requests(s) - before == 5, "12 MiB over a 10 MiB threshold: %llu requests",
          (unsigned long long)(objstore_requests(s) - before));
    expect_object(s, "one/parts", big, len);
    objstore_delete(s, "one/file", err, sizeof err);
    objstore_delete(s, "one/memory", err, sizeof err);
    objstore_delete(s, "one/parts", err, sizeof err);
    objstore_close(s);
    close(fd);
    free(big);
}

int main(int argc, char **argv)
{
    int auth_failure = 0;
    const char *list_prefix = NULL;
    size_t bench_mib = 0;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--endpoint") == 0 && i + 1 < argc) {
            base_opt.endpoint = argv[++i];
        } else if (strcmp(argv[i], "--region") == 0 && i + 1 < argc) {
            base_opt.region = argv[++i];
        } else if (strcmp(argv[i], "--path-style") == 0 && i + 1 < argc) {
            base_opt.path_style = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--credentials") == 0 && i + 1 < argc) {
            base_opt.credentials_file = argv[++i];
        } else if (strcmp(argv[i], "--expect-auth-failure") == 0) {
            auth_failure = 1;
        } else if (strcmp(argv[i], "--list") == 0 && i + 1 < argc) {
            list_prefix = argv[++i];
        } else if (strcmp(argv[i], "--bench") == 0 && i + 1 < argc) {
            bench_mib = (size_t)atol(argv[++i]);
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (i + 1 != argc) {
        fprintf(stderr, "usage: test_objstore [options] URL\n");
        return 2;
    }
    store_url = argv[i];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (auth_failure) {
        return run_auth_failure();
    }
    if (bench_mib > 0) {
        return run_bench(bench_mib);
    }
    if (list_prefix != NULL) {
        return run_list(list_prefix);
    }

    printf("test_objstore %s\n", store_url);
    struct objstore *s = open_store(store_url, &base_opt);
    CHECK(strcmp(objstore_url(s), store_url) == 0, "objstore_url: %s", objstore_url(s));
    struct objstore_options o5 = base_opt;
    o5.part_size = (size_t)5 << 20;
    o5.multipart_threshold = (size_t)5 << 20;
    struct objstore *s5 = open_store(store_url, &o5);

    double t0 = now_s();
    printf("open errors\n");
    test_open_errors();
    printf("names\n");
    test_names(s);
    printf("round trip\n");
    test_round_trip(s);
    printf("large (multipart)\n");
    test_large(s5);
    printf("rate limit\n");
    test_rate();
    if (is_s3()) {
        printf("one PUT below the multipart threshold\n");
        test_one_put();
    }
    printf("list\n");
    test_list(s);
    printf("paging\n");
    test_paging(s);
    printf("not found, delete\n");
    test_not_found_and_delete(s);
    if (is_s3()) {
        printf("prefix isolation\n");
        test_prefix_isolation(s);
        printf("store down\n");
        test_down();
    } else {
        int strays = count_strays(store_url + strlen("file://"));
        CHECK(strays == 0, "%d temporary files left", strays);
    }
    struct listing l = {0};
    list_ok(s, "", &l);
    CHECK(l.n == 0, "%zu objects left, first %s", l.n, l.n ? l.names[0] : "");
    listing_free(&l);
    objstore_close(s5);
    objstore_close(s);
    printf("%s: %d checks, %d failed, %.1f s\n", failures ? "FAIL" : "ok", checks, failures,
           now_s() - t0);
    return failures == 0 ? 0 : 1;
}
