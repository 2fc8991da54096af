/* SPDX-License-Identifier: MIT */
#include "rng.h"

#include <stdatomic.h>

#define GOLDEN 0x9e3779b97f4a7c15u

static _Atomic uint64_t rng_state;

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

void rng_seed(uint64_t seed)
{
	atomic_store(&rng_state, seed);
}

uint64_t rng_next(void)
{
	uint64_t z = atomic_fetch_add_explicit(&rng_state, GOLDEN, memory_order_relaxed) + GOLDEN;
	return mix(z);
}

double rng_percent(void)
{
	return (double)(rng_next() >> 11) * 0x1.0p-53 * 100.0;
}

uint64_t rng_below(uint64_t n)
{
	if (n == 0)
		return 0;
	return rng_next() % n;
}

static const char hex_digits[] = "0123456789abcdef";

/* hi and lo as 8-4-4-4-12 hex digits (hand-rolled: snprintf was a few
 * percent of the simulator's CPU). */
static void format_uuid(uint64_t hi, uint64_t lo, unsigned version, char out[RNG_UUID_LEN + 1])
{
	hi = (hi & ~(uint64_t)0xf000) | ((uint64_t)version << 12);
	lo = (lo & ~((uint64_t)0xc << 60)) | ((uint64_t)0x8 << 60);
	char *p = out;
	for (int i = 0; i < 32; i++) {
		if (i == 8 || i == 12 || i == 16 || i == 20)
			*p++ = '-';
		uint64_t word = i < 16 ? hi : lo;
		*p++ = hex_digits[(word >> (60 - 4 * (i % 16))) & 0xf];
	}
	*p = '\0';
}

void rng_uuid(char out[RNG_UUID_LEN + 1])
{
	uint64_t hi = rng_next();
	format_uuid(hi, rng_next(), 4, out);
}

static uint64_t fnv1a(const char *s, uint64_t h)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3u;
	}
	return h;
}

void rng_uuid_from_name(const char *name, char out[RNG_UUID_LEN + 1])
{
	uint64_t a = mix(fnv1a(name, 0xcbf29ce484222325u));
	uint64_t b = mix(fnv1a(name, 0x84222325cbf29ce4u) ^ a);
	format_uuid(a, b, 5, out);
}

void rng_hex(char *out, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++) {
		if (i % 16 == 0)
			v = rng_next();
		out[i] = hex_digits[v & 0xf];
		v >>= 4;
	}
	out[n] = '\0';
}
