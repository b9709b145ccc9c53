#!/usr/bin/env python3
"""Summarise a perf/results/<date>-<commit>/ directory.

Reads every <scenario>/<server>-r<round>.json written by `ringkv bench`, and writes
summary.md (median, min-max, ratio ringkv/peer, target verdicts) and PNG plots
(throughput bars with min-max whiskers; latency percentile curves of the median run).
Paths under the repository recorded in the files are made relative to it first.
Usage: summarize.py RESULTS_DIR
"""

import glob
import json
import os
import re
import statistics
import sys

# Targets from the issue: ringkv ops/s over Redis's, and whether p99 may be worse.
TARGETS = {
    "get-set-p1": (1.2, True),
    "get-set-p16": (1.5, False),
    "whole-node-p1": (1.6, False),
    "whole-node-p16": (1.6, False),
}
ORDER = ["ringkv", "redis", "memcached", "null"]


def load(scenario_dir):
    runs = {}
    for path in sorted(glob.glob(os.path.join(scenario_dir, "*-r*.json"))):
        m = re.match(r"(.+)-r(\d+)\.json$", os.path.basename(path))
        if not m:
            continue
        with open(path) as f:
            report = json.load(f)
        # Other scripts' records (restart, durable-set) may share a results directory.
        if "totals" in report:
            runs.setdefault(m.group(1), []).append((int(m.group(2)), report))
    return {k: [j for _, j in sorted(v, key=lambda x: x[0])] for k, v in runs.items()}


def figures(j):
    t = j["totals"]
    lat = t["latency_us"]
    return {
        "ops": t["ops_per_sec"],
        "p50": lat["p50"],
        "p99": lat["p99"],
        "p99_9": lat["p99_9"],
        "max": lat["max"],
        "client_cpu": j.get("client_cpu_percent") or 0.0,
        "server_cpu": j.get("server_cpu_percent") or 0.0,
        "failures": t["errors"] + t["timeouts"],
        "misses": t["misses"],
    }


def med(values):
    return statistics.median(values) if values else float("nan")


def summarise(runs):
    out = {}
    for kind, js in runs.items():
        fs = [figures(j) for j in js]
        s = {k: med([f[k] for f in fs]) for k in fs[0]}
        s["ops_min"] = min(f["ops"] for f in fs)
        s["ops_max"] = max(f["ops"] for f in fs)
        s["n"] = len(fs)
        s["failures"] = sum(f["failures"] for f in fs)
        s["misses"] = sum(f["misses"] for f in fs)
        # The run whose throughput is the median, for the latency curve.
        ordered = sorted(range(len(fs)), key=lambda i: fs[i]["ops"])
        s["median_round"] = ordered[len(ordered) // 2] + 1
        out[kind] = s
    return out


def fmt(x, digits=0):
    return f"{x:,.{digits}f}"


def scenario_table(name, scenario_dir, summary):
    lines = []
    settings = open(os.path.join(scenario_dir, "settings.txt")).read().strip().splitlines()
    lines.append(f"### `{name}`\n")
    for line in settings[1:]:
        lines.append(f"- {line}")
    lines.append("")
    lines.append(
        "| server | runs | ops/s median | ops/s min-max | p50 us | p99 us | p99.9 us | max us "
        "| client CPU % | server CPU % | errors+timeouts | GET misses | ringkv / this (ops/s, p99) |"
    )
    lines.append("|" + "---|" * 13)
    rk = summary.get("ringkv")
    for kind in [k for k in ORDER if k in summary] + [k for k in summary if k not in ORDER]:
        s = summary[kind]
        ratio = ""
        if rk and kind != "ringkv":
            ratio = f"{rk['ops'] / s['ops']:.2f}x, {rk['p99'] / s['p99']:.2f}x"
        lines.append(
            f"| {kind} | {s['n']} | {fmt(s['ops'])} | {fmt(s['ops_min'])}-{fmt(s['ops_max'])} "
            f"| {fmt(s['p50'], 1)} | {fmt(s['p99'], 1)} | {fmt(s['p99_9'], 1)} | {fmt(s['max'], 1)} "
            f"| {fmt(s['client_cpu'], 1)} | {fmt(s['server_cpu'], 1)} | {s['failures']} "
            f"| {s['misses']} | {ratio} |"
        )
    target = TARGETS.get(name)
    if target and rk and "redis" in summary:
        want, p99_matters = target
        ratio = rk["ops"] / summary["redis"]["ops"]
        ok = ratio >= want
        text = f"ops/s ratio ringkv/Redis {ratio:.2f}x vs target {want}x"
        if p99_matters:
            p99_ok = rk["p99"] <= summary["redis"]["p99"]
            ok = ok and p99_ok
            text += f"; p99 {fmt(rk['p99'], 1)} vs {fmt(summary['redis']['p99'], 1)} us ({'no worse' if p99_ok else 'worse'})"
        lines.append("")
        lines.append(f"Target: {text}: **{'met' if ok else 'MISSED'}**.")
    lines.append("")
    return "\n".join(lines)


def read_hgrm(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3 or line.startswith("#"):
                continue
            try:
                value, pct = float(parts[0]), float(parts[1])
            except ValueError:
                continue
            rows.append((value, pct))
    return rows


def plots(results_dir, all_summaries):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "matplotlib missing: no plots (Debian: apt-get install python3-matplotlib;"
            " other pythons: pip install matplotlib)",
            file=sys.stderr,
        )
        return []
    made = []
    names = list(all_summaries)
    colors = {"ringkv": "#d62728", "redis": "#1f77b4", "memcached": "#2ca02c"}
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        summary = all_summaries[name]
        kinds = [k for k in ORDER if k in summary]
        meds = [summary[k]["ops"] / 1e3 for k in kinds]
        lo = [(summary[k]["ops"] - summary[k]["ops_min"]) / 1e3 for k in kinds]
        hi = [(summary[k]["ops_max"] - summary[k]["ops"]) / 1e3 for k in kinds]
        ax.bar(kinds, meds, yerr=[lo, hi], capsize=4, color=[colors.get(k, "grey") for k in kinds])
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("k ops/s (median, min-max)")
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    path = os.path.join(results_dir, "throughput.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    made.append(path)
    for name in names:
        summary = all_summaries[name]
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for kind in [k for k in ORDER if k in summary]:
            r = summary[kind]["median_round"]
            hgrm = os.path.join(results_dir, name, f"{kind}-r{r}-total.hgrm")
            if not os.path.exists(hgrm):
                continue
            rows = [(v, p) for v, p in read_hgrm(hgrm) if p < 1.0]
            xs = [1.0 / (1.0 - p) for _, p in rows]
            ys = [v for v, _ in rows]
            ax.plot(xs, ys, label=f"{kind} (round {r})", color=colors.get(kind))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = [1, 2, 10, 100, 1000, 10000]
        ax.set_xticks(ticks)
        ax.set_xticklabels(["0%", "50%", "90%", "99%", "99.9%", "99.99%"])
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (us)")
        ax.set_title(f"{name}: latency by percentile (all ops, median run)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = os.path.join(results_dir, f"latency-{name}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)
    return made


def relative_paths(results_dir):
    """Rewrites the repository's absolute path out of the recorded JSON and text
    (command lines, output paths), so a results folder reads the same wherever the
    repository was checked out."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    for path in glob.glob(os.path.join(results_dir, "**", "*"), recursive=True):
        if not path.endswith((".json", ".txt", ".log", ".stats")) or not os.path.isfile(path):
            continue
        text = open(path, encoding="utf-8", errors="surrogateescape").read()
        if repo in text:
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(text.replace(repo, ""))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    results_dir = sys.argv[1]
    relative_paths(results_dir)
    all_summaries = {}
    sections = []
    for scenario_dir in sorted(glob.glob(os.path.join(results_dir, "*", ""))):
        name = os.path.basename(os.path.dirname(scenario_dir))
        if not os.path.exists(os.path.join(scenario_dir, "settings.txt")):
            continue
        runs = load(scenario_dir)
        if not runs:
            continue
        summary = summarise(runs)
        all_summaries[name] = summary
        sections.append(scenario_table(name, scenario_dir, summary))
    env = ""
    env_path = os.path.join(results_dir, "env.txt")
    if os.path.exists(env_path):
        env = "\n".join(f"- {l}" for l in open(env_path).read().strip().splitlines())
    text = f"# Results {os.path.basename(os.path.normpath(results_dir))}\n\n{env}\n\n" + "\n".join(sections)
    made = plots(results_dir, all_summaries) if all_summaries else []
    if made:
        text += "\nPlots: " + ", ".join(f"`{os.path.basename(p)}`" for p in made) + "\n"
    with open(os.path.join(results_dir, "summary.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
