"""What the benchmark phases share: processes, /proc readings, the daemon's /metrics."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# FM_BIN: another build, for the phases that take no "before" of their own (detection).
BIN = os.environ.get("FM_BIN") or os.path.join(ROOT, "target", "release", "failover-monitor")
VENV = os.path.join(ROOT, ".venv", "bin")
HZ = os.sysconf("SC_CLK_TCK")
TMP = tempfile.mkdtemp(prefix="fm-bench-")
PROCS = []
# /v1/status needs a token: the benchmarked monitors get this read-only one.
READ_TOKEN = "bench-read-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60):
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
    return rss_parts(pid)["VmRSS"]


def rss_parts(pid):
    """VmRSS and its parts (kB): RssAnon, the process's own memory; RssFile, pages of
    files mapped (the executable's code among them: clean, shared, reclaimable)."""
    parts = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in parts:
                parts[key] = int(line.split()[1])
    return parts


def system_ticks():
    """(busy, total) ticks of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return busy, busy + v[3] + v[4]


def wait_quiet(pct=None, max_wait=None):
    """Waits until the rest of the machine is quiet (others share it): below `pct` %
    busy over 3 s, for at most `max_wait` s. Returns how busy it was at the end."""
    pct = pct if pct is not None else float(os.environ.get("QUIET_PCT", 15))
    max_wait = max_wait if max_wait is not None else float(os.environ.get("QUIET_MAX_WAIT", 600))
    waited = 0.0
    while True:
        b0, t0 = system_ticks()
        time.sleep(3)
        b1, t1 = system_ticks()
        busy = 100.0 * (b1 - b0) / max(1, t1 - t0)
        if busy < pct or waited >= max_wait:
            if waited >= max_wait:
                print(f"  (proceeding on a busy machine: {busy:.0f}% busy)")
            return busy
        waited += 3
        if int(waited) % 60 < 3:
            print(f"  (waiting for a quiet machine: {busy:.0f}% busy, {waited:.0f} s)")


def get(url, timeout=5, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
        return r.read()


def metrics(port):
    text = get(f"http://127.0.0.1:{port}/metrics", timeout=30).decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out, text


def total(m, prefix):
    return sum(v for k, v in m.items() if k.startswith(prefix))


def timed_get(url, n=10):
    """Wall times of `n` GETs of `url` by curl (no Python in the measurement), and
    the size of the last body."""
    times, size = [], 0
    for _ in range(n):
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", url],
                             capture_output=True, text=True, check=True).stdout.split()
        times.append(float(out[0]))
        size = int(out[1])
    return times, size


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


def monitor_env():
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", RUST_LOG="warn")
    env.pop("FAILOVER_MONITOR_ADMIN_TOKEN", None)
    env["FAILOVER_MONITOR_ADMIN_READ_TOKEN"] = READ_TOKEN
    return env
