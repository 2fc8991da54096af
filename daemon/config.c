/* SPDX-License-Identifier: MIT */
#include "config.h"
#include "config-private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "csv.h"
#include "timeutil.h"
#include "hook.h"

void config_tenant_finish(struct config_tenant *t)
{
	config_mail_finish(&t->mail);
	free(t->name);
	free(t->tenant);
	free(t->client_id);
	free(t->client_secret_file);
	free(t->certificate_file);
	free(t->cloud);
	free(t->authority_url);
	free(t->graph_url);
	free(t->allow_group);
	free(t->admin_group);
	free(t->file);
	memset(t, 0, sizeof(*t));
}

int config_tenant_copy(struct config_tenant *ret, const struct config_tenant *t)
{
	*ret = *t;
	int r = 0;
	memset(&ret->mail, 0, sizeof(ret->mail));
	r |= config_mail_copy(&ret->mail, &t->mail) < 0;
	r |= dup_or_null(&ret->name, t->name);
	r |= dup_or_null(&ret->tenant, t->tenant);
	r |= dup_or_null(&ret->client_id, t->client_id);
	r |= dup_or_null(&ret->client_secret_file, t->client_secret_file);
	r |= dup_or_null(&ret->certificate_file, t->certificate_file);
	r |= dup_or_null(&ret->cloud, t->cloud);
	r |= dup_or_null(&ret->authority_url, t->authority_url);
	r |= dup_or_null(&ret->graph_url, t->graph_url);
	r |= dup_or_null(&ret->allow_group, t->allow_group);
	r |= dup_or_null(&ret->admin_group, t->admin_group);
	r |= dup_or_null(&ret->file, t->file);
	if (r) {
		config_tenant_finish(ret);
		return -ENOMEM;
	}
	return 0;
}

bool config_tenant_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > CONFIG_TENANT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '-'))
			return false;
	return true;
}

const struct config_tenant *config_tenant_find(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_tenants; i++)
		if (strcmp(c->tenants[i].name, name) == 0)
			return &c->tenants[i];
	return NULL;
}

int config_init(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->authority_url = strdup("https://login.microsoftonline.com");
	c->graph_url = strdup("https://graph.microsoft.com");
	c->cloud = strdup("global");
	c->socket_path = strdup("/run/invited/invited.sock");
	c->database = strdup("/var/lib/invited/invited.db");
	c->allow_group = strdup("invite");
	c->rate = 10;
	c->burst = 10;
	c->concurrency = 16;
	c->max_attempts = 8;
	c->request_timeout_ms = 30000;
	c->onboard = (struct config_onboard){.track_interval_ms = 3600000, .max_resends = 3,
					     /* group_rate: Graph's writes, 3,000 per 150 s
					      * per app and tenant (GRAPH.md §4) */
					     .lookup_rate = 50, .group_rate = 20, .track_rate = 5,
					     .replication_delay_ms = 60000};
	c->max_upload_bytes = 64u * 1024u * 1024u;
	c->max_rows = 1000000;
	c->retention_days = 90;
	c->first_request_timeout_ms = 10000;
	c->idle_timeout_ms = 300000;
	c->max_connections_per_uid = 16;
	c->batch = 1;
	c->hook_user = strdup("nobody");
	if (!c->authority_url || !c->graph_url || !c->socket_path || !c->database ||
	    !c->allow_group || !c->cloud || !c->hook_user) {
		config_finish(c);
		return -ENOMEM;
	}
	return 0;
}

void config_finish(struct config *c)
{
	free(c->tenant);
	free(c->client_id);
	free(c->client_secret_file);
	free(c->authority_url);
	free(c->graph_url);
	free(c->certificate_file);
	free(c->ca_file);
	free(c->proxy);
	free(c->cloud);
	free(c->socket_path);
	free(c->database);
	free(c->allow_group);
	free(c->admin_group);
	hook_argv_free(c->on_complete);
	free(c->hook_user);
	free(c->missing_path);
	free(c->tenant_file);
	for (size_t i = 0; i < c->n_tenants; i++)
		config_tenant_finish(&c->tenants[i]);
	free(c->tenants);
	config_mail_finish(&c->mail);
	for (size_t i = 0; i < c->n_mails; i++)
		config_mail_finish(&c->mails[i]);
	free(c->mails);
	memset(c, 0, sizeof(*c));
}

static bool parse_seconds_ms(const char *v, uint64_t *ret)
{
	errno = 0;
	char *end;
	double d = strtod(v, &end);
	if (errno || end == v || *end != '\0' || !isfinite(d) || d < 0.1 || d > 3600)
		return false;
	*ret = (uint64_t)llround(d * 1000.0);
	return true;
}

/* GRAPH.md §2, https://learn.microsoft.com/en-us/graph/deployments */
/* A duration (time_parse_duration: seconds, or a number with s, m, h or d)
 * from 0.1 s to 30 days; callers narrow it. */
static bool parse_duration_ms(const char *v, uint64_t *ret)
{
	uint64_t ms;
	if (time_parse_duration(v, &ms) < 0 || ms < 100 || ms > 30 * UINT64_C(86400000))
		return false;
	*ret = ms;
	return true;
}

static const struct {
	const char *name, *authority_url, *graph_url;
} clouds[] = {
	{"global", "https://login.microsoftonline.com", "https://graph.microsoft.com"},
	{"usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"},
	{"usgov-dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"},
	{"china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"},
};

static int set_cloud(struct config *c, const char *value)
{
	for (size_t i = 0; i < sizeof(clouds) / sizeof(clouds[0]); i++) {
		if (strcmp(value, clouds[i].name) != 0)
			continue;
		if (set_string(&c->cloud, value) < 0)
			return -ENOMEM;
		/* an explicit URL wins, whichever line comes first */
		if (!c->authority_url_set && set_string(&c->authority_url, clouds[i].authority_url) < 0)
			return -ENOMEM;
		if (!c->graph_url_set && set_string(&c->graph_url, clouds[i].graph_url) < 0)
			return -ENOMEM;
		return 0;
	}
	return -EINVAL;
}

static bool http_url(const char *v)
{
	return csv_url_check(v, NULL);
}

bool config_url_secure(const char *url)
{
	if (strncasecmp(url, "https://", 8) == 0)
		return true;
	if (strncasecmp(url, "http://", 7) != 0)
		return false;
	const char *auth = url + 7;
	size_t len = strcspn(auth, "/?#");
	/* userinfo ends at the last '@' of the authority */
	for (size_t i = len; i > 0; i--)
		if (auth[i - 1] == '@') {
			auth += i;
			len -= i;
			break;
		}
	char host[64];
	size_t hlen;
	if (len > 0 && auth[0] == '[') {
		const char *end = memchr(auth, ']', len);
		if (!end)
			return false;
		hlen = (size_t)(end - auth - 1);
		auth++;
	} else {
		const char *colon = memchr(auth, ':', len);
		hlen = colon ? (size_t)(colon - auth) : len;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return false;
	memcpy(host, auth, hlen);
	host[hlen] = '\0';
	if (strcasecmp(host, "localhost") == 0)
		return true;
	unsigned char a[16];
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	static const unsigned char loop6[16] = {[15] = 1};
	return inet_pton(AF_INET6, host, a) == 1 && memcmp(a, loop6, 16) == 0;
}

#define CA_FILE_MAX (16u * 1024u * 1024u) /* the system's bundle is ~200 KiB */

/* 0 when path can be read and holds a PEM certificate, else a reason. */
static const char *ca_file_problem(const char *path, char *why, size_t why_size)
{
	static const char marker[] = "-----BEGIN CERTIFICATE-----";
	char chunk[8192 + sizeof(marker)]; /* a read, after the tail of the last */
	size_t keep = 0, total = 0;
	struct stat st;
	/* O_NONBLOCK: a FIFO must not stall the start; it is refused below */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(why, why_size, "cannot read: %s", strerror(errno));
		return why;
	}
	const char *r = "holds no PEM certificate (-----BEGIN CERTIFICATE-----)";
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return "is not a regular file";
	}
	for (;;) {
		ssize_t n = read(fd, chunk + keep, sizeof(chunk) - keep);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, why_size, "cannot read: %s", strerror(errno));
			r = why;
			break;
		}
		if (n == 0)
			break;
		total += (size_t)n;
		if (memmem(chunk, keep + (size_t)n, marker, sizeof(marker) - 1)) {
			r = NULL;
			break;
		}
		if (total > CA_FILE_MAX) {
			r = "is larger than 16 MiB";
			break;
		}
		/* a marker split across two reads is found in the next */
		size_t have = keep + (size_t)n;
		keep = have < sizeof(marker) - 1 ? have : sizeof(marker) - 1;
		memmove(chunk, chunk + have - keep, keep);
	}
	close(fd);
	return r;
}

/* [graph] ca_file and proxy: how requests reach the token endpoint and
 * Graph. An empty value (in a drop-in) goes back to the default. */
static int set_transport_key(struct parse_state *st, const char *name, const char *value)
{
	struct config *c = st->config;
	bool ca = strcmp(name, "ca_file") == 0;
	char **slot = ca ? &c->ca_file : &c->proxy;
	if (*value == '\0') {
		free(*slot);
		*slot = NULL;
		return 1;
	}
	if (ca) {
		char why[256];
		if (value[0] != '/')
			return fail(st, "%s: '%s' is not an absolute path", name, value);
		const char *problem = ca_file_problem(value, why, sizeof(why));
		if (problem)
			return fail(st, "%s: '%s' %s", name, value, problem);
	} else {
		const char *why = NULL;
		/* scheme://[user:password@]host[:port][/], nothing after */
		const char *p = strstr(value, "://");
		const char *host = p ? p + 3 : NULL;
		if (!csv_url_check(value, &why))
			return fail(st, "%s: '%s' is not an http:// or https:// proxy URL (%s)", name,
				    value, why);
		if (host && host[strcspn(host, "/?#")] != '\0' &&
		    strcmp(host + strcspn(host, "/?#"), "/") != 0)
			return fail(st, "%s: '%s' has a path; a proxy URL is scheme://host:port", name,
				    value);
	}
	return set_string(slot, value) == 0;
}

/* Where a [queue] key goes: [queue] itself, or a [tenant NAME] section
 * (then *set records which it set). */
struct queue_slots {
	double *rate;
	unsigned *burst, *concurrency, *max_attempts;
	uint64_t *request_timeout_ms;
	unsigned *batch;
	struct config_onboard *onboard;
	unsigned *set;
};

/* A rate of the onboarding steps (per second). */
static int onboard_rate(struct parse_state *st, const char *name, const char *value, double *slot)
{
	if (!parse_rate(value, 10000, slot))
		return fail(st, "%s: '%s' must be more than 0 and at most 10000 (per second)", name,
			    value);
	return 1;
}

/* 1 set, 0 bad value (st->error), -1 not a [queue] key. */
static int queue_key(struct parse_state *st, struct queue_slots *q, const char *name,
		     const char *value)
{
	uint64_t n;
	unsigned dummy = 0, *set = q->set ? q->set : &dummy;
	if (strcmp(name, "rate") == 0) {
		if (!parse_rate(value, 100000, q->rate))
			return fail(st, "%s: '%s' must be more than 0 and at most 100000 "
				    "(invitations per second)",
				    name, value);
		*set |= CONFIG_SET_RATE;
		return 1;
	}
	if (strcmp(name, "burst") == 0) {
		if (!parse_u64(value, 1, 100000, &n))
			return fail(st, "%s: '%s' is not a whole number from 1 to 100000", name, value);
		*q->burst = (unsigned)n;
		*set |= CONFIG_SET_BURST;
		return 1;
	}
	if (strcmp(name, "concurrency") == 0) {
		if (!parse_u64(value, 1, 4096, &n))
			return fail(st, "%s: '%s' is not a whole number from 1 to 4096", name, value);
		*q->concurrency = (unsigned)n;
		*set |= CONFIG_SET_CONCURRENCY;
		return 1;
	}
	if (strcmp(name, "max_attempts") == 0) {
		if (!parse_u64(value, 1, 100, &n))
			return fail(st, "%s: '%s' is not a whole number from 1 to 100", name, value);
		*q->max_attempts = (unsigned)n;
		*set |= CONFIG_SET_MAX_ATTEMPTS;
		return 1;
	}
	if (strcmp(name, "batch") == 0) {
		if (!parse_u64(value, 1, 20, &n))
			return fail(st, "%s: '%s' is not a whole number from 1 to 20 (Graph's $batch limit)",
				    name, value);
		*q->batch = (unsigned)n;
		*set |= CONFIG_SET_BATCH;
		return 1;
	}
	if (strcmp(name, "request_timeout") == 0) {
		if (!parse_seconds_ms(value, q->request_timeout_ms))
			return fail(st, "%s: '%s' is not a number of seconds from 0.1 to 3600", name,
				    value);
		*set |= CONFIG_SET_REQUEST_TIMEOUT;
		return 1;
	}
	struct config_onboard *ob = q->onboard;
	if (strcmp(name, "lookup") == 0) {
		if (csv_parse_flag(value, &ob->lookup) < 0)
			return fail(st, "%s: '%s' is not yes or no", name, value);
		*set |= CONFIG_SET_LOOKUP;
		return 1;
	}
	if (strcmp(name, "track_days") == 0) {
		if (!parse_u64(value, 0, 365, &n))
			return fail(st, "%s: '%s' is not a whole number of days from 0 to 365", name,
				    value);
		ob->track_days = (unsigned)n;
		*set |= CONFIG_SET_TRACK_DAYS;
		return 1;
	}
	if (strcmp(name, "track_interval") == 0) {
		if (!parse_duration_ms(value, &ob->track_interval_ms) || ob->track_interval_ms < 1000)
			return fail(st, "%s: '%s' is not a duration from 1s to 30d (seconds, or a "
				    "number with s, m, h or d)",
				    name, value);
		*set |= CONFIG_SET_TRACK_INTERVAL;
		return 1;
	}
	if (strcmp(name, "replication_delay") == 0) {
		if (strcmp(value, "0") == 0)
			ob->replication_delay_ms = 0;
		else if (!parse_duration_ms(value, &ob->replication_delay_ms) ||
			 ob->replication_delay_ms > 86400000)
			return fail(st, "%s: '%s' is not 0 or a duration from 0.1s to 1d (seconds, "
				    "or a number with s, m, h or d)",
				    name, value);
		*set |= CONFIG_SET_REPLICATION_DELAY;
		return 1;
	}
	if (strcmp(name, "max_resends") == 0) {
		if (!parse_u64(value, 0, 100, &n))
			return fail(st, "%s: '%s' is not a whole number from 0 to 100", name, value);
		ob->max_resends = (unsigned)n;
		*set |= CONFIG_SET_MAX_RESENDS;
		return 1;
	}
	if (strcmp(name, "lookup_rate") == 0) {
		*set |= CONFIG_SET_LOOKUP_RATE;
		return onboard_rate(st, name, value, &ob->lookup_rate);
	}
	if (strcmp(name, "group_rate") == 0) {
		*set |= CONFIG_SET_GROUP_RATE;
		return onboard_rate(st, name, value, &ob->group_rate);
	}
	if (strcmp(name, "track_rate") == 0) {
		*set |= CONFIG_SET_TRACK_RATE;
		return onboard_rate(st, name, value, &ob->track_rate);
	}
	return -1;
}

/* Where the keys a [tenant NAME] section shares with [graph] go. */
struct graph_slots {
	char **client_id, **client_secret_file, **certificate_file;
	char **authority_url, **graph_url;
	bool *authority_url_set, *graph_url_set;
};

/* client_id, the credential files and the two URLs, in [graph] or a
 * [tenant NAME]: 1 set, 0 bad value (st->error), -1 not one of these. */
static int graph_key(struct parse_state *st, const struct graph_slots *g, const char *name,
		     const char *value)
{
	if (strcmp(name, "client_id") == 0) {
		if (!*value || strpbrk(value, "/?#& \t"))
			return fail(st, "%s: '%s' is not an application (client) id", name, value);
		return set_string(g->client_id, value) == 0;
	}
	if (strcmp(name, "client_secret_file") == 0 || strcmp(name, "certificate_file") == 0) {
		if (value[0] != '/')
			return fail(st, "%s: '%s' is not an absolute path", name, value);
		return set_string(name[1] == 'l' ? g->client_secret_file : g->certificate_file,
				  value) == 0;
	}
	if (strcmp(name, "authority_url") == 0 || strcmp(name, "graph_url") == 0) {
		if (!http_url(value))
			return fail(st, "%s: '%s' is not an absolute http(s) URL", name, value);
		if (!config_url_secure(value))
			return fail(st,
				    "%s: '%s' is not https: the client secret and the token "
				    "would cross the network in clear text (http:// is allowed "
				    "only to 127.0.0.0/8, [::1] and localhost)",
				    name, value);
		bool authority = name[0] == 'a';
		char **slot = authority ? g->authority_url : g->graph_url;
		*(authority ? g->authority_url_set : g->graph_url_set) = true;
		if (set_string(slot, value) < 0)
			return 0;
		size_t len = strlen(*slot);
		while (len > 0 && (*slot)[len - 1] == '/')
			(*slot)[--len] = '\0';
		return 1;
	}
	return -1;
}

static bool is_cloud(const char *value)
{
	for (size_t i = 0; i < sizeof(clouds) / sizeof(clouds[0]); i++)
		if (strcmp(value, clouds[i].name) == 0)
			return true;
	return false;
}

/* A key of a [tenant NAME] section: [graph]'s per-tenant keys, [queue]'s,
 * allow_group and admin_group. */
static int tenant_key(struct parse_state *st, struct config_tenant *t, const char *name,
		      const char *value)
{
	struct queue_slots q = {&t->rate, &t->burst, &t->concurrency, &t->max_attempts,
				&t->request_timeout_ms, &t->batch, &t->onboard, &t->set};
	int r = queue_key(st, &q, name, value);
	if (r >= 0)
		return r;
	struct graph_slots g = {&t->client_id,	   &t->client_secret_file, &t->certificate_file,
				&t->authority_url, &t->graph_url,	   &t->authority_url_set,
				&t->graph_url_set};
	r = graph_key(st, &g, name, value);
	if (r >= 0)
		return r;
	if (strcmp(name, "tenant") == 0) {
		if (!*value || strpbrk(value, "/?# \t"))
			return fail(st, "%s: '%s' is not a tenant id or domain", name, value);
		return set_string(&t->tenant, value) == 0;
	}
	if (strcmp(name, "cloud") == 0) {
		if (!is_cloud(value))
			return fail(st, "%s: '%s' is not global, usgov, usgov-dod or china", name,
				    value);
		return set_string(&t->cloud, value) == 0;
	}
	if (strcmp(name, "allow_group") == 0) {
		t->allow_group_set = true;
		return set_string(&t->allow_group, value) == 0;
	}
	if (strcmp(name, "admin_group") == 0) {
		t->admin_group_set = true;
		return set_string(&t->admin_group, value) == 0;
	}
	return fail(st, "unknown key '%s' in [tenant %s]", name, t->name);
}

/* config_tenant_find for the reader, which fills the tenant in */
static struct config_tenant *tenant_by_name(struct config *c, const char *name)
{
	return (struct config_tenant *)config_tenant_find(c, name);
}

/* The name of a "[tenant NAME]" section, or NULL for another section. */
static const char *tenant_section_name(const char *section)
{
	if (strncasecmp(section, "tenant", 6) != 0)
		return NULL;
	if (section[6] == '\0')
		return "";
	if (section[6] != ' ')
		return NULL;
	return section + 7;
}

/* A "[...]" line, seen by the reader before inih: a [tenant NAME] section
 * is checked and made here (so that an empty one exists too and a bad one
 * is named with its line). 0, or -EINVAL with st->error. */
static int section_line(struct parse_state *st, const char *text)
{
	struct config *c = st->config;
	while (*text == ' ' || *text == '\t')
		text++;
	if (*text != '[')
		return 0;
	const char *end = strchr(text, ']');
	if (!end)
		return 0; /* inih says what is wrong with it */
	char section[128];
	size_t len = (size_t)(end - text - 1);
	if (len >= sizeof(section))
		len = sizeof(section) - 1;
	memcpy(section, text + 1, len);
	section[len] = '\0';
	const char *name = tenant_section_name(section);
	if (!name)
		return 0;
	if (!config_tenant_name_valid(name)) {
		fail(st, "[%s]: a tenant needs a name of 1 to %d characters a-z, 0-9 and '-': "
			 "[tenant NAME]",
		     section, CONFIG_TENANT_NAME_MAX);
		return -EINVAL;
	}
	c->have_tenant_sections = true;
	struct config_tenant *t = tenant_by_name(c, name);
	if (t && t->seen_gen == st->gen) {
		fail(st, "[tenant %s] is defined twice in this file (first on line %u)", name,
		     t->seen_line);
		return -EINVAL;
	}
	if (!t) {
		if (c->n_tenants >= CONFIG_TENANTS_MAX) {
			fail(st, "more than %d tenants", CONFIG_TENANTS_MAX);
			return -EINVAL;
		}
		t = realloc(c->tenants, (c->n_tenants + 1) * sizeof(*t));
		if (!t)
			return -ENOMEM;
		c->tenants = t;
		t = &c->tenants[c->n_tenants++];
		memset(t, 0, sizeof(*t));
		t->name = strdup(name);
		t->file = strdup(st->path);
		t->line = st->line;
		if (!t->name || !t->file)
			return -ENOMEM;
	}
	t->seen_gen = st->gen;
	t->seen_line = st->line;
	return 0;
}

/* inih's reader: fgets, counting lines and looking at section lines. */
static char *reader(char *str, int num, void *stream)
{
	struct parse_state *st = stream;
	if (st->stop)
		return NULL;
	bool start = st->at_line_start;
	if (start)
		st->line++;
	char *r = fgets(str, num, st->f);
	if (!r)
		return NULL;
	size_t len = strlen(r);
	st->at_line_start = len > 0 && r[len - 1] == '\n';
	if (start && section_line(st, r) < 0) {
		st->stop = true;
		if (!st->error)
			st->error = strdup("out of memory");
		return NULL;
	}
	return r;
}

/* One "key = value" line. Returns 1 to go on, 0 for a bad line. */
static int handle(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *st = user;
	struct config *c = st->config;
	uint64_t n;

	if (strcasecmp(section, "graph") == 0) {
		if (strcmp(name, "ca_file") == 0 || strcmp(name, "proxy") == 0)
			return set_transport_key(st, name, value);
		if (strcmp(name, "tenant") == 0) {
			if (!*value || strpbrk(value, "/?# \t"))
				return fail(st, "%s: '%s' is not a tenant id or domain", name, value);
			c->tenant_line = st->line;
			if (set_string(&c->tenant_file, st->path) < 0)
				return 0;
			return set_string(&c->tenant, value) == 0;
		}
		if (strcmp(name, "app_rate") == 0) {
			errno = 0;
			char *end;
			double d = strtod(value, &end);
			if (errno || end == value || *end != '\0' || !isfinite(d) || d < 0 ||
			    d > 1000000)
				return fail(st, "%s: '%s' must be from 0 (no ceiling) to 1000000 "
					    "(invitations per second over all tenants)",
					    name, value);
			c->app_rate = d;
			return 1;
		}
		struct graph_slots g = {&c->client_id,	   &c->client_secret_file,
					&c->certificate_file, &c->authority_url,
					&c->graph_url,	   &c->authority_url_set,
					&c->graph_url_set};
		int r = graph_key(st, &g, name, value);
		if (r >= 0)
			return r;
		if (strcmp(name, "cloud") == 0) {
			r = set_cloud(c, value);
			if (r == -EINVAL)
				return fail(st, "%s: '%s' is not global, usgov, usgov-dod or china", name,
					    value);
			return r == 0;
		}
	} else if (strcasecmp(section, "queue") == 0) {
		struct queue_slots q = {&c->rate, &c->burst, &c->concurrency, &c->max_attempts,
					&c->request_timeout_ms, &c->batch, &c->onboard, NULL};
		int r = queue_key(st, &q, name, value);
		if (r >= 0)
			return r;
	} else if (strcasecmp(section, "daemon") == 0) {
		if (strcmp(name, "socket") == 0 || strcmp(name, "database") == 0) {
			if (value[0] != '/')
				return fail(st, "%s: '%s' is not an absolute path", name, value);
			if (strcmp(name, "socket") == 0 && strlen(value) >= 108)
				return fail(st, "%s: '%s' is longer than a socket path may be", name,
					    value);
			return set_string(name[0] == 's' ? &c->socket_path : &c->database, value) ==
			       0;
		}
		if (strcmp(name, "allow_group") == 0)
			return set_string(&c->allow_group, value) == 0;
		if (strcmp(name, "admin_group") == 0)
			return set_string(&c->admin_group, value) == 0;
		if (strcmp(name, "max_upload_bytes") == 0) {
			if (!parse_u64(value, 1024, UINT64_C(1) << 40, &c->max_upload_bytes))
				return fail(st, "%s: '%s' is not a size from 1024 bytes to 1 TiB", name,
					    value);
			return 1;
		}
		if (strcmp(name, "first_request_timeout") == 0 ||
		    strcmp(name, "idle_timeout") == 0) {
			uint64_t *slot = name[0] == 'f' ? &c->first_request_timeout_ms
							 : &c->idle_timeout_ms;
			if (!parse_duration_ms(value, slot) || *slot > 86400000)
				return fail(st, "%s: '%s' is not a duration from 0.1s to 24h "
						"(seconds, or a number with s, m or h)",
					    name, value);
			return 1;
		}
		if (strcmp(name, "max_connections_per_uid") == 0) {
			if (!parse_u64(value, 1, 256, &n))
				return fail(st, "%s: '%s' is not a number from 1 to 256", name, value);
			c->max_connections_per_uid = (unsigned)n;
			return 1;
		}
		if (strcmp(name, "retention_days") == 0) {
			if (!parse_u64(value, 0, 36500, &n))
				return fail(st, "%s: '%s' is not a number of days from 0 (keep) to 36500",
					    name, value);
			c->retention_days = (unsigned)n;
			return 1;
		}
		if (strcmp(name, "on_complete") == 0) {
			char **argv = NULL;
			const char *why = NULL;
			if (*value == '\0') { /* empty: no command (a drop-in may unset it) */
				hook_argv_free(c->on_complete);
				c->on_complete = NULL;
				return 1;
			}
			int r = hook_split_command(value, &argv, &why);
			if (r == -EINVAL)
				return fail(st, "%s: %s", name, why);
			if (r < 0)
				return 0;
			struct stat sb;
			const char *bad = NULL;
			if (stat(argv[0], &sb) < 0)
				bad = strerror(errno);
			else if (!S_ISREG(sb.st_mode))
				bad = "is not a regular file";
			else if (!(sb.st_mode & 0111))
				bad = "is not executable (no x bit)";
			if (bad) {
				fail(st, "%s: '%s': %s", name, argv[0], bad);
				hook_argv_free(argv);
				return 0;
			}
			hook_argv_free(c->on_complete);
			c->on_complete = argv;
			return 1;
		}
		if (strcmp(name, "hook_user") == 0) {
			if (!*value || strpbrk(value, ": \t/"))
				return fail(st, "%s: '%s' is not a user name", name, value);
			c->hook_user_set = true;
			return set_string(&c->hook_user, value) == 0;
		}
		if (strcmp(name, "max_rows") == 0) {
			if (!parse_u64(value, 1, 100000000, &c->max_rows))
				return fail(st, "%s: '%s' is not a whole number from 1 to 100000000",
					    name, value);
			return 1;
		}
	} else if (config_mail_section_name(section)) {
		struct config_mail *m = config_mail_section(st, config_mail_section_name(section));
		if (!m)
			return fail(st, "[%s]: a mail section is [mail] or [mail NAME] of a tenant NAME",
				    section);
		return config_mail_key(st, m, name, value);
	} else if (tenant_section_name(section)) {
		struct config_tenant *t = tenant_by_name(c, tenant_section_name(section));
		if (!t) /* the reader made every valid one */
			return fail(st, "[%s] is not a valid tenant section", section);
		return tenant_key(st, t, name, value);
	} else {
		return fail(st, "unknown section [%s]", section);
	}
	return fail(st, "unknown key '%s' in [%s]", name, section);
}

static int load_file(struct config *c, const char *path, char **ret_error)
{
	struct parse_state st = {
		.config = c, .error = NULL, .path = path, .at_line_start = true, .gen = ++c->load_gen};
	FILE *f = fopen(path, "re");
	if (!f) {
		int r = -errno;
		struct buf m = BUF_INIT;
		buf_printf(&m, "cannot read '%s': %s", path, strerror(errno));
		*ret_error = buf_steal(&m);
		return r;
	}
	st.f = f;
	int line = ini_parse_stream(reader, &st, handle, &st);
	fclose(f);
	if (line == 0 && st.stop)
		line = (int)st.line;
	if (line == 0)
		return 0;
	struct buf m = BUF_INIT;
	if (line < 0)
		buf_printf(&m, "%s: cannot read", path);
	else
		buf_printf(&m, "%s:%d: %s", path, line,
			   st.error ? st.error : "not a [section] or key = value line");
	free(st.error);
	*ret_error = buf_steal(&m);
	return -EINVAL;
}

static int config_load_files(struct config *c, const char *path, bool required, char **ret_error);
static int config_resolve(struct config *c);

int config_load(struct config *c, const char *path, bool required, char **ret_error)
{
	/* SPEC: comments stand on their own lines; an inline "#" or ";" is part
	 * of the value. Long lines are allowed (URLs, paths). */
	ini_allow_inline_comments = false;
	ini_stop_on_first_error = true;
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = 64 * 1024;

	int r = config_load_files(c, path, required, ret_error);
	if (r == 0 && (r = config_resolve(c)) < 0) {
		struct buf m = BUF_INIT;
		buf_printf(&m, "%s: out of memory", path);
		*ret_error = m.data ? buf_steal(&m) : NULL;
	}
	return r;
}

static int config_load_files(struct config *c, const char *path, bool required, char **ret_error)
{
	int r = load_file(c, path, ret_error);
	if (r == -ENOENT && !required) {
		/* drop-ins may hold it all; else config_check names the file */
		free(*ret_error);
		*ret_error = NULL;
		free(c->missing_path);
		c->missing_path = strdup(path);
		c->missing_errno = ENOENT;
		if (!c->missing_path)
			return -ENOMEM;
	} else if (r < 0) {
		return r;
	}

	struct buf pattern = BUF_INIT;
	if (buf_printf(&pattern, "%s.d/*.conf", path) < 0)
		return -ENOMEM;
	glob_t g;
	int gr = glob(pattern.data, 0, NULL, &g); /* sorted by name */
	buf_finish(&pattern);
	if (gr == GLOB_NOMATCH)
		return 0;
	if (gr != 0)
		return -ENOMEM;
	r = 0;
	for (size_t i = 0; i < g.gl_pathc && r == 0; i++)
		r = load_file(c, g.gl_pathv[i], ret_error);
	globfree(&g);
	return r;
}

static const char *cloud_url(const char *cloud, bool authority)
{
	for (size_t i = 0; i < sizeof(clouds) / sizeof(clouds[0]); i++)
		if (strcmp(cloud, clouds[i].name) == 0)
			return authority ? clouds[i].authority_url : clouds[i].graph_url;
	return NULL;
}

/* What a tenant does not set comes from [graph], [queue] and [daemon]. */

static int resolve_tenant(const struct config *c, struct config_tenant *t)
{
	int r = 0;
	if (config_mail_resolve(c, t) < 0)
		return -ENOMEM;
	bool own_cloud = t->cloud != NULL;
	if (!t->client_id && c->client_id)
		r |= set_string(&t->client_id, c->client_id);
	if (!own_cloud)
		r |= set_string(&t->cloud, c->cloud);
	if (!t->authority_url_set)
		r |= set_string(&t->authority_url,
				own_cloud ? cloud_url(t->cloud, true) : c->authority_url);
	if (!t->graph_url_set)
		r |= set_string(&t->graph_url, own_cloud ? cloud_url(t->cloud, false) : c->graph_url);
	if (!(t->set & CONFIG_SET_RATE))
		t->rate = c->rate;
	if (!(t->set & CONFIG_SET_BURST))
		t->burst = c->burst;
	if (!(t->set & CONFIG_SET_CONCURRENCY))
		t->concurrency = c->concurrency;
	if (!(t->set & CONFIG_SET_MAX_ATTEMPTS))
		t->max_attempts = c->max_attempts;
	if (!(t->set & CONFIG_SET_REQUEST_TIMEOUT))
		t->request_timeout_ms = c->request_timeout_ms;
	if (!(t->set & CONFIG_SET_BATCH))
		t->batch = c->batch;
	if (!(t->set & CONFIG_SET_LOOKUP))
		t->onboard.lookup = c->onboard.lookup;
	if (!(t->set & CONFIG_SET_TRACK_DAYS))
		t->onboard.track_days = c->onboard.track_days;
	if (!(t->set & CONFIG_SET_TRACK_INTERVAL))
		t->onboard.track_interval_ms = c->onboard.track_interval_ms;
	if (!(t->set & CONFIG_SET_MAX_RESENDS))
		t->onboard.max_resends = c->onboard.max_resends;
	if (!(t->set & CONFIG_SET_LOOKUP_RATE))
		t->onboard.lookup_rate = c->onboard.lookup_rate;
	if (!(t->set & CONFIG_SET_GROUP_RATE))
		t->onboard.group_rate = c->onboard.group_rate;
	if (!(t->set & CONFIG_SET_TRACK_RATE))
		t->onboard.track_rate = c->onboard.track_rate;
	if (!(t->set & CONFIG_SET_REPLICATION_DELAY))
		t->onboard.replication_delay_ms = c->onboard.replication_delay_ms;
	if (!t->allow_group_set && c->allow_group)
		r |= set_string(&t->allow_group, c->allow_group);
	if (!t->admin_group_set && c->admin_group)
		r |= set_string(&t->admin_group, c->admin_group);
	return r ? -ENOMEM : 0;
}

static int config_resolve(struct config *c)
{
	if (!c->have_tenant_sections && c->tenant && c->n_tenants == 0) {
		/* a wave-1 file: its one tenant is "default" */
		struct config_tenant *t = calloc(1, sizeof(*t));
		if (!t)
			return -ENOMEM;
		c->tenants = t;
		c->n_tenants = 1;
		t->name = strdup("default");
		t->tenant = strdup(c->tenant);
		t->file = strdup(c->tenant_file ? c->tenant_file : "");
		t->line = c->tenant_line;
		if (!t->name || !t->tenant || !t->file)
			return -ENOMEM;
	}
	for (size_t i = 0; i < c->n_tenants; i++)
		if (resolve_tenant(c, &c->tenants[i]) < 0)
			return -ENOMEM;
	return 0;
}

int config_check(const struct config *c, char **ret_error)
{
	const char *why = NULL;
	if (c->n_tenants == 0 && !c->have_tenant_sections && c->missing_path) {
		struct buf m = BUF_INIT;
		buf_printf(&m, "cannot read '%s': %s", c->missing_path, strerror(c->missing_errno));
		*ret_error = m.data ? buf_steal(&m) : strdup("out of memory");
		return -EINVAL;
	}
	if (c->have_tenant_sections && c->tenant) {
		struct buf m = BUF_INIT;
		buf_printf(&m, "%s:%u: tenant = in [graph] is for a single tenant; put it in "
			       "[tenant NAME]",
			   c->tenant_file ? c->tenant_file : "?", c->tenant_line);
		*ret_error = m.data ? buf_steal(&m) : strdup("out of memory");
		return -EINVAL;
	}
	if (c->n_tenants == 0)
		why = c->have_tenant_sections ? "no [tenant NAME] section"
					      : "[graph] tenant is not set";
	else if (c->client_secret_file && c->certificate_file)
		why = "[graph] client_secret_file and certificate_file are both set: choose one "
		      "credential";
	if (why) {
		*ret_error = strdup(why);
		return -EINVAL;
	}
	/* the mail sections: each complete, each [mail NAME] of a tenant */
	if (config_mail_check(c, ret_error) < 0)
		return -EINVAL;
	for (size_t i = 0; i < c->n_tenants; i++) {
		const struct config_tenant *t = &c->tenants[i];
		bool wave1 = !c->have_tenant_sections;
		if (!t->tenant)
			why = "tenant = is not set (the customer's directory id or verified domain)";
		else if (!t->client_id)
			why = wave1 ? "[graph] client_id is not set"
				    : "client_id is not set (in this section or in [graph])";
		else if (t->client_secret_file && t->certificate_file)
			why = "client_secret_file and certificate_file are both set: choose one "
			      "credential";
		else if (t->onboard.track_days > 0 && !t->onboard.lookup)
			why = wave1 ? "[queue] track_days needs lookups: set lookup = yes"
				    : "track_days needs lookups: set lookup = yes";
		if (!why)
			continue;
		struct buf m = BUF_INIT;
		if (wave1)
			buf_append_str(&m, why);
		else
			buf_printf(&m, "%s:%u: [tenant %s]: %s", t->file, t->line, t->name, why);
		*ret_error = m.data ? buf_steal(&m) : strdup("out of memory");
		return -EINVAL;
	}
	return 0;
}

char *config_warning(const struct config *c)
{
	struct buf m = BUF_INIT;
	if (c->rate <= CONFIG_GRAPH_RATE_LIMIT) {
		for (size_t i = 0; i < c->n_tenants; i++)
			if (c->tenants[i].rate > CONFIG_GRAPH_RATE_LIMIT) {
				buf_printf(&m,
					   "[tenant %s] rate = %g is above what Graph allows an "
					   "application in one tenant (150 invitations per 5 s, "
					   "%g/s): expect 429 answers and pauses",
					   c->tenants[i].name, c->tenants[i].rate,
					   CONFIG_GRAPH_RATE_LIMIT);
				return m.data ? buf_steal(&m) : NULL;
			}
		return NULL;
	}
	buf_printf(&m,
		   "[queue] rate = %g is above what Graph allows an application in one tenant "
		   "(150 invitations per 5 s, %g/s): expect 429 answers and pauses",
		   c->rate, CONFIG_GRAPH_RATE_LIMIT);
	return m.data ? buf_steal(&m) : NULL;
}
