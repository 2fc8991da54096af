/* SPDX-License-Identifier: MIT */
/*
 * rng: the simulator's one source of randomness. A splitmix64 sequence whose
 * state is advanced atomically, so any thread may draw without a lock and a
 * given --seed replays the same sequence for the same order of draws.
 */
#pragma once

#include <stdint.h>

#define RNG_UUID_LEN 36

void rng_seed(uint64_t seed);
uint64_t rng_next(void);
/* Uniform in [0, 100). */
double rng_percent(void);
/* Uniform in [0, n); 0 when n == 0. */
uint64_t rng_below(uint64_t n);
/* A random version 4 UUID, lowercase, NUL-terminated. */
void rng_uuid(char out[RNG_UUID_LEN + 1]);
/* A UUID derived from a name: the same name always gives the same UUID
 * (version 5 layout, but an FNV/splitmix hash rather than SHA-1). */
void rng_uuid_from_name(const char *name, char out[RNG_UUID_LEN + 1]);
/* n random lowercase hex digits plus a NUL into out (n + 1 bytes). */
void rng_hex(char *out, unsigned n);
