/* SPDX-License-Identifier: MIT */
/* invitectl: the command-line client of invited (SPEC §3). Wiring only. */
#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "build-config.h"

static int cmd_help(struct cli *cli, int argc, char **argv);

#define JOB_HELP(verb, what)                                                                       \
	"Usage: invitectl " verb " [--json] JOB\n\n" what "\n\nOptions:\n"                         \
	"      --json  print the job as JSON on stdout\n"                                          \
	"  -h, --help  show this help\n"

static const struct command commands[] = {
    {"template", cmd_template, "print the CSV template (the Entra portal's)",
     "Usage: invitectl template\n\n"
     "Print the Entra portal's bulk-invite template: the version row, the header\n"
     "and one Example: row. Replace the example with your guests and submit it.\n"},
    {"validate", cmd_validate, "check a guest list; nothing is stored",
     "Usage: invitectl validate [OPTIONS] FILE|-\n\n"
     "Check FILE (- for standard input) by the rules of submit, without storing\n"
     "anything. Prints \"FILE: N rows, valid\", or every problem as FILE:LINE: message\n"
     "(exit status 65). Accepts the job options of submit, which are checked too\n"
     "(--group ids as GUIDs).\n\n"
     "Options:\n"
     "      --json  print {\"valid\":bool,\"rows\":int,\"errors\":[...]} on stdout\n"
     "  -h, --help  show this help\n"},
    {"submit", cmd_submit, "create a job from a guest list; prints its id",
     "Usage: invitectl submit [OPTIONS] FILE|-\n\n"
     "Validate FILE (- for standard input) and store it as a job; prints the job id.\n"
     "A file with any problem is refused whole (exit status 65).\n\n"
     "Options:\n"
     "      --name TEXT          a name for the job\n"
     "      --redirect-url URL   where invitees land after redeeming\n"
     "                           (default https://myapplications.microsoft.com)\n"
     "      --send-email         send the invitation email (the default)\n"
     "      --no-send-email      do not send it; share the redeem URL yourself\n"
     "      --message TEXT       customized message body of the email\n"
     "      --language CODE      language of the email, e.g. en-US\n"
     "      --cc EMAIL           copy the email to this address\n"
     "      --tenant NAME        the tenant to invite into (invitectl tenants);\n"
     "                           needed when you may use more than one\n"
     "      --skip-existing      look each address up first: an existing member or\n"
     "                           guest is skipped, not invited (needs [queue]\n"
     "                           lookup = yes)\n"
     "      --group ID           after the invitation, add the guest to the group\n"
     "                           with object id ID (a GUID); repeatable, up to 64\n"
     "      --wait               then wait for the job to end, as `invitectl wait`\n"
     "      --watch              then watch it, as `invitectl watch`\n"
     "      --json               print the job (with --wait/--watch: once it ended)\n"
     "  -h, --help               show this help\n\n"
     "A row's own redirect URL, send flag or message wins over these options;\n"
     "a row's groups column adds to the --group ones.\n"},
    {"jobs", cmd_jobs, "list jobs",
     "Usage: invitectl jobs [--all] [--tenant NAME] [-q] [--no-legend] [--json]\n\n"
     "List jobs, newest first: those not finished and those finished in the last\n"
     "24 hours.\n\n"
     "Options:\n"
     "      --all          every job\n"
     "      --tenant NAME  only the jobs of tenant NAME\n"
     "  -q, --quiet        print only the job ids, one per line\n"
     "      --no-legend    no header line\n"
     "      --json         print the array of jobs on stdout\n"
     "  -h, --help         show this help\n"},
    {"show", cmd_show, "show a job and its rows",
     "Usage: invitectl show [--state STATE] [-q] [--no-legend] [--no-pager] [--json] JOB\n\n"
     "Show a job's summary and one line per row: LINE, EMAIL, STATE, ATTEMPTS and\n"
     "RESULT (the invited user's id, or why the row failed in plain words, with\n"
     "Graph's error code and HTTP status in parentheses; for a skipped row the\n"
     "existing user; then [group failed: ID: reason] or [groups pending] when\n"
     "its group additions are not all done). On a terminal the\n"
     "output goes through a pager: $INVITED_PAGER, else $PAGER, else less -FRSXK.\n\n"
     "Options:\n"
     "      --state STATE  only rows in STATE: pending, in_flight, succeeded,\n"
     "                     failed, cancelled or skipped; accepted (the guest\n"
     "                     accepted), not-accepted (not yet), group-failed\n"
     "                     (a group addition failed)\n"
     "  -q, --quiet        print only the rows' line numbers, one per line\n"
     "      --no-legend    no summary and no header line: the rows only\n"
     "      --no-pager     never page the output\n"
     "      --json         print {\"job\":{...},\"rows\":[...]} on stdout\n"
     "  -h, --help         show this help\n"},
    {"results", cmd_results, "write a job's results as CSV",
     "Usage: invitectl results [-o FILE] [--bom] [--raw] JOB\n\n"
     "Write the job's results as CSV (RFC 4180, CRLF line ends): the input\n"
     "columns, then status, http_status, error_code, error_message,\n"
     "invited_user_id, invite_redeem_url, attempts, finished_at, existing_type,\n"
     "groups_state, group_errors, mail_state, mail_sent_at, accepted_at, resends.\n"
     "Safe to open in a spreadsheet: a cell starting with = + - @ TAB or CR\n"
     "gets a leading ' (so it is text, not a formula) and control characters\n"
     "are shown escaped (\\e, \\r, \\u009b...), to a terminal, a pipe or a file.\n\n"
     "Options:\n"
     "  -o, --output FILE  write FILE (mode 0666 less the umask, replaced\n"
     "                     atomically), not stdout; exit status 73 when it\n"
     "                     cannot be created\n"
     "      --bom          start with a UTF-8 byte order mark, so Excel reads\n"
     "                     names in Japanese, accents and emoji correctly\n"
     "      --raw          every cell exactly as stored: no ' and no escaping\n"
     "  -h, --help         show this help\n"},
    {"watch", cmd_watch, "follow a job's progress until it ends",
     JOB_HELP("watch", "Follow the job until it ends, on stderr. On a terminal: one line redrawn\n"
                       "in place with a bar, done/total, succeeded, failed, rate and ETA.\n"
                       "Otherwise: one line per change, at most one a second. Ends with a\n"
                       "summary line; exit status as for wait.")},
    {"wait", cmd_wait, "block until a job ends",
     JOB_HELP("wait", "Block until the job is completed, cancelled or blocked. Exit status:\n"
                      "0 every row succeeded, 1 some rows failed or were cancelled,\n"
                      "75 the job is blocked.")},
    {"cancel", cmd_cancel, "cancel a job's rows not yet sent",
     JOB_HELP("cancel", "Mark every row of the job not yet sent cancelled; rows in flight\n"
                        "finish. Says how many rows it cancelled. Idempotent.")},
    {"pause", cmd_pause, "stop sending a job's invitations for now",
     JOB_HELP("pause", "Stop sending the job's invitations until resume. Idempotent.")},
    {"resume", cmd_resume, "resume a paused or blocked job, or a tenant",
     "Usage: invitectl resume [--json] JOB\n"
     "       invitectl resume [--json] --tenant NAME\n\n"
     "Resume a paused job; for a blocked job, lift the tenant's block.\n"
     "With --tenant (and no JOB): lift tenant NAME's block or Retry-After pause\n"
     "(admins of that tenant only). Idempotent.\n\n"
     "Options:\n"
     "      --tenant NAME  the tenant to resume\n"
     "      --json         print the job (or the tenant) on stdout\n"
     "  -h, --help         show this help\n"},
    {"retry", cmd_retry, "re-queue a job's failed rows",
     "Usage: invitectl retry [--error-code CODE | --groups] [--json] JOB\n\n"
     "Send the job's failed rows again; says how many it re-queued. Idempotent:\n"
     "once re-queued, rows are no longer failed.\n\n"
     "Options:\n"
     "      --error-code CODE  only the rows that failed with Graph's error code\n"
     "                         CODE (as in show's RESULT or results' error_code)\n"
     "      --groups           only the job's failed group additions, not rows\n"
     "      --json             print the job, with \"changed\", on stdout\n"
     "  -h, --help             show this help\n"},
    {"resend", cmd_resend, "invite again the guests who have not accepted",
     "Usage: invitectl resend [--older-than DURATION] [--dry-run] [--json] JOB\n\n"
     "Invite again the job's guests who have not accepted yet (rows succeeded,\n"
     "not accepted, resent fewer than [queue] max_resends times); says how many.\n"
     "Recorded in the audit trail.\n\n"
     "Options:\n"
     "      --older-than DURATION  only those invited longer ago than DURATION:\n"
     "                             seconds, or a number with s, m, h or d\n"
     "                             (90, 30m, 1.5h, 7d)\n"
     "      --dry-run              change nothing: say how many would be invited\n"
     "                             again and list the first (LINE, EMAIL, RESENDS)\n"
     "      --json                 print {\"job\",\"changed\",\"rows\"} on stdout\n"
     "  -h, --help                 show this help\n"},
    {"track", cmd_track, "check now whether a job's guests accepted",
     "Usage: invitectl track [--json] JOB\n\n"
     "Bring the acceptance check of the job's guests who have not accepted\n"
     "forward to now, instead of the next track_interval; says how many.\n"
     "The ACCEPTED column of jobs and show --state accepted follow.\n\n"
     "Options:\n"
     "      --json  print {\"job\",\"changed\"} on stdout\n"
     "  -h, --help  show this help\n"},
    {"stats", cmd_stats, "daemon counters and gauges",
     "Usage: invitectl stats [--prometheus | --json]\n\n"
     "Print the daemon's counters and gauges, one \"name value\" per line: the\n"
     "sums over the tenants you may see, then each tenant's.\n\n"
     "Options:\n"
     "      --prometheus  Prometheus text exposition format (invited_NAME, with\n"
     "                    HELP and TYPE lines), one series per tenant,\n"
     "                    labelled tenant=\"NAME\", e.g. for node_exporter's\n"
     "                    textfile collector\n"
     "      --json        print the stats object on stdout\n"
     "  -h, --help        show this help\n"},
    {"status", cmd_status, "daemon health",
     "Usage: invitectl status [--json]\n\n"
     "Print the daemon's version, uptime, tenant, token state, rate and queue,\n"
     "then one line per tenant: name, token, rate, state, pending (with several\n"
     "tenants, what they add up to instead of the first one's token and rate).\n\n"
     "Options:\n"
     "      --json  print the status object on stdout\n"
     "  -h, --help  show this help\n"},
    {"audit", cmd_audit, "who changed what: the audit trail",
     "Usage: invitectl audit [--job JOB] [--limit N] [--json]\n\n"
     "List the audit trail, newest first: every submit, cancel, pause, resume,\n"
     "retry and reload, with its time, uid, user name, job and, for a submit,\n"
     "the SHA-256 of the uploaded file. The trail is append-only.\n\n"
     "Options:\n"
     "      --job JOB  only this job's entries\n"
     "      --limit N  at most N entries (default 100)\n"
     "      --json     print the array of entries on stdout\n"
     "  -h, --help     show this help\n"},
    {"reload", cmd_reload, "make the daemon re-read its configuration",
     "Usage: invitectl reload [--json]\n\n"
     "Ask invited to re-read its configuration, as systemctl reload invited does:\n"
     "[queue] and the upload limits apply at once; the keys that need a restart\n"
     "are named. A bad configuration changes nothing (exit status 78).\n"},
    {"tenants", cmd_tenants, "the tenants the daemon serves, and their state",
     "Usage: invitectl tenants [-q] [--no-legend] [--json]\n\n"
     "List the tenants you may use: NAME, TENANT (directory id or domain), CLOUD,\n"
     "TOKEN (ok, or the token endpoint's error), RATE (now/configured, per\n"
     "second), STATE (ok, paused until T, blocked: reason), ACTIVE jobs and\n"
     "PENDING rows.\n\n"
     "Options:\n"
     "  -q, --quiet      print only the names, one per line\n"
     "      --no-legend  no header line\n"
     "      --json       print the array of tenants on stdout\n"
     "  -h, --help       show this help\n"},
    {"check", cmd_check, "what a tenant allows: roles, consent, guests",
     "Usage: invitectl check [--tenant NAME] [--json]\n\n"
     "Get a token for the tenant and say, in plain words, what it allows: the\n"
     "application roles the token carries against those the configuration needs,\n"
     "what is missing and how to grant it (the app registration's API permissions,\n"
     "the admin-consent URL), and whether guests may be invited.\n"
     "Exit status: 0 all is there; 1 something is missing; 78 no token can be had\n"
     "(the credential or the consent).\n\n"
     "Options:\n"
     "      --tenant NAME  the tenant to check; needed when you may use several\n"
     "      --json         print the check object on stdout\n"
     "  -h, --help         show this help\n"},
    {"help", cmd_help, "show the help of invitectl or of a command",
     "Usage: invitectl help [COMMAND]\n"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_usage(FILE *out)
{
	fputs("Usage: invitectl [OPTIONS] COMMAND [ARGS...]\n\n"
	      "Bulk-invite guest users into Microsoft Entra ID through the invited daemon.\n\n"
	      "Commands:\n",
	      out);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fputs("\nOptions:\n"
	      "  -s, --socket PATH  the daemon's socket (else $INVITED_SOCKET, else\n"
	      "                     " INVITED_DEFAULT_SOCKET ")\n"
	      "      --json         JSON on stdout\n"
	      "                     (both also accepted after the command)\n"
	      "  -h, --help         show this help\n"
	      "      --version      show the version\n\n"
	      "Run 'invitectl COMMAND --help' for a command's options.\n\n"
	      "Exit status: 0 done; 1 the job ended with failed or cancelled rows\n"
	      "(check: something is missing); 64 usage; 65 invalid input file;\n"
	      "66 cannot read input; 69 daemon unreachable; 73 cannot create output\n"
	      "file (results -o); 75 temporary failure; 77 permission denied;\n"
	      "78 bad configuration (reload; check: no token).\n\n"
	      "See invitectl(1).\n",
	      out);
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int cmd_help(struct cli *cli, int argc, char **argv)
{
	int r = cli_parse_simple(cli, argc, argv, NULL, NULL, 1);
	if (r != CLI_CONTINUE)
		return r;
	if (optind == argc) {
		print_usage(stdout);
		return EXIT_DONE;
	}
	const struct command *cmd = find_command(argv[optind]);
	if (!cmd)
		return cli_usage(cli, "unknown command '%s'", argv[optind]);
	fputs(cmd->help, stdout);
	return EXIT_DONE;
}

/* Options before the command. CLI_CONTINUE with optind at the command. */
static int parse_global(struct cli *cli, int argc, char **argv)
{
	enum { OPT_VERSION = CLI_OPT_FIRST_LOCAL };
	static const struct option opts[] = {
	    {"version", no_argument, NULL, OPT_VERSION},
	    CLI_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "+hs:", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			cli->socket_path = optarg;
			break;
		case CLI_OPT_JSON:
			cli->json = true;
			break;
		case 'h':
			print_usage(stdout);
			return EXIT_DONE;
		case OPT_VERSION:
			puts("invitectl " INVITED_VERSION);
			return EXIT_DONE;
		default:
			fputs("Try 'invitectl --help'.\n", stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage(cli, "missing command");
	return CLI_CONTINUE;
}

static void configure(struct cli *cli)
{
	const char *env = getenv("INVITED_SOCKET");
	const char *term = getenv("TERM");
	if (!cli->socket_path)
		cli->socket_path = env && env[0] ? env : INVITED_DEFAULT_SOCKET;
	cli->color =
	    isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && !(term && strcmp(term, "dumb") == 0);
}

/* Buffered output that could not be written is a failure too. */
static int check_stdout(int r)
{
	int err = 0;
	if (fflush(stdout) != 0)
		err = errno;
	else if (ferror(stdout))
		err = EIO;
	if (err == 0)
		return r;
	cli_error("cannot write to standard output: %s", strerror(err));
	return r == EXIT_DONE ? EXIT_TEMPFAIL : r;
}

int main(int argc, char **argv)
{
	struct cli cli;
	struct buf argv0 = BUF_INIT;
	setlocale(LC_ALL, "");
	setlocale(LC_NUMERIC, "C"); /* numbers we print are read by programs */
	/* Everything invited sends is UTF-8: under the C/POSIX locale measure
	 * its width as UTF-8 anyway, or Japanese names would misalign tables. */
	if (strcmp(nl_langinfo(CODESET), "ANSI_X3.4-1968") == 0)
		setlocale(LC_CTYPE, "C.UTF-8");
	cli_init(&cli);

	int r = parse_global(&cli, argc, argv);
	if (r != CLI_CONTINUE)
		goto out;
	cli.cmd = find_command(argv[optind]);
	if (!cli.cmd) {
		r = cli_usage(&cli, "unknown command '%s'", argv[optind]);
		goto out;
	}
	configure(&cli);
	/* getopt's own messages then read "invitectl show: ..." */
	if (buf_printf(&argv0, "invitectl %s", cli.cmd->name) < 0) {
		cli_error("out of memory");
		r = EXIT_TEMPFAIL;
		goto out;
	}
	int first = optind;
	argv[first] = argv0.data;
	optind = 0; /* glibc: start the next getopt from scratch */
	r = cli.cmd->fn(&cli, argc - first, argv + first);
out:
	r = check_stdout(r);
	cli_finish(&cli);
	buf_finish(&argv0);
	return r;
}
