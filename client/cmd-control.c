/* SPDX-License-Identifier: MIT */
/* cancel, pause, resume, retry: idempotent job controls. */
#include <stdio.h>
#include <string.h>

#include "client.h"

/* What changed, said on stderr: "Job 7: cancelled 3112 pending rows",
 * "Job 7: paused", "Job 7: already paused". */
struct control {
	const char *op;
	const char *verb;       /* what happened when "changed" > 0 */
	const char *rows;       /* "pending row": changed counts rows; NULL: 0 or 1 */
	const char *same_state; /* nothing changed in this state: "already ..." */
	const char *nothing;    /* nothing changed otherwise */
};

static const struct control controls[] = {
    {"cancel", "cancelled", "pending row", "cancelled", "no pending rows to cancel"},
    {"pause", "paused", NULL, "paused", "nothing to pause"},
    {"resume", "resumed", NULL, NULL, "not paused or blocked"},
    {"retry", "re-queued", "failed row", NULL, "no failed rows to re-queue"},
};

static void say(const struct control *c, const json_t *job, json_int_t id, json_int_t changed)
{
	const char *state = cli_str(job, "state");
	fprintf(stderr, "Job %" JSON_INTEGER_FORMAT ": ", id);
	if (changed > 0 && c->rows)
		fprintf(stderr, "%s %" JSON_INTEGER_FORMAT " %s%s", c->verb, changed, c->rows,
		        cli_plural(changed));
	else if (changed > 0)
		fputs(c->verb, stderr);
	else if (c->same_state && state && strcmp(state, c->same_state) == 0)
		fprintf(stderr, "already %s", c->same_state);
	else
		fprintf(stderr, "%s (job is %s)", c->nothing, state ? state : "?");
	fputc('\n', stderr);
}

static int control(struct cli *cli, int argc, char **argv, const struct control *c)
{
	json_t *reply = NULL, *job = NULL;
	json_int_t id;
	int r = cli_parse_job_args(cli, argc, argv, &id);
	if (r != CLI_CONTINUE)
		return r;
	r = cli_call(cli, cli_request(c->op, id), &reply);
	if (r == EXIT_DONE)
		r = cli_take(reply, "job", JSON_OBJECT, &job);
	if (r == EXIT_DONE) {
		say(c, job, id, cli_int(reply, "changed"));
		if (cli->json)
			cli_print_json(job);
	}
	json_decref(job);
	json_decref(reply);
	return r;
}

int cmd_cancel(struct cli *cli, int argc, char **argv)
{
	return control(cli, argc, argv, &controls[0]);
}

int cmd_pause(struct cli *cli, int argc, char **argv)
{
	return control(cli, argc, argv, &controls[1]);
}

int cmd_resume(struct cli *cli, int argc, char **argv)
{
	return control(cli, argc, argv, &controls[2]);
}

int cmd_retry(struct cli *cli, int argc, char **argv)
{
	return control(cli, argc, argv, &controls[3]);
}
