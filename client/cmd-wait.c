/* SPDX-License-Identifier: MIT */
/* wait and watch: follow a job until it ends; the exit code tells how. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "timeutil.h"
#include "vis.h"

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

	char more[3 * CLI_INT_MAX + 64] = "";
	json_int_t skipped = cli_int(job, "skipped"), gfail = cli_int(job, "group_failures");
	size_t m = 0;
	/* SPEC §8's counts only when there are some: the line stays as it was */
	if (skipped > 0)
		m += (size_t)snprintf(more + m, sizeof(more) - m, ", %" JSON_INTEGER_FORMAT " skipped",
				      skipped);
	if (pending > 0 && m < sizeof(more))
		m += (size_t)snprintf(more + m, sizeof(more) - m, ", %" JSON_INTEGER_FORMAT " pending",
				      pending);
	if (gfail > 0 && m < sizeof(more))
		snprintf(more + m, sizeof(more) - m,
			 ", %" JSON_INTEGER_FORMAT " with a failed group addition", gfail);
	cli_line(stderr,
	         "Job %" JSON_INTEGER_FORMAT " %s: %" JSON_INTEGER_FORMAT
	         " succeeded, %" JSON_INTEGER_FORMAT " failed, %" JSON_INTEGER_FORMAT
	         " cancelled%s of %" JSON_INTEGER_FORMAT,
	         id, state ? state : "in an unknown state", ok, failed, cancelled, more, total);
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
 * How watch shows progress, on stderr (SPEC §3: progress goes there):
 * - stderr is a terminal: one status line redrawn in place (bar, done/total,
 *   succeeded, failed, rate, ETA), written with one write(2) per redraw
 *   ("\r", the line, erase to the end of the line) so it never flickers,
 *   the cursor hidden meanwhile and shown again at the end or on a signal;
 * - otherwise: one plain line per change, at most one a second (the last
 *   state is always printed).
 */
#define RATE_SAMPLES 32       /* polls kept for the rate: 16 s at 500 ms */
#define RATE_WINDOW_MS 10000u /* the rate is measured over the last 10 s */
#define LINES_MIN_INTERVAL_MS 1000u
#define BAR_MIN 10u           /* narrower than this: no bar */
#define LINE_MAX_COLUMNS 400u /* a wider terminal still gets a line this long */

struct sample {
	uint64_t ms;
	json_int_t done;
};

struct progress {
	bool tty;
	json_t *last;           /* owned: the job as last shown, or NULL */
	uint64_t last_print_ms; /* lines: when the last line was printed */
	bool pending_line;      /* lines: a change not printed yet (too soon) */
	struct sample samples[RATE_SAMPLES];
	size_t n_samples, head; /* ring: head is the next slot */
	bool drawn;             /* tty: a line is on the screen */
	struct buf line;
};

static json_int_t job_done_count(const json_t *job)
{
	return cli_int(job, "total") - cli_int(job, "pending");
}

static void add_sample(struct progress *p, uint64_t now_ms, json_int_t done)
{
	p->samples[p->head] = (struct sample){.ms = now_ms, .done = done};
	p->head = (p->head + 1) % RATE_SAMPLES;
	if (p->n_samples < RATE_SAMPLES)
		p->n_samples++;
}

/* Rows per second over the last RATE_WINDOW_MS; < 0 while unknown. */
static double current_rate(const struct progress *p)
{
	if (p->n_samples < 2)
		return -1;
	const struct sample *now = &p->samples[(p->head + RATE_SAMPLES - 1) % RATE_SAMPLES];
	const struct sample *old = NULL;
	for (size_t i = p->n_samples; i-- > 1;) {
		const struct sample *s =
		    &p->samples[(p->head + RATE_SAMPLES - 1 - i) % RATE_SAMPLES];
		if (now->ms - s->ms <= RATE_WINDOW_MS) {
			old = s;
			break;
		}
	}
	if (!old || now->ms - old->ms < 1000u)
		return -1;
	double r = (double)(now->done - old->done) * 1000.0 / (double)(now->ms - old->ms);
	return r < 0 ? 0 : r;
}

static void rate_text(double rate, char *out, size_t size)
{
	if (rate < 0)
		snprintf(out, size, "-/s");
	else if (rate < 10)
		snprintf(out, size, "%.1f/s", rate);
	else
		snprintf(out, size, "%.0f/s", rate);
}

/* "ETA 1:05", "ETA 2:03:04", "ETA -" */
static void eta_text(double rate, json_int_t left, char *out, size_t size)
{
	if (left <= 0) {
		snprintf(out, size, "ETA 0:00");
		return;
	}
	if (rate <= 0) {
		snprintf(out, size, "ETA -");
		return;
	}
	double secs = (double)left / rate;
	if (secs > 99.0 * 3600) {
		snprintf(out, size, "ETA >99h");
		return;
	}
	unsigned long s = (unsigned long)(secs + 0.5);
	if (s >= 3600)
		snprintf(out, size, "ETA %lu:%02lu:%02lu", s / 3600, s % 3600 / 60, s % 60);
	else
		snprintf(out, size, "ETA %lu:%02lu", s / 60, s % 60);
}

/* Why the job does not move (no Graph token, the tenant blocked), or NULL:
 * shown in place of a bare state while it has not ended (a finished job of
 * a tenant blocked since carries the tenant's reason too). */
static const char *stuck_reason(const json_t *job)
{
	const char *state = cli_str(job, "state");
	if (state && (strcmp(state, "completed") == 0 || strcmp(state, "cancelled") == 0))
		return NULL;
	return cli_str(job, "reason");
}

static bool same_progress(const json_t *a, const json_t *b)
{
	static const char *const counters[] = {"total", "succeeded", "failed", "cancelled",
	                                       "pending"};
	const char *sa = cli_str(a, "state"), *sb = cli_str(b, "state");
	if (!sa || !sb || strcmp(sa, sb) != 0)
		return false;
	const char *ra = stuck_reason(a), *rb = stuck_reason(b);
	if (!ra != !rb || (ra && strcmp(ra, rb) != 0))
		return false;
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		if (cli_int(a, counters[i]) != cli_int(b, counters[i]))
			return false;
	return true;
}

/* ---- the terminal view ---- */

static const char tty_cleanup[] = "\r\033[K\033[?25h";

/* Ctrl-C, kill, hang-up while the line is drawn: erase it, show the cursor,
 * then die of the signal as if we had not caught it. */
static void on_fatal_signal(int sig)
{
	ssize_t n = write(STDERR_FILENO, tty_cleanup, sizeof(tty_cleanup) - 1);
	(void)n;
	signal(sig, SIG_DFL);
	raise(sig);
}

static const int fatal_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static void set_fatal_handlers(void (*fn)(int))
{
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		signal(fatal_signals[i], fn);
}

static unsigned terminal_columns(void)
{
	struct winsize ws;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col < LINE_MAX_COLUMNS ? ws.ws_col : LINE_MAX_COLUMNS;
	return 80;
}

/* s (from the daemon) escaped by vis and cut to ASCII printable bytes, so
 * that on the status line bytes are columns; "..." when cut short. */
static void ascii_text(const char *s, char *out, size_t size)
{
	char *v = vis_strdup(s, 0);
	size_t n = 0;
	for (const char *p = v ? v : "?"; *p && n + 1 < size; p++)
		out[n++] = (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f ? *p : '?';
	out[n] = '\0';
	if (v && strlen(v) > n && size > 4)
		memcpy(out + size - 4, "...", 4);
	free(v);
}

/* The status line for job in at most width columns (ASCII only, so bytes
 * are columns). */
static int status_line(struct progress *p, const json_t *job, unsigned width)
{
	char done[CLI_GROUPED_MAX], total[CLI_GROUPED_MAX], ok[CLI_GROUPED_MAX],
	    failed[CLI_GROUPED_MAX], rate[32], eta[80], stats[320];
	const char *state = cli_str(job, "state");
	json_int_t t = cli_int(job, "total"), d = job_done_count(job);
	double r = current_rate(p);
	rate_text(r, rate, sizeof(rate));
	if (state && (strcmp(state, "running") == 0 || strcmp(state, "queued") == 0 ||
	              strcmp(state, "completed") == 0))
		eta_text(r, t - d, eta, sizeof(eta));
	else
		ascii_text(state ? state : "?", eta, sizeof(eta));
	const char *reason = stuck_reason(job);
	if (reason) /* why it does not move, in place of a bare "queued" */
		ascii_text(reason, eta, sizeof(eta));
	int pct = t > 0 ? (int)(d * 100 / t) : 100;
	snprintf(stats, sizeof(stats), " %3d%%  %s/%s  %s succeeded  %s failed  %s  %s", pct,
	         cli_grouped(d, done), cli_grouped(t, total),
	         cli_grouped(cli_int(job, "succeeded"), ok),
	         cli_grouped(cli_int(job, "failed"), failed), rate, eta);
	size_t len = strlen(stats);
	buf_clear(&p->line);
	int e = buf_append_str(&p->line, "\r");
	if (width > len + 2 + BAR_MIN) {
		size_t bar = width - len - 2, fill = t > 0 ? (size_t)((double)bar * d / t) : bar;
		e = e ? e : buf_append_str(&p->line, "[");
		for (size_t i = 0; i < bar && e == 0; i++)
			e = buf_append_str(&p->line, i < fill ? "#" : i == fill ? ">" : ".");
		e = e ? e : buf_append_str(&p->line, "]");
		e = e ? e : buf_append_str(&p->line, stats);
	} else {
		/* a narrow terminal: the numbers, cut to fit */
		size_t skip = 1; /* the leading space */
		size_t n = len - skip < width ? len - skip : width;
		e = e ? e : buf_append(&p->line, stats + skip, n);
	}
	return e ? e : buf_append_str(&p->line, "\033[K");
}

static void tty_update(struct progress *p, const json_t *job, uint64_t now_ms)
{
	(void)now_ms;
	unsigned cols = terminal_columns();
	/* three columns short of the edge: a full line would wrap on some
	 * terminals, and so would the "^C" the terminal echoes after it, leaving
	 * the line behind when the signal handler erases "the" line */
	if (status_line(p, job, cols > 3 ? cols - 3 : 1) < 0)
		return;
	if (!p->drawn) {
		set_fatal_handlers(on_fatal_signal);
		fputs("\033[?25l", stderr);
		p->drawn = true;
	}
	fwrite(p->line.data, 1, p->line.len, stderr); /* stderr is unbuffered: one write */
}

static void tty_finish(struct progress *p)
{
	if (!p->drawn)
		return;
	/* the last line stays, as the record of the end; then the cursor comes back */
	fputs("\n\033[?25h", stderr);
	set_fatal_handlers(SIG_DFL);
	p->drawn = false;
}

/* ---- the plain view ---- */

static void print_line(const json_t *job, double rate)
{
	const char *state = cli_str(job, "state");
	json_int_t total = cli_int(job, "total"), pending = cli_int(job, "pending");
	const char *reason = stuck_reason(job);
	char r[32];
	rate_text(rate, r, sizeof(r));
	/* with the reason when the job does not move (no token, tenant blocked) */
	cli_line(stderr,
	         "Job %" JSON_INTEGER_FORMAT " %s%s%s%s: %" JSON_INTEGER_FORMAT
	         "/%" JSON_INTEGER_FORMAT " done, %" JSON_INTEGER_FORMAT
	         " succeeded, %" JSON_INTEGER_FORMAT " failed, %" JSON_INTEGER_FORMAT
	         " pending, %s",
	         cli_int(job, "id"), state ? state : "?", reason ? " (" : "", reason ? reason : "",
	         reason ? ")" : "", total - pending, total, cli_int(job, "succeeded"),
	         cli_int(job, "failed"), pending, r);
}

static void lines_update(struct progress *p, const json_t *job, uint64_t now_ms)
{
	if (p->last && same_progress(p->last, job))
		return;
	json_decref(p->last);
	p->last = json_incref((json_t *)job);
	if (p->last_print_ms != 0 && now_ms - p->last_print_ms < LINES_MIN_INTERVAL_MS &&
	    !job_ended(job)) {
		p->pending_line = true; /* printed at the next chance, or at the end */
		return;
	}
	p->pending_line = false;
	p->last_print_ms = now_ms;
	print_line(job, current_rate(p));
}

static void lines_finish(struct progress *p)
{
	if (p->pending_line && p->last)
		print_line(p->last, current_rate(p));
	p->pending_line = false;
}

static void progress_update(struct progress *p, const json_t *job, uint64_t now_ms)
{
	add_sample(p, now_ms, job_done_count(job));
	if (p->tty)
		tty_update(p, job, now_ms);
	else
		lines_update(p, job, now_ms);
}

static void progress_finish(struct progress *p)
{
	if (p->tty)
		tty_finish(p);
	else
		lines_finish(p);
	json_decref(p->last);
	p->last = NULL;
	buf_finish(&p->line);
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
	struct progress p = {.tty = isatty(STDERR_FILENO) == 1, .line = BUF_INIT};
	const char *term = getenv("TERM");
	if (term && strcmp(term, "dumb") == 0)
		p.tty = false; /* no cursor movement on a dumb terminal */
	json_t *job = NULL;
	int r;
	for (;;) {
		r = cli_fetch_job(cli, id, &job);
		if (r != EXIT_DONE)
			break;
		progress_update(&p, job, time_mono_ms());
		if (job_ended(job))
			break;
		json_decref(job);
		job = NULL;
		sleep_ms(WATCH_INTERVAL_MS);
	}
	progress_finish(&p);
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
