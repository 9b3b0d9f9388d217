"""Issue 27: accounts managed on the page. Administrators add an employee by invitation (a
one-time link, shown and e-mailed), disable and enable, reset a password, set the role; everyone
changes their own password and is signed out everywhere else. Every state change is refused
without the session's token and for the wrong role, and is in the audit log."""

from __future__ import annotations

import asyncio
import random
import re

import pytest

from pbx_app.users import UserStore
from pbx_app.web.accounts.config import AccountsConfig
from pbx_app.web.signin.ratelimit import LoginLimiter
from tests.support.smtp import SmtpServer
from tests.unit.test_web_fuzz import STRINGS, body, headers
from tests.unit.test_web_api import PASSWORD, Browser, WebBed, announcements_env  # noqa: F401 (a fixture)

NEW_PASSWORD = "a fresh password 42"


@pytest.fixture
async def bed(tmp_path):
    b = WebBed(tmp_path)
    yield b
    await b.close()


async def post(browser: Browser, path: str, token: str | None = "session", **fields):
    data = dict(fields)
    if token == "session":
        data["csrf_token"] = browser.csrf
    elif token is not None:
        data["csrf_token"] = token
    return await browser.client.post(path, data=data, allow_redirects=False)


def one_time_link(html: str) -> str:
    return re.search(r'id="one-time-link">([^<]+)<', html).group(1)


async def set_password_by_link(bed: WebBed, url: str, password: str = NEW_PASSWORD):
    visitor = await bed.client()
    path = url.split("://", 1)[1].split("/", 1)[1]
    form = await visitor.get("/" + path)
    if form.status != 200:
        return form  # the link is not valid any more: the page says so before any form
    token = re.search(r'name="csrf_token" value="([^"]+)"', await form.text()).group(1)
    return await visitor.post("/" + path, data={"new": password, "again": password, "csrf_token": token})


async def test_an_administrator_invites_an_employee_who_sets_a_password_once_and_signs_in(bed):
    boss = await bed.login("boss")
    added = await post(boss, "/accounts", name="olga", role="employee", extension="101", display_name="Olga K.")
    assert added.status == 200
    html = await added.text()
    url = one_time_link(html)
    assert url.startswith("http://127.0.0.1:") and "/account/link/" in url
    assert 'data-account="olga"' in html and "waiting for its link" in html
    refused = await Browser(await bed.client()).login("olga", "")
    assert refused.status in (400, 401), "an invited account has no password until its link is used"
    done = await set_password_by_link(bed, url)
    assert done.status == 200 and "Your password is set" in await done.text()
    olga = await bed.login("olga", NEW_PASSWORD)
    assert (await olga.get("/api/me")).status == 200
    again = await set_password_by_link(bed, url, "someone else's password")
    assert again.status == 404 and "This link is not valid" in await again.text(), "the link works once"
    assert (await Browser(await bed.client()).login("olga", "someone else's password")).status == 401
    invited = bed.audit("account_invited")
    assert invited[-1]["user"] == "boss" and invited[-1]["account"] == "olga" and invited[-1]["extension"] == "101"
    assert bed.audit("account_link_used")[-1]["user"] == "olga"
    assert "token" not in str(bed.audit()), "the audit log never holds the link"


async def test_an_invitation_link_expires(bed):
    boss = await bed.login("boss")
    url = one_time_link(await (await post(boss, "/accounts", name="late", role="employee", extension="105")).text())
    bed.web.links.clock = lambda: 10**12  # far past the link's hours
    assert (await set_password_by_link(bed, url)).status == 404


async def test_the_invitation_is_emailed_when_smtp_is_configured(tmp_path, monkeypatch):
    smtp = SmtpServer(tmp_path).start()
    try:
        monkeypatch.setenv("PBX_WEB_URL", "https://pbx.example.test")
        for key, value in smtp.env().items():
            monkeypatch.setenv(key, value)
        bed = WebBed(tmp_path, accounts=AccountsConfig.from_env())
        try:
            boss = await bed.login("boss")
            added = await post(boss, "/accounts", name="olga", role="employee", extension="104", email="olga@example.test")
            html = await added.text()
            url = one_time_link(html)
            assert url.startswith("https://pbx.example.test/account/link/") and "It was also sent by e-mail" in html
            [mail] = smtp.messages
            assert mail["To"] == "olga@example.test" and url in mail.get_content()
            assert bed.audit("account_invited")[-1]["emailed"] is True
        finally:
            await bed.close()
    finally:
        smtp.stop()


async def test_disabling_ends_the_sessions_and_refuses_sign_in_enabling_lets_them_back(bed):
    boss, anna = await bed.login("boss"), await bed.login("anna")
    assert (await post(boss, "/accounts/anna/disable")).status == 200
    assert (await anna.get("/api/me")).status == 401, "a disabled account's session is over"
    assert (await Browser(await bed.client()).login("anna", PASSWORD)).status == 401
    assert (await post(boss, "/accounts/anna/enable")).status == 200
    assert (await bed.login("anna")) is not None
    assert [e["action"] for e in bed.audit() if e.get("account") == "anna"] == ["account_disabled", "account_enabled"]


async def test_a_reset_stops_the_old_password_at_once_and_the_new_link_sets_one(bed):
    boss, petr = await bed.login("boss"), await bed.login("petr")
    reset = await post(boss, "/accounts/petr/reset")
    assert reset.status == 200
    assert (await petr.get("/api/me")).status == 401
    assert (await Browser(await bed.client()).login("petr", PASSWORD)).status == 401, "the old password no longer works"
    assert (await set_password_by_link(bed, one_time_link(await reset.text()))).status == 200
    assert await bed.login("petr", NEW_PASSWORD)
    assert bed.audit("account_password_reset")[-1]["account"] == "petr"


async def test_setting_the_role_makes_an_employee_an_administrator_and_ends_their_sessions(bed):
    boss, anna = await bed.login("boss"), await bed.login("anna")
    assert (await anna.get("/accounts")).status == 403
    assert (await post(boss, "/accounts/anna/role", role="admin", extension="103")).status == 200
    assert (await anna.get("/api/me")).status == 401
    anna = await bed.login("anna")
    assert (await anna.get("/accounts")).status == 200
    entry = bed.audit("account_role_set")[-1]
    assert (entry["role_before"], entry["role"]) == ("employee", "admin")
    bad = await post(boss, "/accounts/petr/role", role="employee", extension="")
    assert bad.status == 400 and "needs an extension" in await bad.text()


async def test_the_last_administrator_and_ones_own_account_are_protected(bed):
    boss = await bed.login("boss")
    for action in ("disable", "reset", "role"):
        mine = await post(boss, f"/accounts/boss/{action}", role="employee", extension="101")
        assert mine.status == 409, "nobody disables, resets or demotes themself here"
    # An administrator from the company directory acting on the only local administrator:
    store = UserStore(bed.config.database_url)
    ivan = store.seen_in_directory("ivan", "admin", None, "Ivan", None)
    session = await asyncio.to_thread(bed.web.sessions.new, "ivan", ivan.stamp)
    directory_admin = Browser(await bed.client())
    directory_admin.client.session.cookie_jar.update_cookies({"pbx_session": session.id})
    directory_admin.csrf = session.csrf
    for action in ("disable", "reset", "role"):
        refused = await post(directory_admin, f"/accounts/boss/{action}", role="employee", extension="101")
        assert refused.status == 409 and "last administrator" in await refused.text()
    assert store.admins() == 1 and (await boss.get("/api/me")).status == 200
    store.add("boss2", "admin", None, PASSWORD)
    assert (await post(directory_admin, "/accounts/boss/disable")).status == 200, "with another one, it can"


async def test_changing_ones_own_password_asks_the_old_one_and_ends_every_other_session(bed):
    here, elsewhere, boss = await bed.login("anna"), await bed.login("anna"), await bed.login("boss")
    wrong = await post(here, "/account/password", old="not it at all", new=NEW_PASSWORD, again=NEW_PASSWORD)
    assert wrong.status == 403
    assert (await elsewhere.get("/api/me")).status == 200, "a wrong old password changes nothing"
    done = await post(here, "/account/password", old=PASSWORD, new=NEW_PASSWORD, again=NEW_PASSWORD)
    assert done.status == 200 and "Your password is changed" in await done.text()
    assert (await here.get("/api/me")).status == 200, "the session that changed it goes on"
    assert (await elsewhere.get("/api/me")).status == 401, "every other session of anna ends"
    assert (await boss.get("/api/me")).status == 200, "nobody else is signed out"
    assert (await Browser(await bed.client()).login("anna", PASSWORD)).status == 401
    assert await bed.login("anna", NEW_PASSWORD)
    entry = bed.audit("password_changed")[-1]
    assert entry["user"] == "anna" and entry["sessions_ended"] == 1


async def test_guessing_the_old_password_is_locked_out_like_sign_in(bed):
    bed.web.limiter = LoginLimiter(per_pair=3)
    anna = await bed.login("anna")
    answers = [(await post(anna, "/account/password", old=f"guess {i}", new=NEW_PASSWORD, again=NEW_PASSWORD)).status
               for i in range(4)]
    assert answers == [403, 403, 403, 429]
    locked = await post(anna, "/account/password", old=PASSWORD, new=NEW_PASSWORD, again=NEW_PASSWORD)
    assert locked.status == 429, "the right password waits out the lock too"


STATE_CHANGES = [
    ("/accounts", {"name": "x1", "role": "employee", "extension": "150"}),
    ("/accounts/petr/disable", {}),
    ("/accounts/petr/enable", {}),
    ("/accounts/petr/reset", {}),
    ("/accounts/petr/role", {"role": "admin", "extension": "102"}),
    ("/account/password", {"old": PASSWORD, "new": NEW_PASSWORD, "again": NEW_PASSWORD}),
]


@pytest.mark.parametrize("path,fields", STATE_CHANGES)
async def test_every_account_change_is_refused_without_the_token_from_another_site_or_signed_out(bed, path, fields):
    boss = await bed.login("boss")
    before = UserStore(bed.config.database_url).load()
    assert (await post(boss, path, token=None, **fields)).status == 403
    assert (await post(boss, path, token="forged-token", **fields)).status == 403
    foreign = await boss.client.post(path, data={**fields, "csrf_token": boss.csrf}, allow_redirects=False,
                                     headers={"Origin": "https://evil.example"})
    assert foreign.status == 403
    anonymous = await (await bed.client()).post(path, data=fields, allow_redirects=False)
    assert anonymous.status == 401
    assert UserStore(bed.config.database_url).load() == before, "nothing changed"
    assert (await boss.get("/api/me")).status == 200


@pytest.mark.parametrize("path,fields", [c for c in STATE_CHANGES if c[0] != "/account/password"])
async def test_every_administrators_change_is_refused_for_an_employee(bed, path, fields):
    anna = await bed.login("anna")
    before = UserStore(bed.config.database_url).load()
    refused = await post(anna, path, **fields)
    assert refused.status == 403 and "Only administrators" in await refused.text()
    assert UserStore(bed.config.database_url).load() == before


async def test_account_forms_are_bounded(bed):
    boss = await bed.login("boss")
    huge = await post(boss, "/accounts", name="x" * 5000, role="employee", extension="150")
    assert huge.status == 413
    long_name = await post(boss, "/accounts", name="x" * 65, role="employee", extension="150")
    assert long_name.status == 400
    control = await post(boss, "/accounts", name="ok", role="employee", extension="150", display_name="a\x00b")
    assert control.status == 400
    bad_mail = await post(boss, "/accounts", name="ok", role="employee", extension="150", email="not an address")
    assert bad_mail.status == 400 and "ok" not in UserStore(bed.config.database_url).load()
    visitor = await bed.client()
    assert (await visitor.get("/account/link/" + "x" * 5000)).status == 404


async def test_no_input_to_the_account_pages_gives_a_500(bed):
    rng = random.Random(27)
    boss = await bed.login("boss")
    anonymous = await bed.client()
    routes = ["/accounts", "/accounts/{s}/disable", "/accounts/{s}/enable", "/accounts/{s}/reset", "/accounts/{s}/role",
              "/account/password", "/account/link/{s}", "/account", "/accounts/{s}/nothing"]
    failures = []
    for i in range(300):
        client = boss.client if rng.random() < 0.8 else anonymous
        path = rng.choice(routes).replace("{s}", rng.choice(["petr", "anna", *STRINGS[:8], "x" * 200]))
        method = rng.choice(["GET", "POST", "POST", "POST"])
        data = body(rng, "v")
        if rng.random() < 0.5:
            fields = {k: rng.choice(STRINGS + ["employee", "admin", "101", PASSWORD]) for k in
                      rng.sample(["name", "role", "extension", "display_name", "email", "old", "new", "again"], 4)}
            fields["csrf_token"] = boss.csrf if rng.random() < 0.7 else rng.choice(STRINGS)
            data = fields
        try:
            response = await client.request(method, path, data=data, headers=headers(rng, boss.csrf), allow_redirects=False)
        except ValueError:  # the client refuses to send some of these
            continue
        if response.status >= 500 and response.status != 503:
            failures.append((i, method, path, response.status, (await response.text())[:200]))
    assert not failures, failures[:5]
