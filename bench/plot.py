#!/usr/bin/env python3
"""The scaling plot from bench/compare.sh's raw JSON: flows/min and controller peak RSS against
the work created at once, one line per engine configuration (burst scenarios only: 10x5,
burst100, 100x10, 1000x20; dag50 and sustained are not "flows at once"). The x axis is
flows x steps, since burst100 and 100x10 both create 100 flows; each point is labelled with its
scenario (flows x steps). A run cut by its timeout (1000x20 here) has no throughput point, only
its peak RSS.
Usage: plot.py RAW_DIR OUT.png
"""

import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BURSTS = {"10x5", "burst100", "100x10", "1000x20"}
LABELS = {"zen-flow": "zen-flow (jobflow-agent)", "argo-default": "Argo 4.0.5, defaults (qps 20)",
          "argo-equal": "Argo 4.0.5, qps 1000"}


def main():
    raw, out = sys.argv[1], sys.argv[2]
    points = {}
    for path in glob.glob(os.path.join(raw, "*.json")):
        with open(path) as f:
            r = json.load(f)
        b = r.get("bench", {})
        if b.get("scenario") not in BURSTS:
            continue
        rss = sum(p["peak_rss_kib"] for p in r.get("processes", [])) / 1024
        points.setdefault(b["config"], []).append(
            (r["setup"]["flows"] * r["setup"]["steps"],
             r["flows_per_minute"] if not r["not_succeeded"] else None, rss, b["scenario"]))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for config in ["zen-flow", "argo-default", "argo-equal"]:
        pts = sorted(points.get(config, []))
        if not pts:
            continue
        xs = [p[0] for p in pts]
        done = [p for p in pts if p[1] is not None]
        ax1.plot([p[0] for p in done], [p[1] for p in done], marker="o", label=LABELS[config])
        ax2.plot(xs, [p[2] for p in pts], marker="o", label=LABELS[config])
        for p in done:
            ax1.annotate(p[3], (p[0], p[1]), fontsize=7, textcoords="offset points", xytext=(3, 3))
        for p in pts:
            ax2.annotate(p[3], (p[0], p[2]), fontsize=7, textcoords="offset points", xytext=(3, 3))
    for ax, title, unit in [(ax1, "throughput", "flows/min"), (ax2, "controller peak RSS", "MiB")]:
        ax.set_xscale("log")
        ax.set_xlabel("steps created at once (flows x steps)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("zen-flow vs Argo Workflows on one local control plane (kwok, 1 s pods, 2 shared cores)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
