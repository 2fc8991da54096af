/* SPDX-License-Identifier: MIT */
#include "hook.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/landlock.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "vis.h"

/* The only inherited-looking variable a command gets: a sane search path. */
#define HOOK_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define HOOK_ENV_MAX 16 /* PATH, the INVITED_JOB_* (at most 9), NULL */
/* Landlock rules the command's domain may get (one per directory entry
 * beside the hidden paths' ancestors); past that, entries stay denied. */
#define HOOK_MAX_RULES 65536

/* Rights of newer Landlock ABIs, for older kernel headers. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#define HOOK_SCOPE_SIGNAL (1ULL << 1) /* LANDLOCK_SCOPE_SIGNAL, ABI 6 */

/* struct landlock_ruleset_attr as of ABI 6; older kernels get a prefix */
struct ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

/* The report of one event, helper to daemon. */
struct report {
	int64_t job_id;
	int32_t started; /* 0: the command was not run (logged by the helper) */
	int32_t status;  /* exit status, or -signal */
};

struct hook {
	uv_loop_t *loop;
	uv_poll_t *poll; /* on the helper's socket; NULL once it is gone */
	int fd;
	const char *argv0;
	unsigned running;
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

/* ---- the event ---- */

static int event_add(struct buf *out, const char *key, const char *value)
{
	char *v = vis_strdup(value ? value : "", 0);
	if (!v)
		return -ENOMEM;
	int r = buf_printf(out, "INVITED_JOB_%s=%s", key, v);
	free(v);
	if (r == 0)
		r = buf_append(out, "", 1);
	return r;
}

static int event_add_int(struct buf *out, const char *key, int64_t n)
{
	int r = buf_printf(out, "INVITED_JOB_%s=%" PRId64, key, n);
	return r == 0 ? buf_append(out, "", 1) : r;
}

int hook_event_format(const struct hook_job *job, struct buf *out)
{
	int r = event_add_int(out, "ID", job->id);
	if (r == 0)
		r = event_add(out, "NAME", job->name);
	if (r == 0)
		r = event_add(out, "STATE", job->state);
	if (r == 0)
		r = event_add_int(out, "TOTAL", job->total);
	if (r == 0)
		r = event_add_int(out, "SUCCEEDED", job->succeeded);
	if (r == 0)
		r = event_add_int(out, "FAILED", job->failed);
	if (r == 0)
		r = event_add_int(out, "CANCELLED", job->cancelled);
	if (r == 0 && job->reason)
		r = event_add(out, "REASON", job->reason);
	if (r == 0 && out->len > HOOK_MAX_EVENT_BYTES)
		r = -EMSGSIZE;
	return r;
}

/* ---- isolation: Landlock ---- */

static int landlock_abi(void)
{
#ifdef SYS_landlock_create_ruleset
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return abi < 0 ? -errno : (int)abi;
#else
	return -ENOSYS;
#endif
}

static uint64_t fs_rights(int abi)
{
	uint64_t r = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
		     LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
		     LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
		     LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
		     LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
		     LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		     LANDLOCK_ACCESS_FS_MAKE_SYM;
	if (abi >= 2)
		r |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		r |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		r |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return r;
}

/* the rights that apply to a file that is not a directory */
#define FILE_RIGHTS                                                                       \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                      \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |                      \
	 LANDLOCK_ACCESS_FS_IOCTL_DEV)

struct hide_set {
	char *path[HOOK_MAX_HIDE]; /* canonical, owned */
	size_t n;
	int ruleset;
	uint64_t rights;
	unsigned rules;
};

static int add_rule(struct hide_set *hs, int fd, uint64_t allowed)
{
	struct landlock_path_beneath_attr pb = {.allowed_access = allowed, .parent_fd = fd};
	if (hs->rules >= HOOK_MAX_RULES)
		return 0; /* fail closed: the entry stays denied */
	if (syscall(SYS_landlock_add_rule, hs->ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
		return -errno;
	hs->rules++;
	return 0;
}

/* Allow every entry of dir (a canonical directory path) but the hidden
 * paths, going down into the entries that lead to one. */
static int allow_beside(struct hide_set *hs, const char *dir, unsigned depth)
{
	int r = 0;
	DIR *d = NULL;
	struct buf path = BUF_INIT;
	if (depth > 64)
		return -ELOOP;
	d = opendir(dir);
	if (!d)
		return 0; /* unreadable: nothing of it is allowed */
	size_t dlen = strlen(dir);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		buf_clear(&path);
		if (buf_printf(&path, "%s%s%s", dir, dlen && dir[dlen - 1] == '/' ? "" : "/",
			       e->d_name) < 0) {
			r = -ENOMEM;
			goto out;
		}
		bool hidden = false, ancestor = false;
		for (size_t i = 0; i < hs->n; i++) {
			const char *h = hs->path[i];
			if (strcmp(h, path.data) == 0)
				hidden = true;
			else if (strncmp(h, path.data, path.len) == 0 && h[path.len] == '/')
				ancestor = true;
		}
		if (hidden)
			continue;
		if (ancestor) {
			r = allow_beside(hs, path.data, depth + 1);
			if (r < 0)
				goto out;
			continue;
		}
		/* a symbolic link is not followed: what it points to is checked
		 * where it lies, when it is opened */
		int fd = open(path.data, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct stat st;
		if (fstat(fd, &st) == 0 && !S_ISLNK(st.st_mode))
			r = add_rule(hs, fd, S_ISDIR(st.st_mode) ? hs->rights : hs->rights & FILE_RIGHTS);
		close(fd);
		if (r < 0)
			goto out;
	}
out:
	closedir(d);
	buf_finish(&path);
	return r;
}

static void hide_set_finish(struct hide_set *hs)
{
	for (size_t i = 0; i < hs->n; i++)
		free(hs->path[i]);
	if (hs->ruleset >= 0)
		close(hs->ruleset);
	hs->n = 0;
	hs->ruleset = -1;
}

/*
 * A Landlock ruleset that allows everything but the hidden paths (and only
 * listing on the directories on their way), and keeps the command from
 * signalling processes outside it. *ret_fd: the ruleset. On failure
 * *ret_why: static text.
 */
static int landlock_build(const char *const *hide, int *ret_fd, const char **ret_why)
{
	struct hide_set hs = {.ruleset = -1};
	int r, abi = landlock_abi();
	if (abi < 0) {
		*ret_why = abi == -EOPNOTSUPP ? "Landlock is disabled in this kernel"
			   : abi == -ENOSYS   ? "this kernel has no Landlock"
					      : "landlock_create_ruleset() is not allowed (a seccomp filter?)";
		return abi;
	}
	for (size_t i = 0; hide && hide[i] && hs.n < HOOK_MAX_HIDE; i++) {
		char *p = realpath(hide[i], NULL);
		if (p && strcmp(p, "/") == 0) {
			free(p);
			*ret_why = "cannot hide '/'";
			return -EINVAL;
		}
		if (p)
			hs.path[hs.n++] = p;
	}
	hs.rights = fs_rights(abi);
	struct ruleset_attr attr = {.handled_access_fs = hs.rights};
	size_t size = sizeof(uint64_t);
	if (abi >= 6) {
		attr.scoped = HOOK_SCOPE_SIGNAL;
		size = sizeof(attr);
	}
	hs.ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (hs.ruleset < 0) {
		r = -errno;
		*ret_why = "landlock_create_ruleset() failed";
		goto out;
	}
	int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	r = root < 0 ? -errno : add_rule(&hs, root, LANDLOCK_ACCESS_FS_READ_DIR);
	if (root >= 0)
		close(root);
	if (r == 0)
		r = allow_beside(&hs, "/", 0);
	if (r < 0) {
		*ret_why = "landlock_add_rule() failed";
		goto out;
	}
	*ret_fd = hs.ruleset;
	hs.ruleset = -1;
out:
	hide_set_finish(&hs);
	return r;
}

int hook_isolation_check(const char *user, char **ret_text)
{
	struct buf t = BUF_INIT;
	int r = 0;
	int abi = landlock_abi();
	if (geteuid() == 0) {
		struct passwd *pw = user ? getpwnam(user) : NULL;
		if (!pw) {
			r = -ENOENT;
			buf_printf(&t, "hook_user '%s' does not exist: on_complete would not run",
				   user ? user : "");
			goto out;
		}
		if (pw->pw_uid == 0) {
			r = -EPERM;
			buf_printf(&t, "hook_user '%s' is root: on_complete would run with the "
				       "authority of invited; choose an unprivileged user", user);
			goto out;
		}
		buf_printf(&t, "as user %s (uid %u, gid %u)", user, (unsigned)pw->pw_uid,
			   (unsigned)pw->pw_gid);
		if (abi > 0)
			buf_printf(&t, "; Landlock ABI %d hides the credential and the database",
				   abi);
		else
			buf_printf(&t, "; no Landlock (%s): the credential and the database are "
				       "hidden by their owner-only modes",
				   strerror(-abi));
	} else {
		if (abi <= 0) {
			r = abi < 0 ? abi : -ENOSYS;
			buf_printf(&t, "invited is not root, so on_complete would run as its own "
				       "uid, and Landlock is not available to hide the credential "
				       "from it (%s): on_complete would not run",
				   strerror(-r));
			goto out;
		}
		buf_printf(&t, "as invited's own uid %u; Landlock ABI %d hides the credential and "
			       "the database",
			   (unsigned)geteuid(), abi);
	}
out:
	*ret_text = t.data ? buf_steal(&t) : strdup("out of memory");
	buf_finish(&t);
	return r;
}

/* ---- the helper process ---- */

struct helper {
	int sock, sigfd, devnull;
	const struct hook_helper_options *opt;
	bool root;
	uid_t uid;
	gid_t gid;
	const char *isolation_error; /* set: no command runs */
	struct {
		pid_t pid;
		int64_t job_id;
	} child[HOOK_MAX_RUNNING];
};

static void helper_report(struct helper *hp, int64_t job_id, bool started, int status)
{
	struct report rep = {.job_id = job_id, .started = started, .status = status};
	(void)send(hp->sock, &rep, sizeof(rep), MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* In the child, after fork: fails with the stage that failed in *why. */
static int child_setup(struct helper *hp, const char **why)
{
	sigset_t none;
	sigemptyset(&none);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(hp->devnull, 0) < 0 || dup2(2, 1) < 0) {
		*why = "dup2";
		return -errno;
	}
	if (chdir("/") < 0) {
		*why = "chdir";
		return -errno;
	}
	int ruleset = -1;
	int r = landlock_build(hp->opt->hide, &ruleset, why);
	if (r < 0 && !hp->root)
		return r; /* same uid as the daemon: no Landlock, no command */
	if (ruleset >= 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		*why = "prctl(PR_SET_NO_NEW_PRIVS)";
		return -errno;
	}
	if (hp->root) {
		if (setgroups(1, &hp->gid) < 0 || setgid(hp->gid) < 0 || setuid(hp->uid) < 0) {
			*why = "dropping to hook_user";
			return -errno;
		}
		if (setuid(0) == 0) {
			*why = "dropping to hook_user (root came back)";
			return -EPERM;
		}
	}
	if (ruleset >= 0) {
		if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
			*why = "landlock_restrict_self";
			return -errno;
		}
		close(ruleset);
	}
	return 0;
}

static void helper_spawn(struct helper *hp, char *msg, size_t len)
{
	char *env[HOOK_ENV_MAX];
	size_t n = 0;
	int64_t job_id = 0;
	env[n++] = (char *)HOOK_PATH;
	/* the daemon's event: NUL-terminated INVITED_JOB_* strings */
	for (size_t off = 0; off < len;) {
		char *s = msg + off;
		size_t l = strnlen(s, len - off);
		if (l == len - off || n + 1 >= HOOK_ENV_MAX ||
		    strncmp(s, "INVITED_JOB_", 12) != 0 || !strchr(s, '=') ||
		    vis_has_control(s)) {
			log_error("Failed to run on_complete: a malformed event from invited");
			helper_report(hp, job_id, false, 0);
			return;
		}
		if (strncmp(s, "INVITED_JOB_ID=", 15) == 0)
			job_id = strtoll(s + 15, NULL, 10);
		env[n++] = s;
		off += l + 1;
	}
	env[n] = NULL;
	size_t slot = 0;
	while (slot < HOOK_MAX_RUNNING && hp->child[slot].pid)
		slot++;
	if (hp->isolation_error || slot == HOOK_MAX_RUNNING) {
		if (hp->isolation_error)
			log_error("Not running on_complete for job %" PRId64 ": %s", job_id,
				  hp->isolation_error);
		else
			log_error("Failed to run on_complete for job %" PRId64
				  ": %u commands still running",
				  job_id, HOOK_MAX_RUNNING);
		helper_report(hp, job_id, false, 0);
		return;
	}
	/* the child says through this pipe why it could not exec */
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		log_error("Failed to run on_complete for job %" PRId64 ": %s", job_id, strerror(errno));
		helper_report(hp, job_id, false, 0);
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		const char *why = "exec";
		int r = child_setup(hp, &why);
		if (r == 0) {
			execve(hp->opt->argv[0], hp->opt->argv, env);
			r = -errno;
		}
		struct {
			int err;
			char why[120];
		} f = {.err = -r};
		snprintf(f.why, sizeof(f.why), "%s", why);
		(void)!write(p[1], &f, sizeof(f));
		_exit(127);
	}
	close(p[1]);
	if (pid < 0) {
		log_error("Failed to run on_complete for job %" PRId64 ": fork: %s", job_id,
			  strerror(errno));
		close(p[0]);
		helper_report(hp, job_id, false, 0);
		return;
	}
	struct {
		int err;
		char why[120];
	} f;
	ssize_t got;
	do
		got = read(p[0], &f, sizeof(f));
	while (got < 0 && errno == EINTR);
	close(p[0]);
	if (got == (ssize_t)sizeof(f)) {
		f.why[sizeof(f.why) - 1] = '\0';
		log_error("Not running on_complete '%s' for job %" PRId64 ": %s: %s",
			  hp->opt->argv[0], job_id, f.why, strerror(f.err));
		(void)waitpid(pid, NULL, 0);
		helper_report(hp, job_id, false, 0);
		return;
	}
	hp->child[slot].pid = pid;
	hp->child[slot].job_id = job_id;
	log_info("Running on_complete for job %" PRId64 " (pid %d)", job_id, (int)pid);
}

static void helper_reap(struct helper *hp)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		size_t i = 0;
		while (i < HOOK_MAX_RUNNING && hp->child[i].pid != pid)
			i++;
		if (i == HOOK_MAX_RUNNING)
			continue;
		int64_t job_id = hp->child[i].job_id;
		hp->child[i].pid = 0;
		int status = 0;
		if (WIFSIGNALED(st)) {
			status = -WTERMSIG(st);
			log_error("Failed to run on_complete '%s' for job %" PRId64
				  ": killed by signal %d",
				  hp->opt->argv[0], job_id, WTERMSIG(st));
		} else if (WEXITSTATUS(st) != 0) {
			status = WEXITSTATUS(st);
			log_error("Failed to run on_complete '%s' for job %" PRId64
				  ": exit status %d",
				  hp->opt->argv[0], job_id, status);
		} else {
			log_info("on_complete for job %" PRId64 " done", job_id);
		}
		helper_report(hp, job_id, true, status);
	}
}

static _Noreturn void helper_main(int sock, const struct hook_helper_options *opt)
{
	static struct helper hp; /* zeroed */
	char *msg = NULL;
	hp.sock = sock;
	hp.opt = opt;
	hp.root = geteuid() == 0;
	(void)prctl(PR_SET_NAME, "invited-hook", 0, 0, 0);
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	/* the daemon's SIGTERM (systemd signals the whole cgroup) ends the
	 * helper; commands still running go on */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	hp.sigfd = signalfd(-1, &chld, SFD_CLOEXEC);
	hp.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	msg = malloc(HOOK_MAX_EVENT_BYTES + 1);
	if (hp.sigfd < 0 || hp.devnull < 0 || !msg) {
		log_error("The on_complete helper cannot start: %s", strerror(errno));
		_exit(1);
	}
	char *text = NULL;
	if (hook_isolation_check(opt->user, &text) < 0) {
		hp.isolation_error = text; /* kept for the process's life */
		log_error("on_complete cannot be isolated: %s", text);
	} else {
		free(text);
		if (hp.root) {
			struct passwd *pw = getpwnam(opt->user);
			hp.uid = pw->pw_uid;
			hp.gid = pw->pw_gid;
		}
	}
	for (;;) {
		struct pollfd pfd[2] = {{.fd = sock, .events = POLLIN}, {.fd = hp.sigfd, .events = POLLIN}};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents) {
			struct signalfd_siginfo si;
			(void)!read(hp.sigfd, &si, sizeof(si));
			helper_reap(&hp);
		}
		if (pfd[0].revents) {
			ssize_t n = recv(sock, msg, HOOK_MAX_EVENT_BYTES + 1, 0);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0)
				break; /* invited is gone */
			if ((size_t)n > HOOK_MAX_EVENT_BYTES) {
				log_error("Failed to run on_complete: an event larger than %u bytes",
					  HOOK_MAX_EVENT_BYTES);
				helper_report(&hp, 0, false, 0);
				continue;
			}
			helper_spawn(&hp, msg, (size_t)n);
		}
	}
	_exit(0);
}

int hook_helper_start(const struct hook_helper_options *opt, int *ret_fd, pid_t *ret_pid)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	if (pid == 0) {
		/* only stdio and our end: whatever invited was handed (systemd's
		 * listening socket, a test's descriptors) is not the command's */
		int keep = sv[1];
		if (keep != 3) {
			if (dup3(keep, 3, O_CLOEXEC) < 0)
				_exit(1);
			keep = 3;
		}
		for (int fd = 4; fd < 65536; fd++)
			if (fcntl(fd, F_GETFD) >= 0)
				close(fd);
		helper_main(keep, opt);
	}
	close(sv[1]);
	*ret_fd = sv[0];
	*ret_pid = pid;
	return 0;
}

/* ---- the daemon's side ---- */

static void on_poll_closed(uv_handle_t *handle)
{
	free(handle);
}

static void on_helper(uv_poll_t *poll, int status, int events)
{
	struct hook *h = poll->data;
	for (;;) {
		struct report rep;
		ssize_t n = recv(h->fd, &rep, sizeof(rep), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n != (ssize_t)sizeof(rep)) {
			log_error("The on_complete helper has exited: on_complete no longer runs "
				  "until invited is restarted");
			uv_close((uv_handle_t *)h->poll, on_poll_closed);
			h->poll = NULL;
			h->running = 0;
			return;
		}
		if (h->running > 0)
			h->running--;
	}
}

int hook_create(uv_loop_t *loop, int fd, const char *argv0, struct hook **ret)
{
	struct hook *h = calloc(1, sizeof(*h));
	uv_poll_t *p = malloc(sizeof(*p));
	if (!h || !p || uv_poll_init_socket(loop, p, fd) < 0) {
		free(h);
		free(p);
		close(fd);
		return -ENOMEM;
	}
	h->loop = loop;
	h->fd = fd;
	h->argv0 = argv0;
	h->poll = p;
	p->data = h;
	uv_poll_start(p, UV_READABLE | UV_DISCONNECT, on_helper);
	/* the helper's reports do not keep the loop running at shutdown */
	uv_unref((uv_handle_t *)p);
	*ret = h;
	return 0;
}

int hook_run(struct hook *h, const struct hook_job *job)
{
	struct buf ev = BUF_INIT;
	int r;
	if (!h->poll) {
		log_error("Failed to run on_complete for job %" PRId64
			  ": the on_complete helper has exited",
			  job->id);
		return -EPIPE;
	}
	if (h->running >= HOOK_MAX_RUNNING) {
		log_error("Failed to run on_complete for job %" PRId64
			  ": %u commands still running",
			  job->id, h->running);
		return -EAGAIN;
	}
	r = hook_event_format(job, &ev);
	if (r < 0) {
		log_error("Failed to run on_complete for job %" PRId64 ": %s", job->id,
			  strerror(-r));
		goto out;
	}
	if (send(h->fd, ev.data, ev.len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		r = -errno;
		log_error("Failed to run on_complete for job %" PRId64
			  ": cannot reach the on_complete helper: %s",
			  job->id, strerror(errno));
		goto out;
	}
	h->running++;
out:
	buf_finish(&ev);
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
	if (h->poll)
		uv_close((uv_handle_t *)h->poll, on_poll_closed);
	close(h->fd); /* the helper sees the end and exits */
	free(h);
}
