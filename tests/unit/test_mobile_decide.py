"""The decision with legs outside the PBX: the desk phone and the mobile ringing together (at
once or the mobile joining later), forwards to the mobile and to outside numbers, the hourly
limit applied at the call (vet_plan), and where a call was answered in history and notices."""

import asyncio
from datetime import datetime, timezone
from gettext import NullTranslations

from pbx_app.agi import AgiServer
from pbx_app.answered import rung
from pbx_app.history.events import CallStarted, MemoryJournal
from pbx_app.history.records import CallRecord, LegRecord
from pbx_app.history.rows import history_row, steps
from pbx_app.notices.happened import what_happened
from pbx_app.routing.external_leg import ExternalLeg, dial_string
from pbx_app.outbound.forwards import vet_plan
from pbx_app.outbound.guard import OutboundGuard
from pbx_app.outbound.stores import open_limits
from pbx_app.calls.app_down import app_down_line
from pbx_app.policy import parse_policy
from pbx_app.routing.decide import CallContext, decide
from pbx_app.routing.explain import explain
from pbx_app.routing.plan import Announce, Drop, OutsideTarget, Plan, Ring, Target

AT = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
POLICY = """site:
  ring_time: 20
  outbound:
    allow: [_79XXXXXXXXX]
    per_hour: {employee: 2}
    trunk: {endpoint: carrier, format: national, present: company, number: "+7 495 123-45-67"}
employees:
  "101":
    name: Ivan Petrov
    mobile: "+7 900 123-45-67"
    ring_mobile: {after: 8}
    on_no_answer: {action: forward, to: mobile}
    on_busy: {action: forward, to: "8 (900) 111-22-33", confirm: false}
    on_unreachable: {action: forward, to: "102", whisper: true}
  "102":
    name: Petr
    mobile: "+7 900 765-43-21"
    ring_mobile: true
  "103":
    mobile: "+7 900 000-00-03"
    ring_mobile: true
    external_forwarding: false
    on_no_answer: {action: forward, to: "101"}
"""
MOBILE_101 = dial_string(ExternalLeg("101", "89001234567", "carrier", delay=8, confirm=True, present="74951234567"))


def plan_for(extension="101", text=POLICY):
    return decide(parse_policy(text), CallContext(extension, "+7 916 000-11-22", AT))


def test_desk_and_mobile_ring_together_the_mobile_joining_after_n_seconds():
    first = plan_for().first
    assert first.role == "employee" and first.timeout == 20
    assert first.targets == (Target("101", "PJSIP/101"),
                             OutsideTarget("101", MOBILE_101, label="mobile", number="79001234567", delay=8, confirm=True))


def test_forwards_to_the_mobile_and_to_an_outside_number_go_through_the_trunk():
    plan = plan_for()
    ring = next(s for s in plan.on_no_answer if isinstance(s, Ring))
    assert ring.role == "forward" and [(t.label, t.number, t.delay, t.confirm) for t in ring.targets] == [
        ("mobile", "79001234567", 0, True)]
    outside = next(s for s in plan.on_busy if isinstance(s, Ring)).targets[0]
    assert (outside.extension, outside.label, outside.number, outside.confirm) == ("101", "8 (900) 111-22-33", "79001112233", False)
    assert outside.endpoint == dial_string(ExternalLeg("101", "89001112233", "carrier", 0, False, "74951234567"))
    colleague = next(s for s in plan.on_unreachable if isinstance(s, Ring))
    assert colleague.whisper == "101", "102 hears whose call it is: the number of the employee it was for"
    assert [t.label for t in colleague.targets] == ["", "mobile"], "a colleague's own ring_mobile rings with them"


def test_the_administrators_switch_keeps_the_mobile_out_and_says_why():
    plan = plan_for("103")
    assert plan.first.targets == (Target("103", "PJSIP/103"),)
    assert any("103's mobile is not rung: an administrator has forbidden" in r for r in plan.reasons)


def test_no_mobile_no_leg():
    assert plan_for("104").first.targets == (Target("104", "PJSIP/104"),), "not in the policy: no mobile"
    text = POLICY.replace('    mobile: "+7 900 123-45-67"\n    ring_mobile: {after: 8}\n', "").replace("{action: forward, to: mobile}", "{action: voicemail}")
    assert plan_for("101", text).first.targets == (Target("101", "PJSIP/101"),)


def test_a_forward_to_a_mobile_the_site_default_names_skips_those_without_one():
    text = POLICY.replace("site:\n", "site:\n  on_no_answer: {action: forward, to: mobile}\n", 1)
    plan = plan_for("104", text)
    assert plan.on_no_answer == (Drop("busy"),) and any("104 has no mobile number" in r for r in plan.reasons)


def test_explain_shows_the_mobile_the_trunk_and_the_confirm():
    policy = parse_policy(POLICY)
    text = explain(policy, plan_for(), "+7 916 000-11-22", AT)
    assert ("Ring 101 (Ivan Petrov) on PJSIP/101 and 101 (Ivan Petrov)'s mobile 79001234567 (through the trunk carrier, "
            "showing the company's number +7 495 123-45-67, joining after 8 s, the answerer presses 1 to take the call) "
            "for 20 s.") in text
    assert "101's mobile rings with the desk phone, joining after 8 s" in text
    assert "the outside number 8 (900) 111-22-33 (79001112233) (through the trunk carrier" in text
    assert 'Ring 102 (Petr) on PJSIP/102 and 102 (Petr)\'s mobile 79007654321' in text
    assert '(they hear "forwarded call for 101 (Ivan Petrov)" first)' in text


def test_plan_json_round_trips_outside_legs_and_reads_old_plans():
    plan = plan_for()
    assert Plan.from_json(plan.to_json()) == plan
    old = ('{"extension":"101","first":{"targets":[{"extension":"101","endpoint":"PJSIP/101"}],"timeout":20,'
           '"role":"employee","department":null,"type":"ring"},"on_no_answer":[],"on_busy":[],"on_unreachable":[],'
           '"reasons":[]}')
    assert Plan.from_json(old).first == Ring((Target("101", "PJSIP/101"),), 20, "employee")
    desk_only = plan_for("104")
    assert '"label"' not in desk_only.to_json() and '"whisper"' not in desk_only.to_json(), "a plan without outside legs is as small as before"


def test_answered_by_says_answered_on_mobile():
    first = plan_for().first
    assert first.answered_by("PJSIP/101-0000002a") == "101"
    # The answering channel: the Local target without its options ("/n"), then "-<id>;1".
    assert first.answered_by(MOBILE_101.split("@")[0] + "@pbx-external-0000001f;1") == "101 on mobile"
    with_options = Ring((Target("101", "PJSIP/101"), OutsideTarget("101", "Local/101*0*1*c*89001234567*carrier@pbx-external/n",
                                                            label="mobile", number="79001234567")), 20, "employee")
    assert with_options.answered_by("Local/101*0*1*c*89001234567*carrier@pbx-external-0000001f;1") == "101 on mobile"
    assert with_options.answered_by("PJSIP/101-00000020") == "101"
    outside = next(s for s in plan_for().on_busy if isinstance(s, Ring))
    assert outside.answered_by(outside.targets[0].endpoint.split("@")[0] + "@pbx-external-00000003;1") == \
        "101 on 8 (900) 111-22-33"


def test_history_and_notices_say_where_it_was_answered():
    t0 = AT
    call = CallRecord("c1", caller="+79160001122", extension="101", started_at=t0, ended_at=t0, result="answered",
                      legs=[LegRecord(1, "employee", ("101", "101"), outcome="answered", answered_by="101 on mobile",
                                      started_at=t0, answered_at=t0)])
    row = history_row(call)
    assert row.status == "answered" and row.employee == "101" and row.what_happened == "answered on mobile"
    forwarded = CallRecord("c2", caller="+79160001122", extension="101", started_at=t0, ended_at=t0, result="answered",
                           legs=[LegRecord(1, "employee", ("101",), outcome="no_answer", started_at=t0),
                                 LegRecord(2, "forward", ("101",), outcome="answered", answered_by="101 on mobile",
                                           started_at=t0, answered_at=t0)])
    assert "forwarded to the mobile of 101, answered" in history_row(forwarded).what_happened
    facts = {"employee": "101", "employee_name": "Ivan Petrov", "legs": [
        {"role": "employee", "targets": ["101", "101"], "outcome": "answered", "answered_by": "101",
         "answered_on": "mobile"}]}
    assert what_happened(facts, NullTranslations())[0] == "101 Ivan Petrov answered on the mobile"


def test_an_unanswered_forward_outside_names_the_mobile_or_the_number_and_is_missed_by_the_employee():
    t0 = AT
    # A ring step's targets as the story writes them (answered.rung): the plan's own targets.
    plan = plan_for()
    [mobile] = next(s for s in plan.on_no_answer if isinstance(s, Ring)).targets
    [number] = next(s for s in plan.on_busy if isinstance(s, Ring)).targets
    assert (rung(mobile), rung(number)) == ("101 on mobile", "101 on 8 (900) 111-22-33")

    def forwarded(target: str, outcome: str) -> CallRecord:
        return CallRecord("c3", caller="+79160001122", extension="101", started_at=t0, ended_at=t0, result="dropped",
                          legs=[LegRecord(1, "employee", ("101",), outcome="no_answer", started_at=t0),
                                LegRecord(2, "forward", (target,), outcome=outcome, started_at=t0)])

    row = history_row(forwarded("101 on mobile", "no_answer"))
    assert (row.status, row.employee) == ("missed", "101"), "missed by the employee the client dialled"
    assert row.what_happened == "no answer; forwarded to the mobile of 101, not answered (no answer)"
    assert history_row(forwarded("101 on 8 (900) 111-22-33", "busy")).what_happened == \
        "no answer; forwarded to 8 (900) 111-22-33, not answered (busy)"
    # A colleague whose desk and mobile rang together is a colleague, not an outside number.
    both = CallRecord("c4", caller="+79160001122", extension="101", started_at=t0, ended_at=t0, result="dropped",
                      legs=[LegRecord(1, "forward", ("102", "102 on mobile"), outcome="no_answer", started_at=t0)])
    assert history_row(both).what_happened.endswith("; forwarded to 102, not answered (no answer)")
    facts = {"employee": "101", "employee_name": "Ivan Petrov", "legs": [
        {"role": "employee", "targets": ["101"], "outcome": "no_answer"},
        {"role": "forward", "targets": ["101 on mobile"], "outcome": "no_answer"}]}
    assert what_happened(facts, NullTranslations()) == ["101 Ivan Petrov did not answer",
                                                        "forwarded to the mobile of 101 Ivan Petrov, not answered"]
    facts["legs"][1]["targets"] = ["101 on 8 (900) 111-22-33"]
    assert what_happened(facts, NullTranslations())[1] == "forwarded to 8 (900) 111-22-33, not answered"


def test_no_engine_fallback_rings_the_mobile_too():
    line = app_down_line(parse_policy(POLICY), "101", AT)
    assert "PJSIP/101&" + MOBILE_101 in line


async def test_vet_plan_drops_legs_over_the_hourly_limit_and_says_why(tmp_path):
    policy = parse_policy(POLICY)
    limits = open_limits(f"sqlite:///{tmp_path}/journal.db")
    guard = OutboundGuard(limits, lambda: AT)
    try:
        first = await vet_plan(plan_for(), guard, policy, "c1")
        assert first == plan_for(), "two numbers for 101, within its 2 an hour: counted once each"
        second = await vet_plan(plan_for(), guard, policy, "c2")
        assert second.first.targets == (Target("101", "PJSIP/101"),)
        assert not any(isinstance(s, (Ring, Announce)) for s in second.on_no_answer), second.on_no_answer
        assert isinstance(second.on_no_answer[-1], Drop)
        assert any("the outside leg to 79001234567 for 101 is dropped: the hour's limit of calls out for this employee"
                   in r for r in second.reasons)
        assert next(s for s in second.on_unreachable if isinstance(s, Ring)).targets[1].label == "mobile", \
            "102's mobile is 102's count"
        plain = plan_for("104")
        assert await vet_plan(plain, guard, policy, "c3") is plain
        # History tells why the mobile stayed silent on that call.
        call = CallRecord("c2", caller="+79160001122", extension="101", started_at=AT, ended_at=AT, result="answered",
                          reasons=second.reasons, legs=[LegRecord(1, "employee", ("101",), outcome="answered",
                                                                  answered_by="101", started_at=AT, answered_at=AT)])
        assert history_row(call).what_happened == (
            "79001112233 not rung: the hour's limit of calls out is reached; "
            "79001234567 not rung: the hour's limit of calls out is reached; answered")
    finally:
        await guard.close()


async def test_vet_plan_without_a_guard_keeps_the_legs_and_says_they_are_not_counted():
    plan = await vet_plan(plan_for(), None, parse_policy(POLICY))
    assert plan.first == plan_for().first and "not counted" in plan.reasons[-1]


class Callbacks:
    """What the FastAGI server holds its guard in (agi/callbacks.py AgiCallbacks)."""

    def __init__(self, guard):
        self.guard = guard


async def agi_call(port: int, call_id: str) -> None:
    """One `call` request, every command answered with success, until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"agi_network: yes\nagi_network_script: call\nagi_uniqueid: {call_id}\nagi_channel: PJSIP/c-1\n"
                  f"agi_arg_1: 101\nagi_arg_2: 79160001122\n\n").encode())
    while await asyncio.wait_for(reader.readline(), 5):
        writer.write(b"200 result=1\n")
    writer.close()


async def test_the_fastagi_server_applies_the_hourly_limit_to_a_new_call(tmp_path):
    policy = parse_policy(POLICY)
    guard = OutboundGuard(open_limits(f"sqlite:///{tmp_path}/journal.db"), lambda: AT)
    journal = MemoryJournal()
    server = AgiServer(lambda: policy, journal, callbacks=Callbacks(guard))  # type: ignore[arg-type]
    listening = await server.serve("127.0.0.1", 0)
    try:
        for call_id in ("1.1", "1.2"):
            await agi_call(listening.sockets[0].getsockname()[1], call_id)
    finally:
        listening.close()
        await guard.close()
    first, second = (e for e in journal.events if isinstance(e, CallStarted))
    assert not any("dropped" in r for r in first.reasons)
    assert any("the outside leg to 79001234567 for 101 is dropped: the hour's limit" in r for r in second.reasons)
