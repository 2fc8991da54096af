/* SPDX-License-Identifier: MIT */
/* store: import all-or-nothing, duplicates, claim, results and counts,
 * cancel/pause/resume/retry, recovery of rows left in flight. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "csv.h"
#include "schema.h"
#include "store.h"
#include "tap.h"
#include "timeutil.h"

static char dir[] = "/tmp/test-store.XXXXXX";
static char db_path[600];
static int64_t tenant;

static int64_t import_rows(unsigned n, const char *prefix, bool commit)
{
	struct store_import_spec spec = {.tenant_id = tenant, .redirect_url = "https://r.example",
					 .user = "tester", .send_email = true, .uid = 1000};
	struct store_import *imp;
	int64_t job = 0;
	if (store_import_begin(db_path, &spec, &imp) < 0)
		return -1;
	store_import_columns(imp, "[\"a\",\"b\"]");
	for (unsigned i = 0; i < n; i++) {
		char email[64];
		snprintf(email, sizeof(email), "%s%u@x.example", prefix, i);
		const char *fields[] = {email, ""};
		struct csv_row row = {.line = i + 2, .email = email, .send_email = CSV_FLAG_UNSET,
				      .n_fields = 2, .fields = fields};
		store_import_row(imp, &row, "[\"x\"]", NULL);
	}
	if (commit)
		store_import_commit(imp, &job);
	store_import_destroy(imp);
	return job;
}

static struct store_result result(const struct store_claim *c, int state)
{
	struct store_result r = {.row_id = c->row_id, .job_id = c->job_id, .state = state,
				 .attempts = c->attempts + 1, .prev_attempts = c->attempts,
				 .http_status = state == ROW_STATE_SUCCEEDED ? 201 : 400};
	if (state == ROW_STATE_SUCCEEDED)
		r.invited_user_id = strdup("user-id");
	else
		r.error_code = strdup("BadRequest");
	return r;
}

struct dups {
	unsigned n, line[8], first[8];
};

static int collect_dup(void *userdata, unsigned line, const char *email, unsigned first)
{
	struct dups *d = userdata;
	if (d->n < 8) {
		d->line[d->n] = line;
		d->first[d->n] = first;
	}
	d->n++;
	return 0;
}

static int64_t done_job;
static void on_done(void *userdata, int64_t job_id)
{
	done_job = job_id;
}

struct audit_seen {
	int n;
	int64_t ids[16];
	char actions[16][16];
};

static int on_audit(void *userdata, const struct store_audit *a)
{
	struct audit_seen *seen = userdata;
	if (seen->n < 16) {
		seen->ids[seen->n] = a->id;
		snprintf(seen->actions[seen->n], sizeof(seen->actions[0]), "%s", a->action);
	}
	seen->n++;
	return 0;
}

/* The audit trail: written with the change, listed newest first in pages. */
static void test_audit(struct store *s)
{
	struct store_import_spec spec = {.tenant_id = tenant, .redirect_url = "https://r.example",
					 .user = "auditor", .send_email = true, .uid = 1234};
	struct store_import *imp;
	int64_t job = 0, changed = 0;
	store_import_begin(db_path, &spec, &imp);
	struct csv_row row = {.line = 2, .email = "audit@x.example", .send_email = CSV_FLAG_UNSET};
	store_import_row(imp, &row, "[]", NULL);
	is_int(store_import_audit(imp, "ab12"), 0, "submit entry inside the import");
	store_import_destroy(imp); /* rolled back: no job, no entry */
	struct audit_seen seen = {0};
	int64_t next = -1;
	is_int(store_audit_list(s, 0, 0, 10, on_audit, &seen, &next), 0, "list");
	is_int(seen.n, 0, "a rolled-back import leaves no entry");

	store_import_begin(db_path, &spec, &imp);
	store_import_row(imp, &row, "[]", NULL);
	store_import_audit(imp, "ab12");
	store_import_commit(imp, &job);
	store_import_destroy(imp);
	struct store_actor who = {.uid = 1234, .user = "auditor"};
	is_int(store_job_action(s, STORE_ACTION_PAUSE, job, NULL, &who, &changed), 0, "pause, audited");
	is_int(store_job_action(s, STORE_ACTION_RESUME, job, NULL, &who, &changed), 0, "resume, audited");
	is_int(store_job_action(s, STORE_ACTION_CANCEL, 999, NULL, &who, &changed), -ENOENT,
	       "no such job: nothing changes, nothing recorded");
	struct store_audit r = {.uid = -1, .user = "SIGHUP", .action = "reload", .detail = "x"};
	is_int(store_audit_add(s, &r), 0, "a reload entry of its own");

	memset(&seen, 0, sizeof(seen));
	is_int(store_audit_list(s, 0, 0, 2, on_audit, &seen, &next), 0, "page 1");
	ok(seen.n == 2 && strcmp(seen.actions[0], "reload") == 0 &&
		   strcmp(seen.actions[1], "resume") == 0 && next > 0,
	   "newest first, two per page, and a next cursor");
	memset(&seen, 0, sizeof(seen));
	is_int(store_audit_list(s, 0, next, 2, on_audit, &seen, &next), 0, "page 2");
	ok(seen.n == 2 && strcmp(seen.actions[0], "pause") == 0 &&
		   strcmp(seen.actions[1], "submit") == 0 && next == 0,
	   "the rest, and no next cursor");
	memset(&seen, 0, sizeof(seen));
	store_audit_list(s, job, 0, 10, on_audit, &seen, &next);
	is_int(seen.n, 3, "three entries name the job");
}

/* ---- the result journal: answers read, journaled, then a crash ---- */

/* In a child: claim up to n rows, queue the results make() gives, journal
 * them, and die without committing anything (as kill -9 would). */
typedef void (*make_fn)(struct store *s, struct store_claim **claims, size_t n);

static void crash_after(size_t n, uint64_t now, make_fn make)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct store *s;
		char *err = NULL;
		struct store_claim **claims;
		size_t got;
		if (store_open(&s, db_path, &err) < 0 ||
		    store_rows_claim(s, tenant, now, n, &claims, &got) < 0)
			_exit(2);
		make(s, claims, got);
		_exit(store_journal_write(s) == 0 && store_at_risk(s) == 0 ? 0 : 3);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	is_int(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0, "the child journaled and died");
}

static void make_answers(struct store *s, struct store_claim **claims, size_t n)
{
	if (n != 4)
		_exit(4);
	/* row 0 answered twice in the journal: the newer record wins */
	struct store_result old = result(claims[0], ROW_STATE_FAILED);
	struct store_result r0 = result(claims[0], ROW_STATE_SUCCEEDED);
	r0.client_request_id = strdup("3f2504e0-4f89-41d3-9a0c-0305e82c3301");
	struct store_result r1 = result(claims[1], ROW_STATE_FAILED);
	struct store_result r2 = result(claims[2], ROW_STATE_PENDING);
	r2.next_attempt_at = 7000;
	store_row_finish(s, &old);
	store_row_finish(s, &r0);
	store_row_finish(s, &r1);
	store_row_finish(s, &r2);
	/* claims[3] stays in flight: no answer */
}

static void make_stale(struct store *s, struct store_claim **claims, size_t n)
{
	if (n != 1 || claims[0]->attempts != 1)
		_exit(4);
	/* a record of the row's first attempt (already committed) turns up again */
	struct store_result stale = result(claims[0], ROW_STATE_SUCCEEDED);
	stale.attempts = 1;
	stale.prev_attempts = 0;
	store_row_finish(s, &stale);
}

struct ids {
	int64_t v[16];
	size_t n;
};

static int collect_job(void *userdata, const struct store_job *job)
{
	struct ids *ids = userdata;
	if (ids->n < 16)
		ids->v[ids->n++] = job->id;
	return 0;
}

struct crid_rows {
	unsigned n;
	char crid[4][40], rid[4][40];
};

static int collect_crid(void *userdata, const struct store_row *row)
{
	struct crid_rows *c = userdata;
	if (c->n < 4) {
		snprintf(c->crid[c->n], sizeof(c->crid[0]), "%s",
			 row->client_request_id ? row->client_request_id : "(null)");
		snprintf(c->rid[c->n], sizeof(c->rid[0]), "%s",
			 row->request_id ? row->request_id : "(null)");
	}
	c->n++;
	return 0;
}

static struct store *test_journal(struct store *s)
{
	char *err = NULL;
	unsigned results = 0, recovered = 0;
	struct store_claim **claims;
	size_t n;
	struct store_job j;

	int64_t changed = 0;
	/* the older jobs' rows (some left in flight above) out of the way */
	store_close(s);
	struct ids active = {0};
	ok(store_open(&s, db_path, &err) == 0 && store_recover(s, NULL, NULL) == 0 &&
		   store_jobs_list(s, false, 0, collect_job, &active) >= 0,
	   "older jobs listed");
	for (size_t i = 0; i < active.n; i++)
		store_job_cancel(s, active.v[i], &changed);
	int64_t job = import_rows(4, "k", true);

	crash_after(4, 1000, make_answers);
	store_close(s);
	is_int(store_open(&s, db_path, &err), 0, "reopen after the crash");
	is_int(store_recover(s, &results, &recovered), 0, "recover");
	is_int(results, 3, "three rows' results came from the journal");
	is_int(recovered, 1, "the unanswered row goes back to pending");
	store_job_get(s, job, &j);
	ok(j.succeeded == 1 && j.failed == 1 && j.in_flight == 0,
	   "counts: the newer answer of row 0 (succeeded), row 1 failed");
	store_job_clear(&j);
	struct crid_rows crid = {0};
	int64_t next;
	store_rows_list(s, job, 0, 4, -1, false, collect_crid, &crid, &next);
	is_str(crid.crid[0], "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
	       "the client-request-id came through the journal");
	is_int(store_rows_claim(s, tenant, 6000, 10, &claims, &n), 0, "claim at 6000");
	ok(n == 1 && claims[0]->line == 5, "only the unanswered row is due (the retry waits for 7000)");
	for (size_t i = 0; i < n; i++)
		store_claim_free(claims[i]);
	free(claims); /* left in flight */

	/* the retried row (attempts 1) is claimed again, and a record of its
	 * first attempt shows up in the journal: the attempts guard ignores it */
	crash_after(1, 8000, make_stale);
	store_close(s);
	is_int(store_open(&s, db_path, &err), 0, "reopen after the second crash");
	is_int(store_recover(s, &results, &recovered), 0, "recover");
	is_int(results, 1, "one record read");
	is_int(recovered, 2, "both rows in flight go back to pending");
	store_job_get(s, job, &j);
	ok(j.succeeded == 1 && j.failed == 1, "the stale record changed nothing");
	store_job_clear(&j);
	/* the journal was emptied: a third start finds nothing */
	store_close(s);
	is_int(store_open(&s, db_path, &err), 0, "reopen");
	is_int(store_recover(s, &results, &recovered), 0, "recover");
	ok(results == 0 && recovered == 0, "nothing left to replay");
	return s;
}


/* One integer from the database at path, by SQL of its own (read-only). */
static int64_t db_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void sqlite3_int_check_in_flight(const char *path, int64_t want)
{
	is_int(db_int(path, "SELECT COUNT(*) FROM rows WHERE state = 1"), want,
	       "the database still has every claimed row in flight (crash safety)");
}

/* Claim every due row of the tenant, marked sent. */
static size_t claim_all(struct store *s, struct store_claim ***ret)
{
	size_t n = 0;
	if (store_rows_claim(s, tenant, time_now_ms(), 100, ret, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		store_claim_sent(s, (*ret)[i]);
	return n;
}

static void finish_all(struct store *s, struct store_claim **claims, size_t n, int state)
{
	for (size_t i = 0; i < n; i++) {
		struct store_result r = result(claims[i], state);
		store_row_finish(s, &r);
		store_claim_free(claims[i]);
	}
	free(claims);
	store_flush(s);
}

/* SPEC §6/issue 10: a cancel that finds every row in flight has nothing to
 * cancel; the job's end state then follows its rows. */
static void test_cancel_in_flight(struct store *s)
{
	struct store_claim **claims;
	struct store_job j;
	int64_t changed;
	int64_t job = import_rows(3, "cif", true);
	size_t n = claim_all(s, &claims);
	is_int(n, 3, "cancel race: all 3 rows in flight");
	is_int(store_job_cancel(s, job, &changed), 0, "cancel while they are in flight");
	is_int(changed, 0, "nothing pending to cancel");
	finish_all(s, claims, n, ROW_STATE_SUCCEEDED);
	store_job_get(s, job, &j);
	ok(j.state == JOB_STATE_COMPLETED && j.finished_at > 0 && j.succeeded == 3 && j.cancelled == 0,
	   "every row succeeded: the job is completed, not cancelled (state %s)",
	   job_state_name(j.state));
	store_job_clear(&j);

	/* one of them comes back for a retry: that row ends cancelled, and so
	 * does the job */
	job = import_rows(3, "cig", true);
	n = claim_all(s, &claims);
	store_job_cancel(s, job, &changed);
	struct store_result r = result(claims[0], ROW_STATE_PENDING);
	r.next_attempt_at = time_now_ms() + 1000;
	store_row_finish(s, &r);
	store_claim_free(claims[0]);
	for (size_t i = 1; i < n; i++) {
		struct store_result rr = result(claims[i], ROW_STATE_SUCCEEDED);
		store_row_finish(s, &rr);
		store_claim_free(claims[i]);
	}
	free(claims);
	store_flush(s);
	store_job_get(s, job, &j);
	ok(j.state == JOB_STATE_CANCELLED && j.finished_at > 0 && j.succeeded == 2 && j.cancelled == 1,
	   "a row ended cancelled: the job is cancelled (state %s, %lld cancelled)",
	   job_state_name(j.state), (long long)j.cancelled);
	store_job_clear(&j);

	/* a paused job whose rows all ended, then cancelled: completed */
	job = import_rows(2, "cih", true);
	n = claim_all(s, &claims);
	store_job_pause(s, job, &changed);
	finish_all(s, claims, n, ROW_STATE_FAILED);
	store_job_cancel(s, job, &changed);
	store_job_get(s, job, &j);
	ok(j.state == JOB_STATE_COMPLETED && j.finished_at > 0,
	   "cancel of a paused job with every row ended: completed (state %s)",
	   job_state_name(j.state));
	store_job_clear(&j);
}

/* retry --error-code matches Graph's code case-insensitively */
static void test_retry_code_case(struct store *s)
{
	struct store_claim **claims;
	struct store_job j;
	int64_t changed = -1;
	int64_t job = import_rows(2, "rcc", true);
	size_t n = claim_all(s, &claims);
	finish_all(s, claims, n, ROW_STATE_FAILED); /* error_code "BadRequest" */
	is_int(store_job_retry_code(s, job, "badrequest", &changed), 0, "retry --error-code badrequest");
	is_int(changed, 2, "matches BadRequest case-insensitively");
	store_job_get(s, job, &j);
	ok(j.state == JOB_STATE_QUEUED && j.failed == 0, "the job is queued again");
	store_job_clear(&j);
	n = claim_all(s, &claims);
	finish_all(s, claims, n, ROW_STATE_FAILED);
	store_job_retry_code(s, job, "BadRequestX", &changed);
	is_int(changed, 0, "another code matches nothing");
	store_job_cancel(s, job, &changed);
}

/* A database made by the previous schema (version 3, as written by the
 * daemon before client_request_id) is brought up to date with its jobs
 * and rows intact; the new column then takes each attempt's id. */
/* A database made by wave 1's schema (version 4) under a wave-1
 * configuration: its one tenant row, named as the directory, becomes
 * "default" at start (SPEC §7), its jobs intact; a second start changes
 * nothing. */
static void test_upgrade_v4_tenant(void)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/v4.db", dir);
	sqlite3 *db = NULL;
	int ok4 = sqlite3_open(path, &db) == SQLITE_OK;
	for (unsigned v = 0; v < 4 && ok4; v++)
		ok4 = sqlite3_exec(db, schema_migrations[v], NULL, NULL, NULL) == SQLITE_OK;
	ok4 = ok4 &&
	      sqlite3_exec(db,
			   "PRAGMA user_version = 4;"
			   "INSERT INTO tenants(id, name) VALUES (1, 'contoso.example');"
			   "INSERT INTO jobs(id, tenant_id, name, state, created_at, submitted_uid,"
			   " submitted_user, redirect_url, send_email, total, succeeded, failed,"
			   " first_row, last_row) VALUES (7, 1, 'old', 1, 1000, 1000, 'tester',"
			   " 'https://r.example', 0, 1, 0, 0, 10, 10);"
			   "INSERT INTO rows(id, job_id, line, email, fields, updated_at) VALUES"
			   " (10, 7, 2, 'c@x.example', '[]', 1000);",
			   NULL, NULL, NULL) == SQLITE_OK;
	sqlite3_close(db);
	ok(ok4, "a version 4 (wave 1) database");
	struct store *s = NULL;
	char *err = NULL;
	is_int(store_open(&s, path, &err), 0, "the new store opens it (%s)", err ? err : "ok");
	free(err);
	if (!s)
		return;
	is_int(db_int(path, "PRAGMA user_version"), (int64_t)schema_version, "migrated to the latest version (%u)", schema_version);
	is_int(store_tenant_adopt(s, "default", "contoso.example", true), 1,
	       "the tenant row is renamed 'default'");
	struct store_job j;
	is_int(store_job_get(s, 7, &j), 0, "the old job is there");
	ok(j.tenant && strcmp(j.tenant, "default") == 0 && j.tenant_id == 1 && j.total == 1,
	   "its tenant is 'default' now, same id and counts");
	store_job_clear(&j);
	int64_t tid = 0;
	store_tenant_ensure(s, "default", &tid);
	is_int(tid, 1, "the tenant 'default' is the old row");
	struct store_claim **claims = NULL;
	size_t n = 0;
	store_rows_claim(s, tid, time_now_ms(), 10, &claims, &n);
	is_int(n, 1, "its pending row is claimed for the tenant 'default'");
	if (n > 0) {
		int64_t ids[1] = {claims[0]->row_id};
		store_claim_sent(s, claims[0]);
		store_rows_release(s, ids, 1);
		store_claim_free(claims[0]);
	}
	free(claims);
	is_int(store_tenant_adopt(s, "default", "contoso.example", true), 0, "a second start: nothing");
	store_close(s);
	/* the directory named otherwise ([graph] tenant = changed): the only row */
	snprintf(path, sizeof(path), "%s/v4b.db", dir);
	db = NULL;
	ok4 = sqlite3_open(path, &db) == SQLITE_OK;
	for (unsigned v = 0; v < 4 && ok4; v++)
		ok4 = sqlite3_exec(db, schema_migrations[v], NULL, NULL, NULL) == SQLITE_OK;
	ok4 = ok4 && sqlite3_exec(db, "PRAGMA user_version = 4;"
				      "INSERT INTO tenants(id, name) VALUES (3, 'x.example');",
				  NULL, NULL, NULL) == SQLITE_OK;
	sqlite3_close(db);
	s = NULL;
	if (ok4 && store_open(&s, path, NULL) == 0) {
		is_int(store_tenant_adopt(s, "x", "y.example", false), 0,
		       "a [tenant] section of another directory: the only row is not its");
		is_int(store_tenant_adopt(s, "default", "y.example", true), 1, "the only row is adopted");
		store_close(s);
	}
}

static void test_upgrade_v3(void)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/v3.db", dir);
	sqlite3 *db = NULL;
	int ok3 = sqlite3_open(path, &db) == SQLITE_OK;
	for (unsigned v = 0; v < 3 && ok3; v++)
		ok3 = sqlite3_exec(db, schema_migrations[v], NULL, NULL, NULL) == SQLITE_OK;
	ok3 = ok3 &&
	      sqlite3_exec(
		      db,
		      "PRAGMA user_version = 3;"
		      "INSERT INTO tenants(id, name) VALUES (1, 'contoso.example');"
		      "INSERT INTO jobs(id, tenant_id, name, state, created_at, submitted_uid,"
		      " submitted_user, redirect_url, send_email, total, succeeded, failed,"
		      " first_row, last_row) VALUES (7, 1, 'old', 1, 1000, 1000, 'tester',"
		      " 'https://r.example', 0, 3, 1, 1, 10, 12);"
		      "INSERT INTO rows(id, job_id, line, email, fields, state, attempts, http_status,"
		      " request_id, invited_user_id, updated_at) VALUES"
		      " (10, 7, 2, 'a@x.example', '[]', 2, 1, 201, 'rid-a', 'uid-a', 1000);"
		      "INSERT INTO rows(id, job_id, line, email, fields, state, attempts, http_status,"
		      " error_code, request_id, updated_at) VALUES"
		      " (11, 7, 3, 'b@x.example', '[]', 3, 1, 400, 'BadRequest', 'rid-b', 1000);"
		      "INSERT INTO rows(id, job_id, line, email, fields, updated_at) VALUES"
		      " (12, 7, 4, 'c@x.example', '[]', 1000);",
		      NULL, NULL, NULL) == SQLITE_OK;
	sqlite3_close(db);
	ok(ok3, "a version 3 database made with the old schema");

	struct store *s = NULL;
	char *err = NULL;
	is_int(store_open(&s, path, &err), 0, "the new store opens it (%s)", err ? err : "ok");
	free(err);
	if (!s)
		return;
	is_int(db_int(path, "PRAGMA user_version"), (int64_t)schema_version, "migrated to the latest version (%u)", schema_version);
	struct store_job j;
	is_int(store_job_get(s, 7, &j), 0, "the old job is there");
	ok(j.total == 3 && j.succeeded == 1 && j.failed == 1 && j.name && strcmp(j.name, "old") == 0,
	   "with its name and counts");
	store_job_clear(&j);
	struct crid_rows got = {0};
	int64_t next;
	store_rows_list(s, 7, 0, 10, -1, false, collect_crid, &got, &next);
	ok(got.n == 3 && strcmp(got.rid[0], "rid-a") == 0 && strcmp(got.rid[1], "rid-b") == 0 &&
	   strcmp(got.crid[0], "(null)") == 0,
	   "its rows keep their request-id; client_request_id is null for old rows");

	/* the pending row is sent now: its client-request-id is kept */
	int64_t tid;
	store_tenant_ensure(s, "contoso.example", &tid);
	struct store_claim **claims;
	size_t n = 0;
	store_rows_claim(s, tid, time_now_ms(), 10, &claims, &n);
	is_int(n, 1, "the old pending row is claimed");
	if (n == 1) {
		struct store_result r = result(claims[0], ROW_STATE_SUCCEEDED);
		r.client_request_id = strdup("0f8fad5b-d9cb-469f-a165-70867728950e");
		r.request_id = strdup("rid-c");
		store_row_finish(s, &r);
		store_claim_free(claims[0]);
		free(claims);
	}
	store_flush(s);
	memset(&got, 0, sizeof(got));
	store_rows_list(s, 7, 0, 10, -1, false, collect_crid, &got, &next);
	is_str(got.crid[2], "0f8fad5b-d9cb-469f-a165-70867728950e",
	       "the new column holds the attempt's client-request-id");
	store_job_get(s, 7, &j);
	ok(j.state == JOB_STATE_COMPLETED && j.succeeded == 2, "and the old job completes");
	store_job_clear(&j);
	store_close(s);
}

int main(void)
{
	tap_plan_none();
	struct store *s;
	char *err = NULL;
	if (!mkdtemp(dir))
		return 1;
	snprintf(db_path, sizeof(db_path), "%s/invited.db", dir);
	is_int(store_open(&s, db_path, &err), 0, "store opens and migrates a new database");
	store_set_job_done(s, on_done, NULL);
	is_int(store_tenant_ensure(s, "contoso.example", &tenant), 0, "tenant row");
	int64_t again;
	store_tenant_ensure(s, "contoso.example", &again);
	is_int(again, tenant, "the same tenant id the second time");

	/* duplicates are found, and an uncommitted import leaves nothing */
	struct store_import_spec spec = {.tenant_id = tenant, .redirect_url = "https://r.example",
					 .user = "tester", .send_email = true};
	struct store_import *imp;
	is_int(store_import_begin(db_path, &spec, &imp), 0, "import begins");
	const char *f[] = {"x"};
	struct csv_row a = {.line = 3, .email = "Ann@X.example", .send_email = CSV_FLAG_TRUE, .n_fields = 1, .fields = f};
	struct csv_row b = {.line = 9, .email = "ann@x.EXAMPLE", .send_email = CSV_FLAG_TRUE, .n_fields = 1, .fields = f};
	struct csv_row c2 = {.line = 12, .email = "ann@x.example", .send_email = CSV_FLAG_TRUE, .n_fields = 1, .fields = f};
	struct csv_row d = {.line = 5, .email = "bob@x.example", .send_email = CSV_FLAG_TRUE, .n_fields = 1, .fields = f};
	is_int(store_import_row(imp, &a, "[]", NULL), 0, "first row stored");
	is_int(store_import_row(imp, &d, "[]", NULL), 0, "another address stored");
	is_int(store_import_row(imp, &b, "[]", NULL), 0, "a duplicate is stored too (found at the end)");
	is_int(store_import_row(imp, &c2, "[]", NULL), 0, "and a third copy");
	struct dups got = {0};
	size_t count = 0;
	is_int(store_import_duplicates(imp, 50, collect_dup, &got, &count), 0, "duplicates listed");
	is_int(got.n, 2, "the second and third copies, not the first");
	is_int(count, 2, "and counted");
	ok(got.n == 2 && got.line[0] == 9 && got.first[0] == 3 && got.line[1] == 12 && got.first[1] == 3,
	   "in line order, each naming line 3 (case-insensitive)");
	store_import_destroy(imp);
	struct store_job j;
	is_int(store_job_get(s, 1, &j), -ENOENT, "a rolled-back import leaves no job");

	int64_t job = import_rows(10, "g", true);
	ok(job > 0, "a committed import makes a job");
	is_int(store_job_get(s, job, &j), 0, "job readable");
	is_int(j.total, 10, "total 10");
	is_str(job_state_name(j.state), "queued", "queued");
	store_job_clear(&j);

	struct store_claim **claims;
	size_t n;
	is_int(store_rows_claim(s, tenant, 1000, 4, &claims, &n), 0, "claim");
	is_int(n, 4, "4 rows claimed");
	is_int(claims[0]->line, 2, "in line order");
	is_str(claims[0]->redirect_url, "https://r.example", "the job's redirect applies");
	ok(claims[0]->send_email, "the job's send flag applies");
	store_job_get(s, job, &j);
	is_str(job_state_name(j.state), "running", "job running once claimed");
	/* in flight in the database (crash safety), but not on the wire yet */
	is_int(j.in_flight, 0, "claimed rows waiting for a token are not shown in flight");
	store_job_clear(&j);
	int64_t tot_active, tot_pending, tot_in_flight;
	store_totals(s, &tot_active, &tot_pending, &tot_in_flight);
	is_int(tot_in_flight, 0, "nor in the totals");
	for (size_t i = 0; i < 3; i++)
		store_claim_sent(s, claims[i]);
	store_claim_sent(s, claims[0]); /* a second call does nothing */
	store_job_get(s, job, &j);
	is_int(j.in_flight, 3, "3 sent: 3 in flight");
	store_job_clear(&j);
	store_totals(s, &tot_active, &tot_pending, &tot_in_flight);
	is_int(tot_in_flight, 3, "in the totals too");
	sqlite3_int_check_in_flight(db_path, 4);
	store_claim_sent(s, claims[3]);
	store_job_get(s, job, &j);
	is_int(j.in_flight, 4, "4 in flight");
	store_job_clear(&j);

	struct store_result r0 = result(claims[0], ROW_STATE_SUCCEEDED);
	struct store_result r1 = result(claims[1], ROW_STATE_FAILED);
	struct store_result r2 = result(claims[2], ROW_STATE_PENDING);
	r2.next_attempt_at = 5000;
	store_row_finish(s, &r0);
	store_row_finish(s, &r1);
	store_row_finish(s, &r2);
	is_int(store_queued(s), 3, "results queued");
	is_int(store_flush(s), 0, "one flush");
	is_int(store_queued(s), 0, "queue empty");
	store_job_get(s, job, &j);
	ok(j.succeeded == 1 && j.failed == 1 && j.in_flight == 1, "counts: 1 ok, 1 failed, 1 in flight");
	store_job_clear(&j);
	uint64_t due;
	/* the 4th claim stays in flight: release it */
	store_rows_release(s, &claims[3]->row_id, 1);
	for (size_t i = 0; i < n; i++)
		store_claim_free(claims[i]);
	free(claims);

	is_int(store_rows_claim(s, tenant, 1000, 100, &claims, &n), 0, "claim the rest");
	is_int(n, 7, "7 due now (the retry waits until 5000)");
	is_int(store_rows_next_due(s, tenant, &due), 1, "a pending row is scheduled");
	is_int(due, 5000, "at 5000");
	for (size_t i = 0; i < n; i++) {
		struct store_result r = result(claims[i], ROW_STATE_SUCCEEDED);
		store_row_finish(s, &r);
		store_claim_free(claims[i]);
	}
	free(claims);
	store_flush(s);
	is_int(done_job, 0, "not done while a retry is pending");
	is_int(store_rows_claim(s, tenant, 6000, 100, &claims, &n), 0, "claim the retry at 6000");
	is_int(n, 1, "the retried row");
	is_int(claims[0]->attempts, 1, "with its attempt count");
	struct store_result rl = result(claims[0], ROW_STATE_SUCCEEDED);
	store_row_finish(s, &rl);
	store_claim_free(claims[0]);
	free(claims);
	store_flush(s);
	is_int(done_job, job, "job done callback");
	store_job_get(s, job, &j);
	ok(j.state == JOB_STATE_COMPLETED && j.finished_at > 0 && j.succeeded == 9 && j.failed == 1,
	   "completed: 9 succeeded, 1 failed");
	store_job_clear(&j);

	int64_t changed;
	is_int(store_job_retry(s, job, &changed), 0, "retry");
	is_int(changed, 1, "one failed row re-queued");
	store_job_get(s, job, &j);
	ok(j.state == JOB_STATE_QUEUED && j.finished_at == 0 && j.failed == 0, "job queued again");
	store_job_clear(&j);

	/* pause hides the job from claims; cancel marks pending rows */
	is_int(store_job_pause(s, job, &changed), 0, "pause");
	is_int(changed, 1, "paused");
	store_job_pause(s, job, &changed);
	is_int(changed, 0, "pause is idempotent");
	store_rows_claim(s, tenant, 10000, 100, &claims, &n);
	is_int(n, 0, "nothing claimed from a paused job");
	free(claims);
	is_int(store_job_resume(s, job, &changed), 0, "resume");
	is_int(changed, 1, "resumed");
	done_job = 0;
	is_int(store_job_cancel(s, job, &changed), 0, "cancel");
	is_int(changed, 1, "one pending row cancelled");
	store_job_get(s, job, &j);
	ok(j.state == JOB_STATE_CANCELLED && j.cancelled == 1 && j.finished_at > 0,
	   "job cancelled and finished");
	store_job_clear(&j);
	store_job_cancel(s, job, &changed);
	is_int(changed, 0, "cancel is idempotent");
	is_int(store_job_cancel(s, 999, &changed), -ENOENT, "no such job");

	/* rows left in flight come back at start */
	int64_t job2 = import_rows(3, "h", true);
	store_rows_claim(s, tenant, 1000, 3, &claims, &n);
	for (size_t i = 0; i < n; i++)
		store_claim_free(claims[i]);
	free(claims);
	store_close(s);
	is_int(store_open(&s, db_path, &err), 0, "reopen");
	unsigned recovered = 0;
	is_int(store_recover(s, NULL, &recovered), 0, "recover");
	is_int(recovered, 3, "3 rows back to pending");
	store_rows_claim(s, tenant, 1000, 10, &claims, &n);
	is_int(n, 3, "and claimable again");
	ok(n == 3 && claims[0]->job_id == job2, "from the unfinished job");
	for (size_t i = 0; i < n; i++)
		store_claim_free(claims[i]);
	free(claims);

	is_int(store_tenant_block_set(s, tenant, "blocked by Graph"), 0, "block the tenant");
	store_job_get(s, job2, &j);
	ok(j.state == JOB_STATE_BLOCKED && j.reason && strstr(j.reason, "Graph"),
	   "an active job shows blocked with the reason");
	store_job_clear(&j);
	char *reason = NULL;
	store_tenant_block_set(s, tenant, NULL);
	store_tenant_block_get(s, tenant, &reason);
	ok(reason == NULL, "unblocked");
	/* retention: finished jobs older than the cut are deleted with their rows */
	unsigned pruned = 0;
	is_int(store_prune(db_path, 1, &pruned), 0, "prune before the epoch's first ms");
	is_int(pruned, 0, "nothing that old");
	is_int(store_prune(db_path, time_now_ms() + 1000, &pruned), 0, "prune everything finished");
	is_int(pruned, 1, "the one finished (cancelled) job went");
	is_int(store_job_get(s, job, &j), -ENOENT, "it is gone");
	is_int(store_job_get(s, job2, &j), 0, "the unfinished job stays");
	store_job_clear(&j);
	test_audit(s);
	s = test_journal(s);
	/* a tenant of their own: nothing of the tests above is claimed */
	store_tenant_ensure(s, "fabrikam.example", &tenant);
	test_cancel_in_flight(s);
	test_retry_code_case(s);
	store_close(s);
	test_upgrade_v3();
	test_upgrade_v4_tenant();

	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
