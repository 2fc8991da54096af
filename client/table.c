/* SPDX-License-Identifier: MIT */
#include "table.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "vis.h"

struct cell {
	char *text; /* owned */
	size_t width;
	const char *sgr; /* borrowed, may be NULL */
};

struct table {
	size_t ncols;
	const struct table_column *cols;
	size_t *widths;     /* ncols */
	struct cell *cells; /* nrows * ncols */
	size_t nrows, cap;
	bool header_done;
};

size_t table_text_width(const char *s)
{
	mbstate_t st;
	memset(&st, 0, sizeof(st));
	size_t len = strlen(s), w = 0;
	while (len > 0) {
		wchar_t wc;
		size_t n = mbrtowc(&wc, s, len, &st);
		if (n == (size_t)-1 || n == (size_t)-2 || n == 0) {
			/* invalid or truncated sequence: one column per byte */
			memset(&st, 0, sizeof(st));
			n = 1;
			w++;
		} else {
			int cw = wcwidth(wc);
			w += cw < 0 ? 1 : (size_t)cw;
		}
		s += n;
		len -= n;
	}
	return w;
}

/* A copy of s with every character a terminal would act on shown escaped
 * (vis: C0 including TAB and newline, DEL, C1, bidi controls, bytes that are
 * not UTF-8), so a cell is one line and cannot drive the terminal. */
static char *cell_text(const char *s)
{
	return vis_strdup(s ? s : "-", 0);
}

int table_create(struct table **ret, size_t n, const struct table_column *cols)
{
	int r = -ENOMEM;
	struct table *t = calloc(1, sizeof(*t));
	if (!t)
		goto out;
	t->ncols = n;
	t->cols = cols;
	t->widths = calloc(n ? n : 1, sizeof(*t->widths));
	if (!t->widths)
		goto out;
	for (size_t i = 0; i < n; i++)
		t->widths[i] = table_text_width(cols[i].header);
	*ret = t;
	t = NULL;
	r = 0;
out:
	table_destroy(t);
	return r;
}

static void drop_rows(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i].text);
	t->nrows = 0;
}

void table_destroy(struct table *t)
{
	if (!t)
		return;
	if (t->cells)
		drop_rows(t);
	free(t->cells);
	free(t->widths);
	free(t);
}

static int grow(struct table *t)
{
	if (t->nrows < t->cap)
		return 0;
	size_t cap = t->cap ? t->cap * 2 : 64;
	if (cap > SIZE_MAX / sizeof(struct cell) / (t->ncols ? t->ncols : 1))
		return -ENOMEM;
	struct cell *c = realloc(t->cells, cap * t->ncols * sizeof(*c));
	if (!c)
		return -ENOMEM;
	t->cells = c;
	t->cap = cap;
	return 0;
}

int table_add_row(struct table *t, const char *const *cells, const char *const *sgr)
{
	int r = grow(t);
	if (r < 0)
		return r;
	struct cell *row = t->cells + t->nrows * t->ncols;
	for (size_t i = 0; i < t->ncols; i++) {
		row[i].text = cell_text(cells[i]);
		if (!row[i].text) {
			while (i-- > 0)
				free(row[i].text);
			return -ENOMEM;
		}
		row[i].width = table_text_width(row[i].text);
		row[i].sgr = sgr ? sgr[i] : NULL;
	}
	t->nrows++;
	return 0;
}

static void pad(FILE *out, size_t n)
{
	while (n-- > 0)
		fputc(' ', out);
}

static void print_cell(const struct table *t, size_t i, const char *text, size_t width,
                       const char *sgr, FILE *out)
{
	size_t fill = t->widths[i] - width;
	if (i > 0)
		fputs("  ", out);
	if (t->cols[i].align == TABLE_RIGHT)
		pad(out, fill);
	if (sgr)
		fprintf(out, "%s%s\033[0m", sgr, text);
	else
		fputs(text, out);
	if (t->cols[i].align == TABLE_LEFT && i + 1 < t->ncols)
		pad(out, fill);
}

static void print_header(const struct table *t, FILE *out)
{
	for (size_t i = 0; i < t->ncols; i++) {
		const char *h = t->cols[i].header;
		print_cell(t, i, h, table_text_width(h), NULL, out);
	}
	fputc('\n', out);
}

static void print_row(const struct table *t, const struct cell *row, FILE *out)
{
	for (size_t i = 0; i < t->ncols; i++)
		print_cell(t, i, row[i].text, row[i].width, row[i].sgr, out);
	fputc('\n', out);
}

void table_hide_header(struct table *t)
{
	t->header_done = true;
}

int table_flush(struct table *t, FILE *out)
{
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++) {
			size_t w = t->cells[r * t->ncols + i].width;
			if (w > t->widths[i])
				t->widths[i] = w;
		}
	if (!t->header_done) {
		print_header(t, out);
		t->header_done = true;
	}
	for (size_t r = 0; r < t->nrows; r++)
		print_row(t, t->cells + r * t->ncols, out);
	drop_rows(t);
	return ferror(out) ? -EIO : 0;
}
