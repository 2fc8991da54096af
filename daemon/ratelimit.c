/* SPDX-License-Identifier: MIT */
#include "ratelimit.h"

#include <math.h>

#define EPSILON 1e-9

static void update(struct ratelimit *rl, uint64_t now_ms)
{
	if (now_ms <= rl->last_ms)
		return;
	double ms = (double)(now_ms - rl->last_ms);
	/* the linear climb, and tokens at the mean rate over the interval */
	double next = rl->rate + RATELIMIT_INCREASE * rl->ceiling * ms / 1000.0;
	if (next > rl->ceiling)
		next = rl->ceiling;
	rl->tokens += ms * (rl->rate + next) / 2000.0;
	rl->rate = next;
	if (rl->tokens > rl->burst)
		rl->tokens = rl->burst;
	rl->last_ms = now_ms;
}

void ratelimit_init(struct ratelimit *rl, double rate, unsigned burst, uint64_t now_ms)
{
	rl->ceiling = rate;
	rl->rate = rate;
	rl->burst = burst;
	rl->tokens = burst;
	rl->last_ms = now_ms;
	rl->last_cut_ms = 0;
	rl->cuts = 0;
}

void ratelimit_set(struct ratelimit *rl, double rate, unsigned burst, uint64_t now_ms)
{
	update(rl, now_ms);
	/* not throttled: run at the new ceiling; throttled: keep climbing from here */
	if (rl->rate >= rl->ceiling || rl->rate > rate)
		rl->rate = rate;
	rl->ceiling = rate;
	rl->burst = burst;
	if (rl->tokens > rl->burst)
		rl->tokens = rl->burst;
}

uint64_t ratelimit_take(struct ratelimit *rl, uint64_t now_ms)
{
	return ratelimit_take_n(rl, 1, now_ms);
}

uint64_t ratelimit_take_n(struct ratelimit *rl, unsigned n, uint64_t now_ms)
{
	update(rl, now_ms);
	double want = n < rl->burst ? (double)n : rl->burst;
	if (rl->tokens >= want - EPSILON) {
		rl->tokens -= want;
		if (rl->tokens < 0)
			rl->tokens = 0;
		return 0;
	}
	double wait = ceil((want - rl->tokens) * 1000.0 / rl->rate);
	return wait < 1.0 ? 1 : (uint64_t)wait;
}

void ratelimit_refund(struct ratelimit *rl)
{
	rl->tokens += 1.0;
	if (rl->tokens > rl->burst)
		rl->tokens = rl->burst;
}

void ratelimit_drain(struct ratelimit *rl, uint64_t until_ms)
{
	update(rl, until_ms);
	rl->tokens = 0;
}

void ratelimit_throttled(struct ratelimit *rl, uint64_t now_ms)
{
	update(rl, now_ms);
	if (rl->cuts > 0 && now_ms < rl->last_cut_ms + RATELIMIT_CUT_SPACING_MS)
		return;
	rl->rate *= RATELIMIT_DECREASE;
	if (rl->rate < rl->ceiling * RATELIMIT_FLOOR)
		rl->rate = rl->ceiling * RATELIMIT_FLOOR;
	rl->last_cut_ms = now_ms;
	rl->cuts++;
}

double ratelimit_rate(struct ratelimit *rl, uint64_t now_ms)
{
	update(rl, now_ms);
	return rl->rate;
}

uint64_t ratelimit_backoff_ms(unsigned *rand_state, unsigned attempts)
{
	const uint64_t base = 1000u, ceiling = 60000u;
	unsigned x = *rand_state ? *rand_state : 1u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*rand_state = x;
	uint64_t cap = base;
	for (unsigned i = 1; i < attempts && cap < ceiling; i++)
		cap *= 2;
	if (cap > ceiling)
		cap = ceiling;
	return 1 + x % cap;
}
