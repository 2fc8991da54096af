/* SPDX-License-Identifier: MIT */
/* store-steps: a row's way past its invitation (SPEC §8, schema/0006):
 * lookups marked at import and after a crash, skipped rows, the group
 * additions made due by a success, the job's completion waiting for them,
 * their failures counted per row, tracking and resends, cancel, retry
 * --groups, and the upgrade of a version-5 database. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "csv.h"
#include "schema.h"
#include "store.h"
#include "tap.h"
#include "timeutil.h"

static char dir[] = "/tmp/test-steps.XXXXXX";
static char db_path[600];
static int64_t tenant;
static int64_t done_job;
static bool import_mail; /* the next import_job's job sends our mail */

#define G1 "aaaaaaaa-0000-4000-8000-000000000001"
#define G2 "aaaaaaaa-0000-4000-8000-000000000002"
#define G3 "aaaaaaaa-0000-4000-8000-000000000003"

static void on_done(void *userdata, int64_t job_id)
{
	(void)userdata;
	done_job = job_id;
}

/* n rows; with job groups, the first row also has its own group G3. */
static int64_t import_job(unsigned n, const char *prefix, bool skip, const char *groups,
			  uint64_t track_ms)
{
	struct store_import_spec spec = {.tenant_id = tenant, .redirect_url = "https://r.example",
					 .user = "tester", .send_email = true, .uid = 1000,
					 .skip_existing = skip, .groups_json = groups,
					 .track_ms = track_ms, .track_days = 1, .mail = import_mail};
	struct store_import *imp;
	int64_t job = 0;
	if (store_import_begin(db_path, &spec, &imp) < 0)
		return -1;
	store_import_columns(imp, "[\"a\"]");
	for (unsigned i = 0; i < n; i++) {
		char email[64];
		snprintf(email, sizeof(email), "%s%u@x.example", prefix, i);
		const char *fields[] = {email};
		/* with mail, the second row's own send flag is off */
		struct csv_row row = {.line = i + 2, .email = email,
				      .send_email = import_mail && i == 1 ? CSV_FLAG_FALSE : CSV_FLAG_UNSET,
				      .n_fields = 1, .fields = fields};
		store_import_row(imp, &row, "[\"0\"]", i == 0 && groups ? "[\"" G3 "\"]" : NULL);
	}
	store_import_commit(imp, &job);
	store_import_destroy(imp);
	return job;
}

static size_t claim_all(struct store *s, struct store_claim ***ret)
{
	size_t n = 0;
	store_rows_claim(s, tenant, time_now_ms(), 100, ret, &n);
	for (size_t i = 0; i < n; i++)
		store_claim_sent(s, (*ret)[i]);
	return n;
}

static void finish(struct store *s, const struct store_claim *c, int state, const char *type)
{
	struct store_result r = {.row_id = c->row_id, .job_id = c->job_id, .state = state,
				 .attempts = c->attempts + (state == ROW_STATE_SKIPPED ? 0 : 1),
				 .prev_attempts = c->attempts};
	char id[64];
	snprintf(id, sizeof(id), "user-%lld", (long long)c->row_id);
	if (state == ROW_STATE_SUCCEEDED || state == ROW_STATE_SKIPPED)
		r.invited_user_id = strdup(id);
	if (state == ROW_STATE_SUCCEEDED)
		r.invite_redeem_url = strdup("https://redeem.example/1");
	if (state == ROW_STATE_FAILED)
		r.error_code = strdup("BadRequest");
	if (type)
		r.existing_type = strdup(type);
	store_row_finish(s, &r);
}

static int64_t db_int(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v = -1;
	sqlite3_open(db_path, &db);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

struct seen {
	unsigned n;
	char states[16][16];
	char groups[16][400];
};

static int collect(void *userdata, const struct store_row *row)
{
	struct seen *s = userdata;
	if (s->n < 16) {
		snprintf(s->states[s->n], sizeof(s->states[0]), "%s", row_state_name(row->state));
		snprintf(s->groups[s->n], sizeof(s->groups[0]), "%s", row->groups ? row->groups : "");
	}
	s->n++;
	return 0;
}

static unsigned count_rows(struct store *s, int64_t job, int filter)
{
	struct seen seen = {0};
	int64_t next;
	store_rows_list(s, job, 0, 100, filter, false, collect, &seen, &next);
	return seen.n;
}

static void test_groups_and_skips(struct store *s)
{
	int64_t job = import_job(4, "g", true, "[\"" G1 "\",\"" G2 "\"]", 0);
	ok(job > 0, "a job with --skip-existing and two --group ids");
	struct store_claim **c;
	size_t n = claim_all(s, &c);
	is_int(n, 4, "its 4 rows claimed");
	ok(n == 4 && c[0]->lookup == ROW_LOOKUP_SKIP && c[3]->lookup == ROW_LOOKUP_SKIP,
	   "each to be looked up first");
	if (n != 4)
		return;
	finish(s, c[0], ROW_STATE_SUCCEEDED, NULL); /* G1, G2 and its own G3 */
	finish(s, c[1], ROW_STATE_SKIPPED, "Guest"); /* G1, G2 */
	finish(s, c[2], ROW_STATE_SKIPPED, "Member"); /* none: not a guest */
	finish(s, c[3], ROW_STATE_FAILED, NULL);     /* none */
	done_job = 0;
	is_int(store_flush(s), 0, "the results written");
	struct store_job j;
	store_job_get(s, job, &j);
	is_int(j.skipped, 2, "2 skipped");
	is_int(j.succeeded + j.failed + j.skipped, 4, "every row terminal");
	is_int(j.groups_pending, 5, "5 additions due: 3 for the invited row, 2 for the skipped guest");
	ok(j.finished_at == 0 && done_job == 0, "the job is not done while additions are due");
	ok(j.skip_existing && j.groups && strstr(j.groups, G2), "the job keeps its options");
	store_job_clear(&j);
	is_int(db_int("SELECT COUNT(*) FROM steps WHERE kind = 1 AND arg = '" G3 "'"), 1,
	       "the row's own group is an addition of its own");

	struct store_step **st;
	size_t ns = 0;
	is_int(store_steps_claim(s, tenant, STEP_GROUP, time_now_ms(), 60000, 10, &st, &ns), 0,
	       "additions claimed");
	is_int(ns, 5, "all 5");
	ok(ns > 0 && st[0]->user_id && strncmp(st[0]->user_id, "user-", 5) == 0,
	   "with the row's user id");
	struct store_step **again;
	size_t na = 9;
	store_steps_claim(s, tenant, STEP_GROUP, time_now_ms(), 60000, 10, &again, &na);
	is_int(na, 0, "a claimed addition is leased: not claimed twice");
	uint64_t due = 0;
	is_int(store_steps_next_due(s, tenant, STEP_GROUP, &due), 1, "and due after the lease");
	ok(due > time_now_ms() + 50000, "the lease's end");
	for (size_t i = 0; i < ns; i++) {
		bool fail = strcmp(st[i]->arg, G2) == 0;
		/* one 404 first: pending again */
		if (i == 0 && !fail)
			store_step_finish(s, st[i]->row_id, STEP_GROUP, st[i]->arg, STEP_PENDING, 1,
					  time_now_ms(), NULL, NULL);
		else
			store_step_finish(s, st[i]->row_id, STEP_GROUP, st[i]->arg,
					  fail ? STEP_FAILED : STEP_DONE, 1, 0,
					  fail ? "Request_BadRequest: guests not allowed" : NULL, NULL);
	}
	store_flush(s);
	store_job_get(s, job, &j);
	is_int(j.group_failures, 2, "2 rows with a failed addition (G2 of each)");
	is_int(j.groups_pending, st[0] && strcmp(st[0]->arg, G2) ? 1 : 0,
	       "the one answered 404 is still due");
	store_job_clear(&j);
	for (size_t i = 0; i < ns; i++)
		store_step_free(st[i]);
	free(st);
	store_steps_claim(s, tenant, STEP_GROUP, time_now_ms(), 60000, 10, &st, &ns);
	for (size_t i = 0; i < ns; i++) {
		store_step_finish(s, st[i]->row_id, STEP_GROUP, st[i]->arg, STEP_DONE, 2, 0, NULL,
				  NULL);
		store_step_free(st[i]);
	}
	free(st);
	store_flush(s);
	store_job_get(s, job, &j);
	is_int(j.groups_pending, 0, "no addition left");
	ok(j.finished_at != 0 && done_job == job, "now the job is completed (and reported)");
	store_job_clear(&j);
	is_int(count_rows(s, job, ROW_FILTER_GROUP_FAILED), 2, "show --state group-failed: 2 rows");
	is_int(count_rows(s, job, ROW_STATE_SKIPPED), 2, "--state skipped: 2 rows");
	struct seen seen = {0};
	int64_t next;
	store_rows_list(s, job, 0, 100, -1, false, collect, &seen, &next);
	ok(strstr(seen.groups[0], "\"state\":\"added\"") && strstr(seen.groups[0], G3) &&
	       strstr(seen.groups[0], "\"error\":\"Request_BadRequest: guests not allowed\""),
	   "a row's groups: each addition with its state and error");
	is_str(seen.groups[2], "[]", "a skipped member has none");

	/* retry --groups: only the failed additions, the job reopens */
	int64_t changed = 0;
	struct store_actor who = {.uid = 0, .user = "root"};
	is_int(store_job_action(s, STORE_ACTION_RETRY_GROUPS, job, NULL, &who, &changed), 0,
	       "retry --groups");
	is_int(changed, 2, "the 2 failed additions");
	store_job_get(s, job, &j);
	ok(j.groups_pending == 2 && j.group_failures == 0 && j.finished_at == 0,
	   "due again; the job is open again");
	store_job_clear(&j);
	/* cancel gives them up, and the job ends */
	is_int(store_job_action(s, STORE_ACTION_CANCEL, job, NULL, &who, &changed), 0, "cancel");
	store_job_get(s, job, &j);
	ok(j.groups_pending == 0 && j.finished_at != 0, "cancel gives the additions up and ends the job");
	is_str(job_state_name(j.state), "cancelled", "as cancelled: something was given up");
	store_job_clear(&j);
	for (size_t i = 0; i < n; i++)
		store_claim_free(c[i]);
	free(c);
}

static void test_tracking_and_resend(struct store *s)
{
	int64_t job = import_job(3, "t", false, NULL, 1000);
	struct store_claim **c;
	size_t n = claim_all(s, &c);
	is_int(n, 3, "a tracked job's 3 rows claimed");
	if (n != 3)
		return;
	for (size_t i = 0; i < n; i++)
		finish(s, c[i], ROW_STATE_SUCCEEDED, NULL);
	store_flush(s);
	struct store_job j;
	store_job_get(s, job, &j);
	ok(j.track_ms == 1000 && j.finished_at != 0, "completed; tracking goes on after (%lld/%lld/%lld, %d)", (long long)j.succeeded, (long long)j.total, (long long)j.groups_pending, j.state);
	store_job_clear(&j);
	struct store_track *t = NULL;
	size_t nt = 0;
	is_int(store_track_claim(s, tenant, time_now_ms() + 2000, 60000, 20, &t, &nt), 0,
	       "tracking reads claimed when due");
	is_int(nt, 3, "each invited guest");
	ok(nt == 3 && t[0].track_days == 1 && t[0].user_id, "with the user id and the job's days");
	for (size_t i = 0; i < nt; i++)
		store_track_finish(s, t[i].row_id, t[i].job_id, i == 0 ? time_now_ms() : 0,
				   i == 0 ? 0 : time_now_ms() + 5000);
	store_track_free(t, nt);
	store_flush(s);
	store_job_get(s, job, &j);
	is_int(j.accepted, 1, "one accepted");
	store_job_clear(&j);
	is_int(count_rows(s, job, ROW_FILTER_ACCEPTED), 1, "--state accepted");
	is_int(count_rows(s, job, ROW_FILTER_NOT_ACCEPTED), 2, "--state not-accepted");

	int64_t changed = 0;
	struct store_actor who = {.uid = 0, .user = "root"};
	is_int(store_job_resend(s, job, 3600000, 3, true, &who, NULL, NULL, &changed), 0,
	       "resend --older-than 1h --dry-run");
	is_int(changed, 0, "nothing that old");
	is_int(store_job_resend(s, job, 0, 3, true, &who, NULL, NULL, &changed), 0, "resend --dry-run");
	is_int(changed, 2, "the 2 not accepted");
	is_int(db_int("SELECT COUNT(*) FROM steps WHERE kind = 2"), 0, "a dry run changes nothing");
	is_int(store_job_resend(s, job, 0, 3, false, &who, NULL, NULL, &changed), 0, "resend");
	is_int(db_int("SELECT COUNT(*) FROM audit WHERE action = 'resend'"), 1, "audited");
	is_int(store_job_resend(s, job, 0, 3, false, &who, NULL, NULL, &changed), 0,
	       "resend again at once");
	is_int(changed, 0, "a row whose resend is still due is not picked twice");
	struct store_claim **rc;
	size_t nr = 0;
	is_int(store_resends_claim(s, tenant, time_now_ms(), 60000, 10, &rc, &nr), 0,
	       "resends claimed");
	ok(nr == 2 && rc[0]->resend && rc[0]->send_email && rc[0]->email,
	   "as claims marked resend, sending the mail");
	for (size_t i = 0; i < nr; i++) {
		store_step_finish(s, rc[i]->row_id, STEP_RESEND, "", STEP_DONE, 1, 0, NULL,
				  "https://redeem.example/2");
		store_claim_free(rc[i]);
	}
	free(rc);
	store_flush(s);
	is_int(db_int("SELECT COUNT(*) FROM rows WHERE resends = 1 AND invite_redeem_url ="
		      " 'https://redeem.example/2' AND track_next_at IS NOT NULL"),
	       2, "each resent row: resends 1, the new redeem URL, tracked again");
	is_int(store_job_resend(s, job, 0, 1, true, &who, NULL, NULL, &changed), 0,
	       "max_resends 1");
	is_int(changed, 0, "no row past its max_resends");
	for (size_t i = 0; i < n; i++)
		store_claim_free(c[i]);
	free(c);
}

/* [mail]: a succeeded row whose send flag is on gets one mail step, the job
 * waits for it, a sent one is counted in the mailbox's day, a resend sends
 * it again (issue 13). */
static void test_mail(struct store *s)
{
	import_mail = true;
	int64_t job = import_job(3, "m", false, NULL, 0);
	import_mail = false;
	struct store_claim **c;
	size_t n = claim_all(s, &c);
	is_int(n, 3, "a [mail] job's 3 rows claimed");
	if (n != 3)
		return;
	ok(c[0]->own_mail && c[1]->own_mail, "claims say our mail follows (sendInvitationMessage=false)");
	finish(s, c[0], ROW_STATE_SUCCEEDED, NULL);
	finish(s, c[1], ROW_STATE_SUCCEEDED, NULL); /* its send flag is off */
	finish(s, c[2], ROW_STATE_FAILED, NULL);
	store_flush(s);
	struct store_job j;
	store_job_get(s, job, &j);
	ok(j.mail && j.mail_pending == 1 && j.mailed == 0 && j.finished_at == 0,
	   "one mail due (the failed row and the one with sending off have none); not done yet");
	store_job_clear(&j);
	int64_t pend = 0;
	store_mail_pending(s, tenant, &pend);
	is_int(pend, 1, "the tenant's mails due");
	struct store_mail *m = NULL;
	size_t nm = 0;
	is_int(store_mails_claim(s, tenant, time_now_ms(), 60000, 10, &m, &nm), 0, "mail claimed");
	ok(nm == 1 && m[0].row_id == c[0]->row_id && m[0].redeem_url &&
	       strcmp(m[0].redeem_url, "https://redeem.example/1") == 0 && m[0].inviter &&
	       strcmp(m[0].inviter, "tester") == 0,
	   "with the row's redeem URL and the inviter");
	size_t again = 9;
	struct store_mail *m2 = NULL;
	store_mails_claim(s, tenant, time_now_ms(), 60000, 10, &m2, &again);
	is_int(again, 0, "leased: not claimed twice");
	store_mails_free(m2, again);
	if (nm == 1)
		store_mail_finish(s, m[0].row_id, STEP_DONE, 1, 0, NULL, "Invitations@Contoso.example");
	store_mails_free(m, nm);
	store_flush(s);
	store_job_get(s, job, &j);
	ok(j.mailed == 1 && j.mail_pending == 0 && j.finished_at != 0, "sent: the job is done");
	store_job_clear(&j);
	uint64_t count = 0, oldest = 0;
	store_mail_sent(s, "invitations@contoso.example", time_now_ms() - 86400000, &count, &oldest);
	ok(count == 1 && oldest > 0, "the mailbox's day counts it (case-insensitive)");
	store_mail_sent(s, "invitations@contoso.example", time_now_ms() + 1, &count, &oldest);
	is_int(count, 0, "and drops it once it is out of the window");
	/* a resend of a [mail] job: the invitation again, then our mail again */
	int64_t changed = 0;
	struct store_actor who = {.uid = 0, .user = "root"};
	store_job_resend(s, job, 0, 3, false, &who, NULL, NULL, &changed);
	is_int(changed, 2, "both succeeded rows resent");
	struct store_claim **rc;
	size_t nr = 0;
	store_resends_claim(s, tenant, time_now_ms(), 60000, 10, &rc, &nr);
	ok(nr == 2 && rc[0]->own_mail, "resends of a [mail] job: our mail follows");
	for (size_t i = 0; i < nr; i++) {
		store_step_finish(s, rc[i]->row_id, STEP_RESEND, "", STEP_DONE, 1, 0, NULL,
				  "https://redeem.example/3");
		store_claim_free(rc[i]);
	}
	free(rc);
	store_flush(s);
	store_job_get(s, job, &j);
	is_int(j.mail_pending, 1, "the mail goes again for the row that sends mail only");
	store_job_clear(&j);
	for (size_t i = 0; i < n; i++)
		store_claim_free(c[i]);
	free(c);
}

static void test_recover_marks_lookup(struct store *s)
{
	int64_t job = import_job(2, "r", false, NULL, 0);
	struct store_claim **c;
	size_t n = claim_all(s, &c);
	is_int(n, 2, "2 rows in flight, then a crash");
	for (size_t i = 0; i < n; i++)
		store_claim_free(c[i]);
	free(c);
	unsigned results = 0, count = 0;
	is_int(store_recover(s, &results, &count), 0, "recovery");
	is_int(count, 2, "both back to pending");
	n = claim_all(s, &c);
	ok(n == 2 && c[0]->lookup == ROW_LOOKUP_LOST && c[1]->lookup == ROW_LOOKUP_LOST,
	   "each to be looked up before it is sent again (R5)");
	for (size_t i = 0; i < n; i++)
		finish(s, c[i], ROW_STATE_SUCCEEDED, NULL);
	store_flush(s);
	is_int(db_int("SELECT COUNT(*) FROM rows WHERE lookup <> 0 AND job_id IN"
		      " (SELECT MAX(id) FROM jobs)"),
	       0, "a result clears the mark");
	(void)job;
	for (size_t i = 0; i < n; i++)
		store_claim_free(c[i]);
	free(c);
}

/* A database at version 5 (before this schema), with a job half done,
 * opens: migrated, the job intact and countable, nothing to look up. */
static void test_upgrade_v5(void)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/v5.db", dir);
	sqlite3 *db;
	sqlite3_open(path, &db);
	bool ok5 = true;
	for (unsigned v = 0; v < 5; v++)
		ok5 &= sqlite3_exec(db, schema_migrations[v], NULL, NULL, NULL) == SQLITE_OK;
	ok5 &= sqlite3_exec(db,
			    "PRAGMA user_version = 5;"
			    "INSERT INTO tenants(id, name) VALUES (1, 'default');"
			    "INSERT INTO jobs(id, tenant_id, state, created_at, submitted_uid,"
			    " submitted_user, redirect_url, send_email, total, succeeded, first_row,"
			    " last_row) VALUES (3, 1, 1, 1000, 0, 'root', 'https://r.example', 1, 2,"
			    " 1, 10, 11);"
			    "INSERT INTO rows(id, job_id, line, email, fields, state, updated_at,"
			    " invited_user_id) VALUES (10, 3, 2, 'a@x.example', '[]', 2, 1000, 'u1'),"
			    " (11, 3, 3, 'b@x.example', '[]', 0, 1000, NULL);",
			    NULL, NULL, NULL) == SQLITE_OK;
	sqlite3_close(db);
	ok(ok5, "a version 5 database with a running job");
	struct store *s = NULL;
	char *err = NULL;
	is_int(store_open(&s, path, &err), 0, "opened (%s)", err ? err : "ok");
	free(err);
	if (!s)
		return;
	struct store_job j;
	is_int(store_job_get(s, 3, &j), 0, "its job");
	ok(j.total == 2 && j.succeeded == 1 && j.skipped == 0 && j.groups_pending == 0 &&
	       !j.skip_existing && !j.groups && j.track_ms == 0,
	   "counts intact, no onboarding step");
	store_job_clear(&j);
	struct store_claim **c;
	size_t n = 0;
	store_rows_claim(s, 1, time_now_ms(), 10, &c, &n);
	ok(n == 1 && c[0]->lookup == ROW_LOOKUP_NONE, "its pending row is sent as before");
	for (size_t i = 0; i < n; i++) {
		store_claim_sent(s, c[i]);
		finish(s, c[i], ROW_STATE_SUCCEEDED, NULL);
		store_claim_free(c[i]);
	}
	free(c);
	store_flush(s);
	store_job_get(s, 3, &j);
	ok(j.finished_at != 0 && j.succeeded == 2, "and the job completes");
	store_job_clear(&j);
	store_close(s);
}

int main(void)
{
	tap_plan_none();
	struct store *s = NULL;
	char *err = NULL;
	if (!mkdtemp(dir))
		return 1;
	snprintf(db_path, sizeof(db_path), "%s/invited.db", dir);
	is_int(store_open(&s, db_path, &err), 0, "store opens");
	free(err);
	if (!s)
		return tap_done();
	store_set_job_done(s, on_done, NULL);
	store_tenant_ensure(s, "default", &tenant);
	test_groups_and_skips(s);
	test_tracking_and_resend(s);
	test_recover_marks_lookup(s);
	test_mail(s);
	store_close(s);
	test_upgrade_v5();
	return tap_done();
}
