/* SPDX-License-Identifier: MIT */
/*
 * invitectl internals shared by main.c and the cmd-*.c files.
 *
 * Commands and the cli_* helpers below that return int return a process exit
 * code (enum proto_exit in proto.h; 0 when all went well) and have already
 * printed what went wrong, unless their comment says otherwise. Human output
 * goes to stdout, messages to stderr as "invitectl: ...".
 */
#pragma once

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "conn.h"
#include "proto.h"

/* sysexits' EX_CANTCREAT: `results -o FILE` cannot create FILE (invitectl
 * only; the daemon never creates a file for a client). */
#define EXIT_CANTCREAT 73
/* `check`: the tenant lacks something the configuration needs (a role, the
 * guest policy); 0 only when all is there. */
#define EXIT_MISSING 1
/* Returned by the argument parsers when the command should go on. */
#define CLI_CONTINUE (-1)
/* Returned by a page callback when the reader is gone (the pager quit). */
#define CLI_STOP (-2)
/* Rows asked for per `rows` request when paging. */
#define CLI_PAGE_ROWS 1000
/* How --json output is written: one line per document; reals with 15
 * significant digits, so 9.8 prints as 9.8 (jansson's default of 17 would
 * print 9.8000000000000007). */
#define CLI_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))
/* Enough for any json_int_t in decimal, sign and NUL included. */
#define CLI_INT_MAX 24

struct command;

struct cli {
	const char *socket_path;   /* borrowed: argv, environment or config.h */
	int pager_pid;             /* the pager show's output goes through, or 0 */
	int saved_stdout;          /* while paging: the original stdout, else -1 */
	bool json;                 /* --json: machine output on stdout */
	bool color;                /* stdout is a terminal and NO_COLOR is unset */
	const struct command *cmd; /* the command being run */
	struct conn conn;          /* opened by the first request, then reused */
};

struct command {
	const char *name;
	int (*fn)(struct cli *cli, int argc, char **argv);
	const char *summary; /* one line for `invitectl --help` */
	const char *help;    /* the whole text of `invitectl NAME --help` */
};

/* How jobs and show print: -q ids only, --no-legend no header or summary. */
struct cli_list_opts {
	bool quiet;
	bool no_legend;
};

/* Options every command accepts after its name too (-s/--socket and --json
 * may come before or after the command, SPEC §3). */
enum {
	CLI_OPT_JSON = 0x100,
	CLI_OPT_FIRST_LOCAL, /* commands number their own long-only options from here */
};
#define CLI_COMMON_SHORT "hs:"
/* clang-format off */
#define CLI_COMMON_OPTIONS \
	{"json", no_argument, NULL, CLI_OPT_JSON}, {"help", no_argument, NULL, 'h'}, \
	{"socket", required_argument, NULL, 's'}
/* clang-format on */

void cli_init(struct cli *cli);
void cli_finish(struct cli *cli);

/*
 * The one way a message reaches a person: the formatted text goes through
 * vis (common/vis.h, flags 0), so a string from the daemon (a job name, a
 * reason, Graph's message, a validation message) can neither drive the
 * terminal nor forge a line; then a newline. prefix (ours, may be NULL) is
 * written as it is. Tables (table.c) and cli_print_kv escape their cells the
 * same way. --json output is never escaped.
 */
void cli_vline(FILE *out, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void cli_line(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "invitectl: <fmt>\n" on stderr, escaped as cli_line. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error of the current command: the message, a pointer to --help,
 * returns EXIT_USAGE. */
int cli_usage(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Handle an option every command shares (or getopt's '?'): CLI_CONTINUE,
 * EXIT_DONE after printing the help, or EXIT_USAGE. */
int cli_common_option(struct cli *cli, int opt);
/* Parse the options of a command whose only option of its own, if any, is
 * the flag --FLAG (borrowed; NULL for none), which sets *ret_flag. Leaves
 * optind at the first operand; more than max_operands is a usage error. */
int cli_parse_simple(struct cli *cli, int argc, char **argv, const char *flag, bool *ret_flag,
                     int max_operands);
/* Parse the arguments of a command that takes [--json] JOB and nothing else. */
int cli_parse_job_args(struct cli *cli, int argc, char **argv, json_int_t *ret_id);
/* The operands of a command that takes exactly one JOB (args: n of them). */
int cli_job_operand(const struct cli *cli, int n, char **args, json_int_t *ret_id);
/* A job id: decimal digits only, 1..INT64_MAX. 0 or -EINVAL (nothing printed). */
int cli_parse_job_id(const char *text, json_int_t *ret_id);

/* Tenants (SPEC §7): a name is [a-z0-9-], 1 to CLI_TENANT_NAME_MAX. */
#define CLI_TENANT_NAME_MAX 32
/* At most this many tenants are listed in a message; the rest are counted. */
#define CLI_TENANTS_MAX 100
/* CLI_CONTINUE when name is a tenant name, else a usage error (EXIT_USAGE). */
int cli_check_tenant_name(const struct cli *cli, const char *name);
/* Check name and set req's "tenant" to it: CLI_CONTINUE or the exit code. */
int cli_set_tenant(const struct cli *cli, json_t *req, const char *name);
/* The tenants table of `tenants` (or, brief, the lines `status` prints:
 * NAME, TOKEN, RATE, STATE, PENDING) from an array of SPEC §7 tenant objects
 * (borrowed). An exit code. */
int cli_print_tenants(const struct cli *cli, const json_t *tenants, bool brief, bool no_legend);

/* Connect unless connected: EXIT_UNAVAILABLE, EXIT_NOPERM... on failure. */
int cli_connect(struct cli *cli);
/* Report a negative errno from conn_*; returns the exit code for it. */
int cli_conn_error(int err);
/* Check a reply's "ok"; on an error reply print it (for invalid_input each
 * problem as "LABEL:LINE: message"; label borrowed, may be NULL) and return
 * proto_error_exit_code() of its code. */
int cli_reply_check(const json_t *reply, const char *label);
/* Print the problems of an invalid file, compiler style, and "... and N
 * more problems" when count exceeds the listed ones. */
void cli_print_problems(const char *label, const json_t *errors, json_int_t count);
/* Send req (stolen; NULL means out of memory) and read its reply.
 * On success *ret_reply is a new reference with "ok": true. */
int cli_call(struct cli *cli, json_t *req, json_t **ret_reply);
/* {"op": op} plus "id" when id > 0; new reference or NULL. */
json_t *cli_request(const char *op, json_int_t id);
/* `job` request: on success *ret_job is a new reference to the job object. */
int cli_fetch_job(struct cli *cli, json_int_t id, json_t **ret_job);
/* Take the member key of reply as a new reference when it has type type;
 * otherwise report a malformed reply and return EXIT_TEMPFAIL. */
int cli_take(const json_t *reply, const char *key, json_type type, json_t **ret);

/*
 * Page through a job's rows with `rows` requests of CLI_PAGE_ROWS each,
 * calling page(userdata, reply) for every reply (borrowed; "rows" is an
 * array). page returns 0 to go on or an exit code to stop with.
 */
struct cli_rows_query {
	json_int_t id;
	const char *state; /* borrowed, NULL for all */
	bool input;        /* ask for "fields" and "columns" */
};
int cli_rows_foreach(struct cli *cli, const struct cli_rows_query *q,
                     int (*page)(void *userdata, const json_t *reply), void *userdata);

/*
 * Paging, as systemctl and git do: when stdout is a terminal, send it
 * through $INVITED_PAGER, else $PAGER, else "less -FRSXK" (-F: no pager
 * at all when it fits one screen); an empty value or "cat" means none.
 * cli_pager_open does nothing when stdout is not a terminal. cli_pager_close
 * waits for the pager (the person quits it) and puts stdout back.
 * cli_pager_gone: the pager quit early and writes fail with EPIPE.
 */
void cli_pager_open(struct cli *cli);
void cli_pager_close(struct cli *cli);
bool cli_pager_gone(const struct cli *cli);

/* Compact JSON and a newline on stdout. */
void cli_print_json(const json_t *j);

/* Member accessors that tolerate absent members and other types. */
const char *cli_str(const json_t *obj, const char *key); /* borrowed or NULL */
json_int_t cli_int(const json_t *obj, const char *key);  /* 0 unless an integer */
/* Decimal text of cli_int(obj, key) into out. */
const char *cli_int_text(const json_t *obj, const char *key, char out[CLI_INT_MAX]);
/* An RFC 3339 time as local "YYYY-MM-DD HH:MM" into out; the text itself
 * (truncated) when it does not parse, "-" when NULL. */
void cli_local_time(const char *rfc3339, char *out, size_t size);
/* The SGR escape colouring a job or row state word, or NULL (no colour). */
const char *cli_state_sgr(const struct cli *cli, const char *state);
/* n in decimal with a comma every three digits ("3,112"), whatever the
 * locale: what a person reads, never what a program parses. Returns out. */
#define CLI_GROUPED_MAX 40
const char *cli_grouped(json_int_t n, char out[CLI_GROUPED_MAX]);
/* A number in the C locale main() keeps for LC_NUMERIC: integers exactly;
 * reals with up to 15 significant digits (what a program reads:
 * --prometheus) or, human, two decimals at most with trailing zeros dropped
 * (43.52, 10); booleans as 1 or 0; anything else "-". */
#define CLI_NUMBER_MAX 64
void cli_number_text(const json_t *v, char *out, size_t size, bool human);
/* An RFC 3339 time as local "HH:MM:SS" when it is today, else
 * "YYYY-MM-DD HH:MM:SS"; the text itself when it does not parse, "-" when NULL. */
void cli_local_clock(const char *rfc3339, char *out, size_t size);
/* "s" unless n == 1. */
const char *cli_plural(json_int_t n);

/* "Key: value" lines with the values aligned. */
struct cli_kv {
	const char *key;
	const char *value; /* NULL lines are skipped */
};
void cli_print_kv(const struct cli_kv *kv, size_t n);

/* wait/watch (cmd-wait.c), also run by submit --wait/--watch. */
int cli_wait_job(struct cli *cli, json_int_t id);
int cli_watch_job(struct cli *cli, json_int_t id);

int cmd_template(struct cli *cli, int argc, char **argv);
int cmd_validate(struct cli *cli, int argc, char **argv);
int cmd_submit(struct cli *cli, int argc, char **argv);
int cmd_jobs(struct cli *cli, int argc, char **argv);
int cmd_show(struct cli *cli, int argc, char **argv);
int cmd_results(struct cli *cli, int argc, char **argv);
int cmd_watch(struct cli *cli, int argc, char **argv);
int cmd_wait(struct cli *cli, int argc, char **argv);
int cmd_cancel(struct cli *cli, int argc, char **argv);
int cmd_pause(struct cli *cli, int argc, char **argv);
int cmd_resume(struct cli *cli, int argc, char **argv);
int cmd_retry(struct cli *cli, int argc, char **argv);
int cmd_stats(struct cli *cli, int argc, char **argv);
int cmd_status(struct cli *cli, int argc, char **argv);
int cmd_audit(struct cli *cli, int argc, char **argv);
int cmd_reload(struct cli *cli, int argc, char **argv);
int cmd_tenants(struct cli *cli, int argc, char **argv);
int cmd_check(struct cli *cli, int argc, char **argv);
int cmd_resend(struct cli *cli, int argc, char **argv);
int cmd_track(struct cli *cli, int argc, char **argv);
