#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTPS to the token endpoint and Graph (issue 14): the simulator serves TLS
with certificates made here with openssl. A certificate from another CA is
refused, and `invitectl status` says so and for which server; a certificate
for another name is refused; with [graph] ca_file naming the right CA a job
succeeds over HTTP/1.1 (the simulator offers no h2), also when the daemon's
environment holds a bogus https_proxy (ignored unless [graph] proxy is set).
[graph] ca_file and proxy are checked when the configuration is read."""
import os
import subprocess
import tempfile
import shutil

from harness import INVITED, Env, deadline_wait, make_pki, portal_file, run

BOGUS_PROXY = {k: "http://127.0.0.1:9" for k in
               ("http_proxy", "https_proxy", "all_proxy", "HTTPS_PROXY", "HTTP_PROXY",
                "ALL_PROXY")}


def token_error(env):
    """The token's error once the daemon gave up on a request, else None."""
    p, st = env.ctl_json("status")
    tok = st and st.get("token") or {}
    return tok.get("error") if tok.get("state") == "error" else None


def refused(tap, pki, cert, key, what, words):
    tls = {"cert": pki[cert], "key": pki[key], "ca": pki["ca"]}
    with Env(sim_tls=tls, graph={"ca_file": pki["ca"]}) as env:
        path = env.write("a.csv", portal_file([["refused@partner.example", "", "false", ""]]))
        p = env.ctl("submit", path)
        tap.eq(p.returncode, 0, "%s: the job is accepted" % what)
        err = deadline_wait(lambda: token_error(env), 20, "a token error")
        origin = "https://127.0.0.1:%d" % env.port
        tap.ok(words in err and origin in err and "TLS" in err,
               "%s: the token state names the TLS failure and the server" % what, err)
        tap.diag("token error: " + err)
        p = env.ctl("status")
        out = p.stdout.decode()
        tap.ok(p.returncode == 0 and words in out and origin in out,
               "%s: `invitectl status` shows it" % what, out)
        tap.eq(env.record(), [], "%s: nothing was sent" % what)
        tap.ok(words in env.log(), "%s: the daemon's log says it" % what)


def check_config(tap, directory, graph_lines, what, want_words):
    conf = os.path.join(directory, "check.conf")
    with open(conf, "w") as f:
        f.write("[graph]\ntenant = contoso.onmicrosoft.com\n"
                "client_id = 11111111-2222-3333-4444-555555555555\n" + graph_lines)
    p = subprocess.run([INVITED, "--check-config", "-c", conf], capture_output=True, timeout=30)
    err = p.stderr.decode()
    tap.ok(p.returncode == 78 and (conf + ":4:") in err and want_words in err,
           "%s: --check-config exits 78 with file:line and why" % what,
           "rc %d: %s" % (p.returncode, err))


def main(tap):
    tmp = tempfile.mkdtemp(prefix="invited-pki.")
    try:
        pki = make_pki(tmp)
        refused(tap, pki, "other_cert", "other_key", "another CA",
                "unable to get local issuer certificate")
        refused(tap, pki, "wrong_cert", "wrong_key", "wrong name",
                "no alternative certificate subject name matches")

        # the right CA: a small job goes through; the proxy variables in the
        # daemon's environment lead nowhere and must not be used
        tls = {"cert": pki["cert"], "key": pki["key"], "ca": pki["ca"]}
        with Env(sim_tls=tls, graph={"ca_file": pki["ca"]}, daemon_env=BOGUS_PROXY) as env:
            rows = [["tls%02d@partner.example" % i, "", "false", ""] for i in range(20)]
            path = env.write("a.csv", portal_file(rows))
            p = env.ctl("submit", "--wait", path, timeout=60)
            tap.ok(p.returncode == 0, "right CA, bogus https_proxy in the environment: "
                   "the job succeeds", p.stderr.decode() + env.log()[-2000:])
            tap.eq(len(env.record()), 20, "20 invitations reached the simulator over HTTPS")
            st = env.sim_stats()
            tap.diag("simulator: %d TLS connections for %d requests (HTTP/1.1)"
                     % (st["connections"], st["requests"]))
            p = subprocess.run([INVITED, "--check-config", "-c", env.conf], capture_output=True,
                               timeout=30)
            tap.ok(("ca_file = " + pki["ca"]).encode() in p.stdout,
                   "--check-config shows ca_file", p.stdout.decode())
            os.mkdir(env.conf + ".d")
            with open(env.conf + ".d/proxy.conf", "w") as f:
                f.write("[graph]\nproxy = http://someone:pr0xy-pw@127.0.0.1:3128\n")
            p = subprocess.run([INVITED, "--check-config", "-c", env.conf], capture_output=True,
                               timeout=30)
            tap.ok(p.returncode == 0 and b"proxy = http://127.0.0.1:3128\n" in p.stdout
                   and b"pr0xy-pw" not in p.stdout + p.stderr,
                   "--check-config shows the proxy without its user and password",
                   p.stdout.decode() + p.stderr.decode())
            with open(env.conf + ".d/ca.conf", "w") as f:
                f.write("[graph]\nca_file = %s\n" % pki["other_ca"])
            p = env.ctl("reload")
            out = (p.stdout + p.stderr).decode()
            tap.ok(p.returncode == 0 and "needs a restart to apply: ca_file, proxy" in out,
                   "reload says ca_file and proxy apply after a restart", out)

        # the CA is not in the system's store: without ca_file it is refused
        with Env(sim_tls=tls) as env:
            path = env.write("a.csv", portal_file([["nostore@partner.example", "", "false", ""]]))
            env.ctl("submit", path)
            err = deadline_wait(lambda: token_error(env), 20, "a token error")
            tap.ok("unable to get local issuer certificate" in err and "system's CA store" in err,
                   "without ca_file the system's store is used, and the error says so", err)

        # checked when the configuration is read
        with open(os.path.join(tmp, "not-pem"), "w") as f:
            f.write("not a certificate\n")
        check_config(tap, tmp, "ca_file = %s/missing.pem\n" % tmp, "missing ca_file",
                     "cannot read: No such file or directory")
        check_config(tap, tmp, "ca_file = %s/not-pem\n" % tmp, "ca_file without a certificate",
                     "holds no PEM certificate")
        check_config(tap, tmp, "ca_file = relative.pem\n", "relative ca_file",
                     "not an absolute path")
        check_config(tap, tmp, "ca_file = /dev/null\n", "ca_file not a regular file",
                     "is not a regular file")
        check_config(tap, tmp, "proxy = socks5://127.0.0.1:1080\n", "socks5 proxy",
                     "is not an http:// or https:// proxy URL")
        check_config(tap, tmp, "proxy = http://127.0.0.1:3128/some/path\n", "proxy with a path",
                     "has a path")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
