/* SPDX-License-Identifier: MIT */
/* http-smtp: SMTP (http_smtp_send), libcurl's easy interface on the loop's
 * worker threads; the structs, the failure description and the delivery it
 * shares with http.c are in http-private.h. */
#include "http-private.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "timeutil.h"

#define SMTP_REPLY_MAX 4096    /* bytes of the server's last reply kept */
#define SMTP_ADDRESS_MAX 320   /* RFC 5321: 64 + 1 + 255 */

/* One whole line of a server reply (without its line end). A reply's last
 * line has a space (or nothing) after its code; the next line starts a new
 * reply. */
static void reply_add_line(struct request *rq, const char *line, size_t len)
{
	if (rq->reply_complete) {
		buf_clear(&rq->reply);
		rq->reply_complete = false;
	}
	if (rq->reply.len < SMTP_REPLY_MAX) {
		size_t room = SMTP_REPLY_MAX - rq->reply.len;
		if (rq->reply.len > 0)
			buf_append(&rq->reply, "\n", 1);
		buf_append(&rq->reply, line, len < room ? len : room);
	}
	rq->reply_complete = len < 4 || line[3] != '-';
	const char *d = rq->reply.data;
	if (rq->reply_complete && d && (d[0] == '4' || d[0] == '5')) {
		buf_clear(&rq->refusal);
		buf_append(&rq->refusal, d, rq->reply.len);
		if (!rq->refused_ms)
			rq->refused_ms = time_now_ms();
	} else if (rq->reply_complete && d && d[0] == '2' && rq->body_len > 0 &&
		   rq->body_off == rq->body_len && !rq->refused_ms) {
		/* the answer to the end of the message: the mail is the relay's
		 * now, only curl's QUIT is left */
		rq->refused_ms = time_now_ms();
	}
}

/* curl's progress, from the worker thread: give up when http_destroy
 * asks, past the deadline (curl's own timeout does not cover the QUIT it
 * says as it closes: up to 2 minutes with a relay that does not answer),
 * and a second after a refusal or the message's acceptance (only curl's
 * QUIT is left then). */
static int on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct request *rq = userp;
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	uint64_t now = time_now_ms();
	return atomic_load(&rq->cancel) || now > rq->deadline_ms + 1000 ||
	       (rq->refused_ms && now - rq->refused_ms >= 500);
}

/* curl's protocol trace, verbose being on for this alone: only the
 * server's replies (CURLINFO_HEADER_IN) are read, to keep the last one;
 * what curl sends (HEADER_OUT: the AUTH exchange, the password in it) and
 * its own texts are dropped unseen, and nothing is ever written anywhere. */
static int on_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *userp)
{
	struct request *rq = userp;
	(void)easy;
	if (type != CURLINFO_HEADER_IN)
		return 0;
	while (size > 0) {
		const char *nl = memchr(data, '\n', size);
		size_t n = nl ? (size_t)(nl - data) + 1 : size;
		if (rq->reply_line.len < SMTP_REPLY_MAX)
			buf_append(&rq->reply_line, data, n);
		if (nl) {
			size_t len = rq->reply_line.len;
			const char *l = rq->reply_line.data ? rq->reply_line.data : "";
			while (len > 0 && (l[len - 1] == '\n' || l[len - 1] == '\r'))
				len--;
			reply_add_line(rq, l, len);
			buf_clear(&rq->reply_line);
		}
		data += n;
		size -= n;
	}
	return 0;
}

/* An address for the envelope: non-empty, capped, no space, no control
 * character and no angle bracket (nothing that could end the command or
 * add one). */
static bool envelope_address_ok(const char *a)
{
	if (!a || !*a || strlen(a) > SMTP_ADDRESS_MAX)
		return false;
	for (const unsigned char *p = (const unsigned char *)a; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>')
			return false;
	return true;
}

static char *angle(const char *a)
{
	struct buf b = BUF_INIT;
	if (buf_printf(&b, "<%s>", a) < 0)
		return NULL;
	return buf_steal(&b);
}

/* ---- the worker threads ----
 * libcurl's SMTP is not non-blocking on a multi handle: it waits for the
 * answer to the end of the message (the slowest reply of a relay: content
 * scanning) and for QUIT's answer blocking (curl's known issue #8555, its
 * TODO "More non-blocking"); measured: a relay that takes 1.5 s to accept a
 * message stalled the loop 1.5 s. So each transfer runs curl_easy_perform
 * on a worker thread of the loop's pool (uv_queue_work), its own easy
 * handle and connection (FORBID_REUSE: closed by the transfer itself, so
 * its QUIT is bounded by on_progress), at most HTTP_SMTP_THREADS at once
 * so that imports, checkpoints and pruning keep their threads; the
 * outcome is delivered on the loop. */

#define HTTP_SMTP_THREADS 1

static void smtp_unlink(struct http *h, struct request *rq)
{
	if (rq->prev)
		rq->prev->next = rq->next;
	else
		h->smtp_head = rq->next;
	if (rq->next)
		rq->next->prev = rq->prev;
	else
		h->smtp_tail = rq->prev;
	rq->prev = rq->next = NULL;
	h->active--;
}

static void smtp_free(struct request *rq)
{
	if (rq->easy) /* never started: no connection */
		curl_easy_cleanup(rq->easy);
	rq->easy = NULL;
	rq->http = NULL;
	http_request_free(rq);
}

/* The transfer, and what the loop needs of its handle; then the handle
 * is cleaned up here too (closing a connection check_only kept open says
 * QUIT and waits: on this thread, never on the loop). */
static void smtp_work(uv_work_t *w)
{
	struct request *rq = w->data;
	rq->code = curl_easy_perform(rq->easy);
	/* a 451 to DATA is a failed transfer: its code is what it means */
	curl_easy_getinfo(rq->easy, CURLINFO_RESPONSE_CODE, &rq->smtp_status);
	if (rq->code != CURLE_OK)
		rq->error_message = http_describe_failure(NULL, rq, rq->easy, rq->code,
							  rq->error_text[0] ? rq->error_text
									    : curl_easy_strerror(rq->code));
	curl_easy_cleanup(rq->easy);
	rq->easy = NULL;
}

static void smtp_pump(struct http *h);

static void smtp_after(uv_work_t *w, int status)
{
	struct request *rq = w->data;
	struct http *h = rq->http;
	if (!h) { /* http_destroy answered it already */
		smtp_free(rq);
		return;
	}
	h->smtp_running--;
	smtp_unlink(h, rq);
	http_deliver(h, rq, NULL, status == UV_ECANCELED ? CURLE_ABORTED_BY_CALLBACK : rq->code);
	smtp_free(rq);
	smtp_pump(h);
}

static void smtp_pump(struct http *h)
{
	for (struct request *rq = h->smtp_head; rq && h->smtp_running < HTTP_SMTP_THREADS && !h->closing;
	     rq = rq->next) {
		if (rq->started)
			continue;
		rq->work.data = rq;
		if (uv_queue_work(h->loop, &rq->work, smtp_work, smtp_after) < 0)
			return; /* cannot happen with these arguments: tried again next time */
		rq->started = true;
		h->smtp_running++;
	}
}

/* http_destroy: every SMTP transfer is answered -ECANCELED now; those on a
 * worker thread give up at their next progress call and are freed when
 * the loop gets them back (smtp_after, which then finds no http). */
void http_smtp_cancel_all(struct http *h)
{
	while (h->smtp_head) {
		struct request *rq = h->smtp_head;
		smtp_unlink(h, rq);
		struct http_response resp = {.error = -ECANCELED, .error_text = "cancelled", .body = ""};
		rq->fn(rq->userdata, &resp);
		if (rq->started) {
			atomic_store(&rq->cancel, true);
			rq->http = NULL; /* orphaned: smtp_after frees it */
		} else {
			smtp_free(rq);
		}
	}
	h->smtp_running = 0;
}

int http_smtp_send(struct http *h, const struct http_smtp_spec *spec, char *message, size_t len,
		   http_done_fn fn, void *userdata)
{
	int r = -EINVAL;
	char *from = NULL;
	struct request *rq = calloc(1, sizeof(*rq));
	if (!rq) {
		free(message);
		return -ENOMEM;
	}
	rq->smtp = true;
	rq->body = message;
	rq->body_len = message ? len : 0;
	rq->fn = fn;
	rq->userdata = userdata;
	atomic_init(&rq->cancel, false);
	buf_init(&rq->response);
	buf_init(&rq->reply);
	buf_init(&rq->reply_line);
	buf_init(&rq->refusal);
	bool smtps = spec->url && strncasecmp(spec->url, "smtps://", 8) == 0;
	if (!spec->url || (!smtps && strncasecmp(spec->url, "smtp://", 7) != 0))
		goto fail;
	if (!spec->check_only &&
	    (!message || !envelope_address_ok(spec->mail_from) || !envelope_address_ok(spec->rcpt)))
		goto fail;
	if (spec->user && (strpbrk(spec->user, "\r\n") || !spec->password))
		goto fail;
	r = -ENOMEM;
	const char *ca = spec->ca_file ? spec->ca_file : h->ca_file;
	if (ca && !(rq->smtp_ca = strdup(ca)))
		goto fail;
	rq->easy = curl_easy_init(); /* its own: it runs on a worker thread */
	if (!rq->easy)
		goto fail;

	CURL *e = rq->easy;
	curl_easy_setopt(e, CURLOPT_URL, spec->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	/* smtp://: STARTTLS or nothing; smtps://: TLS from the first byte */
	curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	if (rq->smtp_ca)
		curl_easy_setopt(e, CURLOPT_CAINFO, rq->smtp_ca);
	/* the relay is reached directly: never a proxy, nor the environment's */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOPROXY, "");
	if (spec->user) {
		/* copied by curl into memory that is wiped when freed
		 * (curl_global_init_mem in http_create) */
		curl_easy_setopt(e, CURLOPT_USERNAME, spec->user);
		curl_easy_setopt(e, CURLOPT_PASSWORD, spec->password);
		curl_easy_setopt(e, CURLOPT_SASL_IR, 1L);
	}
	if (spec->check_only) {
		/* greeting, EHLO, STARTTLS, AUTH: then done, no MAIL FROM */
		curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
	} else {
		from = angle(spec->mail_from);
		char *to = angle(spec->rcpt);
		struct curl_slist *l = to ? curl_slist_append(NULL, to) : NULL;
		free(to);
		if (!from || !l) {
			curl_slist_free_all(l);
			goto fail;
		}
		rq->rcpt = l;
		curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
		curl_easy_setopt(e, CURLOPT_MAIL_RCPT, rq->rcpt);
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, http_read_body);
		curl_easy_setopt(e, CURLOPT_READDATA, rq);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
	}
	/* one connection per message, closed (QUIT) by the transfer itself:
	 * nothing kept for another thread or for curl_easy_cleanup to close */
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, rq);
	/* the server's replies reach on_debug and nowhere else */
	curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
	curl_easy_setopt(e, CURLOPT_DEBUGDATA, rq);
	curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(e, CURLOPT_PRIVATE, rq);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, http_open_socket); /* close-on-exec */
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, rq->error_text);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)spec->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(spec->timeout_ms < 10000 ? spec->timeout_ms : 10000));
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	rq->deadline_ms = time_now_ms() + spec->timeout_ms;
	free(from); /* curl keeps its own copy */
	from = NULL;
	/* queued; started on a worker thread from the loop's next turn at the
	 * earliest (uv_queue_work), so fn is never called from in here */
	rq->http = h;
	rq->prev = h->smtp_tail;
	if (h->smtp_tail)
		h->smtp_tail->next = rq;
	else
		h->smtp_head = rq;
	h->smtp_tail = rq;
	h->active++;
	smtp_pump(h);
	return 0;
fail:
	free(from);
	smtp_free(rq);
	return r;
}
