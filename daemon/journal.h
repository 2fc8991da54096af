/* SPDX-License-Identifier: MIT */
/*
 * journal: the results file beside the database ("<database>-results").
 *
 * An answer's results are appended here (one write() per answer) the moment
 * it is read, and written into SQLite later in a group commit. The journal
 * is what makes a result safe from a crash of the daemon at once, without a
 * transaction per answer: a row answered and journaled is not sent again
 * after a kill -9, so only the requests really in flight are at risk (SPEC
 * R1), and the concurrency slot is free again as soon as the answer is read.
 * A result survives what the page cache survives (a process crash, not a
 * power cut), the same promise as the database's synchronous=NORMAL.
 *
 * Once every journaled result is committed, the file is truncated to zero.
 * At start, store_recover() applies what a previous run journaled and did
 * not commit. A record is length-prefixed and checksummed: a torn tail (a
 * crash during the write) is recognised and ignored.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct store_result;
struct journal;

/* Open (create, mode 0600) the journal at path. 0 or negative errno. */
int journal_open(const char *path, struct journal **ret);
void journal_close(struct journal *j); /* NULL ok */

/* Encode a result into the pending buffer (not yet written). 0 or -ENOMEM. */
int journal_add(struct journal *j, const struct store_result *res);
/* Append the pending buffer with one write(). On failure the file is cut
 * back to its last whole record and the buffer kept for the next try.
 * 0 or negative errno. */
int journal_write(struct journal *j);
/* Bytes on disk. */
uint64_t journal_size(const struct journal *j);
/* Everything journaled is committed: empty the file and the buffer. */
int journal_reset(struct journal *j);

/* Called for each whole record in file order. fn may take res's strings
 * (and zero them); what it leaves is freed after the call. Return <0 to
 * stop (journal_read returns that). */
typedef int (*journal_record_fn)(void *userdata, struct store_result *res);
/* Read the records on disk. *ret_torn: bytes at the end that do not form a
 * whole record (a write cut short), ignored. */
int journal_read(struct journal *j, journal_record_fn fn, void *userdata, size_t *ret_torn);
