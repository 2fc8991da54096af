#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""An invalid file is refused with the right physical line numbers, exit 65,
and nothing is stored; validate says the same without storing."""
import os

from harness import Env, run

BAD = (b"version:v1.0,,,\n"                                                    # 1
       b"Email [inviteeEmail],Redirect [inviteRedirectURL],Send [sendEmail]\n"  # 2
       b"Example: a@b.example,https://x.example,true\n"                         # 3
       b"ok1@partner.example,https://x.example,true\n"                          # 4
       b"bad+plus@partner.example,https://x.example,true\n"                      # 5
       b"\n"                                                                    # 6
       b"ok2@partner.example,ftp://x.example,true\n"                            # 7
       b"ok3@partner.example,https://x.example,maybe,\"two\nlines\"\n"         # 8-9
       b"OK1@partner.example,https://x.example,false\n"                         # 10
       b",https://x.example,true\n")                                            # 11


def main(tap):
    with Env() as env:
        path = env.write("bad.csv", BAD)
        p = env.ctl("submit", path)
        tap.eq(p.returncode, 65, "submit of an invalid file exits 65")
        err = p.stderr.decode()
        for line, words in [(5, "invalid email"), (7, "redirect"), (8, "sendEmail"),
                            (10, "duplicate"), (11, "empty email")]:
            tap.ok(any(l.startswith("%s:%d:" % (path, line)) and words in l
                       for l in err.splitlines()),
                   "line %d reported: %s" % (line, words), err)
        tap.ok("line 4" in err, "the duplicate names the first line too", err)
        tap.eq(p.stdout, b"", "nothing on stdout")

        with env.db() as db:
            tap.eq(db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0], 0, "no job stored")
            tap.eq(db.execute("SELECT COUNT(*) FROM rows").fetchone()[0], 0, "no row stored")

        p, v = env.ctl_json("validate", path)
        tap.eq(p.returncode, 65, "validate of the invalid file exits 65")
        tap.ok(v and v["valid"] is False and [e["line"] for e in v["errors"]] == [5, 7, 8, 10, 11],
               "validate --json lists the lines", v)

        good = env.write("good.csv", BAD[:BAD.index(b"bad+plus")])
        p, v = env.ctl_json("validate", good)
        tap.ok(p.returncode == 0 and v == {"valid": True, "rows": 1, "errors": []} or
               (v and v.get("valid") is True and v.get("rows") == 1 and v.get("errors") == []),
               "validate --json of a good file: valid, 1 row", v)
        with env.db() as db:
            tap.eq(db.execute("SELECT COUNT(*) FROM rows").fetchone()[0], 0,
                   "validate stores nothing")

        # more than 50 problems: the first 50 and a count
        many = b"Name,InvitedUserEmailAddress\n" + b"".join(
            b"x,bad%d@@x.example\n" % i for i in range(120))
        p, v = env.ctl_json("validate", env.write("many.csv", many))
        tap.ok(v and len(v["errors"]) == 50 and v.get("error_count", 0) == 120 or
               (v and len(v["errors"]) == 50),
               "at most 50 problems listed", v and len(v["errors"]))
        p = env.ctl("submit", os.path.join(env.dir, "many.csv"))
        tap.ok(p.returncode == 65 and b"70 more" in p.stderr, "submit says how many more",
               p.stderr.decode()[-300:])

        # a file pasted twice: every row of the second half is a duplicate
        half = b"".join(b"x,dup%05d@partner.example\n" % i for i in range(3000))
        p, v = env.ctl_json("validate", env.write("twice.csv",
                                                  b"Name,InvitedUserEmailAddress\n" + half + half.upper()))
        tap.ok(v and v["valid"] is False and v.get("error_count") == 3000 and len(v["errors"]) == 50
               and v["errors"][0]["line"] == 3002 and "also on line 2" in v["errors"][0]["message"],
               "3,000 duplicates (in another case) counted, the first 50 listed from line 3002",
               v and (v.get("error_count"), v["errors"][:1]))


if __name__ == "__main__":
    run(main)
