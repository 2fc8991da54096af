#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SPEC §5 R5: test-chaos-kill's run (kill -9 at random moments, 20 times,
during a 20,000-row job, restarting each time) with `lookup = yes`: the rows
a kill left in flight are looked up before being sent again, and a guest
that a lost request created makes its row succeed with no second
invitation. 0 rows lost, every row terminal, and no address in the
simulator's record twice: the record has a line for each invitation that
reached the simulator and created (or re-invited) the guest, so a second
line for an address is a second invitation after the first had created the
guest; one that never reached it has no line.

Besides the kills, a few invitations are created and their answers lost
while the daemon lives (--fail-5xx and --fail-reset, all striking after the
invitation was recorded: --fail-after-accept 100), the ambiguous failure of
GRAPH.md §3. Duplicates are told apart by cause: a kill or restart between
the two record lines (R5 proper), or none (a live re-send after a lost
answer). Both must be 0 with lookups on."""
import os
import signal
import time

from chaos import Env, RecordCounter, addresses, deadline_wait, rng, run, seed, submit, verify

N = int(os.environ.get("CHAOS_ROWS", "20000"))
KILLS = 20
CONCURRENCY = 32
# CHAOS_AMBIGUOUS=0: kills only, without the simulator's lost answers
AMBIGUOUS = os.environ.get("CHAOS_AMBIGUOUS", "1") != "0"
ROLES = "User.Invite.All,User.Read.All,GroupMember.ReadWrite.All"


def main(tap):
    r = rng(seed())
    queue = {"rate": "2000", "burst": "100", "concurrency": str(CONCURRENCY),
             "max_attempts": "8", "request_timeout": "2", "lookup": "yes",
             "lookup_rate": "2000"}
    sim = ["--latency-ms", "5", "--latency-jitter-ms", "5", "--roles", ROLES,
           "--seed", str(r.randrange(1, 1 << 30))]
    if AMBIGUOUS:
        sim += ["--fail-5xx", "0.5", "--fail-reset", "0.2", "--fail-after-accept", "100"]
    with Env(sim_args=sim, queue=queue) as env:
        emails = addresses("kl", N)
        job = submit(env, emails)
        rec = RecordCounter(env)
        points = sorted(r.sample(range(N // 100, N - N // 50), KILLS))
        early = set(r.sample(range(KILLS), KILLS // 5))
        lives = []  # (start_ms, kill_ms) of each daemon life, wall clock
        start_ms = time.time() * 1000
        kills = 0
        for i, point in enumerate(points):
            if env.daemon is None:
                start_ms = time.time() * 1000
                env.start_daemon()
            if i not in early:
                deadline_wait(lambda: rec.count() >= point or env.daemon.poll() is not None,
                              120, "%d invitations before kill %d" % (point, i + 1), step=0.005)
            tap.ok(env.daemon.poll() is None, "kill %d: the daemon is running (at %d of %d)"
                   % (i + 1, rec.count(), N), env.log()[-2000:])
            env.stop_daemon(signal.SIGKILL)
            lives.append((start_ms, time.time() * 1000))
            kills += 1
        tap.diag("%d kills; %d invitations recorded when the last one struck"
                 % (kills, rec.count()))

        env.start_daemon()
        p, done = env.wait_job(job, timeout=300)
        tap.eq((p.returncode, done and done["state"]), (0, "completed"),
               "after %d kills and restarts the job completes" % kills)
        # the common check: rows stored, terminal, succeeded, agreeing with
        # the record; with lookups the duplicate bound is 0
        dups = verify(tap, env, job, emails, 0, "R5 kill -9 x%d with lookup = yes" % kills)

        # duplicates by cause: was the daemon killed between the two lines?
        by_addr = {}
        for x in env.record():
            by_addr.setdefault(x["address"].lower(), []).append(x["t_ms"])
        kill_caused, live = [], []
        for a, ts in by_addr.items():
            ts.sort()
            for t1, t2 in zip(ts, ts[1:]):
                across = any(t1 <= k <= t2 for _, k in lives)
                (kill_caused if across else live).append((a, t1, t2))
        tap.ok(not kill_caused, "R5: no address invited again after a kill when its first "
               "invitation had created the guest (%d were)" % len(kill_caused), kill_caused[:10])
        tap.ok(not live, "no address invited again after a lost answer while the daemon lived "
               "(%d were: the lookup before a re-send)" % len(live), live[:10])
        # the rows a lookup found (the answer lost, the guest there)
        p, shown = env.ctl_json("show", str(job))
        found = [x for x in (shown or {}).get("rows", []) if x.get("existing")]
        st = env.sim_stats()
        look = st["tenants"]["contoso.onmicrosoft.com"].get("directory", {}).get("lookups", {})
        inv = st.get("invitation_status", {})
        tap.ok(len(found) > 0 and all(x["state"] == "succeeded" for x in found),
               "rows whose invitation was created but whose answer was lost were found by a "
               "lookup and succeeded (%d rows)" % len(found))
        tap.diag("R5: rows %d, kills %d, duplicates %d (after a kill %d, live %d); rows found "
                 "by a lookup %d; lookups answered %s; invitation attempts %s"
                 % (N, kills, dups, len(kill_caused), len(live), len(found), look, inv))


if __name__ == "__main__":
    run(main)
