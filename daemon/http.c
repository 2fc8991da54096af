/* SPDX-License-Identifier: MIT */
#include "http-private.h"

#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "secret.h"
#include "build-config.h"
#include "timeutil.h"

/* The request headers, shared by requests that send the same ones (most
 * do: only the token changes, now and then). Reference-counted. */
struct hdrs {
	struct curl_slist *list;
	char *content_type;
	char *authorization;
	unsigned refs;
};

struct socket_ctx {
	uv_poll_t poll;
	curl_socket_t fd;
	int events; /* UV_READABLE | UV_WRITABLE being watched */
	bool idle;  /* curl has no transfer on it (kept for reuse) */
	struct http *http;
};

static void hdrs_unref(struct hdrs *hs)
{
	if (!hs || --hs->refs > 0)
		return;
	for (struct curl_slist *l = hs->list; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data)); /* the token */
	curl_slist_free_all(hs->list);
	if (hs->authorization)
		explicit_bzero(hs->authorization, strlen(hs->authorization));
	free(hs->authorization);
	free(hs->content_type);
	free(hs);
}

static struct hdrs *hdrs_build(const struct http_post_spec *spec)
{
	struct hdrs *hs = calloc(1, sizeof(*hs));
	struct buf b = BUF_INIT;
	if (!hs)
		return NULL;
	hs->refs = 1;
	hs->content_type = strdup(spec->content_type);
	hs->authorization = spec->authorization ? strdup(spec->authorization) : NULL;
	bool ok = hs->content_type && (hs->authorization || !spec->authorization);
	if (ok && buf_printf(&b, "Content-Type: %s", spec->content_type) == 0)
		hs->list = curl_slist_append(hs->list, b.data);
	buf_clear(&b);
	struct curl_slist *l = hs->list ? curl_slist_append(hs->list, "Accept: application/json") : NULL;
	l = l ? curl_slist_append(l, "Expect:") : NULL;
	if (l && spec->authorization && buf_printf(&b, "Authorization: %s", spec->authorization) == 0)
		l = curl_slist_append(l, b.data);
	if (l && spec->extra_header)
		l = curl_slist_append(l, spec->extra_header);
	if (l && spec->client_request_id) {
		if (b.data)
			explicit_bzero(b.data, b.len); /* the token */
		buf_clear(&b);
		if (buf_printf(&b, "client-request-id: %s", spec->client_request_id) == 0)
			l = curl_slist_append(l, b.data);
		else
			ok = false;
	}
	if (b.data)
		explicit_bzero(b.data, b.len);
	buf_finish(&b);
	if (!ok || !l) {
		hdrs_unref(hs);
		return NULL;
	}
	hs->list = l;
	return hs;
}

static bool same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* The headers for a request: the shared set when it matches. */
static struct hdrs *hdrs_get(struct http *h, const struct http_post_spec *spec)
{
	if (spec->extra_header || spec->client_request_id)
		return hdrs_build(spec);
	struct hdrs *hs = h->shared;
	if (hs && same(hs->content_type, spec->content_type) &&
	    same(hs->authorization, spec->authorization)) {
		hs->refs++;
		return hs;
	}
	hs = hdrs_build(spec);
	if (!hs)
		return NULL;
	hdrs_unref(h->shared);
	h->shared = hs;
	hs->refs++;
	return hs;
}

void http_request_free(struct request *rq)
{
	if (!rq)
		return;
	if (rq->easy) {
		struct http *h = rq->http;
		if (h && h->n_idle < sizeof(h->idle) / sizeof(h->idle[0]) && !h->closing) {
			curl_easy_reset(rq->easy);
			h->idle[h->n_idle++] = rq->easy;
		} else {
			curl_easy_cleanup(rq->easy);
		}
	}
	hdrs_unref(rq->headers);
	/* idle: the shared headers (the token, twice) are not kept around in
	 * the ordinary heap for the next burst (wiped as they are freed) */
	struct http *hh = rq->http;
	if (hh && hh->active == 0 && hh->shared && hh->shared->refs == 1) {
		hdrs_unref(hh->shared);
		hh->shared = NULL;
	}
	if (rq->body) /* may hold a secret (token request) */
		explicit_bzero(rq->body, rq->body_len);
	free(rq->body);
	if (rq->response.data) /* may hold a token (token request) */
		explicit_bzero(rq->response.data, rq->response.cap);
	buf_finish(&rq->response);
	free(rq->request_id);
	free(rq->throttle_scope);
	free(rq->error_message);
	curl_slist_free_all(rq->rcpt);
	free(rq->smtp_ca);
	buf_finish(&rq->reply);
	buf_finish(&rq->reply_line);
	buf_finish(&rq->refusal);
	free(rq);
}

static void unlink_request(struct http *h, struct request *rq)
{
	if (rq->prev)
		rq->prev->next = rq->next;
	else
		h->requests = rq->next;
	if (rq->next)
		rq->next->prev = rq->prev;
	h->active--;
}

/* scheme://host[:port] of url, without user:password (never shown). */
static char *origin_shown(const char *url)
{
	const char *p = strstr(url, "://");
	if (!p)
		return strdup("?");
	p += 3;
	size_t n = strcspn(p, "/?#");
	const char *at = memchr(p, '@', n);
	struct buf b = BUF_INIT;
	if (at) {
		n -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	if (buf_printf(&b, "%.*s%.*s", (int)(strstr(url, "://") + 3 - url), url, (int)n, p) < 0)
		return NULL;
	return buf_steal(&b);
}

/* What failed and where: curl's words alone ("SSL certificate problem:
 * unable to get local issuer certificate") name neither the server nor
 * what to change. NULL: keep curl's words (or out of memory). */
char *http_describe_failure(const struct http *h, const struct request *rq, CURL *easy,
			    CURLcode code, const char *text)
{
	const char *url = NULL;
	curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);
	char *origin = origin_shown(url ? url : "");
	struct buf b = BUF_INIT;
	/* SMTP goes straight to the relay, never through the proxy */
	const char *proxy_shown = rq->smtp || !h ? NULL : h->proxy_shown;
	const char *via = proxy_shown ? " through the proxy " : "";
	const char *proxy = proxy_shown ? proxy_shown : "";
	const char *ca = rq->smtp || !h ? rq->smtp_ca : h->ca_file;
	switch (code) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		buf_printf(&b, "TLS with %s%s%s failed: %s (certificates are checked against %s)",
			   origin ? origin : "?", via, proxy, text,
			   ca ? ca
			   : rq->smtp ? "the system's CA store; [mail] ca_file sets another"
				      : "the system's CA store; [graph] ca_file sets another");
		break;
	case CURLE_USE_SSL_FAILED:
		buf_printf(&b, "%s does not offer STARTTLS, which smtp:// requires (smtps:// is TLS "
			   "from the start): %s", origin ? origin : "?", text);
		break;
	case CURLE_LOGIN_DENIED:
		buf_printf(&b, "%s refused the login: %s", origin ? origin : "?", text);
		break;
	case CURLE_SEND_FAIL_REWIND: /* http_read_body */
		buf_printf(&b, "%s%s%s: the connection was lost after the request was sent, "
			   "before any answer (not sent again on another: it may have been "
			   "carried out)",
			   origin ? origin : "?", via, proxy);
		break;
	case CURLE_COULDNT_RESOLVE_PROXY:
#if CURL_AT_LEAST_VERSION(7, 73, 0)
	case CURLE_PROXY:
#endif
		buf_printf(&b, "the proxy %s for %s failed: %s", proxy, origin ? origin : "?", text);
		break;
	default:
		if (proxy_shown)
			buf_printf(&b, "%s through the proxy %s: %s", origin ? origin : "?", proxy, text);
		else
			buf_printf(&b, "%s: %s", origin ? origin : "?", text);
		break;
	}
	free(origin);
	return buf_steal(&b);
}

/* The response of an ended transfer, to its callback. */
void http_deliver(struct http *h, struct request *rq, CURL *easy, CURLcode code)
{
	struct http_response resp = {0};
	if (rq->smtp) {
		/* worked out by the worker thread (smtp_work) */
		resp.status = rq->smtp_status;
		resp.error = code == CURLE_OK ? 0 : http_smtp_errno(code, resp.status);
		if (code != CURLE_OK)
			resp.error_text = rq->error_message ? rq->error_message
				: rq->error_text[0] ? rq->error_text : curl_easy_strerror(code);
	} else if (code == CURLE_OK) {
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &resp.status);
	} else {
		resp.error = rq->too_large ? -EMSGSIZE : http_curl_errno(code);
		resp.error_text = rq->error_text[0] ? rq->error_text : curl_easy_strerror(code);
		if (!rq->too_large) {
			rq->error_message = http_describe_failure(h, rq, easy, code, resp.error_text);
			if (rq->error_message)
				resp.error_text = rq->error_message;
		}
		/* a timeout after the status line still counts as no answer */
	}
	struct buf *body = rq->smtp ? http_smtp_reply(rq, resp.status) : &rq->response;
	if (buf_append(body, "", 0) < 0 && !resp.error)
		resp.error = -ENOMEM;
	resp.body = body->data ? body->data : "";
	resp.body_len = body->len;
	resp.retry_after_ms = rq->retry_after_ms;
	resp.has_retry_after = rq->has_retry_after;
	resp.request_id = rq->request_id;
	resp.throttle_scope = rq->throttle_scope;
	rq->fn(rq->userdata, &resp);
}

static void finish_request(struct http *h, CURL *easy, CURLcode code)
{
	struct request *rq = NULL;
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&rq);
	curl_multi_remove_handle(h->multi, easy);
	unlink_request(h, rq);
	http_deliver(h, rq, easy, code);
	http_request_free(rq);
}

static void check_multi_info(struct http *h)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(h->multi, &left)))
		if (msg->msg == CURLMSG_DONE)
			finish_request(h, msg->easy_handle, msg->data.result);
}

static void on_deliver(uv_timer_t *t)
{
	struct http *h = t->data;
	while (h->n_ended > 0) {
		struct ended e = h->ended[0];
		memmove(h->ended, h->ended + 1, --h->n_ended * sizeof(*h->ended));
		finish_request(h, e.easy, e.code);
	}
	check_multi_info(h);
}

static void on_timer(uv_timer_t *timer);

/* Set aside what ended during http_post, for on_deliver. */
static void set_aside_ended(struct http *h)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(h->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		if (h->n_ended == h->cap_ended) {
			size_t cap = h->cap_ended ? 2 * h->cap_ended : 16;
			struct ended *e = realloc(h->ended, cap * sizeof(*e));
			if (!e) {
				/* cannot set it aside: finish it on the next turn via curl */
				uv_timer_start(&h->timer, on_timer, 0, 0);
				return;
			}
			h->ended = e;
			h->cap_ended = cap;
		}
		h->ended[h->n_ended++] = (struct ended){msg->easy_handle, msg->data.result};
	}
	if (h->n_ended > 0)
		uv_timer_start(h->deliver, on_deliver, 0, 0);
}

static void on_poll(uv_poll_t *poll, int status, int events);

/* Watch for these events; libuv re-registers the descriptor on every
 * uv_poll_start (two epoll_ctl calls), so only when they change. */
static void watch(struct socket_ctx *ctx, int events)
{
	if (events == ctx->events)
		return;
	ctx->events = events;
	if (events)
		uv_poll_start(&ctx->poll, events, on_poll);
	else
		uv_poll_stop(&ctx->poll);
}

static void on_poll(uv_poll_t *poll, int status, int events)
{
	struct socket_ctx *ctx = poll->data;
	struct http *h = ctx->http;
	if (ctx->idle) {
		/* the peer closed (or spoke on) a kept connection: curl finds out
		 * when it next picks it; stop watching until then */
		watch(ctx, 0);
		return;
	}
	int flags = 0;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	int running;
	curl_multi_socket_action(h->multi, ctx->fd, flags, &running);
	check_multi_info(h);
}

static void on_timer(uv_timer_t *timer)
{
	struct http *h = timer->data;
	int running;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_multi_info(h);
}

static int start_timeout(CURLM *multi, long timeout_ms, void *userp)
{
	struct http *h = userp;
	if (timeout_ms < 0)
		uv_timer_stop(&h->timer);
	else
		uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

static void on_poll_closed(uv_handle_t *handle)
{
	free(handle->data);
}

static struct socket_ctx *socket_find(struct http *h, curl_socket_t s)
{
	return s >= 0 && (size_t)s < h->n_socks ? h->socks[s] : NULL;
}

static struct socket_ctx *socket_add(struct http *h, curl_socket_t s)
{
	if (s < 0)
		return NULL;
	if ((size_t)s >= h->n_socks) {
		size_t n = (size_t)s + 16;
		struct socket_ctx **a = realloc(h->socks, n * sizeof(*a));
		if (!a)
			return NULL;
		memset(a + h->n_socks, 0, (n - h->n_socks) * sizeof(*a));
		h->socks = a;
		h->n_socks = n;
	}
	struct socket_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return NULL;
	ctx->fd = s;
	ctx->http = h;
	if (uv_poll_init_socket(h->loop, &ctx->poll, s) < 0) {
		free(ctx);
		return NULL;
	}
	ctx->poll.data = ctx;
	h->socks[s] = ctx;
	return ctx;
}

/* curl closes its sockets through here: the watcher goes first (libuv must
 * not watch a closed descriptor, whose number the kernel hands out again). */
static int on_close_socket(void *userp, curl_socket_t s)
{
	struct http *h = userp;
	struct socket_ctx *ctx = socket_find(h, s);
	if (ctx) {
		h->socks[s] = NULL;
		uv_close((uv_handle_t *)&ctx->poll, on_poll_closed);
	}
	return close(s);
}

static int handle_socket(CURL *easy, curl_socket_t s, int action, void *userp, void *socketp)
{
	struct http *h = userp;
	struct socket_ctx *ctx = socket_find(h, s);

	(void)easy;
	(void)socketp;
	if (action == CURL_POLL_REMOVE) {
		/* kept for the next transfer: still watched for readability
		 * (quiet on a live idle connection), no longer for writability */
		if (ctx) {
			ctx->idle = true;
			watch(ctx, ctx->events & UV_READABLE);
		}
		return 0;
	}
	if (!ctx && !(ctx = socket_add(h, s)))
		return -1;
	ctx->idle = false;
	int events = 0;
	if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
		events |= UV_READABLE;
	if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
		events |= UV_WRITABLE;
	watch(ctx, events);
	return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
	struct request *rq = userp;
	size_t n = size * nmemb;
	if (rq->response.len + n > HTTP_MAX_RESPONSE) {
		rq->too_large = true;
		return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
	}
	if (rq->response.len + n + 1 > rq->response.cap) {
		/* grow by hand, so that no freed copy of a token is left behind */
		size_t cap = rq->response.cap ? rq->response.cap : 2048;
		while (cap < rq->response.len + n + 1)
			cap *= 2;
		char *p = malloc(cap);
		if (!p)
			return 0;
		if (rq->response.data) {
			memcpy(p, rq->response.data, rq->response.len + 1);
			explicit_bzero(rq->response.data, rq->response.cap);
			free(rq->response.data);
		}
		rq->response.data = p;
		rq->response.cap = cap;
	}
	return buf_append(&rq->response, data, n) == 0 ? n : 0;
}

static char *trimmed_value(const char *v, size_t len)
{
	while (len && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
		len--;
	return strndup(v, len);
}

/* RFC 9110 §10.2.3; anything else is no Retry-After (the usual backoff) */
static void parse_retry_after(struct request *rq, const char *v)
{
	uint64_t ms;
	if (time_parse_retry_after(v, strlen(v), time_now_ms(), HTTP_RETRY_AFTER_MAX_MS, &ms) == 0) {
		rq->retry_after_ms = ms;
		rq->has_retry_after = 1;
	}
}

static size_t on_header(char *data, size_t size, size_t nitems, void *userp)
{
	struct request *rq = userp;
	size_t n = size * nitems;
	const char *colon = memchr(data, ':', n);
	if (!colon)
		return n;
	size_t name_len = (size_t)(colon - data);
	const char *v = colon + 1;
	size_t vlen = n - name_len - 1;
	if (name_len == 11 && strncasecmp(data, "retry-after", 11) == 0) {
		char *val = trimmed_value(v, vlen);
		if (val)
			parse_retry_after(rq, val);
		free(val);
	} else if (name_len == 10 && strncasecmp(data, "request-id", 10) == 0) {
		free(rq->request_id);
		rq->request_id = trimmed_value(v, vlen);
	} else if (name_len == 19 && strncasecmp(data, "x-ms-throttle-scope", 19) == 0) {
		free(rq->throttle_scope);
		rq->throttle_scope = trimmed_value(v, vlen);
	}
	return n;
}

/* curl_multi_init opens a socketpair of its own (its wakeup), without
 * close-on-exec in older versions: mark every descriptor above stdio. */
static void cloexec_all(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (*end || end == e->d_name || fd <= 2 || fd == dirfd(d))
			continue;
		int fl = fcntl((int)fd, F_GETFD);
		if (fl >= 0 && !(fl & FD_CLOEXEC))
			(void)fcntl((int)fd, F_SETFD, fl | FD_CLOEXEC);
	}
	closedir(d);
}

int http_create(uv_loop_t *loop, unsigned max_connections, struct http **ret)
{
	static int global_done;
	if (!global_done) {
		/* what curl frees is wiped: it copies the token (headers) and
		 * the secret (POST fields) into buffers of its own (secret.h) */
		if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, secret_wipe_malloc, secret_wipe_free,
					 secret_wipe_realloc, secret_wipe_strdup,
					 secret_wipe_calloc) != CURLE_OK)
			return -EIO;
		global_done = 1;
	}
	struct http *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->loop = loop;
	h->multi = curl_multi_init();
	cloexec_all();
	if (!h->multi) {
		free(h);
		return -ENOMEM;
	}
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	h->deliver = malloc(sizeof(*h->deliver));
	if (!h->deliver) {
		curl_multi_cleanup(h->multi);
		uv_close((uv_handle_t *)&h->timer, NULL);
		free(h);
		return -ENOMEM;
	}
	uv_timer_init(loop, h->deliver);
	h->deliver->data = h;
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, handle_socket);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, start_timeout);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)max_connections);
	/* HTTP/2: the in-flight requests share a connection as streams */
	curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	*ret = h;
	return 0;
}

static void on_timer_closed(uv_handle_t *handle)
{
	struct http *h = handle->data;
	free(h->socks);
	free(h);
}

static void on_deliver_closed(uv_handle_t *handle)
{
	free(handle);
}

void http_destroy(struct http *h)
{
	if (!h)
		return;
	h->closing = true;
	while (h->requests) {
		struct request *rq = h->requests;
		curl_multi_remove_handle(h->multi, rq->easy);
		unlink_request(h, rq);
		struct http_response resp = {.error = -ECANCELED, .error_text = "cancelled", .body = ""};
		rq->fn(rq->userdata, &resp);
		http_request_free(rq);
	}
	while (h->n_idle)
		curl_easy_cleanup(h->idle[--h->n_idle]);
	http_smtp_cancel_all(h);
	hdrs_unref(h->shared);
	h->shared = NULL;
	free(h->ca_file);
	free(h->proxy);
	free(h->proxy_shown);
	h->ca_file = h->proxy = h->proxy_shown = NULL;
	free(h->ended);
	h->ended = NULL;
	h->n_ended = 0;
	uv_close((uv_handle_t *)h->deliver, on_deliver_closed);
	curl_multi_cleanup(h->multi);
	uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}

int http_set_transport(struct http *h, const char *ca_file, const char *proxy)
{
	char *ca = ca_file ? strdup(ca_file) : NULL;
	char *px = proxy ? strdup(proxy) : NULL;
	char *shown = proxy ? origin_shown(proxy) : NULL;
	if ((ca_file && !ca) || (proxy && (!px || !shown))) {
		free(ca);
		free(px);
		free(shown);
		return -ENOMEM;
	}
	free(h->ca_file);
	free(h->proxy);
	free(h->proxy_shown);
	h->ca_file = ca;
	h->proxy = px;
	h->proxy_shown = shown;
	return 0;
}

/* TLS, proxy and HTTP version of one transfer (curl_easy_reset clears them). */
static void set_transport(struct http *h, CURL *e, const char *url)
{
	if (h->ca_file) {
		curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
		curl_easy_setopt(e, CURLOPT_PROXY_CAINFO, h->ca_file);
	}
	/* "" rather than unset: libcurl then uses no proxy and never reads
	 * http_proxy, https_proxy, all_proxy or no_proxy from the environment,
	 * so a unit's environment cannot send the traffic elsewhere; NOPROXY ""
	 * keeps an environment's no_proxy from bypassing a configured one */
	curl_easy_setopt(e, CURLOPT_PROXY, h->proxy ? h->proxy : "");
	curl_easy_setopt(e, CURLOPT_NOPROXY, "");
	/* HTTP/2 where TLS's ALPN offers it, else HTTP/1.1; a transfer that
	 * starts while the first connection is still being set up waits to learn
	 * whether it can share it rather than opening another (https only:
	 * plain http is always HTTP/1.1 here, nothing to wait for) */
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	if (strncasecmp(url, "https:", 6) == 0)
		curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
}

/* The options every transfer has: its request, the sockets' hooks, the
 * error buffer, no signals, the timeouts. */
static void set_common(struct http *h, struct request *rq, uint64_t timeout_ms)
{
	CURL *e = rq->easy;
	curl_easy_setopt(e, CURLOPT_PRIVATE, rq);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, http_open_socket);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, h);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, rq->error_text);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(timeout_ms < 10000 ? timeout_ms : 10000));
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
}

/* Hand a set-up transfer to the multi handle and start it. 0 or -ENOMEM
 * (rq then still the caller's). */
static int start_request(struct http *h, struct request *rq)
{
	if (curl_multi_add_handle(h->multi, rq->easy) != CURLM_OK)
		return -ENOMEM;
	rq->next = h->requests;
	if (h->requests)
		h->requests->prev = rq;
	h->requests = rq;
	h->active++;
	/* start it now rather than on the next loop turn (curl asked for a 0 ms
	 * timeout); what ends meanwhile is delivered on the next turn */
	int running;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	set_aside_ended(h);
	return 0;
}

/* The request's body (an SMTP transfer's message too), read by curl as it
 * sends it, and never rewound:
 * curl sends a request again by itself, on a fresh connection, when a
 * reused one died before any byte of the answer (up to 5 times), and an
 * invitation Graph made before the connection died would be made twice
 * unseen (SPEC R5; tests/integration/test-hidden-retry.py). Without a
 * seek callback curl cannot rewind: it ends the transfer with
 * CURLE_SEND_FAIL_REWIND, an attempt whose fate is unknown like any
 * other reset. */
size_t http_read_body(char *dst, size_t size, size_t nmemb, void *userp)
{
	struct request *rq = userp;
	size_t room = size * nmemb, left = rq->body_len - rq->body_off;
	size_t n = left < room ? left : room;
	memcpy(dst, rq->body + rq->body_off, n);
	rq->body_off += n;
	return n;
}

int http_post(struct http *h, const struct http_post_spec *spec, char *body, size_t body_len,
	      http_done_fn fn, void *userdata)
{
	int r = -ENOMEM;
	struct request *rq = calloc(1, sizeof(*rq));
	if (!rq) {
		free(body);
		return -ENOMEM;
	}
	rq->http = h;
	rq->body = body;
	rq->body_len = body_len;
	rq->fn = fn;
	rq->userdata = userdata;
	buf_init(&rq->response);
	buf_reserve(&rq->response, 2048); /* a Graph answer fits: no regrowth */
	rq->easy = h->n_idle ? h->idle[--h->n_idle] : curl_easy_init();
	if (!rq->easy)
		goto fail;

	rq->headers = hdrs_get(h, spec);
	if (!rq->headers)
		goto fail;

	CURL *e = rq->easy;
	curl_easy_setopt(e, CURLOPT_URL, spec->url);
	set_transport(h, e, spec->url);
	if (spec->get) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, http_read_body);
		curl_easy_setopt(e, CURLOPT_READDATA, rq);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, rq->headers->list);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, rq);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, rq);
	set_common(h, rq, spec->timeout_ms);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "invited/" INVITED_VERSION);
	r = start_request(h, rq);
	if (r < 0)
		goto fail;
	return 0;
fail:
	http_request_free(rq);
	return r;
}

unsigned http_active(const struct http *h)
{
	return h->active;
}

char *http_form_escape(const char *text)
{
	char *e = curl_easy_escape(NULL, text, 0);
	if (!e)
		return NULL;
	char *copy = strdup(e);
	curl_free(e);
	return copy;
}

const char *http_error_code(int error)
{
	switch (error) {
	case -ETIMEDOUT:
		return "Timeout";
	case -ECONNREFUSED:
		return "ConnectionRefused";
	case -ECONNRESET:
		return "ConnectionReset";
	case -EHOSTUNREACH:
		return "HostUnreachable";
	case -EMSGSIZE:
		return "ResponseTooLarge";
	case -EPROTO:
		return "BadResponse";
	case -EPROTONOSUPPORT: /* SMTP: the relay offers no STARTTLS */
		return "TLSRequired";
	case -EACCES: /* SMTP: AUTH refused */
		return "AuthenticationFailed";
	case -ECANCELED:
		return "Cancelled";
	default:
		return "TransportError";
	}
}
