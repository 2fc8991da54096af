/* SPDX-License-Identifier: MIT */
/* mailmsg: the template, its rendering, the RFC 5322 message and what an
 * SMTP outcome means (issue 13). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "graph.h"
#include "http.h"
#include "mailmsg.h"
#include "tap.h"
#include "vis.h"

static struct mailmsg_template *parse(const char *text)
{
	struct mailmsg_template *t = NULL;
	char *why = NULL;
	int r = mailmsg_template_parse(text, strlen(text), &t, &why);
	if (r < 0)
		tap_diag("parse: %d %s", r, why ? why : "");
	free(why);
	return t;
}

static void render(const char *text, const struct mailmsg_values *v, char **subject, char **body)
{
	struct mailmsg_template *t = parse(text);
	*subject = *body = NULL;
	if (!t || mailmsg_render(t, v, subject, body) < 0)
		tap_diag("render failed");
	mailmsg_template_free(t);
}

static bool valid_utf8(const char *s)
{
	size_t len = strlen(s);
	for (size_t i = 0; i < len;) {
		size_t n = vis_utf8_next(s + i, len - i, NULL);
		if (!n)
			return false;
		i += n;
	}
	return true;
}

static void test_parse(void)
{
	static const struct {
		const char *text;
		size_t len; /* 0: strlen */
		const char *why; /* NULL: parses */
		const char *name;
	} cases[] = {
		{"Subject\nBody", 0, NULL, "subject and body"},
		{"Subject only", 0, NULL, "no body"},
		{"\xef\xbb\xbfSubject\r\nBody\r\n", 0, NULL, "a BOM and CRLF"},
		{"Caf\xc3\xa9 {tenant}\n\tTabbed\f", 0, NULL, "UTF-8, TAB, FF"},
		{"", 0, "the first line, the subject, is empty (line 1)", "empty"},
		{" \t\nBody", 0, "the first line, the subject, is empty (line 1)", "blank subject"},
		{"Subject\nline 2\nbad \xc3( here", 0, "the template is not valid UTF-8 (line 3)",
		 "invalid UTF-8, its line"},
		{"Subject\n\xed\xa0\x80", 0, "the template is not valid UTF-8 (line 2)", "a surrogate"},
		{"Subject\nA\0B", 10, "the template holds a NUL byte (line 2)", "a NUL"},
		{"Sub\rject\nBody", 0, "the subject holds a control character (line 1)",
		 "a CR inside the subject"},
		{"Sub\x1bject\nBody", 0, "the subject holds a control character (line 1)",
		 "ESC in the subject"},
		{"Subject\n\n\x1b[31mred", 0, "the template holds a control character (line 3)",
		 "ESC in the body"},
		{"Subject\nDEL \x7f", 0, "the template holds a control character (line 2)", "DEL"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mailmsg_template *t = NULL;
		char *why = NULL;
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		int r = mailmsg_template_parse(cases[i].text, len, &t, &why);
		if (cases[i].why) {
			is_int(r, -EINVAL, "parse %s: -EINVAL", cases[i].name);
			is_str(why, cases[i].why, "parse %s: why", cases[i].name);
			ok(!t, "parse %s: no template", cases[i].name);
		} else {
			is_int(r, 0, "parse %s", cases[i].name);
			ok(t && !why, "parse %s: a template", cases[i].name);
		}
		free(why);
		mailmsg_template_free(t);
	}
	/* the subject's cap: 998 bytes */
	struct buf b = BUF_INIT;
	for (int i = 0; i < 998; i++)
		buf_append(&b, "s", 1);
	buf_append_str(&b, "\r\nbody");
	struct mailmsg_template *t = NULL;
	char *why = NULL;
	is_int(mailmsg_template_parse(b.data, b.len, &t, &why), 0, "a 998-byte subject parses");
	mailmsg_template_free(t);
	t = NULL;
	buf_clear(&b);
	for (int i = 0; i < 999; i++)
		buf_append(&b, "s", 1);
	buf_append_str(&b, "\nbody");
	is_int(mailmsg_template_parse(b.data, b.len, &t, &why), -EINVAL, "999 bytes: -EINVAL");
	is_str(why, "the subject is over 998 bytes (line 1)", "999 bytes: why");
	free(why);
	why = NULL;
	buf_clear(&b);
	buf_append_str(&b, "Subject\n");
	while (b.len <= MAILMSG_TEMPLATE_MAX)
		buf_append_str(&b, "0123456789abcdef");
	is_int(mailmsg_template_parse(b.data, b.len, &t, &why), -EINVAL, "over 64 KiB: -EINVAL");
	is_str(why, "the template is over 64 KiB", "over 64 KiB: why");
	free(why);
	buf_finish(&b);
	mailmsg_template_free(NULL);
}

static void test_render(void)
{
	const struct mailmsg_values v = {
		.display_name = "Ann Lee",
		.email = "ann@partner.example",
		.redeem_url = "https://login.example/redeem?rd=1&x={tenant}",
		.message = "Hi {display_name}!\nLine two",
		.inviter = "IT {email}",
		.tenant = "Contoso",
	};
	char *s, *b;
	render("{inviter} invites {display_name} to {tenant}\n"
	       "Dear {display_name} <{email}>,\n{message}\nGo: {redeem_url}\n{unknown} {Tenant} "
	       "{display_name {{email}} {}\n",
	       &v, &s, &b);
	is_str(s, "IT {email} invites Ann Lee to Contoso",
	       "subject: values in, a value's own {email} not replaced");
	is_str(b,
	       "Dear Ann Lee <ann@partner.example>,\r\nHi {display_name}!\r\nLine two\r\n"
	       "Go: https://login.example/redeem?rd=1&x={tenant}\r\n{unknown} {Tenant} "
	       "{display_name {ann@partner.example} {}\r\n",
	       "body: one pass (values not scanned again), unknown placeholders kept, CRLF");
	free(s);
	free(b);

	/* NULL values are "" */
	const struct mailmsg_values none = {0};
	render("[{display_name}]\n[{email}{redeem_url}{message}{inviter}{tenant}]", &none, &s, &b);
	is_str(s, "[]", "NULL values: empty (subject)");
	is_str(b, "[]", "NULL values: empty (body)");
	free(s);
	free(b);

	/* line ends: the template's and the values' all become CRLF, once */
	const struct mailmsg_values ends = {.message = "a\rb\nc\r\nd\n\re\r", .tenant = "\n"};
	render("S\r\nx\ry\n{message}\nz{tenant}\r\n\r\n", &ends, &s, &b);
	is_str(b, "x\r\ny\r\na\r\nb\r\nc\r\nd\r\n\r\ne\r\nz\r\n\r\n\r\n",
	       "CR, LF and CRLF from template and values: each one CRLF");
	free(s);
	free(b);

	/* controls and invalid UTF-8 in values */
	const struct mailmsg_values bad = {
		.display_name = "Ann\r\nBcc: x@evil.example",
		.message = "tab\there\x1b[31m bell\a del\x7f bad\xff end",
		.tenant = "T\xc3(",
	};
	render("Hi {display_name} from {tenant} {message}\n{display_name}|{message}|{tenant}", &bad,
	       &s, &b);
	is_str(s,
	       "Hi Ann  Bcc: x@evil.example from T\xef\xbf\xbd( tab\there [31m bell  del  bad\xef\xbf\xbd end",
	       "subject: CR LF, ESC, BEL, DEL as spaces, invalid UTF-8 as U+FFFD");
	free(s);
	free(b);
	/* TAB is kept in the subject: it is white space, not a line end */
	render("A{message}B\nx", &(struct mailmsg_values){.message = "1\t2\n3\r4\x01"}, &s, &b);
	is_str(s, "A1\t2 3 4 B", "subject: LF, CR and other C0 become spaces, TAB stays");
	ok(!strchr(s, '\r') && !strchr(s, '\n'), "the subject is one line");
	free(s);
	free(b);
	render("S\n{display_name}|{message}|{tenant}", &bad, &s, &b);
	is_str(b,
	       "Ann\r\nBcc: x@evil.example|tab\there [31m bell  del  bad\xef\xbf\xbd end|T\xef\xbf\xbd(",
	       "body: values as text (line ends kept as CRLF, other controls spaces, U+FFFD)");
	free(s);
	free(b);

	/* the subject is cut to 998 bytes at a character boundary */
	struct buf long_value = BUF_INIT;
	for (int i = 0; i < 700; i++)
		buf_append_str(&long_value, "\xc3\xa9"); /* é */
	render("x{message}\nbody", &(struct mailmsg_values){.message = long_value.data}, &s, &b);
	ok(s && strlen(s) <= MAILMSG_SUBJECT_MAX && strlen(s) >= MAILMSG_SUBJECT_MAX - 1 &&
		   valid_utf8(s),
	   "a long subject is cut to 998 bytes, whole characters (%zu)", s ? strlen(s) : 0);
	free(s);
	free(b);
	buf_finish(&long_value);

	/* the body's cap */
	struct buf big = BUF_INIT;
	buf_reserve(&big, 600 * 1024);
	while (big.len < 600 * 1024)
		buf_append_str(&big, "0123456789abcdef");
	struct mailmsg_template *t = parse("S\n{message}{message}");
	s = b = NULL;
	is_int(mailmsg_render(t, &(struct mailmsg_values){.message = big.data}, &s, &b), -EMSGSIZE,
	       "a body over 1 MiB: -EMSGSIZE");
	ok(!s && !b, "nothing returned");
	mailmsg_template_free(t);
	buf_finish(&big);
}

/* ---- reading a message back ---- */

static int b64val(char c)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(a, c) : NULL;
	return p ? (int)(p - a) : -1;
}

/* base64 text (CRLF allowed between groups) decoded into out; false when not base64 */
static bool b64_decode(const char *s, size_t len, struct buf *out)
{
	unsigned acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r' || s[i] == '\n')
			continue;
		if (s[i] == '=')
			break;
		int v = b64val(s[i]);
		if (v < 0)
			return false;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			char c = (char)((acc >> bits) & 0xff);
			buf_append(out, &c, 1);
		}
	}
	return true;
}

/* A header value's encoded words (=?UTF-8?B?...?= separated by folding
 * white space) decoded; the text before the first word is copied. Each
 * word on its own must be valid UTF-8 (whole characters) and at most 75
 * characters; false otherwise. */
static bool words_decode(const char *v, struct buf *out, int *ret_words)
{
	int words = 0;
	while (*v) {
		const char *w = strstr(v, "=?UTF-8?B?");
		if (!w) {
			buf_append_str(out, v);
			break;
		}
		for (const char *p = v; p < w; p++)
			if (*p != ' ' && *p != '\r' && *p != '\n' && words > 0)
				return false; /* only folding white space between words */
		if (words == 0)
			buf_append(out, v, (size_t)(w - v));
		const char *end = strstr(w + 10, "?=");
		if (!end || end - w + 2 > 75)
			return false;
		struct buf one = BUF_INIT;
		bool okw = b64_decode(w + 10, (size_t)(end - w - 10), &one) &&
			   valid_utf8(one.data ? one.data : "");
		if (okw && one.len)
			buf_append(out, one.data, one.len);
		buf_finish(&one);
		if (!okw)
			return false;
		words++;
		v = end + 2;
		if (*v && *v != '\r' && *v != ' ') {
			buf_append_str(out, v); /* what follows the last word */
			break;
		}
	}
	*ret_words = words;
	return true;
}

struct parsed {
	int n;
	char name[16][40];
	struct buf value[16]; /* unfolded: continuation lines kept with their CRLF */
	struct buf body;
	bool crlf_only, short_lines;
};

static void parsed_clear(struct parsed *p)
{
	for (int i = 0; i < 16; i++)
		buf_finish(&p->value[i]);
	buf_finish(&p->body);
	memset(p, 0, sizeof(*p));
}

static bool message_parse(const char *m, size_t len, struct parsed *p)
{
	memset(p, 0, sizeof(*p));
	p->crlf_only = p->short_lines = true;
	for (size_t i = 0; i < len; i++)
		if ((m[i] == '\n' && (i == 0 || m[i - 1] != '\r')) ||
		    (m[i] == '\r' && (i + 1 >= len || m[i + 1] != '\n')))
			p->crlf_only = false;
	const char *end = strstr(m, "\r\n\r\n");
	if (!end)
		return false;
	const char *line = m;
	while (line < end + 2) {
		const char *nl = strstr(line, "\r\n");
		size_t n = (size_t)(nl - line);
		if (n > 78)
			p->short_lines = false;
		if (line[0] == ' ' || line[0] == '\t') {
			if (p->n == 0)
				return false;
			buf_append(&p->value[p->n - 1], "\r\n", 2);
			buf_append(&p->value[p->n - 1], line, n);
		} else {
			const char *colon = memchr(line, ':', n);
			if (!colon || p->n == 16 || colon - line >= 40 || colon[1] != ' ')
				return false;
			memcpy(p->name[p->n], line, (size_t)(colon - line));
			p->name[p->n][colon - line] = '\0';
			buf_append(&p->value[p->n], colon + 2, n - (size_t)(colon - line) - 2);
			buf_append(&p->value[p->n], "", 0);
			p->n++;
		}
		line = nl + 2;
	}
	const char *body = end + 4;
	for (const char *l = body; *l;) {
		const char *nl = strstr(l, "\r\n");
		size_t n = nl ? (size_t)(nl - l) : strlen(l);
		if (n > 76)
			p->short_lines = false;
		l += n + (nl ? 2 : 0);
	}
	if (!b64_decode(body, strlen(body), &p->body))
		return false;
	buf_append(&p->body, "", 0);
	return true;
}

static const char *header(struct parsed *p, const char *name)
{
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->name[i], name) == 0)
			return p->value[i].data ? p->value[i].data : "";
	return NULL;
}

static const char *const want_names[] = {"Date", "From", "To", "Subject", "Message-ID",
					 "MIME-Version", "Content-Type", "Content-Transfer-Encoding"};

static bool names_exact(struct parsed *p)
{
	if (p->n != 8)
		return false;
	for (int i = 0; i < 8; i++)
		if (strcmp(p->name[i], want_names[i]) != 0)
			return false;
	return true;
}

static void test_message(void)
{
	char *m;
	size_t len;
	struct parsed p;
	struct buf dec = BUF_INIT;
	int words;
	/* 2026-12-01T10:00:00Z, a Tuesday */
	is_int(mailmsg_smtp_message("invitations@contoso.example", "ann@partner.example", "Ann Lee",
				    "Hello", "Line 1\nLine 2\n", 1796119200000u, &m, &len),
	       0, "a message");
	is_int(len, strlen(m), "its length");
	ok(message_parse(m, len, &p), "it reads back");
	ok(names_exact(&p), "the headers, in order: Date From To Subject Message-ID MIME-Version "
			    "Content-Type Content-Transfer-Encoding");
	ok(p.crlf_only, "CRLF line ends only");
	ok(p.short_lines, "header lines at most 78, base64 lines at most 76");
	is_str(header(&p, "Date"), "Tue, 01 Dec 2026 10:00:00 +0000", "Date (RFC 5322, UTC)");
	is_str(header(&p, "From"), "invitations@contoso.example", "From: the sender");
	is_str(header(&p, "To"), "\"Ann Lee\" <ann@partner.example>", "To: a quoted ASCII name");
	ok(words_decode(header(&p, "Subject"), &dec, &words) && words == 1, "Subject: one word");
	is_str(dec.data, "Hello", "Subject: B-encoded UTF-8 decodes back");
	buf_clear(&dec);
	const char *id = header(&p, "Message-ID");
	ok(id && strlen(id) == 1 + 36 + strlen("@contoso.example>") && id[0] == '<' &&
		   strcmp(id + 37, "@contoso.example>") == 0,
	   "Message-ID: <GUID@the sender's domain> (%s)", id ? id : "");
	is_str(header(&p, "MIME-Version"), "1.0", "MIME-Version");
	is_str(header(&p, "Content-Type"), "text/plain; charset=UTF-8", "Content-Type");
	is_str(header(&p, "Content-Transfer-Encoding"), "base64", "Content-Transfer-Encoding");
	is_str(p.body.data, "Line 1\r\nLine 2\r\n", "the body decodes back, CRLF");
	ok(len > 2 && strcmp(m + len - 2, "\r\n") == 0, "the message ends with CRLF");
	parsed_clear(&p);
	free(m);

	/* a name needing escapes; no name; a blank name */
	mailmsg_smtp_message("a@contoso.example", "b@partner.example", "Ann \"A\" \\ Lee", "s", "",
			     0, &m, &len);
	message_parse(m, len, &p);
	is_str(header(&p, "To"), "\"Ann \\\"A\\\" \\\\ Lee\" <b@partner.example>",
	       "To: '\"' and '\\' escaped in the quoted name");
	is_str(header(&p, "Date"), "Thu, 01 Jan 1970 00:00:00 +0000", "Date at 0");
	is_str(p.body.data, "", "an empty body");
	parsed_clear(&p);
	free(m);
	mailmsg_smtp_message("a@contoso.example", "b@partner.example", NULL, "s", NULL, 0, &m, &len);
	message_parse(m, len, &p);
	is_str(header(&p, "To"), "b@partner.example", "To: no name, the address alone");
	parsed_clear(&p);
	free(m);
	mailmsg_smtp_message("a@contoso.example", "b@partner.example", " \r\n ", "s", "b", 0, &m,
			     &len);
	message_parse(m, len, &p);
	is_str(header(&p, "To"), "b@partner.example", "To: a blank name, the address alone");
	parsed_clear(&p);
	free(m);

	/* UTF-8 names: encoded words */
	const char *name = "Zo\xc3\xab \xc3\x85ngstr\xc3\xb6m \xe5\xb1\xb1\xe7\x94\xb0 \xf0\x9f\x98\x80";
	mailmsg_smtp_message("a@contoso.example", "zoe@partner.example", name, "s", "b", 0, &m, &len);
	ok(message_parse(m, len, &p) && names_exact(&p) && p.short_lines, "UTF-8 name: headers fine");
	const char *to = header(&p, "To");
	ok(to && strncmp(to, "=?UTF-8?B?", 10) == 0 && strstr(to, "\r\n <zoe@partner.example>"),
	   "To: encoded words, then the address on a folded line");
	struct buf only = BUF_INIT;
	if (to && strstr(to, "\r\n <"))
		buf_append(&only, to, (size_t)(strstr(to, "\r\n <") - to));
	buf_append(&only, "", 0);
	ok(words_decode(only.data, &dec, &words), "the name's words decode");
	is_str(dec.data, name, "the display name decodes back exactly");
	buf_clear(&dec);
	buf_finish(&only);
	parsed_clear(&p);
	free(m);

	/* a long ASCII name is encoded too (folded), not one long quoted line */
	struct buf longname = BUF_INIT;
	for (int i = 0; i < 20; i++)
		buf_append_str(&longname, "Name Part ");
	mailmsg_smtp_message("a@contoso.example", "x@partner.example", longname.data, "s", "b", 0,
			     &m, &len);
	message_parse(m, len, &p);
	ok(p.short_lines && names_exact(&p), "a 200-byte ASCII name: folded, lines short");
	buf_finish(&longname);
	parsed_clear(&p);
	free(m);

	/* a long UTF-8 subject: folded words of whole characters */
	struct buf subj = BUF_INIT;
	for (int i = 0; i < 60; i++)
		buf_append_str(&subj, "Einladung f\xc3\xbcr G\xc3\xa4ste \xe2\x82\xac ");
	mailmsg_smtp_message("a@contoso.example", "x@partner.example", NULL, subj.data, "b", 0, &m,
			     &len);
	ok(message_parse(m, len, &p) && names_exact(&p), "long subject: the headers");
	ok(p.short_lines, "long subject: every line at most 78");
	const char *sv = header(&p, "Subject");
	ok(words_decode(sv, &dec, &words) && words > 20,
	   "long subject: %d words, each at most 75 characters and whole characters", words);
	/* the subject's blanks at either end are dropped in the header */
	is_int(dec.len, subj.len - 1, "long subject: decodes back (the trailing space dropped)");
	ok(dec.data && strncmp(dec.data, subj.data, subj.len - 1) == 0, "long subject: same text");
	buf_clear(&dec);
	buf_finish(&subj);
	parsed_clear(&p);
	free(m);

	/* injection: no header and no recipient from a name or a subject */
	static const char *const evil[] = {
		"Ann\r\nBcc: x@evil.example",
		"Ann\nBcc: x@evil.example",
		"Ann\rBcc: x@evil.example",
		"\r\n\r\nbody",
		"Ann <x@evil.example>, Bob",
		"Caf\xc3\xa9\r\nBcc: x@evil.example",
		"\"\r\nBcc: x@evil.example\r\n\"",
		"Ann\205Bcc: x@evil.example", /* a C1 NEL (0x85) as a byte: not UTF-8 */
	};
	for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
		int r = mailmsg_smtp_message("a@contoso.example", "ann@partner.example", evil[i],
					     evil[i], "body", 0, &m, &len);
		is_int(r, 0, "injection %zu: composed", i);
		bool parsed = message_parse(m, len, &p);
		ok(parsed && names_exact(&p) && p.crlf_only,
		   "injection %zu: exactly the 8 headers, CRLF only", i);
		const char *tov = header(&p, "To");
		ok(tov && !strstr(tov, "\r\nBcc") && !strstr(m, "\nBcc:") &&
			   strstr(tov, "<ann@partner.example>"),
		   "injection %zu: To holds the guest's address, no Bcc line", i);
		/* the one address in To is the guest's: any '<' in the name is quoted or encoded */
		const char *lt = tov ? strchr(tov, '<') : NULL;
		bool one = lt && strcmp(lt, "<ann@partner.example>") == 0;
		if (lt && !one && tov[0] == '"') {
			/* a quoted name: the last '<' starts the address */
			one = strcmp(strrchr(tov, '<'), "<ann@partner.example>") == 0;
		}
		char *shown = vis_strdup(tov ? tov : "", 0);
		ok(one, "injection %zu: one address (%s)", i, shown ? shown : "");
		free(shown);
		bool ascii = true;
		for (const char *c = m; *c; c++)
			ascii = ascii && (unsigned char)*c < 0x80;
		ok(ascii, "injection %zu: the whole message is ASCII", i);
		is_str(p.body.data, "body", "injection %zu: the body intact", i);
		parsed_clear(&p);
		free(m);
	}
	/* addresses that are not plain are refused */
	static const char *const bad_addr[] = {
		"ann@partner.example\r\nBcc: x@evil.example",
		"ann@partner.example>\r\nRCPT TO:<x@evil.example",
		"ann@partner.example, x@evil.example",
		"Ann <ann@partner.example>",
		"ann partner@example",
		"\"ann\"@partner.example",
		"ann",
		"@partner.example",
		"ann@",
		"",
		"ann@partner.example;x@evil.example",
		"ann@[127.0.0.1]",
	};
	for (size_t i = 0; i < sizeof(bad_addr) / sizeof(bad_addr[0]); i++) {
		m = NULL;
		is_int(mailmsg_smtp_message("a@contoso.example", bad_addr[i], "n", "s", "b", 0, &m,
					    &len),
		       -EINVAL, "to_email %zu: -EINVAL", i);
		is_int(mailmsg_smtp_message(bad_addr[i], "b@partner.example", "n", "s", "b", 0, &m,
					    &len),
		       -EINVAL, "sender %zu: -EINVAL", i);
		ok(!m, "nothing returned");
	}
	is_int(mailmsg_smtp_message(NULL, "b@partner.example", "n", "s", "b", 0, &m, &len), -EINVAL,
	       "sender NULL: -EINVAL");

	/* the body: CRLF, valid UTF-8, base64 in 76-character lines, decodes back */
	struct buf body = BUF_INIT, want = BUF_INIT;
	for (int i = 0; i < 200; i++) {
		buf_printf(&body, "line %d: gr\xc3\xbc\xc3\x9f\x65 \xe2\x9c\x93\n", i);
		buf_printf(&want, "line %d: gr\xc3\xbc\xc3\x9f\x65 \xe2\x9c\x93\r\n", i);
	}
	buf_append_str(&body, "lone\rcr bad\xff.\r\n.\r\n");
	buf_append_str(&want, "lone\r\ncr bad\xef\xbf\xbd.\r\n.\r\n");
	mailmsg_smtp_message("a@contoso.example", "b@partner.example", "n", "s", body.data, 0, &m,
			     &len);
	ok(message_parse(m, len, &p) && p.short_lines && p.crlf_only, "a long body: lines short, CRLF");
	is_str(p.body.data, want.data, "the body decodes back: CRLF, U+FFFD, the dot line as text");
	ok(!strstr(m, "\r\n.\r\n"), "no line of the message is a lone dot");
	buf_finish(&body);
	buf_finish(&want);
	parsed_clear(&p);
	free(m);
	buf_finish(&dec);
}

static const char *outcome_name(enum graph_dir_outcome o)
{
	static const char *const names[] = {"OK", "NOT_FOUND", "DENIED", "FAILED",
					    "TRANSIENT", "THROTTLED", "AUTH"};
	return (unsigned)o < sizeof(names) / sizeof(names[0]) ? names[o] : "?";
}

static void test_classify(void)
{
	static const struct {
		long status;
		int error;
		const char *reply;
		const char *error_text;
		enum graph_dir_outcome want;
		const char *code, *message;
	} cases[] = {
		{250, 0, "250 OK: queued", NULL, GRAPH_DIR_OK, NULL, NULL},
		{235, 0, "235 2.7.0 Authentication successful", NULL, GRAPH_DIR_OK, NULL, NULL},
		{250, 0, "", NULL, GRAPH_DIR_OK, NULL, NULL},
		{451, -EPROTO, "451 4.2.0 Mailbox busy", "weird", GRAPH_DIR_TRANSIENT, "4.2.0",
		 "451 4.2.0 Mailbox busy"},
		{421, -EPROTO, "421 Service not available", NULL, GRAPH_DIR_TRANSIENT, "SMTP421",
		 "421 Service not available"},
		{452, -EPROTO, "452 4.5.3 Too many recipients", NULL, GRAPH_DIR_TRANSIENT, "4.5.3", NULL},
		{450, -EPROTO, "", "RCPT failed: 450", GRAPH_DIR_TRANSIENT, "SMTP450",
		 "RCPT failed: 450"},
		{550, -EPROTO, "550 5.1.1 Mailbox unavailable", NULL, GRAPH_DIR_FAILED, "5.1.1",
		 "550 5.1.1 Mailbox unavailable"},
		{550, -EPROTO,
		 "550 5.7.236 Access denied, we don't accept mail from onmicrosoft.com",
		 NULL, GRAPH_DIR_FAILED, "5.7.236",
		 "550 5.7.236 Access denied, we don't accept mail from onmicrosoft.com"},
		{554, -EPROTO, "554-5.7.1 first line\n554 5.7.1 second line", NULL, GRAPH_DIR_FAILED,
		 "5.7.1", "554-5.7.1 first line 554 5.7.1 second line"},
		{550, -EPROTO, "550 4.1.1 wrong class", NULL, GRAPH_DIR_FAILED, "SMTP550", NULL},
		{550, -EPROTO, "550 5.1.1234 too long a detail", NULL, GRAPH_DIR_FAILED, "SMTP550", NULL},
		{550, -EPROTO, "550 5.1.1x", NULL, GRAPH_DIR_FAILED, "SMTP550", NULL},
		{550, -EPROTO, "550 mailbox \xff\x1b[31m", NULL, GRAPH_DIR_FAILED, "SMTP550",
		 "550 mailbox \xef\xbf\xbd [31m"},
		{535, -EACCES, "535 5.7.8 Authentication credentials invalid", NULL, GRAPH_DIR_DENIED,
		 "5.7.8", "535 5.7.8 Authentication credentials invalid"},
		{534, -EACCES, "534 5.7.9 Authentication mechanism is too weak", NULL,
		 GRAPH_DIR_DENIED, "5.7.9", NULL},
		{530, -EPROTO, "530 5.7.0 Authentication required", NULL, GRAPH_DIR_DENIED, "5.7.0",
		 NULL},
		{538, -EPROTO, "538 5.7.11 Encryption required", NULL, GRAPH_DIR_DENIED, "5.7.11",
		 NULL},
		{250, -EACCES, "250 AUTH CRAM-MD5", "no mechanism in common", GRAPH_DIR_DENIED,
		 "AuthenticationFailed", "no mechanism in common"},
		{0, -ETIMEDOUT, "", "timed out", GRAPH_DIR_TRANSIENT, "Timeout", "timed out"},
		{0, -ECONNREFUSED, "", "refused", GRAPH_DIR_TRANSIENT, "ConnectionRefused", "refused"},
		{0, -ECONNRESET, "", NULL, GRAPH_DIR_TRANSIENT, "ConnectionReset",
		 "the SMTP server's reply 0"},
		{0, -EHOSTUNREACH, "", "no host", GRAPH_DIR_TRANSIENT, "HostUnreachable", NULL},
		{250, -EPROTONOSUPPORT, "250 8BITMIME", "no STARTTLS", GRAPH_DIR_TRANSIENT,
		 "TLSRequired", "no STARTTLS"},
		{220, -EIO, "220 hi", "TLS with smtp://x failed", GRAPH_DIR_TRANSIENT, "TransportError",
		 "TLS with smtp://x failed"},
		{0, -ECANCELED, "", "cancelled", GRAPH_DIR_TRANSIENT, "Cancelled", NULL},
		{0, 0, "", NULL, GRAPH_DIR_TRANSIENT, "BadResponse", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_response resp = {
			.status = cases[i].status,
			.error = cases[i].error,
			.error_text = cases[i].error_text,
			.body = cases[i].reply,
			.body_len = strlen(cases[i].reply),
		};
		struct graph_dir_result g;
		is_int(mailmsg_smtp_classify(&resp, &g), 0, "classify %zu (%ld %d)", i,
		       cases[i].status, cases[i].error);
		is_str(outcome_name(g.outcome), outcome_name(cases[i].want), "classify %zu: outcome", i);
		is_int(g.http_status, cases[i].status, "classify %zu: the reply code", i);
		is_str(g.error_code, cases[i].code, "classify %zu: code", i);
		if (cases[i].message)
			is_str(g.error_message, cases[i].message, "classify %zu: message", i);
		ok((g.outcome == GRAPH_DIR_OK) == (g.error_message == NULL),
		   "classify %zu: a message exactly when not OK", i);
		ok(!g.error_message || (valid_utf8(g.error_message) && !strchr(g.error_message, '\n')),
		   "classify %zu: the message one valid UTF-8 line", i);
		graph_dir_result_clear(&g);
	}
}

int main(void)
{
	tap_plan_none();
	test_parse();
	test_render();
	test_message();
	test_classify();
	return tap_done();
}
