#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of the fuzz targets into tests/fuzz/corpus/TARGET/
from the test fixtures and the simulator's documented answers. Run it after
changing a fixture or an input layout (the files are committed, so a fuzz run
and the replay tests need no generation step):

    tests/fuzz/seeds.py
"""
import glob
import hashlib
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")


def write(target, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fixtures():
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*.csv")) +
                       glob.glob(os.path.join(FIXTURES, "bad", "*.csv"))):
        with open(path, "rb") as f:
            data = f.read()
        if len(data) <= 64 * 1024:
            yield data


PORTAL_HEADER = (b"Email address to invite [inviteeEmail] Required,"
                 b"Redirection url [inviteRedirectURL] Required,"
                 b"Send invitation message (true or false) [sendEmail],"
                 b"Customized invitation message [customizedMessageBody]")


def frame(payload):
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload, separators=(",", ":")).encode()
    return struct.pack(">I", len(payload)) + payload


def main():
    # csv: limits byte, two split-point bytes, the file
    for i, data in enumerate(fixtures()):
        write("csv", bytes([0, (len(data) // 2) >> 8 & 255, (len(data) // 2) & 255]) + data)
        write("csv", bytes([(i & 3) | 4 * (i % 4), 0, 17]) + data)
    # csv: the groups column (SPEC §8) in both formats and with ';'
    g1, g2 = b"0f8fad5b-d9cb-469f-a165-70867728950e", b"7C9E6679-7425-40DE-944B-E07FC1F90AE7"
    for data in [
        b"version:v1.0\n" + PORTAL_HEADER + b",Groups (object ids) [groups]\n"
        b"a@b.example,,,," + g1 + b" " + g2 + b"\nc@d.example,,,,\"" + g1 + b";\n" + g2 +
        b"\"\ne@f.example,,,,not-a-guid\ng@h.example,,,,\" ; \"\n",
        b"Name,InvitedUserEmailAddress,Groups\r\nAnn,ann@x.example," + g2 + b";" + g1 + b";" + g2 +
        b"\r\nBob,bob@x.example,\x1b[31m\xe2\x80\xae\r\n",
        b"version:v1.0;;;;\n" + PORTAL_HEADER.replace(b",", b";") + b";[groups]\n"
        b"a@b.example;;;;" + g1 + b" " + g2 + b"\nc@d.example;;;;\"" + g1 + b";" + g2 + b"\"\n",
    ]:
        write("csv", bytes([0, (len(data) // 2) >> 8 & 255, (len(data) // 2) & 255]) + data)
        write("csv", bytes([3 | 4 * 3, 0, 29]) + data)

    # proto: chunk-size byte, then what a client sends
    reqs = [{"op": "status"}, {"op": "stats"}, {"op": "jobs", "all": True},
            {"op": "job", "id": 1}, {"op": "rows", "id": 1, "cursor": 5, "limit": 10,
                                     "state": "failed", "input": True},
            {"op": "wait", "id": 3}, {"op": "cancel", "id": 2}, {"op": "retry", "id": 2}]
    for r in reqs:
        write("proto", b"\x07" + frame(r))
    upload = frame({"op": "submit", "name": "Q4", "filename": "g.csv", "send_email": False,
                    "redirect_url": "https://x.example", "message": "hi", "cc": "a@b.example"})
    for data in list(fixtures())[:4]:
        write("proto", b"\x1f" + upload + frame(data) + frame(b""))
    write("proto", b"\x80" + b"\xff\xff\xff\xff")
    write("proto", b"\x03" + frame(b'{"op":"status","op":"jobs"}') + frame(b"[1,2]"))

    # config
    write("config", b"""[graph]
tenant = contoso.onmicrosoft.com
client_id = 00000000-0000-0000-0000-000000000000
client_secret_file = /etc/invited/client-secret
authority_url = https://login.microsoftonline.com
graph_url = https://graph.microsoft.com/

[queue]
rate = 2.5
burst = 10
concurrency = 16
max_attempts = 8
request_timeout = 0.5

[daemon]
socket = /run/invited/invited.sock
database = /var/lib/invited/invited.db
allow_group = invite
max_upload_bytes = 67108864
max_rows = 1000000
""")
    write("config", b"# comment\n; another\n[Queue]\nrate=1e3\n[daemon]\nmax_rows = 0x10\n")
    write("config", b"[graph]\ntenant = a b\n")
    write("config", b"[nope]\nx = 1\n")
    # SPEC §8: the onboarding keys, [mail] and [mail NAME]
    write("config", b"[graph]\nclient_id = c\n[queue]\nlookup = yes\ntrack_days = 3\n"
          b"track_interval = 1.5h\nmax_resends = 2\nlookup_rate = 7.5\n[tenant a]\n"
          b"tenant = a.example\ntrack_interval = 2d\n[mail]\nvia = smtp\n"
          b"sender = invitations@contoso.example\nsmtp_url = smtps://relay.example:465\n"
          b"smtp_user = u\nrate = 0.5\ndaily_limit = 300\n[mail a]\nvia = graph\n"
          b"sender = x@a.example\ntemplate = /etc/invited/invitation.txt\n")

    # graph: two status bytes (status = 100 + n % 500), flags byte, body
    def st(code):
        return struct.pack(">H", code - 100)
    user = {"id": "7b1c4b3a-1111-2222-3333-444455556666", "invitedUserEmailAddress": "a@b.example",
            "inviteRedeemUrl": "https://login.microsoftonline.com/redeem?x=1",
            "invitedUser": {"id": "5f124bef-ce03-53b8-aaa7-a05c6377f6c4"},
            "status": "PendingAcceptance"}
    write("graph", st(201) + b"\x02" + json.dumps(user).encode() + b"\0https://x.example\0Ann\0hi\0en-US\0c@d.example")
    for code, ecode, msg in [(400, "BadRequest", "bad address"), (401, "InvalidAuthenticationToken",
                             "Access token is empty."),
                             (403, "Forbidden", "Invitations are blocked for this directory due "
                              "to suspicious activity. Please contact Microsoft support."),
                             (429, "TooManyRequests", "Too many requests"),
                             (500, "UnknownError", "Unable to find target address"),
                             (503, "ServiceNotAvailable", "later"), (504, "GatewayTimeout", "")]:
        body = {"error": {"code": ecode, "message": msg,
                          "innerError": {"date": "2026-11-28T23:33:39", "request-id": "r-1"}}}
        write("graph", st(code) + b"\x11" + json.dumps(body).encode())
    write("graph", b"\xff\x02\x04")
    # graph, directory answers (GRAPH.md §6, the simulator's): lookups, a
    # read by id, group additions, a $batch of reads; then the pieces an
    # address (a quote to double), a graph URL and ids
    member = {"id": "m-1", "userType": "Member", "mail": "o'neil@b.example",
              "externalUserState": None, "externalUserStateChangeDateTime": None}
    guest = {"id": "g-1", "userType": "Guest", "mail": "o'neil@b.example",
             "externalUserState": "PendingAcceptance",
             "externalUserStateChangeDateTime": "2026-12-01T10:00:00Z"}
    ctx = "https://graph.microsoft.com/v1.0/$metadata#users(id,userType,mail)"
    pieces = b"\0o'neil+x@b.example\0https://graph.microsoft.com/\0g-1\0m-1"
    for doc in [{"@odata.context": ctx, "value": []},
                {"@odata.context": ctx, "value": [member, guest]},
                dict(guest, **{"@odata.context": ctx + "/$entity"})]:
        write("graph", st(200) + b"\x02" + json.dumps(doc).encode() + pieces)
    write("graph", st(204) + b"\x00" + pieces[1:])
    for code, ecode, msg in [(400, "Request_BadRequest", "One or more added object references "
                              "already exist for the following modified properties: 'members'."),
                             (400, "Request_BadRequest", "Guest users cannot be added to this "
                              "group: its settings do not allow guests (AllowToAddGuests is false)."),
                             (403, "Authorization_RequestDenied",
                              "Insufficient privileges to complete the operation."),
                             (404, "Request_ResourceNotFound", "Resource 'g-1' does not exist or "
                              "one of its queried reference-property objects are not present.")]:
        body = {"error": {"code": ecode, "message": msg,
                          "innerError": {"date": "2026-12-01T10:00:00", "request-id": "r-2"}}}
        write("graph", st(code) + b"\x02" + json.dumps(body).encode() + pieces)
    batch = {"responses": [
        {"id": "2", "status": 404, "headers": {},
         "body": {"error": {"code": "Request_ResourceNotFound", "message": "gone"}}},
        {"id": "3", "status": 429, "headers": {"Retry-After": "5",
                                               "x-ms-throttle-scope": "Tenant/Read//tid",
                                               "x-ms-throttle-information": "ReadLimitExceeded"},
         "body": {"error": {"code": "TooManyRequests", "message": "slow"}}},
        {"id": "1", "status": 200, "headers": {}, "body": dict(guest, externalUserState="Accepted")}]}
    write("graph", st(200) + b"\x00" + json.dumps(batch).encode() + pieces)

    # auth: two status-selector bytes (< 0x8000: 200,400,401,403,429,500,503,0), body
    write("auth", b"\x00\x00" + json.dumps({"token_type": "Bearer", "expires_in": 3599,
                                            "ext_expires_in": 3599,
                                            "access_token": "x" * 48}).encode())
    write("auth", b"\x00\x00" + b'{"access_token":"abc","expires_in":"3600"}')
    write("auth", b"\x00\x02" + json.dumps({"error": "invalid_client",
                                            "error_description": "AADSTS7000215: Invalid client secret",
                                            "error_codes": [7000215]}).encode())
    write("auth", b"\x00\x06" + b'{"error":"temporarily_unavailable"}')


if __name__ == "__main__":
    main()
