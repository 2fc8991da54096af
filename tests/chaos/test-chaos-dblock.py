#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Another process holds a write lock on the database (BEGIN EXCLUSIVE) for
several seconds in the middle of a job. The daemon keeps answering reads,
queues its results instead of losing them, refuses or delays writes it
cannot make, and finishes the job once the lock is gone."""
import sqlite3
import subprocess
import time

from chaos import Env, RecordCounter, addresses, deadline_wait, run, submit, verify

N = 3000
HOLD_S = 5


def main(tap):
    with Env(sim_args=["--latency-ms", "5"],
             queue={"rate": "600", "burst": "50", "concurrency": "16",
                    "request_timeout": "2"}) as env:
        emails = addresses("lock", N)
        job = submit(env, emails)
        rec = RecordCounter(env)
        deadline_wait(lambda: rec.count() >= N // 10, 60, "a tenth of the job sent")

        locker = sqlite3.connect(env.db_path, timeout=10, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        at_lock = rec.count()

        # reads still work (WAL); the slowest answer is measured
        slowest = 0.0
        answers = 0
        second = None
        while time.monotonic() - locked_at < HOLD_S / 2:
            t0 = time.monotonic()
            p, jobs = env.ctl_json("jobs", timeout=10)
            slowest = max(slowest, time.monotonic() - t0)
            answers += p.returncode == 0 and bool(jobs)
            if second is None:
                # a write that waits for the lock: an upload (waits up to 30 s)
                path = env.write("second.csv", env_file(emails_second()))
                second = subprocess.Popen(
                    [env_ctl(env)[0]] + env_ctl(env)[1:] + ["--json", "submit", path],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # an admin action needs the lock: it waits a moment, then says so
        t0 = time.monotonic()
        pause = env.ctl("pause", str(job), timeout=20)
        waited = time.monotonic() - t0
        tap.ok(waited < 3.5, "the pause waits about 2 s for the lock, no more (%.1f s)" % waited)
        tap.ok(answers > 0 and slowest < 2.5,
               "jobs answered while the database was locked (%d answers, slowest %.0f ms)"
               % (answers, slowest * 1000))
        tap.ok(pause.returncode in (0, 75),
               "pause during the lock: done or 'try again' (exit %d: %s)"
               % (pause.returncode, pause.stderr.decode().strip()))
        sent_during = rec.count() - at_lock
        tap.ok(sent_during <= 16 + 50,
               "sending stops while results cannot be written (%d sent during the lock)"
               % sent_during)
        locker.execute("COMMIT")
        locker.close()
        tap.diag("lock held %.1f s" % (time.monotonic() - locked_at))

        if pause.returncode == 0:
            env.ctl("resume", str(job))
        out, err = second.communicate(timeout=60)
        tap.eq(second.returncode, 0, "the upload made during the lock is stored once it is "
               "released (%s)" % err.decode().strip())
        import json
        job2 = json.loads(out)["id"] if second.returncode == 0 else None

        p, done = env.wait_job(job, timeout=120)
        tap.eq((p.returncode, done and done["state"]), (0, "completed"), "the job completes")
        # requests whose answers wait while the loop waits for the lock may
        # time out and be sent again: at-least-once, within concurrency
        verify(tap, env, job, emails, 16, "db lock", others=emails_second())
        if job2:
            p, done = env.wait_job(job2, timeout=60)
            verify(tap, env, job2, emails_second(), 16, "db lock, second job", others=emails)
        tap.ok("Failed to store" not in env.log(),
               "a busy database is not logged as a failure", env.log()[-1500:])


def emails_second():
    return addresses("lock2-", 50)


def env_file(emails):
    from chaos import portal_file
    return portal_file([[e, "", "false", ""] for e in emails])


def env_ctl(env):
    from harness import INVITECTL
    return [INVITECTL, "-s", env.sock]


if __name__ == "__main__":
    run(main)
