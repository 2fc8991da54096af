#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SPEC §5 R2: the simulator answers 10% of invitation attempts with a 5xx,
5% with 429, resets 2% of the connections and never answers 1% (they hang
past request_timeout). Every row must succeed, with the daemon's default
max_attempts (8), and each as the simulator recorded it."""
import os

from chaos import Env, addresses, run, seed, submit, verify

N = int(os.environ.get("CHAOS_ROWS", "1000"))


def main(tap):
    s = seed()
    sim = ["--fail-5xx", "10", "--fail-429", "5", "--fail-reset", "2", "--fail-hang", "1",
           "--latency-ms", "2", "--seed", str(s)]
    queue = {"rate": "2000", "burst": "100", "concurrency": "32", "request_timeout": "1"}
    with Env(sim_args=sim, queue=queue) as env:
        emails = addresses("fault", N)
        job = submit(env, emails)
        p, done = env.wait_job(job, timeout=240)
        tap.eq((p.returncode, done and done["state"], done and done["succeeded"]),
               (0, "completed", N), "R2: the job completes, %d of %d succeeded" % (
                   done["succeeded"] if done else -1, N))
        dups = verify(tap, env, job, emails, 0, "R2 faults")
        st = env.sim_stats()
        inv = st["invitation_status"]
        attempts = sum(inv.values())
        faults = {"5xx": sum(v for k, v in inv.items() if k.startswith("5")),
                  "429": inv.get("429", 0), "resets": st["resets"], "hangs": st["hangs"]}
        tap.ok(all(faults.values()), "every kind of fault struck: %s" % faults)
        with env.db() as db:
            tries = db.execute("SELECT MAX(attempts), AVG(attempts) FROM rows WHERE job_id = ?",
                               (job,)).fetchone()
        tap.diag("R2: %d rows, %d attempts seen by the simulator, faults %s, duplicates %d, "
                 "attempts per row max %d avg %.2f" % (N, attempts, faults, dups, tries[0],
                                                       tries[1]))


if __name__ == "__main__":
    run(main)
