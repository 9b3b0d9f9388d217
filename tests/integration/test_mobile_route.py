"""Issue 24 through the policy's own words on a real call: an employee's ``mobile`` with
``ring_mobile`` and the site's trunk (site.outbound.trunk), decided by the routing (not a
hand-written dial string), rung through the carrier played by SIPp; history says where the call
was answered. The wire details (Diversion, confirm, carrier answers) are test_mobile_forward.py's."""

from __future__ import annotations


from .test_history_calls import ended_call, journaled_app  # noqa: F401 (a fixture)

MOBILE = "79005550101"
CLIENT = "555"
POLICY = f"""
site:
  outbound:
    allow: [_7900XXXXXXX]
    trunk: {{endpoint: carrier-out}}
employees:
  "101": {{name: Ivan Petrov, ring_time: 8, mobile: "+7 900 555-01-01", ring_mobile: true}}
"""


async def test_ring_my_mobile_too_answered_on_the_mobile_says_so_in_history(journaled_app, sip):
    app = await journaled_app(POLICY)
    desk = sip.phone("101", "ring_forever")
    carrier = sip.carrier_out("confirm", answer_delay_ms=300, key_after_ms=500)
    caller = sip.call("101", talk_ms=800, caller=CLIENT)
    assert await caller.wait(30) == 0
    _, row = await ended_call(app)
    assert row.status == "answered" and row.employee == "101"
    assert row.what_happened == "answered on mobile"
    assert app.ended()[-1].detail == "answered by 101 on mobile"
    [invite] = carrier.received("INVITE")
    assert invite.first_line.startswith(f"INVITE sip:{MOBILE}@")
    assert desk.received("CANCEL"), "the desk stopped ringing"


async def test_a_whispered_forward_puts_the_client_through_after_the_colleague_heard_whose_call_it_is(journaled_app, sip):
    app = await journaled_app("""
employees:
  "101": {name: Ivan Petrov, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: none, whisper: true}}
  "102": {name: Petr Ivanov, ring_time: 8}
""")
    sip.phone("101", "ring_forever")
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = sip.call("101", talk_ms=500, caller=CLIENT)
    assert await caller.wait(40) == 0
    _, row = await ended_call(app)
    assert (row.status, app.ended()[-1].detail) == ("answered", "answered by 102")
    [picked_up] = colleague.sent(200)
    [client_answered] = caller.received(200)
    # "Forwarded call for" (1.7 s) and "1 0 1" play to 102 before the bridge; without the whisper
    # the client is answered within milliseconds of 102.
    assert (client_answered.at - picked_up.at).total_seconds() >= 2.0, "102 heard the whisper first"


async def test_a_forward_to_the_mobile_not_answered_is_missed_by_the_employee_and_names_the_mobile(journaled_app, sip):
    app = await journaled_app(POLICY.replace("ring_time: 8, mobile: \"+7 900 555-01-01\", ring_mobile: true",
                                             "ring_time: 2, mobile: \"+7 900 555-01-01\", "
                                             "on_no_answer: {action: forward, to: mobile, announcement: none}"))
    sip.phone("101", "ring_forever")
    carrier = sip.carrier_out("busy")
    caller = sip.call("101", talk_ms=300, caller=CLIENT)
    await caller.wait(30)
    _, row = await ended_call(app)
    assert carrier.received("INVITE")
    assert (row.status, row.employee) == ("missed", "101")
    assert row.what_happened == "no answer; forwarded to the mobile of 101, not answered (busy); busy tone"
