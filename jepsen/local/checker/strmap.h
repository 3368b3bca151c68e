/*
 * strmap: interns byte strings as dense ids (0, 1, 2... in insertion order).
 * Open addressing with linear probing; the map copies every key it keeps.
 * No domain knowledge: the checks use it for keys, values and (revision,
 * key) pairs.
 */
#ifndef CAIRN_CHECKER_STRMAP_H
#define CAIRN_CHECKER_STRMAP_H

#include <stddef.h>
#include <stdint.h>

#define STRMAP_NONE UINT32_MAX

struct strmap
{
    uint32_t *slots;  /* owned: id + 1, 0 = empty */
    size_t n_slots;   /* a power of two */
    char **keys;      /* owned: by id, each owned, NUL-terminated */
    size_t *lens;     /* owned: by id */
    uint64_t *hashes; /* owned: by id */
    size_t n;         /* ids handed out */
    size_t cap;
};

void strmap_init(struct strmap *m);
void strmap_free(struct strmap *m);

/* The id of key, or STRMAP_NONE. */
uint32_t strmap_find(const struct strmap *m, const void *key, size_t len);

/* The id of key, adding a copy when absent (*added tells which). Returns
 * STRMAP_NONE when memory runs out. */
uint32_t strmap_intern(struct strmap *m, const void *key, size_t len, int *added);

/* 64-bit FNV-1a followed by a finalizer; also used for the search cache. */
uint64_t strmap_hash(const void *key, size_t len);

#endif /* CAIRN_CHECKER_STRMAP_H */
