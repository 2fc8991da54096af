/* SPDX-License-Identifier: MIT */
/*
 * tenant: one tenant's sending. It claims due rows from the store, spends
 * the tenant's rate tokens and in-flight slots on them, sends each through
 * graph + http, and hands every outcome back to the store: done, failed,
 * or pending again with a later next_attempt_at. It owns the tenant-wide
 * pause (Retry-After) and block (anti-abuse 403) state.
 *
 * The tenant is the unit SPEC's "planned next" multiplies: each has its own
 * credential (auth), rate limiter and block state.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "graph.h"

struct mailmsg_template;

struct auth;
struct http;
struct store;

struct ratelimit;

struct tenant_options {
	const char *name; /* the tenant's name ([tenant NAME]; "default" for a wave-1 file) */
	const char *graph_url;
	double rate;
	unsigned burst;
	unsigned concurrency;
	unsigned max_attempts;
	uint64_t request_timeout_ms;
	unsigned batch; /* invitations per $batch request (1..20); 1: single requests */
	/* [graph] app_rate: a limiter every tenant's sends also take from;
	 * borrowed (the daemon's), NULL: none */
	struct ratelimit *app;
	/* SPEC §8: lookups, group additions, tracking, resends (onboard.h) */
	struct config_onboard onboard;
	/* our own invitation mail (onboard.h's options); borrowed */
	const struct config_mail *mail;
	const struct mailmsg_template *template;
	const char *smtp_password;
	const char *tenant_label;
};

struct tenant_stats {
	uint64_t requests;    /* invitation requests sent */
	uint64_t created;     /* 201 */
	uint64_t failed;      /* rows failed */
	uint64_t retries;     /* rows put back for another attempt */
	uint64_t throttled;   /* 429 / 503 with Retry-After */
	uint64_t transient;   /* 5xx, timeouts, connection errors */
	uint64_t auth_errors; /* 401 */
	unsigned in_flight;   /* rows whose request is on the wire */
	unsigned requests_in_flight; /* requests on the wire (a $batch is one) */
	unsigned ready;       /* claimed, waiting for a token or slot */
	uint64_t paused_ms;   /* remaining Retry-After pause */
	/* SPEC §8 */
	uint64_t lookups, lookups_found, group_additions, group_failures;
	uint64_t tracking_reads, accepted, resends;
	unsigned max_resends;
	bool lookups_on;
	uint64_t mails_sent, mails_failed, mail_wait_until_ms;
};

struct tenant;

/* store, http, auth: borrowed, must outlive the tenant. */
int tenant_create(uv_loop_t *loop, struct store *store, struct http *http, struct auth *auth,
		  const struct tenant_options *opt, struct tenant **ret);
void tenant_destroy(struct tenant *t);

int64_t tenant_id(const struct tenant *t);
const char *tenant_name(const struct tenant *t);
/* Reason sending is blocked (borrowed), or NULL. */
const char *tenant_blocked(const struct tenant *t);
void tenant_get_stats(const struct tenant *t, struct tenant_stats *ret);
/* The current sending rate (below the configured one after 429s). */
double tenant_rate(struct tenant *t);

/* Apply a reloaded [queue]: rate, burst, concurrency, max_attempts,
 * request_timeout (opt's name and graph_url are ignored). */
void tenant_reconfigure(struct tenant *t, const struct tenant_options *opt);

/* Something may be due now (a job was added, resumed, re-queued). */
void tenant_kick(struct tenant *t);
/* Claimed rows of this job (0: of every job) go back to pending (before
 * pause/cancel). Waits up to 2 s for the database; -EBUSY (or another
 * error): the claims are kept, and sent. */
int tenant_forget_job(struct tenant *t, int64_t job_id);
/* Told when Graph blocks the tenant (after the block is stored). */
typedef void (*tenant_blocked_fn)(void *userdata);
void tenant_set_blocked_fn(struct tenant *t, tenant_blocked_fn fn, void *userdata);
/* Lift the anti-abuse block (an admin resumed). */
int tenant_unblock(struct tenant *t);
/* End a Retry-After pause now (an admin resumed the tenant): 1 if one was on. */
int tenant_unpause(struct tenant *t);

/* Use another token source from now on (a reload changed the credential):
 * borrowed, must outlive the tenant or the next call. */
void tenant_set_auth(struct tenant *t, struct auth *auth);
struct auth *tenant_auth(const struct tenant *t);
/* The app_rate limiter (borrowed; NULL: none) from now on (reload). */
void tenant_set_app(struct tenant *t, struct ratelimit *app);

/* Graph throttled the application as a whole (x-ms-throttle-scope
 * "Application/..."), for one of its budgets (the invitations, or the
 * directory's reads or writes): told so that every tenant slows
 * (tenant_slow). */
typedef void (*tenant_app_throttled_fn)(void *userdata, struct tenant *t,
					enum graph_budget budget, uint64_t wait_ms);
void tenant_set_app_throttled_fn(struct tenant *t, tenant_app_throttled_fn fn, void *userdata);
/* Slow down what draws on budget as after a 429 of its own: the AIMD cut,
 * and no request for wait_ms (another tenant's answer said the app's
 * budget is spent). */
void tenant_slow(struct tenant *t, enum graph_budget budget, uint64_t wait_ms);

/* Stop sending; fn runs once nothing is in flight and results are stored. */
typedef void (*tenant_drained_fn)(void *userdata);
void tenant_drain(struct tenant *t, tenant_drained_fn fn, void *userdata);
