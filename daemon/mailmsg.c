/* SPDX-License-Identifier: MIT */
#include "mailmsg.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "graph.h"
#include "http.h"
#include "vis.h"

/* ---- the template ---- */

enum {
	PH_TEXT = -1,
	PH_DISPLAY_NAME,
	PH_EMAIL,
	PH_REDEEM_URL,
	PH_MESSAGE,
	PH_INVITER,
	PH_TENANT,
	PH_COUNT,
};

static const char *const ph_names[PH_COUNT] = {
	"{display_name}", "{email}", "{redeem_url}", "{message}", "{inviter}", "{tenant}",
};

struct seg {
	int ph;          /* PH_TEXT, or which value */
	size_t off, len; /* PH_TEXT: the text, in the template's copy */
};

struct part {
	struct seg *segs;
	size_t n, cap;
};

struct mailmsg_template {
	char *text; /* owned copy of the template */
	struct part subject, body;
};

void mailmsg_template_free(struct mailmsg_template *t)
{
	if (!t)
		return;
	free(t->subject.segs);
	free(t->body.segs);
	free(t->text);
	free(t);
}

static int part_add(struct part *p, int ph, size_t off, size_t len)
{
	if (ph == PH_TEXT && len == 0)
		return 0;
	if (ph == PH_TEXT && p->n > 0 && p->segs[p->n - 1].ph == PH_TEXT &&
	    p->segs[p->n - 1].off + p->segs[p->n - 1].len == off) {
		p->segs[p->n - 1].len += len; /* text that follows text */
		return 0;
	}
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 8;
		struct seg *s = realloc(p->segs, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		p->segs = s;
		p->cap = cap;
	}
	p->segs[p->n++] = (struct seg){ph, off, len};
	return 0;
}

/* text[from..to) into segments: placeholders and the text between. */
static int split(const char *text, size_t from, size_t to, struct part *p)
{
	size_t run = from;
	for (size_t i = from; i < to; i++) {
		if (text[i] != '{')
			continue;
		for (int ph = 0; ph < PH_COUNT; ph++) {
			size_t n = strlen(ph_names[ph]);
			if (n <= to - i && memcmp(text + i, ph_names[ph], n) == 0) {
				int r = part_add(p, PH_TEXT, run, i - run);
				r = r ? r : part_add(p, ph, 0, 0);
				if (r < 0)
					return r;
				i += n - 1;
				run = i + 1;
				break;
			}
		}
	}
	return part_add(p, PH_TEXT, run, to - run);
}

/* *ret_why: what, and at which line (0: none). */
static int why_set(char **ret_why, const char *what, size_t line)
{
	struct buf b = BUF_INIT;
	if ((line ? buf_printf(&b, "%s (line %zu)", what, line) : buf_printf(&b, "%s", what)) < 0)
		return -ENOMEM;
	*ret_why = buf_steal(&b);
	return -EINVAL;
}

/* Every byte valid UTF-8, no NUL, no control character but those allowed
 * (the subject: TAB; the body: TAB, CR, LF, FF). */
static int check_text(const char *s, size_t len, size_t subject_end, char **ret_why)
{
	size_t line = 1;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\0')
			return why_set(ret_why, "the template holds a NUL byte", line);
		if (c == '\n') {
			line++;
			i++;
			continue;
		}
		bool subject = i < subject_end;
		if ((c < 0x20 || c == 0x7f) && c != '\t' && (subject || (c != '\r' && c != '\f')))
			return why_set(ret_why,
				       subject ? "the subject holds a control character"
					       : "the template holds a control character",
				       line);
		size_t n = vis_utf8_next(s + i, len - i, NULL);
		if (n == 0)
			return why_set(ret_why, "the template is not valid UTF-8", line);
		i += n;
	}
	return 0;
}

int mailmsg_template_parse(const char *text, size_t len, struct mailmsg_template **ret,
			   char **ret_why)
{
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
		text += 3; /* a BOM, as editors on Windows write */
		len -= 3;
	}
	if (len > MAILMSG_TEMPLATE_MAX)
		return why_set(ret_why, "the template is over 64 KiB", 0);
	const char *nl = memchr(text, '\n', len);
	size_t line_end = nl ? (size_t)(nl - text) : len;
	size_t subject_len = line_end;
	if (subject_len > 0 && text[subject_len - 1] == '\r')
		subject_len--;
	/* the subject's CR (before its LF) is its line end, not a control */
	int r = check_text(text, len, subject_len, ret_why);
	if (r < 0)
		return r;
	size_t blank = 0;
	while (blank < subject_len && (text[blank] == ' ' || text[blank] == '\t'))
		blank++;
	if (blank == subject_len)
		return why_set(ret_why, "the first line, the subject, is empty", 1);
	if (subject_len > MAILMSG_SUBJECT_MAX)
		return why_set(ret_why, "the subject is over 998 bytes", 1);

	struct mailmsg_template *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->text = malloc(len + 1);
	if (!t->text) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(t->text, text, len);
	t->text[len] = '\0';
	r = split(t->text, 0, subject_len, &t->subject);
	r = r ? r : split(t->text, nl ? line_end + 1 : len, len, &t->body);
out:
	if (r < 0) {
		mailmsg_template_free(t);
		return r;
	}
	*ret = t;
	return 0;
}

/* ---- rendering ---- */

/* s (a value, NULL = "") appended: invalid UTF-8 as U+FFFD, the control
 * characters not in keep (and DEL) as spaces. */
static int append_value(struct buf *b, const char *s, const char *keep)
{
	if (!s)
		return 0;
	size_t len = strlen(s);
	int r = buf_reserve(b, len);
	for (size_t i = 0; i < len && r == 0;) {
		size_t n = vis_utf8_next(s + i, len - i, NULL);
		if (n == 0) {
			r = buf_append(b, "\xef\xbf\xbd", 3);
			i++;
			continue;
		}
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && !strchr(keep, (char)c)) || c == 0x7f)
			r = buf_append(b, " ", 1);
		else
			r = buf_append(b, s + i, n);
		i += n;
	}
	return r;
}

/* s[0..len) appended with every line end (CR LF, CR, LF) as CR LF. */
static int append_crlf(struct buf *b, const char *s, size_t len)
{
	int r = buf_reserve(b, len + len / 16);
	size_t run = 0;
	for (size_t i = 0; i < len && r == 0; i++) {
		if (s[i] != '\r' && s[i] != '\n')
			continue;
		r = buf_append(b, s + run, i - run);
		r = r ? r : buf_append(b, "\r\n", 2);
		if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
			i++;
		run = i + 1;
	}
	return r ? r : buf_append(b, s + run, len - run);
}

/* The length of s[0..len) cut to at most max bytes at a character boundary. */
static size_t cut_utf8(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

static int render_part(const struct mailmsg_template *t, const struct part *p,
		       const char *const values[PH_COUNT], const char *keep, size_t max,
		       struct buf *out)
{
	int r = 0;
	for (size_t i = 0; i < p->n && r == 0; i++) {
		const struct seg *s = &p->segs[i];
		if (s->ph == PH_TEXT)
			r = buf_append(out, t->text + s->off, s->len);
		else
			r = append_value(out, values[s->ph], keep);
		if (r == 0 && out->len > max)
			return -EMSGSIZE;
	}
	return r;
}

int mailmsg_render(const struct mailmsg_template *t, const struct mailmsg_values *v,
		   char **ret_subject, char **ret_body)
{
	const char *const values[PH_COUNT] = {
		[PH_DISPLAY_NAME] = v->display_name, [PH_EMAIL] = v->email,
		[PH_REDEEM_URL] = v->redeem_url,     [PH_MESSAGE] = v->message,
		[PH_INVITER] = v->inviter,	     [PH_TENANT] = v->tenant,
	};
	struct buf subject = BUF_INIT, raw = BUF_INIT, body = BUF_INIT;
	/* the subject: one line whatever the values hold */
	int r = render_part(t, &t->subject, values, "\t", MAILMSG_BODY_MAX, &subject);
	if (r == -EMSGSIZE)
		r = 0; /* cut below */
	r = r ? r : render_part(t, &t->body, values, "\t\r\n\f", MAILMSG_BODY_MAX, &raw);
	r = r ? r : append_crlf(&body, raw.data ? raw.data : "", raw.len);
	if (r == 0 && body.len > MAILMSG_BODY_MAX)
		r = -EMSGSIZE;
	r = r ? r : buf_append(&subject, "", 0);
	r = r ? r : buf_append(&body, "", 0);
	buf_finish(&raw);
	if (r < 0) {
		buf_finish(&subject);
		buf_finish(&body);
		return r;
	}
	subject.data[cut_utf8(subject.data, subject.len, MAILMSG_SUBJECT_MAX)] = '\0';
	*ret_subject = buf_steal(&subject);
	*ret_body = buf_steal(&body);
	return 0;
}

/* ---- the message ---- */

#define ADDRESS_MAX 320
#define WORD_BYTES 39 /* bytes of text per encoded word: 52 base64 characters, 64 in all */
#define B64_LINE 76

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int append_base64(struct buf *b, const unsigned char *s, size_t len)
{
	int r = buf_reserve(b, (len + 2) / 3 * 4);
	for (size_t i = 0; i < len && r == 0; i += 3) {
		unsigned v = (unsigned)s[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)s[i + 1] << 8;
		if (i + 2 < len)
			v |= s[i + 2];
		char q[4] = {b64[(v >> 18) & 63], b64[(v >> 12) & 63],
			     i + 1 < len ? b64[(v >> 6) & 63] : '=', i + 2 < len ? b64[v & 63] : '='};
		r = buf_append(b, q, 4);
	}
	return r;
}

/* A plain address: local@domain, no space, control character or special
 * that could end the header or add an address to it. */
static bool address_ok(const char *a)
{
	if (!a || !*a || strlen(a) > ADDRESS_MAX)
		return false;
	const char *at = strrchr(a, '@');
	if (!at || at == a || !at[1])
		return false;
	for (const unsigned char *p = (const unsigned char *)a; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || strchr("<>()[]\\,;:\"", *p))
			return false;
	return true;
}

/* Text for a header (valid UTF-8, controls as spaces) with its blanks at
 * either end dropped. */
static int header_text(const char *s, struct buf *out)
{
	int r = append_value(out, s, "");
	if (r < 0)
		return r;
	size_t start = 0, end = out->len;
	while (start < end && out->data[start] == ' ')
		start++;
	while (end > start && out->data[end - 1] == ' ')
		end--;
	if (out->data) {
		memmove(out->data, out->data + start, end - start);
		out->data[end - start] = '\0';
	}
	out->len = end - start;
	return 0;
}

/* s[0..len) (valid UTF-8) as RFC 2047 B encoded words of whole characters,
 * each at most 75 characters, joined by CR LF SP (folded). */
static int append_words(struct buf *b, const char *s, size_t len)
{
	int r = 0;
	for (size_t i = 0; i < len && r == 0;) {
		size_t n = cut_utf8(s + i, len - i, WORD_BYTES);
		if (n == 0) /* cannot happen with valid UTF-8 (at most 4 bytes a character) */
			n = len - i < WORD_BYTES ? len - i : WORD_BYTES;
		r = buf_append_str(b, i ? "\r\n =?UTF-8?B?" : "=?UTF-8?B?");
		r = r ? r : append_base64(b, (const unsigned char *)s + i, n);
		r = r ? r : buf_append_str(b, "?=");
		i += n;
	}
	return r;
}

static bool plain_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* The To: header's value. */
static int append_to(struct buf *b, const char *to_email, const char *to_name)
{
	struct buf name = BUF_INIT;
	int r = header_text(to_name, &name);
	if (r == 0 && name.len == 0) {
		r = buf_append_str(b, to_email);
	} else if (r == 0 && plain_ascii(name.data, name.len) && name.len <= 60) {
		/* a quoted string: '"' and '\' escaped */
		r = buf_append(b, "\"", 1);
		for (size_t i = 0; i < name.len && r == 0; i++) {
			if (name.data[i] == '"' || name.data[i] == '\\')
				r = buf_append(b, "\\", 1);
			r = r ? r : buf_append(b, name.data + i, 1);
		}
		r = r ? r : buf_printf(b, "\" <%s>", to_email);
	} else if (r == 0) {
		r = append_words(b, name.data, name.len);
		r = r ? r : buf_printf(b, "\r\n <%s>", to_email);
	}
	buf_finish(&name);
	return r;
}

static int append_date(struct buf *b, uint64_t now_ms)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)(now_ms / 1000);
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		return -EINVAL;
	return buf_printf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday],
			  tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
			  tm.tm_sec);
}

int mailmsg_smtp_message(const char *sender, const char *to_email, const char *to_name,
			 const char *subject, const char *body, uint64_t now_ms, char **ret,
			 size_t *ret_len)
{
	if (!address_ok(sender) || !address_ok(to_email))
		return -EINVAL;
	if (body && strlen(body) > MAILMSG_BODY_MAX)
		return -EMSGSIZE;
	struct buf m = BUF_INIT, text = BUF_INIT, crlf = BUF_INIT;
	char id[GRAPH_CLIENT_REQUEST_ID_LEN + 1];
	graph_new_request_id(id);
	int r = buf_reserve(&m, 1024 + (body ? strlen(body) * 4 / 3 : 0));
	r = r ? r : append_date(&m, now_ms);
	r = r ? r : buf_printf(&m, "From: %s\r\nTo: ", sender);
	r = r ? r : append_to(&m, to_email, to_name);
	r = r ? r : buf_append_str(&m, "\r\nSubject: ");
	r = r ? r : header_text(subject, &text);
	r = r ? r : append_words(&m, text.data ? text.data : "", text.len);
	r = r ? r : buf_printf(&m, "\r\nMessage-ID: <%s@%s>\r\n", id, strrchr(sender, '@') + 1);
	r = r ? r : buf_append_str(&m, "MIME-Version: 1.0\r\n"
				       "Content-Type: text/plain; charset=UTF-8\r\n"
				       "Content-Transfer-Encoding: base64\r\n"
				       "\r\n");
	/* the body: valid UTF-8, CR LF line ends, base64 in 76-character lines */
	buf_clear(&text);
	r = r ? r : append_value(&text, body, "\t\r\n\f");
	r = r ? r : append_crlf(&crlf, text.data ? text.data : "", text.len);
	for (size_t i = 0; i < crlf.len && r == 0; i += B64_LINE / 4 * 3) {
		size_t n = crlf.len - i < B64_LINE / 4 * 3 ? crlf.len - i : B64_LINE / 4 * 3;
		r = append_base64(&m, (const unsigned char *)crlf.data + i, n);
		r = r ? r : buf_append(&m, "\r\n", 2);
	}
	r = r ? r : buf_append(&m, "", 0);
	buf_finish(&text);
	buf_finish(&crlf);
	if (r < 0) {
		buf_finish(&m);
		return r;
	}
	*ret_len = m.len;
	*ret = buf_steal(&m);
	return 0;
}

/* ---- what an SMTP outcome means ---- */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The enhanced status code (RFC 3463: class.subject.detail, the class the
 * reply code's first digit) after the code on the reply's first line, as a
 * new string; NULL when there is none (or out of memory). */
static char *enhanced_code(const char *reply, long status)
{
	if (!reply || strlen(reply) < 4 || !is_digit(reply[0]) || (reply[3] != ' ' && reply[3] != '-'))
		return NULL;
	const char *p = reply + 4;
	if (*p != (char)('0' + status / 100) || p[1] != '.')
		return NULL;
	const char *q = p + 2;
	size_t n = 0;
	while (is_digit(q[n]) && n < 4)
		n++;
	if (n < 1 || n > 3 || q[n] != '.')
		return NULL;
	q += n + 1;
	n = 0;
	while (is_digit(q[n]) && n < 4)
		n++;
	if (n < 1 || n > 3 || (q[n] && q[n] != ' ' && q[n] != '\n'))
		return NULL;
	return strndup(p, (size_t)(q + n - p));
}

/* text as one valid UTF-8 line: line breaks and other controls as spaces. */
static char *one_line(const char *text)
{
	struct buf b = BUF_INIT;
	if (append_value(&b, text, "") < 0 || buf_append(&b, "", 0) < 0) {
		buf_finish(&b);
		return NULL;
	}
	return buf_steal(&b);
}

int mailmsg_smtp_classify(const struct http_response *resp, struct graph_dir_result *ret)
{
	memset(ret, 0, sizeof(*ret));
	long status = resp->status;
	ret->http_status = status;
	bool refused = status >= 400 && status <= 599;
	if (!refused && !resp->error && status >= 200 && status <= 299) {
		ret->outcome = GRAPH_DIR_OK;
		return 0;
	}
	struct buf code = BUF_INIT;
	const char *reply = resp->body && *resp->body ? resp->body : NULL;
	if (refused) {
		ret->error_code = enhanced_code(reply, status);
		if (!ret->error_code && buf_printf(&code, "SMTP%ld", status) == 0)
			ret->error_code = buf_steal(&code);
		if (status == 534 || status == 535 || status == 530 || status == 538)
			ret->outcome = GRAPH_DIR_DENIED;
		else if (status >= 500)
			ret->outcome = GRAPH_DIR_FAILED;
		else
			ret->outcome = GRAPH_DIR_TRANSIENT;
	} else {
		ret->error_code = strdup(resp->error ? http_error_code(resp->error) : "BadResponse");
		ret->outcome = resp->error == -EACCES ? GRAPH_DIR_DENIED : GRAPH_DIR_TRANSIENT;
	}
	if (refused && reply)
		ret->error_message = one_line(reply);
	else if (resp->error_text)
		ret->error_message = one_line(resp->error_text);
	else if (buf_printf(&code, "the SMTP server's reply %ld", status) == 0)
		ret->error_message = buf_steal(&code);
	buf_finish(&code);
	if (!ret->error_code || !ret->error_message) {
		graph_dir_result_clear(ret);
		return -ENOMEM;
	}
	return 0;
}
