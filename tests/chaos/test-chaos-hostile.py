#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SPEC P8, the hostile scenario: 200 local clients of 13 member uids mix
pipelined requests whose replies they never read, stalled uploads, idle
connections, 1 MiB fields, malformed and oversized frames (and one more uid
floods connections past max_connections_per_uid) while a 20,000-row job
is sent at 200/s to a simulator that allows 300/s. The clients run in
processes of their own (one per uid, under setpriv), apart from the
process that measures. Prints and asserts:
the daemon's peak RSS (VmHWM) <= 64 MiB, p99 of a well-formed client's
`status` <= 100 ms, root's `submit` succeeds, and the job keeps >= 95% of
its configured rate."""
import asyncio
import grp
import json
import os
import random
import select
import socket
import sqlite3
import struct
import subprocess
import sys
import time

from chaos import Env, addresses, run, seed, submit, vm_hwm_kib
from harness import INVITECTL, portal_file
from wire import MAX_FRAME, frame, request

N = 20000
RATE = 200
UIDS = [60001 + i for i in range(20)]  # 20 members x 10 clients = 200
CLIENTS = 200
FLOOD_UID = 60100
FLOOD = 40
WARMUP_S = 4
ATTACK_S = int(os.environ.get("HOSTILE_SECONDS", "60"))
KINDS = [int(k) for k in os.environ.get("HOSTILE_KINDS", "0,1,2,3,4,5").split(",")]
HWM_LIMIT_KIB = 64 * 1024
P99_LIMIT_MS = 100
JOBS_PER_UID = 200  # `jobs --all` pages of ~600 jobs with 256-byte names


# ---- the swarm: one process per uid, started with setpriv ----

async def read_reply(reader, timeout):
    h = await asyncio.wait_for(reader.readexactly(4), timeout)
    (n,) = struct.unpack(">I", h)
    return await asyncio.wait_for(reader.readexactly(n), timeout)


async def until_eof(reader, end):
    """What the daemon did before the end: "closed", a reply ("answered?":
    none expected, but a refusal of the connection is "too many
    connections"), or nothing ("open at the end")."""
    try:
        got = await asyncio.wait_for(reader.read(4096), max(0.1, end - time.monotonic()))
    except asyncio.TimeoutError:
        return "open at the end"
    except ConnectionError:
        return "closed"
    if got == b"":
        return "closed"
    return "too many connections" if b'"temporary"' in got else "answered?"


async def one(kind, path, end, tally, job, rnd):
    if kind == 0:  # pipelined requests, replies never read (a raw socket: nothing reads)
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, path)
            reqs = [frame({"op": "jobs", "all": True}), frame({"op": "status"}),
                    frame({"op": "rows", "id": job, "limit": 5000, "input": True})]
            await loop.sock_sendall(sock, b"".join(rnd.choice(reqs) for _ in range(300)))
            pl = select.poll()
            pl.register(sock.fileno(), select.POLLRDHUP | select.POLLHUP)
            closed = False
            while not closed and time.monotonic() < end:
                await asyncio.sleep(0.5)
                closed = bool(pl.poll(0))  # the daemon hung up (idle_timeout)
            tally["unread: closed" if closed else "unread: open at the end"] = 1
        finally:
            sock.close()
        return
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        if kind == 1:  # a stalled upload: a few rows, then nothing
            writer.write(frame({"op": "submit", "filename": "stalled.csv", "name": "stalled"}) +
                         frame(portal_file([["s%d@stall.example" % i, "", "false", ""]
                                            for i in range(200)])))
            await writer.drain()
            got = await until_eof(reader, end)
            tally["stalled upload: %s" % got.replace("closed", "aborted")] = 1
        elif kind == 2:  # idle: connects and says nothing
            got = await until_eof(reader, end)
            tally["idle: %s" % got] = 1
        elif kind == 3:  # 1 MiB fields
            key = rnd.choice(["filename", "name", "message", "language", "cc", "redirect_url"])
            writer.write(frame({"op": "submit", key: "\x1b" + "A" * (MAX_FRAME - 200)}))
            await writer.drain()
            reply = json.loads(await read_reply(reader, 30))
            code = reply.get("error", {}).get("code")
            tally["1 MiB field: %s" % ("refused" if code == "usage" else
                                       "too many connections" if code == "temporary" else
                                       "accepted?")] = 1
        elif kind == 4:  # malformed frames
            bad = [b"{not json", b"[1,2]", b"42", b'{"op":5}', b'{"op":"nope"}',
                   b'{"op":"job","id":"x"}', b'{"op":"jobs","limit":-1}', b"\xff\xfe\x00",
                   b'{"op":"status","op":"jobs"}', b'{"op":"retry","id":1,"error_code":"\\u001b"}']
            for _ in range(20):
                payload = (bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 100)))
                           if rnd.random() < 0.3 else rnd.choice(bad))
                writer.write(frame(payload))
                await writer.drain()
                reply = await read_reply(reader, 30)
                tally["malformed: %s" % ("refused" if b'"ok":false' in reply else "ok?")] = 1
                await asyncio.sleep(0.05)
        elif kind == 5:  # a length past 1 MiB
            writer.write(struct.pack(">I", MAX_FRAME + 1 + rnd.randrange(1 << 30)) + b"{}")
            await writer.drain()
            got = await until_eof(reader, time.monotonic() + 30)
            tally["oversized: %s" % got] = 1
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def client(i, path, end, counts, job, rnd):
    kind = KINDS[i % len(KINDS)]
    while time.monotonic() < end:
        tally = {}
        try:
            await one(kind, path, end, tally, job, rnd)
        except asyncio.TimeoutError:
            tally = {"kind %d: timeout" % kind: 1}
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as e:
            tally = {"kind %d: %s" % (kind, type(e).__name__): 1}
        for k, v in tally.items():
            counts[k] = counts.get(k, 0) + v
        await asyncio.sleep(0.2 + rnd.random())


async def flood(path, end, counts):
    """Connections of one uid past its cap, held until the end."""
    held = []
    for _ in range(FLOOD):
        try:
            r, w = await asyncio.open_unix_connection(path)
        except OSError:
            counts["flood: connect failed"] = counts.get("flood: connect failed", 0) + 1
            continue
        held.append((r, w))
    async def answer(r):
        try:
            reply = json.loads(await read_reply(r, 10))
            return "flood: refused" if reply["error"]["code"] == "temporary" else "flood: ?"
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
            return "flood: admitted"  # no answer (closed at first_request_timeout)
    for key in await asyncio.gather(*(answer(r) for r, w in held)):
        counts[key] = counts.get(key, 0) + 1
    while time.monotonic() < end:
        await asyncio.sleep(0.5)
    for r, w in held:
        w.close()


def swarm(path, n, until, job, s, first):
    counts = {}

    async def main():
        end = time.monotonic() + (until - time.time())
        if n == 0:
            await flood(path, end, counts)
            return
        await asyncio.gather(*(client(first + i, path, end, counts, job,
                                      random.Random(s + first + i)) for i in range(n)))
    asyncio.run(main())
    print(json.dumps(counts), flush=True)


# ---- the scenario ----

def p99(values):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * 0.99))] if v else None


def main(tap):
    s = seed()
    group = grp.getgrgid(65534).gr_name
    with Env(sim_args=["--rate", "300", "--period", "1", "--latency-ms", "20"],
             queue={"rate": str(RATE), "burst": "20", "concurrency": "16",
                    "request_timeout": "5"},
             daemon={"allow_group": group, "first_request_timeout": "2",
                     "idle_timeout": "5s", "max_connections_per_uid": "16"}) as env:
        os.chmod(env.dir, 0o755)
        # each member owns completed jobs with long names: `jobs --all` replies are big
        db = sqlite3.connect(env.db_path, timeout=10)
        now = int(time.time() * 1000)
        tenant = db.execute("SELECT MIN(id) FROM tenants").fetchone()[0]
        with db:
            db.executemany(
                "INSERT INTO jobs(tenant_id, name, state, created_at, finished_at, submitted_uid,"
                " submitted_user, filename, redirect_url, send_email)"
                " VALUES (?, ?, 4, ?, ?, ?, ?, ?, 'https://myapplications.microsoft.com', 0)",
                [(tenant, ("old %d" % i).ljust(256, "n"), now, now, uid, "uid %d" % uid,
                  ("f%d" % i).ljust(256, "f")) for uid in UIDS for i in range(JOBS_PER_UID)])
        db.close()

        emails = addresses("hostile", N)
        job = submit(env, emails)
        t_warm = time.monotonic() + WARMUP_S
        while time.monotonic() < t_warm:
            time.sleep(0.1)
        hwm0 = vm_hwm_kib(env.daemon.pid)
        until = time.time() + ATTACK_S
        procs = []
        per = CLIENTS // len(UIDS)
        first = 0
        for k, uid in enumerate(UIDS + [FLOOD_UID]):
            n = 0 if uid == FLOOD_UID else per + (1 if k < CLIENTS % len(UIDS) else 0)
            procs.append(subprocess.Popen(
                ["nice", "-n", "10", "setpriv", "--reuid", str(uid), "--regid", "65534", "--clear-groups",
                 sys.executable, os.path.abspath(__file__), "--swarm", env.sock, str(n),
                 str(until), str(job), str(s), str(first)],
                stdout=subprocess.PIPE, text=True, env=dict(os.environ)))
            first += n

        j0 = request(env.sock, {"op": "job", "id": job})["job"]
        t0 = time.monotonic()
        lat, failures, submit_rc, submit_ms = [], 0, None, None
        root_file = env.write("root.csv", portal_file([["root%d@root.example" % i, "", "false",
                                                          ""] for i in range(100)]))
        while time.time() < until:
            a = time.monotonic()
            try:
                r = request(env.sock, {"op": "status"}, timeout=10)
                ok = bool(r and r.get("ok"))
            except OSError:
                ok = False
            lat.append((time.monotonic() - a) * 1000)
            failures += not ok
            if submit_rc is None and time.time() > until - ATTACK_S / 2:
                a = time.monotonic()
                try:
                    p = subprocess.run([INVITECTL, "-s", env.sock, "--json", "submit",
                                        root_file], capture_output=True, timeout=30)
                    submit_rc = p.returncode
                except subprocess.TimeoutExpired:
                    submit_rc = "hung"
                submit_ms = (time.monotonic() - a) * 1000
                if submit_rc == 0:  # out of the measured job's way
                    env.ctl("pause", str(json.loads(p.stdout)["id"]))
            time.sleep(0.05)
        j1 = request(env.sock, {"op": "job", "id": job})["job"]
        elapsed = time.monotonic() - t0
        counts = {}
        for p in procs:
            try:
                out, _ = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            for k, v in json.loads(out.strip().splitlines()[-1] if out.strip() else "{}").items():
                counts[k] = counts.get(k, 0) + v
        hwm = vm_hwm_kib(env.daemon.pid)
        with open("/proc/%d/status" % env.daemon.pid) as f:
            tap.diag(" ".join(l.split()[0] + l.split()[1] for l in f
                              if l.split(":")[0] in ("VmRSS", "RssAnon", "RssFile", "RssShmem",
                                                     "Threads")))
        sent = j1["succeeded"] + j1["failed"] - j0["succeeded"] - j0["failed"]
        rate = sent / elapsed
        q = p99(lat)
        tap.diag("hostile clients: %s" % sorted(counts.items()))
        tap.diag("VmHWM before the attack: %d KiB" % hwm0)
        tap.diag("P8: VmHWM %d KiB (%.1f MiB); status p99 %.1f ms, max %.1f ms over %d; "
                 "root's submit exit %s in %.0f ms; rate %.1f/s of %d/s (%.1f%%)"
                 % (hwm, hwm / 1024, q, max(lat), len(lat), submit_rc, submit_ms or -1,
                    rate, RATE, 100 * rate / RATE))
        tap.ok(hwm <= HWM_LIMIT_KIB, "daemon peak RSS %.1f MiB <= 64 MiB" % (hwm / 1024))
        tap.ok(failures == 0, "every status answered (%d failures)" % failures)
        tap.ok(q is not None and q <= P99_LIMIT_MS, "status p99 %.1f ms <= %d ms"
               % (q, P99_LIMIT_MS))
        tap.ok(submit_rc == 0, "root's submit succeeds (%.0f ms)" % (submit_ms or -1))
        tap.ok(rate >= 0.95 * RATE, "the job sends at %.1f/s >= 95%% of %d/s" % (rate, RATE))
        tap.ok(counts.get("flood: refused", 0) >= FLOOD - 16 and
               counts.get("flood: admitted", 0) <= 16,
               "the flooding uid: at most 16 admitted, the rest refused `temporary`")
        tap.ok(not any(k.endswith("?") for k in counts), "every hostile request refused or "
               "contained", counts)
        tap.ok(counts.get("stalled upload: aborted", 0) > 0 and counts.get("idle: closed", 0) > 0
               and counts.get("unread: closed", 0) > 0,
               "stalled uploads, idle and unread connections closed by the daemon")
        stalled = [j for j in env.ctl_json("jobs", "--all", timeout=60)[1] or []
                   if j.get("name") == "stalled"]
        tap.eq(len(stalled), 0, "nothing of a stalled upload stored")
        p, done = env.wait_job(job, timeout=300)
        tap.eq((p.returncode, done and done["state"]), (0, "completed"), "the job completes")
        tap.eq(done and done["succeeded"], N, "every row succeeded")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--swarm":
        a = sys.argv[2:]
        swarm(a[0], int(a[1]), float(a[2]), int(a[3]), int(a[4]), int(a[5]))
    else:
        run(main)
