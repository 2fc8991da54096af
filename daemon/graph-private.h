/* SPDX-License-Identifier: MIT */
/*
 * graph-private: what the graph module's files (graph*.c) share and nobody
 * else sees. The public API is graph.h; this header is never included
 * outside daemon/graph*.c.
 *
 *   graph.c      the answer reader (a small JSON scanner), the $batch
 *                envelope reader, invitations: the POST /invitations
 *                body, a $batch of them, what their answers mean
 *   graph-dir.c  the directory (lookups, group additions, the reads that
 *                track acceptance) and sendMail: URLs, bodies, what their
 *                answers mean
 */
#pragma once

#include "graph.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* A string from the other side (a header, curl's words), made valid UTF-8. */
static inline char *dup_or_null(const char *s)
{
	return s ? graph_utf8_dup(s, strlen(s)) : NULL;
}

/* What a transport failure (resp->error: no HTTP answer) says, for an
 * invitation's result and a directory request's alike: its Retry-After,
 * the request id, our code for the error and curl's words (else "no
 * answer"). The strings are valid UTF-8, owned by the caller, each NULL
 * when out of memory (the caller decides which it cannot do without). */
static inline void transport_error_fields(const struct http_response *resp,
					  uint64_t *ret_retry_after_ms, bool *ret_has_retry_after,
					  char **ret_request_id, char **ret_code, char **ret_message)
{
	*ret_retry_after_ms = resp->retry_after_ms;
	*ret_has_retry_after = resp->has_retry_after;
	*ret_request_id = dup_or_null(resp->request_id);
	*ret_code = strdup(http_error_code(resp->error));
	*ret_message = dup_or_null(resp->error_text ? resp->error_text : "no answer");
}

/* ---- the answer reader (graph.c) ---- */

/* The text [p, end) the reader walks. */
struct scan {
	const char *p, *end;
};

/* The members of an answer's body that matter: an invitation's, or (dir)
 * a directory read's. */
struct answer {
	char *user_id, *redeem_url;          /* 201 */
	char *code, *message, *request_id;   /* error.code, error.message, error.innerError.request-id */
	struct graph_user user;              /* dir: the top-level user (GET /users/{id}) */
	struct graph_user pick;              /* dir: a lookup's "value" user (guest first) */
	bool value_seen;                     /* dir: "value" was a list */
};

static inline void user_clear(struct graph_user *u)
{
	free(u->id);
	free(u->user_type);
	free(u->mail);
	free(u->external_state);
	memset(u, 0, sizeof(*u));
}

/* Frees what a holds and zeroes it. */
void graph_answer_clear(struct answer *a);

/* Read an answer body (an object at s's position) into a (strings owned by
 * a: graph_answer_clear); dir: a directory read's members, not an
 * invitation's. False when the text is not one we can read. */
bool graph_answer_read(struct scan *s, struct answer *a, bool dir, int depth);

/* What an error body that is not Graph's JSON looked like (owned; NULL when
 * out of memory). */
char *graph_unreadable_message(const char *body, size_t len);

/* The request-id header (valid UTF-8), else the body's innerError one
 * (taken from a). */
static inline char *answer_request_id(const char *header, struct answer *a)
{
	if (header)
		return graph_utf8_dup(header, strlen(header));
	char *id = a->request_id;
	a->request_id = NULL;
	return id;
}

/* A failed answer's code and message (taken from a, owned by the caller);
 * *ret_code NULL when out of memory. */
void graph_error_fields(long status, bool readable, struct answer *a, const char *body,
			size_t body_len, char **ret_code, char **ret_message);

/* ---- the $batch envelope reader (graph.c) ---- */

struct item {
	bool present;
	bool readable;
	long status;
	bool has_retry_after;
	uint64_t retry_after_ms;
	char *request_id;
	enum graph_throttle_scope throttle_scope;
	struct answer a;
};

static inline void item_clear(struct item *it)
{
	free(it->request_id);
	graph_answer_clear(&it->a);
	memset(it, 0, sizeof(*it));
}

/* What a $batch item without an answer (absent, or no status) is taken
 * for: a transfer that failed, so that the item is tried again. */
static inline struct http_response graph_item_missing(const struct item *it)
{
	return (struct http_response){.error = -EPROTO,
				      .error_text = it->present
							    ? "a batch item without a status"
							    : "no answer for this item in the batch",
				      .body = ""};
}

/* A $batch envelope's items, by id, into items[0..n) (n <= GRAPH_BATCH_MAX;
 * item_clear each after, whatever is returned). dir: the items are
 * directory reads. False when the envelope cannot be read. */
bool graph_batch_read(const struct http_response *resp, size_t n, bool dir, struct item *items);
