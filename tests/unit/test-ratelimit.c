/* SPDX-License-Identifier: MIT */
/* Token bucket with a fake clock: bursts, steady rate, decimal rates, drain. */
#include <math.h>
#include <stdbool.h>

#include "ratelimit.h"

#include "tap.h"

/* Count tokens taken when trying once per ms from start to end (exclusive). */
static unsigned taken_between(struct ratelimit *rl, uint64_t start, uint64_t end)
{
	unsigned n = 0;
	for (uint64_t t = start; t < end; t++)
		while (ratelimit_take(rl, t) == 0)
			n++;
	return n;
}

int main(void)
{
	tap_plan_none();
	struct ratelimit rl;

	ratelimit_init(&rl, 10, 10, 1000);
	is_int(taken_between(&rl, 1000, 1001), 10, "starts full: a burst of 10");
	is_int(ratelimit_take(&rl, 1000), 100, "then the next token is 100 ms away at 10/s");
	is_int(taken_between(&rl, 1001, 11001), 100, "10 s at 10/s gives 100 more");

	ratelimit_init(&rl, 30, 150, 0);
	unsigned n = taken_between(&rl, 0, 5000);
	is_int(n, 150 + 149, "150 per 5 s with a full bucket: burst + 5 s of refill");

	ratelimit_init(&rl, 0.5, 1, 0);
	is_int(ratelimit_take(&rl, 0), 0, "decimal rate: the first token");
	is_int(ratelimit_take(&rl, 0), 2000, "0.5/s: the next in 2000 ms");
	is_int(ratelimit_take(&rl, 1999), 1, "still 1 ms short at 1999");
	is_int(ratelimit_take(&rl, 2000), 0, "taken at 2000");

	ratelimit_init(&rl, 100, 50, 0);
	ratelimit_drain(&rl, 0);
	is_int(ratelimit_take(&rl, 0), 10, "drained: wait for the first token");
	ratelimit_refund(&rl);
	is_int(ratelimit_take(&rl, 0), 0, "a refunded token can be taken");

	ratelimit_init(&rl, 10, 10, 0);
	taken_between(&rl, 0, 1);
	ratelimit_set(&rl, 1000, 5, 0);
	is_int(taken_between(&rl, 1, 2), 1, "rate change keeps the clock: 1 token in 1 ms at 1000/s");
	is_int(taken_between(&rl, 100, 101), 5, "capacity is the new burst");

	/* AIMD: a 429 cuts the rate; one burst of 429s is one cut; it climbs back */
	ratelimit_init(&rl, 60, 10, 0);
	ratelimit_throttled(&rl, 0);
	ok(ratelimit_rate(&rl, 0) == 60 * RATELIMIT_DECREASE, "a 429 cuts 60/s to %g", ratelimit_rate(&rl, 0));
	ratelimit_throttled(&rl, 500);
	ok(fabs(ratelimit_rate(&rl, 500) - (51 + 0.5 * 1.2)) < 1e-9,
	   "a second 429 within a second does not cut again (%g)", ratelimit_rate(&rl, 500));
	ok(fabs(ratelimit_rate(&rl, 1000) - 52.2) < 1e-9, "climbs 2%% of the ceiling per second (%g)",
	   ratelimit_rate(&rl, 1000));
	ratelimit_throttled(&rl, 1000);
	ok(fabs(ratelimit_rate(&rl, 1000) - 52.2 * 0.85) < 1e-9, "a 429 a second later cuts again");
	ok(ratelimit_rate(&rl, 100000) == 60, "back at the configured rate, never above it");
	for (uint64_t t = 200000; t < 260000; t += 1000)
		ratelimit_throttled(&rl, t);
	double low = ratelimit_rate(&rl, 259000);
	ok(low >= 60 * RATELIMIT_FLOOR && low < 8,
	   "a 429 every second holds the rate low, not below the floor (%g)", low);

	/* at a cut rate, tokens come at that rate: 30/s for 10 s is 300 */
	ratelimit_init(&rl, 30, 2, 0);
	unsigned got = taken_between(&rl, 0, 10000);
	is_int(got, 2 + 299, "at the ceiling 30/s, 10 s give 300 tokens after the burst of 2");
	ratelimit_init(&rl, 60, 2, 0);
	ratelimit_throttled(&rl, 0); /* 51/s, climbing 1.2/s per s */
	got = taken_between(&rl, 0, 5000);
	ok(got >= 270 && got <= 272, "5 s climbing from 51/s give the mean rate's tokens (%u, want 2 + 268)", got);

	/* drain: no token before the pause ends */
	ratelimit_init(&rl, 100, 50, 0);
	ratelimit_drain(&rl, 2000);
	ok(ratelimit_take(&rl, 1000) > 0, "no token during the pause");
	is_int(taken_between(&rl, 2000, 2001), 0, "none at its end either");
	is_int(taken_between(&rl, 2001, 2101), 10, "then tokens at the rate again");

	ratelimit_init(&rl, 10, 10, 5000);
	is_int(taken_between(&rl, 4000, 4001), 10, "a clock going backwards does not mint tokens");
	is_int(ratelimit_take(&rl, 4500), 100, "nor does it break the next wait");
	/* the backoff every lane shares: full jitter within 1 s * 2^(n-1), 60 s at most */
	unsigned st = 12345u;
	bool in_range = true, varies = false;
	uint64_t first = ratelimit_backoff_ms(&st, 3);
	for (unsigned at = 1; at <= 12; at++)
		for (unsigned k = 0; k < 200; k++) {
			uint64_t b = ratelimit_backoff_ms(&st, at);
			uint64_t cap = at >= 7 ? 60000u : 1000u << (at - 1);
			in_range &= b >= 1 && b <= cap;
			varies |= at == 3 && b != first;
		}
	ok(in_range, "backoff within 1 ms .. 1 s * 2^(attempts-1), capped at 60 s");
	ok(varies, "and jittered");
	unsigned zero = 0;
	ok(ratelimit_backoff_ms(&zero, 1) >= 1 && zero != 0, "a zero state is not stuck");
	return tap_done();
}
