"""Issue 2: the direct call through the real Asterisk — answered, rung out, busy, message,
caller hangs up, app down."""

from pbx_app.history.events import LegEnded

POLICY = """
employees:
  "101": {name: Ivan Petrov, endpoint: PJSIP/101, ring_time: 3}
  "102": {name: Petr Ivanov, endpoint: PJSIP/102, ring_time: 3, on_no_answer: {action: drop, drop: message}}
  "103": {name: Anna Smirnova, endpoint: PJSIP/103, ring_time: 10}
"""


def legs(app):
    return [e for e in app.journal.events if isinstance(e, LegEnded)]


async def test_answered_call_is_bridged_and_both_legs_end(start_app, sip):
    app = await start_app(POLICY)
    phone = sip.phone("101", "answer", answer_delay_ms=300)
    caller = sip.call("101", talk_ms=1500)
    assert await caller.wait(20) == 0
    [ended] = await app.wait_calls_ended()
    assert ended.result == "answered"
    assert caller.received(200), "the caller was answered"
    assert phone.received("BYE"), "the caller's hangup reached the employee's phone"
    [leg] = legs(app)
    assert (leg.outcome, leg.answered_by) == ("answered", "101")


async def test_ring_forever_gives_busy_after_the_ring_time(start_app, sip):
    app = await start_app(POLICY)
    phone = sip.phone("101", "ring_forever")
    caller = sip.call("101")
    await caller.wait(20)
    invite = caller.sent("INVITE")[0].at
    [busy] = caller.received(486)
    assert 2.8 <= (busy.at - invite).total_seconds() <= 4.5, "busy right after the 3 s ring time"
    assert phone.received("INVITE") and phone.received("CANCEL"), "the phone rang and was cancelled"
    assert not caller.received(200), "the caller was never answered"
    [ended] = await app.wait_calls_ended()
    assert (ended.result, ended.detail) == ("dropped", "busy")


async def test_message_variant_plays_the_message_then_hangs_up(start_app, sip):
    app = await start_app(POLICY)
    sip.phone("102", "ring_forever")
    caller = sip.call("102")
    await caller.wait(30)
    progress = caller.received(183)
    assert progress, "the message came as early media (183)"
    assert not caller.received(200), "the caller was not answered for the message"
    [ended] = await app.wait_calls_ended()
    assert ended.detail == "message, then hangup"
    message = [l for l in legs(app) if l.cause == "sound:pbx_app/manager-unavailable"]
    assert message and message[0].outcome == "played", "the message played to its end"
    final = [m for m in caller.messages if not m.sent and m.code and m.code >= 300]
    assert final and final[0].at > progress[0].at


async def test_busy_employee_gets_the_drop_action_at_once(start_app, sip):
    app = await start_app(POLICY)
    sip.phone("103", "busy")
    caller = sip.call("103")
    await caller.wait(10)
    invite = caller.sent("INVITE")[0].at
    [busy] = caller.received(486)
    assert (busy.at - invite).total_seconds() < 2, "no waiting for the 10 s ring time"
    [leg] = legs(app)
    assert leg.outcome == "busy"


async def test_caller_hanging_up_cancels_the_employee_leg(start_app, sip):
    app = await start_app(POLICY)
    phone = sip.phone("103", "ring_forever")
    caller = sip.call("103", cancel_after_ms=1000)
    await caller.wait(10)
    await phone.wait(5)
    cancel_sent = caller.sent("CANCEL")[0].at
    [cancel_got] = phone.received("CANCEL")
    assert (cancel_got.at - cancel_sent).total_seconds() < 0.5, "the employee's phone stopped at once"
    [ended] = await app.wait_calls_ended()
    assert ended.result == "caller_hung_up"


async def test_app_not_running_dialplan_still_rings_the_employee(asterisk, ari, sip):
    from tests.integration.conftest import leftovers

    asterisk("cli", "dialplan set global PBX_FALLBACK_RINGTIME 2")
    try:
        phone = sip.phone("101", "ring_forever")
        caller = sip.call("101")
        await caller.wait(15)
        assert phone.received("INVITE"), "the employee's phone rang without the app"
        [busy] = caller.received(486)
        invite = caller.sent("INVITE")[0].at
        assert 1.8 <= (busy.at - invite).total_seconds() <= 3.5
    finally:
        asterisk("cli", "dialplan set global PBX_FALLBACK_RINGTIME 120")
    channels, bridges = await leftovers(ari)
    assert not channels and not bridges
