/* SPDX-License-Identifier: MIT */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "store.h"

/* A record: magic, payload length, FNV-1a of the payload, then the payload:
 * row_id, job_id (i64), state, attempts, prev_attempts (u32),
 * next_attempt_at (u64), http_status (i64), then five strings, each a u32
 * length (NO_STRING for NULL) and its bytes, then client_request_id the same
 * way (records of a daemon before it end after the five), then (schema 6
 * on) lookup (u32), existing_type and existing_state the same way (older
 * records end before them). Host byte order: the file never
 * leaves the machine, and a daemon upgrade finds it empty after a clean stop. */
#define MAGIC 0x314a5649u /* "IVJ1" */
#define HEADER 12u
#define NO_STRING 0xffffffffu
#define RECORD_MAX (16u << 20)

struct journal {
	int fd;
	uint64_t size;   /* bytes on disk, whole records only */
	struct buf pending; /* records not yet written */
};

static uint32_t fnv1a(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

int journal_open(const char *path, struct journal **ret)
{
	struct journal *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		int r = -errno;
		free(j);
		return r;
	}
	struct stat st;
	if (fstat(j->fd, &st) < 0) {
		int r = -errno;
		journal_close(j);
		return r;
	}
	j->size = (uint64_t)st.st_size;
	buf_init(&j->pending);
	*ret = j;
	return 0;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	buf_finish(&j->pending);
	free(j);
}

static int put_u32(struct buf *b, uint32_t v)
{
	return buf_append(b, &v, sizeof(v));
}

static int put_u64(struct buf *b, uint64_t v)
{
	return buf_append(b, &v, sizeof(v));
}

static int put_str(struct buf *b, const char *s)
{
	if (!s)
		return put_u32(b, NO_STRING);
	size_t n = strlen(s);
	if (n >= NO_STRING)
		return -EINVAL;
	int r = put_u32(b, (uint32_t)n);
	return r < 0 ? r : buf_append(b, s, n);
}

int journal_add(struct journal *j, const struct store_result *res)
{
	struct buf *b = &j->pending;
	size_t start = b->len;
	int r = put_u32(b, MAGIC);
	r = r < 0 ? r : put_u32(b, 0); /* length and checksum, filled in below */
	r = r < 0 ? r : put_u32(b, 0);
	r = r < 0 ? r : put_u64(b, (uint64_t)res->row_id);
	r = r < 0 ? r : put_u64(b, (uint64_t)res->job_id);
	r = r < 0 ? r : put_u32(b, (uint32_t)res->state);
	r = r < 0 ? r : put_u32(b, res->attempts);
	r = r < 0 ? r : put_u32(b, res->prev_attempts);
	r = r < 0 ? r : put_u64(b, res->next_attempt_at);
	r = r < 0 ? r : put_u64(b, (uint64_t)(int64_t)res->http_status);
	r = r < 0 ? r : put_str(b, res->error_code);
	r = r < 0 ? r : put_str(b, res->error_message);
	r = r < 0 ? r : put_str(b, res->request_id);
	r = r < 0 ? r : put_str(b, res->invited_user_id);
	r = r < 0 ? r : put_str(b, res->invite_redeem_url);
	r = r < 0 ? r : put_str(b, res->client_request_id);
	r = r < 0 ? r : put_u32(b, (uint32_t)res->lookup);
	r = r < 0 ? r : put_str(b, res->existing_type);
	r = r < 0 ? r : put_str(b, res->existing_state);
	size_t payload = b->len - start - HEADER;
	if (r == 0 && payload > RECORD_MAX)
		r = -EMSGSIZE;
	if (r < 0) {
		b->len = start;
		return r;
	}
	uint32_t len = (uint32_t)payload;
	uint32_t check = fnv1a((const unsigned char *)b->data + start + HEADER, payload);
	memcpy(b->data + start + 4, &len, 4);
	memcpy(b->data + start + 8, &check, 4);
	return 0;
}

int journal_write(struct journal *j)
{
	size_t done = 0;
	while (done < j->pending.len) {
		ssize_t n = write(j->fd, j->pending.data + done, j->pending.len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int r = n < 0 ? -errno : -EIO;
			/* no torn record may stay in front of later ones */
			if (done > 0 && ftruncate(j->fd, (off_t)j->size) < 0)
				return -errno;
			return r;
		}
		done += (size_t)n;
	}
	j->size += done;
	buf_clear(&j->pending);
	return 0;
}

uint64_t journal_size(const struct journal *j)
{
	return j->size;
}

int journal_reset(struct journal *j)
{
	buf_clear(&j->pending);
	if (j->size == 0)
		return 0;
	if (ftruncate(j->fd, 0) < 0)
		return -errno;
	j->size = 0;
	return 0;
}

struct reader {
	const unsigned char *p, *end;
};

static bool get(struct reader *rd, void *out, size_t n)
{
	if ((size_t)(rd->end - rd->p) < n)
		return false;
	memcpy(out, rd->p, n);
	rd->p += n;
	return true;
}

/* A string, copied (NUL-terminated) into *ret; NULL stays NULL. */
static bool get_str(struct reader *rd, char **ret)
{
	uint32_t n;
	*ret = NULL;
	if (!get(rd, &n, 4))
		return false;
	if (n == NO_STRING)
		return true;
	if ((size_t)(rd->end - rd->p) < n)
		return false;
	*ret = strndup((const char *)rd->p, n);
	rd->p += n;
	return *ret != NULL;
}

static bool decode(const unsigned char *payload, size_t len, struct store_result *res)
{
	struct reader rd = {payload, payload + len};
	uint64_t row_id = 0, job_id = 0, next = 0, status = 0;
	uint32_t state = 0, attempts = 0, prev = 0, lookup = 0;
	memset(res, 0, sizeof(*res));
	bool ok = get(&rd, &row_id, 8) && get(&rd, &job_id, 8) && get(&rd, &state, 4) &&
		  get(&rd, &attempts, 4) && get(&rd, &prev, 4) && get(&rd, &next, 8) &&
		  get(&rd, &status, 8) && get_str(&rd, &res->error_code) &&
		  get_str(&rd, &res->error_message) && get_str(&rd, &res->request_id) &&
		  get_str(&rd, &res->invited_user_id) && get_str(&rd, &res->invite_redeem_url) &&
		  (rd.p == rd.end ||
		   (get_str(&rd, &res->client_request_id) &&
		    (rd.p == rd.end ||
		     (get(&rd, &lookup, 4) && get_str(&rd, &res->existing_type) &&
		      get_str(&rd, &res->existing_state) && rd.p == rd.end))));
	res->lookup = (int)lookup;
	res->row_id = (int64_t)row_id;
	res->job_id = (int64_t)job_id;
	res->state = (int)state;
	res->attempts = attempts;
	res->prev_attempts = prev;
	res->next_attempt_at = next;
	res->http_status = (long)(int64_t)status;
	return ok;
}

int journal_read(struct journal *j, journal_record_fn fn, void *userdata, size_t *ret_torn)
{
	struct stat st;
	*ret_torn = 0;
	if (fstat(j->fd, &st) < 0)
		return -errno;
	size_t size = (size_t)st.st_size;
	unsigned char *data = size ? malloc(size) : NULL;
	if (size && !data)
		return -ENOMEM;
	size_t got = 0;
	while (got < size) {
		ssize_t n = pread(j->fd, data + got, size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	int r = 0;
	size_t off = 0;
	while (off < got) {
		uint32_t magic, len, check;
		if (got - off < HEADER)
			break;
		memcpy(&magic, data + off, 4);
		memcpy(&len, data + off + 4, 4);
		memcpy(&check, data + off + 8, 4);
		if (magic != MAGIC || len > RECORD_MAX || got - off - HEADER < len ||
		    fnv1a(data + off + HEADER, len) != check)
			break;
		struct store_result res;
		bool ok = decode(data + off + HEADER, len, &res);
		if (!ok) {
			store_result_clear(&res);
			break;
		}
		r = fn(userdata, &res);
		store_result_clear(&res); /* what fn did not take */
		if (r < 0)
			break;
		off += HEADER + len;
	}
	*ret_torn = got - off;
	j->size = got;
	free(data);
	return r < 0 ? r : 0;
}
