"""What the emulator layer's tests share: one emulated region in its own process
(`deploy/local/region`, the launcher the demo and the Rust tests use), or two that
replicate to each other (`replicating_pair`), boto3 clients on them, the project's
stack pieces (tables, the two REST APIs built the way `failover-monitor provision`
builds them) and plain HTTP calls."""

import json
import os
import pathlib
import signal
import socket
import sys
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "deploy/local"))
from emulator import control  # noqa: E402
REGION = "us-east-1"
ACCOUNT = "123456789012"
CORS_HEADERS = "'Authorization,Content-Type,X-Amz-Date,X-Amz-Security-Token,X-Api-Key'"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Region:
    """One region process on a free loopback port (or `port`), started with extra
    `args` (the replication flags); `stop()` kills it and removes its log."""

    def __init__(self, name=REGION, args=(), port=None):
        self.name = name
        self.args = list(args)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="emulator-layer-", suffix=".log", delete=False)
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [str(ROOT / "deploy/local/region"), "-H", "127.0.0.1", "-p", str(self.port), *self.args],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the region exited: {self.log_text()}")
                time.sleep(0.05)
        raise RuntimeError(f"the region did not listen on {self.port}")

    def log_text(self):
        return pathlib.Path(self.log.name).read_text(errors="replace")

    def client(self, service):
        return boto3.client(
            service, region_name=self.name, endpoint_url=self.url,
            aws_access_key_id="test", aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
        )

    def kill(self):
        """Region outage: SIGKILL (a suspended process is resumed first)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()

    def suspend(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def restart(self):
        """A fresh, empty process on the same port with the same flags."""
        self.kill()
        self.start()

    def stop(self):
        self.kill()
        self.log.close()
        os.unlink(self.log.name)

    # -- replication (deploy/local/emulator/replication.py) -----------------------

    def control(self, action, body=None):
        """A replication control call: status, lag, partition, heal."""
        verb = "GET" if action == "status" else "POST"
        return control.call(self.url, verb, action, {} if body is None and verb == "POST" else body)

    def status(self):
        return self.control("status")


def replicating_pair(lag="200ms", primary="us-east-1", secondary="ap-northeast-1", extra=()):
    """Two regions peered with each other, as deploy/local/emulator.sh starts them
    (`extra`: more flags for both)."""
    ports = free_port(), free_port()
    regions = []
    for (name, port), (peer, peer_port) in zip(((primary, ports[0]), (secondary, ports[1])),
                                               ((secondary, ports[1]), (primary, ports[0]))):
        regions.append(Region(name, ["--region", name, "--peer", f"http://127.0.0.1:{peer_port}",
                                     "--peer-region", peer, "--replication-lag", lag, *extra], port=port))
    return tuple(regions)


def wait_converged(*regions, timeout=15.0):
    """Waits until no region has a change still to send; fails with their status."""
    deadline = time.monotonic() + timeout
    while True:
        states = [r.status() for r in regions]
        if all(s["outbound"]["pending"] == 0 for s in states):
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"replication did not converge in {timeout} s: {json.dumps(states)}")
        time.sleep(0.05)


def eventually(check, timeout=10.0, interval=0.05):
    """check()'s first truthy value within `timeout`, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --------------------------------------------------------------------------------
# Templates: today's (tests/emulator_layer/original, verbatim from
# src/provision/api.rs) and the fixed ones (deploy/apigateway) part B installs.

ORIGINAL = HERE / "original"
FIXED = ROOT / "deploy/apigateway"


def template(directory, name, table=""):
    return (directory / f"{name}.vtl").read_text().replace("@TABLE@", table)


def create_tables(ddb, project="photos"):
    ddb.create_table(
        TableName=f"{project}-config", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "appId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "appId", "KeyType": "HASH"}],
    )
    ddb.create_table(
        TableName=f"{project}-store", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "commentId", "AttributeType": "S"},
            {"AttributeName": "photoId", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "commentId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{
            "IndexName": "photoId",
            "KeySchema": [{"AttributeName": "photoId", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
    )


def cors(methods):
    return {
        "Access-Control-Allow-Headers": CORS_HEADERS,
        "Access-Control-Allow-Methods": f"'{methods}'",
        "Access-Control-Allow-Origin": "'*'",
        "Access-Control-Max-Age": "'7200'",
    }


ORIGIN = {"Access-Control-Allow-Origin": "'*'"}


def method(path, verb, action=None, request="", response="", headers=None, auth="NONE"):
    """One method the way `provision` writes it: None action is a MOCK."""
    return {"path": path, "verb": verb, "action": action, "request": request,
            "response": response, "headers": headers or {}, "auth": auth}


def config_api_methods(templates, table="photos-config"):
    return [
        method("/state/{appId}", "GET", "Query",
               template(templates, "state-get.request", table),
               template(templates, "state-get.response"), ORIGIN),
        method("/state/{appId}", "OPTIONS", None, template(templates, "preflight.request"), "",
               cors("OPTIONS,HEAD,GET,POST,PUT,PATCH,DELETE")),
    ]


def store_api_methods(templates, table="photos-store", post_auth="NONE"):
    return [
        method("/comments/{photoId}", "GET", "Query",
               template(templates, "comments-get.request", table),
               template(templates, "comments-get.response"), ORIGIN),
        method("/comments/{photoId}", "POST", "PutItem",
               template(templates, "comments-post.request", table),
               template(templates, "comments-post.response"), ORIGIN, auth=post_auth),
        method("/comments/{photoId}", "OPTIONS", None, template(templates, "preflight.request"), "",
               cors("GET,OPTIONS,POST")),
    ]


def resource_for(gw, api_id, path):
    """The resource id of `path`, creating the missing segments."""
    have = {r["path"]: r["id"] for r in gw.get_resources(restApiId=api_id, limit=500)["items"]}
    parent, so_far = have["/"], ""
    for seg in path.strip("/").split("/"):
        so_far += "/" + seg
        if so_far not in have:
            have[so_far] = gw.create_resource(restApiId=api_id, parentId=parent, pathPart=seg)["id"]
        parent = have[so_far]
    return parent


def put_methods(gw, api_id, methods, region=REGION, role="arn:aws:iam::123456789012:role/api"):
    for m in methods:
        rid = resource_for(gw, api_id, m["path"])
        params = {f"method.request.path.{p.strip('{}')}": True
                  for p in m["path"].split("/") if p.startswith("{")}
        try:
            gw.get_method(restApiId=api_id, resourceId=rid, httpMethod=m["verb"])
        except gw.exceptions.NotFoundException:
            gw.put_method(restApiId=api_id, resourceId=rid, httpMethod=m["verb"],
                          authorizationType=m["auth"], requestParameters=params)
            gw.put_method_response(
                restApiId=api_id, resourceId=rid, httpMethod=m["verb"], statusCode="200",
                responseModels={"application/json": "Empty"},
                responseParameters={f"method.response.header.{h}": False for h in m["headers"]},
            )
        kw = dict(restApiId=api_id, resourceId=rid, httpMethod=m["verb"],
                  passthroughBehavior="NEVER", requestTemplates={"application/json": m["request"]})
        if m["action"]:
            kw.update(type="AWS", integrationHttpMethod="POST", credentials=role,
                      uri=f"arn:aws:apigateway:{region}:dynamodb:action/{m['action']}")
        else:
            kw.update(type="MOCK")
        gw.put_integration(**kw)
        ir = dict(restApiId=api_id, resourceId=rid, httpMethod=m["verb"], statusCode="200",
                  responseParameters={f"method.response.header.{h}": v for h, v in m["headers"].items()})
        if m["response"]:
            ir["responseTemplates"] = {"application/json": m["response"]}
        gw.put_integration_response(**ir)


def create_api(gw, name, methods, deploy=True):
    api_id = gw.create_rest_api(name=name, endpointConfiguration={"types": ["REGIONAL"]})["id"]
    put_methods(gw, api_id, methods)
    if deploy:
        gw.create_deployment(restApiId=api_id, stageName="prod")
    return api_id


# --------------------------------------------------------------------------------
# HTTP


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"HTTP {self.status} {self.headers} {self.body!r}"


def call(url, verb="GET", body=None, headers=None):
    data = None if body is None else (body if isinstance(body, bytes) else body.encode("utf-8"))
    req = urllib.request.Request(url, data=data, method=verb, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return Answer(r.status, dict(r.headers), r.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        return Answer(e.code, dict(e.headers), e.read().decode("utf-8"))


def signed_headers(url, verb, body, region=REGION, service="execute-api"):
    """SigV4 headers for the call, signed with botocore's signer (test credentials)."""
    req = AWSRequest(method=verb, url=url, data=body or b"",
                     headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("AKIDEXAMPLE", "secret", "session-token"), service, region).add_auth(req)
    return dict(req.headers.items())


def invoke_url(region, api_id, path, stage="prod"):
    return f"{region.url}/restapis/{api_id}/{stage}/_user_request_{path}"
