/* SPDX-License-Identifier: MIT */
/* graph: the invitation body, and the outcome of each kind of answer. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graph.h"
#include "http.h"
#include "store.h"
#include "tap.h"
#include "timeutil.h"

static void test_body(void)
{
	struct store_claim c = {
		.email = "a.b@partner.example",
		.redirect_url = "https://x.example/",
		.send_email = false,
	};
	char *body;
	size_t len;
	is_int(graph_invitation_body(&c, &body, &len), 0, "body built");
	json_t *j = json_loads(body, 0, NULL);
	ok(json_is_false(json_object_get(j, "sendInvitationMessage")),
	   "sendInvitationMessage false is sent explicitly");
	ok(!json_object_get(j, "invitedUserMessageInfo"), "no message info without message");
	ok(!json_object_get(j, "invitedUserDisplayName"), "no display name when absent");
	json_decref(j);
	free(body);

	c.send_email = true;
	c.display_name = "Ann \"A\" Lee";
	c.message = "Hi, you\nare invited";
	c.language = "ja-JP";
	c.cc = "boss@contoso.example";
	is_int(graph_invitation_body(&c, &body, &len), 0, "full body built");
	j = json_loads(body, 0, NULL);
	json_t *info = json_object_get(j, "invitedUserMessageInfo");
	ok(json_is_true(json_object_get(j, "sendInvitationMessage")), "send true");
	is_str(json_string_value(json_object_get(j, "invitedUserDisplayName")), "Ann \"A\" Lee",
	       "display name escaped and kept");
	is_str(json_string_value(json_object_get(info, "customizedMessageBody")),
	       "Hi, you\nare invited", "message kept");
	is_str(json_string_value(json_object_get(info, "messageLanguage")), "ja-JP", "language");
	is_str(json_string_value(json_object_get(json_object_get(
		       json_array_get(json_object_get(info, "ccRecipients"), 0), "emailAddress"),
						 "address")),
	       "boss@contoso.example", "cc as ccRecipients[0].emailAddress.address");
	json_decref(j);
	free(body);
}

static void test_classify(void)
{
	static const struct {
		long status;
		int error;
		const char *body;
		int retry_after;
		enum graph_outcome want;
		const char *code;
		const char *name;
	} cases[] = {
		{201, 0, "{\"invitedUser\":{\"id\":\"u-1\"},\"inviteRedeemUrl\":\"https://r\"}", 0,
		 GRAPH_OUTCOME_CREATED, NULL, "201 created"},
		{201, 0, "{}", 0, GRAPH_OUTCOME_TRANSIENT, "BadResponse", "201 without a user id"},
		{400, 0, "{\"error\":{\"code\":\"BadRequest\",\"message\":\"bad address\"}}", 0,
		 GRAPH_OUTCOME_FAILED, "BadRequest", "400 fails the row"},
		{404, 0, "not json", 0, GRAPH_OUTCOME_FAILED, "HTTP404", "non-JSON 4xx"},
		{504, 0, "{\"error\":{\"code\":\"\",\"message\":\"\"}}", 0, GRAPH_OUTCOME_TRANSIENT,
		 "HTTP504", "an empty error code is replaced by the status (found by fuzz-graph)"},
		{401, 0, "{\"error\":{\"code\":\"InvalidAuthenticationToken\"}}", 0,
		 GRAPH_OUTCOME_AUTH, "InvalidAuthenticationToken", "401 refreshes the token"},
		{403, 0,
		 "{\"error\":{\"code\":\"Forbidden\",\"message\":\"Invitations are blocked for this "
		 "directory due to suspicious activity. Please contact support.\"}}",
		 0, GRAPH_OUTCOME_BLOCKED, "Forbidden", "403 anti-abuse block"},
		{403, 0,
		 "{\"error\":{\"code\":\"Authorization_RequestDenied\",\"message\":\"Insufficient "
		 "privileges\"}}",
		 0, GRAPH_OUTCOME_FAILED, "Authorization_RequestDenied", "other 403 fails the row"},
		{429, 0, "{\"error\":{\"code\":\"TooManyRequests\"}}", 1, GRAPH_OUTCOME_THROTTLED,
		 "TooManyRequests", "429 throttles"},
		{429, 0, "", 0, GRAPH_OUTCOME_THROTTLED, "HTTP429", "429 without Retry-After"},
		{503, 0, "", 1, GRAPH_OUTCOME_THROTTLED, "HTTP503", "503 with Retry-After throttles"},
		{503, 0, "", 0, GRAPH_OUTCOME_TRANSIENT, "HTTP503", "503 without it is transient"},
		{500, 0, "{\"error\":{\"code\":\"UnknownError\",\"message\":\"Unable to find target address\"}}",
		 0, GRAPH_OUTCOME_TRANSIENT, "UnknownError", "500 is transient"},
		{502, 0, "", 0, GRAPH_OUTCOME_TRANSIENT, "HTTP502", "502"},
		{504, 0, "", 0, GRAPH_OUTCOME_TRANSIENT, "HTTP504", "504"},
		{408, 0, "", 0, GRAPH_OUTCOME_TRANSIENT, "HTTP408", "408"},
		{0, -ETIMEDOUT, "", 0, GRAPH_OUTCOME_TRANSIENT, "Timeout", "timeout"},
		{0, -ECONNRESET, "", 0, GRAPH_OUTCOME_TRANSIENT, "ConnectionReset", "reset"},
		{0, -ECONNREFUSED, "", 0, GRAPH_OUTCOME_TRANSIENT, "ConnectionRefused", "refused"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_response resp = {
			.status = cases[i].status,
			.error = cases[i].error,
			.error_text = cases[i].error ? "curl says" : NULL,
			.body = cases[i].body,
			.body_len = strlen(cases[i].body),
			.retry_after_ms = cases[i].retry_after ? 2000 : 0,
			.has_retry_after = cases[i].retry_after,
			.request_id = "req-1",
		};
		struct graph_result g;
		is_int(graph_classify(&resp, &g), 0, "%s: classified", cases[i].name);
		is_int(g.outcome, cases[i].want, "%s: outcome", cases[i].name);
		is_str(g.error_code, cases[i].code, "%s: code", cases[i].name);
		is_str(g.request_id, "req-1", "%s: request id kept", cases[i].name);
		if (cases[i].want == GRAPH_OUTCOME_CREATED)
			is_str(g.invited_user_id, "u-1", "%s: user id", cases[i].name);
		if (cases[i].retry_after)
			is_int(g.retry_after_ms, 2000, "%s: Retry-After passed on", cases[i].name);
		graph_result_clear(&g);
	}
}

static void test_batch(void)
{
	struct store_claim a = {.email = "a@x.example", .redirect_url = "https://r.example"};
	struct store_claim b = {.email = "b@x.example", .redirect_url = "https://r.example"};
	struct store_claim *claims[] = {&a, &b};
	char *body;
	size_t len;
	is_int(graph_batch_body(claims, 2, &body, &len), 0, "batch body built");
	json_t *j = json_loads(body, 0, NULL);
	json_t *reqs = json_object_get(j, "requests");
	ok(json_array_size(reqs) == 2, "two requests");
	is_str(json_string_value(json_object_get(json_array_get(reqs, 1), "id")), "2", "ids 1..n");
	is_str(json_string_value(json_object_get(json_array_get(reqs, 0), "url")), "/invitations",
	       "relative URL /invitations");
	is_str(json_string_value(json_object_get(json_object_get(json_array_get(reqs, 1), "body"),
						 "invitedUserEmailAddress")),
	       "b@x.example", "each body is the row's invitation");
	json_decref(j);
	free(body);

	struct graph_result res[2];
	/* answers come in any order; a throttled item carries its own Retry-After */
	const char *ok_body =
		"{\"responses\":[{\"id\":\"2\",\"status\":429,\"headers\":{\"retry-after\":\"7\"},"
		"\"body\":{\"error\":{\"code\":\"TooManyRequests\",\"message\":\"slow\"}}},"
		"{\"id\":\"1\",\"status\":201,\"headers\":{},\"body\":{\"invitedUser\":{\"id\":\"u1\"}}}]}";
	struct http_response resp = {.status = 200, .body = ok_body, .body_len = strlen(ok_body)};
	is_int(graph_batch_classify(&resp, 2, res), 0, "batch answer read");
	is_int(res[0].outcome, GRAPH_OUTCOME_CREATED, "item 1 created (answered second)");
	is_str(res[0].invited_user_id, "u1", "with its user id");
	is_int(res[1].outcome, GRAPH_OUTCOME_THROTTLED, "item 2 throttled");
	is_int(res[1].retry_after_ms, 7000, "with its own Retry-After");
	graph_result_clear(&res[0]);
	graph_result_clear(&res[1]);

	const char *missing = "{\"responses\":[{\"id\":\"1\",\"status\":201,\"body\":{\"invitedUser\":{\"id\":\"u1\"}}}]}";
	resp.body = missing;
	resp.body_len = strlen(missing);
	is_int(graph_batch_classify(&resp, 2, res), 0, "an item missing from the answer");
	is_int(res[1].outcome, GRAPH_OUTCOME_TRANSIENT, "is retried, not lost");
	graph_result_clear(&res[0]);
	graph_result_clear(&res[1]);

	const char *refused =
		"{\"responses\":[{\"id\":\"1\",\"status\":400,\"body\":{\"error\":{\"code\":\"BadRequest\",\"message\":\"Invalid batch request\",\"innerError\":{\"request-id\":\"x\"}}}},"
		"{\"id\":\"2\",\"status\":400,\"body\":{\"error\":{\"code\":\"BadRequest\",\"message\":\"Invalid batch request\",\"innerError\":{\"request-id\":\"y\"}}}}]}";
	resp.body = refused;
	resp.body_len = strlen(refused);
	is_int(graph_batch_classify(&resp, 2, res), GRAPH_BATCH_REFUSED,
	       "every item refused alike: batching refused");
	resp.status = 404;
	resp.body = "";
	resp.body_len = 0;
	is_int(graph_batch_classify(&resp, 2, res), GRAPH_BATCH_REFUSED, "a 404 envelope: refused");
	resp.status = 503;
	is_int(graph_batch_classify(&resp, 2, res), GRAPH_BATCH_WHOLE, "a 503 envelope: for all");
	resp.status = 0;
	resp.error = -ETIMEDOUT;
	is_int(graph_batch_classify(&resp, 2, res), GRAPH_BATCH_WHOLE, "no answer: for all");
}

/* The answer reader: escapes, members in any order, skipped values of every
 * kind, and bodies it must not believe. */
static void test_reader(void)
{
	static const struct {
		long status;
		const char *body;
		enum graph_outcome want;
		const char *user_id;
		const char *redeem;
		const char *code;
		const char *message;
		const char *request_id;
	} cases[] = {
		{201,
		 "{\"status\":\"PendingAcceptance\",\"list\":[1,2.5e3,[],{},null,true,false,\"x\"],"
		 "\"inviteRedeemUrl\":\"https:\\/\\/r.example\\/a?b=c\",\"invitedUser\":{\"x\":{\"id\":\"no\"},\"id\":\"u-\\u00e9\\ud83d\\ude00\"}}",
		 GRAPH_OUTCOME_CREATED, "u-\xc3\xa9\xf0\x9f\x98\x80", "https://r.example/a?b=c", NULL, NULL, NULL},
		{201, "  {\"invitedUser\" : { \"id\" : \"u\" } }\n", GRAPH_OUTCOME_CREATED, "u", NULL, NULL, NULL, NULL},
		{201, "{\"invitedUser\":{\"id\":\"u\"}", GRAPH_OUTCOME_TRANSIENT, NULL, NULL, "BadResponse", NULL, NULL},
		{201, "{\"invitedUser\":{\"id\":\"u\\x\"}}", GRAPH_OUTCOME_TRANSIENT, NULL, NULL, "BadResponse", NULL, NULL},
		{201, "{\"invitedUser\":{\"id\":\"u\\ud800\"}}", GRAPH_OUTCOME_TRANSIENT, NULL, NULL, "BadResponse", NULL, NULL},
		{201, "{\"invitedUser\":{\"id\":\"a\nb\"}}", GRAPH_OUTCOME_TRANSIENT, NULL, NULL, "BadResponse", NULL, NULL},
		{201, "{\"invitedUser\":{\"id\":7}}", GRAPH_OUTCOME_TRANSIENT, NULL, NULL, "BadResponse", NULL, NULL},
		{201,
		 "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"
		 "\"invitedUser\":{\"id\":\"u\"}}",
		 GRAPH_OUTCOME_TRANSIENT, NULL, NULL, "BadResponse", NULL, NULL},
		{400,
		 "{\"error\":{\"message\":\"Bad \\\"address\\\"\",\"innerError\":{\"date\":\"d\",\"request-id\":\"rq-9\"},\"code\":\"BadRequest\"}}",
		 GRAPH_OUTCOME_FAILED, NULL, NULL, "BadRequest", "Bad \"address\"", "rq-9"},
		{400, "{\"error\":\"just a string\"}", GRAPH_OUTCOME_FAILED, NULL, NULL, "HTTP400", NULL, NULL},
		{500, "<html>oops</html>", GRAPH_OUTCOME_TRANSIENT, NULL, NULL, "HTTP500", NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_response resp = {.status = cases[i].status, .body = cases[i].body,
					     .body_len = strlen(cases[i].body)};
		struct graph_result g;
		is_int(graph_classify(&resp, &g), 0, "reader %zu: read", i);
		is_int(g.outcome, cases[i].want, "reader %zu: outcome", i);
		is_str(g.invited_user_id, cases[i].user_id, "reader %zu: user id", i);
		is_str(g.invite_redeem_url, cases[i].redeem, "reader %zu: redeem URL", i);
		is_str(g.error_code, cases[i].code, "reader %zu: code", i);
		if (cases[i].message)
			is_str(g.error_message, cases[i].message, "reader %zu: message", i);
		is_str(g.request_id, cases[i].request_id, "reader %zu: request id", i);
		graph_result_clear(&g);
	}
}


/* Retry-After per RFC 9110 §10.2.3, with the clock injected: the one
 * parser single answers (http.c) and $batch items (graph.c) use. */
static void test_retry_after(void)
{
	/* Sun, 06 Nov 1994 08:49:00 GMT */
	const uint64_t now = 784111740000u;
	const uint64_t cap = HTTP_RETRY_AFTER_MAX_MS;
	static const struct {
		const char *text;
		int r;
		uint64_t ms;
	} cases[] = {
		{"120", 0, 120000},
		{"0", 0, 0},
		{" 7\t", 0, 7000}, /* OWS around the value is not part of it */
		{"007", 0, 7000},
		{"86400", 0, 86400000},
		{"86401", 0, 86400000},                 /* past the longest pause: capped */
		{"99999999999999999999999999", 0, 86400000}, /* not ignored */
		{"-1", -EINVAL, 0},                     /* no sign: not a 24 h pause */
		{"+5", -EINVAL, 0},
		{"-0", -EINVAL, 0},
		{"1 2", -EINVAL, 0},
		{"1.5", -EINVAL, 0},
		{"5s", -EINVAL, 0},
		{"0x10", -EINVAL, 0},
		{"", -EINVAL, 0},
		{"   ", -EINVAL, 0},
		{"soon", -EINVAL, 0},
		/* the three HTTP-date forms, 37 s after now */
		{"Sun, 06 Nov 1994 08:49:37 GMT", 0, 37000},
		{"Sunday, 06-Nov-94 08:49:37 GMT", 0, 37000},
		{"Sun Nov  6 08:49:37 1994", 0, 37000},
		{"Sun Nov 06 08:49:37 1994", 0, 37000},
		{"Sun, 06 Nov 1994 08:48:37 GMT", 0, 0}, /* in the past: no wait */
		{"Thu, 01 Jan 1970 00:00:00 GMT", 0, 0},
		{"Mon, 07 Nov 1994 08:49:00 GMT", 0, 86400000},
		{"Tue, 08 Nov 1994 08:49:00 GMT", 0, 86400000}, /* capped */
		{"Sunday, 06-Nov-44 08:49:37 GMT", 0, 86400000}, /* 2044: 50 years ahead */
		{"Sunday, 06-Nov-45 08:49:37 GMT", 0, 0},        /* 2045 is further: 1945 */
		{"Sun, 06 Nov 1994 08:49:37 UTC", -EINVAL, 0},
		{"Sun, 6 Nov 1994 08:49:37 GMT", -EINVAL, 0},
		{"Sun,  06 Nov 1994 08:49:37 GMT", -EINVAL, 0},
		{"sun, 06 nov 1994 08:49:37 GMT", -EINVAL, 0},
		{"Sun, 31 Feb 1994 08:49:37 GMT", -EINVAL, 0},
		{"Sun, 06 Nov 1994 24:49:37 GMT", -EINVAL, 0},
		{"Sun, 06 Nov 1994 08:49:37 GMT x", -EINVAL, 0},
		{"Sunday, 06-Nov-1994 08:49:37 GMT", -EINVAL, 0},
		{"Sun Nov 6 08:49:37 1994", -EINVAL, 0},
		{"2026-12-01T10:00:00Z", -EINVAL, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t ms = 12345;
		int r = time_parse_retry_after(cases[i].text, strlen(cases[i].text), now, cap, &ms);
		is_int(r, cases[i].r, "Retry-After '%s': %s", cases[i].text,
		       cases[i].r ? "ignored" : "read");
		if (r == 0 && cases[i].r == 0)
			is_int(ms, cases[i].ms, "Retry-After '%s': %llu ms", cases[i].text,
			       (unsigned long long)cases[i].ms);
	}
	uint64_t at = 0;
	is_int(time_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", now, &at), 0, "IMF-fixdate");
	is_int(at, 784111777000u, "is 784111777 s after the epoch");
	is_int(time_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", now, &at), 0, "RFC 850");
	is_int(at, 784111777000u, "the same instant");
	is_int(time_parse_http_date("Sun Nov  6 08:49:37 1994", now, &at), 0, "asctime");
	is_int(at, 784111777000u, "the same instant");
	is_int(time_parse_http_date("Tue, 29 Feb 2028 23:59:60 GMT", now, &at), 0,
	       "a leap day and a leap second");
	/* a value that is not NUL-terminated is read within its length */
	uint64_t ms = 0;
	is_int(time_parse_retry_after("12garbage", 2, now, cap, &ms), 0, "length bounds the value");
	is_int(ms, 12000, "12 s");

	/* $batch items: the same parser, on the item's headers */
	struct graph_result res[4];
	char date[40];
	time_t soon = (time_t)(time_now_ms() / 1000u) + 120;
	struct tm tm;
	gmtime_r(&soon, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	char body[1024];
	snprintf(body, sizeof(body),
		 "{\"responses\":["
		 "{\"id\":\"1\",\"status\":429,\"headers\":{\"Retry-After\":\"-1\"},\"body\":{}},"
		 "{\"id\":\"2\",\"status\":429,\"headers\":{\"Retry-After\":\"%s\"},\"body\":{}},"
		 "{\"id\":\"3\",\"status\":429,\"headers\":{\"retry-after\":\"Sunday, 06-Nov-94 08:49:37 GMT\"},\"body\":{}},"
		 "{\"id\":\"4\",\"status\":429,\"headers\":{\"Retry-After\":999999999},\"body\":{}}]}",
		 date);
	struct http_response resp = {.status = 200, .body = body, .body_len = strlen(body)};
	is_int(graph_batch_classify(&resp, 4, res), 0, "a batch of throttled items");
	ok(!res[0].has_retry_after, "item Retry-After -1 is ignored (the usual backoff)");
	ok(res[1].has_retry_after && res[1].retry_after_ms > 115000 && res[1].retry_after_ms <= 120000,
	   "item Retry-After as an IMF-fixdate 120 s ahead: %llu ms",
	   (unsigned long long)res[1].retry_after_ms);
	ok(res[2].has_retry_after && res[2].retry_after_ms == 0,
	   "item Retry-After as a past RFC 850 date: no wait");
	ok(res[3].has_retry_after && res[3].retry_after_ms == HTTP_RETRY_AFTER_MAX_MS,
	   "an over-long item Retry-After is capped");
	for (size_t i = 0; i < 4; i++)
		graph_result_clear(&res[i]);
}

static bool valid_utf8_json(const char *s)
{
	json_t *j = s ? json_string(s) : NULL;
	json_decref(j);
	return j != NULL;
}

/* Every string from Graph is valid UTF-8 once read (SPEC §9): invalid
 * bytes become U+FFFD. */
static void test_utf8(void)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
	} cases[] = {
		{"plain", 5, "plain"},
		{"a\xff" "b", 3, "a\xef\xbf\xbd" "b"},
		{"\xc3(", 2, "\xef\xbf\xbd("},
		{"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"},          /* overlong */
		{"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a surrogate */
		{"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
		{"\xe2\x82", 2, "\xef\xbf\xbd\xef\xbf\xbd"},          /* cut short */
		{"\xc3\xa9\xf0\x9f\x98\x80", 6, "\xc3\xa9\xf0\x9f\x98\x80"},
		{"", 0, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = graph_utf8_dup(cases[i].in, cases[i].len);
		is_str(got, cases[i].want, "utf8 case %zu", i);
		free(got);
	}

	/* a 400 whose body and request-id header hold invalid UTF-8 */
	const char *bad = "{\"error\":{\"code\":\"Bad\xffRequest\",\"message\":\"caf\xe9 \xc3( no\","
			  "\"innerError\":{\"request-id\":\"\xfe\xfe\"}}}";
	struct http_response resp = {.status = 400, .body = bad, .body_len = strlen(bad),
				     .request_id = "rid-\xff\xc3"};
	struct graph_result g;
	is_int(graph_classify(&resp, &g), 0, "invalid UTF-8 answer read");
	is_int(g.outcome, GRAPH_OUTCOME_FAILED, "the row fails");
	is_str(g.error_code, "Bad\xef\xbf\xbdRequest", "code made valid");
	is_str(g.error_message, "caf\xef\xbf\xbd \xef\xbf\xbd( no", "message made valid");
	is_str(g.request_id, "rid-\xef\xbf\xbd\xef\xbf\xbd", "request-id header made valid");
	graph_result_clear(&g);
	resp.request_id = NULL;
	graph_classify(&resp, &g);
	is_str(g.request_id, "\xef\xbf\xbd\xef\xbf\xbd", "innerError request-id made valid");
	graph_result_clear(&g);

	/* a body that is not JSON: the row fails with a readable reason */
	const char *html = "<html>\xff\x1b[2J proxy error</html>";
	struct http_response h = {.status = 400, .body = html, .body_len = strlen(html)};
	is_int(graph_classify(&h, &g), 0, "a non-JSON error body");
	is_int(g.outcome, GRAPH_OUTCOME_FAILED, "fails the row");
	is_str(g.error_code, "HTTP400", "named by its status");
	ok(g.error_message && strncmp(g.error_message, "the answer is not Graph's JSON", 30) == 0 &&
	   strstr(g.error_message, "proxy error") && !strchr(g.error_message, '\x1b') &&
	   valid_utf8_json(g.error_message),
	   "message says so, with the body's start, valid UTF-8, no controls: %s",
	   g.error_message ? g.error_message : "(null)");
	graph_result_clear(&g);

	/* in a $batch: an item with raw invalid bytes */
	const char *bb = "{\"responses\":[{\"id\":\"1\",\"status\":400,\"headers\":{\"request-id\":\"r\xff\"},"
			 "\"body\":{\"error\":{\"code\":\"BadRequest\",\"message\":\"m\xff\"}}},"
			 "{\"id\":\"2\",\"status\":201,\"body\":{\"invitedUser\":{\"id\":\"u\xc0\"}}}]}";
	struct http_response b = {.status = 200, .body = bb, .body_len = strlen(bb)};
	struct graph_result res[2];
	is_int(graph_batch_classify(&b, 2, res), 0, "a batch with invalid UTF-8 read");
	ok(valid_utf8_json(res[0].error_message) && valid_utf8_json(res[0].request_id) &&
	   valid_utf8_json(res[1].invited_user_id),
	   "item strings are valid UTF-8");
	is_int(res[0].outcome, GRAPH_OUTCOME_FAILED, "the 400 item fails (no second try alone)");
	graph_result_clear(&res[0]);
	graph_result_clear(&res[1]);
}

/* ---- the directory (GRAPH.md §6) ---- */

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
					     : c >= 'a' && c <= 'f' ? c - 'a' + 10
								    : -1;
}

/* s[0..len) with %XX decoded (the URL holds no '+' to read); NULL on a bad escape */
static char *pct_decode(const char *s, size_t len)
{
	char *out = malloc(len + 1);
	size_t o = 0;
	for (size_t i = 0; out && i < len; i++) {
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		int hi = i + 2 < len ? hex_digit(s[i + 1]) : -1;
		int lo = i + 2 < len ? hex_digit(s[i + 2]) : -1;
		if (hi < 0 || lo < 0) {
			free(out);
			return NULL;
		}
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	if (out)
		out[o] = '\0';
	return out;
}

/* The lookup filter of GRAPH.md §6 for a (quote-doubled) literal; owned. */
static char *want_filter(const char *lit)
{
	char *f = NULL;
	if (asprintf(&f,
		     "mail eq '%s' or otherMails/any(x:x eq '%s') or proxyAddresses/any(x:x eq "
		     "'smtp:%s') or userPrincipalName eq '%s'",
		     lit, lit, lit, lit) < 0)
		return NULL;
	return f;
}

static void test_lookup_url(void)
{
	char *url = graph_lookup_url("https://graph.microsoft.com/", "a@b.example");
	is_str(url,
	       "https://graph.microsoft.com/v1.0/users?$filter="
	       "mail%20eq%20%27a%40b.example%27%20or%20otherMails%2Fany%28x%3Ax%20eq%20%27a%40b.example%27%29"
	       "%20or%20proxyAddresses%2Fany%28x%3Ax%20eq%20%27smtp%3Aa%40b.example%27%29"
	       "%20or%20userPrincipalName%20eq%20%27a%40b.example%27"
	       "&$select=id%2CuserType%2Cmail%2CexternalUserState%2CexternalUserStateChangeDateTime",
	       "lookup URL, byte for byte (a trailing slash of graph_url dropped)");
	free(url);

	static const struct {
		const char *email, *literal, *name;
	} cases[] = {
		{"o'neil@b.example", "o''neil@b.example", "a quote is doubled"},
		{"it''s@b.example", "it''''s@b.example", "two quotes, each doubled"},
		{"'@b.example'", "''@b.example''", "quotes at both ends"},
		{"a+tag@b.example", "a+tag@b.example", "'+' kept (as %2B, not a space)"},
		{"a&b=c@b.example", "a&b=c@b.example", "'&' and '=' do not split the query"},
		{"a#b@b.example", "a#b@b.example", "'#' is not a fragment"},
		{"100%@b.example", "100%@b.example", "'%' is escaped itself"},
		{"jos\xc3\xa9@b\xc3\xbc" "cher.example", "jos\xc3\xa9@b\xc3\xbc" "cher.example",
		 "non-ASCII UTF-8, byte by byte"},
		{"a b@b.example", "a b@b.example", "a space as %20"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		url = graph_lookup_url("http://127.0.0.1:8080/fabrikam.example", cases[i].email);
		ok(url != NULL, "%s: built", cases[i].name);
		if (!url)
			continue;
		const char *pre = "http://127.0.0.1:8080/fabrikam.example/v1.0/users?$filter=";
		ok(strncmp(url, pre, strlen(pre)) == 0, "%s: path under graph_url", cases[i].name);
		const char *q = url + strlen(pre);
		const char *amp = strchr(q, '&');
		bool clean = amp && !strchr(amp + 1, '&') && !strchr(url, '+') && !strchr(url, '#') &&
			     !strchr(url, ' ') && !strchr(url, '\'');
		for (const char *c = q; *c; c++)
			clean = clean && (unsigned char)*c < 0x80;
		ok(clean, "%s: one '&', and no '+', '#', space, quote or byte >= 0x80: %s",
		   cases[i].name, url);
		ok(amp && strcmp(amp, "&$select=id%2CuserType%2Cmail%2CexternalUserState%2C"
				      "externalUserStateChangeDateTime") == 0,
		   "%s: the $select", cases[i].name);
		char *got = amp ? pct_decode(q, (size_t)(amp - q)) : NULL;
		char *want = want_filter(cases[i].literal);
		is_str(got, want, "%s: $filter decodes to GRAPH.md's", cases[i].name);
		if (strchr(cases[i].email, '+'))
			ok(strstr(q, "a%2Btag") != NULL, "%s: as %%2B", cases[i].name);
		if (strchr(cases[i].email, ' '))
			ok(strstr(q, "a%20b") != NULL, "%s: as %%20", cases[i].name);
		if (strchr(cases[i].email, '\xc3'))
			ok(strstr(q, "jos%C3%A9%40b%C3%BCcher.example") != NULL, "%s: %%C3%%A9",
			   cases[i].name);
		free(got);
		free(want);
		free(url);
	}
}

static void test_group_requests(void)
{
	char *url = graph_group_members_url("https://graph.microsoft.com",
					    "aaaaaaaa-0000-4000-8000-000000000001");
	is_str(url,
	       "https://graph.microsoft.com/v1.0/groups/aaaaaaaa-0000-4000-8000-000000000001/members/$ref",
	       "members URL");
	free(url);
	url = graph_group_members_url("http://127.0.0.1:9/t/", "G 1/x");
	is_str(url, "http://127.0.0.1:9/t/v1.0/groups/G%201%2Fx/members/$ref",
	       "a trailing slash dropped; an odd id is one escaped segment");
	free(url);

	char *body;
	size_t len;
	is_int(graph_group_add_body("https://graph.microsoft.com/",
				    "f37006d3-4e41-5b3c-a8f9-77717da125d0", &body, &len),
	       0, "add body built");
	is_str(body,
	       "{\"@odata.id\":\"https://graph.microsoft.com/v1.0/directoryObjects/"
	       "f37006d3-4e41-5b3c-a8f9-77717da125d0\"}",
	       "exactly {\"@odata.id\": the user's directoryObjects URL}");
	ok(len == strlen(body), "length %zu", len);
	free(body);
	is_int(graph_group_add_body("http://127.0.0.1:8080/fabrikam.example", "u\"1", &body, &len), 0,
	       "under a simulator URL with a tenant prefix");
	json_t *j = json_loads(body, 0, NULL);
	is_str(json_string_value(json_object_get(j, "@odata.id")),
	       "http://127.0.0.1:8080/fabrikam.example/v1.0/directoryObjects/u%221",
	       "the graph_url given; the id escaped, JSON valid");
	ok(json_object_size(j) == 1, "one member");
	json_decref(j);
	free(body);
}

static void test_track_body(void)
{
	const char *ids[] = {"u-1", "u-2", "a b"};
	char *body;
	size_t len;
	is_int(graph_track_batch_body(ids, 3, &body, &len), 0, "track batch body built");
	ok(len == strlen(body), "length");
	json_t *j = json_loads(body, 0, NULL);
	json_t *reqs = json_object_get(j, "requests");
	ok(json_array_size(reqs) == 3, "three requests");
	for (size_t i = 0; i < 3; i++) {
		json_t *q = json_array_get(reqs, i);
		char id[4], want[160];
		snprintf(id, sizeof(id), "%zu", i + 1);
		snprintf(want, sizeof(want),
			 "/users/%s?$select=id,userType,externalUserState,externalUserStateChangeDateTime",
			 i == 2 ? "a%20b" : ids[i]);
		is_str(json_string_value(json_object_get(q, "id")), id, "item %zu: id", i + 1);
		is_str(json_string_value(json_object_get(q, "method")), "GET", "item %zu: GET", i + 1);
		is_str(json_string_value(json_object_get(q, "url")), want, "item %zu: url", i + 1);
		ok(!json_object_get(q, "body"), "item %zu: no body", i + 1);
	}
	json_decref(j);
	free(body);
	is_int(graph_track_batch_body(ids, 0, &body, &len), -EINVAL, "0 items refused");
	const char *many[GRAPH_BATCH_MAX + 1];
	for (size_t i = 0; i <= GRAPH_BATCH_MAX; i++)
		many[i] = "u";
	is_int(graph_track_batch_body(many, GRAPH_BATCH_MAX + 1, &body, &len), -EINVAL,
	       "21 items refused");
	is_int(graph_track_batch_body(many, GRAPH_BATCH_MAX, &body, &len), 0, "20 items");
	free(body);
}

static const char *outcome_name(enum graph_dir_outcome o)
{
	static const char *const names[] = {"OK", "NOT_FOUND", "DENIED", "FAILED",
					    "TRANSIENT", "THROTTLED", "AUTH"};
	return (unsigned)o < sizeof(names) / sizeof(names[0]) ? names[o] : "?";
}

enum which { LOOKUP, ADD, READ };

struct dir_case {
	enum which which;
	long status;
	int error;
	const char *body;
	int retry_after;   /* 1: Retry-After 3 s */
	const char *scope; /* x-ms-throttle-scope */
	enum graph_dir_outcome want;
	const char *code;    /* NULL: none */
	const char *message; /* NULL: not checked */
	const char *id;      /* the found user's id; NULL: not found */
	const char *user_type, *mail, *state;
	uint64_t changed_ms;
	const char *name;
};

#define DENIED_BODY                                                                       \
	"{\"error\":{\"code\":\"Authorization_RequestDenied\",\"message\":\"Insufficient " \
	"privileges to complete the operation.\",\"innerError\":{\"request-id\":\"rq-b\"}}}"
#define NOT_FOUND_BODY                                                                        \
	"{\"error\":{\"code\":\"Request_ResourceNotFound\",\"message\":\"Resource 'u-1' does " \
	"not exist or one of its queried reference-property objects are not present.\"}}"
#define MEMBER_JSON                                                              \
	"{\"id\":\"m-1\",\"userType\":\"Member\",\"mail\":\"ann@contoso.example\"," \
	"\"externalUserState\":null,\"externalUserStateChangeDateTime\":null}"
#define GUEST_JSON                                                              \
	"{\"id\":\"g-1\",\"userType\":\"Guest\",\"mail\":\"ann@contoso.example\"," \
	"\"externalUserState\":\"PendingAcceptance\","                             \
	"\"externalUserStateChangeDateTime\":\"2026-12-01T10:00:00Z\"}"
#define CTX "\"@odata.context\":\"https://graph.microsoft.com/v1.0/$metadata#users(id)\","

static const struct dir_case dir_cases[] = {
	/* lookups */
	{LOOKUP, 200, 0, "{" CTX "\"value\":[]}", 0, NULL, GRAPH_DIR_OK, NULL, NULL, NULL, NULL,
	 NULL, NULL, 0, "lookup: value [] is no such user"},
	{LOOKUP, 200, 0, "{" CTX "\"value\":[" MEMBER_JSON "]}", 0, NULL, GRAPH_DIR_OK, NULL,
	 NULL, "m-1", "Member", "ann@contoso.example", NULL, 0, "lookup: one member"},
	{LOOKUP, 200, 0, "{\"value\":[" MEMBER_JSON "," GUEST_JSON "]}", 0, NULL, GRAPH_DIR_OK,
	 NULL, NULL, "g-1", "Guest", "ann@contoso.example", "PendingAcceptance", 1796119200000u,
	 "lookup: member then guest: the guest wins"},
	{LOOKUP, 200, 0, "{\"value\":[" GUEST_JSON "," MEMBER_JSON "]}", 0, NULL, GRAPH_DIR_OK,
	 NULL, NULL, "g-1", "Guest", "ann@contoso.example", "PendingAcceptance", 1796119200000u,
	 "lookup: guest then member: the guest wins"},
	{LOOKUP, 200, 0, "{\"value\":[" MEMBER_JSON ",{\"id\":\"m-2\",\"userType\":\"Member\"}]}",
	 0, NULL, GRAPH_DIR_OK, NULL, NULL, "m-1", "Member", "ann@contoso.example", NULL, 0,
	 "lookup: two members: the first"},
	{LOOKUP, 200, 0,
	 "{\"value\":[{\"userType\":\"Guest\",\"id\":\"g-\xff\",\"mail\":\"caf\xe9@x.example\","
	 "\"externalUserState\":\"Accep\xc3(ted\"}]}",
	 0, NULL, GRAPH_DIR_OK, NULL, NULL, "g-\xef\xbf\xbd", "Guest", "caf\xef\xbf\xbd@x.example",
	 "Accep\xef\xbf\xbd(ted", 0, "lookup: invalid UTF-8 in strings becomes U+FFFD"},
	{LOOKUP, 200, 0, "{\"value\":[{\"id\":\"u\\u00e9\",\"extra\":[1,{\"id\":\"no\"}]}]}", 0,
	 NULL, GRAPH_DIR_OK, NULL, NULL, "u\xc3\xa9", NULL, NULL, NULL, 0,
	 "lookup: escapes decoded, other members skipped, userType absent is NULL"},
	{LOOKUP, 200, 0, "<html>proxy</html>", 0, NULL, GRAPH_DIR_TRANSIENT, "BadResponse", NULL,
	 NULL, NULL, NULL, NULL, 0, "lookup: a 200 that is not JSON is tried again"},
	{LOOKUP, 200, 0, "{\"value\":[" MEMBER_JSON, 0, NULL, GRAPH_DIR_TRANSIENT, "BadResponse",
	 NULL, NULL, NULL, NULL, NULL, 0, "lookup: a truncated 200 is tried again (no pick kept)"},
	{LOOKUP, 200, 0, "{\"values\":[]}", 0, NULL, GRAPH_DIR_TRANSIENT, "BadResponse",
	 "a lookup answer without a value list", NULL, NULL, NULL, NULL, 0,
	 "lookup: a 200 without value is not 'not found'"},
	{LOOKUP, 200, 0, "{\"value\":[{\"mail\":\"a@b.example\"}]}", 0, NULL, GRAPH_DIR_TRANSIENT,
	 "BadResponse", NULL, NULL, NULL, NULL, NULL, 0, "lookup: a user without an id"},
	{LOOKUP, 200, 0, "{\"value\":{}}", 0, NULL, GRAPH_DIR_TRANSIENT, "BadResponse", NULL, NULL,
	 NULL, NULL, NULL, 0, "lookup: value not a list"},
	{LOOKUP, 403, 0, DENIED_BODY, 0, NULL, GRAPH_DIR_DENIED, "Authorization_RequestDenied",
	 "Insufficient privileges to complete the operation.", NULL, NULL, NULL, NULL, 0,
	 "lookup: 403 without User.Read.All"},
	{LOOKUP, 400, 0, "{\"error\":{\"code\":\"BadRequest\",\"message\":\"Invalid filter clause\"}}",
	 0, NULL, GRAPH_DIR_FAILED, "BadRequest", "Invalid filter clause", NULL, NULL, NULL, NULL,
	 0, "lookup: 400 fails"},
	{LOOKUP, 404, 0, NOT_FOUND_BODY, 0, NULL, GRAPH_DIR_FAILED, "Request_ResourceNotFound",
	 NULL, NULL, NULL, NULL, NULL, 0, "lookup: a 404 is not replication (a wrong URL)"},
	{LOOKUP, 429, 0, "{\"error\":{\"code\":\"TooManyRequests\",\"message\":\"slow\"}}", 1,
	 "Tenant_Application/Read/app/tid", GRAPH_DIR_THROTTLED, "TooManyRequests", "slow", NULL,
	 NULL, NULL, NULL, 0, "lookup: 429 with Retry-After and a tenant scope"},
	{LOOKUP, 503, 0, "", 0, NULL, GRAPH_DIR_TRANSIENT, "HTTP503", NULL, NULL, NULL, NULL,
	 NULL, 0, "lookup: 503"},
	{LOOKUP, 503, 0, "", 1, "Application/Read/app", GRAPH_DIR_THROTTLED, "HTTP503", NULL,
	 NULL, NULL, NULL, NULL, 0, "lookup: 503 with Retry-After"},
	{LOOKUP, 401, 0, "{\"error\":{\"code\":\"InvalidAuthenticationToken\"}}", 0, NULL,
	 GRAPH_DIR_AUTH, "InvalidAuthenticationToken", NULL, NULL, NULL, NULL, NULL, 0,
	 "lookup: 401"},
	{LOOKUP, 0, -ECONNRESET, "", 0, NULL, GRAPH_DIR_TRANSIENT, "ConnectionReset", "curl says",
	 NULL, NULL, NULL, NULL, 0, "lookup: reset"},
	{LOOKUP, 0, -ETIMEDOUT, "", 0, NULL, GRAPH_DIR_TRANSIENT, "Timeout", "curl says", NULL,
	 NULL, NULL, NULL, 0, "lookup: timeout"},
	/* group additions */
	{ADD, 204, 0, "", 0, NULL, GRAPH_DIR_OK, NULL, NULL, NULL, NULL, NULL, NULL, 0, "add: 204"},
	{ADD, 400, 0,
	 "{\"error\":{\"code\":\"Request_BadRequest\",\"message\":\"One or more added object "
	 "references already exist for the following modified properties: 'members'.\"}}",
	 0, NULL, GRAPH_DIR_OK, NULL, NULL, NULL, NULL, NULL, NULL, 0,
	 "add: already a member is done"},
	{ADD, 400, 0,
	 "{\"error\":{\"code\":\"Request_BadRequest\",\"message\":\"References ALREADY EXIST.\"}}", 0,
	 NULL, GRAPH_DIR_OK, NULL, NULL, NULL, NULL, NULL, NULL, 0,
	 "add: 'already exist' in any case"},
	{ADD, 400, 0,
	 "{\"error\":{\"code\":\"Request_BadRequest\",\"message\":\"Guest users cannot be added "
	 "to this group: its settings do not allow guests (AllowToAddGuests is false).\"}}",
	 0, NULL, GRAPH_DIR_FAILED, "Request_BadRequest",
	 "Guest users cannot be added to this group: its settings do not allow guests "
	 "(AllowToAddGuests is false).",
	 NULL, NULL, NULL, NULL, 0, "add: a group refusing guests fails, Graph's reason kept"},
	{ADD, 404, 0, NOT_FOUND_BODY, 0, NULL, GRAPH_DIR_NOT_FOUND, "Request_ResourceNotFound",
	 NULL, NULL, NULL, NULL, NULL, 0, "add: 404 is not replicated yet"},
	{ADD, 403, 0, DENIED_BODY, 0, NULL, GRAPH_DIR_DENIED, "Authorization_RequestDenied", NULL,
	 NULL, NULL, NULL, NULL, 0, "add: 403 without GroupMember.ReadWrite.All"},
	{ADD, 403, 0, "{\"error\":{\"code\":\"Forbidden\",\"message\":\"on-premises mastered\"}}", 0,
	 NULL, GRAPH_DIR_FAILED, "Forbidden", "on-premises mastered", NULL, NULL, NULL, NULL, 0,
	 "add: another 403 fails that addition"},
	{ADD, 400, 0, "not json", 0, NULL, GRAPH_DIR_FAILED, "HTTP400", NULL, NULL, NULL, NULL,
	 NULL, 0, "add: a 400 that is not JSON"},
	{ADD, 429, 0, "", 1, "Tenant/Write//tid", GRAPH_DIR_THROTTLED, "HTTP429", NULL, NULL, NULL,
	 NULL, NULL, 0, "add: 429"},
	{ADD, 500, 0, "{\"error\":{\"code\":\"UnknownError\",\"message\":\"already exist\"}}", 0,
	 NULL, GRAPH_DIR_TRANSIENT, "UnknownError", NULL, NULL, NULL, NULL, NULL, 0,
	 "add: 'already exist' only counts in a 400"},
	{ADD, 401, 0, "", 0, NULL, GRAPH_DIR_AUTH, "HTTP401", NULL, NULL, NULL, NULL, NULL, 0,
	 "add: 401"},
	{ADD, 408, 0, "", 0, NULL, GRAPH_DIR_TRANSIENT, "HTTP408", NULL, NULL, NULL, NULL, NULL, 0,
	 "add: 408"},
	{ADD, 0, -EHOSTUNREACH, "", 0, NULL, GRAPH_DIR_TRANSIENT, "HostUnreachable", NULL, NULL,
	 NULL, NULL, NULL, 0, "add: no route"},
	/* reads by id */
	{READ, 200, 0,
	 "{\"@odata.context\":\"x/$entity\",\"id\":\"g-1\",\"userType\":\"Guest\","
	 "\"externalUserState\":\"Accepted\",\"externalUserStateChangeDateTime\":\"2028-02-29T23:59:59.250Z\"}",
	 0, NULL, GRAPH_DIR_OK, NULL, NULL, "g-1", "Guest", NULL, "Accepted", 1835481599250u,
	 "read: an accepted guest (a leap day, a fraction)"},
	{READ, 200, 0,
	 "{\"id\":\"g-1\",\"externalUserStateChangeDateTime\":\"2026-12-01T10:00:00+01:00\"}", 0,
	 NULL, GRAPH_DIR_OK, NULL, NULL, "g-1", NULL, NULL, NULL, 1796115600000u, "read: an offset"},
	{READ, 200, 0,
	 "{\"id\":\"g-1\",\"externalUserStateChangeDateTime\":\"2026-12-01t10:00:00.1234567z\"}", 0,
	 NULL, GRAPH_DIR_OK, NULL, NULL, "g-1", NULL, NULL, NULL, 1796119200123u,
	 "read: lower-case t and z, seven fraction digits"},
	{READ, 200, 0, "{\"id\":\"g-1\",\"externalUserStateChangeDateTime\":\"2026-02-29T10:00:00Z\"}",
	 0, NULL, GRAPH_DIR_OK, NULL, NULL, "g-1", NULL, NULL, NULL, 0,
	 "read: no 29 February in 2026: 0"},
	{READ, 200, 0, "{\"id\":\"g-1\",\"externalUserStateChangeDateTime\":\"2026-12-01 10:00:00Z\"}",
	 0, NULL, GRAPH_DIR_OK, NULL, NULL, "g-1", NULL, NULL, NULL, 0, "read: no T: 0"},
	{READ, 200, 0, "{\"id\":\"g-1\",\"externalUserStateChangeDateTime\":\"2026-12-01T10:00:00\"}",
	 0, NULL, GRAPH_DIR_OK, NULL, NULL, "g-1", NULL, NULL, NULL, 0, "read: no zone: 0"},
	{READ, 200, 0, "{\"id\":\"g-1\",\"externalUserStateChangeDateTime\":\"1969-12-31T23:59:59Z\"}",
	 0, NULL, GRAPH_DIR_OK, NULL, NULL, "g-1", NULL, NULL, NULL, 0, "read: before 1970: 0"},
	{READ, 200, 0, "{\"id\":\"g-1\",\"externalUserStateChangeDateTime\":\"2026-12-01T24:00:00Z\"}",
	 0, NULL, GRAPH_DIR_OK, NULL, NULL, "g-1", NULL, NULL, NULL, 0, "read: hour 24: 0"},
	{READ, 200, 0, "{\"id\":\"g-1\",\"externalUserStateChangeDateTime\":\"2026-12-01T10:00:00.Z\"}",
	 0, NULL, GRAPH_DIR_OK, NULL, NULL, "g-1", NULL, NULL, NULL, 0, "read: an empty fraction: 0"},
	{READ, 200, 0, "{\"id\":\"g-1\",\"externalUserStateChangeDateTime\":1796119200}", 0, NULL,
	 GRAPH_DIR_OK, NULL, NULL, "g-1", NULL, NULL, NULL, 0, "read: a number: 0"},
	{READ, 200, 0, "{\"userType\":\"Guest\"}", 0, NULL, GRAPH_DIR_TRANSIENT, "BadResponse",
	 "a user answer without an id", NULL, NULL, NULL, NULL, 0, "read: a 200 without an id"},
	{READ, 404, 0, NOT_FOUND_BODY, 0, NULL, GRAPH_DIR_NOT_FOUND, "Request_ResourceNotFound",
	 "Resource 'u-1' does not exist or one of its queried reference-property objects are not present.",
	 NULL, NULL, NULL, NULL, 0, "read: 404"},
	{READ, 403, 0, DENIED_BODY, 0, NULL, GRAPH_DIR_DENIED, "Authorization_RequestDenied", NULL,
	 NULL, NULL, NULL, NULL, 0, "read: 403"},
	{READ, 403, 0, "{\"error\":{\"code\":\"ErrorAccessDenied\",\"message\":\"Access is denied.\"}}",
	 0, NULL, GRAPH_DIR_DENIED, "ErrorAccessDenied", NULL, NULL, NULL, NULL, NULL, 0,
	 "read: 403 ErrorAccessDenied"},
	{READ, 502, 0, "<html>bad gateway</html>", 0, NULL, GRAPH_DIR_TRANSIENT, "HTTP502", NULL,
	 NULL, NULL, NULL, NULL, 0, "read: 502"},
};

static void test_dir_classify(void)
{
	for (size_t i = 0; i < sizeof(dir_cases) / sizeof(dir_cases[0]); i++) {
		const struct dir_case *c = &dir_cases[i];
		struct http_response resp = {
			.status = c->status,
			.error = c->error,
			.error_text = c->error ? "curl says" : NULL,
			.body = c->body,
			.body_len = strlen(c->body),
			.retry_after_ms = c->retry_after ? 3000 : 0,
			.has_retry_after = c->retry_after,
			.throttle_scope = c->scope,
		};
		struct graph_dir_result g;
		int r = c->which == LOOKUP ? graph_lookup_classify(&resp, &g)
			: c->which == ADD  ? graph_group_add_classify(&resp, &g)
					   : graph_read_classify(&resp, &g);
		is_int(r, 0, "%s: classified", c->name);
		is_str(outcome_name(g.outcome), outcome_name(c->want), "%s: outcome", c->name);
		is_int(g.http_status, c->status, "%s: status", c->name);
		is_str(g.error_code, c->code, "%s: code", c->name);
		if (c->message)
			is_str(g.error_message, c->message, "%s: message", c->name);
		ok(g.found == (c->id != NULL), "%s: found %d", c->name, g.found);
		is_str(g.user.id, c->id, "%s: id", c->name);
		if (c->id) {
			is_str(g.user.user_type, c->user_type, "%s: userType", c->name);
			is_str(g.user.mail, c->mail, "%s: mail", c->name);
			is_str(g.user.external_state, c->state, "%s: externalUserState", c->name);
			is_int(g.user.state_changed_ms, c->changed_ms, "%s: state changed at", c->name);
		}
		if (c->retry_after)
			ok(g.has_retry_after && g.retry_after_ms == 3000, "%s: Retry-After", c->name);
		if (c->want == GRAPH_DIR_THROTTLED)
			is_int(g.throttle_scope, graph_throttle_scope_parse(c->scope), "%s: scope",
			       c->name);
		else
			is_int(g.throttle_scope, GRAPH_THROTTLE_UNKNOWN, "%s: no scope", c->name);
		ok(valid_utf8_json(g.error_code ? g.error_code : "") &&
			   valid_utf8_json(g.error_message ? g.error_message : "") &&
			   valid_utf8_json(g.user.id ? g.user.id : "") &&
			   valid_utf8_json(g.user.mail ? g.user.mail : "") &&
			   valid_utf8_json(g.user.external_state ? g.user.external_state : ""),
		   "%s: strings valid UTF-8", c->name);
		graph_dir_result_clear(&g);
	}
	/* the request-id: the header's, else the body's innerError */
	struct http_response resp = {.status = 403, .body = DENIED_BODY,
				     .body_len = strlen(DENIED_BODY)};
	struct graph_dir_result g;
	graph_read_classify(&resp, &g);
	is_str(g.request_id, "rq-b", "request-id from innerError");
	graph_dir_result_clear(&g);
	resp.request_id = "rq-h";
	graph_read_classify(&resp, &g);
	is_str(g.request_id, "rq-h", "the request-id header wins");
	graph_dir_result_clear(&g);
	ok(g.error_code == NULL && g.user.id == NULL && !g.found, "cleared");
}

static void test_track_classify(void)
{
	/* out of order; item 4 missing; 3 throttled with its own headers */
	static const char body[] =
		"{\"responses\":["
		"{\"id\":\"3\",\"status\":429,\"headers\":{\"Retry-After\":\"5\","
		"\"x-ms-throttle-scope\":\"Tenant/Read//tid\",\"x-ms-throttle-information\":"
		"\"ReadLimitExceeded\"},\"body\":{\"error\":{\"code\":\"TooManyRequests\","
		"\"message\":\"Too many requests.\"}}},"
		"{\"id\":\"2\",\"status\":404,\"headers\":{\"Content-Type\":\"application/json\"},"
		"\"body\":" NOT_FOUND_BODY "},"
		"{\"id\":\"1\",\"status\":200,\"headers\":{\"request-id\":\"r1\"},\"body\":"
		"{\"@odata.context\":\"x\",\"id\":\"g-1\",\"userType\":\"Guest\",\"externalUserState\":"
		"\"Accepted\",\"externalUserStateChangeDateTime\":\"2026-12-01T10:00:00Z\"}},"
		"{\"id\":\"5\",\"status\":403,\"body\":" DENIED_BODY "},"
		"{\"id\":\"6\",\"status\":200,\"body\":{\"id\":\"g-6\",\"userType\":\"Guest\","
		"\"externalUserState\":\"PendingAcceptance\",\"externalUserStateChangeDateTime\":null}},"
		"{\"id\":\"7\",\"status\":200},"
		"{\"id\":\"9\",\"status\":200,\"body\":{\"id\":\"nine\"}},"
		"{\"id\":\"1\",\"status\":500,\"body\":{}}"
		"]}";
	struct http_response resp = {.status = 200, .body = body, .body_len = sizeof(body) - 1};
	struct graph_dir_result res[8];
	is_int(graph_track_batch_classify(&resp, 8, res), 0, "a track batch read");
	is_str(outcome_name(res[0].outcome), "OK", "item 1: OK (answered third; a repeated id ignored)");
	ok(res[0].found && res[0].user.id && strcmp(res[0].user.id, "g-1") == 0 &&
		   res[0].user.external_state && strcmp(res[0].user.external_state, "Accepted") == 0 &&
		   res[0].user.state_changed_ms == 1796119200000u,
	   "item 1: the accepted guest and when");
	is_str(res[0].request_id, "r1", "item 1: its request-id header");
	is_str(outcome_name(res[1].outcome), "NOT_FOUND", "item 2: 404");
	ok(!res[1].found, "item 2: not found");
	is_str(outcome_name(res[2].outcome), "THROTTLED", "item 3: 429 item");
	ok(res[2].has_retry_after && res[2].retry_after_ms == 5000, "item 3: its own Retry-After");
	is_int(res[2].throttle_scope, GRAPH_THROTTLE_TENANT, "item 3: its own scope");
	is_str(res[2].error_code, "TooManyRequests", "item 3: its code");
	is_str(outcome_name(res[3].outcome), "TRANSIENT", "item 4 missing: tried again");
	is_str(res[3].error_code, "BadResponse", "item 4: BadResponse");
	is_str(res[3].error_message, "no answer for this item in the batch", "item 4: says so");
	is_str(outcome_name(res[4].outcome), "DENIED", "item 5: 403");
	is_str(outcome_name(res[5].outcome), "OK", "item 6: pending guest");
	ok(res[5].found && res[5].user.external_state &&
		   strcmp(res[5].user.external_state, "PendingAcceptance") == 0 &&
		   res[5].user.state_changed_ms == 0,
	   "item 6: pending, changed null");
	is_str(outcome_name(res[6].outcome), "TRANSIENT", "item 7: a 200 without a body");
	is_str(res[6].error_message, "a batch item without a readable body", "item 7: says so");
	is_str(outcome_name(res[7].outcome), "TRANSIENT", "item 8 missing (id 9 is out of range)");
	for (size_t i = 0; i < 8; i++)
		graph_dir_result_clear(&res[i]);

	/* the envelope itself: one answer for all */
	static const struct {
		long status;
		int error;
		const char *body;
		const char *want;
		const char *name;
	} whole[] = {
		{429, 0, "{\"error\":{\"code\":\"TooManyRequests\"}}", "THROTTLED", "a 429 envelope"},
		{503, 0, "", "TRANSIENT", "a 503 envelope"},
		{401, 0, "", "AUTH", "a 401 envelope"},
		{403, 0, DENIED_BODY, "DENIED", "a 403 envelope"},
		{400, 0, "{\"error\":{\"code\":\"BadRequest\"}}", "FAILED", "a 400 envelope"},
		{200, 0, "{\"responses\":[", "TRANSIENT", "a truncated 200 envelope"},
		{200, 0, "<html>", "TRANSIENT", "a 200 envelope that is not JSON"},
		{0, -ECONNRESET, "", "TRANSIENT", "no answer"},
	};
	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
		struct http_response w = {.status = whole[i].status, .error = whole[i].error,
					  .body = whole[i].body, .body_len = strlen(whole[i].body),
					  .has_retry_after = whole[i].status == 429,
					  .retry_after_ms = whole[i].status == 429 ? 9000 : 0,
					  .throttle_scope = "Application/Read/app"};
		is_int(graph_track_batch_classify(&w, 2, res), GRAPH_BATCH_WHOLE, "%s: for all",
		       whole[i].name);
		struct graph_dir_result g;
		is_int(graph_read_classify(&w, &g), 0, "%s: read once", whole[i].name);
		is_str(outcome_name(g.outcome), whole[i].want, "%s: the outcome for all", whole[i].name);
		if (whole[i].status == 429)
			ok(g.retry_after_ms == 9000 && g.throttle_scope == GRAPH_THROTTLE_APPLICATION,
			   "%s: its Retry-After and scope", whole[i].name);
		graph_dir_result_clear(&g);
	}
	is_int(graph_track_batch_classify(&resp, 0, res), -EINVAL, "0 items refused");
	is_int(graph_track_batch_classify(&resp, GRAPH_BATCH_MAX + 1, res), -EINVAL,
	       "21 items refused");
}

/* client-request-id: a fresh GUID each time, in each $batch item's headers */
static void test_client_request_id(void)
{
	char a[GRAPH_CLIENT_REQUEST_ID_LEN + 1], b[GRAPH_CLIENT_REQUEST_ID_LEN + 1];
	graph_new_request_id(a);
	graph_new_request_id(b);
	ok(strlen(a) == 36 && a[8] == '-' && a[13] == '-' && a[14] == '4' && a[18] == '-' &&
	   strchr("89ab", a[19]) && a[23] == '-',
	   "a version 4 GUID: %s", a);
	ok(strcmp(a, b) != 0, "a new one each time");
	struct store_claim x = {.email = "a@x.example", .redirect_url = "https://r.example"};
	struct store_claim y = {.email = "b@x.example", .redirect_url = "https://r.example"};
	memcpy(x.client_request_id, a, sizeof(a));
	memcpy(y.client_request_id, b, sizeof(b));
	struct store_claim *claims[] = {&x, &y};
	char *body;
	size_t len;
	is_int(graph_batch_body(claims, 2, &body, &len), 0, "batch body");
	json_t *j = json_loads(body, 0, NULL);
	json_t *reqs = json_object_get(j, "requests");
	json_t *h0 = json_object_get(json_array_get(reqs, 0), "headers");
	json_t *h1 = json_object_get(json_array_get(reqs, 1), "headers");
	is_str(json_string_value(json_object_get(h0, "client-request-id")), a, "item 1 carries its id");
	is_str(json_string_value(json_object_get(h1, "client-request-id")), b, "item 2 its own");
	is_str(json_string_value(json_object_get(h1, "Content-Type")), "application/json",
	       "next to Content-Type");
	json_decref(j);
	free(body);
}

/* x-ms-throttle-scope (GRAPH.md §4): whose budget a 429 spent. */
static void test_throttle_scope(void)
{
	static const struct {
		const char *v;
		enum graph_throttle_scope want;
	} cases[] = {
		{NULL, GRAPH_THROTTLE_UNKNOWN},
		{"", GRAPH_THROTTLE_UNKNOWN},
		{"Application/Write/11111111-2222", GRAPH_THROTTLE_APPLICATION},
		{"application/ReadWrite/x", GRAPH_THROTTLE_APPLICATION},
		{"Tenant_Application/Write/app/tid", GRAPH_THROTTLE_TENANT},
		{"Tenant/Write//tid", GRAPH_THROTTLE_TENANT},
		{" Tenant", GRAPH_THROTTLE_TENANT},
		{"Applications/Write", GRAPH_THROTTLE_UNKNOWN},
		{"Tenant_App/Write", GRAPH_THROTTLE_UNKNOWN},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		is_int(graph_throttle_scope_parse(cases[i].v), cases[i].want, "scope '%s'",
		       cases[i].v ? cases[i].v : "(none)");
	/* a single 429 carries it; other answers do not use it */
	struct http_response resp = {.status = 429, .body = "{}", .body_len = 2,
				     .throttle_scope = "Application/Write/app"};
	struct graph_result g;
	ok(graph_classify(&resp, &g) == 0 && g.outcome == GRAPH_OUTCOME_THROTTLED &&
		   g.throttle_scope == GRAPH_THROTTLE_APPLICATION,
	   "a 429 naming the application is read as such");
	graph_result_clear(&g);
	resp.status = 500;
	ok(graph_classify(&resp, &g) == 0 && g.throttle_scope == GRAPH_THROTTLE_UNKNOWN,
	   "a 500 has no scope");
	graph_result_clear(&g);
	/* a $batch item's headers carry it too */
	static const char body[] =
		"{\"responses\":[{\"id\":\"1\",\"status\":429,\"headers\":{\"Retry-After\":\"1\","
		"\"x-ms-throttle-scope\":\"Tenant_Application/Write/a/t\"},\"body\":{}},"
		"{\"id\":\"2\",\"status\":429,\"headers\":{\"x-ms-throttle-scope\":"
		"\"Application/Write/a\"},\"body\":{}}]}";
	struct http_response b = {.status = 200, .body = body, .body_len = sizeof(body) - 1};
	struct graph_result r[2];
	int rr = graph_batch_classify(&b, 2, r);
	ok(rr == 0 && r[0].throttle_scope == GRAPH_THROTTLE_TENANT &&
		   r[1].throttle_scope == GRAPH_THROTTLE_APPLICATION,
	   "batch items: each its own scope (%d)", rr);
	if (rr == 0) {
		graph_result_clear(&r[0]);
		graph_result_clear(&r[1]);
	}
}

/* ---- sendMail (GRAPH.md §7) ---- */

/* What the simulator checks (tests/sim/directory.c check_mail, docs/simulator.md):
 * top level only message and saveToSentItems (boolean); message only
 * Graph's properties; subject a string; body {contentType Text|HTML,
 * content string}; toRecipients a non-empty array of {emailAddress:{address, name?}}. */
static bool sim_accepts(json_t *j)
{
	const char *k;
	json_t *v;
	if (!json_is_object(j))
		return false;
	json_object_foreach(j, k, v) {
		if (strcmp(k, "message") != 0 && strcmp(k, "saveToSentItems") != 0)
			return false;
	}
	json_t *save = json_object_get(j, "saveToSentItems");
	json_t *m = json_object_get(j, "message");
	if ((save && !json_is_boolean(save)) || !json_is_object(m))
		return false;
	static const char *const known[] = {"subject", "body", "toRecipients", "ccRecipients",
					    "bccRecipients", "replyTo", "from", "sender",
					    "importance", "internetMessageHeaders", "attachments"};
	json_object_foreach(m, k, v) {
		bool found = false;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			found = found || strcmp(k, known[i]) == 0;
		if (!found)
			return false;
	}
	json_t *b = json_object_get(m, "body");
	json_t *to = json_object_get(m, "toRecipients");
	if (!json_is_string(json_object_get(m, "subject")) || !json_is_object(b) ||
	    !json_is_string(json_object_get(b, "content")) ||
	    !json_is_string(json_object_get(b, "contentType")) || !json_is_array(to) ||
	    json_array_size(to) == 0)
		return false;
	size_t i;
	json_array_foreach(to, i, v) {
		json_t *ea = json_object_get(v, "emailAddress");
		json_t *nm = json_object_get(ea, "name");
		if (!json_is_string(json_object_get(ea, "address")) || (nm && !json_is_string(nm)))
			return false;
	}
	return true;
}

static void test_sendmail_requests(void)
{
	char *url = graph_sendmail_url("https://graph.microsoft.com/", "invitations@contoso.com");
	is_str(url, "https://graph.microsoft.com/v1.0/users/invitations%40contoso.com/sendMail",
	       "sendMail URL: the sender percent-encoded, no double slash");
	free(url);
	url = graph_sendmail_url("http://127.0.0.1:8080/fabrikam.example", "a b/c?d@x.example");
	is_str(url, "http://127.0.0.1:8080/fabrikam.example/v1.0/users/a%20b%2Fc%3Fd%40x.example/sendMail",
	       "sendMail URL: a tenant prefix kept; '/', '?' and spaces encoded");
	free(url);

	char *body;
	size_t len;
	is_int(graph_sendmail_body("You are invited to Contoso", "Hello Ann,\r\nclick \"here\"",
				   "ann@partner.example", "Ann Lee", &body, &len),
	       0, "sendMail body built");
	is_str(body,
	       "{\"message\":{\"subject\":\"You are invited to Contoso\",\"body\":{\"contentType\":"
	       "\"Text\",\"content\":\"Hello Ann,\\r\\nclick \\\"here\\\"\"},\"toRecipients\":"
	       "[{\"emailAddress\":{\"address\":\"ann@partner.example\",\"name\":\"Ann Lee\"}}]},"
	       "\"saveToSentItems\":false}",
	       "sendMail body: exactly GRAPH.md §7's");
	is_int(len, strlen(body), "its length");
	json_error_t err;
	json_t *j = json_loads(body, JSON_REJECT_DUPLICATES, &err);
	ok(j && sim_accepts(j), "the simulator's checks accept it");
	ok(json_is_false(json_object_get(j, "saveToSentItems")), "saveToSentItems false");
	json_t *m = json_object_get(j, "message");
	is_str(json_string_value(json_object_get(json_object_get(m, "body"), "contentType")), "Text",
	       "contentType Text");
	is_int(json_array_size(json_object_get(m, "toRecipients")), 1, "one recipient");
	ok(!json_object_get(m, "ccRecipients") && !json_object_get(m, "bccRecipients"),
	   "no cc, no bcc");
	json_decref(j);
	free(body);

	/* no name: left out; NULL subject and body: ""; controls escaped; invalid UTF-8 made valid */
	is_int(graph_sendmail_body(NULL, NULL, "b@partner.example", NULL, &body, &len), 0,
	       "body without a name");
	is_str(body,
	       "{\"message\":{\"subject\":\"\",\"body\":{\"contentType\":\"Text\",\"content\":\"\"},"
	       "\"toRecipients\":[{\"emailAddress\":{\"address\":\"b@partner.example\"}}]},"
	       "\"saveToSentItems\":false}",
	       "no name: the member left out; NULL subject and body are \"\"");
	j = json_loads(body, JSON_REJECT_DUPLICATES, &err);
	ok(j && sim_accepts(j), "accepted by the simulator's checks");
	json_decref(j);
	free(body);
	is_int(graph_sendmail_body("S\r\nBcc: x@evil.example", "b\x1b\xff", "c@partner.example",
				   "Ann\r\nBcc: x@evil.example\xc3(", &body, &len),
	       0, "body with controls and invalid UTF-8");
	j = json_loads(body, JSON_REJECT_DUPLICATES, &err);
	ok(j && sim_accepts(j), "valid JSON (invalid UTF-8 as U+FFFD), accepted");
	m = json_object_get(j, "message");
	is_str(json_string_value(json_object_get(json_object_get(json_array_get(
		       json_object_get(m, "toRecipients"), 0), "emailAddress"), "name")),
	       "Ann\r\nBcc: x@evil.example\xef\xbf\xbd(", "the name is a JSON string, exact");
	is_int(json_array_size(json_object_get(m, "toRecipients")), 1,
	       "still one recipient: JSON cannot be broken out of");
	is_str(json_string_value(json_object_get(json_object_get(m, "body"), "content")),
	       "b\x1b\xef\xbf\xbd", "content: ESC kept as \\u001b, U+FFFD");
	json_decref(j);
	free(body);
}

static void test_sendmail_classify(void)
{
	static const struct {
		long status;
		int error;
		const char *body;
		int retry_after;
		const char *scope;
		enum graph_dir_outcome want;
		const char *code;
		const char *name;
	} cases[] = {
		{202, 0, "", 0, NULL, GRAPH_DIR_OK, NULL, "202 Accepted"},
		{200, 0, "{}", 0, NULL, GRAPH_DIR_OK, NULL, "another 2xx"},
		{429, 0,
		 "{\"error\":{\"code\":\"ApplicationThrottled\",\"message\":\"Application is over "
		 "its MailboxConcurrency limit.\"}}",
		 1, "Tenant_Application/Write/app/tid", GRAPH_DIR_THROTTLED, "ApplicationThrottled",
		 "429 with Retry-After and a scope"},
		{429, 0, "", 0, NULL, GRAPH_DIR_THROTTLED, "HTTP429", "429 without Retry-After"},
		{503, 0, "", 1, NULL, GRAPH_DIR_THROTTLED, "HTTP503", "503 with Retry-After"},
		{503, 0, "", 0, NULL, GRAPH_DIR_TRANSIENT, "HTTP503", "503 without"},
		{500, 0, "{\"error\":{\"code\":\"UnknownError\",\"message\":\"x\"}}", 0, NULL,
		 GRAPH_DIR_TRANSIENT, "UnknownError", "500"},
		{408, 0, "", 0, NULL, GRAPH_DIR_TRANSIENT, "HTTP408", "408"},
		{401, 0, "{\"error\":{\"code\":\"InvalidAuthenticationToken\"}}", 0, NULL,
		 GRAPH_DIR_AUTH, "InvalidAuthenticationToken", "401"},
		{403, 0,
		 "{\"error\":{\"code\":\"ErrorAccessDenied\",\"message\":\"Access is denied. Check "
		 "credentials and try again.\"}}",
		 0, NULL, GRAPH_DIR_DENIED, "ErrorAccessDenied", "403 no Mail.Send / a refusing mailbox"},
		{403, 0, "{\"error\":{\"code\":\"Forbidden\",\"message\":\"policy\"}}", 0, NULL,
		 GRAPH_DIR_DENIED, "Forbidden", "any 403 is DENIED"},
		{404, 0,
		 "{\"error\":{\"code\":\"ErrorInvalidUser\",\"message\":\"The requested user "
		 "'x' is invalid.\"}}",
		 0, NULL, GRAPH_DIR_FAILED, "ErrorInvalidUser", "404 ErrorInvalidUser: FAILED"},
		{400, 0,
		 "{\"error\":{\"code\":\"ErrorInvalidRecipients\",\"message\":\"not a valid SMTP "
		 "address\"}}",
		 0, NULL, GRAPH_DIR_FAILED, "ErrorInvalidRecipients", "400: FAILED with Graph's reason"},
		{413, 0, "<html/>", 0, NULL, GRAPH_DIR_FAILED, "HTTP413", "413 not JSON: FAILED"},
		{0, -ETIMEDOUT, "", 0, NULL, GRAPH_DIR_TRANSIENT, "Timeout", "timeout"},
		{0, -ECONNRESET, "", 0, NULL, GRAPH_DIR_TRANSIENT, "ConnectionReset", "reset"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_response resp = {
			.status = cases[i].status,
			.error = cases[i].error,
			.error_text = cases[i].error ? "curl says" : NULL,
			.body = cases[i].body,
			.body_len = strlen(cases[i].body),
			.retry_after_ms = cases[i].retry_after ? 7000 : 0,
			.has_retry_after = cases[i].retry_after,
			.throttle_scope = cases[i].scope,
			.request_id = "rq-m",
		};
		struct graph_dir_result g;
		is_int(graph_sendmail_classify(&resp, &g), 0, "sendMail %s: classified", cases[i].name);
		is_str(outcome_name(g.outcome), outcome_name(cases[i].want), "sendMail %s: outcome",
		       cases[i].name);
		is_int(g.http_status, cases[i].status, "sendMail %s: status", cases[i].name);
		is_str(g.error_code, cases[i].code, "sendMail %s: code", cases[i].name);
		ok((g.outcome == GRAPH_DIR_OK) == (g.error_code == NULL),
		   "sendMail %s: a code exactly when not OK", cases[i].name);
		is_str(g.request_id, "rq-m", "sendMail %s: request-id", cases[i].name);
		if (cases[i].retry_after)
			ok(g.has_retry_after && g.retry_after_ms == 7000, "sendMail %s: Retry-After",
			   cases[i].name);
		is_int(g.throttle_scope,
		       cases[i].want == GRAPH_DIR_THROTTLED ? graph_throttle_scope_parse(cases[i].scope)
							    : GRAPH_THROTTLE_UNKNOWN,
		       "sendMail %s: scope", cases[i].name);
		ok(!g.found, "sendMail %s: no user", cases[i].name);
		graph_dir_result_clear(&g);
	}
}

int main(void)
{
	tap_plan_none();
	test_throttle_scope();
	test_body();
	test_classify();
	test_batch();
	test_reader();
	test_retry_after();
	test_utf8();
	test_client_request_id();
	test_lookup_url();
	test_group_requests();
	test_track_body();
	test_dir_classify();
	test_track_classify();
	test_sendmail_requests();
	test_sendmail_classify();
	return tap_done();
}
