#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""systemd integration without systemd: READY=1 once the socket is up,
STATUS= with jobs/pending/rate, WATCHDOG=1 while the loop turns, SIGHUP
reloads (RELOADING=1 .. READY=1) and says what needs a restart, STOPPING=1;
socket activation (LISTEN_FDS) through systemd-socket-activate."""
import os
import re
import shutil
import signal
import socket
import subprocess
import time

from harness import INVITED, INVITECTL, Env, deadline_wait, portal_file, run


class Notify:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []

    def pump(self):
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except (socket.timeout, BlockingIOError):
            pass

    def wait_for(self, pred, timeout, what):
        def seen():
            self.pump()
            return [m for m in self.messages if pred(m)]
        return deadline_wait(seen, timeout, what, step=0)

    def close(self):
        self.sock.close()


def main(tap):
    import tempfile
    ndir = tempfile.mkdtemp(prefix="invited-notify.")
    notify = Notify(os.path.join(ndir, "notify"))
    try:
        with Env(start=False, queue={"rate": "50", "burst": "5"}) as env:
            env.daemon_env = {"NOTIFY_SOCKET": os.path.join(ndir, "notify"),
                              "WATCHDOG_USEC": "400000"}
            env.start_daemon()
            ready = notify.wait_for(lambda m: "READY=1" in m, 10, "READY=1")
            tap.ok(ready, "READY=1")
            # the socket accepted connections before READY=1 went out
            p = env.ctl("status")
            tap.eq(p.returncode, 0, "the socket answers once ready")
            wd = notify.wait_for(lambda m: m == "WATCHDOG=1", 10, "WATCHDOG=1")
            start = len(wd)
            notify.wait_for(lambda m: m == "WATCHDOG=1", 10, "more WATCHDOG=1")
            deadline_wait(lambda: (notify.pump(), len([m for m in notify.messages
                                                       if m == "WATCHDOG=1"]) >= start + 3)[1],
                          10, "three more WATCHDOG=1")
            tap.ok(True, "WATCHDOG=1 keeps coming (WATCHDOG_USEC=400000)")
            st = notify.wait_for(lambda m: m.startswith("STATUS="), 10, "STATUS=")
            tap.ok(re.match(r"STATUS=\d+ jobs?, [\d,]+ pending, \d+/s", st[0]),
                   "STATUS= says jobs, pending, rate: %r" % st[0])

            p = env.ctl("submit", env.write("g.csv", portal_file(
                [["n%04d@partner.example" % i, "", "false", ""] for i in range(1500)])))
            tap.eq(p.returncode, 0, "a job of 1,500 rows")
            st = notify.wait_for(lambda m: re.match(r"STATUS=1 job, 1,\d{3} pending, [1-9]\d*/s$",
                                                    m), 20, "a STATUS= with the job and its rate")
            tap.ok(st, "STATUS= follows the job, with invitations per second: %r" % st[-1])

            # SIGHUP: the queue settings live, the rest said in the log
            notify.messages.clear()
            with open(env.conf) as f:
                text = f.read()
            with open(env.conf, "w") as f:
                f.write(text.replace("rate = 50\n", "rate = 80\n")
                        .replace("concurrency = 16\n", "concurrency = 4\n")
                        .replace("tenant = contoso.onmicrosoft.com\n",
                                 "tenant = fabrikam.onmicrosoft.com\n")
                        .replace("[daemon]\n", "[daemon]\nretention_days = 3\n"))
            env.daemon.send_signal(signal.SIGHUP)
            notify.wait_for(lambda m: m == "READY=1", 10, "READY=1 after the reload")
            tap.ok(notify.messages.index("RELOADING=1") < notify.messages.index("READY=1"),
                   "RELOADING=1 then READY=1", notify.messages)
            p, s = env.ctl_json("status")
            tap.eq(s["rate"]["configured"], 80, "the rate applies live")
            tap.eq(s["tenant"], "contoso.onmicrosoft.com", "the tenant does not")
            tap.ok(re.search(r"applied only after a restart of invited: tenant, "
                             r"retention_days", env.log()),
                   "the log says the tenant and retention_days need a restart", env.log())
            tap.ok("concurrency 4" in env.log(), "and what was reloaded")

            with open(env.conf, "w") as f:
                f.write(text.replace("rate = 50\n", "rate = -1\n"))
            env.daemon.send_signal(signal.SIGHUP)
            deadline_wait(lambda: "Failed to reload" in env.log(), 10, "the reload error")
            tap.ok(re.search(r"Failed to reload the configuration; the running one stays: "
                             r"\S+invited.conf:\d+: rate", env.log()),
                   "a bad file on SIGHUP: logged with file:line, the daemon goes on")
            p, s = env.ctl_json("status")
            tap.eq(s["rate"]["configured"], 80, "the running rate stays")

            env.daemon.send_signal(signal.SIGTERM)
            notify.wait_for(lambda m: m == "STOPPING=1", 10, "STOPPING=1")
            tap.eq(env.daemon.wait(30), 0, "STOPPING=1, then exit 0")
            env.daemon = None

            # socket activation: the daemon serves the socket it is handed
            activate = shutil.which("systemd-socket-activate")
            if not activate:
                print("ok %d - # SKIP systemd-socket-activate is not installed" % (tap.n + 1))
                tap.n += 1
                return
            with open(env.conf, "w") as f:
                f.write(text)
            os.unlink(env.sock) if os.path.exists(env.sock) else None
            log = open(os.path.join(env.dir, "activated.log"), "wb")
            proc = subprocess.Popen([activate, "-l", env.sock, INVITED, "-c", env.conf],
                                    stdout=log, stderr=log)
            try:
                deadline_wait(lambda: os.path.exists(env.sock), 10, "the activation socket")
                ino = os.stat(env.sock).st_ino
                p = env.ctl("status")
                tap.eq(p.returncode, 0, "socket activation: the first connection starts "
                                        "invited and is answered")
                tap.eq(os.stat(env.sock).st_ino, ino, "on the socket it was handed (not "
                                                     "bound again)")
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
                log.close()
    finally:
        notify.close()
        shutil.rmtree(ndir, ignore_errors=True)


if __name__ == "__main__":
    run(main)
