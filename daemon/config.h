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
};

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

/* Print the effective configuration (secrets never included) to f. */
void config_dump(const struct config *c, FILE *f);
