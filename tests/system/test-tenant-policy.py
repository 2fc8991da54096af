#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Per-tenant access (SPEC §6 per tenant, §7) with real users and groups made
for the test: tenant a's allow_group holds alice, tenant b's holds bob, and
carol is in b's admin_group only. Each sees, submits to and acts on only
their tenants: every command on the other tenant's job exits 77, and
`jobs`, `tenants`, `stats`, `status` show them nothing of it. Needs root
(CI runs as root); skips elsewhere. The users and groups are removed."""
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "chaos"))
import wire  # noqa: E402
from harness import Env, deadline_wait, portal_file, run, skip_all, user_gid  # noqa: E402


def sh(*cmd):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)


def rows(prefix, n):
    return portal_file([["%s%d@partner.example" % (prefix, i), "", "false", ""]
                        for i in range(n)])


CLIENT = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
import wire
print(json.dumps(wire.request(sys.argv[2], json.loads(sys.argv[3]))))
'''


def main(tap):
    if os.geteuid() != 0 or not all(shutil.which(c) for c in
                                     ("useradd", "groupadd", "userdel", "groupdel", "setpriv")):
        skip_all("needs root, useradd/groupadd and setpriv to make real users")
    tag = secrets.token_hex(3)
    groups = {"a": "invta" + tag, "b": "invtb" + tag, "badm": "invtx" + tag}
    users = {"alice": "invtal" + tag, "bob": "invtbo" + tag, "carol": "invtca" + tag}
    member = {"alice": groups["a"], "bob": groups["b"], "carol": groups["badm"]}
    made_g, made_u = [], []
    try:
        for g in groups.values():
            if sh("groupadd", g).returncode != 0:
                skip_all("cannot create a group")
            made_g.append(g)
        for k, n in users.items():
            if sh("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", "-G", member[k], n).returncode:
                skip_all("cannot create a user")
            made_u.append(n)
        check(tap, groups, users)
    finally:
        for n in made_u:
            sh("userdel", n)
        for g in made_g:
            sh("groupdel", g)
        tap.eq([n for n in made_u if sh("id", n).returncode == 0], [], "test users removed")


def check(tap, groups, users):
    with Env(start=False, queue={"rate": "50", "burst": "5"},
             daemon={"allow_group": "", "admin_group": ""}) as env:
        os.chmod(env.dir, 0o755)
        text = open(env.conf).read().replace("tenant = contoso.onmicrosoft.com\n", "")
        text += ("\n[tenant a]\ntenant = contoso.onmicrosoft.com\nallow_group = %s\n"
                 "\n[tenant b]\ntenant = contoso.onmicrosoft.com\nallow_group = %s\n"
                 "admin_group = %s\n" % (groups["a"], groups["b"], groups["badm"]))
        with open(env.conf, "w") as f:
            f.write(text)
        env.start_daemon()

        def ctl(who, *args):
            return env.ctl(*args, user=users[who] if who != "root" else None, timeout=30)

        def op(who, req):
            cmd = [sys.executable, "-c", CLIENT, os.path.join(HERE, "..", "chaos"), env.sock,
                   json.dumps(req)]
            if who != "root":
                cmd = ["setpriv", "--reuid", users[who], "--regid", user_gid(users[who]),
                       "--init-groups"] + cmd
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            try:
                return json.loads(p.stdout)
            except ValueError:
                return None

        tap.eq(oct(os.stat(env.sock).st_mode & 0o777), "0o666",
               "tenants with groups of their own: the socket is 0666, the peer check decides")
        small = env.write("a.csv", rows("a", 3))
        os.chmod(small, 0o644)
        # alice may use tenant a only: submit needs no --tenant
        p = ctl("alice", "--json", "submit", small, "--wait")
        ja = json.loads(p.stdout) if p.returncode == 0 else None
        tap.ok(ja and ja["tenant"] == "a" and ja["state"] == "completed",
               "alice submits to her one tenant a without naming it", p.stderr)
        # bob's job in tenant b (a member of b's allow_group)
        big = env.write("b.csv", rows("b", 400))
        os.chmod(big, 0o644)
        p = ctl("bob", "--json", "submit", big)
        jb = json.loads(p.stdout) if p.returncode == 0 else None
        tap.ok(jb and jb["tenant"] == "b", "bob submits to his one tenant b", p.stderr)
        A, B = str(ja["id"]), str(jb["id"])
        ctl("bob", "pause", B)

        r = op("alice", {"op": "submit", "tenant": "b"})
        tap.ok(r and r["error"]["code"] == "permission_denied" and "tenant 'b'" in
               r["error"]["message"], "alice: submit to tenant b is permission_denied", r)
        for cmd in (["show", B], ["results", B], ["wait", B], ["cancel", B], ["pause", B],
                    ["resume", B], ["retry", B], ["audit", "--job", B], ["reload"]):
            p = ctl("alice", *cmd)
            tap.eq(p.returncode, 77, "alice: %s on tenant b's job exits 77" % " ".join(cmd[:1]))
        p = ctl("alice", "--json", "jobs", "--all")
        jobs = json.loads(p.stdout) if p.returncode == 0 else None
        tap.ok(jobs is not None and [j["id"] for j in jobs] == [ja["id"]],
               "alice: jobs shows her job in a only", p.stdout)
        r = op("alice", {"op": "tenants"})
        tap.eq([t["name"] for t in (r or {}).get("tenants", [])], ["a"], "alice: tenants: a only")
        r = op("alice", {"op": "stats"})
        st = (r or {}).get("stats", {})
        tap.ok([t["name"] for t in st.get("tenants", [])] == ["a"] and
               st.get("invitations_created_total") == 3,
               "alice: stats has tenant a only, its sums exclude b", st)
        r = op("alice", {"op": "status"})
        tap.ok(r and [t["name"] for t in r.get("tenants", [])] == ["a"] and
               r["jobs"]["active"] == 0, "alice: status shows a only (b's active job not counted)",
               r)
        r = op("alice", {"op": "jobs", "tenant": "b"})
        tap.ok(r and r["error"]["code"] == "permission_denied", "alice: jobs --tenant b refused", r)

        # bob: the reverse
        p = ctl("bob", "show", A)
        tap.eq(p.returncode, 77, "bob: show of tenant a's job exits 77")
        r = op("bob", {"op": "tenants"})
        tap.eq([t["name"] for t in (r or {}).get("tenants", [])], ["b"], "bob: tenants: b only")
        # carol: b's admin_group only: every job of b, nothing of a
        p = ctl("carol", "--json", "jobs", "--all")
        jobs = json.loads(p.stdout) if p.returncode == 0 else None
        tap.ok(jobs is not None and [j["id"] for j in jobs] == [jb["id"]],
               "carol (b's admin_group): jobs shows b's job, not a's", p.stdout)
        p = ctl("carol", "resume", B)
        tap.eq(p.returncode, 0, "carol may act on bob's job in b")
        p = ctl("carol", "cancel", A)
        tap.eq(p.returncode, 77, "carol: cancel of tenant a's job exits 77")
        r = op("carol", {"op": "resume", "tenant": "b"})
        tap.ok(r and r["ok"], "carol: resume of tenant b (its admin)", r)
        r = op("bob", {"op": "resume", "tenant": "b"})
        tap.ok(r and r["error"]["code"] == "permission_denied",
               "bob (a member, not an admin): resume of tenant b refused", r)
        r = op("root", {"op": "tenants"})
        tap.eq([t["name"] for t in (r or {}).get("tenants", [])], ["a", "b"], "root: both")
        ctl("root", "cancel", B)


run(main)
