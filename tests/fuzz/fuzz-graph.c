/* SPDX-License-Identifier: MIT */
/*
 * fuzz-graph: what the daemon makes of Graph's answers (graph_classify) and
 * the invitation body it sends (graph_invitation_body).
 *
 * Input: bytes 0-1 pick the HTTP status (or a transport error), byte 2 the
 * Retry-After and request-id headers, the rest is the body. The outcome must
 * follow GRAPH.md §3 whatever the body says: 401 always refreshes the token,
 * 429 always throttles, 5xx never fails the row, only a 200/201 with an
 * invitedUser.id counts as created, and every non-created answer carries an
 * error code. The same bytes, cut at NULs, are then the row's fields: the
 * body must be JSON that gives them back unchanged. Every string read is
 * valid UTF-8, and the body read as a Retry-After value never asks for more
 * than the longest pause.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "graph.h"
#include "http.h"
#include "store.h"
#include "timeutil.h"

static const int transport_errors[] = {-ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -EHOSTUNREACH,
                                       -EPROTO,    -EMSGSIZE,     -EIO,        -ECANCELED};

static void classify(const uint8_t *data, size_t size)
{
	unsigned sel = (unsigned)data[0] << 8 | data[1];
	uint8_t flags = data[2];
	char *body = malloc(size - 3 + 1);
	FUZZ_ASSERT(body);
	memcpy(body, data + 3, size - 3);
	body[size - 3] = '\0';

	struct http_response resp = {
	    .body = body,
	    .body_len = size - 3,
	    .has_retry_after = flags & 1,
	    .retry_after_ms = (flags & 1) ? (uint64_t)(flags >> 4) * 1000u : 0,
	    .request_id = (flags & 2) ? "req-fuzz" : NULL,
	};
	if (sel >= 0xff00) {
		resp.error = transport_errors[sel % (sizeof(transport_errors) / sizeof(int))];
		resp.error_text = (flags & 4) ? "curl says" : NULL;
	} else {
		resp.status = 100 + (long)(sel % 500); /* 100..599 */
	}

	struct graph_result g;
	FUZZ_ASSERT(graph_classify(&resp, &g) == 0);
	long st = resp.status;
	if (resp.error) {
		FUZZ_ASSERT(g.outcome == GRAPH_OUTCOME_TRANSIENT);
		FUZZ_ASSERT(g.http_status == 0);
	} else if (g.outcome == GRAPH_OUTCOME_CREATED) {
		FUZZ_ASSERT(st == 200 || st == 201);
		FUZZ_ASSERT(g.invited_user_id != NULL);
	} else if (st == 401) {
		FUZZ_ASSERT(g.outcome == GRAPH_OUTCOME_AUTH);
	} else if (st == 429) {
		FUZZ_ASSERT(g.outcome == GRAPH_OUTCOME_THROTTLED);
	} else if (st >= 500 || st == 408) {
		FUZZ_ASSERT(g.outcome == GRAPH_OUTCOME_TRANSIENT ||
		            g.outcome == GRAPH_OUTCOME_THROTTLED);
	} else if (st == 200 || st == 201) {
		FUZZ_ASSERT(g.outcome == GRAPH_OUTCOME_TRANSIENT); /* unreadable success */
	} else if (st != 403) {
		FUZZ_ASSERT(g.outcome == GRAPH_OUTCOME_FAILED);
	} else {
		FUZZ_ASSERT(g.outcome == GRAPH_OUTCOME_FAILED ||
		            g.outcome == GRAPH_OUTCOME_BLOCKED);
	}
	if (g.outcome != GRAPH_OUTCOME_CREATED)
		FUZZ_ASSERT(g.error_code && *g.error_code && !g.invited_user_id);
	if (resp.request_id)
		FUZZ_ASSERT(g.request_id && strcmp(g.request_id, "req-fuzz") == 0);
	FUZZ_ASSERT(g.has_retry_after == resp.has_retry_after);
	/* SPEC §9: every string from Graph is valid UTF-8 once read */
	const char *strs[] = {g.error_code, g.error_message, g.request_id, g.invited_user_id,
	                      g.invite_redeem_url};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		json_t *js = strs[i] ? json_string(strs[i]) : NULL;
		FUZZ_ASSERT(!strs[i] || js);
		json_decref(js);
	}
	graph_result_clear(&g);
	/* the body as a Retry-After value: read or refused, never past the cap */
	uint64_t wait = 0;
	if (time_parse_retry_after(body, size - 3, 784111740000u, HTTP_RETRY_AFTER_MAX_MS, &wait) == 0)
		FUZZ_ASSERT(wait <= HTTP_RETRY_AFTER_MAX_MS);
	free(body);
}

/* The next NUL-terminated piece of data, or NULL when the input ran out. */
static char *piece(const uint8_t **data, size_t *size)
{
	if (*size == 0)
		return NULL;
	const uint8_t *end = memchr(*data, 0, *size);
	size_t n = end ? (size_t)(end - *data) : *size;
	char *s = strndup((const char *)*data, n);
	FUZZ_ASSERT(s);
	*data += n + (end ? 1 : 0);
	*size -= n + (end ? 1 : 0);
	return s;
}

static bool utf8(const char *s)
{
	json_t *j = s ? json_string(s) : NULL;
	json_decref(j);
	return !s || j;
}

static void is_field(json_t *v, const char *want)
{
	if (!want)
		FUZZ_ASSERT(v == NULL);
	else
		FUZZ_ASSERT(json_is_string(v) && strcmp(json_string_value(v), want) == 0);
}

static void body(const uint8_t *data, size_t size)
{
	struct store_claim c = {.send_email = size & 1};
	c.email = piece(&data, &size);
	c.redirect_url = piece(&data, &size);
	c.display_name = piece(&data, &size);
	c.message = piece(&data, &size);
	c.language = piece(&data, &size);
	c.cc = piece(&data, &size);
	if (!c.email || !c.redirect_url || !utf8(c.email) || !utf8(c.redirect_url) ||
	    !utf8(c.display_name) || !utf8(c.message) || !utf8(c.language) || !utf8(c.cc))
		goto out; /* the store only holds valid UTF-8 (csv checks it) */

	char *text;
	size_t len;
	FUZZ_ASSERT(graph_invitation_body(&c, &text, &len) == 0);
	FUZZ_ASSERT(strlen(text) == len);
	json_error_t err;
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
	FUZZ_ASSERT(json_is_object(o));
	is_field(json_object_get(o, "invitedUserEmailAddress"), c.email);
	is_field(json_object_get(o, "inviteRedirectUrl"), c.redirect_url);
	is_field(json_object_get(o, "invitedUserDisplayName"), c.display_name);
	FUZZ_ASSERT(json_is_boolean(json_object_get(o, "sendInvitationMessage")));
	FUZZ_ASSERT(json_is_true(json_object_get(o, "sendInvitationMessage")) == c.send_email);
	json_t *info = json_object_get(o, "invitedUserMessageInfo");
	is_field(json_object_get(info, "customizedMessageBody"), c.message);
	is_field(json_object_get(info, "messageLanguage"), c.language);
	json_decref(o);
	free(text);
out:
	free(c.email);
	free(c.redirect_url);
	free(c.display_name);
	free(c.message);
	free(c.language);
	free(c.cc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	classify(data, size);
	body(data + 3, size - 3);
	return 0;
}
