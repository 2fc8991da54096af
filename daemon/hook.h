/* SPDX-License-Identifier: MIT */
/*
 * hook: the completion command ([daemon] on_complete in invited.conf). When a
 * job ends, the command runs once, spawned on the loop (uv_spawn, never
 * through a shell), with the job's id, name, state and counts in a clean
 * environment (INVITED_JOB_*, PATH; nothing of the daemon's own: no
 * CREDENTIALS_DIRECTORY, no secret). Its stdin is /dev/null, its stdout and
 * stderr go to the daemon's stderr (the journal). The daemon does not wait
 * for it: it is reaped when it exits, and a failure is logged.
 */
#pragma once

#include <stdint.h>
#include <uv.h>

/* At most this many commands run at once; a job ending beyond that gets
 * no command (and an error in the log) rather than an unbounded queue. */
#define HOOK_MAX_RUNNING 32
/* Caps of split_command: words and bytes of a command line. */
#define HOOK_MAX_ARGS 64
#define HOOK_MAX_COMMAND_BYTES 4096

struct hook;

/* What the command is told about the job (all borrowed). */
struct hook_job {
	int64_t id;
	const char *name; /* NULL: INVITED_JOB_NAME is empty */
	const char *state;
	int64_t total, succeeded, failed, cancelled;
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

/* argv: borrowed, must outlive the hook. *ret owned by the caller. 0 or -ENOMEM. */
int hook_create(uv_loop_t *loop, char *const *argv, struct hook **ret);
/* Stop watching commands still running (they go on, unreaped by us) and free
 * the hook once their handles are closed. Accepts NULL. */
void hook_destroy(struct hook *h);
/* Run the command for job (borrowed, copied into the environment). Logs
 * why when it cannot. 0, or a negative errno. */
int hook_run(struct hook *h, const struct hook_job *job);
/* Commands started / still running since hook_create, for stats and tests. */
unsigned hook_running(const struct hook *h);
