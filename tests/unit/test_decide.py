"""The decision table: CRM > absence/schedule > the employee's own setting > the site default."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from pbx_app.policy import Action, CrmRule, parse_policy
from pbx_app.routing import Announce, Drop, Plan, Ring, Voicemail, decide
from pbx_app.routing.decide import CallContext

MSK = ZoneInfo("Europe/Moscow")
POLICY = parse_policy(
    """
site:
  ring_time: 30
  timezone: Europe/Moscow
  on_no_answer: {action: drop, drop: message}
  max_forwards: 1
employees:
  "101":
    name: Ivan
    ring_time: 10
    on_no_answer: {action: forward, to: "102", announcement: none}
    schedule: {mon-fri: "09:00-18:00"}
    absences:
      - {from: 2026-12-28, to: 2027-01-08, reason: vacation}
      - {from: "2026-12-03 14:00", to: "2026-12-03 18:00", reason: doctor}
  "102": {name: Petr, ring_time: 20}
  "103": {name: Anna, ring_time: 15, mailbox: "103@default", on_no_answer: {action: voicemail}}
  "104":
    name: Olga
    on_no_answer: {action: forward, to: "102"}
    on_absent: {action: voicemail}
    schedule: {mon-fri: "09:00-18:00"}
  "105": {name: Sergei, ring_time: 12, schedule: {"sat,sun": "10:00-16:00"}}
  "106": {name: Night, schedule: {timezone: Asia/Yekaterinburg, mon-thu: "22:00-06:00"}}
departments:
  sales: {members: ["102", "103", "105"], strategy: hunt, ring_time: 8}
crm:
  clients:
    "+7 900 000-00-01": {manager: "101", on_no_answer: {action: forward, to: "103", announcement: none}}
    "79000000002": {manager: "103"}
    "79000000003": {manager: "101"}
"""
)
TUESDAY_10 = datetime(2026, 12, 1, 10, 0, tzinfo=MSK)
SATURDAY_12 = datetime(2026, 12, 5, 12, 0, tzinfo=MSK)


def plan_for(ext, at=TUESDAY_10, caller="79001112233", policy=POLICY, use_crm=True) -> Plan:
    from pbx_app.crm import static_answer

    answer = static_answer(policy, caller) if use_crm else None
    return decide(policy, CallContext(ext, caller, at, crm=answer.rule if answer else None))


def rung(steps):
    return [tuple(t.extension for t in s.targets) for s in steps if isinstance(s, Ring)]


def test_profile_forward_when_no_crm_rule():
    plan = plan_for("101")
    assert plan.first == Ring(plan.first.targets, 10, "employee")
    assert rung(plan.on_no_answer) == [("102",)]
    assert isinstance(plan.on_no_answer[-1], Drop)
    assert plan.rule == "profile"
    assert any("101's own setting (forward to 102)" in r for r in plan.reasons)


def test_site_default_when_employee_sets_nothing():
    plan = plan_for("102")
    assert plan.first.timeout == 20
    assert plan.on_no_answer == (Drop("message", "sound:pbx_app/manager-unavailable"),)
    assert plan.rule == "default"
    assert any("site default" in r for r in plan.reasons)


def test_unknown_extension_rings_the_endpoint_with_site_defaults():
    plan = plan_for("199")
    assert plan.first.targets[0].endpoint == "PJSIP/199" and plan.first.timeout == 30
    assert plan.rule == "default"


def test_crm_rule_for_the_dialled_manager_wins_over_their_own_forward():
    plan = plan_for("101", caller="79000000001")
    assert rung([plan.first]) == [("101",)]
    assert rung(plan.on_no_answer) == [("103",)], "the CRM's target, not 101's own 102"
    assert plan.on_busy == plan.on_unreachable == plan.on_no_answer
    assert plan.rule == "crm"
    assert any("CRM rule wins over 101's own setting (forward to 102)" in r for r in plan.reasons)


def test_crm_rule_without_an_action_keeps_the_managers_own_setting():
    plan = plan_for("101", caller="79000000003")
    assert rung(plan.on_no_answer) == [("102",)]
    assert plan.rule == "profile"
    assert any("101 is the responsible manager" in r for r in plan.reasons)


def test_crm_manager_other_than_dialled_gets_the_call_after_the_dialled_employee():
    # The client dials 102, but their responsible manager is 103: 102 rings first (the client chose
    # them), then 103, then 103's own setting (voicemail) — not the site default of 102.
    plan = plan_for("102", caller="79000000002")
    assert rung([plan.first]) == [("102",)]
    assert isinstance(plan.on_no_answer[0], Announce)
    assert rung(plan.on_no_answer) == [("103",)]
    assert plan.on_no_answer[-1] == Voicemail("103@default", "103")
    assert plan.rule == "crm"


def test_crm_rule_for_a_manager_who_left_is_ignored():
    rule = CrmRule(manager="999", on_no_answer=Action("voicemail"), source="webhook")
    plan = decide(POLICY, CallContext("101", "1", TUESDAY_10, crm=rule))
    assert plan.rule == "profile" and rung(plan.on_no_answer) == [("102",)]
    assert any("999, who is not in the policy: ignored" in r for r in plan.reasons)


def test_crm_note_is_kept_in_the_reasons_when_it_gave_no_rule():
    note = "CRM webhook did not answer within 500 ms: the employee's profile decides"
    plan = decide(POLICY, CallContext("101", "1", TUESDAY_10, crm_note=note))
    assert plan.reasons[0] == note and plan.rule == "profile"


def test_out_of_hours_is_not_rung_and_goes_to_the_no_answer_action():
    plan = plan_for("101", at=SATURDAY_12)
    assert plan.first is None
    assert rung(plan.on_no_answer) == [("102",)]
    assert plan.rule == "schedule"
    assert any("out of working hours (mon-fri 09:00-18:00" in r for r in plan.reasons)


def test_on_absent_wins_over_on_no_answer_when_off():
    plan = plan_for("104", at=SATURDAY_12)
    assert plan.first is None
    assert plan.on_no_answer == (Voicemail("104@default", "104"),)
    assert plan.rule == "schedule"


def test_absence_whole_days_inclusive():
    for at in (datetime(2026, 12, 28, 0, 0, tzinfo=MSK), datetime(2027, 1, 8, 17, 59, tzinfo=MSK)):
        plan = plan_for("101", at=at)
        assert plan.first is None and plan.rule == "absence", at
    assert plan_for("101", at=datetime(2027, 1, 11, 10, 0, tzinfo=MSK)).first is not None


def test_absence_with_hours():
    assert plan_for("101", at=datetime(2026, 12, 3, 13, 59, tzinfo=MSK)).first is not None
    plan = plan_for("101", at=datetime(2026, 12, 3, 14, 0, tzinfo=MSK))
    assert plan.first is None and plan.rule == "absence"
    assert any("doctor 2026-12-03 14:00..2026-12-03 18:00" in r for r in plan.reasons)


def test_crm_wins_over_absence_and_skips_the_absent_employee():
    plan = plan_for("101", at=SATURDAY_12, caller="79000000001")
    assert plan.first is None
    assert rung(plan.on_no_answer) == [("103",)]
    assert plan.rule == "crm"


def test_colleague_who_is_off_is_not_rung():
    # 105 works weekends only: a Tuesday forward to sales hunts 102, 103 and skips 105.
    policy = parse_policy(POLICY_TEXT_SALES)
    plan = decide(policy, CallContext("107", "1", TUESDAY_10))
    assert rung(plan.on_no_answer) == [("102",), ("103",)]
    plan = decide(policy, CallContext("107", "1", SATURDAY_12))
    assert rung(plan.on_no_answer) == [("102",), ("103",), ("105",)]


def test_forward_to_a_colleague_who_is_off_drops_without_an_announcement():
    policy = parse_policy(POLICY_TEXT_SALES)
    plan = decide(policy, CallContext("108", "1", TUESDAY_10))
    assert plan.on_no_answer == (Drop("busy"),), "no 'forwarding you' before nobody"


POLICY_TEXT_SALES = """
site: {timezone: Europe/Moscow}
employees:
  "102": {name: Petr}
  "103": {name: Anna}
  "105": {name: Sergei, schedule: {"sat,sun": "10:00-16:00"}}
  "107": {on_no_answer: {action: forward, to: sales}}
  "108": {on_no_answer: {action: forward, to: "105"}}
departments:
  sales: {members: ["102", "103", "105"], strategy: hunt, ring_time: 8}
"""


@pytest.mark.parametrize(
    "utc, working",
    [
        # Night shift Mon 22:00 → Tue 06:00 in Yekaterinburg (UTC+5).
        (datetime(2026, 11, 30, 16, 59, tzinfo=timezone.utc), False),  # Mon 21:59
        (datetime(2026, 11, 30, 17, 0, tzinfo=timezone.utc), True),  # Mon 22:00
        (datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc), True),  # Tue 04:30, from Monday's shift
        (datetime(2026, 12, 1, 0, 59, tzinfo=timezone.utc), True),  # Tue 05:59
        (datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc), False),  # Tue 06:00
        (datetime(2026, 12, 3, 23, 0, tzinfo=timezone.utc), True),  # Fri 04:00, Thursday's shift
        (datetime(2026, 12, 4, 17, 30, tzinfo=timezone.utc), False),  # Fri 22:30: no Friday shift
        (datetime(2026, 11, 29, 23, 0, tzinfo=timezone.utc), False),  # Mon 04:00: no Sunday shift
    ],
)
def test_hours_that_cross_midnight(utc, working):
    plan = decide(POLICY, CallContext("106", "1", utc))
    assert (plan.first is not None) is working


@pytest.mark.parametrize(
    "utc, working",
    [
        # Berlin springs forward on Sun 2026-03-29: Monday 09:00 local is 07:00 UTC, not 08:00.
        (datetime(2026, 3, 30, 7, 0, tzinfo=timezone.utc), True),
        (datetime(2026, 3, 30, 6, 59, tzinfo=timezone.utc), False),
        (datetime(2026, 3, 27, 7, 30, tzinfo=timezone.utc), False),  # Friday before: 08:30 CET
        (datetime(2026, 3, 27, 8, 0, tzinfo=timezone.utc), True),
        # Falls back on Sun 2026-10-25: Monday 09:00 local is 08:00 UTC again.
        (datetime(2026, 10, 26, 7, 30, tzinfo=timezone.utc), False),
        (datetime(2026, 10, 26, 8, 0, tzinfo=timezone.utc), True),
        (datetime(2026, 10, 26, 16, 59, tzinfo=timezone.utc), True),  # 17:59 CET
        (datetime(2026, 10, 26, 17, 0, tzinfo=timezone.utc), False),  # 18:00 CET
    ],
)
def test_working_hours_follow_the_wall_clock_across_dst(utc, working):
    policy = parse_policy('site: {timezone: Europe/Berlin}\nemployees:\n  "101": {schedule: {mon-fri: "09:00-18:00"}}\n')
    assert (decide(policy, CallContext("101", "1", utc)).first is not None) is working


def test_naive_time_is_utc():
    policy = parse_policy('employees:\n  "101": {schedule: {timezone: Europe/Moscow, mon-fri: "09:00-18:00"}}\n')
    assert decide(policy, CallContext("101", "1", datetime(2026, 12, 1, 6, 0))).first is not None  # 09:00 MSK
    assert decide(policy, CallContext("101", "1", datetime(2026, 12, 1, 5, 59))).first is None


def test_plan_rule_survives_the_channel_round_trip():
    plan = plan_for("101", caller="79000000001")
    assert Plan.from_json(plan.to_json()) == plan
    old = plan.to_json().replace(',"rule":"crm"', "")
    assert Plan.from_json(old).rule == "default", "a plan saved by an older app still resumes"


def test_a_chain_follows_colleagues_forwards_up_to_max_forwards():
    text = """
site: {max_forwards: MAX}
employees:
  "101": {on_no_answer: {action: forward, to: "102", announcement: none}}
  "102": {on_no_answer: {action: forward, to: "103"}}
  "103": {on_no_answer: {action: forward, to: sales}}
  "104": {}
departments:
  sales: {members: ["104"], ring_time: 9}
"""
    plan = decide(parse_policy(text.replace("MAX", "3")), CallContext("101", "1", TUESDAY_10))
    assert rung(plan.on_no_answer) == [("102",), ("103",), ("104",)]
    assert [s for s in plan.on_no_answer if isinstance(s, Announce)] == [], "103's announcement is not repeated"
    plan = decide(parse_policy(text.replace("MAX", "2")), CallContext("101", "1", TUESDAY_10))
    assert rung(plan.on_no_answer) == [("102",), ("103",)]


def test_a_loop_that_slipped_past_the_check_still_ends():
    # check refuses this policy; decide must still never ring someone twice.
    from dataclasses import replace

    policy = parse_policy('site: {max_forwards: 5}\nemployees:\n  "101": {}\n  "102": {on_no_answer: {action: forward, to: "101"}}\n')
    looped = replace(policy.employees["101"], on_no_answer=Action("forward", target="102"))
    policy = replace(policy, employees={**policy.employees, "101": looped})
    plan = decide(policy, CallContext("101", "1", TUESDAY_10))
    assert rung(plan.on_no_answer) == [("102",)]
    assert isinstance(plan.on_no_answer[-1], Drop)
