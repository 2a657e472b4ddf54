"""The phases on the AWS emulator: outage to failover, and provisioning the stack."""
import json
import os
import statistics as st
import subprocess
import time

from common import (BIN, READ_TOKEN, ROOT, TMP, VENV, free_port, get, machine, monitor_env, spawn, stop,
                    wait_port)


def moto(port, log):
    p = spawn([os.path.join(VENV, "moto_server"), "-H", "127.0.0.1", "-p", str(port)], log)
    wait_port(port)
    return p


def seed(role, region, url, app_id):
    subprocess.run([os.path.join(VENV, "python"), os.path.join(ROOT, "deploy/local/seed.py"),
                    "--app-id", app_id, "--tables", "per-region", f"--{role}", url, f"--{role}-region", region], check=True)


def read_item(url, region, app_id):
    import boto3
    from botocore.config import Config
    c = boto3.client("dynamodb", region_name=region, endpoint_url=url, aws_access_key_id="test",
                     aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}))
    item = c.get_item(TableName="photos-config", Key={"appId": {"S": app_id}}, ConsistentRead=True).get("Item")
    return item


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
        "target_median_s": 0.85 * budget,
        "target_worst_s": budget + timeout_ms / 1000 + 0.2,
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
