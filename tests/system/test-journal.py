#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Under the journal, every audited change is also a journal entry with the
structured fields INVITED_ACTION, INVITED_JOB, INVITED_UID, INVITED_USER and
INVITED_SHA256 (sd_journal_send), and not a plain stderr line.

Where journald answers (a probe written with logger --journald comes back
through journalctl) the test reads the real journal. Elsewhere, as root, it
re-runs itself in a private mount namespace (unshare -m) with a tmpfs on /run
and plays journald on /run/systemd/journal/socket, reading the native
protocol. Otherwise it skips."""
import hashlib
import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import Env, deadline_wait, portal_file, run, skip_all  # noqa: E402

JOURNAL_SOCKET = "/run/systemd/journal/socket"


def journalctl(field, value):
    p = subprocess.run(["journalctl", "--no-pager", "-o", "json", "%s=%s" % (field, value)],
                       capture_output=True, text=True, timeout=30)
    return [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]


def real_journal_works():
    if not (os.path.exists(JOURNAL_SOCKET) and shutil.which("journalctl") and
            shutil.which("logger")):
        return False
    probe = secrets.token_hex(8)
    p = subprocess.run(["logger", "--journald"], input="MESSAGE=invited test probe\n"
                       "INVITED_PROBE=%s\n" % probe, text=True, capture_output=True, timeout=30)
    try:
        deadline_wait(lambda: p.returncode == 0 and journalctl("INVITED_PROBE", probe), 10,
                      "the probe entry")
        return True
    except TimeoutError:
        return False


class FakeJournal:
    """journald's native protocol on a datagram socket (systemd.journal-fields(7))."""

    def __init__(self):
        os.makedirs(os.path.dirname(JOURNAL_SOCKET), exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(JOURNAL_SOCKET)
        self.sock.settimeout(0.2)
        self.entries = []
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            self.entries.append(self.parse(data))

    @staticmethod
    def parse(data):
        fields, i = {}, 0
        while i < len(data):
            nl = data.index(b"\n", i)
            line = data[i:nl]
            if b"=" in line:
                k, v = line.split(b"=", 1)
                i = nl + 1
            else:  # binary-safe: NAME\n<le64 size><value>\n
                k = line
                size = struct.unpack("<Q", data[nl + 1:nl + 9])[0]
                v = data[nl + 9:nl + 9 + size]
                i = nl + 9 + size + 1
            fields[k.decode()] = v.decode(errors="replace")
        return fields

    def find(self, field, value):
        return [e for e in list(self.entries) if e.get(field) == value]

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def main(tap):
    fake = None
    if os.environ.get("INVITED_FAKE_JOURNAL") == "1":
        fake = FakeJournal()
        tap.diag("no journald: playing it in a private mount namespace")
    elif not real_journal_works():
        if os.geteuid() == 0 and shutil.which("unshare"):
            script = ("mount -t tmpfs -o mode=0755 invited-test /run && exec \"$0\" \"$@\"")
            p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                                sys.executable, os.path.abspath(__file__)],
                               env=dict(os.environ, INVITED_FAKE_JOURNAL="1"), timeout=120)
            sys.exit(p.returncode)
        skip_all("no journald here, and no root to play it")

    def entries(field, value):
        return fake.find(field, value) if fake else journalctl(field, value)

    try:
        with Env(start=False) as env:
            log = os.path.join(env.dir, "invited.log")
            open(log, "ab").close()
            st = os.stat(log)
            # stderr is the "journal stream", as systemd sets it up for a service
            env.daemon_env = {"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)}
            env.start_daemon()
            name = "journal-%s.csv" % secrets.token_hex(4)
            data = portal_file([["j%d@partner.example" % i, "", "false", ""] for i in range(3)])
            p, job = env.ctl_json("submit", env.write(name, data))
            tap.eq(p.returncode, 0, "submit")
            jid = str(job["id"])
            tap.eq(env.ctl("pause", jid).returncode, 0, "pause")
            sha = hashlib.sha256(data).hexdigest()
            got = deadline_wait(lambda: [e for e in entries("INVITED_SHA256", sha)
                                         if e.get("INVITED_JOB") == jid], 15,
                                "the submit's journal entry")
            e = got[0]
            tap.ok(e.get("INVITED_ACTION") == "submit" and e.get("INVITED_UID") == "0" and
                   e.get("INVITED_USER") == "root" and name in e.get("MESSAGE", "") and
                   e.get("PRIORITY") == "5",
                   "submit: INVITED_ACTION, INVITED_JOB, INVITED_UID, INVITED_USER, "
                   "INVITED_SHA256 (%s)" % sorted(k for k in e if k.startswith("INVITED_")), e)
            pause = deadline_wait(lambda: [x for x in entries("INVITED_JOB", jid)
                                           if x.get("INVITED_ACTION") == "pause"], 15,
                                  "the pause entry")
            tap.ok(pause[0].get("INVITED_UID") == "0" and "INVITED_SHA256" not in pause[0],
                   "pause: the same fields, no SHA-256", pause[0])
            tap.ok("submitted by" not in env.log() and "<6>" in env.log(),
                   "audit lines went to the journal; other lines keep the <N> prefix on stderr",
                   env.log())
    finally:
        if fake:
            fake.close()


if __name__ == "__main__":
    run(main)
