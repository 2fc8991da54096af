/* SPDX-License-Identifier: MIT */
/*
 * http-private: what the http module's files (http*.c, libcurl's only
 * users) share and nobody else sees. The public API is http.h; this header
 * is never included outside daemon/http*.c.
 *
 *   http.c       HTTP on the curl multi handle driven by libuv (requests,
 *                sockets, timers, headers), the failure description, the
 *                delivery of every transfer's outcome
 *   http-smtp.c  SMTP (http_smtp_send): envelope checks, the reply
 *                collector, the transfers on the loop's worker threads
 */
#pragma once

#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"

struct http {
	uv_loop_t *loop;
	struct hdrs *shared; /* the most recent set without an extra header */
	CURLM *multi;
	uv_timer_t timer;
	struct request *requests; /* under way, for http_destroy() */
	unsigned active;
	CURL *idle[64]; /* easy handles kept for reuse (curl_easy_reset) */
	unsigned n_idle;
	/* transfers that ended while http_post started another: their callbacks
	 * run on the next loop turn (never from inside http_post) */
	struct ended {
		CURL *easy;
		CURLcode code;
	} *ended;
	size_t n_ended, cap_ended;
	uv_timer_t *deliver;
	/* the socket watchers, by descriptor: each lives from the socket's first
	 * use to its close (on_close_socket), across the transfers it carries */
	struct socket_ctx **socks;
	size_t n_socks;
	bool closing;
	/* http_set_transport */
	char *ca_file; /* owned; NULL: the system's CA store */
	char *proxy;   /* owned; NULL: no proxy (the environment is never read) */
	char *proxy_shown; /* owned; the proxy without user:password, for messages */
	/* SMTP transfers (http_smtp_send), oldest first: each runs on a worker
	 * thread, at most HTTP_SMTP_THREADS at once, the others wait here */
	struct request *smtp_head, *smtp_tail;
	unsigned smtp_running;
};

struct request {
	struct http *http;
	struct request *prev, *next;
	CURL *easy;
	struct hdrs *headers;
	char *body;
	size_t body_len;
	struct buf response;
	char *request_id;
	char *throttle_scope;
	uint64_t retry_after_ms;
	int has_retry_after;
	bool too_large;
	http_done_fn fn;
	void *userdata;
	char *error_message; /* owned; what failed and where (http_describe_failure) */
	char error_text[CURL_ERROR_SIZE];
	size_t body_off; /* what curl has read of body (http_read_body) */
	/* SMTP (http_smtp_send): body is the message */
	bool smtp;
	struct curl_slist *rcpt;
	char *smtp_ca;          /* owned; the CA file this transfer checks against, NULL: system's */
	struct buf reply;       /* the server's last reply, its lines joined by '\n' */
	struct buf reply_line;  /* a line of it still coming */
	struct buf refusal;     /* the last reply with a 4xx or 5xx code (QUIT's 221 may follow it) */
	bool reply_complete;    /* reply holds a whole reply: the next line starts another */
	uint64_t refused_ms;    /* when a 4xx/5xx reply, or the message's 250, came (0: none):
				 * only curl's QUIT is left */
	uint64_t deadline_ms;   /* start + timeout: past it, even curl's QUIT is given up */
	uv_work_t work;         /* the worker thread's turn */
	bool started;           /* handed to a worker thread */
	atomic_bool cancel;     /* http_destroy: give up at the next progress call */
	CURLcode code;          /* curl_easy_perform's, set by the worker */
	long smtp_status;       /* the last reply code, set by the worker */
};

/* A transfer's failure, as a negative errno (http.h). */
static inline int http_curl_errno(CURLcode c)
{
	switch (c) {
	case CURLE_OK:
		return 0;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_SEND_FAIL_REWIND: /* a reused connection died: not sent again (http_read_body) */
		return -ECONNRESET;
	case CURLE_WRITE_ERROR:
		return -EMSGSIZE;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return -EPROTO;
	default:
		return -EIO;
	}
}

/* The next two are SMTP's, read by deliver (http.c) alone: static inline
 * here, so that deliver compiles as before the split (it inlines both). */

/* An SMTP transfer's failure: a refusal by the server (a 4xx or 5xx reply:
 * what it means is in the code) is -EPROTO, the login refused -EACCES, no
 * STARTTLS -EPROTONOSUPPORT; the rest as for HTTP. */
static inline int http_smtp_errno(CURLcode c, long reply)
{
	switch (c) {
	case CURLE_LOGIN_DENIED:
		return -EACCES;
	case CURLE_USE_SSL_FAILED:
		return -EPROTONOSUPPORT;
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OUT_OF_MEMORY:
		return http_curl_errno(c);
	default:
		return reply >= 400 ? -EPROTO : http_curl_errno(c);
	}
}

/* The reply the transfer's outcome is about: the refusal whose code is
 * the last code curl read, else the last reply. */
static inline struct buf *http_smtp_reply(struct request *rq, long status)
{
	char code[8];
	int n = snprintf(code, sizeof(code), "%ld", status);
	if (status >= 400 && n == 3 && rq->refusal.len >= 3 && memcmp(rq->refusal.data, code, 3) == 0)
		return &rq->refusal;
	return &rq->reply;
}

/* Every socket curl opens is close-on-exec: nothing spawned by this process
 * inherits a Graph connection (defence in depth: the on_complete command is
 * spawned by a helper that holds none, hook.h). */
static inline curl_socket_t http_open_socket(void *userp, curlsocktype purpose,
					       struct curl_sockaddr *address)
{
	(void)userp;
	(void)purpose;
	return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

/* What one file of the module calls in the other. HTTP_SHARED keeps
 * them out of the dynamic symbol table, so that under -fPIC a call to them
 * from their own file compiles as a call to the static function each was
 * (the HTTP path's code unchanged by the split), never through the PLT. */
#define HTTP_SHARED __attribute__((visibility("hidden")))

/* http.c */
/* Frees rq and what it owns (NULL ok); its easy handle is kept for reuse
 * while rq->http has room (rq->http NULL: cleaned up). */
HTTP_SHARED void http_request_free(struct request *rq);
/* What failed and where (h NULL: an SMTP transfer, which has no proxy).
 * Returned, owned by the caller; NULL: keep curl's words (or out of memory). */
HTTP_SHARED char *http_describe_failure(const struct http *h, const struct request *rq,
					CURL *easy, CURLcode code, const char *text);
/* The outcome of an ended transfer, to its callback (rq stays the caller's). */
HTTP_SHARED void http_deliver(struct http *h, struct request *rq, CURL *easy, CURLcode code);

/* http-smtp.c */
/* http_destroy: every SMTP transfer is answered -ECANCELED (those on a
 * worker thread are freed when the loop gets them back). */
HTTP_SHARED void http_smtp_cancel_all(struct http *h);
/* curl's read callback for rq's body (userp), from body_off on; it has no
 * seek, so that curl never sends a request again by itself (http.c). */
HTTP_SHARED size_t http_read_body(char *dst, size_t size, size_t nmemb, void *userp);
