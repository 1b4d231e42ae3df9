/* matrix_rng.c - xoshiro256** seeded through splitmix64, normal samples by
 * the Box-Muller transform (see matrix_rng.h).
 */
#include "matrix_rng.h"

#include <math.h>
#include <stddef.h>
#include <stdatomic.h>
#include <time.h>

/* xoshiro256** (Blackman & Vigna); the second Box-Muller sample of each
 * pair is kept for the next call. */

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(mx_rng_t *r) {
  uint64_t *s = r->s;
  const uint64_t result = rotl64(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl64(s[3], 45);
  return result;
}

void mx_rng_seed(mx_rng_t *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) {
    r->s[i] = splitmix64(&x);
  }
  r->has_spare = 0;
  r->spare = 0.0;
}

/* Distinguishes generators seeded in the same nanosecond. */
static _Atomic uint64_t mx_seed_counter;

void mx_rng_seed_entropy(mx_rng_t *r) {
  struct timespec ts = {0, 0};
  (void)timespec_get(&ts, TIME_UTC);
  /* relaxed: only needs to be unique, not ordered. */
  uint64_t n = atomic_fetch_add_explicit(&mx_seed_counter, 1,
                                         memory_order_relaxed);
  uint64_t x = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
  x ^= (uint64_t)(uintptr_t)r * 0x9e3779b97f4a7c15ULL;
  x ^= n * 0xd1b54a32d192ed03ULL;
  x ^= (uint64_t)clock();
  mx_rng_seed(r, splitmix64(&x));
}

double mx_rng_uniform(mx_rng_t *r) {
  return (double)(rng_next(r) >> 11) * 0x1.0p-53; /* [0, 1) */
}

double mx_rng_normal(mx_rng_t *r) {
  if (r->has_spare) {
    r->has_spare = 0;
    return r->spare;
  }
  /* u1 in (0, 1] so that log(u1) is finite. */
  const double u1 = (double)((rng_next(r) >> 11) + 1) * 0x1.0p-53;
  const double u2 = mx_rng_uniform(r);
  const double radius = sqrt(-2.0 * log(u1));
  const double theta = 6.283185307179586476925286766559 * u2;
  r->spare = radius * sin(theta);
  r->has_spare = 1;
  return radius * cos(theta);
}

