/* SPDX-License-Identifier: MIT */
#include "onboard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "graph.h"
#include "http.h"
#include "log.h"
#include "mailmsg.h"
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

static void live_add(struct onboard *o, struct request *rq)
{
	rq->prev = NULL;
	rq->next = o->live;
	if (o->live)
		o->live->prev = rq;
	o->live = rq;
}

/* The request's answer came: off the list. False when it is orphaned (its
 * onboard is gone: only free what it holds). */
static bool live_remove(struct request *rq)
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

static uint64_t backoff_ms(struct onboard *o, unsigned attempts)
{
	return ratelimit_backoff_ms(&o->rand_state, attempts);
}

static void on_lane_timer(uv_timer_t *timer)
{
	struct lane *l = timer->data;
	l->pump(l);
}

static void lane_arm(struct lane *l, uint64_t delay_ms)
{
	uint64_t now = uv_now(l->o->loop);
	if (uv_is_active((uv_handle_t *)l->timer) &&
	    uv_timer_get_due_in(l->timer) + now <= now + delay_ms)
		return;
	uv_timer_start(l->timer, on_lane_timer, delay_ms, 0);
}

/* Pause the lane for wait ms and cut its rate; true when that moved its
 * pause further. */
static bool lane_pause(struct lane *l, uint64_t wait)
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
static uint64_t lane_throttled(struct lane *l, const struct graph_dir_result *g)
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

void onboard_set_app_throttled_fn(struct onboard *o, onboard_app_throttled_fn fn,
                                  void *userdata)
{
	o->app_throttled = fn;
	o->app_throttled_userdata = userdata;
}

void onboard_slow(struct onboard *o, enum graph_budget budget, uint64_t wait_ms)
{
	struct lane *lanes[] = {&o->lookups, &o->groups, &o->track};
	for (size_t i = 0; i < sizeof(lanes) / sizeof(lanes[0]); i++)
		if (lanes[i]->budget == budget && lane_pause(lanes[i], wait_ms)) {
			log_info("Tenant '%s' pauses its %s for %llu ms: Graph throttled the "
			         "application's %s as a whole",
			         o->name, lanes[i]->what, (unsigned long long)wait_ms,
			         budget == GRAPH_BUDGET_WRITES ? "writes" : "reads");
			lane_arm(lanes[i], wait_ms);
		}
}

/* The lane may send now: not paused, a slot free, a token (n of them). 0,
 * or the ms to wait (the timer is armed for it); -1: no slot (an answer pumps). */
static int64_t lane_ready(struct lane *l, unsigned n)
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
static void lane_rest(struct lane *l, int r, int have_due, uint64_t due)
{
	if (r < 0) {
		lane_arm(l, r == -EBUSY ? BUSY_RETRY_MS : 1000);
		return;
	}
	uint64_t wall = time_now_ms();
	uint64_t wait = have_due == 1 ? (due > wall ? due - wall : 1) : POLL_MS;
	lane_arm(l, wait < POLL_MS ? wait : POLL_MS);
}

static void lane_refund(struct lane *l, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		ratelimit_refund(&l->rl);
}

/* A step lane's claim of one (its token taken) came back empty or failed
 * (r): the token back, and rest until the kind's next step is due. */
static void lane_claimed_none(struct lane *l, int r, enum store_step_kind kind)
{
	struct onboard *o = l->o;
	lane_refund(l, 1);
	uint64_t due = 0;
	lane_rest(l, r, r < 0 ? 0 : store_steps_next_due(o->store, o->tenant_id, kind, &due), due);
}

/* The token, or NULL after asking for one (the tenant pumps us again). */
static const char *auth_or_start(struct onboard *o)
{
	const char *h = auth_header(o->auth);
	if (!h)
		auth_start(o->auth);
	return h;
}

static void queued(struct onboard *o)
{
	if (o->queued)
		o->queued(o->userdata, false);
}

/* ---- lookups ---------------------------------------------------------- */

static int q_push(struct onboard *o, struct pending_lookup p, bool front)
{
	if (o->q_len == o->q_cap) {
		size_t cap = o->q_cap ? o->q_cap * 2 : 32;
		struct pending_lookup *q = realloc(o->q, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		o->q = q;
		o->q_cap = cap;
	}
	if (front) {
		memmove(o->q + 1, o->q, o->q_len * sizeof(*o->q));
		o->q[0] = p;
	} else {
		o->q[o->q_len] = p;
	}
	o->q_len++;
	return 0;
}

static void lookup_give_back(struct onboard *o, struct store_claim *c,
                             enum onboard_lookup_outcome outcome, const struct graph_user *user,
                             const char *error)
{
	o->lookup_done(o->userdata, c, outcome, user, error);
}

static void pump_lookups(struct lane *l);

static void on_lookup_answer(void *userdata, const struct http_response *resp)
{
	struct request *rq = userdata;
	if (!live_remove(rq)) {
		store_claim_free(rq->lookup.claim); /* stays claimed: looked up after a restart */
		free(rq);
		return;
	}
	struct lane *l = rq->lane;
	struct onboard *o = l->o;
	struct pending_lookup p = rq->lookup;
	uint64_t token = rq->token;
	struct graph_dir_result g;
	l->in_flight--;
	o->lookups_in_flight--;
	free(rq);
	if (resp->error == -ECANCELED || graph_lookup_classify(resp, &g) < 0) {
		/* shutting down (or out of memory): the row stays claimed in the
		 * store and is looked up again after the restart */
		if (resp->error != -ECANCELED)
			lookup_give_back(o, p.claim, ONBOARD_LOOKUP_FAILED, NULL, "out of memory");
		else
			store_claim_free(p.claim);
		return;
	}
	uint64_t now = uv_now(o->loop);
	p.tries++;
	switch (g.outcome) {
	case GRAPH_DIR_OK:
		l->throttle_streak = 0;
		o->stats.lookups++;
		o->stats.lookups_found += g.found;
		lookup_give_back(o, p.claim, g.found ? ONBOARD_LOOKUP_FOUND : ONBOARD_LOOKUP_NONE,
		                 g.found ? &g.user : NULL, NULL);
		break;
	case GRAPH_DIR_DENIED:
		if (!o->lookups_denied)
			log_error("Graph refused to look users up for tenant '%s' (%s: %s): the "
			          "application needs User.Read.All. Invitations go on without "
			          "lookups (no --skip-existing, no check after a crash)",
			          o->name, g.error_code ? g.error_code : "403",
			          g.error_message ? g.error_message : "");
		o->lookups_denied = true;
		lookup_give_back(o, p.claim, ONBOARD_LOOKUP_OFF, NULL, NULL);
		break;
	case GRAPH_DIR_THROTTLED:
		p.due = now + lane_throttled(l, &g);
		p.tries--; /* not the row's fault */
		if (q_push(o, p, true) < 0)
			lookup_give_back(o, p.claim, ONBOARD_LOOKUP_FAILED, NULL, "out of memory");
		break;
	case GRAPH_DIR_AUTH:
		auth_reject(o->auth, token);
		/* tried again with a new token */
		__attribute__((fallthrough));
	case GRAPH_DIR_TRANSIENT:
	case GRAPH_DIR_NOT_FOUND:
	case GRAPH_DIR_FAILED:
		if (g.outcome != GRAPH_DIR_FAILED && p.tries < LOOKUP_TRIES) {
			p.due = now + backoff_ms(o, p.tries);
			if (q_push(o, p, false) == 0)
				break;
		}
		{
			char why[512];
			snprintf(why, sizeof(why), "lookup failed: %s%s%.400s",
			         g.error_code ? g.error_code : "", g.error_code ? ": " : "",
			         g.error_message ? g.error_message : "no answer");
			lookup_give_back(o, p.claim, ONBOARD_LOOKUP_FAILED, NULL, why);
		}
		break;
	}
	graph_dir_result_clear(&g);
	pump_lookups(l);
}

static void pump_lookups(struct lane *l)
{
	struct onboard *o = l->o;
	while (o->q_len > 0) {
		uint64_t now = uv_now(o->loop);
		/* the first one due (retries wait behind their time) */
		size_t i = 0;
		uint64_t soonest = UINT64_MAX;
		for (; i < o->q_len && o->q[i].due > now; i++)
			if (o->q[i].due < soonest)
				soonest = o->q[i].due;
		if (i == o->q_len) {
			lane_arm(l, soonest - now);
			return;
		}
		if (!o->conf.lookup || o->lookups_denied) {
			struct store_claim *c = o->q[i].claim;
			memmove(o->q + i, o->q + i + 1, (o->q_len - i - 1) * sizeof(*o->q));
			o->q_len--;
			lookup_give_back(o, c, ONBOARD_LOOKUP_OFF, NULL, NULL);
			continue;
		}
		const char *auth = auth_or_start(o);
		if (!auth)
			return;
		if (lane_ready(l, 1) != 0)
			return;
		struct pending_lookup p = o->q[i];
		char *url = graph_lookup_url(o->graph_url, p.claim->email);
		struct request *rq = url ? calloc(1, sizeof(*rq)) : NULL;
		if (!rq) {
			free(url);
			lane_refund(l, 1);
			lane_arm(l, 1000);
			return;
		}
		rq->lane = l;
		rq->lookup = p;
		rq->token = auth_generation(o->auth);
		struct http_post_spec spec = {
		    .url = url,
		    .content_type = "application/json",
		    .authorization = auth,
		    .timeout_ms = o->request_timeout_ms,
		    .get = 1,
		};
		int r = http_post(o->http, &spec, NULL, 0, on_lookup_answer, rq);
		free(url);
		if (r < 0) {
			free(rq);
			lane_refund(l, 1);
			lane_arm(l, 1000);
			return;
		}
		memmove(o->q + i, o->q + i + 1, (o->q_len - i - 1) * sizeof(*o->q));
		o->q_len--;
		live_add(o, rq);
		l->in_flight++;
		o->lookups_in_flight++;
	}
}

void onboard_lookup(struct onboard *o, struct store_claim *c)
{
	struct pending_lookup p = {.claim = c, .due = 0};
	if (q_push(o, p, false) < 0) {
		lookup_give_back(o, c, ONBOARD_LOOKUP_OFF, NULL, NULL);
		return;
	}
	lane_arm(&o->lookups, 0);
}

bool onboard_lookups_on(const struct onboard *o)
{
	return o->conf.lookup && !o->lookups_denied;
}

uint64_t onboard_replication_delay_ms(const struct onboard *o)
{
	return o->conf.replication_delay_ms;
}

size_t onboard_held(const struct onboard *o)
{
	return o->q_len + o->lookups_in_flight;
}

unsigned onboard_in_flight(const struct onboard *o)
{
	return o->lookups.in_flight + o->groups.in_flight + o->track.in_flight + o->mail.in_flight;
}

int onboard_forget_job(struct onboard *o, int64_t job_id)
{
	size_t n = 0;
	int64_t *ids = o->q_len ? malloc(o->q_len * sizeof(*ids)) : NULL;
	if (o->q_len && !ids)
		return -ENOMEM;
	for (size_t i = 0; i < o->q_len; i++)
		if (job_id == 0 || o->q[i].claim->job_id == job_id)
			ids[n++] = o->q[i].claim->row_id;
	int r = store_rows_release(o->store, ids, n);
	free(ids);
	if (r < 0)
		return r; /* kept, and looked up */
	size_t kept = 0;
	for (size_t i = 0; i < o->q_len; i++) {
		struct store_claim *c = o->q[i].claim;
		if (job_id == 0 || c->job_id == job_id) {
			store_claim_sent(o->store, c);
			store_claim_free(c);
		} else {
			o->q[kept++] = o->q[i];
		}
	}
	o->q_len = kept;
	return 0;
}

/* ---- group additions -------------------------------------------------- */

static void pump_groups(struct lane *l);

/* An addition's outcome, queued for the group commit. */
/* A failed step's reason: the answer's code and message (none: when it
 * has no message), for group additions and mails alike. */
static void step_reason(char *why, size_t n, const struct graph_dir_result *g, const char *none)
{
	snprintf(why, n, "%s%s%.500s", g->error_code ? g->error_code : "",
	         g->error_code ? ": " : "", g->error_message ? g->error_message : none);
}

static void group_settle(struct onboard *o, struct lane *l, struct store_step *st,
                         struct graph_dir_result *g, uint64_t token)
{
	uint64_t now = time_now_ms();
	int state = STEP_PENDING;
	unsigned attempts = st->attempts + 1;
	uint64_t next = now;
	char why[600];
	why[0] = '\0';
	switch (g->outcome) {
	case GRAPH_DIR_OK:
		l->throttle_streak = 0;
		state = STEP_DONE;
		o->stats.group_additions++;
		break;
	case GRAPH_DIR_NOT_FOUND:
		/* not replicated yet (GRAPH.md §6): again, with backoff, for a while */
		if (now - st->first_at < REPLICATION_WINDOW_MS) {
			next = now + backoff_ms(o, attempts);
		} else {
			state = STEP_FAILED;
			snprintf(why, sizeof(why),
			         "not found after 10 minutes of tries: %s: %.400s",
			         g->error_code ? g->error_code : "404",
			         g->error_message ? g->error_message : "");
		}
		break;
	case GRAPH_DIR_DENIED:
		if (!o->groups_denied_said)
			log_error("Graph refused a group member addition for tenant '%s' (%s: %s): "
			          "the application needs GroupMember.ReadWrite.All",
			          o->name, g->error_code ? g->error_code : "403",
			          g->error_message ? g->error_message : "");
		o->groups_denied_said = true;
		state = STEP_FAILED;
		snprintf(why, sizeof(why),
		         "%s: %.400s (the application needs GroupMember.ReadWrite.All)",
		         g->error_code ? g->error_code : "403",
		         g->error_message ? g->error_message : "");
		break;
	case GRAPH_DIR_FAILED:
		state = STEP_FAILED;
		step_reason(why, sizeof(why), g, "");
		break;
	case GRAPH_DIR_THROTTLED:
		attempts = st->attempts;
		next = now + lane_throttled(l, g);
		break;
	case GRAPH_DIR_AUTH:
		auth_reject(o->auth, token);
		attempts = st->attempts;
		break;
	case GRAPH_DIR_TRANSIENT:
		if (attempts >= o->max_attempts) {
			state = STEP_FAILED;
			step_reason(why, sizeof(why), g, "no answer");
		} else {
			next = now + backoff_ms(o, attempts);
		}
		break;
	}
	if (state == STEP_FAILED) {
		o->stats.group_failures++;
		log_debug("Group addition of row %lld (line %u) to %s failed: %s",
		          (long long)st->row_id, st->line, st->arg, why);
	}
	int r = store_step_finish(o->store, st->row_id, STEP_GROUP, st->arg, state, attempts, next,
	                          state == STEP_FAILED ? why : NULL, NULL);
	if (r < 0)
		log_error("Failed to queue a group addition's outcome: %s (it is made again)",
		          strerror(-r));
	queued(o);
}

static void on_group_answer(void *userdata, const struct http_response *resp)
{
	struct request *rq = userdata;
	if (!live_remove(rq)) {
		store_step_free(rq->step); /* leased: made after the lease */
		free(rq);
		return;
	}
	struct lane *l = rq->lane;
	struct onboard *o = l->o;
	struct graph_dir_result g;
	l->in_flight--;
	bool cancelled = resp->error == -ECANCELED;
	if (!cancelled && graph_group_add_classify(resp, &g) == 0) {
		group_settle(o, l, rq->step, &g, rq->token);
		graph_dir_result_clear(&g);
	}
	store_step_free(rq->step);
	free(rq);
	if (!cancelled) /* shutting down: no new request */
		pump_groups(l);
}

static int send_group(struct onboard *o, struct lane *l, struct store_step *st, const char *auth)
{
	char *url = graph_group_members_url(o->graph_url, st->arg);
	char *body = NULL;
	size_t len = 0;
	struct request *rq = calloc(1, sizeof(*rq));
	int r = url && rq ? graph_group_add_body(o->graph_url, st->user_id, &body, &len) : -ENOMEM;
	if (r < 0)
		goto fail;
	rq->lane = l;
	rq->step = st;
	rq->token = auth_generation(o->auth);
	struct http_post_spec spec = {
	    .url = url,
	    .content_type = "application/json",
	    .authorization = auth,
	    .timeout_ms = o->request_timeout_ms,
	};
	r = http_post(o->http, &spec, body, len, on_group_answer, rq);
	body = NULL;
	if (r < 0)
		goto fail;
	free(url);
	live_add(o, rq);
	l->in_flight++;
	return 0;
fail:
	free(url);
	free(body);
	free(rq);
	return r;
}

static void pump_groups(struct lane *l)
{
	struct onboard *o = l->o;
	for (;;) {
		const char *auth = auth_or_start(o);
		if (!auth || lane_ready(l, 1) != 0)
			return;
		struct store_step **steps = NULL;
		size_t n = 0;
		int r = store_steps_claim(o->store, o->tenant_id, STEP_GROUP, time_now_ms(),
		                          LEASE_MS, 1, &steps, &n);
		if (r < 0 || n == 0) {
			lane_claimed_none(l, r, STEP_GROUP);
			return;
		}
		struct store_step *st = steps[0];
		free(steps);
		if (!st->user_id) {
			/* nobody to add: the row's user id is unknown */
			store_step_finish(o->store, st->row_id, STEP_GROUP, st->arg, STEP_FAILED,
			                  st->attempts, 0, "the row has no user id", NULL);
			store_step_free(st);
			queued(o);
			continue;
		}
		r = send_group(o, l, st, auth);
		if (r < 0) {
			log_error("Failed to start a group addition: %s", strerror(-r));
			store_step_free(st); /* leased: due again after the lease */
			lane_refund(l, 1);
			lane_arm(l, 1000);
			return;
		}
	}
}

/* ---- acceptance tracking ---------------------------------------------- */

static void pump_track(struct lane *l);

static void track_settle(struct onboard *o, struct lane *l, const struct store_track *t,
                         const struct graph_dir_result *g, uint64_t token)
{
	uint64_t now = time_now_ms();
	uint64_t accepted = 0, next;
	uint64_t end = t->invited_at + (uint64_t)t->track_days * 86400000u;
	next = now + o->conf.track_interval_ms;
	switch (g->outcome) {
	case GRAPH_DIR_OK:
		o->stats.tracking_reads++;
		if (g->found && g->user.external_state &&
		    strcmp(g->user.external_state, "Accepted") == 0) {
			accepted = g->user.state_changed_ms ? g->user.state_changed_ms : now;
			o->stats.accepted++;
		} else if (g->found && !g->user.external_state) {
			next = 0; /* not an invited guest (a member): nothing to track */
		}
		break;
	case GRAPH_DIR_NOT_FOUND: /* not replicated yet, or deleted */
		break;
	case GRAPH_DIR_DENIED:
		if (!o->track_denied_said)
			log_error(
			    "Graph refused to read guests of tenant '%s' (%s: %s): acceptance "
			    "tracking needs User.Read.All",
			    o->name, g->error_code ? g->error_code : "403",
			    g->error_message ? g->error_message : "");
		o->track_denied_said = true;
		break;
	case GRAPH_DIR_THROTTLED:
		next = now + lane_throttled(l, g);
		break;
	case GRAPH_DIR_AUTH:
		auth_reject(o->auth, token);
		__attribute__((fallthrough));
	default: /* transient, a refusal: read again later */
		if (o->conf.track_interval_ms > READ_AGAIN_MS)
			next = now + READ_AGAIN_MS;
		break;
	}
	if (!accepted && next && next > end)
		next = 0; /* track_days are over */
	int r = store_track_finish(o->store, t->row_id, t->job_id, accepted, next);
	if (r < 0)
		log_error("Failed to queue a tracking read: %s", strerror(-r));
}

static void on_track_answer(void *userdata, const struct http_response *resp)
{
	struct request *rq = userdata;
	if (!live_remove(rq)) {
		store_track_free(rq->reads, rq->n_reads);
		free(rq);
		return;
	}
	struct lane *l = rq->lane;
	struct onboard *o = l->o;
	l->in_flight--;
	bool cancelled = resp->error == -ECANCELED;
	if (!cancelled) {
		struct graph_dir_result res[GRAPH_BATCH_MAX];
		memset(res, 0, sizeof(res));
		int r = graph_track_batch_classify(resp, rq->n_reads, res);
		if (r == GRAPH_BATCH_WHOLE) {
			struct graph_dir_result whole;
			if (graph_read_classify(resp, &whole) == 0) {
				for (size_t i = 0; i < rq->n_reads; i++)
					track_settle(o, l, &rq->reads[i], &whole, rq->token);
				graph_dir_result_clear(&whole);
			}
		} else if (r == 0) {
			for (size_t i = 0; i < rq->n_reads; i++) {
				track_settle(o, l, &rq->reads[i], &res[i], rq->token);
				graph_dir_result_clear(&res[i]);
			}
		}
		queued(o);
	}
	store_track_free(rq->reads, rq->n_reads);
	free(rq);
	if (!cancelled)
		pump_track(l);
}

static void pump_track(struct lane *l)
{
	struct onboard *o = l->o;
	if (o->conf.track_days == 0 && !o->conf.lookup)
		return; /* reads need User.Read.All: nothing to do */
	for (;;) {
		const char *auth = auth_or_start(o);
		if (!auth)
			return;
		unsigned n_want = GRAPH_BATCH_MAX;
		if (n_want > l->rl.burst)
			n_want = l->rl.burst >= 1 ? (unsigned)l->rl.burst : 1;
		struct store_track *v = NULL;
		size_t n = 0;
		if (l->in_flight >= o->concurrency || o->stopped)
			return;
		/* claim first, then take as many tokens as there are reads */
		uint64_t now = uv_now(o->loop);
		if (now < l->paused_until) {
			lane_arm(l, l->paused_until - now);
			return;
		}
		uint64_t wait = ratelimit_take_n(&l->rl, n_want, now);
		if (wait > 0) {
			lane_arm(l, wait);
			return;
		}
		int r = store_track_claim(o->store, o->tenant_id, time_now_ms(), LEASE_MS, n_want,
		                          &v, &n);
		lane_refund(l, n_want - (unsigned)(r == 0 ? n : 0));
		if (r < 0 || n == 0) {
			uint64_t due = 0;
			lane_rest(l, r,
			          r < 0 ? 0 : store_track_next_due(o->store, o->tenant_id, &due),
			          due);
			return;
		}
		const char *ids[GRAPH_BATCH_MAX];
		for (size_t i = 0; i < n; i++)
			ids[i] = v[i].user_id;
		char *body = NULL;
		size_t len = 0;
		struct request *rq = calloc(1, sizeof(*rq));
		r = rq ? graph_track_batch_body(ids, n, &body, &len) : -ENOMEM;
		if (r == 0) {
			rq->lane = l;
			rq->reads = v;
			rq->n_reads = n;
			rq->token = auth_generation(o->auth);
			struct http_post_spec spec = {
			    .url = o->batch_url,
			    .content_type = "application/json",
			    .authorization = auth,
			    .timeout_ms = o->request_timeout_ms,
			};
			r = http_post(o->http, &spec, body, len, on_track_answer, rq);
			body = NULL;
		}
		if (r < 0) {
			log_error("Failed to start a tracking read: %s", strerror(-r));
			free(body);
			free(rq);
			store_track_free(v, n); /* leased: due again after the lease */
			lane_arm(l, 1000);
			return;
		}
		live_add(o, rq);
		l->in_flight++;
	}
}

/* ---- our own invitation mail ([mail]) ----------------------------------- */

#define DAY_MS 86400000u
#define MAIL_CONCURRENCY 4u /* Graph's Outlook: 4 concurrent requests per app and mailbox */

static bool mail_on(const struct onboard *o)
{
	return o->mail_conf && o->mail_conf->on && o->template;
}

static void pump_mail(struct lane *l);

static void mail_settle(struct onboard *o, struct lane *l, const struct store_mail *m,
                        struct graph_dir_result *g, uint64_t token)
{
	uint64_t now = time_now_ms();
	int state = STEP_PENDING;
	unsigned attempts = m->attempts + 1;
	uint64_t next = now;
	char why[600] = "";
	switch (g->outcome) {
	case GRAPH_DIR_OK:
		l->throttle_streak = 0;
		state = STEP_DONE;
		o->stats.mails_sent++;
		break;
	case GRAPH_DIR_DENIED:
		if (!o->mail_denied_said)
			log_error("The mailbox %s refused to send for tenant '%s' (%s: %s): %s",
			          o->mail_conf->sender, o->name, g->error_code ? g->error_code : "",
			          g->error_message ? g->error_message : "",
			          o->mail_conf->via == CONFIG_MAIL_GRAPH
			              ? "the application needs Mail.Send for this mailbox"
			              : "check smtp_user and the password");
		o->mail_denied_said = true;
		/* fall through: that mail fails with the reason */
		__attribute__((fallthrough));
	case GRAPH_DIR_FAILED:
	case GRAPH_DIR_NOT_FOUND:
		state = STEP_FAILED;
		step_reason(why, sizeof(why), g, "");
		break;
	case GRAPH_DIR_THROTTLED:
		attempts = m->attempts; /* the mailbox's limit, not the row's fault */
		next = now + lane_throttled(l, g);
		break;
	case GRAPH_DIR_AUTH:
		auth_reject(o->auth, token);
		attempts = m->attempts;
		break;
	case GRAPH_DIR_TRANSIENT:
		/* a 4.x.x or no answer: the mailbox pauses, the mail goes again */
		next = now + lane_throttled(l, g);
		if (attempts >= o->max_attempts) {
			state = STEP_FAILED;
			step_reason(why, sizeof(why), g, "no answer");
		}
		break;
	}
	if (state != STEP_DONE && o->day_count > 0)
		o->day_count--; /* counted when it went out */
	if (state == STEP_FAILED) {
		o->stats.mails_failed++;
		log_warning("The invitation mail of row %lld (line %u) to %s failed: %s",
		            (long long)m->row_id, m->line, m->email, why);
	}
	int r = store_mail_finish(o->store, m->row_id, state, attempts, next,
	                          state == STEP_FAILED ? why : NULL, o->mail_conf->sender);
	if (r < 0)
		log_error("Failed to queue a mail's outcome: %s (it may be sent again)",
		          strerror(-r));
	/* a sent mail is committed at once: a crash must not send it again */
	if (o->queued)
		o->queued(o->userdata, state == STEP_DONE);
}

static void on_mail_answer(void *userdata, const struct http_response *resp)
{
	struct request *rq = userdata;
	if (!live_remove(rq)) {
		store_mails_free(rq->mail, 1);
		free(rq);
		return;
	}
	struct lane *l = rq->lane;
	struct onboard *o = l->o;
	l->in_flight--;
	bool cancelled = resp->error == -ECANCELED;
	struct graph_dir_result g;
	int r = -ECANCELED;
	if (!cancelled)
		r = o->mail_conf->via == CONFIG_MAIL_GRAPH ? graph_sendmail_classify(resp, &g)
		                                           : mailmsg_smtp_classify(resp, &g);
	if (r == 0) {
		mail_settle(o, l, rq->mail, &g, rq->token);
		graph_dir_result_clear(&g);
	}
	store_mails_free(rq->mail, 1);
	free(rq);
	if (!cancelled)
		pump_mail(l);
}

/* The mailbox's rolling day: 0 when one more may go now, else the wall
 * ms until one may (the timer is armed). */
static uint64_t mail_day_wait(struct onboard *o, struct lane *l)
{
	uint64_t now = time_now_ms();
	if (!o->day_known || o->day_count >= o->mail_conf->daily_limit ||
	    (o->day_oldest && o->day_oldest + DAY_MS <= now)) {
		if (store_mail_sent(o->store, o->mail_conf->sender, now - DAY_MS, &o->day_count,
		                    &o->day_oldest) == 0)
			o->day_known = true;
		/* mails on their way count too */
		o->day_count += l->in_flight;
	}
	if (o->day_count < o->mail_conf->daily_limit) {
		o->stats.mail_wait_until_ms = 0;
		return 0;
	}
	uint64_t until = o->day_oldest ? o->day_oldest + DAY_MS : now + 60000;
	if (until <= now)
		until = now + 1000;
	if (!o->stats.mail_wait_until_ms)
		log_notice("The mailbox %s of tenant '%s' has sent its daily_limit of %u mails in "
		           "24 hours: mail waits until %llu ms from now",
		           o->mail_conf->sender, o->name, o->mail_conf->daily_limit,
		           (unsigned long long)(until - now));
	o->stats.mail_wait_until_ms = until;
	uint64_t wait = until - now;
	lane_arm(l, wait < POLL_MS ? wait : POLL_MS);
	return wait;
}

static int send_mail(struct onboard *o, struct lane *l, struct store_mail *m, const char *auth)
{
	struct mailmsg_values v = {
	    .display_name = m->display_name,
	    .email = m->email,
	    .redeem_url = m->redeem_url,
	    .message = m->message,
	    .inviter = m->inviter,
	    .tenant = o->tenant_label,
	};
	char *subject = NULL, *text = NULL, *body = NULL;
	size_t len = 0;
	struct request *rq = calloc(1, sizeof(*rq));
	int r = rq ? mailmsg_render(o->template, &v, &subject, &text) : -ENOMEM;
	if (r < 0)
		goto out;
	rq->lane = l;
	rq->mail = m;
	rq->token = auth ? auth_generation(o->auth) : 0;
	if (o->mail_conf->via == CONFIG_MAIL_GRAPH) {
		r = graph_sendmail_body(subject, text, m->email, m->display_name, &body, &len);
		if (r < 0)
			goto out;
		struct http_post_spec spec = {
		    .url = o->sendmail_url,
		    .content_type = "application/json",
		    .authorization = auth,
		    .timeout_ms = o->request_timeout_ms,
		};
		r = http_post(o->http, &spec, body, len, on_mail_answer, rq);
	} else {
		r = mailmsg_smtp_message(o->mail_conf->sender, m->email, m->display_name, subject,
		                         text, time_now_ms(), &body, &len);
		if (r < 0)
			goto out;
		struct http_smtp_spec spec = {
		    .url = o->mail_conf->smtp_url,
		    .user = o->mail_conf->smtp_user,
		    .password = o->smtp_password,
		    .mail_from = o->mail_conf->sender,
		    .rcpt = m->email,
		    .ca_file = o->mail_conf->ca_file,
		    .timeout_ms = o->request_timeout_ms,
		};
		r = http_smtp_send(o->http, &spec, body, len, on_mail_answer, rq);
	}
	body = NULL; /* taken over, whatever came */
	if (r == 0) {
		live_add(o, rq);
		l->in_flight++;
		o->day_count++;
		rq = NULL;
	}
out:
	free(subject);
	free(text);
	free(body);
	if (rq) {
		rq->mail = NULL;
		free(rq);
	}
	return r;
}

static void pump_mail(struct lane *l)
{
	struct onboard *o = l->o;
	if (!mail_on(o))
		return;
	for (;;) {
		const char *auth = NULL;
		if (o->mail_conf->via == CONFIG_MAIL_GRAPH && !(auth = auth_or_start(o)))
			return;
		if (o->stopped || l->in_flight >= MAIL_CONCURRENCY)
			return;
		if (mail_day_wait(o, l) > 0)
			return;
		if (lane_ready(l, 1) != 0)
			return;
		struct store_mail *m = NULL;
		size_t n = 0;
		int r =
		    store_mails_claim(o->store, o->tenant_id, time_now_ms(), LEASE_MS, 1, &m, &n);
		if (r < 0 || n == 0) {
			lane_claimed_none(l, r, STEP_MAIL);
			return;
		}
		r = send_mail(o, l, m, auth);
		if (r < 0) {
			log_error("Failed to start the invitation mail of row %lld: %s",
			          (long long)m->row_id, strerror(-r));
			store_mails_free(m, 1); /* leased: due again after the lease */
			lane_arm(l, 1000);
			return;
		}
	}
}

bool onboard_mail_on(const struct onboard *o)
{
	return mail_on(o);
}

/* ---- the object ------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
	free(h);
}

static int lane_init(struct onboard *o, struct lane *l, const char *what,
                     enum graph_budget budget, double rate, unsigned burst,
                     void (*pump)(struct lane *))
{
	l->o = o;
	l->what = what;
	l->budget = budget;
	l->pump = pump;
	ratelimit_init(&l->rl, rate, burst, uv_now(o->loop));
	l->timer = malloc(sizeof(*l->timer));
	if (!l->timer)
		return -ENOMEM;
	uv_timer_init(o->loop, l->timer);
	l->timer->data = l;
	return 0;
}

static unsigned burst_of(double rate, unsigned min)
{
	unsigned b = rate >= 1 ? (unsigned)(rate + 0.999) : 1;
	return b < min ? min : b;
}

static void apply(struct onboard *o, const struct onboard_options *opt)
{
	o->conf = opt->conf;
	o->mail_conf = opt->mail;
	o->template = opt->template;
	o->smtp_password = opt->smtp_password;
	o->day_known = false;
	o->concurrency = opt->concurrency ? opt->concurrency : 1;
	o->max_attempts = opt->max_attempts ? opt->max_attempts : 1;
	o->request_timeout_ms = opt->request_timeout_ms;
}

int onboard_create(uv_loop_t *loop, struct store *store, struct http *http, struct auth *auth,
                   const struct onboard_options *opt, onboard_lookup_fn lookup_done,
                   onboard_queued_fn queued_fn, void *userdata, struct onboard **ret)
{
	struct onboard *o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->loop = loop;
	o->store = store;
	o->http = http;
	o->auth = auth;
	o->tenant_id = opt->tenant_id;
	o->lookup_done = lookup_done;
	o->queued = queued_fn;
	o->userdata = userdata;
	o->rand_state = (unsigned)time_now_ms() ^ 0x9e3779b9u;
	if (!o->rand_state)
		o->rand_state = 1;
	apply(o, opt);
	o->name = strdup(opt->name);
	o->graph_url = strdup(opt->graph_url);
	o->batch_url = graph_batch_url(opt->graph_url);
	o->tenant_label = strdup(opt->tenant_label ? opt->tenant_label : opt->name);
	o->sendmail_url = opt->mail && opt->mail->on
	                      ? graph_sendmail_url(opt->graph_url, opt->mail->sender)
	                      : strdup("");
	int r = o->name && o->graph_url && o->batch_url && o->tenant_label && o->sendmail_url
	            ? 0
	            : -ENOMEM;
	if (r == 0)
		r = lane_init(o, &o->lookups, "lookups", GRAPH_BUDGET_READS, o->conf.lookup_rate,
		              burst_of(o->conf.lookup_rate, 1), pump_lookups);
	if (r == 0)
		r = lane_init(o, &o->groups, "group additions", GRAPH_BUDGET_WRITES,
		              o->conf.group_rate,
		              burst_of(o->conf.group_rate, 1), pump_groups);
	if (r == 0)
		r = lane_init(o, &o->track, "acceptance reads", GRAPH_BUDGET_READS,
		              o->conf.track_rate,
		              burst_of(o->conf.track_rate, GRAPH_BATCH_MAX), pump_track);
	if (r == 0)
		r = lane_init(o, &o->mail, "invitation mails", GRAPH_BUDGET_NONE,
		              o->mail_conf ? o->mail_conf->rate : 1, 1, pump_mail);
	if (r < 0) {
		onboard_destroy(o);
		return r;
	}
	*ret = o;
	return 0;
}

void onboard_reconfigure(struct onboard *o, const struct onboard_options *opt)
{
	bool was_on = o->conf.lookup;
	apply(o, opt);
	if (o->conf.lookup && !was_on)
		o->lookups_denied = false; /* try again */
	uint64_t now = uv_now(o->loop);
	ratelimit_set(&o->lookups.rl, o->conf.lookup_rate, burst_of(o->conf.lookup_rate, 1), now);
	ratelimit_set(&o->groups.rl, o->conf.group_rate, burst_of(o->conf.group_rate, 1), now);
	ratelimit_set(&o->track.rl, o->conf.track_rate,
	              burst_of(o->conf.track_rate, GRAPH_BATCH_MAX), now);
	if (o->mail_conf && o->mail_conf->on)
		ratelimit_set(&o->mail.rl, o->mail_conf->rate, 1, now);
	onboard_kick(o);
}

void onboard_set_auth(struct onboard *o, struct auth *auth)
{
	o->auth = auth;
	onboard_kick(o);
}

void onboard_kick(struct onboard *o)
{
	if (o->stopped)
		return;
	lane_arm(&o->lookups, 0);
	lane_arm(&o->groups, 0);
	lane_arm(&o->track, 0);
	lane_arm(&o->mail, 0);
}

void onboard_stop(struct onboard *o)
{
	o->stopped = true;
	onboard_forget_job(o, 0);
	uv_timer_stop(o->lookups.timer);
	uv_timer_stop(o->groups.timer);
	uv_timer_stop(o->track.timer);
	uv_timer_stop(o->mail.timer);
}

void onboard_get_stats(const struct onboard *o, struct onboard_stats *ret)
{
	*ret = o->stats;
}

void onboard_destroy(struct onboard *o)
{
	if (!o)
		return;
	onboard_forget_job(o, 0);
	/* what the store could not take back stays claimed there: after a
	 * restart those rows are looked up and sent */
	for (size_t i = 0; i < o->q_len; i++) {
		store_claim_sent(o->store, o->q[i].claim);
		store_claim_free(o->q[i].claim);
	}
	/* requests still on the wire (a tenant removed by a reload while it
	 * read): their answers find them orphaned */
	for (struct request *rq = o->live; rq; rq = rq->next)
		rq->lane = NULL;
	struct lane *lanes[] = {&o->lookups, &o->groups, &o->track, &o->mail};
	for (size_t i = 0; i < 4; i++)
		if (lanes[i]->timer)
			uv_close((uv_handle_t *)lanes[i]->timer, on_handle_closed);
	free(o->q);
	free(o->name);
	free(o->graph_url);
	free(o->batch_url);
	free(o->tenant_label);
	free(o->sendmail_url);
	free(o);
}
