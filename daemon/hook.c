/* SPDX-License-Identifier: MIT */
#include "hook.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

/* The only inherited-looking variable a command gets: a sane search path. */
#define HOOK_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define HOOK_ENV_MAX 9 /* PATH, 7 INVITED_JOB_*, NULL */

struct child {
	uv_process_t proc;
	struct hook *hook;
	int64_t job_id;
	struct child *prev, *next;
};

struct hook {
	uv_loop_t *loop;
	char *const *argv;
	struct child *children; /* running, or closing */
	unsigned running;
	bool destroyed;
};

void hook_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

int hook_split_command(const char *cmd, char ***ret_argv, const char **ret_why)
{
	char **argv = NULL;
	size_t argc = 0;
	struct buf word = BUF_INIT;
	int r = -EINVAL;
	const char *why = NULL;

	if (strlen(cmd) > HOOK_MAX_COMMAND_BYTES) {
		why = "the command is too long";
		goto out;
	}
	argv = calloc(HOOK_MAX_ARGS + 1, sizeof(*argv));
	if (!argv) {
		r = -ENOMEM;
		goto out;
	}
	const char *p = cmd;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (argc == HOOK_MAX_ARGS) {
			why = "the command has too many words";
			goto out;
		}
		buf_clear(&word);
		bool any = false; /* '' is an empty word */
		while (*p && *p != ' ' && *p != '\t') {
			int e = 0;
			if (*p == '\'') {
				const char *end = strchr(p + 1, '\'');
				if (!end) {
					why = "unterminated ' quote";
					goto out;
				}
				e = buf_append(&word, p + 1, (size_t)(end - p - 1));
				p = end + 1;
			} else if (*p == '"') {
				for (p++; *p && *p != '"'; p++) {
					if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
						p++;
					e = e ? e : buf_append(&word, p, 1);
				}
				if (*p != '"') {
					why = "unterminated \" quote";
					goto out;
				}
				p++;
			} else if (*p == '\\') {
				if (p[1] == '\0') {
					why = "a backslash at the end";
					goto out;
				}
				e = buf_append(&word, p + 1, 1);
				p += 2;
			} else {
				e = buf_append(&word, p, 1);
				p++;
			}
			if (e < 0) {
				r = -ENOMEM;
				goto out;
			}
			any = true;
		}
		if (!any)
			continue;
		argv[argc] = strdup(word.data ? word.data : "");
		if (!argv[argc]) {
			r = -ENOMEM;
			goto out;
		}
		argc++;
	}
	if (argc == 0) {
		why = "the command is empty";
		goto out;
	}
	if (argv[0][0] != '/') {
		why = "the command must start with an absolute path (no shell, no $PATH search)";
		goto out;
	}
	*ret_argv = argv;
	argv = NULL;
	r = 0;
out:
	buf_finish(&word);
	hook_argv_free(argv);
	if (r == -EINVAL && ret_why)
		*ret_why = why;
	return r;
}

int hook_create(uv_loop_t *loop, char *const *argv, struct hook **ret)
{
	struct hook *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->loop = loop;
	h->argv = argv;
	*ret = h;
	return 0;
}

static void child_closed(uv_handle_t *handle)
{
	struct child *c = handle->data;
	struct hook *h = c->hook;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->children = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	if (h->destroyed && !h->children)
		free(h);
}

static void child_exited(uv_process_t *proc, int64_t status, int term_signal)
{
	struct child *c = proc->data;
	struct hook *h = c->hook;
	h->running--;
	if (term_signal)
		log_error("Failed to run on_complete '%s' for job %" PRId64 ": killed by signal %d",
			  h->argv[0], c->job_id, term_signal);
	else if (status != 0)
		log_error("Failed to run on_complete '%s' for job %" PRId64 ": exit status %" PRId64,
			  h->argv[0], c->job_id, status);
	else
		log_info("on_complete for job %" PRId64 " done", c->job_id);
	uv_close((uv_handle_t *)proc, child_closed);
}

static int env_add(char **env, size_t *n, struct buf *store, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Formats into store (one buffer per variable, owned by the caller). */
static int env_add(char **env, size_t *n, struct buf *store, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = buf_vprintf(&store[*n], fmt, ap);
	va_end(ap);
	if (r < 0)
		return r;
	env[*n] = store[*n].data;
	(*n)++;
	return 0;
}

int hook_run(struct hook *h, const struct hook_job *job)
{
	struct buf store[HOOK_ENV_MAX];
	char *env[HOOK_ENV_MAX];
	size_t n = 0;
	struct child *c = NULL;
	int r;
	for (size_t i = 0; i < HOOK_ENV_MAX; i++) {
		buf_init(&store[i]);
		env[i] = NULL;
	}
	if (h->running >= HOOK_MAX_RUNNING) {
		log_error("Failed to run on_complete for job %" PRId64
			  ": %u commands still running",
			  job->id, h->running);
		r = -EAGAIN;
		goto out;
	}
	env[n++] = (char *)HOOK_PATH;
	r = env_add(env, &n, store, "INVITED_JOB_ID=%" PRId64, job->id);
	if (r == 0)
		r = env_add(env, &n, store, "INVITED_JOB_NAME=%s", job->name ? job->name : "");
	if (r == 0)
		r = env_add(env, &n, store, "INVITED_JOB_STATE=%s", job->state);
	if (r == 0)
		r = env_add(env, &n, store, "INVITED_JOB_TOTAL=%" PRId64, job->total);
	if (r == 0)
		r = env_add(env, &n, store, "INVITED_JOB_SUCCEEDED=%" PRId64, job->succeeded);
	if (r == 0)
		r = env_add(env, &n, store, "INVITED_JOB_FAILED=%" PRId64, job->failed);
	if (r == 0)
		r = env_add(env, &n, store, "INVITED_JOB_CANCELLED=%" PRId64, job->cancelled);
	c = r == 0 ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		r = -ENOMEM;
		log_error("Failed to run on_complete for job %" PRId64 ": out of memory", job->id);
		goto out;
	}
	uv_stdio_container_t stdio[3] = {
		{.flags = UV_IGNORE},
		{.flags = UV_INHERIT_FD, .data.fd = 2},
		{.flags = UV_INHERIT_FD, .data.fd = 2},
	};
	uv_process_options_t opt = {
		.exit_cb = child_exited,
		.file = h->argv[0],
		.args = (char **)h->argv,
		.env = env,
		.cwd = "/",
		.stdio_count = 3,
		.stdio = stdio,
	};
	c->hook = h;
	c->job_id = job->id;
	c->proc.data = c;
	c->next = h->children;
	if (h->children)
		h->children->prev = c;
	h->children = c;
	r = uv_spawn(h->loop, &c->proc, &opt);
	if (r < 0) {
		log_error("Failed to run on_complete '%s' for job %" PRId64 ": %s", h->argv[0],
			  job->id, uv_strerror(r));
		uv_close((uv_handle_t *)&c->proc, child_closed);
		goto out;
	}
	h->running++;
	log_info("Running on_complete for job %" PRId64 " (pid %d)", job->id, c->proc.pid);
out:
	for (size_t i = 0; i < HOOK_ENV_MAX; i++)
		buf_finish(&store[i]);
	return r;
}

unsigned hook_running(const struct hook *h)
{
	return h ? h->running : 0;
}

void hook_destroy(struct hook *h)
{
	if (!h)
		return;
	h->destroyed = true;
	if (!h->children) {
		free(h);
		return;
	}
	for (struct child *c = h->children; c; c = c->next)
		if (!uv_is_closing((uv_handle_t *)&c->proc))
			uv_close((uv_handle_t *)&c->proc, child_closed);
}
