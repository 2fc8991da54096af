/* SPDX-License-Identifier: MIT */
#include "ratelimit.h"

#include <math.h>

static void refill(struct ratelimit *rl, uint64_t now_ms)
{
	if (now_ms <= rl->last_ms)
		return;
	rl->tokens += (double)(now_ms - rl->last_ms) * rl->rate / 1000.0;
	if (rl->tokens > rl->burst)
		rl->tokens = rl->burst;
	rl->last_ms = now_ms;
}

void ratelimit_init(struct ratelimit *rl, double rate, unsigned burst, uint64_t now_ms)
{
	rl->rate = rate;
	rl->burst = burst;
	rl->tokens = burst;
	rl->last_ms = now_ms;
}

void ratelimit_set(struct ratelimit *rl, double rate, unsigned burst, uint64_t now_ms)
{
	refill(rl, now_ms);
	rl->rate = rate;
	rl->burst = burst;
	if (rl->tokens > rl->burst)
		rl->tokens = rl->burst;
}

uint64_t ratelimit_take(struct ratelimit *rl, uint64_t now_ms)
{
	refill(rl, now_ms);
	if (rl->tokens >= 1.0) {
		rl->tokens -= 1.0;
		return 0;
	}
	double wait = ceil((1.0 - rl->tokens) * 1000.0 / rl->rate);
	return wait < 1.0 ? 1 : (uint64_t)wait;
}

void ratelimit_refund(struct ratelimit *rl)
{
	rl->tokens += 1.0;
	if (rl->tokens > rl->burst)
		rl->tokens = rl->burst;
}

void ratelimit_drain(struct ratelimit *rl, uint64_t now_ms)
{
	refill(rl, now_ms);
	rl->tokens = 0;
}
