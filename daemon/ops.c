/* SPDX-License-Identifier: MIT */
/* ops: the op table and dispatch (policy checked once per request), the
 * helpers every op uses, reload and audit (ops-private.h lists the rooms). */
#include "ops-private.h"

size_t ops_text_cost(const char *s)
{
	/* escaping may double a string; \uXXXX is rarer */
	return s ? 2 * strlen(s) + 8 : 8;
}

json_t *ops_time_or_null(uint64_t ms)
{
	if (ms == 0)
		return json_null();
	char t[TIME_RFC3339_MAX];
	time_format_rfc3339(ms, t);
	return json_string(t);
}

json_t *ops_str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* Why an active job is not moving, if it is not: the tenant's block, or no token. */
static const char *job_reason(struct daemon *d, const struct store_job *j)
{
	if (j->reason)
		return j->reason;
	struct daemon_tenant *dt = daemon_tenant_by_id(d, j->tenant_id);
	if ((j->state == JOB_STATE_QUEUED || j->state == JOB_STATE_RUNNING) && dt && dt->auth &&
	    auth_state(dt->auth) == AUTH_STATE_ERROR)
		return auth_error(dt->auth);
	return NULL;
}

/* The groups that rule a tenant's jobs (SPEC §6 per tenant, §7): the
 * tenant's allow_group/admin_group (its own, else [daemon]'s, resolved at
 * config load and reload); a tenant no longer configured: [daemon]'s. */
const struct policy_groups *ops_tenant_groups(struct daemon *d, int64_t tenant_id)
{
	struct daemon_tenant *dt = daemon_tenant_by_id(d, tenant_id);
	return dt ? &dt->groups : &d->groups;
}

/* May the peer use tenant dt at all (see it, submit to it)? */
bool ops_peer_may_use(const struct peer *p, const struct daemon_tenant *dt)
{
	return policy_role(p, &dt->groups) != POLICY_ROLE_NONE;
}

/* "contoso, fabrikam": the tenants the peer may use (owned). */
static char *usable_names(struct daemon *d, const struct peer *p, json_t **ret_array)
{
	struct buf m = BUF_INIT;
	json_t *a = ret_array ? json_array() : NULL;
	for (size_t i = 0; i < d->n_tenants; i++) {
		if (!ops_peer_may_use(p, d->tenants[i]))
			continue;
		buf_printf(&m, "%s%s", m.len ? ", " : "", d->tenants[i]->conf.name);
		if (a)
			json_array_append_new(a, json_string(d->tenants[i]->conf.name));
	}
	if (ret_array)
		*ret_array = a;
	return m.data ? buf_steal(&m) : strdup("");
}

/*
 * The tenant a request names ("tenant"), or the one the peer may use when
 * it names none. NULL after replying: usage (unknown, or several to choose
 * from), permission_denied (one the peer may not use).
 */
struct daemon_tenant *ops_request_tenant(struct daemon *d, struct ctl_conn *conn, json_t *req,
                                         const char *op)
{
	const struct peer *p = ctl_conn_peer(conn);
	json_t *v = json_object_get(req, "tenant");
	if (v && !json_is_null(v) && !json_is_string(v)) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "'tenant' must be a string");
		return NULL;
	}
	const char *name = json_string_value(v);
	if (name) {
		struct daemon_tenant *dt = daemon_tenant_find(d, name);
		if (!dt) {
			char *names = usable_names(d, p, NULL);
			ctl_conn_error(conn, PROTO_ERR_USAGE, "no tenant '%s' (%s)", name,
			               names ? names : "");
			free(names);
			return NULL;
		}
		char *why = NULL;
		int r = policy_check(p, &dt->groups, POLICY_ANY, NULL, NULL, &why);
		if (r == 0)
			return dt;
		if (r == -ENOMEM) {
			ctl_conn_error(conn, PROTO_ERR_INTERNAL, "out of memory");
			return NULL;
		}
		struct buf m = BUF_INIT;
		buf_printf(&m, "tenant '%s': %s", name, why);
		free(why);
		ops_refuse(d, conn, op, 0, "tenant",
		           m.data ? buf_steal(&m) : strdup("permission denied"));
		buf_finish(&m);
		return NULL;
	}
	struct daemon_tenant *only = NULL;
	size_t n = 0;
	for (size_t i = 0; i < d->n_tenants; i++)
		if (ops_peer_may_use(p, d->tenants[i])) {
			only = d->tenants[i];
			n++;
		}
	if (n == 1)
		return only;
	if (n == 0) {
		ops_refuse(d, conn, op, 0, "tenant",
		           strdup("permission denied: no tenant may be used"));
		return NULL;
	}
	json_t *array = NULL;
	char *names = usable_names(d, p, &array);
	struct buf m = BUF_INIT;
	buf_printf(&m, "several tenants: choose one with --tenant (%s)", names ? names : "");
	free(names);
	ctl_conn_reply(conn,
	               json_pack("{s:b,s:{s:s,s:s,s:o}}", "ok", 0, "error", "code", PROTO_ERR_USAGE,
	                         "message", m.data ? m.data : "several tenants", "tenants",
	                         array ? array : json_array()));
	buf_finish(&m);
	return NULL;
}

json_t *ops_job_json(struct daemon *d, const struct store_job *j)
{
	int64_t pending = j->total - j->succeeded - j->failed - j->cancelled - j->skipped;
	const char *reason = job_reason(d, j);
	struct buf why = BUF_INIT;
	if (reason && reason != j->reason)
		buf_printf(&why, "cannot get a Graph token: %s", reason);
	json_t *o = json_pack(
	    "{s:I,s:o,s:s,s:o,s:o,s:{s:I,s:s},s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:o,s:o,"
	    "s:{s:s,s:b,s:o,s:o,s:o}}",
	    "id", (json_int_t)j->id, "name", ops_str_or_null(j->name), "state",
	    job_state_name(j->state), "created_at", ops_time_or_null(j->created_at), "finished_at",
	    ops_time_or_null(j->finished_at), "submitted_by", "uid", (json_int_t)j->uid, "user",
	    j->user, "total", (json_int_t)j->total, "succeeded", (json_int_t)j->succeeded, "failed",
	    (json_int_t)j->failed, "pending", (json_int_t)pending, "cancelled",
	    (json_int_t)j->cancelled, "in_flight", (json_int_t)j->in_flight, "tenant", j->tenant,
	    "reason", why.data ? json_string(why.data) : ops_str_or_null(reason), "filename",
	    ops_str_or_null(j->filename), "options", "redirect_url", j->redirect_url, "send_email",
	    j->send_email, "message", ops_str_or_null(j->message), "language",
	    ops_str_or_null(j->language), "cc", ops_str_or_null(j->cc));
	buf_finish(&why);
	struct daemon_tenant *dt = daemon_tenant_by_id(d, j->tenant_id);
	if (o)
		json_object_set_new(o, "directory",
		                    dt ? json_string(dt->conf.tenant) : json_null());
	/* SPEC §8 */
	if (o) {
		json_object_set_new(o, "skipped", json_integer(j->skipped));
		json_object_set_new(o, "group_failures", json_integer(j->group_failures));
		json_object_set_new(o, "groups_pending", json_integer(j->groups_pending));
		json_object_set_new(o, "accepted", json_integer(j->accepted));
		json_object_set_new(o, "tracking", json_boolean(j->track_ms > 0));
		json_object_set_new(o, "mail", json_boolean(j->mail));
		json_object_set_new(o, "mailed", json_integer(j->mailed));
		json_object_set_new(o, "mail_pending", json_integer(j->mail_pending));
		/* the mailbox's daily limit is spent: when mail goes on (SPEC §8) */
		struct tenant_stats ts;
		uint64_t until = 0;
		if (dt && j->mail && j->mail_pending > 0) {
			tenant_get_stats(dt->tenant, &ts);
			until = ts.mail_wait_until_ms;
		}
		json_object_set_new(o, "mail_waits_until",
		                    until ? ops_time_or_null(until) : json_null());
		json_t *opts = json_object_get(o, "options");
		json_t *groups = j->groups ? json_loads(j->groups, 0, NULL) : NULL;
		json_object_set_new(opts, "skip_existing", json_boolean(j->skip_existing));
		json_object_set_new(opts, "groups", json_is_array(groups) ? groups : json_array());
		if (groups && !json_is_array(groups))
			json_decref(groups);
	}
	return o;
}

bool ops_job_ended(const struct store_job *j)
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

void ops_reply_store_error(struct ctl_conn *conn, int r, int64_t id)
{
	if (r == -ENOENT)
		ctl_conn_error(conn, PROTO_ERR_NOT_FOUND, "no job %lld", (long long)id);
	else
		ctl_conn_error(conn, store_error_code(r), "%s", store_error_text(r));
}

/* A positive integer argument "id". */
bool ops_get_id(struct ctl_conn *conn, json_t *req, int64_t *ret)
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
bool ops_get_str(struct ctl_conn *conn, json_t *req, const char *key, const char **ret)
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

void ops_reply_job(struct daemon *d, struct ctl_conn *conn, int64_t id, const char *extra_key,
                   json_t *extra)
{
	struct store_job j;
	int r = store_job_get(d->store, id, &j);
	if (r < 0) {
		json_decref(extra);
		ops_reply_store_error(conn, r, id);
		return;
	}
	json_t *reply = json_pack("{s:b,s:o}", "ok", 1, "job", ops_job_json(d, &j));
	if (extra_key)
		json_object_set_new(reply, extra_key, extra);
	store_job_clear(&j);
	ctl_conn_reply(conn, reply);
}
/* Refuse a request with the rule that stops it (takes why); logged once
 * per uid, op and job in a while (policy_refusal_note). */
void ops_refuse(struct daemon *d, struct ctl_conn *conn, const char *op, int64_t job_id,
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
static void op_reload(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	char *message = NULL;
	int r = daemon_reload(d, (int64_t)ctl_conn_uid(conn), ctl_conn_user(conn), &message);
	if (r < 0)
		ctl_conn_error(conn, PROTO_ERR_CONFIG, "%s", message ? message : strerror(-r));
	else
		ctl_conn_reply(conn,
		               json_pack("{s:b,s:s}", "ok", 1, "message", message ? message : ""));
	free(message);
}

#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_MAX 1000

static int add_audit(void *userdata, const struct store_audit *a)
{
	struct page *pg = userdata;
	json_t *o = json_pack("{s:I,s:o,s:o,s:s,s:s,s:o,s:o,s:o}", "id", (json_int_t)a->id, "at",
	                      ops_time_or_null(a->at), "uid",
	                      a->uid >= 0 ? json_integer(a->uid) : json_null(), "user",
	                      a->user ? a->user : "", "action", a->action ? a->action : "", "job",
	                      a->job_id > 0 ? json_integer(a->job_id) : json_null(), "sha256",
	                      ops_str_or_null(a->sha256), "detail", ops_str_or_null(a->detail));
	if (!o || json_array_append_new(pg->items, o) < 0)
		return -ENOMEM;
	pg->bytes += 300 + ops_text_cost(a->user) + ops_text_cost(a->detail);
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
		               "'limit' must be 1 to %d, 'job' and 'before' positive",
		               AUDIT_PAGE_MAX);
		return;
	}
	struct page pg = {.items = json_array()};
	int64_t next = 0;
	int64_t uid = policy_list_uid(ctl_conn_peer(conn), &d->groups); /* a member: own entries */
	int r = store_audit_list_owned(d->store, uid, job, before, (unsigned)limit, add_audit, &pg,
	                               &next);
	if (r < 0) {
		json_decref(pg.items);
		ops_reply_store_error(conn, r, 0);
		return;
	}
	ctl_conn_reply(conn, json_pack("{s:b,s:o,s:o}", "ok", 1, "entries", pg.items, "next",
	                               next ? json_integer(next) : json_null()));
}

/* May the peer make this request (policy.c decides)? The groups are those
 * of the job's tenant when the request names a job; else of a tenant the
 * peer may use (each op then shows only those: tenants_json, add_job). If
 * not, the refusal is sent and false returned. */
static bool request_allowed(struct daemon *d, struct ctl_conn *conn, json_t *req, const char *op,
                            enum policy_need need, const char *job_key, const char *what)
{
	const struct peer *p = ctl_conn_peer(conn);
	const struct policy_groups *groups = &d->groups;
	struct store_job j;
	struct policy_job pj = {0};
	bool have_job = false;
	json_t *v = job_key ? json_object_get(req, job_key) : NULL;
	if (need == POLICY_OWNER && json_is_integer(v) && json_integer_value(v) > 0) {
		pj.id = json_integer_value(v);
		int r = store_job_get(d->store, pj.id, &j);
		if (r < 0 && r != -ENOENT) {
			ops_reply_store_error(conn, r, pj.id);
			return false;
		}
		/* no such job: the op says so, as to anyone (job ids are no secret) */
		have_job = r == 0;
		pj.owner_uid = have_job ? j.uid : 0;
		pj.owner_user = have_job ? j.user : NULL;
		if (have_job)
			groups = ops_tenant_groups(d, j.tenant_id);
	}
	if (!have_job && need != POLICY_ADMIN) {
		/* any tenant the peer may use will do */
		for (size_t i = 0; i < d->n_tenants; i++)
			if (ops_peer_may_use(p, d->tenants[i])) {
				groups = &d->tenants[i]->groups;
				break;
			}
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
		ops_refuse(d, conn, op, pj.id, need == POLICY_OWNER ? "owner" : "admin", why);
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
    {"resend", op_resend, POLICY_OWNER, "id", NULL},
    {"track", op_track, POLICY_OWNER, "id", NULL},
    {"reload", op_reload, POLICY_ADMIN, NULL, "reload the configuration"},
    {"tenants", op_tenants, POLICY_ANY, NULL, NULL}, /* the peer's tenants only */
    {"check", op_check, POLICY_ANY, NULL, NULL},     /* a tenant the peer may use */
    {"audit", op_audit, POLICY_OWNER, "job", NULL},  /* a member's own entries */
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
