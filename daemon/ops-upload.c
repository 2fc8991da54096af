/* SPDX-License-Identifier: MIT */
/* ops-upload: submit and validate: the job's options checked, the upload
 * started (upload.c), its outcome answered. */
#include "ops-private.h"

/* ---- submit, validate ---- */

struct upload_ctx {
	struct daemon *d;
	struct ctl_conn *conn;
	char *tenant; /* its name: the tenant may be removed by a reload meanwhile */
	bool validate_only;
	bool job_message;
	char *filename;
};

static void upload_ctx_free(void *userdata)
{
	struct upload_ctx *ctx = userdata;
	free(ctx->filename);
	free(ctx->tenant);
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
		ctl_conn_error(conn,
		               res->status == -ENOSPC || res->status == -EBUSY ? PROTO_ERR_TEMPORARY
		                                                               : PROTO_ERR_INTERNAL,
		               "%s: cannot store the file: %s", ctx->filename,
		               res->failure ? res->failure : strerror(-res->status));
	} else if (ctx->validate_only) {
		/* not a change, so no audit row (and no write lock); who checked
		 * which file still goes to the journal (invitectl validates by
		 * itself: this is an older client asking the daemon) */
		audit_log("validate", (int64_t)ctl_conn_uid(conn), ctl_conn_user(conn), 0,
		          res->sha256[0] ? res->sha256 : NULL,
		          "File '%s' validated for %s (uid %u): %zu rows, %zu problem%s, sha256 %s",
		          ctx->filename, ctl_conn_user(conn), (unsigned)ctl_conn_uid(conn),
		          res->rows, res->error_count, res->error_count == 1 ? "" : "s",
		          res->sha256[0] ? res->sha256 : "-");
		json_t *reply =
		    json_pack("{s:b,s:b,s:I,s:o,s:I}", "ok", 1, "valid", res->status == 0, "rows",
		              (json_int_t)res->rows, "errors", errors_json(res), "error_count",
		              (json_int_t)res->error_count);
		ctl_conn_reply(conn, reply);
	} else if (res->status == 1) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s: %zu problem%s, nothing stored", ctx->filename,
		         res->error_count, res->error_count == 1 ? "" : "s");
		json_t *reply = json_pack(
		    "{s:b,s:{s:s,s:s,s:o,s:I,s:I}}", "ok", 0, "error", "code",
		    PROTO_ERR_INVALID_INPUT, "message", msg, "errors", errors_json(res),
		    "error_count", (json_int_t)res->error_count, "rows", (json_int_t)res->rows);
		ctl_conn_reply(conn, reply);
	} else {
		audit_log("submit", (int64_t)ctl_conn_uid(conn), ctl_conn_user(conn), res->job_id,
		          res->sha256,
		          "Job %lld submitted by %s (uid %u): %zu rows from '%s', sha256 %s "
		          "(tenant %s)",
		          (long long)res->job_id, ctl_conn_user(conn), (unsigned)ctl_conn_uid(conn),
		          res->rows, ctx->filename, res->sha256, ctx->tenant);
		json_t *warnings = json_array();
		struct daemon_tenant *dt = daemon_tenant_find(d, ctx->tenant);
		/* with [mail] our own mail carries the message: nothing is dropped */
		if ((res->has_message || ctx->job_message) && !(dt && dt->conf.mail.on))
			json_array_append_new(
			    warnings,
			    json_string(
			        "rows carry a customized invitation message, but "
			        "Microsoft drops customized messages when an application "
			        "sends the invitation (invited signs in as an app); "
			        "guests get the standard text. A [mail] section in "
			        "invited.conf makes invited send the invitation mail itself, "
			        "message included (invited.conf(5))"));
		ops_reply_job(d, conn, res->job_id, "warnings", warnings);
		if (dt)
			tenant_kick(dt->tenant);
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
bool ops_field_ok(struct ctl_conn *conn, const char *what, const char *s, size_t max,
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

/* A request's "groups": at most VALID_GROUPS_MAX group object ids, each a
 * GUID; *ret: a JSON array text of them lowercased (owned), NULL for none.
 * False after replying `usage` (naming the index, not echoing the value). */
static bool groups_option(struct ctl_conn *conn, json_t *groups, char **ret)
{
	*ret = NULL;
	if (!groups || json_is_null(groups))
		return true;
	if (!json_is_array(groups) || json_array_size(groups) > VALID_GROUPS_MAX) {
		ctl_conn_error(conn, PROTO_ERR_USAGE,
		               "'groups' must be an array of at most %d group "
		               "object ids",
		               VALID_GROUPS_MAX);
		return false;
	}
	json_t *out = json_array();
	size_t i;
	json_t *g;
	json_array_foreach(groups, i, g)
	{
		const char *v = json_string_value(g);
		if (!v || !valid_guid(v, strlen(v))) {
			ctl_conn_error(conn, PROTO_ERR_USAGE,
			               "groups[%zu]: not a group object id (GUID)", i);
			json_decref(out);
			return false;
		}
		char low[VALID_GUID_LEN + 1];
		for (size_t k = 0; k <= VALID_GUID_LEN; k++)
			low[k] = (char)(v[k] >= 'A' && v[k] <= 'F' ? v[k] + 32 : v[k]);
		bool dup = false;
		for (size_t k = 0; k < json_array_size(out); k++)
			dup |= strcmp(json_string_value(json_array_get(out, k)), low) == 0;
		if (!dup)
			json_array_append_new(out, json_string(low));
	}
	if (json_array_size(out) > 0)
		*ret = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	return true;
}

static void op_upload(struct daemon *d, struct ctl_conn *conn, json_t *req, bool validate_only)
{
	const char *name, *filename, *redirect, *message, *language, *cc, *why = NULL;
	if (!ops_get_str(conn, req, "name", &name) ||
	    !ops_get_str(conn, req, "filename", &filename) ||
	    !ops_get_str(conn, req, "redirect_url", &redirect) ||
	    !ops_get_str(conn, req, "message", &message) ||
	    !ops_get_str(conn, req, "language", &language) || !ops_get_str(conn, req, "cc", &cc))
		return;
	/* lengths first: the checks below quote the value */
	if (!ops_field_ok(conn, "the job name", name, MAX_NAME_BYTES, true) ||
	    !ops_field_ok(conn, "the file name", filename, MAX_FILENAME_BYTES, true) ||
	    !ops_field_ok(conn, "the language", language, MAX_LANGUAGE_BYTES, true) ||
	    !ops_field_ok(conn, "the cc address", cc, CSV_MAX_EMAIL_BYTES, true) ||
	    !ops_field_ok(conn, "the redirect URL", redirect, CSV_MAX_URL_BYTES, true) ||
	    !ops_field_ok(conn, "the message", message, CSV_MAX_MESSAGE_BYTES, false))
		return;
	json_t *send = json_object_get(req, "send_email");
	if (send && !json_is_boolean(send) && !json_is_null(send)) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "'send_email' must be true or false");
		return;
	}
	if (redirect && !csv_url_check(redirect, &why)) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "invalid redirect URL '%s': %s", redirect,
		               why);
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
	struct daemon_tenant *dt =
	    ops_request_tenant(d, conn, req, validate_only ? "validate" : "submit");
	if (!dt)
		return;
	/* SPEC §8: --skip-existing and --group */
	json_t *skip = json_object_get(req, "skip_existing");
	if (skip && !json_is_boolean(skip) && !json_is_null(skip)) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "'skip_existing' must be true or false");
		return;
	}
	if (json_is_true(skip) && !dt->conf.onboard.lookup) {
		ctl_conn_error(
		    conn, PROTO_ERR_USAGE,
		    "--skip-existing needs lookups: set [queue] lookup = yes for tenant '%s'",
		    dt->conf.name);
		return;
	}
	char *groups_json = NULL;
	if (!groups_option(conn, json_object_get(req, "groups"), &groups_json))
		return;

	struct upload_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		free(groups_json);
		ctl_conn_error(conn, PROTO_ERR_INTERNAL, "out of memory");
		return;
	}
	ctx->d = d;
	ctx->conn = conn;
	ctx->validate_only = validate_only;
	ctx->job_message = message != NULL;
	ctx->filename = strdup(filename ? filename : "-");
	ctx->tenant = strdup(dt->conf.name);
	struct upload_spec spec = {
	    .db_path = store_path(d->store),
	    .job =
	        {
	            .tenant_id = tenant_id(dt->tenant),
	            .name = name,
	            .filename = filename,
	            .redirect_url = redirect ? redirect : DEFAULT_REDIRECT,
	            .message = message,
	            .language = language,
	            .cc = cc,
	            .user = ctl_conn_user(conn),
	            .send_email = send ? json_is_true(send) : true,
	            .uid = (uint32_t)ctl_conn_uid(conn),
	            .skip_existing = json_is_true(skip),
	            .groups_json = groups_json,
	            .track_ms =
	                dt->conf.onboard.track_days > 0 ? dt->conf.onboard.track_interval_ms : 0,
	            .track_days = dt->conf.onboard.track_days,
	            .mail = dt->conf.mail.on,
	        },
	    .validate_only = validate_only,
	    .max_bytes = d->config.max_upload_bytes,
	    .max_rows = d->config.max_rows,
	};
	struct upload *u;
	int r = ctx->filename && ctx->tenant
	            ? upload_create(d->loop, &spec, on_upload_done, on_upload_resume, ctx, &u)
	            : -ENOMEM;
	free(groups_json); /* the upload has its copy */
	if (r < 0) {
		upload_ctx_free(ctx);
		ctl_conn_error(conn, PROTO_ERR_INTERNAL, "cannot start the upload: %s",
		               strerror(-r));
		return;
	}
	/* if the client goes away mid-upload, ctl aborts the upload (nothing
	 * stored) and this frees the context */
	ctl_conn_on_gone(conn, upload_ctx_free, ctx);
	ctl_conn_start_upload(conn, u);
}

void op_submit(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	op_upload(d, conn, req, false);
}

void op_validate(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	op_upload(d, conn, req, true);
}
