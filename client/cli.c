/* SPDX-License-Identifier: MIT */
/* cli: what invitectl's commands share: arguments, requests, output helpers. */
#include "client.h"

#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "table.h"
#include "vis.h"

void cli_init(struct cli *cli)
{
	cli->socket_path = NULL;
	cli->json = false;
	cli->color = false;
	cli->cmd = NULL;
	cli->pager_pid = 0;
	cli->saved_stdout = -1;
	conn_init(&cli->conn);
}

void cli_finish(struct cli *cli)
{
	cli_pager_close(cli);
	conn_close(&cli->conn);
}

void cli_pager_open(struct cli *cli)
{
	const char *pager = getenv("INVITED_PAGER");
	if (!pager)
		pager = getenv("PAGER");
	if (!pager)
		pager = "less -FRSXK";
	if (cli->pager_pid > 0 || !isatty(STDOUT_FILENO) || pager[0] == '\0' ||
	    strcmp(pager, "cat") == 0)
		return;
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return;
	}
	if (pid == 0) {
		dup2(fds[0], STDIN_FILENO);
		execl("/bin/sh", "sh", "-c", pager, (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	cli->saved_stdout = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	dup2(fds[1], STDOUT_FILENO);
	close(fds[1]);
	/* a pager quit early makes writes fail (EPIPE) instead of killing us */
	signal(SIGPIPE, SIG_IGN);
	cli->pager_pid = pid;
}

bool cli_pager_gone(const struct cli *cli)
{
	return cli->pager_pid > 0 && ferror(stdout) && errno == EPIPE;
}

void cli_pager_close(struct cli *cli)
{
	if (cli->pager_pid <= 0)
		return;
	fflush(stdout);
	if (ferror(stdout) && errno == EPIPE)
		clearerr(stdout); /* the person quit the pager: not a failure */
	if (cli->saved_stdout >= 0) {
		dup2(cli->saved_stdout, STDOUT_FILENO); /* the pager reads its end of file */
		close(cli->saved_stdout);
	} else {
		close(STDOUT_FILENO);
	}
	while (waitpid(cli->pager_pid, NULL, 0) < 0 && errno == EINTR)
		;
	cli->pager_pid = 0;
	cli->saved_stdout = -1;
}

void cli_vline(FILE *out, const char *prefix, const char *fmt, va_list ap)
{
	struct buf text = BUF_INIT, line = BUF_INIT;
	int r = buf_vprintf(&text, fmt, ap);
	if (r == 0)
		r = buf_append_str(&line, prefix ? prefix : "");
	if (r == 0)
		r = vis_append(&line, text.data, text.len, 0);
	if (r == 0)
		r = buf_append(&line, "\n", 1);
	if (r == 0)
		fwrite(line.data, 1, line.len, out);
	else
		fputs("invitectl: out of memory\n", stderr);
	buf_finish(&text);
	buf_finish(&line);
}

void cli_line(FILE *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cli_vline(out, NULL, fmt, ap);
	va_end(ap);
}

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cli_vline(stderr, "invitectl: ", fmt, ap);
	va_end(ap);
}

static void try_help(const struct cli *cli)
{
	if (cli->cmd)
		fprintf(stderr, "Try 'invitectl %s --help'.\n", cli->cmd->name);
	else
		fputs("Try 'invitectl --help'.\n", stderr);
}

int cli_usage(const struct cli *cli, const char *fmt, ...)
{
	char prefix[64];
	va_list ap;
	snprintf(prefix, sizeof(prefix), "invitectl: %s%s", cli->cmd ? cli->cmd->name : "",
	         cli->cmd ? ": " : "");
	va_start(ap, fmt);
	cli_vline(stderr, prefix, fmt, ap);
	va_end(ap);
	try_help(cli);
	return EXIT_USAGE;
}

int cli_common_option(struct cli *cli, int opt)
{
	switch (opt) {
	case CLI_OPT_JSON:
		cli->json = true;
		return CLI_CONTINUE;
	case 's':
		cli->socket_path = optarg;
		return CLI_CONTINUE;
	case 'h':
		fputs(cli->cmd->help, stdout);
		return EXIT_DONE;
	default: /* getopt has said what is wrong */
		try_help(cli);
		return EXIT_USAGE;
	}
}

int cli_parse_job_id(const char *text, json_int_t *ret_id)
{
	if (!isdigit((unsigned char)text[0]))
		return -EINVAL;
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return -EINVAL;
	*ret_id = (json_int_t)v;
	return 0;
}

int cli_job_operand(const struct cli *cli, int n, char **args, json_int_t *ret_id)
{
	if (n < 1)
		return cli_usage(cli, "missing JOB");
	if (n > 1)
		return cli_usage(cli, "unexpected argument '%s'", args[1]);
	if (cli_parse_job_id(args[0], ret_id) < 0)
		return cli_usage(cli, "invalid job id '%s': a positive integer expected", args[0]);
	return CLI_CONTINUE;
}

int cli_parse_simple(struct cli *cli, int argc, char **argv, const char *flag, bool *ret_flag,
                     int max_operands)
{
	const struct option opts[] = {
	    {flag, no_argument, NULL, CLI_OPT_FIRST_LOCAL},
	    CLI_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, flag ? opts : opts + 1, NULL)) !=
	       -1) {
		if (c == CLI_OPT_FIRST_LOCAL) {
			*ret_flag = true;
			continue;
		}
		int r = cli_common_option(cli, c);
		if (r != CLI_CONTINUE)
			return r;
	}
	if (argc - optind > max_operands)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind + max_operands]);
	return CLI_CONTINUE;
}

int cli_parse_job_args(struct cli *cli, int argc, char **argv, json_int_t *ret_id)
{
	int r = cli_parse_simple(cli, argc, argv, NULL, NULL, 1);
	if (r != CLI_CONTINUE)
		return r;
	return cli_job_operand(cli, argc - optind, argv + optind, ret_id);
}

static void permission_hint(void)
{
	cli_error("hint: only root and members of the daemon's allow_group "
	          "(invited.conf [daemon]) may use its socket");
}

int cli_connect(struct cli *cli)
{
	if (cli->conn.fd >= 0)
		return EXIT_DONE;
	int r = conn_open(&cli->conn, cli->socket_path);
	switch (-r) {
	case 0:
		return EXIT_DONE;
	case ENAMETOOLONG:
		cli_error("invalid socket path '%s': empty or too long", cli->socket_path);
		return EXIT_USAGE;
	case EACCES:
	case EPERM:
		cli_error("cannot reach invited at %s: %s", cli->socket_path, strerror(-r));
		permission_hint();
		return EXIT_NOPERM;
	case ENOMEM:
	case ENOBUFS:
	case EMFILE:
	case ENFILE:
		cli_error("cannot reach invited at %s: %s", cli->socket_path, strerror(-r));
		return EXIT_TEMPFAIL;
	default: /* ENOENT, ECONNREFUSED, ENOTDIR, ENOTSOCK, ... */
		cli_error("cannot reach invited at %s: %s", cli->socket_path, strerror(-r));
		if (r == -ENOENT || r == -ECONNREFUSED)
			cli_error("hint: is invited running? try: systemctl start invited.socket");
		return EXIT_UNAVAILABLE;
	}
}

int cli_conn_error(int err)
{
	switch (-err) {
	case ECONNRESET:
	case EPIPE:
		cli_error("invited closed the connection");
		break;
	case EMSGSIZE:
		cli_error("reply from invited larger than %u bytes", PROTO_MAX_FRAME);
		break;
	case EBADMSG:
		cli_error("malformed reply from invited: not a JSON object");
		break;
	default:
		cli_error("talking to invited: %s", strerror(-err));
		break;
	}
	return EXIT_TEMPFAIL;
}

void cli_print_problems(const char *label, const json_t *errors, json_int_t count)
{
	size_t n = json_array_size(errors);
	if (!label)
		label = "input";
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(errors, i);
		json_int_t line = cli_int(e, "line");
		const char *msg = cli_str(e, "message");
		if (line > 0)
			cli_line(stderr, "%s:%" JSON_INTEGER_FORMAT ": %s", label, line,
			         msg ? msg : "?");
		else
			cli_line(stderr, "%s: %s", label, msg ? msg : "?");
	}
	if (count > (json_int_t)n)
		cli_line(stderr, "... and %" JSON_INTEGER_FORMAT " more problem%s",
		         count - (json_int_t)n, cli_plural(count - (json_int_t)n));
}

/* The tenants a usage error offers (SPEC §7), one per line on stderr, so a
 * person or a script sees what --tenant takes; nothing when there are none. */
static void print_tenant_choice(const json_t *tenants)
{
	size_t n = json_array_size(tenants);
	if (n == 0)
		return;
	cli_error("the tenants you may use (--tenant NAME):");
	for (size_t i = 0; i < n && i < CLI_TENANTS_MAX; i++) {
		const char *name = json_string_value(json_array_get(tenants, i));
		if (name)
			cli_line(stderr, "  %s", name);
	}
	if (n > CLI_TENANTS_MAX)
		cli_line(stderr, "  ... and %zu more (invitectl tenants)", n - CLI_TENANTS_MAX);
}

int cli_check_tenant_name(const struct cli *cli, const char *name)
{
	size_t n = strlen(name);
	bool ok = n >= 1 && n <= CLI_TENANT_NAME_MAX;
	for (size_t i = 0; ok && i < n; i++)
		ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		     name[i] == '-';
	if (!ok)
		return cli_usage(cli,
		                 "invalid tenant name '%s': 1 to %d of a-z, 0-9 and - expected "
		                 "(invitectl tenants lists them)",
		                 name, CLI_TENANT_NAME_MAX);
	return CLI_CONTINUE;
}

int cli_set_tenant(const struct cli *cli, json_t *req, const char *name)
{
	int r = cli_check_tenant_name(cli, name);
	if (r != CLI_CONTINUE)
		return r;
	if (json_object_set_new(req, "tenant", json_string(name)) < 0) {
		cli_error("out of memory");
		return EXIT_TEMPFAIL;
	}
	return CLI_CONTINUE;
}

int cli_reply_check(const json_t *reply, const char *label)
{
	const json_t *ok = json_object_get(reply, "ok");
	if (json_is_true(ok))
		return EXIT_DONE;
	if (!json_is_false(ok)) {
		cli_error("malformed reply from invited: no \"ok\"");
		return EXIT_TEMPFAIL;
	}
	const json_t *err = json_object_get(reply, "error");
	const char *code = cli_str(err, "code");
	const char *msg = cli_str(err, "message");
	if (code && strcmp(code, PROTO_ERR_INVALID_INPUT) == 0)
		cli_print_problems(label, json_object_get(err, "errors"),
		                   cli_int(err, "error_count"));
	cli_error("%s", msg ? msg : code ? code : "request failed");
	/* "several tenants: choose one with --tenant": the daemon's list of them */
	if (code && strcmp(code, PROTO_ERR_USAGE) == 0)
		print_tenant_choice(json_object_get(err, "tenants"));
	/* a refusal with a "rule" (SPEC §6) names it already: the hint is the socket's */
	if (code && strcmp(code, PROTO_ERR_PERMISSION) == 0 && !json_object_get(err, "rule"))
		permission_hint();
	return proto_error_exit_code(code);
}

json_t *cli_request(const char *op, json_int_t id)
{
	json_t *req = json_pack("{ss}", "op", op);
	if (req && id > 0 && json_object_set_new(req, "id", json_integer(id)) < 0) {
		json_decref(req);
		return NULL;
	}
	return req;
}

int cli_call(struct cli *cli, json_t *req, json_t **ret_reply)
{
	json_t *reply = NULL;
	int r = EXIT_TEMPFAIL;
	if (!req) {
		cli_error("out of memory");
		goto out;
	}
	r = cli_connect(cli);
	if (r != EXIT_DONE)
		goto out;
	int e = conn_send_json(&cli->conn, req);
	if (e == 0)
		e = conn_recv_json(&cli->conn, &reply);
	if (e < 0) {
		conn_close(&cli->conn);
		r = cli_conn_error(e);
		goto out;
	}
	r = cli_reply_check(reply, NULL);
	if (r != EXIT_DONE)
		goto out;
	*ret_reply = reply;
	reply = NULL;
out:
	json_decref(req);
	json_decref(reply);
	return r;
}

int cli_take(const json_t *reply, const char *key, json_type type, json_t **ret)
{
	json_t *v = json_object_get(reply, key);
	if (!v || json_typeof(v) != type) {
		cli_error("malformed reply from invited: no valid \"%s\"", key);
		return EXIT_TEMPFAIL;
	}
	*ret = json_incref(v);
	return EXIT_DONE;
}

int cli_fetch_job(struct cli *cli, json_int_t id, json_t **ret_job)
{
	json_t *reply = NULL;
	int r = cli_call(cli, cli_request("job", id), &reply);
	if (r == EXIT_DONE)
		r = cli_take(reply, "job", JSON_OBJECT, ret_job);
	json_decref(reply);
	return r;
}

static json_t *rows_request(const struct cli_rows_query *q, bool more, json_int_t cursor)
{
	json_t *req = cli_request("rows", q->id);
	if (!req)
		return NULL;
	int r = json_object_set_new(req, "limit", json_integer(CLI_PAGE_ROWS));
	if (r == 0 && more)
		r = json_object_set_new(req, "cursor", json_integer(cursor));
	if (r == 0 && q->state)
		r = json_object_set_new(req, "state", json_string(q->state));
	if (r == 0 && q->input)
		r = json_object_set_new(req, "input", json_true());
	if (r < 0) {
		json_decref(req);
		return NULL;
	}
	return req;
}

int cli_rows_foreach(struct cli *cli, const struct cli_rows_query *q,
                     int (*page)(void *userdata, const json_t *reply), void *userdata)
{
	json_t *reply = NULL;
	json_int_t cursor = 0;
	bool more = false;
	int r;
	for (;;) {
		r = cli_call(cli, rows_request(q, more, cursor), &reply);
		if (r != EXIT_DONE)
			goto out;
		if (!json_is_array(json_object_get(reply, "rows"))) {
			cli_error("malformed reply from invited: no valid \"rows\"");
			r = EXIT_TEMPFAIL;
			goto out;
		}
		r = page(userdata, reply);
		if (r != EXIT_DONE)
			goto out;
		const json_t *next = json_object_get(reply, "next");
		if (!next || json_is_null(next))
			break;
		if (!json_is_integer(next) || (more && json_integer_value(next) == cursor)) {
			cli_error("malformed reply from invited: bad \"next\"");
			r = EXIT_TEMPFAIL;
			goto out;
		}
		cursor = json_integer_value(next);
		more = true;
		json_decref(reply);
		reply = NULL;
	}
out:
	json_decref(reply);
	return r;
}

void cli_print_json(const json_t *j)
{
	json_dumpf(j, stdout, CLI_JSON_FLAGS);
	fputc('\n', stdout);
}

const char *cli_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

json_int_t cli_int(const json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

const char *cli_int_text(const json_t *obj, const char *key, char out[CLI_INT_MAX])
{
	snprintf(out, CLI_INT_MAX, "%" JSON_INTEGER_FORMAT, cli_int(obj, key));
	return out;
}

const char *cli_grouped(json_int_t n, char out[CLI_GROUPED_MAX])
{
	char digits[CLI_INT_MAX];
	/* the magnitude as unsigned, so INT64_MIN has one too */
	unsigned long long m = n < 0 ? 0ull - (unsigned long long)n : (unsigned long long)n;
	int len = snprintf(digits, sizeof(digits), "%llu", m);
	size_t o = 0;
	if (n < 0)
		out[o++] = '-';
	for (int i = 0; i < len; i++) {
		if (i > 0 && (len - i) % 3 == 0)
			out[o++] = ',';
		out[o++] = digits[i];
	}
	out[o] = '\0';
	return out;
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

void cli_number_text(const json_t *v, char *out, size_t size, bool human)
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

const char *cli_plural(json_int_t n)
{
	return n == 1 ? "" : "s";
}

/* Two decimal digits at p, or -1. */
static int two_digits(const char *p)
{
	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
		return -1;
	return (p[0] - '0') * 10 + (p[1] - '0');
}

/* "2026-11-28T23:50:01.123Z" or with a "+hh:mm"/"-hh:mm" offset. */
static int parse_rfc3339(const char *s, time_t *ret)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			;
	long offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && p[3] == ':') {
		int h = two_digits(p + 1), m = two_digits(p + 4);
		if (h < 0 || m < 0)
			return -EINVAL;
		offset = (*p == '-' ? -1 : 1) * (h * 3600L + m * 60L);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	*ret = timegm(&tm) - offset;
	return 0;
}

void cli_local_clock(const char *rfc3339, char *out, size_t size)
{
	time_t t, now = time(NULL);
	struct tm tm, today;
	if (!rfc3339) {
		snprintf(out, size, "-");
		return;
	}
	if (parse_rfc3339(rfc3339, &t) < 0 || !localtime_r(&t, &tm) || !localtime_r(&now, &today)) {
		snprintf(out, size, "%s", rfc3339);
		return;
	}
	bool same_day = tm.tm_year == today.tm_year && tm.tm_yday == today.tm_yday;
	if (strftime(out, size, same_day ? "%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(out, size, "%s", rfc3339);
}

void cli_local_time(const char *rfc3339, char *out, size_t size)
{
	time_t t;
	struct tm tm;
	if (!rfc3339)
		snprintf(out, size, "-");
	else if (parse_rfc3339(rfc3339, &t) < 0 || !localtime_r(&t, &tm) ||
	         strftime(out, size, "%Y-%m-%d %H:%M", &tm) == 0)
		snprintf(out, size, "%s", rfc3339);
}

const char *cli_state_sgr(const struct cli *cli, const char *state)
{
	static const struct {
		const char *state;
		const char *sgr;
	} map[] = {
	    {"succeeded", "\033[32m"}, {"completed", "\033[32m"}, {"failed", "\033[31m"},
	    {"blocked", "\033[1;31m"}, {"cancelled", "\033[33m"}, {"paused", "\033[33m"},
	    {"running", "\033[36m"},   {"in_flight", "\033[36m"},
	};
	if (!cli->color || !state)
		return NULL;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(state, map[i].state) == 0)
			return map[i].sgr;
	return NULL;
}

void cli_print_kv(const struct cli_kv *kv, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		size_t k = table_text_width(kv[i].key);
		if (kv[i].value && k > w)
			w = k;
	}
	/* keys are ours; values come from the daemon: escaped on the way out */
	for (size_t i = 0; i < n; i++)
		if (kv[i].value)
			cli_line(stdout, "%s:%*s%s", kv[i].key,
			         (int)(w - table_text_width(kv[i].key) + 1), "", kv[i].value);
}
