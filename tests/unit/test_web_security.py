"""Issue 13: the self-service page under attack — sign-in limits, sessions, uploads, quotas,
input bounds, leaks, and hand edits made while the page saves. Each test is an attack from the
issue and what the attacker (or the victim) sees."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
import time
import wave
from pathlib import Path

import aiohttp
import pytest

from pbx_app.announcements.convert import convert_to_asterisk_wav
from pbx_app.web.app import collect_unused
from pbx_app.web.config import networks
from pbx_app.web.signin.ratelimit import LoginLimiter, RequestRate
from tests.unit.test_announcements import sounds_in, tone
from tests.unit.test_web_api import PASSWORD, Browser, WebBed, announcements_env, forward  # noqa: F401 (a fixture)

PROXY = networks(["127.0.0.1"])  # the test client connects from here: it plays the reverse proxy


@pytest.fixture
async def bed(tmp_path):
    b = WebBed(tmp_path)
    yield b
    await b.close()


@pytest.fixture
async def proxied(tmp_path):
    """The page behind a reverse proxy on 127.0.0.1 (PBX_WEB_TRUSTED_PROXIES=127.0.0.1)."""
    b = WebBed(tmp_path, trusted_proxies=PROXY)
    yield b
    await b.close()


class SignIn:
    """Posts the sign-in form as a browser at ``address`` would (X-Forwarded-For, which only
    counts behind a trusted proxy)."""

    def __init__(self, client, address: str | None = None):
        self.client = client
        self.headers = {"X-Forwarded-For": address} if address else {}
        self.token = ""

    async def open(self) -> "SignIn":
        form = await (await self.client.get("/login", headers=self.headers)).text()
        self.token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        return self

    async def __call__(self, name: str, password: str):
        return await self.client.post("/login", data={"name": name, "password": password, "csrf_token": self.token},
                                      headers=self.headers, allow_redirects=False)


# ---- 1. lockout raced -------------------------------------------------------------------------


async def test_a_burst_of_guesses_sent_at_once_gets_no_more_guesses_than_the_limit(bed):
    sign_in = await SignIn(await bed.client()).open()
    attempts = [sign_in("anna", f"wrong {i}") for i in range(30)] + [sign_in("anna", PASSWORD)]
    statuses = [r.status for r in await asyncio.gather(*attempts)]
    checked = [s for s in statuses if s in (401, 303)]
    assert len(checked) <= 5, f"{len(checked)} passwords were checked in the burst: {statuses}"
    assert statuses.count(429) >= 26
    assert len(bed.audit("sign_in_failed")) <= 5


async def test_a_refused_attempt_says_when_to_come_back(bed):
    sign_in = await SignIn(await bed.client()).open()
    for _ in range(5):
        assert (await sign_in("anna", "wrong password")).status == 401
    refused = await sign_in("anna", PASSWORD)
    assert refused.status == 429 and 0 < int(refused.headers["Retry-After"]) <= 300
    assert "Too many failed attempts" in await refused.text()


# ---- 8. named user locked out; one address behind the proxy --------------------------------------


async def test_someone_failing_on_a_name_cannot_lock_its_owner_out(proxied):
    proxied.web.limiter = LoginLimiter(delay_step=0.3, max_delay=0.3)
    client = await proxied.client()
    attacker = await SignIn(client, "203.0.113.66").open()
    statuses = [(await attacker("boss", f"guess {i}")).status for i in range(12)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, "the attacker's own pair is locked"
    for i in range(12):  # more attackers, each a few guesses: the name gets hot
        other = await SignIn(client, f"198.51.100.{i}").open()
        assert (await other("boss", "guess")).status == 401
    owner = await SignIn(client, "10.0.0.7").open()
    started = time.monotonic()
    signed = await owner("boss", PASSWORD)
    assert signed.status == 303, "the owner signs in from their own address"
    assert time.monotonic() - started >= 0.3, "only slowed down while the name is under attack"


async def test_behind_a_trusted_proxy_each_client_is_limited_on_its_own_address(proxied):
    proxied.web.limiter = LoginLimiter(per_address=8)
    client = await proxied.client()
    sprayer = await SignIn(client, "203.0.113.66").open()
    for i in range(8):
        await sprayer(f"user{i}", "guess")
    assert (await sprayer("user99", "guess")).status == 429, "the spraying address is stopped"
    colleague = await SignIn(client, "10.0.0.7").open()
    assert (await colleague("anna", PASSWORD)).status == 303, "another client behind the same proxy is not"


async def test_x_forwarded_for_is_not_believed_from_anyone_else(bed):
    bed.web.limiter = LoginLimiter(per_address=8)
    client = await bed.client()
    for i in range(9):  # a new made-up address on every request, straight to the page
        sign_in = await SignIn(client, f"203.0.113.{i}").open()
        last = await sign_in(f"user{i}", "guess")
    assert last.status == 429, "the peer's own address is what counts"


# ---- 2. anonymous visitors sign everyone out ---------------------------------------------------


async def test_anonymous_visitors_never_sign_anyone_out(bed):
    boss = await bed.login("boss")
    anonymous = await bed.client()

    async def visit(n: int) -> None:
        for _ in range(n):
            anonymous.session.cookie_jar.clear()
            assert (await anonymous.get("/login")).status == 200

    await asyncio.gather(*(visit(1_006) for _ in range(10)))  # 10,060 cookieless visits
    assert (await boss.get("/api/me")).status == 200, "the administrator is still signed in"


async def test_a_signed_in_script_flooding_the_api_is_slowed_to_the_rate_and_others_are_not(bed):
    bed.web.api_rate = RequestRate(rate=20, burst=40, clock=lambda: 0.0)  # no refill during the test
    anna, boss = await bed.login("anna"), await bed.login("boss")
    answers = [(await anna.get("/api/employees")).status for _ in range(30)]
    assert answers == [200] * 30, "a page's own requests are never refused"
    for _ in range(20):  # the sign-in's own requests took a few of the 40
        refused = await anna.get("/api/employees")
        if refused.status != 200:
            break
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert (await refused.json())["code"] == "rate"
    assert (await boss.get("/api/employees")).status == 200, "another user is not slowed down"


# ---- 3. password change and removal end sessions, from another process ------------------------


def pbx_user(bed: WebBed, *args: str, password: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "pbx_app", "user", "--database", bed.config.database_url, *args],
                   input=password, text=True, check=True, capture_output=True)


async def test_a_new_password_or_a_removal_ends_that_users_sessions(bed):
    petr, anna, boss = await bed.login("petr"), await bed.login("anna"), await bed.login("boss")
    pbx_user(bed, "passwd", "petr", "--password-file", "-", password="a brand new password\n")
    assert (await petr.get("/api/me")).status == 401, "the old password's session is over"
    page = await petr.client.get("/employees/102", allow_redirects=False)
    assert page.headers["Location"] == "/login"
    pbx_user(bed, "remove", "anna")
    assert (await anna.get("/api/me")).status == 401
    assert (await boss.get("/api/me")).status == 200, "nobody else is signed out"
    again = Browser(await bed.client())
    assert (await again.login("petr", "a brand new password")).status == 200


# ---- 4, 5. uploads: decode bombs, slots, quota, rate, collection -------------------------------


def low_rate_wav(path: Path, seconds: int, rate: int = 1) -> Path:
    """Hours of sound in a few KiB: 8-bit samples at 1 Hz."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(bytes(128 + (i % 50) for i in range(seconds * rate)))
    return path


def form(data: bytes, filename: str = "hello.wav") -> aiohttp.FormData:
    f = aiohttp.FormData()
    f.add_field("file", io.BytesIO(data), filename=filename, content_type="audio/wav")
    return f


async def test_a_decode_bomb_is_refused_before_anything_is_written(bed, tmp_path):
    anna = await bed.login("anna")
    bomb = low_rate_wav(tmp_path / "bomb.wav", seconds=3600)  # 3.5 KiB that decode to an hour
    peak = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        while not done.is_set():
            if bed.sounds.exists():
                peak = max(peak, sum(p.stat().st_size for p in bed.sounds.iterdir() if p.is_file()))
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    response = await anna.post("/api/announcements", data=form(bomb.read_bytes()))
    done.set()
    await watcher
    assert response.status == 400
    assert (await response.json())["error"] == "the sound is too long: 3600 s, the limit is 300 s"
    assert peak < 64 * 1024, f"{peak} bytes were written to the announcements folder"


async def test_conversion_output_stops_at_the_bound(tmp_path):
    src = tone(tmp_path / "long.wav", seconds=6)
    out = tmp_path / "out.wav"
    await convert_to_asterisk_wav(src, "wav", out, max_seconds=2)
    with wave.open(str(out)) as w:
        assert w.getnframes() == 2 * 8000, "whatever the input, the output ends at the bound"


class SlowSpeech:
    """A text-to-speech stand-in that takes a while and counts how many run at once."""

    def __init__(self) -> None:
        self.running = self.most = 0

    async def render(self, text: str, language: str, out: Path) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.2)
        with wave.open(str(out), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\x01\x00" * 8000)
        self.running -= 1


async def test_conversions_run_a_few_at_a_time(tmp_path):
    speech = SlowSpeech()
    bed = WebBed(tmp_path, conversions=2)
    bed.web.announcements.tts = speech
    try:
        users = [await bed.login(name) for name in ("anna", "petr", "boss")]
        requests = [u.post("/api/announcements/tts", json={"text": f"hello {i}", "language": "en"})
                    for i, u in enumerate(users * 3)]
        statuses = [r.status for r in await asyncio.gather(*requests)]
        assert statuses == [200] * 9, "everyone is served, in turn"
        assert speech.most == 2, f"{speech.most} ran at once"
    finally:
        await bed.close()


async def test_each_user_has_a_quota_of_bytes_with_a_clear_answer(tmp_path):
    bed = WebBed(tmp_path, upload_quota_bytes=2 * 1024 * 1024)
    try:
        anna = await bed.login("anna")
        minute = tone(tmp_path / "in.wav", seconds=60, rate=8000, channels=1).read_bytes()  # 960 kB stored
        statuses = [(await anna.post("/api/announcements", data=form(minute))).status for _ in range(2)]
        assert statuses == [200, 200]
        full = await anna.post("/api/announcements", data=form(minute))
        body = await full.json()
        assert full.status == 413 and body["code"] == "quota", body
        assert "past the limit of 2.0 MiB (in use: 1.8 MiB)" in body["error"], body
        assert sounds_in(bed.sounds) and len(sounds_in(bed.sounds)) == 2, "nothing kept from the refused one"
        petr = await bed.login("petr")
        assert (await petr.post("/api/announcements", data=form(minute))).status == 200, "a quota per user"
    finally:
        await bed.close()


async def test_each_user_has_a_rate_with_retry_after(tmp_path):
    bed = WebBed(tmp_path, uploads_per_hour=3)
    try:
        anna = await bed.login("anna")
        said = [await anna.post("/api/announcements/tts", json={"text": "hello", "language": "en"}) for _ in range(4)]
        assert [r.status for r in said] == [200, 200, 200, 429]
        body = await said[-1].json()
        assert body["code"] == "too_many" and "the limit is 3" in body["error"]
        assert 3000 < int(said[-1].headers["Retry-After"]) <= 3600
    finally:
        await bed.close()


async def test_unused_page_sounds_are_removed_after_the_grace_period_a_sysadmins_never(bed, tmp_path):
    anna = await bed.login("anna")
    data = tone(tmp_path / "in.wav", seconds=0.5).read_bytes()
    used = (await (await anna.post("/api/announcements", data=form(data))).json())["file"]
    unused = (await (await anna.post("/api/announcements", data=form(data))).json())["file"]
    assert (await anna.save("103", forward("101", announcement={"kind": "custom", "file": used}))).status == 200
    ceo = bed.sounds / "ceo-greeting.wav"
    ceo.write_bytes(tone(tmp_path / "ceo.wav", seconds=0.5).read_bytes())
    os.utime(ceo, (0, 0))  # very old, and nothing refers to it

    assert await collect_unused(bed.web) == [], "inside the grace period nothing goes"
    bed.web.announcements.clock = lambda: time.time() + 25 * 3600
    assert await collect_unused(bed.web) == [unused]
    assert sounds_in(bed.sounds) == sorted([used, "ceo-greeting.wav"])


# ---- 7. anyone's announcement ------------------------------------------------------------------


async def test_an_employee_sees_and_uses_only_their_own_sounds(bed, tmp_path):
    bed.sounds.mkdir(parents=True, exist_ok=True)
    (bed.sounds / "ceo-greeting.wav").write_bytes(tone(tmp_path / "ceo.wav", seconds=0.5).read_bytes())
    petr, anna, boss = await bed.login("petr"), await bed.login("anna"), await bed.login("boss")
    petrs = (await (await petr.post("/api/announcements", data=form(tone(tmp_path / "p.wav", 0.5).read_bytes()))).json())["file"]
    for name in (petrs, "ceo-greeting.wav"):
        assert (await anna.get(f"/api/announcements/{name}")).status == 404
        refused = await anna.save("103", forward("101", announcement={"kind": "custom", "file": name}))
        assert refused.status == 400 and "announcement" in (await refused.json())["problems"]
    assert (await anna.get("/api/sounds/standard/en")).status == 200, "the standard sounds are everyone's"
    assert (await petr.get(f"/api/announcements/{petrs}")).status == 200, "their own"
    assert (await boss.get("/api/announcements/ceo-greeting.wav")).status == 200, "an administrator sees all"
    chosen = await boss.save("103", forward("101", announcement={"kind": "custom", "file": "ceo-greeting.wav"}))
    assert chosen.status == 200
    assert (await anna.get("/api/announcements/ceo-greeting.wav")).status == 200, "what her setting plays"
    kept = await anna.save("103", forward("102", announcement={"kind": "custom", "file": "ceo-greeting.wav"}))
    assert kept.status == 200, "and she may keep it"


# ---- 6. unbounded input --------------------------------------------------------------------------


async def test_huge_sign_in_names_do_not_grow_the_audit_log(bed):
    sign_in = await SignIn(await bed.client()).open()
    for _ in range(20):
        response = await sign_in("x" * 1_000_000, "wrong password")
        assert 400 <= response.status < 500
    size = bed.config.audit_path.stat().st_size if bed.config.audit_path.exists() else 0
    assert size < 20_000, f"the audit log grew by {size} bytes"


async def test_broken_unicode_is_refused_with_a_reason(bed):
    anna = await bed.login("anna")
    headers = {"Content-Type": "application/json", "X-CSRF-Token": anna.csrf}
    said = await anna.client.post("/api/announcements/tts", data=b'{"text": "hi \\ud800 there", "language": "en"}',
                                  headers=headers)
    assert said.status == 400 and "text" in (await said.json())["error"]
    version = (await anna.setting("103"))["version"]
    body = ('{"version": "%s", "setting": {"action": "forward", "to": "101", "announcement": '
            '{"kind": "tts", "file": "x.wav", "text": "\\udfff"}}}' % version)
    saved = await anna.client.put("/api/employees/103/no-answer", data=body.encode(), headers=headers)
    assert saved.status == 400


async def test_a_multipart_header_with_a_raw_newline_is_a_bad_request(bed):
    anna = await bed.login("anna")
    body = (b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a\nb.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\nRIFF\x00\x00\x00\x00WAVE\r\n--XyZ--\r\n")
    response = await anna.client.post("/api/announcements", data=body, headers={
        "Content-Type": "multipart/form-data; boundary=XyZ", "X-CSRF-Token": anna.csrf})
    assert 400 <= response.status < 500


# ---- 8. leaks: /health, Host ---------------------------------------------------------------------


async def test_other_host_names_are_refused(bed):
    client = await bed.client()
    for path in ("/login", "/api/me", "/"):
        response = await client.get(path, headers={"Host": "rebind.attacker.example"}, allow_redirects=False)
        assert response.status == 421 and (await response.json())["code"] == "bad_host"
    assert (await client.get("/login", headers={"Host": "localhost:8090"})).status == 200


# ---- 9. a hand edit during a save ----------------------------------------------------------------

HAND_EDITOR = """
import os, sys, time
path, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    text = open(path, encoding="utf-8").read()
    tmp = path + ".hand"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text.rstrip("\\n") + f"\\n# hand edit {i}\\n")
    os.replace(tmp, path)
    time.sleep(0.01)
"""


async def test_no_hand_edit_is_lost_while_the_page_saves(bed, tmp_path):
    # Saves as fast as the machine allows: the API's rate limit (tested above) is not the subject.
    bed.web.api_rate = RequestRate(rate=1e6, burst=1e6)
    boss = await bed.login("boss")
    editor = await asyncio.create_subprocess_exec(sys.executable, "-c", HAND_EDITOR, str(bed.policy_path), "300")
    statuses: list[tuple[int, str]] = []
    settings = [{"action": "voicemail"}, {"action": "drop", "drop": "message"}]
    while editor.returncode is None and len(statuses) < 200:
        response = await boss.save("102", settings[len(statuses) % 2])
        statuses.append((response.status, (await response.json()).get("code", "")))
        try:
            await asyncio.wait_for(editor.wait(), 0.001)
        except asyncio.TimeoutError:
            pass
    await editor.wait()
    text = bed.text
    lost = [i for i in range(300) if f"# hand edit {i}\n" not in text]
    assert not lost, f"{len(lost)} hand edits lost, e.g. {lost[:5]}"
    assert {s for s, _ in statuses} <= {200, 409}
    assert (409, "file_changed") in statuses, "a save that met a hand edit was refused"
    bed.policy()  # and the file is a valid policy
