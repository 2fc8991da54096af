#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Issue 13's third acceptance point: kill -9 of the daemon 10 times during
the mail step of a 5,000-row job sent through [mail] via = smtp (the tests'
SMTP server, smtpd.py: STARTTLS, AUTH), restarting it each time. Every row
ends succeeded with its mail sent, each with the row's own redeem URL; no
mail lost (every address in the SMTP server's record); an address gets a
second mail only from a kill (the mails in flight when it struck are sent
again: at most 4 a mailbox, MAIL_CONCURRENCY, so at most 4 per kill), none
while the daemon lived.

The moments are random points of mail progress (messages in the SMTP
record, drawn with CHAOS_SEED), plus a couple of kills right after a
restart, while the daemon re-sends the mails the last one left leased.
CHAOS_ROWS scales the job (default 5,000)."""
import base64
import email
import email.policy
import os
import signal
import sys
import time

from chaos import Env, RecordCounter, addresses, deadline_wait, rng, run, seed, verify

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import SLOW, make_pki, portal_file, skip_all  # noqa: E402
import smtpd  # noqa: E402

N = int(os.environ.get("CHAOS_ROWS", "5000"))
KILLS = 10
IN_FLIGHT = 4  # MAIL_CONCURRENCY: mails on their way at once, per mailbox
SENDER = "invitations@contoso.example"
USER, PASSWORD = "invited-relay", "chaos relay pw-31"
TEMPLATE = "Invitation for {email}\nURL<{redeem_url}>\n"


def mail_url(rec):
    """The redeem URL in an SMTP record's body (our template's URL<...>)."""
    msg = email.message_from_bytes(base64.b64decode(rec["data_b64"]), policy=email.policy.compat32)
    body = base64.b64decode(msg.get_payload()).decode("utf-8", "replace")
    start = body.find("URL<")
    return body[start + 4:body.find(">", start)] if start >= 0 else None


def main(tap):
    python = smtpd.interpreter()
    if not python:
        skip_all("no python3 with aiosmtpd (Debian's python3-aiosmtpd)")
    r = rng(seed())
    queue = {"rate": "2000", "burst": "100", "concurrency": "32", "max_attempts": "8",
             "request_timeout": "5"}
    with Env(queue=queue, start=False) as env:
        pki = make_pki(env.dir)
        pw = env.write("smtp-password", (PASSWORD + "\n").encode())
        os.chmod(pw, 0o600)
        template = env.write("template.txt", TEMPLATE.encode())
        srv = smtpd.Server(env.dir, ["--cert", pki["cert"], "--key", pki["key"], "--user", USER,
                                     "--password-file", pw], python=python)
        try:
            env.write_config("\n[mail]\nvia = smtp\nsender = %s\nsmtp_url = smtp://127.0.0.1:%d\n"
                             "smtp_user = %s\nsmtp_password_file = %s\ntemplate = %s\n"
                             "rate = 200\ndaily_limit = 100000\nca_file = %s\n"
                             % (SENDER, srv.port, USER, pw, template, pki["ca"]))
            env.start_daemon()
            emails = addresses("km", N)
            path = env.write("job.csv", portal_file([[e, "", "true", "Hi"] for e in emails]))
            p, job = env.ctl_json("submit", path)
            if p.returncode != 0 or not job:
                raise RuntimeError("submit failed: %s" % p.stderr.decode()[-500:])
            job = job["id"]
            mails = RecordCounter(env)
            mails.path = srv.record_path
            t0 = time.monotonic()
            points = sorted(r.sample(range(N // 50, N - N // 20), KILLS))
            early = set(r.sample(range(KILLS), 2))
            kills = []  # wall-clock ms of each kill
            for i, point in enumerate(points):
                if env.daemon is None:
                    env.start_daemon()
                if i not in early:
                    deadline_wait(lambda: mails.count() >= point or env.daemon.poll() is not None,
                                  300 * SLOW, "%d mails before kill %d" % (point, i + 1),
                                  step=0.005)
                tap.ok(env.daemon.poll() is None, "kill %d: the daemon is running (at %d mails "
                       "of %d)" % (i + 1, mails.count(), N), env.log()[-2000:])
                env.stop_daemon(signal.SIGKILL)
                kills.append(time.time() * 1000)
            tap.diag("%d kills; %d mails recorded when the last one struck, %.0f s in"
                     % (len(kills), mails.count(), time.monotonic() - t0))

            env.start_daemon()
            p, done = env.wait_job(job, timeout=600 * SLOW)
            elapsed = time.monotonic() - t0
            tap.eq((p.returncode, done and done["state"], done and done["mailed"],
                    done and done["mail_pending"]), (0, "completed", N, 0),
                   "after %d kills and restarts the job completes with %d mails sent"
                   % (len(kills), N))
            # the invitations: every row succeeded, as the simulator recorded
            verify(tap, env, job, emails, 32 * len(kills), "kill -9 x%d during mail" % len(kills))

            with env.db() as db:
                steps = db.execute("SELECT st.state, COUNT(*) FROM steps st JOIN rows r ON "
                                   "r.id = st.row_id WHERE st.kind = 3 AND r.job_id = ? "
                                   "GROUP BY st.state", (job,)).fetchall()
                unsent = db.execute("SELECT COUNT(*) FROM rows WHERE job_id = ? AND "
                                    "mail_sent_at IS NULL", (job,)).fetchone()[0]
                urls = dict(db.execute("SELECT lower(email), invite_redeem_url FROM rows "
                                       "WHERE job_id = ?", (job,)).fetchall())
            tap.eq((dict(steps), unsent), ({1: N}, 0),
                   "every row's mail step is sent (state 1) and has its sent_at")

            rec = srv.record()
            by_addr = {}
            for m in rec:
                for a in m["rcpt_tos"]:
                    by_addr.setdefault(a.lower(), []).append(m)
            want = {e.lower() for e in emails}
            lost = sorted(want - set(by_addr))
            tap.ok(not lost, "no mail lost: every one of the %d addresses got its mail" % N,
                   lost[:10])
            strangers = sorted(set(by_addr) - want)
            tap.ok(not strangers, "no mail to an address not in the file", strangers[:10])
            wrong = [a for a, ms in by_addr.items() if a in want and
                     any(mail_url(m) != urls.get(a) for m in ms)]
            tap.ok(not wrong, "each mail carries its row's own redeem URL (%d do not)"
                   % len(wrong), wrong[:5])

            # duplicates by cause: a kill between the two copies, or none
            per_kill = [0] * len(kills)
            live = []
            for a, ms in by_addr.items():
                ts = sorted(m["t_ms"] for m in ms)
                for t1, t2 in zip(ts, ts[1:]):
                    across = [k for k, at in enumerate(kills) if t1 <= at <= t2]
                    if across:
                        per_kill[across[0]] += 1
                    else:
                        live.append((a, t1, t2))
            dups = sum(len(ms) - 1 for ms in by_addr.values())
            tap.ok(not live, "no mail sent twice while the daemon lived (%d were)" % len(live),
                   live[:10])
            tap.ok(max(per_kill) <= IN_FLIGHT and dups <= IN_FLIGHT * len(kills),
                   "duplicates within the in-flight bound: %d in all (at most %d), at most %d "
                   "per kill (per kill: %s)" % (dups, IN_FLIGHT * len(kills), max(per_kill),
                                                per_kill))
            tap.diag("mail chaos: rows %d, kills %d, mails recorded %d, duplicate mails %d "
                     "(per kill %s, bound %d per kill), run %.0f s"
                     % (N, len(kills), len(rec), dups, per_kill, IN_FLIGHT, elapsed))
        finally:
            srv.stop()


if __name__ == "__main__":
    run(main)
