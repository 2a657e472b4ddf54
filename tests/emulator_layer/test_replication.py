"""Replication between two real region processes peered with each other
(deploy/local/emulator/replication.py, global_tables.py, bucket_replication.py): S3
Replication rules and DynamoDB global tables, the lag, the partition switch, and what
a killed region takes with it.

Waits are polls of the regions' status (`wait_converged`) or of the data, with wide
margins; the one thing timed is the lag, against a lag of seconds."""

import json
import time
import unittest
import uuid

from botocore.exceptions import ClientError

import harness as h

PRIMARY, SECONDARY = "us-east-1", "ap-northeast-1"
ROLE = "arn:aws:iam::123456789012:role/photos-replica"


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def stream():
    return {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


# --------------------------------------------------------------------------------
# S3


def rule(rule_id, prefix="public", dest="dest", priority=1, delete_markers="Disabled", status="Enabled",
         filter_=None):
    return {"ID": rule_id, "Priority": priority, "Status": status,
            "Filter": filter_ if filter_ is not None else {"Prefix": prefix},
            "DeleteMarkerReplication": {"Status": delete_markers},
            "Destination": {"Bucket": f"arn:aws:s3:::{dest}", "StorageClass": "STANDARD"}}


class BucketReplication(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.primary, cls.secondary = h.replicating_pair(lag="200ms")
        cls.src, cls.dst = cls.primary.client("s3"), cls.secondary.client("s3")

    @classmethod
    def tearDownClass(cls):
        cls.primary.stop()
        cls.secondary.stop()

    def buckets(self, *rules, versioned_destination=True):
        """A versioned source in the primary with `rules` (their `dest` is the
        destination's name) and a destination in the secondary."""
        source, dest = unique("src"), unique("dst")
        self.src.create_bucket(Bucket=source)
        self.src.put_bucket_versioning(Bucket=source, VersioningConfiguration={"Status": "Enabled"})
        self.dst.create_bucket(Bucket=dest, CreateBucketConfiguration={"LocationConstraint": SECONDARY})
        if versioned_destination:
            self.dst.put_bucket_versioning(Bucket=dest, VersioningConfiguration={"Status": "Enabled"})
        rules = [dict(r, Destination=dict(r["Destination"], Bucket=r["Destination"]["Bucket"].replace(
            "arn:aws:s3:::dest", f"arn:aws:s3:::{dest}"))) for r in rules]
        self.src.put_bucket_replication(Bucket=source, ReplicationConfiguration={"Role": ROLE, "Rules": rules})
        return source, dest

    def converge(self):
        h.wait_converged(self.primary, self.secondary)

    def dest_versions(self, bucket, key):
        answer = self.dst.list_object_versions(Bucket=bucket, Prefix=key)
        return ([v["VersionId"] for v in answer.get("Versions", []) if v["Key"] == key],
                [m["VersionId"] for m in answer.get("DeleteMarkers", []) if m["Key"] == key])

    def test_a_new_object_is_copied_with_its_type_metadata_tags_and_version(self):
        source, dest = self.buckets(rule("public"))
        put = self.src.put_object(Bucket=source, Key="public/photo.png", Body=b"\x89PNG pixels",
                                  ContentType="image/png", CacheControl="no-cache",
                                  Metadata={"owner": "ann", "caption": "a cat"}, Tagging="kind=photo")
        self.converge()
        got = self.dst.get_object(Bucket=dest, Key="public/photo.png")
        self.assertEqual(got["Body"].read(), b"\x89PNG pixels")
        self.assertEqual(got["ContentType"], "image/png")
        self.assertEqual(got["CacheControl"], "no-cache")
        self.assertEqual(got["Metadata"], {"owner": "ann", "caption": "a cat"})
        self.assertEqual(got["VersionId"], put["VersionId"])
        self.assertEqual(got["ETag"], put["ETag"])
        tags = self.dst.get_object_tagging(Bucket=dest, Key="public/photo.png")["TagSet"]
        self.assertEqual(tags, [{"Key": "kind", "Value": "photo"}])

    def test_replication_status_is_pending_then_completed_and_replica_on_the_copy(self):
        source, dest = self.buckets(rule("public"))
        # A lag of seconds: the HEAD right after the PUT comes well before the copy.
        for r in (self.primary, self.secondary):
            r.control("lag", {"seconds": 3})
        try:
            self.src.put_object(Bucket=source, Key="public/a", Body=b"a")
            self.assertEqual(self.src.head_object(Bucket=source, Key="public/a").get("ReplicationStatus"), "PENDING")
            with self.assertRaises(ClientError):
                self.dst.head_object(Bucket=dest, Key="public/a")
        finally:
            for r in (self.primary, self.secondary):
                r.control("lag", {"seconds": 0.2})
        self.converge()
        self.assertEqual(self.src.head_object(Bucket=source, Key="public/a").get("ReplicationStatus"), "COMPLETED")
        self.assertEqual(self.src.get_object(Bucket=source, Key="public/a").get("ReplicationStatus"), "COMPLETED")
        self.assertEqual(self.dst.head_object(Bucket=dest, Key="public/a").get("ReplicationStatus"), "REPLICA")
        self.assertEqual(self.dst.get_object(Bucket=dest, Key="public/a").get("ReplicationStatus"), "REPLICA")

    def test_an_overwrite_is_a_new_version_in_both(self):
        source, dest = self.buckets(rule("public"))
        first = self.src.put_object(Bucket=source, Key="public/k", Body=b"one")["VersionId"]
        second = self.src.put_object(Bucket=source, Key="public/k", Body=b"two")["VersionId"]
        self.converge()
        self.assertEqual(self.dst.get_object(Bucket=dest, Key="public/k")["Body"].read(), b"two")
        versions, _ = self.dest_versions(dest, "public/k")
        self.assertEqual(sorted(versions), sorted([first, second]))
        self.assertEqual(self.dst.get_object(Bucket=dest, Key="public/k", VersionId=first)["Body"].read(), b"one")

    def test_only_keys_under_the_rule_prefix_are_copied(self):
        source, dest = self.buckets(rule("public"))
        self.src.put_object(Bucket=source, Key="private/secret", Body=b"s")
        self.src.put_object(Bucket=source, Key="publicity.txt", Body=b"p")  # a prefix, not a folder
        self.src.put_object(Bucket=source, Key="public/marker", Body=b"m")
        self.converge()
        keys = [o["Key"] for o in self.dst.list_objects_v2(Bucket=dest).get("Contents", [])]
        self.assertEqual(sorted(keys), ["public/marker", "publicity.txt"])
        self.assertIsNone(self.src.head_object(Bucket=source, Key="private/secret").get("ReplicationStatus"))

    def test_a_disabled_rule_copies_nothing(self):
        source, dest = self.buckets(rule("off", status="Disabled"))
        self.src.put_object(Bucket=source, Key="public/x", Body=b"x")
        self.converge()
        self.assertNotIn("Contents", self.dst.list_objects_v2(Bucket=dest))
        self.assertIsNone(self.src.head_object(Bucket=source, Key="public/x").get("ReplicationStatus"))

    def test_tag_filters_and_priority_pick_the_rule(self):
        # Tagged keys under docs/ only.
        source, dest = self.buckets(rule("tagged", filter_={"And": {"Prefix": "docs/", "Tags": [
            {"Key": "share", "Value": "yes"}]}}))
        self.src.put_object(Bucket=source, Key="docs/shared", Body=b"1", Tagging="share=yes")
        self.src.put_object(Bucket=source, Key="docs/kept", Body=b"2", Tagging="share=no")
        self.src.put_object(Bucket=source, Key="docs/untagged", Body=b"3")
        self.converge()
        keys = [o["Key"] for o in self.dst.list_objects_v2(Bucket=dest).get("Contents", [])]
        self.assertEqual(keys, ["docs/shared"])
        # Overlapping rules to one destination: the higher priority decides, here
        # whether a delete marker travels (a lower rule that would send it does not count).
        source, dest = self.buckets(rule("broad", prefix="p/", priority=2, delete_markers="Disabled"),
                                    rule("x", prefix="p/x/", priority=3, delete_markers="Enabled"),
                                    rule("y", prefix="p/y/", priority=1, delete_markers="Enabled"))
        for k in ("p/x/1", "p/y/1"):
            self.src.put_object(Bucket=source, Key=k, Body=b".")
        self.converge()
        for k in ("p/x/1", "p/y/1"):
            self.src.delete_object(Bucket=source, Key=k)
        self.converge()
        with self.assertRaises(ClientError):
            self.dst.head_object(Bucket=dest, Key="p/x/1")
        self.assertEqual(self.dst.get_object(Bucket=dest, Key="p/y/1")["Body"].read(), b".")

    def test_delete_markers_travel_only_when_the_rule_says_so_and_version_deletes_never(self):
        kept_source, kept_dest = self.buckets(rule("public", delete_markers="Disabled"))
        gone_source, gone_dest = self.buckets(rule("public", delete_markers="Enabled"))
        versions = {}
        for source in (kept_source, gone_source):
            versions[source] = self.src.put_object(Bucket=source, Key="public/p", Body=b"p")["VersionId"]
        self.converge()
        for source in (kept_source, gone_source):
            marker = self.src.delete_object(Bucket=source, Key="public/p")
            self.assertTrue(marker.get("DeleteMarker"))
        self.converge()
        self.assertEqual(self.dst.get_object(Bucket=kept_dest, Key="public/p")["Body"].read(), b"p")
        with self.assertRaises(ClientError) as e:
            self.dst.get_object(Bucket=gone_dest, Key="public/p")
        self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchKey")
        live, markers = self.dest_versions(gone_dest, "public/p")
        self.assertEqual((live, len(markers)), ([versions[gone_source]], 1))
        # A delete of a version is permanent, and stays where it was made.
        self.src.delete_object(Bucket=gone_source, Key="public/p", VersionId=versions[gone_source])
        self.converge()
        self.assertEqual(self.dest_versions(gone_dest, "public/p")[0], [versions[gone_source]])

    def test_a_replica_is_not_copied_back_and_a_missing_destination_fails(self):
        source, dest = self.buckets(rule("public"))
        applied_before = self.primary.status()["inbound"]["applied"]
        # The destination replicates back to the source: the replica must not return.
        self.dst.put_bucket_replication(Bucket=dest, ReplicationConfiguration={"Role": ROLE, "Rules": [
            dict(rule("back"), Destination={"Bucket": f"arn:aws:s3:::{source}"})]})
        version = self.src.put_object(Bucket=source, Key="public/once", Body=b"1")["VersionId"]
        self.converge()
        self.assertEqual(self.dst.head_object(Bucket=dest, Key="public/once")["VersionId"], version)
        self.converge()
        answer = self.src.list_object_versions(Bucket=source, Prefix="public/once")
        self.assertEqual([v["VersionId"] for v in answer["Versions"]], [version])
        self.assertEqual(self.primary.status()["inbound"]["applied"], applied_before)

        lost = unique("nowhere")
        source, _ = self.buckets(dict(rule("public"), Destination={"Bucket": f"arn:aws:s3:::{lost}"}))
        self.src.put_object(Bucket=source, Key="public/x", Body=b"x")
        self.converge()
        self.assertEqual(self.src.head_object(Bucket=source, Key="public/x").get("ReplicationStatus"), "FAILED")
        source, dest = self.buckets(rule("public"), versioned_destination=False)
        self.src.put_object(Bucket=source, Key="public/x", Body=b"x")
        self.converge()
        self.assertEqual(self.src.head_object(Bucket=source, Key="public/x").get("ReplicationStatus"), "FAILED")
        self.assertNotIn("Contents", self.dst.list_objects_v2(Bucket=dest))

    def test_the_configuration_reads_back_as_it_was_put(self):
        source, dest = self.buckets(rule("public", delete_markers="Enabled"),
                                    rule("tagged", priority=2, filter_={"Tag": {"Key": "k", "Value": "v"}}))
        rules = self.src.get_bucket_replication(Bucket=source)["ReplicationConfiguration"]["Rules"]
        by_id = {r["ID"]: r for r in rules}
        self.assertEqual(by_id["public"]["Filter"], {"Prefix": "public"})
        self.assertEqual(by_id["public"]["DeleteMarkerReplication"], {"Status": "Enabled"})
        self.assertEqual(by_id["public"]["Destination"]["Bucket"], f"arn:aws:s3:::{dest}")
        self.assertEqual(by_id["tagged"]["Filter"], {"Tag": {"Key": "k", "Value": "v"}})
        self.assertEqual(by_id["tagged"]["Priority"], 2)


# --------------------------------------------------------------------------------
# DynamoDB global tables


def create_store(ddb, name):
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", StreamSpecification=stream(),
        AttributeDefinitions=[{"AttributeName": "commentId", "AttributeType": "S"},
                              {"AttributeName": "photoId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "commentId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{"IndexName": "photoId",
                                 "KeySchema": [{"AttributeName": "photoId", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}])


def create_config(ddb, name):
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", StreamSpecification=stream(),
        AttributeDefinitions=[{"AttributeName": "appId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "appId", "KeyType": "HASH"}])


def add_replica(ddb, name, region=SECONDARY):
    return ddb.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": region}}])["TableDescription"]


def key(value):
    return {"appId": {"S": value}}


def item(value, **attrs):
    out = key(value)
    out.update({k: {"S": v} for k, v in attrs.items()})
    return out


class GlobalTables(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.primary, cls.secondary = h.replicating_pair(lag="200ms")
        cls.a, cls.b = cls.primary.client("dynamodb"), cls.secondary.client("dynamodb")

    @classmethod
    def tearDownClass(cls):
        cls.primary.stop()
        cls.secondary.stop()

    def tearDown(self):
        for r in (self.primary, self.secondary):
            r.control("heal")
            r.control("lag", {"seconds": 0.2})

    def converge(self):
        return h.wait_converged(self.primary, self.secondary)

    def global_config(self):
        name = unique("config")
        create_config(self.a, name)
        add_replica(self.a, name)
        self.converge()
        return name

    def get(self, ddb, table, value):
        return ddb.get_item(TableName=table, Key=key(value), ConsistentRead=True).get("Item")

    def test_adding_a_replica_creates_the_table_there_with_every_item(self):
        name = unique("store")
        create_store(self.a, name)
        for n in range(5):
            self.a.put_item(TableName=name, Item={"commentId": {"S": f"c{n}"}, "photoId": {"S": "p1"},
                                                  "message": {"S": f"comment {n}"}, "blob": {"B": bytes([n, 255])}})
        described = add_replica(self.a, name)
        self.assertEqual(described["Replicas"], [{"RegionName": SECONDARY, "ReplicaStatus": "CREATING"}])
        self.assertEqual(described["TableStatus"], "UPDATING")
        self.converge()

        here = self.a.describe_table(TableName=name)["Table"]
        there = self.b.describe_table(TableName=name)["Table"]
        self.assertEqual(here["Replicas"], [{"RegionName": SECONDARY, "ReplicaStatus": "ACTIVE"}])
        self.assertEqual(here["TableStatus"], "ACTIVE")
        self.assertEqual(here["GlobalTableVersion"], "2019.11.21")
        self.assertEqual(there["Replicas"], [{"RegionName": PRIMARY, "ReplicaStatus": "ACTIVE"}])
        self.assertEqual(there["GlobalTableVersion"], "2019.11.21")
        for field in ("KeySchema", "BillingModeSummary", "StreamSpecification"):
            self.assertEqual(there[field], here[field], field)
        self.assertEqual(sorted(map(json.dumps, there["AttributeDefinitions"])),
                         sorted(map(json.dumps, here["AttributeDefinitions"])))
        self.assertEqual([(i["IndexName"], i["KeySchema"], i["Projection"]) for i in there["GlobalSecondaryIndexes"]],
                         [(i["IndexName"], i["KeySchema"], i["Projection"]) for i in here["GlobalSecondaryIndexes"]])
        items = self.b.query(TableName=name, IndexName="photoId", KeyConditionExpression="photoId = :p",
                             ExpressionAttributeValues={":p": {"S": "p1"}})["Items"]
        self.assertEqual(sorted(i["message"]["S"] for i in items), [f"comment {n}" for n in range(5)])
        self.assertEqual(self.get_blob(name, "c3"), bytes([3, 255]))

    def get_blob(self, name, comment):
        return self.b.get_item(TableName=name, Key={"commentId": {"S": comment}})["Item"]["blob"]["B"]

    def test_every_write_api_is_carried_both_ways(self):
        name = self.global_config()
        self.a.put_item(TableName=name, Item=item("put", v="a"))
        self.a.put_item(TableName=name, Item=item("upd", v="a"))
        self.a.put_item(TableName=name, Item=item("del", v="a"))
        self.converge()
        self.a.update_item(TableName=name, Key=key("upd"), UpdateExpression="SET v = :v, n = :n",
                           ExpressionAttributeValues={":v": {"S": "b"}, ":n": {"N": "7"}})
        self.a.delete_item(TableName=name, Key=key("del"))
        self.a.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": item("batch1")}},
                                                     {"PutRequest": {"Item": item("batch2")}}]})
        self.a.transact_write_items(TransactItems=[
            {"Put": {"TableName": name, "Item": item("tx", v="t")}},
            {"Update": {"TableName": name, "Key": key("put"), "UpdateExpression": "SET w = :w",
                        "ExpressionAttributeValues": {":w": {"S": "tx"}}}}])
        self.a.execute_statement(Statement=f"INSERT INTO \"{name}\" VALUE {{'appId': 'partiql', 'v': 'q'}}")
        recorded = self.primary.status()["outbound"]["recorded"]
        # A cancelled transaction writes nothing, so records nothing.
        with self.assertRaises(ClientError):
            self.a.transact_write_items(TransactItems=[
                {"Put": {"TableName": name, "Item": item("never")}},
                {"ConditionCheck": {"TableName": name, "Key": key("absent"),
                                    "ConditionExpression": "attribute_exists(appId)"}}])
        self.assertEqual(self.primary.status()["outbound"]["recorded"], recorded)
        self.converge()
        # And the other way (after: concurrent updates of one item would leave only the later).
        self.b.put_item(TableName=name, Item=item("from-b", v="b"))
        self.b.update_item(TableName=name, Key=key("upd"), UpdateExpression="SET m = :m",
                           ExpressionAttributeValues={":m": {"S": "b"}})
        self.converge()
        for ddb in (self.a, self.b):
            got = {i["appId"]["S"]: i for i in ddb.scan(TableName=name, ConsistentRead=True)["Items"]}
            self.assertEqual(sorted(got), ["batch1", "batch2", "from-b", "partiql", "put", "tx", "upd"])
            self.assertEqual(got["upd"], item("upd", v="b", m="b") | {"n": {"N": "7"}})
            self.assertEqual(got["put"]["w"], {"S": "tx"})
            self.assertEqual(got["partiql"]["v"], {"S": "q"})

    def test_concurrent_writes_resolve_last_writer_wins_in_both_regions(self):
        name = self.global_config()
        skipped = [r.status()["inbound"]["skipped"] for r in (self.primary, self.secondary)]
        for r in (self.primary, self.secondary):
            r.control("lag", {"seconds": 2})
        # Both writes land before either is delivered (two seconds apart at least):
        # the later one, in the secondary, wins in both regions.
        self.a.put_item(TableName=name, Item=item("x", by="primary"))
        self.b.put_item(TableName=name, Item=item("x", by="secondary"))
        self.b.put_item(TableName=name, Item=item("y", by="secondary"))
        self.a.put_item(TableName=name, Item=item("y", by="primary"))
        self.converge()
        for ddb in (self.a, self.b):
            self.assertEqual(self.get(ddb, name, "x")["by"], {"S": "secondary"})
            self.assertEqual(self.get(ddb, name, "y")["by"], {"S": "primary"})
        # The losers were applied nowhere: each region skipped the older change.
        self.assertEqual(self.primary.status()["inbound"]["skipped"] - skipped[0], 1)
        self.assertEqual(self.secondary.status()["inbound"]["skipped"] - skipped[1], 1)

    def send_item(self, table, key_value, origin, stamp, by="sent"):
        """Sends the secondary a change as if from the primary; the outcome."""
        change = {"kind": "item", "account": "123456789012", "table": table, "key": [{"S": key_value}, None],
                  "item": item(key_value, by=by), "stamp": stamp, "origin": origin}
        batch = {"from": PRIMARY, "to": SECONDARY, "changes": [{"seq": 1, "service": "dynamodb", "body": change}]}
        answer = h.call(f"{self.secondary.url}/_emulator/replication/apply", "POST", json.dumps(batch),
                        {"Content-Type": "application/json"})
        return answer.json()["results"][0]["outcome"]

    def test_equal_write_times_are_broken_by_region_name(self):
        name = self.global_config()
        stamp = int(time.time() * 1e6) + 10_000_000  # later than anything written here
        # Same time: us-east-1 sorts after ap-northeast-1 and wins, in either order.
        self.assertEqual(self.send_item(name, "t1", SECONDARY, stamp, "ap"), "applied")
        self.assertEqual(self.send_item(name, "t1", PRIMARY, stamp, "us"), "applied")
        self.assertEqual(self.send_item(name, "t2", PRIMARY, stamp, "us"), "applied")
        self.assertEqual(self.send_item(name, "t2", SECONDARY, stamp, "ap"), "skipped")
        self.assertEqual(self.send_item(name, "t2", PRIMARY, stamp, "us again"), "skipped")  # a repeated send
        for k in ("t1", "t2"):
            self.assertEqual(self.get(self.b, name, k)["by"], {"S": "us"})

    def test_a_delete_is_a_tombstone_an_older_write_does_not_resurrect(self):
        name = self.global_config()
        self.a.put_item(TableName=name, Item=item("gone", v="0"))
        self.a.put_item(TableName=name, Item=item("back", v="0"))
        self.converge()
        for r in (self.primary, self.secondary):
            r.control("partition")
        self.b.put_item(TableName=name, Item=item("gone", v="older"))  # before the delete
        self.a.delete_item(TableName=name, Key=key("gone"))
        self.a.delete_item(TableName=name, Key=key("back"))
        self.b.put_item(TableName=name, Item=item("back", v="newer"))  # after the delete
        for r in (self.primary, self.secondary):
            r.control("heal")
        self.converge()
        for ddb in (self.a, self.b):
            self.assertIsNone(self.get(ddb, name, "gone"))
            self.assertEqual(self.get(ddb, name, "back")["v"], {"S": "newer"})

    def test_a_replicated_write_is_not_sent_back(self):
        name = self.global_config()
        before_a, before_b = self.primary.status(), self.secondary.status()
        self.a.put_item(TableName=name, Item=item("once"))
        self.b.put_item(TableName=name, Item=item("twice"))
        self.converge()
        time.sleep(0.6)  # three lags: a change sent back would have been recorded by now
        after_a, after_b = self.converge()
        self.assertEqual(after_a["outbound"]["recorded"] - before_a["outbound"]["recorded"], 1)
        self.assertEqual(after_b["outbound"]["recorded"] - before_b["outbound"]["recorded"], 1)
        self.assertEqual(after_a["inbound"]["applied"] - before_a["inbound"]["applied"], 1)
        self.assertEqual(after_b["inbound"]["applied"] - before_b["inbound"]["applied"], 1)

    def test_a_partition_queues_changes_and_healing_delivers_them(self):
        name = self.global_config()
        for r in (self.primary, self.secondary):
            r.control("partition")
        self.a.put_item(TableName=name, Item=item("during-a"))
        self.b.put_item(TableName=name, Item=item("during-b"))
        time.sleep(0.6)
        for here, there, value in ((self.a, self.b, "during-a"), (self.b, self.a, "during-b")):
            self.assertIsNotNone(self.get(here, name, value))
            self.assertIsNone(self.get(there, name, value))
        status = self.primary.status()
        self.assertTrue(status["partitioned"])
        self.assertEqual(status["outbound"]["pending"], 1)
        self.assertEqual(self.secondary.status()["outbound"]["pending_by_service"]["dynamodb"], 1)
        for r in (self.primary, self.secondary):
            r.control("heal")
        self.converge()
        for ddb in (self.a, self.b):
            self.assertIsNotNone(self.get(ddb, name, "during-a"))
            self.assertIsNotNone(self.get(ddb, name, "during-b"))

    def test_a_partition_set_on_one_side_cuts_both_directions(self):
        name = self.global_config()
        self.primary.control("partition")
        self.a.put_item(TableName=name, Item=item("out"))  # not sent
        self.b.put_item(TableName=name, Item=item("in"))  # sent, refused
        self.assertTrue(h.eventually(lambda: self.primary.status()["inbound"]["refused_partitioned"], timeout=5))
        time.sleep(0.6)
        self.assertIsNone(self.get(self.b, name, "out"))
        self.assertIsNone(self.get(self.a, name, "in"))
        self.assertEqual(self.primary.status()["outbound"]["pending"], 1)
        self.assertEqual(self.secondary.status()["outbound"]["pending"], 1)
        self.primary.control("heal")
        self.converge()
        self.assertIsNotNone(self.get(self.b, name, "out"))
        self.assertIsNotNone(self.get(self.a, name, "in"))

    def test_a_suspended_region_gets_its_changes_once_resumed(self):
        name = self.global_config()
        self.secondary.suspend()
        try:
            self.a.put_item(TableName=name, Item=item("while-stopped"))
            time.sleep(1.0)
            self.assertEqual(self.primary.status()["outbound"]["pending"], 1)
        finally:
            self.secondary.resume()
        self.converge()
        self.assertIsNotNone(self.get(self.b, name, "while-stopped"))

    def test_a_table_without_replicas_is_not_replicated(self):
        alone = unique("regional")
        create_config(self.a, alone)
        both = unique("per-region")  # one table of that name in each region, as without global tables
        create_config(self.a, both)
        create_config(self.b, both)
        recorded = [r.status()["outbound"]["recorded"] for r in (self.primary, self.secondary)]
        self.a.put_item(TableName=alone, Item=item("k"))
        self.a.put_item(TableName=both, Item=item("k", v="primary"))
        self.b.put_item(TableName=both, Item=item("j", v="secondary"))
        self.converge()
        time.sleep(0.6)
        self.assertNotIn(alone, self.b.list_tables()["TableNames"])
        self.assertEqual([i["appId"]["S"] for i in self.b.scan(TableName=both)["Items"]], ["j"])
        self.assertEqual([i["appId"]["S"] for i in self.a.scan(TableName=both)["Items"]], ["k"])
        self.assertNotIn("Replicas", self.a.describe_table(TableName=both)["Table"])
        self.assertEqual([r.status()["outbound"]["recorded"] for r in (self.primary, self.secondary)], recorded)
        # Nor would such a table take a change sent for it.
        self.assertEqual(self.send_item(both, "forced", PRIMARY, int(time.time() * 1e6)), "dropped")
        self.assertIsNone(self.get(self.b, both, "forced"))

    def test_a_replica_over_an_existing_table_fails_and_touches_nothing(self):
        name = unique("taken")
        create_config(self.a, name)
        create_config(self.b, name)
        self.b.put_item(TableName=name, Item=item("theirs"))
        self.a.put_item(TableName=name, Item=item("ours"))
        add_replica(self.a, name)
        self.converge()
        replicas = self.a.describe_table(TableName=name)["Table"]["Replicas"]
        self.assertEqual([(r["RegionName"], r["ReplicaStatus"]) for r in replicas], [(SECONDARY, "CREATION_FAILED")])
        self.assertIn("already exists", replicas[0]["ReplicaStatusDescription"])
        self.assertEqual([i["appId"]["S"] for i in self.b.scan(TableName=name)["Items"]], ["theirs"])

    def test_deleting_the_replica_deletes_the_table_there(self):
        name = self.global_config()
        self.a.put_item(TableName=name, Item=item("k"))
        self.converge()
        self.a.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": SECONDARY}}])
        self.converge()
        self.assertNotIn(name, self.b.list_tables()["TableNames"])
        described = self.a.describe_table(TableName=name)["Table"]
        self.assertNotIn("Replicas", described)
        self.a.put_item(TableName=name, Item=item("after"))
        self.assertEqual(self.primary.status()["outbound"]["pending"], 0)

    def test_replica_updates_the_emulator_cannot_serve_are_refused(self):
        name = unique("refused")
        create_config(self.a, name)
        for region, why in (("eu-west-1", "no region eu-west-1"), (PRIMARY, "own region")):
            with self.assertRaises(ClientError) as e:
                add_replica(self.a, name, region)
            self.assertEqual(e.exception.response["Error"]["Code"], "ValidationException")
            self.assertIn(why, e.exception.response["Error"]["Message"])
        with self.assertRaises(ClientError) as e:
            add_replica(self.a, self.global_config())
        self.assertIn("already exists", e.exception.response["Error"]["Message"])
        alone = h.Region()
        try:
            ddb = alone.client("dynamodb")
            create_config(ddb, name)
            with self.assertRaises(ClientError) as e:
                add_replica(ddb, name)
            self.assertIn("no peer region", e.exception.response["Error"]["Message"])
        finally:
            alone.stop()

    def test_the_lag_holds_a_change_back_that_long(self):
        name = self.global_config()
        for r in (self.primary, self.secondary):
            r.control("lag", {"lag": "2s"})
        self.assertEqual(self.primary.status()["lag_seconds"], 2)
        start = time.monotonic()
        self.a.put_item(TableName=name, Item=item("late"))
        time.sleep(0.5)
        self.assertIsNone(self.get(self.b, name, "late"), "delivered before the lag")
        self.assertTrue(h.eventually(lambda: self.get(self.b, name, "late"), timeout=10), "never delivered")
        self.assertGreater(time.monotonic() - start, 1.5)


class Outage(unittest.TestCase):
    """A killed region loses what it had not sent; a region that comes back empty and
    gets its replica again is filled from the other."""

    def setUp(self):
        self.primary, self.secondary = h.replicating_pair(lag="200ms")
        self.a, self.b = self.primary.client("dynamodb"), self.secondary.client("dynamodb")

    def tearDown(self):
        self.primary.stop()
        self.secondary.stop()

    def test_a_write_not_sent_when_its_region_is_killed_is_lost(self):
        name = unique("config")
        create_config(self.a, name)
        add_replica(self.a, name)
        h.wait_converged(self.primary, self.secondary)
        self.a.put_item(TableName=name, Item=item("sent"))
        h.wait_converged(self.primary, self.secondary)
        for r in (self.primary, self.secondary):
            r.control("partition")
        self.a.put_item(TableName=name, Item=item("unsent"))
        self.b.put_item(TableName=name, Item=item("stranded"))
        self.primary.kill()
        self.secondary.control("heal")
        time.sleep(1.5)  # seven lags
        self.assertIsNotNone(self.b.get_item(TableName=name, Key=key("sent")).get("Item"))
        self.assertIsNone(self.b.get_item(TableName=name, Key=key("unsent")).get("Item"))
        status = self.secondary.status()
        self.assertEqual(status["outbound"]["pending"], 1)  # kept, tried again, for a region that is gone
        self.assertIsNotNone(status["outbound"]["last_error"])

    def test_a_send_that_timed_out_but_applied_is_applied_once(self):
        # A short send timeout: the sends to the suspended region time out and are
        # made again; once it resumes it reads the first and each retry.
        self.primary.stop()
        self.secondary.stop()
        self.primary, self.secondary = h.replicating_pair(lag="100ms", extra=["--replication-send-timeout", "300ms"])
        self.a, self.b = self.primary.client("dynamodb"), self.secondary.client("dynamodb")
        name = unique("config")
        create_config(self.a, name)
        add_replica(self.a, name)
        h.wait_converged(self.primary, self.secondary)
        self.a.put_item(TableName=name, Item=item("k", v="1"))
        self.secondary.suspend()
        try:
            self.a.update_item(TableName=name, Key=key("k"), UpdateExpression="SET v = :v",
                               ExpressionAttributeValues={":v": {"S": "2"}})
            self.assertTrue(h.eventually(lambda: self.primary.status()["outbound"]["sends_failed"] >= 2, timeout=10))
        finally:
            self.secondary.resume()
        h.wait_converged(self.primary, self.secondary)
        self.assertTrue(h.eventually(lambda: self.secondary.status()["inbound"]["skipped"] >= 1, timeout=5),
                        self.secondary.status())
        self.assertEqual(self.b.get_item(TableName=name, Key=key("k"))["Item"]["v"], {"S": "2"})

    def test_a_region_back_empty_is_filled_by_its_replica(self):
        name = unique("config")
        create_config(self.a, name)
        add_replica(self.a, name)
        self.a.put_item(TableName=name, Item=item("old"))
        h.wait_converged(self.primary, self.secondary)
        self.primary.restart()  # empty, as emulator.sh restart-primary brings it back
        self.b.put_item(TableName=name, Item=item("while-away"))
        create_config(self.a, name)  # provision apply, again
        self.a.put_item(TableName=name, Item=item("new"))
        add_replica(self.a, name)
        h.wait_converged(self.primary, self.secondary)
        for ddb in (self.a, self.b):
            keys = sorted(i["appId"]["S"] for i in ddb.scan(TableName=name)["Items"])
            self.assertEqual(keys, ["new", "old", "while-away"])
        self.assertEqual(self.a.describe_table(TableName=name)["Table"]["Replicas"][0]["ReplicaStatus"], "ACTIVE")


if __name__ == "__main__":
    unittest.main()
