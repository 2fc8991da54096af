# SPDX-License-Identifier: MIT
"""Chaos-suite helpers: a job made of known addresses, a record counter
that reads the simulator's record incrementally, and the final check every
scenario ends with: each row of the job against the simulator's record.

Builds on tests/integration/harness.py (the real daemon, simulator and
invitectl in a temporary directory on 127.0.0.1).
"""
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import Env, deadline_wait, portal_file, run  # noqa: E402,F401

ROW_STATES = {0: "pending", 1: "in_flight", 2: "succeeded", 3: "failed", 4: "cancelled"}

# Fast settings: a scenario takes seconds, not minutes (docs/reliability.md).
FAST_QUEUE = {"rate": "2000", "burst": "100", "concurrency": "32", "max_attempts": "8",
              "request_timeout": "1"}


def seed():
    """The random seed of a scenario: $CHAOS_SEED, else the clock. Printed,
    so that a failure can be replayed."""
    s = int(os.environ.get("CHAOS_SEED", "0")) or int(time.time() * 1000) % 1000000
    print("# CHAOS_SEED=%d" % s, flush=True)
    return s


def addresses(prefix, n):
    return ["%s%05d@chaos-%d.example" % (prefix, i, i % 7) for i in range(n)]


def submit(env, emails, name="job.csv", extra=()):
    path = env.write(name, portal_file([[e, "", "false", ""] for e in emails]))
    p, job = env.ctl_json("submit", path, *extra)
    if p.returncode != 0 or not job:
        raise RuntimeError("submit failed (%d): %s" % (p.returncode, p.stderr.decode()[-500:]))
    return job["id"]


class RecordCounter:
    """Lines in the simulator's record, read incrementally (the file grows)."""

    def __init__(self, env):
        self.path = env.record_path
        self.offset = 0
        self.lines = 0

    def count(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return 0
        end = data.rfind(b"\n") + 1  # only complete lines
        self.lines += data.count(b"\n", 0, end)
        self.offset += end
        return self.lines


def vm_hwm_kib(pid):
    """Peak resident set (VmHWM) of a process in KiB, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def verify(tap, env, job_id, emails, max_dups, what, all_succeed=True, others=()):
    """The final state of every row against the simulator's record:
    no row missing or extra, every row terminal, each succeeded row's user id
    the one the simulator issued for its address, no invitation to a stranger
    (an address neither in emails nor in others, the other jobs' addresses),
    duplicates within max_dups, and the job's counts equal to its rows'."""
    want = {e.lower() for e in emails}
    with env.db() as db:
        rows = db.execute("SELECT line, email, state, invited_user_id, error_code FROM rows "
                          "WHERE job_id = ?", (job_id,)).fetchall()
        job = db.execute("SELECT total, succeeded, failed, cancelled FROM jobs WHERE id = ?",
                         (job_id,)).fetchone()
    rec = env.record()
    sent = {}
    for r in rec:
        sent.setdefault(r["address"].lower(), []).append(r)
    have = {r[1].lower() for r in rows}

    missing = sorted(want - have)
    tap.ok(not missing and len(rows) == len(emails),
           "%s: all %d rows stored, none missing (%d rows)" % (what, len(emails), len(rows)),
           "missing: %s" % missing[:10])
    nonterminal = [r for r in rows if r[2] not in (2, 3, 4)]
    tap.ok(not nonterminal, "%s: every row terminal (%d not)" % (what, len(nonterminal)),
           [(r[0], r[1], ROW_STATES.get(r[2])) for r in nonterminal[:10]])
    if all_succeed:
        bad = [r for r in rows if r[2] != 2]
        tap.ok(not bad, "%s: every row succeeded (%d did not)" % (what, len(bad)),
               [(r[0], r[1], ROW_STATES.get(r[2]), r[4]) for r in bad[:10]])
    disagree = []
    for line, email, state, uid, _ in rows:
        got = sent.get(email.lower(), [])
        if state == 2 and (not got or uid not in {g["user_id"] for g in got}):
            disagree.append((line, email, "succeeded, but not in the record as %s" % uid))
        elif state == 4 and got:
            disagree.append((line, email, "cancelled, but invited"))
    tap.ok(not disagree, "%s: every row agrees with the simulator's record (%d disagree)"
           % (what, len(disagree)), disagree[:10])
    strangers = sorted(set(sent) - want - {e.lower() for e in others})
    tap.ok(not strangers, "%s: nothing invited that was not in the file" % what, strangers[:10])
    dups = sum(len(v) - 1 for a, v in sent.items() if a in want)
    tap.ok(dups <= max_dups, "%s: %d duplicate invitations (at most %d)" % (what, dups, max_dups))
    counts = {s: sum(1 for r in rows if r[2] == s) for s in (2, 3, 4)}
    tap.eq(tuple(job or ()), (len(rows), counts[2], counts[3], counts[4]),
           "%s: the job's counts equal its rows' (total, succeeded, failed, cancelled)" % what)
    return dups


def rng(s):
    return random.Random(s)
