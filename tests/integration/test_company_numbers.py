"""Issue 23.5: the carrier delivers calls to the company's numbers (DIDs) through the real
Asterisk — a SIPp "carrier" on 127.0.0.6 (engines) or 127.0.0.7 (FastAGI mode), known by its
address (pjsip.conf [carrier]), into pbx-inbound; the policy's `numbers:` say who is rung."""

from __future__ import annotations

from pbx_app.history.events import CallStarted, LegEnded, LegStarted

from .test_agi_calls import agi_app  # noqa: F401  (the fixture)

POLICY = """
employees:
  "102": {name: Petr Ivanov, ring_time: 5}
  "103": {name: Anna Smirnova, ring_time: 5}
  "105": {name: Sergei Volkov, ring_time: 5, numbers: ["+7 495 123-45-67"]}
departments:
  sales: {name: Sales, members: ["102", "103"], ring_time: 5, numbers: ["8 (495) 765-43-21"]}
"""


def started(app) -> CallStarted:
    [call] = [e for e in app.journal.events if isinstance(e, CallStarted)]
    return call


async def test_a_call_to_an_employees_number_reaches_them(start_app, sip):
    app = await start_app(POLICY)
    phone = sip.phone("105", "answer", answer_delay_ms=300)
    caller = sip.carrier_call("+74951234567", talk_ms=500)
    assert await caller.wait(20) == 0
    [ended] = await app.wait_calls_ended()
    assert ended.result == "answered" and phone.sent(200)
    call = started(app)
    assert call.extension == "105"
    assert call.reasons[0] == "dialled 74951234567: the number +7 495 123-45-67 of employee 105", "history keeps the number"
    [leg] = [e for e in app.journal.events if isinstance(e, LegEnded)]
    assert leg.answered_by == "105"


async def test_a_call_to_an_employees_number_in_fastagi_mode(agi_app, sip):
    app = await agi_app(POLICY)
    phone = sip.phone("105", "answer", answer_delay_ms=300)
    caller = sip.carrier_call("84951234567", agi=True, talk_ms=500)
    assert await caller.wait(20) == 0
    [ended] = await app.wait_calls_ended()
    assert ended.result == "answered" and phone.sent(200)
    call = started(app)
    assert call.extension == "105"
    assert call.reasons[0] == "dialled 84951234567: the number +7 495 123-45-67 of employee 105"


async def test_a_departments_number_rings_the_group(start_app, sip):
    app = await start_app(POLICY)
    petr = sip.phone("102", "ring_forever")
    anna = sip.phone("103", "answer", answer_delay_ms=800)
    caller = sip.carrier_call("4957654321", talk_ms=500)
    assert await caller.wait(20) == 0
    [ended] = await app.wait_calls_ended()
    assert ended.result == "answered"
    assert petr.received("INVITE") and anna.received("INVITE"), "both members rang at once"
    assert petr.received("CANCEL"), "Petr's phone stopped when Anna answered"
    call = started(app)
    assert call.extension == "sales" and "of department sales" in call.reasons[0]
    [leg] = [e for e in app.journal.events if isinstance(e, LegStarted)]
    assert (leg.department, set(leg.targets)) == ("sales", {"102", "103"})
    [end] = [e for e in app.journal.events if isinstance(e, LegEnded)]
    assert end.answered_by == "103"
