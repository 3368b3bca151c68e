/*
 * mpread: a bounds-checked, allocation-free msgpack reader.
 *
 * We encode with msgpack-c's packer but decode untrusted bytes with this
 * cursor instead of msgpack-c's unpacker: the unpacker allocates
 * count * sizeof(msgpack_object) for an array header before it has seen the
 * elements, so a 5-byte frame claiming 2^32 elements costs gigabytes. Here an
 * array or map count is checked against the bytes that remain, and nothing is
 * allocated at all. Every function returns false (and latches r->err) on
 * malformed input; it never reads past r->end.
 */
#ifndef CAIRN_MPREAD_H
#define CAIRN_MPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mp_reader
{
    const uint8_t *p;   /* borrowed: next byte */
    const uint8_t *end; /* borrowed: one past the last byte */
    bool err;
    bool nomem; /* set by callers: the error was running out of memory */
};

/* Maximum nesting that mp_skip follows. */
#define MP_DEPTH_MAX 16

void mp_init(struct mp_reader *r, const void *data, size_t len);
bool mp_array(struct mp_reader *r, uint32_t *n);
bool mp_map(struct mp_reader *r, uint32_t *n);
bool mp_uint(struct mp_reader *r, uint64_t *v);
bool mp_int(struct mp_reader *r, int64_t *v);
bool mp_bool(struct mp_reader *r, bool *v);
/* A str or bin; *data points into the input. */
bool mp_bytes(struct mp_reader *r, const char **data, uint32_t *len);
/* True (and consumes it) when the next object is nil. */
bool mp_try_nil(struct mp_reader *r);
bool mp_skip(struct mp_reader *r);
/* True when every byte has been consumed and no error occurred. */
bool mp_done(const struct mp_reader *r);

#endif /* CAIRN_MPREAD_H */
