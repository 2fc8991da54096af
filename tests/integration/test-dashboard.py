#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""contrib/grafana/invited.json asks only for series the daemon exports:
every PromQL expression in it (panel targets and template variables) names
metrics that `invitectl stats --prometheus` prints after a job (and that
output passes `promtool check metrics`). Where promtool is installed, every
expression also parses (`promtool check rules`) and returns data
(`promtool test rules`: absent() of it never fires) over series shaped like
the textfile collector's, both without a tenant label and with one, so the
`sum by (tenant)` forms hold before and after the daemon labels tenants."""
import json
import os
import re
import shutil
import subprocess
import tempfile

from harness import Env, portal_file, run

DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contrib",
                         "grafana", "invited.json")
# the series the dashboard must show (issue 14): rate against limit, outcomes,
# 429s, pending, jobs
REQUIRED = {"invited_requests_total", "invited_rate", "invited_invitations_created_total",
            "invited_rows_failed_total", "invited_rows_succeeded", "invited_rows_failed",
            "invited_rows_cancelled", "invited_throttled_total", "invited_pending",
            "invited_active_jobs"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "and", "or", "unless", "inf", "nan"}
# Grafana's variables, as Grafana would put them in
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
                "$instance": ".*", "$tenant": ".*"}


def expressions(dash):
    """(where, PromQL) for every target and query variable of the dashboard."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append(("panel %r %s" % (p.get("title"), t.get("refId")), t.get("expr", "")))
            walk(p.get("panels", []))  # collapsed rows hold their panels
    walk(dash.get("panels", []))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q or ""
            m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*\w+\s*\)\s*", q)
            out.append(("variable $%s" % v["name"], m.group(1) if m else q))
    return out


def metric_names(expr):
    """The metric names a PromQL expression selects: identifiers that are not
    functions, keywords, label names (in {} or by/without/on (...)) or
    durations, and not inside strings."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word, rest = m.group(0), e[m.end():]
        if word.lower() in KEYWORDS or re.match(r"\s*\(", rest):
            continue
        if m.start() > 0 and (e[m.start() - 1].isdigit() or e[m.start() - 1] == "."):
            continue  # 5m, 1e3
        names.add(word)
    return names


def grafana_expand(expr):
    for k in sorted(GRAFANA_VARS, key=len, reverse=True):
        expr = expr.replace(k, GRAFANA_VARS[k])
    return expr


def promtool_checks(tap, promtool, exprs, exported):
    d = tempfile.mkdtemp(prefix="invited-dash.")
    try:
        rules = os.path.join(d, "rules.yml")
        # JSON is YAML: no PyYAML needed
        with open(rules, "w") as f:
            json.dump({"groups": [{"name": "dashboard", "rules": [
                {"alert": "DashboardQuery%dEmpty" % i, "expr": "absent((%s))" % grafana_expand(e)}
                for i, (_, e) in enumerate(exprs)]}]}, f, indent=1)
        p = subprocess.run([promtool, "check", "rules", rules], capture_output=True, text=True,
                           timeout=60)
        tap.ok(p.returncode == 0, "promtool check rules: every expression parses",
               p.stdout + p.stderr)

        def series(labels):
            # what node_exporter's textfile collector adds (instance, job), and
            # counters that grow
            return [{"series": "%s{%s}" % (name, ",".join('%s="%s"' % kv for kv in labels)),
                     "values": "1+1x30"} for name in sorted(exported)]
        untenanted = series([("instance", "host1:9100"), ("job", "node")])
        tenanted = (series([("instance", "host1:9100"), ("job", "node"),
                            ("tenant", "contoso.onmicrosoft.com")]) +
                    series([("instance", "host2:9100"), ("job", "node"),
                            ("tenant", "fabrikam.onmicrosoft.com")]))
        tests = os.path.join(d, "tests.yml")
        with open(tests, "w") as f:
            json.dump({"rule_files": [rules], "evaluation_interval": "1m", "tests": [
                {"name": name, "interval": "1m", "input_series": inp,
                 "alert_rule_test": [{"eval_time": "20m", "alertname": "DashboardQuery%dEmpty" % i,
                                      "exp_alerts": []} for i in range(len(exprs))]}
                for name, inp in (("without a tenant label", untenanted),
                                  ("with tenant labels", tenanted))]}, f, indent=1)
        p = subprocess.run([promtool, "test", "rules", tests], capture_output=True, text=True,
                           timeout=120)
        out = p.stdout + p.stderr
        empty = sorted(set(int(i) for i in re.findall(r"DashboardQuery(\d+)Empty", out)))
        tap.ok(p.returncode == 0, "promtool test rules: every expression returns data over the "
               "daemon's series, with and without a tenant label",
               "\n".join("%s: %s" % exprs[i] for i in empty) + "\n" + out[-3000:])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main(tap):
    with open(DASHBOARD) as f:
        dash = json.load(f)
    tap.ok(dash.get("uid") and dash.get("title") and dash.get("panels"),
           "the dashboard has a uid, a title and panels")
    exprs = expressions(dash)
    tap.ok(len(exprs) >= 10 and all(e.strip() for _, e in exprs),
           "%d expressions, none empty" % len(exprs), exprs)
    used = {}
    for where, e in exprs:
        for n in metric_names(e):
            used.setdefault(n, []).append(where)
    tap.ok(all(metric_names(e) for _, e in exprs), "every expression names a metric",
           [w for w, e in exprs if not metric_names(e)])
    targets = [(w, e) for w, e in exprs if w.startswith("panel")]
    tap.ok(all(re.search(r"\b(sum|min|max|avg) by \(tenant\)", e) for _, e in targets),
           "every panel aggregates by tenant (works with and without the label)",
           [w for w, e in targets if not re.search(r"\b(sum|min|max|avg) by \(tenant\)", e)])

    with Env(sim_args=["--fail-429", "3", "--seed", "3"]) as env:
        rows = [["d%02d@partner.example" % i, "", "false", ""] for i in range(20)]
        p = env.ctl("submit", env.write("g.csv", portal_file(rows)))
        tap.eq(p.returncode, 0, "submit a job")
        env.ctl("wait", p.stdout.decode().strip())
        p = env.ctl("stats", "--prometheus")
        tap.eq(p.returncode, 0, "invitectl stats --prometheus")
        text = p.stdout.decode()
    exported = set(re.findall(r"^# TYPE (\S+) \S+$", text, re.M))
    exported |= {l.split()[0].split("{")[0] for l in text.splitlines()
                 if l and not l.startswith("#")}
    tap.diag("exported: " + " ".join(sorted(exported)))
    unknown = {n: w for n, w in used.items() if n not in exported}
    tap.ok(used and not unknown, "every metric the dashboard names is one the daemon exports "
           "(%d of %d)" % (len(used), len(exported)),
           "\n".join("%s in %s" % (n, ", ".join(w)) for n, w in sorted(unknown.items())))
    tap.eq(sorted(REQUIRED - set(used)), [],
           "it shows rate and limit, outcomes, 429s, pending rows and jobs")

    promtool = shutil.which("promtool")
    if not promtool:
        tap.diag("promtool is not installed (Debian: prometheus): syntax and data checks skipped")
        return
    chk = subprocess.run([promtool, "check", "metrics"], input=p.stdout, capture_output=True,
                         timeout=30)
    tap.eq((chk.returncode, chk.stdout.decode() + chk.stderr.decode()), (0, ""),
           "promtool check metrics on the daemon's output")
    promtool_checks(tap, promtool, exprs, exported)


if __name__ == "__main__":
    run(main)
