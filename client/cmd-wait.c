/* SPDX-License-Identifier: MIT */
/* wait and watch: follow a job until it ends; the exit code tells how. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "timeutil.h"

#define WATCH_INTERVAL_MS 500u

static bool job_ended(const json_t *job)
{
	const char *state = cli_str(job, "state");
	return state && (strcmp(state, "completed") == 0 || strcmp(state, "cancelled") == 0 ||
	                 strcmp(state, "blocked") == 0);
}

/* The one-line summary on stderr, and the exit code of SPEC §3:
 * 0 every row succeeded, 1 some failed or were cancelled, 75 blocked. */
static int job_outcome(const json_t *job)
{
	const char *state = cli_str(job, "state");
	json_int_t id = cli_int(job, "id"), total = cli_int(job, "total");
	json_int_t ok = cli_int(job, "succeeded"), failed = cli_int(job, "failed");
	json_int_t cancelled = cli_int(job, "cancelled"), pending = cli_int(job, "pending");
	bool ended = job_ended(job);
	bool blocked = ended && strcmp(state, "blocked") == 0;

	fprintf(stderr,
	        "Job %" JSON_INTEGER_FORMAT " %s: %" JSON_INTEGER_FORMAT
	        " succeeded, %" JSON_INTEGER_FORMAT " failed, %" JSON_INTEGER_FORMAT " cancelled",
	        id, state ? state : "in an unknown state", ok, failed, cancelled);
	if (pending > 0)
		fprintf(stderr, ", %" JSON_INTEGER_FORMAT " pending", pending);
	fprintf(stderr, " of %" JSON_INTEGER_FORMAT "\n", total);
	if (blocked) {
		const char *reason = cli_str(job, "reason");
		cli_error("job %" JSON_INTEGER_FORMAT " is blocked: %s", id,
		          reason ? reason : "no reason given");
		cli_error("hint: 'invitectl resume %" JSON_INTEGER_FORMAT
		          "' lifts the block once its cause is dealt with",
		          id);
		return EXIT_TEMPFAIL;
	}
	if (!ended) {
		cli_error("job %" JSON_INTEGER_FORMAT " has not ended", id);
		return EXIT_TEMPFAIL;
	}
	return failed > 0 || cancelled > 0 ? EXIT_JOB_FAILURES : EXIT_DONE;
}

/* The end of wait and watch: --json prints the job, then the summary. */
static int report_end(const struct cli *cli, const json_t *job)
{
	if (cli->json)
		cli_print_json(job);
	return job_outcome(job);
}

int cli_wait_job(struct cli *cli, json_int_t id)
{
	json_t *reply = NULL, *job = NULL;
	int r = cli_call(cli, cli_request("wait", id), &reply);
	if (r == EXIT_DONE)
		r = cli_take(reply, "job", JSON_OBJECT, &job);
	if (r == EXIT_DONE)
		r = report_end(cli, job);
	json_decref(job);
	json_decref(reply);
	return r;
}

/*
 * How watch shows progress. Only the line view exists for now; a TTY view
 * (bar, rate, ETA) becomes a second implementation chosen in cli_watch_job().
 */
struct progress {
	/* job: borrowed, the latest state; now_ms: the monotonic clock */
	void (*update)(struct progress *p, const json_t *job, uint64_t now_ms);
	/* watching is over: tidy the terminal, free what update kept */
	void (*finish)(struct progress *p);
	json_t *last; /* owned: the job as last shown, or NULL */
};

static bool same_progress(const json_t *a, const json_t *b)
{
	static const char *const counters[] = {"total", "succeeded", "failed", "cancelled",
	                                       "pending"};
	const char *sa = cli_str(a, "state"), *sb = cli_str(b, "state");
	if (!sa || !sb || strcmp(sa, sb) != 0)
		return false;
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		if (cli_int(a, counters[i]) != cli_int(b, counters[i]))
			return false;
	return true;
}

/* One line on stderr per change. */
static void lines_update(struct progress *p, const json_t *job, uint64_t now_ms)
{
	(void)now_ms;
	if (p->last && same_progress(p->last, job))
		return;
	json_decref(p->last);
	p->last = json_incref((json_t *)job);
	const char *state = cli_str(job, "state");
	json_int_t total = cli_int(job, "total"), pending = cli_int(job, "pending");
	fprintf(stderr,
	        "Job %" JSON_INTEGER_FORMAT " %s: %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
	        " done, %" JSON_INTEGER_FORMAT " succeeded, %" JSON_INTEGER_FORMAT
	        " failed, %" JSON_INTEGER_FORMAT " pending\n",
	        cli_int(job, "id"), state ? state : "?", total - pending, total,
	        cli_int(job, "succeeded"), cli_int(job, "failed"), pending);
}

static void lines_finish(struct progress *p)
{
	json_decref(p->last);
	p->last = NULL;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000u),
	                      .tv_nsec = (long)(ms % 1000u) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int cli_watch_job(struct cli *cli, json_int_t id)
{
	struct progress p = {.update = lines_update, .finish = lines_finish, .last = NULL};
	json_t *job = NULL;
	int r;
	for (;;) {
		r = cli_fetch_job(cli, id, &job);
		if (r != EXIT_DONE)
			break;
		p.update(&p, job, time_mono_ms());
		if (job_ended(job))
			break;
		json_decref(job);
		job = NULL;
		sleep_ms(WATCH_INTERVAL_MS);
	}
	p.finish(&p);
	if (r == EXIT_DONE)
		r = report_end(cli, job);
	json_decref(job);
	return r;
}

int cmd_wait(struct cli *cli, int argc, char **argv)
{
	json_int_t id;
	int r = cli_parse_job_args(cli, argc, argv, &id);
	return r == CLI_CONTINUE ? cli_wait_job(cli, id) : r;
}

int cmd_watch(struct cli *cli, int argc, char **argv)
{
	json_int_t id;
	int r = cli_parse_job_args(cli, argc, argv, &id);
	return r == CLI_CONTINUE ? cli_watch_job(cli, id) : r;
}
