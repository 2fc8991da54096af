-- invited store, version 7: our own invitation mail (SPEC §8 [mail], issue 13).
-- jobs.mail: the job's invitations are made with sendInvitationMessage=false
-- and each row whose send flag is on gets a mail step (steps kind 3) after
-- its invitation; mail_pending counts those not yet sent or failed (the job
-- is done only without any), mailed those sent.
ALTER TABLE jobs ADD COLUMN mail INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN mailed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN mail_pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rows ADD COLUMN mail_sent_at INTEGER;
-- one line per message a mailbox sent: its rolling 24-hour count
-- (daily_limit) survives a restart; lines older than a day are dropped
CREATE TABLE mail_log (
	mailbox TEXT NOT NULL COLLATE NOCASE,
	at INTEGER NOT NULL
);
CREATE INDEX mail_log_at ON mail_log(mailbox, at);
