/* SPDX-License-Identifier: MIT */
#include "upload.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "crypto.h"
#include "csv.h"
#include "valid.h"

/* Memory: bytes received but not yet in the spool. Each upload is paused
 * (its socket not read) past HIGH_WATER of its own, and every upload past
 * BUDGET of all of them together, until the spool writes catch up. */
#define HIGH_WATER (256u << 10)
#define LOW_WATER (64u << 10)
#define BUDGET (8u << 20)
/* Imports (parse + one transaction) running at once on libuv's pool (4
 * threads): the rest wait their turn, so that WAL checkpoints, pruning and
 * other pool work always find a thread. */
#define MAX_IMPORTS 2

struct upload {
	uv_loop_t *loop;
	uv_work_t work;
	uv_fs_t write_req;
	upload_done_fn done;
	upload_resume_fn resume;
	void *userdata;

	/* copies of the spec's strings */
	char *db_path;
	struct store_import_spec job;
	char *s_name, *s_filename, *s_redirect, *s_message, *s_language, *s_cc, *s_user, *s_groups;
	bool validate_only;
	uint64_t max_bytes, max_rows;

	/* loop side: the spool is written with short uv_fs_write requests,
	 * each done at disk speed, so that a client that stops sending holds
	 * no thread and only the bytes it sent last */
	int fd;             /* the spool */
	struct buf pending; /* received, not yet handed to a write */
	struct buf writing; /* being written at offset */
	uint64_t offset;
	uint64_t received;
	unsigned newlines; /* seen so far, to place the size error */
	int write_error;   /* first failed spool write */
	bool too_large;
	bool paused;       /* counted in uploads.n_paused */
	bool ended, aborted;
	bool queued, importing;
	bool write_busy; /* write_req under way */
	struct upload *next_queued, *prev_paused, *next_paused;

	/* worker side, while importing */
	struct store_import *imp; /* NULL for validate_only: no transaction at all */
	struct crypto_sha256 *sha; /* of the bytes fed, for the audit trail */
	uint64_t *hashes;          /* validate_only: every row's email hash */
	size_t n_hashes, cap_hashes;
	struct upload_error dups[UPLOAD_MAX_ERRORS]; /* found after the last row */
	size_t n_dups, dup_count;
	struct buf fields;
	struct buf groups; /* a row's groups as a JSON array */
	struct upload_result result;
};

/* State of all uploads of the process, used on the loop thread only (one
 * loop per daemon). */
static struct {
	size_t buffered;  /* pending + writing of every upload */
	unsigned importing;
	struct upload *queue_head, *queue_tail; /* ended, waiting for an import slot */
	struct upload *paused;                  /* waiting for the budget */
} uploads;

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
	if (!u->imp)
		return 0;
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

static uint64_t email_hash(const char *email)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (const unsigned char *p = (const unsigned char *)email; *p; p++) {
		unsigned char c = *p >= 'A' && *p <= 'Z' ? (unsigned char)(*p + 32) : *p;
		h = (h ^ c) * UINT64_C(1099511628211);
	}
	return h;
}

static int on_row(void *userdata, const struct csv_row *row)
{
	struct upload *u = userdata;
	if (row->message)
		u->result.has_message = true;
	if (!u->imp) { /* validate: remember the address for the duplicate check */
		if (u->n_hashes == u->cap_hashes) {
			size_t cap = u->cap_hashes ? 2 * u->cap_hashes : 1024;
			uint64_t *h = realloc(u->hashes, cap * sizeof(*h));
			if (!h)
				return -ENOMEM;
			u->hashes = h;
			u->cap_hashes = cap;
		}
		u->hashes[u->n_hashes++] = email_hash(row->email);
		return 0;
	}
	row_fields(&u->fields, row);
	if (!u->fields.data)
		return -ENOMEM;
	const char *groups = NULL;
	if (row->groups) {
		/* checked by the reader already: split again, stored as JSON */
		char ids[VALID_GROUPS_MAX][VALID_GUID_LEN + 1];
		char why[VALID_WHY_MAX];
		int n = valid_groups_split(row->groups, strlen(row->groups), row->separator, ids,
					   VALID_GROUPS_MAX, why, sizeof(why));
		if (n < 0)
			return n;
		const char *items[VALID_GROUPS_MAX];
		for (int i = 0; i < n; i++)
			items[i] = ids[i];
		if (n > 0) {
			json_array_of(&u->groups, (size_t)n, items);
			if (!u->groups.data)
				return -ENOMEM;
			groups = u->groups.data;
		}
	}
	return store_import_row(u->imp, row, u->fields.data, groups);
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

/* Parse the spooled file (and hash it, when sha is not NULL). */
static int parse(int fd, struct csv_reader *reader, struct crypto_sha256 *sha)
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
		r = sha ? crypto_sha256_update(sha, b, (size_t)n) : 0;
		if (r == 0)
			r = csv_reader_feed(reader, b, (size_t)n);
		if (r < 0)
			break;
	}
	free(b);
	return r;
}


static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* validate_only: the same email twice, found without the database. The
 * first pass kept every row's hash; when some hash is shared, a second pass
 * over the spool compares those rows' addresses. */
struct dup_seen {
	struct dup_seen *next;
	uint64_t hash;
	unsigned line;
	char email[];
};

struct dup_scan {
	struct upload *u;
	const uint64_t *shared; /* sorted */
	size_t n_shared;
	struct dup_seen *seen;
};

static int on_row_dups(void *userdata, const struct csv_row *row)
{
	struct dup_scan *ds = userdata;
	uint64_t h = email_hash(row->email);
	if (!bsearch(&h, ds->shared, ds->n_shared, sizeof(h), cmp_u64))
		return 0;
	for (struct dup_seen *e = ds->seen; e; e = e->next)
		if (e->hash == h && strcasecmp(e->email, row->email) == 0) {
			ds->u->dup_count++;
			return on_duplicate(ds->u, row->line, row->email, e->line);
		}
	size_t n = strlen(row->email);
	struct dup_seen *e = malloc(sizeof(*e) + n + 1);
	if (!e)
		return -ENOMEM;
	e->hash = h;
	e->line = row->line;
	memcpy(e->email, row->email, n + 1);
	e->next = ds->seen;
	ds->seen = e;
	return 0;
}

static int find_duplicates(struct upload *u, int fd)
{
	size_t n = 0;
	if (u->n_hashes < 2)
		return 0;
	qsort(u->hashes, u->n_hashes, sizeof(*u->hashes), cmp_u64);
	for (size_t i = 1; i < u->n_hashes; i++)
		if (u->hashes[i] == u->hashes[i - 1] && (n == 0 || u->hashes[n - 1] != u->hashes[i]))
			u->hashes[n++] = u->hashes[i];
	if (n == 0)
		return 0; /* the usual case: the file is read once */
	struct dup_scan ds = {.u = u, .shared = u->hashes, .n_shared = n};
	struct csv_limits limits = {.max_rows = u->max_rows};
	struct csv_callbacks cb = {.on_row = on_row_dups};
	struct csv_reader *reader = NULL;
	int r = csv_reader_create(&reader, &limits, &cb, &ds);
	if (r == 0)
		r = parse(fd, reader, NULL);
	if (r == 0)
		r = csv_reader_finish(reader);
	csv_reader_destroy(reader);
	while (ds.seen) {
		struct dup_seen *e = ds.seen;
		ds.seen = e->next;
		free(e);
	}
	return r;
}

/* The worker: parse the spooled file and, for `submit`, store it in one
 * transaction. Runs only once the whole file is in the spool, so that the
 * database's write lock is held for the parse alone (a second or two per
 * 100,000 rows), never while a client takes its time; `validate` takes no
 * lock at all (docs/reliability.md). */
static void work(uv_work_t *req)
{
	struct upload *u = req->data;
	struct upload_result *res = &u->result;
	struct csv_reader *reader = NULL;
	struct csv_limits limits = {.max_rows = u->max_rows};
	struct csv_callbacks cb = {.on_header = on_header, .on_row = on_row, .on_error = on_error};
	int r = 0;

	if (u->write_error < 0) {
		r = u->write_error;
		res->failure = strdup(r == -ENOSPC ? "the disk is full" : "cannot write the upload to disk");
		goto out;
	}
	if (u->too_large) {
		/* the file was not kept past the limit: its size is the one problem */
		add_error(u, u->newlines + 1, "the file is larger than max_upload_bytes (%llu bytes)",
			  (unsigned long long)u->max_bytes);
		res->status = 1;
		goto out;
	}
	r = crypto_sha256_create(&u->sha);
	if (r < 0)
		goto out;
	if (!u->validate_only) {
		r = store_import_begin(u->db_path, &u->job, &u->imp);
		if (r < 0) {
			res->failure = strdup(r == -EBUSY ? "the database is busy" : "cannot write to the database");
			goto out;
		}
	}
	r = csv_reader_create(&reader, &limits, &cb, u);
	if (r == 0)
		r = parse(u->fd, reader, u->sha);
	if (r < 0)
		goto out;
	r = csv_reader_finish(reader);
	if (r < 0)
		goto out;
	res->rows = csv_reader_rows(reader);
	r = crypto_sha256_finish(u->sha, res->sha256);
	if (r < 0)
		goto out;
	if (u->imp)
		r = store_import_duplicates(u->imp, UPLOAD_MAX_ERRORS, on_duplicate, u, &u->dup_count);
	else
		r = find_duplicates(u, u->fd);
	merge_duplicates(u);
	if (r < 0)
		goto out;
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
	csv_reader_destroy(reader);
	crypto_sha256_destroy(u->sha);
	u->sha = NULL;
	store_import_destroy(u->imp); /* rolls back unless committed */
	u->imp = NULL;
	free(u->hashes);
	u->hashes = NULL;
}

static void upload_free(struct upload *u)
{
	for (size_t i = 0; i < u->result.n_errors; i++)
		free(u->result.errors[i].message);
	for (size_t i = 0; i < u->n_dups; i++)
		free(u->dups[i].message);
	free(u->result.failure);
	uploads.buffered -= u->pending.len + u->writing.len;
	buf_finish(&u->pending);
	buf_finish(&u->writing);
	buf_finish(&u->fields);
	if (u->fd >= 0)
		close(u->fd);
	free(u->hashes);
	free(u->db_path);
	free(u->s_name);
	free(u->s_filename);
	free(u->s_redirect);
	free(u->s_message);
	free(u->s_language);
	free(u->s_cc);
	free(u->s_groups);
	buf_finish(&u->groups);
	free(u->s_user);
	free(u);
}

static void pause_set(struct upload *u, bool paused)
{
	if (u->paused == paused)
		return;
	u->paused = paused;
	if (paused) {
		u->prev_paused = NULL;
		u->next_paused = uploads.paused;
		if (uploads.paused)
			uploads.paused->prev_paused = u;
		uploads.paused = u;
		return;
	}
	if (u->prev_paused)
		u->prev_paused->next_paused = u->next_paused;
	else
		uploads.paused = u->next_paused;
	if (u->next_paused)
		u->next_paused->prev_paused = u->prev_paused;
	u->prev_paused = u->next_paused = NULL;
}

static bool over_budget(const struct upload *u)
{
	return u->pending.len + u->writing.len >= HIGH_WATER || uploads.buffered >= BUDGET;
}

/* Resume the paused uploads that have room again (this one first). */
static void resume_some(void)
{
	struct upload *u = uploads.paused;
	while (u && uploads.buffered < BUDGET) {
		struct upload *next = u->next_paused;
		if (u->pending.len + u->writing.len <= LOW_WATER) {
			pause_set(u, false);
			u->resume(u->userdata); /* may push more: the list is walked anew */
			next = uploads.paused;
		}
		u = next;
	}
}

static void after_work(uv_work_t *req, int status);

static void start_imports(void)
{
	while (uploads.importing < MAX_IMPORTS && uploads.queue_head) {
		struct upload *u = uploads.queue_head;
		uploads.queue_head = u->next_queued;
		if (!uploads.queue_head)
			uploads.queue_tail = NULL;
		u->queued = false;
		u->work.data = u;
		int r = uv_queue_work(u->loop, &u->work, work, after_work);
		if (r < 0) {
			u->result.status = r;
			u->result.failure = strdup("cannot start the import");
			u->done(u->userdata, &u->result);
			upload_free(u);
			continue;
		}
		u->importing = true;
		uploads.importing++;
	}
}

static void after_work(uv_work_t *req, int status)
{
	struct upload *u = req->data;
	uploads.importing--;
	u->importing = false;
	if (!u->aborted && u->done)
		u->done(u->userdata, &u->result);
	upload_free(u);
	start_imports();
}

/* The whole file is in the spool: queue the import. */
static void maybe_import(struct upload *u)
{
	if (!u->ended || u->aborted || u->queued || u->importing || u->write_busy ||
	    u->pending.len)
		return;
	u->queued = true;
	u->next_queued = NULL;
	if (uploads.queue_tail)
		uploads.queue_tail->next_queued = u;
	else
		uploads.queue_head = u;
	uploads.queue_tail = u;
	start_imports();
}

static void write_next(struct upload *u);

static void on_spool_written(uv_fs_t *req)
{
	struct upload *u = req->data;
	ssize_t n = req->result;
	uv_fs_req_cleanup(req);
	u->write_busy = false;
	if (n < 0 && u->write_error == 0)
		u->write_error = (int)n;
	if (n > 0 && (size_t)n < u->writing.len && !u->aborted && u->write_error == 0) {
		/* a short write: the rest goes next */
		u->offset += (uint64_t)n;
		uploads.buffered -= (size_t)n;
		buf_consume(&u->writing, (size_t)n);
		write_next(u);
		return;
	}
	if (n > 0)
		u->offset += (uint64_t)n;
	uploads.buffered -= u->writing.len;
	buf_finish(&u->writing);
	if (u->aborted) {
		upload_free(u);
		resume_some();
		return;
	}
	if (u->write_error) { /* nothing more is kept; the error is reported at the end */
		uploads.buffered -= u->pending.len;
		buf_finish(&u->pending);
	}
	write_next(u);
	maybe_import(u);
	resume_some();
}

static void write_next(struct upload *u)
{
	if (u->write_busy || u->aborted)
		return;
	if (!u->writing.len) {
		if (!u->pending.len)
			return;
		u->writing = u->pending; /* moved: the buffer goes with it */
		buf_init(&u->pending);
	}
	uv_buf_t b = uv_buf_init(u->writing.data, (unsigned)u->writing.len);
	u->write_req.data = u;
	u->write_busy = true;
	int r = uv_fs_write(u->loop, &u->write_req, u->fd, &b, 1, (int64_t)u->offset,
			    on_spool_written);
	if (r < 0) {
		u->write_busy = false;
		if (u->write_error == 0)
			u->write_error = r;
		uploads.buffered -= u->writing.len + u->pending.len;
		buf_finish(&u->writing);
		buf_finish(&u->pending);
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
	u->fd = -1;
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
	u->job.groups_json = u->s_groups = dup_opt(spec->job.groups_json, &oom);
	buf_init(&u->pending);
	buf_init(&u->writing);
	buf_init(&u->fields);
	buf_init(&u->groups);
	if (oom) {
		upload_free(u);
		return -ENOMEM;
	}
	/* one quick open on the loop (a local directory); writes go to the pool */
	u->fd = spool_open(u->db_path);
	if (u->fd < 0) {
		int r = u->fd;
		u->fd = -1;
		upload_free(u);
		return r;
	}
	*ret = u;
	return 0;
}

int upload_push(struct upload *u, const void *data, size_t len)
{
	if (u->too_large || u->write_error || len == 0)
		return 0;
	if (u->received + len > u->max_bytes) {
		/* keep reading (and dropping) to the end of the upload; the size
		 * is reported once the whole file has been read, alone */
		u->too_large = true;
		const char *p = data;
		for (size_t i = 0; i < (size_t)(u->max_bytes - u->received); i++)
			u->newlines += p[i] == '\n';
		uploads.buffered -= u->pending.len;
		buf_finish(&u->pending);
		return 0;
	}
	u->received += len;
	for (const char *p = data, *end = p + len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
		u->newlines++;
	if (buf_append(&u->pending, data, len) < 0)
		return -ENOMEM;
	uploads.buffered += len;
	write_next(u);
	if (!over_budget(u))
		return 0;
	pause_set(u, true);
	return 1;
}

void upload_end(struct upload *u)
{
	u->ended = true;
	maybe_import(u);
}

void upload_abort(struct upload *u)
{
	u->aborted = true;
	pause_set(u, false);
	if (u->queued) {
		struct upload **p = &uploads.queue_head;
		struct upload *prev = NULL;
		while (*p && *p != u) {
			prev = *p;
			p = &(*p)->next_queued;
		}
		if (*p)
			*p = u->next_queued;
		if (uploads.queue_tail == u)
			uploads.queue_tail = prev;
		u->queued = false;
	}
	if (u->importing || u->write_busy)
		return; /* after_work / on_spool_written frees it */
	upload_free(u);
	resume_some();
}
