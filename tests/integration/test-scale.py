#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A 10,000-row portal file ends with 10,000 succeeded, each address exactly once
in the simulator's record; `invitectl jobs` answers while the job runs."""
import time

from harness import Env, portal_file, run


def main(tap):
    # the simulator answers after 20 ms, so the job takes seconds: long enough
    # to ask the daemon questions while it sends
    with Env(sim_args=["--latency-ms", "20"], queue={"rate": "5000", "burst": "100",
                                                      "concurrency": "32"}) as env:
        rows = [["scale%05d@tenant-%d.example" % (i, i % 13), "", "false", ""]
                for i in range(10000)]
        path = env.write("big.csv", portal_file(rows))
        p, job = env.ctl_json("submit", path)
        tap.eq(p.returncode, 0, "submit of 10,000 rows exits 0")

        seen_running, answers, slowest = False, 0, 0.0
        for _ in range(200):
            t0 = time.monotonic()
            p, jobs = env.ctl_json("jobs")
            slowest = max(slowest, time.monotonic() - t0)
            if p.returncode != 0:
                break
            answers += 1
            if jobs[0]["state"] == "running" and 0 < jobs[0]["succeeded"] < 10000:
                seen_running = True
            if jobs[0]["state"] == "completed":
                break
        tap.ok(seen_running, "jobs answered while the job was running (%d answers)" % answers)
        tap.diag("slowest `invitectl jobs` while sending: %.1f ms" % (slowest * 1000))

        p, done = env.wait_job(job["id"], timeout=300)
        tap.eq((p.returncode, done and done["succeeded"], done and done["failed"]), (0, 10000, 0),
               "10,000 succeeded")
        addrs = [r["address"] for r in env.record()]
        tap.eq(len(addrs), 10000, "10,000 invitations in the record")
        tap.eq(len(set(addrs)), 10000, "each address exactly once")


if __name__ == "__main__":
    run(main)
