/* SPDX-License-Identifier: MIT */
/*
 * onboard-private: what the onboard's files share (onboard.c: the lanes'
 * machinery and the object; onboard-dir.c: lookups, group additions and
 * acceptance tracking; onboard-mail.c: our own invitation mail). The
 * lanes' helpers are static inline here, as store-private.h's are: the
 * split adds no global symbol but the four pumps.
 */
#pragma once

#include "onboard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "graph.h"
#include "http.h"
#include "log.h"
#include "ratelimit.h"
#include "store.h"
#include "timeutil.h"

#define READ_AGAIN_MS 60000u /* a tracking read that failed: again after at most this */
#define THROTTLE_DEFAULT_MS 3000u
#define LOOKUP_TRIES 4u               /* transient failures of one lookup before it gives up */
#define REPLICATION_WINDOW_MS 600000u /* a 404 addition is tried again this long (SPEC §8) */
#define LEASE_MS 300000u              /* a claimed step or read is not claimed again before */
#define POLL_MS 30000u                /* look at the store this often when nothing is known due */
#define BUSY_RETRY_MS 50u

/* One kind of request: its limiter, in-flight count, pause and timer. */
struct lane {
	struct onboard *o;
	const char *what; /* "lookups", ... for messages */
	struct ratelimit rl;
	unsigned in_flight;
	uint64_t paused_until; /* mono ms */
	unsigned throttle_streak;
	uv_timer_t *timer;
	void (*pump)(struct lane *l);
	enum graph_budget budget; /* whose 429 "Application" slows every tenant's */
};

struct pending_lookup {
	struct store_claim *claim;
	unsigned tries;
	uint64_t due; /* mono ms */
};

struct onboard {
	uv_loop_t *loop;
	struct store *store;
	struct http *http;
	struct auth *auth;
	char *name;
	char *graph_url;
	char *batch_url;
	int64_t tenant_id;
	struct config_onboard conf;
	unsigned concurrency, max_attempts;
	uint64_t request_timeout_ms;
	bool lookups_denied, groups_denied_said, track_denied_said;
	onboard_app_throttled_fn app_throttled; /* NULL: none told */
	void *app_throttled_userdata;
	bool stopped;
	onboard_lookup_fn lookup_done;
	onboard_queued_fn queued;
	void *userdata;

	struct lane lookups, groups, track, mail;
	/* [mail]: copies of what the options borrowed are not kept: they
	 * outlive us (the daemon's configuration and credential) */
	const struct config_mail *mail_conf;
	const struct mailmsg_template *template;
	const char *smtp_password;
	char *tenant_label;
	char *sendmail_url;
	uint64_t day_count, day_oldest; /* mails the mailbox sent in the last 24 h */
	bool day_known;
	bool mail_denied_said;
	/* lookups waiting for a token, a slot or their retry time (FIFO) */
	struct pending_lookup *q;
	size_t q_len, q_cap;
	size_t lookups_in_flight; /* claims held by requests */
	struct onboard_stats stats;
	unsigned rand_state;
	struct request *live; /* requests on the wire */
};

struct request {
	struct lane *lane;           /* NULL: the onboard was destroyed meanwhile (orphaned) */
	struct request *prev, *next; /* the onboard's requests on the wire */
	uint64_t token;
	struct pending_lookup lookup; /* lookups */
	struct store_step *step;      /* group additions */
	struct store_track *reads;    /* tracking */
	size_t n_reads;
	struct store_mail *mail; /* our mail */
};

static inline void live_add(struct onboard *o, struct request *rq)
{
	rq->prev = NULL;
	rq->next = o->live;
	if (o->live)
		o->live->prev = rq;
	o->live = rq;
}

/* The request's answer came: off the list. False when it is orphaned (its
 * onboard is gone: only free what it holds). */
static inline bool live_remove(struct request *rq)
{
	if (!rq->lane)
		return false;
	struct onboard *o = rq->lane->o;
	if (rq->prev)
		rq->prev->next = rq->next;
	else
		o->live = rq->next;
	if (rq->next)
		rq->next->prev = rq->prev;
	return true;
}

static inline uint64_t backoff_ms(struct onboard *o, unsigned attempts)
{
	return ratelimit_backoff_ms(&o->rand_state, attempts);
}

static inline void on_lane_timer(uv_timer_t *timer)
{
	struct lane *l = timer->data;
	l->pump(l);
}

static inline void lane_arm(struct lane *l, uint64_t delay_ms)
{
	uint64_t now = uv_now(l->o->loop);
	if (uv_is_active((uv_handle_t *)l->timer) &&
	    uv_timer_get_due_in(l->timer) + now <= now + delay_ms)
		return;
	uv_timer_start(l->timer, on_lane_timer, delay_ms, 0);
}

/* Pause the lane for wait ms and cut its rate; true when that moved its
 * pause further. */
static inline bool lane_pause(struct lane *l, uint64_t wait)
{
	uint64_t now = uv_now(l->o->loop), until = now + wait;
	ratelimit_throttled(&l->rl, now);
	if (until <= l->paused_until)
		return false;
	l->paused_until = until;
	ratelimit_drain(&l->rl, until);
	return true;
}

/* A 429 (or 503 with Retry-After) on this lane: pause it and cut its rate;
 * one naming the application's budget slows every tenant's (the tenant,
 * then the daemon, tell the others: onboard_slow). */
static inline uint64_t lane_throttled(struct lane *l, const struct graph_dir_result *g)
{
	struct onboard *o = l->o;
	uint64_t wait = g->has_retry_after
	                    ? g->retry_after_ms
	                    : THROTTLE_DEFAULT_MS
	                          << (l->throttle_streak < 5 ? l->throttle_streak : 5);
	l->throttle_streak++;
	if (lane_pause(l, wait))
		log_info("Graph throttled %s of tenant '%s' (HTTP %ld%s): pausing them for %llu ms",
		         l->what, o->name, g->http_status,
		         g->throttle_scope == GRAPH_THROTTLE_APPLICATION ? ", the whole application"
		                                                         : "",
		         (unsigned long long)wait);
	if (g->throttle_scope == GRAPH_THROTTLE_APPLICATION && l->budget != GRAPH_BUDGET_NONE &&
	    o->app_throttled)
		o->app_throttled(o->app_throttled_userdata, l->budget, wait);
	return wait;
}


/* The lane may send now: not paused, a slot free, a token (n of them). 0,
 * or the ms to wait (the timer is armed for it); -1: no slot (an answer pumps). */
static inline int64_t lane_ready(struct lane *l, unsigned n)
{
	struct onboard *o = l->o;
	uint64_t now = uv_now(o->loop);
	if (o->stopped)
		return -1;
	if (now < l->paused_until) {
		lane_arm(l, l->paused_until - now);
		return (int64_t)(l->paused_until - now);
	}
	if (l->in_flight >= o->concurrency)
		return -1;
	uint64_t wait = n > 1 ? ratelimit_take_n(&l->rl, n, now) : ratelimit_take(&l->rl, now);
	if (wait > 0) {
		lane_arm(l, wait);
		return (int64_t)wait;
	}
	return 0;
}

/* Nothing was claimed (r: the claim's result): look again when the store
 * is free, when the next one is due (have_due 1: at due, wall ms), or at
 * the next poll, whichever is first. */
static inline void lane_rest(struct lane *l, int r, int have_due, uint64_t due)
{
	if (r < 0) {
		lane_arm(l, r == -EBUSY ? BUSY_RETRY_MS : 1000);
		return;
	}
	uint64_t wall = time_now_ms();
	uint64_t wait = have_due == 1 ? (due > wall ? due - wall : 1) : POLL_MS;
	lane_arm(l, wait < POLL_MS ? wait : POLL_MS);
}

static inline void lane_refund(struct lane *l, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		ratelimit_refund(&l->rl);
}

/* A step lane's claim of one (its token taken) came back empty or failed
 * (r): the token back, and rest until the kind's next step is due. */
static inline void lane_claimed_none(struct lane *l, int r, enum store_step_kind kind)
{
	struct onboard *o = l->o;
	lane_refund(l, 1);
	uint64_t due = 0;
	lane_rest(l, r, r < 0 ? 0 : store_steps_next_due(o->store, o->tenant_id, kind, &due), due);
}

/* The token, or NULL after asking for one (the tenant pumps us again). */
static inline const char *auth_or_start(struct onboard *o)
{
	const char *h = auth_header(o->auth);
	if (!h)
		auth_start(o->auth);
	return h;
}

static inline void queued(struct onboard *o)
{
	if (o->queued)
		o->queued(o->userdata, false);
}

/* A failed step's reason: the answer's code and message (none: when it
 * has no message), for group additions and mails alike. */
static inline void step_reason(char *why, size_t n, const struct graph_dir_result *g, const char *none)
{
	snprintf(why, n, "%s%s%.500s", g->error_code ? g->error_code : "",
	         g->error_code ? ": " : "", g->error_message ? g->error_message : none);
}

/* Each lane's pump (onboard-dir.c, onboard-mail.c), run by its timer and
 * by onboard_kick. */
void onboard_pump_lookups(struct lane *l);
void onboard_pump_groups(struct lane *l);
void onboard_pump_track(struct lane *l);
void onboard_pump_mail(struct lane *l);
