/* SPDX-License-Identifier: MIT */
/* config: every key, bad values with file:line, drop-ins, inline '#' kept. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"

static char dir[] = "/tmp/test-config.XXXXXX";

static char *write_file(const char *name, const char *text)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_good(void)
{
	struct config c;
	char *err = NULL;
	config_init(&c);
	char *path = write_file("good.conf",
				"# comment\n"
				"[graph]\n"
				"tenant = contoso.onmicrosoft.com\n"
				"client_id = 00000000-0000-0000-0000-000000000000\n"
				"client_secret_file = /etc/invited/client-secret\n"
				"authority_url = https://login.microsoftonline.us/\n"
				"graph_url = https://graph.microsoft.us\n"
				"[queue]\nrate = 2.5\nburst = 7\nconcurrency = 3\nmax_attempts = 4\n"
				"request_timeout = 1.5\n"
				"[daemon]\nsocket = /run/x.sock\ndatabase = /var/lib/x.db\n"
				"allow_group = admins#1\nmax_upload_bytes = 2048\nmax_rows = 10\n");
	is_int(config_load(&c, path, true, &err), 0, "a full config loads");
	is_int(config_check(&c, &err), 0, "and passes the cross-key check");
	is_str(c.tenant, "contoso.onmicrosoft.com", "tenant");
	is_str(c.authority_url, "https://login.microsoftonline.us", "trailing '/' dropped");
	ok(c.rate == 2.5, "decimal rate");
	is_int(c.burst, 7, "burst");
	is_int(c.concurrency, 3, "concurrency");
	is_int(c.max_attempts, 4, "max_attempts");
	is_int(c.request_timeout_ms, 1500, "request_timeout in ms");
	is_str(c.allow_group, "admins#1", "an inline '#' is part of the value");
	is_int(c.max_upload_bytes, 2048, "max_upload_bytes");
	is_int(c.max_rows, 10, "max_rows");
	config_finish(&c);
}

static void test_bad(void)
{
	static const struct {
		const char *text;
		int line;
		const char *words;
	} cases[] = {
		{"[queue]\nrate = fast\n", 2, "rate"},
		{"[queue]\nrate = 0\n", 2, "rate"},
		{"[queue]\n\nburst = -1\n", 3, "burst"},
		{"[queue]\nconcurrency = 99999\n", 2, "concurrency"},
		{"[queue]\nmax_attempts = 1x\n", 2, "max_attempts"},
		{"[queue]\nrequest_timeout = forever\n", 2, "request_timeout"},
		{"[graph]\ngraph_url = graph.microsoft.com\n", 2, "graph_url"},
		{"[graph]\nclient_secret_file = relative/path\n", 2, "absolute"},
		{"[graph]\ntenant = a b\n", 2, "tenant"},
		{"[daemon]\ndatabase = db.sqlite\n", 2, "database"},
		{"[daemon]\nmax_rows = 0\n", 2, "max_rows"},
		{"[daemon]\nmax_upload_bytes = 10\n", 2, "max_upload_bytes"},
		{"[daemon]\nsocket = /a\nmystery = 1\n", 3, "unknown key 'mystery'"},
		{"[tenants x]\nrate = 1\n", 2, "unknown section"},
		{"[graph]\nthis is not a key value line\n", 2, "not a"},
		{"[daemon]\non_complete = notify-send done\n", 2, "absolute path"},
		{"[daemon]\n\non_complete = /bin/x 'open\n", 3, "unterminated"},
		/* SPEC §9: https only, except to a loopback address */
		{"[graph]\ngraph_url = http://graph.microsoft.com\n", 2, "is not https"},
		{"[graph]\nauthority_url = HTTP://login.microsoftonline.com\n", 2, "is not https"},
		{"[graph]\ngraph_url = http://127.example.com:8080/\n", 2, "is not https"},
		{"[graph]\ngraph_url = http://localhost.example\n", 2, "is not https"},
		{"[graph]\ngraph_url = http://[::2]:80\n", 2, "is not https"},
		{"[graph]\ngraph_url = http://127.0.0.1@evil.example/\n", 2, "is not https"},
		/* the contract's words, not "between 0 and 100000" */
		{"[queue]\nrate = 0\n", 2, "must be more than 0 and at most 100000"},
		{"[queue]\nrate = 100001\n", 2, "must be more than 0 and at most 100000"},
		/* a command that cannot run is refused where it is named */
		{"[daemon]\n\non_complete = /nonexistent/notify --x\n", 3,
		 "'/nonexistent/notify': No such file or directory"},
		{"[daemon]\non_complete = /tmp\n", 2, "is not a regular file"},
		{"[daemon]\non_complete = /etc/passwd\n", 2, "is not executable"},
		{"[daemon]\nhook_user = a:b\n", 2, "hook_user"},
		/* SPEC §7: tenant sections */
		{"[graph]\nclient_id = x\n[tenant Contoso]\ntenant = c.example\n", 3, "a-z, 0-9"},
		{"[tenant a_b]\n", 1, "[tenant NAME]"},
		{"[tenant]\ntenant = c.example\n", 1, "needs a name"},
		{"[tenant abcdefghijklmnopqrstuvwxyz0123456]\n", 1, "1 to 32"},
		{"[tenant a]\ntenant = a.example\n\n[tenant a]\nrate = 2\n", 4,
		 "[tenant a] is defined twice in this file (first on line 1)"},
		{"[tenant a]\ntenant = a.example\nmystery = 1\n", 3, "unknown key 'mystery' in [tenant a]"},
		{"[tenant a]\nsocket = /x\n", 2, "unknown key 'socket'"},
		{"[tenant a]\nrate = 0\n", 2, "must be more than 0"},
		{"[tenant a]\ngraph_url = http://graph.example\n", 2, "is not https"},
		{"[tenant a]\ncloud = mars\n", 2, "cloud"},
		{"[tenant a]\ntenant = a b\n", 2, "tenant"},
		{"[graph]\napp_rate = -1\n", 2, "app_rate"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config c;
		char *err = NULL;
		config_init(&c);
		char *path = write_file("bad.conf", cases[i].text);
		char want[600];
		snprintf(want, sizeof(want), "%s:%d: ", path, cases[i].line);
		is_int(config_load(&c, path, true, &err), -EINVAL, "bad case %zu refused", i);
		ok(err && strncmp(err, want, strlen(want)) == 0 && strstr(err, cases[i].words),
		   "case %zu says '%s…%s': %s", i, want, cases[i].words, err ? err : "(null)");
		free(err);
		config_finish(&c);
	}
}

static void test_on_complete(void)
{
	struct config c;
	char *err = NULL;
	config_init(&c);
	ok(c.on_complete == NULL, "no on_complete by default");
	char cmd[600], text_in[800];
	snprintf(cmd, sizeof(cmd), "%s", write_file("notify", "#!/bin/sh\n"));
	chmod(cmd, 0755);
	snprintf(text_in, sizeof(text_in), "[daemon]\non_complete = %s --to 'a b' \"c\\\"d\"\n", cmd);
	char *path = write_file("hook.conf", text_in);
	is_int(config_load(&c, path, true, &err), 0, "on_complete loads");
	ok(c.on_complete && c.on_complete[0] && c.on_complete[1] && c.on_complete[2] &&
		   c.on_complete[3] && !c.on_complete[4],
	   "split into four words");
	if (c.on_complete && c.on_complete[3]) {
		is_str(c.on_complete[0], cmd, "the command");
		is_str(c.on_complete[2], "a b", "a quoted word");
		is_str(c.on_complete[3], "c\"d", "an escaped quote");
	}
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	config_dump(&c, f);
	fclose(f);
	char want[800];
	snprintf(want, sizeof(want), "on_complete = '%s' '--to' 'a b' 'c\"d'\nhook_user = nobody\n",
		 cmd);
	ok(text && strstr(text, want), "--check-config prints it so that it reads back the same, "
				       "and whom it runs as");
	free(text);
	path = write_file("hook2.conf", "[daemon]\non_complete =\n");
	is_int(config_load(&c, path, true, &err), 0, "an empty on_complete (a drop-in) ...");
	ok(c.on_complete == NULL, "... unsets it");
	config_finish(&c);
}

static void test_dropins_and_missing(void)
{
	struct config c;
	char *err = NULL;
	config_init(&c);
	char path[512];
	snprintf(path, sizeof(path), "%s",
		 write_file("main.conf", "[graph]\ntenant = a.example\nclient_id = 1\n[queue]\nrate = 5\n"));
	char d[512];
	snprintf(d, sizeof(d), "%s/main.conf.d", dir);
	mkdir(d, 0755);
	write_file("main.conf.d/20-b.conf", "[queue]\nrate = 7\n");
	write_file("main.conf.d/10-a.conf", "[queue]\nrate = 6\nburst = 3\n");
	write_file("main.conf.d/ignored.txt", "[queue]\nrate = 99\n");
	is_int(config_load(&c, path, true, &err), 0, "main file plus drop-ins");
	ok(c.rate == 7, "drop-ins apply in name order (last wins): %g", c.rate);
	is_int(c.burst, 3, "keys from earlier drop-ins stay");
	config_finish(&c);

	config_init(&c);
	char missing[512];
	snprintf(missing, sizeof(missing), "%s/none.conf", dir);
	is_int(config_load(&c, missing, false, &err), 0, "a missing default config is fine");
	is_int(config_check(&c, &err), -EINVAL, "but then tenant is missing");
	char want[600];
	snprintf(want, sizeof(want), "cannot read '%s': No such file or directory", missing);
	ok(err && strcmp(err, want) == 0, "naming the missing file: %s", err ? err : "");
	free(err);
	err = NULL;
	is_int(config_load(&c, missing, true, &err), -ENOENT, "a missing -c file is an error");
	ok(err && strstr(err, "none.conf"), "naming the file: %s", err ? err : "");
	free(err);
	config_finish(&c);
}

/* [daemon] connection limits: durations with s, m, h, d (SPEC §8), at most 24 h; the defaults */
static void test_connection_limits(void)
{
	static const struct {
		const char *value;
		uint64_t ms; /* 0: refused */
	} durations[] = {
		{"10", 10000}, {"1.5", 1500}, {"90s", 90000}, {"5m", 300000}, {"2h", 7200000},
		{"0.1", 100},  {"0", 0},      {"-1", 0},      {"25h", 0},     {"5 m", 0},
		{"inf", 0},    {"nan", 0},    {"1d", 86400000}, {"2d", 0}, {"1D", 0}, {"", 0},        {"m", 0},
	};
	struct config c;
	char *err = NULL;
	config_init(&c);
	is_int(c.first_request_timeout_ms, 10000, "first_request_timeout defaults to 10 s");
	is_int(c.idle_timeout_ms, 300000, "idle_timeout defaults to 5 min");
	is_int(c.max_connections_per_uid, 16, "max_connections_per_uid defaults to 16");
	config_finish(&c);
	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "[daemon]\nidle_timeout = %s\n", durations[i].value);
		config_init(&c);
		int r = config_load(&c, write_file("d.conf", text), true, &err);
		if (durations[i].ms)
			ok(r == 0 && c.idle_timeout_ms == durations[i].ms, "idle_timeout = '%s' is %llu ms",
			   durations[i].value, (unsigned long long)durations[i].ms);
		else
			ok(r == -EINVAL && err && strstr(err, "idle_timeout"),
			   "idle_timeout = '%s' refused: %s", durations[i].value, err ? err : "(null)");
		free(err);
		err = NULL;
		config_finish(&c);
	}
	config_init(&c);
	is_int(config_load(&c, write_file("d.conf", "[daemon]\nfirst_request_timeout = 2s\n"
							"max_connections_per_uid = 4\n"),
			   true, &err),
	       0, "first_request_timeout and max_connections_per_uid load");
	is_int(c.first_request_timeout_ms, 2000, "2s");
	is_int(c.max_connections_per_uid, 4, "4 connections");
	config_finish(&c);
	config_init(&c);
	is_int(config_load(&c, write_file("d.conf", "[daemon]\nmax_connections_per_uid = 0\n"), true,
			   &err),
	       -EINVAL, "max_connections_per_uid = 0 refused");
	free(err);
	config_finish(&c);
}

static void test_clouds(void)
{
	static const struct {
		const char *text, *authority, *graph;
	} cases[] = {
		{"cloud = usgov\n", "https://login.microsoftonline.us", "https://graph.microsoft.us"},
		{"cloud = usgov-dod\n", "https://login.microsoftonline.us",
		 "https://dod-graph.microsoft.us"},
		{"cloud = china\n", "https://login.chinacloudapi.cn",
		 "https://microsoftgraph.chinacloudapi.cn"},
		{"cloud = global\n", "https://login.microsoftonline.com", "https://graph.microsoft.com"},
		/* explicit URLs win, before or after the cloud line */
		{"graph_url = http://127.0.0.1:1\ncloud = china\n", "https://login.chinacloudapi.cn",
		 "http://127.0.0.1:1"},
		{"cloud = usgov\nauthority_url = http://127.0.0.1:2/\n", "http://127.0.0.1:2",
		 "https://graph.microsoft.us"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config c;
		char *err = NULL, text[512];
		config_init(&c);
		snprintf(text, sizeof(text), "[graph]\ntenant = t\nclient_id = 1\n%s", cases[i].text);
		is_int(config_load(&c, write_file("cloud.conf", text), true, &err), 0, "cloud case %zu loads",
		       i);
		is_str(c.authority_url, cases[i].authority, "cloud case %zu: authority_url", i);
		is_str(c.graph_url, cases[i].graph, "cloud case %zu: graph_url", i);
		free(err);
		config_finish(&c);
	}
	struct config c;
	char *err = NULL;
	config_init(&c);
	ok(config_load(&c, write_file("cloud.conf", "[graph]\ncloud = mars\n"), true, &err) < 0 &&
		   err && strstr(err, "cloud.conf:2: cloud: 'mars' is not global, usgov"),
	   "an unknown cloud is refused with file:line (%s)", err ? err : "");
	free(err);
	err = NULL;
	config_finish(&c);
	config_init(&c);
	is_int(config_load(&c, write_file("both.conf", "[graph]\ntenant = t\nclient_id = 1\n"
							 "client_secret_file = /a\ncertificate_file = /b\n"),
			   true, &err),
	       0, "secret and certificate both load");
	ok(config_check(&c, &err) < 0 && err && strstr(err, "choose one"),
	   "but the check asks to choose one credential");
	free(err);
	config_finish(&c);
}

static void test_url_secure(void)
{
	static const struct {
		const char *url;
		bool ok;
	} cases[] = {
		{"https://graph.microsoft.com", true},
		{"HTTPS://graph.microsoft.com", true},
		{"http://127.0.0.1:1234", true},
		{"http://127.3.4.5/x", true},
		{"HTTP://127.0.0.1:1234/", true},
		{"http://localhost", true},
		{"http://LOCALHOST:8080/v1.0", true},
		{"http://[::1]", true},
		{"http://[::1]:4430/", true},
		{"http://user@127.0.0.1/", true},
		{"http://graph.microsoft.com", false},
		{"http://127.example.com", false},
		{"http://128.0.0.1", false},
		{"http://127.1", false},
		{"http://[::2]", false},
		{"http://[::ffff:127.0.0.1]", false},
		{"http://localhost.evil.example", false},
		{"http://127.0.0.1.nip.io", false},
		{"ftp://127.0.0.1", false},
		{"http://", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ok(config_url_secure(cases[i].url) == cases[i].ok, "%s %s", cases[i].url,
		   cases[i].ok ? "allowed" : "refused");
	/* and through the parser */
	struct config c;
	char *err = NULL;
	config_init(&c);
	is_int(config_load(&c, write_file("lo.conf", "[graph]\ntenant = t\nclient_id = 1\n"
							"authority_url = http://localhost:9/\n"
							"graph_url = http://[::1]:9\n"),
			   true, &err),
	       0, "loopback http URLs load");
	config_finish(&c);
}

static void test_rate_warning(void)
{
	struct config c;
	config_init(&c);
	char *w = config_warning(&c);
	ok(w == NULL, "no warning at the default rate");
	free(w);
	c.rate = 30;
	w = config_warning(&c);
	ok(w == NULL, "none at Graph's 30/s");
	free(w);
	c.rate = 31;
	w = config_warning(&c);
	ok(w && strstr(w, "rate = 31") && strstr(w, "150 invitations per 5 s"),
	   "above 30/s it warns: %s", w ? w : "(null)");
	free(w);
	config_finish(&c);
}

static struct config load_ok(const char *name, const char *text)
{
	struct config c;
	char *err = NULL;
	config_init(&c);
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (text)
		write_file(name, text);
	int r = config_load(&c, path, true, &err);
	if (r == 0)
		r = config_check(&c, &err);
	is_int(r, 0, "%s loads: %s", name, err ? err : "ok");
	free(err);
	return c;
}

static void test_tenants(void)
{
	/* a wave-1 file is the tenant "default" */
	struct config c = load_ok("wave1.conf", "[graph]\ntenant = contoso.onmicrosoft.com\n"
						"client_id = app\n[queue]\nrate = 3\n"
						"[daemon]\nallow_group = inv\n");
	is_int(c.n_tenants, 1, "a wave-1 file: one tenant");
	is_str(c.tenants[0].name, "default", "named default");
	is_str(c.tenants[0].tenant, "contoso.onmicrosoft.com", "its directory is [graph] tenant");
	ok(c.tenants[0].rate == 3, "[queue] rate inherited");
	is_str(c.tenants[0].allow_group, "inv", "[daemon] allow_group inherited");
	is_str(c.tenants[0].client_id, "app", "[graph] client_id inherited");
	config_finish(&c);

	/* [graph] defaults, sections override; keys before or after alike */
	c = load_ok("multi.conf",
		    "[tenant contoso]\ntenant = contoso.onmicrosoft.com\nallow_group = contoso-admins\n"
		    "\n[graph]\nclient_id = app\ncertificate_file = /etc/invited/app.pem\n"
		    "app_rate = 100\n"
		    "[queue]\nrate = 4\nconcurrency = 5\n"
		    "[tenant fabrikam]\ntenant = 72f988bf-0000-0000-0000-000000000000\n"
		    "client_secret_file = /etc/invited/fabrikam.secret\nrate = 5\ncloud = usgov\n"
		    "admin_group = fab-admins\nbatch = 20\n"
		    "[tenant x-1]\ntenant = x.example\nclient_id = other\n"
		    "graph_url = https://graph.example/\n");
	is_int(c.n_tenants, 3, "three tenants");
	const struct config_tenant *t = config_tenant_find(&c, "contoso");
	ok(t && t->rate == 4 && t->concurrency == 5, "contoso inherits [queue]");
	is_str(t ? t->allow_group : NULL, "contoso-admins", "contoso's own allow_group");
	is_str(t ? t->client_id : NULL, "app", "contoso inherits client_id");
	ok(t && !t->certificate_file && !t->client_secret_file,
	   "the [graph] credential is not copied (credential.c's order)");
	is_str(t ? t->graph_url : NULL, "https://graph.microsoft.com", "global cloud by default");
	t = config_tenant_find(&c, "fabrikam");
	ok(t && t->rate == 5 && t->concurrency == 5 && t->batch == 20, "fabrikam: rate 5, batch 20");
	is_str(t ? t->client_secret_file : NULL, "/etc/invited/fabrikam.secret", "own secret file");
	is_str(t ? t->authority_url : NULL, "https://login.microsoftonline.us", "own cloud's URLs");
	is_str(t ? t->admin_group : NULL, "fab-admins", "own admin_group");
	is_str(t ? t->allow_group : NULL, "invite", "[daemon]'s allow_group");
	t = config_tenant_find(&c, "x-1");
	is_str(t ? t->client_id : NULL, "other", "own client_id");
	is_str(t ? t->graph_url : NULL, "https://graph.example", "own graph_url");
	ok(t && t->line == 19, "x-1 begins on line 19 (%u)", t ? t->line : 0);
	ok(c.app_rate == 100, "app_rate");
	ok(!config_tenant_find(&c, "default"), "no default tenant");
	FILE *f = tmpfile();
	config_dump(&c, f);
	rewind(f);
	char out[8192];
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	ok(strstr(out, "[tenant contoso]\ntenant = contoso.onmicrosoft.com") &&
		   strstr(out, "[tenant fabrikam]") && strstr(out, "[tenant x-1]") &&
		   strstr(out, "app_rate = 100"),
	   "--check-config prints every tenant");
	config_finish(&c);

	/* a drop-in may set keys of a tenant of the main file */
	write_file("d.conf", "[graph]\nclient_id = app\n[tenant a]\ntenant = a.example\nrate = 1\n");
	char dd[600];
	snprintf(dd, sizeof(dd), "%s/d.conf.d", dir);
	mkdir(dd, 0700);
	write_file("d.conf.d/10-a.conf", "[tenant a]\nrate = 2\n[tenant b]\ntenant = b.example\n");
	c = load_ok("d.conf", NULL);
	t = config_tenant_find(&c, "a");
	ok(t && t->rate == 2 && c.n_tenants == 2, "a drop-in overrides a tenant's key and adds one");
	config_finish(&c);

	/* cross-key refusals with file and line */
	static const struct {
		const char *text;
		const char *words;
	} bad[] = {
		{"[graph]\ntenant = c.example\nclient_id = a\n[tenant a]\ntenant = a.example\n",
		 ":2: tenant = in [graph] is for a single tenant; put it in [tenant NAME]"},
		{"[graph]\nclient_id = a\n\n[tenant a]\nrate = 2\n",
		 ":4: [tenant a]: tenant = is not set"},
		{"[tenant a]\ntenant = a.example\n", ":1: [tenant a]: client_id is not set"},
		{"[graph]\nclient_id = a\n[tenant b]\ntenant = b.example\n"
		 "client_secret_file = /a\ncertificate_file = /b\n",
		 ":3: [tenant b]: client_secret_file and certificate_file are both set"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *err = NULL;
		config_init(&c);
		char *path = write_file("bad-tenant.conf", bad[i].text);
		int r = config_load(&c, path, true, &err);
		is_int(r, 0, "cross-key case %zu parses", i);
		is_int(config_check(&c, &err), -EINVAL, "cross-key case %zu refused", i);
		ok(err && strstr(err, "bad-tenant.conf") && strstr(err, bad[i].words),
		   "case %zu says '%s': %s", i, bad[i].words, err ? err : "(null)");
		free(err);
		config_finish(&c);
	}
}

/* SPEC §8's [queue] keys: defaults, values, per tenant, and track_days
 * needing lookups. */
static void test_onboard_keys(void)
{
	struct config c;
	char *err = NULL;
	config_init(&c);
	ok(!c.onboard.lookup && c.onboard.track_days == 0 &&
	       c.onboard.track_interval_ms == 3600000 && c.onboard.max_resends == 3 &&
	       c.onboard.lookup_rate == 50 && c.onboard.group_rate == 20 && c.onboard.track_rate == 5 &&
	       c.onboard.replication_delay_ms == 60000,
	   "defaults: no lookups, no tracking, 1h, 3 resends, 50/20/5 per second, "
	   "replication_delay 60s");
	config_finish(&c);
	config_init(&c);
	int r = config_load(&c, write_file("o.conf",
					   "[graph]\nclient_id = c\n[queue]\nlookup = yes\n"
					   "track_days = 14\ntrack_interval = 6h\nmax_resends = 1\n"
					   "lookup_rate = 7.5\nreplication_delay = 90s\n"
					   "[tenant a]\ntenant = a.example\n"
					   "track_interval = 2d\nlookup = no\ntrack_days = 0\n"
					   "replication_delay = 0\n"
					   "[tenant b]\ntenant = b.example\n"),
			    true, &err);
	is_int(r, 0, "the keys load (%s)", err ? err : "ok");
	free(err);
	err = NULL;
	ok(c.n_tenants == 2 && !c.tenants[0].onboard.lookup &&
	       c.tenants[0].onboard.track_interval_ms == 2 * 86400000ull &&
	       c.tenants[0].onboard.max_resends == 1 && c.tenants[0].onboard.replication_delay_ms == 0,
	   "a tenant's own keys win, the others come from [queue]");
	ok(c.n_tenants == 2 && c.tenants[1].onboard.lookup && c.tenants[1].onboard.track_days == 14 &&
	       c.tenants[1].onboard.track_interval_ms == 6 * 3600000ull &&
	       c.tenants[1].onboard.lookup_rate == 7.5 &&
	       c.tenants[1].onboard.replication_delay_ms == 90000,
	   "a tenant without its own keys has [queue]'s");
	is_int(config_check(&c, &err), 0, "and passes the check");
	free(err);
	err = NULL;
	config_finish(&c);
	static const char *const bad[] = {
		"lookup = maybe", "track_days = 366", "track_days = -1", "track_interval = 0.5s",
		"track_interval = 31d", "track_interval = 1w", "max_resends = 101", "lookup_rate = 0",
		"group_rate = nan", "track_rate = 10001", "replication_delay = 2d",
		"replication_delay = -1", "replication_delay = 0.01s",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "[queue]\n%s\n", bad[i]);
		config_init(&c);
		r = config_load(&c, write_file("o.conf", text), true, &err);
		ok(r == -EINVAL && err && strstr(err, ":2:"), "'%s' refused at its line: %s", bad[i],
		   err ? err : "(null)");
		free(err);
		err = NULL;
		config_finish(&c);
	}
	/* [mail] rate shares the rate keys' rule (parse_rate) with its own bound */
	static const char *const bad_mail[] = {"rate = 0", "rate = 1000.5", "rate = nan",
					       "rate = -1"};
	for (size_t i = 0; i < sizeof(bad_mail) / sizeof(bad_mail[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "[mail]\n%s\n", bad_mail[i]);
		config_init(&c);
		r = config_load(&c, write_file("o.conf", text), true, &err);
		ok(r == -EINVAL && err && strstr(err, ":2:"), "[mail] '%s' refused at its line: %s",
		   bad_mail[i], err ? err : "(null)");
		free(err);
		err = NULL;
		config_finish(&c);
	}
	config_init(&c);
	config_load(&c, write_file("o.conf", "[mail]\nrate = 2.5\n"), true, &err);
	ok(err == NULL && c.mail.rate == 2.5, "[mail] rate = 2.5 is taken: %s", err ? err : "ok");
	free(err);
	err = NULL;
	config_finish(&c);
	config_init(&c);
	config_load(&c, write_file("o.conf", "[graph]\ntenant = t.example\nclient_id = c\n"
					    "[queue]\ntrack_days = 3\n"),
		    true, &err);
	free(err);
	err = NULL;
	ok(config_check(&c, &err) == -EINVAL && err && strstr(err, "lookup = yes"),
	   "track_days without lookups is refused: %s", err ? err : "(null)");
	free(err);
	config_finish(&c);
}

int main(void)
{
	tap_plan_none();
	if (!mkdtemp(dir))
		return 1;
	test_good();
	test_bad();
	test_on_complete();
	test_url_secure();
	test_rate_warning();
	test_dropins_and_missing();
	test_clouds();
	test_tenants();
	test_connection_limits();
	test_onboard_keys();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
