#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""invitectl's side of SPEC §8 (issue 12, ONBOARD.md's protocol) against a fake
daemon (fakectl.py) that answers what ONBOARD.md says the daemon answers:
what invitectl sends (submit's skip_existing and groups, show's new state
filters, resend's older_than_s and dry_run, track, retry's groups), what it
refuses before sending (a --group that is not a GUID, escaped; a bad
duration), what it prints (jobs' SKIPPED and ACCEPTED, show's summary and
RESULT markings, the results CSV's new columns neutralized and escaped,
--raw exact; resend and track in words), exit codes, the Prometheus names
and the bash completion of the new commands."""
import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess

from fakectl import FakeDaemon
from harness import INVITECTL, portal_file, run

G1 = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
G2 = "11111111-2222-3333-4444-555555555555"
G3 = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
HOSTILE_ERROR = "=cmd|' /C calc'!A0"
JOB = {"id": 7, "name": "Q4", "state": "running", "created_at": "2026-11-28T23:50:01.123Z",
       "finished_at": None, "submitted_by": {"uid": 0, "user": "root"}, "total": 5,
       "succeeded": 2, "failed": 1, "pending": 0, "cancelled": 0, "in_flight": 0,
       "skipped": 2, "group_failures": 2, "groups_pending": 1, "accepted": 1,
       "tracking": True, "tenant": "contoso", "directory": "contoso.onmicrosoft.com",
       "reason": None, "filename": "g.csv",
       "options": {"redirect_url": "https://myapplications.microsoft.com", "send_email": True,
                   "message": None, "language": None, "cc": None, "skip_existing": True,
                   "groups": [G1, G2]}}


def row(line, email, state, **kw):
    r = {"line": line, "email": email, "display_name": None, "state": state, "attempts": 1,
         "http_status": 201 if state == "succeeded" else None, "error_code": None,
         "error_message": None, "invited_user_id": None, "invite_redeem_url": None,
         "updated_at": "2026-11-28T23:51:00.000Z", "finished_at": "2026-11-28T23:51:00.000Z",
         "client_request_id": None, "existing": None, "groups": [], "accepted_at": None,
         "resends": 0}
    r.update(kw)
    return r


ROWS = [
    # a guest invited, in both groups, accepted, resent once, mailed
    row(4, "ana@partner.example", "succeeded", invited_user_id="u-ana",
        invite_redeem_url="https://login.example/redeem?a",
        groups=[{"id": G1, "state": "added", "error": None},
                {"id": G2, "state": "added", "error": None}],
        accepted_at="2026-11-29T08:00:00.000Z", resends=1,
        mail={"state": "sent", "error": None, "sent_at": "2026-11-28T23:51:02.000Z"}),
    # an existing guest, skipped; one addition refused (hostile reason), one pending
    row(5, "bo@partner.example", "skipped", attempts=0, http_status=None,
        invited_user_id="u-bo", existing={"type": "Guest", "state": "PendingAcceptance"},
        groups=[{"id": G1, "state": "failed", "error": HOSTILE_ERROR},
                {"id": G2, "state": "pending", "error": None}]),
    # an existing member, skipped, no groups
    row(6, "cy@contoso.example", "skipped", attempts=0, http_status=None,
        invited_user_id="u-cy", existing={"type": "Member", "state": None}),
    # succeeded, two failed additions (an ESC in one reason), one added
    row(7, "di@partner.example", "succeeded", invited_user_id="u-di",
        groups=[{"id": G1, "state": "failed", "error": "Guests \x1b[31mnot\x1b[0m allowed"},
                {"id": G2, "state": "added", "error": None},
                {"id": G3, "state": "failed", "error": None}]),
    # failed: no groups tried
    row(8, "ed@partner.example", "failed", http_status=400, error_code="BadRequest",
        error_message="Blocked"),
]


def ctl(fake, *args, sock=None):
    env = dict(os.environ, NO_COLOR="1", TZ="UTC")
    env.pop("INVITED_SOCKET", None)
    p = subprocess.run([INVITECTL, "-s", sock or fake.sock] + list(args), capture_output=True,
                       env=env, timeout=30)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def text(b):
    return b.decode("utf-8", "replace")


def row_of(out, first):
    for line in out.splitlines():
        if line.split() and line.split()[0] == first:
            return line
    return ""


def without_data(req):
    return {k: v for k, v in (req or {}).items() if k != "_data"}


def test_submit(tap, fake):
    fake.replies["submit"] = {"ok": True, "job": JOB, "warnings": []}
    path = os.path.join(fake.dir, "g.csv")
    with open(path, "wb") as f:
        f.write(portal_file([["ana@partner.example", "", "false", ""]]))
    fake.clear()
    rc, out, err = ctl(fake, "submit", "--skip-existing", "--group", G1, "--group",
                       G2.upper(), "--group", G1, path)
    tap.eq((rc, text(out)), (0, "7\n"), "submit --skip-existing --group: exit 0, the id")
    tap.eq(without_data(fake.last("submit")),
           {"op": "submit", "filename": "g.csv", "skip_existing": True, "groups": [G1, G2]},
           "submit sends skip_existing and groups (lowercased, a repeated id once)")
    fake.clear()
    ctl(fake, "submit", path)
    req = without_data(fake.last("submit"))
    tap.ok("skip_existing" not in req and "groups" not in req,
           "without the options, neither field is sent", req)

    hostile = "x\x1b[31m'red"
    fake.clear()
    rc, out, err = ctl(fake, "submit", "--group", G1, "--group", hostile, path)
    tap.ok(rc == 64 and "invitectl: --group 'x\\e[31m'red': not a group object id (GUID)\n"
           in err and "\x1b" not in err and fake.requests == [] and out == b"",
           "a --group that is not a GUID: 64, the value escaped, nothing sent", (rc, err))
    for bad in ("0f1e2d3c4b5a69788796a5b4c3d2e1f0", G1 + "0", G1[:-1] + "g", "{%s}" % G1,
                "", G1.replace("-", "_")):
        rc, out, err = ctl(fake, "submit", "--group", bad, path)
        tap.ok(rc == 64 and "not a group object id (GUID)" in err and fake.requests == [],
               "--group %r refused" % bad, err)
    many = []
    for i in range(65):
        many += ["--group", "%08x-0000-0000-0000-000000000000" % i]
    rc, out, err = ctl(fake, "submit", *(many + [path]))
    tap.ok(rc == 64 and "more than 64 groups" in err and fake.requests == [],
           "65 groups: 64, nothing sent", err)
    rc, out, err = ctl(fake, "submit", *(many[:128] + [path]))
    tap.ok(rc == 0 and len(fake.last("submit")["groups"]) == 64, "64 groups are sent", err)
    rc, out, err = ctl(fake, "validate", "--group", hostile, path)
    tap.ok(rc == 64 and "--group 'x\\e[31m'red'" in err, "validate checks --group too", err)
    rc, out, err = ctl(fake, "validate", "--skip-existing", "--group", G1, path)
    tap.ok(rc == 0 and "1 row, valid" in text(out), "validate accepts the options", err)
    fake.replies["submit"] = {"ok": False, "error": {
        "code": "usage", "message": "--skip-existing needs lookups: set [queue] lookup = yes "
        "for tenant 'contoso'"}}
    rc, out, err = ctl(fake, "submit", "--skip-existing", path)
    tap.ok(rc == 64 and "set [queue] lookup = yes for tenant 'contoso'" in err,
           "the daemon's refusal of --skip-existing: its words, 64", err)


def test_jobs(tap, fake):
    other = dict(JOB, id=9, name="plain", skipped=0, accepted=0, tenant="fabrikam")
    fake.replies["jobs"] = {"ok": True, "jobs": [other, JOB], "next": None}
    rc, out, err = ctl(fake, "jobs")
    lines = text(out).splitlines()
    tap.eq(lines[0].split() if lines else None,
           ["ID", "STATE", "SUBMITTED", "BY", "TENANT", "TOTAL", "SUCCESS", "FAILURE",
            "SKIPPED", "PENDING", "ACCEPTED", "NAME"], "jobs: SKIPPED and ACCEPTED columns")
    tap.eq(row_of(text(out), "7").split()[5:], ["contoso", "5", "2", "1", "2", "0", "1", "Q4"],
           "job 7: tenant, total, success, failure, skipped, pending, accepted, name")
    tap.eq(row_of(text(out), "9").split()[5:], ["fabrikam", "5", "2", "1", "0", "0", "0",
                                                "plain"], "job 9: zeros")
    tap.ok(all(len(l) >= lines[0].index("ACCEPTED") for l in lines), "aligned", text(out))
    rc, out, err = ctl(fake, "jobs", "--json")
    tap.eq(json.loads(out), [other, JOB], "jobs --json: the daemon's objects unchanged")


def test_show(tap, fake):
    fake.replies["job"] = {"ok": True, "job": JOB}
    fake.replies["rows"] = lambda req: {"ok": True, "next": None, "rows": ROWS if "state" not in
                                        req else [r for r in ROWS if r["line"] in (5, 7)]}
    rc, out, err = ctl(fake, "show", "--no-pager", "7")
    o = text(out)
    tap.eq(rc, 0, "show exits 0")
    for key, value in (("Skipped", "2"), ("Accepted", "1"), ("Group failures", "2"),
                       ("Groups pending", "1")):
        tap.ok(re.search(r"^%s: +%s$" % (key, value), o, re.M), "summary: %s" % key, o)
    tap.ok(o.index("Failed:") < o.index("Skipped:") < o.index("Pending:") <
           o.index("Accepted:") < o.index("Group failures:") < o.index("Groups pending:"),
           "summary lines in order", o)
    tap.ok(re.search(r"^ *4 +ana@partner\.example +succeeded +1 +u-ana$", o, re.M),
           "a succeeded row, groups added: the user id alone", row_of(o, "4"))
    b = row_of(o, "5")
    tap.ok(b.endswith("existing Guest u-bo (PendingAcceptance) [group failed: %s: %s] "
                      "[groups pending]" % (G1, HOSTILE_ERROR)) and " skipped " in b,
           "a skipped guest: existing Guest <id> (state), the failed group, pending", b)
    tap.ok(row_of(o, "6").endswith("existing Member u-cy"), "a skipped member: existing Member",
           row_of(o, "6"))
    d = row_of(o, "7")
    tap.ok(d.endswith("u-di [group failed: %s: Guests \\e[31mnot\\e[0m allowed; +1 more]" % G1),
           "several failed groups: the first, escaped, +N more", d)
    tap.ok("\x1b" not in o, "no raw ESC anywhere", o)
    tap.ok(row_of(o, "8").endswith("Blocked (BadRequest, HTTP 400)"),
           "a failed row as before", row_of(o, "8"))
    for state in ("skipped", "accepted", "not-accepted", "group-failed", "succeeded"):
        fake.clear()
        rc, out, err = ctl(fake, "show", "--no-pager", "--state", state, "7")
        tap.ok(rc == 0 and fake.last("rows") == {"op": "rows", "id": 7, "limit": 1000,
                                                  "state": state},
               "show --state %s: sent as the rows request's state" % state, fake.last("rows"))
    fake.clear()
    rc, out, err = ctl(fake, "show", "--state", "accepted!", "7")
    tap.ok(rc == 64 and "group-failed" in err and fake.requests == [],
           "an unknown state: 64, the states listed, nothing sent", err)
    rc, out, err = ctl(fake, "show", "--json", "7")
    tap.eq(json.loads(out), {"job": JOB, "rows": ROWS}, "show --json: exact")
    old = {k: v for k, v in JOB.items() if k not in ("skipped", "accepted", "group_failures",
                                                     "groups_pending", "tracking")}
    fake.replies["job"] = {"ok": True, "job": old}
    rc, out, err = ctl(fake, "show", "--no-pager", "7")
    tap.ok(rc == 0 and "Skipped:" not in text(out) and "Group failures:" not in text(out),
           "a daemon from before §8: no lines for counts it does not send", text(out))


NEW_COLUMNS = ["existing_type", "groups_state", "group_errors", "mail_state", "mail_sent_at",
               "accepted_at", "resends"]


def test_results(tap, fake):
    header = ["Email address to invite [inviteeEmail] Required", "Groups [groups]"]
    fields = {4: ["ana@partner.example", G1], 5: ["bo@partner.example", ""],
              6: ["cy@contoso.example", ""], 7: ["di@partner.example", ""],
              8: ["ed@partner.example", ""]}
    fake.replies["rows"] = lambda req: {
        "ok": True, "next": None, "columns": header,
        "rows": [dict(r, fields=fields[r["line"]]) for r in ROWS]}
    fake.clear()
    rc, out, err = ctl(fake, "results", "7")
    tap.eq(fake.last("rows"), {"op": "rows", "id": 7, "limit": 1000, "input": True},
           "results asks for the input cells")
    table = list(csv.reader(io.StringIO(text(out))))
    tap.eq(table[0] if table else None, header + [
        "status", "http_status", "error_code", "error_message", "invited_user_id",
        "invite_redeem_url", "attempts", "finished_at"] + NEW_COLUMNS,
        "results: the new columns at the end, in order")
    by = {r[0]: dict(zip(table[0], r)) for r in table[1:]}
    a = by.get("ana@partner.example", {})
    tap.eq([a.get(c) for c in NEW_COLUMNS],
           ["", "added", "", "sent", "2026-11-28T23:51:02.000Z", "2026-11-29T08:00:00.000Z",
            "1"], "a mailed, accepted, resent guest in its groups")
    b = by.get("bo@partner.example", {})
    tap.eq([b.get(c) for c in NEW_COLUMNS[:4]] + [b.get("status"), b.get("invited_user_id")],
           ["Guest", "failed", "%s: %s" % (G1, HOSTILE_ERROR), "", "skipped", "u-bo"],
           "a skipped guest: type, the worst state (failed over pending), the error")
    c = by.get("cy@contoso.example", {})
    tap.eq([c.get(k) for k in NEW_COLUMNS], ["Member", "", "", "", "", "", "0"],
           "a member without groups: empty cells, 0 resends")
    d = by.get("di@partner.example", {})
    tap.eq(d.get("group_errors"),
           "%s: Guests \\e[31mnot\\e[0m allowed; %s: failed" % (G1, G3),
           "group_errors: 'ID: error; ID: error', the ESC escaped")
    tap.ok(b"\x1b" not in out, "no raw ESC in the CSV")

    # group_errors starts with the group's id, so Graph's "=cmd|..." above
    # is never a cell's start; every new cell still goes through the rule:
    # hostile values in each (a daemon, or a store, not to be trusted)
    hostile = [dict(ROWS[1], fields=["x@partner.example", ""], existing={
        "type": "=HYPERLINK(\"http://evil\")", "state": None},
        mail={"state": "@SUM(1+1)", "sent_at": "-2+3", "error": None},
        accepted_at="+1", groups=[{"id": HOSTILE_ERROR, "state": "failed",
                                   "error": "x\x1b]0;t\x07"}])]
    fake.replies["rows"] = {"ok": True, "next": None, "columns": header, "rows": hostile}
    rc, out, err = ctl(fake, "results", "7")
    table = list(csv.reader(io.StringIO(text(out))))
    h = dict(zip(table[0], table[1])) if len(table) > 1 else {}
    tap.eq([h.get(k) for k in NEW_COLUMNS[:6]],
           ["'=HYPERLINK(\"http://evil\")", "failed", "'%s: x\\e]0;t\\x07" % HOSTILE_ERROR,
            "'@SUM(1+1)", "'-2+3", "'+1"],
           "hostile new cells: a leading ' on formulas, controls escaped")
    tap.ok(b"\x1b" not in out and b"\x07" not in out, "no raw control byte")
    rc, out, err = ctl(fake, "results", "--raw", "7")
    table = list(csv.reader(io.StringIO(text(out))))
    h = dict(zip(table[0], table[1])) if len(table) > 1 else {}
    tap.eq([h.get(k) for k in NEW_COLUMNS[:6]],
           ["=HYPERLINK(\"http://evil\")", "failed", "%s: x\x1b]0;t\x07" % HOSTILE_ERROR,
            "@SUM(1+1)", "-2+3", "+1"], "results --raw: the new cells exact")
    path = os.path.join(fake.dir, "r.csv")
    rc, out2, err = ctl(fake, "results", "-o", path, "7")
    rc, out, err = ctl(fake, "results", "7")
    tap.eq(open(path, "rb").read(), out, "results -o FILE: the same neutralized CSV")


def test_resend(tap, fake):
    def resend(req):
        n = 0 if req["id"] == 8 else 120
        rows = [{"line": 4 + i, "email": "g%d@partner.example" % i, "resends": i % 3}
                for i in range(min(n, 100))]
        rows[1:2] = [{"line": 5, "email": "evil\x1b[2J@partner.example", "resends": 2}] \
            if rows else []
        return {"ok": True, "job": dict(JOB, id=req["id"]), "changed": n, "rows": rows}
    fake.replies["resend"] = resend
    fake.clear()
    rc, out, err = ctl(fake, "resend", "7")
    tap.ok(rc == 0 and fake.requests == [{"op": "resend", "id": 7}] and
           err == "Job 7: 120 rows re-invited\n" and out == b"",
           "resend JOB: {\"op\":\"resend\",\"id\":7}; says how many", (rc, err, fake.requests))
    for arg, secs in (("90", 90), ("90s", 90), ("30m", 1800), ("1.5h", 5400), ("7d", 604800),
                      ("0.5s", 0), ("2.25d", 194400)):
        fake.clear()
        rc, out, err = ctl(fake, "resend", "--older-than", arg, "7")
        tap.ok(rc == 0 and fake.last("resend") == {"op": "resend", "id": 7,
                                                    "older_than_s": secs},
               "--older-than %s: older_than_s %d" % (arg, secs), fake.last("resend"))
    for bad in ("", "1w", "-5m", "+5", "5 m", "5mm", "1.", ".5h", "m", "3650000d", "1e3",
                "5\x1b[1m"):
        fake.clear()
        rc, out, err = ctl(fake, "resend", "--older-than", bad, "7")
        tap.ok(rc == 64 and fake.requests == [] and "--older-than" in err and "\x1b" not in err,
               "--older-than %r: 64, nothing sent" % bad, err)
    fake.clear()
    rc, out, err = ctl(fake, "resend", "--dry-run", "--older-than", "1d", "7")
    o = text(out)
    tap.eq(fake.requests, [{"op": "resend", "id": 7, "older_than_s": 86400, "dry_run": True}],
           "resend --dry-run --older-than 1d: dry_run and older_than_s sent")
    lines = o.splitlines()
    tap.ok(rc == 0 and "Job 7: 120 rows would be re-invited\n" in err and
           lines[0].split() == ["LINE", "EMAIL", "RESENDS"] and len(lines) == 101 and
           re.search(r"^ *4 +g0@partner\.example +0$", o, re.M) and
           "... and 20 more" in err,
           "--dry-run: how many would be, the first rows (LINE EMAIL RESENDS), the rest counted",
           (err, lines[:4]))
    tap.ok(re.search(r"^ *5 +evil\\e\[2J@partner\.example +2$", o, re.M) and "\x1b" not in o,
           "--dry-run rows through the table's escaping", row_of(o, "5"))
    rc, out, err = ctl(fake, "resend", "--dry-run", "8")
    tap.ok(rc == 0 and err == "Job 8: 0 rows would be re-invited\n" and out == b"",
           "nothing to resend: 0 rows, no table", (err, out))
    rc, out, err = ctl(fake, "resend", "--json", "--dry-run", "7")
    j = json.loads(out) if rc == 0 else {}
    tap.ok(j.get("changed") == 120 and len(j.get("rows", [])) == 100 and j["job"]["id"] == 7
           and "ok" not in j, "resend --json: the reply's job, changed and rows", j.keys())
    for code, want in (("not_found", 64), ("permission_denied", 77), ("usage", 64),
                       ("temporary", 75)):
        fake.replies["resend"] = {"ok": False, "error": {"code": code, "message": "no: %s" % code,
                                                         "rule": "owner"}}
        rc, out, err = ctl(fake, "resend", "7")
        tap.ok(rc == want and "no: %s" % code in err, "resend, %s: exit %d" % (code, want),
               (rc, err))
    rc, out, err = ctl(fake, "resend", "7", sock=os.path.join(fake.dir, "nothing.sock"))
    tap.eq(rc, 69, "resend, no daemon: 69")
    rc, out, err = ctl(fake, "resend")
    tap.ok(rc == 64 and "missing JOB" in err, "resend without JOB: 64", err)


def test_track_retry(tap, fake):
    fake.replies["track"] = lambda req: {"ok": True, "job": dict(JOB, id=req["id"],
                                                               tracking=req["id"] != 8),
                                         "changed": 1234 if req["id"] == 7 else 0}
    fake.clear()
    rc, out, err = ctl(fake, "track", "7")
    tap.ok(rc == 0 and fake.requests == [{"op": "track", "id": 7}] and
           err == "Job 7: acceptance check of 1,234 rows brought forward\n",
           "track JOB: {\"op\":\"track\",\"id\":7}; says how many", (err, fake.requests))
    rc, out, err = ctl(fake, "track", "8")
    tap.ok(rc == 0 and "not tracked" in err and "track_days" in err,
           "track of a job not tracked: said, with the key", err)
    rc, out, err = ctl(fake, "track", "--json", "7")
    tap.ok(rc == 0 and json.loads(out).get("changed") == 1234, "track --json", out)
    fake.replies["track"] = {"ok": False, "error": {"code": "not_found", "message": "no job 99"}}
    rc, out, err = ctl(fake, "track", "99")
    tap.ok(rc == 64 and "no job 99" in err, "track of no job: 64", err)
    fake.replies["track"] = {"ok": False, "error": {"code": "permission_denied", "rule": "owner",
                                                    "message": "job 7 belongs to alice"}}
    rc, out, err = ctl(fake, "track", "7")
    tap.ok(rc == 77 and "belongs to alice" in err, "track of another's job: 77", err)

    fake.replies["retry"] = lambda req: {"ok": True, "job": JOB,
                                         "changed": 3 if req.get("groups") else 0}
    fake.clear()
    rc, out, err = ctl(fake, "retry", "--groups", "7")
    tap.ok(rc == 0 and fake.requests == [{"op": "retry", "id": 7, "groups": True}] and
           err == "Job 7: re-queued 3 failed group additions\n",
           "retry --groups: groups true; says how many additions", (err, fake.requests))
    fake.replies["retry"] = {"ok": True, "job": JOB, "changed": 0}
    rc, out, err = ctl(fake, "retry", "--groups", "7")
    tap.ok(rc == 0 and "no failed group additions to re-queue" in err, "nothing to retry", err)
    fake.clear()
    rc, out, err = ctl(fake, "retry", "7")
    tap.eq(fake.requests, [{"op": "retry", "id": 7}], "retry without --groups: as before")
    fake.clear()
    rc, out, err = ctl(fake, "retry", "--groups", "--error-code", "X", "7")
    tap.ok(rc == 64 and fake.requests == [], "--groups and --error-code: 64", err)


STATS = {"requests_total": 30, "lookups_total": 12, "lookups_found_total": 4,
         "group_additions_total": 20, "group_failures_total": 2, "tracking_reads_total": 40,
         "accepted_total": 9, "resends_total": 3, "group_additions_pending": 5}
HELP = {"lookups_total": "Users looked up", "lookups_found_total": "Lookups that found",
        "group_additions_total": "Group member additions done",
        "group_failures_total": "Group member additions that failed",
        "tracking_reads_total": "Guests read", "accepted_total": "Guests seen to have accepted",
        "resends_total": "Invitations sent again",
        "group_additions_pending": "Group member additions not yet"}


def test_stats(tap, fake):
    fake.replies["stats"] = {"ok": True, "stats": dict(STATS, tenants=[
        dict(STATS, name="contoso")])}
    rc, out, err = ctl(fake, "stats", "--prometheus")
    o = text(out)
    for key, help_start in HELP.items():
        kind = "counter" if key.endswith("_total") else "gauge"
        tap.ok(re.search(r"^# HELP invited_%s %s" % (key, help_start), o, re.M) and
               re.search(r"^# TYPE invited_%s %s$" % (key, kind), o, re.M) and
               re.search(r'^invited_%s\{tenant="contoso"\} %d$' % (key, STATS[key]), o, re.M),
               "invited_%s: its HELP, TYPE %s, the sample" % (key, kind))
    promtool = shutil.which("promtool")
    if promtool:
        chk = subprocess.run([promtool, "check", "metrics"], input=out, capture_output=True,
                             timeout=30)
        tap.eq((chk.returncode, chk.stdout.decode() + chk.stderr.decode()), (0, ""),
               "promtool check metrics: no error, no lint warning")
    else:
        tap.diag("promtool is not installed: the format check is skipped")


BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
COMPLETION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "client",
                          "invitectl.bash")


def complete(line):
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
    bindir = os.path.dirname(os.path.abspath(INVITECTL))
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                       env=env, timeout=30)
    return sorted(w for w in p.stdout.decode().split("\n") if w)


def test_completion(tap, fake):
    if not os.path.exists(BASH_COMPLETION):
        tap.diag("bash-completion is not installed: completion checks skipped")
        return
    tap.eq(complete("invitectl re"), ["reload", "resend", "results", "resume", "retry"],
           "completion: resend")
    tap.eq(complete("invitectl tr"), ["track"], "completion: track")
    tap.eq(complete("invitectl resend --"), ["--dry-run", "--help", "--json", "--older-than",
                                             "--socket"], "resend's options")
    tap.eq(complete("invitectl retry --g"), ["--groups"], "retry's --groups")
    tap.eq(complete("invitectl submit --s"), ["--send-email", "--skip-existing", "--socket"],
           "submit's --skip-existing")
    tap.eq(complete("invitectl validate --gr"), ["--group"], "validate's --group")
    tap.eq(complete("invitectl show --state "), sorted(
        ["pending", "in_flight", "succeeded", "failed", "cancelled", "skipped", "accepted",
         "not-accepted", "group-failed"]), "show's states")
    fake.replies["jobs"] = {"ok": True, "jobs": [JOB], "next": None}
    tap.eq(complete("invitectl -s %s track " % fake.sock), ["7"], "job ids after track")
    tap.eq(complete("invitectl --group "), [], "nothing offered for a group id")


def test_help(tap, fake):
    for cmd in ("resend", "track"):
        p = subprocess.run([INVITECTL, cmd, "--help"], capture_output=True, timeout=10)
        tap.ok(p.returncode == 0 and p.stdout.startswith(b"Usage: invitectl " + cmd.encode()),
               "invitectl %s --help" % cmd, p.stdout)
    p = subprocess.run([INVITECTL, "--help"], capture_output=True, timeout=10)
    tap.ok(b"\n  resend " in p.stdout and b"\n  track " in p.stdout,
           "invitectl --help lists resend and track")


def main(tap):
    with FakeDaemon() as fake:
        for t in (test_submit, test_jobs, test_show, test_results, test_resend,
                  test_track_retry, test_stats, test_completion, test_help):
            t(tap, fake)


if __name__ == "__main__":
    run(main)
