#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A reload reads [mail]'s template again (SPEC §8 [mail]; invited.conf(5)
`template`): an admin who edits the invitation text and runs `invitectl
reload` gets the new text in the next mails, as a reload reads the
credentials again; a template the daemon cannot use fails the reload with
the file and the reason, and the running one stays.

Against the simulator's sendMail (via = graph): job 1 mailed with template
A; the file rewritten (B) and reloaded: job 2 mailed with B; the file made
invalid (an empty subject line): reload refused naming the template, job 3
still mailed with B."""
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOW, Env, deadline_wait, portal_file, run  # noqa: E402

SENDER = "invitations@contoso.example"
ROLES = ["--roles", "User.Invite.All,Mail.Send"]
TEMPLATE = "Your invitation from {tenant}\n%s\n\nOpen {redeem_url} to accept, {email}.\n"


def sim_mail(env):
    with urllib.request.urlopen(env.base + "/sim/mail", timeout=10) as r:
        return json.load(r)["mail"]


def mails_to(env, emails):
    want = {e.lower() for e in emails}
    return [m for m in sim_mail(env) if m["to"] and m["to"][0].lower() in want]


def job(env, tap, name, emails):
    path = env.write(name + ".csv", portal_file([[e, "", "true", ""] for e in emails]))
    p, j = env.ctl_json("submit", path)
    tap.ok(p.returncode == 0 and j, "%s: submit" % name, p.stderr.decode()[-400:])
    try:
        return deadline_wait(lambda: (lambda m: len(m) == len(emails) and m)(mails_to(env, emails)),
                             30 * SLOW, "%s: its mails" % name, step=0.1)
    except TimeoutError as e:
        tap.ok(False, "%s: every row mailed" % name, "%s\n%s" % (e, env.log()[-1500:]))
        return mails_to(env, emails)


def main(tap):
    with Env(sim_args=ROLES, start=False) as env:
        tpl = env.write("invitation.txt", (TEMPLATE % "TEMPLATE-A").encode())
        env.write_config("\n[mail]\nvia = graph\nsender = %s\ntemplate = %s\nrate = 50\n"
                         % (SENDER, tpl))
        env.start_daemon()
        first = ["mr-a%d@partner.example" % i for i in range(3)]
        got = job(env, tap, "job 1", first)
        tap.ok(len(got) == 3 and all("TEMPLATE-A" in m["body"] for m in got),
               "job 1: 3 mails with template A", [m["body"][:80] for m in got])

        env.write("invitation.txt", (TEMPLATE % "TEMPLATE-B").encode())
        p, r = env.ctl_json("reload")
        tap.ok(p.returncode == 0, "reload after editing the template", p.stderr.decode()[-400:])
        second = ["mr-b%d@partner.example" % i for i in range(3)]
        got = job(env, tap, "job 2", second)
        tap.ok(len(got) == 3 and all("TEMPLATE-B" in m["body"] and "TEMPLATE-A" not in m["body"]
                                     for m in got),
               "job 2, after the reload: 3 mails with the edited template B",
               [m["body"][:80] for m in got])

        env.write("invitation.txt", b"\nno subject line\n{redeem_url}\n")
        p = env.ctl("reload")
        err = p.stderr.decode()
        tap.ok(p.returncode != 0 and tpl in err and "subject" in err and "nothing changed" in err,
               "reload with a template the daemon cannot use is refused, naming the file and "
               "why (exit %d)" % p.returncode, err[-400:])
        third = ["mr-c%d@partner.example" % i for i in range(3)]
        got = job(env, tap, "job 3", third)
        tap.ok(len(got) == 3 and all("TEMPLATE-B" in m["body"] for m in got),
               "job 3, after the refused reload: the running template B stays",
               [m["body"][:80] for m in got])

    # with on_complete: the SMTP password read at reload must be a file the
    # command was kept from at start, like a Graph credential
    with Env(sim_args=ROLES, start=False, daemon={"on_complete": "/bin/true"}) as env:
        tpl = env.write("invitation.txt", (TEMPLATE % "T").encode())
        pw1 = env.write("smtp-password", b"first\n")
        os.chmod(pw1, 0o600)
        mail = ("\n[mail]\nvia = smtp\nsender = %s\nsmtp_url = smtp://127.0.0.1:9\n"
                "smtp_user = relay\nsmtp_password_file = %%s\ntemplate = %s\n" % (SENDER, tpl))
        env.write_config(mail % pw1)
        env.start_daemon()
        pw2 = env.write("smtp-password-2", b"second\n")
        os.chmod(pw2, 0o600)
        env.write_config(mail % pw2)
        p = env.ctl("reload")
        err = p.stderr.decode()
        tap.ok(p.returncode != 0 and "was not hidden from on_complete" in err and pw2 in err,
               "reload refuses an SMTP password file on_complete could read (exit %d)"
               % p.returncode, err[-400:])


if __name__ == "__main__":
    run(main)
