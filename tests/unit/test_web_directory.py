"""Issue 27: directory sign-in against a real OpenLDAP (Debian's slapd, started by the test on
127.0.0.1 with a certificate made for it): bind as the user over LDAPS or StartTLS, the group
decides the role, the extension comes from telephoneNumber. A directory that does not answer
gives a clear message within its deadline, never holds the page, and local administrators
still sign in."""

from __future__ import annotations

import asyncio
import time

import ldap3
import pytest

from pbx_app.users import UserStore
from pbx_app.users.directory import DirectorySettings
from pbx_app.web.accounts.config import AccountsConfig
from tests.support.ldap import ADMINS, PEOPLE, PERSONS, ROOT_DN, ROOT_PW, Silent, Slapd
from tests.unit.test_web_api import PASSWORD, Browser, WebBed, announcements_env  # noqa: F401 (a fixture)
from tests.support.smtp import self_signed


@pytest.fixture(scope="module")
def slapd(tmp_path_factory):
    server = Slapd(tmp_path_factory.mktemp("ldap")).start()
    yield server
    server.stop()


def with_directory(tmp_path, env: dict[str, str]) -> WebBed:
    return WebBed(tmp_path, accounts=AccountsConfig(directory=DirectorySettings.from_env(env)))


@pytest.fixture(params=["ldaps", "starttls"])
async def bed(request, tmp_path, slapd):
    url = slapd.ldaps_url if request.param == "ldaps" else slapd.starttls_url
    b = with_directory(tmp_path, slapd.env(url))
    yield b
    await b.close()


def password(name: str) -> str:
    return PERSONS[name][0]


async def test_a_directory_employee_signs_in_with_the_extension_from_the_directory(bed):
    olga = Browser(await bed.client())
    response = await olga.login("olga", password("olga"))
    assert response.status == 200 and response.url.path == "/employees/101", "telephoneNumber 101 is her extension"
    account = UserStore(bed.config.database_url).get("olga")
    assert (account.source, account.role, account.extension, account.password_hash) == ("directory", "employee", "101", None)
    assert (await olga.get("/accounts")).status == 403, "the employees' group gives no administration"
    mine = await olga.get("/account")
    assert "company account" in await mine.text(), "her password is the directory's, not changed here"
    assert bed.audit("sign_in")[-1]["user"] == "olga"


async def test_the_administrators_group_makes_an_administrator(bed):
    ivan = Browser(await bed.client())
    assert (await ivan.login("ivan", password("ivan"))).status == 200
    assert (await ivan.get("/accounts")).status == 200


async def test_a_wrong_password_or_no_group_of_the_page_is_refused(bed):
    assert (await Browser(await bed.client()).login("olga", "not her password")).status == 401
    assert (await Browser(await bed.client()).login("olga", "")).status in (400, 401), "an empty password is no anonymous bind"
    assert (await Browser(await bed.client()).login("gleb", password("gleb"))).status == 401
    assert UserStore(bed.config.database_url).get("gleb") is None
    assert [e["reason"] for e in bed.audit("sign_in_failed")][-1] == "wrong"


async def test_a_role_changed_in_the_directory_applies_at_the_next_sign_in_and_ends_the_old_sessions(tmp_path, slapd):
    b = with_directory(tmp_path, slapd.env())
    directory = ldap3.Connection(ldap3.Server(slapd.starttls_url), ROOT_DN, ROOT_PW, auto_bind=True)
    dn = f"uid=olga,{PEOPLE}"
    try:
        before = Browser(await b.client())
        assert (await before.login("olga", password("olga"))).status == 200
        assert directory.modify(ADMINS, {"member": [(ldap3.MODIFY_ADD, [dn])]}), directory.result
        after = Browser(await b.client())
        assert (await after.login("olga", password("olga"))).status == 200
        assert (await after.get("/accounts")).status == 200, "the administrators' group now"
        assert (await before.get("/api/me")).status == 401, "the session made under the old role is over"
    finally:
        directory.modify(ADMINS, {"member": [(ldap3.MODIFY_DELETE, [dn])]})
        directory.unbind()
        await b.close()


async def test_an_administrator_disables_a_directory_account_here(bed):
    olga = Browser(await bed.client())
    assert (await olga.login("olga", password("olga"))).status == 200
    UserStore(bed.config.database_url).set_disabled("olga", True)
    assert (await olga.get("/api/me")).status == 401
    assert (await Browser(await bed.client()).login("olga", password("olga"))).status == 401


async def test_a_directory_whose_certificate_is_not_trusted_is_not_used(tmp_path, slapd):
    other_ca, _ = self_signed(tmp_path)
    for i, url in enumerate((slapd.ldaps_url, slapd.starttls_url)):
        (tmp_path / str(i)).mkdir()
        b = with_directory(tmp_path / str(i), {**slapd.env(url), "PBX_LDAP_CA_FILE": str(other_ca)})
        try:
            refused = await Browser(await b.client()).login("olga", password("olga"))
            assert refused.status == 503 and "directory did not answer" in await refused.text()
        finally:
            await b.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme", ["ldaps", "ldap"])
async def test_a_silent_directory_gives_a_clear_message_in_time_and_never_holds_the_page(tmp_path, slapd, scheme):
    silent = Silent()
    env = {**slapd.env(f"{scheme}://127.0.0.1:{silent.port}"), "PBX_LDAP_TIMEOUT": "2"}
    b = with_directory(tmp_path, env)
    try:
        boss = await b.login("boss")  # a local administrator: never asks the directory
        started = time.monotonic()
        waiting = asyncio.create_task(Browser(await b.client()).login("olga", password("olga")))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        served = time.monotonic()
        assert (await boss.get("/api/me")).status == 200, "the page answers while the directory is silent"
        assert time.monotonic() - served < 1.5
        assert await b.login("boss"), "local administrators still sign in"
        answer = await waiting
        took = time.monotonic() - started
        assert answer.status == 503 and "directory did not answer" in await answer.text()
        assert took < 6, f"the deadline holds ({took:.1f} s)"
        assert b.audit("sign_in_failed")[-1]["reason"] == "directory_down"
    finally:
        await b.close()
        silent.close()
