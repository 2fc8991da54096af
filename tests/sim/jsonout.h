/* SPDX-License-Identifier: MIT */
/*
 * jsonout: append JSON text to a struct buf. The simulator builds its hot
 * responses (201 bodies, errors, batch envelopes, record lines) this way
 * rather than through json_pack()/json_dumps(), which cost a third of its
 * CPU. Every function returns 0 or -ENOMEM, so callers may OR the results.
 */
#pragma once

#include "buf.h"

/* s (borrowed, valid UTF-8 as jansson hands it out) as a JSON string
 * literal, or null when s is NULL. */
int jsonout_string(struct buf *b, const char *s);
/* ,"key": then the string value (or null). first: omit the comma. */
int jsonout_member(struct buf *b, const char *key, const char *value, int first);
