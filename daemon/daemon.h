/* SPDX-License-Identifier: MIT */
/*
 * daemon: the objects one running invited holds, wired by main.c and handed
 * to the request handlers (ops.c). Each member is owned by its module.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "credential.h"
#include "policy.h"
#include "ratelimit.h"

struct auth;
struct hook;
struct ctl;
struct http;
struct store;
struct tenant;
struct waiter;

struct daemon;

/* One configured tenant (SPEC §7): its own token, sender and groups. */
struct mailmsg_template;

struct daemon_tenant {
	struct daemon *d;
	struct config_tenant conf; /* owned; resolved (config.h) */
	struct credential cred;    /* owned; auth borrows its certificate */
	struct auth *auth;
	struct tenant *tenant;
	struct policy_groups groups; /* names borrowed from conf */
	struct mailmsg_template *template; /* [mail]'s, parsed at start; NULL: no mail */
	char fingerprint[65]; /* of the credential (reload: changed or not) */
};

struct daemon {
	uv_loop_t *loop;
	struct config config;
	struct store *store;
	struct http *http;
	/* the tenants, in the configuration's order; never empty once started */
	struct daemon_tenant **tenants;
	size_t n_tenants;
	struct ratelimit app_rl; /* [graph] app_rate, when have_app_rl */
	bool have_app_rl;
	char *creds_dir; /* $CREDENTIALS_DIRECTORY, read at start; NULL: none */
	/* the credential files and directories hidden from on_complete when its
	 * helper was forked (main.c); a reload may use no other */
	char **hidden;
	size_t n_hidden;
	struct ctl *ctl;
	struct hook *hook; /* NULL unless [daemon] on_complete is set */
	uint64_t started_mono_ms;
	struct waiter *waiters; /* `wait` requests not answered yet (ops.c) */
	/* who may do what (policy.h): [daemon]'s groups (reload, and tenants
	 * without their own); each tenant's are in daemon_tenant */
	struct policy_groups groups;
	struct policy_refusals refusals; /* refusals logged recently (ops.c) */
	bool stopping;
	const char *config_path; /* for reload: the file given at start */
	bool config_required;
};

/*
 * Re-read the configuration (reload.c): [queue] and the upload limits take
 * effect at once; keys that need a restart are named in the log and in
 * *ret_message (owned). A bad file changes nothing and returns -EINVAL
 * with the reason in *ret_message. Recorded in the audit trail as done by
 * uid/user (uid -1: a signal).
 */
int daemon_reload(struct daemon *d, int64_t uid, const char *user, char **ret_message);

/*
 * Make tenant ct (its configuration taken over: *ct is zeroed) with its
 * credential cred (taken over) and start it on d's loop. 0, or a negative
 * errno with *ret_error (owned).
 */
int daemon_tenant_add(struct daemon *d, struct config_tenant *ct, struct credential *cred,
		      char **ret_error);
/* Stop and free dt (it must be d's; no unfinished job may be left). */
void daemon_tenant_remove(struct daemon *d, struct daemon_tenant *dt);
void daemon_tenants_destroy(struct daemon *d);
struct daemon_tenant *daemon_tenant_find(struct daemon *d, const char *name);
struct daemon_tenant *daemon_tenant_by_id(struct daemon *d, int64_t tenant_id);
/* What identifies a credential's content (a secret's SHA-256, a
 * certificate's thumbprint) into out. */
void daemon_credential_fingerprint(const struct credential *cr, char out[65]);
/* auth's ready callback for tenant dt (userdata): its sender goes on. */
void daemon_auth_ready(void *userdata);
/* Resolve dt's allow_group/admin_group to gids (policy_groups_init). */
void daemon_tenant_groups_init(struct daemon_tenant *dt);
/* Summary for STATUS= ("3 tenants: 2 sending, 1 blocked; 12,000 pending"), owned. */
char *daemon_status_line(struct daemon *d, double rate);

/* Read and parse a [mail] template (at most 64 KiB). *ret_why (owned): why
 * it is not a template, when that is the reason. */
int daemon_template_load(const char *path, struct mailmsg_template **ret, char **ret_why);

/* The options its tenant (tenant.h) is made with, and reconfigured with
 * after a reload (which ignores name, graph_url, batch and app). */
struct tenant_options;
void daemon_tenant_options(const struct daemon_tenant *dt, struct tenant_options *ret);
