"""Issue 14: schedules, absences, busy/unreachable and notices edited on the profile — written
into the sysadmin's YAML in the shape they write by hand, with the no-answer setting's rules
(only one's own or an admin; version → 409; audit; the loader has the last word), and every
input bounded against a hostile signed-in user."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from pbx_app.policy import parse_policy
from pbx_app.routing.availability import availability

from .test_web_api import WebBed

POLICY = """\
# Site policy. Keep extensions quoted.
site:
  ring_time: 30           # seconds
  timezone: Europe/Moscow
  on_no_answer:
    action: drop
    drop: busy

employees:
  "101":
    name: Ivan Petrov     # the boss
    ring_time: 20
    schedule:             # office hours
      mon-fri: "09:00-18:00"
    absences:
      - {from: 2026-12-28, to: 2027-01-08, reason: vacation}   # new year
      - {from: "2026-12-03 14:00", to: "2026-12-03 18:00", reason: doctor}
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
WEEK = [["09:00-18:00"]] * 5 + [[], []]


@pytest.fixture(autouse=True)
def announcements_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PBX_ANNOUNCEMENTS_DIR", str(tmp_path / "sounds"))


@pytest.fixture
async def bed(tmp_path):
    b = WebBed(tmp_path, POLICY)
    yield b
    await b.close()


async def view(browser, ext: str) -> dict:
    response = await browser.get(f"/api/employees/{ext}")
    assert response.status == 200, await response.text()
    return await response.json()


async def put(browser, ext: str, what: str, body: dict, version: str | None = None):
    if version is None:
        version = (await view(browser, ext))["version"]
    return await browser.put(f"/api/employees/{ext}/{what}", {"version": version, **body})


def schedule(hours=None, absences=(), on_absent=None) -> dict:
    return {"hours": hours, "absences": list(absences), "on_absent": on_absent}


# ---- schedule and absences ----------------------------------------------------------------------


async def test_employee_sets_hours_past_midnight_and_a_vacation_in_the_sysadmins_shape(bed):
    anna = await bed.login("anna")
    days = [["09:00-13:00", "14:00-18:00"]] * 4 + [["22:00-06:00"], [], []]
    response = await put(anna, "103", "schedule", schedule(
        {"timezone": None, "days": days},
        [{"from": "2026-12-20", "to": "2027-01-10", "reason": "vacation"}],
        {"action": "voicemail"}))
    assert response.status == 200, await response.text()
    text = bed.text
    assert '''    schedule:
      mon-thu: ["09:00-13:00", "14:00-18:00"]
      fri: "22:00-06:00"
    absences:
      - {from: 2026-12-20, to: 2027-01-10, reason: vacation}
    on_absent:
      action: voicemail
''' in text, text
    assert "    mailbox: 103@default\n    schedule:" in text and "      action: voicemail\n\ndepartments:" in text, \
        "the blank line before departments stays there"
    anna_ = bed.policy().employee("103")
    assert anna_.absences[0].start == date(2026, 12, 20) and anna_.on_absent.kind == "voicemail"
    # Friday 23:00 she works, Saturday 05:00 too (past midnight), Saturday 07:00 not (UTC+3).
    at = lambda d, h: datetime(2026, 11, d, h - 3, 0)  # noqa: E731 — Moscow wall clock to UTC
    assert availability(anna_, at(27, 23), "Europe/Moscow").working
    assert availability(anna_, at(28, 5), "Europe/Moscow").working
    assert not availability(anna_, at(28, 7), "Europe/Moscow").working
    assert not availability(anna_, datetime(2026, 12, 21, 9), "Europe/Moscow").working, "on vacation"
    [entry] = bed.audit("set_schedule")
    assert entry["user"] == "anna" and entry["before"]["hours"] is None
    assert entry["after"]["absences"] == [{"from": "2026-12-20", "to": "2027-01-10", "reason": "vacation"}]
    assert bed.reloads == 1


async def test_admin_edits_someones_schedule_and_what_did_not_change_keeps_its_bytes(bed):
    boss = await bed.login("boss")
    before = await view(boss, "101")
    assert before["hours"] == {"timezone": None, "days": WEEK}
    assert before["absences"][1] == {"from": "2026-12-03 14:00", "to": "2026-12-03 18:00", "reason": "doctor"}
    absences = before["absences"] + [{"from": "2027-02-01", "to": "2027-02-03", "reason": "sick"}]
    response = await put(boss, "101", "schedule", schedule(before["hours"], absences))
    assert response.status == 200, await response.text()
    text = bed.text
    assert '    schedule:             # office hours\n      mon-fri: "09:00-18:00"\n' in text, "untouched"
    assert "{from: 2026-12-28, to: 2027-01-08, reason: vacation}   # new year" in text
    assert '{from: "2026-12-03 14:00", to: "2026-12-03 18:00", reason: doctor}' in text
    assert "{from: 2027-02-01, to: 2027-02-03, reason: sick}" in text
    assert bed.audit("set_schedule")[0]["user"] == "boss"
    # Back to "always at work", no absences: the keys go.
    response = await put(boss, "101", "schedule", schedule())
    assert response.status == 200
    assert "schedule" not in bed.text and "absences" not in bed.text
    assert bed.text.startswith("# Site policy. Keep extensions quoted.")
    ivan = bed.policy().employee("101")
    assert ivan.schedule is None and ivan.absences == () and ivan.ring_time == 20


async def test_a_flow_style_entry_gets_a_flow_schedule(tmp_path):
    b = WebBed(tmp_path, POLICY.replace('  "102":\n    name: Petr Ivanov\n', '  "102": {name: Petr Ivanov}\n'))
    try:
        petr = await b.login("petr")
        response = await put(petr, "102", "schedule", schedule(
            {"timezone": "Asia/Yekaterinburg", "days": [[]] * 5 + [["10:00-14:00"], []]},
            [{"from": "2026-12-01", "to": "2026-12-01", "reason": "sick"}]))
        assert response.status == 200, await response.text()
        petr_ = b.policy().employee("102")
        assert petr_.schedule.timezone == "Asia/Yekaterinburg" and str(petr_.schedule.days[5][0]) == "10:00-14:00"
        assert petr_.absences[0].reason == "sick"
    finally:
        await b.close()


async def test_someone_elses_schedule_or_notices_is_403_and_nothing_changes(bed):
    anna, boss = await bed.login("anna"), await bed.login("boss")
    version = (await view(boss, "101"))["version"]
    before = bed.text
    for what, body in (("schedule", schedule()), ("notices", {"email": "x@evil.example", "voicemail_to": []}),
                       ("reception", {"on_busy": None})):
        response = await anna.put(f"/api/employees/101/{what}", {"version": version, **body})
        assert response.status == 403, what
    assert (await anna.get("/api/employees/101")).status == 403
    assert bed.text == before and not bed.audit()[-1]["action"].startswith("set_")


async def test_a_stale_version_is_409_and_the_newer_change_stays(bed):
    anna, boss = await bed.login("anna"), await bed.login("boss")
    seen = (await view(anna, "103"))["version"]
    assert (await put(boss, "103", "notices", {"email": "anna@example.com", "voicemail_to": []})).status == 200
    after_boss = bed.text
    stale = await put(anna, "103", "schedule", schedule(absences=[{"from": "2026-12-01", "reason": "sick"}]), seen)
    assert stale.status == 409 and (await stale.json())["code"] == "stale"
    assert bed.text == after_boss and not bed.audit("set_schedule")


MANY = [{"from": "2026-12-01", "to": "2026-12-01", "reason": "sick"}] * 51


@pytest.mark.parametrize("body, field", [
    (schedule({"timezone": None, "days": [["09:00-10:00"]] * 500}), "hours.days"),
    (schedule({"timezone": None, "days": [["00:00-00:01"] * 500] + [[]] * 6}), "hours.mon"),
    (schedule({"timezone": None, "days": [["25:00-26:00"]] + [[]] * 6}), "hours.mon"),
    (schedule({"timezone": None, "days": [["09:00-09:00"]] + [[]] * 6}), "hours.mon"),
    (schedule({"timezone": None, "days": [["9-18"]] + [[]] * 6}), "hours.mon"),
    (schedule({"timezone": None, "days": [[{"a": 1}]] + [[]] * 6}), "hours.mon"),
    (schedule({"timezone": "../../etc/passwd", "days": WEEK}), "hours.timezone"),
    (schedule({"timezone": "Europe", "days": WEEK}), "hours.timezone"),
    (schedule({"timezone": "Mars/Olympus", "days": WEEK}), "hours.timezone"),
    (schedule(absences=MANY), "absences"),
    (schedule(absences=[{"from": "2026-13-01", "reason": "sick"}]), "absences[1]"),
    (schedule(absences=[{"from": "2026-02-30", "reason": "sick"}]), "absences[1]"),
    (schedule(absences=[{"from": "9999-01-01", "reason": "sick"}]), "absences[1]"),
    (schedule(absences=[{"from": "2026-12-10", "to": "2026-12-01", "reason": "sick"}]), "absences[1]"),
    (schedule(absences=[{"from": 20261201, "reason": "sick"}]), "absences[1]"),
    (schedule(absences=[{"from": "2026-12-01", "reason": "x" * 61}]), "absences[1]"),
    (schedule(absences=[{"from": "2026-12-01", "reason": "ill\nmailbox: 666@default"}]), "absences[1]"),
    (schedule(absences=[{"from": "2026-12-01", "reason": "bell\x07"}]), "absences[1]"),
    ({**schedule(), "absences": "2026-12-01"}, "absences"),
    (schedule(on_absent={"action": "forward", "to": "103"}), "on_absent.to"),
    (schedule(on_absent={"action": "ring_forever"}), "on_absent.action"),
])
async def test_hostile_schedule_input_is_refused_naming_the_field(bed, body, field):
    before = bed.text
    anna = await bed.login("anna")
    response = await put(anna, "103", "schedule", body)
    assert response.status == 400, await response.text()
    assert field in (await response.json())["problems"]
    assert bed.text == before and not bed.audit("set_schedule")


async def test_a_huge_body_is_refused_before_it_is_read(bed):
    anna = await bed.login("anna")
    body = schedule(absences=[{"from": "2026-12-01", "reason": "x" * 60}] * 400)
    response = await put(anna, "103", "schedule", body)
    assert response.status == 413


@pytest.mark.parametrize("reason", ['doctor}, {from: 2020-01-01', "x: y", "'quoted' \"and\" #not a comment",
                                    "- [a, b]", "&anchor *alias", "Больничный — врач"])
async def test_a_reason_text_cannot_become_yaml_structure(bed, reason):
    anna = await bed.login("anna")
    response = await put(anna, "103", "schedule", schedule(absences=[{"from": "2026-12-01", "to": "2026-12-02", "reason": reason}]))
    assert response.status == 200, await response.text()
    [absence] = bed.policy().employee("103").absences
    assert (absence.reason, absence.start, absence.end) == (reason, date(2026, 12, 1), date(2026, 12, 2))


async def test_away_for_part_of_a_day_round_trips(bed):
    anna = await bed.login("anna")
    response = await put(anna, "103", "schedule", schedule(absences=[{"from": "2026-12-03 14:00", "to": "2026-12-03T18:00", "reason": ""}]))
    assert response.status == 200, await response.text()
    [absence] = bed.policy().employee("103").absences
    assert (absence.start, absence.end.time(), absence.reason) == (datetime(2026, 12, 3, 14), time(18), "absent")
    assert (await response.json())["absences"] == [{"from": "2026-12-03 14:00", "to": "2026-12-03 18:00", "reason": "absent"}]


# ---- busy and unreachable -----------------------------------------------------------------------


async def test_busy_and_unreachable_are_same_as_no_answer_until_given_their_own(bed):
    petr = await bed.login("petr")
    shown = await view(petr, "102")
    assert shown["slots"]["on_busy"] == {"setting": None, "summary": "Same as no answer"}
    response = await put(petr, "102", "reception", {
        "on_no_answer": {"action": "voicemail", "ring_time": 15},
        "on_busy": {"action": "forward", "to": "sales", "announcement": {"kind": "none"}, "ring_time": 99},
        "on_unreachable": {"action": "drop", "drop": "message"}})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["slots"]["on_busy"]["summary"] == "Forward to department Sales, no message"
    assert body["slots"]["on_unreachable"]["summary"] == "Play a message, then hang up"
    petr_ = bed.policy().employee("102")
    assert (petr_.on_no_answer.kind, petr_.ring_time) == ("voicemail", 15)
    assert (petr_.on_busy.kind, petr_.on_busy.target, petr_.on_busy.announcement.kind) == ("forward", "sales", "none")
    assert petr_.on_unreachable.drop == "message"
    assert "ring_time: 99" not in bed.text, "busy has no ring time of its own"
    assert [e["action"] for e in bed.audit() if e["action"].startswith("set_")] == \
        ["set_no_answer", "set_busy", "set_unreachable"]
    # Back to "same as no answer": the key goes, the no-answer setting stays.
    response = await put(petr, "102", "reception", {"on_busy": None})
    assert response.status == 200
    petr_ = bed.policy().employee("102")
    assert petr_.on_busy is None and petr_.on_unreachable is not None and petr_.on_no_answer.kind == "voicemail"


@pytest.mark.parametrize("body, field", [
    ({"on_busy": {"action": "forward", "to": "102"}}, "on_busy.to"),
    ({"on_unreachable": {"action": "explode"}}, "on_unreachable.action"),
    ({"on_busy": "voicemail"}, "on_busy.setting"),
    ({}, "setting"),
])
async def test_bad_busy_or_unreachable_is_refused(bed, body, field):
    before = bed.text
    petr = await bed.login("petr")
    response = await put(petr, "102", "reception", body)
    assert response.status == 400 and field in (await response.json())["problems"]
    assert bed.text == before


# ---- notices ------------------------------------------------------------------------------------


async def test_owner_sets_email_and_voicemail_recipients(bed):
    anna = await bed.login("anna")
    response = await put(anna, "103", "notices", {
        "email": " anna@example.com ", "voicemail_to": ["101", "sales", "office@example.com", "101"]})
    assert response.status == 200, await response.text()
    assert '    mailbox: 103@default\n    email: anna@example.com\n    voicemail_to: ["101", "sales", "office@example.com"]\n' in bed.text
    anna_ = bed.policy().employee("103")
    assert anna_.email == "anna@example.com" and anna_.voicemail_to == ("101", "sales", "office@example.com")
    [entry] = bed.audit("set_notices")
    assert entry["after"] == {"email": "anna@example.com", "voicemail_to": ["101", "sales", "office@example.com"]}
    response = await put(anna, "103", "notices", {"email": "", "voicemail_to": []})
    assert response.status == 200
    assert "email" not in bed.text and "voicemail_to" not in bed.text


async def test_admin_sets_someones_recipients(bed):
    boss = await bed.login("boss")
    response = await put(boss, "103", "notices", {"email": None, "voicemail_to": ["102"]})
    assert response.status == 200
    assert bed.policy().employee("103").voicemail_to == ("102",)


@pytest.mark.parametrize("ext, body, field", [
    ("103", {"email": "not an address"}, "email"),
    ("103", {"email": "a@b.c\nBcc: everyone@example.com"}, "email"),
    ("103", {"email": "a" * 250 + "@b.cd"}, "email"),
    ("103", {"email": ["a@b.c"]}, "email"),
    ("103", {"voicemail_to": ["x@example.com"] * 21}, "voicemail_to"),
    ("103", {"voicemail_to": ["a" * 300 + "@example.com"]}, "voicemail_to"),
    ("103", {"voicemail_to": ["x@@example.com"]}, "voicemail_to"),
    ("103", {"voicemail_to": ["999"]}, "voicemail_to"),
    ("103", {"voicemail_to": ["103"]}, "voicemail_to"),
    ("103", {"voicemail_to": [{"$ne": 1}]}, "voicemail_to"),
    ("103", {"voicemail_to": "101"}, "voicemail_to"),
    ("102", {"voicemail_to": ["101"]}, "voicemail_to"),  # Petr has no mailbox
])
async def test_hostile_notices_are_refused(bed, ext, body, field):
    before = bed.text
    user = await bed.login("anna" if ext == "103" else "petr")
    response = await put(user, ext, "notices", body)
    assert response.status == 400, await response.text()
    assert field in (await response.json())["problems"]
    assert bed.text == before


async def test_the_profile_page_shows_schedule_absences_and_notices(bed):
    boss = await bed.login("boss")
    html = await (await boss.get("/employees/101")).text()
    for text in ("Working hours", "Absences", "While away", "If the line is busy", "If the phone is unreachable"):
        assert text in html, text
    parsed = parse_policy(bed.text)
    assert parsed.employee("101").schedule.describe() == "mon-fri 09:00-18:00"


@pytest.mark.parametrize("address", ["o'neil+{x}#1@example.com", "a&b*c@example.com", "-dash@example.com",
                                     '"quoted"@example.com', "[x]@example.com"])
async def test_an_odd_but_valid_address_round_trips_as_one_value(bed, address):
    anna = await bed.login("anna")
    response = await put(anna, "103", "notices", {"email": address, "voicemail_to": [address]})
    assert response.status == 200, await response.text()
    anna_ = bed.policy().employee("103")
    assert anna_.email == address and anna_.voicemail_to == (address,)
    assert set(bed.policy().employees) == {"101", "102", "103"}
