/* SPDX-License-Identifier: MIT */
/*
 * onboard: one tenant's directory work around its invitations (SPEC §8,
 * GRAPH.md §6): lookups of addresses before they are invited, the group
 * additions after, and the reads of invited guests' acceptance. Each has a
 * limiter and in-flight cap of its own, so none takes an invitation's rate
 * token, and none of their answers can fail a row an invitation made
 * `succeeded`. The invitation (and a resend, which is one) stays tenant.c's.
 *
 * Owned by its tenant (tenant.c creates it): lookups are handed over as
 * claims and come back through onboard_lookup_fn; group additions and
 * tracking are found in the store (store-steps.c) and their outcomes
 * queued there for the tenant's group commit.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "graph.h"

struct auth;
struct graph_user;
struct mailmsg_template;
struct http;
struct store;
struct store_claim;

struct onboard_options {
	const char *name;      /* the tenant's, for messages */
	const char *graph_url;
	int64_t tenant_id;
	struct config_onboard conf;
	unsigned concurrency;  /* requests in flight per kind at most */
	unsigned max_attempts;
	uint64_t request_timeout_ms;
	/* our own invitation mail ([mail]); mail NULL or !mail->on: none.
	 * All borrowed, must outlive the onboard (or the next reconfigure). */
	const struct config_mail *mail;
	const struct mailmsg_template *template;
	const char *smtp_password; /* via = smtp with smtp_user */
	const char *tenant_label;  /* {tenant}: the directory's domain or id */
};

struct onboard_stats {
	uint64_t lookups, lookups_found;
	uint64_t group_additions, group_failures;
	uint64_t tracking_reads, accepted;
	uint64_t mails_sent, mails_failed;
	uint64_t mail_wait_until_ms; /* wall ms: the daily limit is spent until then; 0: not */
};

enum onboard_lookup_outcome {
	ONBOARD_LOOKUP_NONE,   /* no such user: invite */
	ONBOARD_LOOKUP_FOUND,  /* *user is who has the address */
	ONBOARD_LOOKUP_OFF,    /* lookups are refused (403) or off: invite without one */
	ONBOARD_LOOKUP_FAILED, /* no answer after retries: error says why */
};

/* A lookup is over; the claim is the caller's again. user and error are
 * borrowed for the call. */
typedef void (*onboard_lookup_fn)(void *userdata, struct store_claim *c,
				  enum onboard_lookup_outcome outcome, const struct graph_user *user,
				  const char *error);
/* Results were queued in the store: the tenant's group commit should run
 * (now: at once, a mail was sent: a crash must not send it again). */
typedef void (*onboard_queued_fn)(void *userdata, bool now);
/* A directory answer said the application's reads or writes are spent
 * over every tenant (x-ms-throttle-scope Application, GRAPH.md §4). */
typedef void (*onboard_app_throttled_fn)(void *userdata, enum graph_budget budget,
					 uint64_t wait_ms);

struct onboard;

int onboard_create(uv_loop_t *loop, struct store *store, struct http *http, struct auth *auth,
		   const struct onboard_options *opt, onboard_lookup_fn lookup_done,
		   onboard_queued_fn queued, void *userdata, struct onboard **ret);
/* Claims still held are put back to pending in the store. */
void onboard_destroy(struct onboard *o);
void onboard_reconfigure(struct onboard *o, const struct onboard_options *opt);
void onboard_set_auth(struct onboard *o, struct auth *auth);
void onboard_set_app_throttled_fn(struct onboard *o, onboard_app_throttled_fn fn,
				  void *userdata);
/* Another tenant's answer spent the application's budget: this tenant's
 * lanes that draw on it pause for wait_ms and slow. */
void onboard_slow(struct onboard *o, enum graph_budget budget, uint64_t wait_ms);

/* The tenant sends our own invitation mail ([mail] with a template). */
bool onboard_mail_on(const struct onboard *o);
/* Lookups are on, and not refused. */
bool onboard_lookups_on(const struct onboard *o);
/* [queue] replication_delay: how long a lost attempt's guest may stay
 * unreadable (GRAPH.md §6). */
uint64_t onboard_replication_delay_ms(const struct onboard *o);
/* Look c's address up (taken over until lookup_done gives it back). */
void onboard_lookup(struct onboard *o, struct store_claim *c);
/* Claims held for lookups (queued or in flight). */
size_t onboard_held(const struct onboard *o);
/* Requests on the wire. */
unsigned onboard_in_flight(const struct onboard *o);
/* Queued lookups of job_id (0: every job) that are not on the wire go back
 * to pending in the store. */
int onboard_forget_job(struct onboard *o, int64_t job_id);
/* Group additions or tracking reads may be due (a flush wrote some, an
 * admin asked). */
void onboard_kick(struct onboard *o);
/* No new request from now on (shutdown). */
void onboard_stop(struct onboard *o);
void onboard_get_stats(const struct onboard *o, struct onboard_stats *ret);
