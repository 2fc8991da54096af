#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Debian package, installed on this machine: scripts/package.sh builds
it (or one built from the same tree earlier in this build dir is reused),
lintian reports no error and no warning, `apt-get install ./invited_*.deb`
installs it, `dpkg -L` holds exactly what `meson install` installs (the
example configuration moved to the conffile /etc/invited/invited.conf) plus
Debian's docs, the maintainer scripts made the users, /etc/invited and the
socket's enablement, the installed daemon checks the installed conffile and
then runs, as the packaged user, a 100-row job against the simulator driven
by the installed invitectl; `apt-get remove` keeps the configuration and the
database, `apt-get purge` leaves nothing of the package behind.

Root only. Skips where it cannot run or must not: not root, no
dpkg-buildpackage, lintian or apt-get, a sanitizer build (the package is
built without one; CI runs this suite again under ASan), or a machine where
invited is already installed (as a package, or from a source tree into
/etc/invited or /var/lib/invited), which purging would destroy."""
import glob
import grp
import json
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402
from harness import Env, portal_file, run, skip_all  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("MESON_BUILD_DIR", "build"))
PKG = "invited"
USER = "invited"          # systemd/invited.sysusers
SOCKET_GROUP = "invite"
STATE = "/var/lib/invited"
CONF_DIR = "/etc/invited"
CONFFILE = CONF_DIR + "/invited.conf"
EXAMPLE = "/usr/share/doc/invited/invited.conf.example"
# what Debian adds beside meson's tree: docs, the Grafana dashboard, lintian's
# overrides
DEBIAN_DOCS = {"/usr/share/doc/invited/" + f
               for f in ("changelog", "copyright", "README.md", "operations.md",
                         "examples/invited.json")}
DEBIAN_DOCS.add("/usr/share/lintian/overrides/invited")
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
# other helpers' apt runs may hold the lock for a while
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300"]


def sh(*cmd, timeout=120, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)


def dpkg_status():
    """dpkg's two-letter state ("ii", "rc"), "" when not installed at all."""
    p = sh("dpkg-query", "-W", "-f=${db:Status-Abbrev}", PKG)
    status = p.stdout.strip() if p.returncode == 0 else ""
    return "" if status[1:2] == "n" else status


def source_files():
    """The files scripts/package.sh copies (what git tracks or does not ignore)."""
    if not shutil.which("git"):
        return None
    p = sh("git", "-C", SRC, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if p.returncode != 0:
        return None
    return [os.path.join(SRC, f) for f in p.stdout.split("\0") if f]


def build_deb(tap):
    """The .deb in BUILD/deb, rebuilt unless one there is newer than every
    source file (another run of the suite on the same tree reuses it)."""
    out = os.path.join(BUILD, "deb")
    debs = sorted(glob.glob(os.path.join(out, PKG + "_*.deb")), key=os.path.getmtime,
                  reverse=True)
    files = source_files()
    if debs and files is not None:
        newest = max((os.stat(f).st_mtime for f in files if os.path.exists(f)), default=0)
        if os.stat(debs[0]).st_mtime > newest:
            tap.diag("reusing %s (newer than every source file)" % debs[0])
            return debs[0]
    t0 = time.monotonic()
    p = sh("nice", "-n", "10", os.path.join(SRC, "scripts", "package.sh"), out, timeout=900)
    took = time.monotonic() - t0
    tap.ok(p.returncode == 0, "scripts/package.sh builds the package (%.0f s)" % took,
           p.stderr[-4000:])
    deb = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    tap.ok(re.fullmatch(re.escape(out) + r"/invited_[^/]+_[a-z0-9]+\.deb", deb)
           and os.path.isfile(deb), "package.sh prints the .deb's path: " + deb)
    return deb if os.path.isfile(deb) else None


def meson_tree(tap):
    """Every file `meson install` of this source installs, as absolute paths
    under prefix /usr (the package's) whatever BUILD's prefix is."""
    opts = json.loads(sh("meson", "introspect", "--buildoptions", BUILD, check=True).stdout)
    prefix = {o["name"]: o["value"] for o in opts}["prefix"].rstrip("/")
    dest = tempfile.mkdtemp(prefix="invited-destdir.")
    try:
        p = sh("meson", "install", "-C", BUILD, "--destdir", dest, "--no-rebuild", "--quiet")
        tap.eq(p.returncode, 0, "meson install --destdir of the same source")
        files = set()
        for d, _, fs in os.walk(dest):
            for f in fs:
                path = "/" + os.path.relpath(os.path.join(d, f), dest)
                # sysconfdir: PREFIX/etc, and /etc when the prefix is /usr
                # (meson's rule, the package's case)
                if path.startswith(prefix + "/etc/"):
                    path = path[len(prefix):]
                elif path.startswith(prefix + "/"):
                    path = "/usr" + path[len(prefix):]
                files.add(path)
        return files
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def package_files():
    p = sh("dpkg", "-L", PKG)
    files = set()
    for path in p.stdout.splitlines():
        if path and not os.path.isdir(path):
            # dh_compress compresses man pages and docs over 4 kB; meson
            # installs them plain
            if re.search(r"^/usr/share/(man/man\d/|doc/invited/(examples/)?)[^/]+\.gz$", path):
                path = path[:-3]
            files.add(path)
    return p.returncode, files


def check_installed(tap, deb):
    p = sh(*APT, "install", os.path.abspath(deb), env=APT_ENV, timeout=600)
    tap.ok(p.returncode == 0, "apt-get install ./%s" % os.path.basename(deb),
           p.stdout[-2000:] + p.stderr[-2000:])
    tap.eq(dpkg_status(), "ii", "dpkg: installed")

    rc, have = package_files()
    want = meson_tree(tap)
    want.discard(EXAMPLE)
    want.add(CONFFILE)
    want |= DEBIAN_DOCS
    tap.eq(rc, 0, "dpkg -L invited")
    tap.diag("dpkg -L invited (files):\n  " + "\n  ".join(sorted(have)))
    tap.ok(have == want, "dpkg -L: every file meson installs, the example as the conffile, "
           "and Debian's docs (%d files)" % len(have),
           "missing from the package: %s\nnot from meson: %s"
           % (sorted(want - have), sorted(have - want)))
    p = sh("dpkg-query", "-W", "-f=${Conffiles}", PKG)
    tap.ok(re.search(r"^\s*%s [0-9a-f]{32}$" % re.escape(CONFFILE), p.stdout, re.M),
           CONFFILE + " is a conffile", p.stdout)

    # maintainer scripts: sysusers, tmpfiles, the socket's enablement
    try:
        u = pwd.getpwnam(USER)
        tap.ok(u.pw_dir == STATE and u.pw_uid < 1000 and u.pw_shell.endswith("nologin"),
               "system user %s (uid %d, home %s, %s)" % (USER, u.pw_uid, u.pw_dir, u.pw_shell))
    except KeyError:
        tap.ok(False, "system user %s exists" % USER)
    try:
        g = grp.getgrnam(SOCKET_GROUP)
        tap.ok(g.gr_gid < 1000, "system group %s (gid %d)" % (SOCKET_GROUP, g.gr_gid))
    except KeyError:
        tap.ok(False, "system group %s exists" % SOCKET_GROUP)
    st = os.stat(CONF_DIR)
    tap.eq((stat.S_IMODE(st.st_mode), st.st_uid, grp.getgrgid(st.st_gid).gr_name),
           (0o750, 0, USER), CONF_DIR + " is 0750 root:invited (tmpfiles.d applied)")
    wants = "/etc/systemd/system/sockets.target.wants/invited.socket"
    tap.ok(os.path.islink(wants) and os.readlink(wants).endswith("/invited.socket"),
           "invited.socket is enabled (%s)" % wants)
    tap.ok(not glob.glob("/etc/systemd/system/*.wants/invited.service"),
           "invited.service is not enabled: the socket starts it on demand")
    tap.ok(not glob.glob("/etc/systemd/system/*.wants/invited-metrics.*"),
           "invited-metrics.timer is not enabled (the admin's choice)")
    units = sorted(f for f in have
                   if re.search(r"/systemd/system/[^/]+\.(service|socket|timer)$", f))
    tap.eq([os.path.basename(u) for u in units],
           ["invited-metrics.service", "invited-metrics.timer", "invited.service",
            "invited.socket"], "the package's units")
    if shutil.which("systemd-analyze"):
        p = sh("systemd-analyze", "verify", "--man=no", *units, timeout=60)
        tap.eq((p.returncode, p.stdout + p.stderr), (0, ""),
               "the installed units pass systemd-analyze verify")
    if os.path.isdir("/run/systemd/system"):
        p = sh("systemctl", "is-active", "invited.socket")
        tap.eq(p.stdout.strip(), "active", "invited.socket is started")
        p = sh("systemctl", "is-active", "invited.service")
        tap.eq(p.stdout.strip(), "inactive", "invited.service is not started")
    else:
        tap.diag("systemd is not PID 1 here: the units' start is not checked")


def as_user(uid_name):
    u = pwd.getpwnam(uid_name)
    return ["setpriv", "--reuid", str(u.pw_uid), "--regid", str(u.pw_gid), "--init-groups"]


def check_config(tap):
    """The installed daemon, as its user, accepts the installed conffile
    (found at its compiled-in default path) with a test credential."""
    u = pwd.getpwnam(USER)
    creds = tempfile.mkdtemp(prefix="invited-creds.")
    try:
        with open(os.path.join(creds, "client-secret"), "w") as f:
            f.write("test-secret\n")
        os.chmod(os.path.join(creds, "client-secret"), 0o400)
        for path in (creds, os.path.join(creds, "client-secret")):
            os.chown(path, u.pw_uid, u.pw_gid)
        env = dict(os.environ, CREDENTIALS_DIRECTORY=creds)
        p = sh(*as_user(USER), "/usr/sbin/invited", "--check-config", env=env, timeout=30)
        tap.ok(p.returncode == 0 and "tenant = contoso.onmicrosoft.com" in p.stdout
               and "test-secret" not in p.stdout + p.stderr,
               "invited --check-config (as %s) accepts %s with a test credential" %
               (USER, CONFFILE), p.stdout + p.stderr)
        tap.diag(p.stdout)
    finally:
        shutil.rmtree(creds, ignore_errors=True)


def run_job(tap):
    """The installed daemon as the packaged user, its database in
    /var/lib/invited (as StateDirectory= makes it), against the simulator;
    the installed invitectl submits and waits for 100 rows."""
    u = pwd.getpwnam(USER)
    os.makedirs(STATE, mode=0o750)
    os.chown(STATE, u.pw_uid, u.pw_gid)
    harness.INVITED = "/usr/sbin/invited"
    harness.INVITECTL = "/usr/bin/invitectl"
    # as invited.service runs it: its user, UMask=0077
    harness.WRAPPER = as_user(USER) + ["sh", "-c", 'umask 077 && exec "$@"', "sh"]
    with Env(start=False) as env:
        env.db_path = os.path.join(STATE, "invited.db")
        env.write_config()
        os.chmod(env.dir, 0o750)
        os.chown(env.dir, u.pw_uid, u.pw_gid)
        os.chown(env.secret_path, u.pw_uid, u.pw_gid)
        env.start_daemon()
        rows = [["guest%03d@partner.example" % i, "", "false", ""] for i in range(100)]
        p, job = env.ctl_json("submit", env.write("guests.csv", portal_file(rows)))
        tap.ok(p.returncode == 0 and job and job["total"] == 100,
               "the installed invitectl submits 100 rows", p.stdout + p.stderr)
        if job:
            p, done = env.wait_job(job["id"], timeout=120)
            tap.eq(done and (done["state"], done["succeeded"], done["failed"]),
                   ("completed", 100, 0), "the installed daemon completes the job")
        addrs = [r["address"] for r in env.record()]
        tap.eq(sorted(addrs), sorted(r[0] for r in rows),
               "the simulator got each of the 100 invitations once")
        db = os.stat(env.db_path)
        tap.eq((db.st_uid, stat.S_IMODE(db.st_mode) & 0o077), (u.pw_uid, 0),
               "the daemon ran as %s: it owns %s, private to it" % (USER, env.db_path))
        check_metrics_unit(tap, env)
        tap.eq(env.stop_daemon(), 0, "the daemon stops cleanly on SIGTERM")
        p, prom = metrics_unit_run(env)
        tap.ok(p.returncode != 0 and not os.path.exists(prom) and
               not os.path.exists(prom + ".tmp"),
               "invited-metrics.service with the daemon down: fails, removes the file",
               p.stdout + p.stderr)


def metrics_unit_run(env):
    """The installed invited-metrics.service's ExecStart, as systemd would
    run it (\$\$ is a dollar), with PROM in the test's directory and the test
    daemon's socket."""
    with open("/lib/systemd/system/invited-metrics.service") as f:
        unit = f.read()
    cmd = shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).replace("$$", "$"))
    prom = os.path.join(env.dir, "node-exporter", "invited.prom")
    os.makedirs(os.path.dirname(prom), exist_ok=True)
    p = sh(*cmd, env=dict(os.environ, PROM=prom, INVITED_SOCKET=env.sock), timeout=60)
    return p, prom


def check_metrics_unit(tap, env):
    p, prom = metrics_unit_run(env)
    text = open(prom).read() if os.path.exists(prom) else ""
    # labelled tenant="NAME" by a daemon with tenants (SPEC §7)
    succeeded = re.search(r'\ninvited_rows_succeeded(\{tenant="default"\})? 100\n', text)
    tap.ok(p.returncode == 0 and succeeded and not os.path.exists(prom + ".tmp"),
           "invited-metrics.service's command writes %s (renamed into place)" % prom,
           p.stdout + p.stderr + text)
    promtool = shutil.which("promtool")
    if promtool and text:
        chk = sh(promtool, "check", "metrics", input=text)
        tap.eq((chk.returncode, chk.stdout + chk.stderr), (0, ""),
               "promtool check metrics on the textfile")


def check_removed(tap):
    p = sh(*APT, "remove", PKG, env=APT_ENV, timeout=300)
    tap.eq(p.returncode, 0, "apt-get remove invited")
    tap.eq(dpkg_status(), "rc", "dpkg: removed, configuration kept")
    tap.ok(not os.path.exists("/usr/sbin/invited") and not os.path.exists("/usr/bin/invitectl"),
           "remove takes the programs")
    tap.ok(os.path.isfile(CONFFILE) and os.path.isdir(STATE),
           "remove keeps %s and %s" % (CONFFILE, STATE))

    p = sh(*APT, "purge", PKG, env=APT_ENV, timeout=300)
    tap.eq(p.returncode, 0, "apt-get purge invited")
    tap.eq(dpkg_status(), "", "dpkg: not installed, nothing recorded")
    p = sh("dpkg", "-L", PKG)
    tap.ok(p.returncode != 0, "dpkg -L invited: not installed")
    left = [path for path in (CONF_DIR, STATE, "/usr/sbin/invited", "/usr/bin/invitectl",
                              "/lib/systemd/system/invited.service",
                              "/lib/systemd/system/invited.socket",
                              "/lib/systemd/system/invited-metrics.service",
                              "/lib/systemd/system/invited-metrics.timer",
                              "/usr/lib/systemd/system/invited.service",
                              "/usr/lib/systemd/system/invited.socket",
                              "/usr/lib/sysusers.d/invited.conf",
                              "/usr/lib/tmpfiles.d/invited.conf",
                              "/usr/share/doc/invited",
                              "/usr/share/bash-completion/completions/invitectl")
            if os.path.lexists(path)]
    left += glob.glob("/etc/systemd/system/*.wants/invited.*")
    left += glob.glob("/var/lib/systemd/deb-systemd-helper-enabled/**/invited.*", recursive=True)
    left += glob.glob("/usr/share/man/man*/invite*")
    left += glob.glob("/usr/share/lintian/overrides/invited")
    tap.eq(left, [], "purge leaves nothing: no configuration, no database, no unit, "
           "no enablement")
    tap.diag("kept, as Debian keeps system users: user %s, group %s" % (USER, SOCKET_GROUP))


def main(tap):
    if os.geteuid() != 0:
        skip_all("needs root: installs and purges the package")
    for tool in ("dpkg-buildpackage", "lintian", "apt-get", "meson", "setpriv"):
        if not shutil.which(tool):
            skip_all("%s is missing (scripts/deps.sh installs it)" % tool)
    opts = json.loads(sh("meson", "introspect", "--buildoptions", BUILD, check=True).stdout)
    sanitize = {o["name"]: o["value"] for o in opts}.get("b_sanitize", "none")
    if sanitize != "none":
        skip_all("%s is a sanitizer build (b_sanitize=%s); the package is built and "
                 "tested from the plain build" % (BUILD, sanitize))
    if dpkg_status():
        skip_all("the package invited is on this machine (dpkg: %s); purging it would "
                 "destroy its data: apt-get purge invited first" % dpkg_status())
    for path in (CONF_DIR, STATE):
        if os.path.exists(path):
            skip_all("%s exists (invited installed from a source tree?); the test would "
                     "purge it" % path)

    deb = build_deb(tap)
    if not deb:
        return
    p = sh("lintian", "-I", "--tag-display-limit", "0", deb, timeout=300)
    tags = [l for l in p.stdout.splitlines() if re.match(r"[A-Z]: ", l)]
    tap.diag("lintian %s:\n  %s" % (os.path.basename(deb), "\n  ".join(tags) or "(nothing)"))
    tap.ok(p.returncode == 0 and not [l for l in tags if l[0] in "EW"],
           "lintian: no error, no warning", p.stdout + p.stderr)

    try:
        check_installed(tap, deb)
        check_config(tap)
        run_job(tap)
        check_removed(tap)
    finally:
        # after a failure above, leave the machine as it was (neither existed)
        if dpkg_status():
            sh(*APT, "purge", PKG, env=APT_ENV, timeout=300)
        shutil.rmtree(STATE, ignore_errors=True)

if __name__ == "__main__":
    run(main)
