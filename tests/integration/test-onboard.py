#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Issue 12's first acceptance point (SPEC §8), scaled to seconds: a
2,000-row job with --skip-existing, --group G1 --group G2 and a per-row
Groups column, track_days = 1, track_interval = 2s, against a simulator
seeded with 100 members and 100 existing guests among the addresses, 5% of
first group additions answered 404 and half of the guests accepting after
a few seconds:

- 200 rows skipped (100 Member, 100 Guest in existing.type, the user's id),
  1,800 succeeded, no invitation to an existing user;
- every succeeded or skipped-guest row in both groups (and its own groups)
  by the simulator's membership record, no addition for a skipped member;
  the 404s were retried and done;
- ACCEPTED rises as the simulator's guests accept; show --state
  accepted/not-accepted agree with the simulator;
- resend --older-than --dry-run names exactly the not-accepted succeeded
  rows and sends nothing; resend re-invites exactly those (a second
  invitation each, nobody else, resends 1, a new redeem URL), audited;
- the results CSV columns existing_type, groups_state, group_errors,
  accepted_at and resends say the same."""
import csv
import io
import random
import time

from harness import SLOW, Env, deadline_wait, run

TENANT = "contoso.onmicrosoft.com"
G1 = "aaaaaaaa-0000-4000-8000-000000000001"
G2 = "aaaaaaaa-0000-4000-8000-000000000002"
G3 = "aaaaaaaa-0000-4000-8000-000000000003"  # only in rows' Groups column
G4 = "AAAAAAAA-0000-4000-8000-000000000004"  # upper case in the file
N, MEMBERS, GUESTS = 2000, 100, 100
ACCEPT_MS = 4000


def addr(n):
    return "user%d@partner.example" % n


def rows_of(env, job, state=None):
    args = ["show", str(job)] + (["--state", state] if state else [])
    p, j = env.ctl_json(*args)
    if p.returncode != 0 or not j:
        raise RuntimeError("show %s: %d %s" % (args, p.returncode, p.stderr.decode()[-300:]))
    return j["rows"]


def job_of(env, job):
    p, j = env.ctl_json("show", str(job), "--state", "failed")
    return j["job"] if j else {}


def main(tap):
    t_start = time.monotonic()
    rnd = random.Random(1212)
    # the per-row Groups column: 5 members, 5 seeded guests and 10 new
    # addresses get G3; one new and one seeded guest get G3 and G4 too
    own = {n: [G3] for n in list(range(1, 6)) + list(range(101, 106)) + list(range(1001, 1011))}
    own[1011] = [G3, G4]
    own[106] = [G4, G3]
    cells = {1011: "%s;%s" % (G3, G4), 106: "%s %s" % (G4, G3)}
    numbers = list(range(1, N + 1))
    rnd.shuffle(numbers)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["Name", "InvitedUserEmailAddress", "Groups"])
    for n in numbers:
        w.writerow(["User %d" % n, addr(n), cells.get(n, " ".join(own.get(n, [])))])
    directory = {"groups": [G1, G2, G3, G4.lower()], "seed_members": MEMBERS,
                 "seed_guests": GUESTS, "member_pattern": "user{n}@partner.example",
                 "guest_pattern": "user{n}@partner.example", "member_404_share": 0.05,
                 "accept_after_ms": ACCEPT_MS, "accept_share": 0.5}
    queue = {"rate": "250", "burst": "20", "concurrency": "16", "lookup": "yes",
             "lookup_rate": "1000", "group_rate": "1000", "track_rate": "1000",
             "track_days": "1", "track_interval": "2s", "max_resends": "3"}
    with Env(sim_args=["--seed", "1212"], directory=directory, queue=queue) as env:
        path = env.write("guests.csv", out.getvalue().encode())
        p, job = env.ctl_json("submit", path, "--skip-existing", "--group", G1, "--group", G2)
        tap.ok(p.returncode == 0 and job, "submit --skip-existing --group G1 --group G2 of "
               "2,000 rows with a Groups column", p.stderr.decode()[-500:])
        if not job:
            return
        jid = job["id"]
        tap.eq(((job.get("options") or {}).get("skip_existing"),
                sorted((job.get("options") or {}).get("groups") or [])),
               (True, [G1, G2]), "the job's options hold skip_existing and the two groups")

        # ACCEPTED is watched from the start: it must rise, not jump once
        seen = []

        def done():
            pj, js = env.ctl_json("jobs")
            mine = [x for x in js or [] if x["id"] == jid]
            if mine:
                seen.append(mine[0].get("accepted", 0))
            return mine and mine[0]["state"] == "completed" and mine[0]
        try:
            final = deadline_wait(done, 120 * SLOW, "the job's completion", step=0.3)
        except TimeoutError as e:
            final = job_of(env, jid)
            tap.ok(False, "the job completes within %d s" % (120 * SLOW), "%s\n%r\n%s" % (e, final,
                                                                             env.log()[-3000:]))
        tap.diag("job completed after %.1f s" % (time.monotonic() - t_start))
        tap.eq(tuple(final.get(k) for k in ("total", "succeeded", "skipped", "failed",
                                            "cancelled", "pending", "group_failures",
                                            "groups_pending")),
               (N, N - MEMBERS - GUESTS, MEMBERS + GUESTS, 0, 0, 0, 0, 0),
               "job: 1,800 succeeded, 200 skipped, none failed, no group failure or addition "
               "left (total, succeeded, skipped, failed, cancelled, pending, group_failures, "
               "groups_pending)")
        tap.eq(final.get("tracking"), True, "the job's guests are tracked")

        users = {u["mail"].lower(): u for u in env.sim_get("users", TENANT)["users"]}
        rows = rows_of(env, jid)
        by_n = {int(r["email"].split("@")[0][4:]): r for r in rows}
        tap.eq(len(by_n), N, "show --json lists all 2,000 rows")

        # skipped: the seeded users, told apart, with their ids; none invited
        bad = []
        for n in range(1, MEMBERS + GUESTS + 1):
            r = by_n.get(n, {})
            want_type = "Member" if n <= MEMBERS else "Guest"
            ex = r.get("existing") or {}
            u = users.get(addr(n), {})
            ok = (r.get("state") == "skipped" and ex.get("type") == want_type
                  and r.get("invited_user_id") == u.get("id")
                  and (ex.get("state") is None if want_type == "Member"
                       else ex.get("state") in ("PendingAcceptance", "Accepted")))
            if not ok:
                bad.append((n, r.get("state"), ex, r.get("invited_user_id"), u.get("id")))
        tap.ok(not bad, "the 100 members and 100 guests are skipped, existing.type Member/Guest, "
               "with the user's id and invitation state", bad[:5])
        tap.eq(len(rows_of(env, jid, "skipped")), MEMBERS + GUESTS, "show --state skipped: 200")
        rec = env.record()
        invited = {}
        for x in rec:
            invited.setdefault(x["address"].lower(), []).append(x)
        tap.eq(sorted(n for n in range(1, MEMBERS + GUESTS + 1) if addr(n) in invited), [],
               "no existing member or guest was sent an invitation")
        new = range(MEMBERS + GUESTS + 1, N + 1)
        tap.ok(all(len(invited.get(addr(n), [])) == 1 for n in new) and len(rec) == len(new),
               "each of the 1,800 new addresses was invited exactly once (%d record lines)"
               % len(rec))
        bad = [(n, by_n[n]["state"]) for n in new
               if by_n[n]["state"] != "succeeded" or
               by_n[n]["invited_user_id"] != invited.get(addr(n), [{}])[0].get("user_id")]
        tap.ok(not bad, "every new row succeeded with the invited user's id", bad[:5])

        # groups: the simulator's membership record against what each row asked for
        members = env.sim_get("members", TENANT)["members"]
        have = {(m["group"], m["user_id"]) for m in members}
        want = set()
        for n in range(MEMBERS + 1, N + 1):
            uid = by_n[n]["invited_user_id"]
            for g in [G1, G2] + own.get(n, []):
                want.add((g.lower(), uid))
        member_ids = {users[addr(n)]["id"] for n in range(1, MEMBERS + 1)}
        tap.ok(not (have - want), "nothing was added that no row asked for",
               sorted(have - want)[:5])
        tap.ok(not (want - have), "every succeeded and skipped-guest row is in G1 and G2, and "
               "in its own Groups column's groups (%d memberships of %d)"
               % (len(want & have), len(want)), sorted(want - have)[:5])
        tap.ok(not [m for m in members if m["user_id"] in member_ids],
               "no group addition for a skipped member (its own G3 included)")
        tap.eq(sorted({m["group"] for m in members if m["user_id"] ==
                       by_n[1011]["invited_user_id"]}), sorted([G1, G2, G3, G4.lower()]),
               "a row whose Groups cell is 'G3;G4' is in G1, G2, G3 and G4")
        bad = []
        for n in range(1, N + 1):
            r = by_n[n]
            states = {(g["id"].lower(), g["state"]) for g in r.get("groups") or []}
            if n <= MEMBERS:
                if states:
                    bad.append((n, "member", states))
            elif states != {(g.lower(), "added") for g in [G1, G2] + own.get(n, [])}:
                bad.append((n, states))
        tap.ok(not bad, "each row's groups list says added for each of its groups (a skipped "
               "member's is [])", bad[:5])
        st = env.sim_stats()
        adds = st["tenants"][TENANT].get("directory", {}).get("additions", {})
        n404 = int(adds.get("404", 0))
        tap.ok(n404 > 0 and n404 < len(want) * 0.15 and not want - have,
               "some first additions were answered 404 (not replicated yet) and then done: "
               "%d 404s for %d memberships (share 0.05)" % (n404, len(want)), adds)
        tap.diag("additions by status: %s; lookups: %s" % (
            adds, st["tenants"][TENANT].get("directory", {}).get("lookups")))
        p, stats = env.ctl_json("stats")
        s = (stats or {}).get("stats", stats or {})
        tap.eq((s.get("group_additions_total"), s.get("group_failures_total"),
                s.get("group_additions_pending")), (len(want), 0, 0),
               "stats: group_additions_total is the memberships made, no failure, none pending")
        tap.ok(s.get("lookups_total", 0) >= N and s.get("lookups_found_total") == MEMBERS + GUESTS,
               "stats: a lookup per row (%s), 200 found (%s)"
               % (s.get("lookups_total"), s.get("lookups_found_total")))

        # acceptance: once every guest's acceptance is due, the daemon must
        # see exactly the simulator's accepted guests
        last_ms = max(x["t_ms"] for x in rec)
        deadline_wait(lambda: time.time() * 1000 > last_ms + ACCEPT_MS + 500, (ACCEPT_MS / 1000 + 30) * SLOW,
                      "the last guest's acceptance moment")
        users = {u["mail"].lower(): u for u in env.sim_get("users", TENANT)["users"]}
        guests = [n for n in range(MEMBERS + 1, N + 1)]
        accepted = {n for n in guests if users[addr(n)]["externalUserState"] == "Accepted"}
        tap.ok(0.35 * len(guests) < len(accepted) < 0.65 * len(guests),
               "about half of the 1,900 guests accepted in the simulator (%d)" % len(accepted))

        def caught_up():
            pj, js = env.ctl_json("jobs")
            mine = [x for x in js or [] if x["id"] == jid]
            if mine:
                seen.append(mine[0].get("accepted", 0))
            return mine and mine[0].get("accepted") == len(accepted)
        try:
            deadline_wait(caught_up, 30 * SLOW, "ACCEPTED to reach %d" % len(accepted), step=0.3)
        except TimeoutError as e:
            tap.diag(str(e))
        positive = sorted(set(v for v in seen if v))
        tap.ok(seen and seen[-1] == len(accepted) and len(positive) >= 2,
               "jobs --json accepted rises to the simulator's %d (values seen: %s)"
               % (len(accepted), positive[:4] + (["..."] if len(positive) > 5 else [])
                  + positive[-1:]))
        p = env.ctl("jobs")
        head = p.stdout.decode().splitlines()[0].split() if p.stdout else []
        tap.ok("SKIPPED" in head and "ACCEPTED" in head, "jobs shows SKIPPED and ACCEPTED", head)
        got_acc = {int(r["email"].split("@")[0][4:]) for r in rows_of(env, jid, "accepted")}
        tap.eq(sorted(got_acc ^ accepted)[:10], [],
               "show --state accepted: exactly the guests the simulator has accepted (%d)"
               % len(got_acc))
        not_acc = set(guests) - accepted
        got_not = {int(r["email"].split("@")[0][4:]) for r in rows_of(env, jid, "not-accepted")}
        tap.eq(sorted(got_not ^ not_acc)[:10], [],
               "show --state not-accepted: exactly the others, skipped guests included (%d)"
               % len(got_not))
        rows = rows_of(env, jid)
        by_n = {int(r["email"].split("@")[0][4:]): r for r in rows}
        tap.ok(all(bool(by_n[n].get("accepted_at")) == (n in accepted) for n in range(1, N + 1)),
               "accepted_at is set on exactly the accepted rows")
        before_url = {n: by_n[n]["invite_redeem_url"] for n in new}
        p, tr = env.ctl_json("track", str(jid))
        tap.ok(p.returncode == 0 and tr and tr.get("changed") == len(not_acc),
               "track JOB brings the check of the %d not-accepted guests forward" % len(not_acc),
               (p.returncode, p.stderr.decode()[-300:], tr and tr.get("changed")))

        # resend: only succeeded rows are invited again (a skipped guest was
        # never invited by this job)
        expect = sorted(n for n in new if n not in accepted)
        n_rec = len(env.record())
        p, dry = env.ctl_json("resend", str(jid), "--older-than", "1s", "--dry-run")
        listed = {int(r["email"].split("@")[0][4:]) for r in (dry or {}).get("rows", [])}
        tap.ok(p.returncode == 0 and dry and dry.get("changed") == len(expect)
               and listed <= set(expect) and len(listed) == min(100, len(expect)),
               "resend --older-than 1s --dry-run names the %d not-accepted succeeded rows"
               % len(expect), (p.returncode, p.stderr.decode()[-300:],
                               dry and {k: v for k, v in dry.items() if k != "rows"}))
        tap.eq(len(env.record()), n_rec, "the dry run sent nothing")
        p2, dry2 = env.ctl_json("resend", str(jid), "--older-than", "1h", "--dry-run")
        tap.eq((dry2 or {}).get("changed"), 0, "resend --older-than 1h --dry-run: none is that old")
        p, res = env.ctl_json("resend", str(jid), "--older-than", "1s")
        tap.ok(p.returncode == 0 and res and res.get("changed") == len(expect),
               "resend --older-than 1s queues the %d rows" % len(expect),
               (p.returncode, p.stderr.decode()[-300:], res and res.get("changed")))
        try:
            deadline_wait(lambda: len(env.record()) >= n_rec + len(expect), 60 * SLOW,
                          "the resent invitations", step=0.2)
            deadline_wait(lambda: job_of(env, jid).get("state") == "completed", 60 * SLOW,
                          "the job to be completed again", step=0.2)
        except TimeoutError as e:
            tap.diag(str(e))
        rec = env.record()
        again = {}
        for x in rec[n_rec:]:
            again.setdefault(x["address"].lower(), []).append(x)
        tap.eq(sorted(again), sorted(addr(n) for n in expect),
               "each not-accepted succeeded address was invited a second time, nobody else")
        tap.ok(all(len(v) == 1 for v in again.values()), "and only once more")
        rows = rows_of(env, jid)
        by_n = {int(r["email"].split("@")[0][4:]): r for r in rows}
        exp = set(expect)
        bad = [(n, by_n[n].get("resends"), by_n[n]["state"]) for n in range(1, N + 1)
               if by_n[n].get("resends") != (1 if n in exp else 0) or
               by_n[n]["state"] != ("skipped" if n <= MEMBERS + GUESTS else "succeeded")]
        tap.ok(not bad, "resends is 1 on the resent rows, 0 elsewhere; states unchanged", bad[:5])
        bad = [n for n in expect if not by_n[n]["invite_redeem_url"] or
               by_n[n]["invite_redeem_url"] == before_url[n]]
        tap.ok(not bad, "each resent row holds a new redeem URL", bad[:5])
        tap.ok(all(by_n[n]["invite_redeem_url"] == before_url[n] for n in new if n not in exp),
               "the other rows keep theirs")
        p, aud = env.ctl_json("audit", "--job", str(jid))
        entries = aud if isinstance(aud, list) else (aud or {}).get("entries", [])
        tap.eq(sum(1 for e in entries if e.get("action") == "resend"), 1,
               "the resend is in the audit trail once (the dry runs are not)")
        tap.eq(len(env.members_record()), len(want),
               "the resend added no membership (members record)")

        # the results CSV
        p = env.ctl("results", str(jid))
        table = list(csv.DictReader(io.StringIO(p.stdout.decode("utf-8-sig"))))
        cols = table[0].keys() if table else []
        tap.ok(all(c in cols for c in ("existing_type", "groups_state", "group_errors",
                                       "mail_state", "mail_sent_at", "accepted_at", "resends")),
               "results has the columns existing_type, groups_state, group_errors, mail_state, "
               "mail_sent_at, accepted_at, resends", list(cols))
        tap.eq(table and table[0].get("Groups") is not None, True,
               "results keeps the input Groups column")
        bad = []
        for t in table:
            n = int(t["InvitedUserEmailAddress"].split("@")[0][4:])
            want_row = {"status": "skipped" if n <= MEMBERS + GUESTS else "succeeded",
                        "existing_type": "Member" if n <= MEMBERS else
                        "Guest" if n <= MEMBERS + GUESTS else "",
                        "groups_state": "" if n <= MEMBERS else "added",
                        "group_errors": "", "resends": "1" if n in exp else "0",
                        "accepted": n in accepted}
            got = {k: t.get(k) for k in want_row if k != "accepted"}
            got["accepted"] = bool(t.get("accepted_at"))
            if got != want_row:
                bad.append((n, got, want_row))
        tap.ok(len(table) == N and not bad, "results: each line's status, existing_type, "
               "groups_state, group_errors, accepted_at and resends agree (%d lines)"
               % len(table), bad[:3])
        tap.diag("whole test: %.1f s" % (time.monotonic() - t_start))


if __name__ == "__main__":
    run(main)
