/* SPDX-License-Identifier: MIT */
/*
 * smtp-send: the tests' driver of http.c's SMTP (test-smtp-transport.py).
 * Composes an invitation mail as the daemon does (mailmsg: a template
 * rendered, the RFC 5322 message) and sends it with http_smtp_send on a
 * libuv loop, then prints the outcome as one JSON line per message:
 *
 *   {"rc":0,"status":250,"error":0,"error_text":null,"reply":"250 OK: queued",
 *    "outcome":"OK","code":null,"message":null}
 *
 *   smtp-send --url smtp://127.0.0.1:PORT --from inv@contoso.example
 *             --to ann@partner.example [--name NAME] [--user U --password-file F]
 *             [--ca FILE] [--template FILE] [--subject S] [--body B]
 *             [--redeem-url U] [--message M] [--inviter I] [--tenant T]
 *             [--check-only] [--count N] [--timeout-ms N] [--probe]
 *             [--destroy-after-ms N]
 *
 * --probe: a 5 ms timer runs on the loop meanwhile; "max_stall_ms" is the
 * longest gap between its ticks, i.e. the longest time the loop was blocked.
 * --destroy-after-ms: http_destroy after N ms, a transfer still running.
 *
 * Exit 0 when every message was handed to the loop (whatever its outcome),
 * 2 on a usage or composing error.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "graph.h"
#include "http.h"
#include "mailmsg.h"
#include "secret.h"
#include "timeutil.h"

static const char *outcome_names[] = {"OK", "NOT_FOUND", "DENIED", "FAILED",
				      "TRANSIENT", "THROTTLED", "AUTH"};

struct run {
	struct http *http;
	uv_timer_t probe; /* --probe: ticks every 5 ms, the longest gap is the loop's longest stall */
	int probing;
	uint64_t last_tick_ms, max_gap_ms;
	uv_timer_t destroy; /* --destroy-after-ms: http_destroy while a transfer runs */
	uint64_t destroy_after_ms;
	struct http_smtp_spec spec;
	const char *from, *to, *name, *subject, *body;
	int left;
	int failed;
};

static int send_one(struct run *x);

static void on_done(void *userdata, const struct http_response *resp)
{
	struct run *x = userdata;
	struct graph_dir_result g;
	if (x->probing) { /* the gap up to now counts too (a stall just before this callback) */
		uv_update_time(x->probe.loop);
		uint64_t now = uv_now(x->probe.loop);
		if (now - x->last_tick_ms > x->max_gap_ms)
			x->max_gap_ms = now - x->last_tick_ms;
	}
	int r = mailmsg_smtp_classify(resp, &g);
	json_t *j = json_pack("{s:i,s:I,s:I,s:i,s:s?,s:s,s:s,s:s?,s:s?}", "rc", 0, "max_stall_ms",
			      (json_int_t)x->max_gap_ms, "status",
			      (json_int_t)resp->status, "error", resp->error, "error_text",
			      resp->error_text, "reply", resp->body ? resp->body : "", "outcome",
			      r == 0 ? outcome_names[g.outcome] : "ENOMEM", "code",
			      r == 0 ? g.error_code : NULL, "message", r == 0 ? g.error_message : NULL);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	printf("%s\n", s ? s : "{\"rc\":-12}");
	fflush(stdout);
	free(s);
	json_decref(j);
	if (r == 0)
		graph_dir_result_clear(&g);
	if (x->destroy_after_ms)
		uv_timer_stop(&x->destroy);
	if (!x->http)
		x->left = 1; /* destroyed: no more */
	if (--x->left > 0 && send_one(x) < 0)
		x->failed = 1;
	if (x->left == 0 && x->probing)
		uv_timer_stop(&x->probe);
}

static void on_destroy(uv_timer_t *t)
{
	struct run *x = t->data;
	http_destroy(x->http);
	x->http = NULL;
}

static void on_tick(uv_timer_t *t)
{
	struct run *x = t->data;
	uint64_t now = uv_now(t->loop);
	if (now - x->last_tick_ms > x->max_gap_ms)
		x->max_gap_ms = now - x->last_tick_ms;
	x->last_tick_ms = now;
}

static int send_one(struct run *x)
{
	char *msg = NULL;
	size_t len = 0;
	int r = 0;
	if (!x->spec.check_only) {
		r = mailmsg_smtp_message(x->from, x->to, x->name, x->subject, x->body, time_now_ms(),
					 &msg, &len);
		if (r < 0) {
			printf("{\"rc\":%d,\"compose\":true}\n", r);
			return r;
		}
	}
	r = http_smtp_send(x->http, &x->spec, msg, len, on_done, x);
	if (r < 0)
		printf("{\"rc\":%d}\n", r);
	return r;
}

static char *read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *data = malloc(MAILMSG_TEMPLATE_MAX * 2 + 1);
	size_t n = data ? fread(data, 1, MAILMSG_TEMPLATE_MAX * 2, f) : 0;
	fclose(f);
	if (!data)
		return NULL;
	data[n] = '\0';
	*ret_len = n;
	return data;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"url", required_argument, NULL, 'u'},	    {"from", required_argument, NULL, 'f'},
		{"to", required_argument, NULL, 't'},	    {"name", required_argument, NULL, 'n'},
		{"user", required_argument, NULL, 'U'},	    {"password-file", required_argument, NULL, 'P'},
		{"ca", required_argument, NULL, 'c'},	    {"template", required_argument, NULL, 'T'},
		{"subject", required_argument, NULL, 's'},  {"body", required_argument, NULL, 'b'},
		{"redeem-url", required_argument, NULL, 'r'}, {"message", required_argument, NULL, 'm'},
		{"inviter", required_argument, NULL, 'i'},  {"tenant", required_argument, NULL, 'e'},
		{"check-only", no_argument, NULL, 'C'},	    {"count", required_argument, NULL, 'N'},
		{"timeout-ms", required_argument, NULL, 'o'}, {"probe", no_argument, NULL, 'p'},
		{"destroy-after-ms", required_argument, NULL, 'D'},
		{NULL, 0, NULL, 0},
	};
	struct run x = {.subject = "You are invited", .body = "Hello", .left = 1};
	struct mailmsg_values v = {0};
	const char *template_path = NULL, *password_file = NULL;
	char *password = NULL, *subject = NULL, *body = NULL;
	x.spec.timeout_ms = 20000;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'u': x.spec.url = optarg; break;
		case 'f': x.from = x.spec.mail_from = optarg; break;
		case 't': x.to = x.spec.rcpt = v.email = optarg; break;
		case 'n': x.name = v.display_name = optarg; break;
		case 'U': x.spec.user = optarg; break;
		case 'P': password_file = optarg; break;
		case 'c': x.spec.ca_file = optarg; break;
		case 'T': template_path = optarg; break;
		case 's': x.subject = optarg; break;
		case 'b': x.body = optarg; break;
		case 'r': v.redeem_url = optarg; break;
		case 'm': v.message = optarg; break;
		case 'i': v.inviter = optarg; break;
		case 'e': v.tenant = optarg; break;
		case 'C': x.spec.check_only = 1; break;
		case 'N': x.left = (int)strtol(optarg, NULL, 10); break;
		case 'o': x.spec.timeout_ms = strtoull(optarg, NULL, 10); break;
		case 'p': x.probing = 1; break;
		case 'D': x.destroy_after_ms = strtoull(optarg, NULL, 10); break;
		default: return 2;
		}
	}
	if (!x.spec.url || x.left < 1 || x.left > 100)
		return 2;
	if (password_file) {
		size_t n;
		char *p = read_file(password_file, &n);
		if (!p)
			return 2;
		while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
			p[--n] = '\0';
		password = secret_strdup(p);
		explicit_bzero(p, n);
		free(p);
		x.spec.password = password;
	}
	if (template_path) {
		size_t n;
		char *text = read_file(template_path, &n), *why = NULL;
		struct mailmsg_template *t = NULL;
		int r = text ? mailmsg_template_parse(text, n, &t, &why) : -ENOENT;
		free(text);
		if (r < 0) {
			fprintf(stderr, "smtp-send: template: %s\n", why ? why : strerror(-r));
			free(why);
			return 2;
		}
		r = mailmsg_render(t, &v, &subject, &body);
		mailmsg_template_free(t);
		if (r < 0)
			return 2;
		x.subject = subject;
		x.body = body;
	}
	uv_loop_t *loop = uv_default_loop();
	if (http_create(loop, 4, &x.http) < 0)
		return 2;
	if (x.probing) {
		uv_timer_init(loop, &x.probe);
		x.probe.data = &x;
		x.last_tick_ms = uv_now(loop);
		uv_timer_start(&x.probe, on_tick, 5, 5);
	}
	if (x.destroy_after_ms) {
		uv_timer_init(loop, &x.destroy);
		x.destroy.data = &x;
		uv_timer_start(&x.destroy, on_destroy, x.destroy_after_ms, 0);
	}
	int rc = send_one(&x) < 0 ? 2 : 0;
	if (rc == 0)
		uv_run(loop, UV_RUN_DEFAULT);
	if (x.probing)
		uv_close((uv_handle_t *)&x.probe, NULL);
	if (x.destroy_after_ms)
		uv_close((uv_handle_t *)&x.destroy, NULL);
	http_destroy(x.http);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	secret_free(password);
	free(subject);
	free(body);
	return rc ? rc : x.failed ? 2 : 0;
}
