/* SPDX-License-Identifier: MIT */
/* onboard: the lanes' object (onboard.h); the lanes themselves are in
 * onboard-dir.c and onboard-mail.c, their machinery in onboard-private.h. */
#include "onboard-private.h"

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
		              burst_of(o->conf.lookup_rate, 1), onboard_pump_lookups);
	if (r == 0)
		r = lane_init(o, &o->groups, "group additions", GRAPH_BUDGET_WRITES,
		              o->conf.group_rate,
		              burst_of(o->conf.group_rate, 1), onboard_pump_groups);
	if (r == 0)
		r = lane_init(o, &o->track, "acceptance reads", GRAPH_BUDGET_READS,
		              o->conf.track_rate,
		              burst_of(o->conf.track_rate, GRAPH_BATCH_MAX), onboard_pump_track);
	if (r == 0)
		r = lane_init(o, &o->mail, "invitation mails", GRAPH_BUDGET_NONE,
		              o->mail_conf ? o->mail_conf->rate : 1, 1, onboard_pump_mail);
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
