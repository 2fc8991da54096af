-- Cheaper imports (SPEC P1): duplicates are found after the last row from a
-- sorted array of 64-bit hashes of the addresses (no per-row index insert;
-- the rows are read back only when two hashes are equal), and fresh rows (never tried: next_attempt_at = 0) are found by walking each
-- job's contiguous id range instead of through an index entry per row. Only
-- rows waiting for a later attempt (next_attempt_at > 0) are indexed.
ALTER TABLE jobs ADD COLUMN first_row INTEGER;
ALTER TABLE jobs ADD COLUMN last_row INTEGER;
UPDATE jobs SET first_row = (SELECT MIN(id) FROM rows WHERE job_id = jobs.id),
                last_row = (SELECT MAX(id) FROM rows WHERE job_id = jobs.id);
DROP INDEX rows_job_email;
DROP INDEX rows_pending;
CREATE INDEX rows_retry ON rows(job_id, next_attempt_at) WHERE state = 0 AND next_attempt_at > 0;
