# SPDX-License-Identifier: MIT
"""The control protocol on a raw socket (docs/protocol.md), for tests that
must send what invitectl never would."""
import json
import socket
import struct

MAX_FRAME = 1 << 20


def frame(payload):
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload).encode()
    return struct.pack(">I", len(payload)) + payload


def connect(path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def recv_reply(s):
    """One reply frame as JSON; None when the daemon closed the connection."""
    h = recv_exact(s, 4)
    if h is None:
        return None
    (n,) = struct.unpack(">I", h)
    body = recv_exact(s, n)
    return None if body is None else json.loads(body)


def request(path, req, timeout=10):
    s = connect(path, timeout)
    try:
        s.sendall(frame(req))
        return recv_reply(s)
    finally:
        s.close()
