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

/* Lease what a claim read: ?1 row, ?2 kind, ?3 arg, ?4 the lease's end. */
static int lease_step(struct store *s, sqlite3_stmt *lease, int64_t row_id, int kind,
		      const char *arg, uint64_t until)
{
	sqlite3_bind_int64(lease, 1, row_id);
	sqlite3_bind_int(lease, 2, kind);
	sqlite3_bind_text(lease, 3, arg, -1, SQLITE_STATIC);
	sqlite3_bind_int64(lease, 4, (sqlite3_int64)until);
	return step_done(lease);
}

static int prepare(struct store *s, const char *sql, sqlite3_stmt **ret)
{
	return sqlite_errno(sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, ret, NULL));
}

static const char lease_sql[] =
	"UPDATE steps SET next_at = ?4 WHERE row_id = ?1 AND kind = ?2 AND arg = ?3";

int store_steps_claim(struct store *s, int64_t tenant_id, int kind, uint64_t now_ms,
		      uint64_t lease_ms, size_t limit, struct store_step ***ret, size_t *ret_n)
{
	sqlite3_stmt *sel = NULL, *lease = NULL;
	struct store_step **v = NULL;
	size_t n = 0;
	int rc;
	*ret = NULL;
	*ret_n = 0;
	if (limit == 0)
		return 0;
	v = calloc(limit, sizeof(*v));
	int r = v ? begin(s) : -ENOMEM;
	if (r < 0)
		goto out;
	/* steps of paused jobs wait; a cancelled job's were given up */
	r = prepare(s,
		    "SELECT st.row_id, st.job_id, st.arg, st.attempts, st.first_at, r.invited_user_id,"
		    " r.line FROM steps st JOIN rows r ON r.id = st.row_id"
		    " JOIN jobs j ON j.id = st.job_id"
		    " WHERE st.tenant_id = ?1 AND st.kind = ?2 AND st.state = 0 AND st.next_at <= ?3"
		    " AND j.state IN (0, 1, 4) ORDER BY st.next_at LIMIT ?4",
		    &sel);
	if (r == 0)
		r = prepare(s, lease_sql, &lease);
	if (r < 0)
		goto out;
	sqlite3_bind_int64(sel, 1, tenant_id);
	sqlite3_bind_int(sel, 2, kind);
	sqlite3_bind_int64(sel, 3, (sqlite3_int64)now_ms);
	sqlite3_bind_int64(sel, 4, (sqlite3_int64)limit);
	while (n < limit && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
		struct store_step *st = calloc(1, sizeof(*st));
		if (!st) {
			r = -ENOMEM;
			goto out;
		}
		v[n++] = st;
		st->row_id = sqlite3_column_int64(sel, 0);
		st->job_id = sqlite3_column_int64(sel, 1);
		st->kind = kind;
		st->arg = strdup(col_text(sel, 2) ? col_text(sel, 2) : "");
		st->attempts = (unsigned)sqlite3_column_int(sel, 3);
		st->first_at = (uint64_t)sqlite3_column_int64(sel, 4);
		st->user_id = dup_col(sel, 5);
		st->line = (unsigned)sqlite3_column_int(sel, 6);
		if (!st->arg) {
			r = -ENOMEM;
			goto out;
		}
	}
	if (n < limit && rc != SQLITE_DONE) {
		r = sqlite_errno(rc);
		goto out;
	}
	sqlite3_reset(sel);
	for (size_t i = 0; i < n && r == 0; i++)
		r = lease_step(s, lease, v[i]->row_id, kind, v[i]->arg, now_ms + lease_ms);
	if (r == 0)
		r = commit(s);
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(lease);
	if (r < 0) {
		rollback(s);
		for (size_t i = 0; i < n; i++)
			store_step_free(v[i]);
		free(v);
		return r;
	}
	if (n == 0) {
		free(v);
		v = NULL;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

static int next_due(struct store *s, const char *sql, int64_t tenant_id, int kind,
		    uint64_t *ret_ms)
{
	sqlite3_stmt *st = NULL;
	int r = prepare(s, sql, &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, tenant_id);
	sqlite3_bind_int(st, 2, kind);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*ret_ms = (uint64_t)sqlite3_column_int64(st, 0);
		r = 1;
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		r = sqlite_errno(rc);
	}
	sqlite3_finalize(st);
	return r;
}

int store_steps_next_due(struct store *s, int64_t tenant_id, int kind, uint64_t *ret_ms)
{
	return next_due(s,
			"SELECT MIN(st.next_at) FROM steps st JOIN jobs j ON j.id = st.job_id"
			" WHERE st.tenant_id = ?1 AND st.kind = ?2 AND st.state = 0"
			" AND j.state IN (0, 1, 4)",
			tenant_id, kind, ret_ms);
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

int store_resends_claim(struct store *s, int64_t tenant_id, uint64_t now_ms, uint64_t lease_ms,
			size_t limit, struct store_claim ***ret_claims, size_t *ret_n)
{
	sqlite3_stmt *sel = NULL, *lease = NULL;
	struct store_claim **v = NULL;
	size_t n = 0;
	int rc;
	*ret_claims = NULL;
	*ret_n = 0;
	if (limit == 0)
		return 0;
	v = calloc(limit, sizeof(*v));
	int r = v ? begin(s) : -ENOMEM;
	if (r < 0)
		goto out;
	/* a resend sends the invitation mail again: send_email on */
	r = prepare(s,
		    "SELECT r.id, r.job_id, r.line, st.attempts, r.email, r.display_name,"
		    " COALESCE(r.redirect_url, j.redirect_url), 1,"
		    " COALESCE(r.message, j.message), j.language, j.cc"
		    " FROM steps st JOIN rows r ON r.id = st.row_id JOIN jobs j ON j.id = st.job_id"
		    " WHERE st.tenant_id = ?1 AND st.kind = 2 AND st.state = 0 AND st.next_at <= ?2"
		    " AND j.state IN (0, 1, 4) ORDER BY st.next_at LIMIT ?3",
		    &sel);
	if (r == 0)
		r = prepare(s, lease_sql, &lease);
	if (r < 0)
		goto out;
	sqlite3_bind_int64(sel, 1, tenant_id);
	sqlite3_bind_int64(sel, 2, (sqlite3_int64)now_ms);
	sqlite3_bind_int64(sel, 3, (sqlite3_int64)limit);
	while (n < limit && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
		struct store_claim *c = calloc(1, sizeof(*c));
		if (!c) {
			r = -ENOMEM;
			goto out;
		}
		v[n++] = c;
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
		if (!c->email || !c->redirect_url) {
			r = -ENOMEM;
			goto out;
		}
	}
	if (n < limit && rc != SQLITE_DONE) {
		r = sqlite_errno(rc);
		goto out;
	}
	sqlite3_reset(sel);
	for (size_t i = 0; i < n && r == 0; i++)
		r = lease_step(s, lease, v[i]->row_id, STEP_RESEND, "", now_ms + lease_ms);
	if (r == 0)
		r = commit(s);
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(lease);
	if (r < 0) {
		rollback(s);
		for (size_t i = 0; i < n; i++)
			store_claim_free(v[i]);
		free(v);
		return r;
	}
	if (n == 0) {
		free(v);
		v = NULL;
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

int store_track_claim(struct store *s, int64_t tenant_id, uint64_t now_ms, uint64_t lease_ms,
		      size_t limit, struct store_track **ret, size_t *ret_n)
{
	sqlite3_stmt *sel = NULL, *lease = NULL;
	struct store_track *v = NULL;
	size_t n = 0;
	int rc;
	*ret = NULL;
	*ret_n = 0;
	if (limit == 0)
		return 0;
	v = calloc(limit, sizeof(*v));
	int r = v ? begin(s) : -ENOMEM;
	if (r < 0)
		goto out;
	/* the rows_track index holds only tracked rows; a paused job's wait */
	r = prepare(s,
		    "SELECT r.id, r.job_id, r.invited_user_id, COALESCE(r.invited_at, r.updated_at),"
		    " j.track_days FROM rows r INDEXED BY rows_track JOIN jobs j ON j.id = r.job_id"
		    " WHERE r.track_next_at IS NOT NULL AND r.track_next_at <= ?2"
		    " AND j.tenant_id = ?1 AND j.state <> 2 ORDER BY r.track_next_at LIMIT ?3",
		    &sel);
	if (r == 0)
		r = prepare(s, "UPDATE rows SET track_next_at = ?2 WHERE id = ?1", &lease);
	if (r < 0)
		goto out;
	sqlite3_bind_int64(sel, 1, tenant_id);
	sqlite3_bind_int64(sel, 2, (sqlite3_int64)now_ms);
	sqlite3_bind_int64(sel, 3, (sqlite3_int64)limit);
	while (n < limit && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
		struct store_track *t = &v[n++];
		t->row_id = sqlite3_column_int64(sel, 0);
		t->job_id = sqlite3_column_int64(sel, 1);
		t->user_id = dup_col(sel, 2);
		t->invited_at = (uint64_t)sqlite3_column_int64(sel, 3);
		t->track_days = (unsigned)sqlite3_column_int(sel, 4);
		if (!t->user_id) {
			/* nothing to read it by: tracking ends for it */
			n--;
			sqlite3_bind_int64(lease, 1, sqlite3_column_int64(sel, 0));
			sqlite3_bind_null(lease, 2);
			r = step_done(lease);
			if (r < 0)
				goto out;
		}
	}
	if (n < limit && rc != SQLITE_DONE) {
		r = sqlite_errno(rc);
		goto out;
	}
	sqlite3_reset(sel);
	for (size_t i = 0; i < n && r == 0; i++) {
		sqlite3_bind_int64(lease, 1, v[i].row_id);
		sqlite3_bind_int64(lease, 2, (sqlite3_int64)(now_ms + lease_ms));
		r = step_done(lease);
	}
	if (r == 0)
		r = commit(s);
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(lease);
	if (r < 0) {
		rollback(s);
		store_track_free(v, n);
		return r;
	}
	if (n == 0) {
		free(v);
		v = NULL;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int store_track_next_due(struct store *s, int64_t tenant_id, uint64_t *ret_ms)
{
	return next_due(s,
			"SELECT MIN(r.track_next_at) FROM rows r INDEXED BY rows_track"
			" JOIN jobs j ON j.id = r.job_id WHERE r.track_next_at IS NOT NULL"
			" AND j.tenant_id = ?1 AND j.state <> 2 AND ?2 = ?2",
			tenant_id, 0, ret_ms);
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
