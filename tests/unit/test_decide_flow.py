"""Schedules and absences through the whole app on the fake Asterisk: an employee who is off
is not rung at all; the call goes straight to on_absent (or their no-answer action)."""

from datetime import datetime, timezone

from pbx_app.history.events import CallStarted
from pbx_app.policy import parse_policy
from tests.support.fake_calls import call_on_fake

POLICY = parse_policy("""
site: {timezone: Europe/Moscow}
employees:
  "101":
    ring_time: 10
    mailbox: "101@default"
    schedule: {mon-fri: "09:00-18:00"}
    absences: [{from: 2026-12-28, to: 2027-01-08, reason: vacation}]
    on_no_answer: {action: forward, to: "102", announcement: none}
    on_absent: {action: voicemail}
  "102":
    ring_time: 10
    schedule: {mon-fri: "09:00-18:00"}
  "103":
    ring_time: 10
    on_no_answer: {action: forward, to: "102", announcement: none}
""")


async def call_at(extension, at):
    call = await call_on_fake(extension, POLICY, {"PJSIP/101": "answer", "PJSIP/102": "answer", "PJSIP/103": "no_answer"},
                              voicemail={"101@default": True}, clock=lambda: at)
    [started] = [e for e in call.events if isinstance(e, CallStarted)]
    return [d[0] for d in call.dials()], call.ended(), started


TUESDAY_NOON_MSK = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
SATURDAY_NOON_MSK = datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc)
VACATION = datetime(2026, 12, 29, 9, 0, tzinfo=timezone.utc)


async def test_at_work_the_employee_is_rung():
    dials, ended, _ = await call_at("101", TUESDAY_NOON_MSK)
    assert dials == [("PJSIP/101",)] and ended.detail == "answered by 101"


async def test_on_vacation_the_call_goes_straight_to_on_absent():
    dials, ended, started = await call_at("101", VACATION)
    assert dials == [], "101 is not rung, nor anyone else"
    assert ended.result == "voicemail"
    assert any("101 is absent (vacation 2026-12-28..2027-01-08" in r for r in started.reasons)


async def test_forward_to_a_colleague_out_of_hours_skips_them():
    dials, ended, _ = await call_at("103", SATURDAY_NOON_MSK)
    assert dials == [("PJSIP/103",)], "102 works weekdays only"
    assert (ended.result, ended.detail) == ("dropped", "busy")
