/* SPDX-License-Identifier: MIT */
/* hook: on_complete's command line split into argv once, without a shell. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
	tap_plan_none();
	test_split_good();
	test_split_bad();
	return tap_done();
}
