#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Who may use the socket, with real users made for the test: a member of
allow_group (through a supplementary group) can submit; a user outside it
gets exit 77 from every invitectl command that talks to the daemon (validate
needs none and succeeds), both
when the socket's mode stops it and when only SO_PEERCRED does, and the
daemon logs one line naming the uid. Needs root (CI runs as root); skips
elsewhere. The users and the group are removed afterwards."""
import os
import pwd
import secrets
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import Env, portal_file, run, skip_all  # noqa: E402

COMMANDS = [["status"], ["stats"], ["jobs"], ["show", "1"], ["results", "1"], ["watch", "1"],
            ["wait", "1"], ["cancel", "1"], ["pause", "1"], ["resume", "1"], ["retry", "1"],
            ["submit", "FILE"], ["validate", "FILE"], ["audit"], ["reload"]]


def sh(*cmd):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)


def main(tap):
    if os.geteuid() != 0 or not all(shutil.which(c) for c in
                                     ("useradd", "groupadd", "userdel", "groupdel", "setpriv")):
        skip_all("needs root, useradd/groupadd and setpriv to make real users")
    tag = secrets.token_hex(3)
    group, member, outsider = "invtg" + tag, "invtm" + tag, "invto" + tag
    made_users, made_group, skip = [], False, None
    try:
        p = sh("groupadd", group)
        if p.returncode != 0:
            skip = "cannot create a group: " + p.stderr.strip()
            return
        made_group = True
        for name, extra in ((member, ["-G", group]), (outsider, [])):
            p = sh("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", *extra, name)
            if p.returncode != 0:
                skip = "cannot create a user: " + p.stderr.strip()
                return
            made_users.append(name)
        member_uid = pwd.getpwnam(member).pw_uid
        outsider_uid = pwd.getpwnam(outsider).pw_uid
        groups_of = {n: sh("id", "-Gn", n).stdout.split() for n in (member, outsider)}
        tap.ok(group in groups_of[member] and group not in groups_of[outsider] and
               sh("id", "-gn", member).stdout.strip() != group,
               "users %s (uid %d, %s only as a supplementary group) and %s (uid %d) made" %
               (member, member_uid, group, outsider, outsider_uid), groups_of)

        with Env(daemon={"allow_group": group}) as env:
            os.chmod(env.dir, 0o755)  # others may reach the socket's directory
            csv = env.write("guests.csv", portal_file(
                [["peer%d@partner.example" % i, "", "false", ""] for i in range(3)]))
            os.chmod(csv, 0o644)
            st = os.stat(env.sock)
            tap.ok(oct(st.st_mode & 0o777) == "0o660", "the socket is 0660")

            p = env.ctl("submit", csv, "--wait", user=member)
            tap.eq(p.returncode, 0, "member (supplementary group %s) submits" % group)
            p, jobs = env.ctl_json("jobs", "--all", user=member)
            tap.ok(jobs and jobs[0]["submitted_by"] == {"uid": member_uid, "user": member},
                   "the job records the member's uid and name", jobs)
            p, trail = env.ctl_json("audit", user=member)
            tap.ok(trail and trail[0]["uid"] == member_uid and trail[0]["user"] == member,
                   "the audit trail names the member", trail)

            def outsider_run(desc):
                codes = {}
                for cmd in COMMANDS:
                    args = [csv if a == "FILE" else a for a in cmd]
                    p = env.ctl(*args, user=outsider, timeout=30)
                    codes[" ".join(cmd)] = p.returncode
                # validate needs no daemon (SPEC §3): it reads the file itself
                # (its quiet ask for the limits is refused, and logged, too)
                bad = {k: v for k, v in codes.items() if v != (0 if k == "validate FILE" else 77)}
                tap.ok(not bad, "outsider, %s: exit 77 from all %d commands but validate (0)" %
                       (desc, len(COMMANDS) - 1), bad)

            outsider_run("socket mode 0660")
            # as if SocketMode= were too wide: the daemon's SO_PEERCRED check alone
            os.chmod(env.sock, 0o666)
            before = env.log().count("Refused a request from uid %d " % outsider_uid)
            outsider_run("socket mode 0666 (SO_PEERCRED)")
            refused = env.log().count("Refused a request from uid %d (%s)" %
                                      (outsider_uid, outsider)) - before
            tap.eq(refused, len(COMMANDS),
                   "the daemon logs one line per refused connection, naming the uid")
            p = env.ctl("status", user=outsider)
            tap.ok(b"permission denied" in p.stderr and b"allow_group" in p.stderr,
                   "invitectl says why", p.stderr.decode())
            p, jobs = env.ctl_json("jobs", "--all")
            tap.eq(len(jobs or []), 1, "nothing the outsider tried changed anything")
            p = env.ctl("status", user=member)
            tap.eq(p.returncode, 0, "the member still may")
    finally:
        for name in made_users:
            sh("userdel", name)
        if made_group:
            sh("groupdel", group)
        left = [n for n in (member, outsider) if sh("id", n).returncode == 0]
        if skip:
            skip_all(skip)  # nothing was tested; what was made is removed
        tap.eq(left, [], "test users removed")


if __name__ == "__main__":
    run(main)
