/* SPDX-License-Identifier: MIT */
/*
 * config: invited.conf (SPEC §4) and its drop-ins, parsed with inih.
 * Every key is checked; the first bad one is reported as "FILE:LINE: why".
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Keys a [tenant NAME] section set itself (struct config_tenant.set). */
enum {
	CONFIG_SET_RATE = 1u << 0,
	CONFIG_SET_BURST = 1u << 1,
	CONFIG_SET_CONCURRENCY = 1u << 2,
	CONFIG_SET_MAX_ATTEMPTS = 1u << 3,
	CONFIG_SET_REQUEST_TIMEOUT = 1u << 4,
	CONFIG_SET_BATCH = 1u << 5,
	CONFIG_SET_LOOKUP = 1u << 6,
	CONFIG_SET_TRACK_DAYS = 1u << 7,
	CONFIG_SET_TRACK_INTERVAL = 1u << 8,
	CONFIG_SET_MAX_RESENDS = 1u << 9,
	CONFIG_SET_LOOKUP_RATE = 1u << 10,
	CONFIG_SET_GROUP_RATE = 1u << 11,
	CONFIG_SET_TRACK_RATE = 1u << 12,
	CONFIG_SET_REPLICATION_DELAY = 1u << 13,
};

/* SPEC §8, the [queue] keys of the steps past the invitation (per tenant). */
struct config_onboard {
	bool lookup;              /* the daemon may read users (User.Read.All) */
	unsigned track_days;      /* 0: acceptance not tracked */
	uint64_t track_interval_ms;
	unsigned max_resends;
	double lookup_rate;       /* lookups per second */
	double group_rate;        /* member additions per second */
	double track_rate;        /* guests read per second */
	/* a lookup after a lost attempt that finds nobody looks once more
	 * after this long before the row is invited again (0: it does not) */
	uint64_t replication_delay_ms;
};

/* SPEC §8's [mail] and [mail NAME]: the daemon's own invitation mail. */
enum config_mail_via {
	CONFIG_MAIL_GRAPH = 0, /* POST /users/{sender}/sendMail (Mail.Send) */
	CONFIG_MAIL_SMTP = 1,  /* an SMTP relay through libcurl */
};
struct config_mail {
	bool on;                /* the section set a sender */
	enum config_mail_via via;
	char *sender;           /* the mailbox the mail comes from */
	char *smtp_url;         /* smtp://host:587 (STARTTLS required) or smtps://host:465 */
	char *smtp_user;
	char *smtp_password_file; /* NULL: the credential "smtp-password" */
	char *template_file;
	char *ca_file;          /* NULL: [graph] ca_file, else the system's */
	double rate;            /* messages per second, per mailbox */
	unsigned daily_limit;   /* recipients per rolling 24 hours */
	char *name;             /* [mail NAME]'s NAME; NULL for [mail] */
	char *file;             /* where the section is, for messages */
	unsigned line;
};
void config_mail_finish(struct config_mail *m);
int config_mail_copy(struct config_mail *ret, const struct config_mail *m);

#define CONFIG_TENANT_NAME_MAX 32 /* [a-z0-9-]{1,32} */
#define CONFIG_TENANTS_MAX 1000

/*
 * One tenant (SPEC §7): a [tenant NAME] section, or the tenant "default" of
 * a file with [graph] tenant = and no [tenant] section. After config_load
 * every field is resolved: what the section does not set comes from [graph]
 * and [queue] (the credential files excepted: see credential.h).
 */
struct config_tenant {
	char *name;
	char *tenant; /* directory id or verified domain */
	char *client_id;
	/* the section's own credential files; NULL: credential.h's order */
	char *client_secret_file;
	char *certificate_file;
	char *cloud;
	char *authority_url;
	char *graph_url;
	bool authority_url_set, graph_url_set; /* the section's own */
	double rate;
	unsigned burst;
	unsigned concurrency;
	unsigned max_attempts;
	uint64_t request_timeout_ms;
	unsigned batch;
	struct config_onboard onboard;
	struct config_mail mail; /* resolved: its [mail NAME], else [mail] */
	/* NULL: [daemon]'s (copied in at resolution: always set after load) */
	char *allow_group;
	char *admin_group;
	bool allow_group_set, admin_group_set;
	unsigned set; /* CONFIG_SET_* */
	char *file;   /* where its section starts, for messages */
	unsigned line;
	unsigned seen_gen, seen_line; /* config.c's: duplicates within one file */
};

void config_tenant_finish(struct config_tenant *t);
/* A deep copy (owned by *ret; config_tenant_finish). */
int config_tenant_copy(struct config_tenant *ret, const struct config_tenant *t);
/* True when name is a valid tenant name ([a-z0-9-]{1,32}). */
bool config_tenant_name_valid(const char *name);

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
	double app_rate; /* ceiling over all tenants (invitations/s); 0: none */
	char *tenant_file; /* where [graph] tenant = was set (for its refusal) */
	unsigned tenant_line;
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
	struct config_onboard onboard;
	char **on_complete; /* NULL, or the argv of the completion command (hook.h) */
	/* the user on_complete runs as when invited runs as root (hook.h);
	 * "nobody" unless set. Ignored when invited is not root. */
	char *hook_user;
	bool hook_user_set;
	/* [tenant NAME] sections, in the order first seen (config_load
	 * resolves them); a wave-1 file: the one tenant "default" */
	struct config_tenant *tenants;
	size_t n_tenants;
	/* [mail] (mail.on: set), then each [mail NAME] */
	struct config_mail mail;
	struct config_mail *mails;
	size_t n_mails;
	bool have_tenant_sections;
	unsigned load_gen; /* config.c's: files read so far */
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

/* The tenant called name, or NULL. */
const struct config_tenant *config_tenant_find(const struct config *c, const char *name);

/* Cross-key checks after loading (tenant and client_id set, ...).
 * Returns 0 or -EINVAL with *ret_error (owned) set. */
int config_check(const struct config *c, char **ret_error);

/* A warning about a value that is valid but unwise (rate above Graph's
 * 30/s), as text owned by the caller; NULL when there is none. */
char *config_warning(const struct config *c);

/* Print the effective configuration (secrets never included) to f. */
void config_dump(const struct config *c, FILE *f);
