/* SPDX-License-Identifier: MIT */
/* onboard-mail: our own invitation mail ([mail], SPEC §8): the mail lane,
 * paced by the mailbox's rate and rolling daily_limit. */
#include "onboard-private.h"

#include "mailmsg.h"

/* ---- our own invitation mail ([mail]) ----------------------------------- */

#define DAY_MS 86400000u
#define MAIL_CONCURRENCY 4u /* Graph's Outlook: 4 concurrent requests per app and mailbox */

static bool mail_on(const struct onboard *o)
{
	return o->mail_conf && o->mail_conf->on && o->template;
}


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
		onboard_pump_mail(l);
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

void onboard_pump_mail(struct lane *l)
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
