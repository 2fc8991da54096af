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
#include "store.h"
#include "tenant.h"

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

int daemon_reload(struct daemon *d, int64_t uid, const char *user, char **ret_message)
{
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
		{"tenant", offsetof(struct config, tenant)},
		{"client_id", offsetof(struct config, client_id)},
		{"client_secret_file", offsetof(struct config, client_secret_file)},
		{"certificate_file", offsetof(struct config, certificate_file)},
		{"cloud", offsetof(struct config, cloud)},
		{"authority_url", offsetof(struct config, authority_url)},
		{"graph_url", offsetof(struct config, graph_url)},
		{"ca_file", offsetof(struct config, ca_file)},
		{"proxy", offsetof(struct config, proxy)},
		{"socket", offsetof(struct config, socket_path)},
		{"database", offsetof(struct config, database)},
		{"allow_group", offsetof(struct config, allow_group)},
		{"admin_group", offsetof(struct config, admin_group)},
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		const char *a = *(char *const *)((const char *)&d->config + fixed[i].offset);
		const char *b = *(char *const *)((const char *)&nc + fixed[i].offset);
		if (differs(a, b))
			buf_printf(&restart, "%s%s", restart.len ? ", " : "", fixed[i].key);
	}

	if (d->config.batch != nc.batch)
		buf_printf(&restart, "%sbatch", restart.len ? ", " : "");
	if (d->config.retention_days != nc.retention_days)
		buf_printf(&restart, "%sretention_days", restart.len ? ", " : "");
	if (!argv_equal(d->config.on_complete, nc.on_complete))
		buf_printf(&restart, "%son_complete", restart.len ? ", " : "");
	if (differs(d->config.hook_user, nc.hook_user)) /* the helper has it */
		buf_printf(&restart, "%shook_user", restart.len ? ", " : "");

	struct config *c = &d->config;
	c->rate = nc.rate;
	c->burst = nc.burst;
	c->concurrency = nc.concurrency;
	c->max_attempts = nc.max_attempts;
	c->request_timeout_ms = nc.request_timeout_ms;
	c->max_upload_bytes = nc.max_upload_bytes;
	c->max_rows = nc.max_rows;
	/* control connections: read by ctl.c at each connection and timer */
	c->first_request_timeout_ms = nc.first_request_timeout_ms;
	c->idle_timeout_ms = nc.idle_timeout_ms;
	c->max_connections_per_uid = nc.max_connections_per_uid;
	struct tenant_options to = {
		.rate = c->rate,
		.burst = c->burst,
		.concurrency = c->concurrency,
		.max_attempts = c->max_attempts,
		.request_timeout_ms = c->request_timeout_ms,
	};
	if (d->tenant)
		tenant_reconfigure(d->tenant, &to);
	if (d->auth)
		auth_set_timeout(d->auth, c->request_timeout_ms);
	buf_printf(&msg,
		   "reloaded: rate %g/s, burst %u, concurrency %u, max_attempts %u, "
		   "request_timeout %gs, max_upload_bytes %llu, max_rows %llu",
		   c->rate, c->burst, c->concurrency, c->max_attempts,
		   (double)c->request_timeout_ms / 1000.0, (unsigned long long)c->max_upload_bytes,
		   (unsigned long long)c->max_rows);
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
	config_finish(&nc);
	buf_finish(&restart);
	*ret_message = msg.data ? buf_steal(&msg) : strdup("out of memory");
	buf_finish(&msg);
	return r;
}
