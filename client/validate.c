/* SPDX-License-Identifier: MIT */
/* validate: check a guest list in invitectl itself (SPEC §3), with the
 * reader the daemon's import uses (common/csv.c). */
#include "validate.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "csv.h"

/* What the daemon lists of a refused file (daemon/upload.h UPLOAD_MAX_ERRORS). */
#define VALIDATE_MAX_ERRORS 50
#define READ_BLOCK (256u << 10)

/* One address seen: its hash, where it is in the arena, its first line. */
struct seen {
	uint64_t hash; /* 0: empty slot */
	size_t off;
	unsigned line;
};

struct check {
	json_t *errors; /* owned: the first VALIDATE_MAX_ERRORS problems */
	size_t error_count;
	struct seen *slots; /* open addressing, a power of two */
	size_t n_slots, n_used;
	struct buf arena; /* the addresses, NUL-terminated, back to back */
	int failed;       /* -ENOMEM once out of memory */
};

static int add_problem(struct check *c, unsigned line, const char *message)
{
	c->error_count++;
	if (json_array_size(c->errors) >= VALIDATE_MAX_ERRORS)
		return 0;
	json_t *e = json_pack("{s:I,s:s}", "line", (json_int_t)line, "message", message);
	if (!e || json_array_append_new(c->errors, e) < 0)
		return -ENOMEM;
	return 0;
}

static int on_error(void *userdata, unsigned line, const char *message)
{
	return add_problem(userdata, line, message);
}

/* FNV-1a over the ASCII-lowercased address, as the daemon's import does;
 * never 0 (the empty slot). */
static uint64_t email_hash(const char *email)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (const unsigned char *p = (const unsigned char *)email; *p; p++) {
		unsigned char ch = *p >= 'A' && *p <= 'Z' ? (unsigned char)(*p + 32) : *p;
		h = (h ^ ch) * UINT64_C(1099511628211);
	}
	return h ? h : 1;
}

static int grow(struct check *c)
{
	size_t n = c->n_slots ? c->n_slots * 2 : 1024;
	struct seen *slots = calloc(n, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_slots; i++) {
		if (!c->slots[i].hash)
			continue;
		size_t k = (size_t)c->slots[i].hash & (n - 1);
		while (slots[k].hash)
			k = (k + 1) & (n - 1);
		slots[k] = c->slots[i];
	}
	free(c->slots);
	c->slots = slots;
	c->n_slots = n;
	return 0;
}

/* The same address twice (case-insensitive, as Graph compares them) is a
 * problem at the later line, naming the first. */
static int on_row(void *userdata, const struct csv_row *row)
{
	struct check *c = userdata;
	if (c->n_used * 2 >= c->n_slots && grow(c) < 0)
		return -ENOMEM;
	uint64_t h = email_hash(row->email);
	size_t k = (size_t)h & (c->n_slots - 1);
	for (; c->slots[k].hash; k = (k + 1) & (c->n_slots - 1)) {
		const struct seen *s = &c->slots[k];
		if (s->hash != h || strcasecmp(c->arena.data + s->off, row->email) != 0)
			continue;
		struct buf m = BUF_INIT;
		int r =
		    buf_printf(&m, "duplicate email '%s' (also on line %u)", row->email, s->line);
		if (r == 0)
			r = add_problem(c, row->line, m.data);
		buf_finish(&m);
		return r;
	}
	size_t off = c->arena.len;
	if (buf_append(&c->arena, row->email, strlen(row->email) + 1) < 0)
		return -ENOMEM;
	c->slots[k] = (struct seen){.hash = h, .off = off, .line = row->line};
	c->n_used++;
	return 0;
}

static ssize_t read_some(int fd, char *b, size_t size)
{
	for (;;) {
		ssize_t n = read(fd, b, size);
		if (n >= 0 || errno != EINTR)
			return n < 0 ? -errno : n;
	}
}

int validate_check_fd(int fd, const struct validate_limits *limits, json_t **ret, int *ret_read_err)
{
	struct check c = {.errors = json_array(), .arena = BUF_INIT};
	struct csv_limits cl = {.max_rows = limits->max_rows};
	struct csv_callbacks cb = {.on_row = on_row, .on_error = on_error};
	struct csv_reader *reader = NULL;
	char *block = malloc(READ_BLOCK);
	uint64_t received = 0;
	unsigned newlines = 0;
	bool too_large = false;
	int r = -ENOMEM;

	if (!c.errors || !block)
		goto out;
	r = csv_reader_create(&reader, &cl, &cb, &c);
	if (r < 0)
		goto out;
	for (;;) {
		ssize_t n = read_some(fd, block, READ_BLOCK);
		if (n < 0) {
			*ret_read_err = (int)-n;
			r = 0;
			goto out;
		}
		if (n == 0)
			break;
		size_t len = (size_t)n;
		if (received + len > limits->max_upload_bytes) {
			/* as the daemon: read up to the limit, then say so at the line
			 * where the limit falls; the cut record is not judged */
			len = (size_t)(limits->max_upload_bytes - received);
			too_large = true;
		}
		for (const char *p = block, *end = p + len;
		     (p = memchr(p, '\n', (size_t)(end - p))); p++)
			newlines++;
		received += len;
		r = csv_reader_feed(reader, block, len);
		if (r < 0 || too_large)
			break;
	}
	if (r == 0 && !too_large)
		r = csv_reader_finish(reader);
	if (r == 0 && too_large) {
		struct buf m = BUF_INIT;
		r = buf_printf(&m, "the file is larger than max_upload_bytes (%llu bytes)",
		               (unsigned long long)limits->max_upload_bytes);
		if (r == 0)
			r = add_problem(&c, newlines + 1, m.data);
		buf_finish(&m);
	}
	if (r < 0)
		goto out;
	*ret = json_pack("{s:b,s:I,s:O,s:I}", "valid", c.error_count == 0, "rows",
	                 (json_int_t)csv_reader_rows(reader), "errors", c.errors, "error_count",
	                 (json_int_t)c.error_count);
	r = *ret ? 0 : -ENOMEM;
out:
	csv_reader_destroy(reader);
	json_decref(c.errors);
	free(c.slots);
	buf_finish(&c.arena);
	free(block);
	return r;
}
