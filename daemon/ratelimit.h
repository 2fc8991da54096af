/* SPDX-License-Identifier: MIT */
/*
 * ratelimit: the tenant's token bucket, pure (the caller passes the time),
 * with additive-increase / multiplicative-decrease of its rate: a 429 cuts
 * the rate (at most once per second, so one burst of 429s is one cut), and
 * while no 429 comes the rate climbs back linearly to the configured one.
 * A configured rate above the real limit, or other apps spending the same
 * tenant limit, so settles just under what Graph accepts.
 */
#pragma once

#include <stdint.h>

#define RATELIMIT_DECREASE 0.85   /* rate *= this on a 429 */
#define RATELIMIT_INCREASE 0.02   /* per second, of the ceiling, per second */
#define RATELIMIT_FLOOR 0.05      /* never below this share of the ceiling */
#define RATELIMIT_CUT_SPACING_MS 1000u

struct ratelimit {
	double ceiling;    /* configured rate, tokens per second */
	double rate;       /* current rate, <= ceiling */
	double burst;      /* capacity */
	double tokens;     /* available now */
	uint64_t last_ms;  /* when tokens and rate were last brought up to date */
	uint64_t last_cut_ms;
	uint64_t cuts;     /* decreases so far */
};

/* Starts full, at the ceiling. */
void ratelimit_init(struct ratelimit *rl, double rate, unsigned burst, uint64_t now_ms);
/* New configured rate/capacity; the current rate is capped to it. */
void ratelimit_set(struct ratelimit *rl, double rate, unsigned burst, uint64_t now_ms);
/* Take one token: 0 when taken, else the ms until one will be available. */
uint64_t ratelimit_take(struct ratelimit *rl, uint64_t now_ms);
/* Take n tokens at once (at most burst): 0 when taken, else the ms until
 * that many will be available. */
uint64_t ratelimit_take_n(struct ratelimit *rl, unsigned n, uint64_t now_ms);
/* Give a token back (a taken token that was not used). */
void ratelimit_refund(struct ratelimit *rl);
/* Drop all tokens until until_ms: after a Retry-After pause sending restarts
 * gently instead of with a burst. */
void ratelimit_drain(struct ratelimit *rl, uint64_t until_ms);
/* Graph said 429: cut the rate (once per RATELIMIT_CUT_SPACING_MS). */
void ratelimit_throttled(struct ratelimit *rl, uint64_t now_ms);
/* The current rate, brought up to date. */
double ratelimit_rate(struct ratelimit *rl, uint64_t now_ms);

/* After a transient failure: full-jitter exponential backoff, 1 ms up to
 * 1 s * 2^(attempts-1), at most 60 s. *rand_state: the caller's xorshift
 * state (jitter only, no security meaning; never 0). Pure. */
uint64_t ratelimit_backoff_ms(unsigned *rand_state, unsigned attempts);
