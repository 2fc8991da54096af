#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What the daemon makes of Graph's answers (SPEC §9, issue 10 items 10-12):
client-request-id per attempt, kept per row and equal to what Graph got;
invalid UTF-8 from Graph; a permanent 400 inside a $batch; Retry-After that
is not delay-seconds; a cancel that finds every row in flight; in_flight
counting only rows on the wire; retry --error-code in any case."""
import json
import re
import subprocess
import time

from harness import Env, deadline_wait, portal_file, run

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def guests(prefix, n):
    return [["%s%02d@partner.example" % (prefix, i), "", "false", ""] for i in range(n)]


def submit(tap, env, rows, name):
    path = env.write(name + ".csv", portal_file(rows))
    p, job = env.ctl_json("submit", path)
    tap.ok(p.returncode == 0 and job, "%s: submitted" % name, p.stderr)
    return job["id"] if job else 0


def rows_of(env, jid):
    p, out = env.ctl_json("show", str(jid))
    return p, (out or {}).get("rows", [])


def test_client_request_id(tap):
    for batch in ("1", "20"):
        with Env(queue={"batch": batch}) as env:
            jid = submit(tap, env, guests("crid" + batch + "-", 25), "crid-batch" + batch)
            p, j = env.wait_job(jid)
            tap.eq(p.returncode, 0, "batch = %s: every row succeeded" % batch)
            p, rows = rows_of(env, jid)
            got = {r["email"].lower(): r.get("client_request_id") for r in rows}
            sent = {}
            for rec in env.record():
                sent.setdefault(rec["address"].lower(), []).append(rec.get("client_request_id"))
            tap.ok(len(rows) == 25 and all(GUID.match(v or "") for v in got.values()),
                   "batch = %s: every row keeps a GUID client_request_id" % batch, rows[:2])
            tap.eq(len(set(got.values())), 25, "batch = %s: one of its own per row" % batch)
            tap.ok(all(sent.get(a) and sent[a][-1] == v for a, v in got.items()),
                   "batch = %s: each equals what the simulator got for that invitation" % batch,
                   json.dumps({"rows": dict(list(got.items())[:3]),
                               "sim": dict(list(sent.items())[:3])}))


def test_invalid_utf8(tap):
    for batch in ("1", "20"):
        with Env(queue={"batch": batch}, sim_args=["--garble", "garbled@partner.example"]) as env:
            rows = [["garbled@partner.example", "", "false", ""]] + guests("fine", 3)
            jid = submit(tap, env, rows, "garbled" + batch)
            p, j = env.wait_job(jid)
            tap.eq(p.returncode, 1, "batch = %s: the job ends with a failed row" % batch)
            p, rows = rows_of(env, jid)
            tap.ok(p.returncode == 0 and len(rows) == 4,
                   "batch = %s: show --json of the job works" % batch, p.stderr)
            bad = [r for r in rows if r["email"] == "garbled@partner.example"]
            bad = bad[0] if bad else {}
            tap.ok(bad.get("state") == "failed" and bad.get("attempts") == 1 and
                   "\ufffd" in (bad.get("error_message") or "") and
                   "garbled by the simulator" in (bad.get("error_message") or ""),
                   "batch = %s: the row failed at once with Graph's message, invalid bytes "
                   "as U+FFFD" % batch, bad)
            tap.ok((bad.get("request_id") or "").startswith("\ufffd"),
                   "batch = %s: its request-id too" % batch, bad.get("request_id"))
            p = env.ctl("show", str(jid))
            tap.ok(p.returncode == 0 and b"garbled@partner.example" in p.stdout,
                   "batch = %s: invitectl show JOB works" % batch, p.stderr)
            out = env.dir + "/results.csv"
            p = env.ctl("results", "-o", out, str(jid))
            data = open(out, "rb").read() if p.returncode == 0 else b""
            tap.ok(p.returncode == 0 and b"garbled by the simulator" in data and
                   data.decode("utf-8", "strict") is not None,
                   "batch = %s: invitectl results works and writes valid UTF-8" % batch,
                   p.stderr)


def test_batch_permanent_400(tap):
    rejected = ["nope%d@partner.example" % i for i in range(3)]
    args = []
    for a in rejected:
        args += ["--reject", a]
    with Env(queue={"batch": "20"}, sim_args=args) as env:
        rows = guests("ok", 17) + [[a, "", "false", ""] for a in rejected]
        jid = submit(tap, env, rows, "batch400")
        p, j = env.wait_job(jid)
        p, rows = rows_of(env, jid)
        failed = [r for r in rows if r["state"] == "failed"]
        tap.eq(sorted(r["email"] for r in failed), rejected, "the rejected addresses failed")
        tap.ok(all(r["attempts"] == 1 and r["http_status"] == 400 for r in failed),
               "each with attempts 1 (not sent again alone)",
               [(r["email"], r["attempts"]) for r in failed])
        st = env.sim_stats()
        tap.eq(st["invitation_status"].get("400"), 3, "the simulator saw each 400 once")
        tap.eq(st["batches"], 1, "all 20 in one $batch")


def test_retry_after(tap):
    # every first answer is a 429 whose Retry-After is not delay-seconds: a
    # sign, a space inside, garbage (ignored: the 3 s default backoff), or an
    # HTTP date in the past in the obsolete forms (no wait)
    backoff = {str(3000 << k) for k in range(6)}
    for text, want in (("-1", backoff), ("Sunday, 06-Nov-94 08:49:37 GMT", {"0"}),
                       ("Sun Nov  6 08:49:37 1994", {"0"})):
        with Env(queue={"concurrency": "1", "burst": "1"},
                 sim_args=["--fail-429", "50", "--seed", "7", "--retry-after-text", text]) as env:
            t0 = time.monotonic()
            jid = submit(tap, env, guests("ra", 4), "retry-after")
            try:
                p, j = env.wait_job(jid, timeout=40)
            except subprocess.TimeoutExpired:
                p = subprocess.CompletedProcess([], -1)
            took = time.monotonic() - t0
            pauses = re.findall(r"pausing for (\d+) ms", env.log())
            tap.ok(p.returncode == 0 and took < 40,
                   "Retry-After %r: the job completes (%.1f s)" % (text, took), env.log()[-2000:])
            tap.ok(pauses and all(x in want for x in pauses),
                   "Retry-After %r: each pause is %s ms, never a long one" %
                   (text, "the usual backoff's" if len(want) > 1 else "0"), pauses)


def test_cancel_in_flight(tap):
    with Env(sim_args=["--latency-ms", "1500"]) as env:
        jid = submit(tap, env, guests("cif", 3), "cancel-in-flight")
        deadline_wait(lambda: (env.ctl_json("show", str(jid))[1] or {}).get("job", {})
                      .get("in_flight") == 3, 10, "3 rows in flight")
        p, out = env.ctl_json("cancel", str(jid))
        tap.eq((out or {}).get("changed"), 0, "cancel while every row is in flight: none cancelled")
        p, j = env.wait_job(jid)
        p, out = env.ctl_json("show", str(jid))
        job = (out or {}).get("job", {})
        tap.ok(job.get("state") == "completed" and job.get("succeeded") == 3 and
               job.get("cancelled") == 0,
               "every row succeeded: the job is completed, not cancelled", job)


def test_in_flight(tap):
    # one token a second, answers after 2 s: the rows claimed ahead wait for
    # their token and are not on the wire
    with Env(queue={"rate": "1", "burst": "1", "concurrency": "16"},
             sim_args=["--latency-ms", "2000"]) as env:
        jid = submit(tap, env, guests("inf", 12), "in-flight")
        samples = []

        def sample():
            p, out = env.ctl_json("show", str(jid))
            p2, st = env.ctl_json("stats")
            job = (out or {}).get("job", {})
            stats = (st or {}).get("stats", st or {})
            samples.append((job.get("in_flight"), stats.get("in_flight"), stats.get("claimed"),
                            env.sim_stats()["in_flight"]))
            return len(samples) >= 8
        deadline_wait(sample, 30, "samples", step=0.25)
        tap.ok(all(s[0] is not None and s[0] <= s[3] + 1 for s in samples),
               "the job's in_flight never exceeds the requests the simulator holds "
               "(job, stats, claimed, sim)", samples)
        tap.ok(all(s[1] is not None and s[1] <= s[3] + 1 for s in samples),
               "nor does stats' in_flight", samples)
        tap.ok(any(s[2] and s[2] >= 5 for s in samples),
               "while rows are claimed, waiting for a token", samples)
        env.ctl("cancel", str(jid))


def test_retry_code_case(tap):
    with Env(sim_args=["--reject", "no0@partner.example", "--reject", "no1@partner.example"]) as env:
        rows = [["no%d@partner.example" % i, "", "false", ""] for i in range(2)] + guests("y", 2)
        jid = submit(tap, env, rows, "retry-code")
        env.wait_job(jid)
        p, out = env.ctl_json("retry", "--error-code", "badrequest", str(jid))
        tap.ok(p.returncode == 0 and (out or {}).get("changed") == 2,
               "retry --error-code badrequest re-queues the BadRequest rows", (p.stderr, out))
        env.wait_job(jid)
        p, out = env.ctl_json("retry", "--error-code", "BADREQUEST", str(jid))
        tap.eq((out or {}).get("changed"), 2, "and BADREQUEST")


def main(tap):
    test_client_request_id(tap)
    test_invalid_utf8(tap)
    test_batch_permanent_400(tap)
    test_retry_after(tap)
    test_cancel_in_flight(tap)
    test_in_flight(tap)
    test_retry_code_case(tap)


if __name__ == "__main__":
    run(main)
