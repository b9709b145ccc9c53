#!/usr/bin/env python3
"""Summarise one storage scenario directory (durable-set, restart, memory-per-key,
beyond-ram) written by the perf/<scenario>.sh scripts; prints Markdown.

Usage: storage_summary.py SCENARIO DIR
Bench runs (<kind>-r<round>.json) are summarised with perf/summarize.py's helpers
(median, min-max); the scenario's own measurements come from *.json rows it wrote.
Paths under the repository recorded in the files are made relative to it first.
"""

import glob
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import summarize  # noqa: E402

TARGET_RATIO = {"durable-set": 2.0}


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def bench_table(name, d):
    # summarize.load keeps bench reports only; the loader's runs are not compared.
    runs = {k: v for k, v in summarize.load(d).items() if not k.startswith("load")}
    if not runs:
        return []
    s = summarize.summarise(runs)
    order = ["ringkv", "redis", "ringkv-memory", "redis-memory", "memcached", "null"]
    kinds = [k for k in order if k in s] + [k for k in s if k not in order]
    lines = [
        "| server | runs | ops/s median | min-max | p50 us | p99 us | p99.9 us | max us | client CPU % | server CPU % | errors+timeouts |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k in kinds:
        f = s[k]
        lines.append(
            f"| {k} | {f['n']} | {f['ops']:,.0f} | {f['ops_min']:,.0f}-{f['ops_max']:,.0f} | "
            f"{f['p50']:,.0f} | {f['p99']:,.0f} | {f['p99_9']:,.0f} | {f['max']:,.0f} | "
            f"{f['client_cpu']:.0f} | {f['server_cpu']:.0f} | {f['failures']} |"
        )
    if "ringkv" in s and "redis" in s:
        ratio = s["ringkv"]["ops"] / s["redis"]["ops"]
        # Per-round ratios (A B pairs of one round) show the spread of the ratio.
        per_round = []
        for (a, b) in zip(runs["ringkv"], runs["redis"]):
            per_round.append(a["totals"]["ops_per_sec"] / b["totals"]["ops_per_sec"])
        line = f"\nringkv / redis ops/s (medians): **{ratio:.2f}x** (per round: {', '.join(f'{r:.2f}' for r in per_round)})"
        if name in TARGET_RATIO:
            t = TARGET_RATIO[name]
            line += f"; target >= {t}x: {'met' if ratio >= t else 'MISSED'}"
        lines.append(line)
    if name in TARGET_RATIO and "redis" in s:
        # The servers that keep nothing on disk (CEILING=1): how far each request path
        # goes with no durability at all, and the null server the most any server can
        # show here, against the ops/s the target asks for.
        target_ops = TARGET_RATIO[name] * s["redis"]["ops"]
        for k in ("ringkv-memory", "redis-memory", "null"):
            if k in s:
                lines.append(
                    f"\n{k}: {s[k]['ops']:,.0f} ops/s = **{s[k]['ops'] / s['redis']['ops']:.2f}x** "
                    f"redis's durable figure (the target asks for {target_ops:,.0f})"
                )
    return lines


def rows(d, pattern):
    out = []
    for p in sorted(glob.glob(os.path.join(d, pattern))):
        with open(p) as f:
            out.append(json.load(f))
    return out


def listing(rs, key, fmt):
    return ", ".join(format(r[key], fmt) for r in rs if r.get(key) is not None)


def durable_extra(d):
    rs = rows(d, "ringkv-r*.commit.json")
    if not rs:
        return []
    return [
        "",
        "ringkv group commit over each whole run (warmup included):",
        f"- mean durable wait: {med([r['mean_durable_wait_us'] for r in rs]):,.0f} us "
        f"(median of runs; {listing(rs, 'mean_durable_wait_us', ',.0f')})",
        f"- commits/s: {med([r['commits_per_sec'] for r in rs]):,.0f} "
        f"({listing(rs, 'commits_per_sec', ',.0f')})",
        f"- client writes per commit: {med([r['writes_per_commit'] for r in rs]):.1f} "
        f"({listing(rs, 'writes_per_commit', '.1f')})",
        f"- mean commit time (device write + flush, as the log saw it): "
        f"{med([r['mean_commit_us'] for r in rs]):,.0f} us "
        f"({listing(rs, 'mean_commit_us', ',.0f')})",
    ]


def timing_table(d, pattern, fields):
    rs = rows(d, pattern)
    if not rs:
        return []
    groups = {}
    for r in rs:
        groups.setdefault(r["case"], []).append(r)
    lines = [
        "| case | runs | " + " | ".join(f"{f} median (min-max)" for f in fields) + " |",
        "| --- | --- | " + " | ".join("---" for _ in fields) + " |",
    ]
    for case, g in groups.items():
        cells = []
        for f in fields:
            xs = [r[f] for r in g if r.get(f) is not None]
            if xs:
                cells.append(f"{med(xs):,.2f} ({min(xs):,.2f}-{max(xs):,.2f})")
            else:
                cells.append("-")
        lines.append(f"| {case} | {len(g)} | " + " | ".join(cells) + " |")
    return lines


def main():
    name, d = sys.argv[1], sys.argv[2]
    summarize.relative_paths(d)
    lines = [f"### `{name}`", ""]
    settings = os.path.join(d, "settings.txt")
    if os.path.exists(settings):
        lines += [f"- {line}" for line in open(settings).read().strip().splitlines()[1:]]
        lines.append("")
    lines += bench_table(name, d)
    if name == "durable-set":
        lines += durable_extra(d)
    if name == "restart":
        lines += timing_table(d, "restart-*.json", ["seconds_to_serving", "keys"])
    if name == "hint-cost":
        lines += timing_table(d, "hints-*.json", ["hints_written", "hint_ms"])
    if name == "memory-per-key":
        lines += timing_table(d, "memory-*.json", ["rss_mib", "bytes_per_key", "overhead_per_key"])
    if name == "beyond-ram":
        lines += timing_table(d, "fetch-*.json", ["value_fetches_per_sec", "fetch_share", "cached_mib"])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
