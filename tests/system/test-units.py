#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The systemd units stay verifiable and hardened: `systemd-analyze verify`
passes and `systemd-analyze security --offline=yes` rates invited.service at
most 2.0, so that a later change cannot quietly weaken the sandbox."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import run, skip_all  # noqa: E402

UNITS = os.environ.get("UNITS", os.path.join(os.path.dirname(__file__), "..", "..", "systemd"))
INVITED = os.environ.get("INVITED", "invited")
MAX_EXPOSURE = 2.0


def main(tap):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        skip_all("systemd-analyze is not installed")
    service = os.path.join(UNITS, "invited.service")
    with open(service) as f:
        text = f.read()
    tap.ok(re.search(r"^Type=notify$", text, re.M), "Type=notify")
    tap.ok(re.search(r"^WatchdogSec=", text, re.M), "WatchdogSec= is set")
    tap.ok(re.search(r"^ExecReload=.*-HUP", text, re.M), "ExecReload= sends SIGHUP")
    tap.ok(re.search(r"^LoadCredential(Encrypted)?=client-secret:", text, re.M),
           "the secret comes as the credential client-secret")
    tap.ok(not re.search(r"^Environment.*(SECRET|secret)", text, re.M),
           "no secret in Environment=")
    # bounds sized from SPEC P5/P8 (31 MiB for a 1M-row job, 64 MiB under attack)
    m = re.search(r"^MemoryMax=(\d+)M$", text, re.M)
    tap.ok(m and 64 < int(m.group(1)) <= 1024, "MemoryMax= is set, above P8's 64 MiB")
    m = re.search(r"^TasksMax=(\d+)$", text, re.M)
    tap.ok(m and 32 < int(m.group(1)) <= 256,
           "TasksMax= is set, with room for the hook's 32 commands")
    tap.ok(re.search(r"^SystemCallFilter=.*landlock_restrict_self", text, re.M),
           "the on_complete helper may use Landlock (hook.h)")
    with open(os.path.join(UNITS, "invited.socket")) as f:
        sock = f.read()
    tap.ok(re.search(r"^SocketMode=0660$", sock, re.M) and
           re.search(r"^SocketGroup=invite$", sock, re.M), "socket 0660, group invite")
    with open(os.path.join(UNITS, "invited.sysusers")) as f:
        sysusers = f.read()
    tap.ok(re.search(r"^u invited ", sysusers, re.M) and re.search(r"^g invite ", sysusers, re.M),
           "sysusers.d makes user invited and group invite")

    p = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", service],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout + p.stderr)
    exposure = float(m.group(1)) if m else 99.0
    tap.diag("systemd-analyze security --offline=yes systemd/invited.service: %s" %
             (m.group(0) if m else "no figure"))
    tap.ok(m is not None and exposure <= MAX_EXPOSURE,
           "exposure %.1f <= %.1f" % (exposure, MAX_EXPOSURE), p.stdout + p.stderr)

    # verify needs ExecStart= to exist: a copy pointing at the built binary
    tmp = tempfile.mkdtemp(prefix="invited-units.")
    try:
        copy = os.path.join(tmp, "invited.service")
        with open(copy, "w") as f:
            f.write(re.sub(r"^ExecStart=\S+", "ExecStart=" + os.path.abspath(shutil.which(INVITED) or INVITED),
                           text, flags=re.M))
        shutil.copy(os.path.join(UNITS, "invited.socket"), tmp)
        p = subprocess.run([analyze, "verify", "--man=no",
                            copy, os.path.join(tmp, "invited.socket")],
                           capture_output=True, text=True, timeout=60)
        tap.eq((p.returncode, p.stdout + p.stderr), (0, ""), "systemd-analyze verify passes")
        # the whole security table, with the same settings, for the report
        p = subprocess.run([analyze, "security", "--offline=yes", "--threshold=20",
                            "--no-pager", copy], capture_output=True, text=True, timeout=60)
        tap.ok(p.returncode == 0, "security --threshold=20 passes on the verified copy",
               p.stdout + p.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
