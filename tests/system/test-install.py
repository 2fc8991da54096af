#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`meson install` into a DESTDIR puts every file where Debian expects it:
binaries, units, sysusers.d, tmpfiles.d, man pages, bash completion and the example
configuration (under the doc directory: /etc is the admin's). The installed
unit runs the installed binary and passes systemd-analyze verify."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import run, skip_all  # noqa: E402

BUILD = os.environ.get("MESON_BUILD_DIR", "build")


def main(tap):
    meson = shutil.which("meson")
    if not meson:
        skip_all("meson is not installed")
    opts = json.loads(subprocess.run([meson, "introspect", "--buildoptions", BUILD],
                                     capture_output=True, text=True, timeout=60, check=True).stdout)
    opt = {o["name"]: o["value"] for o in opts}
    prefix, sbindir, bindir, datadir = opt["prefix"], opt["sbindir"], opt["bindir"], opt["datadir"]
    dest = tempfile.mkdtemp(prefix="invited-destdir.")
    try:
        p = subprocess.run([meson, "install", "-C", BUILD, "--destdir", dest, "--no-rebuild",
                            "--quiet"], capture_output=True, text=True, timeout=120)
        tap.eq(p.returncode, 0, "meson install --destdir")
        files = sorted(os.path.relpath(os.path.join(d, f), dest)
                       for d, _, fs in os.walk(dest) for f in fs)
        tap.diag("installed:\n  " + "\n  ".join(files))

        def has(pattern, desc):
            hits = [f for f in files if re.fullmatch(pattern, "/" + f)]
            tap.ok(hits, "%s: %s" % (desc, hits[0] if hits else pattern))
            return hits[0] if hits else None

        daemon = has(re.escape(os.path.join(prefix, sbindir, "invited")), "the daemon in sbin")
        has(re.escape(os.path.join(prefix, bindir, "invitectl")), "the client in bin")
        unit = has(r".*/systemd/system/invited\.service", "the service unit")
        has(r".*/systemd/system/invited\.socket", "the socket unit")
        has(r".*/sysusers\.d/invited\.conf", "sysusers.d")
        has(r".*/tmpfiles\.d/invited\.conf", "tmpfiles.d")
        has(r".*/bash-completion/completions/invitectl", "bash completion")
        example = has(re.escape(os.path.join(prefix, datadir, "doc", "invited",
                                             "invited.conf.example")),
                      "example configuration under the doc directory")
        if shutil.which("scdoc"):
            for page in ("man1/invitectl.1", "man8/invited.8", "man5/invited.conf.5"):
                has(r".*/man/" + re.escape(page), "man page " + page.split("/")[1])
        tap.ok(not any(f.startswith("etc/") for f in files), "nothing installed into /etc")
        if daemon:
            mode = os.stat(os.path.join(dest, daemon)).st_mode
            tap.ok(mode & 0o111, "the daemon is executable")
        if unit:
            with open(os.path.join(dest, unit)) as f:
                text = f.read()
            m = re.search(r"^ExecStart=(\S+)", text, re.M)
            tap.eq(m and m.group(1), os.path.join(prefix, sbindir, "invited"),
                   "ExecStart= runs the installed daemon")
            analyze = shutil.which("systemd-analyze")
            if analyze and m:
                tmp = os.path.join(dest, "verify")
                os.mkdir(tmp)
                with open(os.path.join(tmp, "invited.service"), "w") as f:
                    f.write(text.replace("ExecStart=" + m.group(1),
                                         "ExecStart=" + os.path.join(dest, daemon)))
                shutil.copy(os.path.join(dest, os.path.dirname(unit), "invited.socket"), tmp)
                p = subprocess.run([analyze, "verify", "--man=no",
                                    os.path.join(tmp, "invited.service"),
                                    os.path.join(tmp, "invited.socket")],
                                   capture_output=True, text=True, timeout=60)
                tap.eq((p.returncode, p.stdout + p.stderr), (0, ""),
                       "the installed units pass systemd-analyze verify")
        if example and daemon:
            creds = os.path.join(dest, "creds")
            os.mkdir(creds, 0o700)
            with open(os.path.join(creds, "client-secret"), "w") as f:
                f.write("example")
            os.chmod(os.path.join(creds, "client-secret"), 0o400)
            env = dict(os.environ, CREDENTIALS_DIRECTORY=creds)
            p = subprocess.run([os.path.join(dest, daemon), "--check-config", "-c",
                                os.path.join(dest, example)],
                               capture_output=True, text=True, timeout=30, env=env)
            tap.ok(p.returncode == 0 and "tenant = contoso.onmicrosoft.com" in p.stdout,
                   "the example configuration is valid for the installed daemon",
                   p.stdout + p.stderr)
    finally:
        shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    run(main)
