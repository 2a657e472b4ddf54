"""The permission change of deploy/local/emulator/iam.py: the chosen access keys get
each service's own AccessDenied, every other caller is served, and the SDK reads
the refusals as AWS's."""

import json
import unittest
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from harness import Region


class DenyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.region = Region()
        cls.admin = cls.region.client("dynamodb")
        cls.admin.create_table(
            TableName="t", KeySchema=[{"AttributeName": "appId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "appId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST")
        cls.region.client("s3").create_bucket(Bucket="deny-test")

    @classmethod
    def tearDownClass(cls):
        cls.region.stop()

    def tearDown(self):
        self.deny([])

    def deny(self, keys):
        req = urllib.request.Request(f"{self.region.url}/_emulator/iam", method="POST",
                                     data=json.dumps({"deny": keys}).encode())
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    def client(self, service, key):
        return boto3.client(service, region_name=self.region.name, endpoint_url=self.region.url,
                            aws_access_key_id=key, aws_secret_access_key="x",
                            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))

    def code(self, call):
        with self.assertRaises(ClientError) as e:
            call()
        return e.exception.response["Error"]["Code"], e.exception.response["ResponseMetadata"]["HTTPStatusCode"]

    def test_denied_keys_get_each_services_access_denied_and_others_are_served(self):
        self.assertEqual(self.deny(["MONITOR"])["deny"], ["MONITOR"])
        ddb = self.client("dynamodb", "MONITOR")
        self.assertEqual(self.code(lambda: ddb.get_item(TableName="t", Key={"appId": {"S": "a"}})),
                         ("AccessDeniedException", 400))
        s3 = self.client("s3", "MONITOR")
        self.assertEqual(self.code(lambda: s3.head_bucket(Bucket="deny-test")), ("403", 403))
        self.assertEqual(self.code(lambda: s3.get_object(Bucket="deny-test", Key="k")), ("AccessDenied", 403))
        # CloudWatch in the query protocol (what the monitor's SDK speaks to moto)
        query = urllib.request.Request(
            self.region.url, method="POST", data=b"Action=DescribeAlarms&Version=2010-08-01",
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Authorization": "AWS4-HMAC-SHA256 Credential=MONITOR/20270101/us-east-1/"
                                      "monitoring/aws4_request, SignedHeaders=host, Signature=0"})
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(query)
        self.assertEqual(e.exception.code, 403)
        self.assertIn(b"<Code>AccessDenied</Code>", e.exception.read())
        # another caller is served
        self.client("dynamodb", "OPS").get_item(TableName="t", Key={"appId": {"S": "a"}})
        # and once allowed again, so is the monitor
        self.deny([])
        ddb.get_item(TableName="t", Key={"appId": {"S": "a"}})

    def test_a_bad_request_is_refused_and_changes_nothing(self):
        self.deny(["MONITOR"])
        req = urllib.request.Request(f"{self.region.url}/_emulator/iam", method="POST",
                                     data=json.dumps({"deny": "MONITOR"}).encode())
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req)
        self.assertEqual(e.exception.code, 400)
        with urllib.request.urlopen(f"{self.region.url}/_emulator/iam") as r:
            self.assertEqual(json.load(r)["deny"], ["MONITOR"])


if __name__ == "__main__":
    unittest.main()
