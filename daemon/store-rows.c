/* SPDX-License-Identifier: MIT */
/* store-rows: claims of rows before they are sent, their results queued and
 * journaled, the group commit (store_flush) and the replay of the journal. */
#include "store-private.h"

#include <stdio.h>
#include <stdlib.h>

#include "journal.h"
#include "log.h"
#include "timeutil.h"

#define FLUSH_MAX 4096 /* results written per transaction at most */

void store_result_clear(struct store_result *res)
{
	free(res->error_code);
	free(res->error_message);
	free(res->request_id);
	free(res->client_request_id);
	free(res->invited_user_id);
	free(res->invite_redeem_url);
	free(res->existing_type);
	free(res->existing_state);
	memset(res, 0, sizeof(*res));
}

struct replay {
	struct store_result *v;
	size_t n, cap;
};

static int replay_add(void *userdata, struct store_result *res)
{
	struct replay *rp = userdata;
	if (rp->n == rp->cap) {
		size_t cap = rp->cap ? rp->cap * 2 : 64;
		struct store_result *v = realloc(rp->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		rp->v = v;
		rp->cap = cap;
	}
	struct store_result *c = &rp->v[rp->n++];
	*c = *res; /* the strings are taken over */
	memset(res, 0, sizeof(*res));
	c->journaled = 2;
	return 0;
}

struct replay_key {
	int64_t row_id;
	size_t idx; /* file order */
};

static int by_row_then_order(const void *a, const void *b)
{
	const struct replay_key *x = a, *y = b;
	if (x->row_id != y->row_id)
		return x->row_id < y->row_id ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Commit what the journal holds: the newest record of each row, and only
 * where the row is still in flight from the same claim (the attempts guard
 * of ST_FINISH_ROW), so that a record already committed changes nothing. */
static int replay_journal(struct store *s, unsigned *ret_results)
{
	struct replay rp = {0};
	size_t torn = 0;
	int r = journal_read(s->journal, replay_add, &rp, &torn);
	if (torn)
		log_warning("The result journal ends in %zu bytes of a record cut short (ignored)",
			    torn);
	struct replay_key *keys = rp.n ? calloc(rp.n, sizeof(*keys)) : NULL;
	if (rp.n && !keys)
		r = -ENOMEM;
	for (size_t i = 0; keys && i < rp.n; i++)
		keys[i] = (struct replay_key){rp.v[i].row_id, i};
	if (r == 0 && keys)
		qsort(keys, rp.n, sizeof(*keys), by_row_then_order);
	size_t kept = 0;
	for (size_t i = 0; r == 0 && i < rp.n; i++) {
		if (i + 1 < rp.n && keys[i + 1].row_id == keys[i].row_id)
			continue; /* a newer record of the row follows */
		r = store_row_finish(s, &rp.v[keys[i].idx]);
		kept += r == 0;
	}
	for (size_t i = 0; i < rp.n; i++)
		store_result_clear(&rp.v[i]);
	free(keys);
	free(rp.v);
	while (r == 0 && s->queue_len > 0)
		r = store_flush(s);
	if (r == 0)
		r = journal_reset(s->journal);
	if (ret_results)
		*ret_results = (unsigned)kept;
	return r;
}

int store_recover(struct store *s, unsigned *ret_results, unsigned *ret_count)
{
	sqlite3_busy_timeout(s->db, 5000);
	int r = replay_journal(s, ret_results);
	/* the fate of a row in flight is unknown: with lookups on, it is looked
	 * up before it is sent again (SPEC R5). A --skip-existing row keeps its
	 * skip: it may have been waiting for its lookup rather than sent */
	if (r == 0)
		r = exec(s->db, "UPDATE rows SET state = 0, next_attempt_at = 1,"
				" lookup = (lookup & 1) | 2"
				" WHERE state = 1");
	unsigned count = (unsigned)sqlite3_changes(s->db);
	/* steps leased by the previous run are due again (they are idempotent:
	 * an addition already made is answered "already a member") */
	if (r == 0) {
		char sql[128];
		snprintf(sql, sizeof(sql), "UPDATE steps SET next_at = %llu WHERE state = 0"
			 " AND next_at > %llu", (unsigned long long)time_now_ms(),
			 (unsigned long long)time_now_ms());
		r = exec(s->db, sql);
	}
	sqlite3_busy_timeout(s->db, 0);
	if (r == 0 && ret_count)
		*ret_count = count;
	return r;
}

/* Count delta more (or fewer) unsent claims of a job. 0 or -ENOMEM (for
 * delta > 0 only). */
static int unsent_add(struct store *s, int64_t job_id, int64_t delta)
{
	for (size_t i = 0; i < s->n_unsent; i++) {
		if (s->unsent[i].job_id != job_id)
			continue;
		s->unsent[i].n += delta;
		s->unsent_total += delta;
		if (s->unsent[i].n <= 0) /* one entry per job that has some */
			s->unsent[i] = s->unsent[--s->n_unsent];
		return 0;
	}
	if (delta <= 0)
		return 0;
	if (s->n_unsent == s->cap_unsent) {
		size_t cap = s->cap_unsent ? s->cap_unsent * 2 : 8;
		struct unsent *u = realloc(s->unsent, cap * sizeof(*u));
		if (!u)
			return -ENOMEM;
		s->unsent = u;
		s->cap_unsent = cap;
	}
	s->unsent[s->n_unsent++] = (struct unsent){job_id, delta};
	s->unsent_total += delta;
	return 0;
}

void store_claim_sent(struct store *s, struct store_claim *c)
{
	if (!c || !c->unsent)
		return;
	c->unsent = false;
	unsent_add(s, c->job_id, -1);
}

void store_claim_free(struct store_claim *c)
{
	if (!c)
		return;
	free(c->email);
	free(c->display_name);
	free(c->redirect_url);
	free(c->message);
	free(c->language);
	free(c->cc);
	free(c);
}

/* Read claim rows (columns as in ST_CLAIM_SELECT) from st into claims. */
static int collect_claims(sqlite3_stmt *st, struct store_claim **claims, size_t *n, size_t limit,
			  int64_t *ret_last_id)
{
	int rc, r = 0;
	while (*n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_claim *c = calloc(1, sizeof(*c));
		if (!c)
			return -ENOMEM;
		claims[(*n)++] = c;
		c->row_id = sqlite3_column_int64(st, 0);
		c->job_id = sqlite3_column_int64(st, 1);
		c->line = (unsigned)sqlite3_column_int64(st, 2);
		c->attempts = (unsigned)sqlite3_column_int64(st, 3);
		c->email = dup_col(st, 4);
		c->display_name = dup_col(st, 5);
		c->redirect_url = dup_col(st, 6);
		c->send_email = sqlite3_column_int(st, 7) != 0;
		c->message = dup_col(st, 8);
		c->language = dup_col(st, 9);
		c->cc = dup_col(st, 10);
		c->lookup = sqlite3_column_int(st, 11);
		c->own_mail = sqlite3_column_int(st, 12) != 0;
		if (!c->email || !c->redirect_url)
			return -ENOMEM;
		if (ret_last_id)
			*ret_last_id = c->row_id;
	}
	if (*n < limit && rc != SQLITE_DONE)
		r = sqlite_errno(rc);
	return r;
}

static struct cursor *cursor_of(struct store *s, int64_t job_id, int64_t first_row)
{
	for (size_t i = 0; i < s->n_cursors; i++)
		if (s->cursors[i].job_id == job_id)
			return &s->cursors[i];
	if (s->n_cursors == s->cap_cursors) {
		size_t cap = s->cap_cursors ? s->cap_cursors * 2 : 16;
		struct cursor *c = realloc(s->cursors, cap * sizeof(*c));
		if (!c)
			return NULL;
		s->cursors = c;
		s->cap_cursors = cap;
	}
	struct cursor *c = &s->cursors[s->n_cursors++];
	c->job_id = job_id;
	c->after = first_row - 1;
	return c;
}

/* Mark in flight the fresh rows of a job just read: every row the walk
 * found in (after, last_id], so one range update (count rows, or -EIO). */
static int mark_fresh(struct store *s, int64_t job_id, int64_t after, int64_t last_id,
		      size_t count, uint64_t now_ms)
{
	sqlite3_stmt *mark = s->stmt[ST_CLAIM_MARK_FRESH];
	sqlite3_bind_int64(mark, 1, after);
	sqlite3_bind_int64(mark, 2, last_id);
	sqlite3_bind_int64(mark, 3, (sqlite3_int64)now_ms);
	int r = step_done(mark);
	if (r == 0 && (size_t)sqlite3_changes(s->db) != count)
		r = -EIO;
	if (r == 0) {
		sqlite3_bind_int64(s->stmt[ST_JOB_RUNNING], 1, job_id);
		r = step_done(s->stmt[ST_JOB_RUNNING]);
	}
	return r;
}

/* Fresh rows of the tenant's active jobs, oldest job first, from each job's
 * cursor, marked in flight. Cursors of jobs no longer active are dropped. */
static int claim_fresh(struct store *s, int64_t tenant_id, uint64_t now_ms,
		       struct store_claim **claims, size_t *n, size_t limit)
{
	sqlite3_stmt *jobs = s->stmt[ST_ACTIVE_JOBS];
	sqlite3_stmt *fresh = s->stmt[ST_CLAIM_FRESH];
	struct cursor *kept = NULL;
	size_t n_kept = 0, cap_kept = 0;
	int r = 0, rc;

	sqlite3_bind_int64(jobs, 1, tenant_id);
	while ((rc = sqlite3_step(jobs)) == SQLITE_ROW) {
		int64_t job_id = sqlite3_column_int64(jobs, 0);
		int64_t first = sqlite3_column_int64(jobs, 1);
		int64_t last = sqlite3_column_int64(jobs, 2);
		struct cursor *c = cursor_of(s, job_id, first);
		if (!c) {
			r = -ENOMEM;
			break;
		}
		if (*n < limit && c->after < last) {
			size_t before = *n;
			int64_t last_id = c->after;
			sqlite3_bind_int64(fresh, 1, c->after);
			sqlite3_bind_int64(fresh, 2, last);
			sqlite3_bind_int64(fresh, 3, (sqlite3_int64)(limit - *n));
			r = collect_claims(fresh, claims, n, limit, &last_id);
			sqlite3_reset(fresh);
			if (r == 0 && *n > before)
				r = mark_fresh(s, job_id, c->after, last_id, *n - before, now_ms);
			if (r < 0)
				break;
			/* a short page means nothing fresh is left in this job */
			c->after = *n - before < limit - before ? last : last_id;
		}
		if (n_kept == cap_kept) {
			cap_kept = cap_kept ? cap_kept * 2 : 16;
			struct cursor *k = realloc(kept, cap_kept * sizeof(*k));
			if (!k) {
				r = -ENOMEM;
				break;
			}
			kept = k;
		}
		kept[n_kept++] = *c;
	}
	if (r == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = sqlite_errno(rc);
	sqlite3_reset(jobs);
	if (r == 0) {
		free(s->cursors);
		s->cursors = kept;
		s->n_cursors = n_kept;
		s->cap_cursors = cap_kept;
	} else {
		free(kept);
	}
	return r;
}

int store_rows_claim(struct store *s, int64_t tenant_id, uint64_t now_ms, size_t limit,
		     struct store_claim ***ret_claims, size_t *ret_n)
{
	struct store_claim **claims = NULL;
	size_t n = 0;
	int64_t last_job = 0;
	bool walked = false;
	size_t n_retry;
	int r;

	*ret_claims = NULL;
	*ret_n = 0;
	if (limit == 0)
		return 0;
	claims = calloc(limit, sizeof(*claims));
	if (!claims)
		return -ENOMEM;
	r = begin(s);
	if (r < 0)
		goto out;

	/* rows due for another attempt first, then rows never tried */
	sqlite3_stmt *sel = s->stmt[ST_CLAIM_SELECT];
	sqlite3_bind_int64(sel, 1, tenant_id);
	sqlite3_bind_int64(sel, 2, (sqlite3_int64)now_ms);
	sqlite3_bind_int64(sel, 3, (sqlite3_int64)limit);
	r = collect_claims(sel, claims, &n, limit, NULL);
	sqlite3_reset(sel);
	n_retry = n;
	if (r == 0 && n < limit) {
		walked = true;
		r = claim_fresh(s, tenant_id, now_ms, claims, &n, limit);
	}
	if (r < 0)
		goto out;

	/* rows due again, one by one (claim_fresh marked its own) */
	sqlite3_stmt *mark = s->stmt[ST_CLAIM_MARK];
	for (size_t i = 0; i < n_retry && r == 0; i++) {
		sqlite3_bind_int64(mark, 1, claims[i]->row_id);
		sqlite3_bind_int64(mark, 2, (sqlite3_int64)now_ms);
		r = step_done(mark);
		if (r == 0 && claims[i]->job_id != last_job) {
			last_job = claims[i]->job_id;
			sqlite3_bind_int64(s->stmt[ST_JOB_RUNNING], 1, last_job);
			r = step_done(s->stmt[ST_JOB_RUNNING]);
		}
	}
	if (r == 0)
		r = commit(s);
out:
	if (r < 0) {
		rollback(s);
		/* cursors may have moved past rows that were not marked: start over */
		if (walked)
			s->n_cursors = 0;
		for (size_t i = 0; i < n; i++)
			store_claim_free(claims[i]);
		free(claims);
		return r;
	}
	/* shown as waiting, not in flight, until store_claim_sent */
	for (size_t i = 0; i < n; i++)
		claims[i]->unsent = unsent_add(s, claims[i]->job_id, 1) == 0;
	if (n == 0) {
		free(claims);
		claims = NULL;
	}
	*ret_claims = claims;
	*ret_n = n;
	return 0;
}

int store_rows_next_due(struct store *s, int64_t tenant_id, uint64_t *ret_ms)
{
	sqlite3_stmt *st = s->stmt[ST_NEXT_DUE];
	sqlite3_bind_int64(st, 1, tenant_id);
	int rc = sqlite3_step(st);
	int r = 0;
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*ret_ms = (uint64_t)sqlite3_column_int64(st, 0);
		r = 1;
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		r = sqlite_errno(rc);
	}
	sqlite3_reset(st);
	return r;
}

int store_rows_release(struct store *s, const int64_t *row_ids, size_t n)
{
	if (n == 0)
		return 0;
	/* on the loop thread: as patient as an admin action, no more */
	sqlite3_busy_timeout(s->db, 2000);
	int r = begin(s);
	for (size_t i = 0; i < n && r == 0; i++) {
		sqlite3_bind_int64(s->stmt[ST_RELEASE], 1, row_ids[i]);
		r = step_done(s->stmt[ST_RELEASE]);
	}
	if (r == 0)
		r = commit(s);
	else
		rollback(s);
	sqlite3_busy_timeout(s->db, 0);
	return r;
}

int store_row_finish(struct store *s, struct store_result *res)
{
	if (s->queue_len == s->queue_cap) {
		size_t cap = s->queue_cap ? s->queue_cap * 2 : 64;
		struct store_result *q = realloc(s->queue, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		s->queue = q;
		s->queue_cap = cap;
	}
	/* out of memory for the record: the result waits for its commit */
	if (res->journaled != 2)
		res->journaled = s->journal && journal_add(s->journal, res) == 0 ? 1 : 0;
	if (res->journaled != 2)
		s->at_risk++;
	s->queue[s->queue_len++] = *res;
	memset(res, 0, sizeof(*res));
	return 0;
}

int store_journal_write(struct store *s)
{
	if (!s->journal || s->at_risk == 0)
		return 0;
	int r = journal_write(s->journal);
	if (r < 0)
		return r;
	/* the buffered records are the newest results */
	for (size_t i = s->queue_len; i > 0 && s->queue[i - 1].journaled != 2; i--) {
		if (s->queue[i - 1].journaled == 1) {
			s->queue[i - 1].journaled = 2;
			s->at_risk--;
		}
	}
	return 0;
}

uint64_t store_steps_made(const struct store *s)
{
	return s->steps_made;
}

size_t store_queued(const struct store *s)
{
	return s->queue_len + s->steps_len + s->track_len;
}

size_t store_at_risk(const struct store *s)
{
	return s->at_risk;
}

/* Per-job counts of one flush, written once per job, and what the flush
 * needs to know of the job (read once). */
struct tally {
	int64_t job_id;
	int succeeded, failed, cancelled, skipped;
	int groups_added, groups_ended, group_failures, accepted;
	int mail_added, mail_ended, mailed;
	bool done;
	bool mail; /* the job sends our mail */
	int state;         /* the job's */
	int64_t tenant_id;
	uint64_t track_ms; /* 0: not tracked */
	bool has_groups;
};

static int job_count(struct store *s, const struct tally *t)
{
	sqlite3_stmt *st = s->stmt[ST_JOB_COUNT];
	sqlite3_bind_int64(st, 1, t->job_id);
	sqlite3_bind_int(st, 2, t->succeeded);
	sqlite3_bind_int(st, 3, t->failed);
	sqlite3_bind_int(st, 4, t->cancelled);
	sqlite3_bind_int(st, 5, t->skipped);
	sqlite3_bind_int(st, 6, t->groups_added - t->groups_ended);
	sqlite3_bind_int(st, 7, t->group_failures);
	sqlite3_bind_int(st, 8, t->accepted);
	sqlite3_bind_int(st, 9, t->mail_added - t->mail_ended);
	sqlite3_bind_int(st, 10, t->mailed);
	return step_done(st);
}

/* Mark the job finished if nothing is left; 1 when it just finished. */
static int job_maybe_complete(struct store *s, int64_t job_id, uint64_t now)
{
	sqlite3_stmt *st = s->stmt[ST_JOB_COMPLETE];
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
	int r = step_done(st);
	if (r < 0)
		return r;
	return sqlite3_changes(s->db) > 0;
}

/* The tally of job_id (read from the job when new); NULL with *r set. */
static struct tally *tally_of(struct store *s, struct tally *t, size_t *n, int64_t job_id, int *r)
{
	for (size_t i = *n; i-- > 0;)
		if (t[i].job_id == job_id)
			return &t[i];
	struct tally *x = &t[*n];
	*x = (struct tally){.job_id = job_id, .state = -1};
	sqlite3_stmt *st = s->stmt[ST_JOB_ONBOARD];
	sqlite3_bind_int64(st, 1, job_id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		x->state = sqlite3_column_int(st, 0);
		x->track_ms = (uint64_t)sqlite3_column_int64(st, 1);
		x->has_groups = sqlite3_column_int(st, 2) != 0;
		x->tenant_id = sqlite3_column_int64(st, 3);
		x->mail = sqlite3_column_int(st, 4) != 0;
	} else if (rc != SQLITE_DONE) {
		*r = sqlite_errno(rc);
	}
	sqlite3_reset(st);
	if (*r < 0)
		return NULL;
	(*n)++;
	return x;
}

/* After a row's invitation (or skip as a guest): its group additions are
 * due, and its acceptance is tracked. */
static bool row_onboards(const struct store_result *res)
{
	return res->state == ROW_STATE_SUCCEEDED ||
	       (res->state == ROW_STATE_SKIPPED && res->existing_type &&
		strcmp(res->existing_type, "Guest") == 0);
}

/* Steps of a row made by st (its group additions, or its mail step); n
 * counts them. */
static int add_steps(struct store *s, sqlite3_stmt *st, struct tally *t, int64_t row_id,
		     uint64_t now, int *n)
{
	sqlite3_bind_int64(st, 1, row_id);
	sqlite3_bind_int64(st, 2, t->job_id);
	sqlite3_bind_int64(st, 3, t->tenant_id);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
	int r = step_done(st);
	if (r == 0) {
		*n += sqlite3_changes(s->db);
		s->steps_made += (uint64_t)sqlite3_changes(s->db);
	}
	return r;
}

/* The row's mail step ([mail]): made, or (again) after a resend. */
static int add_mail(struct store *s, struct tally *t, int64_t row_id, uint64_t now, bool again)
{
	return add_steps(s, s->stmt[again ? ST_MAIL_REARM : ST_STEPS_ADD_MAIL], t, row_id, now,
			 &t->mail_added);
}

static int add_groups(struct store *s, struct tally *t, int64_t row_id, uint64_t now)
{
	return add_steps(s, s->stmt[ST_STEPS_ADD_GROUPS], t, row_id, now, &t->groups_added);
}

/* One step's outcome (s->steps_q). */
static int write_step(struct store *s, struct step_result *sr, struct tally *tallies,
		      size_t *n_tallies, uint64_t now)
{
	int failed_before = 0, rc;
	if (sr->state == STEP_FAILED && sr->kind == STEP_GROUP) {
		sqlite3_stmt *q = s->stmt[ST_STEP_ROW_FAILED];
		sqlite3_bind_int64(q, 1, sr->row_id);
		if (sqlite3_step(q) == SQLITE_ROW)
			failed_before = sqlite3_column_int(q, 0);
		sqlite3_reset(q);
	}
	sqlite3_stmt *st = s->stmt[ST_STEP_FINISH];
	sqlite3_bind_int64(st, 1, sr->row_id);
	sqlite3_bind_int(st, 2, sr->kind);
	sqlite3_bind_text(st, 3, sr->arg ? sr->arg : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, sr->state);
	sqlite3_bind_int(st, 5, (int)sr->attempts);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)sr->next_at);
	bind_text_or_null(st, 7, sr->error);
	int64_t job_id = 0;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		job_id = sqlite3_column_int64(st, 0);
	int r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sqlite_errno(rc);
	sqlite3_reset(st);
	if (r < 0 || job_id == 0 || sr->state == STEP_PENDING)
		return r; /* a step no longer pending (cancelled) changes nothing */
	struct tally *t = tally_of(s, tallies, n_tallies, job_id, &r);
	if (!t)
		return r;
	if (sr->kind == STEP_GROUP) {
		t->groups_ended++;
		t->group_failures += sr->state == STEP_FAILED && failed_before == 0;
	} else if (sr->kind == STEP_RESEND && sr->state == STEP_DONE) {
		sqlite3_stmt *u = s->stmt[ST_RESEND_DONE];
		sqlite3_bind_int64(u, 1, sr->row_id);
		bind_text_or_null(u, 2, sr->redeem_url);
		sqlite3_bind_int64(u, 3, (sqlite3_int64)now);
		sqlite3_bind_int64(u, 4, (sqlite3_int64)t->track_ms);
		r = step_done(u);
		if (r == 0 && t->mail)
			r = add_mail(s, t, sr->row_id, now, true);
	} else if (sr->kind == STEP_MAIL) {
		t->mail_ended++;
		if (sr->state == STEP_DONE) {
			t->mailed++;
			sqlite3_stmt *u = s->stmt[ST_MAIL_DONE];
			sqlite3_bind_int64(u, 1, sr->row_id);
			sqlite3_bind_int64(u, 2, (sqlite3_int64)now);
			r = step_done(u);
			if (r == 0 && sr->redeem_url) {
				u = s->stmt[ST_MAIL_LOG];
				sqlite3_bind_text(u, 1, sr->redeem_url, -1, SQLITE_STATIC);
				sqlite3_bind_int64(u, 2, (sqlite3_int64)now);
				r = step_done(u);
			}
		}
	}
	return r;
}

static int write_track(struct store *s, const struct track_result *tr, struct tally *tallies,
		       size_t *n_tallies)
{
	sqlite3_stmt *st = s->stmt[ST_TRACK_FINISH];
	sqlite3_bind_int64(st, 1, tr->row_id);
	if (tr->accepted_ms)
		sqlite3_bind_int64(st, 2, (sqlite3_int64)tr->accepted_ms);
	else
		sqlite3_bind_null(st, 2);
	if (tr->next_ms && !tr->accepted_ms)
		sqlite3_bind_int64(st, 3, (sqlite3_int64)tr->next_ms);
	else
		sqlite3_bind_null(st, 3);
	int r = step_done(st);
	if (r < 0 || !tr->accepted_ms || sqlite3_changes(s->db) == 0)
		return r;
	struct tally *t = tally_of(s, tallies, n_tallies, tr->job_id, &r);
	if (t)
		t->accepted++;
	return r;
}

int store_flush(struct store *s)
{
	if (s->queue_len == 0 && s->steps_len == 0 && s->track_len == 0)
		return 0;
	size_t n = s->queue_len < FLUSH_MAX ? s->queue_len : FLUSH_MAX;
	size_t n_steps = s->steps_len < FLUSH_MAX ? s->steps_len : FLUSH_MAX;
	size_t n_track = s->track_len < FLUSH_MAX ? s->track_len : FLUSH_MAX;
	uint64_t now = time_now_ms();
	/* at most one tally per result */
	struct tally *tallies = calloc(n + n_steps + n_track + 1, sizeof(*tallies));
	size_t n_tallies = 0;
	if (!tallies)
		return -ENOMEM;
	int r = begin(s);
	if (r < 0)
		goto out;

	sqlite3_stmt *up = s->stmt[ST_FINISH_ROW];
	for (size_t i = 0; i < n && r == 0; i++) {
		struct store_result *res = &s->queue[i];
		int state = res->state;
		struct tally *t = tally_of(s, tallies, &n_tallies, res->job_id, &r);
		if (!t)
			break;
		/* a retry of a row whose job was cancelled meanwhile ends here */
		if (state == ROW_STATE_PENDING && t->state == JOB_STATE_CANCELLED)
			state = ROW_STATE_CANCELLED;
		bool onboards = row_onboards(res) && state == res->state;
		sqlite3_bind_int64(up, 1, res->row_id);
		sqlite3_bind_int(up, 2, state);
		sqlite3_bind_int(up, 3, (int)res->attempts);
		sqlite3_bind_int64(up, 4, (sqlite3_int64)res->next_attempt_at);
		if (res->http_status > 0)
			sqlite3_bind_int(up, 5, (int)res->http_status);
		else
			sqlite3_bind_null(up, 5);
		bind_text_or_null(up, 6, res->error_code);
		bind_text_or_null(up, 7, res->error_message);
		bind_text_or_null(up, 8, res->request_id);
		bind_text_or_null(up, 9, res->invited_user_id);
		bind_text_or_null(up, 10, res->invite_redeem_url);
		sqlite3_bind_int64(up, 11, (sqlite3_int64)now);
		sqlite3_bind_int64(up, 12, (sqlite3_int64)res->prev_attempts);
		bind_text_or_null(up, 13, res->client_request_id);
		sqlite3_bind_int(up, 14, res->lookup);
		bind_text_or_null(up, 15, res->existing_type);
		bind_text_or_null(up, 16, res->existing_state);
		if (onboards && t->track_ms > 0 && res->invited_user_id) {
			sqlite3_bind_int64(up, 17, (sqlite3_int64)(now + t->track_ms));
			s->steps_made++;
		} else
			sqlite3_bind_null(up, 17);
		r = step_done(up);
		/* a row no longer in flight (cannot happen) leaves the counts alone */
		if (r < 0 || sqlite3_changes(s->db) == 0 || state == ROW_STATE_PENDING)
			continue;
		t->succeeded += state == ROW_STATE_SUCCEEDED;
		t->failed += state == ROW_STATE_FAILED;
		t->cancelled += state == ROW_STATE_CANCELLED;
		t->skipped += state == ROW_STATE_SKIPPED;
		if (onboards && t->has_groups && res->invited_user_id)
			r = add_groups(s, t, res->row_id, now);
		/* our mail follows the invitation Graph made (not a skip) */
		if (r == 0 && t->mail && state == ROW_STATE_SUCCEEDED && res->state == state)
			r = add_mail(s, t, res->row_id, now, false);
	}
	for (size_t i = 0; i < n_steps && r == 0; i++)
		r = write_step(s, &s->steps_q[i], tallies, &n_tallies, now);
	for (size_t i = 0; i < n_track && r == 0; i++)
		r = write_track(s, &s->track_q[i], tallies, &n_tallies);
	for (size_t i = 0; i < n_tallies && r == 0; i++) {
		struct tally *t = &tallies[i];
		r = job_count(s, t);
		if (r == 0) {
			r = job_maybe_complete(s, t->job_id, now);
			t->done = r == 1;
			r = r < 0 ? r : 0;
		}
	}
	if (r == 0)
		r = commit(s);
	else
		rollback(s);
	if (r < 0)
		goto out;

	for (size_t i = 0; i < n; i++) {
		s->at_risk -= s->queue[i].journaled != 2;
		store_result_clear(&s->queue[i]);
	}
	if (n)
		memmove(s->queue, s->queue + n, (s->queue_len - n) * sizeof(*s->queue));
	s->queue_len -= n;
	for (size_t i = 0; i < n_steps; i++) {
		free(s->steps_q[i].arg);
		free(s->steps_q[i].error);
		free(s->steps_q[i].redeem_url);
	}
	if (n_steps)
		memmove(s->steps_q, s->steps_q + n_steps,
			(s->steps_len - n_steps) * sizeof(*s->steps_q));
	s->steps_len -= n_steps;
	if (n_track)
		memmove(s->track_q, s->track_q + n_track,
			(s->track_len - n_track) * sizeof(*s->track_q));
	s->track_len -= n_track;
	/* all journaled results are committed: the journal starts over */
	if (s->queue_len == 0 && s->journal) {
		int rr = journal_reset(s->journal);
		if (rr < 0)
			log_warning("Cannot empty the result journal of '%s': %s", s->path,
				    strerror(-rr));
	}
	for (size_t i = 0; i < n_tallies && s->job_done; i++)
		if (tallies[i].done)
			s->job_done(s->job_done_userdata, tallies[i].job_id);
out:
	free(tallies);
	return r;
}
