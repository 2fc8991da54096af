#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Our own invitation mail (issue 13): the mailbox's pacing and its daily
limit, kept across a restart, and resend with [mail].

Issue 13's second acceptance point, scaled down tenfold to stay fast:
`rate = 10` and `daily_limit = 30` with a 100-row job (the issue's 300 of
1,000). Exactly 30 mails go out, the job's `mail_waits_until` says when
mail goes on (the window's end, a day after the first mail), fresh
invitations stop at most one day's budget ahead of their mail (succeeded -
mailed <= daily_limit, sampled while the job runs), and after a restart the
rolling count (table mail_log) is still 30: nothing more is sent, no fresh
invitation either. Then, in a fresh directory, `resend` with [mail]
invites again with sendInvitationMessage=false and sends our mail again
with the new redeem URL. Against the simulator's sendMail (via = graph)."""
import json
import os
import sys
import time
import urllib.request
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOW, Env, deadline_wait, portal_file, run  # noqa: E402

SENDER = "invitations@contoso.example"
TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "etc",
                        "invitation.txt")
ROLES = ["--roles", "User.Invite.All,Mail.Send"]
# MAIL_LIMITS=1000,10,300 runs the issue's own figures (the default suite: a tenth)
N, RATE, DAILY = (int(x) for x in os.environ.get("MAIL_LIMITS", "100,10,30").split(","))


def mail_section(rate, daily):
    return ("\n[mail]\nvia = graph\nsender = %s\ntemplate = %s\nrate = %s\ndaily_limit = %d\n"
            % (SENDER, TEMPLATE, rate, daily))


def sim_mail(env):
    with urllib.request.urlopen(env.base + "/sim/mail", timeout=10) as r:
        return json.load(r)["mail"]


def submit(env, name, emails):
    path = env.write(name, portal_file([[e, "", "true", "Welcome, " + e] for e in emails]))
    p, job = env.ctl_json("submit", path)
    if p.returncode != 0 or not job:
        raise RuntimeError("submit failed (%d): %s" % (p.returncode, p.stderr.decode()[-600:]))
    return job["id"]


def job_counts(env, job_id):
    with env.db() as db:
        return db.execute("SELECT succeeded, mailed, mail_pending, failed FROM jobs WHERE id = ?",
                          (job_id,)).fetchone()


def show(env, job_id):
    p, shown = env.ctl_json("show", str(job_id))
    return shown


def rfc3339(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def limits(tap):
    with Env(sim_args=ROLES, start=False) as env:
        env.write_config(mail_section(RATE, DAILY))
        env.start_daemon()
        emails = ["lim%03d@partner.example" % i for i in range(N)]
        t0 = time.time()
        job = submit(env, "limits.csv", emails)

        # while it runs: invitations never more than a day's budget ahead
        ahead = []

        def sample():
            c = job_counts(env, job)
            ahead.append(c[0] - c[1])
            return c[1] >= DAILY and show(env, job)["job"]["mail_waits_until"]
        deadline_wait(sample, 60 * SLOW, "%d mails and mail_waits_until" % DAILY, step=0.01)
        t_spent = time.time()
        # a while longer (bounded): mail stays stopped, invitations too
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            sample()
            time.sleep(0.02)
        succeeded, mailed, pending, failed = job_counts(env, job)
        shown = show(env, job)
        mails = sim_mail(env)
        tap.diag("rate %d/s, daily_limit %d: %d mails in %.1f s; succeeded %d, mailed %d, "
                 "mail_pending %d; the most invitations ahead of their mail: %d (%d samples)"
                 % (RATE, DAILY, len(mails), t_spent - t0, succeeded, mailed, pending,
                    max(ahead), len(ahead)))
        tap.eq((len(mails), mailed, shown["job"]["mailed"]), (DAILY, DAILY, DAILY),
               "exactly daily_limit = %d mails sent of %d rows" % (DAILY, N))
        tap.ok(t_spent - t0 >= (DAILY - 1) / RATE * 0.9,
               "the mails went at rate = %d/s: %d took %.1f s (at least %.1f s)"
               % (RATE, DAILY, t_spent - t0, (DAILY - 1) / RATE * 0.9))
        until = shown["job"]["mail_waits_until"]
        first = min(m["t_ms"] for m in mails) / 1000.0
        tap.ok(until and abs(rfc3339(until) - (first + 86400)) < 5,
               "job JSON mail_waits_until is the window's end, a day after the first mail: %s"
               % until, (until, first))
        tap.ok(shown["job"]["state"] != "completed" and failed == 0,
               "the job is not completed while its mail waits (state %s)" % shown["job"]["state"])
        tap.ok(max(ahead) <= DAILY,
               "invitations ran at most daily_limit ahead of their mail while running "
               "(succeeded - mailed at most %d, limit %d)" % (max(ahead), DAILY),
               "samples over the limit: %s" % [a for a in ahead if a > DAILY][:10])
        tap.ok(DAILY < succeeded <= 2 * DAILY and pending == succeeded - mailed,
               "fresh invitations stopped a day's budget ahead: %d succeeded, %d of them "
               "waiting for mail, %d rows not invited" % (succeeded, pending, N - succeeded))
        tap.eq(len(env.record()), succeeded, "the simulator saw only those %d invitations"
               % succeeded)
        by_to = {}
        for m in mails:
            by_to.setdefault(m["to"][0].lower(), []).append(m)
        tap.ok(len(by_to) == DAILY and set(by_to) <= set(emails),
               "the %d mails went to %d distinct rows of the job" % (len(mails), len(by_to)))

        # a restart keeps the count: nothing more sent, no fresh invitation
        env.stop_daemon()
        with env.db() as db:
            logged = db.execute("SELECT COUNT(*) FROM mail_log").fetchone()[0]
        tap.eq(logged, DAILY, "the mailbox's rolling count is stored: mail_log holds %d" % DAILY)
        record_before = len(env.record())
        env.start_daemon()
        until2 = deadline_wait(lambda: show(env, job)["job"]["mail_waits_until"], 20 * SLOW,
                               "mail_waits_until after the restart", step=0.05)
        end = time.monotonic() + 2.0  # 20 mails' worth at rate = 10
        while time.monotonic() < end:
            time.sleep(0.05)
        succeeded2, mailed2, pending2, _ = job_counts(env, job)
        p, st = env.ctl_json("stats")
        tap.eq((len(sim_mail(env)), mailed2, (st or {}).get("mails_sent_total")), (DAILY, DAILY, 0),
               "after a restart: still %d mails sent, none more (the count was kept)" % DAILY)
        tap.ok(abs(rfc3339(until2) - rfc3339(until)) < 1,
               "after a restart mail_waits_until is the same window's end: %s" % until2)
        tap.eq((len(env.record()), succeeded2), (record_before, succeeded),
               "after a restart no fresh invitation went out (%d)" % succeeded)


def resend(tap):
    with Env(sim_args=ROLES, start=False) as env:
        env.write_config(mail_section(50, 1000))
        env.start_daemon()
        emails = ["again%d@partner.example" % i for i in range(4)]
        job = submit(env, "resend.csv", emails)
        p, done = env.wait_job(job, timeout=60 * SLOW)
        tap.eq((p.returncode, done and done["state"], done and done["mailed"]),
               (0, "completed", len(emails)), "resend: the job completes with its %d mails"
               % len(emails))
        first = {r["email"]: r["invite_redeem_url"] for r in show(env, job)["rows"]}
        p = env.ctl("resend", str(job))
        said = (p.stdout + p.stderr).decode("utf-8", "replace").strip()
        tap.eq(p.returncode, 0, "resend: invitectl resend %d: %s" % (job, said))

        def settled():
            sh = show(env, job)
            mails = [m for m in sim_mail(env) if m["to"][0] in emails]
            return len(mails) >= 2 * len(emails) and sh["job"]["mail_pending"] == 0 and \
                all(r["mail"]["state"] == "sent" for r in sh["rows"]) and (sh, mails)
        sh, mails = deadline_wait(settled, 60 * SLOW, "the resend's mails", step=0.05)
        rec = env.record()
        tap.ok(len(rec) == 2 * len(emails) and all(r["send"] is False for r in rec) and
               sorted(r["address"] for r in rec) == sorted(emails * 2),
               "resend: each guest invited again, with sendInvitationMessage=false",
               [(r["address"], r["send"]) for r in rec])
        bad = []
        for r in sh["rows"]:
            got = sorted((m for m in mails if m["to"] == [r["email"]]), key=lambda m: m["t_ms"])
            new = r["invite_redeem_url"]
            if r.get("resends") != 1 or not new or new == first[r["email"]]:
                bad.append((r["email"], "row", r.get("resends"), new))
            elif len(got) != 2 or first[r["email"]] not in got[0]["body"] or \
                    new not in got[1]["body"] or first[r["email"]] in got[1]["body"]:
                bad.append((r["email"], "mails", [g["body"][:60] for g in got]))
        tap.ok(not bad, "resend: each row resent once, our mail sent again with the new redeem "
               "URL (and the first mail had the first)", bad[:3])
        tap.eq(len(mails), 2 * len(emails), "resend: two mails per guest, nothing else")


def main(tap):
    resend(tap)
    limits(tap)


if __name__ == "__main__":
    run(main)
