#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`submit --skip-existing` and a kill -9 while rows wait for their lookups
(SPEC §8, issue 12's rule that no existing user is invited, after a crash).

The lookups are slowed (lookup_rate 2) so that most of the job's rows are
claimed and waiting for theirs when the daemon is killed. After the restart
the rows are looked up again; one that was waiting may also have been one
whose invitation was in flight (the store cannot tell them apart), so:

- an existing member is skipped (an invitation never makes a member);
- an existing guest is not invited again (skipped, or succeeded with a
  message that says the job's cut-short invitation or an earlier one may
  have made it);
- every new address is invited exactly once, and succeeds."""
import signal

from harness import SLOW, Env, deadline_wait, portal_file, run

MEMBERS, GUESTS, NEW = 20, 10, 20


def main(tap):
    members = ["skm%d@partner.example" % n for n in range(1, MEMBERS + 1)]
    guests = ["skg%d@partner.example" % n for n in range(MEMBERS + 1, MEMBERS + GUESTS + 1)]
    new = ["skn%03d@partner.example" % n for n in range(NEW)]
    existing = members + guests
    with Env(directory={"seed_members": MEMBERS, "member_pattern": "skm{n}@partner.example",
                        "seed_guests": GUESTS, "guest_pattern": "skg{n}@partner.example"},
             queue={"rate": "500", "burst": "20", "concurrency": "8", "lookup": "yes",
                    "lookup_rate": "2"}) as env:
        # the existing users first: they are the rows waiting at the kill
        path = env.write("job.csv", portal_file([[a, "", "false", ""] for a in existing + new]))
        p, job = env.ctl_json("submit", path, "--skip-existing")
        tap.ok(p.returncode == 0 and job, "submit --skip-existing", p.stderr.decode()[-400:])
        if not job:
            return
        jid = job["id"]

        def looked_up():
            d = env.sim_stats()["tenants"]["contoso.onmicrosoft.com"].get("directory", {})
            return sum(int(v) for v in d.get("lookups", {}).values())
        deadline_wait(lambda: looked_up() >= 2, 30 * SLOW, "two lookups", step=0.05)
        env.stop_daemon(signal.SIGKILL)
        with env.db() as db:
            waiting = db.execute("SELECT COUNT(*) FROM rows WHERE state = 1 AND lookup = 1"
                                 " AND job_id = ?", (jid,)).fetchone()[0]
        tap.ok(waiting >= 10, "the kill struck while rows waited for their lookups (%d rows "
               "claimed with lookup = 1)" % waiting)

        env.queue["lookup_rate"] = "200"
        env.write_config()
        env.start_daemon()
        p, final = env.wait_job(jid, timeout=60 * SLOW)
        p, shown = env.ctl_json("show", str(jid))
        rows = {r["email"]: r for r in (shown or {}).get("rows", [])}
        tap.eq(len(rows), len(existing) + len(new), "show lists every row")

        bad = [(a, rows.get(a, {}).get("state"), rows.get(a, {}).get("existing"))
               for a in members if rows.get(a, {}).get("state") != "skipped"
               or (rows[a].get("existing") or {}).get("type") != "Member"]
        tap.ok(not bad, "the %d existing members are skipped after the restart (existing.type "
               "Member)" % MEMBERS, bad[:5])
        bad = [(a, rows.get(a, {}).get("state"), rows.get(a, {}).get("error"))
               for a in guests if rows.get(a, {}).get("state") not in ("skipped", "succeeded")
               or (rows[a].get("existing") or {}).get("type") != "Guest"
               or not rows[a].get("invited_user_id")]
        tap.ok(not bad, "the %d existing guests end skipped or succeeded, with existing.type "
               "Guest and the user's id" % GUESTS, bad[:5])
        invited = [x["address"].lower() for x in env.record()]
        tap.eq(sorted(a for a in invited if a in existing), [],
               "no existing user was sent an invitation")
        tap.eq(sorted(invited), sorted(new), "each new address was invited exactly once")
        tap.ok(all(rows.get(a, {}).get("state") == "succeeded" for a in new),
               "the new addresses succeeded", [(a, rows.get(a, {}).get("state")) for a in new][:5])
        final = (final or {}).get("job", final) or {}
        tap.eq(final.get("failed"), 0, "no row failed")


if __name__ == "__main__":
    run(main)
