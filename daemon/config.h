/* SPDX-License-Identifier: MIT */
/*
 * config: invited.conf (SPEC §4) and its drop-ins, parsed with inih.
 * Every key is checked; the first bad one is reported as "FILE:LINE: why".
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct config {
	/* [graph] */
	char *tenant;
	char *client_id;
	char *client_secret_file; /* NULL: $CREDENTIALS_DIRECTORY/client-secret */
	char *authority_url;
	char *graph_url;
	char *certificate_file; /* PEM certificate + key: sign a client assertion */
	char *cloud;            /* global, usgov, usgov-dod, china */
	bool authority_url_set, graph_url_set; /* explicit: cloud does not override */
	char *ca_file; /* PEM bundle replacing the system's CA store; NULL: the system's */
	char *proxy;   /* http(s):// proxy for every request; NULL: none, *_proxy ignored */
	/* [queue] */
	double rate;      /* invitations per second, whole tenant */
	unsigned burst;   /* bucket capacity */
	unsigned concurrency;
	unsigned max_attempts;
	uint64_t request_timeout_ms;
	/* [daemon] */
	char *socket_path;
	char *database;
	char *allow_group; /* NULL or empty: root and the daemon's own uid only */
	char *admin_group; /* NULL or empty: none; members may act on every job (policy.h) */
	uint64_t max_upload_bytes;
	uint64_t max_rows;
	unsigned retention_days; /* finished jobs older than this are deleted; 0 keeps them */
	/* control connections (ctl.c): closed when no request came this long
	 * after connecting, or idle this long between requests */
	uint64_t first_request_timeout_ms;
	uint64_t idle_timeout_ms;
	unsigned max_connections_per_uid; /* root and the daemon's uid: not capped */
	/* [queue] */
	unsigned batch; /* invitations per $batch request; 1: single requests */
	char **on_complete; /* NULL, or the argv of the completion command (hook.h) */
	/* the user on_complete runs as when invited runs as root (hook.h);
	 * "nobody" unless set. Ignored when invited is not root. */
	char *hook_user;
	bool hook_user_set;
	/* the main file was missing (allowed for the default path): its path
	 * and errno, named by config_check when nothing else set the tenant */
	char *missing_path;
	int missing_errno;
};

/* Graph's documented ceiling for invitations: 150 per 5 s (GRAPH.md §4). */
#define CONFIG_GRAPH_RATE_LIMIT 30.0

/* True when url is https://, or http:// to a loopback host (127.0.0.0/8,
 * [::1], localhost): where the secret and the token may go (SPEC §9). Pure. */
bool config_url_secure(const char *url);

/* Fill in the built-in defaults (owned strings). */
int config_init(struct config *c);
void config_finish(struct config *c);

/*
 * Read path, then PATH.d/ *.conf in name order. A missing main file is an
 * error only when required is true. On error returns a negative errno and
 * sets *ret_error to "FILE:LINE: reason" (owned by caller).
 */
int config_load(struct config *c, const char *path, bool required, char **ret_error);

/* Cross-key checks after loading (tenant and client_id set, ...).
 * Returns 0 or -EINVAL with *ret_error (owned) set. */
int config_check(const struct config *c, char **ret_error);

/* A warning about a value that is valid but unwise (rate above Graph's
 * 30/s), as text owned by the caller; NULL when there is none. */
char *config_warning(const struct config *c);

/* Print the effective configuration (secrets never included) to f. */
void config_dump(const struct config *c, FILE *f);
