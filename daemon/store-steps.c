/* SPDX-License-Identifier: MIT */
/* store-steps: a row's way past its invitation (SPEC §8, schema/0006): the
 * group additions and resends in the steps table, and the acceptance
 * tracking of rows.track_next_at. Claims lease what they return (next_at
 * moved past the lease, in one transaction); outcomes are queued and written
 * by store_flush (store-rows.c) with the rows' results. */
#include "store-private.h"

#include <stdlib.h>

void store_step_free(struct store_step *st)
{
	if (!st)
		return;
	free(st->arg);
	free(st->user_id);
	free(st);
}

/* One claim of SPEC §8's work: its select (ST_CLAIM_*: ?1 tenant, ?2 now,
 * ?3 limit, ?4 kind), how one row of it becomes item i of the caller's array
 * (1 taken, 0 left out, <0 error) and how item i is leased. */
struct leased_claim {
	int select;
	int kind; /* ?4; 0: the select has none */
	int (*read)(struct store *s, sqlite3_stmt *sel, void *items, size_t i);
	int (*lease)(struct store *s, void *items, size_t i, uint64_t until_ms);
};

/* Read up to limit due items into items and lease them, in one
 * transaction. *ret_n: items read (the caller frees them, on failure too). */
static int claim_leased(struct store *s, const struct leased_claim *c, int64_t tenant_id,
			uint64_t now_ms, uint64_t lease_ms, size_t limit, void *items, size_t *ret_n)
{
	sqlite3_stmt *sel = s->stmt[c->select];
	size_t n = 0;
	int rc = SQLITE_DONE;
	*ret_n = 0;
	int r = begin(s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(sel, 1, tenant_id);
	sqlite3_bind_int64(sel, 2, (sqlite3_int64)now_ms);
	sqlite3_bind_int64(sel, 3, (sqlite3_int64)limit);
	if (c->kind)
		sqlite3_bind_int(sel, 4, c->kind);
	while (r == 0 && n < limit && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
		int taken = c->read(s, sel, items, n);
		if (taken < 0)
			r = taken;
		else
			n += (size_t)taken;
	}
	if (r == 0 && n < limit && rc != SQLITE_DONE)
		r = sqlite_errno(rc);
	sqlite3_reset(sel);
	for (size_t i = 0; i < n && r == 0; i++)
		r = c->lease(s, items, i, now_ms + lease_ms);
	if (r == 0)
		r = commit(s);
	else
		rollback(s);
	*ret_n = n;
	return r;
}

/* A step leased: ?1 row, ?2 kind, ?3 arg, ?4 the lease's end. */
static int lease_step(struct store *s, int64_t row_id, int kind, const char *arg, uint64_t until)
{
	sqlite3_stmt *lease = s->stmt[ST_STEP_LEASE];
	sqlite3_bind_int64(lease, 1, row_id);
	sqlite3_bind_int(lease, 2, kind);
	sqlite3_bind_text(lease, 3, arg, -1, SQLITE_STATIC);
	sqlite3_bind_int64(lease, 4, (sqlite3_int64)until);
	return step_done(lease);
}

static int read_step(struct store *s, sqlite3_stmt *sel, void *items, size_t i)
{
	(void)s;
	struct store_step *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	((struct store_step **)items)[i] = st;
	st->row_id = sqlite3_column_int64(sel, 0);
	st->job_id = sqlite3_column_int64(sel, 1);
	st->arg = strdup(col_text(sel, 2) ? col_text(sel, 2) : "");
	st->attempts = (unsigned)sqlite3_column_int(sel, 3);
	st->first_at = (uint64_t)sqlite3_column_int64(sel, 4);
	st->user_id = dup_col(sel, 5);
	st->line = (unsigned)sqlite3_column_int(sel, 6);
	st->kind = sqlite3_column_int(sel, 7);
	return st->arg ? 1 : -ENOMEM;
}

static int lease_step_item(struct store *s, void *items, size_t i, uint64_t until)
{
	const struct store_step *st = ((struct store_step **)items)[i];
	return lease_step(s, st->row_id, st->kind, st->arg, until);
}

int store_steps_claim(struct store *s, int64_t tenant_id, int kind, uint64_t now_ms,
		      uint64_t lease_ms, size_t limit, struct store_step ***ret, size_t *ret_n)
{
	static const struct leased_claim claim = {ST_CLAIM_STEPS, 0, read_step, lease_step_item};
	struct leased_claim c = claim;
	c.kind = kind;
	size_t n = 0;
	*ret = NULL;
	*ret_n = 0;
	if (limit == 0)
		return 0;
	struct store_step **v = calloc(limit, sizeof(*v));
	int r = v ? claim_leased(s, &c, tenant_id, now_ms, lease_ms, limit, v, &n) : -ENOMEM;
	if (r < 0 || n == 0) {
		for (size_t i = 0; v && i < limit; i++)
			store_step_free(v[i]); /* a failed read leaves its item too */
		free(v);
		return r < 0 ? r : 0;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

static int next_due(struct store *s, int st_id, int64_t tenant_id, int kind, uint64_t *ret_ms)
{
	sqlite3_stmt *st = s->stmt[st_id];
	int r = 0;
	sqlite3_bind_int64(st, 1, tenant_id);
	if (kind)
		sqlite3_bind_int(st, 2, kind);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*ret_ms = (uint64_t)sqlite3_column_int64(st, 0);
		r = 1;
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		r = sqlite_errno(rc);
	}
	sqlite3_reset(st);
	return r;
}

int store_steps_next_due(struct store *s, int64_t tenant_id, int kind, uint64_t *ret_ms)
{
	return next_due(s, ST_STEPS_NEXT_DUE, tenant_id, kind, ret_ms);
}

int store_step_finish(struct store *s, int64_t row_id, int kind, const char *arg, int state,
		      unsigned attempts, uint64_t next_at, const char *error, const char *redeem_url)
{
	if (s->steps_len == s->steps_cap) {
		size_t cap = s->steps_cap ? s->steps_cap * 2 : 64;
		struct step_result *q = realloc(s->steps_q, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		s->steps_q = q;
		s->steps_cap = cap;
	}
	struct step_result sr = {.row_id = row_id, .kind = kind, .state = state,
				 .attempts = attempts, .next_at = next_at};
	sr.arg = strdup(arg ? arg : "");
	sr.error = error ? strdup(error) : NULL;
	sr.redeem_url = redeem_url ? strdup(redeem_url) : NULL;
	if (!sr.arg || (error && !sr.error) || (redeem_url && !sr.redeem_url)) {
		free(sr.arg);
		free(sr.error);
		free(sr.redeem_url);
		return -ENOMEM;
	}
	s->steps_q[s->steps_len++] = sr;
	return 0;
}

static int read_resend(struct store *s, sqlite3_stmt *sel, void *items, size_t i)
{
	(void)s;
	struct store_claim *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	((struct store_claim **)items)[i] = c;
	c->row_id = sqlite3_column_int64(sel, 0);
	c->job_id = sqlite3_column_int64(sel, 1);
	c->line = (unsigned)sqlite3_column_int64(sel, 2);
	c->attempts = (unsigned)sqlite3_column_int64(sel, 3);
	c->email = dup_col(sel, 4);
	c->display_name = dup_col(sel, 5);
	c->redirect_url = dup_col(sel, 6);
	c->send_email = true;
	c->message = dup_col(sel, 8);
	c->language = dup_col(sel, 9);
	c->cc = dup_col(sel, 10);
	c->resend = true;
	c->own_mail = sqlite3_column_int(sel, 11) != 0;
	return c->email && c->redirect_url ? 1 : -ENOMEM;
}

static int lease_resend(struct store *s, void *items, size_t i, uint64_t until)
{
	return lease_step(s, ((struct store_claim **)items)[i]->row_id, STEP_RESEND, "", until);
}

int store_resends_claim(struct store *s, int64_t tenant_id, uint64_t now_ms, uint64_t lease_ms,
			size_t limit, struct store_claim ***ret_claims, size_t *ret_n)
{
	static const struct leased_claim c = {ST_CLAIM_RESENDS, STEP_RESEND, read_resend,
					       lease_resend};
	size_t n = 0;
	*ret_claims = NULL;
	*ret_n = 0;
	if (limit == 0)
		return 0;
	struct store_claim **v = calloc(limit, sizeof(*v));
	int r = v ? claim_leased(s, &c, tenant_id, now_ms, lease_ms, limit, v, &n) : -ENOMEM;
	if (r < 0 || n == 0) {
		for (size_t i = 0; v && i < limit; i++)
			store_claim_free(v[i]);
		free(v);
		return r < 0 ? r : 0;
	}
	*ret_claims = v;
	*ret_n = n;
	return 0;
}

void store_track_free(struct store_track *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].user_id);
	free(v);
}

static int read_track(struct store *s, sqlite3_stmt *sel, void *items, size_t i)
{
	struct store_track *t = &((struct store_track *)items)[i];
	if (sqlite3_column_type(sel, 2) == SQLITE_NULL) {
		/* nothing to read it by: tracking ends for it */
		sqlite3_stmt *lease = s->stmt[ST_TRACK_LEASE];
		sqlite3_bind_int64(lease, 1, sqlite3_column_int64(sel, 0));
		sqlite3_bind_null(lease, 2);
		int r = step_done(lease);
		return r < 0 ? r : 0;
	}
	t->row_id = sqlite3_column_int64(sel, 0);
	t->job_id = sqlite3_column_int64(sel, 1);
	t->user_id = dup_col(sel, 2);
	t->invited_at = (uint64_t)sqlite3_column_int64(sel, 3);
	t->track_days = (unsigned)sqlite3_column_int(sel, 4);
	return t->user_id ? 1 : -ENOMEM;
}

static int lease_track(struct store *s, void *items, size_t i, uint64_t until)
{
	sqlite3_stmt *lease = s->stmt[ST_TRACK_LEASE];
	sqlite3_bind_int64(lease, 1, ((struct store_track *)items)[i].row_id);
	sqlite3_bind_int64(lease, 2, (sqlite3_int64)until);
	return step_done(lease);
}

int store_track_claim(struct store *s, int64_t tenant_id, uint64_t now_ms, uint64_t lease_ms,
		      size_t limit, struct store_track **ret, size_t *ret_n)
{
	static const struct leased_claim c = {ST_CLAIM_TRACK, 0, read_track, lease_track};
	size_t n = 0;
	*ret = NULL;
	*ret_n = 0;
	if (limit == 0)
		return 0;
	struct store_track *v = calloc(limit, sizeof(*v));
	int r = v ? claim_leased(s, &c, tenant_id, now_ms, lease_ms, limit, v, &n) : -ENOMEM;
	if (r < 0 || n == 0) {
		store_track_free(v, v ? limit : 0);
		return r < 0 ? r : 0;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int store_track_next_due(struct store *s, int64_t tenant_id, uint64_t *ret_ms)
{
	return next_due(s, ST_TRACK_NEXT_DUE, tenant_id, 0, ret_ms);
}


int store_track_finish(struct store *s, int64_t row_id, int64_t job_id, uint64_t accepted_ms,
		       uint64_t next_ms)
{
	if (s->track_len == s->track_cap) {
		size_t cap = s->track_cap ? s->track_cap * 2 : 64;
		struct track_result *q = realloc(s->track_q, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		s->track_q = q;
		s->track_cap = cap;
	}
	s->track_q[s->track_len++] =
		(struct track_result){.row_id = row_id, .job_id = job_id,
				      .accepted_ms = accepted_ms, .next_ms = next_ms};
	return 0;
}

void store_mails_free(struct store_mail *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].email);
		free(v[i].display_name);
		free(v[i].redeem_url);
		free(v[i].message);
		free(v[i].inviter);
	}
	free(v);
}

static int read_mail(struct store *s, sqlite3_stmt *sel, void *items, size_t i)
{
	(void)s;
	struct store_mail *m = &((struct store_mail *)items)[i];
	m->row_id = sqlite3_column_int64(sel, 0);
	m->job_id = sqlite3_column_int64(sel, 1);
	m->line = (unsigned)sqlite3_column_int(sel, 2);
	m->attempts = (unsigned)sqlite3_column_int(sel, 3);
	m->first_at = (uint64_t)sqlite3_column_int64(sel, 4);
	m->email = dup_col(sel, 5);
	m->display_name = dup_col(sel, 6);
	m->redeem_url = dup_col(sel, 7);
	m->message = dup_col(sel, 8);
	m->inviter = dup_col(sel, 9);
	return m->email && m->redeem_url ? 1 : -ENOMEM;
}

static int lease_mail(struct store *s, void *items, size_t i, uint64_t until)
{
	return lease_step(s, ((struct store_mail *)items)[i].row_id, STEP_MAIL, "", until);
}

int store_mails_claim(struct store *s, int64_t tenant_id, uint64_t now_ms, uint64_t lease_ms,
		      size_t limit, struct store_mail **ret, size_t *ret_n)
{
	static const struct leased_claim c = {ST_CLAIM_MAILS, STEP_MAIL, read_mail, lease_mail};
	size_t n = 0;
	*ret = NULL;
	*ret_n = 0;
	if (limit == 0)
		return 0;
	struct store_mail *v = calloc(limit, sizeof(*v));
	int r = v ? claim_leased(s, &c, tenant_id, now_ms, lease_ms, limit, v, &n) : -ENOMEM;
	if (r < 0 || n == 0) {
		store_mails_free(v, v ? limit : 0);
		return r < 0 ? r : 0;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int store_mail_finish(struct store *s, int64_t row_id, int state, unsigned attempts,
		      uint64_t next_at, const char *error, const char *mailbox)
{
	/* the mailbox rides in the redeem_url slot (store-private.h) */
	return store_step_finish(s, row_id, STEP_MAIL, "", state, attempts, next_at, error,
				 state == STEP_DONE ? mailbox : NULL);
}

int store_mail_sent(struct store *s, const char *mailbox, uint64_t since_ms, uint64_t *ret_count,
		    uint64_t *ret_oldest)
{
	sqlite3_stmt *st = s->stmt[ST_MAIL_SENT];
	int r = 0;
	*ret_count = 0;
	*ret_oldest = 0;
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)since_ms);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_count = (uint64_t)sqlite3_column_int64(st, 0);
		*ret_oldest = (uint64_t)sqlite3_column_int64(st, 1);
	} else {
		r = sqlite_errno(rc);
	}
	sqlite3_reset(st);
	/* what has left the window is not needed any more (best effort) */
	if (r == 0) {
		st = s->stmt[ST_MAIL_LOG_PRUNE];
		sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)since_ms);
		step_done(st);
	}
	return r;
}
