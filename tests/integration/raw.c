#include "raw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"

int it_raw_connect(int port, int rcvbuf)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    IT_ASSERT(fd >= 0, "socket: %s", strerror(errno));
    if (rcvbuf > 0) {
        IT_ASSERT(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) == 0,
                  "SO_RCVBUF: %s", strerror(errno));
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    IT_ASSERT(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s", strerror(errno));
    return fd;
}

bool it_raw_send(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

void it_raw_send_frame(int fd, const void *payload, uint32_t len)
{
    uint8_t h[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    it_raw_send(fd, h, sizeof(h));
    it_raw_send(fd, payload, len);
}

void it_raw_send_request(int fd, const struct proto_request *req)
{
    struct buf b;
    buf_init(&b);
    IT_ASSERT(proto_encode_request(&b, req) == 0, "out of memory");
    it_raw_send(fd, b.data, b.len);
    buf_free(&b);
}

ssize_t it_raw_read_exact(int fd, void *buf, size_t len, int64_t deadline_ms)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd p = {fd, POLLIN, 0};
        int64_t wait = deadline_ms - it_now_ms();
        ssize_t n;
        if (wait <= 0 || poll(&p, 1, (int)wait) <= 0) {
            return -1;
        }
        n = recv(fd, (char *)buf + got, len - got, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            return 0;
        }
        IT_ASSERT(n > 0, "recv: %s", strerror(errno));
        got += (size_t)n;
    }
    return (ssize_t)len;
}

int it_raw_read_response(int fd, int timeout_ms, struct proto_response *resp)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    uint8_t h[4];
    uint32_t len;
    char *payload;
    ssize_t n = it_raw_read_exact(fd, h, 4, deadline);
    int rv;
    if (n <= 0) {
        return (int)n;
    }
    len = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
    IT_ASSERT(len <= PROTO_FRAME_SIZE_MAX, "the node sent a frame of %u bytes", len);
    payload = malloc(len > 0 ? len : 1);
    IT_ASSERT(payload != NULL, "out of memory");
    IT_ASSERT(it_raw_read_exact(fd, payload, len, deadline) == (ssize_t)len,
              "the node sent half a frame");
    rv = proto_decode_response(payload, len, resp);
    free(payload);
    IT_ASSERT(rv == 0, "the node's answer does not decode: %s", cairn_errname(rv));
    return 1;
}
