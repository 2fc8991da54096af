/* SPDX-License-Identifier: MIT */
/* validate and submit: stream a guest list to the daemon (docs/protocol.md). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "csv.h"
#include "valid.h"
#include "validate.h"

enum {
	OPT_NAME = CLI_OPT_FIRST_LOCAL,
	OPT_REDIRECT_URL,
	OPT_SEND_EMAIL,
	OPT_NO_SEND_EMAIL,
	OPT_MESSAGE,
	OPT_LANGUAGE,
	OPT_CC,
	OPT_WAIT,
	OPT_WATCH,
	OPT_TENANT,
	OPT_SKIP_EXISTING,
	OPT_GROUP,
};

/* SPEC §8: a job's groups, as the daemon takes them. */
#define UPLOAD_GROUPS_MAX VALID_GROUPS_MAX

static const struct option upload_options[] = {
    {"name", required_argument, NULL, OPT_NAME},
    {"redirect-url", required_argument, NULL, OPT_REDIRECT_URL},
    {"send-email", no_argument, NULL, OPT_SEND_EMAIL},
    {"no-send-email", no_argument, NULL, OPT_NO_SEND_EMAIL},
    {"message", required_argument, NULL, OPT_MESSAGE},
    {"language", required_argument, NULL, OPT_LANGUAGE},
    {"cc", required_argument, NULL, OPT_CC},
    {"wait", no_argument, NULL, OPT_WAIT},
    {"watch", no_argument, NULL, OPT_WATCH},
    {"tenant", required_argument, NULL, OPT_TENANT},
    {"skip-existing", no_argument, NULL, OPT_SKIP_EXISTING},
    {"group", required_argument, NULL, OPT_GROUP},
    CLI_COMMON_OPTIONS,
    {NULL, 0, NULL, 0},
};

struct upload {
	const char *path;  /* borrowed from argv; "-" is stdin */
	const char *label; /* path, or "<stdin>": what messages call the file */
	json_t *req;       /* owned: the request frame */
	int fd;            /* the file; -1 before it is opened */
	bool wait, watch;
};

static void upload_finish(struct upload *u)
{
	json_decref(u->req);
	if (u->fd > STDIN_FILENO)
		close(u->fd);
}


/* --group ID (repeatable): checked as a GUID here, so a typo costs no
 * upload; sent lowercased in "groups", a repeated id once. */
static int add_group(json_t *req, const char *id)
{
	char lower[VALID_GUID_LEN + 1];
	if (!valid_guid(id, strlen(id))) {
		cli_error("--group '%s': not a group object id (GUID)", id);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i <= VALID_GUID_LEN; i++)
		lower[i] = (char)(id[i] >= 'A' && id[i] <= 'F' ? id[i] - 'A' + 'a' : id[i]);
	json_t *groups = json_object_get(req, "groups");
	if (!groups && json_object_set_new(req, "groups", json_array()) == 0)
		groups = json_object_get(req, "groups");
	for (size_t i = 0; i < json_array_size(groups); i++)
		if (strcmp(json_string_value(json_array_get(groups, i)), lower) == 0)
			return CLI_CONTINUE;
	if (json_array_size(groups) >= UPLOAD_GROUPS_MAX) {
		cli_error("--group: more than %d groups", UPLOAD_GROUPS_MAX);
		return EXIT_USAGE;
	}
	if (!groups || json_array_append_new(groups, json_string(lower)) < 0) {
		cli_error("out of memory");
		return EXIT_TEMPFAIL;
	}
	return CLI_CONTINUE;
}

/* json_string() refuses text that is not UTF-8. */
static int set_string(const struct cli *cli, json_t *req, const char *key, const char *value,
                      const char *option)
{
	json_t *s = json_string(value);
	if (!s)
		return cli_usage(cli, "--%s: not valid UTF-8", option);
	if (json_object_set_new(req, key, s) < 0) {
		cli_error("out of memory");
		return EXIT_TEMPFAIL;
	}
	return CLI_CONTINUE;
}

static int upload_option(struct cli *cli, struct upload *u, int opt)
{
	switch (opt) {
	case OPT_NAME:
		return set_string(cli, u->req, "name", optarg, "name");
	case OPT_REDIRECT_URL:
		return set_string(cli, u->req, "redirect_url", optarg, "redirect-url");
	case OPT_MESSAGE:
		return set_string(cli, u->req, "message", optarg, "message");
	case OPT_LANGUAGE:
		return set_string(cli, u->req, "language", optarg, "language");
	case OPT_CC:
		return set_string(cli, u->req, "cc", optarg, "cc");
	case OPT_SEND_EMAIL:
	case OPT_NO_SEND_EMAIL:
		if (json_object_set_new(u->req, "send_email", json_boolean(opt == OPT_SEND_EMAIL)) <
		    0) {
			cli_error("out of memory");
			return EXIT_TEMPFAIL;
		}
		return CLI_CONTINUE;
	case OPT_SKIP_EXISTING:
		if (json_object_set_new(u->req, "skip_existing", json_true()) < 0) {
			cli_error("out of memory");
			return EXIT_TEMPFAIL;
		}
		return CLI_CONTINUE;
	case OPT_GROUP:
		return add_group(u->req, optarg);
	case OPT_WAIT:
		u->wait = true;
		return CLI_CONTINUE;
	case OPT_WATCH:
		u->watch = true;
		return CLI_CONTINUE;
	case OPT_TENANT:
		/* validate checks the name too, and has no use for it */
		return cli_set_tenant(cli, u->req, optarg);
	default:
		return cli_common_option(cli, opt);
	}
}

/* The job options, checked here with the functions the daemon uses
 * (common/csv.c), so that validate needs no daemon and a typo costs no
 * upload; the messages are the daemon's. */
static int check_options(const json_t *req)
{
	const char *redirect = cli_str(req, "redirect_url"), *cc = cli_str(req, "cc");
	const char *language = cli_str(req, "language"), *why = NULL;
	if (redirect && !csv_url_check(redirect, &why)) {
		cli_error("invalid redirect URL '%s': %s", redirect, why);
		return EXIT_USAGE;
	}
	if (cc && !csv_email_check(cc, &why)) {
		cli_error("invalid cc address '%s': %s", cc, why);
		return EXIT_USAGE;
	}
	if (language && !csv_language_check(language)) {
		cli_error("invalid language '%s' (e.g. en-US, ja-JP)", language);
		return EXIT_USAGE;
	}
	return CLI_CONTINUE;
}

static int parse_args(struct cli *cli, int argc, char **argv, const char *op, struct upload *u)
{
	u->req = cli_request(op, 0);
	if (!u->req) {
		cli_error("out of memory");
		return EXIT_TEMPFAIL;
	}
	int c;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, upload_options, NULL)) != -1) {
		int r = upload_option(cli, u, c);
		if (r != CLI_CONTINUE)
			return r;
	}
	if (optind >= argc)
		return cli_usage(cli, "missing FILE (or - for standard input)");
	if (argc - optind > 1)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind + 1]);
	if (strcmp(op, "submit") != 0 && (u->wait || u->watch))
		return cli_usage(cli, "--wait and --watch are options of submit");
	if (u->wait && u->watch)
		return cli_usage(cli, "--wait and --watch exclude each other");
	int r = check_options(u->req);
	if (r != CLI_CONTINUE)
		return r;
	u->path = argv[optind];
	u->label = strcmp(u->path, "-") == 0 ? "<stdin>" : u->path;
	const char *slash = strrchr(u->path, '/');
	const char *base = slash ? slash + 1 : u->path;
	if (strcmp(u->path, "-") != 0 && base[0] != '\0')
		return set_string(cli, u->req, "filename", base, "filename");
	return CLI_CONTINUE;
}

/* Open the file before talking to the daemon, so a typo costs no connection. */
static int open_input(struct upload *u)
{
	struct stat st;
	int err = 0;
	if (strcmp(u->path, "-") == 0)
		u->fd = STDIN_FILENO;
	else if ((u->fd = open(u->path, O_RDONLY | O_CLOEXEC)) < 0)
		err = errno;
	if (err == 0 && fstat(u->fd, &st) < 0)
		err = errno;
	else if (err == 0 && S_ISDIR(st.st_mode))
		err = EISDIR;
	if (err == 0)
		return CLI_CONTINUE;
	cli_error("cannot read %s: %s", u->label, strerror(err));
	return EXIT_NOINPUT;
}

/* Fill buf unless the end of the file comes first: bytes read or -errno. */
static ssize_t read_full(int fd, char *buf, size_t size)
{
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Send the file as data frames and the empty frame; stops early when the
 * daemon has already answered (it refused the upload). 0 or -errno from the
 * socket; *ret_read_err is set when the file could not be read. */
static int send_file(struct cli *cli, const struct upload *u, char *chunk, int *ret_read_err)
{
	for (;;) {
		if (conn_readable(&cli->conn))
			return -ECONNABORTED;
		ssize_t n = read_full(u->fd, chunk, PROTO_MAX_FRAME);
		if (n < 0) {
			*ret_read_err = (int)-n;
			return 0;
		}
		int e = n > 0 ? conn_send_frame(&cli->conn, chunk, (size_t)n) : 0;
		if (e < 0)
			return e;
		if ((size_t)n < PROTO_MAX_FRAME)
			return conn_send_frame(&cli->conn, NULL, 0);
	}
}

/* The request, the file, then the reply (*ret_reply, a new reference, "ok"
 * not yet checked). Memory: one frame, whatever the file's size. */
static int upload(struct cli *cli, const struct upload *u, json_t **ret_reply)
{
	int read_err = 0, r = EXIT_TEMPFAIL;
	char *chunk = malloc(PROTO_MAX_FRAME);
	if (!chunk) {
		cli_error("out of memory");
		goto out;
	}
	r = cli_connect(cli);
	if (r != EXIT_DONE)
		goto out;
	int e = conn_send_json(&cli->conn, u->req);
	if (e == 0)
		e = send_file(cli, u, chunk, &read_err);
	if (read_err) {
		/* closing before the empty frame aborts the upload */
		conn_close(&cli->conn);
		cli_error("cannot read %s: %s", u->label, strerror(read_err));
		r = EXIT_NOINPUT;
		goto out;
	}
	/* A daemon that refuses an upload may answer, and close, before the end. */
	int send_err = e;
	if (e == 0 || e == -ECONNABORTED || e == -EPIPE || e == -ECONNRESET)
		e = conn_recv_json(&cli->conn, ret_reply);
	if (send_err < 0 || e < 0)
		conn_close(&cli->conn); /* out of step with the daemon: start afresh */
	if (e == 0) {
		r = EXIT_DONE;
	} else if (send_err == -EPIPE || send_err == -ECONNRESET) {
		cli_error("invited closed the connection during the upload");
		r = EXIT_TEMPFAIL;
	} else {
		r = cli_conn_error(e);
	}
out:
	free(chunk);
	return r;
}

static void print_warnings(const json_t *reply)
{
	const json_t *w = json_object_get(reply, "warnings");
	for (size_t i = 0; i < json_array_size(w); i++) {
		const char *s = json_string_value(json_array_get(w, i));
		if (s)
			cli_error("warning: %s", s);
	}
}

/* Parse, open, upload: CLI_CONTINUE with *ret_reply set (a new reference,
 * "ok" not yet checked), or the exit code to stop with. */
static int run_upload(struct cli *cli, int argc, char **argv, const char *op, struct upload *u,
                      json_t **ret_reply)
{
	int r = parse_args(cli, argc, argv, op, u);
	if (r == CLI_CONTINUE)
		r = open_input(u);
	if (r != CLI_CONTINUE)
		return r;
	r = upload(cli, u, ret_reply);
	if (r != EXIT_DONE)
		return r;
	print_warnings(*ret_reply);
	return CLI_CONTINUE;
}

/* submit --json of a refused file: the validate --json object on stdout,
 * {"valid":false,"rows":N,"errors":[...],"error_count":N} (SPEC §3). */
static void print_invalid(const json_t *reply)
{
	const json_t *err = json_object_get(reply, "error");
	const char *code = cli_str(err, "code");
	if (!json_is_false(json_object_get(reply, "ok")) || !code ||
	    strcmp(code, PROTO_ERR_INVALID_INPUT) != 0)
		return;
	json_t *errors = json_object_get(err, "errors");
	json_t *res =
	    json_pack("{s:b,s:I,s:o,s:I}", "valid", 0, "rows", cli_int(err, "rows"), "errors",
	              json_is_array(errors) ? json_incref(errors) : json_array(), "error_count",
	              cli_int(err, "error_count"));
	if (res)
		cli_print_json(res);
	json_decref(res);
}

int cmd_submit(struct cli *cli, int argc, char **argv)
{
	struct upload u = {.fd = -1};
	json_t *reply = NULL, *job = NULL;
	int r = run_upload(cli, argc, argv, "submit", &u, &reply);
	if (r != CLI_CONTINUE)
		goto out;
	if (cli->json)
		print_invalid(reply);
	r = cli_reply_check(reply, u.label);
	if (r == EXIT_DONE)
		r = cli_take(reply, "job", JSON_OBJECT, &job);
	if (r != EXIT_DONE)
		goto out;
	json_int_t id = cli_int(job, "id"), total = cli_int(job, "total");
	if (id <= 0) {
		cli_error("malformed reply from invited: no job id");
		r = EXIT_TEMPFAIL;
		goto out;
	}
	fprintf(stderr, "Submitted job %" JSON_INTEGER_FORMAT ": %" JSON_INTEGER_FORMAT " row%s\n",
	        id, total, cli_plural(total));
	/* stored, but it will not move until its cause is dealt with: say so
	 * now rather than let a person wait (the exit status stays 0) */
	const char *reason = cli_str(job, "reason");
	if (reason)
		cli_error("warning: job %" JSON_INTEGER_FORMAT " cannot be sent yet: %s", id,
		          reason);
	if (cli->json && !u.wait && !u.watch) {
		cli_print_json(job);
		goto out;
	}
	if (!cli->json) {
		printf("%" JSON_INTEGER_FORMAT "\n", id);
		fflush(stdout); /* a script reading the id need not wait for the job */
	}
	if (u.wait)
		r = cli_wait_job(cli, id);
	else if (u.watch)
		r = cli_watch_job(cli, id);
out:
	json_decref(job);
	json_decref(reply);
	upload_finish(&u);
	return r;
}

/* The limits validate checks against: the daemon's when it answers a
 * `status` (quietly: validate needs no daemon), else the defaults it ships
 * with. Nothing is said either way (invitectl(1)). */
static void get_limits(struct cli *cli, struct validate_limits *l)
{
	json_t *req = cli_request("status", 0), *reply = NULL;
	l->max_upload_bytes = VALIDATE_DEFAULT_MAX_UPLOAD_BYTES;
	l->max_rows = VALIDATE_DEFAULT_MAX_ROWS;
	if (req && conn_open(&cli->conn, cli->socket_path) == 0 &&
	    conn_send_json(&cli->conn, req) == 0 && conn_recv_json(&cli->conn, &reply) == 0) {
		const json_t *lim = json_object_get(reply, "limits");
		json_int_t bytes = cli_int(lim, "max_upload_bytes"),
		           rows = cli_int(lim, "max_rows");
		if (json_is_true(json_object_get(reply, "ok")) && bytes > 0 && rows > 0) {
			l->max_upload_bytes = (uint64_t)bytes;
			l->max_rows = (uint64_t)rows;
		}
	}
	conn_close(&cli->conn);
	json_decref(req);
	json_decref(reply);
}

int cmd_validate(struct cli *cli, int argc, char **argv)
{
	struct upload u = {.fd = -1};
	struct validate_limits limits;
	json_t *res = NULL;
	int read_err = 0;
	int r = parse_args(cli, argc, argv, "validate", &u);
	if (r == CLI_CONTINUE)
		r = open_input(&u);
	if (r != CLI_CONTINUE)
		goto out;
	get_limits(cli, &limits);
	if (validate_check_fd(u.fd, &limits, &res, &read_err) < 0) {
		cli_error("out of memory");
		r = EXIT_TEMPFAIL;
		goto out;
	}
	if (read_err) {
		cli_error("cannot read %s: %s", u.label, strerror(read_err));
		r = EXIT_NOINPUT;
		goto out;
	}
	bool valid = json_is_true(json_object_get(res, "valid"));
	json_int_t rows = cli_int(res, "rows");
	json_int_t count = cli_int(res, "error_count");
	if (cli->json) {
		cli_print_json(res);
	} else if (valid) {
		cli_line(stdout, "%s: %" JSON_INTEGER_FORMAT " row%s, valid", u.label, rows,
		         cli_plural(rows));
	} else {
		cli_print_problems(u.label, json_object_get(res, "errors"), count);
		cli_error("%s: %" JSON_INTEGER_FORMAT " problem%s", u.label, count,
		          cli_plural(count));
	}
	r = valid ? EXIT_DONE : EXIT_DATAERR;
out:
	json_decref(res);
	upload_finish(&u);
	return r;
}
