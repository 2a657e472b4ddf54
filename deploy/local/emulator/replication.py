"""Replication between the two region processes of the local emulator: the link to the
peer region, its outbox, and the control endpoints under `/_emulator/replication/`.

What is replicated, and how AWS does it, is in `global_tables` (DynamoDB global tables,
version 2019.11.21) and `bucket_replication` (S3 Replication); both record changes here
and apply what the peer sends them. The design, and why it has this shape:

- **Each region pushes its own changes.** A change leaves only from the process where
  it was written, in a sender thread of that process. Killing a region (SIGKILL) stops
  everything flowing out of it, and its outbox, never sent, dies with it: that is the
  data a real region outage loses (the RPO). SIGSTOP freezes the sender with the rest of
  the process; the peer's sends to the stopped region time out and are tried again.
- **Nothing is lost while both live.** A change stays in the outbox, in the order it was
  recorded, until the peer has answered for it; a send that fails (peer down or hung,
  link partitioned) is tried again, from the same change, until it goes through. The
  peer applies idempotently (DynamoDB by write timestamp, S3 by version id), so a batch
  sent twice after a lost answer changes nothing the second time.
- **Lag.** A change becomes due `lag` seconds after it was recorded (default 1 s,
  `--replication-lag`, `POST /_emulator/replication/lag`). AWS documents no fixed delay
  for either service; a lag the tests can set makes "not yet there" observable.
- **Partition.** `POST /_emulator/replication/partition` stops this region's sender
  and makes it refuse what the peer sends (503), so a partition set on either side cuts
  both directions of that side; `emulator.sh partition-replication` sets it on both.
  Changes queue meanwhile; `heal` sends them.
- **The path.** The endpoints live under `/_emulator/`: no AWS API path begins with
  `/_` (an S3 bucket name, the first segment of a path-style request, starts with a
  letter or a digit), so they can never shadow a request meant for moto.
- **One lock per process.** A client write that replication records (DynamoDB items,
  S3 objects) and the application of a change from the peer take `WRITE_LOCK`, so that
  the write, its timestamp and its place in the outbox agree, and a change from the
  peer is never applied between a local write and its recording.
"""

import collections
import http.client
import json
import re
import sys
import threading
import time
import urllib.parse

PREFIX = "/_emulator/replication"
DEFAULT_LAG = 1.0
SEND_TIMEOUT = 5.0  # a hung (SIGSTOPped) peer: give up on the send after this, try again
RETRY_MIN, RETRY_MAX = 0.2, 2.0
BATCH_CHANGES = 200
BATCH_BYTES = 8 * 1024 * 1024
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# Held by a recorded client write, and by the application of a peer's change.
WRITE_LOCK = threading.RLock()

_LINK = None


def log(message):
    print(f"[replication] {message}", file=sys.stderr, flush=True)


def link():
    """This process's link to its peer (configured by `configure`), or None."""
    return _LINK


def parse_duration(text):
    """Seconds from `2s`, `500ms`, `1.5s`, `1m` or a bare number of seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", str(text))
    if not m:
        raise ValueError(f"not a duration: {text!r} (examples: 2s, 500ms, 1.5)")
    value = float(m.group(1))
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[m.group(2)]


class Change:
    """One recorded change. `body` is what the peer's applier receives (JSON);
    `on_result(result)` runs here once the peer has answered for it."""

    __slots__ = ("seq", "recorded", "wall", "service", "body", "size", "on_result")

    def __init__(self, seq, service, body, on_result):
        self.seq = seq
        self.recorded = time.monotonic()
        self.wall = time.time()
        self.service = service
        self.body = body
        self.size = len(json.dumps(body, separators=(",", ":")))
        self.on_result = on_result


class Link:
    """The one-way road from this region to its peer, and the counters of the road in."""

    def __init__(self, region, peer_url=None, peer_region=None, lag=DEFAULT_LAG, send_timeout=SEND_TIMEOUT):
        self.region = region
        self.send_timeout = send_timeout
        self.peer_url = peer_url.rstrip("/") if peer_url else None
        self.peer_region = peer_region
        self.lag = lag
        self.partitioned = False
        self._cond = threading.Condition()
        self._outbox = collections.deque()
        self._seq = 0
        self._retry_at = 0.0
        self._backoff = RETRY_MIN
        self.out = {"recorded": 0, "acknowledged": 0, "sends_failed": 0, "last_ack_at": None,
                    "last_error": None, "last_error_at": None}
        self.inbound = {"applied": 0, "skipped": 0, "failed": 0, "dropped": 0,
                        "refused_partitioned": 0, "batches": 0, "last_applied_at": None,
                        "last_latency_ms": None, "max_latency_ms": None}
        self.appliers = {}
        self.status_parts = {}
        self._thread = None

    @property
    def active(self):
        return self.peer_url is not None

    # -- recording -------------------------------------------------------------

    def enqueue(self, service, body, on_result=None):
        with self._cond:
            self._seq += 1
            self._outbox.append(Change(self._seq, service, body, on_result))
            self.out["recorded"] += 1
            self._cond.notify_all()

    # -- control ---------------------------------------------------------------

    def set_lag(self, seconds):
        if seconds < 0:
            raise ValueError("the lag cannot be negative")
        with self._cond:
            self.lag = seconds
            self._cond.notify_all()

    def set_partitioned(self, partitioned):
        with self._cond:
            self.partitioned = partitioned
            if not partitioned:
                self._retry_at = 0.0
                self._backoff = RETRY_MIN
            self._cond.notify_all()

    def status(self):
        with self._cond:
            pending = collections.Counter(c.service for c in self._outbox)
            oldest = time.monotonic() - self._outbox[0].recorded if self._outbox else None
            out = dict(self.out, pending=len(self._outbox),
                       pending_by_service={"dynamodb": pending["dynamodb"], "s3": pending["s3"]},
                       oldest_pending_seconds=None if oldest is None else round(oldest, 3))
            answer = {
                "region": self.region,
                "peer": {"region": self.peer_region, "url": self.peer_url} if self.active else None,
                "lag_seconds": self.lag,
                "partitioned": self.partitioned,
                "outbound": out,
                "inbound": dict(self.inbound),
            }
        for name, part in self.status_parts.items():
            answer[name] = part()
        return answer

    # -- sending ---------------------------------------------------------------

    def start(self):
        if self.active and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="replication-sender", daemon=True)
            self._thread.start()

    def _next_batch(self):
        """Waits until changes are due and the link is open; returns them (a prefix of
        the outbox: changes are recorded in time order, so they fall due in order)."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self.partitioned or not self._outbox:
                    self._cond.wait(1.0)
                    continue
                due = self._outbox[0].recorded + self.lag
                wake = max(due, self._retry_at)
                if now < wake:
                    self._cond.wait(wake - now)
                    continue
                batch, size = [], 0
                for change in self._outbox:
                    if change.recorded + self.lag > now or len(batch) >= BATCH_CHANGES:
                        break
                    if batch and size + change.size > BATCH_BYTES:
                        break
                    batch.append(change)
                    size += change.size
                return batch

    def _run(self):
        while True:
            batch = self._next_batch()
            payload = {"from": self.region, "to": self.peer_region,
                       "changes": [{"seq": c.seq, "service": c.service, "recorded_at": c.wall,
                                    "body": c.body} for c in batch]}
            try:
                answer = self._post(PREFIX + "/apply", payload)
                results = answer["results"]
                if len(results) != len(batch):
                    raise ValueError(f"{len(results)} results for {len(batch)} changes")
            except Exception as e:  # noqa: BLE001 - any failure of the road: try again later
                with self._cond:
                    self.out["sends_failed"] += 1
                    self.out["last_error"] = f"{type(e).__name__}: {e}"
                    self.out["last_error_at"] = time.time()
                    self._retry_at = time.monotonic() + self._backoff
                    self._backoff = min(self._backoff * 2, RETRY_MAX)
                continue
            with self._cond:
                for change in batch:
                    # Only this thread removes, and it sent the head of the outbox.
                    assert self._outbox[0] is change
                    self._outbox.popleft()
                self.out["acknowledged"] += len(batch)
                self.out["last_ack_at"] = time.time()
                self.out["last_error"] = None
                self._backoff = RETRY_MIN
                self._retry_at = 0.0
            # Outside the outbox's lock: a result handler takes WRITE_LOCK, and a
            # recording thread takes WRITE_LOCK first, then the outbox's lock.
            for change, result in zip(batch, results):
                if change.on_result is not None:
                    try:
                        change.on_result(result)
                    except Exception as e:  # noqa: BLE001
                        log(f"handling the peer's answer for change {change.seq}: {e!r}")

    def _post(self, path, payload):
        url = urllib.parse.urlsplit(self.peer_url)
        # http.client, not urllib.request: no proxy from the environment on loopback.
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=self.send_timeout)
        try:
            data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
            conn.request("POST", path, data, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status} from the peer: {body[:300].decode('utf-8', 'replace')}")
            return json.loads(body)
        finally:
            conn.close()

    # -- receiving -------------------------------------------------------------

    def receive(self, payload):
        """Applies a batch from the peer, in order. (HTTP status, answer)."""
        if not self.active:
            return 409, {"error": "this region has no peer (start it with --peer and --peer-region)"}
        with self._cond:
            if self.partitioned:
                self.inbound["refused_partitioned"] += 1
                return 503, {"error": "replication is partitioned"}
        if payload.get("from") != self.peer_region or payload.get("to") != self.region:
            return 409, {"error": f"this is {self.region}, peered with {self.peer_region}; "
                                  f"the batch is from {payload.get('from')} to {payload.get('to')}"}
        results = []
        for change in payload.get("changes", []):
            applier = self.appliers.get(change.get("service"))
            try:
                if applier is None:
                    raise ValueError(f"no applier for service {change.get('service')!r}")
                result = applier(change["body"], payload["from"])
            except Exception as e:  # noqa: BLE001 - a defect here: say so, and do not wedge the road
                log(f"applying change {change.get('seq')} from {payload.get('from')}: {e!r}")
                result = {"outcome": "failed", "reason": f"{type(e).__name__}: {e}"}
            results.append(result)
            self._count(result)
        with self._cond:
            self.inbound["batches"] += 1
        return 200, {"results": results}

    def _count(self, result):
        with self._cond:
            outcome = result.get("outcome", "failed")
            self.inbound[outcome] = self.inbound.get(outcome, 0) + 1
            if outcome == "applied":
                now = time.time()
                self.inbound["last_applied_at"] = now
                written = result.get("written_at")
                if written is not None:
                    latency = round((now - written) * 1000, 1)
                    self.inbound["last_latency_ms"] = latency
                    self.inbound["max_latency_ms"] = max(latency, self.inbound["max_latency_ms"] or 0)


def configure(region=None, peer_url=None, peer_region=None, lag=DEFAULT_LAG, send_timeout=SEND_TIMEOUT):
    """Makes this process's link (once, at start-up). A peer needs both regions, and
    must be on loopback: the emulator's traffic never leaves the machine."""
    global _LINK
    if peer_url or peer_region:
        if not (peer_url and peer_region and region):
            raise ValueError("replication needs --region, --peer and --peer-region together")
        host = urllib.parse.urlsplit(peer_url).hostname
        if host not in LOOPBACK:
            raise ValueError(f"the peer must be on loopback (127.0.0.1), not {host!r}")
        if peer_region == region:
            raise ValueError("the peer region must differ from this region")
    if send_timeout <= 0:
        raise ValueError("the send timeout must be positive")
    _LINK = Link(region, peer_url, peer_region, lag, send_timeout)
    return _LINK


# --------------------------------------------------------------------------------
# The control endpoints


class ControlLayer:
    """WSGI middleware: `/_emulator/replication/...` here, everything else to `app`.

        GET  /_emulator/replication/status       the link's state (JSON)
        POST /_emulator/replication/lag          {"seconds": 0.5} or {"lag": "500ms"}
        POST /_emulator/replication/partition    stop sending, refuse what comes in
        POST /_emulator/replication/heal         undo the partition
        POST /_emulator/replication/apply        the peer's batch (the link's own road)

    The control calls answer the status after the change."""

    def __init__(self, app, on_reset=()):
        self.app = app
        self.on_reset = list(on_reset)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_emulator/"):
            answer = self.app(environ, start_response)
            if path == "/moto-api/reset":
                for reset in self.on_reset:
                    reset()
            return answer
        status, body = self.handle(environ["REQUEST_METHOD"].upper(), path, environ)
        data = json.dumps(body, indent=None, separators=(",", ":")).encode("utf-8")
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  409: "Conflict", 503: "Service Unavailable"}.get(status, "Status")
        start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                              ("Content-Length", str(len(data)))])
        return [data]

    def handle(self, verb, path, environ):
        current = link()
        if current is None:
            return 404, {"error": "replication is not configured in this process"}
        action = path[len(PREFIX) + 1:] if path.startswith(PREFIX + "/") else None
        verbs = {"status": "GET", "lag": "POST", "partition": "POST", "heal": "POST", "apply": "POST"}
        if action not in verbs:
            return 404, {"error": f"no such endpoint: {path}", "endpoints": sorted(verbs)}
        if verb != verbs[action]:
            return 405, {"error": f"{action} takes {verbs[action]}"}
        try:
            payload = _json_body(environ) if verb == "POST" else {}
        except ValueError as e:
            return 400, {"error": f"the body is not JSON: {e}"}
        if action == "apply":
            return current.receive(payload)
        if action == "lag":
            try:
                seconds = payload["seconds"] if "seconds" in payload else parse_duration(payload["lag"])
                current.set_lag(float(seconds))
            except (KeyError, TypeError, ValueError) as e:
                return 400, {"error": f"give {{\"seconds\": 0.5}} or {{\"lag\": \"500ms\"}}: {e}"}
        elif action == "partition":
            current.set_partitioned(True)
        elif action == "heal":
            current.set_partitioned(False)
        return 200, current.status()


def _json_body(environ):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    data = environ["wsgi.input"].read(length) if length > 0 else b""
    if not data.strip():
        return {}
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("expected an object")
    return value
