#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Credentials: a certificate (signed client assertion) gets a token from the
simulator, which refuses an assertion signed with another key; a secret file
readable by group or others is refused; the systemd credential directory
works; --check-config masks the secret and shows the
certificate and the cloud."""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

from harness import INVITED, Env, deadline_wait, portal_file, run, skip_all

CLIENT_ID = "11111111-2222-3333-4444-555555555555"


def make_cert(dirname, name):
    """A self-signed RSA certificate and its key; returns (cert, key, both)."""
    key = os.path.join(dirname, name + ".key")
    crt = os.path.join(dirname, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", crt, "-subj", "/CN=invited test " + name, "-days", "2"],
                   check=True, capture_output=True, timeout=60)
    both = os.path.join(dirname, name + ".pem")
    with open(both, "w") as f:
        f.write(open(crt).read() + open(key).read())
    os.chmod(both, 0o600)
    return crt, key, both


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def x5t(crt):
    der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"], check=True,
                         capture_output=True, timeout=30).stdout
    import hashlib
    return b64url(hashlib.sha256(der).digest())


def assertion(tmp, crt_for_x5t, key, aud):
    """A PS256 client assertion made with the openssl CLI, independent of invited."""
    now = int(time.time())
    header = b64url(json.dumps({"alg": "PS256", "typ": "JWT", "x5t#S256": x5t(crt_for_x5t)}).encode())
    claims = b64url(json.dumps({"aud": aud, "iss": CLIENT_ID, "sub": CLIENT_ID,
                                "jti": "5b1c9a42-2f27-4a51-9d2e-0c7e3f2a9b10", "nbf": now,
                                "iat": now, "exp": now + 600}).encode())
    signing_input = (header + "." + claims).encode()
    path = os.path.join(tmp, "input")
    with open(path, "wb") as f:
        f.write(signing_input)
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, "-sigopt",
                          "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest", path],
                         check=True, capture_output=True, timeout=30).stdout
    return header + "." + claims + "." + b64url(sig)


def token_request(env, jwt):
    url = env.base + "/contoso.onmicrosoft.com/oauth2/v2.0/token"
    from urllib.parse import urlencode
    body = urlencode({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                      "scope": "https://graph.microsoft.com/.default",
                      "client_assertion_type":
                          "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                      "client_assertion": jwt}).encode()
    req = urllib.request.Request(url, data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def check_config(conf, env_extra=None):
    env = dict(os.environ)
    env.pop("CREDENTIALS_DIRECTORY", None)
    env.update(env_extra or {})
    return subprocess.run([INVITED, "--check-config", "-c", conf], capture_output=True,
                          text=True, timeout=30, env=env)


def main(tap):
    if not shutil.which("openssl"):
        skip_all("the openssl command is not installed")
    import tempfile
    tmp = tempfile.mkdtemp(prefix="invited-certs.")
    try:
        crt1, key1, both1 = make_cert(tmp, "one")
        crt2, key2, both2 = make_cert(tmp, "two")
        sim = ["--client-cert", crt1]

        # the certificate the simulator knows: a token, and a job goes through
        with Env(sim_args=sim, graph={"client_secret_file": None,
                                      "certificate_file": both1}) as env:
            f = env.write("guests.csv", portal_file(
                [["cert%d@partner.example" % i, "", "false", ""] for i in range(5)]))
            p = env.ctl("submit", f, "--wait")
            tap.eq(p.returncode, 0, "certificate credential: a job completes", )
            tap.ok(env.sim_stats().get("tokens_issued", 0) >= 1,
                   "the simulator issued a token for the signed assertion")
            p, st = env.ctl_json("status")
            tap.eq((st or {}).get("token", {}).get("state"), "valid", "status: token valid")
            tap.ok("Signing in with the certificate" in env.log() and x5t(crt1) in env.log(),
                   "the log names the certificate by its SHA-256 thumbprint (x5t S256)", env.log())
            # made with -days 2: 1 day and some hours left, or 2 within the same second
            tap.ok(re.search(r"invited test one expires in [12] days?: renew it", env.log()),
                   "and warns that it expires within 30 days", env.log())

            # the simulator's check itself, with assertions made by openssl(1)
            aud = env.base + "/contoso.onmicrosoft.com/oauth2/v2.0/token"
            status, body = token_request(env, assertion(tmp, crt1, key1, aud))
            tap.eq(status, 200, "sim: an openssl-made PS256 assertion with the right key passes")
            status, body = token_request(env, assertion(tmp, crt1, key2, aud))
            tap.ok(status == 401 and body.get("error") == "invalid_client" and
                   "AADSTS700027" in body.get("error_description", "") and
                   "signature" in body.get("error_description", ""),
                   "sim: the right thumbprint (x5t S256) but signed with another key: 401 invalid_client, "
                   "AADSTS700027 signature", body)
            status, body = token_request(env, assertion(tmp, crt1, key1,
                                                        env.base + "/other.example/oauth2/v2.0/token"))
            tap.ok(status == 401 and "audience" in body.get("error_description", ""),
                   "sim: an assertion for another token URL is refused", body)

        # another certificate: the token fetch fails and status says why
        with Env(sim_args=sim, graph={"client_secret_file": None,
                                      "certificate_file": both2}) as env:
            def token_error():
                p, st = env.ctl_json("status")
                return st and st.get("token", {}).get("error")
            err = deadline_wait(token_error, 20, "a token error")
            tap.ok("AADSTS700027" in err and "not registered" in err,
                   "another key: the token fetch fails with AADSTS700027", err)
            p = env.ctl("status")
            tap.ok(b"AADSTS700027" in p.stdout, "invitectl status shows the reason",
                   p.stdout.decode())
            f = env.write("g.csv", portal_file([["x@partner.example", "", "false", ""]]))
            p, job = env.ctl_json("submit", f)
            tap.ok(job and job["pending"] == 1, "a job waits (nothing sent without a token)")

        # a private key readable by others is refused
        os.chmod(both1, 0o644)
        with Env(start=False, graph={"client_secret_file": None, "certificate_file": both1}) as env:
            p = check_config(env.conf)
            tap.ok(p.returncode == 78 and "chmod 0600" in p.stderr and "0644" in p.stderr,
                   "certificate_file mode 0644: refused, exit 78", p.stderr)
        os.chmod(both1, 0o600)

        # a secret file readable by the group: refused at start and by --check-config
        with Env(start=False) as env:
            os.chmod(env.secret_path, 0o640)
            p = check_config(env.conf)
            tap.ok(p.returncode == 78 and "accessible by group or others (mode 0640)" in p.stderr,
                   "--check-config: a group-readable secret is refused, exit 78", p.stderr)
            d = subprocess.run([INVITED, "-c", env.conf], capture_output=True, text=True,
                               timeout=30)
            tap.ok(d.returncode == 78 and "mode 0640" in d.stderr,
                   "invited refuses to start with it, exit 78", d.stderr)
            os.chmod(env.secret_path, 0o600)
            p = check_config(env.conf)
            tap.eq(p.returncode, 0, "mode 0600: --check-config passes")
            tap.ok("sim-secret-value" not in p.stdout + p.stderr and "********" in p.stdout,
                   "--check-config masks the secret", p.stdout)
            tap.ok("cloud = global" in p.stdout, "--check-config shows the cloud")

        with Env(start=False, graph={"client_secret_file": None, "certificate_file": both1,
                                     "cloud": "usgov", "authority_url": None,
                                     "graph_url": None}) as env:
            p = check_config(env.conf)
            tap.ok(p.returncode == 0 and "certificate_file = " + both1 in p.stdout and
                   x5t(crt1) in p.stdout and "cloud = usgov" in p.stdout and
                   "graph_url = https://graph.microsoft.us" in p.stdout and
                   "authority_url = https://login.microsoftonline.us" in p.stdout,
                   "--check-config shows the certificate and the usgov URLs", p.stdout + p.stderr)
            tap.ok("PRIVATE KEY" not in p.stdout, "and never the key")

        # the systemd credential: $CREDENTIALS_DIRECTORY/client-secret
        creds = os.path.join(tmp, "creds")
        os.mkdir(creds, 0o700)
        with open(os.path.join(creds, "client-secret"), "w") as f:
            f.write("sim-secret-value")
        os.chmod(os.path.join(creds, "client-secret"), 0o400)
        with Env(graph={"client_secret_file": None},
                 daemon_env={"CREDENTIALS_DIRECTORY": creds}) as env:
            f = env.write("c.csv", portal_file([["cred@partner.example", "", "false", ""]]))
            p = env.ctl("submit", f, "--wait")
            tap.eq(p.returncode, 0, "the credential client-secret in $CREDENTIALS_DIRECTORY works")
        with Env(start=False, graph={"client_secret_file": None}) as env:
            p = check_config(env.conf, {"CREDENTIALS_DIRECTORY": os.path.join(tmp, "none")})
            tap.ok(p.returncode == 78 and "client-secret" in p.stderr,
                   "no credential anywhere: exit 78 saying what to set", p.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
