"""Issue 6: the self-service API under the page — who may change whose no-answer setting, and
that every change lands in the policy YAML the sysadmin edits (and nowhere else)."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pbx_app.policy import parse_policy
from pbx_app.users import UserStore
from pbx_app.web import WebConfig, setup

POLICY = """\
# Site policy. Keep extensions quoted.
site:
  ring_time: 30           # seconds
  on_no_answer:
    action: drop
    drop: busy

employees:
  "101":
    name: Ivan Petrov     # the boss
    ring_time: 20
    on_no_answer:
      action: forward     # recommended
      to: "102"
      announcement: standard
  "102":
    name: Petr Ivanov
  "103":
    name: Anna Smirnova
    mailbox: 103@default

departments:
  sales:
    name: Sales
    members: ["102", "103"]
"""
PASSWORD = "correct horse battery"


class WebBed:
    """A policy file, a users file (admin boss, employees anna 103 and petr 102) and the web
    feature on a test server; ``login(name)`` gives a signed-in client."""

    def __init__(self, tmp: Path, policy: str = POLICY, **config):
        self.policy_path = tmp / "policy.yaml"
        self.policy_path.write_text(policy)
        self.sounds = tmp / "sounds"
        config.setdefault("database_url", f"sqlite:///{tmp}/journal.db")
        self.config = WebConfig(policy_path=self.policy_path, users_path=tmp / "users.json",
                                audit_path=tmp / "audit.jsonl", announcements_dir=self.sounds, **config)
        users = UserStore(self.config.database_url)
        users.add("boss", "admin", None, PASSWORD, display_name="The Boss")
        users.add("anna", "employee", "103", PASSWORD)
        users.add("petr", "employee", "102", PASSWORD)
        self.reloads = 0
        self.webapp = web.Application()
        self.web = setup(self.webapp, self.config, reload=self._reload)
        self.clients: list[TestClient] = []

    def _reload(self) -> None:
        self.reloads += 1

    @property
    def text(self) -> str:
        return self.policy_path.read_text()

    def policy(self):
        return parse_policy(self.text)

    def audit(self, action: str | None = None) -> list[dict]:
        return [e for e in self.web.audit.entries() if action is None or e["action"] == action]

    async def client(self) -> TestClient:
        client = TestClient(TestServer(self.webapp))
        await client.start_server()
        self.clients.append(client)
        return client

    async def login(self, name: str, password: str = PASSWORD) -> "Browser":
        browser = Browser(await self.client())
        response = await browser.login(name, password)
        assert response.status == 200 and response.url.path.startswith("/employees/"), await response.text()
        return browser

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


class Browser:
    """A test client that keeps its cookie and sends the session's CSRF token like app.js."""

    def __init__(self, client: TestClient):
        self.client = client
        self.csrf = ""

    async def login(self, name: str, password: str):
        form = await (await self.client.get("/login")).text()
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        response = await self.client.post("/login", data={"name": name, "password": password, "csrf_token": token})
        if response.status == 200:
            me = await self.client.get("/api/me")
            self.csrf = (await me.json())["csrf_token"]
        return response

    async def get(self, path: str):
        return await self.client.get(path)

    async def put(self, path: str, body, csrf: bool = True, **headers):
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return await self.client.put(path, json=body, headers=headers)

    async def post(self, path: str, **kwargs):
        headers = kwargs.pop("headers", {})
        headers.setdefault("X-CSRF-Token", self.csrf)
        return await self.client.post(path, headers=headers, **kwargs)

    async def setting(self, ext: str) -> dict:
        response = await self.get(f"/api/employees/{ext}/no-answer")
        assert response.status == 200, await response.text()
        return await response.json()

    async def save(self, ext: str, setting: dict, version: str | None = None):
        if version is None:
            version = (await self.setting(ext))["version"]
        return await self.put(f"/api/employees/{ext}/no-answer", {"version": version, "setting": setting})


def forward(to: str, ring_time=None, announcement=None) -> dict:
    return {"action": "forward", "to": to, "ring_time": ring_time, "announcement": announcement or {"kind": "standard"}}


@pytest.fixture(autouse=True)
def announcements_env(tmp_path, monkeypatch):
    # The policy loader checks announcement files where the app writes them.
    monkeypatch.setenv("PBX_ANNOUNCEMENTS_DIR", str(tmp_path / "sounds"))


@pytest.fixture
async def bed(tmp_path):
    b = WebBed(tmp_path)
    yield b
    await b.close()


# ---- roles -------------------------------------------------------------------------------------


async def test_admin_changes_anyones_setting_and_it_lands_in_the_policy_file(bed):
    boss = await bed.login("boss")
    response = await boss.save("101", forward("sales", ring_time=25))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["summary"] == "After 25 s: forward to department Sales, standard message"
    ivan = bed.policy().employee("101")
    assert (ivan.on_no_answer.kind, ivan.on_no_answer.target, ivan.ring_time) == ("forward", "sales", 25)
    assert bed.reloads == 1, "the app's policy holder was told to reload"
    [entry] = bed.audit("set_no_answer")
    assert (entry["user"], entry["role"], entry["employee"]) == ("boss", "admin", "101")
    assert entry["before"]["to"] == "102" and entry["after"]["to"] == "sales"


async def test_employee_changes_their_own_setting(bed):
    anna = await bed.login("anna")
    response = await anna.save("103", {"action": "voicemail", "ring_time": 15})
    assert response.status == 200, await response.text()
    own = bed.policy().employee("103")
    assert (own.on_no_answer.kind, own.ring_time) == ("voicemail", 15)
    assert bed.audit("set_no_answer")[0]["user"] == "anna"


async def test_employee_cannot_read_or_change_someone_elses_setting(bed):
    before = bed.text
    anna = await bed.login("anna")
    boss_view = await (await bed.login("boss")).setting("101")
    response = await anna.save("101", {"action": "drop", "drop": "busy"}, version=boss_view["version"])
    assert response.status == 403
    assert "only their own" in (await response.json())["error"]
    assert bed.text == before, "the policy file is unchanged"
    assert bed.reloads == 0 and not bed.audit("set_no_answer")
    assert (await anna.get("/api/employees/101/no-answer")).status == 403
    page = await anna.get("/employees/101")
    assert page.status == 403 and "only your own setting" in await page.text()


async def test_administrators_see_everyone_employees_only_themselves(bed):
    boss, anna = await bed.login("boss"), await bed.login("anna")
    everyone = (await (await boss.get("/api/employees")).json())["employees"]
    assert [e["extension"] for e in everyone] == ["101", "102", "103"]
    own = (await (await anna.get("/api/employees")).json())["employees"]
    assert [(e["extension"], e["name"]) for e in own] == [("103", "Anna Smirnova")]
    page = await (await boss.get("/employees/102")).text()
    assert all(name in page for name in ("Ivan Petrov", "Petr Ivanov", "Anna Smirnova"))
    page = await (await anna.get("/employees/103")).text()
    assert 'aria-label="Employees"' not in page and "Anna Smirnova" in page, "no list of employees"


async def test_the_page_shows_the_current_setting_and_the_real_targets(bed):
    anna = await bed.login("anna")
    response = await anna.get("/")
    assert response.url.path == "/employees/103", "an employee lands on their own profile"
    html = await response.text()
    assert "If the employee does not answer" in html and "Configure" in html
    assert "After 30 s: hang up with a busy tone" in html and "site default" in html
    view = await anna.setting("103")
    assert view["inherited"] is True
    assert [c["id"] for c in view["targets"]["colleagues"]] == ["101", "102"], "everyone but herself"
    assert [d["id"] for d in view["targets"]["departments"]] == ["sales"]


# ---- sessions, CSRF ----------------------------------------------------------------------------


async def test_not_signed_in_gets_401_and_the_page_sends_to_sign_in(bed):
    client = await bed.client()
    assert (await client.get("/api/employees/103/no-answer")).status == 401
    response = await client.put("/api/employees/103/no-answer", json={"version": "x", "setting": {}})
    assert response.status == 401
    page = await client.get("/employees/103", allow_redirects=False)
    assert (page.status, page.headers["Location"]) == (303, "/login")


async def test_a_change_without_the_csrf_token_or_from_another_site_is_refused(bed):
    before = bed.text
    anna = await bed.login("anna")
    version = (await anna.setting("103"))["version"]
    body = {"version": version, "setting": {"action": "voicemail"}}
    no_token = await anna.put("/api/employees/103/no-answer", body, csrf=False)
    assert no_token.status == 403 and (await no_token.json())["code"] == "csrf"
    foreign = await anna.put("/api/employees/103/no-answer", body, Origin="http://evil.example")
    assert foreign.status == 403
    wrong = await anna.client.put("/api/employees/103/no-answer", json=body, headers={"X-CSRF-Token": "guess"})
    assert wrong.status == 403
    assert bed.text == before
    upload = await anna.client.post("/api/announcements", data={"file": io.BytesIO(b"RIFF")})
    assert upload.status == 403, "uploads need the token too"


async def test_session_cookie_is_httponly_samesite_and_only_made_at_sign_in(bed):
    client = await bed.client()
    client.session.cookie_jar.update_cookies({"pbx_session": "planted-by-someone"})
    form = await client.get("/login")
    assert "pbx_session" not in form.cookies, "no server session before sign-in"
    assert form.cookies["pbx_login"]["httponly"], "the form's token is a signed cookie"
    token = re.search(r'name="csrf_token" value="([^"]+)"', await form.text()).group(1)
    signed = await client.post("/login", data={"name": "anna", "password": PASSWORD, "csrf_token": token},
                               allow_redirects=False)
    after = signed.cookies["pbx_session"]
    assert signed.status == 303 and after.value != "planted-by-someone", "a new session id at sign-in"
    assert after["httponly"] and after["samesite"] == "Lax"
    assert "script-src 'self'" in form.headers["Content-Security-Policy"]
    assert form.headers["X-Frame-Options"] == "DENY"


async def test_sign_in_without_the_forms_token_is_refused(bed):
    client = await bed.client()
    await client.get("/login")
    response = await client.post("/login", data={"name": "anna", "password": PASSWORD})
    assert response.status == 403
    assert (await client.get("/api/me")).status == 401


async def test_repeated_wrong_passwords_lock_the_name_for_a_while(bed):
    browser = Browser(await bed.client())
    for _ in range(5):
        assert (await browser.login("anna", "wrong password")).status == 401
    locked = await browser.login("anna", PASSWORD)
    assert locked.status == 429, "even the right password waits"
    assert "Too many failed attempts" in await locked.text()
    assert int(locked.headers["Retry-After"]) > 0
    assert len(bed.audit("sign_in_failed")) == 5
    other = Browser(await bed.client())
    assert (await other.login("petr", PASSWORD)).status == 200, "another name is not locked"


async def test_sign_out_ends_the_session(bed):
    anna = await bed.login("anna")
    html = await (await anna.get("/employees/103")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    await anna.client.post("/logout", data={"csrf_token": token})
    assert (await anna.get("/api/me")).status == 401


# ---- versions: no lost update -------------------------------------------------------------------


async def test_an_edit_based_on_an_outdated_version_is_refused(bed):
    boss, anna = await bed.login("boss"), await bed.login("anna")
    seen = (await anna.setting("103"))["version"]
    assert (await boss.save("103", forward("101"))).status == 200
    after_boss = bed.text
    stale = await anna.save("103", {"action": "voicemail"}, version=seen)
    assert stale.status == 409
    body = await stale.json()
    assert body["code"] == "stale" and body["current"]["setting"]["to"] == "101", "shows what is there now"
    assert bed.text == after_boss, "the admin's change is kept"


async def test_concurrent_edits_of_one_employee_one_wins_the_other_is_refused(bed):
    boss, anna = await bed.login("boss"), await bed.login("anna")
    version = (await anna.setting("103"))["version"]
    a, b = await asyncio.gather(
        boss.save("103", forward("102"), version=version),
        anna.save("103", {"action": "voicemail"}, version=version),
    )
    assert sorted([a.status, b.status]) == [200, 409]
    winner = forward("102") if a.status == 200 else {"action": "voicemail"}
    own = bed.policy().employee("103").on_no_answer
    assert own.kind == winner["action"], "the file holds the change that was accepted"
    assert len(bed.audit("set_no_answer")) == 1


async def test_concurrent_edits_of_different_employees_both_land(bed):
    boss, anna, petr = await bed.login("boss"), await bed.login("anna"), await bed.login("petr")
    results = await asyncio.gather(
        boss.save("101", {"action": "drop", "drop": "message"}),
        anna.save("103", forward("sales")),
        petr.save("102", {"action": "voicemail", "ring_time": 9}),
    )
    assert [r.status for r in results] == [200, 200, 200]
    policy = bed.policy()
    assert policy.employee("101").on_no_answer.drop == "message"
    assert policy.employee("103").on_no_answer.target == "sales"
    assert policy.employee("102").ring_time == 9
    assert bed.reloads == 3


# ---- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting, field",
    [
        (forward("103"), "to"),
        (forward("999"), "to"),
        ({"action": "forward"}, "to"),
        ({"action": "voicemail", "ring_time": 0}, "ring_time"),
        ({"action": "voicemail", "ring_time": "20"}, "ring_time"),
        ({"action": "ring_forever"}, "action"),
        (forward("101", announcement={"kind": "custom", "file": "../../etc/passwd"}), "announcement"),
        (forward("101", announcement={"kind": "custom", "file": "missing.wav"}), "announcement"),
    ],
)
async def test_a_bad_setting_is_refused_naming_the_field(bed, setting, field):
    before = bed.text
    anna = await bed.login("anna")
    response = await anna.save("103", setting)
    assert response.status == 400
    body = await response.json()
    assert field in body["problems"], body
    assert bed.text == before


async def test_a_broken_policy_file_is_reported_and_not_edited(bed, caplog):
    anna, boss = await bed.login("anna"), await bed.login("boss")
    version = (await anna.setting("103"))["version"]
    bed.policy_path.write_text(POLICY.replace("ring_time: 30", "ring_time: thirty"))
    broken = bed.text
    got = await boss.get("/api/employees/103/no-answer")
    assert got.status == 503
    assert any("ring_time" in p for p in (await got.json())["problems"]), "an administrator gets the details"
    page = await boss.get("/employees/103")
    assert page.status == 503 and "has errors" in await page.text() and "policy.yaml" in await page.text()

    got = await anna.get("/api/employees/103/no-answer")
    body = await got.json()
    assert got.status == 503 and body["error"].startswith("the policy has a problem, an administrator has been told")
    assert "problems" not in body and "policy.yaml" not in await got.text(), "no paths or lines for employees"
    response = await anna.save("103", {"action": "voicemail"}, version=version)
    assert response.status == 503 and bed.text == broken
    page = await anna.get("/employees/103")
    html = await page.text()
    assert page.status == 503 and "an administrator has been told" in html and "policy.yaml" not in html
    told = [r for r in caplog.records if "policy file has errors" in r.getMessage()]
    assert len(told) == 1 and "ring_time" in told[0].getMessage(), "the log tells the administrators, once"


async def test_an_employee_not_in_the_policy_is_told_so(bed):
    UserStore(bed.config.database_url).add("new", "employee", "150", PASSWORD)
    newbie = Browser(await bed.client())
    await newbie.login("new", PASSWORD)
    page = await newbie.get("/employees/150")
    assert page.status == 404 and "Extension 150 is not set up" in await page.text()
