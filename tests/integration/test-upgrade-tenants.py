#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A database and configuration of wave 1 (one [graph] tenant =, schema
version 4: the schema files 0001-0004 as wave 1 shipped them) start
unchanged under this daemon: the tenant row named as the directory becomes
"default", the job that was running goes on and completes, and the one that
had finished is still there with its counts."""
import glob
import os
import sqlite3
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import Env, deadline_wait, run  # noqa: E402

SCHEMA = os.path.join(HERE, "..", "..", "schema")


def make_v4(path, addresses):
    db = sqlite3.connect(path)
    for name in ("0001-initial.sql", "0002-fresh-cursor.sql", "0003-audit.sql",
                 "0004-client-request-id.sql"):
        with open(os.path.join(SCHEMA, name)) as f:
            db.executescript(f.read())
    db.executescript("PRAGMA user_version = 4;"
                     "PRAGMA journal_mode = WAL;"
                     "INSERT INTO tenants(id, name) VALUES (1, 'contoso.onmicrosoft.com');")
    db.execute("INSERT INTO jobs(id, tenant_id, name, state, created_at, finished_at,"
               " submitted_uid, submitted_user, redirect_url, send_email, total, succeeded,"
               " first_row, last_row) VALUES (1, 1, 'done', 4, 1000, 2000, 0, 'root',"
               " 'https://r.example', 0, 1, 1, 1, 1)")
    db.execute("INSERT INTO rows(id, job_id, line, email, fields, state, attempts, http_status,"
               " invited_user_id, updated_at) VALUES (1, 1, 2, 'old@guest.example', '[]', 2, 1,"
               " 201, 'uid-old', 2000)")
    n = len(addresses)
    db.execute("INSERT INTO jobs(id, tenant_id, name, state, created_at, submitted_uid,"
               " submitted_user, redirect_url, send_email, total, first_row, last_row)"
               " VALUES (2, 1, 'running', 1, 3000, 0, 'root', 'https://r.example', 0, ?, 2, ?)",
               (n, 1 + n))
    for i, a in enumerate(addresses):
        db.execute("INSERT INTO rows(id, job_id, line, email, fields, updated_at)"
                   " VALUES (?, 2, ?, ?, '[]', 3000)", (2 + i, 2 + i, a))
    db.commit()
    db.close()


def main(tap):
    with Env(start=False) as env:
        addresses = ["g%02d@guest.example" % i for i in range(10)]
        make_v4(env.db_path, addresses)
        env.start_daemon()
        deadline_wait(lambda: env.ctl_json("show", "2")[1]["job"]["state"] == "completed", 30,
                      "the running job completes")
        j = env.ctl_json("show", "2")[1]["job"]
        tap.ok(j["succeeded"] == 10 and j["tenant"] == "default" and
               j["directory"] == "contoso.onmicrosoft.com",
               "the wave-1 job completes under the tenant 'default' (contoso.onmicrosoft.com)", j)
        j = env.ctl_json("show", "1")[1]["job"]
        tap.ok(j["state"] == "completed" and j["succeeded"] == 1 and j["tenant"] == "default",
               "the finished job is intact", j)
        tap.eq(sorted(r["address"] for r in env.record()), addresses,
               "each pending row was sent once")
        tap.ok("is now called 'default'" in env.log(), "the log says the tenant was renamed")
        db = sqlite3.connect(env.db_path)
        rows = db.execute("SELECT id, name, directory FROM tenants").fetchall()
        ver = db.execute("PRAGMA user_version").fetchone()[0]
        db.close()
        latest = len(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "..", "..", "schema", "[0-9]*.sql")))
        tap.eq((rows, ver), ([(1, "default", "contoso.onmicrosoft.com")], latest),
               "one tenant row, renamed, the directory kept; the latest schema (%d)" % latest)
        env.stop_daemon()
        env.start_daemon()
        p, j = env.ctl_json("jobs", "--all")
        tap.eq(sorted(x["id"] for x in j), [1, 2], "a second start: the same two jobs")

    # the same database under a file that names its tenant in a section
    with Env(start=False) as env:
        addresses = ["h%02d@guest.example" % i for i in range(5)]
        make_v4(env.db_path, addresses)
        text = open(env.conf).read().replace("tenant = contoso.onmicrosoft.com\n", "")
        with open(env.conf, "w") as f:
            f.write(text + "\n[tenant contoso]\ntenant = contoso.onmicrosoft.com\n")
        env.start_daemon()
        deadline_wait(lambda: env.ctl_json("show", "2")[1]["job"]["state"] == "completed", 30,
                      "the running job completes")
        j = env.ctl_json("show", "2")[1]["job"]
        tap.ok(j["succeeded"] == 5 and j["tenant"] == "contoso",
               "with [tenant contoso] of that directory: the job completes as contoso's", j)


run(main)
