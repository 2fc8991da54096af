#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP/2 (issue 14): a real nghttpx (nghttp2-proxy), started here with the
test CA's certificate and ALPN h2, in front of the plain-HTTP simulator. A
5,000-row job with concurrency 16 goes through it: the daemon negotiates h2
and multiplexes its requests over few connections (counted from nghttpx's
access log, which has the client's port and the ALPN of every request), and
every row agrees with the simulator's record. The same front offering only
http/1.1 by ALPN gets HTTP/1.1 from the daemon, and the job still succeeds."""
import collections
import os
import shutil
import subprocess
import tempfile

from harness import (Env, check_against_record, free_port, make_pki, portal_file, run,
                     skip_all, wait_listening)

NGHTTPX = shutil.which("nghttpx") or ("/usr/sbin/nghttpx"
                                      if os.path.exists("/usr/sbin/nghttpx") else None)
ROWS = 5000
CONCURRENCY = 16


def nghttpx_front(pki, alpn=None):
    """A front(env) for Env: nghttpx on a free port, TLS with ALPN h2 (and
    http/1.1; alpn: only these) to clients, plain HTTP/1.1 to the simulator."""
    def start(env):
        port = free_port()
        env.front_log = os.path.join(env.dir, "nghttpx-access.log")
        out = open(os.path.join(env.dir, "nghttpx.out"), "ab")
        proc = subprocess.Popen(
            [NGHTTPX, "--conf=/dev/null", "--frontend=127.0.0.1,%d" % port,
             "--backend=127.0.0.1,%d;;proto=http/1.1" % env.port, "--no-ocsp", "--workers=1",
             "--backend-connections-per-host=64", "--no-via",
             "--accesslog-file=" + env.front_log,
             "--accesslog-format=$remote_port $alpn $status $method $path",
             "--errorlog-file=" + os.path.join(env.dir, "nghttpx-error.log")] +
            (["--npn-list=" + alpn] if alpn else []) +
            [pki["key"], pki["cert"]], stdout=out, stderr=out)
        env.procs.append(proc)
        wait_listening(port, proc, "nghttpx")
        # the token from the simulator itself, as Graph's token comes from
        # another host: the first burst of invitations then starts with no
        # connection to the front yet, and must wait for the first one's
        # ALPN (CURLOPT_PIPEWAIT) instead of opening one connection each
        env.graph_extra["authority_url"] = env.base
        return "https://127.0.0.1:%d" % port
    return start


def main(tap):
    if not NGHTTPX:
        skip_all("nghttpx is not installed (nghttp2-proxy; scripts/deps.sh installs it)")
    tmp = tempfile.mkdtemp(prefix="invited-pki.")
    try:
        pki = make_pki(tmp)
        with Env(front=nghttpx_front(pki), graph={"ca_file": pki["ca"]},
                 queue={"rate": "5000", "burst": "100",
                        "concurrency": str(CONCURRENCY)}) as env:
            rows = [["h2-%05d@partner%d.example" % (i, i % 11), "", "false", ""]
                    for i in range(ROWS)]
            path = env.write("big.csv", portal_file(rows))
            p, job = env.ctl_json("submit", path)
            tap.eq(p.returncode, 0, "submit of 5,000 rows exits 0")
            p, done = env.wait_job(job["id"], timeout=150)
            got = (p.returncode, done and done["succeeded"], done and done["failed"])
            tap.ok(got == (0, ROWS, 0), "5,000 succeeded through nghttpx",
                   "%r\n%s" % (got, env.log()[-2000:]))
            check_against_record(tap, env, job["id"], [r[0] for r in rows])

            sim = env.sim_stats()
            env.procs[0].terminate()  # its log is complete once it has exited
            env.procs[0].wait(10)
            with open(env.front_log) as f:
                lines = [l.split() for l in f if l.strip()]
            ports = collections.Counter(l[0] for l in lines)
            alpn = collections.Counter(l[1] for l in lines)
            invites = sum(1 for l in lines if l[4] == "/v1.0/invitations")
            tap.eq((invites, len(lines)), (sim["requests"] - sim["tokens_issued"],) * 2,
                   "nghttpx's log has every invitation request the simulator saw, and only those")
            tap.eq(dict(alpn), {"h2": len(lines)}, "every request went over h2 (ALPN)")
            tap.diag("%d requests over %d TCP connections from the daemon (concurrency %d); "
                     "requests per connection: %s; nghttpx opened %d connections to the "
                     "simulator" % (len(lines), len(ports), CONCURRENCY,
                                    sorted(ports.values(), reverse=True),
                                    sim["connections"]))
            tap.ok(1 <= len(ports) <= 4, "the daemon multiplexed over <= 4 connections "
                   "(%d)" % len(ports))

        # the same front offering only http/1.1 by ALPN: the daemon falls back
        with Env(front=nghttpx_front(pki, alpn="http/1.1"), graph={"ca_file": pki["ca"]},
                 queue={"concurrency": str(CONCURRENCY)}) as env:
            rows = [["h1-%03d@partner.example" % i, "", "false", ""] for i in range(200)]
            p, job = env.ctl_json("submit", env.write("h1.csv", portal_file(rows)))
            p, done = env.wait_job(job["id"], timeout=60)
            tap.ok(p.returncode == 0 and done["succeeded"] == 200,
                   "with h2 not offered, 200 rows succeed over HTTP/1.1", env.log()[-2000:])
            env.procs[0].terminate()
            env.procs[0].wait(10)
            with open(env.front_log) as f:
                lines = [l.split() for l in f if l.strip()]
            alpn = collections.Counter(l[1] for l in lines)
            tap.eq(dict(alpn), {"http/1.1": len(lines)}, "every request went over http/1.1")
            tap.diag("HTTP/1.1: %d requests over %d connections"
                     % (len(lines), len({l[0] for l in lines})))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
