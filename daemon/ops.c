/* SPDX-License-Identifier: MIT */
#include "ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "auth.h"
#include "buf.h"
#include "build-config.h"
#include "csv.h"
#include "ctl.h"
#include "daemon.h"
#include "hook.h"
#include "log.h"
#include "policy.h"
#include "proto.h"
#include "store.h"
#include "tenant.h"
#include "timeutil.h"
#include "upload.h"
#include "vis.h"

#define DEFAULT_REDIRECT "https://myapplications.microsoft.com"
#define RECENT_MS (24u * 3600u * 1000u) /* `jobs` without --all: finished in the last day */
/* Caps on what the daemon stores from a client (and shows to others): with
 * them one job's JSON stays under ~40 KiB, so that a page of jobs always
 * fits a frame (docs/protocol.md, Limits) */
#define MAX_NAME_BYTES 256u
#define MAX_FILENAME_BYTES 4096u
#define MAX_LANGUAGE_BYTES 20u
#define MAX_ERROR_CODE_BYTES 256u
#define JOBS_PAGE_DEFAULT 1000
#define JOBS_PAGE_MAX 1000
#define ROWS_PAGE_DEFAULT 1000
#define ROWS_PAGE_MAX 5000
/* a reply must fit one frame (PROTO_MAX_FRAME): pages end early past this */
#define REPLY_BUDGET (PROTO_MAX_FRAME / 4 * 3)

struct page {
	struct daemon *d;
	json_t *items;
	size_t bytes; /* estimate of the encoded size so far */
	int64_t before; /* jobs: only ids below this (0: from the newest) */
	size_t limit;   /* jobs: items in a page */
	int64_t last;   /* jobs: id of the last item taken */
	bool more;      /* jobs: an item was left for the next page */
	int64_t *ids; /* rows: the id of each item, to cut a page that is still too big */
	size_t n_ids, cap_ids;
};

static size_t text_cost(const char *s)
{
	/* escaping may double a string; \uXXXX is rarer */
	return s ? 2 * strlen(s) + 8 : 8;
}

struct waiter {
	struct daemon *d;
	struct ctl_conn *conn;
	int64_t job_id;
	struct waiter *prev, *next;
};

static json_t *time_or_null(uint64_t ms)
{
	if (ms == 0)
		return json_null();
	char t[TIME_RFC3339_MAX];
	time_format_rfc3339(ms, t);
	return json_string(t);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* Why an active job is not moving, if it is not: the tenant's block, or no token. */
static const char *job_reason(struct daemon *d, const struct store_job *j)
{
	if (j->reason)
		return j->reason;
	if ((j->state == JOB_STATE_QUEUED || j->state == JOB_STATE_RUNNING) && d->auth &&
	    auth_state(d->auth) == AUTH_STATE_ERROR)
		return auth_error(d->auth);
	return NULL;
}

static json_t *job_json(struct daemon *d, const struct store_job *j)
{
	int64_t pending = j->total - j->succeeded - j->failed - j->cancelled;
	const char *reason = job_reason(d, j);
	struct buf why = BUF_INIT;
	if (reason && reason != j->reason)
		buf_printf(&why, "cannot get a Graph token: %s", reason);
	json_t *o = json_pack(
		"{s:I,s:o,s:s,s:o,s:o,s:{s:I,s:s},s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:o,s:o,"
		"s:{s:s,s:b,s:o,s:o,s:o}}",
		"id", (json_int_t)j->id, "name", str_or_null(j->name), "state",
		job_state_name(j->state), "created_at", time_or_null(j->created_at), "finished_at",
		time_or_null(j->finished_at), "submitted_by", "uid", (json_int_t)j->uid, "user",
		j->user, "total", (json_int_t)j->total, "succeeded", (json_int_t)j->succeeded,
		"failed", (json_int_t)j->failed, "pending", (json_int_t)pending, "cancelled",
		(json_int_t)j->cancelled, "in_flight", (json_int_t)j->in_flight, "tenant", j->tenant,
		"reason", why.data ? json_string(why.data) : str_or_null(reason), "filename", str_or_null(j->filename), "options",
		"redirect_url", j->redirect_url, "send_email", j->send_email, "message",
		str_or_null(j->message), "language", str_or_null(j->language), "cc",
		str_or_null(j->cc));
	buf_finish(&why);
	return o;
}

static bool job_ended(const struct store_job *j)
{
	return j->finished_at != 0 || j->state == JOB_STATE_BLOCKED;
}

static const char *store_error_code(int r)
{
	if (r == -ENOENT)
		return PROTO_ERR_NOT_FOUND;
	if (r == -EBUSY || r == -ENOSPC)
		return PROTO_ERR_TEMPORARY;
	return PROTO_ERR_INTERNAL;
}

static const char *store_error_text(int r)
{
	switch (r) {
	case -EBUSY:
		return "the database is busy (an upload being stored, or another program "
		       "writing to it); try again in a moment";
	case -ENOSPC:
		return "the disk under the database is full";
	default:
		return strerror(-r);
	}
}

static void reply_store_error(struct ctl_conn *conn, int r, int64_t id)
{
	if (r == -ENOENT)
		ctl_conn_error(conn, PROTO_ERR_NOT_FOUND, "no job %lld", (long long)id);
	else
		ctl_conn_error(conn, store_error_code(r), "%s", store_error_text(r));
}

/* A positive integer argument "id". */
static bool get_id(struct ctl_conn *conn, json_t *req, int64_t *ret)
{
	json_t *v = json_object_get(req, "id");
	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "a job id (a positive integer) is required");
		return false;
	}
	*ret = json_integer_value(v);
	return true;
}

/* An optional string argument; false (after replying) when it has the wrong type. */
static bool get_str(struct ctl_conn *conn, json_t *req, const char *key, const char **ret)
{
	json_t *v = json_object_get(req, key);
	*ret = NULL;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_string(v)) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "'%s' must be a string", key);
		return false;
	}
	*ret = json_string_value(v);
	return true;
}

static void reply_job(struct daemon *d, struct ctl_conn *conn, int64_t id, const char *extra_key,
		      json_t *extra)
{
	struct store_job j;
	int r = store_job_get(d->store, id, &j);
	if (r < 0) {
		json_decref(extra);
		reply_store_error(conn, r, id);
		return;
	}
	json_t *reply = json_pack("{s:b,s:o}", "ok", 1, "job", job_json(d, &j));
	if (extra_key)
		json_object_set_new(reply, extra_key, extra);
	store_job_clear(&j);
	ctl_conn_reply(conn, reply);
}

/* ---- status, stats ---- */

static void op_status(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	int64_t active = 0, pending = 0, in_flight = 0;
	store_totals(d->store, &active, &pending, &in_flight);
	static const char *const token_states[] = {"none", "fetching", "valid", "error"};
	int64_t exp = auth_expires_in_s(d->auth);
	struct tenant_stats ts;
	tenant_get_stats(d->tenant, &ts);
	json_t *reply = json_pack(
		"{s:b,s:s,s:I,s:s,s:o,s:{s:s,s:o,s:o},s:{s:f,s:f,s:I},s:{s:I,s:I},s:{s:I}}", "ok", 1,
		"version", INVITED_VERSION, "uptime_s",
		(json_int_t)((time_mono_ms() - d->started_mono_ms) / 1000u), "tenant",
		tenant_name(d->tenant), "blocked", str_or_null(tenant_blocked(d->tenant)), "token",
		"state", token_states[auth_state(d->auth)], "expires_in_s",
		exp >= 0 ? json_integer(exp) : json_null(), "error", str_or_null(auth_error(d->auth)),
		"rate", "configured", d->config.rate, "current", tenant_rate(d->tenant), "paused_ms",
		(json_int_t)ts.paused_ms, "queue", "pending", (json_int_t)pending, "in_flight",
		(json_int_t)ts.in_flight, "jobs", "active", (json_int_t)active);
	/* what `invitectl validate` checks a file against (SPEC §3) */
	if (reply)
		json_object_set_new(reply, "limits",
				    json_pack("{s:I,s:I}", "max_upload_bytes",
					      (json_int_t)d->config.max_upload_bytes, "max_rows",
					      (json_int_t)d->config.max_rows));
	ctl_conn_reply(conn, reply);
}

static void op_stats(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	int64_t active = 0, pending = 0, in_flight = 0;
	store_totals(d->store, &active, &pending, &in_flight);
	struct tenant_stats ts;
	tenant_get_stats(d->tenant, &ts);
	json_t *stats = json_pack(
		"{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I}", "requests_total",
		(json_int_t)ts.requests, "invitations_created_total", (json_int_t)ts.created,
		"rows_failed_total", (json_int_t)ts.failed, "retries_total", (json_int_t)ts.retries,
		"throttled_total", (json_int_t)ts.throttled, "transient_errors_total",
		(json_int_t)ts.transient, "auth_errors_total", (json_int_t)ts.auth_errors,
		"token_refreshes_total", (json_int_t)auth_refreshes(d->auth), "in_flight",
		(json_int_t)ts.in_flight, "claimed", (json_int_t)ts.ready, "pending",
		(json_int_t)pending, "active_jobs", (json_int_t)active, "rate", tenant_rate(d->tenant),
		"paused_ms", (json_int_t)ts.paused_ms, "connections",
		(json_int_t)ctl_connections(d->ctl), "uptime_seconds",
		(json_int_t)((time_mono_ms() - d->started_mono_ms) / 1000u));
	/* rows by state over every stored job; pending and in_flight are above */
	int64_t succeeded = 0, failed = 0, cancelled = 0;
	if (stats && store_row_totals(d->store, &succeeded, &failed, &cancelled) == 0) {
		json_object_set_new(stats, "rows_succeeded", json_integer(succeeded));
		json_object_set_new(stats, "rows_failed", json_integer(failed));
		json_object_set_new(stats, "rows_cancelled", json_integer(cancelled));
	}
	if (stats)
		json_object_set_new(stats, "on_complete_running",
				    json_integer(hook_running(d->hook)));
	ctl_conn_reply(conn, json_pack("{s:b,s:o}", "ok", 1, "stats", stats));
}

/* ---- submit, validate ---- */

struct upload_ctx {
	struct daemon *d;
	struct ctl_conn *conn;
	bool validate_only;
	bool job_message;
	char *filename;
};

static void upload_ctx_free(void *userdata)
{
	struct upload_ctx *ctx = userdata;
	free(ctx->filename);
	free(ctx);
}

static json_t *errors_json(const struct upload_result *res)
{
	json_t *a = json_array();
	for (size_t i = 0; i < res->n_errors; i++)
		json_array_append_new(a, json_pack("{s:I,s:s}", "line",
						   (json_int_t)res->errors[i].line, "message",
						   res->errors[i].message));
	return a;
}

static void on_upload_done(void *userdata, const struct upload_result *res)
{
	struct upload_ctx *ctx = userdata;
	struct daemon *d = ctx->d;
	struct ctl_conn *conn = ctx->conn;
	ctl_conn_upload_done(conn);

	if (res->status < 0) {
		log_error("Failed to store an upload from %s: %s", ctl_conn_user(conn),
			  res->failure ? res->failure : strerror(-res->status));
		ctl_conn_error(conn, res->status == -ENOSPC || res->status == -EBUSY
					     ? PROTO_ERR_TEMPORARY
					     : PROTO_ERR_INTERNAL,
			       "%s: cannot store the file: %s", ctx->filename,
			       res->failure ? res->failure : strerror(-res->status));
	} else if (ctx->validate_only) {
		json_t *reply = json_pack("{s:b,s:b,s:I,s:o,s:I}", "ok", 1, "valid", res->status == 0,
					  "rows", (json_int_t)res->rows, "errors", errors_json(res),
					  "error_count", (json_int_t)res->error_count);
		ctl_conn_reply(conn, reply);
	} else if (res->status == 1) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s: %zu problem%s, nothing stored", ctx->filename,
			 res->error_count, res->error_count == 1 ? "" : "s");
		json_t *reply = json_pack("{s:b,s:{s:s,s:s,s:o,s:I,s:I}}", "ok", 0, "error", "code",
					  PROTO_ERR_INVALID_INPUT, "message", msg, "errors",
					  errors_json(res), "error_count", (json_int_t)res->error_count,
					  "rows", (json_int_t)res->rows);
		ctl_conn_reply(conn, reply);
	} else {
		audit_log("submit", (int64_t)ctl_conn_uid(conn), ctl_conn_user(conn), res->job_id,
			  res->sha256, "Job %lld submitted by %s (uid %u): %zu rows from '%s', sha256 %s",
			  (long long)res->job_id, ctl_conn_user(conn), (unsigned)ctl_conn_uid(conn),
			  res->rows, ctx->filename, res->sha256);
		json_t *warnings = json_array();
		if (res->has_message || ctx->job_message)
			json_array_append_new(
				warnings,
				json_string("rows carry a customized invitation message, but "
					    "Microsoft drops customized messages when an application "
					    "sends the invitation (invited signs in as an app); "
					    "guests get the standard text"));
		reply_job(d, conn, res->job_id, "warnings", warnings);
		tenant_kick(d->tenant);
	}
	upload_ctx_free(ctx);
}

static void on_upload_resume(void *userdata)
{
	struct upload_ctx *ctx = userdata;
	ctl_conn_resume(ctx->conn);
}

/* A client string the daemon stores and shows to other users: at most max
 * bytes, and (no_control) no control character, bidirectional override or
 * invalid UTF-8 (vis_has_control). False after replying `usage`, naming the
 * field and never echoing the value. */
static bool field_ok(struct ctl_conn *conn, const char *what, const char *s, size_t max,
		     bool no_control)
{
	if (!s)
		return true;
	if (strlen(s) > max) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "%s is longer than %zu bytes", what, max);
		return false;
	}
	if (no_control && vis_has_control(s)) {
		ctl_conn_error(conn, PROTO_ERR_USAGE,
			       "%s holds a control character (or a bidirectional override, or "
			       "invalid UTF-8): refused, it would reach other users' terminals",
			       what);
		return false;
	}
	return true;
}

static void op_upload(struct daemon *d, struct ctl_conn *conn, json_t *req, bool validate_only)
{
	const char *name, *filename, *redirect, *message, *language, *cc, *why = NULL;
	if (!get_str(conn, req, "name", &name) || !get_str(conn, req, "filename", &filename) ||
	    !get_str(conn, req, "redirect_url", &redirect) ||
	    !get_str(conn, req, "message", &message) ||
	    !get_str(conn, req, "language", &language) || !get_str(conn, req, "cc", &cc))
		return;
	/* lengths first: the checks below quote the value */
	if (!field_ok(conn, "the job name", name, MAX_NAME_BYTES, true) ||
	    !field_ok(conn, "the file name", filename, MAX_FILENAME_BYTES, true) ||
	    !field_ok(conn, "the language", language, MAX_LANGUAGE_BYTES, true) ||
	    !field_ok(conn, "the cc address", cc, CSV_MAX_EMAIL_BYTES, true) ||
	    !field_ok(conn, "the redirect URL", redirect, CSV_MAX_URL_BYTES, true) ||
	    !field_ok(conn, "the message", message, CSV_MAX_MESSAGE_BYTES, false))
		return;
	json_t *send = json_object_get(req, "send_email");
	if (send && !json_is_boolean(send) && !json_is_null(send)) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "'send_email' must be true or false");
		return;
	}
	if (redirect && !csv_url_check(redirect, &why)) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "invalid redirect URL '%s': %s", redirect, why);
		return;
	}
	if (cc && !csv_email_check(cc, &why)) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "invalid cc address '%s': %s", cc, why);
		return;
	}
	if (language && !csv_language_check(language)) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "invalid language '%s' (e.g. en-US, ja-JP)",
			       language);
		return;
	}
	if (d->stopping) {
		ctl_conn_error(conn, PROTO_ERR_TEMPORARY, "invited is shutting down");
		return;
	}

	struct upload_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		ctl_conn_error(conn, PROTO_ERR_INTERNAL, "out of memory");
		return;
	}
	ctx->d = d;
	ctx->conn = conn;
	ctx->validate_only = validate_only;
	ctx->job_message = message != NULL;
	ctx->filename = strdup(filename ? filename : "-");
	struct upload_spec spec = {
		.db_path = store_path(d->store),
		.job =
			{
				.tenant_id = tenant_id(d->tenant),
				.name = name,
				.filename = filename,
				.redirect_url = redirect ? redirect : DEFAULT_REDIRECT,
				.message = message,
				.language = language,
				.cc = cc,
				.user = ctl_conn_user(conn),
				.send_email = send ? json_is_true(send) : true,
				.uid = (uint32_t)ctl_conn_uid(conn),
			},
		.validate_only = validate_only,
		.max_bytes = d->config.max_upload_bytes,
		.max_rows = d->config.max_rows,
	};
	struct upload *u;
	int r = ctx->filename ? upload_create(d->loop, &spec, on_upload_done, on_upload_resume, ctx, &u)
			      : -ENOMEM;
	if (r < 0) {
		upload_ctx_free(ctx);
		ctl_conn_error(conn, PROTO_ERR_INTERNAL, "cannot start the upload: %s", strerror(-r));
		return;
	}
	/* if the client goes away mid-upload, ctl aborts the upload (nothing
	 * stored) and this frees the context */
	ctl_conn_on_gone(conn, upload_ctx_free, ctx);
	ctl_conn_start_upload(conn, u);
}

static void op_submit(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	op_upload(d, conn, req, false);
}

static void op_validate(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	op_upload(d, conn, req, true);
}

/* ---- jobs, job, rows ---- */

static int add_job(void *userdata, const struct store_job *j)
{
	struct page *pg = userdata;
	if (pg->before && j->id >= pg->before)
		return 0; /* on an earlier page */
	size_t cost = 600 + text_cost(j->name) + text_cost(j->filename) + text_cost(j->message) +
		      text_cost(j->reason) + text_cost(j->redirect_url) + text_cost(j->cc) +
		      text_cost(j->language) + text_cost(j->user) + text_cost(j->tenant);
	if (json_array_size(pg->items) == pg->limit ||
	    (json_array_size(pg->items) > 0 && pg->bytes + cost > REPLY_BUDGET)) {
		pg->more = true;
		return 1;
	}
	if (json_array_append_new(pg->items, job_json(pg->d, j)) < 0)
		return -ENOMEM;
	pg->bytes += cost;
	pg->last = j->id;
	return 0;
}

/* Newest first, a page at a time: `before` (the previous reply's `next`)
 * and `limit`; a page also ends before it would outgrow a frame. */
static void op_jobs(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	bool all = json_is_true(json_object_get(req, "all"));
	json_t *v = json_object_get(req, "before");
	json_int_t before = json_is_integer(v) ? json_integer_value(v) : 0;
	v = json_object_get(req, "limit");
	json_int_t limit = json_is_integer(v) ? json_integer_value(v) : JOBS_PAGE_DEFAULT;
	if (limit < 1 || limit > JOBS_PAGE_MAX || before < 0) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "'limit' must be 1 to %d and 'before' positive",
			       JOBS_PAGE_MAX);
		return;
	}
	struct page pg = {.d = d, .items = json_array(), .before = before, .limit = (size_t)limit};
	uint64_t now = time_now_ms();
	int64_t uid = policy_list_uid(ctl_conn_peer(conn), &d->groups); /* a member: own jobs */
	int r = store_jobs_list_owned(d->store, uid, all, now > RECENT_MS ? now - RECENT_MS : 0,
				      add_job, &pg);
	if (r < 0) {
		json_decref(pg.items);
		reply_store_error(conn, r, 0);
		return;
	}
	json_t *reply = json_pack("{s:b,s:o,s:o,s:b}", "ok", 1, "jobs", pg.items, "next",
				  pg.more ? json_integer(pg.last) : json_null(), "truncated", pg.more);
	/* the estimate was short (heavily escaped text): halve the page until it fits */
	json_t *items = json_object_get(reply, "jobs");
	while (json_array_size(items) > 1 && pg.bytes > PROTO_MAX_FRAME / 3 &&
	       json_dumpb(reply, NULL, 0, JSON_COMPACT) > PROTO_MAX_FRAME) {
		size_t n = json_array_size(items) / 2;
		while (json_array_size(items) > n)
			json_array_remove(items, n);
		json_int_t last = json_integer_value(json_object_get(json_array_get(items, n - 1), "id"));
		json_object_set_new(reply, "next", json_integer(last));
		json_object_set_new(reply, "truncated", json_true());
	}
	ctl_conn_reply(conn, reply);
}

static void op_job(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	int64_t id;
	if (get_id(conn, req, &id))
		reply_job(d, conn, id, NULL, NULL);
}

/* Put back the cells stored as STORE_FIELD_* numbers (takes f's reference). */
static json_t *input_cells(json_t *f, const struct store_row *row)
{
	size_t i;
	json_t *v;
	json_array_foreach(f, i, v)
	{
		if (!json_is_integer(v))
			continue;
		const char *text = NULL;
		switch (json_integer_value(v)) {
		case 0:
			text = row->email;
			break;
		case 1:
			text = row->display_name;
			break;
		case 2:
			text = row->redirect_url;
			break;
		case 3:
			text = row->message;
			break;
		}
		json_array_set_new(f, i, json_string(text ? text : ""));
	}
	return f;
}

static int add_row(void *userdata, const struct store_row *row)
{
	struct page *pg = userdata;
	json_t *o = json_pack(
		"{s:I,s:s,s:o,s:s,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "line", (json_int_t)row->line,
		"email", row->email, "display_name", str_or_null(row->display_name), "state",
		row_state_name(row->state), "attempts", (json_int_t)row->attempts, "http_status",
		row->http_status ? json_integer(row->http_status) : json_null(), "error_code",
		str_or_null(row->error_code), "error_message", str_or_null(row->error_message),
		"request_id", str_or_null(row->request_id), "invited_user_id",
		str_or_null(row->invited_user_id), "invite_redeem_url",
		str_or_null(row->invite_redeem_url), "updated_at", time_or_null(row->updated_at),
		"finished_at",
		row->state >= ROW_STATE_SUCCEEDED ? time_or_null(row->updated_at) : json_null());
	if (o)
		json_object_set_new(o, "client_request_id", str_or_null(row->client_request_id));
	if (!o)
		return -ENOMEM;
	if (row->fields) {
		json_t *f = json_loads(row->fields, 0, NULL);
		json_object_set_new(o, "fields", f ? input_cells(f, row) : json_array());
	}
	if (json_array_append_new(pg->items, o) < 0)
		return -ENOMEM;
	if (pg->n_ids == pg->cap_ids) {
		size_t cap = pg->cap_ids ? 2 * pg->cap_ids : 256;
		int64_t *ids = realloc(pg->ids, cap * sizeof(*ids));
		if (!ids)
			return -ENOMEM;
		pg->ids = ids;
		pg->cap_ids = cap;
	}
	pg->ids[pg->n_ids++] = row->id;
	pg->bytes += 400 + text_cost(row->email) + text_cost(row->display_name) +
		     text_cost(row->error_message) + text_cost(row->invite_redeem_url) +
		     text_cost(row->fields) + text_cost(row->redirect_url) + text_cost(row->message) +
		     text_cost(row->email);
	return pg->bytes > REPLY_BUDGET;
}

static void op_rows(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	int64_t id;
	if (!get_id(conn, req, &id))
		return;
	json_t *v = json_object_get(req, "cursor");
	int64_t cursor = json_is_integer(v) ? json_integer_value(v) : 0;
	v = json_object_get(req, "limit");
	json_int_t limit = json_is_integer(v) ? json_integer_value(v) : ROWS_PAGE_DEFAULT;
	if (limit < 1 || limit > ROWS_PAGE_MAX || cursor < 0) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "'limit' must be 1 to %d and 'cursor' positive",
			       ROWS_PAGE_MAX);
		return;
	}
	const char *state_name;
	if (!get_str(conn, req, "state", &state_name))
		return;
	int state = -1;
	if (state_name && (state = row_state_from_name(state_name)) < 0) {
		ctl_conn_error(conn, PROTO_ERR_USAGE,
			       "unknown row state '%s' (pending, in_flight, succeeded, failed, "
			       "cancelled)",
			       state_name);
		return;
	}
	bool input = json_is_true(json_object_get(req, "input"));

	struct store_job j;
	int r = store_job_get(d->store, id, &j);
	if (r < 0) {
		reply_store_error(conn, r, id);
		return;
	}
	struct page pg = {.items = json_array()};
	int64_t next = 0;
	r = store_rows_list(d->store, id, cursor, (unsigned)limit, state, input, add_row, &pg, &next);
	if (r < 0) {
		store_job_clear(&j);
		json_decref(pg.items);
		free(pg.ids);
		reply_store_error(conn, r, id);
		return;
	}
	json_t *reply = json_pack("{s:b,s:o,s:o}", "ok", 1, "rows", pg.items, "next",
				  next ? json_integer(next) : json_null());
	if (input) {
		json_t *cols = json_loads(j.columns, 0, NULL);
		json_object_set_new(reply, "columns", cols ? cols : json_array());
	}
	store_job_clear(&j);
	/* the estimate was short (heavily escaped text): halve the page until it fits */
	size_t n = pg.n_ids;
	/* escaping makes at most 3 times the estimate: no need to measure below */
	while (n > 1 && pg.bytes > PROTO_MAX_FRAME / 3 &&
	       json_dumpb(reply, NULL, 0, JSON_COMPACT) > PROTO_MAX_FRAME) {
		n /= 2; /* keep rows [0, n) */
		while (json_array_size(json_object_get(reply, "rows")) > n)
			json_array_remove(json_object_get(reply, "rows"), n);
		json_object_set_new(reply, "next", json_integer(pg.ids[n - 1]));
	}
	free(pg.ids);
	ctl_conn_reply(conn, reply);
}

/* ---- wait ---- */

static void waiter_remove(void *userdata)
{
	struct waiter *w = userdata;
	if (w->prev)
		w->prev->next = w->next;
	else
		w->d->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
}

static void op_wait(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	int64_t id;
	if (!get_id(conn, req, &id))
		return;
	struct store_job j;
	int r = store_job_get(d->store, id, &j);
	if (r < 0) {
		reply_store_error(conn, r, id);
		return;
	}
	if (job_ended(&j)) {
		ctl_conn_reply(conn, json_pack("{s:b,s:o}", "ok", 1, "job", job_json(d, &j)));
		store_job_clear(&j);
		return;
	}
	store_job_clear(&j);
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w) {
		ctl_conn_error(conn, PROTO_ERR_INTERNAL, "out of memory");
		return;
	}
	w->d = d;
	w->conn = conn;
	w->job_id = id;
	w->next = d->waiters;
	if (d->waiters)
		d->waiters->prev = w;
	d->waiters = w;
	ctl_conn_on_gone(conn, waiter_remove, w);
}

/* Answer the waiters of job_id (0: of every job) whose job has ended. */
static void answer_waiters(struct daemon *d, int64_t job_id)
{
	struct waiter *w = d->waiters;
	while (w) {
		struct waiter *next = w->next;
		if (job_id == 0 || w->job_id == job_id) {
			struct store_job j;
			if (store_job_get(d->store, w->job_id, &j) == 0) {
				if (job_ended(&j)) {
					struct ctl_conn *conn = w->conn;
					waiter_remove(w);
					ctl_conn_reply(conn, json_pack("{s:b,s:o}", "ok", 1, "job",
								       job_json(d, &j)));
				}
				store_job_clear(&j);
			}
		}
		w = next;
	}
}

void ops_job_done(struct daemon *d, int64_t job_id)
{
	struct store_job j;
	if (store_job_get(d->store, job_id, &j) == 0) {
		if (j.finished_at) {
			log_notice("Job %lld %s: %lld succeeded, %lld failed, %lld cancelled of %lld",
				   (long long)j.id, job_state_name(j.state), (long long)j.succeeded,
				   (long long)j.failed, (long long)j.cancelled, (long long)j.total);
			struct hook_job hj = {
				.id = j.id,
				.name = j.name,
				.state = job_state_name(j.state),
				.total = j.total,
				.succeeded = j.succeeded,
				.failed = j.failed,
				.cancelled = j.cancelled,
			};
			if (d->hook)
				hook_run(d->hook, &hj); /* logs its own failure */
		}
		store_job_clear(&j);
	}
	answer_waiters(d, job_id);
}

/* on_complete for each job the tenant's block has stopped (SPEC §4: jobs
 * go blocked), with the reason; once per block, as set_blocked calls us. */
static int hook_blocked_job(void *userdata, const struct store_job *j)
{
	struct daemon *d = userdata;
	if (j->finished_at || j->state != JOB_STATE_BLOCKED)
		return 0;
	struct hook_job hj = {
		.id = j->id,
		.name = j->name,
		.state = job_state_name(j->state),
		.total = j->total,
		.succeeded = j->succeeded,
		.failed = j->failed,
		.cancelled = j->cancelled,
		.reason = j->reason ? j->reason : tenant_blocked(d->tenant),
	};
	hook_run(d->hook, &hj); /* logs its own failure */
	return 0;
}

void ops_tenant_blocked(struct daemon *d)
{
	if (d->hook && store_jobs_list(d->store, false, time_now_ms(), hook_blocked_job, d) < 0)
		log_error("Failed to list the jobs the block stopped: on_complete does not run "
			  "for them");
	answer_waiters(d, 0);
}

/* Refuse a request with the rule that stops it (takes why); logged once
 * per uid, op and job in a while (policy_refusal_note). */
static void refuse(struct daemon *d, struct ctl_conn *conn, const char *op, int64_t job_id,
		   const char *rule, char *why)
{
	unsigned suppressed = 0;
	const struct peer *p = ctl_conn_peer(conn);
	if (policy_refusal_note(&d->refusals, p->uid, op, job_id, time_mono_ms(), &suppressed)) {
		struct buf more = BUF_INIT;
		if (suppressed)
			buf_printf(&more, " (refused %u more time%s since last logged)", suppressed,
				   suppressed == 1 ? "" : "s");
		log_warning("Refused '%s' from uid %u (%s): %s%s", op, (unsigned)p->uid,
			    ctl_conn_user(conn), why, more.data ? more.data : "");
		buf_finish(&more);
	}
	/* "rule" tells the client that this is not the socket's allow_group */
	ctl_conn_reply(conn, json_pack("{s:b,s:{s:s,s:s,s:s}}", "ok", 0, "error", "code",
				       PROTO_ERR_PERMISSION, "message", why, "rule", rule));
	free(why);
}

/* ---- cancel, pause, resume, retry ---- */

/* The tenant's block lifted by who (borrowed) with a resume of job id: in
 * the audit trail and the journal. */
static void audit_unblock(struct daemon *d, const struct store_actor *who, int64_t id,
			  const char *reason)
{
	struct buf detail = BUF_INIT;
	buf_printf(&detail, "tenant '%s' unblocked after: %s", tenant_name(d->tenant),
		   reason ? reason : "?");
	struct store_audit a = {.uid = who->uid,
				.user = who->user,
				.action = "unblock",
				.job_id = id,
				.detail = detail.data};
	if (!detail.data || store_audit_add(d->store, &a) < 0)
		log_error("Failed to record the lifting of tenant '%s's block in the audit trail",
			  tenant_name(d->tenant));
	audit_log("unblock", who->uid, who->user, id, NULL, "Tenant '%s' unblocked by %s (uid %lld)",
		  tenant_name(d->tenant), who->user, (long long)who->uid);
	buf_finish(&detail);
}

/*
 * resume lifts the tenant's block too, when the peer may (root and
 * admin_group, SPEC §6); a member's resume of their own paused job resumes
 * the job only, and a member's resume that would only lift the block is
 * refused. 1: lift it, 0: not blocked or not theirs to lift, -1: refused
 * (replied). *ret_reason: owned copy of the block's reason when 1.
 */
static int resume_unblock(struct daemon *d, struct ctl_conn *conn, int64_t id, char **ret_reason)
{
	const char *blocked = tenant_blocked(d->tenant);
	if (!blocked)
		return 0;
	struct buf what = BUF_INIT;
	char *why = NULL;
	buf_printf(&what, "lift the block of tenant '%s'", tenant_name(d->tenant));
	int r = what.data ? policy_check(ctl_conn_peer(conn), &d->groups, POLICY_ADMIN, NULL,
					 what.data, &why)
			  : -ENOMEM;
	buf_finish(&what);
	if (r == 0) {
		*ret_reason = strdup(blocked);
		return 1;
	}
	struct store_job j;
	int g = r == -EPERM ? store_job_get(d->store, id, &j) : r;
	bool paused = g == 0 && j.state == JOB_STATE_PAUSED;
	if (g == 0)
		store_job_clear(&j);
	if (paused) {
		free(why);
		return 0;
	}
	if (g < 0) {
		free(why);
		if (g == -ENOMEM)
			ctl_conn_error(conn, PROTO_ERR_INTERNAL, "out of memory");
		else
			reply_store_error(conn, g, id);
		return -1;
	}
	struct buf m = BUF_INIT;
	buf_printf(&m, "job %lld is not paused, and %s", (long long)id, why);
	free(why);
	if (!m.data) {
		ctl_conn_error(conn, PROTO_ERR_INTERNAL, "out of memory");
		return -1;
	}
	refuse(d, conn, "resume", id, "admin", buf_steal(&m));
	return -1;
}

/* code: retry only the failed rows with this error_code (NULL: all). */
static void op_action(struct daemon *d, struct ctl_conn *conn, json_t *req,
		      int (*action)(struct store *, int64_t, int64_t *), const char *verb,
		      const char *code)
{
	int64_t id, changed = 0;
	if (!get_id(conn, req, &id))
		return;
	/* the job's claimed rows go back first, so that the action covers
	 * them; if the database is too busy for that, so is the action: say
	 * so after one wait (the claims are sent meanwhile) */
	if (action == store_job_cancel || action == store_job_pause) {
		int f = tenant_forget_job(d->tenant, id);
		if (f == -EBUSY) {
			reply_store_error(conn, f, id);
			tenant_kick(d->tenant);
			return;
		}
	}
	char *block_reason = NULL;
	int unblock = action == store_job_resume ? resume_unblock(d, conn, id, &block_reason) : 0;
	if (unblock < 0)
		return;
	enum store_action act = action == store_job_cancel  ? STORE_ACTION_CANCEL
				: action == store_job_pause ? STORE_ACTION_PAUSE
				: action == store_job_resume ? STORE_ACTION_RESUME
							     : STORE_ACTION_RETRY;
	/* the change and its audit entry in one transaction */
	struct store_actor who = {.uid = (int64_t)ctl_conn_uid(conn), .user = ctl_conn_user(conn)};
	int r = store_job_action(d->store, act, id, code, &who, &changed);
	if (r < 0) {
		free(block_reason);
		reply_store_error(conn, r, id);
		tenant_kick(d->tenant);
		return;
	}
	if (unblock > 0) {
		int u = tenant_unblock(d->tenant);
		if (u < 0) {
			free(block_reason);
			reply_store_error(conn, u, id);
			return;
		}
		changed += u;
		if (u > 0)
			audit_unblock(d, &who, id, block_reason);
	}
	free(block_reason);
	audit_log(verb, who.uid, who.user, id, NULL, "Job %lld: %s%s%s by %s (uid %u), %lld changed",
		  (long long)id, verb, code ? " of rows failed with " : "", code ? code : "",
		  ctl_conn_user(conn), (unsigned)ctl_conn_uid(conn), (long long)changed);
	tenant_kick(d->tenant);
	reply_job(d, conn, id, "changed", json_integer(changed));
}

static void op_cancel(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	op_action(d, conn, req, store_job_cancel, "cancel", NULL);
}

static void op_pause(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	op_action(d, conn, req, store_job_pause, "pause", NULL);
}

static void op_resume(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	op_action(d, conn, req, store_job_resume, "resume", NULL);
}

static void op_retry(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	const char *code;
	if (!get_str(conn, req, "error_code", &code))
		return;
	if (code && (!*code || strlen(code) > MAX_ERROR_CODE_BYTES)) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "'error_code' must be 1 to %u bytes",
			       MAX_ERROR_CODE_BYTES);
		return;
	}
	if (!field_ok(conn, "the error code", code, MAX_ERROR_CODE_BYTES, true))
		return;
	op_action(d, conn, req, store_job_retry, "retry", code);
}

/* ---- reload, audit ---- */

static void op_reload(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	char *message = NULL;
	int r = daemon_reload(d, (int64_t)ctl_conn_uid(conn), ctl_conn_user(conn), &message);
	if (r < 0)
		ctl_conn_error(conn, PROTO_ERR_CONFIG, "%s", message ? message : strerror(-r));
	else
		ctl_conn_reply(conn, json_pack("{s:b,s:s}", "ok", 1, "message",
					       message ? message : ""));
	free(message);
}

#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_MAX 1000

static int add_audit(void *userdata, const struct store_audit *a)
{
	struct page *pg = userdata;
	json_t *o = json_pack("{s:I,s:o,s:o,s:s,s:s,s:o,s:o,s:o}", "id", (json_int_t)a->id, "at",
			      time_or_null(a->at), "uid",
			      a->uid >= 0 ? json_integer(a->uid) : json_null(), "user",
			      a->user ? a->user : "", "action", a->action ? a->action : "", "job",
			      a->job_id > 0 ? json_integer(a->job_id) : json_null(), "sha256",
			      str_or_null(a->sha256), "detail", str_or_null(a->detail));
	if (!o || json_array_append_new(pg->items, o) < 0)
		return -ENOMEM;
	pg->bytes += 300 + text_cost(a->user) + text_cost(a->detail);
	return pg->bytes > REPLY_BUDGET;
}

static void op_audit(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	json_t *v = json_object_get(req, "job");
	json_int_t job = json_is_integer(v) ? json_integer_value(v) : 0;
	v = json_object_get(req, "before");
	json_int_t before = json_is_integer(v) ? json_integer_value(v) : 0;
	v = json_object_get(req, "limit");
	json_int_t limit = json_is_integer(v) ? json_integer_value(v) : AUDIT_PAGE_DEFAULT;
	if (job < 0 || before < 0 || limit < 1 || limit > AUDIT_PAGE_MAX) {
		ctl_conn_error(conn, PROTO_ERR_USAGE,
			       "'limit' must be 1 to %d, 'job' and 'before' positive", AUDIT_PAGE_MAX);
		return;
	}
	struct page pg = {.items = json_array()};
	int64_t next = 0;
	int64_t uid = policy_list_uid(ctl_conn_peer(conn), &d->groups); /* a member: own entries */
	int r = store_audit_list_owned(d->store, uid, job, before, (unsigned)limit, add_audit, &pg,
				       &next);
	if (r < 0) {
		json_decref(pg.items);
		reply_store_error(conn, r, 0);
		return;
	}
	ctl_conn_reply(conn, json_pack("{s:b,s:o,s:o}", "ok", 1, "entries", pg.items, "next",
				       next ? json_integer(next) : json_null()));
}

/* The groups that rule a tenant's jobs: the [daemon] ones for the one
 * tenant today; SPEC §7 gives each tenant its own (tenant_id unused yet). */
static const struct policy_groups *tenant_groups(struct daemon *d, int64_t tenant_id)
{
	(void)tenant_id;
	return &d->groups;
}

/* May the peer make this request (policy.c decides)? If not, the refusal
 * is sent and false returned. */
static bool request_allowed(struct daemon *d, struct ctl_conn *conn, json_t *req, const char *op,
			    enum policy_need need, const char *job_key, const char *what)
{
	const struct peer *p = ctl_conn_peer(conn);
	const struct policy_groups *groups = tenant_groups(d, 0);
	struct store_job j;
	struct policy_job pj = {0};
	bool have_job = false;
	json_t *v = job_key ? json_object_get(req, job_key) : NULL;
	/* only a member's request needs the job's owner */
	if (need == POLICY_OWNER && json_is_integer(v) && json_integer_value(v) > 0 &&
	    policy_role(p, groups) == POLICY_ROLE_MEMBER) {
		pj.id = json_integer_value(v);
		int r = store_job_get(d->store, pj.id, &j);
		if (r < 0 && r != -ENOENT) {
			reply_store_error(conn, r, pj.id);
			return false;
		}
		/* no such job: the op says so, as to anyone (job ids are no secret) */
		have_job = r == 0;
		pj.owner_uid = have_job ? j.uid : 0;
		pj.owner_user = have_job ? j.user : NULL;
		if (have_job)
			groups = tenant_groups(d, j.tenant_id);
	}
	char *why = NULL;
	int r = policy_check(p, groups, need, have_job ? &pj : NULL, what, &why);
	if (have_job)
		store_job_clear(&j);
	if (r == 0)
		return true;
	if (r == -ENOMEM)
		ctl_conn_error(conn, PROTO_ERR_INTERNAL, "out of memory");
	else
		refuse(d, conn, op, pj.id, need == POLICY_OWNER ? "owner" : "admin", why);
	return false;
}

/* need: what the op needs of the peer (policy.h); job_key: the request key
 * naming the job a POLICY_OWNER op acts on; what: a POLICY_ADMIN op's
 * action, for its refusal. */
static const struct {
	const char *name;
	void (*fn)(struct daemon *d, struct ctl_conn *conn, json_t *req);
	enum policy_need need;
	const char *job_key;
	const char *what;
} ops[] = {
	{"status", op_status, POLICY_ANY, NULL, NULL},
	{"stats", op_stats, POLICY_ANY, NULL, NULL},
	{"submit", op_submit, POLICY_ANY, NULL, NULL},
	{"validate", op_validate, POLICY_ANY, NULL, NULL},
	{"jobs", op_jobs, POLICY_ANY, NULL, NULL}, /* a member's own (policy_list_uid) */
	{"job", op_job, POLICY_OWNER, "id", NULL},
	{"rows", op_rows, POLICY_OWNER, "id", NULL},
	{"wait", op_wait, POLICY_OWNER, "id", NULL},
	{"cancel", op_cancel, POLICY_OWNER, "id", NULL},
	{"pause", op_pause, POLICY_OWNER, "id", NULL},
	{"resume", op_resume, POLICY_OWNER, "id", NULL}, /* a tenant's block: op_action */
	{"retry", op_retry, POLICY_OWNER, "id", NULL},
	{"reload", op_reload, POLICY_ADMIN, NULL, "reload the configuration"},
	{"audit", op_audit, POLICY_OWNER, "job", NULL}, /* a member's own entries */
};

void ops_dispatch(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	if (!op) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "request has no 'op'");
		return;
	}
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(op, ops[i].name) == 0) {
			if (request_allowed(d, conn, req, ops[i].name, ops[i].need, ops[i].job_key,
					    ops[i].what))
				ops[i].fn(d, conn, req);
			return;
		}
	ctl_conn_error(conn, PROTO_ERR_USAGE, "unknown op '%s'", op);
}
