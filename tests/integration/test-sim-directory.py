#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The simulator's directory, groups and mail (issues 12 and 13; GRAPH.md §6,
§7): lookups with GRAPH.md §6's exact filter and $select (anything else 400),
seeded members and guests told apart, guests made by invitations readable
after the replication delay (404 before, then 204), already a member (400
with Graph's message), groups that refuse guests, unknown groups, acceptance
after a delay and by share, reads by id and "id in (...)", $batch of GETs and
$ref items, sendMail (202, 400 for a malformed body, 429 with Retry-After by
its own limit, a mailbox that refuses), missing roles (403), read 429s with
x-ms-throttle-scope, all per tenant. No daemon: plain HTTP from Python, a
few seconds."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from harness import SANITIZER_REPORT, SIM, deadline_wait, run

APP = "11111111-2222-3333-4444-555555555555"
A, B, C = "contoso.example", "fabrikam.example", "northwind.example"
G1, G2 = "aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002"
G_REFUSING = "aaaaaaaa-0000-4000-8000-00000000000f"
G_C = "cccccccc-0000-4000-8000-000000000001"
REDIRECT = "https://myapps.microsoft.com"
SELECT = "id,userType,mail,externalUserState,externalUserStateChangeDateTime"
FULL_ROLES = "User.Invite.All,User.Read.All,GroupMember.ReadWrite.All,Mail.Send"
ALREADY = ("One or more added object references already exist for the following "
           "modified properties: 'members'.")
REPLICATION_MS, ACCEPT_MS = 1000, 1800


def lookup_filter(address):
    a = address.replace("'", "''")
    return ("mail eq '%s' or otherMails/any(x:x eq '%s') or proxyAddresses/any(x:x eq 'smtp:%s') "
            "or userPrincipalName eq '%s'" % (a, a, a, a))


def query(**kw):
    return urllib.parse.urlencode({"$" + k: v for k, v in kw.items()}, quote_via=urllib.parse.quote)


class Sim:
    def __init__(self, d, args):
        self.port_file = os.path.join(d, "sim.port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log = open(os.path.join(d, "sim.log"), "ab")
        self.proc = subprocess.Popen([SIM, "--port", "0", "--port-file", self.port_file] + args,
                                     stdout=self.log, stderr=self.log)
        deadline_wait(lambda: self.proc.poll() is not None or
                      (os.path.exists(self.port_file) and open(self.port_file).read().strip()),
                      10, "the simulator's port file")
        if self.proc.poll() is not None:
            raise RuntimeError("the simulator exited with %d" % self.proc.returncode)
        self.base = "http://127.0.0.1:%d" % int(open(self.port_file).read())

    def call(self, method, path, body=None, token=None, headers=None):
        """(status, headers, parsed JSON body or None)"""
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw, status, hdrs = r.read(), r.status, r.headers
        except urllib.error.HTTPError as e:
            raw, status, hdrs = e.read(), e.code, e.headers
        return status, hdrs, json.loads(raw) if raw else None

    def token(self, tenant, secret):
        form = {"grant_type": "client_credentials", "client_id": APP, "client_secret": secret,
                "scope": "https://graph.microsoft.com/.default"}
        st, _, j = self.call("POST", "/%s/oauth2/v2.0/token" % tenant,
                             urllib.parse.urlencode(form).encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert st == 200, j
        return j["access_token"]

    def lookup(self, token, address, prefix=""):
        return self.call("GET", prefix + "/v1.0/users?" + query(filter=lookup_filter(address),
                                                               select=SELECT), token=token)

    def user(self, token, uid, select="id,externalUserState,externalUserStateChangeDateTime"):
        return self.call("GET", "/v1.0/users/%s?%s" % (uid, query(select=select)), token=token)

    def add(self, token, group, uid, host="https://graph.microsoft.com"):
        return self.call("POST", "/v1.0/groups/%s/members/$ref" % group,
                         {"@odata.id": "%s/v1.0/directoryObjects/%s" % (host, uid)}, token=token)

    def invite(self, token, address):
        return self.call("POST", "/v1.0/invitations",
                         {"invitedUserEmailAddress": address, "inviteRedirectUrl": REDIRECT},
                         token=token)

    def mail(self, token, sender, body):
        return self.call("POST", "/v1.0/users/%s/sendMail" % urllib.parse.quote(sender), body,
                         token=token)

    def sim(self, what, tenant=None):
        return self.call("GET", "/sim/%s" % what + ("?tenant=" + tenant if tenant else ""))[2]

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def message(to="ann@partner.example", name="Ann Guest", subject="You are invited",
            content="Hello Ann: https://login.microsoftonline.com/redeem?rd=1", ctype="Text"):
    return {"message": {"subject": subject, "body": {"contentType": ctype, "content": content},
                        "toRecipients": [{"emailAddress": {"address": to, "name": name}}]},
            "saveToSentItems": False}


def one(j):
    return (j or {}).get("value", [None])[0] if (j or {}).get("value") else None


def main(tap):
    t0 = time.monotonic()
    d = tempfile.mkdtemp(prefix="invited-sim-directory-")
    sim = None
    try:
        directory = os.path.join(d, "directory.json")
        with open(directory, "w") as f:
            json.dump([{"mail": "o'brien@partner.example", "userType": "Guest",
                        "externalUserState": "Accepted"},
                       {"mail": "Boss@Contoso.example", "userType": "Member",
                        "externalUserState": None}], f)
        tenants = os.path.join(d, "tenants.json")
        with open(tenants, "w") as f:
            json.dump([{"tenant": B, "client_secret": "sB", "roles": ["User.Invite.All"]},
                       {"tenant": C, "client_secret": "sC", "roles": FULL_ROLES.split(","),
                        "seed_members": 1, "member_pattern": "c{n}@northwind.example",
                        "groups": [G_C], "read_rate": 3, "read_period_ms": 60000,
                        "throttle_scope": "Tenant_Application"}], f)
        members_rec, mail_rec = os.path.join(d, "members.jsonl"), os.path.join(d, "mail.jsonl")
        sim = Sim(d, ["--tenant", A, "--client-secret", "sA", "--roles", FULL_ROLES,
                      "--tenants-file", tenants, "--seed", "7",
                      "--seed-members", "3", "--seed-guests", "2",
                      "--member-pattern", "user{n}@partner.example",
                      "--guest-pattern", "user{n}@partner.example",
                      "--directory", directory, "--group", G1, "--group", G2,
                      "--guest-refusing-group", G_REFUSING,
                      "--replication-delay-ms", str(REPLICATION_MS),
                      "--accept-after-ms", str(ACCEPT_MS),
                      "--mail-rate", "3", "--mail-period", "60",
                      "--refusing-mailbox", "Blocked@Contoso.example",
                      "--members-record", members_rec, "--mail-record", mail_rec])
        ta, tb, tc = sim.token(A, "sA"), sim.token(B, "sB"), sim.token(C, "sC")

        # -- lookups: members and guests told apart --
        st, _, j = sim.lookup(ta, "user2@partner.example")
        u = one(j)
        tap.ok(st == 200 and u and u["userType"] == "Member" and u["externalUserState"] is None
               and u["mail"] == "user2@partner.example" and sorted(u) == sorted(SELECT.split(",")),
               "lookup of a seeded member: 200, userType Member, externalUserState null, "
               "exactly the selected properties", j)
        member_id = u and u["id"]
        st, _, j = sim.lookup(ta, "USER4@partner.example")
        u = one(j)
        tap.ok(st == 200 and u and u["userType"] == "Guest" and
               u["externalUserState"] == "PendingAcceptance" and u["externalUserStateChangeDateTime"],
               "a seeded guest (numbered after the members, any case): Guest, PendingAcceptance", j)
        st, _, j = sim.lookup(ta, "o'brien@partner.example")
        tap.ok(st == 200 and one(j) and one(j)["externalUserState"] == "Accepted",
               "a --directory guest with a quote (doubled in the filter): Accepted", j)
        st, _, j = sim.lookup(ta, "boss@contoso.example")
        tap.ok(st == 200 and one(j) and one(j)["mail"] == "Boss@Contoso.example" and
               one(j)["userType"] == "Member", "a --directory member, found case-insensitively", j)
        st, _, j = sim.lookup(ta, "nobody@partner.example")
        tap.eq((st, j and j.get("value")), (200, []), "an unknown address: 200 with an empty value")
        st, _, j = sim.lookup(ta, "user1@partner.example", prefix="/" + A)
        tap.ok(st == 200 and one(j), "the same under the tenant's own prefix /%s/v1.0" % A)

        # -- the filter and $select are checked exactly --
        a = "user1@partner.example"
        bad = [("the UPN clause left out", lookup_filter(a).rsplit(" or ", 1)[0], SELECT),
               ("two addresses", lookup_filter(a).replace("smtp:" + a, "smtp:x@partner.example"), SELECT),
               ("a quote not doubled", lookup_filter("o'brien@partner.example").replace("''", "'"), SELECT),
               ("another operator", lookup_filter(a).replace("mail eq", "mail ne"), SELECT),
               ("another $select", lookup_filter(a), "id,mail"),
               ("no $select", lookup_filter(a), None)]
        for what, flt, sel in bad:
            q = {"filter": flt}
            if sel:
                q["select"] = sel
            st, _, j = sim.call("GET", "/v1.0/users?" + query(**q), token=ta)
            err = (j or {}).get("error", {})
            tap.ok(st == 400 and err.get("code") == "BadRequest" and
                   ("filter" in err.get("message", "") or "$select" in err.get("message", "")),
                   "%s: 400 BadRequest saying why" % what, j)
        st, _, j = sim.call("GET", "/v1.0/users?" + query(select=SELECT), token=ta)
        tap.eq(st, 400, "GET /users without a $filter: 400")

        # -- an invitation makes a guest, readable after the replication delay --
        st, _, inv = sim.invite(ta, "New.Guest@partner.example")
        gid = (inv or {}).get("invitedUser", {}).get("id")
        created = time.time()
        st1, _, j1 = sim.lookup(ta, "new.guest@partner.example")
        st2, _, j2 = sim.user(ta, gid)
        st3, _, j3 = sim.add(ta, G1, gid)
        early = time.time() - created < REPLICATION_MS / 1000.0
        tap.ok(st == 201 and early and (st1, j1["value"]) == (200, []) and st2 == 404 and
               (j2["error"]["code"], st3, j3["error"]["code"]) ==
               ("Request_ResourceNotFound", 404, "Request_ResourceNotFound"),
               "just invited: lookup empty, GET /users/{id} 404, member addition 404 "
               "Request_ResourceNotFound", [j1, j2, j3])
        deadline_wait(lambda: one(sim.lookup(ta, "new.guest@partner.example")[2]), 10,
                      "the new guest to replicate")
        waited = time.time() - created
        tap.ok(waited >= REPLICATION_MS / 1000.0 - 0.05,
               "the guest is readable after the replication delay (%.2f s)" % waited)
        st, _, j = sim.lookup(ta, "new.guest@partner.example")
        tap.ok(one(j)["id"] == gid and one(j)["userType"] == "Guest" and
               one(j)["externalUserState"] == "PendingAcceptance",
               "then: the invitation's user id, Guest, PendingAcceptance", j)
        st, _, j = sim.add(ta, G1, gid)
        tap.eq((st, j), (204, None), "then the member addition: 204, no body")
        st, _, j = sim.add(ta, G1, gid)
        tap.eq((st, (j or {}).get("error", {}).get("message")), (400, ALREADY),
               "again: 400 with Graph's already-a-member message")
        st, _, j = sim.add(ta, G2, gid, host=sim.base)
        tap.eq(st, 204, "@odata.id under the simulator's own URL is good too")
        st, _, j = sim.add(ta, G2, member_id, host=sim.base + "/" + A)
        tap.eq(st, 204, "... also with a tenant prefix (a member into G2)")
        st, _, j = sim.call("POST", "/v1.0/groups/%s/members/$ref" % G1,
                            {"@odata.id": "https://evil.example/v1.0/directoryObjects/" + gid},
                            token=ta)
        tap.eq((st, j["error"]["code"]), (400, "Request_BadRequest"),
               "@odata.id of another host: 400 Request_BadRequest")
        st, _, j = sim.call("POST", "/v1.0/groups/%s/members/$ref" % G1, {"id": gid}, token=ta)
        tap.eq(st, 400, "a body without @odata.id: 400")
        st, _, j = sim.add(ta, "aaaaaaaa-0000-4000-8000-0000000000ee", gid)
        tap.eq((st, j["error"]["code"]), (404, "Request_ResourceNotFound"), "an unknown group: 404")
        st, _, j = sim.add(ta, G_REFUSING, gid)
        tap.ok(st == 400 and "guest" in j["error"]["message"].lower(),
               "a group that refuses guests: 400 saying so for a guest", j)
        st, _, j = sim.add(ta, G_REFUSING, member_id)
        tap.eq(st, 204, "... and takes a member")
        rec = [json.loads(l) for l in open(members_rec)]
        tap.eq(sorted((r["group"], r["user_id"], r["user_type"], r["tenant"]) for r in rec),
               sorted([(G1, gid, "Guest", A), (G2, gid, "Guest", A), (G2, member_id, "Member", A),
                       (G_REFUSING, member_id, "Member", A)]),
               "the members record: one line per addition, with the tenant")
        tap.eq(len(sim.sim("members", A)["members"]), 4, "/sim/members?tenant= agrees")

        # -- acceptance after --accept-after-ms --
        st, _, j = sim.user(ta, gid)
        tap.ok(st == 200 and j["externalUserState"] == "PendingAcceptance" and
               j["@odata.context"].endswith("/$entity") and "userType" not in j,
               "GET /users/{id}?$select=...: PendingAcceptance before the delay", j)
        deadline_wait(lambda: sim.user(ta, gid)[2]["externalUserState"] == "Accepted", 10,
                      "the guest to accept")
        accepted = time.time() - created
        st, _, j = sim.user(ta, gid)
        tap.ok(accepted >= ACCEPT_MS / 1000.0 - 0.05 and j["externalUserStateChangeDateTime"]
               .endswith("Z"), "the guest accepts after --accept-after-ms (%.2f s), with "
               "externalUserStateChangeDateTime %s" % (accepted, j["externalUserStateChangeDateTime"]))
        ids = [gid, member_id, "00000000-0000-4000-8000-000000000000"]
        st, _, j = sim.call("GET", "/v1.0/users?" + query(
            filter="id in (%s)" % ",".join("'%s'" % i for i in ids),
            select="id,externalUserState"), token=ta)
        tap.eq((st, sorted((u["id"], u["externalUserState"]) for u in j.get("value", []))),
               (200, sorted([(gid, "Accepted"), (member_id, None)])),
               "$filter=id in (...): the known users, with externalUserState")
        st, _, j = sim.call("GET", "/v1.0/users?" + query(
            filter="id in (%s)" % ",".join("'%s'" % gid for _ in range(16)), select="id"), token=ta)
        tap.eq(st, 400, "an 'in' of 16 values: 400 (at most 15)")
        st, _, j = sim.user(ta, gid, select="id,nosuch")
        tap.eq(st, 400, "an unknown $select property: 400")

        # -- $batch of GETs and $ref items --
        reqs = [{"id": "1", "method": "GET", "url": "/users?" + query(
                    filter=lookup_filter("user1@partner.example"), select=SELECT)},
                {"id": "2", "method": "GET", "url": "users/%s?$select=id,externalUserState" % gid},
                {"id": "3", "method": "GET", "url": "/users/00000000-0000-4000-8000-000000000000"},
                {"id": "4", "method": "POST", "url": "/groups/%s/members/$ref" % G1,
                 "headers": {"Content-Type": "application/json"},
                 "body": {"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/" + member_id}},
                {"id": "5", "method": "POST", "url": "/groups/%s/members/$ref" % G1,
                 "headers": {"Content-Type": "application/json"},
                 "body": {"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/" + gid}},
                {"id": "6", "method": "POST", "url": "/invitations",
                 "headers": {"Content-Type": "application/json"},
                 "body": {"invitedUserEmailAddress": "b1@partner.example", "inviteRedirectUrl": REDIRECT}}]
        st, _, j = sim.call("POST", "/v1.0/$batch", {"requests": reqs}, token=ta)
        got = {r["id"]: r for r in (j or {}).get("responses", [])}
        tap.eq((st, {k: v["status"] for k, v in got.items()}),
               (200, {"1": 200, "2": 200, "3": 404, "4": 204, "5": 400, "6": 201}),
               "$batch: lookup 200, GET by id 200, unknown id 404, $ref 204, again 400, invitation 201")
        tap.ok(got.get("1", {}).get("body", {}).get("value", [{}])[0].get("userType") == "Member"
               and got.get("2", {}).get("body", {}).get("externalUserState") == "Accepted"
               and got.get("5", {}).get("body", {}).get("error", {}).get("message") == ALREADY,
               "... each item's body as the single request's", got)

        # -- sendMail --
        st, hdrs, j = sim.mail(ta, "inv@contoso.example", message())
        tap.eq((st, j), (202, None), "sendMail: 202 Accepted, no body")
        mail = sim.sim("mail", A)["mail"]
        tap.eq([(m["tenant"], m["sender"], m["to"], m["name"], m["subject"], m["content_type"],
                 m["body"], m["save_to_sent_items"]) for m in mail],
               [(A, "inv@contoso.example", ["ann@partner.example"], "Ann Guest", "You are invited",
                 "Text", "Hello Ann: https://login.microsoftonline.com/redeem?rd=1", False)],
               "/sim/mail records sender, to, name, subject and body")
        tap.eq([json.loads(l) for l in open(mail_rec)], mail, "the --mail-record file agrees")
        m_nomsg = {"saveToSentItems": False}
        m_type = message(ctype="Markdown")
        m_norcpt = message()
        del m_norcpt["message"]["toRecipients"]
        m_badaddr = message(to="not an address")
        m_unknown = message()
        m_unknown["message"]["colour"] = "red"
        m_save = message()
        m_save["saveToSentItems"] = "no"
        for what, body in (("no message", m_nomsg), ("contentType Markdown", m_type),
                           ("no toRecipients", m_norcpt), ("a bad recipient address", m_badaddr),
                           ("an unknown property", m_unknown), ("saveToSentItems a string", m_save)):
            st, _, j = sim.mail(ta, "inv@contoso.example", body)
            tap.ok(st == 400 and j["error"]["message"], "sendMail with %s: 400 (%s: %s)"
                   % (what, j["error"]["code"], j["error"]["message"][:70]))
        st, _, j = sim.call("POST", "/v1.0/users/inv@contoso.example/sendMail", b"{not json",
                            token=ta, headers={"Content-Type": "application/json"})
        tap.eq(st, 400, "sendMail with a body that is not JSON: 400")
        st, _, j = sim.mail(ta, "blocked@contoso.example", message())
        tap.eq((st, j["error"]["code"]), (403, "ErrorAccessDenied"),
               "a --refusing-mailbox sender: 403 ErrorAccessDenied")
        st1 = sim.mail(ta, "inv@contoso.example", message(to="b@partner.example"))[0]
        st2 = sim.mail(ta, "inv@contoso.example", message(to="c@partner.example"))[0]
        st, hdrs, j = sim.mail(ta, "inv@contoso.example", message(to="d@partner.example"))
        tap.ok((st1, st2, st) == (202, 202, 429) and int(hdrs.get("Retry-After", "0")) >= 1,
               "--mail-rate 3 --mail-period 60: the 4th message is 429 with Retry-After %s"
               % hdrs.get("Retry-After"), (st1, st2, st, j))
        tap.eq([m["to"][0] for m in sim.sim("mail", A)["mail"]],
               ["ann@partner.example", "b@partner.example", "c@partner.example"],
               "refused and throttled messages are not recorded")

        # -- roles: B has only User.Invite.All --
        st1, _, j1 = sim.lookup(tb, "user1@partner.example")
        st2, _, j2 = sim.add(tb, G1, gid)
        st3, _, j3 = sim.mail(tb, "inv@fabrikam.example", message())
        tap.eq([(st1, j1["error"]["code"]), (st2, j2["error"]["code"]), (st3, j3["error"]["code"])],
               [(403, "Authorization_RequestDenied"), (403, "Authorization_RequestDenied"),
                (403, "ErrorAccessDenied")],
               "without User.Read.All, GroupMember.ReadWrite.All, Mail.Send: 403 for each")
        tap.eq(sim.invite(tb, "x@partner.example")[0], 201, "... while its invitations still go")

        # -- per tenant: C has its own directory, groups and read limit --
        st, _, j = sim.lookup(tc, "user1@partner.example")
        tap.eq((st, j["value"]), (200, []), "C does not see A's users")
        st, _, j = sim.lookup(ta, "c1@northwind.example")
        tap.eq(j["value"], [], "A does not see C's")
        st, _, j = sim.lookup(tc, "c1@northwind.example")
        tap.ok(st == 200 and one(j) and one(j)["userType"] == "Member", "C sees its own member")
        st3 = sim.user(tc, one(j)["id"])[0]
        st, hdrs, j = sim.lookup(tc, "c1@northwind.example")
        tap.eq((st3, st), (200, 429), "C's read_rate 3 (per minute): the 3rd read 200, the 4th 429")
        tap.ok(int(hdrs.get("Retry-After", "0")) >= 1 and
               hdrs.get("x-ms-throttle-scope") == "Tenant_Application/Read/%s/%s" % (APP, C) and
               hdrs.get("x-ms-throttle-information") == "ReadLimitExceeded",
               "... with Retry-After %s and x-ms-throttle-scope %s"
               % (hdrs.get("Retry-After"), hdrs.get("x-ms-throttle-scope")))
        st, _, j = sim.call("POST", "/v1.0/$batch", {"requests": [reqs[0]]}, token=tc)
        item = (j or {}).get("responses", [{}])[0]
        tap.ok(item.get("status") == 429 and item["headers"].get("Retry-After") and
               item["headers"].get("x-ms-throttle-scope", "").startswith("Tenant_Application/Read/"),
               "a $batch read item in C: 429 with its own Retry-After and scope", item)
        st, _, j = sim.lookup(ta, "user1@partner.example")
        tap.eq(st, 200, "A's reads are not limited by C's")
        st, _, j = sim.add(tc, G1, member_id)
        tap.eq(st, 404, "A's group does not exist in C")
        st, _, inv = sim.invite(tc, "new.guest@partner.example")
        cid = inv["invitedUser"]["id"]
        deadline_wait(lambda: any(u["tenant"] == C and u["readable"] for u in sim.sim("users", C)["users"]
                                  if u["mail"] == "new.guest@partner.example"), 10, "C's guest")
        tap.eq(sim.add(tc, G_C, cid)[0], 204, "the same address invited in C is C's guest, "
               "added to C's group")
        tap.eq([(m["tenant"], m["group"]) for m in sim.sim("members", C)["members"]], [(C, G_C)],
               "/sim/members?tenant=C holds only C's addition")
        tap.eq(len(sim.sim("members")["members"]), 6, "/sim/members without a tenant: every tenant's")
        st, _, j = sim.call("GET", "/%s/v1.0/users?%s" % (C, query(
            filter=lookup_filter("c1@northwind.example"), select=SELECT)), token=ta)
        tap.eq(st, 401, "A's token at C's prefixed URL: 401")
        tap.eq(sim.stop(), 0, "the simulator exits 0")
        sim = None

        # -- shares: first additions answered 404, guests that accept --
        sim = Sim(d, ["--roles", FULL_ROLES, "--seed", "11", "--seed-members", "40",
                      "--seed-guests", "40", "--group", G1, "--member-404-share", "0.3",
                      "--accept-after-ms", "0", "--accept-share", "0.5"])
        t = sim.token("any.example", "s")
        users = sim.sim("users")["users"]
        members = [u["id"] for u in users if u["userType"] == "Member"]
        first = [sim.add(t, G1, m)[0] for m in members]
        second = [sim.add(t, G1, m)[0] if s == 404 else None for m, s in zip(members, first)]
        n404 = first.count(404)
        tap.ok(4 <= n404 <= 20 and first.count(204) == 40 - n404 and
               all(s == 204 for s in second if s is not None),
               "--member-404-share 0.3: %d of 40 first additions 404, each then 204" % n404)
        accepted = sum(1 for u in sim.sim("users")["users"]
                       if u["userType"] == "Guest" and u["externalUserState"] == "Accepted")
        tap.ok(8 <= accepted <= 32, "--accept-share 0.5: %d of 40 guests accepted" % accepted)
        tap.eq(sim.stop(), 0, "exits 0")
        sim = None

        # -- bad settings stop the simulator --
        with open(directory, "w") as f:
            json.dump([{"mail": "a@b.example", "userType": "Admin"}], f)
        for what, args, needle in (
                ("a --directory entry of another userType", ["--directory", directory], "userType"),
                ("a pattern without {n}", ["--member-pattern", "x@y.example"], "member-pattern"),
                ("a share above 1", ["--member-404-share", "5"], "member-404-share")):
            p = subprocess.run([SIM, "--port", "0"] + args, capture_output=True, text=True,
                               timeout=10)
            tap.ok(p.returncode == 1 and needle in p.stderr and
                   not SANITIZER_REPORT.search(p.stderr),
                   "%s is refused at start (exit %d)" % (what, p.returncode), p.stderr)
        tap.diag("elapsed %.2f s" % (time.monotonic() - t0))
    finally:
        if sim:
            sim.stop()
        log = os.path.join(d, "sim.log")
        if os.path.exists(log) and SANITIZER_REPORT.search(open(log, errors="replace").read()):
            tap.ok(False, "no sanitizer report in the simulator's log", open(log).read()[-3000:])
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run(main)
