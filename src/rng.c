#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

Rng rng_make(uint64_t seed, uint64_t stream) {
    Rng r = {splitmix64(splitmix64(seed) ^ splitmix64(stream + 0x5851f42d4c957f2dULL))};
    if (r.state == 0) r.state = 0x2545f4914f6cdd1dULL; // xorshift must not start at 0
    return r;
}

Rng rng_at(uint64_t key, uint64_t counter, uint64_t index) {
    return rng_make(rng_make(key, counter).state, index);
}

uint64_t rng_u64(Rng *r) {
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return r->state * 0x2545f4914f6cdd1dULL;
}

double rng_uniform(Rng *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

double rng_normal(Rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2); // 2 pi u2
}
