#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Our own invitation mail (issue 13, SPEC §8 [mail]), the daemon end to end:
issue 13's first acceptance point, sized for the default suite (a job of
18 rows instead of 1,000; the checks are the same).

A PowerShell-style job with row messages and display names is sent through
[mail] via = smtp (the tests' SMTP server, smtpd.py: STARTTLS with a
certificate made here, AUTH, `ca_file` set) and then again via = graph
(the simulator's sendMail, --roles User.Invite.All,Mail.Send). Each time:
every invitation recorded with sendInvitationMessage=false, one mail per
succeeded row whose send flag is on, each matching its row exactly (the
address, its own redeem URL from `show --json`, the display name, the row's
message else the job's, the inviter, the tenant; the body compared whole
with the template filled in here), nothing else sent; a display name
holding "\\r\\nBcc: x@evil.example" adds no recipient and no header; the
row whose send flag is false gets no mail. Also: the submit warning about
dropped customized messages is not given with [mail] and is given
(mentioning [mail]) without it; --check-config refuses bad [mail] sections
with exit 78; a wrong SMTP password fails the mails with the reason and
leaves the rows succeeded; a mailbox Graph refuses (--refusing-mailbox)
fails the mail with Graph's reason; an SMTP 451 (smtpd.py answers it every
time) pauses the mailbox and retries, then fails after max_attempts with
the code; 554 fails at once."""
import base64
import csv
import email
import email.header
import email.policy
import email.utils
import io
import json
import os
import re
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (INVITED, SLOW, Env, make_pki, run,  # noqa: E402
                     skip_all)
import smtpd  # noqa: E402

SENDER = "invitations@contoso.example"
REFUSING = "locked@contoso.example"
TENANT = "contoso.onmicrosoft.com"
USER, PASSWORD = "invited-relay", "relay pass-7Qx"
EVIL = "\r\nBcc: x@evil.example"
JOB_MESSAGE = "The job's own message for rows without one"
SHIPPED_TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "etc",
                                "invitation.txt")
# A template of our own for the smtp run: every value between markers, and
# text that looks like a placeholder but is not one (left as written)
TEST_TEMPLATE = ("Invitation for {email} from {tenant}\n"
                 "NAME<{display_name}>\n"
                 "MESSAGE<{message}>\n"
                 "URL<{redeem_url}>\n"
                 "EMAIL<{email}> INVITER<{inviter}> TENANT<{tenant}> KEEP<{unknown}> <{}>\n")
HEADERS = ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type",
           "Content-Transfer-Encoding"]
PLACEHOLDER = re.compile(r"\{(display_name|email|redeem_url|message|inviter|tenant)\}")


def job_rows(prefix):
    """The job's rows (PowerShell columns): (name, address, message, send)."""
    # MAIL_GUESTS=992 makes the 1,000-row job (the default suite: 10)
    rows = [("Guest %d" % i, "%s%04d@partner.example" % (prefix, i),
             "Hello number %d, welcome aboard" % i, "True")
            for i in range(int(os.environ.get("MAIL_GUESTS", "10")))]
    rows += [
        ("Evil" + EVIL, "%s-evil@partner.example" % prefix, "Evil's message", "True"),
        ("Zoë Ünïcode-Ω “quoted”", "%s-uni@partner.example" % prefix,
         "Grüße, ça va? — Ω", "True"),
        # a value holding a placeholder is not filled in again
        ("{email}", "%s-brace@partner.example" % prefix, "See {redeem_url} {tenant}", "True"),
        ("No Message", "%s-nomsg@partner.example" % prefix, "", "True"),
        ("", "%s-noname@partner.example" % prefix, "A row without a display name", "True"),
        ("A \"quoted\" <name>, with, commas", "%s-quote@partner.example" % prefix,
         "Line one\nLine two", "True"),
        ("Silent Row", "%s-silent@partner.example" % prefix, "Not mailed", "False"),
        ("Last Guest", "%s-last@partner.example" % prefix, "Last one", "True"),
    ]
    return rows


def job_file(rows):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["Name", "InvitedUserEmailAddress", "CustomizedMessageBody",
                "SendInvitationMessage"])
    for r in rows:
        w.writerow(r)
    return out.getvalue().encode("utf-8")


def simple_file(addresses, message="Hello"):
    return job_file([("Guest " + a.split("@")[0], a, message, "True") for a in addresses])


def render(template, values):
    """The template filled in as SPEC §8 says: one pass, the subject on the
    first line (its controls spaces), the body's line ends CR LF."""
    subject_t, _, body_t = template.partition("\n")

    def fill(text):
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1)) or "", text)

    subject = re.sub(r"[\x00-\x1f\x7f]", " ", fill(subject_t))
    body = fill(body_t)
    body = re.sub(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f]", " ", body)
    return subject, re.sub(r"\r\n|\r|\n", "\r\n", body)


def decoded(value):
    return str(email.header.make_header(email.header.decode_header(value)))


def sim_mail(env):
    with urllib.request.urlopen(env.base + "/sim/mail", timeout=10) as r:
        return json.load(r)["mail"]


def stats(env):
    p, s = env.ctl_json("stats")
    return s or {}


def check_config(conf):
    p = subprocess.run([INVITED, "-c", conf, "--check-config"], capture_output=True,
                       timeout=30)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def mail_conf(**keys):
    name = keys.pop("section", "mail")
    return "\n[%s]\n" % name + "".join("%s = %s\n" % kv for kv in keys.items())


def submit(env, name, data, *extra):
    path = env.write(name, data)
    p, job = env.ctl_json("submit", path, *extra)
    if p.returncode != 0 or not job:
        raise RuntimeError("submit failed (%d): %s" % (p.returncode, p.stderr.decode()[-600:]))
    # invitectl prints the daemon's warnings on stderr ("invitectl: warning: ...")
    job["stderr"] = p.stderr.decode("utf-8", "replace")
    return job


def dropped_warning(job):
    """The submit warning about customized messages that Microsoft drops."""
    return [w for w in job["stderr"].splitlines() if "warning" in w and "customized" in w]


def wait_done(tap, env, job_id, what):
    p, done = env.wait_job(job_id, timeout=120 * SLOW)
    tap.eq((p.returncode, done and done["state"]), (0, "completed"), what + ": the job completes",
           ) or tap.diag(env.log()[-3000:])
    p, shown = env.ctl_json("show", str(job_id))
    return shown


def check_job_mail(tap, env, what, rows, shown, mails, mail_of, inviter, template,
                   shown_name=lambda name: name):
    """The one mail per succeeded row with its send flag on, each matching
    its row exactly; nothing else sent. mails: this job's records;
    mail_of(record) -> (recipients, display name, subject, body, problems)."""
    by_addr = {r["email"].lower(): r for r in shown["rows"]}
    addrs = {a.lower() for _, a, _, _ in rows}
    tap.ok(len(shown["rows"]) == len(rows) and all(r["state"] == "succeeded"
                                                   for r in shown["rows"]),
           "%s: every row succeeded (%d rows)" % (what, len(rows)),
           [(r["email"], r["state"]) for r in shown["rows"] if r["state"] != "succeeded"])
    urls = [r.get("invite_redeem_url") for r in shown["rows"]]
    tap.ok(all(urls) and len(set(urls)) == len(urls),
           "%s: each row has its own redeem URL" % what, urls[:4])

    want = {a.lower(): (n, m, s) for n, a, m, s in rows if s == "True"}
    got = {}
    for rec in mails:
        rcpts, name, subject, body, problems = mail_of(rec)
        for a in rcpts:
            got.setdefault(a.lower(), []).append((rcpts, name, subject, body, problems))
    tap.eq(sorted(got), sorted(want),
           "%s: mail went to exactly the rows whose send flag is on (%d), not the silent row"
           % (what, len(want)))
    tap.eq(sum(len(v) for v in got.values()), len(want),
           "%s: one mail each, %d in all (nothing else sent)" % (what, len(want)))
    bad = []
    for addr, (name, message, _) in want.items():
        row = by_addr.get(addr)
        if not row or not got.get(addr):
            bad.append((addr, "no row or no mail"))
            continue
        values = {"display_name": name, "email": row["email"],
                  "redeem_url": row.get("invite_redeem_url"),
                  "message": message or JOB_MESSAGE, "inviter": inviter, "tenant": TENANT}
        subject, body = render(template, values)
        rcpts, gname, gsubject, gbody, problems = got[addr][0]
        if [a.lower() for a in rcpts] != [addr]:
            bad.append((addr, "recipients", rcpts))
        if gname != shown_name(name):
            bad.append((addr, "display name", gname, shown_name(name)))
        if gsubject != subject:
            bad.append((addr, "subject", gsubject, subject))
        if gbody != body:
            bad.append((addr, "body", gbody, body))
        if problems:
            bad.append((addr, problems))
        if row["email"] not in gbody or values["redeem_url"] not in gbody:
            bad.append((addr, "address or redeem URL not in the body"))
    tap.ok(not bad, "%s: each mail matches its row: address, its own redeem URL, display name, "
           "message (the row's, else the job's), inviter, tenant" % what, bad[:3])
    strangers = {a for a in got if a not in addrs}
    tap.ok(not any("evil" in a and a.endswith("@evil.example") for a in got) and not strangers,
           "%s: the display name holding \\r\\nBcc: x@evil.example added no recipient" % what,
           strangers)

    sent = [r for r in shown["rows"] if r["email"].lower() in want]
    tap.ok(all(r["mail"] and r["mail"]["state"] == "sent" and r["mail"]["sent_at"]
               and r["mail"]["error"] is None for r in sent),
           "%s: each mailed row's JSON says mail sent, with sent_at" % what,
           [(r["email"], r["mail"]) for r in sent if not r["mail"] or r["mail"]["state"] != "sent"])
    silent = [r for r in shown["rows"] if r["email"].lower() not in want]
    tap.ok(len(silent) == 1 and all(r["mail"] is None for r in silent),
           "%s: the row with its send flag false has no mail step" % what,
           [(r["email"], r["mail"]) for r in silent])
    j = shown["job"]
    tap.eq((j["mail"], j["mailed"], j["mail_pending"], j["mail_waits_until"]),
           (True, len(want), 0, None),
           "%s: job JSON: mail true, mailed %d, mail_pending 0, no wait" % (what, len(want)))


def check_invitations(tap, env, what, addrs, send):
    rec = [r for r in env.record() if r["address"].lower() in {a.lower() for a in addrs}]
    tap.ok(len(rec) == len(addrs) and {r["address"].lower() for r in rec} ==
           {a.lower() for a in addrs} and all(r["send"] is send for r in rec),
           "%s: each of the %d invitations recorded once, with sendInvitationMessage=%s"
           % (what, len(addrs), str(send).lower()),
           [(r["address"], r["send"]) for r in rec][:6])


def smtp_mail_of(rec):
    """An SMTP record as (envelope recipients, To's display name, subject,
    body, problems with the headers)."""
    problems = []
    raw = base64.b64decode(rec["data_b64"])
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    names = [k for k, _ in msg.items()]
    if names != HEADERS:
        problems.append(("headers", names))
    if rec["mail_from"] != SENDER or rec["auth_user"] != USER or rec["tls"] is not True:
        problems.append(("envelope", rec["mail_from"], rec["auth_user"], rec["tls"]))
    if msg["From"] != SENDER:
        problems.append(("From", msg["From"]))
    to = email.utils.getaddresses([msg["To"]])
    if len(to) != 1:
        problems.append(("To holds more than one address", msg["To"]))
    name = decoded(to[0][0]) if to and to[0][0] else ""
    if to and [a.lower() for a in rec["rcpt_tos"]] != [to[0][1].lower()]:
        problems.append(("To is not the envelope recipient", msg["To"], rec["rcpt_tos"]))
    if msg["Content-Type"] != "text/plain; charset=UTF-8" or \
            msg["Content-Transfer-Encoding"] != "base64":
        problems.append(("content", msg["Content-Type"], msg["Content-Transfer-Encoding"]))
    # every line of the head is one of the 8 headers or a fold of one:
    # a value cannot have started a line of its own
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    stray = [x for x in head if not x[:1] in (b" ", b"\t") and
             x.split(b":", 1)[0].decode("ascii", "replace") not in HEADERS]
    if stray or b"\n" in b"".join(head) or b"\r" in b"".join(head):
        problems.append(("a line of the head that is no header", stray))
    try:
        body = base64.b64decode(msg.get_payload()).decode("utf-8")
    except ValueError as e:
        body = None
        problems.append(("body", str(e)))
    return rec["rcpt_tos"], name, decoded(msg["Subject"]), body, problems


def smtp_name(name):
    """What To shows of a display name: its controls are spaces."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", name)


def graph_mail_of(rec):
    problems = []
    if rec["sender"] != SENDER or rec["cc"] or rec["bcc"] or rec["content_type"] != "Text" or \
            rec["tenant"] != TENANT or rec["save_to_sent_items"] is not False:
        problems.append(("message", rec["sender"], rec["cc"], rec["bcc"], rec["content_type"],
                         rec["tenant"], rec["save_to_sent_items"]))
    return rec["to"] + rec["cc"] + rec["bcc"], rec["name"] or "", rec["subject"], rec["body"], \
        problems


def main(tap):
    python = smtpd.interpreter()
    if not python:
        skip_all("no python3 with aiosmtpd (Debian's python3-aiosmtpd)")
    env = Env(sim_args=["--roles", "User.Invite.All,Mail.Send", "--refusing-mailbox", REFUSING],
              queue={"max_attempts": "3"}, start=False)
    servers = []
    try:
        pki = make_pki(env.dir)
        template = env.write("template.txt", TEST_TEMPLATE.encode())
        pw_file = env.write("smtp-password", (PASSWORD + "\n").encode())
        bad_pw = env.write("smtp-password-wrong", b"not the password\n")
        os.chmod(pw_file, 0o600)
        os.chmod(bad_pw, 0o600)

        # -- --check-config: bad [mail] sections are refused (EX_CONFIG) --
        good = mail_conf(via="smtp", sender=SENDER, smtp_url="smtp://127.0.0.1:25",
                         smtp_user=USER, smtp_password_file=pw_file, template=template)
        cases = [
            ("no sender", mail_conf(via="graph", template=template), "sender is not set"),
            ("smtp without smtp_url", mail_conf(via="smtp", sender=SENDER, template=template),
             "smtp_url"),
            ("[mail NAME] of an unknown tenant",
             mail_conf(section="mail nosuch", sender=SENDER, template=template),
             "no [tenant NAME] section"),
        ]
        for what, text, says in cases:
            env.write_config(text)
            rc, err = check_config(env.conf)
            tap.ok(rc == 78 and says in err and "[mail" in err,
                   "--check-config refuses [mail] with %s: exit 78, says '%s'" % (what, says),
                   "exit %d: %s" % (rc, err[-400:]))
        env.write_config(good)
        rc, err = check_config(env.conf)
        tap.eq(rc, 0, "--check-config takes a complete [mail] via = smtp section") or \
            tap.diag(err[-400:])

        # -- without [mail]: the warning says how [mail] solves it --
        env.write_config()
        env.start_daemon()
        plain = ["plain%d@partner.example" % i for i in range(2)]
        job = submit(env, "plain.csv", simple_file(plain, "A message Graph drops"))
        warns = dropped_warning(job)
        tap.ok(len(warns) == 1 and "[mail]" in warns[0],
               "without [mail] submit warns that the customized message is dropped, "
               "mentioning [mail]", job["stderr"])
        shown = wait_done(tap, env, job["id"], "without [mail]")
        tap.eq((shown["job"]["mail"], shown["job"]["mailed"]), (False, 0),
               "without [mail]: job JSON mail false, mailed 0")
        check_invitations(tap, env, "without [mail]", plain, True)
        env.stop_daemon()

        # -- via = smtp: STARTTLS, AUTH, ca_file --
        soft, hard = "busy@partner.example", "gone@partner.example"
        srv = smtpd.Server(env.dir, ["--cert", pki["cert"], "--key", pki["key"], "--user", USER,
                                     "--password-file", pw_file,
                                     "--reply", "data:%s=451" % soft,
                                     "--reply", "data:%s=554" % hard], python=python)
        servers.append(srv)
        smtp = dict(via="smtp", sender=SENDER, smtp_url="smtp://127.0.0.1:%d" % srv.port,
                    smtp_user=USER, smtp_password_file=pw_file, template=template, rate="50",
                    ca_file=pki["ca"])
        env.write_config(mail_conf(**smtp))
        env.start_daemon()
        rows = job_rows("s")
        job = submit(env, "smtp.csv", job_file(rows), "--message", JOB_MESSAGE)
        tap.ok(not dropped_warning(job) and "Submitted job" in job["stderr"],
               "with [mail] submit gives no warning about dropped customized messages",
               job["stderr"])
        shown = wait_done(tap, env, job["id"], "smtp")
        check_invitations(tap, env, "smtp", [a for _, a, _, _ in rows], False)
        inviter = shown["job"]["submitted_by"]["user"]
        check_job_mail(tap, env, "smtp", rows, shown, srv.record(), smtp_mail_of, inviter,
                       TEST_TEMPLATE, smtp_name)
        evil = [r for r in srv.record() if r["rcpt_tos"] == ["s-evil@partner.example"]]
        tap.ok(len(evil) == 1 and [k for k, _ in evil[0]["headers"]] == HEADERS,
               "smtp: the evil display name's mail has the 8 headers and one recipient only",
               evil and (evil[0]["rcpt_tos"], evil[0]["headers"]))
        s = stats(env)
        tap.eq((s.get("mails_sent_total"), s.get("mails_failed_total")), (len(rows) - 1, 0),
               "smtp: stats mails_sent_total %d, mails_failed_total 0" % (len(rows) - 1))
        # the human view: a MAILED column, the Mailed count
        p = env.ctl("show", str(job["id"]))
        out = p.stdout.decode(errors="replace")
        head = [l for l in out.splitlines() if l.startswith("LINE")]
        tap.ok(p.returncode == 0 and head and head[0].split()[:6] ==
               ["LINE", "EMAIL", "STATE", "ATTEMPTS", "MAILED", "RESULT"] and
               re.search(r"^Mailed:\s+%d$" % (len(rows) - 1), out, re.M) and
               re.search(r"s-silent@partner\.example\s+succeeded\s+\d+\s+-\s", out),
               "smtp: show has a MAILED column (sent, '-' for the send-false row) and Mailed",
               out[-1200:])
        # invitectl check: connect, STARTTLS and AUTH, no message taken
        before = len(srv.record())
        p, chk = env.ctl_json("check")
        m = (chk or {}).get("mail") or {}
        tap.ok(p.returncode == 0 and m.get("via") == "smtp" and m.get("ok") is True and
               len(srv.record()) == before,
               "smtp: invitectl check says the mail path works, and sends nothing", chk)

        # 451 every time: paused, retried, failed after max_attempts (3);
        # 554: failed at once; both rows stay succeeded
        before = len(srv.record())
        job = submit(env, "refused.csv", simple_file([soft, hard]))
        shown = wait_done(tap, env, job["id"], "smtp 451/554")
        by = {r["email"]: r for r in shown["rows"]}
        tap.ok(all(by[a]["state"] == "succeeded" for a in (soft, hard)),
               "smtp 451/554: both rows' invitations stay succeeded",
               [(a, by[a]["state"]) for a in by])
        with env.db() as db:
            att = dict(db.execute("SELECT r.email, st.attempts FROM steps st JOIN rows r ON "
                                  "r.id = st.row_id WHERE st.kind = 3 AND r.job_id = ?",
                                  (job["id"],)).fetchall())
        m = by[hard]["mail"] or {}
        tap.ok(m.get("state") == "failed" and "5.1.1" in (m.get("error") or "") and
               att.get(hard) == 1,
               "smtp 554: that mail failed at once (1 attempt) with the code: %s" % m.get("error"),
               (m, att))
        m = by[soft]["mail"] or {}
        tap.ok(m.get("state") == "failed" and "4.2.0" in (m.get("error") or "") and
               att.get(soft) == 3,
               "smtp 451: that mail was retried and failed after max_attempts (3 attempts) "
               "with the code: %s" % m.get("error"), (m, att))
        paused = re.findall(r"throttled invitation mails .*\(HTTP 451\): pausing them for (\d+) ms",
                            env.log())
        tap.ok(len(paused) >= 2, "smtp 451: the mailbox paused before each retry (%s ms)"
               % ", ".join(paused), env.log()[-1500:])
        tap.eq((shown["job"]["mailed"], shown["job"]["mail_pending"], len(srv.record()) - before),
               (0, 0, 0), "smtp 451/554: nothing mailed, nothing pending, nothing taken")
        s = stats(env)
        tap.eq(s.get("mails_failed_total"), 2, "smtp 451/554: stats mails_failed_total 2")
        env.stop_daemon()

        # a wrong password: the mails fail with the reason, the rows succeed
        env.write_config(mail_conf(**dict(smtp, smtp_password_file=bad_pw)))
        env.start_daemon()
        denied = ["denied%d@partner.example" % i for i in range(2)]
        before = len(srv.record())
        job = submit(env, "denied.csv", simple_file(denied))
        shown = wait_done(tap, env, job["id"], "smtp wrong password")
        p, chk = env.ctl_json("check")
        m = (chk or {}).get("mail") or {}
        tap.ok(m.get("ok") is False and re.search(r"535|5\.7\.8|auth", m.get("error") or "", re.I)
               and chk.get("all_ok") is False,
               "smtp wrong password: invitectl check says the mail path fails: %s"
               % m.get("error"), chk)
        tap.ok(all(r["state"] == "succeeded" and r["mail"]["state"] == "failed" and
                   re.search(r"535|5\.7\.8|auth", r["mail"]["error"] or "", re.I)
                   for r in shown["rows"]) and len(srv.record()) == before,
               "smtp wrong password: rows succeeded, mails failed with the reason (%s), "
               "none taken" % (shown["rows"][0]["mail"] or {}).get("error"),
               [(r["state"], r["mail"]) for r in shown["rows"]])
        tap.ok(PASSWORD not in env.log() and "not the password" not in env.log(),
               "smtp: no password in the daemon's log")
        env.stop_daemon()
        srv.stop()
        servers.remove(srv)

        # -- via = graph: sendMail with the tenant's token, the shipped template --
        env.write_config(mail_conf(via="graph", sender=SENDER, template=SHIPPED_TEMPLATE,
                                   rate="50"))
        env.start_daemon()
        rows = job_rows("g")
        job = submit(env, "graph.csv", job_file(rows), "--message", JOB_MESSAGE)
        tap.ok(not dropped_warning(job) and "Submitted job" in job["stderr"],
               "graph: with [mail] no warning about dropped customized messages",
               job["stderr"])
        shown = wait_done(tap, env, job["id"], "graph")
        check_invitations(tap, env, "graph", [a for _, a, _, _ in rows], False)
        addrs = {a.lower() for _, a, _, _ in rows}
        mails = [m for m in sim_mail(env) if {a.lower() for a in m["to"] + m["cc"] + m["bcc"]} &
                 addrs or "evil.example" in json.dumps(m)]
        with open(SHIPPED_TEMPLATE, encoding="utf-8") as f:
            shipped = f.read()
        check_job_mail(tap, env, "graph", rows, shown, mails, graph_mail_of, inviter, shipped)
        tap.eq(len(sim_mail(env)), len(mails), "graph: the simulator took no other mail")
        s = stats(env)
        tap.eq((s.get("mails_sent_total"), s.get("mails_failed_total")), (len(rows) - 1, 0),
               "graph: stats mails_sent_total %d, mails_failed_total 0" % (len(rows) - 1))
        env.stop_daemon()

        # a mailbox Graph refuses (no access policy for it): 403 ErrorAccessDenied
        env.write_config(mail_conf(via="graph", sender=REFUSING, template=SHIPPED_TEMPLATE,
                                   rate="50"))
        env.start_daemon()
        refused = ["refused%d@partner.example" % i for i in range(2)]
        before = len(sim_mail(env))
        job = submit(env, "refused-graph.csv", simple_file(refused))
        shown = wait_done(tap, env, job["id"], "graph refusing mailbox")
        tap.ok(all(r["state"] == "succeeded" and r["mail"]["state"] == "failed" and
                   "ErrorAccessDenied" in (r["mail"]["error"] or "") for r in shown["rows"]) and
               len(sim_mail(env)) == before,
               "graph refusing mailbox: rows succeeded, mails failed with Graph's reason (%s)"
               % (shown["rows"][0]["mail"] or {}).get("error"),
               [(r["state"], r["mail"]) for r in shown["rows"]])
        tap.eq(stats(env).get("mails_failed_total"), 2,
               "graph refusing mailbox: stats mails_failed_total 2")
        tap.ok("refused to send" in env.log() and "Mail.Send" in env.log(),
               "graph refusing mailbox: the log says the app needs Mail.Send for that mailbox",
               env.log()[-1500:])
    finally:
        for srv in servers:
            srv.stop()
        env.close()


if __name__ == "__main__":
    run(main)
