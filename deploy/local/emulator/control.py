"""Controls the replication of running emulated regions (their `/_emulator/replication/`
endpoints), for `deploy/local/emulator.sh` and by hand:

    .venv/bin/python deploy/local/emulator/control.py URL [URL ...] status
    .venv/bin/python deploy/local/emulator/control.py URL [URL ...] lag 500ms
    .venv/bin/python deploy/local/emulator/control.py URL [URL ...] partition | heal
    .venv/bin/python deploy/local/emulator/control.py URL [URL ...] wait [SECONDS]
    .venv/bin/python deploy/local/emulator/control.py URL [URL ...] status --json

Each URL is a region's endpoint (http://127.0.0.1:5001). A region that does not answer
(killed, suspended) is reported and skipped; the command fails only when none answers.
`wait` returns once every region that answers has nothing pending (at most SECONDS, 30
by default), and fails otherwise.
"""

import argparse
import http.client
import json
import sys
import time
import urllib.parse

PREFIX = "/_emulator/replication"


def call(url, verb, action, body=None, timeout=3.0):
    """The region's answer (a dict) to one control call; raises OSError when it does not
    answer, RuntimeError when it refuses."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode("utf-8")
        conn.request(verb, f"{PREFIX}/{action}", data, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        answer = json.loads(resp.read() or b"{}")
        if resp.status != 200:
            raise RuntimeError(answer.get("error", f"HTTP {resp.status}"))
        return answer
    finally:
        conn.close()


def describe(s):
    """One line per direction a region sends, for people."""
    if not s.get("peer"):
        return f"{s.get('region') or '?'}: no peer, replication off"
    out, inbound = s["outbound"], s["inbound"]
    by = out["pending_by_service"]
    state = "PARTITIONED" if s["partitioned"] else "open"
    line = (f"{s['region']} -> {s['peer']['region']}: {out['pending']} pending "
            f"(dynamodb {by['dynamodb']}, s3 {by['s3']}), lag {s['lag_seconds']:g} s, {state}")
    if out.get("last_error"):
        line += f"; last send failed: {out['last_error']}"
    if inbound.get("last_applied_at"):
        ago = time.time() - inbound["last_applied_at"]
        line += f"; last change from {s['peer']['region']} applied {ago:.1f} s ago"
        if inbound.get("last_latency_ms") is not None:
            line += f" ({inbound['last_latency_ms']:.0f} ms after its write)"
    return line


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("urls", nargs="+", metavar="URL")
    ap.add_argument("--json", action="store_true", help="print each region's status as JSON")
    args, rest = ap.parse_known_args(argv)
    # The command is the first word that is not a URL.
    urls = [u for u in args.urls if u.startswith("http")]
    words = [u for u in args.urls if not u.startswith("http")] + rest
    if not urls or not words:
        ap.error("give one or more region URLs, then a command: status, lag DURATION, partition, heal, wait")
    command, params = words[0], words[1:]
    if command == "lag":
        if len(params) != 1:
            ap.error("lag takes a duration: 2s, 500ms, 1.5")
        verb, action, body = "POST", "lag", {"lag": params[0]}
    elif command in ("partition", "heal"):
        verb, action, body = "POST", command, {}
    elif command in ("status", "wait"):
        verb, action, body = "GET", "status", None
    else:
        ap.error(f"unknown command {command!r}")

    deadline = time.monotonic() + (float(params[0]) if command == "wait" and params else 30.0)
    while True:
        answers, failures = [], []
        for url in urls:
            try:
                answers.append(call(url, verb, action, body))
            except (OSError, RuntimeError, ValueError) as e:
                failures.append(f"{url}: {e}")
        pending = sum(a["outbound"]["pending"] for a in answers if a.get("peer"))
        if command != "wait" or pending == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for a in answers:
        print(json.dumps(a, indent=2) if args.json else describe(a))
    for f in failures:
        print(f"not answering: {f}", file=sys.stderr)
    if not answers:
        return 1
    if command == "wait" and pending:
        print(f"still {pending} changes pending", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
