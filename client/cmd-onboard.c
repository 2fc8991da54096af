/* SPDX-License-Identifier: MIT */
/* resend and track: the guests who have not accepted yet (SPEC §8). */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "table.h"
#include "timeutil.h"

#define MS_PER_S 1000ull


static const struct table_column resend_columns[] = {
    {"LINE", TABLE_RIGHT},
    {"EMAIL", TABLE_LEFT},
    {"RESENDS", TABLE_RIGHT},
};
#define N_RESEND_COLUMNS (sizeof(resend_columns) / sizeof(resend_columns[0]))

/* --dry-run: the rows a resend would invite again (the first 100 the daemon
 * sends), through the table's escaping; "... and N more" when there are. */
static int print_resend_rows(const json_t *rows, json_int_t changed)
{
	struct table *t = NULL;
	char n[CLI_GROUPED_MAX];
	size_t count = json_array_size(rows);
	int r = table_create(&t, N_RESEND_COLUMNS, resend_columns);
	for (size_t i = 0; r == 0 && i < count; i++) {
		const json_t *row = json_array_get(rows, i);
		char line[CLI_INT_MAX], resends[CLI_INT_MAX];
		const char *cells[N_RESEND_COLUMNS] = {
		    cli_int_text(row, "line", line),
		    cli_str(row, "email"),
		    cli_int_text(row, "resends", resends),
		};
		r = table_add_row(t, cells, NULL);
	}
	if (r == 0 && count > 0)
		r = table_flush(t, stdout);
	table_destroy(t);
	if (r == -ENOMEM) {
		cli_error("out of memory");
		return EXIT_TEMPFAIL;
	}
	if (changed > (json_int_t)count && count > 0)
		cli_line(stderr, "... and %s more", cli_grouped(changed - (json_int_t)count, n));
	return EXIT_DONE; /* write errors: main checks stdout */
}

/* The reply of resend or track, as --json prints it: without "ok". */
static void print_reply_json(json_t *reply)
{
	json_object_del(reply, "ok");
	cli_print_json(reply);
}

int cmd_resend(struct cli *cli, int argc, char **argv)
{
	enum { OPT_OLDER_THAN = CLI_OPT_FIRST_LOCAL, OPT_DRY_RUN };
	static const struct option opts[] = {
	    {"older-than", required_argument, NULL, OPT_OLDER_THAN},
	    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
	    CLI_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_t *req = NULL, *reply = NULL;
	const char *older = NULL;
	bool dry_run = false;
	uint64_t older_ms = 0;
	json_int_t id;
	int c, r;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
		if (c == OPT_OLDER_THAN) {
			older = optarg;
			continue;
		}
		if (c == OPT_DRY_RUN) {
			dry_run = true;
			continue;
		}
		r = cli_common_option(cli, c);
		if (r != CLI_CONTINUE)
			return r;
	}
	if (older && time_parse_duration(older, &older_ms) < 0)
		return cli_usage(cli,
		                 "--older-than '%s': seconds, or a number with s, m, h or d "
		                 "expected (30, 90s, 1.5h, 2d)",
		                 older);
	r = cli_job_operand(cli, argc - optind, argv + optind, &id);
	if (r != CLI_CONTINUE)
		return r;
	req = cli_request("resend", id);
	if (req &&
	    ((older && json_object_set_new(req, "older_than_s",
	                                   json_integer((json_int_t)(older_ms / MS_PER_S))) < 0) ||
	     (dry_run && json_object_set_new(req, "dry_run", json_true()) < 0))) {
		json_decref(req);
		req = NULL;
	}
	r = cli_call(cli, req, &reply);
	if (r != EXIT_DONE)
		goto out;
	json_int_t changed = cli_int(reply, "changed");
	char n[CLI_GROUPED_MAX];
	/* said on stderr as the job controls say what they changed */
	cli_line(stderr, "Job %" JSON_INTEGER_FORMAT ": %s row%s %sre-invited", id,
	         cli_grouped(changed, n), cli_plural(changed), dry_run ? "would be " : "");
	if (cli->json)
		print_reply_json(reply);
	else if (dry_run)
		r = print_resend_rows(json_object_get(reply, "rows"), changed);
out:
	json_decref(reply);
	return r;
}

int cmd_track(struct cli *cli, int argc, char **argv)
{
	json_t *reply = NULL;
	json_int_t id;
	int r = cli_parse_job_args(cli, argc, argv, &id);
	if (r != CLI_CONTINUE)
		return r;
	r = cli_call(cli, cli_request("track", id), &reply);
	if (r != EXIT_DONE)
		goto out;
	json_int_t changed = cli_int(reply, "changed");
	const json_t *tracking = json_object_get(json_object_get(reply, "job"), "tracking");
	char n[CLI_GROUPED_MAX];
	if (changed == 0 && json_is_false(tracking))
		cli_line(stderr,
		         "Job %" JSON_INTEGER_FORMAT ": acceptance is not tracked for this job "
		         "([queue] track_days, lookup)",
		         id);
	else
		cli_line(stderr,
		         "Job %" JSON_INTEGER_FORMAT
		         ": acceptance check of %s row%s brought forward",
		         id, cli_grouped(changed, n), cli_plural(changed));
	if (cli->json)
		print_reply_json(reply);
out:
	json_decref(reply);
	return r;
}
