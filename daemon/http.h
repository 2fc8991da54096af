/* SPDX-License-Identifier: MIT */
/*
 * http: the only libcurl user (http.c, and http-smtp.c for SMTP). HTTP
 * POSTs through curl's multi interface, driven by the libuv loop (uv_poll
 * per socket, one uv_timer), so that no call ever blocks the loop.
 * Connections are kept alive and reused.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HTTP_MAX_RESPONSE (1u << 20) /* bytes of body kept; more is an error */
/* The longest pause a Retry-After can ask for: longer ones are capped. */
#define HTTP_RETRY_AFTER_MAX_MS 86400000u

struct http_response {
	long status;            /* 0 when no HTTP answer came */
	int error;              /* 0, or -ECANCELED (http_destroy), -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -EHOSTUNREACH,
				 * -EPROTO (bad answer; SMTP: a 4xx/5xx reply, see status), -EMSGSIZE (body too large),
				 * -EACCES (SMTP: login refused), -EPROTONOSUPPORT (SMTP: no STARTTLS), -EIO */
	const char *error_text; /* curl's words for error, else NULL */
	const char *body;       /* NUL-terminated, may be empty */
	size_t body_len;
	uint64_t retry_after_ms; /* from Retry-After (time_parse_retry_after) */
	int has_retry_after;
	const char *request_id;  /* the request-id header, or NULL */
	const char *throttle_scope; /* the x-ms-throttle-scope header, or NULL */
};

/* Everything borrowed, valid during the call only. */
typedef void (*http_done_fn)(void *userdata, const struct http_response *resp);

struct http_post_spec {
	const char *url;
	const char *content_type;  /* e.g. "application/json" */
	const char *authorization; /* whole header value, e.g. "Bearer ..."; NULL: none */
	const char *extra_header;  /* one more "Name: value" header, or NULL */
	const char *client_request_id; /* sent as a client-request-id header, or NULL */
	uint64_t timeout_ms;       /* the whole exchange, connecting included */
	int get;                   /* a GET instead (body NULL, 0): `check` reads a policy */
};

struct http;

/* max_connections: connections kept open for reuse. */
int http_create(uv_loop_t *loop, unsigned max_connections, struct http **ret);
/* TLS and proxy for every later request (the token's and Graph's alike).
 * ca_file: PEM bundle the servers' certificates are checked against,
 * instead of the system's store; NULL: the system's store. proxy: an
 * http:// or https:// proxy URL every request goes through (CONNECT);
 * NULL: none. The *_proxy environment variables are never read. Copied. */
int http_set_transport(struct http *h, const char *ca_file, const char *proxy);
/* Aborts requests still running (their callbacks get error -ECANCELED) and
 * closes the handles; the loop must run once more to finish closing. NULL ok. */
void http_destroy(struct http *h);

/* Start a POST. body: takes ownership (malloc'd, body_len bytes). fn is
 * called exactly once, later, from the loop (never from inside http_post). */
int http_post(struct http *h, const struct http_post_spec *spec, char *body, size_t body_len,
	      http_done_fn fn, void *userdata);

/* Requests under way. */
unsigned http_active(const struct http *h);

/* URL-encode text for a form body: returned string owned by caller, NULL on OOM. */
char *http_form_escape(const char *text);

/* A word for a transfer's error (resp->error, HTTP and SMTP alike), kept as
 * a row's or a mail's error_code: "Timeout", "ConnectionRefused", ...;
 * "TransportError" for any other. Static. */
const char *http_error_code(int error);

/* ---- SMTP (issue 13): the invitation mail through a relay ----
 * Through libcurl, never blocking the loop: libcurl's SMTP waits blocking
 * on a multi handle (for the answer to the end of the message, and for
 * QUIT's), so each transfer runs on a worker thread of the loop's pool
 * (uv_queue_work), at most one at a time (the others queue in http), with
 * its own connection, and its outcome is delivered on the loop. smtp://
 * must offer STARTTLS (CURLUSESSL_ALL: without it nothing is sent);
 * smtps:// is TLS from the first byte. The relay is reached directly, never
 * through http_set_transport's proxy. Certificates are checked against
 * ca_file, else http_set_transport's, else the system's store. The
 * password is copied by curl into memory wiped when freed, never logged:
 * curl's trace goes to a callback that keeps only the server's replies
 * (never what is sent, the AUTH exchange among it). curl's QUIT after the
 * answer that matters is given up after a second, the whole exchange at
 * timeout_ms + 1 s; http_destroy answers the transfers -ECANCELED at once
 * (one on a worker thread stops within a second). */
struct http_smtp_spec {
	const char *url;        /* smtp://host:587 or smtps://host:465 */
	const char *user, *password; /* AUTH; password never logged; NULL user: no AUTH */
	const char *mail_from;  /* envelope sender */
	const char *rcpt;       /* one recipient */
	const char *ca_file;    /* NULL: http's CA setting (http_set_transport), else this one */
	uint64_t timeout_ms;
	int check_only;         /* connect, TLS, AUTH, no message (CURLOPT_CONNECT_ONLY) */
};
/* Send message[0..len) (an RFC 5322 message with CRLF line ends, e.g.
 * mailmsg_smtp_message's) to rcpt. spec borrowed for the call; message
 * taken over (freed; may be NULL with check_only). Counted in
 * http_active(). fn is called exactly once, later, from the loop (never
 * from inside http_smtp_send): resp->status is the server's last SMTP reply
 * code (e.g. 250, 235 after a check, 451, 550), 0 when none; resp->error
 * and error_text as for HTTP (a 4xx/5xx reply: -EPROTO); resp->body the
 * server's last reply (its lines joined by '\n', at most 4 KiB), "" when
 * none. -EINVAL (url not smtp:// or smtps://; mail_from or rcpt empty,
 * over 320 bytes, or holding a space, a control character, '<' or '>';
 * a user without a password or with a line break) or -ENOMEM, fn then
 * never called. */
int http_smtp_send(struct http *h, const struct http_smtp_spec *spec, char *message, size_t len,
		   http_done_fn fn, void *userdata);
