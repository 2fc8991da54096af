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
#include "crypto.h"
#include "csv.h"
#include "valid.h"
#include "http.h"
#include "ctl.h"
#include "daemon.h"
#include "hook.h"
#include "log.h"
#include "graph.h"
#include "mailmsg.h"
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
	const struct peer *peer; /* jobs: whose view; NULL: no filter */
	int64_t tenant_id;       /* jobs: only this tenant's (0: every) */
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
	struct daemon_tenant *dt = daemon_tenant_by_id(d, j->tenant_id);
	if ((j->state == JOB_STATE_QUEUED || j->state == JOB_STATE_RUNNING) && dt && dt->auth &&
	    auth_state(dt->auth) == AUTH_STATE_ERROR)
		return auth_error(dt->auth);
	return NULL;
}

/* The groups that rule a tenant's jobs (SPEC §6 per tenant, §7): the
 * tenant's allow_group/admin_group (its own, else [daemon]'s, resolved at
 * config load and reload); a tenant no longer configured: [daemon]'s. */
static const struct policy_groups *tenant_groups(struct daemon *d, int64_t tenant_id)
{
	struct daemon_tenant *dt = daemon_tenant_by_id(d, tenant_id);
	return dt ? &dt->groups : &d->groups;
}

/* May the peer use tenant dt at all (see it, submit to it)? */
static bool peer_may_use(const struct peer *p, const struct daemon_tenant *dt)
{
	return policy_role(p, &dt->groups) != POLICY_ROLE_NONE;
}

/* "contoso, fabrikam": the tenants the peer may use (owned). */
static char *usable_names(struct daemon *d, const struct peer *p, json_t **ret_array)
{
	struct buf m = BUF_INIT;
	json_t *a = ret_array ? json_array() : NULL;
	for (size_t i = 0; i < d->n_tenants; i++) {
		if (!peer_may_use(p, d->tenants[i]))
			continue;
		buf_printf(&m, "%s%s", m.len ? ", " : "", d->tenants[i]->conf.name);
		if (a)
			json_array_append_new(a, json_string(d->tenants[i]->conf.name));
	}
	if (ret_array)
		*ret_array = a;
	return m.data ? buf_steal(&m) : strdup("");
}

static void refuse(struct daemon *d, struct ctl_conn *conn, const char *op, int64_t job_id,
		   const char *rule, char *why);

/*
 * The tenant a request names ("tenant"), or the one the peer may use when
 * it names none. NULL after replying: usage (unknown, or several to choose
 * from), permission_denied (one the peer may not use).
 */
static struct daemon_tenant *request_tenant(struct daemon *d, struct ctl_conn *conn, json_t *req,
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
		refuse(d, conn, op, 0, "tenant", m.data ? buf_steal(&m) : strdup("permission denied"));
		buf_finish(&m);
		return NULL;
	}
	struct daemon_tenant *only = NULL;
	size_t n = 0;
	for (size_t i = 0; i < d->n_tenants; i++)
		if (peer_may_use(p, d->tenants[i])) {
			only = d->tenants[i];
			n++;
		}
	if (n == 1)
		return only;
	if (n == 0) {
		refuse(d, conn, op, 0, "tenant", strdup("permission denied: no tenant may be used"));
		return NULL;
	}
	json_t *array = NULL;
	char *names = usable_names(d, p, &array);
	struct buf m = BUF_INIT;
	buf_printf(&m, "several tenants: choose one with --tenant (%s)", names ? names : "");
	free(names);
	ctl_conn_reply(conn, json_pack("{s:b,s:{s:s,s:s,s:o}}", "ok", 0, "error", "code",
				       PROTO_ERR_USAGE, "message", m.data ? m.data : "several tenants",
				       "tenants", array ? array : json_array()));
	buf_finish(&m);
	return NULL;
}

static json_t *job_json(struct daemon *d, const struct store_job *j)
{
	int64_t pending = j->total - j->succeeded - j->failed - j->cancelled - j->skipped;
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
	struct daemon_tenant *dt = daemon_tenant_by_id(d, j->tenant_id);
	if (o)
		json_object_set_new(o, "directory", dt ? json_string(dt->conf.tenant) : json_null());
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
		json_object_set_new(o, "mail_waits_until", until ? time_or_null(until) : json_null());
		json_t *opts = json_object_get(o, "options");
		json_t *groups = j->groups ? json_loads(j->groups, 0, NULL) : NULL;
		json_object_set_new(opts, "skip_existing", json_boolean(j->skip_existing));
		json_object_set_new(opts, "groups", json_is_array(groups) ? groups : json_array());
		if (groups && !json_is_array(groups))
			json_decref(groups);
	}
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

/* Per-tenant counts from the stored jobs (one pass over them). */
struct tenant_counts {
	int64_t active_jobs, pending, succeeded, failed, cancelled;
};

struct counts_ctx {
	struct daemon *d;
	struct tenant_counts *c; /* one per d->tenants[] */
};

static int count_job(void *userdata, const struct store_job *j)
{
	struct counts_ctx *x = userdata;
	for (size_t i = 0; i < x->d->n_tenants; i++) {
		if (tenant_id(x->d->tenants[i]->tenant) != j->tenant_id)
			continue;
		struct tenant_counts *c = &x->c[i];
		c->succeeded += j->succeeded;
		c->failed += j->failed;
		c->cancelled += j->cancelled;
		if (!j->finished_at) {
			c->active_jobs++;
			c->pending += j->total - j->succeeded - j->failed - j->cancelled;
		}
		break;
	}
	return 0;
}

/* counts[i] for d->tenants[i] (owned array), or NULL. all: every stored
 * job (row totals), else the unfinished ones only. */
static struct tenant_counts *tenant_counts_get(struct daemon *d, bool all)
{
	struct counts_ctx x = {.d = d, .c = calloc(d->n_tenants ? d->n_tenants : 1, sizeof(*x.c))};
	if (!x.c)
		return NULL;
	if (store_jobs_list(d->store, all, all ? 0 : time_now_ms() + 1, count_job, &x) < 0) {
		free(x.c);
		return NULL;
	}
	return x.c;
}

static const char *tenant_token_text(struct daemon_tenant *dt)
{
	if (auth_header(dt->auth))
		return "ok";
	const char *e = auth_error(dt->auth);
	return e ? e : "no token yet";
}

/* SPEC §7's tenant object. */
static json_t *tenant_json(struct daemon_tenant *dt, const struct tenant_counts *c)
{
	struct tenant_stats ts;
	tenant_get_stats(dt->tenant, &ts);
	const char *blocked = tenant_blocked(dt->tenant);
	const char *state = blocked ? "blocked" : ts.paused_ms ? "paused" : "ok";
	const char *reason = blocked;
	struct buf why = BUF_INIT;
	if (!reason && ts.paused_ms) {
		buf_printf(&why, "Graph asked to wait (Retry-After): %llu s left",
			   (unsigned long long)((ts.paused_ms + 999) / 1000));
		reason = why.data;
	}
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:f,s:f,s:s,s:o,s:I,s:I,s:o}", "name",
			      dt->conf.name, "tenant", dt->conf.tenant, "cloud", dt->conf.cloud,
			      "token", tenant_token_text(dt), "rate", tenant_rate(dt->tenant),
			      "configured_rate", dt->conf.rate, "state", state, "reason",
			      str_or_null(reason), "active_jobs",
			      (json_int_t)(c ? c->active_jobs : 0), "pending",
			      (json_int_t)(c ? c->pending : 0), "paused_until",
			      ts.paused_ms ? time_or_null(time_now_ms() + ts.paused_ms) : json_null());
	buf_finish(&why);
	return o;
}

/* The tenants the peer may use, as SPEC §7's objects. */
static json_t *tenants_json(struct daemon *d, const struct peer *p)
{
	struct tenant_counts *c = tenant_counts_get(d, false);
	json_t *a = json_array();
	for (size_t i = 0; i < d->n_tenants; i++)
		if (peer_may_use(p, d->tenants[i]))
			json_array_append_new(a, tenant_json(d->tenants[i], c ? &c[i] : NULL));
	free(c);
	return a;
}

static void op_tenants(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	ctl_conn_reply(conn, json_pack("{s:b,s:o}", "ok", 1, "tenants",
				       tenants_json(d, ctl_conn_peer(conn))));
}

static void op_status(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	const struct peer *p = ctl_conn_peer(conn);
	/* the top level: as for one tenant, of the first the peer may use */
	struct daemon_tenant *dt = NULL;
	for (size_t i = 0; i < d->n_tenants && !dt; i++)
		if (peer_may_use(p, d->tenants[i]))
			dt = d->tenants[i];
	if (!dt) {
		/* in no tenant's groups ([daemon] admin_group only): nothing to show */
		ctl_conn_reply(conn, json_pack("{s:b,s:s,s:I,s:n,s:n,s:{s:I},s:[]}", "ok", 1,
					       "version", INVITED_VERSION, "uptime_s",
					       (json_int_t)((time_mono_ms() - d->started_mono_ms) /
							    1000u),
					       "tenant", "blocked", "jobs", "active", (json_int_t)0,
					       "tenants"));
		return;
	}
	struct tenant_counts *counts = tenant_counts_get(d, false);
	int64_t active = 0, pending = 0;
	for (size_t i = 0; counts && i < d->n_tenants; i++)
		if (peer_may_use(p, d->tenants[i])) {
			active += counts[i].active_jobs;
			pending += counts[i].pending;
		}
	free(counts);
	static const char *const token_states[] = {"none", "fetching", "valid", "error"};
	int64_t exp = auth_expires_in_s(dt->auth);
	struct tenant_stats ts;
	tenant_get_stats(dt->tenant, &ts);
	json_t *reply = json_pack(
		"{s:b,s:s,s:I,s:s,s:o,s:{s:s,s:o,s:o},s:{s:f,s:f,s:I},s:{s:I,s:I},s:{s:I}}", "ok", 1,
		"version", INVITED_VERSION, "uptime_s",
		(json_int_t)((time_mono_ms() - d->started_mono_ms) / 1000u), "tenant",
		dt->conf.tenant, "blocked", str_or_null(tenant_blocked(dt->tenant)), "token", "state",
		token_states[auth_state(dt->auth)], "expires_in_s",
		exp >= 0 ? json_integer(exp) : json_null(), "error", str_or_null(auth_error(dt->auth)),
		"rate", "configured", dt->conf.rate, "current", tenant_rate(dt->tenant), "paused_ms",
		(json_int_t)ts.paused_ms, "queue", "pending", (json_int_t)pending, "in_flight",
		(json_int_t)ts.in_flight, "jobs", "active", (json_int_t)active);
	/* what `invitectl validate` checks a file against (SPEC §3) */
	if (reply) {
		json_object_set_new(reply, "limits",
				    json_pack("{s:I,s:I}", "max_upload_bytes",
					      (json_int_t)d->config.max_upload_bytes, "max_rows",
					      (json_int_t)d->config.max_rows));
		json_object_set_new(reply, "tenants", tenants_json(d, p));
	}
	ctl_conn_reply(conn, reply);
}

/* The counters of one tenant (stats). */
static json_t *tenant_stats_json(struct daemon_tenant *dt, const struct tenant_counts *c)
{
	struct tenant_stats ts;
	tenant_get_stats(dt->tenant, &ts);
	static const struct tenant_counts zero;
	if (!c)
		c = &zero;
	return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I,"
			 "s:I}",
			 "name", dt->conf.name, "requests_total", (json_int_t)ts.requests,
			 "invitations_created_total", (json_int_t)ts.created, "rows_failed_total",
			 (json_int_t)ts.failed, "retries_total", (json_int_t)ts.retries,
			 "throttled_total", (json_int_t)ts.throttled, "transient_errors_total",
			 (json_int_t)ts.transient, "auth_errors_total", (json_int_t)ts.auth_errors,
			 "token_refreshes_total", (json_int_t)auth_refreshes(dt->auth), "in_flight",
			 (json_int_t)ts.in_flight, "claimed", (json_int_t)ts.ready, "pending",
			 (json_int_t)c->pending, "active_jobs", (json_int_t)c->active_jobs, "rate",
			 tenant_rate(dt->tenant), "paused_ms", (json_int_t)ts.paused_ms,
			 "rows_succeeded", (json_int_t)c->succeeded, "rows_failed",
			 (json_int_t)c->failed, "rows_cancelled", (json_int_t)c->cancelled);
}

/* SPEC §8's counters, added to a tenant's stats object. */
static void tenant_onboard_stats(struct daemon *d, struct daemon_tenant *dt, json_t *o)
{
	struct tenant_stats ts;
	int64_t pending = 0;
	tenant_get_stats(dt->tenant, &ts);
	store_groups_pending(d->store, tenant_id(dt->tenant), &pending);
	json_object_set_new(o, "lookups_total", json_integer((json_int_t)ts.lookups));
	json_object_set_new(o, "lookups_found_total", json_integer((json_int_t)ts.lookups_found));
	json_object_set_new(o, "group_additions_total", json_integer((json_int_t)ts.group_additions));
	json_object_set_new(o, "group_failures_total", json_integer((json_int_t)ts.group_failures));
	json_object_set_new(o, "tracking_reads_total", json_integer((json_int_t)ts.tracking_reads));
	json_object_set_new(o, "accepted_total", json_integer((json_int_t)ts.accepted));
	json_object_set_new(o, "resends_total", json_integer((json_int_t)ts.resends));
	json_object_set_new(o, "group_additions_pending", json_integer(pending));
	json_object_set_new(o, "mails_sent_total", json_integer((json_int_t)ts.mails_sent));
	json_object_set_new(o, "mails_failed_total", json_integer((json_int_t)ts.mails_failed));
}

static void op_stats(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	const struct peer *p = ctl_conn_peer(conn);
	struct tenant_counts *counts = tenant_counts_get(d, true);
	json_t *per = json_array();
	json_t *stats = json_object();
	/* the top level: sums over the tenants the peer may see */
	static const char *const summed[] = {
		"requests_total", "invitations_created_total", "rows_failed_total", "retries_total",
		"throttled_total", "transient_errors_total", "auth_errors_total",
		"token_refreshes_total", "in_flight", "claimed", "pending", "active_jobs",
		"rows_succeeded", "rows_failed", "rows_cancelled", "lookups_total",
		"lookups_found_total", "group_additions_total", "group_failures_total",
		"tracking_reads_total", "accepted_total", "resends_total",
		"group_additions_pending", "mails_sent_total", "mails_failed_total"};
	double rate = 0;
	json_int_t paused = 0;
	for (size_t k = 0; k < sizeof(summed) / sizeof(summed[0]); k++)
		json_object_set_new(stats, summed[k], json_integer(0));
	for (size_t i = 0; i < d->n_tenants; i++) {
		if (!peer_may_use(p, d->tenants[i]))
			continue;
		json_t *t = tenant_stats_json(d->tenants[i], counts ? &counts[i] : NULL);
		if (!t)
			continue;
		tenant_onboard_stats(d, d->tenants[i], t);
		for (size_t k = 0; k < sizeof(summed) / sizeof(summed[0]); k++) {
			json_t *v = json_object_get(stats, summed[k]);
			json_integer_set(v, json_integer_value(v) +
						    json_integer_value(json_object_get(t, summed[k])));
		}
		rate += json_real_value(json_object_get(t, "rate"));
		json_int_t pm = json_integer_value(json_object_get(t, "paused_ms"));
		if (pm > paused)
			paused = pm;
		json_array_append_new(per, t);
	}
	free(counts);
	json_object_set_new(stats, "rate", json_real(rate));
	json_object_set_new(stats, "paused_ms", json_integer(paused));
	json_object_set_new(stats, "connections", json_integer(ctl_connections(d->ctl)));
	json_object_set_new(stats, "uptime_seconds",
			    json_integer((json_int_t)((time_mono_ms() - d->started_mono_ms) / 1000u)));
	json_object_set_new(stats, "on_complete_running", json_integer(hook_running(d->hook)));
	json_object_set_new(stats, "tenants", per);
	ctl_conn_reply(conn, json_pack("{s:b,s:o}", "ok", 1, "stats", stats));
}

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
		ctl_conn_error(conn, res->status == -ENOSPC || res->status == -EBUSY
					     ? PROTO_ERR_TEMPORARY
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
			  ctx->filename, ctl_conn_user(conn), (unsigned)ctl_conn_uid(conn), res->rows,
			  res->error_count, res->error_count == 1 ? "" : "s",
			  res->sha256[0] ? res->sha256 : "-");
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
				json_string("rows carry a customized invitation message, but "
					    "Microsoft drops customized messages when an application "
					    "sends the invitation (invited signs in as an app); "
					    "guests get the standard text. A [mail] section in "
					    "invited.conf makes invited send the invitation mail itself, "
					    "message included (invited.conf(5))"));
		reply_job(d, conn, res->job_id, "warnings", warnings);
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

/* A request's "groups": at most VALID_GROUPS_MAX group object ids, each a
 * GUID; *ret: a JSON array text of them lowercased (owned), NULL for none.
 * False after replying `usage` (naming the index, not echoing the value). */
static bool groups_option(struct ctl_conn *conn, json_t *groups, char **ret)
{
	*ret = NULL;
	if (!groups || json_is_null(groups))
		return true;
	if (!json_is_array(groups) || json_array_size(groups) > VALID_GROUPS_MAX) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "'groups' must be an array of at most %d group "
			       "object ids", VALID_GROUPS_MAX);
		return false;
	}
	json_t *out = json_array();
	size_t i;
	json_t *g;
	json_array_foreach(groups, i, g) {
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
	struct daemon_tenant *dt = request_tenant(d, conn, req, validate_only ? "validate" : "submit");
	if (!dt)
		return;
	/* SPEC §8: --skip-existing and --group */
	json_t *skip = json_object_get(req, "skip_existing");
	if (skip && !json_is_boolean(skip) && !json_is_null(skip)) {
		ctl_conn_error(conn, PROTO_ERR_USAGE, "'skip_existing' must be true or false");
		return;
	}
	if (json_is_true(skip) && !dt->conf.onboard.lookup) {
		ctl_conn_error(conn, PROTO_ERR_USAGE,
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
				.track_ms = dt->conf.onboard.track_days > 0
						    ? dt->conf.onboard.track_interval_ms
						    : 0,
				.track_days = dt->conf.onboard.track_days,
				.mail = dt->conf.mail.on,
			},
		.validate_only = validate_only,
		.max_bytes = d->config.max_upload_bytes,
		.max_rows = d->config.max_rows,
	};
	struct upload *u;
	int r = ctx->filename && ctx->tenant ? upload_create(d->loop, &spec, on_upload_done, on_upload_resume, ctx, &u)
			      : -ENOMEM;
	free(groups_json); /* the upload has its copy */
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
	/* only tenants the peer may use, and there a member's own jobs */
	if (pg->peer) {
		if (pg->tenant_id && j->tenant_id != pg->tenant_id)
			return 0;
		const struct policy_groups *g = tenant_groups(pg->d, j->tenant_id);
		enum policy_role role = policy_role(pg->peer, g);
		if (role == POLICY_ROLE_NONE ||
		    (role == POLICY_ROLE_MEMBER && j->uid != (uint32_t)pg->peer->uid))
			return 0;
	}
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
	struct page pg = {.d = d, .peer = ctl_conn_peer(conn), .items = json_array(), .before = before,
			  .limit = (size_t)limit};
	uint64_t now = time_now_ms();
	if (json_object_get(req, "tenant") && !json_is_null(json_object_get(req, "tenant"))) {
		struct daemon_tenant *dt = request_tenant(d, conn, req, "jobs");
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
	if (o) {
		json_object_set_new(o, "client_request_id", str_or_null(row->client_request_id));
		/* SPEC §8 */
		json_object_set_new(o, "existing",
				    row->existing_type
					    ? json_pack("{s:s,s:o}", "type", row->existing_type, "state",
							str_or_null(row->existing_state))
					    : json_null());
		json_t *groups = row->groups ? json_loads(row->groups, 0, NULL) : NULL;
		json_object_set_new(o, "groups", json_is_array(groups) ? groups : json_array());
		if (groups && !json_is_array(groups))
			json_decref(groups);
		json_object_set_new(o, "accepted_at",
				    row->accepted_at ? time_or_null(row->accepted_at) : json_null());
		json_object_set_new(o, "resends", json_integer(row->resends));
		static const char *const mail_states[] = {"pending", "sent", "failed", "cancelled"};
		json_object_set_new(o, "mail",
				    row->mail_state >= 0 && row->mail_state <= 3
					    ? json_pack("{s:s,s:o,s:o}", "state",
							mail_states[row->mail_state], "error",
							str_or_null(row->mail_error), "sent_at",
							row->mail_sent_at ? time_or_null(row->mail_sent_at)
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
	pg->bytes += 400 + text_cost(row->email) + text_cost(row->display_name) +
		     text_cost(row->error_message) + text_cost(row->invite_redeem_url) +
		     text_cost(row->fields) + text_cost(row->redirect_url) + text_cost(row->message) +
		     text_cost(row->email) + text_cost(row->groups);
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
			char more[96] = "";
			if (j.skipped || j.group_failures)
				snprintf(more, sizeof(more), ", %lld skipped, %lld with a failed group "
					 "addition", (long long)j.skipped, (long long)j.group_failures);
			log_notice("Job %lld %s: %lld succeeded, %lld failed, %lld cancelled%s of %lld "
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
	if (j->finished_at || j->state != JOB_STATE_BLOCKED || j->tenant_id != tenant_id(x->dt->tenant))
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
	audit_log("unblock", who->uid, who->user, id, NULL, "Tenant '%s' unblocked by %s (uid %lld)",
		  tenant_name(dt->tenant), who->user, (long long)who->uid);
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
		      enum store_action act, const char *verb, const char *code)
{
	int64_t id, changed = 0;
	if (!get_id(conn, req, &id))
		return;
	struct store_job job;
	int g = store_job_get(d->store, id, &job);
	if (g < 0) {
		reply_store_error(conn, g, id);
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
			reply_store_error(conn, f, id);
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
		reply_store_error(conn, r, id);
		if (dt)
			tenant_kick(dt->tenant);
		return;
	}
	if (unblock > 0) {
		int u = tenant_unblock(dt->tenant);
		if (u < 0) {
			free(block_reason);
			reply_store_error(conn, u, id);
			return;
		}
		changed += u;
		if (u > 0)
			audit_unblock(d, dt, &who, id, block_reason);
	}
	free(block_reason);
	audit_log(verb, who.uid, who.user, id, NULL, "Job %lld: %s%s%s by %s (uid %u), %lld changed",
		  (long long)id, verb, code ? " of rows failed with " : "", code ? code : "",
		  ctl_conn_user(conn), (unsigned)ctl_conn_uid(conn), (long long)changed);
	if (dt)
		tenant_kick(dt->tenant);
	reply_job(d, conn, id, "changed", json_integer(changed));
}

static void op_cancel(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	op_action(d, conn, req, STORE_ACTION_CANCEL, "cancel", NULL);
}

static void op_pause(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	op_action(d, conn, req, STORE_ACTION_PAUSE, "pause", NULL);
}

/* {"op":"resume","tenant":NAME}: lift that tenant's block and its
 * Retry-After pause (its admins only; audited as unblock). */
static void resume_tenant(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	struct daemon_tenant *dt = request_tenant(d, conn, req, "resume");
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
		refuse(d, conn, "resume", 0, "admin", why);
		return;
	}
	struct store_actor who = {.uid = (int64_t)ctl_conn_uid(conn), .user = ctl_conn_user(conn)};
	const char *blocked = tenant_blocked(dt->tenant);
	char *reason = blocked ? strdup(blocked) : NULL;
	int u = tenant_unblock(dt->tenant);
	if (u < 0) {
		free(reason);
		reply_store_error(conn, u, 0);
		return;
	}
	int p = tenant_unpause(dt->tenant);
	if (u > 0 || p > 0)
		audit_unblock(d, dt, &who, 0, reason ? reason : "a Retry-After pause");
	free(reason);
	tenant_kick(dt->tenant);
	/* jobs waiting for the block to end show it now */
	struct tenant_counts *c = tenant_counts_get(d, false);
	size_t i = 0;
	while (i < d->n_tenants && d->tenants[i] != dt)
		i++;
	ctl_conn_reply(conn, json_pack("{s:b,s:o,s:I}", "ok", 1, "tenant",
				       tenant_json(dt, c && i < d->n_tenants ? &c[i] : NULL),
				       "changed", (json_int_t)(u + p)));
	free(c);
}

static void op_resume(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	if (!json_object_get(req, "id") && json_object_get(req, "tenant")) {
		resume_tenant(d, conn, req);
		return;
	}
	op_action(d, conn, req, STORE_ACTION_RESUME, "resume", NULL);
}

static void op_retry(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	const char *code;
	if (!get_str(conn, req, "error_code", &code))
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
	if (!field_ok(conn, "the error code", code, MAX_ERROR_CODE_BYTES, true))
		return;
	op_action(d, conn, req, STORE_ACTION_RETRY, "retry", code);
}

/* {"op":"track","id":N}: the acceptance of the job's guests is read now. */
static void op_track(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	op_action(d, conn, req, STORE_ACTION_TRACK, "track", NULL);
}

struct resend_list {
	json_t *rows;
};

static int resend_row(void *userdata, unsigned line, const char *email, unsigned resends)
{
	struct resend_list *l = userdata;
	return json_array_append_new(l->rows, json_pack("{s:I,s:s,s:I}", "line", (json_int_t)line,
							"email", email, "resends",
							(json_int_t)resends));
}

/* {"op":"resend","id":N,"older_than_s":S?,"dry_run":B?} (SPEC §8). */
static void op_resend(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	int64_t id, changed = 0;
	if (!get_id(conn, req, &id))
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
		reply_store_error(conn, r, id);
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
	r = store_job_resend(d->store, id, older_ms, dt->conf.onboard.max_resends, json_is_true(dry),
			     &who, resend_row, &l, &changed);
	if (r < 0) {
		json_decref(l.rows);
		reply_store_error(conn, r, id);
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
		reply_store_error(conn, r, id);
		return;
	}
	ctl_conn_reply(conn, json_pack("{s:b,s:o,s:I,s:o}", "ok", 1, "job", job_json(d, &j),
				       "changed", (json_int_t)changed, "rows", l.rows));
	store_job_clear(&j);
}

/* ---- reload, audit ---- */

/* ---- check ---- */

/* The application roles a token carries: its JWT payload's "roles" claim,
 * read without trusting the token for anything else (GRAPH.md §8); a new
 * reference, or NULL when it cannot be read. */
static json_t *token_roles(const char *header)
{
	if (!header || strncmp(header, "Bearer ", 7) != 0)
		return NULL;
	const char *tok = header + 7, *dot1 = strchr(tok, '.');
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (!dot2)
		return NULL;
	size_t len = 0;
	char *payload = crypto_base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &len);
	json_t *claims = payload ? json_loadb(payload, len, 0, NULL) : NULL;
	free(payload);
	json_t *roles = json_object_get(claims, "roles"), *out = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(roles, i, v)
	{
		if (json_is_string(v))
			json_array_append(out, v);
	}
	json_decref(claims);
	return out;
}

struct check_ctx {
	struct daemon *d;
	struct ctl_conn *conn; /* NULL once the client is gone */
	json_t *check;         /* the reply's "check", filled in */
	unsigned waiting;      /* answers still to come (the policy, the SMTP relay) */
};

static void check_gone(void *userdata)
{
	struct check_ctx *x = userdata;
	x->conn = NULL;
}

static void check_reply(struct check_ctx *x)
{
	if (x->waiting > 0 && --x->waiting > 0)
		return; /* the other answer completes it */
	json_t *c = x->check;
	const char *guests = json_string_value(json_object_get(c, "guests"));
	bool ok = json_is_string(json_object_get(c, "token")) &&
		  strcmp(json_string_value(json_object_get(c, "token")), "ok") == 0 &&
		  json_array_size(json_object_get(c, "missing")) == 0 && guests &&
		  strcmp(guests, "not_allowed") != 0;
	json_t *mail = json_object_get(c, "mail");
	if (mail && !json_is_true(json_object_get(mail, "ok")))
		ok = false;
	json_object_set_new(c, "all_ok", json_boolean(ok));
	if (x->conn)
		ctl_conn_reply(x->conn, json_pack("{s:b,s:O}", "ok", 1, "check", c));
	json_decref(c);
	free(x);
}

static void on_policy_answer(void *userdata, const struct http_response *resp)
{
	struct check_ctx *x = userdata;
	const char *guests = "unknown";
	struct buf why = BUF_INIT;
	if (resp->error) {
		buf_printf(&why, "cannot read the authorization policy: %s",
			   resp->error_text ? resp->error_text : strerror(-resp->error));
	} else if (resp->status == 200) {
		json_t *o = json_loadb(resp->body, resp->body_len, 0, NULL);
		const char *from = json_string_value(json_object_get(o, "allowInvitesFrom"));
		if (from && strcmp(from, "none") == 0) {
			guests = "not_allowed";
			buf_append_str(&why, "the tenant's authorization policy has allowInvitesFrom "
					     "= none: nobody may invite guests");
		} else if (from) {
			guests = "allowed";
		} else {
			buf_append_str(&why, "the authorization policy has no allowInvitesFrom");
		}
		json_decref(o);
	} else if (resp->status == 403) {
		buf_append_str(&why, "the token may not read the authorization policy (HTTP 403): "
				     "grant Policy.Read.All to tell whether guests may be invited");
	} else {
		buf_printf(&why, "reading the authorization policy answered HTTP %ld", resp->status);
	}
	json_object_set_new(x->check, "guests", json_string(guests));
	json_object_set_new(x->check, "guests_why", why.data ? json_string(why.data) : json_null());
	buf_finish(&why);
	check_reply(x);
}

static void on_smtp_check(void *userdata, const struct http_response *resp)
{
	struct check_ctx *x = userdata;
	json_t *m = json_object_get(x->check, "mail");
	struct graph_dir_result g;
	bool ok = false;
	struct buf why = BUF_INIT;
	if (mailmsg_smtp_classify(resp, &g) == 0) {
		ok = g.outcome == GRAPH_DIR_OK;
		if (!ok)
			buf_printf(&why, "%s%s%s", g.error_code ? g.error_code : "",
				   g.error_code ? ": " : "", g.error_message ? g.error_message : "");
		graph_dir_result_clear(&g);
	}
	json_object_set_new(m, "ok", json_boolean(ok));
	json_object_set_new(m, "error", ok ? json_null()
					   : json_string(why.data ? why.data : "no answer"));
	buf_finish(&why);
	check_reply(x);
}

/* Connect to the tenant's relay, STARTTLS (or smtps), AUTH, no message. */
static int check_smtp(struct daemon *d, struct daemon_tenant *dt, struct check_ctx *x)
{
	const struct config_mail *m = &dt->conf.mail;
	struct http_smtp_spec spec = {
		.url = m->smtp_url,
		.user = m->smtp_user,
		.password = dt->cred.smtp_password,
		.mail_from = m->sender,
		.rcpt = m->sender,
		.ca_file = m->ca_file,
		.timeout_ms = dt->conf.request_timeout_ms,
		.check_only = 1,
	};
	int r = http_smtp_send(d->http, &spec, NULL, 0, on_smtp_check, x);
	if (r < 0) {
		json_t *j = json_object_get(x->check, "mail");
		json_object_set_new(j, "ok", json_false());
		json_object_set_new(j, "error", json_string(strerror(-r)));
	}
	return r;
}

/* {"op":"check","tenant":NAME}: the token the tenant holds now (the cached
 * one, refreshed as usual; none yet: its error), its roles against what the
 * configuration needs, and whether the tenant lets guests be invited. */
static void op_check(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	struct daemon_tenant *dt = request_tenant(d, conn, req, "check");
	if (!dt)
		return;
	struct check_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		ctl_conn_error(conn, PROTO_ERR_INTERNAL, "out of memory");
		return;
	}
	x->d = d;
	x->conn = conn;
	const char *header = auth_header(dt->auth);
	json_t *roles = header ? token_roles(header) : NULL;
	json_t *needed = json_pack("[s]", "User.Invite.All"), *missing = json_array();
	/* what the tenant's configuration uses besides (SPEC §8) */
	if (dt->conf.onboard.lookup)
		json_array_append_new(needed, json_string("User.Read.All"));
	if (dt->conf.mail.on && dt->conf.mail.via == CONFIG_MAIL_GRAPH)
		json_array_append_new(needed, json_string("Mail.Send"));
	size_t i;
	json_t *v;
	json_array_foreach(needed, i, v)
	{
		bool have = false;
		size_t k;
		json_t *r;
		json_array_foreach(roles, k, r)
		{
			if (json_equal(r, v))
				have = true;
		}
		if (!have)
			json_array_append(missing, v);
	}
	x->check = json_pack("{s:s,s:s,s:o,s:o,s:o}", "tenant", dt->conf.name, "token",
			     tenant_token_text(dt), "roles", roles ? roles : json_null(), "needed",
			     needed, "missing", missing);
	if (!x->check) {
		free(x);
		ctl_conn_error(conn, PROTO_ERR_INTERNAL, "out of memory");
		return;
	}
	/* the mail path: for graph the role above; for smtp connect, TLS and
	 * AUTH without a message */
	x->waiting = 1;
	if (dt->conf.mail.on) {
		json_t *m = json_pack("{s:s,s:s}", "via",
				      dt->conf.mail.via == CONFIG_MAIL_GRAPH ? "graph" : "smtp",
				      "sender", dt->conf.mail.sender);
		json_object_set_new(x->check, "mail", m);
		if (dt->conf.mail.via == CONFIG_MAIL_GRAPH) {
			bool have = false;
			size_t k;
			json_t *r;
			json_array_foreach(roles, k, r)
			{
				have |= json_is_string(r) && strcmp(json_string_value(r), "Mail.Send") == 0;
			}
			json_object_set_new(m, "ok", json_boolean(have));
			json_object_set_new(m, "error",
					    have ? json_null()
						 : json_string("the token has no Mail.Send role: grant it, "
							       "limited to the sender's mailbox "
							       "(docs/operations.md)"));
		} else if (check_smtp(d, dt, x) == 0) {
			x->waiting++;
		}
	}
	if (!header) {
		json_object_set_new(x->check, "guests", json_string("unknown"));
		json_object_set_new(x->check, "guests_why",
				    json_string("no token: the policy cannot be read"));
		ctl_conn_on_gone(conn, check_gone, x);
		check_reply(x);
		return;
	}
	struct buf url = BUF_INIT;
	buf_printf(&url, "%s/v1.0/policies/authorizationPolicy", dt->conf.graph_url);
	struct http_post_spec spec = {
		.url = url.data,
		.content_type = "application/json",
		.authorization = header,
		.timeout_ms = dt->conf.request_timeout_ms,
		.get = 1,
	};
	int r = url.data ? http_post(d->http, &spec, NULL, 0, on_policy_answer, x) : -ENOMEM;
	buf_finish(&url);
	ctl_conn_on_gone(conn, check_gone, x);
	if (r < 0) {
		json_object_set_new(x->check, "guests", json_string("unknown"));
		json_object_set_new(x->check, "guests_why", json_string(strerror(-r)));
		check_reply(x);
	}
}

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
	if (!have_job && need != POLICY_ADMIN) {
		/* any tenant the peer may use will do */
		for (size_t i = 0; i < d->n_tenants; i++)
			if (peer_may_use(p, d->tenants[i])) {
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
	{"resend", op_resend, POLICY_OWNER, "id", NULL},
	{"track", op_track, POLICY_OWNER, "id", NULL},
	{"reload", op_reload, POLICY_ADMIN, NULL, "reload the configuration"},
	{"tenants", op_tenants, POLICY_ANY, NULL, NULL}, /* the peer's tenants only */
	{"check", op_check, POLICY_ANY, NULL, NULL},     /* a tenant the peer may use */
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
