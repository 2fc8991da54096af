#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The disk under the database fills up in the middle of a job (a small
tmpfs, mounted as root; skipped where mounting is not allowed). The daemon
says so (log, and 'temporary' to a new upload), keeps answering, loses
nothing already accepted, and resumes by itself when space returns."""
import errno
import os
import subprocess
import sys
import time

from chaos import Env, RecordCounter, addresses, deadline_wait, run, submit, verify

N = 3000


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        return "not root"
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", path],
                       capture_output=True)
    return None if p.returncode == 0 else p.stderr.decode().strip()


def fill(path):
    """Write zeros until ENOSPC; returns the bytes written."""
    n = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n += f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
            if n > 1 << 30:
                raise RuntimeError("the small filesystem never filled up")
    try:  # the last partial pages too
        with open(path + ".tail", "wb", buffering=0) as f:
            for _ in range(4096):
                f.write(b"\0" * 512)
    except OSError:
        pass
    return n


def main(tap):
    env = Env(sim_args=["--latency-ms", "5"], start=False,
              queue={"rate": "500", "burst": "50", "concurrency": "16", "request_timeout": "2"})
    disk = os.path.join(env.dir, "disk")
    why = mount_tmpfs(disk, "8m")
    if why:
        env.close()
        print("1..0 # SKIP cannot mount a small tmpfs: %s" % why)
        sys.exit(77)
    try:
        with env:
            env.db_path = os.path.join(disk, "invited.db")
            env.write_config()
            env.start_daemon()
            emails = addresses("disk", N)
            job = submit(env, emails)
            rec = RecordCounter(env)
            deadline_wait(lambda: rec.count() >= N // 10, 60, "a tenth of the job sent")

            filler = os.path.join(disk, "filler")
            tap.diag("filled the disk with %d bytes at %d sent" % (fill(filler), rec.count()))
            deadline_wait(lambda: "No space left" in env.log() or "disk is full" in env.log(),
                          15, "the daemon to report the full disk")
            tap.ok(True, "the daemon reports the full disk: %s" % [
                l for l in env.log().splitlines() if "space" in l or "full" in l][0][24:])

            # sending stops while results cannot be written
            def stalled():
                a = rec.count()
                time.sleep(0.5)  # a rate is measured over time: two samples
                return rec.count() == a
            deadline_wait(stalled, 15, "sending to stop")
            stopped_at = rec.count()
            p, jobs = env.ctl_json("jobs")
            tap.ok(p.returncode == 0 and jobs, "jobs answered on a full disk")
            small = env.write("small.csv", b"Name,InvitedUserEmailAddress\n" + b"".join(
                b"n,full%03d@disk.example\n" % i for i in range(200)))
            p = env.ctl("submit", small)
            tap.ok(p.returncode == 75 and b"full" in p.stderr,
                   "a new upload on a full disk: 'temporary' (exit %d: %s)"
                   % (p.returncode, p.stderr.decode().strip()))
            with env.db() as db:
                tap.eq(db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0], 1,
                       "and nothing of it stored")
                tap.eq(db.execute("SELECT COUNT(*) FROM rows WHERE job_id = ?",
                                  (job,)).fetchone()[0], N,
                       "every row accepted before the disk filled is still there")

            os.unlink(filler)
            if os.path.exists(filler + ".tail"):
                os.unlink(filler + ".tail")
            p, done = env.wait_job(job, timeout=120)
            tap.eq((p.returncode, done and done["state"]), (0, "completed"),
                   "space returned: the job resumes by itself and completes (%d sent while "
                   "full)" % (stopped_at - N // 10))
            verify(tap, env, job, emails, 16, "disk full")
            p = env.ctl("submit", small, "--wait")
            tap.eq(p.returncode, 0, "the upload refused on the full disk is accepted now")
            env.stop_daemon()
    finally:
        subprocess.run(["umount", "-l", disk], capture_output=True)


if __name__ == "__main__":
    run(main)
