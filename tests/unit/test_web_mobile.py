"""The page's mobile setting: the number, "ring my mobile too" (at once / after N s), "forward
to my mobile", the administrator's switch; refused numbers get a message naming the field, and
what is saved is what a sysadmin would write by hand."""

import io
import json
import re

import aiohttp
import pytest
from ruamel.yaml import YAML

from pbx_app.policy import parse_policy
from pbx_app.web.settings.mobile import MobileSetting, apply_mobile, mobile_from_json, mobile_from_policy
from pbx_app.web.settings.no_answer import SettingError, setting_from_json
from tests.unit.test_announcements import tone
from tests.unit.test_web_api import WebBed

POLICY = parse_policy("""site:
  ring_time: 20
  outbound:
    allow: [_79XXXXXXXXX]
    trunk: {endpoint: carrier}
employees:
  "101": {name: Ivan}
  "102": {name: Petr, mobile: "+7 900 765-43-21", external_forwarding: false}
  "103": {name: Anna, mobile: "+7 900 000-00-03", ring_mobile: {after: 5}}
""")


def problems(data, ext="101", admin=False, policy=POLICY):
    with pytest.raises(SettingError) as caught:
        mobile_from_json(data, policy, ext, admin)
    return caught.value.problems


def test_the_employee_enters_a_mobile_and_rings_it_too():
    assert mobile_from_json({"mobile": " 8 (900) 123-45-67 ", "ring": "together"}, POLICY, "101", False) == \
        MobileSetting("8 (900) 123-45-67", "together", 0)
    assert mobile_from_json({"mobile": "+79001234567", "ring": "after", "after": 10}, POLICY, "101", False).after == 10
    assert mobile_from_policy(POLICY.employees["103"]) == MobileSetting("+7 900 000-00-03", "after", 5)


def test_refused_numbers_and_bad_fields_get_a_clear_message():
    assert problems({"mobile": "+44 20 7123 4567", "ring": "together"}) == {
        "mobile": "the office may not call this number; ask an administrator which numbers it may call"}
    assert problems({"mobile": "call me"}) == {"mobile": "a telephone number such as +7 900 123-45-67, or empty"}
    assert problems({"ring": "together"}) == {"ring": "enter your mobile number first"}
    assert problems({"mobile": "+79001234567", "ring": "after", "after": 20}) == {
        "after": "a whole number of seconds, 1..19 (within the ring time of 20 s)"}
    assert problems({"mobile": "+79001234567", "ring": "sometimes"})["ring"] == "choose one of off, together, after"


def test_only_an_administrator_turns_external_forwarding_off_or_on():
    assert problems({"mobile": "+7 900 765-43-21", "ring": "together"}, "102") == {
        "mobile": "an administrator has turned off forwarding your calls outside the office"}
    assert mobile_from_json({"mobile": "+7 900 765-43-21", "external_forwarding": True}, POLICY, "102", False) \
        .external_forwarding is False, "an employee cannot lift the administrator's switch"
    assert mobile_from_json({"mobile": "+7 900 765-43-21", "ring": "together", "external_forwarding": True},
                            POLICY, "102", True).external_forwarding is True


def test_forward_to_my_mobile_is_a_no_answer_target():
    ok = setting_from_json({"action": "forward", "to": "mobile"}, POLICY, "103", lambda name: False)
    assert ok.to == "mobile"
    with pytest.raises(SettingError) as caught:
        setting_from_json({"action": "forward", "to": "mobile"}, POLICY, "101", lambda name: False)
    assert caught.value.problems == {"to": "enter your mobile number first"}
    with pytest.raises(SettingError) as caught:
        setting_from_json({"action": "forward", "to": "mobile"}, POLICY, "102", lambda name: False)
    assert "an administrator has turned off" in caught.value.problems["to"]


def written(before: str, setting: MobileSetting) -> str:
    yaml = YAML()
    yaml.preserve_quotes = True
    doc = yaml.load(before)
    apply_mobile(doc["employees"]["101"], setting)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def test_it_is_written_as_a_sysadmin_would():
    before = 'employees:\n  "101":\n    name: Ivan   # the boss\n'
    after = written(before, MobileSetting("+7 900 123-45-67", "after", 10, external_forwarding=False))
    assert after == ('employees:\n  "101":\n    name: Ivan   # the boss\n    mobile: "+7 900 123-45-67"\n'
                     '    ring_mobile: {after: 10}\n    external_forwarding: false\n')
    assert parse_policy(after).employees["101"].ring_mobile.after == 10
    together = written(after, MobileSetting("+7 900 123-45-67", "together"))
    assert together == 'employees:\n  "101":\n    name: Ivan   # the boss\n    mobile: "+7 900 123-45-67"\n    ring_mobile: true\n'
    assert written(together, MobileSetting()) == before
    assert written(together, MobileSetting("+7 900 123-45-67", "together")) == together, "unchanged: same bytes"


# ---- on the page ---------------------------------------------------------------------------------

PAGE_POLICY = """site:
  ring_time: 20
  outbound:
    allow: [_79XXXXXXXXX]
    trunk: {endpoint: carrier}
employees:
  "101":
    name: Ivan Petrov
  "102":
    name: Petr Ivanov
  "103":
    name: Anna Smirnova   # sales
"""


@pytest.fixture
async def bed(tmp_path, monkeypatch):
    monkeypatch.setenv("PBX_ANNOUNCEMENTS_DIR", str(tmp_path / "sounds"))
    b = WebBed(tmp_path, PAGE_POLICY)
    yield b
    await b.close()


async def save_mobile(browser, ext, **body):
    version = (await browser.setting(ext))["version"]
    return await browser.put(f"/api/employees/{ext}/mobile", {"version": version, **body})


async def test_an_employee_enters_their_mobile_rings_it_too_and_forwards_to_it(bed):
    anna = await bed.login("anna")
    response = await save_mobile(anna, "103", mobile="8 (900) 123-45-67", ring="after", after=10)
    assert response.status == 200, await response.text()
    assert (await response.json())["mobile"] == {"mobile": "8 (900) 123-45-67", "ring": "after", "after": 10,
                                                 "external_forwarding": True}
    anna_now = bed.policy().employee("103")
    assert (anna_now.mobile, anna_now.ring_mobile.after) == ("8 (900) 123-45-67", 10)
    assert '    name: Anna Smirnova   # sales\n    mobile: "8 (900) 123-45-67"\n    ring_mobile: {after: 10}\n' in bed.text
    [entry] = bed.audit("set_mobile")
    assert entry["user"] == "anna" and entry["after"]["ring"] == "after"
    response = await anna.save("103", {"action": "forward", "to": "mobile", "announcement": {"kind": "standard"}})
    assert response.status == 200, await response.text()
    assert (await response.json())["summary"] == "After 20 s: forward to my mobile, standard message"
    assert bed.policy().employee("103").on_no_answer.target == "mobile"


async def test_a_refused_number_gets_a_clear_message_and_nothing_is_saved(bed):
    anna = await bed.login("anna")
    before = bed.text
    response = await save_mobile(anna, "103", mobile="+44 20 7123 4567", ring="together")
    assert response.status == 400
    assert (await response.json())["problems"] == {
        "mobile": "the office may not call this number; ask an administrator which numbers it may call"}
    response = await anna.save("103", {"action": "forward", "to": "mobile", "announcement": {"kind": "standard"}})
    assert response.status == 400 and (await response.json())["problems"] == {"to": "enter your mobile number first"}
    assert bed.text == before and not bed.audit("set_mobile")


async def test_only_an_administrator_forbids_external_forwarding(bed):
    anna, boss = await bed.login("anna"), await bed.login("boss")
    assert (await save_mobile(anna, "103", mobile="+79001234567", external_forwarding=False)).status == 200
    assert bed.policy().employee("103").external_forwarding, "an employee's own word does not count"
    response = await save_mobile(boss, "103", mobile="+79001234567", external_forwarding=False)
    assert response.status == 200, await response.text()
    assert bed.policy().employee("103").external_forwarding is False
    response = await save_mobile(anna, "103", mobile="+79001234567", ring="together")
    assert (await response.json())["problems"] == {
        "mobile": "an administrator has turned off forwarding your calls outside the office"}
    page = await (await boss.get("/employees/103")).text()
    assert 'id="external-forwarding"' in page
    assert 'id="external-forwarding"' not in await (await anna.get("/employees/103")).text()


async def test_the_page_says_it_in_russian(bed):
    anna = await bed.login("anna")
    html = await (await anna.client.get("/employees/103", headers={"Accept-Language": "ru"})).text()
    assert "Мобильный" in html and "Звонить и на мобильный, сразу" in html and "Мой мобильный" in html
    # the refusals app.js shows, in the reader's language (window.PBX_T)
    texts = json.loads(re.search(r'<script type="application/json" id="pbx-t">(.*?)</script>', html, re.S).group(1))
    assert texts["the office may not call this number; ask an administrator which numbers it may call"].startswith(
        "офису нельзя звонить на этот номер")


# ---- the spoken name whoever answers hears ---------------------------------------------------


async def test_saving_a_mobile_makes_the_spoken_name_and_the_employee_may_record_their_own(bed, tmp_path):
    anna, petr = await bed.login("anna"), await bed.login("petr")
    page = await (await anna.get("/employees/103")).text()
    assert 'id="name-upload"' in page and 'id="name-tts"' in page, "the page offers both ways"
    assert (await (await anna.get("/api/names/103")).json())["kind"] == ""
    assert (await save_mobile(anna, "103", mobile="+79001234567", ring="together")).status == 200
    made = await (await anna.get("/api/names/103")).json()
    assert made == {"extension": "103", "kind": "made", "said": "Anna Smirnova", "url": "/api/names/103/sound"}
    sound = await anna.get("/api/names/103/sound")
    assert sound.status == 200 and (await sound.read())[:4] == b"RIFF"
    assert (bed.sounds / "names/103.wav").is_file(), "where Asterisk reads it (pbx-external-whose)"

    recording = aiohttp.FormData()
    recording.add_field("file", tone(tmp_path / "me.wav", seconds=1).read_bytes(), filename="me.wav")
    response = await anna.post("/api/names/103", data=recording)
    assert response.status == 200, await response.text()
    assert (await response.json())["kind"] == "recorded"
    assert bed.audit("name_upload")[0]["extension"] == "103"
    assert (await save_mobile(anna, "103", mobile="+79001234567", ring="after", after=5)).status == 200
    assert (await (await anna.get("/api/names/103")).json())["kind"] == "recorded", "a recording is kept"

    assert (await petr.post("/api/names/103/tts")).status == 403, "only their own, or an administrator"
    assert (await petr.get("/api/names/103/sound")).status == 403
    response = await anna.client.delete("/api/names/103", headers={"X-CSRF-Token": anna.csrf})
    assert response.status == 200 and (await response.json())["kind"] == ""
    boss = await bed.login("boss")
    response = await boss.post("/api/names/103/tts")
    assert response.status == 200 and (await response.json())["said"] == "Anna Smirnova"
    assert (await boss.post("/api/names/999/tts")).status == 404


async def test_the_name_is_made_when_a_forward_to_the_mobile_is_saved_not_before(bed):
    anna = await bed.login("anna")
    assert (await save_mobile(anna, "103", mobile="+79001234567", ring="off")).status == 200
    assert not (bed.sounds / "names/103.wav").exists(), "nobody hears it yet: nothing made"
    response = await anna.save("103", {"action": "forward", "to": "mobile", "announcement": {"kind": "standard"}})
    assert response.status == 200, await response.text()
    assert (await (await anna.get("/api/names/103")).json())["said"] == "Anna Smirnova"
