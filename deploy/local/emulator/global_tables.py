"""DynamoDB global tables (version 2019.11.21, multi-Region eventual consistency)
between this region and its peer, on top of moto, which has no replicas at all (it
ignores `ReplicaUpdates`).

What AWS documents, and what is done here:

- `UpdateTable` with `ReplicaUpdates: [{Create: {RegionName}}]` makes the table global:
  the replica is created in that region (same key schema, attribute definitions,
  secondary indexes, billing mode and stream specification) and filled with every
  item the table holds; meanwhile `DescribeTable` shows the replica `CREATING` and the
  table `UPDATING`, then the replica `ACTIVE`. `Delete: {RegionName}` deletes the
  replica, its items with it. Both sides' `DescribeTable` list the other region in
  `Replicas` and say `GlobalTableVersion: 2019.11.21`. CreateTable has no replica
  parameter in DynamoDB's API, so `UpdateTable` is the way, as on AWS.
- Every item write, in either region, is carried to the other one, asynchronously and
  item by item: PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems
  (each item on its own: the items of a transaction do not travel as a unit, as on
  AWS) and PartiQL statements. A write carries the whole item as it is after the write
  (or a delete, a tombstone), its write time and its region.
- Concurrent writes to one item resolve last writer wins: a region applies a change
  only when its (write time, region) is later than that of the last write it holds for
  the item, its own or replicated; a delete leaves its time behind (a tombstone), so an
  older put arriving later does not bring the item back. Both regions end with the
  latest write; the other is lost, as on AWS.
- A replicated write is applied without being recorded, so it never travels back.
- Conditions and transactions are evaluated in the region that receives the request
  only, as on AWS (and moto's TransactWriteItems is not atomic: each item it writes is
  replicated as written).

Hooks into moto (5.2.5): `Table.put_item` and `Table.delete_item` (every item write of
every API path goes through one of them, PartiQL included) and
`DynamoDBBackend.update_item` (which changes an existing item in place) note the keys
a request touched; the request's handler method (`DynamoHandler.put_item`, ...) then,
once the request has succeeded, stamps and records the touched items of global tables
as they now are. A request that fails records nothing (a cancelled transaction's
writes are rolled back by moto). Table state lives here, keyed by account, region and
table name, not on moto's Table (moto deep-copies tables to roll transactions back).
"""

import base64
import copy
import functools
import json
import threading
import time
import uuid

from moto.dynamodb.exceptions import MockValidationException
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult

from . import replication

VERSION = "2019.11.21"
WRITE_ACTIONS = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items",
                 "execute_statement", "execute_transaction", "batch_execute_statement")
# ReplicaStatus values in which this side sends the table's writes to the replica.
SENDING = ("CREATING", "ACTIVE")

_request = threading.local()


class GlobalTable:
    """This region's copy of one global table: the other replicas and their status,
    and the last write of each item (its stamp), this region's or replicated."""

    def __init__(self, group):
        self.group = group  # one id per creation of the replica set, to tell a retry from a new table
        self.replicas = {}  # region -> ReplicaStatus
        self.reasons = {}  # region -> ReplicaStatusDescription
        self.stamps = {}  # key id -> (microseconds since the epoch, region, deleted)


# (account, region, table name) -> GlobalTable. Guarded by replication.WRITE_LOCK.
_tables = {}
_last_stamp = [0]


def reset():
    with replication.WRITE_LOCK:
        _tables.clear()


def _now_stamp(floor=0):
    """A write time in microseconds, later than every one this region gave before and
    than `floor` (the item's last write, which may have come from the peer)."""
    stamp = max(time.time_ns() // 1000, _last_stamp[0] + 1, floor + 1)
    _last_stamp[0] = stamp
    return stamp


# --------------------------------------------------------------------------------
# Items on the wire: DynamoDB JSON, binary values as {"$b64": ...}


def _encode(value):
    if isinstance(value, (bytes, bytearray)):
        return {"$b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, DynamoType):
        return _encode({value.type: value.value})
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value):
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("$b64"), str):
            return base64.b64decode(value["$b64"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _wire_key(hash_key, range_key):
    return [_encode(hash_key), None if range_key is None else _encode(range_key)]


def _key_id(wire_key):
    return json.dumps(wire_key, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------------
# Recording what a request wrote


def _touch(table, hash_key, range_key):
    touched = getattr(_request, "touched", None)
    if touched is not None:
        touched.append((table.account_id, table.region_name, table.name, hash_key, range_key))


def _write_action(original):
    @functools.wraps(original)
    def action(handler):
        current = replication.link()
        if current is None or not current.active:
            return original(handler)
        with replication.WRITE_LOCK:
            _request.touched = []
            try:
                answer = original(handler)
                touched = _request.touched
            finally:
                _request.touched = None
            _record(current, touched)
            return answer

    return action


def _record(current, touched):
    """Stamps and records, as they are now, the items of global tables a request wrote.
    Called with WRITE_LOCK held, right after the request."""
    seen = set()
    for account, region, name, hash_key, range_key in touched:
        if region != current.region:
            continue
        state = _tables.get((account, region, name))
        if state is None or not any(s in SENDING for s in state.replicas.values()):
            continue
        wire_key = _wire_key(hash_key, range_key)
        kid = _key_id(wire_key)
        if (account, name, kid) in seen:
            continue
        seen.add((account, name, kid))
        table = dynamodb_backends[account][region].tables.get(name)
        if table is None:
            continue
        item = table.get_item(hash_key, range_key)
        attrs = None if item is None else _encode(copy.deepcopy(item.to_json()["Attributes"]))
        before = state.stamps.get(kid)
        stamp = _now_stamp(before[0] if before else 0)
        state.stamps[kid] = (stamp, region, attrs is None)
        current.enqueue("dynamodb", {
            "kind": "item", "account": account, "table": name, "key": wire_key,
            "item": attrs, "stamp": stamp, "origin": region,
        })


def _wrap_table_writes():
    put, delete = Table.put_item, Table.delete_item
    update = DynamoDBBackend.update_item

    @functools.wraps(put)
    def put_item(self, *args, **kwargs):
        item = put(self, *args, **kwargs)
        _touch(self, item.hash_key, item.range_key)
        return item

    @functools.wraps(delete)
    def delete_item(self, hash_key, range_key, *args, **kwargs):
        item = delete(self, hash_key, range_key, *args, **kwargs)
        if item is not None:
            _touch(self, hash_key, range_key)
        return item

    @functools.wraps(update)
    def update_item(self, table_name, *args, **kwargs):
        item = update(self, table_name, *args, **kwargs)
        _touch(self.get_table(table_name), item.hash_key, item.range_key)
        return item

    Table.put_item, Table.delete_item = put_item, delete_item
    DynamoDBBackend.update_item = update_item


# --------------------------------------------------------------------------------
# Replicas: UpdateTable, DeleteTable, DescribeTable


def _definition(table):
    """What a replica is created with: the table's schema, indexes, billing, streams."""
    billing = table.billing_mode or "PROVISIONED"
    definition = {
        "KeySchema": copy.deepcopy(table.schema),
        "AttributeDefinitions": copy.deepcopy(table.attr),
        "BillingMode": billing,
        "GlobalSecondaryIndexes": [
            {"IndexName": i.name, "KeySchema": copy.deepcopy(i.schema), "Projection": copy.deepcopy(i.projection)}
            | ({"ProvisionedThroughput": {k: i.throughput[k] for k in ("ReadCapacityUnits", "WriteCapacityUnits")}}
               if billing == "PROVISIONED" else {})
            for i in table.global_indexes
        ],
        "LocalSecondaryIndexes": [
            {"IndexName": i.name, "KeySchema": copy.deepcopy(i.schema), "Projection": copy.deepcopy(i.projection)}
            for i in table.indexes
        ],
        "StreamSpecification": copy.deepcopy(table.stream_specification)
        if table.stream_specification and table.stream_specification.get("StreamEnabled") else None,
        "SSESpecification": copy.deepcopy(table.sse_specification),
    }
    if billing == "PROVISIONED":
        definition["ProvisionedThroughput"] = {
            k: table.throughput[k] for k in ("ReadCapacityUnits", "WriteCapacityUnits")}
    return definition


def _create_from(backend, name, definition):
    return backend.create_table(
        name,
        schema=definition["KeySchema"],
        throughput=definition.get("ProvisionedThroughput"),
        attr=definition["AttributeDefinitions"],
        global_indexes=definition.get("GlobalSecondaryIndexes") or None,
        indexes=definition.get("LocalSecondaryIndexes") or None,
        streams=definition.get("StreamSpecification"),
        billing_mode=definition["BillingMode"],
        sse_specification=definition.get("SSESpecification"),
        tags=[],
        deletion_protection_enabled=False,
        warm_throughput=None,
    )


def _backfill(current, account, table, state):
    """Records every item of `table` for the peer, with the stamp of its last write
    (or now, for items written before the table was global)."""
    for item in list(table.all_items()):
        wire_key = _wire_key(item.hash_key, item.range_key)
        kid = _key_id(wire_key)
        if kid not in state.stamps:
            state.stamps[kid] = (_now_stamp(), current.region, False)
        stamp, origin, _ = state.stamps[kid]
        current.enqueue("dynamodb", {
            "kind": "item", "account": account, "table": table.name, "key": wire_key,
            "item": _encode(copy.deepcopy(item.to_json()["Attributes"])), "stamp": stamp, "origin": origin,
        })


def _status_setter(account, region, name, group, peer, on_success):
    """The replica's status from the peer's answer to its creation (`on_success`
    False: only a refusal counts) or to the end of its backfill (True)."""
    def on_result(result):
        with replication.WRITE_LOCK:
            state = _tables.get((account, region, name))
            if state is None or state.group != group or state.replicas.get(peer) not in SENDING:
                return
            if result.get("outcome") in ("applied", "skipped"):
                if on_success:
                    state.replicas[peer] = "ACTIVE"
                    state.reasons.pop(peer, None)
            else:
                state.replicas[peer] = "CREATION_FAILED"
                state.reasons[peer] = result.get("reason", "")
    return on_result


def _remover(account, region, name, peer):
    def on_result(_result):
        with replication.WRITE_LOCK:
            state = _tables.get((account, region, name))
            if state is not None and state.replicas.get(peer) == "DELETING":
                del state.replicas[peer]
                state.reasons.pop(peer, None)
                if not state.replicas:
                    del _tables[(account, region, name)]
    return on_result


def _replica_updates(original):
    @functools.wraps(original)
    def update_table(handler):
        updates = handler.body.get("ReplicaUpdates")
        if not updates:
            return original(handler)
        current = replication.link()
        name = handler.body["TableName"]
        backend = handler.dynamodb_backend
        table = backend.get_table(name)
        account, region = backend.account_id, backend.region_name
        if current is None or not current.active:
            raise MockValidationException(
                "ReplicaUpdates: this emulated region has no peer region (start it with "
                "--region, --peer and --peer-region, as deploy/local/emulator.sh does)")
        if region != current.region:
            raise MockValidationException(
                f"ReplicaUpdates: this process emulates {current.region}, not {region}")
        if len(updates) != 1 or len(updates[0]) != 1:
            raise MockValidationException("ReplicaUpdates: one Create or Delete per request")
        (verb, action), = updates[0].items()
        target = (action or {}).get("RegionName")
        with replication.WRITE_LOCK:
            state = _tables.get((account, region, name))
            if verb == "Create":
                if target == region:
                    raise MockValidationException(f"Cannot add a replica in the table's own region {region}")
                if target != current.peer_region:
                    raise MockValidationException(
                        f"ReplicaUpdates: the emulator has no region {target}; this region's peer is "
                        f"{current.peer_region}")
                if state is not None and target in state.replicas and state.replicas[target] != "CREATION_FAILED":
                    raise MockValidationException(f"Replica in region {target} for table {name} already exists")
            elif verb == "Delete":
                if state is None or target not in state.replicas:
                    raise MockValidationException(f"Replica in region {target} for table {name} does not exist")
            elif verb == "Update":
                raise MockValidationException("ReplicaUpdates Update is not implemented by the emulator")
            else:
                raise MockValidationException(f"ReplicaUpdates: unknown action {verb}")
        others = {"AttributeDefinitions", "GlobalSecondaryIndexUpdates", "ProvisionedThroughput",
                  "BillingMode", "StreamSpecification", "DeletionProtectionEnabled", "WarmThroughput"}
        if others & set(handler.body):
            original(handler)
        with replication.WRITE_LOCK:
            state = _tables.get((account, region, name))
            if verb == "Create":
                if state is None:
                    state = _tables[(account, region, name)] = GlobalTable(uuid.uuid4().hex)
                else:
                    state.group = uuid.uuid4().hex
                state.replicas[target] = "CREATING"
                state.reasons.pop(target, None)
                current.enqueue("dynamodb", {"kind": "create-replica", "account": account, "table": name,
                                             "group": state.group, "definition": _definition(table)},
                                on_result=_status_setter(account, region, name, state.group, target, False))
                _backfill(current, account, table, state)
                current.enqueue("dynamodb", {"kind": "replica-ready", "account": account, "table": name,
                                             "group": state.group},
                                on_result=_status_setter(account, region, name, state.group, target, True))
            else:
                state.replicas[target] = "DELETING"
                current.enqueue("dynamodb", {"kind": "delete-replica", "account": account, "table": name},
                                on_result=_remover(account, region, name, target))
        return DynamoResult(backend.get_table(name).describe())

    return update_table


def _delete_table(original):
    @functools.wraps(original)
    def delete_table(handler):
        answer = original(handler)
        current = replication.link()
        backend = handler.dynamodb_backend
        with replication.WRITE_LOCK:
            state = _tables.pop((backend.account_id, backend.region_name, handler.body["TableName"]), None)
            if state is not None and current is not None and current.active and current.peer_region in state.replicas:
                # This region's replica is gone; the peer's table stays, without it.
                current.enqueue("dynamodb", {"kind": "replica-removed", "account": backend.account_id,
                                             "table": handler.body["TableName"]})
        return answer

    return delete_table


def _wrap_describe():
    original = Table.describe

    @functools.wraps(original)
    def describe(self, base_key="TableDescription"):
        answer = original(self, base_key)
        state = _tables.get((self.account_id, self.region_name, self.name))
        if state is not None and state.replicas:
            d = answer[base_key]
            d["GlobalTableVersion"] = VERSION
            d["Replicas"] = [
                {"RegionName": r, "ReplicaStatus": s}
                | ({"ReplicaStatusDescription": state.reasons[r]} if r in state.reasons else {})
                for r, s in sorted(state.replicas.items())
            ]
            if any(s in ("CREATING", "DELETING") for s in state.replicas.values()):
                d["TableStatus"] = "UPDATING"
        return answer

    Table.describe = describe


# --------------------------------------------------------------------------------
# Applying the peer's changes


def apply(body, sender):
    """Applies one change from the peer region `sender`. Takes WRITE_LOCK."""
    current = replication.link()
    account, name = body["account"], body["table"]
    backend = dynamodb_backends[account][current.region]
    key = (account, current.region, name)
    with replication.WRITE_LOCK:
        state = _tables.get(key)
        kind = body["kind"]
        if kind == "item":
            return _apply_item(backend, state, body, sender)
        if kind == "create-replica":
            return _apply_create(current, backend, key, state, body, sender)
        if kind == "replica-ready":
            if state is not None and state.group == body["group"] and sender in state.replicas:
                return {"outcome": "applied"}
            return {"outcome": "failed", "reason": f"no replica of {name} was created in {current.region}"}
        if kind == "delete-replica":
            _tables.pop(key, None)
            if name in backend.tables:
                del backend.tables[name]
                return {"outcome": "applied"}
            return {"outcome": "skipped", "reason": "no such table"}
        if kind == "replica-removed":
            if state is not None and sender in state.replicas:
                del state.replicas[sender]
                state.reasons.pop(sender, None)
                if not state.replicas:
                    del _tables[key]
                return {"outcome": "applied"}
            return {"outcome": "skipped", "reason": "not a replica here"}
        raise ValueError(f"unknown DynamoDB change {kind!r}")


def _apply_item(backend, state, body, sender):
    table = backend.tables.get(body["table"])
    if table is None or state is None or sender not in state.replicas:
        # The table is gone here (a region that came back empty, a deleted replica):
        # nothing to apply to. A replica created again gets every item anew.
        return {"outcome": "dropped", "reason": f"{body['table']} is not a replica of the peer's table here"}
    wire_key = body["key"]
    kid = _key_id(wire_key)
    stamp, origin = body["stamp"], body["origin"]
    mine = state.stamps.get(kid)
    if mine is not None and (mine[0], mine[1]) >= (stamp, origin):
        return {"outcome": "skipped", "reason": "this replica holds a later write of the item"}
    if body["item"] is not None:
        table.put_item(_decode(body["item"]))
    else:
        hash_key = DynamoType(_decode(wire_key[0]))
        range_key = None if wire_key[1] is None else DynamoType(_decode(wire_key[1]))
        table.delete_item(hash_key, range_key)
    state.stamps[kid] = (stamp, origin, body["item"] is None)
    return {"outcome": "applied", "written_at": stamp / 1e6}


def _apply_create(current, backend, key, state, body, sender):
    name = body["table"]
    if name not in backend.tables:
        _create_from(backend, name, body["definition"])
        state = _tables[key] = GlobalTable(body["group"])
        state.replicas[sender] = "ACTIVE"
        return {"outcome": "applied"}
    if state is not None and sender in state.replicas:
        if state.group == body["group"]:
            return {"outcome": "skipped", "reason": "already a replica (a repeated send)"}
        # The peer's table was made anew (its region came back empty and was provisioned
        # again): join the new one and send it what this replica holds.
        state.group = body["group"]
        state.replicas[sender] = "ACTIVE"
        state.reasons.pop(sender, None)
        _backfill(current, key[0], backend.tables[name], state)
        return {"outcome": "applied", "reason": "rejoined: this replica's items follow"}
    return {"outcome": "failed",
            "reason": f"a table named {name} already exists in {current.region} and is not a replica of it"}


# --------------------------------------------------------------------------------


def status():
    with replication.WRITE_LOCK:
        return [
            {"account": account, "region": region, "table": name, "replicas": dict(state.replicas),
             "items_stamped": len(state.stamps)}
            for (account, region, name), state in sorted(_tables.items())
        ]


_installed = []


def install(current):
    """Hooks moto's DynamoDB (once per process) and registers with the link."""
    if not _installed:
        _wrap_table_writes()
        _wrap_describe()
        for action in WRITE_ACTIONS:
            setattr(DynamoHandler, action, _write_action(getattr(DynamoHandler, action)))
        DynamoHandler.update_table = _replica_updates(DynamoHandler.update_table)
        DynamoHandler.delete_table = _delete_table(DynamoHandler.delete_table)
        _installed.append(True)
    current.appliers["dynamodb"] = apply
    current.status_parts["global_tables"] = status

