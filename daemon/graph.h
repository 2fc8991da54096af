/* SPDX-License-Identifier: MIT */
/*
 * graph: Microsoft Graph's invitation request and reply (GRAPH.md §3), and
 * what each reply means for the row: done, failed for good, worth another
 * try, a token problem, or the tenant-wide anti-abuse block. Pure: no I/O.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_response;
struct store_claim;

enum graph_outcome {
	GRAPH_OUTCOME_CREATED,   /* 201: invited */
	GRAPH_OUTCOME_FAILED,    /* the row fails now (4xx other than below) */
	GRAPH_OUTCOME_TRANSIENT, /* 408, 5xx, timeouts, resets: back off and retry */
	GRAPH_OUTCOME_THROTTLED, /* 429, or 503 with Retry-After: pause the tenant */
	GRAPH_OUTCOME_AUTH,      /* 401: new token, then retry */
	GRAPH_OUTCOME_BLOCKED,   /* 403 anti-abuse block: stop the tenant */
};

/* Whose budget a 429 says is spent (x-ms-throttle-scope, GRAPH.md §4). */
enum graph_throttle_scope {
	GRAPH_THROTTLE_UNKNOWN = 0, /* no header: the tenant's, as before */
	GRAPH_THROTTLE_TENANT,      /* Tenant_Application/..., Tenant/...: this tenant only */
	GRAPH_THROTTLE_APPLICATION, /* Application/...: every tenant of the application */
};

/* The scope of an x-ms-throttle-scope value (NULL ok). Pure. */
enum graph_throttle_scope graph_throttle_scope_parse(const char *value);

/* Every string in a graph_result is valid UTF-8 (SPEC §9): what Graph sent
 * that is not is kept with each invalid byte replaced by U+FFFD. */
struct graph_result {
	enum graph_outcome outcome;
	long http_status;      /* 0: no HTTP answer */
	char *error_code;      /* Graph's error.code, or our own for transport errors */
	char *error_message;   /* Graph's error.message, or what went wrong */
	char *request_id;
	char *invited_user_id; /* CREATED only */
	char *invite_redeem_url;
	uint64_t retry_after_ms;
	bool has_retry_after;
	enum graph_throttle_scope throttle_scope; /* THROTTLED only */
};

/* client-request-id (GRAPH.md §3): a GUID the client picks per request,
 * 36 characters. */
#define GRAPH_CLIENT_REQUEST_ID_LEN 36
/* A new random (version 4) GUID into out. */
void graph_new_request_id(char out[GRAPH_CLIENT_REQUEST_ID_LEN + 1]);

/* s[0..len) as a NUL-terminated valid UTF-8 copy (owned): each byte that is
 * not part of a valid sequence becomes U+FFFD. NULL when out of memory. */
char *graph_utf8_dup(const char *s, size_t len);

/* The POST /invitations body for a claimed row. *ret_body owned by caller. */
int graph_invitation_body(const struct store_claim *c, char **ret_body, size_t *ret_len);

/* Read an answer. Strings in *ret owned (graph_result_clear). 0 or -ENOMEM. */
int graph_classify(const struct http_response *resp, struct graph_result *ret);
void graph_result_clear(struct graph_result *res);

/* URL of the invitations endpoint for a graph base URL (owned). */
char *graph_invitations_url(const char *graph_url);

/* JSON batching (GRAPH.md §5): at most this many requests in one $batch. */
#define GRAPH_BATCH_MAX 20

/* The $batch URL for a graph base URL (owned). */
char *graph_batch_url(const char *graph_url);
/* A $batch body with one POST /invitations per claim; item ids are "1".."n",
 * each with the claim's client_request_id (when set) in its headers. */
int graph_batch_body(struct store_claim *const *claims, size_t n, char **ret_body, size_t *ret_len);

/* Read a $batch answer for n items into results[0..n) (each as
 * graph_classify would read a single answer; an item missing from the
 * answer is TRANSIENT). Returns 0; GRAPH_BATCH_REFUSED when the service
 * does not take /invitations in a batch (the envelope is a 4xx, or every
 * item got the same 4xx): results untouched; GRAPH_BATCH_WHOLE when the
 * envelope itself is an error (429, 5xx, transport): classify resp once
 * for all items; or -ENOMEM. */
#define GRAPH_BATCH_REFUSED 1
#define GRAPH_BATCH_WHOLE 2
int graph_batch_classify(const struct http_response *resp, size_t n, struct graph_result *results);
