# SPDX-License-Identifier: MIT
"""Integration-test harness: the real invited, the Graph simulator and the
real invitectl, in a fresh temporary directory, all on 127.0.0.1.

Every wait has a deadline; nothing sleeps for a fixed time to "let things
settle". Output is TAP (meson protocol 'tap').
"""
import csv
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

INVITED = os.environ.get("INVITED", "invited")
INVITECTL = os.environ.get("INVITECTL", "invitectl")
SIM = os.environ.get("INVITED_SIM", "invited-sim")
# A command the daemon runs under (e.g. "valgrind --error-exitcode=99 ..."):
# the valgrind test setup sets it; waits for the daemon are then longer.
WRAPPER = shlex.split(os.environ.get("INVITED_WRAPPER", ""))
SLOW = 10 if WRAPPER else 1

# What a sanitizer or valgrind writes when it finds something. Env.close()
# looks for these in the daemon's and the simulator's logs; run() turns each
# finding into a failed TAP point, so a report fails the test even when the
# process that made it did not change anything the test checks.
SANITIZER_REPORT = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)|"
    r"runtime error: |WARNING: ThreadSanitizer|"
    r"ERROR SUMMARY: [1-9][0-9]* errors|definitely lost: [1-9]|indirectly lost: [1-9]")
FINDINGS = []
FIXTURES = os.environ.get("FIXTURES", os.path.join(os.path.dirname(__file__), "..", "fixtures"))

PORTAL_HEADER = ("Email address to invite [inviteeEmail] Required,"
                 "Redirection url [inviteRedirectURL] Required,"
                 "Send invitation message (true or false) [sendEmail],"
                 "Customized invitation message [customizedMessageBody]")


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc, diag=None):
        self.n += 1
        print(("ok %d - %s" if cond else "not ok %d - %s") % (self.n, desc), flush=True)
        if not cond:
            self.failed += 1
            if diag is not None:
                for line in str(diag).splitlines()[:40]:
                    print("#   " + line, flush=True)
        return cond

    def eq(self, got, want, desc):
        return self.ok(got == want, desc, "got:  %r\nwant: %r" % (got, want))

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line, flush=True)

    def done(self):
        print("1..%d" % self.n, flush=True)
        return 1 if self.failed else 0


def deadline_wait(cond, timeout, what, step=0.02):
    """Poll cond() until true or the deadline passes; raise on timeout."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(step)


def user_gid(name):
    import pwd
    return str(pwd.getpwnam(name).pw_gid)


def portal_file(rows, version_row=True, extra_header=""):
    """rows: list of lists of cells after the header. Returns bytes."""
    out = io.StringIO()
    if version_row:
        out.write("version:v1.0,,,\n")
    out.write(PORTAL_HEADER + extra_header + "\n")
    out.write("Example:    someone@something.com,https://myapplications.microsoft.com,true,Hello\n")
    w = csv.writer(out, lineterminator="\n")
    for r in rows:
        w.writerow(r)
    return out.getvalue().encode("utf-8")


class Env:
    """One simulator + one daemon in a temporary directory."""

    def __init__(self, sim_args=(), queue=None, daemon=None, start=True, graph=None,
                 daemon_env=None, sim_tls=None, front=None, directory=None):
        self.dir = tempfile.mkdtemp(prefix="invited-it.")
        self.sock = os.path.join(self.dir, "invited.sock")
        self.db_path = os.path.join(self.dir, "invited.db")
        self.record_path = os.path.join(self.dir, "record.jsonl")
        self.secret_path = os.path.join(self.dir, "client-secret")
        with open(self.secret_path, "w") as f:
            f.write("sim-secret-value\n")
        os.chmod(self.secret_path, 0o600)
        self.sim = None
        self.daemon = None
        self.sim_args = list(sim_args)
        # the simulator's directory (issue 12): see directory_args(); its
        # members record is then members.jsonl (members_record())
        self.members_record_path = os.path.join(self.dir, "members.jsonl")
        if directory is not None:
            self.sim_args += directory_args(directory) + [
                "--members-record", self.members_record_path]
        self.queue = {"rate": "2000", "burst": "50", "concurrency": "16", "max_attempts": "8",
                      "request_timeout": "5"}
        self.queue.update(queue or {})
        self.daemon_extra = daemon or {}
        # [graph] keys to add or (value None) to leave out, e.g. a certificate
        self.graph_extra = graph or {}
        self.daemon_env = daemon_env or {}
        # the simulator serves HTTPS: {"cert": PEM, "key": PEM, "ca": the CA
        # that signed cert (for sim_stats)}, e.g. from make_pki(); None: HTTP
        self.sim_tls = sim_tls
        # processes the test started beside the simulator (a proxy, an HTTP/2
        # front): terminated by close(), before the simulator
        self.procs = []
        self.start_sim()
        # front(env) starts something in front of the simulator and returns
        # the base URL the daemon is to use instead of the simulator's (None:
        # the simulator's, e.g. for a proxy, which is a [graph] key instead)
        self.front_base = front(self) if front else None
        self.write_config()
        if start:
            self.start_daemon()

    # -- simulator --
    def start_sim(self, port=0):
        """Start the simulator (port 0: an ephemeral one; restart_sim gives
        the port it had, so that the daemon's configuration still holds)."""
        port_file = os.path.join(self.dir, "sim.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.sim_log = open(os.path.join(self.dir, "sim.log"), "ab")
        self.sim = subprocess.Popen(
            [SIM, "--listen", "127.0.0.1", "--port", str(port), "--port-file", port_file,
             "--record", self.record_path, "--tenant", "contoso.onmicrosoft.com",
             "--client-id", "11111111-2222-3333-4444-555555555555",
             "--client-secret", "sim-secret-value"] + self.sim_args +
            (["--tls-cert", self.sim_tls["cert"], "--tls-key", self.sim_tls["key"]]
             if self.sim_tls else []),
            stdout=self.sim_log, stderr=self.sim_log)
        deadline_wait(lambda: os.path.exists(port_file) and open(port_file).read().strip(),
                      10, "the simulator's port file")
        self.port = int(open(port_file).read().strip())
        self.base = ("https" if self.sim_tls else "http") + "://127.0.0.1:%d" % self.port

    def restart_sim(self, sim_args=None, directory=None):
        """Stop the simulator and start it again on the same port, with
        sim_args instead of the first ones when given (directory=: as
        Env's). Its memory (directory, stats, tokens) starts afresh; the
        record files are appended to."""
        if self.sim and self.sim.poll() is None:
            self.sim.terminate()
            self.sim.wait(10 * SLOW)
        if sim_args is not None or directory is not None:
            self.sim_args = list(sim_args or [])
            if directory is not None:
                self.sim_args += directory_args(directory) + [
                    "--members-record", self.members_record_path]
        port = self.port
        deadline_wait(lambda: self._port_free(port), 10, "port %d to be free" % port, step=0.1)
        self.start_sim(port)

    @staticmethod
    def _port_free(port):
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def sim_stats(self):
        import urllib.request
        ctx = None
        if self.sim_tls:
            import ssl
            ctx = ssl.create_default_context(cafile=self.sim_tls["ca"])
        with urllib.request.urlopen(self.base + "/sim/stats", timeout=5, context=ctx) as r:
            return json.load(r)

    def sim_get(self, what, tenant=None):
        """GET /sim/WHAT (members, users, mail, stats) as JSON, of one tenant
        or, without tenant, of all."""
        import urllib.parse
        import urllib.request
        ctx = None
        if self.sim_tls:
            import ssl
            ctx = ssl.create_default_context(cafile=self.sim_tls["ca"])
        url = self.base + "/sim/" + what + ("?tenant=" + urllib.parse.quote(tenant)
                                            if tenant else "")
        with urllib.request.urlopen(url, timeout=10, context=ctx) as r:
            return json.load(r)

    def members_record(self):
        """The lines of the simulator's members record (one per membership
        added), when the Env was made with directory=."""
        if not os.path.exists(self.members_record_path):
            return []
        with open(self.members_record_path) as f:
            return [json.loads(l) for l in f if l.strip()]

    def record(self):
        if not os.path.exists(self.record_path):
            return []
        with open(self.record_path) as f:
            return [json.loads(l) for l in f if l.strip()]

    # -- daemon --
    def write_config(self, extra_text=""):
        self.conf = os.path.join(self.dir, "invited.conf")
        graph = {"tenant": "contoso.onmicrosoft.com",
                 "client_id": "11111111-2222-3333-4444-555555555555",
                 "client_secret_file": self.secret_path,
                 "authority_url": self.front_base or self.base,
                 "graph_url": self.front_base or self.base}
        graph.update(self.graph_extra)
        lines = ["[graph]"] + ["%s = %s" % kv for kv in graph.items() if kv[1] is not None]
        lines += ["", "[queue]"]
        lines += ["%s = %s" % kv for kv in self.queue.items()]
        lines += ["", "[daemon]", "socket = " + self.sock, "database = " + self.db_path]
        lines += ["%s = %s" % kv for kv in self.daemon_extra.items()]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n" + extra_text)

    def daemon_prefix(self):
        """What the daemon's command line starts with (a subclass runs it as
        another user with setpriv)."""
        return []

    def start_daemon(self):
        self.daemon_log = open(os.path.join(self.dir, "invited.log"), "ab")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("LISTEN_FDS", None)
        env.update(self.daemon_env)
        self.daemon = subprocess.Popen(self.daemon_prefix() + WRAPPER + [INVITED, "-c", self.conf],
                                       stdout=self.daemon_log, stderr=self.daemon_log, env=env)

        def ready():
            if self.daemon.poll() is not None:
                raise RuntimeError("invited exited with %s:\n%s" % (self.daemon.returncode,
                                                                   self.log()))
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(self.sock)
                return True
            except OSError:
                return False
            finally:
                s.close()
        deadline_wait(ready, 10 * SLOW, "the daemon's socket")

    def stop_daemon(self, sig=signal.SIGTERM, timeout=30 * SLOW):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(sig)
            self.daemon.wait(timeout)
        rc = self.daemon.returncode if self.daemon else None
        self.daemon = None
        return rc

    def log(self):
        try:
            with open(os.path.join(self.dir, "invited.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- client --
    def ctl(self, *args, stdin=None, timeout=120, env_extra=None, user=None):
        env = dict(os.environ)
        env.pop("INVITED_SOCKET", None)
        env["NO_COLOR"] = "1"
        env.update(env_extra or {})
        cmd = [INVITECTL, "-s", self.sock] + list(args)
        if isinstance(user, str):
            # a real user with the supplementary groups /etc/group gives it
            cmd = ["setpriv", "--reuid", user, "--regid", user_gid(user), "--init-groups"] + cmd
        elif user:
            cmd = ["setpriv", "--reuid", str(user[0]), "--regid", str(user[1]),
                   "--clear-groups"] + cmd
        return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, env=env)

    def ctl_json(self, *args, **kw):
        p = self.ctl("--json", *args, **kw)
        try:
            return p, json.loads(p.stdout) if p.stdout.strip() else None
        except ValueError:
            return p, None

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def db(self):
        return sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True, timeout=10)

    def wait_job(self, job_id, timeout=120):
        p, j = self.ctl_json("wait", str(job_id), timeout=timeout)
        return p, j

    def sanitizer_findings(self):
        """Lines of the daemon's and the simulator's logs that report a
        sanitizer or valgrind finding (with a few lines of context)."""
        found = []
        for name in ("invited.log", "sim.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    lines = f.read().splitlines()
            except OSError:
                continue
            for i, line in enumerate(lines):
                if SANITIZER_REPORT.search(line):
                    found.append("%s: %s" % (name, "\n".join(lines[i:i + 12])))
        return found

    def close(self):
        # a clean stop, so that leak checkers run; SIGKILL only if it hangs
        try:
            if self.daemon and self.daemon.poll() is None:
                try:
                    self.stop_daemon(signal.SIGTERM, timeout=30 * SLOW)
                except subprocess.TimeoutExpired:
                    self.stop_daemon(signal.SIGKILL)
        except Exception:
            pass
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        if self.sim and self.sim.poll() is None:
            self.sim.terminate()
            try:
                self.sim.wait(10 * SLOW)
            except subprocess.TimeoutExpired:
                self.sim.kill()
                self.sim.wait(10)
        FINDINGS.extend(self.sanitizer_findings())
        if os.environ.get("KEEP_TEST_DIR"):
            print("# kept " + self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# A token that may do everything issue 12 needs: invite, read users, add members.
ONBOARD_ROLES = "User.Invite.All,User.Read.All,GroupMember.ReadWrite.All"


def directory_args(d):
    """The simulator's command-line options for its first tenant's directory
    (docs/simulator.md, "Directory, groups and mail") from a dict: groups
    [id], refusing_groups [id], seed_members, seed_guests, member_pattern,
    guest_pattern, member_404_share (0..1), accept_after_ms, accept_share
    (0..1), read_rate, read_period (s), replication_delay_ms, roles (a
    comma-separated string, default ONBOARD_ROLES; "" for none)."""
    known = {"groups", "refusing_groups", "seed_members", "seed_guests", "member_pattern",
             "guest_pattern", "member_404_share", "accept_after_ms", "accept_share",
             "read_rate", "read_period", "replication_delay_ms", "roles"}
    unknown = set(d) - known
    if unknown:
        raise ValueError("directory_args: unknown keys %s" % sorted(unknown))
    args = ["--roles", d.get("roles", ONBOARD_ROLES)]
    for g in d.get("groups", ()):
        args += ["--group", g]
    for g in d.get("refusing_groups", ()):
        args += ["--guest-refusing-group", g]
    for key in ("seed_members", "seed_guests", "member_pattern", "guest_pattern",
                "member_404_share", "accept_after_ms", "accept_share", "read_rate",
                "read_period", "replication_delay_ms"):
        if d.get(key) is not None:
            args += ["--" + key.replace("_", "-"), str(d[key])]
    return args


def free_port():
    """A TCP port free on 127.0.0.1 now, for a server that cannot be told to
    pick one itself (tinyproxy, nghttpx); it binds it moments later."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_listening(port, proc, what, timeout=10):
    """Until something accepts on 127.0.0.1:port; raise if proc exits first."""
    def up():
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    deadline_wait(up, timeout * SLOW, what + " listening on port %d" % port)


def make_pki(directory):
    """Certificates for TLS tests, made with the openssl command in directory:
    ca (the test CA), cert/key (127.0.0.1 and localhost, signed by ca),
    other_ca and other_cert/other_key (the same names, another CA),
    wrong_cert/wrong_key (signed by ca, for wrong.example only). Paths."""
    def path(name):
        return os.path.join(directory, name)

    def sh(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    def ca(name, cn):
        sh("req", "-x509", *ec, "-keyout", path(name + ".key"), "-out", path(name + ".pem"),
           "-days", "2", "-subj", "/CN=" + cn,
           "-addext", "basicConstraints=critical,CA:TRUE",
           "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def leaf(name, ca_name, san):
        ext = path(name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n" % san)
        sh("req", "-new", *ec, "-keyout", path(name + ".key"), "-out", path(name + ".csr"),
           "-subj", "/CN=" + san.split(",")[0].split(":")[1])
        sh("x509", "-req", "-in", path(name + ".csr"), "-CA", path(ca_name + ".pem"),
           "-CAkey", path(ca_name + ".key"), "-set_serial", str(int(time.time() * 1000)),
           "-days", "2", "-out", path(name + ".pem"), "-extfile", ext)

    ca("ca", "invited test CA")
    ca("other-ca", "another CA")
    leaf("server", "ca", "IP:127.0.0.1,DNS:localhost")
    leaf("other", "other-ca", "IP:127.0.0.1,DNS:localhost")
    leaf("wrong", "ca", "DNS:wrong.example")
    return {"ca": path("ca.pem"), "cert": path("server.pem"), "key": path("server.key"),
            "other_ca": path("other-ca.pem"), "other_cert": path("other.pem"),
            "other_key": path("other.key"), "wrong_cert": path("wrong.pem"),
            "wrong_key": path("wrong.key")}


def check_against_record(tap, env, job_id, addresses):
    """Every row of the job succeeded, with the user id the simulator
    recorded for its address, and each address was invited exactly once."""
    p = env.ctl("results", str(job_id))
    table = list(csv.DictReader(io.StringIO(p.stdout.decode("utf-8-sig"))))
    rec = env.record()
    by_addr = {}
    for r in rec:
        by_addr.setdefault(r["address"], []).append(r)
    tap.eq((p.returncode, len(table)), (0, len(addresses)), "results has a line per row")
    col = "Email address to invite [inviteeEmail] Required"
    bad = [t for t in table if t["status"] != "succeeded" or len(by_addr.get(t[col], [])) != 1
           or t["invited_user_id"] != by_addr[t[col]][0]["user_id"]]
    tap.ok(table and not bad, "every row succeeded with the user id in the simulator's record",
           bad[:3])
    tap.eq((len(rec), set(by_addr)), (len(addresses), set(addresses)),
           "the record holds each of the job's addresses exactly once")


def skip_all(reason):
    """Skip the whole test. Under meson's TAP protocol a skip is the plan
    "1..0 # SKIP" with exit status 0 (exit status 77 counts as an error)."""
    print("1..0 # SKIP " + reason, flush=True)
    sys.exit(0)


def run(main):
    """Run main(tap) and exit with TAP's verdict; an exception is a failure."""
    tap = Tap()
    try:
        main(tap)
    except Exception as e:  # a crash of the test is a failed test, with its reason
        import traceback
        tap.ok(False, "test raised %s" % type(e).__name__, traceback.format_exc())
    tap.ok(not FINDINGS, "no sanitizer or valgrind report in the daemon's or simulator's log",
           "\n".join(FINDINGS))
    sys.exit(tap.done())
