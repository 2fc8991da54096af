-- invited store, version 3: the audit trail.
-- One row per state-changing request (submit, cancel, pause, resume, retry,
-- reload), written in the same transaction as the change it records.
-- Append-only: the triggers refuse UPDATE and DELETE.

CREATE TABLE audit (
	id INTEGER PRIMARY KEY,
	at INTEGER NOT NULL,        -- ms since the epoch (UTC)
	uid INTEGER,                -- from SO_PEERCRED; NULL: a signal (SIGHUP reload)
	user TEXT NOT NULL,
	action TEXT NOT NULL,       -- submit, cancel, pause, resume, retry, reload
	job_id INTEGER,
	sha256 TEXT,                -- submit: SHA-256 of the uploaded file, hex
	detail TEXT
);

CREATE INDEX audit_job ON audit(job_id) WHERE job_id IS NOT NULL;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
	SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
	SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
