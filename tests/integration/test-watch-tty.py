#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`invitectl watch` as a person sees it: in a real terminal (a detached tmux
pane of 80 columns), a 5,000-row job sent at 200 invitations/s shows one bar
line that advances in place and ends with the final bar and the summary; the
cursor is hidden while drawing and shown again; Ctrl-C erases the line and
restores the cursor. Meanwhile a second `watch` with stderr on a pipe prints
plain lines, at most one a second. Skips (77) without tmux."""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

from harness import INVITECTL, Env, deadline_wait, portal_file, run

ROWS = 5000
RATE = 200
COLS = 80
BAR = re.compile(r"^\[[#>.]+\]\s+(\d+)%\s+([\d,]+)/([\d,]+)\s+([\d,]+) succeeded\s+([\d,]+) failed"
                 r"\s+(\S+/s)\s+(ETA \S+|\S+)\s*$")


class Pane:
    """One detached tmux session on a private server socket."""

    def __init__(self, env, name, command):
        self.sock = os.path.join(env.dir, "tmux-%s.sock" % name)
        conf = os.path.join(env.dir, "tmux.conf")
        with open(conf, "w") as f:
            f.write("set -g remain-on-exit on\nset -g status off\nset -g history-limit 100\n")
        self.name = name
        self.tmux("-f", conf, "new-session", "-d", "-s", name, "-x", str(COLS), "-y", "24",
                  command)

    def tmux(self, *args):
        env = dict(os.environ)
        env.pop("TMUX", None)
        env["TERM"] = "xterm-256color"
        p = subprocess.run(["tmux", "-S", self.sock] + list(args), capture_output=True,
                           timeout=20, env=env)
        if p.returncode != 0:
            raise RuntimeError("tmux %s: exit %d: %s" % (args[0], p.returncode,
                                                        p.stderr.decode().strip()))
        return p.stdout.decode()

    def capture(self):
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def fmt(self, f):
        return self.tmux("display-message", "-p", "-t", self.name, f).strip()

    def exit_status(self):
        """The status the wrapper shell printed once the command ended, or None."""
        m = re.search(r"^exit status (\d+)$", self.capture(), re.M)
        return m and m.group(1)

    def kill(self):
        try:
            self.tmux("kill-server")
        except Exception:
            pass


def bar_lines(screen):
    return [l for l in screen.splitlines() if l.startswith("[")]


def num(s):
    return int(s.replace(",", ""))


def shell_command(env, *args, extra_env=""):
    """invitectl in a shell that outlives it, as a person's would: Ctrl-C
    reaches invitectl (a trap with a command is not inherited as "ignored"),
    the shell then prints the exit status and waits, so the pane still shows
    the terminal as invitectl left it (cursor included)."""
    cmd = ("env -u NO_COLOR LANG=C.UTF-8 %s %s -s %s %s" %
           (extra_env, shlex.quote(INVITECTL), shlex.quote(env.sock),
            " ".join(shlex.quote(a) for a in args)))
    return "sh -c %s" % shlex.quote("trap : INT; %s; echo \"exit status $?\"; read x" % cmd)


def main(tap):
    if not shutil.which("tmux"):
        print("1..0 # SKIP tmux is not installed")
        sys.exit(77)
    with Env(queue={"rate": str(RATE), "burst": "10"}) as env:
        rows = [["watch%05d@partner.example" % i, "", "false", ""] for i in range(ROWS)]
        path = env.write("guests.csv", portal_file(rows))
        p, job = env.ctl_json("submit", path, "--name", "tmux watch")
        tap.eq(p.returncode, 0, "submit %d rows" % ROWS)
        jid = str(job["id"])

        # the plain view, stderr on a pipe, with the time each line came
        piped = subprocess.Popen([INVITECTL, "-s", env.sock, "watch", jid],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        pane = Pane(env, "watch", shell_command(env, "watch", jid))
        try:
            # 1. while the job runs: one bar, advancing
            first = deadline_wait(lambda: (lambda b: b and 0 < num(BAR.match(b[-1]).group(2)) < ROWS
                                           and (pane.capture(), b[-1]))(
                [l for l in bar_lines(pane.capture()) if BAR.match(l)]), 30,
                "a bar with 0 < done < %d" % ROWS, step=0.2)
            screen1, line1 = first
            done1 = num(BAR.match(line1).group(2))
            tap.diag("capture 1 (while running):\n" + screen1.rstrip())
            tap.ok(True, "a bar shows while the job runs: %s" % line1.strip())
            tap.eq(len(bar_lines(screen1)), 1, "exactly one progress line: redrawn in place")
            tap.ok(all(len(l) <= COLS for l in screen1.splitlines()), "no line wider than 80")
            tap.eq(num(BAR.match(line1).group(3)), ROWS, "the bar says done/%d" % ROWS)
            tap.eq(pane.fmt("#{cursor_flag}"), "0", "the cursor is hidden while drawing")

            # later: more done, and a rate measured over at least a second
            second = deadline_wait(lambda: (lambda b: b and BAR.match(b[-1]) and
                                            done1 < num(BAR.match(b[-1]).group(2)) < ROWS and
                                            BAR.match(b[-1]).group(6) != "-/s" and
                                            (pane.capture(), b[-1]))(bar_lines(pane.capture())),
                                   30, "the bar to advance", step=0.2)
            screen2, line2 = second
            tap.diag("capture 2 (later):\n" + screen2.rstrip())
            m2 = BAR.match(line2)
            tap.ok(num(m2.group(2)) > done1, "the bar advanced: %d -> %d done" %
                   (done1, num(m2.group(2))))
            tap.eq(len(bar_lines(screen2)), 1, "still one progress line")
            rate = m2.group(6)
            tap.ok(rate != "-/s" and 100 <= float(rate[:-2]) <= 300,
                   "the rate is about %d/s: %s" % (RATE, rate))
            tap.ok(re.match(r"ETA \d+:\d\d$", m2.group(7)) is not None,
                   "an ETA while running: %s" % m2.group(7))

            # 2. at the end: the final bar and the summary
            status = deadline_wait(pane.exit_status, 120, "watch to exit", step=0.2)
            final = pane.capture()
            tap.diag("capture 3 (after the end):\n" + final.rstrip())
            bars = bar_lines(final)
            tap.eq(len(bars), 1, "one bar line left on the screen")
            fm = BAR.match(bars[0]) if bars else None
            tap.ok(fm and fm.group(1) == "100" and fm.group(2) == "5,000" and
                   fm.group(4) == "5,000", "the last bar: 100%, 5,000/5,000, 5,000 succeeded",
                   bars)
            summary = "Job %s completed: %d succeeded, 0 failed, 0 cancelled of %d" % (
                jid, ROWS, ROWS)
            tap.ok(summary in final, "the summary line: " + summary, final)
            tap.eq(status, "0", "watch exits 0 (SPEC §3)")
            tap.eq(pane.fmt("#{cursor_flag}"), "1", "the cursor is shown again")
        finally:
            pane.kill()

        # the plain view: one line per change, at most one a second
        out, err = piped.communicate(timeout=60)
        lines = err.decode().splitlines()
        progress = [l for l in lines if re.match(r"Job %s \S+: \d+/%d done" % (jid, ROWS), l)]
        tap.eq(piped.returncode, 0, "piped watch exits 0")
        tap.ok(not any("\r" in l or "\033" in l for l in lines),
               "piped watch writes no escapes or carriage returns")
        tap.ok(len(progress) >= 3, "piped watch prints progress lines (%d)" % len(progress))
        elapsed = ROWS / RATE
        tap.ok(len(progress) <= elapsed + 5,
               "at most about one line a second: %d lines in ~%ds" % (len(progress), elapsed))
        tap.ok(progress and progress[-1].startswith("Job %s completed: %d/%d done" %
                                                     (jid, ROWS, ROWS)),
               "the last progress line is the end", progress[-3:])
        tap.ok(lines and lines[-1].startswith("Job %s completed:" % jid),
               "piped watch ends with the summary", lines[-2:])

        # 3. Ctrl-C while drawing: the line is erased and the cursor restored
        p, small = env.ctl_json("submit", env.write("small.csv", portal_file(
            [["pause%d@partner.example" % i, "", "false", ""] for i in range(50)])))
        sid = str(small["id"])
        env.ctl("pause", sid)
        pane = Pane(env, "ctrlc", shell_command(env, "watch", sid))
        try:
            deadline_wait(lambda: [l for l in bar_lines(pane.capture()) if "paused" in l], 20,
                          "the bar of the paused job", step=0.1)
            tap.ok(True, "a paused job's bar says paused")
            pane.tmux("send-keys", "-t", "ctrlc", "C-c")
            status = deadline_wait(pane.exit_status, 20, "watch to die of Ctrl-C", step=0.1)
            screen = pane.capture()
            tap.diag("after Ctrl-C:\n" + screen.rstrip())
            tap.eq(bar_lines(screen), [], "Ctrl-C erased the progress line")
            tap.eq(pane.fmt("#{cursor_flag}"), "1", "Ctrl-C restored the cursor")
            tap.eq(status, str(128 + int(signal.SIGINT)),
                   "watch died of SIGINT (status 130), as a shell expects")
        finally:
            pane.kill()
        env.ctl("cancel", sid)

        # 4. colour: on a terminal, never with NO_COLOR, never on a pipe
        pane = Pane(env, "color", shell_command(env, "jobs", "--all"))
        try:
            deadline_wait(pane.exit_status, 20, "jobs to exit", step=0.1)
            colored = pane.tmux("capture-pane", "-p", "-e", "-t", "color")
        finally:
            pane.kill()
        tap.ok("\033[" in colored, "jobs colours states on a terminal", colored)
        pane = Pane(env, "nocolor", shell_command(env, "jobs", "--all", extra_env="NO_COLOR=1"))
        try:
            deadline_wait(pane.exit_status, 20, "jobs to exit", step=0.1)
            plain = pane.tmux("capture-pane", "-p", "-e", "-t", "nocolor")
        finally:
            pane.kill()
        tap.ok("\033[" not in plain and "completed" in plain,
               "NO_COLOR: no colour even on a terminal", plain)
        p = subprocess.run([INVITECTL, "-s", env.sock, "jobs", "--all"], capture_output=True,
                           env={k: v for k, v in os.environ.items() if k != "NO_COLOR"},
                           timeout=20)
        tap.ok(b"\033" not in p.stdout and b"completed" in p.stdout, "no colour on a pipe")


if __name__ == "__main__":
    run(main)
