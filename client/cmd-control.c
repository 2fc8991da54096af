/* SPDX-License-Identifier: MIT */
/* cancel, pause, resume, retry: idempotent job controls. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "client.h"

/* What changed, said on stderr: "Job 7: cancelled 3,112 pending rows",
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
    /* retry --groups (SPEC §8): "changed" counts additions, not rows */
    {"retry", "re-queued", "failed group addition", NULL, "no failed group additions to re-queue"},
};

/* code: retry's --error-code, or NULL; before: the job's state before the
 * request, when known (NULL otherwise) */
static void say(const struct control *c, const json_t *job, json_int_t id, json_int_t changed,
                const char *code, const char *before)
{
	const char *state = cli_str(job, "state");
	char n[CLI_GROUPED_MAX];
	struct buf b = BUF_INIT;
	buf_printf(&b, "Job %" JSON_INTEGER_FORMAT ": ", id);
	if (changed > 0 && c->rows)
		buf_printf(&b, "%s %s %s%s", c->verb, cli_grouped(changed, n), c->rows,
		           cli_plural(changed));
	else if (changed > 0)
		buf_append_str(&b, c->verb);
	else if (c->same_state && state && strcmp(state, c->same_state) == 0 && before &&
	         strcmp(before, state) != 0)
		/* the job changed state, no row did: nothing was pending (rows in
		 * flight, if any, finish) */
		buf_printf(&b, "%s; %s", c->verb, c->nothing);
	else if (c->same_state && state && strcmp(state, c->same_state) == 0)
		buf_printf(&b, "already %s", c->same_state);
	else if (code)
		buf_printf(&b, "no failed rows with error code %s to re-queue (job is %s)", code,
		           state ? state : "?");
	else
		buf_printf(&b, "%s (job is %s)", c->nothing, state ? state : "?");
	if (changed > 0 && code)
		buf_printf(&b, " with error code %s", code);
	/* the state word and the code came from the daemon: escaped */
	cli_line(stderr, "%s", b.data ? b.data : "");
	buf_finish(&b);
}

static int control(struct cli *cli, json_int_t id, const struct control *c, const char *code,
                   bool groups)
{
	json_t *req = NULL, *reply = NULL, *job = NULL, *old = NULL;
	/* "already cancelled" must not be said of a job this request cancelled */
	if (c->same_state) {
		int r = cli_fetch_job(cli, id, &old);
		if (r != EXIT_DONE)
			return r;
	}
	req = cli_request(c->op, id);
	if (req && code) {
		json_t *s = json_string(code);
		if (!s) {
			json_decref(req);
			return cli_usage(cli, "--error-code: not valid UTF-8");
		}
		if (json_object_set_new(req, "error_code", s) < 0) {
			json_decref(req);
			req = NULL;
		}
	}
	if (req && groups && json_object_set_new(req, "groups", json_true()) < 0) {
		json_decref(req);
		req = NULL;
	}
	int r = cli_call(cli, req, &reply);
	if (r == EXIT_DONE)
		r = cli_take(reply, "job", JSON_OBJECT, &job);
	if (r == EXIT_DONE) {
		json_int_t changed = cli_int(reply, "changed");
		say(c, job, id, changed, code, cli_str(old, "state"));
		if (cli->json) {
			/* the job, plus what this request changed */
			json_object_set_new(job, "changed", json_integer(changed));
			cli_print_json(job);
		}
	}
	json_decref(old);
	json_decref(job);
	json_decref(reply);
	return r;
}

static int simple_control(struct cli *cli, int argc, char **argv, const struct control *c)
{
	json_int_t id;
	int r = cli_parse_job_args(cli, argc, argv, &id);
	return r == CLI_CONTINUE ? control(cli, id, c, NULL, false) : r;
}

int cmd_cancel(struct cli *cli, int argc, char **argv)
{
	return simple_control(cli, argc, argv, &controls[0]);
}

int cmd_pause(struct cli *cli, int argc, char **argv)
{
	return simple_control(cli, argc, argv, &controls[1]);
}

/* resume --tenant NAME: {"op":"resume","tenant":NAME} lifts the tenant's
 * block or Retry-After pause (SPEC §7). Says what changed on stderr, as the
 * job controls do; --json prints the tenant object when the daemon sends one,
 * else the reply, with "changed". */
static int resume_tenant(struct cli *cli, const char *name)
{
	json_t *req = cli_request("resume", 0), *reply = NULL;
	int r = req ? cli_set_tenant(cli, req, name) : EXIT_TEMPFAIL;
	if (!req)
		cli_error("out of memory");
	if (r != CLI_CONTINUE) {
		json_decref(req);
		return r;
	}
	r = cli_call(cli, req, &reply);
	if (r != EXIT_DONE)
		goto out;
	const json_t *changed = json_object_get(reply, "changed");
	json_t *tenant = json_object_get(reply, "tenant");
	const char *state = cli_str(tenant, "state");
	if (!json_is_integer(changed) || json_integer_value(changed) > 0)
		cli_line(stderr, "Tenant %s: resumed", name);
	else if (state && strcmp(state, "ok") != 0)
		cli_line(stderr, "Tenant %s: still %s", name, state);
	else
		cli_line(stderr, "Tenant %s: not paused or blocked", name);
	if (cli->json && json_is_object(tenant)) {
		json_object_set_new(tenant, "changed", json_integer(json_integer_value(changed)));
		cli_print_json(tenant);
	} else if (cli->json) {
		json_object_del(reply, "ok");
		cli_print_json(reply);
	}
out:
	json_decref(reply);
	return r;
}

int cmd_resume(struct cli *cli, int argc, char **argv)
{
	enum { OPT_TENANT = CLI_OPT_FIRST_LOCAL };
	static const struct option opts[] = {
	    {"tenant", required_argument, NULL, OPT_TENANT},
	    CLI_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	const char *tenant = NULL;
	json_int_t id;
	int c;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
		if (c == OPT_TENANT) {
			tenant = optarg;
			continue;
		}
		int r = cli_common_option(cli, c);
		if (r != CLI_CONTINUE)
			return r;
	}
	if (tenant && optind < argc)
		return cli_usage(cli, "JOB and --tenant exclude each other: resume a job, or a "
		                      "tenant");
	if (tenant)
		return resume_tenant(cli, tenant);
	int r = cli_job_operand(cli, argc - optind, argv + optind, &id);
	return r == CLI_CONTINUE ? control(cli, id, &controls[2], NULL, false) : r;
}

int cmd_retry(struct cli *cli, int argc, char **argv)
{
	enum { OPT_ERROR_CODE = CLI_OPT_FIRST_LOCAL, OPT_GROUPS };
	static const struct option opts[] = {
	    {"error-code", required_argument, NULL, OPT_ERROR_CODE},
	    {"groups", no_argument, NULL, OPT_GROUPS},
	    CLI_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	const char *code = NULL;
	bool groups = false;
	json_int_t id;
	int c;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
		if (c == OPT_ERROR_CODE) {
			code = optarg;
			continue;
		}
		if (c == OPT_GROUPS) {
			groups = true;
			continue;
		}
		int r = cli_common_option(cli, c);
		if (r != CLI_CONTINUE)
			return r;
	}
	if (code && code[0] == '\0')
		return cli_usage(cli, "--error-code: empty code");
	/* --groups retries additions, --error-code picks failed rows */
	if (code && groups)
		return cli_usage(cli, "--error-code and --groups exclude each other");
	int r = cli_job_operand(cli, argc - optind, argv + optind, &id);
	if (r != CLI_CONTINUE)
		return r;
	return control(cli, id, &controls[groups ? 4 : 3], code, groups);
}
