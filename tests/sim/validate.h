/* SPDX-License-Identifier: MIT */
/*
 * validate: the simulator's own reading of Graph's input rules (GRAPH.md §3).
 * Deliberately independent of the daemon's csv module, so that the two
 * implementations check each other. Pure functions, no logging.
 */
#pragma once

#include <stddef.h>

#define VALIDATE_EMAIL_MAX 254
#define VALIDATE_EMAIL_LOCAL_MAX 64
#define VALIDATE_URL_MAX 2048

/* NULL when address (borrowed) passes the invitation email rule, else a
 * static sentence saying why not. */
const char *validate_email(const char *address);
/* NULL when url (borrowed) is an absolute http(s) URL, else a static reason. */
const char *validate_redirect_url(const char *url);
/* Look key up in an application/x-www-form-urlencoded body (borrowed, len
 * bytes, need not be NUL-terminated) and URL-decode its first value.
 * Returns 1 and *ret_value (owned by the caller) when found, 0 when absent,
 * -EINVAL for a malformed %-escape or an embedded NUL, -ENOMEM. */
int validate_form_get(const char *body, size_t len, const char *key, char **ret_value);
