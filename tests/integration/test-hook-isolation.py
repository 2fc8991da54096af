#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SPEC §9: the on_complete command can read neither the app credential nor
the daemon's descriptors. A command (a script this test writes) tries to read
the client secret file, the file in $CREDENTIALS_DIRECTORY and the database,
and to write to every descriptor 3..1023 it might have inherited; its report
shows that all of it fails. Twice: invited as root (the command runs as
hook_user, nobody) and invited as an unprivileged user (the command has
invited's own uid: Landlock must hide the files)."""
import json
import os
import pwd
import shutil
import subprocess
import tempfile

from harness import INVITED, SLOW, Env, deadline_wait, portal_file, run, skip_all

SCRIPT = r"""#!/usr/bin/python3 -I
import json, os, sys
report, paths = sys.argv[1], sys.argv[2:]
out = {"uid": os.getuid(), "euid": os.geteuid(), "read": {}, "fds": {}}
for p in paths:
    try:
        with open(p, "rb") as f:
            out["read"][p] = "READ %d bytes" % len(f.read())
    except OSError as e:
        out["read"][p] = "%s: %s" % (type(e).__name__, e.strerror)
for fd in range(3, 1024):
    try:
        what = os.readlink("/proc/self/fd/%d" % fd)
    except OSError:
        continue
    try:
        os.write(fd, b"x")
        out["fds"][fd] = "WRITTEN " + what
    except OSError as e:
        out["fds"][fd] = "%s (%s)" % (what, e.strerror)
out["env"] = {k: v for k, v in os.environ.items()}
tmp = report + ".tmp"
with open(tmp, "w") as f:
    json.dump(out, f)
os.rename(tmp, report)
"""

NOBODY = None


class UserEnv(Env):
    """The daemon run as an unprivileged user (setpriv)."""
    uid = gid = None

    def daemon_prefix(self):
        return ["setpriv", "--reuid", str(self.uid), "--regid", str(self.gid), "--clear-groups"]


def scenario(tap, label, as_user):
    work = tempfile.mkdtemp(prefix="invited-hook.")
    try:
        os.chmod(work, 0o755)
        script = os.path.join(work, "on-complete.py")
        with open(script, "w") as f:
            f.write(SCRIPT)
        os.chmod(script, 0o755)
        reports = os.path.join(work, "reports")
        os.mkdir(reports)
        os.chown(reports, NOBODY.pw_uid, NOBODY.pw_gid)
        cls = UserEnv if as_user else Env
        cls.uid, cls.gid = NOBODY.pw_uid, NOBODY.pw_gid
        with cls(start=False) as env:
            creds = os.path.join(env.dir, "credentials")
            os.mkdir(creds, 0o700)
            creds_file = os.path.join(creds, "client-secret")
            with open(creds_file, "w") as f:
                f.write("sim-secret-value\n")
            os.chmod(creds_file, 0o400)
            if as_user:
                # everything of the daemon's belongs to its user, as under systemd
                os.chmod(env.dir, 0o755)
                for p in (env.dir, creds, creds_file, env.secret_path):
                    os.chown(p, NOBODY.pw_uid, NOBODY.pw_gid)
            env.daemon_env = {"CREDENTIALS_DIRECTORY": creds}
            report = os.path.join(reports, "report.json")
            env.daemon_extra["on_complete"] = "%s %s %s %s %s" % (
                script, report, env.secret_path, creds_file, env.db_path)
            env.write_config()
            if not as_user:
                p = subprocess.run([INVITED, "--check-config", "-c", env.conf],
                                   capture_output=True, text=True, timeout=30,
                                   env=dict(os.environ, CREDENTIALS_DIRECTORY=creds))
                tap.ok(p.returncode == 0 and "# on_complete runs as user nobody" in p.stdout,
                       "%s: --check-config says whom the command runs as" % label,
                       p.stdout + p.stderr)
            env.start_daemon()
            rows = [["iso%02d@partner.example" % i, "", "false", ""] for i in range(5)]
            p = env.ctl("submit", "--name", "isolation", "--wait",
                        env.write("guests.csv", portal_file(rows)))
            tap.eq(p.returncode, 0, "%s: the job completes" % label)
            # there was something to inherit: the daemon holds sockets
            try:
                # a descriptor the daemon closes while we look (a connection
                # ending) is no leak: skipped, not an error
                socks, leaky = [], []
                for fd in os.listdir("/proc/%d/fd" % env.daemon.pid):
                    try:
                        if not os.readlink("/proc/%d/fd/%s" % (env.daemon.pid, fd)) \
                                .startswith("socket:"):
                            continue
                        with open("/proc/%d/fdinfo/%s" % (env.daemon.pid, fd)) as f:
                            flags = [l for l in f if l.startswith("flags:")][0].split()[1]
                    except FileNotFoundError:
                        continue
                    socks.append(fd)
                    if not int(flags, 8) & 0o2000000:
                        leaky.append(fd)
                tap.ok(len(socks) >= 2, "%s: the daemon holds %d sockets" % (label, len(socks)))
                tap.eq(leaky, [], "%s: every one of them is close-on-exec (curl's too)" % label)
            except OSError as e:
                tap.ok(False, "%s: the daemon's descriptors are readable" % label, str(e))
            try:
                deadline_wait(lambda: os.path.exists(report), 30 * SLOW, "the command's report")
            except TimeoutError:
                tap.ok(False, "%s: the command ran" % label, env.log())
                return
            with open(report) as f:
                r = json.load(f)
            tap.diag("%s: report %s" % (label, json.dumps(
                {k: v for k, v in r.items() if k != "env"})))
            tap.eq((r["uid"], r["euid"]), (NOBODY.pw_uid, NOBODY.pw_uid),
                   "%s: the command runs as nobody" % label)
            for path, what in ((env.secret_path, "the client secret file"),
                               (creds_file, "the $CREDENTIALS_DIRECTORY file"),
                               (env.db_path, "the database")):
                got = r["read"].get(path, "")
                tap.ok(got.startswith("PermissionError"),
                       "%s: the command cannot read %s (%s)" % (label, what, got))
            tap.eq(r["fds"], {}, "%s: it inherited no descriptor 3..1023 (so writes to "
                   "each fail)" % label)
            tap.eq(r["env"].get("INVITED_JOB_NAME"), "isolation", "%s: the job's name" % label)
            tap.ok("CREDENTIALS_DIRECTORY" not in r["env"],
                   "%s: no CREDENTIALS_DIRECTORY in its environment" % label)
            rc = env.stop_daemon()
            tap.eq(rc, 0, "%s: invited stops cleanly" % label)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(tap):
    global NOBODY
    if os.geteuid() != 0:
        skip_all("needs root: the command's user and the daemon's user are switched")
    NOBODY = pwd.getpwnam("nobody")
    scenario(tap, "invited as root", False)
    scenario(tap, "invited as nobody", True)


if __name__ == "__main__":
    run(main)
