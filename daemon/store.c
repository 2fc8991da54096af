/* SPDX-License-Identifier: MIT */
#include "store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "csv.h"
#include "journal.h"
#include "log.h"
#include "schema.h"
#include "timeutil.h"

#define FLUSH_MAX 4096 /* results written per transaction at most */

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_CLAIM_SELECT,
	ST_ACTIVE_JOBS,
	ST_CLAIM_FRESH,
	ST_CLAIM_MARK,
	ST_CLAIM_MARK_FRESH,
	ST_JOB_RUNNING,
	ST_NEXT_DUE,
	ST_RELEASE,
	ST_FINISH_ROW,
	ST_JOB_STATE,
	ST_JOB_COUNT,
	ST_JOB_COMPLETE,
	ST_JOB_GET,
	ST_JOB_IN_FLIGHT,
	ST__MAX,
};

static const char *const stmt_sql[ST__MAX] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	/* rows waiting for another attempt, through the small rows_retry index */
	[ST_CLAIM_SELECT] =
		"SELECT r.id, r.job_id, r.line, r.attempts, r.email, r.display_name,"
		" COALESCE(r.redirect_url, j.redirect_url), COALESCE(r.send_email, j.send_email),"
		" COALESCE(r.message, j.message), j.language, j.cc"
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
		" COALESCE(r.message, j.message), j.language, j.cc"
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
			  " client_request_id = ?13"
			  " WHERE id = ?1 AND state = 1 AND attempts = ?12",
	[ST_JOB_STATE] = "SELECT state FROM jobs WHERE id = ?1",
	[ST_JOB_COUNT] = "UPDATE jobs SET succeeded = succeeded + ?2, failed = failed + ?3,"
			 " cancelled = cancelled + ?4 WHERE id = ?1",
	/* a cancelled job whose cancel found nothing left to cancel (every row
	 * was in flight, and then ended) completed: its state says what its
	 * rows did */
	[ST_JOB_COMPLETE] =
		"UPDATE jobs SET state = CASE WHEN state = 3 AND cancelled > 0 THEN 3 ELSE 4 END,"
		" finished_at = ?2"
		" WHERE id = ?1 AND state IN (0, 1, 3) AND finished_at IS NULL"
		" AND total = succeeded + failed + cancelled",
	[ST_JOB_GET] = "SELECT j.id, j.tenant_id, t.name, j.name, j.state, j.created_at,"
		       " j.finished_at, j.submitted_uid, j.submitted_user, j.filename, j.columns,"
		       " j.redirect_url, j.send_email, j.message, j.language, j.cc,"
		       " t.blocked_reason, j.total, j.succeeded, j.failed, j.cancelled"
		       " FROM jobs j JOIN tenants t ON t.id = j.tenant_id WHERE j.id = ?1",
	[ST_JOB_IN_FLIGHT] = "SELECT COUNT(*) FROM rows WHERE job_id = ?1 AND state = 1",
};

struct store {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmt[ST__MAX];
	struct store_result *queue; /* results waiting for store_flush() */
	size_t queue_len, queue_cap;
	size_t at_risk; /* queued results not on disk in the journal */
	struct journal *journal;
	store_job_done_fn job_done;
	void *job_done_userdata;
	/* store_job_action(): who to record in the audit trail with the change */
	const struct store_actor *actor;
	const char *actor_action, *actor_code;
	/* per active job: the last row id the fresh walk has passed */
	struct cursor {
		int64_t job_id;
		int64_t after;
	} *cursors;
	size_t n_cursors, cap_cursors;
	/* per job: claimed rows (in flight in the database, for crash safety)
	 * whose request is not on the wire yet; not shown as in flight */
	struct unsent {
		int64_t job_id;
		int64_t n;
	} *unsent;
	size_t n_unsent, cap_unsent;
	int64_t unsent_total;
};

const char *row_state_name(int state)
{
	static const char *const names[] = {"pending", "in_flight", "succeeded", "failed",
					    "cancelled"};
	return state >= 0 && state <= ROW_STATE_CANCELLED ? names[state] : "unknown";
}

const char *job_state_name(int state)
{
	static const char *const names[] = {"queued",    "running",   "paused",
					    "cancelled", "completed", "blocked"};
	return state >= 0 && state <= JOB_STATE_BLOCKED ? names[state] : "unknown";
}

int row_state_from_name(const char *name)
{
	for (int i = ROW_STATE_PENDING; i <= ROW_STATE_CANCELLED; i++)
		if (strcmp(name, row_state_name(i)) == 0)
			return i;
	return -EINVAL;
}

/* Translate an SQLite result code: the one place that does. */
static int sqlite_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
	case SQLITE_PERM:
		return -EACCES;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	default:
		return -EIO;
	}
}

static char *dup_col(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return t ? strdup((const char *)t) : NULL;
}

static const char *col_text(sqlite3_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(st, col);
}

static void bind_text_or_null(sqlite3_stmt *st, int idx, const char *text)
{
	if (text)
		sqlite3_bind_text(st, idx, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, idx);
}

/* Run a prepared statement to completion; returns 0 or negative errno. */
static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sqlite_errno(rc);
}

static int exec(sqlite3 *db, const char *sql)
{
	return sqlite_errno(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static int open_db(const char *path, sqlite3 **ret, char **ret_error)
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
	r = open_db(path, &s->db, ret_error);
	if (r < 0)
		goto out;
	sqlite3_busy_timeout(s->db, 5000);
	r = migrate(s->db, ret_error);
	if (r < 0)
		goto out;
	for (int i = 0; i < ST__MAX; i++) {
		int rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
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

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->db && s->queue_len) {
		sqlite3_busy_timeout(s->db, 5000);
		store_flush(s);
	}
	/* what is still queued is journaled (or lost with the process anyway) */
	store_journal_write(s);
	journal_close(s->journal);
	for (size_t i = 0; i < s->queue_len; i++)
		store_result_clear(&s->queue[i]);
	free(s->queue);
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

static int begin(struct store *s)
{
	return step_done(s->stmt[ST_BEGIN]);
}

static int commit(struct store *s)
{
	int r = step_done(s->stmt[ST_COMMIT]);
	if (r < 0)
		step_done(s->stmt[ST_ROLLBACK]);
	return r;
}

static void rollback(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		step_done(s->stmt[ST_ROLLBACK]);
}

/* Admin actions may wait a little for an import's lock; sending never does. */
static int begin_patient(struct store *s)
{
	sqlite3_busy_timeout(s->db, 2000);
	int r = begin(s);
	sqlite3_busy_timeout(s->db, 0);
	return r;
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

int store_tenant_ensure(struct store *s, const char *name, int64_t *ret_id)
{
	sqlite3_stmt *st = NULL;
	int r = sqlite_errno(sqlite3_prepare_v2(
		s->db, "INSERT INTO tenants(name) VALUES (?1) ON CONFLICT(name) DO UPDATE SET name = name RETURNING id",
		-1, &st, NULL));
	if (r < 0)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_busy_timeout(s->db, 5000);
	int rc = sqlite3_step(st);
	sqlite3_busy_timeout(s->db, 0);
	if (rc != SQLITE_ROW) {
		r = sqlite_errno(rc);
		goto out;
	}
	*ret_id = sqlite3_column_int64(st, 0);
out:
	sqlite3_finalize(st);
	return r;
}

int store_tenant_block_get(struct store *s, int64_t tenant_id, char **ret_reason)
{
	sqlite3_stmt *st = NULL;
	int r = sqlite_errno(sqlite3_prepare_v2(
		s->db, "SELECT blocked_reason FROM tenants WHERE id = ?1", -1, &st, NULL));
	if (r < 0)
		goto out;
	sqlite3_bind_int64(st, 1, tenant_id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret_reason = dup_col(st, 0);
	else if (rc == SQLITE_DONE)
		r = -ENOENT;
	else
		r = sqlite_errno(rc);
out:
	sqlite3_finalize(st);
	return r;
}

int store_tenant_block_set(struct store *s, int64_t tenant_id, const char *reason)
{
	sqlite3_stmt *st = NULL;
	int r = sqlite_errno(sqlite3_prepare_v2(
		s->db, "UPDATE tenants SET blocked_reason = ?2, blocked_at = ?3 WHERE id = ?1", -1,
		&st, NULL));
	if (r < 0)
		goto out;
	sqlite3_bind_int64(st, 1, tenant_id);
	bind_text_or_null(st, 2, reason);
	if (reason)
		sqlite3_bind_int64(st, 3, (sqlite3_int64)time_now_ms());
	sqlite3_busy_timeout(s->db, 2000);
	r = step_done(st);
	sqlite3_busy_timeout(s->db, 0);
out:
	sqlite3_finalize(st);
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

static int64_t unsent_of(const struct store *s, int64_t job_id)
{
	for (size_t i = 0; i < s->n_unsent; i++)
		if (s->unsent[i].job_id == job_id)
			return s->unsent[i].n;
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

static int job_state(struct store *s, int64_t job_id, int *ret)
{
	sqlite3_stmt *st = s->stmt[ST_JOB_STATE];
	sqlite3_bind_int64(st, 1, job_id);
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : sqlite_errno(rc);
	if (r == 0)
		*ret = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	return r;
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
	if (j->reason && (j->state == JOB_STATE_QUEUED || j->state == JOB_STATE_RUNNING))
		j->state = JOB_STATE_BLOCKED;
	if (!j->tenant || !j->user || !j->columns || !j->redirect_url) {
		store_job_clear(j);
		return -ENOMEM;
	}
	if (j->succeeded + j->failed + j->cancelled < j->total) {
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
	const char *get = stmt_sql[ST_JOB_GET];
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
		   ", client_request_id"
		   " FROM rows WHERE job_id = ?1 AND id > ?2 %s ORDER BY id LIMIT ?3",
		   with_fields ? "fields, redirect_url, message" : "NULL, NULL, NULL",
		   state >= 0 ? "AND state = ?4" : "");
	int r = sqlite_errno(sqlite3_prepare_v2(s->db, sql.data, -1, &st, NULL));
	buf_finish(&sql);
	if (r < 0)
		goto out;
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_int64(st, 2, cursor);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1); /* one more: is there a next page? */
	if (state >= 0)
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

/* Run admin statements on a job inside a transaction, after checking the job
 * exists. ?1 is the id, ?2 now, ?3 arg (NULL binds null). *ret_changed: the
 * first statement's changes; *ret_last_changed (may be NULL): the last one's. */
static int audit_insert(sqlite3 *db, const struct store_audit *a, uint64_t now)
{
	sqlite3_stmt *st = NULL;
	int r = sqlite_errno(sqlite3_prepare_v2(
		db,
		"INSERT INTO audit(at, uid, user, action, job_id, sha256, detail)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
		-1, &st, NULL));
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	if (a->uid >= 0)
		sqlite3_bind_int64(st, 2, a->uid);
	else
		sqlite3_bind_null(st, 2);
	sqlite3_bind_text(st, 3, a->user ? a->user : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, a->action, -1, SQLITE_STATIC);
	if (a->job_id > 0)
		sqlite3_bind_int64(st, 5, a->job_id);
	else
		sqlite3_bind_null(st, 5);
	bind_text_or_null(st, 6, a->sha256);
	bind_text_or_null(st, 7, a->detail);
	r = step_done(st);
	sqlite3_finalize(st);
	return r;
}

/* The audit entry of the action under way (store_job_action), in its
 * transaction. */
static int audit_action(struct store *s, int64_t id, int64_t changed)
{
	if (!s->actor)
		return 0;
	char detail[160];
	snprintf(detail, sizeof(detail), "%lld changed%s%.100s", (long long)changed,
		 s->actor_code ? "; rows failed with " : "", s->actor_code ? s->actor_code : "");
	struct store_audit a = {.uid = s->actor->uid, .user = s->actor->user,
				.action = s->actor_action, .job_id = id, .detail = detail};
	return audit_insert(s->db, &a, time_now_ms());
}

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
		"UPDATE jobs SET finished_at = ?2, state = CASE WHEN cancelled > 0 THEN 3 ELSE 4 END"
		" WHERE id = ?1 AND state = 3 AND finished_at IS NULL"
		" AND total = succeeded + failed + cancelled",
	};
	int64_t finished = 0;
	int r = job_action_arg(s, id, sql, 3, NULL, ret_changed, &finished);
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
		" AND total = succeeded + failed + cancelled",
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
};

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
	}
	s->actor = NULL;
	s->actor_action = s->actor_code = NULL;
	return r;
}

int store_audit_add(struct store *s, const struct store_audit *a)
{
	sqlite3_busy_timeout(s->db, 2000);
	int r = audit_insert(s->db, a, time_now_ms());
	sqlite3_busy_timeout(s->db, 0);
	return r;
}

int store_audit_list(struct store *s, int64_t job_id, int64_t before, unsigned limit,
		     store_audit_fn fn, void *userdata, int64_t *ret_next)
{
	return store_audit_list_owned(s, -1, job_id, before, limit, fn, userdata, ret_next);
}

int store_audit_list_owned(struct store *s, int64_t uid, int64_t job_id, int64_t before,
			   unsigned limit, store_audit_fn fn, void *userdata, int64_t *ret_next)
{
	sqlite3_stmt *st = NULL;
	int r = sqlite_errno(sqlite3_prepare_v2(
		s->db,
		"SELECT id, at, uid, user, action, job_id, sha256, detail FROM audit"
		" WHERE (?1 = 0 OR job_id = ?1) AND (?2 = 0 OR id < ?2)"
		" AND (?4 < 0 OR uid = ?4 OR job_id IN (SELECT id FROM jobs WHERE submitted_uid = ?4))"
		" ORDER BY id DESC LIMIT ?3",
		-1, &st, NULL));
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 4, uid);
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_int64(st, 2, before);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1);
	int64_t next = 0;
	unsigned n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_audit a = {
			.id = sqlite3_column_int64(st, 0),
			.at = (uint64_t)sqlite3_column_int64(st, 1),
			.uid = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1
									 : sqlite3_column_int64(st, 2),
			.user = col_text(st, 3),
			.action = col_text(st, 4),
			.job_id = sqlite3_column_int64(st, 5),
			.sha256 = col_text(st, 6),
			.detail = col_text(st, 7),
		};
		if (n == limit) {
			next = a.id + 1;
			break;
		}
		n++;
		int f = fn(userdata, &a);
		if (f < 0) {
			r = f;
			break;
		}
		if (f > 0) {
			next = a.id;
			break;
		}
	}
	if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = sqlite_errno(rc);
	sqlite3_finalize(st);
	if (r == 0 && ret_next)
		*ret_next = next;
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
			      "SELECT COUNT(*), COALESCE(SUM(total - succeeded - failed - cancelled), 0),"
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

int store_checkpoint(const char *path, int *ret_wal_pages)
{
	sqlite3 *db = NULL;
	int r = open_db(path, &db, NULL);
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

int store_prune(const char *path, uint64_t finished_before_ms, unsigned *ret_jobs)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *pick = NULL, *del_rows = NULL, *del_job = NULL;
	unsigned jobs = 0;
	int r = open_db(path, &db, NULL);
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

/* ---- import (worker thread) ---- */

struct store_import {
	sqlite3 *db;
	int64_t uid;
	char *user;
	sqlite3_stmt *insert;
	int64_t job_id;
	int64_t rows;
	int64_t first_row, last_row;
	uint64_t *hashes; /* email_hash() of every row, for store_import_duplicates */
	size_t n_hashes, cap_hashes;
	uint64_t now;
	bool committed;
};

int store_import_begin(const char *path, const struct store_import_spec *spec,
		       struct store_import **ret)
{
	int r;
	sqlite3_stmt *job = NULL;
	struct store_import *imp = calloc(1, sizeof(*imp));
	if (!imp)
		return -ENOMEM;
	imp->now = time_now_ms();
	imp->uid = spec->uid;
	imp->user = strdup(spec->user ? spec->user : "");
	if (!imp->user) {
		r = -ENOMEM;
		goto out;
	}
	r = open_db(path, &imp->db, NULL);
	if (r < 0)
		goto out;
	exec(imp->db, "PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = FILE;"
		       " PRAGMA cache_size = -4096");
	/* a worker thread may wait for the loop's short transactions */
	sqlite3_busy_timeout(imp->db, 30000);
	r = exec(imp->db, "BEGIN IMMEDIATE");
	if (r < 0)
		goto out;
	r = sqlite_errno(sqlite3_prepare_v2(
		imp->db,
		"INSERT INTO jobs(tenant_id, name, state, created_at, submitted_uid, submitted_user,"
		" filename, redirect_url, send_email, message, language, cc)"
		" VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
		-1, &job, NULL));
	if (r < 0)
		goto out;
	sqlite3_bind_int64(job, 1, spec->tenant_id);
	bind_text_or_null(job, 2, spec->name);
	sqlite3_bind_int64(job, 3, (sqlite3_int64)imp->now);
	sqlite3_bind_int64(job, 4, spec->uid);
	sqlite3_bind_text(job, 5, spec->user, -1, SQLITE_STATIC);
	bind_text_or_null(job, 6, spec->filename);
	sqlite3_bind_text(job, 7, spec->redirect_url, -1, SQLITE_STATIC);
	sqlite3_bind_int(job, 8, spec->send_email);
	bind_text_or_null(job, 9, spec->message);
	bind_text_or_null(job, 10, spec->language);
	bind_text_or_null(job, 11, spec->cc);
	r = step_done(job);
	if (r < 0)
		goto out;
	imp->job_id = sqlite3_last_insert_rowid(imp->db);
	r = sqlite_errno(sqlite3_prepare_v2(
		imp->db,
		"INSERT INTO rows(job_id, line, email, display_name, redirect_url, send_email,"
		" message, fields, updated_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
		-1, &imp->insert, NULL));
	if (r < 0)
		goto out;
	sqlite3_bind_int64(imp->insert, 1, imp->job_id);
	sqlite3_bind_int64(imp->insert, 9, (sqlite3_int64)imp->now);
	*ret = imp;
	imp = NULL;
out:
	sqlite3_finalize(job);
	store_import_destroy(imp);
	return r;
}

int store_import_columns(struct store_import *imp, const char *columns_json)
{
	sqlite3_stmt *st = NULL;
	int r = sqlite_errno(sqlite3_prepare_v2(imp->db, "UPDATE jobs SET columns = ?2 WHERE id = ?1",
						-1, &st, NULL));
	if (r == 0) {
		sqlite3_bind_int64(st, 1, imp->job_id);
		sqlite3_bind_text(st, 2, columns_json, -1, SQLITE_STATIC);
		r = step_done(st);
	}
	sqlite3_finalize(st);
	return r;
}

/* FNV-1a over the ASCII-lowercased address: duplicates are looked for among
 * equal hashes only, then compared in full (store_import_duplicates). */
static uint64_t email_hash(const char *email)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (const unsigned char *p = (const unsigned char *)email; *p; p++) {
		unsigned char c = *p >= 'A' && *p <= 'Z' ? (unsigned char)(*p + 32) : *p;
		h = (h ^ c) * UINT64_C(1099511628211);
	}
	return h;
}

int store_import_row(struct store_import *imp, const struct csv_row *row, const char *fields_json)
{
	sqlite3_stmt *st = imp->insert;
	sqlite3_bind_int64(st, 2, row->line);
	sqlite3_bind_text(st, 3, row->email, -1, SQLITE_STATIC);
	bind_text_or_null(st, 4, row->display_name);
	bind_text_or_null(st, 5, row->redirect_url);
	if (row->send_email == CSV_FLAG_UNSET)
		sqlite3_bind_null(st, 6);
	else
		sqlite3_bind_int(st, 6, row->send_email == CSV_FLAG_TRUE);
	bind_text_or_null(st, 7, row->message);
	sqlite3_bind_text(st, 8, fields_json, -1, SQLITE_STATIC);
	if (imp->n_hashes == imp->cap_hashes) {
		size_t cap = imp->cap_hashes ? imp->cap_hashes * 2 : 4096;
		uint64_t *h = realloc(imp->hashes, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		imp->hashes = h;
		imp->cap_hashes = cap;
	}
	int r = step_done(st);
	if (r < 0)
		return r;
	imp->hashes[imp->n_hashes++] = email_hash(row->email);
	imp->last_row = sqlite3_last_insert_rowid(imp->db);
	if (imp->rows++ == 0)
		imp->first_row = imp->last_row;
	return 0;
}

/* The first UPLOAD-sized set of duplicates by line: a max-heap on line. */
struct dup_heap {
	size_t n, cap;
	struct dup_item {
		unsigned line, first;
		char *email;
	} *items;
};

static void heap_swap(struct dup_heap *h, size_t a, size_t b)
{
	struct dup_item t = h->items[a];
	h->items[a] = h->items[b];
	h->items[b] = t;
}

static void heap_sift_down(struct dup_heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && h->items[l].line > h->items[m].line)
			m = l;
		if (r < h->n && h->items[r].line > h->items[m].line)
			m = r;
		if (m == i)
			return;
		heap_swap(h, i, m);
		i = m;
	}
}

/* Keep the cap smallest lines. 0 or -ENOMEM. */
static int heap_offer(struct dup_heap *h, unsigned line, unsigned first, const char *email)
{
	if (h->n == h->cap) {
		if (h->cap == 0 || h->items[0].line < line)
			return 0;
		free(h->items[0].email);
		h->items[0] = h->items[--h->n];
		heap_sift_down(h, 0);
	}
	char *e = strdup(email);
	if (!e)
		return -ENOMEM;
	size_t i = h->n++;
	h->items[i] = (struct dup_item){line, first, e};
	while (i > 0 && h->items[(i - 1) / 2].line < h->items[i].line) {
		heap_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	return 0;
}

static int cmp_line(const void *a, const void *b)
{
	const struct dup_item *x = a, *y = b;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* In-place quicksort of 64-bit values (glibc's qsort may allocate a copy:
 * at a million rows that would double the memory this needs). */
static void sort_u64(uint64_t *a, size_t n)
{
	while (n > 16) {
		uint64_t x = a[0], y = a[n / 2], z = a[n - 1];
		uint64_t pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
		size_t i = 0, j = n - 1;
		for (;;) {
			while (a[i] < pivot)
				i++;
			while (a[j] > pivot)
				j--;
			if (i >= j)
				break;
			uint64_t t = a[i];
			a[i++] = a[j];
			a[j--] = t;
		}
		/* recurse into the smaller side, loop on the larger */
		if (j + 1 < n - j - 1) {
			sort_u64(a, j + 1);
			a += j + 1;
			n -= j + 1;
		} else {
			sort_u64(a + j + 1, n - j - 1);
			n = j + 1;
		}
	}
	for (size_t i = 1; i < n; i++) {
		uint64_t v = a[i];
		size_t k = i;
		for (; k > 0 && a[k - 1] > v; k--)
			a[k] = a[k - 1];
		a[k] = v;
	}
}

/* Index of v in the sorted a[0..n), or n when absent. */
static size_t find_sorted(const uint64_t *a, size_t n, uint64_t v)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && a[lo] == v ? lo : n;
}

/* The first line of each address among the rows whose hash is shared;
 * chained per hash (a different address with the same hash is a collision). */
struct seen {
	struct seen *next;
	unsigned line;
	char email[];
};

int store_import_duplicates(struct store_import *imp, size_t max, store_dup_fn fn, void *userdata,
			    size_t *ret_count)
{
	sqlite3_stmt *st = NULL;
	struct dup_heap heap = {.cap = max};
	struct seen **seen = NULL; /* per shared hash */
	size_t count = 0, n_dup = 0;
	int rc, r = 0;

	*ret_count = 0;
	sort_u64(imp->hashes, imp->n_hashes);
	/* the shared hashes, compacted to the front of the array */
	for (size_t i = 1; i < imp->n_hashes; i++)
		if (imp->hashes[i] == imp->hashes[i - 1] &&
		    (n_dup == 0 || imp->hashes[n_dup - 1] != imp->hashes[i]))
			imp->hashes[n_dup++] = imp->hashes[i];
	if (n_dup == 0)
		return 0; /* the usual case: no row is read back */

	heap.items = calloc(max ? max : 1, sizeof(*heap.items));
	seen = calloc(n_dup, sizeof(*seen));
	if (!heap.items || !seen) {
		r = -ENOMEM;
		goto out;
	}
	r = sqlite_errno(sqlite3_prepare_v2(
		imp->db, "SELECT line, email FROM rows WHERE id BETWEEN ?1 AND ?2 ORDER BY id", -1,
		&st, NULL));
	if (r < 0)
		goto out;
	sqlite3_bind_int64(st, 1, imp->first_row);
	sqlite3_bind_int64(st, 2, imp->last_row);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *email = col_text(st, 1);
		size_t k = find_sorted(imp->hashes, n_dup, email_hash(email));
		if (k == n_dup)
			continue;
		unsigned line = (unsigned)sqlite3_column_int64(st, 0);
		struct seen *e = seen[k];
		while (e && strcasecmp(e->email, email) != 0)
			e = e->next;
		if (e) {
			count++;
			r = heap_offer(&heap, line, e->line, email);
			if (r < 0)
				goto out;
			continue;
		}
		size_t len = strlen(email) + 1;
		e = malloc(sizeof(*e) + len);
		if (!e) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(e->email, email, len);
		e->line = line;
		e->next = seen[k];
		seen[k] = e;
	}
	if (rc != SQLITE_DONE) {
		r = sqlite_errno(rc);
		goto out;
	}
	qsort(heap.items, heap.n, sizeof(heap.items[0]), cmp_line);
	for (size_t i = 0; i < heap.n && r == 0; i++)
		r = fn(userdata, heap.items[i].line, heap.items[i].email, heap.items[i].first);
	*ret_count = count;
out:
	for (size_t i = 0; seen && i < n_dup; i++)
		while (seen[i]) {
			struct seen *next = seen[i]->next;
			free(seen[i]);
			seen[i] = next;
		}
	free(seen);
	for (size_t i = 0; i < heap.n; i++)
		free(heap.items[i].email);
	free(heap.items);
	sqlite3_finalize(st);
	return r;
}

int store_import_audit(struct store_import *imp, const char *sha256_hex)
{
	char detail[64];
	snprintf(detail, sizeof(detail), "%lld rows", (long long)imp->rows);
	struct store_audit a = {.uid = imp->uid, .user = imp->user, .action = "submit",
				.job_id = imp->job_id, .sha256 = sha256_hex, .detail = detail};
	return audit_insert(imp->db, &a, imp->now);
}

int store_import_commit(struct store_import *imp, int64_t *ret_job_id)
{
	sqlite3_stmt *st = NULL;
	int r = sqlite_errno(sqlite3_prepare_v2(imp->db,
						"UPDATE jobs SET total = ?2,"
						" state = CASE WHEN ?2 = 0 THEN 4 ELSE 0 END,"
						" finished_at = CASE WHEN ?2 = 0 THEN created_at END,"
						" first_row = ?3, last_row = ?4"
						" WHERE id = ?1",
						-1, &st, NULL));
	if (r == 0) {
		sqlite3_bind_int64(st, 1, imp->job_id);
		sqlite3_bind_int64(st, 2, imp->rows);
		sqlite3_bind_int64(st, 3, imp->first_row);
		sqlite3_bind_int64(st, 4, imp->last_row);
		r = step_done(st);
	}
	sqlite3_finalize(st);
	if (r == 0)
		r = exec(imp->db, "COMMIT");
	if (r == 0) {
		imp->committed = true;
		*ret_job_id = imp->job_id;
	}
	return r;
}

void store_import_destroy(struct store_import *imp)
{
	if (!imp)
		return;
	sqlite3_finalize(imp->insert);
	free(imp->hashes);
	if (imp->db) {
		if (!imp->committed && !sqlite3_get_autocommit(imp->db))
			exec(imp->db, "ROLLBACK");
		sqlite3_close(imp->db);
	}
	free(imp->user);
	free(imp);
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
