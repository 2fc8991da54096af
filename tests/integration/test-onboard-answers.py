#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every new failure answer of GRAPH.md §6 against the real daemon (issue
12, SPEC §8), and in each the rule that a row an invitation made
`succeeded` never becomes `failed`:

- lookups refused (403, no User.Read.All): said once in the daemon's log,
  the job goes on without lookups (rows invited, none failed, none skipped);
- a group that refuses guests: that addition failed with Graph's message,
  the row stays succeeded, the job's group_failures counts it, show and
  results mark it; `retry --groups` sends only the failed additions again;
- 429 on reads (the simulator's read limit): lookups slowed and retried,
  every row ends right, the invitations unaffected (each address once);
- group additions refused (403, no GroupMember.ReadWrite.All): additions
  failed with the reason, rows succeeded; once the permission is granted
  (the simulator restarted with it, the same directory), `retry --groups`
  adds them, and sends no invitation;
- a group that does not exist (404, retried for up to 10 minutes): still
  pending with retries after several seconds (the test does not wait 10
  minutes), the job not completed; cancel leaves the rows succeeded."""
import csv
import io
import json
import os
import time

from harness import SLOW, Env, deadline_wait, portal_file, run

TENANT = "contoso.onmicrosoft.com"
G1 = "aaaaaaaa-0000-4000-8000-000000000001"
G2 = "aaaaaaaa-0000-4000-8000-000000000002"
GR = "aaaaaaaa-0000-4000-8000-0000000000ee"  # refuses guests
GX = "aaaaaaaa-0000-4000-8000-0000000000ff"  # does not exist
REFUSED = "Guest users cannot be added to this group"
FAST = {"rate": "500", "burst": "20", "concurrency": "8", "lookup_rate": "200",
        "group_rate": "200", "track_rate": "200"}


def emails(prefix, n):
    return ["%s%03d@partner.example" % (prefix, i) for i in range(n)]


def submit(env, tap, addresses, *opts, what=""):
    path = env.write("%s.csv" % (what or "job"),
                     portal_file([[a, "", "false", ""] for a in addresses]))
    p, job = env.ctl_json("submit", path, *opts)
    tap.ok(p.returncode == 0 and job, "%s: submit %s" % (what, " ".join(opts)),
           p.stderr.decode()[-400:])
    return (job or {}).get("id")


def show(env, jid, state=None):
    p, j = env.ctl_json("show", str(jid), *(["--state", state] if state else []))
    return (j or {}).get("job", {}), (j or {}).get("rows", [])


def wait_done(env, tap, jid, what, timeout=60):
    """Until the job is completed (rows terminal, no addition pending)."""
    try:
        return deadline_wait(lambda: (lambda j: j.get("state") == "completed" and j)(
            show(env, jid, "failed")[0]), timeout * SLOW, "%s: job %s completed" % (what, jid), step=0.2)
    except TimeoutError as e:
        j = show(env, jid, "failed")[0]
        tap.ok(False, "%s: the job completes within %d s" % (what, timeout * SLOW),
               "%s\n%s\n%s" % (e, json.dumps(j), env.log()[-2000:]))
        return j


def none_failed(tap, env, jid, n, what, skipped=0):
    """The rule of every case: no row failed, every row succeeded (or skipped)."""
    job, rows = show(env, jid)
    states = sorted({r["state"] for r in rows})
    tap.eq((job.get("succeeded"), job.get("failed"), job.get("skipped", 0), len(rows)),
           (n - skipped, 0, skipped, n),
           "%s: every row succeeded%s, none failed (succeeded, failed, skipped, rows; states %s)"
           % (what, " or skipped" if skipped else "", states))
    return job, rows


def sim_dir_stats(env):
    return env.sim_stats()["tenants"][TENANT].get("directory", {})


def lookups_refused(tap):
    what = "lookups 403"
    with Env(directory={"roles": "User.Invite.All,GroupMember.ReadWrite.All",
                        "seed_members": 3, "member_pattern": "lr00{n}@partner.example"},
             queue=dict(FAST, lookup="yes")) as env:
        addrs = emails("lr", 40)  # lr001..lr003 are members: not found without lookups
        jid = submit(env, tap, addrs, "--skip-existing", what=what)
        if not jid:
            return
        wait_done(env, tap, jid, what)
        none_failed(tap, env, jid, len(addrs), what)
        rec = env.record()
        tap.eq(sorted(r["address"] for r in rec), sorted(addrs),
               "%s: the job went on without lookups: every address invited once" % what)
        lines = [l for l in env.log().splitlines() if "User.Read.All" in l]
        tap.ok(len(lines) == 1, "%s: said once in the daemon's log, naming User.Read.All (%d lines)"
               % (what, len(lines)), "\n".join(lines[:5]) or env.log()[-1500:])
        look = sim_dir_stats(env).get("lookups", {})
        tap.ok(set(look) <= {"403"} and int(look.get("403", 0)) < len(addrs),
               "%s: lookups stopped after the refusal, not one per row (the simulator answered "
               "%s)" % (what, look))


def refusing_group(tap):
    what = "group refuses guests"
    with Env(directory={"groups": [G1], "refusing_groups": [GR]},
             queue=dict(FAST)) as env:
        addrs = emails("rg", 20)
        jid = submit(env, tap, addrs, "--group", G1, "--group", GR, what=what)
        if not jid:
            return
        job = wait_done(env, tap, jid, what)
        job, rows = none_failed(tap, env, jid, len(addrs), what)
        tap.eq((job.get("group_failures"), job.get("groups_pending")), (20, 0),
               "%s: group_failures 20, none pending" % what)
        bad = []
        for r in rows:
            g = {x["id"].lower(): x for x in r.get("groups") or []}
            if (g.get(G1, {}).get("state") != "added" or g.get(GR, {}).get("state") != "failed"
                    or REFUSED not in (g.get(GR, {}).get("error") or "")):
                bad.append((r["line"], r.get("groups")))
        tap.ok(not bad, "%s: G1 added, the refusing group failed with Graph's message" % what,
               bad[:3])
        members = env.sim_get("members", TENANT)["members"]
        tap.eq(sorted({(m["group"], m["address"]) for m in members}), sorted((G1, a) for a in addrs),
               "%s: the simulator holds the 20 in G1 and none in the refusing group" % what)
        tap.eq(len(show(env, jid, "group-failed")[1]), 20, "%s: show --state group-failed: 20" % what)
        p = env.ctl("show", str(jid))
        text = p.stdout.decode()
        tap.ok(text.count("[group failed: %s" % GR) == 20,
               "%s: show marks each row [group failed: ID: reason]" % what, text[-600:])
        p = env.ctl("results", str(jid))
        table = list(csv.DictReader(io.StringIO(p.stdout.decode("utf-8-sig"))))
        tap.ok(len(table) == 20 and all(t.get("status") == "succeeded" and
                                        t.get("groups_state") == "failed" and
                                        GR in (t.get("group_errors") or "") and
                                        REFUSED in (t.get("group_errors") or "") for t in table),
               "%s: results: succeeded, groups_state failed, group_errors with the id and reason"
               % what, table[:1])
        p, st = env.ctl_json("stats")
        tap.eq((st.get("group_failures_total"), st.get("group_additions_total")), (20, 20),
               "%s: stats group_failures_total 20, group_additions_total 20" % what)

        # retry --groups: only the failed additions go again (and fail again)
        before = sim_dir_stats(env).get("additions", {})
        n_rec = len(env.record())
        p, res = env.ctl_json("retry", str(jid), "--groups")
        tap.ok(p.returncode == 0 and res and res.get("changed") == 20,
               "%s: retry --groups re-queues the 20 failed additions" % what,
               (p.returncode, p.stderr.decode()[-300:], res and res.get("changed")))
        try:
            deadline_wait(lambda: sum(int(v) for v in sim_dir_stats(env).get("additions", {})
                                      .values()) >= sum(int(v) for v in before.values()) + 20,
                          30 * SLOW, "the retried additions", step=0.2)
        except TimeoutError as e:
            tap.diag(str(e))
        wait_done(env, tap, jid, what + " retried")
        after = sim_dir_stats(env).get("additions", {})
        delta = {k: int(after.get(k, 0)) - int(before.get(k, 0)) for k in set(after) | set(before)}
        delta = {k: v for k, v in delta.items() if v}
        tap.eq(delta, {"400": 20}, "%s: exactly the 20 refused additions were sent again, "
               "none for G1 (status deltas)" % what)
        tap.eq(len(env.record()), n_rec, "%s: retry --groups sent no invitation" % what)
        job, rows = none_failed(tap, env, jid, len(addrs), what + " retried")
        tap.eq(job.get("group_failures"), 20, "%s: still 20 group failures" % what)


def read_throttled(tap):
    what = "429 on reads"
    with Env(directory={"read_rate": 4, "read_period": 1, "seed_members": 5,
                        "member_pattern": "rt00{n}@partner.example", "accept_after_ms": 300},
             queue=dict(FAST, lookup="yes", lookup_rate="50", track_days="1",
                        track_interval="1s", track_rate="50")) as env:
        addrs = emails("rt", 30)  # rt001..rt005 exist
        t0 = time.monotonic()
        jid = submit(env, tap, addrs, "--skip-existing", what=what)
        if not jid:
            return
        wait_done(env, tap, jid, what, timeout=90)
        tap.diag("%s: %.1f s for 30 lookups at 4 per second" % (what, time.monotonic() - t0))
        job, rows = none_failed(tap, env, jid, len(addrs), what, skipped=5)
        skipped = sorted(r["email"] for r in rows if r["state"] == "skipped")
        tap.eq(skipped, ["rt00%d@partner.example" % i for i in range(1, 6)],
               "%s: exactly the five existing users are skipped" % what)
        look = sim_dir_stats(env).get("lookups", {})
        tap.ok(int(look.get("429", 0)) > 0 and int(look.get("200", 0)) == len(addrs),
               "%s: the simulator answered some lookups 429 and each row's lookup was done once "
               "(%s)" % (what, look))
        rec = env.record()
        tap.eq(sorted(r["address"] for r in rec), sorted(a for a in addrs if a not in skipped),
               "%s: the 25 new addresses invited once each, the existing ones not" % what)
        inv = env.sim_stats()["invitation_status"]
        tap.eq(inv, {"201": 25}, "%s: invitations unaffected: 25 answered 201, no 429" % what)
        # tracking reads under the same read limit: slowed, and every guest's
        # acceptance seen in the end
        try:
            deadline_wait(lambda: show(env, jid, "failed")[0].get("accepted") == 25, 60 * SLOW,
                          "the 25 guests' acceptance", step=0.3)
        except TimeoutError as e:
            tap.diag(str(e))
        job, rows = none_failed(tap, env, jid, len(addrs), what + " tracked", skipped=5)
        reads = sim_dir_stats(env).get("reads", {})
        tap.ok(job.get("accepted") == 25 and int(reads.get("200", 0)) >= 25,
               "%s: tracking under the read limit sees the 25 guests accept (accepted %s; reads "
               "answered %s; lookups %s)" % (what, job.get("accepted"), reads,
                                             sim_dir_stats(env).get("lookups")))
        tap.eq(env.sim_stats()["invitation_status"], {"201": 25},
               "%s: tracking sent no invitation" % what)


def additions_refused(tap):
    what = "additions 403"
    with Env(directory={"roles": "User.Invite.All,User.Read.All", "groups": [G1, G2]},
             queue=dict(FAST)) as env:
        addrs = emails("ar", 15)
        jid = submit(env, tap, addrs, "--group", G1, "--group", G2, what=what)
        if not jid:
            return
        wait_done(env, tap, jid, what)
        job, rows = none_failed(tap, env, jid, len(addrs), what)
        tap.eq((job.get("group_failures"), job.get("groups_pending")), (15, 0),
               "%s: group_failures 15 (each row), none pending" % what)
        bad = [(r["line"], r.get("groups")) for r in rows
               if sorted((g["id"].lower(), g["state"]) for g in r.get("groups") or [])
               != [(G1, "failed"), (G2, "failed")]
               or not all(g.get("error") for g in r.get("groups"))]
        tap.ok(not bad, "%s: both additions failed with a reason" % what, bad[:2])
        reasons = {g.get("error") for r in rows for g in r.get("groups") or []}
        tap.ok(any("GroupMember.ReadWrite.All" in (x or "") or "Insufficient privileges" in (x or "")
                   for x in reasons), "%s: the reason names the permission or Graph's message: %s"
               % (what, sorted(x or "" for x in reasons)[:2]))
        # the admin grants GroupMember.ReadWrite.All: the same directory,
        # restarted with the role (a new token is needed: the old one is
        # unknown to the new simulator, and has the old roles)
        users = env.sim_get("users", TENANT)["users"]
        dirfile = env.write("directory.json", json.dumps(
            [{"mail": u["mail"], "userType": u["userType"], "id": u["id"],
              "externalUserState": u["externalUserState"]} for u in users]).encode())
        env.restart_sim(sim_args=["--directory", dirfile], directory={"groups": [G1, G2]})
        n_rec = len(env.record())
        p, res = env.ctl_json("retry", str(jid), "--groups")
        tap.ok(p.returncode == 0 and res and res.get("changed") == 30,
               "%s: retry --groups re-queues the 30 failed additions" % what,
               (p.returncode, p.stderr.decode()[-300:], res and res.get("changed")))
        job = wait_done(env, tap, jid, what + " retried")
        job, rows = none_failed(tap, env, jid, len(addrs), what + " retried")
        tap.eq((job.get("group_failures"), job.get("groups_pending")), (0, 0),
               "%s: after the grant and retry --groups, no group failure left" % what)
        members = env.sim_get("members", TENANT)["members"]
        tap.eq(sorted((m["group"], m["address"]) for m in members),
               sorted((g, a) for g in (G1, G2) for a in addrs),
               "%s: every row is in both groups now" % what)
        tap.eq(len(env.record()), n_rec, "%s: no invitation was sent again" % what)
        tap.eq(sorted(r["address"] for r in env.record()), sorted(addrs),
               "%s: each address was invited once in all" % what)


def missing_group(tap):
    what = "group 404"
    with Env(directory={"groups": [G1]}, queue=dict(FAST)) as env:
        addrs = emails("mg", 5)
        jid = submit(env, tap, addrs, "--group", G1, "--group", GX, what=what)
        if not jid:
            return

        def n404():
            return int(sim_dir_stats(env).get("additions", {}).get("404", 0))
        # a retry for some row (the second 404 of one of the five): bounded
        try:
            deadline_wait(lambda: n404() > len(addrs), 45 * SLOW, "a retried 404 addition", step=0.25)
        except TimeoutError as e:
            tap.diag(str(e))
        t_first = time.monotonic()
        deadline_wait(lambda: time.monotonic() > t_first + 3, 10, "three more seconds", step=0.25)
        job, rows = show(env, jid)
        tap.ok(n404() > len(addrs), "%s: the additions to the missing group are retried "
               "(%d 404s for %d rows)" % (what, n404(), len(addrs)))
        bad = [(r["line"], r["state"], r.get("groups")) for r in rows
               if r["state"] != "succeeded" or
               {g["id"].lower(): g["state"] for g in r.get("groups") or []} != {G1: "added",
                                                                               GX: "pending"}]
        tap.ok(not bad, "%s: rows succeeded, G1 added, the missing group still pending" % what,
               bad[:2])
        tap.eq((job.get("state") != "completed", job.get("groups_pending"), job.get("failed")),
               (True, 5, 0), "%s: the job is not completed while additions are pending "
               "(not completed, groups_pending, failed; state %s)" % (what, job.get("state")))
        p, res = env.ctl_json("cancel", str(jid))
        tap.eq(p.returncode in (0, 1), True, "%s: cancel answers (%d)" % (what, p.returncode))
        try:
            deadline_wait(lambda: show(env, jid)[0].get("state") in ("cancelled", "completed"),
                          20 * SLOW, "the cancelled job to end", step=0.2)
        except TimeoutError as e:
            tap.diag(str(e))
        job, rows = show(env, jid)
        tap.ok(all(r["state"] == "succeeded" and r["invited_user_id"] for r in rows)
               and job.get("failed") == 0 and job.get("succeeded") == 5,
               "%s: cancel leaves the succeeded rows succeeded (job %s)" % (what, job.get("state")),
               [(r["line"], r["state"]) for r in rows])
        tap.ok(job.get("state") in ("cancelled", "completed") and job.get("groups_pending") == 0,
               "%s: after cancel, no addition is left pending (state %s, groups_pending %s)"
               % (what, job.get("state"), job.get("groups_pending")))


def main(tap):
    for case in (lookups_refused, refusing_group, read_throttled, additions_refused,
                 missing_group):
        t0 = time.monotonic()
        try:
            case(tap)
        except Exception as e:  # one case's crash must not hide the others'
            import traceback
            tap.ok(False, "%s raised %s" % (case.__name__, type(e).__name__),
                   traceback.format_exc())
        tap.diag("%s: %.1f s" % (case.__name__, time.monotonic() - t0))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    run(main)
