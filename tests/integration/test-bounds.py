#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What one local client can cost the daemon (SPEC §9, docs/reliability.md
"Attack classes"): replies it never reads, uploads it never finishes, fields
too long for a frame or holding control characters, connections that idle,
a flood of connections from one uid, and the socket's mode whatever the
umask. Each part fails on a daemon without the bound it checks."""
import json
import os
import select
import socket
import sqlite3
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "chaos"))
import harness  # noqa: E402
from harness import Env, deadline_wait, portal_file, run  # noqa: E402
from wire import connect, frame, recv_reply, request  # noqa: E402


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def sanitized(pid):
    """The daemon runs under ASan, whose quarantine keeps freed memory: its
    resident size says nothing about the daemon's own bounds then."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def memory_ok(tap, pid, grown, limit_kib, what):
    if sanitized(pid):
        tap.diag("ASan build: not checking that %s (grew %d KiB)" % (what, grown))
        return
    tap.ok(grown < limit_kib, "%s (grew %d KiB)" % (what, grown))


def connections(env):
    r = request(env.sock, {"op": "stats"})
    return r["stats"]["connections"] - 1  # not counting this one


def closed_within(s, timeout):
    """Seconds until the daemon closed s (EOF), or None if it did not; any
    reply bytes are left unread (peeked)."""
    t0 = time.monotonic()
    s.setblocking(False)
    try:
        while time.monotonic() - t0 < timeout:
            select.select([s], [], [], 0.05)
            try:
                if s.recv(1, socket.MSG_PEEK) == b"":
                    return time.monotonic() - t0
                time.sleep(0.05)  # data waiting, not EOF: it stays for the caller
            except BlockingIOError:
                pass
            except ConnectionResetError:
                return time.monotonic() - t0
        return None
    finally:
        s.setblocking(True)


def rows_file(n, prefix="b"):
    return portal_file([["%s%05d@bounds.example" % (prefix, i), "", "false", ""]
                        for i in range(n)])


def submit(env, data, name="f.csv"):
    p, job = env.ctl_json("submit", env.write(name, data), timeout=30)
    if p.returncode != 0 or not job:
        raise RuntimeError("submit failed (%d): %s" % (p.returncode, p.stderr.decode()[-300:]))
    return job["id"]


def upload_raw(env, req, data, timeout=10, chunk=1 << 16):
    """A whole upload on one connection; its reply."""
    s = connect(env.sock, timeout)
    try:
        s.sendall(frame(req))
        for i in range(0, len(data), chunk):
            s.sendall(frame(data[i:i + chunk]))
        s.sendall(frame(b""))
        return recv_reply(s)
    finally:
        s.close()


def part_unread_replies(tap, env):
    job = submit(env, rows_file(1000))  # sent at 1/s: still running at the end
    pid = env.daemon.pid
    before = status_kib(pid, "VmHWM")
    s = connect(env.sock)
    # 1,000 pipelined `rows` requests (each reply ~300 KB), never read
    s.sendall(frame({"op": "rows", "id": job, "limit": 1000, "input": True}) * 1000)
    slowest, failed = 0.0, 0
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            r = request(env.sock, {"op": "status"}, timeout=10)
        except OSError:
            r = None
        slowest = max(slowest, time.monotonic() - t0)
        failed += not (r and r.get("ok"))
        time.sleep(0.1)
    tap.eq(failed, 0, "status answered throughout while a client does not read")
    grown = status_kib(pid, "VmHWM") - before
    tap.diag("unread replies: VmHWM grew %d KiB, slowest status %.0f ms"
             % (grown, slowest * 1000))
    memory_ok(tap, pid, grown, 32 * 1024, "1,000 unread replies hold < 32 MiB")
    tap.ok(slowest < 0.5, "another client's status stays fast (%.0f ms)" % (slowest * 1000))
    t0 = time.monotonic()
    try:
        deadline_wait(lambda: connections(env) == 0, 15, "the unread connection to close")
        took = time.monotonic() - t0
    except TimeoutError:
        took = None
    tap.ok(took is not None, "the connection that does not read is closed after idle_timeout "
           "(%s s later)" % (took and round(took, 1)))
    s.close()
    tap.ok("replies were not read" in env.log(), "and the log says why")


def part_fields(tap, env):
    before = len(env.ctl_json("jobs", "--all")[1] or [])
    cases = [
        # a 1 MB value makes the request too large to be read at all
        ("filename", "a" * 1000000, "request is larger than"),
        ("name", "x" * 1000000, "request is larger than"),
        ("filename", "a" * 60000, "file name"),
        ("name", "Q4\x1b[2J\x1b[Hfake prompt", "job name"),
        ("name", "a\u202egnp.exe", "job name"),
        ("filename", "guests\r.csv", "file name"),
        ("language", "en\x9bUS", "language"),
        ("cc", "x" * 300 + "@example.com", "cc address"),
        ("message", "m" * 20000, "message"),
        ("redirect_url", "https://e.example/" + "a" * 5000, "redirect URL"),
    ]
    for key, value, field in cases:
        s = connect(env.sock, 5)
        try:
            s.sendall(frame({"op": "submit", key: value}))
            try:
                r = recv_reply(s)  # refused before any data frame
            except socket.timeout:
                r = None
            if r:  # and the connection goes on
                s.sendall(frame({"op": "status"}))
                r2 = recv_reply(s)
                r = r if r2 and r2.get("ok") else {"status after refusal": r2}
        finally:
            s.close()
        err = (r or {}).get("error") or {}
        tap.ok(err.get("code") == "usage" and field in err.get("message", "") and
               len(json.dumps(r)) < 8192,
               "%s of %d bytes %s: usage, '%s'" % (key, len(value.encode()),
                                                           "refused" if r else "not refused",
                                                           field), r and json.dumps(r)[:300])
    p = env.ctl("submit", "--name", "a\x1b]0;pwned\x07", env.write("n.csv", rows_file(1)))
    tap.eq(p.returncode, 64, "invitectl submit --name with an escape: exit 64")
    r = request(env.sock, {"op": "retry", "id": 1, "error_code": "E\x1b[1m"})
    tap.eq((r or {}).get("error", {}).get("code"), "usage", "retry --error-code with an escape")
    r = request(env.sock, {"op": "x" * 900000})
    tap.ok(r and r["error"]["code"] == "usage" and len(r["error"]["message"]) < 5000,
           "an unknown 900 KB op is answered within a frame")
    tap.eq(len(env.ctl_json("jobs", "--all")[1] or []), before, "nothing stored")

    # 2,000 jobs with 256-byte names and file names: `jobs --all` lists them all
    db = sqlite3.connect(env.db_path, timeout=10)
    now = int(time.time() * 1000)
    with db:
        db.executemany(
            "INSERT INTO jobs(tenant_id, name, state, created_at, finished_at, submitted_uid,"
            " submitted_user, filename, redirect_url, send_email)"
            " VALUES ((SELECT MIN(id) FROM tenants), ?, 4, ?, ?, 0, 'root', ?,"
            " 'https://myapplications.microsoft.com', 0)",
            [(("job %04d " % i).ljust(256, "n"), now, now, ("f%04d" % i).ljust(256, "f"))
             for i in range(2000)])
    db.close()
    p, jobs = env.ctl_json("jobs", "--all", timeout=60)
    tap.eq((p.returncode, len(jobs or [])), (0, before + 2000),
           "jobs --all lists all 2,000 jobs with 256-byte names (in pages)")
    ids = [j["id"] for j in jobs or []]
    tap.ok(ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids),
           "newest first, each once")
    r = request(env.sock, {"op": "jobs", "all": True, "limit": 10})
    tap.ok(r and len(r["jobs"]) == 10 and r["next"] == r["jobs"][-1]["id"],
           "a page of 10 with its next cursor")
    p = env.ctl("jobs", "--all")
    tap.eq((p.returncode, len(p.stdout.splitlines())), (0, before + 2001),
           "the table has every job")


def part_timeouts(tap, env):
    s = connect(env.sock)
    took = closed_within(s, 10)
    s.close()
    tap.ok(took is not None and took > 0.5, "no first request: closed after "
           "first_request_timeout (%s s)" % (took and round(took, 1)))
    s = connect(env.sock)
    s.sendall(frame({"op": "status"}))
    recv_reply(s)
    took = closed_within(s, 15)
    s.close()
    tap.ok(took is not None and took > 1.5, "idle after a request: closed after idle_timeout "
           "(%s s)" % (took and round(took, 1)))
    # a pending `wait` is not idle (the job waits behind the 1,000-row one)
    job = submit(env, rows_file(5, "w"))
    s = connect(env.sock)
    s.sendall(frame({"op": "wait", "id": job}))
    took = closed_within(s, 5)
    tap.ok(took is None, "a connection waiting in `wait` is not closed (%s)" % took)
    env.ctl("cancel", str(job))
    s.settimeout(10)
    r = recv_reply(s)
    s.close()
    tap.ok(r and r.get("ok") and r["job"]["state"] == "cancelled", "and its answer comes", r)
    # an upload that stops: aborted after idle_timeout, nothing stored
    n = len(env.ctl_json("jobs", "--all")[1] or [])
    s = connect(env.sock)
    s.sendall(frame({"op": "submit", "filename": "stalled.csv"}) + frame(rows_file(10, "s")))
    took = closed_within(s, 15)
    s.close()
    tap.ok(took is not None, "a stalled upload is closed after idle_timeout (%s s)"
           % (took and round(took, 1)))
    tap.eq(len(env.ctl_json("jobs", "--all")[1] or []), n, "and nothing of it is stored")


def part_uploads(tap, env):
    # six suspended uploads (libuv has 4 worker threads)
    stalled = []
    for i in range(6):
        s = connect(env.sock)
        s.sendall(frame({"op": "submit", "filename": "stalled%d.csv" % i}) +
                  frame(rows_file(50, "t%d" % i)))
        stalled.append(s)
    t0 = time.monotonic()
    try:
        p = env.ctl("--json", "submit", env.write("root.csv", rows_file(20, "r")), timeout=15)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        rc = None
    took = time.monotonic() - t0
    tap.diag("root's submit beside 6 stalled uploads: exit %s in %.0f ms" % (rc, took * 1000))
    tap.ok(rc == 0 and took < 5, "root's submit beside 6 stalled uploads succeeds (%.0f ms)"
           % (took * 1000))
    for s in stalled:
        s.close()

    # 30 unfinished uploads of 2 MiB each: spooled to disk, not held in memory
    pid = env.daemon.pid
    before = status_kib(pid, "VmHWM")
    chunk = frame(b"x" * (1 << 20))
    held = []
    for i in range(30):
        s = connect(env.sock)
        s.sendall(frame({"op": "submit", "filename": "big%d.csv" % i}) + chunk + chunk)
        held.append(s)
    r = request(env.sock, {"op": "status"})  # every upload's bytes read by now
    grown = status_kib(pid, "VmHWM") - before
    tap.diag("30 unfinished uploads of 2 MiB: VmHWM grew %d KiB" % grown)
    tap.ok(r and r["ok"], "status answered beside 30 unfinished uploads")
    memory_ok(tap, pid, grown, 16 * 1024, "30 unfinished 2 MiB uploads hold < 16 MiB")
    for s in held:
        s.close()

    # a file over max_upload_bytes (4 MiB here), in frames of 1 MiB as
    # invitectl sends them: its size is the one problem
    big = rows_file(3000, "big") * 70
    r = upload_raw(env, {"op": "submit", "filename": "big.csv"}, big, chunk=1 << 20)
    err = (r or {}).get("error") or {}
    msgs = [e["message"] for e in err.get("errors", [])]
    tap.ok(err.get("error_count") == 1 and "max_upload_bytes" in msgs[0],
           "a file over max_upload_bytes: only the size error", msgs)
    r = upload_raw(env, {"op": "validate", "filename": "big.csv"}, big, chunk=1 << 20)
    tap.eq((r or {}).get("error_count"), 1, "validate of it: the same one error")

    # validate takes no write lock: it answers while another program holds it
    dup = rows_file(30, "v") + b"v00003@bounds.example,,false,\n"
    db = sqlite3.connect(env.db_path, timeout=10, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
        t0 = time.monotonic()
        try:
            r = upload_raw(env, {"op": "validate", "filename": "v.csv"}, dup, timeout=5)
        except socket.timeout:
            r = None
        took = time.monotonic() - t0
    finally:
        db.execute("ROLLBACK")
        db.close()
    tap.ok(r is not None and r.get("ok") and not r["valid"] and r["error_count"] == 1 and
           "duplicate email" in r["errors"][0]["message"],
           "validate answers while the write lock is held elsewhere (%.0f ms), duplicates "
           "found" % (took * 1000), r)
    r = upload_raw(env, {"op": "validate", "filename": "ok.csv"}, rows_file(30, "ok"))
    tap.ok(r and r.get("valid") and r["rows"] == 30, "a valid file: valid, 30 rows")


CLIENT = r"""
import json, socket, struct, sys
path, n = sys.argv[1], int(sys.argv[2])
def conn():
    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(path); return s
def reply(s):
    try:
        h = s.recv(4)
        if len(h) < 4: return None
        (l,) = struct.unpack(">I", h); b = b""
        while len(b) < l: b += s.recv(l - len(b))
        return json.loads(b)
    except socket.timeout:
        return "timeout"
held = [conn() for _ in range(n)]
extra = [conn() for _ in range(11)]
print(json.dumps([reply(s) for s in extra]), flush=True)
sys.stdin.read()
"""


def part_per_uid(tap, env):
    os.chmod(env.dir, 0o755)
    gid = os.stat(env.sock).st_gid
    p = subprocess.Popen(["setpriv", "--reuid", "65534", "--regid", str(gid), "--clear-groups",
                          sys.executable, "-c", CLIENT, env.sock, "4"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        replies = json.loads(p.stdout.readline() or "null") or []
        first = replies[0] if replies else None
        err = first.get("error", {}) if isinstance(first, dict) else {}
        tap.ok(err.get("code") == "temporary" and "max_connections_per_uid" in err.get(
            "message", ""), "uid 65534's 5th connection is answered `temporary`, saying why",
            first)
        tap.ok(all(isinstance(r, dict) and r["error"]["code"] == "temporary" for r in replies),
               "and so are the next 10")
        t0 = time.monotonic()
        r = request(env.sock, {"op": "status"}, timeout=5)
        tap.ok(r and r.get("ok"), "root still connects (%.0f ms)" % ((time.monotonic() - t0) *
                                                                      1000))
    finally:
        p.stdin.close()
        p.wait(10)
    lines = [l for l in env.log().splitlines() if "Refusing control connections of uid 65534"
             in l]
    tap.eq(len(lines), 1, "11 refusals, one log line")


def main(tap):
    with Env(daemon={"first_request_timeout": "1", "idle_timeout": "3s"},
             queue={"rate": "1", "burst": "1"}) as env:
        part_unread_replies(tap, env)
        part_fields(tap, env)
        part_timeouts(tap, env)
    with Env(daemon={"max_upload_bytes": "4194304"}) as env:
        part_uploads(tap, env)
    old = os.umask(0o077)
    try:
        trace = os.path.join("/tmp", "bounds-strace.%d" % os.getpid())
        wrapper = harness.WRAPPER
        if os.path.exists("/usr/bin/strace") and not wrapper:
            harness.WRAPPER = ["/usr/bin/strace", "-f", "-qq", "-o", trace, "-e",
                               "trace=chmod,fchmodat,fchmod,chown,lchown,fchownat"]
        try:
            with Env(daemon={"max_connections_per_uid": "4"}) as env:
                tap.eq(oct(os.stat(env.sock).st_mode & 0o777), "0o660",
                       "socket 0660 under umask 0077")
                if harness.WRAPPER:
                    calls = [l for l in open(trace).read().splitlines() if env.sock in l]
                    tap.ok(not [l for l in calls if "chmod" in l or (
                        "chown" in l and "AT_SYMLINK_NOFOLLOW" not in l)],
                        "no chmod of the socket by path, no chown that follows a link", calls)
                part_per_uid(tap, env)
        finally:
            harness.WRAPPER = wrapper
            if os.path.exists(trace):
                os.unlink(trace)
        os.umask(0)
        with Env() as env:
            tap.eq(oct(os.stat(env.sock).st_mode & 0o777), "0o660", "socket 0660 under umask 0")
    finally:
        os.umask(old)


if __name__ == "__main__":
    run(main)
