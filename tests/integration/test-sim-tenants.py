#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The simulator with three tenants (issue 11, TENANTS.md "Simulator"): the
first from the command line (a secret), two from --tenants-file (a secret,
a certificate). Each gets a token only with its own credential; a token is
good only for its tenant; each tenant has its own limit window, block switch,
roles claim and throttle scope; the record names each invitation's tenant;
/sim/stats counts per tenant; authorizationPolicy answers only with
Policy.Read.All. No daemon: plain HTTP from Python, a few seconds."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from harness import SANITIZER_REPORT, SIM, deadline_wait, run, skip_all

APP = "11111111-2222-3333-4444-555555555555"
A, B, C = "contoso.example", "fabrikam.example", "northwind.example"
REDIRECT = "https://myapps.microsoft.com"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_payload(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def make_cert(d):
    key, crt = os.path.join(d, "c.key"), os.path.join(d, "c.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", crt, "-subj", "/CN=invited test northwind", "-days", "2"],
                   check=True, capture_output=True, timeout=60)
    return crt, key


def assertion(d, crt, key, aud):
    """A PS256 client assertion made with the openssl command."""
    der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"], check=True,
                         capture_output=True, timeout=30).stdout
    now = int(time.time())
    header = b64url(json.dumps({"alg": "PS256", "typ": "JWT",
                                "x5t#S256": b64url(hashlib.sha256(der).digest())}).encode())
    claims = b64url(json.dumps({"aud": aud, "iss": APP, "sub": APP, "jti": "j-1", "nbf": now,
                                "iat": now, "exp": now + 600}).encode())
    path = os.path.join(d, "input")
    with open(path, "wb") as f:
        f.write((header + "." + claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, "-sigopt",
                          "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest", path],
                         check=True, capture_output=True, timeout=30).stdout
    return header + "." + claims + "." + b64url(sig)


class Sim:
    def __init__(self, d, args):
        self.port_file = os.path.join(d, "sim.port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)  # the previous simulator's
        self.log = open(os.path.join(d, "sim.log"), "ab")
        self.proc = subprocess.Popen([SIM, "--port", "0", "--port-file", self.port_file] + args,
                                     stdout=self.log, stderr=self.log)
        deadline_wait(lambda: self.proc.poll() is not None or
                      (os.path.exists(self.port_file) and open(self.port_file).read().strip()),
                      10, "the simulator's port file")
        if self.proc.poll() is not None:
            raise RuntimeError("the simulator exited with %d" % self.proc.returncode)
        self.base = "http://127.0.0.1:%d" % int(open(self.port_file).read())

    def call(self, method, path, body=None, headers=None):
        """(status, headers, parsed JSON body or None)"""
        req = urllib.request.Request(self.base + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw, status, hdrs = r.read(), r.status, r.headers
        except urllib.error.HTTPError as e:
            raw, status, hdrs = e.read(), e.code, e.headers
        return status, hdrs, json.loads(raw) if raw else None

    def token(self, tenant, **cred):
        form = {"grant_type": "client_credentials", "client_id": APP,
                "scope": "https://graph.microsoft.com/.default"}
        if "assertion" in cred:
            form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            form["client_assertion"] = cred["assertion"]
        else:
            form["client_secret"] = cred["secret"]
        return self.call("POST", "/%s/oauth2/v2.0/token" % tenant,
                         urllib.parse.urlencode(form).encode(),
                         {"Content-Type": "application/x-www-form-urlencoded"})

    def invite(self, token, address, prefix=""):
        body = json.dumps({"invitedUserEmailAddress": address, "inviteRedirectUrl": REDIRECT})
        return self.call("POST", prefix + "/v1.0/invitations", body.encode(),
                         {"Authorization": "Bearer " + token, "Content-Type": "application/json"})

    def batch(self, token, address, prefix=""):
        body = {"requests": [{"id": "1", "method": "POST", "url": "/invitations",
                              "headers": {"Content-Type": "application/json"},
                              "body": {"invitedUserEmailAddress": address,
                                       "inviteRedirectUrl": REDIRECT}}]}
        return self.call("POST", prefix + "/v1.0/$batch", json.dumps(body).encode(),
                         {"Authorization": "Bearer " + token, "Content-Type": "application/json"})

    def policy(self, token):
        return self.call("GET", "/v1.0/policies/authorizationPolicy",
                         headers={"Authorization": "Bearer " + token})

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def refused(d, tenants, tap, what, needle):
    path = os.path.join(d, "bad.json")
    with open(path, "w") as f:
        json.dump(tenants, f)
    p = subprocess.run([SIM, "--port", "0", "--tenant", A, "--tenants-file", path],
                       capture_output=True, text=True, timeout=10)
    tap.ok(p.returncode == 1 and needle in p.stderr and path in p.stderr and
           not SANITIZER_REPORT.search(p.stderr),
           "a tenants file with %s is refused (exit %d, names the file and %r)"
           % (what, p.returncode, needle), p.stderr)


def main(tap):
    if not shutil.which("openssl"):
        skip_all("the openssl command is not installed")
    d = tempfile.mkdtemp(prefix="invited-sim-tenants.")
    sim = None
    try:
        crt, key = make_cert(d)
        tenants = [
            {"tenant": B, "client_secret": "secret-b", "rate": 2, "period_ms": 60000,
             "throttle_scope": "Application"},
            {"tenant": C, "client_cert": crt, "block_after": 2,
             "roles": ["User.Invite.All", "Policy.Read.All"], "guests": "allowed"},
        ]
        tfile = os.path.join(d, "tenants.json")
        with open(tfile, "w") as f:
            json.dump(tenants, f)
        record = os.path.join(d, "record.jsonl")
        t0 = time.monotonic()
        sim = Sim(d, ["--record", record, "--tenant", A, "--client-id", APP,
                      "--client-secret", "secret-a", "--rate", "3", "--period", "60",
                      "--throttle-scope", "Tenant_Application",
                      "--roles", "User.Invite.All,Policy.Read.All", "--guests", "none",
                      "--tenants-file", tfile])

        # -- credentials: each tenant's own, nobody else's --
        st, _, ja = sim.token(A, secret="secret-a")
        tap.eq(st, 200, "tenant A (command line) gets a token with its secret")
        st, _, jb = sim.token(B, secret="secret-b")
        tap.eq(st, 200, "tenant B (tenants file) gets a token with its secret")
        jwt_c = assertion(d, crt, key, sim.base + "/%s/oauth2/v2.0/token" % C)
        st, _, jc = sim.token(C, assertion=jwt_c)
        tap.eq(st, 200, "tenant C (tenants file) gets a token with its certificate")
        st, _, j = sim.token(A, secret="secret-b")
        tap.ok(st == 401 and j["error_codes"] == [7000215], "B's secret at A: 401 invalid_client",
               j)
        st, _, j = sim.token(B, secret="secret-a")
        tap.ok(st == 401 and j["error_codes"] == [7000215], "A's secret at B: 401 invalid_client",
               j)
        st, _, j = sim.token(C, secret="secret-a")
        tap.ok(st == 401 and j["error"] == "invalid_client",
               "a secret at C (a certificate tenant): 401 invalid_client", j)
        jwt_b = assertion(d, crt, key, sim.base + "/%s/oauth2/v2.0/token" % B)
        st, _, j = sim.token(B, assertion=jwt_b)
        tap.ok(st == 401 and j["error_codes"] == [700027],
               "C's certificate at B (a secret tenant): 401 invalid_client 700027", j)
        st, _, j = sim.token("unknown.example", secret="secret-a")
        tap.ok(st == 400 and j["error_codes"] == [90002], "an unknown tenant: 400 90002", j)
        ta, tb, tc = ja["access_token"], jb["access_token"], jc["access_token"]

        # -- the token is a JWT with tid and roles as configured --
        pa, pb, pc = jwt_payload(ta), jwt_payload(tb), jwt_payload(tc)
        tap.eq((pa["tid"], pa["appid"], pa["roles"]), (A, APP, ["User.Invite.All", "Policy.Read.All"]),
               "A's token: tid, appid and roles (--roles)")
        tap.eq((pb["tid"], pb["roles"]), (B, ["User.Invite.All"]),
               "B's token: tid and the default roles")
        tap.eq((pc["tid"], pc["roles"], pc["appidacr"]),
               (C, ["User.Invite.All", "Policy.Read.All"], "2"),
               "C's token: tid, roles from the file, appidacr 2 (certificate)")
        tap.ok(pa["exp"] - pa["iat"] == 3599 and pa["aud"] == "https://graph.microsoft.com",
               "aud and lifetime as Entra ID's", pa)

        # -- block switches: C's block_after and B's runtime block leave the others --
        st1 = sim.invite(tc, "c1@partner.example")[0]
        st2 = sim.invite(tc, "c2@partner.example")[0]
        st3, _, j3 = sim.invite(tc, "c3@partner.example")
        tap.ok((st1, st2, st3) == (201, 201, 403) and "suspicious activity" in j3["error"]["message"],
               "C blocked after its block_after 2 (%d %d %d)" % (st1, st2, st3), j3)
        st = sim.invite(ta, "a1@partner.example")[0]
        tap.eq(st, 201, "A sends while C is blocked")
        _, _, s = sim.call("GET", "/sim/stats")
        tap.eq((s["tenants"][C]["blocked"], s["tenants"][A]["blocked"], s["tenants"][B]["blocked"]),
               (True, False, False), "/sim/stats: C blocked, A and B not")
        st, _, j = sim.call("POST", "/sim/unblock?tenant=" + C)
        tap.ok(st == 200 and j == {"tenant": C, "blocked": False}, "POST /sim/unblock?tenant=C", j)
        tap.eq(sim.invite(tc, "c4@partner.example")[0], 201, "C sends again after the unblock")
        st, _, j = sim.call("POST", "/sim/block?tenant=" + B)
        tap.ok(st == 200 and j["blocked"] is True, "POST /sim/block?tenant=B", j)
        st, _, j = sim.invite(tb, "b1@partner.example")
        tap.ok(st == 403 and j["error"]["code"] == "Forbidden", "B blocked: 403", j)
        tap.eq(sim.invite(tc, "c5@partner.example")[0], 201, "C sends while B is blocked")
        sim.call("POST", "/sim/unblock?tenant=" + B)
        tap.eq(sim.invite(tb, "b2@partner.example")[0], 201, "B sends after its unblock")
        st, _, j = sim.call("POST", "/sim/block?tenant=nobody.example")
        tap.eq(st, 404, "/sim/block of an unknown tenant: 404")

        # -- a token is good only for its tenant --
        st, _, j = sim.invite(ta, "x1@partner.example", prefix="/" + B)
        tap.ok(st == 401 and j["error"]["code"] == "InvalidAuthenticationToken",
               "A's token at B's Graph URL (/fabrikam.example/v1.0/invitations): 401", j)
        st, _, j = sim.batch(tb, "x2@partner.example", prefix="/" + A)
        tap.ok(st == 401 and j["error"]["code"] == "InvalidAuthenticationToken",
               "B's token at A's Graph URL ($batch): 401", j)
        tap.eq(sim.invite(ta, "a2@partner.example", prefix="/" + A)[0], 201,
               "A's token at A's own Graph URL: 201")

        # -- separate limit windows and the throttle scope --
        tap.eq(sim.invite(ta, "a3@partner.example")[0], 201, "A's third invitation: 201 (rate 3)")
        st, h, j = sim.invite(ta, "a4@partner.example")
        tap.ok(st == 429 and int(h["Retry-After"]) >= 1, "A at its limit: 429 with Retry-After", j)
        tap.eq(h.get("x-ms-throttle-scope"), "Tenant_Application/Write/%s/%s" % (APP, A),
               "A's 429 names Tenant_Application/Write/appId/tenantId")
        st, h, _ = sim.invite(tb, "b3@partner.example")
        tap.ok(st == 201 and h.get("x-ms-throttle-scope") is None,
               "B still 201 while A is at its limit (B's own window)")
        st, _, j = sim.batch(tb, "b4@partner.example")
        item = j["responses"][0] if st == 200 else {}
        tap.ok(item.get("status") == 429 and
               item["headers"].get("x-ms-throttle-scope") == "Application/Write/" + APP,
               "B at its limit: a $batch item 429 naming Application/Write/appId", j)
        tap.eq(sim.invite(tc, "c6@partner.example")[0], 201, "C (no rate) unaffected by both")

        # -- authorizationPolicy --
        st, _, j = sim.policy(ta)
        tap.ok(st == 200 and j["allowInvitesFrom"] == "none",
               "authorizationPolicy with Policy.Read.All (A, --guests none): allowInvitesFrom none", j)
        st, _, j = sim.policy(tc)
        tap.ok(st == 200 and j["allowInvitesFrom"] == "everyone",
               "authorizationPolicy for C (guests allowed): everyone", j)
        st, _, j = sim.policy(tb)
        tap.ok(st == 403 and j["error"]["code"] == "Authorization_RequestDenied",
               "authorizationPolicy without Policy.Read.All (B): 403 Authorization_RequestDenied", j)
        st, _, _ = sim.call("GET", "/v1.0/policies/authorizationPolicy")
        tap.eq(st, 401, "authorizationPolicy without a token: 401")

        # -- /sim/stats per tenant --
        _, _, s = sim.call("GET", "/sim/stats")
        ts = s["tenants"]
        tap.diag("tenants: " + json.dumps(ts, sort_keys=True))
        tap.eq({n: ts[n]["invitations_accepted"] for n in ts}, {A: 3, B: 2, C: 5},
               "accepted per tenant")
        tap.eq({n: ts[n]["invitation_status"] for n in ts},
               {A: {"201": 3, "429": 1}, B: {"201": 2, "403": 1, "429": 1},
                C: {"201": 5, "403": 1}}, "invitation_status per tenant")
        tap.eq({n: (ts[n]["tokens_issued"], ts[n]["tokens_refused"]) for n in ts},
               {A: (1, 1), B: (1, 2), C: (1, 1)}, "tokens issued and refused per tenant")
        tap.eq({n: ts[n]["wrong_tenant"] for n in ts}, {A: 1, B: 1, C: 0},
               "tokens sent to another tenant's URL, per tenant")
        tap.eq({n: ts[n]["policy_reads"] for n in ts}, {A: 1, B: 0, C: 1}, "policy reads per tenant")
        tap.eq((s["invitations_accepted"], s["tokens_issued"]), (10, 3),
               "the top-level counters are the sums")

        # -- the record names each invitation's tenant --
        code = sim.stop()
        sim = None
        tap.eq(code, 0, "exits 0 on SIGTERM")
        lines = [json.loads(l) for l in open(record) if l.strip()]
        want = {"a": A, "b": B, "c": C}
        tap.ok(len(lines) == 10 and all(l["tenant"] == want[l["address"][0]] for l in lines),
               "the record's %d lines each name their tenant" % len(lines),
               "\n".join(json.dumps(l) for l in lines))
        tap.eq(sorted(l["address"] for l in lines if l["tenant"] == B),
               ["b2@partner.example", "b3@partner.example"], "B's lines in the record")
        log = open(os.path.join(d, "sim.log")).read()
        tap.ok("libmicrohttpd" not in log and not SANITIZER_REPORT.search(log),
               "no sanitizer or libmicrohttpd complaint in the simulator's log", log)

        # -- a first tenant without --tenant takes every other name --
        secret_file = os.path.join(d, "b.secret")
        with open(secret_file, "w") as f:
            f.write("secret-b\n")
        with open(tfile, "w") as f:
            json.dump([{"tenant": B, "client_secret_file": secret_file}], f)
        os.unlink(record)
        sim = Sim(d, ["--record", record, "--roles", "", "--tenants-file", tfile])
        st, _, j = sim.token("any.example", secret="whatever")
        p0 = jwt_payload(j["access_token"]) if st == 200 else {}
        tap.ok(st == 200 and p0.get("tid") == "any.example" and "roles" not in p0,
               "no --tenant: any other name gets a token, tid as named, no roles claim (--roles '')",
               p0)
        tap.eq(sim.token(B, secret="whatever")[0], 401,
               "... but B's name still needs B's secret (client_secret_file)")
        tap.eq(sim.invite(j["access_token"], "z@partner.example")[0], 201, "its invitation: 201")
        tap.eq(sim.policy(j["access_token"])[0], 403, "no roles: authorizationPolicy 403")
        _, _, s2 = sim.call("GET", "/sim/stats")
        tap.eq(sorted(s2["tenants"]), ["*", B], "/sim/stats names the nameless first tenant '*'")
        tap.eq(sim.stop(), 0, "exits 0")
        sim = None
        tap.eq([l["tenant"] for l in map(json.loads, open(record))], ["any.example"],
               "the record names the tenant as the token URL did")

        # -- bad tenants files --
        refused(d, [{"tenant": B, "rate": 1, "burst": 2}], tap, "an unknown key", "key burst")
        refused(d, [{"tenant": B}, {"tenant": B.upper()}], tap, "a duplicate tenant",
                "comes earlier")
        refused(d, [{"tenant": A}], tap, "the first tenant again", "comes earlier")
        refused(d, [{"tenant": "a/b"}], tap, "a bad name", "not a directory name")
        refused(d, [{"client_secret": "x"}], tap, "no tenant", "key tenant: missing")
        tap.diag("elapsed %.2f s" % (time.monotonic() - t0))
    finally:
        if sim:
            sim.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run(main)
