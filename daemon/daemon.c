/* SPDX-License-Identifier: MIT */
/* daemon: the list of tenants one running invited serves (SPEC §7). */
#include "daemon.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "crypto.h"
#include "log.h"
#include "mailmsg.h"
#include "ops.h"
#include "secret.h"
#include "store.h"
#include "tenant.h"

void daemon_auth_ready(void *userdata)
{
	struct daemon_tenant *dt = userdata;
	if (dt->tenant)
		tenant_kick(dt->tenant);
}

static void on_blocked(void *userdata)
{
	struct daemon_tenant *dt = userdata;
	ops_tenant_blocked(dt->d, dt);
}

/* One tenant's answer said one of the application's budgets is spent:
 * every other tenant slows what draws on it as well, and for invitations
 * so does the app_rate limiter. */
static void on_app_throttled(void *userdata, struct tenant *from, enum graph_budget budget,
			     uint64_t wait_ms)
{
	struct daemon_tenant *dt = userdata;
	struct daemon *d = dt->d;
	uint64_t now = uv_now(d->loop);
	if (d->have_app_rl && budget == GRAPH_BUDGET_INVITATIONS) {
		ratelimit_throttled(&d->app_rl, now);
		ratelimit_drain(&d->app_rl, now + wait_ms);
	}
	for (size_t i = 0; i < d->n_tenants; i++)
		if (d->tenants[i]->tenant && d->tenants[i]->tenant != from)
			tenant_slow(d->tenants[i]->tenant, budget, wait_ms);
}

void daemon_credential_fingerprint(const struct credential *cr, char out[65])
{
	out[0] = '\0';
	if (cr->cert) {
		snprintf(out, 65, "%s", crypto_cert_thumbprint(cr->cert));
		return;
	}
	struct crypto_sha256 *h = NULL;
	if (cr->secret && crypto_sha256_create(&h) == 0) {
		crypto_sha256_update(h, cr->secret, strlen(cr->secret));
		crypto_sha256_finish(h, out);
	}
	crypto_sha256_destroy(h);
}

void daemon_tenant_groups_init(struct daemon_tenant *dt)
{
	policy_groups_init(&dt->groups, dt->conf.allow_group, dt->conf.admin_group, getuid());
	if (dt->conf.admin_group && *dt->conf.admin_group && !dt->groups.have_admin)
		log_warning("Group '%s' (admin_group of tenant '%s') does not exist",
			    dt->conf.admin_group, dt->conf.name);
	if (dt->conf.allow_group && *dt->conf.allow_group && !dt->groups.have_allow &&
	    dt->conf.allow_group_set)
		log_warning("Group '%s' (allow_group of tenant '%s') does not exist",
			    dt->conf.allow_group, dt->conf.name);
}

void daemon_tenant_options(const struct daemon_tenant *dt, struct tenant_options *ret)
{
	struct daemon *d = dt->d;
	*ret = (struct tenant_options){
		.name = dt->conf.name,
		.graph_url = dt->conf.graph_url,
		.rate = dt->conf.rate,
		.burst = dt->conf.burst,
		.concurrency = dt->conf.concurrency,
		.max_attempts = dt->conf.max_attempts,
		.request_timeout_ms = dt->conf.request_timeout_ms,
		.batch = dt->conf.batch,
		.app = d->have_app_rl ? &d->app_rl : NULL,
		.onboard = dt->conf.onboard,
		.mail = &dt->conf.mail,
		.template = dt->template,
		.smtp_password = dt->cred.smtp_password,
		.tenant_label = dt->conf.tenant,
	};
}

int daemon_template_load(const char *path, struct mailmsg_template **ret, char **ret_why)
{
	char buf[65537];
	*ret = NULL;
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	size_t n = fread(buf, 1, sizeof(buf), f);
	int bad = ferror(f);
	fclose(f);
	if (bad)
		return -EIO;
	if (n == sizeof(buf)) {
		*ret_why = strdup("larger than 64 KiB");
		return -EFBIG;
	}
	return mailmsg_template_parse(buf, n, ret, ret_why);
}

static void daemon_tenant_free(struct daemon_tenant *dt)
{
	if (!dt)
		return;
	tenant_destroy(dt->tenant);
	mailmsg_template_free(dt->template);
	auth_destroy(dt->auth);
	credential_finish(&dt->cred); /* after auth: it borrows the certificate */
	config_tenant_finish(&dt->conf);
	free(dt);
}

int daemon_tenant_add(struct daemon *d, struct config_tenant *ct, struct credential *cred,
		      char **ret_error)
{
	struct daemon_tenant *dt = calloc(1, sizeof(*dt));
	struct daemon_tenant **list = dt ? realloc(d->tenants, (d->n_tenants + 1) * sizeof(*list))
					 : NULL;
	int r = -ENOMEM;
	if (!list)
		goto fail;
	d->tenants = list;
	dt->d = d;
	dt->conf = *ct;
	memset(ct, 0, sizeof(*ct));
	dt->cred = *cred;
	memset(cred, 0, sizeof(*cred));
	daemon_credential_fingerprint(&dt->cred, dt->fingerprint);
	if (dt->conf.mail.on) {
		char *why = NULL;
		r = daemon_template_load(dt->conf.mail.template_file, &dt->template, &why);
		if (r < 0) {
			if (ret_error) {
				struct buf m = BUF_INIT;
				buf_printf(&m, "[mail] of tenant '%s': template '%s': %s", dt->conf.name,
					   dt->conf.mail.template_file, why ? why : strerror(-r));
				*ret_error = m.data ? buf_steal(&m) : strdup("out of memory");
			}
			free(why);
			daemon_tenant_free(dt);
			return r;
		}
	}
	struct auth_options ao = {
		.authority_url = dt->conf.authority_url,
		.tenant = dt->conf.tenant,
		.client_id = dt->conf.client_id,
		.graph_url = dt->conf.graph_url,
		.timeout_ms = dt->conf.request_timeout_ms,
		.cert = dt->cred.cert,
	};
	r = auth_create(d->loop, d->http, &ao, dt->cred.secret, daemon_auth_ready, dt, &dt->auth);
	secret_free(dt->cred.secret); /* auth keeps its own copy */
	dt->cred.secret = NULL;
	if (r < 0)
		goto fail;
	struct tenant_options to;
	daemon_tenant_options(dt, &to);
	r = tenant_create(d->loop, d->store, d->http, dt->auth, &to, &dt->tenant);
	if (r < 0)
		goto fail;
	tenant_set_blocked_fn(dt->tenant, on_blocked, dt);
	tenant_set_app_throttled_fn(dt->tenant, on_app_throttled, dt);
	daemon_tenant_groups_init(dt);
	d->tenants[d->n_tenants++] = dt;
	auth_start(dt->auth);
	tenant_kick(dt->tenant);
	return 0;
fail:
	if (ret_error) {
		struct buf m = BUF_INIT;
		buf_printf(&m, "cannot set up tenant '%s': %s", dt && dt->conf.name ? dt->conf.name : "?",
			   strerror(-r));
		*ret_error = m.data ? buf_steal(&m) : strdup("out of memory");
	}
	daemon_tenant_free(dt);
	return r;
}

void daemon_tenant_remove(struct daemon *d, struct daemon_tenant *dt)
{
	for (size_t i = 0; i < d->n_tenants; i++)
		if (d->tenants[i] == dt) {
			memmove(&d->tenants[i], &d->tenants[i + 1],
				(d->n_tenants - i - 1) * sizeof(*d->tenants));
			d->n_tenants--;
			break;
		}
	daemon_tenant_free(dt);
}

void daemon_tenants_destroy(struct daemon *d)
{
	for (size_t i = 0; i < d->n_tenants; i++)
		daemon_tenant_free(d->tenants[i]);
	free(d->tenants);
	d->tenants = NULL;
	d->n_tenants = 0;
}

struct daemon_tenant *daemon_tenant_find(struct daemon *d, const char *name)
{
	for (size_t i = 0; name && i < d->n_tenants; i++)
		if (strcmp(d->tenants[i]->conf.name, name) == 0)
			return d->tenants[i];
	return NULL;
}

struct daemon_tenant *daemon_tenant_by_id(struct daemon *d, int64_t id)
{
	for (size_t i = 0; i < d->n_tenants; i++)
		if (d->tenants[i]->tenant && tenant_id(d->tenants[i]->tenant) == id)
			return d->tenants[i];
	return NULL;
}

/* 1234567 -> "1,234,567" */
static void thousands(long long n, char *out, size_t size)
{
	char digits[32];
	int len = snprintf(digits, sizeof(digits), "%lld", n < 0 ? 0 : n);
	size_t o = 0;
	for (int i = 0; i < len && o + 2 < size; i++) {
		if (i > 0 && (len - i) % 3 == 0)
			out[o++] = ',';
		out[o++] = digits[i];
	}
	out[o] = '\0';
}

char *daemon_status_line(struct daemon *d, double rate)
{
	int64_t active = 0, pending = 0, in_flight = 0;
	if (store_totals(d->store, &active, &pending, &in_flight) < 0)
		return NULL;
	char p[40];
	thousands(pending, p, sizeof(p));
	struct buf m = BUF_INIT;
	buf_printf(&m, "%lld job%s, %s pending, %.0f/s", (long long)active, active == 1 ? "" : "s",
		   p, rate);
	if (d->n_tenants == 1) {
		/* one tenant: as before */
		struct daemon_tenant *dt = d->tenants[0];
		if (tenant_blocked(dt->tenant))
			buf_append_str(&m, "; BLOCKED by Graph");
		if (auth_error(dt->auth))
			buf_append_str(&m, "; no token");
		return m.data ? buf_steal(&m) : NULL;
	}
	unsigned sending = 0, blocked = 0, paused = 0, no_token = 0;
	for (size_t i = 0; i < d->n_tenants; i++) {
		struct daemon_tenant *dt = d->tenants[i];
		struct tenant_stats ts;
		tenant_get_stats(dt->tenant, &ts);
		if (tenant_blocked(dt->tenant))
			blocked++;
		else if (!auth_header(dt->auth) && auth_error(dt->auth))
			no_token++;
		else if (ts.paused_ms > 0)
			paused++;
		else
			sending++;
	}
	buf_printf(&m, "; %zu tenants: %u sending", d->n_tenants, sending);
	if (paused)
		buf_printf(&m, ", %u paused", paused);
	if (blocked)
		buf_printf(&m, ", %u blocked", blocked);
	if (no_token)
		buf_printf(&m, ", %u without a token", no_token);
	return m.data ? buf_steal(&m) : NULL;
}
