#!/usr/bin/env python3
"""Creates, in each emulated region, what the demo and the tests need.

Tables `<project>-config` (the config item, as the original stack seeds it: appId
and state only, no version) and `<project>-store` (GSI photoId), buckets
`<project>-primary` / `<project>-secondary` (versioned), and one CloudWatch alarm per
region, `<project>-<role>-api-5xx`, set to OK (the emulator never evaluates alarms by
itself; tests flip them with set_alarm_state).

Idempotent: what exists is left as it is. Talks to the endpoints it is given only.
"""
import argparse
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def seed(role, region, endpoint, project, app_id, state):
    cfg = Config(retries={"max_attempts": 2}, s3={"addressing_style": "path"})
    kw = dict(region_name=region, endpoint_url=endpoint, config=cfg,
              aws_access_key_id="test", aws_secret_access_key="test")
    ddb = boto3.client("dynamodb", **kw)
    s3 = boto3.client("s3", **kw)
    cw = boto3.client("cloudwatch", **kw)

    existing = set(ddb.list_tables()["TableNames"])
    stream = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if f"{project}-config" not in existing:
        ddb.create_table(
            TableName=f"{project}-config", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "appId", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "appId", "KeyType": "HASH"}],
            StreamSpecification=stream)
    if f"{project}-store" not in existing:
        ddb.create_table(
            TableName=f"{project}-store", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "commentId", "AttributeType": "S"},
                                  {"AttributeName": "photoId", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "commentId", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[{
                "IndexName": "photoId",
                "KeySchema": [{"AttributeName": "photoId", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"}}],
            StreamSpecification=stream)
    if state:
        try:
            ddb.put_item(TableName=f"{project}-config",
                         Item={"appId": {"S": app_id}, "state": {"S": state}},
                         ConditionExpression="attribute_not_exists(appId)")
        except ClientError as e:
            if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

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
    a = ap.parse_args()
    if not (a.primary or a.secondary):
        ap.error("give --primary, --secondary or both")
    if a.primary:
        seed("primary", a.primary_region, a.primary, a.project, a.app_id, a.state)
    if a.secondary:
        seed("secondary", a.secondary_region, a.secondary, a.project, a.app_id, a.state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
