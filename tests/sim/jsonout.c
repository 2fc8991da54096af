/* SPDX-License-Identifier: MIT */
#include "jsonout.h"

#include <stdio.h>
#include <string.h>

int jsonout_string(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	int r = 0;

	if (!s)
		return buf_append(b, "null", 4);
	r |= buf_append(b, "\"", 1);
	const char *run = s;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		r |= buf_append(b, run, (size_t)(s - run));
		run = s + 1;
		switch (c) {
		case '"':
			r |= buf_append(b, "\\\"", 2);
			break;
		case '\\':
			r |= buf_append(b, "\\\\", 2);
			break;
		case '\n':
			r |= buf_append(b, "\\n", 2);
			break;
		case '\r':
			r |= buf_append(b, "\\r", 2);
			break;
		case '\t':
			r |= buf_append(b, "\\t", 2);
			break;
		default: {
			char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
			r |= buf_append(b, u, sizeof(u));
			break;
		}
		}
	}
	r |= buf_append(b, run, (size_t)(s - run));
	r |= buf_append(b, "\"", 1);
	return r;
}

int jsonout_member(struct buf *b, const char *key, const char *value, int first)
{
	int r = 0;
	if (!first)
		r |= buf_append(b, ",", 1);
	r |= jsonout_string(b, key);
	r |= buf_append(b, ":", 1);
	r |= jsonout_string(b, value);
	return r;
}
