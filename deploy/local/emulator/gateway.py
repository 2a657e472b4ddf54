"""Runs the REST APIs provisioned into this moto process, as API Gateway would.

A WSGI middleware in front of moto's own application: requests to
`/restapis/<id>/<stage>/_user_request_/<path>` (the form moto documents for invoking an
API in server mode) are executed here; everything else goes to moto unchanged.

What a call goes through, in API Gateway's order:
1. The stage's deployment. Every CreateDeployment takes a snapshot of the API's
   resources, methods and integrations (`install()` wraps moto's RestAPI); the stage
   serves the snapshot of the deployment it points at, so a method or template changed
   without a new deployment keeps the old behaviour, as on AWS.
2. Routing: literal path segments before `{param}`, `{param+}` greedy, the method's
   verb or ANY. No match: 403 `{"message":"Missing Authentication Token"}`.
3. Authorization: `AWS_IAM` methods need a SigV4 signature (see `check_sigv4`: its
   presence and shape are checked, the signature itself cannot be, the emulator knowing
   no secret key); `NONE` passes.
4. Integration request: the request template chosen by Content-Type (application/json
   when absent) under the integration's passthrough behaviour.
5. Integration: MOCK (the rendered template's `statusCode`) or AWS to DynamoDB
   (`arn:aws:apigateway:<region>:dynamodb:action/<Action>`), sent in-process to moto's
   DynamoDB of that region and account.
6. Integration response: selected by `selectionPattern` against the status code (the
   one without a pattern is the default), its template rendered over the backend's
   answer, `method.response.header.*` mapped from static values, the integration
   response's headers or body, or `$context`.

Not implemented (answered with 500 and a log line naming what is missing): other
integration types (HTTP, Lambda, proxies), AWS integrations to other services,
Lambda/Cognito authorizers, API keys, request validators, custom gateway responses,
stage variables in URIs, caching and throttling. IAM policies (the caller's and the
integration role's) are not evaluated: moto does not evaluate them either.
"""

import copy
import datetime
import io
import json
import re
import sys
import threading
import urllib.parse
import uuid

from . import vtl

USER_REQUEST = re.compile(r"^/restapis/([^/]+)/([^/]+)/_user_request_(/.*)?$")

# --------------------------------------------------------------------------------
# Deployments keep their own copy of the API definition


class Definition:
    """What one deployment serves: every resource with its methods (moto's own JSON
    form of each method, integration and responses included)."""

    def __init__(self, api):
        self.api_id = api.id
        self.region = api.region_name
        self.account = api.account_id
        self.resources = []
        for resource in list(api.resources.values()):
            methods = {
                verb: copy.deepcopy(method.to_json())
                for verb, method in list(resource.resource_methods.items())
            }
            self.resources.append((resource.get_path(), resource.id, methods))


_snapshots_lock = threading.Lock()
_install_lock = threading.Lock()


def install():
    """Makes every deployment created in this process keep a snapshot. Idempotent.
    Done at the first API Gateway request (`/restapis...`), before moto handles it:
    importing moto's API Gateway takes a while, which a region that never serves an
    API (most of the monitor's tests) should not pay."""
    from moto.apigateway import models as apigw_models

    cls = apigw_models.RestAPI
    with _install_lock:
        if getattr(cls, "_emulator_snapshots_installed", False):
            return
        _wrap(cls)


def _wrap(cls):
    original = cls.create_deployment

    def create_deployment(self, name, description, stage_variables=None):
        deployment = original(self, name, description, stage_variables)
        with _snapshots_lock:
            self.__dict__.setdefault("_emulator_snapshots", {})[deployment.id] = Definition(self)
        return deployment

    cls.create_deployment = create_deployment
    cls._emulator_snapshots_installed = True


def find_api(api_id):
    """The RestAPI with that id, in whichever account and region of this process."""
    from moto.apigateway import models as apigw_models

    for _account, regions in list(dict.items(apigw_models.apigateway_backends)):
        for _region, backend in list(dict.items(regions)):
            api = backend.apis.get(api_id)
            if api is not None:
                return api
    return None


# --------------------------------------------------------------------------------
# Routing


def _segments(path):
    return [s for s in path.split("/") if s != ""]


def match_route(definition, path):
    """(resource path, resource id, methods, path parameters still percent-encoded)
    of the best match for the raw `path`, or None. Literal segments win over
    parameters, position by position."""
    want = _segments(path)
    best, best_key = None, None
    for rpath, rid, methods in definition.resources:
        pattern = _segments(rpath)
        params, key, ok = {}, [], True
        for i, seg in enumerate(pattern):
            greedy = re.fullmatch(r"\{(.+)\+\}", seg)
            if greedy:
                if i != len(pattern) - 1 or i >= len(want):
                    ok = False
                    break
                params[greedy.group(1)] = "/".join(want[i:])
                key.append(0)
                break
            if i >= len(want):
                ok = False
                break
            param = re.fullmatch(r"\{(.+)\}", seg)
            if param:
                params[param.group(1)] = want[i]
                key.append(1)
            elif seg == urllib.parse.unquote(want[i]):
                key.append(2)
            else:
                ok = False
                break
        else:
            if len(pattern) != len(want):
                ok = False
        if ok and (best_key is None or key > best_key):
            best, best_key = (rpath, rid, methods, params), key
    return best


# --------------------------------------------------------------------------------
# SigV4, as far as it can be checked without the secret key

_CREDENTIAL = re.compile(r"^([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request$")


def check_sigv4(headers, query, region):
    """None when the request carries a well-formed SigV4 signature for
    `execute-api` in `region`; otherwise (error type, message) as API Gateway answers
    (403). The signature value is checked for shape only."""
    auth = headers.get("authorization")
    if auth is None and "X-Amz-Signature" not in query:
        return "MissingAuthenticationTokenException", "Missing Authentication Token"
    if auth is not None:
        scheme, _, rest = auth.partition(" ")
        fields = {}
        for part in rest.split(","):
            k, _, v = part.strip().partition("=")
            if k:
                fields[k] = v
        date = headers.get("x-amz-date") or headers.get("date")
        missing = []
        if scheme != "AWS4-HMAC-SHA256" or "Credential" not in fields:
            missing.append("Authorization header requires 'Credential' parameter.")
        if scheme != "AWS4-HMAC-SHA256" or "Signature" not in fields:
            missing.append("Authorization header requires 'Signature' parameter.")
        if scheme != "AWS4-HMAC-SHA256" or "SignedHeaders" not in fields:
            missing.append("Authorization header requires 'SignedHeaders' parameter.")
        if not date:
            missing.append(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
            )
        if missing:
            return "IncompleteSignatureException", " ".join(missing) + f" Authorization={auth}"
        credential, signature = fields["Credential"], fields["Signature"]
        signed = fields["SignedHeaders"].split(";")
    else:
        credential = query.get("X-Amz-Credential", "")
        signature = query.get("X-Amz-Signature", "")
        signed = query.get("X-Amz-SignedHeaders", "").split(";")
        date = query.get("X-Amz-Date")
    m = _CREDENTIAL.match(credential)
    if not m:
        return "IncompleteSignatureException", f"Credential not well formed: {credential}"
    _key, day, cred_region, service = m.groups()
    if cred_region != region:
        return "InvalidSignatureException", f"Credential should be scoped to a valid region, not '{cred_region}'. "
    if service != "execute-api":
        return "InvalidSignatureException", "Credential should be scoped to correct service: 'execute-api'. "
    if not re.fullmatch(r"[0-9a-f]{64}", signature):
        return "InvalidSignatureException", "The request signature we calculated does not match the signature you provided."
    if "host" not in signed or any(h and h not in headers for h in signed):
        return "InvalidSignatureException", "The request signature we calculated does not match the signature you provided."
    try:
        when = datetime.datetime.strptime(date or "", "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return "IncompleteSignatureException", f"Date must be in ISO-8601 'basic format'. Got '{date}'."
    if when.strftime("%Y%m%d") != day:
        return "InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP"
    now = datetime.datetime.now(datetime.timezone.utc)
    if abs((now - when).total_seconds()) > 300:
        return "InvalidSignatureException", (
            f"Signature expired: {date} is now earlier than "
            f"{(now - datetime.timedelta(minutes=5)).strftime('%Y%m%dT%H%M%SZ')}"
        )
    return None


# --------------------------------------------------------------------------------
# The middleware


class Response:
    def __init__(self, status, body=b"", headers=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode("utf-8")
        self.headers = list(headers or [])


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 403: "Forbidden",
            404: "Not Found", 415: "Unsupported Media Type", 500: "Internal Server Error"}


def gateway_error(status, message, error_type, request_id):
    body = json.dumps({"message": message}, separators=(",", ":"))
    return Response(status, body, [("Content-Type", "application/json"),
                                   ("x-amzn-ErrorType", error_type),
                                   ("x-amzn-RequestId", request_id)])


def log(message):
    print(f"[api] {message}", file=sys.stderr, flush=True)


class ExecutionLayer:
    def __init__(self, app):
        self.app = app
        self.installed = False

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not self.installed and path.startswith("/restapis"):
            install()
            self.installed = True
        m = USER_REQUEST.match(path)
        if not m:
            return self.app(environ, start_response)
        resp = self.invoke(environ, m.group(1), m.group(2))
        status = f"{resp.status} {_REASONS.get(resp.status, 'Status')}"
        headers = resp.headers + [("Content-Length", str(len(resp.body)))]
        start_response(status, headers)
        return [resp.body]

    # -- one call ----------------------------------------------------------------

    def invoke(self, environ, api_id, stage_name):
        request_id = str(uuid.uuid4())
        verb = environ["REQUEST_METHOD"].upper()
        raw_path = _raw_path(environ)
        user_path = raw_path.split("/_user_request_", 1)[1] or "/"
        api = find_api(api_id)
        if api is None:
            # On AWS the host name would not resolve.
            return gateway_error(404, f"No REST API {api_id} in this emulator", "NotFoundException", request_id)
        stage = api.stages.get(stage_name)
        with _snapshots_lock:
            snapshots = dict(api.__dict__.get("_emulator_snapshots", {}))
        definition = snapshots.get(stage.deployment_id) if stage else None
        if definition is None:
            return gateway_error(403, "Missing Authentication Token", "MissingAuthenticationTokenException", request_id)
        route = match_route(definition, user_path)
        method = None
        if route:
            _rpath, _rid, methods, _params = route
            method = methods.get(verb) or methods.get("ANY")
        if method is None:
            return gateway_error(403, "Missing Authentication Token", "MissingAuthenticationTokenException", request_id)
        rpath, rid, _methods, raw_params = route
        params = {k: urllib.parse.unquote(v) for k, v in raw_params.items()}
        headers = _headers(environ)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        body = _body(environ)

        auth = method.get("authorizationType") or "NONE"
        identity = {
            "sourceIp": environ.get("REMOTE_ADDR", ""),
            "userAgent": headers.get("user-agent", ""),
            "accountId": "",
            "accessKey": "",
            "caller": "",
            "user": "",
            "userArn": "",
            "cognitoIdentityId": "",
            "cognitoIdentityPoolId": "",
            "cognitoAuthenticationType": "",
            "cognitoAuthenticationProvider": "",
            "apiKey": "",
        }
        if auth == "AWS_IAM":
            refused = check_sigv4(headers, query, definition.region)
            if refused:
                error_type, message = refused
                return gateway_error(403, message, error_type, request_id)
            cred = _credential(headers, query)
            identity["accessKey"] = cred
            identity["caller"] = cred
        elif auth != "NONE":
            log(f"{verb} {rpath}: authorization type {auth} is not implemented by the emulator")
            return gateway_error(500, "Internal server error", "InternalServerErrorException", request_id)
        if method.get("apiKeyRequired"):
            log(f"{verb} {rpath}: API keys are not implemented by the emulator")
            return gateway_error(500, "Internal server error", "InternalServerErrorException", request_id)

        now = datetime.datetime.now(datetime.timezone.utc)
        context = {
            "requestId": request_id,
            "extendedRequestId": request_id,
            "apiId": api_id,
            "accountId": definition.account,
            "stage": stage_name,
            "resourceId": rid,
            "resourcePath": rpath,
            "httpMethod": verb,
            "path": f"/{stage_name}{user_path}",
            "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "domainName": headers.get("host", ""),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "identity": identity,
        }
        integration = method.get("methodIntegration")
        if not integration:
            log(f"{verb} {rpath}: no integration")
            return gateway_error(500, "Internal server error", "InternalServerErrorException", request_id)
        try:
            return self.integrate(integration, method, context, stage.variables, body, params, query, headers)
        except vtl.TemplateError as e:
            log(f"{verb} {rpath}: Execution failed due to configuration error: {e}")
            return gateway_error(500, "Internal server error", "InternalServerErrorException", request_id)

    def integrate(self, integration, method, context, stage_vars, body, params, query, headers):
        request_id = context["requestId"]
        kind = integration.get("type")
        templates = integration.get("requestTemplates") or {}
        content_type = (headers.get("content-type") or "application/json").split(";")[0].strip().lower()
        template = templates.get(content_type)
        passthrough = (integration.get("passthroughBehavior") or "WHEN_NO_MATCH").upper()
        if template is None and content_type in {k.lower() for k in templates}:
            template = next(v for k, v in templates.items() if k.lower() == content_type)
        if template is None and (passthrough == "NEVER" or (passthrough == "WHEN_NO_TEMPLATES" and templates)):
            return gateway_error(415, "Unsupported Media Type", "UnsupportedMediaTypeException", request_id)
        method_input = vtl.Input(body, path=params, querystring=query, header=_original_case(headers))
        payload = body if template is None else vtl.render(template, method_input, context, stage_vars)

        if kind == "MOCK":
            try:
                status = int(json.loads(payload)["statusCode"])
            except (ValueError, KeyError, TypeError):
                log(f"{context['httpMethod']} {context['resourcePath']}: the MOCK request template gave no statusCode")
                return gateway_error(500, "Internal server error", "InternalServerErrorException", request_id)
            backend_status, backend_body, backend_headers = status, "", {}
        elif kind == "AWS":
            uri = integration.get("uri") or ""
            m = re.fullmatch(r"arn:aws:apigateway:([^:]+):dynamodb:action/(\w+)", uri)
            if not m:
                log(f"{context['resourcePath']}: integration URI {uri!r} is not implemented (DynamoDB actions only)")
                return gateway_error(500, "Internal server error", "InternalServerErrorException", request_id)
            backend_status, backend_body, backend_headers = self.dynamodb(
                m.group(1), m.group(2), payload, context["accountId"]
            )
        else:
            log(f"{context['resourcePath']}: integration type {kind} is not implemented by the emulator")
            return gateway_error(500, "Internal server error", "InternalServerErrorException", request_id)

        chosen = select_integration_response(integration.get("integrationResponses") or {}, str(backend_status))
        if chosen is None:
            log(f"{context['resourcePath']}: Execution failed due to configuration error: "
                "No match for output mapping and no default output mapping configured")
            return gateway_error(500, "Internal server error", "InternalServerErrorException", request_id)
        status = int(chosen.get("statusCode"))
        response_templates = chosen.get("responseTemplates") or {}
        accept = (headers.get("accept") or "").split(",")[0].split(";")[0].strip().lower()
        ctype = accept if accept in response_templates else (
            "application/json" if "application/json" in response_templates else next(iter(response_templates), "application/json")
        )
        template = response_templates.get(ctype)
        integration_input = vtl.Input(backend_body, path=params, querystring=query, header=_original_case(headers))
        out = backend_body if template is None else vtl.render(template, integration_input, context, stage_vars)
        resp_headers = [("Content-Type", ctype), ("x-amzn-RequestId", request_id)]
        for target, source in (chosen.get("responseParameters") or {}).items():
            name = target[len("method.response.header."):] if target.startswith("method.response.header.") else None
            if name is None:
                continue
            value = map_parameter(source, backend_headers, backend_body, context)
            if value is not None:
                resp_headers = [(k, v) for k, v in resp_headers if k.lower() != name.lower()]
                resp_headers.append((name, value))
        return Response(status, out, resp_headers)

    # -- DynamoDB, in-process ----------------------------------------------------

    def dynamodb(self, region, action, payload, account):
        day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")
        data = payload.encode("utf-8")
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_TYPE": "application/x-amz-json-1.0",
            "CONTENT_LENGTH": str(len(data)),
            "HTTP_HOST": f"dynamodb.{region}.amazonaws.com",
            "HTTP_X_AMZ_TARGET": f"DynamoDB_20120810.{action}",
            "HTTP_X_MOTO_ACCOUNT_ID": account,
            # The integration role's call; moto reads region and service from it.
            "HTTP_AUTHORIZATION": (
                f"AWS4-HMAC-SHA256 Credential=APIGATEWAYINTEGRATION/{day}/{region}/dynamodb/aws4_request, "
                "SignedHeaders=host;x-amz-target, Signature=" + "0" * 64
            ),
            "wsgi.input": io.BytesIO(data),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "REMOTE_ADDR": "127.0.0.1",
        }
        captured = {}

        def start_response(status, headers, exc_info=None):
            captured["status"] = int(status.split()[0])
            captured["headers"] = headers

        chunks = self.app(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return captured["status"], body.decode("utf-8"), {k.lower(): v for k, v in captured["headers"]}


def select_integration_response(responses, status):
    """The integration response whose selectionPattern matches the backend's status
    code (for AWS and MOCK integrations), else the default one (no pattern)."""
    default = None
    for code, r in responses.items():
        pattern = r.get("selectionPattern")
        if pattern:
            if re.fullmatch(pattern, status):
                return r
        else:
            default = r
    return default


def map_parameter(source, backend_headers, backend_body, context):
    """A `method.response.header.*` value from its mapping expression."""
    if len(source) >= 2 and source[0] == "'" and source[-1] == "'":
        return source[1:-1]
    if source.startswith("integration.response.header."):
        return backend_headers.get(source[len("integration.response.header."):].lower())
    if source == "integration.response.body":
        return backend_body
    if source.startswith("integration.response.body."):
        try:
            value = vtl.json_path(json.loads(backend_body), "$." + source[len("integration.response.body."):])
        except ValueError:
            return None
        return None if value is vtl._MISSING else (value if isinstance(value, str) else json.dumps(value))
    if source.startswith("context."):
        value = context
        for part in source[len("context."):].split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return None if value is None else str(value)
    log(f"response parameter mapping {source!r} is not implemented by the emulator")
    return None


# --------------------------------------------------------------------------------
# Request helpers


def _raw_path(environ):
    """The path as sent (percent-encoding kept), so that an encoded `/` stays inside
    its segment."""
    uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if uri:
        return urllib.parse.urlsplit(uri).path
    return urllib.parse.quote(environ.get("PATH_INFO", "").encode("latin-1"), safe="/")


def _headers(environ):
    out = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out[key[5:].replace("_", "-").lower()] = value
    if environ.get("CONTENT_TYPE"):
        out["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        out["content-length"] = environ["CONTENT_LENGTH"]
    return out


def _original_case(headers):
    return {"-".join(p.capitalize() for p in k.split("-")): v for k, v in headers.items()}


def _body(environ):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    data = stream.read(length) if stream is not None and length > 0 else b""
    return data.decode("utf-8", errors="replace")


def _credential(headers, query):
    auth = headers.get("authorization") or ""
    m = re.search(r"Credential=([^/,\s]+)/", auth)
    if m:
        return m.group(1)
    return query.get("X-Amz-Credential", "").split("/")[0]
