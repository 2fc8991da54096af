/* SPDX-License-Identifier: MIT */
/* config: every key, bad values with file:line, drop-ins, inline '#' kept. */
#include <errno.h>
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
		{"[tenant x]\nrate = 1\n", 2, "unknown section"},
		{"[graph]\nthis is not a key value line\n", 2, "not a"},
		{"[daemon]\non_complete = notify-send done\n", 2, "absolute path"},
		{"[daemon]\n\non_complete = /bin/x 'open\n", 3, "unterminated"},
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
	char *path = write_file("hook.conf", "[daemon]\non_complete = /usr/local/bin/notify "
					     "--to 'a b' \"c\\\"d\"\n");
	is_int(config_load(&c, path, true, &err), 0, "on_complete loads");
	ok(c.on_complete && c.on_complete[0] && c.on_complete[1] && c.on_complete[2] &&
		   c.on_complete[3] && !c.on_complete[4],
	   "split into four words");
	if (c.on_complete && c.on_complete[3]) {
		is_str(c.on_complete[0], "/usr/local/bin/notify", "the command");
		is_str(c.on_complete[2], "a b", "a quoted word");
		is_str(c.on_complete[3], "c\"d", "an escaped quote");
	}
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	config_dump(&c, f);
	fclose(f);
	ok(text && strstr(text, "on_complete = '/usr/local/bin/notify' '--to' 'a b' 'c\"d'\n"),
	   "--check-config prints it so that it reads back the same");
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
	ok(err && strstr(err, "tenant"), "and it says so: %s", err ? err : "");
	free(err);
	err = NULL;
	is_int(config_load(&c, missing, true, &err), -ENOENT, "a missing -c file is an error");
	ok(err && strstr(err, "none.conf"), "naming the file: %s", err ? err : "");
	free(err);
	config_finish(&c);
}

/* [daemon] connection limits: durations with s, m, h; the defaults */
static void test_connection_limits(void)
{
	static const struct {
		const char *value;
		uint64_t ms; /* 0: refused */
	} durations[] = {
		{"10", 10000}, {"1.5", 1500}, {"90s", 90000}, {"5m", 300000}, {"2h", 7200000},
		{"0.1", 100},  {"0", 0},      {"-1", 0},      {"25h", 0},     {"5 m", 0},
		{"inf", 0},    {"nan", 0},    {"1d", 0},      {"", 0},        {"m", 0},
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

int main(void)
{
	tap_plan_none();
	if (!mkdtemp(dir))
		return 1;
	test_good();
	test_bad();
	test_on_complete();
	test_dropins_and_missing();
	test_clouds();
	test_connection_limits();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
