/* SPDX-License-Identifier: MIT */
/*
 * directory: each tenant's users, group memberships and mail (GRAPH.md §6,
 * §7; SPEC §8). Lookups by address (the exact filter of GRAPH.md §6), reads
 * by id (externalUserState; guests accept after a delay), member additions
 * (already a member, not yet replicated, groups that refuse guests) and
 * sendMail (the body checked as Graph does, its own limit, mailboxes that
 * refuse). Each tenant's directory has one lock. See docs/simulator.md,
 * "Directory, groups and mail".
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "jsonout.h"
#include "log.h"
#include "sim.h"
#include "timeutil.h"
#include "validate.h"

#define SEED_MAX 1000000u            /* --seed-members, --seed-guests */
/* users a tenant's directory holds; the throughput bench invites ~35,000
 * distinct addresses a second, ~180 bytes each: beyond this, invitations
 * still succeed but their guests are not kept (logged once) */
#define USERS_MAX 4000000u
#define DIRECTORY_FILE_MAX (64u * 1024u * 1024u)
#define DIR_LIST_MAX 1024u           /* groups, refusing groups or mailboxes */
#define ADDRESS_MAX 320u
#define ID_IN_MAX 15u                /* values of an "id in (...)" filter (GRAPH.md §6) */
#define LOG_MAX (64u * 1024u * 1024u) /* bytes kept for /sim/mail, /sim/members */
#define RETRY_AFTER_MAX 3600u
#define PATTERN_DEFAULT_MEMBER "member{n}@contoso.example"
#define PATTERN_DEFAULT_GUEST "guest{n}@partner.example"
#define LOOKUP_SELECT "id,userType,mail,externalUserState,externalUserStateChangeDateTime"
#define NOT_FOUND_FMT "Resource '%.128s' does not exist or one of its queried reference-property objects are not present."
#define ALREADY_MEMBER "One or more added object references already exist for the following modified properties: 'members'."
#define DENIED "Insufficient privileges to complete the operation."

enum ext_state { EXT_NONE, EXT_PENDING, EXT_ACCEPTED };

struct dir_user {
	char id[RNG_UUID_LEN + 1];
	char *mail;  /* owned, as given */
	char *lower; /* owned, lowercased: the lookup key */
	bool guest;
	bool seeded; /* readable at once (no replication delay) */
	enum ext_state state;
	uint64_t created_ms;   /* monotonic */
	uint64_t accept_at_ms; /* monotonic; 0: never */
	uint64_t changed_ms;   /* wall clock of externalUserStateChangeDateTime; 0: null */
};

struct dir_member {
	char *key;  /* owned: "group\nuser-id" */
	bool added; /* false: a first attempt was answered 404 (--member-404-share) */
};

/* Open addressing over indices (+1; 0 is empty) into an array whose keys a
 * function gives. */
struct index {
	uint32_t *slots;
	size_t cap, n;
};

struct bucket {
	double rate, period_s, level;
	uint64_t us;
};

struct sim_dir {
	pthread_mutex_t lock;
	struct dir_user *users;
	size_t n_users, cap_users;
	struct index by_mail, by_id;
	struct dir_member *members;
	size_t n_members, cap_members;
	struct index by_member;
	struct bucket read, mail;
	struct buf mail_log, member_log; /* JSON objects, one a line */
	bool mail_log_full, member_log_full;
	bool full_logged; /* USERS_MAX reached, said once */
};

/* ---- small helpers ---- */

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t hash_str(const char *p)
{
	uint64_t h = 14695981039346656037u;
	for (; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211u;
	}
	return h;
}

static void lower_in_place(char *p)
{
	for (; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static bool on_list(char *const *v, size_t n, const char *lower)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], lower) == 0)
			return true;
	return false;
}

typedef const char *(*key_fn)(const struct sim_dir *d, uint32_t i);

static const char *key_mail(const struct sim_dir *d, uint32_t i)
{
	return d->users[i].lower;
}

static const char *key_id(const struct sim_dir *d, uint32_t i)
{
	return d->users[i].id;
}

static const char *key_member(const struct sim_dir *d, uint32_t i)
{
	return d->members[i].key;
}

/* The index of key, or -1. */
static long index_find(const struct index *x, const struct sim_dir *d, key_fn kf, const char *key)
{
	if (x->cap == 0)
		return -1;
	size_t mask = x->cap - 1;
	for (size_t at = hash_str(key) & mask;; at = (at + 1) & mask) {
		uint32_t v = x->slots[at];
		if (v == 0)
			return -1;
		if (strcmp(kf(d, v - 1), key) == 0)
			return (long)(v - 1);
	}
}

static void index_place(uint32_t *slots, size_t cap, const char *key, uint32_t v)
{
	size_t mask = cap - 1;
	size_t at = hash_str(key) & mask;
	while (slots[at])
		at = (at + 1) & mask;
	slots[at] = v;
}

/* Adds element i (its key not there yet). 0 or -ENOMEM. */
static int index_add(struct index *x, const struct sim_dir *d, key_fn kf, uint32_t i)
{
	if ((x->n + 1) * 2 > x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 64;
		uint32_t *slots = calloc(cap, sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		for (size_t k = 0; k < x->cap; k++)
			if (x->slots[k])
				index_place(slots, cap, kf(d, x->slots[k] - 1), x->slots[k]);
		free(x->slots);
		x->slots = slots;
		x->cap = cap;
	}
	index_place(x->slots, x->cap, kf(d, i), i + 1);
	x->n++;
	return 0;
}

/* 0 when one may go through; else whole seconds until one may (>= 1).
 * Under the directory's lock. */
static unsigned bucket_take(struct bucket *b)
{
	if (b->rate <= 0)
		return 0;
	double per_us = b->rate / (b->period_s * 1e6);
	uint64_t now = mono_us();
	b->level += (double)(now - b->us) * per_us;
	if (b->level > b->rate)
		b->level = b->rate;
	b->us = now;
	if (b->level >= 1.0) {
		b->level -= 1.0;
		return 0;
	}
	double secs = ceil((1.0 - b->level) / per_us / 1e6);
	return secs < 1.0 ? 1u : secs > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : (unsigned)secs;
}

static void bucket_start(struct bucket *b, double rate, double period_s)
{
	b->rate = rate;
	b->period_s = period_s > 0 ? period_s : 1.0;
	b->level = rate;
	b->us = mono_us();
}

/* Graph's dates here: "2026-12-01T10:00:00Z" (no fraction). */
static void graph_time(uint64_t wall_ms, char out[TIME_RFC3339_MAX])
{
	time_format_rfc3339(wall_ms, out);
	char *dot = strchr(out, '.');
	if (dot) {
		dot[0] = 'Z';
		dot[1] = '\0';
	}
}

/* Takes the text of b; err < 0 makes it an empty 500. */
static void reply_text(struct reply *r, unsigned status, struct buf *b, int err)
{
	free(r->body);
	r->body = NULL;
	if (err < 0) {
		buf_finish(b);
		r->status = 500;
		return;
	}
	r->body = b->data ? buf_steal(b) : NULL;
	r->status = status;
}

/* x-ms-throttle-scope of a read 429 (GRAPH.md §4): the tenant's scope with
 * "Read" (or "Write" for mail). */
static void throttle_scope(const struct sim_caller *c, const char *kind,
			   char out[SIM_THROTTLE_SCOPE_MAX])
{
	out[0] = '\0';
	switch (c->tenant->throttle_scope) {
	case SIM_SCOPE_NONE:
		break;
	case SIM_SCOPE_TENANT_APPLICATION:
		snprintf(out, SIM_THROTTLE_SCOPE_MAX, "Tenant_Application/%s/%s/%s", kind, c->appid,
			 c->tid);
		break;
	case SIM_SCOPE_TENANT:
		snprintf(out, SIM_THROTTLE_SCOPE_MAX, "Tenant/%s//%s", kind, c->tid);
		break;
	case SIM_SCOPE_APPLICATION:
		snprintf(out, SIM_THROTTLE_SCOPE_MAX, "Application/%s/%s", kind, c->appid);
		break;
	}
}

static bool has_any_role(const struct sim_tenant *t, const char *const *roles)
{
	for (; *roles; roles++)
		if (sim_tenant_has_role(t, *roles))
			return true;
	return false;
}

/* One line of a record: appended to the file (one write on O_APPEND) and
 * to the in-memory log. Under the directory's lock. */
static void record_line(int fd, const char *path, struct buf *log, bool *full, struct buf *line)
{
	if (fd >= 0) {
		ssize_t w;
		do
			w = write(fd, line->data, line->len);
		while (w < 0 && errno == EINTR);
		if (w != (ssize_t)line->len)
			log_error("Failed to write the record file '%s'", path);
	}
	if (log->len + line->len > LOG_MAX) {
		*full = true;
		return;
	}
	if (buf_append(log, line->data, line->len) < 0)
		*full = true;
}

/* ---- users ---- */

static bool readable(const struct sim *s, const struct dir_user *u, uint64_t now)
{
	return u->seeded || now >= u->created_ms + s->cfg.replication_delay_ms;
}

/* Lazily turn a pending guest whose time has come into an accepted one. */
static void settle(struct dir_user *u, uint64_t now)
{
	if (u->state == EXT_PENDING && u->accept_at_ms && now >= u->accept_at_ms) {
		u->state = EXT_ACCEPTED;
		u->changed_ms = time_now_ms() - (now - u->accept_at_ms);
	}
}

static void plan_acceptance(struct sim *s, struct dir_user *u, uint64_t from_ms)
{
	u->accept_at_ms = 0;
	if (u->state != EXT_PENDING || !s->cfg.accept_after_set)
		return;
	if (s->cfg.accept_share < 100 && !(rng_percent() < s->cfg.accept_share))
		return;
	u->accept_at_ms = from_ms + s->cfg.accept_after_ms;
	if (u->accept_at_ms == 0)
		u->accept_at_ms = 1;
}

/* Adds a user (the address not there yet); id NULL: derived from the
 * address, as an invitation's invitedUser.id is. Under the lock (or before
 * the server starts). 0, -EEXIST or -ENOMEM. */
static int user_add(struct sim_dir *d, const char *mail, const char *id, bool guest,
		    enum ext_state state, bool seeded, uint64_t now, struct dir_user **ret)
{
	char *lower = strdup(mail);
	char *copy = strdup(mail);
	int r = -ENOMEM;
	if (!lower || !copy)
		goto out;
	lower_in_place(lower);
	if (index_find(&d->by_mail, d, key_mail, lower) >= 0) {
		r = -EEXIST;
		goto out;
	}
	if (d->n_users >= USERS_MAX) {
		r = -ENOSPC;
		goto out;
	}
	if (d->n_users == d->cap_users) {
		size_t cap = d->cap_users ? d->cap_users * 2 : 64;
		struct dir_user *v = realloc(d->users, cap * sizeof(*v));
		if (!v)
			goto out;
		d->users = v;
		d->cap_users = cap;
	}
	struct dir_user *u = &d->users[d->n_users];
	memset(u, 0, sizeof(*u));
	if (id) {
		snprintf(u->id, sizeof(u->id), "%s", id);
		lower_in_place(u->id);
	} else {
		rng_uuid_from_name(lower, u->id);
	}
	if (index_find(&d->by_id, d, key_id, u->id) >= 0) {
		r = -EEXIST;
		goto out;
	}
	u->mail = copy;
	u->lower = lower;
	u->guest = guest;
	u->seeded = seeded;
	u->state = state;
	u->created_ms = now;
	u->changed_ms = state != EXT_NONE ? time_now_ms() : 0;
	uint32_t i = (uint32_t)d->n_users;
	d->n_users++;
	if (index_add(&d->by_mail, d, key_mail, i) < 0 || index_add(&d->by_id, d, key_id, i) < 0) {
		/* the indices may hold i: keep the user, report the failure */
		*ret = u;
		return -ENOMEM;
	}
	*ret = u;
	return 0;
out:
	free(lower);
	free(copy);
	return r;
}

static struct dir_user *user_by_id(struct sim_dir *d, const char *id)
{
	char key[RNG_UUID_LEN + 8];
	if (strlen(id) >= sizeof(key))
		return NULL;
	snprintf(key, sizeof(key), "%s", id);
	lower_in_place(key);
	long i = index_find(&d->by_id, d, key_id, key);
	return i < 0 ? NULL : &d->users[i];
}

static struct dir_user *user_by_mail(struct sim_dir *d, const char *mail)
{
	char key[ADDRESS_MAX + 1];
	if (strlen(mail) >= sizeof(key))
		return NULL;
	snprintf(key, sizeof(key), "%s", mail);
	lower_in_place(key);
	long i = index_find(&d->by_mail, d, key_mail, key);
	return i < 0 ? NULL : &d->users[i];
}

void sim_dir_note_invited(struct sim *s, struct sim_tenant *t, const char *address,
			  const char *user_id)
{
	struct sim_dir *d = t->dir;
	struct dir_user *u;
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	uint64_t now = time_mono_ms();
	int r = user_add(d, address, user_id, true, EXT_PENDING, false, now, &u);
	if (r == 0)
		plan_acceptance(s, u, now);
	else if (r == -ENOMEM)
		log_error("Out of memory: the guest %s is not in the directory", user_id);
	else if (r == -ENOSPC && !d->full_logged) {
		d->full_logged = true;
		log_warning("Tenant %s's directory holds %u users: guests of further invitations are not kept",
			    t->name ? t->name : "*", USERS_MAX);
	}
	pthread_mutex_unlock(&d->lock);
}

/* ---- $select ---- */

enum {
	P_ID = 1 << 0,
	P_USER_TYPE = 1 << 1,
	P_MAIL = 1 << 2,
	P_EXT_STATE = 1 << 3,
	P_EXT_CHANGED = 1 << 4,
	P_DISPLAY_NAME = 1 << 5,
	P_UPN = 1 << 6,
};

static const char *const prop_names[] = {
	"id", "userType", "mail", "externalUserState", "externalUserStateChangeDateTime",
	"displayName", "userPrincipalName",
};
#define N_PROPS (sizeof(prop_names) / sizeof(prop_names[0]))

/* The properties of a $select list; NULL: the default set. 0, or fills msg. */
static int parse_select(const char *select, unsigned *ret, char *msg, size_t msglen)
{
	if (!select) {
		*ret = P_ID | P_MAIL | P_DISPLAY_NAME | P_UPN;
		return 0;
	}
	unsigned set = 0;
	const char *p = select;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		bool found = false;
		for (size_t i = 0; i < N_PROPS; i++) {
			if (strlen(prop_names[i]) == n && strncasecmp(p, prop_names[i], n) == 0) {
				set |= 1u << i;
				found = true;
			}
		}
		if (!found) {
			snprintf(msg, msglen,
				 "Could not find a property named '%.*s' on type 'microsoft.graph.user'.",
				 (int)(n > 64 ? 64 : n), p);
			return -EINVAL;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	*ret = set;
	return 0;
}

static int user_json(struct buf *b, const struct dir_user *u, unsigned props, const char *tid)
{
	char when[TIME_RFC3339_MAX];
	int r = buf_append_str(b, "{");
	bool first = true;
#define MEMBER(flag, key, value)                                    \
	do {                                                        \
		if (props & (flag)) {                               \
			r |= jsonout_member(b, key, value, first);  \
			first = false;                              \
		}                                                   \
	} while (0)
	MEMBER(P_ID, "id", u->id);
	MEMBER(P_USER_TYPE, "userType", u->guest ? "Guest" : "Member");
	MEMBER(P_MAIL, "mail", u->mail);
	MEMBER(P_EXT_STATE, "externalUserState",
	       u->state == EXT_PENDING ? "PendingAcceptance" :
	       u->state == EXT_ACCEPTED ? "Accepted" : NULL);
	if (u->changed_ms)
		graph_time(u->changed_ms, when);
	MEMBER(P_EXT_CHANGED, "externalUserStateChangeDateTime", u->changed_ms ? when : NULL);
	MEMBER(P_DISPLAY_NAME, "displayName", NULL);
	if (props & P_UPN) {
		struct buf upn = BUF_INIT;
		const char *at = strrchr(u->mail, '@');
		if (u->guest && at) {
			r |= buf_append(&upn, u->mail, (size_t)(at - u->mail));
			r |= buf_printf(&upn, "_%s#EXT#@%s.onmicrosoft.com", at + 1, tid);
		} else {
			r |= buf_append_str(&upn, u->mail);
		}
		r |= jsonout_member(b, "userPrincipalName", upn.data, first);
		first = false;
		buf_finish(&upn);
	}
#undef MEMBER
	r |= buf_append_str(b, "}");
	return r;
}

/* "@odata.context" of a users answer with a $select. */
static int context_member(struct buf *b, const char *select, bool entity)
{
	int r = buf_append_str(b, "\"@odata.context\":");
	struct buf ctx = BUF_INIT;
	r |= buf_append_str(&ctx, "https://graph.microsoft.com/v1.0/$metadata#users");
	if (select)
		r |= buf_printf(&ctx, "(%s)", select);
	if (entity)
		r |= buf_append_str(&ctx, "/$entity");
	r |= jsonout_string(b, ctx.data);
	buf_finish(&ctx);
	return r;
}

/* ---- $filter ---- */

static bool expect(const char **p, const char *lit)
{
	size_t n = strlen(lit);
	if (strncmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

/* An OData string literal at *p, after its opening quote: up to the
 * closing quote, '' standing for '. Leaves *p after the closing quote. */
static bool odata_string(const char **p, char *out, size_t max)
{
	size_t n = 0;
	const char *q = *p;
	for (;;) {
		if (*q == '\0')
			return false;
		if (*q == '\'') {
			if (q[1] != '\'')
				break;
			q++;
		}
		if (n + 1 >= max)
			return false;
		out[n++] = *q++;
	}
	out[n] = '\0';
	*p = q + 1;
	return true;
}

/* GRAPH.md §6's lookup filter, exactly; the address into a. */
static bool lookup_filter(const char *f, char a[ADDRESS_MAX + 1])
{
	char b[ADDRESS_MAX + 1], c[ADDRESS_MAX + 1], d[ADDRESS_MAX + 1];
	const char *p = f;
	return expect(&p, "mail eq '") && odata_string(&p, a, ADDRESS_MAX + 1) &&
	       expect(&p, " or otherMails/any(x:x eq '") && odata_string(&p, b, sizeof(b)) &&
	       expect(&p, ") or proxyAddresses/any(x:x eq 'smtp:") &&
	       odata_string(&p, c, sizeof(c)) &&
	       expect(&p, ") or userPrincipalName eq '") && odata_string(&p, d, sizeof(d)) &&
	       *p == '\0' && a[0] && strcmp(a, b) == 0 && strcmp(a, c) == 0 && strcmp(a, d) == 0;
}

/* "id in ('a','b')": the count of ids (at most max), or -1 when not that
 * form; more than max gives max + 1. */
static int id_in_filter(const char *f, char ids[][RNG_UUID_LEN + 8], int max)
{
	const char *p = f;
	int n = 0;
	if (!expect(&p, "id in ("))
		return -1;
	for (;;) {
		while (*p == ' ')
			p++;
		if (!expect(&p, "'"))
			return -1;
		char one[RNG_UUID_LEN + 8];
		if (!odata_string(&p, one, sizeof(one)))
			return -1;
		if (n < max)
			memcpy(ids[n], one, sizeof(one));
		n++;
		while (*p == ' ')
			p++;
		if (*p == ',') {
			p++;
			continue;
		}
		break;
	}
	if (!expect(&p, ")") || *p != '\0')
		return -1;
	return n > max ? max + 1 : n;
}

/* ---- the requests ---- */

struct ctx {
	struct sim *s;
	const struct sim_caller *c;
	struct sim_dir *d;
	struct reply *r;
};

static const char *const read_roles[] = {"User.Read.All", "User.ReadWrite.All",
					 "Directory.Read.All", "Directory.ReadWrite.All", NULL};
static const char *const member_roles[] = {"GroupMember.ReadWrite.All", "Group.ReadWrite.All",
					   "Directory.ReadWrite.All", NULL};
static const char *const mail_roles[] = {"Mail.Send", NULL};

/* The read limit; true when r was made a 429. */
static bool read_throttled(struct ctx *x)
{
	pthread_mutex_lock(&x->d->lock);
	unsigned wait = bucket_take(&x->d->read);
	pthread_mutex_unlock(&x->d->lock);
	if (!wait)
		return false;
	sim_error_reply(x->r, 429, "TooManyRequests",
			"Too many requests. Please retry after the time in the Retry-After header.");
	x->r->retry_after = wait;
	throttle_scope(x->c, "Read", x->r->throttle_scope);
	x->r->throttle_info = "ReadLimitExceeded";
	return true;
}

static void users_list(struct ctx *x, const char *filter, const char *select)
{
	char addr[ADDRESS_MAX + 1], msg[512];
	char ids[ID_IN_MAX][RNG_UUID_LEN + 8];
	struct buf b = BUF_INIT;
	unsigned props;
	int err = 0;

	if (!filter) {
		sim_error_reply(x->r, 400, "BadRequest",
				"The simulator answers GET /users only with a $filter: GRAPH.md §6's lookup or 'id in (...)'.");
		return;
	}
	bool lookup = lookup_filter(filter, addr);
	int n_ids = lookup ? -1 : id_in_filter(filter, ids, ID_IN_MAX);
	if (!lookup && n_ids < 0) {
		snprintf(msg, sizeof(msg),
			 "Invalid filter clause: the simulator takes exactly \"mail eq 'A' or otherMails/any(x:x eq 'A') or proxyAddresses/any(x:x eq 'smtp:A') or userPrincipalName eq 'A'\" (the same A, quotes doubled) or \"id in ('ID',...)\", not '%.200s'.",
			 filter);
		sim_error_reply(x->r, 400, "BadRequest", msg);
		return;
	}
	if (n_ids > (int)ID_IN_MAX) {
		sim_error_reply(x->r, 400, "BadRequest",
				"Invalid filter clause: the 'in' operator takes at most 15 values.");
		return;
	}
	if (lookup && (!select || strcmp(select, LOOKUP_SELECT) != 0)) {
		snprintf(msg, sizeof(msg),
			 "Invalid $select for a lookup: the simulator takes exactly '" LOOKUP_SELECT "', not '%.200s'.",
			 select ? select : "(none)");
		sim_error_reply(x->r, 400, "BadRequest", msg);
		return;
	}
	if (parse_select(select, &props, msg, sizeof(msg)) < 0) {
		sim_error_reply(x->r, 400, "BadRequest", msg);
		return;
	}
	if (read_throttled(x))
		return;
	err |= buf_append_str(&b, "{");
	err |= context_member(&b, select, false);
	err |= buf_append_str(&b, ",\"value\":[");
	pthread_mutex_lock(&x->d->lock);
	uint64_t now = time_mono_ms();
	int written = 0;
	for (int i = 0; i < (lookup ? 1 : n_ids); i++) {
		struct dir_user *u = lookup ? user_by_mail(x->d, addr) : user_by_id(x->d, ids[i]);
		if (!u || !readable(x->s, u, now))
			continue;
		settle(u, now);
		if (written++)
			err |= buf_append_str(&b, ",");
		err |= user_json(&b, u, props, x->c->tid);
	}
	pthread_mutex_unlock(&x->d->lock);
	err |= buf_append_str(&b, "]}");
	reply_text(x->r, 200, &b, err);
}

static void user_get(struct ctx *x, const char *id, const char *select)
{
	char msg[512];
	struct buf b = BUF_INIT;
	unsigned props;
	int err = 0;

	if (parse_select(select, &props, msg, sizeof(msg)) < 0) {
		sim_error_reply(x->r, 400, "BadRequest", msg);
		return;
	}
	if (read_throttled(x))
		return;
	pthread_mutex_lock(&x->d->lock);
	uint64_t now = time_mono_ms();
	struct dir_user *u = user_by_id(x->d, id);
	if (!u)
		u = user_by_mail(x->d, id); /* /users/{userPrincipalName} of a member */
	if (u && readable(x->s, u, now)) {
		settle(u, now);
		err |= buf_append_str(&b, "{");
		err |= context_member(&b, select, true);
		err |= buf_append_str(&b, ",");
		struct buf one = BUF_INIT;
		err |= user_json(&one, u, props, x->c->tid);
		if (one.data && one.len > 2) /* drop its "{": one object */
			err |= buf_append(&b, one.data + 1, one.len - 1);
		else
			err |= buf_append_str(&b, "\"id\":null}");
		buf_finish(&one);
	} else {
		u = NULL;
	}
	pthread_mutex_unlock(&x->d->lock);
	if (!u) {
		buf_finish(&b);
		snprintf(msg, sizeof(msg), NOT_FOUND_FMT, id);
		sim_error_reply(x->r, 404, "Request_ResourceNotFound", msg);
		return;
	}
	reply_text(x->r, 200, &b, err);
}

/* The user id an @odata.id names: https://graph.microsoft.com/v1.0/directoryObjects/ID,
 * or the same under the simulator's own loopback URL (with a tenant prefix). */
static bool directory_object_id(const char *url, char out[RNG_UUID_LEN + 8])
{
	const char *p = url;
	static const char tail[] = "/v1.0/directoryObjects/";
	if (expect(&p, "https://graph.microsoft.com/v1.0/directoryObjects/")) {
		/* p: the id */
	} else {
		if (!expect(&p, "http://") && !expect(&p, "https://"))
			return false;
		if (!expect(&p, "127.") && !expect(&p, "localhost") && !expect(&p, "[::1]"))
			return false;
		const char *t = strstr(p, tail);
		if (!t)
			return false;
		for (const char *q = p; q < t; q++)
			if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') ||
			      (*q >= 'A' && *q <= 'Z') || strchr(".:-_/", *q)))
				return false;
		p = t + sizeof(tail) - 1;
	}
	size_t n = strlen(p);
	if (n == 0 || n > RNG_UUID_LEN || strchr(p, '/') || strchr(p, '?'))
		return false;
	memcpy(out, p, n + 1);
	return true;
}

static int member_line(struct buf *b, const struct sim_caller *c, const char *group,
		       const struct dir_user *u)
{
	int r = buf_printf(b, "{\"t_ms\":%llu", (unsigned long long)time_now_ms());
	r |= jsonout_member(b, "tenant", c->tid, 0);
	r |= jsonout_member(b, "group", group, 0);
	r |= jsonout_member(b, "user_id", u->id, 0);
	r |= jsonout_member(b, "address", u->mail, 0);
	r |= jsonout_member(b, "user_type", u->guest ? "Guest" : "Member", 0);
	r |= buf_append_str(b, "}\n");
	return r;
}

static void member_add(struct ctx *x, const char *group, json_t *body)
{
	struct sim_dir_config *dc = &x->c->tenant->dirc;
	char msg[512], gid[RNG_UUID_LEN + 8], uid[RNG_UUID_LEN + 8];
	struct buf key = BUF_INIT, line = BUF_INIT;
	int err = 0;

	if (strlen(group) >= sizeof(gid)) {
		snprintf(msg, sizeof(msg), NOT_FOUND_FMT, group);
		sim_error_reply(x->r, 404, "Request_ResourceNotFound", msg);
		return;
	}
	snprintf(gid, sizeof(gid), "%s", group);
	lower_in_place(gid);
	bool refusing = on_list(dc->refusing_groups, dc->n_refusing_groups, gid);
	if (!refusing && !on_list(dc->groups, dc->n_groups, gid)) {
		snprintf(msg, sizeof(msg), NOT_FOUND_FMT, group);
		sim_error_reply(x->r, 404, "Request_ResourceNotFound", msg);
		return;
	}
	json_t *ref = json_object_get(body, "@odata.id");
	if (!json_is_object(body) || json_object_size(body) != 1 || !json_is_string(ref)) {
		sim_error_reply(x->r, 400, "BadRequest",
				"Invalid request body: exactly {\"@odata.id\":\"https://graph.microsoft.com/v1.0/directoryObjects/{id}\"} is expected.");
		return;
	}
	if (!directory_object_id(json_string_value(ref), uid)) {
		snprintf(msg, sizeof(msg), "Invalid object identifier '%.200s'.",
			 json_string_value(ref));
		sim_error_reply(x->r, 400, "Request_BadRequest", msg);
		return;
	}
	lower_in_place(uid);
	pthread_mutex_lock(&x->d->lock);
	struct sim_dir *d = x->d;
	uint64_t now = time_mono_ms();
	struct dir_user *u = user_by_id(d, uid);
	if (!u || !readable(x->s, u, now)) {
		pthread_mutex_unlock(&d->lock);
		snprintf(msg, sizeof(msg), NOT_FOUND_FMT, uid);
		sim_error_reply(x->r, 404, "Request_ResourceNotFound", msg);
		return;
	}
	if (refusing && u->guest) {
		pthread_mutex_unlock(&d->lock);
		sim_error_reply(x->r, 400, "Request_BadRequest",
				"Guest users cannot be added to this group: its settings do not allow guests (AllowToAddGuests is false).");
		return;
	}
	err |= buf_printf(&key, "%s\n%s", gid, u->id);
	long i = err ? -1 : index_find(&d->by_member, d, key_member, key.data);
	if (i >= 0 && d->members[i].added) {
		pthread_mutex_unlock(&d->lock);
		buf_finish(&key);
		sim_error_reply(x->r, 400, "Request_BadRequest", ALREADY_MEMBER);
		return;
	}
	if (i < 0 && !err) {
		if (d->n_members == d->cap_members) {
			size_t cap = d->cap_members ? d->cap_members * 2 : 64;
			struct dir_member *v = realloc(d->members, cap * sizeof(*v));
			if (!v)
				err = -ENOMEM;
			else
				d->members = v, d->cap_members = cap;
		}
		if (!err) {
			struct dir_member *m = &d->members[d->n_members];
			m->key = buf_steal(&key);
			m->added = false;
			i = (long)d->n_members++;
			err |= index_add(&d->by_member, d, key_member, (uint32_t)i);
			/* a first addition: maybe "not replicated yet" once */
			if (!err && x->s->cfg.member_404_share > 0 &&
			    rng_percent() < x->s->cfg.member_404_share) {
				pthread_mutex_unlock(&d->lock);
				snprintf(msg, sizeof(msg), NOT_FOUND_FMT, uid);
				sim_error_reply(x->r, 404, "Request_ResourceNotFound", msg);
				return;
			}
		}
	}
	if (err) {
		pthread_mutex_unlock(&d->lock);
		buf_finish(&key);
		sim_error_reply(x->r, 500, "UnknownError", "Out of memory.");
		return;
	}
	d->members[i].added = true;
	if (member_line(&line, x->c, gid, u) == 0)
		record_line(x->s->members_fd, x->s->cfg.members_record_path, &d->member_log,
			    &d->member_log_full, &line);
	pthread_mutex_unlock(&d->lock);
	buf_finish(&key);
	buf_finish(&line);
	free(x->r->body);
	x->r->body = NULL;
	x->r->status = 204;
}

/* ---- sendMail ---- */

static const char *const mail_top_keys[] = {"message", "saveToSentItems", NULL};
static const char *const message_keys[] = {
	"subject",	 "body",	"toRecipients", "ccRecipients", "bccRecipients",
	"replyTo",	 "from",	"sender",	"importance",	"internetMessageHeaders",
	"attachments", "@odata.type", NULL,
};

static const char *unknown_key(json_t *o, const char *const *known)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		bool ok = false;
		for (const char *const *p = known; *p; p++)
			ok = ok || strcmp(k, *p) == 0;
		if (!ok)
			return k;
	}
	return NULL;
}

/* A recipients array (NULL or absent allowed unless required): 0, or fills msg. */
static int check_recipients(json_t *v, const char *name, bool required, char *msg, size_t msglen)
{
	if (!v || json_is_null(v)) {
		if (required) {
			snprintf(msg, msglen, "At least one recipient is required, but none were found.");
			return -EINVAL;
		}
		return 0;
	}
	if (!json_is_array(v)) {
		snprintf(msg, msglen, "Cannot convert the value of property '%s' to a collection of 'microsoft.graph.recipient'.", name);
		return -EINVAL;
	}
	if (required && json_array_size(v) == 0) {
		snprintf(msg, msglen, "At least one recipient is required, but none were found.");
		return -EINVAL;
	}
	if (json_array_size(v) > 500) {
		snprintf(msg, msglen, "The message has more than 500 recipients in '%s'.", name);
		return -EINVAL;
	}
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e) {
		json_t *ea = json_object_get(e, "emailAddress");
		json_t *addr = json_object_get(ea, "address");
		json_t *nm = json_object_get(ea, "name");
		if (!json_is_object(ea) || !json_is_string(addr)) {
			snprintf(msg, msglen, "A recipient in '%s' has no emailAddress.address.", name);
			return -EINVAL;
		}
		if (nm && !json_is_null(nm) && !json_is_string(nm)) {
			snprintf(msg, msglen, "Cannot convert the value of property 'name' to the expected type 'Edm.String'.");
			return -EINVAL;
		}
		if (validate_email(json_string_value(addr))) {
			snprintf(msg, msglen, "The recipient '%.200s' in '%s' is not a valid SMTP address.",
				 json_string_value(addr), name);
			return -EINVAL;
		}
	}
	return 0;
}

/* 0, or fills msg with Graph's kind of answer (*code). */
static int check_mail(json_t *body, char *msg, size_t msglen, const char **code)
{
	const char *k;
	*code = "ErrorInvalidRequest";
	if (!json_is_object(body)) {
		*code = "RequestBodyRead";
		snprintf(msg, msglen, "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.");
		return -EINVAL;
	}
	if ((k = unknown_key(body, mail_top_keys))) {
		*code = "RequestBodyRead";
		snprintf(msg, msglen, "The parameter '%.64s' in the request payload is not a valid parameter for the operation 'sendMail'.", k);
		return -EINVAL;
	}
	json_t *m = json_object_get(body, "message");
	if (!json_is_object(m)) {
		*code = "ErrorInvalidParameter";
		snprintf(msg, msglen, "The value of the parameter 'Message' is empty.");
		return -EINVAL;
	}
	if ((k = unknown_key(m, message_keys))) {
		*code = "RequestBodyRead";
		snprintf(msg, msglen, "The property '%.64s' does not exist on type 'microsoft.graph.message'. Make sure to only use property names that are defined by the type or mark the type as open type.", k);
		return -EINVAL;
	}
	json_t *save = json_object_get(body, "saveToSentItems");
	if (save && !json_is_null(save) && !json_is_boolean(save)) {
		*code = "RequestBodyRead";
		snprintf(msg, msglen, "Cannot convert the value of property 'saveToSentItems' to the expected type 'Edm.Boolean'.");
		return -EINVAL;
	}
	json_t *subject = json_object_get(m, "subject");
	if (subject && !json_is_null(subject) && !json_is_string(subject)) {
		*code = "RequestBodyRead";
		snprintf(msg, msglen, "Cannot convert the value of property 'subject' to the expected type 'Edm.String'.");
		return -EINVAL;
	}
	json_t *b = json_object_get(m, "body");
	if (b && !json_is_null(b)) {
		json_t *ct = json_object_get(b, "contentType");
		json_t *content = json_object_get(b, "content");
		if (!json_is_object(b) || (ct && !json_is_string(ct)) ||
		    (content && !json_is_null(content) && !json_is_string(content))) {
			*code = "RequestBodyRead";
			snprintf(msg, msglen, "Cannot convert the value of property 'body' to the expected type 'microsoft.graph.itemBody'.");
			return -EINVAL;
		}
		if (ct && strcasecmp(json_string_value(ct), "Text") != 0 &&
		    strcasecmp(json_string_value(ct), "HTML") != 0) {
			*code = "RequestBodyRead";
			snprintf(msg, msglen, "The value '%.64s' of 'contentType' is not a valid 'microsoft.graph.bodyType': Text or HTML.",
				 json_string_value(ct));
			return -EINVAL;
		}
	}
	*code = "ErrorInvalidRecipients";
	if (check_recipients(json_object_get(m, "toRecipients"), "toRecipients", true, msg, msglen) < 0 ||
	    check_recipients(json_object_get(m, "ccRecipients"), "ccRecipients", false, msg, msglen) < 0 ||
	    check_recipients(json_object_get(m, "bccRecipients"), "bccRecipients", false, msg, msglen) < 0)
		return -EINVAL;
	return 0;
}

static int addresses_member(struct buf *b, const char *key, json_t *list)
{
	int r = buf_printf(b, ",\"%s\":[", key);
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e) {
		if (i > 0)
			r |= buf_append_str(b, ",");
		r |= jsonout_string(b, json_string_value(json_object_get(json_object_get(e, "emailAddress"), "address")));
	}
	r |= buf_append_str(b, "]");
	return r;
}

static int mail_line(struct buf *b, const struct sim_caller *c, const char *sender, json_t *body)
{
	json_t *m = json_object_get(body, "message");
	json_t *mb = json_object_get(m, "body");
	json_t *to = json_object_get(m, "toRecipients");
	const char *name = json_string_value(
		json_object_get(json_object_get(json_array_get(to, 0), "emailAddress"), "name"));
	json_t *save = json_object_get(body, "saveToSentItems");
	int r = buf_printf(b, "{\"t_ms\":%llu", (unsigned long long)time_now_ms());
	r |= jsonout_member(b, "tenant", c->tid, 0);
	r |= jsonout_member(b, "sender", sender, 0);
	r |= addresses_member(b, "to", to);
	r |= jsonout_member(b, "name", name, 0);
	r |= addresses_member(b, "cc", json_object_get(m, "ccRecipients"));
	r |= addresses_member(b, "bcc", json_object_get(m, "bccRecipients"));
	r |= jsonout_member(b, "subject", json_string_value(json_object_get(m, "subject")), 0);
	r |= jsonout_member(b, "content_type", json_string_value(json_object_get(mb, "contentType")), 0);
	r |= jsonout_member(b, "body", json_string_value(json_object_get(mb, "content")), 0);
	r |= buf_printf(b, ",\"save_to_sent_items\":%s}\n",
			!save || json_is_null(save) ? "null" : json_is_true(save) ? "true" : "false");
	return r;
}

static void send_mail(struct ctx *x, const char *sender, json_t *body)
{
	struct sim_dir_config *dc = &x->c->tenant->dirc;
	char msg[512], lower[ADDRESS_MAX + 1];
	const char *code;
	struct buf line = BUF_INIT;

	if (strlen(sender) > ADDRESS_MAX || (validate_email(sender) && strlen(sender) != RNG_UUID_LEN)) {
		snprintf(msg, sizeof(msg), "The requested user '%.200s' is invalid.", sender);
		sim_error_reply(x->r, 404, "ErrorInvalidUser", msg);
		return;
	}
	snprintf(lower, sizeof(lower), "%s", sender);
	lower_in_place(lower);
	if (on_list(dc->refusing_mailboxes, dc->n_refusing_mailboxes, lower)) {
		sim_error_reply(x->r, 403, "ErrorAccessDenied",
				"Access is denied. Check credentials and try again.");
		return;
	}
	if (check_mail(body, msg, sizeof(msg), &code) < 0) {
		sim_error_reply(x->r, 400, code, msg);
		return;
	}
	pthread_mutex_lock(&x->d->lock);
	unsigned wait = bucket_take(&x->d->mail);
	if (!wait && mail_line(&line, x->c, sender, body) == 0)
		record_line(x->s->mail_fd, x->s->cfg.mail_record_path, &x->d->mail_log,
			    &x->d->mail_log_full, &line);
	pthread_mutex_unlock(&x->d->lock);
	buf_finish(&line);
	if (wait) {
		sim_error_reply(x->r, 429, "ApplicationThrottled",
				"Application is over its MailboxConcurrency limit.");
		x->r->retry_after = wait;
		throttle_scope(x->c, "Write", x->r->throttle_scope);
		return;
	}
	free(x->r->body);
	x->r->body = NULL;
	x->r->status = 202;
}

/* ---- routing ---- */

bool sim_dir_path(const char *path)
{
	return strcmp(path, "/users") == 0 || strncmp(path, "/users/", 7) == 0 ||
	       strncmp(path, "/groups/", 8) == 0;
}

/* The one path segment after prefix, up to the next '/' (into seg); the
 * rest after it in *rest. */
static bool segment(const char *path, const char *prefix, char *seg, size_t max, const char **rest)
{
	size_t n = strlen(prefix);
	if (strncmp(path, prefix, n) != 0)
		return false;
	const char *p = path + n;
	const char *slash = strchr(p, '/');
	size_t len = slash ? (size_t)(slash - p) : strlen(p);
	if (len == 0 || len >= max)
		return false;
	memcpy(seg, p, len);
	seg[len] = '\0';
	*rest = p + len;
	return true;
}

/* Every request of caller c to a directory path; body parsed (NULL: none
 * or unreadable, body_error says which). */
static void route_one(struct sim *s, const struct sim_caller *c, const char *method, const char *path,
		  const char *filter, const char *select, json_t *body, struct reply *r)
{
	struct ctx x = {.s = s, .c = c, .d = c->tenant->dir, .r = r};
	char seg[ADDRESS_MAX + 1], msg[400];
	const char *rest;
	bool get = strcasecmp(method, "GET") == 0, post = strcasecmp(method, "POST") == 0;
	const struct sim_tenant *t = c->tenant;

	if (!x.d) {
		sim_error_reply(r, 500, "UnknownError", "The simulator's directory is not ready.");
		return;
	}
	if (strcmp(path, "/users") == 0) {
		if (!get)
			goto bad_method;
		if (!has_any_role(t, read_roles))
			goto denied;
		users_list(&x, filter, select);
		return;
	}
	if (segment(path, "/users/", seg, sizeof(seg), &rest)) {
		if (rest[0] == '\0') {
			if (!get)
				goto bad_method;
			if (!has_any_role(t, read_roles))
				goto denied;
			user_get(&x, seg, select);
			return;
		}
		if (strcmp(rest, "/sendMail") == 0) {
			if (!post)
				goto bad_method;
			if (!has_any_role(t, mail_roles)) {
				sim_error_reply(r, 403, "ErrorAccessDenied",
						"Access is denied. Check credentials and try again.");
				return;
			}
			send_mail(&x, seg, body);
			return;
		}
	}
	if (segment(path, "/groups/", seg, sizeof(seg), &rest) && strcmp(rest, "/members/$ref") == 0) {
		if (!post)
			goto bad_method;
		if (!has_any_role(t, member_roles))
			goto denied;
		member_add(&x, seg, body);
		return;
	}
	snprintf(msg, sizeof(msg), "Resource not found for the segment '%.256s'.", path + 1);
	sim_error_reply(r, 404, "NotFound", msg);
	return;
bad_method:
	snprintf(msg, sizeof(msg), "The HTTP method '%.16s' is not allowed for '%.256s'.", method, path);
	sim_error_reply(r, 405, "MethodNotAllowed", msg);
	return;
denied:
	sim_error_reply(r, 403, "Authorization_RequestDenied", DENIED);
}

/* route_one, then the answer counted by kind in the tenant's /sim/stats
 * "directory": a lookup (GRAPH.md §6's filter), a read (by id, or "id in"),
 * a member addition, a sendMail; other paths are not counted. */
static void route(struct sim *s, const struct sim_caller *c, const char *method, const char *path,
		  const char *filter, const char *select, json_t *body, struct reply *r)
{
	int kind = -1;
	char seg[ADDRESS_MAX + 1];
	const char *rest;

	route_one(s, c, method, path, filter, select, body, r);
	if (strcmp(path, "/users") == 0)
		kind = filter && strncmp(filter, "id in", 5) == 0 ? SIM_DIR_READ : SIM_DIR_LOOKUP;
	else if (segment(path, "/users/", seg, sizeof(seg), &rest))
		kind = rest[0] == '\0' ? SIM_DIR_READ : strcmp(rest, "/sendMail") == 0 ? SIM_DIR_MAIL : -1;
	else if (strncmp(path, "/groups/", 8) == 0)
		kind = SIM_DIR_ADDITION;
	if (kind >= 0 && r->status < SIM_STATUS_MAX)
		atomic_fetch_add_explicit(&c->tenant->stats.dir_status[kind][r->status], 1,
					  memory_order_relaxed);
}

static bool is_json_type(const char *v)
{
	return v && strncasecmp(v, "application/json", 16) == 0 &&
	       (v[16] == '\0' || v[16] == ';' || v[16] == ' ');
}

void sim_dir_request(struct sim *s, const char *url_tenant, const char *authorization,
		     const char *method, const char *path, const char *filter,
		     const char *select, const char *content_type, const char *body, size_t len,
		     struct reply *r)
{
	struct sim_caller c;
	json_t *doc = NULL;

	r->delay = true;
	if (sim_check_auth(s, url_tenant, authorization, r, &c) < 0)
		return;
	if (strcasecmp(method, "POST") == 0) {
		if (!is_json_type(content_type)) {
			sim_error_reply(r, 415, "UnsupportedMediaType",
					"The Content-Type header must be application/json.");
			return;
		}
		doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
		if (!doc) {
			sim_error_reply(r, 400, "BadRequest",
					"Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.");
			return;
		}
	}
	route(s, &c, method, path, filter, select, doc, r);
	json_decref(doc);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decodes [p, p+n) ('+' is a space in a query); NULL on a bad
 * escape, a NUL or no memory. */
static char *decode(const char *p, size_t n, bool query)
{
	char *out = malloc(n + 1);
	size_t k = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		if (ch == '%') {
			int a = i + 1 < n ? hexval(p[i + 1]) : -1;
			int b = i + 2 < n ? hexval(p[i + 2]) : -1;
			if (a < 0 || b < 0 || (a == 0 && b == 0)) {
				free(out);
				return NULL;
			}
			out[k++] = (char)(a * 16 + b);
			i += 2;
		} else if (ch == '+' && query) {
			out[k++] = ' ';
		} else {
			out[k++] = ch;
		}
	}
	out[k] = '\0';
	return out;
}

void sim_dir_batch_item(struct sim *s, const struct sim_caller *c, const char *method,
			const char *url, void *json_body, struct reply *r)
{
	char *path = NULL, *filter = NULL, *select = NULL;
	const char *q = strchr(url, '?');
	size_t plen = q ? (size_t)(q - url) : strlen(url);
	bool bad = false;

	if (url[0] != '/') { /* "users/..." as relative URLs are allowed */
		path = malloc(plen + 2);
		if (path) {
			path[0] = '/';
			char *d = decode(url, plen, false);
			if (d) {
				snprintf(path + 1, plen + 1, "%s", d);
				free(d);
			} else {
				bad = true;
			}
		}
	} else {
		path = decode(url, plen, false);
		bad = !path;
	}
	for (const char *p = q ? q + 1 : NULL; p && *p && !bad;) {
		const char *amp = strchr(p, '&');
		size_t n = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', n);
		if (eq) {
			char *k = decode(p, (size_t)(eq - p), true);
			char *v = decode(eq + 1, n - (size_t)(eq + 1 - p), true);
			if (!k || !v) {
				bad = true;
			} else if (strcmp(k, "$filter") == 0) {
				free(filter);
				filter = v, v = NULL;
			} else if (strcmp(k, "$select") == 0) {
				free(select);
				select = v, v = NULL;
			}
			free(k);
			free(v);
		}
		p = amp ? amp + 1 : NULL;
	}
	if (bad || !path)
		sim_error_reply(r, 400, "BadRequest", "The request URL is not valid percent-encoding.");
	else
		route(s, c, method, path, filter, select, json_body, r);
	free(path);
	free(filter);
	free(select);
}

/* ---- /sim/members, /sim/mail, /sim/users ---- */

static int log_array(struct buf *b, const struct buf *log, bool *first)
{
	int r = 0;
	const char *p = log->data;
	const char *end = log->data ? log->data + log->len : NULL;
	while (p && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (!*first)
			r |= buf_append_str(b, ",");
		*first = false;
		r |= buf_append(b, p, n);
		p += n + 1;
	}
	return r;
}

void sim_dir_sim_request(struct sim *s, const char *what, const char *tenant, struct reply *r)
{
	struct buf b = BUF_INIT;
	int err = 0;
	bool first = true, full = false;
	char msg[SIM_TENANT_MAX + 64];

	struct sim_tenant *only = NULL;
	if (tenant) {
		only = sim_tenant_by_name(s, tenant);
		if (!only) {
			snprintf(msg, sizeof(msg), "The simulator has no tenant '%.256s'.", tenant);
			sim_error_reply(r, 404, "NotFound", msg);
			return;
		}
	}
	err |= buf_printf(&b, "{\"%s\":[", what);
	for (size_t i = 0; i < s->n_tenants; i++) {
		struct sim_tenant *t = &s->tenants[i];
		struct sim_dir *d = t->dir;
		if ((only && t != only) || !d)
			continue;
		pthread_mutex_lock(&d->lock);
		if (strcmp(what, "mail") == 0) {
			err |= log_array(&b, &d->mail_log, &first);
			full = full || d->mail_log_full;
		} else if (strcmp(what, "members") == 0) {
			err |= log_array(&b, &d->member_log, &first);
			full = full || d->member_log_full;
		} else {
			uint64_t now = time_mono_ms();
			for (size_t k = 0; k < d->n_users; k++) {
				struct dir_user *u = &d->users[k];
				settle(u, now);
				if (!first)
					err |= buf_append_str(&b, ",");
				first = false;
				err |= buf_append_str(&b, "{");
				err |= jsonout_member(&b, "tenant", t->name, 1);
				err |= buf_printf(&b, ",\"readable\":%s,",
						  readable(s, u, now) ? "true" : "false");
				struct buf one = BUF_INIT;
				err |= user_json(&one, u, P_ID | P_USER_TYPE | P_MAIL | P_EXT_STATE |
								 P_EXT_CHANGED,
						 t->name ? t->name : "sim");
				if (one.data)
					err |= buf_append(&b, one.data + 1, one.len - 1);
				buf_finish(&one);
			}
		}
		pthread_mutex_unlock(&d->lock);
	}
	err |= buf_printf(&b, "],\"truncated\":%s}", full ? "true" : "false");
	reply_text(r, 200, &b, err);
}

/* ---- settings ---- */

void sim_dir_config_free(struct sim_dir_config *c)
{
	free(c->member_pattern);
	free(c->guest_pattern);
	free(c->directory_file);
	free_list(c->groups, c->n_groups);
	free_list(c->refusing_groups, c->n_refusing_groups);
	free_list(c->refusing_mailboxes, c->n_refusing_mailboxes);
	memset(c, 0, sizeof(*c));
}

void sim_dir_config_take(struct sim_dir_config *dst, struct sim_dir_config *src)
{
	*dst = *src;
	memset(src, 0, sizeof(*src));
}

static const char *const json_keys[] = {
	"seed_members",   "seed_guests",	   "member_pattern",	 "guest_pattern",
	"directory",	  "groups",		   "guest_refusing_groups", "refusing_mailboxes",
	"read_rate",	  "read_period_ms",	   "mail_rate",		 "mail_period_ms",
	NULL,
};

bool sim_dir_json_key(const char *key)
{
	for (const char *const *p = json_keys; *p; p++)
		if (strcmp(key, *p) == 0)
			return true;
	return false;
}

static const char *json_list(json_t *o, const char *key, char ***list, size_t *n)
{
	json_t *v = json_object_get(o, key);
	size_t i;
	json_t *e;
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_array(v) || json_array_size(v) > DIR_LIST_MAX)
		return "not an array of at most 1024 strings";
	json_array_foreach(v, i, e) {
		if (!json_is_string(e) || json_string_length(e) == 0 ||
		    json_string_length(e) > ADDRESS_MAX)
			return "not an array of non-empty strings of at most 320 bytes";
		char **nv = realloc(*list, (*n + 1) * sizeof(*nv));
		if (!nv)
			return "out of memory";
		*list = nv;
		nv[*n] = strdup(json_string_value(e));
		if (!nv[*n])
			return "out of memory";
		lower_in_place(nv[*n]);
		(*n)++;
	}
	return NULL;
}

/* A non-empty string member, copied (owned by the caller). */
static const char *json_text(json_t *o, const char *key, char **ret)
{
	const char *v, *why = sim_json_string(o, key, &v);
	if (why || !v)
		return why;
	*ret = strdup(v);
	return *ret ? NULL : "out of memory";
}

const char *sim_dir_config_from_json(void *json_object, struct sim_dir_config *c, const char **key)
{
	json_t *o = json_object;
	const char *why;
	double d;
#define STEP(name, expr)            \
	do {                        \
		*key = name;        \
		why = (expr);       \
		if (why)            \
			return why; \
	} while (0)
	d = 0;
	STEP("seed_members", sim_json_number(o, "seed_members", 0, SEED_MAX, &d));
	c->seed_members = (uint64_t)d;
	d = 0;
	STEP("seed_guests", sim_json_number(o, "seed_guests", 0, SEED_MAX, &d));
	c->seed_guests = (uint64_t)d;
	STEP("member_pattern", json_text(o, "member_pattern", &c->member_pattern));
	STEP("guest_pattern", json_text(o, "guest_pattern", &c->guest_pattern));
	STEP("directory", json_text(o, "directory", &c->directory_file));
	STEP("groups", json_list(o, "groups", &c->groups, &c->n_groups));
	STEP("guest_refusing_groups",
	     json_list(o, "guest_refusing_groups", &c->refusing_groups, &c->n_refusing_groups));
	STEP("refusing_mailboxes",
	     json_list(o, "refusing_mailboxes", &c->refusing_mailboxes, &c->n_refusing_mailboxes));
	STEP("read_rate", sim_json_number(o, "read_rate", 0, 1e9, &c->read_rate));
	d = 1000;
	STEP("read_period_ms", sim_json_number(o, "read_period_ms", 1, 86400e3, &d));
	c->read_period_s = d / 1000.0;
	STEP("mail_rate", sim_json_number(o, "mail_rate", 0, 1e9, &c->mail_rate));
	d = 1000;
	STEP("mail_period_ms", sim_json_number(o, "mail_period_ms", 1, 86400e3, &d));
	c->mail_period_s = d / 1000.0;
#undef STEP
	*key = NULL;
	return NULL;
}

/* ---- building the directories ---- */

/* pattern with "{n}" replaced by n. 0, -EINVAL (no {n}) or -ENOMEM. */
static int expand(const char *pattern, uint64_t n, struct buf *out)
{
	const char *at = strstr(pattern, "{n}");
	buf_clear(out);
	if (!at)
		return -EINVAL;
	int r = buf_append(out, pattern, (size_t)(at - pattern));
	r |= buf_printf(out, "%llu", (unsigned long long)n);
	r |= buf_append_str(out, at + 3);
	return r;
}

static int seed(struct sim *s, struct sim_tenant *t, const char *pattern, uint64_t first,
		uint64_t count, bool guest)
{
	struct buf a = BUF_INIT;
	int r = 0;
	for (uint64_t i = 0; i < count; i++) {
		struct dir_user *u;
		r = expand(pattern, first + i, &a);
		if (r < 0)
			break;
		if (validate_email(a.data)) {
			r = -EINVAL;
			break;
		}
		r = user_add(t->dir, a.data, NULL, guest, guest ? EXT_PENDING : EXT_NONE, true,
			     s->start_ms, &u);
		if (r == -EEXIST) {
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		plan_acceptance(s, u, s->start_ms);
	}
	if (r < 0)
		log_error("Failed to seed tenant %s's %s from '%s': %s", t->name ? t->name : "*",
			  guest ? "guests" : "members", pattern,
			  r == -EINVAL ? "the pattern needs {n} and must make addresses"
				       : strerror(-r));
	buf_finish(&a);
	return r;
}

/* --directory FILE: [{"mail","userType","externalUserState"}, ...] */
static int load_directory(struct sim *s, struct sim_tenant *t, const char *path)
{
	json_error_t jerr;
	struct stat st;
	int r = -EINVAL;
	json_t *doc = NULL;
	const char *why = NULL;
	size_t i = 0;
	json_t *e;

	if (stat(path, &st) < 0) {
		r = -errno;
		log_error("Failed to read --directory '%s': %s", path, strerror(-r));
		return r;
	}
	if (st.st_size > DIRECTORY_FILE_MAX) {
		log_error("Failed to read --directory '%s': larger than 64 MiB", path);
		return -EFBIG;
	}
	doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		log_error("Failed to read --directory '%s': line %d: %s", path, jerr.line, jerr.text);
		return -EINVAL;
	}
	if (!json_is_array(doc)) {
		why = "not a JSON array";
		goto out;
	}
	json_array_foreach(doc, i, e) {
		const char *k;
		json_t *v;
		if (!json_is_object(e)) {
			why = "not an object";
			goto out;
		}
		json_object_foreach(e, k, v) {
			if (strcmp(k, "mail") && strcmp(k, "userType") && strcmp(k, "externalUserState") &&
			    strcmp(k, "id")) {
				why = "unknown key (mail, userType, externalUserState, id)";
				goto out;
			}
		}
		const char *mail = json_string_value(json_object_get(e, "mail"));
		const char *type = json_string_value(json_object_get(e, "userType"));
		json_t *state = json_object_get(e, "externalUserState");
		json_t *id = json_object_get(e, "id");
		if (!mail || validate_email(mail) || strlen(mail) > ADDRESS_MAX) {
			why = "mail is not an address";
			goto out;
		}
		if (!type || (strcmp(type, "Member") && strcmp(type, "Guest"))) {
			why = "userType is not Member or Guest";
			goto out;
		}
		enum ext_state es = EXT_NONE;
		if (state && !json_is_null(state)) {
			const char *sv = json_string_value(state);
			if (sv && strcmp(sv, "PendingAcceptance") == 0)
				es = EXT_PENDING;
			else if (sv && strcmp(sv, "Accepted") == 0)
				es = EXT_ACCEPTED;
			else {
				why = "externalUserState is not null, PendingAcceptance or Accepted";
				goto out;
			}
		} else if (!state && strcmp(type, "Guest") == 0) {
			es = EXT_PENDING;
		}
		if (id && (!json_is_string(id) || json_string_length(id) != RNG_UUID_LEN)) {
			why = "id is not a GUID";
			goto out;
		}
		struct dir_user *u;
		int rr = user_add(t->dir, mail, json_string_value(id), strcmp(type, "Guest") == 0, es,
				  true, s->start_ms, &u);
		if (rr == -EEXIST) {
			why = "the address or id comes earlier";
			goto out;
		}
		if (rr < 0) {
			why = "out of memory";
			goto out;
		}
		plan_acceptance(s, u, s->start_ms);
	}
	r = 0;
out:
	if (why)
		log_error("Failed to read --directory '%s': element %zu: %s", path, i + 1, why);
	json_decref(doc);
	return r;
}

static int open_record(const char *path, int *fd)
{
	*fd = -1;
	if (!path)
		return 0;
	*fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (*fd < 0) {
		int r = -errno;
		log_error("Failed to open record file '%s': %s", path, strerror(-r));
		return r;
	}
	return 0;
}

int sim_dir_init(struct sim *s)
{
	int r;
	s->members_fd = -1;
	s->mail_fd = -1;
	s->dir_ready = true;
	r = open_record(s->cfg.members_record_path, &s->members_fd);
	if (r < 0)
		return r;
	r = open_record(s->cfg.mail_record_path, &s->mail_fd);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s->n_tenants; i++) {
		struct sim_tenant *t = &s->tenants[i];
		struct sim_dir_config *c = &t->dirc;
		struct sim_dir *d = calloc(1, sizeof(*d));
		if (!d)
			return -ENOMEM;
		pthread_mutex_init(&d->lock, NULL);
		buf_init(&d->mail_log);
		buf_init(&d->member_log);
		bucket_start(&d->read, c->read_rate, c->read_period_s);
		bucket_start(&d->mail, c->mail_rate, c->mail_period_s);
		t->dir = d;
		r = seed(s, t, c->member_pattern ? c->member_pattern : PATTERN_DEFAULT_MEMBER, 1,
			 c->seed_members, false);
		if (r < 0)
			return r;
		r = seed(s, t, c->guest_pattern ? c->guest_pattern : PATTERN_DEFAULT_GUEST,
			 c->seed_members + 1, c->seed_guests, true);
		if (r < 0)
			return r;
		if (c->directory_file) {
			r = load_directory(s, t, c->directory_file);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static void dir_free(struct sim_dir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_users; i++) {
		free(d->users[i].mail);
		free(d->users[i].lower);
	}
	free(d->users);
	for (size_t i = 0; i < d->n_members; i++)
		free(d->members[i].key);
	free(d->members);
	free(d->by_mail.slots);
	free(d->by_id.slots);
	free(d->by_member.slots);
	buf_finish(&d->mail_log);
	buf_finish(&d->member_log);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

void sim_dir_finish(struct sim *s)
{
	sim_dir_config_free(&s->cfg.dir);
	if (!s->dir_ready)
		return;
	for (size_t i = 0; s->tenants && i < s->n_tenants; i++) {
		dir_free(s->tenants[i].dir);
		s->tenants[i].dir = NULL;
	}
	if (s->members_fd >= 0)
		close(s->members_fd);
	if (s->mail_fd >= 0)
		close(s->mail_fd);
	s->members_fd = s->mail_fd = -1;
	s->dir_ready = false;
}
