"""A permission change, as AWS answers it: calls signed with chosen access keys are
refused with the service's own `AccessDenied` error, while everything else (the
application's users through the REST APIs, other callers) is served as before.

This stands in for an IAM policy change that removes a role's permissions: AWS then
answers every call of that role with `AccessDeniedException` (DynamoDB),
`AccessDenied` (S3, HTTP 403, no body for HEAD) or `AccessDenied` (CloudWatch's query
protocol, HTTP 403). moto can evaluate IAM policies itself, but only for every
caller of a process at once, its own API Gateway integrations included; this layer
refuses the chosen callers only, which is what a policy change on one role does.

    POST /_emulator/iam {"deny": ["AKID1", ...]}   # refuse these access keys ([] to allow all)
    GET  /_emulator/iam                             # {"deny": [...], "refused": N}
"""

import json
import re
import threading
import uuid

PATH = "/_emulator/iam"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


class DenyLayer:
    """WSGI middleware in front of a region: refuses the calls of denied access keys."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.denied = set()
        self.refused = 0

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == PATH:
            return self.control(environ, start_response)
        m = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        with self.lock:
            deny = m is not None and m.group(1) in self.denied
            if deny:
                self.refused += 1
        if not deny:
            return self.app(environ, start_response)
        status, headers, body = access_denied(environ, m.group(1), m.group(2), m.group(3))
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]

    def control(self, environ, start_response):
        verb = environ["REQUEST_METHOD"].upper()
        code = "200 OK"
        if verb == "POST":
            try:
                size = int(environ.get("CONTENT_LENGTH") or 0)
                body = json.loads(environ["wsgi.input"].read(size) or b"{}")
                keys = body["deny"]
                if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                    raise ValueError("deny must be a list of access key ids")
                with self.lock:
                    self.denied = set(keys)
            except (KeyError, ValueError) as e:
                code = "400 Bad Request"
                data = json.dumps({"error": str(e)}).encode()
                start_response(code, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
                return [data]
        elif verb != "GET":
            code = "405 Method Not Allowed"
        with self.lock:
            data = json.dumps({"deny": sorted(self.denied), "refused": self.refused}).encode()
        start_response(code, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


def access_denied(environ, key, region, service):
    """The refusal AWS answers `service` calls of a caller without the permission."""
    request_id = str(uuid.uuid4())
    who = f"arn:aws:sts::123456789012:assumed-role/failover-monitor/{key}"
    if service == "dynamodb" or "json" in environ.get("CONTENT_TYPE", ""):
        # The JSON protocols (DynamoDB's, and CloudWatch's and others' newer one).
        action = environ.get("HTTP_X_AMZ_TARGET", "Service.Unknown").split(".")[-1]
        body = json.dumps({
            "__type": "com.amazon.coral.service#AccessDeniedException",
            "Message": f"User: {who} is not authorized to perform: {service}:{action} on resource: "
                       f"arn:aws:{service}:{region}:123456789012:* because no identity-based "
                       f"policy allows the {service}:{action} action",
        }).encode()
        return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.0"),
                                   ("x-amzn-RequestId", request_id)], body
    if service == "s3":
        if environ["REQUEST_METHOD"].upper() == "HEAD":
            return "403 Forbidden", [("x-amz-request-id", request_id)], b""
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>"
                f"<Message>Access Denied</Message><RequestId>{request_id}</RequestId></Error>").encode()
        return "403 Forbidden", [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], body
    # The query protocol (CloudWatch, IAM, STS, ...).
    body = ("<ErrorResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><Error>"
            "<Type>Sender</Type><Code>AccessDenied</Code>"
            f"<Message>User: {who} is not authorized to perform: {service}:*</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>").encode()
    return "403 Forbidden", [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body
