"""The HTTP phases against nginx: CPU and memory per probe (failover-monitor, the
build before, and Debian's blackbox exporter side by side), sustained probes per
second, /metrics, and where the CPU goes (perf, or callgrind where perf cannot run)."""
import os
import re
import signal
import statistics as st
import subprocess
import time

from common import (BIN, HZ, TMP, free_port, lag_quantiles, metrics, monitor_env, rss_parts, spawn,
                    stop, system_ticks, ticks, timed_get, total, wait_port, wait_quiet)

NGINX_CONF = """worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
daemon on;
worker_rlimit_nofile 65536;
events {{ worker_connections 32768; }}
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

NGINX = {}


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
    NGINX.update(dir=d, port=port, dead=free_port())
    return d


def stop_nginx(d):
    subprocess.run(["nginx", "-s", "quit", "-c", f"{d}/nginx.conf", "-p", d])


def nginx_worker_ticks():
    pid = int(open(f"{NGINX['dir']}/nginx.pid").read())
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return sum(ticks(int(k)) for k in kids)


def monitor_for_http(binary, n_probes, interval_s):
    ap, dead = free_port(), NGINX["dead"]
    lines = [f"""[app]
id = "bench"
[regions.primary]
name = "us-east-1"
endpoint_url = "http://127.0.0.1:{dead}"
[regions.secondary]
name = "ap-northeast-1"
endpoint_url = "http://127.0.0.1:{dead}"
[monitor]
instance_id = "bench"
mode = "manual"
state_refresh = "10s"
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
                     f'url = "http://127.0.0.1:{NGINX["port"]}/health.json?p={i}"\nexpect_body = "state"\n')
    path = f"{TMP}/http-{n_probes}.toml"
    open(path, "w").write("".join(lines))
    mon = spawn([binary, "--config", path, "run"], f"{TMP}/monitor-http-{n_probes}.log", env=monitor_env())
    wait_port(ap, timeout=120)
    return mon, ap


def measure_monitor(binary, n_probes, window, interval_s=1, warmup=5, stall=0):
    """N probes of nginx at `interval_s`: runs/s, CPU, RSS, schedule lag, /metrics.
    With `stall` (seconds), the process is stopped that long after the warm-up (what a
    starved machine, a VM's pause or SIGSTOP does): every probe is then due at once,
    and the window, one interval after it resumes, shows whether the backlog drained."""
    wait_quiet()
    mon, ap = monitor_for_http(binary, n_probes, interval_s)
    try:
        time.sleep(warmup + interval_s)
        if stall:
            os.kill(mon.pid, signal.SIGSTOP)
            time.sleep(stall)
            os.kill(mon.pid, signal.SIGCONT)
            time.sleep(interval_s)
        m0, _ = metrics(ap)
        t0, w0, n0, s0 = ticks(mon.pid), time.monotonic(), nginx_worker_ticks(), system_ticks()
        rss, parts = [], []
        while time.monotonic() - w0 < window:
            parts.append(rss_parts(mon.pid))
            rss.append(parts[-1]["VmRSS"])
            time.sleep(0.25)
        m1, _ = metrics(ap)
        t1, w1, n1, s1 = ticks(mon.pid), time.monotonic(), nginx_worker_ticks(), system_ticks()
        runs = total(m1, "failover_monitor_probe_duration_seconds_count") - total(m0, "failover_monitor_probe_duration_seconds_count")
        ok = sum(1 for k, v in m1.items() if k.startswith("failover_monitor_probe_success{") and v == 1)
        cpu = (t1 - t0) / HZ
        p50, p99 = lag_quantiles(m0, m1)
        times, size = timed_get(f"http://127.0.0.1:{ap}/metrics")
        body = subprocess.run(["curl", "-s", f"http://127.0.0.1:{ap}/metrics"], capture_output=True, text=True).stdout
        series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
    finally:
        stop(mon)
    busy = 100.0 * (s1[0] - s0[0]) / max(1, s1[1] - s0[1])
    others = busy - 100.0 * ((t1 - t0) + (n1 - n0)) / max(1, s1[1] - s0[1])
    return {
        "probes": n_probes, "window_s": w1 - w0, "target_per_s": n_probes / interval_s, "achieved_per_s": runs / (w1 - w0),
        "cpu_s": cpu, "cpu_s_per_1k": 1000 * cpu / max(runs, 1), "rss_max_kb": max(rss), "rss_median_kb": st.median(rss),
        "anon_max_kb": max(p["RssAnon"] for p in parts), "file_max_kb": max(p["RssFile"] for p in parts),
        "lag_p50_ms": p50 * 1000, "lag_p99_ms": p99 * 1000, "probes_ok_last": ok,
        "metrics_ms_median": st.median(times) * 1000, "metrics_series": series, "metrics_bytes": size,
        "machine_busy_pct": busy, "others_busy_pct": others,
    }


def measure_blackbox(rate, window):
    """The exporter probing the same nginx, driven at `rate` probes/s by hey."""
    wait_quiet()
    port = free_port()
    conf = f"{TMP}/blackbox.yml"
    open(conf, "w").write("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n"
                          "      method: GET\n      preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n")
    bb = spawn(["prometheus-blackbox-exporter", f"--config.file={conf}", f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn"], f"{TMP}/blackbox.log")
    wait_port(port)
    time.sleep(2)
    url = f"http://127.0.0.1:{port}/probe?target=http://127.0.0.1:{NGINX['port']}/health.json&module=http_2xx"
    workers = max(1, rate // 50)
    t0 = ticks(bb.pid)
    rss, parts = [], []
    load = subprocess.Popen(["hey", "-z", f"{window}s", "-c", str(workers), "-q", str(rate // workers), url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while load.poll() is None:
        parts.append(rss_parts(bb.pid))
        rss.append(parts[-1]["VmRSS"])
        time.sleep(0.25)
    out = load.stdout.read()
    t1 = ticks(bb.pid)
    n = sum(int(x) for x in re.findall(r"\[\d+\]\s+(\d+) responses", out))
    stop(bb)
    cpu = (t1 - t0) / HZ
    return {"target_per_s": rate, "achieved_per_s": n / window, "cpu_s": cpu, "cpu_s_per_1k": 1000 * cpu / max(n, 1),
            "rss_max_kb": max(rss) if rss else 0,
            "anon_max_kb": max((p["RssAnon"] for p in parts), default=0),
            "file_max_kb": max((p["RssFile"] for p in parts), default=0)}


def cost(window, before):
    """CPU and RSS per probe at 200/s and 1,000/s: failover-monitor, the build
    before (when given) and the exporter, in this order, each on a quiet machine."""
    rows = []
    for rate in (200, 1000):
        row = {"rate": rate, "failover_monitor": measure_monitor(BIN, rate, window)}
        if before:
            row["before"] = measure_monitor(before, rate, window)
        row["blackbox_exporter"] = measure_blackbox(rate, window)
        rows.append(row)
        print(row)
    return rows


def scale(window, counts, before, before_counts, stall_counts=(), stall=3):
    """Each count at a 1 s interval; those in `stall_counts` once more after a stall
    of `stall` seconds (the row says so)."""
    rows = []
    for n in counts:
        for s in (0, stall) if n in stall_counts else (0,):
            row = {"after": measure_monitor(BIN, n, window, stall=s)}
            if before and n in before_counts:
                row["before"] = measure_monitor(before, n, window, stall=s)
            if s:
                row["stall_s"] = s
            rows.append(row)
            print(row, flush=True)
    return rows


def metrics_render(targets=(10_000, 160_000)):
    """/metrics at about `targets` series: probes at a 10 s interval (a quiet
    daemon), all up, then 20 GETs by curl."""
    rows = []
    for want in targets:
        n = max(1, (want - 30) // 13)
        wait_quiet()
        mon, ap = monitor_for_http(BIN, n, 10)
        try:
            time.sleep(25 if n > 5000 else 15)  # every probe run twice: up
            times, size = timed_get(f"http://127.0.0.1:{ap}/metrics", 20)
            _, text = metrics(ap)
            series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        finally:
            stop(mon)
        rows.append({"probes": n, "series": series, "bytes": size, "median_ms": st.median(times) * 1000,
                     "worst_ms": max(times) * 1000})
        print(rows[-1])
    return rows


def perf_works():
    r = subprocess.run(["perf", "record", "-e", "cpu-clock", "-o", "/dev/null", "true"], capture_output=True)
    return r.returncode == 0


def profile(rate=1000, seconds=15):
    """Where failover-monitor's CPU goes at `rate` probes/s: perf sampling the
    cpu-clock (the VM has no hardware counters), or callgrind without perf."""
    wait_quiet()
    mon, _ = monitor_for_http(BIN, rate, 1)
    data = f"{TMP}/perf.data"
    try:
        time.sleep(6)
        if perf_works():
            subprocess.run(["perf", "record", "-e", "cpu-clock", "-F", "1999", "-p", str(mon.pid), "-o", data,
                            "--", "sleep", str(seconds)], capture_output=True, check=True)
            tool = "perf record -e cpu-clock -F 1999 (no hardware counters on this VM)"
        else:
            return {"tool": "none", "entries": [], "note": "perf does not work here; run callgrind by hand"}
    finally:
        stop(mon)
    report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
                             "--percent-limit", "0.7"], capture_output=True, text=True).stdout
    entries = []
    for line in report.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.+)$", line)
        if m:
            entries.append({"pct": float(m.group(1)), "dso": m.group(2), "kernel": m.group(3) == "k",
                            "symbol": m.group(4).strip()[:90]})
    split = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso"],
                           capture_output=True, text=True).stdout
    dsos = []
    for line in split.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s*$", line)
        if m:
            dsos.append({"pct": float(m.group(1)), "dso": m.group(2)})
    return {"tool": tool, "rate": rate, "seconds": seconds, "entries": entries[:30], "dsos": dsos[:8]}


def sections(binary):
    """(file offset start, end, name) of the executable's allocated sections."""
    out = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True).stdout
    found = []
    for m in re.finditer(r"\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", out):
        addr, off, size = (int(m.group(k), 16) for k in (2, 3, 4))
        if addr and size:
            found.append((off, off + size, m.group(1)))
    return found


def memory_profile(probes=200, settle=10):
    """Where the RSS of `probes` probes is: the process's own memory, and the pages of
    the executable that are resident (/proc/PID/pagemap), by section. A page of a
    file mapping is resident once touched, or when the kernel mapped it around a
    touched one (fault-around, 64 KB)."""
    wait_quiet()
    mon, _ = monitor_for_http(BIN, probes, 1)
    try:
        time.sleep(settle)
        parts = rss_parts(mon.pid)
        real = os.path.realpath(BIN)
        resident = []
        with open(f"/proc/{mon.pid}/maps") as maps, open(f"/proc/{mon.pid}/pagemap", "rb") as pm:
            for line in maps:
                f = line.split()
                if len(f) < 6 or os.path.realpath(f[5]) != real:
                    continue
                lo, hi = (int(x, 16) for x in f[0].split("-"))
                offset = int(f[2], 16)
                pm.seek(lo // 4096 * 8)
                data = pm.read((hi - lo) // 4096 * 8)
                for i in range((hi - lo) // 4096):
                    if int.from_bytes(data[i * 8:i * 8 + 8], "little") >> 63:
                        resident.append(offset + i * 4096)
    finally:
        stop(mon)
    secs = sections(BIN)
    by = {}
    for off in resident:
        name = next((n for s0, s1, n in secs if s0 <= off < s1 or off <= s0 < off + 4096), "other")
        by[name] = by.get(name, 0) + 4
    size = {n: (s1 - s0) // 1024 for s0, s1, n in secs}
    rows = sorted(({"section": n, "resident_kb": kb, "size_kb": size.get(n, 0)} for n, kb in by.items()),
                  key=lambda r: -r["resident_kb"])
    return {"probes": probes, "rss_kb": parts["VmRSS"], "anon_kb": parts["RssAnon"], "file_kb": parts["RssFile"],
            "sections": rows}
