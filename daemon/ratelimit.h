/* SPDX-License-Identifier: MIT */
/*
 * ratelimit: a token bucket, pure (the caller passes the time). Tokens are
 * counted in thousandths so that decimal rates (0.5/s) work exactly enough.
 */
#pragma once

#include <stdint.h>

struct ratelimit {
	double rate;       /* tokens per second */
	double burst;      /* capacity */
	double tokens;     /* available now */
	uint64_t last_ms;  /* when tokens was last brought up to date */
};

/* Starts full. */
void ratelimit_init(struct ratelimit *rl, double rate, unsigned burst, uint64_t now_ms);
/* Change the rate/capacity, keeping the tokens earned so far (capped). */
void ratelimit_set(struct ratelimit *rl, double rate, unsigned burst, uint64_t now_ms);
/* Take one token: 0 when taken, else the ms until one will be available. */
uint64_t ratelimit_take(struct ratelimit *rl, uint64_t now_ms);
/* Give a token back (a taken token that was not used). */
void ratelimit_refund(struct ratelimit *rl);
/* Drop all tokens: after a Retry-After pause sending restarts gently. */
void ratelimit_drain(struct ratelimit *rl, uint64_t now_ms);
