/* SPDX-License-Identifier: MIT */
/*
 * valid: the value rules of one cell or option (see valid.h). Moved out of
 * csv.c, which keeps the reader; the email, URL, language and boolean rules
 * are unchanged.
 */
#include "valid.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "vis.h"

/*
 * Offset of the first byte of s[0..n) that is not well-formed UTF-8
 * (overlong forms, surrogates and code points past U+10FFFF included), or n.
 * NUL bytes count as valid here.
 */
size_t valid_utf8_span(const void *data, size_t n)
{
	const unsigned char *s = data;
	size_t i = 0;

	while (i < n) {
		/* ASCII fast path, eight bytes at a time */
		while (i + 8 <= n) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (w & UINT64_C(0x8080808080808080))
				break;
			i += 8;
		}
		if (i >= n)
			break;
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		unsigned char lo = 0x80, hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else {
			return i;
		}
		if (n - i < len)
			return i;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return i;
		for (size_t k = 2; k < len; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
		i += len;
	}
	return n;
}

/* The code point of the well-formed sequence at s (s[0] >= 0x80); *ret_len its length. */
static uint32_t utf8_decode(const unsigned char *s, size_t *ret_len)
{
	if (s[0] < 0xe0) {
		*ret_len = 2;
		return (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
	}
	if (s[0] < 0xf0) {
		*ret_len = 3;
		return (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
	}
	*ret_len = 4;
	return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
	       (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
}

/*
 * Non-ASCII characters that never belong in an address but slip in from web
 * pages and input methods: C1 controls, Unicode spaces and invisible
 * formatting characters, full-width ASCII (an IME's '＠').
 */
static const char *unicode_why(uint32_t cp)
{
	if (cp <= 0x9f)
		return "contains a control character";
	if (cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200f) ||
	    (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x205f && cp <= 0x206f) || cp == 0x3000 ||
	    cp == 0xfeff)
		return "contains a Unicode space or invisible character";
	if (cp >= 0xff01 && cp <= 0xff5e)
		return "contains a full-width character";
	return NULL;
}

/* ---- public checks ---- */

static const char *const forbidden_why[128] = {
    ['~'] = "'~' is not permitted",   ['!'] = "'!' is not permitted",
    ['#'] = "'#' is not permitted",   ['$'] = "'$' is not permitted",
    ['%'] = "'%' is not permitted",   ['^'] = "'^' is not permitted",
    ['&'] = "'&' is not permitted",   ['*'] = "'*' is not permitted",
    ['('] = "'(' is not permitted",   [')'] = "')' is not permitted",
    ['+'] = "'+' is not permitted",   ['='] = "'=' is not permitted",
    ['['] = "'[' is not permitted",   [']'] = "']' is not permitted",
    ['{'] = "'{' is not permitted",   ['}'] = "'}' is not permitted",
    ['\\'] = "'\\' is not permitted", ['/'] = "'/' is not permitted",
    ['|'] = "'|' is not permitted",   [';'] = "';' is not permitted",
    [':'] = "':' is not permitted",   ['"'] = "'\"' is not permitted",
    ['<'] = "'<' is not permitted",   ['>'] = "'>' is not permitted",
    ['?'] = "'?' is not permitted",   [','] = "',' is not permitted",
};

static bool fail(const char **ret_why, const char *why)
{
	if (ret_why)
		*ret_why = why;
	return false;
}

static bool domain_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c >= 0x80;
}

bool csv_email_check(const char *email, const char **ret_why)
{
	if (!email || !*email)
		return fail(ret_why, "empty");

	size_t len = strlen(email);
	if (len > CSV_MAX_EMAIL_BYTES)
		return fail(ret_why, "longer than 254 bytes");

	const unsigned char *s = (const unsigned char *)email;
	const unsigned char *at = NULL;
	size_t n_at = 0;
	bool high = false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		if (c <= ' ' || c == 0x7f)
			return fail(ret_why, "contains a space or control character");
		if (c >= 0x80) {
			high = true;
			continue;
		}
		if (forbidden_why[c])
			return fail(ret_why, forbidden_why[c]);
		if (c == '@') {
			n_at++;
			if (!at)
				at = s + i;
		}
	}
	if (high) {
		if (valid_utf8_span(s, len) != len)
			return fail(ret_why, "invalid UTF-8");
		for (size_t i = 0; i < len;) {
			size_t n = 1;
			if (s[i] >= 0x80) {
				const char *why = unicode_why(utf8_decode(s + i, &n));
				if (why)
					return fail(ret_why, why);
			}
			i += n;
		}
	}
	if (n_at == 0)
		return fail(ret_why, "missing '@'");
	if (n_at > 1)
		return fail(ret_why, "more than one '@'");

	size_t local_len = (size_t)(at - s);
	if (local_len == 0)
		return fail(ret_why, "nothing before '@'");
	if (local_len > 64)
		return fail(ret_why, "user name longer than 64 bytes");
	if (s[0] == '.')
		return fail(ret_why, "user name starts with '.'");
	if (s[0] == '-')
		return fail(ret_why, "user name starts with '-'");
	if (at[-1] == '.')
		return fail(ret_why, "user name ends with '.'");
	if (at[-1] == '-')
		return fail(ret_why, "user name ends with '-'");
	for (size_t i = 1; i < local_len; i++)
		if (s[i] == '.' && s[i - 1] == '.')
			return fail(ret_why, "two consecutive periods in the user name");

	const unsigned char *d = at + 1, *end = s + len;
	if (d == end)
		return fail(ret_why, "nothing after '@'");
	if (!memchr(d, '.', (size_t)(end - d)))
		return fail(ret_why, "domain has no '.'");
	while (d <= end) {
		const unsigned char *label = d;
		while (d < end && *d != '.') {
			if (!domain_byte(*d))
				return fail(ret_why, "invalid character in the domain");
			d++;
		}
		size_t n = (size_t)(d - label);
		if (n == 0)
			return fail(ret_why, "empty label in the domain");
		if (n > 63)
			return fail(ret_why, "domain label longer than 63 bytes");
		if (label[0] == '-' || d[-1] == '-')
			return fail(ret_why, "domain label starts or ends with '-'");
		/* RFC 3696 §2: a top-level domain is never all digits */
		if (d == end && strspn((const char *)label, "0123456789") >= n)
			return fail(ret_why, "the top-level domain is all digits");
		d++; /* past the '.' or the end */
	}
	return true;
}

bool csv_url_check(const char *url, const char **ret_why)
{
	if (!url || !*url)
		return fail(ret_why, "empty");

	size_t len = strlen(url);
	if (len > CSV_MAX_URL_BYTES)
		return fail(ret_why, "longer than 2048 bytes");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= ' ' || c == 0x7f)
			return fail(ret_why, "contains a space or control character");
	}

	size_t skip;
	if (ascii_prefix(url, "https://"))
		skip = 8;
	else if (ascii_prefix(url, "http://"))
		skip = 7;
	else
		return fail(ret_why, "not an absolute http:// or https:// URL");

	const char *auth = url + skip;
	size_t auth_len = strcspn(auth, "/?#");
	/* drop userinfo */
	for (size_t i = auth_len; i > 0; i--) {
		if (auth[i - 1] == '@') {
			auth += i;
			auth_len -= i;
			break;
		}
	}
	size_t host_len;
	if (auth_len > 0 && auth[0] == '[') {
		const char *close = memchr(auth, ']', auth_len);
		if (!close)
			return fail(ret_why, "unterminated '[' in the host");
		host_len = (size_t)(close - auth) + 1;
		if (host_len == 2)
			return fail(ret_why, "no host");
	} else {
		const char *colon = memchr(auth, ':', auth_len);
		host_len = colon ? (size_t)(colon - auth) : auth_len;
	}
	if (host_len == 0)
		return fail(ret_why, "no host");
	if (host_len < auth_len) {
		if (auth[host_len] != ':')
			return fail(ret_why, "invalid host");
		for (size_t i = host_len + 1; i < auth_len; i++)
			if (auth[i] < '0' || auth[i] > '9')
				return fail(ret_why, "invalid port");
	}
	if (valid_utf8_span(url, len) != len)
		return fail(ret_why, "invalid UTF-8");
	return true;
}

bool csv_language_check(const char *s)
{
	size_t n = strlen(s);
	if (n < 2 || n > 20)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '-' ||
		      (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

int csv_parse_flag(const char *text, bool *ret)
{
	static const struct {
		const char *word;
		bool value;
	} words[] = {
	    {"true", true}, {"false", false}, {"yes", true},
	    {"no", false},  {"1", true},      {"0", false},
	};

	if (!text)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (ascii_eq(text, words[i].word)) {
			*ret = words[i].value;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- group object ids ---- */

static bool hex_digit(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool valid_guid(const char *s, size_t len)
{
	if (!s || len != VALID_GUID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool hyphen = i == 8 || i == 13 || i == 18 || i == 23;
		if (hyphen ? c != '-' : !hex_digit(c))
			return false;
	}
	return true;
}

/* Bytes of escaped text quoted from a hostile value in a message. */
#define GROUPS_EXCERPT_BYTES 60

/*
 * Append s[0..len) to b escaped by vis, one character (or invalid byte) at a
 * time, stopping before the escaped text would pass GROUPS_EXCERPT_BYTES;
 * "..." when cut. The excerpt is bounded whatever the value holds.
 */
static int append_escaped_excerpt(struct buf *b, const char *s, size_t len)
{
	size_t start = b->len;
	size_t i = 0;
	int rc = 0;

	while (i < len) {
		size_t n = vis_utf8_next(s + i, len - i, NULL);
		if (n == 0)
			n = 1; /* an invalid byte: vis shows it as \xNN */
		size_t before = b->len;
		rc = vis_append(b, s + i, n, 0);
		if (rc < 0)
			return rc;
		if (b->len - start > GROUPS_EXCERPT_BYTES) {
			b->len = before;
			b->data[b->len] = '\0';
			break;
		}
		i += n;
	}
	if (i < len)
		rc = buf_append_str(b, "...");
	return rc;
}

/* Copy msg into why[0..why_len), cut on a UTF-8 character boundary. */
static void set_why(char *why, size_t why_len, const char *msg)
{
	if (!why || why_len == 0)
		return;
	size_t n = strlen(msg);
	if (n >= why_len) {
		n = why_len - 1;
		while (n > 0 && ((unsigned char)msg[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(why, msg, n);
	why[n] = '\0';
}

static int bad_piece(const char *piece, size_t len, char *why, size_t why_len)
{
	static const char prefix[] = "not a group object id (GUID)";
	struct buf b = BUF_INIT;

	int rc = buf_append_str(&b, prefix);
	if (rc == 0)
		rc = buf_append_str(&b, ": '");
	if (rc == 0)
		rc = append_escaped_excerpt(&b, piece, len);
	if (rc == 0)
		rc = buf_append_str(&b, "'");
	set_why(why, why_len, rc == 0 ? b.data : prefix);
	buf_finish(&b);
	return -EINVAL;
}

static bool groups_sep(unsigned char c, char sep)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || (c == ';' && sep != ';');
}

int valid_groups_split(const char *cell, size_t len, char sep, char (*ids)[VALID_GUID_LEN + 1],
                       size_t max, char *why, size_t why_len)
{
	size_t count = 0;
	size_t i = 0;

	if (max > INT_MAX)
		max = INT_MAX;
	while (i < len) {
		if (groups_sep((unsigned char)cell[i], sep)) {
			i++;
			continue;
		}
		size_t start = i;
		while (i < len && !groups_sep((unsigned char)cell[i], sep))
			i++;
		const char *piece = cell + start;
		size_t n = i - start;
		if (!valid_guid(piece, n))
			return bad_piece(piece, n, why, why_len);

		char id[VALID_GUID_LEN + 1];
		for (size_t k = 0; k < VALID_GUID_LEN; k++)
			id[k] = (char)ascii_lower((unsigned char)piece[k]);
		id[VALID_GUID_LEN] = '\0';
		bool dup = false;
		for (size_t k = 0; k < count && !dup; k++)
			dup = memcmp(ids[k], id, VALID_GUID_LEN) == 0;
		if (dup)
			continue;
		if (count == max) {
			char msg[64];
			snprintf(msg, sizeof(msg), "more than %zu groups", max);
			set_why(why, why_len, msg);
			return -E2BIG;
		}
		memcpy(ids[count++], id, sizeof(id));
	}
	return (int)count;
}
