"""Issue 10, part 4: the page in its own process (`pbx-app web`), and its event loop free while
slow work (the policy's parse and validation, argon2, fsync) runs."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import threading
from pathlib import Path

import aiohttp
import pytest

from pbx_app.settings import Settings
from pbx_app.users import UserStore
from pbx_app.web.settings import policy_file
from pbx_app.users import store as user_store
from tests.support.net import free_port
from tests.support.wait import until
from tests.unit.test_web_api import PASSWORD, POLICY, WebBed, announcements_env  # noqa: F401 (a fixture)


@pytest.fixture
async def bed(tmp_path):
    b = WebBed(tmp_path)
    yield b
    await b.close()


class Gate:
    """Holds a worker inside slow work until released (or 5 s pass) and notes what finished
    first: the slow work or the other request."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.order: list[str] = []

    def hold(self) -> None:
        self.entered.set()
        self.release.wait(5)
        self.order.append("slow work done")

    async def until_entered(self) -> None:
        # If the slow work ran on the event loop, this could only resume once it was over.
        await until(self.entered.is_set, 5, "the slow work started", every=0.01)


def touch(path: Path) -> None:
    """A new mtime: the page parses the file again instead of using what it read before."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.mark.parametrize("slow", ["read", "save"])
async def test_while_the_policy_is_checked_other_requests_are_answered(bed, monkeypatch, slow):
    anna, boss = await bed.login("anna"), await bed.login("boss")
    version = (await anna.setting("103"))["version"]
    gate, real = Gate(), policy_file.validate

    def slow_validate(text, path):
        gate.hold()
        return real(text, path)

    monkeypatch.setattr(policy_file, "validate", slow_validate)
    touch(bed.policy_path)
    if slow == "read":
        request = asyncio.create_task(anna.get("/api/employees"))
    else:
        request = asyncio.create_task(anna.put("/api/employees/103/no-answer",
                                               {"version": version, "setting": {"action": "voicemail"}}))
    await gate.until_entered()
    other = await boss.get("/api/me")
    gate.order.append(f"other request {other.status}")
    gate.release.set()
    assert (await request).status == 200
    assert gate.order[:2] == ["other request 200", "slow work done"]


async def test_while_a_password_is_checked_other_requests_are_answered(bed, monkeypatch):
    boss = await bed.login("boss")
    gate, real = Gate(), user_store._hasher

    class SlowHasher:  # argon2's own hasher cannot be patched in place
        def verify(self, hash_, password):
            gate.hold()
            return real.verify(hash_, password)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(user_store, "_hasher", SlowHasher())
    client = await bed.client()
    form = await (await client.get("/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    sign_in = asyncio.create_task(client.post("/login", data={"name": "anna", "password": PASSWORD, "csrf_token": token},
                                              allow_redirects=False))
    await gate.until_entered()
    other = await boss.get("/api/me")
    gate.order.append(f"other request {other.status}")
    gate.release.set()
    assert (await sign_in).status == 303
    assert gate.order[:2] == ["other request 200", "slow work done"]


async def test_pbx_app_web_serves_the_page_in_its_own_process_without_ari(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    UserStore(f"sqlite:///{tmp_path}/journal.db").add("anna", "employee", "103", PASSWORD)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    env.update(PBX_WEB_BIND=f"127.0.0.1:{port}", PBX_DATABASE_URL=f"sqlite:///{tmp_path}/journal.db",
               PBX_AUDIT_LOG=str(tmp_path / "audit.jsonl"), PBX_ANNOUNCEMENTS_DIR=str(tmp_path / "sounds"))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "pbx_app", "web", "--policy", str(policy), env=env,
                                                stderr=asyncio.subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # cookies for an IP
            async def healthy() -> bool:
                try:
                    async with http.get(url + "/health") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            try:
                await until(healthy, 10, "pbx-app web answers /health")
            except TimeoutError:
                pytest.fail("pbx-app web did not start: " + (await proc.stderr.read(4000)).decode())
            form = await (await http.get(url + "/login")).text()
            token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
            signed = await http.post(url + "/login", data={"name": "anna", "password": PASSWORD, "csrf_token": token})
            assert signed.status == 200 and signed.url.path == "/employees/103"
            csrf = (await (await http.get(url + "/api/me")).json())["csrf_token"]
            version = (await (await http.get(url + "/api/employees/103/no-answer")).json())["version"]
            saved = await http.put(url + "/api/employees/103/no-answer", headers={"X-CSRF-Token": csrf},
                                   json={"version": version, "setting": {"action": "voicemail", "ring_time": 15}})
            assert saved.status == 200, await saved.text()
        assert "ring_time: 15" in policy.read_text(), "the save is in the file the engines watch"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 10)
    assert code == 0


def test_the_web_settings_come_from_the_environment():
    settings = Settings.from_env({"PBX_WEB_ALLOWED_HOSTS": "pbx.example.com, 10.0.0.5",
                                  "PBX_WEB_TRUSTED_PROXIES": "127.0.0.1,10.0.0.0/8", "PBX_WEB_UPLOAD_QUOTA_MB": "5",
                                  "PBX_WEB_UPLOADS_PER_HOUR": "7", "PBX_WEB_CONVERSIONS": "1",
                                  "PBX_WEB_UNUSED_UPLOAD_HOURS": "2"}, need_ari=False)
    assert settings.web_allowed_hosts == ("pbx.example.com", "10.0.0.5")
    assert settings.web_trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    assert (settings.web_upload_quota_mb, settings.web_uploads_per_hour, settings.web_conversions,
            settings.web_unused_upload_hours) == (5, 7, 1, 2)
    assert Settings.from_env({}, need_ari=False).web_allowed_hosts == ("localhost", "127.0.0.1", "::1")
    with pytest.raises(SystemExit, match="no ARI password"):
        Settings.from_env({})
