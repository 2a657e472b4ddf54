"""The execution layer against a real region process: REST APIs created with boto3,
deployed, called over HTTP on loopback."""

import datetime
import json
import socket
import unittest
import urllib.error

import harness as h

MISSING = {"message": "Missing Authentication Token"}


class Gateway(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.region = h.Region()
        cls.gw = cls.region.client("apigateway")
        cls.ddb = cls.region.client("dynamodb")
        h.create_tables(cls.ddb)
        cls.ddb.put_item(TableName="photos-config",
                         Item={"appId": {"S": "app one"}, "state": {"S": "active"}, "version": {"N": "3"}})

    @classmethod
    def tearDownClass(cls):
        cls.region.stop()

    def url(self, api_id, path, stage="prod"):
        return h.invoke_url(self.region, api_id, path, stage)

    def assertMissingToken(self, answer):
        self.assertEqual(answer.status, 403, answer)
        self.assertEqual(answer.json(), MISSING)
        self.assertEqual(answer.headers["x-amzn-errortype"], "MissingAuthenticationTokenException")

    def mock_api(self, methods, name="mock"):
        return h.create_api(self.gw, name, methods)

    # -- routing and deployments -------------------------------------------------

    def test_what_is_not_deployed_is_missing_authentication_token(self):
        api = h.create_api(self.gw, "undeployed", h.config_api_methods(h.FIXED), deploy=False)
        self.assertMissingToken(h.call(self.url(api, "/state/app%20one")))
        deployed = h.create_api(self.gw, "deployed", h.config_api_methods(h.FIXED))
        self.assertMissingToken(h.call(self.url(deployed, "/nothing/here")))
        self.assertMissingToken(h.call(self.url(deployed, "/state")))
        self.assertMissingToken(h.call(self.url(deployed, "/state/a/b")))
        self.assertMissingToken(h.call(self.url(deployed, "/state/x"), "DELETE"))
        self.assertMissingToken(h.call(self.url(deployed, "/state/x", stage="beta")))
        self.assertEqual(h.call(self.url(deployed, "/state/app%20one")).status, 200)

    def test_a_stage_serves_the_deployment_it_points_at(self):
        mock = h.method("/v", "GET", None, '{"statusCode": 200}', '{"version": 1}')
        api = self.mock_api([mock], "versions")
        self.assertEqual(h.call(self.url(api, "/v")).json(), {"version": 1})
        first = self.gw.get_stage(restApiId=api, stageName="prod")["deploymentId"]

        # Changed, not deployed: the stage keeps serving the old definition, and a
        # method added since is not there.
        mock["response"] = '{"version": 2}'
        h.put_methods(self.gw, api, [mock, h.method("/w", "GET", None, '{"statusCode": 200}', "{}")])
        self.assertEqual(h.call(self.url(api, "/v")).json(), {"version": 1})
        self.assertMissingToken(h.call(self.url(api, "/w")))

        self.gw.create_deployment(restApiId=api, stageName="prod")
        self.assertEqual(h.call(self.url(api, "/v")).json(), {"version": 2})
        self.assertEqual(h.call(self.url(api, "/w")).status, 200)

        # Pointing the stage back at the first deployment serves it again.
        self.gw.update_stage(restApiId=api, stageName="prod", patchOperations=[
            {"op": "replace", "path": "/deploymentId", "value": first}])
        self.assertEqual(h.call(self.url(api, "/v")).json(), {"version": 1})

    def test_literal_segments_win_over_parameters_and_greedy_paths_take_the_rest(self):
        api = self.mock_api([
            h.method("/items/{id}", "GET", None, '{"statusCode": 200}',
                     '{"param": "$input.params(\'id\')"}'),
            h.method("/items/special", "GET", None, '{"statusCode": 200}', '{"literal": true}'),
            h.method("/files/{rest+}", "GET", None, '{"statusCode": 200}',
                     '{"rest": "$input.params(\'rest\')"}'),
            h.method("/any", "ANY", None, '{"statusCode": 200}', '{"verb": "$context.httpMethod"}'),
        ], "routes")
        self.assertEqual(h.call(self.url(api, "/items/special")).json(), {"literal": True})
        self.assertEqual(h.call(self.url(api, "/items/other")).json(), {"param": "other"})
        # Path parameters arrive decoded; an encoded slash stays inside its segment.
        self.assertEqual(h.call(self.url(api, "/items/a%20b%2Fc%C3%A9")).json(), {"param": "a b/cé"})
        self.assertEqual(h.call(self.url(api, "/files/a/b/c.png")).json(), {"rest": "a/b/c.png"})
        self.assertMissingToken(h.call(self.url(api, "/files")))
        self.assertEqual(h.call(self.url(api, "/any"), "PUT", "{}", {"Content-Type": "application/json"}).json(),
                         {"verb": "PUT"})

    # -- MOCK ---------------------------------------------------------------------

    def test_cors_preflight_mocks_answer_their_headers(self):
        for methods, allow in ((h.config_api_methods(h.FIXED), "OPTIONS,HEAD,GET,POST,PUT,PATCH,DELETE"),
                               (h.store_api_methods(h.FIXED), "GET,OPTIONS,POST")):
            api = self.mock_api(methods, "cors")
            path = methods[0]["path"].replace("{appId}", "x").replace("{photoId}", "x")
            a = h.call(self.url(api, path), "OPTIONS", headers={
                "Origin": "http://127.0.0.1:8000", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-amz-date,x-amz-security-token"})
            self.assertEqual(a.status, 200, a)
            self.assertEqual(a.body, "")
            self.assertEqual(a.headers["access-control-allow-origin"], "*")
            self.assertEqual(a.headers["access-control-allow-methods"], allow)
            self.assertEqual(a.headers["access-control-allow-headers"],
                             "Authorization,Content-Type,X-Amz-Date,X-Amz-Security-Token,X-Api-Key")
            self.assertEqual(a.headers["access-control-max-age"], "7200")

    def test_a_mock_status_code_selects_the_integration_response(self):
        api = self.gw.create_rest_api(name="selection")["id"]
        rid = h.resource_for(self.gw, api, "/pick/{code}")
        self.gw.put_method(restApiId=api, resourceId=rid, httpMethod="GET", authorizationType="NONE")
        self.gw.put_integration(restApiId=api, resourceId=rid, httpMethod="GET", type="MOCK",
                                requestTemplates={"application/json": '{"statusCode": $input.params(\'code\')}'})
        for code, pattern, body in (("200", None, '{"ok": true}'), ("404", "4\\d\\d", '{"missing": "$input.params(\'code\')"}')):
            self.gw.put_method_response(restApiId=api, resourceId=rid, httpMethod="GET", statusCode=code,
                                        responseParameters={"method.response.header.X-Kind": False})
            kw = dict(restApiId=api, resourceId=rid, httpMethod="GET", statusCode=code,
                      responseTemplates={"application/json": body},
                      responseParameters={"method.response.header.X-Kind": f"'{code}'"})
            if pattern:
                kw["selectionPattern"] = pattern
            self.gw.put_integration_response(**kw)
        self.gw.create_deployment(restApiId=api, stageName="prod")
        ok = h.call(self.url(api, "/pick/200"))
        self.assertEqual((ok.status, ok.json(), ok.headers["x-kind"]), (200, {"ok": True}, "200"))
        nf = h.call(self.url(api, "/pick/404"))
        self.assertEqual((nf.status, nf.json(), nf.headers["x-kind"]), (404, {"missing": "404"}, "404"))
        # 500 matches no pattern: the default (200) response.
        self.assertEqual(h.call(self.url(api, "/pick/500")).status, 200)

    def test_context_variables(self):
        api = self.mock_api([h.method("/ctx/{p}", "GET", None, '{"statusCode": 200}', json.dumps({
            "requestId": "$context.requestId", "resourcePath": "$context.resourcePath",
            "httpMethod": "$context.httpMethod", "stage": "$context.stage", "apiId": "$context.apiId",
            "sourceIp": "$context.identity.sourceIp", "path": "$context.path"}))], "ctx")
        a = h.call(self.url(api, "/ctx/v"))
        body = a.json()
        self.assertEqual(body["resourcePath"], "/ctx/{p}")
        self.assertEqual(body["httpMethod"], "GET")
        self.assertEqual(body["stage"], "prod")
        self.assertEqual(body["apiId"], api)
        self.assertEqual(body["sourceIp"], "127.0.0.1")
        self.assertEqual(body["path"], "/prod/ctx/v")
        self.assertEqual(body["requestId"], a.headers["x-amzn-requestid"])

    def test_a_template_that_does_not_parse_is_an_internal_server_error(self):
        api = self.mock_api([h.method("/broken", "GET", None, '{"statusCode": 200}', "#if($x")], "broken")
        a = h.call(self.url(api, "/broken"))
        self.assertEqual((a.status, a.json()), (500, {"message": "Internal server error"}))
        self.assertIn("Execution failed due to configuration error", self.region.log_text())

    # -- request templates and passthrough ----------------------------------------

    def test_passthrough_never_refuses_an_unmapped_content_type(self):
        api = self.mock_api(h.config_api_methods(h.FIXED), "media")
        a = h.call(self.url(api, "/state/x"), "GET", headers={"Content-Type": "text/plain"})
        self.assertEqual((a.status, a.json()), (415, {"message": "Unsupported Media Type"}))
        # No Content-Type is application/json.
        self.assertEqual(h.call(self.url(api, "/state/x")).status, 200)

    # -- DynamoDB -----------------------------------------------------------------

    def test_dynamodb_query_with_path_parameter_and_response_headers(self):
        methods = h.config_api_methods(h.FIXED)
        methods[0]["headers"]["X-Backend-Request"] = "integration.response.header.x-amzn-RequestId"
        api = self.mock_api(methods, "config")
        a = h.call(self.url(api, "/state/app%20one"))
        self.assertEqual(a.status, 200, a)
        self.assertEqual(a.json(), {"state": "active", "version": 3})
        self.assertEqual(a.headers["access-control-allow-origin"], "*")
        self.assertEqual(a.headers["content-type"], "application/json")
        self.assertTrue(a.headers["x-backend-request"])
        self.assertNotEqual(a.headers["x-backend-request"], a.headers["x-amzn-requestid"])

    def test_a_dynamodb_error_goes_through_the_default_response(self):
        # As on AWS: the 400 from DynamoDB matches no pattern, the default 200
        # response renders its template over the error body.
        api = self.mock_api(h.config_api_methods(h.FIXED, table="no-such-table"), "no-table")
        a = h.call(self.url(api, "/state/app%20one"))
        self.assertEqual((a.status, a.json()), (200, {}))

    # -- AWS_IAM --------------------------------------------------------------------

    def iam_api(self):
        return self.mock_api(h.store_api_methods(h.FIXED, post_auth="AWS_IAM"), "iam")

    def test_an_unsigned_call_to_an_aws_iam_method_is_refused(self):
        api = self.iam_api()
        body = json.dumps({"commentId": "c-unsigned", "message": "m", "photoId": "p", "user": "u"})
        self.assertMissingToken(h.call(self.url(api, "/comments/p"), "POST", body, {"Content-Type": "application/json"}))
        self.assertNotIn("Item", self.ddb.get_item(TableName="photos-store", Key={"commentId": {"S": "c-unsigned"}}))
        # Reads stay open.
        self.assertEqual(h.call(self.url(api, "/comments/p")).status, 200)

    def test_malformed_or_misscoped_signatures_are_refused(self):
        api = self.iam_api()
        url = self.url(api, "/comments/p")
        body = json.dumps({"commentId": "c-bad", "message": "m", "photoId": "p", "user": "u"})

        bearer = h.call(url, "POST", body, {"Authorization": "Bearer abc", "Content-Type": "application/json"})
        self.assertEqual(bearer.status, 403)
        self.assertEqual(bearer.headers["x-amzn-errortype"], "IncompleteSignatureException")
        self.assertIn("Authorization header requires 'Credential' parameter.", bearer.json()["message"])

        other_region = h.call(url, "POST", body, h.signed_headers(url, "POST", body, region="eu-west-1"))
        self.assertEqual(other_region.status, 403)
        self.assertEqual(other_region.json()["message"], "Credential should be scoped to a valid region, not 'eu-west-1'. ")

        other_service = h.call(url, "POST", body, h.signed_headers(url, "POST", body, service="s3"))
        self.assertEqual(other_service.status, 403)
        self.assertEqual(other_service.json()["message"], "Credential should be scoped to correct service: 'execute-api'. ")

        stale = h.signed_headers(url, "POST", body)
        old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20))
        stale["Authorization"] = stale["Authorization"].replace(stale["X-Amz-Date"][:8], old.strftime("%Y%m%d"))
        stale["X-Amz-Date"] = old.strftime("%Y%m%dT%H%M%SZ")
        expired = h.call(url, "POST", body, stale)
        self.assertEqual(expired.status, 403)
        self.assertTrue(expired.json()["message"].startswith("Signature expired"), expired)

        self.assertNotIn("Item", self.ddb.get_item(TableName="photos-store", Key={"commentId": {"S": "c-bad"}}))

    def test_a_signed_call_to_an_aws_iam_method_goes_through(self):
        api = self.iam_api()
        url = self.url(api, "/comments/p")
        body = json.dumps({"commentId": "c-signed", "message": "m", "photoId": "p", "user": "u"})
        a = h.call(url, "POST", body, h.signed_headers(url, "POST", body))
        self.assertEqual((a.status, a.json()), (200, {}), a)
        self.assertEqual(a.headers["access-control-allow-origin"], "*")
        item = self.ddb.get_item(TableName="photos-store", Key={"commentId": {"S": "c-signed"}})["Item"]
        self.assertEqual(item["user"], {"S": "u"})


class RegionOutage(unittest.TestCase):
    def test_killing_the_region_kills_its_apis(self):
        region = h.Region()
        try:
            gw = region.client("apigateway")
            api = h.create_api(gw, "short-lived", h.config_api_methods(h.FIXED))
            url = h.invoke_url(region, api, "/state/x")
            self.assertEqual(h.call(url, "OPTIONS").status, 200)
        finally:
            region.stop()
        with self.assertRaises((urllib.error.URLError, ConnectionError, socket.error)):
            h.call(url, "OPTIONS")


if __name__ == "__main__":
    unittest.main()
