/* SPDX-License-Identifier: MIT */
/*
 * table: aligned columns for invitectl's human output.
 *
 * Rows are buffered until table_flush(), which prints the header (the first
 * time only) and the buffered rows, padded to the widest cell seen so far,
 * then forgets the rows. Callers that page through a large result flush once
 * per page, so memory stays bounded by a page; widths only grow, so a later
 * page with a wider cell is the only thing that can shift a column.
 *
 * Widths are display widths (wcwidth of each character in the current
 * LC_CTYPE); every cell goes through vis (common/vis.h, flags 0): control
 * characters, C1 and bidi controls and invalid UTF-8 are shown escaped, so
 * one row stays one line and no cell drives the terminal. Headers are ours.
 * The last column is never padded on the right.
 */
#pragma once

#include <stddef.h>
#include <stdio.h>

enum table_align {
	TABLE_LEFT,
	TABLE_RIGHT,
};

struct table_column {
	const char *header; /* borrowed; must outlive the table */
	enum table_align align;
};

struct table;

/* cols (borrowed, must outlive the table): n column descriptions.
 * *ret is owned by the caller (table_destroy). 0 or -ENOMEM. */
int table_create(struct table **ret, size_t n, const struct table_column *cols);
/* Accepts NULL. Unflushed rows are dropped. */
void table_destroy(struct table *t);
/* Add one row: cells[i] (borrowed, copied; NULL prints as "-"), and sgr
 * either NULL or, per cell, NULL or an SGR escape such as "\033[32m"
 * (borrowed, must outlive the table) that colours the cell's text.
 * 0 or -ENOMEM. */
int table_add_row(struct table *t, const char *const *cells, const char *const *sgr);
/* Print the header if not yet printed, then the buffered rows. 0, or -EIO
 * when out has its error flag set. */
int table_flush(struct table *t, FILE *out);
/* Never print the header (--no-legend). */
void table_hide_header(struct table *t);
/* Display width of s in the current locale (invalid bytes count one each). */
size_t table_text_width(const char *s);
