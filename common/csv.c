/* SPDX-License-Identifier: MIT */
/*
 * csv: the guest-list reader of SPEC §2.
 *
 * Two stages:
 *
 *  1. The preamble (everything up to and including the header row) is
 *     buffered one record at a time in r->raw, because the separator is not
 *     known until the header row has been seen. A preamble record ends at a
 *     newline after an even number of '"' (a separator-agnostic rule). Blank
 *     records and one leading `version:` record are skipped; the first other
 *     record is the header candidate: it is split with ',' and with ';', and
 *     ';' wins only when it yields more recognized columns (or as many, with
 *     fewer leftover cells). A candidate with no recognized column ends the
 *     reading with "no recognizable header" (line 1).
 *
 *  2. From the header row on, a byte-at-a-time state machine (lex()) splits
 *     the input into records with the chosen separator. It scans runs of
 *     ordinary bytes with a tight loop and copies each run once into the
 *     record buffer r->rec (cells stored back to back, each NUL-terminated),
 *     which is reused for every record. Each complete record is handed to
 *     process_record(), which validates it and calls on_row or on_error.
 *
 * Header: a portal cell names a column by its bracketed token (a cell with two
 * different tokens names none); a PowerShell cell must equal the column name.
 * on_header is called as soon as the format is known, even when a required
 * column is missing (reported next, at the header's line). Without the email
 * column reading stops there; without the redirect (portal) or Name
 * (PowerShell) column the rows are still checked, so that one pass lists the
 * other problems too. A column named twice is reported; the first one is used.
 * The optional groups column (portal: [groups], PowerShell: Groups) is checked
 * per row with valid_groups_split() and the file's separator, so that in a
 * ';' file only spaces separate the ids.
 *
 * Lexing rules: RFC 4180 quoting; spaces, tabs and CRs around a cell are
 * trimmed when outside quotes (so CRLF needs no look-ahead and a lone CR
 * inside quotes stays data); text after a closing quote is appended to the
 * cell (`"a"b` is `ab`, as Excel reads it); a '"' inside an unquoted cell is
 * data. NUL bytes are dropped from the cell and make the record "invalid
 * UTF-8". UTF-8 is validated per record, after the record is complete, so
 * sequences split across feeds need no state; the error names the physical
 * line of the first bad byte (record start line + embedded newlines before
 * it), once per record; such a record gets no other checks, so messages
 * never quote invalid bytes. Excerpts of user values in messages are capped
 * at 64 bytes and have control characters escaped.
 *
 * Rows: blank records (every cell empty: `,,,`, spaces, `""`) are skipped;
 * in the portal format a record whose first cell starts with "Example:" (any
 * case) is skipped too. Neither counts as a data row.
 *
 * No guests: a file whose header is followed by no data row (none at all,
 * or only the template's Example: row) is reported once at the end, so that
 * an untouched template is refused rather than stored as an empty job.
 *
 * Limits: a cell may hold at most CSV_MAX_CELL_BYTES (Excel's limit; "cell
 * N longer than ... bytes" at the record's line) and a record at most
 * max_record_bytes (cell bytes plus one per cell). When a record grows past
 * that:
 *   - inside a quoted field, the likely cause is an unterminated quote, so
 *     the error "quoted field longer than N bytes (unterminated quote?)" is
 *     reported at the line where that quoted field opened;
 *   - otherwise "record too long (more than N bytes)" is reported at the line
 *     where the record started;
 * and in both cases the reader discards input up to the next physical
 * newline (ignoring quotes) and resumes there with a new record. The lines in
 * between are not examined; the file is rejected anyway.
 */
#include "csv.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

enum phase {
	PHASE_PREAMBLE, /* before the header row: buffering raw records */
	PHASE_HEADER,   /* separator known; the next record is the header */
	PHASE_ROWS,
	PHASE_DONE, /* input ignored from here on */
};

enum lex_state {
	LEX_CELL_START, /* skipping blanks before a cell */
	LEX_UNQUOTED,
	LEX_QUOTED,
	LEX_QUOTE_Q, /* saw '"' inside a quoted cell: end or escaped quote */
	LEX_SKIP,    /* record too long: discarding up to the next newline */
};

enum col {
	COL_EMAIL,
	COL_NAME,
	COL_REDIRECT,
	COL_SEND,
	COL_MESSAGE,
	COL_GROUPS,
	N_COLS,
};

#define NO_COL SIZE_MAX
#define EXCERPT_BYTES 64

struct header_map {
	enum csv_format format;
	size_t score; /* recognized columns of the winning format */
	size_t junk;  /* other non-empty cells: fragments of a wrong split, or extras */
	size_t col[N_COLS];
	unsigned dup; /* bit per enum col: named twice */
};

struct csv_reader {
	struct csv_callbacks cb;
	void *userdata;
	size_t max_rows;
	size_t max_record;
	int rc; /* sticky failure: a callback's negative value or -ENOMEM */

	enum phase phase;
	enum csv_format format;
	char sep;
	size_t col[N_COLS];

	/* preamble */
	struct buf raw;
	unsigned raw_nl; /* newlines in raw */
	bool raw_in_quote;
	unsigned raw_quote_line;
	bool at_start; /* the next preamble record is the first of the file */
	bool seen_version;
	bool utf8_hinted; /* the first "invalid UTF-8" carries a hint, later ones not */

	/* lexer */
	enum lex_state state;
	unsigned line;       /* physical line of the next byte */
	unsigned rec_line;   /* line where the current record started */
	unsigned quote_line; /* line where the last quoted field opened */
	unsigned nul_line;   /* first line of this record with a NUL byte, 0: none */
	bool too_long;
	bool too_long_quoted;
	bool unterminated;
	struct buf rec;    /* cells, each NUL-terminated */
	size_t cell_start; /* offset of the current cell in rec */
	size_t keep;       /* rec length to keep when the cell ends (trailing blanks trimmed) */
	size_t *offs;      /* offset of each complete cell */
	size_t n_cells;
	size_t offs_cap;
	const char **fields; /* pointers into rec, built per record */
	size_t fields_cap;

	struct buf msg;
	char group_ids[VALID_GROUPS_MAX][VALID_GUID_LEN + 1]; /* scratch of the groups check */
	size_t rows;
	size_t errors;
	unsigned header_line;  /* line of the header row, 0 before it */
	unsigned example_line; /* line of the first Example: row, 0: none */
};

static const char *const portal_col_name[N_COLS] = {
    [COL_EMAIL] = "[inviteeEmail]",
    [COL_NAME] = "[inviteeName]/[displayName]",
    [COL_REDIRECT] = "[inviteRedirectURL]",
    [COL_SEND] = "[sendEmail]",
    [COL_MESSAGE] = "[customizedMessageBody]",
    [COL_GROUPS] = "[groups]",
};

static const char *const ps_col_name[N_COLS] = {
    [COL_EMAIL] = "InvitedUserEmailAddress", [COL_NAME] = "Name",
    [COL_REDIRECT] = "InviteRedirectUrl",    [COL_SEND] = "SendInvitationMessage",
    [COL_MESSAGE] = "CustomizedMessageBody", [COL_GROUPS] = "Groups",
};

static const struct {
	const char *token;
	enum col col;
} portal_tokens[] = {
    {"[inviteeEmail]", COL_EMAIL}, {"[inviteRedirectURL]", COL_REDIRECT},
    {"[sendEmail]", COL_SEND},     {"[customizedMessageBody]", COL_MESSAGE},
    {"[inviteeName]", COL_NAME},   {"[displayName]", COL_NAME},
    {"[groups]", COL_GROUPS},
};

/* ---- small helpers ---- */

static void line_inc(unsigned *line)
{
	if (*line < UINT_MAX)
		(*line)++;
}

const char *csv_template(void)
{
	return "version:v1.0\n"
	       "Email address to invite [inviteeEmail] Required,"
	       "Redirection url [inviteRedirectURL] Required,"
	       "Send invitation message (true or false) [sendEmail],"
	       "Customized invitation message [customizedMessageBody]\n"
	       "Example:    someone@something.com,https://myapplications.microsoft.com,true,"
	       "Hello! You are invited.\n";
}

/* ---- reporting ---- */

static int emit_error(struct csv_reader *r, unsigned line, const char *message)
{
	r->errors++;
	if (!r->cb.on_error)
		return 0;
	int rc = r->cb.on_error(r->userdata, line, message);
	return rc < 0 ? rc : 0;
}

static int report(struct csv_reader *r, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int report(struct csv_reader *r, unsigned line, const char *fmt, ...)
{
	va_list ap;

	buf_clear(&r->msg);
	va_start(ap, fmt);
	int rc = buf_vprintf(&r->msg, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return rc;
	return emit_error(r, line, r->msg.data);
}

/*
 * Append a user value for a message: at most EXCERPT_BYTES of it, cut on a
 * character boundary (the value is valid UTF-8 by then), control characters
 * escaped so the message stays on one line, "..." when cut.
 */
static int append_excerpt(struct buf *b, const char *s)
{
	size_t len = strlen(s);
	size_t n = len;
	int rc = 0;

	if (n > EXCERPT_BYTES) {
		n = EXCERPT_BYTES;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n')
			rc = buf_append_str(b, "\\n");
		else if (c == '\r')
			rc = buf_append_str(b, "\\r");
		else if (c == '\t')
			rc = buf_append_str(b, "\\t");
		else if (c < ' ' || c == 0x7f)
			rc = buf_printf(b, "\\x%02x", c);
		else
			rc = buf_append(b, &s[i], 1);
	}
	if (rc == 0 && n < len)
		rc = buf_append_str(b, "...");
	return rc;
}

/* "<prefix>'<excerpt of value>'<suffix>" */
static int report_value(struct csv_reader *r, unsigned line, const char *prefix, const char *value,
                        const char *suffix1, const char *suffix2)
{
	int rc;

	buf_clear(&r->msg);
	rc = buf_append_str(&r->msg, prefix);
	if (rc == 0)
		rc = buf_append_str(&r->msg, "'");
	if (rc == 0)
		rc = append_excerpt(&r->msg, value);
	if (rc == 0)
		rc = buf_append_str(&r->msg, "'");
	if (rc == 0 && suffix1)
		rc = buf_append_str(&r->msg, suffix1);
	if (rc == 0 && suffix2)
		rc = buf_append_str(&r->msg, suffix2);
	if (rc < 0)
		return rc;
	return emit_error(r, line, r->msg.data);
}

static int report_bad_utf8(struct csv_reader *r, unsigned line)
{
	bool hint = !r->utf8_hinted;

	r->utf8_hinted = true;
	return report(r, line, "invalid UTF-8%s", hint ? " (save the file as CSV UTF-8)" : "");
}

/* ---- record buffer ---- */

static void rec_reset(struct csv_reader *r)
{
	r->rec.len = 0;
	r->cell_start = 0;
	r->keep = 0;
	r->n_cells = 0;
	r->nul_line = 0;
	r->too_long = false;
	r->too_long_quoted = false;
	r->unterminated = false;
	r->state = LEX_CELL_START;
	r->rec_line = r->line;
}

/* 0, 1 when the record would exceed max_record, or -ENOMEM. */
static inline int rec_append(struct csv_reader *r, const unsigned char *p, size_t n)
{
	if (n > r->max_record - r->rec.len)
		return 1;
	if (r->rec.cap - r->rec.len < n + 1) {
		int rc = buf_reserve(&r->rec, n);
		if (rc < 0)
			return rc;
	}
	memcpy(r->rec.data + r->rec.len, p, n);
	r->rec.len += n;
	return 0;
}

/* Close the current cell: trim, terminate, record its offset. */
static int end_cell(struct csv_reader *r)
{
	r->rec.len = r->keep;
	int rc = rec_append(r, (const unsigned char *)"", 1);
	if (rc)
		return rc;
	if (r->n_cells == r->offs_cap) {
		size_t cap = r->offs_cap ? r->offs_cap * 2 : 16;
		size_t *offs = realloc(r->offs, cap * sizeof(*offs));
		if (!offs)
			return -ENOMEM;
		r->offs = offs;
		r->offs_cap = cap;
	}
	r->offs[r->n_cells++] = r->cell_start;
	r->cell_start = r->keep = r->rec.len;
	return 0;
}

/* Point r->fields at the cells of the complete record. */
static int build_fields(struct csv_reader *r)
{
	if (r->n_cells > r->fields_cap) {
		size_t cap = r->offs_cap;
		const char **f = realloc(r->fields, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		r->fields = f;
		r->fields_cap = cap;
	}
	for (size_t i = 0; i < r->n_cells; i++)
		r->fields[i] = r->rec.data + r->offs[i];
	return 0;
}

static size_t cell_len(const struct csv_reader *r, size_t i)
{
	size_t end = i + 1 < r->n_cells ? r->offs[i + 1] : r->rec.len;
	return end - r->offs[i] - 1;
}

static void set_too_long(struct csv_reader *r)
{
	r->too_long = true;
	r->too_long_quoted = r->state == LEX_QUOTED || r->state == LEX_QUOTE_Q;
	r->state = LEX_SKIP;
}

/* ---- the state machine ---- */

/*
 * Run over [*pp, end). Returns 1 when a record is complete (its cells are in
 * r->rec and r->offs; *pp is just past its newline), 0 when the input ran
 * out (*pp == end), or -ENOMEM.
 */
static int lex(struct csv_reader *r, const unsigned char **pp, const unsigned char *end)
{
	const unsigned char *p = *pp;
	const unsigned char sep = (unsigned char)r->sep;
	int rc;

	while (p < end) {
		switch (r->state) {
		case LEX_CELL_START:
			if (*p == ' ' || *p == '\t' || *p == '\r') {
				p++;
				break;
			}
			if (*p == '"') {
				p++;
				r->state = LEX_QUOTED;
				r->quote_line = r->line;
				break;
			}
			r->state = LEX_UNQUOTED;
			/* fall through */
		case LEX_UNQUOTED: {
			const unsigned char *q = p;
			while (q < end && *q != sep && *q != '\n' && *q != '\0')
				q++;
			if (q > p) {
				size_t before = r->rec.len;
				rc = rec_append(r, p, (size_t)(q - p));
				if (rc < 0)
					goto out;
				if (rc > 0) {
					set_too_long(r);
					p = q;
					break;
				}
				const unsigned char *t = q;
				while (t > p && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r'))
					t--;
				if (t > p)
					r->keep = before + (size_t)(t - p);
				p = q;
				if (p == end)
					break;
			}
			unsigned char c = *p++;
			if (c == '\0') {
				if (!r->nul_line)
					r->nul_line = r->line;
				break;
			}
			rc = end_cell(r);
			if (rc < 0)
				goto out;
			if (rc > 0) {
				set_too_long(r);
				p--; /* LEX_SKIP looks for the newline from c on */
				break;
			}
			r->state = LEX_CELL_START;
			if (c == '\n') {
				line_inc(&r->line);
				*pp = p;
				return 1;
			}
			break;
		}
		case LEX_QUOTED: {
			const unsigned char *q = p;
			while (q < end && *q != '"' && *q != '\n' && *q != '\0')
				q++;
			if (q > p) {
				rc = rec_append(r, p, (size_t)(q - p));
				if (rc < 0)
					goto out;
				if (rc > 0) {
					set_too_long(r);
					p = q;
					break;
				}
				p = q;
			}
			r->keep = r->rec.len;
			if (p == end)
				break;
			unsigned char c = *p++;
			if (c == '"') {
				r->state = LEX_QUOTE_Q;
			} else if (c == '\n') {
				rc = rec_append(r, &c, 1);
				if (rc < 0)
					goto out;
				r->keep = r->rec.len;
				if (rc > 0) {
					set_too_long(r);
					p--; /* let LEX_SKIP see the newline */
					break;
				}
				line_inc(&r->line);
			} else if (!r->nul_line) {
				r->nul_line = r->line;
			}
			break;
		}
		case LEX_QUOTE_Q:
			if (*p == '"') {
				rc = rec_append(r, p, 1);
				if (rc < 0)
					goto out;
				if (rc > 0) {
					set_too_long(r);
					break;
				}
				p++;
				r->keep = r->rec.len;
				r->state = LEX_QUOTED;
				break;
			}
			/* the quoted part ended; anything else is read as unquoted text */
			r->state = LEX_UNQUOTED;
			break;
		case LEX_SKIP: {
			const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
			if (!nl) {
				p = end;
				break;
			}
			p = nl + 1;
			line_inc(&r->line);
			r->state = LEX_CELL_START;
			*pp = p;
			return 1;
		}
		}
	}
	rc = 0;
out:
	*pp = p;
	return rc;
}

/*
 * End of input for the lexer. Returns 1 when a record was pending (it is
 * complete now; r->unterminated set when it ended inside quotes), 0 when there
 * was none, or -ENOMEM.
 */
static int lex_finish(struct csv_reader *r)
{
	int rc;

	switch (r->state) {
	case LEX_SKIP:
		r->state = LEX_CELL_START;
		return 1;
	case LEX_QUOTED:
		r->unterminated = true;
		break;
	case LEX_CELL_START:
		if (r->n_cells == 0 && r->rec.len == 0 && !r->nul_line)
			return 0;
		break;
	case LEX_UNQUOTED:
	case LEX_QUOTE_Q:
		break;
	}
	rc = end_cell(r);
	if (rc > 0)
		set_too_long(r);
	r->state = LEX_CELL_START;
	return rc < 0 ? rc : 1;
}

/* ---- header ---- */

/* The column a portal header cell names, NO_COL for none, NO_COL - 1 for several. */
static size_t portal_cell_col(const char *cell)
{
	size_t found = NO_COL;

	for (const char *p = strchr(cell, '['); p; p = strchr(p + 1, '[')) {
		const char *close = strchr(p, ']');
		if (!close)
			break;
		size_t n = (size_t)(close - p) + 1;
		for (size_t i = 0; i < sizeof(portal_tokens) / sizeof(portal_tokens[0]); i++) {
			const char *tok = portal_tokens[i].token;
			if (strlen(tok) != n || !ascii_eq_n(p, tok, n))
				continue;
			size_t col = portal_tokens[i].col;
			if (found != NO_COL && found != col)
				return NO_COL - 1;
			found = col;
		}
	}
	return found;
}

static size_t ps_cell_col(const char *cell)
{
	for (size_t c = 0; c < N_COLS; c++)
		if (ascii_eq(cell, ps_col_name[c]))
			return c;
	return NO_COL;
}

static void classify(size_t n, const char *const *cells, struct header_map *m)
{
	struct header_map portal = {.format = CSV_FORMAT_PORTAL};
	struct header_map ps = {.format = CSV_FORMAT_POWERSHELL};

	for (size_t c = 0; c < N_COLS; c++)
		portal.col[c] = ps.col[c] = NO_COL;
	for (size_t i = 0; i < n; i++) {
		size_t c = portal_cell_col(cells[i]);
		if (c < N_COLS) {
			portal.score++;
			if (portal.col[c] == NO_COL)
				portal.col[c] = i;
			else
				portal.dup |= 1u << c;
		} else if (cells[i][0]) {
			portal.junk++;
		}
		c = ps_cell_col(cells[i]);
		if (c < N_COLS) {
			ps.score++;
			if (ps.col[c] == NO_COL)
				ps.col[c] = i;
			else
				ps.dup |= 1u << c;
		} else if (cells[i][0]) {
			ps.junk++;
		}
	}
	if (portal.score == 0 && ps.score == 0) {
		*m = portal;
		m->format = CSV_FORMAT_UNKNOWN;
	} else {
		*m = portal.score >= ps.score ? portal : ps;
	}
}

static int report_no_header(struct csv_reader *r, const char *hint)
{
	r->phase = PHASE_DONE;
	return report(r, 1, "no recognizable header (%s)",
	              hint ? hint
	                   : "expected the portal template's [inviteeEmail] column, or "
	                     "Name,InvitedUserEmailAddress");
}

static int process_header(struct csv_reader *r)
{
	struct header_map m;
	int rc;

	classify(r->n_cells, r->fields, &m);
	if (m.format == CSV_FORMAT_UNKNOWN)
		return report_no_header(r, NULL);

	/* a header cell holding a bare CR: the lines end in CR alone, so the
	 * whole file reads as this one line */
	for (size_t c = 0; c < r->n_cells; c++) {
		if (strchr(r->fields[c], '\r')) {
			r->phase = PHASE_DONE;
			return report(r, r->rec_line,
				      "the lines end in a carriage return alone (as classic Mac OS "
				      "wrote them): save the file with LF or CRLF line ends");
		}
	}
	r->format = m.format;
	r->header_line = r->rec_line;
	memcpy(r->col, m.col, sizeof(r->col));
	if (r->cb.on_header) {
		rc = r->cb.on_header(r->userdata, r->format, r->sep, r->n_cells, r->fields);
		if (rc < 0)
			return rc;
	}

	const char *const *names = m.format == CSV_FORMAT_PORTAL ? portal_col_name : ps_col_name;
	for (size_t c = 0; c < N_COLS; c++) {
		if (m.dup & (1u << c)) {
			rc = report(r, r->rec_line, "duplicate column %s", names[c]);
			if (rc < 0)
				return rc;
		}
	}
	const enum col required[] = {
	    COL_EMAIL,
	    m.format == CSV_FORMAT_PORTAL ? COL_REDIRECT : COL_NAME,
	};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		if (m.col[required[i]] != NO_COL)
			continue;
		rc = report(r, r->rec_line, "missing required column %s", names[required[i]]);
		if (rc < 0)
			return rc;
	}
	/* Without the email column every row would only repeat "empty email". */
	r->phase = m.col[COL_EMAIL] == NO_COL ? PHASE_DONE : PHASE_ROWS;
	return 0;
}

/* ---- rows ---- */

static bool white_byte(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *row_cell(const struct csv_reader *r, enum col c, size_t *ret_len)
{
	size_t i = r->col[c];
	if (i == NO_COL || i >= r->n_cells) {
		*ret_len = 0;
		return "";
	}
	*ret_len = cell_len(r, i);
	return r->fields[i];
}

static int process_row(struct csv_reader *r)
{
	unsigned line = r->rec_line;
	size_t errors = r->errors;
	const char *why;
	size_t email_len, name_len, url_len, send_len, msg_len, groups_len;
	int rc;

	const char *email = row_cell(r, COL_EMAIL, &email_len);
	const char *name = row_cell(r, COL_NAME, &name_len);
	const char *url = row_cell(r, COL_REDIRECT, &url_len);
	const char *send = row_cell(r, COL_SEND, &send_len);
	const char *message = row_cell(r, COL_MESSAGE, &msg_len);
	const char *groups = row_cell(r, COL_GROUPS, &groups_len);
	bool flag = false;
	int n_groups = 0;

	/* a quoted cell keeps its blanks, but the groups cell is white space
	 * separated anyway: trimmed of it, ids only */
	while (groups_len > 0 && white_byte(groups[0])) {
		groups++;
		groups_len--;
	}
	while (groups_len > 0 && white_byte(groups[groups_len - 1]))
		groups_len--;

	if (email_len == 0)
		rc = report(r, line, "empty email");
	else if (!csv_email_check(email, &why))
		rc = report_value(r, line, "invalid email ", email, ": ", why);
	else
		rc = 0;
	if (rc < 0)
		return rc;
	if (name_len > CSV_MAX_NAME_BYTES) {
		rc = report(r, line, "display name too long (%zu bytes, at most %u)", name_len,
		            CSV_MAX_NAME_BYTES);
		if (rc < 0)
			return rc;
	}
	if (url_len > 0 && !csv_url_check(url, &why)) {
		rc = report_value(r, line, "invalid redirect URL ", url, ": ", why);
		if (rc < 0)
			return rc;
	}
	if (send_len > 0 && csv_parse_flag(send, &flag) < 0) {
		rc = report_value(r, line,
		                  r->format == CSV_FORMAT_PORTAL
		                      ? "invalid sendEmail value "
		                      : "invalid SendInvitationMessage value ",
		                  send, " (use true or false)", NULL);
		if (rc < 0)
			return rc;
	}
	if (msg_len > CSV_MAX_MESSAGE_BYTES) {
		rc = report(r, line, "customized message too long (%zu bytes, at most %u)", msg_len,
		            CSV_MAX_MESSAGE_BYTES);
		if (rc < 0)
			return rc;
	}
	if (groups_len > 0) {
		char groups_why[VALID_WHY_MAX];
		n_groups = valid_groups_split(groups, groups_len, r->sep, r->group_ids,
		                              VALID_GROUPS_MAX, groups_why, sizeof(groups_why));
		if (n_groups < 0) {
			rc = report(r, line, "invalid groups: %s", groups_why);
			if (rc < 0)
				return rc;
		}
	}
	if (r->errors != errors || !r->cb.on_row)
		return 0;
	if (n_groups > 0) /* the cell lives in r->rec: cut it where the trim ended */
		r->rec.data[(size_t)(groups - r->rec.data) + groups_len] = '\0';

	struct csv_row row = {
	    .line = line,
	    .email = email,
	    .display_name = name_len ? name : NULL,
	    .redirect_url = url_len ? url : NULL,
	    .send_email = send_len ? (flag ? CSV_FLAG_TRUE : CSV_FLAG_FALSE) : CSV_FLAG_UNSET,
	    .message = msg_len ? message : NULL,
	    .groups = n_groups > 0 ? groups : NULL,
	    .separator = r->sep,
	    .n_fields = r->n_cells,
	    .fields = r->fields,
	};
	rc = r->cb.on_row(r->userdata, &row);
	return rc < 0 ? rc : 0;
}

/* Line of the first invalid byte of the record, 0 when it is valid UTF-8. */
static unsigned record_bad_line(const struct csv_reader *r)
{
	const unsigned char *s = (const unsigned char *)r->rec.data;
	size_t at = valid_utf8_span(s, r->rec.len);
	if (at == r->rec.len)
		return r->nul_line;

	unsigned line = r->rec_line;
	for (const unsigned char *p = s; (p = memchr(p, '\n', (size_t)(s + at - p))); p++)
		line_inc(&line);
	if (r->nul_line && r->nul_line < line)
		line = r->nul_line;
	return line;
}

/* Report the record's first cell over CSV_MAX_CELL_BYTES: 1 when there was
 * one (the record gets no other checks), 0, or a callback's failure. */
static int check_cells(struct csv_reader *r)
{
	for (size_t i = 0; i < r->n_cells; i++) {
		size_t len = cell_len(r, i);
		if (len <= CSV_MAX_CELL_BYTES)
			continue;
		int rc = report(r, r->rec_line, "cell %zu longer than %u bytes (%zu bytes; Excel's limit)",
		                i + 1, CSV_MAX_CELL_BYTES, len);
		return rc < 0 ? rc : 1;
	}
	return 0;
}

static int process_record(struct csv_reader *r)
{
	int rc;

	if (r->too_long) {
		if (r->too_long_quoted)
			return report(r, r->quote_line,
			              "quoted field longer than %zu bytes (unterminated quote?)",
			              r->max_record);
		return report(r, r->rec_line, "record too long (more than %zu bytes)",
		              r->max_record);
	}
	if (r->unterminated)
		return report(r, r->quote_line, "unterminated quote");

	unsigned bad_line = record_bad_line(r);
	bool blank = r->rec.len == r->n_cells; /* every cell empty */
	if (blank && !bad_line)
		return 0;
	rc = build_fields(r);
	if (rc < 0)
		return rc;

	if (r->phase == PHASE_HEADER) {
		if (bad_line) {
			rc = report_bad_utf8(r, bad_line);
			if (rc < 0)
				return rc;
		}
		rc = check_cells(r);
		return rc != 0 ? (rc < 0 ? rc : 0) : process_header(r);
	}

	bool example = r->format == CSV_FORMAT_PORTAL && ascii_prefix(r->fields[0], "Example:");
	if (!example && !blank) {
		if (r->max_rows && r->rows == r->max_rows) {
			r->phase = PHASE_DONE;
			return report(r, r->rec_line, "more than %zu rows (max_rows)", r->max_rows);
		}
		r->rows++;
	}
	if (bad_line)
		return report_bad_utf8(r, bad_line);
	rc = check_cells(r);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	if (example) {
		if (!r->example_line)
			r->example_line = r->rec_line;
		return 0;
	}
	return process_row(r);
}

/* Lex and process every complete record of [p, end). */
static int feed_records(struct csv_reader *r, const unsigned char *p, const unsigned char *end)
{
	while (p < end && r->phase != PHASE_DONE) {
		int rc = lex(r, &p, end);
		if (rc <= 0)
			return rc;
		rc = process_record(r);
		rec_reset(r);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- preamble ---- */

/*
 * Split one complete preamble record with sep into r->rec/r->fields and
 * classify it; the lexer is left reset.
 */
static int split_classify(struct csv_reader *r, const unsigned char *p, size_t n, char sep,
                          struct header_map *m)
{
	const unsigned char *end = p + n;
	unsigned line = r->line;
	int rc;

	r->sep = sep;
	rec_reset(r);
	rc = lex(r, &p, end);
	if (rc == 0)
		rc = lex_finish(r);
	if (rc > 0)
		rc = build_fields(r);
	if (rc == 0 && !r->too_long) {
		classify(r->n_cells, r->fields, m);
	} else {
		m->format = CSV_FORMAT_UNKNOWN;
		m->score = 0;
	}
	r->line = line;
	rec_reset(r);
	return rc < 0 ? rc : 0;
}

static bool raw_blank(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strchr(" \t\r\n,;", p[i]) || p[i] == '\0')
			return false;
	return true;
}

static bool raw_is_version(const unsigned char *p, size_t n)
{
	static const char version[] = "version:";
	size_t k = sizeof(version) - 1;

	while (n > 0 && (*p == ' ' || *p == '\t' || *p == '"')) {
		p++;
		n--;
	}
	return n >= k && ascii_eq_n((const char *)p, version, k);
}

/* One complete record of the preamble is in r->raw; r->line is its first line. */
static int preamble_record(struct csv_reader *r)
{
	const unsigned char *p = (const unsigned char *)r->raw.data;
	size_t n = r->raw.len;
	unsigned newlines = r->raw_nl;
	bool first = r->at_start;
	bool in_quote = r->raw_in_quote; /* only at finish */
	int rc = 0;

	r->at_start = false;
	r->raw_nl = 0;
	r->raw_in_quote = false;
	if (first && n >= 2 && ((p[0] == 0xff && p[1] == 0xfe) || (p[0] == 0xfe && p[1] == 0xff))) {
		rc = report_no_header(r, "the file is UTF-16; save it as CSV UTF-8");
		goto out;
	}
	if (first && n >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
		p += 3;
		n -= 3;
	}
	if (raw_blank(p, n) || (!r->seen_version && raw_is_version(p, n))) {
		if (!raw_blank(p, n))
			r->seen_version = true;
		if (memchr(p, '\0', n) || valid_utf8_span(p, n) != n)
			rc = report_bad_utf8(r, r->line);
		for (unsigned i = 0; i < newlines; i++)
			line_inc(&r->line);
		goto out;
	}

	struct header_map comma, semicolon;
	rc = split_classify(r, p, n, ',', &comma);
	if (rc == 0)
		rc = split_classify(r, p, n, ';', &semicolon);
	if (rc < 0)
		goto out;
	if (comma.format == CSV_FORMAT_UNKNOWN && semicolon.format == CSV_FORMAT_UNKNOWN) {
		if (in_quote)
			rc = report(r, r->raw_quote_line, "unterminated quote");
		if (rc == 0)
			rc = report_no_header(r, NULL);
		goto out;
	}
	/*
	 * ';' only when it recognizes more columns, or as many with fewer
	 * leftover cells: splitting "Email, required [inviteeEmail];..." at
	 * ',' still finds the tokens but leaves a fragment "Email" behind.
	 */
	if (semicolon.score > comma.score ||
	    (semicolon.score == comma.score && semicolon.junk < comma.junk))
		r->sep = ';';
	else
		r->sep = ',';
	r->phase = PHASE_HEADER;
	rec_reset(r);
	rc = feed_records(r, p, p + n);
out:
	buf_clear(&r->raw);
	return rc;
}

/* Buffer preamble records from [*pp, end) until the header row is in. */
static int feed_preamble(struct csv_reader *r, const unsigned char **pp, const unsigned char *end)
{
	const unsigned char *p = *pp;
	int rc = 0;

	while (p < end && r->phase == PHASE_PREAMBLE) {
		const unsigned char *q = p;
		while (q < end && *q != '\n' && *q != '"')
			q++;
		size_t n = (size_t)(q - p) + (q < end);
		if (n > r->max_record - r->raw.len) {
			r->phase = PHASE_DONE;
			if (r->raw_in_quote)
				rc = report(
				    r, r->raw_quote_line,
				    "quoted field longer than %zu bytes (unterminated quote?)",
				    r->max_record);
			else
				rc = report(r, r->line, "record too long (more than %zu bytes)",
				            r->max_record);
			break;
		}
		rc = buf_append(&r->raw, p, n);
		if (rc < 0)
			break;
		p += n;
		if (q == end)
			break;
		if (*q == '"') {
			r->raw_in_quote = !r->raw_in_quote;
			if (r->raw_in_quote)
				r->raw_quote_line = r->line + r->raw_nl;
			continue;
		}
		r->raw_nl++;
		if (!r->raw_in_quote) {
			rc = preamble_record(r);
			if (rc < 0)
				break;
		}
	}
	*pp = p;
	return rc;
}

/* The header and nothing else (or only the template's example). */
static int report_no_guests(struct csv_reader *r)
{
	if (r->example_line)
		return report(r, r->example_line,
		              "no guests in the file: replace the template's Example: row "
		              "with your guests");
	return report(r, r->header_line, "no guests in the file");
}

/* ---- public reader API ---- */

int csv_reader_create(struct csv_reader **ret, const struct csv_limits *limits,
                      const struct csv_callbacks *cb, void *userdata)
{
	struct csv_reader *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return -ENOMEM;
	if (cb)
		r->cb = *cb;
	r->userdata = userdata;
	r->max_rows = limits ? limits->max_rows : 0;
	r->max_record = limits && limits->max_record_bytes ? limits->max_record_bytes
	                                                   : CSV_DEFAULT_MAX_RECORD_BYTES;
	r->phase = PHASE_PREAMBLE;
	r->sep = ',';
	for (size_t c = 0; c < N_COLS; c++)
		r->col[c] = NO_COL;
	r->at_start = true;
	r->line = 1;
	buf_init(&r->raw);
	buf_init(&r->rec);
	buf_init(&r->msg);
	rec_reset(r);
	rc = buf_reserve(&r->rec, 4096);
	if (rc < 0)
		goto out;
	*ret = r;
	r = NULL;
out:
	csv_reader_destroy(r);
	return rc;
}

int csv_reader_feed(struct csv_reader *r, const void *data, size_t len)
{
	const unsigned char *p = data, *end = p + len;
	int rc = 0;

	if (r->rc < 0)
		return r->rc;
	if (len == 0)
		return 0;
	if (r->phase == PHASE_PREAMBLE)
		rc = feed_preamble(r, &p, end);
	if (rc == 0 && (r->phase == PHASE_HEADER || r->phase == PHASE_ROWS))
		rc = feed_records(r, p, end);
	if (rc < 0)
		r->rc = rc;
	return rc;
}

int csv_reader_finish(struct csv_reader *r)
{
	int rc = 0;

	if (r->rc < 0)
		return r->rc;
	if (r->phase == PHASE_PREAMBLE && r->raw.len > 0)
		rc = preamble_record(r);
	if (rc == 0 && r->phase == PHASE_PREAMBLE)
		rc = report_no_header(r, NULL);
	if (rc == 0 && (r->phase == PHASE_HEADER || r->phase == PHASE_ROWS)) {
		rc = lex_finish(r);
		if (rc > 0)
			rc = process_record(r);
		rec_reset(r);
		if (rc == 0 && r->phase == PHASE_HEADER)
			rc = report_no_header(r, NULL);
		else if (rc == 0 && r->phase == PHASE_ROWS && r->rows == 0)
			rc = report_no_guests(r);
	}
	r->phase = PHASE_DONE;
	if (rc < 0)
		r->rc = rc;
	return rc;
}

size_t csv_reader_rows(const struct csv_reader *r)
{
	return r->rows;
}

size_t csv_reader_errors(const struct csv_reader *r)
{
	return r->errors;
}

enum csv_format csv_reader_format(const struct csv_reader *r)
{
	return r->format;
}

void csv_reader_destroy(struct csv_reader *r)
{
	if (!r)
		return;
	buf_finish(&r->raw);
	buf_finish(&r->rec);
	buf_finish(&r->msg);
	free(r->offs);
	free(r->fields);
	free(r);
}
