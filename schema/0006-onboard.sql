-- invited store, version 6: the guest's onboarding past Graph's 201 (SPEC §8).
-- Row state 5 is skipped (an existing user, submit --skip-existing): terminal.
-- Each step of a row's way is explicit here, so that a restart resumes at the
-- step it was at and repeats no finished one:
--   rows.lookup        look the address up before the invitation (1: skip the
--                      row if found; 2: a previous attempt's fate is unknown
--                      (a crash, a timeout): a guest found means it made it)
--   rows.state         the invitation (as before)
--   steps              group additions (kind 1) and resends (kind 2) after it;
--                      the mail step (kind 3) will be one more kind
--   rows.track_next_at the next read of externalUserState (NULL: not tracked)
ALTER TABLE jobs ADD COLUMN skip_existing INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN groups TEXT;        -- JSON array of group ids (--group), NULL: none
ALTER TABLE jobs ADD COLUMN has_groups INTEGER NOT NULL DEFAULT 0; -- the job or one of its rows names groups
ALTER TABLE jobs ADD COLUMN track_ms INTEGER NOT NULL DEFAULT 0;   -- track_interval when submitted; 0: not tracked
ALTER TABLE jobs ADD COLUMN track_days INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN accepted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN groups_pending INTEGER NOT NULL DEFAULT 0; -- additions not yet added or failed
ALTER TABLE jobs ADD COLUMN group_failures INTEGER NOT NULL DEFAULT 0; -- rows with a failed addition
ALTER TABLE rows ADD COLUMN groups TEXT;        -- JSON array: the row's own groups cell
ALTER TABLE rows ADD COLUMN lookup INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rows ADD COLUMN existing_type TEXT; -- what a lookup found: Member, Guest
ALTER TABLE rows ADD COLUMN existing_state TEXT;
ALTER TABLE rows ADD COLUMN invited_at INTEGER; -- the last invitation Graph took (resend --older-than)
ALTER TABLE rows ADD COLUMN accepted_at INTEGER;
ALTER TABLE rows ADD COLUMN track_next_at INTEGER;
ALTER TABLE rows ADD COLUMN resends INTEGER NOT NULL DEFAULT 0;
CREATE INDEX rows_track ON rows(track_next_at) WHERE track_next_at IS NOT NULL;

CREATE TABLE steps (
	row_id INTEGER NOT NULL,
	kind INTEGER NOT NULL,              -- 1 group addition, 2 resend
	arg TEXT NOT NULL DEFAULT '',       -- the group id
	job_id INTEGER NOT NULL,
	tenant_id INTEGER NOT NULL,
	state INTEGER NOT NULL DEFAULT 0,   -- 0 pending, 1 done, 2 failed, 3 cancelled
	attempts INTEGER NOT NULL DEFAULT 0,
	next_at INTEGER NOT NULL,           -- ms; a claimed step's lease ends here
	first_at INTEGER NOT NULL,          -- when it was first due (the 10-minute replication window)
	error TEXT,
	PRIMARY KEY (row_id, kind, arg)
) WITHOUT ROWID;
CREATE INDEX steps_due ON steps(tenant_id, kind, next_at) WHERE state = 0;
CREATE INDEX steps_job ON steps(job_id, kind, state);
