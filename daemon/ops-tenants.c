/* SPDX-License-Identifier: MIT */
/* ops-tenants: status, stats, tenants and check: what the daemon and its
 * tenants are doing, per tenant the peer may use. */
#include "ops-private.h"

/* ---- status, stats ---- */

/* Per-tenant counts from the stored jobs (one pass over them). */

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
struct tenant_counts *ops_tenant_counts_get(struct daemon *d, bool all)
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
json_t *ops_tenant_json(struct daemon_tenant *dt, const struct tenant_counts *c)
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
	json_t *o = json_pack(
	    "{s:s,s:s,s:s,s:s,s:f,s:f,s:s,s:o,s:I,s:I,s:o}", "name", dt->conf.name, "tenant",
	    dt->conf.tenant, "cloud", dt->conf.cloud, "token", tenant_token_text(dt), "rate",
	    tenant_rate(dt->tenant), "configured_rate", dt->conf.rate, "state", state, "reason",
	    ops_str_or_null(reason), "active_jobs", (json_int_t)(c ? c->active_jobs : 0), "pending",
	    (json_int_t)(c ? c->pending : 0), "paused_until",
	    ts.paused_ms ? ops_time_or_null(time_now_ms() + ts.paused_ms) : json_null());
	buf_finish(&why);
	return o;
}

/* The tenants the peer may use, as SPEC §7's objects. */
static json_t *tenants_json(struct daemon *d, const struct peer *p)
{
	struct tenant_counts *c = ops_tenant_counts_get(d, false);
	json_t *a = json_array();
	for (size_t i = 0; i < d->n_tenants; i++)
		if (ops_peer_may_use(p, d->tenants[i]))
			json_array_append_new(a, ops_tenant_json(d->tenants[i], c ? &c[i] : NULL));
	free(c);
	return a;
}

void op_tenants(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	ctl_conn_reply(
	    conn, json_pack("{s:b,s:o}", "ok", 1, "tenants", tenants_json(d, ctl_conn_peer(conn))));
}

void op_status(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	const struct peer *p = ctl_conn_peer(conn);
	/* the top level: as for one tenant, of the first the peer may use */
	struct daemon_tenant *dt = NULL;
	for (size_t i = 0; i < d->n_tenants && !dt; i++)
		if (ops_peer_may_use(p, d->tenants[i]))
			dt = d->tenants[i];
	if (!dt) {
		/* in no tenant's groups ([daemon] admin_group only): nothing to show */
		ctl_conn_reply(
		    conn,
		    json_pack("{s:b,s:s,s:I,s:n,s:n,s:{s:I},s:[]}", "ok", 1, "version",
		              INVITED_VERSION, "uptime_s",
		              (json_int_t)((time_mono_ms() - d->started_mono_ms) / 1000u), "tenant",
		              "blocked", "jobs", "active", (json_int_t)0, "tenants"));
		return;
	}
	struct tenant_counts *counts = ops_tenant_counts_get(d, false);
	int64_t active = 0, pending = 0;
	for (size_t i = 0; counts && i < d->n_tenants; i++)
		if (ops_peer_may_use(p, d->tenants[i])) {
			active += counts[i].active_jobs;
			pending += counts[i].pending;
		}
	free(counts);
	static const char *const token_states[] = {"none", "fetching", "valid", "error"};
	int64_t exp = auth_expires_in_s(dt->auth);
	struct tenant_stats ts;
	tenant_get_stats(dt->tenant, &ts);
	json_t *reply =
	    json_pack("{s:b,s:s,s:I,s:s,s:o,s:{s:s,s:o,s:o},s:{s:f,s:f,s:I},s:{s:I,s:I},s:{s:I}}",
	              "ok", 1, "version", INVITED_VERSION, "uptime_s",
	              (json_int_t)((time_mono_ms() - d->started_mono_ms) / 1000u), "tenant",
	              dt->conf.tenant, "blocked", ops_str_or_null(tenant_blocked(dt->tenant)),
	              "token", "state", token_states[auth_state(dt->auth)], "expires_in_s",
	              exp >= 0 ? json_integer(exp) : json_null(), "error",
	              ops_str_or_null(auth_error(dt->auth)), "rate", "configured", dt->conf.rate,
	              "current", tenant_rate(dt->tenant), "paused_ms", (json_int_t)ts.paused_ms,
	              "queue", "pending", (json_int_t)pending, "in_flight",
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
	json_object_set_new(o, "group_additions_total",
	                    json_integer((json_int_t)ts.group_additions));
	json_object_set_new(o, "group_failures_total", json_integer((json_int_t)ts.group_failures));
	json_object_set_new(o, "tracking_reads_total", json_integer((json_int_t)ts.tracking_reads));
	json_object_set_new(o, "accepted_total", json_integer((json_int_t)ts.accepted));
	json_object_set_new(o, "resends_total", json_integer((json_int_t)ts.resends));
	json_object_set_new(o, "group_additions_pending", json_integer(pending));
	json_object_set_new(o, "mails_sent_total", json_integer((json_int_t)ts.mails_sent));
	json_object_set_new(o, "mails_failed_total", json_integer((json_int_t)ts.mails_failed));
}

void op_stats(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	const struct peer *p = ctl_conn_peer(conn);
	struct tenant_counts *counts = ops_tenant_counts_get(d, true);
	json_t *per = json_array();
	json_t *stats = json_object();
	/* the top level: sums over the tenants the peer may see */
	static const char *const summed[] = {"requests_total",
	                                     "invitations_created_total",
	                                     "rows_failed_total",
	                                     "retries_total",
	                                     "throttled_total",
	                                     "transient_errors_total",
	                                     "auth_errors_total",
	                                     "token_refreshes_total",
	                                     "in_flight",
	                                     "claimed",
	                                     "pending",
	                                     "active_jobs",
	                                     "rows_succeeded",
	                                     "rows_failed",
	                                     "rows_cancelled",
	                                     "lookups_total",
	                                     "lookups_found_total",
	                                     "group_additions_total",
	                                     "group_failures_total",
	                                     "tracking_reads_total",
	                                     "accepted_total",
	                                     "resends_total",
	                                     "group_additions_pending",
	                                     "mails_sent_total",
	                                     "mails_failed_total"};
	double rate = 0;
	json_int_t paused = 0;
	for (size_t k = 0; k < sizeof(summed) / sizeof(summed[0]); k++)
		json_object_set_new(stats, summed[k], json_integer(0));
	for (size_t i = 0; i < d->n_tenants; i++) {
		if (!ops_peer_may_use(p, d->tenants[i]))
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
	json_object_set_new(
	    stats, "uptime_seconds",
	    json_integer((json_int_t)((time_mono_ms() - d->started_mono_ms) / 1000u)));
	json_object_set_new(stats, "on_complete_running", json_integer(hook_running(d->hook)));
	json_object_set_new(stats, "tenants", per);
	ctl_conn_reply(conn, json_pack("{s:b,s:o}", "ok", 1, "stats", stats));
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
			buf_append_str(&why,
			               "the tenant's authorization policy has allowInvitesFrom "
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
		buf_printf(&why, "reading the authorization policy answered HTTP %ld",
		           resp->status);
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
			           g.error_code ? ": " : "",
			           g.error_message ? g.error_message : "");
		graph_dir_result_clear(&g);
	}
	json_object_set_new(m, "ok", json_boolean(ok));
	json_object_set_new(m, "error",
	                    ok ? json_null() : json_string(why.data ? why.data : "no answer"));
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
void op_check(struct daemon *d, struct ctl_conn *conn, json_t *req)
{
	struct daemon_tenant *dt = ops_request_tenant(d, conn, req, "check");
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
				have |= json_is_string(r) &&
				        strcmp(json_string_value(r), "Mail.Send") == 0;
			}
			json_object_set_new(m, "ok", json_boolean(have));
			json_object_set_new(
			    m, "error",
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
