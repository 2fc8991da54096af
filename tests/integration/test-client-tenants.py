#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""invitectl's side of many tenants (SPEC §7, TENANTS.md's protocol), against
a fake daemon (fakectl.py) that answers what TENANTS.md says the daemon
answers: what invitectl sends (the "tenant" member, no "id" for a tenant's
resume), what it prints (tenants, check in plain words, the TENANT column,
status and stats per tenant, Prometheus series labelled tenant), and its
exit codes (check: 0 all there, 1 missing, 78 no token; several tenants
without --tenant: 64 with the list). Strings from the daemon are escaped.
A daemon from before tenants still gets today's output. Then, when the real
daemon has tenants (it answers `tenants`), the same end to end: a wave-1
configuration as the tenant `default`, and two [tenant] sections."""
import datetime
import json
import os
import re
import shutil
import subprocess
import time

from fakectl import FakeDaemon
from harness import INVITECTL, Env, portal_file, run

NOW = datetime.datetime.now(datetime.timezone.utc)
UNTIL = NOW + datetime.timedelta(seconds=90)
UNTIL_TEXT = UNTIL.strftime("%Y-%m-%dT%H:%M:%S.000Z")
# cli_local_clock under TZ=UTC: the time alone when it is today
UNTIL_SHOWN = UNTIL.strftime("%H:%M:%S" if UNTIL.date() == NOW.date() else
                             "%Y-%m-%d %H:%M:%S")

TENANTS = [
    {"name": "contoso", "tenant": "contoso.onmicrosoft.com", "cloud": "global", "token": "ok",
     "rate": 4.5, "configured_rate": 5, "state": "ok", "reason": None, "active_jobs": 2,
     "pending": 1200, "paused_until": None},
    {"name": "fabrikam", "tenant": "72f988bf-0000-0000-0000-000000000000", "cloud": "usgov",
     "token": "AADSTS7000215: Invalid client secret provided.", "rate": 0,
     "configured_rate": 10, "state": "paused", "reason": None, "active_jobs": 1,
     "pending": 50, "paused_until": UNTIL_TEXT},
    {"name": "northwind", "tenant": "northwind.example", "cloud": "global", "token": "ok",
     "rate": 0, "configured_rate": 5, "state": "blocked",
     "reason": "Graph blocked the tenant \x1b[31mred\u202e", "active_jobs": 0, "pending": 7,
     "paused_until": None},
]
SEVERAL = {"ok": False, "error": {
    "code": "usage", "message": "several tenants: choose one with --tenant (contoso, fabrikam, "
    "northwind)", "tenants": ["contoso", "fabrikam", "northwind"]}}
JOB = {"id": 7, "state": "queued", "total": 1, "succeeded": 0, "failed": 0, "cancelled": 0,
       "pending": 1, "in_flight": 0, "name": "Q4", "tenant": "contoso",
       "directory": "contoso.onmicrosoft.com", "created_at": "2026-11-28T23:50:01.123Z",
       "finished_at": None, "reason": None, "submitted_by": {"uid": 0, "user": "root"}}


def ctl(fake, *args):
    env = dict(os.environ, NO_COLOR="1", TZ="UTC")
    env.pop("INVITED_SOCKET", None)
    p = subprocess.run([INVITECTL, "-s", fake.sock] + list(args), capture_output=True,
                       env=env, timeout=30)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def row_of(out, first):
    """The line of a table whose first cell is first."""
    for line in out.splitlines():
        if line.split() and line.split()[0] == first:
            return line
    return ""


def test_tenants(tap, fake):
    fake.replies["tenants"] = {"ok": True, "tenants": TENANTS}
    rc, out, err = ctl(fake, "tenants")
    tap.eq(rc, 0, "tenants exits 0")
    lines = out.splitlines()
    tap.eq(lines[0].split() if lines else None,
           ["NAME", "TENANT", "CLOUD", "TOKEN", "RATE", "STATE", "ACTIVE", "PENDING"],
           "tenants: the SPEC §7 header")
    tap.eq(fake.requests[-1], {"op": "tenants"}, "tenants sends {\"op\":\"tenants\"}")
    c = row_of(out, "contoso")
    tap.ok(re.search(r"contoso\s+contoso\.onmicrosoft\.com\s+global\s+ok\s+4\.5/5\s+ok\s+2\s+"
                     r"1200$", c), "contoso: rate now/configured, state ok, active, pending", out)
    f = row_of(out, "fabrikam")
    tap.ok("AADSTS7000215: Invalid client secret provided." in f and "0/10" in f and
           "usgov" in f, "fabrikam: the token endpoint's error, the cloud", f)
    tap.ok("paused until %s" % UNTIL_SHOWN in f, "fabrikam: paused until the time, local",
           (f, UNTIL_SHOWN))
    n = row_of(out, "northwind")
    tap.ok("blocked: Graph blocked the tenant \\e[31mred\\u202e" in n and "\x1b" not in out and
           "\u202e" not in out, "northwind: blocked with the reason, escaped", n)
    tap.ok(len(lines) == 4 and all(l.index(l.split()[1]) == lines[0].index("TENANT")
                                   for l in lines), "columns aligned", out)
    rc, out, err = ctl(fake, "tenants", "--json")
    tap.eq((rc, json.loads(out) if rc == 0 else out), (0, TENANTS),
           "tenants --json: the daemon's array, exactly")
    rc, out, err = ctl(fake, "tenants", "-q")
    tap.eq((rc, out), (0, "contoso\nfabrikam\nnorthwind\n"), "tenants -q: the names only")
    rc, out, err = ctl(fake, "tenants", "--no-legend")
    tap.ok(rc == 0 and "NAME" not in out and len(out.splitlines()) == 3,
           "tenants --no-legend: no header", out)
    fake.replies["tenants"] = {"ok": True, "tenants": TENANTS + [
        dict(TENANTS[0], name="evil\nname"), dict(TENANTS[0], name="-rf *")]}
    rc, out, err = ctl(fake, "tenants", "-q")
    tap.eq((rc, out), (0, "contoso\nfabrikam\nnorthwind\n"),
           "tenants -q skips what is not a tenant name (a newline, a space, a star)")
    fake.replies["tenants"] = {"ok": True, "tenants": TENANTS}
    fake.clear()
    rc, out, err = ctl(fake, "tenants", "-q", "--json")
    tap.ok(rc == 64 and fake.requests == [], "-q and --json: 64, nothing asked", err)
    del fake.replies["tenants"]
    rc, out, err = ctl(fake, "tenants")
    tap.ok(rc == 64 and "unknown op 'tenants'" in err,
           "a daemon from before tenants: its message, 64", (rc, err))
    fake.replies["tenants"] = {"ok": True, "tenants": TENANTS}


def check(tenant, **kw):
    c = {"tenant": tenant, "token": "ok", "roles": ["User.Invite.All"],
         "needed": ["User.Invite.All"], "missing": [], "guests": "allowed", "guests_why": None,
         "all_ok": True}
    c.update(kw)
    return {"ok": True, "check": c}


def test_check(tap, fake):
    fake.replies["tenants"] = {"ok": True, "tenants": TENANTS}
    fake.replies["check"] = check("contoso", roles=["User.Invite.All", "Policy.Read.All"])
    fake.clear()
    rc, out, err = ctl(fake, "check", "--tenant", "contoso")
    tap.eq(rc, 0, "check: all there, exit 0")
    tap.eq(fake.last("check"), {"op": "check", "tenant": "contoso"},
           "check --tenant sends the tenant")
    tap.ok(re.search(r"^Tenant: +contoso \(contoso\.onmicrosoft\.com\)$", out, re.M) and
           re.search(r"^Roles: +User\.Invite\.All, Policy\.Read\.All$", out, re.M) and
           re.search(r"^Missing: +none$", out, re.M) and
           re.search(r"^Guests: +may be invited$", out, re.M) and
           re.search(r"^Result: +all is there$", out, re.M) and "adminconsent" not in out,
           "check in plain words: tenant and directory, roles, nothing missing, guests", out)

    fake.replies["check"] = check("contoso", roles=["Policy.Read.All"],
                                  needed=["User.Invite.All", "User.Read.All"],
                                  missing=["User.Invite.All", "User.Read.All"],
                                  guests="unknown",
                                  guests_why="the token cannot read the authorizationPolicy",
                                  all_ok=False)
    fake.clear()
    rc, out, err = ctl(fake, "check")
    tap.eq(rc, 1, "check: roles missing, exit 1")
    tap.ok("tenant" not in fake.last("check"), "check without --tenant sends none",
           fake.last("check"))
    tap.ok(re.search(r"^Missing: +User\.Invite\.All, User\.Read\.All$", out, re.M) and
           "Application permissions" in out and
           "https://login.microsoftonline.com/contoso.onmicrosoft.com/adminconsent?"
           "client_id=CLIENT_ID" in out and "[graph] client_id" in out,
           "what is missing, the API permissions to add, the admin-consent URL", out)
    tap.ok(re.search(r"^Guests: +unknown \(the token cannot read the authorizationPolicy\)$",
                     out, re.M), "guests unknown, with why", out)

    fake.replies["check"] = check("fabrikam", missing=["User.Invite.All"], roles=[],
                                  client_id="11111111-2222-3333-4444-555555555555",
                                  all_ok=False)
    rc, out, err = ctl(fake, "check", "--tenant", "fabrikam")
    tap.ok(rc == 1 and "https://login.microsoftonline.us/72f988bf-0000-0000-0000-000000000000/"
           "adminconsent?client_id=11111111-2222-3333-4444-555555555555" in out and
           "CLIENT_ID" not in out and re.search(r"^Roles: +none$", out, re.M),
           "US Gov: the consent URL on login.microsoftonline.us, the daemon's client_id", out)

    fake.replies["check"] = check("contoso", token="AADSTS7000215: Invalid client secret "
                                  "provided. \x1b]0;pwned\x07", roles=None,
                                  missing=["User.Invite.All"], guests="unknown",
                                  guests_why="no token", all_ok=False)
    rc, out, err = ctl(fake, "check", "--tenant", "contoso")
    tap.ok(rc == 78 and "AADSTS7000215" in out and "\\e]0;pwned\\x07" in out and
           "\x1b" not in out and "adminconsent" in out and "invitectl reload" in out,
           "check: no token, exit 78, the error escaped, what to do", (rc, out))

    fake.replies["check"] = check("contoso", guests="not_allowed",
                                  guests_why="allowInvitesFrom is none", all_ok=False)
    rc, out, err = ctl(fake, "check", "--tenant", "contoso")
    tap.ok(rc == 1 and "External collaboration settings" in out and
           re.search(r"^Guests: +may not be invited \(allowInvitesFrom is none\)$", out, re.M),
           "guests not allowed: exit 1, where to change it", out)

    obj = check("contoso", missing=["User.Read.All"], all_ok=False)
    fake.replies["check"] = obj
    rc, out, err = ctl(fake, "check", "--tenant", "contoso", "--json")
    tap.eq((rc, json.loads(out) if out else None), (1, obj["check"]),
           "check --json: the check object, exactly; the same exit status")

    fake.replies["check"] = SEVERAL
    rc, out, err = ctl(fake, "check")
    tap.ok(rc == 64 and "several tenants" in err and
           all("\n  %s\n" % n in err + "\n" for n in ("contoso", "fabrikam", "northwind")),
           "check without --tenant, several tenants: 64 and the list", err)
    fake.clear()
    rc, out, err = ctl(fake, "check", "--tenant", "Contoso_1")
    tap.ok(rc == 64 and fake.requests == [] and "invalid tenant name 'Contoso_1'" in err,
           "a bad tenant name: 64 before asking", err)


def test_submit(tap, fake):
    def submit(req):
        if "tenant" not in req:
            return SEVERAL
        if req["tenant"] == "northwind":
            return {"ok": False, "error": {"code": "permission_denied", "rule": "tenant",
                                           "message": "tenant northwind: members of "
                                           "'nw-admins' may use it"}}
        return {"ok": True, "job": dict(JOB, tenant=req["tenant"]), "warnings": []}
    fake.replies["submit"] = submit
    d = fake.dir
    path = os.path.join(d, "g.csv")
    data = portal_file([["ana@partner.example", "", "false", ""]])
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    fake.clear()
    rc, out, err = ctl(fake, "submit", path)
    tap.ok(rc == 64 and "several tenants: choose one with --tenant" in err and
           "the tenants you may use (--tenant NAME):\n  contoso\n  fabrikam\n  northwind\n"
           in err and out == "", "submit, several tenants: 64 and which there are", err)
    rc, out, err = ctl(fake, "submit", "--tenant", "fabrikam", path)
    req = fake.last("submit")
    tap.ok(rc == 0 and out == "7\n" and req.get("tenant") == "fabrikam" and
           req.get("_data") == open(path, "rb").read(),
           "submit --tenant: the tenant in the request, the file whole", (rc, out, err, req))
    rc, out, err = ctl(fake, "submit", "--tenant", "northwind", path)
    tap.ok(rc == 77 and "members of 'nw-admins'" in err and "allow_group" not in err,
           "a tenant the user may not use: 77 with the daemon's rule", err)
    fake.clear()
    rc, out, err = ctl(fake, "submit", "--tenant", "a b", path)
    tap.ok(rc == 64 and "submit" not in fake.ops(), "a bad tenant name: 64, nothing sent", err)
    rc, out, err = ctl(fake, "validate", "--tenant", "contoso", path)
    tap.ok(rc == 0 and "1 row, valid" in out, "validate accepts --tenant, as submit", err)


def test_jobs_show(tap, fake):
    jobs = [dict(JOB, id=9, tenant="fabrikam"), JOB]
    fake.replies["jobs"] = lambda req: {"ok": True, "truncated": False, "jobs": [
        j for j in jobs if j["tenant"] == req.get("tenant", j["tenant"])]}
    rc, out, err = ctl(fake, "jobs")
    lines = out.splitlines()
    tap.eq(lines[0].split() if lines else None,
           ["ID", "STATE", "SUBMITTED", "BY", "TENANT", "TOTAL", "SUCCESS", "FAILURE",
            "SKIPPED", "PENDING", "ACCEPTED", "NAME"], "jobs: a TENANT column")
    tap.ok(row_of(out, "9").split()[5:6] == ["fabrikam"] and
           row_of(out, "7").split()[5:6] == ["contoso"], "each job's tenant", out)
    rc, out, err = ctl(fake, "jobs", "--tenant", "contoso", "-q")
    tap.ok(rc == 0 and out == "7\n" and fake.last("jobs") == {"op": "jobs", "tenant": "contoso"},
           "jobs --tenant: the filter sent", (out, fake.last("jobs")))
    rc, out, err = ctl(fake, "jobs", "--all", "--tenant", "fabrikam", "--json")
    tap.ok(rc == 0 and [j["id"] for j in json.loads(out)] == [9] and
           fake.last("jobs") == {"op": "jobs", "all": True, "tenant": "fabrikam"},
           "jobs --all --tenant --json", out)
    fake.replies["jobs"] = lambda req: {"ok": True, "jobs": [dict(JOB, id=9)], "next": 9} \
        if "before" not in req else {"ok": True, "jobs": [JOB], "next": None}
    fake.clear()
    rc, out, err = ctl(fake, "jobs", "--tenant", "contoso", "-q")
    tap.ok(rc == 0 and out == "9\n7\n" and [r.get("tenant") for r in fake.requests] ==
           ["contoso", "contoso"], "jobs --tenant asks every page for the tenant's jobs",
           (out, fake.requests))
    fake.replies["job"] = {"ok": True, "job": JOB}
    fake.replies["rows"] = {"ok": True, "rows": [], "next": None}
    rc, out, err = ctl(fake, "show", "--no-pager", "7")
    tap.ok(rc == 0 and re.search(r"^Tenant: +contoso \(contoso\.onmicrosoft\.com\)$", out, re.M),
           "show: the tenant and its directory in the summary", out)
    old = dict(JOB, tenant="contoso.onmicrosoft.com")
    del old["directory"]
    fake.replies["job"] = {"ok": True, "job": old}
    rc, out, err = ctl(fake, "show", "--no-pager", "7")
    tap.ok(rc == 0 and re.search(r"^Tenant: +contoso\.onmicrosoft\.com$", out, re.M),
           "show, a daemon from before tenants: its tenant as it is", out)


STATUS_OLD = {"ok": True, "version": "0.1.0", "uptime_s": 62, "tenant": "contoso.onmicrosoft.com",
              "blocked": None, "token": {"state": "valid", "expires_in_s": 3500, "error": None},
              "rate": {"configured": 5, "current": 4.5, "paused_ms": 0},
              "queue": {"pending": 1200, "in_flight": 3}, "jobs": {"active": 2},
              "limits": {"max_upload_bytes": 1 << 26, "max_rows": 1000000}}


def test_status(tap, fake):
    fake.replies["status"] = dict(STATUS_OLD, tenants=TENANTS)
    rc, out, err = ctl(fake, "status")
    tap.ok(rc == 0 and re.search(r"^Tenants: +3 \(1 ok, 1 paused, 1 blocked\)$", out, re.M) and
           re.search(r"^Queue: +1,257 pending$", out, re.M) and
           re.search(r"^Active jobs: +3$", out, re.M) and not re.search(r"^Token:", out, re.M),
           "status: what the tenants add up to; no first tenant's token as the daemon's", out)
    tap.ok(re.search(r"^NAME +TOKEN +RATE +STATE +PENDING$", out, re.M) and
           re.search(r"^contoso +ok +4\.5/5 +ok +1200$", out, re.M) and
           re.search(r"^fabrikam +AADSTS7000215: .* +0/10 +paused until %s +50$" % UNTIL_SHOWN,
                     out, re.M) and
           re.search(r"^northwind +ok +0/5 +blocked: .*\\u202e +7$", out, re.M),
           "status: one line per tenant: name, token, rate, state, pending", out)
    fake.replies["status"] = dict(STATUS_OLD, tenants=TENANTS[:1])
    rc, out, err = ctl(fake, "status")
    tap.ok(rc == 0 and re.search(r"^Tenant: +contoso\.onmicrosoft\.com$", out, re.M) and
           re.search(r"^Rate: +5/s configured, 4\.5/s now$", out, re.M) and
           re.search(r"\n\nNAME +TOKEN +RATE +STATE +PENDING\ncontoso +ok +4\.5/5 +ok +1200\n$",
                     out),
           "status, one tenant: today's lines (the top level is that tenant's), then its line",
           out)
    fake.replies["status"] = STATUS_OLD
    rc, out, err = ctl(fake, "status")
    tap.ok(rc == 0 and re.search(r"^Tenant: +contoso\.onmicrosoft\.com$", out, re.M) and
           re.search(r"^Token: +valid, expires in 58m 20s$", out, re.M) and "NAME" not in out,
           "status, a daemon from before tenants: unchanged", out)
    fake.replies["status"] = dict(STATUS_OLD, tenants=TENANTS)
    rc, out, err = ctl(fake, "status", "--json")
    want = dict(STATUS_OLD, tenants=TENANTS)
    del want["ok"]
    tap.eq(json.loads(out), want, "status --json: the object, with tenants")


HOSTILE = 'we"ird\\na\nme'
STATS = {"requests_total": 30, "invitations_created_total": 28, "throttled_total": 2,
         "rate": 9.5, "paused_ms": 1500, "pending": 1250, "connections": 1,
         "uptime_seconds": 100,
         "tenants": [
             {"name": "contoso", "requests_total": 20, "invitations_created_total": 19,
              "throttled_total": 0, "rate": 4.5, "paused_ms": 0, "pending": 1200,
              "uptime_seconds": 100, "blocked": 0},
             {"name": HOSTILE, "requests_total": 10, "invitations_created_total": 9,
              "throttled_total": 2, "rate": 5, "paused_ms": 1500, "pending": 50,
              "uptime_seconds": 100, "blocked": 1}]}


def test_stats(tap, fake):
    fake.replies["stats"] = {"ok": True, "stats": STATS}
    rc, out, err = ctl(fake, "stats", "--prometheus")
    tap.eq(rc, 0, "stats --prometheus exits 0")
    tap.diag(out)
    samples = [l for l in out.splitlines() if l and not l.startswith("#")]
    esc = 'we\\"ird\\\\na\\nme'
    tap.ok('invited_requests_total{tenant="contoso"} 20' in samples and
           'invited_requests_total{tenant="%s"} 10' % esc in samples and
           "invited_requests_total 30" not in samples,
           "one series per tenant, the label value escaped; the sum left out", samples)
    tap.ok('invited_paused_seconds{tenant="%s"} 1.5' % esc in samples and
           'invited_rate{tenant="contoso"} 4.5' in samples,
           "milliseconds in seconds, reals exact, per tenant", samples)
    tap.ok("invited_connections 1" in samples and
           not any(s.startswith("invited_connections{") for s in samples),
           "a series only the daemon has stays unlabelled", samples)
    tap.ok('invited_blocked{tenant="contoso"} 0' in samples and
           'invited_blocked{tenant="%s"} 1' % esc in samples,
           "a series only the tenants have is written too", samples)
    names = re.findall(r"^# TYPE (\S+) ", out, re.M)
    tap.ok(len(names) == len(set(names)) and all(
        re.findall(r"^# HELP %s " % re.escape(n), out, re.M) for n in names),
        "HELP and TYPE once per metric", names)
    # every sample right after its metric's TYPE line or a sample of the same metric
    grouped, current = True, None
    for line in out.splitlines():
        if line.startswith("# TYPE "):
            current = line.split()[2]
        elif line and not line.startswith("#"):
            grouped &= line.split("{")[0].split()[0] == current
    tap.ok(grouped, "each metric's samples together, after its HELP and TYPE")
    promtool = shutil.which("promtool")
    if promtool:
        chk = subprocess.run([promtool, "check", "metrics"], input=out.encode(),
                             capture_output=True, timeout=30)
        tap.eq((chk.returncode, chk.stdout.decode() + chk.stderr.decode()), (0, ""),
               "promtool check metrics: no error, no lint warning")
    else:
        tap.diag("promtool is not installed: the format check is skipped")

    rc, out, err = ctl(fake, "stats")
    tap.ok(rc == 0 and re.search(r"^requests_total +30$", out, re.M) and
           re.search(r"^Tenant contoso:\n(  .*\n)*  requests_total +20\n", out, re.M) and
           "tenants" not in out and "Tenant we\"ird\\na\\nme:" in out,
           "stats: the sums, then each tenant's, names escaped", out)
    rc, out, err = ctl(fake, "stats", "--json")
    tap.eq(json.loads(out), STATS, "stats --json: the object, with tenants")
    old = {k: v for k, v in STATS.items() if k != "tenants"}
    fake.replies["stats"] = {"ok": True, "stats": old}
    rc, out, err = ctl(fake, "stats", "--prometheus")
    samples = [l for l in out.splitlines() if l and not l.startswith("#")]
    tap.ok(rc == 0 and "invited_requests_total 30" in samples and
           not any("{" in s for s in samples),
           "a daemon from before tenants: today's unlabelled series", samples)


def test_resume(tap, fake):
    fake.replies["resume"] = lambda req: (
        {"ok": True, "changed": 1} if req.get("tenant") == "northwind" else
        {"ok": True, "changed": 0, "tenant": dict(TENANTS[0])} if "tenant" in req else
        {"ok": True, "changed": 1, "job": dict(JOB, state="queued")})
    fake.clear()
    rc, out, err = ctl(fake, "resume", "--tenant", "northwind")
    tap.ok(rc == 0 and err == "Tenant northwind: resumed\n" and
           fake.requests == [{"op": "resume", "tenant": "northwind"}],
           "resume --tenant: {\"op\":\"resume\",\"tenant\":NAME}, no id; says so",
           (rc, err, fake.requests))
    rc, out, err = ctl(fake, "resume", "--tenant", "contoso", "--json")
    tap.ok(rc == 0 and "Tenant contoso: not paused or blocked" in err and
           json.loads(out) == dict(TENANTS[0], changed=0),
           "resume --tenant, nothing to lift: said; --json the tenant", (err, out))
    fake.clear()
    rc, out, err = ctl(fake, "resume", "--tenant", "contoso", "7")
    tap.ok(rc == 64 and fake.requests == [] and "exclude each other" in err,
           "JOB and --tenant: 64", err)
    fake.replies["job"] = {"ok": True, "job": dict(JOB, state="paused")}
    rc, out, err = ctl(fake, "resume", "7")
    tap.ok(rc == 0 and "Job 7: resumed" in err and fake.last("resume") == {"op": "resume",
                                                                            "id": 7},
           "resume JOB as before", (err, fake.last("resume")))
    rc, out, err = ctl(fake, "resume")
    tap.ok(rc == 64 and "missing JOB" in err, "resume with neither: 64", err)
    fake.replies["resume"] = {"ok": False, "error": {
        "code": "permission_denied", "rule": "admin",
        "message": "lifting tenant northwind's block is for root and 'nw-admins'"}}
    rc, out, err = ctl(fake, "resume", "--tenant", "northwind")
    tap.ok(rc == 77 and "nw-admins" in err, "not an admin of the tenant: 77", err)


SPEC_KEYS = {"name", "tenant", "cloud", "token", "rate", "configured_rate", "state", "reason",
             "active_jobs", "pending", "paused_until"}
CHECK_KEYS = {"tenant", "token", "roles", "needed", "missing", "guests", "guests_why", "all_ok"}


def out(p):
    return p.stdout.decode("utf-8", "replace")


def err(p):
    return p.stderr.decode("utf-8", "replace")


def test_real_daemon(tap):
    """invitectl against the real invited and the simulator."""
    with Env() as env:
        p = env.ctl("tenants", "--json")
        if p.returncode != 0:
            tap.diag("the daemon has no tenants yet (%s): end-to-end checks skipped" %
                     err(p).strip())
            return False
        ts = json.loads(out(p))
        tap.ok([t.get("name") for t in ts] == ["default"] and SPEC_KEYS <= set(ts[0]),
               "real daemon: a wave-1 configuration is the one tenant 'default', SPEC §7's "
               "object", ts)
        p = env.ctl("tenants", "-q")
        tap.eq(out(p), "default\n", "real daemon: tenants -q")
        p = env.ctl("tenants")
        tap.ok(p.returncode == 0 and row_of(out(p), "default").split()[1:2] ==
               ["contoso.onmicrosoft.com"], "real daemon: tenants, the directory", out(p))
        p = env.ctl("submit", env.write("g.csv", portal_file(
            [["e2e%d@partner.example" % i, "", "false", ""] for i in range(3)])))
        job = out(p).strip()
        tap.ok(p.returncode == 0 and job.isdigit(), "real daemon: one tenant, no --tenant needed",
               err(p))
        p = env.ctl("wait", job)
        tap.eq(p.returncode, 0, "real daemon: the job completes")
        p = env.ctl("jobs")
        tap.ok(row_of(out(p), job).split()[5:6] == ["default"], "real daemon: TENANT column",
               out(p))
        p = env.ctl("jobs", "--tenant", "default", "-q")
        tap.eq(out(p).split(), [job], "real daemon: jobs --tenant default")
        p = env.ctl("jobs", "--tenant", "nope")
        tap.ok(p.returncode == 64 and "no tenant 'nope'" in err(p),
               "real daemon: jobs --tenant of no tenant: 64", err(p))
        p = env.ctl("show", "--no-pager", job)
        tap.ok(re.search(r"^Tenant: +default \(contoso\.onmicrosoft\.com\)$", out(p), re.M),
               "real daemon: show names the tenant and its directory", out(p))
        p = env.ctl("status")
        tap.ok(p.returncode == 0 and re.search(r"^default +\S+", out(p), re.M),
               "real daemon: status, a line for the tenant", out(p))
        p = env.ctl("stats", "--prometheus")
        tap.ok(p.returncode == 0 and re.search(
            r'^invited_requests_total\{tenant="default"\} [1-9][0-9]*$', out(p), re.M),
               "real daemon: stats --prometheus labelled tenant=\"default\"", out(p))
        promtool = shutil.which("promtool")
        if promtool:
            chk = subprocess.run([promtool, "check", "metrics"], input=p.stdout,
                                 capture_output=True, timeout=30)
            tap.eq(chk.returncode, 0, "real daemon: promtool check metrics")
        p = env.ctl("check", "--json")
        c = json.loads(out(p)) if p.stdout else {}
        tap.ok(CHECK_KEYS <= set(c) and p.returncode == (0 if c.get("all_ok") else
                                                       1 if c.get("token") == "ok" else 78),
               "real daemon: check --json, its exit status as all_ok says", (p.returncode, c))
        p = env.ctl("check")
        tap.ok(re.search(r"^Tenant: +default", out(p), re.M), "real daemon: check in words",
               out(p))
        p = env.ctl("resume", "--tenant", "default")
        tap.ok(p.returncode == 0 and "Tenant default: " in err(p),
               "real daemon: resume --tenant of a tenant that is not blocked", err(p))

    with Env(start=False, graph={"tenant": None}) as env:
        env.write_config("".join("\n[tenant %s]\ntenant = contoso.onmicrosoft.com\n" % n
                                 for n in ("alpha", "beta")))
        env.start_daemon()
        f = env.write("g.csv", portal_file([["two@partner.example", "", "false", ""]]))
        p = env.ctl("submit", f)
        tap.ok(p.returncode == 64 and "\n  alpha\n  beta\n" in err(p),
               "real daemon, two tenants: submit without --tenant is 64 and lists them", err(p))
        p = env.ctl("submit", "--tenant", "beta", f)
        job = out(p).strip()
        tap.ok(p.returncode == 0 and job.isdigit(), "real daemon: submit --tenant beta", err(p))
        p = env.ctl("jobs", "--tenant", "alpha", "-q")
        tap.eq((p.returncode, out(p)), (0, ""), "real daemon: jobs --tenant alpha: none")
        p = env.ctl("check")
        tap.ok(p.returncode == 64 and "several tenants" in err(p),
               "real daemon: check without --tenant: 64", err(p))
        p = env.ctl("tenants", "-q")
        tap.eq(out(p), "alpha\nbeta\n", "real daemon: tenants -q, both")
        env.ctl("wait", job)
        p = env.ctl("jobs", "--tenant", "beta")
        tap.ok(row_of(out(p), job).split()[5:6] == ["beta"], "real daemon: the job is beta's",
               out(p))
        p = env.ctl("status")
        tap.ok(re.search(r"^Tenants: +2 ", out(p), re.M) and row_of(out(p), "alpha") and
               row_of(out(p), "beta"), "real daemon: status of two tenants", out(p))
        p = env.ctl("stats", "--prometheus")
        series = re.findall(r"^invited_pending(\S*) ", out(p), re.M)
        tap.eq(sorted(series), ['{tenant="alpha"}', '{tenant="beta"}'],
               "real daemon: a series per tenant, no sum beside")
    return True


def test_real_check(tap):
    """check end to end: the simulator's token roles and guest policy."""
    with Env(sim_args=["--roles", "User.Invite.All,Policy.Read.All"]) as env:
        p = env.ctl("check")
        tap.ok(p.returncode == 0 and re.search(r"^Result: +all is there$", out(p), re.M) and
               re.search(r"^Guests: +may be invited$", out(p), re.M),
               "real daemon: check, the roles are there and guests may be invited: 0",
               (p.returncode, out(p), err(p)))
    with Env(sim_args=["--roles", "Policy.Read.All", "--guests", "none"]) as env:
        p = env.ctl("check", "--tenant", "default")
        tap.ok(p.returncode == 1 and re.search(r"^Missing: +User\.Invite\.All$", out(p), re.M)
               and "/contoso.onmicrosoft.com/adminconsent?client_id=" in out(p) and
               re.search(r"^Guests: +may not be invited", out(p), re.M),
               "real daemon: check, User.Invite.All missing and no guests: 1, how to grant it",
               (p.returncode, out(p), err(p)))
    with Env(sim_args=["--roles", "User.Invite.All"]) as env:
        p = env.ctl("check", "--json")
        c = json.loads(out(p)) if p.stdout else {}
        tap.ok(p.returncode == (0 if c.get("all_ok") else 1) and c.get("guests") == "unknown"
               and c.get("guests_why"),
               "real daemon: without Policy.Read.All the guest policy is unknown, and why",
               (p.returncode, c))
    with Env(start=False) as env:
        with open(env.secret_path, "w") as f:
            f.write("not-the-secret\n")
        env.start_daemon()
        deadline = time.monotonic() + 20
        while True:
            p = env.ctl("check")
            if p.returncode != 78 or "AADSTS7000215" in out(p) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        tap.ok(p.returncode == 78 and "AADSTS7000215" in out(p) and "adminconsent" in out(p),
               "real daemon: check with a refused secret: 78 and the token endpoint's error",
               (p.returncode, out(p), err(p)))


def main(tap):
    with FakeDaemon() as fake:
        test_tenants(tap, fake)
        test_check(tap, fake)
        test_submit(tap, fake)
        test_jobs_show(tap, fake)
        test_status(tap, fake)
        test_stats(tap, fake)
        test_resume(tap, fake)
    if test_real_daemon(tap):
        test_real_check(tap)


if __name__ == "__main__":
    run(main)
