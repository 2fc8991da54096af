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
/* Parse an HTTP date (IMF-fixdate, RFC 9110) into ms since the epoch.
 * 0 or -EINVAL. */
int time_parse_http_date(const char *text, uint64_t *ret_ms);
