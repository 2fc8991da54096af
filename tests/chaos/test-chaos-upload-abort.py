#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A submit interrupted mid-upload stores nothing: the client closes after
the request, inside a data frame, or before the empty frame; invitectl is
killed while reading a pipe; the daemon is killed mid-upload. Each time no
job and no row is stored, nothing is sent, the daemon answers, and the same
file submitted whole afterwards is stored and completes."""
import os
import signal
import subprocess
import time

from chaos import Env, addresses, deadline_wait, portal_file, run, verify
from harness import INVITECTL
from wire import MAX_FRAME, connect, frame, recv_reply, request

N = 20000  # with a message per row about 2.4 MB: two full data frames and a part
MESSAGE = "Welcome to the partner portal; this invitation was sent by the chaos suite."


def stored(env):
    with env.db() as db:
        return (db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0],
                db.execute("SELECT COUNT(*) FROM rows").fetchone()[0])


def main(tap):
    with Env(sim_args=["--latency-ms", "1"],
             queue={"rate": "5000", "burst": "200", "concurrency": "32"}) as env:
        emails = addresses("abort", N)
        data = portal_file([[e, "", "false", MESSAGE] for e in emails])
        tap.ok(len(data) > 2 * MAX_FRAME, "the file spans %d frames" % (len(data) // MAX_FRAME + 1))
        req = {"op": "submit", "name": "interrupted", "filename": "big.csv"}
        chunks = [data[i:i + MAX_FRAME] for i in range(0, len(data), MAX_FRAME)]

        cases = {
            "after the request": frame(req),
            "inside the second data frame": frame(req) + frame(chunks[0]) + frame(chunks[1])[:500000],
            "inside a frame header": frame(req) + frame(chunks[0]) + frame(chunks[1])[:2],
            "before the empty frame": frame(req) + b"".join(frame(c) for c in chunks),
        }
        for what, wire in cases.items():
            s = connect(env.sock)
            s.sendall(wire)
            s.close()
            # the daemon has seen the close once it answers the next request
            st = request(env.sock, {"op": "status"})
            tap.ok(st and st["ok"], "closed %s: the daemon answers" % what)
            tap.eq(stored(env), (0, 0), "closed %s: nothing stored" % what)

        # invitectl killed while it reads the file from a pipe
        p = subprocess.Popen([INVITECTL, "-s", env.sock, "submit", "-"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(data[:len(data) // 2])
        p.stdin.flush()
        deadline_wait(lambda: request(env.sock, {"op": "stats"})["stats"]["connections"] >= 2,
                      10, "invitectl's upload connection")
        p.kill()
        p.wait()
        p.stdin.close()
        st = request(env.sock, {"op": "status"})
        tap.ok(st and st["ok"], "invitectl killed mid-upload: the daemon answers")
        tap.eq(stored(env), (0, 0), "invitectl killed mid-upload: nothing stored")

        # the daemon killed mid-upload (the client still holds it open)
        s = connect(env.sock)
        s.sendall(frame(req) + frame(chunks[0]))
        deadline_wait(lambda: request(env.sock, {"op": "stats"})["stats"]["connections"] >= 2,
                      10, "the upload connection")
        env.stop_daemon(signal.SIGKILL)
        s.close()
        env.start_daemon()
        tap.eq(stored(env), (0, 0), "the daemon killed mid-upload: nothing stored after restart")
        tap.eq(len(env.record()), 0, "nothing was sent for any interrupted upload")

        # the whole file now: stored once, and it completes
        path = env.write("big.csv", data)
        p, job = env.ctl_json("submit", path)
        tap.eq((p.returncode, job and job["total"]), (0, N), "the whole file is then stored")
        p, done = env.wait_job(job["id"], timeout=120)
        tap.eq(done and done["state"], "completed", "and completes")
        verify(tap, env, job["id"], emails, 0, "after interrupted uploads")

        # a client that stalls mid-upload holds no lock: sending goes on
        busy = addresses("busy", N)
        path = env.write("busy.csv", portal_file([[e, "", "false", ""] for e in busy]))
        p, job2 = env.ctl_json("submit", path)
        tap.eq(p.returncode, 0, "a second job to send")
        base = len(emails)
        deadline_wait(lambda: len(env.record()) >= base + 500, 30, "sending under way")
        s = connect(env.sock)
        s.sendall(frame(req) + frame(chunks[0]))
        deadline_wait(lambda: request(env.sock, {"op": "stats"})["stats"]["connections"] >= 2,
                      10, "the stalled upload's connection")
        before = len(env.record())
        time.sleep(2)  # the stall measured: how much is sent meanwhile
        during = len(env.record()) - before
        tap.ok(during >= 500 or len(env.record()) >= base + N,
               "a stalled upload does not stop sending (%d invitations in its 2 s)" % during)
        s.close()
        p, done = env.wait_job(job2["id"], timeout=120)
        tap.eq(done and done["state"], "completed", "the job sent meanwhile completes")
        tap.eq(stored(env)[0], 2, "the stalled upload stored nothing")


if __name__ == "__main__":
    run(main)
