/* SPDX-License-Identifier: MIT */
/* store-tenants: the tenants table: a tenant's id by name, its block. */
#include "store-private.h"

#include "timeutil.h"

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

int store_tenant_adopt(struct store *s, const char *name, const char *directory, bool only_row)
{
	sqlite3_stmt *st = NULL;
	/* one statement: nothing to undo halfway */
	int r = sqlite_errno(sqlite3_prepare_v2(
		s->db,
		"UPDATE tenants SET name = ?1, directory = name"
		" WHERE NOT EXISTS (SELECT 1 FROM tenants WHERE name = ?1)"
		" AND id = COALESCE((SELECT id FROM tenants WHERE name = ?2),"
		" (SELECT CASE WHEN ?3 AND COUNT(*) = 1 THEN MIN(id) END FROM tenants))",
		-1, &st, NULL));
	if (r < 0)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, directory ? directory : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, only_row);
	sqlite3_busy_timeout(s->db, 5000);
	int rc = sqlite3_step(st);
	sqlite3_busy_timeout(s->db, 0);
	if (rc != SQLITE_DONE) {
		r = sqlite_errno(rc);
		goto out;
	}
	r = sqlite3_changes(s->db) > 0;
out:
	sqlite3_finalize(st);
	return r;
}
