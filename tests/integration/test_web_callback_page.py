"""Issue 18 in a real (headless) Chromium: an employee picks "Offer a callback" in the Configure
dialog, with a fallback forward and fewer attempts; an out-of-range number is refused in the
dialog; Save writes the YAML a sysadmin writes by hand. No calls: Asterisk is not needed."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from pbx_app.policy.store import PolicyStore
from pbx_app.users import UserStore
from pbx_app.web import WebConfig, setup

from tests.support.browser import chromium, screenshots

from .test_web_schedule_calls import PASSWORDS, saved, sign_in

POLICY = """\
site:
  ring_time: 30
  callback_route: "PJSIP/{number}@trunk"   # the outgoing trunk

employees:
  "101":
    name: Ivan Petrov     # signs in to the page as "ivan"
    ring_time: 15
    on_no_answer:
      action: voicemail
  "102":
    name: Petr Ivanov
"""


@pytest.fixture
async def site(tmp_path, monkeypatch):
    monkeypatch.setenv("PBX_ANNOUNCEMENTS_DIR", str(tmp_path / "sounds"))
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(POLICY)
    config = WebConfig(policy_path=policy_path, users_path=tmp_path / "users.json", database_url=f"sqlite:///{tmp_path}/journal.db",
                       audit_path=tmp_path / "audit.jsonl", announcements_dir=tmp_path / "sounds")
    UserStore(config.database_url).add("ivan", "employee", "101", PASSWORDS["ivan"])
    webapp = web.Application()
    setup(webapp, config, reload=PolicyStore(policy_path).reload)
    runner = web.AppRunner(webapp, access_log=None)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    yield {"url": f"http://127.0.0.1:{runner.addresses[0][1]}", "policy_path": policy_path}
    await runner.cleanup()


def offer_callback_in_browser(url: str, shots) -> dict:
    browser = chromium()
    seen: dict = {}
    try:
        wait = sign_in(browser, url, "ivan")
        browser.find_element(By.ID, "configure").click()
        dialog = wait.until(EC.visibility_of_element_located((By.ID, "dialog")))
        dialog.find_element(By.CSS_SELECTOR, "input[name=action][value=callback]").click()
        seen["route"] = dialog.find_element(By.ID, "cb-route").text
        seen["none_hidden"] = not dialog.find_element(By.CSS_SELECTOR, "input[name=ann][value=none]").is_displayed()
        dialog.find_element(By.CSS_SELECTOR, "input[name=then][value=forward]").click()
        dialog.find_element(By.CSS_SELECTOR, "#then-to option[value='102']").click()
        attempts = dialog.find_element(By.ID, "cb-attempts")
        attempts.clear()
        attempts.send_keys("11")
        dialog.find_element(By.ID, "apply").click()
        seen["refused"] = dialog.find_element(By.ID, "dialog-error").text
        attempts.clear()
        attempts.send_keys("2")
        browser.save_screenshot(str(shots / "profile-callback-dialog.png"))
        dialog.find_element(By.ID, "apply").click()
        wait.until(EC.invisibility_of_element_located((By.ID, "dialog")))
        seen["pending_summary"] = browser.find_element(By.ID, "summary").text
        browser.find_element(By.ID, "save").click()
        seen["status"] = saved(browser, wait, "status")
        seen["summary"] = browser.find_element(By.ID, "summary").text
    finally:
        browser.quit()
    return seen


async def test_employee_offers_a_callback_from_the_dialog(site, tmp_path):
    seen = await asyncio.to_thread(offer_callback_in_browser, site["url"], screenshots(tmp_path))
    assert seen["route"] == "Clients are called back through PJSIP/{number}@trunk."
    assert seen["none_hidden"], "an offer is never silent"
    assert seen["refused"] == "Attempts: a whole number from 1 to 10.", seen
    assert seen["status"] == "Saved. The next call follows the new setting.", seen
    assert seen["pending_summary"] == seen["summary"] == "After 15 s: offer a callback, else forward to Petr Ivanov (102)"
    assert """\
    on_no_answer:
      action: callback
      then: {action: forward, to: "102"}
      announcement: standard
      attempts: 2
      retry_after: 60
      expires_after: 3600
""" in site["policy_path"].read_text()
