/* SPDX-License-Identifier: MIT */
/* config-mail: SPEC §8's [mail] and [mail NAME] sections: their keys, the
 * mail each tenant resolves to, and their checks (config-private.h). */
#include "config-private.h"

#include "build-config.h"
#include "csv.h"

void config_mail_finish(struct config_mail *m)
{
	free(m->sender);
	free(m->smtp_url);
	free(m->smtp_user);
	free(m->smtp_password_file);
	free(m->template_file);
	free(m->ca_file);
	free(m->name);
	free(m->file);
	memset(m, 0, sizeof(*m));
}

int config_mail_copy(struct config_mail *ret, const struct config_mail *m)
{
	*ret = *m;
	int r = 0;
	r |= dup_or_null(&ret->sender, m->sender);
	r |= dup_or_null(&ret->smtp_url, m->smtp_url);
	r |= dup_or_null(&ret->smtp_user, m->smtp_user);
	r |= dup_or_null(&ret->smtp_password_file, m->smtp_password_file);
	r |= dup_or_null(&ret->template_file, m->template_file);
	r |= dup_or_null(&ret->ca_file, m->ca_file);
	r |= dup_or_null(&ret->name, m->name);
	r |= dup_or_null(&ret->file, m->file);
	if (r) {
		config_mail_finish(ret);
		return -ENOMEM;
	}
	return 0;
}

/* "" for [mail], NAME for [mail NAME], NULL for another section. */
const char *config_mail_section_name(const char *section)
{
	if (strncasecmp(section, "mail", 4) != 0)
		return NULL;
	if (section[4] == '\0')
		return "";
	return section[4] == ' ' ? section + 5 : NULL;
}

struct config_mail *config_mail_section(struct parse_state *st, const char *name)
{
	struct config *c = st->config;
	struct config_mail *m = NULL;
	if (!*name) {
		m = &c->mail;
	} else {
		if (!config_tenant_name_valid(name))
			return NULL;
		for (size_t i = 0; i < c->n_mails; i++)
			if (strcmp(c->mails[i].name, name) == 0)
				m = &c->mails[i];
		if (!m) {
			if (c->n_mails >= CONFIG_TENANTS_MAX)
				return NULL;
			struct config_mail *v = realloc(c->mails, (c->n_mails + 1) * sizeof(*v));
			if (!v)
				return NULL;
			c->mails = v;
			m = &c->mails[c->n_mails];
			memset(m, 0, sizeof(*m));
			m->name = strdup(name);
			if (!m->name)
				return NULL;
			c->n_mails++;
		}
	}
	if (!m->file) {
		m->file = strdup(st->path);
		if (!m->file)
			return NULL;
		m->rate = 0.5;
		m->daily_limit = 10000;
		m->line = st->line;
	}
	return m;
}

/* One key of a mail section: 1 set, 0 bad (st->error). */
int config_mail_key(struct parse_state *st, struct config_mail *m, const char *name,
		    const char *value)
{
	const char *why = NULL;
	uint64_t n;
	if (strcmp(name, "via") == 0) {
		if (strcmp(value, "graph") == 0)
			m->via = CONFIG_MAIL_GRAPH;
		else if (strcmp(value, "smtp") == 0)
			m->via = CONFIG_MAIL_SMTP;
		else
			return fail(st, "%s: '%s' is not graph or smtp", name, value);
		return 1;
	}
	if (strcmp(name, "sender") == 0) {
		if (!csv_email_check(value, &why))
			return fail(st, "%s: '%s' is not a mailbox address: %s", name, value, why);
		m->on = true;
		return set_string(&m->sender, value) == 0;
	}
	if (strcmp(name, "smtp_url") == 0) {
		bool plain = strncmp(value, "smtp://", 7) == 0, tls = strncmp(value, "smtps://", 8) == 0;
		const char *host = value + (plain ? 7 : 8);
		if ((!plain && !tls) || !*host || strpbrk(host, "/?#@ \t"))
			return fail(st, "%s: '%s' is not smtp://host[:port] (STARTTLS) or "
				    "smtps://host[:port]",
				    name, value);
		return set_string(&m->smtp_url, value) == 0;
	}
	if (strcmp(name, "smtp_user") == 0) {
		if (!*value || strpbrk(value, "\r\n"))
			return fail(st, "%s: '%s' is not a user name", name, value);
		return set_string(&m->smtp_user, value) == 0;
	}
	if (strcmp(name, "smtp_password_file") == 0 || strcmp(name, "template") == 0 ||
	    strcmp(name, "ca_file") == 0) {
		if (value[0] != '/')
			return fail(st, "%s: '%s' must be an absolute path", name, value);
		return set_string(name[0] == 's' ? &m->smtp_password_file
				  : name[0] == 't' ? &m->template_file
						   : &m->ca_file,
				  value) == 0;
	}
	if (strcmp(name, "rate") == 0) {
		if (!parse_rate(value, 1000, &m->rate))
			return fail(st, "%s: '%s' must be more than 0 and at most 1000 (messages per "
				    "second)",
				    name, value);
		return 1;
	}
	if (strcmp(name, "daily_limit") == 0) {
		if (!parse_u64(value, 1, 10000000, &n))
			return fail(st, "%s: '%s' is not a whole number from 1 to 10000000", name, value);
		m->daily_limit = (unsigned)n;
		return 1;
	}
	return fail(st, "unknown key '%s' in a mail section", name);
}

/* The mail section that applies to tenant name: [mail NAME], else [mail]. */
static const struct config_mail *mail_for(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_mails; i++)
		if (name && strcmp(c->mails[i].name, name) == 0)
			return &c->mails[i];
	return &c->mail;
}

int config_mail_resolve(const struct config *c, struct config_tenant *t)
{
	int r = 0;
	config_mail_finish(&t->mail);
	const struct config_mail *m = mail_for(c, t->name);
	if (m->file && config_mail_copy(&t->mail, m) < 0)
		return -ENOMEM;
	if (t->mail.on && !t->mail.template_file)
		r |= set_string(&t->mail.template_file, INVITED_DEFAULT_TEMPLATE);
	return r ? -ENOMEM : 0;
}

int config_mail_check(const struct config *c, char **ret_error)
{
	const char *why = NULL;
	for (size_t i = 0; i <= c->n_mails; i++) {
		const struct config_mail *m = i < c->n_mails ? &c->mails[i] : &c->mail;
		if (!m->file)
			continue;
		bool known = !m->name;
		for (size_t k = 0; !known && k < c->n_tenants; k++)
			known = strcmp(c->tenants[k].name, m->name) == 0;
		if (!known)
			why = "is for a tenant that has no [tenant NAME] section";
		else if (!m->on)
			why = "sender is not set (the mailbox the invitation mail comes from)";
		else if (m->via == CONFIG_MAIL_SMTP && !m->smtp_url)
			why = "via = smtp needs smtp_url";
		else if (m->via == CONFIG_MAIL_GRAPH && (m->smtp_url || m->smtp_user))
			why = "smtp_url and smtp_user are for via = smtp";
		if (!why)
			continue;
		struct buf msg = BUF_INIT;
		buf_printf(&msg, "%s:%u: [mail%s%s]: %s", m->file, m->line, m->name ? " " : "",
			   m->name ? m->name : "", why);
		*ret_error = msg.data ? buf_steal(&msg) : strdup("out of memory");
		return -EINVAL;
	}
	return 0;
}
