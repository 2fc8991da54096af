#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every exit code of SPEC §3: 0, 1, 64, 65, 66, 69, 75, 77, 78."""
import os
import subprocess

from harness import INVITED, Env, deadline_wait, portal_file, run

NOBODY = (65534, 65534)


def rows(prefix, n):
    return [["%s%03d@partner.example" % (prefix, i), "", "false", ""] for i in range(n)]


def main(tap):
    with Env(sim_args=["--reject", "refused@partner.example"]) as env:
        good = env.write("good.csv", portal_file(rows("ok", 20)))
        p = env.ctl("submit", good, "--wait")
        tap.eq(p.returncode, 0, "0: submit --wait of a job whose rows all succeed")
        tap.ok(p.stdout.strip().isdigit(), "submit prints the job id", p.stdout)

        mixed = env.write("mixed.csv", portal_file(
            rows("mx", 5) + [["refused@partner.example", "", "false", ""]]))
        p = env.ctl("submit", mixed, "--wait")
        tap.eq(p.returncode, 1, "1: submit --wait of a job with a failed row")
        job_id = p.stdout.decode().split()[0] if p.stdout.split() else "0"
        p = env.ctl("wait", job_id)
        tap.eq(p.returncode, 1, "1: wait on that job")
        p, shown = env.ctl_json("show", job_id, "--state", "failed")
        failed = shown["rows"] if shown else []
        tap.ok(len(failed) == 1 and failed[0]["email"] == "refused@partner.example"
               and failed[0]["http_status"] == 400 and failed[0]["error_code"]
               and failed[0]["error_message"] and failed[0]["attempts"] == 1,
               "the failed row keeps Graph's status, code and message, after one attempt",
               failed)

        p = env.ctl("frobnicate")
        tap.eq(p.returncode, 64, "64: unknown command")
        p = env.ctl("show", "abc")
        tap.eq(p.returncode, 64, "64: job id that is not a number")
        p = env.ctl("show", "99999")
        tap.eq(p.returncode, 64, "64: no such job")
        p = env.ctl("submit", good, "--redirect-url", "ftp://nope")
        tap.eq(p.returncode, 64, "64: bad --redirect-url")

        bad = env.write("bad.csv", b"hello,world\n1,2\n")
        p = env.ctl("submit", bad)
        tap.eq(p.returncode, 65, "65: a file without a recognizable header")
        tap.ok(b":1:" in p.stderr, "reported at line 1", p.stderr)

        p = env.ctl("submit", os.path.join(env.dir, "missing.csv"))
        tap.eq(p.returncode, 66, "66: a file that cannot be read")

        p = env.ctl("-s", os.path.join(env.dir, "no-such.sock"), "jobs")
        tap.eq(p.returncode, 69, "69: no daemon at the socket")

        # 77: a uid that is neither root nor in allow_group
        os.chmod(env.dir, 0o755)
        p = env.ctl("jobs", user=NOBODY)
        tap.eq(p.returncode, 77, "77: the socket refuses an outsider (file mode)")
        os.chmod(env.sock, 0o666)
        p = env.ctl("jobs", user=NOBODY)
        tap.eq(p.returncode, 77, "77: the daemon refuses an outsider (SO_PEERCRED)")
        tap.ok("uid 65534" in env.log(), "the refusal is logged with the uid")
        os.chmod(env.dir, 0o700)

        # 78: bad configuration
        conf = env.write("bad.conf", b"[queue]\nrate = fast\n")
        p = subprocess.run([INVITED, "-c", conf], capture_output=True, timeout=30)
        tap.eq(p.returncode, 78, "78: invited refuses a bad config")
        tap.ok(("%s:2:" % conf).encode() in p.stderr and b"rate" in p.stderr,
               "with file, line and reason", p.stderr)
        p = subprocess.run([INVITED, "-c", conf, "--check-config"], capture_output=True,
                           timeout=30)
        tap.eq(p.returncode, 78, "78: --check-config too")
        conf = env.write("unknown.conf", b"[graph]\ntenant = x.example\nclientid = 1\n")
        p = subprocess.run([INVITED, "-c", conf], capture_output=True, timeout=30)
        tap.ok(p.returncode == 78 and b":3:" in p.stderr and b"clientid" in p.stderr,
               "78: an unknown key is named with its line", p.stderr)

    # 75: the tenant is blocked by Graph's anti-abuse 403
    with Env(sim_args=["--block-after", "5"], queue={"rate": "100", "concurrency": "1"}) as env:
        path = env.write("g.csv", portal_file(rows("bl", 30)))
        p = env.ctl("submit", path, "--wait")
        tap.eq(p.returncode, 75, "75: submit --wait when Graph blocks the tenant")
        tap.ok(b"suspicious" in p.stderr, "the reason is shown", p.stderr)
        p, jobs = env.ctl_json("jobs")
        tap.ok(jobs and jobs[0]["state"] == "blocked" and jobs[0]["succeeded"] == 5
               and jobs[0]["failed"] == 0 and jobs[0]["pending"] == 25,
               "the job shows blocked; no row was failed for it", jobs and jobs[0])
        p, st = env.ctl_json("status")
        tap.ok(st and st.get("blocked"), "status shows the block", st)


if __name__ == "__main__":
    run(main)
