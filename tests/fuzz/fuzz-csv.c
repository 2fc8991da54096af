/* SPDX-License-Identifier: MIT */
/*
 * fuzz-csv: the guest-list reader (common/csv.c).
 *
 * Input: byte 0 picks the limits, bytes 1-2 a split point, the rest is the
 * file. The file is read three ways: whole, split in two at the chosen
 * point, and in chunks of a size derived from it. The transcripts of every
 * callback (header, rows, errors) and the final counters must be identical,
 * and every row delivered must obey the per-row rules the reader promises
 * (a groups cell among them: it splits again into 1..VALID_GROUPS_MAX
 * lowercase GUIDs with the row's separator).
 */
#include <string.h>

#include "buf.h"
#include "csv.h"
#include "fuzz.h"

struct transcript {
	struct buf log;
	unsigned last_row_line;
	size_t headers;
};

static void put(struct buf *b, const char *s)
{
	buf_append_str(b, s ? s : "(null)");
	buf_append(b, "|", 1);
}

static int on_header(void *userdata, enum csv_format format, char separator, size_t n_columns,
                     const char *const *columns)
{
	struct transcript *t = userdata;
	FUZZ_ASSERT(format == CSV_FORMAT_PORTAL || format == CSV_FORMAT_POWERSHELL);
	FUZZ_ASSERT(separator == ',' || separator == ';');
	FUZZ_ASSERT(n_columns > 0);
	t->headers++;
	FUZZ_ASSERT(t->headers == 1);
	buf_printf(&t->log, "H %d %c %zu ", (int)format, separator, n_columns);
	for (size_t i = 0; i < n_columns; i++)
		put(&t->log, columns[i]);
	buf_append(&t->log, "\n", 1);
	return 0;
}

static int on_row(void *userdata, const struct csv_row *row)
{
	struct transcript *t = userdata;
	FUZZ_ASSERT(t->headers == 1);
	FUZZ_ASSERT(row->line >= 2);
	FUZZ_ASSERT(row->line > t->last_row_line);
	t->last_row_line = row->line;
	FUZZ_ASSERT(row->email && *row->email);
	FUZZ_ASSERT(csv_email_check(row->email, NULL));
	FUZZ_ASSERT(strlen(row->email) <= CSV_MAX_EMAIL_BYTES);
	FUZZ_ASSERT(!row->redirect_url || csv_url_check(row->redirect_url, NULL));
	FUZZ_ASSERT(!row->display_name || strlen(row->display_name) <= CSV_MAX_NAME_BYTES);
	FUZZ_ASSERT(!row->message || strlen(row->message) <= CSV_MAX_MESSAGE_BYTES);
	FUZZ_ASSERT(row->send_email == CSV_FLAG_UNSET || row->send_email == CSV_FLAG_FALSE ||
	            row->send_email == CSV_FLAG_TRUE);
	FUZZ_ASSERT(row->n_fields > 0 && row->fields);
	FUZZ_ASSERT(row->separator == ',' || row->separator == ';');
	if (row->groups) {
		static char ids[VALID_GROUPS_MAX][VALID_GUID_LEN + 1];
		char why[VALID_WHY_MAX];
		size_t len = strlen(row->groups);
		FUZZ_ASSERT(len > 0 && row->groups[0] != ' ' && row->groups[len - 1] != ' ');
		int n = valid_groups_split(row->groups, len, row->separator, ids, VALID_GROUPS_MAX,
		                           why, sizeof(why));
		FUZZ_ASSERT(n >= 1 && n <= VALID_GROUPS_MAX);
		for (int i = 0; i < n; i++) {
			FUZZ_ASSERT(valid_guid(ids[i], strlen(ids[i])));
			for (int k = 0; k < VALID_GUID_LEN; k++)
				FUZZ_ASSERT(!(ids[i][k] >= 'A' && ids[i][k] <= 'Z'));
			for (int k = 0; k < i; k++)
				FUZZ_ASSERT(strcmp(ids[k], ids[i]) != 0);
		}
	}
	buf_printf(&t->log, "R %u %d ", row->line, (int)row->send_email);
	put(&t->log, row->email);
	put(&t->log, row->display_name);
	put(&t->log, row->redirect_url);
	put(&t->log, row->message);
	put(&t->log, row->groups);
	for (size_t i = 0; i < row->n_fields; i++) {
		FUZZ_ASSERT(row->fields[i]);
		put(&t->log, row->fields[i]);
	}
	buf_append(&t->log, "\n", 1);
	return 0;
}

static int on_error(void *userdata, unsigned line, const char *message)
{
	struct transcript *t = userdata;
	FUZZ_ASSERT(line >= 1);
	FUZZ_ASSERT(message && *message);
	FUZZ_ASSERT(!strchr(message, '\n'));
	buf_printf(&t->log, "E %u ", line);
	put(&t->log, message);
	buf_append(&t->log, "\n", 1);
	return 0;
}

static const struct csv_callbacks callbacks = {
    .on_header = on_header,
    .on_row = on_row,
    .on_error = on_error,
};

/* Read data in pieces of step bytes. */
static void read_file(struct transcript *t, const struct csv_limits *limits, const uint8_t *data,
                      size_t size, size_t step)
{
	struct csv_reader *r;
	buf_init(&t->log);
	t->last_row_line = 0;
	t->headers = 0;
	FUZZ_ASSERT(csv_reader_create(&r, limits, &callbacks, t) == 0);
	size_t off = 0;
	while (off < size) {
		size_t n = size - off < step ? size - off : step;
		FUZZ_ASSERT(csv_reader_feed(r, data + off, n) == 0);
		off += n;
	}
	FUZZ_ASSERT(csv_reader_finish(r) == 0);
	buf_printf(&t->log, "END rows=%zu errors=%zu format=%d\n", csv_reader_rows(r),
	           csv_reader_errors(r), (int)csv_reader_format(r));
	csv_reader_destroy(r);
}

static void read_split(struct transcript *t, const struct csv_limits *limits, const uint8_t *data,
                       size_t size, size_t at)
{
	struct csv_reader *r;
	buf_init(&t->log);
	t->last_row_line = 0;
	t->headers = 0;
	FUZZ_ASSERT(csv_reader_create(&r, limits, &callbacks, t) == 0);
	FUZZ_ASSERT(csv_reader_feed(r, data, at) == 0);
	FUZZ_ASSERT(csv_reader_feed(r, data + at, size - at) == 0);
	FUZZ_ASSERT(csv_reader_finish(r) == 0);
	buf_printf(&t->log, "END rows=%zu errors=%zu format=%d\n", csv_reader_rows(r),
	           csv_reader_errors(r), (int)csv_reader_format(r));
	csv_reader_destroy(r);
}

static bool same(const struct transcript *a, const struct transcript *b)
{
	return a->log.len == b->log.len && memcmp(a->log.data, b->log.data, a->log.len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	static const size_t max_rows[4] = {0, 1, 3, 1000};
	static const size_t max_record[4] = {0, 16, 200, 4096};
	struct csv_limits limits = {
	    .max_rows = max_rows[data[0] & 3],
	    .max_record_bytes = max_record[(data[0] >> 2) & 3],
	};
	size_t at = ((size_t)data[1] << 8 | data[2]);
	data += 3;
	size -= 3;
	at = size ? at % (size + 1) : 0;

	struct transcript whole, split, chunks;
	read_file(&whole, &limits, data, size, size ? size : 1);
	read_split(&split, &limits, data, size, at);
	FUZZ_ASSERT(same(&whole, &split));
	read_file(&chunks, &limits, data, size, (at % 7) + 1);
	FUZZ_ASSERT(same(&whole, &chunks));
	buf_finish(&whole.log);
	buf_finish(&split.log);
	buf_finish(&chunks.log);
	return 0;
}
