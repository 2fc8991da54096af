/* SPDX-License-Identifier: MIT */
/* onboard-dir: the directory's lanes of a tenant (onboard.h): lookups
 * before invitations, group additions after them, acceptance tracking. */
#include "onboard-private.h"

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
	onboard_pump_lookups(l);
}

void onboard_pump_lookups(struct lane *l)
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


/* An addition's outcome, queued for the group commit. */
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
		onboard_pump_groups(l);
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

void onboard_pump_groups(struct lane *l)
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
		onboard_pump_track(l);
}

void onboard_pump_track(struct lane *l)
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
