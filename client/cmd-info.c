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

static void number_text(const json_t *v, char *out, size_t size)
{
	cli_number_text(v, out, size, true);
}

#define NUMBER_TEXT_MAX CLI_NUMBER_MAX

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

/* status of a daemon with several tenants (SPEC §7): the daemon's lines,
 * what the tenants add up to, then one line per tenant. The top-level
 * tenant, token and rate are the first tenant's (for old clients): not shown
 * as if they were the daemon's. */
static int print_status_tenants(const struct cli *cli, const json_t *reply, const json_t *tenants)
{
	char uptime[NUMBER_TEXT_MAX], active[CLI_GROUPED_MAX], pend[CLI_GROUPED_MAX];
	struct buf summary = BUF_INIT, queue = BUF_INIT;
	json_int_t n_pending = 0, n_active = 0, n_ok = 0, n_paused = 0, n_blocked = 0;
	size_t n = json_array_size(tenants);
	for (size_t i = 0; i < n; i++) {
		const json_t *t = json_array_get(tenants, i);
		const char *state = cli_str(t, "state");
		n_pending += cli_int(t, "pending");
		n_active += cli_int(t, "active_jobs");
		n_ok += state && strcmp(state, "ok") == 0;
		n_paused += state && strcmp(state, "paused") == 0;
		n_blocked += state && strcmp(state, "blocked") == 0;
	}
	const json_t *up = json_object_get(reply, "uptime_s");
	duration_text(json_is_integer(up) ? json_integer_value(up) : -1, uptime, sizeof(uptime));
	buf_printf(&summary,
	           "%zu (%" JSON_INTEGER_FORMAT " ok, %" JSON_INTEGER_FORMAT
	           " paused, %" JSON_INTEGER_FORMAT " blocked)",
	           n, n_ok, n_paused, n_blocked);
	buf_printf(&queue, "%s pending", cli_grouped(n_pending, pend));
	const struct cli_kv kv[] = {
	    {"Version", cli_str(reply, "version")},
	    {"Uptime", uptime},
	    {"Tenants", summary.data},
	    {"Queue", queue.data},
	    {"Active jobs", cli_grouped(n_active, active)},
	};
	cli_print_kv(kv, sizeof(kv) / sizeof(kv[0]));
	int r = EXIT_DONE;
	if (n > 0) {
		fputc('\n', stdout);
		r = cli_print_tenants(cli, tenants, true, false);
	}
	buf_finish(&summary);
	buf_finish(&queue);
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
	const json_t *tenants = json_object_get(reply, "tenants");
	if (cli->json) {
		json_object_del(reply, "ok");
		cli_print_json(reply);
	} else if (json_array_size(tenants) > 1) {
		r = print_status_tenants(cli, reply, tenants);
	} else {
		/* a daemon from before tenants, or with one: the top level is
		 * that tenant's, as it always was; then its line */
		print_status(reply);
		if (json_array_size(tenants) == 1) {
			fputc('\n', stdout);
			r = cli_print_tenants(cli, tenants, true, false);
		}
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
    /* SPEC §8: lookups, groups, acceptance, resends */
    {"lookups_total", "Users looked up in the directory (User.Read.All)."},
    {"lookups_found_total", "Lookups that found an existing member or guest."},
    {"group_additions_total", "Group member additions done (204, or already a member)."},
    {"group_failures_total", "Group member additions that failed."},
    {"group_additions_pending", "Group member additions not yet done or failed."},
    {"tracking_reads_total", "Guests read to see whether they accepted."},
    {"accepted_total", "Guests seen to have accepted their invitation."},
    {"resends_total", "Invitations sent again to guests who had not accepted."},
    {"mails_sent_total", "Invitation mails invited sent itself ([mail])."},
    {"mails_failed_total", "Invitation mails that failed for good ([mail])."},
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

/* A label value in the text exposition format: backslash, double quote
 * and newline escaped (\\ \" \n), the rest as it is (UTF-8). */
static int append_label_value(struct buf *b, const char *s)
{
	int r = 0;
	for (; r == 0 && *s; s++) {
		if (*s == '\\')
			r = buf_append_str(b, "\\\\");
		else if (*s == '"')
			r = buf_append_str(b, "\\\"");
		else if (*s == '\n')
			r = buf_append_str(b, "\\n");
		else
			r = buf_append(b, s, 1);
	}
	return r;
}

/* The sample's value as Prometheus reads it: "_ms" in seconds. */
static void sample_text(const char *key, const json_t *v, char *num, size_t size)
{
	if (ends_with(key, "_ms"))
		snprintf(num, size, "%.15g", json_number_value(v) / 1000.0);
	else
		cli_number_text(v, num, size, false);
}

static bool is_sample(const json_t *v)
{
	return json_is_number(v) || json_is_boolean(v);
}

/* Whether some tenant of the array has a sample named key. */
static bool tenants_have(const json_t *tenants, const char *key)
{
	for (size_t i = 0; i < json_array_size(tenants); i++) {
		const json_t *t = json_array_get(tenants, i);
		if (cli_str(t, "name") && is_sample(json_object_get(t, key)))
			return true;
	}
	return false;
}

/* Whether key came before position i of the array's objects (or in
 * stats' top level): each metric is written once. */
static bool seen_before(const json_t *stats, const json_t *tenants, size_t i, const char *key)
{
	if (is_sample(json_object_get(stats, key)))
		return true;
	for (size_t j = 0; j < i; j++)
		if (is_sample(json_object_get(json_array_get(tenants, j), key)))
			return true;
	return false;
}

/* One metric: HELP and TYPE, then its samples: one per tenant labelled
 * tenant="NAME" when the tenants carry it (the daemon's sum is then left
 * out: it is the sum of these), else the daemon's own, unlabelled. */
static void print_metric(const char *key, const json_t *stats, const json_t *tenants,
                         struct buf *name, struct buf *line)
{
	char num[NUMBER_TEXT_MAX];
	metric_name(key, name);
	if (!name->data)
		return; /* out of memory */
	const char *help = help_of(key);
	/* HELP text escapes only backslash and newline; ours have neither */
	printf("# HELP %s %s\n", name->data, help ? help : "A counter or gauge of invited.");
	printf("# TYPE %s %s\n", name->data, ends_with(key, "_total") ? "counter" : "gauge");
	if (!tenants_have(tenants, key)) {
		sample_text(key, json_object_get(stats, key), num, sizeof(num));
		printf("%s %s\n", name->data, num);
		return;
	}
	for (size_t i = 0; i < json_array_size(tenants); i++) {
		const json_t *t = json_array_get(tenants, i), *v = json_object_get(t, key);
		const char *tenant = cli_str(t, "name");
		if (!tenant || !is_sample(v))
			continue;
		sample_text(key, v, num, sizeof(num));
		buf_clear(line);
		if (buf_printf(line, "%s{tenant=\"", name->data) == 0 &&
		    append_label_value(line, tenant) == 0 && buf_printf(line, "\"} %s\n", num) == 0)
			fwrite(line->data, 1, line->len, stdout);
	}
}

/* The text exposition format (version 0.0.4), fit for node_exporter's
 * textfile collector: HELP and TYPE, then the samples, no timestamp. With
 * "tenants" (SPEC §7) every series the tenants carry is one per tenant; a
 * daemon from before tenants gets today's unlabelled series. */
static void print_prometheus(const json_t *stats)
{
	struct buf name = BUF_INIT, line = BUF_INIT;
	const json_t *tenants = json_object_get(stats, "tenants");
	const char *key;
	const json_t *v;
	if (!json_is_array(tenants))
		tenants = NULL;
	json_object_foreach((json_t *)stats, key, v)
	{
		if (is_sample(v))
			print_metric(key, stats, tenants, &name, &line);
	}
	/* what only the tenants carry */
	for (size_t i = 0; i < json_array_size(tenants); i++) {
		const json_t *t = json_array_get(tenants, i);
		if (!cli_str(t, "name"))
			continue;
		json_object_foreach((json_t *)t, key, v)
		{
			if (is_sample(v) && !seen_before(stats, tenants, i, key))
				print_metric(key, stats, tenants, &name, &line);
		}
	}
	buf_finish(&name);
	buf_finish(&line);
}

/* "name value" lines, the values aligned; indent before each. */
static void print_counters(const json_t *stats, const char *indent)
{
	const char *key;
	const json_t *v;
	size_t w = 0;
	json_object_foreach((json_t *)stats, key, v)
	{
		size_t k = table_text_width(key);
		if (is_sample(v))
			w = k > w ? k : w;
	}
	json_object_foreach((json_t *)stats, key, v)
	{
		char num[NUMBER_TEXT_MAX];
		if (!is_sample(v))
			continue; /* "tenants", "name" */
		number_text(v, num, sizeof(num));
		cli_line(stdout, "%s%s%*s  %s", indent, key, (int)(w - table_text_width(key)), "",
		         num);
	}
}

/* The sums first (today's lines), then each tenant's under its name; no
 * blank line, so every line starts with a word (scripts read the first). */
static void print_stats(const json_t *stats)
{
	const json_t *tenants = json_object_get(stats, "tenants");
	print_counters(stats, "");
	for (size_t i = 0; i < json_array_size(tenants); i++) {
		const json_t *t = json_array_get(tenants, i);
		const char *name = cli_str(t, "name");
		cli_line(stdout, "Tenant %s:", name ? name : "?");
		print_counters(t, "  ");
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
