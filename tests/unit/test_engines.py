"""Several call engines on one (fake) Asterisk: a call is claimed by exactly one; an engine that
dies mid-call is replaced by any survivor from the state on the channel; with no engine left the
dialplan carries the plan on; an engine past its limit leaves new calls to the others."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pbx_app import contract as dp
from pbx_app.calls.engine import EVENT_TYPES, CallEngine, filtered_out
from pbx_app.calls.fallback import carries
from pbx_app.calls.lateness import Lateness
from pbx_app.calls.recovery import Sweeper
from pbx_app.history.events import CallStarted, MemoryJournal
from pbx_app.history.records import fold
from pbx_app.policy import parse_policy
from pbx_app.routing import Announce, Drop, Ring, Target, Voicemail
from pbx_app.routing.plan import Offer
from pbx_app.testing import FakeAsterisk
from tests.support.fake_calls import engine_on

POLICY = parse_policy("""
employees:
  "101": {name: Ivan, ring_time: 8, on_no_answer: {action: forward, to: "102", announcement: standard}}
  "102": {name: Petr, ring_time: 5}
  "104": {name: Olga, mailbox: "104@default", on_no_answer: {action: voicemail}}
""")
OFFER_POLICY = """
site: {callback_route: "PJSIP/{number}@trunk", outbound: {allow: [_79XXXXXXXXX]}}
employees:
  "101": {name: Ivan, ring_time: 3, on_no_answer: {action: callback, then: {action: forward, to: "102", announcement: none}}}
  "102": {name: Petr, ring_time: 5}
"""


def engines(fake: FakeAsterisk, *names: str, journal: MemoryJournal | None = None, **kwargs) -> list[CallEngine]:
    """Engines sharing one journal, as engines sharing one database do."""
    journal = journal or MemoryJournal()
    return [engine_on(fake, POLICY, f"pbx_app-{name}", journal=journal, **kwargs) for name in names]


def dials(fake: FakeAsterisk, channel: str) -> list[tuple]:
    return [(a[1], a[2]) for a in fake.actions_for(channel) if a[0] == "dial"]


def history(journal: MemoryJournal):
    calls = fold(journal.events)
    assert len(calls) == 1, calls
    return calls[0]


async def test_a_call_is_claimed_by_exactly_one_engine():
    fake = FakeAsterisk(phones={"PJSIP/101": "answer"})
    a, b = engines(fake, "a", "b")
    channel = fake.new_call("101")
    await fake.settle()
    claims = [(app, m, p) for app, m, p in fake.requests if p == "/events/claim"]
    assert len(claims) == 2, "both engines were offered the call and claimed it"
    owners = {app for app, m, p in fake.requests if p.startswith(f"/channels/{channel}/")}
    assert len(owners) == 1, f"only the winner drove the call: {owners}"
    assert history(a.journal).result == "answered"
    assert len([e for e in a.journal.events if isinstance(e, CallStarted)]) == 1


async def test_forward_flow_costs_four_requests_and_one_stasis_entry_with_one_engine():
    fake = FakeAsterisk(phones={"PJSIP/101": "no_answer", "PJSIP/102": "answer"})
    (engine,) = engines(fake, "a")
    channel = fake.new_call("101")
    await fake.settle()
    made = fake.requests_by("pbx_app-a")
    assert [p.split("/")[-1] for _, p in made] == ["claim", "subscription", "variables", "continue"]
    assert engine.event_counts["StasisStart"] == 1, "the dialplan carried the forward: no second entry"
    assert ("carry", "NOANSWER") in fake.actions_for(channel)
    assert [a for a in fake.actions_for(channel) if a[0] == "dial"] == [
        ("dial", ("PJSIP/101",), 8), ("dial", ("PJSIP/102",), 5)]
    call = history(engine.journal)
    assert (call.result, [(leg.role, leg.outcome) for leg in call.legs]) == (
        "answered", [("employee", "no_answer"), ("announcement", "played"), ("forward", "answered")])


async def test_a_plan_with_a_callback_offer_goes_back_to_its_engine_after_the_ring():
    """An offer needs the engine's decision: no carrying, the caller returns to Stasis."""
    fake = FakeAsterisk(phones={"PJSIP/101": "no_answer", "PJSIP/102": "answer"})
    engine = engine_on(fake, OFFER_POLICY, "pbx_app-a")
    channel = fake.new_call("101")
    await fake.settle()
    assert fake.channels[channel].vars.get(dp.CARRY) == ""
    assert engine.event_counts["StasisStart"] == 2, "the new call, then back after the ring"
    assert not any(a[0] == "carry" for a in fake.actions_for(channel))
    assert history(engine.journal).result == "answered", "102 answered the offer's then"


async def test_owner_killed_while_the_employee_rings_a_survivor_forwards():
    fake = FakeAsterisk(phones={"PJSIP/101": "rings", "PJSIP/102": "answer"})
    a, b = engines(fake, "a", "b")
    channel = fake.new_call("101")
    await fake.settle()
    owner = fake.channels[channel].vars["PBX_ENGINE"]
    fake.detach(owner)  # kill -9 while 101 rings
    survivor = b if owner == "pbx_app-a" else a
    fake.ring_ends.set()
    await fake.settle()
    # The fake plays the ring out after the kill: the caller comes back to nobody, is offered again.
    assert dials(fake, channel)[-1] == (("PJSIP/102",), 5), fake.actions_for(channel)
    assert ("play", "pbx_app/forward-notice") in fake.actions_for(channel)
    call = history(survivor.journal)
    assert call.result == "answered" and call.legs[-1].answered_by == "102"
    assert survivor.taken_over == 1
    assert [(l.leg, l.role, l.outcome) for l in call.legs] == [
        (1, "employee", "no_answer"), (2, "announcement", "played"), (3, "forward", "answered")]


async def test_every_engine_killed_the_dialplan_forwards_then_gives_busy():
    fake = FakeAsterisk(phones={"PJSIP/101": "rings", "PJSIP/102": "no_answer"})
    (a,) = engines(fake, "a")
    channel = fake.new_call("101")
    await fake.settle()
    fake.detach("pbx_app-a")
    fake.ring_ends.set()
    await fake.settle()
    actions = fake.actions_for(channel)
    assert ("fallback", "NOANSWER") in actions
    assert dials(fake, channel) == [(("PJSIP/101",), 8), (("PJSIP/102",), 5)]
    assert ("play", "pbx_app/forward-notice") in actions
    assert actions[-1] == ("hangup", "busy")


async def test_no_engine_at_all_the_dialplan_rings_the_employee_then_busy():
    fake = FakeAsterisk()
    channel = fake.new_call("101")
    await fake.settle()
    assert fake.actions_for(channel) == [("ringing",), ("fallback", "app-down"), ("dial", ("PJSIP/101",), 120),
                                         ("hangup", "busy")]


async def test_the_dialplan_fallback_goes_to_voicemail_when_the_plan_does():
    fake = FakeAsterisk(phones={"PJSIP/104": "rings"}, voicemail={"104@default": True})
    engines(fake, "a")
    channel = fake.new_call("104")
    await fake.settle()
    fake.detach("pbx_app-a")
    fake.ring_ends.set()
    await fake.settle()
    assert ("voicemail", "104@default") in fake.actions_for(channel)


async def test_past_its_limit_an_engine_leaves_new_calls_to_another():
    fake = FakeAsterisk(phones={"PJSIP/101": "rings", "PJSIP/102": "answer"})
    journal = MemoryJournal()
    (full,) = engines(fake, "full", journal=journal, max_calls=1)
    first = fake.new_call("101")  # rings on: the one call "full" may have
    await fake.settle()
    engines(fake, "spare", journal=journal)
    channel = fake.new_call("102")
    await fake.settle()
    assert full.refused == 1
    assert {app for app, m, p in fake.requests if p.startswith(f"/channels/{channel}/")} == {"pbx_app-spare"}
    fake.ring_ends.set()
    await fake.settle()
    results = {c.extension: c.result for c in fold(journal.events)}
    assert results == {"101": "answered", "102": "answered"}, fake.actions_for(first)  # 101 forwards to 102


async def test_past_its_limit_a_lone_engine_leaves_the_call_to_the_dialplan():
    fake = FakeAsterisk(phones={"PJSIP/101": "rings"})
    (full,) = engines(fake, "full", max_calls=1)
    fake.new_call("101")
    await fake.settle()
    channel = fake.new_call("102")
    await fake.settle()
    assert ("fallback", "app-down") in fake.actions_for(channel)
    assert [c.extension for c in fold(full.journal.events)] == ["101"], "the second call is not the engine's"


async def test_sweep_rescues_a_caller_left_in_stasis_twice_running():
    fake = FakeAsterisk(phones={"PJSIP/101": "rings", "PJSIP/102": "answer"})
    journal = MemoryJournal()
    a, b = engines(fake, "a", "b", journal=journal)
    channel = fake.new_call("101")
    await fake.settle()
    ch = fake.channels[channel]
    owner = a if ch.vars["PBX_ENGINE"] == "pbx_app-a" else b
    survivor = b if owner is a else a
    # The caller comes back to its owner, which dies before it acts: the caller waits in the
    # dead engine's Stasis with nobody to drive it.
    fake.stall(owner.ari.app)
    fake.ring_ends.set()
    await fake.settle()
    fake.detach(owner.ari.app)
    assert ch.stasis_app == owner.ari.app
    sweeper = Sweeper(survivor)
    await sweeper.sweep()
    assert sweeper.rescued == 0, "one sighting is not enough: the owner may be between two steps"
    await sweeper.sweep()
    assert sweeper.rescued == 1
    await fake.settle()
    assert dials(fake, channel)[-1] == (("PJSIP/102",), 5)
    assert survivor.taken_over == 1


async def test_a_flow_whose_channel_vanished_while_disconnected_ends_on_reconnect():
    fake = FakeAsterisk(phones={"PJSIP/101": "rings"})
    (a,) = engines(fake, "a")
    channel = fake.new_call("101")
    await fake.settle()
    fake.detach("pbx_app-a")  # the websocket drops...
    fake.caller_hangs_up(channel)  # ...so no event tells the engine the caller left
    fake.attach(a)
    await Sweeper(a).sweep(reconnected=True)
    await fake.settle()
    assert not a.calls
    assert history(a.journal).result == "caller_hung_up"


async def test_each_connect_narrows_the_events_asterisk_sends():
    fake = FakeAsterisk()
    (a,) = engines(fake, "a")
    await Sweeper(a).on_connect()
    assert ("PUT", "/applications/pbx_app-a/eventFilter") in fake.requests_by("pbx_app-a")


def test_asterisk_is_asked_only_for_the_events_the_flows_read():
    # Dial() and bridging set dozens of variables per call: Asterisk must not serialise them for us.
    assert "ChannelVarset" not in EVENT_TYPES and "Dial" not in EVENT_TYPES
    assert "ChannelUserevent" in EVENT_TYPES
    flood = '{"variable":"BRIDGEPEER","value":"PJSIP/102-0000001","type":"ChannelVarset","channel":{"id":"1"}}'
    hangup = '{"type":"ChannelHangupRequest","channel":{"id":"1","dialplan":{"app_name":"Dial"},"caller":{"name":"\\"ChannelVarset\\""}}}'
    assert filtered_out(flood)
    assert not filtered_out(hangup)


def test_a_dialplan_report_is_read_and_other_user_events_are_not():
    ours = {"type": "ChannelUserevent", "eventname": "PBX", "userevent": {"eventname": "PBX", "answered": "PJSIP/102-01^1500"}}
    theirs = {"type": "ChannelUserevent", "eventname": "CRM", "userevent": {"answered": "x"}}
    assert dp.report(ours) == ("answered", "PJSIP/102-01^1500")
    assert dp.answered("PJSIP/102-01^1500") == ("PJSIP/102-01", 1500)
    assert dp.report(theirs) is None


async def test_a_call_whose_flow_cannot_start_still_rings_through_the_dialplan():
    fake = FakeAsterisk()

    class BrokenPolicy:
        def __call__(self):
            raise TypeError("a bug before the flow got going")

    engine = engine_on(fake, BrokenPolicy(), "pbx_app-a")
    channel = fake.new_call("101")
    await fake.settle()
    assert ("fallback", "app-down") in fake.actions_for(channel)
    assert not engine.calls and not engine.tasks


def test_the_packed_fallbacks_give_each_outcome_its_own_way_on():
    ring_102 = dp.Fallback(dial="PJSIP/102", ringtime=20, leg="c:2:forward:102", exten="102")
    busy = dp.Fallback(then="message")
    packed = dp.Fallbacks(ring_102, busy, ring_102).encode()
    assert dp.Fallbacks.pick(packed, "NOANSWER") == ring_102
    assert dp.Fallbacks.pick(packed, "BUSY") == busy
    assert dp.Fallbacks.pick(packed, "UNREACHABLE") == ring_102  # an empty part: the same as no answer
    assert dp.Fallbacks.pick(dp.Fallbacks(ring_102).encode(), "BUSY") == ring_102
    ring = dp.PackedRing("PJSIP/102&PJSIP/105", 20, "c:2:forward:sales")
    assert dp.PackedRing.decode(ring.encode()) == ring


async def test_a_wedged_engines_caller_is_rescued_within_seconds_and_the_engine_wakes_without_acting_on_it():
    """Issue 29: one engine SIGSTOPped (its websocket stays up, so Asterisk even sends its callers
    back to it). Another engine rescues its caller once it has waited PBX_STRANDED_AFTER (1.5 s),
    not two sweeps (~20 s) later; when the frozen engine wakes, the StasisStart it gets is stale
    and it leaves that caller to the engine that now carries it."""
    fake = FakeAsterisk(phones={"PJSIP/101": "rings", "PJSIP/102": "answer"})
    journal = MemoryJournal()
    a, b = engines(fake, "a", "b", journal=journal, disown_late=True)
    channel = fake.new_call("101")
    await fake.settle()
    ch = fake.channels[channel]
    owner = a if ch.vars["PBX_ENGINE"] == "pbx_app-a" else b
    survivor = b if owner is a else a
    fake.stall(owner.ari.app)  # SIGSTOP
    fake.ring_ends.set()
    await fake.settle()
    assert ch.stasis_app == owner.ari.app, "back from the ring, in the frozen engine's Stasis"
    now = [100.0]
    sweeper = Sweeper(survivor, interval=10, stranded_after=1.5, clock=lambda: now[0])
    assert sweeper.look_every == 0.5
    await sweeper.sweep(listing=False)
    now[0] += 1.0
    await sweeper.sweep(listing=False)
    assert sweeper.rescued == 0, "1 s: the owner may still be between two steps"
    now[0] += 0.4
    await sweeper.rescue_due()
    assert sweeper.rescued == 0, "1.4 s: not due yet"
    now[0] += 0.1
    await sweeper.rescue_due()
    assert sweeper.rescued == 1, "rescued when due, by a look at it alone, not at the next listing"
    await fake.settle()
    assert dials(fake, channel)[-1] == (("PJSIP/102",), 5), "the survivor carried the plan on"
    # The owner wakes: the StasisStart it missed arrives, 30 s late by Asterisk's clock.
    made = len(fake.requests_by(owner.ari.app))
    stamp = lambda ago: (datetime.now(timezone.utc) - timedelta(seconds=ago)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    owner.dispatch({"type": "ChannelStateChange", "timestamp": stamp(0), "channel": {"id": "other"}})
    owner.dispatch({"type": "StasisStart", "timestamp": stamp(30), "args": ["dialed", "101", "NOANSWER"],
                    "channel": {"id": channel}})
    await fake.settle()
    assert channel not in owner.calls and channel not in owner.flows
    assert fake.requests_by(owner.ari.app)[made:] == [], "the woken engine did nothing to the caller"


def test_lateness_is_measured_past_a_clock_difference_between_asterisk_and_the_engine():
    now = [1_800_000_000.0]
    late = Lateness(clock=lambda: now[0])
    at = lambda t: datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    # Asterisk's clock is 100 s behind ours: its events are not late for that.
    assert late.of({"timestamp": at(now[0] - 100)}) == 0.0
    now[0] += 60
    assert late.of({"timestamp": at(now[0] - 100.05)}) < 0.1
    assert late.of({"timestamp": at(now[0] - 130)}) > 29, "held back 30 s by a freeze"
    assert late.of({"type": "no timestamp"}) == 0.0


async def test_an_engine_beats_for_the_dialplan_only_while_connected(monkeypatch):
    """pbx-dial lets the dialplan carry a plan on only while its owner's beat is fresh."""
    monkeypatch.setattr(dp, "BEAT_EVERY", 0)
    fake = FakeAsterisk()
    engine = engine_on(fake, POLICY, "pbx_app-a.1")
    beat = asyncio.create_task(engine.heartbeat(wall=lambda: 1765000000.7))
    await fake.settle(20)
    assert fake.globals == {}, "no websocket, no beat: the dialplan sends callers back to Stasis"
    engine.events.connected.set()
    await fake.settle(20)
    alive = f"PBX_ALIVE_{engine.run_id}"
    assert fake.globals == {alive: "1765000000"}
    beat.cancel()
    await fake.settle(20)
    assert fake.globals == {alive: ""}, "a stopping engine is no longer counted on at once"
    assert beat.cancelled()
    dialplan = (Path(__file__).parents[2] / "dialplan" / "pbx_app.conf").read_text()
    assert "${GLOBAL(PBX_ALIVE_${FILTER(A-Za-z0-9_,${PBX_CARRY})})}" in dialplan, "the dialplan reads the same name"


def test_the_dialplan_carries_only_what_needs_no_new_decision():
    ring = Ring((Target("102", "PJSIP/102"),), 5, "forward")
    assert carries((Announce("sound:x"), ring, Voicemail("102@default", "102")), 0)
    assert carries((ring, Drop("message")), 0) and carries((Drop("busy"),), 0)
    assert not carries((Announce("sound:x", answer_first=True), ring, Drop("busy")), 0), "answer first: the engine"
    assert not carries((ring, ring, Drop("busy")), 0), "a second ring: the engine"
    assert not carries((Offer("101", "PJSIP/101", "sound:o", "PJSIP/{number}@trunk", 2, 30, 600), ring, Drop("busy")), 0), "an offer: the engine"
    assert not carries((Announce("sound:x"), Voicemail("102@default", "102")), 0), "PBX_FB plays no announcement there"
