/* SPDX-License-Identifier: MIT */
/* graph: the invitation body, and the outcome of each kind of answer. */
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "graph.h"
#include "http.h"
#include "store.h"
#include "tap.h"

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

int main(void)
{
	tap_plan_none();
	test_body();
	test_classify();
	test_batch();
	test_reader();
	return tap_done();
}
