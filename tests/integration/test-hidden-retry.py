#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every invitation Graph receives is an attempt the daemon counts: no layer
below it sends one again unseen.

libcurl re-sends a request by itself, on a fresh connection, when a reused
keep-alive connection dies before any byte of the answer (up to 5 times).
For an invitation that Graph created before the connection died, that is a
second invitation the daemon never sees: with lookups on it defeats SPEC
R5, without them it breaks the count the results report (attempts).

The simulator resets 30% of the invitation requests after creating and
recording the invitation (--fail-reset 30 --fail-after-accept 100), on
connections the daemon keeps alive (concurrency 4, so each is reused).
Checked: every row succeeded, and for every row the simulator holds at
most as many invitations of its address as the row has attempts."""
from harness import SLOW, Env, portal_file, run

N = 60


def main(tap):
    addrs = ["hr%03d@partner.example" % i for i in range(N)]
    with Env(sim_args=["--fail-reset", "25", "--fail-after-accept", "100", "--seed", "7"],
             queue={"rate": "500", "burst": "20", "concurrency": "4",
                    "max_attempts": "30"}) as env:
        path = env.write("job.csv", portal_file([[a, "", "false", ""] for a in addrs]))
        p, job = env.ctl_json("submit", path)
        tap.ok(p.returncode == 0 and job, "submit", p.stderr.decode()[-400:])
        if not job:
            return
        p, final = env.wait_job(job["id"], timeout=120 * SLOW)
        final = (final or {}).get("job", final) or {}
        tap.eq((final.get("succeeded"), final.get("failed")), (N, 0),
               "every row succeeded, none failed (succeeded, failed)")
        p, shown = env.ctl_json("show", str(job["id"]))
        attempts = {r["email"]: r.get("attempts", 0) for r in (shown or {}).get("rows", [])}
        sent = {}
        for x in env.record():
            sent[x["address"].lower()] = sent.get(x["address"].lower(), 0) + 1
        unseen = sorted((a, sent[a], attempts.get(a)) for a in sent
                        if sent[a] > (attempts.get(a) or 0))
        tap.ok(not unseen, "no invitation the daemon did not count: for every row the "
               "simulator's invitations <= the row's attempts (%d rows over)" % len(unseen),
               unseen[:5])
        resets = sum(sent.values()) - N
        tap.ok(resets >= 5, "answers were really lost after creation (%d invitations beyond "
               "one per address)" % resets)


if __name__ == "__main__":
    run(main)
