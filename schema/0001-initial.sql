-- invited store, version 1. Times are milliseconds since the epoch (UTC).
-- Row states:  0 pending, 1 in_flight, 2 succeeded, 3 failed, 4 cancelled.
-- Job states:  0 queued, 1 running, 2 paused, 3 cancelled, 4 completed.
-- ("blocked" is not stored per job: it is the tenant's block showing through.)

CREATE TABLE tenants (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	blocked_reason TEXT,      -- non-NULL: all sending stopped until an admin resumes
	blocked_at INTEGER
);

CREATE TABLE jobs (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id),
	name TEXT,
	state INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	finished_at INTEGER,
	submitted_uid INTEGER NOT NULL,
	submitted_user TEXT NOT NULL,
	filename TEXT,
	columns TEXT NOT NULL DEFAULT '[]',   -- JSON array of the header cells
	redirect_url TEXT NOT NULL,
	send_email INTEGER NOT NULL,
	message TEXT,
	language TEXT,
	cc TEXT,
	-- counts kept with every row transition so that listing never scans rows
	total INTEGER NOT NULL DEFAULT 0,
	succeeded INTEGER NOT NULL DEFAULT 0,
	failed INTEGER NOT NULL DEFAULT 0,
	cancelled INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX jobs_active ON jobs(tenant_id, id) WHERE state IN (0, 1);

CREATE TABLE rows (
	id INTEGER PRIMARY KEY,             -- a job's rows are contiguous, in line order
	job_id INTEGER NOT NULL REFERENCES jobs(id),
	line INTEGER NOT NULL,              -- physical line in the uploaded file
	email TEXT NOT NULL COLLATE NOCASE,
	display_name TEXT,
	redirect_url TEXT,                  -- NULL: the job's
	send_email INTEGER,                 -- NULL: the job's
	message TEXT,                       -- NULL: the job's
	fields TEXT NOT NULL,               -- JSON array of the input cells
	state INTEGER NOT NULL DEFAULT 0,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL DEFAULT 0,
	http_status INTEGER,
	error_code TEXT,
	error_message TEXT,
	request_id TEXT,
	invited_user_id TEXT,
	invite_redeem_url TEXT,
	updated_at INTEGER NOT NULL
);

CREATE UNIQUE INDEX rows_job_email ON rows(job_id, email);
CREATE INDEX rows_pending ON rows(job_id, next_attempt_at) WHERE state = 0;
CREATE INDEX rows_in_flight ON rows(job_id) WHERE state = 1;
