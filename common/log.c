/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "vis.h"

/* the message before escaping; a line is at most LOG_LINE_MAX bytes */
#define LOG_MESSAGE_MAX 4096
#define LOG_LINE_MAX 8192

static const char *log_ident = "invited";
static enum log_level log_max = LOG_LEVEL_INFO;
static int log_journal = -1;

void log_init(const char *ident, enum log_level max)
{
	log_ident = ident;
	log_max = max;
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_level(enum log_level max)
{
	log_max = max;
}

int log_enabled(enum log_level level)
{
	return level <= log_max;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"", "", "", "error", "warning", "notice", "info", "debug"};
	if (!log_enabled(level))
		return;
	if (log_journal < 0)
		log_journal = getenv("JOURNAL_STREAM") != NULL;

	char line[LOG_LINE_MAX];
	size_t n = 0;
	if (log_journal) {
		n = (size_t)snprintf(line, sizeof(line), "<%d>", (int)level);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s: ",
				      ts.tv_nsec / 1000000L, log_ident, names[level]);
	}
	char msg[LOG_MESSAGE_MAX];
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t mlen = m < 0 ? 0 : (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
	/* The message holds file names, job names and Graph's words: escape it
	 * (a '\r' or an ESC must neither forge a line nor colour one), and
	 * backslashes too so the line reads back unambiguously. */
	struct buf esc = BUF_INIT;
	if (!vis_is_clean(msg, mlen, VIS_BACKSLASH) && vis_append(&esc, msg, mlen, VIS_BACKSLASH) < 0) {
		buf_finish(&esc); /* no memory to escape: blank out what a terminal acts on */
		for (size_t i = 0; i < mlen; i++)
			if ((unsigned char)msg[i] < 0x20 || (unsigned char)msg[i] >= 0x7f)
				msg[i] = '?';
	}
	const char *text = esc.data ? esc.data : msg;
	size_t tlen = esc.data ? esc.len : mlen;
	if (tlen > sizeof(line) - n - 1)
		tlen = sizeof(line) - n - 1;
	memcpy(line + n, text, tlen);
	n += tlen;
	buf_finish(&esc);
	/* one write per line so that concurrent writers do not interleave */
	line[n++] = '\n';
	fwrite(line, 1, n, stderr);
	fflush(stderr);
}
