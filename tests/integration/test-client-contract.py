#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""invitectl's contract as a new user meets it (issue 10 item 12, SPEC §3):
the daemon's import refuses an untouched template and a header alone ("no
guests in the file") and a cell over Excel's 32,767 bytes at its line;
validate asks a reachable daemon for its limits only; stats prints numbers a
person reads while --prometheus keeps full precision; watch's progress line
says why a job does not move."""
import re

from harness import PORTAL_HEADER, Env, deadline_wait, run


def main(tap):
    with Env(queue={"rate": "43.5159375"}, daemon={"max_rows": "2"}) as env:
        # --- no guests, through the daemon's import (the reader in common/)
        p = env.ctl("template")
        template = env.write("template.csv", p.stdout)
        p = env.ctl("submit", template)
        tap.eq(p.returncode, 65, "submit of the untouched template: 65")
        tap.ok(b"template.csv:3: no guests in the file" in p.stderr,
               "submit of the template: 'no guests in the file' at the Example: row", p.stderr)
        p = env.ctl("submit", env.write("header.csv", (PORTAL_HEADER + "\n").encode()))
        tap.ok(p.returncode == 65 and b"header.csv:1: no guests in the file" in p.stderr,
               "submit of a header alone: 65, no guests", p.stderr)
        p, jobs = env.ctl_json("jobs", "--all")
        tap.eq(jobs, [], "nothing was stored")

        # --- Excel's cell limit, at the cell's line, in the daemon too
        big = "x" * 32768
        p = env.ctl("submit", env.write("big.csv", (
            PORTAL_HEADER + ",[Note]\na@partner.example,,false,," + big + "\n").encode()))
        tap.ok(p.returncode == 65 and b"big.csv:2: cell 5 longer than 32767 bytes" in p.stderr,
               "submit of a 32,768-byte cell: 65 at its line", p.stderr[:300])

        # --- validate: the daemon's limits when it answers (max_rows = 2)
        three = env.write("three.csv", (PORTAL_HEADER + "\n" + "".join(
            "g%d@partner.example,,false,\n" % i for i in range(3))).encode())
        p = env.ctl("validate", three)
        tap.ok(p.returncode == 65 and b"more than 2 rows" in p.stderr,
               "validate uses the daemon's max_rows", p.stderr)
        env.stop_daemon()
        p = env.ctl("validate", three)
        tap.ok(p.returncode == 0 and b"3 rows, valid" in p.stdout,
               "no daemon: validate uses the built-in limits, silently",
               p.stdout + p.stderr)
        tap.eq(p.stderr, b"", "no daemon: validate says nothing of it")
        env.start_daemon()

        # --- stats and status for a person; --prometheus for a program
        p = env.ctl("stats")
        m = re.search(rb"^rate\s+(\S+)$", p.stdout, re.M)
        tap.ok(m and m.group(1) == b"43.52", "stats: the rate as 43.52",
               m and m.group(1))
        p = env.ctl("stats", "--prometheus")
        # labelled tenant="NAME" by a daemon with tenants (SPEC §7)
        tap.ok(re.search(rb'^invited_rate(\{tenant="[a-z0-9-]+"\})? 43\.5159375$', p.stdout,
                         re.M),
               "stats --prometheus: full precision", p.stdout[-400:])
        p = env.ctl("status")
        tap.ok(b"43.52/s configured" in p.stdout, "status: the rate as 43.52", p.stdout)

    # --- watch's progress line carries the reason (no bare "queued")
    with Env(sim_args=["--block-after", "0"]) as env:
        p = env.ctl("submit", env.write("one.csv", (
            PORTAL_HEADER + "\nlate@partner.example,,false,\n").encode()))
        job = p.stdout.decode().strip()
        deadline_wait(lambda: (env.ctl_json("show", job)[1] or {}).get("job", {}).get(
            "state") == "blocked", 30, "the job blocked")
        p = env.ctl("watch", job, timeout=30)
        tap.ok(re.search(rb"^Job \d+ blocked \(Invitations are blocked[^)]*\): 0/1 done",
                         p.stderr, re.M),
               "watch: the progress line says why the job does not move", p.stderr[:400])


if __name__ == "__main__":
    run(main)
