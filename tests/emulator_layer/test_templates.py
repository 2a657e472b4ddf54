"""The project's mapping templates, run by the execution layer against DynamoDB in a
real region process: today's (tests/emulator_layer/original, verbatim from
src/provision/api.rs) and the fixed ones part B installs (deploy/apigateway)."""

import json
import unittest
import uuid

import harness as h

SPECIAL = "it's \"quoted\", a back\\slash, a\nnewline, tab\t, é, 日本語, 😀 and </script>"
APP = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


class Templates(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.region = h.Region()
        cls.gw = cls.region.client("apigateway")
        cls.ddb = cls.region.client("dynamodb")
        h.create_tables(cls.ddb)
        cls.apis = {}
        for name, templates, post_auth in (("original", h.ORIGINAL, "NONE"), ("fixed", h.FIXED, "AWS_IAM")):
            cls.apis[name] = (
                h.create_api(cls.gw, f"photos-config-{name}", h.config_api_methods(templates)),
                h.create_api(cls.gw, f"photos-store-{name}", h.store_api_methods(templates, post_auth=post_auth)),
            )

    @classmethod
    def tearDownClass(cls):
        cls.region.stop()

    def put_config(self, **attrs):
        item = {"appId": {"S": APP}}
        item.update(attrs)
        self.ddb.put_item(TableName="photos-config", Item=item)

    def state(self, which):
        config, _ = self.apis[which]
        return h.call(h.invoke_url(self.region, config, f"/state/{APP}"))

    def post(self, which, photo, comment, signed):
        _, store = self.apis[which]
        url = h.invoke_url(self.region, store, f"/comments/{photo}")
        body = json.dumps(comment, ensure_ascii=False)
        headers = h.signed_headers(url, "POST", body.encode()) if signed else {"Content-Type": "application/json"}
        return h.call(url, "POST", body.encode(), headers)

    def comments(self, which, photo):
        _, store = self.apis[which]
        return h.call(h.invoke_url(self.region, store, f"/comments/{photo}"))

    # -- the state API ------------------------------------------------------------

    def test_original_state_answers_the_state_or_nothing(self):
        self.put_config(state={"S": "fenced"}, version={"N": "12"})
        a = self.state("original")
        self.assertEqual((a.status, a.json()), (200, {"state": "fenced"}))
        self.assertEqual(a.headers["access-control-allow-origin"], "*")
        self.ddb.delete_item(TableName="photos-config", Key={"appId": {"S": APP}})
        self.assertEqual(self.state("original").json(), {})

    def test_fixed_state_carries_the_version_beside_the_state(self):
        self.put_config(state={"S": "failover"}, version={"N": "12"})
        a = self.state("fixed")
        self.assertEqual((a.status, a.json()), (200, {"state": "failover", "version": 12}))
        self.assertEqual(a.headers["access-control-allow-origin"], "*")
        # The original seed's item has no version: the key is left out.
        self.put_config(state={"S": "active"})
        self.assertEqual(self.state("fixed").json(), {"state": "active"})
        self.ddb.delete_item(TableName="photos-config", Key={"appId": {"S": APP}})
        self.assertEqual(self.state("fixed").json(), {})

    # -- the store API ------------------------------------------------------------

    def test_original_comments_break_on_an_apostrophe(self):
        photo = str(uuid.uuid4())
        plain = {"commentId": str(uuid.uuid4()), "message": "plain words", "photoId": photo, "user": "ops"}
        self.assertEqual(self.post("original", photo, plain, signed=False).status, 200)
        self.assertEqual(self.comments("original", photo).json(),
                         {"comments": [{"commentId": plain["commentId"], "user": "ops", "message": "plain words"}]})
        quoted = dict(plain, commentId=str(uuid.uuid4()), message="it's")
        self.assertEqual(self.post("original", photo, quoted, signed=False).status, 200)
        answer = self.comments("original", photo)
        self.assertEqual(answer.status, 200)
        self.assertIn("it\\'s", answer.body)
        with self.assertRaises(ValueError):
            json.loads(answer.body)

    def test_fixed_comments_round_trip_special_characters(self):
        photo = str(uuid.uuid4())
        sent = []
        for message in (SPECIAL, "second, plain", "\\'", ""):
            c = {"commentId": str(uuid.uuid4()), "message": message, "photoId": photo, "user": "o'neil \"ops\""}
            a = self.post("fixed", photo, c, signed=True)
            self.assertEqual((a.status, a.json()), (200, {}), a)
            sent.append({"commentId": c["commentId"], "user": c["user"], "message": message})
        answer = self.comments("fixed", photo)
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.headers["access-control-allow-origin"], "*")
        got = answer.json()["comments"]
        key = lambda c: c["commentId"]  # noqa: E731
        self.assertEqual(sorted(got, key=key), sorted(sent, key=key))
        stored = self.ddb.get_item(TableName="photos-store", Key={"commentId": {"S": sent[0]["commentId"]}})["Item"]
        self.assertEqual(stored["message"]["S"], SPECIAL)
        self.assertEqual(stored["photoId"]["S"], photo)

    def test_fixed_comments_of_a_photo_without_any(self):
        a = self.comments("fixed", str(uuid.uuid4()))
        self.assertEqual((a.status, a.json()), (200, {"comments": []}))

    def test_fixed_post_needs_a_signature(self):
        photo = str(uuid.uuid4())
        c = {"commentId": str(uuid.uuid4()), "message": "m", "photoId": photo, "user": "u"}
        a = self.post("fixed", photo, c, signed=False)
        self.assertEqual((a.status, a.json()), (403, {"message": "Missing Authentication Token"}))
        self.assertEqual(self.comments("fixed", photo).json(), {"comments": []})


if __name__ == "__main__":
    unittest.main()
