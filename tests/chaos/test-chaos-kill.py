#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SPEC §5 R1: kill -9 of the daemon at random moments, 20 times, during a
20,000-row job, restarting it each time. 0 rows lost, all terminal, each row
as the simulator recorded it, duplicates <= concurrency x kills.

The moments are random points of progress (a number of invitations in the
simulator's record, drawn with CHAOS_SEED), plus a few kills right after a
restart, while the daemon recovers the rows it left in flight."""
import os
import signal

from chaos import Env, RecordCounter, addresses, deadline_wait, rng, run, seed, submit, verify

N = int(os.environ.get("CHAOS_ROWS", "20000"))
KILLS = 20
CONCURRENCY = 32


def main(tap):
    r = rng(seed())
    queue = {"rate": "2000", "burst": "100", "concurrency": str(CONCURRENCY),
             "max_attempts": "8", "request_timeout": "2"}
    with Env(sim_args=["--latency-ms", "5", "--latency-jitter-ms", "5"], queue=queue) as env:
        emails = addresses("kill", N)
        job = submit(env, emails)
        rec = RecordCounter(env)
        # progress points spread over the job; a fifth of the kills come
        # straight after a restart instead
        points = sorted(r.sample(range(N // 100, N - N // 50), KILLS))
        early = set(r.sample(range(KILLS), KILLS // 5))
        kills = 0
        for i, point in enumerate(points):
            if env.daemon is None:
                env.start_daemon()
            if i not in early:
                deadline_wait(lambda: rec.count() >= point or env.daemon.poll() is not None,
                              120, "%d invitations before kill %d" % (point, i + 1), step=0.005)
            tap.ok(env.daemon.poll() is None, "kill %d: the daemon is running (at %d of %d)"
                   % (i + 1, rec.count(), N), env.log()[-2000:])
            env.stop_daemon(signal.SIGKILL)
            kills += 1
        tap.diag("%d kills; %d invitations recorded when the last one struck"
                 % (kills, rec.count()))

        env.start_daemon()
        p, done = env.wait_job(job, timeout=300)
        tap.eq((p.returncode, done and done["state"]), (0, "completed"),
               "after %d kills and restarts the job completes" % kills)
        dups = verify(tap, env, job, emails, CONCURRENCY * kills, "R1 kill -9 x%d" % kills)
        tap.diag("R1: rows %d, kills %d, duplicates %d (bound %d)"
                 % (N, kills, dups, CONCURRENCY * kills))


if __name__ == "__main__":
    run(main)
