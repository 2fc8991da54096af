/* SPDX-License-Identifier: MIT */
/* log: a hostile string in a message can neither forge nor colour a line. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"

/* Run one log_msg with stderr sent to a temporary file; the bytes written
 * (NUL-terminated, owned by the caller). */
static char *capture(enum log_level level, const char *arg)
{
	char path[] = "/tmp/test-log-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	unlink(path);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	log_msg(level, "upload of '%s' refused", arg);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	off_t size = lseek(fd, 0, SEEK_END);
	char *out = calloc(1, (size_t)size + 1);
	if (out && pread(fd, out, (size_t)size, 0) != size) {
		free(out);
		out = NULL;
	}
	close(fd);
	return out;
}

static bool has_raw_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p < 0x20 && *p != '\n') || *p == 0x7f)
			return true;
		if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) /* C1 */
			return true;
		if (p[0] == 0xe2 && p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae)
			return true;
		if (p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9)
			return true;
	}
	return false;
}

static size_t count_char(const char *s, char c)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == c;
	return n;
}

int main(void)
{
	tap_plan_none();

	/* under the journal: "<N>" prefix, then the escaped message */
	setenv("JOURNAL_STREAM", "8:1234", 1);
	log_init("test", LOG_LEVEL_DEBUG);
	char *out =
	    capture(LOG_LEVEL_WARNING, "a.csv\r<3>invited: forged line\n\033[2J\033[31mred\xc2\x9b"
	                               "1m\xe2\x80\xae"
	                               "txt.exe\xe2\x81\xa6\x9b\\end");
	if (ok(out != NULL, "journal: captured")) {
		is_str(out,
		       "<4>upload of 'a.csv\\r<3>invited: forged line\\n\\e[2J\\e[31mred\\u009b1m"
		       "\\u202etxt.exe\\u2066\\x9b\\\\end' refused\n",
		       "journal: the message escaped, the prefix kept");
		is_int(count_char(out, '\n'), 1, "journal: exactly one line");
		ok(!has_raw_control(out), "journal: no raw control character");
	}
	free(out);

	/* a clean message is written as it is */
	out = capture(LOG_LEVEL_INFO, "plain.csv");
	if (ok(out != NULL, "clean: captured"))
		is_str(out, "<6>upload of 'plain.csv' refused\n", "clean: unchanged");
	free(out);

	/* with timestamps: the prefix as before, the message escaped */
	unsetenv("JOURNAL_STREAM");
	log_init("test", LOG_LEVEL_DEBUG);
	out = capture(LOG_LEVEL_ERROR, "x\ry");
	if (ok(out != NULL, "plain: captured")) {
		ok(strstr(out, "Z test error: upload of 'x\\ry' refused\n") != NULL,
		   "plain: timestamp and level kept, CR escaped");
		is_int(count_char(out, '\n'), 1, "plain: one line");
		ok(!has_raw_control(out), "plain: no raw control character");
	}
	free(out);

	/* a huge message is cut, still one line */
	char *big = malloc(20000);
	memset(big, '\033', 19999);
	big[19999] = '\0';
	out = capture(LOG_LEVEL_INFO, big);
	if (ok(out != NULL, "huge: captured")) {
		is_int(count_char(out, '\n'), 1, "huge: one line");
		ok(out[strlen(out) - 1] == '\n', "huge: ends with the newline");
		ok(!has_raw_control(out), "huge: no raw control character");
	}
	free(out);
	free(big);
	return tap_done();
}
