/* SPDX-License-Identifier: MIT */
/* tenants and check: the tenants one daemon serves (SPEC §7). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "table.h"

/* "4.5/5": the rate in force now over the configured one (invitations/s). */
static void rate_text(const json_t *t, char *out, size_t size)
{
	char now[CLI_NUMBER_MAX], conf[CLI_NUMBER_MAX];
	cli_number_text(json_object_get(t, "rate"), now, sizeof(now), true);
	cli_number_text(json_object_get(t, "configured_rate"), conf, sizeof(conf), true);
	snprintf(out, size, "%s/%s", now, conf);
}

/* "ok", "paused until 10:42:05", "blocked: <Graph's reason>", or the state
 * word the daemon sent. */
static int state_text(const json_t *t, struct buf *b)
{
	const char *state = cli_str(t, "state"), *reason = cli_str(t, "reason");
	buf_clear(b);
	if (!state)
		return buf_append_str(b, "?");
	if (strcmp(state, "paused") == 0 && cli_str(t, "paused_until")) {
		char until[64];
		cli_local_clock(cli_str(t, "paused_until"), until, sizeof(until));
		return buf_printf(b, "paused until %s", until);
	}
	if (reason && strcmp(state, "ok") != 0)
		return buf_printf(b, "%s: %s", state, reason);
	return buf_append_str(b, state);
}

static const struct table_column full_columns[] = {
    {"NAME", TABLE_LEFT},    {"TENANT", TABLE_LEFT},   {"CLOUD", TABLE_LEFT},
    {"TOKEN", TABLE_LEFT},   {"RATE", TABLE_RIGHT},    {"STATE", TABLE_LEFT},
    {"ACTIVE", TABLE_RIGHT}, {"PENDING", TABLE_RIGHT},
};
#define N_FULL (sizeof(full_columns) / sizeof(full_columns[0]))
static const struct table_column brief_columns[] = {
    {"NAME", TABLE_LEFT},  {"TOKEN", TABLE_LEFT},    {"RATE", TABLE_RIGHT},
    {"STATE", TABLE_LEFT}, {"PENDING", TABLE_RIGHT},
};
#define N_BRIEF (sizeof(brief_columns) / sizeof(brief_columns[0]))

static int add_tenant_row(const struct cli *cli, struct table *t, const json_t *tn, bool brief,
                          struct buf *state)
{
	char rate[2 * CLI_NUMBER_MAX + 2], active[CLI_INT_MAX], pending[CLI_INT_MAX];
	int r = state_text(tn, state);
	if (r < 0)
		return r;
	rate_text(tn, rate, sizeof(rate));
	const char *sgr_state = cli_state_sgr(cli, cli_str(tn, "state"));
	if (brief) {
		const char *cells[N_BRIEF] = {cli_str(tn, "name"), cli_str(tn, "token"), rate,
		                              state->data, cli_int_text(tn, "pending", pending)};
		const char *sgr[N_BRIEF] = {NULL, NULL, NULL, sgr_state, NULL};
		return table_add_row(t, cells, sgr);
	}
	const char *cells[N_FULL] = {
	    cli_str(tn, "name"),
	    cli_str(tn, "tenant"),
	    cli_str(tn, "cloud"),
	    cli_str(tn, "token"),
	    rate,
	    state->data,
	    cli_int_text(tn, "active_jobs", active),
	    cli_int_text(tn, "pending", pending),
	};
	const char *sgr[N_FULL] = {NULL, NULL, NULL, NULL, NULL, sgr_state, NULL, NULL};
	return table_add_row(t, cells, sgr);
}

int cli_print_tenants(const struct cli *cli, const json_t *tenants, bool brief, bool no_legend)
{
	struct table *t = NULL;
	struct buf state = BUF_INIT;
	int r = brief ? table_create(&t, N_BRIEF, brief_columns)
	              : table_create(&t, N_FULL, full_columns);
	if (r == 0 && no_legend)
		table_hide_header(t);
	for (size_t i = 0; r == 0 && i < json_array_size(tenants); i++)
		r = add_tenant_row(cli, t, json_array_get(tenants, i), brief, &state);
	if (r == 0)
		r = table_flush(t, stdout);
	table_destroy(t);
	buf_finish(&state);
	if (r == -ENOMEM)
		cli_error("out of memory");
	return r == -ENOMEM ? EXIT_TEMPFAIL : EXIT_DONE; /* write errors: main checks stdout */
}

int cmd_tenants(struct cli *cli, int argc, char **argv)
{
	enum { OPT_NO_LEGEND = CLI_OPT_FIRST_LOCAL };
	static const struct option opts[] = {
	    {"quiet", no_argument, NULL, 'q'},
	    {"no-legend", no_argument, NULL, OPT_NO_LEGEND},
	    CLI_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_t *reply = NULL, *tenants = NULL;
	bool quiet = false, no_legend = false;
	int c, r;
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "q", opts, NULL)) != -1) {
		if (c == 'q') {
			quiet = true;
			continue;
		}
		if (c == OPT_NO_LEGEND) {
			no_legend = true;
			continue;
		}
		r = cli_common_option(cli, c);
		if (r != CLI_CONTINUE)
			return r;
	}
	if (optind < argc)
		return cli_usage(cli, "unexpected argument '%s'", argv[optind]);
	if (quiet && cli->json)
		return cli_usage(cli, "-q and --json exclude each other");
	r = cli_call(cli, cli_request("tenants", 0), &reply);
	if (r == EXIT_DONE)
		r = cli_take(reply, "tenants", JSON_ARRAY, &tenants);
	if (r != EXIT_DONE)
		goto out;
	if (cli->json) {
		cli_print_json(tenants);
	} else if (quiet) {
		/* names only, for scripts and the bash completion: a name is
		 * [a-z0-9-] (SPEC §7), anything else from the daemon is skipped */
		for (size_t i = 0; i < json_array_size(tenants); i++) {
			const char *name = cli_str(json_array_get(tenants, i), "name");
			if (name &&
			    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(name) &&
			    name[0])
				printf("%s\n", name);
		}
	} else {
		r = cli_print_tenants(cli, tenants, false, no_legend);
	}
out:
	json_decref(tenants);
	json_decref(reply);
	return r;
}

/* ---- check ---- */

/* What `tenants` says of tenant name (a new reference, or NULL), asked
 * quietly: check's words only lose the directory and cloud without it. */
static json_t *tenant_info(struct cli *cli, const char *name)
{
	json_t *req = cli_request("tenants", 0), *reply = NULL, *found = NULL;
	if (!req || !name || conn_send_json(&cli->conn, req) < 0 ||
	    conn_recv_json(&cli->conn, &reply) < 0)
		goto out;
	const json_t *list = json_object_get(reply, "tenants");
	for (size_t i = 0; json_is_true(json_object_get(reply, "ok")) && i < json_array_size(list);
	     i++) {
		const json_t *t = json_array_get(list, i);
		const char *n = cli_str(t, "name");
		if (n && strcmp(n, name) == 0) {
			found = json_incref((json_t *)t);
			break;
		}
	}
out:
	json_decref(req);
	json_decref(reply);
	return found;
}

/* The sign-in host of a cloud (GRAPH.md §2), where the admin-consent URL goes. */
static const char *authority_of(const char *cloud)
{
	if (cloud && strncmp(cloud, "usgov", 5) == 0)
		return "https://login.microsoftonline.us";
	if (cloud && strcmp(cloud, "china") == 0)
		return "https://login.chinacloudapi.cn";
	return "https://login.microsoftonline.com";
}

/* A path segment or query value: unreserved characters as they are, the
 * rest percent-encoded. */
static int append_encoded(struct buf *b, const char *s)
{
	int r = 0;
	for (; r == 0 && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~')
			r = buf_append(b, s, 1);
		else
			r = buf_printf(b, "%%%02X", c);
	}
	return r;
}

/* The admin-consent URL of the app in the tenant (GRAPH.md §8):
 * {authority}/{directory}/adminconsent?client_id={client_id}. */
static int consent_url(const json_t *check, const json_t *info, struct buf *b)
{
	const char *dir = cli_str(check, "directory");
	const char *authority = cli_str(check, "authority_url");
	const char *client_id = cli_str(check, "client_id");
	if (!dir)
		dir = cli_str(info, "tenant");
	if (!dir)
		dir = cli_str(check, "tenant");
	if (!authority)
		authority = authority_of(cli_str(info, "cloud"));
	size_t alen = strlen(authority);
	while (alen > 0 && authority[alen - 1] == '/')
		alen--;
	buf_clear(b);
	int r = buf_append(b, authority, alen);
	if (r == 0)
		r = buf_append_str(b, "/");
	if (r == 0)
		r = append_encoded(b, dir ? dir : "TENANT");
	if (r == 0)
		r = buf_append_str(b, "/adminconsent?client_id=");
	if (r == 0)
		r = client_id ? append_encoded(b, client_id) : buf_append_str(b, "CLIENT_ID");
	return r;
}

/* The strings of a JSON array joined with ", " ("none" when empty, NULL
 * when it is not an array). */
static int join_list(const json_t *a, struct buf *b)
{
	buf_clear(b);
	if (!json_is_array(a))
		return 0;
	if (json_array_size(a) == 0)
		return buf_append_str(b, "none");
	int r = 0;
	for (size_t i = 0; r == 0 && i < json_array_size(a) && i < CLI_TENANTS_MAX; i++) {
		const char *s = json_string_value(json_array_get(a, i));
		r = buf_printf(b, "%s%s", i > 0 ? ", " : "", s ? s : "?");
	}
	return r;
}

static const char *guests_words(const char *guests)
{
	if (!guests)
		return "unknown";
	if (strcmp(guests, "allowed") == 0)
		return "may be invited";
	if (strcmp(guests, "not_allowed") == 0)
		return "may not be invited";
	return guests;
}

/* The admin-consent URL on a line of its own, and what CLIENT_ID stands
 * for when the daemon did not say it. */
static void print_url(const json_t *check, const json_t *info, const char *indent)
{
	struct buf url = BUF_INIT;
	if (consent_url(check, info, &url) == 0 && url.data)
		cli_line(stdout, "%s%s", indent, url.data);
	if (!cli_str(check, "client_id"))
		cli_line(stdout,
		         "%s(CLIENT_ID: the application (client) id, [graph] client_id in "
		         "invited.conf)",
		         indent);
	buf_finish(&url);
}

/* What to do, in plain words, after the facts. */
static void print_advice(const json_t *check, const json_t *info, bool token_ok)
{
	struct buf missing = BUF_INIT;
	const char *name = cli_str(check, "tenant");
	const char *guests = cli_str(check, "guests");
	const json_t *miss = json_object_get(check, "missing");
	if (!token_ok) {
		fputc('\n', stdout);
		cli_line(stdout,
		         "invited holds no token for tenant %s: the token endpoint refused it",
		         name ? name : "?");
		cli_line(stdout,
		         "(the error above), or has not answered yet (try again in a moment).");
		cli_line(stdout, "Check the tenant's credential (client_secret_file or "
		                 "certificate_file, or the");
		cli_line(stdout,
		         "credential %s.client-secret), then run invitectl reload. If the app",
		         name ? name : "NAME");
		cli_line(stdout,
		         "was never consented in this tenant, an administrator of the tenant "
		         "opens:");
		print_url(check, info, "  ");
	} else if (json_array_size(miss) > 0 && join_list(miss, &missing) == 0 && missing.data) {
		fputc('\n', stdout);
		cli_line(stdout, "The token lacks %s: invited cannot do all it is configured to.",
		         missing.data);
		cli_line(stdout, "To grant %s:", json_array_size(miss) == 1 ? "it" : "them");
		cli_line(stdout, "1. In the app registration (Entra admin center, App "
		                 "registrations, the app,");
		cli_line(stdout, "   API permissions): Add a permission, Microsoft Graph, "
		                 "Application permissions:");
		cli_line(stdout, "   %s.", missing.data);
		cli_line(stdout, "2. Consent in this tenant: \"Grant admin consent\" on that page, "
		                 "or an");
		cli_line(stdout, "   administrator of the tenant opens:");
		print_url(check, info, "   ");
		cli_line(stdout,
		         "A token carries the roles granted when it was issued: the new ones "
		         "show once");
		cli_line(stdout, "invited has its next token (within the hour).");
	}
	if (token_ok && guests && strcmp(guests, "not_allowed") == 0) {
		fputc('\n', stdout);
		cli_line(stdout, "The tenant does not let anyone invite guests. An administrator "
		                 "changes it in the");
		cli_line(stdout, "Entra admin center: External Identities, External collaboration "
		                 "settings, Guest");
		cli_line(stdout, "invite settings (anything but \"No one in the organization can "
		                 "invite guest users\").");
	}
	buf_finish(&missing);
}

static int print_check(struct cli *cli, const json_t *check)
{
	struct buf roles = BUF_INIT, needed = BUF_INIT, missing = BUF_INIT, tenant = BUF_INIT,
	           guests = BUF_INIT, mail = BUF_INIT;
	const char *name = cli_str(check, "tenant"), *token = cli_str(check, "token");
	const char *why = cli_str(check, "guests_why");
	bool token_ok = token && strcmp(token, "ok") == 0;
	bool all_ok = json_is_true(json_object_get(check, "all_ok"));
	json_t *info = tenant_info(cli, name);
	const char *dir = cli_str(check, "directory");
	if (!dir)
		dir = cli_str(info, "tenant");
	int r = dir ? buf_printf(&tenant, "%s (%s)", name ? name : "?", dir)
	            : buf_append_str(&tenant, name ? name : "?");
	if (r == 0)
		r = join_list(json_object_get(check, "roles"), &roles);
	if (r == 0)
		r = join_list(json_object_get(check, "needed"), &needed);
	if (r == 0)
		r = join_list(json_object_get(check, "missing"), &missing);
	if (r == 0)
		r = why ? buf_printf(&guests, "%s (%s)", guests_words(cli_str(check, "guests")),
		                     why)
		        : buf_append_str(&guests, guests_words(cli_str(check, "guests")));
	/* SPEC §8 [mail]: the path our invitation mail takes */
	const json_t *m = json_object_get(check, "mail");
	if (r == 0 && m) {
		const char *err = cli_str(m, "error");
		r = buf_printf(&mail, "%s from %s: %s%s%s", cli_str(m, "via") ? cli_str(m, "via") : "?",
		               cli_str(m, "sender") ? cli_str(m, "sender") : "?",
		               json_is_true(json_object_get(m, "ok")) ? "ok" : "not working",
		               err ? " (" : "", err ? err : "");
		if (r == 0 && err)
			r = buf_append_str(&mail, ")");
	}
	if (r < 0) {
		cli_error("out of memory");
		r = EXIT_TEMPFAIL;
		goto out;
	}
	const struct cli_kv kv[] = {
	    {"Tenant", tenant.data},
	    {"Token", token_ok ? "ok"
	              : token  ? token
	                       : "?"},
	    /* no roles claim known: said as such, not as "none" */
	    {"Roles", roles.data ? roles.data
	              : token_ok ? "unknown"
	                         : "- (no token)"},
	    {"Needed", needed.data},
	    {"Missing", missing.data ? missing.data
	                : token_ok   ? "unknown"
	                             : NULL},
	    {"Guests", guests.data},
	    {"Mail", mail.data},
	    {"Result", all_ok     ? "all is there"
	               : token_ok ? "something is missing"
	                          : "no token"},
	};
	cli_print_kv(kv, sizeof(kv) / sizeof(kv[0]));
	print_advice(check, info, token_ok);
	r = EXIT_DONE;
out:
	json_decref(info);
	buf_finish(&roles);
	buf_finish(&needed);
	buf_finish(&missing);
	buf_finish(&tenant);
	buf_finish(&guests);
	buf_finish(&mail);
	return r;
}

int cmd_check(struct cli *cli, int argc, char **argv)
{
	enum { OPT_TENANT = CLI_OPT_FIRST_LOCAL };
	static const struct option opts[] = {
	    {"tenant", required_argument, NULL, OPT_TENANT},
	    CLI_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_t *req = cli_request("check", 0), *reply = NULL, *check = NULL;
	int c, r = EXIT_TEMPFAIL;
	if (!req) {
		cli_error("out of memory");
		goto out;
	}
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
		r = c == OPT_TENANT ? cli_set_tenant(cli, req, optarg) : cli_common_option(cli, c);
		if (r != CLI_CONTINUE)
			goto out;
	}
	if (optind < argc) {
		r = cli_usage(cli, "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	r = cli_call(cli, req, &reply);
	req = NULL;
	if (r == EXIT_DONE)
		r = cli_take(reply, "check", JSON_OBJECT, &check);
	if (r != EXIT_DONE)
		goto out;
	if (cli->json)
		cli_print_json(check);
	else
		r = print_check(cli, check);
	if (r != EXIT_DONE)
		goto out;
	/* 0 only when all is there; 78 when no token can be had (the credential
	 * or the consent: configuration); 1 when a role or the guest policy is
	 * missing */
	const char *token = cli_str(check, "token");
	if (!token || strcmp(token, "ok") != 0)
		r = EXIT_CONFIG;
	else if (!json_is_true(json_object_get(check, "all_ok")))
		r = EXIT_MISSING;
out:
	json_decref(req);
	json_decref(check);
	json_decref(reply);
	return r;
}
