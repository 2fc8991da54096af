/* SPDX-License-Identifier: MIT */
/*
 * config-private: what the files of the config module (config*.c) share and
 * nobody else sees: the reader's state and the small helpers every section's
 * keys use. The public API is config.h; this header is never included
 * outside daemon/config*.c, and inih stays behind config.c.
 *
 *   config.c       the reader (inih, section lines, errors at their line),
 *                  [graph], [tenant NAME], [queue], [daemon], resolving the
 *                  tenants, the cross-key checks
 *   config-mail.c  [mail] and [mail NAME]: keys, resolution, checks
 *   config-dump.c  the effective configuration, as --check-config prints it
 */
#pragma once

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"

/* The reader's state for one file (config.c); fail() sets its error. */
struct parse_state {
	struct config *config;
	char *error; /* reason of the first bad line, without file:line */
	FILE *f;
	const char *path;
	unsigned line;    /* of the text the reader returned last */
	bool at_line_start;
	bool stop;        /* the reader found a bad section line (st->error) */
	unsigned gen;     /* which file this is (duplicate sections in one file) */
};

static inline int dup_or_null(char **ret, const char *s)
{
	*ret = NULL;
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

static inline int fail(struct parse_state *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static inline int fail(struct parse_state *st, const char *fmt, ...)
{
	struct buf m = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&m, fmt, ap);
	va_end(ap);
	free(st->error);
	st->error = buf_steal(&m);
	return 0; /* inih: error on this line */
}

static inline int set_string(char **slot, const char *value)
{
	char *p = strdup(value);
	if (!p)
		return -ENOMEM;
	free(*slot);
	*slot = p;
	return 0;
}

static inline bool parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *ret)
{
	if (*v < '0' || *v > '9')
		return false;
	errno = 0;
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || *end != '\0' || n < min || n > max)
		return false;
	*ret = n;
	return true;
}

/* A number more than 0 and at most max (a rate, per second). */
static inline bool parse_rate(const char *v, double max, double *ret)
{
	errno = 0;
	char *end;
	double d = strtod(v, &end);
	if (errno || end == v || *end != '\0' || !isfinite(d) || d <= 0 || d > max)
		return false;
	*ret = d;
	return true;
}

/* config-mail.c: [mail] and [mail NAME] */
/* "" for [mail], NAME for [mail NAME], NULL for another section. */
const char *config_mail_section_name(const char *section);
/* The mail section called name ("": [mail]), made at its first key; NULL
 * when name is not a tenant name, past CONFIG_TENANTS_MAX sections, or out
 * of memory. Owned by st->config. */
struct config_mail *config_mail_section(struct parse_state *st, const char *name);
/* One key of a mail section: 1 set, 0 bad (st->error). */
int config_mail_key(struct parse_state *st, struct config_mail *m, const char *name,
		    const char *value);
/* t->mail: a copy of its [mail NAME], else of [mail]; the default template
 * when it sends. 0 or -ENOMEM. */
int config_mail_resolve(const struct config *c, struct config_tenant *t);
/* Each mail section complete, each [mail NAME] of a tenant: 0, or -EINVAL
 * with *ret_error (owned) set to "FILE:LINE: [mail NAME]: why". */
int config_mail_check(const struct config *c, char **ret_error);
