#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The configuration contract as a new admin meets it (SPEC §4, §9; issue 10
items 9, 10, 12): https only except loopback, refused with file, line and
reason (78) at --check-config and at start; the default path is absolute and
a missing default file is named; start-up errors carry the journal's <N>
prefix; an on_complete that cannot run is refused; rate's words and the
warning above Graph's 30/s; the daemon's files are 0600 whatever the umask."""
import os
import stat
import subprocess

from harness import INVITED, Env, deadline_wait, portal_file, run


def invited(*args, env_extra=None):
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    env.update(env_extra or {})
    try:
        return subprocess.run([INVITED] + list(args), capture_output=True, text=True,
                              timeout=10, env=env)
    except subprocess.TimeoutExpired as e:  # it started instead of refusing
        return subprocess.CompletedProcess(e.cmd, None, "", (e.stderr or b"").decode())


def conf_with(env, name, replace=None, add_daemon="", add_queue=""):
    with open(env.conf) as f:
        text = f.read()
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    text = text.replace("[daemon]\n", "[daemon]\n" + add_daemon, 1)
    text = text.replace("[queue]\n", "[queue]\n" + add_queue, 1)
    path = os.path.join(env.dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path, text


def line_of(text, needle):
    return text[:text.index(needle)].count("\n") + 1


def main(tap):
    with Env(start=False) as env:
        # -- https only, except loopback --
        for url in ("http://graph.microsoft.com", "HTTP://127.example.com:8080"):
            path, text = conf_with(env, "http.conf",
                                   {"graph_url = " + env.base: "graph_url = " + url})
            want = "%s:%d: graph_url: '%s' is not https" % (path, line_of(text, "graph_url"), url)
            p = invited("--check-config", "-c", path)
            tap.ok(p.returncode == 78 and want in p.stderr,
                   "--check-config refuses graph_url = %s (78, file:line)" % url, p.stderr)
            p = invited("-c", path)
            tap.ok(p.returncode == 78 and want in p.stderr,
                   "start refuses it too (78): %s" % p.stderr.strip()[-160:], p.stderr)
        path, _ = conf_with(env, "lo.conf", {"authority_url = " + env.base:
                                             "authority_url = http://localhost:1"})
        p = invited("--check-config", "-c", path)
        tap.eq(p.returncode, 0, "http://localhost is allowed (loopback)")

        # -- the default path, and a missing default file --
        p = invited("--help")
        default = [l for l in p.stdout.splitlines() if "default" in l][0]
        path = default.split("default ")[1].rstrip(")")
        tap.ok(path.startswith("/") and path.endswith("/invited/invited.conf"),
               "the default configuration path is absolute: %s" % path)
        if not os.path.exists(path):
            p = invited("--check-config")
            tap.ok(p.returncode == 78 and "cannot read '%s': No such file or directory" % path
                   in p.stderr, "a missing default file is named (78): %s" % p.stderr.strip(),
                   p.stderr)
            # -- under the journal, start-up errors carry the <N> prefix --
            p = invited(env_extra={"JOURNAL_STREAM": "8:1234"})
            tap.ok(p.returncode == 78 and p.stderr.startswith("<3>cannot read '%s'" % path),
                   "under the journal the error is a <3> line: %r" % p.stderr[:80], p.stderr)
        else:
            tap.ok(True, "# SKIP %s exists here" % path)
            tap.ok(True, "# SKIP %s exists here" % path)
        path, _ = conf_with(env, "bad-j.conf", {"rate = 2000": "rate = fast"})
        p = invited("-c", path, env_extra={"JOURNAL_STREAM": "8:1234"})
        tap.ok(p.returncode == 78 and p.stderr.startswith("<3>" + path + ":"),
               "a bad line under the journal: <3>FILE:LINE: %r" % p.stderr[:90], p.stderr)

        # -- on_complete that cannot run --
        path, text = conf_with(env, "hook.conf", add_daemon="on_complete = /nonexistent/notify\n")
        p = invited("--check-config", "-c", path)
        tap.ok(p.returncode == 78 and "%s:%d: on_complete: '/nonexistent/notify': No such file"
               % (path, line_of(text, "on_complete")) in p.stderr,
               "--check-config refuses an on_complete that does not exist", p.stderr)
        script = env.write("not-exec.sh", b"#!/bin/sh\n")
        os.chmod(script, 0o644)
        path, _ = conf_with(env, "hook2.conf", add_daemon="on_complete = %s\n" % script)
        p = invited("--check-config", "-c", path)
        tap.ok(p.returncode == 78 and "is not executable" in p.stderr,
               "and one that is not executable", p.stderr)

        # -- rate: its words, and the warning above 30/s --
        path, _ = conf_with(env, "rate0.conf", {"rate = 2000": "rate = 0"})
        p = invited("--check-config", "-c", path)
        tap.ok(p.returncode == 78 and "rate: '0' must be more than 0 and at most 100000"
               in p.stderr, "rate = 0: %s" % p.stderr.strip(), p.stderr)
        path, _ = conf_with(env, "rate40.conf", {"rate = 2000": "rate = 40"})
        p = invited("--check-config", "-c", path)
        tap.ok(p.returncode == 0 and "warning: [queue] rate = 40 is above" in p.stderr and
               "150 invitations per 5 s" in p.stderr,
               "rate = 40 warns at --check-config: %s" % p.stderr.strip(), p.stderr)

        # -- the daemon's files are 0600 whatever the umask --
        for mask in (0o022, 0):
            path, _ = conf_with(env, "run.conf", {"rate = 2000": "rate = 40"})
            for f in os.listdir(env.dir):
                if f.startswith("invited.db"):
                    os.unlink(os.path.join(env.dir, f))
            log = open(os.path.join(env.dir, "invited.log"), "ab")
            d = subprocess.Popen([INVITED, "-c", path], stdout=log, stderr=log,
                                 preexec_fn=lambda m=mask: os.umask(m))
            try:
                deadline_wait(lambda: os.path.exists(env.sock) and env.ctl("status").returncode == 0,
                              10, "the daemon")
                p = env.ctl("submit", "--wait", env.write("g.csv", portal_file(
                    [["u%d@partner.example" % mask, "", "false", ""]])))
                tap.eq(p.returncode, 0, "umask %04o: a job completes" % mask)
                modes = {}
                for suffix in ("", "-wal", "-shm", "-results"):
                    fp = env.db_path + suffix
                    modes[suffix or "db"] = (oct(stat.S_IMODE(os.stat(fp).st_mode))
                                             if os.path.exists(fp) else "missing")
                tap.eq(modes, {"db": "0o600", "-wal": "0o600", "-shm": "0o600",
                               "-results": "0o600"},
                       "umask %04o: database, WAL, shm and result journal are 0600" % mask)
            finally:
                d.terminate()
                d.wait(30)
                log.close()
        tap.ok("rate = 40 is above what Graph allows" in env.log(),
               "and the start-up log warns about rate = 40")


if __name__ == "__main__":
    run(main)
