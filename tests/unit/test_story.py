"""The call story (pbx_app/story), one report at a time as FastAGI requests bring them: each
report builds the story from nothing but the plan and cursor the channel carries, as another
server process would. test_story_parity.py plays the same calls through both transports."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from pbx_app.outbound.guard import Verdict, screen
from pbx_app.policy.patterns import compile_pattern
from pbx_app.policy.model import OutboundSettings

from pbx_app.story import CallStory, Cursor, Report
from pbx_app.story.codec import PlanTooLarge, decode_plan, encode_plan
from pbx_app.agi.steps import channel_variables
from pbx_app.history.events import CallEnded, LegEnded, LegStarted, MemoryJournal
from pbx_app.db.errors import StoreError
from pbx_app.policy import parse_policy
from pbx_app.routing import Plan, Ring, Target, decide
from pbx_app.routing.decide import CallContext

def variables(instruction) -> dict[str, str]:
    return channel_variables(instruction, "")


NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
POLICY = parse_policy("""
employees:
  "101": {name: Ivan, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: standard},
          on_busy: {action: forward, to: sales, announcement: none}}
  "102": {name: Petr, ring_time: 3}
  "103": {name: Anna}
  "104": {name: Olga, ring_time: 2, mailbox: "104@default", on_no_answer: {action: voicemail}}
  "105": {name: Sergei, ring_time: 2}
  "106": {name: Pavel, ring_time: 2, absences: [{from: "2000-01-01", to: "2999-12-31"}]}
  "107": {name: Nina, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: none, whisper: true}}
departments:
  sales: {members: ["102", "103"], strategy: ringall, ring_time: 5}
""", "<test>")


class Call:
    """A call as the dialplan drives it: the channel's variables are all that carries over."""

    def __init__(self, extension: str):
        self.plan_vars = encode_plan(decide(POLICY, CallContext(extension, "7900", NOW)))
        self.journal = MemoryJournal()
        self.state = ""
        self.clock = NOW

    def flow(self) -> CallStory:
        plan = decode_plan("".join(self.plan_vars.values()))
        return CallStory(plan, "1.1", self.journal, lambda: self.clock, Cursor.decode(self.state) if self.state else None,
                       caller="7900")

    async def start(self):
        flow = self.flow()
        return self._keep(flow, await flow.start("1.1", "PJSIP/c-1"))

    async def next(self, seconds: float = 0, **report):
        self.clock += timedelta(seconds=seconds)
        flow = self.flow()
        return self._keep(flow, await flow.next(Report(**report)))

    async def hangup(self, seconds: float = 0, **report):
        self.clock += timedelta(seconds=seconds)
        flow = self.flow()
        await flow.hangup(Report(**report))
        self.state = flow.state

    def _keep(self, flow, instruction):
        self.state = flow.state
        return instruction

    def story(self):
        out = []
        for e in self.journal.events:
            if isinstance(e, LegStarted):
                out.append(("leg", e.leg, e.role, e.targets))
            elif isinstance(e, LegEnded):
                out.append(("leg ended", e.leg, e.outcome, e.answered_by))
            elif isinstance(e, CallEnded):
                out.append(("ended", e.result, e.detail))
        return out


async def test_no_answer_then_busy_tone_without_a_cdr_row_for_it():
    call = Call("105")
    first = await call.start()
    assert (first.do, variables(first)["PBX_TO"], variables(first)["PBX_DIAL"], variables(first)["PBX_RINGTIME"]) == (
        "ring", "105", "PJSIP/105", "2")
    assert variables(first)["PBX_LEG"] == "1.1:1:employee:105"
    end = await call.next(2, dialstatus="NOANSWER", hangupcause="0")
    assert (end.do, end.cdr_off, call.state) == ("busy", True, "end")
    assert call.story() == [("leg", 1, "employee", ("105",)), ("leg ended", 1, "no_answer", None), ("ended", "dropped", "busy")]
    assert call.journal.events[2].cause == "NOANSWER,0"


async def test_announcement_then_forward_answered_and_the_callee_hangs_up_first():
    call = Call("101")
    await call.start()
    announce = await call.next(2, dialstatus="NOANSWER")
    assert (announce.do, variables(announce)["PBX_SOUND"], announce.cdr_off) == ("announce", "pbx_app/forward-notice", False)
    ring = await call.next(4.6, playback="SUCCESS")
    assert (ring.do, variables(ring)["PBX_TO"], variables(ring)["PBX_LEG"]) == ("ring", "102", "1.1:3:forward:102")
    end = await call.next(5, dialstatus="ANSWER", hangupcause="16", peer="PJSIP/102-0000000a", answered_ms="4000")
    assert (end.do, end.cdr_off) == ("hangup", True)
    assert call.story()[-2:] == [("leg ended", 3, "answered", "102"), ("ended", "answered", "answered by 102")]
    assert call.journal.events[-2].answered_at == call.clock - timedelta(seconds=4)


async def test_busy_employee_rings_the_department_and_the_peer_names_who_answered():
    call = Call("101")
    await call.start()
    group = await call.next(0.1, dialstatus="BUSY", hangupcause="17")
    assert (group.do, variables(group)["PBX_TO"], variables(group)["PBX_DIAL"]) == ("ring", "sales", "PJSIP/102&PJSIP/103")
    assert variables(group)["PBX_LEG"] == "1.1:2:forward:102+103"
    await call.hangup(3, dialstatus="ANSWER", peer="PJSIP/103-00000002", answered_ms="1000")
    assert call.story()[-2:] == [("leg ended", 2, "answered", "103"), ("ended", "answered", "answered by 103")]


async def test_a_whispered_forward_tells_the_dialplan_whose_call_it_is_and_a_plain_ring_clears_it():
    call = Call("107")
    first = await call.start()
    assert variables(first)["PBX_WHISPER"] == "", "the employee's own ring: nothing to whisper (a stale value is cleared)"
    forward = await call.next(2, dialstatus="NOANSWER")
    assert (forward.do, variables(forward)["PBX_TO"], variables(forward)["PBX_WHISPER"]) == ("ring", "102", "107")


async def test_caller_hangs_up_during_the_announcement_ends_its_leg_as_in_ari_mode():
    call = Call("101")
    await call.start()
    await call.next(2, dialstatus="NOANSWER")
    await call.hangup(1, dialstatus="NOANSWER")
    assert call.story()[-3:] == [("leg", 2, "announcement", ()), ("leg ended", 2, "caller_hung_up", None),
                                 ("ended", "caller_hung_up", "the caller hung up")]
    assert call.state == "end"


async def test_caller_hangs_up_while_ringing():
    call = Call("105")
    await call.start()
    await call.hangup(1, dialstatus="CANCEL")
    assert call.story()[-2:] == [("leg ended", 1, "caller_hung_up", None), ("ended", "caller_hung_up", "the caller hung up")]


async def test_voicemail_message_counted_in_the_h_extension():
    call = Call("104")
    await call.start()
    box = await call.next(2, dialstatus="NOANSWER")
    assert (box.do, variables(box)["PBX_TO"], variables(box)["PBX_MAILBOX"]) == ("voicemail", "104", "104@default")
    assert variables(box)["PBX_LEG"] == "1.1:2:voicemail:104"
    await call.hangup(20, vm_before="3", vm_after="4")
    assert call.story()[-2:] == [("leg ended", 2, "message_left", None), ("ended", "voicemail", "message left")]


async def test_voicemail_returning_to_the_dialplan_without_a_message():
    call = Call("104")
    await call.start()
    await call.next(2, dialstatus="NOANSWER")
    end = await call.next(5, vmstatus="SUCCESS", vm_before="0", vm_after="0")
    assert (end.do, end.cdr_off) == ("hangup", False)
    assert call.journal.events[-2].cause is None
    assert call.story()[-1] == ("ended", "voicemail", "no message left")


async def test_employee_away_is_not_rung_and_a_call_that_never_dialled_keeps_its_cdr_row():
    call = Call("106")  # away, site default: ring nobody, busy
    end = await call.start()
    assert (end.do, end.cdr_off) == ("busy", False)
    assert call.story() == [("ended", "dropped", "busy")]


async def test_a_state_that_is_over_hands_out_nothing_more():
    call = Call("105")
    await call.start()
    await call.next(2, dialstatus="NOANSWER")
    with pytest.raises(ValueError):
        Cursor.decode(call.state)


async def test_a_large_department_plan_fits_the_channel_and_comes_back_whole():
    targets = tuple(Target(str(200 + i), f"PJSIP/{200 + i}") for i in range(40))
    rings = tuple(Ring(targets[: i + 1], 20, "forward", "big") for i in range(40))  # memoryhunt of 40
    plan = Plan("101", rings[0], rings, rings, rings, reasons=("long " * 500,))
    variables = encode_plan(plan)
    assert all(len(v) <= 1500 for v in variables.values())
    assert decode_plan("".join(variables.values())) == Plan("101", rings[0], rings, rings, rings)


def test_a_plan_beyond_four_chunks_is_refused():
    rng = random.Random(1)
    targets = tuple(Target(f"{rng.getrandbits(64):x}", f"PJSIP/{rng.getrandbits(64):x}") for _ in range(400))
    with pytest.raises(PlanTooLarge):
        encode_plan(Plan("101", None, (Ring(targets, 20, "forward"),), (), ()))


async def test_a_call_whose_plan_cannot_ride_on_the_channel_is_journalled_as_failed_with_busy():
    call = Call("105")
    flow = call.flow()
    end = await flow.start("1.1", "PJSIP/c-1", refuse=True)
    assert (end.do, end.cdr_off, flow.state) == ("busy", False, "end")
    assert [type(e).__name__ for e in call.journal.events] == ["CallStarted", "CallEnded"]
    assert call.story() == [("ended", "failed", "internal error, busy given")]


OFFER_POLICY = parse_policy("""
site: {callback_route: "PJSIP/{number}@trunk"}
employees:
  "107": {name: Pavel, ring_time: 2, on_no_answer: {action: callback, then: {action: voicemail}, retry_after: 60}}
""")


async def test_fastagi_mode_without_ami_skips_a_callback_offer_and_runs_its_then_action():
    plan = decide(OFFER_POLICY, CallContext("107", "7900", NOW))
    journal = MemoryJournal()
    flow = CallStory(plan, "1.1", journal, lambda: NOW, None)
    await flow.start("1.1", "PJSIP/c-1")
    after = CallStory(plan, "1.1", journal, lambda: NOW, Cursor.decode(flow.state))
    step = await after.next(Report(dialstatus="NOANSWER"))
    assert (step.do, variables(step)["PBX_MAILBOX"]) == ("voicemail", "107@default")


class Stored:
    """The callback store with the toll-fraud guard's answer fixed: ``refuse`` is its reason."""

    def __init__(self, fail: bool = False, refuse: str | None = None):
        self.requests, self.fail, self.refuse = [], fail, refuse

    async def vet(self, number, employee, call_id, reserve=False):
        return screen(OutboundSettings(allow=(compile_pattern("_X."),)), number) if self.refuse is None \
            else Verdict(number, self.refuse)

    async def add(self, request):
        if self.fail:
            raise StoreError("database is locked")
        self.requests.append(request)
        return True


async def offered_call(callbacks, caller="79001234567"):
    plan = decide(OFFER_POLICY, CallContext("107", caller, NOW))
    journal = MemoryJournal()
    flow = CallStory(plan, "1.1", journal, lambda: NOW, None, callbacks=callbacks, caller=caller)
    await flow.start("1.1", "PJSIP/c-1")

    async def step(**report):
        nonlocal flow
        flow = CallStory(plan, "1.1", journal, lambda: NOW, Cursor.decode(flow.state), callbacks=callbacks, caller=caller)
        return await flow.next(Report(**report))

    return step, journal


async def test_with_ami_the_offer_is_made_and_pressing_1_stores_the_request_and_ends_the_call():
    store = Stored()
    step, journal = await offered_call(store)
    offer = await step(dialstatus="NOANSWER")
    assert offer.do == "offer"
    assert variables(offer)["PBX_LEG"] == "1.1:2:callback_offer:107:answered"
    assert variables(offer)["PBX_OFFER_TIMEOUT"] == "5"
    done = await step(digit="1")
    assert done.do == "callback" and done.final
    [request] = store.requests
    assert (request.id, request.employee, request.client, request.leg) == ("1.1", "107", "79001234567", 2)
    assert request.next_try_at == NOW + timedelta(seconds=60), "not answered: not at once again"
    ended = [e for e in journal.events if isinstance(e, (LegEnded, CallEnded))]
    assert [(getattr(e, "outcome", None) or e.result) for e in ended] == ["no_answer", "callback_requested",
                                                                           "callback_requested"]


@pytest.mark.parametrize("digit, outcome", [("", "no_digit"), ("2", "declined")])
async def test_no_1_at_the_offer_runs_its_then_action(digit, outcome):
    store = Stored()
    step, journal = await offered_call(store)
    await step(dialstatus="NOANSWER")
    then = await step(digit=digit)
    assert then.do == "voicemail" and store.requests == []
    assert [e.outcome for e in journal.events if isinstance(e, LegEnded)][1] == outcome


async def test_a_request_that_cannot_be_stored_runs_the_then_action_and_says_so():
    step, journal = await offered_call(Stored(fail=True))
    await step(dialstatus="NOANSWER")
    then = await step(digit="1")
    assert then.do == "voicemail"
    failed = [e for e in journal.events if isinstance(e, LegEnded)][1]
    assert failed.outcome == "failed" and "database is locked" in failed.cause


async def test_an_unknown_caller_number_gets_no_offer():
    step, journal = await offered_call(Stored(), caller="anonymous")
    assert (await step(dialstatus="NOANSWER")).do == "voicemail"
    assert [e.outcome for e in journal.events if isinstance(e, LegEnded)][1] == "hidden_number"


async def test_the_caller_hanging_up_during_the_offer_ends_its_leg_and_the_call():
    store = Stored()
    plan = decide(OFFER_POLICY, CallContext("107", "79001234567", NOW))
    journal = MemoryJournal()
    flow = CallStory(plan, "1.1", journal, lambda: NOW, None, callbacks=store, caller="79001234567")
    await flow.start("1.1", "PJSIP/c-1")
    flow = CallStory(plan, "1.1", journal, lambda: NOW, Cursor.decode(flow.state), callbacks=store, caller="79001234567")
    assert (await flow.next(Report(dialstatus="NOANSWER"))).do == "offer"
    h = CallStory(plan, "1.1", journal, lambda: NOW, Cursor.decode(flow.state), callbacks=store, caller="79001234567")
    await h.hangup(Report())
    assert h.state == "end" and store.requests == []
    ended = [e for e in journal.events if isinstance(e, (LegEnded, CallEnded))]
    assert [(getattr(e, "outcome", None) or e.result) for e in ended] == ["no_answer", "caller_hung_up", "caller_hung_up"]


@pytest.mark.parametrize("reason, outcome", [("denied", "number_not_allowed"), ("site_limit", "over_limit")])
async def test_a_number_the_outbound_guard_refuses_gets_no_offer_but_the_then_action(reason, outcome):
    store = Stored(refuse=reason)
    step, journal = await offered_call(store)
    then = await step(dialstatus="NOANSWER")
    assert then.do == "voicemail" and store.requests == []
    assert [e.outcome for e in journal.events if isinstance(e, LegEnded)][1] == outcome
