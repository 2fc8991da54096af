#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The man pages: each renders with `man -l --warnings` (80 columns) without
a single warning; invitectl(1) documents every command `invitectl --help`
lists, each with an example; `invitectl COMMAND --help` works for each.
argv: invitectl, then the built pages. Skips (77) without man or pages."""
import os
import re
import shutil
import subprocess
import sys


def main():
    invitectl, pages = sys.argv[1], sys.argv[2:]
    if not shutil.which("man") or not pages:
        print("1..0 # SKIP man or scdoc is not installed")
        return 77
    n = failed = 0

    def ok(cond, desc, diag=""):
        nonlocal n, failed
        n += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", n, desc))
        if not cond:
            failed += 1
            for line in str(diag).splitlines()[:30]:
                print("#   " + line)

    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="0")
    rendered = {}
    for page in pages:
        name = os.path.basename(page)
        p = subprocess.run(["man", "-l", "--warnings", page], capture_output=True, env=env,
                           timeout=60)
        ok(p.returncode == 0 and p.stderr == b"", "man -l --warnings %s: no warning" % name,
           p.stderr.decode())
        text = re.sub(r".\x08", "", p.stdout.decode())
        rendered[name] = text
        ok(re.search(r"^NAME$", text, re.M) and re.search(r"^SEE ALSO$", text, re.M),
           "%s has NAME and SEE ALSO" % name)

    p = subprocess.run([invitectl, "--help"], capture_output=True, timeout=10)
    section = p.stdout.decode().split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    commands = [l.split()[0] for l in section.splitlines() if l.strip()]
    ok(len(commands) >= 14, "invitectl --help lists the commands (%d)" % len(commands))
    man1 = rendered.get("invitectl.1", "")
    body = man1.split("\nCOMMANDS\n", 1)[-1].split("\nEXIT STATUS\n", 1)[0]
    # entries: a line indented 7 spaces starting with the command's name
    starts = [(m.start(), m.group(1)) for m in re.finditer(r"^       (\w+)\b", body, re.M)]
    entries = {}
    for i, (pos, name) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(body)
        entries[name] = body[pos:end]
    for cmd in commands:
        e = entries.get(cmd)
        ok(e is not None, "invitectl(1) documents %s" % cmd, sorted(entries))
        ok(e is not None and "Example:" in e and ("$ invitectl " + cmd) in e,
           "with an example of %s" % cmd, e)
        h = subprocess.run([invitectl, cmd, "--help"], capture_output=True, timeout=10)
        ok(h.returncode == 0 and h.stdout.decode().startswith("Usage: invitectl " + cmd),
           "invitectl %s --help" % cmd, h.stdout.decode() + h.stderr.decode())
    conf = rendered.get("invited.conf.5", "")
    for key in ("tenant", "client_id", "rate", "concurrency", "socket", "allow_group",
                "on_complete", "INVITED_JOB_ID", "INVITED_JOB_CANCELLED"):
        ok(key in conf, "invited.conf(5) documents %s" % key)
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
