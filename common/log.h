/* SPDX-License-Identifier: MIT */
/*
 * log: stderr logging for the daemon and the simulator. Under the journal
 * ($JOURNAL_STREAM set) lines carry "<N>" priority prefixes, otherwise a UTC
 * timestamp and a level word. Library-like modules (common/, pure daemon
 * modules) log at debug at most.
 *
 * The formatted message is escaped with vis (VIS_BACKSLASH; newlines, CRs,
 * ESC, C1 and bidi controls shown as \n, \r, \e, \uNNNN...): it carries
 * file names, job names and Graph's messages, which must neither forge a
 * line nor drive the reader's terminal. The prefix stays as it is.
 */
#pragma once

enum log_level {
	LOG_LEVEL_ERROR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

/* ident: borrowed static string (program name). */
void log_init(const char *ident, enum log_level max);
void log_set_level(enum log_level max);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                            \
	do {                                                      \
		if (log_enabled(LOG_LEVEL_DEBUG))                 \
			log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);    \
	} while (0)
