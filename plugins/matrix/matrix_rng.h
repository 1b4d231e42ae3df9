/* matrix_rng.h - the random generator (a leaf: no Python objects, no
 * other plugin header).  One generator per interpreter lives in that
 * interpreter's module state.  Defined in matrix_rng.c.
 */
#ifndef BOCPY_PLUGIN_MATRIX_RNG_H
#define BOCPY_PLUGIN_MATRIX_RNG_H

#include <stdint.h>

typedef struct {
  uint64_t s[4];    /* xoshiro256** */
  double spare;     /* the second Box-Muller sample */
  int has_spare;
} mx_rng_t;

void mx_rng_seed(mx_rng_t *r, uint64_t seed);
void mx_rng_seed_entropy(mx_rng_t *r);
double mx_rng_uniform(mx_rng_t *r);  /* [0, 1) */
double mx_rng_normal(mx_rng_t *r);   /* N(0, 1) */

#endif /* BOCPY_PLUGIN_MATRIX_RNG_H */
