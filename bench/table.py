#!/usr/bin/env python3
"""The side-by-side table from bench/compare.sh's raw JSON: for each scenario and figure, zen-flow,
Argo at its defaults, Argo at equal client QPS, and the ratios zen-flow / Argo; then the issue's
targets, met or missed; then the sharding run if there is one. Usage: table.py RAW_DIR > table.md
"""

import glob
import json
import os
import sys

CONFIGS = ["zen-flow", "argo-default", "argo-equal"]
ORDER = ["10x5", "burst100", "100x10", "dag50", "sustained", "1000x20"]


def figures(r):
    """The compared figures of one report, by name: (value, unit, better)."""
    lat = r["latency"]["last_succeeded_to_dependent"]
    first = r["time_to_first_job"]
    procs = r.get("processes", [])
    engine = r.get("audit", {}).get("engine", {})
    return [
        ("flows/min", r["flows_per_minute"], "", "higher"),
        ("succeeded flows", r["succeeded"], f"/{r['setup']['flows']}", "higher"),
        ("time to first Job p50", first["p50_ms"], "ms", "lower"),
        ("time to first Job p99", first["p99_ms"], "ms", "lower"),
        ("dep done -> dependent created p50", lat["p50_ms"], "ms", "lower"),
        ("dep done -> dependent created p99", lat["p99_ms"], "ms", "lower"),
        ("controller peak RSS", sum(p["peak_rss_kib"] for p in procs) / 1024, "MiB", "lower"),
        ("controller CPU", sum(p["cpu_seconds"] for p in procs), "s", "lower"),
        ("engine API writes/step (Events incl.)", engine.get("writes_per_step", float("nan")), "", "lower"),
        ("  of which Events", engine.get("event_writes_per_step", float("nan")), "", "lower"),
        ("engine API reads/step", engine.get("reads_per_step", float("nan")), "", "lower"),
        ("all clients' API writes/step", r.get("audit", {}).get("all_clients_writes_per_step", float("nan")), "", "lower"),
        ("status bytes/flow p50", r["status_bytes"]["p50_ms"], "B", "lower"),
    ]


def fmt(value):
    """A figure for the table."""
    if value != value:  # NaN
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(a, b):
    """a / b, or a dash."""
    if a != a or b != b or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def load(raw):
    """The reports by (config, scenario)."""
    runs = {}
    for path in glob.glob(os.path.join(raw, "*.json")):
        with open(path) as f:
            r = json.load(f)
        bench = r.get("bench", {})
        runs[(bench.get("config"), bench.get("scenario"))] = r
    return runs


def main():
    runs = load(sys.argv[1])
    scenarios = [s for s in ORDER if any((c, s) in runs for c in CONFIGS)]
    print("| scenario | figure | zen-flow | Argo default | zen-flow / Argo default | Argo equal QPS | zen-flow / Argo equal |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for s in scenarios:
        got = {c: figures(runs[(c, s)]) for c in CONFIGS if (c, s) in runs}
        names = [f[0] for f in next(iter(got.values()))]
        for i, name in enumerate(names):
            vals = {c: got[c][i][1] for c in got}
            unit = next(iter(got.values()))[i][2]
            z = vals.get("zen-flow", float("nan"))
            d = vals.get("argo-default", float("nan"))
            e = vals.get("argo-equal", float("nan"))
            u = f" {unit}" if unit and not unit.startswith("/") else (unit or "")
            cell = lambda v: fmt(v) + u if v == v else "–"
            print(f"| {s} | {name} | {cell(z)} | {cell(d)} | {ratio(z, d)} | {cell(e)} | {ratio(z, e)} |")
    print()
    print("Load averages (1/5/15 min) before → after each run:")
    print()
    for s in scenarios:
        for c in CONFIGS:
            if (c, s) in runs:
                st = runs[(c, s)]["setup"]
                b = runs[(c, s)].get("bench", {})
                qps = b.get("controller_qps")
                limits = f"--qps {qps} --burst {b.get('controller_burst')}" if qps else "no client-side limiter (kube-rs)"
                print(f"- {s} {c}: {st['load_before']} → {st['load_after']} ({limits};"
                      f" repository HEAD {b.get('commit')})")
    cp = next(iter(runs.values()), {}).get("bench", {}).get("control_plane", {})
    print()
    print(f"kube-controller-manager: --kube-api-qps {cp.get('KCM_QPS')} --kube-api-burst {cp.get('KCM_BURST')}"
          f" --concurrent-job-syncs {cp.get('KCM_JOB_SYNCS')}; audit log {'on' if cp.get('AUDIT') == '1' else 'off'}.")
    targets(runs)
    shards(runs)


def value(runs, config, scenario, name):
    """One figure of one run, or NaN."""
    r = runs.get((config, scenario))
    if not r:
        return float("nan")
    return {f[0]: f[1] for f in figures(r)}[name]


def targets(runs):
    """The issue's targets, met or missed, from the runs there are."""
    print()
    print("| target | measured | met? |")
    print("| --- | --- | --- |")

    def row(text, measured, ok):
        verdict = "not measured" if ok is None else ("met" if ok else "missed")
        print(f"| {text} | {measured} | {verdict} |")

    for s in ["burst100", "sustained"]:
        z, e = value(runs, "zen-flow", s, "flows/min"), value(runs, "argo-equal", s, "flows/min")
        ok = None if z != z or e != e else z >= 3 * e
        row(f"{s}: flows/min ≥ 3× Argo at equal QPS", f"{fmt(z)} vs {fmt(e)} ({ratio(z, e)})", ok)
    # Against Argo at equal QPS where measured: at its default 20 QPS its Events queue behind
    # the client limiter and many are sent after the run's window (or rejected once the
    # namespace is gone), so the default run undercounts them.
    for s in ORDER:
        name = "engine API writes/step (Events incl.)"
        z = value(runs, "zen-flow", s, name)
        config = "argo-equal" if ("argo-equal", s) in runs else "argo-default"
        d = value(runs, config, s, name)
        if z == z and d == d:
            row(f"{s}: API writes/step ≤ ½ Argo's (Events incl.; vs {config})",
                f"{fmt(z)} vs {fmt(d)} ({ratio(z, d)})", z <= d / 2)
    config = "argo-default" if ("argo-default", "1000x20") in runs else "argo-equal"
    z, d = value(runs, "zen-flow", "1000x20", "controller peak RSS"), value(runs, config, "1000x20", "controller peak RSS")
    row(f"1000x20: agent peak RSS ≤ 60 MB and below Argo's ({config})", f"{fmt(z)} MiB vs {fmt(d)} MiB",
        None if z != z else (z * 1.048576 <= 60 and (d != d or z < d)))
    z = value(runs, "zen-flow", "1000x20", "dep done -> dependent created p99")
    row("1000x20: dep done → dependent created p99 < 50 ms", f"{fmt(z)} ms", None if z != z else z < 50)
    z = value(runs, "zen-flow", "burst100", "time to first Job p50")
    row("burst100: time to first Job p50 < 500 ms", f"{fmt(z)} ms", None if z != z else z < 500)


def shards(runs):
    """Two agents, one namespace each, against one agent on the same scenario."""
    r = runs.get(("zen-flow", "shards"))
    if not r:
        return
    one = runs.get(("zen-flow", "burst100"))
    print()
    print("Sharding (burst100 over two agents, each owning one namespace):")
    print()
    two = r["flows_per_minute"]
    base = one["flows_per_minute"] if one else float("nan")
    print(f"- flows/min: two agents {fmt(two)}, one agent {fmt(base)} ({ratio(two, base)});"
          f" {r['succeeded']}/{r['setup']['flows']} succeeded; load {r['setup']['load_before']} → {r['setup']['load_after']}")
    for p in r.get("processes", []):
        print(f"- {p['name']}: peak RSS {p['peak_rss_kib'] / 1024:.1f} MiB, CPU {p['cpu_seconds']:.2f} s")
    ns = r.get("audit", {}).get("write_namespaces", {})
    for user, spaces in ns.items():
        if user.startswith("zen-flow-agent"):
            print(f"- audit log: user {user} wrote in {', '.join(spaces)}")
    agents = [set(v) for u, v in ns.items() if u.startswith("zen-flow-agent")]
    if len(agents) == 2:
        print(f"- namespaces written by both agents: {sorted(agents[0] & agents[1]) or 'none'}")


if __name__ == "__main__":
    main()
