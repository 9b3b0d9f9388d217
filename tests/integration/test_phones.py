"""Issue 23.3 and 32.4: phones that register (digest auth, two devices an employee, qualify),
through the real Asterisk. The phones are SIPp registering from 127.0.0.21 (tests/support/sipp.py);
config/asterisk/pjsip.conf qualifies every 2 s with a 1 s timeout."""

from __future__ import annotations

import asyncio
import signal

from pbx_app.history.events import LegEnded
from tests.support.wait import until

from .test_agi_calls import agi_app, call as agi_call  # noqa: F401  (the fixture)

POLICY = """
employees:
  "102": {name: Petr Ivanov, endpoint: PJSIP/102, ring_time: 5}
  "103": {name: Anna Smirnova, endpoint: PJSIP/103, ring_time: 10,
          on_no_answer: {action: drop, drop: busy},
          on_busy: {action: forward, to: "102", announcement: none},
          on_unreachable: {action: forward, to: "102", announcement: none}}
  "105": {name: Sergei Volkov, endpoint: PJSIP/105, ring_time: 5}
"""


def legs(app):
    return [e for e in app.journal.events if isinstance(e, LegEnded)]


def seconds(a, b) -> float:
    return (b.at - a.at).total_seconds()


async def _both_devices_ring(app, sip, call) -> None:
    desk = sip.phone("105", "answer", answer_delay_ms=1000)
    soft = sip.phone("105", "ring_forever", device=2)
    caller = call("105", talk_ms=1000)
    assert await caller.wait(20) == 0
    [ended] = await app.wait_calls_ended()
    assert ended.result == "answered"
    assert desk.received("INVITE") and soft.received("INVITE"), "both of 105's devices rang"
    assert desk.sent(200), "the desk phone answered"
    assert soft.received("CANCEL"), "the softphone stopped ringing when the desk phone answered"
    [leg] = legs(app)
    assert (leg.outcome, leg.answered_by) == ("answered", "105")


async def test_both_devices_ring_one_answers_the_other_is_cancelled(start_app, sip):
    await _both_devices_ring(await start_app(POLICY), sip, sip.call)


async def test_both_devices_ring_in_fastagi_mode(agi_app, sip):
    await _both_devices_ring(await agi_app(POLICY), sip, lambda ext, **kw: agi_call(sip, ext, **kw))


async def test_nothing_registered_takes_the_unreachable_rule_at_once(start_app, sip):
    app = await start_app(POLICY)
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = sip.call("103", talk_ms=500)
    assert await caller.wait(20) == 0
    [forwarded] = colleague.received("INVITE")
    assert seconds(caller.sent("INVITE")[0], forwarded) < 2.5, "no 10 s ring time for a phone that is not there"
    await app.wait_calls_ended()
    first, second = legs(app)
    assert first.outcome == "unreachable"
    assert (second.outcome, second.answered_by) == ("answered", "102")


async def test_a_phone_that_stops_answering_qualify_is_unreachable(start_app, sip, ari):
    app = await start_app(POLICY)
    dead = sip.phone("103", "answer")
    dead.proc.send_signal(signal.SIGKILL)  # gone without unregistering: only qualify can tell
    dead.proc.wait()

    async def offline() -> bool:
        return (await ari.get("/endpoints/PJSIP/103"))["state"] == "offline"

    await until(offline, 6, "Asterisk's qualify notices 103's phone is gone", every=0.2)
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = sip.call("103", talk_ms=500)
    assert await caller.wait(20) == 0
    [forwarded] = colleague.received("INVITE")
    assert seconds(caller.sent("INVITE")[0], forwarded) < 2.5, "unreachable at once, not after the 10 s ring time"
    await app.wait_calls_ended()
    first, second = legs(app)
    assert first.outcome == "unreachable"
    assert second.answered_by == "102"


async def test_a_phone_answering_486_takes_the_busy_rule(start_app, sip):
    app = await start_app(POLICY)
    sip.phone("103", "busy")
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = sip.call("103", talk_ms=500)
    assert await caller.wait(20) == 0
    assert colleague.received("INVITE"), "103's busy rule forwarded the call to 102"
    await app.wait_calls_ended()
    first, second = legs(app)
    assert first.outcome == "busy"
    assert second.answered_by == "102"


async def test_an_invite_posing_as_an_employee_is_refused(start_app, sip):
    app = await start_app(POLICY)
    victim = sip.phone("105", "ring_forever")
    # From 102's number, from an address no phone or client has, without credentials.
    intruder = sip.call("105", caller="102", source_ip="127.0.0.22")
    await until(lambda: intruder.received(401) or intruder.received(403), 10, "Asterisk challenges the stranger")
    await asyncio.sleep(1)  # time for a ring that should not come
    assert not intruder.received(180) and not intruder.received(200)
    assert not victim.received("INVITE"), "105's phone never rang"
    assert not app.ended(), "no call reached the engine"
