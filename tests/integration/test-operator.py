#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Operator experience (issue 4): every invitectl command's human and --json
output; cancel/pause/resume/retry say what they changed and are idempotent;
retry --error-code; -q and --no-legend; wide Unicode stays aligned; results
--bom; the custom-message warning; and the on_complete command runs once
per job end with exactly the job's environment, without a shell."""
import csv
import io
import json
import os
import re
import stat
import unicodedata

from harness import Env, deadline_wait, portal_file, run

JOB_FIELDS = {"id", "name", "state", "created_at", "finished_at", "submitted_by", "total",
              "succeeded", "failed", "pending", "cancelled"}
HOOK = """#!/bin/sh
# on_complete test hook: $1 the log, then the other arguments
log=$1; shift
# one append per run: jobs that end in the same group commit run at once
{ echo "ARGC=$#"; for a in "$@"; do echo "ARG=$a"; done; env | LC_ALL=C sort; echo "--"; } > "$log.$$"
cat "$log.$$" >> "$log"; rm -f "$log.$$"
[ "$INVITED_JOB_NAME" = fail-hook ] && exit 3
exit 0
"""


def width(s):
    """Display columns of s, as a terminal shows it."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else
               0 if unicodedata.combining(c) else 1 for c in s)


def hook_runs(path):
    if not os.path.exists(path):
        return []
    runs, cur = [], {"args": [], "env": {}}
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line == "--":
            runs.append(cur)
            cur = {"args": [], "env": {}}
        elif line.startswith("ARG="):
            cur["args"].append(line[4:])
        elif line.startswith("ARGC="):
            pass
        elif "=" in line:
            k, v = line.split("=", 1)
            cur["env"][k] = v
    return runs


def err(p):
    return p.stderr.decode("utf-8", "replace")


def out(p):
    return p.stdout.decode("utf-8", "replace")


def main(tap):
    env = Env(sim_args=["--reject", "no1@blocked.example", "--reject", "no2@blocked.example"],
              queue={"rate": "100", "burst": "20"}, start=False)
    with env:
        # the command runs as hook_user (nobody) when invited is root: its
        # script and log live where that user may read and write
        hook_dir = os.path.join(env.dir, "hook")
        os.mkdir(hook_dir)
        os.chmod(env.dir, 0o711)
        if os.geteuid() == 0:
            import pwd
            nobody = pwd.getpwnam("nobody")
            os.chown(hook_dir, nobody.pw_uid, nobody.pw_gid)
        hook_log = os.path.join(hook_dir, "hook.log")
        hook = env.write("hook/hook.sh", HOOK.encode())
        os.chmod(hook, 0o755)
        env.daemon_extra["on_complete"] = "%s %s 'two words' \"$HOME\"" % (hook, hook_log)
        env.write_config()
        # what must not leak into the command's environment
        # (a directory of its own: the command may not open what is in it)
        os.mkdir(os.path.join(env.dir, "creds"), 0o700)
        os.environ["CREDENTIALS_DIRECTORY"] = os.path.join(env.dir, "creds")
        os.environ["INVITED_TEST_SECRETISH"] = "leak"
        try:
            env.start_daemon()
        finally:
            del os.environ["CREDENTIALS_DIRECTORY"]
            del os.environ["INVITED_TEST_SECRETISH"]

        # -- submit: a custom message warns (app-only auth drops it) --
        rows = [["ok%02d@partner.example" % i, "", "false", ""] for i in range(20)]
        rows += [["no1@blocked.example", "", "false", "Hello from us"],
                 ["no2@blocked.example", "", "false", ""]]
        path = env.write("guests.csv", portal_file(rows))
        p = env.ctl("submit", "--name", "Q4 partners", path)
        tap.eq(p.returncode, 0, "submit exits 0")
        tap.ok(re.fullmatch(r"\d+\n", out(p)) is not None, "submit prints the job id alone",
               out(p))
        j1 = out(p).strip()
        tap.ok("Submitted job %s: 22 rows" % j1 in err(p), "submit says what it stored", err(p))
        tap.ok("warning: rows carry a customized invitation message" in err(p) and
               "Microsoft drops" in err(p), "submit warns that the message will be dropped",
               err(p))
        p = env.ctl("wait", j1)
        tap.eq(p.returncode, 1, "wait exits 1: two rows failed")
        tap.ok("Job %s completed: 20 succeeded, 2 failed, 0 cancelled of 22" % j1 in err(p),
               "wait's summary", err(p))

        p, j = env.ctl_json("submit", "--message", "Welcome", env.write("one.csv", portal_file(
            [["solo@partner.example", "", "false", ""]])))
        tap.ok(p.returncode == 0 and JOB_FIELDS <= set(j), "submit --json prints the job")
        tap.ok("customized invitation message" in err(p), "--message warns too")
        p, j = env.ctl_json("wait", str(j["id"]))
        tap.ok(p.returncode == 0 and j["state"] == "completed", "wait --json prints the job")
        p = env.ctl("submit", env.write("plain.csv", portal_file(
            [["plain@partner.example", "", "false", ""]])))
        tap.ok(p.returncode == 0 and "warning" not in err(p), "no message, no warning", err(p))
        env.ctl("wait", out(p).strip())

        # -- validate, submit --watch, watch --json, pause/resume in both forms --
        small = env.write("small.csv", portal_file([["w%d@partner.example" % i, "", "false", ""]
                                                    for i in range(3)]))
        p = env.ctl("validate", small)
        tap.eq((p.returncode, out(p)), (0, "%s: 3 rows, valid\n" % small), "validate: valid")
        p, v = env.ctl_json("validate", small)
        tap.eq(v, {"valid": True, "rows": 3, "errors": [], "error_count": 0},
               "validate --json")
        p = env.ctl("submit", "--watch", small)
        jw3 = out(p).strip()
        tap.ok(p.returncode == 0 and re.fullmatch(r"\d+", jw3) and
               "Job %s completed: 3 succeeded, 0 failed, 0 cancelled of 3" % jw3 in err(p),
               "submit --watch: the id, then progress and the summary", out(p) + err(p))
        p, j = env.ctl_json("watch", jw3)
        tap.ok(p.returncode == 0 and j and j["state"] == "completed" and j["succeeded"] == 3,
               "watch --json of an ended job prints it at once")
        p, j = env.ctl_json("pause", jw3)
        tap.ok(p.returncode == 0 and j["changed"] == 0 and "nothing to pause (job is completed)"
               in err(p), "pause of a completed job: nothing, said so", err(p))
        p = env.ctl("resume", jw3)
        tap.ok(p.returncode == 0 and "not paused or blocked (job is completed)" in err(p),
               "resume of a completed job: nothing, said so", err(p))

        # -- show: plain words with Graph's code beside them --
        p = env.ctl("show", j1, "--state", "failed")
        tap.eq(p.returncode, 0, "show exits 0")
        lines = out(p).splitlines()
        tap.ok(any(re.match(r"Job:\s+%s$" % j1, l) for l in lines) and
               any(re.match(r"Failed:\s+2$", l) for l in lines), "show starts with the summary",
               out(p))
        failed = [l for l in lines if "blocked.example" in l]
        tap.eq(len(failed), 2, "show --state failed lists the two failed rows")
        tap.ok(all(re.search(r"blocked by the tenant.*\(BadRequest, HTTP 400\)$", l)
                   for l in failed), "RESULT: Graph's message, then (code, HTTP status)",
               failed)
        p, shown = env.ctl_json("show", j1, "--state", "failed")
        tap.ok(shown and [r["error_code"] for r in shown["rows"]] == ["BadRequest"] * 2,
               "show --json: error_code per row")
        p = env.ctl("show", "-q", j1, "--state", "failed")
        tap.eq(out(p).split(), ["24", "25"], "show -q prints line numbers only")
        p = env.ctl("show", "--no-legend", j1, "--state", "failed")
        tap.ok(len(out(p).splitlines()) == 2 and "LINE" not in out(p) and "Job:" not in out(p),
               "show --no-legend prints the rows only", out(p))
        p = env.ctl("--json", "show", "-q", j1)
        tap.eq(p.returncode, 64, "-q with --json is a usage error")

        # -- results: input columns first, --bom for Excel --
        p = env.ctl("results", j1)
        text = out(p)
        header = next(csv.reader(io.StringIO(text)))
        tap.eq(header[:2], ["Email address to invite [inviteeEmail] Required",
                            "Redirection url [inviteRedirectURL] Required"],
               "results: the input columns first")
        tap.eq(header[-15:], ["status", "http_status", "error_code", "error_message",
                              "invited_user_id", "invite_redeem_url", "attempts", "finished_at",
                              "existing_type", "groups_state", "group_errors", "mail_state",
                              "mail_sent_at", "accepted_at", "resends"],
               "then the result columns")
        tap.ok(not p.stdout.startswith(b"\xef\xbb\xbf"), "no BOM unless asked")
        out_path = os.path.join(env.dir, "results.csv")
        p = env.ctl("results", "--bom", "-o", out_path, j1)
        data = open(out_path, "rb").read()
        tap.ok(p.returncode == 0 and data.startswith(b"\xef\xbb\xbf") and
               data[3:] == text.encode(), "results --bom: the same CSV after a UTF-8 BOM")

        # -- jobs: table, -q, --no-legend, wide Unicode aligned --
        wide = [["tanaka@partner.example", "", "false", "", "田中 太郎"],
                ["party@partner.example", "", "false", "", "🎉 Party"]]
        p = env.ctl("submit", "--name", "日本のパートナー 🎉", env.write(
            "wide.csv", portal_file(wide, extra_header=",Name [inviteeName]")))
        jw = out(p).strip()
        env.ctl("wait", jw)
        p = env.ctl("jobs")
        lines = out(p).splitlines()
        tap.ok(lines and lines[0].split() == ["ID", "STATE", "SUBMITTED", "BY", "TENANT",
                                              "TOTAL", "SUCCESS", "FAILURE", "SKIPPED",
                                              "PENDING", "ACCEPTED", "NAME"],
               "jobs: the SPEC header", out(p))
        name_col = [width(l[:l.index("NAME")]) if "NAME" in l else None for l in lines[:1]]
        row = [l for l in lines if l.endswith("日本のパートナー 🎉")]
        tap.ok(row and width(row[0][:row[0].index("日本")]) == name_col[0],
               "a Japanese job name starts under NAME", out(p))
        p, jobs = env.ctl_json("jobs")
        tap.ok(isinstance(jobs, list) and all(JOB_FIELDS <= set(x) for x in jobs),
               "jobs --json: an array of jobs")
        p = env.ctl("jobs", "-q")
        tap.eq(out(p).split(), [str(x["id"]) for x in jobs], "jobs -q: ids only, newest first")
        p = env.ctl("jobs", "--no-legend")
        tap.ok("STATE" not in out(p) and len(out(p).splitlines()) == len(jobs),
               "jobs --no-legend: no header", out(p))
        p, shown = env.ctl_json("show", jw)
        tap.eq(sorted(r["display_name"] for r in shown["rows"]), ["田中 太郎", "🎉 Party"],
               "display names in Japanese and emoji are kept")

        # -- pause, resume, cancel, retry: what changed, idempotent --
        big = [["bulk%04d@partner.example" % i, "", "false", ""] for i in range(1500)]
        p = env.ctl("submit", env.write("big.csv", portal_file(big)))
        jb = out(p).strip()
        p = env.ctl("pause", jb)
        tap.ok(p.returncode == 0 and "Job %s: paused" % jb in err(p), "pause says paused", err(p))
        p = env.ctl("pause", jb)
        tap.ok(p.returncode == 0 and "Job %s: already paused" % jb in err(p),
               "pause again: already paused", err(p))
        p, j = env.ctl_json("cancel", jb)
        m = re.search(r"Job %s: cancelled (\d{1,3}(?:,\d{3})+) pending rows" % jb, err(p))
        tap.ok(p.returncode == 0 and m is not None,
               "cancel says how many, with thousands separators", err(p))
        n = int(m.group(1).replace(",", "")) if m else -1
        tap.ok(j and j["state"] == "cancelled" and j["changed"] == n and j["cancelled"] == n,
               "cancel --json: the job and \"changed\"", j)
        p = env.ctl("cancel", jb)
        tap.ok(p.returncode == 0 and "already cancelled" in err(p),
               "cancel again: already cancelled", err(p))
        p = env.ctl("resume", jb)
        tap.ok(p.returncode == 0 and "not paused or blocked (job is cancelled)" in err(p),
               "resume of a cancelled job changes nothing", err(p))
        p = env.ctl("retry", "--error-code", "Request_ResourceNotFound", j1)
        tap.ok(p.returncode == 0 and
               "no failed rows with error code Request_ResourceNotFound" in err(p),
               "retry --error-code with another code re-queues nothing", err(p))
        p, j = env.ctl_json("retry", "--error-code", "BadRequest", j1)
        tap.ok(p.returncode == 0 and "re-queued 2 failed rows with error code BadRequest" in
               err(p) and j["changed"] == 2, "retry --error-code BadRequest re-queues both",
               err(p))
        env.ctl("wait", j1)
        p = env.ctl("retry", "--error-code", "BadRequest", j1)
        tap.ok("re-queued 2 failed rows" in err(p), "they failed again and can be re-queued again")
        env.ctl("wait", j1)
        p = env.ctl("retry", "1000000")
        tap.eq(p.returncode, 64, "retry of no such job: 64")

        # -- stats, status --
        p = env.ctl("stats")
        names = [l.split()[0] for l in out(p).splitlines()]
        tap.ok({"requests_total", "throttled_total", "retries_total", "token_refreshes_total",
                "rate", "pending", "rows_succeeded", "rows_failed", "rows_cancelled"} <= set(names),
               "stats: counters and gauges by name", out(p))
        p, st = env.ctl_json("stats")
        tap.ok(st and st["rows_failed"] == 2 and st["rows_cancelled"] == n and
               st["requests_total"] >= 24, "stats --json: rows by state and counters", st)
        p = env.ctl("--json", "stats", "--prometheus")
        tap.eq(p.returncode, 64, "--json with --prometheus is a usage error")
        p = env.ctl("status")
        tap.ok(all(re.search(r"^%s:\s+\S" % k, out(p), re.M) for k in
                   ("Version", "Uptime", "Tenant", "Token", "Rate", "Queue")),
               "status: version, uptime, tenant, token, rate, queue", out(p))
        p, st = env.ctl_json("status")
        tap.ok(st and st["token"]["state"] == "valid" and "queue" in st, "status --json")

        # -- on_complete: once per job end, the job in a clean environment --
        p = env.ctl("submit", "--name", "$(touch %s/pwned) `id`; fail-hook" % env.dir,
                    env.write("evil.csv", portal_file([["evil@partner.example", "", "", ""]])))
        je = out(p).strip()
        env.ctl("wait", je)
        p = env.ctl("submit", "--name", "fail-hook", env.write(
            "fail.csv", portal_file([["fail@partner.example", "", "", ""]])))
        jf = out(p).strip()
        env.ctl("wait", jf)
        # job ends so far: j1 three times (end, retry, retry), the --message job, the plain
        # job, the --watch job, the wide job, the cancelled big job, the evil job and the
        # failing one
        want_ends = 10
        runs = deadline_wait(lambda: (lambda r: len(r) >= want_ends and r)(hook_runs(hook_log)),
                             20, "%d on_complete runs" % want_ends)
        deadline_wait(lambda: "on_complete '%s' for job %s: exit status 3" % (hook, jf)
                      in env.log(), 20, "the failing command to be logged")
        tap.eq(len(runs), want_ends, "on_complete ran once per job end (repeated cancel: none)")
        by_id = {}
        for r in runs:
            by_id.setdefault(r["env"].get("INVITED_JOB_ID"), []).append(r)
        tap.eq(sorted(len(v) for v in by_id.values()), [1, 1, 1, 1, 1, 1, 1, 3],
               "three runs for the job ended three times, one for each other")
        r = by_id[jb][0]
        tap.eq({k: v for k, v in r["env"].items() if k.startswith("INVITED_")},
               {"INVITED_JOB_ID": jb, "INVITED_JOB_NAME": "", "INVITED_JOB_STATE": "cancelled",
                "INVITED_JOB_TOTAL": "1500", "INVITED_JOB_SUCCEEDED": str(1500 - n),
                "INVITED_JOB_FAILED": "0", "INVITED_JOB_CANCELLED": str(n)},
               "the cancelled job's id, name, state and counts")
        r = by_id[j1][0]
        tap.eq((r["env"]["INVITED_JOB_NAME"], r["env"]["INVITED_JOB_STATE"],
                r["env"]["INVITED_JOB_SUCCEEDED"], r["env"]["INVITED_JOB_FAILED"]),
               ("Q4 partners", "completed", "20", "2"), "the completed job's name and counts")
        tap.eq(r["args"], ["two words", "$HOME"],
               "arguments split once at config time, quotes kept, no shell expansion")
        extra = set(r["env"]) - {"PATH", "PWD", "SHLVL", "_", "OLDPWD"} - {
            k for k in r["env"] if k.startswith("INVITED_JOB_")}
        tap.eq(extra, set(), "nothing else in its environment (no CREDENTIALS_DIRECTORY, "
               "no variable of the daemon's)")
        r = by_id[je][0]
        tap.eq(r["env"]["INVITED_JOB_NAME"], "$(touch %s/pwned) `id`; fail-hook" % env.dir,
               "a hostile job name arrives as plain text")
        tap.ok(not os.path.exists(os.path.join(env.dir, "pwned")), "and nothing ran it")
        tap.ok(re.search(r"Job %s completed: 1 succeeded, 0 failed, 0 cancelled of 1" % jf,
                         env.log()), "the journal line of the job's end")

    # cancel while the last rows are in flight: no row was pending, the reply
    # must not claim it was "already" cancelled, and once the row succeeded
    # the job is completed, since no row ended cancelled (issue 10, item 12)
    with Env(sim_args=["--latency-ms", "2000"]) as env:
        p = env.ctl("submit", env.write("slow.csv", portal_file(
            [["slow@partner.example", "", "false", ""]])))
        js = out(p).strip()
        deadline_wait(lambda: env.ctl_json("show", js)[1]["job"]["in_flight"] == 1, 10,
                      "the row to be in flight", step=0.05)
        p = env.ctl("cancel", js)
        tap.ok(p.returncode == 0 and "Job %s: cancelled; no pending rows to cancel" % js
               in err(p), "cancel with only rows in flight says what it did", err(p))
        p, j = env.ctl_json("wait", js)
        tap.ok(j and j["state"] == "completed" and j["succeeded"] == 1 and
               j["cancelled"] == 0, "the row in flight succeeded; the job is completed", j)
        p = env.ctl("cancel", js)
        tap.ok("Job %s: no pending rows to cancel (job is completed)" % js in err(p),
               "then: nothing to cancel, the job is completed", err(p))


if __name__ == "__main__":
    run(main)
