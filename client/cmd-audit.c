/* SPDX-License-Identifier: MIT */
/* audit and reload: the audit trail, and re-reading the daemon's configuration. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "table.h"

#define TIME_TEXT_MAX 64
#define AUDIT_PAGE 1000

static const struct table_column audit_columns[] = {
    {"TIME", TABLE_LEFT}, {"UID", TABLE_RIGHT},   {"USER", TABLE_LEFT}, {"ACTION", TABLE_LEFT},
    {"JOB", TABLE_RIGHT}, {"SHA256", TABLE_LEFT}, {"DETAIL", TABLE_LEFT},
};
#define N_AUDIT_COLUMNS (sizeof(audit_columns) / sizeof(audit_columns[0]))

static int add_entry(struct table *t, const json_t *e)
{
	char uid[CLI_INT_MAX], job[CLI_INT_MAX], when[TIME_TEXT_MAX];
	cli_local_time(cli_str(e, "at"), when, sizeof(when));
	const char *cells[N_AUDIT_COLUMNS] = {
	    when,
	    json_is_integer(json_object_get(e, "uid")) ? cli_int_text(e, "uid", uid) : NULL,
	    cli_str(e, "user"),
	    cli_str(e, "action"),
	    json_is_integer(json_object_get(e, "job")) ? cli_int_text(e, "job", job) : NULL,
	    cli_str(e, "sha256"),
	    cli_str(e, "detail"),
	};
	return table_add_row(t, cells, NULL);
}

int cmd_audit(struct cli *cli, int argc, char **argv)
{
	enum { OPT_JOB = CLI_OPT_FIRST_LOCAL, OPT_LIMIT };
	static const struct option opts[] = {
	    {"job", required_argument, NULL, OPT_JOB},
	    {"limit", required_argument, NULL, OPT_LIMIT},
	    CLI_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_int_t job = 0, limit = 100;
	int c, r;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
		if (c == OPT_JOB) {
			if (cli_parse_job_id(optarg, &job) < 0)
				return cli_usage(cli, "invalid job id '%s'", optarg);
		} else if (c == OPT_LIMIT) {
			if (cli_parse_job_id(optarg, &limit) < 0 || limit > 1000000)
				return cli_usage(cli, "invalid --limit '%s': 1 to 1000000", optarg);
		} else {
			r = cli_common_option(cli, c);
			if (r != CLI_CONTINUE)
				return r;
		}
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);

	struct table *t = NULL;
	if (!cli->json && table_create(&t, N_AUDIT_COLUMNS, audit_columns) < 0) {
		cli_error("out of memory");
		return EXIT_TEMPFAIL;
	}
	json_t *all = cli->json ? json_array() : NULL;
	json_int_t before = 0, shown = 0;
	r = EXIT_DONE;
	/* newest first, a page at a time, until --limit entries or the end */
	while (r == EXIT_DONE && shown < limit) {
		json_int_t want = limit - shown < AUDIT_PAGE ? limit - shown : AUDIT_PAGE;
		json_t *req = json_pack("{s:s,s:I,s:I,s:I}", "op", "audit", "job", job, "before",
		                        before, "limit", want);
		json_t *reply = NULL, *entries = NULL;
		r = cli_call(cli, req, &reply);
		if (r == EXIT_DONE)
			r = cli_take(reply, "entries", JSON_ARRAY, &entries);
		for (size_t i = 0; r == EXIT_DONE && i < json_array_size(entries); i++) {
			json_t *e = json_array_get(entries, i);
			if (all)
				json_array_append(all, e);
			else if (add_entry(t, e) < 0)
				r = EXIT_TEMPFAIL;
			shown++;
		}
		before = cli_int(reply, "next");
		size_t got = json_array_size(entries);
		json_decref(entries);
		json_decref(reply);
		if (before <= 0 || got == 0)
			break;
	}
	if (r == EXIT_DONE && all)
		cli_print_json(all);
	else if (r == EXIT_DONE && table_flush(t, stdout) < 0)
		r = EXIT_TEMPFAIL;
	json_decref(all);
	table_destroy(t);
	return r;
}

int cmd_reload(struct cli *cli, int argc, char **argv)
{
	int r = cli_parse_simple(cli, argc, argv, NULL, NULL, 0);
	if (r != CLI_CONTINUE)
		return r;
	json_t *reply = NULL;
	r = cli_call(cli, cli_request("reload", 0), &reply);
	if (r == EXIT_DONE) {
		const char *m = cli_str(reply, "message");
		cli_line(stderr, "invited: %s", m ? m : "reloaded");
		if (cli->json)
			cli_print_json(reply);
	}
	json_decref(reply);
	return r;
}
