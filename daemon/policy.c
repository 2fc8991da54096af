/* SPDX-License-Identifier: MIT */
#include "policy.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <string.h>

#include "buf.h"

bool peer_in_group(const struct peer *p, gid_t gid)
{
	if (p->gid == gid)
		return true;
	for (size_t i = 0; i < p->n_groups && i < POLICY_MAX_GROUPS; i++)
		if (p->groups[i] == gid)
			return true;
	return false;
}

static bool set(const char *name)
{
	return name && *name;
}

static bool resolve(const char *name, gid_t *ret)
{
	struct group gr, *res = NULL;
	char tmp[4096];
	if (getgrnam_r(name, &gr, tmp, sizeof(tmp), &res) != 0 || !res)
		return false;
	*ret = res->gr_gid;
	return true;
}

void policy_groups_init(struct policy_groups *g, const char *allow, const char *admin,
                        uid_t daemon_uid)
{
	memset(g, 0, sizeof(*g));
	g->allow_name = allow;
	g->admin_name = admin;
	g->daemon_uid = daemon_uid;
	if (set(allow))
		g->have_allow = resolve(allow, &g->allow_gid);
	if (set(admin))
		g->have_admin = resolve(admin, &g->admin_gid);
}

mode_t policy_socket_mode(const struct policy_groups *g)
{
	return g->have_admin ? 0666 : 0660;
}

enum policy_role policy_role(const struct peer *p, const struct policy_groups *g)
{
	if (p->uid == 0 || p->uid == g->daemon_uid)
		return POLICY_ROLE_ADMIN;
	if (g->have_admin && peer_in_group(p, g->admin_gid))
		return POLICY_ROLE_ADMIN;
	if (g->have_allow && peer_in_group(p, g->allow_gid))
		return POLICY_ROLE_MEMBER;
	return POLICY_ROLE_NONE;
}

int64_t policy_list_uid(const struct peer *p, const struct policy_groups *g)
{
	return policy_role(p, g) == POLICY_ROLE_ADMIN ? -1 : (int64_t)p->uid;
}

/* "only root may" / "only root and members of 'X' may" */
static void who_may(struct buf *b, const struct policy_groups *g)
{
	if (set(g->admin_name))
		buf_printf(b, "only root and members of '%s' may", g->admin_name);
	else
		buf_append_str(b, "only root may");
}

int policy_check(const struct peer *p, const struct policy_groups *g, enum policy_need need,
                 const struct policy_job *job, const char *what, char **ret_message)
{
	enum policy_role role = policy_role(p, g);
	struct buf m = BUF_INIT;
	if (role == POLICY_ROLE_ADMIN)
		return 0;
	if (role == POLICY_ROLE_NONE) {
		buf_printf(&m, "permission denied: uid %u is not root", (unsigned)p->uid);
		if (set(g->allow_name) && set(g->admin_name))
			buf_printf(&m, " and not a member of group '%s' or '%s'", g->allow_name,
			           g->admin_name);
		else if (set(g->allow_name) || set(g->admin_name))
			buf_printf(&m, " and not a member of group '%s'",
			           set(g->allow_name) ? g->allow_name : g->admin_name);
	} else if (need == POLICY_ANY || (need == POLICY_OWNER && !job)) {
		return 0;
	} else if (need == POLICY_OWNER) {
		if (job->owner_uid == (uint32_t)p->uid)
			return 0;
		buf_printf(&m, "job %" PRId64 " belongs to %s; ", job->id,
		           job->owner_user ? job->owner_user : "another user");
		if (set(g->admin_name))
			buf_printf(&m, "members of '%s' may act on it", g->admin_name);
		else
			buf_append_str(&m, "only root may act on it");
	} else {
		who_may(&m, g);
		buf_printf(&m, " %s", what ? what : "do that");
	}
	if (!m.data)
		return -ENOMEM;
	*ret_message = buf_steal(&m);
	return -EPERM;
}

bool policy_refusal_note(struct policy_refusals *r, uid_t uid, const char *op, int64_t job_id,
                         uint64_t now_ms, unsigned *ret_suppressed)
{
	size_t victim = 0, op_len = strlen(op);
	if (op_len >= sizeof(r->slot[0].op))
		op_len = sizeof(r->slot[0].op) - 1;
	if (now_ms == 0)
		now_ms = 1; /* 0 marks a free slot */
	for (size_t i = 0; i < POLICY_REFUSAL_SLOTS; i++) {
		struct policy_refusal *s = &r->slot[i];
		bool victim_free = r->slot[victim].first_ms == 0;
		if (s->first_ms == 0) {
			if (!victim_free)
				victim = i; /* a free slot before the oldest used one */
			continue;
		}
		if (!victim_free && s->first_ms < r->slot[victim].first_ms)
			victim = i;
		if (s->uid != uid || s->job_id != job_id || strlen(s->op) != op_len ||
		    memcmp(s->op, op, op_len) != 0)
			continue;
		if (now_ms - s->first_ms < POLICY_REFUSAL_WINDOW_MS) {
			s->suppressed++;
			return false;
		}
		/* the window is over: log again, saying how many were not */
		*ret_suppressed = s->suppressed;
		s->first_ms = now_ms;
		s->suppressed = 0;
		return true;
	}
	struct policy_refusal *s = &r->slot[victim];
	memset(s, 0, sizeof(*s));
	s->uid = uid;
	s->job_id = job_id;
	s->first_ms = now_ms;
	memcpy(s->op, op, op_len);
	*ret_suppressed = 0;
	return true;
}
