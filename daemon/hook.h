/* SPDX-License-Identifier: MIT */
/*
 * hook: the completion command ([daemon] on_complete in invited.conf). When a
 * job ends (or becomes blocked), the command runs once, never through a
 * shell, with the job's id, name, state and counts in a clean environment
 * (INVITED_JOB_*, PATH; values escaped with vis(3) rules, common/vis.h).
 *
 * It is not started by the daemon itself but by the hook helper: a small
 * process forked by main() before the credential is read and before any
 * socket, database or curl handle exists, so that what it holds is stdio and
 * one end of a socketpair. The daemon sends it job events over that
 * socketpair; the helper spawns the command and reaps it, and answers with
 * one report per event. The command:
 *   - runs as [daemon] hook_user ("nobody") when invited runs as root;
 *   - when Landlock is there (always required when invited is not root, as
 *     the command then has the daemon's uid), cannot open the credential
 *     file, $CREDENTIALS_DIRECTORY or the database's files: every path is
 *     allowed but those (and only listing on the directories on their way);
 *     it cannot signal or ptrace the daemon (a Landlock domain of its own);
 *   - inherits no descriptor but stdin (/dev/null), stdout and stderr (the
 *     daemon's stderr: the journal).
 * When the isolation cannot be set up the command is not run, and the log
 * says why.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "buf.h"

/* At most this many commands run at once; a job ending beyond that gets
 * no command (and an error in the log) rather than an unbounded queue. */
#define HOOK_MAX_RUNNING 32
/* Caps of split_command: words and bytes of a command line. */
#define HOOK_MAX_ARGS 64
#define HOOK_MAX_COMMAND_BYTES 4096
/* Cap of one event (its environment), daemon to helper. */
#define HOOK_MAX_EVENT_BYTES 16384
/* Paths hidden from the command (hook_helper_options.hide). */
#define HOOK_MAX_HIDE 64 /* the database's 5 files and every tenant's credential file */

struct hook;

/* What the command is told about the job (all borrowed). */
struct hook_job {
	int64_t id;
	const char *name; /* NULL: INVITED_JOB_NAME is empty */
	const char *state;
	int64_t total, succeeded, failed, cancelled;
	const char *reason; /* NULL: no INVITED_JOB_REASON (set for "blocked") */
};

/*
 * Split a command line into words once, at configuration time: words are
 * separated by spaces and tabs; '...' quotes literally, "..." quotes with
 * \" and \\ as escapes, a backslash outside quotes escapes the next
 * character. No variables, globs or other shell syntax. The first word must
 * be an absolute path. On success *ret_argv is a NULL-terminated array owned
 * by the caller (hook_argv_free). On failure -EINVAL with *ret_why set to a
 * static message, or -ENOMEM. Pure: no logging.
 */
int hook_split_command(const char *cmd, char ***ret_argv, const char **ret_why);
/* Frees what hook_split_command returned; accepts NULL. */
void hook_argv_free(char **argv);

/*
 * The event for job: "INVITED_JOB_ID=...\0INVITED_JOB_NAME=...\0..."
 * appended to out, every string value escaped (vis_strdup(s, 0)): no
 * control character, DEL, C1 or bidi override reaches the command. Pure.
 * 0, -ENOMEM, or -EMSGSIZE past HOOK_MAX_EVENT_BYTES.
 */
int hook_event_format(const struct hook_job *job, struct buf *out);

/* What the helper needs, all borrowed; copied by the fork. */
struct hook_helper_options {
	char *const *argv;        /* the command */
	const char *user;         /* hook_user: whom to run it as when root */
	const char *hide[HOOK_MAX_HIDE + 1]; /* NULL-terminated; missing paths are skipped */
};

/*
 * Whether the command can be isolated here, and how, in words for the log
 * and --check-config: *ret_text (owned) is "as user nobody (uid 65534);
 * Landlock ABI 7: ..." or, on failure (-EPERM, -ENOENT, -ENOSYS), why not.
 */
int hook_isolation_check(const char *user, char **ret_text);

/*
 * Fork the helper. Call before anything that must not be inherited exists
 * (the credential, sockets, the database, threads): the child closes every
 * descriptor but 0, 1, 2 and its end of the socketpair, and never returns.
 * *ret_fd: the daemon's end (close-on-exec), for hook_create. 0 or a
 * negative errno.
 */
int hook_helper_start(const struct hook_helper_options *opt, int *ret_fd, pid_t *ret_pid);

/* fd: the helper's socket (owned from now on). argv0: borrowed, for
 * messages. *ret owned by the caller. 0 or -ENOMEM. */
int hook_create(uv_loop_t *loop, int fd, const char *argv0, struct hook **ret);
/* Close the socket (the helper exits; commands still running go on) and
 * free the hook once its handle is closed. Accepts NULL. */
void hook_destroy(struct hook *h);
/* Run the command for job (borrowed, copied into the event). Logs why when
 * it cannot. 0, or a negative errno. */
int hook_run(struct hook *h, const struct hook_job *job);
/* Events sent whose command has not ended yet, for stats and tests. */
unsigned hook_running(const struct hook *h);
