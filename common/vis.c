/* SPDX-License-Identifier: MIT */
#include "vis.h"

#include <stdint.h>
#include <string.h>

static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *ret_cp)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp, min;
	if (c < 0x80) {
		*ret_cp = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		n = 2, cp = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3, cp = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*ret_cp = cp;
	return n;
}

size_t vis_utf8_next(const char *s, size_t len, uint32_t *ret_cp)
{
	uint32_t cp;
	size_t n = len ? utf8_decode((const unsigned char *)s, len, &cp) : 0;
	if (n && ret_cp)
		*ret_cp = cp;
	return n;
}

static bool cp_escaped(uint32_t cp, unsigned flags)
{
	if (cp < 0x20)
		return !((flags & VIS_LAYOUT) && (cp == '\n' || cp == '\t'));
	if (cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
		return true;
	if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
		return true;
	return false;
}

static int append_escape(struct buf *out, uint32_t cp)
{
	switch (cp) {
	case '\n':
		return buf_append(out, "\\n", 2);
	case '\r':
		return buf_append(out, "\\r", 2);
	case '\t':
		return buf_append(out, "\\t", 2);
	case 0x1b:
		return buf_append(out, "\\e", 2);
	case 0:
		return buf_append(out, "\\0", 2);
	default:
		if (cp < 0x80)
			return buf_printf(out, "\\x%02x", (unsigned)cp);
		return buf_printf(out, "\\u%04x", (unsigned)cp);
	}
}

int vis_append(struct buf *out, const char *s, size_t len, unsigned flags)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, clean = 0; /* p[clean..i) is waiting to be copied as it is */
	int r = buf_reserve(out, len);
	if (r < 0)
		return r;
	while (i < len) {
		uint32_t cp;
		size_t n = utf8_decode(p + i, len - i, &cp);
		bool esc = n == 0 || cp_escaped(cp, flags) || (cp == '\\' && (flags & VIS_BACKSLASH));
		if (!esc) {
			i += n;
			continue;
		}
		if (i > clean && (r = buf_append(out, p + clean, i - clean)) < 0)
			return r;
		if (n == 0)
			r = buf_printf(out, "\\x%02x", (unsigned)p[i]), n = 1;
		else if (cp == '\\')
			r = buf_append(out, "\\\\", 2);
		else
			r = append_escape(out, cp);
		if (r < 0)
			return r;
		i += n;
		clean = i;
	}
	if (i > clean)
		return buf_append(out, p + clean, i - clean);
	/* an empty string still makes the buf hold "" rather than NULL */
	return buf_append(out, "", 0);
}

int vis_append_str(struct buf *out, const char *s, unsigned flags)
{
	return s ? vis_append(out, s, strlen(s), flags) : 0;
}

char *vis_strdup(const char *s, unsigned flags)
{
	if (!s)
		return NULL;
	struct buf b = BUF_INIT;
	if (vis_append_str(&b, s, flags) < 0) {
		buf_finish(&b);
		return NULL;
	}
	return buf_steal(&b);
}

bool vis_is_clean(const char *s, size_t len, unsigned flags)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = utf8_decode(p + i, len - i, &cp);
		if (n == 0 || cp_escaped(cp, flags) || (cp == '\\' && (flags & VIS_BACKSLASH)))
			return false;
		i += n;
	}
	return true;
}

bool vis_has_control(const char *s)
{
	return s && !vis_is_clean(s, strlen(s), 0);
}
