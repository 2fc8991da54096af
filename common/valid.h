/* SPDX-License-Identifier: MIT */
/*
 * valid: the value rules of one cell or option, shared by the guest-list
 * reader (csv.c), invitectl's option checks and the daemon's request checks:
 * email addresses (GRAPH.md §3), redirect URLs, language codes and booleans.
 *
 * Pure: never logs, never allocates.
 * The csv_* names predate this module (they lived in csv.c) and are kept so
 * that no caller changes; csv.h includes this header.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define CSV_MAX_EMAIL_BYTES 254u
#define CSV_MAX_URL_BYTES 2048u

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
