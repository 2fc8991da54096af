/* SPDX-License-Identifier: MIT */
/*
 * vis: the one escaper for strings that cross a trust boundary on their way
 * to a person (a terminal, a log line, a spreadsheet cell, a command's
 * environment). After OpenSSH's utf8.c and vis(3): valid, printable UTF-8
 * passes; everything a terminal or a log reader would act on is shown
 * escaped instead:
 *   C0 controls (U+0000-U+001F)      \n \r \t \e \0 or \xNN
 *   DEL (U+007F)                      \x7f
 *   C1 controls (U+0080-U+009F)       \u0080..\u009f
 *   bidirectional overrides and isolates
 *     (U+202A-U+202E, U+2066-U+2069)  \u202a..\u2069
 *   bytes that are not valid UTF-8    \xNN (each byte)
 *   the backslash itself              \\ (only with VIS_BACKSLASH)
 * Pure, never logs, never allocates except through the buf.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum {
	/* keep '\n' and '\t' as they are (they are layout: a multi-line
	 * message, a TAB-separated table); otherwise they are escaped too */
	VIS_LAYOUT = 1u << 0,
	/* escape '\' as "\\", so that the output can be read back
	 * unambiguously (logs); a terminal table leaves it as it is */
	VIS_BACKSLASH = 1u << 1,
};

/* Length (1-4) of the valid UTF-8 sequence at s[0..len), its code point in
 * *ret_cp (may be NULL), or 0 when s does not start one: RFC 3629, no
 * overlong forms, no surrogates, nothing past U+10FFFF. The one UTF-8
 * decoder of everything that checks text from outside. */
size_t vis_utf8_next(const char *s, size_t len, uint32_t *ret_cp);
/* Append s[0..len) (borrowed) to out, escaped as above. 0 or -ENOMEM. */
int vis_append(struct buf *out, const char *s, size_t len, unsigned flags);
/* The same for a NUL-terminated string (NULL appends nothing). */
int vis_append_str(struct buf *out, const char *s, unsigned flags);
/* A new NUL-terminated escaped copy of s (returned, owned by the caller;
 * NULL when out of memory or s is NULL). */
char *vis_strdup(const char *s, unsigned flags);
/* True when s[0..len) would pass through vis_append unchanged with these
 * flags: no byte needs escaping. */
bool vis_is_clean(const char *s, size_t len, unsigned flags);
/* True when s (NUL-terminated) holds any character vis escapes (with
 * VIS_LAYOUT unset: '\n' and '\t' count) or is not valid UTF-8: what the
 * daemon refuses in job names, file names, languages and addresses. */
bool vis_has_control(const char *s);
