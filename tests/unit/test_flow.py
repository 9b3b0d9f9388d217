"""The call flow against the fake Asterisk: who is rung, for how long, and how the call ends."""


import asyncio

from pbx_app.ari import AriError
from pbx_app.crm.directory import CrmAnswer
from pbx_app.history.events import CallEnded, LegEnded
from pbx_app.testing import FakeAsterisk
from tests.support.fake_calls import call_on_fake

POLICY = """
site:
  ring_time: 120
employees:
  "101": {name: Ivan, ring_time: 3, on_no_answer: {action: forward, to: "102", announcement: standard}}
  "102": {name: Petr, ring_time: 5}
  "103": {name: Anna, ring_time: 4, on_no_answer: {action: drop, drop: message}}
  "104": {name: Olga, mailbox: "104@default", on_no_answer: {action: voicemail}}
  "105": {name: Sergei, on_no_answer: {action: forward, to: sales, announcement: none}}
  "106": {name: Irina, on_no_answer: {action: forward, to: "102", announcement: none},
          on_busy: {action: drop, drop: busy}}
departments:
  sales: {members: ["102", "103", "104"], strategy: hunt, ring_time: 7}
"""


async def run_call(phones, extension, talk_ends="callee", voicemail=None, policy=POLICY):
    call = await call_on_fake(extension, policy, phones, talk_ends=talk_ends, voicemail=voicemail)
    return call.actions, call.events


def dials(actions):
    return [(a[1], a[2]) for a in actions if a[0] == "dial"]


def final(events):
    ended = [e for e in events if isinstance(e, CallEnded)]
    assert len(ended) == 1
    return ended[0]


async def test_default_policy_rings_120_s_then_busy():
    actions, events = await run_call({}, "199", policy="")
    assert actions[0] == ("ringing",)
    assert dials(actions) == [(("PJSIP/199",), 120)]
    assert actions[-1] == ("hangup", "busy")
    assert final(events).result == "dropped"


async def test_answered_by_employee_ends_when_they_hang_up():
    actions, events = await run_call({"PJSIP/101": "answer"}, "101")
    assert dials(actions) == [(("PJSIP/101",), 3)]
    assert ("talk", "PJSIP/101") in actions
    assert actions[-1] == ("hangup", "normal")
    assert final(events).result == "answered"


async def test_caller_hanging_up_after_talk_is_an_answered_call():
    actions, events = await run_call({"PJSIP/101": "answer"}, "101", talk_ends="caller")
    assert actions[-1] == ("caller_hangup",)
    leg = [e for e in events if isinstance(e, LegEnded)][0]
    assert (leg.outcome, leg.answered_by) == ("answered", "101")
    assert final(events).result == "answered"


async def test_no_answer_forwards_to_colleague_after_standard_announcement():
    actions, events = await run_call({"PJSIP/101": "no_answer", "PJSIP/102": "answer"}, "101")
    assert dials(actions) == [(("PJSIP/101",), 3), (("PJSIP/102",), 5)]
    plays = [a for a in actions if a[0] == "play"]
    assert plays == [("play", "pbx_app/forward-notice")]
    # The announcement goes between the two rings, and the caller is not answered for it.
    order = [a[0] for a in actions if a[0] in ("dial", "play", "answer")]
    assert order == ["dial", "play", "dial"]
    legs = [e for e in events if isinstance(e, LegEnded)]
    assert [(l.outcome, l.answered_by) for l in legs] == [("no_answer", None), ("played", None), ("answered", "102")]


async def test_forward_not_answered_ends_busy():
    actions, events = await run_call({}, "101")
    assert len(dials(actions)) == 2
    assert actions[-1] == ("hangup", "busy")
    assert final(events).result == "dropped"


async def test_drop_with_message_plays_it_then_hangs_up():
    actions, events = await run_call({"PJSIP/103": "no_answer"}, "103")
    assert dials(actions) == [(("PJSIP/103",), 4)]
    assert actions[-2:] == [("play", "pbx_app/manager-unavailable"), ("hangup", "normal")]


async def test_busy_employee_gets_the_drop_action_at_once():
    actions, events = await run_call({"PJSIP/103": "busy"}, "103")
    assert [a[0] for a in actions][-2:] == ["play", "hangup"]
    leg = [e for e in events if isinstance(e, LegEnded)][0]
    assert leg.outcome == "busy"


async def test_busy_has_its_own_action_when_set():
    actions, _ = await run_call({"PJSIP/106": "busy"}, "106")
    assert len(dials(actions)) == 1
    assert actions[-1] == ("hangup", "busy")
    actions, _ = await run_call({"PJSIP/106": "no_answer", "PJSIP/102": "answer"}, "106")
    assert dials(actions)[1] == (("PJSIP/102",), 5)


async def test_unreachable_follows_no_answer_action():
    actions, _ = await run_call({"PJSIP/101": "unreachable", "PJSIP/102": "answer"}, "101")
    assert dials(actions)[1] == (("PJSIP/102",), 5)


async def test_department_hunt_rings_members_in_order_and_skips_busy():
    actions, events = await run_call(
        {"PJSIP/105": "no_answer", "PJSIP/102": "busy", "PJSIP/103": "no_answer", "PJSIP/104": "answer"}, "105"
    )
    assert [d[0] for d in dials(actions)] == [("PJSIP/105",), ("PJSIP/102",), ("PJSIP/103",), ("PJSIP/104",)]
    assert [d[1] for d in dials(actions)[1:]] == [7, 7, 7]
    assert final(events).detail == "answered by 104"


async def test_voicemail_without_message_is_a_plain_voicemail_end():
    actions, events = await run_call({}, "104")
    assert ("voicemail", "104@default") in actions
    legs = [e for e in events if isinstance(e, LegEnded)]
    assert legs[-1].outcome == "no_message"


async def test_voicemail_with_message_left_is_recorded():
    actions, events = await run_call({}, "104", voicemail={"104@default": True})
    legs = [e for e in events if isinstance(e, LegEnded)]
    assert legs[-1].outcome == "message_left"
    assert final(events).detail == "message left"


async def test_caller_hanging_up_while_ringing_ends_the_call():
    # The caller leaves while 101's phone rings.
    actions, events = await run_call({"PJSIP/101": "caller_leaves"}, "101")
    assert len(dials(actions)) == 1, "no forward after the caller left"
    assert final(events).result == "caller_hung_up"
    assert [e.outcome for e in events if isinstance(e, LegEnded)] == ["caller_hung_up"]


async def test_flow_error_gives_busy_instead_of_silence():
    fake = FakeAsterisk()
    # Asterisk refuses to send the caller on to the employee's ring.
    fake.failing["/channels/fake.1/continue"] = AriError(500, "Internal Server Error")
    call = await call_on_fake("101", POLICY, fake=fake)
    assert call.actions[-1] == ("hangup", "busy")
    assert call.ended().result == "failed"


async def test_caller_hears_ringing_while_a_slow_crm_is_asked():
    fake = FakeAsterisk(phones={"PJSIP/102": "answer"})
    seen_when_asked = []

    class SlowCrm:
        async def lookup(self, policy, caller):
            seen_when_asked.append(list(fake.actions_for("fake.1")))
            await asyncio.sleep(0.2)
            return CrmAnswer(None)

    call = await call_on_fake("102", POLICY, fake=fake, crm=SlowCrm())
    assert seen_when_asked == [[("ringing",)]], "ringing started before the CRM was asked"
    assert [a for a in call.actions if a == ("ringing",)] == [("ringing",)], "rung once"
    assert call.ended().result == "answered", "the call went on once the CRM answered"
