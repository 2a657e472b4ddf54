#!/usr/bin/env python3
"""Creates, in each emulated region, what the demo and the tests need.

Tables `<project>-config` (the config item, as the original stack seeds it: appId
and state only, no version) and `<project>-store` (GSI photoId), buckets
`<project>-primary` / `<project>-secondary` (versioned), and one CloudWatch alarm per
region, `<project>-<role>-api-5xx`, set to OK (the emulator never evaluates alarms by
itself; tests flip them with set_alarm_state).

The tables come in the two forms of `stack.tables`:

- `--tables global` (the default, as on AWS; the regions must be started as a
  replicating pair, deploy/local/REPLICATION.md): the primary's seed creates the
  tables there and makes them global tables with a replica in the secondary
  (`UpdateTable` `ReplicaUpdates`), and puts an S3 replication rule on the primary's
  bucket (`public` -> the secondary's bucket), as `failover-monitor provision` does;
  the secondary's seed waits for its replicas and writes the config item there only,
  in the commit region, when no replica holds one. A primary that came back empty
  and is seeded again rejoins its replicas and gets every item back from the
  secondary: nothing is written over what the secondary holds.
- `--tables per-region`: each region's seed creates its own two tables and item.

Idempotent: what exists is left as it is. Talks to the endpoints it is given only.
"""
import argparse
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


REPLICA_WAIT = 60.0  # seconds; the peer's sender retries a region that was not up yet


def table_definitions(project):
    stream = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    return {
        f"{project}-config": dict(
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "appId", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "appId", "KeyType": "HASH"}],
            StreamSpecification=stream),
        f"{project}-store": dict(
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "commentId", "AttributeType": "S"},
                                  {"AttributeName": "photoId", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "commentId", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[{
                "IndexName": "photoId",
                "KeySchema": [{"AttributeName": "photoId", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"}}],
            StreamSpecification=stream),
    }


def put_config_item(ddb, project, app_id, state):
    """The original stack's seed: appId and state, no version; never over an item."""
    try:
        ddb.put_item(TableName=f"{project}-config",
                     Item={"appId": {"S": app_id}, "state": {"S": state}},
                     ConditionExpression="attribute_not_exists(appId)")
    except ClientError as e:
        if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise


def make_global(ddb, name, peer_region):
    """Adds the replica in `peer_region` unless the table has one (or is one)."""
    table = ddb.describe_table(TableName=name)["Table"]
    if any(r["RegionName"] == peer_region and r.get("ReplicaStatus") != "CREATION_FAILED"
           for r in table.get("Replicas", [])):
        return
    ddb.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": peer_region}}])


def wait_replica(ddb, name, region, peer_region):
    """Waits until `name` in this region is an ACTIVE replica of the peer's table."""
    deadline = time.monotonic() + REPLICA_WAIT
    seen = "no table"
    while time.monotonic() < deadline:
        try:
            table = ddb.describe_table(TableName=name)["Table"]
            replicas = {r["RegionName"]: r.get("ReplicaStatus") for r in table.get("Replicas", [])}
            if replicas.get(peer_region) == "ACTIVE" and table["TableStatus"] == "ACTIVE":
                return
            seen = f"table {table['TableStatus']}, replicas {replicas or 'none'}"
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
        time.sleep(0.2)
    raise SystemExit(f"seed.py: {name} in {region} is not a replica of the {peer_region} table after "
                     f"{REPLICA_WAIT:.0f} s ({seen}): are both regions started as a replicating pair "
                     f"(deploy/local/REPLICATION.md)? Or seed with --tables per-region.")


def seed(role, region, endpoint, project, app_id, state, tables="per-region", peer_region=None):
    cfg = Config(retries={"max_attempts": 2}, s3={"addressing_style": "path"})
    kw = dict(region_name=region, endpoint_url=endpoint, config=cfg,
              aws_access_key_id="test", aws_secret_access_key="test")
    ddb = boto3.client("dynamodb", **kw)
    s3 = boto3.client("s3", **kw)
    cw = boto3.client("cloudwatch", **kw)

    existing = set(ddb.list_tables()["TableNames"])
    definitions = table_definitions(project)
    if tables == "per-region" or role == "primary":
        for name, definition in definitions.items():
            if name not in existing:
                ddb.create_table(TableName=name, **definition)
    if tables == "global" and role == "primary":
        for name in definitions:
            make_global(ddb, name, peer_region)
    elif tables == "global":
        # The replicas come from the primary; the item is written in the commit region.
        for name in definitions:
            wait_replica(ddb, name, region, peer_region)
    if state and (tables == "per-region" or role == "secondary"):
        put_config_item(ddb, project, app_id, state)

    bucket = f"{project}-{role}"
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket,
                             CreateBucketConfiguration={"LocationConstraint": region})
    except ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    if tables == "global" and role == "primary":
        # As provision puts it: new objects under public/ go to the secondary's bucket.
        s3.put_bucket_replication(Bucket=bucket, ReplicationConfiguration={
            "Role": f"arn:aws:iam::123456789012:role/{project}-replica",
            "Rules": [{"ID": "public", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": "public"},
                       "DeleteMarkerReplication": {"Status": "Disabled"},
                       "Destination": {"Bucket": f"arn:aws:s3:::{project}-secondary",
                                       "StorageClass": "STANDARD"}}]})

    alarm = f"{project}-{role}-api-5xx"
    cw.put_metric_alarm(
        AlarmName=alarm, Namespace="AWS/ApiGateway", MetricName="5XXError",
        Dimensions=[{"Name": "ApiName", "Value": f"{project}-config-{role}"}],
        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching")
    cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="seeded")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default="photos")
    ap.add_argument("--app-id", required=True)
    ap.add_argument("--state", default="active", help="initial state; empty for no item")
    ap.add_argument("--primary", help="primary endpoint URL")
    ap.add_argument("--primary-region", default="us-east-1")
    ap.add_argument("--secondary", help="secondary endpoint URL")
    ap.add_argument("--secondary-region", default="ap-northeast-1")
    ap.add_argument("--tables", choices=("global", "per-region"), default="global",
                    help="global tables with a replica in the secondary (default; the regions must "
                         "replicate), or one table per region, as stack.tables says")
    a = ap.parse_args()
    if not (a.primary or a.secondary):
        ap.error("give --primary, --secondary or both")
    if a.primary:
        seed("primary", a.primary_region, a.primary, a.project, a.app_id, a.state,
             a.tables, a.secondary_region)
    if a.secondary:
        seed("secondary", a.secondary_region, a.secondary, a.project, a.app_id, a.state,
             a.tables, a.primary_region)
    return 0


if __name__ == "__main__":
    sys.exit(main())
