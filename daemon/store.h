/* SPDX-License-Identifier: MIT */
/*
 * store: the only user of SQLite. Jobs and rows (schema/), row lifecycle
 * transitions with the per-job counts kept in the same transaction, the
 * claim of rows before they are sent, group-committed results, and the
 * all-or-nothing import of an uploaded file.
 *
 * The loop-thread connection (struct store) never waits for a lock: a write
 * that finds the database locked returns -EBUSY and the caller tries again
 * later (results stay queued). Imports run on a worker thread with a
 * connection of their own (struct store_import).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct csv_row;
struct store;

enum row_state {
	ROW_STATE_PENDING = 0,
	ROW_STATE_IN_FLIGHT = 1,
	ROW_STATE_SUCCEEDED = 2,
	ROW_STATE_FAILED = 3,
	ROW_STATE_CANCELLED = 4,
	ROW_STATE_SKIPPED = 5, /* an existing user (submit --skip-existing): terminal */
};

/* rows.lookup (schema/0006): look the address up before the invitation.
 * Bits: SKIP, LOST (SKIP_LOST is both), AGAIN with LOST. */
enum row_lookup {
	ROW_LOOKUP_NONE = 0,
	ROW_LOOKUP_SKIP = 1, /* submit --skip-existing: a user found skips the row */
	ROW_LOOKUP_LOST = 2, /* an earlier attempt's fate is unknown (a crash, a timeout): a
			      * guest found is the one it made, the row succeeds */
	ROW_LOOKUP_SKIP_LOST = 3, /* both (--skip-existing, then a crash or a lost answer):
				   * a member found skips the row (an invitation never makes
				   * one), a guest found is not invited again */
	ROW_LOOKUP_AGAIN = 4, /* with LOST: a lookup found nobody; the one after
			       * replication_delay decides (GRAPH.md §6: a new guest may
			       * not be readable yet) */
};

/* Filters of store_rows_list besides a row state. */
enum row_filter {
	ROW_FILTER_ACCEPTED = 100,     /* accepted_at set */
	ROW_FILTER_NOT_ACCEPTED = 101, /* invited (or skipped as a guest), not accepted */
	ROW_FILTER_GROUP_FAILED = 102, /* a failed group addition */
};

enum job_state {
	JOB_STATE_QUEUED = 0,
	JOB_STATE_RUNNING = 1,
	JOB_STATE_PAUSED = 2,
	JOB_STATE_CANCELLED = 3,
	JOB_STATE_COMPLETED = 4,
	JOB_STATE_BLOCKED = 5, /* never stored: the tenant's block shown on an active job */
};

const char *row_state_name(int state);
const char *job_state_name(int state);
/* -EINVAL for an unknown name. */
int row_state_from_name(const char *name);
/* A row state's name or a filter's (accepted, not-accepted, group-failed). */
int row_filter_from_name(const char *name);

/* A job as shown to clients. All strings owned; release with store_job_clear(). */
struct store_job {
	int64_t id;
	int64_t tenant_id;
	char *tenant;
	char *name; /* may be NULL */
	int state;  /* enum job_state, JOB_STATE_BLOCKED when the tenant is blocked */
	uint64_t created_at;
	uint64_t finished_at; /* 0: not finished */
	uint32_t uid;
	char *user;
	char *filename;
	char *columns; /* JSON array text */
	char *redirect_url;
	bool send_email;
	char *message, *language, *cc; /* may be NULL */
	char *reason;                  /* tenant block reason, NULL if none */
	/* in_flight: rows whose request is on the wire (claimed rows still
	 * waiting for a rate token or a slot are not counted) */
	int64_t total, succeeded, failed, cancelled, in_flight;
	/* SPEC §8 */
	int64_t skipped, accepted, groups_pending, group_failures;
	bool skip_existing;
	char *groups; /* JSON array text of the job's --group ids, NULL: none */
	uint64_t track_ms; /* 0: the job's guests are not tracked */
	bool mail;         /* our own invitation mail ([mail]) */
	int64_t mailed, mail_pending;
};

void store_job_clear(struct store_job *j);

/* In a row's stored input cells, a number stands for the cell its own
 * column holds (so the email is not stored twice). */
#define STORE_FIELD_EMAIL "0"
#define STORE_FIELD_DISPLAY_NAME "1"
#define STORE_FIELD_REDIRECT_URL "2"
#define STORE_FIELD_MESSAGE "3"

/* A row as shown to clients: strings borrowed, valid during the callback. */
struct store_row {
	int64_t id;
	unsigned line;
	const char *email;
	const char *display_name;
	int state;
	unsigned attempts;
	long http_status; /* 0: none */
	const char *error_code, *error_message, *request_id;
	const char *client_request_id; /* the last attempt's */
	const char *invited_user_id, *invite_redeem_url;
	const char *fields; /* JSON array text (STORE_FIELD_* numbers), NULL unless asked for */
	const char *redirect_url, *message; /* the row's own (not the job's), with fields */
	uint64_t updated_at;
	/* SPEC §8 */
	const char *existing_type, *existing_state; /* what a lookup found; NULL: none */
	/* JSON array text [{"id","state","error"}] of its group additions */
	const char *groups;
	uint64_t accepted_at; /* 0: not (yet) */
	unsigned resends;
	/* our mail: state -1 none, else enum store_step_state; error may be NULL */
	int mail_state;
	const char *mail_error;
	uint64_t mail_sent_at;
};

/* A row claimed for sending, with the job's defaults applied. Owned by the
 * caller; release with store_claim_free(). */
struct store_claim {
	int64_t row_id;
	int64_t job_id;
	unsigned line;
	unsigned attempts; /* attempts made before this one */
	bool send_email;
	char *email, *display_name, *redirect_url, *message, *language, *cc;
	int lookup; /* enum row_lookup: look the address up first */
	bool own_mail; /* the job sends our mail: invite with sendInvitationMessage=false */
	bool resend; /* a resend step (store_resends_claim), not the row's invitation */
	/* the attempt's client-request-id, set by the sender ("" until then) */
	char client_request_id[37];
	bool unsent; /* the store's own: counted as claimed, not yet on the wire */
};

void store_claim_free(struct store_claim *c);
/* The claim's request is on the wire now (or the claim is dropped, or put
 * back with store_rows_release): from now on the row counts as in flight
 * in jobs' in_flight and store_totals. Claims are counted as waiting from
 * store_rows_claim until then; a second call does nothing. */
void store_claim_sent(struct store *s, struct store_claim *c);

/* The outcome of one attempt, queued by store_row_finish(). */
struct store_result {
	int64_t row_id;
	int64_t job_id;
	int state;                /* ROW_STATE_SUCCEEDED, _FAILED, or _PENDING (retry later) */
	unsigned attempts;        /* attempts made, this one included */
	unsigned prev_attempts;   /* the row's attempts when claimed: written only if still so */
	uint64_t next_attempt_at; /* for _PENDING */
	long http_status;         /* 0: no HTTP answer */
	char *error_code, *error_message, *request_id, *invited_user_id, *invite_redeem_url;
	char *client_request_id;  /* what was sent as client-request-id; NULL: none */
	int lookup;               /* rows.lookup from now on (enum row_lookup) */
	char *existing_type, *existing_state; /* a lookup's find (skipped, or a lost attempt's guest) */
	int journaled;            /* the store's own: 0 no, 1 buffered, 2 on disk */
};

/* Free res's strings and zero it. */
void store_result_clear(struct store_result *res);

struct store;

/* A job reached a terminal state (completed/cancelled with nothing in flight). */
typedef void (*store_job_done_fn)(void *userdata, int64_t job_id);

/* Open (create) the database at path and bring its schema up to date.
 * On failure *ret_error (owned) says why. */
int store_open(struct store **ret, const char *path, char **ret_error);
/* Flushes queued results (waiting for locks up to a few seconds). NULL ok. */
void store_close(struct store *s);
void store_set_job_done(struct store *s, store_job_done_fn fn, void *userdata);
const char *store_path(const struct store *s);

/* After a crash: results a previous run journaled but did not commit are
 * written (*ret_results), then rows still in flight go back to pending
 * (*ret_count). */
int store_recover(struct store *s, unsigned *ret_results, unsigned *ret_count);

int store_tenant_ensure(struct store *s, const char *name, int64_t *ret_id);
/* A wave-1 database (SPEC §7), whose tenant row is named as its directory:
 * when no row is called name, the row called directory (else, with
 * only_row, the only row there is) is renamed name, its jobs intact. 1
 * renamed, 0 nothing to do. */
int store_tenant_adopt(struct store *s, const char *name, const char *directory, bool only_row);
/* *ret_reason: owned, NULL when not blocked. */
int store_tenant_block_get(struct store *s, int64_t tenant_id, char **ret_reason);
/* reason NULL lifts the block. */
int store_tenant_block_set(struct store *s, int64_t tenant_id, const char *reason);

/* Claim up to limit due pending rows of the tenant's queued/running jobs
 * (oldest job first, line order) and mark them in flight, in one
 * transaction. *ret_claims: owned array of owned claims. -EBUSY: locked. */
int store_rows_claim(struct store *s, int64_t tenant_id, uint64_t now_ms, size_t limit,
		     struct store_claim ***ret_claims, size_t *ret_n);
/* SPEC §8: the steps after a row's invitation (schema/0006), store-steps.c.
 * A step claimed is leased (its next_at moved past the lease) so that it is
 * not claimed twice; its outcome is queued and written by store_flush, with
 * the rows' results. A restart makes every pending step due again. */
enum store_step_kind {
	STEP_GROUP = 1,  /* add the row's user to a group */
	STEP_RESEND = 2, /* invite the row's address again */
	STEP_MAIL = 3,   /* send our invitation mail ([mail]) */
};
enum store_step_state {
	STEP_PENDING = 0,
	STEP_DONE = 1,
	STEP_FAILED = 2,
	STEP_CANCELLED = 3,
};
/* A claimed step; strings owned (store_step_free). */
struct store_step {
	int64_t row_id, job_id;
	int kind;
	char *arg;     /* the group id */
	char *user_id; /* the row's invited_user_id */
	unsigned line;
	unsigned attempts;
	uint64_t first_at;
};
void store_step_free(struct store_step *st);
int store_steps_claim(struct store *s, int64_t tenant_id, int kind, uint64_t now_ms,
		      uint64_t lease_ms, size_t limit, struct store_step ***ret, size_t *ret_n);
/* 1 and *ret_ms: the earliest due pending step of that kind; 0: none. */
int store_steps_next_due(struct store *s, int64_t tenant_id, int kind, uint64_t *ret_ms);
/* A step's outcome: state STEP_PENDING (again at next_at), DONE or FAILED
 * (error: borrowed, copied). redeem_url: a resend's new one. Queued. */
int store_step_finish(struct store *s, int64_t row_id, int kind, const char *arg, int state,
		      unsigned attempts, uint64_t next_at, const char *error, const char *redeem_url);
/* Resend steps due, as claims (resend = true) of the tenant's rows. */
int store_resends_claim(struct store *s, int64_t tenant_id, uint64_t now_ms, uint64_t lease_ms,
			size_t limit, struct store_claim ***ret_claims, size_t *ret_n);

/* Our mail (STEP_MAIL): due mails of the tenant, leased; strings owned. */
struct store_mail {
	int64_t row_id, job_id;
	unsigned line, attempts;
	uint64_t first_at;
	char *email, *display_name, *redeem_url, *message, *inviter;
};
int store_mails_claim(struct store *s, int64_t tenant_id, uint64_t now_ms, uint64_t lease_ms,
		      size_t limit, struct store_mail **ret, size_t *ret_n);
void store_mails_free(struct store_mail *v, size_t n);
/* A mail's outcome (as store_step_finish); a sent one is counted against
 * mailbox's rolling day. Queued. */
int store_mail_finish(struct store *s, int64_t row_id, int state, unsigned attempts,
		      uint64_t next_at, const char *error, const char *mailbox);
/* Mails mailbox sent since since_ms (*ret_count) and the oldest of them
 * (*ret_oldest, 0: none); lines older than since_ms are dropped. */
int store_mail_sent(struct store *s, const char *mailbox, uint64_t since_ms, uint64_t *ret_count,
		    uint64_t *ret_oldest);
/* Mails due or on their way for the tenant's unfinished jobs. */
int store_mail_pending(struct store *s, int64_t tenant_id, int64_t *ret);

/* How many steps (and tracked rows) flushes have made so far: when it moves,
 * the lanes that do them have work. */
uint64_t store_steps_made(const struct store *s);

/* Acceptance tracking: rows whose track_next_at is due, leased like steps. */
struct store_track {
	int64_t row_id, job_id;
	char *user_id;
	uint64_t invited_at; /* the last invitation (or the skip), ms */
	unsigned track_days;
};
int store_track_claim(struct store *s, int64_t tenant_id, uint64_t now_ms, uint64_t lease_ms,
		      size_t limit, struct store_track **ret, size_t *ret_n);
void store_track_free(struct store_track *v, size_t n);
int store_track_next_due(struct store *s, int64_t tenant_id, uint64_t *ret_ms);
/* accepted_ms > 0: accepted then (tracking ends); else next_ms (0: tracking
 * ends). Queued. */
int store_track_finish(struct store *s, int64_t row_id, int64_t job_id, uint64_t accepted_ms,
		       uint64_t next_ms);

/* Earliest next_attempt_at of a pending row in an active job; 1 and *ret_ms
 * when there is one, 0 when there is none. */
int store_rows_next_due(struct store *s, int64_t tenant_id, uint64_t *ret_ms);
/* Put claimed but unsent rows back to pending. */
int store_rows_release(struct store *s, const int64_t *row_ids, size_t n);

/* Queue an attempt's outcome (takes ownership of res's strings; res itself
 * is copied): journaled by the next store_journal_write(), committed by the
 * next store_flush(). */
int store_row_finish(struct store *s, struct store_result *res);
/* Append the results queued since the last call to the journal (journal.h):
 * from then on a crash does not lose them. 0 or negative errno (they stay
 * at risk until committed). */
int store_journal_write(struct store *s);
/* Results queued and not yet committed. */
size_t store_queued(const struct store *s);
/* ... of which neither journaled nor committed: lost to a crash now. */
size_t store_at_risk(const struct store *s);
/* Write queued results in one transaction. 0, -EBUSY (kept for later), or
 * another negative errno (kept too; the caller logs). */
int store_flush(struct store *s);

/* A job's stored state (enum job_state, never BLOCKED); -ENOENT: none. */
int store_job_state_get(struct store *s, int64_t id, int *ret_state);

/* Jobs. -ENOENT when there is no such job. */
int store_job_get(struct store *s, int64_t id, struct store_job *ret);
typedef int (*store_job_fn)(void *userdata, const struct store_job *job);
/* Newest first. all=false: active jobs and those finished since since_ms.
 * fn returns <0 to fail, >0 to stop early (then the list returns 1). */
int store_jobs_list(struct store *s, bool all, uint64_t since_ms, store_job_fn fn, void *userdata);
/* The same, of the jobs submitted by uid only (uid < 0: every job; policy.h). */
int store_jobs_list_owned(struct store *s, int64_t uid, bool all, uint64_t since_ms,
			  store_job_fn fn, void *userdata);
typedef int (*store_row_fn)(void *userdata, const struct store_row *row);
/* Up to limit rows of a job after cursor (0: from the start), state -1 for
 * any; *ret_next is the cursor for the next page or 0 when done. fn returns
 * <0 to fail, >0 to end the page after this row. */
int store_rows_list(struct store *s, int64_t job_id, int64_t cursor, unsigned limit, int state,
		    bool with_fields, store_row_fn fn, void *userdata, int64_t *ret_next);

/* Admin actions; *ret_changed: rows (cancel, retry) or 0/1 (pause, resume). */
int store_job_cancel(struct store *s, int64_t id, int64_t *ret_changed);
int store_job_pause(struct store *s, int64_t id, int64_t *ret_changed);
int store_job_resume(struct store *s, int64_t id, int64_t *ret_changed);
int store_job_retry(struct store *s, int64_t id, int64_t *ret_changed);
/* retry limited to failed rows whose error_code is error_code (borrowed;
 * NULL: every failed row, as store_job_retry). */
int store_job_retry_code(struct store *s, int64_t id, const char *error_code,
			 int64_t *ret_changed);

/* The same, recorded in the audit trail (schema/0003-audit.sql) in the
 * same transaction as the change. who: borrowed. error_code: retry only
 * (NULL: every failed row). */
enum store_action {
	STORE_ACTION_CANCEL,
	STORE_ACTION_PAUSE,
	STORE_ACTION_RESUME,
	STORE_ACTION_RETRY,
	STORE_ACTION_RESEND,
	STORE_ACTION_RETRY_GROUPS,
	STORE_ACTION_TRACK,
};
const char *store_action_name(enum store_action a);
struct store_actor {
	int64_t uid; /* -1: none (a signal) */
	const char *user;
};
int store_job_action(struct store *s, enum store_action action, int64_t id,
		     const char *error_code, const struct store_actor *who, int64_t *ret_changed);

/* resend (SPEC §8): the job's succeeded rows not accepted, invited before
 * now - older_than_ms, with fewer than max_resends resends, get a resend
 * step (dry_run: nothing changes). fn (may be NULL) sees the first rows
 * (line, email, resends); *ret_changed: how many. Audited unless dry_run. */
typedef int (*store_resend_fn)(void *userdata, unsigned line, const char *email, unsigned resends);
int store_job_resend(struct store *s, int64_t id, uint64_t older_than_ms, unsigned max_resends,
		     bool dry_run, const struct store_actor *who, store_resend_fn fn,
		     void *userdata, int64_t *ret_changed);

/* One audit entry; strings borrowed (valid during a list callback). */
struct store_audit {
	int64_t id;
	uint64_t at;
	int64_t uid; /* -1: none */
	const char *user, *action;
	int64_t job_id; /* 0: none */
	const char *sha256, *detail; /* may be NULL */
};
/* Append an entry of its own (reload). at, id ignored. */
int store_audit_add(struct store *s, const struct store_audit *a);
typedef int (*store_audit_fn)(void *userdata, const struct store_audit *a);
/* Newest first, up to limit entries with id < before (0: from the newest),
 * of one job (job_id > 0) or all; *ret_next: the before of the next page, 0
 * when done. fn returns <0 to fail, >0 to end the page after this entry. */
int store_audit_list(struct store *s, int64_t job_id, int64_t before, unsigned limit,
		     store_audit_fn fn, void *userdata, int64_t *ret_next);
/* The same, of the entries uid made or that are about a stored job uid
 * submitted (uid < 0: every entry; policy.h). */
int store_audit_list_owned(struct store *s, int64_t uid, int64_t job_id, int64_t before,
			   unsigned limit, store_audit_fn fn, void *userdata, int64_t *ret_next);

/* Totals over unfinished jobs, for status (in flight: as in store_job). */
int store_totals(struct store *s, int64_t *ret_active_jobs, int64_t *ret_pending,
		 int64_t *ret_in_flight);

/* Copy the WAL into the database (PASSIVE: never waits for readers or the
 * writer). Blocking: call from a worker thread. Connections do not
 * checkpoint on their own (wal_autocheckpoint = 0). */
int store_checkpoint(const char *path, int *ret_wal_pages);

/* Delete the jobs (and their rows) that finished before the time given.
 * Blocking, short transactions: call from a worker thread. */
int store_prune(const char *path, uint64_t finished_before_ms, unsigned *ret_jobs);
/* Rows in a terminal state over every stored job (from the jobs' counts,
 * no scan of rows), for stats. */
int store_row_totals(struct store *s, int64_t *ret_succeeded, int64_t *ret_failed,
		     int64_t *ret_cancelled);
/* Group additions not yet done or failed, over the tenant's jobs (tenant_id
 * 0: every tenant). */
int store_groups_pending(struct store *s, int64_t tenant_id, int64_t *ret);

/* Import: one transaction on a connection of its own (worker thread). */
struct store_import_spec {
	int64_t tenant_id;
	const char *name, *filename, *redirect_url, *message, *language, *cc, *user;
	bool send_email;
	uint32_t uid;
	/* SPEC §8 */
	bool skip_existing;
	const char *groups_json; /* JSON array of the --group ids, NULL: none */
	uint64_t track_ms;       /* the tenant's track_interval when tracking, else 0 */
	unsigned track_days;
	bool mail;               /* the tenant sends our own mail ([mail]) */
};
struct store_import;
int store_import_begin(const char *path, const struct store_import_spec *spec,
		       struct store_import **ret);
/* columns_json: JSON array text (borrowed). */
int store_import_columns(struct store_import *imp, const char *columns_json);
/* Store one row (borrowed). Duplicates are not looked for here. groups_json:
 * the row's own groups (JSON array), NULL: none. */
int store_import_row(struct store_import *imp, const struct csv_row *row, const char *fields_json,
		     const char *groups_json);
/* After the last row: the rows whose address (case-insensitively) is on an
 * earlier line too. fn gets the max with the lowest lines, in line order,
 * each with that earlier line; *ret_count is how many there are in all.
 * Memory stays bounded (SQLite sorts on disk). fn returns <0 to stop. */
typedef int (*store_dup_fn)(void *userdata, unsigned line, const char *email, unsigned first_line);
int store_import_duplicates(struct store_import *imp, size_t max, store_dup_fn fn, void *userdata,
			    size_t *ret_count);
/* Record the submit in the audit trail, in the import's transaction (commit
 * after). sha256_hex: of the uploaded file, borrowed. */
int store_import_audit(struct store_import *imp, const char *sha256_hex);
int store_import_commit(struct store_import *imp, int64_t *ret_job_id);
/* Rolls back unless committed. NULL ok. */
void store_import_destroy(struct store_import *imp);
