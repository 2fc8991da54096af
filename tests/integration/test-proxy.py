#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""[graph] proxy (issue 14): a real tinyproxy, started here on 127.0.0.1,
carries a 1,000-row job to the simulator serving HTTPS, through CONNECT
tunnels. Every row agrees with the simulator's record, tinyproxy's log
shows the tunnels, and the environment's proxy variables are not used.
A proxy that is down shows in `status` as a proxy failure."""
import os
import re
import shutil
import subprocess
import tempfile

from harness import (Env, check_against_record, deadline_wait, free_port, make_pki,
                     portal_file, run, skip_all, wait_listening)

TINYPROXY = shutil.which("tinyproxy") or ("/usr/bin/tinyproxy"
                                          if os.path.exists("/usr/bin/tinyproxy") else None)


def start_tinyproxy(env):
    """tinyproxy in the foreground, CONNECT allowed to the simulator only."""
    port = free_port()
    env.proxy_log = os.path.join(env.dir, "tinyproxy.log")
    conf = os.path.join(env.dir, "tinyproxy.conf")
    with open(conf, "w") as f:
        f.write("Port %d\nListen 127.0.0.1\nTimeout 60\nMaxClients 64\nAllow 127.0.0.1\n"
                "LogFile \"%s\"\nLogLevel Connect\nConnectPort %d\n"
                % (port, env.proxy_log, env.port))
    out = open(os.path.join(env.dir, "tinyproxy.out"), "ab")
    proc = subprocess.Popen([TINYPROXY, "-d", "-c", conf], stdout=out, stderr=out)
    env.procs.append(proc)
    wait_listening(port, proc, "tinyproxy")
    env.proxy_url = "http://127.0.0.1:%d" % port
    return None  # the daemon still names the simulator; the proxy is a [graph] key


def main(tap):
    if not TINYPROXY:
        skip_all("tinyproxy is not installed (scripts/deps.sh installs it)")
    tmp = tempfile.mkdtemp(prefix="invited-pki.")
    try:
        pki = make_pki(tmp)
        tls = {"cert": pki["cert"], "key": pki["key"], "ca": pki["ca"]}
        env = Env(sim_tls=tls, front=start_tinyproxy, start=False,
                  graph={"ca_file": pki["ca"]},
                  daemon_env={"https_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1"})
        with env:
            env.graph_extra["proxy"] = env.proxy_url
            env.write_config()
            env.start_daemon()
            rows = [["proxy%04d@partner%d.example" % (i, i % 7), "", "false", ""]
                    for i in range(1000)]
            path = env.write("big.csv", portal_file(rows))
            p, job = env.ctl_json("submit", path)
            tap.eq(p.returncode, 0, "submit of 1,000 rows exits 0")
            p, done = env.wait_job(job["id"], timeout=100)
            got = (p.returncode, done and done["succeeded"], done and done["failed"])
            tap.ok(got == (0, 1000, 0), "1,000 succeeded through tinyproxy",
                   "%r\n%s" % (got, env.log()[-2000:]))
            check_against_record(tap, env, job["id"], [r[0] for r in rows])

            with open(env.proxy_log, errors="replace") as f:
                log = f.read()
            tunnels = re.findall(r"Request \(file descriptor \d+\): CONNECT 127\.0\.0\.1:%d "
                                 % env.port, log)
            st = env.sim_stats()
            tap.ok(tunnels, "tinyproxy's log shows CONNECT tunnels to the simulator",
                   log[-2000:])
            tap.diag("%d CONNECT tunnels in tinyproxy's log; the simulator saw %d connections "
                     "(stats request included) for %d requests"
                     % (len(tunnels), st["connections"], st["requests"]))
            tap.ok(len(tunnels) >= 1 and st["connections"] <= len(tunnels) + 1,
                   "every connection the simulator saw came through the proxy")

            # the proxy goes away: the next token request fails, and says where
            env.procs[0].terminate()
            env.procs[0].wait(10)
            env.stop_daemon()
            env.start_daemon()
            path = env.write("one.csv", portal_file([["down@partner.example", "", "false", ""]]))
            env.ctl("submit", path)

            def token_error():
                p, s = env.ctl_json("status")
                t = s and s.get("token") or {}
                return t.get("error") if t.get("state") == "error" else None
            err = deadline_wait(token_error, 30, "a token error")
            tap.ok(env.proxy_url in err, "with the proxy down, status names the proxy", err)
            tap.diag("token error: " + err)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
