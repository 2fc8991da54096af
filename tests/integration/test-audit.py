#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The audit trail: every state-changing request (submit, cancel, pause,
resume, retry, reload) is recorded with time, uid, user, job and the
uploaded file's SHA-256, append-only, and `invitectl audit` lists it."""
import hashlib
import json
import os
import sqlite3
import sys

from harness import Env, portal_file, run

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "chaos"))
import wire  # noqa: E402  (the frame protocol, for an older client's `validate` op)


def main(tap):
    with Env(queue={"rate": "5", "burst": "1", "concurrency": "1"},
             sim_args=["--reject", "bad0@partner.example"]) as env:
        data = portal_file([["bad0@partner.example", "", "false", ""]] +
                           [["audit%03d@partner.example" % i, "", "false", ""] for i in range(60)])
        path = env.write("guests.csv", data)
        p, job = env.ctl_json("submit", path)
        tap.eq(p.returncode, 0, "submit")
        jid = job["id"]
        for verb in ("pause", "resume", "cancel", "retry"):
            p = env.ctl(verb, str(jid))
            tap.eq(p.returncode, 0, verb)
        p = env.ctl("validate", path)
        tap.eq(p.returncode, 0, "validate (not a change: not audited)")
        # an older client asks the daemon to validate: no audit row, no write
        # lock, but the journal says who checked which file
        s = wire.connect(env.sock)
        s.sendall(wire.frame(json.dumps({"op": "validate", "filename": "old-client.csv"}).encode()))
        s.sendall(wire.frame(data) + wire.frame(b""))
        reply = wire.recv_reply(s)
        s.close()
        tap.ok(reply.get("ok") and reply.get("valid") is True and reply.get("rows") == 61,
               "the daemon's validate op (older clients) answers", reply)
        tap.ok(("File 'old-client.csv' validated for root (uid 0): 61 rows, 0 problems, sha256 %s"
                % hashlib.sha256(data).hexdigest()) in env.log(),
               "the daemon's validate is in the journal with uid, file and SHA-256", env.log())
        bad = env.write("bad.csv", b"no header here\n")
        p = env.ctl("submit", bad)
        tap.eq(p.returncode, 65, "an invalid file is refused (nothing stored, not audited)")

        p, entries = env.ctl_json("audit")
        tap.eq(p.returncode, 0, "invitectl audit --json")
        entries = entries or []
        tap.eq([e["action"] for e in entries], ["retry", "cancel", "resume", "pause", "submit"],
               "one entry per change, newest first")
        sub = entries[-1] if entries else {}
        tap.eq(sub.get("sha256"), hashlib.sha256(data).hexdigest(),
               "the submit carries the SHA-256 of the uploaded bytes")
        tap.ok(all(e["uid"] == 0 and e["user"] == "root" and e["job"] == jid and e["at"]
                   for e in entries), "each with time, uid, user name and job", entries)
        tap.ok(sub.get("detail") == "61 rows", "the submit says how many rows", sub)

        p = env.ctl("audit")
        lines = p.stdout.decode().splitlines()
        tap.ok(p.returncode == 0 and lines and lines[0].split()[:6] ==
               ["TIME", "UID", "USER", "ACTION", "JOB", "SHA256"] and len(lines) == 6,
               "invitectl audit prints a table", p.stdout.decode())
        p, only = env.ctl_json("audit", "--job", "999")
        tap.eq(only, [], "--job filters")
        p, one = env.ctl_json("audit", "--limit", "2")
        tap.eq([e["action"] for e in one or []], ["retry", "cancel"], "--limit 2")

        # reload through the socket, as its caller
        with open(env.conf) as f:
            text = f.read()
        with open(env.conf, "w") as f:
            f.write(text.replace("rate = 5\n", "rate = 7\n"))
        p = env.ctl("reload")
        tap.ok(p.returncode == 0 and b"rate 7/s" in p.stderr, "invitectl reload applies the rate",
               p.stderr)
        p, st = env.ctl_json("status")
        tap.eq(st["rate"]["configured"], 7, "status shows the reloaded rate")
        p, entries = env.ctl_json("audit", "--limit", "1")
        tap.ok(entries and entries[0]["action"] == "reload" and entries[0]["uid"] == 0 and
               entries[0]["job"] is None, "the reload is audited", entries)
        with open(env.conf, "w") as f:
            f.write(text.replace("rate = 5\n", "rate = fast\n"))
        p = env.ctl("reload")
        tap.ok(p.returncode == 78 and b"rate: 'fast'" in p.stderr,
               "a bad configuration: exit 78 with file:line, nothing changed", p.stderr)
        p, st = env.ctl_json("status")
        tap.eq(st["rate"]["configured"], 7, "the running rate stays")

        # append-only, also for someone with write access to the file
        db = sqlite3.connect(env.db_path, timeout=10)
        n = db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
        tap.eq(n, 6, "six entries in the audit table")
        for sql in ("UPDATE audit SET user = 'mallory'", "DELETE FROM audit"):
            try:
                db.execute(sql)
                db.commit()
                tap.ok(False, "refused: " + sql)
            except sqlite3.DatabaseError as e:
                tap.ok("append-only" in str(e), "refused: %s (%s)" % (sql, e))
        db.close()

        # the same transaction: a job and its submit entry exist together
        with env.db() as ro:
            orphan = ro.execute("SELECT COUNT(*) FROM jobs WHERE id NOT IN"
                                " (SELECT job_id FROM audit WHERE action = 'submit')").fetchone()[0]
        tap.eq(orphan, 0, "every stored job has its submit entry")
        tap.ok("Job %d: pause by root (uid 0)" % jid in env.log(),
               "the log has the change too", env.log())


if __name__ == "__main__":
    run(main)
