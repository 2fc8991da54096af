/* SPDX-License-Identifier: MIT */
/* store-jobs: jobs and their rows read back, the counts for status and stats,
 * the admin actions on a job (with their audit row), retention (prune). */
#include "store-private.h"

#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "timeutil.h"

void store_job_clear(struct store_job *j)
{
	free(j->tenant);
	free(j->name);
	free(j->user);
	free(j->filename);
	free(j->columns);
	free(j->redirect_url);
	free(j->message);
	free(j->language);
	free(j->cc);
	free(j->reason);
	free(j->groups);
	memset(j, 0, sizeof(*j));
}

/* Columns as in ST_JOB_GET. */
static int job_from_stmt(struct store *s, sqlite3_stmt *st, struct store_job *j)
{
	memset(j, 0, sizeof(*j));
	j->id = sqlite3_column_int64(st, 0);
	j->tenant_id = sqlite3_column_int64(st, 1);
	j->tenant = dup_col(st, 2);
	j->name = dup_col(st, 3);
	j->state = sqlite3_column_int(st, 4);
	j->created_at = (uint64_t)sqlite3_column_int64(st, 5);
	j->finished_at = (uint64_t)sqlite3_column_int64(st, 6);
	j->uid = (uint32_t)sqlite3_column_int64(st, 7);
	j->user = dup_col(st, 8);
	j->filename = dup_col(st, 9);
	j->columns = dup_col(st, 10);
	j->redirect_url = dup_col(st, 11);
	j->send_email = sqlite3_column_int(st, 12) != 0;
	j->message = dup_col(st, 13);
	j->language = dup_col(st, 14);
	j->cc = dup_col(st, 15);
	j->reason = dup_col(st, 16);
	j->total = sqlite3_column_int64(st, 17);
	j->succeeded = sqlite3_column_int64(st, 18);
	j->failed = sqlite3_column_int64(st, 19);
	j->cancelled = sqlite3_column_int64(st, 20);
	j->skipped = sqlite3_column_int64(st, 21);
	j->accepted = sqlite3_column_int64(st, 22);
	j->groups_pending = sqlite3_column_int64(st, 23);
	j->group_failures = sqlite3_column_int64(st, 24);
	j->skip_existing = sqlite3_column_int(st, 25) != 0;
	j->groups = dup_col(st, 26);
	j->track_ms = (uint64_t)sqlite3_column_int64(st, 27);
	j->mail = sqlite3_column_int(st, 28) != 0;
	j->mailed = sqlite3_column_int64(st, 29);
	j->mail_pending = sqlite3_column_int64(st, 30);
	if (j->reason && (j->state == JOB_STATE_QUEUED || j->state == JOB_STATE_RUNNING))
		j->state = JOB_STATE_BLOCKED;
	if (!j->tenant || !j->user || !j->columns || !j->redirect_url) {
		store_job_clear(j);
		return -ENOMEM;
	}
	if (j->succeeded + j->failed + j->cancelled + j->skipped < j->total) {
		sqlite3_stmt *c = s->stmt[ST_JOB_IN_FLIGHT];
		sqlite3_bind_int64(c, 1, j->id);
		if (sqlite3_step(c) == SQLITE_ROW)
			j->in_flight = sqlite3_column_int64(c, 0) - unsent_of(s, j->id);
		sqlite3_reset(c);
		if (j->in_flight < 0)
			j->in_flight = 0;
	}
	return 0;
}

int store_job_state_get(struct store *s, int64_t id, int *ret_state)
{
	return job_state(s, id, ret_state);
}

int store_job_get(struct store *s, int64_t id, struct store_job *ret)
{
	sqlite3_stmt *st = s->stmt[ST_JOB_GET];
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	int r;
	if (rc == SQLITE_ROW)
		r = job_from_stmt(s, st, ret);
	else
		r = rc == SQLITE_DONE ? -ENOENT : sqlite_errno(rc);
	sqlite3_reset(st);
	return r;
}

int store_jobs_list(struct store *s, bool all, uint64_t since_ms, store_job_fn fn, void *userdata)
{
	return store_jobs_list_owned(s, -1, all, since_ms, fn, userdata);
}

int store_jobs_list_owned(struct store *s, int64_t uid, bool all, uint64_t since_ms,
			  store_job_fn fn, void *userdata)
{
	sqlite3_stmt *st = NULL;
	struct buf sql = BUF_INIT;
	/* same columns as ST_JOB_GET */
	const char *get = store_stmt_sql[ST_JOB_GET];
	const char *where = strstr(get, " WHERE ");
	buf_append(&sql, get, (size_t)(where - get));
	buf_append_str(&sql, " WHERE (?2 < 0 OR j.submitted_uid = ?2)");
	if (!all)
		buf_append_str(&sql, " AND (j.finished_at IS NULL OR j.finished_at >= ?1)");
	buf_append_str(&sql, " ORDER BY j.id DESC");
	int r = sqlite_errno(sqlite3_prepare_v2(s->db, sql.data, -1, &st, NULL));
	buf_finish(&sql);
	if (r < 0)
		goto out;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)since_ms);
	sqlite3_bind_int64(st, 2, uid);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_job j;
		r = job_from_stmt(s, st, &j);
		if (r < 0)
			goto out;
		r = fn(userdata, &j);
		store_job_clear(&j);
		if (r < 0)
			goto out;
		if (r > 0) {
			r = 1;
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = sqlite_errno(rc);
out:
	sqlite3_finalize(st);
	return r;
}

int store_rows_list(struct store *s, int64_t job_id, int64_t cursor, unsigned limit, int state,
		    bool with_fields, store_row_fn fn, void *userdata, int64_t *ret_next)
{
	sqlite3_stmt *st = NULL;
	struct buf sql = BUF_INIT;
	int64_t last = 0;
	unsigned n = 0;

	*ret_next = 0;
	buf_printf(&sql,
		   "SELECT id, line, email, display_name, state, attempts, http_status, error_code,"
		   " error_message, request_id, invited_user_id, invite_redeem_url, updated_at, %s"
		   ", client_request_id, existing_type, existing_state, accepted_at, resends,"
		   " (SELECT json_group_array(json_object('id', arg, 'state',"
		   " CASE state WHEN 1 THEN 'added' WHEN 2 THEN 'failed' WHEN 3 THEN 'cancelled'"
		   " ELSE 'pending' END, 'error', error)) FROM steps"
		   " WHERE row_id = rows.id AND kind = 1),"
		   " (SELECT state FROM steps WHERE row_id = rows.id AND kind = 3),"
		   " (SELECT error FROM steps WHERE row_id = rows.id AND kind = 3), mail_sent_at"
		   " FROM rows WHERE job_id = ?1 AND id > ?2 %s ORDER BY id LIMIT ?3",
		   with_fields ? "fields, redirect_url, message" : "NULL, NULL, NULL",
		   state == ROW_FILTER_ACCEPTED ? "AND accepted_at IS NOT NULL"
		   : state == ROW_FILTER_NOT_ACCEPTED
			   ? "AND accepted_at IS NULL AND (state = 2 OR (state = 5 AND"
			     " existing_type = 'Guest'))"
		   : state == ROW_FILTER_GROUP_FAILED
			   ? "AND EXISTS (SELECT 1 FROM steps WHERE row_id = rows.id AND kind = 1"
			     " AND state = 2)"
		   : state >= 0 ? "AND state = ?4"
				: "");
	int r = sqlite_errno(sqlite3_prepare_v2(s->db, sql.data, -1, &st, NULL));
	buf_finish(&sql);
	if (r < 0)
		goto out;
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_int64(st, 2, cursor);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1); /* one more: is there a next page? */
	if (state >= 0 && state < ROW_FILTER_ACCEPTED)
		sqlite3_bind_int(st, 4, state);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == limit) {
			*ret_next = last;
			break;
		}
		struct store_row row = {
			.id = sqlite3_column_int64(st, 0),
			.line = (unsigned)sqlite3_column_int64(st, 1),
			.email = col_text(st, 2),
			.display_name = col_text(st, 3),
			.state = sqlite3_column_int(st, 4),
			.attempts = (unsigned)sqlite3_column_int(st, 5),
			.http_status = sqlite3_column_int(st, 6),
			.error_code = col_text(st, 7),
			.error_message = col_text(st, 8),
			.request_id = col_text(st, 9),
			.invited_user_id = col_text(st, 10),
			.invite_redeem_url = col_text(st, 11),
			.updated_at = (uint64_t)sqlite3_column_int64(st, 12),
			.fields = col_text(st, 13),
			.redirect_url = col_text(st, 14),
			.message = col_text(st, 15),
			.client_request_id = col_text(st, 16),
			.existing_type = col_text(st, 17),
			.existing_state = col_text(st, 18),
			.accepted_at = (uint64_t)sqlite3_column_int64(st, 19),
			.resends = (unsigned)sqlite3_column_int(st, 20),
			.groups = col_text(st, 21),
			.mail_state = sqlite3_column_type(st, 22) == SQLITE_NULL
					      ? -1
					      : sqlite3_column_int(st, 22),
			.mail_error = col_text(st, 23),
			.mail_sent_at = (uint64_t)sqlite3_column_int64(st, 24),
		};
		r = fn(userdata, &row);
		if (r < 0)
			goto out;
		last = row.id;
		n++;
		if (r > 0) { /* the caller has enough for one page */
			r = 0;
			*ret_next = last;
			break;
		}
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = sqlite_errno(rc);
out:
	sqlite3_finalize(st);
	return r;
}

/* s->actor_code of retry --groups (compared by address) */
static const char retry_groups_mark[] = "groups";

/* The audit entry of the action under way (store_job_action), in its
 * transaction. */
static int audit_action(struct store *s, int64_t id, int64_t changed)
{
	if (!s->actor)
		return 0;
	char detail[160];
	if (s->actor_code == retry_groups_mark)
		snprintf(detail, sizeof(detail), "%lld group additions", (long long)changed);
	else
		snprintf(detail, sizeof(detail), "%lld changed%s%.100s", (long long)changed,
			 s->actor_code ? "; rows failed with " : "",
			 s->actor_code ? s->actor_code : "");
	struct store_audit a = {.uid = s->actor->uid, .user = s->actor->user,
				.action = s->actor_action, .job_id = id, .detail = detail};
	return store_audit_insert(s->db, &a, time_now_ms());
}

/* Run admin statements on a job inside a transaction, after checking the job
 * exists. ?1 is the id, ?2 now, ?3 arg (NULL binds null). *ret_changed: the
 * first statement's changes; *ret_last_changed (may be NULL): the last one's. */
static int job_action_arg(struct store *s, int64_t id, const char *const *sqls, size_t n_sql,
			  const char *arg, int64_t *ret_changed, int64_t *ret_last_changed)
{
	int js;
	int64_t changed = 0, last_changed = 0;
	int r = begin_patient(s);
	if (r < 0)
		return r;
	r = job_state(s, id, &js);
	for (size_t i = 0; i < n_sql && r == 0; i++) {
		sqlite3_stmt *st = NULL;
		r = sqlite_errno(sqlite3_prepare_v2(s->db, sqls[i], -1, &st, NULL));
		if (r < 0)
			break;
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)time_now_ms());
		bind_text_or_null(st, 3, arg);
		r = step_done(st);
		sqlite3_finalize(st);
		if (i == 0)
			changed = sqlite3_changes(s->db);
		last_changed = sqlite3_changes(s->db);
	}
	if (r == 0)
		r = audit_action(s, id, changed);
	if (r == 0)
		r = commit(s);
	else
		rollback(s);
	if (r == 0) {
		*ret_changed = changed;
		if (ret_last_changed)
			*ret_last_changed = last_changed;
	}
	return r;
}

static int job_action(struct store *s, int64_t id, const char *const *sqls, size_t n_sql,
		      int64_t *ret_changed)
{
	return job_action_arg(s, id, sqls, n_sql, NULL, ret_changed, NULL);
}

int store_job_cancel(struct store *s, int64_t id, int64_t *ret_changed)
{
	static const char *const sql[] = {
		"UPDATE rows SET state = 4, updated_at = ?2 WHERE job_id = ?1 AND state = 0"
		" AND (SELECT state FROM jobs WHERE id = ?1) IN (0, 1, 2)",
		"UPDATE jobs SET cancelled = cancelled + changes(), state = 3 WHERE id = ?1 AND state IN (0, 1, 2)",
		/* group additions not made yet are given up with the job */
		"UPDATE steps SET state = 3, error = 'the job was cancelled'"
		" WHERE job_id = ?1 AND state = 0 AND (SELECT state FROM jobs WHERE id = ?1) = 3",
		"UPDATE jobs SET groups_pending = (SELECT COUNT(*) FROM steps WHERE job_id = ?1"
		" AND kind = 1 AND state = 0), mail_pending = (SELECT COUNT(*) FROM steps"
		" WHERE job_id = ?1 AND kind = 3 AND state = 0) WHERE id = ?1 AND state = 3",
		/* cancelled: a row or a step was given up; else nothing was left */
		"UPDATE jobs SET finished_at = ?2, state = CASE WHEN cancelled > 0 OR EXISTS"
		" (SELECT 1 FROM steps WHERE job_id = ?1 AND state = 3) THEN 3 ELSE 4 END"
		" WHERE id = ?1 AND state = 3 AND finished_at IS NULL AND " JOB_DONE_SQL,
	};
	int64_t finished = 0;
	int r = job_action_arg(s, id, sql, 5, NULL, ret_changed, &finished);
	/* only when this cancel ended the job: a repeated cancel is no new end */
	if (r == 0 && finished > 0 && s->job_done)
		s->job_done(s->job_done_userdata, id);
	return r;
}

int store_job_pause(struct store *s, int64_t id, int64_t *ret_changed)
{
	static const char *const sql[] = {
		"UPDATE jobs SET state = 2 WHERE id = ?1 AND state IN (0, 1)",
	};
	return job_action(s, id, sql, 1, ret_changed);
}

int store_job_resume(struct store *s, int64_t id, int64_t *ret_changed)
{
	static const char *const sql[] = {
		"UPDATE jobs SET state = 0 WHERE id = ?1 AND state = 2",
		"UPDATE jobs SET state = 4, finished_at = ?2 WHERE id = ?1 AND state = 0"
		" AND " JOB_DONE_SQL,
	};
	return job_action(s, id, sql, 2, ret_changed);
}

int store_job_retry(struct store *s, int64_t id, int64_t *ret_changed)
{
	return store_job_retry_code(s, id, NULL, ret_changed);
}

int store_job_retry_code(struct store *s, int64_t id, const char *error_code,
			 int64_t *ret_changed)
{
	static const char *const sql[] = {
		"UPDATE rows SET state = 0, attempts = 0, next_attempt_at = 1, http_status = NULL,"
		" error_code = NULL, error_message = NULL, request_id = NULL,"
		" client_request_id = NULL, updated_at = ?2"
		" WHERE job_id = ?1 AND state = 3 AND (SELECT state FROM jobs WHERE id = ?1) <> 3"
		/* Graph's codes are case-insensitive identifiers (ASCII) */
		" AND (?3 IS NULL OR error_code = ?3 COLLATE NOCASE)",
		"UPDATE jobs SET failed = failed - changes(),"
		" state = CASE WHEN changes() > 0 AND state = 4 THEN 0 ELSE state END,"
		" finished_at = CASE WHEN changes() > 0 AND state = 4 THEN NULL ELSE finished_at END"
		" WHERE id = ?1",
	};
	return job_action_arg(s, id, sql, 2, error_code, ret_changed, NULL);
}

static const char *const action_names[] = {
	[STORE_ACTION_CANCEL] = "cancel",
	[STORE_ACTION_PAUSE] = "pause",
	[STORE_ACTION_RESUME] = "resume",
	[STORE_ACTION_RETRY] = "retry",
	[STORE_ACTION_RESEND] = "resend",
	[STORE_ACTION_RETRY_GROUPS] = "retry",
	[STORE_ACTION_TRACK] = "track",
};

/* retry --groups: the job's failed additions go again (the job reopens). */
static int job_retry_groups(struct store *s, int64_t id, int64_t *ret_changed)
{
	static const char *const sql[] = {
		"UPDATE steps SET state = 0, attempts = 0, next_at = ?2, first_at = ?2, error = NULL"
		" WHERE job_id = ?1 AND kind = 1 AND state = 2"
		" AND (SELECT state FROM jobs WHERE id = ?1) <> 3",
		"UPDATE jobs SET groups_pending = groups_pending + changes(), group_failures = 0,"
		" state = CASE WHEN changes() > 0 AND state = 4 THEN 0 ELSE state END,"
		" finished_at = CASE WHEN changes() > 0 AND state = 4 THEN NULL ELSE finished_at END"
		" WHERE id = ?1",
	};
	return job_action_arg(s, id, sql, 2, NULL, ret_changed, NULL);
}

/* track: the acceptance of the job's invited guests is read now. */
static int job_track_now(struct store *s, int64_t id, int64_t *ret_changed)
{
	static const char *const sql[] = {
		"UPDATE rows SET track_next_at = ?2 WHERE job_id = ?1 AND accepted_at IS NULL"
		" AND invited_user_id IS NOT NULL"
		" AND (state = 2 OR (state = 5 AND existing_type = 'Guest'))",
	};
	return job_action_arg(s, id, sql, 1, NULL, ret_changed, NULL);
}

int store_job_resend(struct store *s, int64_t id, uint64_t older_than_ms, unsigned max_resends,
		     bool dry_run, const struct store_actor *who, store_resend_fn fn,
		     void *userdata, int64_t *ret_changed)
{
	sqlite3_stmt *pick = NULL, *add = NULL;
	uint64_t now = time_now_ms();
	int64_t changed = 0;
	int js, rc;
	int r = begin_patient(s);
	if (r < 0)
		return r;
	r = job_state(s, id, &js);
	if (r < 0)
		goto out;
	/* a row with a resend still to go is not picked twice */
	r = sqlite_errno(sqlite3_prepare_v2(
		s->db,
		"SELECT r.id, r.line, r.email, r.resends FROM rows r WHERE r.job_id = ?1"
		" AND r.state = 2 AND r.accepted_at IS NULL AND r.resends < ?2"
		" AND COALESCE(r.invited_at, r.updated_at) <= ?3"
		" AND NOT EXISTS (SELECT 1 FROM steps WHERE row_id = r.id AND kind = 2 AND state = 0)"
		" ORDER BY r.id",
		-1, &pick, NULL));
	if (r == 0 && !dry_run)
		r = sqlite_errno(sqlite3_prepare_v2(
			s->db,
			"INSERT INTO steps (row_id, kind, arg, job_id, tenant_id, next_at, first_at)"
			" VALUES (?1, 2, '', ?2, (SELECT tenant_id FROM jobs WHERE id = ?2), ?3, ?3)"
			" ON CONFLICT DO UPDATE SET state = 0, attempts = 0, next_at = ?3,"
			" first_at = ?3, error = NULL",
			-1, &add, NULL));
	if (r < 0)
		goto out;
	sqlite3_bind_int64(pick, 1, id);
	sqlite3_bind_int(pick, 2, (int)max_resends);
	sqlite3_bind_int64(pick, 3, (sqlite3_int64)(now > older_than_ms ? now - older_than_ms : 0));
	while ((rc = sqlite3_step(pick)) == SQLITE_ROW) {
		if (fn && changed < 100) {
			r = fn(userdata, (unsigned)sqlite3_column_int(pick, 1), col_text(pick, 2),
			       (unsigned)sqlite3_column_int(pick, 3));
			if (r < 0)
				goto out;
		}
		if (add) {
			sqlite3_bind_int64(add, 1, sqlite3_column_int64(pick, 0));
			sqlite3_bind_int64(add, 2, id);
			sqlite3_bind_int64(add, 3, (sqlite3_int64)now);
			r = step_done(add);
			if (r < 0)
				goto out;
		}
		changed++;
	}
	if (rc != SQLITE_DONE) {
		r = sqlite_errno(rc);
		goto out;
	}
	if (!dry_run && who) {
		char detail[64];
		snprintf(detail, sizeof(detail), "%lld rows", (long long)changed);
		struct store_audit a = {.uid = who->uid, .user = who->user, .action = "resend",
					.job_id = id, .detail = detail};
		r = store_audit_insert(s->db, &a, now);
	}
out:
	sqlite3_finalize(pick);
	sqlite3_finalize(add);
	if (r == 0 && !dry_run)
		r = commit(s);
	else
		rollback(s);
	if (r == 0)
		*ret_changed = changed;
	return r;
}

const char *store_action_name(enum store_action a)
{
	return action_names[a];
}

int store_job_action(struct store *s, enum store_action action, int64_t id,
		     const char *error_code, const struct store_actor *who, int64_t *ret_changed)
{
	int r = -EINVAL;
	s->actor = who;
	s->actor_action = action_names[action];
	s->actor_code = action == STORE_ACTION_RETRY ? error_code : NULL;
	switch (action) {
	case STORE_ACTION_CANCEL:
		r = store_job_cancel(s, id, ret_changed);
		break;
	case STORE_ACTION_PAUSE:
		r = store_job_pause(s, id, ret_changed);
		break;
	case STORE_ACTION_RESUME:
		r = store_job_resume(s, id, ret_changed);
		break;
	case STORE_ACTION_RETRY:
		r = store_job_retry_code(s, id, error_code, ret_changed);
		break;
	case STORE_ACTION_RETRY_GROUPS:
		s->actor_code = retry_groups_mark;
		r = job_retry_groups(s, id, ret_changed);
		break;
	case STORE_ACTION_TRACK:
		r = job_track_now(s, id, ret_changed);
		break;
	case STORE_ACTION_RESEND:
		r = -EINVAL; /* store_job_resend */
		break;
	}
	s->actor = NULL;
	s->actor_action = s->actor_code = NULL;
	return r;
}

/* Run a one-row query of n integer columns into out[0..n). */
static int select_int64s(sqlite3 *db, const char *sql, int64_t *out, int n)
{
	sqlite3_stmt *st = NULL;
	int r = sqlite_errno(sqlite3_prepare_v2(db, sql, -1, &st, NULL));
	if (r < 0)
		goto out;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = sqlite_errno(rc);
		goto out;
	}
	for (int i = 0; i < n; i++)
		out[i] = sqlite3_column_int64(st, i);
out:
	sqlite3_finalize(st);
	return r;
}

int store_totals(struct store *s, int64_t *ret_active_jobs, int64_t *ret_pending,
		 int64_t *ret_in_flight)
{
	int64_t v[3];
	int r = select_int64s(s->db,
			      "SELECT COUNT(*),"
			      " COALESCE(SUM(total - succeeded - failed - cancelled - skipped), 0),"
			      " (SELECT COUNT(*) FROM rows WHERE state = 1)"
			      " FROM jobs WHERE finished_at IS NULL AND state <> 4",
			      v, 3);
	if (r == 0) {
		*ret_active_jobs = v[0];
		*ret_pending = v[1];
		*ret_in_flight = v[2] > s->unsent_total ? v[2] - s->unsent_total : 0;
	}
	return r;
}

int store_row_totals(struct store *s, int64_t *ret_succeeded, int64_t *ret_failed,
		     int64_t *ret_cancelled)
{
	int64_t v[3];
	int r = select_int64s(s->db,
			      "SELECT COALESCE(SUM(succeeded), 0), COALESCE(SUM(failed), 0),"
			      " COALESCE(SUM(cancelled), 0) FROM jobs",
			      v, 3);
	if (r == 0) {
		*ret_succeeded = v[0];
		*ret_failed = v[1];
		*ret_cancelled = v[2];
	}
	return r;
}

/* SUM(column) over unfinished jobs of tenant_id (0: every tenant). */
static int sum_unfinished(struct store *s, const char *sql, int64_t tenant_id, int64_t *ret)
{
	sqlite3_stmt *st = NULL;
	int r = sqlite_errno(sqlite3_prepare_v2(s->db, sql, -1, &st, NULL));
	if (r == 0) {
		sqlite3_bind_int64(st, 1, tenant_id);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			*ret = sqlite3_column_int64(st, 0);
		else
			r = rc == SQLITE_DONE ? 0 : sqlite_errno(rc);
	}
	sqlite3_finalize(st);
	return r;
}

#define SUM_UNFINISHED(column)                                                                 \
	"SELECT COALESCE(SUM(" column "), 0) FROM jobs WHERE finished_at IS NULL"               \
	" AND (?1 = 0 OR tenant_id = ?1)"

int store_mail_pending(struct store *s, int64_t tenant_id, int64_t *ret)
{
	return sum_unfinished(s, SUM_UNFINISHED("mail_pending"), tenant_id, ret);
}

int store_groups_pending(struct store *s, int64_t tenant_id, int64_t *ret)
{
	return sum_unfinished(s, SUM_UNFINISHED("groups_pending"), tenant_id, ret);
}

int store_prune(const char *path, uint64_t finished_before_ms, unsigned *ret_jobs)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *pick = NULL, *del_rows = NULL, *del_job = NULL, *del_steps = NULL;
	unsigned jobs = 0;
	int r = store_db_open(path, &db, NULL);
	if (r < 0)
		return r;
	sqlite3_busy_timeout(db, 5000);
	exec(db, "PRAGMA wal_autocheckpoint = 0");
	r = sqlite_errno(sqlite3_prepare_v2(
		db,
		"SELECT id, COALESCE(first_row, 0), COALESCE(last_row, -1) FROM jobs"
		" WHERE finished_at IS NOT NULL AND finished_at < ?1 AND state IN (3, 4)"
		" ORDER BY id LIMIT 1",
		-1, &pick, NULL));
	if (r == 0)
		r = sqlite_errno(sqlite3_prepare_v2(
			db, "DELETE FROM rows WHERE id BETWEEN ?1 AND ?2 AND job_id = ?3", -1,
			&del_rows, NULL));
	if (r == 0)
		r = sqlite_errno(sqlite3_prepare_v2(db, "DELETE FROM jobs WHERE id = ?1", -1,
						    &del_job, NULL));
	sqlite3_bind_int64(pick, 1, (sqlite3_int64)finished_before_ms);
	while (r == 0 && sqlite3_step(pick) == SQLITE_ROW) {
		int64_t job = sqlite3_column_int64(pick, 0);
		int64_t first = sqlite3_column_int64(pick, 1);
		int64_t last = sqlite3_column_int64(pick, 2);
		sqlite3_reset(pick);
		/* in slices, so the loop's short writes never wait long for the lock */
		for (int64_t from = first; from <= last && r == 0; from += 5000) {
			sqlite3_bind_int64(del_rows, 1, from);
			sqlite3_bind_int64(del_rows, 2, from + 4999 < last ? from + 4999 : last);
			sqlite3_bind_int64(del_rows, 3, job);
			r = step_done(del_rows);
		}
		if (r == 0)
			r = sqlite_errno(sqlite3_prepare_v2(db, "DELETE FROM steps WHERE job_id = ?1",
							    -1, &del_steps, NULL));
		if (r == 0) {
			sqlite3_bind_int64(del_steps, 1, job);
			r = step_done(del_steps);
			sqlite3_finalize(del_steps);
			del_steps = NULL;
		}
		if (r == 0) {
			sqlite3_bind_int64(del_job, 1, job);
			r = step_done(del_job);
		}
		if (r == 0)
			jobs++;
	}
	sqlite3_finalize(pick);
	sqlite3_finalize(del_rows);
	sqlite3_finalize(del_job);
	sqlite3_close(db);
	*ret_jobs = jobs;
	return r;
}
