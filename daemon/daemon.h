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
#include "policy.h"

struct auth;
struct hook;
struct ctl;
struct http;
struct store;
struct tenant;
struct waiter;

struct daemon {
	uv_loop_t *loop;
	struct config config;
	struct store *store;
	struct http *http;
	struct auth *auth;
	struct tenant *tenant; /* one today; SPEC "planned next": several, by name */
	struct ctl *ctl;
	struct hook *hook; /* NULL unless [daemon] on_complete is set */
	uint64_t started_mono_ms;
	struct waiter *waiters; /* `wait` requests not answered yet (ops.c) */
	/* who may do what (policy.h): the groups of the one tenant today, from
	 * [daemon]; SPEC §7 makes them per tenant */
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
