#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`invitectl stats --prometheus` passes `promtool check metrics` (the
exposition format and its lint: HELP, TYPE, counters ending in _total, base
units) after a job with failures, retries and throttling has run, and
carries the same values as `stats --json`; with a daemon that has tenants,
one series per tenant labelled tenant="NAME" and no sum beside. Skips (77) only where promtool is
absent (Debian 12: the prometheus package)."""
import re
import shutil
import subprocess
import sys

from harness import Env, portal_file, run


def main(tap):
    promtool = shutil.which("promtool")
    if not promtool:
        print("1..0 # SKIP promtool is not installed (Debian: apt-get install prometheus)")
        sys.exit(77)
    with Env(sim_args=["--reject", "no@blocked.example", "--fail-429", "5", "--fail-5xx", "5",
                       "--seed", "7"]) as env:
        rows = [["p%03d@partner.example" % i, "", "false", ""] for i in range(80)]
        rows.append(["no@blocked.example", "", "false", ""])
        p = env.ctl("submit", env.write("g.csv", portal_file(rows)))
        tap.eq(p.returncode, 0, "submit")
        p = env.ctl("wait", p.stdout.decode().strip())
        tap.eq(p.returncode, 1, "the job ended, one row failed")

        p = env.ctl("stats", "--prometheus")
        text = p.stdout.decode()
        tap.eq(p.returncode, 0, "stats --prometheus exits 0")
        tap.diag(text)
        chk = subprocess.run([promtool, "check", "metrics"], input=p.stdout,
                             capture_output=True, timeout=30)
        tap.eq((chk.returncode, chk.stdout.decode() + chk.stderr.decode()), (0, ""),
               "promtool check metrics: no error, no lint warning")

        # name -> value, summed over the tenant label when the daemon has tenants
        samples, labelled = {}, {}
        for l in text.splitlines():
            if l and not l.startswith("#"):
                series, value = l.rsplit(" ", 1)
                name = series.split("{")[0]
                samples[name] = samples.get(name, 0.0) + float(value)
                if "{" in series:
                    labelled.setdefault(name, []).append(series[len(name):])
        tap.ok(samples and all(k.startswith("invited_") for k in samples),
               "every metric has the invited_ prefix")
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        helps = set(re.findall(r"^# HELP (\S+) \S", text, re.M))
        tap.eq(set(types), set(samples), "a TYPE line for every metric")
        tap.eq(helps, set(samples), "a HELP line for every metric")
        tap.ok(all((t == "counter") == k.endswith("_total") for k, t in types.items()),
               "counters, and only they, end in _total")
        p, st = env.ctl_json("stats")
        tap.eq(float(samples["invited_requests_total"]), float(st["requests_total"]),
               "requests_total as in stats --json")
        tap.eq(float(samples["invited_rows_failed"]), 1.0, "rows_failed: 1")
        tap.ok(st["throttled_total"] > 0 and float(samples["invited_throttled_total"]) ==
               st["throttled_total"], "429s counted (%s)" % st["throttled_total"])
        tap.ok("invited_paused_seconds" in samples and "invited_paused_ms" not in samples,
               "milliseconds are exposed in seconds")
        tenants = st.get("tenants")
        if isinstance(tenants, list):
            # a daemon with tenants (SPEC §7): one series per tenant, no sum beside them
            names = sorted('{tenant="%s"}' % t["name"] for t in tenants)
            tap.eq(sorted(labelled.get("invited_requests_total", [])), names,
                   "one invited_requests_total per tenant, labelled tenant")
            tap.ok(not any(re.match(r"invited_requests_total ", l) for l in text.splitlines()),
                   "and no unlabelled sum beside them")
        else:
            tap.eq(labelled, {}, "a daemon without tenants: no labels")


if __name__ == "__main__":
    run(main)
