/* SPDX-License-Identifier: MIT */
#include "graph.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http.h"
#include "store.h"

char *graph_invitations_url(const char *graph_url)
{
	struct buf b = BUF_INIT;
	if (buf_printf(&b, "%s/v1.0/invitations", graph_url) < 0)
		return NULL;
	return buf_steal(&b);
}

int graph_invitation_body(const struct store_claim *c, char **ret_body, size_t *ret_len)
{
	int r = -ENOMEM;
	json_t *o = json_object();
	if (!o)
		return -ENOMEM;
	if (json_object_set_new(o, "invitedUserEmailAddress", json_string(c->email)) < 0 ||
	    json_object_set_new(o, "inviteRedirectUrl", json_string(c->redirect_url)) < 0 ||
	    /* Graph's default is false: say it either way */
	    json_object_set_new(o, "sendInvitationMessage", json_boolean(c->send_email)) < 0)
		goto out;
	if (c->display_name &&
	    json_object_set_new(o, "invitedUserDisplayName", json_string(c->display_name)) < 0)
		goto out;
	if (c->message || c->language || c->cc) {
		json_t *info = json_object();
		if (!info || json_object_set_new(o, "invitedUserMessageInfo", info) < 0)
			goto out;
		if (c->message &&
		    json_object_set_new(info, "customizedMessageBody", json_string(c->message)) < 0)
			goto out;
		if (c->language &&
		    json_object_set_new(info, "messageLanguage", json_string(c->language)) < 0)
			goto out;
		if (c->cc) {
			json_t *cc = json_pack("[{s:{s:s}}]", "emailAddress", "address", c->cc);
			if (!cc || json_object_set_new(info, "ccRecipients", cc) < 0)
				goto out;
		}
	}
	char *body = json_dumps(o, JSON_COMPACT);
	if (!body)
		goto out;
	*ret_body = body;
	*ret_len = strlen(body);
	r = 0;
out:
	json_decref(o);
	return r;
}

void graph_result_clear(struct graph_result *res)
{
	free(res->error_code);
	free(res->error_message);
	free(res->request_id);
	free(res->invited_user_id);
	free(res->invite_redeem_url);
	memset(res, 0, sizeof(*res));
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static const char *transport_code(int error)
{
	switch (error) {
	case -ETIMEDOUT:
		return "Timeout";
	case -ECONNREFUSED:
		return "ConnectionRefused";
	case -ECONNRESET:
		return "ConnectionReset";
	case -EHOSTUNREACH:
		return "HostUnreachable";
	case -EMSGSIZE:
		return "ResponseTooLarge";
	case -EPROTO:
		return "BadResponse";
	default:
		return "TransportError";
	}
}

/* The anti-abuse block (GRAPH.md §3) is a 403 whose message says so; other
 * 403s (missing permission) fail the row like any other 4xx. */
static bool is_block(const char *message)
{
	return message && (strstr(message, "suspicious activity") ||
			   strstr(message, "Invitations are blocked"));
}

int graph_classify(const struct http_response *resp, struct graph_result *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->http_status = resp->status;
	ret->retry_after_ms = resp->retry_after_ms;
	ret->has_retry_after = resp->has_retry_after;
	ret->request_id = dup_or_null(resp->request_id);

	if (resp->error) {
		ret->outcome = GRAPH_OUTCOME_TRANSIENT;
		ret->http_status = 0;
		ret->error_code = strdup(transport_code(resp->error));
		ret->error_message = dup_or_null(resp->error_text ? resp->error_text : "no answer");
		return ret->error_code ? 0 : -ENOMEM;
	}

	json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
	long st = resp->status;
	if (st == 201 || st == 200) {
		const char *uid = json_string_value(
			json_object_get(json_object_get(root, "invitedUser"), "id"));
		const char *url = json_string_value(json_object_get(root, "inviteRedeemUrl"));
		if (!uid) {
			/* a success we cannot read is not one we can report */
			ret->outcome = GRAPH_OUTCOME_TRANSIENT;
			ret->error_code = strdup("BadResponse");
			ret->error_message = strdup("201 without invitedUser.id");
		} else {
			ret->outcome = GRAPH_OUTCOME_CREATED;
			ret->invited_user_id = strdup(uid);
			ret->invite_redeem_url = dup_or_null(url);
		}
		json_decref(root);
		return 0;
	}

	json_t *err = json_object_get(root, "error");
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *message = json_string_value(json_object_get(err, "message"));
	if (!ret->request_id)
		ret->request_id = dup_or_null(json_string_value(
			json_object_get(json_object_get(err, "innerError"), "request-id")));
	struct buf fallback = BUF_INIT;
	if (code && !*code)
		code = NULL; /* an empty code says nothing: name the status instead */
	if (!code)
		buf_printf(&fallback, "HTTP%ld", st);
	ret->error_code = code ? strdup(code) : buf_steal(&fallback);
	ret->error_message = dup_or_null(message);

	if (st == 401)
		ret->outcome = GRAPH_OUTCOME_AUTH;
	else if (st == 403 && is_block(message))
		ret->outcome = GRAPH_OUTCOME_BLOCKED;
	else if (st == 429 || (st == 503 && resp->has_retry_after))
		ret->outcome = GRAPH_OUTCOME_THROTTLED;
	else if (st == 408 || st >= 500)
		ret->outcome = GRAPH_OUTCOME_TRANSIENT;
	else
		ret->outcome = GRAPH_OUTCOME_FAILED;
	json_decref(root);
	return 0;
}
