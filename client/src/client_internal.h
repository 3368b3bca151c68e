/*
 * client_internal: what the files of libcairn share beyond cairn.h. client.c
 * owns struct cairn_client; watch.c reaches its endpoints, options, error
 * slot and connection helper only through these functions, and client.c
 * reaches the watch multiplexer only through watch_mux_new/free.
 */
#ifndef CAIRN_CLIENT_INTERNAL_H
#define CAIRN_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"

/* Longest endpoint ("host:port"), NUL included. */
#define ENDPOINT_MAX 256

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t client_now_ms(void);

/* The endpoints and options are fixed by cairn_client_new(), so any thread
 * may read them without the client's mutex, for as long as c lives. */
size_t client_n_endpoints(const struct cairn_client *c);
const char *client_endpoint(const struct cairn_client *c, size_t i);
const struct cairn_options *client_options(const struct cairn_client *c);

/* Connect to "host:port" within connect_timeout_ms (and before deadline_ms,
 * a client_now_ms() time). Returns a non-blocking socket with TCP_NODELAY,
 * or -1 with a message naming the endpoint and the reason in why. */
int client_connect(const char *endpoint, int64_t deadline_ms, int connect_timeout_ms, char *why,
                   size_t why_len);

/* Record a failure as the client's last error (cairn_errcode/errmsg), under
 * the client's mutex. Returns code. */
int client_fail(struct cairn_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* watch.c: the client's watch multiplexer, created and freed with the
 * client. watch_mux_new starts no thread and opens no descriptor; it returns
 * NULL when out of memory. watch_mux_free stops the thread (if the first watch
 * started one), closes the connection and frees every watch still open; it
 * must not be called from a watch callback. NULL is a no-op. */
struct watch_mux;
struct watch_mux *watch_mux_new(struct cairn_client *c);
void watch_mux_free(struct watch_mux *m);
struct watch_mux *client_watch_mux(struct cairn_client *c);

#endif /* CAIRN_CLIENT_INTERNAL_H */
