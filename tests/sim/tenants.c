/* SPDX-License-Identifier: MIT */
/*
 * tenants: the simulator's table of tenants. The first comes from the
 * command line (--tenant, --client-secret, --rate, the faults, ...); every
 * element of --tenants-file adds one more, each with its own credential,
 * limit window, faults, block switch, roles and throttle scope. See
 * docs/simulator.md, "Many tenants".
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "buf.h"
#include "jsonout.h"
#include "log.h"
#include "sim.h"

#define TENANTS_FILE_MAX (1024u * 1024u)
#define TENANT_SECRET_MAX 4096u

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int sim_parse_throttle_scope(const char *text, enum sim_throttle_scope *ret)
{
	if (!text || strcmp(text, "") == 0 || strcmp(text, "none") == 0)
		*ret = SIM_SCOPE_NONE;
	else if (strcmp(text, "Tenant_Application") == 0)
		*ret = SIM_SCOPE_TENANT_APPLICATION;
	else if (strcmp(text, "Tenant") == 0)
		*ret = SIM_SCOPE_TENANT;
	else if (strcmp(text, "Application") == 0)
		*ret = SIM_SCOPE_APPLICATION;
	else
		return -EINVAL;
	return 0;
}

int sim_parse_guests(const char *text, const char **ret)
{
	static const char *const graph_values[] = {
		"everyone", "none", "adminsAndGuestInviters", "adminsAndGuestInvitersAndAllMembers",
	};
	if (!text || strcmp(text, "allowed") == 0) {
		*ret = "everyone";
		return 0;
	}
	for (size_t i = 0; i < sizeof(graph_values) / sizeof(graph_values[0]); i++) {
		if (strcmp(text, graph_values[i]) == 0) {
			*ret = graph_values[i];
			return 0;
		}
	}
	return -EINVAL;
}

static bool role_ok(const char *role, size_t n)
{
	if (n == 0 || n > SIM_ROLE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (role[i] <= ' ' || role[i] > '~' || role[i] == ',' || role[i] == '"' ||
		    role[i] == '\\')
			return false;
	return true;
}

static int add_role(char ***list, size_t *n, const char *role, size_t len)
{
	if (!role_ok(role, len))
		return -EINVAL;
	if (*n >= SIM_ROLES_MAX)
		return -E2BIG;
	char **v = realloc(*list, (*n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	*list = v;
	v[*n] = strndup(role, len);
	if (!v[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

int sim_parse_roles(const char *text, char ***ret, size_t *ret_n)
{
	char **list = NULL;
	size_t n = 0;
	int r = 0;
	const char *p = text;

	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		while (len > 0 && *p == ' ') {
			p++;
			len--;
		}
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len > 0) {
			r = add_role(&list, &n, p, len);
			if (r < 0)
				goto out;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	*ret = list;
	*ret_n = n;
	list = NULL;
	n = 0;
out:
	free_list(list, n);
	return r;
}

bool sim_tenant_has_role(const struct sim_tenant *t, const char *role)
{
	for (size_t i = 0; i < t->n_roles; i++)
		if (strcmp(t->roles[i], role) == 0)
			return true;
	return false;
}

int sim_tenant_roles_json(const struct sim_tenant *t, struct buf *b)
{
	int r = buf_append_str(b, "[");
	for (size_t i = 0; i < t->n_roles; i++) {
		if (i > 0)
			r |= buf_append_str(b, ",");
		r |= jsonout_string(b, t->roles[i]);
	}
	r |= buf_append_str(b, "]");
	return r;
}

/* A directory name as it can appear in a token URL path. */
static bool name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > SIM_TENANT_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return false;
	}
	return true;
}

static void tenant_start(struct sim_tenant *t)
{
	pthread_mutex_init(&t->bucket_lock, NULL);
	t->lock_ready = true;
	t->bucket_level = t->rate;
	t->bucket_us = now_us();
	atomic_store(&t->accept_reserved, 0);
	atomic_store(&t->blocked_now, false);
	atomic_store(&t->block_lifted, false);
}

static void tenant_finish(struct sim_tenant *t)
{
	if (t->lock_ready)
		pthread_mutex_destroy(&t->bucket_lock);
	t->lock_ready = false;
	free(t->name);
	if (t->client_secret)
		explicit_bzero(t->client_secret, strlen(t->client_secret));
	free(t->client_secret);
	jwt_cert_free(t->client_cert);
	free_list(t->reject, t->n_reject);
	free_list(t->roles, t->n_roles);
	sim_dir_config_free(&t->dirc);
	memset(t, 0, sizeof(*t));
}

const char *sim_json_number(void *json_object, const char *key, double min, double max,
			    double *ret)
{
	json_t *v = json_object_get(json_object, key);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_number(v))
		return "not a number";
	double d = json_number_value(v);
	if (d < min || d > max)
		return "out of range";
	*ret = d;
	return NULL;
}

const char *sim_json_string(void *json_object, const char *key, const char **ret)
{
	json_t *v = json_object_get(json_object, key);
	*ret = NULL;
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return "not a non-empty string";
	*ret = json_string_value(v);
	return NULL;
}

static const char *read_secret_file(const char *path, char **ret)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return "cannot be opened";
	char *text = calloc(1, TENANT_SECRET_MAX + 2);
	size_t n = text ? fread(text, 1, TENANT_SECRET_MAX + 1, f) : 0;
	fclose(f);
	if (!text)
		return "out of memory";
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		text[--n] = '\0';
	if (n == 0 || n > TENANT_SECRET_MAX || strlen(text) != n) {
		free(text);
		return "empty, larger than 4 KiB or holding a NUL";
	}
	*ret = text;
	return NULL;
}

/* Fill t from one element of the file. NULL, or why not (*key the member). */
static const char *tenant_from_json(json_t *o, struct sim_tenant *t, const char **key)
{
	static const char *const known[] = {
		"tenant",   "client_secret", "client_secret_file", "client_cert",
		"rate",     "period_ms",     "block_after",	       "fail_5xx",
		"fail_429", "fail_reset",    "fail_hang",	       "fail_after_accept",
		"reject",   "roles",	     "throttle_scope",     "guests",
	};
	const char *k, *str, *why;
	json_t *v;
	double d;

	*key = NULL;
	if (!json_is_object(o))
		return "not an object";
	json_object_foreach(o, k, v) {
		bool ok = false;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok = ok || strcmp(k, known[i]) == 0;
		ok = ok || sim_dir_json_key(k); /* directory.c's keys */
		if (!ok) {
			*key = k;
			return "unknown key";
		}
	}
#define STEP(name, expr)              \
	do {                          \
		*key = name;          \
		why = (expr);         \
		if (why)              \
			return why;   \
	} while (0)
	STEP("tenant", sim_json_string(o, "tenant", &str));
	if (!str)
		return "missing";
	if (!name_ok(str))
		return "not a directory name (letters, digits, '.', '-', '_'; at most 256)";
	t->name = strdup(str);
	if (!t->name)
		return "out of memory";

	const char *secret, *secret_file, *cert;
	STEP("client_secret", sim_json_string(o, "client_secret", &secret));
	STEP("client_secret_file", sim_json_string(o, "client_secret_file", &secret_file));
	STEP("client_cert", sim_json_string(o, "client_cert", &cert));
	*key = "client_secret";
	if (!!secret + !!secret_file + !!cert > 1)
		return "client_secret, client_secret_file and client_cert exclude each other";
	if (secret) {
		if (strlen(secret) > TENANT_SECRET_MAX)
			return "longer than 4 KiB";
		t->client_secret = strdup(secret);
		if (!t->client_secret)
			return "out of memory";
	}
	if (secret_file)
		STEP("client_secret_file", read_secret_file(secret_file, &t->client_secret));
	if (cert) {
		*key = "client_cert";
		int r = jwt_cert_load(cert, &t->client_cert);
		if (r < 0)
			return r == -EINVAL ? "no PEM certificate in the file" : strerror(-r);
	}

	t->period_s = 1.0;
	STEP("rate", sim_json_number(o, "rate", 0, 1e9, &t->rate));
	d = 1000.0;
	STEP("period_ms", sim_json_number(o, "period_ms", 1, 86400e3, &d));
	t->period_s = d / 1000.0;
	d = -1;
	STEP("block_after", sim_json_number(o, "block_after", 0, 9e15, &d));
	if (d >= 0) {
		t->block_after = (uint64_t)d;
		t->block_after_set = true;
	}
	STEP("fail_5xx", sim_json_number(o, "fail_5xx", 0, 100, &t->fail_5xx));
	STEP("fail_429", sim_json_number(o, "fail_429", 0, 100, &t->fail_429));
	STEP("fail_reset", sim_json_number(o, "fail_reset", 0, 100, &t->fail_reset));
	STEP("fail_hang", sim_json_number(o, "fail_hang", 0, 100, &t->fail_hang));
	STEP("fail_after_accept", sim_json_number(o, "fail_after_accept", 0, 100, &t->fail_after_accept));

	*key = "reject";
	v = json_object_get(o, "reject");
	if (v && !json_is_null(v)) {
		size_t i;
		json_t *e;
		if (!json_is_array(v) || json_array_size(v) > SIM_REJECT_MAX)
			return "not an array of at most 1024 addresses";
		t->reject = calloc(json_array_size(v) + 1, sizeof(*t->reject));
		if (!t->reject)
			return "out of memory";
		json_array_foreach(v, i, e) {
			if (!json_is_string(e) || json_string_length(e) == 0)
				return "not an array of addresses";
			char *a = strdup(json_string_value(e));
			if (!a)
				return "out of memory";
			for (char *p = a; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
			t->reject[t->n_reject++] = a;
		}
	}

	*key = "roles";
	v = json_object_get(o, "roles");
	if (v && !json_is_null(v)) {
		size_t i;
		json_t *e;
		if (!json_is_array(v))
			return "not an array of strings";
		json_array_foreach(v, i, e) {
			if (!json_is_string(e))
				return "not an array of strings";
			int r = add_role(&t->roles, &t->n_roles, json_string_value(e),
					 json_string_length(e));
			if (r < 0)
				return r == -E2BIG ? "more than 32 roles"
				       : r == -ENOMEM ? "out of memory"
						      : "a role is empty, too long or has a space, comma or quote";
		}
	} else if (!v) {
		if (add_role(&t->roles, &t->n_roles, "User.Invite.All", 15) < 0)
			return "out of memory";
	}

	STEP("throttle_scope", sim_json_string(o, "throttle_scope", &str));
	*key = "throttle_scope";
	if (sim_parse_throttle_scope(str, &t->throttle_scope) < 0)
		return "not Tenant_Application, Tenant, Application or null";
	STEP("guests", sim_json_string(o, "guests", &str));
	*key = "guests";
	if (sim_parse_guests(str, &t->allow_invites_from) < 0)
		return "not allowed, none, everyone, adminsAndGuestInviters or adminsAndGuestInvitersAndAllMembers";
#undef STEP
	why = sim_dir_config_from_json(o, &t->dirc, key);
	if (why)
		return why;
	*key = NULL;
	return NULL;
}

static int load_file(struct sim *s, const char *path)
{
	struct stat st;
	json_error_t jerr;
	json_t *doc = NULL;
	int r = -EINVAL;

	if (stat(path, &st) < 0) {
		r = -errno;
		log_error("Failed to read --tenants-file '%s': %s", path, strerror(-r));
		return r;
	}
	if (st.st_size > TENANTS_FILE_MAX) {
		log_error("Failed to read --tenants-file '%s': larger than 1 MiB", path);
		return -EFBIG;
	}
	doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		log_error("Failed to read --tenants-file '%s': line %d: %s", path, jerr.line,
			  jerr.text);
		goto out;
	}
	if (!json_is_array(doc) || json_array_size(doc) > SIM_TENANTS_MAX - 1) {
		log_error("Failed to read --tenants-file '%s': not a JSON array of at most %u tenants",
			  path, SIM_TENANTS_MAX - 1);
		goto out;
	}
	size_t i;
	json_t *e;
	json_array_foreach(doc, i, e) {
		struct sim_tenant *t = &s->tenants[s->n_tenants];
		const char *key;
		const char *why = tenant_from_json(e, t, &key);
		if (!why && sim_tenant_by_name(s, t->name))
			why = "a tenant of this name comes earlier", key = "tenant";
		if (why) {
			log_error("Failed to read --tenants-file '%s': tenant %zu%s%s%s%s%s: %s", path,
				  i + 1, t->name ? " (" : "", t->name ? t->name : "",
				  t->name ? ")" : "", key ? ", key " : "", key ? key : "", why);
			tenant_finish(t);
			goto out;
		}
		t->strict_credential = true;
		tenant_start(t);
		s->n_tenants++;
	}
	r = 0;
out:
	json_decref(doc);
	return r;
}

int sim_tenants_init(struct sim *s)
{
	struct sim_config *cfg = &s->cfg;
	int r;

	s->tenants = calloc(SIM_TENANTS_MAX, sizeof(*s->tenants));
	if (!s->tenants)
		return -ENOMEM;
	struct sim_tenant *t = &s->tenants[0];
	if (cfg->tenant) {
		t->name = strdup(cfg->tenant);
		if (!t->name)
			return -ENOMEM;
	}
	t->client_secret = cfg->client_secret;
	cfg->client_secret = NULL;
	t->client_cert = cfg->client_cert;
	cfg->client_cert = NULL;
	t->rate = cfg->rate;
	t->period_s = cfg->period_s;
	t->fail_5xx = cfg->fail_5xx;
	t->fail_429 = cfg->fail_429;
	t->fail_reset = cfg->fail_reset;
	t->fail_hang = cfg->fail_hang;
	t->fail_after_accept = cfg->fail_after_accept;
	t->reject = cfg->reject;
	t->n_reject = cfg->n_reject;
	cfg->reject = NULL;
	cfg->n_reject = 0;
	t->block_after = cfg->block_after;
	t->block_after_set = cfg->block_after_set;
	if (cfg->roles_set) {
		t->roles = cfg->roles;
		t->n_roles = cfg->n_roles;
		cfg->roles = NULL;
		cfg->n_roles = 0;
	} else if (add_role(&t->roles, &t->n_roles, "User.Invite.All", 15) < 0) {
		return -ENOMEM;
	}
	t->throttle_scope = cfg->throttle_scope;
	t->allow_invites_from = cfg->allow_invites_from ? cfg->allow_invites_from : "everyone";
	sim_dir_config_take(&t->dirc, &cfg->dir);
	tenant_start(t);
	s->n_tenants = 1;

	if (cfg->tenants_file) {
		r = load_file(s, cfg->tenants_file);
		if (r < 0)
			return r;
	}
	return 0;
}

void sim_tenants_finish(struct sim *s)
{
	if (s->tenants)
		for (size_t i = 0; i < SIM_TENANTS_MAX; i++)
			tenant_finish(&s->tenants[i]);
	free(s->tenants);
	s->tenants = NULL;
	s->n_tenants = 0;
}

struct sim_tenant *sim_tenant_find(struct sim *s, const char *name)
{
	for (size_t i = 0; i < s->n_tenants; i++)
		if (s->tenants[i].name && strcasecmp(s->tenants[i].name, name) == 0)
			return &s->tenants[i];
	return s->n_tenants > 0 && !s->tenants[0].name ? &s->tenants[0] : NULL;
}

struct sim_tenant *sim_tenant_by_name(struct sim *s, const char *name)
{
	if (!name)
		return s->n_tenants > 0 ? &s->tenants[0] : NULL;
	for (size_t i = 0; i < s->n_tenants; i++)
		if (s->tenants[i].name && strcasecmp(s->tenants[i].name, name) == 0)
			return &s->tenants[i];
	return NULL;
}
