// A small, explicit-state random number generator (xorshift64* seeded through
// splitmix64). No global state: every stream is a Rng value the caller owns,
// so runs are reproducible and independent streams never interfere.
#ifndef RNG_H
#define RNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} Rng;

// A stream determined by (seed, stream id): e.g. one per parameter tensor, so
// that two models that share a tensor draw identical initial values for it.
Rng rng_make(uint64_t seed, uint64_t stream);
// Counter-based: the stream of item `index` of `counter` (e.g. a batch row of
// a step) under `key`, for draws that must not depend on the order or the
// process in which items are visited.
Rng rng_at(uint64_t key, uint64_t counter, uint64_t index);
uint64_t rng_u64(Rng *r);
double rng_uniform(Rng *r); // [0, 1)
double rng_normal(Rng *r);  // standard normal (Box-Muller)

#endif
