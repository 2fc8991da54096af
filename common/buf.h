/* SPDX-License-Identifier: MIT */
/* buf: a growable byte buffer, always NUL-terminated after its data. */
#pragma once

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data; /* owned; NULL until the first append */
	size_t len;
	size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_init(struct buf *b);
/* Frees the data; the buf may be reused after buf_init(). */
void buf_finish(struct buf *b);
/* Make room for n more bytes (plus the NUL). 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t n);
/* Append bytes (borrowed). 0 or -ENOMEM. */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Append s (borrowed, UTF-8) as a JSON string literal, quotes included,
 * escaping '"', '\\' and control characters. 0 or -ENOMEM. */
int buf_append_json_string(struct buf *b, const char *s);
/* Drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
void buf_clear(struct buf *b);
/* Hand the data to the caller (owned, NUL-terminated, may be NULL when empty)
 * and reset the buf. */
char *buf_steal(struct buf *b);
