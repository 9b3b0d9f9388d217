"""Issue 6 end to end: an employee signs in to the web page in a real (headless) Chromium, sets
"forward to a colleague, with my own recording" and saves — and the next real call through
Asterisk follows the new setting and plays that recording before the forward.

Screenshots of the page go to $PBX_SCREENSHOTS (docs/ keeps the ones the README shows), else to
the test's temporary folder."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from aiohttp import web
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from pbx_app.history.events import LegEnded, LegStarted
from pbx_app.policy import parse_policy
from pbx_app.policy.store import PolicyStore
from pbx_app.sounds import CUSTOM_DIR
from pbx_app.users import UserStore
from pbx_app.web import WebConfig, setup

from tests.support.browser import chromium, screenshots, sign_in

from .conftest import testbed as run_testbed

POLICY = """\
# The test bed's policy: the web page edits this file, as it would the sysadmin's.
site:
  ring_time: 30           # seconds
  on_no_answer:
    action: drop
    drop: busy

employees:
  "101":
    name: Ivan Petrov     # signs in to the page as "ivan"
    endpoint: PJSIP/101
    ring_time: 3
  "102":
    name: Petr Ivanov
    endpoint: PJSIP/102
    ring_time: 5
"""
PASSWORD = "ivan's long password"
RECORDING_SECONDS = 1.5  # the standard message is ~4.6 s: the call proves which one played
@pytest.fixture
def sounds_dir():
    """The folder the app writes announcements to: inside the test bed's root, where Asterisk
    reads it as /var/lib/pbx_app/sounds. Files this test makes are removed afterwards."""
    folder = Path(run_testbed("root").stdout.strip() + CUSTOM_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.iterdir())
    yield folder
    for path in set(folder.iterdir()) - before:
        path.unlink()


@pytest.fixture
async def site(tmp_path, sounds_dir, asterisk, monkeypatch):
    """The policy file, its holder (what the Stasis app reads), one employee user and the web
    page on a free port of 127.0.0.1."""
    # As in production: one PBX_ANNOUNCEMENTS_DIR for the web (writes) and the policy loader
    # (checks every announcement file exists before a policy goes into force).
    monkeypatch.setenv("PBX_ANNOUNCEMENTS_DIR", str(sounds_dir))
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(POLICY)
    holder = PolicyStore(policy_path)
    config = WebConfig(policy_path=policy_path, users_path=tmp_path / "users.json", database_url=f"sqlite:///{tmp_path}/journal.db",
                       audit_path=tmp_path / "audit.jsonl", announcements_dir=sounds_dir)
    UserStore(config.database_url).add("ivan", "employee", "101", PASSWORD)
    webapp = web.Application()
    state = setup(webapp, config, reload=holder.reload)
    runner = web.AppRunner(webapp, access_log=None)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    port = runner.addresses[0][1]
    yield {"url": f"http://127.0.0.1:{port}", "holder": holder, "policy_path": policy_path, "web": state}
    await runner.cleanup()


def configure_in_browser(url: str, recording: Path, shots: Path) -> dict:
    """What a person does: sign in, Configure, forward to Petr with my recording, Apply, Save."""
    browser = chromium()
    seen: dict = {}
    try:
        browser.get(url + "/")
        WebDriverWait(browser, 20).until(EC.title_contains("Sign in"))
        wait = sign_in(browser, url, "ivan", PASSWORD)
        seen["first_summary"] = browser.find_element(By.ID, "summary").text
        seen["badge"] = browser.find_element(By.ID, "inherited").is_displayed()
        browser.save_screenshot(str(shots / "web-profile.png"))

        browser.find_element(By.ID, "configure").click()
        dialog = wait.until(EC.visibility_of_element_located((By.ID, "dialog")))
        dialog.find_element(By.CSS_SELECTOR, "input[name=action][value=forward]").click()
        target = Select(dialog.find_element(By.ID, "to"))
        seen["targets"] = [o.text for o in target.options if o.is_enabled() and o.get_attribute("hidden") is None]
        target.select_by_value("102")
        ring = dialog.find_element(By.ID, "ring_time")
        ring.clear()
        ring.send_keys("3")
        dialog.find_element(By.CSS_SELECTOR, "input[name=ann][value=custom]").click()
        dialog.find_element(By.ID, "upload").send_keys(str(recording))
        info = wait.until(EC.visibility_of_element_located((By.ID, "custom-info")))
        wait.until(lambda _: info.text.startswith("uploaded"))
        seen["upload_info"] = info.text
        seen["playable_seconds"] = browser.execute_async_script("""
            const done = arguments[arguments.length - 1], audio = document.getElementById("custom-audio");
            audio.addEventListener("loadedmetadata", () => done(audio.duration));
            audio.addEventListener("error", () => done(-1));
            audio.preload = "metadata"; audio.load();""")
        browser.save_screenshot(str(shots / "web-configure.png"))
        dialog.find_element(By.ID, "apply").click()
        wait.until(EC.invisibility_of_element_located((By.ID, "dialog")))
        seen["applied_summary"] = browser.find_element(By.ID, "summary").text
        seen["unsaved"] = browser.find_element(By.ID, "unsaved").is_displayed()

        browser.find_element(By.ID, "save").click()
        status = browser.find_element(By.ID, "status")
        wait.until(lambda _: status.text.startswith("Saved") or "error" in status.get_attribute("class"))
        seen["status"] = status.text
        seen["saved_summary"] = browser.find_element(By.ID, "summary").text
        browser.save_screenshot(str(shots / "web-saved.png"))

        browser.get(url + "/employees/102")
        seen["other_profile"] = browser.find_element(By.TAG_NAME, "h1").text
    finally:
        browser.quit()
    return seen


async def test_employee_sets_forward_with_own_recording_and_the_next_call_follows_it(site, start_app, sip, tmp_path):
    recording = tmp_path / "my-greeting.wav"  # 44.1 kHz stereo: the app converts it for Asterisk
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "2", "-b", "16", str(recording), "synth",
                    str(RECORDING_SECONDS), "sine", "440"], check=True)
    app = await start_app(site["holder"])  # the running app reads the policy through its holder

    seen = await asyncio.to_thread(configure_in_browser, site["url"], recording, screenshots(tmp_path))

    # What Ivan saw on the page.
    assert seen["first_summary"] == "After 3 s: hang up with a busy tone" and seen["badge"], "a new user's view"
    assert seen["targets"] == ["Petr Ivanov (102)"], "the real colleagues from the policy"
    assert seen["upload_info"] == f"uploaded, {RECORDING_SECONDS} s"
    assert abs(seen["playable_seconds"] - RECORDING_SECONDS) < 0.1, "the page plays the converted file back"
    assert seen["unsaved"] and seen["applied_summary"] == "After 3 s: forward to Petr Ivanov (102), custom recording"
    assert seen["status"] == "Saved. The next call follows the new setting.", seen
    assert seen["saved_summary"] == seen["applied_summary"]
    assert seen["other_profile"] == "Not allowed", "an employee cannot open a colleague's setting"

    # The sysadmin's file holds it (comments kept), the audit log says who, the app reloaded.
    text = site["policy_path"].read_text()
    assert "# signs in to the page as \"ivan\"" in text and text.startswith("# The test bed's policy")
    own = parse_policy(text).employee("101").on_no_answer
    assert (own.kind, own.target, own.announcement.kind) == ("forward", "102", "custom")
    name = own.announcement.file
    assert site["holder"]().employee("101").on_no_answer.announcement.file == name, "no restart needed"
    [audit] = [e for e in site["web"].audit.entries() if e["action"] == "set_no_answer"]
    assert (audit["user"], audit["employee"], audit["after"]["announcement"]["file"]) == ("ivan", "101", name)

    # The next call: Ivan does not answer, the caller hears Ivan's recording, Petr answers.
    employee = sip.phone("101", "ring_forever")
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = sip.call("101", talk_ms=1000)
    assert await caller.wait(40) == 0
    [ended] = await app.wait_calls_ended()
    assert (ended.result, ended.detail) == ("answered", "answered by 102")
    [cancel] = employee.received("CANCEL")
    [invite] = colleague.received("INVITE")
    assert caller.received(183) and caller.received(200), "early media, then answered by Petr"
    started = {e.leg: e for e in app.journal.events if isinstance(e, LegStarted)}
    [announced] = [e for e in app.journal.events if isinstance(e, LegEnded) and started[e.leg].role == "announcement"]
    assert announced.cause == f"sound:{CUSTOM_DIR}/{name[:-4]}", "Ivan's own recording, by its generated name"
    assert announced.outcome == "played", "Asterisk found the file and played it to its end"
    played = (announced.at - started[announced.leg].at).total_seconds()
    assert RECORDING_SECONDS - 0.3 <= played <= RECORDING_SECONDS + 1.0, f"played {played:.2f} s"
    assert (invite.at - cancel.at).total_seconds() < 3.5, "not the 4.6 s standard message"
