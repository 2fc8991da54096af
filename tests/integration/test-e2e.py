#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A 1,000-row portal file is invited completely: the simulator's record holds
each address exactly once with the right per-row fields, `results` matches
the record, and the --json outputs carry SPEC §3's fields."""
import csv
import io

from harness import Env, portal_file, run

JOB_FIELDS = {"id", "name", "state", "created_at", "finished_at", "submitted_by", "total",
              "succeeded", "failed", "pending", "cancelled"}
ROW_FIELDS = {"line", "email", "display_name", "state", "attempts", "http_status", "error_code",
              "error_message", "invited_user_id", "invite_redeem_url", "updated_at"}


def make_rows(n):
    """Rows of a portal file with [inviteeName] added: every per-row variant."""
    rows, want = [], {}
    for i in range(n):
        email = "guest%04d@partner-%d.example" % (i, i % 7)
        send = ["true", "false", "", "TRUE", "no", "1"][i % 6]
        redirect = "https://apps.partner.example/welcome?g=%d" % i if i % 5 == 0 else ""
        message = 'Hello "%d", welcome, friend' % i if i % 10 == 3 else ""
        name = "Guest, Number %d" % i if i % 3 == 0 else ""
        rows.append([email, redirect, send, message, name])
        want[email] = {
            "send": {"true": True, "false": False, "": True, "TRUE": True, "no": False,
                     "1": True}[send],
            "redirect": redirect or "https://myapplications.microsoft.com",
            "message": message or None,
            "display_name": name or None,
        }
    return rows, want


def main(tap):
    with Env() as env:
        rows, want = make_rows(1000)
        path = env.write("guests.csv", portal_file(rows, extra_header=",Name [inviteeName]"))

        p, job = env.ctl_json("submit", path, "--name", "e2e batch")
        tap.eq(p.returncode, 0, "submit exits 0")
        tap.ok(job and JOB_FIELDS <= set(job), "submit --json prints a job with SPEC fields",
               p.stdout.decode()[:500] + p.stderr.decode())
        tap.eq(job and job["total"], 1000, "the job holds 1000 rows")
        tap.eq(job and job["name"], "e2e batch", "the job keeps its name")
        tap.ok(b"customized" in p.stderr, "submit warns that app-sent custom messages are dropped",
               p.stderr.decode())

        p, done = env.wait_job(job["id"])
        tap.eq(p.returncode, 0, "wait exits 0 when every row succeeded")
        tap.eq((done["state"], done["succeeded"], done["failed"], done["pending"]),
               ("completed", 1000, 0, 0), "the job completed with 1000 successes")
        tap.ok(done["finished_at"] is not None, "finished_at is set")

        rec = env.record()
        addrs = [r["address"] for r in rec]
        tap.eq(len(addrs), 1000, "the simulator accepted 1000 invitations")
        tap.eq(len(set(addrs)), 1000, "each address exactly once")
        tap.eq(set(addrs), set(want), "exactly the file's addresses")
        bad = [r["address"] for r in rec
               if (r["send"], r["redirect"], r["message"], r["display_name"]) !=
               (want[r["address"]]["send"], want[r["address"]]["redirect"],
                want[r["address"]]["message"], want[r["address"]]["display_name"])]
        tap.ok(not bad, "send flag, redirect URL, message and display name as in each row",
               "\n".join(bad[:10]))

        p, shown = env.ctl_json("show", str(job["id"]))
        tap.eq(p.returncode, 0, "show exits 0")
        tap.ok(shown and set(shown) >= {"job", "rows"} and len(shown["rows"]) == 1000,
               "show --json has the job and its 1000 rows")
        tap.ok(shown and ROW_FIELDS <= set(shown["rows"][0]), "rows carry SPEC fields",
               shown and shown["rows"][0])
        lines = [r["line"] for r in shown["rows"]]
        tap.eq(lines[:3], [4, 5, 6], "rows are numbered by physical line (version, header, example first)")

        p, jobs = env.ctl_json("jobs")
        tap.ok(p.returncode == 0 and isinstance(jobs, list) and jobs and JOB_FIELDS <= set(jobs[0]),
               "jobs --json prints an array of jobs")

        p = env.ctl("results", str(job["id"]))
        tap.eq(p.returncode, 0, "results exits 0")
        stdout_bytes = p.stdout
        text = p.stdout.decode("utf-8-sig")
        table = list(csv.DictReader(io.StringIO(text)))
        tap.eq(len(table), 1000, "results has one line per row")
        cols = list(table[0].keys()) if table else []
        tap.ok(cols[:5] == ["Email address to invite [inviteeEmail] Required",
                            "Redirection url [inviteRedirectURL] Required",
                            "Send invitation message (true or false) [sendEmail]",
                            "Customized invitation message [customizedMessageBody]",
                            "Name [inviteeName]"], "results starts with the input columns", cols)
        tap.ok(cols[5:] == ["status", "http_status", "error_code", "error_message",
                            "invited_user_id", "invite_redeem_url", "attempts", "finished_at",
                            "existing_type", "groups_state", "group_errors", "mail_state",
                            "mail_sent_at", "accepted_at", "resends"],
               "then SPEC's result columns", cols)
        by_addr = {r["address"]: r for r in rec}
        mism = [t for t in table
                if t["status"] != "succeeded"
                or t["invited_user_id"] != by_addr.get(t[cols[0]], {}).get("user_id")]
        tap.ok(not mism, "results' user ids match the simulator's record", mism[:3])
        tap.ok(all(t["invite_redeem_url"].startswith("https://") for t in table),
               "every result has a redeem URL")
        odd = [t for t in table if t[cols[3]] and "," not in t[cols[3]]]
        tap.ok(not odd, "messages with commas and quotes survive the round trip")

        out = env.write("results.csv", b"")
        p = env.ctl("results", str(job["id"]), "-o", out)
        tap.ok(p.returncode == 0 and open(out, "rb").read() == stdout_bytes,
               "results -o FILE writes the same CSV")

        # long messages: a page of rows would not fit one frame; pages end early
        long_rows = [["long%03d@partner.example" % i, "", "false", "x" * 9000] for i in range(300)]
        path = env.write("long.csv", portal_file(long_rows))
        p = env.ctl("submit", path, "--wait")
        job2 = p.stdout.decode().split()[0] if p.returncode == 0 else "0"
        p = env.ctl("results", job2)
        table = list(csv.DictReader(io.StringIO(p.stdout.decode("utf-8-sig"))))
        tap.ok(p.returncode == 0 and len(table) == 300 and
               all(len(t[cols[3]]) == 9000 for t in table),
               "results of 300 rows with 9,000-byte messages (2.7 MB) come through whole",
               p.stderr.decode())


if __name__ == "__main__":
    run(main)
