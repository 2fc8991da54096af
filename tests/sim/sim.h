/* SPDX-License-Identifier: MIT */
/*
 * sim: state and Graph behaviour of the invited Graph simulator. sim.c owns
 * the command line and the HTTP server (the only libmicrohttpd user besides
 * delay.c); graph.c turns a parsed request into a struct reply and never
 * touches a connection, so every endpoint is a plain function call.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jwt.h"
#include "rng.h"

struct buf;

#define SIM_BODY_MAX (4u * 1024u * 1024u) /* larger bodies get 413 */
#define SIM_TOKENS_MAX 4096u /* issued tokens kept; the oldest is forgotten */
#define SIM_TOKEN_LEN 48u
#define SIM_BATCH_MAX 20u
#define SIM_STATUS_MAX 600u
#define SIM_TENANT_MAX 256u
#define SIM_REJECT_MAX 1024u
#define SIM_CLIENT_REQUEST_ID_MAX 128u
#define SIM_CLIENT_ID_MAX 128u /* longer client_ids are refused (700016) */
#define SIM_TENANTS_MAX 256u   /* the first tenant and --tenants-file's */
#define SIM_ROLES_MAX 32u      /* entries of a roles claim (the token must fit a header) */
#define SIM_ROLE_MAX 128u      /* bytes of one role */
#define SIM_THROTTLE_SCOPE_MAX (32u + SIM_CLIENT_ID_MAX + SIM_TENANT_MAX)

/* A tenant's directory settings (directory.c, docs/simulator.md "Directory,
 * groups and mail"): the first tenant's from the command line, the others'
 * from --tenants-file. Lists are owned and lowercased. */
struct sim_dir_config {
	uint64_t seed_members, seed_guests;
	char *member_pattern; /* owned; NULL: member{n}@contoso.example */
	char *guest_pattern;  /* owned; NULL: guest{n}@partner.example */
	char *directory_file; /* owned; NULL: none */
	char **groups;        /* groups that exist */
	size_t n_groups;
	char **refusing_groups; /* exist, and refuse guests */
	size_t n_refusing_groups;
	char **refusing_mailboxes; /* sendMail from these: 403 */
	size_t n_refusing_mailboxes;
	double read_rate, read_period_s; /* GETs of users; 0: unlimited */
	double mail_rate, mail_period_s; /* sendMail; 0: unlimited */
};

struct sim_dir; /* a tenant's users, memberships and limits (directory.c) */

/* What a tenant's 429s name in x-ms-throttle-scope (GRAPH.md §4). */
enum sim_throttle_scope {
	SIM_SCOPE_NONE,
	SIM_SCOPE_TENANT_APPLICATION, /* Tenant_Application/Write/<appId>/<tenantId> */
	SIM_SCOPE_TENANT,             /* Tenant/Write//<tenantId> */
	SIM_SCOPE_APPLICATION,        /* Application/Write/<appId> */
};

struct sim_config {
	const char *listen;      /* borrowed from argv */
	unsigned port;
	const char *port_file;   /* NULL: none */
	const char *record_path; /* NULL: none */
	const char *token_file;  /* NULL: none; every issued token, a line each (tests) */
	const char *tenant;      /* NULL: any */
	const char *tenants_file; /* NULL: none; --tenants-file, more tenants (tenants.c) */
	const char *client_id;   /* NULL: any non-empty */
	char *client_secret;     /* owned; NULL: any non-empty */
	struct jwt_cert *client_cert; /* owned; NULL: any client assertion */
	uint64_t token_ttl_s;
	double rate;     /* requests per period; 0 = unlimited */
	double period_s;
	uint64_t latency_ms, latency_jitter_ms;
	double fail_5xx, fail_429, fail_reset, fail_hang; /* percent */
	double fail_after_accept; /* percent of 5xx/reset/hang faults that strike after acceptance */
	char **reject; /* owned, lowercased */
	size_t n_reject;
	/* the answer to a --reject address and to --block-after (borrowed from
	 * argv; NULL: Graph's usual words): hostile text for the tests of what
	 * invited shows of Graph's messages (SPEC §9) */
	const char *reject_code, *reject_message, *block_message;
	char **garble; /* owned, lowercased: 400 with invalid UTF-8 (--garble) */
	size_t n_garble;
	const char *retry_after_text; /* borrowed; --fail-429's Retry-After value, NULL: "1" */
	uint64_t seed;
	bool seed_set;
	uint64_t block_after;
	bool block_after_set;
	uint64_t token_fail_for_s;
	uint64_t token_fail_count;
	bool no_batch_invitations;
	unsigned threads;
	unsigned max_connections;
	unsigned max_hangs;
	bool verbose;
	char *tls_cert; /* owned PEM text; NULL: plain HTTP */
	char *tls_key;  /* owned PEM text of the private key */
	/* the first tenant's --roles, --throttle-scope, --guests */
	char **roles; /* owned; NULL with roles_set: no roles claim */
	size_t n_roles;
	bool roles_set; /* false: the default User.Invite.All */
	enum sim_throttle_scope throttle_scope;
	const char *allow_invites_from; /* static; NULL: "everyone" */
	/* the first tenant's directory, and what every tenant shares */
	struct sim_dir_config dir;
	const char *members_record_path; /* NULL: none */
	const char *mail_record_path;    /* NULL: none */
	uint64_t replication_delay_ms;   /* a new guest is unreadable this long */
	double member_404_share;         /* percent of first additions answered 404 */
	uint64_t accept_after_ms;
	bool accept_after_set;           /* false: guests never accept */
	double accept_share;             /* percent of pending guests that accept */
};

/* The kinds of directory request /sim/stats counts (its "directory"). */
enum sim_dir_kind { SIM_DIR_LOOKUP, SIM_DIR_READ, SIM_DIR_ADDITION, SIM_DIR_MAIL, SIM_DIR_KINDS };

/* Counters of one tenant (/sim/stats "tenants"). */
struct sim_tenant_stats {
	atomic_uint_fast64_t tokens_issued;
	atomic_uint_fast64_t tokens_refused; /* token requests for it refused after the tenant check */
	atomic_uint_fast64_t requests;       /* Graph requests with one of its tokens */
	atomic_uint_fast64_t wrong_tenant;   /* its tokens sent to another tenant's Graph URL */
	atomic_uint_fast64_t invitations_accepted;
	atomic_uint_fast64_t policy_reads;
	atomic_uint_fast64_t invitation_status[SIM_STATUS_MAX];
	/* directory requests (single or $batch items) by kind and status */
	atomic_uint_fast64_t dir_status[SIM_DIR_KINDS][SIM_STATUS_MAX];
};

/*
 * One tenant: its credential, its limit window, its faults, its block switch,
 * its roles and its counters. The first (index 0) comes from the command
 * line; the others from --tenants-file (tenants.c). The configuration part is
 * written before the server starts and only read afterwards.
 */
struct sim_tenant {
	char *name;                   /* owned; NULL: any name (the first, without --tenant) */
	char *client_secret;          /* owned; NULL: any non-empty */
	struct jwt_cert *client_cert; /* owned; NULL: any client assertion */
	/* a --tenants-file tenant: only its own kind of credential (a tenant
	 * with a secret refuses assertions, one with a certificate secrets);
	 * the first keeps today's rule (an unset one is "any") */
	bool strict_credential;
	double rate;                  /* requests per period; 0 = unlimited */
	double period_s;
	double fail_5xx, fail_429, fail_reset, fail_hang, fail_after_accept; /* percent */
	char **reject; /* owned, lowercased */
	size_t n_reject;
	uint64_t block_after;
	bool block_after_set;
	char **roles; /* owned; n_roles == 0: no roles claim in its tokens */
	size_t n_roles;
	enum sim_throttle_scope throttle_scope;
	const char *allow_invites_from; /* static: authorizationPolicy's allowInvitesFrom */

	pthread_mutex_t bucket_lock;
	bool lock_ready;
	double bucket_level;
	uint64_t bucket_us; /* last refill, monotonic microseconds */
	atomic_uint_fast64_t accept_reserved; /* for block_after */
	atomic_bool blocked_now;  /* POST /sim/block */
	atomic_bool block_lifted; /* POST /sim/unblock: block_after no longer applies */
	struct sim_tenant_stats stats;
	struct sim_dir_config dirc; /* owned */
	struct sim_dir *dir;        /* owned; NULL before sim_dir_init */
};

/* Who sent a Graph request, from its token (check_auth). */
struct sim_caller {
	struct sim_tenant *tenant;
	char tid[SIM_TENANT_MAX + 1];       /* the tenant as in the token URL */
	char appid[SIM_CLIENT_ID_MAX + 1];
};

struct sim_stats {
	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t invitations_accepted;
	atomic_uint_fast64_t tokens_issued;
	atomic_uint_fast64_t resets;
	atomic_uint_fast64_t hangs;
	atomic_uint_fast64_t hangs_held;
	atomic_uint_fast64_t batches;
	atomic_uint_fast64_t batch_items;
	atomic_uint_fast64_t in_flight;
	atomic_uint_fast64_t max_in_flight;
	atomic_uint_fast64_t connections; /* TCP connections accepted */
	atomic_uint_fast64_t status[SIM_STATUS_MAX];            /* HTTP responses */
	atomic_uint_fast64_t invitation_status[SIM_STATUS_MAX]; /* each invitation attempt */
};

/* An issued token is a JWT "header.payload.signature" whose signature part
 * is SIM_TOKEN_LEN opaque characters, the first four the slot in hex. */
struct sim_token {
	char value[SIM_TOKEN_LEN + 1]; /* the signature part */
	uint64_t hash;                 /* FNV-1a of "header.payload" */
	uint64_t expires_ms;           /* time_mono_ms() */
	unsigned tenant;               /* index in sim.tenants */
	char tid[SIM_TENANT_MAX + 1];
	char appid[SIM_CLIENT_ID_MAX + 1];
};

struct sim {
	struct sim_config cfg;
	uint64_t start_ms; /* time_mono_ms() at sim_init */
	struct sim_stats stats;

	pthread_rwlock_t tokens_lock;
	struct sim_token *tokens; /* SIM_TOKENS_MAX slots, owned */
	atomic_uint_fast64_t token_seq;
	atomic_uint_fast64_t token_failures_left;

	struct sim_tenant *tenants; /* n_tenants, owned; [0] is the command line's */
	size_t n_tenants;

	int record_fd; /* owned; -1 without --record (sim_init sets it) */
	int token_fd;  /* owned; -1 without --token-file */
	int members_fd; /* owned; -1 without --members-record (sim_dir_init) */
	int mail_fd;    /* owned; -1 without --mail-record */
	bool dir_ready;
	bool initialized;
};

enum reply_action {
	REPLY_RESPOND,
	REPLY_RESET, /* close the connection without an answer */
	REPLY_HANG,  /* never answer */
};

struct reply {
	enum reply_action action;
	unsigned status;
	char *body;           /* owned JSON text; NULL: empty body */
	unsigned retry_after; /* seconds for a Retry-After header; 0: none */
	const char *retry_after_text; /* borrowed; the Retry-After value instead, NULL: none */
	bool delay;           /* subject to --latency-ms */
	bool no_store;        /* Cache-Control: no-store (token responses) */
	char request_id[RNG_UUID_LEN + 1];
	const char *client_request_id; /* borrowed; the client's or request_id */
	char throttle_scope[SIM_THROTTLE_SCOPE_MAX]; /* x-ms-throttle-scope; "": none */
	const char *throttle_info; /* static; x-ms-throttle-information, NULL: WriteLimitExceeded */
};

/* Set up state for s->cfg (filled by the caller; the sim takes ownership of
 * cfg's owned members). 0 or negative errno; logs the reason. */
int sim_init(struct sim *s);
/* Flush and free; accepts a half-initialized sim. */
void sim_finish(struct sim *s);

/* Each endpoint fills *r (r->request_id and r->client_request_id preset by
 * the caller). All string arguments are borrowed and may be NULL when the
 * header is absent; body need not be NUL-terminated. */
void sim_token_request(struct sim *s, const char *tenant, const char *content_type,
		       const char *body, size_t len, struct reply *r);
/* url_tenant: the tenant a Graph URL names ("/{tenant}/v1.0/..."), NULL
 * for Graph's own URLs, which name none (the token's tenant is the one). */
void sim_invite_request(struct sim *s, const char *url_tenant, const char *authorization,
			const char *content_type, const char *body, size_t len, struct reply *r);
void sim_batch_request(struct sim *s, const char *url_tenant, const char *authorization,
		       const char *content_type, const char *body, size_t len, struct reply *r);
/* GET /v1.0/policies/authorizationPolicy */
void sim_policy_request(struct sim *s, const char *url_tenant, const char *authorization,
			struct reply *r);
void sim_stats_request(struct sim *s, struct reply *r);
/* POST /sim/block and /sim/unblock?tenant=NAME (NULL: the first tenant). */
void sim_block_request(struct sim *s, const char *tenant, bool block, struct reply *r);

/* 0 when authorization carries a valid token (for url_tenant, NULL: any),
 * *c its caller; else fills r (401) and returns -EACCES. */
int sim_check_auth(struct sim *s, const char *url_tenant, const char *authorization,
		   struct reply *r, struct sim_caller *c);

/* ---- directory.c ---- */

/* Opens the members and mail records and builds every tenant's directory
 * (seeds, --directory files). 0 or negative errno; logs the reason. */
int sim_dir_init(struct sim *s);
void sim_dir_finish(struct sim *s);
/* Frees a tenant's directory settings (tenant_finish). */
void sim_dir_config_free(struct sim_dir_config *c);
/* The first tenant's settings: moved out of s->cfg.dir. */
void sim_dir_config_take(struct sim_dir_config *dst, struct sim_dir_config *src);
/* The directory keys of one --tenants-file element into c. NULL, or why
 * not (*key the member). */
/* Members of a tenants-file object (a json_t *, borrowed); absent or null
 * leaves *ret as it is (sim_json_string: sets it NULL). NULL, or why not. */
/* A number in [min, max]. */
const char *sim_json_number(void *json_object, const char *key, double min, double max,
			    double *ret);
/* A non-empty string without NUL, borrowed from the object. */
const char *sim_json_string(void *json_object, const char *key, const char **ret);
const char *sim_dir_config_from_json(void *json_object, struct sim_dir_config *c,
				     const char **key);
/* Is key one of the directory keys of a --tenants-file element? */
bool sim_dir_json_key(const char *key);
/* An accepted invitation of tenant t created (or found) the guest. */
void sim_dir_note_invited(struct sim *s, struct sim_tenant *t, const char *address,
			  const char *user_id);
/* Does path (after "/v1.0", e.g. "/users/x") belong to directory.c? */
bool sim_dir_path(const char *path);
/* A Graph request to a directory path: GET /users, GET /users/{id},
 * POST /users/{id}/sendMail, POST /groups/{id}/members/$ref. filter and
 * select are the decoded $filter and $select (NULL: absent). */
void sim_dir_request(struct sim *s, const char *url_tenant, const char *authorization,
		     const char *method, const char *path, const char *filter,
		     const char *select, const char *content_type, const char *body, size_t len,
		     struct reply *r);
/* The same for a $batch item of caller c: url is the item's ("/users?$filter=..."),
 * still URL-encoded; body its parsed body (borrowed, NULL: none). */
void sim_dir_batch_item(struct sim *s, const struct sim_caller *c, const char *method,
			const char *url, void *json_body, struct reply *r);
/* GET /sim/members, /sim/mail, /sim/users?tenant=NAME (NULL: every tenant). */
void sim_dir_sim_request(struct sim *s, const char *what, const char *tenant, struct reply *r);

/* ---- tenants.c ---- */

/* Build s->tenants: [0] from s->cfg (taking its owned credential, reject
 * list and roles), then one per element of cfg.tenants_file. 0 or negative
 * errno; logs the reason (file, element, key). */
int sim_tenants_init(struct sim *s);
void sim_tenants_finish(struct sim *s);
/* The tenant a token URL names (case-insensitive), else the nameless first
 * one, else NULL. */
struct sim_tenant *sim_tenant_find(struct sim *s, const char *name);
/* The tenant named exactly so (NULL: the first), or NULL. */
struct sim_tenant *sim_tenant_by_name(struct sim *s, const char *name);
bool sim_tenant_has_role(const struct sim_tenant *t, const char *role);
/* Appends the roles claim's array ["a","b"]. 0 or -ENOMEM. */
int sim_tenant_roles_json(const struct sim_tenant *t, struct buf *b);
/* Parse a --throttle-scope / "throttle_scope" value. 0 or -EINVAL. */
int sim_parse_throttle_scope(const char *text, enum sim_throttle_scope *ret);
/* Parse a --guests / "guests" value into allowInvitesFrom. 0 or -EINVAL. */
int sim_parse_guests(const char *text, const char **ret);
/* Split a comma-separated --roles list (owned result). 0 or negative errno. */
int sim_parse_roles(const char *text, char ***ret, size_t *ret_n);
/* A Graph-style error: {"error":{"code","message","innerError":{...}}}. */
void sim_error_reply(struct reply *r, unsigned status, const char *code, const char *message);
void reply_finish(struct reply *r);

/* Statistics kept by the HTTP layer. */
void sim_count_status(struct sim *s, unsigned status);
/* delta +1 when a request starts, -1 when it is over. */
void sim_note_in_flight(struct sim *s, int delta);
