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
 *
 * The same answer is then read as each directory answer (GRAPH.md §6: a
 * lookup, a group addition, a read by id, and a $batch of reads of
 * 1 + size % 20 items): 401 is AUTH, 429 THROTTLED, 5xx never FAILED, OK
 * only for a 2xx (or an addition's "already a member" 400), a user only
 * with OK and an id, an error code on everything but OK. And the pieces
 * are an address, a graph URL and ids: the lookup URL's $filter decodes to
 * GRAPH.md's, and the bodies are JSON that give the ids back.
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

static bool utf8(const char *s);

enum dir_kind { LOOKUP, ADD, READ, ITEM };

/* What every directory answer must be, whatever the body said. */
static void dir_check(enum dir_kind kind, const struct http_response *resp, long st,
		      const struct graph_dir_result *g)
{
	FUZZ_ASSERT(g->http_status == st);
	if (kind != ITEM) {
		FUZZ_ASSERT(g->has_retry_after == resp->has_retry_after);
		if (resp->request_id)
			FUZZ_ASSERT(g->request_id && strcmp(g->request_id, "req-fuzz") == 0);
	}
	if (st == 0)
		FUZZ_ASSERT(g->outcome == GRAPH_DIR_TRANSIENT);
	else if (st == 401)
		FUZZ_ASSERT(g->outcome == GRAPH_DIR_AUTH);
	else if (st == 429)
		FUZZ_ASSERT(g->outcome == GRAPH_DIR_THROTTLED);
	else if (st >= 500 || st == 408)
		FUZZ_ASSERT(g->outcome == GRAPH_DIR_TRANSIENT || g->outcome == GRAPH_DIR_THROTTLED);
	else if (st >= 200 && st < 300)
		FUZZ_ASSERT(g->outcome == GRAPH_DIR_OK ||
			    (kind != ADD && g->outcome == GRAPH_DIR_TRANSIENT));
	if (g->outcome == GRAPH_DIR_OK)
		FUZZ_ASSERT((st >= 200 && st < 300) || (kind == ADD && st == 400));
	if (g->outcome == GRAPH_DIR_NOT_FOUND)
		FUZZ_ASSERT(st == 404 && kind != LOOKUP);
	if (g->outcome == GRAPH_DIR_DENIED)
		FUZZ_ASSERT(st == 403);
	if (g->outcome != GRAPH_DIR_THROTTLED)
		FUZZ_ASSERT(g->throttle_scope == GRAPH_THROTTLE_UNKNOWN);
	if (g->outcome == GRAPH_DIR_OK)
		FUZZ_ASSERT(!g->error_code && !g->error_message);
	else
		FUZZ_ASSERT(g->error_code && *g->error_code && !g->found);
	FUZZ_ASSERT(!g->found || (kind != ADD && g->user.id));
	if (!g->found)
		FUZZ_ASSERT(!g->user.id && !g->user.user_type && !g->user.mail &&
			    !g->user.external_state && !g->user.state_changed_ms);
	const char *strs[] = {g->error_code, g->error_message, g->request_id, g->user.id,
			      g->user.user_type, g->user.mail, g->user.external_state};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		FUZZ_ASSERT(utf8(strs[i]));
}

static void dir_classify(const struct http_response *resp, size_t size)
{
	struct graph_dir_result g;
	int (*const fns[])(const struct http_response *, struct graph_dir_result *) = {
		graph_lookup_classify, graph_group_add_classify, graph_read_classify};
	for (int k = LOOKUP; k <= READ; k++) {
		FUZZ_ASSERT(fns[k](resp, &g) == 0);
		dir_check((enum dir_kind)k, resp, resp->error ? 0 : resp->status, &g);
		graph_dir_result_clear(&g);
	}
	/* as a $batch of reads: every item read as one, or one answer for all */
	size_t n = 1 + size % GRAPH_BATCH_MAX;
	struct graph_dir_result res[GRAPH_BATCH_MAX];
	int r = graph_track_batch_classify(resp, n, res);
	FUZZ_ASSERT(r == 0 || r == GRAPH_BATCH_WHOLE);
	if (resp->error || (resp->status != 200 && resp->status != 424))
		FUZZ_ASSERT(r == GRAPH_BATCH_WHOLE);
	for (size_t i = 0; r == 0 && i < n; i++) {
		dir_check(ITEM, resp, res[i].http_status, &res[i]);
		graph_dir_result_clear(&res[i]);
	}
}

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
	dir_classify(&resp, size);
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

static int unhex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The directory requests built from the pieces: an address, a graph URL
 * and up to 20 ids. */
static void dir_requests(const uint8_t *data, size_t size)
{
	char *email = piece(&data, &size);
	char *base = piece(&data, &size);
	char *ids[GRAPH_BATCH_MAX] = {0};
	size_t n = 0;
	while (n < GRAPH_BATCH_MAX && (ids[n] = piece(&data, &size)) != NULL)
		n++;
	if (!email || !base)
		goto out;

	/* the lookup URL: graph_url, then only unreserved bytes and %XX
	 * escapes, and a $filter that decodes to GRAPH.md §6's */
	char *url = graph_lookup_url(base, email);
	FUZZ_ASSERT(url);
	size_t blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	static const char pre[] = "/v1.0/users?$filter=";
	static const char sel[] = "&$select=id%2CuserType%2Cmail%2CexternalUserState%2C"
				  "externalUserStateChangeDateTime";
	FUZZ_ASSERT(strncmp(url, base, blen) == 0 && strncmp(url + blen, pre, sizeof(pre) - 1) == 0);
	const char *q = url + blen + sizeof(pre) - 1;
	size_t qlen = strlen(q);
	FUZZ_ASSERT(qlen >= sizeof(sel) - 1 && strcmp(q + qlen - (sizeof(sel) - 1), sel) == 0);
	qlen -= sizeof(sel) - 1;
	char *filter = malloc(qlen + 1);
	FUZZ_ASSERT(filter);
	size_t o = 0;
	for (size_t i = 0; i < qlen; i++) {
		char c = q[i];
		if (c == '%') {
			FUZZ_ASSERT(i + 2 < qlen && unhex(q[i + 1]) >= 0 && unhex(q[i + 2]) >= 0);
			filter[o++] = (char)(unhex(q[i + 1]) << 4 | unhex(q[i + 2]));
			i += 2;
		} else {
			FUZZ_ASSERT((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
				    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
				    c == '~');
			filter[o++] = c;
		}
	}
	filter[o] = '\0';
	/* the address, quotes doubled, four times */
	char *lit = malloc(2 * strlen(email) + 1);
	FUZZ_ASSERT(lit);
	size_t l = 0;
	for (const char *c = email; *c; c++) {
		lit[l++] = *c;
		if (*c == '\'')
			lit[l++] = '\'';
	}
	lit[l] = '\0';
	static const char *const parts[] = {"mail eq '", "' or otherMails/any(x:x eq '",
					    "') or proxyAddresses/any(x:x eq 'smtp:",
					    "') or userPrincipalName eq '", "'"};
	const char *f = filter;
	for (size_t k = 0; k < 5; k++) {
		FUZZ_ASSERT(strncmp(f, parts[k], strlen(parts[k])) == 0);
		f += strlen(parts[k]);
		if (k < 4) {
			FUZZ_ASSERT(strncmp(f, lit, l) == 0);
			f += l;
		}
	}
	free(lit);
	FUZZ_ASSERT(*f == '\0');
	free(filter);
	free(url);

	if (!utf8(email) || !utf8(base))
		goto out; /* JSON bodies need valid UTF-8 (ids are Graph's, made valid) */
	char *text;
	size_t len;
	FUZZ_ASSERT(graph_group_add_body(base, email, &text, &len) == 0);
	json_t *o2 = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	FUZZ_ASSERT(json_is_object(o2) && json_object_size(o2) == 1 &&
		    json_is_string(json_object_get(o2, "@odata.id")));
	json_decref(o2);
	free(text);
	char *m = graph_group_members_url(base, email);
	FUZZ_ASSERT(m && strlen(m) >= blen + strlen("/v1.0/groups//members/$ref"));
	free(m);

	for (size_t i = 0; i < n; i++)
		if (!utf8(ids[i]))
			goto out;
	if (n == 0)
		goto out;
	FUZZ_ASSERT(graph_track_batch_body((const char *const *)ids, n, &text, &len) == 0);
	json_t *b = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *reqs = json_object_get(b, "requests");
	FUZZ_ASSERT(json_array_size(reqs) == n);
	for (size_t i = 0; i < n; i++) {
		json_t *it = json_array_get(reqs, i);
		const char *u = json_string_value(json_object_get(it, "url"));
		FUZZ_ASSERT(u && strncmp(u, "/users/", 7) == 0 && strchr(u, '?') &&
			    strcmp(strchr(u, '?'), "?$select=id,userType,externalUserState,"
						   "externalUserStateChangeDateTime") == 0);
		FUZZ_ASSERT(strcmp(json_string_value(json_object_get(it, "method")), "GET") == 0);
	}
	json_decref(b);
	free(text);
out:
	free(email);
	free(base);
	for (size_t i = 0; i < GRAPH_BATCH_MAX; i++)
		free(ids[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	classify(data, size);
	body(data + 3, size - 3);
	dir_requests(data + 3, size - 3);
	return 0;
}
