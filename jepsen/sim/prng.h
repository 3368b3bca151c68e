/*
 * prng: the simulation's only source of randomness. xoshiro256** seeded
 * through splitmix64, so that one 64-bit seed fixes every choice of a run
 * (never rand(): its state is global and its sequence differs between C
 * libraries). Both generators are public-domain algorithms by Vigna and
 * Blackman; this is our own implementation of them.
 */
#ifndef CAIRN_SIM_PRNG_H
#define CAIRN_SIM_PRNG_H

#include <stdbool.h>
#include <stdint.h>

struct prng
{
    uint64_t s[4];
};

static inline uint64_t prng_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void prng_seed(struct prng *p, uint64_t seed)
{
    uint64_t x = seed;
    unsigned i;
    for (i = 0; i < 4; i++) {
        p->s[i] = prng_splitmix64(&x);
    }
}

static inline uint64_t prng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t prng_next(struct prng *p)
{
    uint64_t *s = p->s;
    uint64_t result = prng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = prng_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n), n > 0 (the modulo bias is irrelevant at these sizes). */
static inline uint64_t prng_below(struct prng *p, uint64_t n)
{
    return prng_next(p) % n;
}

/* Uniform in [lo, hi], lo <= hi. */
static inline int64_t prng_range(struct prng *p, int64_t lo, int64_t hi)
{
    return lo + (int64_t)prng_below(p, (uint64_t)(hi - lo) + 1);
}

/* True with probability percent / 100. */
static inline bool prng_chance(struct prng *p, unsigned percent)
{
    return prng_below(p, 100) < percent;
}

#endif /* CAIRN_SIM_PRNG_H */
