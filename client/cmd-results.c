/* SPDX-License-Identifier: MIT */
/* results: a job's outcome as CSV (RFC 4180), the input columns first. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "vis.h"

/* -o FILE is created like any tool creates a file: this mode less the
 * admin's umask (SPEC §9). */
#define RESULTS_FILE_MODE 0666

/* SPEC §3's columns, then SPEC §8's at the end (existing_type on), so that
 * scripts reading the first ones go on */
static const char *const result_columns[] = {
    "status",          "http_status",       "error_code",   "error_message",
    "invited_user_id", "invite_redeem_url", "attempts",     "finished_at",
    "existing_type",   "groups_state",      "group_errors", "mail_state",
    "mail_sent_at",    "accepted_at",       "resends",
};
#define N_RESULT_COLUMNS (sizeof(result_columns) / sizeof(result_columns[0]))

struct results {
	FILE *out;        /* stdout or the temporary file */
	const char *name; /* for messages: "standard output" or FILE */
	size_t ncols;     /* input columns, from the first page's "columns" */
	bool header_done;
	bool raw;          /* --raw: every cell exactly as stored */
	struct buf esc;    /* the cell being neutralized */
	struct buf errors; /* the row's group_errors cell being built */
};

/*
 * A cell as a spreadsheet may safely open it (SPEC §9; OWASP's CSV-injection
 * rule): one starting with '=', '+', '-', '@', TAB or CR gets a leading "'",
 * so Excel, LibreOffice and Sheets take it as text, not a formula; control
 * characters, C1 and bidi controls and invalid UTF-8 are shown escaped by vis
 * (flags 0). Applies to every cell: uploaded ones, the header's, Graph's
 * error_code and error_message. NULL when out of memory.
 */
static const char *safe_cell(struct buf *b, const char *s)
{
	buf_clear(b);
	bool formula = strchr("=+-@\t\r", s[0]) != NULL && s[0] != '\0';
	if (!formula && vis_is_clean(s, strlen(s), 0))
		return s;
	if ((formula && buf_append(b, "'", 1) < 0) || vis_append_str(b, s, 0) < 0)
		return NULL;
	return b->data;
}

/* One field, quoted when RFC 4180 needs it (and when surrounding spaces
 * would be trimmed by a reader like ours); neutralized unless --raw. */
static void put_field(struct results *res, const char *s, bool first)
{
	FILE *out = res->out;
	if (!first)
		fputc(',', out);
	if (!s)
		return;
	if (!res->raw && !(s = safe_cell(&res->esc, s)))
		s = "?"; /* out of memory: never the raw cell */
	size_t len = strlen(s);
	bool quote =
	    strpbrk(s, ",\"\r\n") != NULL ||
	    (len > 0 && (s[0] == ' ' || s[0] == '\t' || s[len - 1] == ' ' || s[len - 1] == '\t'));
	if (!quote) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

static void put_header(struct results *res, const json_t *columns)
{
	res->ncols = json_array_size(columns);
	for (size_t i = 0; i < res->ncols; i++)
		put_field(res, json_string_value(json_array_get(columns, i)), i == 0);
	for (size_t i = 0; i < N_RESULT_COLUMNS; i++)
		put_field(res, result_columns[i], res->ncols == 0 && i == 0);
	fputs("\r\n", res->out);
	res->header_done = true;
}

/* A member as CSV text: strings as they are, integers in decimal, null and
 * anything else empty. */
static const char *member_text(const json_t *row, const char *key, char num[CLI_INT_MAX])
{
	const json_t *v = json_object_get(row, key);
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v))
		return cli_int_text(row, key, num);
	return NULL;
}

/* groups_state: the worst of the row's additions, failed > pending > added
 * ("" when it has none); group_errors: "ID: error; ID: error" of the failed
 * ones (built in b). NULL for "none". */
static const char *groups_state(const json_t *row)
{
	static const char *const rank[] = {"added", "pending", "failed"};
	const json_t *groups = json_object_get(row, "groups");
	int worst = -1;
	for (size_t i = 0; i < json_array_size(groups); i++) {
		const char *st = cli_str(json_array_get(groups, i), "state");
		for (int k = 0; st && k < 3; k++)
			if (strcmp(st, rank[k]) == 0 && k > worst)
				worst = k;
	}
	return worst < 0 ? NULL : rank[worst];
}

static const char *group_errors(const json_t *row, struct buf *b)
{
	const json_t *groups = json_object_get(row, "groups");
	int r = 0;
	buf_clear(b);
	for (size_t i = 0; r == 0 && i < json_array_size(groups); i++) {
		const json_t *g = json_array_get(groups, i);
		const char *st = cli_str(g, "state"), *id = cli_str(g, "id");
		const char *why = cli_str(g, "error");
		if (!st || strcmp(st, "failed") != 0)
			continue;
		r = buf_printf(b, "%s%s: %s", b->len ? "; " : "", id ? id : "?",
		               why ? why : "failed");
	}
	if (r < 0)
		return "?"; /* out of memory: never a cell cut short */
	return b->len ? b->data : NULL;
}

static void put_row(struct results *res, const json_t *row)
{
	static const char *const members[] = {
	    "state",           "http_status",       "error_code", "error_message",
	    "invited_user_id", "invite_redeem_url", "attempts",   "finished_at",
	};
#define N_MEMBERS (sizeof(members) / sizeof(members[0]))
	const json_t *fields = json_object_get(row, "fields");
	const json_t *mail = json_object_get(row, "mail");
	char num[CLI_INT_MAX], resends[CLI_INT_MAX];
	/* as many input cells as the header has: short rows padded, trailing
	 * extra cells (Excel's ",,,") dropped */
	for (size_t i = 0; i < res->ncols; i++)
		put_field(res, json_string_value(json_array_get(fields, i)), i == 0);
	for (size_t i = 0; i < N_MEMBERS; i++)
		put_field(res, member_text(row, members[i], num), res->ncols == 0 && i == 0);
	/* SPEC §8: every cell through put_field, neutralized like the others */
	const char *onboard[N_RESULT_COLUMNS - N_MEMBERS] = {
	    cli_str(json_object_get(row, "existing"), "type"),
	    groups_state(row),
	    group_errors(row, &res->errors),
	    cli_str(mail, "state"),
	    cli_str(mail, "sent_at"),
	    cli_str(row, "accepted_at"),
	    member_text(row, "resends", resends),
	};
	for (size_t i = 0; i < N_RESULT_COLUMNS - N_MEMBERS; i++)
		put_field(res, onboard[i], false);
#undef N_MEMBERS
	fputs("\r\n", res->out);
}

static int write_error(const char *what, int err)
{
	cli_error("cannot write %s: %s", what, strerror(err));
	return err == EACCES || err == EPERM ? EXIT_NOPERM : EXIT_TEMPFAIL;
}

/* -o FILE cannot be created (no such directory, not writable, read-only
 * file system...): sysexits' EX_CANTCREAT, not a temporary failure. */
static int create_error(const char *file, int err)
{
	cli_error("cannot create output file %s: %s", file, strerror(err));
	return err == ENOMEM ? EXIT_TEMPFAIL : EXIT_CANTCREAT;
}

static int results_page(void *userdata, const json_t *reply)
{
	struct results *res = userdata;
	const json_t *rows = json_object_get(reply, "rows");
	if (!res->header_done)
		put_header(res, json_object_get(reply, "columns"));
	for (size_t i = 0; i < json_array_size(rows); i++)
		put_row(res, json_array_get(rows, i));
	/* once a page, so that a full disk stops the paging at once */
	return fflush(res->out) == 0 ? EXIT_DONE : write_error(res->name, errno);
}

static int parse_results_args(struct cli *cli, int argc, char **argv, json_int_t *ret_id,
                              const char **ret_file, bool *ret_bom, bool *ret_raw)
{
	enum { OPT_BOM = CLI_OPT_FIRST_LOCAL, OPT_RAW };
	static const struct option opts[] = {
	    {"output", required_argument, NULL, 'o'},
	    {"bom", no_argument, NULL, OPT_BOM},
	    {"raw", no_argument, NULL, OPT_RAW},
	    CLI_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "o:", opts, NULL)) != -1) {
		if (c == 'o') {
			*ret_file = optarg;
			continue;
		}
		if (c == OPT_BOM) {
			*ret_bom = true;
			continue;
		}
		if (c == OPT_RAW) {
			*ret_raw = true;
			continue;
		}
		int r = cli_common_option(cli, c);
		if (r != CLI_CONTINUE)
			return r;
	}
	if (*ret_file && (*ret_file)[0] == '\0')
		return cli_usage(cli, "-o: empty file name");
	return cli_job_operand(cli, argc - optind, argv + optind, ret_id);
}

/* Create FILE.XXXXXX beside file, its name in tmp; *ret is owned by the caller. */
static int open_temp(const char *file, struct buf *tmp, FILE **ret)
{
	if (buf_printf(tmp, "%s.XXXXXX", file) < 0)
		return create_error(file, ENOMEM);
	int fd = mkstemp(tmp->data);
	if (fd < 0)
		return create_error(file, errno);
	/* mkstemp makes it 0600; give it the mode open(2) would have */
	mode_t mask = umask(0);
	umask(mask);
	if (fchmod(fd, RESULTS_FILE_MODE & ~mask) < 0 || !(*ret = fdopen(fd, "w"))) {
		int err = errno;
		close(fd);
		unlink(tmp->data);
		return create_error(file, err);
	}
	return EXIT_DONE;
}

/* Flush, sync, close and rename into place; the temporary file is gone
 * afterwards whatever happens. */
static int commit_temp(FILE *f, const char *tmp, const char *file)
{
	int err = 0;
	errno = 0;
	if (fflush(f) != 0 || ferror(f))
		err = errno ? errno : EIO;
	else if (fsync(fileno(f)) < 0)
		err = errno;
	if (fclose(f) != 0 && err == 0)
		err = errno;
	bool renaming = false;
	if (err == 0 && rename(tmp, file) < 0) {
		err = errno;
		renaming = true;
	}
	if (err == 0)
		return EXIT_DONE;
	unlink(tmp);
	return renaming ? create_error(file, err) : write_error(file, err);
}

int cmd_results(struct cli *cli, int argc, char **argv)
{
	struct cli_rows_query q = {.id = 0, .state = NULL, .input = true};
	struct results res = {.out = stdout,
	                      .name = "standard output",
	                      .ncols = 0,
	                      .esc = BUF_INIT,
	                      .errors = BUF_INIT};
	struct buf tmp = BUF_INIT;
	const char *file = NULL;
	bool bom = false;
	int r = parse_results_args(cli, argc, argv, &q.id, &file, &bom, &res.raw);
	if (r != CLI_CONTINUE)
		return r;
	if (file) {
		res.name = file;
		r = open_temp(file, &tmp, &res.out);
		if (r != EXIT_DONE)
			goto out;
	}
	/* Excel reads a CSV as UTF-8 only when it starts with the byte order mark */
	if (bom)
		fputs("\xEF\xBB\xBF", res.out);
	r = cli_rows_foreach(cli, &q, results_page, &res);
	if (!file)
		goto out;
	if (r == EXIT_DONE) {
		r = commit_temp(res.out, tmp.data, file);
	} else {
		fclose(res.out);
		unlink(tmp.data);
	}
out:
	buf_finish(&tmp);
	buf_finish(&res.esc);
	buf_finish(&res.errors);
	return r;
}
