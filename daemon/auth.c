/* SPDX-License-Identifier: MIT */
#include "auth.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "http.h"
#include "log.h"
#include "secret.h"
#include "timeutil.h"

#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

#define RETRY_MIN_MS 1000u
#define RETRY_MAX_MS 60000u
#define EXPIRY_MARGIN_MS 30000u /* a token this close to expiry is not used (or 1/10 of its life) */

struct auth {
	uv_loop_t *loop;
	struct http *http;
	char *token_url;
	char *client_id;
	char *scope;
	char *secret;                  /* secret memory; NULL with a certificate */
	const struct crypto_cert *cert;
	uint64_t timeout_ms;
	auth_ready_fn ready;
	void *userdata;

	char *header;         /* "Bearer ..." (secret memory) or NULL */
	uint64_t expires_at;  /* mono ms */
	uint64_t margin_ms;   /* not used this close to expires_at */
	bool fetching;
	char *error;
	uint64_t retry_ms;
	uint64_t refreshes;
	uv_timer_t *timer;    /* refresh or retry */
	struct fetch *fetch;  /* the request under way, if any */
};

/* One token request; outlives the module if it is destroyed meanwhile. */
struct fetch {
	struct auth *auth; /* NULL once the module is gone */
};

static void wipe_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static char *origin_of(const char *url)
{
	const char *p = strstr(url, "://");
	if (!p)
		return NULL;
	p += 3;
	size_t n = strcspn(p, "/?#");
	return strndup(url, (size_t)(p - url) + n);
}

static void on_timer_closed(uv_handle_t *h)
{
	free(h);
}

static void fetch(struct auth *a);

static void on_timer(uv_timer_t *t)
{
	fetch(t->data);
}

static void schedule(struct auth *a, uint64_t delay_ms)
{
	uv_timer_start(a->timer, on_timer, delay_ms, 0);
}

static void set_error(struct auth *a, char *why)
{
	if (!why)
		why = strdup("out of memory");
	if (why && (!a->error || strcmp(a->error, why) != 0))
		log_error("Failed to get a Graph token from %s: %s", a->token_url, why);
	free(a->error);
	a->error = why;
	a->retry_ms = a->retry_ms ? a->retry_ms * 2 : RETRY_MIN_MS;
	if (a->retry_ms > RETRY_MAX_MS)
		a->retry_ms = RETRY_MAX_MS;
	schedule(a, a->retry_ms);
}

int auth_parse_reply(long status, const char *body, size_t len, char **ret_token,
		     long long *ret_ttl_s, char **ret_why)
{
	struct buf why = BUF_INIT;
	json_t *root = json_loadb(body, len, 0, NULL);
	int r = -EINVAL;
	if (status != 200) {
		const char *desc = json_string_value(json_object_get(root, "error_description"));
		const char *code = json_string_value(json_object_get(root, "error"));
		buf_printf(&why, "HTTP %ld%s%s%s%s", status, code ? " " : "", code ? code : "",
			   desc ? ": " : "", desc ? desc : "");
		goto out;
	}
	const char *token = json_string_value(json_object_get(root, "access_token"));
	json_t *exp = json_object_get(root, "expires_in");
	/* expires_in is a number, but some servers send it as a string */
	long long ttl = 0;
	if (json_is_integer(exp))
		ttl = json_integer_value(exp);
	else if (json_is_string(exp)) {
		char *end;
		errno = 0;
		ttl = strtoll(json_string_value(exp), &end, 10);
		if (errno || *end)
			ttl = 0;
	}
	if (!token || !*token || ttl <= 0 || ttl > 86400 * 366) {
		buf_printf(&why, "the token endpoint's answer has no usable access_token/expires_in");
		goto out;
	}
	*ret_token = strdup(token);
	if (!*ret_token) {
		r = -ENOMEM;
		buf_printf(&why, "out of memory");
		goto out;
	}
	*ret_ttl_s = ttl;
	r = 0;
out:
	json_decref(root);
	if (r < 0)
		*ret_why = buf_steal(&why);
	buf_finish(&why);
	return r;
}

static void on_reply(void *userdata, const struct http_response *resp)
{
	struct fetch *f = userdata;
	struct auth *a = f->auth;
	free(f);
	if (!a)
		return;
	char *why = NULL, *token = NULL;
	long long ttl = 0;

	a->fetching = false;
	a->fetch = NULL;
	if (resp->error) {
		struct buf m = BUF_INIT;
		buf_printf(&m, "no answer: %s", resp->error_text ? resp->error_text : "error");
		set_error(a, buf_steal(&m));
		return;
	}
	if (auth_parse_reply(resp->status, resp->body, resp->body_len, &token, &ttl, &why) < 0) {
		set_error(a, why);
		return;
	}
	size_t len = strlen(token);
	char *header = secret_alloc(7 + len);
	if (header) {
		memcpy(header, "Bearer ", 7);
		memcpy(header + 7, token, len);
	}
	wipe_free(token);
	if (!header) {
		set_error(a, strdup("out of memory"));
		return;
	}
	secret_free(a->header);
	a->header = header;
	a->expires_at = time_mono_ms() + (uint64_t)ttl * 1000u;
	a->margin_ms = (uint64_t)ttl * 100u < EXPIRY_MARGIN_MS ? (uint64_t)ttl * 100u : EXPIRY_MARGIN_MS;
	a->refreshes++;
	if (a->error)
		log_notice("Got a Graph token again after: %s", a->error);
	free(a->error);
	a->error = NULL;
	a->retry_ms = 0;
	schedule(a, (uint64_t)ttl * 800u); /* refresh at 80% of the lifetime */
	if (a->ready)
		a->ready(a->userdata);
}

static void fetch(struct auth *a)
{
	if (a->fetching)
		return;
	struct buf body = BUF_INIT;
	char *id = http_form_escape(a->client_id);
	char *scope = http_form_escape(a->scope);
	char *credential = NULL, *jwt = NULL;
	int r = -ENOMEM;
	if (a->cert) {
		r = crypto_cert_assertion(a->cert, a->token_url, a->client_id,
					  (int64_t)(time_now_ms() / 1000u), &jwt);
		if (r < 0) {
			free(id);
			free(scope);
			set_error(a, strdup("cannot sign the client assertion with the certificate"));
			return;
		}
		credential = http_form_escape(jwt);
		secret_free(jwt);
	} else {
		credential = http_form_escape(a->secret);
	}
	r = -ENOMEM;
	if (id && scope && credential && a->cert)
		r = buf_printf(&body,
			       "grant_type=client_credentials&client_id=%s&scope=%s"
			       "&client_assertion_type=%s&client_assertion=%s",
			       id, scope, ASSERTION_TYPE, credential);
	else if (id && scope && credential)
		r = buf_printf(&body,
			       "grant_type=client_credentials&client_id=%s&scope=%s&client_secret=%s",
			       id, scope, credential);
	free(id);
	free(scope);
	wipe_free(credential);
	struct fetch *f = NULL;
	if (r == 0) {
		f = malloc(sizeof(*f));
		if (!f)
			r = -ENOMEM;
	}
	if (r < 0) {
		if (body.data)
			explicit_bzero(body.data, body.len);
		buf_finish(&body);
		set_error(a, strdup("out of memory"));
		return;
	}
	f->auth = a;
	struct http_post_spec spec = {
		.url = a->token_url,
		.content_type = "application/x-www-form-urlencoded",
		.timeout_ms = a->timeout_ms,
	};
	size_t len = body.len;
	r = http_post(a->http, &spec, buf_steal(&body), len, on_reply, f);
	if (r < 0) {
		free(f);
		set_error(a, strdup("cannot start the request"));
		return;
	}
	a->fetching = true;
	a->fetch = f;
}

int auth_create(uv_loop_t *loop, struct http *http, const struct auth_options *opt,
		const char *secret, auth_ready_fn ready, void *userdata, struct auth **ret)
{
	struct auth *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->loop = loop;
	a->http = http;
	a->timeout_ms = opt->timeout_ms;
	a->ready = ready;
	a->userdata = userdata;
	struct buf url = BUF_INIT;
	buf_printf(&url, "%s/%s/oauth2/v2.0/token", opt->authority_url, opt->tenant);
	a->token_url = buf_steal(&url);
	a->client_id = strdup(opt->client_id);
	a->cert = opt->cert;
	a->secret = secret ? secret_strdup(secret) : NULL;
	char *origin = origin_of(opt->graph_url);
	struct buf scope = BUF_INIT;
	if (origin)
		buf_printf(&scope, "%s/.default", origin);
	free(origin);
	a->scope = buf_steal(&scope);
	a->timer = malloc(sizeof(*a->timer));
	if (!a->token_url || !a->client_id || (!a->secret && !a->cert) || !a->scope || !a->timer) {
		free(a->timer);
		a->timer = NULL;
		auth_destroy(a);
		return -ENOMEM;
	}
	uv_timer_init(loop, a->timer);
	a->timer->data = a;
	uv_unref((uv_handle_t *)a->timer);
	*ret = a;
	return 0;
}

void auth_destroy(struct auth *a)
{
	if (!a)
		return;
	if (a->fetch)
		a->fetch->auth = NULL; /* on_reply frees it; http_destroy never calls it */
	if (a->timer)
		uv_close((uv_handle_t *)a->timer, on_timer_closed);
	free(a->token_url);
	free(a->client_id);
	free(a->scope);
	secret_free(a->secret);
	secret_free(a->header);
	free(a->error);
	free(a);
}

void auth_start(struct auth *a)
{
	if (!a->header && !a->fetching && !uv_is_active((uv_handle_t *)a->timer))
		fetch(a);
}

const char *auth_header(struct auth *a)
{
	if (!a->header)
		return NULL;
	if (time_mono_ms() + a->margin_ms >= a->expires_at) {
		secret_free(a->header);
		a->header = NULL;
		if (!a->fetching) {
			uv_timer_stop(a->timer);
			fetch(a);
		}
		return NULL;
	}
	return a->header;
}

uint64_t auth_generation(const struct auth *a)
{
	return a->refreshes;
}

void auth_reject(struct auth *a, uint64_t generation)
{
	if (!a->header || generation != a->refreshes)
		return; /* already replaced */
	log_warning("Graph refused the token (401); fetching a new one");
	secret_free(a->header);
	a->header = NULL;
	if (!a->fetching) {
		uv_timer_stop(a->timer);
		fetch(a);
	}
}

enum auth_state auth_state(const struct auth *a)
{
	if (a->header)
		return AUTH_STATE_VALID;
	if (a->error)
		return AUTH_STATE_ERROR;
	if (a->fetching)
		return AUTH_STATE_FETCHING;
	return AUTH_STATE_NONE;
}

int64_t auth_expires_in_s(const struct auth *a)
{
	if (!a->header)
		return -1;
	uint64_t now = time_mono_ms();
	return a->expires_at > now ? (int64_t)((a->expires_at - now) / 1000u) : 0;
}

const char *auth_error(const struct auth *a)
{
	return a->error;
}

uint64_t auth_refreshes(const struct auth *a)
{
	return a->refreshes;
}

void auth_set_timeout(struct auth *a, uint64_t timeout_ms)
{
	a->timeout_ms = timeout_ms;
}
