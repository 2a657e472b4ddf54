#!/usr/bin/env python3
"""failover-monitor benchmarks, side by side with Debian's prometheus-blackbox-exporter.

Run through bench/run.sh (it installs nginx, wrk, hey and the exporter, builds the
release binary, and runs this with the emulator's Python). All traffic is on 127.0.0.1.

Phases (each prints a table and adds it to the report):
  detection  outage -> config item committed in the secondary, N runs on the emulator
  cost       CPU seconds per 1,000 HTTP probes and RSS: failover-monitor vs the exporter
  scale      sustained probes/s, schedule lag p50/p99, RSS, /metrics render time
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics as st
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "failover-monitor")
VENV = os.path.join(ROOT, ".venv", "bin")
HZ = os.sysconf("SC_CLK_TCK")
TMP = tempfile.mkdtemp(prefix="fm-bench-")
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def spawn(args, log, env=None):
    p = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    PROCS.append(p)
    return p


def stop(p):
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGCONT)
        except OSError:
            pass
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# /v1/status needs a token: the benchmarked monitors get this read-only one.
READ_TOKEN = "bench-read-token-0123456789"


def get(url, timeout=5, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
        return r.read()


def metrics(port):
    text = get(f"http://127.0.0.1:{port}/metrics").decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out, text


def total(m, prefix):
    return sum(v for k, v in m.items() if k.startswith(prefix))


def lag_quantiles(before, after, qs=(0.5, 0.99)):
    """histogram_quantile over the window between two scrapes of the lag histogram."""
    name = "failover_monitor_probe_schedule_lag_seconds_bucket"
    buckets = []
    for k, v in after.items():
        if k.startswith(name):
            le = re.search(r'le="([^"]+)"', k).group(1)
            buckets.append((float("inf") if le == "+Inf" else float(le), v - before.get(k, 0)))
    buckets.sort()
    count = buckets[-1][1] if buckets else 0
    res = []
    for q in qs:
        rank, prev_le, prev_c = q * count, 0.0, 0.0
        val = float("nan")
        for le, c in buckets:
            if c >= rank:
                val = prev_le if le == float("inf") else prev_le + (le - prev_le) * ((rank - prev_c) / max(c - prev_c, 1e-9))
                break
            prev_le, prev_c = le, c
        res.append(val)
    return res


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = int(open("/proc/meminfo").readline().split()[1]) // 1024
    return f"{os.cpu_count()} cores ({model}), {mem} MiB, kernel {os.uname().release}"


# ------------------------------------------------------------------ emulator helpers
def moto(port, log):
    p = spawn([os.path.join(VENV, "moto_server"), "-H", "127.0.0.1", "-p", str(port)], log)
    wait_port(port)
    return p


def seed(role, region, url, app_id):
    subprocess.run([os.path.join(VENV, "python"), os.path.join(ROOT, "deploy/local/seed.py"),
                    "--app-id", app_id, f"--{role}", url, f"--{role}-region", region], check=True)


def read_item(url, region, app_id):
    import boto3
    from botocore.config import Config
    c = boto3.client("dynamodb", region_name=region, endpoint_url=url, aws_access_key_id="test",
                     aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}))
    item = c.get_item(TableName="photos-config", Key={"appId": {"S": app_id}}, ConsistentRead=True).get("Item")
    return item


def monitor_env():
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", RUST_LOG="warn")
    env.pop("FAILOVER_MONITOR_ADMIN_TOKEN", None)
    env["FAILOVER_MONITOR_ADMIN_READ_TOKEN"] = READ_TOKEN
    return env


def detection(runs, interval_ms, fall, timeout_ms):
    """Outage (primary emulator killed) -> item `failover` in the secondary."""
    app_id = "bench-app"
    times = []
    for i in range(runs):
        pp, sp, ap = free_port(), free_port(), free_port()
        pm = moto(pp, f"{TMP}/moto-p.log")
        sm = moto(sp, f"{TMP}/moto-s.log")
        seed("primary", "us-east-1", f"http://127.0.0.1:{pp}", app_id)
        seed("secondary", "ap-northeast-1", f"http://127.0.0.1:{sp}", app_id)
        cfg = f"""[app]
id = "{app_id}"
[regions.primary]
name = "us-east-1"
endpoint_url = "http://127.0.0.1:{pp}"
[regions.secondary]
name = "ap-northeast-1"
endpoint_url = "http://127.0.0.1:{sp}"
[monitor]
instance_id = "bench"
hold_down = "0s"
state_refresh = "1s"
[probe_defaults]
interval = "{interval_ms}ms"
timeout = "{timeout_ms}ms"
jitter = "0ms"
fall = {fall}
rise = 2
[admin]
listen = "127.0.0.1:{ap}"
[[probes]]
name = "p-endpoint"
kind = "http"
region = "primary"
url = "http://127.0.0.1:{pp}/"
[[probes]]
name = "p-photos"
kind = "s3"
region = "primary"
check = "roundtrip"
[[probes]]
name = "p-config"
kind = "dynamodb"
region = "primary"
[[probes]]
name = "s-config"
kind = "dynamodb"
region = "secondary"
"""
        path = f"{TMP}/detect.toml"
        open(path, "w").write(cfg)
        mon = spawn([BIN, "--config", path, "run"], f"{TMP}/monitor-detect.log", env=monitor_env())
        wait_port(ap)
        end = time.time() + 30
        while time.time() < end:
            s = json.loads(get(f"http://127.0.0.1:{ap}/v1/status", token=READ_TOKEN))
            if s.get("ready") and all(p["health"] == "up" for p in s["probes"]):
                break
            time.sleep(0.1)
        time.sleep(0.2 + (i % 10) * interval_ms / 10000)  # vary the phase against the probe slots
        t0 = time.monotonic()
        pm.kill()
        pm.wait()
        took = None
        while time.monotonic() - t0 < 30:
            item = read_item(f"http://127.0.0.1:{sp}", "ap-northeast-1", app_id)
            if item and item["state"]["S"] == "failover":
                took = time.monotonic() - t0
                break
            time.sleep(0.01)
        for p in (mon, sm):
            stop(p)
        if took is None:
            print(f"  run {i + 1}: no failover within 30 s")
        else:
            times.append(took)
            print(f"  run {i + 1}: {took * 1000:.0f} ms")
    budget = fall * interval_ms / 1000
    ratios = [t / budget for t in times]
    return {
        "runs": runs, "failovers": len(times), "fall": fall, "interval_ms": interval_ms, "timeout_ms": timeout_ms,
        "median_s": st.median(times), "worst_s": max(times), "best_s": min(times),
        "median_ratio": st.median(ratios), "worst_ratio": max(ratios),
        "target_s": 1.15 * budget + timeout_ms / 1000,
    }


# ------------------------------------------------------------------ HTTP cost and scale
NGINX_CONF = """worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
daemon on;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp-body; proxy_temp_path {d}/tmp-proxy; fastcgi_temp_path {d}/tmp-fcgi;
  uwsgi_temp_path {d}/tmp-uwsgi; scgi_temp_path {d}/tmp-scgi;
  keepalive_requests 10000000;
  server {{
    listen 127.0.0.1:{port};
    root {d}/www;
    default_type application/json;
    location / {{ try_files $uri /health.json; }}
  }}
  server {{ listen 127.0.0.1:{status}; location = /nginx_status {{ stub_status; }} }}
}}
"""


def start_nginx():
    d = f"{TMP}/nginx"
    os.makedirs(f"{d}/www", exist_ok=True)
    # nginx's workers run unprivileged: they must be able to read the files.
    for path in (TMP, d, f"{d}/www"):
        os.chmod(path, 0o755)
    open(f"{d}/www/health.json", "w").write('{"state":"active"}\n')
    os.chmod(f"{d}/www/health.json", 0o644)
    port, status = free_port(), free_port()
    open(f"{d}/nginx.conf", "w").write(NGINX_CONF.format(d=d, port=port, status=status))
    subprocess.run(["nginx", "-c", f"{d}/nginx.conf", "-p", d], check=True)
    wait_port(port)
    return d, port, status


def stop_nginx(d):
    subprocess.run(["nginx", "-s", "quit", "-c", f"{d}/nginx.conf", "-p", d])


def monitor_for_http(n_probes, interval_s, nginx_port, dead_port):
    ap = free_port()
    lines = [f"""[app]
id = "bench"
[regions.primary]
name = "us-east-1"
endpoint_url = "http://127.0.0.1:{dead_port}"
[regions.secondary]
name = "ap-northeast-1"
endpoint_url = "http://127.0.0.1:{dead_port}"
[monitor]
instance_id = "bench"
mode = "manual"
state_refresh = "60s"
[probe_defaults]
interval = "{interval_s}s"
timeout = "900ms"
jitter = "0ms"
fall = 3
rise = 2
[policy]
failover_when = "all"
require_healthy_secondary = false
[admin]
listen = "127.0.0.1:{ap}"
"""]
    for i in range(n_probes):
        lines.append(f'[[probes]]\nname = "h{i}"\nkind = "http"\nregion = "primary"\n'
                     f'url = "http://127.0.0.1:{nginx_port}/health.json?p={i}"\nexpect_body = "state"\n')
    path = f"{TMP}/http-{n_probes}.toml"
    open(path, "w").write("".join(lines))
    mon = spawn([BIN, "--config", path, "run"], f"{TMP}/monitor-http-{n_probes}.log", env=monitor_env())
    wait_port(ap)
    return mon, ap


def measure_monitor(n_probes, interval_s, window, nginx_port, dead_port, warmup=5):
    mon, ap = monitor_for_http(n_probes, interval_s, nginx_port, dead_port)
    time.sleep(warmup + interval_s)
    m0, _ = metrics(ap)
    t0, w0 = ticks(mon.pid), time.monotonic()
    rss = []
    while time.monotonic() - w0 < window:
        rss.append(rss_kb(mon.pid))
        time.sleep(0.25)
    m1, _ = metrics(ap)
    t1, w1 = ticks(mon.pid), time.monotonic()
    runs = total(m1, "failover_monitor_probe_duration_seconds_count") - total(m0, "failover_monitor_probe_duration_seconds_count")
    ok = sum(1 for k, v in m1.items() if k.startswith("failover_monitor_probe_success{") and v == 1)
    cpu = (t1 - t0) / HZ
    p50, p99 = lag_quantiles(m0, m1)
    render = []
    for _ in range(10):
        a = time.perf_counter()
        body = get(f"http://127.0.0.1:{ap}/metrics", timeout=30)
        render.append(time.perf_counter() - a)
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    stop(mon)
    return {
        "probes": n_probes, "window_s": w1 - w0, "target_per_s": n_probes / interval_s, "achieved_per_s": runs / (w1 - w0),
        "cpu_s": cpu, "cpu_s_per_1k": 1000 * cpu / max(runs, 1), "rss_max_kb": max(rss), "rss_median_kb": st.median(rss),
        "lag_p50_ms": p50 * 1000, "lag_p99_ms": p99 * 1000, "probes_ok_last": ok,
        "metrics_ms_median": st.median(render) * 1000, "metrics_series": series,
    }


def measure_blackbox(rate, window):
    """The exporter probing the same nginx, driven at `rate` probes/s by hey."""
    d, nginx_port = BB["nginx_dir"], BB["nginx_port"]
    port = free_port()
    conf = f"{TMP}/blackbox.yml"
    open(conf, "w").write("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n"
                          "      method: GET\n      preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n")
    bb = spawn(["prometheus-blackbox-exporter", f"--config.file={conf}", f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn"], f"{TMP}/blackbox.log")
    wait_port(port)
    time.sleep(2)
    url = f"http://127.0.0.1:{port}/probe?target=http://127.0.0.1:{nginx_port}/health.json&module=http_2xx"
    workers = max(1, rate // 50)
    t0 = ticks(bb.pid)
    rss = []
    load = subprocess.Popen(["hey", "-z", f"{window}s", "-c", str(workers), "-q", str(rate // workers), url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while load.poll() is None:
        rss.append(rss_kb(bb.pid))
        time.sleep(0.25)
    out = load.stdout.read()
    t1 = ticks(bb.pid)
    n = sum(int(x) for x in re.findall(r"\[\d+\]\s+(\d+) responses", out))
    stop(bb)
    cpu = (t1 - t0) / HZ
    return {"target_per_s": rate, "achieved_per_s": n / window, "cpu_s": cpu, "cpu_s_per_1k": 1000 * cpu / max(n, 1),
            "rss_max_kb": max(rss) if rss else 0}


BB = {}

ANCHOR = {  # ../shared/bench/README.md: Debian blackbox_exporter 0.23 on a 2-core machine of this kind
    "cpu_s_per_1k": "0.75 to 1.2 (1.21 at 200/s, 0.89 at 1000/s, 0.64 at saturation)",
    "saturation": "~2,300 probes/s with the machine 87% busy",
    "rss": "14 MB idle, 25 to 31 MB under load",
    "detection": "Prometheus + exporter, scrape 1 s, 3 failures: alert firing 2.89 to 3.70 s after the failure",
}


def provisioning(runs):
    """Times each provision command on a fresh two-region emulator, `runs` times."""
    # The first plan meets a cold emulator (moto loads each service on its first
    # request); the second shows the tool's own cost on the same empty stack.
    steps = ["plan (empty, cold emulator)", "plan (empty)", "apply (create)", "plan (converged)",
             "apply (no change)", "destroy"]
    times = {k: [] for k in steps}
    rss = {k: [] for k in steps}
    count = None
    binary = os.path.join(ROOT, "target", "release", "failover-monitor")
    for i in range(runs):
        pp, sp = free_port(), free_port()
        procs = [moto(pp, os.path.join(TMP, f"prov-p{i}.log")), moto(sp, os.path.join(TMP, f"prov-s{i}.log"))]
        cfg = os.path.join(TMP, "provision.toml")
        open(cfg, "w").write(
            f'[app]\nid = "bench-app"\nproject = "photos"\n'
            f'[regions.primary]\nname = "us-east-1"\nendpoint_url = "http://127.0.0.1:{pp}"\n'
            f'[regions.secondary]\nname = "ap-northeast-1"\nendpoint_url = "http://127.0.0.1:{sp}"\n'
            f'[stack]\ncognito_username = "ops"\ncognito_email = "ops@example.com"\n')
        try:
            for step in steps:
                args = {"plan (empty, cold emulator)": ["plan"], "plan (empty)": ["plan"], "apply (create)": ["apply"], "plan (converged)": ["plan"],
                        "apply (no change)": ["apply"], "destroy": ["destroy", "--yes"]}[step]
                t = time.monotonic()
                log = os.path.join(TMP, "provision.out")
                with open(log, "w") as f:
                    proc = subprocess.Popen([binary, "--config", cfg, "provision", *args], env=monitor_env(),
                                            stdout=f, stderr=subprocess.STDOUT, cwd=TMP)
                    # wait4: the rusage of this process alone (not of the emulators).
                    _, status, usage = os.wait4(proc.pid, 0)
                    proc.returncode = os.waitstatus_to_exitcode(status)
                times[step].append(time.monotonic() - t)
                rss[step].append(usage.ru_maxrss)
                stdout = open(log).read()
                assert proc.returncode == 0, stdout
                if step == "apply (create)":
                    count = sum(1 for l in stdout.splitlines() if "... created" in l)
                if step == "apply (no change)":
                    assert "0 created, 0 updated" in stdout, stdout
        finally:
            for p in procs:
                stop(p)
    return {"runs": runs, "resources": count, "machine": machine(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "median_s": {k: st.median(v) for k, v in times.items()},
            "worst_s": {k: max(v) for k, v in times.items()},
            "rss_max_kb": max(max(v) for v in rss.values())}


def write_report(r, path, cmd):
    L = []
    w = L.append
    w("# Performance")
    w("")
    w(f"Measured {r['date']} on {r['machine']}, with the release build, everything on 127.0.0.1.")
    w(f"Reproduce: `{cmd}` (installs nginx, wrk, hey and prometheus-blackbox-exporter from Debian,")
    w("builds the release binary, runs `bench/bench.py`, rewrites this file; raw figures in `bench/results.json`).")
    w("The exporter runs in the same invocation, against the same nginx, right after failover-monitor.")
    w("")
    if "detection" in r:
        d = r["detection"]
        w("## Outage to failover")
        w("")
        w(f"The primary's emulator process is killed; the time until the config item reads `failover` in the")
        w(f"secondary (polled every 10 ms). Probes: http, s3 roundtrip, dynamodb on the primary, dynamodb on the")
        w(f"secondary; interval {d['interval_ms']} ms, fall {d['fall']}, timeout {d['timeout_ms']} ms, rule majority.")
        w("")
        w("| runs | failovers | median | best | worst | median / (fall x interval) | worst / (fall x interval) | target |")
        w("|---|---|---|---|---|---|---|---|")
        w(f"| {d['runs']} | {d['failovers']} | {d['median_s']:.3f} s | {d['best_s']:.3f} s | {d['worst_s']:.3f} s | "
          f"{d['median_ratio']:.2f} | {d['worst_ratio']:.2f} | <= {d['target_s']:.2f} s (1.15 x fall x interval + timeout) |")
        w("")
        w(f"Anchor: {ANCHOR['detection']}. A scheduler of its own detects between (fall-1) x interval + d and")
        w("fall x interval + d (d: a refused connection costs ms), and the commit adds one conditional transaction.")
        w("")
    if "cost" in r:
        w("## CPU per 1,000 HTTP probes, side by side")
        w("")
        w("failover-monitor runs N `http` probes at a 1 s interval (GET, status and body checked, keep-alive")
        w("connections); the exporter is driven by `hey` at the same rate, each request one `http_2xx` probe")
        w("(a new connection per probe, as the exporter does). CPU is the process's utime + stime from /proc.")
        w("")
        w("| probes/s | failover-monitor CPU-s / 1k | exporter CPU-s / 1k | failover-monitor RSS max | exporter RSS max | achieved (fm / exporter) |")
        w("|---|---|---|---|---|---|")
        for row in r["cost"]:
            fm, bb = row["failover_monitor"], row["blackbox_exporter"]
            w(f"| {row['rate']} | {fm['cpu_s_per_1k']:.4f} | {bb['cpu_s_per_1k']:.4f} | {fm['rss_max_kb'] / 1024:.1f} MB | "
              f"{bb['rss_max_kb'] / 1024:.1f} MB | {fm['achieved_per_s']:.0f} / {bb['achieved_per_s']:.0f} |")
        w("")
        w(f"Anchor (measured here before, same method): {ANCHOR['cpu_s_per_1k']} CPU-s per 1,000; RSS {ANCHOR['rss']}.")
        w("Target: at most 0.1 CPU-s per 1,000 probes, RSS at most 20 MB at 200 probes.")
        w("")
    if "scale" in r:
        w("## Scale: sustained probes per second, schedule lag, memory, /metrics")
        w("")
        w("N http probes at a 1 s interval against nginx. Schedule lag: how late each run starts after its slot")
        w("(from the daemon's `failover_monitor_probe_schedule_lag_seconds` histogram over the window).")
        w("")
        w("| probes | target/s | achieved/s | CPU (cores) | CPU-s / 1k | lag p50 | lag p99 | RSS max | /metrics (series, median time) |")
        w("|---|---|---|---|---|---|---|---|---|")
        for x in r["scale"]:
            cores = x["cpu_s"] / x["window_s"]
            w(f"| {x['probes']} | {x['target_per_s']:.0f} | {x['achieved_per_s']:.0f} | {cores:.2f} | {x['cpu_s_per_1k']:.4f} | "
              f"{x['lag_p50_ms']:.2f} ms | {x['lag_p99_ms']:.2f} ms | {x['rss_max_kb'] / 1024:.1f} MB | "
              f"{x['metrics_series']}, {x['metrics_ms_median']:.1f} ms |")
        w("")
        w(f"Anchor: the exporter saturates at {ANCHOR['saturation']}. Target: 10,000 probes/s with lag p99 under 50 ms.")
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
        w(f"Peak RSS of one provision process: {p['rss_max_kb'] / 1024:.1f} MB. The first command against a fresh")
        w("emulator pays for moto loading each service on its first request; the second, identical plan shows")
        w("the tool's own cost. On AWS the same commands wait for tables to become ACTIVE and for CloudFront to deploy (minutes);")
        w("the emulator answers at once, so these figures are the tool's own overhead plus the emulator's.")
        w("")
    extra = os.path.join(ROOT, "bench", "NOTES.md")
    if os.path.exists(extra):
        w(open(extra).read())
    open(path, "w").write("\n".join(L) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="detection runs")
    ap.add_argument("--window", type=int, default=20, help="seconds per cost/scale window")
    ap.add_argument("--scale", default="2000,5000,10000,15000", help="probes per second to try (1 s interval)")
    ap.add_argument("--report", default=os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    ap.add_argument("--phases", default="detection,cost,scale,provision")
    ap.add_argument("--provision-runs", type=int, default=5, help="provisioning runs")
    a = ap.parse_args()
    phases = a.phases.split(",")
    raw = os.path.join(ROOT, "bench", "results.json")
    # Phases not run this time keep their last figures.
    results = json.load(open(raw)) if os.path.exists(raw) else {}
    if set(phases) & {"detection", "cost", "scale"}:
        results.update(machine=machine(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    try:
        if "detection" in phases:
            print("== detection: outage -> failover committed in the secondary")
            results["detection"] = detection(a.runs, 1000, 3, 500)
            print(json.dumps(results["detection"], indent=1))
        if "provision" in phases:
            print("== provision: plan, apply, apply again, destroy")
            results["provision"] = provisioning(a.provision_runs)
            print(json.dumps(results["provision"], indent=1))
        if "cost" in phases or "scale" in phases:
            d, port, _ = start_nginx()
            BB.update(nginx_dir=d, nginx_port=port)
            dead = free_port()
            try:
                if "cost" in phases:
                    print("== cost: CPU per 1,000 HTTP probes, side by side")
                    rows = []
                    for rate in (200, 1000):
                        fm = measure_monitor(rate, 1, a.window, port, dead)
                        bb = measure_blackbox(rate, a.window)
                        rows.append({"rate": rate, "failover_monitor": fm, "blackbox_exporter": bb})
                        print(json.dumps(rows[-1], indent=1))
                    results["cost"] = rows
                if "scale" in phases:
                    print("== scale: sustained probes per second")
                    rows = []
                    for n in [int(x) for x in a.scale.split(",")]:
                        rows.append(measure_monitor(n, 1, a.window, port, dead))
                        print(json.dumps(rows[-1], indent=1))
                    results["scale"] = rows
            finally:
                stop_nginx(d)
    finally:
        for p in PROCS:
            stop(p)
        shutil.rmtree(TMP, ignore_errors=True)
    json.dump(results, open(raw, "w"), indent=1)
    write_report(results, a.report, "bench/run.sh")
    print(f"raw results: {raw}; report: {a.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
