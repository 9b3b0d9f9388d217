"""Issue 27: accounts and sessions in the journal's database (SQLite and a real PostgreSQL): the
users file imported once, no lost update between the CLI and the page, sessions that outlive a
web process and are shared by two, expiry, idle timeout and the credential stamp."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from argon2 import PasswordHasher

from pbx_app.users import AccountsDatabase, UserError, UserStore
from pbx_app.users.legacy_file import import_once
from pbx_app.users.links import Links
from pbx_app.web.signin.sessions import SessionStore
from tests.support.net import free_port
from tests.support.wait import until
from tests.unit.test_web_api import PASSWORD, POLICY, Browser, WebBed, announcements_env  # noqa: F401 (a fixture)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/journal.db"
    return request.getfixturevalue("postgres_server").new_database("accounts")


def users_file(path: Path) -> Path:
    hasher = PasswordHasher()
    path.write_text(json.dumps({"users": {
        "boss": {"role": "admin", "password_hash": hasher.hash(PASSWORD), "display_name": "The Boss"},
        "anna": {"role": "employee", "extension": "103", "password_hash": hasher.hash(PASSWORD), "language": "ru"},
    }}))
    return path


def pbx_user(database: str, *args: str, password: str | None = None, users: Path | None = None) -> subprocess.CompletedProcess:
    extra = ["--users", str(users)] if users else []
    return subprocess.run([sys.executable, "-m", "pbx_app", "user", "--database", database, *extra, *args],
                          input=password, text=True, capture_output=True, cwd=REPO)


def test_the_users_file_is_imported_once_with_passwords_and_languages(url, tmp_path):
    path = users_file(tmp_path / "users.json")
    db = AccountsDatabase(url)
    assert import_once(db, path) == 2
    store = UserStore(db)
    anna = store.authenticate("anna", PASSWORD)
    assert anna is not None and anna.extension == "103" and anna.language == "ru"
    assert store.get("boss").display_name == "The Boss" and store.get("boss").is_admin
    store.remove("anna")
    assert import_once(AccountsDatabase(url), path) is None, "the file is never read again"
    assert store.get("anna") is None
    listed = pbx_user(url, "list", users=path)
    assert listed.returncode == 0 and "boss\tadmin" in listed.stdout and "anna" not in listed.stdout


def test_a_broken_users_file_is_named_and_nothing_is_imported(tmp_path):
    path = tmp_path / "users.json"
    path.write_text('{"users": {"anna": {"role": "employee"')
    db = AccountsDatabase(f"sqlite:///{tmp_path}/journal.db")
    with pytest.raises(UserError, match=re.escape(str(path))):
        import_once(db, path)
    assert UserStore(db).load() == {}


def test_the_cli_manages_accounts_in_the_database(url):
    added = pbx_user(url, "add", "olga", "--role", "employee", "--extension", "104", "--password-file", "-",
                     password="olga password\n")
    assert added.returncode == 0, added.stderr
    store = UserStore(url)
    assert store.authenticate("olga", "olga password") is not None
    assert pbx_user(url, "disable", "olga").returncode == 0
    assert store.authenticate("olga", "olga password") is None, "a disabled account does not sign in"
    assert pbx_user(url, "enable", "olga").returncode == 0
    invite = pbx_user(url, "invite", "olga", "--base-url", "https://pbx.example.com/")
    token = invite.stdout.strip().rsplit("/", 1)[1]
    assert invite.stdout.startswith("https://pbx.example.com/account/link/")
    assert Links(AccountsDatabase(url)).redeem(token, "set by the link") == "olga"
    assert store.authenticate("olga", "set by the link") is not None
    with pytest.raises(UserError, match="not valid"):
        Links(AccountsDatabase(url)).redeem(token, "a second time")
    again = pbx_user(url, "add", "OLGA", "--role", "admin", "--password-file", "-", password="whatever pw\n")
    assert again.returncode == 1 and "exists already" in again.stderr, "names differing in case only are one person"


async def test_the_cli_and_the_page_writing_at_once_lose_nothing(tmp_path, url):
    """The old users file was read whole and written whole: a language switch on the page
    racing `pbx-app user add` dropped one of them."""
    bed = WebBed(tmp_path, database_url=url)
    try:
        anna = await bed.login("anna")
        names = [f"new{i}" for i in range(6)]
        adds = [asyncio.create_subprocess_exec(
            sys.executable, "-m", "pbx_app", "user", "--database", bed.config.database_url, "add", n, "--role", "employee",
            "--extension", f"2{i:02d}", "--password-file", "-", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=REPO) for i, n in enumerate(names)]
        procs = await asyncio.gather(*adds)
        feeding = [p.communicate(b"a new password\n") for p in procs]

        async def switch_languages():
            for i in range(12):
                language = "ru" if i % 2 == 0 else "en"
                await anna.client.post("/language", data={"lang": language, "next": "/", "csrf_token": anna.csrf},
                                       allow_redirects=False)
            return language

        *outputs, last = await asyncio.gather(*feeding, switch_languages())
        assert all(p.returncode == 0 for p in procs), [o[1] for o in outputs]
        users = UserStore(bed.config.database_url).load()
        assert set(names) <= set(users), "every account the CLI added is there"
        assert users["anna"].language == last, "and the page's last change too"
        assert (await anna.get("/api/me")).status == 200, "a language switch ends no session"
    finally:
        await bed.close()


def test_sessions_end_when_idle_and_after_their_maximum_age_and_outlive_their_process(url):
    db = AccountsDatabase(url)
    now = [1000.0]
    sessions = SessionStore(db, idle=60, max_age=300, clock=lambda: now[0], per_user=2)
    s = sessions.new("anna", "stamp-1")
    now[0] += 59
    assert sessions.get(s.id) is not None
    now[0] += 61
    assert sessions.get(s.id) is None, "idle past the timeout"
    s = sessions.new("anna", "stamp-1")
    for _ in range(7):  # 280 s, never idle
        now[0] += 40
        assert sessions.get(s.id) is not None
    now[0] += 40
    assert sessions.get(s.id) is None, "past the maximum age, however busy"
    first, second, third = (sessions.new("anna", "x") for _ in range(3))
    assert sessions.get(first.id) is None and sessions.get(third.id) is not None, "a third browser ends the oldest"
    restarted = SessionStore(AccountsDatabase(url), idle=60, max_age=300, clock=lambda: now[0])
    assert restarted.get(third.id).csrf == third.csrf, "another process (or after a restart) knows the session"
    assert restarted.get("made-up") is None and restarted.get("x" * 5000) is None
    rows = db.rows("SELECT id_hash FROM web_sessions")
    assert third.id not in str(rows), "the database keeps no usable session id"


async def _web(tmp_path: Path, port: int, database: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    env.update(PBX_WEB_BIND=f"127.0.0.1:{port}", PBX_DATABASE_URL=database, PBX_USERS=str(tmp_path / "none.json"),
               PBX_AUDIT_LOG=str(tmp_path / "audit.jsonl"), PBX_ANNOUNCEMENTS_DIR=str(tmp_path / "sounds"))
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "pbx_app", "web", "--policy", str(tmp_path / "policy.yaml"),
                                                env=env, stderr=asyncio.subprocess.PIPE, cwd=REPO)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)


@pytest.mark.timeout(120)
async def test_a_session_made_by_one_web_process_is_served_by_another_and_survives_a_restart(tmp_path, url):
    (tmp_path / "policy.yaml").write_text(POLICY)
    UserStore(url).add("anna", "employee", "103", PASSWORD)
    ports = [free_port(), free_port()]
    procs = [await _web(tmp_path, p, url) for p in ports]
    try:
        async with aiohttp.ClientSession() as http:
            async def healthy(port: int) -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            for port in ports:
                await until(lambda: healthy(port), 20, f"pbx-app web on {port}")
            one, two = (f"http://127.0.0.1:{p}" for p in ports)
            async with http.get(one + "/login") as r:
                token = re.search(r'name="csrf_token" value="([^"]+)"', await r.text()).group(1)
                form_cookie = r.cookies["pbx_login"].value
            async with http.post(two + "/login", data={"name": "anna", "password": PASSWORD, "csrf_token": token},
                                 headers={"Cookie": f"pbx_login={form_cookie}"}, allow_redirects=False) as r:
                assert r.status == 303, "a form one process served is good at another: " + await r.text()
                cookie = {"Cookie": f"pbx_session={r.cookies['pbx_session'].value}"}
            async with http.get(one + "/api/me", headers=cookie) as r:
                assert r.status == 200 and (await r.json())["name"] == "anna", "the other process serves the session"
                csrf = (await r.json())["csrf_token"]
            await _stop(procs[0])
            procs[0] = await _web(tmp_path, ports[0], url)
            await until(lambda: healthy(ports[0]), 20, "pbx-app web again")
            async with http.get(one + "/api/me", headers=cookie) as r:
                assert r.status == 200, "a restart signs nobody out"
            async with http.post(two + "/logout", data={"csrf_token": csrf}, headers=cookie, allow_redirects=False) as r:
                assert r.status == 303
            async with http.get(one + "/api/me", headers=cookie) as r:
                assert r.status == 401, "signing out through one process ends the session in all"
    finally:
        for proc in procs:
            await _stop(proc)
