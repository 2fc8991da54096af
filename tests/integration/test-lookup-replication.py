#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SPEC R5 with Graph's replication lag (GRAPH.md §6: a just-created user may
not be readable for a while): an invitation whose answer is lost after it
created the guest must not be sent again, even when the lookup before the
next attempt cannot see the new guest yet.

The simulator resets a quarter of the invitation requests after creating and
recording the invitation (--fail-reset 25 --fail-after-accept 100) and keeps
a guest an invitation made unreadable for 4 s (--replication-delay-ms). The
daemon looks a row up before its next attempt (lookup = yes); a lookup that
finds nobody after a lost attempt looks again once replication_delay has
passed (here 7 s) before the row is invited again.

Checked: every row succeeded; the simulator recorded each address exactly
once (no second invitation); some answers were really lost (the rows found
by a lookup after the wait), so the case was exercised."""
from harness import SLOW, Env, check_against_record, portal_file, run

N = 40


def main(tap):
    addrs = ["rep%03d@partner.example" % i for i in range(N)]
    with Env(sim_args=["--fail-reset", "25", "--fail-after-accept", "100", "--seed", "7",
                       "--replication-delay-ms", "4000"],
             directory={},
             queue={"rate": "500", "burst": "20", "concurrency": "8", "lookup": "yes",
                    "lookup_rate": "200", "replication_delay": "7s"}) as env:
        path = env.write("job.csv", portal_file([[a, "", "false", ""] for a in addrs]))
        p, job = env.ctl_json("submit", path)
        tap.ok(p.returncode == 0 and job, "submit", p.stderr.decode()[-400:])
        if not job:
            return
        jid = job["id"]
        p, final = env.wait_job(jid, timeout=90 * SLOW)
        final = (final or {}).get("job", final) or {}
        tap.eq((final.get("succeeded"), final.get("failed")), (N, 0),
               "every row succeeded, none failed (succeeded, failed)")
        rec = [x["address"].lower() for x in env.record()]
        twice = sorted({a for a in rec if rec.count(a) > 1})
        tap.eq(twice, [], "no address was sent a second invitation")
        tap.eq(sorted(set(rec)), sorted(addrs), "every address was invited")
        p, shown = env.ctl_json("show", str(jid))
        found = [r["email"] for r in (shown or {}).get("rows", [])
                 if "not invited again" in (r.get("error_message") or "")]
        tap.ok(len(found) >= 3, "answers were lost and their guests found by a lookup after "
               "the wait (%d rows)" % len(found))
        check_against_record(tap, env, jid, addrs)


if __name__ == "__main__":
    run(main)
