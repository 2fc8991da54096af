#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""http.c's SMTP and mailmsg (issue 13) against the tests' SMTP server
(smtpd.py: aiosmtpd, STARTTLS with a certificate made here, AUTH), driven by
smtp-send (tests/integration/smtp-send.c: http_smtp_send on a libuv loop,
the message composed by mailmsg from etc/invitation.txt). STARTTLS + AUTH
delivers one message with the right envelope and headers; a wrong password
is DENIED (535); 451 is TRANSIENT, 554/550 FAILED with the enhanced code;
smtps:// (implicit TLS); a server without STARTTLS is refused before AUTH
or MAIL; a display name or values holding "\\r\\nBcc: x@evil.example" add no
header and no recipient; check_only sends no message; the password appears
nowhere in the output. No daemon, a few seconds."""
import base64
import email
import email.header
import email.policy
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SANITIZER_REPORT, make_pki, run, skip_all  # noqa: E402
import smtpd  # noqa: E402

SMTP_SEND = os.environ.get("SMTP_SEND", "smtp-send")
TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "etc",
                        "invitation.txt")
USER, PASSWORD = "invited", "s3cret pass-Zq9"
SENDER = "invitations@contoso.example"
HEADERS = ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type",
           "Content-Transfer-Encoding"]
EVIL = "\r\nBcc: x@evil.example"


def send(url, to, *args, ca=None, password=True, user=USER, pwfile=None):
    cmd = [SMTP_SEND, "--url", url, "--from", SENDER, "--to", to]
    if ca:
        cmd += ["--ca", ca]
    if user is not None:
        cmd += ["--user", user, "--password-file", pwfile]
    p = subprocess.run(cmd + list(args), capture_output=True, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    return p.returncode, lines, out + p.stderr.decode("utf-8", "replace")


def parse(rec):
    return email.message_from_bytes(base64.b64decode(rec["data_b64"]), policy=email.policy.compat32)


def decoded(value):
    return str(email.header.make_header(email.header.decode_header(value)))


class PlainServer:
    """An SMTP server that does not offer STARTTLS (but offers AUTH): it
    answers every command and keeps what it was sent, so a test can see
    that nothing past EHLO came."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(20)
        self.port = self.sock.getsockname()[1]
        self.commands = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(20)
            f = conn.makefile("rb")
            conn.sendall(b"220 plain.test ESMTP\r\n")
            for _ in range(50):
                line = f.readline()
                if not line:
                    break
                self.commands.append(line.decode("utf-8", "replace").rstrip("\r\n"))
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-plain.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 Bye\r\n")
                    break
                else:
                    conn.sendall(b"250 OK\r\n")

    def stop(self):
        self.sock.close()
        self.thread.join(10)


class SlowServer:
    """An SMTP server with STARTTLS and AUTH that takes DELAY seconds to
    answer the end of a message, as a busy relay scanning content does."""

    def __init__(self, pki, delay, quit_delay=0, refuse_rcpt=False):
        self.quit_delay = quit_delay
        self.refuse_rcpt = refuse_rcpt
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(pki["cert"], pki["key"])
        self.delay = delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(20)
        self.port = self.sock.getsockname()[1]
        self.messages = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        for _ in range(20):  # a session at a time, each on its connection
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.stopping.is_set():
                conn.close()
                return
            conn.settimeout(20)
            try:
                self.session(conn)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def session(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 slow.test ESMTP\r\n")
        tls = False
        for _ in range(50):
            line = f.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-slow.test\r\n" + (b"250 AUTH PLAIN LOGIN\r\n" if tls else
                                                      b"250 STARTTLS\r\n"))
            elif verb == b"STAR":
                conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                conn = self.ctx.wrap_socket(conn, server_side=True)
                f = conn.makefile("rb")
                tls = True
            elif verb == b"AUTH":
                conn.sendall(b"235 2.7.0 Authentication successful\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                while f.readline() not in (b".\r\n", b""):
                    pass
                self.stopping.wait(self.delay)
                self.messages += 1
                conn.sendall(b"250 2.0.0 OK queued (slowly)\r\n")
            elif verb == b"QUIT":
                self.stopping.wait(self.quit_delay)
                conn.sendall(b"221 2.0.0 Bye\r\n")
                return
            elif verb == b"RCPT" and self.refuse_rcpt:
                conn.sendall(b"550 5.1.1 No such user (slow)\r\n")
            else:
                conn.sendall(b"250 2.1.0 OK\r\n")

    def stop(self):
        self.stopping.set()
        try:  # wake the accept() (closing the socket does not)
            socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
        except OSError:
            pass
        self.thread.join(10)
        self.sock.close()


def main(tap):
    python = smtpd.interpreter()
    if not python:
        skip_all("no python3 with aiosmtpd (apt-get install python3-aiosmtpd)")
    t0 = time.monotonic()
    d = tempfile.mkdtemp(prefix="invited-smtp-transport-")
    servers = []
    try:
        pki = make_pki(d)
        pwfile = os.path.join(d, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        badpw = os.path.join(d, "badpw")
        with open(badpw, "w") as f:
            f.write("wrong-" + PASSWORD + "\n")
        base = ["--cert", pki["cert"], "--key", pki["key"], "--user", USER,
                "--password-file", pwfile]
        srv = smtpd.Server(d, base + [
            "--reply", "data:later@partner.example=451",
            "--reply", "data:never@partner.example=554 5.7.236 Access denied, too many "
                       "external recipients (test)",
            "--reply", "rcpt:gone@partner.example=550"], python=python)
        servers.append(srv)
        url = "smtp://127.0.0.1:%d" % srv.port
        outputs = []

        def go(to, *args, **kw):
            kw.setdefault("ca", pki["ca"])
            kw.setdefault("pwfile", pwfile)
            rc, lines, out = send(url if "url" not in kw else kw.pop("url"), to, *args, **kw)
            outputs.append(out)
            return rc, lines

        # -- STARTTLS + AUTH: one message, the right envelope, the template filled in --
        values = ["--template", TEMPLATE, "--name", "Zoë Ångström", "--redeem-url",
                  "https://login.microsoftonline.com/redeem?rd=abc%3D&tenant=t1",
                  "--message", "Welcome aboard!\nSee you {inviter} soon.",
                  "--inviter", "Contoso IT", "--tenant", "Contoso Ltd"]
        rc, lines = go("ann@partner.example", *values)
        res = lines[0] if lines else {}
        tap.eq((rc, res.get("outcome"), res.get("status"), res.get("error")), (0, "OK", 250, 0),
               "STARTTLS + AUTH: OK, the server's last reply 250 (%s)" % res.get("reply"))
        rec = srv.record()
        tap.eq(len(rec), 1, "one message recorded")
        m = rec[0] if rec else {}
        tap.eq((m.get("mail_from"), m.get("rcpt_tos"), m.get("auth_user"), m.get("tls")),
               (SENDER, ["ann@partner.example"], USER, True),
               "envelope: MAIL FROM the sender, one RCPT TO the guest; AUTH over TLS")
        msg = parse(m) if m else None
        tap.eq([k for k, _ in m.get("headers", [])], HEADERS, "exactly the headers of mailmsg")
        raw = base64.b64decode(m.get("data_b64", ""))
        tap.ok(b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b""),
               "CRLF line ends throughout the message")
        tap.ok(all(len(line) <= 78 for line in raw.split(b"\r\n")),
               "no line over 78 characters", max(len(line) for line in raw.split(b"\r\n")))
        tap.eq(decoded(msg["Subject"]) if msg else None, "You are invited to Contoso Ltd",
               "Subject: the template's first line, filled in (RFC 2047)")
        tap.eq(email.utils.getaddresses([decoded(msg["To"])]) if msg else None,
               [("Zoë Ångström", "ann@partner.example")],
               "To: the UTF-8 display name (encoded words) and the address")
        tap.eq(msg["From"] if msg else None, SENDER, "From: the sender")
        tap.ok(msg and msg["Message-ID"].endswith("@contoso.example>"),
               "Message-ID at the sender's domain", msg and msg["Message-ID"])
        body = msg.get_payload(decode=True).decode("utf-8") if msg else ""
        with open(TEMPLATE, encoding="utf-8") as f:
            want = f.read().split("\n", 1)[1]
        want = (want.replace("{display_name}", "Zoë Ångström")
                .replace("{inviter}", "Contoso IT").replace("{tenant}", "Contoso Ltd")
                .replace("{email}", "ann@partner.example")
                .replace("{redeem_url}",
                         "https://login.microsoftonline.com/redeem?rd=abc%3D&tenant=t1")
                .replace("{message}", "Welcome aboard!\nSee you {inviter} soon.")
                .replace("\n", "\r\n"))
        tap.eq(body, want, "the body (base64, UTF-8) is the default template filled in, "
               "the message's own {inviter} left as written, CRLF")
        tap.ok("{" not in body.replace("{inviter} soon", ""), "every placeholder of the default "
               "template was replaced")

        # -- header and envelope injection --
        n = len(srv.record())
        rc, lines = go("bob@partner.example", "--template", TEMPLATE, "--name", "Bob" + EVIL,
                       "--inviter", "IT" + EVIL, "--tenant", "Contoso" + EVIL,
                       "--message", "hi\r\n.\r\nMAIL FROM:<x@evil.example>\r\nRCPT TO:<x@evil.example>"
                       "\r\nDATA\r\nSubject: smuggled\r\n\r\nspam\r\n.\r\n",
                       "--redeem-url", "https://r.example/" + EVIL)
        rec = srv.record()[n:]
        tap.eq((rc, [r.get("outcome") for r in lines]), (0, ["OK"]),
               "values with CR LF and a dot line: sent")
        tap.eq([(r["mail_from"], r["rcpt_tos"]) for r in rec],
               [(SENDER, ["bob@partner.example"])],
               "one message, one recipient: nothing smuggled into the envelope")
        hdrs = rec[0]["headers"] if rec else []
        tap.eq([k for k, _ in hdrs], HEADERS, "no header added (no Bcc)")
        to = dict(hdrs).get("To", "")
        tap.eq(email.utils.getaddresses([to]), [("Bob  Bcc: x@evil.example", "bob@partner.example")],
               "the display name's CR LF became spaces inside the quoted name")
        subj = decoded(dict(hdrs).get("Subject", ""))
        tap.eq(subj, "You are invited to Contoso  Bcc: x@evil.example",
               "the subject stays one line")
        bmsg = parse(rec[0]) if rec else None
        btext = bmsg.get_payload(decode=True).decode("utf-8") if bmsg else ""
        tap.ok("MAIL FROM:<x@evil.example>\r\nRCPT TO" in btext and "\r\n.\r\n" in btext,
               "the would-be commands are text in the body, as written")
        rc, lines = go("carl@partner.example>\r\nRCPT TO:<x@evil.example")
        tap.ok(rc != 0 and lines and lines[0].get("rc") == -22 and len(srv.record()) == n + 1,
               "an address holding CR LF is refused before anything is sent (-EINVAL)", lines)

        # -- refusals --
        n = len(srv.record())
        rc, lines = go("ann@partner.example", pwfile=badpw)
        res = lines[0] if lines else {}
        tap.eq((res.get("outcome"), res.get("status"), res.get("code"), res.get("error")),
               ("DENIED", 535, "5.7.8", -13), "a wrong password: DENIED, 535 5.7.8 (%s)"
               % res.get("error_text"))
        rc, lines = go("ann@partner.example", user=None)
        res = lines[0] if lines else {}
        tap.eq((res.get("outcome"), res.get("status")), ("DENIED", 530),
               "no AUTH where the relay needs it: DENIED, 530 (%s)" % res.get("message"))
        rc, lines = go("later@partner.example")
        res = lines[0] if lines else {}
        tap.eq((res.get("outcome"), res.get("status"), res.get("code")),
               ("TRANSIENT", 451, "4.2.0"), "451 to DATA: TRANSIENT with its code (%s)"
               % res.get("message"))
        rc, lines = go("never@partner.example")
        res = lines[0] if lines else {}
        tap.eq((res.get("outcome"), res.get("status"), res.get("code"), res.get("message")),
               ("FAILED", 554, "5.7.236",
                "554 5.7.236 Access denied, too many external recipients (test)"),
               "554 5.7.236 to DATA: FAILED, the reason and the enhanced code kept")
        rc, lines = go("gone@partner.example")
        res = lines[0] if lines else {}
        tap.eq((res.get("outcome"), res.get("status"), res.get("code"), res.get("message")),
               ("FAILED", 550, "5.1.1", "550 5.1.1 Mailbox unavailable (test)"),
               "550 to RCPT: FAILED with the RCPT reply (not QUIT's 221)")
        rc, lines = go("ann@partner.example", ca=pki["other_ca"])
        res = lines[0] if lines else {}
        tap.ok(res.get("outcome") == "TRANSIENT" and pki["other_ca"] in (res.get("message") or ""),
               "a certificate of another CA: TRANSIENT, the message names the CA file",
               res.get("message"))
        tap.eq(len(srv.record()), n, "nothing refused was recorded")

        # -- check_only: connect, STARTTLS, AUTH; no message --
        rc, lines = go("ann@partner.example", "--check-only")
        res = lines[0] if lines else {}
        tap.eq((res.get("outcome"), res.get("status")), ("OK", 235),
               "check_only: OK after AUTH (235)")
        rc, lines = go("ann@partner.example", "--check-only", pwfile=badpw)
        res = lines[0] if lines else {}
        tap.eq((res.get("outcome"), res.get("status")), ("DENIED", 535),
               "check_only with a wrong password: DENIED")
        tap.eq(len(srv.record()), n, "check_only sent no message")

        # -- two messages on the loop, one after the other (the connection kept) --
        rc, lines = go("dora@partner.example", "--count", "2")
        tap.eq([r.get("outcome") for r in lines], ["OK", "OK"], "two messages in a row: OK")
        tap.eq(len(srv.record()), n + 2, "both recorded")
        tap.eq(srv.stop(), 0, "smtpd.py exits 0")
        servers.remove(srv)

        # -- implicit TLS --
        srv = smtpd.Server(d, base + ["--implicit-tls"], python=python)
        servers.append(srv)
        rc, lines = go("ann@partner.example", url="smtps://127.0.0.1:%d" % srv.port)
        rec = srv.record()
        tap.ok([r.get("outcome") for r in lines] == ["OK"] and len(rec) == 1 and rec[0]["tls"]
               and rec[0]["auth_user"] == USER and rec[0]["rcpt_tos"] == ["ann@partner.example"],
               "smtps://: TLS from the start, AUTH, delivered", lines)
        tap.eq(srv.stop(), 0, "exits 0")
        servers.remove(srv)

        # -- a server without STARTTLS: nothing past EHLO --
        plain = PlainServer()
        rc, lines = go("ann@partner.example", url="smtp://127.0.0.1:%d" % plain.port)
        plain.stop()
        res = lines[0] if lines else {}
        tap.eq((res.get("outcome"), res.get("code")), ("TRANSIENT", "TLSRequired"),
               "no STARTTLS offered: refused (%s)" % res.get("message"))
        verbs = [c.split(" ")[0].upper() for c in plain.commands]
        tap.ok(verbs and verbs[0] == "EHLO" and not {"AUTH", "MAIL", "RCPT", "DATA"} & set(verbs),
               "it got EHLO and no AUTH, MAIL, RCPT or DATA", plain.commands)

        # -- a relay slow to accept a message does not stall the loop --
        slow = SlowServer(pki, 1.5)
        rc, lines = go("ann@partner.example", "--probe", url="smtp://127.0.0.1:%d" % slow.port)
        slow.stop()
        res = lines[0] if lines else {}
        tap.eq((res.get("outcome"), res.get("status"), slow.messages), ("OK", 250, 1),
               "a relay that takes 1.5 s to accept the message: delivered")
        tap.ok(res.get("max_stall_ms", 10**6) < 500,
               "meanwhile the loop never stalled (longest gap between 5 ms ticks: %s ms)"
               % res.get("max_stall_ms"))

        # -- libcurl's SMTP waits blocking (for the answer to the end of the
        # message, and for QUIT's as it closes): http.c runs it on a worker
        # thread, and gives up on a QUIT a second after the answer that
        # mattered (on_progress), so a relay slow to answer QUIT holds
        # neither the loop nor the outcome for long --
        slow = SlowServer(pki, 0, quit_delay=4, refuse_rcpt=True)
        rc, lines = go("ann@partner.example", "--probe", url="smtp://127.0.0.1:%d" % slow.port)
        slow.stop()
        res = lines[0] if lines else {}
        tap.eq((res.get("outcome"), res.get("code")), ("FAILED", "5.1.1"),
               "a refused recipient at a relay slow to answer QUIT: FAILED")
        tap.ok(res.get("max_stall_ms", 10**6) < 500,
               "the loop did not stall meanwhile (%s ms; the relay takes 4 s to answer QUIT)"
               % res.get("max_stall_ms"))
        slow = SlowServer(pki, 0, quit_delay=4)
        t1 = time.monotonic()
        rc, lines = go("ann@partner.example", url="smtp://127.0.0.1:%d" % slow.port)
        took = time.monotonic() - t1
        slow.stop()
        tap.ok([r.get("outcome") for r in lines] == ["OK"] and took < 2.5,
               "accepted: OK, and curl's QUIT after it given up within about a second "
               "(%.2f s in all, the relay takes 4 s to answer QUIT)" % took)

        # -- http_destroy while a transfer runs on its worker thread --
        slow = SlowServer(pki, 4)
        t1 = time.monotonic()
        rc, lines = go("ann@partner.example", "--destroy-after-ms", "300",
                       url="smtp://127.0.0.1:%d" % slow.port)
        took = time.monotonic() - t1
        slow.stop()
        res = lines[0] if lines else {}
        tap.eq((rc, res.get("error"), len(lines)), (0, -125, 1),
               "http_destroy during a transfer: its callback once, -ECANCELED")
        tap.ok(took < 3, "and the worker gave up within two seconds (%.2f s in all, the "
               "relay takes 4 s)" % took)

        # -- nobody listening --
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        rc, lines = go("ann@partner.example", url="smtp://127.0.0.1:%d" % port)
        res = lines[0] if lines else {}
        tap.eq((res.get("outcome"), res.get("code"), res.get("status")),
               ("TRANSIENT", "ConnectionRefused", 0), "connection refused: TRANSIENT")

        tap.ok(all(PASSWORD not in o and base64.b64encode(PASSWORD.encode()).decode() not in o
                   for o in outputs),
               "the password is in no output (%d runs)" % len(outputs))
        found = [o for o in outputs if SANITIZER_REPORT.search(o)]
        tap.ok(not found, "no sanitizer report from smtp-send", "\n".join(found)[:4000])
        tap.diag("elapsed %.2f s" % (time.monotonic() - t0))
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run(main)
