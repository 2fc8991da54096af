/* SPDX-License-Identifier: MIT */
/* reload: SIGHUP / `invitectl reload` re-read the configuration. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "auth.h"
#include "buf.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "mailmsg.h"
#include "store.h"
#include "tenant.h"
#include "credential.h"
#include "ctl.h"
#include "secret.h"
#include "timeutil.h"
#include "ratelimit.h"

static bool differs(const char *a, const char *b)
{
	if (!a || !b)
		return a != b;
	return strcmp(a, b) != 0;
}

static bool argv_equal(char *const *a, char *const *b)
{
	for (; a && b && *a && *b; a++, b++)
		if (strcmp(*a, *b) != 0)
			return false;
	return (!a || !*a) && (!b || !*b);
}

/* What a reload does to the tenants, worked out before anything changes. */
struct plan {
	/* per new tenant nc.tenants[i]: its credential, and the running tenant
	 * of that name (NULL: added) */
	struct credential *creds;
	struct daemon_tenant **match;
	bool *new_auth; /* the credential or where it signs in changed: a new token */
	/* its [mail] template, read again (NULL: no [mail]) */
	struct mailmsg_template **templates;
	struct buf changes; /* "added a, credential of b" */
	size_t n;
};

static void plan_finish(struct plan *p)
{
	for (size_t i = 0; p->creds && i < p->n; i++)
		credential_finish(&p->creds[i]);
	for (size_t i = 0; p->templates && i < p->n; i++)
		mailmsg_template_free(p->templates[i]);
	free(p->templates);
	free(p->creds);
	free(p->match);
	free(p->new_auth);
	buf_finish(&p->changes);
}

struct unfinished {
	int64_t tenant_id;
	struct buf ids;
	unsigned n;
};

static int count_unfinished(void *userdata, const struct store_job *j)
{
	struct unfinished *u = userdata;
	if (j->tenant_id != u->tenant_id || j->finished_at)
		return 0;
	u->n++;
	if (u->n <= 10)
		buf_printf(&u->ids, "%s%lld", u->ids.len ? ", " : "", (long long)j->id);
	return 0;
}

/* Was path (a credential file) hidden from the on_complete helper when it
 * was forked: itself, or under a hidden directory? */
static bool hidden_from_hook(const struct daemon *d, const char *path)
{
	for (size_t i = 0; path && i < d->n_hidden; i++) {
		size_t n = strlen(d->hidden[i]);
		if (strcmp(path, d->hidden[i]) == 0 ||
		    (strncmp(path, d->hidden[i], n) == 0 && path[n] == '/'))
			return true;
	}
	return false;
}

/* The file of cr (its secret or certificate, its SMTP password) that
 * on_complete was not kept from when invited started, or NULL. */
static const char *unhidden_credential(const struct daemon *d, const struct credential *cr)
{
	if (!d->hook)
		return NULL;
	if (!hidden_from_hook(d, cr->source))
		return cr->source;
	if (cr->smtp_source && !hidden_from_hook(d, cr->smtp_source))
		return cr->smtp_source;
	return NULL;
}

static int reload_tenants_prepare(struct daemon *d, struct config *nc, struct plan *p,
				  struct buf *msg)
{
	/* a tenant that goes away must have nothing left to send */
	for (size_t i = 0; i < d->n_tenants; i++) {
		struct daemon_tenant *dt = d->tenants[i];
		if (config_tenant_find(nc, dt->conf.name))
			continue;
		struct unfinished u = {.tenant_id = tenant_id(dt->tenant)};
		buf_init(&u.ids);
		int r = store_jobs_list(d->store, false, time_now_ms() + 1, count_unfinished, &u);
		if (r < 0) {
			buf_finish(&u.ids);
			buf_printf(msg, "cannot read the jobs of tenant '%s': %s; nothing changed",
				   dt->conf.name, strerror(-r));
			return r;
		}
		if (u.n > 0) {
			buf_printf(msg,
				   "tenant '%s' still has %u unfinished job%s (%s%s): cancel or "
				   "finish them first; nothing changed",
				   dt->conf.name, u.n, u.n == 1 ? "" : "s", u.ids.data,
				   u.n > 10 ? ", ..." : "");
			buf_finish(&u.ids);
			log_error("Failed to reload the configuration: %s", msg->data);
			return -EINVAL;
		}
		buf_finish(&u.ids);
	}
	p->n = nc->n_tenants;
	p->creds = calloc(p->n ? p->n : 1, sizeof(*p->creds));
	p->match = calloc(p->n ? p->n : 1, sizeof(*p->match));
	p->new_auth = calloc(p->n ? p->n : 1, sizeof(*p->new_auth));
	p->templates = calloc(p->n ? p->n : 1, sizeof(*p->templates));
	if (!p->creds || !p->match || !p->new_auth || !p->templates)
		return -ENOMEM;
	for (size_t i = 0; i < p->n; i++) {
		struct config_tenant *t = &nc->tenants[i];
		char *error = NULL;
		/* read here, in the daemon: never in the hook helper */
		int r = credential_load(nc, t, d->creds_dir, &p->creds[i], &error);
		if (r < 0) {
			buf_printf(msg, "the configuration is not valid; nothing changed: %s",
				   error ? error : strerror(-r));
			log_error("Failed to reload the configuration; the running one stays: %s",
				  error ? error : strerror(-r));
			free(error);
			return -EINVAL;
		}
		const char *unhidden = unhidden_credential(d, &p->creds[i]);
		if (unhidden) {
			buf_printf(msg,
				   "the credential '%s' of tenant '%s' was not hidden from on_complete "
				   "when invited started: restart invited to use it (or pass it in "
				   "$CREDENTIALS_DIRECTORY); nothing changed",
				   unhidden, t->name);
			log_error("Failed to reload the configuration: %s", msg->data);
			return -EINVAL;
		}
		/* the template is read again, as the credential is: a reload after
		 * editing it uses the new one, a bad one changes nothing */
		if (t->mail.on) {
			char *why = NULL;
			r = daemon_template_load(t->mail.template_file, &p->templates[i], &why);
			if (r < 0) {
				buf_printf(msg,
					   "the configuration is not valid; nothing changed: [mail] of "
					   "tenant '%s': template '%s': %s",
					   t->name, t->mail.template_file, why ? why : strerror(-r));
				log_error("Failed to reload the configuration; the running one stays: %s",
					  msg->data);
				free(why);
				return -EINVAL;
			}
		}
		struct daemon_tenant *dt = daemon_tenant_find(d, t->name);
		p->match[i] = dt;
		if (!dt) {
			buf_printf(&p->changes, "%sadded %s", p->changes.len ? ", " : "", t->name);
			continue;
		}
		char fp[65];
		daemon_credential_fingerprint(&p->creds[i], fp);
		p->new_auth[i] = strcmp(fp, dt->fingerprint) != 0 ||
				 differs(t->client_id, dt->conf.client_id) ||
				 differs(t->authority_url, dt->conf.authority_url) ||
				 differs(t->graph_url, dt->conf.graph_url);
		if (p->new_auth[i])
			buf_printf(&p->changes, "%snew credential for %s", p->changes.len ? ", " : "",
				   t->name);
	}
	return 0;
}

/* Cannot fail (out of memory aside, logged): remove, change, add. */
static void reload_tenants_commit(struct daemon *d, struct config *nc, struct plan *p,
				  struct buf *restart)
{
	for (size_t i = d->n_tenants; i > 0; i--) {
		struct daemon_tenant *dt = d->tenants[i - 1];
		if (config_tenant_find(nc, dt->conf.name))
			continue;
		buf_printf(&p->changes, "%sremoved %s", p->changes.len ? ", " : "", dt->conf.name);
		log_notice("Tenant '%s' removed by a reload", dt->conf.name);
		daemon_tenant_remove(d, dt);
	}
	for (size_t i = 0; i < p->n; i++) {
		struct config_tenant *t = &nc->tenants[i];
		struct daemon_tenant *dt = p->match[i];
		if (!dt) {
			char *error = NULL;
			char *name = strdup(t->name);
			if (daemon_tenant_add(d, t, &p->creds[i], &error) < 0)
				log_error("Failed to add tenant '%s' at reload: %s", name ? name : "?",
					  error ? error : "out of memory");
			else
				log_notice("Tenant '%s' added by a reload", name ? name : "?");
			free(name);
			free(error);
			continue;
		}
		if (t->batch != dt->conf.batch)
			buf_printf(restart, "%sbatch of %s", restart->len ? ", " : "", t->name);
		if (differs(t->graph_url, dt->conf.graph_url))
			buf_printf(restart, "%sgraph_url of %s (invitations)",
				   restart->len ? ", " : "", t->name);
		if (p->new_auth[i]) {
			struct auth_options ao = {
				.authority_url = t->authority_url,
				.tenant = dt->conf.tenant, /* a new one needs a restart */
				.client_id = t->client_id,
				.graph_url = t->graph_url,
				.timeout_ms = t->request_timeout_ms,
				.cert = p->creds[i].cert,
			};
			struct auth *na = NULL;
			int r = auth_create(d->loop, d->http, &ao, p->creds[i].secret, daemon_auth_ready,
					    dt, &na);
			if (r < 0) {
				log_error("Failed to use the new credential of tenant '%s': %s",
					  t->name, strerror(-r));
			} else {
				tenant_set_auth(dt->tenant, na);
				auth_destroy(dt->auth);
				dt->auth = na;
				credential_finish(&dt->cred);
				dt->cred = p->creds[i];
				memset(&p->creds[i], 0, sizeof(p->creds[i]));
				daemon_credential_fingerprint(&dt->cred, dt->fingerprint);
				secret_free(dt->cred.secret); /* auth has its copy */
				dt->cred.secret = NULL;
				log_notice("Tenant '%s' signs in with a new credential", t->name);
				auth_start(na);
			}
		}
		/* the rest of the section: its own now (names the groups borrow) */
		unsigned batch = dt->conf.batch;
		char *old_graph_url = dt->conf.graph_url, *old_directory = dt->conf.tenant;
		dt->conf.graph_url = dt->conf.tenant = NULL;
		config_tenant_finish(&dt->conf);
		dt->conf = *t;
		memset(t, 0, sizeof(*t));
		dt->conf.batch = batch; /* applied after a restart */
		free(dt->conf.graph_url);
		dt->conf.graph_url = old_graph_url;
		free(dt->conf.tenant);
		dt->conf.tenant = old_directory;
		daemon_tenant_groups_init(dt);
		/* [mail]: the template and the SMTP password read again (a new
		 * credential brought its own above) */
		mailmsg_template_free(dt->template);
		dt->template = p->templates[i];
		p->templates[i] = NULL;
		if (!p->new_auth[i]) {
			secret_free(dt->cred.smtp_password);
			free(dt->cred.smtp_source);
			dt->cred.smtp_password = p->creds[i].smtp_password;
			dt->cred.smtp_source = p->creds[i].smtp_source;
			p->creds[i].smtp_password = NULL;
			p->creds[i].smtp_source = NULL;
		}
		struct tenant_options to;
		daemon_tenant_options(dt, &to);

		tenant_reconfigure(dt->tenant, &to);
		auth_set_timeout(dt->auth, dt->conf.request_timeout_ms);
	}
}

int daemon_reload(struct daemon *d, int64_t uid, const char *user, char **ret_message)
{
	struct plan plan = {0};
	buf_init(&plan.changes);
	struct config nc;
	struct buf msg = BUF_INIT, restart = BUF_INIT;
	char *error = NULL;
	int r = config_init(&nc);
	if (r < 0)
		return r;
	r = config_load(&nc, d->config_path, d->config_required, &error);
	if (r == 0)
		r = config_check(&nc, &error);
	if (r < 0) {
		log_error("Failed to reload the configuration; the running one stays: %s",
			  error ? error : strerror(-r));
		buf_printf(&msg, "the configuration is not valid; nothing changed: %s",
			   error ? error : strerror(-r));
		r = -EINVAL;
		goto out;
	}

	/* what cannot change while running */
	static const struct {
		const char *key;
		size_t offset;
	} fixed[] = {
		{"ca_file", offsetof(struct config, ca_file)},
		{"proxy", offsetof(struct config, proxy)},
		{"socket", offsetof(struct config, socket_path)},
		{"database", offsetof(struct config, database)},
		{"allow_group", offsetof(struct config, allow_group)},
		{"admin_group", offsetof(struct config, admin_group)},
	};
	/* a tenant's directory: its jobs were made for that one */
	for (size_t i = 0; i < nc.n_tenants; i++) {
		struct daemon_tenant *dt = daemon_tenant_find(d, nc.tenants[i].name);
		if (dt && differs(dt->conf.tenant, nc.tenants[i].tenant)) {
			if (nc.have_tenant_sections)
				buf_printf(&restart, "%stenant of %s", restart.len ? ", " : "",
					   dt->conf.name);
			else
				buf_printf(&restart, "%stenant", restart.len ? ", " : "");
		}
	}
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		const char *a = *(char *const *)((const char *)&d->config + fixed[i].offset);
		const char *b = *(char *const *)((const char *)&nc + fixed[i].offset);
		if (differs(a, b))
			buf_printf(&restart, "%s%s", restart.len ? ", " : "", fixed[i].key);
	}
	if (d->config.retention_days != nc.retention_days)
		buf_printf(&restart, "%sretention_days", restart.len ? ", " : "");
	if (!argv_equal(d->config.on_complete, nc.on_complete))
		buf_printf(&restart, "%son_complete", restart.len ? ", " : "");
	if (differs(d->config.hook_user, nc.hook_user)) /* the helper has it */
		buf_printf(&restart, "%shook_user", restart.len ? ", " : "");

	/* tenants: first everything that can fail, then the change */
	r = reload_tenants_prepare(d, &nc, &plan, &msg);
	if (r < 0)
		goto out;
	reload_tenants_commit(d, &nc, &plan, &restart);
	ctl_tenants_changed(d->ctl);

	struct config *c = &d->config;
	c->rate = nc.rate;
	c->burst = nc.burst;
	c->concurrency = nc.concurrency;
	c->max_attempts = nc.max_attempts;
	c->request_timeout_ms = nc.request_timeout_ms;
	c->max_upload_bytes = nc.max_upload_bytes;
	c->max_rows = nc.max_rows;
	c->batch = nc.batch;
	if (nc.app_rate > 0) {
		unsigned burst = (unsigned)(nc.app_rate < 1 ? 1 : nc.app_rate);
		if (d->have_app_rl)
			ratelimit_set(&d->app_rl, nc.app_rate, burst, uv_now(d->loop));
		else
			ratelimit_init(&d->app_rl, nc.app_rate, burst, uv_now(d->loop));
	}
	d->have_app_rl = nc.app_rate > 0;
	c->app_rate = nc.app_rate;
	for (size_t i = 0; i < d->n_tenants; i++)
		tenant_set_app(d->tenants[i]->tenant, d->have_app_rl ? &d->app_rl : NULL);
	/* control connections: read by ctl.c at each connection and timer */
	c->first_request_timeout_ms = nc.first_request_timeout_ms;
	c->idle_timeout_ms = nc.idle_timeout_ms;
	c->max_connections_per_uid = nc.max_connections_per_uid;
	buf_printf(&msg,
		   "reloaded: rate %g/s, burst %u, concurrency %u, max_attempts %u, "
		   "request_timeout %gs, max_upload_bytes %llu, max_rows %llu; %zu tenant%s",
		   c->rate, c->burst, c->concurrency, c->max_attempts,
		   (double)c->request_timeout_ms / 1000.0, (unsigned long long)c->max_upload_bytes,
		   (unsigned long long)c->max_rows, d->n_tenants, d->n_tenants == 1 ? "" : "s");
	if (plan.changes.len)
		buf_printf(&msg, " (%s)", plan.changes.data);
	if (restart.len) {
		log_warning("Changed in the configuration but applied only after a restart of "
			    "invited: %s",
			    restart.data);
		buf_printf(&msg, "; needs a restart to apply: %s", restart.data);
	}
	struct store_audit a = {
		.uid = uid, .user = user, .action = "reload", .detail = msg.data};
	if (store_audit_add(d->store, &a) < 0)
		log_error("Failed to record the reload in the audit trail");
	audit_log("reload", uid, user, 0, NULL, "Configuration %s (by %s)", msg.data, user);
out:
	free(error);
	plan_finish(&plan);
	config_finish(&nc);
	buf_finish(&restart);
	*ret_message = msg.data ? buf_steal(&msg) : strdup("out of memory");
	buf_finish(&msg);
	return r;
}
