/* SPDX-License-Identifier: MIT */
/* store-audit: the audit table: one row per submit, job action, reload or
 * unblock, written in the transaction of the change; listing. */
#include "store-private.h"

#include "timeutil.h"

int store_audit_insert(sqlite3 *db, const struct store_audit *a, uint64_t now)
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

int store_audit_add(struct store *s, const struct store_audit *a)
{
	sqlite3_busy_timeout(s->db, 2000);
	int r = store_audit_insert(s->db, a, time_now_ms());
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
