/* SPDX-License-Identifier: MIT */
/*
 * valid: the value rules of one cell or option, shared by the guest-list
 * reader (csv.c), invitectl's option checks and the daemon's request checks:
 * email addresses (GRAPH.md §3), redirect URLs, language codes, booleans,
 * group object ids (GUIDs) and a groups cell (SPEC §8).
 *
 * Pure: never logs, never allocates except for a message's excerpt.
 * The csv_* names predate this module (they lived in csv.c) and are kept so
 * that no caller changes; csv.h includes this header.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define CSV_MAX_EMAIL_BYTES 254u
#define CSV_MAX_URL_BYTES 2048u

/* Group object ids: at most this many per row or per job (a groups cell,
 * repeated --group), each VALID_GUID_LEN characters. */
#define VALID_GROUPS_MAX 64
#define VALID_GUID_LEN 36
/* A why buffer of this size always holds valid_groups_split()'s whole
 * message (the quoted value is cut to about 60 bytes, escaped). */
#define VALID_WHY_MAX 128

/* Length of the longest prefix of data[0..n) (borrowed) that is well-formed
 * UTF-8 (RFC 3629: no overlong forms, surrogates or code points past
 * U+10FFFF); n when all of it is. NUL bytes count as valid. */
size_t valid_utf8_span(const void *data, size_t n);

/* Graph's email rule (GRAPH.md §3) plus basic shape (one '@', non-empty
 * local part and domain, domain labels, length caps). Returns true when
 * valid; otherwise false and, if ret_why is not NULL, a static reason. */
bool csv_email_check(const char *email, const char **ret_why);

/* An absolute http:// or https:// URL with a host, no spaces or control
 * characters, at most CSV_MAX_URL_BYTES. */
bool csv_url_check(const char *url, const char **ret_why);

/* A language code for the invitation email (BCP 47 shape: 2 to 20 of
 * A-Z a-z 0-9 '-', e.g. en-US): the rule of both invitectl and invited. */
bool csv_language_check(const char *language);

/* true/false/yes/no/1/0 in any case. Returns 0 and sets *ret, or -EINVAL. */
int csv_parse_flag(const char *text, bool *ret);

/* s[0..len) (borrowed, need not be NUL-terminated) is a GUID in its usual
 * text form, xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx: exactly VALID_GUID_LEN
 * characters, hyphens at offsets 8, 13, 18 and 23, hex digits in any case
 * elsewhere. No braces, no "urn:uuid:", no version check (Entra's object
 * ids are checked for their form only; Graph says whether one exists). */
bool valid_guid(const char *s, size_t len);

/* Split a groups cell (borrowed, len bytes, need not be NUL-terminated):
 * ids separated by white space (space, TAB, CR, LF) or ';', except that when
 * sep == ';' (the file's separator: the reader has already split the record
 * at ';') only white space separates and a ';' is part of an id. Empty
 * pieces are ignored. Each id must be a GUID (valid_guid); it is written
 * lowercased into ids[i] (NUL-terminated; ids has room for max entries),
 * and an id already written is dropped.
 *
 * Returns the count of distinct ids (0..max), or
 *   -EINVAL  a piece is not a GUID: why gets
 *            "not a group object id (GUID): 'x'", the piece escaped with
 *            vis (control characters, bidi overrides, bad UTF-8) and cut to
 *            about 60 bytes ("..." when cut);
 *   -E2BIG   more than max distinct ids: why gets "more than N groups".
 * why (why_len bytes, may be NULL when why_len is 0) is written on failure
 * only, always NUL-terminated, truncated to fit. The pieces are checked left
 * to right; the first problem is the one reported. ids[] holds the first
 * ids on failure, which the caller must not use. */
int valid_groups_split(const char *cell, size_t len, char sep, char (*ids)[VALID_GUID_LEN + 1],
                       size_t max, char *why, size_t why_len);

/* Case-insensitive comparisons of ASCII letters only (strcasecmp follows
 * the locale): the reader's and the rules' (header tokens, flags, URL
 * schemes). Inline: the reader calls them for every record. */
static inline unsigned char ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

static inline bool ascii_eq_n(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
			return false;
	return true;
}

static inline bool ascii_eq(const char *a, const char *b)
{
	size_t n = strlen(b);
	return strlen(a) == n && ascii_eq_n(a, b, n);
}

static inline bool ascii_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return strlen(s) >= n && ascii_eq_n(s, prefix, n);
}
