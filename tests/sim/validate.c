/* SPDX-License-Identifier: MIT */
#include "validate.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* GRAPH.md §3: characters an invitation address may not contain. */
static const char forbidden[] = "~!#$%^&*()+=[]{}\\/|;:\"<>?,";

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static const char *check_local(const char *s, size_t n)
{
	if (n == 0)
		return "the user name before '@' is empty";
	if (n > VALIDATE_EMAIL_LOCAL_MAX)
		return "the user name before '@' is longer than 64 characters";
	if (s[0] == '.' || s[0] == '-')
		return "the user name may not start with a period or hyphen";
	if (s[n - 1] == '.' || s[n - 1] == '-')
		return "the user name may not end with a period or hyphen";
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == '.' && s[i + 1] == '.')
			return "the user name may not contain two periods in a row";
	return NULL;
}

static const char *check_domain(const char *s, size_t n)
{
	if (n == 0)
		return "the domain after '@' is empty";
	size_t labels = 0, start = 0;
	bool tld_alpha = false;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		size_t len = i - start;
		if (len == 0)
			return "the domain has an empty label";
		if (len > 63)
			return "a domain label is longer than 63 characters";
		if (s[start] == '-' || s[i - 1] == '-')
			return "a domain label may not start or end with a hyphen";
		tld_alpha = false;
		for (size_t j = start; j < i; j++) {
			unsigned char c = (unsigned char)s[j];
			if (!is_alnum(c) && c != '-' && c < 0x80)
				return "the domain contains a character other than letters, digits, hyphens and periods";
			if (!(c >= '0' && c <= '9'))
				tld_alpha = true;
		}
		labels++;
		start = i + 1;
	}
	if (labels < 2)
		return "the domain has no top-level domain";
	if (!tld_alpha)
		return "the top-level domain is numeric";
	return NULL;
}

const char *validate_email(const char *address)
{
	size_t n = strlen(address);
	if (n == 0)
		return "the address is empty";
	if (n > VALIDATE_EMAIL_MAX)
		return "the address is longer than 254 characters";
	const char *at = NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)address[i];
		if (c <= ' ' || c == 0x7f)
			return "the address contains a space or control character";
		if (c == '@') {
			if (at)
				return "the address contains more than one '@'";
			at = address + i;
		} else if (strchr(forbidden, c)) {
			return "the address contains a character that is not permitted (~ ! # $ % ^ & * ( ) + = [ ] { } \\ / | ; : \" < > ? ,)";
		}
	}
	if (!at)
		return "the address has no '@'";
	const char *why = check_local(address, (size_t)(at - address));
	if (why)
		return why;
	return check_domain(at + 1, n - (size_t)(at - address) - 1);
}

const char *validate_redirect_url(const char *url)
{
	size_t n = strlen(url);
	size_t scheme;
	if (n > VALIDATE_URL_MAX)
		return "the URL is longer than 2048 characters";
	if (strncasecmp(url, "https://", 8) == 0)
		scheme = 8;
	else if (strncasecmp(url, "http://", 7) == 0)
		scheme = 7;
	else
		return "the URL is not an absolute http or https URL";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= ' ' || c == 0x7f)
			return "the URL contains a space or control character";
	}
	if (url[scheme] == '\0' || url[scheme] == '/' || url[scheme] == '?' || url[scheme] == '#')
		return "the URL has no host";
	return NULL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode s[0..n) into a new string. */
static int decode(const char *s, size_t n, char **ret)
{
	char *out = malloc(n + 1);
	if (!out)
		return -ENOMEM;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (i + 2 >= n) {
				free(out);
				return -EINVAL;
			}
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0) {
				free(out);
				return -EINVAL;
			}
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (c == '\0') {
			free(out);
			return -EINVAL;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	*ret = out;
	return 0;
}

int validate_form_get(const char *body, size_t len, const char *key, char **ret_value)
{
	size_t pos = 0;
	while (pos < len) {
		const char *pair = body + pos;
		const char *amp = memchr(pair, '&', len - pos);
		size_t plen = amp ? (size_t)(amp - pair) : len - pos;
		pos += plen + 1;
		const char *eq = memchr(pair, '=', plen);
		size_t klen = eq ? (size_t)(eq - pair) : plen;
		char *k = NULL;
		int r = decode(pair, klen, &k);
		if (r < 0)
			return r;
		bool match = strcmp(k, key) == 0;
		free(k);
		if (!match)
			continue;
		if (!eq)
			return decode("", 0, ret_value) < 0 ? -ENOMEM : 1;
		r = decode(eq + 1, plen - klen - 1, ret_value);
		return r < 0 ? r : 1;
	}
	return 0;
}
