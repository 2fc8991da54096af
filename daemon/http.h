/* SPDX-License-Identifier: MIT */
/*
 * http: the only libcurl user. HTTP POSTs through curl's multi interface,
 * driven by the libuv loop (uv_poll per socket, one uv_timer), so that no
 * call ever blocks the loop. Connections are kept alive and reused.
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
				 * -EPROTO (bad answer), -EMSGSIZE (body too large), -EIO */
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
