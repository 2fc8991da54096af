#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The bash completion file: commands, per-command options, row states, job
ids asked from the running daemon (`invitectl jobs --all -q`) and tenant names
(`invitectl tenants -q`: the real daemon's, and a fake daemon's several)
through the socket given on the command line. Skips (77) without
bash-completion."""
import os
import shlex
import subprocess
import sys

from fakectl import FakeDaemon
from harness import INVITECTL, Env, portal_file, run

BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
COMPLETION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "client",
                          "invitectl.bash")


def complete(line, path_dir):
    """What bash offers for the last word of line (a command line being typed)."""
    script = """
source %s
source %s
COMP_LINE=%s
COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_invitectl invitectl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%%s\\n' "${COMPREPLY[@]}"
""" % (shlex.quote(BASH_COMPLETION), shlex.quote(COMPLETION), shlex.quote(line))
    env = dict(os.environ, PATH=path_dir + os.pathsep + os.environ.get("PATH", ""))
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                       env=env, timeout=30)
    return sorted(w for w in p.stdout.decode().split("\n") if w), p.stderr.decode()


def main(tap):
    if not os.path.exists(BASH_COMPLETION):
        print("1..0 # SKIP bash-completion is not installed")
        sys.exit(77)
    bindir = os.path.dirname(os.path.abspath(INVITECTL))
    got, err = complete("invitectl s", bindir)
    tap.eq(got, ["show", "stats", "status", "submit"], "commands")
    got, _ = complete("invitectl --js", bindir)
    tap.eq(got, ["--json"], "global options")
    got, _ = complete("invitectl retry --e", bindir)
    tap.eq(got, ["--error-code"], "retry's --error-code")
    got, _ = complete("invitectl results --b", bindir)
    tap.eq(got, ["--bom"], "results' --bom")
    got, _ = complete("invitectl jobs -", bindir)
    tap.ok({"--all", "-q", "--no-legend", "--json"} <= set(got), "jobs' options", got)
    got, _ = complete("invitectl show --state f", bindir)
    tap.eq(got, ["failed"], "row states after --state")
    with Env() as env:
        ids = []
        for i in range(3):
            p = env.ctl("submit", env.write("g%d.csv" % i, portal_file(
                [["c%d@partner.example" % i, "", "false", ""]])))
            ids.append(p.stdout.decode().strip())
        got, err = complete("invitectl -s %s show " % env.sock, bindir)
        tap.ok(got == sorted(ids), "job ids from the daemon after show",
               "got %r, want %r\n%s" % (got, sorted(ids), err))
        got, _ = complete("invitectl --socket %s cancel 1" % env.sock, bindir)
        tap.eq(got, [i for i in sorted(ids) if i.startswith("1")], "job ids by prefix")
        got, err = complete("invitectl -s %s submit --tenant " % env.sock, bindir)
        tap.eq(got, ["default"], "the real daemon's tenant after --tenant (a wave-1 "
               "configuration: 'default')")
    got, err = complete("invitectl -s /nonexistent/sock wait ", bindir)
    tap.ok(got == [] and err == "", "no daemon, no ids, no error", (got, err))

    got, _ = complete("invitectl t", bindir)
    tap.eq(got, ["template", "tenants", "track"], "the tenants command")
    got, _ = complete("invitectl ch", bindir)
    tap.eq(got, ["check"], "the check command")
    for cmd in ("submit", "validate", "jobs", "check", "resume"):
        got, _ = complete("invitectl %s --ten" % cmd, bindir)
        tap.eq(got, ["--tenant"], "%s's --tenant" % cmd)
    got, _ = complete("invitectl tenants -", bindir)
    tap.ok({"-q", "--quiet", "--no-legend", "--json"} <= set(got), "tenants' options", got)
    tenants = [{"name": n, "tenant": n + ".example", "cloud": "global", "token": "ok",
                "rate": 5, "configured_rate": 5, "state": "ok", "reason": None,
                "active_jobs": 0, "pending": 0, "paused_until": None}
               for n in ("contoso", "fabrikam", "fourth-coffee")]
    tenants.append(dict(tenants[0], name="$(touch /tmp/pwned-by-completion)"))
    with FakeDaemon({"tenants": {"ok": True, "tenants": tenants}}) as fake:
        got, err = complete("invitectl -s %s submit --tenant " % fake.sock, bindir)
        tap.eq(got, ["contoso", "fabrikam", "fourth-coffee"],
               "tenant names from the daemon after --tenant (what is not a name is not "
               "offered)")
        got, _ = complete("invitectl --socket %s check --tenant f" % fake.sock, bindir)
        tap.eq(got, ["fabrikam", "fourth-coffee"], "tenant names by prefix")
        got, _ = complete("invitectl -s %s jobs --all --tenant c" % fake.sock, bindir)
        tap.eq(got, ["contoso"], "jobs --tenant")
        tap.eq(fake.last("tenants"), {"op": "tenants"}, "asked with the tenants request")
    got, err = complete("invitectl -s /nonexistent/sock resume --tenant ", bindir)
    tap.ok(got == [] and err == "", "no daemon, no tenants, no error", (got, err))


if __name__ == "__main__":
    run(main)
