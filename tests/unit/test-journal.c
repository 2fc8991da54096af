/* SPDX-License-Identifier: MIT */
/* journal: records come back as written (NULL and empty strings apart), a
 * record cut short at the end is recognised and ignored, reset empties the
 * file, and a failed write leaves no torn record in front of later ones. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "store.h"
#include "tap.h"

static char path[] = "/tmp/test-journal.XXXXXX";

struct got {
	struct store_result v[8];
	char strs[8][5][64];
	int null_mask[8];
	size_t n;
};

static void keep(char out[64], const char *s)
{
	snprintf(out, 64, "%s", s ? s : "");
}

static int collect(void *userdata, struct store_result *res)
{
	struct got *g = userdata;
	if (g->n == 8)
		return -ENOSPC;
	size_t i = g->n++;
	g->v[i] = *res;
	const char *s[5] = {res->error_code, res->error_message, res->request_id,
			    res->invited_user_id, res->invite_redeem_url};
	for (int k = 0; k < 5; k++) {
		keep(g->strs[i][k], s[k]);
		if (!s[k])
			g->null_mask[i] |= 1 << k;
	}
	return 0;
}

static off_t file_size(void)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

int main(void)
{
	tap_plan_none();
	int fd = mkstemp(path);
	ok(fd >= 0, "temp file");
	close(fd);

	struct journal *j;
	is_int(journal_open(path, &j), 0, "open");
	struct store_result a = {.row_id = 7, .job_id = 2, .state = ROW_STATE_SUCCEEDED,
				 .attempts = 1, .prev_attempts = 0, .http_status = 201,
				 .request_id = "req-1", .invited_user_id = "user-1",
				 .invite_redeem_url = "https://redeem.example/x"};
	struct store_result b = {.row_id = 8, .job_id = 2, .state = ROW_STATE_PENDING,
				 .attempts = 3, .prev_attempts = 2, .next_attempt_at = 123456789012ull,
				 .http_status = 503, .error_code = "", .error_message = "Service busy"};
	struct store_result c = {.row_id = 9, .job_id = 3, .state = ROW_STATE_FAILED,
				 .attempts = 1, .http_status = -1};
	is_int(journal_add(j, &a), 0, "add a");
	is_int(journal_add(j, &b), 0, "add b");
	is_int(file_size(), 0, "nothing on disk before the write");
	is_int(journal_write(j), 0, "write");
	ok(file_size() > 0 && (uint64_t)file_size() == journal_size(j), "on disk, size known");
	is_int(journal_add(j, &c), 0, "add c");
	is_int(journal_write(j), 0, "write again (appends)");
	off_t whole = file_size();

	/* a crash during a write: part of a record at the end */
	int wfd = open(path, O_WRONLY | O_APPEND);
	static const unsigned char torn[] = {0x49, 0x56, 0x4a, 0x31, 200, 0, 0, 0, 1, 2, 3};
	ok(wfd >= 0 && write(wfd, torn, sizeof(torn)) == (ssize_t)sizeof(torn), "append a torn record");
	close(wfd);
	journal_close(j);

	is_int(journal_open(path, &j), 0, "reopen");
	struct got g = {0};
	size_t cut = 0;
	is_int(journal_read(j, collect, &g, &cut), 0, "read");
	is_int(g.n, 3, "three whole records");
	is_int(cut, sizeof(torn), "the torn tail is reported, not read");
	ok(g.v[0].row_id == 7 && g.v[0].job_id == 2 && g.v[0].state == ROW_STATE_SUCCEEDED &&
		   g.v[0].attempts == 1 && g.v[0].prev_attempts == 0 && g.v[0].http_status == 201,
	   "a's numbers");
	is_str(g.strs[0][2], "req-1", "a's request id");
	is_str(g.strs[0][4], "https://redeem.example/x", "a's redeem URL");
	is_int(g.null_mask[0], (1 << 0) | (1 << 1), "a's missing error is NULL");
	ok(g.v[1].next_attempt_at == 123456789012ull && g.v[1].attempts == 3 &&
		   g.v[1].prev_attempts == 2 && g.v[1].state == ROW_STATE_PENDING,
	   "b's numbers, 64-bit time intact");
	is_int(g.null_mask[1], (1 << 2) | (1 << 3) | (1 << 4), "b's empty error code is not NULL");
	is_str(g.strs[1][1], "Service busy", "b's message");
	is_int(g.v[2].http_status, -1, "c's negative status");
	is_int(g.null_mask[2], 31, "c has no strings");

	/* a record whose bytes changed fails its checksum: reading stops there */
	wfd = open(path, O_RDWR);
	unsigned char byte;
	off_t at = 40; /* inside the first record's payload */
	ok(pread(wfd, &byte, 1, at) == 1, "read a byte");
	byte ^= 0xff;
	ok(pwrite(wfd, &byte, 1, at) == 1, "flip it");
	close(wfd);
	struct got g2 = {0};
	is_int(journal_read(j, collect, &g2, &cut), 0, "read the damaged file");
	is_int(g2.n, 0, "nothing from a damaged first record on");
	is_int(cut, (size_t)whole + sizeof(torn), "all of it reported as not read");

	is_int(journal_reset(j), 0, "reset");
	is_int(file_size(), 0, "empty");
	is_int(journal_add(j, &c), 0, "add after reset");
	is_int(journal_write(j), 0, "write after reset");
	struct got g3 = {0};
	is_int(journal_read(j, collect, &g3, &cut), 0, "read after reset");
	ok(g3.n == 1 && g3.v[0].row_id == 9 && cut == 0, "only the new record, from offset 0");
	journal_close(j);

	is_int(journal_open("/nonexistent-dir/x-results", &j), -ENOENT, "a missing directory is an error");
	unlink(path);
	return tap_done();
}
