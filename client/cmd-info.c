/* SPDX-License-Identifier: MIT */
/* template, status, stats: what needs no job. */
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "csv.h"
#include "table.h"

int cmd_template(struct cli *cli, int argc, char **argv)
{
	int r = cli_parse_simple(cli, argc, argv, NULL, NULL, 0);
	if (r != CLI_CONTINUE)
		return r;
	fputs(csv_template(), stdout);
	return EXIT_DONE;
}

/* A real for a person: two decimals at most, trailing zeros dropped
 * (43.5159375000006 reads 43.52, 10.0 reads 10). */
static void human_real(double v, char *out, size_t size)
{
	snprintf(out, size, "%.2f", v);
	char *dot = strchr(out, '.');
	if (!dot)
		return;
	char *end = out + strlen(out);
	while (end > dot + 1 && end[-1] == '0')
		*--end = '\0';
	if (end == dot + 1)
		*dot = '\0';
	if (strcmp(out, "-0") == 0)
		snprintf(out, size, "0");
}

/* A number in the C locale main() keeps for LC_NUMERIC: integers exactly;
 * reals with up to 15 significant digits (what a program reads:
 * --prometheus) or, human, as human_real(). */
static void number_text_as(const json_t *v, char *out, size_t size, bool human)
{
	if (json_is_integer(v))
		snprintf(out, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v) && human)
		human_real(json_real_value(v), out, size);
	else if (json_is_real(v))
		snprintf(out, size, "%.15g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(out, size, "%d", json_is_true(v) ? 1 : 0);
	else
		snprintf(out, size, "-");
}

static void number_text(const json_t *v, char *out, size_t size)
{
	number_text_as(v, out, size, true);
}

#define NUMBER_TEXT_MAX 64

static void duration_text(json_int_t s, char *out, size_t size)
{
	if (s < 0)
		snprintf(out, size, "-");
	else if (s >= 86400)
		snprintf(out, size,
		         "%" JSON_INTEGER_FORMAT "d %" JSON_INTEGER_FORMAT "h %" JSON_INTEGER_FORMAT
		         "m",
		         s / 86400, s % 86400 / 3600, s % 3600 / 60);
	else if (s >= 3600)
		snprintf(out, size, "%" JSON_INTEGER_FORMAT "h %" JSON_INTEGER_FORMAT "m", s / 3600,
		         s % 3600 / 60);
	else if (s >= 60)
		snprintf(out, size, "%" JSON_INTEGER_FORMAT "m %" JSON_INTEGER_FORMAT "s", s / 60,
		         s % 60);
	else
		snprintf(out, size, "%" JSON_INTEGER_FORMAT "s", s);
}

static int token_text(const json_t *token, struct buf *b)
{
	const char *state = cli_str(token, "state"), *err = cli_str(token, "error");
	const json_t *exp = json_object_get(token, "expires_in_s");
	int r = buf_append_str(b, state ? state : "?");
	if (r == 0 && json_is_integer(exp)) {
		char d[NUMBER_TEXT_MAX];
		duration_text(json_integer_value(exp), d, sizeof(d));
		r = buf_printf(b, ", expires in %s", d);
	}
	if (r == 0 && err)
		r = buf_printf(b, ": %s", err);
	return r;
}

static void print_status(const json_t *reply)
{
	char uptime[NUMBER_TEXT_MAX], conf[NUMBER_TEXT_MAX], cur[NUMBER_TEXT_MAX],
	    active[CLI_INT_MAX], rate[2 * NUMBER_TEXT_MAX + 32], queue[2 * CLI_INT_MAX + 32];
	struct buf token = BUF_INIT;
	const json_t *r = json_object_get(reply, "rate"), *q = json_object_get(reply, "queue");
	const json_t *up = json_object_get(reply, "uptime_s");
	duration_text(json_is_integer(up) ? json_integer_value(up) : -1, uptime, sizeof(uptime));
	number_text(json_object_get(r, "configured"), conf, sizeof(conf));
	number_text(json_object_get(r, "current"), cur, sizeof(cur));
	snprintf(rate, sizeof(rate), "%s/s configured, %s/s now", conf, cur);
	snprintf(queue, sizeof(queue),
	         "%" JSON_INTEGER_FORMAT " pending, %" JSON_INTEGER_FORMAT " in flight",
	         cli_int(q, "pending"), cli_int(q, "in_flight"));
	bool have_token = token_text(json_object_get(reply, "token"), &token) == 0;
	const struct cli_kv kv[] = {
	    {"Version", cli_str(reply, "version")},
	    {"Uptime", uptime},
	    {"Tenant", cli_str(reply, "tenant")},
	    {"Blocked", cli_str(reply, "blocked")},
	    {"Token", have_token ? token.data : "?"},
	    {"Rate", rate},
	    {"Queue", queue},
	    {"Active jobs", cli_int_text(json_object_get(reply, "jobs"), "active", active)},
	};
	cli_print_kv(kv, sizeof(kv) / sizeof(kv[0]));
	buf_finish(&token);
}

int cmd_status(struct cli *cli, int argc, char **argv)
{
	json_t *reply = NULL;
	int r = cli_parse_simple(cli, argc, argv, NULL, NULL, 0);
	if (r != CLI_CONTINUE)
		return r;
	r = cli_call(cli, cli_request("status", 0), &reply);
	if (r != EXIT_DONE)
		goto out;
	if (cli->json) {
		json_object_del(reply, "ok");
		cli_print_json(reply);
	} else {
		print_status(reply);
	}
out:
	json_decref(reply);
	return r;
}

/* What each known stat means: the HELP line of --prometheus, and the order
 * of the human list. Stats the daemon adds later still print, with a
 * generic HELP. Keys ending in _total are counters; "_ms" values are
 * exposed in seconds (Prometheus' base unit). */
static const struct {
	const char *key;
	const char *help;
} stat_help[] = {
    {"requests_total", "Invitation requests sent to Microsoft Graph."},
    {"invitations_created_total", "Invitations Graph created (HTTP 201)."},
    {"rows_failed_total", "Rows that ended failed."},
    {"retries_total", "Rows put back for another attempt after a transient error."},
    {"throttled_total", "Answers that throttled the tenant (429, or 503 with Retry-After)."},
    {"transient_errors_total", "5xx answers, timeouts and connection errors."},
    {"auth_errors_total", "Requests refused with 401 (token refreshed and retried)."},
    {"token_refreshes_total", "Access tokens fetched."},
    {"in_flight", "Invitation requests in flight now."},
    {"claimed", "Rows claimed for sending, waiting for a rate token or a slot."},
    {"pending", "Rows of unfinished jobs not yet in a final state (queue depth)."},
    {"active_jobs", "Jobs not finished."},
    {"rate", "Rate limit in force now, in invitations per second."},
    {"paused_ms", "Time left of a Retry-After pause of the whole tenant."},
    {"connections", "Control socket connections open."},
    {"uptime_seconds", "Time since invited started."},
    {"rows_succeeded", "Rows succeeded, over every stored job."},
    {"rows_failed", "Rows failed, over every stored job."},
    {"rows_cancelled", "Rows cancelled, over every stored job."},
    {"on_complete_running", "on_complete commands running now."},
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Prometheus' names are [a-zA-Z_:][a-zA-Z0-9_:]*; ours get a prefix, and
 * "_ms" becomes "_seconds". */
static void metric_name(const char *key, struct buf *b)
{
	size_t len = strlen(key);
	bool ms = ends_with(key, "_ms");
	buf_clear(b);
	buf_append_str(b, "invited_");
	for (size_t i = 0; i < (ms ? len - 3 : len); i++) {
		char c = key[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_' || c == ':';
		buf_append(b, ok ? &c : "_", 1);
	}
	if (ms)
		buf_append_str(b, "_seconds");
}

static const char *help_of(const char *key)
{
	for (size_t i = 0; i < sizeof(stat_help) / sizeof(stat_help[0]); i++)
		if (strcmp(stat_help[i].key, key) == 0)
			return stat_help[i].help;
	return NULL;
}

/* The text exposition format (version 0.0.4), fit for node_exporter's
 * textfile collector: HELP and TYPE, then the sample, no timestamp. */
static void print_prometheus(const json_t *stats)
{
	struct buf name = BUF_INIT;
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)stats, key, v)
	{
		char num[NUMBER_TEXT_MAX];
		if (!json_is_number(v) && !json_is_boolean(v))
			continue;
		if (ends_with(key, "_ms"))
			snprintf(num, sizeof(num), "%.15g", json_number_value(v) / 1000.0);
		else
			number_text_as(v, num, sizeof(num), false);
		metric_name(key, &name);
		if (!name.data)
			break; /* out of memory */
		const char *help = help_of(key);
		/* HELP text escapes only backslash and newline; ours have neither */
		printf("# HELP %s %s\n", name.data, help ? help : "A counter or gauge of invited.");
		printf("# TYPE %s %s\n", name.data, ends_with(key, "_total") ? "counter" : "gauge");
		printf("%s %s\n", name.data, num);
	}
	buf_finish(&name);
}

static void print_stats(const json_t *stats)
{
	const char *key;
	const json_t *v;
	size_t w = 0;
	json_object_foreach((json_t *)stats, key, v)
	{
		size_t k = table_text_width(key);
		w = k > w ? k : w;
	}
	json_object_foreach((json_t *)stats, key, v)
	{
		char num[NUMBER_TEXT_MAX];
		number_text(v, num, sizeof(num));
		cli_line(stdout, "%s%*s  %s", key, (int)(w - table_text_width(key)), "", num);
	}
}

int cmd_stats(struct cli *cli, int argc, char **argv)
{
	json_t *reply = NULL, *stats = NULL;
	bool prometheus = false;
	int r = cli_parse_simple(cli, argc, argv, "prometheus", &prometheus, 0);
	if (r != CLI_CONTINUE)
		return r;
	if (prometheus && cli->json)
		return cli_usage(cli, "--prometheus and --json exclude each other");
	r = cli_call(cli, cli_request("stats", 0), &reply);
	if (r == EXIT_DONE)
		r = cli_take(reply, "stats", JSON_OBJECT, &stats);
	if (r == EXIT_DONE && cli->json)
		cli_print_json(stats);
	else if (r == EXIT_DONE && prometheus)
		print_prometheus(stats);
	else if (r == EXIT_DONE)
		print_stats(stats);
	json_decref(stats);
	json_decref(reply);
	return r;
}
