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

/* A number as JSON would write it, in the C locale main() keeps for
 * LC_NUMERIC: integers exactly, reals with up to 15 significant digits. */
static void number_text(const json_t *v, char *out, size_t size)
{
	if (json_is_integer(v))
		snprintf(out, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		snprintf(out, size, "%.15g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(out, size, "%d", json_is_true(v) ? 1 : 0);
	else
		snprintf(out, size, "-");
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

/* Prometheus' names are [a-zA-Z_:][a-zA-Z0-9_:]*; ours get a prefix. */
static void put_metric_name(const char *key)
{
	fputs("invited_", stdout);
	for (const char *p = key; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_' || c == ':';
		fputc(ok ? c : '_', stdout);
	}
}

/* The text exposition format: a TYPE line, then the sample. */
static void print_prometheus(const json_t *stats)
{
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)stats, key, v)
	{
		char num[NUMBER_TEXT_MAX];
		if (!json_is_number(v) && !json_is_boolean(v))
			continue;
		number_text(v, num, sizeof(num));
		size_t len = strlen(key);
		bool counter = len >= 6 && strcmp(key + len - 6, "_total") == 0;
		fputs("# TYPE ", stdout);
		put_metric_name(key);
		printf(" %s\n", counter ? "counter" : "gauge");
		put_metric_name(key);
		printf(" %s\n", num);
	}
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
		printf("%s%*s  %s\n", key, (int)(w - table_text_width(key)), "", num);
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
