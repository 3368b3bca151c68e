/*
 * raw: speaking the wire protocol by hand in integration tests, for what
 * libcairn would never send (garbage) or never do (stop reading). Answers are
 * decoded with the codec (client/src/proto.h). Failures end the test through
 * it_fail().
 */
#ifndef CAIRN_IT_RAW_H
#define CAIRN_IT_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

/* A TCP connection to 127.0.0.1:port. rcvbuf > 0 sets SO_RCVBUF first (a
 * small receive buffer makes a reader that stops reading stall quickly). */
int it_raw_connect(int port, int rcvbuf);

/* Send everything; the node may close early (it answered already), so a
 * broken pipe is not an error here. Returns false if the send broke. */
bool it_raw_send(int fd, const void *data, size_t len);

/* Send one frame around payload. */
void it_raw_send_frame(int fd, const void *payload, uint32_t len);

/* Encode and send one request. */
void it_raw_send_request(int fd, const struct proto_request *req);

/* Read exactly len bytes by deadline_ms (it_now_ms() clock). Returns len, 0
 * at EOF (or a reset: the node closed), -1 on timeout. */
ssize_t it_raw_read_exact(int fd, void *buf, size_t len, int64_t deadline_ms);

/* Read one response frame into *resp (free it with proto_response_free).
 * Returns 1, 0 at EOF, -1 on timeout. */
int it_raw_read_response(int fd, int timeout_ms, struct proto_response *resp);

#endif /* CAIRN_IT_RAW_H */
