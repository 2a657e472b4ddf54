"""The page in a real headless Chromium (Debian's), driven by Playwright, against the
two-region emulator with the stack provisioned by `failover-monitor provision apply`,
the page deployed by `provision website-deploy` and served by `provision website-local`.
The two regions replicate to each other (deploy/local/REPLICATION.md) and the stack has
global tables (the default of `stack.tables`) and the S3 replication rule, as on AWS:
after a failover the page finds the photos and comments written in the primary.

    tests/browser/run.sh            # installs what is missing, then runs this

Steps run in order, as a person would go through them; each writes a screenshot
under target/browser/ and fails on any console error it does not expect (the only
expected ones are the browser's own reports of Cognito's 400 for a wrong password
and of connections refused by a killed region). A failed step is reported and the
story goes on where it can; the exit code is non-zero when any step failed.
"""

import argparse
import datetime
import json
import os
import pathlib
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import urllib.request
import zlib

import boto3
from botocore.config import Config
from playwright.sync_api import expect, sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "target/browser"
BIN = ROOT / "target/debug/failover-monitor"
ROLES = ("primary", "secondary")
REGIONS = {"primary": "us-east-1", "secondary": "ap-northeast-1"}
APP_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
PROJECT = "photos"
USER = "ops"
TEMP_PASSWORD = "Temp-Passw0rd!"
NEW_PASSWORD = "Chosen-Passw0rd!"
SPECIAL = "it's \"quoted\", a back\\slash,\na newline and non-ASCII: é 日本語 😀"
CHROMIUM_FLAGS = [
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(width=48, height=48, rgb=(200, 80, 40)):
    """A small PNG made here (zlib only): a colour gradient."""
    rows = b"".join(
        b"\x00" + b"".join(bytes(((rgb[0] * x) // width, (rgb[1] * y) // height, rgb[2])) for x in range(width))
        for y in range(height)
    )

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------------
# The emulator, the stack and the static server


class Region:
    """One region process, peered with the other (`ports`: both, chosen before either
    starts), so that the two replicate to each other."""

    def __init__(self, role, work, ports):
        self.role = role
        self.port = ports[role]
        self.url = f"http://127.0.0.1:{self.port}"
        peer = ROLES[1 - ROLES.index(role)]
        self.log = open(work / f"region-{role}.log", "wb")
        self.proc = subprocess.Popen([str(ROOT / "deploy/local/region"), "-H", "127.0.0.1", "-p", str(self.port),
                                      "--region", REGIONS[role], "--peer", f"http://127.0.0.1:{ports[peer]}",
                                      "--peer-region", REGIONS[peer]],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"the {role} region did not start")
                time.sleep(0.05)

    def client(self, service):
        return boto3.client(service, region_name=REGIONS[self.role], endpoint_url=self.url,
                            aws_access_key_id="test", aws_secret_access_key="test",
                            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def cli(config, *args, check=True):
    # In the config's directory: `provision output` writes uiConfig.json there.
    out = subprocess.run([str(BIN), "--config", str(config), *args], env=ENV, capture_output=True, text=True,
                         cwd=pathlib.Path(config).parent)
    if check and out.returncode != 0:
        raise RuntimeError(f"failover-monitor {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out.stdout


def monitor_toml(regions):
    return f"""[app]
id = "{APP_ID}"
project = "{PROJECT}"

[regions.primary]
name = "{REGIONS['primary']}"
endpoint_url = "{regions['primary'].url}"

[regions.secondary]
name = "{REGIONS['secondary']}"
endpoint_url = "{regions['secondary'].url}"

[admin]
listen = "127.0.0.1:9"

[stack]
cognito_username = "{USER}"
cognito_email = "ops@example.com"
"""


class Site:
    """`failover-monitor provision website-local`: the website bucket's console/ on a
    free loopback port (standing in for CloudFront)."""

    def __init__(self, config, work):
        self.log = open(work / "website-local.log", "wb")
        self.proc = subprocess.Popen([str(BIN), "--config", str(config), "provision", "website-local", "--port", "0"],
                                     env=ENV, stdout=subprocess.PIPE, stderr=self.log, text=True)
        first = self.proc.stdout.readline()
        m = re.search(r" at (http://127\.0\.0\.1:\d+/) ", first)
        if not m:
            self.stop()
            raise RuntimeError(f"provision website-local said {first!r}")
        self.url = m.group(1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# --------------------------------------------------------------------------------
# The story


class StepFailed(AssertionError):
    pass


class Story:
    def __init__(self, work, chromium):
        self.work = work
        self.chromium = chromium
        self.drill_comments = []  # written on self.photo during the drill
        self.results = []  # (name, ok, seconds, detail)
        self.console = []  # (type, text, url) of the step running

    # -- set-up ---------------------------------------------------------------

    def setup(self):
        ports = {role: free_port() for role in ROLES}
        self.regions = {role: Region(role, self.work, ports) for role in ROLES}
        self.config = self.work / "monitor.toml"
        self.config.write_text(monitor_toml(self.regions))
        cli(self.config, "provision", "apply")
        self.outputs = json.loads(cli(self.config, "provision", "output"))
        cli(self.config, "provision", "website-deploy")
        ui_path = self.work / "uiConfig.provisioned.json"
        cli(self.config, "provision", "ui-config", "--out", str(ui_path))
        self.ui = self.raw_ui = json.loads(ui_path.read_text())
        idp = self.regions["primary"].client("cognito-idp")
        # AdminCreateUser mailed a temporary password nobody can read here: set a known
        # one, still temporary (the user must choose a new one at first sign-in).
        idp.admin_set_user_password(UserPoolId=self.ui["userPoolId"], Username=USER,
                                    Password=TEMP_PASSWORD, Permanent=False)
        self.site = Site(self.config, self.work)

    def teardown(self):
        for r in getattr(self, "regions", {}).values():
            r.kill()
        if hasattr(self, "site"):
            self.site.stop()

    # -- running steps -----------------------------------------------------------

    def step(self, name, fn, allowed=()):
        """Runs one step; `allowed` are (regex on the text, URL prefix) of console
        errors this step expects."""
        self.console = []
        start = time.monotonic()
        ok, detail = True, ""
        try:
            if self.page.url.startswith("http"):
                self.page.evaluate("document.getElementById('notice').textContent = ''")
            fn()
            bad = [c for c in self.console
                   if c[0] == "pageerror" or (c[0] == "error" and not any(
                       re.search(text, c[1]) and c[2].startswith(prefix) for text, prefix in allowed))]
            if bad:
                raise StepFailed("console errors: " + "; ".join(f"{t}: {x} ({u})" for t, x, u in bad))
            expected = [c for c in self.console if c[0] == "error"]
            if expected:
                detail = f"{len(expected)} expected console error(s), e.g. {expected[0][1]!r}"
        except Exception as e:  # noqa: BLE001 (a step's failure is reported, the story goes on)
            ok = False
            detail = f"{type(e).__name__}: {e}".strip()
            if not isinstance(e, (AssertionError, StepFailed)) and "Timeout" not in type(e).__name__:
                detail += "\n" + traceback.format_exc()
        if not ok:
            try:
                shown = (self.page.text_content("#notice") or "").strip()
                if shown:
                    detail += f"\n(the page says: {shown})"
            except Exception:  # noqa: BLE001
                pass
        shot = OUT / f"{len(self.results) + 1:02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.png"
        try:
            self.page.screenshot(path=str(shot), full_page=True)
        except Exception as e:  # noqa: BLE001
            detail += f" (no screenshot: {e})"
        seconds = time.monotonic() - start
        self.results.append((name, ok, seconds, detail))
        mark = "ok  " if ok else "FAIL"
        extra = ("  [" + detail + "]" if detail else "") if ok else "\n     " + detail.replace("\n", "\n     ")
        print(f"{mark} {name} ({seconds:.1f} s){extra}", flush=True)
        return ok

    def run(self):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=self.chromium, headless=True, args=CHROMIUM_FLAGS)
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            self.page = context.new_page()
            self.page.set_default_timeout(10_000)
            self.page.on("console", lambda m: m.type == "error" and self.console.append(
                ("error", m.text, (m.location or {}).get("url", ""))))
            self.page.on("pageerror", lambda e: self.console.append(("pageerror", str(e), "")))
            primary = self.regions["primary"].url
            self.step("the page loads and reads the state", self.opens)
            # What AWS enforces and moto does not, checked on the provisioned resources.
            self.step("the app client allows exactly the page's auth flows", self.auth_flows)
            self.step("the web role may list public/ in both photo buckets", self.web_role_lists)
            self.step("the stack has global tables and replicates photos to the secondary", self.replicated_stack)
            if self.step("sign in with the temporary password and set a new one", self.first_sign_in):
                self.step("a wrong password is refused", self.wrong_password,
                          allowed=[(r"status of 400", primary)])
                self.step("upload a PNG and see it in the gallery", self.upload)
                self.step("a comment with ' \" \\ a newline and non-ASCII reads back", self.comment)
                self.step("the page signs its comment POST; the store API refuses an unsigned one", self.signed_post)
                self.step("fenced: upload and comment are blocked with a message", self.fenced)
                self.step("the page follows the higher version when the regions disagree", self.follows_version)
                self.step("a drill: the banner follows both moves, comments work in both regions, the report renders",
                          self.drill)
                self.step("failover: the photo and its comments are still there, the primary's notice is gone",
                          self.switch_keeps_the_data)
                self.step("failover: the page uses the secondary's bucket and API", self.failover)
                self.step("the primary region is killed: the page keeps working from the secondary",
                          self.primary_killed, allowed=[(r"ERR_CONNECTION_REFUSED", primary)])
            self.step("uiConfig.json from provision ui-config carries the emulator endpoints", self.ui_config_endpoints)
            browser.close()

    # -- helpers ------------------------------------------------------------------

    def banner(self, state, serving):
        b = self.page.locator("#state-banner")
        expect(b).to_have_attribute("data-state", state, timeout=15_000)
        expect(b).to_have_attribute("data-serving", serving, timeout=15_000)

    def objects(self, role):
        s3 = self.regions[role].client("s3")
        out = s3.list_objects_v2(Bucket=self.ui[role]["objectStoreBucketName"], Prefix="public/")
        return {o["Key"] for o in out.get("Contents", [])}

    def comments_in(self, role):
        ddb = self.regions[role].client("dynamodb")
        return {i["commentId"]["S"]: i for i in ddb.scan(TableName=f"{PROJECT}-store")["Items"]}

    def upload_file(self, name):
        self.page.evaluate("document.getElementById('notice').textContent = ''")
        path = self.work / name
        path.write_bytes(png(rgb=(len(name) * 37 % 256, 120, 200)))
        self.page.set_input_files("#file", str(path))
        self.page.click("#upload-button")

    def gallery_ids(self):
        return self.page.eval_on_selector_all("#gallery .photo", "els => els.map(e => e.dataset.photoId)")

    def selected_photo(self):
        return self.page.get_attribute('#gallery .photo[aria-selected="true"]', "data-photo-id")

    def add_comment(self, text):
        self.page.evaluate("document.getElementById('notice').textContent = ''")
        self.page.fill("#comment-text", text)
        self.page.click("#comment-button")

    # -- steps --------------------------------------------------------------------

    def opens(self):
        answer = self.page.goto(self.site.url)
        assert answer.headers.get("cache-control") == "no-cache", answer.headers
        # The deployed page: its scripts under the assets folder of its version.
        script = self.page.get_attribute("script[type=module]", "src")
        assert re.fullmatch(r"assets/[0-9a-f]{16}/app\.js", script), script
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")
        self.banner("active", "primary")
        expect(self.page.locator("#signin-form")).to_be_visible()

    def first_sign_in(self):
        self.page.fill("#username", USER)
        self.page.fill("#password", TEMP_PASSWORD)
        self.page.click("#signin-button")
        expect(self.page.locator("#newpass-form")).to_be_visible()
        self.page.fill("#new-password", NEW_PASSWORD)
        self.page.click("#newpass-button")
        expect(self.page.locator("#app")).to_be_visible()
        expect(self.page.locator("#gallery-empty")).to_be_visible()
        status = self.regions["primary"].client("cognito-idp").admin_get_user(
            UserPoolId=self.ui["userPoolId"], Username=USER)["UserStatus"]
        assert status == "CONFIRMED", status

    def wrong_password(self):
        self.page.click("#signout")
        self.page.fill("#username", USER)
        self.page.fill("#password", "not-the-password")
        self.page.click("#signin-button")
        expect(self.page.locator("#auth-error")).to_contain_text("Incorrect username or password")
        expect(self.page.locator("#app")).to_be_hidden()
        self.page.fill("#password", NEW_PASSWORD)
        self.page.click("#signin-button")
        expect(self.page.locator("#app")).to_be_visible()

    def upload(self):
        before = self.objects("primary")
        self.upload_file("first.png")
        expect(self.page.locator("#notice")).to_contain_text("Uploaded to photos-primary")
        expect(self.page.locator('#gallery .photo[aria-selected="true"]')).to_have_count(1)
        photo = self.selected_photo()
        assert self.objects("primary") - before == {f"public/{photo}"}, "the object is not in the primary bucket"
        img = self.page.locator(f'#gallery .photo[data-photo-id="{photo}"] img')
        self.page.wait_for_function("img => img.complete && img.naturalWidth === 48", arg=img.element_handle())
        self.photo = self.first_photo = photo

    def comment(self):
        self.add_comment(SPECIAL)
        expect(self.page.locator("#notice")).to_contain_text("Comment added in the primary region")
        last = self.page.locator("#comment-list .comment .text")
        expect(last).to_have_count(1)
        got = last.first.text_content()
        assert got == SPECIAL, f"read back {got!r}"
        stored = [i for i in self.comments_in("primary").values() if i["photoId"]["S"] == self.photo]
        assert [i["message"]["S"] for i in stored] == [SPECIAL], stored

    def signed_post(self):
        with self.page.expect_request(lambda r: r.method == "POST" and "/comments/" in r.url) as posted:
            self.add_comment("signed?")
        seen = [posted.value.all_headers()]
        answer = posted.value.response()
        assert answer is not None and answer.status == 200, f"the signed POST got {answer and answer.status}"
        expect(self.page.locator("#notice")).to_contain_text("Comment added in the primary region")
        assert seen and seen[-1].get("authorization", "").startswith("AWS4-HMAC-SHA256 Credential="), seen
        assert "/execute-api/aws4_request" in seen[-1]["authorization"], seen[-1]
        url = f"{self.ui['primary']['photosApi']}/comments/{self.photo}"
        body = json.dumps({"commentId": "unsigned", "message": "m", "photoId": self.photo, "user": "anyone"})
        answer = self.page.request.post(url, data=body, headers={"Content-Type": "application/json"})
        assert answer.status == 403, f"an unsigned POST got HTTP {answer.status}: {answer.text()}"
        assert answer.json() == {"message": "Missing Authentication Token"}, answer.text()

    def fenced(self):
        cli(self.config, "state", "set", "fenced", "--reason", "browser test", "--force")
        self.banner("fenced", "primary")
        objects, comments = self.objects("primary"), self.comments_in("primary")
        self.upload_file("blocked.png")
        expect(self.page.locator("#notice")).to_contain_text("Writes are blocked while the application is fenced")
        self.add_comment("should not be written")
        expect(self.page.locator("#notice")).to_contain_text("Writes are blocked while the application is fenced")
        assert self.objects("primary") == objects and self.comments_in("primary") == comments, "a write got through"
        self.page.fill("#comment-text", "")
        self.page.locator("#upload-form").evaluate("f => f.reset()")

    def follows_version(self):
        # The primary's copy lags (replication): the secondary's newer version wins.
        cli(self.config, "state", "set", "active", "--reason", "browser test", "--force")
        self.banner("active", "primary")
        ddb = self.regions["secondary"].client("dynamodb")
        table = f"{PROJECT}-config"
        item = ddb.get_item(TableName=table, Key={"appId": {"S": APP_ID}})["Item"]
        newer = int(item.get("version", {"N": "0"})["N"]) + 5
        ddb.update_item(TableName=table, Key={"appId": {"S": APP_ID}},
                        UpdateExpression="SET #s = :s, #v = :v",
                        ExpressionAttributeNames={"#s": "state", "#v": "version"},
                        ExpressionAttributeValues={":s": {"S": "failover"}, ":v": {"N": str(newer)}})
        try:
            self.banner("failover", "secondary")
            expect(self.page.locator("#state-banner")).to_have_attribute("data-version", str(newer))
        finally:
            ddb.put_item(TableName=table, Item=item)
            # Both writes replicate to the primary's replica (global tables): the next
            # step starts once it holds the restored item again.
            primary = self.regions["primary"].client("dynamodb")
            self.wait_replicated(lambda: primary.get_item(TableName=table, Key={"appId": {"S": APP_ID}},
                                                          ConsistentRead=True).get("Item") == item,
                                 "the restored config item in the primary")

    def drill(self):
        """`drill run` through a monitor started from `provision monitor-config`: the
        page shows the drill's failover and its failback, a comment works in each
        region, the failover's report dates the secondary's state API no later than
        the page saw it, and its HTML page is screenshotted."""
        generated = self.work / "monitor.generated.toml"
        cli(self.config, "provision", "monitor-config", "--out", str(generated))
        port, token = free_port(), "browser-drill-token-0123456789abcdef"
        env = dict(ENV, FAILOVER_MONITOR_ADMIN_TOKEN=token, FAILOVER_MONITOR__ADMIN__LISTEN=f"127.0.0.1:{port}")
        log = open(self.work / "monitor.log", "wb")
        mon = subprocess.Popen([str(BIN), "--config", str(generated), "run"], env=env,
                               stdout=subprocess.DEVNULL, stderr=log)

        def api(method, path, body=None):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read() or b"null")

        def until(what, check, timeout):
            deadline = time.monotonic() + timeout
            while True:
                try:
                    got = check()
                    if got:
                        return got
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise StepFailed(f"not within {timeout} s: {what}")
                time.sleep(0.3)

        try:
            until("every probe up", lambda: all(p["health"] == "up" for p in api("GET", "/v1/status")[1]["probes"]),
                  60)
            self.page.click(f'#gallery .photo[data-photo-id="{self.photo}"]')
            code, started = api("POST", "/v1/drills", {"reason": "browser drill", "caller": "browser", "hold": "12s"})
            assert code == 202, (code, started)
            self.banner("failover", "secondary")
            seen_failover = time.time()
            self.add_comment("during the drill")
            expect(self.page.locator("#notice")).to_contain_text("Comment added in the secondary region")
            self.drill_comments.append("during the drill")
            b = self.page.locator("#state-banner")
            expect(b).to_have_attribute("data-state", "active", timeout=60_000)
            expect(b).to_have_attribute("data-serving", "primary", timeout=15_000)
            self.add_comment("after the drill")
            expect(self.page.locator("#notice")).to_contain_text("Comment added in the primary region")
            self.drill_comments.append("after the drill")
            drill = until("the drill's outcome", lambda: (lambda d: d if d and d["id"] == started["id"]
                                                          and d["outcome"] else None)(api("GET", "/v1/drills")[1]["drill"]), 60)
            assert drill["outcome"] == "SUCCEEDED", json.dumps(drill, indent=1)
            failover_version = drill["versions"][0]

            def complete():
                code, r = api("GET", f"/v1/reports/{failover_version}")
                return r if code == 200 and r["complete"] else None
            report = until("the failover's report, complete", complete, 150)
            assert report["drill"] == started["id"], report
            answered = [e for e in report["events"] if e["kind"] == "state_api_answered" and e["region"] == "secondary"]
            assert answered, report["events"]
            at = datetime.datetime.fromisoformat(answered[0]["at"].replace("Z", "+00:00")).timestamp()
            # The page polls the same API: it cannot have seen failover before the API
            # answered it, and the report is not far behind what the page saw.
            assert at <= seen_failover + 1, (answered[0]["at"], seen_failover)
            assert seen_failover - at < 15, (answered[0]["at"], seen_failover)
            html = self.work / "drill-report.html"
            html.write_text(cli(generated, "report", str(failover_version), "--html"))
            page = self.page.context.new_page()
            page.goto(html.as_uri())
            expect(page.locator("svg").first).to_be_visible()
            page.screenshot(path=str(OUT / "drill-report.png"), full_page=True)
            page.close()
        finally:
            mon.terminate()
            mon.wait(timeout=20)
            log.close()

    def switch_keeps_the_data(self):
        self.banner("active", "primary")
        self.page.click(f'#gallery .photo[data-photo-id="{self.photo}"]')
        self.add_comment("just before the switch")
        expect(self.page.locator("#notice")).to_contain_text("Comment added in the primary region")
        texts = [SPECIAL, "signed?", *self.drill_comments, "just before the switch"]
        # Once the lag has passed (1 s), the secondary holds the photo and every comment.
        self.wait_replicated(lambda: f"public/{self.photo}" in self.objects("secondary") and sorted(
            i["message"]["S"] for i in self.comments_in("secondary").values()
            if i["photoId"]["S"] == self.photo) == sorted(texts), "the photo and its comments in the secondary")
        cli(self.config, "state", "set", "failover", "--reason", "browser test", "--force")
        self.banner("failover", "secondary")
        # The notice was about the primary's write: gone with the switch.
        expect(self.page.locator("#notice")).to_have_text("")
        expect(self.page.locator("#gallery-source")).to_contain_text("photos-secondary")
        expect(self.page.locator(f'#gallery .photo[data-photo-id="{self.photo}"][aria-selected="true"]')) \
            .to_have_count(1)
        img = self.page.locator(f'#gallery .photo[data-photo-id="{self.photo}"] img')
        assert "photos-secondary" in (img.get_attribute("src") or ""), img.get_attribute("src")
        self.page.wait_for_function("img => img.complete && img.naturalWidth === 48", arg=img.element_handle())
        comments = self.page.locator("#comment-list .comment .text")
        expect(comments).to_have_count(len(texts))
        assert sorted(comments.all_text_contents()) == sorted(texts), comments.all_text_contents()

    def wait_replicated(self, check, what, timeout=20):
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise StepFailed(f"not replicated within {timeout} s: {what}")
            time.sleep(0.2)

    def replicated_stack(self):
        assert self.outputs["tables"].startswith("global"), self.outputs["tables"]
        for role in ROLES:
            peer = REGIONS[ROLES[1 - ROLES.index(role)]]
            ddb = self.regions[role].client("dynamodb")
            for table in (f"{PROJECT}-config", f"{PROJECT}-store"):
                replicas = {r["RegionName"]: r["ReplicaStatus"]
                            for r in ddb.describe_table(TableName=table)["Table"].get("Replicas", [])}
                assert replicas == {peer: "ACTIVE"}, f"{table} in {role}: replicas {replicas}"
        rules = self.regions["primary"].client("s3").get_bucket_replication(
            Bucket=self.ui["primary"]["objectStoreBucketName"])["ReplicationConfiguration"]["Rules"]
        dest = f"arn:aws:s3:::{self.ui['secondary']['objectStoreBucketName']}"
        assert any(r["Status"] == "Enabled" and r["Destination"]["Bucket"] == dest for r in rules), rules

    def failover(self):
        self.banner("failover", "secondary")
        expect(self.page.locator("#region-notice")).to_contain_text("Moved to the secondary region (ap-northeast-1)")
        expect(self.page.locator("#gallery-source")).to_contain_text("photos-secondary")
        before = self.objects("secondary")
        primary_before = self.objects("primary")
        self.upload_file("second.png")
        expect(self.page.locator("#notice")).to_contain_text("Uploaded to photos-secondary")
        photo = self.selected_photo()
        assert self.objects("secondary") - before == {f"public/{photo}"}, "not in the secondary bucket"
        assert self.objects("primary") == primary_before, "the primary bucket changed"
        self.add_comment("written in the secondary")
        expect(self.page.locator("#notice")).to_contain_text("Comment added in the secondary region")
        expect(self.page.locator("#comment-list .comment .text")).to_have_text(["written in the secondary"])
        stored = [i for i in self.comments_in("secondary").values() if i["photoId"]["S"] == photo]
        assert [i["message"]["S"] for i in stored] == ["written in the secondary"], stored
        self.photo = photo

    def primary_killed(self):
        self.regions["primary"].kill()
        expect(self.page.locator("#state-text")).to_contain_text("primary region's state API is unreachable",
                                                                 timeout=20_000)
        self.banner("failover", "secondary")
        before = self.objects("secondary")
        self.upload_file("third.png")
        expect(self.page.locator("#notice")).to_contain_text("Uploaded to photos-secondary")
        photo = self.selected_photo()
        added = self.objects("secondary") - before
        assert added == {f"public/{photo}"}, f"added to the secondary bucket: {added}, selected: {photo}"
        self.add_comment("after the primary died: é")
        expect(self.page.locator("#comment-list .comment .text")).to_have_text(["after the primary died: é"])
        # The photos uploaded in the primary before it died are still there.
        expect(self.page.locator(f'#gallery .photo[data-photo-id="{self.first_photo}"]')).to_have_count(1)

    def auth_flows(self):
        idp = self.regions["primary"].client("cognito-idp")
        client = idp.describe_user_pool_client(UserPoolId=self.ui["userPoolId"],
                                               ClientId=self.ui["userPoolClientId"])["UserPoolClient"]
        flows = set(client.get("ExplicitAuthFlows") or [])
        assert flows == PAGE_AUTH_FLOWS, f"the app client allows {sorted(flows) or 'the default flows'}"

    def web_role_lists(self):
        iam = self.regions["primary"].client("iam")
        doc = iam.get_role_policy(RoleName=f"{PROJECT}-web", PolicyName="failover-monitor")["PolicyDocument"]
        if isinstance(doc, str):
            doc = json.loads(urllib.parse.unquote(doc))
        listed = set()
        for st in doc["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            if st["Effect"] == "Allow" and "s3:ListBucket" in actions:
                listed.update(resources)
        want = {f"arn:aws:s3:::{self.ui[r]['objectStoreBucketName']}" for r in ROLES}
        assert want <= listed, f"s3:ListBucket is allowed on {sorted(listed) or 'nothing'}"

    def ui_config_endpoints(self):
        missing = [k for k in ("primary.endpoint", "secondary.endpoint", "cognitoEndpoint")
                   if not (self.raw_ui.get(k.split(".")[0], {}).get(k.split(".")[1])
                           if "." in k else self.raw_ui.get(k))]
        assert not missing, f"provision ui-config has no {', '.join(missing)}"


PAGE_AUTH_FLOWS = {"ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", required=True, help="Debian's chromium or chromium-headless-shell")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    work = pathlib.Path(tempfile.mkdtemp(prefix="browser-", dir=OUT))
    story = Story(work, args.chromium)
    started = time.monotonic()
    try:
        story.setup()
        print(f"stack provisioned in {time.monotonic() - started:.1f} s; page at {story.site.url}", flush=True)
        story.run()
    finally:
        story.teardown()
    passed = sum(1 for r in story.results if r[1])
    failed = len(story.results) - passed
    print(f"screenshots and logs: {OUT.relative_to(ROOT)}/ ({time.monotonic() - started:.0f} s in all)")
    print(f"browser: {passed} passed, {failed} failed")
    if failed == 0:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
