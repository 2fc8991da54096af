/* SPDX-License-Identifier: MIT */
/*
 * test-timeutil: durations (time_parse_duration) of the config and of
 * options, SPEC §8. (HTTP dates and Retry-After are tested with the Graph
 * replies in test-graph.c.)
 */
#include <errno.h>
#include <stdint.h>

#include "tap.h"
#include "timeutil.h"

#define S 1000ull
#define M (60 * S)
#define H (60 * M)
#define D (24 * H)

static void test_duration(void)
{
	static const struct {
		const char *text;
		int rc;
		uint64_t ms;
	} t[] = {
	    /* seconds, bare or with a unit */
	    {"30", 0, 30 * S},
	    {"30s", 0, 30 * S},
	    {"0", 0, 0},
	    {"0s", 0, 0},
	    {"007", 0, 7 * S},
	    {"5m", 0, 5 * M},
	    {"1h", 0, 1 * H},
	    {"2d", 0, 2 * D},
	    /* decimals */
	    {"1.5m", 0, 90 * S},
	    {"0.5s", 0, 500},
	    {"0.5", 0, 500},
	    {"0.001", 0, 1},
	    {"0.0009s", 0, 0}, /* below a ms: dropped */
	    {"1.25h", 0, 75 * M},
	    {"0.1d", 0, 144 * M},
	    {"2.000000000001s", 0, 2 * S}, /* digits past the ninth are checked, then dropped */
	    /* the cap: ten years of 365 days */
	    {"3650d", 0, 3650 * D},
	    {"3650.0d", 0, 3650 * D},
	    {"87600h", 0, 3650 * D},
	    {"315360000", 0, 3650 * D},
	    {"3650.00001d", -EINVAL, 0},
	    {"3651d", -EINVAL, 0},
	    {"315360001", -EINVAL, 0},
	    {"99999999999999999999999999s", -EINVAL, 0}, /* no overflow */
	    {"18446744073709551616", -EINVAL, 0},
	    /* empty, signs, spaces */
	    {"", -EINVAL, 0},
	    {"s", -EINVAL, 0},
	    {"-1s", -EINVAL, 0},
	    {"+1s", -EINVAL, 0},
	    {" 1s", -EINVAL, 0},
	    {"1s ", -EINVAL, 0},
	    {"1 s", -EINVAL, 0},
	    {"1\ts", -EINVAL, 0},
	    {"1s\n", -EINVAL, 0},
	    /* other units, case, several units, garbage */
	    {"1ms", -EINVAL, 0},
	    {"1w", -EINVAL, 0},
	    {"1y", -EINVAL, 0},
	    {"1H", -EINVAL, 0},
	    {"1S", -EINVAL, 0},
	    {"1M", -EINVAL, 0},
	    {"1h30m", -EINVAL, 0},
	    {"1ss", -EINVAL, 0},
	    {"1sx", -EINVAL, 0},
	    {"1x", -EINVAL, 0},
	    {"10,5s", -EINVAL, 0},
	    /* number shapes */
	    {".5s", -EINVAL, 0},
	    {"1.s", -EINVAL, 0},
	    {"1.", -EINVAL, 0},
	    {"1..5s", -EINVAL, 0},
	    {"1.5.5s", -EINVAL, 0},
	    {"1e3", -EINVAL, 0},
	    {"1e3s", -EINVAL, 0},
	    {"0x10", -EINVAL, 0},
	    {"nan", -EINVAL, 0},
	    {"NaN", -EINVAL, 0},
	    {"inf", -EINVAL, 0},
	    {"infinity", -EINVAL, 0},
	    {"-inf", -EINVAL, 0},
	    {"\xef\xbc\x91s", -EINVAL, 0}, /* full-width 1 */
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		/* the text as the test's name, a control character shown as '?' */
		char name[40];
		size_t n = 0;
		for (const char *p = t[i].text; *p && n + 1 < sizeof(name); p++)
			name[n++] = (unsigned char)*p < 0x20 ? '?' : *p;
		name[n] = '\0';

		uint64_t ms = 12345;
		int rc = time_parse_duration(t[i].text, &ms);
		is_int(rc, t[i].rc, "duration '%s': rc", name);
		if (t[i].rc == 0)
			is_int(ms, t[i].ms, "duration '%s': ms", name);
		else
			is_int(ms, 12345, "duration '%s': ret_ms untouched", name);
	}
	uint64_t ms = 7;
	is_int(time_parse_duration(NULL, &ms), -EINVAL, "duration NULL");
	is_int(ms, 7, "duration NULL: ret_ms untouched");
	is_int(TIME_DURATION_MAX_MS, 315360000000ull, "the cap is 3650 days in ms");
}

int main(void)
{
	tap_plan_none();
	test_duration();
	return tap_done();
}
