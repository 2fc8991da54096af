#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The tests' SMTP server (smtpd.py, issue 13) against curl's SMTP client:
STARTTLS then AUTH delivers and records the message (envelope, raw data,
parsed headers); AUTH before STARTTLS, a wrong password, an unknown user and
mail without AUTH are refused; --reply answers 4xx/5xx to RCPT or DATA for
given addresses (nothing recorded for them); --implicit-tls serves smtps.
No daemon, a few seconds."""
import base64
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import make_pki, run, skip_all  # noqa: E402
import smtpd  # noqa: E402

USER, PASSWORD = "invited", "s3cret pass"
MESSAGE = ("From: Invitations <inv@contoso.example>\r\n"
           "To: Ann Guest <ann@partner.example>\r\n"
           "Subject: You are invited\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n"
           "\r\n"
           "Hello Ann, accept here: https://login.microsoftonline.com/redeem?rd=x\r\n"
           "Grüße\r\n")


def curl(d, pki, url, rcpts, user=USER, password=PASSWORD, ssl_reqd=True,
         mail_from="inv@contoso.example", verbose=False):
    msg = os.path.join(d, "msg.eml")
    with open(msg, "wb") as f:
        f.write(MESSAGE.encode("utf-8"))
    args = ["curl", "--silent", "--show-error", "--max-time", "20", "--url", url,
            "--mail-from", mail_from, "--upload-file", msg, "--cacert", pki["ca"]]
    for r in rcpts:
        args += ["--mail-rcpt", r]
    if ssl_reqd:
        args.append("--ssl-reqd")
    if verbose:  # the server's answers as "< 451 ..." lines in stderr
        args.append("--verbose")
    if user is not None:
        args += ["--user", "%s:%s" % (user, password)]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def dialog(port, lines):
    """A plain-text SMTP dialog: the server's answer to each line."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        out.append(f.readline().decode())
        for line in lines:
            s.sendall(line.encode() + b"\r\n")
            answer = []
            while True:
                got = f.readline().decode()
                answer.append(got)
                if len(got) < 4 or got[3] != "-":
                    break
            out.append("".join(answer))
    return out


def main(tap):
    python = smtpd.interpreter()
    if not python:
        skip_all("no python3 with aiosmtpd (apt-get install python3-aiosmtpd)")
    if not shutil.which("curl"):
        skip_all("no curl")
    t0 = time.monotonic()
    d = tempfile.mkdtemp(prefix="invited-smtpd-")
    servers = []
    try:
        pki = make_pki(d)
        pwfile = os.path.join(d, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        base = ["--cert", pki["cert"], "--key", pki["key"], "--user", USER,
                "--password-file", pwfile]
        srv = smtpd.Server(d, base + ["--reply", "rcpt:busy@partner.example=450",
                                      "--reply", "rcpt:gone@partner.example=550",
                                      "--reply", "data:later@partner.example=451",
                                      "--reply", "data:never@partner.example=554 5.7.1 Refused by policy (test)"],
                           python=python)
        servers.append(srv)
        url = "smtp://127.0.0.1:%d" % srv.port
        tap.ok(srv.port > 0, "smtpd.py prints its port (%d)" % srv.port)

        # -- STARTTLS + AUTH: delivered and recorded --
        p = curl(d, pki, url, ["ann@partner.example", "bob@partner.example"])
        tap.eq((p.returncode, p.stderr), (0, ""), "curl --ssl-reqd with AUTH: the message is accepted")
        rec = srv.record()
        tap.eq(len(rec), 1, "one message recorded")
        m = rec[0] if rec else {}
        tap.eq((m.get("mail_from"), m.get("rcpt_tos"), m.get("auth_user"), m.get("tls")),
               ("inv@contoso.example", ["ann@partner.example", "bob@partner.example"], USER, True),
               "the record holds the envelope, the AUTH user and that it came over TLS")
        tap.eq(base64.b64decode(m.get("data_b64", "")), MESSAGE.encode("utf-8"),
               "data_b64 is the exact bytes curl sent")
        tap.ok("Grüße" in m.get("data", ""), "data is the message as UTF-8 text")
        hdr = dict((k.lower(), v) for k, v in m.get("headers", []))
        tap.eq((hdr.get("subject"), hdr.get("to"), hdr.get("from")),
               ("You are invited", "Ann Guest <ann@partner.example>", "Invitations <inv@contoso.example>"),
               "the headers are parsed")

        # -- refusals --
        n = len(srv.record())
        p = curl(d, pki, url, ["ann@partner.example"], ssl_reqd=False)
        tap.ok(p.returncode != 0, "without STARTTLS curl cannot send (exit %d: %s)"
               % (p.returncode, p.stderr.strip()))
        ans = dialog(srv.port, ["EHLO test", "AUTH PLAIN " +
                                base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode()).decode(),
                                "MAIL FROM:<inv@contoso.example>", "QUIT"])
        tap.ok("STARTTLS" in ans[1] and "AUTH" not in ans[1],
               "before STARTTLS EHLO offers STARTTLS and no AUTH", ans[1])
        tap.ok(ans[2][:1] == "5" and ans[3][:1] == "5",
               "AUTH and MAIL before STARTTLS are refused with 5xx (%s / %s)"
               % (ans[2].strip(), ans[3].strip()))
        p = curl(d, pki, url, ["ann@partner.example"], password="wrong")
        tap.ok(p.returncode == 67, "a wrong password is refused (curl exit 67, login denied): %d %s"
               % (p.returncode, p.stderr.strip()))
        p = curl(d, pki, url, ["ann@partner.example"], user="mallory")
        tap.eq(p.returncode, 67, "an unknown user is refused (curl exit 67)")
        p = curl(d, pki, url, ["ann@partner.example"], user=None)
        tap.ok(p.returncode != 0, "STARTTLS without AUTH cannot send (exit %d: %s)"
               % (p.returncode, p.stderr.strip()))
        tap.eq(len(srv.record()), n, "nothing refused was recorded")

        # -- 4xx / 5xx modes --
        for rcpt, code, what in (("busy@partner.example", "450", "RCPT"),
                                 ("gone@partner.example", "550", "RCPT"),
                                 ("later@partner.example", "451", "DATA"),
                                 ("never@partner.example", "554", "DATA")):
            p = curl(d, pki, url, [rcpt], verbose=True)
            answer = [l for l in p.stderr.splitlines() if l.startswith("< " + code)]
            tap.ok(p.returncode != 0 and answer,
                   "--reply %s:%s=%s: the server answers %s %s and curl fails (exit %d)"
                   % (what.lower(), rcpt, code, what, answer[0][2:] if answer else "?",
                      p.returncode), p.stderr[-800:])
        tap.eq(len(srv.record()), n, "no message recorded for a refused recipient")
        p = curl(d, pki, url, ["ann@partner.example", "busy@partner.example"])
        rec = srv.record()
        tap.ok(p.returncode != 0 and len(rec) == n,
               "curl gives up on a message when one recipient is refused (exit %d)" % p.returncode)
        tap.eq(srv.stop(), 0, "smtpd.py exits 0 on SIGTERM")
        servers.remove(srv)

        # -- implicit TLS (smtps) --
        srv = smtpd.Server(d, base + ["--implicit-tls"], python=python)
        servers.append(srv)
        p = curl(d, pki, "smtps://127.0.0.1:%d" % srv.port, ["ann@partner.example"])
        rec = srv.record()
        tap.ok(p.returncode == 0 and len(rec) == 1 and rec[-1]["tls"] and
               rec[-1]["auth_user"] == USER,
               "--implicit-tls: curl smtps:// with AUTH delivers and is recorded",
               "%s %r" % (p.stderr, rec))
        p = curl(d, pki, "smtps://127.0.0.1:%d" % srv.port, ["ann@partner.example"], password="x")
        tap.eq(p.returncode, 67, "smtps: a wrong password is refused")
        ctx = ssl.create_default_context(cafile=pki["other_ca"])
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                ctx.wrap_socket(s, server_hostname="127.0.0.1")
            verified = True
        except ssl.SSLError:
            verified = False
        tap.ok(not verified, "its certificate is the test CA's (another CA does not verify it)")
        tap.eq(srv.stop(), 0, "exits 0")
        servers.remove(srv)
        tap.diag("elapsed %.2f s" % (time.monotonic() - t0))
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run(main)
