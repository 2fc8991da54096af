/* SPDX-License-Identifier: MIT */
/* timeutil: the one time unit (uint64_t milliseconds) and RFC 3339 text. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define TIME_RFC3339_MAX 32

/* Wall clock, ms since the epoch. */
uint64_t time_now_ms(void);
/* Monotonic clock, ms. */
uint64_t time_mono_ms(void);
/* "2026-11-28T23:50:01.123Z" into out (at least TIME_RFC3339_MAX bytes). */
void time_format_rfc3339(uint64_t ms, char out[TIME_RFC3339_MAX]);
/* Parse an HTTP date (RFC 9110 §5.6.7: IMF-fixdate, and the obsolete
 * RFC 850 and asctime forms) into ms since the epoch. now_ms places an
 * RFC 850 two-digit year: the year with those digits that is not more than
 * 50 years after now. The whole text must be the date. 0 or -EINVAL. */
int time_parse_http_date(const char *text, uint64_t now_ms, uint64_t *ret_ms);
/* A Retry-After field value (RFC 9110 §10.2.3: delay-seconds = 1*DIGIT, or
 * an HTTP-date), len bytes (need not be NUL-terminated; surrounding white
 * space is allowed), as a wait in ms from now_ms: a date in the past is 0, a
 * wait past cap_ms is cap_ms. -EINVAL for anything else (a sign, a space
 * inside, garbage): the caller's usual backoff applies. */
int time_parse_retry_after(const char *text, size_t len, uint64_t now_ms, uint64_t cap_ms,
			   uint64_t *ret_ms);
/* Durations in the config and in options (SPEC §8): a number of seconds,
 * or a number with the unit s, m, h or d: "30", "30s", "1.5m", "1h", "2d".
 * The number is 1*DIGIT ["." 1*DIGIT]; the result is in ms, fractions of a
 * ms dropped ("0.0001s" is 0). -EINVAL for anything else: NULL or empty, a
 * sign, white space anywhere (the caller trims), another unit ("ms", "w",
 * "H"), a second unit or trailing garbage ("1h30m", "5s "), exponents, hex,
 * NaN/inf, or more than TIME_DURATION_MAX_MS. A 0 is accepted; minimums are
 * the caller's. *ret_ms is set on success only. */
#define TIME_DURATION_MAX_MS (3650ull * 24 * 3600 * 1000) /* ten years of 365 days */
int time_parse_duration(const char *text, uint64_t *ret_ms);
