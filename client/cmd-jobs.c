/* SPDX-License-Identifier: MIT */
/* jobs and show: the job list, one job and its rows. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "table.h"

#define TIME_TEXT_MAX 64
#define JOBS_MAX_PAGES 100000 /* of `jobs` replies: a bound, not a limit met */

static const struct table_column job_columns[] = {
    {"ID", TABLE_RIGHT},      {"STATE", TABLE_LEFT},     {"SUBMITTED", TABLE_LEFT},
    {"BY", TABLE_LEFT},       {"TENANT", TABLE_LEFT},    {"TOTAL", TABLE_RIGHT},
    {"SUCCESS", TABLE_RIGHT}, {"FAILURE", TABLE_RIGHT},  {"SKIPPED", TABLE_RIGHT},
    {"PENDING", TABLE_RIGHT}, {"ACCEPTED", TABLE_RIGHT}, {"NAME", TABLE_LEFT},
};
#define N_JOB_COLUMNS (sizeof(job_columns) / sizeof(job_columns[0]))

static const char *submitter(const json_t *job)
{
	const char *user = cli_str(json_object_get(job, "submitted_by"), "user");
	return user ? user : "?";
}

static int add_job_row(const struct cli *cli, struct table *t, const json_t *job)
{
	char id[CLI_INT_MAX], total[CLI_INT_MAX], ok[CLI_INT_MAX], failed[CLI_INT_MAX],
	    skipped[CLI_INT_MAX], pending[CLI_INT_MAX], accepted[CLI_INT_MAX], when[TIME_TEXT_MAX];
	const char *state = cli_str(job, "state");
	cli_local_time(cli_str(job, "created_at"), when, sizeof(when));
	const char *cells[N_JOB_COLUMNS] = {
	    cli_int_text(job, "id", id),
	    state,
	    when,
	    submitter(job),
	    cli_str(job, "tenant"),
	    cli_int_text(job, "total", total),
	    cli_int_text(job, "succeeded", ok),
	    cli_int_text(job, "failed", failed),
	    cli_int_text(job, "skipped", skipped),
	    cli_int_text(job, "pending", pending),
	    cli_int_text(job, "accepted", accepted),
	    cli_str(job, "name"),
	};
	const char *sgr[N_JOB_COLUMNS] = {NULL, cli_state_sgr(cli, state)};
	return table_add_row(t, cells, sgr);
}

static int print_jobs(const struct cli *cli, const json_t *jobs, const struct cli_list_opts *lo)
{
	struct table *t = NULL;
	if (lo->quiet) {
		for (size_t i = 0; i < json_array_size(jobs); i++)
			printf("%" JSON_INTEGER_FORMAT "\n",
			       cli_int(json_array_get(jobs, i), "id"));
		return EXIT_DONE;
	}
	int r = table_create(&t, N_JOB_COLUMNS, job_columns);
	if (r == 0 && lo->no_legend)
		table_hide_header(t);
	for (size_t i = 0; r == 0 && i < json_array_size(jobs); i++)
		r = add_job_row(cli, t, json_array_get(jobs, i));
	if (r == 0)
		r = table_flush(t, stdout);
	table_destroy(t);
	if (r == -ENOMEM)
		cli_error("out of memory");
	return r == -ENOMEM ? EXIT_TEMPFAIL : EXIT_DONE; /* write errors: main checks stdout */
}

enum {
	OPT_ALL = CLI_OPT_FIRST_LOCAL,
	OPT_NO_LEGEND,
	OPT_STATE,
	OPT_NO_PAGER,
	OPT_TENANT,
};

/* -q, --no-legend (both commands); CLI_CONTINUE when opt was one of them. */
static int list_option(struct cli_list_opts *lo, int opt)
{
	if (opt == 'q')
		lo->quiet = true;
	else if (opt == OPT_NO_LEGEND)
		lo->no_legend = true;
	else
		return 0;
	return CLI_CONTINUE;
}

static int check_list_opts(struct cli *cli, const struct cli_list_opts *lo)
{
	if (lo->quiet && cli->json)
		return cli_usage(cli, "-q and --json exclude each other");
	return CLI_CONTINUE;
}

int cmd_jobs(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"all", no_argument, NULL, OPT_ALL},
	    {"tenant", required_argument, NULL, OPT_TENANT},
	    {"quiet", no_argument, NULL, 'q'},
	    {"no-legend", no_argument, NULL, OPT_NO_LEGEND},
	    CLI_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_t *req = NULL, *reply = NULL, *jobs = NULL;
	struct cli_list_opts lo = {false, false};
	const char *tenant = NULL;
	bool all = false;
	int c, r;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "q", opts, NULL)) != -1) {
		if (c == OPT_ALL) {
			all = true;
			continue;
		}
		if (c == OPT_TENANT) {
			tenant = optarg;
			continue;
		}
		if (list_option(&lo, c) == CLI_CONTINUE)
			continue;
		r = cli_common_option(cli, c);
		if (r != CLI_CONTINUE)
			return r;
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	r = check_list_opts(cli, &lo);
	if (r == CLI_CONTINUE && tenant)
		r = cli_check_tenant_name(cli, tenant);
	if (r != CLI_CONTINUE)
		return r;
	/* page by page (each reply fits a frame): `next` is the `before` of the next */
	jobs = json_array();
	r = jobs ? EXIT_DONE : EXIT_TEMPFAIL;
	for (json_int_t before = 0, page = 0; r == EXIT_DONE && page < JOBS_MAX_PAGES; page++) {
		json_t *got = NULL;
		req = cli_request("jobs", 0);
		if (req &&
		    ((all && json_object_set_new(req, "all", json_true()) < 0) ||
		     (tenant && json_object_set_new(req, "tenant", json_string(tenant)) < 0) ||
		     (before && json_object_set_new(req, "before", json_integer(before)) < 0))) {
			json_decref(req);
			req = NULL;
		}
		r = cli_call(cli, req, &reply);
		if (r == EXIT_DONE)
			r = cli_take(reply, "jobs", JSON_ARRAY, &got);
		if (r == EXIT_DONE && json_array_extend(jobs, got) < 0)
			r = EXIT_TEMPFAIL;
		json_decref(got);
		json_t *next = r == EXIT_DONE ? json_object_get(reply, "next") : NULL;
		json_int_t n = json_is_integer(next) ? json_integer_value(next) : 0;
		json_decref(reply);
		reply = NULL;
		if (n <= 0 || (before && n >= before))
			break; /* the last page (or a daemon without paging) */
		before = n;
	}
	if (r == EXIT_DONE && cli->json)
		cli_print_json(jobs);
	else if (r == EXIT_DONE)
		r = print_jobs(cli, jobs, &lo);
	json_decref(jobs);
	json_decref(reply);
	return r;
}

/* show --state: the row states, and the filters of SPEC §8 (ONBOARD.md) */
static const char *const row_states[] = {
    "pending", "in_flight", "succeeded",    "failed",       "cancelled",
    "skipped", "accepted",  "not-accepted", "group-failed",
};

static const struct table_column row_columns[] = {
    {"LINE", TABLE_RIGHT},     {"EMAIL", TABLE_LEFT},  {"STATE", TABLE_LEFT},
    {"ATTEMPTS", TABLE_RIGHT}, {"RESULT", TABLE_LEFT},
};
#define N_ROW_COLUMNS (sizeof(row_columns) / sizeof(row_columns[0]))
/* a job that sends our own mail ([mail]): MAILED before RESULT */
static const struct table_column mail_row_columns[] = {
    {"LINE", TABLE_RIGHT},     {"EMAIL", TABLE_LEFT},  {"STATE", TABLE_LEFT},
    {"ATTEMPTS", TABLE_RIGHT}, {"MAILED", TABLE_LEFT}, {"RESULT", TABLE_LEFT},
};
#define N_MAIL_ROW_COLUMNS (sizeof(mail_row_columns) / sizeof(mail_row_columns[0]))

struct show {
	struct cli *cli;
	struct cli_list_opts lo;
	struct table *table; /* human output */
	struct buf result;   /* the RESULT cell being built */
	size_t printed;      /* --json: rows printed so far */
	bool mail;           /* the job sends our mail: the MAILED column */
};

/* Plain words for Graph's codes and for failures without an answer, shown
 * before Graph's own code. */
static const struct {
	const char *code; /* error_code, or NULL to match http alone */
	long http;        /* 0: any */
	const char *words;
} reasons[] = {
    {"Timeout", 0, "Graph did not answer in time"},
    {"ConnectionRefused", 0, "could not connect to Graph"},
    {"ConnectionReset", 0, "the connection to Graph broke"},
    {"HostUnreachable", 0, "Graph's host is unreachable"},
    {"ResponseTooLarge", 0, "Graph's answer was too large to read"},
    {"BadResponse", 0, "Graph's answer could not be read"},
    {"TransportError", 0, "no answer from Graph"},
    {NULL, 400, "Graph refused the invitation"},
    {NULL, 401, "Graph refused invited's sign-in"},
    {NULL, 403,
     "not allowed: the app needs User.Invite.All and the tenant must allow B2B invitations"},
    {NULL, 404, "Graph does not know the invitations endpoint (check graph_url)"},
    {NULL, 429, "throttled by Graph on every attempt"},
    {NULL, 500, "Graph failed on every attempt (server error)"},
    {NULL, 502, "Graph failed on every attempt (server error)"},
    {NULL, 503, "Graph was unavailable on every attempt"},
    {NULL, 504, "Graph timed out on every attempt"},
};

static const char *plain_words(const char *code, long http)
{
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		if (reasons[i].code && code && strcmp(reasons[i].code, code) == 0)
			return reasons[i].words;
		if (!reasons[i].code && http > 0 && reasons[i].http == http)
			return reasons[i].words;
	}
	return NULL;
}

/* RESULT: the user id of a succeeded row; for a failed row why, in plain
 * words (Graph's message, or ours when there is none or no answer came),
 * then Graph's code and the HTTP status: "Graph refused the invitation
 * (BadRequest, HTTP 400)". */
static int outcome_text(const json_t *row, struct buf *b)
{
	const char *state = cli_str(row, "state");
	const char *code = cli_str(row, "error_code"), *msg = cli_str(row, "error_message");
	long http = (long)cli_int(row, "http_status");
	buf_clear(b);
	if (state && strcmp(state, "skipped") == 0) {
		/* "existing Guest <id> (PendingAcceptance)", "existing Member <id>" */
		const json_t *ex = json_object_get(row, "existing");
		const char *type = cli_str(ex, "type"), *inv = cli_str(ex, "state");
		const char *id = cli_str(row, "invited_user_id");
		int r = buf_printf(b, "existing %s %s", type ? type : "user", id ? id : "-");
		if (r == 0 && inv)
			r = buf_printf(b, " (%s)", inv);
		return r;
	}
	if (state && strcmp(state, "succeeded") == 0) {
		const char *id = cli_str(row, "invited_user_id");
		return buf_append_str(b, id ? id : "-");
	}
	if (!state || strcmp(state, "failed") != 0)
		return buf_append_str(b, "-");
	const char *words = plain_words(code, http);
	int r;
	if (http <= 0 && words) /* no HTTP answer: say what happened, then the detail */
		r = msg ? buf_printf(b, "%s: %s", words, msg) : buf_append_str(b, words);
	else if (msg)
		r = buf_append_str(b, msg);
	else
		r = buf_append_str(b, words ? words : "the invitation failed");
	if (r == 0 && code && http > 0)
		r = buf_printf(b, " (%s, HTTP %ld)", code, http);
	else if (r == 0 && code)
		r = buf_printf(b, " (%s)", code);
	else if (r == 0 && http > 0)
		r = buf_printf(b, " (HTTP %ld)", http);
	return r;
}

/* How far the row's group additions got (SPEC §8), after the outcome:
 * " [group failed: ID: reason; +N more]" for the first failed one, and
 * " [groups pending]" while some are not done. */
static int groups_text(const json_t *row, struct buf *b)
{
	const json_t *groups = json_object_get(row, "groups"), *first = NULL;
	size_t failed = 0, pending = 0;
	for (size_t i = 0; i < json_array_size(groups); i++) {
		const json_t *g = json_array_get(groups, i);
		const char *st = cli_str(g, "state");
		if (st && strcmp(st, "failed") == 0 && failed++ == 0)
			first = g;
		else if (st && strcmp(st, "pending") == 0)
			pending++;
	}
	int r = 0;
	if (first) {
		const char *id = cli_str(first, "id"), *why = cli_str(first, "error");
		r = buf_printf(b, " [group failed: %s", id ? id : "?");
		if (r == 0 && why)
			r = buf_printf(b, ": %s", why);
		if (r == 0 && failed > 1)
			r = buf_printf(b, "; +%zu more", failed - 1);
		if (r == 0)
			r = buf_append_str(b, "]");
	}
	if (r == 0 && pending > 0)
		r = buf_append_str(b, " [groups pending]");
	return r;
}

static int result_text(const json_t *row, struct buf *b)
{
	int r = outcome_text(row, b);
	return r == 0 ? groups_text(row, b) : r;
}

static int add_row(struct show *s, const json_t *row)
{
	char line[CLI_INT_MAX], attempts[CLI_INT_MAX];
	const char *state = cli_str(row, "state");
	int r = result_text(row, &s->result);
	if (r < 0)
		return r;
	if (s->mail) {
		/* the mail's state; a failed one's reason goes in RESULT */
		const json_t *m = json_object_get(row, "mail");
		const char *ms = json_is_object(m) ? cli_str(m, "state") : NULL;
		const char *why = ms && strcmp(ms, "failed") == 0 ? cli_str(m, "error") : NULL;
		if (why && (r = buf_printf(&s->result, " [mail failed: %s]", why)) < 0)
			return r;
		const char *cells[N_MAIL_ROW_COLUMNS] = {
		    cli_int_text(row, "line", line),         cli_str(row, "email"), state,
		    cli_int_text(row, "attempts", attempts), ms ? ms : "-",         s->result.data,
		};
		const char *sgr[N_MAIL_ROW_COLUMNS] = {NULL, NULL, cli_state_sgr(s->cli, state)};
		return table_add_row(s->table, cells, sgr);
	}
	const char *cells[N_ROW_COLUMNS] = {
	    cli_int_text(row, "line", line),         cli_str(row, "email"), state,
	    cli_int_text(row, "attempts", attempts), s->result.data,
	};
	const char *sgr[N_ROW_COLUMNS] = {NULL, NULL, cli_state_sgr(s->cli, state)};
	return table_add_row(s->table, cells, sgr);
}

static int show_page(void *userdata, const json_t *reply)
{
	struct show *s = userdata;
	const json_t *rows = json_object_get(reply, "rows");
	int r = 0;
	for (size_t i = 0; r == 0 && i < json_array_size(rows); i++) {
		const json_t *row = json_array_get(rows, i);
		if (s->lo.quiet) {
			printf("%" JSON_INTEGER_FORMAT "\n", cli_int(row, "line"));
			continue;
		}
		if (!s->cli->json) {
			r = add_row(s, row);
			continue;
		}
		if (s->printed++ > 0)
			fputc(',', stdout);
		json_dumpf(row, stdout, CLI_JSON_FLAGS);
	}
	if (r == 0 && !s->cli->json && !s->lo.quiet)
		r = table_flush(s->table, stdout);
	if (r == -ENOMEM) {
		cli_error("out of memory");
		return EXIT_TEMPFAIL;
	}
	if (cli_pager_gone(s->cli))
		return CLI_STOP; /* the person has seen enough */
	if (ferror(stdout)) {
		cli_error("cannot write to standard output");
		return EXIT_TEMPFAIL;
	}
	return EXIT_DONE;
}

/* A count of SPEC §8 (skipped, accepted, groups): NULL, so no line, when
 * the daemon does not send it (one from before §8). */
static const char *count_text(const json_t *job, const char *key, char out[CLI_INT_MAX])
{
	return json_is_integer(json_object_get(job, key)) ? cli_int_text(job, key, out) : NULL;
}

static void print_summary(const json_t *job)
{
	char id[CLI_INT_MAX], total[CLI_INT_MAX], ok[CLI_INT_MAX], failed[CLI_INT_MAX],
	    cancelled[CLI_INT_MAX], pending[CLI_INT_MAX], skipped[CLI_INT_MAX],
	    accepted[CLI_INT_MAX], gfail[CLI_INT_MAX], gpend[CLI_INT_MAX], created[TIME_TEXT_MAX],
	    finished[TIME_TEXT_MAX], mailed[CLI_INT_MAX], waits[TIME_TEXT_MAX];
	char mail_wait_text[TIME_TEXT_MAX + 64];
	const char *mail_wait = NULL, *wu = cli_str(job, "mail_waits_until");
	if (wu) {
		/* the mailbox's daily_limit is spent (SPEC §8) */
		cli_local_time(wu, waits, sizeof(waits));
		snprintf(mail_wait_text, sizeof(mail_wait_text),
		         "until %s (the mailbox's daily_limit is spent)", waits);
		mail_wait = mail_wait_text;
	}
	const char *name = cli_str(job, "name"), *fin = cli_str(job, "finished_at");
	const char *tn = cli_str(job, "tenant"), *dir = cli_str(job, "directory");
	struct buf tenant = BUF_INIT;
	/* "contoso (contoso.onmicrosoft.com)": the name, and the directory it is */
	if (tn && dir && strcmp(tn, dir) != 0)
		buf_printf(&tenant, "%s (%s)", tn, dir);
	cli_local_time(cli_str(job, "created_at"), created, sizeof(created));
	cli_local_time(fin, finished, sizeof(finished));
	const struct cli_kv kv[] = {
	    {"Job", cli_int_text(job, "id", id)},
	    {"Name", name ? name : "-"},
	    {"Tenant", tenant.data ? tenant.data : cli_str(job, "tenant")},
	    {"State", cli_str(job, "state")},
	    {"Reason", cli_str(job, "reason")},
	    {"Submitted", created},
	    {"Finished", fin ? finished : NULL},
	    {"By", submitter(job)},
	    {"Total", cli_int_text(job, "total", total)},
	    {"Succeeded", cli_int_text(job, "succeeded", ok)},
	    {"Failed", cli_int_text(job, "failed", failed)},
	    {"Skipped", count_text(job, "skipped", skipped)},
	    {"Cancelled", cli_int_text(job, "cancelled", cancelled)},
	    {"Pending", cli_int_text(job, "pending", pending)},
	    {"Accepted", count_text(job, "accepted", accepted)},
	    {"Group failures", count_text(job, "group_failures", gfail)},
	    {"Groups pending", count_text(job, "groups_pending", gpend)},
	    {"Mailed", json_is_true(json_object_get(job, "mail")) ? count_text(job, "mailed", mailed)
	                                                           : NULL},
	    {"Mail waits", mail_wait},
	};
	cli_print_kv(kv, sizeof(kv) / sizeof(kv[0]));
	buf_finish(&tenant);
}

static int parse_show_args(struct cli *cli, int argc, char **argv, struct cli_rows_query *q,
                           struct cli_list_opts *lo, bool *ret_no_pager)
{
	static const struct option opts[] = {
	    {"state", required_argument, NULL, OPT_STATE},
	    {"no-pager", no_argument, NULL, OPT_NO_PAGER},
	    {"quiet", no_argument, NULL, 'q'},
	    {"no-legend", no_argument, NULL, OPT_NO_LEGEND},
	    CLI_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "q", opts, NULL)) != -1) {
		if (list_option(lo, c) == CLI_CONTINUE)
			continue;
		if (c == OPT_NO_PAGER) {
			*ret_no_pager = true;
			continue;
		}
		if (c != OPT_STATE) {
			int r = cli_common_option(cli, c);
			if (r != CLI_CONTINUE)
				return r;
			continue;
		}
		q->state = NULL;
		for (size_t i = 0; i < sizeof(row_states) / sizeof(row_states[0]); i++)
			if (strcmp(optarg, row_states[i]) == 0)
				q->state = row_states[i];
		if (!q->state)
			return cli_usage(cli,
			                 "invalid state '%s': one of pending, in_flight, "
			                 "succeeded, failed, cancelled, skipped, accepted, "
			                 "not-accepted, group-failed expected",
			                 optarg);
	}
	int r = check_list_opts(cli, lo);
	if (r != CLI_CONTINUE)
		return r;
	return cli_job_operand(cli, argc - optind, argv + optind, &q->id);
}

int cmd_show(struct cli *cli, int argc, char **argv)
{
	struct cli_rows_query q = {.id = 0, .state = NULL, .input = false};
	struct show s = {
	    .cli = cli, .lo = {false, false}, .table = NULL, .result = BUF_INIT, .printed = 0};
	json_t *job = NULL;
	bool no_pager = false;
	int r = parse_show_args(cli, argc, argv, &q, &s.lo, &no_pager);
	if (r != CLI_CONTINUE)
		return r;
	r = cli_fetch_job(cli, q.id, &job);
	if (r != EXIT_DONE)
		goto out;
	s.mail = json_is_true(json_object_get(job, "mail"));
	if ((s.mail ? table_create(&s.table, N_MAIL_ROW_COLUMNS, mail_row_columns)
	            : table_create(&s.table, N_ROW_COLUMNS, row_columns)) < 0) {
		cli_error("out of memory");
		r = EXIT_TEMPFAIL;
		goto out;
	}
	/* a 100,000-row job is not dumped at a person: paged on a terminal */
	if (!cli->json && !no_pager)
		cli_pager_open(cli);
	if (cli->json) {
		/* streamed page by page: memory stays bounded whatever the job's size */
		fputs("{\"job\":", stdout);
		json_dumpf(job, stdout, CLI_JSON_FLAGS);
		fputs(",\"rows\":[", stdout);
	} else if (!s.lo.quiet && !s.lo.no_legend) {
		print_summary(job);
		fputc('\n', stdout);
	}
	if (s.lo.no_legend)
		table_hide_header(s.table);
	r = cli_rows_foreach(cli, &q, show_page, &s);
	if (r == CLI_STOP)
		r = EXIT_DONE;
	if (r == EXIT_DONE && cli->json)
		fputs("]}\n", stdout);
	cli_pager_close(cli);
out:
	json_decref(job);
	table_destroy(s.table);
	buf_finish(&s.result);
	return r;
}
