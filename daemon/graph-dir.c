/* SPDX-License-Identifier: MIT */
/*
 * graph-dir: the directory's requests (GRAPH.md §6: lookups by address,
 * group member additions, the $batch reads that track acceptance) and
 * sendMail (§7): their URLs, their bodies and what their answers mean.
 * Answers are read by graph.c's reader (graph-private.h). Pure: no I/O.
 */
#include "graph-private.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "http.h"

/* ---- the directory (GRAPH.md §6) ---- */

#define LOOKUP_SELECT "id,userType,mail,externalUserState,externalUserStateChangeDateTime"
#define TRACK_SELECT "id,userType,externalUserState,externalUserStateChangeDateTime"

/* graph_url's length without trailing slashes. */
static size_t base_len(const char *graph_url)
{
	size_t n = strlen(graph_url);
	while (n > 0 && graph_url[n - 1] == '/')
		n--;
	return n;
}

/* s[0..len) percent-encoded: every byte but RFC 3986's unreserved ones
 * (ALPHA DIGIT - . _ ~) as %XX, so a space is %20, never '+'. */
static int append_encoded(struct buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	int r = buf_reserve(b, len);
	for (size_t i = 0; i < len && r == 0; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			r = buf_append(b, &s[i], 1);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			r = buf_append(b, e, 3);
		}
	}
	return r;
}

/* An OData string literal's content: ' doubled. */
static int append_odata(struct buf *b, const char *s)
{
	int r = 0;
	for (const char *q; r == 0 && (q = strchr(s, '\'')); s = q + 1) {
		r = buf_append(b, s, (size_t)(q - s) + 1);
		r = r ? r : buf_append(b, "'", 1);
	}
	return r ? r : buf_append_str(b, s);
}

char *graph_lookup_url(const char *graph_url, const char *email)
{
	struct buf filter = BUF_INIT, url = BUF_INIT;
	/* GRAPH.md §6, as the simulator checks it: the same A four times */
	static const char *const parts[] = {"mail eq '", "' or otherMails/any(x:x eq '",
					    "') or proxyAddresses/any(x:x eq 'smtp:",
					    "') or userPrincipalName eq '"};
	int r = 0;
	for (size_t i = 0; i < 4 && r == 0; i++) {
		r = buf_append_str(&filter, parts[i]);
		r = r ? r : append_odata(&filter, email);
	}
	r = r ? r : buf_append_str(&filter, "'");
	r = r ? r : buf_append(&url, graph_url, base_len(graph_url));
	r = r ? r : buf_append_str(&url, "/v1.0/users?$filter=");
	r = r ? r : append_encoded(&url, filter.data, filter.len);
	r = r ? r : buf_append_str(&url, "&$select=");
	r = r ? r : append_encoded(&url, LOOKUP_SELECT, strlen(LOOKUP_SELECT));
	buf_finish(&filter);
	if (r < 0) {
		buf_finish(&url);
		return NULL;
	}
	return buf_steal(&url);
}

char *graph_group_members_url(const char *graph_url, const char *group_id)
{
	struct buf b = BUF_INIT;
	int r = buf_append(&b, graph_url, base_len(graph_url));
	r = r ? r : buf_append_str(&b, "/v1.0/groups/");
	r = r ? r : append_encoded(&b, group_id, strlen(group_id));
	r = r ? r : buf_append_str(&b, "/members/$ref");
	if (r < 0) {
		buf_finish(&b);
		return NULL;
	}
	return buf_steal(&b);
}

int graph_group_add_body(const char *graph_url, const char *user_id, char **ret_body,
			 size_t *ret_len)
{
	struct buf ref = BUF_INIT, b = BUF_INIT;
	int r = buf_append(&ref, graph_url, base_len(graph_url));
	r = r ? r : buf_append_str(&ref, "/v1.0/directoryObjects/");
	r = r ? r : append_encoded(&ref, user_id, strlen(user_id));
	r = r ? r : buf_append_str(&b, "{\"@odata.id\":");
	r = r ? r : buf_append_json_string(&b, ref.data);
	r = r ? r : buf_append_str(&b, "}");
	buf_finish(&ref);
	if (r < 0) {
		buf_finish(&b);
		return r;
	}
	*ret_len = b.len;
	*ret_body = buf_steal(&b);
	return 0;
}

int graph_track_batch_body(const char *const *user_ids, size_t n, char **ret_body, size_t *ret_len)
{
	if (n < 1 || n > GRAPH_BATCH_MAX || !user_ids)
		return -EINVAL;
	struct buf b = BUF_INIT;
	int r = buf_reserve(&b, 32 + n * 160);
	r = r ? r : buf_append_str(&b, "{\"requests\":[");
	for (size_t i = 0; i < n && r == 0; i++) {
		struct buf url = BUF_INIT;
		r = buf_append_str(&url, "/users/");
		r = r ? r : append_encoded(&url, user_ids[i], strlen(user_ids[i]));
		r = r ? r : buf_append_str(&url, "?$select=" TRACK_SELECT);
		r = r ? r : buf_printf(&b, "%s{\"id\":\"%zu\",\"method\":\"GET\",\"url\":",
				       i ? "," : "", i + 1);
		r = r ? r : buf_append_json_string(&b, url.data);
		r = r ? r : buf_append_str(&b, "}");
		buf_finish(&url);
	}
	r = r ? r : buf_append_str(&b, "]}");
	if (r < 0) {
		buf_finish(&b);
		return r;
	}
	*ret_len = b.len;
	*ret_body = buf_steal(&b);
	return 0;
}

void graph_dir_result_clear(struct graph_dir_result *r)
{
	free(r->error_code);
	free(r->error_message);
	free(r->request_id);
	user_clear(&r->user);
	memset(r, 0, sizeof(*r));
}

/* needle (ASCII) in hay, case-insensitive */
static bool contains_nocase(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; hay && *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

enum dir_kind {
	DIR_LOOKUP, /* GET /users?$filter= */
	DIR_ADD,    /* POST /groups/{id}/members/$ref */
	DIR_READ,   /* GET /users/{id} */
	DIR_MAIL,   /* POST /users/{sender}/sendMail */
};

/* What one directory answer (status + body members) means. */
static int dir_classify(enum dir_kind kind, long status, bool readable, struct answer *a,
			bool has_retry_after, uint64_t retry_after_ms, const char *request_id,
			enum graph_throttle_scope scope, const char *body, size_t body_len,
			struct graph_dir_result *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->http_status = status;
	ret->retry_after_ms = retry_after_ms;
	ret->has_retry_after = has_retry_after;
	ret->request_id = answer_request_id(request_id, a);
	if (status >= 200 && status < 300) {
		if (kind == DIR_ADD || kind == DIR_MAIL) {
			ret->outcome = GRAPH_DIR_OK; /* 204, 202: no body */
			return 0;
		}
		struct graph_user *u = kind == DIR_LOOKUP ? &a->pick : &a->user;
		if (readable && (kind == DIR_LOOKUP ? a->value_seen : u->id != NULL)) {
			ret->outcome = GRAPH_DIR_OK;
			ret->found = u->id != NULL;
			ret->user = *u;
			memset(u, 0, sizeof(*u));
			return 0;
		}
		/* a read we cannot believe: another try is safe, "not found"
		 * is not (it could invite an address twice) */
		ret->outcome = GRAPH_DIR_TRANSIENT;
		ret->error_code = strdup("BadResponse");
		if (readable)
			ret->error_message = strdup(kind == DIR_LOOKUP
							    ? "a lookup answer without a value list"
							    : "a user answer without an id");
		else if (body)
			ret->error_message = graph_unreadable_message(body, body_len);
		else /* a $batch item's */
			ret->error_message = strdup("a batch item without a readable body");
		if (!ret->error_code || !ret->error_message)
			goto oom;
		return 0;
	}
	graph_error_fields(status, readable, a, body, body_len, &ret->error_code, &ret->error_message);
	if (!ret->error_code)
		goto oom;
	if (kind == DIR_ADD && status == 400 &&
	    contains_nocase(ret->error_message, "already exist")) {
		ret->outcome = GRAPH_DIR_OK; /* already a member: done */
		free(ret->error_code);
		free(ret->error_message);
		ret->error_code = ret->error_message = NULL;
	} else if (status == 401) {
		ret->outcome = GRAPH_DIR_AUTH;
	} else if (status == 429 || (status == 503 && has_retry_after)) {
		ret->outcome = GRAPH_DIR_THROTTLED;
		ret->throttle_scope = scope;
	} else if (status == 408 || status >= 500) {
		ret->outcome = GRAPH_DIR_TRANSIENT;
	} else if (status == 403 &&
		   (kind == DIR_MAIL || /* no Mail.Send, or a policy leaves the mailbox out */
		    strcasecmp(ret->error_code, "Authorization_RequestDenied") == 0 ||
		    strcasecmp(ret->error_code, "ErrorAccessDenied") == 0)) {
		ret->outcome = GRAPH_DIR_DENIED;
	} else if (status == 404 && kind != DIR_LOOKUP && kind != DIR_MAIL) {
		ret->outcome = GRAPH_DIR_NOT_FOUND;
	} else {
		ret->outcome = GRAPH_DIR_FAILED;
	}
	return 0;
oom:
	graph_dir_result_clear(ret);
	return -ENOMEM;
}

static int dir_classify_resp(enum dir_kind kind, const struct http_response *resp,
			     struct graph_dir_result *ret)
{
	if (resp->error) {
		memset(ret, 0, sizeof(*ret));
		ret->outcome = GRAPH_DIR_TRANSIENT;
		transport_error_fields(resp, &ret->retry_after_ms, &ret->has_retry_after,
				       &ret->request_id, &ret->error_code, &ret->error_message);
		if (!ret->error_code || !ret->error_message) {
			graph_dir_result_clear(ret);
			return -ENOMEM;
		}
		return 0;
	}
	struct answer a = {0};
	struct scan sc = {resp->body, resp->body + resp->body_len};
	bool readable = graph_answer_read(&sc, &a, true, 0);
	enum graph_throttle_scope scope = graph_throttle_scope_parse(resp->throttle_scope);
	int r = dir_classify(kind, resp->status, readable, &a, resp->has_retry_after,
			     resp->retry_after_ms, resp->request_id, scope, resp->body,
			     resp->body_len, ret);
	graph_answer_clear(&a);
	return r;
}

int graph_lookup_classify(const struct http_response *resp, struct graph_dir_result *ret)
{
	return dir_classify_resp(DIR_LOOKUP, resp, ret);
}

int graph_group_add_classify(const struct http_response *resp, struct graph_dir_result *ret)
{
	return dir_classify_resp(DIR_ADD, resp, ret);
}

int graph_read_classify(const struct http_response *resp, struct graph_dir_result *ret)
{
	return dir_classify_resp(DIR_READ, resp, ret);
}

/* ---- sendMail (GRAPH.md §7) ---- */

char *graph_sendmail_url(const char *graph_url, const char *sender)
{
	struct buf b = BUF_INIT;
	int r = buf_append(&b, graph_url, base_len(graph_url));
	r = r ? r : buf_append_str(&b, "/v1.0/users/");
	r = r ? r : append_encoded(&b, sender, strlen(sender));
	r = r ? r : buf_append_str(&b, "/sendMail");
	if (r < 0) {
		buf_finish(&b);
		return NULL;
	}
	return buf_steal(&b);
}

/* s (NULL: "") as a JSON string, valid UTF-8 (invalid bytes as U+FFFD). */
static int append_json_utf8(struct buf *b, const char *s)
{
	char *v = graph_utf8_dup(s ? s : "", s ? strlen(s) : 0);
	if (!v)
		return -ENOMEM;
	int r = buf_append_json_string(b, v);
	free(v);
	return r;
}

int graph_sendmail_body(const char *subject, const char *body, const char *to_email,
			const char *to_name, char **ret, size_t *ret_len)
{
	struct buf b = BUF_INIT;
	int r = buf_reserve(&b, 256 + (body ? strlen(body) : 0));
	r = r ? r : buf_append_str(&b, "{\"message\":{\"subject\":");
	r = r ? r : append_json_utf8(&b, subject);
	r = r ? r : buf_append_str(&b, ",\"body\":{\"contentType\":\"Text\",\"content\":");
	r = r ? r : append_json_utf8(&b, body);
	r = r ? r : buf_append_str(&b, "},\"toRecipients\":[{\"emailAddress\":{\"address\":");
	r = r ? r : append_json_utf8(&b, to_email);
	if (to_name && *to_name) {
		r = r ? r : buf_append_str(&b, ",\"name\":");
		r = r ? r : append_json_utf8(&b, to_name);
	}
	r = r ? r : buf_append_str(&b, "}}]},\"saveToSentItems\":false}");
	if (r < 0) {
		buf_finish(&b);
		return r;
	}
	*ret_len = b.len;
	*ret = buf_steal(&b);
	return 0;
}

int graph_sendmail_classify(const struct http_response *resp, struct graph_dir_result *ret)
{
	return dir_classify_resp(DIR_MAIL, resp, ret);
}

int graph_track_batch_classify(const struct http_response *resp, size_t n,
			       struct graph_dir_result *results)
{
	if (n < 1 || n > GRAPH_BATCH_MAX)
		return -EINVAL;
	/* a batch of GETs is documented: any envelope but 200 (older: 424)
	 * is one answer for all */
	if (resp->error || (resp->status != 200 && resp->status != 424))
		return GRAPH_BATCH_WHOLE;
	struct item items[GRAPH_BATCH_MAX];
	int r = graph_batch_read(resp, n, true, items) ? 0 : GRAPH_BATCH_WHOLE;
	size_t done = 0;
	for (; done < n && r == 0; done++) {
		struct item *it = &items[done];
		if (!it->present || it->status == 0) {
			struct http_response missing = graph_item_missing(it);
			r = dir_classify_resp(DIR_READ, &missing, &results[done]);
		} else {
			r = dir_classify(DIR_READ, it->status, it->readable, &it->a,
					 it->has_retry_after, it->retry_after_ms, it->request_id,
					 it->throttle_scope, NULL, 0, &results[done]);
		}
	}
	if (r < 0) /* the one that failed is cleared already */
		for (size_t i = 0; i + 1 < done; i++)
			graph_dir_result_clear(&results[i]);
	for (size_t i = 0; i < n; i++)
		item_clear(&items[i]);
	return r;
}
