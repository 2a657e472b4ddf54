#!/usr/bin/env python3
"""failover-monitor benchmarks: detection, HTTP probe cost side by side with the
blackbox exporter (and the build before, when given), scale, /metrics, a profile.

Phases live in emulator.py (detection, provisioning) and http_cost.py (the HTTP
phases against nginx); common.py holds what they share. This file runs them and
writes docs/PERFORMANCE.md; the reading of the figures is bench/NOTES.md, appended.
"""
import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import PROCS, ROOT, TMP, machine, stop  # noqa: E402
from emulator import detection, provisioning  # noqa: E402
import http_cost  # noqa: E402

TARGETS = {
    "cpu": {200: 0.1, 1000: 0.06},
    "rss_200_mb": 16,
    "per_probe_kb": 3,
    "rate": 20000,
    "lag_p99_ms": 20,
    "metrics_ms": {10000: 5, 160000: 50},
}


def mb(kb):
    return f"{kb / 1024:.1f} MB"


def write_report(r, path):
    L = []
    w = L.append
    w("# Performance")
    w("")
    w(f"Measured {r['date']} on {r['machine']}, with the release build, everything on 127.0.0.1.")
    w("Reproduce: `bench/run.sh` (installs nginx, wrk, hey and prometheus-blackbox-exporter from Debian,")
    w("builds the release binary, runs `bench/bench.py`, rewrites this file; raw figures in `bench/results.json`).")
    w("`BEFORE=path/to/failover-monitor bench/run.sh` measures an older build in the same run (the column")
    w("\"before\"). The exporter runs in the same invocation, against the same nginx.")
    if r.get("shared"):
        w("")
        w(f"**This run shared the machine** with another session's builds: {r['shared']}")
    w("")
    if "detection" in r:
        d = r["detection"]
        w("## Outage to failover")
        w("")
        w("The primary's emulator process is killed; the time until the config item reads `failover` in the")
        w("secondary (polled every 10 ms). Probes: http, s3 roundtrip, dynamodb on the primary, dynamodb on the")
        w(f"secondary; interval {d['interval_ms']} ms, fall {d['fall']}, timeout {d['timeout_ms']} ms, rule majority.")
        w("")
        fi = d["fall"] * d["interval_ms"] / 1000
        w("| runs | failovers | median | best | worst | median / (fall x interval) | worst / (fall x interval) | targets |")
        w("|---|---|---|---|---|---|---|---|")
        w(f"| {d['runs']} | {d['failovers']} | {d['median_s']:.3f} s | {d['best_s']:.3f} s | {d['worst_s']:.3f} s | "
          f"{d['median_ratio']:.2f} | {d['worst_ratio']:.2f} | median <= {0.85 * fi:.2f} s, "
          f"worst <= {fi + d['timeout_ms'] / 1000 + 0.2:.2f} s |")
        b = r.get("detection_before")
        if b:
            w(f"| before: {b['runs']} | {b['failovers']} | {b['median_s']:.3f} s | {b['best_s']:.3f} s | "
              f"{b['worst_s']:.3f} s | {b['median_ratio']:.2f} | {b['worst_ratio']:.2f} | (the base build, "
              "`FM_BIN=... bench.py --phases detection`, same session) |")
        w("")
    if "cost" in r:
        w("## CPU and memory per HTTP probe, side by side")
        w("")
        w("failover-monitor runs N `http` probes at a 1 s interval (GET, status and body checked, keep-alive")
        w("connections); the exporter is driven by `hey` at the same rate, each request one `http_2xx` probe")
        w("(a new connection per probe, as the exporter does). CPU is the process's utime + stime from /proc.")
        w("\"busy\" is the share of the machine used by other processes during the window.")
        w("")
        w("| probes/s | CPU-s / 1k: now | before | exporter | target | RSS max: now | before | exporter | busy (others) |")
        w("|---|---|---|---|---|---|---|---|---|")
        for row in r["cost"]:
            fm, bb, bf = row["failover_monitor"], row["blackbox_exporter"], row.get("before")
            w(f"| {row['rate']} | {fm['cpu_s_per_1k']:.4f} | {bf['cpu_s_per_1k'] if bf else float('nan'):.4f} | "
              f"{bb['cpu_s_per_1k']:.4f} | <= {TARGETS['cpu'][row['rate']]} | {mb(fm['rss_max_kb'])} | "
              f"{mb(bf['rss_max_kb']) if bf else '-'} | {mb(bb['rss_max_kb'])} | {fm['others_busy_pct']:.0f}% |")
        w("")
        w(f"Targets: RSS at most {TARGETS['rss_200_mb']} MB at 200 probes and at most {TARGETS['per_probe_kb']} KB per "
          "additional probe (see the scale table).")
        w("")
        w("RSS in its two parts (/proc/PID/status, the window's maximum of each): RssAnon is the process's own")
        w("memory (heap, stacks, relocated data); RssFile the pages of mapped files, mostly the executable's code")
        w("that ran (clean, shared with the page cache, reclaimed under pressure).")
        w("")
        w("| probes/s | RssAnon: now | before | exporter | RssFile: now | before | exporter |")
        w("|---|---|---|---|---|---|---|")
        for row in r["cost"]:
            fm, bb, bf = row["failover_monitor"], row["blackbox_exporter"], row.get("before")
            if "anon_max_kb" not in fm:
                continue
            part = lambda x, k: mb(x[k]) if x and k in x else "-"
            w(f"| {row['rate']} | {part(fm, 'anon_max_kb')} | {part(bf, 'anon_max_kb')} | {part(bb, 'anon_max_kb')} | "
              f"{part(fm, 'file_max_kb')} | {part(bf, 'file_max_kb')} | {part(bb, 'file_max_kb')} |")
        w("")
    if "scale" in r:
        w("## Scale: sustained probes per second, schedule lag, memory, /metrics")
        w("")
        w("N http probes at a 1 s interval against nginx (one nginx worker on the same 2 cores). Schedule lag:")
        w("how late each run starts after its slot (the daemon's `failover_monitor_probe_schedule_lag_seconds`")
        w("histogram over the window).")
        w("")
        w("| build | probes | achieved/s | CPU (cores) | CPU-s / 1k | lag p50 | lag p99 | RSS max | KB / probe over 200 | busy (others) |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        base = None
        for row in r.get("cost", []):
            if row["rate"] == 200:
                base = row["failover_monitor"]["rss_max_kb"]
        for row in r["scale"]:
            for build in ("after", "before"):
                x = row.get(build)
                if not x:
                    continue
                cores = x["cpu_s"] / x["window_s"]
                per = f"{(x['rss_max_kb'] - base) / (x['probes'] - 200):.1f}" if base and build == "after" else "-"
                name = "now" if build == "after" else "before"
                if row.get("repeat"):
                    name += " (again)"
                if row.get("stall_s"):
                    name += f", after a {row['stall_s']} s stop"
                w(f"| {name} | {x['probes']} | {x['achieved_per_s']:.0f} | "
                  f"{cores:.2f} | {x['cpu_s_per_1k']:.4f} | {x['lag_p50_ms']:.2f} ms | {x['lag_p99_ms']:.2f} ms | "
                  f"{mb(x['rss_max_kb'])} | {per} | {x['others_busy_pct']:.0f}% |")
        w("")
        w(f"Target: {TARGETS['rate']:,} probes/s with lag p99 under {TARGETS['lag_p99_ms']} ms.")
        w("")
    if "metrics" in r:
        w("## /metrics")
        w("")
        w("Probes at a 10 s interval, all up; 20 GETs of `/metrics` by curl (wall time, connection included).")
        w("")
        w("| probes | series | bytes | median | worst | target |")
        w("|---|---|---|---|---|---|")
        for x in r["metrics"]:
            want = 10000 if x["series"] < 50000 else 160000
            w(f"| {x['probes']} | {x['series']} | {x['bytes']} | {x['median_ms']:.1f} ms | {x['worst_ms']:.1f} ms | "
              f"< {TARGETS['metrics_ms'][want]} ms at {want:,} series |")
        w("")
    if "profile" in r and r["profile"].get("entries"):
        p = r["profile"]
        w("## Where the CPU goes")
        w("")
        w(f"{p['tool']}, {p['seconds']} s at {p['rate']} probes/s. By object:")
        w("")
        w("| share | object |")
        w("|---|---|")
        for d in p["dsos"]:
            w(f"| {d['pct']:.1f}% | {d['dso']} |")
        w("")
        w("Symbols above 0.7% (self time):")
        w("")
        w("| share | object | symbol |")
        w("|---|---|---|")
        for e in p["entries"]:
            w(f"| {e['pct']:.1f}% | {e['dso']} | `{e['symbol']}` |")
        w("")
    if "memory" in r:
        m = r["memory"]
        w("## Where the memory goes")
        w("")
        w(f"{m['probes']} probes, {mb(m['rss_kb'])} RSS: {mb(m['anon_kb'])} of the process's own (RssAnon) and "
          f"{mb(m['file_kb'])} of mapped files (RssFile). The executable's resident pages by section")
        w("(/proc/PID/pagemap; a file page is resident once code touched it or the kernel mapped it around a")
        w("touched one):")
        w("")
        w("| section | resident | of |")
        w("|---|---|---|")
        for x in m["sections"]:
            if x["resident_kb"] >= 64:
                w(f"| `{x['section']}` | {mb(x['resident_kb'])} | {mb(x['size_kb'])} |")
        w("")
    if "provision" in r:
        p = r["provision"]
        w("## Provisioning the stack")
        w("")
        w(f"Measured {p['date']} on {p['machine']}, release build. `failover-monitor provision` against a fresh")
        w(f"two-region emulator, {p['runs']} runs ({p['resources']} resources in both regions, no Route 53 zone).")
        w("Wall time per command (process start to exit):")
        w("")
        w("| command | median | worst |")
        w("|---|---|---|")
        for k, v in p["median_s"].items():
            w(f"| {k} | {v:.2f} s | {p['worst_s'][k]:.2f} s |")
        w("")
        w(f"Peak RSS of one provision process: {p['rss_max_kb'] / 1024:.1f} MB.")
        w("")
    notes = os.path.join(ROOT, "bench", "NOTES.md")
    if os.path.exists(notes):
        w(open(notes).read())
    open(path, "w").write("\n".join(L).rstrip("\n") + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="detection runs")
    ap.add_argument("--window", type=int, default=20, help="seconds per cost/scale window")
    ap.add_argument("--scale", default="2000,10000,20000", help="probes per second to try (1 s interval)")
    ap.add_argument("--before-scale", default="10000,20000", help="of those, the ones the build before runs too")
    ap.add_argument("--stall-scale", default="20000",
                    help="of those, the ones run again after the process was stopped 3 s (a backlog at once)")
    ap.add_argument("--before", default=os.environ.get("BEFORE"), help="an older binary, measured alongside")
    ap.add_argument("--report", default=os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    ap.add_argument("--phases", default="detection,cost,scale,metrics,profile,memory")
    ap.add_argument("--provision-runs", type=int, default=5, help="provisioning runs")
    ap.add_argument("--shared", default=os.environ.get("SHARED"), help="a note: who else used the machine")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from bench/results.json")
    a = ap.parse_args()
    phases = a.phases.split(",")
    raw = os.path.join(ROOT, "bench", "results.json")
    # Phases not run this time keep their last figures.
    results = json.load(open(raw)) if os.path.exists(raw) else {}
    if a.report_only:
        write_report(results, a.report)
        return 0
    results.update(machine=machine(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), shared=a.shared)
    try:
        if "detection" in phases:
            print("== detection: outage -> failover committed in the secondary", flush=True)
            results["detection"] = detection(a.runs, 1000, 3, 500)
            print(json.dumps(results["detection"]), flush=True)
        if "provision" in phases:
            print("== provision", flush=True)
            results["provision"] = provisioning(a.provision_runs)
        http = [p for p in ("cost", "scale", "metrics", "profile", "memory") if p in phases]
        if http:
            d = http_cost.start_nginx()
            try:
                if "cost" in phases:
                    print("== cost", flush=True)
                    results["cost"] = http_cost.cost(a.window, a.before)
                if "scale" in phases:
                    print("== scale", flush=True)
                    counts = [int(x) for x in a.scale.split(",")]
                    before = [int(x) for x in a.before_scale.split(",") if x]
                    stalled = [int(x) for x in a.stall_scale.split(",") if x]
                    results["scale"] = http_cost.scale(a.window, counts, a.before, before, stalled)
                if "metrics" in phases:
                    print("== metrics", flush=True)
                    results["metrics"] = http_cost.metrics_render()
                if "profile" in phases:
                    print("== profile", flush=True)
                    results["profile"] = http_cost.profile()
                if "memory" in phases:
                    print("== memory", flush=True)
                    results["memory"] = http_cost.memory_profile()
            finally:
                http_cost.stop_nginx(d)
    finally:
        for p in PROCS:
            stop(p)
        shutil.rmtree(TMP, ignore_errors=True)
        json.dump(results, open(raw, "w"), indent=1)
    write_report(results, a.report)
    print(f"raw results: {raw}; report: {a.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
