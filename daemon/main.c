/* SPDX-License-Identifier: MIT */
/*
 * invited: wiring only. Reads the config, opens the store, creates the
 * HTTP engine, the token cache, the tenant sender and the control socket,
 * then runs the loop until SIGTERM/SIGINT.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "build-config.h"
#include "buf.h"
#include "config.h"
#include "credential.h"
#include "crypto.h"
#include "ctl.h"
#include "daemon.h"
#include "hook.h"
#include "http.h"
#include "log.h"
#include "ops.h"
#include "proto.h"
#include "secret.h"
#include "store.h"
#include "tenant.h"
#include "timeutil.h"

#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

static void notify(const char *state)
{
#if HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: invited [-c FILE] [--check-config] [--version]\n"
		   "\n"
		   "Bulk-invite guest users into a Microsoft Entra ID tenant; see invited(8).\n"
		   "\n"
		   "  -c, --config FILE   configuration file (default %s)\n"
		   "      --check-config  print the effective configuration and exit\n"
		   "  -v, --verbose       log at debug level\n"
		   "      --version       print the version and exit\n"
		   "  -h, --help          show this help\n",
		INVITED_DEFAULT_CONFIG);
}

/* The paths the command must not open (hook.h): the credential, wherever it
 * comes from, and the database's files. */
static int start_hook_helper(struct daemon *d, const struct config *c, const char *creds_dir,
			     int *ret_fd)
{
	static const char *const db_suffix[] = {"", "-wal", "-shm", "-journal", "-results"};
	struct buf paths[5];
	struct hook_helper_options o = {.argv = c->on_complete, .user = c->hook_user};
	size_t n = 0;
	int r = 0;
	for (size_t i = 0; i < 5; i++) {
		buf_init(&paths[i]);
		if (buf_printf(&paths[i], "%s%s", c->database, db_suffix[i]) < 0)
			r = -ENOMEM;
		else
			o.hide[n++] = paths[i].data;
	}
	const char *files[4 + 3 * CONFIG_TENANTS_MAX];
	size_t n_files = 0;
	files[n_files++] = c->client_secret_file;
	files[n_files++] = c->certificate_file;
	files[n_files++] = creds_dir;
	for (size_t i = 0; i < c->n_tenants; i++) {
		files[n_files++] = c->tenants[i].client_secret_file;
		files[n_files++] = c->tenants[i].certificate_file;
		files[n_files++] = c->tenants[i].mail.smtp_password_file;
	}
	for (size_t i = 0; i < n_files && r == 0; i++) {
		bool dup = !files[i];
		for (size_t j = 0; j < n && !dup; j++)
			dup = strcmp(o.hide[j], files[i]) == 0;
		if (dup)
			continue;
		if (n == HOOK_MAX_HIDE) {
			/* never run the command with a credential it could read */
			log_error("More than %d credential files and database files to hide from "
				  "on_complete: pass the credentials with systemd's LoadCredential= "
				  "(one directory)",
				  HOOK_MAX_HIDE);
			r = -E2BIG;
			break;
		}
		o.hide[n++] = files[i];
		/* a reload may use only credentials hidden now (reload.c) */
		char **h = realloc(d->hidden, (d->n_hidden + 1) * sizeof(*h));
		if (!h || !(h[d->n_hidden] = strdup(files[i]))) {
			if (h)
				d->hidden = h;
			r = -ENOMEM;
			break;
		}
		d->hidden = h;
		d->n_hidden++;
	}
	pid_t pid;
	if (r == 0)
		r = hook_helper_start(&o, ret_fd, &pid);
	if (r == 0)
		log_debug("on_complete helper started (pid %d)", (int)pid);
	for (size_t i = 0; i < 5; i++)
		buf_finish(&paths[i]);
	return r;
}

struct signals {
	uv_signal_t term, intr, hup;
	uv_timer_t deadline;
	uv_timer_t status;   /* STATUS= for systemctl status */
	uv_timer_t watchdog; /* WATCHDOG=1 while the loop turns */
	uint64_t status_done; /* invitations answered (created + failed) at the last STATUS= */
	uint64_t status_at_ms;
	uv_timer_t checkpoint;
};

#define CHECKPOINT_INTERVAL_MS 2000u

#define PRUNE_INTERVAL_MS (3600u * 1000u)

struct checkpoint_work {
	uv_work_t req;
	char *path;
	int result;
	bool busy;
	uint64_t retention_ms;  /* 0: keep finished jobs */
	uint64_t next_prune_ms; /* mono */
	bool prune;
	unsigned pruned;
};

static struct checkpoint_work ckpt;

static void checkpoint_work(uv_work_t *req)
{
	ckpt.pruned = 0;
	ckpt.result = 0;
	if (ckpt.prune)
		ckpt.result = store_prune(ckpt.path, time_now_ms() - ckpt.retention_ms, &ckpt.pruned);
	int r = store_checkpoint(ckpt.path, NULL);
	if (ckpt.result == 0)
		ckpt.result = r;
}

static void checkpoint_done(uv_work_t *req, int status)
{
	ckpt.busy = false;
	if (ckpt.pruned)
		log_info("Deleted %u jobs that finished more than %llu days ago (retention_days)",
			 ckpt.pruned, (unsigned long long)(ckpt.retention_ms / 86400000u));
	if (ckpt.result < 0 && ckpt.result != -EBUSY)
		log_warning("Failed to checkpoint or prune '%s': %s", ckpt.path,
			    strerror(-ckpt.result));
}

/* The loop's writes and imports grow the WAL; a worker copies it back. */
static void on_checkpoint_timer(uv_timer_t *t)
{
	if (ckpt.busy)
		return;
	ckpt.busy = true;
	ckpt.prune = ckpt.retention_ms && time_mono_ms() >= ckpt.next_prune_ms;
	if (ckpt.prune)
		ckpt.next_prune_ms = time_mono_ms() + PRUNE_INTERVAL_MS;
	if (uv_queue_work(t->loop, &ckpt.req, checkpoint_work, checkpoint_done) < 0)
		ckpt.busy = false;
}

static struct signals sig;

#define STATUS_INTERVAL_MS 5000u

static void on_status(uv_timer_t *t)
{
	struct daemon *d = t->data;
	if (d->n_tenants == 0)
		return;
	uint64_t done = 0;
	for (size_t i = 0; i < d->n_tenants; i++) {
		struct tenant_stats ts;
		tenant_get_stats(d->tenants[i]->tenant, &ts);
		/* invitations, not HTTP requests: one $batch request carries up to 20 */
		done += ts.created + ts.failed;
	}
	uint64_t now = time_mono_ms();
	double rate = 0;
	if (sig.status_at_ms && now > sig.status_at_ms && done >= sig.status_done)
		rate = (double)(done - sig.status_done) * 1000.0 / (double)(now - sig.status_at_ms);
	sig.status_done = done;
	sig.status_at_ms = now;
	char *line = daemon_status_line(d, rate);
#if HAVE_SYSTEMD
	if (line)
		sd_notifyf(0, "STATUS=%s", line);
#endif
	free(line);
}

#if HAVE_SYSTEMD
static void on_watchdog(uv_timer_t *t)
{
	notify("WATCHDOG=1");
}
#endif


static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void finish(struct daemon *d)
{
	uv_timer_stop(&sig.deadline);
	uv_timer_stop(&sig.status);
	uv_timer_stop(&sig.watchdog);
	http_destroy(d->http); /* late requests: their rows stay in flight, resent after restart */
	d->http = NULL;
	daemon_tenants_destroy(d);
	hook_destroy(d->hook);
	d->hook = NULL;
	uv_close((uv_handle_t *)&sig.term, on_handle_closed);
	uv_close((uv_handle_t *)&sig.intr, on_handle_closed);
	uv_close((uv_handle_t *)&sig.hup, on_handle_closed);
	uv_close((uv_handle_t *)&sig.deadline, on_handle_closed);
	uv_close((uv_handle_t *)&sig.status, on_handle_closed);
	uv_close((uv_handle_t *)&sig.watchdog, on_handle_closed);
	uv_close((uv_handle_t *)&sig.checkpoint, on_handle_closed);
	log_info("Stopped");
}

static bool drained;
static size_t drain_left; /* tenants still sending at shutdown */

static void on_deadline(uv_timer_t *t)
{
	if (!drained)
		log_warning("Requests still in flight at the shutdown deadline: their rows are "
			    "sent again after the restart");
	finish(t->data);
}

static void on_drained(void *userdata)
{
	/* called from deep inside the tenant: finish on the next loop turn,
	 * once every tenant is done */
	if (drain_left > 0 && --drain_left > 0)
		return;
	drained = true;
	uv_timer_start(&sig.deadline, on_deadline, 0, 0);
}

static void shutdown_daemon(struct daemon *d)
{
	if (d->stopping)
		return;
	d->stopping = true;
	notify("STOPPING=1");
	log_info("Stopping: no new requests; waiting for requests in flight");
	ctl_destroy(d->ctl);
	d->ctl = NULL;
	sig.deadline.data = d;
	uint64_t longest = d->config.request_timeout_ms;
	for (size_t i = 0; i < d->n_tenants; i++)
		if (d->tenants[i]->conf.request_timeout_ms > longest)
			longest = d->tenants[i]->conf.request_timeout_ms;
	uv_timer_start(&sig.deadline, on_deadline, longest + 1000, 0);
	drain_left = d->n_tenants;
	for (size_t i = 0; i < d->n_tenants; i++)
		tenant_drain(d->tenants[i]->tenant, on_drained, d);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;
	if (signum == SIGHUP && d->stopping) {
		log_notice("SIGHUP while stopping: not reloading");
		return;
	}
	if (signum == SIGHUP) {
		char *message = NULL;
		notify("RELOADING=1");
		daemon_reload(d, -1, "SIGHUP", &message);
		free(message);
		notify("READY=1");
		on_status(&sig.status);
		return;
	}
	shutdown_daemon(d);
}

static void on_job_done(void *userdata, int64_t job_id)
{
	ops_job_done(userdata, job_id);
}

static int listen_fd_from_systemd(void)
{
#if HAVE_SYSTEMD
	int n = sd_listen_fds(1);
	if (n == 1)
		return SD_LISTEN_FDS_START;
	if (n > 1)
		log_warning("Got %d sockets from systemd; using the first", n);
	if (n >= 1)
		return SD_LISTEN_FDS_START;
#endif
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'C'},
		{"verbose", no_argument, NULL, 'v'},      {"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},         {0},
	};
	/* SPEC §9: the daemon's files (database, WAL, shm, result journal,
	 * spool) are 0600 whatever umask it was started with; the control
	 * socket's mode is set explicitly (ctl.c) */
	umask(0077);
	/* before any library allocates: freed copies of the secret and the
	 * token are wiped (secret.h) */
	secret_allocators_install();
	/* 0, 1 and 2 are open, so that no socket or file of ours lands on them */
	for (int fd = open("/dev/null", O_RDWR | O_CLOEXEC); fd >= 0;
	     fd = open("/dev/null", O_RDWR | O_CLOEXEC)) {
		if (fd > 2) {
			close(fd);
			break;
		}
		(void)fcntl(fd, F_SETFD, 0);
	}
	const char *config_path = INVITED_DEFAULT_CONFIG;
	bool explicit_config = false, check_only = false, verbose = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "c:vh", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			explicit_config = true;
			break;
		case 'C':
			check_only = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'V':
			printf("invited %s\n", INVITED_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "invited: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	log_init("invited", verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	signal(SIGPIPE, SIG_IGN);

	struct daemon d = {0};
	struct credential *creds = NULL;
	size_t n_creds = 0;
	char *error = NULL, *creds_dir = NULL;
	int exit_code = EXIT_CONFIG, r;

	/* Nothing secret lives in the environment, but the credentials'
	 * directory is nobody else's business: children (on_complete) do not
	 * inherit it. Core dumps are off: the process holds the credential
	 * (secret memory is MADV_DONTDUMP as well, for when they are on). */
	if (getenv("CREDENTIALS_DIRECTORY")) {
		creds_dir = strdup(getenv("CREDENTIALS_DIRECTORY"));
		unsetenv("CREDENTIALS_DIRECTORY");
		if (!creds_dir)
			return EXIT_TEMPFAIL;
	}
#ifndef __SANITIZE_ADDRESS__ /* LeakSanitizer needs to ptrace itself */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
	d.creds_dir = creds_dir; /* reload reads credentials again from there */
	d.config_path = config_path;
	d.config_required = explicit_config;

	if (config_init(&d.config) < 0)
		return EXIT_TEMPFAIL;
	r = config_load(&d.config, config_path, explicit_config, &error);
	if (r == 0)
		r = config_check(&d.config, &error);
	if (r < 0) {
		/* at a terminal plain words; at start a log line (its <N>
		 * prefix under the journal) */
		if (check_only)
			fprintf(stderr, "invited: %s\n", error ? error : strerror(-r));
		else
			log_error("%s", error ? error : strerror(-r));
		goto out;
	}
	char *warning = config_warning(&d.config);
	char *isolation = NULL;
	int isolated = d.config.on_complete ? hook_isolation_check(d.config.hook_user, &isolation) : 0;
	if (check_only) {
		if (warning)
			fprintf(stderr, "invited: warning: %s\n", warning);
		if (isolated < 0)
			fprintf(stderr, "invited: warning: on_complete: %s\n", isolation);
	} else {
		if (warning)
			log_warning("%s", warning);
		if (isolated < 0)
			log_error("on_complete cannot be isolated, it will not run: %s", isolation);
	}
	free(warning);
	if (check_only) {
		config_dump(&d.config, stdout);
		if (isolation && isolated == 0)
			fprintf(stdout, "# on_complete runs %s\n", isolation);
		free(isolation);
		for (size_t i = 0; i < d.config.n_tenants; i++) {
			struct credential cr;
			r = credential_load(&d.config, &d.config.tenants[i], creds_dir, &cr, &error);
			if (r < 0) {
				fprintf(stderr, "invited: %s\n", error);
				goto out;
			}
			credential_dump(&cr, d.config.tenants[i].name, stdout);
			credential_finish(&cr);
		}
		exit_code = 0;
		goto out;
	}
	free(isolation);
	/* the hook helper, forked now: before the credential is read and
	 * before any socket, database, thread or curl handle exists (hook.h) */
	int hook_fd = -1;
	if (d.config.on_complete) {
		r = start_hook_helper(&d, &d.config, creds_dir, &hook_fd);
		if (r < 0) {
			log_error("Failed to start the on_complete helper: %s", strerror(-r));
			exit_code = EXIT_TEMPFAIL;
			goto out;
		}
	}
	/* every tenant's credential, in the daemon, after the fork */
	creds = calloc(d.config.n_tenants, sizeof(*creds));
	if (!creds) {
		exit_code = EXIT_TEMPFAIL;
		goto out;
	}
	n_creds = d.config.n_tenants;
	for (size_t i = 0; i < d.config.n_tenants; i++) {
		r = credential_load(&d.config, &d.config.tenants[i], creds_dir, &creds[i], &error);
		if (r < 0) {
			log_error("%s", error);
			goto out;
		}
		credential_log(&creds[i], d.config.tenants[i].name);
	}

	d.loop = uv_default_loop();
	if (!d.loop) {
		exit_code = EXIT_TEMPFAIL;
		goto out;
	}
	d.started_mono_ms = time_mono_ms();
	exit_code = EXIT_TEMPFAIL;
	r = store_open(&d.store, d.config.database, &error);
	if (r < 0) {
		log_error("Failed to open the store: %s", error ? error : strerror(-r));
		exit_code = r == -ENOENT || r == -EACCES ? EXIT_CONFIG : EXIT_TEMPFAIL;
		goto out;
	}
	/* a job that the journal's results complete runs its hook like any other */
	if (hook_fd >= 0) {
		r = hook_create(d.loop, hook_fd, d.config.on_complete[0], &d.hook);
		hook_fd = -1;
		if (r < 0)
			goto out;
	}
	store_set_job_done(d.store, on_job_done, &d);
	unsigned journaled = 0, recovered = 0;
	r = store_recover(d.store, &journaled, &recovered);
	if (r < 0) {
		log_error("Failed to recover rows left in flight: %s", strerror(-r));
		goto out;
	}
	if (journaled)
		log_notice("%u results from the journal of the last run were written", journaled);
	if (recovered)
		log_notice("%u rows were in flight when invited stopped; they are sent again",
			   recovered);

	/* a wave-1 database: its tenant row (named as the directory) becomes
	 * "default" under a wave-1 file (even if [graph] tenant = changed: the
	 * only row), or the [tenant NAME] of that directory (SPEC §7); jobs
	 * intact */
	for (size_t i = 0; i < d.config.n_tenants; i++) {
		const struct config_tenant *t = &d.config.tenants[i];
		r = store_tenant_adopt(d.store, t->name, t->tenant, !d.config.have_tenant_sections);
		if (r < 0) {
			log_error("Failed to rename the tenant '%s' of '%s' to '%s': %s", t->tenant,
				  d.config.database, t->name, strerror(-r));
			goto out;
		}
		if (r > 0)
			log_notice("The database's tenant '%s' is now called '%s'", t->tenant,
				   t->name);
	}
	unsigned connections = 4;
	for (size_t i = 0; i < d.config.n_tenants; i++)
		connections += d.config.tenants[i].concurrency;
	r = http_create(d.loop, connections, &d.http);
	if (r < 0)
		goto out;
	r = http_set_transport(d.http, d.config.ca_file, d.config.proxy);
	if (r < 0)
		goto out;
	if (d.config.app_rate > 0) {
		unsigned burst = (unsigned)(d.config.app_rate < 1 ? 1 : d.config.app_rate);
		ratelimit_init(&d.app_rl, d.config.app_rate, burst, uv_now(d.loop));
		d.have_app_rl = true;
	}
	for (size_t i = 0; i < d.config.n_tenants; i++) {
		const char *name = d.config.tenants[i].name;
		char *name_copy = strdup(name);
		r = name_copy ? daemon_tenant_add(&d, &d.config.tenants[i], &creds[i], &error)
			      : -ENOMEM;
		if (r < 0) {
			log_error("Failed to set up tenant '%s': %s", name_copy ? name_copy : "?",
				  error ? error : strerror(-r));
			free(name_copy);
			goto out;
		}
		free(name_copy);
	}

	/* who may do what (policy.h); allow_group's absence ctl_create() tells */
	policy_groups_init(&d.groups, d.config.allow_group, d.config.admin_group, getuid());
	if (d.config.admin_group && *d.config.admin_group && !d.groups.have_admin)
		log_warning("Group '%s' (admin_group) does not exist: only root and uid %u may act "
			    "on every job",
			    d.config.admin_group, (unsigned)getuid());
	r = ctl_create(&d, d.config.socket_path, listen_fd_from_systemd(), &d.ctl);
	if (r < 0)
		goto out;

	uv_signal_init(d.loop, &sig.term);
	uv_signal_init(d.loop, &sig.intr);
	uv_signal_init(d.loop, &sig.hup);
	uv_timer_init(d.loop, &sig.deadline);
	uv_timer_init(d.loop, &sig.status);
	uv_timer_init(d.loop, &sig.watchdog);
	uv_timer_init(d.loop, &sig.checkpoint);
	ckpt.path = d.config.database;
	ckpt.retention_ms = (uint64_t)d.config.retention_days * 86400000u;
	uv_timer_start(&sig.checkpoint, on_checkpoint_timer, CHECKPOINT_INTERVAL_MS,
		       CHECKPOINT_INTERVAL_MS);
	sig.term.data = sig.intr.data = sig.hup.data = sig.status.data = &d;
	uv_signal_start(&sig.term, on_signal, SIGTERM);
	uv_signal_start(&sig.intr, on_signal, SIGINT);
	uv_signal_start(&sig.hup, on_signal, SIGHUP);

	struct buf names = BUF_INIT;
	for (size_t i = 0; i < d.n_tenants; i++)
		buf_printf(&names, "%s%s (%s, %g/s)", i ? ", " : "", d.tenants[i]->conf.name,
			   d.tenants[i]->conf.tenant, d.tenants[i]->conf.rate);
	log_info("invited %s ready: tenant%s %s, socket '%s', database '%s'", INVITED_VERSION,
		 d.n_tenants == 1 ? "" : "s", names.data ? names.data : "?", d.config.socket_path,
		 d.config.database);
	buf_finish(&names);
	notify("READY=1");
	uv_timer_start(&sig.status, on_status, 0, STATUS_INTERVAL_MS);
#if HAVE_SYSTEMD
	uint64_t watchdog_us = 0;
	if (sd_watchdog_enabled(0, &watchdog_us) > 0 && watchdog_us > 0) {
		uint64_t every = watchdog_us / 2000u; /* twice per period */
		uv_timer_start(&sig.watchdog, on_watchdog, 0, every ? every : 1);
	}
#endif
	uv_run(d.loop, UV_RUN_DEFAULT);
	exit_code = 0;
out:
	if (d.loop) {
		/* after a failed start: close what was made (all NULL after a clean stop) */
		ctl_destroy(d.ctl);
		http_destroy(d.http);
		daemon_tenants_destroy(&d);
		hook_destroy(d.hook);
		uv_run(d.loop, UV_RUN_DEFAULT);
		uv_loop_close(d.loop);
	}
	store_close(d.store);
	for (size_t i = 0; i < n_creds; i++)
		credential_finish(&creds[i]);
	free(creds);
	free(d.creds_dir);
	for (size_t i = 0; i < d.n_hidden; i++)
		free(d.hidden[i]);
	free(d.hidden);
	free(error);
	config_finish(&d.config);
	return exit_code;
}
