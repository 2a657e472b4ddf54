"""S3 Replication (live replication) from this region's buckets to the peer region's,
on top of moto, which stores a bucket's replication configuration and does nothing with
it.

What AWS documents, and what is done here:

- A bucket's replication configuration (`PutBucketReplication`; moto keeps it as it
  was sent) is applied to objects written after it was put; objects already there are
  not replicated (on AWS that takes S3 Batch Replication).
- A rule applies when its `Status` is `Enabled` and its filter matches the key: the
  `Filter`'s `Prefix`, `Tag` or `And` (prefix and tags), an empty filter matching
  every key, or the rule's own `Prefix` in the older V1 form without a `Filter`. When
  several enabled rules with the same destination match, the one with the highest
  `Priority` applies. The destination is a bucket ARN, `arn:aws:s3:::<name>`: the bucket
  of that name in the peer region (a bucket in no other region is reachable here).
- New objects and new versions of an object (PutObject, CopyObject, POST uploads,
  CompleteMultipartUpload) are copied asynchronously, after the link's lag, with their
  content, version id, ETag, Content-Type and the other system metadata S3 keeps, user
  metadata (`x-amz-meta-*`) and tags; the destination's `StorageClass`, when the rule
  names one, replaces the object's.
- A delete without a version id adds a delete marker: it is replicated when the rule
  says `DeleteMarkerReplication: Enabled` (V2, with a `Filter`; a tag filter never
  matches a delete marker), or with a V1 rule, which always replicates them. A delete
  of a given version (a permanent delete) is never replicated, as on AWS.
- `x-amz-replication-status` on GET and HEAD of an object: `PENDING` on the source
  until the destination has the copy, then `COMPLETED`, or `FAILED` when the
  destination refused it (no such bucket in the peer region, or its versioning not
  enabled, which AWS requires of a destination); `REPLICA` on the destination's copy.
  A replica is never replicated again, whatever its bucket's own configuration.

Hooks into moto (5.2.5): `S3Backend.put_object` (every object write ends there) and
`S3Backend._set_delete_marker` note what a request wrote; `S3Response.key_response` and
`bucket_response` (the handlers of object and bucket requests) then, once the request
has succeeded, match the bucket's rules and record the copies. `FakeKey.response_dict`
(the headers moto answers GET and HEAD with) gains the status header.
"""

import base64
import functools
import threading
import time

from moto.core.utils import utcnow
from moto.s3.models import FakeDeleteMarker, FakeKey, S3Backend, s3_backends
from moto.s3.responses import S3Response
from moto.utilities.utils import get_partition

from . import replication

_request = threading.local()
WRITE_METHODS = ("PUT", "POST", "DELETE")
STATUS = "_emulator_replication_status"


# --------------------------------------------------------------------------------
# The rules


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _filter(rule):
    """(prefix, {tag: value}, is V1) of a rule, from the configuration moto stored
    (xmltodict's reading of the XML that was sent)."""
    if "Filter" not in rule:
        return rule.get("Prefix") or "", {}, True
    f = rule.get("Filter") or {}
    if "And" in f:
        a = f.get("And") or {}
        return a.get("Prefix") or "", {t["Key"]: t.get("Value") or "" for t in _as_list(a.get("Tag"))}, False
    if "Tag" in f:
        t = f["Tag"]
        return "", {t["Key"]: t.get("Value") or ""}, False
    return f.get("Prefix") or "", {}, False


def _priority(rule):
    try:
        return int(rule.get("Priority") or 0)
    except (TypeError, ValueError):
        return 0


def _destination(rule):
    arn = ((rule.get("Destination") or {}).get("Bucket")) or ""
    return arn.split(":::", 1)[1] if arn.startswith("arn:") and ":::" in arn else arn


def rules_for(config, key_name, tags, delete_marker=False):
    """The rules that replicate `key_name` (with `tags`), one per destination bucket:
    of the enabled rules that match, the one with the highest priority. A delete marker
    (it has no tags, so no tag filter matches it) travels only if that rule replicates
    delete markers: a lower-priority rule that would does not count."""
    chosen = {}
    for rule in _as_list((config or {}).get("Rule")):
        if (rule.get("Status") or "") != "Enabled":
            continue
        prefix, want_tags, _ = _filter(rule)
        if not key_name.startswith(prefix) or any(tags.get(k) != v for k, v in want_tags.items()):
            continue
        dest = _destination(rule)
        if dest and (dest not in chosen or _priority(rule) > _priority(chosen[dest])):
            chosen[dest] = rule
    if delete_marker:
        chosen = {dest: rule for dest, rule in chosen.items() if _replicates_delete_markers(rule)}
    return chosen


def _replicates_delete_markers(rule):
    """V1 rules (no Filter) always do; V2 rules when DeleteMarkerReplication says so."""
    _, _, v1 = _filter(rule)
    return v1 or ((rule.get("DeleteMarkerReplication") or {}).get("Status")) == "Enabled"


# --------------------------------------------------------------------------------
# Recording what a request wrote


def _note(event):
    events = getattr(_request, "events", None)
    if events is not None:
        events.append(event)


def _wrap_backend():
    put, marker = S3Backend.put_object, S3Backend._set_delete_marker

    @functools.wraps(put)
    def put_object(self, bucket_name, key_name, *args, **kwargs):
        key = put(self, bucket_name, key_name, *args, **kwargs)
        _note(("object", self, bucket_name, key))
        return key

    @functools.wraps(marker)
    def set_delete_marker(self, bucket_name, key_name):
        m = marker(self, bucket_name, key_name)
        _note(("delete-marker", self, bucket_name, m))
        return m

    S3Backend.put_object = put_object
    S3Backend._set_delete_marker = set_delete_marker


def _request_scope(original):
    @functools.wraps(original)
    def respond(handler, request, *args, **kwargs):
        current = replication.link()
        nested = getattr(_request, "events", None) is not None
        if nested or current is None or not current.active or request.method.upper() not in WRITE_METHODS:
            return original(handler, request, *args, **kwargs)
        with replication.WRITE_LOCK:
            _request.events = []
            try:
                answer = original(handler, request, *args, **kwargs)
                events = _request.events
            finally:
                _request.events = None
            if isinstance(answer, tuple) and int(answer[0]) < 300:
                _record(current, events)
            return answer

    return respond


class _Outcome:
    """The replication status of one source version, over its destinations: PENDING
    until each has answered, then COMPLETED, or FAILED if one refused it."""

    def __init__(self, key, count):
        self.key, self.waiting, self.failed = key, count, False
        setattr(key, STATUS, "PENDING")

    def answer(self, result):
        self.waiting -= 1
        self.failed = self.failed or result.get("outcome") == "failed"
        if self.failed:
            setattr(self.key, STATUS, "FAILED")
        elif self.waiting == 0:
            setattr(self.key, STATUS, "COMPLETED")


def _record(current, events):
    for kind, backend, bucket_name, obj in events:
        bucket = backend.buckets.get(bucket_name)
        config = getattr(bucket, "replication", None) if bucket is not None else None
        if not config:
            continue
        if kind == "object":
            if getattr(obj, STATUS, None) == "REPLICA":
                continue
            tags = backend.tagger.get_tag_dict_for_resource(obj.arn)
            chosen = rules_for(config, obj.name, tags)
            if not chosen:
                continue
            outcome = _Outcome(obj, len(chosen))
            content = base64.b64encode(obj.value).decode("ascii")
            for dest, rule in sorted(chosen.items()):
                storage = (rule.get("Destination") or {}).get("StorageClass") or obj.storage_class
                current.enqueue("s3", {
                    "kind": "object", "account": backend.account_id, "source_bucket": bucket_name,
                    "bucket": dest, "key": obj.name, "version_id": obj.version_id, "etag": obj.etag,
                    "content": content, "metadata": dict(obj.metadata.items()), "tags": tags,
                    "storage_class": storage, "rule": rule.get("ID"),
                    "written_at": time.time(),
                }, on_result=outcome.answer)
        else:
            for dest, rule in sorted(rules_for(config, obj.name, {}, delete_marker=True).items()):
                current.enqueue("s3", {
                    "kind": "delete-marker", "account": backend.account_id, "source_bucket": bucket_name,
                    "bucket": dest, "key": obj.name, "version_id": obj.version_id, "rule": rule.get("ID"),
                })


def _wrap_get_replication():
    """GetBucketReplication answers the rules as they were put. moto (5.2.5) answers
    every rule with `Filter: {Prefix: ""}` and `DeleteMarkerReplication: Disabled`,
    whatever was put, which would hide the very rules this module applies."""
    from moto.core.responses import ActionResult
    from moto.s3.exceptions import ReplicationConfigurationNotFoundError

    def get_bucket_replication(self):
        self.data["Action"] = "GetBucketReplication"
        config = self.backend.get_bucket_replication(self.bucket_name)
        if not config:
            raise ReplicationConfigurationNotFoundError(bucket_name=self.bucket_name)
        rules = []
        for rule in _as_list(config.get("Rule")):
            out = {"ID": rule.get("ID"), "Priority": _priority(rule), "Status": rule.get("Status")}
            if "Filter" in rule:
                prefix, tags, _ = _filter(rule)
                f = rule.get("Filter") or {}
                if "And" in f:
                    out["Filter"] = {"And": {"Prefix": prefix,
                                             "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}}
                elif "Tag" in f:
                    (k, v), = tags.items()
                    out["Filter"] = {"Tag": {"Key": k, "Value": v}}
                else:
                    out["Filter"] = {"Prefix": prefix}
            else:
                out["Prefix"] = rule.get("Prefix") or ""
            if rule.get("DeleteMarkerReplication"):
                out["DeleteMarkerReplication"] = rule["DeleteMarkerReplication"]
            destination = rule.get("Destination") or {}
            out["Destination"] = {k: destination[k] for k in ("Bucket", "Account", "StorageClass")
                                  if destination.get(k)}
            rules.append(out)
        return self.serialized(ActionResult({"ReplicationConfiguration": {"Role": config.get("Role"),
                                                                          "Rules": rules}}))

    S3Response.get_bucket_replication = get_bucket_replication


def _wrap_response_headers():
    original = FakeKey.response_dict.fget

    @functools.wraps(original)
    def response_dict(self):
        headers = original(self)
        status = getattr(self, STATUS, None)
        if status is not None:
            headers["x-amz-replication-status"] = status
        return headers

    FakeKey.response_dict = property(response_dict)


# --------------------------------------------------------------------------------
# Applying the peer's changes


def apply(body, sender):
    """Writes one replicated object version or delete marker into this region's bucket."""
    del sender
    backend = s3_backends[body["account"]][get_partition(replication.link().region)]
    with replication.WRITE_LOCK:
        bucket = backend.buckets.get(body["bucket"])
        region = replication.link().region
        if bucket is None:
            return {"outcome": "failed", "reason": f"no bucket {body['bucket']} in {region}"}
        if not bucket.is_versioned:
            return {"outcome": "failed", "reason": f"versioning is not enabled on {body['bucket']} in {region}"}
        versions = bucket.keys.getlist(body["key"], [])
        if any(str(v.version_id) == str(body["version_id"]) for v in versions):
            return {"outcome": "skipped", "reason": "this version is already here (a repeated send)"}
        if body["kind"] == "object":
            key = backend.put_object(body["bucket"], body["key"], base64.b64decode(body["content"]),
                                     storage=body.get("storage_class") or None)
            key.set_metadata(dict(body.get("metadata") or {}))
            key._version_id = body["version_id"]  # a replica keeps the source's version id
            key._etag = (body.get("etag") or "").strip('"') or None
            if body.get("tags"):
                backend.put_object_tagging(key, body["tags"])
            setattr(key, STATUS, "REPLICA")
            return {"outcome": "applied", "written_at": body.get("written_at")}
        if body["kind"] == "delete-marker":
            marker = FakeDeleteMarker.__new__(FakeDeleteMarker)
            marker.key = versions[-1] if versions else None
            marker.name = body["key"]
            marker.last_modified = utcnow()
            marker._version_id = body["version_id"]
            bucket.keys.setlist(body["key"], versions + [marker])
            return {"outcome": "applied"}
        raise ValueError(f"unknown S3 change {body['kind']!r}")


# --------------------------------------------------------------------------------

_installed = []


def install(current):
    """Hooks moto's S3 (once per process) and registers with the link."""
    if not _installed:
        _wrap_backend()
        _wrap_response_headers()
        _wrap_get_replication()
        S3Response.key_response = _request_scope(S3Response.key_response)
        S3Response.bucket_response = _request_scope(S3Response.bucket_response)
        _installed.append(True)
    current.appliers["s3"] = apply
