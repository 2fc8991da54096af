#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Three tenants in one daemon (SPEC §7), each with a single-tenant simulator
of its own: a's job completes while b is blocked by the anti-abuse 403 and
c's secret is refused; b resumes with {"op":"resume","tenant":"b"} (its
simulator restarted without the block on the same port) and completes; every
invitation went to its own tenant's simulator, with that tenant's token."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "chaos"))
import wire  # noqa: E402
from harness import SIM, Env, deadline_wait, free_port, portal_file, run  # noqa: E402


def start_sim(env, name, directory, port, extra=()):
    rec = os.path.join(env.dir, "record-%s.jsonl" % name)
    log = open(os.path.join(env.dir, "sim-%s.log" % name), "ab")
    p = subprocess.Popen([SIM, "--listen", "127.0.0.1", "--port", str(port), "--record", rec,
                          "--tenant", directory, "--client-id",
                          "11111111-2222-3333-4444-555555555555", "--client-secret",
                          "secret-" + name] + list(extra), stdout=log, stderr=log)
    env.procs.append(p)
    import socket

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False
    deadline_wait(up, 10, "simulator %s" % name)
    return p, rec


def notify_socket(path):
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.2)
    return s


def notify_read(s, seen):
    import socket
    try:
        while True:
            seen.append(s.recv(4096).decode())
    except (socket.timeout, BlockingIOError):
        pass
    return seen


def records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def submit(env, tenant, data, name):
    s = wire.connect(env.sock, 30)
    try:
        s.sendall(wire.frame({"op": "submit", "tenant": tenant, "name": name,
                              "filename": name + ".csv"}))
        for i in range(0, len(data), 65536):
            s.sendall(wire.frame(data[i:i + 65536]))
        s.sendall(wire.frame(b""))
        return wire.recv_reply(s)
    finally:
        s.close()


def job(env, jid):
    return wire.request(env.sock, {"op": "job", "id": jid})["job"]


def main(tap):
    # a: the harness's simulator (contoso); b and c: their own
    with Env(start=False, queue={"rate": "40", "burst": "10"}) as env:
        port_b, port_c = free_port(), free_port()
        sim_b, rec_b = start_sim(env, "b", "fabrikam.example", port_b, ["--block-after", "5"])
        sim_c, rec_c = start_sim(env, "c", "northwind.example", port_c)
        for n, v in (("b", "secret-b"), ("c", "not-the-secret")):
            path = os.path.join(env.dir, n + ".secret")
            with open(path, "w") as f:
                f.write(v + "\n")
            os.chmod(path, 0o600)
        text = open(env.conf).read().replace("tenant = contoso.onmicrosoft.com\n", "")
        text += ("\n[tenant a]\ntenant = contoso.onmicrosoft.com\n"
                 "\n[tenant b]\ntenant = fabrikam.example\n"
                 "client_secret_file = %s/b.secret\nauthority_url = http://127.0.0.1:%d\n"
                 "graph_url = http://127.0.0.1:%d\n" % (env.dir, port_b, port_b) +
                 "\n[tenant c]\ntenant = northwind.example\n"
                 "client_secret_file = %s/c.secret\nauthority_url = http://127.0.0.1:%d\n"
                 "graph_url = http://127.0.0.1:%d\n" % (env.dir, port_c, port_c))
        with open(env.conf, "w") as f:
            f.write(text)
        nsock = notify_socket(os.path.join(env.dir, "notify"))
        env.daemon_env = {"NOTIFY_SOCKET": os.path.join(env.dir, "notify")}
        env.start_daemon()

        t = wire.request(env.sock, {"op": "tenants"})
        tap.eq([x["name"] for x in t.get("tenants", [])], ["a", "b", "c"], "tenants: a, b, c")
        r = wire.request(env.sock, {"op": "submit", "name": "x"})
        tap.ok(r and not r["ok"] and r["error"]["code"] == "usage" and
               r["error"].get("tenants") == ["a", "b", "c"] and
               "several tenants" in r["error"]["message"],
               "submit without a tenant: usage, several tenants to choose from", r)
        r = wire.request(env.sock, {"op": "submit", "tenant": "zz"})
        tap.ok(r and r["error"]["code"] == "usage" and "no tenant 'zz'" in r["error"]["message"],
               "an unknown tenant: usage", r)

        n = 60
        addrs = {k: ["%s%03d@guest.example" % (k, i) for i in range(n if k == "a" else 20)]
                 for k in "abc"}
        t0 = time.monotonic()
        ids = {}
        for k in "abc":
            rows = [(a, "https://r.example", "true") for a in addrs[k]]
            rep = submit(env, k, portal_file(rows), "job-" + k)
            tap.ok(rep and rep["ok"], "submit to tenant %s" % k, rep)
            ids[k] = rep["job"]["id"]
            tap.eq(rep["job"]["tenant"], k, "job JSON names tenant %s" % k)

        deadline_wait(lambda: job(env, ids["a"])["state"] == "completed", 60, "job a completes")
        took = time.monotonic() - t0
        ja = job(env, ids["a"])
        tap.eq(ja["succeeded"], n, "tenant a: every row succeeded")
        # 60 rows at 40/s with a burst of 10: about 1.3 s at the full rate
        tap.ok(took < 6, "tenant a ran at its full rate beside b and c (%.1f s)" % took)
        jb = job(env, ids["b"])
        deadline_wait(lambda: job(env, ids["b"])["state"] == "blocked", 30, "job b blocked")
        jb = job(env, ids["b"])
        tap.ok(jb["state"] == "blocked" and jb["reason"],
               "tenant b blocked: %s" % (jb["reason"] or "").splitlines()[0])
        jc = job(env, ids["c"])
        deadline_wait(lambda: (job(env, ids["c"])["reason"] or "").find("token") >= 0, 30,
                      "job c shows the token error")
        jc = job(env, ids["c"])
        tap.ok(jc["state"] in ("queued", "running") and jc["succeeded"] == 0 and
               "token" in (jc["reason"] or ""),
               "tenant c sends nothing; its job's reason is the token error: %s" %
               (jc["reason"] or "").splitlines()[0])
        tap.eq(records(rec_c), [], "c's simulator got no invitation")
        ts = {x["name"]: x for x in wire.request(env.sock, {"op": "tenants"})["tenants"]}
        tap.ok(ts["a"]["token"] == "ok" and ts["b"]["state"] == "blocked" and
               ts["c"]["token"] != "ok", "tenants: a ok, b blocked, c's token error", ts)
        # STATUS= summarises every tenant (every 5 s)
        seen = []
        deadline_wait(lambda: [m for m in notify_read(nsock, seen)
                               if "3 tenants: 1 sending, 1 blocked, 1 without a token" in m],
                      15, "a STATUS= with the three tenants")
        tap.ok(True, "STATUS= summarises the tenants: %r" % [m for m in seen if "tenants" in m][-1])
        st = wire.request(env.sock, {"op": "stats"})["stats"]
        per = {x["name"]: x for x in st["tenants"]}
        tap.ok(per["a"]["invitations_created_total"] == n and
               st["invitations_created_total"] == sum(x["invitations_created_total"]
                                                      for x in per.values()),
               "stats: per tenant, and the top level sums them", per)

        # b's simulator again on the same port, without the block; then resume b
        sim_b.send_signal(signal.SIGTERM)
        sim_b.wait(10)
        sim_b, rec_b2 = start_sim(env, "b", "fabrikam.example", port_b)
        r = wire.request(env.sock, {"op": "resume", "tenant": "b"})
        tap.ok(r and r["ok"] and r["tenant"]["state"] != "blocked", "resume of tenant b", r)
        deadline_wait(lambda: job(env, ids["b"])["state"] == "completed", 60, "job b completes")
        tap.eq(job(env, ids["b"])["succeeded"], 20, "tenant b: every row succeeded")

        # each invitation went to its own tenant's simulator, once
        rec_a = env.record()
        got_b = records(rec_b2)
        tap.eq(sorted(r["address"] for r in rec_a), sorted(addrs["a"]),
               "a's simulator: exactly a's addresses")
        tap.eq(sorted(r["address"] for r in got_b), sorted(addrs["b"]),
               "b's simulator: each of b's addresses once (before the block and after)")
        rows = wire.request(env.sock, {"op": "rows", "id": ids["a"], "limit": 1000})["rows"]
        by = {r["address"]: r for r in rec_a}
        tap.ok(all(x["state"] == "succeeded" and by[x["email"]]["user_id"] == x["invited_user_id"]
                   for x in rows), "a's rows agree with its simulator's record")
        rows = wire.request(env.sock, {"op": "rows", "id": ids["b"], "limit": 1000})["rows"]
        by = {r["address"]: r for r in got_b}
        tap.ok(all(x["state"] == "succeeded" and by[x["email"]]["user_id"] == x["invited_user_id"]
                   for x in rows), "b's rows agree with its simulator's record")
        nsock.close()
        log = env.log()
        tap.ok("(tenant a)" in log and "(tenant b)" in log, "the job lines name the tenant")


run(main)
