#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Who may do what (SPEC §6), with real users and groups made for the test:
owner and other in allow_group, admin in admin_group only (not in
allow_group), outsider in neither, and root. Every invitectl command is run
by each of them on the owner's jobs: the exit code is what SPEC §6 says,
`jobs --json` and `audit --json` show a member only their own, a refusal
names the rule and is logged once with the uid, and only root and
admin_group lift a tenant's block. Needs root (CI runs as root); skips
elsewhere. The users and groups are removed afterwards."""
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import Env, deadline_wait, portal_file, run, skip_all  # noqa: E402


def sh(*cmd):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)


def rows(prefix, n):
    return portal_file([["%s%d@partner.example" % (prefix, i), "", "false", ""]
                        for i in range(n)])


class People:
    """The users and groups of the test; removed by close()."""

    def __init__(self):
        tag = secrets.token_hex(3)
        self.allow, self.admins = "invpa" + tag, "invpd" + tag
        self.names = {k: "invp%s%s" % (k[0:2], tag) for k in ("owner", "other", "admin",
                                                                "outsider")}
        self.users, self.groups, self.skip = [], [], None
        for g in (self.allow, self.admins):
            p = sh("groupadd", g)
            if p.returncode != 0:
                self.skip = "cannot create a group: " + p.stderr.strip()
                return
            self.groups.append(g)
        extra = {"owner": ["-G", self.allow], "other": ["-G", self.allow],
                 "admin": ["-G", self.admins], "outsider": []}
        for k, name in self.names.items():
            p = sh("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", *extra[k], name)
            if p.returncode != 0:
                self.skip = "cannot create a user: " + p.stderr.strip()
                return
            self.users.append(name)
        self.uid = {k: pwd.getpwnam(n).pw_uid for k, n in self.names.items()}

    def close(self):
        for name in self.users:
            sh("userdel", name)
        for g in self.groups:
            sh("groupdel", g)
        return [n for n in self.users if sh("id", n).returncode == 0]


def main(tap):
    if os.geteuid() != 0 or not all(shutil.which(c) for c in
                                     ("useradd", "groupadd", "userdel", "groupdel", "setpriv")):
        skip_all("needs root, useradd/groupadd and setpriv to make real users")
    people = People()
    try:
        if people.skip:
            return
        check(tap, people)
        check_block(tap, people)
    finally:
        left = people.close()
        if people.skip:
            skip_all(people.skip)  # nothing was tested; what was made is removed
        tap.eq(left, [], "test users removed")


def make_env(people, **kw):
    env = Env(daemon={"allow_group": people.allow, "admin_group": people.admins}, **kw)
    os.chmod(env.dir, 0o755)  # the users may reach the socket's directory
    return env


def as_user(people, who):
    return None if who == "root" else people.names[who]


def check(tap, people):
    N, U = people.names, people.uid
    # slow enough that a 300-row job is still sending when it is paused
    with make_env(people, queue={"rate": "20", "burst": "1"}) as env:
        def ctl(who, *args, **kw):
            return env.ctl(*args, user=as_user(people, who), timeout=30, **kw)

        def ctl_json(who, *args):
            p = ctl(who, "--json", *args)
            try:
                return p, json.loads(p.stdout) if p.stdout.strip() else None
            except ValueError:
                return p, None

        groups = {k: sh("id", "-Gn", n).stdout.split() for k, n in N.items()}
        tap.ok(people.allow in groups["owner"] and people.allow in groups["other"] and
               people.admins in groups["admin"] and people.allow not in groups["admin"] and
               not {people.allow, people.admins} & set(groups["outsider"]),
               "users made: owner, other in %s; admin in %s only; outsider in neither" %
               (people.allow, people.admins), groups)
        small = env.write("small.csv", rows("small", 2))
        big = env.write("big.csv", rows("big", 300))
        for f in (small, big):
            os.chmod(f, 0o644)
        tap.eq(oct(os.stat(env.sock).st_mode & 0o777), "0o666",
               "with an admin_group the socket is 0666 (its members need not be in %s)" %
               people.allow)

        # the owner's jobs: D done, and one paused (still active) job per actor
        p, done = ctl_json("owner", "submit", small, "--wait")
        tap.ok(p.returncode == 0 and done and done["state"] == "completed",
               "owner submits job D and it completes", p.stderr)
        D = str(done["id"]) if done else "1"

        def paused_job():
            p, j = ctl_json("owner", "submit", big)
            jid = str(j["id"]) if p.returncode == 0 and j else None
            if jid:
                ctl("owner", "pause", jid)
            return jid

        # -- other member: everything on the owner's jobs is refused --
        P = paused_job()
        refused = {}
        for cmd in (["show", D], ["results", D], ["watch", D], ["wait", D], ["retry", D],
                    ["cancel", P], ["pause", P], ["resume", P], ["retry", P],
                    ["audit", "--job", D], ["reload"]):
            p = ctl("other", *cmd)
            refused[" ".join(cmd)] = (p.returncode, p.stderr.decode(errors="replace"))
        bad = {k: v for k, v in refused.items() if v[0] != 77}
        tap.ok(not bad, "other member: exit 77 for all %d commands on the owner's jobs" %
               len(refused), bad)
        want = "job %s belongs to %s; members of '%s' may act on it" % (D, N["owner"],
                                                                         people.admins)
        tap.ok(want in refused["show " + D][1], "the refusal names the rule: " + want,
               refused["show " + D][1])
        tap.ok("allow_group" not in refused["show " + D][1],
               "and no hint about the socket's allow_group", refused["show " + D][1])
        tap.ok("only root and members of '%s' may reload the configuration" % people.admins
               in refused["reload"][1], "reload is refused naming admin_group",
               refused["reload"][1])
        p, j = ctl_json("root", "show", P)
        j = j and j["job"]
        tap.ok(j and j["state"] == "paused", "the refused actions changed nothing (P paused)",
               j and j["state"])
        for cmd, code in ((["status"], 0), (["stats"], 0), (["template"], 0),
                          (["validate", small], 0), (["submit", small, "--wait"], 0)):
            p = ctl("other", *cmd)
            tap.eq(p.returncode, code, "other member: %s exits %d" % (cmd[0], code))
        for args in (["jobs"], ["jobs", "--all"]):
            p, jobs = ctl_json("other", *args)
            owners = sorted({j["submitted_by"]["uid"] for j in jobs or []})
            tap.ok(p.returncode == 0 and owners == [U["other"]],
                   "other member: %s lists their own job only" % " ".join(args), owners)
        p, trail = ctl_json("other", "audit")
        seen = sorted({(e["uid"], e["job"]) for e in trail or []})
        tap.ok(p.returncode == 0 and trail and all(e["uid"] == U["other"] for e in trail),
               "other member: audit shows their own entries only", seen)
        # the log: each refusal once with the uid; repeats (a watch polling,
        # show then results then watch of D) are not logged again
        log = env.log()

        def refusals(op, job):
            return len(re.findall(r"Refused '%s' from uid %d \(%s\): job %s belongs" %
                                  (op, U["other"], N["other"], job), env.log()))
        tap.eq(refusals("job", D), 1,
               "show, results and watch of D refused: one log line with the uid")
        tap.eq(refusals("job", P), 1,
               "cancel and pause of P (the client asks for the job first): one line")
        for op, job in (("wait", D), ("resume", P), ("retry", D), ("retry", P)):
            tap.eq(refusals(op, job), 1, "refused %s of job %s: one log line" % (op, job))
        for op in ("reload", "audit"):
            n = len(re.findall(r"Refused '%s' from uid %d " % (op, U["other"]), log))
            tap.eq(n, 1, "refused %s: one log line" % op)
        for i in range(3):
            ctl("other", "show", D)
        tap.eq(refusals("job", D), 1, "the same refusal three more times: still one line")
        p, rec = ctl_json("root", "audit")
        tap.ok(not any(e["uid"] == U["other"] and e["job"] in (int(D), int(P))
                       for e in rec or []),
               "refusals are log lines, not audit entries")

        # -- owner, admin (not in allow_group), root: everything on the owner's jobs --
        for who in ("owner", "admin", "root"):
            P = paused_job()
            codes = {}
            for cmd in (["status"], ["stats"], ["template"], ["validate", small],
                        ["show", D], ["results", D], ["watch", D], ["wait", D],
                        ["retry", D], ["audit", "--job", D], ["resume", P], ["pause", P],
                        ["retry", P], ["cancel", P]):
                codes[" ".join(cmd)] = ctl(who, *cmd).returncode
            bad = {k: v for k, v in codes.items() if v != 0}
            tap.ok(not bad, "%s: exit 0 for all %d commands on the owner's jobs" %
                   (who, len(codes)), bad)
            p, j = ctl_json("root", "show", P)
            j = j and j["job"]
            tap.ok(j and j["state"] == "cancelled", "%s cancelled job %s" % (who, P),
                   j and j["state"])
            p, trail = ctl_json("root", "audit", "--job", P)
            acts = sorted({e["action"] for e in trail or [] if e["uid"] == U.get(who, 0)})
            want_acts = sorted({"cancel", "pause", "resume", "retry"} |
                               ({"submit"} if who == "owner" else set()))
            tap.eq(acts, want_acts, "%s's actions on job %s are in the audit" % (who, P))
            p = ctl(who, "reload")
            tap.eq(p.returncode, 77 if who == "owner" else 0,
                   "%s: reload exits %d" % (who, 77 if who == "owner" else 0))
            p = ctl(who, "submit", small)
            tap.eq(p.returncode, 0, "%s: submit exits 0" % who)
        p, jobs = ctl_json("owner", "jobs", "--all")
        tap.ok(jobs and {j["submitted_by"]["uid"] for j in jobs} == {U["owner"]},
               "owner: jobs --all lists their own only (not other's, admin's, root's)")
        p, trail = ctl_json("owner", "audit")
        foreign = [e for e in trail or [] if e["uid"] != U["owner"]]
        tap.ok(trail and all(e["job"] is not None for e in foreign) and
               not any(e["action"] in ("reload", "submit") for e in foreign),
               "owner: audit shows their entries and those on their jobs, no other "
               "user's submit or reload", foreign[:3])
        tap.ok(any(e["uid"] == U["admin"] and e["action"] == "cancel" for e in foreign),
               "owner sees the admin's cancel of their job")
        for who in ("admin", "root"):
            p, jobs = ctl_json(who, "jobs", "--all")
            tap.ok(jobs and {U["owner"], U["other"]} <= {j["submitted_by"]["uid"]
                                                          for j in jobs},
                   "%s: jobs --all lists every user's jobs" % who)
            p, trail = ctl_json(who, "audit", "--limit", "1000")
            tap.ok(trail and {U["owner"], U["other"]} <= {e["uid"] for e in trail},
                   "%s: audit shows every user's entries" % who)

        # -- outsider: everything that talks to the daemon is refused --
        codes = {}
        for cmd in (["status"], ["stats"], ["jobs"], ["jobs", "--all"], ["show", D],
                    ["results", D], ["watch", D], ["wait", D], ["cancel", D], ["pause", D],
                    ["resume", D], ["retry", D], ["submit", small], ["audit"], ["reload"]):
            codes[" ".join(cmd)] = ctl("outsider", *cmd).returncode
        bad = {k: v for k, v in codes.items() if v != 77}
        tap.ok(not bad, "outsider: exit 77 for all %d commands" % len(codes), bad)
        p = ctl("outsider", "show", D)
        tap.ok(b"not a member of group '%s' or '%s'" % (people.allow.encode(),
                                                        people.admins.encode()) in p.stderr,
               "the outsider's refusal names both groups", p.stderr)
        tap.eq(ctl("outsider", "template").returncode, 0, "outsider: template is open")
        p = ctl("other", "show", "99999")
        tap.ok(p.returncode == 64 and b"no job 99999" in p.stderr,
               "a job that does not exist: 'no job', as to anyone", p.stderr)


def check_block(tap, people):
    """Lifting a tenant's block: root and admin_group only; a member's resume
    of their own paused job still resumes the job."""
    N = people.names
    with make_env(people, sim_args=["--block-after", "1"]) as env:
        def ctl(who, *args):
            return env.ctl(*args, user=as_user(people, who), timeout=30)

        f = env.write("b.csv", rows("block", 4))
        os.chmod(f, 0o644)
        p = ctl("owner", "--json", "submit", f)
        J = str(json.loads(p.stdout)["id"]) if p.returncode == 0 else "1"

        def blocked():
            p = ctl("root", "--json", "status")
            return json.loads(p.stdout).get("blocked") if p.returncode == 0 else None
        deadline_wait(blocked, 20, "the tenant's block")
        p = ctl("owner", "resume", J)
        want = ("job %s is not paused, and only root and members of '%s' may lift the block "
                "of tenant 'default'" % (J, people.admins))
        tap.ok(p.returncode == 77 and want.encode() in p.stderr,
               "owner: resume of a blocked, unpaused job is refused: " + want, p.stderr)
        tap.ok(blocked(), "the tenant stays blocked")
        tap.eq(ctl("other", "resume", J).returncode, 77, "other member: resume refused")
        tap.eq(ctl("owner", "pause", J).returncode, 0, "owner pauses their job")
        p = ctl("owner", "--json", "resume", J)
        tap.ok(p.returncode == 0 and blocked(),
               "owner: resume of their paused job resumes it; the block stays", p.stderr)
        tap.eq(len(re.findall("Refused 'resume' from uid %d " % people.uid["owner"],
                              env.log())), 1, "the refused resume is logged once")
        p = ctl("admin", "resume", J)
        tap.eq(p.returncode, 0, "admin (admin_group only): resume exits 0")
        tap.ok("resumed by an admin" in env.log(), "and lifts the tenant's block")
        p = ctl("root", "--json", "audit", "--job", J)
        trail = json.loads(p.stdout) if p.returncode == 0 else []
        tap.ok(any(e["action"] == "unblock" and e["user"] == N["admin"] for e in trail),
               "the lifting of the block is in the audit, by the admin",
               [(e["action"], e["user"]) for e in trail])


if __name__ == "__main__":
    run(main)
