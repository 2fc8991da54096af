#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A job that the tenant's 403 anti-abuse block stops fires on_complete once
per block, with INVITED_JOB_STATE=blocked and Graph's reason (escaped) in
INVITED_JOB_REASON (issue 10 item 12: no notification fired). The simulator's
--block-after switch blocks the tenant after a few invitations."""
import os
import pwd
import shutil
import tempfile

from harness import Env, deadline_wait, portal_file, run

HOOK = """#!/bin/sh
env | grep '^INVITED_JOB_' | LC_ALL=C sort > "$1/run.$$.tmp" && mv "$1/run.$$.tmp" "$1/run.$$"
"""


def runs(d):
    out = []
    for name in sorted(os.listdir(d)):
        if name.startswith("run.") and not name.endswith(".tmp"):
            with open(os.path.join(d, name)) as f:
                out.append(dict(l.rstrip("\n").split("=", 1) for l in f if "=" in l))
    return out


def main(tap):
    work = tempfile.mkdtemp(prefix="invited-hook.")
    try:
        os.chmod(work, 0o755)
        script = os.path.join(work, "hook.sh")
        with open(script, "w") as f:
            f.write(HOOK)
        os.chmod(script, 0o755)
        out = os.path.join(work, "runs")
        os.mkdir(out)
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(out, nobody.pw_uid, nobody.pw_gid)
        with Env(sim_args=["--block-after", "3"], queue={"rate": "50", "burst": "1",
                                                         "concurrency": "1"},
                 daemon={"on_complete": "%s %s" % (script, out)}) as env:
            ids = []
            for k in range(2):
                rows = [["b%d-%02d@partner.example" % (k, i), "", "false", ""] for i in range(20)]
                p = env.ctl("submit", "--name", "blocked-%d" % k,
                            env.write("g%d.csv" % k, portal_file(rows)))
                tap.eq(p.returncode, 0, "job %d submitted" % k)
                ids.append(p.stdout.decode().strip())
            got = deadline_wait(lambda: (lambda r: len(r) >= 2 and r)(runs(out)), 30,
                                "two on_complete runs")
            # the daemon has answered later requests: no further run is pending
            env.ctl("status")
            env.ctl("jobs")
            got = runs(out)
            tap.eq(sorted(r.get("INVITED_JOB_ID") for r in got), sorted(ids),
                   "one run for each job the block stopped, once")
            for r in got:
                tap.eq(r.get("INVITED_JOB_STATE"), "blocked",
                       "job %s: INVITED_JOB_STATE=blocked" % r.get("INVITED_JOB_ID"))
                reason = r.get("INVITED_JOB_REASON", "")
                tap.ok("blocked" in reason.lower() and "\x1b" not in reason,
                       "job %s: the reason: %s" % (r.get("INVITED_JOB_ID"), reason))
            tap.ok(any(r.get("INVITED_JOB_NAME") == "blocked-0" for r in got),
                   "with the job's name")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run(main)
