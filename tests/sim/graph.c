/* SPDX-License-Identifier: MIT */
/*
 * graph: what the simulated login.microsoftonline.com and graph.microsoft.com
 * answer. See docs/simulator.md for the behaviour and GRAPH.md for the facts
 * it imitates.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "jsonout.h"
#include "log.h"
#include "sim.h"
#include "timeutil.h"
#include "validate.h"

#define GRAPH_CONTEXT "https://graph.microsoft.com/v1.0/$metadata#invitations/$entity"
#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define RETRY_AFTER_MAX 3600u

/* ---- small helpers ---- */

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void max_update(atomic_uint_fast64_t *max, uint_fast64_t v)
{
	uint_fast64_t cur = atomic_load_explicit(max, memory_order_relaxed);
	while (v > cur && !atomic_compare_exchange_weak(max, &cur, v))
		;
}

void sim_count_status(struct sim *s, unsigned status)
{
	if (status < SIM_STATUS_MAX)
		atomic_fetch_add_explicit(&s->stats.status[status], 1, memory_order_relaxed);
}

/* t: the caller's tenant, NULL when unknown (a 401). */
static void count_invitation(struct sim *s, struct sim_tenant *t, unsigned status)
{
	if (status >= SIM_STATUS_MAX)
		return;
	atomic_fetch_add_explicit(&s->stats.invitation_status[status], 1, memory_order_relaxed);
	if (t)
		atomic_fetch_add_explicit(&t->stats.invitation_status[status], 1,
					  memory_order_relaxed);
}

/* Graph's innerError date has no fraction: "2024-05-01T12:00:00". */
static void graph_date(char out[TIME_RFC3339_MAX])
{
	time_format_rfc3339(time_now_ms(), out);
	char *dot = strchr(out, '.');
	if (dot)
		*dot = '\0';
}

static bool is_content_type(const char *value, const char *want)
{
	size_t n = strlen(want);
	if (!value || strncasecmp(value, want, n) != 0)
		return false;
	return value[n] == '\0' || value[n] == ';' || value[n] == ' ';
}

void reply_finish(struct reply *r)
{
	free(r->body);
	r->body = NULL;
}

/* Takes ownership of j (may be NULL after a failed allocation). */
static void reply_json(struct reply *r, unsigned status, json_t *j)
{
	free(r->body);
	r->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	r->status = r->body ? status : 500;
	json_decref(j);
}

/* Takes the text in b (which is left empty); err < 0 (a failed append)
 * turns the reply into an empty 500. */
static void reply_buf(struct reply *r, unsigned status, struct buf *b, int err)
{
	free(r->body);
	r->body = NULL;
	if (err < 0 || !b->data) {
		buf_finish(b);
		r->status = 500;
		return;
	}
	r->body = buf_steal(b);
	r->status = status;
}

/* Appends {"error":{"code","message","innerError":{...}}}. 0 or -ENOMEM. */
static int graph_error(struct buf *b, const char *code, const char *message,
		       const char *request_id, const char *client_request_id)
{
	char date[TIME_RFC3339_MAX];
	int r = 0;
	graph_date(date);
	r |= buf_append_str(b, "{\"error\":{");
	r |= jsonout_member(b, "code", code, 1);
	r |= jsonout_member(b, "message", message, 0);
	r |= buf_append_str(b, ",\"innerError\":{");
	r |= jsonout_member(b, "date", date, 1);
	r |= jsonout_member(b, "request-id", request_id, 0);
	r |= jsonout_member(b, "client-request-id", client_request_id, 0);
	r |= buf_append_str(b, "}}}");
	return r;
}

void sim_error_reply(struct reply *r, unsigned status, const char *code, const char *message)
{
	struct buf b = BUF_INIT;
	int err = graph_error(&b, code, message, r->request_id, r->client_request_id);
	reply_buf(r, status, &b, err);
}

static void aad_error(struct reply *r, unsigned status, const char *error, unsigned code,
		      const char *description)
{
	char date[TIME_RFC3339_MAX], correlation[RNG_UUID_LEN + 1];
	char text[1280], uri[128];
	time_format_rfc3339(time_now_ms(), date);
	rng_uuid(correlation);
	snprintf(text, sizeof(text), "AADSTS%u: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
		 code, description, r->request_id, correlation, date);
	snprintf(uri, sizeof(uri), "https://login.microsoftonline.com/error?code=%u", code);
	r->no_store = true;
	reply_json(r, status,
		   json_pack("{s:s,s:s,s:[i],s:s,s:s,s:s,s:s}", "error", error,
			     "error_description", text, "error_codes", (int)code, "timestamp", date,
			     "trace_id", r->request_id, "correlation_id", correlation, "error_uri",
			     uri));
}

static bool token_failing(struct sim *s)
{
	if (s->cfg.token_fail_for_s &&
	    time_mono_ms() - s->start_ms < s->cfg.token_fail_for_s * 1000u)
		return true;
	uint_fast64_t left = atomic_load(&s->token_failures_left);
	while (left > 0)
		if (atomic_compare_exchange_weak(&s->token_failures_left, &left, left - 1))
			return true;
	return false;
}

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037u;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211u;
	}
	return h;
}

/*
 * Issue an access token of tenant t for appid, as its token URL named it
 * (tid). It is a JWT like Entra ID's app-only tokens: the payload has tid,
 * appid, roles (when t has any), aud, iss, iat, nbf, exp. Its signature part
 * is opaque: the simulator remembers it, with a hash of the rest, and trusts
 * nothing in the payload when the token comes back. Appends the token to
 * out. 0 or -ENOMEM.
 */
static int token_issue(struct sim *s, struct sim_tenant *t, const char *tid, const char *appid,
		       bool by_cert, struct buf *out)
{
	struct buf payload = BUF_INIT;
	char uti[17], iss[SIM_TENANT_MAX + 32];
	int r = 0;
	int64_t now = (int64_t)time(NULL);
	uint_fast64_t seq = atomic_fetch_add(&s->token_seq, 1);
	unsigned slot = (unsigned)(seq % SIM_TOKENS_MAX);
	char sig[SIM_TOKEN_LEN + 1], random[SIM_TOKEN_LEN - 4 + 1];

	rng_hex(random, SIM_TOKEN_LEN - 4);
	snprintf(sig, sizeof(sig), "%04x%s", slot, random);
	rng_hex(uti, 16);
	snprintf(iss, sizeof(iss), "https://sts.windows.net/%s/", tid);
	r |= buf_append_str(&payload, "{");
	r |= jsonout_member(&payload, "aud", "https://graph.microsoft.com", 1);
	r |= jsonout_member(&payload, "iss", iss, 0);
	r |= buf_printf(&payload, ",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld", (long long)now,
			(long long)now, (long long)(now + (int64_t)s->cfg.token_ttl_s));
	r |= jsonout_member(&payload, "app_displayname", "invited-sim", 0);
	r |= jsonout_member(&payload, "appid", appid, 0);
	r |= jsonout_member(&payload, "appidacr", by_cert ? "2" : "1", 0);
	r |= jsonout_member(&payload, "idp", iss, 0);
	r |= jsonout_member(&payload, "idtyp", "app", 0);
	if (t->n_roles > 0) {
		r |= buf_append_str(&payload, ",\"roles\":");
		r |= sim_tenant_roles_json(t, &payload);
	}
	r |= jsonout_member(&payload, "tid", tid, 0);
	r |= jsonout_member(&payload, "uti", uti, 0);
	r |= jsonout_member(&payload, "ver", "1.0", 0);
	r |= buf_append_str(&payload, "}");
	if (r < 0)
		goto out;

	static const char header[] = "{\"typ\":\"JWT\",\"alg\":\"RS256\",\"kid\":\"invited-sim\"}";
	char *enc = malloc(payload.len * 4 / 3 + sizeof(header) * 4 / 3 + 8);
	if (!enc) {
		r = -ENOMEM;
		goto out;
	}
	size_t start = out->len;
	jwt_b64url_encode((const unsigned char *)header, sizeof(header) - 1, enc);
	r |= buf_append_str(out, enc);
	r |= buf_append_str(out, ".");
	jwt_b64url_encode((const unsigned char *)payload.data, payload.len, enc);
	r |= buf_append_str(out, enc);
	free(enc);
	if (r < 0)
		goto out;
	uint64_t hash = fnv1a(out->data + start, out->len - start);
	r |= buf_append_str(out, ".");
	r |= buf_append_str(out, sig);
	if (r < 0)
		goto out;

	pthread_rwlock_wrlock(&s->tokens_lock);
	struct sim_token *k = &s->tokens[slot];
	memcpy(k->value, sig, sizeof(k->value));
	k->hash = hash;
	k->expires_ms = time_mono_ms() + s->cfg.token_ttl_s * 1000u;
	k->tenant = (unsigned)(t - s->tenants);
	snprintf(k->tid, sizeof(k->tid), "%s", tid);
	snprintf(k->appid, sizeof(k->appid), "%s", appid);
	pthread_rwlock_unlock(&s->tokens_lock);
	atomic_fetch_add(&s->stats.tokens_issued, 1);
	atomic_fetch_add(&t->stats.tokens_issued, 1);
	if (s->token_fd >= 0) {
		struct buf line = BUF_INIT;
		if (buf_append(&line, out->data + start, out->len - start) == 0 &&
		    buf_append_str(&line, "\n") == 0 &&
		    write(s->token_fd, line.data, line.len) != (ssize_t)line.len)
			log_error("Failed to write the token file '%s'", s->cfg.token_file);
		buf_finish(&line);
	}
out:
	buf_finish(&payload);
	return r;
}

/* Looks up a form field; *ret_value owned by the caller. 1 found, 0 absent,
 * negative errno. An empty value counts as absent. */
static int form_field(const char *body, size_t len, const char *key, char **ret_value)
{
	char *v = NULL;
	int r = validate_form_get(body, len, key, &v);
	if (r == 1 && v[0] == '\0') {
		free(v);
		r = 0;
	}
	if (r == 1)
		*ret_value = v;
	return r;
}

void sim_token_request(struct sim *s, const char *tenant, const char *content_type,
		       const char *body, size_t len, struct reply *r)
{
	enum { F_GRANT, F_CLIENT_ID, F_SCOPE, F_SECRET, F_ASSERTION, F_ASSERTION_TYPE, F_N };
	static const char *const names[F_N] = {"grant_type",	 "client_id",
					       "scope",		 "client_secret",
					       "client_assertion", "client_assertion_type"};
	char *f[F_N] = {NULL};
	char msg[768];
	struct sim_tenant *t = NULL;
	struct buf token = BUF_INIT;

	if (token_failing(s)) {
		aad_error(r, 503, "temporarily_unavailable", 90033,
			  "A transient error has occurred. Please try again.");
		r->retry_after = 1;
		goto out;
	}
	t = sim_tenant_find(s, tenant);
	if (!t) {
		snprintf(msg, sizeof(msg),
			 "Tenant '%.256s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
			 tenant);
		aad_error(r, 400, "invalid_request", 90002, msg);
		goto out;
	}
	if (!is_content_type(content_type, "application/x-www-form-urlencoded"))
		len = 0; /* AAD reads nothing and then misses grant_type */
	for (int i = 0; i < F_N; i++) {
		int rr = form_field(body, len, names[i], &f[i]);
		if (rr == -ENOMEM) {
			aad_error(r, 500, "server_error", 90000, "Out of memory.");
			goto out;
		}
		if (rr < 0) {
			aad_error(r, 400, "invalid_request", 900144,
				  "The request body is not valid application/x-www-form-urlencoded.");
			goto out;
		}
	}
	for (int i = F_GRANT; i <= F_SCOPE; i++) {
		if (!f[i]) {
			snprintf(msg, sizeof(msg),
				 "The request body must contain the following parameter: '%s'.",
				 names[i]);
			aad_error(r, 400, "invalid_request", 900144, msg);
			goto out;
		}
	}
	if (strcmp(f[F_GRANT], "client_credentials") != 0) {
		snprintf(msg, sizeof(msg),
			 "The provided value for the 'grant_type' is not valid. The grant type '%.64s' is not supported by this simulator.",
			 f[F_GRANT]);
		aad_error(r, 400, "unsupported_grant_type", 70003, msg);
		goto out;
	}
	if ((s->cfg.client_id && strcmp(f[F_CLIENT_ID], s->cfg.client_id) != 0) ||
	    strlen(f[F_CLIENT_ID]) > SIM_CLIENT_ID_MAX) {
		snprintf(msg, sizeof(msg),
			 "Application with identifier '%.128s' was not found in the directory '%.256s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
			 f[F_CLIENT_ID], tenant);
		aad_error(r, 400, "unauthorized_client", 700016, msg);
		goto out;
	}
	size_t sl = strlen(f[F_SCOPE]);
	if (sl < 9 || strcmp(f[F_SCOPE] + sl - 9, "/.default") != 0 || strchr(f[F_SCOPE], ' ')) {
		snprintf(msg, sizeof(msg),
			 "The provided value for scope %.256s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
			 f[F_SCOPE]);
		aad_error(r, 400, "invalid_scope", 1002012, msg);
		goto out;
	}
	if (f[F_SECRET]) {
		if (t->client_secret ? strcmp(f[F_SECRET], t->client_secret) != 0
				     : t->strict_credential && t->client_cert) {
			snprintf(msg, sizeof(msg),
				 "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%.128s'.",
				 f[F_CLIENT_ID]);
			aad_error(r, 401, "invalid_client", 7000215, msg);
			goto out;
		}
	} else if (f[F_ASSERTION]) {
		if (!f[F_ASSERTION_TYPE] || strcmp(f[F_ASSERTION_TYPE], ASSERTION_TYPE) != 0) {
			aad_error(r, 400, "invalid_request", 900144,
				  "The request body must contain the following parameter: 'client_assertion_type'.");
			goto out;
		}
		unsigned code = 0;
		const char *why = t->client_cert
					  ? jwt_check_assertion(t->client_cert, f[F_ASSERTION], tenant,
								f[F_CLIENT_ID], (int64_t)time(NULL), &code)
					  : NULL;
		if (!t->client_cert && t->strict_credential && t->client_secret) {
			code = 700027;
			why = "The certificate with identifier used to sign the client assertion is not registered on application.";
		}
		if (why) {
			aad_error(r, 401, "invalid_client", code, why);
			goto out;
		}
	} else {
		aad_error(r, 401, "invalid_client", 7000218,
			  "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
		goto out;
	}

	if (token_issue(s, t, tenant, f[F_CLIENT_ID], !f[F_SECRET], &token) < 0) {
		aad_error(r, 500, "server_error", 90000, "Out of memory.");
		goto out;
	}
	r->no_store = true;
	reply_json(r, 200,
		   json_pack("{s:s,s:I,s:I,s:s}", "token_type", "Bearer", "expires_in",
			     (json_int_t)s->cfg.token_ttl_s, "ext_expires_in",
			     (json_int_t)s->cfg.token_ttl_s, "access_token", token.data));
out:
	/* refused after the tenant was known: its counter (a wrong secret...) */
	if (t && r->status != 200 && r->status != 503)
		atomic_fetch_add(&t->stats.tokens_refused, 1);
	buf_finish(&token);
	for (int i = 0; i < F_N; i++)
		free(f[i]);
}

#define TOKEN_TEXT_MAX 16384u

/*
 * 0 when authorization carries a valid unexpired token, *c its tenant; else
 * fills r (401). url_tenant (NULL: none) is the tenant the URL names: a
 * token of another tenant is refused there, as Graph refuses a token of
 * another directory.
 */
static int check_auth(struct sim *s, const char *url_tenant, const char *authorization,
		      struct reply *r, struct sim_caller *c)
{
	const char *why = NULL;
	const char *t = authorization;
	if (!t || strncasecmp(t, "Bearer ", 7) != 0) {
		why = "Access token is empty.";
		goto fail;
	}
	t += 7;
	while (*t == ' ')
		t++;
	if (*t == '\0') {
		why = "Access token is empty.";
		goto fail;
	}
	why = "CompactToken parsing failed with error code: 80049217";
	size_t len = strnlen(t, TOKEN_TEXT_MAX + 1);
	const char *dot = memrchr(t, '.', len);
	if (len > TOKEN_TEXT_MAX || !dot || !memchr(t, '.', (size_t)(dot - t)) ||
	    strlen(dot + 1) != SIM_TOKEN_LEN)
		goto fail;
	const char *sig = dot + 1;
	char hex[5];
	memcpy(hex, sig, 4);
	hex[4] = '\0';
	char *end;
	unsigned long slot = strtoul(hex, &end, 16);
	if (*end != '\0' || slot >= SIM_TOKENS_MAX)
		goto fail;
	uint64_t hash = fnv1a(t, (size_t)(dot - t));
	pthread_rwlock_rdlock(&s->tokens_lock);
	struct sim_token *k = &s->tokens[slot];
	bool known = memcmp(k->value, sig, SIM_TOKEN_LEN) == 0 && k->hash == hash;
	bool live = k->expires_ms > time_mono_ms();
	if (known) {
		c->tenant = &s->tenants[k->tenant];
		memcpy(c->tid, k->tid, sizeof(c->tid));
		memcpy(c->appid, k->appid, sizeof(c->appid));
	}
	pthread_rwlock_unlock(&s->tokens_lock);
	if (!known)
		goto fail;
	if (!live) {
		why = "Lifetime validation failed, the token is expired.";
		goto fail;
	}
	if (url_tenant && strcasecmp(url_tenant, c->tid) != 0) {
		atomic_fetch_add(&c->tenant->stats.wrong_tenant, 1);
		why = "Access token validation failure. The token was issued for another tenant.";
		goto fail;
	}
	atomic_fetch_add(&c->tenant->stats.requests, 1);
	return 0;
fail:
	sim_error_reply(r, 401, "InvalidAuthenticationToken", why);
	return -EACCES;
}

int sim_check_auth(struct sim *s, const char *url_tenant, const char *authorization,
		   struct reply *r, struct sim_caller *c)
{
	return check_auth(s, url_tenant, authorization, r, c);
}

/* x-ms-throttle-scope of a 429 for c (GRAPH.md §4); "" when its tenant
 * names none. */
static void throttle_scope(const struct sim_caller *c, char out[SIM_THROTTLE_SCOPE_MAX])
{
	out[0] = '\0';
	switch (c->tenant->throttle_scope) {
	case SIM_SCOPE_NONE:
		break;
	case SIM_SCOPE_TENANT_APPLICATION:
		snprintf(out, SIM_THROTTLE_SCOPE_MAX, "Tenant_Application/Write/%s/%s", c->appid,
			 c->tid);
		break;
	case SIM_SCOPE_TENANT:
		snprintf(out, SIM_THROTTLE_SCOPE_MAX, "Tenant/Write//%s", c->tid);
		break;
	case SIM_SCOPE_APPLICATION:
		snprintf(out, SIM_THROTTLE_SCOPE_MAX, "Application/Write/%s", c->appid);
		break;
	}
}

/* ---- invitations ---- */

/* 0 when a request may go through; else whole seconds until it may (>= 1). */
/* Tenant t's limit window. */
static unsigned bucket_take(struct sim_tenant *t)
{
	if (t->rate <= 0)
		return 0;
	double per_us = t->rate / (t->period_s * 1e6);
	unsigned wait = 0;
	pthread_mutex_lock(&t->bucket_lock);
	uint64_t now = mono_us();
	t->bucket_level += (double)(now - t->bucket_us) * per_us;
	if (t->bucket_level > t->rate)
		t->bucket_level = t->rate;
	t->bucket_us = now;
	if (t->bucket_level >= 1.0) {
		t->bucket_level -= 1.0;
	} else {
		double secs = ceil((1.0 - t->bucket_level) / per_us / 1e6);
		wait = secs < 1.0 ? 1u : secs > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : (unsigned)secs;
	}
	pthread_mutex_unlock(&t->bucket_lock);
	return wait;
}

/* block_after counts while no /sim/unblock lifted it */
static bool block_after_applies(struct sim_tenant *t)
{
	return t->block_after_set && !atomic_load(&t->block_lifted);
}

static bool blocked(struct sim_tenant *t)
{
	return atomic_load(&t->blocked_now) ||
	       (block_after_applies(t) &&
		atomic_load(&t->stats.invitations_accepted) >= t->block_after);
}

static const char blocked_message[] =
	"Invitations are blocked for this directory due to suspicious activity. Please contact Microsoft support.";

struct invitation {
	const char *address;
	const char *display_name;
	const char *redirect;
	bool send;
	const char *message;
	const char *language;
	const char *cc;
	const char *cc_name;
};

static const char *const known_properties[] = {
	"invitedUserEmailAddress", "inviteRedirectUrl", "invitedUserDisplayName",
	"sendInvitationMessage",   "invitedUserMessageInfo", "invitedUserType",
	"resetRedemption",	   "invitedUser",	     "@odata.type",
};

/* Optional string member; NULL when absent or null. false for another type. */
static bool opt_string(json_t *obj, const char *key, const char **ret)
{
	json_t *v = json_object_get(obj, key);
	*ret = NULL;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_string(v))
		return false;
	*ret = json_string_value(v);
	return true;
}

/* 0, or fills msg and returns -EINVAL. */
static int parse_invitation(json_t *body, struct invitation *inv, char *msg, size_t msglen)
{
	const char *key;
	json_t *value;
	const char *why;

	memset(inv, 0, sizeof(*inv));
	if (!json_is_object(body)) {
		snprintf(msg, msglen, "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.");
		return -EINVAL;
	}
	json_object_foreach(body, key, value) {
		bool known = false;
		for (size_t i = 0; i < sizeof(known_properties) / sizeof(known_properties[0]); i++)
			known = known || strcmp(key, known_properties[i]) == 0;
		if (!known) {
			snprintf(msg, msglen,
				 "The property '%.128s' does not exist on type 'microsoft.graph.invitation'. Make sure to only use property names that are defined by the type.",
				 key);
			return -EINVAL;
		}
	}
#define WANT_STRING(obj, name, dst)                                                               \
	do {                                                                                      \
		if (!opt_string(obj, name, dst)) {                                                \
			snprintf(msg, msglen,                                                     \
				 "Cannot convert the value of property '%s' to the expected type 'Edm.String'.", \
				 name);                                                           \
			return -EINVAL;                                                           \
		}                                                                                 \
	} while (0)
	WANT_STRING(body, "invitedUserEmailAddress", &inv->address);
	WANT_STRING(body, "inviteRedirectUrl", &inv->redirect);
	WANT_STRING(body, "invitedUserDisplayName", &inv->display_name);
	const char *user_type;
	WANT_STRING(body, "invitedUserType", &user_type);

	if (!inv->address) {
		snprintf(msg, msglen, "Invalid input: the 'invitedUserEmailAddress' property is required.");
		return -EINVAL;
	}
	why = validate_email(inv->address);
	if (why) {
		snprintf(msg, msglen, "The invited user email address is invalid: %s.", why);
		return -EINVAL;
	}
	if (!inv->redirect) {
		snprintf(msg, msglen, "Invalid input: the 'inviteRedirectUrl' property is required.");
		return -EINVAL;
	}
	why = validate_redirect_url(inv->redirect);
	if (why) {
		snprintf(msg, msglen, "The invite redirect URL is invalid: %s.", why);
		return -EINVAL;
	}
	if (inv->display_name && strlen(inv->display_name) > 256) {
		snprintf(msg, msglen, "The invited user display name is longer than 256 characters.");
		return -EINVAL;
	}
	if (user_type && strcasecmp(user_type, "Guest") != 0 && strcasecmp(user_type, "Member") != 0) {
		snprintf(msg, msglen, "The invited user type must be 'Guest' or 'Member'.");
		return -EINVAL;
	}
	json_t *send = json_object_get(body, "sendInvitationMessage");
	if (send && !json_is_null(send)) {
		if (!json_is_boolean(send)) {
			snprintf(msg, msglen, "Cannot convert the value of property 'sendInvitationMessage' to the expected type 'Edm.Boolean'.");
			return -EINVAL;
		}
		inv->send = json_is_true(send);
	}
	json_t *reset = json_object_get(body, "resetRedemption");
	if (reset && !json_is_null(reset) && !json_is_boolean(reset)) {
		snprintf(msg, msglen, "Cannot convert the value of property 'resetRedemption' to the expected type 'Edm.Boolean'.");
		return -EINVAL;
	}

	json_t *info = json_object_get(body, "invitedUserMessageInfo");
	if (!info || json_is_null(info))
		return 0;
	if (!json_is_object(info)) {
		snprintf(msg, msglen, "Cannot convert the value of property 'invitedUserMessageInfo' to the expected type 'microsoft.graph.invitedUserMessageInfo'.");
		return -EINVAL;
	}
	json_object_foreach(info, key, value) {
		if (strcmp(key, "customizedMessageBody") != 0 && strcmp(key, "messageLanguage") != 0 &&
		    strcmp(key, "ccRecipients") != 0 && strcmp(key, "@odata.type") != 0) {
			snprintf(msg, msglen,
				 "The property '%.128s' does not exist on type 'microsoft.graph.invitedUserMessageInfo'. Make sure to only use property names that are defined by the type.",
				 key);
			return -EINVAL;
		}
	}
	WANT_STRING(info, "customizedMessageBody", &inv->message);
	WANT_STRING(info, "messageLanguage", &inv->language);
	if (inv->language) {
		size_t n = strlen(inv->language);
		bool ok = n >= 2 && n <= 35;
		for (size_t i = 0; ok && i < n; i++) {
			char c = inv->language[i];
			ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '-';
		}
		if (!ok) {
			snprintf(msg, msglen, "The message language is not a valid language tag such as 'en-US'.");
			return -EINVAL;
		}
	}
	json_t *cc = json_object_get(info, "ccRecipients");
	if (!cc || json_is_null(cc))
		return 0;
	if (!json_is_array(cc)) {
		snprintf(msg, msglen, "Cannot convert the value of property 'ccRecipients' to a collection of 'microsoft.graph.recipient'.");
		return -EINVAL;
	}
	if (json_array_size(cc) > 1) {
		snprintf(msg, msglen, "Only one cc recipient is supported in invitedUserMessageInfo.ccRecipients.");
		return -EINVAL;
	}
	if (json_array_size(cc) == 1) {
		json_t *ea = json_object_get(json_array_get(cc, 0), "emailAddress");
		if (!json_is_object(ea)) {
			snprintf(msg, msglen, "A cc recipient must have an 'emailAddress' object.");
			return -EINVAL;
		}
		WANT_STRING(ea, "address", &inv->cc);
		WANT_STRING(ea, "name", &inv->cc_name);
		if (!inv->cc) {
			snprintf(msg, msglen, "A cc recipient must have an 'emailAddress.address'.");
			return -EINVAL;
		}
		why = validate_email(inv->cc);
		if (why) {
			snprintf(msg, msglen, "The cc recipient email address is invalid: %s.", why);
			return -EINVAL;
		}
	}
#undef WANT_STRING
	return 0;
}

static char *lowercase_dup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		return NULL;
	for (char *p = d; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

static bool on_list(char *const *list, size_t n, const char *lower)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], lower) == 0)
			return true;
	return false;
}

static bool rejected(struct sim_tenant *t, const char *lower)
{
	return on_list(t->reject, t->n_reject, lower);
}

/* --garble: what a broken front end might say, raw bytes that are not
 * UTF-8 inside the JSON strings (the client must cope). */
#define GARBLED_PREFIX "\xff\xfe\xc3("
static int garbled_error(struct buf *b, const char *request_id)
{
	char date[TIME_RFC3339_MAX];
	graph_date(date);
	return buf_printf(b,
			  "{\"error\":{\"code\":\"BadRequest\",\"message\":\"Adresse refus\xe9""e "
			  GARBLED_PREFIX " \xc0\xaf (garbled by the simulator)\","
			  "\"innerError\":{\"date\":\"%s\",\"request-id\":\"%s\"}}}",
			  date, request_id);
}

static int record_write(struct sim *s, const struct invitation *inv, const char *user_id,
			const char *via, const char *client_request_id, const char *tenant)
{
	struct buf b = BUF_INIT;
	int r = 0;

	if (s->record_fd < 0)
		return 0;
	r |= buf_printf(&b, "{\"t_ms\":%llu", (unsigned long long)time_now_ms());
	r |= jsonout_member(&b, "address", inv->address, 0);
	r |= jsonout_member(&b, "display_name", inv->display_name, 0);
	r |= buf_append_str(&b, inv->send ? ",\"send\":true" : ",\"send\":false");
	r |= jsonout_member(&b, "redirect", inv->redirect, 0);
	r |= jsonout_member(&b, "message", inv->message, 0);
	r |= jsonout_member(&b, "language", inv->language, 0);
	r |= jsonout_member(&b, "cc", inv->cc, 0);
	r |= jsonout_member(&b, "user_id", user_id, 0);
	r |= jsonout_member(&b, "via", via, 0);
	r |= jsonout_member(&b, "client_request_id", client_request_id, 0);
	r |= jsonout_member(&b, "tenant", tenant, 0);
	r |= buf_append_str(&b, "}\n");
	if (r < 0)
		goto out;
	/* One write() on an O_APPEND file: the line lands whole, after every
	 * other line, and before the response is sent; no lock, no buffer. */
	ssize_t w;
	do
		w = write(s->record_fd, b.data, b.len);
	while (w < 0 && errno == EINTR);
	r = w == (ssize_t)b.len ? 0 : w < 0 ? -errno : -EIO;
	if (r < 0)
		log_error("Failed to write record file '%s': %s", s->cfg.record_path, strerror(-r));
out:
	buf_finish(&b);
	return r;
}

/* Appends the 201 body. 0 or -ENOMEM. */
static int invitation_created(struct buf *b, const struct invitation *inv, const char *user_id)
{
	char id[RNG_UUID_LEN + 1], ticket[33];
	int r = 0;

	rng_uuid(id);
	rng_hex(ticket, 32);
	r |= buf_append_str(b, "{\"@odata.context\":\"" GRAPH_CONTEXT "\"");
	r |= jsonout_member(b, "id", id, 0);
	r |= buf_append_str(b, ",\"inviteRedeemUrl\":\"https://login.microsoftonline.com/redeem?rd="
			       "https%3a%2f%2finvitations.microsoft.com%2fredeem%2f%3fticket%3d");
	r |= buf_append_str(b, ticket);
	r |= buf_append_str(b, "%26ver%3d2.0\"");
	r |= jsonout_member(b, "invitedUserDisplayName", inv->display_name, 0);
	r |= jsonout_member(b, "invitedUserType", "Guest", 0);
	r |= jsonout_member(b, "invitedUserEmailAddress", inv->address, 0);
	r |= buf_append_str(b, inv->send ? ",\"sendInvitationMessage\":true"
					 : ",\"sendInvitationMessage\":false");
	r |= buf_append_str(b, ",\"resetRedemption\":false");
	r |= jsonout_member(b, "inviteRedirectUrl", inv->redirect, 0);
	r |= jsonout_member(b, "status", "PendingAcceptance", 0);
	r |= buf_append_str(b, ",\"invitedUserMessageInfo\":{");
	r |= jsonout_member(b, "messageLanguage", inv->language, 1);
	r |= jsonout_member(b, "customizedMessageBody", inv->message, 0);
	r |= buf_append_str(b, ",\"ccRecipients\":[");
	if (inv->cc) {
		r |= buf_append_str(b, "{\"emailAddress\":{");
		r |= jsonout_member(b, "name", inv->cc_name, 1);
		r |= jsonout_member(b, "address", inv->cc, 0);
		r |= buf_append_str(b, "}}");
	}
	r |= buf_append_str(b, "]},\"invitedUser\":{");
	r |= jsonout_member(b, "id", user_id, 1);
	r |= buf_append_str(b, "}}");
	return r;
}

static void fault_5xx(unsigned *status, const char **code, const char **message,
		      unsigned *retry_after)
{
	uint64_t pick = rng_below(10);
	*retry_after = 0;
	if (pick < 4) {
		*status = 500;
		*code = "UnknownError";
		*message = "Unable to find target address";
	} else if (pick < 5) {
		*status = 502;
		*code = "BadGateway";
		*message = "The service is temporarily unavailable (simulated bad gateway).";
	} else if (pick < 8) {
		*status = 503;
		*code = "ServiceNotAvailable";
		*message = "The service is temporarily unavailable. Please retry later.";
		if (rng_below(2))
			*retry_after = 1;
	} else {
		*status = 504;
		*code = "GatewayTimeout";
		*message = "The request timed out (simulated gateway timeout).";
	}
}

struct item {
	json_t *body;         /* borrowed; NULL when unreadable */
	unsigned err_status;  /* non-zero: the payload could not be read */
	const char *err_code;
	const char *err_message;
	const char *via;
	/* results */
	unsigned status;
	unsigned retry_after;
	struct buf out; /* owned response body (JSON text) */
	int out_err;    /* an append to out failed */
	char request_id[RNG_UUID_LEN + 1];
	const char *client_request_id;
	const char *client_sent_id; /* the client's client-request-id, NULL: none */
	const char *retry_after_text; /* borrowed: a Retry-After value to send instead */
	bool garbled; /* --garble: request_id holds invalid UTF-8 */
	char throttle_scope[SIM_THROTTLE_SCOPE_MAX]; /* of a 429; "": none */
	const char *throttle_info; /* static; NULL: WriteLimitExceeded */
};

static void item_error(struct item *it, unsigned status, const char *code, const char *message)
{
	it->status = status;
	buf_clear(&it->out);
	it->out_err = graph_error(&it->out, code, message, it->request_id, it->client_request_id);
}

/* One invitation attempt of caller c, single or inside a batch. */
static void item_process(struct sim *s, const struct sim_caller *c, struct item *it)
{
	struct sim_tenant *t = c->tenant;
	unsigned f_status = 0, f_retry = 0;
	const char *f_code = NULL, *f_message = NULL;
	char msg[512];
	struct invitation inv;
	char *lower = NULL;

	if (t->fail_5xx > 0 && rng_percent() < t->fail_5xx) {
		fault_5xx(&f_status, &f_code, &f_message, &f_retry);
		if (!(t->fail_after_accept > 0 && rng_percent() < t->fail_after_accept)) {
			item_error(it, f_status, f_code, f_message);
			it->retry_after = f_retry;
			goto out;
		}
	}
	if (t->fail_429 > 0 && rng_percent() < t->fail_429) {
		item_error(it, 429, "TooManyRequests",
			   "Too many requests. Please retry after the time in the Retry-After header.");
		it->retry_after = 1;
		it->retry_after_text = s->cfg.retry_after_text;
		throttle_scope(c, it->throttle_scope);
		goto out;
	}
	if (blocked(t)) {
		item_error(it, 403, "Forbidden",
				   s->cfg.block_message ? s->cfg.block_message : blocked_message);
		goto out;
	}
	unsigned wait = bucket_take(t);
	if (wait) {
		item_error(it, 429, "TooManyRequests",
			   "Too many requests. Please retry after the time in the Retry-After header.");
		it->retry_after = wait;
		throttle_scope(c, it->throttle_scope);
		goto out;
	}
	if (it->err_status) {
		item_error(it, it->err_status, it->err_code, it->err_message);
		goto out;
	}
	if (parse_invitation(it->body, &inv, msg, sizeof(msg)) < 0) {
		item_error(it, 400, "BadRequest", msg);
		goto out;
	}
	lower = lowercase_dup(inv.address);
	if (!lower) {
		item_error(it, 500, "UnknownError", "Out of memory.");
		goto out;
	}
	if (on_list(s->cfg.garble, s->cfg.n_garble, lower)) {
		/* the request-id too: invalid UTF-8 of the same length */
		memcpy(it->request_id, GARBLED_PREFIX, sizeof(GARBLED_PREFIX) - 1);
		it->garbled = true;
		it->status = 400;
		buf_clear(&it->out);
		it->out_err = garbled_error(&it->out, it->request_id);
		goto out;
	}
	if (rejected(t, lower)) {
		item_error(it, 400, s->cfg.reject_code ? s->cfg.reject_code : "BadRequest",
			   s->cfg.reject_message ? s->cfg.reject_message :
			   "The invitation could not be sent to this address: it is blocked by the tenant's cross-tenant access or collaboration settings.");
		goto out;
	}
	if (block_after_applies(t) &&
	    atomic_fetch_add(&t->accept_reserved, 1) >= t->block_after) {
		item_error(it, 403, "Forbidden",
				   s->cfg.block_message ? s->cfg.block_message : blocked_message);
		goto out;
	}
	char user_id[RNG_UUID_LEN + 1];
	rng_uuid_from_name(lower, user_id);
	if (record_write(s, &inv, user_id, it->via, it->client_sent_id, c->tid) < 0) {
		item_error(it, 500, "UnknownError", "The simulator failed to write its record.");
		goto out;
	}
	atomic_fetch_add(&s->stats.invitations_accepted, 1);
	atomic_fetch_add(&t->stats.invitations_accepted, 1);
	sim_dir_note_invited(s, t, inv.address, user_id); /* the guest exists now */
	if (f_status) {
		/* the invitation exists, but the client hears of a failure */
		item_error(it, f_status, f_code, f_message);
		it->retry_after = f_retry;
		goto out;
	}
	it->status = 201;
	it->out_err = invitation_created(&it->out, &inv, user_id);
out:
	count_invitation(s, t, it->status);
	free(lower);
}

/* Draw the connection-level faults. Returns true when the request must not
 * be processed at all; *after is set when the fault strikes after
 * processing. */
static bool envelope_fault(struct sim_tenant *t, struct reply *r, bool *after)
{
	*after = false;
	if (t->fail_reset > 0 && rng_percent() < t->fail_reset)
		r->action = REPLY_RESET;
	else if (t->fail_hang > 0 && rng_percent() < t->fail_hang)
		r->action = REPLY_HANG;
	else
		return false;
	if (t->fail_after_accept > 0 && rng_percent() < t->fail_after_accept) {
		*after = true;
		return false;
	}
	return true;
}

static void read_json(const char *content_type, const char *body, size_t len, struct item *it,
		      json_t **ret)
{
	json_error_t jerr;
	*ret = NULL;
	if (!is_content_type(content_type, "application/json")) {
		it->err_status = 415;
		it->err_code = "UnsupportedMediaType";
		it->err_message = "The Content-Type header must be application/json.";
		return;
	}
	*ret = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!*ret) {
		it->err_status = 400;
		it->err_code = "BadRequest";
		it->err_message = "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.";
	}
}

void sim_invite_request(struct sim *s, const char *url_tenant, const char *authorization,
			const char *content_type, const char *body, size_t len, struct reply *r)
{
	struct sim_caller c;
	struct item it = {.via = "single", .client_request_id = r->client_request_id};
	if (r->client_request_id != r->request_id)
		it.client_sent_id = r->client_request_id;
	json_t *j = NULL;
	bool after;

	r->delay = true;
	if (check_auth(s, url_tenant, authorization, r, &c) < 0) {
		count_invitation(s, NULL, 401);
		return;
	}
	if (envelope_fault(c.tenant, r, &after))
		return;
	memcpy(it.request_id, r->request_id, sizeof(it.request_id));
	read_json(content_type, body, len, &it, &j);
	it.body = j;
	item_process(s, &c, &it);
	memcpy(r->throttle_scope, it.throttle_scope, sizeof(r->throttle_scope));
	r->retry_after = it.retry_after;
	r->retry_after_text = it.retry_after_text;
	if (it.garbled) /* the request-id header, as the body says */
		memcpy(r->request_id, it.request_id, sizeof(r->request_id));
	reply_buf(r, it.status, &it.out, it.out_err);
	json_decref(j);
}

/* Appends one element of "responses" and empties it->out. */
static int batch_item_reply(struct buf *b, struct item *it, const char *id)
{
	int r = it->out_err;
	r |= buf_append_str(b, "{");
	r |= jsonout_member(b, "id", id, 1);
	r |= buf_printf(b, ",\"status\":%u,\"headers\":{\"Content-Type\":\"application/json\"",
			it->status);
	if (it->retry_after_text)
		r |= jsonout_member(b, "Retry-After", it->retry_after_text, 0);
	else if (it->retry_after)
		r |= buf_printf(b, ",\"Retry-After\":\"%u\"", it->retry_after);
	if (it->throttle_scope[0]) {
		r |= jsonout_member(b, "x-ms-throttle-scope", it->throttle_scope, 0);
		r |= jsonout_member(b, "x-ms-throttle-information",
				    it->throttle_info ? it->throttle_info : "WriteLimitExceeded", 0);
	}
	if (it->garbled) /* raw, as a broken front end would */
		r |= buf_printf(b, ",\"request-id\":\"%s\"", it->request_id);
	r |= buf_append_str(b, "},\"body\":");
	r |= it->out.data ? buf_append(b, it->out.data, it->out.len) : buf_append_str(b, "null");
	r |= buf_append_str(b, "}");
	buf_finish(&it->out);
	return r;
}

static bool is_invitations_url(const char *url)
{
	return strcmp(url, "/invitations") == 0 || strcmp(url, "invitations") == 0;
}

/* 0 when the envelope is well formed; else fills msg. */
static int check_batch(json_t *doc, char *msg, size_t msglen, json_t **ret_requests)
{
	json_t *reqs = json_object_get(doc, "requests");
	if (!json_is_object(doc) || !json_is_array(reqs)) {
		snprintf(msg, msglen, "Invalid batch payload format: a 'requests' array is required.");
		return -EINVAL;
	}
	size_t n = json_array_size(reqs);
	if (n == 0 || n > SIM_BATCH_MAX) {
		snprintf(msg, msglen, "Invalid batch payload format: a batch holds 1 to 20 requests, not %zu.", n);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *q = json_array_get(reqs, i);
		json_t *id = json_object_get(q, "id");
		json_t *method = json_object_get(q, "method");
		json_t *url = json_object_get(q, "url");
		if (!json_is_object(q) || !json_is_string(id) || json_string_length(id) == 0 ||
		    !json_is_string(method) || !json_is_string(url)) {
			snprintf(msg, msglen, "Invalid batch payload format: request %zu needs string 'id', 'method' and 'url'.", i + 1);
			return -EINVAL;
		}
		for (size_t k = 0; k < i; k++) {
			if (strcmp(json_string_value(json_object_get(json_array_get(reqs, k), "id")),
				   json_string_value(id)) == 0) {
				snprintf(msg, msglen, "Request id '%.64s' is duplicated in the batch.",
					 json_string_value(id));
				return -EINVAL;
			}
		}
		json_t *headers = json_object_get(q, "headers");
		if (headers && !json_is_object(headers)) {
			snprintf(msg, msglen, "Invalid batch payload format: 'headers' of request '%.64s' is not an object.",
				 json_string_value(id));
			return -EINVAL;
		}
		bool has_ct = false;
		const char *hk;
		json_t *hv;
		json_object_foreach(headers, hk, hv) {
			if (strcasecmp(hk, "Content-Type") == 0 && json_is_string(hv))
				has_ct = true;
		}
		json_t *body = json_object_get(q, "body");
		bool write = strcasecmp(json_string_value(method), "POST") == 0 ||
			     strcasecmp(json_string_value(method), "PATCH") == 0 ||
			     strcasecmp(json_string_value(method), "PUT") == 0;
		if (write && (!body || !has_ct)) {
			snprintf(msg, msglen, "Write request id : %.64s does not contain Content-Type header or body.",
				 json_string_value(id));
			return -EINVAL;
		}
	}
	*ret_requests = reqs;
	return 0;
}

static const char *header_value(json_t *headers, const char *name)
{
	const char *k;
	json_t *v;
	json_object_foreach(headers, k, v) {
		if (strcasecmp(k, name) == 0)
			return json_string_value(v);
	}
	return NULL;
}

/* A $batch item for directory.c (users, groups, sendMail): answered into
 * it, true; false for any other URL. */
static bool batch_directory_item(struct sim *s, const struct sim_caller *c, const char *method,
				 const char *url, struct item *it)
{
	const char *p = url[0] == '/' ? url + 1 : url; /* "users/..." too */
	size_t n = strcspn(p, "?");
	bool ours = (n == 5 && strncmp(p, "users", 5) == 0) || strncmp(p, "users/", 6) == 0 ||
		    strncmp(p, "groups/", 7) == 0;
	if (!ours)
		return false;
	struct reply rr = {.client_request_id = it->client_request_id};
	memcpy(rr.request_id, it->request_id, sizeof(rr.request_id));
	sim_dir_batch_item(s, c, method, url, it->body, &rr);
	it->status = rr.status;
	it->retry_after = rr.retry_after;
	it->throttle_info = rr.throttle_info;
	memcpy(it->throttle_scope, rr.throttle_scope, sizeof(it->throttle_scope));
	buf_clear(&it->out);
	if (rr.body)
		it->out_err = buf_append_str(&it->out, rr.body);
	reply_finish(&rr);
	return true;
}

void sim_batch_request(struct sim *s, const char *url_tenant, const char *authorization,
		       const char *content_type, const char *body, size_t len, struct reply *r)
{
	struct sim_caller c;
	json_t *doc = NULL, *reqs = NULL;
	struct buf out = BUF_INIT;
	int err = 0;
	struct item probe = {0};
	char msg[256];
	bool after;

	r->delay = true;
	atomic_fetch_add(&s->stats.batches, 1);
	if (check_auth(s, url_tenant, authorization, r, &c) < 0)
		return;
	if (envelope_fault(c.tenant, r, &after))
		return;
	read_json(content_type, body, len, &probe, &doc);
	if (probe.err_status) {
		sim_error_reply(r, probe.err_status, probe.err_code, probe.err_message);
		goto out;
	}
	if (check_batch(doc, msg, sizeof(msg), &reqs) < 0) {
		sim_error_reply(r, 400, "BadRequest", msg);
		goto out;
	}
	size_t n = json_array_size(reqs);
	size_t order[SIM_BATCH_MAX];
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	/* answers come back in any order (GRAPH.md §5): shuffle them */
	for (size_t i = n; i > 1; i--) {
		size_t k = (size_t)rng_below(i);
		size_t t = order[i - 1];
		order[i - 1] = order[k];
		order[k] = t;
	}
	err |= buf_append_str(&out, "{\"responses\":[");
	for (size_t i = 0; i < n; i++) {
		json_t *q = json_array_get(reqs, order[i]);
		const char *id = json_string_value(json_object_get(q, "id"));
		const char *method = json_string_value(json_object_get(q, "method"));
		const char *url = json_string_value(json_object_get(q, "url"));
		struct item it = {.via = "batch", .body = json_object_get(q, "body")};
		rng_uuid(it.request_id);
		it.client_request_id = it.request_id;
		/* the item's own client-request-id header, echoed and recorded */
		const char *crid = header_value(json_object_get(q, "headers"), "client-request-id");
		if (crid && crid[0] && strlen(crid) <= SIM_CLIENT_REQUEST_ID_MAX)
			it.client_request_id = it.client_sent_id = crid;
		atomic_fetch_add(&s->stats.batch_items, 1);
		if (batch_directory_item(s, &c, method, url, &it)) {
			/* users, groups, sendMail: directory.c answered */
		} else if (!is_invitations_url(url)) {
			snprintf(msg, sizeof(msg), "Resource not found for the segment '%.64s'.",
				 url[0] == '/' ? url + 1 : url);
			item_error(&it, 404, "NotFound", msg);
		} else if (strcasecmp(method, "POST") != 0) {
			item_error(&it, 405, "BadRequest",
				   "The HTTP method is not allowed for /invitations.");
		} else if (s->cfg.no_batch_invitations) {
			item_error(&it, 400, "BadRequest",
				   "Invalid batch request: /invitations is not supported in a JSON batch.");
			count_invitation(s, c.tenant, 400);
		} else {
			if (!is_content_type(header_value(json_object_get(q, "headers"),
							  "Content-Type"),
					     "application/json")) {
				it.err_status = 415;
				it.err_code = "UnsupportedMediaType";
				it.err_message = "The Content-Type header must be application/json.";
			}
			item_process(s, &c, &it);
		}
		if (i > 0)
			err |= buf_append_str(&out, ",");
		err |= batch_item_reply(&out, &it, id);
	}
	err |= buf_append_str(&out, "]}");
	reply_buf(r, 200, &out, err);
out:
	buf_finish(&out);
	json_decref(doc);
}

/* ---- /sim/stats ---- */

static json_t *status_object(atomic_uint_fast64_t *counts)
{
	json_t *o = json_object();
	for (unsigned i = 0; o && i < SIM_STATUS_MAX; i++) {
		uint_fast64_t v = atomic_load_explicit(&counts[i], memory_order_relaxed);
		if (!v)
			continue;
		char key[8];
		snprintf(key, sizeof(key), "%u", i);
		json_object_set_new(o, key, json_integer((json_int_t)v));
	}
	return o;
}

static json_t *tenant_stats(struct sim_tenant *t)
{
	struct sim_tenant_stats *st = &t->stats;
#define V(x) (json_int_t) atomic_load(&st->x)
	json_t *dir = json_pack("{s:o*,s:o*,s:o*,s:o*}", "lookups",
				status_object(st->dir_status[SIM_DIR_LOOKUP]), "reads",
				status_object(st->dir_status[SIM_DIR_READ]), "additions",
				status_object(st->dir_status[SIM_DIR_ADDITION]), "mail",
				status_object(st->dir_status[SIM_DIR_MAIL]));
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:o*,s:b,s:o*}", "tokens_issued", V(tokens_issued),
			 "tokens_refused", V(tokens_refused), "requests", V(requests),
			 "wrong_tenant", V(wrong_tenant), "invitations_accepted",
			 V(invitations_accepted), "policy_reads", V(policy_reads),
			 "invitation_status", status_object(st->invitation_status), "blocked",
			 (int)blocked(t), "directory", dir);
#undef V
}

/* {"NAME": {...}, ...}; the nameless first tenant (no --tenant) is "*". */
static json_t *tenants_object(struct sim *s)
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < s->n_tenants; i++) {
		struct sim_tenant *t = &s->tenants[i];
		json_object_set_new(o, t->name ? t->name : "*", tenant_stats(t));
	}
	return o;
}

void sim_stats_request(struct sim *s, struct reply *r)
{
	struct sim_stats *st = &s->stats;
#define V(x) (json_int_t) atomic_load(&st->x)
	reply_json(r, 200,
		   json_pack("{s:I,s:I,s:o*,s:o*,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o*}", "requests",
			     V(requests), "invitations_accepted", V(invitations_accepted),
			     "status", status_object(st->status), "invitation_status",
			     status_object(st->invitation_status), "tokens_issued",
			     V(tokens_issued), "resets", V(resets), "hangs", V(hangs),
			     "hangs_held", V(hangs_held), "batches", V(batches), "batch_items",
			     V(batch_items), "in_flight", V(in_flight), "max_in_flight",
			     V(max_in_flight), "connections", V(connections), "uptime_ms",
			     (json_int_t)(time_mono_ms() - s->start_ms), "tenants",
			     tenants_object(s)));
#undef V
}

void sim_block_request(struct sim *s, const char *tenant, bool block, struct reply *r)
{
	char msg[SIM_TENANT_MAX + 64];
	struct sim_tenant *t = sim_tenant_by_name(s, tenant);
	if (!t) {
		snprintf(msg, sizeof(msg), "The simulator has no tenant '%.256s'.", tenant);
		sim_error_reply(r, 404, "NotFound", msg);
		return;
	}
	if (block) {
		atomic_store(&t->blocked_now, true);
	} else {
		atomic_store(&t->blocked_now, false);
		atomic_store(&t->block_lifted, true);
	}
	reply_json(r, 200, json_pack("{s:s?,s:b}", "tenant", t->name, "blocked", (int)blocked(t)));
}

/* ---- /v1.0/policies/authorizationPolicy ---- */

void sim_policy_request(struct sim *s, const char *url_tenant, const char *authorization,
			struct reply *r)
{
	struct sim_caller c;
	if (check_auth(s, url_tenant, authorization, r, &c) < 0)
		return;
	struct sim_tenant *t = c.tenant;
	if (!sim_tenant_has_role(t, "Policy.Read.All") &&
	    !sim_tenant_has_role(t, "Policy.ReadWrite.Authorization")) {
		sim_error_reply(r, 403, "Authorization_RequestDenied",
				"Insufficient privileges to complete the operation.");
		return;
	}
	atomic_fetch_add(&t->stats.policy_reads, 1);
	reply_json(r, 200,
		   json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:b,s:b,s:b,s:s,s:{s:b,s:b,s:b}}",
			     "@odata.context",
			     "https://graph.microsoft.com/v1.0/$metadata#policies/authorizationPolicy/$entity",
			     "id", "authorizationPolicy", "displayName", "Authorization Policy",
			     "description",
			     "Used to manage authorization related settings across the company.",
			     "allowInvitesFrom", t->allow_invites_from,
			     "allowedToSignUpEmailBasedSubscriptions", 1, "allowedToUseSSPR", 1,
			     "allowEmailVerifiedUsersToJoinOrganization", 0, "blockMsolPowerShell", 0,
			     "guestUserRoleId", "10dae51f-b6af-4016-8d66-8c2a99b929b3",
			     "defaultUserRolePermissions", "allowedToCreateApps", 1,
			     "allowedToCreateSecurityGroups", 1, "allowedToReadOtherUsers", 1));
}

/* ---- lifecycle ---- */

int sim_init(struct sim *s)
{
	int r;

	memset(&s->stats, 0, sizeof(s->stats));
	s->record_fd = -1;
	s->token_fd = -1;
	s->start_ms = time_mono_ms();
	rng_seed(s->cfg.seed);
	atomic_store(&s->token_failures_left, s->cfg.token_fail_count);
	r = sim_tenants_init(s);
	if (r < 0)
		return r;
	r = sim_dir_init(s);
	if (r < 0)
		return r;
	s->tokens = calloc(SIM_TOKENS_MAX, sizeof(*s->tokens));
	if (!s->tokens)
		return -ENOMEM;
	r = pthread_rwlock_init(&s->tokens_lock, NULL);
	if (r) {
		free(s->tokens);
		s->tokens = NULL;
		return -r;
	}
	s->initialized = true;
	if (s->cfg.record_path) {
		s->record_fd = open(s->cfg.record_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (s->record_fd < 0) {
			r = -errno;
			log_error("Failed to open record file '%s': %s", s->cfg.record_path,
				  strerror(-r));
			return r;
		}
	}
	if (s->cfg.token_file) {
		s->token_fd = open(s->cfg.token_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (s->token_fd < 0) {
			r = -errno;
			log_error("Failed to open token file '%s': %s", s->cfg.token_file,
				  strerror(-r));
			return r;
		}
	}
	return 0;
}

void sim_finish(struct sim *s)
{
	if (s->initialized && s->token_fd >= 0) {
		close(s->token_fd);
		s->token_fd = -1;
	}
	if (s->initialized && s->record_fd >= 0) {
		if (close(s->record_fd) < 0)
			log_error("Failed to close record file '%s': %s", s->cfg.record_path,
				  strerror(errno));
		s->record_fd = -1;
	}
	if (s->initialized) {
		pthread_rwlock_destroy(&s->tokens_lock);
		s->initialized = false;
	}
	sim_dir_finish(s);
	sim_tenants_finish(s);
	for (size_t i = 0; i < s->cfg.n_roles; i++)
		free(s->cfg.roles[i]);
	free(s->cfg.roles);
	s->cfg.roles = NULL;
	s->cfg.n_roles = 0;
	free(s->tokens);
	s->tokens = NULL;
	for (size_t i = 0; i < s->cfg.n_reject; i++)
		free(s->cfg.reject[i]);
	free(s->cfg.reject);
	s->cfg.reject = NULL;
	s->cfg.n_reject = 0;
	for (size_t i = 0; i < s->cfg.n_garble; i++)
		free(s->cfg.garble[i]);
	free(s->cfg.garble);
	s->cfg.garble = NULL;
	s->cfg.n_garble = 0;
	free(s->cfg.client_secret);
	s->cfg.client_secret = NULL;
	if (s->cfg.tls_key)
		explicit_bzero(s->cfg.tls_key, strlen(s->cfg.tls_key));
	free(s->cfg.tls_key);
	s->cfg.tls_key = NULL;
	free(s->cfg.tls_cert);
	s->cfg.tls_cert = NULL;
	jwt_cert_free(s->cfg.client_cert);
	s->cfg.client_cert = NULL;
}

void sim_note_in_flight(struct sim *s, int delta)
{
	if (delta > 0)
		max_update(&s->stats.max_in_flight,
			   atomic_fetch_add(&s->stats.in_flight, 1) + 1);
	else
		atomic_fetch_sub(&s->stats.in_flight, 1);
}
