/* SPDX-License-Identifier: MIT */
/*
 * policy: who may do what (SPEC §6), decided here and nowhere else. The
 * model is CUPS's job policy (@OWNER, @SYSTEM): a user owns the jobs they
 * submit; root, the daemon's own uid and members of admin_group may do
 * everything; members of allow_group may submit and act on their own jobs.
 *
 * Pure: no I/O, no logging, the clock injected (policy_refusal_note). The
 * caller (ctl.c) fills in the peer from SO_PEERCRED/SO_PEERGROUPS once per
 * connection; the caller (ops.c) passes the groups of the job's tenant
 * (today the global [daemon] allow_group/admin_group; per tenant with SPEC
 * §7) and logs the refusals policy_refusal_note() says to log.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define POLICY_MAX_GROUPS 256 /* supplementary groups of a peer looked at */

/* Who is on the other end of a connection. */
struct peer {
	uid_t uid;
	gid_t gid;        /* primary group */
	const char *user; /* the name, or "uid N"; borrowed (the connection's) */
	size_t n_groups;
	gid_t groups[POLICY_MAX_GROUPS]; /* supplementary groups (SO_PEERGROUPS) */
};

bool peer_in_group(const struct peer *p, gid_t gid);

/* The groups that rule one tenant's jobs. Names borrowed (the config's). */
struct policy_groups {
	const char *allow_name;      /* NULL or "": no member group */
	const char *admin_name;      /* NULL or "": no admin group */
	bool have_allow, have_admin; /* the group exists: *_gid is valid */
	gid_t allow_gid, admin_gid;
	uid_t daemon_uid; /* counts as root: the service user administers its own daemon */
};

/* Resolve the group names (borrowed; they must outlive g) to gids with
 * getgrnam_r. A name that does not resolve leaves that group empty
 * (have_* false): the caller warns. */
void policy_groups_init(struct policy_groups *g, const char *allow, const char *admin,
                        uid_t daemon_uid);

/* The mode of a socket invited binds: 0660 (group allow_group), or 0666
 * when an admin_group exists too, whose members may connect without being
 * in allow_group (SPEC §6): a file has one group, so then the peer check
 * (SO_PEERCRED, policy_role) is what keeps everyone else out. */
mode_t policy_socket_mode(const struct policy_groups *g);

enum policy_role {
	POLICY_ROLE_NONE,   /* neither root nor in a group: may not connect */
	POLICY_ROLE_MEMBER, /* allow_group: own jobs only */
	POLICY_ROLE_ADMIN,  /* root, the daemon's uid, admin_group: everything */
};

enum policy_role policy_role(const struct peer *p, const struct policy_groups *g);

/* What a request needs (a column of ops.c's table). The zero value is the
 * strictest: an op added without its column is for admins only. */
enum policy_need {
	POLICY_ADMIN = 0, /* root and admin_group only: reload, lifting a tenant's block */
	POLICY_OWNER,     /* the job's owner or an admin (when the request names a job) */
	POLICY_ANY,       /* any member: status, stats, submit, validate, jobs, audit (filtered) */
};

/* The job a request names; owner_user borrowed. */
struct policy_job {
	int64_t id;
	uint32_t owner_uid;
	const char *owner_user;
};

/*
 * May p do what needs `need` (on job, NULL when the request names none;
 * `what` names the action for POLICY_ADMIN, e.g. "reload the
 * configuration")? 0, or -EPERM with *ret_message (owned) naming the rule:
 * "job 7 belongs to alice; members of 'invite-admins' may act on it".
 * -ENOMEM when the message cannot be made.
 */
int policy_check(const struct peer *p, const struct policy_groups *g, enum policy_need need,
                 const struct policy_job *job, const char *what, char **ret_message);

/* The uid whose jobs and audit entries p may list, or -1 for every uid. */
int64_t policy_list_uid(const struct peer *p, const struct policy_groups *g);

/*
 * Refusals are logged once: the same (uid, op, job) refused again within
 * POLICY_REFUSAL_WINDOW_MS (a `watch` polling, a script in a loop) is only
 * counted. Bounded: the oldest of POLICY_REFUSAL_SLOTS is forgotten first.
 */
#define POLICY_REFUSAL_SLOTS 64
#define POLICY_REFUSAL_WINDOW_MS (10u * 60u * 1000u)

struct policy_refusal {
	uid_t uid;
	char op[16];
	int64_t job_id;
	uint64_t first_ms; /* logged then; 0: a free slot */
	unsigned suppressed;
};

struct policy_refusals {
	struct policy_refusal slot[POLICY_REFUSAL_SLOTS];
};

/* A refusal of op (borrowed) on job_id (0: none) from uid at now_ms: true
 * when it is to be logged; then *ret_suppressed is how many like it were
 * not logged in the window before. */
bool policy_refusal_note(struct policy_refusals *r, uid_t uid, const char *op, int64_t job_id,
                         uint64_t now_ms, unsigned *ret_suppressed);
