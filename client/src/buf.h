/*
 * buf: a growable byte buffer and a bump arena. Generic helpers with no
 * knowledge of Cairn's protocol; shared by the client library and cairnd.
 */
#ifndef CAIRN_BUF_H
#define CAIRN_BUF_H

#include <stddef.h>
#include <stdint.h>

/* All of Cairn's own allocations go through these so that tests can make
 * them fail (see cairn_alloc_fail_after). */
void *cairn_malloc(size_t size);
void *cairn_realloc(void *ptr, size_t size);
void *cairn_calloc(size_t n, size_t size);
void cairn_free(void *ptr);
char *cairn_strdup(const char *s);

/* Make the n-th allocation from now fail (and every one after it) when
 * n >= 0; -1 turns failure injection off. For tests only. */
void cairn_alloc_fail_after(long n);

struct buf
{
    char *data; /* owned */
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
/* Ensure room for extra more bytes. Returns 0 or -1 on out of memory. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Detach the data: the caller owns the returned pointer; b is empty after. */
char *buf_steal(struct buf *b);

/* Bump arena: many small allocations released together. */
struct arena_chunk;
struct arena
{
    struct arena_chunk *head; /* owned */
};

void arena_init(struct arena *a);
void *arena_alloc(struct arena *a, size_t size);
void arena_free(struct arena *a);

#endif /* CAIRN_BUF_H */
