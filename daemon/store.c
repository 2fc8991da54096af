/* SPDX-License-Identifier: MIT */
/* store: the connection of the loop thread: open/close, PRAGMAs, migrations,
 * the statement cache, the WAL checkpoint (store-private.h lists the rooms). */
#include "store-private.h"

#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "journal.h"
#include "schema.h"

const char *const store_stmt_sql[ST__MAX] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	/* rows waiting for another attempt, through the small rows_retry index */
	[ST_CLAIM_SELECT] =
		"SELECT r.id, r.job_id, r.line, r.attempts, r.email, r.display_name,"
		" COALESCE(r.redirect_url, j.redirect_url), COALESCE(r.send_email, j.send_email),"
		" COALESCE(r.message, j.message), j.language, j.cc, r.lookup, j.mail"
		" FROM jobs j JOIN rows r ON r.job_id = j.id"
		" WHERE j.tenant_id = ?1 AND j.state IN (0, 1) AND r.state = 0"
		" AND r.next_attempt_at > 0 AND r.next_attempt_at <= ?2"
		" ORDER BY j.id, r.next_attempt_at LIMIT ?3",
	[ST_ACTIVE_JOBS] = "SELECT id, first_row, last_row FROM jobs"
			   " WHERE tenant_id = ?1 AND state IN (0, 1) ORDER BY id",
	/* rows never tried: a walk along the job's id range from its cursor */
	[ST_CLAIM_FRESH] =
		"SELECT r.id, r.job_id, r.line, r.attempts, r.email, r.display_name,"
		" COALESCE(r.redirect_url, j.redirect_url), COALESCE(r.send_email, j.send_email),"
		" COALESCE(r.message, j.message), j.language, j.cc, r.lookup, j.mail"
		" FROM rows r JOIN jobs j ON j.id = r.job_id"
		" WHERE r.id > ?1 AND r.id <= ?2 AND r.state = 0 AND r.next_attempt_at = 0"
		" ORDER BY r.id LIMIT ?3",
	[ST_CLAIM_MARK] = "UPDATE rows SET state = 1, updated_at = ?2 WHERE id = ?1",
	/* the fresh rows ST_CLAIM_FRESH just read, in one statement */
	[ST_CLAIM_MARK_FRESH] = "UPDATE rows SET state = 1, updated_at = ?3"
				" WHERE id > ?1 AND id <= ?2 AND state = 0 AND next_attempt_at = 0",
	[ST_JOB_RUNNING] = "UPDATE jobs SET state = 1 WHERE id = ?1 AND state = 0",
	[ST_NEXT_DUE] = "SELECT MIN(r.next_attempt_at) FROM jobs j JOIN rows r ON r.job_id = j.id"
			" WHERE j.tenant_id = ?1 AND j.state IN (0, 1) AND r.state = 0"
			" AND r.next_attempt_at > 0",
	/* next_attempt_at = 1: due at once, found through rows_retry (behind the cursor) */
	[ST_RELEASE] = "UPDATE rows SET state = 0, next_attempt_at = 1 WHERE id = ?1 AND state = 1",
	[ST_FINISH_ROW] = "UPDATE rows SET state = ?2, attempts = ?3, next_attempt_at = ?4,"
			  " http_status = ?5, error_code = ?6, error_message = ?7, request_id = ?8,"
			  " invited_user_id = ?9, invite_redeem_url = ?10, updated_at = ?11,"
			  " client_request_id = ?13, lookup = ?14, existing_type = ?15,"
			  " existing_state = ?16,"
			  " invited_at = CASE WHEN ?2 IN (2, 5) THEN ?11 ELSE invited_at END,"
			  " track_next_at = ?17"
			  " WHERE id = ?1 AND state = 1 AND attempts = ?12",
	[ST_JOB_STATE] = "SELECT state FROM jobs WHERE id = ?1",
	[ST_JOB_COUNT] = "UPDATE jobs SET succeeded = succeeded + ?2, failed = failed + ?3,"
			 " cancelled = cancelled + ?4, skipped = skipped + ?5,"
			 " groups_pending = groups_pending + ?6, group_failures = group_failures + ?7,"
			 " accepted = accepted + ?8, mail_pending = mail_pending + ?9,"
			 " mailed = mailed + ?10 WHERE id = ?1",
	/* a cancelled job whose cancel found nothing left to cancel (every row
	 * was in flight, and then ended) completed: its state says what its
	 * rows did */
	[ST_JOB_COMPLETE] =
		"UPDATE jobs SET state = CASE WHEN state = 3 AND (cancelled > 0 OR EXISTS"
		" (SELECT 1 FROM steps WHERE job_id = ?1 AND state = 3)) THEN 3 ELSE 4 END,"
		" finished_at = ?2"
		" WHERE id = ?1 AND state IN (0, 1, 3) AND finished_at IS NULL AND " JOB_DONE_SQL,
	[ST_JOB_GET] = "SELECT j.id, j.tenant_id, t.name, j.name, j.state, j.created_at,"
		       " j.finished_at, j.submitted_uid, j.submitted_user, j.filename, j.columns,"
		       " j.redirect_url, j.send_email, j.message, j.language, j.cc,"
		       " t.blocked_reason, j.total, j.succeeded, j.failed, j.cancelled,"
		       " j.skipped, j.accepted, j.groups_pending, j.group_failures, j.skip_existing,"
		       " j.groups, j.track_ms, j.mail, j.mailed, j.mail_pending"
		       " FROM jobs j JOIN tenants t ON t.id = j.tenant_id WHERE j.id = ?1",
	[ST_JOB_IN_FLIGHT] = "SELECT COUNT(*) FROM rows WHERE job_id = ?1 AND state = 1",
	[ST_JOB_ONBOARD] = "SELECT state, track_ms, has_groups, tenant_id, mail FROM jobs WHERE id = ?1",
	/* a row whose send flag is on gets our mail after its invitation */
	[ST_STEPS_ADD_MAIL] =
		"INSERT OR IGNORE INTO steps (row_id, kind, arg, job_id, tenant_id, next_at, first_at)"
		" SELECT ?1, 3, '', ?2, ?3, ?4, ?4 FROM rows r JOIN jobs j ON j.id = r.job_id"
		" WHERE r.id = ?1 AND COALESCE(r.send_email, j.send_email)",
	/* a resend of a job with our mail: the mail goes again */
	[ST_MAIL_REARM] =
		"INSERT INTO steps (row_id, kind, arg, job_id, tenant_id, next_at, first_at)"
		" SELECT ?1, 3, '', ?2, ?3, ?4, ?4 FROM rows r JOIN jobs j ON j.id = r.job_id"
		" WHERE r.id = ?1 AND COALESCE(r.send_email, j.send_email)"
		" ON CONFLICT DO UPDATE SET state = 0, attempts = 0, next_at = ?4, first_at = ?4,"
		" error = NULL WHERE state <> 0",
	[ST_MAIL_DONE] = "UPDATE rows SET mail_sent_at = ?2 WHERE id = ?1",
	[ST_MAIL_LOG] = "INSERT INTO mail_log (mailbox, at) VALUES (?1, ?2)",
	/* SPEC §8's claims (store-steps.c): ?1 tenant, ?2 now, ?3 limit, ?4
	 * kind; steps of paused jobs wait, a cancelled job's were given up */
	[ST_CLAIM_STEPS] =
		"SELECT st.row_id, st.job_id, st.arg, st.attempts, st.first_at, r.invited_user_id,"
		" r.line, st.kind FROM steps st JOIN rows r ON r.id = st.row_id"
		" JOIN jobs j ON j.id = st.job_id"
		" WHERE st.tenant_id = ?1 AND st.kind = ?4 AND st.state = 0 AND st.next_at <= ?2"
		" AND j.state IN (0, 1, 4) ORDER BY st.next_at LIMIT ?3",
	/* a resend sends the invitation mail again: send_email on */
	[ST_CLAIM_RESENDS] =
		"SELECT r.id, r.job_id, r.line, st.attempts, r.email, r.display_name,"
		" COALESCE(r.redirect_url, j.redirect_url), 1,"
		" COALESCE(r.message, j.message), j.language, j.cc, j.mail"
		" FROM steps st JOIN rows r ON r.id = st.row_id JOIN jobs j ON j.id = st.job_id"
		" WHERE st.tenant_id = ?1 AND st.kind = ?4 AND st.state = 0 AND st.next_at <= ?2"
		" AND j.state IN (0, 1, 4) ORDER BY st.next_at LIMIT ?3",
	/* without a redeem URL (a guest found after a lost attempt) the
	 * redirect URL: signing in there redeems (just-in-time redemption) */
	[ST_CLAIM_MAILS] =
		"SELECT r.id, r.job_id, r.line, st.attempts, st.first_at, r.email, r.display_name,"
		" COALESCE(r.invite_redeem_url, r.redirect_url, j.redirect_url),"
		" COALESCE(r.message, j.message), j.submitted_user"
		" FROM steps st JOIN rows r ON r.id = st.row_id JOIN jobs j ON j.id = st.job_id"
		" WHERE st.tenant_id = ?1 AND st.kind = ?4 AND st.state = 0 AND st.next_at <= ?2"
		" AND j.state IN (0, 1, 4) ORDER BY st.next_at LIMIT ?3",
	/* the rows_track index holds only tracked rows; a paused job's wait */
	[ST_CLAIM_TRACK] =
		"SELECT r.id, r.job_id, r.invited_user_id, COALESCE(r.invited_at, r.updated_at),"
		" j.track_days FROM rows r INDEXED BY rows_track JOIN jobs j ON j.id = r.job_id"
		" WHERE r.track_next_at IS NOT NULL AND r.track_next_at <= ?2"
		" AND j.tenant_id = ?1 AND j.state <> 2 ORDER BY r.track_next_at LIMIT ?3",
	[ST_STEP_LEASE] = "UPDATE steps SET next_at = ?4 WHERE row_id = ?1 AND kind = ?2 AND arg = ?3",
	[ST_TRACK_LEASE] = "UPDATE rows SET track_next_at = ?2 WHERE id = ?1",
	[ST_STEPS_NEXT_DUE] = "SELECT MIN(st.next_at) FROM steps st JOIN jobs j ON j.id = st.job_id"
			      " WHERE st.tenant_id = ?1 AND st.kind = ?2 AND st.state = 0"
			      " AND j.state IN (0, 1, 4)",
	[ST_TRACK_NEXT_DUE] = "SELECT MIN(r.track_next_at) FROM rows r INDEXED BY rows_track"
			      " JOIN jobs j ON j.id = r.job_id WHERE r.track_next_at IS NOT NULL"
			      " AND j.tenant_id = ?1 AND j.state <> 2",
	[ST_MAIL_SENT] = "SELECT COUNT(*), MIN(at) FROM mail_log WHERE mailbox = ?1 AND at >= ?2",
	[ST_MAIL_LOG_PRUNE] = "DELETE FROM mail_log WHERE mailbox = ?1 AND at < ?2",
	/* the job's groups and the row's own, once each (schema/0006) */
	[ST_STEPS_ADD_GROUPS] =
		"INSERT OR IGNORE INTO steps (row_id, kind, arg, job_id, tenant_id, next_at, first_at)"
		" SELECT ?1, 1, lower(value), ?2, ?3, ?4, ?4 FROM"
		" (SELECT value FROM json_each((SELECT groups FROM jobs WHERE id = ?2))"
		" UNION SELECT value FROM json_each((SELECT groups FROM rows WHERE id = ?1)))",
	[ST_STEP_FINISH] = "UPDATE steps SET state = ?4, attempts = ?5, next_at = ?6, error = ?7"
			   " WHERE row_id = ?1 AND kind = ?2 AND arg = ?3 AND state = 0"
			   " RETURNING job_id",
	[ST_STEP_ROW_FAILED] = "SELECT COUNT(*) FROM steps WHERE row_id = ?1 AND kind = 1"
			       " AND state = 2",
	[ST_RESEND_DONE] =
		"UPDATE rows SET invite_redeem_url = ?2, resends = resends + 1, invited_at = ?3,"
		" track_next_at = CASE WHEN accepted_at IS NULL AND ?4 > 0 THEN ?3 + ?4"
		" ELSE track_next_at END WHERE id = ?1",
	[ST_TRACK_FINISH] = "UPDATE rows SET accepted_at = ?2, track_next_at = ?3"
			    " WHERE id = ?1 AND accepted_at IS NULL",
};

const char *row_state_name(int state)
{
	static const char *const names[] = {"pending", "in_flight", "succeeded", "failed",
					    "cancelled", "skipped"};
	return state >= 0 && state <= ROW_STATE_SKIPPED ? names[state] : "unknown";
}

const char *job_state_name(int state)
{
	static const char *const names[] = {"queued",    "running",   "paused",
					    "cancelled", "completed", "blocked"};
	return state >= 0 && state <= JOB_STATE_BLOCKED ? names[state] : "unknown";
}

int row_state_from_name(const char *name)
{
	for (int i = ROW_STATE_PENDING; i <= ROW_STATE_SKIPPED; i++)
		if (strcmp(name, row_state_name(i)) == 0)
			return i;
	return -EINVAL;
}

int row_filter_from_name(const char *name)
{
	if (strcmp(name, "accepted") == 0)
		return ROW_FILTER_ACCEPTED;
	if (strcmp(name, "not-accepted") == 0)
		return ROW_FILTER_NOT_ACCEPTED;
	if (strcmp(name, "group-failed") == 0)
		return ROW_FILTER_GROUP_FAILED;
	return row_state_from_name(name);
}

int store_db_open(const char *path, sqlite3 **ret, char **ret_error)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		if (ret_error) {
			struct buf m = BUF_INIT;
			buf_printf(&m, "cannot open database '%s': %s", path,
				   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
			*ret_error = buf_steal(&m);
		}
		sqlite3_close(db);
		return sqlite_errno(rc);
	}
	/* WAL: readers never block the writer. synchronous=NORMAL: a commit is
	 * durable against a crash of the daemon; a power cut may lose the last
	 * transactions, whose rows are then sent again (docs/architecture.md). */
	int r = exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
			 " PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY;");
	if (r < 0) {
		if (ret_error) {
			struct buf m = BUF_INIT;
			buf_printf(&m, "cannot set up database '%s': %s", path, sqlite3_errmsg(db));
			*ret_error = buf_steal(&m);
		}
		sqlite3_close(db);
		return r;
	}
	*ret = db;
	return 0;
}

static int migrate(sqlite3 *db, char **ret_error)
{
	sqlite3_stmt *st = NULL;
	int version = 0;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > (int)schema_version) {
		struct buf m = BUF_INIT;
		buf_printf(&m, "database schema version %d is newer than this invited (%u)",
			   version, schema_version);
		*ret_error = buf_steal(&m);
		return -EPROTO;
	}
	for (unsigned v = (unsigned)version; v < schema_version; v++) {
		struct buf sql = BUF_INIT;
		buf_printf(&sql, "BEGIN IMMEDIATE; %s; PRAGMA user_version = %u; COMMIT;",
			   schema_migrations[v], v + 1);
		char *err = NULL;
		int rc = sqlite3_exec(db, sql.data, NULL, NULL, &err);
		buf_finish(&sql);
		if (rc != SQLITE_OK) {
			struct buf m = BUF_INIT;
			buf_printf(&m, "cannot migrate database to version %u: %s", v + 1,
				   err ? err : sqlite3_errstr(rc));
			sqlite3_free(err);
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			*ret_error = buf_steal(&m);
			return sqlite_errno(rc);
		}
	}
	return 0;
}

int store_open(struct store **ret, const char *path, char **ret_error)
{
	int r;
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->path = strdup(path);
	if (!s->path) {
		r = -ENOMEM;
		goto out;
	}
	r = store_db_open(path, &s->db, ret_error);
	if (r < 0)
		goto out;
	sqlite3_busy_timeout(s->db, 5000);
	r = migrate(s->db, ret_error);
	if (r < 0)
		goto out;
	for (int i = 0; i < ST__MAX; i++) {
		int rc = sqlite3_prepare_v3(s->db, store_stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &s->stmt[i], NULL);
		if (rc != SQLITE_OK) {
			struct buf m = BUF_INIT;
			buf_printf(&m, "cannot prepare statement %d: %s", i, sqlite3_errmsg(s->db));
			*ret_error = buf_steal(&m);
			r = sqlite_errno(rc);
			goto out;
		}
	}
	struct buf jpath = BUF_INIT;
	r = buf_printf(&jpath, "%s-results", path);
	if (r == 0)
		r = journal_open(jpath.data, &s->journal);
	if (r < 0) {
		struct buf m = BUF_INIT;
		buf_printf(&m, "cannot open the result journal %s: %s", jpath.data ? jpath.data : path,
			   strerror(-r));
		*ret_error = buf_steal(&m);
		buf_finish(&jpath);
		goto out;
	}
	buf_finish(&jpath);
	/* checkpoints run on a worker thread (store_checkpoint), never here */
	exec(s->db, "PRAGMA wal_autocheckpoint = 0");
	/* from here on the loop thread never waits for a lock */
	sqlite3_busy_timeout(s->db, 0);
	*ret = s;
	return 0;
out:
	store_close(s);
	return r;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->db && (s->queue_len || s->steps_len || s->track_len)) {
		sqlite3_busy_timeout(s->db, 5000);
		store_flush(s);
	}
	/* what is still queued is journaled (or lost with the process anyway) */
	store_journal_write(s);
	journal_close(s->journal);
	for (size_t i = 0; i < s->queue_len; i++)
		store_result_clear(&s->queue[i]);
	free(s->queue);
	for (size_t i = 0; i < s->steps_len; i++) {
		free(s->steps_q[i].arg);
		free(s->steps_q[i].error);
		free(s->steps_q[i].redeem_url);
	}
	free(s->steps_q);
	free(s->track_q);
	free(s->cursors);
	free(s->unsent);
	for (int i = 0; i < ST__MAX; i++)
		sqlite3_finalize(s->stmt[i]);
	if (s->db)
		sqlite3_close(s->db);
	free(s->path);
	free(s);
}

void store_set_job_done(struct store *s, store_job_done_fn fn, void *userdata)
{
	s->job_done = fn;
	s->job_done_userdata = userdata;
}

const char *store_path(const struct store *s)
{
	return s->path;
}

int store_checkpoint(const char *path, int *ret_wal_pages)
{
	sqlite3 *db = NULL;
	int r = store_db_open(path, &db, NULL);
	if (r < 0)
		return r;
	int log = 0, done = 0;
	int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
	r = sqlite_errno(rc);
	if (r == 0 && ret_wal_pages)
		*ret_wal_pages = log;
	if (r == 0 && log > 0 && done == log) {
		/* all copied: start the WAL over so it does not grow without end */
		sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	}
	sqlite3_close(db);
	return r;
}
