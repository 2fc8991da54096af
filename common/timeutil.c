/* SPDX-License-Identifier: MIT */
#include "timeutil.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t time_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t time_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void time_format_rfc3339(uint64_t ms, char out[TIME_RFC3339_MAX])
{
	time_t s = (time_t)(ms / 1000u);
	struct tm tm;
	gmtime_r(&s, &tm);
	size_t n = strftime(out, TIME_RFC3339_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, TIME_RFC3339_MAX - n, ".%03uZ", (unsigned)(ms % 1000u));
}

/* ---- HTTP dates (RFC 9110 §5.6.7), read by hand: strptime() depends on
 * the locale and takes white space and numbers more loosely than the
 * grammar allows. */

struct date_scan {
	const char *p, *end;
};

static bool lit(struct date_scan *d, const char *s)
{
	size_t n = strlen(s);
	if ((size_t)(d->end - d->p) < n || memcmp(d->p, s, n) != 0)
		return false;
	d->p += n;
	return true;
}

/* Exactly n digits. */
static bool digits(struct date_scan *d, unsigned n, unsigned *ret)
{
	unsigned v = 0;
	if ((size_t)(d->end - d->p) < n)
		return false;
	for (unsigned i = 0; i < n; i++) {
		if (d->p[i] < '0' || d->p[i] > '9')
			return false;
		v = v * 10 + (unsigned)(d->p[i] - '0');
	}
	d->p += n;
	*ret = v;
	return true;
}

/* One of names (case-sensitive, as the grammar says); its index. */
static bool name_of(struct date_scan *d, const char *const *names, unsigned n, unsigned *ret)
{
	for (unsigned i = 0; i < n; i++) {
		if (lit(d, names[i])) {
			*ret = i;
			return true;
		}
	}
	return false;
}

static const char *const day_short[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const day_long[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
				       "Friday", "Saturday", "Sunday"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* time-of-day = hour ":" minute ":" second */
static bool time_of_day(struct date_scan *d, unsigned *h, unsigned *m, unsigned *s)
{
	return digits(d, 2, h) && lit(d, ":") && digits(d, 2, m) && lit(d, ":") && digits(d, 2, s);
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static unsigned month_days(unsigned year, unsigned month)
{
	static const unsigned char n[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	return month == 2 && leap ? 29 : n[month - 1];
}

int time_parse_http_date(const char *text, uint64_t now_ms, uint64_t *ret_ms)
{
	struct date_scan d = {text, text + strlen(text)};
	unsigned wday, day = 0, month = 0, year = 0, hour = 0, min = 0, sec = 0;
	bool ok;
	if (name_of(&d, day_long, 7, &wday)) {
		/* rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT */
		unsigned yy;
		ok = lit(&d, ", ") && digits(&d, 2, &day) && lit(&d, "-") &&
		     name_of(&d, months, 12, &month) && lit(&d, "-") && digits(&d, 2, &yy) &&
		     lit(&d, " ") && time_of_day(&d, &hour, &min, &sec) && lit(&d, " GMT");
		if (ok) {
			/* RFC 9110: a year more than 50 years ahead is the most recent
			 * past one with the same last two digits */
			time_t now_s = (time_t)(now_ms / 1000u);
			struct tm tm;
			gmtime_r(&now_s, &tm);
			unsigned now_year = (unsigned)tm.tm_year + 1900u;
			year = now_year / 100u * 100u + yy;
			if (year > now_year + 50)
				year -= 100;
			else if (year + 100 <= now_year + 50)
				year += 100;
		}
	} else if (name_of(&d, day_short, 7, &wday)) {
		if (lit(&d, ", ")) {
			/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
			ok = digits(&d, 2, &day) && lit(&d, " ") && name_of(&d, months, 12, &month) &&
			     lit(&d, " ") && digits(&d, 4, &year) && lit(&d, " ") &&
			     time_of_day(&d, &hour, &min, &sec) && lit(&d, " GMT");
		} else {
			/* asctime-date: Sun Nov  6 08:49:37 1994 (day: 2DIGIT or SP DIGIT) */
			ok = lit(&d, " ") && name_of(&d, months, 12, &month) && lit(&d, " ");
			if (ok && lit(&d, " "))
				ok = digits(&d, 1, &day);
			else
				ok = ok && digits(&d, 2, &day);
			ok = ok && lit(&d, " ") && time_of_day(&d, &hour, &min, &sec) && lit(&d, " ") &&
			     digits(&d, 4, &year);
		}
	} else {
		return -EINVAL;
	}
	month++;
	/* second 60: a leap second, which the epoch count folds into the next */
	if (!ok || d.p != d.end || day < 1 || day > month_days(year, month) || hour > 23 ||
	    min > 59 || sec > 60)
		return -EINVAL;
	int64_t s = days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec;
	*ret_ms = s > 0 ? (uint64_t)s * 1000u : 0; /* before 1970: long past */
	return 0;
}

int time_parse_retry_after(const char *text, size_t len, uint64_t now_ms, uint64_t cap_ms,
			   uint64_t *ret_ms)
{
	/* the field value without the optional white space around it */
	while (len && (*text == ' ' || *text == '\t')) {
		text++;
		len--;
	}
	while (len && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\r' ||
		       text[len - 1] == '\n'))
		len--;
	if (len == 0)
		return -EINVAL;
	if (text[0] >= '0' && text[0] <= '9') {
		/* delay-seconds = 1*DIGIT: any number of digits, saturating */
		uint64_t ms = 0;
		for (size_t i = 0; i < len; i++) {
			if (text[i] < '0' || text[i] > '9')
				return -EINVAL;
			if (ms <= cap_ms)
				ms = ms * 10 + (uint64_t)(text[i] - '0') * 1000u;
		}
		*ret_ms = ms > cap_ms ? cap_ms : ms;
		return 0;
	}
	char date[64];
	if (len >= sizeof(date) || memchr(text, '\0', len))
		return -EINVAL;
	memcpy(date, text, len);
	date[len] = '\0';
	uint64_t at;
	if (time_parse_http_date(date, now_ms, &at) < 0)
		return -EINVAL;
	uint64_t wait = at > now_ms ? at - now_ms : 0;
	*ret_ms = wait > cap_ms ? cap_ms : wait;
	return 0;
}

/* ---- durations ---- */

int time_parse_duration(const char *text, uint64_t *ret_ms)
{
	/* at most this many fraction digits count; more are checked, then dropped */
	enum { FRAC_DIGITS = 9 };
	uint64_t whole = 0, frac = 0, frac_scale = 1;
	const char *p = text;

	if (!p || *p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		whole = whole * 10 + (uint64_t)(*p - '0');
		if (whole > TIME_DURATION_MAX_MS / 1000u)
			return -EINVAL; /* over the cap whatever the unit */
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (unsigned n = 0; *p >= '0' && *p <= '9'; p++, n++) {
			if (n < FRAC_DIGITS) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				frac_scale *= 10;
			}
		}
	}

	uint64_t unit_ms;
	switch (*p) {
	case '\0':
	case 's':
		unit_ms = 1000u;
		break;
	case 'm':
		unit_ms = 60u * 1000u;
		break;
	case 'h':
		unit_ms = 3600u * 1000u;
		break;
	case 'd':
		unit_ms = 24u * 3600u * 1000u;
		break;
	default:
		return -EINVAL;
	}
	if (*p && p[1] != '\0')
		return -EINVAL;

	/* whole <= 315,360,000 and unit_ms <= 86,400,000: no overflow; frac <
	 * frac_scale <= 10^9, so frac * unit_ms < 8.64e16 */
	uint64_t ms = whole * unit_ms + frac * unit_ms / frac_scale;
	if (ms > TIME_DURATION_MAX_MS)
		return -EINVAL;
	*ret_ms = ms;
	return 0;
}
