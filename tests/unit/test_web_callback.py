"""Issue 18: the callback offer set on the self-service page — written into the sysadmin's YAML in
the shape docs/callback.md's example has, with the page's rules (only one's own or an admin;
version → 409; audit; the loader has the last word), and every input bounded."""

from __future__ import annotations

import pytest

from .test_web_api import WebBed
from .test_web_schedule import put, view

POLICY = """\
# Site policy. Keep extensions quoted.
site:
  ring_time: 30           # seconds
  callback_route: "PJSIP/{number}@trunk"
  on_no_answer:
    action: drop
    drop: busy

employees:
  "101":
    name: Ivan Petrov     # the boss
    ring_time: 20
    on_no_answer:
      action: forward     # recommended
      to: "102"
      announcement: standard
  "102":
    name: Petr Ivanov
  "103":
    name: Anna Smirnova
    mailbox: 103@default

departments:
  sales:
    name: Sales
    members: ["102", "103"]
"""


@pytest.fixture(autouse=True)
def announcements_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PBX_ANNOUNCEMENTS_DIR", str(tmp_path / "sounds"))


@pytest.fixture
async def bed(tmp_path):
    b = WebBed(tmp_path, POLICY)
    yield b
    await b.close()


def callback(then=None, ring_time=20, announcement=None, **numbers) -> dict:
    return {"action": "callback", "ring_time": ring_time, "announcement": announcement or {"kind": "standard"},
            "callback": {"then": then or {"action": "forward", "to": "102"},
                         "attempts": 3, "retry_after": 60, "expires_after": 3600, **numbers}}


async def test_callback_set_on_the_page_is_written_as_a_sysadmin_writes_it(bed):
    ivan = await bed.login("boss")
    response = await put(ivan, "101", "reception", {"on_no_answer": callback(attempts=2, retry_after=120)})
    assert response.status == 200, await response.text()
    assert """\
  "101":
    name: Ivan Petrov     # the boss
    ring_time: 20
    on_no_answer:
      action: callback    # recommended
      then: {action: forward, to: "102"}
      announcement: standard
      attempts: 2
      retry_after: 120
      expires_after: 3600
  "102":
""" in bed.text
    action = bed.policy().employee("101").on_no_answer
    assert (action.kind, action.then.kind, action.then.target) == ("callback", "forward", "102")
    assert (action.callback.attempts, action.callback.retry_after, action.callback.route) == (2, 120, None)
    shown = await view(ivan, "101")
    assert shown["summary"] == "After 20 s: offer a callback, else forward to Petr Ivanov (102)"
    assert shown["setting"]["callback"] == {"then": {"action": "forward", "drop": "busy", "to": "102"},
                                            "attempts": 2, "retry_after": 120, "expires_after": 3600, "route": None}
    [entry] = bed.audit("set_no_answer")
    assert entry["before"]["action"] == "forward" and entry["after"]["callback"]["attempts"] == 2


async def test_busy_and_away_get_a_callback_too_and_leaving_it_drops_its_keys(bed):
    anna = await bed.login("anna")
    offer = callback(then={"action": "voicemail"}, ring_time=None)
    assert (await put(anna, "103", "reception", {"on_busy": offer})).status == 200
    hours = {"hours": None, "absences": [], "on_absent": callback(then={"action": "drop", "drop": "message"})}
    assert (await put(anna, "103", "schedule", hours)).status == 200
    shown = await view(anna, "103")
    assert shown["slots"]["on_busy"]["summary"] == "Offer a callback, else forward to voicemail"
    assert shown["slots"]["on_absent"]["summary"] == "Offer a callback, else play a message, then hang up"
    assert "then: {action: drop, drop: message}" in bed.text
    # Back to a plain forward: nothing of the offer stays behind for the loader to refuse.
    response = await put(anna, "103", "reception", {"on_busy": {"action": "forward", "to": "sales"}})
    assert response.status == 200, await response.text()
    busy = bed.policy().employee("103").on_busy
    assert (busy.kind, busy.target, busy.callback) == ("forward", "sales", None)
    assert bed.text.count("attempts:") == 1, "only the away slot's offer is left"


async def test_a_route_and_digit_timeout_written_by_hand_survive_a_save_from_the_page(tmp_path):
    policy = POLICY.replace('site:\n  ring_time: 30           # seconds\n  callback_route: "PJSIP/{number}@trunk"\n',
                            "site:\n  ring_time: 30\n")
    policy = policy.replace('      action: forward     # recommended\n      to: "102"\n',
                            '      action: callback\n      route: "PJSIP/{number}@other"\n      digit_timeout: 9\n'
                            '      then: {action: forward, to: "102", announcement: none}\n')
    bed = WebBed(tmp_path, policy)
    try:
        boss = await bed.login("boss")
        assert (await view(boss, "101"))["setting"]["callback"]["route"] == "PJSIP/{number}@other"
        response = await put(boss, "101", "reception", {"on_no_answer": callback(expires_after=7200)})
        assert response.status == 200, await response.text()
        action = bed.policy().employee("101").on_no_answer
        assert (action.callback.route, action.callback.digit_timeout, action.callback.expires_after) == (
            "PJSIP/{number}@other", 9, 7200)
        assert action.then.announcement.kind == "none", "the fallback's own announcement stays"
    finally:
        await bed.close()


async def test_without_a_route_anywhere_the_page_says_so_and_nothing_is_saved(tmp_path):
    bed = WebBed(tmp_path, POLICY.replace('  callback_route: "PJSIP/{number}@trunk"\n', ""))
    try:
        before = bed.text
        anna = await bed.login("anna")
        response = await put(anna, "103", "reception", {"on_no_answer": callback()})
        assert response.status == 400
        problem = (await response.json())["problems"]["on_no_answer.callback.route"]
        assert "a callback needs 'route'" in problem and "site.callback_route" in problem
        assert bed.text == before and not bed.audit("set_no_answer")
    finally:
        await bed.close()


@pytest.mark.parametrize("offer, field", [
    (callback(attempts=10**9), "on_no_answer.callback.attempts"),
    (callback(attempts=-1), "on_no_answer.callback.attempts"),
    (callback(attempts=True), "on_no_answer.callback.attempts"),
    (callback(retry_after="60"), "on_no_answer.callback.retry_after"),
    (callback(expires_after=10**12), "on_no_answer.callback.expires_after"),
    (callback(then={"action": "callback"}), "on_no_answer.callback.then"),
    (callback(then={"action": "forward", "to": "999"}), "on_no_answer.callback.then.to"),
    (callback(then={"action": "forward", "to": "101"}), "on_no_answer.callback.then.to"),
    (callback(then={"action": "drop", "drop": "forever"}), "on_no_answer.callback.then.drop"),
    (callback(then="voicemail"), "on_no_answer.callback.then"),
    (callback(announcement={"kind": "none"}), "on_no_answer.announcement"),
    (callback(announcement={"kind": "custom", "file": "../../etc/passwd"}), "on_no_answer.announcement"),
    ({**callback(), "callback": None}, "on_no_answer.callback"),
])
async def test_hostile_callback_input_is_refused_naming_the_field(bed, offer, field):
    before = bed.text
    boss = await bed.login("boss")
    response = await put(boss, "101", "reception", {"on_no_answer": offer})
    assert response.status == 400, await response.text()
    problems = (await response.json())["problems"]
    assert field in problems, problems
    assert bed.text == before and bed.reloads == 0


async def test_unknown_fallback_target_gives_the_message_of_a_forward(bed):
    boss = await bed.login("boss")
    response = await put(boss, "101", "reception", {"on_no_answer": callback(then={"action": "forward", "to": "999"})})
    assert (await response.json())["problems"]["on_no_answer.callback.then.to"] == (
        "'999' is not a colleague or department in the policy")


async def test_someone_elses_callback_is_403_and_nothing_changes(bed):
    before = bed.text
    anna = await bed.login("anna")
    version = (await view(await bed.login("boss"), "101"))["version"]
    response = await put(anna, "101", "reception", {"on_no_answer": callback()}, version)
    assert response.status == 403
    assert bed.text == before and not bed.audit("set_no_answer")


async def test_a_stale_version_is_409(bed):
    anna, boss = await bed.login("anna"), await bed.login("boss")
    seen = (await view(anna, "103"))["version"]
    assert (await put(boss, "103", "reception", {"on_busy": {"action": "voicemail"}})).status == 200
    after_boss = bed.text
    stale = await put(anna, "103", "reception", {"on_no_answer": callback(then={"action": "voicemail"})}, seen)
    assert stale.status == 409 and (await stale.json())["code"] == "stale"
    assert bed.text == after_boss


async def test_the_profile_page_offers_the_callback(bed):
    anna = await bed.login("anna")
    page = await (await anna.get("/employees/103")).text()
    assert 'value="callback"' in page and "Offer a callback" in page
    assert 'id="cb-attempts"' in page and 'max="10"' in page


async def test_the_standard_offer_can_be_previewed_and_differs_from_the_forward_notice(bed):
    anna = await bed.login("anna")
    offer = await anna.get("/api/sounds/standard/ru?sound=callback")
    notice = await anna.get("/api/sounds/standard/ru")
    assert offer.status == notice.status == 200
    offer_bytes, notice_bytes = await offer.read(), await notice.read()
    assert offer_bytes[:4] == b"RIFF" and offer_bytes != notice_bytes


async def test_the_profile_in_russian_offers_and_summarises_the_callback(bed):
    boss = await bed.login("boss")
    assert (await put(boss, "101", "reception", {"on_no_answer": callback()})).status == 200
    html = await (await boss.client.get("/employees/101", headers={"Accept-Language": "ru"})).text()
    assert "Предложить обратный звонок" in html and "Если звонящий не нажал 1" in html
    assert "предложить обратный звонок, иначе перевести на Petr Ivanov (102)" in html
