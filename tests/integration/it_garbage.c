/*
 * it_garbage: a node survives whatever arrives on its client port.
 *
 * Raw TCP connections send, each on its own connection:
 *
 *   random bytes announcing a huge frame   -> ETOOLARGE frame, then close
 *   a header announcing 1 GiB              -> ETOOLARGE naming max_request_bytes, close
 *   frames of random bytes                 -> EMALFORMED (or EVERSION) frame, close
 *   frames that are not requests (invalid  -> EMALFORMED frame, close
 *     msgpack, a map, an empty payload, an
 *     unknown request type)
 *   a request with protocol version 2      -> EVERSION frame echoing the id, close
 *   a truncated frame, then nothing        -> no answer, connection stays open
 *   a truncated frame, then close          -> nothing (the node just drops it)
 *
 * and a well-formed request on a raw connection is answered and leaves the
 * connection open (so the framing above is right). Through libcairn, a
 * value over max_value_bytes and a key over max_key_bytes get ETOOLARGE with
 * a message naming the limit, and the client goes on working. At the end
 * the node still serves puts and gets, and (under ASan) reported nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "proto.h"
#include "raw.h"

#define IO_TIMEOUT_MS 10000
#define MAX_VALUE_BYTES 1048576 /* cairnd's default max_value_bytes */
#define MAX_KEY_BYTES 4096      /* cairnd's default max_key_bytes */

static int g_port;
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint8_t rand_byte(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint8_t)(g_rng >> 24);
}

/* The node must have closed the connection (EOF, not just silence). */
static void expect_closed(int fd, const char *what)
{
    struct proto_response resp;
    int rv = it_raw_read_response(fd, IO_TIMEOUT_MS, &resp);
    if (rv == 1) {
        it_fail(__FILE__, __LINE__, "connection closed", "%s: another frame (code %s) came", what,
                cairn_errname(resp.code));
    }
    IT_ASSERT(rv == 0, "%s: the connection stayed open", what);
}

/* One error frame with the given code (or code2 if not 0), then close. */
static void expect_error_then_close(int fd, const char *what, int code, int code2,
                                    const char *words, uint64_t id)
{
    struct proto_response resp;
    int rv = it_raw_read_response(fd, IO_TIMEOUT_MS, &resp);
    IT_ASSERT(rv == 1, "%s: no error frame (%s)", what, rv == 0 ? "closed" : "timed out");
    IT_ASSERT(resp.code == code || (code2 != 0 && resp.code == code2), "%s: got %s (%s)", what,
              cairn_errname(resp.code), resp.message);
    IT_ASSERT(words == NULL || strstr(resp.message, words) != NULL,
              "%s: message \"%s\" lacks \"%s\"", what, resp.message, words);
    IT_ASSERT(id == UINT64_MAX || resp.id == id, "%s: answer for id %llu, want %llu", what,
              (unsigned long long)resp.id, (unsigned long long)id);
    it_log("%s: %s \"%s\", then close", what, cairn_errname(resp.code), resp.message);
    proto_response_free(&resp);
    expect_closed(fd, what);
    close(fd);
}

/* A well-formed status request, framed. */
static void status_request(struct buf *out, uint64_t id)
{
    struct proto_request req;
    memset(&req, 0, sizeof(req));
    req.id = id;
    req.type = PROTO_STATUS;
    req.op.key.ptr = "";
    req.op.value.ptr = "";
    req.op.after.ptr = "";
    IT_ASSERT(proto_encode_request(out, &req) == 0, "encode");
}

static void well_formed(void)
{
    struct buf b;
    struct proto_response resp;
    int fd = it_raw_connect(g_port, 0);
    int i;
    buf_init(&b);
    /* Two pipelined requests in one write: two answers, connection open. */
    status_request(&b, 7);
    status_request(&b, 8);
    IT_ASSERT(it_raw_send(fd, b.data, b.len), "send");
    for (i = 0; i < 2; i++) {
        IT_ASSERT(it_raw_read_response(fd, IO_TIMEOUT_MS, &resp) == 1, "status answer %d", i);
        IT_ASSERT(resp.code == 0 && resp.status != NULL, "status answered %s",
                  cairn_errname(resp.code));
        IT_ASSERT(resp.id == 7 || resp.id == 8, "answer id %llu", (unsigned long long)resp.id);
        proto_response_free(&resp);
    }
    IT_ASSERT(it_raw_read_response(fd, 200, &resp) == -1, "the connection stays open and quiet");
    buf_free(&b);
    close(fd);
    it_log("well-formed pipelined requests on a raw connection: answered, connection kept");
}

static void random_bytes(void)
{
    uint8_t junk[4096];
    size_t i;
    int round;
    int fd = it_raw_connect(g_port, 0);
    for (i = 0; i < sizeof(junk); i++) {
        junk[i] = rand_byte();
    }
    /* The first four bytes read as a length of at least 3 GiB. */
    junk[0] = 0xc0 | junk[0];
    it_raw_send(fd, junk, sizeof(junk));
    expect_error_then_close(fd, "4 KiB of random bytes", CAIRN_ETOOLARGE, 0, "max_request_bytes",
                            UINT64_MAX);

    /* Random payloads in well-sized frames. */
    for (round = 0; round < 20; round++) {
        uint32_t len = 1 + rand_byte() % 200;
        for (i = 0; i < len; i++) {
            junk[i] = rand_byte();
        }
        fd = it_raw_connect(g_port, 0);
        it_raw_send_frame(fd, junk, len);
        {
            struct proto_response resp;
            int rv = it_raw_read_response(fd, IO_TIMEOUT_MS, &resp);
            IT_ASSERT(rv == 1, "random frame %d: no error frame", round);
            IT_ASSERT(resp.code == CAIRN_EMALFORMED || resp.code == CAIRN_EVERSION,
                      "random frame %d answered %s", round, cairn_errname(resp.code));
            proto_response_free(&resp);
            expect_closed(fd, "random frame");
            close(fd);
        }
    }
    it_log("20 frames of random bytes: each refused as malformed, connection closed");
}

static void huge_header(void)
{
    uint8_t h[4] = {0x40, 0x00, 0x00, 0x00}; /* 1 GiB */
    int fd = it_raw_connect(g_port, 0);
    it_raw_send(fd, h, sizeof(h));
    it_raw_send(fd, "abcdefgh", 8);
    expect_error_then_close(fd, "frame header announcing 1 GiB", CAIRN_ETOOLARGE, 0,
                            "max_request_bytes", UINT64_MAX);
}

static void bad_msgpack(void)
{
    static const uint8_t never_used[] = {0xc1};
    static const uint8_t a_map[] = {0x81, 0xa1, 'a', 0x01};
    /* [1, 9, 99, ...]: version 1, id 9, request type 99. */
    static const uint8_t bad_type[] = {0x98, 0x01, 0x09, 0x63, 0xc0, 0x90, 0x90, 0x90, 0x00};
    /* An array that claims 8 elements and ends after two. */
    static const uint8_t short_array[] = {0x98, 0x01, 0x05};
    int fd;

    fd = it_raw_connect(g_port, 0);
    it_raw_send_frame(fd, never_used, sizeof(never_used));
    expect_error_then_close(fd, "frame of invalid msgpack (0xc1)", CAIRN_EMALFORMED, 0, "decode",
                            UINT64_MAX);
    fd = it_raw_connect(g_port, 0);
    it_raw_send_frame(fd, a_map, sizeof(a_map));
    expect_error_then_close(fd, "frame holding a msgpack map", CAIRN_EMALFORMED, 0, NULL,
                            UINT64_MAX);
    fd = it_raw_connect(g_port, 0);
    it_raw_send_frame(fd, "", 0);
    expect_error_then_close(fd, "empty frame", CAIRN_EMALFORMED, 0, NULL, UINT64_MAX);
    fd = it_raw_connect(g_port, 0);
    it_raw_send_frame(fd, bad_type, sizeof(bad_type));
    expect_error_then_close(fd, "request of unknown type 99", CAIRN_EMALFORMED, 0, NULL,
                            UINT64_MAX);
    fd = it_raw_connect(g_port, 0);
    it_raw_send_frame(fd, short_array, sizeof(short_array));
    expect_error_then_close(fd, "request cut short inside its frame", CAIRN_EMALFORMED, 0, NULL,
                            UINT64_MAX);
}

static void wrong_version(void)
{
    struct buf b;
    int fd = it_raw_connect(g_port, 0);
    buf_init(&b);
    status_request(&b, 42);
    /* [version, id, ...]: after the 4-byte header, 0x9c (array of 12), then
     * the version as a positive fixint. */
    IT_ASSERT((uint8_t)b.data[4] == 0x9c && b.data[5] == 0x01, "encoded request layout");
    b.data[5] = 0x02;
    it_raw_send(fd, b.data, b.len);
    buf_free(&b);
    expect_error_then_close(fd, "protocol version 2", CAIRN_EVERSION, 0, "version", 42);
}

static void truncated(void)
{
    struct buf b;
    struct proto_response resp;
    int fd;
    buf_init(&b);
    status_request(&b, 5);
    /* Half a frame: the node waits for the rest without answering. */
    fd = it_raw_connect(g_port, 0);
    it_raw_send(fd, b.data, b.len / 2);
    IT_ASSERT(it_raw_read_response(fd, 500, &resp) == -1, "no answer to half a frame");
    /* ...and the rest completes it. */
    it_raw_send(fd, b.data + b.len / 2, b.len - b.len / 2);
    IT_ASSERT(it_raw_read_response(fd, IO_TIMEOUT_MS, &resp) == 1 && resp.code == 0 && resp.id == 5,
              "the completed frame is answered");
    proto_response_free(&resp);
    close(fd);
    /* Half a frame, then the client goes away. */
    fd = it_raw_connect(g_port, 0);
    it_raw_send(fd, b.data, 4 + 3);
    shutdown(fd, SHUT_WR);
    expect_closed(fd, "truncated frame then close");
    close(fd);
    /* A header alone, then a reset. */
    fd = it_raw_connect(g_port, 0);
    it_raw_send(fd, b.data, 4);
    {
        struct linger l = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    close(fd);
    buf_free(&b);
    it_log("truncated frames: held until complete; dropped quietly when the client goes");
}

static void oversized_through_library(struct it_cluster *c)
{
    cairn_client *client = it_client(c, 0, 10000);
    char *big = malloc(MAX_VALUE_BYTES + 1);
    int rv;
    IT_ASSERT(big != NULL, "out of memory");
    memset(big, 'v', MAX_VALUE_BYTES + 1);
    IT_ASSERT_OK(cairn_put(client, "fits", 4, big, MAX_VALUE_BYTES, NULL, NULL), client);
    rv = cairn_put(client, "big", 3, big, MAX_VALUE_BYTES + 1, NULL, NULL);
    IT_ASSERT(rv == CAIRN_ETOOLARGE, "a value of max_value_bytes + 1: %s (%s)", cairn_errname(rv),
              cairn_errmsg(client));
    IT_ASSERT(strstr(cairn_errmsg(client), "max_value_bytes") != NULL,
              "the message names the limit: %s", cairn_errmsg(client));
    it_log("value of %d bytes: %s \"%s\"", MAX_VALUE_BYTES + 1, cairn_errname(rv),
           cairn_errmsg(client));
    rv = cairn_put(client, big, MAX_KEY_BYTES + 1, "v", 1, NULL, NULL);
    IT_ASSERT(rv == CAIRN_ETOOLARGE, "a key of max_key_bytes + 1: %s (%s)", cairn_errname(rv),
              cairn_errmsg(client));
    IT_ASSERT(strstr(cairn_errmsg(client), "max_key_bytes") != NULL,
              "the message names the limit: %s", cairn_errmsg(client));
    IT_ASSERT(cairn_get(client, "big", 3, NULL, NULL) == CAIRN_ENOTFOUND,
              "the refused value was not written");
    /* A value far larger than the frame limit (max_request_bytes, 2 MiB) and than
     * the socket buffers:
     * cairnd skips the frame and answers, so the caller learns for certain
     * that nothing was applied (not CAIRN_EUNKNOWN), on a connection that
     * stays usable. */
    {
        size_t huge_len = 40u * 1024 * 1024;
        char *huge = malloc(huge_len);
        IT_ASSERT(huge != NULL, "out of memory");
        memset(huge, 'h', huge_len);
        rv = cairn_put(client, "huge", 4, huge, huge_len, NULL, NULL);
        IT_ASSERT(rv == CAIRN_ETOOLARGE, "a 40 MiB value: %s (%s)", cairn_errname(rv),
                  cairn_errmsg(client));
        IT_ASSERT(strstr(cairn_errmsg(client), "max_request_bytes") != NULL,
                  "the message names the limit: %s", cairn_errmsg(client));
        IT_ASSERT(cairn_get(client, "huge", 4, NULL, NULL) == CAIRN_ENOTFOUND,
                  "the refused value was not written");
        free(huge);
    }
    IT_ASSERT_OK(cairn_put(client, "after", 5, "ok", 2, NULL, NULL), client);
    free(big);
    cairn_client_free(client);
}

int main(void)
{
    struct it_cluster *c;
    cairn_client *client;
    struct cairn_result *r = NULL;

    it_init("it_garbage", IT_TIMEOUT_S);
    c = it_cluster_new(1, NULL);
    it_cluster_start(c);
    g_port = it_node(c, 1)->client_port;

    well_formed();
    random_bytes();
    huge_header();
    bad_msgpack();
    wrong_version();
    truncated();
    oversized_through_library(c);

    /* Still serving. */
    client = it_client(c, 0, 10000);
    IT_ASSERT_OK(cairn_put(client, "still", 5, "alive", 5, NULL, NULL), client);
    IT_ASSERT_OK(cairn_get(client, "still", 5, NULL, &r), client);
    IT_ASSERT(r->ops[0].n_kvs == 1 && r->ops[0].kvs[0].value_len == 5 &&
                  memcmp(r->ops[0].kvs[0].value, "alive", 5) == 0,
              "read back");
    cairn_result_free(r);
    cairn_client_free(client);
    it_log("the node still serves puts and gets");
    it_cluster_free(c);
    it_log("PASS");
    return 0;
}
