"""Issue 14 (1, 5): History on the page and its API — whose calls each reader sees, the filters,
paging, the CSV (no formulas), the voicemail player's ACL, bad input answered with 400 — and
the page in the reader's language."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from pbx_app.history.database import open_store
from pbx_app.history.events import CallEnded, CallStarted, LegEnded, LegStarted
from pbx_app.history.spool import Position
from pbx_app.users import UserStore
from tests.unit.test_web_api import PASSWORD, WebBed

POLICY = """\
site:
  timezone: Europe/Moscow
employees:
  "101": {name: Ivan Petrov, on_no_answer: {action: forward, to: "102"}}
  "102": {name: Petr Ivanov}
  "103": {name: Anna Smirnova, mailbox: "103@default", on_no_answer: {action: voicemail}, voicemail_to: ["sales"]}
  "104": {name: Olga Kuznetsova}
departments:
  sales: {name: Sales, members: ["102", "103"]}
"""
NOW = datetime.now(timezone.utc).replace(microsecond=0)
T0 = NOW - timedelta(hours=2)
WAV = b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00\x80>\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def channel(call_id: str) -> str:
    return f"PJSIP/client-{call_id}-0000001a"


def call(call_id: str, start: float, caller: str, ext: str, legs: list[tuple], result: str, detail: str = "") -> list:
    """legs: (role, targets, outcome, answered_by) in order, each 5 s long."""
    events = [CallStarted(call_id, at(start), caller, ext, call_id, channel_name=channel(call_id))]
    t = start
    for n, (role, targets, outcome, answered_by) in enumerate(legs, 1):
        events.append(LegStarted(call_id, n, at(t), role, targets))
        events.append(LegEnded(call_id, n, at(t + 5), outcome, answered_by=answered_by,
                               answered_at=at(t + 2) if answered_by else None))
        t += 5
    events.append(CallEnded(call_id, at(t + 10), result, detail))
    return events


CALLS = [
    # 101 does not answer, forwarded to 102, 102 answers: 102's call, "for 101".
    call("c1", 0, "79001234567", "101", [("employee", ("101",), "no_answer", None),
                                         ("forward", ("102",), "answered", "102")], "answered", "answered by 102"),
    # 103 does not answer, forwarded to 104, nobody answers: missed by 103.
    call("c2", 60, "79001112233", "103", [("employee", ("103",), "no_answer", None),
                                          ("forward", ("104",), "no_answer", None)], "dropped", "busy"),
    # 103 does not answer, the caller leaves a message: missed by 103, "Voicemail".
    call("c3", 120, "79005556677", "103", [("employee", ("103",), "no_answer", None),
                                           ("voicemail", ("103",), "message_left", None)], "voicemail", "message left"),
    # 102 answers their own call.
    call("c4", 180, "79009998877", "102", [("employee", ("102",), "answered", "102")], "answered", "answered by 102"),
    # A caller id that a spreadsheet would run as a formula; missed by 101.
    call("c5", 240, "=HYPERLINK(\"http://x\")", "101", [("employee", ("101",), "no_answer", None)], "dropped", "busy"),
]


@pytest.fixture(autouse=True)
def announcements_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PBX_ANNOUNCEMENTS_DIR", str(tmp_path / "sounds"))


@pytest.fixture
async def bed(tmp_path):
    url = f"sqlite:///{tmp_path}/journal.db"
    store = open_store(url)
    await store.ship("test", None, [e for c in CALLS for e in c], Position(1, 1))
    await store.close()
    # 103's mailbox with the message c3 left (as app_voicemail writes it), and one from another
    # caller at nearly the same time.
    inbox = tmp_path / "voicemail/default/103/INBOX"
    inbox.mkdir(parents=True)
    for n, (chan, when) in enumerate([(channel("c2"), at(121)), (channel("c3"), at(131))]):
        (inbox / f"msg{n:04d}.txt").write_text(
            f";\n[message]\norigmailbox=103\ncallerchan={chan}\norigtime={int(when.timestamp())}\nduration=6\n")
        (inbox / f"msg{n:04d}.wav").write_bytes(WAV + bytes([n]) * 16)
    b = WebBed(tmp_path, POLICY, database_url=url, voicemail_dir=tmp_path / "voicemail")
    UserStore(b.config.database_url).add("ivan", "employee", "101", PASSWORD)
    UserStore(b.config.database_url).add("olga", "employee", "104", PASSWORD)
    yield b
    await b.close()


async def rows(browser, query: str = "", status: int = 200) -> dict:
    response = await browser.get("/api/history" + query)
    assert response.status == status, await response.text()
    return await response.json()


def ids(body: dict) -> list[str]:
    return [r["call_id"] for r in body["rows"]]


# ---- whose calls -----------------------------------------------------------------------------


async def test_the_seeds_three_cases_as_the_history_rules_say(bed):
    boss = await bed.login("boss")
    body = await rows(boss)
    assert ids(body) == ["c5", "c4", "c3", "c2", "c1"], "everyone's, newest first"
    by = {r["call_id"]: r for r in body["rows"]}
    # Forwarded and answered: the colleague's call, for the one dialled.
    assert (by["c1"]["employee"], by["c1"]["status"], by["c1"]["for_whom"]) == ("102", "answered", "for 101 Ivan Petrov")
    assert by["c1"]["employee_cell"] == "102 Petr Ivanov"
    # Forwarded and missed: missed by the one dialled.
    assert (by["c2"]["employee"], by["c2"]["status"], by["c2"]["for_whom"]) == ("103", "missed", "")
    assert by["c2"]["what_happened"] == "no answer; forwarded to 104, not answered (no answer); busy tone"
    # Voicemail with a message: missed, labelled, playable.
    assert (by["c3"]["employee"], by["c3"]["status"], by["c3"]["label_text"]) == ("103", "missed", "Voicemail")
    assert by["c3"]["voicemail_url"] == "/api/history/c3/voicemail" and by["c2"]["voicemail_url"] is None
    assert [s["text"] for s in by["c3"]["steps"]] == ["no answer", "voicemail, message left"], "leg by leg"
    assert by["c3"]["started_at"].endswith("+03:00"), "times in the site's time zone"
    assert (body["total"], body["missed"]) == (5, 3)


async def test_an_employee_sees_calls_counted_for_them_and_calls_dialled_to_them(bed):
    assert ids(await rows(await bed.login("petr"))) == ["c4", "c1"], "102: answered c1 for 101, and their own c4"
    assert ids(await rows(await bed.login("ivan"))) == ["c5", "c1"], "101: c1 was dialled to them"
    assert ids(await rows(await bed.login("anna"))) == ["c3", "c2"]
    assert ids(await rows(await bed.login("olga"))) == [], "104 was rung for c2, but it counts for 103"


async def test_an_employee_cannot_ask_for_someone_elses_calls(bed):
    anna = await bed.login("anna")
    body = await rows(anna, "?employee=102", status=403)
    assert body["code"] == "forbidden"
    assert ids(await rows(anna, "?employee=103")) == ["c3", "c2"], "their own extension is fine"
    page = await anna.get("/history?employee=101")
    assert page.status == 403 and "Not allowed" in await page.text()


# ---- filters and pages ------------------------------------------------------------------------


async def test_filters(bed):
    boss = await bed.login("boss")
    assert ids(await rows(boss, "?missed=1")) == ["c5", "c3", "c2"]
    assert ids(await rows(boss, "?voicemail=1")) == ["c3"]
    assert ids(await rows(boss, "?employee=101")) == ["c5", "c1"], "what 101 would see"
    assert ids(await rows(boss, "?employee=101&missed=1")) == ["c5"]
    yesterday = (NOW - timedelta(days=1)).astimezone(timezone(timedelta(hours=3))).date()
    assert ids(await rows(boss, f"?from={yesterday - timedelta(days=5)}&to={yesterday - timedelta(days=1)}")) == []


async def test_pages_are_bounded_and_numbered(bed):
    boss = await bed.login("boss")
    first = await rows(boss, "?per_page=2")
    assert (ids(first), first["page"], first["pages"], first["total"]) == (["c5", "c4"], 1, 3, 5)
    assert ids(await rows(boss, "?per_page=2&page=3")) == ["c1"]
    assert ids(await rows(boss, "?per_page=2&page=9")) == [], "past the end: an empty page, not an error"
    page = await (await boss.get("/history?per_page=2&page=2")).text()
    assert 'rel="prev"' in page and 'rel="next"' in page and "Page 2 of 3" in page


@pytest.mark.parametrize("query", [
    "?from=yesterday", "?from=2026-13-01", "?to=1999-01-01", "?from=2026-11-30&to=2026-11-01",
    "?from=2026-01-01&to=2026-12-31", "?page=0", "?page=-1", "?page=abc", "?page=1e9", "?per_page=1000",
    "?per_page=0", "?employee=" + "1" * 100, "?employee=1%20OR%201=1", "?employee=%00", "?from=" + "2" * 1000,
    "?page=%D9%A3",  # an Arabic-Indic digit: isdigit() but not a page number
])
async def test_bad_filters_are_400_not_500(bed, query):
    boss = await bed.login("boss")
    body = await rows(boss, query, status=400)
    assert body["code"] == "bad_filter"
    page = await boss.get("/history" + query)
    assert page.status == 400 and 'id="problem"' in await page.text()
    assert (await boss.get("/history.csv" + query)).status == 400


# ---- CSV ---------------------------------------------------------------------------------------


async def test_csv_has_the_filtered_rows_and_no_formulas(bed):
    boss = await bed.login("boss")
    response = await boss.get("/history.csv?missed=1")
    assert response.status == 200 and response.content_type == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="history-')
    table = list(csv.DictReader(io.StringIO(await response.text())))
    assert [r["call_id"] for r in table] == ["c5", "c3", "c2"]
    assert table[0]["caller"] == "'=HYPERLINK(\"http://x\")", "a formula becomes text"
    assert table[1]["label"] == "Voicemail" and table[2]["caller"] == "79001112233"
    for row in table:
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values()), row
    anna = await bed.login("anna")
    mine = list(csv.DictReader(io.StringIO(await (await anna.get("/history.csv")).text())))
    assert [r["call_id"] for r in mine] == ["c3", "c2"], "an employee's CSV holds only what they see"


# ---- voicemail ---------------------------------------------------------------------------------


async def test_the_message_plays_for_its_owner_recipients_and_admins_only(bed, tmp_path):
    message = (tmp_path / "voicemail/default/103/INBOX/msg0001.wav").read_bytes()
    for name in ("anna", "petr", "boss"):  # the owner, 102 through the sales department, an admin
        browser = await bed.login(name)
        response = await browser.get("/api/history/c3/voicemail")
        assert response.status == 200, (name, await response.text())
        assert response.content_type == "audio/wav" and await response.read() == message, name
    for name in ("ivan", "olga"):
        response = await (await bed.login(name)).get("/api/history/c3/voicemail")
        assert response.status == 403, name
        assert (await response.json())["code"] == "forbidden"


async def test_no_message_no_call_no_path_from_the_request(bed, tmp_path):
    boss = await bed.login("boss")
    for path in ("/api/history/c2/voicemail", "/api/history/nope/voicemail", "/api/history/" + "x" * 100 + "/voicemail",
                 "/api/history/..%2F..%2Fetc%2Fpasswd/voicemail"):
        assert (await boss.get(path)).status == 404, path
    (tmp_path / "voicemail/default/103/INBOX/msg0001.wav").unlink()
    assert (await boss.get("/api/history/c3/voicemail")).status == 404, "deleted from the mailbox since"


async def test_not_signed_in(bed):
    client = await bed.client()
    assert (await client.get("/api/history")).status == 401
    assert (await client.get("/api/history/c3/voicemail")).status == 401
    page = await client.get("/history", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/login"


# ---- the page and its language -----------------------------------------------------------------


async def test_the_page_shows_the_cases_in_english(bed):
    petr = await bed.login("petr")
    html = await (await petr.client.get("/history", headers={"Accept-Language": "en-GB,en;q=0.9"})).text()
    assert "Call history" in html and "for 101 Ivan Petrov" in html and "2 calls, 0 missed" in html
    assert 'lang="en"' in html


async def test_a_russian_browser_gets_the_page_in_russian(bed):
    anna = await bed.login("anna")
    response = await anna.client.get("/history", headers={"Accept-Language": "ru-RU,ru;q=0.9,en-US;q=0.8"})
    html = await response.text()
    assert response.status == 200 and '<html lang="ru">' in html
    assert "История звонков" in html and "Голосовая почта" in html and "Пропущен" in html
    assert "2 звонка, 2 пропущенных" in html, "Russian plural forms"
    assert "нет ответа; голосовая почта, оставлено сообщение" in html
    body = await (await anna.client.get("/api/history", headers={"Accept-Language": "ru"})).json()
    assert body["rows"][0]["label_text"] == "Голосовая почта" and body["language"] == "ru"
    catalog = json.loads(html.split('id="pbx-t">', 1)[1].split("</script>", 1)[0])
    assert catalog["The message cannot be played (it may have been deleted from the mailbox)."].startswith("Сообщение")


async def test_the_chosen_language_is_kept_with_the_user(bed):
    anna = await bed.login("anna")
    response = await anna.client.post("/language", data={"lang": "ru", "next": "/history", "csrf_token": anna.csrf},
                                      allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/history"
    assert UserStore(bed.config.database_url).get("anna").language == "ru"
    # Another browser of hers, English by its header, signs in: Russian, as she chose.
    other = await bed.login("anna")
    html = await (await other.client.get("/history", headers={"Accept-Language": "en"})).text()
    assert "История звонков" in html
    # Without her token (another site's form) nothing changes.
    forged = await anna.client.post("/language", data={"lang": "en", "next": "https://evil.example/"},
                                    allow_redirects=False)
    assert forged.headers["Location"] == "/" and UserStore(bed.config.database_url).get("anna").language == "ru"


async def test_before_sign_in_the_switch_is_a_cookie(bed):
    client = await bed.client()
    response = await client.post("/language", data={"lang": "ru", "next": "/login"}, allow_redirects=False)
    assert response.status == 303 and response.cookies["pbx_lang"].value == "ru"
    html = await (await client.get("/login", headers={"Accept-Language": "en"})).text()
    assert "<h1>Вход</h1>" in html
    bad = await client.post("/language", data={"lang": "xx'><script>", "next": "//evil.example"}, allow_redirects=False)
    assert bad.headers["Location"] == "/"
    for target in ("/\\evil.example", "/x\r\nSet-Cookie: a=b", "https://evil.example/", "/ok?" + "x" * 600):
        response = await client.post("/language", data={"lang": "ru", "next": target}, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/", target
    assert "<h1>Вход</h1>" in await (await client.get("/login")).text(), "an unknown language changes nothing"


async def test_the_profile_in_russian(bed):
    boss = await bed.login("boss")
    html = await (await boss.client.get("/employees/101", headers={"Accept-Language": "ru"})).text()
    assert "Приём звонков" in html and "Если сотрудник не отвечает" in html and "Настроить" in html
    assert "Через 120 с: перевести на Petr Ivanov (102), стандартное сообщение" in html, "the summary, server-side"
    assert "Через 120 с: положить трубку с сигналом «занято»" in html, "the people list (Petr: the site's default)"
    english = await (await boss.client.get("/employees/101", headers={"Accept-Language": "en"})).text()
    assert "After 120 s: forward to Petr Ivanov (102), standard message" in english


async def test_the_page_shares_the_apis_request_budget(bed):
    anna = await bed.login("anna")
    statuses = [r.status for r in await asyncio.gather(*(anna.get("/history") for _ in range(80)))]
    assert statuses.count(200) >= 30 and statuses.count(429) >= 20, "a flood of page loads is turned away, not queued"


# ---- at scale (issue 25): counts stop at a cap, the CSV streams in batches ---------------------


async def test_past_the_count_cap_the_page_says_over_and_asks_for_a_narrower_period(bed, monkeypatch):
    from pbx_app.web.history import query
    monkeypatch.setattr(query, "COUNT_CAP", 3)
    boss = await bed.login("boss")
    body = await rows(boss, "?per_page=2")
    assert (body["total"], body["more"], body["pages"]) == (3, True, 2), "counted up to the cap, paged up to it"
    assert ids(body) == ["c5", "c4"]
    page = await (await boss.get("/history")).text()
    assert "over 3 calls" in page and "choose a shorter period" in page
    assert (await rows(boss, "?employee=103"))["more"] is False


async def test_the_csv_streams_every_row_across_batches_in_the_pages_order(bed, monkeypatch):
    from pbx_app.web.history import service
    monkeypatch.setattr(service, "CSV_FIRST", 2)
    monkeypatch.setattr(service, "CSV_BATCH", 2)
    boss = await bed.login("boss")
    response = await boss.get("/history.csv")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
    text = await response.text()
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["call_id"] for r in table] == ["c5", "c4", "c3", "c2", "c1"], "one header, every row once, newest first"
    assert text.count("call_id") == 1
