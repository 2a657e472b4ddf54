"""The page's SigV4 signer (deploy/website/sigv4.js, run by Node's WebCrypto) against
AWS's published example and botocore's signer, on the requests the page makes:
execute-api POST, S3 PUT and ListObjectsV2, S3 presigned GET."""

import datetime
import json
import pathlib
import shutil
import subprocess
import tempfile
import unittest
import urllib.parse
from unittest import mock

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = pathlib.Path(__file__).resolve().parents[2]
WHEN = datetime.datetime(2026, 3, 1, 12, 34, 56, tzinfo=datetime.timezone.utc)
CREDS = {"accessKeyId": "ASIAEXAMPLE", "secretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
         "sessionToken": "FwoGZXIvYXdzEXAMPLE//token=="}

DRIVER = """
import { signRequest, presignUrl, encodePath } from "./sigv4.mjs";
const cases = JSON.parse(process.argv[2]);
const out = [];
for (const c of cases) {
  const now = new Date(c.now);
  if (c.kind === "presign") {
    out.push(await presignUrl({ url: c.url, service: c.service, region: c.region, credentials: c.credentials, expires: c.expires, now }));
  } else if (c.kind === "encodePath") {
    out.push(encodePath(c.path));
  } else {
    const body = c.bodyHex ? Uint8Array.from(c.bodyHex.match(/../g).map((b) => parseInt(b, 16))) : (c.body ?? "");
    out.push(await signRequest({ method: c.method, url: c.url, headers: c.headers, body, service: c.service,
                                 region: c.region, credentials: c.credentials, now }));
  }
}
console.log(JSON.stringify(out));
"""


def run_node(cases):
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed (the machine image carries Node.js 20)")
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(ROOT / "deploy/website/sigv4.js", pathlib.Path(d) / "sigv4.mjs")
        (pathlib.Path(d) / "driver.mjs").write_text(DRIVER)
        out = subprocess.run([node, "driver.mjs", json.dumps(cases)], cwd=d, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)


def botocore_headers(signer_cls, method, url, headers, body, service, region):
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    creds = Credentials(CREDS["accessKeyId"], CREDS["secretAccessKey"], CREDS["sessionToken"])
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN.replace(tzinfo=None)):
        signer_cls(creds, service, region).add_auth(req)
    return dict(req.headers.items())


class SigV4(unittest.TestCase):
    def test_aws_documented_example(self):
        # "GET https://example.amazonaws.com/" of AWS's SigV4 examples (get-vanilla).
        (h,) = run_node([{"method": "GET", "url": "https://example.amazonaws.com/", "headers": {},
                          "service": "service", "region": "us-east-1", "now": "2015-08-30T12:36:00Z",
                          "credentials": {"accessKeyId": "AKIDEXAMPLE",
                                          "secretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}}])
        self.assertEqual(h["Authorization"],
                         "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                         "SignedHeaders=host;x-amz-date, "
                         "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")

    def test_execute_api_post_matches_botocore(self):
        url = "http://127.0.0.1:5001/restapis/abc123/prod/_user_request_/comments/6f1c-é"
        url = urllib.parse.quote(url, safe=":/")
        body = json.dumps({"message": "it's \"é\"\n", "photoId": "p"}, ensure_ascii=False)
        headers = {"Content-Type": "application/json"}
        (js,) = run_node([{"method": "POST", "url": url, "headers": headers, "body": body, "service": "execute-api",
                           "region": "us-east-1", "credentials": CREDS, "now": WHEN.isoformat()}])
        py = botocore_headers(SigV4Auth, "POST", url, headers, body.encode(), "execute-api", "us-east-1")
        self.assertEqual(js["Authorization"], py["Authorization"])
        self.assertEqual(js["X-Amz-Security-Token"], CREDS["sessionToken"])

    def test_s3_put_and_list_match_botocore(self):
        png = bytes(range(256)) * 3
        put = "http://127.0.0.1:5002/photos-secondary/public/0b7e1c8a-1d2f-4c3b-9a8e-123456789abc"
        listing = "http://127.0.0.1:5002/photos-secondary?list-type=2&prefix=public%2F"
        js_put, js_list = run_node([
            {"method": "PUT", "url": put, "headers": {"Content-Type": "image/png"}, "bodyHex": png.hex(),
             "service": "s3", "region": "ap-northeast-1", "credentials": CREDS, "now": WHEN.isoformat()},
            {"method": "GET", "url": listing, "headers": {}, "service": "s3", "region": "ap-northeast-1",
             "credentials": CREDS, "now": WHEN.isoformat()},
        ])
        py_put = botocore_headers(S3SigV4Auth, "PUT", put, {"Content-Type": "image/png"}, png, "s3", "ap-northeast-1")
        self.assertEqual(js_put["x-amz-content-sha256"], py_put["X-Amz-Content-SHA256"])
        self.assertEqual(js_put["Authorization"], py_put["Authorization"])
        py_list = botocore_headers(S3SigV4Auth, "GET", listing, {}, b"", "s3", "ap-northeast-1")
        self.assertEqual(js_list["Authorization"], py_list["Authorization"])

    def test_s3_presigned_get_matches_botocore(self):
        url = "http://127.0.0.1:5001/photos-primary/public/a%20b"
        (js,) = run_node([{"kind": "presign", "url": url, "service": "s3", "region": "us-east-1",
                           "credentials": CREDS, "expires": 900, "now": WHEN.isoformat()}])
        req = AWSRequest(method="GET", url=url)
        creds = Credentials(CREDS["accessKeyId"], CREDS["secretAccessKey"], CREDS["sessionToken"])
        with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN.replace(tzinfo=None)):
            S3SigV4QueryAuth(creds, "s3", "us-east-1", expires=900).add_auth(req)
        ours = urllib.parse.urlsplit(js)
        theirs = urllib.parse.urlsplit(req.url)
        self.assertEqual(ours.path, theirs.path)
        self.assertEqual(dict(urllib.parse.parse_qsl(ours.query)), dict(urllib.parse.parse_qsl(theirs.query)))

    def test_keys_are_encoded_per_segment(self):
        (p,) = run_node([{"kind": "encodePath", "path": "public/a b+c/é~", "now": WHEN.isoformat()}])
        self.assertEqual(p, "public/a%20b%2Bc/%C3%A9~")


if __name__ == "__main__":
    unittest.main()
