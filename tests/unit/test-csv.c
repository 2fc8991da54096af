/* SPDX-License-Identifier: MIT */
/*
 * test-csv: the guest-list reader (common/csv.c).
 *
 * Table-driven: every case is fed whole, then one byte at a time, then in a
 * few other chunk sizes; the transcript of callbacks must be identical each
 * time and match the expected rows and errors.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "csv.h"
#include "tap.h"

#define MAX_SEEN 16

struct seen_row {
	unsigned line;
	char *email, *name, *redirect, *message, *groups;
	enum csv_flag send;
	char separator;
	size_t n_fields;
};

struct seen_error {
	unsigned line;
	char *message;
};

struct result {
	struct buf log; /* transcript of every callback, compared across chunkings */
	size_t n_headers;
	enum csv_format format;
	char sep;
	size_t n_columns;
	size_t n_rows, n_errors; /* callbacks seen (seen_* holds the first MAX_SEEN) */
	struct seen_row rows[MAX_SEEN];
	struct seen_error errors[MAX_SEEN];
	size_t reader_rows, reader_errors;
	enum csv_format reader_format;
	int feed_rc, finish_rc;
	int abort_on_row; /* return this from on_row when non-zero */
};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void log_str(struct buf *b, const char *s)
{
	buf_append_str(b, s ? s : "(null)");
	buf_append_str(b, "|");
}

static int on_header(void *userdata, enum csv_format format, char separator, size_t n_columns,
                     const char *const *columns)
{
	struct result *res = userdata;
	res->n_headers++;
	res->format = format;
	res->sep = separator;
	res->n_columns = n_columns;
	buf_printf(&res->log, "H %d %c %zu ", (int)format, separator, n_columns);
	for (size_t i = 0; i < n_columns; i++)
		log_str(&res->log, columns[i]);
	buf_append_str(&res->log, "\n");
	return 0;
}

static int on_row(void *userdata, const struct csv_row *row)
{
	struct result *res = userdata;
	buf_printf(&res->log, "R %u ", row->line);
	log_str(&res->log, row->email);
	log_str(&res->log, row->display_name);
	log_str(&res->log, row->redirect_url);
	buf_printf(&res->log, "%d|", (int)row->send_email);
	log_str(&res->log, row->message);
	log_str(&res->log, row->groups);
	buf_printf(&res->log, "%c|", row->separator);
	for (size_t i = 0; i < row->n_fields; i++)
		log_str(&res->log, row->fields[i]);
	buf_append_str(&res->log, "\n");
	if (res->n_rows < MAX_SEEN) {
		struct seen_row *s = &res->rows[res->n_rows];
		s->line = row->line;
		s->email = dup_or_null(row->email);
		s->name = dup_or_null(row->display_name);
		s->redirect = dup_or_null(row->redirect_url);
		s->message = dup_or_null(row->message);
		s->groups = dup_or_null(row->groups);
		s->send = row->send_email;
		s->separator = row->separator;
		s->n_fields = row->n_fields;
	}
	res->n_rows++;
	return res->abort_on_row;
}

static int on_error(void *userdata, unsigned line, const char *message)
{
	struct result *res = userdata;
	buf_printf(&res->log, "E %u %s\n", line, message);
	if (res->n_errors < MAX_SEEN) {
		res->errors[res->n_errors].line = line;
		res->errors[res->n_errors].message = strdup(message);
	}
	res->n_errors++;
	return 0;
}

static const struct csv_callbacks callbacks = {
    .on_header = on_header,
    .on_row = on_row,
    .on_error = on_error,
};

static void result_free(struct result *res)
{
	for (size_t i = 0; i < res->n_rows && i < MAX_SEEN; i++) {
		free(res->rows[i].email);
		free(res->rows[i].name);
		free(res->rows[i].redirect);
		free(res->rows[i].message);
		free(res->rows[i].groups);
	}
	for (size_t i = 0; i < res->n_errors && i < MAX_SEEN; i++)
		free(res->errors[i].message);
	buf_finish(&res->log);
}

/* Parse input in chunks of `chunk` bytes (0: all at once) into *res. */
static void parse(const char *input, size_t len, size_t chunk, const struct csv_limits *limits,
                  struct result *res)
{
	struct csv_reader *r = NULL;

	memset(res, 0, sizeof(*res));
	buf_init(&res->log);
	if (csv_reader_create(&r, limits, &callbacks, res) < 0) {
		res->feed_rc = -ENOMEM;
		return;
	}
	if (chunk == 0)
		chunk = len ? len : 1;
	for (size_t off = 0; off < len && res->feed_rc == 0; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		res->feed_rc = csv_reader_feed(r, input + off, n);
	}
	res->finish_rc = csv_reader_finish(r);
	res->reader_rows = csv_reader_rows(r);
	res->reader_errors = csv_reader_errors(r);
	res->reader_format = csv_reader_format(r);
	buf_printf(&res->log, "= rows %zu errors %zu format %d rc %d %d\n", res->reader_rows,
	           res->reader_errors, (int)res->reader_format, res->feed_rc, res->finish_rc);
	csv_reader_destroy(r);
}

/* ---- the table ---- */

#define U CSV_FLAG_UNSET
#define T CSV_FLAG_TRUE
#define F CSV_FLAG_FALSE

struct exp_row {
	unsigned line; /* 0 ends the list */
	const char *email, *name, *redirect;
	enum csv_flag send;
	const char *message;
	size_t n_fields;    /* 0: not checked */
	const char *groups; /* the groups cell csv_row carries (NULL: none) */
};

struct exp_error {
	unsigned line; /* 0 ends the list */
	const char *substr;
};

struct tcase {
	const char *name;
	const char *input;
	size_t len;
	size_t max_rows, max_record_bytes;
	enum csv_format format; /* expected csv_reader_format() */
	char sep;               /* expected separator; 0 when no header is reported */
	long n_rows;            /* expected csv_reader_rows(); -1: the number of exp rows */
	struct exp_row rows[8];
	struct exp_error errors[8];
};

#define IN(s) .input = s, .len = sizeof(s) - 1
#define PORTAL CSV_FORMAT_PORTAL
#define PS CSV_FORMAT_POWERSHELL
#define NONE CSV_FORMAT_UNKNOWN

#define PH                                                                                         \
	"Email address to invite [inviteeEmail] Required,Redirection url [inviteRedirectURL] "     \
	"Required,Send invitation message (true or false) [sendEmail],Customized invitation "      \
	"message [customizedMessageBody]"
#define PH_SEMI                                                                                    \
	"Email address to invite [inviteeEmail] Required;Redirection url [inviteRedirectURL] "     \
	"Required;Send invitation message (true or false) [sendEmail];Customized invitation "      \
	"message [customizedMessageBody]"
#define PH_JA                                                                                                 \
	"招待するユーザーのメール アドレス [inviteeEmail] 必須,リダイレクト URL "     \
	"[inviteRedirectURL] 必須,招待メッセージを送信する (true または false) [sendEmail]," \
	"カスタマイズされた招待メッセージ [customizedMessageBody]"
#define EX "Example:    someone@something.com,https://myapplications.microsoft.com,true,Hi\n"
#define URL "https://myapps.example/"
#define X10 "xxxxxxxxxx"
#define X50 X10 X10 X10 X10 X10
#define X250 X50 X50 X50 X50 X50
#define G1 "0f8fad5b-d9cb-469f-a165-70867728950e"
#define G1U "0F8FAD5B-D9CB-469F-A165-70867728950E"
#define G2 "7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define BAD_GUID "invalid groups: not a group object id (GUID): "

static const struct tcase cases[] = {
    {"portal: version, example, two rows",
     IN("version:v1.0\n" PH "\n" EX "a@partner.example," URL ",true,Welcome\n"
        "b@partner.example,,,\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{4, "a@partner.example", NULL, URL, T, "Welcome", 4, NULL},
              {5, "b@partner.example", NULL, NULL, U, NULL, 4, NULL}}},
    {"portal: BOM, CRLF, version:v1.0,,,",
     IN("\xEF\xBB\xBFversion:v1.0,,,\r\n" PH "\r\n" EX "a@b.example," URL ",false,\r\n"
        "c@d.example,,TRUE,Hello\r\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{4, "a@b.example", NULL, URL, F, NULL, 4, NULL},
              {5, "c@d.example", NULL, NULL, T, "Hello", 4, NULL}}},
    {"portal: header on line 1, no version row, no final newline",
     IN(PH "\na@b.example\nc@d.example," URL), .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{2, "a@b.example", NULL, NULL, U, NULL, 1, NULL},
              {3, "c@d.example", NULL, URL, U, NULL, 2, NULL}}},
    {"blank lines, separator-only lines and space lines are skipped",
     IN("version:v1.0\n\n" PH "\n,,,\n\n   \n a@b.example ,\n  , ,\r\n\t\nc@d.example\n,,,\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{7, "a@b.example", NULL, NULL, U, NULL, 2, NULL},
              {10, "c@d.example", NULL, NULL, U, NULL, 1, NULL}}},
    {"quoted fields: commas and doubled quotes in the message",
     IN(PH "\na@b.example,\"" URL "\",\"yes\",\"Hi, \"\"friend\"\", welcome\"\n"), .format = PORTAL,
     .sep = ',', .n_rows = -1,
     .rows = {{2, "a@b.example", NULL, URL, T, "Hi, \"friend\", welcome", 4, NULL}}},
    {"quoted newlines: the row keeps its first line, later lines shift",
     IN("version:v1.0\n" PH "\na@b.example,,,\"line one\nline two\n\nline four\"\n"
        "c@d.example,,no,\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{3, "a@b.example", NULL, NULL, U, "line one\nline two\n\nline four", 4, NULL},
              {7, "c@d.example", NULL, NULL, F, NULL, 4, NULL}}},
    {"CRLF and lone CR inside quotes are data",
     IN(PH "\r\na@b.example,,,\"one\r\ntwo\"\r\nc@d.example,,,\"x\ry\"\r\n"), .format = PORTAL,
     .sep = ',', .n_rows = -1,
     .rows = {{2, "a@b.example", NULL, NULL, U, "one\r\ntwo", 4, NULL},
              {4, "c@d.example", NULL, NULL, U, "x\ry", 4, NULL}}},
    {"trimming around unquoted and quoted cells; spaces inside quotes kept",
     IN(PH "\n  a@b.example\t,  \"" URL "\"  ,\t1 , \"  padded  \" \r\n"), .format = PORTAL,
     .sep = ',', .n_rows = -1, .rows = {{2, "a@b.example", NULL, URL, T, "  padded  ", 4, NULL}}},
    {"fewer cells than the header: missing cells are empty", IN(PH "\na@b.example\nc@d.example,\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{2, "a@b.example", NULL, NULL, U, NULL, 1, NULL},
              {3, "c@d.example", NULL, NULL, U, NULL, 2, NULL}}},
    {"more cells than the header: extras ignored but kept in fields",
     IN(PH "\na@b.example,,0,msg,extra1,\"extra,2\"\n"), .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{2, "a@b.example", NULL, NULL, F, "msg", 6, NULL}}},
    {"sendEmail accepts true/false/yes/no/1/0 in any case",
     IN(PH "\na@b.example,,TRUE\nb@b.example,,False\nc@b.example,,YES\nd@b.example,,nO\n"
           "e@b.example,,1\nf@b.example,,0\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{2, "a@b.example", NULL, NULL, T, NULL, 3, NULL},
              {3, "b@b.example", NULL, NULL, F, NULL, 3, NULL},
              {4, "c@b.example", NULL, NULL, T, NULL, 3, NULL},
              {5, "d@b.example", NULL, NULL, F, NULL, 3, NULL},
              {6, "e@b.example", NULL, NULL, T, NULL, 3, NULL},
              {7, "f@b.example", NULL, NULL, F, NULL, 3, NULL}}},
    {"bad sendEmail value", IN(PH "\na@b.example,,maybe\nc@d.example,,y\n"), .format = PORTAL,
     .sep = ',', .n_rows = 2,
     .errors = {{2, "invalid sendEmail value 'maybe' (use true or false)"},
                {3, "invalid sendEmail value 'y'"}}},
    {"empty email", IN(PH "\n," URL ",true,hello\n  ,,,x\n"), .format = PORTAL, .sep = ',',
     .n_rows = 2, .errors = {{2, "empty email"}, {3, "empty email"}}},
    {"invalid emails are quoted with the reason",
     IN(PH "\na@@b.example\nfirst+tag@b.example\nno-at.example\n.dot@b.example\n"
           "a..b@b.example\na@b\nok@b.example\n"),
     .format = PORTAL, .sep = ',', .n_rows = 7,
     .rows = {{8, "ok@b.example", NULL, NULL, U, NULL, 1, NULL}},
     .errors = {{2, "invalid email 'a@@b.example': more than one '@'"},
                {3, "invalid email 'first+tag@b.example': '+' is not permitted"},
                {4, "invalid email 'no-at.example': missing '@'"},
                {5, "user name starts with '.'"},
                {6, "two consecutive periods"},
                {7, "invalid email 'a@b': domain has no '.'"}}},
    {"invalid redirect URL",
     IN(PH
        "\na@b.example,ftp://x.example/\nc@d.example,https://\ne@f.example,HTTPS://Ok.Example\n"),
     .format = PORTAL, .sep = ',', .n_rows = 3,
     .rows = {{4, "e@f.example", NULL, "HTTPS://Ok.Example", U, NULL, 2, NULL}},
     .errors = {{2, "invalid redirect URL 'ftp://x.example/': not an absolute http"},
                {3, "invalid redirect URL 'https://': no host"}}},
    {"one error per bad cell of a row", IN(PH "\nbad email,http:/x,perhaps,m\n"), .format = PORTAL,
     .sep = ',', .n_rows = 1,
     .errors = {{2, "invalid email 'bad email': contains a space"},
                {2, "invalid redirect URL 'http:/x'"},
                {2, "invalid sendEmail value 'perhaps'"}}},
    {"invalid UTF-8: one error for the line, the next rows go on",
     IN(PH "\na@b.example,,,caf\xe9 \xe9\nc@d.example\n"), .format = PORTAL, .sep = ',',
     .n_rows = 2, .rows = {{3, "c@d.example", NULL, NULL, U, NULL, 1, NULL}},
     .errors = {{2, "invalid UTF-8 (save the file as CSV UTF-8)"}}},
    {"NUL bytes are invalid", IN(PH "\na@b.example,,,x\0y\nc@d.example\n\0\n"), .format = PORTAL,
     .sep = ',', .n_rows = 2, .rows = {{3, "c@d.example", NULL, NULL, U, NULL, 1, NULL}},
     .errors = {{2, "invalid UTF-8 (save"}, {4, "invalid UTF-8"}}},
    {"overlong, surrogate and truncated sequences are invalid",
     IN(PH "\na@b.example,,,\xc0\xaf\nb@b.example,,,\xed\xa0\x80\nc@b.example,,,\xe3\x81\n"
           "d@b.example,,,\xf4\x90\x80\x80\n"),
     .format = PORTAL, .sep = ',', .n_rows = 4,
     .errors =
         {{2, "invalid UTF-8"}, {3, "invalid UTF-8"}, {4, "invalid UTF-8"}, {5, "invalid UTF-8"}}},
    {"invalid UTF-8 on the second line of a quoted field names that line",
     IN(PH "\na@b.example,,,\"ok\nbad \xff\"\nc@d.example\n"), .format = PORTAL, .sep = ',',
     .n_rows = 2, .rows = {{4, "c@d.example", NULL, NULL, U, NULL, 1, NULL}},
     .errors = {{3, "invalid UTF-8"}}},
    {"UTF-8 display name and IDN domain",
     IN("version:v1.0\n" PH ",Name [inviteeName]\n"
        "taro@例え.jp,,,,山田 太郎\nzoe@bücher.example,,,\"Hi, 👋\",Zoë\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{3, "taro@例え.jp", "山田 太郎", NULL, U, NULL, 5, NULL},
              {4, "zoe@bücher.example", "Zoë", NULL, U, "Hi, 👋", 5, NULL}}},
    {"Japanese-localized portal header",
     IN("\xEF\xBB\xBFversion:v1.0\r\n" PH_JA "\r\n" EX "guest@partner.example," URL ",true,"
        "ようこそ\r\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{4, "guest@partner.example", NULL, URL, T, "ようこそ", 4, NULL}}},
    {"';' separated portal file with version:v1.0;;;",
     IN("version:v1.0;;;\r\n" PH_SEMI "\r\na@b.example;" URL ";false;Hi, there\r\n"
        "\"c@d.example\";;;\"x;y\"\r\n;;;\r\n"),
     .format = PORTAL, .sep = ';', .n_rows = -1,
     .rows = {{3, "a@b.example", NULL, URL, F, "Hi, there", 4, NULL},
              {4, "c@d.example", NULL, NULL, U, "x;y", 4, NULL}}},
    {"';' separated header whose cells contain commas",
     IN("Email, required [inviteeEmail];Redirect, required [inviteRedirectURL]\n"
        "a@b.example;" URL "\n"),
     .format = PORTAL, .sep = ';', .n_rows = -1,
     .rows = {{2, "a@b.example", NULL, URL, U, NULL, 2, NULL}}},
    {"',' separated header whose cells contain ';'",
     IN("version:v1.0;;;\nEmail; required [inviteeEmail],Redirect; required [inviteRedirectURL]\n"
        "a@b.example," URL "\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{3, "a@b.example", NULL, URL, U, NULL, 2, NULL}}},
    {"PowerShell format",
     IN("Name,InvitedUserEmailAddress\nGloria Lopez,gloria@fabrikam.example\n"
        "\"Lopez, Ana\",ana@fabrikam.example\n"),
     .format = PS, .sep = ',', .n_rows = -1,
     .rows = {{2, "gloria@fabrikam.example", "Gloria Lopez", NULL, U, NULL, 2, NULL},
              {3, "ana@fabrikam.example", "Lopez, Ana", NULL, U, NULL, 2, NULL}}},
    {"PowerShell: any order, any case, optional columns",
     IN("invitedUserEmailAddress,sendinvitationmessage,NAME,InviteRedirectUrl,"
        "CustomizedMessageBody\r\nx@y.example,false,,http://r.example,Hey\r\n"
        "z@y.example,sure,Zed,,\r\n"),
     .format = PS, .sep = ',', .n_rows = 2,
     .rows = {{2, "x@y.example", NULL, "http://r.example", F, "Hey", 5, NULL}},
     .errors = {{3, "invalid SendInvitationMessage value 'sure' (use true or false)"}}},
    {"PowerShell: missing Name column",
     IN("InvitedUserEmailAddress,InviteRedirectUrl\na@b.example,\n"), .format = PS, .sep = ',',
     .n_rows = 1, .rows = {{2, "a@b.example", NULL, NULL, U, NULL, 2, NULL}},
     .errors = {{1, "missing required column Name"}}},
    {"a generic email,name header reads as PowerShell without its email column",
     IN("\nemail,name\na@b.example,A\n"), .format = PS, .sep = ',', .n_rows = 0,
     .errors = {{2, "missing required column InvitedUserEmailAddress"}}},
    {"portal: missing [inviteRedirectURL] column; rows still validated",
     IN("version:v1.0\nEmail [inviteeEmail],Send [sendEmail]\na@b.example,true\nbad,no\n"),
     .format = PORTAL, .sep = ',', .n_rows = 2,
     .rows = {{3, "a@b.example", NULL, NULL, T, NULL, 2, NULL}},
     .errors = {{2, "missing required column [inviteRedirectURL]"},
                {4, "invalid email 'bad': missing '@'"}}},
    {"portal: missing [inviteeEmail] column stops reading",
     IN("version:v1.0\nRedirect [inviteRedirectURL],Name [displayName]\nx,y\n"), .format = PORTAL,
     .sep = ',', .n_rows = 0, .errors = {{2, "missing required column [inviteeEmail]"}}},
    {"CR-only line ends: refused, saying why",
     IN("Email address to invite [inviteeEmail] Required,Redirection url [inviteRedirectURL] "
        "Required\ra@b.example," URL "\rc@d.example," URL "\r"),
     .format = NONE, .sep = ',', .n_rows = 0,
     .errors = {{1, "save the file with LF or CRLF line ends"}}},
    {"no recognizable header", IN("version:v1.0\n\nmail,full name\na@b.example,A\n"),
     .format = NONE, .n_rows = 0, .errors = {{1, "no recognizable header"}}},
    {"empty file", IN(""), .format = NONE, .n_rows = 0, .errors = {{1, "no recognizable header"}}},
    {"only blank lines and a version row", IN("\xEF\xBB\xBF\r\n,,,\nversion:v1.0,,,\n\n"),
     .format = NONE, .n_rows = 0, .errors = {{1, "no recognizable header"}}},
    {"UTF-16 file",
     IN("\xff\xfe"
        "E\0m\0"),
     .format = NONE, .n_rows = 0, .errors = {{1, "UTF-16"}}},
    {"blank lines before the header shift its line",
     IN("\n\nversion:v1.0\n\nEmail [inviteeEmail]\na@b.example\n"), .format = PORTAL, .sep = ',',
     .n_rows = 1, .rows = {{6, "a@b.example", NULL, NULL, U, NULL, 1, NULL}},
     .errors = {{5, "missing required column [inviteRedirectURL]"}}},
    {"the template's example only: no guests, at the example's line",
     IN("version:v1.0\n" PH "\n" EX), .format = PORTAL, .sep = ',', .n_rows = 0,
     .errors = {{3, "no guests in the file"}}},
    {"header only: no guests, at the header's line", IN("version:v1.0\n" PH "\n"),
     .format = PORTAL, .sep = ',', .n_rows = 0, .errors = {{2, "no guests in the file"}}},
    {"header and blank lines only: no guests", IN(PH "\n,,,\n\n"), .format = PORTAL,
     .sep = ',', .n_rows = 0, .errors = {{1, "no guests in the file"}}},
    {"PowerShell header only: no guests", IN("Name,InvitedUserEmailAddress\r\n"), .format = PS,
     .sep = ',', .n_rows = 0, .errors = {{1, "no guests in the file"}}},
    {"an invalid row is a row: no 'no guests'", IN(PH "\nnot-an-email\n"), .format = PORTAL,
     .sep = ',', .n_rows = 1, .errors = {{2, "invalid email"}}},
    {"unterminated quote at the end, reported where it opened",
     IN(PH "\na@b.example,,,ok\nc@d.example,,,\"never\nclosed\nat all\n"), .format = PORTAL,
     .sep = ',', .n_rows = -1, .rows = {{2, "a@b.example", NULL, NULL, U, "ok", 4, NULL}},
     .errors = {{3, "unterminated quote"}}},
    {"unterminated quote in the header row",
     IN("version:v1.0\n\"Email [inviteeEmail],Redirect [inviteRedirectURL]\na@b.example\n"),
     .format = NONE, .n_rows = 0,
     .errors = {{2, "unterminated quote"}, {1, "no recognizable header"}}},
    {"max_rows: the next row is reported once and reading stops",
     IN("version:v1.0\n" PH "\n" EX "a@b.example\n\nb@b.example\nc@b.example\n"
        "d@b.example\nbad\n\"unterminated\n"),
     .max_rows = 3, .format = PORTAL, .sep = ',', .n_rows = 3,
     .rows = {{4, "a@b.example", NULL, NULL, U, NULL, 1, NULL},
              {6, "b@b.example", NULL, NULL, U, NULL, 1, NULL},
              {7, "c@b.example", NULL, NULL, U, NULL, 1, NULL}},
     .errors = {{8, "more than 3 rows"}}},
    {"max_record_bytes: long unquoted record reported, reading resumes",
     IN(PH "\na@b.example,,," X250 X50 "\nc@d.example\n"), .max_record_bytes = 300,
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{3, "c@d.example", NULL, NULL, U, NULL, 1, NULL}},
     .errors = {{2, "record too long (more than 300 bytes)"}}},
    {"max_record_bytes: runaway quote reported at its opening line",
     IN(PH "\na@b.example\nc@d.example,,,\"" X50 "\n" X50 "\n" X50 "\n" X50 "\n" X50 "\n" X50
           "\ne@f.example\n"),
     .max_record_bytes = 300, .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{2, "a@b.example", NULL, NULL, U, NULL, 1, NULL},
              {9, "e@f.example", NULL, NULL, U, NULL, 1, NULL}},
     .errors = {{3, "quoted field longer than 300 bytes (unterminated quote?)"}}},
    {"max_record_bytes: a header row longer than the cap", IN(PH "\na@b.example\n"),
     .max_record_bytes = 100, .format = NONE, .n_rows = 0, .errors = {{1, "record too long"}}},
    {"Example: rows skipped in any case and not counted",
     IN(PH "\nEXAMPLE: x@y,z,maybe\n  example:\ta@b\na@b.example\n"), .format = PORTAL, .sep = ',',
     .n_rows = 1, .rows = {{4, "a@b.example", NULL, NULL, U, NULL, 1, NULL}}},
    {"display name from [displayName]; columns in another order; extra columns",
     IN("Notes,Redirect [inviteRedirectURL],Who [displayName],Mail [INVITEEEMAIL],Msg "
        "[customizedmessagebody]\nn1," URL ",Ann Lee,ann@x.example,Hi\n,,,bob@x.example,\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{2, "ann@x.example", "Ann Lee", URL, U, "Hi", 5, NULL},
              {3, "bob@x.example", NULL, NULL, U, NULL, 5, NULL}}},
    {"duplicate column",
     IN("Email [inviteeEmail],Url [inviteRedirectURL],Name [inviteeName],Also [displayName]\n"
        "a@b.example,,A,B\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{2, "a@b.example", "A", NULL, U, NULL, 4, NULL}},
     .errors = {{1, "duplicate column [inviteeName]"}}},
    {"display name over the cap",
     IN(PH ",[inviteeName]\na@b.example,,,," X250 "xxxxxxx\nb@b.example,,,," X250 "xxxxxx\n"),
     .format = PORTAL, .sep = ',', .n_rows = 2,
     .rows = {{3, "b@b.example", X250 "xxxxxx", NULL, U, NULL, 5, NULL}},
     .errors = {{2, "display name too long (257 bytes, at most 256)"}}},
    {"quotes inside unquoted cells are data; text after a closing quote is appended",
     IN(PH ",[inviteeName]\no'brien@b.example,,,,O\"Brien\n\"c\"@d.example,,,,\"Ann\" Lee\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{2, "o'brien@b.example", "O\"Brien", NULL, U, NULL, 5, NULL},
              {3, "c@d.example", "Ann Lee", NULL, U, NULL, 5, NULL}}},
    {"an email that is too long is quoted with a capped excerpt", IN(PH "\n" X250 "@b.example\n"),
     .format = PORTAL, .sep = ',', .n_rows = 1,
     .errors = {{2, "invalid email '" X50 "xxxxxxxxxxxxxx...': longer than 254 bytes"}}},
    {"control characters in a quoted value are escaped in the message",
     IN(PH "\n\"a\tb@c.example\"\n"), .format = PORTAL, .sep = ',', .n_rows = 1,
     .errors = {{2, "invalid email 'a\\tb@c.example': contains a space or control"}}},
    {"version row only counts first; a later one is the header candidate",
     IN("version:v1.0\nversion:v1.0\n" PH "\n"), .format = NONE, .n_rows = 0,
     .errors = {{1, "no recognizable header"}}},
    {"invalid UTF-8 in the version row", IN("version:v1.0 \xff\n" PH "\na@b.example\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{3, "a@b.example", NULL, NULL, U, NULL, 1, NULL}}, .errors = {{1, "invalid UTF-8"}}},
    {"quoted header cells and a quoted newline in the header",
     IN("\"Email, required\n[inviteeEmail]\",\"Redirect [inviteRedirectURL]\"\na@b.example\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{3, "a@b.example", NULL, NULL, U, NULL, 1, NULL}}},
    {"portal: a [groups] column with localized text; ids by spaces, ';', newlines",
     IN("version:v1.0\n" PH ",Gruppen (Objekt-IDs durch Leerzeichen getrennt) [groups]\n"
        "a@b.example,,,," G1 " " G2 "\n"
        "c@d.example,,,,\" " G1U ";" G2 "\n\"\n"
        "e@f.example,,,,\n"
        "g@h.example,,,, ; ;;\n"
        "i@j.example,,,,\"" G1 "\n" G1U "\"\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{3, "a@b.example", NULL, NULL, U, NULL, 5, G1 " " G2},
              {4, "c@d.example", NULL, NULL, U, NULL, 5, G1U ";" G2},
              {6, "e@f.example", NULL, NULL, U, NULL, 5, NULL},
              {7, "g@h.example", NULL, NULL, U, NULL, 5, NULL},
              {8, "i@j.example", NULL, NULL, U, NULL, 5, G1 "\n" G1U}}},
    {"PowerShell: a Groups column in any case",
     IN("Name,InvitedUserEmailAddress,GROUPS\r\nAnn,ann@x.example," G1 ";" G2
        "\r\nBob,bob@x.example,\r\nCy,cy@x.example,nope\r\n"),
     .format = PS, .sep = ',', .n_rows = 3,
     .rows = {{2, "ann@x.example", "Ann", NULL, U, NULL, 3, G1 ";" G2},
              {3, "bob@x.example", "Bob", NULL, U, NULL, 3, NULL}},
     .errors = {{4, BAD_GUID "'nope'"}}},
    {"a bad group id in a multi-line record is reported at its first line",
     IN(PH ",[groups]\na@b.example,,,\"line one\nline two\nline three\",not-a-guid\n"
           "c@d.example,,,,\"" G1 "\n" G2 "x\"\ne@f.example,,,," G2 "\n"),
     .format = PORTAL, .sep = ',', .n_rows = 3,
     .rows = {{7, "e@f.example", NULL, NULL, U, NULL, 5, G2}},
     .errors = {{2, BAD_GUID "'not-a-guid'"}, {5, BAD_GUID "'" G2 "x'"}}},
    {"';' file: only spaces separate group ids, a ';' is part of one",
     IN("version:v1.0;;;;\r\n" PH_SEMI ";[groups]\r\na@b.example;;;;" G1 " " G2 "\r\n"
        "c@d.example;;;;\"" G1 ";" G2 "\"\r\ne@f.example;;;;\"" G2 "\"\r\n"),
     .format = PORTAL, .sep = ';', .n_rows = 3,
     .rows = {{3, "a@b.example", NULL, NULL, U, NULL, 5, G1 " " G2},
              {5, "e@f.example", NULL, NULL, U, NULL, 5, G2}},
     .errors = {{4, BAD_GUID "'" G1 ";7c9e6679-7425-40de-944b...'"}}},
    {"a hostile groups cell is escaped and cut in the message",
     IN(PH ",[groups]\na@b.example,,,,\"\x1b[31m\xe2\x80\xae" X50 X50 "\"\n"), .format = PORTAL,
     .sep = ',', .n_rows = 1,
     .errors = {{2, BAD_GUID "'\\e[31m\\u202e" X10 X10 X10 X10 "xxxxxxxx...'"}}},
    {"bad email and bad groups: both reported at the row's line", IN(PH ",[groups]\nbad,,,,xyz\n"),
     .format = PORTAL, .sep = ',', .n_rows = 1,
     .errors = {{2, "invalid email 'bad'"}, {2, BAD_GUID "'xyz'"}}},
    {"duplicate [groups] column",
     IN("Email [inviteeEmail],Url [inviteRedirectURL],G [groups],Also [Groups]\n"
        "a@b.example,," G1 "," G2 "\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{2, "a@b.example", NULL, NULL, U, NULL, 4, G1}},
     .errors = {{1, "duplicate column [groups]"}}},
    {"a row that only has an empty quoted cell is blank", IN(PH "\n\"\"\n\"\",\"\"\na@b.example\n"),
     .format = PORTAL, .sep = ',', .n_rows = -1,
     .rows = {{4, "a@b.example", NULL, NULL, U, NULL, 1, NULL}}},
};

static bool has_substr(const char *s, const char *sub)
{
	return s && sub && strstr(s, sub) != NULL;
}

static void check_case(const struct tcase *tc)
{
	struct csv_limits limits = {tc->max_rows, tc->max_record_bytes};
	struct result whole, split;
	size_t n_exp_rows = 0, n_exp_errors = 0;

	while (n_exp_rows < 8 && tc->rows[n_exp_rows].line)
		n_exp_rows++;
	while (n_exp_errors < 8 && tc->errors[n_exp_errors].line)
		n_exp_errors++;

	parse(tc->input, tc->len, 0, &limits, &whole);
	is_int(whole.feed_rc, 0, "%s: feed returns 0", tc->name);
	is_int(whole.finish_rc, 0, "%s: finish returns 0", tc->name);
	is_int(whole.reader_format, tc->format, "%s: format", tc->name);
	if (tc->format != CSV_FORMAT_UNKNOWN) {
		is_int(whole.n_headers, 1, "%s: one header", tc->name);
		is_int(whole.sep, tc->sep, "%s: separator", tc->name);
	} else {
		is_int(whole.n_headers, 0, "%s: no header", tc->name);
	}
	is_int(whole.reader_rows, tc->n_rows < 0 ? (long)n_exp_rows : tc->n_rows,
	       "%s: csv_reader_rows", tc->name);
	is_int(whole.reader_errors, whole.n_errors, "%s: csv_reader_errors", tc->name);

	if (!ok(whole.n_rows == n_exp_rows, "%s: %zu valid rows", tc->name, n_exp_rows))
		tap_diag("got %zu; log:\n%s", whole.n_rows, whole.log.data);
	for (size_t i = 0; i < n_exp_rows && i < whole.n_rows; i++) {
		const struct exp_row *e = &tc->rows[i];
		const struct seen_row *g = &whole.rows[i];
		is_int(g->line, e->line, "%s: row %zu line", tc->name, i);
		is_str(g->email, e->email, "%s: row %zu email", tc->name, i);
		is_str(g->name, e->name, "%s: row %zu display name", tc->name, i);
		is_str(g->redirect, e->redirect, "%s: row %zu redirect", tc->name, i);
		is_int(g->send, e->send, "%s: row %zu send flag", tc->name, i);
		is_str(g->message, e->message, "%s: row %zu message", tc->name, i);
		is_str(g->groups, e->groups, "%s: row %zu groups", tc->name, i);
		is_int(g->separator, tc->sep, "%s: row %zu separator", tc->name, i);
		if (e->n_fields)
			is_int(g->n_fields, e->n_fields, "%s: row %zu fields", tc->name, i);
	}
	if (!ok(whole.n_errors == n_exp_errors, "%s: %zu errors", tc->name, n_exp_errors))
		tap_diag("got %zu; log:\n%s", whole.n_errors, whole.log.data);
	for (size_t i = 0; i < n_exp_errors && i < whole.n_errors; i++) {
		const struct exp_error *e = &tc->errors[i];
		const struct seen_error *g = &whole.errors[i];
		is_int(g->line, e->line, "%s: error %zu line", tc->name, i);
		if (!ok(has_substr(g->message, e->substr), "%s: error %zu has '%s'", tc->name, i,
		        e->substr))
			tap_diag("got '%s'", g->message);
	}

	static const size_t chunks[] = {1, 2, 3, 7, 64};
	for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
		parse(tc->input, tc->len, chunks[k], &limits, &split);
		if (!ok(strcmp(whole.log.data, split.log.data) == 0,
		        "%s: same result fed in %zu-byte chunks", tc->name, chunks[k]))
			tap_diag("whole:\n%s# split:\n%s", whole.log.data, split.log.data);
		result_free(&split);
	}
	result_free(&whole);
}

/* ---- checks of single functions ---- */

static void test_email_check(void)
{
	static const struct {
		const char *email;
		const char *why; /* NULL: valid */
	} t[] = {
	    {"someone@something.com", NULL},
	    {"first.last@sub.example.co.uk", NULL},
	    {"first-last@example.com", NULL},
	    {"_under_@example.com", NULL},
	    {"o'brien@example.com", NULL},
	    {"a@b-c.example", NULL},
	    {"user@例え.jp", NULL},
	    {"x1@123.example", NULL},
	    {"a@example.123", "the top-level domain is all digits"},
	    {"a@10.0.0.1", "the top-level domain is all digits"},
	    {"a@example.c0m", NULL},
	    {"", "empty"},
	    {"plainaddress", "missing '@'"},
	    {"a@b@c.example", "more than one '@'"},
	    {"@example.com", "nothing before '@'"},
	    {"a@", "nothing after '@'"},
	    {"a@localhost", "domain has no '.'"},
	    {"a+b@example.com", "'+' is not permitted"},
	    {"a~b@example.com", "'~' is not permitted"},
	    {"a!b@example.com", "'!' is not permitted"},
	    {"a#b@example.com", "'#' is not permitted"},
	    {"a%b@example.com", "'%' is not permitted"},
	    {"a/b@example.com", "'/' is not permitted"},
	    {"a\\b@example.com", "'\\' is not permitted"},
	    {"a,b@example.com", "',' is not permitted"},
	    {"a:b@example.com", "':' is not permitted"},
	    {"<a@example.com>", "'<' is not permitted"},
	    {"a b@example.com", "space or control"},
	    {"a\x01@example.com", "space or control"},
	    {".a@example.com", "starts with '.'"},
	    {"a.@example.com", "ends with '.'"},
	    {"-a@example.com", "starts with '-'"},
	    {"a-@example.com", "ends with '-'"},
	    {"a..b@example.com", "two consecutive periods"},
	    {"a@example..com", "empty label"},
	    {"a@.example.com", "empty label"},
	    {"a@example.com.", "empty label"},
	    {"a@-example.com", "starts or ends with '-'"},
	    {"a@example-.com", "starts or ends with '-'"},
	    {"a@exa_mple.com", "invalid character in the domain"},
	    {"a@exa'mple.com", "invalid character in the domain"},
	    {"a@b\xff.example", "invalid UTF-8"},
	    {"a@b.example\u00a0", "Unicode space"},
	    {"a\u200b@b.example", "invisible character"},
	    {"a@b\u3000.example", "Unicode space"},
	    {"\ufeffa@b.example", "invisible character"},
	    {"taro\uff20example.jp", "full-width character"},
	    {"a@b.\uff45xample", "full-width character"},
	    {"a\xc2\x85@b.example", "control character"},
	    {"josé@b.example", NULL},
	    {X50 "xxxxxxxxxxxxxxx@example.com", "user name longer than 64 bytes"},
	    {"a@" X50 X10 "xxxx.com", "domain label longer than 63 bytes"},
	    {X250 "@b.cd", "longer than 254 bytes"},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *why = NULL;
		bool valid = csv_email_check(t[i].email, &why);
		if (!t[i].why) {
			if (!ok(valid, "email '%s' valid", t[i].email))
				tap_diag("why: %s", why);
		} else {
			ok(!valid && has_substr(why, t[i].why), "email '%s' invalid: %s",
			   t[i].email, t[i].why);
		}
	}
	ok(!csv_email_check(NULL, NULL), "NULL email invalid, NULL why accepted");
	/* exactly 64 bytes of user name and 254 bytes in all are fine */
	ok(csv_email_check(X50 "xxxxxxxxxxxxxx@example.com", NULL), "64-byte user name");
	static const char max254[] =
	    X50 "xxxxxxxxxxxxxx@" X50 "xxxxxxxxxxxxx." X50 "xxxxxxxxxxxxx." X50 "xxxxxxxxxxx";
	is_int(strlen(max254), 254, "max254 fixture length");
	ok(csv_email_check(max254, NULL), "254-byte email valid");
	static const char max255[] =
	    X50 "xxxxxxxxxxxxxx@" X50 "xxxxxxxxxxxxx." X50 "xxxxxxxxxxxxx." X50 "xxxxxxxxxxxx";
	ok(!csv_email_check(max255, NULL), "255-byte email invalid");
}

static void test_url_check(void)
{
	static const struct {
		const char *url;
		const char *why;
	} t[] = {
	    {"https://myapplications.microsoft.com", NULL},
	    {"http://example.com/path?q=1#frag", NULL},
	    {"HTTPS://EXAMPLE.COM", NULL},
	    {"https://user:pw@example.com:8443/x", NULL},
	    {"https://[2001:db8::1]:443/", NULL},
	    {"https://例え.jp/パス", NULL},
	    {"", "empty"},
	    {"example.com", "not an absolute"},
	    {"ftp://example.com", "not an absolute"},
	    {"https:/example.com", "not an absolute"},
	    {"https://", "no host"},
	    {"https:///path", "no host"},
	    {"https://:443/", "no host"},
	    {"https://user@/x", "no host"},
	    {"https://[]/", "no host"},
	    {"https://[::1/", "unterminated '['"},
	    {"https://host:port/", "invalid port"},
	    {"https://exa mple.com", "space or control"},
	    {"https://example.com/\t", "space or control"},
	    {"https://example.com/\x7f", "space or control"},
	    {"https://example.com/\xc3", "invalid UTF-8"},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *why = NULL;
		bool valid = csv_url_check(t[i].url, &why);
		if (!t[i].why) {
			if (!ok(valid, "url '%s' valid", t[i].url))
				tap_diag("why: %s", why);
		} else {
			ok(!valid && has_substr(why, t[i].why), "url '%s' invalid: %s", t[i].url,
			   t[i].why);
		}
	}

	struct buf b = BUF_INIT;
	buf_append_str(&b, "https://example.com/");
	while (b.len < CSV_MAX_URL_BYTES)
		buf_append_str(&b, "a");
	ok(csv_url_check(b.data, NULL), "URL of exactly 2048 bytes valid");
	buf_append_str(&b, "a");
	const char *why = NULL;
	ok(!csv_url_check(b.data, &why) && has_substr(why, "longer than 2048"),
	   "2049 bytes invalid");
	buf_finish(&b);
}

static void test_parse_flag(void)
{
	static const struct {
		const char *text;
		int rc;
		bool value;
	} t[] = {
	    {"true", 0, true},   {"TRUE", 0, true},     {"True", 0, true},  {"false", 0, false},
	    {"FaLsE", 0, false}, {"yes", 0, true},      {"YES", 0, true},   {"no", 0, false},
	    {"No", 0, false},    {"1", 0, true},        {"0", 0, false},    {"", -EINVAL, 0},
	    {"y", -EINVAL, 0},   {"truee", -EINVAL, 0}, {"2", -EINVAL, 0},  {" true", -EINVAL, 0},
	    {"10", -EINVAL, 0},  {"tru", -EINVAL, 0},   {"on", -EINVAL, 0}, {"n", -EINVAL, 0},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		bool v = !t[i].value;
		int rc = csv_parse_flag(t[i].text, &v);
		is_int(rc, t[i].rc, "flag '%s' rc", t[i].text);
		if (rc == 0)
			is_int(v, t[i].value, "flag '%s' value", t[i].text);
	}
	bool v;
	is_int(csv_parse_flag(NULL, &v), -EINVAL, "flag NULL");
}

static void test_template(void)
{
	static const char expected[] =
	    "version:v1.0\nEmail address to invite [inviteeEmail] Required,Redirection url "
	    "[inviteRedirectURL] Required,Send invitation message (true or false) [sendEmail],"
	    "Customized invitation message [customizedMessageBody]\nExample:    "
	    "someone@something.com,https://myapplications.microsoft.com,true,Hello! You are "
	    "invited.\n";
	const char *tpl = csv_template();
	struct result res;

	is_str(tpl, expected, "template text");

	parse(tpl, strlen(tpl), 0, NULL, &res);
	is_int(res.n_headers, 1, "template: header recognized");
	is_int(res.format, CSV_FORMAT_PORTAL, "template: portal format");
	is_int(res.n_columns, 4, "template: four columns");
	is_int(res.n_rows, 0, "template: no rows");
	is_int(res.n_errors, 1, "template: one error");
	if (res.n_errors == 1) {
		is_int(res.errors[0].line, 3, "template: no guests at the Example: line");
		ok(has_substr(res.errors[0].message, "no guests in the file"),
		   "template: 'no guests in the file'");
	}
	is_int(res.reader_rows, 0, "template: example row not counted");
	result_free(&res);

	/* replace the example line with a real row */
	struct buf b = BUF_INIT;
	const char *ex = strstr(tpl, "Example:");
	buf_append(&b, tpl, (size_t)(ex - tpl));
	buf_append_str(&b, "guest@partner.example,https://myapplications.microsoft.com,true,"
	                   "Hello! You are invited.\n");
	parse(b.data, b.len, 1, NULL, &res);
	is_int(res.n_errors, 0, "filled template: no errors");
	is_int(res.n_rows, 1, "filled template: one row");
	if (res.n_rows == 1) {
		is_str(res.rows[0].email, "guest@partner.example", "filled template: email");
		is_int(res.rows[0].line, 3, "filled template: line 3");
		is_int(res.rows[0].send, CSV_FLAG_TRUE, "filled template: send flag");
		is_str(res.rows[0].message, "Hello! You are invited.", "filled template: message");
	}
	result_free(&res);
	buf_finish(&b);
}

/* A long message (over the cap) and one just at the cap. */
static void test_message_cap(void)
{
	struct buf b = BUF_INIT;
	struct result res;

	buf_append_str(&b, PH "\na@b.example,,,\"");
	for (size_t i = 0; i < CSV_MAX_MESSAGE_BYTES; i++)
		buf_append_str(&b, i % 100 == 99 ? "\n" : "m");
	buf_append_str(&b, "\"\nc@d.example,,,");
	for (size_t i = 0; i < CSV_MAX_MESSAGE_BYTES + 1; i++)
		buf_append_str(&b, "m");
	buf_append_str(&b, "\ne@f.example\n");
	parse(b.data, b.len, 0, NULL, &res);
	is_int(res.n_rows, 2, "message cap: two valid rows");
	if (res.n_rows == 2) {
		is_int(strlen(res.rows[0].message), CSV_MAX_MESSAGE_BYTES,
		       "message at the cap kept");
		is_int(res.rows[1].line, 2 + CSV_MAX_MESSAGE_BYTES / 100 + 2,
		       "row two lines after a message with 100 newlines");
	}
	is_int(res.n_errors, 1, "message cap: one error");
	if (res.n_errors == 1) {
		is_int(res.errors[0].line, 2 + CSV_MAX_MESSAGE_BYTES / 100 + 1,
		       "message cap: line");
		ok(has_substr(res.errors[0].message, "customized message too long (10001 bytes"),
		   "message cap: text");
	}
	result_free(&res);
	buf_finish(&b);
}

/* Excel's cell limit and the default record cap: every stored row fits a
 * reply frame and a job's results can be opened. */
static void test_cell_cap(void)
{
	struct buf b = BUF_INIT;
	struct result res;

	buf_append_str(&b, PH ",[other]\na@b.example,,,,");
	for (size_t i = 0; i < CSV_MAX_CELL_BYTES; i++)
		buf_append_str(&b, "c");
	buf_append_str(&b, "\nc@d.example,,,,\"");
	for (size_t i = 0; i < CSV_MAX_CELL_BYTES + 1; i++)
		buf_append_str(&b, i % 1000 == 999 ? "\n" : "c");
	buf_append_str(&b, "\"\ne@f.example\n");
	parse(b.data, b.len, 0, NULL, &res);
	is_int(res.n_rows, 2, "cell cap: a cell at the cap and the next row pass");
	is_int(res.reader_rows, 3, "cell cap: the oversized row counts as a row");
	is_int(res.n_errors, 1, "cell cap: one error");
	if (res.n_errors == 1) {
		is_int(res.errors[0].line, 3, "cell cap: at the record's line");
		ok(has_substr(res.errors[0].message, "cell 5 longer than 32767 bytes"),
		   "cell cap: names the cell and the limit");
	}
	if (res.n_rows == 2)
		is_int(res.rows[1].line, 3 + (CSV_MAX_CELL_BYTES + 1) / 1000 + 1,
		       "cell cap: line numbers go on after it");
	result_free(&res);

	/* three cells of 30,000 bytes: each under the cell cap, the record over
	 * the default 64 KiB */
	buf_clear(&b);
	buf_append_str(&b, PH ",[x],[y],[z]\na@b.example,,,");
	for (int k = 0; k < 3; k++) {
		buf_append_str(&b, ",");
		for (size_t i = 0; i < 30000; i++)
			buf_append_str(&b, "r");
	}
	buf_append_str(&b, "\nc@d.example\n");
	parse(b.data, b.len, 4096, NULL, &res);
	is_int(CSV_DEFAULT_MAX_RECORD_BYTES, 65536, "default record cap is 64 KiB");
	is_int(res.n_rows, 1, "record cap: the next row passes");
	is_int(res.n_errors, 1, "record cap: one error");
	if (res.n_errors == 1) {
		is_int(res.errors[0].line, 2, "record cap: at the record's line");
		ok(has_substr(res.errors[0].message, "record too long (more than 65536 bytes)"),
		   "record cap: text");
	}
	result_free(&res);
	buf_finish(&b);
}

/* VALID_GROUPS_MAX ids in a cell pass; one more is a problem at the row's
 * line; a duplicate does not count. */
static void test_groups_cap(void)
{
	struct buf b = BUF_INIT;
	struct result res;

	buf_append_str(&b, "Name,InvitedUserEmailAddress,Groups\n");
	for (unsigned row = 0; row < 3; row++) {
		unsigned n = row == 0 ? VALID_GROUPS_MAX : VALID_GROUPS_MAX + 1;
		buf_printf(&b, "G%u,g%u@x.example,\"", row, row);
		for (unsigned i = 0; i < n; i++) {
			/* row 2: the last id repeats the first */
			unsigned id = row == 2 && i == n - 1 ? 0 : i;
			buf_printf(&b, "%s%08x-0000-4000-8000-%012x", i ? (i % 2 ? " " : ";") : "",
			           id, id);
		}
		buf_append_str(&b, "\"\n");
	}
	parse(b.data, b.len, 0, NULL, &res);
	is_int(res.n_rows, 2, "groups cap: 64 ids, and 64 with a duplicate, pass");
	if (res.n_rows == 2) {
		is_int(res.rows[0].line, 2, "groups cap: 64 ids on line 2");
		is_int(res.rows[1].line, 4, "groups cap: 64 and a duplicate on line 4");
		ok(res.rows[1].groups && strlen(res.rows[1].groups) == 65 * 37 - 1,
		   "groups cap: the cell is passed on whole");
	}
	is_int(res.n_errors, 1, "groups cap: one error");
	if (res.n_errors == 1) {
		is_int(res.errors[0].line, 3, "groups cap: 65 ids at line 3");
		is_str(res.errors[0].message, "invalid groups: more than 64 groups",
		       "groups cap: message");
	}
	result_free(&res);
	buf_finish(&b);
}

static void test_language_check(void)
{
	static const char *const good[] = {"en", "en-US", "ja-JP", "zh-Hans-CN", "es-419"};
	static const char *const bad[] = {"", "e", "en_US", "en US", "en-\x1b[31m",
	                                  "abcdefghijklmnopqrstu", "fr\n"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ok(csv_language_check(good[i]), "language '%s' accepted", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(!csv_language_check(bad[i]), "language #%zu refused", i);
}

static int abort_header(void *userdata, enum csv_format format, char separator, size_t n_columns,
                        const char *const *columns)
{
	return -ECANCELED;
}

static void test_callbacks(void)
{
	static const char input[] = PH "\na@b.example\nc@d.example\n";
	struct csv_reader *r = NULL;
	struct result res;

	/* on_row aborting: feed returns the value, and keeps returning it */
	memset(&res, 0, sizeof(res));
	buf_init(&res.log);
	res.abort_on_row = -EINTR;
	is_int(csv_reader_create(&r, NULL, &callbacks, &res), 0, "create");
	is_int(csv_reader_feed(r, input, sizeof(input) - 1), -EINTR, "on_row abort from feed");
	is_int(res.n_rows, 1, "no row after the abort");
	is_int(csv_reader_feed(r, "x", 1), -EINTR, "feed after abort");
	is_int(csv_reader_finish(r), -EINTR, "finish after abort");
	csv_reader_destroy(r);
	result_free(&res);

	/* on_header aborting at finish (no final newline) */
	struct csv_callbacks cb = {.on_header = abort_header};
	is_int(csv_reader_create(&r, NULL, &cb, NULL), 0, "create");
	is_int(csv_reader_feed(r, PH, strlen(PH)), 0, "header without newline buffered");
	is_int(csv_reader_finish(r), -ECANCELED, "on_header abort from finish");
	csv_reader_destroy(r);

	/* no callbacks at all */
	struct csv_callbacks none = {0};
	is_int(csv_reader_create(&r, NULL, &none, NULL), 0, "create without callbacks");
	is_int(csv_reader_feed(r, input, sizeof(input) - 1), 0, "feed without callbacks");
	is_int(csv_reader_feed(r, "bad\n", 4), 0, "feed a bad row without callbacks");
	is_int(csv_reader_finish(r), 0, "finish without callbacks");
	is_int(csv_reader_rows(r), 3, "rows counted without callbacks");
	is_int(csv_reader_errors(r), 1, "errors counted without callbacks");
	is_int(csv_reader_finish(r), 0, "second finish is harmless");
	csv_reader_destroy(r);

	csv_reader_destroy(NULL);
	ok(1, "destroy(NULL)");

	/* max_rows: feeds after the stop are ignored, finish returns 0 */
	struct csv_limits lim = {.max_rows = 1};
	memset(&res, 0, sizeof(res));
	buf_init(&res.log);
	is_int(csv_reader_create(&r, &lim, &callbacks, &res), 0, "create");
	is_int(csv_reader_feed(r, input, sizeof(input) - 1), 0, "feed past max_rows");
	is_int(csv_reader_feed(r, "\"open\n", 6), 0, "feed after the stop");
	is_int(csv_reader_finish(r), 0, "finish after the stop");
	is_int(res.n_errors, 1, "only the max_rows error");
	is_int(csv_reader_rows(r), 1, "rows stop at max_rows");
	csv_reader_destroy(r);
	result_free(&res);
}

/* ---- fixtures ---- */

static char *read_file(const char *dir, const char *name, size_t *ret_len)
{
	struct buf path = BUF_INIT, data = BUF_INIT;
	char chunk[4096];
	FILE *f;

	buf_printf(&path, "%s/%s", dir, name);
	f = fopen(path.data, "rb");
	buf_finish(&path);
	if (!f)
		return NULL;
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&data, chunk, n);
	fclose(f);
	buf_append(&data, "", 0);
	*ret_len = data.len;
	return buf_steal(&data);
}

static void test_fixtures(void)
{
	static const struct {
		const char *file;
		enum csv_format format;
		char sep;
		size_t rows, valid, errors;
		unsigned first_error_line;
		const char *first_error;
	} t[] = {
	    {"portal-template.csv", CSV_FORMAT_PORTAL, ',', 3, 3, 0, 0, NULL},
	    {"portal-ja.csv", CSV_FORMAT_PORTAL, ',', 3, 3, 0, 0, NULL},
	    {"powershell.csv", CSV_FORMAT_POWERSHELL, ',', 4, 4, 0, 0, NULL},
	    {"portal-semicolon.csv", CSV_FORMAT_PORTAL, ';', 3, 3, 0, 0, NULL},
	    {"example-portal.csv", CSV_FORMAT_PORTAL, ',', 300, 300, 0, 0, NULL},
	    {"invalid-no-header.csv", CSV_FORMAT_UNKNOWN, 0, 0, 0, 1, 1, "no recognizable header"},
	    {"invalid-missing-redirect.csv", CSV_FORMAT_PORTAL, ',', 2, 2, 1, 2,
	     "missing required column [inviteRedirectURL]"},
	    {"invalid-rows.csv", CSV_FORMAT_PORTAL, ',', 8, 1, 8, 4, "invalid email"},
	    {"invalid-unterminated.csv", CSV_FORMAT_PORTAL, ',', 1, 1, 1, 4, "unterminated quote"},
	};
	const char *dir = getenv("FIXTURES");

	if (!dir)
		dir = "tests/fixtures";
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t len;
		char *data = read_file(dir, t[i].file, &len);
		if (!ok(data != NULL, "fixture %s readable", t[i].file))
			continue;
		struct result whole, split;
		parse(data, len, 0, NULL, &whole);
		is_int(whole.reader_format, t[i].format, "%s: format", t[i].file);
		if (t[i].sep)
			is_int(whole.sep, t[i].sep, "%s: separator", t[i].file);
		is_int(whole.reader_rows, t[i].rows, "%s: rows", t[i].file);
		is_int(whole.n_rows, t[i].valid, "%s: valid rows", t[i].file);
		if (!ok(whole.n_errors == t[i].errors, "%s: %zu errors", t[i].file, t[i].errors))
			tap_diag("log:\n%s", whole.log.data);
		if (t[i].first_error && whole.n_errors > 0) {
			is_int(whole.errors[0].line, t[i].first_error_line, "%s: first error line",
			       t[i].file);
			ok(has_substr(whole.errors[0].message, t[i].first_error),
			   "%s: first error '%s'", t[i].file, t[i].first_error);
		}
		parse(data, len, 1, NULL, &split);
		ok(strcmp(whole.log.data, split.log.data) == 0, "%s: same result byte by byte",
		   t[i].file);
		result_free(&split);
		result_free(&whole);
		free(data);
	}
}

/* example-portal.csv details the demo relies on */
static void test_example_fixture(void)
{
	const char *dir = getenv("FIXTURES");
	struct result res;
	size_t len;

	if (!dir)
		dir = "tests/fixtures";
	char *data = read_file(dir, "example-portal.csv", &len);
	if (!ok(data != NULL, "example-portal.csv readable"))
		return;
	parse(data, len, 0, NULL, &res);
	is_int(res.n_rows, 300, "example-portal: 300 rows");
	is_int(res.n_errors, 0, "example-portal: no errors");
	if (res.n_rows >= 1) {
		is_str(res.rows[0].email, "guest0001@partner-a.example",
		       "example-portal: first row");
		is_int(res.rows[0].line, 3, "example-portal: first row on line 3");
	}
	ok(has_substr(res.log.data, "|0|"), "example-portal: some rows with sendEmail false");
	ok(has_substr(res.log.data, ", "), "example-portal: a message with a comma");
	ok(has_substr(res.log.data, "\""), "example-portal: a message with a quote");
	result_free(&res);
	free(data);
}

/* Not a benchmark: a smoke figure for 100,000 rows (see docs/performance.md). */
static void test_speed(void)
{
	struct buf b = BUF_INIT;
	struct result res;

	buf_append_str(&b, "version:v1.0\n" PH "\n");
	for (unsigned i = 1; i <= 100000; i++)
		buf_printf(&b, "guest%06u@partner-%c.example,https://myapps.example/%u,%s,%s\n", i,
		           'a' + (char)(i % 5), i, i % 3 ? "true" : "false",
		           i % 7 ? "" : "\"Hello, \"\"friend\"\"\"");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	parse(b.data, b.len, 65536, NULL, &res);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	is_int(res.n_rows, 100000, "100,000 rows parsed");
	is_int(res.n_errors, 0, "100,000 rows: no errors");
	tap_diag("100,000 rows (%zu bytes, transcript included) in %.1f ms", b.len, ms);
	result_free(&res);
	buf_finish(&b);
}

int main(void)
{
	tap_plan_none();
	tap_diag("%zu table cases", sizeof(cases) / sizeof(cases[0]));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i]);
	test_email_check();
	test_url_check();
	test_parse_flag();
	test_template();
	test_message_cap();
	test_cell_cap();
	test_groups_cap();
	test_language_check();
	test_callbacks();
	test_fixtures();
	test_example_fixture();
	test_speed();
	return tap_done();
}
