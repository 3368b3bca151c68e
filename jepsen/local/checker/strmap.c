/*
 * strmap: see strmap.h.
 */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

void strmap_init(struct strmap *m)
{
    memset(m, 0, sizeof(*m));
}

void strmap_free(struct strmap *m)
{
    for (size_t k = 0; k < m->n; k++) {
        free(m->keys[k]);
    }
    free(m->keys);
    free(m->lens);
    free(m->hashes);
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

uint64_t strmap_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t k = 0; k < len; k++) {
        h ^= p[k];
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

uint32_t strmap_find(const struct strmap *m, const void *key, size_t len)
{
    if (m->n_slots == 0) {
        return STRMAP_NONE;
    }
    uint64_t h = strmap_hash(key, len);
    for (size_t s = h & (m->n_slots - 1);; s = (s + 1) & (m->n_slots - 1)) {
        uint32_t v = m->slots[s];
        if (v == 0) {
            return STRMAP_NONE;
        }
        uint32_t id = v - 1;
        if (m->hashes[id] == h && m->lens[id] == len && memcmp(m->keys[id], key, len) == 0) {
            return id;
        }
    }
}

static int rehash(struct strmap *m, size_t n_slots)
{
    uint32_t *slots = calloc(n_slots, sizeof(*slots));
    if (slots == NULL) {
        return -1;
    }
    for (size_t id = 0; id < m->n; id++) {
        size_t s = m->hashes[id] & (n_slots - 1);
        while (slots[s] != 0) {
            s = (s + 1) & (n_slots - 1);
        }
        slots[s] = (uint32_t)id + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->n_slots = n_slots;
    return 0;
}

uint32_t strmap_intern(struct strmap *m, const void *key, size_t len, int *added)
{
    uint32_t id = strmap_find(m, key, len);
    if (added != NULL) {
        *added = 0;
    }
    if (id != STRMAP_NONE) {
        return id;
    }
    if (m->n + 1 >= STRMAP_NONE) {
        return STRMAP_NONE;
    }
    if ((m->n + 1) * 2 > m->n_slots && rehash(m, m->n_slots == 0 ? 16 : m->n_slots * 2) != 0) {
        return STRMAP_NONE;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap == 0 ? 16 : m->cap * 2;
        char **keys = realloc(m->keys, cap * sizeof(*keys));
        if (keys != NULL) {
            m->keys = keys;
        }
        size_t *lens = realloc(m->lens, cap * sizeof(*lens));
        if (lens != NULL) {
            m->lens = lens;
        }
        uint64_t *hashes = realloc(m->hashes, cap * sizeof(*hashes));
        if (hashes != NULL) {
            m->hashes = hashes;
        }
        if (keys == NULL || lens == NULL || hashes == NULL) {
            return STRMAP_NONE;
        }
        m->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return STRMAP_NONE;
    }
    memcpy(copy, key, len);
    copy[len] = '\0';
    id = (uint32_t)m->n++;
    m->keys[id] = copy;
    m->lens[id] = len;
    m->hashes[id] = strmap_hash(key, len);
    size_t s = m->hashes[id] & (m->n_slots - 1);
    while (m->slots[s] != 0) {
        s = (s + 1) & (m->n_slots - 1);
    }
    m->slots[s] = id + 1;
    if (added != NULL) {
        *added = 1;
    }
    return id;
}
