/* SPDX-License-Identifier: MIT */
#include "tenant.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "buf.h"
#include "graph.h"
#include "http.h"
#include "log.h"
#include "onboard.h"
#include "ratelimit.h"
#include "store.h"
#include "timeutil.h"

#define FLUSH_INTERVAL_MS 100u /* group commit: results written at most this late */
#define FLUSH_BATCH 512u       /* ... or as soon as this many are waiting */
#define BUSY_RETRY_MS 50u      /* the store was locked (an import is running) */
#define THROTTLE_DEFAULT_MS 3000u /* 429 without Retry-After (Graph SDK's base) */

struct tenant {
	uv_loop_t *loop;
	struct store *store;
	struct http *http;
	struct auth *auth;
	int64_t id;
	char *name;
	char *invitations_url;
	char *batch_url;
	unsigned batch; /* rows per $batch; 1: single requests only */
	unsigned concurrency;
	unsigned max_attempts;
	uint64_t request_timeout_ms;
	struct ratelimit rl;

	/* claimed rows not yet sent, a FIFO */
	struct store_claim **ready;
	size_t ready_head, ready_len, ready_cap;

	unsigned in_flight;      /* requests on the wire */
	unsigned rows_in_flight; /* rows in them (a $batch carries up to 20) */
	uint64_t paused_until; /* mono ms */
	unsigned throttle_streak;
	char *blocked;
	bool idle; /* the last claim found nothing due and nothing is scheduled */
	bool held; /* sending waits for results to be written (slots_busy) */
	bool journal_failed; /* the last journal write failed (logged once) */
	bool draining;
	tenant_drained_fn drained;
	void *drained_userdata;
	tenant_blocked_fn on_blocked;
	void *on_blocked_userdata;
	tenant_app_throttled_fn on_app_throttled;
	void *on_app_throttled_userdata;
	struct ratelimit *app; /* borrowed; NULL: no app_rate */
	struct onboard *ob;    /* lookups, group additions, tracking (owned) */
	unsigned max_resends;
	unsigned mail_daily_limit; /* [mail]'s daily_limit; 0: no mail */
	bool mail_gated; /* the last refill found a day's mail budget waiting */
	uint64_t steps_seen;      /* store_steps_made() when the lanes were last kicked */
	uint64_t resend_check_at; /* wall ms: no resend is due before (0: look) */

	uv_timer_t *pump_timer;
	uv_timer_t *flush_timer;
	struct tenant_stats stats;
	unsigned rand_state;
};

struct attempt {
	struct tenant *tenant;
	struct store_claim *claim;               /* a single request */
	struct store_claim *batch[GRAPH_BATCH_MAX]; /* or a $batch of n_batch */
	size_t n_batch;
	uint64_t token; /* auth_generation() of the token sent, to match a 401 */
};

static void pump(struct tenant *t);

static void on_handle_closed(uv_handle_t *h)
{
	free(h);
}

static void on_pump_timer(uv_timer_t *timer)
{
	pump(timer->data);
}

static void arm_pump(struct tenant *t, uint64_t delay_ms)
{
	uint64_t due = uv_now(t->loop) + delay_ms;
	if (uv_is_active((uv_handle_t *)t->pump_timer) &&
	    uv_timer_get_due_in(t->pump_timer) + uv_now(t->loop) <= due)
		return; /* an earlier wake-up is set already */
	uv_timer_start(t->pump_timer, on_pump_timer, delay_ms, 0);
}

static void check_drained(struct tenant *t)
{
	if (!t->draining || t->in_flight > 0 || (t->ob && onboard_in_flight(t->ob) > 0) ||
	    store_queued(t->store) > 0 || !t->drained)
		return;
	tenant_drained_fn fn = t->drained;
	t->drained = NULL;
	fn(t->drained_userdata);
}

static void on_flush_timer(uv_timer_t *timer);

/* A row is at risk of being sent twice after a crash from its claim until its
 * result is on disk: in flight, or answered and held in memory only (its
 * journal write failed). Counting both against `concurrency` keeps a
 * crash's duplicates within concurrency (SPEC R1, tests/chaos/
 * test-chaos-kill.py). A journaled result waits for its group commit without
 * holding a slot. */
static bool slots_busy(struct tenant *t)
{
	return t->in_flight + store_at_risk(t->store) >= t->concurrency;
}

static void flush(struct tenant *t)
{
	int r = store_flush(t->store);
	if (r < 0 && r != -EBUSY)
		log_error("Failed to store %zu results in '%s': %s", store_queued(t->store),
			  store_path(t->store), strerror(-r));
	if (store_queued(t->store) > 0) {
		uv_timer_start(t->flush_timer, on_flush_timer,
			       r == 0 ? 0 : r == -EBUSY ? BUSY_RETRY_MS : 1000, 0);
		return;
	}
	/* group additions, mails or reads were made: due now (or soon) */
	if (r == 0 && t->ob && store_steps_made(t->store) != t->steps_seen) {
		t->steps_seen = store_steps_made(t->store);
		onboard_kick(t->ob);
	}
	/* slots were held for these results: send at once; rows put back for a
	 * retry may be due: look again */
	if (t->held) {
		t->held = false;
		t->idle = false;
		pump(t);
	} else if (t->idle) {
		t->idle = false;
		arm_pump(t, 0);
	}
	check_drained(t);
}

static void on_flush_timer(uv_timer_t *timer)
{
	flush(timer->data);
}

static void queue_result(struct tenant *t, struct store_result *res)
{
	if (store_row_finish(t->store, res) < 0) {
		/* row stays in flight in the store: it is sent again after a restart */
		log_error("Failed to queue a result: out of memory");
		store_result_clear(res);
		return;
	}
	if (store_queued(t->store) >= FLUSH_BATCH)
		flush(t);
	else if (!uv_is_active((uv_handle_t *)t->flush_timer))
		uv_timer_start(t->flush_timer, on_flush_timer, FLUSH_INTERVAL_MS, 0);
}

static uint64_t backoff_ms(struct tenant *t, unsigned attempts)
{
	return ratelimit_backoff_ms(&t->rand_state, attempts);
}

static void attempt_free(struct attempt *a)
{
	store_claim_free(a->claim);
	for (size_t i = 0; i < a->n_batch; i++)
		store_claim_free(a->batch[i]);
	free(a);
}

static void set_blocked(struct tenant *t, const char *reason)
{
	if (t->blocked)
		return;
	t->blocked = strdup(reason);
	log_error("Graph blocked invitations for tenant '%s': %s. Sending has stopped; "
		  "'invitectl resume JOB' starts it again",
		  t->name, reason);
	int r = store_tenant_block_set(t->store, t->id, reason);
	if (r < 0)
		log_error("Failed to store the block of tenant '%s': %s", t->name, strerror(-r));
	tenant_forget_job(t, 0);
	/* what waiters read next must include every result so far */
	store_flush(t->store);
	if (t->on_blocked)
		t->on_blocked(t->on_blocked_userdata);
}

void tenant_set_blocked_fn(struct tenant *t, tenant_blocked_fn fn, void *userdata)
{
	t->on_blocked = fn;
	t->on_blocked_userdata = userdata;
}

/* What one attempt at one row came to: queue its result, adjust the tenant.
 * Takes g's strings. *block_reason is set (owned) on the anti-abuse block. */
static void settle_resend(struct tenant *t, const struct store_claim *c, uint64_t token,
			  struct graph_result *g, char **block_reason);

/* What a row looks up next after an attempt whose fate is unknown: a
 * --skip-existing row keeps its skip (enum row_lookup). */
static int lookup_lost(const struct store_claim *c)
{
	return (c->lookup & ROW_LOOKUP_SKIP) | ROW_LOOKUP_LOST;
}

static void settle(struct tenant *t, const struct store_claim *c, uint64_t token,
		   struct graph_result *g, char **block_reason)
{
	if (c->resend) {
		settle_resend(t, c, token, g, block_reason);
		return;
	}
	struct store_result res = {.row_id = c->row_id, .job_id = c->job_id};
	res.attempts = c->attempts + 1;
	res.prev_attempts = c->attempts;
	res.http_status = g->http_status;
	uint64_t now_wall = time_now_ms();

	switch (g->outcome) {
	case GRAPH_OUTCOME_CREATED:
		t->stats.created++;
		t->throttle_streak = 0;
		res.state = ROW_STATE_SUCCEEDED;
		break;
	case GRAPH_OUTCOME_FAILED:
		t->stats.failed++;
		res.state = ROW_STATE_FAILED;
		break;
	case GRAPH_OUTCOME_AUTH:
		t->stats.auth_errors++;
		auth_reject(t->auth, token);
		res.state = ROW_STATE_PENDING;
		res.next_attempt_at = now_wall;
		break;
	case GRAPH_OUTCOME_BLOCKED:
		if (!*block_reason)
			*block_reason = strdup(g->error_message ? g->error_message : "403 Forbidden");
		res.state = ROW_STATE_PENDING;
		res.attempts = c->attempts; /* not the row's fault */
		res.next_attempt_at = now_wall;
		break;
	case GRAPH_OUTCOME_THROTTLED: {
		t->stats.throttled++;
		uint64_t wait = g->has_retry_after
					? g->retry_after_ms
					: THROTTLE_DEFAULT_MS << (t->throttle_streak < 5 ? t->throttle_streak : 5);
		t->throttle_streak++;
		uint64_t now = uv_now(t->loop), until = now + wait;
		ratelimit_throttled(&t->rl, now);
		if (until > t->paused_until) {
			t->paused_until = until;
			ratelimit_drain(&t->rl, until);
			log_info("Graph throttled tenant '%s' (HTTP %ld%s): pausing for %llu ms, then "
				 "%.3g/s",
				 t->name, g->http_status,
				 g->throttle_scope == GRAPH_THROTTLE_APPLICATION
					 ? ", the whole application"
					 : "",
				 (unsigned long long)wait, ratelimit_rate(&t->rl, until));
		}
		/* the application's budget over every tenant: all of them slow */
		if (g->throttle_scope == GRAPH_THROTTLE_APPLICATION && t->on_app_throttled)
			t->on_app_throttled(t->on_app_throttled_userdata, t,
					    GRAPH_BUDGET_INVITATIONS, wait);
		res.state = ROW_STATE_PENDING;
		res.next_attempt_at = now_wall + wait;
		/* a 503 (unlike a 429) may come after the invitation was made */
		if (g->http_status >= 500 && onboard_lookups_on(t->ob))
			res.lookup = lookup_lost(c);
		break;
	}
	case GRAPH_OUTCOME_TRANSIENT:
		t->stats.transient++;
		res.state = ROW_STATE_PENDING;
		res.next_attempt_at = now_wall + backoff_ms(t, res.attempts);
		/* the invitation may have been made (GRAPH.md §3): with lookups
		 * on, the next attempt looks first (SPEC R5) */
		if (onboard_lookups_on(t->ob))
			res.lookup = lookup_lost(c);
		break;
	}
	if (res.state == ROW_STATE_PENDING && res.attempts >= t->max_attempts) {
		res.state = ROW_STATE_FAILED;
		t->stats.failed++;
	} else if (res.state == ROW_STATE_PENDING) {
		t->stats.retries++;
	}
	if (res.state != ROW_STATE_SUCCEEDED) {
		res.error_code = g->error_code;
		res.error_message = g->error_message;
		g->error_code = g->error_message = NULL;
		log_debug("Row %lld (line %u, %s): %s %s: %s", (long long)c->row_id, c->line,
			  c->email, row_state_name(res.state), res.error_code ? res.error_code : "",
			  res.error_message ? res.error_message : "");
	} else {
		res.invited_user_id = g->invited_user_id;
		res.invite_redeem_url = g->invite_redeem_url;
		g->invited_user_id = g->invite_redeem_url = NULL;
	}
	res.request_id = g->request_id;
	g->request_id = NULL;
	if (c->client_request_id[0])
		res.client_request_id = strdup(c->client_request_id); /* NULL: not kept */
	graph_result_clear(g);
	queue_result(t, &res);
}

/* A resend (an invitation again, SPEC §8) came back: the step is done with
 * the new redeem URL, failed, or due again; the row itself is not touched
 * (it stays succeeded whatever the resend's fate). */
static void settle_resend(struct tenant *t, const struct store_claim *c, uint64_t token,
			  struct graph_result *g, char **block_reason)
{
	uint64_t now_wall = time_now_ms();
	int state = STEP_PENDING;
	unsigned attempts = c->attempts + 1;
	uint64_t next = now_wall;
	switch (g->outcome) {
	case GRAPH_OUTCOME_CREATED:
		t->stats.created++;
		t->stats.resends++;
		t->throttle_streak = 0;
		state = STEP_DONE;
		break;
	case GRAPH_OUTCOME_FAILED:
		state = STEP_FAILED;
		break;
	case GRAPH_OUTCOME_AUTH:
		t->stats.auth_errors++;
		auth_reject(t->auth, token);
		attempts = c->attempts;
		break;
	case GRAPH_OUTCOME_BLOCKED:
		if (!*block_reason)
			*block_reason = strdup(g->error_message ? g->error_message : "403 Forbidden");
		attempts = c->attempts;
		break;
	case GRAPH_OUTCOME_THROTTLED: {
		t->stats.throttled++;
		uint64_t wait = g->has_retry_after ? g->retry_after_ms : THROTTLE_DEFAULT_MS;
		uint64_t now = uv_now(t->loop);
		ratelimit_throttled(&t->rl, now);
		if (now + wait > t->paused_until) {
			t->paused_until = now + wait;
			ratelimit_drain(&t->rl, t->paused_until);
		}
		next = now_wall + wait;
		break;
	}
	case GRAPH_OUTCOME_TRANSIENT:
		t->stats.transient++;
		next = now_wall + backoff_ms(t, attempts);
		break;
	}
	if (state == STEP_PENDING && attempts >= t->max_attempts)
		state = STEP_FAILED;
	char why[600] = "";
	if (state == STEP_FAILED)
		snprintf(why, sizeof(why), "%s%s%.500s", g->error_code ? g->error_code : "",
			 g->error_code ? ": " : "", g->error_message ? g->error_message : "");
	int r = store_step_finish(t->store, c->row_id, STEP_RESEND, "", state, attempts, next,
				  state == STEP_FAILED ? why : NULL,
				  state == STEP_DONE ? g->invite_redeem_url : NULL);
	if (r < 0)
		log_error("Failed to queue a resend's outcome: %s", strerror(-r));
	log_debug("Resend of row %lld (line %u, %s): %s", (long long)c->row_id, c->line, c->email,
		  state == STEP_DONE ? "sent" : state == STEP_FAILED ? why : "again later");
	graph_result_clear(g);
	if (store_queued(t->store) >= FLUSH_BATCH)
		flush(t);
	else if (!uv_is_active((uv_handle_t *)t->flush_timer))
		uv_timer_start(t->flush_timer, on_flush_timer, FLUSH_INTERVAL_MS, 0);
}

/* After a request's rows are settled: their results go to the journal (one
 * write for the answer), a block stops the tenant, then go on. */
static void after_answer(struct tenant *t, char *block_reason)
{
	int r = store_journal_write(t->store);
	if (r < 0) {
		/* the results hold their slots until the group commit instead */
		if (!t->journal_failed)
			log_error("Failed to write the result journal of '%s': %s; results are "
				  "committed before their slots are used again",
				  store_path(t->store), strerror(-r));
		t->journal_failed = true;
		if (slots_busy(t))
			uv_timer_start(t->flush_timer, on_flush_timer, 0, 0);
	} else {
		t->journal_failed = false;
	}
	if (block_reason) {
		set_blocked(t, block_reason);
		free(block_reason);
	}
	pump(t);
	check_drained(t);
}

static void on_answer(void *userdata, const struct http_response *resp)
{
	struct attempt *a = userdata;
	struct tenant *t = a->tenant;
	struct graph_result g;
	char *block_reason = NULL;

	t->in_flight--;
	t->rows_in_flight--;
	/* shutting down past the deadline: the row stays in flight in the store
	 * and is sent again after the restart */
	if (resp->error != -ECANCELED && graph_classify(resp, &g) == 0)
		settle(t, a->claim, a->token, &g, &block_reason);
	attempt_free(a);
	after_answer(t, block_reason);
}

static void on_batch_answer(void *userdata, const struct http_response *resp)
{
	struct attempt *a = userdata;
	struct tenant *t = a->tenant;
	struct graph_result results[GRAPH_BATCH_MAX];
	char *block_reason = NULL;

	t->in_flight--;
	t->rows_in_flight -= (unsigned)a->n_batch;
	if (resp->error == -ECANCELED) {
		attempt_free(a);
		return;
	}
	int r = graph_batch_classify(resp, a->n_batch, results);
	if (r == GRAPH_BATCH_REFUSED) {
		/* the service does not take invitations in a batch: single requests
		 * from now on; these rows go back unharmed (no attempt counted) */
		if (t->batch > 1)
			log_warning("Graph refused invitations inside $batch (HTTP %ld); sending "
				    "single requests from now on",
				    resp->status);
		t->batch = 1;
		int64_t ids[GRAPH_BATCH_MAX];
		for (size_t i = 0; i < a->n_batch; i++)
			ids[i] = a->batch[i]->row_id;
		int rr = store_rows_release(t->store, ids, a->n_batch);
		if (rr < 0)
			log_error("Failed to put rows back after a refused batch: %s (they return "
				  "after a restart)",
				  strerror(-rr));
	} else {
		for (size_t i = 0; i < a->n_batch; i++) {
			if (r == GRAPH_BATCH_WHOLE) {
				if (graph_classify(resp, &results[i]) < 0)
					continue;
			} else if (r < 0) {
				break;
			}
			/* an item's own answer counts as a single one would: a
			 * permanent 4xx fails the row now (attempts 1); only
			 * transient and throttled items go again. A batch refused
			 * as a whole was GRAPH_BATCH_REFUSED above. */
			settle(t, a->batch[i], a->token, &results[i], &block_reason);
		}
	}
	attempt_free(a);
	after_answer(t, block_reason);
}

static int send_row(struct tenant *t, struct store_claim *c, const char *auth)
{
	char *body = NULL;
	size_t len = 0;
	struct attempt *a = calloc(1, sizeof(*a));
	int r = a ? graph_invitation_body(c, &body, &len) : -ENOMEM;
	if (r < 0)
		goto fail;
	a->tenant = t;
	a->claim = c;
	a->token = auth_generation(t->auth);
	graph_new_request_id(c->client_request_id); /* a new one per attempt */
	char retry_header[48];
	if (c->attempts > 0)
		snprintf(retry_header, sizeof(retry_header), "Retry-Attempt: %u", c->attempts);
	struct http_post_spec spec = {
		.url = t->invitations_url,
		.content_type = "application/json",
		.authorization = auth,
		.extra_header = c->attempts > 0 ? retry_header : NULL,
		.client_request_id = c->client_request_id,
		.timeout_ms = t->request_timeout_ms,
	};
	r = http_post(t->http, &spec, body, len, on_answer, a);
	body = NULL;
	if (r < 0)
		goto fail;
	store_claim_sent(t->store, c);
	t->in_flight++;
	t->rows_in_flight++;
	t->stats.requests++;
	return 0;
fail:
	free(body);
	if (a) {
		a->claim = NULL;
		attempt_free(a);
	}
	return r;
}

/* One $batch of n fresh claims (taken over). */
static int send_batch(struct tenant *t, struct store_claim **claims, size_t n, const char *auth)
{
	char *body = NULL;
	size_t len = 0;
	struct attempt *a = calloc(1, sizeof(*a));
	/* one client-request-id per item (kept with its row), one for the
	 * envelope */
	char envelope_id[GRAPH_CLIENT_REQUEST_ID_LEN + 1];
	for (size_t i = 0; i < n; i++)
		graph_new_request_id(claims[i]->client_request_id);
	graph_new_request_id(envelope_id);
	int r = a ? graph_batch_body(claims, n, &body, &len) : -ENOMEM;
	if (r < 0)
		goto fail;
	a->tenant = t;
	a->token = auth_generation(t->auth);
	struct http_post_spec spec = {
		.url = t->batch_url,
		.content_type = "application/json",
		.authorization = auth,
		.client_request_id = envelope_id,
		.timeout_ms = t->request_timeout_ms,
	};
	r = http_post(t->http, &spec, body, len, on_batch_answer, a);
	body = NULL;
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		a->batch[i] = claims[i];
		store_claim_sent(t->store, claims[i]);
	}
	a->n_batch = n;
	t->in_flight++;
	t->rows_in_flight += (unsigned)n;
	t->stats.requests++;
	return 0;
fail:
	free(body);
	if (a)
		attempt_free(a);
	return r;
}

static struct store_claim *ready_peek(struct tenant *t)
{
	return t->ready_len ? t->ready[t->ready_head] : NULL;
}

static struct store_claim *ready_pop(struct tenant *t)
{
	if (t->ready_len == 0)
		return NULL;
	struct store_claim *c = t->ready[t->ready_head];
	t->ready_head = (t->ready_head + 1) % t->ready_cap;
	t->ready_len--;
	return c;
}

static void ready_push(struct tenant *t, struct store_claim *c)
{
	size_t pos = (t->ready_head + t->ready_len) % t->ready_cap;
	t->ready[pos] = c;
	t->ready_len++;
}

/* A claimed row goes to the ready queue, or first to a lookup (SPEC §8). */
static void dispatch(struct tenant *t, struct store_claim *c)
{
	/* our mail follows: Graph sends none (SPEC §8 [mail]) */
	if (c->own_mail)
		c->send_email = false;
	if (c->lookup != ROW_LOOKUP_NONE && onboard_lookups_on(t->ob))
		onboard_lookup(t->ob, c);
	else
		ready_push(t, c);
}

/* Claim more due rows (and resends); 1 when some came, 0 when none is
 * due, -EBUSY. The ready queue and the lookups held together never hold
 * more than ready_cap claims. */
static int refill(struct tenant *t)
{
	size_t held = t->ready_len + onboard_held(t->ob);
	size_t want = held < t->ready_cap ? t->ready_cap - held : 0;
	struct store_claim **claims = NULL;
	size_t n = 0, n_resends = 0;
	/* invitations never run more than a day's mail budget ahead of their
	 * mail (SPEC §8): mails due, and every invitation that may still make
	 * one (claimed, on the wire, answered but not yet written), count
	 * against daily_limit; a claim takes no more than what is left */
	t->mail_gated = false;
	if (want > 0 && onboard_mail_on(t->ob) && t->mail_daily_limit > 0) {
		int64_t due = 0;
		if (store_mail_pending(t->store, t->id, &due) < 0)
			due = (int64_t)t->mail_daily_limit; /* unknown: wait for the next look */
		int64_t ahead = due + (int64_t)(held + t->rows_in_flight + store_queued(t->store));
		int64_t left = (int64_t)t->mail_daily_limit - ahead;
		t->mail_gated = left <= 0;
		if (left <= 0)
			want = 0;
		else if ((uint64_t)left < want)
			want = (size_t)left;
	}
	if (want == 0)
		return 0;
	/* resends are rare: looked for when one may be due (tenant_kick, the
	 * next due one, or every 30 s), not at every refill */
	int r = 0;
	uint64_t wall = time_now_ms();
	if (wall >= t->resend_check_at) {
		r = store_resends_claim(t->store, t->id, wall, 300000, want < 16 ? want : 16,
					&claims, &n_resends);
		uint64_t due;
		if (r == 0 && n_resends == 0)
			t->resend_check_at =
				store_steps_next_due(t->store, t->id, STEP_RESEND, &due) == 1 && due < wall + 30000
					? due
					: wall + 30000;
	}
	for (size_t i = 0; r == 0 && i < n_resends; i++) {
		if (claims[i]->own_mail)
			claims[i]->send_email = false;
		ready_push(t, claims[i]);
	}
	free(claims);
	claims = NULL;
	want -= n_resends;
	if (r == 0 && want > 0)
		r = store_rows_claim(t->store, t->id, time_now_ms(), want, &claims, &n);
	if (r < 0) {
		if (r != -EBUSY)
			log_error("Failed to claim rows in '%s': %s", store_path(t->store),
				  strerror(-r));
		return n_resends > 0 ? 1 : r;
	}
	for (size_t i = 0; i < n; i++)
		dispatch(t, claims[i]);
	free(claims);
	return n + n_resends > 0;
}

/* A lookup came back (onboard.h): the row is skipped, has succeeded (the
 * guest a lost attempt made), or goes on to its invitation. */
static void on_lookup_done(void *userdata, struct store_claim *c,
			   enum onboard_lookup_outcome outcome, const struct graph_user *user,
			   const char *error)
{
	struct tenant *t = userdata;
	int js = -1;
	/* paused or cancelled meanwhile: back to pending, not sent */
	if (store_job_state_get(t->store, c->job_id, &js) == 0 && js != JOB_STATE_QUEUED &&
	    js != JOB_STATE_RUNNING) {
		int r = store_rows_release(t->store, &c->row_id, 1);
		if (r == 0 || t->draining) {
			store_claim_sent(t->store, c);
			store_claim_free(c);
			return;
		}
	}
	bool guest = outcome == ONBOARD_LOOKUP_FOUND && user->user_type &&
		     strcmp(user->user_type, "Guest") == 0;
	/* after a lost attempt a guest found may be the one it made; a member
	 * never is (an invitation makes guests) */
	bool skipping = c->lookup & ROW_LOOKUP_SKIP, lost = c->lookup & ROW_LOOKUP_LOST;
	bool skip = outcome == ONBOARD_LOOKUP_FOUND && skipping && (!lost || !guest);
	bool made = guest && lost;
	if (outcome == ONBOARD_LOOKUP_FAILED || skip || made) {
		struct store_result res = {.row_id = c->row_id, .job_id = c->job_id};
		res.prev_attempts = c->attempts;
		res.attempts = c->attempts;
		res.lookup = c->lookup;
		if (outcome == ONBOARD_LOOKUP_FAILED) {
			/* an attempt of the row's: max_attempts bounds them */
			res.attempts = c->attempts + 1;
			res.state = res.attempts >= t->max_attempts ? ROW_STATE_FAILED : ROW_STATE_PENDING;
			res.next_attempt_at = time_now_ms() + backoff_ms(t, res.attempts);
			res.error_code = strdup("LookupFailed");
			res.error_message = strdup(error ? error : "lookup failed");
			if (res.state == ROW_STATE_FAILED)
				t->stats.failed++;
			else
				t->stats.retries++;
		} else {
			res.state = skip ? ROW_STATE_SKIPPED : ROW_STATE_SUCCEEDED;
			res.lookup = ROW_LOOKUP_NONE;
			res.invited_user_id = user->id ? strdup(user->id) : NULL;
			res.existing_type = user->user_type ? strdup(user->user_type) : NULL;
			res.existing_state = user->external_state ? strdup(user->external_state) : NULL;
			if (made && skipping)
				res.error_message = strdup(
				    "a guest found in the directory after an attempt whose fate is "
				    "unknown (a restart or a lost answer): this job's invitation or an "
				    "earlier one made it; not invited again");
			else if (made)
				res.error_message = strdup("found in the directory after an attempt "
							   "whose answer was lost: not invited again");
			log_debug("Row %lld (line %u, %s): %s, existing %s %s", (long long)c->row_id,
				  c->line, c->email, skip ? "skipped" : "succeeded",
				  user->user_type ? user->user_type : "?", user->id ? user->id : "?");
		}
		store_claim_sent(t->store, c);
		store_claim_free(c);
		queue_result(t, &res);
		store_journal_write(t->store);
		pump(t);
		check_drained(t);
		return;
	}
	/* nobody there after a lost attempt: Graph may not show the guest it
	 * made yet (replication, GRAPH.md §6); look once more after
	 * replication_delay before inviting again (SPEC R5) */
	uint64_t settle_ms = onboard_replication_delay_ms(t->ob);
	if (outcome == ONBOARD_LOOKUP_NONE && lost && !(c->lookup & ROW_LOOKUP_AGAIN) &&
	    settle_ms > 0 && !t->draining) {
		struct store_result res = {.row_id = c->row_id, .job_id = c->job_id};
		res.prev_attempts = c->attempts;
		res.attempts = c->attempts;
		res.state = ROW_STATE_PENDING;
		res.next_attempt_at = time_now_ms() + settle_ms;
		res.lookup = c->lookup | ROW_LOOKUP_AGAIN;
		res.error_message = strdup("an attempt's answer was lost and a lookup found nobody: "
					   "looked up again after replication_delay before another "
					   "invitation");
		store_claim_sent(t->store, c);
		store_claim_free(c);
		queue_result(t, &res);
		store_journal_write(t->store);
		pump(t);
		return;
	}
	/* nobody there (or lookups are off): the invitation goes out; a
	 * --skip-existing row remembers its skip for an attempt that is lost
	 * (lookup_lost) */
	c->lookup &= ROW_LOOKUP_SKIP;
	if (t->draining) {
		if (store_rows_release(t->store, &c->row_id, 1) == 0) {
			store_claim_sent(t->store, c);
			store_claim_free(c);
		} else {
			store_claim_free(c); /* stays claimed in the store: sent after a restart */
		}
		check_drained(t);
		return;
	}
	ready_push(t, c);
	pump(t);
}

static void on_onboard_queued(void *userdata, bool now)
{
	struct tenant *t = userdata;
	if (now || store_queued(t->store) >= FLUSH_BATCH)
		flush(t);
	else if (!uv_is_active((uv_handle_t *)t->flush_timer))
		uv_timer_start(t->flush_timer, on_flush_timer, FLUSH_INTERVAL_MS, 0);
}

static void pump(struct tenant *t)
{
	if (t->draining || t->blocked)
		return;
	uint64_t now = uv_now(t->loop);
	if (now < t->paused_until) {
		arm_pump(t, t->paused_until - now);
		return;
	}
	const char *auth = auth_header(t->auth);
	if (!auth) {
		auth_start(t->auth); /* tenant_auth_ready pumps again */
		return;
	}
	while (!slots_busy(t)) {
		if (t->batch > 1 && t->ready_len > 0 && t->ready_len < t->batch)
			refill(t); /* top up, so that batches go out full */
		if (t->ready_len == 0) {
			int r = refill(t);
			if (r < 0) {
				arm_pump(t, r == -EBUSY ? BUSY_RETRY_MS : 1000);
				return;
			}
			/* the claims went to their lookups: those pump again */
			if (t->ready_len == 0 && (r > 0 || onboard_held(t->ob) > 0))
				return;
			if (r == 0) {
				uint64_t due, due2;
				int have = store_rows_next_due(t->store, t->id, &due) == 1;
				if (store_steps_next_due(t->store, t->id, STEP_RESEND, &due2) == 1 &&
				    (!have || due2 < due)) {
					due = due2;
					have = 1;
				}
				if (t->mail_gated) {
					arm_pump(t, 5000); /* mail catches up: look again */
				} else if (have) {
					uint64_t wall = time_now_ms();
					arm_pump(t, due > wall ? due - wall : 1);
				} else {
					t->idle = true;
				}
				return;
			}
		}
		/* fresh rows may share a $batch (one rate token each); a row being
		 * tried again goes alone, so a batch answer never decides a row's
		 * fate twice */
		size_t n = 1;
		if (t->batch > 1 && ready_peek(t)->attempts == 0) {
			while (n < t->batch && n < t->ready_len &&
			       t->ready[(t->ready_head + n) % t->ready_cap]->attempts == 0)
				n++;
			if (n > t->rl.burst)
				n = (size_t)t->rl.burst;
		}
		if (t->app && n > t->app->burst)
			n = t->app->burst >= 1 ? (size_t)t->app->burst : 1;
		uint64_t wait = n > 1 ? ratelimit_take_n(&t->rl, (unsigned)n, now)
				      : ratelimit_take(&t->rl, now);
		if (wait > 0) {
			arm_pump(t, wait);
			return;
		}
		/* [graph] app_rate: the ceiling over every tenant */
		if (t->app) {
			wait = ratelimit_take_n(t->app, (unsigned)n, now);
			if (wait > 0) {
				for (size_t i = 0; i < n; i++)
					ratelimit_refund(&t->rl);
				arm_pump(t, wait);
				return;
			}
		}
		struct store_claim *c = ready_pop(t);
		struct store_claim *group[GRAPH_BATCH_MAX] = {c};
		for (size_t i = 1; i < n; i++)
			group[i] = ready_pop(t);
		int r = n > 1 ? send_batch(t, group, n, auth) : send_row(t, c, auth);
		if (r < 0) {
			log_error("Failed to start a request: %s", strerror(-r));
			int64_t ids[GRAPH_BATCH_MAX];
			for (size_t i = 0; i < n; i++) {
				ratelimit_refund(&t->rl);
				if (t->app)
					ratelimit_refund(t->app);
				ids[i] = group[i]->row_id;
				store_claim_sent(t->store, group[i]); /* no longer waiting */
				store_claim_free(group[i]);
			}
			store_rows_release(t->store, ids, n);
			arm_pump(t, 1000);
			return;
		}
	}
	/* results not on disk hold slots: flush() pumps again */
	if (store_at_risk(t->store) > 0)
		t->held = true;
}

/* The onboard's options from the tenant's (name and graph_url: the
 * caller's, at create); and the tenant's own settings of them. */
static void onboard_options_of(struct tenant *t, const struct tenant_options *opt,
			       struct onboard_options *oo)
{
	t->max_resends = opt->onboard.max_resends;
	t->mail_daily_limit = opt->mail && opt->mail->on ? opt->mail->daily_limit : 0;
	*oo = (struct onboard_options){
		.name = t->name,
		.tenant_id = t->id,
		.conf = opt->onboard,
		.concurrency = opt->concurrency,
		.max_attempts = opt->max_attempts,
		.request_timeout_ms = opt->request_timeout_ms,
		.mail = opt->mail,
		.template = opt->template,
		.smtp_password = opt->smtp_password,
		.tenant_label = opt->tenant_label,
	};
}

int tenant_create(uv_loop_t *loop, struct store *store, struct http *http, struct auth *auth,
		  const struct tenant_options *opt, struct tenant **ret)
{
	int r = -ENOMEM;
	struct tenant *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->loop = loop;
	t->store = store;
	t->http = http;
	t->auth = auth;
	t->concurrency = opt->concurrency;
	t->max_attempts = opt->max_attempts;
	t->request_timeout_ms = opt->request_timeout_ms;
	t->rand_state = (unsigned)time_now_ms() | 1u;
	t->app = opt->app;
	ratelimit_init(&t->rl, opt->rate, opt->burst, uv_now(loop));
	t->name = strdup(opt->name);
	t->invitations_url = graph_invitations_url(opt->graph_url);
	t->batch_url = graph_batch_url(opt->graph_url);
	t->batch = opt->batch >= 1 && opt->batch <= GRAPH_BATCH_MAX ? opt->batch : 1;
	/* enough claimed rows to refill every slot twice over; more makes each
	 * claim a longer transaction on the loop (a large burst does not need
	 * its rows claimed ahead: refills are cheap) */
	t->ready_cap = 2 * (size_t)opt->concurrency * t->batch;
	if (t->ready_cap < 16)
		t->ready_cap = 16;
	if (t->ready_cap > 4096)
		t->ready_cap = 4096;
	t->ready = calloc(t->ready_cap, sizeof(*t->ready));
	t->pump_timer = malloc(sizeof(*t->pump_timer));
	t->flush_timer = malloc(sizeof(*t->flush_timer));
	if (!t->name || !t->invitations_url || !t->batch_url || !t->ready || !t->pump_timer || !t->flush_timer)
		goto fail;
	uv_timer_init(loop, t->pump_timer);
	t->pump_timer->data = t;
	uv_timer_init(loop, t->flush_timer);
	t->flush_timer->data = t;

	r = store_tenant_ensure(store, t->name, &t->id);
	if (r < 0)
		goto fail;
	struct onboard_options oo;
	onboard_options_of(t, opt, &oo);
	oo.name = opt->name;
	oo.graph_url = opt->graph_url;
	r = onboard_create(loop, store, http, auth, &oo, on_lookup_done, on_onboard_queued, t,
			   &t->ob);
	if (r < 0)
		goto fail;
	r = store_tenant_block_get(store, t->id, &t->blocked);
	if (r < 0)
		goto fail;
	if (t->blocked)
		log_warning("Tenant '%s' is blocked since an earlier run: %s", t->name, t->blocked);
	*ret = t;
	return 0;
fail:
	tenant_destroy(t);
	return r;
}

void tenant_destroy(struct tenant *t)
{
	if (!t)
		return;
	tenant_forget_job(t, 0);
	onboard_destroy(t->ob);
	t->ob = NULL;
	/* claims the store could not take back stay in flight there: they are
	 * sent again after the restart */
	struct store_claim *c;
	while ((c = ready_pop(t))) {
		store_claim_sent(t->store, c);
		store_claim_free(c);
	}
	if (t->pump_timer)
		uv_close((uv_handle_t *)t->pump_timer, on_handle_closed);
	if (t->flush_timer)
		uv_close((uv_handle_t *)t->flush_timer, on_handle_closed);
	free(t->ready);
	free(t->name);
	free(t->invitations_url);
	free(t->batch_url);
	free(t->blocked);
	free(t);
}

int64_t tenant_id(const struct tenant *t)
{
	return t->id;
}

const char *tenant_name(const struct tenant *t)
{
	return t->name;
}

const char *tenant_blocked(const struct tenant *t)
{
	return t->blocked;
}

void tenant_reconfigure(struct tenant *t, const struct tenant_options *opt)
{
	/* ready_cap (the claim look-ahead) stays as sized at start */
	t->concurrency = opt->concurrency;
	t->max_attempts = opt->max_attempts;
	t->request_timeout_ms = opt->request_timeout_ms;
	ratelimit_set(&t->rl, opt->rate, opt->burst, uv_now(t->loop));
	struct onboard_options oo;
	onboard_options_of(t, opt, &oo);
	onboard_reconfigure(t->ob, &oo);
	tenant_kick(t);
}

double tenant_rate(struct tenant *t)
{
	return ratelimit_rate(&t->rl, uv_now(t->loop));
}

void tenant_get_stats(const struct tenant *t, struct tenant_stats *ret)
{
	*ret = t->stats;
	struct onboard_stats os;
	onboard_get_stats(t->ob, &os);
	ret->lookups = os.lookups;
	ret->lookups_found = os.lookups_found;
	ret->group_additions = os.group_additions;
	ret->group_failures = os.group_failures;
	ret->tracking_reads = os.tracking_reads;
	ret->accepted = os.accepted;
	ret->mails_sent = os.mails_sent;
	ret->mails_failed = os.mails_failed;
	ret->mail_wait_until_ms = os.mail_wait_until_ms;
	ret->max_resends = t->max_resends;
	ret->lookups_on = onboard_lookups_on(t->ob);
	ret->in_flight = t->rows_in_flight;
	ret->requests_in_flight = t->in_flight;
	ret->ready = (unsigned)t->ready_len;
	uint64_t now = uv_now(t->loop);
	ret->paused_ms = t->paused_until > now ? t->paused_until - now : 0;
}

void tenant_kick(struct tenant *t)
{
	t->idle = false;
	t->resend_check_at = 0;
	arm_pump(t, 0);
	if (t->ob)
		onboard_kick(t->ob);
}

int tenant_forget_job(struct tenant *t, int64_t job_id)
{
	if (t->ob)
		onboard_forget_job(t->ob, job_id);
	if (!t->ready || t->ready_len == 0)
		return 0;
	int64_t *ids = malloc(t->ready_len * sizeof(*ids));
	size_t n_ids = 0;
	if (!ids) {
		log_error("Failed to put claimed rows back: out of memory (they are sent)");
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->ready_len; i++) {
		struct store_claim *c = t->ready[(t->ready_head + i) % t->ready_cap];
		if (job_id == 0 || c->job_id == job_id)
			ids[n_ids++] = c->row_id;
	}
	/* drop the claims only once the store has them pending again: a claim
	 * dropped while its row stays in flight in the store would strand the
	 * row (and its job) until a restart */
	int r = store_rows_release(t->store, ids, n_ids);
	free(ids);
	if (r < 0) {
		log_warning("Failed to put claimed rows back: %s (they are sent instead)",
			    strerror(-r));
		return r;
	}
	size_t kept = 0;
	for (size_t i = 0; i < t->ready_len; i++) {
		struct store_claim *c = t->ready[(t->ready_head + i) % t->ready_cap];
		if (job_id == 0 || c->job_id == job_id) {
			store_claim_sent(t->store, c); /* pending again: not waiting */
			store_claim_free(c);
		} else
			t->ready[(t->ready_head + kept++) % t->ready_cap] = c;
	}
	t->ready_len = kept;
	return 0;
}

int tenant_unblock(struct tenant *t)
{
	if (!t->blocked)
		return 0;
	int r = store_tenant_block_set(t->store, t->id, NULL);
	if (r < 0)
		return r;
	log_notice("Sending for tenant '%s' resumed by an admin after: %s", t->name, t->blocked);
	free(t->blocked);
	t->blocked = NULL;
	tenant_kick(t);
	return 1;
}

int tenant_unpause(struct tenant *t)
{
	uint64_t now = uv_now(t->loop);
	if (t->paused_until <= now)
		return 0;
	t->paused_until = 0;
	t->throttle_streak = 0;
	log_notice("The Retry-After pause of tenant '%s' was ended by an admin", t->name);
	tenant_kick(t);
	return 1;
}

void tenant_set_auth(struct tenant *t, struct auth *auth)
{
	t->auth = auth;
	onboard_set_auth(t->ob, auth);
	tenant_kick(t);
}

struct auth *tenant_auth(const struct tenant *t)
{
	return t->auth;
}

void tenant_set_app(struct tenant *t, struct ratelimit *app)
{
	t->app = app;
}

/* The onboard's lanes' 429s naming the application: told on like ours */
static void on_dir_app_throttled(void *userdata, enum graph_budget budget, uint64_t wait_ms)
{
	struct tenant *t = userdata;
	if (t->on_app_throttled)
		t->on_app_throttled(t->on_app_throttled_userdata, t, budget, wait_ms);
}

void tenant_set_app_throttled_fn(struct tenant *t, tenant_app_throttled_fn fn, void *userdata)
{
	onboard_set_app_throttled_fn(t->ob, on_dir_app_throttled, t);
	t->on_app_throttled = fn;
	t->on_app_throttled_userdata = userdata;
}

void tenant_slow(struct tenant *t, enum graph_budget budget, uint64_t wait_ms)
{
	if (budget != GRAPH_BUDGET_INVITATIONS) {
		onboard_slow(t->ob, budget, wait_ms);
		return;
	}
	uint64_t now = uv_now(t->loop), until = now + wait_ms;
	ratelimit_throttled(&t->rl, now);
	if (until > t->paused_until) {
		t->paused_until = until;
		ratelimit_drain(&t->rl, until);
		log_info("Tenant '%s' pauses for %llu ms: Graph throttled the application as a "
			 "whole, then %.3g/s",
			 t->name, (unsigned long long)wait_ms, ratelimit_rate(&t->rl, until));
	}
}

void tenant_drain(struct tenant *t, tenant_drained_fn fn, void *userdata)
{
	t->draining = true;
	t->drained = fn;
	t->drained_userdata = userdata;
	uv_timer_stop(t->pump_timer);
	onboard_stop(t->ob);
	tenant_forget_job(t, 0);
	if (store_queued(t->store) > 0)
		flush(t);
	check_drained(t);
}
