#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The daemon side of many tenants against one multi-tenant simulator
(--tenants-file): `check` reads each tenant's roles and guest policy; a 429
naming the application slows every tenant, one naming a tenant that tenant
only; [graph] app_rate is a ceiling over all; reload adds a tenant, gives
one a new credential (a new token), and refuses to remove a tenant with
unfinished jobs. Each tenant has its own prefixed graph_url, so a request
sent with another tenant's token would show as wrong_tenant."""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "chaos"))
import wire  # noqa: E402
from harness import Env, deadline_wait, portal_file, run  # noqa: E402


def submit(env, tenant, n, prefix, **opts):
    data = portal_file([("%s%03d@guest.example" % (prefix, i), "https://r.example", "true")
                        for i in range(n)])
    s = wire.connect(env.sock, 30)
    try:
        s.sendall(wire.frame(dict({"op": "submit", "tenant": tenant, "filename": prefix + ".csv"},
                                  **opts)))
        s.sendall(wire.frame(data))
        s.sendall(wire.frame(b""))
        r = wire.recv_reply(s)
        return r["job"]["id"] if r and r.get("ok") else r
    finally:
        s.close()


def job(env, jid):
    return wire.request(env.sock, {"op": "job", "id": jid})["job"]


def done(env, jid):
    return job(env, jid)["state"] == "completed"


def tenant_section(env, name, directory, secret_path, extra=""):
    return ("\n[tenant %s]\ntenant = %s\nclient_secret_file = %s\ngraph_url = %s/%s\n%s" %
            (name, directory, secret_path, env.base, directory, extra))


def secret(env, name, value):
    path = os.path.join(env.dir, name + ".secret")
    with open(path, "w") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)
    return path


def main(tap):
    tmp = tempfile.mkdtemp(prefix="invited-tt.")
    tfile = os.path.join(tmp, "tenants.json")
    with open(tfile, "w") as f:
        json.dump([
            {"tenant": "fabrikam.example", "client_secret": "s-fab", "roles": [],
             "rate": 10, "period_ms": 1000, "throttle_scope": "Application"},
            {"tenant": "northwind.example", "client_secret": "s-north",
             "roles": ["User.Invite.All", "Policy.Read.All"], "guests": "none"},
            {"tenant": "tailspin.example", "client_secret": "s-tail"},
            {"tenant": "woodgrove.example", "client_secret": "s-wood",
             "rate": 10, "period_ms": 1000, "throttle_scope": "Tenant_Application"},
        ], f)
    with Env(start=False, sim_args=["--tenants-file", tfile, "--roles",
                                    "User.Invite.All,Policy.Read.All"],
             queue={"rate": "1000", "burst": "50", "max_attempts": "20"}) as env:
        s_fab, s_north = secret(env, "fab", "s-fab"), secret(env, "north", "s-north")
        s_tail, s_wood = secret(env, "tail", "s-tail"), secret(env, "wood", "s-wood")
        base = open(env.conf).read().replace("tenant = contoso.onmicrosoft.com\n", "")
        conf = (base + tenant_section(env, "contoso", "contoso.onmicrosoft.com", env.secret_path) +
                tenant_section(env, "fab", "fabrikam.example", s_fab) +
                tenant_section(env, "north", "northwind.example", s_north) +
                tenant_section(env, "tail", "tailspin.example", s_tail))
        with open(env.conf, "w") as f:
            f.write(conf)
        import subprocess
        from harness import INVITED
        p = subprocess.run([INVITED, "--check-config", "-c", env.conf], capture_output=True,
                           text=True, timeout=30)
        tap.ok(p.returncode == 0 and all("[tenant %s]" % n in p.stdout and
                                         "# credential of tenant '%s'" % n in p.stdout
                                         for n in ("contoso", "fab", "north", "tail")),
               "--check-config prints every tenant and its credential", p.stdout + p.stderr)
        bad = os.path.join(env.dir, "bad.conf")
        # north without a file of its own, [graph] without one either
        bad_text = conf.replace("client_secret_file = %s\n" % s_north, "").replace(
            "client_secret_file = %s\n" % env.secret_path, "", 1)
        with open(bad, "w") as f:
            f.write(bad_text)
        line = bad_text.splitlines().index("[tenant north]") + 1
        p = subprocess.run([INVITED, "--check-config", "-c", bad], capture_output=True,
                           text=True, timeout=30)
        tap.ok(p.returncode == 78 and ("%s:%d: [tenant north] has no credential" % (bad, line))
               in p.stderr, "a tenant without a credential: 78 with file, line, tenant",
               p.stderr)
        # the systemd credential NAME.client-secret, before [graph]'s file
        cdir = os.path.join(env.dir, "creds")
        os.mkdir(cdir, 0o700)
        with open(os.path.join(cdir, "north.client-secret"), "w") as f:
            f.write("s-north\n")
        os.chmod(os.path.join(cdir, "north.client-secret"), 0o600)
        p = subprocess.run([INVITED, "--check-config", "-c", bad], capture_output=True,
                           text=True, timeout=30, env=dict(os.environ, CREDENTIALS_DIRECTORY=cdir))
        tap.ok(p.returncode == 0 and "# credential of tenant 'north': client secret from '%s/"
               "north.client-secret'" % cdir in p.stdout,
               "north's credential from $CREDENTIALS_DIRECTORY/north.client-secret",
               p.stdout[-600:] + p.stderr)
        p = subprocess.run([INVITED, "-c", bad], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, NOTIFY_SOCKET=""))
        tap.ok(p.returncode == 78 and "[tenant north] has no credential" in p.stderr,
               "and the daemon does not start (78)", p.stderr)
        env.start_daemon()

        # -- check --
        deadline_wait(lambda: all(t["token"] == "ok" for t in
                                  wire.request(env.sock, {"op": "tenants"})["tenants"]),
                      20, "every tenant has a token")
        c = wire.request(env.sock, {"op": "check", "tenant": "contoso"})["check"]
        tap.ok(c["all_ok"] and c["roles"] == ["User.Invite.All", "Policy.Read.All"] and
               c["missing"] == [] and c["guests"] == "allowed" and c["token"] == "ok",
               "check contoso: roles, nothing missing, guests allowed, all ok", c)
        c = wire.request(env.sock, {"op": "check", "tenant": "fab"})["check"]
        tap.ok(not c["all_ok"] and c["missing"] == ["User.Invite.All"] and
               c["guests"] == "unknown" and "Policy.Read.All" in (c["guests_why"] or ""),
               "check fab: no roles, User.Invite.All missing, guests unknown (403)", c)
        c = wire.request(env.sock, {"op": "check", "tenant": "north"})["check"]
        tap.ok(not c["all_ok"] and c["missing"] == [] and c["guests"] == "not_allowed",
               "check north: the roles are there but the tenant lets nobody invite", c)
        r = wire.request(env.sock, {"op": "check"})
        tap.ok(r["error"]["code"] == "usage" and len(r["error"]["tenants"]) == 4,
               "check without a tenant when there are several: usage", r)

        # -- a 429 naming the application slows every tenant --
        j_fab = submit(env, "fab", 40, "fab")
        j_tail = submit(env, "tail", 20, "tail")
        deadline_wait(lambda: done(env, j_fab) and done(env, j_tail), 60, "fab and tail done")
        log = env.log()
        tap.ok("the whole application" in log and
               "Tenant 'tail' pauses for" in log and "Tenant 'contoso' pauses for" in log,
               "fab's 429s name the application: tail and contoso pause too")
        st = env.sim_stats()["tenants"]
        tap.eq([st[t]["wrong_tenant"] for t in sorted(st)], [0] * len(st),
               "no request went with another tenant's token")

        # -- reload: add woodgrove (a 429 naming the tenant); new secret for tail --
        tokens_tail = st["tailspin.example"]["tokens_issued"]
        conf += tenant_section(env, "wood", "woodgrove.example", s_wood)
        with open(env.conf, "w") as f:
            f.write(conf)
        s_tail2 = secret(env, "tail2", "s-tail")
        conf2 = conf.replace("client_secret_file = %s\n" % s_tail,
                             "client_secret_file = %s\nclient_id = 11111111-2222-3333-4444-555555555555\n" % s_tail2)
        with open(env.conf, "w") as f:
            f.write(conf2)
        r = wire.request(env.sock, {"op": "reload"})
        tap.ok(r["ok"] and "added wood" in r["message"], "reload adds tenant wood", r)
        names = [t["name"] for t in wire.request(env.sock, {"op": "tenants"})["tenants"]]
        tap.eq(names, ["contoso", "fab", "north", "tail", "wood"], "five tenants now")
        log_before = env.log()
        j_wood = submit(env, "wood", 30, "wood")
        j_con = submit(env, "contoso", 20, "con")
        deadline_wait(lambda: done(env, j_wood) and done(env, j_con), 60, "wood and contoso done")
        new = env.log()[len(log_before):]
        tap.ok("Graph throttled tenant 'wood'" in new and "pauses for" not in new,
               "wood's 429s name the tenant: nobody else pauses")

        # a changed credential: a new token (a wrong one first: refused)
        conf3 = conf2.replace(s_tail2, secret(env, "tail3", "wrong-secret"))
        with open(env.conf, "w") as f:
            f.write(conf3)
        r = wire.request(env.sock, {"op": "reload"})
        tap.ok(r["ok"] and "new credential for tail" in r["message"],
               "reload with another secret for tail: a new credential", r)
        deadline_wait(lambda: [t for t in wire.request(env.sock, {"op": "tenants"})["tenants"]
                               if t["name"] == "tail"][0]["token"] != "ok", 20,
                      "tail's new (wrong) secret is refused")
        j_tail2 = submit(env, "tail", 5, "tail2-")
        deadline_wait(lambda: "token" in (job(env, j_tail2)["reason"] or ""), 20,
                      "tail's job shows the token error")
        with open(env.conf, "w") as f:
            f.write(conf2)
        r = wire.request(env.sock, {"op": "reload"})
        tap.ok(r["ok"] and "new credential for tail" in r["message"], "the right secret again", r)
        deadline_wait(lambda: done(env, j_tail2), 30, "tail's job completes by itself")
        st = env.sim_stats()["tenants"]["tailspin.example"]
        tap.ok(st["tokens_issued"] > tokens_tail, "tail got a new token after the reload (%d > %d)"
               % (st["tokens_issued"], tokens_tail))

        # removing a tenant with an unfinished job is refused; nothing changes
        r = wire.request(env.sock, {"op": "pause", "id": submit(env, "north", 5, "north")})
        jn = r["job"]["id"]
        with open(env.conf, "w") as f:
            f.write(conf2.replace(tenant_section(env, "north", "northwind.example", s_north), ""))
        r = wire.request(env.sock, {"op": "reload"})
        tap.ok(not r["ok"] and r["error"]["code"] == "config" and
               r["error"]["message"] == "tenant 'north' still has 1 unfinished job (%d): cancel "
               "or finish them first; nothing changed" % jn,
               "reload refuses to remove north with an unfinished job", r)
        names = [t["name"] for t in wire.request(env.sock, {"op": "tenants"})["tenants"]]
        tap.ok("north" in names and "wood" in names, "nothing changed", names)
        wire.request(env.sock, {"op": "cancel", "id": jn})
        deadline_wait(lambda: job(env, jn)["finished_at"], 20, "north's job ends")
        r = wire.request(env.sock, {"op": "reload"})
        tap.ok(r["ok"] and "removed north" in r["message"], "once cancelled, north goes", r)
        tap.eq(job(env, jn)["tenant"], "north", "its job stays, named by its tenant")

    # -- app_rate: a ceiling over all tenants --
    with Env(start=False, sim_args=["--tenants-file", tfile],
             queue={"rate": "1000", "burst": "50"}) as env:
        s_tail = secret(env, "tail", "s-tail")
        base = open(env.conf).read().replace("tenant = contoso.onmicrosoft.com\n",
                                             "app_rate = 20\n")
        with open(env.conf, "w") as f:
            f.write(base + tenant_section(env, "contoso", "contoso.onmicrosoft.com",
                                          env.secret_path) +
                    tenant_section(env, "tail", "tailspin.example", s_tail))
        env.start_daemon()
        t0 = time.monotonic()
        a, b = submit(env, "contoso", 40, "x"), submit(env, "tail", 40, "y")
        deadline_wait(lambda: done(env, a) and done(env, b), 60, "both done")
        took = time.monotonic() - t0
        # 80 invitations at 20/s with a bucket of 20: at least 3 s
        tap.ok(took >= 2.8, "app_rate = 20: 80 invitations over two tenants took %.1f s" % took)
        tap.ok(job(env, a)["succeeded"] == 40 and job(env, b)["succeeded"] == 40, "all sent")

    # -- a directory read 429 naming the application pauses every tenant's reads --
    dfile = os.path.join(tmp, "tenants-dir.json")
    roles = ["User.Invite.All", "User.Read.All"]
    with open(dfile, "w") as f:
        json.dump([{"tenant": "fabrikam.example", "client_secret": "s-fab", "roles": roles,
                    "read_rate": 2, "read_period_ms": 1000, "throttle_scope": "Application"},
                   {"tenant": "tailspin.example", "client_secret": "s-tail", "roles": roles}], f)
    with Env(start=False, sim_args=["--tenants-file", dfile],
             queue={"rate": "1000", "burst": "50", "max_attempts": "20", "lookup": "yes",
                    "lookup_rate": "100"}) as env:
        s_fab, s_tail = secret(env, "fab", "s-fab"), secret(env, "tail", "s-tail")
        base = open(env.conf).read().replace("tenant = contoso.onmicrosoft.com\n", "")
        with open(env.conf, "w") as f:
            f.write(base + tenant_section(env, "fab", "fabrikam.example", s_fab) +
                    tenant_section(env, "tail", "tailspin.example", s_tail))
        env.start_daemon()
        j_fab = submit(env, "fab", 10, "dfab", skip_existing=True)
        j_tail = submit(env, "tail", 40, "dtail", skip_existing=True)
        deadline_wait(lambda: done(env, j_fab) and done(env, j_tail), 90, "fab and tail done")
        log = env.log()
        tap.ok("Graph throttled lookups of tenant 'fab' (HTTP 429, the whole application)" in log
               and "Tenant 'tail' pauses its lookups for" in log
               and "Tenant 'tail' pauses its acceptance reads for" in log,
               "fab's read 429s name the application: tail's lookups and acceptance reads "
               "pause too", "\n".join(l for l in log.splitlines() if "pause" in l)[-1500:])
        tap.ok("Tenant 'tail' pauses for" not in log,
               "tail's invitations do not pause for a read budget")
        tap.eq((job(env, j_fab)["succeeded"], job(env, j_tail)["succeeded"]), (10, 40),
               "every row of both jobs succeeded")
        st = env.sim_stats()["tenants"]
        tap.eq([st[t]["wrong_tenant"] for t in sorted(st)], [0] * len(st),
               "no request went with another tenant's token")

    # -- with on_complete: a reload may not use a credential the command was not kept from --
    with Env(start=False, sim_args=["--tenants-file", tfile],
             daemon={"on_complete": "/bin/true"}) as env:
        base = open(env.conf).read().replace("tenant = contoso.onmicrosoft.com\n", "")
        conf = base + tenant_section(env, "contoso", "contoso.onmicrosoft.com", env.secret_path)
        with open(env.conf, "w") as f:
            f.write(conf)
        env.start_daemon()
        s_tail = secret(env, "tail", "s-tail")
        with open(env.conf, "w") as f:
            f.write(conf + tenant_section(env, "tail", "tailspin.example", s_tail))
        r = wire.request(env.sock, {"op": "reload"})
        tap.ok(r and not r["ok"] and "was not hidden from on_complete" in r["error"]["message"],
               "reload refuses a tenant whose secret file on_complete could read", r)
        tap.eq([t["name"] for t in wire.request(env.sock, {"op": "tenants"})["tenants"]],
               ["contoso"], "nothing changed")


run(main)
