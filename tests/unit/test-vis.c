/* SPDX-License-Identifier: MIT */
/* vis: what reaches a terminal or a log is shown escaped, table-driven. */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "vis.h"

static const struct {
	const char *in;
	size_t len; /* 0: strlen(in) */
	unsigned flags;
	const char *want;
} cases[] = {
	{"plain ascii", 0, 0, "plain ascii"},
	{"", 0, 0, ""},
	{"日本語 émoji 😀", 0, 0, "日本語 émoji 😀"},
	{"a\nb\tc", 0, 0, "a\\nb\\tc"},
	{"a\nb\tc", 0, VIS_LAYOUT, "a\nb\tc"},
	{"line\rforged", 0, VIS_LAYOUT, "line\\rforged"},
	{"\x1b[2J\x1b]0;title\x07", 0, VIS_LAYOUT, "\\e[2J\\e]0;title\\x07"},
	{"del\x7f", 0, 0, "del\\x7f"},
	{"nul\0after", 9, 0, "nul\\0after"},
	/* C1 controls, UTF-8 encoded: CSI U+009B, NEL U+0085 */
	{"csi\xc2\x9b" "2J nel\xc2\x85", 0, 0, "csi\\u009b2J nel\\u0085"},
	/* U+00A0 (no-break space) is printable: passes */
	{"nb\xc2\xa0sp", 0, 0, "nb\xc2\xa0sp"},
	/* bidi overrides and isolates: RLO U+202E, LRE U+202A, FSI U+2068, PDI U+2069 */
	{"evil\xe2\x80\xaetxt.exe", 0, 0, "evil\\u202etxt.exe"},
	{"\xe2\x80\xaa\xe2\x81\xa8\xe2\x81\xa9", 0, 0, "\\u202a\\u2068\\u2069"},
	/* U+2029 and U+200B are not in the list: pass */
	{"zw\xe2\x80\x8bsp", 0, 0, "zw\xe2\x80\x8bsp"},
	/* invalid UTF-8: a lone C1 byte, a truncated sequence, overlong, surrogate */
	{"raw\x9b" "x", 0, 0, "raw\\x9bx"},
	{"cut\xe6\x97", 0, 0, "cut\\xe6\\x97"},
	{"over\xc0\xaf", 0, 0, "over\\xc0\\xaf"},
	{"sur\xed\xa0\x80", 0, 0, "sur\\xed\\xa0\\x80"},
	{"big\xf4\x90\x80\x80", 0, 0, "big\\xf4\\x90\\x80\\x80"},
	{"back\\slash", 0, 0, "back\\slash"},
	{"back\\slash", 0, VIS_BACKSLASH, "back\\\\slash"},
};

int main(void)
{
	tap_plan_none();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
		struct buf b = BUF_INIT;
		int r = vis_append(&b, cases[i].in, len, cases[i].flags);
		ok(r == 0 && b.data && strcmp(b.data, cases[i].want) == 0, "case %zu: '%s'", i,
		   cases[i].want);
		if (b.data && strcmp(b.data, cases[i].want) != 0)
			tap_diag("got '%s'", b.data);
		bool clean = strcmp(cases[i].in, cases[i].want) == 0 && len == strlen(cases[i].in);
		ok(vis_is_clean(cases[i].in, len, cases[i].flags) == clean,
		   "case %zu: clean is %d", i, (int)clean);
		buf_finish(&b);
	}

	/* nothing that vis_append emits is itself a control byte or C1/bidi */
	char all[256 * 4];
	size_t n = 0;
	for (unsigned c = 0; c < 256; c++)
		all[n++] = (char)c;
	struct buf b = BUF_INIT;
	ok(vis_append(&b, all, n, 0) == 0, "every byte value escapes");
	int bad = 0;
	for (size_t i = 0; i < b.len; i++) {
		unsigned char c = (unsigned char)b.data[i];
		if (c < 0x20 || c == 0x7f || c >= 0x80)
			bad++;
	}
	ok(bad == 0, "the escaped form of every byte is printable ASCII (%d bad)", bad);
	buf_finish(&b);

	char *d = vis_strdup("job\r\nname", VIS_LAYOUT);
	is_str(d, "job\\r\nname", "vis_strdup keeps layout newlines and escapes CR");
	free(d);
	ok(vis_strdup(NULL, 0) == NULL, "vis_strdup(NULL) is NULL");
	ok(vis_has_control("tab\there"), "a TAB is a control character in a name");
	ok(vis_has_control("bad\xff"), "invalid UTF-8 counts as a control character");
	ok(!vis_has_control("Müller Ltd. 😀"), "a plain name has none");
	ok(!vis_has_control(NULL), "NULL has none");
	return tap_done();
}
