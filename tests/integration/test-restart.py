#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A daemon restart keeps finished and unfinished jobs; unfinished ones complete."""
import signal

from harness import Env, deadline_wait, portal_file, run


def main(tap):
    with Env(queue={"rate": "100", "burst": "5", "concurrency": "4"}) as env:
        small = env.write("small.csv", portal_file(
            [["done%02d@partner.example" % i, "", "false", ""] for i in range(10)]))
        p = env.ctl("submit", small, "--wait")
        tap.eq(p.returncode, 0, "a first job finishes")
        first = int(p.stdout.split()[0])

        big = env.write("big.csv", portal_file(
            [["later%04d@partner.example" % i, "", "false", ""] for i in range(600)]))
        p, job = env.ctl_json("submit", big)
        second = job["id"]
        deadline_wait(lambda: env.ctl_json("jobs")[1][0]["succeeded"] >= 50, 30,
                      "50 rows of the second job")
        rc = env.stop_daemon(signal.SIGTERM)
        tap.eq(rc, 0, "SIGTERM mid-job: invited exits 0")
        with env.db() as db:
            n_in_flight = db.execute("SELECT COUNT(*) FROM rows WHERE state = 1").fetchone()[0]
            done = db.execute("SELECT succeeded FROM jobs WHERE id = ?", (second,)).fetchone()[0]
        tap.eq(n_in_flight, 0, "no row left in flight after a clean stop")
        tap.ok(0 < done < 600, "the second job was part-way (%d done)" % done)

        env.start_daemon()
        p, jobs = env.ctl_json("jobs", "--all")
        ids = {j["id"]: j for j in jobs or []}
        tap.ok(first in ids and ids[first]["state"] == "completed" and ids[first]["succeeded"] == 10,
               "the finished job is still there after the restart", ids.get(first))
        tap.ok(second in ids and ids[second]["state"] in ("queued", "running"),
               "the unfinished job is still there", ids.get(second))
        p, fin = env.wait_job(second, timeout=120)
        tap.eq((p.returncode, fin and fin["succeeded"]), (0, 600), "and it completes")
        addrs = [r["address"] for r in env.record() if r["address"].startswith("later")]
        tap.eq(len(set(addrs)), 600, "every address of the second job was invited")
        tap.ok(len(addrs) - 600 <= 4, "duplicates at most `concurrency` (%d)" % (len(addrs) - 600))

    # SIGTERM in the middle of a 20,000-row job while requests are in flight
    with Env(sim_args=["--latency-ms", "30"],
             queue={"rate": "3000", "burst": "100", "concurrency": "32"}) as env:
        big = env.write("big.csv", portal_file(
            [["t%05d@partner.example" % i, "", "false", ""] for i in range(20000)]))
        p, job = env.ctl_json("submit", big)
        deadline_wait(lambda: env.ctl_json("jobs")[1][0]["succeeded"] >= 5000, 120,
                      "5,000 rows sent")
        rc = env.stop_daemon(signal.SIGTERM)
        tap.eq(rc, 0, "SIGTERM with requests in flight: exit 0")
        with env.db() as db:
            left = db.execute("SELECT COUNT(*) FROM rows WHERE state = 1").fetchone()[0]
        tap.eq(left, 0, "their results were stored: no row left in flight")
        env.start_daemon()
        p, fin = env.wait_job(job["id"], timeout=300)
        tap.eq((p.returncode, fin and fin["succeeded"]), (0, 20000), "after the restart all 20,000 succeed")
        from collections import Counter
        counts = Counter(r["address"] for r in env.record())
        tap.eq(len(counts), 20000, "every address was invited")
        tap.ok(max(counts.values()) <= 2, "no address more than twice (max %d)" % max(counts.values()))


if __name__ == "__main__":
    run(main)
