/* SPDX-License-Identifier: MIT */
/*
 * invited-sim: a Microsoft Graph and Entra ID token endpoint simulator for
 * invited's tests and benchmarks. This file holds the command line and the
 * HTTP layer (libmicrohttpd); graph.c decides what to answer and delay.c
 * answers later without holding a worker thread. See docs/simulator.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "delay.h"
#include "log.h"
#include "sim.h"
#include "timeutil.h"

#define HANG_POLL_MS 250u       /* how often a held connection is checked for a hang-up */
#define CONNECTION_IDLE_S 300u  /* idle keep-alive connections are closed after this */
#define SECRET_FILE_MAX 4096u
#define PEM_FILE_MAX (256u * 1024u) /* --tls-cert (a chain) and --tls-key */
/* MHD's per-connection pool (headers + read buffer), zeroed on every request:
 * the 32 KiB default cost ~9 % of the CPU under load. */
#define CONNECTION_MEMORY (16u * 1024u)
#define SIM_VERSION "0.1.0"

enum route {
	ROUTE_TOKEN,
	ROUTE_INVITE,
	ROUTE_BATCH,
	ROUTE_STATS,
	ROUTE_POLICY,  /* GET /v1.0/policies/authorizationPolicy */
	ROUTE_BLOCK,   /* POST /sim/block?tenant=NAME */
	ROUTE_UNBLOCK, /* POST /sim/unblock?tenant=NAME */
	ROUTE_DIRECTORY, /* /v1.0/users..., /v1.0/groups/... (directory.c) */
	ROUTE_SIM_DIR,   /* GET /sim/members, /sim/mail, /sim/users?tenant=NAME */
	ROUTE_NOT_FOUND,
	ROUTE_BAD_METHOD,
};

enum req_state {
	REQ_READING,
	REQ_DELAYED, /* suspended until the latency has passed */
	REQ_HANGING, /* suspended for good; polled for a client hang-up */
	REQ_DONE,
};

struct server {
	struct sim sim;
	struct delay delay;
	struct MHD_Daemon *mhd;
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	} addr;
	bool ipv6;
};

struct req {
	enum route route;
	enum req_state state;
	bool counted;      /* counts in requests/in_flight (everything but /sim/) */
	bool holding_hang; /* counts in hangs_held */
	bool too_large;
	struct buf body;
	struct reply reply;
	const char *method; /* borrowed from MHD, valid for the request */
	const char *url;
	uint64_t start_us; /* arrival (delay_now_us): the latency counts from here */
	uint64_t due_us;   /* when a delayed answer is due */
	char tenant[SIM_TENANT_MAX + 1]; /* the token URL's, or a Graph URL's prefix */
	bool url_tenant;                 /* a Graph URL "/{tenant}/v1.0/..." named tenant */
	char client_request_id[SIM_CLIENT_REQUEST_ID_MAX + 1];
};

/* ---- command line ---- */

enum {
	OPT_LISTEN = 0x100,
	OPT_PORT,
	OPT_PORT_FILE,
	OPT_RECORD,
	OPT_TENANT,
	OPT_CLIENT_ID,
	OPT_CLIENT_SECRET,
	OPT_CLIENT_SECRET_FILE,
	OPT_CLIENT_CERT,
	OPT_TOKEN_FILE,
	OPT_TOKEN_TTL,
	OPT_TOKEN_FAIL_FOR,
	OPT_TOKEN_FAIL_COUNT,
	OPT_RATE,
	OPT_PERIOD,
	OPT_LATENCY,
	OPT_JITTER,
	OPT_FAIL_5XX,
	OPT_FAIL_429,
	OPT_FAIL_RESET,
	OPT_FAIL_HANG,
	OPT_FAIL_AFTER_ACCEPT,
	OPT_REJECT,
	OPT_REJECT_CODE,
	OPT_REJECT_MESSAGE,
	OPT_BLOCK_MESSAGE,
	OPT_SEED,
	OPT_BLOCK_AFTER,
	OPT_NO_BATCH,
	OPT_THREADS,
	OPT_MAX_CONNECTIONS,
	OPT_MAX_HANGS,
	OPT_VERBOSE,
	OPT_GARBLE,
	OPT_RETRY_AFTER_TEXT,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TENANTS_FILE,
	OPT_ROLES,
	OPT_THROTTLE_SCOPE,
	OPT_GUESTS,
	OPT_SEED_MEMBERS,
	OPT_SEED_GUESTS,
	OPT_MEMBER_PATTERN,
	OPT_GUEST_PATTERN,
	OPT_DIRECTORY,
	OPT_GROUP,
	OPT_GUEST_REFUSING_GROUP,
	OPT_REFUSING_MAILBOX,
	OPT_READ_RATE,
	OPT_READ_PERIOD,
	OPT_MAIL_RATE,
	OPT_MAIL_PERIOD,
	OPT_REPLICATION_DELAY,
	OPT_MEMBER_404_SHARE,
	OPT_ACCEPT_AFTER,
	OPT_ACCEPT_SHARE,
	OPT_MEMBERS_RECORD,
	OPT_MAIL_RECORD,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option options[] = {
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"port", required_argument, NULL, OPT_PORT},
	{"port-file", required_argument, NULL, OPT_PORT_FILE},
	{"record", required_argument, NULL, OPT_RECORD},
	{"tenant", required_argument, NULL, OPT_TENANT},
	{"client-id", required_argument, NULL, OPT_CLIENT_ID},
	{"client-secret", required_argument, NULL, OPT_CLIENT_SECRET},
	{"client-secret-file", required_argument, NULL, OPT_CLIENT_SECRET_FILE},
	{"client-cert", required_argument, NULL, OPT_CLIENT_CERT},
	{"token-file", required_argument, NULL, OPT_TOKEN_FILE},
	{"token-ttl", required_argument, NULL, OPT_TOKEN_TTL},
	{"token-fail-for", required_argument, NULL, OPT_TOKEN_FAIL_FOR},
	{"token-fail-count", required_argument, NULL, OPT_TOKEN_FAIL_COUNT},
	{"rate", required_argument, NULL, OPT_RATE},
	{"period", required_argument, NULL, OPT_PERIOD},
	{"latency-ms", required_argument, NULL, OPT_LATENCY},
	{"latency-jitter-ms", required_argument, NULL, OPT_JITTER},
	{"fail-5xx", required_argument, NULL, OPT_FAIL_5XX},
	{"fail-429", required_argument, NULL, OPT_FAIL_429},
	{"fail-reset", required_argument, NULL, OPT_FAIL_RESET},
	{"fail-hang", required_argument, NULL, OPT_FAIL_HANG},
	{"fail-after-accept", required_argument, NULL, OPT_FAIL_AFTER_ACCEPT},
	{"reject", required_argument, NULL, OPT_REJECT},
	{"reject-code", required_argument, NULL, OPT_REJECT_CODE},
	{"reject-message", required_argument, NULL, OPT_REJECT_MESSAGE},
	{"block-message", required_argument, NULL, OPT_BLOCK_MESSAGE},
	{"seed", required_argument, NULL, OPT_SEED},
	{"block-after", required_argument, NULL, OPT_BLOCK_AFTER},
	{"no-batch-invitations", no_argument, NULL, OPT_NO_BATCH},
	{"threads", required_argument, NULL, OPT_THREADS},
	{"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
	{"max-hangs", required_argument, NULL, OPT_MAX_HANGS},
	{"verbose", no_argument, NULL, OPT_VERBOSE},
	{"garble", required_argument, NULL, OPT_GARBLE},
	{"retry-after-text", required_argument, NULL, OPT_RETRY_AFTER_TEXT},
	{"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	{"tls-key", required_argument, NULL, OPT_TLS_KEY},
	{"tenants-file", required_argument, NULL, OPT_TENANTS_FILE},
	{"roles", required_argument, NULL, OPT_ROLES},
	{"throttle-scope", required_argument, NULL, OPT_THROTTLE_SCOPE},
	{"guests", required_argument, NULL, OPT_GUESTS},
	{"seed-members", required_argument, NULL, OPT_SEED_MEMBERS},
	{"seed-guests", required_argument, NULL, OPT_SEED_GUESTS},
	{"member-pattern", required_argument, NULL, OPT_MEMBER_PATTERN},
	{"guest-pattern", required_argument, NULL, OPT_GUEST_PATTERN},
	{"directory", required_argument, NULL, OPT_DIRECTORY},
	{"group", required_argument, NULL, OPT_GROUP},
	{"guest-refusing-group", required_argument, NULL, OPT_GUEST_REFUSING_GROUP},
	{"refusing-mailbox", required_argument, NULL, OPT_REFUSING_MAILBOX},
	{"read-rate", required_argument, NULL, OPT_READ_RATE},
	{"read-period", required_argument, NULL, OPT_READ_PERIOD},
	{"mail-rate", required_argument, NULL, OPT_MAIL_RATE},
	{"mail-period", required_argument, NULL, OPT_MAIL_PERIOD},
	{"replication-delay-ms", required_argument, NULL, OPT_REPLICATION_DELAY},
	{"member-404-share", required_argument, NULL, OPT_MEMBER_404_SHARE},
	{"accept-after-ms", required_argument, NULL, OPT_ACCEPT_AFTER},
	{"accept-share", required_argument, NULL, OPT_ACCEPT_SHARE},
	{"members-record", required_argument, NULL, OPT_MEMBERS_RECORD},
	{"mail-record", required_argument, NULL, OPT_MAIL_RECORD},
	{"help", no_argument, NULL, OPT_HELP},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
	fputs("Usage: invited-sim [OPTION]...\n"
	      "Simulate Microsoft Graph /invitations, $batch and the Entra ID token endpoint.\n"
	      "\n"
	      "  --listen ADDR              loopback address to bind (default 127.0.0.1; ::1 allowed)\n"
	      "  --port N                   port (default 0: ephemeral)\n"
	      "  --port-file FILE           write the bound port + newline here once listening\n"
	      "  --record FILE              append one JSON line per accepted invitation\n"
	      "  --tenant NAME              only this tenant in the token URL (default: any)\n"
	      "  --client-id ID             expected client id (default: any non-empty)\n"
	      "  --client-secret SECRET     expected client secret (default: any non-empty)\n"
	      "  --client-secret-file FILE  read the expected secret from FILE\n"
	      "  --client-cert FILE         PEM certificate client assertions must be signed\n"
	      "                             for (PS256, x5t#S256; default: any assertion)\n"
	      "  --token-file FILE          append every issued token to FILE (for tests that\n"
	      "                             look for leaks)\n"
	      "  --token-ttl SECONDS        token lifetime (default 3599)\n"
	      "  --token-fail-for SECONDS   token endpoint answers 503 for this long after start\n"
	      "  --token-fail-count N       token endpoint answers 503 to the first N requests\n"
	      "  --rate N                   /invitations token bucket: N requests per period\n"
	      "  --period SECONDS           bucket period (default 1; Graph: --rate 150 --period 5)\n"
	      "  --latency-ms N             delay before answering /invitations and $batch\n"
	      "  --latency-jitter-ms J      add a uniform 0..J ms to the delay\n"
	      "  --fail-5xx P               percent of invitations answered 500/502/503/504\n"
	      "  --fail-429 P               percent answered 429 with Retry-After: 1\n"
	      "  --fail-reset P             percent of requests whose connection is reset\n"
	      "  --fail-hang P              percent of requests never answered\n"
	      "  --fail-after-accept P      percent of 5xx/reset/hang faults that strike after\n"
	      "                             the invitation was created and recorded (default 0)\n"
	      "  --reject ADDRESS           always answer 400 for ADDRESS (repeatable)\n"
	      "  --reject-code CODE         the error code of that answer (default BadRequest)\n"
	      "  --reject-message TEXT      its message (any bytes: tests of hostile output)\n"
	      "  --block-message TEXT       the message of the --block-after 403\n"
	      "  --seed N                   random seed (default: from the clock)\n"
	      "  --block-after N            after N accepted invitations answer 403 (anti-abuse)\n"
	      "  --no-batch-invitations     refuse /invitations items inside $batch (400)\n"
	      "  --threads N                HTTP worker threads (default 2)\n"
	      "  --max-connections N        connection limit (default 4096)\n"
	      "  --max-hangs N              connections held by --fail-hang at once (default 256);\n"
	      "                             beyond it a hang becomes a reset\n"
	      "  --verbose                  log every request\n"
	      "  --garble ADDRESS           answer 400 with invalid UTF-8 in the message and\n"
	      "                             request-id for ADDRESS (repeatable)\n"
	      "  --retry-after-text TEXT    the Retry-After value of --fail-429 answers\n"
	      "  --tls-cert FILE            serve HTTPS with this PEM certificate (chain);\n"
	      "                             needs --tls-key (default: plain HTTP)\n"
	      "  --tls-key FILE             the PEM private key of --tls-cert\n"
	      "  --roles LIST               the roles claim of the tokens, comma-separated\n"
	      "                             (default User.Invite.All; '' for none)\n"
	      "  --throttle-scope SCOPE     x-ms-throttle-scope on 429s: Tenant_Application,\n"
	      "                             Tenant or Application (default: none)\n"
	      "  --guests VALUE             authorizationPolicy allowInvitesFrom: allowed\n"
	      "                             (everyone, the default), none, ...\n"
	      "  --tenants-file FILE        more tenants: a JSON array, one object each\n"
	      "                             (the options above define the first tenant)\n",
	      f);
	fputs("Directory, groups and mail (the first tenant's; docs/simulator.md):\n"
	      "  --seed-members N           N members from --member-pattern (default\n"
	      "                             member{n}@contoso.example, n = 1..N)\n"
	      "  --seed-guests N            N pending guests from --guest-pattern (default\n"
	      "                             guest{n}@partner.example, numbered after the members)\n"
	      "  --member-pattern P, --guest-pattern P   addresses with {n} for the number\n"
	      "  --directory FILE           more users: [{\"mail\",\"userType\",\"externalUserState\"}]\n"
	      "  --group ID                 a group that exists (repeatable)\n"
	      "  --guest-refusing-group ID  a group that exists and refuses guests (repeatable)\n"
	      "  --refusing-mailbox ADDR    sendMail from ADDR answers 403 (repeatable)\n"
	      "  --read-rate N              user reads: N per --read-period seconds (default 1)\n"
	      "  --mail-rate N              sendMail: N per --mail-period seconds (default 1)\n"
	      "Directory, shared by all tenants:\n"
	      "  --replication-delay-ms N   a guest made by an invitation is unreadable this long\n"
	      "  --member-404-share F       fraction of first additions answered 404 (0..1)\n"
	      "  --accept-after-ms N        pending guests accept N ms after their invitation\n"
	      "  --accept-share F           the fraction of them that accept (default 1)\n"
	      "  --members-record FILE      append one JSON line per member added\n"
	      "  --mail-record FILE         append one JSON line per message sent\n"
	      "  --help, --version\n"
	      "\n"
	      "Endpoints: POST /{tenant}/oauth2/v2.0/token, POST /v1.0/invitations,\n"
	      "POST /v1.0/$batch, GET /v1.0/policies/authorizationPolicy, GET /sim/stats,\n"
	      "POST /sim/block?tenant=NAME, POST /sim/unblock?tenant=NAME,\n"
	      "GET /v1.0/users?$filter=..., GET /v1.0/users/{id}, POST /v1.0/users/{id}/sendMail,\n"
	      "POST /v1.0/groups/{id}/members/$ref, GET /sim/members, /sim/mail, /sim/users.\n",
	      f);
}

static int parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	char *end;
	if (s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end != '\0' || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_double(const char *s, double min, double max, double *ret)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !isfinite(v) || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* A text file of at most max bytes, trailing newlines dropped, no NUL. */
static int read_text_file(const char *path, size_t max, char **ret)
{
	struct buf b = BUF_INIT;
	char chunk[512];
	int r = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > max) {
			r = -EFBIG;
			goto out;
		}
		r = buf_append(&b, chunk, (size_t)n);
		if (r < 0)
			goto out;
	}
	while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = '\0';
	if (b.len == 0 || memchr(b.data, '\0', b.len)) {
		r = -EINVAL;
		goto out;
	}
	*ret = buf_steal(&b);
out:
	close(fd);
	buf_finish(&b);
	return r;
}

/* Add an address (lowercased) to a list of at most SIM_REJECT_MAX. */
static int add_address(char ***list, size_t *n, const char *address)
{
	if (*n >= SIM_REJECT_MAX)
		return -E2BIG;
	char **v = realloc(*list, (*n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	*list = v;
	char *d = strdup(address);
	if (!d)
		return -ENOMEM;
	for (char *p = d; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	v[(*n)++] = d;
	return 0;
}

/* 0 to run, 1 to exit successfully (--help), negative errno (logged). */
static int parse_args(int argc, char **argv, struct sim_config *cfg)
{
	uint64_t u;
	int r, c;

	cfg->listen = "127.0.0.1";
	cfg->token_ttl_s = 3599;
	cfg->period_s = 1.0;
	cfg->threads = 2;
	cfg->max_connections = 4096;
	cfg->max_hangs = 256;
	cfg->dir.read_period_s = 1.0;
	cfg->dir.mail_period_s = 1.0;
	cfg->accept_share = 100;

	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		r = 0;
		switch (c) {
		case OPT_LISTEN:
			cfg->listen = optarg;
			break;
		case OPT_PORT:
			r = parse_u64(optarg, 65535, &u);
			cfg->port = (unsigned)u;
			break;
		case OPT_PORT_FILE:
			cfg->port_file = optarg;
			break;
		case OPT_RECORD:
			cfg->record_path = optarg;
			break;
		case OPT_TENANT:
			cfg->tenant = optarg;
			r = optarg[0] && strlen(optarg) <= SIM_TENANT_MAX ? 0 : -EINVAL;
			break;
		case OPT_CLIENT_ID:
			cfg->client_id = optarg;
			r = optarg[0] ? 0 : -EINVAL;
			break;
		case OPT_CLIENT_SECRET:
			free(cfg->client_secret);
			cfg->client_secret = strdup(optarg);
			r = !cfg->client_secret ? -ENOMEM : optarg[0] ? 0 : -EINVAL;
			break;
		case OPT_CLIENT_SECRET_FILE:
			free(cfg->client_secret);
			cfg->client_secret = NULL;
			r = read_text_file(optarg, SECRET_FILE_MAX, &cfg->client_secret);
			if (r < 0) {
				log_error("Failed to read client secret file '%s': %s", optarg,
					  strerror(-r));
				return r;
			}
			break;
		case OPT_CLIENT_CERT:
			jwt_cert_free(cfg->client_cert);
			cfg->client_cert = NULL;
			r = jwt_cert_load(optarg, &cfg->client_cert);
			if (r < 0) {
				log_error("Failed to read the certificate '%s': %s", optarg,
					  r == -EINVAL ? "no PEM certificate" : strerror(-r));
				return r;
			}
			break;
		case OPT_TOKEN_FILE:
			cfg->token_file = optarg;
			break;
		case OPT_TOKEN_TTL:
			r = parse_u64(optarg, 86400u * 365u, &cfg->token_ttl_s);
			break;
		case OPT_TOKEN_FAIL_FOR:
			r = parse_u64(optarg, 86400u * 365u, &cfg->token_fail_for_s);
			break;
		case OPT_TOKEN_FAIL_COUNT:
			r = parse_u64(optarg, UINT32_MAX, &cfg->token_fail_count);
			break;
		case OPT_RATE:
			r = parse_double(optarg, 0, 1e9, &cfg->rate);
			break;
		case OPT_PERIOD:
			r = parse_double(optarg, 0.001, 86400, &cfg->period_s);
			break;
		case OPT_LATENCY:
			r = parse_u64(optarg, 3600u * 1000u, &cfg->latency_ms);
			break;
		case OPT_JITTER:
			r = parse_u64(optarg, 3600u * 1000u, &cfg->latency_jitter_ms);
			break;
		case OPT_FAIL_5XX:
			r = parse_double(optarg, 0, 100, &cfg->fail_5xx);
			break;
		case OPT_FAIL_429:
			r = parse_double(optarg, 0, 100, &cfg->fail_429);
			break;
		case OPT_FAIL_RESET:
			r = parse_double(optarg, 0, 100, &cfg->fail_reset);
			break;
		case OPT_FAIL_HANG:
			r = parse_double(optarg, 0, 100, &cfg->fail_hang);
			break;
		case OPT_FAIL_AFTER_ACCEPT:
			r = parse_double(optarg, 0, 100, &cfg->fail_after_accept);
			break;
		case OPT_REJECT:
			r = add_address(&cfg->reject, &cfg->n_reject, optarg);
			break;
		case OPT_REJECT_CODE:
			cfg->reject_code = optarg;
			break;
		case OPT_REJECT_MESSAGE:
			cfg->reject_message = optarg;
			break;
		case OPT_BLOCK_MESSAGE:
			cfg->block_message = optarg;
			break;
		case OPT_SEED:
			r = parse_u64(optarg, UINT64_MAX, &cfg->seed);
			cfg->seed_set = true;
			break;
		case OPT_BLOCK_AFTER:
			r = parse_u64(optarg, UINT64_MAX, &cfg->block_after);
			cfg->block_after_set = true;
			break;
		case OPT_NO_BATCH:
			cfg->no_batch_invitations = true;
			break;
		case OPT_THREADS:
			r = parse_u64(optarg, 64, &u);
			r = r < 0 || u == 0 ? -EINVAL : 0;
			cfg->threads = (unsigned)u;
			break;
		case OPT_MAX_CONNECTIONS:
			r = parse_u64(optarg, 65536, &u);
			r = r < 0 || u == 0 ? -EINVAL : 0;
			cfg->max_connections = (unsigned)u;
			break;
		case OPT_MAX_HANGS:
			r = parse_u64(optarg, 65536, &u);
			cfg->max_hangs = (unsigned)u;
			break;
		case OPT_VERBOSE:
			cfg->verbose = true;
			break;
		case OPT_GARBLE:
			r = add_address(&cfg->garble, &cfg->n_garble, optarg);
			break;
		case OPT_RETRY_AFTER_TEXT:
			/* a header value: no line breaks, at most 256 bytes */
			r = strlen(optarg) <= 256 && !strpbrk(optarg, "\r\n") ? 0 : -EINVAL;
			cfg->retry_after_text = optarg;
			break;
		case OPT_TLS_CERT:
		case OPT_TLS_KEY: {
			char **slot = c == OPT_TLS_CERT ? &cfg->tls_cert : &cfg->tls_key;
			free(*slot);
			*slot = NULL;
			r = read_text_file(optarg, PEM_FILE_MAX, slot);
			if (r < 0) {
				log_error("Failed to read --%s '%s': %s", options[c - OPT_LISTEN].name,
					  optarg, strerror(-r));
				return r;
			}
			if (!strstr(*slot, "-----BEGIN ")) {
				log_error("Failed to read --%s '%s': not PEM", options[c - OPT_LISTEN].name,
					  optarg);
				return -EINVAL;
			}
			break;
		}
		case OPT_TENANTS_FILE:
			cfg->tenants_file = optarg;
			break;
		case OPT_ROLES:
			for (size_t i = 0; i < cfg->n_roles; i++)
				free(cfg->roles[i]);
			free(cfg->roles);
			cfg->roles = NULL;
			cfg->n_roles = 0;
			cfg->roles_set = true;
			r = sim_parse_roles(optarg, &cfg->roles, &cfg->n_roles);
			break;
		case OPT_THROTTLE_SCOPE:
			r = sim_parse_throttle_scope(optarg, &cfg->throttle_scope);
			break;
		case OPT_GUESTS:
			r = sim_parse_guests(optarg, &cfg->allow_invites_from);
			break;
		case OPT_SEED_MEMBERS:
			r = parse_u64(optarg, 1000000, &cfg->dir.seed_members);
			break;
		case OPT_SEED_GUESTS:
			r = parse_u64(optarg, 1000000, &cfg->dir.seed_guests);
			break;
		case OPT_MEMBER_PATTERN:
		case OPT_GUEST_PATTERN:
		case OPT_DIRECTORY: {
			char **slot = c == OPT_MEMBER_PATTERN ? &cfg->dir.member_pattern
				      : c == OPT_GUEST_PATTERN ? &cfg->dir.guest_pattern
							       : &cfg->dir.directory_file;
			free(*slot);
			*slot = strdup(optarg);
			r = !*slot ? -ENOMEM : optarg[0] && strlen(optarg) <= 4096 ? 0 : -EINVAL;
			if (r == 0 && c != OPT_DIRECTORY && !strstr(optarg, "{n}"))
				r = -EINVAL;
			break;
		}
		case OPT_GROUP:
			r = add_address(&cfg->dir.groups, &cfg->dir.n_groups, optarg);
			break;
		case OPT_GUEST_REFUSING_GROUP:
			r = add_address(&cfg->dir.refusing_groups, &cfg->dir.n_refusing_groups, optarg);
			break;
		case OPT_REFUSING_MAILBOX:
			r = add_address(&cfg->dir.refusing_mailboxes, &cfg->dir.n_refusing_mailboxes,
					optarg);
			break;
		case OPT_READ_RATE:
			r = parse_double(optarg, 0, 1e9, &cfg->dir.read_rate);
			break;
		case OPT_READ_PERIOD:
			r = parse_double(optarg, 0.001, 86400, &cfg->dir.read_period_s);
			break;
		case OPT_MAIL_RATE:
			r = parse_double(optarg, 0, 1e9, &cfg->dir.mail_rate);
			break;
		case OPT_MAIL_PERIOD:
			r = parse_double(optarg, 0.001, 86400, &cfg->dir.mail_period_s);
			break;
		case OPT_REPLICATION_DELAY:
			r = parse_u64(optarg, 86400u * 1000u, &cfg->replication_delay_ms);
			break;
		case OPT_MEMBER_404_SHARE:
			r = parse_double(optarg, 0, 1, &cfg->member_404_share);
			cfg->member_404_share *= 100; /* kept as a percent, as the --fail-* */
			break;
		case OPT_ACCEPT_AFTER:
			r = parse_u64(optarg, 86400u * 1000u * 365u, &cfg->accept_after_ms);
			cfg->accept_after_set = true;
			break;
		case OPT_ACCEPT_SHARE:
			r = parse_double(optarg, 0, 1, &cfg->accept_share);
			cfg->accept_share *= 100;
			break;
		case OPT_MEMBERS_RECORD:
			cfg->members_record_path = optarg;
			break;
		case OPT_MAIL_RECORD:
			cfg->mail_record_path = optarg;
			break;
		case OPT_HELP:
			usage(stdout);
			return 1;
		case OPT_VERSION:
			puts("invited-sim " SIM_VERSION);
			return 1;
		default:
			usage(stderr);
			return -EINVAL;
		}
		if (r < 0) {
			log_error("Invalid value for --%s: '%s'", options[c - OPT_LISTEN].name,
				  optarg);
			return r;
		}
	}
	if (optind < argc) {
		log_error("Unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	if (!cfg->tls_cert != !cfg->tls_key) {
		log_error("--tls-cert and --tls-key go together");
		return -EINVAL;
	}
	return 0;
}

static int parse_listen(struct server *srv, const char *listen, unsigned port)
{
	memset(&srv->addr, 0, sizeof(srv->addr));
	if (strcmp(listen, "localhost") == 0)
		listen = "127.0.0.1";
	if (inet_pton(AF_INET, listen, &srv->addr.in4.sin_addr) == 1) {
		if ((ntohl(srv->addr.in4.sin_addr.s_addr) >> 24) != 127)
			return -EADDRNOTAVAIL;
		srv->addr.in4.sin_family = AF_INET;
		srv->addr.in4.sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, listen, &srv->addr.in6.sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&srv->addr.in6.sin6_addr))
			return -EADDRNOTAVAIL;
		srv->addr.in6.sin6_family = AF_INET6;
		srv->addr.in6.sin6_port = htons((uint16_t)port);
		srv->ipv6 = true;
		return 0;
	}
	return -EINVAL;
}

static int write_port_file(const char *path, unsigned port)
{
	struct buf tmp = BUF_INIT;
	char text[16];
	int r, fd = -1;
	int n = snprintf(text, sizeof(text), "%u\n", port);

	r = buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
	if (r < 0)
		goto out;
	fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (write(fd, text, (size_t)n) != n) {
		r = errno ? -errno : -EIO;
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp.data, path) < 0)
		r = -errno;
out:
	if (fd >= 0)
		close(fd);
	if (r < 0 && tmp.data)
		unlink(tmp.data);
	buf_finish(&tmp);
	return r;
}

/* ---- HTTP ---- */

static bool peer_gone(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return true;
	char c;
	ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0)
		return false;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return false;
	return true;
}

static enum route graph_route(const char *method, const char *path)
{
	bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;

	if (sim_dir_path(path + 5)) /* "/v1.0" + "/users...", "/groups/..." */
		return ROUTE_DIRECTORY;
	if (strcmp(path, "/v1.0/invitations") == 0)
		return post ? ROUTE_INVITE : ROUTE_BAD_METHOD;
	if (strcmp(path, "/v1.0/$batch") == 0)
		return post ? ROUTE_BATCH : ROUTE_BAD_METHOD;
	if (strcmp(path, "/v1.0/policies/authorizationPolicy") == 0)
		return get ? ROUTE_POLICY : ROUTE_BAD_METHOD;
	return ROUTE_NOT_FOUND;
}

/* Graph's URLs name no tenant; "/{tenant}/v1.0/..." (a graph_url with a
 * path) names one, and only that tenant's tokens are good there. */
static enum route route_of(const char *method, const char *url, char tenant[SIM_TENANT_MAX + 1],
			   bool *url_tenant)
{
	static const char token_suffix[] = "/oauth2/v2.0/token";
	bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;

	*url_tenant = false;
	if (strncmp(url, "/v1.0/", 6) == 0)
		return graph_route(method, url);
	if (strcmp(url, "/sim/stats") == 0)
		return strcmp(method, MHD_HTTP_METHOD_GET) == 0 ? ROUTE_STATS : ROUTE_BAD_METHOD;
	if (strcmp(url, "/sim/block") == 0)
		return post ? ROUTE_BLOCK : ROUTE_BAD_METHOD;
	if (strcmp(url, "/sim/unblock") == 0)
		return post ? ROUTE_UNBLOCK : ROUTE_BAD_METHOD;
	if (strcmp(url, "/sim/members") == 0 || strcmp(url, "/sim/mail") == 0 ||
	    strcmp(url, "/sim/users") == 0)
		return strcmp(method, MHD_HTTP_METHOD_GET) == 0 ? ROUTE_SIM_DIR : ROUTE_BAD_METHOD;
	if (url[0] == '/') {
		const char *slash = strchr(url + 1, '/');
		size_t n = slash ? (size_t)(slash - url - 1) : 0;
		if (n > 0 && n <= SIM_TENANT_MAX && strcmp(slash, token_suffix) == 0) {
			memcpy(tenant, url + 1, n);
			tenant[n] = '\0';
			return post ? ROUTE_TOKEN : ROUTE_BAD_METHOD;
		}
		if (n > 0 && n <= SIM_TENANT_MAX && strncmp(slash, "/v1.0/", 6) == 0) {
			enum route route = graph_route(method, slash);
			if (route != ROUTE_NOT_FOUND) {
				memcpy(tenant, url + 1, n);
				tenant[n] = '\0';
				*url_tenant = true;
			}
			return route;
		}
	}
	return ROUTE_NOT_FOUND;
}

static bool wants_body(enum route route)
{
	return route == ROUTE_TOKEN || route == ROUTE_INVITE || route == ROUTE_BATCH ||
	       route == ROUTE_DIRECTORY;
}

static const char *header(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

static struct req *req_create(struct server *srv, struct MHD_Connection *conn, const char *method,
			      const char *url)
{
	struct req *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->method = method;
	q->url = url;
	q->start_us = delay_now_us();
	q->route = route_of(method, url, q->tenant, &q->url_tenant);
	buf_init(&q->body);
	rng_uuid(q->reply.request_id);
	const char *crid = header(conn, "client-request-id");
	if (crid && crid[0] && strlen(crid) <= SIM_CLIENT_REQUEST_ID_MAX) {
		memcpy(q->client_request_id, crid, strlen(crid) + 1);
		q->reply.client_request_id = q->client_request_id;
	} else {
		q->reply.client_request_id = q->reply.request_id;
	}
	q->counted = q->route != ROUTE_STATS && strncmp(url, "/sim/", 5) != 0;
	if (q->counted) {
		atomic_fetch_add_explicit(&srv->sim.stats.requests, 1, memory_order_relaxed);
		sim_note_in_flight(&srv->sim, 1);
	}
	return q;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct server *srv = cls;
	struct req *q = *con_cls;
	(void)conn;
	(void)toe;
	if (!q)
		return;
	if (q->counted)
		sim_note_in_flight(&srv->sim, -1);
	if (q->holding_hang)
		atomic_fetch_sub(&srv->sim.stats.hangs_held, 1);
	if (srv->sim.cfg.verbose && q->state == REQ_HANGING)
		log_info("%s %s -> hang released after %llu ms", q->method, q->url,
			 (unsigned long long)((delay_now_us() - q->start_us) / 1000u));
	buf_finish(&q->body);
	reply_finish(&q->reply);
	free(q);
	*con_cls = NULL;
}

static void dispatch(struct server *srv, struct MHD_Connection *conn, struct req *q)
{
	struct reply *r = &q->reply;
	const char *body = q->body.data ? q->body.data : "";
	size_t len = q->body.len;
	char msg[320];

	if (q->too_large) {
		sim_error_reply(r, 413, "RequestEntityTooLarge",
				"The request body is larger than the 4 MiB the simulator accepts.");
		return;
	}
	const char *url_tenant = q->url_tenant ? q->tenant : NULL;
	switch (q->route) {
	case ROUTE_TOKEN:
		sim_token_request(&srv->sim, q->tenant, header(conn, MHD_HTTP_HEADER_CONTENT_TYPE),
				  body, len, r);
		break;
	case ROUTE_INVITE:
		sim_invite_request(&srv->sim, url_tenant, header(conn, MHD_HTTP_HEADER_AUTHORIZATION),
				   header(conn, MHD_HTTP_HEADER_CONTENT_TYPE), body, len, r);
		break;
	case ROUTE_BATCH:
		sim_batch_request(&srv->sim, url_tenant, header(conn, MHD_HTTP_HEADER_AUTHORIZATION),
				  header(conn, MHD_HTTP_HEADER_CONTENT_TYPE), body, len, r);
		break;
	case ROUTE_POLICY:
		sim_policy_request(&srv->sim, url_tenant,
				   header(conn, MHD_HTTP_HEADER_AUTHORIZATION), r);
		break;
	case ROUTE_STATS:
		sim_stats_request(&srv->sim, r);
		break;
	case ROUTE_DIRECTORY: {
		/* the path after "/v1.0" (and after a "/{tenant}" prefix) */
		const char *path = q->url_tenant ? q->url + 1 + strlen(q->tenant) : q->url;
		sim_dir_request(&srv->sim, url_tenant, header(conn, MHD_HTTP_HEADER_AUTHORIZATION),
				q->method, path + 5,
				MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "$filter"),
				MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "$select"),
				header(conn, MHD_HTTP_HEADER_CONTENT_TYPE), body, len, r);
		break;
	}
	case ROUTE_SIM_DIR:
		sim_dir_sim_request(&srv->sim, q->url + 5,
				    MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "tenant"),
				    r);
		break;
	case ROUTE_BLOCK:
	case ROUTE_UNBLOCK:
		sim_block_request(&srv->sim,
				  MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "tenant"),
				  q->route == ROUTE_BLOCK, r);
		break;
	case ROUTE_BAD_METHOD:
		snprintf(msg, sizeof(msg), "The HTTP method '%.16s' is not allowed for '%.256s'.",
			 q->method, q->url);
		sim_error_reply(r, 405, "MethodNotAllowed", msg);
		break;
	case ROUTE_NOT_FOUND:
		snprintf(msg, sizeof(msg), "Resource not found for the segment '%.256s'.",
			 q->url[0] == '/' ? q->url + 1 : q->url);
		sim_error_reply(r, 404, "NotFound", msg);
		break;
	}
}

static enum MHD_Result respond(struct server *srv, struct MHD_Connection *conn, struct req *q)
{
	struct reply *r = &q->reply;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	q->state = REQ_DONE;
	if (r->action == REPLY_RESET) {
		atomic_fetch_add(&srv->sim.stats.resets, 1);
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci) {
			/* close with RST rather than FIN */
			struct linger lg = {.l_onoff = 1, .l_linger = 0};
			setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		if (srv->sim.cfg.verbose)
			log_info("%s %s -> reset", q->method, q->url);
		return MHD_NO;
	}
	if (r->body) {
		resp = MHD_create_response_from_buffer(strlen(r->body), r->body,
						       MHD_RESPMEM_MUST_FREE);
		if (resp)
			r->body = NULL; /* owned by resp now */
	} else {
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/json; charset=utf-8");
	MHD_add_response_header(resp, "request-id", r->request_id);
	MHD_add_response_header(resp, "client-request-id", r->client_request_id);
	if (r->no_store) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store, no-cache");
		MHD_add_response_header(resp, MHD_HTTP_HEADER_PRAGMA, "no-cache");
	}
	if (r->throttle_scope[0]) {
		MHD_add_response_header(resp, "x-ms-throttle-scope", r->throttle_scope);
		MHD_add_response_header(resp, "x-ms-throttle-information",
					r->throttle_info ? r->throttle_info : "WriteLimitExceeded");
	}
	if (r->retry_after_text) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, r->retry_after_text);
	} else if (r->retry_after) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%u", r->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	if (q->counted)
		sim_count_status(&srv->sim, r->status);
	ret = MHD_queue_response(conn, r->status, resp);
	MHD_destroy_response(resp);
	if (srv->sim.cfg.verbose)
		log_info("%s %s -> %u (%llu ms)", q->method, q->url, r->status,
			 (unsigned long long)((delay_now_us() - q->start_us) / 1000u));
	return ret;
}

static uint64_t latency_ms(struct sim_config *cfg)
{
	if (!cfg->latency_ms && !cfg->latency_jitter_ms)
		return 0;
	return cfg->latency_ms + rng_below(cfg->latency_jitter_ms + 1);
}

static enum MHD_Result answer(struct server *srv, struct MHD_Connection *conn, struct req *q)
{
	struct reply *r = &q->reply;
	struct sim_stats *st = &srv->sim.stats;

	if (r->action == REPLY_HANG) {
		if (atomic_fetch_add(&st->hangs_held, 1) >= srv->sim.cfg.max_hangs) {
			atomic_fetch_sub(&st->hangs_held, 1);
			r->action = REPLY_RESET;
			return respond(srv, conn, q);
		}
		q->holding_hang = true;
		atomic_fetch_add(&st->hangs, 1);
		q->state = REQ_HANGING;
		if (srv->sim.cfg.verbose)
			log_info("%s %s -> hang", q->method, q->url);
		if (delay_suspend_until(&srv->delay, conn, delay_now_us() + HANG_POLL_MS * 1000u) < 0)
			return MHD_NO;
		return MHD_YES;
	}
	uint64_t ms = r->delay ? latency_ms(&srv->sim.cfg) : 0;
	if (ms > 0) {
		q->state = REQ_DELAYED;
		q->due_us = q->start_us + ms * 1000u;
		if (delay_suspend_until(&srv->delay, conn, q->due_us) == 0)
			return MHD_YES;
	}
	return respond(srv, conn, q);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct server *srv = cls;
	struct req *q = *con_cls;

	(void)version;
	if (!q) {
		q = req_create(srv, conn, method, url);
		if (!q)
			return MHD_NO;
		*con_cls = q;
		const char *cl = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
		uint64_t n;
		if (cl && (parse_u64(cl, UINT64_MAX, &n) < 0 || n > SIM_BODY_MAX)) {
			/* refuse before reading (and before any 100 Continue) */
			q->too_large = true;
			dispatch(srv, conn, q);
			return respond(srv, conn, q);
		}
		return MHD_YES;
	}
	switch (q->state) {
	case REQ_READING:
		if (*upload_data_size) {
			if (!q->too_large && wants_body(q->route)) {
				if (q->body.len + *upload_data_size > SIM_BODY_MAX) {
					q->too_large = true;
					buf_finish(&q->body);
				} else if (buf_append(&q->body, upload_data, *upload_data_size) < 0) {
					return MHD_NO;
				}
			}
			*upload_data_size = 0;
			return MHD_YES;
		}
		dispatch(srv, conn, q);
		return answer(srv, conn, q);
	case REQ_DELAYED:
		delay_note_late(&srv->delay, (int64_t)(delay_now_us() - q->due_us));
		return respond(srv, conn, q);
	case REQ_HANGING:
		if (peer_gone(conn))
			return MHD_NO;
		if (delay_suspend_until(&srv->delay, conn, delay_now_us() + HANG_POLL_MS * 1000u) < 0)
			return MHD_NO;
		return MHD_YES;
	case REQ_DONE:
		*upload_data_size = 0;
		return MHD_YES;
	}
	return MHD_NO;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	/* our own deliberate resets and hang releases (MHD_NO) produce this */
	if (strstr(line, "Application reported internal error"))
		log_debug("libmicrohttpd: %s", line);
	else
		log_warning("libmicrohttpd: %s", line);
}

/* Every TCP connection accepted counts in /sim/stats "connections" (tests
 * use it to see how many connections a client opened). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct server *srv = cls;
	(void)conn;
	(void)socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		atomic_fetch_add(&srv->sim.stats.connections, 1);
}

static void raise_nofile(unsigned want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rlim_t need = (rlim_t)want + 64;
	if (rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static uint64_t default_seed(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

int main(int argc, char **argv)
{
	struct server srv;
	sigset_t set;
	int r, sig;

	memset(&srv, 0, sizeof(srv));
	log_init("invited-sim", LOG_LEVEL_INFO);
	r = parse_args(argc, argv, &srv.sim.cfg);
	if (r != 0)
		goto out;
	struct sim_config *cfg = &srv.sim.cfg;
	if (!cfg->seed_set)
		cfg->seed = default_seed();
	r = parse_listen(&srv, cfg->listen, cfg->port);
	if (r < 0) {
		log_error("Failed to use --listen '%s': %s", cfg->listen,
			  r == -EADDRNOTAVAIL ? "only loopback addresses are allowed"
					      : "not an IPv4 or IPv6 address");
		goto out;
	}
	r = sim_init(&srv.sim);
	if (r < 0)
		goto out;
	raise_nofile(cfg->max_connections);

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread started below inherits it */
	signal(SIGPIPE, SIG_IGN);

	r = delay_init(&srv.delay);
	if (r < 0) {
		log_error("Failed to start the timer thread: %s", strerror(-r));
		goto out;
	}
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
	if (srv.ipv6)
		flags |= MHD_USE_IPv6;
	if (cfg->tls_cert) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			r = -EOPNOTSUPP;
			log_error("Failed to serve HTTPS: this libmicrohttpd is built without TLS");
			goto out;
		}
		flags |= MHD_USE_TLS;
	}
	/* MHD stops at the first MHD_OPTION_END: without TLS the key and
	 * certificate options are left out that way */
	srv.mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &srv,
				   MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				   MHD_OPTION_SOCK_ADDR, &srv.addr.sa,
				   MHD_OPTION_THREAD_POOL_SIZE, cfg->threads,
				   MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
				   MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_IDLE_S,
				   MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
				   MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
				   MHD_OPTION_NOTIFY_COMPLETED, on_completed, &srv,
				   MHD_OPTION_NOTIFY_CONNECTION, on_connection, &srv,
				   cfg->tls_cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, cfg->tls_key,
				   MHD_OPTION_HTTPS_MEM_CERT, cfg->tls_cert, MHD_OPTION_END);
	if (!srv.mhd) {
		r = -EADDRINUSE;
		log_error("Failed to listen on %s port %u", cfg->listen, cfg->port);
		goto out;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv.mhd, MHD_DAEMON_INFO_BIND_PORT);
	unsigned port = info ? info->port : cfg->port;
	if (cfg->port_file) {
		r = write_port_file(cfg->port_file, port);
		if (r < 0) {
			log_error("Failed to write port file '%s': %s", cfg->port_file,
				  strerror(-r));
			goto out;
		}
	}
	log_info(srv.ipv6 ? "listening on [%s]:%u%s" : "listening on %s:%u%s", cfg->listen, port,
		 cfg->tls_cert ? " (HTTPS)" : "");

	for (;;) {
		r = sigwait(&set, &sig);
		if (r == 0)
			break;
		if (r != EINTR) {
			r = -r;
			goto out;
		}
	}
	log_info("Received signal %d, shutting down", sig);
	r = 0;
out:
	delay_stop(&srv.delay);
	if (srv.mhd)
		MHD_stop_daemon(srv.mhd);
	delay_finish(&srv.delay);
	sim_finish(&srv.sim);
	return r < 0 ? 1 : 0;
}
