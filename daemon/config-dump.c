/* SPDX-License-Identifier: MIT */
/* config-dump: the effective configuration (config_dump, config.h), as
 * `invited --check-config` prints it; secrets never included. */
#include <stdio.h>
#include <string.h>

#include "config.h"

static void print_onboard(FILE *f, const struct config_onboard *ob)
{
	fprintf(f, "lookup = %s\ntrack_days = %u\ntrack_interval = %gs\nmax_resends = %u\n",
		ob->lookup ? "yes" : "no", ob->track_days, (double)ob->track_interval_ms / 1000.0,
		ob->max_resends);
	fprintf(f, "lookup_rate = %g\ngroup_rate = %g\ntrack_rate = %g\n", ob->lookup_rate,
		ob->group_rate, ob->track_rate);
	fprintf(f, "replication_delay = %gs\n", (double)ob->replication_delay_ms / 1000.0);
}

void config_dump(const struct config *c, FILE *f)
{
	fprintf(f, "[graph]\n");
	if (!c->have_tenant_sections)
		fprintf(f, "tenant = %s\n", c->tenant ? c->tenant : "");
	fprintf(f, "client_id = %s\n", c->client_id ? c->client_id : "");
	if (c->certificate_file)
		fprintf(f, "certificate_file = %s\n", c->certificate_file);
	else if (c->client_secret_file)
		fprintf(f, "client_secret_file = %s\n", c->client_secret_file);
	else
		fprintf(f, "# credential: \"client-secret\" or \"client-certificate\" in "
			   "$CREDENTIALS_DIRECTORY\n");
	fprintf(f, "cloud = %s\n", c->cloud);
	fprintf(f, "authority_url = %s\n", c->authority_url);
	fprintf(f, "graph_url = %s\n", c->graph_url);
	fprintf(f, c->ca_file ? "ca_file = %s\n" : "ca_file =\n", c->ca_file);
	if (c->proxy) { /* user:password, if any, left out */
		const char *p = strstr(c->proxy, "://"), *at = p ? strchr(p, '@') : NULL;
		if (at)
			fprintf(f, "proxy = %.*s%s\n", (int)(p + 3 - c->proxy), c->proxy, at + 1);
		else
			fprintf(f, "proxy = %s\n", c->proxy);
	} else {
		fprintf(f, "proxy =\n");
	}
	if (c->app_rate > 0)
		fprintf(f, "app_rate = %g\n", c->app_rate);
	fprintf(f, "\n[queue]\nrate = %g\nburst = %u\nconcurrency = %u\nmax_attempts = %u\n",
		c->rate, c->burst, c->concurrency, c->max_attempts);
	fprintf(f, "request_timeout = %g\nbatch = %u\n", (double)c->request_timeout_ms / 1000.0,
		c->batch);
	print_onboard(f, &c->onboard);
	fprintf(f, "\n[daemon]\nsocket = %s\ndatabase = %s\nallow_group = %s\n", c->socket_path,
		c->database, c->allow_group ? c->allow_group : "");
	fprintf(f, "admin_group = %s\n", c->admin_group ? c->admin_group : "");
	fprintf(f, "first_request_timeout = %gs\nidle_timeout = %gs\nmax_connections_per_uid = %u\n",
		(double)c->first_request_timeout_ms / 1000.0, (double)c->idle_timeout_ms / 1000.0,
		c->max_connections_per_uid);
	fprintf(f, "max_upload_bytes = %llu\nmax_rows = %llu\nretention_days = %u\n",
		(unsigned long long)c->max_upload_bytes, (unsigned long long)c->max_rows,
		c->retention_days);
	if (c->on_complete) {
		/* each word single-quoted, so the line reads back the same */
		fputs("on_complete =", f);
		for (char **a = c->on_complete; *a; a++) {
			fputs(" '", f);
			for (const char *p = *a; *p; p++)
				if (*p == '\'')
					fputs("'\\''", f);
				else
					fputc(*p, f);
			fputc('\'', f);
		}
		fputc('\n', f);
		fprintf(f, "hook_user = %s\n", c->hook_user);
	}
	for (size_t i = 0; i < c->n_tenants; i++) {
		const struct config_tenant *t = &c->tenants[i];
		if (!c->have_tenant_sections) {
			fprintf(f, "\n# one tenant, named \"%s\": [graph] tenant = %s\n", t->name,
				t->tenant ? t->tenant : "");
			continue;
		}
		fprintf(f, "\n[tenant %s]\ntenant = %s\nclient_id = %s\n", t->name,
			t->tenant ? t->tenant : "", t->client_id ? t->client_id : "");
		if (t->certificate_file)
			fprintf(f, "certificate_file = %s\n", t->certificate_file);
		if (t->client_secret_file)
			fprintf(f, "client_secret_file = %s\n", t->client_secret_file);
		fprintf(f, "cloud = %s\nauthority_url = %s\ngraph_url = %s\n", t->cloud,
			t->authority_url, t->graph_url);
		fprintf(f, "rate = %g\nburst = %u\nconcurrency = %u\nmax_attempts = %u\n", t->rate,
			t->burst, t->concurrency, t->max_attempts);
		fprintf(f, "request_timeout = %g\nbatch = %u\n",
			(double)t->request_timeout_ms / 1000.0, t->batch);
		print_onboard(f, &t->onboard);
		fprintf(f, "allow_group = %s\nadmin_group = %s\n",
			t->allow_group ? t->allow_group : "", t->admin_group ? t->admin_group : "");
	}
}
