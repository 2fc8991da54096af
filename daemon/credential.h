/* SPDX-License-Identifier: MIT */
/*
 * credential: where each tenant's app credential comes from (SPEC §7), read
 * once at start and again at reload, always in the daemon (never in the
 * hook helper, forked before any of this runs: docs/architecture.md "Trust
 * boundaries"). A secret is kept in secret memory (secret.h); a file that
 * group or others can read is refused.
 *
 * The order, for tenant NAME:
 *   1. the section's own certificate_file / client_secret_file;
 *   2. the systemd credential NAME.client-certificate / NAME.client-secret
 *      in $CREDENTIALS_DIRECTORY;
 *   3. [graph]'s certificate_file / client_secret_file;
 *   4. the systemd credential client-certificate / client-secret (wave 1's).
 */
#pragma once

#include <stdio.h>

struct config;
struct config_tenant;
struct crypto_cert;

struct credential {
	char *secret;             /* secret memory; or NULL */
	struct crypto_cert *cert; /* or NULL */
	char *source;             /* the file it came from, for messages */
	/* [mail] via = smtp with smtp_user: the relay's password (secret
	 * memory), from smtp_password_file, else the systemd credential
	 * NAME.smtp-password, else smtp-password */
	char *smtp_password;
	char *smtp_source;
};

void credential_finish(struct credential *c);

/* Tenant t's credential (c: its [graph] defaults; creds_dir:
 * $CREDENTIALS_DIRECTORY or NULL). On failure a negative errno with
 * *ret_error (owned) naming the tenant and the file. */
int credential_load(const struct config *c, const struct config_tenant *t, const char *creds_dir,
		    struct credential *ret, char **ret_error);

/* A secret file: readable by its owner only, at most 16 KiB. *ret: secret
 * memory (secret_free). */
int credential_read_secret(const char *path, char **ret, char **ret_error);

/* For --check-config: where it came from, never the secret itself. */
void credential_dump(const struct credential *cr, const char *tenant, FILE *f);
/* At start: which certificate signs in, and a warning when it expires soon. */
void credential_log(const struct credential *cr, const char *tenant);
