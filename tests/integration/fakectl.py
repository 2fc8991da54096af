# SPDX-License-Identifier: MIT
"""A fake invited for client tests: it listens on a Unix socket in a temporary
directory, speaks the frame protocol of docs/protocol.md (tests/chaos/wire.py's
framing) and answers each request with what the test put in `replies`:
op -> a reply dict, or a function(request) -> reply dict. Uploads (`submit`,
`validate`) are read to their empty frame first; the bytes are kept with the
request. Every request is recorded in `requests`, so a test can see exactly
what invitectl sent. A Unix socket only (no network); every wait has a
timeout.

    with FakeDaemon({"tenants": {"ok": True, "tenants": [...]}}) as fake:
        subprocess.run([INVITECTL, "-s", fake.sock, "tenants"])
        fake.requests  # [{"op": "tenants"}]
"""
import json
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "chaos"))
import wire  # noqa: E402  (the framing, shared with the chaos tests)

UPLOADS = {"submit", "validate"}


class FakeDaemon:
    def __init__(self, replies=None):
        self.replies = dict(replies or {})
        self.requests = []
        self.dir = tempfile.mkdtemp(prefix="invited-fake.")
        self.sock = os.path.join(self.dir, "invited.sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.sock)
        self.server.listen(16)
        self.server.settimeout(0.2)
        self.stopping = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def reply_for(self, req):
        r = self.replies.get(req.get("op"))
        if callable(r):
            return r(req)
        if r is None:
            return {"ok": False, "error": {"code": "usage",
                                           "message": "unknown op '%s'" % req.get("op")}}
        return r

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn):
        conn.settimeout(10)
        try:
            while True:
                h = wire.recv_exact(conn, 4)
                if h is None:
                    return
                (n,) = struct.unpack(">I", h)
                body = wire.recv_exact(conn, n)
                if body is None:
                    return
                req = json.loads(body)
                if req.get("op") in UPLOADS:
                    data = b""
                    while True:
                        h = wire.recv_exact(conn, 4)
                        if h is None:
                            return
                        (n,) = struct.unpack(">I", h)
                        if n == 0:
                            break
                        chunk = wire.recv_exact(conn, n)
                        if chunk is None:
                            return
                        data += chunk
                    req = dict(req, _data=data)
                with self.lock:
                    self.requests.append(req)
                conn.sendall(wire.frame(self.reply_for(req)))
        except (OSError, ValueError):
            return
        finally:
            conn.close()

    def ops(self):
        """The ops received so far, in order."""
        with self.lock:
            return [r.get("op") for r in self.requests]

    def last(self, op):
        """The last request with this op, or None."""
        with self.lock:
            for r in reversed(self.requests):
                if r.get("op") == op:
                    return r
        return None

    def clear(self):
        with self.lock:
            self.requests = []

    def close(self):
        self.stopping = True
        self.server.close()
        self.thread.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
