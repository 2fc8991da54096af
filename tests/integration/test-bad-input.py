#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The bad input catalogue (tests/fixtures/bad/, docs/reliability.md): every
file is refused by `validate` and by `submit` with exit 65 and the expected
"FILE:LINE: message", nothing is stored; inputs too big to commit (a 2 GB
sparse file, a 10 MB line, a million columns, more rows than max_rows) are
generated here; unreadable paths exit 66; and the daemon's peak memory stays
under 64 MiB through all of it."""
import os
import subprocess

from harness import FIXTURES, WRAPPER, Env, run

BAD = os.path.join(FIXTURES, "bad")
NO_HEADER = "no recognizable header"
BAD_UTF8 = "invalid UTF-8"

# file: (line, words in the first message); all exit 65
CATALOGUE = {
    "bad-boolean.csv": (4, "invalid sendEmail value 'maybe'"),
    "binary-random.bin": (1, NO_HEADER),
    "blank-lines-only.csv": (1, NO_HEADER),
    "cr-only-line-ends.csv": (1, "save the file with LF or CRLF line ends"),
    "display-name-too-long.csv": (2, "display name too long (300 bytes, at most 256)"),
    "duplicate-column.csv": (2, "duplicate column [inviteeEmail]"),
    "duplicate-email.csv": (6, "duplicate email 'ANA@Fabrikam.example' (also on line 4)"),
    "email-double-dot.csv": (4, "two consecutive periods"),
    "email-forbidden-char.csv": (4, "'+' is not permitted"),
    "email-label-hyphen.csv": (4, "domain label starts or ends with '-'"),
    "email-leading-dot.csv": (4, "user name starts with '.'"),
    "email-local-too-long.csv": (4, "user name longer than 64 bytes"),
    "email-no-at.csv": (4, "missing '@'"),
    "email-single-label-domain.csv": (4, "domain has no '.'"),
    "email-space.csv": (4, "contains a space or control character"),
    "email-too-long.csv": (4, "longer than 254 bytes"),
    "email-two-at.csv": (4, "more than one '@'"),
    "empty-email.csv": (5, "empty email"),
    "empty.csv": (1, NO_HEADER),
    "gzipped.csv.gz": (1, NO_HEADER),
    "html-page.csv": (1, NO_HEADER),
    "invalid-utf8.csv": (4, BAD_UTF8),
    "json.csv": (1, NO_HEADER),
    "many-errors.csv": (2, "more than one '@'"),
    "message-too-long.csv": (4, "customized message too long (10050 bytes, at most 10000)"),
    "missing-email-column.csv": (2, "missing required column [inviteeEmail]"),
    "missing-redirect-column.csv": (2, "missing required column [inviteRedirectURL]"),
    "no-header.csv": (1, NO_HEADER),
    "nul-bytes.csv": (2, BAD_UTF8),
    "nul-in-header.csv": (1, BAD_UTF8),
    "powershell-wrong-header.csv": (1, "missing required column InvitedUserEmailAddress"),
    "redirect-ftp.csv": (4, "not an absolute http:// or https:// URL"),
    "redirect-no-host.csv": (4, "no host"),
    "redirect-relative.csv": (4, "not an absolute http:// or https:// URL"),
    "redirect-space.csv": (4, "contains a space or control character"),
    "semicolon-bad-email.csv": (3, "more than one '@'"),
    "unterminated-quote.csv": (5, "unterminated quote"),
    "utf16-be.csv": (1, "the file is UTF-16; save it as CSV UTF-8"),
    "utf16-le.csv": (1, "the file is UTF-16; save it as CSV UTF-8"),
    "utf16-no-bom.csv": (1, BAD_UTF8),
    "version-row-only.csv": (1, NO_HEADER),
    "xlsx-saved-as-csv.csv": (1, NO_HEADER),
}
MAX_ROWS = 1000
HWM_LIMIT_KIB = 64 * 1024


def refused(tap, env, path, line, words, code=65):
    """Both commands exit with code; with a line, the first message is
    "PATH:LINE: ...words..."; without one, some message holds the path and
    the words."""
    name = os.path.basename(path)
    for cmd in ("validate", "submit"):
        p = env.ctl(cmd, path, timeout=300)
        err = p.stderr.decode(errors="replace")
        lines = err.splitlines() or [""]
        if line:
            found = lines[0].startswith("%s:%d: " % (path, line)) and words in lines[0]
            shown = lines[0][len(path) + 1:]
        else:
            found = any(path in l and words in l for l in lines)
            shown = next((l for l in lines if words in l), lines[0]).replace(path, name)
        tap.ok(p.returncode == code and found,
               "%s %s: exit %d, %s" % (cmd, name, p.returncode, shown[:100]),
               "want exit %d and %s:%s: ...%s\n%s" % (code, path, line, words, err[:600]))


def sanitized(pid):
    """True when the daemon carries a sanitizer or runs under valgrind: its
    memory is then not the daemon's own."""
    if WRAPPER:
        return True
    try:
        with open("/proc/%d/maps" % pid) as f:
            return any("asan" in l or "ubsan" in l for l in f)
    except OSError:
        return True


def main(tap):
    with Env(daemon={"max_rows": str(MAX_ROWS)}) as env:
        files = sorted(os.listdir(BAD))
        listed = [f for f in files if f != "README.md"]
        tap.ok(len(listed) >= 30, "the catalogue holds %d files" % len(listed))
        tap.eq(sorted(set(listed) - set(CATALOGUE)), [], "every file has an expected message")
        for name in sorted(CATALOGUE):
            line, words = CATALOGUE[name]
            refused(tap, env, os.path.join(BAD, name), line, words)
        p, v = env.ctl_json("validate", os.path.join(BAD, "many-errors.csv"))
        tap.ok(v and len(v["errors"]) == 50 and v["error_count"] == 120,
               "many-errors: the first 50 problems and a count of 120")

        # generated: too big to commit
        big = os.path.join(env.dir, "sparse-2g.csv")
        with open(big, "wb") as f:
            f.truncate(2 << 30)
        refused(tap, env, big, None, "larger than max_upload_bytes")
        os.unlink(big)

        line10m = env.write("line-10m.csv", b"Name,InvitedUserEmailAddress\n" + b"x" * (10 << 20)
                            + b",ana@fabrikam.example\n")
        refused(tap, env, line10m, 2, "record too long")
        cols = env.write("million-columns.csv", b"Name,InvitedUserEmailAddress" +
                         b",c" * 1000000 + b"\nAna,ana@fabrikam.example\n")
        refused(tap, env, cols, 1, "record too long")
        quote10m = env.write("quote-10m.csv", b"Name,InvitedUserEmailAddress\n\"" +
                             b"y" * (10 << 20) + b"\n")
        refused(tap, env, quote10m, 2, "quoted field longer than")
        rows = env.write("too-many-rows.csv", b"Name,InvitedUserEmailAddress\n" + b"".join(
            b"n,guest%05d@fabrikam.example\n" % i for i in range(MAX_ROWS + 1)))
        refused(tap, env, rows, MAX_ROWS + 2, "more than %d rows" % MAX_ROWS)
        nuls = env.write("nul-1m.csv", b"Name,InvitedUserEmailAddress\n" + b"\0" * (1 << 20))
        refused(tap, env, nuls, 2, BAD_UTF8)

        # unreadable: exit 66 before talking to the daemon
        refused(tap, env, os.path.join(env.dir, "does-not-exist.csv"), None,
                "cannot read", code=66)
        refused(tap, env, env.dir, None, "cannot read", code=66)
        locked = env.write("mode-000.csv", b"Name,InvitedUserEmailAddress\n")
        os.chmod(locked, 0)
        if os.geteuid() == 0:
            for cmd in ("validate", "submit"):
                p = env.ctl(cmd, locked, user=(65534, 65534))
                tap.ok(p.returncode == 66 and b"cannot read" in p.stderr,
                       "%s of a file the user may not read: exit %d" % (cmd, p.returncode),
                       p.stderr.decode())
        else:
            refused(tap, env, locked, None, "cannot read", code=66)

        with env.db() as db:
            tap.eq(db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0], 0, "no job stored")
            tap.eq(db.execute("SELECT COUNT(*) FROM rows").fetchone()[0], 0, "no row stored")
        pid = env.daemon.pid
        hwm = None
        with open("/proc/%d/status" % pid) as f:
            for l in f:
                if l.startswith("VmHWM:"):
                    hwm = int(l.split()[1])
        if sanitized(pid):
            print("ok %d - the daemon's peak memory # SKIP sanitizer or valgrind build (VmHWM %s KiB)"
                  % (tap.n + 1, hwm))
            tap.n += 1
        else:
            tap.ok(hwm is not None and hwm < HWM_LIMIT_KIB,
                   "the daemon's peak memory stayed under 64 MiB: VmHWM %s KiB" % hwm)
        p = env.ctl("status")
        tap.eq(p.returncode, 0, "and it still answers")


if __name__ == "__main__":
    run(main)
