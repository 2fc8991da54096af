/* SPDX-License-Identifier: MIT */
/*
 * csv: the guest-list reader of SPEC §2 (portal template and PowerShell format).
 *
 * A push parser: feed it the file in chunks of any size (a record may span
 * chunks), then call csv_reader_finish(). It reports through callbacks:
 *   on_header  once, when the header row has been recognized;
 *   on_row     for every data row that passed every per-row rule;
 *   on_error   for every problem, with the physical line number (1-based) it
 *              belongs to; a row with problems is reported through on_error
 *              only, never through on_row.
 * The reader never stops on the first problem: it keeps going so that the
 * caller can list them all. Rules that need the whole file (the same email
 * twice) are the caller's: the reader holds no per-row state after a row.
 * Memory is bounded by the longest record (capped by max_record_bytes).
 *
 * A callback returning a negative errno aborts: csv_reader_feed() and
 * csv_reader_finish() then return that value.
 *
 * This module never logs and does not allocate per row beyond the record
 * buffer it reuses.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* the value rules (csv_email_check, csv_url_check, csv_language_check,
 * csv_parse_flag, valid_groups_split, CSV_MAX_EMAIL_BYTES, ...) */
#include "valid.h"

enum csv_format {
	CSV_FORMAT_UNKNOWN = 0,
	CSV_FORMAT_PORTAL,     /* [inviteeEmail] template */
	CSV_FORMAT_POWERSHELL, /* Name,InvitedUserEmailAddress */
};

/* Tri-state for the per-row send flag. */
enum csv_flag {
	CSV_FLAG_UNSET = -1,
	CSV_FLAG_FALSE = 0,
	CSV_FLAG_TRUE = 1,
};

struct csv_row {
	unsigned line;            /* physical line where the record starts */
	const char *email;        /* trimmed, non-empty, passed csv_email_check() */
	const char *display_name; /* NULL when the column is absent or the cell empty */
	const char *redirect_url; /* NULL when absent/empty: the job's default applies */
	enum csv_flag send_email; /* CSV_FLAG_UNSET when absent/empty */
	const char *message;      /* NULL when absent/empty */
	/* The groups cell (portal: a header cell holding [groups]; PowerShell:
	 * Groups), trimmed: group object ids that passed valid_groups_split()
	 * with this file's separator. NULL when the column is absent, the cell
	 * empty or holding separators only. Split it again with
	 * valid_groups_split(groups, strlen(groups), separator, ...). */
	const char *groups;
	char separator;           /* the file's separator, ',' or ';' */
	size_t n_fields;          /* every cell of the record, trimmed, in file order */
	const char *const *fields;
};

struct csv_callbacks {
	/* Header recognized. columns: the header cells, trimmed, in file order
	 * (borrowed, valid during the call). */
	int (*on_header)(void *userdata, enum csv_format format, char separator,
			 size_t n_columns, const char *const *columns);
	/* One valid data row; everything in *row is borrowed for the call only. */
	int (*on_row)(void *userdata, const struct csv_row *row);
	/* One problem: line is the physical line, message a short English
	 * sentence without the line number and without a trailing period,
	 * e.g. "invalid email 'a@@b': more than one '@'" (borrowed). */
	int (*on_error)(void *userdata, unsigned line, const char *message);
};

struct csv_limits {
	size_t max_rows;         /* data rows; the row after the last allowed one is reported
				  * once ("more than N rows") and reading stops (0: no limit) */
	size_t max_record_bytes; /* one record; 0: CSV_DEFAULT_MAX_RECORD_BYTES */
};

/* A record (cell bytes plus one per cell) longer than this, or one cell
 * longer than CSV_MAX_CELL_BYTES (Excel's cell limit), is a problem at its
 * line: every stored row then fits a reply frame even JSON-escaped, and a
 * job's results can always be exported and opened. */
#define CSV_DEFAULT_MAX_RECORD_BYTES (64u * 1024u)
#define CSV_MAX_CELL_BYTES 32767u
#define CSV_MAX_NAME_BYTES 256u
#define CSV_MAX_MESSAGE_BYTES 10000u

struct csv_reader;

/* Create a reader. limits and cb are copied; userdata is borrowed and passed
 * to every callback. *ret is owned by the caller (csv_reader_destroy). */
int csv_reader_create(struct csv_reader **ret, const struct csv_limits *limits,
		      const struct csv_callbacks *cb, void *userdata);

/* Feed the next chunk (borrowed; may be any size, may split UTF-8 sequences,
 * CRLF pairs and quoted fields). Returns 0, or a callback's negative value,
 * or -ENOMEM. */
int csv_reader_feed(struct csv_reader *r, const void *data, size_t len);

/* End of input: reports an unterminated quote (at the line where the quoted
 * field opened), a missing header ("no recognizable header" at line 1),
 * a file with a header but no data row ("no guests in the file", at the
 * template's Example: row when there was one, else at the header's line),
 * and delivers the last record. Returns like csv_reader_feed(). */
int csv_reader_finish(struct csv_reader *r);

/* Counters after finish: data rows seen (valid or not, examples and blank
 * lines excluded), problems reported. */
size_t csv_reader_rows(const struct csv_reader *r);
size_t csv_reader_errors(const struct csv_reader *r);
enum csv_format csv_reader_format(const struct csv_reader *r);

/* Accepts NULL. */
void csv_reader_destroy(struct csv_reader *r);

/* The portal template of `invitectl template` (static string): version row,
 * English header, one Example: row. It has no groups column, as the portal's
 * has none. To add one, append a header cell holding the token, e.g.
 * ",Group object ids separated by spaces [groups]", and a cell to the
 * Example: row (",00000000-0000-0000-0000-000000000000" or empty); the
 * reader needs no change, and test-csv's template test then counts five
 * columns. */
const char *csv_template(void);
