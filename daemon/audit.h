/* SPDX-License-Identifier: MIT */
/*
 * audit: the journal side of the audit trail (the table is store-audit.c's).
 * Under the journal, an entry with structured fields INVITED_ACTION,
 * INVITED_JOB, INVITED_UID, INVITED_USER, INVITED_SHA256 (sd_journal_send);
 * elsewhere the normal notice line.
 */
#pragma once

#include <stdint.h>

/* uid -1: none; job_id 0: none; sha256 may be NULL. */
void audit_log(const char *action, int64_t uid, const char *user, int64_t job_id,
	       const char *sha256, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
