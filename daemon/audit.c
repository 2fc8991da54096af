/* SPDX-License-Identifier: MIT */
#include "audit.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "buf.h"
#include "build-config.h"
#include "log.h"

#if HAVE_SYSTEMD
#include <systemd/sd-journal.h>

/* stderr is the journal stream systemd set up ($JOURNAL_STREAM = dev:ino) */
static bool under_journal(void)
{
	static int cached = -1;
	if (cached >= 0)
		return cached;
	cached = 0;
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
	    (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
		cached = 1;
	return cached;
}

static void field(struct iovec *iov, size_t *n, struct buf *b)
{
	iov[*n].iov_base = b->data;
	iov[*n].iov_len = b->len;
	(*n)++;
}
#endif

void audit_log(const char *action, int64_t uid, const char *user, int64_t job_id,
	       const char *sha256, const char *fmt, ...)
{
	struct buf msg = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	if (!msg.data)
		return;
#if HAVE_SYSTEMD
	if (under_journal()) {
		struct buf f[8];
		for (size_t i = 0; i < 8; i++)
			buf_init(&f[i]);
		struct iovec iov[8];
		size_t n = 0;
		buf_printf(&f[0], "MESSAGE=%s", msg.data);
		buf_printf(&f[1], "PRIORITY=5");
		buf_printf(&f[2], "SYSLOG_IDENTIFIER=invited");
		buf_printf(&f[3], "INVITED_ACTION=%s", action);
		buf_printf(&f[4], "INVITED_USER=%s", user ? user : "");
		if (uid >= 0)
			buf_printf(&f[5], "INVITED_UID=%lld", (long long)uid);
		if (job_id > 0)
			buf_printf(&f[6], "INVITED_JOB=%lld", (long long)job_id);
		if (sha256)
			buf_printf(&f[7], "INVITED_SHA256=%s", sha256);
		bool ok = true;
		for (size_t i = 0; i < 8; i++) {
			if (f[i].len)
				field(iov, &n, &f[i]);
			else if (i < 5)
				ok = false;
		}
		if (!ok || sd_journal_sendv(iov, (int)n) < 0)
			log_notice("%s", msg.data);
		for (size_t i = 0; i < 8; i++)
			buf_finish(&f[i]);
		buf_finish(&msg);
		return;
	}
#endif
	log_notice("%s", msg.data);
	buf_finish(&msg);
}
