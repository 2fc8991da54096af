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

int main(void)
{
	tap_plan_none();
	test_body();
	test_classify();
	return tap_done();
}
