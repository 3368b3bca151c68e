#include "buf.h"

#include <stdlib.h>
#include <string.h>

static long alloc_fail_after = -1;

void cairn_alloc_fail_after(long n)
{
    alloc_fail_after = n;
}

/* Returns true when failure injection says this allocation must fail. */
static int alloc_should_fail(void)
{
    if (alloc_fail_after < 0) {
        return 0;
    }
    if (alloc_fail_after == 0) {
        return 1;
    }
    alloc_fail_after--;
    return 0;
}

void *cairn_malloc(size_t size)
{
    return alloc_should_fail() ? NULL : malloc(size);
}

void *cairn_realloc(void *ptr, size_t size)
{
    return alloc_should_fail() ? NULL : realloc(ptr, size);
}

void *cairn_calloc(size_t n, size_t size)
{
    return alloc_should_fail() ? NULL : calloc(n, size);
}

void cairn_free(void *ptr)
{
    free(ptr);
}

char *cairn_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = cairn_malloc(n);
    if (copy != NULL) {
        memcpy(copy, s, n);
    }
    return copy;
}

void buf_init(struct buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_free(struct buf *b)
{
    cairn_free(b->data);
    buf_init(b);
}

int buf_reserve(struct buf *b, size_t extra)
{
    size_t need = b->len + extra;
    size_t cap;
    char *data;
    if (need <= b->cap) {
        return 0;
    }
    cap = b->cap > 0 ? b->cap : 256;
    while (cap < need) {
        cap *= 2;
    }
    data = cairn_realloc(b->data, cap);
    if (data == NULL) {
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
    if (len == 0) {
        return 0;
    }
    if (buf_reserve(b, len) != 0) {
        return -1;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

char *buf_steal(struct buf *b)
{
    char *data = b->data;
    buf_init(b);
    return data;
}

struct arena_chunk
{
    struct arena_chunk *next;
    size_t used;
    size_t cap;
    max_align_t data[];
};

void arena_init(struct arena *a)
{
    a->head = NULL;
}

void *arena_alloc(struct arena *a, size_t size)
{
    struct arena_chunk *c = a->head;
    size_t align = sizeof(max_align_t);
    size_t rounded = (size + align - 1) / align * align;
    void *p;
    if (rounded == 0) {
        rounded = align;
    }
    if (c == NULL || c->cap - c->used < rounded) {
        size_t cap = rounded > 4096 ? rounded : 4096;
        c = cairn_malloc(sizeof(*c) + cap);
        if (c == NULL) {
            return NULL;
        }
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    p = (char *)c->data + c->used;
    c->used += rounded;
    return p;
}

void arena_free(struct arena *a)
{
    struct arena_chunk *c = a->head;
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        cairn_free(c);
        c = next;
    }
    a->head = NULL;
}
