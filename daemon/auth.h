/* SPDX-License-Identifier: MIT */
/*
 * auth: the client-credentials token (GRAPH.md §2). One request at a time,
 * cached, refreshed ahead of expiry (at 80% of its lifetime) while the old
 * token stays in use; failures retried with backoff and kept as a reason
 * that status and jobs show.
 */
#pragma once

#include <stdint.h>
#include <uv.h>

struct crypto_cert;
struct http;

enum auth_state {
	AUTH_STATE_NONE,     /* no token yet, none asked for */
	AUTH_STATE_FETCHING, /* first request under way */
	AUTH_STATE_VALID,    /* a usable token is held (a refresh may be under way) */
	AUTH_STATE_ERROR,    /* the last request failed; retrying later */
};

struct auth_options {
	const char *authority_url; /* https://login.microsoftonline.com */
	const char *tenant;
	const char *client_id;
	const char *graph_url;     /* the scope is its origin + "/.default" */
	uint64_t timeout_ms;
	/* borrowed, outlives the module: sign a client assertion with it
	 * instead of sending a secret (GRAPH.md §2) */
	const struct crypto_cert *cert;
};

/* Called on the loop when a token became usable (state VALID). */
typedef void (*auth_ready_fn)(void *userdata);

struct auth;

/* secret: borrowed; copied into secret memory (secret.h). NULL when
 * opt->cert is set. The token is kept in secret memory too. */
int auth_create(uv_loop_t *loop, struct http *http, const struct auth_options *opt,
		const char *secret, auth_ready_fn ready, void *userdata, struct auth **ret);
void auth_destroy(struct auth *a);

/* Ask for a token now if none is held or being fetched. */
void auth_start(struct auth *a);
/* The Authorization header value ("Bearer ..."), borrowed until the next
 * token arrives, or NULL when no usable token is held. */
const char *auth_header(struct auth *a);
/* Which token auth_header() returns now: changes with every new token. */
uint64_t auth_generation(const struct auth *a);
/* A 401 came back for a request sent with token `generation`: drop that
 * token (once: a newer one stays) and fetch a new one. */
void auth_reject(struct auth *a, uint64_t generation);

/* Read the token endpoint's answer (pure; no I/O). On success returns 0 with
 * *ret_token (owned; the bare access token) and *ret_ttl_s; otherwise
 * -EINVAL with *ret_why (owned): Graph's error and error_description. */
int auth_parse_reply(long status, const char *body, size_t len, char **ret_token,
		     long long *ret_ttl_s, char **ret_why);

enum auth_state auth_state(const struct auth *a);
/* Seconds until the held token expires, or -1. */
int64_t auth_expires_in_s(const struct auth *a);
/* Why the last request failed (borrowed), or NULL. */
const char *auth_error(const struct auth *a);
uint64_t auth_refreshes(const struct auth *a);
/* The request timeout for the token endpoint (on reload). */
void auth_set_timeout(struct auth *a, uint64_t timeout_ms);
