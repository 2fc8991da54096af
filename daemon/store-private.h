/* SPDX-License-Identifier: MIT */
/*
 * store-private: what the store's files (store*.c) share and nobody else
 * sees: struct store, the loop connection's prepared statements, and the
 * small helpers every room uses (error translation, binding, stepping,
 * transactions). The public API is store.h; this header is never included
 * outside daemon/store*.c, so SQLite stays behind the store.
 *
 * The rooms (docs/architecture.md, "Rooms of the store"):
 *   store.c         connection: open/close, PRAGMAs, migrations, the
 *                   statement cache, WAL checkpoint
 *   store-rows.c    claims, results, group commit (flush), journal replay
 *   store-jobs.c    jobs and rows read back, counts, job actions, prune
 *   store-tenants.c tenants and their block
 *   store-audit.c   the audit table
 *   store-import.c  the upload import (worker thread, its own connection)
 */
#pragma once

#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#include "store.h"

struct journal;

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
	ST_JOB_ONBOARD,
	ST_STEPS_ADD_GROUPS,
	ST_STEP_FINISH,
	ST_STEP_ROW_FAILED,
	ST_RESEND_DONE,
	ST_TRACK_FINISH,
	ST_STEPS_ADD_MAIL,
	ST_MAIL_REARM,
	ST_MAIL_DONE,
	ST_MAIL_LOG,
	ST_CLAIM_STEPS,
	ST_CLAIM_RESENDS,
	ST_CLAIM_MAILS,
	ST_CLAIM_TRACK,
	ST_STEP_LEASE,
	ST_TRACK_LEASE,
	ST_STEPS_NEXT_DUE,
	ST_TRACK_NEXT_DUE,
	ST_MAIL_SENT,
	ST_MAIL_LOG_PRUNE,
	ST__MAX,
};

/* A job is done when every row is terminal and no group addition is left
 * and no mail is left to send (SPEC §8). */
#define JOB_DONE_SQL                                                                       \
	"total = succeeded + failed + cancelled + skipped AND groups_pending = 0 AND mail_pending = 0"

/* The SQL of each prepared statement (store.c): prepared once at open. */
extern const char *const store_stmt_sql[ST__MAX];

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
	/* outcomes of steps and tracking reads, written by store_flush */
	struct step_result {
		int64_t row_id;
		int kind, state;
		char *arg, *error;
		char *redeem_url; /* a resend's new one; a mail's mailbox */
		unsigned attempts;
		uint64_t next_at;
	} *steps_q;
	size_t steps_len, steps_cap;
	struct track_result {
		int64_t row_id, job_id;
		uint64_t accepted_ms, next_ms;
	} *track_q;
	size_t track_len, track_cap;
	uint64_t steps_made; /* steps and tracked rows store_flush made, ever */
};

/* Translate an SQLite result code: the one place that does. */
static inline int sqlite_errno(int rc)
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

static inline char *dup_col(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return t ? strdup((const char *)t) : NULL;
}

static inline const char *col_text(sqlite3_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(st, col);
}

static inline void bind_text_or_null(sqlite3_stmt *st, int idx, const char *text)
{
	if (text)
		sqlite3_bind_text(st, idx, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, idx);
}

/* Run a prepared statement to completion; returns 0 or negative errno. */
static inline int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sqlite_errno(rc);
}

static inline int exec(sqlite3 *db, const char *sql)
{
	return sqlite_errno(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static inline int begin(struct store *s)
{
	return step_done(s->stmt[ST_BEGIN]);
}

static inline int commit(struct store *s)
{
	int r = step_done(s->stmt[ST_COMMIT]);
	if (r < 0)
		step_done(s->stmt[ST_ROLLBACK]);
	return r;
}

static inline void rollback(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		step_done(s->stmt[ST_ROLLBACK]);
}

/* Admin actions may wait a little for an import's lock; sending never does. */
static inline int begin_patient(struct store *s)
{
	sqlite3_busy_timeout(s->db, 2000);
	int r = begin(s);
	sqlite3_busy_timeout(s->db, 0);
	return r;
}

static inline int64_t unsent_of(const struct store *s, int64_t job_id)
{
	for (size_t i = 0; i < s->n_unsent; i++)
		if (s->unsent[i].job_id == job_id)
			return s->unsent[i].n;
	return 0;
}

static inline int job_state(struct store *s, int64_t job_id, int *ret)
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

/* Open a connection of its own to the database at path (WAL,
 * synchronous=NORMAL); *ret owned by the caller (sqlite3_close). On failure
 * *ret_error (may be NULL) gets a message owned by the caller. store.c. */
int store_db_open(const char *path, sqlite3 **ret, char **ret_error);

/* Insert an audit row on db (inside the caller's transaction, if any); a is
 * borrowed. store-audit.c. */
int store_audit_insert(sqlite3 *db, const struct store_audit *a, uint64_t now);
