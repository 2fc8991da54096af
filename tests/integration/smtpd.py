# SPDX-License-Identifier: MIT
"""A small SMTP server for the tests (issue 13), on 127.0.0.1, built on
Debian's python3-aiosmtpd. It offers STARTTLS with the certificate the test
made (harness.make_pki) and requires it before AUTH and before any mail
(--implicit-tls: TLS from the first byte, smtps, instead); AUTH PLAIN and
LOGIN with one user and password; every message needs AUTH. --reply makes
RCPT or DATA answer a given 4xx or 5xx for an address. Each message is
appended to --record as one JSON line:

  {"t_ms": ms, "mail_from": str, "rcpt_tos": [str], "auth_user": str,
   "tls": bool, "data": str (UTF-8, undecodable bytes replaced),
   "data_b64": str (the exact bytes), "headers": [[name, value], ...]}

It prints its port on a line of its own to stdout once listening (and to
--port-file), and exits 0 on SIGTERM or SIGINT. Run it as a subprocess:

  smtpd.py --cert server.pem --key server.key --user u --password-file pw
           --record mail.jsonl [--implicit-tls] [--reply rcpt:a@b.example=450]
           [--reply data:c@d.example=554]

The interpreter must have aiosmtpd: interpreter() below finds one.
"""
import argparse
import asyncio
import base64
import email.parser
import email.policy
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import warnings


def interpreter():
    """A python3 that can import aiosmtpd (this one, else Debian's), or
    None: the tests skip then."""
    for exe in (sys.executable, "/usr/bin/python3"):
        if exe and os.path.exists(exe):
            p = subprocess.run([exe, "-c", "import aiosmtpd"], capture_output=True, timeout=30)
            if p.returncode == 0:
                return exe
    return None


class Server:
    """The server as a subprocess of a test: start, port, record, stop."""

    started = 0

    def __init__(self, directory, args, python=None):
        Server.started += 1  # each server its own record, port file and log
        n = Server.started
        self.record_path = os.path.join(directory, "smtp-record-%d.jsonl" % n)
        self.port_file = os.path.join(directory, "smtp-%d.port" % n)
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log = open(os.path.join(directory, "smtpd-%d.log" % n), "ab")
        self.proc = subprocess.Popen(
            [python or interpreter(), os.path.abspath(__file__), "--record", self.record_path,
             "--port-file", self.port_file] + list(args),
            stdout=subprocess.PIPE, stderr=self.log)
        # the port file appears once it listens: wait for it with a deadline
        end = time.monotonic() + 30
        while not (os.path.exists(self.port_file) or self.proc.poll() is not None):
            if time.monotonic() > end:
                self.proc.kill()
                self.proc.wait(10)
                raise TimeoutError("smtpd.py did not listen within 30 s: see " + self.log.name)
            time.sleep(0.02)
        if self.proc.poll() is not None:
            raise RuntimeError("smtpd.py did not start (exit %s): see %s"
                               % (self.proc.returncode, self.log.name))
        with open(self.port_file) as f:
            self.port = int(f.read())
        line = self.proc.stdout.readline()  # printed before the port file was renamed
        assert int(line) == self.port

    def record(self):
        if not os.path.exists(self.record_path):
            return []
        with open(self.record_path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self):
        self.proc.terminate()
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(10)
        self.proc.stdout.close()
        self.log.close()
        return rc


def parse_args(argv):
    ap = argparse.ArgumentParser(description="SMTP server for invited's tests")
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--cert", help="PEM certificate (chain) for STARTTLS or implicit TLS")
    ap.add_argument("--key", help="its PEM private key")
    ap.add_argument("--implicit-tls", action="store_true", help="TLS from the start (smtps)")
    ap.add_argument("--user", required=True)
    pw = ap.add_mutually_exclusive_group(required=True)
    pw.add_argument("--password")
    pw.add_argument("--password-file")
    ap.add_argument("--record", required=True, help="append one JSON line per message")
    ap.add_argument("--reply", action="append", default=[],
                    metavar="rcpt|data:ADDRESS=CODE[ TEXT]",
                    help="answer CODE (4xx or 5xx) to RCPT TO, or to DATA, for ADDRESS")
    a = ap.parse_args(argv)
    if a.listen not in ("127.0.0.1", "::1", "localhost"):
        ap.error("--listen must be a loopback address")
    if not a.cert or not a.key:
        ap.error("--cert and --key are required: AUTH is only offered over TLS")
    if a.password_file:
        with open(a.password_file, encoding="utf-8") as f:
            a.password = f.read().rstrip("\r\n")
    a.replies = {"rcpt": {}, "data": {}}
    for spec in a.reply:
        try:
            stage, rest = spec.split(":", 1)
            address, answer = rest.rsplit("=", 1)
            code = int(answer.split(" ", 1)[0])
        except ValueError:
            ap.error("--reply %r: want rcpt:ADDRESS=CODE or data:ADDRESS=CODE" % spec)
        if stage not in a.replies or not 400 <= code <= 599:
            ap.error("--reply %r: stage rcpt or data, code 4xx or 5xx" % spec)
        text = answer.split(" ", 1)[1] if " " in answer else (
            "%d.2.0 Mailbox busy, try again later (test)" % (code // 100) if code < 500 else
            "%d.1.1 Mailbox unavailable (test)" % (code // 100))
        a.replies[stage][address.lower()] = "%d %s" % (code, text)
    return a


class Handler:
    def __init__(self, args):
        self.args = args
        self.record = open(args.record, "ab", buffering=0)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.args.replies["rcpt"].get(address.lower())
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            answer = self.args.replies["data"].get(rcpt.lower())
            if answer:
                return answer
        login = getattr(session.auth_data, "login", None)
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
        line = {
            "t_ms": int(time.time() * 1000),
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_user": login.decode("utf-8", "replace") if isinstance(login, bytes) else None,
            # STARTTLS sets session.ssl; implicit TLS shows on the transport
            "tls": session.ssl is not None or
            server.transport.get_extra_info("ssl_object") is not None,
            "data": raw.decode("utf-8", "replace"),
            "data_b64": base64.b64encode(raw).decode(),
            "headers": [[k, str(v)] for k, v in headers.items()],
        }
        # one write of a whole line on an O_APPEND file, before the 250
        self.record.write((json.dumps(line) + "\n").encode())
        return "250 OK: queued"


def main(argv):
    args = parse_args(argv)
    # implicit TLS: aiosmtpd warns that AUTH does not require STARTTLS there
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    handler = Handler(args)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and mechanism in ("PLAIN", "LOGIN") and
              auth_data.login == args.user.encode() and
              auth_data.password == args.password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def factory():
        if args.implicit_tls:  # the connection is TLS already: AUTH is allowed
            return SMTP(handler, hostname="smtpd.test", auth_required=True,
                        auth_require_tls=False, authenticator=authenticator)
        return SMTP(handler, hostname="smtpd.test", tls_context=ctx, require_starttls=True,
                    auth_required=True, auth_require_tls=True, authenticator=authenticator)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(
        factory, host=args.listen, port=args.port, ssl=ctx if args.implicit_tls else None))
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)  # first the line, then the port file (Server relies on it)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()
    handler.record.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
