/* SPDX-License-Identifier: MIT */
/* ops-jobs: jobs, job, rows, wait, the job actions (cancel, pause, resume,
 * retry, resend, track), and a job's end (ops_job_done). */
#include "ops-private.h"

struct waiter {
	struct daemon *d;
	struct ctl_conn *conn;
	int64_t job_id;
	struct waiter *prev, *next;
};

/* ---- jobs, job, rows ---- */

static int add_job(void *userdata, const struct store_job *j)
{
	struct page *pg = userdata;
	/* only tenants the peer may use, and there a member's own jobs */
	if (pg->peer) {
		if (pg->tenant_id && j->tenant_id != pg->tenant_id)
			return 0;
		const struct policy_groups *g = ops_tenant_groups(pg->d, j->tenant_id);
		enum policy_role role = policy_role(pg->peer, g);
		if (role == POLICY_ROLE_NONE ||
		    (role == POLICY_ROLE_MEMBER && j->uid != (uint32_t)pg->peer->uid))
			return 0;
	}
	if (pg->before && j->id >= pg->before)
		return 0; /* on an earlier page */
	size_t cost =
	    600 + ops_text_cost(j->name) + ops_text_cost(j->filename) + ops_text_cost(j->message) +
	    ops_text_cost(j->reason) + ops_text_cost(j->redirect_url) + ops_text_cost(j->cc) +
	    ops_text_cost(j->language) + ops_text_cost(j->user) + ops_text_cost(j->tenant);
	if (json_array_size(pg->items) == pg->limit ||
	    (json_array_size(pg->items) > 0 && pg->bytes + cost > REPLY_BUDGET)) {
		pg->more = true;
		return 1;
	}
	if (json_array_append_new(pg->items, ops_job_json(pg->d, j)) < 0)
		return -ENOMEM;
	pg->bytes += cost;
	pg->last = j->id;
	return 0;
}

/* Newest first, a page at a time: `before` (the previous reply's `next`)
 * and `limit`; a page also ends before it would outgrow a frame. */
void op_jobs(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	bool all = json_is_true(json_object_get(req, "all"));
	json_t *v = json_object_get(req, "before");
	json_int_t before = json_is_integer(v) ? json_integer_value(v) : 0;
	v = json_object_get(req, "limit");
	json_int_t limit = json_is_integer(v) ? json_integer_value(v) : JOBS_PAGE_DEFAULT;
	if (limit < 1 || limit > JOBS_PAGE_MAX || before < 0) {
		ctl_conn_error(conn, PROTO_ERR_USAGE,
		               "'limit' must be 1 to %d and 'before' positive", JOBS_PAGE_MAX);
		return;
	}
	struct page pg = {.d = d,
	                  .peer = ctl_conn_peer(conn),
	                  .items = json_array(),
	                  .before = before,
	                  .limit = (size_t)limit};
	uint64_t now = time_now_ms();
	if (json_object_get(req, "tenant") && !json_is_null(json_object_get(req, "tenant"))) {
		struct daemon_tenant *dt = ops_request_tenant(d, conn, req, "jobs");
		if (!dt) {
			json_decref(pg.items);
			return;
		}
		pg.tenant_id = tenant_id(dt->tenant);
	}
	/* add_job keeps what the peer may see of each tenant */
	int r = store_jobs_list_owned(d->store, -1, all, now > RECENT_MS ? now - RECENT_MS : 0,
	                              add_job, &pg);
	if (r < 0) {
		json_decref(pg.items);
		ops_reply_store_error(conn, r, 0);
		return;
	}
	json_t *reply =
	    json_pack("{s:b,s:o,s:o,s:b}", "ok", 1, "jobs", pg.items, "next",
	              pg.more ? json_integer(pg.last) : json_null(), "truncated", pg.more);
	/* the estimate was short (heavily escaped text): halve the page until it fits */
	json_t *items = json_object_get(reply, "jobs");
	while (json_array_size(items) > 1 && pg.bytes > PROTO_MAX_FRAME / 3 &&
	       json_dumpb(reply, NULL, 0, JSON_COMPACT) > PROTO_MAX_FRAME) {
		size_t n = json_array_size(items) / 2;
		while (json_array_size(items) > n)
			json_array_remove(items, n);
		json_int_t last =
		    json_integer_value(json_object_get(json_array_get(items, n - 1), "id"));
		json_object_set_new(reply, "next", json_integer(last));
		json_object_set_new(reply, "truncated", json_true());
	}
	ctl_conn_reply(conn, reply);
}

void op_job(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	int64_t id;
	if (ops_get_id(conn, req, &id))
		ops_reply_job(d, conn, id, NULL, NULL);
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
	    "email", row->email, "display_name", ops_str_or_null(row->display_name), "state",
	    row_state_name(row->state), "attempts", (json_int_t)row->attempts, "http_status",
	    row->http_status ? json_integer(row->http_status) : json_null(), "error_code",
	    ops_str_or_null(row->error_code), "error_message", ops_str_or_null(row->error_message),
	    "request_id", ops_str_or_null(row->request_id), "invited_user_id",
	    ops_str_or_null(row->invited_user_id), "invite_redeem_url",
	    ops_str_or_null(row->invite_redeem_url), "updated_at",
	    ops_time_or_null(row->updated_at), "finished_at",
	    row->state >= ROW_STATE_SUCCEEDED ? ops_time_or_null(row->updated_at) : json_null());
	if (o) {
		json_object_set_new(o, "client_request_id",
		                    ops_str_or_null(row->client_request_id));
		/* SPEC §8 */
		json_object_set_new(o, "existing",
		                    row->existing_type
		                        ? json_pack("{s:s,s:o}", "type", row->existing_type,
		                                    "state", ops_str_or_null(row->existing_state))
		                        : json_null());
		json_t *groups = row->groups ? json_loads(row->groups, 0, NULL) : NULL;
		json_object_set_new(o, "groups", json_is_array(groups) ? groups : json_array());
		if (groups && !json_is_array(groups))
			json_decref(groups);
		json_object_set_new(o, "accepted_at",
		                    row->accepted_at ? ops_time_or_null(row->accepted_at)
		                                     : json_null());
		json_object_set_new(o, "resends", json_integer(row->resends));
		static const char *const mail_states[] = {"pending", "sent", "failed", "cancelled"};
		json_object_set_new(
		    o, "mail",
		    row->mail_state >= 0 && row->mail_state <= 3
		        ? json_pack("{s:s,s:o,s:o}", "state", mail_states[row->mail_state], "error",
		                    ops_str_or_null(row->mail_error), "sent_at",
		                    row->mail_sent_at ? ops_time_or_null(row->mail_sent_at)
		                                      : json_null())
		        : json_null());
	}
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
	pg->bytes += 400 + ops_text_cost(row->email) + ops_text_cost(row->display_name) +
	             ops_text_cost(row->error_message) + ops_text_cost(row->invite_redeem_url) +
	             ops_text_cost(row->fields) + ops_text_cost(row->redirect_url) +
	             ops_text_cost(row->message) + ops_text_cost(row->email) +
	             ops_text_cost(row->groups);
	return pg->bytes > REPLY_BUDGET;
}

void op_rows(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	int64_t id;
	if (!ops_get_id(conn, req, &id))
		return;
	json_t *v = json_object_get(req, "cursor");
	int64_t cursor = json_is_integer(v) ? json_integer_value(v) : 0;
	v = json_object_get(req, "limit");
	json_int_t limit = json_is_integer(v) ? json_integer_value(v) : ROWS_PAGE_DEFAULT;
	if (limit < 1 || limit > ROWS_PAGE_MAX || cursor < 0) {
		ctl_conn_error(conn, PROTO_ERR_USAGE,
		               "'limit' must be 1 to %d and 'cursor' positive", ROWS_PAGE_MAX);
		return;
	}
	const char *state_name;
	if (!ops_get_str(conn, req, "state", &state_name))
		return;
	int state = -1;
	if (state_name && (state = row_filter_from_name(state_name)) < 0) {
		ctl_conn_error(conn, PROTO_ERR_USAGE,
		               "unknown row state '%s' (pending, in_flight, succeeded, failed, "
		               "cancelled, skipped, accepted, not-accepted, group-failed)",
		               state_name);
		return;
	}
	bool input = json_is_true(json_object_get(req, "input"));

	struct store_job j;
	int r = store_job_get(d->store, id, &j);
	if (r < 0) {
		ops_reply_store_error(conn, r, id);
		return;
	}
	struct page pg = {.items = json_array()};
	int64_t next = 0;
	r = store_rows_list(d->store, id, cursor, (unsigned)limit, state, input, add_row, &pg,
	                    &next);
	if (r < 0) {
		store_job_clear(&j);
		json_decref(pg.items);
		free(pg.ids);
		ops_reply_store_error(conn, r, id);
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

void op_wait(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	int64_t id;
	if (!ops_get_id(conn, req, &id))
		return;
	struct store_job j;
	int r = store_job_get(d->store, id, &j);
	if (r < 0) {
		ops_reply_store_error(conn, r, id);
		return;
	}
	if (ops_job_ended(&j)) {
		ctl_conn_reply(conn, json_pack("{s:b,s:o}", "ok", 1, "job", ops_job_json(d, &j)));
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
				if (ops_job_ended(&j)) {
					struct ctl_conn *conn = w->conn;
					waiter_remove(w);
					ctl_conn_reply(conn, json_pack("{s:b,s:o}", "ok", 1, "job",
					                               ops_job_json(d, &j)));
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
			char more[96] = "";
			if (j.skipped || j.group_failures)
				snprintf(more, sizeof(more),
				         ", %lld skipped, %lld with a failed group "
				         "addition",
				         (long long)j.skipped, (long long)j.group_failures);
			log_notice(
			    "Job %lld %s: %lld succeeded, %lld failed, %lld cancelled%s of %lld "
			    "(tenant %s)",
			    (long long)j.id, job_state_name(j.state), (long long)j.succeeded,
			    (long long)j.failed, (long long)j.cancelled, more, (long long)j.total,
			    j.tenant);
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
struct blocked_ctx {
	struct daemon *d;
	struct daemon_tenant *dt;
};

static int hook_blocked_job(void *userdata, const struct store_job *j)
{
	struct blocked_ctx *x = userdata;
	struct daemon *d = x->d;
	if (j->finished_at || j->state != JOB_STATE_BLOCKED ||
	    j->tenant_id != tenant_id(x->dt->tenant))
		return 0;
	struct hook_job hj = {
	    .id = j->id,
	    .name = j->name,
	    .state = job_state_name(j->state),
	    .total = j->total,
	    .succeeded = j->succeeded,
	    .failed = j->failed,
	    .cancelled = j->cancelled,
	    .reason = j->reason ? j->reason : tenant_blocked(x->dt->tenant),
	};
	hook_run(d->hook, &hj); /* logs its own failure */
	return 0;
}

void ops_tenant_blocked(struct daemon *d, struct daemon_tenant *dt)
{
	struct blocked_ctx x = {d, dt};
	if (d->hook && store_jobs_list(d->store, false, time_now_ms(), hook_blocked_job, &x) < 0)
		log_error("Failed to list the jobs the block stopped: on_complete does not run "
		          "for them");
	answer_waiters(d, 0);
}

/* ---- cancel, pause, resume, retry ---- */

/* The tenant's block lifted by who (borrowed) with a resume of job id: in
 * the audit trail and the journal. */
static void audit_unblock(struct daemon *d, struct daemon_tenant *dt, const struct store_actor *who,
                          int64_t id, const char *reason)
{
	struct buf detail = BUF_INIT;
	buf_printf(&detail, "tenant '%s' unblocked after: %s", tenant_name(dt->tenant),
	           reason ? reason : "?");
	struct store_audit a = {.uid = who->uid,
	                        .user = who->user,
	                        .action = "unblock",
	                        .job_id = id,
	                        .detail = detail.data};
	if (!detail.data || store_audit_add(d->store, &a) < 0)
		log_error("Failed to record the lifting of tenant '%s's block in the audit trail",
		          tenant_name(dt->tenant));
	audit_log("unblock", who->uid, who->user, id, NULL,
	          "Tenant '%s' unblocked by %s (uid %lld)", tenant_name(dt->tenant), who->user,
	          (long long)who->uid);
	buf_finish(&detail);
}

/*
 * resume lifts the tenant's block too, when the peer may (root and
 * admin_group, SPEC §6); a member's resume of their own paused job resumes
 * the job only, and a member's resume that would only lift the block is
 * refused. 1: lift it, 0: not blocked or not theirs to lift, -1: refused
 * (replied). *ret_reason: owned copy of the block's reason when 1.
 */
static int resume_unblock(struct daemon *d, struct daemon_tenant *dt, struct ctl_conn *conn,
                          int64_t id, char **ret_reason)
{
	const char *blocked = dt ? tenant_blocked(dt->tenant) : NULL;
	if (!blocked)
		return 0;
	struct buf what = BUF_INIT;
	char *why = NULL;
	buf_printf(&what, "lift the block of tenant '%s'", tenant_name(dt->tenant));
	int r = what.data ? policy_check(ctl_conn_peer(conn), &dt->groups, POLICY_ADMIN, NULL,
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
			ops_reply_store_error(conn, g, id);
		return -1;
	}
	struct buf m = BUF_INIT;
	buf_printf(&m, "job %lld is not paused, and %s", (long long)id, why);
	free(why);
	if (!m.data) {
		ctl_conn_error(conn, PROTO_ERR_INTERNAL, "out of memory");
		return -1;
	}
	ops_refuse(d, conn, "resume", id, "admin", buf_steal(&m));
	return -1;
}

/* code: retry only the failed rows with this error_code (NULL: all). */
static void op_action(struct daemon *d, struct ctl_conn *conn, json_t *req, enum store_action act,
                      const char *verb, const char *code)
{
	int64_t id, changed = 0;
	if (!ops_get_id(conn, req, &id))
		return;
	struct store_job job;
	int g = store_job_get(d->store, id, &job);
	if (g < 0) {
		ops_reply_store_error(conn, g, id);
		return;
	}
	/* the job's tenant's sender (NULL: a tenant no longer configured) */
	struct daemon_tenant *dt = daemon_tenant_by_id(d, job.tenant_id);
	store_job_clear(&job);
	/* the job's claimed rows go back first, so that the action covers
	 * them; if the database is too busy for that, so is the action: say
	 * so after one wait (the claims are sent meanwhile) */
	if (dt && (act == STORE_ACTION_CANCEL || act == STORE_ACTION_PAUSE)) {
		int f = tenant_forget_job(dt->tenant, id);
		if (f == -EBUSY) {
			ops_reply_store_error(conn, f, id);
			tenant_kick(dt->tenant);
			return;
		}
	}
	char *block_reason = NULL;
	int unblock =
	    act == STORE_ACTION_RESUME ? resume_unblock(d, dt, conn, id, &block_reason) : 0;
	if (unblock < 0)
		return;
	/* the change and its audit entry in one transaction */
	struct store_actor who = {.uid = (int64_t)ctl_conn_uid(conn), .user = ctl_conn_user(conn)};
	int r = store_job_action(d->store, act, id, code, &who, &changed);
	if (r < 0) {
		free(block_reason);
		ops_reply_store_error(conn, r, id);
		if (dt)
			tenant_kick(dt->tenant);
		return;
	}
	if (unblock > 0) {
		int u = tenant_unblock(dt->tenant);
		if (u < 0) {
			free(block_reason);
			ops_reply_store_error(conn, u, id);
			return;
		}
		changed += u;
		if (u > 0)
			audit_unblock(d, dt, &who, id, block_reason);
	}
	free(block_reason);
	audit_log(verb, who.uid, who.user, id, NULL,
	          "Job %lld: %s%s%s by %s (uid %u), %lld changed", (long long)id, verb,
	          code ? " of rows failed with " : "", code ? code : "", ctl_conn_user(conn),
	          (unsigned)ctl_conn_uid(conn), (long long)changed);
	if (dt)
		tenant_kick(dt->tenant);
	ops_reply_job(d, conn, id, "changed", json_integer(changed));
}

void op_cancel(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	op_action(d, conn, req, STORE_ACTION_CANCEL, "cancel", NULL);
}

void op_pause(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	op_action(d, conn, req, STORE_ACTION_PAUSE, "pause", NULL);
}

/* {"op":"resume","tenant":NAME}: lift that tenant's block and its
 * Retry-After pause (its admins only; audited as unblock). */
static void resume_tenant(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	struct daemon_tenant *dt = ops_request_tenant(d, conn, req, "resume");
	if (!dt)
		return;
	struct buf what = BUF_INIT;
	char *why = NULL;
	buf_printf(&what, "resume tenant '%s'", dt->conf.name);
	int r = what.data ? policy_check(ctl_conn_peer(conn), &dt->groups, POLICY_ADMIN, NULL,
	                                 what.data, &why)
	                  : -ENOMEM;
	buf_finish(&what);
	if (r == -ENOMEM) {
		ctl_conn_error(conn, PROTO_ERR_INTERNAL, "out of memory");
		return;
	}
	if (r < 0) {
		ops_refuse(d, conn, "resume", 0, "admin", why);
		return;
	}
	struct store_actor who = {.uid = (int64_t)ctl_conn_uid(conn), .user = ctl_conn_user(conn)};
	const char *blocked = tenant_blocked(dt->tenant);
	char *reason = blocked ? strdup(blocked) : NULL;
	int u = tenant_unblock(dt->tenant);
	if (u < 0) {
		free(reason);
		ops_reply_store_error(conn, u, 0);
		return;
	}
	int p = tenant_unpause(dt->tenant);
	if (u > 0 || p > 0)
		audit_unblock(d, dt, &who, 0, reason ? reason : "a Retry-After pause");
	free(reason);
	tenant_kick(dt->tenant);
	/* jobs waiting for the block to end show it now */
	struct tenant_counts *c = ops_tenant_counts_get(d, false);
	size_t i = 0;
	while (i < d->n_tenants && d->tenants[i] != dt)
		i++;
	ctl_conn_reply(conn, json_pack("{s:b,s:o,s:I}", "ok", 1, "tenant",
	                               ops_tenant_json(dt, c && i < d->n_tenants ? &c[i] : NULL),
	                               "changed", (json_int_t)(u + p)));
	free(c);
}

void op_resume(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	if (!json_object_get(req, "id") && json_object_get(req, "tenant")) {
		resume_tenant(d, conn, req);
		return;
	}
	op_action(d, conn, req, STORE_ACTION_RESUME, "resume", NULL);
}

void op_retry(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	const char *code;
	if (!ops_get_str(conn, req, "error_code", &code))
		return;
	json_t *groups = json_object_get(req, "groups");
	if (groups && !json_is_boolean(groups)) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "'groups' must be true or false");
		return;
	}
	if (json_is_true(groups)) {
		if (code) {
			ctl_conn_error(conn, PROTO_ERR_USAGE,
			               "'groups' and 'error_code' do not go together");
			return;
		}
		op_action(d, conn, req, STORE_ACTION_RETRY_GROUPS, "retry", NULL);
		return;
	}
	if (code && (!*code || strlen(code) > MAX_ERROR_CODE_BYTES)) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "'error_code' must be 1 to %u bytes",
		               MAX_ERROR_CODE_BYTES);
		return;
	}
	if (!ops_field_ok(conn, "the error code", code, MAX_ERROR_CODE_BYTES, true))
		return;
	op_action(d, conn, req, STORE_ACTION_RETRY, "retry", code);
}

/* {"op":"track","id":N}: the acceptance of the job's guests is read now. */
void op_track(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	op_action(d, conn, req, STORE_ACTION_TRACK, "track", NULL);
}

struct resend_list {
	json_t *rows;
};

static int resend_row(void *userdata, unsigned line, const char *email, unsigned resends)
{
	struct resend_list *l = userdata;
	return json_array_append_new(l->rows,
	                             json_pack("{s:I,s:s,s:I}", "line", (json_int_t)line, "email",
	                                       email, "resends", (json_int_t)resends));
}

/* {"op":"resend","id":N,"older_than_s":S?,"dry_run":B?} (SPEC §8). */
void op_resend(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	int64_t id, changed = 0;
	if (!ops_get_id(conn, req, &id))
		return;
	json_t *older = json_object_get(req, "older_than_s");
	json_t *dry = json_object_get(req, "dry_run");
	if ((older && !json_is_integer(older)) || (older && json_integer_value(older) < 0) ||
	    (older && json_integer_value(older) > 3650LL * 86400) ||
	    (dry && !json_is_boolean(dry))) {
		ctl_conn_error(conn, PROTO_ERR_USAGE,
		               "'older_than_s' must be seconds from 0 to 3650 days, 'dry_run' true "
		               "or false");
		return;
	}
	struct store_job job;
	int r = store_job_get(d->store, id, &job);
	if (r < 0) {
		ops_reply_store_error(conn, r, id);
		return;
	}
	struct daemon_tenant *dt = daemon_tenant_by_id(d, job.tenant_id);
	store_job_clear(&job);
	if (!dt) {
		ctl_conn_error(conn, PROTO_ERR_TEMPORARY,
		               "job %lld's tenant is no longer configured: nothing can be sent",
		               (long long)id);
		return;
	}
	uint64_t older_ms = older ? (uint64_t)json_integer_value(older) * 1000u : 0;
	struct resend_list l = {.rows = json_array()};
	struct store_actor who = {.uid = (int64_t)ctl_conn_uid(conn), .user = ctl_conn_user(conn)};
	r = store_job_resend(d->store, id, older_ms, dt->conf.onboard.max_resends,
	                     json_is_true(dry), &who, resend_row, &l, &changed);
	if (r < 0) {
		json_decref(l.rows);
		ops_reply_store_error(conn, r, id);
		return;
	}
	if (!json_is_true(dry)) {
		audit_log("resend", who.uid, who.user, id, NULL,
		          "Job %lld: resend by %s (uid %u), %lld rows", (long long)id, who.user,
		          (unsigned)who.uid, (long long)changed);
		tenant_kick(dt->tenant);
	}
	struct store_job j;
	r = store_job_get(d->store, id, &j);
	if (r < 0) {
		json_decref(l.rows);
		ops_reply_store_error(conn, r, id);
		return;
	}
	ctl_conn_reply(conn, json_pack("{s:b,s:o,s:I,s:o}", "ok", 1, "job", ops_job_json(d, &j),
	                               "changed", (json_int_t)changed, "rows", l.rows));
	store_job_clear(&j);
}
