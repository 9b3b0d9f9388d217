"""The no-engine fallback files: what the dialplan (pbx-app-down) reads for each employee."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timezone

from pbx_app import contract as dp
from pbx_app.calls.app_down import AppDownFiles, _run_through, app_down_line, off_duty
from pbx_app.policy import parse_policy

AT = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)  # a Monday, 13:00 in Moscow
POLICY = """
site: {timezone: Europe/Moscow}
employees:
  "101": {name: Ivan, endpoint: PJSIP/101&PJSIP/101-soft, ring_time: 4,
          on_no_answer: {action: forward, to: "102", announcement: none}, on_busy: {action: voicemail}}
  "102": {name: Petr, ring_time: 10}
  "103": {name: Anna, ring_time: 7, schedule: {mon: "18:00-19:00"},
          on_no_answer: {action: voicemail}}
"""


def dialplan_view(line: str, call: str = "1700000000.7") -> tuple[dp.PackedRing, str]:
    """What pbx-app-down makes of a line: the first ring and PBX_FB, with the call's id put in."""
    ring, fb = line.replace(dp.CALL_PLACEHOLDER, call).split(dp.APP_DOWN_SEPARATOR)
    return dp.PackedRing.decode(ring), fb


def test_first_ring_has_the_employees_ring_time_endpoint_and_a_fallback_leg():
    ring, fb = dialplan_view(app_down_line(parse_policy(POLICY), "101", AT))
    assert ring == dp.PackedRing("PJSIP/101&PJSIP/101-soft", 4, "1700000000.7:1:employee:101:fallback")
    no_answer = dp.Fallbacks.pick(fb, "NOANSWER")
    assert (no_answer.dial, no_answer.ringtime, no_answer.exten, no_answer.then) == ("PJSIP/102", 10, "102", "busy")
    assert no_answer.leg == "1700000000.7:2:forward:102:fallback"
    busy = dp.Fallbacks.pick(fb, "BUSY")
    assert (busy.dial, busy.then, busy.mailbox) == ("", "voicemail", "101@default")
    assert busy.then_leg == "1700000000.7:2:voicemail:101:fallback"
    assert dp.Fallbacks.pick(fb, "UNREACHABLE") == no_answer, "unreachable follows no answer"


def test_an_employee_off_duty_is_not_rung_their_steps_run_at_once():
    ring, fb = dialplan_view(app_down_line(parse_policy(POLICY), "103", AT))
    assert ring.dial == ""
    assert dp.Fallbacks.pick(fb, "NOANSWER").then == "voicemail"
    assert dp.Fallbacks.pick(fb, "NOANSWER").then_leg.endswith(":1:voicemail:103:fallback")


def test_with_the_journals_id_each_leg_names_the_employee_dialled_and_the_journal():
    ring, fb = dialplan_view(app_down_line(parse_policy(POLICY), "103", AT, history="h1"))
    assert dp.Fallbacks.pick(fb, "NOANSWER").then_leg.endswith(":1:voicemail:103:fallback:103:h1")
    ring, fb = dialplan_view(app_down_line(parse_policy(POLICY), "101", AT, history="h1"))
    assert ring.leg.endswith(":1:employee:101:fallback:101:h1")
    assert dp.Fallbacks.pick(fb, "NOANSWER").leg.endswith(":2:forward:102:fallback:101:h1")


def test_files_follow_the_policy_and_only_changes_are_written(tmp_path):
    current = [parse_policy(POLICY)]
    files = AppDownFiles(tmp_path / "fallback", lambda: current[0], clock=lambda: AT)
    assert files.write() == 3
    assert sorted(p.name for p in (tmp_path / "fallback").iterdir()) == ["101", "102", "103"]
    assert oct(os.stat(tmp_path / "fallback" / "101").st_mode & 0o777) == "0o644"
    assert files.write() == 0, "nothing changed: nothing rewritten"
    current[0] = parse_policy(POLICY.replace("ring_time: 4", "ring_time: 6").replace('  "102": {name: Petr, ring_time: 10}\n', "")
                              .replace('to: "102"', 'to: "103"'))
    assert files.write() == 2, "101 changed, 102 left"
    assert not (tmp_path / "fallback" / "102").exists()
    ring, _ = dialplan_view((tmp_path / "fallback" / "101").read_text())
    assert ring.ringtime == 6


def test_the_files_follow_the_clock_when_working_hours_begin_and_end(tmp_path):
    """Plans are worked out again only when who is away changes: the files must still follow it."""
    clock = [AT]
    policy = parse_policy(POLICY)
    files = AppDownFiles(tmp_path / "fallback", lambda: policy, clock=lambda: clock[0])
    asyncio.run(files.refresh())
    anna = tmp_path / "fallback" / "103"
    assert dialplan_view(anna.read_text())[0].dial == "", "13:00 in Moscow: Anna is off"
    clock[0] = AT.replace(hour=11)
    assert asyncio.run(files.refresh()) == 0, "an hour later nobody came or left: nothing rewritten"
    clock[0] = AT.replace(hour=15, minute=30)  # 18:30 in Moscow
    assert asyncio.run(files.refresh()) == 1
    assert dialplan_view(anna.read_text())[0].dial == "PJSIP/103", "in her hours she is rung"
    clock[0] = AT.replace(hour=16, minute=5)
    files.write()
    assert dialplan_view(anna.read_text())[0].dial == "", "after 19:00 she is off again"


DESK = """
site: {timezone: Europe/Moscow}
employees:
  "101": {name: Ivan, on_no_answer: {action: forward, to: desk}}
  "102": {name: Petr, schedule: {mon: "09:00-12:00"}, on_no_answer: {action: forward, to: desk}}
  "103": {name: Anna, schedule: {mon: "18:00-19:00"}, absences: [{from: 2026-12-01, to: 2026-12-03}]}
departments:
  desk: {members: ["102", "103"], strategy: hunt}
"""


def test_who_is_away_worked_out_once_gives_the_plans_routing_gives():
    """The files ask once who is away at that moment, not once per colleague in each plan: the
    plans must be those routing makes asking each time."""
    policy = parse_policy(DESK)
    for hour in (6, 10, 15, 16):  # 9, 13, 18 and 19 o'clock in Moscow
        at = AT.replace(hour=hour)
        away = _run_through(off_duty(policy, at))
        assert ("102" in away) == (hour != 6) and ("103" in away) == (hour != 15)
        for ext in policy.employees:
            assert app_down_line(policy, ext, at, away) == app_down_line(policy, ext, at), (ext, hour)


def test_an_unwritable_folder_is_named_and_does_not_stop_the_engine(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    files = AppDownFiles(blocker / "fallback", lambda: parse_policy(POLICY), clock=lambda: AT)
    assert files.write() == 0
    assert f"PBX_FALLBACK_DIR={blocker / 'fallback'}" in caplog.text


def test_a_company_number_gets_its_owners_plan_under_every_form_a_carrier_sends(tmp_path):
    policy = parse_policy(POLICY.replace('  "102": {name: Petr, ring_time: 10}',
                                         '  "102": {name: Petr, ring_time: 10, numbers: ["+7 495 123-45-67"]}'))
    files = AppDownFiles(tmp_path / "fallback", lambda: policy, clock=lambda: AT)
    files.write()
    for form in ("4951234567", "74951234567", "84951234567"):
        ring, _ = dialplan_view((tmp_path / "fallback" / form).read_text())
        assert (ring.dial, ring.ringtime) == ("PJSIP/102", 10), form
