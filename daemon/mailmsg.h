/* SPDX-License-Identifier: MIT */
/*
 * mailmsg: our own invitation mail (SPEC §8, issue 13), composed, and what
 * an SMTP outcome means. The template is plain UTF-8 text, the subject on
 * its first line, then the body; placeholders are replaced in one pass and
 * nothing else is interpreted. Values are inserted as text: in the subject
 * they cannot break the line, in the message they go into a base64 body
 * and RFC 2047 encoded words, so a display name cannot add a header or a
 * recipient. Pure (no I/O, never logs) but for the Message-ID's random
 * GUID (graph_new_request_id).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct http_response;
struct graph_dir_result;

#define MAILMSG_TEMPLATE_MAX (64u * 1024)  /* bytes of template text */
#define MAILMSG_SUBJECT_MAX 998            /* bytes of a subject (template line, and rendered) */
#define MAILMSG_BODY_MAX (1024u * 1024)    /* bytes of a rendered body */

/* A parsed template: subject line + body, each a list of text and
 * placeholders. */
struct mailmsg_template;

/* Parse a template: text[0..len) (borrowed; UTF-8, a BOM at the start is
 * skipped), the subject on the first line (its CR LF or LF ends it), then
 * the body. Placeholders {display_name} {email} {redeem_url} {message}
 * {inviter} {tenant}; any other "{...}" is text, left as written. 0 and
 * *ret (owned: mailmsg_template_free); or -EINVAL with *ret_why (owned,
 * one line saying what and where) for invalid UTF-8, a NUL, another
 * control character (the subject allows TAB, the body TAB, CR, LF and FF),
 * an empty subject, a subject over MAILMSG_SUBJECT_MAX bytes, or a text
 * over MAILMSG_TEMPLATE_MAX bytes; or -ENOMEM (*ret_why untouched). */
int mailmsg_template_parse(const char *text, size_t len, struct mailmsg_template **ret,
			   char **ret_why);
void mailmsg_template_free(struct mailmsg_template *t); /* NULL ok */

/* The values (borrowed); NULL is "". */
struct mailmsg_values {
	const char *display_name, *email, *redeem_url, *message, *inviter, *tenant;
};

/* Fill the template in, one pass: a value is never scanned for
 * placeholders again. In values, bytes that are not valid UTF-8 become
 * U+FFFD. Subject: CR, LF, the other C0 controls and DEL in values become
 * spaces (it stays one line), cut at a character boundary to
 * MAILMSG_SUBJECT_MAX bytes. Body: values inserted as text (C0 controls
 * but TAB, CR and LF, and DEL, become spaces), then every line end (CR LF,
 * CR, LF) is CR LF. *ret_subject and *ret_body owned. 0, -EMSGSIZE (the
 * body would be over MAILMSG_BODY_MAX) or -ENOMEM. */
int mailmsg_render(const struct mailmsg_template *t, const struct mailmsg_values *v,
		   char **ret_subject, char **ret_body);

/* An RFC 5322 message for SMTP (strings borrowed): Date (now_ms, UTC),
 * From (sender), To (the guest: to_name as RFC 2047 encoded words when it
 * is not plain printable ASCII or is long, as a quoted string otherwise;
 * its control characters are spaces: it can never add a header or a
 * recipient; NULL or blank: the address alone), Subject (RFC 2047
 * B-encoded UTF-8 words, folded; control characters as spaces),
 * Message-ID (<GUID@the sender's domain>), MIME-Version, Content-Type:
 * text/plain; charset=UTF-8, Content-Transfer-Encoding: base64 (the body,
 * its line ends made CR LF and invalid UTF-8 U+FFFD, in 76-character
 * lines); CR LF line ends throughout. *ret (owned) is *ret_len bytes and
 * NUL-terminated. -EINVAL when sender or to_email is not a plain address
 * (local@domain, at most 320 bytes, no space, control character or any of
 * <>()[]\,;:" ), -EMSGSIZE (body over MAILMSG_BODY_MAX), -ENOMEM. */
int mailmsg_smtp_message(const char *sender, const char *to_email, const char *to_name,
			 const char *subject, const char *body, uint64_t now_ms, char **ret,
			 size_t *ret_len);

/* What an SMTP outcome (http_smtp_send's resp) means, into *ret (strings
 * owned, valid UTF-8: graph_dir_result_clear); http_status is the reply
 * code:
 *   2xx, no error                 GRAPH_DIR_OK
 *   534, 535 (auth), 530, 538,
 *   or the login refused          GRAPH_DIR_DENIED (the relay refuses us: stop the mailbox)
 *   other 5xx                     GRAPH_DIR_FAILED (permanent for this mail)
 *   4xx, connection, TLS,
 *   no STARTTLS, timeouts         GRAPH_DIR_TRANSIENT (pause the mailbox)
 * error_code: the enhanced status code when the reply has one (RFC 3463,
 * "5.7.236"), else "SMTP" and the reply code ("SMTP550"), or for a failure
 * without a 4xx/5xx reply "Timeout", "ConnectionRefused", "TLSRequired",
 * "AuthenticationFailed"...; error_message the server's reply (one line)
 * or what went wrong. NULL for OK. 0 or -ENOMEM. */
int mailmsg_smtp_classify(const struct http_response *resp, struct graph_dir_result *ret);
