"""Issue 14 end to end: in a real (headless) Chromium an employee sets a vacation on their
profile, and the next real call through Asterisk is not rung to them — the caller gets their
no-answer action at once; an administrator edits a colleague's working hours and busy setting;
an employee who tries someone else's schedule gets 403 and nothing changes.

Screenshots go to $PBX_SCREENSHOTS (docs/screenshots keeps the ones the README shows), else to
the test's temporary folder."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from aiohttp import web
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from pbx_app.policy import parse_policy
from pbx_app.policy.store import PolicyStore
from pbx_app.users import UserStore
from pbx_app.web import WebConfig, setup

from tests.support.browser import chromium, screenshots
from tests.support.browser import sign_in as browser_sign_in

POLICY = """\
# The test bed's policy: the web page edits this file, as it would the sysadmin's.
site:
  ring_time: 30           # seconds
  timezone: UTC
  on_no_answer:
    action: drop
    drop: busy

employees:
  "101":
    name: Ivan Petrov     # signs in to the page as "ivan"
    endpoint: PJSIP/101
    ring_time: 3
    on_no_answer:
      action: forward
      to: "102"
      announcement: none
  "102":
    name: Petr Ivanov
    endpoint: PJSIP/102
    ring_time: 5

departments:
  sales:
    name: Sales
    members: ["101", "102"]
"""
PASSWORDS = {"ivan": "ivan's long password", "boss": "the boss's long password"}


@pytest.fixture
async def site(tmp_path, monkeypatch):
    """The policy file, its holder (what the Stasis app reads), users ivan (101) and boss
    (admin), and the web page on a free port of 127.0.0.1."""
    monkeypatch.setenv("PBX_ANNOUNCEMENTS_DIR", str(tmp_path / "sounds"))
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(POLICY)
    holder = PolicyStore(policy_path)
    config = WebConfig(policy_path=policy_path, users_path=tmp_path / "users.json", database_url=f"sqlite:///{tmp_path}/journal.db",
                       audit_path=tmp_path / "audit.jsonl", announcements_dir=tmp_path / "sounds")
    users = UserStore(config.database_url)
    users.add("ivan", "employee", "101", PASSWORDS["ivan"])
    users.add("boss", "admin", None, PASSWORDS["boss"])
    webapp = web.Application()
    state = setup(webapp, config, reload=holder.reload)
    runner = web.AppRunner(webapp, access_log=None)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    yield {"url": f"http://127.0.0.1:{runner.addresses[0][1]}", "holder": holder, "policy_path": policy_path,
           "web": state}
    await runner.cleanup()


def sign_in(browser, url: str, name: str) -> WebDriverWait:
    return browser_sign_in(browser, url, name, PASSWORDS[name])


def saved(browser, wait: WebDriverWait, status_id: str) -> str:
    status = browser.find_element(By.ID, status_id)
    wait.until(lambda _: status.text.startswith("Saved") or "error" in status.get_attribute("class"))
    return status.text


def set_vacation_in_browser(url: str, shots) -> dict:
    """What Ivan does: Schedule and absences, Add an absence (vacation, yesterday to tomorrow),
    Save."""
    browser = chromium()
    seen: dict = {}
    try:
        wait = sign_in(browser, url, "ivan")
        browser.find_element(By.CSS_SELECTOR, "[data-tab=schedule]").click()
        seen["now_before"] = browser.find_element(By.ID, "now").text
        seen["always"] = browser.find_element(By.CSS_SELECTOR, "input[name=hours-mode][value=always]").is_selected()
        browser.find_element(By.ID, "add-absence").click()
        row = browser.find_element(By.CSS_SELECTOR, "#absences tr")
        first, last = date.today() - timedelta(days=1), date.today() + timedelta(days=1)
        for cls, day in (("from", first), ("to", last)):  # typing into a date input depends on the locale
            browser.execute_script("arguments[0].value = arguments[1]", row.find_element(By.CLASS_NAME, cls), day.isoformat())
        seen["reason"] = row.find_element(By.CLASS_NAME, "reason").get_attribute("value")
        browser.find_element(By.ID, "save-schedule").click()
        seen["status"] = saved(browser, wait, "status-schedule")
        seen["now_after"] = browser.find_element(By.ID, "now").text
        seen["while_away"] = browser.find_element(By.ID, "summary-on_absent").text
        browser.save_screenshot(str(shots / "profile-vacation.png"))
    finally:
        browser.quit()
    return seen


async def test_employee_sets_a_vacation_and_the_next_call_is_not_rung_to_them(site, start_app, sip, tmp_path):
    app = await start_app(site["holder"])
    seen = await asyncio.to_thread(set_vacation_in_browser, site["url"], screenshots(tmp_path))

    assert seen["now_before"] == "Now: at work, calls ring the phone." and seen["always"]
    assert seen["reason"] == "vacation"
    assert seen["status"] == "Saved. The next call follows the new setting.", seen
    assert seen["now_after"] == "Now: away (absence), the phone is not rung."
    assert seen["while_away"] == "Same as no answer"
    text = site["policy_path"].read_text()
    first, last = date.today() - timedelta(days=1), date.today() + timedelta(days=1)
    assert f"    absences:\n      - {{from: {first}, to: {last}, reason: vacation}}\n" in text, text
    assert "# signs in to the page as \"ivan\"" in text, "the sysadmin's comments stay"
    assert site["holder"]().employee("101").absences, "no restart needed"
    [audit] = [e for e in site["web"].audit.entries() if e["action"] == "set_schedule"]
    assert (audit["user"], audit["employee"]) == ("ivan", "101")

    # The next call: Ivan's phone would answer at once, but it is never rung; Petr answers.
    employee = sip.phone("101", "answer")
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = sip.call("101", talk_ms=500)
    assert await caller.wait(40) == 0
    [ended] = await app.wait_calls_ended()
    assert (ended.result, ended.detail) == ("answered", "answered by 102")
    assert not employee.received("INVITE"), "Ivan, on vacation, never rang"
    assert colleague.received("INVITE")
    employee.stop()


def admin_edits_in_browser(url: str, shots) -> dict:
    """The boss opens Petr's profile: working hours Mon–Thu 22:00–06:00 and Fri 09:00–13:00 plus
    14:00–18:00, a sick leave, and busy calls to voicemail's neighbour: the Sales department."""
    browser = chromium()
    seen: dict = {}
    try:
        wait = sign_in(browser, url, "boss")
        browser.get(url + "/employees/102")
        wait.until(EC.visibility_of_element_located((By.ID, "summary")))
        browser.find_element(By.ID, "configure-on_busy").click()
        dialog = wait.until(EC.visibility_of_element_located((By.ID, "dialog")))
        seen["same_selected"] = dialog.find_element(By.CSS_SELECTOR, "input[name=action][value=same]").is_selected()
        seen["ring_hidden"] = not dialog.find_element(By.ID, "ring-group").is_displayed()
        dialog.find_element(By.CSS_SELECTOR, "input[name=action][value=forward]").click()
        dialog.find_element(By.CSS_SELECTOR, "#to option[value=sales]").click()
        dialog.find_element(By.CSS_SELECTOR, "input[name=ann][value=none]").click()
        dialog.find_element(By.ID, "apply").click()
        wait.until(EC.invisibility_of_element_located((By.ID, "dialog")))
        browser.find_element(By.ID, "save").click()
        seen["reception_status"] = saved(browser, wait, "status")
        seen["busy_summary"] = browser.find_element(By.ID, "summary-on_busy").text

        browser.find_element(By.CSS_SELECTOR, "[data-tab=schedule]").click()
        browser.find_element(By.CSS_SELECTOR, "input[name=hours-mode][value=schedule]").click()
        days = browser.find_elements(By.CSS_SELECTOR, "#week tr")
        for day in days[:4]:  # Mon–Thu: the night shift
            day.find_element(By.CSS_SELECTOR, ".range .from").clear()
            day.find_element(By.CSS_SELECTOR, ".range .from").send_keys("22:00")
            day.find_element(By.CSS_SELECTOR, ".range .to").clear()
            day.find_element(By.CSS_SELECTOR, ".range .to").send_keys("06:00")
        friday = days[4]
        friday.find_element(By.CSS_SELECTOR, ".range .to").clear()
        friday.find_element(By.CSS_SELECTOR, ".range .to").send_keys("13:00")
        friday.find_element(By.CLASS_NAME, "add-range").click()
        second = friday.find_elements(By.CSS_SELECTOR, ".range")[1]
        second.find_element(By.CLASS_NAME, "from").send_keys("14:00")
        second.find_element(By.CLASS_NAME, "to").send_keys("18:00")
        browser.find_element(By.ID, "add-absence").click()
        row = browser.find_element(By.CSS_SELECTOR, "#absences tr")
        for cls, day in (("from", "2027-02-01"), ("to", "2027-02-05")):
            browser.execute_script("arguments[0].value = arguments[1]", row.find_element(By.CLASS_NAME, cls), day)
        row.find_element(By.CSS_SELECTOR, ".reason option[value=sick]").click()
        browser.find_element(By.ID, "add-absence").click()
        other = browser.find_elements(By.CSS_SELECTOR, "#absences tr")[1]
        for cls, day in (("from", "2027-03-10"), ("to", "2027-03-10")):
            browser.execute_script("arguments[0].value = arguments[1]", other.find_element(By.CLASS_NAME, cls), day)
        other.find_element(By.CSS_SELECTOR, ".reason option[value=other]").click()
        other.find_element(By.CLASS_NAME, "other").send_keys("training: day 1\nmailbox: 666")
        browser.find_element(By.ID, "save-schedule").click()
        seen["schedule_status"] = saved(browser, wait, "status-schedule")
        browser.execute_script("window.scrollTo(0, 0)")
        browser.set_window_size(1280, 1300)
        browser.save_screenshot(str(shots / "profile-schedule.png"))
    finally:
        browser.quit()
    return seen


async def test_admin_edits_a_colleagues_schedule_and_busy_setting(site, tmp_path):
    seen = await asyncio.to_thread(admin_edits_in_browser, site["url"], screenshots(tmp_path))
    assert seen["same_selected"] and seen["ring_hidden"], "busy starts as 'same as no answer', no ring time"
    assert seen["reception_status"].startswith("Saved"), seen
    assert seen["busy_summary"] == "Forward to department Sales, no message"
    assert seen["schedule_status"].startswith("Saved"), seen
    text = site["policy_path"].read_text()
    assert '''    schedule:
      mon-thu: "22:00-06:00"
      fri: ["09:00-13:00", "14:00-18:00"]
    absences:
      - {from: 2027-02-01, to: 2027-02-05, reason: sick}
      - {from: 2027-03-10, to: 2027-03-10, reason: "training: day 1mailbox: 666"}
''' in text, text
    petr = parse_policy(text).employee("102")
    assert petr.schedule.describe() == "mon-thu 22:00-06:00; fri 09:00-13:00, 14:00-18:00"
    assert (petr.on_busy.kind, petr.on_busy.target) == ("forward", "sales") and petr.on_no_answer is None
    actions = [(e["action"], e["user"], e["employee"]) for e in site["web"].audit.entries() if e["action"].startswith("set_")]
    assert actions == [("set_busy", "boss", "102"), ("set_schedule", "boss", "102")]


def employee_tries_someone_elses(url: str) -> dict:
    browser = chromium()
    seen: dict = {}
    try:
        sign_in(browser, url, "ivan")
        browser.get(url + "/employees/102")
        seen["page"] = browser.find_element(By.TAG_NAME, "h1").text
        browser.get(url + "/employees/101")
        seen["api"] = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            fetch("/api/employees/102/schedule", {method: "PUT", credentials: "same-origin",
                  headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
                  body: JSON.stringify({version: "x", hours: null, absences: [], on_absent: null})})
              .then(async (r) => done([r.status, (await r.json()).error]));""")
    finally:
        browser.quit()
    return seen


async def test_an_employee_gets_403_for_someone_elses_schedule(site):
    before = site["policy_path"].read_text()
    seen = await asyncio.to_thread(employee_tries_someone_elses, site["url"])
    assert seen["page"] == "Not allowed"
    assert seen["api"][0] == 403 and "only their own" in seen["api"][1]
    assert site["policy_path"].read_text() == before


def configure_slot(browser, wait: WebDriverWait, slot: str, action: str, drop: str) -> None:
    """Configure, choose 'drop the call' with the given ending, Apply."""
    browser.find_element(By.ID, f"configure-{slot}").click()
    dialog = wait.until(EC.visibility_of_element_located((By.ID, "dialog")))
    dialog.find_element(By.CSS_SELECTOR, f"input[name=action][value={action}]").click()
    dialog.find_element(By.CSS_SELECTOR, f"input[name=drop][value={drop}]").click()
    dialog.find_element(By.ID, "apply").click()
    wait.until(EC.invisibility_of_element_located((By.ID, "dialog")))


def set_busy_in_browser(url: str) -> str:
    browser = chromium()
    try:
        wait = sign_in(browser, url, "ivan")
        configure_slot(browser, wait, "on_busy", "drop", "busy")
        browser.find_element(By.ID, "save").click()
        saved(browser, wait, "status")
        return browser.find_element(By.ID, "summary-on_busy").text
    finally:
        browser.quit()


def set_while_away_in_browser(url: str) -> str:
    browser = chromium()
    try:
        wait = sign_in(browser, url, "ivan")
        browser.find_element(By.CSS_SELECTOR, "[data-tab=schedule]").click()
        configure_slot(browser, wait, "on_absent", "drop", "message")
        browser.find_element(By.ID, "add-absence").click()
        row = browser.find_element(By.CSS_SELECTOR, "#absences tr")
        first, last = date.today() - timedelta(days=1), date.today() + timedelta(days=1)
        for cls, day in (("from", first), ("to", last)):
            browser.execute_script("arguments[0].value = arguments[1]", row.find_element(By.CLASS_NAME, cls), day.isoformat())
        browser.find_element(By.ID, "save-schedule").click()
        saved(browser, wait, "status-schedule")
        return browser.find_element(By.ID, "summary-on_absent").text
    finally:
        browser.quit()


async def test_busy_and_while_away_set_on_the_page_decide_real_calls(site, start_app, sip):
    """Without them, both would be Ivan's no-answer action: forward to Petr."""
    app = await start_app(site["holder"])
    colleague = sip.phone("102", "answer", answer_delay_ms=300)

    assert await asyncio.to_thread(set_busy_in_browser, site["url"]) == "Hang up with a busy tone"
    busy_phone = sip.phone("101", "busy")
    caller = sip.call("101", talk_ms=500)
    await caller.wait(30)
    [ended] = await app.wait_calls_ended()
    assert (ended.result, ended.detail) == ("dropped", "busy"), "his own busy action, not the forward"
    assert busy_phone.received("INVITE") and caller.received(486) and not colleague.received("INVITE")
    busy_phone.stop()

    assert await asyncio.to_thread(set_while_away_in_browser, site["url"]) == "Play a message, then hang up"
    employee = sip.phone("101", "answer")
    caller = sip.call("101", talk_ms=500)
    await caller.wait(40)
    ended = (await app.wait_calls_ended(2))[-1]
    assert ended.detail == "message, then hangup", ended
    assert not employee.received("INVITE"), "away: never rung"
    assert caller.received(183) and not caller.received(200) and not colleague.received("INVITE")
    ivan = parse_policy(site["policy_path"].read_text()).employee("101")
    assert (ivan.on_busy.drop, ivan.on_absent.drop, ivan.on_no_answer.target) == ("busy", "message", "102")
    employee.stop()
