/* SPDX-License-Identifier: MIT */
/* policy: who may do what (SPEC §6), table-driven over peer x need x job. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "policy.h"
#include "tap.h"

#define ALLOW_GID 100
#define ADMIN_GID 200
#define DAEMON_UID 990

enum who { ROOT, DAEMON, ADMIN, ADMIN_PRIMARY, OWNER, OTHER, OUTSIDER, N_WHO };

static const char *const who_name[N_WHO] = {
    "root",         "daemon uid",   "admin member", "admin (primary group)",
    "owner member", "other member", "outsider"};

static struct peer make_peer(enum who w)
{
	struct peer p = {0};
	switch (w) {
	case ROOT:
		p.uid = 0, p.gid = 0, p.user = "root";
		break;
	case DAEMON:
		p.uid = DAEMON_UID, p.gid = DAEMON_UID, p.user = "invited";
		break;
	case ADMIN: /* in admin_group only, not in allow_group */
		p.uid = 1001, p.gid = 1001, p.user = "carol", p.n_groups = 2;
		p.groups[0] = 1001, p.groups[1] = ADMIN_GID;
		break;
	case ADMIN_PRIMARY:
		p.uid = 1005, p.gid = ADMIN_GID, p.user = "dave";
		break;
	case OWNER:
		p.uid = 1002, p.gid = 1002, p.user = "alice", p.n_groups = 2;
		p.groups[0] = 1002, p.groups[1] = ALLOW_GID;
		break;
	case OTHER:
		p.uid = 1003, p.gid = 1003, p.user = "bob", p.n_groups = 2;
		p.groups[0] = 1003, p.groups[1] = ALLOW_GID;
		break;
	default:
		p.uid = 1004, p.gid = 1004, p.user = "eve", p.n_groups = 1;
		p.groups[0] = 1004;
		break;
	}
	return p;
}

static struct policy_groups make_groups(bool with_admin)
{
	struct policy_groups g = {
	    .allow_name = "invite",
	    .admin_name = with_admin ? "invite-admins" : NULL,
	    .have_allow = true,
	    .have_admin = with_admin,
	    .allow_gid = ALLOW_GID,
	    .admin_gid = ADMIN_GID,
	    .daemon_uid = DAEMON_UID,
	};
	return g;
}

/* op classes: what the request needs, and whether it names alice's job 7 */
enum klass { ANY, OWNER_NO_JOB, OWNER_JOB, ADMIN_OP, N_KLASS };
static const char *const klass_name[N_KLASS] = {"any (status, submit, jobs)",
                                                "owner, no job named (audit)",
                                                "owner of job 7 (show, cancel)", "admin (reload)"};

#define OUT_NONE " is not root and not a member of group 'invite' or 'invite-admins'"
#define OUT_NONE_NA " is not root and not a member of group 'invite'"
#define JOB_ADMINS "job 7 belongs to alice; members of 'invite-admins' may act on it"
#define JOB_ROOT "job 7 belongs to alice; only root may act on it"
#define RELOAD_ADMINS "only root and members of 'invite-admins' may reload the configuration"
#define RELOAD_ROOT "only root may reload the configuration"

struct expect {
	/* NULL: allowed; else the refusal (" is not root...": after "permission denied: uid N") */
	const char *with_admin[N_KLASS];
	const char *without_admin[N_KLASS]; /* admin_group not set */
};

static const struct expect expected[N_WHO] = {
    [ROOT] = {{NULL, NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}},
    [DAEMON] = {{NULL, NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}},
    [ADMIN] = {{NULL, NULL, NULL, NULL},
               /* without admin_group carol is in no group at all */
               {OUT_NONE_NA, OUT_NONE_NA, OUT_NONE_NA, OUT_NONE_NA}},
    [ADMIN_PRIMARY] = {{NULL, NULL, NULL, NULL},
                       {OUT_NONE_NA, OUT_NONE_NA, OUT_NONE_NA, OUT_NONE_NA}},
    [OWNER] = {{NULL, NULL, NULL, RELOAD_ADMINS}, {NULL, NULL, NULL, RELOAD_ROOT}},
    [OTHER] = {{NULL, NULL, JOB_ADMINS, RELOAD_ADMINS}, {NULL, NULL, JOB_ROOT, RELOAD_ROOT}},
    [OUTSIDER] = {{OUT_NONE, OUT_NONE, OUT_NONE, OUT_NONE},
                  {OUT_NONE_NA, OUT_NONE_NA, OUT_NONE_NA, OUT_NONE_NA}},
};

static void test_table(void)
{
	const struct policy_job job = {.id = 7, .owner_uid = 1002, .owner_user = "alice"};
	for (int a = 0; a < 2; a++) {
		struct policy_groups g = make_groups(a == 0);
		for (int w = 0; w < N_WHO; w++) {
			struct peer p = make_peer((enum who)w);
			for (int k = 0; k < N_KLASS; k++) {
				static const enum policy_need need[N_KLASS] = {
				    POLICY_ANY, POLICY_OWNER, POLICY_OWNER, POLICY_ADMIN};
				char *why = NULL;
				int r = policy_check(&p, &g, need[k], k == OWNER_JOB ? &job : NULL,
				                     "reload the configuration", &why);
				const char *want = a == 0 ? expected[w].with_admin[k]
				                          : expected[w].without_admin[k];
				if (!want) {
					is_int(r, 0, "%s admin_group: %s may do %s",
					       a == 0 ? "with" : "without", who_name[w],
					       klass_name[k]);
				} else {
					is_int(r, -EPERM, "%s admin_group: %s may not do %s",
					       a == 0 ? "with" : "without", who_name[w],
					       klass_name[k]);
					char text[256]; /* an outsider's names the uid */
					if (want[0] == ' ')
						snprintf(text, sizeof(text),
						         "permission denied: uid %u%s",
						         (unsigned)p.uid, want);
					else
						snprintf(text, sizeof(text), "%s", want);
					is_str(why, text, "  and the refusal names the rule");
				}
				free(why);
			}
		}
	}
}

static void test_roles(void)
{
	struct policy_groups g = make_groups(true);
	static const struct {
		enum who w;
		enum policy_role role;
		int64_t list_uid;
	} cases[] = {
	    {ROOT, POLICY_ROLE_ADMIN, -1},      {DAEMON, POLICY_ROLE_ADMIN, -1},
	    {ADMIN, POLICY_ROLE_ADMIN, -1},     {ADMIN_PRIMARY, POLICY_ROLE_ADMIN, -1},
	    {OWNER, POLICY_ROLE_MEMBER, 1002},  {OTHER, POLICY_ROLE_MEMBER, 1003},
	    {OUTSIDER, POLICY_ROLE_NONE, 1004},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct peer p = make_peer(cases[i].w);
		is_int(policy_role(&p, &g), cases[i].role, "%s: role", who_name[cases[i].w]);
		is_int(policy_list_uid(&p, &g), cases[i].list_uid, "%s: lists %s",
		       who_name[cases[i].w], cases[i].list_uid < 0 ? "every job" : "own jobs");
	}
	/* an admin_group that does not exist grants nothing */
	g.have_admin = false;
	struct peer p = make_peer(ADMIN);
	is_int(policy_role(&p, &g), POLICY_ROLE_NONE, "a missing admin group grants nothing");
	/* an empty allow_group: root and the daemon's uid only */
	struct policy_groups none = {.daemon_uid = DAEMON_UID};
	p = make_peer(OWNER);
	char *why = NULL;
	is_int(policy_check(&p, &none, POLICY_ANY, NULL, NULL, &why), -EPERM,
	       "no groups: a former member is refused");
	is_str(why, "permission denied: uid 1002 is not root", "  saying so");
	free(why);
	/* a job whose owner was a uid with no name */
	const struct policy_job anon = {.id = 9, .owner_uid = 4242, .owner_user = NULL};
	g = make_groups(true);
	why = NULL;
	is_int(policy_check(&p, &g, POLICY_OWNER, &anon, NULL, &why), -EPERM, "another's job");
	is_str(why, "job 9 belongs to another user; members of 'invite-admins' may act on it",
	       "  with no name to tell");
	free(why);
}

static void test_default_need(void)
{
	/* a table row that forgets its column */
	static const struct {
		const char *name;
		enum policy_need need;
	} forgot = {.name = "new-op"};
	struct policy_groups g = make_groups(true);
	struct peer p = make_peer(OWNER);
	char *why = NULL;
	is_int(policy_check(&p, &g, forgot.need, NULL, "use new-op", &why), -EPERM,
	       "an op without its need column is for admins only");
	free(why);
}

static void test_groups_init(void)
{
	struct policy_groups g;
	/* group 0 is "root" on Linux; the other name cannot exist */
	policy_groups_init(&g, "root", "no-such-group-invited-test", 77);
	ok(g.have_allow && g.allow_gid == 0, "an existing group resolves");
	ok(!g.have_admin, "a missing group stays empty");
	is_str(g.admin_name, "no-such-group-invited-test", "its name is kept for messages");
	is_int(g.daemon_uid, 77, "the daemon's uid");
	policy_groups_init(&g, "", NULL, 77);
	ok(!g.have_allow && !g.have_admin, "empty and unset names: no groups");
}

static void test_refusal_dedupe(void)
{
	static struct policy_refusals r; /* zeroed */
	unsigned sup = 99;
	uint64_t t = 1000;
	ok(policy_refusal_note(&r, 1003, "job", 7, t, &sup), "first refusal is logged");
	is_int(sup, 0, "  none suppressed before it");
	for (int i = 1; i <= 5; i++)
		ok(!policy_refusal_note(&r, 1003, "job", 7, t + (uint64_t)i * 1000, &sup),
		   "the same refusal again (a watch poll %d) is not logged", i);
	ok(policy_refusal_note(&r, 1003, "cancel", 7, t, &sup), "another op is logged");
	ok(policy_refusal_note(&r, 1003, "job", 8, t, &sup), "another job is logged");
	ok(policy_refusal_note(&r, 1004, "job", 7, t, &sup), "another uid is logged");
	ok(policy_refusal_note(&r, 1003, "job", 7, t + POLICY_REFUSAL_WINDOW_MS, &sup),
	   "after the window it is logged again");
	is_int(sup, 5, "  with the count of those not logged");
	ok(!policy_refusal_note(&r, 1003, "job", 7, t + POLICY_REFUSAL_WINDOW_MS + 1, &sup),
	   "and the window starts again");
	/* bounded: more keys than slots forget the oldest, never fail */
	for (unsigned i = 0; i < 2 * POLICY_REFUSAL_SLOTS; i++)
		policy_refusal_note(&r, 5000 + i, "job", 1, t + 10 + i, &sup);
	ok(policy_refusal_note(&r, 1004, "job", 7, t + 20 + 2 * POLICY_REFUSAL_SLOTS, &sup),
	   "an evicted key is logged again");
	ok(!policy_refusal_note(&r, 5000 + 2 * POLICY_REFUSAL_SLOTS - 1, "job", 1,
	                        t + 30 + 2 * POLICY_REFUSAL_SLOTS, &sup),
	   "the newest keys are kept");
	ok(policy_refusal_note(&r, 1, "a-very-long-op-name-indeed", 1, t, &sup) &&
	       !policy_refusal_note(&r, 1, "a-very-long-op-name-indeed", 1, t + 1, &sup),
	   "a long op name is compared on its kept prefix");
}

int main(void)
{
	tap_plan_none();
	test_table();
	test_roles();
	test_default_need();
	test_groups_init();
	test_refusal_dedupe();
	return tap_done();
}
