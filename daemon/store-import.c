/* SPDX-License-Identifier: MIT */
/* store-import: the all-or-nothing import of an upload, on a worker thread
 * with a connection of its own; duplicates found by hash, then compared. */
#include "store-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "csv.h"
#include "timeutil.h"

struct store_import {
	sqlite3 *db;
	int64_t uid;
	char *user;
	sqlite3_stmt *insert;
	int64_t job_id;
	int64_t rows;
	int64_t first_row, last_row;
	uint64_t *hashes; /* email_hash() of every row, for store_import_duplicates */
	size_t n_hashes, cap_hashes;
	uint64_t now;
	bool committed;
	bool has_groups; /* the job or a row names groups (jobs.has_groups) */
};

int store_import_begin(const char *path, const struct store_import_spec *spec,
		       struct store_import **ret)
{
	int r;
	sqlite3_stmt *job = NULL;
	struct store_import *imp = calloc(1, sizeof(*imp));
	if (!imp)
		return -ENOMEM;
	imp->now = time_now_ms();
	imp->uid = spec->uid;
	imp->user = strdup(spec->user ? spec->user : "");
	if (!imp->user) {
		r = -ENOMEM;
		goto out;
	}
	r = store_db_open(path, &imp->db, NULL);
	if (r < 0)
		goto out;
	exec(imp->db, "PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = FILE;"
		       " PRAGMA cache_size = -4096");
	/* a worker thread may wait for the loop's short transactions */
	sqlite3_busy_timeout(imp->db, 30000);
	r = exec(imp->db, "BEGIN IMMEDIATE");
	if (r < 0)
		goto out;
	r = sqlite_errno(sqlite3_prepare_v2(
		imp->db,
		"INSERT INTO jobs(tenant_id, name, state, created_at, submitted_uid, submitted_user,"
		" filename, redirect_url, send_email, message, language, cc, skip_existing, groups,"
		" has_groups, track_ms, track_days)"
		" VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
		-1, &job, NULL));
	if (r < 0)
		goto out;
	sqlite3_bind_int64(job, 1, spec->tenant_id);
	bind_text_or_null(job, 2, spec->name);
	sqlite3_bind_int64(job, 3, (sqlite3_int64)imp->now);
	sqlite3_bind_int64(job, 4, spec->uid);
	sqlite3_bind_text(job, 5, spec->user, -1, SQLITE_STATIC);
	bind_text_or_null(job, 6, spec->filename);
	sqlite3_bind_text(job, 7, spec->redirect_url, -1, SQLITE_STATIC);
	sqlite3_bind_int(job, 8, spec->send_email);
	bind_text_or_null(job, 9, spec->message);
	bind_text_or_null(job, 10, spec->language);
	bind_text_or_null(job, 11, spec->cc);
	sqlite3_bind_int(job, 12, spec->skip_existing);
	bind_text_or_null(job, 13, spec->groups_json);
	imp->has_groups = spec->groups_json != NULL;
	sqlite3_bind_int(job, 14, imp->has_groups);
	sqlite3_bind_int64(job, 15, (sqlite3_int64)spec->track_ms);
	sqlite3_bind_int(job, 16, (int)spec->track_days);
	r = step_done(job);
	if (r < 0)
		goto out;
	imp->job_id = sqlite3_last_insert_rowid(imp->db);
	r = sqlite_errno(sqlite3_prepare_v2(
		imp->db,
		"INSERT INTO rows(job_id, line, email, display_name, redirect_url, send_email,"
		" message, fields, updated_at, groups, lookup)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
		-1, &imp->insert, NULL));
	if (r < 0)
		goto out;
	sqlite3_bind_int64(imp->insert, 1, imp->job_id);
	sqlite3_bind_int64(imp->insert, 9, (sqlite3_int64)imp->now);
	sqlite3_bind_int(imp->insert, 11, spec->skip_existing ? ROW_LOOKUP_SKIP : ROW_LOOKUP_NONE);
	*ret = imp;
	imp = NULL;
out:
	sqlite3_finalize(job);
	store_import_destroy(imp);
	return r;
}

int store_import_columns(struct store_import *imp, const char *columns_json)
{
	sqlite3_stmt *st = NULL;
	int r = sqlite_errno(sqlite3_prepare_v2(imp->db, "UPDATE jobs SET columns = ?2 WHERE id = ?1",
						-1, &st, NULL));
	if (r == 0) {
		sqlite3_bind_int64(st, 1, imp->job_id);
		sqlite3_bind_text(st, 2, columns_json, -1, SQLITE_STATIC);
		r = step_done(st);
	}
	sqlite3_finalize(st);
	return r;
}

/* FNV-1a over the ASCII-lowercased address: duplicates are looked for among
 * equal hashes only, then compared in full (store_import_duplicates). */
static uint64_t email_hash(const char *email)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (const unsigned char *p = (const unsigned char *)email; *p; p++) {
		unsigned char c = *p >= 'A' && *p <= 'Z' ? (unsigned char)(*p + 32) : *p;
		h = (h ^ c) * UINT64_C(1099511628211);
	}
	return h;
}

int store_import_row(struct store_import *imp, const struct csv_row *row, const char *fields_json,
		     const char *groups_json)
{
	sqlite3_stmt *st = imp->insert;
	sqlite3_bind_int64(st, 2, row->line);
	sqlite3_bind_text(st, 3, row->email, -1, SQLITE_STATIC);
	bind_text_or_null(st, 4, row->display_name);
	bind_text_or_null(st, 5, row->redirect_url);
	if (row->send_email == CSV_FLAG_UNSET)
		sqlite3_bind_null(st, 6);
	else
		sqlite3_bind_int(st, 6, row->send_email == CSV_FLAG_TRUE);
	bind_text_or_null(st, 7, row->message);
	sqlite3_bind_text(st, 8, fields_json, -1, SQLITE_STATIC);
	bind_text_or_null(st, 10, groups_json);
	imp->has_groups |= groups_json != NULL;
	if (imp->n_hashes == imp->cap_hashes) {
		size_t cap = imp->cap_hashes ? imp->cap_hashes * 2 : 4096;
		uint64_t *h = realloc(imp->hashes, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		imp->hashes = h;
		imp->cap_hashes = cap;
	}
	int r = step_done(st);
	if (r < 0)
		return r;
	imp->hashes[imp->n_hashes++] = email_hash(row->email);
	imp->last_row = sqlite3_last_insert_rowid(imp->db);
	if (imp->rows++ == 0)
		imp->first_row = imp->last_row;
	return 0;
}

/* The first UPLOAD-sized set of duplicates by line: a max-heap on line. */
struct dup_heap {
	size_t n, cap;
	struct dup_item {
		unsigned line, first;
		char *email;
	} *items;
};

static void heap_swap(struct dup_heap *h, size_t a, size_t b)
{
	struct dup_item t = h->items[a];
	h->items[a] = h->items[b];
	h->items[b] = t;
}

static void heap_sift_down(struct dup_heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && h->items[l].line > h->items[m].line)
			m = l;
		if (r < h->n && h->items[r].line > h->items[m].line)
			m = r;
		if (m == i)
			return;
		heap_swap(h, i, m);
		i = m;
	}
}

/* Keep the cap smallest lines. 0 or -ENOMEM. */
static int heap_offer(struct dup_heap *h, unsigned line, unsigned first, const char *email)
{
	if (h->n == h->cap) {
		if (h->cap == 0 || h->items[0].line < line)
			return 0;
		free(h->items[0].email);
		h->items[0] = h->items[--h->n];
		heap_sift_down(h, 0);
	}
	char *e = strdup(email);
	if (!e)
		return -ENOMEM;
	size_t i = h->n++;
	h->items[i] = (struct dup_item){line, first, e};
	while (i > 0 && h->items[(i - 1) / 2].line < h->items[i].line) {
		heap_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	return 0;
}

static int cmp_line(const void *a, const void *b)
{
	const struct dup_item *x = a, *y = b;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* In-place quicksort of 64-bit values (glibc's qsort may allocate a copy:
 * at a million rows that would double the memory this needs). */
static void sort_u64(uint64_t *a, size_t n)
{
	while (n > 16) {
		uint64_t x = a[0], y = a[n / 2], z = a[n - 1];
		uint64_t pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
		size_t i = 0, j = n - 1;
		for (;;) {
			while (a[i] < pivot)
				i++;
			while (a[j] > pivot)
				j--;
			if (i >= j)
				break;
			uint64_t t = a[i];
			a[i++] = a[j];
			a[j--] = t;
		}
		/* recurse into the smaller side, loop on the larger */
		if (j + 1 < n - j - 1) {
			sort_u64(a, j + 1);
			a += j + 1;
			n -= j + 1;
		} else {
			sort_u64(a + j + 1, n - j - 1);
			n = j + 1;
		}
	}
	for (size_t i = 1; i < n; i++) {
		uint64_t v = a[i];
		size_t k = i;
		for (; k > 0 && a[k - 1] > v; k--)
			a[k] = a[k - 1];
		a[k] = v;
	}
}

/* Index of v in the sorted a[0..n), or n when absent. */
static size_t find_sorted(const uint64_t *a, size_t n, uint64_t v)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && a[lo] == v ? lo : n;
}

/* The first line of each address among the rows whose hash is shared;
 * chained per hash (a different address with the same hash is a collision). */
struct seen {
	struct seen *next;
	unsigned line;
	char email[];
};

int store_import_duplicates(struct store_import *imp, size_t max, store_dup_fn fn, void *userdata,
			    size_t *ret_count)
{
	sqlite3_stmt *st = NULL;
	struct dup_heap heap = {.cap = max};
	struct seen **seen = NULL; /* per shared hash */
	size_t count = 0, n_dup = 0;
	int rc, r = 0;

	*ret_count = 0;
	sort_u64(imp->hashes, imp->n_hashes);
	/* the shared hashes, compacted to the front of the array */
	for (size_t i = 1; i < imp->n_hashes; i++)
		if (imp->hashes[i] == imp->hashes[i - 1] &&
		    (n_dup == 0 || imp->hashes[n_dup - 1] != imp->hashes[i]))
			imp->hashes[n_dup++] = imp->hashes[i];
	if (n_dup == 0)
		return 0; /* the usual case: no row is read back */

	heap.items = calloc(max ? max : 1, sizeof(*heap.items));
	seen = calloc(n_dup, sizeof(*seen));
	if (!heap.items || !seen) {
		r = -ENOMEM;
		goto out;
	}
	r = sqlite_errno(sqlite3_prepare_v2(
		imp->db, "SELECT line, email FROM rows WHERE id BETWEEN ?1 AND ?2 ORDER BY id", -1,
		&st, NULL));
	if (r < 0)
		goto out;
	sqlite3_bind_int64(st, 1, imp->first_row);
	sqlite3_bind_int64(st, 2, imp->last_row);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *email = col_text(st, 1);
		size_t k = find_sorted(imp->hashes, n_dup, email_hash(email));
		if (k == n_dup)
			continue;
		unsigned line = (unsigned)sqlite3_column_int64(st, 0);
		struct seen *e = seen[k];
		while (e && strcasecmp(e->email, email) != 0)
			e = e->next;
		if (e) {
			count++;
			r = heap_offer(&heap, line, e->line, email);
			if (r < 0)
				goto out;
			continue;
		}
		size_t len = strlen(email) + 1;
		e = malloc(sizeof(*e) + len);
		if (!e) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(e->email, email, len);
		e->line = line;
		e->next = seen[k];
		seen[k] = e;
	}
	if (rc != SQLITE_DONE) {
		r = sqlite_errno(rc);
		goto out;
	}
	qsort(heap.items, heap.n, sizeof(heap.items[0]), cmp_line);
	for (size_t i = 0; i < heap.n && r == 0; i++)
		r = fn(userdata, heap.items[i].line, heap.items[i].email, heap.items[i].first);
	*ret_count = count;
out:
	for (size_t i = 0; seen && i < n_dup; i++)
		while (seen[i]) {
			struct seen *next = seen[i]->next;
			free(seen[i]);
			seen[i] = next;
		}
	free(seen);
	for (size_t i = 0; i < heap.n; i++)
		free(heap.items[i].email);
	free(heap.items);
	sqlite3_finalize(st);
	return r;
}

int store_import_audit(struct store_import *imp, const char *sha256_hex)
{
	char detail[64];
	snprintf(detail, sizeof(detail), "%lld rows", (long long)imp->rows);
	struct store_audit a = {.uid = imp->uid, .user = imp->user, .action = "submit",
				.job_id = imp->job_id, .sha256 = sha256_hex, .detail = detail};
	return store_audit_insert(imp->db, &a, imp->now);
}

int store_import_commit(struct store_import *imp, int64_t *ret_job_id)
{
	sqlite3_stmt *st = NULL;
	int r = sqlite_errno(sqlite3_prepare_v2(imp->db,
						"UPDATE jobs SET total = ?2,"
						" state = CASE WHEN ?2 = 0 THEN 4 ELSE 0 END,"
						" finished_at = CASE WHEN ?2 = 0 THEN created_at END,"
						" first_row = ?3, last_row = ?4, has_groups = ?5"
						" WHERE id = ?1",
						-1, &st, NULL));
	if (r == 0) {
		sqlite3_bind_int64(st, 1, imp->job_id);
		sqlite3_bind_int64(st, 2, imp->rows);
		sqlite3_bind_int64(st, 3, imp->first_row);
		sqlite3_bind_int64(st, 4, imp->last_row);
		sqlite3_bind_int(st, 5, imp->has_groups);
		r = step_done(st);
	}
	sqlite3_finalize(st);
	if (r == 0)
		r = exec(imp->db, "COMMIT");
	if (r == 0) {
		imp->committed = true;
		*ret_job_id = imp->job_id;
	}
	return r;
}

void store_import_destroy(struct store_import *imp)
{
	if (!imp)
		return;
	sqlite3_finalize(imp->insert);
	free(imp->hashes);
	if (imp->db) {
		if (!imp->committed && !sqlite3_get_autocommit(imp->db))
			exec(imp->db, "ROLLBACK");
		sqlite3_close(imp->db);
	}
	free(imp->user);
	free(imp);
}
