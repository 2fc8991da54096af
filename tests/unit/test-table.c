/* SPDX-License-Identifier: MIT */
/* table: columns aligned by display width (Japanese, emoji), --no-legend. */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"
#include "tap.h"

static const struct table_column cols[] = {
	{"NAME", TABLE_LEFT},
	{"N", TABLE_RIGHT},
	{"NOTE", TABLE_LEFT},
};

/* Print rows into a string; hide: --no-legend. */
static char *render(const char *const rows[][3], size_t n, int hide)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct table *t = NULL;
	table_create(&t, 3, cols);
	if (hide)
		table_hide_header(t);
	for (size_t i = 0; i < n; i++)
		table_add_row(t, rows[i], NULL);
	table_flush(t, f);
	table_destroy(t);
	fclose(f);
	return text;
}

/* The display column where the n-th occurrence of needle starts on line. */
static size_t column_of(const char *line, const char *needle)
{
	const char *p = strstr(line, needle);
	if (!p)
		return (size_t)-1;
	char *prefix = strndup(line, (size_t)(p - line));
	size_t w = table_text_width(prefix);
	free(prefix);
	return w;
}

int main(void)
{
	tap_plan_none();
	if (!setlocale(LC_CTYPE, "C.UTF-8")) {
		printf("1..0 # SKIP no C.UTF-8 locale\n");
		return 77;
	}
	is_int(table_text_width("abc"), 3, "ASCII: one column each");
	is_int(table_text_width("田中"), 4, "Japanese: two columns each");
	is_int(table_text_width("🎉"), 2, "emoji: two columns");
	is_int(table_text_width("e\xcc\x81"), 1, "a combining accent takes none");
	is_int(table_text_width("\xff"), 1, "an invalid byte counts one");

	static const char *const rows[][3] = {
		{"田中 太郎", "1", "x|"},
		{"🎉 Party", "22", "y|"},
		{"plain", "333", "z|"},
	};
	char *text = render(rows, 3, 0);
	char *save = NULL, *line;
	size_t n_col = (size_t)-1, note_col = (size_t)-1;
	int lines = 0, aligned = 1;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		lines++;
		if (lines == 1) {
			n_col = column_of(line, "N ") + 1; /* right-aligned: its end */
			note_col = column_of(line, "NOTE");
			continue;
		}
		const char *num = lines == 2 ? "1" : lines == 3 ? "22" : "333";
		const char *note = lines == 2 ? "x|" : lines == 3 ? "y|" : "z|";
		size_t end = column_of(line, num) + strlen(num);
		if (end != n_col || column_of(line, note) != note_col) {
			aligned = 0;
			tap_diag("misaligned: [%s]", line);
		}
	}
	is_int(lines, 4, "a header and three rows");
	ok(aligned, "numbers end under N and notes start under NOTE, whatever the names' widths");
	free(text);

	text = render(rows, 1, 1);
	ok(strstr(text, "NAME") == NULL && strstr(text, "田中") == text,
	   "table_hide_header: rows only");
	free(text);

	/* hostile cells: escaped by vis, one row one line, nothing raw */
	static const char *const hostile[][3] = {
		{"a\033[2J\033[31mb", "1", "c\xc2\x9b" "1m\xe2\x80\xae" "d\xe2\x81\xa6"},
		{"tab\there", "2", "line\nbreak\rcr\x7f\x9b"},
	};
	text = render(hostile, 2, 1);
	is_str(text,
	       "a\\e[2J\\e[31mb  1  c\\u009b1m\\u202ed\\u2066\n"
	       "tab\\there      2  line\\nbreak\\rcr\\x7f\\x9b\n",
	       "control, C1, bidi and invalid bytes shown escaped, aligned");
	free(text);
	return tap_done();
}
