/* SPDX-License-Identifier: MIT */
#include "graph.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

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

char *graph_batch_url(const char *graph_url)
{
	struct buf b = BUF_INIT;
	if (buf_printf(&b, "%s/v1.0/$batch", graph_url) < 0)
		return NULL;
	return buf_steal(&b);
}

static json_t *invitation_json(const struct store_claim *c);

int graph_invitation_body(const struct store_claim *c, char **ret_body, size_t *ret_len)
{
	json_t *o = invitation_json(c);
	if (!o)
		return -ENOMEM;
	char *body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!body)
		return -ENOMEM;
	*ret_body = body;
	*ret_len = strlen(body);
	return 0;
}

int graph_batch_body(struct store_claim *const *claims, size_t n, char **ret_body, size_t *ret_len)
{
	json_t *reqs = json_array();
	json_t *root = json_pack("{s:o}", "requests", reqs);
	if (!root)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char id[24];
		snprintf(id, sizeof(id), "%zu", i + 1);
		json_t *body = invitation_json(claims[i]);
		json_t *item = body ? json_pack("{s:s,s:s,s:s,s:{s:s},s:o}", "id", id, "method", "POST",
						"url", "/invitations", "headers", "Content-Type",
						"application/json", "body", body)
				    : NULL;
		if (!item || json_array_append_new(reqs, item) < 0) {
			json_decref(root);
			return -ENOMEM;
		}
	}
	char *text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (!text)
		return -ENOMEM;
	*ret_body = text;
	*ret_len = strlen(text);
	return 0;
}

/* A header of a batch item, by case-insensitive name. */
static const char *item_header(json_t *headers, const char *name)
{
	const char *key;
	json_t *v;
	json_object_foreach(headers, key, v)
	{
		if (strcasecmp(key, name) == 0)
			return json_string_value(v);
	}
	return NULL;
}

int graph_batch_classify(const struct http_response *resp, size_t n, struct graph_result *results)
{
	if (resp->error || resp->status == 429 || resp->status >= 500 || resp->status == 401)
		return GRAPH_BATCH_WHOLE;
	if (resp->status != 200 && resp->status != 424)
		return GRAPH_BATCH_REFUSED;
	json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
	json_t *items = json_object_get(root, "responses");
	if (!json_is_array(items)) {
		json_decref(root);
		return GRAPH_BATCH_WHOLE; /* an answer we cannot read: like no answer */
	}
	json_t *by_index[GRAPH_BATCH_MAX] = {0};
	size_t i;
	json_t *item;
	json_array_foreach(items, i, item)
	{
		const char *id = json_string_value(json_object_get(item, "id"));
		char *end;
		unsigned long k = id ? strtoul(id, &end, 10) : 0;
		if (id && *end == '\0' && k >= 1 && k <= n && k <= GRAPH_BATCH_MAX)
			by_index[k - 1] = item;
	}
	/* every item refused with the same error code and message: the service
	 * does not take invitations in a batch */
	bool same = n >= 2;
	const char *code0 = NULL, *msg0 = NULL;
	for (i = 0; i < n && same; i++) {
		json_t *st = by_index[i] ? json_object_get(by_index[i], "status") : NULL;
		long status = json_is_integer(st) ? (long)json_integer_value(st) : 0;
		json_t *err = json_object_get(json_object_get(by_index[i], "body"), "error");
		const char *code = json_string_value(json_object_get(err, "code"));
		const char *msg = json_string_value(json_object_get(err, "message"));
		if (status < 400 || status >= 500 || status == 401 || status == 403 || status == 408 ||
		    status == 429 || !code || !msg) {
			same = false;
		} else if (i == 0) {
			code0 = code;
			msg0 = msg;
		} else {
			same = strcmp(code, code0) == 0 && strcmp(msg, msg0) == 0;
		}
	}
	if (same) {
		json_decref(root);
		return GRAPH_BATCH_REFUSED;
	}

	int r = 0;
	for (i = 0; i < n && r == 0; i++) {
		json_t *it = by_index[i];
		if (!it) {
			struct http_response missing = {.error = -EPROTO,
							.error_text = "no answer for this item in the batch",
							.body = ""};
			r = graph_classify(&missing, &results[i]);
			continue;
		}
		json_t *headers = json_object_get(it, "headers");
		json_t *st = json_object_get(it, "status");
		char *body = json_dumps(json_object_get(it, "body"), JSON_COMPACT | JSON_ENCODE_ANY);
		struct http_response one = {
			.status = json_is_integer(st) ? (long)json_integer_value(st) : 0,
			.body = body ? body : "",
			.body_len = body ? strlen(body) : 0,
			.request_id = item_header(headers, "request-id"),
		};
		if (one.status == 0)
			one.error = -EPROTO, one.error_text = "a batch item without a status";
		const char *ra = item_header(headers, "Retry-After");
		if (ra) {
			char *end;
			unsigned long secs = strtoul(ra, &end, 10);
			if (end != ra && *end == '\0') {
				one.retry_after_ms = (uint64_t)(secs > 86400 ? 86400 : secs) * 1000u;
				one.has_retry_after = 1;
			}
		}
		r = graph_classify(&one, &results[i]);
		free(body);
	}
	json_decref(root);
	return r;
}

static json_t *invitation_json(const struct store_claim *c)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
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
	return o;
out:
	json_decref(o);
	return NULL;
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
