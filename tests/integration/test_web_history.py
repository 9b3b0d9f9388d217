"""Issue 14 end to end: real calls through Asterisk — forwarded and answered, forwarded and
missed, voicemail with a message — then an employee opens History in a real (headless)
Chromium and sees the three cases as the history rules say, opens what happened leg by leg and
plays the message; a Chromium with a Russian Accept-Language signs in and gets the page in
Russian.

Screenshots go to $PBX_SCREENSHOTS (docs/screenshots keeps the ones the README shows), else
to the test's temporary folder."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from aiohttp import web
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from pbx_app.policy.store import PolicyStore
from pbx_app.users import UserStore
from pbx_app.web import WebConfig, setup

from tests.support.browser import chromium, screenshots, sign_in

from .conftest import asterisk_root
from .test_history_calls import journaled_app  # noqa: F401 (a fixture: the app with a real journal)

FORWARD = """\
site:
  timezone: Europe/Moscow
employees:
  "101": {name: Ivan Petrov, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: none}}
  "102": {name: Petr Ivanov, ring_time: 3}
"""
VOICEMAIL = FORWARD.replace('{action: forward, to: "102", announcement: none}', '{action: voicemail}')
PASSWORD = "ivan's long password"
VOICEMAIL_DIR = asterisk_root() / "var/spool/asterisk/voicemail"


@pytest.fixture
async def site(tmp_path, journaled_app):  # noqa: F811
    """The policy file and its holder, the app journaling to SQLite, and the page reading that
    journal and the test bed's voicemail spool."""
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(FORWARD)
    holder = PolicyStore(policy_path)
    app = await journaled_app(holder)
    config = WebConfig(policy_path=policy_path, users_path=tmp_path / "users.json", audit_path=tmp_path / "audit.jsonl",
                       announcements_dir=tmp_path / "sounds", database_url=app.store_url, voicemail_dir=VOICEMAIL_DIR)
    UserStore(config.database_url).add("ivan", "employee", "101", PASSWORD)
    webapp = web.Application()
    setup(webapp, config)
    runner = web.AppRunner(webapp, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield {"url": f"http://127.0.0.1:{runner.addresses[0][1]}", "app": app, "holder": holder, "policy_path": policy_path}
    await runner.cleanup()


def read_rows(browser: webdriver.Chrome) -> dict[str, dict]:
    rows = {}
    for tr in browser.find_elements(By.CSS_SELECTOR, "#calls tbody tr"):
        cell = lambda css: tr.find_element(By.CSS_SELECTOR, css).text  # noqa: E731
        extra = lambda css: (tr.find_elements(By.CSS_SELECTOR, css) or [None])[0]  # noqa: E731
        rows[tr.get_attribute("data-call-id")] = {
            "employee": cell(".employee-name"),
            "for": extra(".for-whom").text if extra(".for-whom") else "",
            "label": extra(".label").text if extra(".label") else "",
            "status": cell(".status"),
            "what": cell(".what summary"),
            "audio": extra("audio"),
        }
    return rows


def in_english(url: str, calls: list[str], shots: Path) -> dict:
    browser = chromium("en")
    seen: dict = {}
    try:
        wait = sign_in(browser, url, "ivan", PASSWORD)
        browser.find_element(By.ID, "nav-history").click()
        wait.until(EC.presence_of_element_located((By.ID, "calls")))
        rows = read_rows(browser)
        seen["rows"] = {c: {k: v for k, v in rows[c].items() if k != "audio"} for c in calls}
        seen["totals"] = browser.find_element(By.ID, "totals").text
        # What happened, leg by leg: the row opens.
        row = browser.find_element(By.CSS_SELECTOR, f'tr[data-call-id="{calls[1]}"]')
        row.find_element(By.CSS_SELECTOR, "summary").click()
        seen["legs"] = [li.text for li in row.find_elements(By.CSS_SELECTOR, ".legs li")]
        # The message plays: the player loads it, and its address answers 200 audio/wav.
        audio = rows[calls[2]]["audio"]
        seen["other_audio"] = [c for c in calls[:2] if rows[c]["audio"] is not None]
        seen["played"] = browser.execute_async_script("""
            const audio = arguments[0], done = arguments[arguments.length - 1];
            audio.addEventListener("playing", () => done({duration: audio.duration, src: audio.currentSrc}));
            audio.addEventListener("error", () => done({error: audio.error && audio.error.code}));
            audio.play().catch((e) => done({error: String(e)}));""", audio)
        seen["fetched"] = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            fetch(arguments[0]).then((r) => done({status: r.status, type: r.headers.get("Content-Type")}),
                                     (e) => done({error: String(e)}));""", seen["played"].get("src", ""))
        browser.save_screenshot(str(shots / "history-en.png"))
        browser.find_element(By.CSS_SELECTOR, "input[name=missed]").click()  # applies at once
        wait.until(EC.url_contains("missed=1"))
        seen["missed_only"] = sorted(read_rows(browser))
    finally:
        browser.quit()
    return seen


def in_russian(url: str, calls: list[str], shots: Path) -> dict:
    browser = chromium("ru")
    seen: dict = {}
    try:
        browser.get(url + "/login")
        seen["login"] = browser.find_element(By.TAG_NAME, "h1").text
        wait = sign_in(browser, url, "ivan", PASSWORD)
        seen["profile_nav"] = [a.text for a in browser.find_elements(By.CSS_SELECTOR, ".topnav a")]
        seen["profile_lang"] = browser.find_element(By.TAG_NAME, "html").get_attribute("lang")
        seen["profile_summary"] = browser.find_element(By.ID, "summary").text
        seen["profile_labels"] = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#profile .setting-label")
                                  if e.is_displayed()]
        browser.save_screenshot(str(shots / "profile-ru.png"))
        browser.get(url + "/history")
        wait.until(EC.presence_of_element_located((By.ID, "calls")))
        seen["title"] = browser.find_element(By.TAG_NAME, "h1").text
        rows = read_rows(browser)
        seen["rows"] = {c: {k: v for k, v in rows[c].items() if k != "audio"} for c in calls}
        seen["totals"] = browser.find_element(By.ID, "totals").text
        browser.save_screenshot(str(shots / "history-ru.png"))
        # The switch in the header: English from now on, for this user.
        browser.find_element(By.CSS_SELECTOR, ".lang-switch button[value=en]").click()
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Call history"))
        seen["switched"] = browser.find_element(By.TAG_NAME, "h1").text
    finally:
        browser.quit()
    return seen


@pytest.mark.timeout(240)
async def test_an_employee_sees_the_three_cases_plays_the_message_and_reads_it_in_russian(site, sip, tmp_path):
    shutil.rmtree(VOICEMAIL_DIR / "default/101", ignore_errors=True)
    app = site["app"]
    calls: list[str] = []

    async def ended(count: int) -> None:
        await app.wait_calls_ended(count, 45)
        assert await app.spooled.wait_shipped(10)
        calls.append(app.ended()[-1].call_id)
        await sip.finish()

    # 1. Ivan does not answer, the call is forwarded to Petr, Petr answers.
    sip.phone("101", "ring_forever")
    sip.phone("102", "answer", answer_delay_ms=300)
    assert await sip.call("101", talk_ms=1000).wait(30) == 0
    await ended(1)
    # 2. Ivan does not answer, forwarded to Petr, Petr does not answer either.
    sip.phone("101", "ring_forever")
    sip.phone("102", "ring_forever")
    await sip.call("101", caller="79005550002").wait(30)
    await ended(2)
    # 3. Ivan now sends unanswered calls to his mailbox; the caller leaves a message.
    site["policy_path"].write_text(VOICEMAIL)
    assert site["holder"].reload()
    sip.phone("101", "ring_forever")
    await sip.call("101", caller="79005550003", audio_after_ms=13000, talk_ms=6000).wait(45)
    await ended(3)

    shots = screenshots(tmp_path)
    en = await asyncio.to_thread(in_english, site["url"], calls, shots)
    answered, missed, voicemail = (en["rows"][c] for c in calls)
    assert answered == {"employee": "102 Petr Ivanov", "for": "for 101 Ivan Petrov", "label": "", "status": "Answered",
                        "what": "no answer; forwarded to 102, answered by 102"}, "the colleague's call, for Ivan"
    assert missed == {"employee": "101 Ivan Petrov", "for": "", "label": "", "status": "Missed",
                      "what": "no answer; forwarded to 102, not answered (no answer); busy tone"}, "missed by Ivan"
    assert voicemail == {"employee": "101 Ivan Petrov", "for": "", "label": "Voicemail", "status": "Missed",
                         "what": "no answer; voicemail, message left"}, "missed, with the Voicemail label"
    assert en["totals"] == "3 calls, 2 missed"
    assert [leg.split(" ", 1)[1] for leg in en["legs"]] == [
        "no answer", "forwarded to 102, not answered (no answer)", "busy tone"], "leg by leg, each with its time"
    assert en["other_audio"] == [], "only the call with a message has a player"
    assert en["played"].get("duration", 0) >= 3, en["played"]  # the caller spoke 4.7 s after the beep
    assert en["fetched"] == {"status": 200, "type": "audio/wav"}
    assert en["missed_only"] == sorted(calls[1:])

    ru = await asyncio.to_thread(in_russian, site["url"], calls, shots)
    assert ru["login"] == "Вход" and ru["profile_lang"] == "ru" and ru["profile_nav"] == ["Настройки", "История"]
    assert ru["profile_summary"] == "Через 2 с: перевести на голосовую почту", "the profile in Russian too"
    assert ru["profile_labels"][:3] == ["Если сотрудник не отвечает", "Если линия занята", "Если телефон недоступен"]
    assert ru["title"] == "История звонков" and ru["totals"] == "3 звонка, 2 пропущенных"
    answered, missed, voicemail = (ru["rows"][c] for c in calls)
    assert (answered["for"], answered["status"]) == ("для 101 Ivan Petrov", "Отвечен")
    assert answered["what"] == "нет ответа; переведён на 102, ответил 102"
    assert (missed["status"], missed["what"]) == ("Пропущен", "нет ответа; переведён на 102, не отвечен (нет ответа); сигнал «занято»")
    assert (voicemail["label"], voicemail["what"]) == ("Голосовая почта", "нет ответа; голосовая почта, оставлено сообщение")
    assert ru["switched"] == "Call history"
