/* SPDX-License-Identifier: MIT */
/* hook: on_complete's command line split into argv once, without a shell. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hook.h"
#include "tap.h"

static void test_split_good(void)
{
	static const struct {
		const char *cmd;
		const char *want[6];
	} cases[] = {
		{"/usr/bin/notify", {"/usr/bin/notify"}},
		{"  /bin/echo\ta  b ", {"/bin/echo", "a", "b"}},
		{"/bin/x 'two words' \"and \\\"more\\\"\"", {"/bin/x", "two words", "and \"more\""}},
		{"/bin/x '' \"\"", {"/bin/x", "", ""}},
		{"/bin/x a\\ b", {"/bin/x", "a b"}},
		{"/bin/x $HOME;rm `id` *", {"/bin/x", "$HOME;rm", "`id`", "*"}},
		{"/bin/x 'it'\\''s'", {"/bin/x", "it's"}},
		{"/bin/x \"back\\\\slash\" 'no\\escape'", {"/bin/x", "back\\slash", "no\\escape"}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char **argv = NULL;
		const char *why = NULL;
		int r = hook_split_command(cases[i].cmd, &argv, &why);
		is_int(r, 0, "split [%s]", cases[i].cmd);
		if (r < 0)
			continue;
		size_t n = 0;
		while (argv[n])
			n++;
		size_t want_n = 0;
		while (want_n < 6 && cases[i].want[want_n])
			want_n++;
		is_int(n, want_n, "  %zu words", want_n);
		for (size_t k = 0; k < n && k < want_n; k++)
			is_str(argv[k], cases[i].want[k], "  word %zu", k);
		hook_argv_free(argv);
	}
}

static void test_split_bad(void)
{
	static const char *const bad[] = {
		"", "   ", "notify-send done", "./x", "/bin/x 'open", "/bin/x \"open", "/bin/x \\",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char **argv = NULL;
		const char *why = NULL;
		int r = hook_split_command(bad[i], &argv, &why);
		is_int(r, -EINVAL, "refused [%s]", bad[i]);
		ok(why && *why, "  with a reason (%s)", why ? why : "none");
		ok(argv == NULL, "  and no argv");
	}
	/* caps: too many words, too long */
	char many[HOOK_MAX_ARGS * 3 + 16];
	strcpy(many, "/bin/x");
	for (int i = 0; i < HOOK_MAX_ARGS; i++)
		strcat(many, " a");
	char **argv = NULL;
	const char *why = NULL;
	is_int(hook_split_command(many, &argv, &why), -EINVAL, "more than %d words refused",
	       HOOK_MAX_ARGS);
	char *longcmd = malloc(HOOK_MAX_COMMAND_BYTES + 8);
	memset(longcmd, 'a', HOOK_MAX_COMMAND_BYTES + 7);
	longcmd[0] = '/';
	longcmd[HOOK_MAX_COMMAND_BYTES + 7] = '\0';
	is_int(hook_split_command(longcmd, &argv, &why), -EINVAL, "a command over %d bytes refused",
	       HOOK_MAX_COMMAND_BYTES);
	free(longcmd);
	hook_argv_free(NULL);
	ok(1, "hook_argv_free(NULL) is fine");
}

/* The event's strings, NUL-separated, in order. */
static size_t event_strings(const struct buf *b, const char **out, size_t max)
{
	size_t n = 0;
	for (size_t off = 0; off < b->len && n < max; n++) {
		out[n] = b->data + off;
		off += strlen(b->data + off) + 1;
	}
	return n;
}

static void test_event(void)
{
	/* SPEC §9: job data reaches the command only as escaped values */
	struct hook_job j = {
		.id = 7,
		.name = "Q4\x1b[2J\rfake\nline\xc2\x9b\xe2\x80\xae$(id)",
		.state = "blocked",
		.total = 3,
		.succeeded = 1,
		.failed = 1,
		.cancelled = 0,
		.reason = "Invitations are blocked\r\n\x07",
	};
	struct buf b = BUF_INIT;
	is_int(hook_event_format(&j, &b), 0, "an event is formatted");
	const char *s[16];
	size_t n = event_strings(&b, s, 16);
	is_int(n, 8, "eight variables (with INVITED_JOB_REASON)");
	if (n == 8) {
		is_str(s[0], "INVITED_JOB_ID=7", "the id");
		is_str(s[1], "INVITED_JOB_NAME=Q4\\e[2J\\rfake\\nline\\u009b\\u202e$(id)",
		       "ESC, CR, LF, C1 and a bidi override arrive escaped; shell syntax as text");
		is_str(s[2], "INVITED_JOB_STATE=blocked", "the state");
		is_str(s[3], "INVITED_JOB_TOTAL=3", "total");
		is_str(s[6], "INVITED_JOB_CANCELLED=0", "cancelled");
		is_str(s[7], "INVITED_JOB_REASON=Invitations are blocked\\r\\n\\x07",
		       "the reason escaped too");
	}
	bool clean = true;
	for (size_t i = 0; i < b.len; i++)
		if (b.data[i] != '\0' && ((unsigned char)b.data[i] < 0x20 || b.data[i] == 0x7f))
			clean = false;
	ok(clean, "no control byte in the whole event");
	buf_finish(&b);

	struct hook_job none = {.id = 1, .state = "completed"};
	buf_init(&b);
	is_int(hook_event_format(&none, &b), 0, "a job without a name");
	n = event_strings(&b, s, 16);
	is_int(n, 7, "seven variables without a reason");
	if (n >= 2)
		is_str(s[1], "INVITED_JOB_NAME=", "an empty name");
	buf_finish(&b);

	char *big = malloc(HOOK_MAX_EVENT_BYTES + 2);
	memset(big, 'x', HOOK_MAX_EVENT_BYTES + 1);
	big[HOOK_MAX_EVENT_BYTES + 1] = '\0';
	none.name = big;
	buf_init(&b);
	is_int(hook_event_format(&none, &b), -EMSGSIZE, "an event past %u bytes is refused",
	       HOOK_MAX_EVENT_BYTES);
	buf_finish(&b);
	free(big);
}

static void test_isolation_check(void)
{
	char *text = NULL;
	if (geteuid() != 0) {
		int r = hook_isolation_check("nobody", &text);
		ok(text && *text, "not root: says how or why not (%d): %s", r, text ? text : "");
		free(text);
		return;
	}
	is_int(hook_isolation_check("nobody", &text), 0, "root: the command can run as nobody");
	ok(text && strstr(text, "as user nobody (uid "), "  and says so: %s", text ? text : "");
	free(text);
	text = NULL;
	is_int(hook_isolation_check("root", &text), -EPERM, "hook_user root is refused");
	ok(text && strstr(text, "is root"), "  with the reason: %s", text ? text : "");
	free(text);
	text = NULL;
	is_int(hook_isolation_check("no-such-user-xyz", &text), -ENOENT,
	       "a hook_user that does not exist is refused");
	ok(text && strstr(text, "does not exist"), "  with the reason: %s", text ? text : "");
	free(text);
}

int main(void)
{
	tap_plan_none();
	test_split_good();
	test_split_bad();
	test_event();
	test_isolation_check();
	return tap_done();
}
