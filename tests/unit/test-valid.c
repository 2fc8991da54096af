/* SPDX-License-Identifier: MIT */
/*
 * test-valid: the value rules of common/valid.c that are not the reader's:
 * GUIDs, a groups cell, the UTF-8 span. (The email, URL, language and
 * boolean rules moved here from csv.c; their tables stay in test-csv.c.)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "tap.h"
#include "valid.h"

#define G1 "0f8fad5b-d9cb-469f-a165-70867728950e"
#define G1U "0F8FAD5B-D9CB-469F-A165-70867728950E"
#define G2 "7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define G3 "00000000-0000-0000-0000-000000000000"

static void test_guid(void)
{
	static const struct {
		const char *s;
		bool valid;
	} t[] = {
	    {G1, true},
	    {G1U, true},
	    {"0f8FAD5b-D9cb-469F-a165-70867728950E", true}, /* mixed case */
	    {G3, true},
	    {"ffffffff-ffff-ffff-ffff-ffffffffffff", true},
	    {"", false},
	    {"0f8fad5b-d9cb-469f-a165-70867728950", false},   /* 35 */
	    {"0f8fad5b-d9cb-469f-a165-70867728950e0", false}, /* 37 */
	    {"0f8fad5bd-9cb-469f-a165-70867728950e", false},  /* hyphen at 9 */
	    {"0f8fad5b-d9cb4-69f-a165-70867728950e", false},  /* hyphen at 14 */
	    {"0f8fad5b-d9cb-469fa-165-70867728950e", false},  /* hyphen at 19 */
	    {"0f8fad5b-d9cb-469f-a16570867728950e-", false},  /* hyphen at 35 */
	    {"0f8fad5b0d9cb0469f0a165070867728950e", false},  /* no hyphens, 36 */
	    {"0f8fad5bd9cb469fa16570867728950e", false},      /* 32 hex, no hyphens */
	    {"0f8fad5b-d9cb-469f-a165-70867728950g", false},  /* 'g' */
	    {"0f8fad5b-d9cb-469f-a165-7086772895 e", false},  /* space */
	    {"0f8fad5b-d9cb-469f-a165-7086772895\xc3\xa9", false},
	    {"{0f8fad5b-d9cb-469f-a165-70867728950e}", false},
	    {"urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e", false},
	    {"------------------------------------", false},
	    {"0x8fad5b-d9cb-469f-a165-70867728950e", false},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		ok(valid_guid(t[i].s, strlen(t[i].s)) == t[i].valid, "guid '%s' %s", t[i].s,
		   t[i].valid ? "valid" : "invalid");
	ok(!valid_guid(NULL, 36), "guid NULL invalid");
	/* len is what counts, not the NUL */
	ok(valid_guid(G1 "trailing", VALID_GUID_LEN), "guid: the first 36 bytes of a longer text");
	ok(!valid_guid(G1, VALID_GUID_LEN - 1), "guid: 35 of its bytes invalid");
	ok(!valid_guid(G1 "\0", VALID_GUID_LEN + 1), "guid: a NUL inside the length invalid");
}

struct split {
	int rc;
	char ids[VALID_GROUPS_MAX][VALID_GUID_LEN + 1];
	char why[VALID_WHY_MAX];
};

static void split(struct split *sp, const char *cell, char sep)
{
	memset(sp, 0, sizeof(*sp));
	snprintf(sp->why, sizeof(sp->why), "untouched");
	sp->rc = valid_groups_split(cell, strlen(cell), sep, sp->ids, VALID_GROUPS_MAX, sp->why,
	                            sizeof(sp->why));
}

static void test_groups_split(void)
{
	static const struct {
		const char *name;
		const char *cell;
		char sep;
		int rc;
		const char *ids[3]; /* rc > 0: the ids, in order */
		const char *why;    /* rc < 0: the message */
	} t[] = {
	    {"one id", G1, ',', 1, {G1}, NULL},
	    {"spaces", G1 " " G2, ',', 2, {G1, G2}, NULL},
	    {"';'", G1 ";" G2, ',', 2, {G1, G2}, NULL},
	    {"mixed spaces, ';', TAB, CRLF",
	     " " G1 " ;\t" G2 "\r\n;" G3 "; ",
	     ',',
	     3,
	     {G1, G2, G3},
	     NULL},
	    {"lowercased", G1U, ',', 1, {G1}, NULL},
	    {"duplicates dropped, any case", G1 " " G1U ";" G2 " " G1, ',', 2, {G1, G2}, NULL},
	    {"empty pieces ignored", ";; ;" G2 ";;;", ',', 1, {G2}, NULL},
	    {"empty cell", "", ',', 0, {NULL}, NULL},
	    {"separators only", " ; ;\t", ',', 0, {NULL}, NULL},
	    {"';' file: spaces separate", G1 "  " G2, ';', 2, {G1, G2}, NULL},
	    {"';' file: a ';' is part of an id",
	     G1 ";" G2,
	     ';',
	     -EINVAL,
	     {NULL},
	     "not a group object id (GUID): '" G1 ";7c9e6679-7425-40de-944b...'"},
	    {"';' file: ';' only", ";", ';', -EINVAL, {NULL}, "not a group object id (GUID): ';'"},
	    {"',' is not a separator",
	     G1 "," G2,
	     ',',
	     -EINVAL,
	     {NULL},
	     "not a group object id (GUID): '" G1 ",7c9e6679-7425-40de-944b...'"},
	    {"not a GUID",
	     "Sales Team",
	     ',',
	     -EINVAL,
	     {NULL},
	     "not a group object id (GUID): 'Sales'"},
	    {"the first bad piece is reported",
	     G1 " " G2 "x "
	        "bad",
	     ',',
	     -EINVAL,
	     {NULL},
	     "not a group object id (GUID): '" G2 "x'"},
	    {"braces",
	     "{" G1 "}",
	     ',',
	     -EINVAL,
	     {NULL},
	     "not a group object id (GUID): '{" G1 "}'"},
	    {"ESC and bidi escaped",
	     "\x1b[2J\xe2\x80\xae"
	     "abc",
	     ',',
	     -EINVAL,
	     {NULL},
	     "not a group object id (GUID): '\\e[2J\\u202eabc'"},
	    {"C1 and invalid UTF-8 escaped",
	     "a\xc2\x9b"
	     "b\xff",
	     ',',
	     -EINVAL,
	     {NULL},
	     "not a group object id (GUID): 'a\\u009bb\\xff'"},
	    {"DEL and NUL-free controls escaped",
	     "a\x7f\x01",
	     ';',
	     -EINVAL,
	     {NULL},
	     "not a group object id (GUID): 'a\\x7f\\x01'"},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct split sp;
		split(&sp, t[i].cell, t[i].sep);
		is_int(sp.rc, t[i].rc, "groups split: %s: rc", t[i].name);
		for (int k = 0; k < t[i].rc && k < 3; k++)
			is_str(sp.ids[k], t[i].ids[k], "groups split: %s: id %d", t[i].name, k);
		if (t[i].rc >= 0)
			is_str(sp.why, "untouched", "groups split: %s: why untouched", t[i].name);
		else
			is_str(sp.why, t[i].why, "groups split: %s: why", t[i].name);
	}
}

/* 64 and 65 ids; the cap is the caller's max. */
static void test_groups_max(void)
{
	struct buf b = BUF_INIT;
	struct split sp;

	for (unsigned i = 0; i < VALID_GROUPS_MAX; i++)
		buf_printf(&b, "%s%08X-0000-4000-8000-%012x", i ? " " : "", i, i);
	split(&sp, b.data, ',');
	is_int(sp.rc, VALID_GROUPS_MAX, "64 ids: all of them");
	is_str(sp.ids[63], "0000003f-0000-4000-8000-00000000003f", "64 ids: the last, lowercased");
	buf_append_str(&b, " " G1U); /* a 65th that only differs from none */
	split(&sp, b.data, ',');
	is_int(sp.rc, -E2BIG, "65 ids: -E2BIG");
	is_str(sp.why, "more than 64 groups", "65 ids: why");

	buf_clear(&b);
	for (unsigned i = 0; i < VALID_GROUPS_MAX; i++)
		buf_printf(&b, "%08x-0000-4000-8000-%012x;", i, i);
	buf_append_str(&b, "00000000-0000-4000-8000-000000000000"); /* the first again */
	split(&sp, b.data, ',');
	is_int(sp.rc, VALID_GROUPS_MAX, "64 ids and a duplicate: 64");

	/* a smaller max */
	char ids[2][VALID_GUID_LEN + 1];
	char why[VALID_WHY_MAX];
	is_int(valid_groups_split(G1 " " G2 " " G1, strlen(G1 " " G2 " " G1), ',', ids, 2, why,
	                          sizeof(why)),
	       2, "max 2: two distinct and a duplicate fit");
	is_int(valid_groups_split(G1 " " G2 " " G3, strlen(G1 " " G2 " " G3), ',', ids, 2, why,
	                          sizeof(why)),
	       -E2BIG, "max 2: a third distinct is too many");
	is_str(why, "more than 2 groups", "max 2: why");
	is_int(valid_groups_split(G1, strlen(G1), ',', ids, 0, why, sizeof(why)), -E2BIG,
	       "max 0: any id is too many");
	buf_finish(&b);
}

/* A hostile cell cannot flood the message, whatever it holds. */
static void test_groups_why_bounded(void)
{
	static const char *const units[] = {"x", "\x1b", "\xe2\x80\xae", "\xff", "\xc2\x85", "\\"};
	char cell[4096];
	struct split sp;

	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		size_t n = 0, k = strlen(units[u]);
		while (n + k < sizeof(cell)) {
			memcpy(cell + n, units[u], k);
			n += k;
		}
		cell[n] = '\0';
		split(&sp, cell, ',');
		is_int(sp.rc, -EINVAL, "hostile cell %zu: -EINVAL", u);
		size_t len = strlen(sp.why);
		ok(len <= 100, "hostile cell %zu: message of %zu bytes, at most 100", u, len);
		ok(len >= 4 && strcmp(sp.why + len - 4, "...'") == 0,
		   "hostile cell %zu: cut with '...'", u);
		bool clean = true;
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)sp.why[i] < 0x20 || (unsigned char)sp.why[i] >= 0x7f)
				clean = false;
		ok(clean, "hostile cell %zu: the message is printable ASCII", u);
	}

	/* a why buffer too small is cut and terminated; NULL is accepted */
	char small[12];
	is_int(valid_groups_split("nope", 4, ',', sp.ids, VALID_GROUPS_MAX, small, sizeof(small)),
	       -EINVAL, "small why: -EINVAL");
	is_str(small, "not a group", "small why: cut to its size");
	is_int(valid_groups_split("nope", 4, ',', sp.ids, VALID_GROUPS_MAX, NULL, 0), -EINVAL,
	       "NULL why: -EINVAL");
	/* the length counts, not the NUL: a cell cut out of a record */
	is_int(valid_groups_split(G1 " garbage", VALID_GUID_LEN, ',', sp.ids, 1, NULL, 0), 1,
	       "len bounds the cell");
}

static void test_utf8_span(void)
{
	ok(valid_utf8_span("abc", 3) == 3, "utf8 span: ASCII");
	ok(valid_utf8_span("caf\xc3\xa9", 5) == 5, "utf8 span: é");
	ok(valid_utf8_span("ab\xff"
	                   "cd",
	                   5) == 2,
	   "utf8 span: stops at 0xff");
	ok(valid_utf8_span("abcdefgh\xc0\xaf", 10) == 8, "utf8 span: overlong after 8 ASCII");
	ok(valid_utf8_span("\xed\xa0\x80", 3) == 0, "utf8 span: surrogate");
	ok(valid_utf8_span("a\xe3\x81", 3) == 1, "utf8 span: truncated sequence");
	ok(valid_utf8_span("a\0b", 3) == 3, "utf8 span: NUL counts as valid");
}

int main(void)
{
	tap_plan_none();
	test_guid();
	test_groups_split();
	test_groups_max();
	test_groups_why_bounded();
	test_utf8_span();
	return tap_done();
}
