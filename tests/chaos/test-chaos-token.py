#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The token endpoint fails (503) for the first seconds, then recovers:
`status` says why no token is held meanwhile, no invitation goes out
without a token, and once a token comes every row succeeds."""
from chaos import Env, addresses, deadline_wait, run, submit, verify

N = 500
OUTAGE_S = 6


def main(tap):
    with Env(sim_args=["--token-fail-for", str(OUTAGE_S), "--latency-ms", "2"],
             queue={"rate": "2000", "burst": "100", "concurrency": "16",
                    "request_timeout": "1"}) as env:
        emails = addresses("token", N)
        job = submit(env, emails)

        def token_error():
            p, st = env.ctl_json("status")
            return st and st["token"]["state"] == "error" and st["token"]["error"] and st
        st = deadline_wait(token_error, OUTAGE_S, "status to report the token failure")
        tap.ok("503" in st["token"]["error"] or "unavailable" in st["token"]["error"],
               "status names the token endpoint's failure: %r" % st["token"]["error"])
        p, jobs = env.ctl_json("jobs")
        tap.eq(jobs and jobs[0]["succeeded"], 0, "nothing sent during the outage")

        p, done = env.wait_job(job, timeout=120)
        tap.eq((p.returncode, done and done["state"]), (0, "completed"),
               "the job completes once the token endpoint recovers")
        verify(tap, env, job, emails, 0, "token outage")
        p, st = env.ctl_json("status")
        tap.eq(st and st["token"]["state"], "valid", "status: the token is valid again")
        inv = env.sim_stats()["invitation_status"]
        tap.eq(inv.get("401", 0), 0, "no invitation was sent without a token")


if __name__ == "__main__":
    run(main)
