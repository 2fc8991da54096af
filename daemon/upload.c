/* SPDX-License-Identifier: MIT */
#include "upload.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "crypto.h"
#include "csv.h"

#define HIGH_WATER (2u << 20) /* bytes buffered before the socket is paused */
#define LOW_WATER (512u << 10)

struct chunk {
	struct chunk *next;
	size_t len;
	char data[];
};

struct upload {
	uv_loop_t *loop;
	uv_work_t work;
	uv_async_t *async; /* worker -> loop: room again */
	upload_done_fn done;
	upload_resume_fn resume;
	void *userdata;

	/* copies of the spec's strings */
	char *db_path;
	struct store_import_spec job;
	char *s_name, *s_filename, *s_redirect, *s_message, *s_language, *s_cc, *s_user;
	bool validate_only;
	uint64_t max_bytes, max_rows;

	/* loop side */
	uint64_t received;
	unsigned newlines; /* seen so far, to place the size error */
	bool too_large;
	bool paused;

	/* shared, under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct chunk *head, *tail;
	size_t buffered;
	bool ended, aborted;
	bool want_resume;

	/* worker side */
	struct store_import *imp;
	struct crypto_sha256 *sha; /* of the bytes fed, for the audit trail */
	struct upload_error dups[UPLOAD_MAX_ERRORS]; /* found after the last row */
	size_t n_dups, dup_count;
	struct buf fields;
	struct upload_result result;
};

static void add_error(struct upload *u, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_error(struct upload *u, unsigned line, const char *fmt, ...)
{
	struct upload_result *res = &u->result;
	res->error_count++;
	if (res->n_errors >= UPLOAD_MAX_ERRORS)
		return;
	struct buf m = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&m, fmt, ap);
	va_end(ap);
	res->errors[res->n_errors].line = line;
	res->errors[res->n_errors].message = buf_steal(&m);
	res->n_errors++;
}

static void json_array_of(struct buf *b, size_t n, const char *const *items)
{
	buf_clear(b);
	buf_append(b, "[", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_append(b, ",", 1);
		buf_append_json_string(b, items[i]);
	}
	buf_append(b, "]", 1);
}

static int on_header(void *userdata, enum csv_format format, char separator, size_t n,
		     const char *const *columns)
{
	struct upload *u = userdata;
	json_array_of(&u->fields, n, columns);
	if (!u->fields.data)
		return -ENOMEM;
	return store_import_columns(u->imp, u->fields.data);
}

/* The input cells as a JSON array, with the cells the row's own columns
 * already hold written as their number (STORE_FIELD_*): the email is not
 * stored twice. ops.c puts them back for `results`. */
static void row_fields(struct buf *b, const struct csv_row *row)
{
	buf_clear(b);
	buf_append(b, "[", 1);
	for (size_t i = 0; i < row->n_fields; i++) {
		const char *f = row->fields[i];
		if (i)
			buf_append(b, ",", 1);
		if (f == row->email)
			buf_append(b, STORE_FIELD_EMAIL, 1);
		else if (f == row->display_name)
			buf_append(b, STORE_FIELD_DISPLAY_NAME, 1);
		else if (f == row->redirect_url)
			buf_append(b, STORE_FIELD_REDIRECT_URL, 1);
		else if (f == row->message)
			buf_append(b, STORE_FIELD_MESSAGE, 1);
		else
			buf_append_json_string(b, f);
	}
	buf_append(b, "]", 1);
}

static int on_row(void *userdata, const struct csv_row *row)
{
	struct upload *u = userdata;
	row_fields(&u->fields, row);
	if (!u->fields.data)
		return -ENOMEM;
	int r = store_import_row(u->imp, row, u->fields.data);
	if (r < 0)
		return r;
	if (row->message)
		u->result.has_message = true;
	return 0;
}

static int on_duplicate(void *userdata, unsigned line, const char *email, unsigned first)
{
	struct upload *u = userdata;
	if (u->n_dups == UPLOAD_MAX_ERRORS)
		return 0;
	struct buf m = BUF_INIT;
	buf_printf(&m, "duplicate email '%s' (also on line %u)", email, first);
	u->dups[u->n_dups].line = line;
	u->dups[u->n_dups].message = buf_steal(&m);
	u->n_dups++;
	return 0;
}

/* Merge the duplicates (in line order) into the reader's problems (in line
 * order): the first UPLOAD_MAX_ERRORS of both, and the count of all. */
static void merge_duplicates(struct upload *u)
{
	struct upload_result *res = &u->result;
	struct upload_error merged[UPLOAD_MAX_ERRORS];
	size_t i = 0, j = 0, n = 0;
	while (n < UPLOAD_MAX_ERRORS && (i < res->n_errors || j < u->n_dups)) {
		if (j == u->n_dups || (i < res->n_errors && res->errors[i].line <= u->dups[j].line))
			merged[n++] = res->errors[i++];
		else
			merged[n++] = u->dups[j++];
	}
	for (; i < res->n_errors; i++)
		free(res->errors[i].message);
	for (; j < u->n_dups; j++)
		free(u->dups[j].message);
	memcpy(res->errors, merged, n * sizeof(merged[0]));
	res->n_errors = n;
	res->error_count += u->dup_count;
	u->n_dups = 0;
}

static int on_error(void *userdata, unsigned line, const char *message)
{
	add_error(userdata, line, "%s", message);
	return 0;
}

/* Next chunk, waiting for it; NULL at the end or on abort. */
static struct chunk *next_chunk(struct upload *u)
{
	pthread_mutex_lock(&u->lock);
	while (!u->head && !u->ended && !u->aborted)
		pthread_cond_wait(&u->cond, &u->lock);
	struct chunk *c = NULL;
	if (!u->aborted && u->head) {
		c = u->head;
		u->head = c->next;
		if (!u->head)
			u->tail = NULL;
		u->buffered -= c->len;
		if (u->want_resume && u->buffered <= LOW_WATER) {
			u->want_resume = false;
			uv_async_send(u->async);
		}
	}
	pthread_mutex_unlock(&u->lock);
	return c;
}

/* The spool: an unnamed file beside the database (O_TMPFILE; else a named
 * one unlinked at once), gone with its descriptor whatever happens. */
static int spool_open(const char *db_path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(db_path, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == db_path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - db_path), db_path);
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd >= 0 ? fd : -errno;
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/.invited-upload-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Receive the whole upload into the spool (and its SHA-256): no lock is
 * held meanwhile, however slowly the client sends. */
static int spool(struct upload *u, int fd)
{
	struct chunk *c;
	int r = 0;
	while ((c = next_chunk(u))) {
		r = crypto_sha256_update(u->sha, c->data, c->len);
		if (r == 0)
			r = write_all(fd, c->data, c->len);
		free(c);
		if (r < 0)
			return r;
	}
	pthread_mutex_lock(&u->lock);
	bool aborted = u->aborted;
	pthread_mutex_unlock(&u->lock);
	return aborted ? -ECANCELED : 0;
}

/* Parse the spooled file into the import. */
static int parse(int fd, struct csv_reader *reader)
{
	static const size_t block = 256u << 10;
	char *b = malloc(block);
	if (!b)
		return -ENOMEM;
	int r = 0;
	off_t off = 0;
	for (;;) {
		ssize_t n = pread(fd, b, block, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : 0;
			break;
		}
		off += n;
		r = csv_reader_feed(reader, b, (size_t)n);
		if (r < 0)
			break;
	}
	free(b);
	return r;
}

/* The worker: spool the upload, then import it in one transaction. The
 * database's write lock is held only while the received file is parsed and
 * stored (a second or two per 100,000 rows at most), never while a client
 * takes its time: sending goes on meanwhile (docs/reliability.md). */
static void work(uv_work_t *req)
{
	struct upload *u = req->data;
	struct upload_result *res = &u->result;
	struct csv_reader *reader = NULL;
	struct csv_limits limits = {.max_rows = u->max_rows};
	struct csv_callbacks cb = {.on_header = on_header, .on_row = on_row, .on_error = on_error};
	int fd = -1;
	int r;

	r = crypto_sha256_create(&u->sha);
	if (r < 0)
		goto out;
	fd = spool_open(u->db_path);
	if (fd < 0) {
		r = fd;
		res->failure = strdup(r == -ENOSPC ? "the disk is full" : "cannot create a file for the upload");
		goto out;
	}
	r = spool(u, fd);
	if (r < 0) {
		if (r == -ENOSPC)
			res->failure = strdup("the disk is full");
		goto out;
	}
	r = store_import_begin(u->db_path, &u->job, &u->imp);
	if (r < 0) {
		res->failure = strdup(r == -EBUSY ? "the database is busy" : "cannot write to the database");
		goto out;
	}
	r = csv_reader_create(&reader, &limits, &cb, u);
	if (r == 0)
		r = parse(fd, reader);
	if (r < 0)
		goto out;
	r = csv_reader_finish(reader);
	if (r < 0)
		goto out;
	res->rows = csv_reader_rows(reader);
	r = crypto_sha256_finish(u->sha, res->sha256);
	if (r < 0)
		goto out;
	r = store_import_duplicates(u->imp, UPLOAD_MAX_ERRORS, on_duplicate, u, &u->dup_count);
	merge_duplicates(u);
	if (r < 0)
		goto out;
	if (u->too_large) /* set before ended, read after: ordered by the lock */
		add_error(u, u->newlines + 1, "the file is larger than max_upload_bytes (%llu bytes)",
			  (unsigned long long)u->max_bytes);
	if (res->error_count > 0) {
		res->status = 1;
	} else if (!u->validate_only) {
		r = store_import_audit(u->imp, res->sha256);
		if (r == 0)
			r = store_import_commit(u->imp, &res->job_id);
		if (r < 0)
			res->failure = strdup(r == -ENOSPC ? "the disk is full" : "cannot commit to the database");
	}
out:
	if (r < 0 && res->status == 0) {
		res->status = r;
		if (!res->failure)
			res->failure = strdup(r == -ENOMEM ? "out of memory" : strerror(-r));
	}
	if (fd >= 0)
		close(fd);
	csv_reader_destroy(reader);
	crypto_sha256_destroy(u->sha);
	u->sha = NULL;
	store_import_destroy(u->imp); /* rolls back unless committed */
	u->imp = NULL;
}

static void on_async_closed(uv_handle_t *h)
{
	struct upload *u = h->data;
	for (size_t i = 0; i < u->result.n_errors; i++)
		free(u->result.errors[i].message);
	for (size_t i = 0; i < u->n_dups; i++)
		free(u->dups[i].message);
	free(u->result.failure);
	while (u->head) {
		struct chunk *c = u->head;
		u->head = c->next;
		free(c);
	}
	buf_finish(&u->fields);
	pthread_mutex_destroy(&u->lock);
	pthread_cond_destroy(&u->cond);
	free(u->db_path);
	free(u->s_name);
	free(u->s_filename);
	free(u->s_redirect);
	free(u->s_message);
	free(u->s_language);
	free(u->s_cc);
	free(u->s_user);
	free(u->async);
	free(u);
}

static void after_work(uv_work_t *req, int status)
{
	struct upload *u = req->data;
	pthread_mutex_lock(&u->lock);
	bool aborted = u->aborted;
	pthread_mutex_unlock(&u->lock);
	if (!aborted && u->done)
		u->done(u->userdata, &u->result);
	uv_close((uv_handle_t *)u->async, on_async_closed);
}

static void on_async(uv_async_t *a)
{
	struct upload *u = a->data;
	pthread_mutex_lock(&u->lock);
	bool aborted = u->aborted;
	pthread_mutex_unlock(&u->lock);
	if (u->paused && !aborted) {
		u->paused = false;
		u->resume(u->userdata);
	}
}

static char *dup_opt(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *p = strdup(s);
	if (!p)
		*oom = true;
	return p;
}

int upload_create(uv_loop_t *loop, const struct upload_spec *spec, upload_done_fn done,
		  upload_resume_fn resume, void *userdata, struct upload **ret)
{
	bool oom = false;
	struct upload *u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->async = malloc(sizeof(*u->async));
	if (!u->async) {
		free(u);
		return -ENOMEM;
	}
	u->loop = loop;
	u->done = done;
	u->resume = resume;
	u->userdata = userdata;
	u->validate_only = spec->validate_only;
	u->max_bytes = spec->max_bytes;
	u->max_rows = spec->max_rows;
	u->job = spec->job;
	u->db_path = dup_opt(spec->db_path, &oom);
	u->job.name = u->s_name = dup_opt(spec->job.name, &oom);
	u->job.filename = u->s_filename = dup_opt(spec->job.filename, &oom);
	u->job.redirect_url = u->s_redirect = dup_opt(spec->job.redirect_url, &oom);
	u->job.message = u->s_message = dup_opt(spec->job.message, &oom);
	u->job.language = u->s_language = dup_opt(spec->job.language, &oom);
	u->job.cc = u->s_cc = dup_opt(spec->job.cc, &oom);
	u->job.user = u->s_user = dup_opt(spec->job.user, &oom);
	buf_init(&u->fields);
	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->cond, NULL);
	uv_async_init(loop, u->async, on_async);
	u->async->data = u;
	u->work.data = u;
	int r = oom ? -ENOMEM : uv_queue_work(loop, &u->work, work, after_work);
	if (r < 0) {
		uv_close((uv_handle_t *)u->async, on_async_closed);
		return r;
	}
	*ret = u;
	return 0;
}

int upload_push(struct upload *u, const void *data, size_t len)
{
	if (u->too_large || len == 0)
		return 0;
	if (u->received + len > u->max_bytes) {
		/* keep reading (and dropping) to the end of the upload; the
		 * worker reports the size once the file has been read */
		u->too_large = true;
		const char *p = data;
		for (size_t i = 0; i < (size_t)(u->max_bytes - u->received); i++)
			u->newlines += p[i] == '\n';
		return 0;
	}
	u->received += len;
	for (const char *p = data, *end = p + len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
		u->newlines++;
	struct chunk *c = malloc(sizeof(*c) + len);
	if (!c)
		return -ENOMEM;
	c->next = NULL;
	c->len = len;
	memcpy(c->data, data, len);
	pthread_mutex_lock(&u->lock);
	if (u->tail)
		u->tail->next = c;
	else
		u->head = c;
	u->tail = c;
	u->buffered += len;
	bool full = u->buffered >= HIGH_WATER;
	if (full) {
		u->want_resume = true;
		u->paused = true;
	}
	pthread_cond_signal(&u->cond);
	pthread_mutex_unlock(&u->lock);
	return full;
}

void upload_end(struct upload *u)
{
	pthread_mutex_lock(&u->lock);
	u->ended = true;
	pthread_cond_signal(&u->cond);
	pthread_mutex_unlock(&u->lock);
}

void upload_abort(struct upload *u)
{
	pthread_mutex_lock(&u->lock);
	u->aborted = true;
	pthread_cond_signal(&u->cond);
	pthread_mutex_unlock(&u->lock);
}
