/* SPDX-License-Identifier: MIT */
#include "graph-private.h"

#include <errno.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "buf.h"
#include "http.h"
#include "store.h"
#include "timeutil.h"
#include "vis.h"

void graph_new_request_id(char out[GRAPH_CLIENT_REQUEST_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, GRND_NONBLOCK);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got < sizeof(b)) {
		/* no entropy yet (early boot): an id need only be unlikely to
		 * repeat, not secret */
		static unsigned long long x;
		x += time_now_ms() * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
		for (size_t i = got; i < sizeof(b); i++) {
			x ^= x >> 31;
			x *= 0xbf58476d1ce4e5b9ull;
			b[i] = (unsigned char)(x >> 56);
		}
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	size_t o = 0;
	for (size_t i = 0; i < sizeof(b); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
}

char *graph_utf8_dup(const char *s, size_t len)
{
	size_t i = 0, run = 0;
	struct buf b = BUF_INIT;
	int r = buf_reserve(&b, len);
	while (r == 0 && i < len) {
		size_t n = vis_utf8_next(s + i, len - i, NULL);
		if (n > 0) {
			i += n;
			continue;
		}
		r = buf_append(&b, s + run, i - run);
		r = r ? r : buf_append(&b, "\xef\xbf\xbd", 3); /* U+FFFD */
		run = ++i;
	}
	r = r ? r : buf_append(&b, s + run, len - run);
	if (r < 0) {
		buf_finish(&b);
		return NULL;
	}
	char *out = buf_steal(&b);
	return out ? out : strdup("");
}

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

/* The invitation object for a claim, appended to b (GRAPH.md §3). Built by
 * hand: it is one per invitation, on the hot path (docs/performance.md). */
static int invitation_append(struct buf *b, const struct store_claim *c)
{
	int r = buf_append_str(b, "{\"invitedUserEmailAddress\":");
	r = r ? r : buf_append_json_string(b, c->email);
	r = r ? r : buf_append_str(b, ",\"inviteRedirectUrl\":");
	r = r ? r : buf_append_json_string(b, c->redirect_url);
	/* Graph's default is false: say it either way */
	r = r ? r : buf_append_str(b, c->send_email ? ",\"sendInvitationMessage\":true"
						 : ",\"sendInvitationMessage\":false");
	if (c->display_name) {
		r = r ? r : buf_append_str(b, ",\"invitedUserDisplayName\":");
		r = r ? r : buf_append_json_string(b, c->display_name);
	}
	if (c->message || c->language || c->cc) {
		const char *sep = "";
		r = r ? r : buf_append_str(b, ",\"invitedUserMessageInfo\":{");
		if (c->message) {
			r = r ? r : buf_append_str(b, "\"customizedMessageBody\":");
			r = r ? r : buf_append_json_string(b, c->message);
			sep = ",";
		}
		if (c->language) {
			r = r ? r : buf_printf(b, "%s\"messageLanguage\":", sep);
			r = r ? r : buf_append_json_string(b, c->language);
			sep = ",";
		}
		if (c->cc) {
			r = r ? r : buf_printf(b, "%s\"ccRecipients\":[{\"emailAddress\":{\"address\":", sep);
			r = r ? r : buf_append_json_string(b, c->cc);
			r = r ? r : buf_append_str(b, "}}]");
		}
		r = r ? r : buf_append_str(b, "}");
	}
	return r ? r : buf_append_str(b, "}");
}

int graph_invitation_body(const struct store_claim *c, char **ret_body, size_t *ret_len)
{
	struct buf b = BUF_INIT;
	int r = buf_reserve(&b, 512);
	r = r ? r : invitation_append(&b, c);
	if (r < 0) {
		buf_finish(&b);
		return r;
	}
	*ret_len = b.len;
	*ret_body = buf_steal(&b);
	return 0;
}

int graph_batch_body(struct store_claim *const *claims, size_t n, char **ret_body, size_t *ret_len)
{
	struct buf b = BUF_INIT;
	/* about 300 bytes an item: one allocation, no regrowth */
	int r = buf_reserve(&b, 64 + n * 512);
	r = r ? r : buf_append_str(&b, "{\"requests\":[");
	for (size_t i = 0; i < n && r == 0; i++) {
		char id[24];
		int len = snprintf(id, sizeof(id), "%s{\"id\":\"%zu\"", i ? "," : "", i + 1);
		r = buf_append(&b, id, (size_t)len);
		r = r ? r : buf_append_str(&b, ",\"method\":\"POST\",\"url\":\"/invitations\","
					   "\"headers\":{\"Content-Type\":\"application/json\"");
		if (claims[i]->client_request_id[0]) {
			r = r ? r : buf_append_str(&b, ",\"client-request-id\":");
			r = r ? r : buf_append_json_string(&b, claims[i]->client_request_id);
		}
		r = r ? r : buf_append_str(&b, "},\"body\":");
		r = r ? r : invitation_append(&b, claims[i]);
		r = r ? r : buf_append_str(&b, "}");
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

void graph_result_clear(struct graph_result *res)
{
	free(res->error_code);
	free(res->error_message);
	free(res->request_id);
	free(res->invited_user_id);
	free(res->invite_redeem_url);
	memset(res, 0, sizeof(*res));
}

/* The anti-abuse block (GRAPH.md §3) is a 403 whose message says so; other
 * 403s (missing permission) fail the row like any other 4xx. */
static bool is_block(const char *message)
{
	return message && (strstr(message, "suspicious activity") ||
			   strstr(message, "Invitations are blocked"));
}

/* ---- reading answers ----
 * A small JSON reader for the few members an answer carries that matter:
 * it walks the text once, decodes only those strings and skips the rest,
 * allocating nothing but what it keeps. Malformed text makes it stop with
 * false; the caller then treats the body as unreadable. Nesting is capped. */

#define SCAN_MAX_DEPTH 64

static void scan_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static bool scan_char(struct scan *s, char c)
{
	scan_ws(s);
	if (s->p < s->end && *s->p == c) {
		s->p++;
		return true;
	}
	return false;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
				     : c >= 'A' && c <= 'F' ? c - 'A' + 10
							    : -1;
}

static void put_utf8(struct buf *b, unsigned cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(b, u, n);
}

static bool scan_hex4(struct scan *s, unsigned *ret)
{
	if (s->end - s->p < 4)
		return false;
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(s->p[i]);
		if (h < 0)
			return false;
		v = v << 4 | (unsigned)h;
	}
	s->p += 4;
	*ret = v;
	return true;
}

/* A string (after optional white space); decoded into out when out is not
 * NULL (out is cleared first). */
static bool scan_string(struct scan *s, struct buf *out)
{
	if (!scan_char(s, '"'))
		return false;
	if (out)
		buf_clear(out);
	for (;;) {
		const char *run = s->p;
		while (s->p < s->end && *s->p != '"' && *s->p != '\\' && (unsigned char)*s->p >= 0x20)
			s->p++;
		if (out && s->p > run)
			buf_append(out, run, (size_t)(s->p - run));
		if (s->p >= s->end || (unsigned char)*s->p < 0x20)
			return false;
		if (*s->p++ == '"')
			break;
		if (s->p >= s->end)
			return false;
		char e = *s->p++;
		const char *simple = strchr("\"\\/bfnrt", e);
		if (simple && e) {
			static const char to[] = "\"\\/\b\f\n\r\t";
			if (out)
				buf_append(out, &to[simple - "\"\\/bfnrt"], 1);
			continue;
		}
		unsigned cp;
		if (e != 'u' || !scan_hex4(s, &cp))
			return false;
		if (cp >= 0xd800 && cp < 0xdc00) { /* a surrogate pair */
			unsigned lo;
			if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u')
				return false;
			s->p += 2;
			if (!scan_hex4(s, &lo) || lo < 0xdc00 || lo > 0xdfff)
				return false;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		} else if (cp >= 0xdc00 && cp < 0xe000) {
			return false;
		}
		if (out)
			put_utf8(out, cp);
	}
	return !out || out->data || buf_append(out, "", 0) == 0;
}

static bool scan_value(struct scan *s, int depth);

/* Iterate an object's members: call with *first = true after '{' was read;
 * returns 1 with the key in key (decoded) and the scanner at the value,
 * 0 at the closing '}', -1 on malformed text. */
static int scan_member(struct scan *s, bool *first, struct buf *key)
{
	if (scan_char(s, '}'))
		return 0;
	if (!*first && !scan_char(s, ','))
		return -1;
	*first = false;
	if (!scan_string(s, key) || !scan_char(s, ':'))
		return -1;
	return 1;
}

/* Skip one value of any kind. */
static bool scan_value(struct scan *s, int depth)
{
	if (depth > SCAN_MAX_DEPTH)
		return false;
	scan_ws(s);
	if (s->p >= s->end)
		return false;
	char c = *s->p;
	if (c == '"')
		return scan_string(s, NULL);
	if (c == '{') {
		s->p++;
		bool first = true;
		int r;
		while ((r = scan_member(s, &first, NULL)) == 1)
			if (!scan_value(s, depth + 1))
				return false;
		return r == 0;
	}
	if (c == '[') {
		s->p++;
		if (scan_char(s, ']'))
			return true;
		do {
			if (!scan_value(s, depth + 1))
				return false;
		} while (scan_char(s, ','));
		return scan_char(s, ']');
	}
	/* number, true, false, null */
	const char *start = s->p;
	while (s->p < s->end && (strchr("+-.eE", *s->p) || (*s->p >= '0' && *s->p <= '9') ||
				 (*s->p >= 'a' && *s->p <= 'z')))
		s->p++;
	return s->p > start;
}

static bool key_is(const struct buf *key, const char *name)
{
	return key->data && strcmp(key->data, name) == 0;
}

void graph_answer_clear(struct answer *a)
{
	free(a->user_id);
	free(a->redeem_url);
	free(a->code);
	free(a->message);
	free(a->request_id);
	user_clear(&a->user);
	user_clear(&a->pick);
	memset(a, 0, sizeof(*a));
}

/* A string member's value, kept (owned) in *slot; other kinds are skipped. */
static bool take_string(struct scan *s, struct buf *tmp, char **slot)
{
	scan_ws(s);
	if (s->p < s->end && *s->p == '"') {
		if (!scan_string(s, tmp))
			return false;
		free(*slot);
		*slot = graph_utf8_dup(tmp->data ? tmp->data : "", tmp->len);
		return *slot != NULL;
	}
	return scan_value(s, 1);
}

/* Read an object value, handing each member to fn (which must consume the
 * value); returns false on malformed text or a non-object. */
typedef bool (*member_fn)(struct scan *s, const struct buf *key, void *userdata, int depth);

static bool scan_object(struct scan *s, int depth, member_fn fn, void *userdata)
{
	if (depth > SCAN_MAX_DEPTH || !scan_char(s, '{'))
		return false;
	struct buf key = BUF_INIT;
	bool first = true, ok = true;
	int r;
	while (ok && (r = scan_member(s, &first, &key)) == 1)
		ok = fn(s, &key, userdata, depth + 1);
	buf_finish(&key);
	return ok && r == 0;
}

struct answer_ctx {
	struct answer *a;
	bool dir;                /* a directory read: users, not an invitation */
	struct graph_user *user; /* dir: where a user object's members go */
	struct buf tmp;
};

static bool inner_member(struct scan *s, const struct buf *key, void *userdata, int depth)
{
	struct answer_ctx *x = userdata;
	if (key_is(key, "request-id"))
		return take_string(s, &x->tmp, &x->a->request_id);
	return scan_value(s, depth);
}

static bool error_member(struct scan *s, const struct buf *key, void *userdata, int depth)
{
	struct answer_ctx *x = userdata;
	if (key_is(key, "code"))
		return take_string(s, &x->tmp, &x->a->code);
	if (key_is(key, "message"))
		return take_string(s, &x->tmp, &x->a->message);
	scan_ws(s);
	if (key_is(key, "innerError") && s->p < s->end && *s->p == '{')
		return scan_object(s, depth, inner_member, x);
	return scan_value(s, depth);
}

static bool user_member(struct scan *s, const struct buf *key, void *userdata, int depth)
{
	struct answer_ctx *x = userdata;
	if (key_is(key, "id"))
		return take_string(s, &x->tmp, &x->a->user_id);
	return scan_value(s, depth);
}

static bool digits(const char **p, int n, int *ret)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*ret = v;
	return true;
}

/* An RFC 3339 date-time ("2026-12-01T10:00:00Z"; a fraction and an offset
 * too) as ms since the epoch; 0 when it is not one, or not after 1970. */
static uint64_t rfc3339_ms(const char *p)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, ms = 0, off = 0;
	if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
	    !digits(&p, 2, &d))
		return 0;
	if (*p != 'T' && *p != 't')
		return 0;
	p++;
	if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
	    !digits(&p, 2, &sec))
		return 0;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
	    mi > 59 || sec > 60)
		return 0;
	if (*p == '.') {
		const char *start = ++p;
		for (; *p >= '0' && *p <= '9'; p++)
			if (p - start < 3)
				ms = ms * 10 + (*p - '0');
		if (p == start)
			return 0;
		for (ptrdiff_t k = p - start; k < 3; k++)
			ms *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
			return 0;
		off = sign * (oh * 60 + om) * 60;
	} else {
		return 0;
	}
	if (*p)
		return 0;
	/* days from 1970-01-01 (H. Hinnant's days_from_civil) */
	int64_t yy = y - (mo <= 2);
	int64_t era = yy / 400, yoe = yy - era * 400;
	int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
	int64_t t = days * 86400 + h * 3600 + mi * 60 + sec - off;
	return t > 0 ? (uint64_t)t * 1000u + (uint64_t)ms : 0;
}

/* A user object's members (GRAPH.md §6's $select), into *x->user. */
static bool dir_user_member(struct scan *s, const struct buf *key, void *userdata, int depth)
{
	struct answer_ctx *x = userdata;
	struct graph_user *u = x->user;
	if (key_is(key, "id"))
		return take_string(s, &x->tmp, &u->id);
	if (key_is(key, "userType"))
		return take_string(s, &x->tmp, &u->user_type);
	if (key_is(key, "mail"))
		return take_string(s, &x->tmp, &u->mail);
	if (key_is(key, "externalUserState"))
		return take_string(s, &x->tmp, &u->external_state);
	if (key_is(key, "externalUserStateChangeDateTime")) {
		char *text = NULL;
		if (!take_string(s, &x->tmp, &text))
			return false;
		u->state_changed_ms = text ? rfc3339_ms(text) : 0;
		free(text);
		return true;
	}
	return scan_value(s, depth);
}

static bool is_guest(const struct graph_user *u)
{
	return u->user_type && strcasecmp(u->user_type, "Guest") == 0;
}

/* A lookup's "value": every element a user with an id (else the answer is
 * not one we can believe); the first guest, else the first user, kept. */
static bool value_list(struct scan *s, struct answer_ctx *x, int depth)
{
	if (depth > SCAN_MAX_DEPTH || !scan_char(s, '['))
		return false;
	x->a->value_seen = true;
	if (scan_char(s, ']'))
		return true;
	struct graph_user *pick = &x->a->pick;
	do {
		struct graph_user u = {0};
		x->user = &u;
		bool ok = scan_object(s, depth + 1, dir_user_member, x) && u.id;
		x->user = &x->a->user;
		if (ok && (!pick->id || (!is_guest(pick) && is_guest(&u)))) {
			user_clear(pick);
			*pick = u;
		} else {
			user_clear(&u);
		}
		if (!ok)
			return false;
	} while (scan_char(s, ','));
	return scan_char(s, ']');
}

static bool answer_member(struct scan *s, const struct buf *key, void *userdata, int depth)
{
	struct answer_ctx *x = userdata;
	if (x->dir) {
		scan_ws(s);
		if (key_is(key, "value") && s->p < s->end && *s->p == '[')
			return value_list(s, x, depth);
		if (!key_is(key, "error"))
			return dir_user_member(s, key, x, depth);
	} else if (key_is(key, "inviteRedeemUrl"))
		return take_string(s, &x->tmp, &x->a->redeem_url);
	scan_ws(s);
	bool obj = s->p < s->end && *s->p == '{';
	if (key_is(key, "invitedUser") && obj)
		return scan_object(s, depth, user_member, x);
	if (key_is(key, "error") && obj)
		return scan_object(s, depth, error_member, x);
	return scan_value(s, depth);
}

/* Read an answer body (an object, from the scanner's position): an
 * invitation's, or (dir) a directory read's. */
static bool read_answer(struct scan *s, struct answer *a, bool dir, int depth)
{
	struct answer_ctx x = {.a = a, .dir = dir, .user = &a->user};
	bool ok = scan_object(s, depth, answer_member, &x);
	buf_finish(&x.tmp);
	return ok;
}

/* read_answer for graph-dir.c; graph.c calls the static one, which the
 * compiler inlines into graph_classify and the $batch item reader (the
 * invitation path), as it did before the split. */
bool graph_answer_read(struct scan *s, struct answer *a, bool dir, int depth)
{
	return read_answer(s, a, dir, depth);
}

/* What one answer (status + body members) means for the row. */
/* What an error answer whose body is not Graph's JSON says: its first bytes
 * (a proxy's HTML page, a truncated answer), valid UTF-8, one line. */
#define UNREADABLE_EXCERPT 160

char *graph_unreadable_message(const char *body, size_t len)
{
	struct buf b = BUF_INIT;
	size_t n = len < UNREADABLE_EXCERPT ? len : UNREADABLE_EXCERPT;
	while (n > 0 && n < len && ((unsigned char)body[n] & 0xc0) == 0x80)
		n--; /* do not cut a character in two */
	int r = buf_printf(&b, "the answer is not Graph's JSON (%zu bytes)%s", len, n ? ": " : "");
	for (size_t i = 0; i < n && r == 0; i++) {
		char c = body[i];
		r = buf_append(&b, (unsigned char)c < 0x20 || c == 0x7f ? " " : &c, 1);
	}
	r = r ? r : buf_append_str(&b, n < len ? "..." : "");
	char *text = r == 0 ? graph_utf8_dup(b.data, b.len) : NULL;
	buf_finish(&b);
	return text;
}

/* A failed answer's code and message (taken from a, owned): Graph's, or
 * "HTTPnnn" and what the body looked like when it is not Graph's JSON.
 * *ret_code NULL when out of memory. */
void graph_error_fields(long status, bool readable, struct answer *a, const char *body,
			size_t body_len, char **ret_code, char **ret_message)
{
	struct buf fallback = BUF_INIT;
	if (a->code && !*a->code) {
		free(a->code); /* an empty code says nothing: name the status instead */
		a->code = NULL;
	}
	if (!a->code)
		buf_printf(&fallback, "HTTP%ld", status);
	*ret_code = a->code ? a->code : buf_steal(&fallback);
	*ret_message = a->message;
	a->code = a->message = NULL;
	if (!readable && !*ret_message && body) {
		*ret_message = graph_unreadable_message(body, body_len);
		if (!*ret_message) {
			free(*ret_code);
			*ret_code = NULL;
		}
	}
}

static int classify(long status, bool readable, struct answer *a, bool has_retry_after,
		    uint64_t retry_after_ms, const char *request_id, const char *body,
		    size_t body_len, struct graph_result *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->http_status = status;
	ret->retry_after_ms = retry_after_ms;
	ret->has_retry_after = has_retry_after;
	ret->request_id = answer_request_id(request_id, a);
	if (status == 201 || status == 200) {
		if (!readable || !a->user_id) {
			/* a success we cannot read is not one we can report */
			ret->outcome = GRAPH_OUTCOME_TRANSIENT;
			ret->error_code = strdup("BadResponse");
			ret->error_message = strdup("201 without invitedUser.id");
			return ret->error_code && ret->error_message ? 0 : -ENOMEM;
		}
		ret->outcome = GRAPH_OUTCOME_CREATED;
		ret->invited_user_id = a->user_id;
		ret->invite_redeem_url = a->redeem_url;
		a->user_id = a->redeem_url = NULL;
		return 0;
	}
	graph_error_fields(status, readable, a, body, body_len, &ret->error_code, &ret->error_message);
	if (status == 401)
		ret->outcome = GRAPH_OUTCOME_AUTH;
	else if (status == 403 && is_block(ret->error_message))
		ret->outcome = GRAPH_OUTCOME_BLOCKED;
	else if (status == 429 || (status == 503 && has_retry_after))
		ret->outcome = GRAPH_OUTCOME_THROTTLED;
	else if (status == 408 || status >= 500)
		ret->outcome = GRAPH_OUTCOME_TRANSIENT;
	else
		ret->outcome = GRAPH_OUTCOME_FAILED;
	return ret->error_code ? 0 : -ENOMEM;
}

int graph_classify(const struct http_response *resp, struct graph_result *ret)
{
	if (resp->error) {
		memset(ret, 0, sizeof(*ret));
		ret->outcome = GRAPH_OUTCOME_TRANSIENT;
		transport_error_fields(resp, &ret->retry_after_ms, &ret->has_retry_after,
				       &ret->request_id, &ret->error_code, &ret->error_message);
		return ret->error_code ? 0 : -ENOMEM;
	}
	struct answer a = {0};
	struct scan sc = {resp->body, resp->body + resp->body_len};
	bool readable = read_answer(&sc, &a, false, 0);
	int r = classify(resp->status, readable, &a, resp->has_retry_after, resp->retry_after_ms,
			 resp->request_id, resp->body, resp->body_len, ret);
	graph_answer_clear(&a);
	if (r == 0 && ret->outcome == GRAPH_OUTCOME_THROTTLED)
		ret->throttle_scope = graph_throttle_scope_parse(resp->throttle_scope);
	return r;
}

enum graph_throttle_scope graph_throttle_scope_parse(const char *value)
{
	if (!value)
		return GRAPH_THROTTLE_UNKNOWN;
	while (*value == ' ' || *value == '\t')
		value++;
	size_t n = strcspn(value, "/ \t");
	/* Tenant_Application|Tenant|Application/Read|Write|ReadWrite/appId/tenantId */
	if (n == 11 && strncasecmp(value, "Application", 11) == 0)
		return GRAPH_THROTTLE_APPLICATION;
	if ((n == 18 && strncasecmp(value, "Tenant_Application", 18) == 0) ||
	    (n == 6 && strncasecmp(value, "Tenant", 6) == 0))
		return GRAPH_THROTTLE_TENANT;
	return GRAPH_THROTTLE_UNKNOWN;
}

/* ---- $batch answers ---- */

struct batch_ctx {
	struct item *items;
	size_t n;
	bool dir; /* the items are directory reads */
	struct item cur;
	long id;
	struct buf tmp;
};

/* A whole number, or a string holding one: *ret, or -1 for anything else. */
static bool scan_number_or_string(struct scan *s, struct buf *tmp, long long *ret)
{
	scan_ws(s);
	*ret = -1;
	const char *start = s->p;
	if (s->p < s->end && *s->p == '"') {
		if (!scan_string(s, tmp))
			return false;
		start = tmp->data ? tmp->data : "";
	} else if (!scan_value(s, 1)) {
		return false;
	}
	const char *p = start;
	long long v = 0;
	while (*p >= '0' && *p <= '9' && v < 1000000000)
		v = v * 10 + (*p++ - '0');
	if (p > start && (p == s->p || *p == '\0'))
		*ret = v;
	return true;
}

static bool header_member(struct scan *s, const struct buf *key, void *userdata, int depth)
{
	struct batch_ctx *x = userdata;
	if (key->data && strcasecmp(key->data, "retry-after") == 0) {
		/* a string as the header would carry it, or a bare number: read
		 * by the one Retry-After parser (RFC 9110), as single answers are */
		scan_ws(s);
		const char *text = s->p;
		size_t len;
		if (s->p < s->end && *s->p == '"') {
			if (!scan_string(s, &x->tmp))
				return false;
			text = x->tmp.data ? x->tmp.data : "";
			len = x->tmp.len;
		} else {
			if (!scan_value(s, depth))
				return false;
			len = (size_t)(s->p - text);
		}
		uint64_t ms;
		if (time_parse_retry_after(text, len, time_now_ms(), HTTP_RETRY_AFTER_MAX_MS, &ms) == 0) {
			x->cur.has_retry_after = true;
			x->cur.retry_after_ms = ms;
		}
		return true;
	}
	if (key->data && strcasecmp(key->data, "request-id") == 0)
		return take_string(s, &x->tmp, &x->cur.request_id);
	if (key->data && strcasecmp(key->data, "x-ms-throttle-scope") == 0) {
		char *v = NULL;
		if (!take_string(s, &x->tmp, &v))
			return false;
		x->cur.throttle_scope = graph_throttle_scope_parse(v);
		free(v);
		return true;
	}
	return scan_value(s, depth);
}

static bool item_member(struct scan *s, const struct buf *key, void *userdata, int depth)
{
	struct batch_ctx *x = userdata;
	long long v;
	if (key_is(key, "id")) {
		if (!scan_number_or_string(s, &x->tmp, &v))
			return false;
		x->id = v > 0 && (size_t)v <= x->n ? (long)v : -1;
		return true;
	}
	if (key_is(key, "status")) {
		if (!scan_number_or_string(s, &x->tmp, &v))
			return false;
		x->cur.status = v > 0 && v < 1000 ? (long)v : 0;
		return true;
	}
	scan_ws(s);
	bool obj = s->p < s->end && *s->p == '{';
	if (key_is(key, "headers") && obj)
		return scan_object(s, depth, header_member, x);
	if (key_is(key, "body") && obj) {
		const char *at = s->p;
		x->cur.readable = read_answer(s, &x->cur.a, x->dir, depth);
		if (!x->cur.readable) { /* an unreadable body is the item's problem */
			s->p = at;
			return scan_value(s, depth);
		}
		return true;
	}
	return scan_value(s, depth);
}

static bool responses_member(struct scan *s, const struct buf *key, void *userdata, int depth)
{
	struct batch_ctx *x = userdata;
	if (!key_is(key, "responses"))
		return scan_value(s, depth);
	if (!scan_char(s, '['))
		return false;
	if (scan_char(s, ']'))
		return true;
	do {
		memset(&x->cur, 0, sizeof(x->cur));
		x->id = -1;
		bool ok = scan_object(s, depth + 1, item_member, x);
		if (ok && x->id > 0 && !x->items[x->id - 1].present) {
			x->cur.present = true;
			x->items[x->id - 1] = x->cur;
		} else {
			item_clear(&x->cur);
		}
		if (!ok)
			return false;
	} while (scan_char(s, ','));
	return scan_char(s, ']');
}

/* Every item refused with the same 4xx code and message. */
static bool refused_alike(const struct item *items, size_t n)
{
	if (n < 2)
		return false;
	for (size_t i = 0; i < n; i++) {
		const struct item *it = &items[i];
		long st = it->status;
		if (!it->present || st < 400 || st >= 500 || st == 401 || st == 403 || st == 408 ||
		    st == 429 || !it->a.code || !it->a.message)
			return false;
		if (i > 0 && (strcmp(it->a.code, items[0].a.code) != 0 ||
			      strcmp(it->a.message, items[0].a.message) != 0))
			return false;
	}
	return true;
}

/* A $batch envelope's items, by id, into items[0..n) (n <= GRAPH_BATCH_MAX;
 * item_clear each after). False when the envelope cannot be read. */
bool graph_batch_read(const struct http_response *resp, size_t n, bool dir, struct item *items)
{
	memset(items, 0, n * sizeof(*items));
	struct batch_ctx x = {.items = items, .n = n, .dir = dir};
	struct scan sc = {resp->body, resp->body + resp->body_len};
	bool ok = scan_object(&sc, 0, responses_member, &x);
	buf_finish(&x.tmp);
	return ok;
}

int graph_batch_classify(const struct http_response *resp, size_t n, struct graph_result *results)
{
	if (resp->error || resp->status == 429 || resp->status >= 500 || resp->status == 401)
		return GRAPH_BATCH_WHOLE;
	if (resp->status != 200 && resp->status != 424)
		return GRAPH_BATCH_REFUSED;
	if (n > GRAPH_BATCH_MAX)
		return -EINVAL;
	struct item items[GRAPH_BATCH_MAX];
	bool ok = graph_batch_read(resp, n, false, items);
	int r = 0;
	if (!ok) {
		r = GRAPH_BATCH_WHOLE; /* an answer we cannot read: like no answer */
	} else if (refused_alike(items, n)) {
		r = GRAPH_BATCH_REFUSED;
	} else {
		for (size_t i = 0; i < n && r == 0; i++) {
			struct item *it = &items[i];
			if (!it->present || it->status == 0) {
				struct http_response missing = graph_item_missing(it);
				r = graph_classify(&missing, &results[i]);
			} else {
				r = classify(it->status, it->readable, &it->a, it->has_retry_after,
					     it->retry_after_ms, it->request_id, NULL, 0, &results[i]);
				if (r == 0 && results[i].outcome == GRAPH_OUTCOME_THROTTLED)
					results[i].throttle_scope = it->throttle_scope;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		item_clear(&items[i]);
	return r;
}
