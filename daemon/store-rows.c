/* SPDX-License-Identifier: MIT */
/* store-rows: claims of rows before they are sent, their results queued and
 * journaled, the group commit (store_flush) and the replay of the journal. */
#include "store-private.h"

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
	if (r == 0)
		r = exec(s->db, "UPDATE rows SET state = 0, next_attempt_at = 1 WHERE state = 1");
	sqlite3_busy_timeout(s->db, 0);
	if (r == 0 && ret_count)
		*ret_count = (unsigned)sqlite3_changes(s->db);
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

size_t store_queued(const struct store *s)
{
	return s->queue_len;
}

size_t store_at_risk(const struct store *s)
{
	return s->at_risk;
}

static int job_count(struct store *s, int64_t job_id, int succeeded, int failed, int cancelled)
{
	sqlite3_stmt *st = s->stmt[ST_JOB_COUNT];
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_int(st, 2, succeeded);
	sqlite3_bind_int(st, 3, failed);
	sqlite3_bind_int(st, 4, cancelled);
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

/* Per-job counts of one flush, written once per job. */
struct tally {
	int64_t job_id;
	int succeeded, failed, cancelled;
	bool done;
};

static struct tally *tally_of(struct tally *t, size_t *n, int64_t job_id)
{
	for (size_t i = *n; i-- > 0;)
		if (t[i].job_id == job_id)
			return &t[i];
	t[*n] = (struct tally){.job_id = job_id};
	return &t[(*n)++];
}

int store_flush(struct store *s)
{
	if (s->queue_len == 0)
		return 0;
	size_t n = s->queue_len < FLUSH_MAX ? s->queue_len : FLUSH_MAX;
	uint64_t now = time_now_ms();
	/* at most one tally per result */
	struct tally *tallies = calloc(n, sizeof(*tallies));
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
		if (state == ROW_STATE_PENDING) {
			/* a retry of a row whose job was cancelled meanwhile ends here */
			int js;
			r = job_state(s, res->job_id, &js);
			if (r < 0)
				break;
			if (js == JOB_STATE_CANCELLED)
				state = ROW_STATE_CANCELLED;
		}
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
		r = step_done(up);
		/* a row no longer in flight (cannot happen) leaves the counts alone */
		if (r < 0 || sqlite3_changes(s->db) == 0 || state == ROW_STATE_PENDING)
			continue;
		struct tally *t = tally_of(tallies, &n_tallies, res->job_id);
		t->succeeded += state == ROW_STATE_SUCCEEDED;
		t->failed += state == ROW_STATE_FAILED;
		t->cancelled += state == ROW_STATE_CANCELLED;
	}
	for (size_t i = 0; i < n_tallies && r == 0; i++) {
		struct tally *t = &tallies[i];
		r = job_count(s, t->job_id, t->succeeded, t->failed, t->cancelled);
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
	memmove(s->queue, s->queue + n, (s->queue_len - n) * sizeof(*s->queue));
	s->queue_len -= n;
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
